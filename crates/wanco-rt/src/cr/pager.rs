//! Lazy restore of linear memory with `userfaultfd` (post-copy, as CRIU's
//! lazy pages): a restored program runs again before its memory is in
//! place. The pages of linear memory are registered with the kernel as
//! "missing"; the helper thread ([`crate::helper`]) puts the stored pages
//! in, one Wasm page (64 KiB) per `UFFDIO_COPY`, in address order, and
//! first of all any page the Wasm thread touches meanwhile (the touching
//! thread sleeps in the kernel until its page is in: it never sees a page
//! that is not the snapshot's). A touched page the snapshot does not store
//! gets zeros (`UFFDIO_ZEROPAGE`). When every stored page is in, the range
//! is unregistered: untouched zero pages are then the kernel's usual
//! zero-filled pages.
//!
//! * A restore pays for the pages' memory in the background instead of
//!   before the program runs: writing 3 MiB of pages costs ~1 ms of kernel
//!   page allocation on a virtual machine, more than everything else a
//!   restore does.
//! * Before any host call (WASI), any checkpoint, a trap's message and the
//!   program's end, the Wasm thread waits until every page is in
//!   ([`settle`]): a system call may read or write linear memory from the
//!   kernel, which a user-mode-only `userfaultfd` does not serve, and
//!   nothing leaves the process before the memory is whole.
//! * The snapshot's checksum is compared by the pager too, in pieces
//!   between pages ([`defer_checksum`]; the snapshot was decoded with
//!   `Checksum::Later`, every other check made), and a page is checked as
//!   it is decompressed. Hashing a snapshot of a few MiB and checking its
//!   pages took a restore longer than everything else it does; now the
//!   program runs meanwhile. Should the pager find the file damaged, a page
//!   that does not decompress, or an `ioctl` fail, it refuses the snapshot
//!   and ends the process (exit 2); the program cannot have made any host
//!   call by then (they wait for the pager), so nothing it did since the
//!   restore is seen outside: the outcome is the eager restore's refusal.
//! * Where `userfaultfd` is not available (a kernel without it, a seccomp
//!   filter, an unprivileged user on a kernel before 5.11, qemu-user) or
//!   `WANCO_LAZY_RESTORE=0` is set, the caller unpacks eagerly instead.
//!   `WANCO_LAZY_RESTORE=demand` puts pages in only as they are touched,
//!   until something wants the whole memory (then the rest follows).

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use wanco_state::snapshot::{PackedMemory, PendingChecksum};

use super::uffd::{UffdioApi, UffdioRange, UffdioRegister, UFFDIO_API, UFFDIO_REGISTER, UFFD_API, UFFD_USER_MODE_ONLY};

pub(super) const PAGE: usize = 65536;

// The requests only the pager makes (the shared part: `super::uffd`).
pub(super) const UFFDIO_UNREGISTER: u64 = 0x8010_AA01;
pub(super) const UFFDIO_WAKE: u64 = 0x8010_AA02;
pub(super) const UFFDIO_COPY: u64 = 0xC028_AA03;
pub(super) const UFFDIO_ZEROPAGE: u64 = 0xC020_AA04;
pub(super) const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
/// Bits of `UffdioRegister::ioctls`: the range supports these.
pub(super) const CAN_COPY: u64 = 1 << 3;
pub(super) const CAN_ZEROPAGE: u64 = 1 << 4;
pub(super) const UFFD_EVENT_PAGEFAULT: u8 = 0x12;

#[repr(C)]
pub(super) struct UffdioCopy {
    pub dst: u64,
    pub src: u64,
    pub len: u64,
    pub mode: u64,
    pub copy: i64,
}

#[repr(C)]
pub(super) struct UffdioZeropage {
    pub range: UffdioRange,
    pub mode: u64,
    pub zeropage: i64,
}

/// `struct uffd_msg` (32 bytes), for a page fault: the address at 16.
#[repr(C)]
#[derive(Default)]
pub(super) struct UffdMsg {
    pub event: u8,
    _reserved: [u8; 7],
    flags: u64,
    pub address: u64,
    _feat: u64,
}

/// Whether a pager is putting pages in.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set (under the lock) when the pager is done; [`settle`] waits on it.
static DONE: Mutex<bool> = Mutex::new(true);
static DONE_CV: Condvar = Condvar::new();
/// Set by [`settle`]: the whole memory is wanted now (ends a
/// demand-only pager's waiting).
static WANTED: AtomicBool = AtomicBool::new(false);

