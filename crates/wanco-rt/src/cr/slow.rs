//! The slow path of a migration point: the assembly trampoline
//! `wanco_cr_slow` compiled code calls when its batch of points ends (it
//! saves the callee-saved registers), and [`slow_path`], which starts the
//! next batch, serves a checkpoint request ([`super::capture`], with the
//! control channel's decision) or takes the next step of a restore
//! ([`super::restore`]).
//!
//! `unsafe` here: the trampolines (global assembly) and reading the
//! registers they saved.

use super::armed::STATE;
use super::capture::{checkpoint, Kind};
use super::native::caller_regs;
use super::points::{next_batch, points_now, wanco_cr_pending, PENDING_REQUEST, PENDING_SIGNAL, RESTORING, TARGET};
use super::restore::restore_step;
use super::timing::timing;
use std::ffi::c_void;
use std::sync::atomic::Ordering;
use wanco_state::crmeta::ROUTE_CONTINUE;

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
    if !super::points::in_main() {
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
    // When the Wasm code stopped (a migration's downtime starts here).
    let stopped_at_ns = super::timing::realtime_ns();
    // SAFETY: `saved` is the trampoline's register area.
    let regs = unsafe { caller_regs(saved) };
    if signalled {
        if let Some(req) = super::control::take() {
            // A control-channel request: checkpoint to its file, go on or
            // stop there (see `super::control`).
            wanco_cr_pending.fetch_and(!PENDING_REQUEST, Ordering::SeqCst);
            let file = std::mem::replace(&mut st.file, req.path.clone());
            let kind = if req.postcopy {
                Kind::StateOnly
            } else if req.incremental {
                Kind::Incremental
            } else {
                Kind::Full
            };
            let r = checkpoint(st, regs.clone(), points, kind);
            let r = r.map(|w| {
                if let Some(old) = w.replaced {
                    let _ = std::fs::remove_file(old);
                }
                let bytes = std::fs::metadata(&w.path).map(|m| m.len()).unwrap_or(0);
                super::control::Done { points: w.points, bytes, id: w.id, parent: w.parent, pages: w.pages, at_ns: stopped_at_ns, memory_at: w.memory_at }
            });
            let ok = r.is_ok();
            // Stopped for a migration: the destination's copy attaches to
            // the gateway (if any) in this one's place; this one takes the
            // link back only if it resumes.
            let park = |p: bool| {
                if let Some(w) = crate::wasi_host::WASI.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    w.park_gateway(p);
                }
            };
            if ok && req.stop {
                park(true);
            }
            let _ = req.done.send(r);
            if ok && req.stop {
                match req.decision.recv() {
                    Ok(super::control::Decision::Exit(code, msg)) => {
                        if code == 3 && (req.incremental || req.postcopy) {
                            // The state is kept for the operator to continue the
                            // program from: a full snapshot (the increment's
                            // parents are gone), written over the increment.
                            match checkpoint(st, regs, points, Kind::Final) {
                                Ok(w) => {
                                    if let Some(old) = w.replaced {
                                        let _ = std::fs::remove_file(old);
                                    }
                                }
                                Err(e) => eprintln!("error: cannot write the full snapshot of the kept state: {e}"),
                            }
                        }
                        eprintln!("{msg}");
                        std::process::exit(code)
                    }
                    Ok(super::control::Decision::Resume) | Err(_) => park(false),
                }
            }
            st.file = file;
            next_batch(points);
            return ROUTE_CONTINUE;
        }
        if wanco_cr_pending.load(Ordering::SeqCst) & PENDING_SIGNAL == 0 {
            // A control request withdrawn before this point (its connection
            // closed while the program waited in a host call; the control
            // thread cleared its bit): nothing to do.
            next_batch(points);
            return ROUTE_CONTINUE;
        }
    }
    match checkpoint(st, regs, points, Kind::Final) {
        Ok(super::capture::Written { path, points: n, replaced, .. }) => {
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

fn fatal(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}
