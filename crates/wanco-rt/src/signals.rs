//! Traps: explicit ones from compiled code and runtime helpers, and faults in
//! a linear-memory guard region turned into "out of bounds memory access".
//!
//! Inside [`catch_traps`] a trap unwinds (siglongjmp, via the C shim in
//! `c/trap.c`) back to the caller; outside, it ends the process with a
//! message on stderr and exit code [`TRAP_EXIT_CODE`].

use std::ffi::c_void;
use wanco_state::abi::{TrapCode, TRAP_EXIT_CODE};

extern "C" {
    fn wanco_catch(f: extern "C" fn(*mut c_void), arg: *mut c_void) -> i32;
    fn wanco_catch_active() -> i32;
    fn wanco_unwind(code: i32) -> !;
}

/// Lowest address the Wasm stack may reach; compiled code compares its stack
/// pointer with this at every function entry.
#[no_mangle]
pub static mut wanco_stack_limit: u64 = 0;

/// Set the stack limit (called once the Wasm thread knows its stack bounds).
pub fn set_stack_limit(limit: u64) {
    // SAFETY: written before any Wasm code runs on this (single) Wasm thread.
    unsafe {
        wanco_stack_limit = limit;
    }
}

/// Raise `code`: unwind to the innermost [`catch_traps`], or end the process.
pub fn raise(code: TrapCode) -> ! {
    // SAFETY: the shim only reads its thread-local catch pointer.
    if unsafe { wanco_catch_active() } != 0 {
        // SAFETY: a catch is active, so the jump buffer is live. Frames
        // between here and there hold no destructors (compiled code and
        // runtime helpers that raise only after dropping their borrows).
        unsafe { wanco_unwind(code as i32) }
    }
    die(code)
}

fn die(code: TrapCode) -> ! {
    // A trap right after a lazy restore is reported once the restore is
    // known to be sound (a damaged snapshot is refused instead).
    crate::cr::pager::settle_in_handler();
    // `--count-points` and the notes of a run that ends, as at a normal
    // end and as `wanco interp` prints them on a trap: at an `unreachable`
    // (abort, a panic), where compiled code stores its count. At other traps
    // part of the count is still in registers: nothing rather than a wrong
    // number.
    if code == TrapCode::Unreachable {
        crate::cr::points::at_exit();
    }
    let msg = format!("wasm trap: {}\n", code.message());
    write_stderr(msg.as_bytes());
    // SAFETY: _exit is always safe to call; nothing needs flushing (WASI
    // output is unbuffered).
    unsafe { libc::_exit(TRAP_EXIT_CODE) }
}

fn write_stderr(b: &[u8]) {
    // SAFETY: writing a valid buffer to fd 2; async-signal-safe.
    unsafe {
        libc::write(2, b.as_ptr() as *const c_void, b.len());
    }
}

struct Closure<'a>(&'a mut dyn FnMut());

extern "C" fn call_closure(arg: *mut c_void) {
    // SAFETY: `arg` is the `Closure` passed by `catch_traps` below, alive for the call.
    let c = unsafe { &mut *(arg as *mut Closure) };
    (c.0)()
}

/// Run `f`; a trap inside it returns `Err(code)` instead of ending the process.
/// `f` must not hold values with destructors across calls into Wasm code.
pub fn catch_traps(f: &mut dyn FnMut()) -> Result<(), TrapCode> {
    let mut c = Closure(f);
    // SAFETY: `call_closure` gets a pointer to `c`, which outlives the call.
    let r = unsafe { wanco_catch(call_closure, &mut c as *mut Closure as *mut c_void) };
    if r < 0 {
        Ok(())
    } else {
        Err(TrapCode::from_u32(r as u32).unwrap_or(TrapCode::Unreachable))
    }
}

extern "C" fn on_fault(sig: i32, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if crate::memory::in_reservation(addr) {
        raise(TrapCode::MemoryOutOfBounds);
    }
    // SAFETY: reading the limit written before Wasm started.
    let limit = unsafe { wanco_stack_limit } as usize;
    if limit != 0 && addr < limit && addr + (1 << 20) > limit.saturating_sub(1 << 20) {
        raise(TrapCode::StackExhausted);
    }
    let msg = format!("wanco: internal error: fatal signal {sig} at address 0x{addr:x}\n");
    write_stderr(msg.as_bytes());
    // SAFETY: restoring the default disposition and re-raising gives the
    // usual crash (core dump) for faults that are not Wasm traps.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Ignore SIGPIPE, as Rust programs and wasmtime do: a write to a closed
/// pipe then fails with EPIPE, which WASI reports to the guest, instead of
/// killing the process. (The C `main` of a compiled program does not run
/// Rust's runtime initialisation, which would do this.)
pub fn ignore_sigpipe() {
    // SAFETY: setting the disposition of SIGPIPE to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Install the fault handlers and an alternate signal stack for this thread.
pub fn install() {
    const ALT: usize = 256 * 1024;
    // SAFETY: the alternate stack is leaked (lives forever); sigaction with a
    // handler of the SA_SIGINFO signature.
    unsafe {
        let stack = Box::leak(vec![0u8; ALT].into_boxed_slice());
        let ss = libc::stack_t { ss_sp: stack.as_mut_ptr() as *mut c_void, ss_flags: 0, ss_size: ALT };
        libc::sigaltstack(&ss, std::ptr::null_mut());
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

/// Run `f` on a fresh thread with a `size`-byte stack, with fault handling
/// installed and the stack limit set so that runaway recursion traps cleanly.
///
/// While `f` runs, this thread serves [`crate::helper::join`] jobs.
pub fn run_on_wasm_stack<T: Send + 'static>(size: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (serving, jobs) = crate::helper::serving();
    let wasm = std::thread::Builder::new()
        .name("wasm".into())
        .stack_size(size)
        .spawn(move || {
            // Closes the job queue however `f` ends.
            let _serving = serving;
            install();
            let here = 0u8;
            let top = &here as *const u8 as u64;
            // Keep 256 KiB for runtime helpers and host calls below the limit.
            set_stack_limit(top - size as u64 + 256 * 1024);
            f()
        })
        .expect("cannot start the Wasm thread");
    crate::helper::serve(jobs);
    wasm.join()
        .unwrap_or_else(|_| {
            write_stderr(b"wanco: internal error: runtime panicked\n");
            std::process::exit(70)
        })
}

/// Entry for compiled code: raise a trap.
#[no_mangle]
pub extern "C" fn wanco_trap(_vmctx: *mut c_void, code: u32) -> ! {
    raise(TrapCode::from_u32(code).unwrap_or(TrapCode::Unreachable))
}
