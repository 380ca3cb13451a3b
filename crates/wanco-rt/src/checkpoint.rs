//! Checkpoint and restore of compiled code (stack capture).
//!
//! Compiled code polls at every migration point (see the compiler's
//! `codegen/func/cr.rs`): it counts [`wanco_cr_counter`] down, and when the
//! count reaches zero it calls [`wanco_cr_slow`], an assembly trampoline
//! that saves the callee-saved registers and calls [`slow_path`]. The count
//! runs in batches of at most [`BATCH`] points: at the end of each the slow
//! path looks at [`wanco_cr_pending`] (set by `SIGUSR1`) and at the
//! `--checkpoint-after-points` target, and starts the next batch. The poll
//! is thus one decrement and one branch on a register; a signal is served
//! within one batch, and the count stays exact (the batch never runs past
//! the target).
//!
//! * **Checkpoint**: the native stack is walked from the trampoline's saved
//!   registers with the module's statepoint records and the executable's
//!   DWARF CFI (`wanco-translate`), giving ISA-neutral frames; with the
//!   instance state and the WASI state they make a [`Snapshot`], written to
//!   the checkpoint file before the process exits 0.
//! * **Restore**: the frames are validated against the module's metadata,
//!   then `_start` is called with the flag set: each poll on the way asks
//!   [`slow_path`] for the route to the next point of the frame being
//!   rebuilt, and the values of the frame come from the buffer
//!   [`wanco_cr_values`] points at.
//!
//! `unsafe` here: the trampolines (global assembly), reading the saved
//! registers, reading the Wasm thread's own stack, and locating the
//! executable's `.eh_frame_hdr` through `dl_iterate_phdr`.

use crate::instance::{Descriptor, Instance};
use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use wanco_state::crmeta::{Callee, CrMeta, ROUTE_CONTINUE, ROUTE_RESTORE_HERE, RESTORE_FIXED_SLOTS};
use wanco_state::module::ModuleInfo;
use wanco_state::snapshot::{Frame, FrameKind, PagePacker, Producer, Snapshot};
use wanco_state::Value;
use wanco_translate::unwind::{Cfi, Isa, Memory as StackRead, Regs};

/// Migration points left in the current batch (compiled code counts it
/// down in a register, and keeps this global current at every call; it
/// calls the slow path when the count reaches zero).
#[no_mangle]
pub static wanco_cr_counter: AtomicU64 = AtomicU64::new(BATCH);

/// Non-zero: a checkpoint was requested by `SIGUSR1`; it is taken at the end
/// of the current batch.
#[no_mangle]
pub static wanco_cr_pending: AtomicU32 = AtomicU32::new(0);

/// The most migration points a batch counts before the slow path runs: the
/// latency of a signal, in points (a few microseconds to a millisecond of
/// Wasm code), and the rate of slow-path calls (one per `BATCH` points).
pub const BATCH: u64 = 1 << 16;

/// The migration-point count at which the current batch ends: the count now
/// is `BATCH_END - wanco_cr_counter`.
static BATCH_END: AtomicU64 = AtomicU64::new(BATCH);

/// The migration-point count at which to checkpoint (`u64::MAX`: never).
static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);

/// Non-zero while a restore rebuilds the frames: every poll calls the slow
/// path (the counter is kept at 1).
static RESTORING: AtomicU32 = AtomicU32::new(0);

/// The migration points passed so far.
fn points_now() -> u64 {
    BATCH_END.load(Ordering::Relaxed).wrapping_sub(wanco_cr_counter.load(Ordering::Relaxed))
}

/// Start a batch at count `passed`: it ends at the target or after
/// [`BATCH`] points, whichever comes first.
fn next_batch(passed: u64) {
    let target = TARGET.load(Ordering::Relaxed);
    let n = if target > passed { (target - passed).min(BATCH) } else { BATCH };
    BATCH_END.store(passed.wrapping_add(n), Ordering::Relaxed);
    wanco_cr_counter.store(n, Ordering::Relaxed);
}

/// The restore value buffer: fixed slots, locals, operand stack.
#[no_mangle]
pub static wanco_cr_values: AtomicPtr<u128> = AtomicPtr::new(std::ptr::null_mut());

/// The ISA this runtime is built for.
pub const ISA: Isa = if cfg!(target_arch = "aarch64") { Isa::Aarch64 } else { Isa::X86_64 };

/// One frame to rebuild, checked and converted when the restore is prepared.
struct RestoreFrame {
    kind: FrameKind,
    /// The points from the function entry to the frame's point, each with
    /// its route (what its parent's slow path returns to jump to it).
    chain: Vec<(u32, u32)>,
    /// The value buffer of the frame: fixed slots (the callee of an
    /// indirect call), locals, operand stack, zero padding; 16-byte
    /// entries (a v128 fills one, other values sit in the low bits).
    values: Vec<u128>,
}

