//! The WASI host context: the fd table and the dispatch of every preview1
//! call to the module of its area (split like wasmtime's host: args/env,
//! clocks, fds, paths, poll, snapshot state).

use crate::errno::{self, Errno};
use crate::mem::{Mem, Ptr};
use crate::path::{self, open_beneath, open_parent};
use crate::sys::{self, TimeSpec};
use crate::{WasiError, WasiFunc, WasiTrap};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::hash::Hasher;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wanco_state::wasi::{ClockState, FdEntry, FdKind, Preopen, WasiState};

mod args;
mod clock;
mod fd;
mod path_ops;
mod poll;
mod snapshot;
mod sock;
mod stat;

use sock::Sock;

/// What a guest starts with: `argv`, environment and preopened directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasiConfig {
    /// Guest arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Guest environment, in order.
    pub env: Vec<(String, String)>,
    /// Directories made visible to the guest, given fds 3, 4, ... in order.
    pub preopens: Vec<Preopen>,
}

/// Rights bits of preview1 (`rights` flags).
pub mod rights {
    #![allow(missing_docs)]
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    /// Every right preview1 defines.
    pub const ALL: u64 = (1 << 30) - 1;
    /// What wasmtime reports for a preopened directory (base).
    pub const PREOPEN_BASE: u64 = 0x07b7_fe00;
    /// What wasmtime reports for a preopened directory (inheriting).
    pub const PREOPEN_INHERITING: u64 = 0x0ff7_ffff;
    /// What wasmtime reports for a directory opened with `path_open`.
    pub const DIRECTORY: u64 =
        ALL & !(FD_SEEK | FD_WRITE | PATH_FILESTAT_SET_SIZE | FD_FILESTAT_SET_SIZE);

    /// What wasmtime reports for a file opened for reading and/or writing.
    pub fn file(read: bool, write: bool) -> u64 {
        let mut r = ALL;
        if !read {
            r &= !(FD_READ | FD_READDIR);
        }
        if !write {
            r &= !FD_WRITE;
        }
        r
    }
}

// fdflags
const FDFLAGS_APPEND: u16 = 1;
const FDFLAGS_DSYNC: u16 = 2;
const FDFLAGS_NONBLOCK: u16 = 4;
const FDFLAGS_RSYNC: u16 = 8;
const FDFLAGS_SYNC: u16 = 16;
// oflags
const OFLAGS_CREAT: u32 = 1;
const OFLAGS_DIRECTORY: u32 = 2;
const OFLAGS_EXCL: u32 = 4;
const OFLAGS_TRUNC: u32 = 8;
// lookupflags
const LOOKUP_SYMLINK_FOLLOW: u32 = 1;
// fstflags
const FST_ATIM: u32 = 1;
const FST_ATIM_NOW: u32 = 2;
const FST_MTIM: u32 = 4;
const FST_MTIM_NOW: u32 = 8;
// filetype
const FILETYPE_UNKNOWN: u8 = 0;
const FILETYPE_BLOCK_DEVICE: u8 = 1;
const FILETYPE_CHARACTER_DEVICE: u8 = 2;
const FILETYPE_DIRECTORY: u8 = 3;
const FILETYPE_REGULAR_FILE: u8 = 4;
const FILETYPE_SYMBOLIC_LINK: u8 = 7;
// clocks
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const CLOCK_PROCESS_CPUTIME: u32 = 2;
const CLOCK_THREAD_CPUTIME: u32 = 3;
// poll
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;
const SUBCLOCK_ABSTIME: u16 = 1;
const EVENTRW_HANGUP: u16 = 1;
const SUBSCRIPTION_SIZE: u32 = 48;
const EVENT_SIZE: u32 = 32;
const DIRENT_SIZE: u32 = 24;

/// One open guest fd: its plain-data description and its host handle.
#[derive(Debug)]
struct Desc {
    entry: FdEntry,
    /// `None` for stdio (which uses the process's own fds 0, 1, 2) and
    /// sockets.
    file: Option<File>,
    /// The host socket of a socket fd (`None` for everything else, and
    /// for a connection restored as reset).
    sock: Option<Sock>,
}

