//! Target machines and object emission.

use crate::error::{CompileError, Result};
use inkwell::module::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, FileType, InitializationConfig, RelocMode, Target as LlvmTarget, TargetMachine, TargetTriple};
use inkwell::OptimizationLevel;
use std::fmt;
use std::str::FromStr;
use std::sync::Once;

/// An ISA wanco compiles for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// x86_64 Linux.
    X86_64,
    /// aarch64 Linux.
    Aarch64,
}

impl Target {
    /// The host ISA.
    pub fn host() -> Target {
        if cfg!(target_arch = "aarch64") {
            Target::Aarch64
        } else {
            Target::X86_64
        }
    }

    /// LLVM / Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64-unknown-linux-gnu",
            Target::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Short name (`x86_64`, `aarch64`).
    pub fn name(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64",
            Target::Aarch64 => "aarch64",
        }
    }

    /// The linker used for relocatable links (`ld -r`) for this target.
    pub fn ld(self) -> &'static str {
        match (self, Target::host()) {
            (a, b) if a == b => "ld",
            (Target::Aarch64, _) => "aarch64-linux-gnu-ld",
            (Target::X86_64, _) => "x86_64-linux-gnu-ld",
        }
    }

    /// `objcopy` for this target (binutils, next to [`Target::ld`]).
    pub fn objcopy(self) -> &'static str {
        match (self, Target::host()) {
            (a, b) if a == b => "objcopy",
            (Target::Aarch64, _) => "aarch64-linux-gnu-objcopy",
            (Target::X86_64, _) => "x86_64-linux-gnu-objcopy",
        }
    }

    /// The C compiler driver used to link for this target.
    pub fn linker(self) -> &'static str {
        match (self, Target::host()) {
            (a, b) if a == b => "cc",
            (Target::Aarch64, _) => "aarch64-linux-gnu-gcc",
            (Target::X86_64, _) => "x86_64-linux-gnu-gcc",
        }
    }

    fn cpu_features(self) -> (&'static str, &'static str) {
        match self {
            // x86-64-v2 (SSE4.2, POPCNT): every x86 server of the last decade;
            // gives native roundss/roundsd for floor/ceil/trunc/nearest.
            // LLVM tunes x86-64-v2 for Sandy Bridge, whose `fast-shld-rotate`
            // makes a rotate by a constant `shld r, r, imm`: one µop on
            // Intel, but several with a 3-4 cycle latency on AMD Zen, where
            // the rotate chains of SHA-2 and Salsa20 made libsodium-stream2
            // 1.6x and pwhash_scrypt_ll 1.3x slower than wasmtime (which
            // emits `rol`). `rol r, imm` is one µop on both.
            Target::X86_64 => ("x86-64-v2", "-fast-shld-rotate"),
            Target::Aarch64 => ("generic", "+neon"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Target, String> {
        match s {
            "x86_64" | "x86-64" | "amd64" | "x86_64-unknown-linux-gnu" => Ok(Target::X86_64),
            "aarch64" | "arm64" | "aarch64-unknown-linux-gnu" => Ok(Target::Aarch64),
            other => Err(format!("unknown target `{other}` (expected x86_64 or aarch64)")),
        }
    }
}

/// The LLVM options wanco sets, deopt values in registers or not (see
/// [`emit_object_retrying`]).
fn llvm_args(deopt_in_registers: bool) -> Vec<std::ffi::CString> {
    let mut args: Vec<std::ffi::CString> = vec![c"wanco".into()];
    // Deopt values (the Wasm state at each return site) stay where the
    // register allocator put them — callee-saved registers or spill
    // slots — instead of being stored to extra stack slots at every call.
    if deopt_in_registers {
        args.push(c"-use-registers-for-deopt-values".into());
    }
    // The register coalescer stops joining a live interval with at least
    // 50 value numbers after 16 joins (LLVM: 100 and 256). With the C/R
    // instrumentation every local live across a call gets a restore phi
    // at that call site, so a straight-line function with many calls
    // chains hundreds of phis per local, and each join walks the whole
    // growing interval (`clearKillFlags`, `shrinkToUses`): quadratic. A
    // function of 80 locals around 500 calls compiled in 14.8 s with
    // LLVM's limits, 8.7 s with these (0.4 s with `--no-cr`).
    args.push(c"-large-interval-size-threshold=50".into());
    args.push(c"-large-interval-freq-threshold=16".into());
    // CodeGenPrepare iterates over a function's blocks until nothing
    // changes, and by default starts the walk again from the first block
    // whenever a change alters the dominator tree; for functions of more
    // than `-cgpp-huge-func` blocks (LLVM: 10,000) it goes on instead and
    // revisits only the blocks that changed. Instrumented code has many
    // such changes (the restore routes' blocks): wasi-libc's `printf_core`
    // took 173 ms of CodeGenPrepare, 0.02 s in this mode, which is made
    // the mode of every function. Nearly the same code (gcc-loops' hot
    // function identical, sqlite3's text 2 % smaller); compile CPU of 14
    // Sightglass programs −7 % (geomean), shootout-ed25519 −30 %, run time
    // unchanged.
    args.push(c"-cgpp-huge-func=0".into());
    // x86: innermost loops start at a 64-byte boundary (LLVM: 16). A tight
    // loop that straddles one ran at half speed on this project's AMD Zen 4
    // machines (a 6-instruction store loop at 48 mod 64: 2.0–3.0x the time
    // at 0 mod 64): Sightglass `shootout-sieve`'s marking loop ran 0.80x
    // with it (A/B, 15 programs, 3 interleaved runs: the 14 others 0.96–
    // 1.02x, compile time equal).
    args.push(c"-x86-experimental-pref-innermost-loop-alignment=6".into());
    // Extra LLVM options for investigating the compiler itself (e.g.
    // `WANCO_LLVM_ARGS=-time-passes`); words with a NUL are skipped.
    if let Ok(extra) = std::env::var("WANCO_LLVM_ARGS") {
        args.extend(extra.split_whitespace().filter_map(|a| std::ffi::CString::new(a).ok()));
    }
    args
}

fn parse_llvm_args(args: &[std::ffi::CString]) {
    let ptrs: Vec<*const std::ffi::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    // SAFETY: `ptrs` are valid NUL-terminated strings (`args` outlives the
    // call); callers hold `CODEGEN` exclusively or run once before any code
    // generation (LLVM's option parser is not thread-safe).
    unsafe { llvm_sys::support::LLVMParseCommandLineOptions(ptrs.len() as i32, ptrs.as_ptr(), c"".as_ptr()) };
}

extern "C" {
    /// `llvm::cl::ResetAllOptionOccurrences()` (libLLVM's C++ API, no C
    /// binding): every option back to its default and unset, so that the
    /// options can be parsed again.
    #[link_name = "_ZN4llvm2cl25ResetAllOptionOccurrencesEv"]
    fn llvm_reset_all_option_occurrences();
}

/// Set LLVM's options again, deopt values in registers or not.
fn reparse_llvm_args(deopt_in_registers: bool) {
    // SAFETY: a C++ function of libLLVM without arguments or result (the
    // Itanium ABI passes nothing); callers hold `CODEGEN` exclusively, so no
    // code generation reads the options meanwhile.
    unsafe { llvm_reset_all_option_occurrences() };
    parse_llvm_args(&llvm_args(deopt_in_registers));
}

/// Held shared by every code generation, exclusively while LLVM's options
/// change (see [`emit_object_retrying`]).
static CODEGEN: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        LlvmTarget::initialize_x86(&InitializationConfig::default());
        LlvmTarget::initialize_aarch64(&InitializationConfig::default());
        parse_llvm_args(&llvm_args(true));
    });
}

