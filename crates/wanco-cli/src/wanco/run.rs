//! `wanco run`: compile into a cache, then run the executable.

use anyhow::{Context, Result};
use std::path::PathBuf;
use wanco_compiler::Target;

/// Options of `wanco run`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  wanco run app.wasm -- arg1 arg2\n  wanco run --dir ./data::/data --env HOME=/data app.wasm")]
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
    /// Module to run.
    pub input: PathBuf,
    /// Guest arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Run `wanco run`.
pub fn run(o: Opts) -> Result<i32> {
    let wasm = super::compile::read_module(&o.input)?;
    let target = Target::host();
    let hash = wanco_state::module::module_hash(&wasm);
    let hex: String = hash.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let cache = std::env::var_os("WANCO_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        home.join(".cache").join("wanco")
    });
    std::fs::create_dir_all(&cache).with_context(|| format!("creating cache `{}`", cache.display()))?;
    // The ABI version is part of the key: binaries of another runtime ABI are rebuilt.
    let exe = cache.join(format!("{hex}-{}-O{}-abi{}", target.name(), o.opt_level, wanco_state::abi::ABI_VERSION));
    if !exe.is_file() {
        let tmp = exe.with_extension("tmp");
        let opts = wanco_compiler::CompileOptions { target, opt_level: o.opt_level, ..Default::default() };
        super::compile::compile_to(&wasm, &tmp, &opts)?;
        std::fs::rename(&tmp, &exe)?;
    }
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