struct Restore {
    frames: Vec<RestoreFrame>,
    cur: usize,
    hop: usize,
    points: u64,
}

struct State {
    file: PathBuf,
    in_main: bool,
    instance: *mut Instance,
    start_func: u32,
    /// Parsed on first use (a checkpoint or a restore): a program that is
    /// never checkpointed does not pay for it at startup.
    meta: Option<CrMeta>,
    restore: Option<Restore>,
    /// The buffer compiled code loads restored values from (kept alive
    /// until the next frame replaces it).
    values: Vec<u128>,
    count_points: bool,
}

// SAFETY: the state is only used on the Wasm thread; the Mutex only guards
// against re-entrancy mistakes.
unsafe impl Send for State {}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// When the restore began, and its phases so far (for `WANCO_CR_TIMING`).
static RESTORE_START: Mutex<Option<(std::time::Instant, Phases)>> = Mutex::new(None);

fn timing() -> bool {
    std::env::var_os("WANCO_CR_TIMING").is_some()
}

/// Durations of the phases of a checkpoint, printed with `WANCO_CR_TIMING`.
struct Phases {
    last: std::time::Instant,
    done: Vec<(&'static str, u128)>,
}

impl Phases {
    fn start() -> Phases {
        Phases { last: std::time::Instant::now(), done: Vec::new() }
    }

    fn mark(&mut self, what: &'static str) {
        let now = std::time::Instant::now();
        self.done.push((what, (now - self.last).as_micros()));
        self.last = now;
    }

    fn report(&self) {
        if timing() {
            let parts: Vec<String> = self.done.iter().map(|(w, us)| format!("{w} {us} us")).collect();
            eprintln!("wanco-timing: phases: {}", parts.join(", "));
        }
    }
}

/// Mark the start of a restore (reading the snapshot) for `WANCO_CR_TIMING`.
pub fn restore_started() {
    *RESTORE_START.lock().unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), Phases::start()));
}

/// End of a restore phase (for `WANCO_CR_TIMING`).
pub fn restore_mark(what: &'static str) {
    if let Some((_, p)) = RESTORE_START.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        p.mark(what);
    }
}

/// A lazy restore's memory is all in place (for `WANCO_CR_TIMING`):
/// `pages` stored pages, `on_demand` of them (or zero pages) put in because
/// the program touched them first, `took` since the pager started.
pub fn lazy_memory_in(pages: usize, on_demand: usize, took: std::time::Duration) {
    if timing() {
        let since = RESTORE_START.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(t, _)| t.elapsed().as_micros());
        eprintln!(
            "wanco-timing: lazy memory: {pages} pages in place {} us after the restore began (pager {} us, {on_demand} on demand)",
            since.unwrap_or(0),
            took.as_micros()
        );
    }
}

/// What a program run asks of checkpointing.
#[derive(Clone, Debug, Default)]
pub struct CrOptions {
    /// Where to write a checkpoint (default `checkpoint.wsnap`).
    pub file: Option<PathBuf>,
    /// Checkpoint when the migration-point count reaches this.
    pub after_points: Option<u64>,
    /// Print the migration-point count on stderr at exit.
    pub count_points: bool,
}

fn fatal(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// Why a binary without checkpoint metadata refuses to checkpoint or restore.
const NO_CR: &str = "this binary was compiled with --no-cr: it cannot checkpoint or restore";

/// The module's checkpoint metadata, or why there is none.
pub fn module_meta(desc: &Descriptor) -> Result<CrMeta, String> {
    let blob = desc.crmeta().ok_or(NO_CR)?;
    let meta = CrMeta::from_static(blob).map_err(|e| e.to_string())?;
    if meta.isa != ISA.name() {
        return Err(format!("checkpoint metadata is for {}, this runtime is {}", meta.isa, ISA.name()));
    }
    Ok(meta)
}

/// Set the countdown before instantiation (the start function counts too).
pub fn preset(opts: &CrOptions) {
    TARGET.store(opts.after_points.unwrap_or(u64::MAX), Ordering::Relaxed);
    next_batch(0);
}

/// Arm checkpointing for `inst` (before `_start` runs). `restored_points`:
/// the count a restored snapshot continues from.
pub fn arm(inst: &mut Instance, opts: &CrOptions, start_func: u32) -> Result<(), String> {
    if !inst.descriptor().has_crmeta() {
        return Err(NO_CR.into());
    }
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
        file: opts.file.clone().unwrap_or_else(|| PathBuf::from("checkpoint.wsnap")),
        in_main: false,
        instance: inst as *mut Instance,
        start_func,
        meta: None,
        restore: None,
        values: Vec::new(),
        count_points: opts.count_points,
    });
    let hash: String = inst.info.hash.iter().map(|b| format!("{b:02x}")).collect();
    let _ = IDENTITY.set(hash);
    install_signal_handler();
    Ok(())
}

