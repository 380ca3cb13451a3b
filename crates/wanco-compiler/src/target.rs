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
            Target::X86_64 => ("x86-64-v2", ""),
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

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        LlvmTarget::initialize_x86(&InitializationConfig::default());
        LlvmTarget::initialize_aarch64(&InitializationConfig::default());
        // Deopt values (the Wasm state at each return site) stay where the
        // register allocator put them — callee-saved registers or spill
        // slots — instead of being stored to extra stack slots at every call.
        let mut args: Vec<std::ffi::CString> = vec![c"wanco".into(), c"-use-registers-for-deopt-values".into()];
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
        // Extra LLVM options for investigating the compiler itself (e.g.
        // `WANCO_LLVM_ARGS=-time-passes`); words with a NUL are skipped.
        if let Ok(extra) = std::env::var("WANCO_LLVM_ARGS") {
            args.extend(extra.split_whitespace().filter_map(|a| std::ffi::CString::new(a).ok()));
        }
        let ptrs: Vec<*const std::ffi::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        // SAFETY: `ptrs` are valid NUL-terminated strings (`args` outlives
        // the call); called once, before any code generation (LLVM's option
        // parser is not thread-safe).
        unsafe { llvm_sys::support::LLVMParseCommandLineOptions(ptrs.len() as i32, ptrs.as_ptr(), c"".as_ptr()) };
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
    // With the C/R instrumentation, code generation needs LLVM's level 1 at
    // least: at level 0 the fast register allocator must keep every deopt
    // value in a register (`-use-registers-for-deopt-values`) and runs out
    // of them at a call with more than a dozen live values (any C program).
    // `-O 0` still runs no IR optimisation.
    let tm = machine(t, if cr { opt.max(1) } else { opt })?;
    module.set_triple(&tm.get_triple());
    module.set_data_layout(&tm.get_target_data().get_data_layout());
    let mut passes = format!("default<O{}>", opt.min(3));
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

/// Optimise and emit an object file.
pub(crate) fn emit_object(module: &Module, t: Target, opt: u8, cr: bool) -> Result<Vec<u8>> {
    let tm = optimize(module, t, opt, cr)?;
    let buf = tm
        .write_to_memory_buffer(module, FileType::Object)
        .map_err(|e| CompileError::Llvm(e.to_string()))?;
    Ok(buf.as_slice().to_vec())
}
