//! Which pages of linear memory were written since the last snapshot, for
//! incremental snapshots (and pre-copy migration, which sends them round by
//! round).
//!
//! **How**: `userfaultfd` write-protection in asynchronous mode
//! (`UFFD_FEATURE_WP_ASYNC` with `UFFD_FEATURE_WP_UNPOPULATED`, Linux 6.7)
//! read and re-armed with one `PAGEMAP_SCAN` ioctl on `/proc/self/pagemap`
//! (`PM_SCAN_WP_MATCHING`: the written pages are reported and protected
//! again atomically). The kernel resolves a write to a protected page
//! itself — no handler thread, no signal — and from kernel mode too (a
//! `read` system call into linear memory is tracked like a store).
//!
//! **Why not the others** (measured on this project's 2-core VM, Linux
//! 6.18, a 256 MiB heap, every page touched; `docs/architecture.md`):
//!
//! | method | one tracking round (read + re-arm) | first write to a page after a round |
//! |---|---|---|
//! | uffd-wp async + `PAGEMAP_SCAN` | 0.1 ms (1 MiB written), 0.8 ms (all 256 MiB written) | ~7 µs (kernel fault, no exit to user space) |
//! | soft-dirty (`/proc/self/clear_refs` + pagemap bit 55) | — | — (this kernel is built without `CONFIG_MEM_SOFT_DIRTY`: the bit never sets) |
//! | `mprotect` + `SIGSEGV` handler | 41 ms (`mprotect` of 256 MiB) + a handler per page | ~30 µs (signal, `mprotect`, VMA split) |
//!
//! The initial protection of a 256 MiB heap costs ~26 ms (once, when the
//! first snapshot is taken). Where `userfaultfd` write-protection is not
//! available (an older kernel, qemu-user, a seccomp filter), [`start`]
//! fails and checkpoints stay full snapshots.
//!
//! The tracked range is the memory's size when tracking (re)starts; pages
//! the memory grows by later are "new" to the next increment, which stores
//! those that are not zero (the parent had zeros there), and are protected
//! from then on.
//!
//! `unsafe` here: the `userfaultfd` system call and its ioctls, and the
//! `PAGEMAP_SCAN` ioctl, each on ranges of linear memory this process owns.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use super::uffd::{UffdioApi, UffdioRange, UffdioRegister, UFFDIO_API, UFFDIO_REGISTER, UFFD_API, UFFD_USER_MODE_ONLY};

/// A Wasm page.
const WASM_PAGE: u64 = 65536;

// Linux ABI (include/uapi/linux/userfaultfd.h, include/uapi/linux/fs.h),
// the same on x86_64 and aarch64. Declared here: the system headers of the
// build machine predate PAGEMAP_SCAN (the shared part: `super::uffd`).
const UFFDIO_WRITEPROTECT: u64 = 0xC018_AA06;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1;
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const PAGEMAP_SCAN: u64 = 0xC060_6610;
const PM_SCAN_WP_MATCHING: u64 = 1;
const PM_SCAN_CHECK_WPASYNC: u64 = 2;
const PAGE_IS_WRITTEN: u64 = 1 << 1;

#[repr(C)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

struct Tracker {
    uffd: OwnedFd,
    pagemap: std::fs::File,
    base: u64,
    /// Bytes registered and protected from `base`.
    len: u64,
}

static TRACKER: Mutex<Option<Tracker>> = Mutex::new(None);

fn ioctl<T>(fd: &impl AsRawFd, req: u64, arg: &mut T) -> std::io::Result<libc::c_int> {
    // SAFETY: `arg` is the #[repr(C)] struct the request `req` reads and
    // writes; the ranges it names are linear memory of this process.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg as *mut T as *mut c_void) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Register and write-protect `[start, start + len)` (page-aligned).
fn protect(uffd: &OwnedFd, start: u64, len: u64) -> std::io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let mut reg = UffdioRegister { range: UffdioRange { start, len }, mode: UFFDIO_REGISTER_MODE_WP, ioctls: 0 };
    ioctl(uffd, UFFDIO_REGISTER, &mut reg)?;
    let mut wp = UffdioWriteprotect { range: UffdioRange { start, len }, mode: UFFDIO_WRITEPROTECT_MODE_WP };
    ioctl(uffd, UFFDIO_WRITEPROTECT, &mut wp)?;
    Ok(())
}

