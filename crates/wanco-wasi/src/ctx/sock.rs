//! Sockets: pre-opened TCP listeners (`--tcplisten`), `sock_accept`,
//! `sock_recv`, `sock_send`, `sock_shutdown`, and what the other calls do on
//! a socket fd.
//!
//! The reference is the preview1 host of wasmtime 36 (`wasi-common`, run as
//! `wasmtime run -S preview2=n -S tcplisten=ADDR`; later wasmtime versions
//! give preview1 modules no sockets):
//!
//! * a listener is non-blocking from the start (`sock_accept` with no
//!   client waiting is `AGAIN`); an accepted connection is blocking unless
//!   `sock_accept` was given `NONBLOCK`; `fd_fdstat_set_flags` takes exactly
//!   `NONBLOCK` or nothing (anything else: `INVAL`);
//! * `fd_fdstat_get`: filetype `SOCKET_STREAM`, rights `FD_READ|FD_WRITE`,
//!   no inheriting rights, flags `NONBLOCK` as set;
//! * `fd_read` and `sock_recv` read into the first non-empty buffer;
//!   `fd_write` and `sock_send` send all buffers (one `writev`);
//! * the `sock_*` calls on anything but a connection (`sock_accept`: a
//!   listener) are `BADF`; `sock_recv` with flags other than `RECV_PEEK` and
//!   `RECV_WAITALL` is `NOTSUP`; `sock_shutdown` without a direction is
//!   `INVAL`;
//! * `fd_sync`/`fd_datasync` succeed, `fd_allocate` is `NOTSUP`, seeking,
//!   positional I/O, advice, sizes and times are `BADF`; `fd_filestat_get`
//!   gives the filetype and zeros.
//!
//! Two deliberate differences from wasmtime 36, which a correct program
//! does not notice: `poll_oneoff` reports only the fds that are ready
//! (wasmtime 36 reports every fd subscription as ready as soon as one is),
//! and a closed fd number is used again (wasmtime 49's order, as for files;
//! wasmtime 36 never reuses one).
//!
//! Every connection keeps count of the bytes it delivered to the guest and
//! took from it, and of its shutdown state, in its [`SocketState`]: a
//! snapshot records where each stream stands.

use super::stat::Filestat;
use super::*;
use std::io::{IoSlice, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use wanco_state::wasi::SocketState;

const FILETYPE_SOCKET_STREAM: u8 = 6;
const RIFLAGS_RECV_PEEK: u32 = 1;
const RIFLAGS_RECV_WAITALL: u32 = 2;
const SDFLAGS_RD: u32 = 1;
const SDFLAGS_WR: u32 = 2;
/// The rights wasmtime 36 reports for a socket (read and write access).
const SOCKET_RIGHTS: u64 = rights::FD_READ | rights::FD_WRITE;

/// The host side of a socket fd.
#[derive(Debug)]
pub(super) enum Sock {
    /// A listening socket.
    Listener(TcpListener),
    /// A connection (for a gateway connection: the guest's end of a local
    /// socket pair, see `wanco_gateway::client`).
    Stream(TcpStream),
    /// A listener behind a gateway: connections come over the link.
    Gateway(wanco_gateway::client::Client),
}

impl Sock {
    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Listener(l) => l.as_fd(),
            Sock::Stream(s) => s.as_fd(),
            Sock::Gateway(g) => g.notify_fd(),
        }
    }

    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Sock::Listener(l) => l.set_nonblocking(on),
            Sock::Stream(s) => s.set_nonblocking(on),
            // `sock_accept` reads the fd's flags.
            Sock::Gateway(_) => Ok(()),
        }
    }
}

pub(super) fn is_socket(kind: FdKind) -> bool {
    matches!(kind, FdKind::TcpListener | FdKind::TcpStream)
}

fn net_err(e: std::io::Error) -> Errno {
    errno::from_io_net(e)
}

fn socket_entry(fd: u32, kind: FdKind, fdflags: u16, socket: SocketState) -> FdEntry {
    FdEntry {
        fd,
        kind,
        preopen: None,
        rel_path: String::new(),
        read: true,
        write: true,
        fdflags,
        rights_base: SOCKET_RIGHTS,
        rights_inheriting: 0,
        offset: 0,
        is_preopen: false,
        size: None,
        socket: Some(socket),
    }
}

/// Binds a listener on `addr` (`HOST:PORT`, `[V6]:PORT`), non-blocking.
fn bind(addr: &str) -> std::io::Result<(TcpListener, String)> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let local = l.local_addr()?.to_string();
    Ok((l, local))
}

