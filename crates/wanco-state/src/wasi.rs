//! WASI preview1 state as plain data.
//!
//! The WASI host (`wanco-wasi`) keeps its fd table in exactly these types, so
//! that a checkpoint can write it into a snapshot and a restore (on any ISA,
//! in any engine) can reopen every file at the same offset with the same flags.

use serde::{Deserialize, Serialize};

/// Everything the WASI host knows about a running guest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasiState {
    /// Guest arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Guest environment as `(key, value)` pairs, in the order given.
    pub env: Vec<(String, String)>,
    /// Directories made visible to the guest (`--dir HOST::GUEST`).
    pub preopens: Vec<Preopen>,
    /// Open file descriptors, ordered by fd number.
    pub fds: Vec<FdEntry>,
    /// Clock continuity across checkpoint/restore.
    pub clock: ClockState,
    /// Guest fd numbers released by `fd_close`/`fd_renumber` and not reused
    /// yet, ascending. The next opened file takes the highest of them (else
    /// one past the highest fd in use) — wasmtime's allocation order, which
    /// must survive a restore for fd numbers to stay identical.
    #[serde(default)]
    pub free_fds: Vec<u32>,
}

/// A preopened directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preopen {
    /// Directory on the host, as given by the user.
    pub host: String,
    /// Name under which the guest sees it (what `fd_prestat_dir_name` returns).
    pub guest: String,
}

/// What kind of object an fd refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdKind {
    /// The process's standard input.
    Stdin,
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// A regular file (or other non-directory) opened through a preopen.
    File,
    /// A directory: either a preopen or one opened through a preopen.
    Directory,
    /// A listening TCP socket given to the guest (`--tcplisten`); its
    /// address is in [`FdEntry::socket`].
    TcpListener,
    /// A TCP connection accepted by the guest (`sock_accept`); its identity
    /// and byte counts are in [`FdEntry::socket`].
    TcpStream,
}

/// One entry of the fd table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdEntry {
    /// The guest-visible fd number.
    pub fd: u32,
    /// What it refers to.
    pub kind: FdKind,
    /// Index into [`WasiState::preopens`] of the preopen this fd lives under
    /// (for a preopen itself: its own index). `None` for stdio.
    pub preopen: Option<u32>,
    /// Path relative to the preopen's host directory (`""` for the preopen
    /// itself). Empty for stdio.
    pub rel_path: String,
    /// Whether the fd was opened for reading.
    pub read: bool,
    /// Whether the fd was opened for writing.
    pub write: bool,
    /// WASI `fdflags` (append, dsync, nonblock, rsync, sync).
    pub fdflags: u16,
    /// WASI base rights.
    pub rights_base: u64,
    /// WASI inheriting rights.
    pub rights_inheriting: u64,
    /// Current file offset (files; for standard input, its offset when it
    /// was a regular file, else 0).
    pub offset: u64,
    /// Whether this fd is the preopen [`FdEntry::preopen`] itself (it answers
    /// `fd_prestat_get`), as opposed to a directory opened at the same path.
    #[serde(default)]
    pub is_preopen: bool,
    /// The file's size in bytes at the checkpoint: for a regular file (and
    /// for standard input redirected from one), else absent. A restore
    /// refuses a file whose size has changed since (the program would go on
    /// with data it did not have, or without data it wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// For a socket ([`FdKind::TcpListener`], [`FdKind::TcpStream`]): its
    /// addresses, identity, byte counts and shutdown state. Absent for
    /// everything else (and in snapshots older than sockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketState>,
}