fn machine(t: Target, opt: u8) -> Result<TargetMachine> {
    init();
    let triple = TargetTriple::create(t.triple());
    let target = LlvmTarget::from_triple(&triple).map_err(|e| CompileError::Llvm(e.to_string()))?;
    let (cpu, features) = t.cpu_features();
    let level = match opt {
        0 => OptimizationLevel::None,
        1 => OptimizationLevel::Less,
        2 => OptimizationLevel::Default,
        _ => OptimizationLevel::Aggressive,
    };
    target
        .create_target_machine(&triple, cpu, features, level, RelocMode::PIC, CodeModel::Default)
        .ok_or_else(|| CompileError::Llvm(format!("no LLVM target machine for {}", t.triple())))
}

/// Set triple and data layout, then run the optimisation pipeline.
pub(crate) fn optimize(module: &Module, t: Target, opt: u8, cr: bool) -> Result<TargetMachine> {
    init();
    let _shared = CODEGEN.read().unwrap_or_else(|e| e.into_inner());
    optimize_locked(module, t, opt, cr)
}

/// The code generation level for IR optimisation level `opt`.
fn codegen_level(opt: u8, cr: bool) -> u8 {
    // With the C/R instrumentation, code generation needs LLVM's level 1 at
    // least: at level 0 the fast register allocator must keep every deopt
    // value in a register (`-use-registers-for-deopt-values`) and runs out
    // of them at a call with more than a dozen live values (any C program).
    // `-O 0` still runs no IR optimisation.
    if cr {
        opt.max(1)
    } else {
        opt
    }
}

