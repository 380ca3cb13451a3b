//! The part of the Linux `userfaultfd` ABI (include/uapi/linux/userfaultfd.h)
//! that its users here share: [`super::pager`] and [`super::postcopy`] (lazy restore,
//! missing-page faults) and [`super::dirty`] (write-protection, dirty
//! tracking). The same on x86_64 and aarch64 (asm-generic ioctl numbers).
//! Declared here rather than taken from the `userfaultfd` crate: its -sys
//! crate runs bindgen (libclang) at build time, for every target, and the
//! runtime is cross-built for aarch64; `libc` has only the system call
//! number. Each user declares the requests only it makes.

pub(super) const UFFD_API: u64 = 0xAA;
pub(super) const UFFD_USER_MODE_ONLY: libc::c_int = 1;
pub(super) const UFFDIO_API: u64 = 0xC018_AA3F;
pub(super) const UFFDIO_REGISTER: u64 = 0xC020_AA00;

/// `struct uffdio_api`.
#[repr(C)]
pub(super) struct UffdioApi {
    pub api: u64,
    pub features: u64,
    pub ioctls: u64,
}

/// `struct uffdio_range`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct UffdioRange {
    pub start: u64,
    pub len: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
pub(super) struct UffdioRegister {
    pub range: UffdioRange,
    pub mode: u64,
    pub ioctls: u64,
}

/// Run a `userfaultfd` ioctl again while the kernel says "try again" (the
/// mapping was changing) or the call was interrupted; "already there"
/// (`EEXIST`: nothing to put in) is success.
pub(super) fn retry(mut f: impl FnMut() -> libc::c_int) -> Result<(), std::io::Error> {
    loop {
        if f() == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
            Some(libc::EEXIST) => return Ok(()),
            _ => return Err(e),
        }
    }
}
