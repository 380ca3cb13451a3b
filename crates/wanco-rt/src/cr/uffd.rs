//! The part of the Linux `userfaultfd` ABI (include/uapi/linux/userfaultfd.h)
//! that both of its users here share: [`super::pager`] (lazy restore,
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