/// What a snapshot records of a socket fd.
///
/// A connection is named by the listener it came from and its accept
/// number there (`listener`, `seq`): stable across checkpoints, so that a
/// gateway can tell which client stream a restored fd continues. The byte
/// counts say where each direction of the stream stands: `bytes_in` bytes
/// of the client's stream were handed to the guest, `bytes_out` bytes the
/// guest sent were taken by the host's network stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketState {
    /// Listener: the address it is bound to, `IP:PORT` (the port as bound,
    /// never 0). Connection: its local address.
    pub local_addr: String,
    /// Connection: the peer's address, `IP:PORT`. Empty for a listener.
    #[serde(default)]
    pub peer_addr: String,
    /// Connection: the local address of the listener that accepted it.
    /// Empty for a listener.
    #[serde(default)]
    pub listener: String,
    /// Listener: how many connections it has accepted. Connection: its
    /// number among them (the first accepted is 1).
    #[serde(default)]
    pub seq: u64,
    /// Connection: bytes received from the peer and delivered to the guest
    /// (by `fd_read`/`sock_recv`; a peek delivers nothing).
    #[serde(default)]
    pub bytes_in: u64,
    /// Connection: bytes the guest sent (`fd_write`/`sock_send`) that the
    /// host accepted.
    #[serde(default)]
    pub bytes_out: u64,
    /// The guest shut down the receiving direction (`sock_shutdown` RD).
    #[serde(default)]
    pub shut_rd: bool,
    /// The guest shut down the sending direction (`sock_shutdown` WR).
    #[serde(default)]
    pub shut_wr: bool,
    /// The guest has read the peer's end of stream.
    #[serde(default)]
    pub peer_eof: bool,
    /// The connection is gone: it was open at a checkpoint and restored
    /// without its peer. Every read, receive, write and send on it fails
    /// with `CONNRESET`; poll reports it ready with `HANGUP`.
    #[serde(default)]
    pub reset: bool,
    /// Behind a gateway (`--tcplisten tls://HOST:PORT/PROGRAM`): the
    /// gateway's address, for the listener and its connections; empty for
    /// a socket of the host's own. A restore attaches to that gateway
    /// again and its connections continue at `bytes_in`/`bytes_out`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// A gateway connection: the gateway's id of it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conn_id: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Clock state that must survive a migration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockState {
    /// The guest's monotonic time (ns) when the state was taken, which is at
    /// least the last value the guest observed. After a restore the guest's
    /// clock continues from this value, so it never goes back.
    pub monotonic_last_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_entry() -> FdEntry {
        FdEntry {
            fd: 4,
            kind: FdKind::File,
            preopen: Some(0),
            rel_path: "a.txt".into(),
            read: true,
            write: false,
            fdflags: 0,
            rights_base: 2,
            rights_inheriting: 2,
            offset: 7,
            is_preopen: false,
            size: Some(9),
            socket: None,
        }
    }

    /// The fd entry as snapshots before sockets wrote it (no `socket` key).
    #[derive(Serialize)]
    struct OldFdEntry {
        fd: u32,
        kind: FdKind,
        preopen: Option<u32>,
        rel_path: String,
        read: bool,
        write: bool,
        fdflags: u16,
        rights_base: u64,
        rights_inheriting: u64,
        offset: u64,
        is_preopen: bool,
        size: Option<u64>,
    }

    #[test]
    fn entries_without_a_socket_key_still_decode() {
        let old = OldFdEntry {
            fd: 4,
            kind: FdKind::File,
            preopen: Some(0),
            rel_path: "a.txt".into(),
            read: true,
            write: false,
            fdflags: 0,
            rights_base: 2,
            rights_inheriting: 2,
            offset: 7,
            is_preopen: false,
            size: Some(9),
        };
        let bytes = rmp_serde::to_vec_named(&old).unwrap();
        let e: FdEntry = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(e, file_entry());
        // And a file entry is written without the key, as before.
        assert_eq!(rmp_serde::to_vec_named(&file_entry()).unwrap(), bytes);
    }

    #[test]
    fn socket_entries_round_trip() {
        let mut e = file_entry();
        e.kind = FdKind::TcpStream;
        e.socket = Some(SocketState {
            local_addr: "127.0.0.1:4000".into(),
            peer_addr: "127.0.0.1:51234".into(),
            listener: "127.0.0.1:4000".into(),
            seq: 3,
            bytes_in: 100,
            bytes_out: 250,
            shut_rd: false,
            shut_wr: true,
            peer_eof: true,
            reset: false,
            gateway: String::new(),
            conn_id: 0,
        });
        let bytes = rmp_serde::to_vec_named(&e).unwrap();
        assert_eq!(rmp_serde::from_slice::<FdEntry>(&bytes).unwrap(), e);
        let s = e.socket.as_mut().unwrap();
        s.gateway = "tls://gw:7000/kv".into();
        s.conn_id = 12;
        let bytes = rmp_serde::to_vec_named(&e).unwrap();
        assert_eq!(rmp_serde::from_slice::<FdEntry>(&bytes).unwrap(), e);
    }
}
