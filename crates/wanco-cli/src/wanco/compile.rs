//! `wanco compile`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use wanco_compiler::{CompileOptions, Entry, LinkInputs, Target};
use wanco_state::module::{ImportKind, ModuleInfo};

/// Options of `wanco compile`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  wanco compile app.wasm -o app\n  wanco compile app.wasm --target aarch64 -o app.a64\n  wanco compile app.wat -O3 -o app\n  wanco compile app.wasm --emit llvm-ir -o app.ll\n  wanco compile app.wasm --no-cr -o app.base")]
pub struct Opts {
    /// Input module (.wasm binary or .wat text; `-` for stdin).
    pub input: PathBuf,
    /// Output file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Target ISA: x86_64 or aarch64 (default: the host).
    #[arg(long, value_parser = parse_target)]
    pub target: Option<Target>,
    /// Optimisation level 0-3.
    #[arg(short = 'O', default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub opt_level: u8,
    /// What to produce.
    #[arg(long, value_enum, default_value_t = Emit::Exe)]
    pub emit: Emit,
    /// How out-of-bounds memory accesses are caught: `guard` (guard pages,
    /// no checks in the code) or `explicit` (compare every access with the
    /// memory size: exact trap order even for loads whose value is unused,
    /// at some run-time cost).
    #[arg(long, value_enum, default_value_t = BoundsChecks::Guard)]
    pub bounds_checks: BoundsChecks,
    /// Build without checkpoint/restore instrumentation (no migration
    /// points, no stackmaps): the baseline the C/R overhead is measured
    /// against. Such a binary refuses --restore and --checkpoint-*.
    #[arg(long)]
    pub no_cr: bool,
    /// Make every NaN a float operation produces the positive canonical NaN,
    /// so that NaN bits (and a program's path, if it looks at them) are the
    /// same on x86_64 and aarch64. Costs a compare and a select after each
    /// float operation: up to 2.3x on float-heavy loops.
    #[arg(long)]
    pub canonicalize_nans: bool,
    /// Testing aid for `wanco-snap diff --against-interp`; never use
    /// otherwise: miscompile the i32/i64 add/sub/mul at this byte offset of
    /// the module file (decimal or 0x-hex) so that its result is one too big.
    #[arg(long, hide = true, value_name = "OFFSET", value_parser = parse_offset)]
    pub inject_fault: Option<u64>,
    /// Compile the module's functions on N threads side by side, in N parts
    /// (or a multiple of N where parts of at most 1 MiB of code need more;
    /// at most one per function). Default: one per core, and one part for a
    /// module of less than 32 KiB of code. The executable is the same for
    /// the same N and behaves the same for every N.
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub jobs: Option<u32>,
}

fn parse_offset(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("expected a byte offset (decimal or 0x-hex), got `{s}`"))
}

/// Bounds-checking strategies.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundsChecks {
    /// Guard pages only.
    Guard,
    /// An explicit comparison before every access.
    Explicit,
}

/// Output kinds.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// A standalone executable.
    Exe,
    /// The relocatable object of the module.
    Obj,
    /// Optimised LLVM IR (text).
    LlvmIr,
}

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse()
}

/// Read a module from a path or stdin and convert text to binary.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let bytes = if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).context("reading stdin")?;
        v
    } else {
        std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?
    };
    Ok(wanco_compiler::wasm_bytes(&bytes)?.into_owned())
}

