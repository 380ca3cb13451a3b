//! Linear memory: one up-front virtual reservation per memory, so the base
//! never moves; pages become accessible as the memory grows. Compiled code
//! does no bounds checks: every access lands inside the reservation
//! (`4 GiB + guard`), and an access to an inaccessible page faults and is
//! turned into an "out of bounds memory access" trap by [`crate::signals`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Size of a Wasm page.
pub const PAGE: u64 = 65536;
/// Most pages a 32-bit memory can have.
pub const MAX_PAGES: u64 = 65536;

/// Guard bytes beyond 4 GiB every reservation has: the maximum any loaded
/// module requires (set before instantiation by [`require_guard`]).
static GUARD: AtomicU64 = AtomicU64::new(PAGE);

/// Make later reservations cover `bytes` of guard after the 4 GiB index space.
pub fn require_guard(bytes: u64) {
    GUARD.fetch_max(bytes.max(PAGE), Ordering::SeqCst);
}

/// Reservations in use, as (start, end) addresses, for the fault handler.
static RESERVATIONS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Whether `addr` lies inside some linear-memory reservation. Called from the
/// signal handler: uses `try_lock` and answers "no" if the lock is held.
pub fn in_reservation(addr: usize) -> bool {
    match RESERVATIONS.try_lock() {
        Ok(r) => r.iter().any(|&(s, e)| addr >= s && addr < e),
        Err(_) => false,
    }
}

/// A linear memory. `#[repr(C)]`: compiled code reads `size_bytes` at
/// offset [`wanco_state::abi::memory::SIZE_BYTES`].
#[repr(C)]
pub struct Memory {
    /// Current size in bytes (read by compiled code).
    pub size_bytes: u64,
    base: *mut u8,
    reserved: usize,
    max_pages: u64,
}

/// Why a memory could not be created or grown.
#[derive(Debug)]
pub struct MemoryError(pub String);

impl Memory {
    /// Reserve a memory with `min` pages accessible and at most `max` pages.
    pub fn new(min: u64, max: Option<u64>) -> Result<Box<Memory>, MemoryError> {
        let max_pages = max.unwrap_or(MAX_PAGES).min(MAX_PAGES);
        if min > max_pages {
            return Err(MemoryError(format!("memory minimum {min} pages exceeds the maximum {max_pages}")));
        }
        let reserved = ((1u64 << 32) + GUARD.load(Ordering::SeqCst)) as usize;
        // SAFETY: anonymous private mapping with no access; the kernel picks
        // the address. Nothing aliases it yet.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(MemoryError(format!(
                "cannot reserve {} GiB of address space for linear memory: {}",
                reserved >> 30,
                std::io::Error::last_os_error()
            )));
        }
        let base = base as *mut u8;
        RESERVATIONS.lock().unwrap().push((base as usize, base as usize + reserved));
        let mut m = Box::new(Memory { size_bytes: 0, base, reserved, max_pages });
        if m.grow(min).is_none() {
            return Err(MemoryError(format!("cannot commit {min} pages of linear memory")));
        }
        Ok(m)
    }

    /// Base address (never changes).
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        self.size_bytes / PAGE
    }

    /// Declared (or implied) maximum pages.
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    /// Grow by `delta` pages; returns the old size in pages, or `None`.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.pages();
        let new = old.checked_add(delta)?;
        if new > self.max_pages {
            return None;
        }
        if delta > 0 {
            // SAFETY: the range lies inside our own reservation (new <= 65536
            // pages = 4 GiB < reserved).
            let r = unsafe {
                libc::mprotect(
                    self.base.add(self.size_bytes as usize) as *mut libc::c_void,
                    (delta * PAGE) as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if r != 0 {
                return None;
            }
        }
        self.size_bytes = new * PAGE;
        Some(old)
    }

    /// The accessible bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: [base, base+size) is mapped read/write for the memory's lifetime.
        unsafe { std::slice::from_raw_parts(self.base, self.size_bytes as usize) }
    }

    /// The accessible bytes, mutably.
    #[allow(clippy::mut_from_ref)]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` gives exclusive access on the Rust side.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.size_bytes as usize) }
    }
}