/// Re-creates a snapshot's socket fd: a listener is bound again on its
/// address (with its blocking mode); a connection has lost its peer and is
/// restored as reset.
pub(super) fn reopen_socket(
    e: &FdEntry,
    gateway: Option<&GwClient>,
    gw_streams: &mut BTreeMap<u64, TcpStream>,
) -> Result<(FdEntry, Option<Sock>), WasiError> {
    let Some(s) = &e.socket else {
        return Err(WasiError::new(format!(
            "fd {} is a socket ({:?}) but the snapshot gives no address for it",
            e.fd, e.kind
        )));
    };
    let mut entry = e.clone();
    if !s.gateway.is_empty() {
        // Behind the gateway (attached again in `reattach_gateway`).
        let g = gateway.ok_or_else(|| WasiError::new(format!("fd {} is a connection of gateway `{}`, but the snapshot has no listener of it", e.fd, s.gateway)))?;
        if e.kind == FdKind::TcpListener {
            return Ok((entry, Some(Sock::Gateway(g.clone()))));
        }
        return match gw_streams.remove(&s.conn_id) {
            Some(stream) => {
                stream
                    .set_nonblocking(e.fdflags & FDFLAGS_NONBLOCK != 0)
                    .map_err(|err| WasiError::new(format!("fd {}: {err}", e.fd)))?;
                Ok((entry, Some(Sock::Stream(stream))))
            }
            None => {
                if let Some(s) = entry.socket.as_mut() {
                    s.reset = true;
                }
                Ok((entry, None))
            }
        };
    }
    match e.kind {
        FdKind::TcpListener => {
            let l = TcpListener::bind(&s.local_addr).map_err(|err| {
                WasiError::new(format!(
                    "cannot listen on `{}` again for fd {} (the listener of the checkpointed program): {err}",
                    s.local_addr, e.fd
                ))
            })?;
            let sock = Sock::Listener(l);
            sock.set_nonblocking(e.fdflags & FDFLAGS_NONBLOCK != 0)
                .map_err(|err| WasiError::new(format!("fd {}: {err}", e.fd)))?;
            Ok((entry, Some(sock)))
        }
        _ => {
            // The peer was connected to the process that took the
            // checkpoint; this process has no connection to give the
            // guest. It learns that the connection was reset.
            if let Some(s) = entry.socket.as_mut() {
                s.reset = true;
            }
            Ok((entry, None))
        }
    }
}

type GwClient = wanco_gateway::client::Client;

/// A restore's gateway: attaches again to the gateway of the snapshot's
/// gateway listener (credentials from `WANCO_GATEWAY_*`) with where each of
/// its connections stands (`bytes_in`: client bytes the guest has read,
/// `bytes_out`: bytes it sent). Returns the link and the guest end of each
/// connection, by id. A connection restored as reset is not resumed.
pub(super) fn reattach_gateway(state: &WasiState) -> Result<(Option<GwClient>, BTreeMap<u64, TcpStream>), WasiError> {
    let gw = |e: &&FdEntry| e.socket.as_ref().is_some_and(|s| !s.gateway.is_empty());
    let Some(listener) = state.fds.iter().filter(gw).find(|e| e.kind == FdKind::TcpListener) else {
        return Ok((None, BTreeMap::new()));
    };
    let url = &listener.socket.as_ref().expect("filtered").gateway;
    let conns: Vec<_> = state
        .fds
        .iter()
        .filter(gw)
        .filter(|e| e.kind == FdKind::TcpStream)
        .filter_map(|e| e.socket.as_ref())
        .filter(|s| !s.reset)
        .map(|s| wanco_gateway::proto::ConnPos { id: s.conn_id, delivered: s.bytes_in, accepted: s.bytes_out })
        .collect();
    let err = |e: wanco_gateway::Error| WasiError::new(format!("the listener behind the gateway `{url}`: {e}"));
    let addr = wanco_gateway::client::GatewayAddr::parse(url).map_err(err)?;
    let files = wanco_gateway::client::credentials_from_env().map_err(err)?;
    let (client, streams) = GwClient::connect(&addr, &files, Some(&conns)).map_err(err)?;
    Ok((Some(client), conns.iter().map(|c| c.id).zip(streams).collect()))
}

impl WasiCtx {
    /// Parks (`true`) or unparks the link of a gateway listener, if any (see
    /// `wanco_gateway::client::Client::park`): a program stopped for a
    /// migration, or restored and waiting to be told to run, does not take
    /// the link back from the other copy.
    pub fn park_gateway(&self, parked: bool) {
        if let Some(g) = &self.gateway {
            g.park(parked);
        }
    }