fn optimize_locked(module: &Module, t: Target, opt: u8, cr: bool) -> Result<TargetMachine> {
    let tm = machine(t, codegen_level(opt, cr))?;
    module.set_triple(&tm.get_triple());
    module.set_data_layout(&tm.get_target_data().get_data_layout());
    // Investigating the compiler itself: `WANCO_PIPELINE` replaces the
    // optimisation pipeline (new pass manager syntax, e.g. the text of
    // `opt -passes='default<O2>' -print-pipeline-passes` with passes left
    // out); the statepoint rewrite is still appended.
    let mut passes = std::env::var("WANCO_PIPELINE").unwrap_or_else(|_| format!("default<O{}>", opt.min(3)));
    if cr {
        // After optimisation (inlining extends the deopt bundles): calls with
        // a deopt bundle become statepoints with a stackmap record at their
        // return address.
        passes.push_str(",rewrite-statepoints-for-gc");
    }
    module
        .run_passes(&passes, &tm, PassBuilderOptions::create())
        .map_err(|e| CompileError::Llvm(e.to_string()))?;
    Ok(tm)
}

/// Optimise and emit an object file of code without the C/R
/// instrumentation's statepoints (the metadata object, a bundle's `main`).
pub(crate) fn emit_object(module: &Module, t: Target, opt: u8) -> Result<Vec<u8>> {
    init();
    let _shared = CODEGEN.read().unwrap_or_else(|e| e.into_inner());
    let tm = optimize_locked(module, t, opt, false)?;
    generate(&tm, module)
}

/// Optimise and emit an object file, deopt values in registers (see
/// `llvm_args`). LLVM 19's greedy allocator can fail with "ran out of
/// registers during register allocation" with them there (Sightglass
/// `rust-compression`: 7 functions, among them one of 12 calls and 13
/// locals; `regex`: one part of 31 small functions of a `-j 64` compile),
/// never with them in stack slots (LLVM stores each to a stack slot at
/// every call, which takes no register at the call; see
/// [`is_register_exhaustion`]). With the C/R instrumentation and `retry`,
/// code generation that runs out of registers is done once more, with them
/// in stack slots (the option is global to LLVM: that code generation runs
/// alone), on a copy of the module taken after optimisation (code
/// generation changes the IR it runs on).
/// The retry neither builds the IR again nor optimises it again: before,
/// it did both (`rust-compression`, both parts retried: 55 s CPU).
/// Returns the object and whether it took the second code generation.
pub(crate) fn emit_object_retrying(module: &Module, t: Target, opt: u8, cr: bool, retry: bool) -> Result<(Vec<u8>, bool)> {
    init();
    let (first, spare) = {
        let _shared = CODEGEN.read().unwrap_or_else(|e| e.into_inner());
        let tm = optimize_locked(module, t, opt, cr)?;
        let spare = (cr && retry).then(|| copy_module(module));
        (generate(&tm, module), spare)
    };
    match (first, spare) {
        (Err(e), Some(spare)) if is_register_exhaustion(&e) => {
            let _alone = CODEGEN.write().unwrap_or_else(|e| e.into_inner());
            reparse_llvm_args(false);
            let out = machine(t, codegen_level(opt, cr)).and_then(|tm| generate(&tm, &spare));
            reparse_llvm_args(true);
            Ok((out?, true))
        }
        (r, _) => Ok((r?, false)),
    }
}