/// The module hash (hex) of the armed instance, for the control channel.
static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// This runtime's ISA and the module's hash (hex; empty before
/// instantiation), for [`crate::control`].
pub fn identity() -> (&'static str, &'static str) {
    (ISA.name(), IDENTITY.get().map(|s| s.as_str()).unwrap_or(""))
}

/// The migration points passed so far (approximate while the Wasm thread
/// runs: it counts in registers between calls).
pub fn points() -> u64 {
    points_now()
}

/// Ask for a checkpoint at the next migration point (what `SIGUSR1` does;
/// used by [`crate::control`], whose request says what to do with it).
pub fn request_checkpoint() {
    wanco_cr_pending.store(1, Ordering::SeqCst);
}

/// `_start` begins: checkpoints may be taken from now on.
pub fn enter_main() {
    if let Some(st) = STATE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        st.in_main = true;
    }
}

/// Called before the process exits normally: prints the migration-point
/// count if asked.
pub fn at_exit() {
    // Nothing of a lazily restored run ends before the restore is whole.
    crate::pager::settle();
    if let Ok(g) = STATE.try_lock() {
        if let Some(st) = g.as_ref() {
            if st.count_points {
                let points = points_now();
                eprintln!("migration points: {points}");
            }
            if wanco_cr_pending.load(Ordering::Relaxed) != 0 {
                eprintln!("note: SIGUSR1 arrived, but the program ended before its next migration point: no checkpoint was taken");
            }
            let target = TARGET.load(Ordering::Relaxed);
            if target != u64::MAX && st.in_main {
                eprintln!(
                    "note: the program ended after {} migration points, before --checkpoint-after-points {target}: no checkpoint was taken",
                    points_now()
                );
            }
        }
    }
}

/// After a host (WASI) call returns: if `SIGUSR1` arrived, end the batch
/// at the next migration point, so that a program that waits in the host
/// (reading input, sleeping) is checkpointed as soon as it goes on, not
/// up to [`BATCH`] points later. Compiled code keeps the counter in memory
/// across calls, so it can be changed here; the count stays exact.
pub fn after_host_call() {
    if wanco_cr_pending.load(Ordering::Relaxed) != 0 && RESTORING.load(Ordering::Relaxed) == 0 {
        let left = wanco_cr_counter.load(Ordering::Relaxed);
        if left > 1 {
            BATCH_END.fetch_sub(left - 1, Ordering::Relaxed);
            wanco_cr_counter.store(1, Ordering::Relaxed);
        }
    }
}

extern "C" fn on_sigusr1(_: libc::c_int) {
    wanco_cr_pending.store(1, Ordering::SeqCst);
}

/// Catch `SIGUSR1` from now on (a binary compiled with checkpointing calls
/// this first thing, so that a signal during start-up or a restore is not
/// fatal: it is served once the program runs).
pub fn install_signal_handler() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

// ---------------------------------------------------------------------------
// The trampolines: save the callee-saved registers, call `slow_path`.

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".globl wanco_cr_slow",
    ".type wanco_cr_slow,@function",
    ".p2align 4",
    "wanco_cr_slow:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    // rdi = vmctx, esi = point, rdx = saved registers (r15 first).
    "mov rdx, rsp",
    "sub rsp, 8",
    "call {slow}",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".size wanco_cr_slow, .-wanco_cr_slow",
    slow = sym slow_path,
);

#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".globl wanco_cr_slow",
    ".type wanco_cr_slow,%function",
    ".p2align 2",
    "wanco_cr_slow:",
    "stp x29, x30, [sp, #-176]!",
    "mov x29, sp",
    "stp x19, x20, [sp, #16]",
    "stp x21, x22, [sp, #32]",
    "stp x23, x24, [sp, #48]",
    "stp x25, x26, [sp, #64]",
    "stp x27, x28, [sp, #80]",
    "stp d8, d9, [sp, #96]",
    "stp d10, d11, [sp, #112]",
    "stp d12, d13, [sp, #128]",
    "stp d14, d15, [sp, #144]",
    // x0 = vmctx, w1 = point, x2 = saved registers (x29 first).
    "mov x2, sp",
    "bl {slow}",
    "ldp d14, d15, [sp, #144]",
    "ldp d12, d13, [sp, #128]",
    "ldp d10, d11, [sp, #112]",
    "ldp d8, d9, [sp, #96]",
    "ldp x27, x28, [sp, #80]",
    "ldp x25, x26, [sp, #64]",
    "ldp x23, x24, [sp, #48]",
    "ldp x21, x22, [sp, #32]",
    "ldp x19, x20, [sp, #16]",
    "ldp x29, x30, [sp], #176",
    "ret",
    ".size wanco_cr_slow, .-wanco_cr_slow",
    slow = sym slow_path,
);

