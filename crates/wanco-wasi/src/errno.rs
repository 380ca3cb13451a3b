//! WASI preview1 `errno` values and the translation from host `errno`.
//!
//! The translation follows wasmtime's (`wasmtime-wasi`), so that a guest sees
//! the same error numbers under wanco as under `wasmtime run`: a fixed set of
//! host errors map to their WASI counterpart, everything else is `IO`.

/// A WASI `errno` value (`0` is success).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub u16);

#[allow(missing_docs)]
impl Errno {
    pub const SUCCESS: Errno = Errno(0);
    pub const TOOBIG: Errno = Errno(1);
    pub const ACCES: Errno = Errno(2);
    pub const AGAIN: Errno = Errno(6);
    pub const ALREADY: Errno = Errno(7);
    pub const BADF: Errno = Errno(8);
    pub const BUSY: Errno = Errno(10);
    pub const EXIST: Errno = Errno(20);
    pub const FAULT: Errno = Errno(21);
    pub const FBIG: Errno = Errno(22);
    pub const ILSEQ: Errno = Errno(25);
    pub const INPROGRESS: Errno = Errno(26);
    pub const INTR: Errno = Errno(27);
    pub const INVAL: Errno = Errno(28);
    pub const IO: Errno = Errno(29);
    pub const ISDIR: Errno = Errno(31);
    pub const LOOP: Errno = Errno(32);
    pub const MLINK: Errno = Errno(34);
    pub const NAMETOOLONG: Errno = Errno(37);
    pub const NOENT: Errno = Errno(44);
    pub const NOMEM: Errno = Errno(48);
    pub const NOSPC: Errno = Errno(51);
    pub const NOSYS: Errno = Errno(52);
    pub const NOTDIR: Errno = Errno(54);
    pub const NOTEMPTY: Errno = Errno(55);
    pub const NOTSOCK: Errno = Errno(57);
    pub const NOTSUP: Errno = Errno(58);
    pub const OVERFLOW: Errno = Errno(61);
    pub const PERM: Errno = Errno(63);
    pub const PIPE: Errno = Errno(64);
    pub const SPIPE: Errno = Errno(70);
    pub const NOTCAPABLE: Errno = Errno(76);
    pub const ADDRINUSE: Errno = Errno(3);
    pub const ADDRNOTAVAIL: Errno = Errno(4);
    pub const CONNABORTED: Errno = Errno(13);
    pub const CONNREFUSED: Errno = Errno(14);
    pub const CONNRESET: Errno = Errno(15);
    pub const HOSTUNREACH: Errno = Errno(23);
    pub const ISCONN: Errno = Errno(30);
    pub const MFILE: Errno = Errno(33);
    pub const NETDOWN: Errno = Errno(38);
    pub const NETRESET: Errno = Errno(39);
    pub const NETUNREACH: Errno = Errno(40);
    pub const NFILE: Errno = Errno(41);
    pub const NOBUFS: Errno = Errno(42);
    pub const NOTCONN: Errno = Errno(53);
    pub const TIMEDOUT: Errno = Errno(73);
}

impl Errno {
    /// A short plain-language description, e.g. "no such file or directory".
    pub fn describe(self) -> &'static str {
        match self.0 {
            0 => "success",
            1 => "argument list too long",
            2 => "permission denied",
            3 => "address in use",
            4 => "address not available",
            6 => "resource unavailable, try again",
            13 => "connection aborted",
            14 => "connection refused",
            15 => "connection reset",
            53 => "socket not connected",
            73 => "connection timed out",
            8 => "bad file descriptor",
            10 => "device or resource busy",
            20 => "file exists",
            21 => "bad address",
            22 => "file too large",
            25 => "illegal byte sequence",
            27 => "interrupted",
            28 => "invalid argument",
            29 => "I/O error",
            31 => "is a directory",
            32 => "too many levels of symbolic links",
            34 => "too many links",
            37 => "file name too long",
            44 => "no such file or directory",
            48 => "not enough memory",
            51 => "no space left on device",
            52 => "function not supported",
            54 => "not a directory",
            55 => "directory not empty",
            57 => "not a socket",
            58 => "not supported",
            61 => "value too large",
            63 => "operation not permitted",
            64 => "broken pipe",
            70 => "invalid seek",
            76 => "capabilities insufficient",
            _ => "error",
        }
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (errno {})", self.describe(), self.0)
    }
}