/// The address range of linear memory mapped from a memory image
/// ([`Memory::map_image`]): (start, end), empty if none.
static IMAGE_RANGE: Mutex<(usize, usize)> = Mutex::new((0, 0));

/// How [`Memory::map_image`] put an image's pages in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageUse {
    /// Mapped copy-on-write: no page read yet (O(1)).
    Mapped,
    /// Read into the memory (the mapping was refused, or
    /// `WANCO_MEMORY_IMAGE=copy`).
    Copied,
}

impl Memory {
    /// Put pages `0..pages` of the memory image `file` (laid out as
    /// `wanco_state::image` says; the caller checked its header) in place
    /// of this memory's first pages, which must be accessible and fresh:
    /// mapped private (copy-on-write) over them, so that a page is read
    /// from the file (the page cache) only when the program first touches
    /// it; where that mapping fails, read into them.
    pub fn map_image(&mut self, file: &std::fs::File, pages: u32) -> Result<ImageUse, String> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::FileExt;
        let len = u64::from(pages) * PAGE;
        if len > self.size_bytes {
            return Err(format!("the memory image covers {pages} pages, the memory has {}", self.pages()));
        }
        let need = wanco_state::image::page_offset(pages);
        let have = file.metadata().map_err(|e| format!("cannot read the memory image: {e}"))?.len();
        if have < need {
            return Err(format!("the memory image is truncated: {pages} pages need {need} bytes, the file has {have}"));
        }
        if len == 0 {
            return Ok(ImageUse::Mapped);
        }
        if std::env::var_os("WANCO_MEMORY_IMAGE").is_none_or(|v| v != "copy") {
            // SAFETY: the range is the start of our own reservation, made
            // accessible by `grow`; MAP_FIXED replaces its (fresh, zero)
            // pages, which nothing references. The file is not truncated
            // while mapped (the agent only unlinks it).
            let p = unsafe {
                libc::mmap(
                    self.base as *mut libc::c_void,
                    len as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    file.as_raw_fd(),
                    wanco_state::image::DATA_OFFSET as libc::off_t,
                )
            };
            if p == self.base as *mut libc::c_void {
                *IMAGE_RANGE.lock().unwrap_or_else(|e| e.into_inner()) = (self.base as usize, self.base as usize + len as usize);
                return Ok(ImageUse::Mapped);
            }
            if p != libc::MAP_FAILED {
                // Cannot happen with MAP_FIXED; never leave a stray mapping.
                // SAFETY: unmapping the mapping just made.
                unsafe { libc::munmap(p, len as usize) };
            }
        }
        let dst = &mut self.bytes_mut()[..len as usize];
        file.read_exact_at(dst, wanco_state::image::DATA_OFFSET).map_err(|e| format!("cannot read the memory image: {e}"))?;
        Ok(ImageUse::Copied)
    }
}

/// For each Wasm page of `memory` (a linear memory's accessible bytes),
/// whether the process may have written it: some of
/// its OS pages are present in RAM or swapped out (`/proc/self/pagemap`).
/// The memory is a private anonymous mapping, so a page of which no OS
/// page was ever touched is all zero and a checkpoint need not read it
/// (a page only read maps the shared zero page, which shows as present:
/// it is scanned). `None` when the pagemap cannot be read; then every
/// page must be scanned.
pub fn touched_pages(memory: &[u8]) -> Option<Vec<bool>> {
    use std::os::unix::fs::FileExt;
    let os_page = page_size();
    let n_os = memory.len() / os_page;
    if n_os == 0 {
        return Some(Vec::new());
    }
    let f = std::fs::File::open("/proc/self/pagemap").ok()?;
    let mut entries = vec![0u8; n_os * 8];
    let first = (memory.as_ptr() as usize / os_page) as u64;
    f.read_exact_at(&mut entries, first * 8).ok()?;
    // Bit 63: present; bit 62: swapped.
    const TOUCHED: u64 = 3 << 62;
    let per_wasm = PAGE as usize / os_page;
    // Pages mapped from a memory image hold data without being present:
    // they count as touched.
    let (img_start, img_end) = *IMAGE_RANGE.lock().unwrap_or_else(|e| e.into_inner());
    let base = memory.as_ptr() as usize;
    Some(
        entries
            .chunks_exact(8 * per_wasm)
            .enumerate()
            .map(|(k, w)| {
                let at = base + k * PAGE as usize;
                (at >= img_start && at < img_end)
                    || w.chunks_exact(8).any(|e| u64::from_le_bytes(e.try_into().unwrap_or_default()) & TOUCHED != 0)
            })
            .collect(),
    )
}