/// Register state at the return address of the compiled frame that called
/// the trampoline.
///
/// # Safety
/// `saved` must be the register area the trampoline pushed.
unsafe fn caller_regs(saved: *const u64) -> Regs {
    // SAFETY: guaranteed by the caller; the layouts are the trampolines'.
    unsafe {
        if cfg!(target_arch = "aarch64") {
            let r = |i: usize| *saved.add(i);
            let mut regs = Regs::new(Isa::Aarch64, r(1));
            regs.set(29, r(0));
            regs.set(30, r(1));
            for k in 0..10 {
                regs.set(19 + k as u16, r(2 + k));
            }
            for k in 0..8 {
                regs.set(72 + k as u16, r(12 + k));
            }
            regs.set_sp(saved as u64 + 176);
            regs
        } else {
            let r = |i: usize| *saved.add(i);
            let mut regs = Regs::new(Isa::X86_64, r(6));
            regs.set(15, r(0));
            regs.set(14, r(1));
            regs.set(13, r(2));
            regs.set(12, r(3));
            regs.set(6, r(4));
            regs.set(3, r(5));
            regs.set_sp(saved as u64 + 56);
            regs
        }
    }
}

/// The slow path of a migration point (its batch ended, or a restore is
/// under way): returns a route (0: go on).
extern "C" fn slow_path(_vmctx: *mut c_void, point: u32, saved: *const u64) -> u32 {
    // The common case, the end of a batch with nothing to do, takes no lock.
    let points = points_now();
    let signalled = wanco_cr_pending.load(Ordering::Relaxed) != 0;
    let due = points == TARGET.load(Ordering::Relaxed);
    if !signalled && !due && RESTORING.load(Ordering::Relaxed) == 0 {
        next_batch(points);
        return ROUTE_CONTINUE;
    }
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(st) = guard.as_mut() else {
        // Not armed (e.g. the spec driver): never checkpoint.
        TARGET.store(u64::MAX, Ordering::Relaxed);
        next_batch(points);
        return ROUTE_CONTINUE;
    };
    if st.restore.is_some() {
        return match restore_step(st, point) {
            Ok(r) => r,
            Err(m) => fatal(&format!("cannot restore: {m}")),
        };
    }
    if !st.in_main {
        // The start function runs during instantiation: no checkpoint there
        // (a pending signal waits for `_start`, a target reached here is
        // passed).
        if due {
            TARGET.store(u64::MAX, Ordering::Relaxed);
        }
        next_batch(points);
        return ROUTE_CONTINUE;
    }
    let t0 = std::time::Instant::now();
    // SAFETY: `saved` is the trampoline's register area.
    let regs = unsafe { caller_regs(saved) };
    if signalled {
        if let Some(req) = crate::control::take() {
            // A control-channel request: checkpoint to its file, go on or
            // stop there (see `crate::control`).
            wanco_cr_pending.store(0, Ordering::SeqCst);
            let file = std::mem::replace(&mut st.file, req.path.clone());
            let r = checkpoint(st, regs, points);
            st.file = file;
            let r = r.map(|(path, n, replaced)| {
                if let Some(old) = replaced {
                    let _ = std::fs::remove_file(old);
                }
                (n, std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
            });
            let ok = r.is_ok();
            let _ = req.done.send(r);
            if ok && req.stop {
                match req.decision.recv() {
                    Ok(crate::control::Decision::Exit(code, msg)) => {
                        eprintln!("{msg}");
                        std::process::exit(code)
                    }
                    Ok(crate::control::Decision::Resume) | Err(_) => {}
                }
            }
            next_batch(points);
            return ROUTE_CONTINUE;
        }
    }
    match checkpoint(st, regs, points) {
        Ok((path, n, replaced)) => {
            if timing() {
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                eprintln!("wanco-timing: checkpoint {} us, {size} bytes", t0.elapsed().as_micros());
            }
            // The snapshot this one replaced (see `write_snapshot`).
            if let Some(old) = replaced {
                let _ = std::fs::remove_file(old);
            }
            eprintln!("checkpoint written to {} after {n} migration points", path.display());
            std::process::exit(0)
        }
        Err(m) if !due => {
            // Asked for by a signal: the program goes on (nothing is lost),
            // and another signal may try again.
            eprintln!("error: checkpoint failed: {m}; the program goes on");
            wanco_cr_pending.store(0, Ordering::SeqCst);
            next_batch(points);
            ROUTE_CONTINUE
        }
        Err(m) => {
            eprintln!("error: checkpoint failed: {m}");
            std::process::exit(2)
        }
    }
}

/// Write `bytes` to `path` so that `path` never holds a partial snapshot:
/// to a temporary file, then swapped in. Returns the temporary path if it
/// now holds the snapshot `path` held before, for the caller to remove
/// (after the checkpoint is in place: on ext4, freeing its blocks costs
/// more than writing the new one, and renaming over it forces the new
/// file's data out first).
fn write_snapshot(path: &std::path::Path, bytes: &[u8]) -> Result<Option<PathBuf>, String> {
    use std::os::unix::ffi::OsStrExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let cannot = |e: std::io::Error| format!("cannot write the checkpoint to {}: {e}", path.display());
    if path.is_dir() {
        // Swapping would move the directory aside.
        return Err(format!("cannot write the checkpoint to {}: it is a directory", path.display()));
    }
    std::fs::write(&tmp, bytes).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot(e)
    })?;
    let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains a NUL byte", p.display()));
    let (from, to) = (c(&tmp)?, c(path)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let swapped = unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_EXCHANGE) } == 0;
    if swapped {
        return Ok(Some(tmp));
    }
    // No snapshot there yet, or a file system without RENAME_EXCHANGE.
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot(e)
    })?;
    Ok(None)
}