/// A copy of `module` in its context (`LLVMCloneModule`; inkwell's `clone`
/// first runs the verifier over the whole module, and code generation
/// verifies its input anyway).
fn copy_module<'ctx>(module: &Module<'ctx>) -> Module<'ctx> {
    // SAFETY: `module` is a live module the optimisation pipeline has just
    // run over (so well-formed, which cloning needs); the copy is a new module of the same
    // context, owned by the returned `Module`, which disposes of it.
    unsafe { Module::new(llvm_sys::core::LLVMCloneModule(module.as_mut_ptr())) }
}

/// Generate the object of an optimised `module`, catching LLVM's errors.
fn generate(tm: &TargetMachine, module: &Module) -> Result<Vec<u8>> {
    let errors = LlvmErrors::catch(module);
    let buf = tm
        .write_to_memory_buffer(module, FileType::Object)
        .map_err(|e| CompileError::Llvm(e.to_string()))?;
    errors.check()?;
    Ok(buf.as_slice().to_vec())
}

/// The errors LLVM reports through its context while generating code
/// (without a handler LLVM prints them and exits the process: the register
/// allocator's "ran out of registers" did so). Removes its handler when
/// dropped.
struct LlvmErrors {
    ctx: llvm_sys::prelude::LLVMContextRef,
    errors: Box<std::cell::RefCell<Vec<String>>>,
}

extern "C" fn on_llvm_diagnostic(di: llvm_sys::prelude::LLVMDiagnosticInfoRef, errors: *mut std::ffi::c_void) {
    // SAFETY: `errors` is the `RefCell` of the `LlvmErrors` that installed
    // this handler and outlives it (the handler is removed on drop); `di` is
    // the diagnostic LLVM passes, valid during the call; the description is
    // a string LLVM allocated, released with `LLVMDisposeMessage`.
    unsafe {
        if llvm_sys::core::LLVMGetDiagInfoSeverity(di) != llvm_sys::LLVMDiagnosticSeverity::LLVMDSError {
            return;
        }
        let d = llvm_sys::core::LLVMGetDiagInfoDescription(di);
        let text = std::ffi::CStr::from_ptr(d).to_string_lossy().into_owned();
        llvm_sys::core::LLVMDisposeMessage(d);
        (*(errors as *const std::cell::RefCell<Vec<String>>)).borrow_mut().push(text);
    }
}

impl LlvmErrors {
    fn catch(module: &Module) -> LlvmErrors {
        use inkwell::context::AsContextRef;
        let ctx = module.get_context().as_ctx_ref();
        let errors = Box::new(std::cell::RefCell::new(Vec::new()));
        // SAFETY: `ctx` is the module's live context; the pointer handed to
        // LLVM stays valid (boxed) until `drop` removes the handler.
        unsafe {
            llvm_sys::core::LLVMContextSetDiagnosticHandler(ctx, Some(on_llvm_diagnostic), &*errors as *const _ as *mut std::ffi::c_void)
        };
        LlvmErrors { ctx, errors }
    }

    fn check(&self) -> Result<()> {
        match self.errors.borrow().first() {
            Some(e) => Err(CompileError::Llvm(e.clone())),
            None => Ok(()),
        }
    }
}

impl Drop for LlvmErrors {
    fn drop(&mut self) {
        // SAFETY: the context is still alive (the module borrowed by
        // `catch` outlives this guard in `generate`).
        unsafe { llvm_sys::core::LLVMContextSetDiagnosticHandler(self.ctx, None, std::ptr::null_mut()) };
    }
}

/// Whether `e` is LLVM's register allocator giving up (see [`emit_object_retrying`]).
pub(crate) fn is_register_exhaustion(e: &CompileError) -> bool {
    matches!(e, CompileError::Llvm(m) if m.contains("ran out of registers"))
}