impl Desc {
    fn host(&self) -> Result<&File, Errno> {
        self.file.as_ref().ok_or(Errno::BADF)
    }
}

/// A WASI preview1 host for one guest.
///
/// The fd table is kept as plain [`FdEntry`] records (see [`WasiCtx::state`])
/// next to the host handles. File offsets are tracked in the entries and all
/// file I/O is positional, so the host descriptors' own offsets never matter
/// and a restore only has to reopen each file and set the recorded offset.
#[derive(Debug)]
pub struct WasiCtx {
    args: Vec<String>,
    env: Vec<(String, String)>,
    preopens: Vec<Preopen>,
    /// The canonical host path of each preopen (to find files that moved).
    roots_real: Vec<Option<PathBuf>>,
    fds: BTreeMap<u32, Desc>,
    free: BTreeSet<u32>,
    /// Host instant at which the guest's monotonic clock read `mono_base`.
    mono_start: Instant,
    mono_base: u64,
    /// The link to the gateway of a `--tcplisten tls://…` listener.
    gateway: Option<wanco_gateway::client::Client>,
}

impl Drop for WasiCtx {
    fn drop(&mut self) {
        // The guest's gateway connections close with this context; that
        // is not the guest closing them (see `Client::detach`).
        if let Some(g) = &self.gateway {
            g.detach();
        }
    }
}

fn open_preopen(p: &Preopen) -> Result<File, WasiError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(&p.host)
        .map_err(|e| WasiError::preopen(&p.host, e))
}

fn stdio_entry(fd: u32, kind: FdKind) -> FdEntry {
    let (read, write, r) = match kind {
        FdKind::Stdin => (true, false, rights::FD_READ),
        _ => (false, true, rights::FD_WRITE),
    };
    FdEntry {
        fd,
        kind,
        preopen: None,
        rel_path: String::new(),
        read,
        write,
        fdflags: 0,
        rights_base: r,
        rights_inheriting: r,
        offset: 0,
        is_preopen: false,
        size: None,
        socket: None,
    }
}

fn dir_entry(fd: u32, preopen: u32, rel_path: String, is_preopen: bool) -> FdEntry {
    let (base, inh) = if is_preopen {
        (rights::PREOPEN_BASE, rights::PREOPEN_INHERITING)
    } else {
        (rights::DIRECTORY, rights::DIRECTORY)
    };
    FdEntry {
        fd,
        kind: FdKind::Directory,
        preopen: Some(preopen),
        rel_path,
        read: true,
        write: false,
        fdflags: 0,
        rights_base: base,
        rights_inheriting: inh,
        offset: 0,
        is_preopen,
        size: None,
        socket: None,
    }
}

fn host_err(e: sys::HostErr) -> Errno {
    errno::from_host(e)
}

impl WasiCtx {
    /// Creates the context: fds 0, 1, 2 are the process's stdio, the preopens
    /// follow from fd 3 in order. Fails (naming the path) if a preopened host
    /// directory is missing or not a directory.
    pub fn new(cfg: WasiConfig) -> Result<WasiCtx, WasiError> {
        let roots = cfg
            .preopens
            .iter()
            .map(open_preopen)
            .collect::<Result<Vec<_>, _>>()?;
        let mut fds = BTreeMap::new();
        for (fd, kind) in [(0, FdKind::Stdin), (1, FdKind::Stdout), (2, FdKind::Stderr)] {
            fds.insert(
                fd,
                Desc {
                    entry: stdio_entry(fd, kind),
                    file: None,
                    sock: None,
                },
            );
        }
        for (i, root) in roots.into_iter().enumerate() {
            let fd = 3 + i as u32;
            fds.insert(
                fd,
                Desc {
                    entry: dir_entry(fd, i as u32, String::new(), true),
                    file: Some(root),
                    sock: None,
                },
            );
        }
        Ok(WasiCtx {
            roots_real: cfg
                .preopens
                .iter()
                .map(|p| std::fs::canonicalize(&p.host).ok())
                .collect(),
            args: cfg.args,
            env: cfg.env,
            preopens: cfg.preopens,
            fds,
            free: BTreeSet::new(),
            mono_start: Instant::now(),
            mono_base: 0,
            gateway: None,
        })
    }