// ---------------------------------------------------------------------------
// Checkpoint.

/// Reads of the Wasm thread's own stack, bounded by its mapping.
struct OwnStack {
    lo: u64,
    hi: u64,
}

impl StackRead for OwnStack {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if addr < self.lo || addr.checked_add(8)? > self.hi {
            return None;
        }
        // SAFETY: [lo, hi) is this thread's mapped stack.
        Some(unsafe { std::ptr::read_unaligned(addr as *const u64) })
    }
}

fn own_stack() -> Result<OwnStack, String> {
    // SAFETY: pthread_getattr_np on the current thread fills `attr`, which is
    // destroyed after use.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return Err("cannot find the Wasm thread's stack".into());
        }
        let mut addr: *mut c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            return Err("cannot find the Wasm thread's stack".into());
        }
        Ok(OwnStack { lo: addr as u64, hi: addr as u64 + size as u64 })
    }
}

struct EhFrame {
    /// Load bias of the executable (runtime minus link-time addresses).
    bias: u64,
    hdr: &'static [u8],
    hdr_addr: u64,
    eh_frame: &'static [u8],
    eh_frame_addr: u64,
}

/// `.eh_frame_hdr` and `.eh_frame` of the running executable.
fn own_eh_frame() -> Result<EhFrame, String> {
    struct Found {
        bias: u64,
        hdr: Option<(u64, u64)>,
        segs: Vec<(u64, u64)>,
    }
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes valid program headers; `data` is our
        // `Found`. The first object is the executable.
        unsafe {
            let found = &mut *(data as *mut Found);
            let info = &*info;
            found.bias = info.dlpi_addr;
            for i in 0..info.dlpi_phnum as usize {
                let ph = &*info.dlpi_phdr.add(i);
                let start = info.dlpi_addr + ph.p_vaddr;
                if ph.p_type == libc::PT_GNU_EH_FRAME {
                    found.hdr = Some((start, ph.p_memsz));
                } else if ph.p_type == libc::PT_LOAD {
                    found.segs.push((start, start + ph.p_memsz));
                }
            }
        }
        1 // stop after the executable
    }
    let mut found = Found { bias: 0, hdr: None, segs: Vec::new() };
    // SAFETY: the callback matches dl_iterate_phdr's contract.
    unsafe { libc::dl_iterate_phdr(Some(cb), &mut found as *mut Found as *mut c_void) };
    let (hdr_addr, hdr_len) = found.hdr.ok_or("the executable has no .eh_frame_hdr (PT_GNU_EH_FRAME)")?;
    // SAFETY: the PT_GNU_EH_FRAME segment is mapped for the process's lifetime.
    let hdr = unsafe { std::slice::from_raw_parts(hdr_addr as *const u8, hdr_len as usize) };
    // The header's eh_frame pointer (version 1, pc-relative sdata4 is what
    // every linker writes).
    if hdr.len() < 8 || hdr[0] != 1 || hdr[1] != 0x1b {
        return Err(format!("unsupported .eh_frame_hdr encoding at {hdr_addr:#x}"));
    }
    let rel = i32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as i64;
    let eh_frame_addr = (hdr_addr as i64 + 4 + rel) as u64;
    let (_, seg_end) = found
        .segs
        .iter()
        .find(|(s, e)| *s <= eh_frame_addr && eh_frame_addr < *e)
        .ok_or(".eh_frame is outside every loaded segment")?;
    // SAFETY: from .eh_frame to the end of its loaded segment is mapped.
    let eh_frame = unsafe { std::slice::from_raw_parts(eh_frame_addr as *const u8, (seg_end - eh_frame_addr) as usize) };
    Ok(EhFrame { bias: found.bias, hdr, hdr_addr, eh_frame, eh_frame_addr })
}

