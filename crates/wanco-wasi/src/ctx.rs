//! The WASI host context: fd table, preopens, clocks, and one function per
//! preview1 call.

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
    /// `None` for stdio (which uses the process's own fds 0, 1, 2).
    file: Option<File>,
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
    }
}

/// Joins a directory's path and a guest path relative to it, dropping empty
/// and `.` components (`..` is kept: it is resolved on reopen).
fn join_rel(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in base.split('/').chain(path.split('/')) {
        if !c.is_empty() && c != "." {
            parts.push(c);
        }
    }
    parts.join("/")
}

fn host_err(e: sys::HostErr) -> Errno {
    errno::from_host(e)
}

/// wasmtime reports `ino` as a 64-bit hash of `(dev, ino)` and `dev` as 1.
fn ino_hash(dev: u64, ino: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u64(dev);
    h.write_u64(ino);
    h.finish()
}

fn filetype_of(ft: std::fs::FileType) -> u8 {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        FILETYPE_DIRECTORY
    } else if ft.is_symlink() {
        FILETYPE_SYMBOLIC_LINK
    } else if ft.is_block_device() {
        FILETYPE_BLOCK_DEVICE
    } else if ft.is_char_device() {
        FILETYPE_CHARACTER_DEVICE
    } else if ft.is_file() {
        FILETYPE_REGULAR_FILE
    } else {
        FILETYPE_UNKNOWN
    }
}

fn filetype_of_mode(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FILETYPE_DIRECTORY,
        libc::S_IFLNK => FILETYPE_SYMBOLIC_LINK,
        libc::S_IFBLK => FILETYPE_BLOCK_DEVICE,
        libc::S_IFCHR => FILETYPE_CHARACTER_DEVICE,
        libc::S_IFREG => FILETYPE_REGULAR_FILE,
        _ => FILETYPE_UNKNOWN,
    }
}

fn nanos(t: std::io::Result<SystemTime>) -> u64 {
    match t.map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        _ => 0,
    }
}

/// A preview1 `filestat`.
struct Filestat {
    dev: u64,
    ino: u64,
    filetype: u8,
    nlink: u64,
    size: u64,
    atim: u64,
    mtim: u64,
    ctim: u64,
}

impl Filestat {
    fn of(meta: &std::fs::Metadata) -> Filestat {
        Filestat {
            dev: 1,
            ino: ino_hash(meta.dev(), meta.ino()),
            filetype: filetype_of(meta.file_type()),
            nlink: meta.nlink(),
            size: meta.size(),
            atim: nanos(meta.accessed()),
            mtim: nanos(meta.modified()),
            // wasmtime reports the birth time here (0 where unknown).
            ctim: nanos(meta.created()),
        }
    }

    fn stdio(filetype: u8) -> Filestat {
        Filestat {
            dev: 0,
            ino: 0,
            filetype,
            nlink: 0,
            size: 0,
            atim: 0,
            mtim: 0,
            ctim: 0,
        }
    }

    fn write(&self, m: &mut Mem<'_>, p: Ptr) -> Result<(), Errno> {
        m.check(p, 64)?;
        m.write_u64(p, self.dev)?;
        m.write_u64(p + 8, self.ino)?;
        m.write_u8(p + 16, self.filetype)?;
        m.write_u64(p + 24, self.nlink)?;
        m.write_u64(p + 32, self.size)?;
        m.write_u64(p + 40, self.atim)?;
        m.write_u64(p + 48, self.mtim)?;
        m.write_u64(p + 56, self.ctim)
    }
}

fn stdio_filetype(host_fd: i32) -> u8 {
    if sys::isatty(host_fd) {
        FILETYPE_CHARACTER_DEVICE
    } else {
        FILETYPE_UNKNOWN
    }
}

fn stdio_host_fd(kind: FdKind) -> i32 {
    match kind {
        FdKind::Stdin => 0,
        FdKind::Stdout => 1,
        _ => 2,
    }
}

/// `fstflags` -> (atime, mtime) updates; both "set" and "now" is `INVAL`.
fn time_specs(atim: u64, mtim: u64, fst: u32) -> Result<(TimeSpec, TimeSpec), Errno> {
    if fst & !0xf != 0 {
        return Err(Errno::INVAL);
    }
    let one = |set: u32, now: u32, t: u64| {
        if fst & set != 0 && fst & now != 0 {
            Err(Errno::INVAL)
        } else if fst & set != 0 {
            Ok(TimeSpec::At(t))
        } else if fst & now != 0 {
            Ok(TimeSpec::Now)
        } else {
            Ok(TimeSpec::Omit)
        }
    };
    Ok((
        one(FST_ATIM, FST_ATIM_NOW, atim)?,
        one(FST_MTIM, FST_MTIM_NOW, mtim)?,
    ))
}