    /// Executes one WASI call.
    ///
    /// `mem` is the guest's whole linear memory; every pointer and length is
    /// checked against its length (out of bounds: `FAULT`). `args` are the
    /// call's parameters in order as `u64` (`i32` zero-extended; only the low
    /// 32 bits are used). Returns the `errno` (0 = success), or
    /// `Err(WasiTrap::Exit(code))` for `proc_exit`.
    pub fn call(&mut self, func: WasiFunc, mem: &mut [u8], args: &[u64]) -> Result<u32, WasiTrap> {
        let (params, _) = func.signature();
        if args.len() < params.len() {
            return Ok(u32::from(Errno::INVAL.0));
        }
        let a = |i: usize| args[i] as u32;
        let w = |i: usize| args[i];
        let mut m = Mem::new(mem);
        let m = &mut m;
        use WasiFunc as F;
        let r = match func {
            F::ArgsGet => self.strings_get(m, false, a(0), a(1)),
            F::ArgsSizesGet => self.strings_sizes(m, false, a(0), a(1)),
            F::EnvironGet => self.strings_get(m, true, a(0), a(1)),
            F::EnvironSizesGet => self.strings_sizes(m, true, a(0), a(1)),
            F::ClockResGet => self.clock_res_get(m, a(0), a(1)),
            F::ClockTimeGet => self.clock_time_get(m, a(0), a(2)),
            F::FdAdvise => self.fd_advise(a(0), w(1), w(2), a(3)),
            F::FdAllocate if self.is_socket_fd(a(0)) => Err(Errno::NOTSUP),
            F::FdAllocate => self.file(a(0)).and(Err(Errno::NOTSUP)),
            // wasmtime 36: syncing a socket does nothing, successfully.
            F::FdDatasync | F::FdSync if self.is_socket_fd(a(0)) => Ok(()),
            F::FdClose => self.fd_close(a(0)),
            F::FdDatasync => self
                .file(a(0))
                .and_then(|f| f.sync_data().map_err(errno::from_io)),
            F::FdFdstatGet => self.fd_fdstat_get(m, a(0), a(1)),
            F::FdFdstatSetFlags => self.fd_fdstat_set_flags(a(0), a(1)),
            F::FdFdstatSetRights => self.fd_fdstat_set_rights(a(0)),
            F::FdFilestatGet => self.fd_filestat_get(m, a(0), a(1)),
            F::FdFilestatSetSize => self
                .file(a(0))
                .and_then(|f| f.set_len(w(1)).map_err(errno::from_io)),
            F::FdFilestatSetTimes => self.fd_filestat_set_times(a(0), w(1), w(2), a(3)),
            F::FdPread => self.fd_pread(m, a(0), a(1), a(2), w(3), a(4)),
            F::FdPrestatGet => self.fd_prestat_get(m, a(0), a(1)),
            F::FdPrestatDirName => self.fd_prestat_dir_name(m, a(0), a(1), a(2)),
            F::FdPwrite => self.fd_pwrite(m, a(0), a(1), a(2), w(3), a(4)),
            F::FdRead => self.fd_read(m, a(0), a(1), a(2), a(3)),
            F::FdReaddir => self.fd_readdir(m, a(0), a(1), a(2), w(3), a(4)),
            F::FdRenumber => self.fd_renumber(a(0), a(1)),
            F::FdSeek => self.fd_seek(m, a(0), w(1) as i64, a(2), a(3)),
            F::FdSync => self
                .file(a(0))
                .and_then(|f| f.sync_all().map_err(errno::from_io)),
            F::FdTell => self.fd_tell(m, a(0), a(1)),
            F::FdWrite => self.fd_write(m, a(0), a(1), a(2), a(3)),
            F::PathCreateDirectory => self.path_create_directory(m, a(0), a(1), a(2)),
            F::PathFilestatGet => self.path_filestat_get(m, a(0), a(1), a(2), a(3), a(4)),
            F::PathFilestatSetTimes => {
                self.path_filestat_set_times(m, a(0), a(1), a(2), a(3), w(4), w(5), a(6))
            }
            F::PathLink => self.path_link(m, a(0), a(1), a(2), a(3), a(4), a(5), a(6)),
            F::PathOpen => self.path_open(m, a(0), a(1), a(2), a(3), a(4), w(5), a(7), a(8)),
            F::PathReadlink => self.path_readlink(m, a(0), a(1), a(2), a(3), a(4), a(5)),
            F::PathRemoveDirectory => self.path_remove(m, a(0), a(1), a(2), libc::AT_REMOVEDIR),
            F::PathRename => self.path_rename(m, a(0), a(1), a(2), a(3), a(4), a(5)),
            F::PathSymlink => self.path_symlink(m, a(0), a(1), a(2), a(3), a(4)),
            F::PathUnlinkFile => self.path_remove(m, a(0), a(1), a(2), 0),
            F::PollOneoff => self.poll_oneoff(m, a(0), a(1), a(2), a(3)),
            F::ProcExit => {
                // wasmtime refuses statuses outside [0, 126) with an error,
                // which makes the process exit with status 1.
                let code = a(0);
                return Err(WasiTrap::Exit(if code < 126 { code } else { 1 }));
            }
            F::ProcRaise => Err(Errno::NOTSUP),
            F::SchedYield => Ok(()),
            F::RandomGet => m
                .slice_mut(a(0), a(1))
                .and_then(|b| sys::getrandom(b).map_err(host_err)),
            F::SockAccept => self.sock_accept(m, a(0), a(1), a(2)),
            F::SockRecv => self.sock_recv(m, a(0), a(1), a(2), a(3), a(4), a(5)),
            F::SockSend => self.sock_send(m, a(0), a(1), a(2), a(4)),
            F::SockShutdown => self.sock_shutdown(a(0), a(1)),
        };
        Ok(match r {
            Ok(()) => 0,
            Err(e) => u32::from(e.0),
        })
    }