/// Refuse imports a compiled program cannot satisfy, before spending time in LLVM.
pub fn check_imports(info: &ModuleInfo) -> Result<()> {
    for imp in &info.imports {
        let ok = match imp.kind {
            ImportKind::Func(t) => {
                let wasi = imp.module == "wasi_snapshot_preview1" || imp.module == "wasi_unstable";
                match wanco_wasi::WasiFunc::from_name(&imp.name).filter(|_| wasi) {
                    Some(f) => {
                        let (p, r) = f.signature();
                        let ft = &info.types[t as usize];
                        if ft.params != p || ft.results != r {
                            bail!(
                                "import `{}::{}` has type {:?} -> {:?}, but WASI defines {:?} -> {:?}",
                                imp.module, imp.name, ft.params, ft.results, p, r
                            );
                        }
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if !ok {
            bail!(
                "unknown import `{}::{}`: a compiled program can only import WASI preview1 functions",
                imp.module,
                imp.name
            );
        }
    }
    Ok(())
}

/// Modules of at least this size get a progress bar (when stderr is a
/// terminal): their compile takes seconds to minutes.
const LARGE_MODULE: usize = 256 * 1024;

/// `opts` with a progress bar on stderr (functions compiled / defined
/// functions) if stderr is a terminal and the module is large; the bar to
/// clear when done.
fn with_progress(wasm: &[u8], opts: &CompileOptions) -> (CompileOptions, Option<indicatif::ProgressBar>) {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    let mut opts = opts.clone();
    if opts.progress.is_some() || wasm.len() < LARGE_MODULE || !std::io::stderr().is_terminal() {
        return (opts, None);
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("wanco: compiling [{elapsed}] {bar:30} {pos}/{len} functions") {
        bar.set_style(style);
    }
    // The count moves as parts finish: keep the elapsed time ticking.
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
    let b = bar.clone();
    opts.progress = Some(wanco_compiler::Progress(std::sync::Arc::new(move |done, total| {
        b.set_length(total as u64);
        b.set_position(done as u64);
    })));
    (opts, Some(bar))
}

/// Compile `wasm` into an executable at `out`.
pub fn compile_to(wasm: &[u8], out: &Path, opts: &CompileOptions) -> Result<()> {
    let info = wanco_compiler::module_info(wasm)?;
    check_imports(&info)?;
    let target = opts.target;
    // Before spending time in LLVM: the tools the compile and the link run.
    check_linker(target)?;
    let (opts, bar) = with_progress(wasm, opts);
    let obj = wanco_compiler::compile_object(wasm, &opts);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let obj = obj?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let obj_path = dir.path().join("module.o");
    std::fs::write(&obj_path, obj)?;
    let runtime = wanco_compiler::runtime_library(target)?;
    wanco_compiler::link_executable(&LinkInputs { objects: &[obj_path], runtime: &runtime, output: out, target })
        .map_err(|e| with_libc_hint(e, target))?;
    Ok(())
}

/// `sudo ` unless we are root.
fn sudo() -> &'static str {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        ""
    } else {
        "sudo "
    }
}

/// The Debian packages that link executables for `target` on this host:
/// the C compiler driver and the C library's development files (crt1.o,
/// libc, libm, libpthread, libdl).
fn toolchain_packages(target: Target) -> &'static str {
    match (target, Target::host()) {
        (a, b) if a == b => "gcc libc6-dev",
        (Target::Aarch64, _) => "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
        (Target::X86_64, _) => "gcc-x86-64-linux-gnu libc6-dev-amd64-cross",
    }
}

/// Find an executable on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Refuse, before compiling, when the linkers for `target` are not
/// installed (`ld -r` joins the module's objects, `cc` links the
/// executable; gcc's package brings binutils' `ld`), naming the command
/// that installs them.
fn check_linker(target: Target) -> Result<()> {
    for tool in [target.linker(), target.ld(), target.objcopy()] {
        if find_on_path(tool).is_none() {
            bail!(
                "cannot link the {target} executable: `{tool}` (the C toolchain wanco links with) is not installed \
                 or not on PATH; install it with `{}apt-get install {}`",
                sudo(),
                toolchain_packages(target)
            );
        }
    }
    Ok(())
}

/// A link that failed for want of the C library's files gets the command
/// that installs them.
fn with_libc_hint(e: wanco_compiler::CompileError, target: Target) -> anyhow::Error {
    let msg = e.to_string();
    if msg.contains("cannot find crt") || msg.contains("cannot find -l") || msg.contains("cannot find Scrt") {
        anyhow::anyhow!(
            "{msg}\nthe C library's development files for {target} are missing; install them with `{}apt-get install {}`",
            sudo(),
            toolchain_packages(target)
        )
    } else {
        e.into()
    }
}

/// Run `wanco compile`.
pub fn run(o: Opts) -> Result<i32> {
    let wasm = read_module(&o.input)?;
    let target = o.target.unwrap_or_else(Target::host);
    let out = o.output.clone().unwrap_or_else(|| {
        let stem = o.input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "a".into());
        PathBuf::from(match o.emit {
            Emit::Exe => stem,
            Emit::Obj => format!("{stem}.o"),
            Emit::LlvmIr => format!("{stem}.ll"),
        })
    });
    let explicit = o.bounds_checks == BoundsChecks::Explicit;
    let opts = CompileOptions {
        target,
        opt_level: o.opt_level,
        entry: Entry::Program,
        explicit_bounds_checks: explicit,
        cr: !o.no_cr,
        inject_fault: o.inject_fault,
        canonicalize_nans: o.canonicalize_nans,
        jobs: o.jobs.map(|j| j as usize),
        progress: None,
        raw_stack_params: false,
    };
    if let Some(off) = o.inject_fault {
        if !wanco_compiler::is_fault_site(&wasm, off)? {
            bail!("--inject-fault: no i32/i64 add/sub/mul at offset 0x{off:x}");
        }
    }
    match o.emit {
        Emit::Exe => compile_to(&wasm, &out, &opts)?,
        Emit::Obj => {
            let (opts, bar) = with_progress(&wasm, &opts);
            let obj = wanco_compiler::compile_object(&wasm, &opts);
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            std::fs::write(&out, obj?)?
        }
        Emit::LlvmIr => std::fs::write(&out, wanco_compiler::compile_ir(&wasm, &opts)?)?,
    }
    Ok(0)
}
