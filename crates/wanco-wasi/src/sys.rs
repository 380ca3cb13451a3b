//! Thin, checked wrappers over the `*at` family of Linux system calls.
//!
//! Every `unsafe` block of the crate lives here. Each wrapper takes borrowed
//! file descriptors and byte-string paths, converts them to C strings, and
//! returns a host `errno` value on failure (translated to WASI by
//! [`crate::errno`]).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A host `errno` value.
pub(crate) type HostErr = i32;

fn last_errno() -> HostErr {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Converts a path to a C string; an interior NUL is `EINVAL` (as Rust's
/// libstd reports it).
pub(crate) fn cstr(path: &[u8]) -> Result<CString, HostErr> {
    CString::new(path).map_err(|_| libc::EINVAL)
}

/// `openat(dir, path, flags | O_CLOEXEC, mode)`.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    path: &[u8],
    flags: i32,
    mode: u32,
) -> Result<OwnedFd, HostErr> {
    let c = cstr(path)?;
    loop {
        // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
        // `dir` is a live descriptor borrowed for the duration of the call.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd >= 0 {
            // SAFETY: `openat` just returned this descriptor; nobody else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = last_errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// `readlinkat(dir, path)`: the target of a symbolic link.
pub(crate) fn readlinkat(dir: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<u8>, HostErr> {
    let c = cstr(path)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `buf` is a writable buffer of `buf.len()` bytes and `c` is a
        // valid C string; both outlive the call.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(last_errno());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        // Possibly truncated: retry with a larger buffer.
        if buf.len() >= 1 << 20 {
            return Err(libc::ENAMETOOLONG);
        }
        let len = buf.len() * 4;
        buf.resize(len, 0);
    }
}

fn check(ret: libc::c_int) -> Result<(), HostErr> {
    if ret == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// `mkdirat(dir, path, mode)`.
pub(crate) fn mkdirat(dir: BorrowedFd<'_>, path: &[u8], mode: u32) -> Result<(), HostErr> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid C string and `dir` a live descriptor.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })
}

/// `unlinkat(dir, path, flags)` (`flags` = 0 or `AT_REMOVEDIR`).
pub(crate) fn unlinkat(dir: BorrowedFd<'_>, path: &[u8], flags: i32) -> Result<(), HostErr> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid C string and `dir` a live descriptor.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })
}

/// `symlinkat(target, dir, path)`.
pub(crate) fn symlinkat(target: &[u8], dir: BorrowedFd<'_>, path: &[u8]) -> Result<(), HostErr> {
    let t = cstr(target)?;
    let c = cstr(path)?;
    // SAFETY: both strings are valid C strings and `dir` a live descriptor.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })
}

/// `linkat(old_dir, old, new_dir, new, 0)` (never follows a final symlink).
pub(crate) fn linkat(
    old_dir: BorrowedFd<'_>,
    old: &[u8],
    new_dir: BorrowedFd<'_>,
    new: &[u8],
) -> Result<(), HostErr> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: both strings are valid C strings, both descriptors are live.
    check(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })
}

/// `renameat(old_dir, old, new_dir, new)`.
pub(crate) fn renameat(
    old_dir: BorrowedFd<'_>,
    old: &[u8],
    new_dir: BorrowedFd<'_>,
    new: &[u8],
) -> Result<(), HostErr> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: both strings are valid C strings, both descriptors are live.
    check(unsafe {
        libc::renameat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
        )
    })
}

/// A timestamp update for [`utimensat`] / [`futimens`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum TimeSpec {
    /// Leave the timestamp alone.
    Omit,
    /// Set it to the current time.
    Now,
    /// Set it to this many nanoseconds since the Unix epoch.
    At(u64),
}

fn timespec(t: TimeSpec) -> libc::timespec {
    match t {
        TimeSpec::Omit => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        TimeSpec::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        TimeSpec::At(ns) => libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        },
    }
}