    // ---- helpers -------------------------------------------------------

    fn desc(&self, fd: u32) -> Result<&Desc, Errno> {
        self.fds.get(&fd).ok_or(Errno::BADF)
    }

    /// The host file behind a regular-file fd (`BADF` for anything else).
    fn file(&self, fd: u32) -> Result<&File, Errno> {
        let d = self.desc(fd)?;
        match d.entry.kind {
            FdKind::File => d.host(),
            _ => Err(Errno::BADF),
        }
    }

    /// A directory fd (`BADF` for anything else).
    fn dir(&self, fd: u32) -> Result<&Desc, Errno> {
        let d = self.desc(fd)?;
        match d.entry.kind {
            FdKind::Directory => Ok(d),
            _ => Err(Errno::BADF),
        }
    }

    fn dir_fd(&self, fd: u32) -> Result<BorrowedFd<'_>, Errno> {
        Ok(self.dir(fd)?.host()?.as_fd())
    }

    /// A file fd that has an offset (`SPIPE` for stdio, `BADF` otherwise).
    fn seekable(&mut self, fd: u32) -> Result<&mut Desc, Errno> {
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        match d.entry.kind {
            FdKind::File => Ok(d),
            FdKind::Stdin | FdKind::Stdout | FdKind::Stderr => Err(Errno::SPIPE),
            FdKind::Directory | FdKind::TcpListener | FdKind::TcpStream => Err(Errno::BADF),
        }
    }

    /// The next guest fd: the highest released one, else one past the
    /// highest in use (wasmtime's order).
    fn alloc_fd(&mut self) -> Result<u32, Errno> {
        if let Some(fd) = self.free.pop_last() {
            return Ok(fd);
        }
        match self.fds.last_key_value() {
            None => Ok(0),
            Some((&last, _)) => match last.checked_add(1) {
                Some(fd) => Ok(fd),
                None => (0..u32::MAX)
                    .rev()
                    .find(|fd| !self.fds.contains_key(fd))
                    .ok_or(Errno::LOOP),
            },
        }
    }

}