/// The declared maximum of memory 0 in pages, as snapshots record it.
pub(crate) fn memory_max(info: &ModuleInfo) -> Option<u32> {
    info.memory0().and_then(|l| l.max).map(|m| m.min(u64::from(u32::MAX)) as u32)
}

/// Capture the program at the current migration point.
impl State {
    fn meta(&mut self) -> Result<&CrMeta, String> {
        if self.meta.is_none() {
            // SAFETY: the instance outlives the run.
            let inst = unsafe { &*self.instance };
            self.meta = Some(module_meta(inst.descriptor())?);
        }
        Ok(self.meta.as_ref().expect("just parsed"))
    }
}

fn checkpoint(st: &mut State, regs: Regs, points: u64) -> Result<(PathBuf, u64, Option<PathBuf>), String> {
    // After a lazy restore, the memory must be whole before it is read.
    crate::pager::settle();
    let mut phases = Phases::start();
    // SAFETY: the instance outlives the run; nothing else uses it while the
    // slow path runs.
    let inst = unsafe { &*st.instance };
    // Memory is packed on the helper thread from the start, while this
    // thread decodes the metadata and walks the stack; it joins in when done.
    let max = memory_max(&inst.info);
    let mem = inst.memory_shared();
    let bytes = mem.map(|m| m.bytes());
    // Pages the process never touched are zero: not even read. Whichever
    // side starts packing first reads which ones they are.
    let touched: std::sync::OnceLock<Option<Vec<bool>>> = std::sync::OnceLock::new();
    let known_zero = |p: u32| {
        let t = touched.get_or_init(|| bytes.and_then(crate::memory::touched_pages));
        t.as_ref().is_some_and(|t| !t.get(p as usize).copied().unwrap_or(true))
    };
    let packer = bytes.map(|b| PagePacker::new(b, max, known_zero));
    let share = mem.is_some_and(|m| crate::memory::share_packing(m.pages() as usize));
    let helper_part = || packer.as_ref().map(|p| p.work());
    let main_part = || -> Result<_, String> {
        st.meta()?;
        let meta = st.meta.as_ref().expect("parsed");
        phases.mark("metadata");
        let eh = own_eh_frame()?;
        let cfi = Cfi::from_eh_frame_hdr(ISA, eh.hdr, eh.hdr_addr, eh.eh_frame, eh.eh_frame_addr).map_err(|e| e.to_string())?;
        phases.mark("cfi");
        let stack = own_stack()?;
        let natives = inst.descriptor().natives(&inst.info);
        let native = wanco_translate::decode::walk(meta, &natives, &cfi, regs, &stack).map_err(|e| e.to_string())?;
        let rd = inst.value_reader();
        let typed = |vals: &[wanco_translate::decode::RawValue]| -> Result<Vec<Value>, String> {
            vals.iter()
                .map(|v| if v.ty == wanco_state::ValType::V128 { Ok(Value::V128(v.bits128())) } else { rd.typed(v.ty, v.bits) })
                .collect()
        };
        let mut frames = Vec::new();
        for vf in native.iter().rev().flat_map(|nf| &nf.frames) {
            let p = meta.points.get(vf.point as usize).ok_or_else(|| format!("corrupt checkpoint metadata: no point {}", vf.point))?;
            frames.push(Frame { func: p.func, code_offset: p.code_offset, kind: p.kind, locals: typed(&vf.locals)?, stack: typed(&vf.stack)? });
        }
        match frames.first() {
            Some(f) if f.func == st.start_func => {}
            Some(f) => return Err(format!("the outermost frame is function {}, not `_start` ({})", f.func, st.start_func)),
            None => return Err("no Wasm frames on the stack".into()),
        }
        let native_view = wanco_translate::native::capture(meta, &native, eh.bias).map_err(|e| e.to_string())?;
        phases.mark("stack walk");
        let cs = inst.capture_state(&rd)?;
        phases.mark("globals+tables");
        let memory = packer.as_ref().map(|p| p.work());
        Ok((frames, native_view, cs, memory))
    };
    let (theirs, mine) = if share { crate::helper::join(helper_part, main_part) } else { (None, main_part()) };
    let (frames, native_view, cs, mine) = mine?;
    let memory = packer.zip(mine).map(|(p, part)| p.finish([part].into_iter().chain(theirs)));
    phases.mark("memory");
    let wasi = crate::wasi_host::WASI
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|w| w.unrestorable().map_or_else(|| Ok(w.state()), Err))
        .ok_or("no WASI context")??;
    let snap = Snapshot {
        producer: Producer { engine: "aot".into(), isa: Some(ISA.name().into()), version: env!("CARGO_PKG_VERSION").into() },
        module_hash: inst.info.hash,
        migration_points: points,
        frames,
        globals: cs.globals,
        tables: cs.tables,
        memory: None,
        data_dropped: cs.data_dropped,
        elem_dropped: cs.elem_dropped,
        wasi,
        native: Some(native_view),
    };
    let bytes = wanco_state::snapshot::encode_packed(&snap, memory.as_ref());
    phases.mark("encode");
    let path = st.file.clone();
    let replaced = write_snapshot(&path, &bytes)?;
    phases.mark("write");
    phases.report();
    Ok((path, points, replaced))
}