/// The checksum of the snapshot being restored while it is not compared
/// yet and no pager has taken it over.
static CHECKSUM: Mutex<Option<PendingChecksum>> = Mutex::new(None);
/// Bytes of the file the pager hashes between two pages (about 40 µs):
/// a page the program touches waits no longer than that.
const HASH_STEP: usize = 64 * 1024;

/// Leave the checksum of the snapshot being restored (decoded with
/// `Checksum::Later`) to be compared by the pager, or by
/// [`verify_unless_paged`] if no pager starts.
pub fn defer_checksum(c: PendingChecksum) {
    *CHECKSUM.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
}

/// Compare the deferred checksum now unless a pager has taken it over (its
/// [`settle`] stands for it): before memory is unpacked eagerly, or when
/// the snapshot has no memory to page. The error is the refusal's reason.
pub fn verify_unless_paged() -> Result<(), String> {
    let pending = CHECKSUM.lock().unwrap_or_else(|e| e.into_inner()).take();
    pending.map_or(Ok(()), |c| c.finish().map_err(|e| e.to_string()))
}

/// Before refusing a restored snapshot for what it says: if its checksum
/// is not known to match yet, compare it (or wait for the pager, which ends
/// the process if it does not match), so that a damaged file is called
/// damaged. The error is the checksum's.
pub fn verify_before_refusing() -> Result<(), String> {
    verify_unless_paged()?;
    settle();
    Ok(())
}

/// [`settle`] for a signal handler (a trap): polls with `nanosleep`, takes
/// no lock.
pub fn settle_in_handler() {
    while ACTIVE.load(Ordering::Acquire) {
        WANTED.store(true, Ordering::Release);
        let t = libc::timespec { tv_sec: 0, tv_nsec: 50_000 };
        // SAFETY: async-signal-safe; `t` is valid.
        unsafe { libc::nanosleep(&t, std::ptr::null_mut()) };
    }
}

/// Wait until a lazy restore's memory is all in place and its checksum
/// compared (at once when no pager runs: one atomic load).
pub fn settle() {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    WANTED.store(true, Ordering::Release);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    while !*done {
        done = DONE_CV.wait(done).unwrap_or_else(|e| e.into_inner());
    }
}

/// A pager other than this module's (post-copy, [`super::postcopy`]) puts
/// the pages in: [`settle`] waits from now until [`external_done`].
pub(super) fn external_begin() {
    *DONE.lock().unwrap_or_else(|e| e.into_inner()) = false;
    ACTIVE.store(true, Ordering::Release);
}

/// The pager of [`external_begin`] is done: wake [`settle`].
pub(super) fn external_done() {
    ACTIVE.store(false, Ordering::Release);
    *DONE.lock().unwrap_or_else(|e| e.into_inner()) = true;
    DONE_CV.notify_all();
}

/// What became of a memory handed to [`start`].
pub enum Started {
    /// A pager puts the pages in, in the background.
    Lazy,
    /// No pager here: unpack eagerly.
    Eager(PackedMemory),
}

/// Restore `memory` (the linear memory's accessible bytes, fresh: all
/// zero, no page touched) from `packed` lazily if this system allows it;
/// the pager takes over the deferred checksum. `snapshot` names the
/// snapshot in a refusal. Given back (eager), the checksum is still the
/// caller's ([`verify_unless_paged`] before the program runs).
pub fn start(memory: &mut [u8], packed: PackedMemory, snapshot: &str) -> Started {
    let mode = std::env::var_os("WANCO_LAZY_RESTORE");
    if packed.stored_count() == 0
        || mode.as_ref().is_some_and(|v| v == "0")
        || !crate::helper::available()
        || memory.len() != packed.pages as usize * PAGE
    {
        return Started::Eager(packed);
    }
    let Some(fd) = open_uffd() else { return Started::Eager(packed) };
    // Every page must be missing, for the pager to put it in: drop any the
    // process may have touched (all zero: the memory is fresh).
    // SAFETY: the range is our linear memory, which nothing uses yet; its
    // contents are zero before and after.
    unsafe { libc::madvise(memory.as_mut_ptr() as *mut c_void, memory.len(), libc::MADV_DONTNEED) };
    let range = UffdioRange { start: memory.as_mut_ptr() as u64, len: memory.len() as u64 };
    let mut reg = UffdioRegister { range, mode: UFFDIO_REGISTER_MODE_MISSING, ioctls: 0 };
    // SAFETY: `reg` is the argument this ioctl takes; the range is memory
    // this process mapped (the linear memory, not in use by any thread yet).
    let ok = unsafe { libc::ioctl(fd, UFFDIO_REGISTER as _, &mut reg as *mut UffdioRegister) } == 0;
    if !ok || reg.ioctls & (CAN_COPY | CAN_ZEROPAGE) != CAN_COPY | CAN_ZEROPAGE {
        // SAFETY: closing our own descriptor (unregisters the range).
        unsafe { libc::close(fd) };
        return Started::Eager(packed);
    }
    *DONE.lock().unwrap_or_else(|e| e.into_inner()) = false;
    ACTIVE.store(true, Ordering::Release);
    let pager = Pager {
        fd,
        range,
        packed,
        checksum: CHECKSUM.lock().unwrap_or_else(|e| e.into_inner()).take(),
        done: vec![false; memory.len() / PAGE],
        snapshot: snapshot.to_string(),
        on_demand: 0,
        demand_only: mode.is_some_and(|v| v == "demand"),
        // SAFETY: no preconditions.
        wasm_cpu: unsafe { libc::sched_getcpu() },
    };
    if let Err(job) = crate::helper::spawn(Box::new(move || pager.run())) {
        // The helper went away after `available`: put all the pages in here
        // (nothing can fault while this thread runs the pager).
        WANTED.store(true, Ordering::Release);
        job();
    }
    Started::Lazy
}