/// Translates a host (Linux) `errno` to WASI, as wasmtime does.
pub(crate) fn from_host(e: i32) -> Errno {
    match e {
        libc::EPIPE => Errno::PIPE,
        libc::EPERM => Errno::PERM,
        libc::ENOENT => Errno::NOENT,
        libc::ENOMEM => Errno::NOMEM,
        libc::EIO => Errno::IO,
        libc::EBADF => Errno::BADF,
        libc::EBUSY => Errno::BUSY,
        libc::EACCES => Errno::ACCES,
        libc::ENOTDIR => Errno::NOTDIR,
        libc::EISDIR => Errno::ISDIR,
        libc::EINVAL => Errno::INVAL,
        libc::EEXIST => Errno::EXIST,
        libc::EFBIG => Errno::FBIG,
        libc::ENOSPC => Errno::NOSPC,
        libc::ESPIPE => Errno::SPIPE,
        libc::EMLINK => Errno::MLINK,
        libc::ENAMETOOLONG => Errno::NAMETOOLONG,
        libc::ENOTEMPTY => Errno::NOTEMPTY,
        libc::ELOOP => Errno::LOOP,
        libc::EOVERFLOW => Errno::OVERFLOW,
        libc::EILSEQ => Errno::ILSEQ,
        libc::ENOTSUP => Errno::NOTSUP,
        libc::EALREADY => Errno::ALREADY,
        libc::EINPROGRESS => Errno::INPROGRESS,
        libc::EINTR => Errno::INTR,
        _ => Errno::IO,
    }
}

/// Translates a host `errno` of a socket call to WASI, as the preview1
/// host of wasmtime 36 (`wasi-common`, the one that offers sockets) does:
/// the network errors keep their meaning, `EAGAIN` is `AGAIN`.
pub(crate) fn from_host_net(e: i32) -> Errno {
    match e {
        libc::EAGAIN => Errno::AGAIN,
        libc::EADDRINUSE => Errno::ADDRINUSE,
        libc::EADDRNOTAVAIL => Errno::ADDRNOTAVAIL,
        libc::ECONNABORTED => Errno::CONNABORTED,
        libc::ECONNREFUSED => Errno::CONNREFUSED,
        libc::ECONNRESET => Errno::CONNRESET,
        libc::EHOSTUNREACH => Errno::HOSTUNREACH,
        libc::EISCONN => Errno::ISCONN,
        libc::EMFILE => Errno::MFILE,
        libc::ENETDOWN => Errno::NETDOWN,
        libc::ENETRESET => Errno::NETRESET,
        libc::ENETUNREACH => Errno::NETUNREACH,
        libc::ENFILE => Errno::NFILE,
        libc::ENOBUFS => Errno::NOBUFS,
        libc::ENOTCONN => Errno::NOTCONN,
        libc::ENOTSOCK => Errno::NOTSOCK,
        libc::ETIMEDOUT => Errno::TIMEDOUT,
        libc::EFAULT => Errno::FAULT,
        _ => from_host(e),
    }
}

/// Translates a host I/O error of a socket call to WASI.
pub(crate) fn from_io_net(e: std::io::Error) -> Errno {
    from_host_net(crate::sys::io_errno(e))
}

/// Translates a host I/O error to WASI.
pub(crate) fn from_io(e: std::io::Error) -> Errno {
    from_host(crate::sys::io_errno(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_errors() {
        assert_eq!(from_host(libc::ENOENT), Errno::NOENT);
        assert_eq!(from_host(libc::EXDEV), Errno::IO);
        assert_eq!(from_host(libc::EOPNOTSUPP), Errno::NOTSUP);
        assert_eq!(from_host_net(libc::EAGAIN), Errno::AGAIN);
        assert_eq!(from_host_net(libc::ECONNRESET), Errno::CONNRESET);
        assert_eq!(from_host_net(libc::ENOENT), Errno::NOENT);
    }
}