/// A parsed `poll_oneoff` subscription.
enum Sub {
    Clock { deadline: Option<Instant> },
    Stdin,
    FileRead { fd: u32 },
    Write,
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
        })
    }

    /// The WASI state as plain data, for a snapshot: args, env, preopens, the
    /// fd table (each file's path relative to its preopen, flags, rights and
    /// offset), the free fd numbers, and the guest's monotonic time now.
    ///
    /// A file's path is its current location (found through
    /// `/proc/self/fd`, so renames after opening are followed) when that is
    /// inside its preopen, otherwise the path it was opened with.
    pub fn state(&self) -> WasiState {
        let fds = self
            .fds
            .values()
            .map(|d| {
                let mut e = d.entry.clone();
                if !e.is_preopen {
                    if let Some(p) = self.current_rel_path(d) {
                        e.rel_path = p;
                    }
                }
                if e.kind == FdKind::Stdin {
                    // Standard input from a file: how far the guest has read
                    // (a restore given the same file goes on from there).
                    e.offset = sys::regular_file_offset(0).unwrap_or(0);
                    e.size = sys::regular_file_size(0);
                }
                if e.kind == FdKind::File {
                    e.size = d.file.as_ref().and_then(|f| f.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len());
                }
                e
            })
            .collect();
        WasiState {
            args: self.args.clone(),
            env: self.env.clone(),
            preopens: self.preopens.clone(),
            fds,
            clock: ClockState {
                monotonic_last_ns: self.monotonic_now(),
            },
            free_fds: self.free.iter().copied().collect(),
        }
    }

    /// Why a checkpoint of this state could not be restored, if it could
    /// not: a file open on an fd was removed (no path leads to it, so a
    /// restore cannot reopen it, and what was written to it would be lost).
    /// Checkpointers refuse to write such a snapshot.
    pub fn unrestorable(&self) -> Option<String> {
        self.fds.values().find_map(|d| {
            let f = d.file.as_ref().filter(|_| d.entry.kind == FdKind::File)?;
            let m = f.metadata().ok()?;
            (m.nlink() == 0).then(|| {
                format!(
                    "fd {} (`{}`) is a file removed while open: a restore could not reopen it (its contents would be lost); close it before the checkpoint",
                    d.entry.fd, d.entry.rel_path
                )
            })
        })
    }

    fn current_rel_path(&self, d: &Desc) -> Option<String> {
        let file = d.file.as_ref()?;
        let root = self.roots_real.get(d.entry.preopen? as usize)?.as_ref()?;
        if file.metadata().ok()?.nlink() == 0 {
            return None; // unlinked: no path leads to it any more
        }
        let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
        let rel = link.strip_prefix(root).ok()?;
        let parts: Vec<&str> = rel
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<_>>()?;
        Some(parts.join("/"))
    }

    /// Rebuilds a context from a snapshot's state: reopens every preopen, and
    /// every file and directory at its path under its preopen with the same
    /// access mode, flags and offset. Files are never created or truncated
    /// here. The guest's monotonic clock continues from
    /// `state.clock.monotonic_last_ns`.
    pub fn from_state(state: &WasiState) -> Result<WasiCtx, WasiError> {
        let roots = state
            .preopens
            .iter()
            .map(|p| {
                open_preopen(p).map_err(|e| {
                    if std::path::Path::new(&p.host).is_absolute() {
                        e
                    } else {
                        // Relative to the directory the checkpointed program
                        // ran in, which the snapshot does not record.
                        WasiError::new(format!(
                            "{} (the snapshot names it as it was given, relative to the directory the checkpointed program ran in: restore from there, or give --dir an absolute path)",
                            e.message()
                        ))
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut fds = BTreeMap::new();
        for e in &state.fds {
            if fds.contains_key(&e.fd) {
                return Err(WasiError::new(format!(
                    "the snapshot lists fd {} twice",
                    e.fd
                )));
            }
            // A preopen's fd is the preopened directory itself (it answers
            // `fd_prestat_get` with that preopen's name).
            if e.is_preopen
                && (e.kind != FdKind::Directory
                    || !e.rel_path.is_empty()
                    || e.preopen.is_none_or(|i| i as usize >= state.preopens.len()))
            {
                return Err(WasiError::new(format!(
                    "fd {} is marked as a preopen but is not a listed preopened directory ({:?}, preopen {:?}, path `{}`)",
                    e.fd, e.kind, e.preopen, e.rel_path
                )));
            }
            let file = match e.kind {
                FdKind::Stdin => {
                    // Read from a file up to `offset`: a restore whose own
                    // standard input is a file goes on from there (from a
                    // pipe or a terminal it reads what it is given).
                    if let (Some(was), Some(now)) = (e.size, sys::regular_file_size(0)) {
                        if was != now {
                            return Err(WasiError::new(format!(
                                "standard input is a file of {now} bytes; at the checkpoint it was a file of {was} bytes, read up to byte {}: give the restore the same input",
                                e.offset
                            )));
                        }
                    }
                    if e.offset > 0 {
                        sys::seek_regular_file(0, e.offset);
                    }
                    None
                }
                FdKind::Stdout | FdKind::Stderr => None,
                FdKind::File | FdKind::Directory => {
                    let idx = e.preopen.ok_or_else(|| {
                        WasiError::new(format!(
                            "fd {} (`{}`) belongs to no preopened directory",
                            e.fd, e.rel_path
                        ))
                    })?;
                    let root = roots.get(idx as usize).ok_or_else(|| {
                        WasiError::new(format!(
                            "fd {} refers to preopen #{idx}, which the snapshot does not list",
                            e.fd
                        ))
                    })?;
                    let host = &state.preopens[idx as usize].host;
                    let file = reopen(root, e).map_err(|err| WasiError::reopen(e, host, err))?;
                    if let Some(was) = e.size {
                        let now = file.metadata().map(|m| m.len()).unwrap_or(0);
                        if now != was {
                            return Err(WasiError::new(format!(
                                "`{}` (fd {}, under preopen `{host}`) has {now} bytes, at the checkpoint it had {was}: it changed after the checkpoint; put it back as it was (or restore a snapshot taken since)",
                                e.rel_path, e.fd
                            )));
                        }
                    }
                    Some(file)
                }
            };
            fds.insert(
                e.fd,
                Desc {
                    entry: e.clone(),
                    file,
                },
            );
        }
        Ok(WasiCtx {
            roots_real: state
                .preopens
                .iter()
                .map(|p| std::fs::canonicalize(&p.host).ok())
                .collect(),
            args: state.args.clone(),
            env: state.env.clone(),
            preopens: state.preopens.clone(),
            fds,
            free: state
                .free_fds
                .iter()
                .copied()
                .filter(|fd| !state.fds.iter().any(|e| e.fd == *fd))
                .collect(),
            mono_start: Instant::now(),
            mono_base: state.clock.monotonic_last_ns,
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
            F::FdAllocate => self.file(a(0)).and(Err(Errno::NOTSUP)),
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
            F::SockAccept | F::SockRecv | F::SockSend | F::SockShutdown => {
                self.desc(a(0)).and(Err(Errno::NOTSOCK))
            }
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
            FdKind::Directory => Err(Errno::BADF),
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

    fn monotonic_now(&self) -> u64 {
        let e = u64::try_from(self.mono_start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.mono_base.saturating_add(e)
    }

    fn realtime_now() -> Result<u64, Errno> {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Errno::OVERFLOW)?;
        u64::try_from(d.as_nanos()).map_err(|_| Errno::OVERFLOW)
    }

    // ---- args / environ --------------------------------------------------

    fn strings(&self, env: bool) -> Vec<Vec<u8>> {
        if env {
            self.env
                .iter()
                .map(|(k, v)| format!("{k}={v}").into_bytes())
                .collect()
        } else {
            self.args.iter().map(|a| a.clone().into_bytes()).collect()
        }
    }

    fn strings_sizes(
        &self,
        m: &mut Mem<'_>,
        env: bool,
        count_ptr: Ptr,
        size_ptr: Ptr,
    ) -> Result<(), Errno> {
        let s = self.strings(env);
        let count = u32::try_from(s.len()).map_err(|_| Errno::OVERFLOW)?;
        let size: usize = s.iter().map(|x| x.len() + 1).sum();
        let size = u32::try_from(size).map_err(|_| Errno::OVERFLOW)?;
        m.check(count_ptr, 4)?;
        m.check(size_ptr, 4)?;
        m.write_u32(count_ptr, count)?;
        m.write_u32(size_ptr, size)
    }

    fn strings_get(&self, m: &mut Mem<'_>, env: bool, ptrs: Ptr, buf: Ptr) -> Result<(), Errno> {
        let s = self.strings(env);
        let total: u64 = s.iter().map(|x| x.len() as u64 + 1).sum();
        m.check(ptrs, 4 * s.len() as u64)?;
        m.check(buf, total)?;
        let mut at = buf;
        for (i, x) in s.iter().enumerate() {
            m.write_u32(ptrs + 4 * i as u32, at)?;
            m.write_bytes(at, x)?;
            m.write_u8(at + x.len() as u32, 0)?;
            at = at.wrapping_add(x.len() as u32 + 1);
        }
        Ok(())
    }

    // ---- clocks ----------------------------------------------------------

    fn clock_res_get(&self, m: &mut Mem<'_>, id: u32, out: Ptr) -> Result<(), Errno> {
        match id {
            CLOCK_REALTIME | CLOCK_MONOTONIC => m.write_u64(out, 1),
            // wasmtime has no CPU-time clocks.
            CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => Err(Errno::BADF),
            _ => Err(Errno::INVAL),
        }
    }

    fn clock_time_get(&self, m: &mut Mem<'_>, id: u32, out: Ptr) -> Result<(), Errno> {
        let t = match id {
            CLOCK_REALTIME => Self::realtime_now()?,
            CLOCK_MONOTONIC => self.monotonic_now(),
            CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => return Err(Errno::BADF),
            _ => return Err(Errno::INVAL),
        };
        m.write_u64(out, t)
    }

    // ---- fd_* ------------------------------------------------------------

    fn fd_advise(&self, fd: u32, offset: u64, len: u64, advice: u32) -> Result<(), Errno> {
        let advice = match advice {
            0 => libc::POSIX_FADV_NORMAL,
            1 => libc::POSIX_FADV_SEQUENTIAL,
            2 => libc::POSIX_FADV_RANDOM,
            3 => libc::POSIX_FADV_WILLNEED,
            4 => libc::POSIX_FADV_DONTNEED,
            5 => libc::POSIX_FADV_NOREUSE,
            _ => return Err(Errno::INVAL),
        };
        let f = self.file(fd)?;
        sys::fadvise(f.as_fd(), offset, len, advice).map_err(host_err)
    }

    fn fd_close(&mut self, fd: u32) -> Result<(), Errno> {
        self.fds.remove(&fd).ok_or(Errno::BADF)?;
        self.free.insert(fd);
        Ok(())
    }

    fn fd_fdstat_get(&self, m: &mut Mem<'_>, fd: u32, out: Ptr) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        let e = &d.entry;
        let (filetype, flags, base, inh) = match e.kind {
            FdKind::Stdin | FdKind::Stdout | FdKind::Stderr => (
                stdio_filetype(stdio_host_fd(e.kind)),
                0,
                e.rights_base,
                e.rights_inheriting,
            ),
            FdKind::Directory => (FILETYPE_DIRECTORY, 0, e.rights_base, e.rights_inheriting),
            FdKind::File => {
                let meta = d.host()?.metadata().map_err(errno::from_io)?;
                let r = rights::file(e.read, e.write);
                (
                    filetype_of(meta.file_type()),
                    e.fdflags & (FDFLAGS_APPEND | FDFLAGS_NONBLOCK),
                    r,
                    r,
                )
            }
        };
        m.check(out, 24)?;
        m.write_u8(out, filetype)?;
        m.write_u16(out + 2, flags)?;
        m.write_u64(out + 8, base)?;
        m.write_u64(out + 16, inh)
    }

    fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u32) -> Result<(), Errno> {
        let flags = u16::try_from(flags)
            .ok()
            .filter(|f| f & !0x1f == 0)
            .ok_or(Errno::INVAL)?;
        self.file(fd)?;
        if flags & (FDFLAGS_DSYNC | FDFLAGS_SYNC | FDFLAGS_RSYNC) != 0 {
            return Err(Errno::INVAL);
        }
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        d.entry.fdflags = flags & (FDFLAGS_APPEND | FDFLAGS_NONBLOCK);
        Ok(())
    }

    fn fd_fdstat_set_rights(&self, fd: u32) -> Result<(), Errno> {
        match self.desc(fd)?.entry.kind {
            FdKind::Stdin | FdKind::Stdout | FdKind::Stderr => Err(Errno::BADF),
            // wasmtime does not support changing rights.
            _ => Err(Errno::NOTSUP),
        }
    }

    fn fd_filestat_get(&self, m: &mut Mem<'_>, fd: u32, out: Ptr) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        let st = match d.entry.kind {
            FdKind::Stdin | FdKind::Stdout | FdKind::Stderr => {
                Filestat::stdio(stdio_filetype(stdio_host_fd(d.entry.kind)))
            }
            _ => Filestat::of(&d.host()?.metadata().map_err(errno::from_io)?),
        };
        st.write(m, out)
    }

    fn fd_filestat_set_times(&self, fd: u32, atim: u64, mtim: u64, fst: u32) -> Result<(), Errno> {
        let (a, mt) = time_specs(atim, mtim, fst)?;
        let d = self.desc(fd)?;
        if d.entry.is_preopen {
            // wasmtime holds preopens as O_PATH descriptors, which futimens
            // refuses.
            return Err(Errno::BADF);
        }
        let f = d.host()?;
        sys::futimens(f.as_fd(), a, mt).map_err(host_err)
    }

    fn fd_read(
        &mut self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        nread: Ptr,
    ) -> Result<(), Errno> {
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nread, 4)?;
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        let n = match d.entry.kind {
            FdKind::File => {
                let pos = d.entry.offset;
                let f = d.file.as_ref().ok_or(Errno::BADF)?;
                let n = f
                    .read_at(m.slice_mut(buf, len)?, pos)
                    .map_err(errno::from_io)?;
                d.entry.offset = pos.checked_add(n as u64).ok_or(Errno::OVERFLOW)?;
                n
            }
            FdKind::Stdin => {
                if len == 0 {
                    // wasmtime: a zero-length blocking read is "interrupted".
                    return Err(Errno::INTR);
                }
                sys::read(0, m.slice_mut(buf, len)?).map_err(host_err)?
            }
            _ => return Err(Errno::BADF),
        };
        m.write_u32(nread, n as u32)
    }

    fn fd_pread(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        offset: u64,
        nread: Ptr,
    ) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        let f = match d.entry.kind {
            FdKind::File => d.host()?,
            FdKind::Stdin => return Err(Errno::SPIPE),
            _ => return Err(Errno::BADF),
        };
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nread, 4)?;
        let n = f
            .read_at(m.slice_mut(buf, len)?, offset)
            .map_err(errno::from_io)?;
        m.write_u32(nread, n as u32)
    }

    fn fd_write(
        &mut self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        nwritten: Ptr,
    ) -> Result<(), Errno> {
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nwritten, 4)?;
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        let data = m.slice(buf, len)?;
        let n = match d.entry.kind {
            FdKind::File => {
                let f = d.file.as_ref().ok_or(Errno::BADF)?;
                if d.entry.fdflags & FDFLAGS_APPEND != 0 {
                    let n = sys::pwrite_append(f, data).map_err(host_err)?;
                    d.entry.offset = f.metadata().map_err(errno::from_io)?.len();
                    n
                } else {
                    let pos = d.entry.offset;
                    let n = f.write_at(data, pos).map_err(errno::from_io)?;
                    d.entry.offset = pos.checked_add(n as u64).ok_or(Errno::OVERFLOW)?;
                    n
                }
            }
            FdKind::Stdout | FdKind::Stderr => {
                sys::write_all(stdio_host_fd(d.entry.kind), data).map_err(host_err)?;
                data.len()
            }
            _ => return Err(Errno::BADF),
        };
        m.write_u32(nwritten, n as u32)
    }

    fn fd_pwrite(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        offset: u64,
        nwritten: Ptr,
    ) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        let f = match d.entry.kind {
            FdKind::File => d.host()?,
            FdKind::Stdout | FdKind::Stderr => return Err(Errno::SPIPE),
            _ => return Err(Errno::BADF),
        };
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nwritten, 4)?;
        let data = m.slice(buf, len)?;
        // Like Linux pwrite(2) on an O_APPEND file, append mode wins.
        let n = if d.entry.fdflags & FDFLAGS_APPEND != 0 {
            sys::pwrite_append(f, data).map_err(host_err)?
        } else {
            f.write_at(data, offset).map_err(errno::from_io)?
        };
        m.write_u32(nwritten, n as u32)
    }

    fn fd_prestat_get(&self, m: &mut Mem<'_>, fd: u32, out: Ptr) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        if !d.entry.is_preopen {
            return Err(Errno::BADF);
        }
        let name = &self.preopens[d.entry.preopen.unwrap_or(0) as usize].guest;
        let len = u32::try_from(name.len()).map_err(|_| Errno::OVERFLOW)?;
        m.check(out, 8)?;
        m.write_u8(out, 0)?; // preopentype::dir
        m.write_u32(out + 4, len)
    }

    fn fd_prestat_dir_name(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        buf: Ptr,
        buf_len: u32,
    ) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        if !d.entry.is_preopen {
            return Err(Errno::NOTDIR);
        }
        let name = &self.preopens[d.entry.preopen.unwrap_or(0) as usize].guest;
        if name.len() > buf_len as usize {
            return Err(Errno::NAMETOOLONG);
        }
        m.write_bytes(buf, name.as_bytes())
    }

    fn fd_readdir(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        buf: Ptr,
        buf_len: u32,
        cookie: u64,
        used: Ptr,
    ) -> Result<(), Errno> {
        let dir = self.dir(fd)?.host()?;
        m.check(buf, u64::from(buf_len))?;
        m.check(used, 4)?;
        let self_meta = dir.metadata().map_err(errno::from_io)?;
        let self_ino = ino_hash(self_meta.dev(), self_meta.ino());
        let mut entries: Vec<(u64, u8, Vec<u8>)> = vec![
            (self_ino, FILETYPE_DIRECTORY, b".".to_vec()),
            (self_ino, FILETYPE_DIRECTORY, b"..".to_vec()),
        ];
        for name in sys::read_dir_names(dir.as_fd()).map_err(host_err)? {
            if std::str::from_utf8(&name).is_err() {
                return Err(Errno::ILSEQ);
            }
            let (dev, ino, mode) = sys::lstat_at(dir.as_fd(), &name).map_err(host_err)?;
            entries.push((ino_hash(dev, ino), filetype_of_mode(mode), name));
        }
        let cookie = usize::try_from(cookie).map_err(|_| Errno::OVERFLOW)?;
        // Serialize like wasmtime: each header, then the name, both cut off
        // where the buffer ends; a full buffer tells the guest to call again.
        let mut at = buf;
        let mut cap = buf_len;
        for (i, (ino, ty, name)) in entries.iter().enumerate().skip(cookie) {
            let mut header = [0u8; DIRENT_SIZE as usize];
            header[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            header[8..16].copy_from_slice(&ino.to_le_bytes());
            header[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
            header[20] = *ty;
            let n = cap.min(DIRENT_SIZE);
            m.write_bytes(at, &header[..n as usize])?;
            at = at.wrapping_add(n);
            cap -= n;
            if cap == 0 {
                return m.write_u32(used, buf_len);
            }
            let n = cap.min(name.len() as u32);
            m.write_bytes(at, &name[..n as usize])?;
            at = at.wrapping_add(n);
            cap -= n;
            if cap == 0 {
                return m.write_u32(used, buf_len);
            }
        }
        m.write_u32(used, buf_len - cap)
    }

    fn fd_renumber(&mut self, from: u32, to: u32) -> Result<(), Errno> {
        if !self.fds.contains_key(&from) || !self.fds.contains_key(&to) {
            return Err(Errno::BADF);
        }
        if from != to {
            let mut d = self.fds.remove(&from).ok_or(Errno::BADF)?;
            self.free.insert(from);
            self.free.remove(&to);
            d.entry.fd = to;
            self.fds.insert(to, d); // drops (closes) what `to` was
        }
        Ok(())
    }

    fn fd_seek(
        &mut self,
        m: &mut Mem<'_>,
        fd: u32,
        offset: i64,
        whence: u32,
        out: Ptr,
    ) -> Result<(), Errno> {
        if whence > 2 {
            return Err(Errno::INVAL);
        }
        m.check(out, 8)?;
        let d = self.seekable(fd)?;
        let pos = match whence {
            0 => u64::try_from(offset).map_err(|_| Errno::INVAL)?,
            1 => d
                .entry
                .offset
                .checked_add_signed(offset)
                .ok_or(Errno::INVAL)?,
            _ => {
                let size = d.host()?.metadata().map_err(errno::from_io)?.len();
                size.checked_add_signed(offset).ok_or(Errno::INVAL)?
            }
        };
        d.entry.offset = pos;
        m.write_u64(out, pos)
    }

    fn fd_tell(&mut self, m: &mut Mem<'_>, fd: u32, out: Ptr) -> Result<(), Errno> {
        let pos = self.seekable(fd)?.entry.offset;
        m.write_u64(out, pos)
    }

    // ---- path_* ----------------------------------------------------------

    fn path_create_directory(&self, m: &mut Mem<'_>, fd: u32, p: Ptr, l: u32) -> Result<(), Errno> {
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        let parent = open_parent(dir, path::strip_dir_suffix(path.as_bytes()))?;
        sys::mkdirat(parent.fd(), &parent.name, 0o777).map_err(host_err)
    }

    fn path_filestat_get(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        flags: u32,
        p: Ptr,
        l: u32,
        out: Ptr,
    ) -> Result<(), Errno> {
        if flags & !LOOKUP_SYMLINK_FOLLOW != 0 {
            return Err(Errno::INVAL);
        }
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        m.check(out, 64)?;
        let meta = stat_at(dir, path.as_bytes(), flags & LOOKUP_SYMLINK_FOLLOW != 0)?;
        Filestat::of(&meta).write(m, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn path_filestat_set_times(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        flags: u32,
        p: Ptr,
        l: u32,
        atim: u64,
        mtim: u64,
        fst: u32,
    ) -> Result<(), Errno> {
        let (a, mt) = time_specs(atim, mtim, fst)?;
        if flags & !LOOKUP_SYMLINK_FOLLOW != 0 {
            return Err(Errno::INVAL);
        }
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        if flags & LOOKUP_SYMLINK_FOLLOW != 0 {
            // Like cap-std: open for writing, else for reading, then futimens.
            let nb = libc::O_NONBLOCK;
            let f = match open_beneath(dir, path.as_bytes(), libc::O_WRONLY | nb, 0, true) {
                Err(e) if e == Errno::ACCES || e == Errno::ISDIR => {
                    open_beneath(dir, path.as_bytes(), libc::O_RDONLY | nb, 0, true)?
                }
                r => r?,
            };
            sys::futimens(f.as_fd(), a, mt).map_err(host_err)
        } else {
            let parent = open_parent(dir, path.as_bytes())?;
            sys::utimensat_nofollow(parent.fd(), &parent.name, a, mt).map_err(host_err)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn path_link(
        &self,
        m: &mut Mem<'_>,
        old_fd: u32,
        old_flags: u32,
        op: Ptr,
        ol: u32,
        new_fd: u32,
        np: Ptr,
        nl: u32,
    ) -> Result<(), Errno> {
        if old_flags & !LOOKUP_SYMLINK_FOLLOW != 0 {
            return Err(Errno::INVAL);
        }
        let old_dir = self.dir_fd(old_fd)?;
        let new_dir = self.dir_fd(new_fd)?;
        let old = m.read_str(op, ol)?;
        let new = m.read_str(np, nl)?;
        if old_flags & LOOKUP_SYMLINK_FOLLOW != 0 {
            return Err(Errno::INVAL);
        }
        let op = open_parent(old_dir, old.as_bytes())?;
        let np = open_parent(new_dir, new.as_bytes())?;
        sys::linkat(op.fd(), &op.name, np.fd(), &np.name).map_err(host_err)
    }

    #[allow(clippy::too_many_arguments)]
    fn path_open(
        &mut self,
        m: &mut Mem<'_>,
        dirfd: u32,
        dirflags: u32,
        p: Ptr,
        l: u32,
        oflags: u32,
        rights_base: u64,
        fdflags: u32,
        out: Ptr,
    ) -> Result<(), Errno> {
        let path = m.read_str(p, l)?;
        if dirflags & !LOOKUP_SYMLINK_FOLLOW != 0 || oflags & !0xf != 0 || fdflags & !0x1f != 0 {
            return Err(Errno::INVAL);
        }
        if rights_base & !rights::ALL != 0 {
            return Err(Errno::INVAL);
        }
        m.check(out, 4)?;
        let d = self.desc(dirfd)?;
        match d.entry.kind {
            FdKind::Directory => {}
            FdKind::File => return Err(Errno::NOTDIR),
            _ => return Err(Errno::BADF),
        }
        let fdflags = fdflags as u16;
        if fdflags & (FDFLAGS_SYNC | FDFLAGS_DSYNC | FDFLAGS_RSYNC) != 0 {
            return Err(Errno::NOTSUP);
        }
        if oflags & OFLAGS_DIRECTORY != 0
            && oflags & (OFLAGS_CREAT | OFLAGS_EXCL | OFLAGS_TRUNC) != 0
        {
            return Err(Errno::INVAL);
        }
        // wasmtime derives the access mode from the rights and oflags.
        let creat = oflags & OFLAGS_CREAT != 0;
        let trunc = oflags & OFLAGS_TRUNC != 0;
        let want_write = rights_base & rights::FD_WRITE != 0;
        let write = want_write || creat || trunc;
        let read = rights_base & rights::FD_READ != 0 || !want_write;
        let mut flags = match (read, write) {
            (true, true) => libc::O_RDWR,
            (false, true) => libc::O_WRONLY,
            _ => libc::O_RDONLY,
        };
        if creat {
            flags |= libc::O_CREAT;
            if oflags & OFLAGS_EXCL != 0 {
                flags |= libc::O_EXCL;
            }
        }
        if trunc {
            flags |= libc::O_TRUNC;
        }
        if oflags & OFLAGS_DIRECTORY != 0 {
            flags |= libc::O_DIRECTORY;
        }
        let follow = dirflags & LOOKUP_SYMLINK_FOLLOW != 0;
        let fd = open_beneath(d.host()?.as_fd(), path.as_bytes(), flags, 0o666, follow)?;
        let file = File::from(fd);
        let is_dir = file.metadata().map_err(errno::from_io)?.is_dir();
        let preopen = d.entry.preopen.unwrap_or(0);
        let rel_path = join_rel(&d.entry.rel_path, &path);
        let new_fd = self.alloc_fd()?;
        let entry = if is_dir {
            dir_entry(new_fd, preopen, rel_path, false)
        } else {
            let r = rights::file(read, write);
            FdEntry {
                fd: new_fd,
                kind: FdKind::File,
                preopen: Some(preopen),
                rel_path,
                read,
                write,
                fdflags: fdflags & (FDFLAGS_APPEND | FDFLAGS_NONBLOCK),
                rights_base: r,
                rights_inheriting: r,
                offset: 0,
                is_preopen: false,
                size: None,
            }
        };
        self.fds.insert(
            new_fd,
            Desc {
                entry,
                file: Some(file),
            },
        );
        m.write_u32(out, new_fd)
    }

    #[allow(clippy::too_many_arguments)]
    fn path_readlink(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        p: Ptr,
        l: u32,
        buf: Ptr,
        buf_len: u32,
        used: Ptr,
    ) -> Result<(), Errno> {
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        let parent = open_parent(dir, path.as_bytes())?;
        let mut target = sys::readlinkat(parent.fd(), &parent.name).map_err(host_err)?;
        if target.first() == Some(&b'/') {
            return Err(Errno::PERM); // cap-std refuses to reveal absolute links
        }
        if std::str::from_utf8(&target).is_err() {
            return Err(Errno::ILSEQ);
        }
        target.truncate(buf_len as usize);
        m.check(used, 4)?;
        m.write_bytes(buf, &target)?;
        m.write_u32(used, target.len() as u32)
    }

    fn path_remove(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        p: Ptr,
        l: u32,
        flags: i32,
    ) -> Result<(), Errno> {
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        let parent = open_parent(dir, path.as_bytes())?;
        sys::unlinkat(parent.fd(), &parent.name, flags).map_err(host_err)
    }

    #[allow(clippy::too_many_arguments)]
    fn path_rename(
        &self,
        m: &mut Mem<'_>,
        old_fd: u32,
        op: Ptr,
        ol: u32,
        new_fd: u32,
        np: Ptr,
        nl: u32,
    ) -> Result<(), Errno> {
        let old_dir = self.dir_fd(old_fd)?;
        let new_dir = self.dir_fd(new_fd)?;
        let old = m.read_str(op, ol)?;
        let new = m.read_str(np, nl)?;
        // cap-std: trailing slashes are ignored for finding the parents and
        // handed back to the kernel on the final names.
        let old_p = open_parent(old_dir, path::strip_dir_suffix(old.as_bytes()))?;
        let new_p = open_parent(new_dir, path::strip_dir_suffix(new.as_bytes()))?;
        let with_slash = |name: &[u8], orig: &str| {
            let mut n = name.to_vec();
            if orig.ends_with('/') {
                n.push(b'/');
            }
            n
        };
        let on = with_slash(&old_p.name, &old);
        let nn = with_slash(&new_p.name, &new);
        sys::renameat(old_p.fd(), &on, new_p.fd(), &nn).map_err(host_err)
    }

    fn path_symlink(
        &self,
        m: &mut Mem<'_>,
        op: Ptr,
        ol: u32,
        fd: u32,
        np: Ptr,
        nl: u32,
    ) -> Result<(), Errno> {
        let dir = self.dir_fd(fd)?;
        let target = m.read_str(op, ol)?;
        let new = m.read_str(np, nl)?;
        if target.starts_with('/') {
            return Err(Errno::PERM); // a link out of the sandbox
        }
        let parent = open_parent(dir, new.as_bytes())?;
        sys::symlinkat(target.as_bytes(), parent.fd(), &parent.name).map_err(host_err)
    }

    // ---- poll_oneoff -----------------------------------------------------

    fn poll_oneoff(
        &mut self,
        m: &mut Mem<'_>,
        subs: Ptr,
        events: Ptr,
        n: u32,
        nevents: Ptr,
    ) -> Result<(), Errno> {
        if n == 0 {
            return Err(Errno::INVAL);
        }
        m.check(subs, u64::from(n) * u64::from(SUBSCRIPTION_SIZE))?;
        m.check(events, u64::from(n) * u64::from(EVENT_SIZE))?;
        m.check(nevents, 4)?;
        // Read all subscriptions: (userdata, tag, payload).
        let mut raw = Vec::with_capacity(n as usize);
        for i in 0..n {
            let s = subs + i * SUBSCRIPTION_SIZE;
            let userdata = m.read_u64(s)?;
            let tag = m.read_u8(s + 8)?;
            match tag {
                0 => {
                    let id = m.read_u32(s + 16)?;
                    let timeout = m.read_u64(s + 24)?;
                    let flags = m.read_u16(s + 40)?;
                    if id > CLOCK_THREAD_CPUTIME || flags & !SUBCLOCK_ABSTIME != 0 {
                        return Err(Errno::INVAL);
                    }
                    raw.push((userdata, tag, id, timeout, flags));
                }
                1 | 2 => raw.push((userdata, tag, m.read_u32(s + 16)?, 0, 0)),
                _ => return Err(Errno::INVAL),
            }
        }
        // wasmtime's fast path: a single relative timer just sleeps.
        if let [(userdata, 0, _, timeout, flags)] = raw[..] {
            if flags & SUBCLOCK_ABSTIME == 0 {
                std::thread::sleep(Duration::from_nanos(timeout));
                write_event(m, events, userdata, EVENTTYPE_CLOCK, 1, 0)?;
                return m.write_u32(nevents, 1);
            }
        }
        let now = Instant::now();
        let mut parsed = Vec::with_capacity(raw.len());
        for &(_, tag, a, timeout, flags) in &raw {
            let sub = match tag {
                0 => {
                    let abs = flags & SUBCLOCK_ABSTIME != 0;
                    let wait = match (a, abs) {
                        (CLOCK_MONOTONIC, false) | (CLOCK_REALTIME, false) => Some(timeout),
                        (CLOCK_MONOTONIC, true) => {
                            // Guest monotonic time -> time left from now.
                            Some(timeout.saturating_sub(self.monotonic_now()))
                        }
                        (CLOCK_REALTIME, true) => {
                            Some(timeout.saturating_sub(Self::realtime_now()?))
                        }
                        _ => return Err(Errno::INVAL),
                    };
                    Sub::Clock {
                        deadline: wait.and_then(|ns| now.checked_add(Duration::from_nanos(ns))),
                    }
                }
                1 => {
                    let d = self.desc(a)?;
                    match d.entry.kind {
                        FdKind::Stdin => Sub::Stdin,
                        FdKind::File => Sub::FileRead { fd: a },
                        _ => return Err(Errno::BADF),
                    }
                }
                _ => match self.desc(a)?.entry.kind {
                    FdKind::Stdout | FdKind::Stderr | FdKind::File => Sub::Write,
                    _ => return Err(Errno::BADF),
                },
            };
            parsed.push(sub);
        }
        // Wait until something is ready: files and stdout are always ready,
        // stdin when it has data, timers at their deadline.
        let always_ready = parsed
            .iter()
            .any(|s| matches!(s, Sub::FileRead { .. } | Sub::Write));
        let watches_stdin = parsed.iter().any(|s| matches!(s, Sub::Stdin));
        let earliest = parsed
            .iter()
            .filter_map(|s| match s {
                Sub::Clock { deadline } => Some(*deadline),
                _ => None,
            })
            .min_by(|a, b| match (a, b) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) => x.cmp(y),
            });
        let mut stdin_ready = false;
        if !always_ready {
            let timeout = earliest.map(|d| d.map(|d| d.saturating_duration_since(Instant::now())));
            match (watches_stdin, timeout) {
                (true, t) => stdin_ready = sys::poll_readable(0, t.flatten()),
                (false, Some(Some(t))) => std::thread::sleep(t),
                (false, _) => {
                    // Only timers that never fire: block forever, as the host would.
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
            }
        } else if watches_stdin {
            stdin_ready = sys::poll_readable(0, Some(Duration::ZERO));
        }
        let now = Instant::now();
        let mut count = 0u32;
        for (sub, &(userdata, tag, _, _, _)) in parsed.iter().zip(&raw) {
            let ev = events + count * EVENT_SIZE;
            let written = match sub {
                Sub::Clock { deadline } => {
                    if deadline.is_some_and(|d| d <= now) {
                        write_event(m, ev, userdata, EVENTTYPE_CLOCK, 0, 0)?;
                        true
                    } else {
                        false
                    }
                }
                Sub::Stdin => {
                    if stdin_ready {
                        write_event(m, ev, userdata, EVENTTYPE_FD_READ, 1, 0)?;
                    }
                    stdin_ready
                }
                Sub::FileRead { fd } => {
                    let d = self.desc(*fd)?;
                    let size = d.host()?.metadata().map_err(errno::from_io)?.len();
                    let flags = if size <= d.entry.offset {
                        EVENTRW_HANGUP
                    } else {
                        0
                    };
                    write_event(m, ev, userdata, EVENTTYPE_FD_READ, 1, flags)?;
                    true
                }
                Sub::Write => {
                    debug_assert_eq!(tag, 2);
                    write_event(m, ev, userdata, EVENTTYPE_FD_WRITE, 1, 0)?;
                    true
                }
            };
            if written {
                count += 1;
            }
        }
        m.write_u32(nevents, count)
    }
}

/// Writes one `event` (only its fields: padding is left as it was).
fn write_event(
    m: &mut Mem<'_>,
    at: Ptr,
    userdata: u64,
    ty: u8,
    nbytes: u64,
    flags: u16,
) -> Result<(), Errno> {
    m.write_u64(at, userdata)?;
    m.write_u16(at + 8, 0)?;
    m.write_u8(at + 10, ty)?;
    m.write_u64(at + 16, nbytes)?;
    m.write_u16(at + 24, flags)
}

/// `stat` of `path` under `dir`, as cap-std does it (a single component
/// without following links is looked up directly).
fn stat_at(dir: BorrowedFd<'_>, path: &[u8], follow: bool) -> Result<std::fs::Metadata, Errno> {
    let fd = match (follow, path::single_component(path)) {
        (false, Some(name)) => {
            sys::openat(dir, &name, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(host_err)?
        }
        _ => open_beneath(dir, path, libc::O_PATH, 0, follow)?,
    };
    File::from(fd).metadata().map_err(errno::from_io)
}

/// Reopens a file or directory of a snapshot beneath its preopen.
fn reopen(root: &File, e: &FdEntry) -> Result<File, Errno> {
    let mut flags = match (e.kind, e.read, e.write) {
        (FdKind::Directory, _, _) => libc::O_RDONLY | libc::O_DIRECTORY,
        (_, true, true) => libc::O_RDWR,
        (_, false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    if e.kind == FdKind::File {
        flags |= libc::O_NOCTTY;
    }
    let fd = if e.rel_path.is_empty() {
        sys::openat(root.as_fd(), b".", flags, 0).map_err(host_err)?
    } else {
        open_beneath(root.as_fd(), e.rel_path.as_bytes(), flags, 0, true)?
    };
    let file = File::from(fd);
    let is_dir = file.metadata().map_err(errno::from_io)?.is_dir();
    if e.kind == FdKind::File && is_dir {
        return Err(Errno::ISDIR);
    }
    Ok(file)
}