    /// The program exits (not a checkpoint): its gateway connections end
    /// as a server's do when it exits — the guest's last bytes, then end of
    /// stream, passed on at once — and the runtime leaves the gateway (see
    /// `wanco_gateway::client::Client::program_exited`). Returns what went
    /// wrong, if anything (for a note on stderr: the process exits anyway).
    pub fn program_exited(&mut self) -> Option<String> {
        let g = self.gateway.clone()?;
        let mut ids = Vec::new();
        for d in self.fds.values() {
            let Some(s) = d.entry.socket.as_ref().filter(|s| !s.gateway.is_empty()) else { continue };
            if let (FdKind::TcpStream, Some(Sock::Stream(st))) = (d.entry.kind, &d.sock) {
                let _ = st.shutdown(std::net::Shutdown::Write);
                ids.push(s.conn_id);
            }
        }
        g.program_exited(&ids, std::time::Duration::from_secs(5))
            .err()
            .map(|e| format!("the gateway {} may reset this program's clients after its timeout instead of ending them now: {e}", g.addr()))
    }

    /// The checkpoint barrier of a gateway listener ([`WasiCtx::unrestorable`]).
    pub(super) fn gateway_sync(&self) -> Option<String> {
        let g = self.gateway.as_ref()?;
        let conns: Vec<(u64, u64, u64)> = self
            .fds
            .values()
            .filter(|d| d.entry.kind == FdKind::TcpStream && d.sock.is_some())
            .filter_map(|d| d.entry.socket.as_ref())
            .filter(|s| !s.gateway.is_empty())
            .map(|s| (s.conn_id, s.bytes_out, s.bytes_in))
            .collect();
        g.sync(&conns, std::time::Duration::from_secs(10))
            .err()
            .map(|e| format!("the gateway {} does not confirm it holds the connections' bytes ({e}): a snapshot now could lose them", g.addr()))
    }

    /// Gives the guest a TCP socket listening on `addr` (`HOST:PORT`) at
    /// the next free fd (after stdio and the preopened directories, so the
    /// first of them is fd 3 when no directory is preopened), non-blocking,
    /// as `wasmtime run -S tcplisten=ADDR` does. Returns the fd. Call it
    /// before the guest runs.
    ///
    /// `tls://HOST:PORT/PROGRAM` instead listens behind `wanco gateway`:
    /// the runtime attaches to that gateway as program `PROGRAM` (mutual
    /// TLS, credentials from `WANCO_GATEWAY_CERT`, `WANCO_GATEWAY_KEY`,
    /// `WANCO_GATEWAY_CA`) and the guest accepts the gateway's client
    /// connections; they survive a checkpoint and restore elsewhere.
    pub fn preopen_listener(&mut self, addr: &str) -> Result<u32, WasiError> {
        if addr.starts_with("tls://") {
            return self.preopen_gateway_listener(addr);
        }
        let (l, local) = bind(addr)
            .map_err(|e| WasiError::new(format!("cannot listen on `{addr}`: {e}")))?;
        let fd = self
            .alloc_fd()
            .map_err(|_| WasiError::new("no free fd for the listener".into()))?;
        let socket = SocketState {
            local_addr: local,
            ..SocketState::default()
        };
        self.fds.insert(
            fd,
            Desc {
                entry: socket_entry(fd, FdKind::TcpListener, FDFLAGS_NONBLOCK, socket),
                file: None,
                sock: Some(Sock::Listener(l)),
            },
        );
        Ok(fd)
    }

    fn preopen_gateway_listener(&mut self, url: &str) -> Result<u32, WasiError> {
        let err = |e: wanco_gateway::Error| WasiError::new(format!("--tcplisten {url}: {e}"));
        if self.gateway.is_some() {
            return Err(WasiError::new(format!("--tcplisten {url}: a program has one gateway listener")));
        }
        let addr = wanco_gateway::client::GatewayAddr::parse(url).map_err(err)?;
        let files = wanco_gateway::client::credentials_from_env().map_err(err)?;
        let (client, _) = GwClient::connect(&addr, &files, None).map_err(err)?;
        let fd = self
            .alloc_fd()
            .map_err(|_| WasiError::new("no free fd for the listener".into()))?;
        let socket = SocketState { local_addr: addr.to_string(), gateway: addr.to_string(), ..SocketState::default() };
        self.fds.insert(
            fd,
            Desc {
                entry: socket_entry(fd, FdKind::TcpListener, FDFLAGS_NONBLOCK, socket),
                file: None,
                sock: Some(Sock::Gateway(client.clone())),
            },
        );
        self.gateway = Some(client);
        Ok(fd)
    }