/// Start tracking writes to `memory` (the whole linear memory) from now on:
/// the next [`take`] reports the pages written after this call. Replaces
/// any earlier tracking. Fails where the kernel cannot.
pub fn start(memory: &[u8]) -> Result<(), String> {
    let mut g = TRACKER.lock().unwrap_or_else(|e| e.into_inner());
    // Dropping the old descriptor unregisters its ranges.
    *g = None;
    let uffd = [UFFD_USER_MODE_ONLY, 0]
        .into_iter()
        .find_map(|extra| {
            // SAFETY: the userfaultfd system call with flags only.
            let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK | extra) };
            // SAFETY: a descriptor the kernel just gave us, owned from here.
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
        })
        .ok_or_else(|| format!("userfaultfd is not available: {}", std::io::Error::last_os_error()))?;
    let mut api = UffdioApi { api: UFFD_API, features: UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, ioctls: 0 };
    ioctl(&uffd, UFFDIO_API, &mut api).map_err(|e| format!("userfaultfd write-protection (asynchronous) is not available: {e}"))?;
    let pagemap = std::fs::File::open("/proc/self/pagemap").map_err(|e| format!("cannot open /proc/self/pagemap: {e}"))?;
    let base = memory.as_ptr() as u64;
    let len = memory.len() as u64 / WASM_PAGE * WASM_PAGE;
    protect(&uffd, base, len).map_err(|e| format!("cannot write-protect linear memory: {e}"))?;
    *g = Some(Tracker { uffd, pagemap, base, len });
    Ok(())
}

/// Stop tracking (the protection is lifted with the descriptor).
pub fn stop() {
    *TRACKER.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Whether tracking is on.
pub fn active() -> bool {
    TRACKER.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// The Wasm pages written since [`start`] or the last `take`, as a flag per
/// page of `memory` (the whole linear memory now), and protect them again;
/// pages the memory grew by since are flagged and protected from now on.
/// `None` (tracking off, it fails) means: assume every page written.
pub fn take(memory: &[u8]) -> Option<Vec<bool>> {
    let mut g = TRACKER.lock().unwrap_or_else(|e| e.into_inner());
    let t = g.as_mut()?;
    let r = scan(t, memory);
    if r.is_none() {
        *g = None;
    }
    r
}

fn scan(t: &mut Tracker, memory: &[u8]) -> Option<Vec<bool>> {
    if memory.as_ptr() as u64 != t.base {
        return None;
    }
    let pages = memory.len().div_ceil(WASM_PAGE as usize);
    let mut written = vec![false; pages];
    let mut regions = vec![PageRegion::default(); 4096];
    let end = t.base + t.len;
    let mut at = t.base;
    while at < end {
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
            start: at,
            end,
            walk_end: 0,
            vec: regions.as_mut_ptr() as u64,
            vec_len: regions.len() as u64,
            max_pages: 0,
            category_inverted: 0,
            category_mask: PAGE_IS_WRITTEN,
            category_anyof_mask: 0,
            return_mask: PAGE_IS_WRITTEN,
        };
        let n = ioctl(&t.pagemap, PAGEMAP_SCAN, &mut arg).ok()? as usize;
        for r in &regions[..n.min(regions.len())] {
            let first = (r.start - t.base) / WASM_PAGE;
            let last = (r.end - 1 - t.base) / WASM_PAGE;
            for p in first..=last {
                if let Some(w) = written.get_mut(p as usize) {
                    *w = true;
                }
            }
        }
        if arg.walk_end <= at {
            return None;
        }
        at = arg.walk_end;
    }
    // Grown since: new to the next increment, protected from now on.
    let now = pages as u64 * WASM_PAGE;
    if now > t.len {
        for w in &mut written[(t.len / WASM_PAGE) as usize..] {
            *w = true;
        }
        protect(&t.uffd, t.base + t.len, now - t.len).ok()?;
        t.len = now;
    }
    Some(written)
}
