//! The migration-point counter and what can ask for a checkpoint: the
//! symbols compiled code polls ([`wanco_cr_counter`], [`wanco_cr_pending`]),
//! the batches of points, `SIGUSR1`, the `--checkpoint-after-points`
//! target, and the program's identity for the control channel.
//!
//! Compiled code polls at every migration point (see the compiler's
//! `codegen/func/cr.rs`): it counts [`wanco_cr_counter`] down, and when the
//! count reaches zero it calls `wanco_cr_slow` ([`super::slow`]). The count
//! runs in batches of at most [`BATCH`] points: at the end of each the slow
//! path looks at [`wanco_cr_pending`] (set by `SIGUSR1`) and at the target,
//! and starts the next batch. The poll is thus one decrement and one branch
//! on a register; a signal is served within one batch, and the count stays
//! exact (the batch never runs past the target).
//!
//! `unsafe` here: installing the `SIGUSR1` handler.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// `_start` has begun.
static IN_MAIN: AtomicBool = AtomicBool::new(false);
/// Checkpointing is armed (a compiled program with metadata).
static ARMED: AtomicBool = AtomicBool::new(false);
/// `--count-points`.
static COUNT_POINTS: AtomicBool = AtomicBool::new(false);

use wanco_translate::unwind::Isa;

/// The ISA this runtime is built for.
pub const ISA: Isa = if cfg!(target_arch = "aarch64") { Isa::Aarch64 } else { Isa::X86_64 };

/// Migration points left in the current batch (compiled code counts it
/// down in a register, and keeps this global current at every call; it
/// calls the slow path when the count reaches zero).
#[no_mangle]
pub static wanco_cr_counter: AtomicU64 = AtomicU64::new(BATCH);

/// Non-zero: a checkpoint was requested — by `SIGUSR1` ([`PENDING_SIGNAL`])
/// or on the control channel ([`PENDING_REQUEST`]); it is taken at the end
/// of the current batch.
#[no_mangle]
pub static wanco_cr_pending: AtomicU32 = AtomicU32::new(0);

/// The bit of [`wanco_cr_pending`] `SIGUSR1` sets: checkpoint and exit.
pub const PENDING_SIGNAL: u32 = 1;
/// The bit of [`wanco_cr_pending`] a control-channel request sets (the
/// request itself says what to do, and may be withdrawn before it is served).
pub const PENDING_REQUEST: u32 = 2;

/// The most migration points a batch counts before the slow path runs: the
/// latency of a signal, in points (a few microseconds to a millisecond of
/// Wasm code), and the rate of slow-path calls (one per `BATCH` points).
pub const BATCH: u64 = 1 << 16;

/// The migration-point count at which the current batch ends: the count now
/// is `BATCH_END - wanco_cr_counter`.
pub(crate) static BATCH_END: AtomicU64 = AtomicU64::new(BATCH);

/// The migration-point count at which to checkpoint (`u64::MAX`: never).
pub(crate) static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);

/// Non-zero while a restore rebuilds the frames: every poll calls the slow
/// path (the counter is kept at 1).
pub(crate) static RESTORING: AtomicU32 = AtomicU32::new(0);

/// The migration points passed so far.
pub(crate) fn points_now() -> u64 {
    BATCH_END.load(Ordering::Relaxed).wrapping_sub(wanco_cr_counter.load(Ordering::Relaxed))
}

/// Start a batch at count `passed`: it ends at the target or after
/// [`BATCH`] points, whichever comes first.
pub(crate) fn next_batch(passed: u64) {
    let target = TARGET.load(Ordering::Relaxed);
    let n = if target > passed { (target - passed).min(BATCH) } else { BATCH };
    BATCH_END.store(passed.wrapping_add(n), Ordering::Relaxed);
    wanco_cr_counter.store(n, Ordering::Relaxed);
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


/// Set the countdown before instantiation (the start function counts too).
pub fn preset(opts: &CrOptions) {
    TARGET.store(opts.after_points.unwrap_or(u64::MAX), Ordering::Relaxed);
    next_batch(0);
}


/// The module hash (hex) of the armed instance, for the control channel.
static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// This runtime's ISA and the module's hash (hex; empty before
/// instantiation), for [`super::control`].
pub fn identity() -> (&'static str, &'static str) {
    (ISA.name(), IDENTITY.get().map(|s| s.as_str()).unwrap_or(""))
}

/// The migration points passed so far (approximate while the Wasm thread
/// runs: it counts in registers between calls).
pub fn points() -> u64 {
    points_now()
}

/// Ask for a checkpoint at the next migration point (what `SIGUSR1` does;
/// used by [`super::control`], whose request says what to do with it).
pub fn request_checkpoint() {
    wanco_cr_pending.fetch_or(PENDING_REQUEST, Ordering::SeqCst);
}

/// A control request was withdrawn before the program served it.
pub(crate) fn withdraw_request() {
    wanco_cr_pending.fetch_and(!PENDING_REQUEST, Ordering::SeqCst);
}

/// `_start` begins: checkpoints may be taken from now on.
pub fn enter_main() {
    IN_MAIN.store(true, Ordering::Relaxed);
}

/// Whether `_start` has begun ([`enter_main`]).
pub(crate) fn in_main() -> bool {
    IN_MAIN.load(Ordering::Relaxed)
}

/// Checkpointing is armed for an instance (`armed::arm`); `count`: print
/// the migration-point count at exit.
pub(crate) fn set_armed(hash_hex: String, count: bool) {
    let _ = IDENTITY.set(hash_hex);
    COUNT_POINTS.store(count, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
}

/// Called before the process exits normally: prints the migration-point
/// count if asked.
pub fn at_exit() {
    // Nothing of a lazily restored run ends before the restore is whole.
    super::pager::settle();
    {
        if ARMED.load(Ordering::Relaxed) {
            if COUNT_POINTS.load(Ordering::Relaxed) {
                let points = points_now();
                eprintln!("migration points: {points}");
            }
            if wanco_cr_pending.load(Ordering::Relaxed) != 0 {
                eprintln!("note: SIGUSR1 arrived, but the program ended before its next migration point: no checkpoint was taken");
            }
            let target = TARGET.load(Ordering::Relaxed);
            if target != u64::MAX && in_main() {
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
    wanco_cr_pending.fetch_or(PENDING_SIGNAL, Ordering::SeqCst);
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