// ---------------------------------------------------------------------------
// Restore.

/// Check `snap`'s frames against the module and prepare to rebuild them when
/// `_start` is called next. Call after [`arm`] and [`Instance::install`].
pub fn prepare_restore(snap: &Snapshot) -> Result<(), String> {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let st = guard.as_mut().ok_or("checkpointing is not armed")?;
    st.meta()?;
    restore_mark("metadata");
    // SAFETY: the instance outlives the run.
    let inst = unsafe { &*st.instance };
    if snap.migration_points >= wanco_state::snapshot::MAX_MIGRATION_POINTS {
        return Err(format!(
            "the snapshot says {} migration points were crossed, more than any run reaches (2^63)",
            snap.migration_points
        ));
    }
    let meta = st.meta.as_ref().expect("parsed");
    let point_of = |f: &Frame| meta.points.find(f.func, f.code_offset, f.kind);
    let n = snap.frames.len();
    if n == 0 {
        return Err("the snapshot has no frames".into());
    }
    // A native view written for this very build (by a checkpoint of this
    // binary or `wanco-snap translate --binary` it) must fit its stack maps;
    // a view for another ISA or build only describes, the frames restore.
    if let Some(nv) = &snap.native {
        if nv.isa == meta.isa && nv.build == meta.build {
            let unfit = |e: &dyn std::fmt::Display| format!("the snapshot's native {} frames do not fit this binary: {e}", nv.isa);
            wanco_translate::native::check(meta, nv, &snap.frames).map_err(|e| unfit(&e))?;
            // Their return addresses too, as `wanco-snap verify --binary`
            // checks them. (Not the frame sizes, which verify also checks:
            // that would read the unwind tables, ~40 µs of every restore,
            // for a view that restoring does not use.)
            let eh = own_eh_frame()?;
            let natives = inst.descriptor().natives(&inst.info);
            let start = |def: u32| natives.get(def as usize).map(|a| a.wrapping_sub(eh.bias));
            wanco_translate::native::check_addresses(meta, nv, &start, None).map_err(|e| unfit(&e))?;
        }
    }
    let name = |f: u32| inst.info.func_name(f).map(|n| format!(" `{n}`")).unwrap_or_default();
    let mut frames = Vec::new();
    for (i, f) in snap.frames.iter().enumerate() {
        let at = format!("frame {i} (function {}{}, code offset {:#x})", f.func, name(f.func), f.code_offset);
        let innermost = i + 1 == n;
        if innermost == (f.kind == FrameKind::Call) {
            return Err(format!(
                "{at}: a {:?} point {}",
                f.kind,
                if innermost { "cannot be the innermost frame" } else { "can only be the innermost frame" }
            ));
        }
        let pid = point_of(f).ok_or_else(|| format!("{at}: the module has no {:?} migration point there", f.kind))?;
        let p = meta.points.get(pid as usize).ok_or_else(|| format!("{at}: corrupt checkpoint metadata (point {pid})"))?;
        let func = meta.func(f.func).ok_or_else(|| format!("{at}: not a defined function"))?;
        if f.locals.len() != func.locals.len() {
            return Err(format!("{at}: {} locals in the snapshot, the function has {}", f.locals.len(), func.locals.len()));
        }
        let mut values = vec![0u128; RESTORE_FIXED_SLOTS + func.locals.len() + (func.max_height as usize).max(f.stack.len())];
        for (k, (v, t)) in f.locals.iter().zip(&func.locals).enumerate() {
            if v.ty() != *t {
                return Err(format!("{at}: local {k} is {} in the snapshot, the function declares {t}", v.ty()));
            }
            values[RESTORE_FIXED_SLOTS + k] = inst.raw_value128(v).map_err(|e| format!("{at}: local {k}: {e}"))?;
        }
        if f.stack.len() != p.stack.len() {
            return Err(format!("{at}: {} operand-stack values in the snapshot, the module has {} there", f.stack.len(), p.stack.len()));
        }
        for (k, (v, t)) in f.stack.iter().zip(&p.stack).enumerate() {
            if v.ty() != *t {
                return Err(format!("{at}: operand-stack slot {k} is {} in the snapshot, the module has {t} there", v.ty()));
            }
            values[RESTORE_FIXED_SLOTS + func.locals.len() + k] =
                inst.raw_value128(v).map_err(|e| format!("{at}: operand-stack slot {k}: {e}"))?;
        }
        if i == 0 && f.func != st.start_func {
            return Err(format!("{at}: the outermost frame must be `_start` (function {})", st.start_func));
        }
        if let Some(next) = snap.frames.get(i + 1) {
            match p.callee {
                Some(Callee::Func(c)) if c != next.func => {
                    return Err(format!("{at}: the call there calls function {c}, the next frame is function {}", next.func));
                }
                Some(Callee::Type(t)) => {
                    let want = inst.info.types.get(t as usize);
                    let have = inst.info.func_type(next.func);
                    if want.is_none() || want != have {
                        return Err(format!("{at}: the call_indirect there expects type {t}, the next frame's function {} has another type", next.func));
                    }
                    // The route re-issues the call through these slots.
                    let fr = inst.func_ref(next.func);
                    // SAFETY: FuncRefs of a live instance are valid.
                    unsafe {
                        values[0] = (*fr).native as u128;
                        values[1] = (*fr).vmctx as u128;
                    }
                }
                _ => {}
            }
        }
        let mut chain = vec![(pid, p.route)];
        let mut cur = p;
        while let Some(parent) = cur.parent {
            cur = meta.points.get(parent as usize).ok_or("corrupt checkpoint metadata (parent point)")?;
            chain.push((parent, cur.route));
        }
        chain.reverse();
        if chain[0].0 != func.entry_point {
            return Err(format!("{at}: corrupt checkpoint metadata (route does not start at the entry)"));
        }
        frames.push(RestoreFrame { kind: f.kind, chain, values });
    }
    st.restore = Some(Restore { frames, cur: 0, hop: 0, points: snap.migration_points });
    // Every poll calls the slow path until the frames are rebuilt.
    RESTORING.store(1, Ordering::SeqCst);
    wanco_cr_counter.store(1, Ordering::Relaxed);
    Ok(())
}

