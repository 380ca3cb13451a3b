//! `wanco run`: compile into a cache, then run the executable.
//!
//! The cache (`docs/cli.md`) lives in `$WANCO_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/wanco`, else `~/.cache/wanco`. An entry is keyed by the
//! module's SHA-256, the target, the compile options, the wanco version, the
//! runtime ABI and snapshot format versions, and the identity (size and
//! modification time) of the `wanco` executable and of the runtime library
//! it links: a rebuilt or reinstalled `wanco` never reuses a binary of
//! another build.

use anyhow::{Context, Result};
use sha2::Digest;
use std::path::{Path, PathBuf};
use wanco_compiler::Target;

/// Options of `wanco run`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  wanco run app.wasm -- arg1 arg2\n  wanco run --dir ./data::/data --env HOME=/data app.wasm\n  wanco run -v app.wasm      # says whether the compiled binary came from the cache\n\nCompiled binaries are kept in $WANCO_CACHE_DIR, else $XDG_CACHE_HOME/wanco, else ~/.cache/wanco.")]
pub struct Opts {
    /// Preopen a host directory, `HOST[::GUEST]`.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub dirs: Vec<String>,
    /// Set a guest environment variable, `KEY=VALUE`.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Optimisation level 0-3.
    #[arg(short = 'O', default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub opt_level: u8,
    /// Compile into a temporary directory instead of the cache (nothing is
    /// read from or written to the cache).
    #[arg(long)]
    pub no_cache: bool,
    /// Say on stderr where the executable comes from (`cache hit` or
    /// `compiling`) before running it.
    #[arg(short, long)]
    pub verbose: bool,
    /// Module to run.
    pub input: PathBuf,
    /// Guest arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The cache directory: `$WANCO_CACHE_DIR`, `$XDG_CACHE_HOME/wanco`, or
/// `~/.cache/wanco` (relative values are ignored, as the XDG spec says).
pub fn cache_dir() -> PathBuf {
    let abs = |v: &str| std::env::var_os(v).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(d) = std::env::var_os("WANCO_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(x) = abs("XDG_CACHE_HOME") {
        return x.join("wanco");
    }
    let home = abs("HOME").unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("wanco")
}

/// Size and modification time of a file (`-` when it cannot be read).
fn file_identity(p: Option<&Path>) -> String {
    match p.and_then(|p| std::fs::metadata(p).ok()) {
        Some(m) => {
            let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
            format!("{}:{}.{:09}", m.len(), t.as_secs(), t.subsec_nanos())
        }
        None => "-".into(),
    }
}

/// The cache file name for a module compiled with `opts`.
fn cache_name(wasm: &[u8], opts: &wanco_compiler::CompileOptions) -> String {
    let module = wanco_state::module::module_hash(wasm);
    let runtime = wanco_compiler::runtime_library(opts.target).ok();
    let exe = std::env::current_exe().ok();
    let key = format!(
        "module={}\ntarget={}\nopt={}\ncr={}\nexplicit_bounds={}\ncanonical_nans={}\nwanco={}\nabi={}\nformat={}\nexe={}\nruntime={}:{}\n",
        hex(&module),
        opts.target.name(),
        opts.opt_level,
        opts.cr,
        opts.explicit_bounds_checks,
        opts.canonicalize_nans,
        env!("CARGO_PKG_VERSION"),
        wanco_state::abi::ABI_VERSION,
        wanco_state::snapshot::FORMAT_VERSION,
        file_identity(exe.as_deref()),
        runtime.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
        file_identity(runtime.as_deref()),
    );
    let k = sha2::Sha256::digest(key.as_bytes());
    format!("{}-{}-O{}-{}", &hex(&module)[..16], opts.target.name(), opts.opt_level, &hex(&k)[..16])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run `wanco run`.
pub fn run(o: Opts) -> Result<i32> {
    let wasm = super::compile::read_module(&o.input)?;
    let target = Target::host();
    let opts = wanco_compiler::CompileOptions { target, opt_level: o.opt_level, ..Default::default() };
    // Kept alive until the program has run (--no-cache).
    let mut _tmp = None;
    let exe = if o.no_cache {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let exe = dir.path().join("module");
        if o.verbose {
            eprintln!("wanco: compiling (--no-cache) into {}", exe.display());
        }
        super::compile::compile_to(&wasm, &exe, &opts)?;
        _tmp = Some(dir);
        exe
    } else {
        let cache = cache_dir();
        std::fs::create_dir_all(&cache).with_context(|| format!("creating the cache directory `{}`", cache.display()))?;
        let exe = cache.join(cache_name(&wasm, &opts));
        if exe.is_file() {
            if o.verbose {
                eprintln!("wanco: cache hit: {}", exe.display());
            }
        } else {
            if o.verbose {
                eprintln!("wanco: compiling into the cache: {}", exe.display());
            }
            // Written under a name of its own and renamed into place: two
            // `wanco run` at once never run a half-written binary.
            let tmp = exe.with_extension(format!("tmp{}", std::process::id()));
            let r = super::compile::compile_to(&wasm, &tmp, &opts);
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r?;
            std::fs::rename(&tmp, &exe).with_context(|| format!("moving the binary into the cache `{}`", exe.display()))?;
        }
        exe
    };
    let mut cmd = std::process::Command::new(&exe);
    // The guest sees the module's file name as argv[0], as under wasmtime.
    if let Some(name) = o.input.file_name() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, name);
    }
    for d in &o.dirs {
        cmd.arg("--dir").arg(d);
    }
    for e in &o.env {
        cmd.arg("--env").arg(e);
    }
    cmd.arg("--").args(&o.args);
    let status = cmd.status().with_context(|| format!("running `{}`", exe.display()))?;
    Ok(status.code().unwrap_or(128 + 6))
}