/// Back `run` (consecutive pages of a linear memory, about to be written
/// by a restore) with memory now, in one system call: cheaper than a page
/// fault per OS page. Best effort: on a kernel without `MADV_POPULATE_WRITE`
/// (before Linux 5.14) the writes fault as usual.
pub fn populate(run: &mut [u8]) {
    if run.is_empty() {
        return;
    }
    // SAFETY: `run` is memory we may write (a `&mut` slice); populating
    // changes no contents (the pages are zero either way).
    unsafe {
        libc::madvise(run.as_mut_ptr() as *mut libc::c_void, run.len(), libc::MADV_POPULATE_WRITE);
    }
}

/// Whether compressing or decompressing `pages` Wasm pages is worth sharing
/// with the helper thread ([`crate::helper`]): at least 4 pages (256 KiB,
/// about 100 µs of LZ4), and a second CPU to run on.
pub fn share_packing(pages: usize) -> bool {
    if pages < 4 {
        return false;
    }
    // SAFETY: `set` is a plain bit set the kernel fills; the size passed is its own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 && libc::CPU_COUNT(&set) > 1
    }
}

/// A file mapped read-only and private: a snapshot being restored, whose
/// pages are decompressed straight from it
/// (`wanco_state::snapshot::decode_shared`), without reading the file into
/// fresh memory first (for a snapshot of a few MiB, the copy and the page
/// faults of its buffer took longer than the rest of the restore). The file
/// must not shrink while mapped (a read past its new end would fault): a
/// restore holds the mapping only until the memory is in place.
pub struct MappedFile {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and unmapped only on drop.
unsafe impl Send for MappedFile {}
// SAFETY: as above: shared reads only.
unsafe impl Sync for MappedFile {}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: [ptr, ptr+len) is mapped readable until drop.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly our mapping; the slices handed out
        // borrow `self`.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// The contents of `path`: mapped if it is a non-empty regular file that
/// can be mapped, else read.
pub fn read_file(path: &std::path::Path) -> std::io::Result<wanco_state::snapshot::SharedBytes> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let len = usize::try_from(meta.len()).unwrap_or(0);
    if meta.is_file() && len > 0 {
        // SAFETY: a new private read-only mapping of an open file; nothing
        // else is mapped there.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, f.as_raw_fd(), 0) };
        if ptr != libc::MAP_FAILED {
            return Ok(std::sync::Arc::new(MappedFile { ptr: ptr as *const u8, len }));
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &f, &mut bytes)?;
    Ok(std::sync::Arc::new(bytes))
}

/// The OS page size (4 KiB on x86_64; 4, 16 or 64 KiB on aarch64).
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 && (PAGE as usize).is_multiple_of(n as usize) { n as usize } else { PAGE as usize }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let start = self.base as usize;
        {
            let mut img = IMAGE_RANGE.lock().unwrap_or_else(|e| e.into_inner());
            if img.0 >= start && img.0 < start + self.reserved {
                *img = (0, 0);
            }
        }
        RESERVATIONS.lock().unwrap().retain(|&(s, _)| s != start);
        // SAFETY: unmapping exactly our reservation; no references outlive self.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.reserved);
        }
    }
}