fn restore_step(st: &mut State, point: u32) -> Result<u32, String> {
    let meta = st.meta.as_ref().ok_or("metadata not loaded")?;
    let r = st.restore.as_mut().expect("restoring");
    let frame = &mut r.frames[r.cur];
    let chain = &frame.chain;
    if point != chain[r.hop].0 {
        let p = |id: u32| {
            meta.points.get(id as usize).map(|p| format!("function {} offset {:#x}", p.func, p.code_offset)).unwrap_or_default()
        };
        return Err(format!("frame {} diverged: expected point {}, reached {}", r.cur, p(chain[r.hop].0), p(point)));
    }
    if r.hop == 0 {
        // Entering the frame's function: its values go to the buffer the
        // routes load from (the previous frame's routes have run).
        st.values = std::mem::take(&mut frame.values);
        wanco_cr_values.store(st.values.as_mut_ptr(), Ordering::SeqCst);
    }
    if r.hop + 1 == chain.len() {
        // At the frame's own point: the innermost frame is rebuilt.
        let kind = frame.kind;
        let points = r.points;
        st.restore = None;
        RESTORING.store(0, Ordering::SeqCst);
        let target = TARGET.load(Ordering::Relaxed);
        if target <= points {
            // A target at or below the snapshot's count is never reached.
            eprintln!("{}", wanco_state::snapshot::target_behind_note(target, points));
            TARGET.store(u64::MAX, Ordering::Relaxed);
        }
        next_batch(points);
        if timing() {
            if let Some((t, p)) = RESTORE_START.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                p.mark("re-entry");
                p.report();
                eprintln!("wanco-timing: restore {} us", t.elapsed().as_micros());
            }
        }
        return Ok(if kind == FrameKind::Entry { ROUTE_RESTORE_HERE } else { ROUTE_CONTINUE });
    }
    let route = chain[r.hop + 1].1;
    if r.hop + 2 == chain.len() && frame.kind == FrameKind::Call {
        // Routing to the call: the next poll is the callee's entry.
        r.cur += 1;
        r.hop = 0;
    } else {
        r.hop += 1;
    }
    // The next point on the way calls the slow path again.
    wanco_cr_counter.store(1, Ordering::Relaxed);
    Ok(route)
}