/// A user-mode-only userfaultfd (any user may have one, Linux 5.11+: the
/// runtime never lets the kernel touch registered memory), else a plain one
/// (root, or `vm.unprivileged_userfaultfd`), with the API handshake done;
/// `None` if neither can be had.
pub(super) fn open_uffd() -> Option<libc::c_int> {
    for extra in [UFFD_USER_MODE_ONLY, 0] {
        // SAFETY: a system call with flags only.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK | extra) };
        if fd < 0 {
            continue;
        }
        let fd = fd as libc::c_int;
        let mut api = UffdioApi { api: UFFD_API, features: 0, ioctls: 0 };
        // SAFETY: `api` is the argument this ioctl takes.
        if unsafe { libc::ioctl(fd, UFFDIO_API as _, &mut api as *mut UffdioApi) } == 0 {
            return Some(fd);
        }
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
    }
    None
}

struct Pager {
    fd: libc::c_int,
    range: UffdioRange,
    packed: PackedMemory,
    /// The snapshot's checksum, until compared.
    checksum: Option<PendingChecksum>,
    /// Per Wasm page: in place.
    done: Vec<bool>,
    snapshot: String,
    on_demand: usize,
    /// Put pages in only when touched, until [`settle`] wants them all
    /// (`WANCO_LAZY_RESTORE=demand`: shows which pages a restored program
    /// touches first, and lets tests see pages served on demand).
    demand_only: bool,
    /// The CPU the Wasm thread ran on when it handed over the pages (-1:
    /// unknown).
    wasm_cpu: libc::c_int,
}