    /// The address a listener fd listens on (`IP:PORT`), if `fd` is one.
    pub fn listener_addr(&self, fd: u32) -> Option<String> {
        let d = self.fds.get(&fd)?;
        (d.entry.kind == FdKind::TcpListener)
            .then(|| d.entry.socket.as_ref().map(|s| s.local_addr.clone()))
            .flatten()
    }

    pub(super) fn is_socket_fd(&self, fd: u32) -> bool {
        self.fds.get(&fd).is_some_and(|d| is_socket(d.entry.kind))
    }

    /// A connection fd: its description (the host stream is `None` for a
    /// connection restored as reset). Anything else is `BADF`.
    fn stream(&mut self, fd: u32) -> Result<&mut Desc, Errno> {
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        if d.entry.kind != FdKind::TcpStream {
            return Err(Errno::BADF);
        }
        Ok(d)
    }

    pub(super) fn sock_accept(&mut self, m: &mut Mem<'_>, fd: u32, flags: u32, out: Ptr) -> Result<(), Errno> {
        if flags & !0x1f != 0 {
            return Err(Errno::INVAL);
        }
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        m.check(out, 4)?;
        let (stream, peer, conn_id) = match &d.sock {
            Some(Sock::Listener(l)) => {
                let (s, peer) = l.accept().map_err(net_err)?;
                (s, peer.to_string(), 0)
            }
            Some(Sock::Gateway(g)) => {
                let (id, peer, s) = retry_intr(|| g.accept(d.entry.fdflags & FDFLAGS_NONBLOCK == 0)).map_err(net_err)?;
                (s, peer, id)
            }
            _ => return Err(Errno::BADF),
        };
        let flags = flags as u16;
        // As wasmtime: exactly NONBLOCK or nothing, checked once accepted.
        match flags {
            0 => stream.set_nonblocking(false).map_err(net_err)?,
            FDFLAGS_NONBLOCK => stream.set_nonblocking(true).map_err(net_err)?,
            _ => return Err(Errno::INVAL),
        }
        let listener = d.entry.socket.get_or_insert_with(SocketState::default);
        listener.seq += 1;
        let socket = SocketState {
            local_addr: if conn_id != 0 { listener.local_addr.clone() } else { stream.local_addr().map(|a| a.to_string()).unwrap_or_default() },
            peer_addr: peer,
            listener: listener.local_addr.clone(),
            seq: listener.seq,
            gateway: listener.gateway.clone(),
            conn_id,
            ..SocketState::default()
        };
        let new_fd = self.alloc_fd()?;
        self.fds.insert(
            new_fd,
            Desc {
                entry: socket_entry(new_fd, FdKind::TcpStream, flags, socket),
                file: None,
                sock: Some(Sock::Stream(stream)),
            },
        );
        m.write_u32(out, new_fd)
    }

