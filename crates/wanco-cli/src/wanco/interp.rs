//! `wanco interp`: run a module in the reference interpreter, behaving like a
//! compiled binary (same output, exit codes and trap messages).

use anyhow::{Context, Result};
use std::path::PathBuf;
use wanco_state::wasi::Preopen;
use wanco_wasi::WasiConfig;

/// Options of `wanco interp`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  wanco interp app.wasm -- arg1 arg2\n  wanco interp --dir ./data::/data app.wasm")]
pub struct Opts {
    /// Preopen a host directory, `HOST[::GUEST]`.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub dirs: Vec<String>,
    /// Set a guest environment variable, `KEY=VALUE`.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Module to run (.wasm or .wat).
    pub input: PathBuf,
    /// Guest arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Build the WASI configuration shared by `run` and `interp`.
pub fn wasi_config(program: &std::path::Path, dirs: &[String], env: &[String], args: &[String]) -> WasiConfig {
    let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut argv = vec![name];
    argv.extend(args.iter().cloned());
    let preopens = dirs
        .iter()
        .map(|d| match d.split_once("::") {
            Some((h, g)) => Preopen { host: h.into(), guest: g.into() },
            None => Preopen { host: d.clone(), guest: d.clone() },
        })
        .collect();
    let env = env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), std::env::var(e).unwrap_or_default()),
        })
        .collect();
    WasiConfig { args: argv, env, preopens }
}

/// Run `wanco interp`.
pub fn run(o: Opts) -> Result<i32> {
    let wasm = super::compile::read_module(&o.input)?;
    let cfg = wasi_config(&o.input, &o.dirs, &o.env, &o.args);
    let exit = wanco_interp::run_wasi(&wasm, cfg).with_context(|| format!("cannot run `{}`", o.input.display()))?;
    if let wanco_interp::WasiExit::Trap(t) = &exit {
        eprintln!("wasm trap: {}", t.message());
    }
    Ok(exit.code())
}