/// `utimensat(dir, path, times, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn utimensat_nofollow(
    dir: BorrowedFd<'_>,
    path: &[u8],
    atim: TimeSpec,
    mtim: TimeSpec,
) -> Result<(), HostErr> {
    let c = cstr(path)?;
    let times = [timespec(atim), timespec(mtim)];
    // SAFETY: `times` is an array of two timespecs and `c` a valid C string,
    // both alive for the call; `dir` is a live descriptor.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// `futimens(fd, times)`.
pub(crate) fn futimens(fd: BorrowedFd<'_>, atim: TimeSpec, mtim: TimeSpec) -> Result<(), HostErr> {
    let times = [timespec(atim), timespec(mtim)];
    // SAFETY: `times` is an array of two timespecs alive for the call.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })
}

/// `posix_fadvise(fd, offset, len, advice)`.
pub(crate) fn fadvise(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: u64,
    advice: i32,
) -> Result<(), HostErr> {
    let off = i64::try_from(offset).map_err(|_| libc::EINVAL)?;
    let len = i64::try_from(len).map_err(|_| libc::EINVAL)?;
    // SAFETY: plain system call on a live descriptor, no pointers involved.
    let r = unsafe {
        libc::posix_fadvise(
            fd.as_raw_fd(),
            off as libc::off_t,
            len as libc::off_t,
            advice,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(r)
    }
}

/// Writes `buf` at the end of the file, atomically where the kernel allows it
/// (`pwritev2(RWF_APPEND)`), without moving the descriptor's own offset.
pub(crate) fn pwrite_append(file: &File, buf: &[u8]) -> Result<usize, HostErr> {
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    loop {
        // SAFETY: `iov` describes `buf`, which stays borrowed (and is only
        // read) for the duration of the call.
        let n = unsafe { libc::pwritev2(file.as_raw_fd(), &iov, 1, -1, libc::RWF_APPEND) };
        if n >= 0 {
            return Ok(n as usize);
        }
        match last_errno() {
            libc::EINTR => continue,
            libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL => break,
            e => return Err(e),
        }
    }
    // Kernels without RWF_APPEND (or emulators): write at the current size.
    use std::os::unix::fs::FileExt;
    let size = file.metadata().map_err(io_errno)?.len();
    file.write_at(buf, size).map_err(io_errno)
}

/// The raw `errno` of an I/O error (`EIO` if it has none).
pub(crate) fn io_errno(e: std::io::Error) -> HostErr {
    match e.raw_os_error() {
        Some(n) => n,
        None => match e.kind() {
            std::io::ErrorKind::NotFound => libc::ENOENT,
            std::io::ErrorKind::PermissionDenied => libc::EPERM,
            std::io::ErrorKind::AlreadyExists => libc::EEXIST,
            std::io::ErrorKind::InvalidInput => libc::EINVAL,
            _ => libc::EIO,
        },
    }
}

/// The names in directory `dir` (without `.` and `..`), in the order the
/// host file system returns them.
pub(crate) fn read_dir_names(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, HostErr> {
    // A fresh descriptor, so that the listing always starts at the beginning
    // and the guest's descriptor is left untouched.
    let fd = openat(dir, b".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` is an open directory descriptor that we own; on success
    // `fdopendir` takes it over (it is closed by `closedir` below).
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        let e = last_errno();
        // SAFETY: `fdopendir` failed, so we still own `raw`.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        // `readdir` signals errors only through errno.
        // SAFETY: `__errno_location` returns this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is a live DIR stream owned by this function.
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            // SAFETY: reading this thread's errno slot.
            let e = unsafe { *libc::__errno_location() };
            break if e == 0 { Ok(()) } else { Err(e) };
        }
        // SAFETY: `ent` points to a valid dirent64 whose `d_name` is a
        // NUL-terminated string; it stays valid until the next `readdir64`.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    };
    // SAFETY: `dirp` is live and closed exactly once, here.
    unsafe { libc::closedir(dirp) };
    result.map(|()| names)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: `(st_dev, st_ino, st_mode)`.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(u64, u64, u32), HostErr> {
    let c = cstr(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable storage for one `struct stat` and `c` a valid C
    // string, both alive for the call; `dir` is a live descriptor.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(last_errno());
    }
    // SAFETY: `fstatat` succeeded, so it initialized `st`.
    let st = unsafe { st.assume_init() };
    Ok((st.st_dev, st.st_ino, st.st_mode))
}

/// Fills `buf` with random bytes from the kernel.
pub(crate) fn getrandom(buf: &mut [u8]) -> Result<(), HostErr> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            match last_errno() {
                libc::EINTR => continue,
                libc::ENOSYS => return urandom(rest),
                e => return Err(e),
            }
        }
        done += n as usize;
    }
    Ok(())
}

fn urandom(buf: &mut [u8]) -> Result<(), HostErr> {
    use std::io::Read;
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(io_errno)
}

/// `read(fd, buf)`, retried on `EINTR`.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize, HostErr> {
    loop {
        // SAFETY: `buf` is a writable buffer of `buf.len()` bytes; `fd` is one
        // of the process's standard descriptors (an invalid one gives EBADF).
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = last_errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// Writes all of `buf` to `fd` with `write(2)`, looping on short writes.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), HostErr> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a readable buffer of `buf.len()` bytes; `fd` is one
        // of the process's standard descriptors (an invalid one gives EBADF).
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = last_errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(libc::EIO);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// The offset of `fd` if it is a regular file (standard input redirected
/// from a file), else `None` (a pipe, a terminal, `/dev/null`).
pub(crate) fn regular_file_offset(fd: RawFd) -> Option<u64> {
    regular_file_size(fd)?;
    // SAFETY: lseek with SEEK_CUR and 0 only reads the offset.
    let off = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    (off >= 0).then_some(off as u64)
}

/// The size of `fd` if it is a regular file.
pub(crate) fn regular_file_size(fd: RawFd) -> Option<u64> {
    // SAFETY: `st` is a plain struct fstat fills.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        Some(st.st_size as u64)
    }
}

/// Move `fd` to `offset` if it is a regular file; whether it was moved.
pub(crate) fn seek_regular_file(fd: RawFd, offset: u64) -> bool {
    if regular_file_offset(fd).is_none() {
        return false;
    }
    let Ok(off) = libc::off_t::try_from(offset) else { return false };
    // SAFETY: lseek on a descriptor of ours; it only moves the offset.
    unsafe { libc::lseek(fd, off, libc::SEEK_SET) == off }
}

/// Whether `fd` is a terminal.
pub(crate) fn isatty(fd: RawFd) -> bool {
    // SAFETY: `isatty` only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// Waits until `fd` is readable or `timeout` passes (`None`: forever).
/// Returns whether it is readable (or at end of file / in error).
pub(crate) fn poll_readable(fd: RawFd, timeout: Option<std::time::Duration>) -> bool {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms: i32 = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                // Round up so that we never wake before the deadline.
                let ms = left.as_nanos().div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as i32
            }
        };
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd, alive for the call.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            return true;
        }
        if n < 0 && last_errno() != libc::EINTR {
            // Treat a failing poll as "ready": the read will report the error.
            return true;
        }
        if n == 0 && ms == 0 {
            return false;
        }
        if let Some(d) = deadline {
            if std::time::Instant::now() >= d && n == 0 {
                return false;
            }
        }
    }
}

/// Waits until one of `fds` is ready or `timeout` passes (`None`: forever),
/// restarting after a signal with the time that is left. Fills each
/// `revents`; returns how many are ready (0: the time passed).
pub(crate) fn poll_fds(
    fds: &mut [libc::pollfd],
    timeout: Option<std::time::Duration>,
) -> Result<usize, HostErr> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms: i32 = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                // Round up so that we never wake before the deadline.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfds,
        // alive for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = last_errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// How many bytes can be read from a socket without blocking (`FIONREAD`).
pub(crate) fn readable_bytes(fd: BorrowedFd<'_>) -> Result<u64, HostErr> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one `int` through the pointer, which is valid
    // for the call; `fd` is a live descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(n.max(0) as u64)
}