    /// `fd_read` on a socket fd.
    pub(super) fn sock_read(&mut self, m: &mut Mem<'_>, fd: u32, iovs: Ptr, iovs_len: u32, nread: Ptr) -> Result<(), Errno> {
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nread, 4)?;
        let n = self.recv_into(m, fd, buf, len, 0)?;
        m.write_u32(nread, n)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn sock_recv(
        &mut self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        flags: u32,
        nread: Ptr,
        roflags: Ptr,
    ) -> Result<(), Errno> {
        if flags & !0xffff != 0 {
            return Err(Errno::INVAL);
        }
        self.stream(fd)?;
        if flags & !(RIFLAGS_RECV_PEEK | RIFLAGS_RECV_WAITALL) != 0 {
            return Err(Errno::NOTSUP);
        }
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nread, 4)?;
        m.check(roflags, 2)?;
        let n = self.recv_into(m, fd, buf, len, flags)?;
        m.write_u32(nread, n)?;
        m.write_u16(roflags, 0)
    }

    /// Receives into `m[buf..buf+len]` from connection `fd`, counting what
    /// the guest is given.
    fn recv_into(&mut self, m: &mut Mem<'_>, fd: u32, buf: Ptr, len: u32, flags: u32) -> Result<u32, Errno> {
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        let stream = match (&d.sock, d.entry.kind) {
            (Some(Sock::Stream(s)), _) => s,
            (None, FdKind::TcpStream) => return Err(Errno::CONNRESET),
            _ => return Err(Errno::BADF),
        };
        let dst = m.slice_mut(buf, len)?;
        let st = d.entry.socket.get_or_insert_with(SocketState::default);
        if flags & RIFLAGS_RECV_PEEK != 0 {
            return retry_intr(|| stream.peek(dst)).map(|n| n as u32).map_err(net_err);
        }
        let mut got = 0usize;
        loop {
            let r = retry_intr(|| (&*stream).read(&mut dst[got..]));
            match r {
                Ok(0) if !dst.is_empty() && st.conn_id != 0 && self.gateway.as_ref().is_some_and(|g| g.was_reset(st.conn_id)) => {
                    // The client reset the connection (behind the gateway
                    // the guest's end only sees it close).
                    return if got > 0 { Ok(got as u32) } else { Err(Errno::CONNRESET) };
                }
                Ok(n) => {
                    got += n;
                    st.bytes_in += n as u64;
                    if let (Some(g), true) = (&self.gateway, st.conn_id != 0) {
                        g.delivered(st.conn_id, st.bytes_in);
                    }
                    if n == 0 && !dst.is_empty() {
                        st.peer_eof = true;
                    }
                    if flags & RIFLAGS_RECV_WAITALL == 0 || got == dst.len() {
                        return Ok(got as u32);
                    }
                    if n == 0 {
                        // End of stream before the buffer was full: what
                        // wasmtime's `read_exact` reports.
                        return Err(Errno::IO);
                    }
                }
                Err(e) => return Err(net_err(e)),
            }
        }
    }

    /// `fd_write` and `sock_send` on a socket fd: all buffers at once.
    pub(super) fn sock_send(&mut self, m: &mut Mem<'_>, fd: u32, iovs: Ptr, iovs_len: u32, nwritten: Ptr) -> Result<(), Errno> {
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        let stream = match (&d.sock, d.entry.kind) {
            (Some(Sock::Stream(s)), _) => s,
            (None, FdKind::TcpStream) => return Err(Errno::CONNRESET),
            _ => return Err(Errno::BADF),
        };
        let bufs = m.iovecs(iovs, iovs_len)?;
        m.check(nwritten, 4)?;
        let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let st = d.entry.socket.get_or_insert_with(SocketState::default);
        let n = match retry_intr(|| (&*stream).write_vectored(&slices)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && st.conn_id != 0 && self.gateway.as_ref().is_some_and(|g| g.was_reset(st.conn_id)) => {
                return Err(Errno::CONNRESET)
            }
            Err(e) => return Err(net_err(e)),
        };
        st.bytes_out += n as u64;
        m.write_u32(nwritten, n as u32)
    }

    pub(super) fn sock_shutdown(&mut self, fd: u32, how: u32) -> Result<(), Errno> {
        if how & !0xff != 0 || how & !(SDFLAGS_RD | SDFLAGS_WR) != 0 {
            return Err(Errno::INVAL);
        }
        let d = self.stream(fd)?;
        let dir = match how {
            3 => Shutdown::Both,
            SDFLAGS_RD => Shutdown::Read,
            SDFLAGS_WR => Shutdown::Write,
            _ => return Err(Errno::INVAL),
        };
        let Some(Sock::Stream(s)) = &d.sock else {
            return Err(Errno::NOTCONN); // restored as reset
        };
        s.shutdown(dir).map_err(net_err)?;
        let st = d.entry.socket.get_or_insert_with(SocketState::default);
        st.shut_rd |= how & SDFLAGS_RD != 0;
        st.shut_wr |= how & SDFLAGS_WR != 0;
        Ok(())
    }

    /// `fd_fdstat_get` of a socket: (filetype, flags, base, inheriting).
    pub(super) fn sock_fdstat(&self, d: &Desc) -> (u8, u16, u64, u64) {
        (FILETYPE_SOCKET_STREAM, d.entry.fdflags & FDFLAGS_NONBLOCK, SOCKET_RIGHTS, 0)
    }

    /// `fd_fdstat_set_flags` on a socket: `NONBLOCK` or nothing.
    pub(super) fn sock_set_flags(&mut self, fd: u32, flags: u16) -> Result<(), Errno> {
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        let on = match flags {
            0 => false,
            FDFLAGS_NONBLOCK => true,
            _ => return Err(Errno::INVAL),
        };
        if let Some(s) = &d.sock {
            s.set_nonblocking(on).map_err(net_err)?;
        }
        d.entry.fdflags = flags;
        Ok(())
    }

    /// `fd_filestat_get` of a socket.
    pub(super) fn sock_filestat() -> Filestat {
        Filestat::stdio(FILETYPE_SOCKET_STREAM)
    }
}

/// Repeats an I/O call interrupted by a signal (a checkpoint request
/// arriving while the guest waits must not turn into an error).
fn retry_intr<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}