impl Pager {
    /// Put every stored page in (touched ones first), then let the kernel
    /// have the range back and wake [`settle`].
    fn run(mut self) {
        let t0 = std::time::Instant::now();
        let affinity = self.keep_off_wasm_cpu();
        let mut scratch = vec![0u8; PAGE];
        let mut next = 0;
        loop {
            while let Some(page) = self.fault() {
                self.serve(page, &mut scratch);
            }
            if let Some(c) = &mut self.checksum {
                match c.step(HASH_STEP) {
                    None => continue,
                    Some(Ok(())) => self.checksum = None,
                    Some(Err(e)) => self.fail(&e.to_string()),
                }
            }
            if self.demand_only && !WANTED.load(Ordering::Acquire) {
                // Until a fault comes, or a while to look at WANTED again.
                let mut p = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
                // SAFETY: one pollfd, its count passed.
                unsafe { libc::poll(&mut p, 1, 1) };
                continue;
            }
            while next < self.packed.stored_count() && self.done[self.page_of_stored(next)] {
                next += 1;
            }
            if next == self.packed.stored_count() {
                break;
            }
            let page = self.page_of_stored(next);
            self.serve(page, &mut scratch);
        }
        let unregister = self.range;
        // SAFETY: the range is the one registered. Unregistering wakes any
        // thread still waiting on a (zero) page; the wake below is for
        // kernels that would not, and closing wakes everything left.
        unsafe {
            libc::ioctl(self.fd, UFFDIO_UNREGISTER as _, &unregister as *const UffdioRange);
            libc::ioctl(self.fd, UFFDIO_WAKE as _, &unregister as *const UffdioRange);
            libc::close(self.fd);
        }
        if let Some(set) = affinity {
            // SAFETY: restoring this thread's own CPU set, as it was.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        }
        super::timing::lazy_memory_in(self.packed.stored_count(), self.on_demand, t0.elapsed());
        drop(self.packed);
        ACTIVE.store(false, Ordering::Release);
        *DONE.lock().unwrap_or_else(|e| e.into_inner()) = true;
        DONE_CV.notify_all();
    }

    /// Move this thread off the CPU the Wasm thread runs on, if there is
    /// another: woken on the same CPU, the pager would otherwise take it
    /// from the Wasm thread for its whole run (as the scheduler may well
    /// do), and the program would start no earlier than an eager restore.
    /// Returns the CPU set to restore afterwards.
    fn keep_off_wasm_cpu(&self) -> Option<libc::cpu_set_t> {
        let cpu = usize::try_from(self.wasm_cpu).ok()?;
        // SAFETY: `cpu_set_t` is a plain bit set; the sizes passed are its
        // own; the set changed is this thread's.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) != 0
                || cpu >= libc::CPU_SETSIZE as usize
                || !libc::CPU_ISSET(cpu, &old)
                || libc::CPU_COUNT(&old) < 2
            {
                return None;
            }
            let mut new = old;
            libc::CPU_CLR(cpu, &mut new);
            (libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &new) == 0).then_some(old)
        }
    }

    fn page_of_stored(&self, k: usize) -> usize {
        self.packed.stored_page(k).map_or(0, |p| p as usize)
    }

    /// The Wasm page of a pending page fault, if any.
    fn fault(&mut self) -> Option<usize> {
        loop {
            let mut msg = UffdMsg::default();
            // SAFETY: reading one message into a buffer of its size.
            let n = unsafe {
                libc::read(self.fd, &mut msg as *mut UffdMsg as *mut c_void, std::mem::size_of::<UffdMsg>())
            };
            if n != std::mem::size_of::<UffdMsg>() as isize {
                return None; // EAGAIN: nothing pending
            }
            if msg.event != UFFD_EVENT_PAGEFAULT {
                continue;
            }
            let page = msg.address.wrapping_sub(self.range.start) as usize / PAGE;
            if page >= self.done.len() {
                continue;
            }
            if self.done[page] {
                // Raced with the copy that put it in; make sure it wakes.
                self.wake(page);
                continue;
            }
            self.on_demand += 1;
            return Some(page);
        }
    }

    fn wake(&self, page: usize) {
        let r = UffdioRange { start: self.range.start + (page * PAGE) as u64, len: PAGE as u64 };
        // SAFETY: a range inside the registered one.
        unsafe { libc::ioctl(self.fd, UFFDIO_WAKE as _, &r as *const UffdioRange) };
    }

    /// Put Wasm page `page` in: the snapshot's content, or zeros.
    fn serve(&mut self, page: usize, scratch: &mut [u8]) {
        let dst = self.range.start + (page * PAGE) as u64;
        let r = match self.packed.stored_index(page as u32) {
            Some(k) => {
                if let Err(e) = self.packed.unpack_stored(k, scratch) {
                    // A damaged file is called damaged, whichever is found first.
                    if let Some(Err(damaged)) = self.checksum.take().map(PendingChecksum::finish) {
                        self.fail(&damaged.to_string());
                    }
                    self.fail(&e.to_string());
                }
                let mut c = UffdioCopy { dst, src: scratch.as_ptr() as u64, len: PAGE as u64, mode: 0, copy: 0 };
                // SAFETY: copies our scratch page into a registered,
                // still-missing page of the range (`done` says so).
                super::uffd::retry(|| unsafe { libc::ioctl(self.fd, UFFDIO_COPY as _, &mut c as *mut UffdioCopy) })
            }
            None => {
                let mut z = UffdioZeropage { range: UffdioRange { start: dst, len: PAGE as u64 }, mode: 0, zeropage: 0 };
                // SAFETY: maps zeros at a registered, still-missing page.
                super::uffd::retry(|| unsafe { libc::ioctl(self.fd, UFFDIO_ZEROPAGE as _, &mut z as *mut UffdioZeropage) })
            }
        };
        if let Err(e) = r {
            self.fail(&format!("cannot put memory page {page} in place: {e}"));
        }
        self.done[page] = true;
    }

    /// Refuse the snapshot from the helper thread: the program has made no
    /// host call since the restore (they wait for the pager), so nothing it
    /// did is seen outside.
    fn fail(&self, why: &str) -> ! {
        eprintln!("error: cannot restore `{}`: {why}", self.snapshot);
        std::process::exit(2)
    }
}
