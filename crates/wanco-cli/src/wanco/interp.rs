//! `wanco interp`: run a module in the reference interpreter, behaving like a
//! compiled binary (same output, exit codes and trap messages).

use anyhow::{Context, Result};
use std::path::PathBuf;
use wanco_wasi::WasiConfig;

/// Options of `wanco interp`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  wanco interp app.wasm -- arg1 arg2\n  wanco interp --dir ./data::/data app.wasm\n  wanco interp --tcplisten 127.0.0.1:8080 server.wasm\n  wanco interp --checkpoint-after-points 1000 --checkpoint-file c.wsnap app.wasm\n  wanco interp --restore c.wsnap app.wasm\n\nSending SIGUSR1 writes a checkpoint at the next migration point and exits 0.")]
pub struct Opts {
    /// Write a checkpoint when the N-th migration point is reached (one per
    /// function entry, one per loop-header execution) and exit 0.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_after_points: Option<u64>,
    /// Where to write the checkpoint.
    #[arg(long, value_name = "PATH", default_value = "checkpoint.wsnap")]
    pub checkpoint_file: PathBuf,
    /// Continue the program from a snapshot instead of starting it (its
    /// arguments, environment and preopened directories come from the snapshot).
    #[arg(long, value_name = "SNAP")]
    pub restore: Option<PathBuf>,
    /// Print the number of migration points crossed to stderr at the end.
    #[arg(long)]
    pub count_points: bool,
    /// Preopen a host directory, `HOST[::GUEST]`.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub dirs: Vec<String>,
    /// Set a guest environment variable, `KEY=VALUE`.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Give the guest a TCP socket listening on `HOST:PORT` (repeatable),
    /// at the fds after the preopened directories, as
    /// `wasmtime run -S preview2=n -S tcplisten=HOST:PORT` does.
    #[arg(long = "tcplisten", value_name = "HOST:PORT")]
    pub tcplisten: Vec<String>,
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
    let preopens = dirs.iter().map(|d| wanco_wasi::parse_dir(d)).collect();
    let env = env.iter().map(|e| wanco_wasi::parse_env(e)).collect();
    WasiConfig { args: argv, env, preopens }
}

/// `SIGUSR1` sets a flag the interpreter polls at every migration point.
mod sigusr1 {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, OnceLock};

    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

    extern "C" fn on_sigusr1(_: libc::c_int) {
        // Only an atomic load and an atomic store: async-signal-safe.
        if let Some(f) = FLAG.get() {
            f.store(true, Ordering::Relaxed);
        }
    }

    /// Install the handler; the returned flag becomes `true` on `SIGUSR1`.
    pub fn install() -> Option<Arc<AtomicBool>> {
        let flag = FLAG.get_or_init(|| Arc::new(AtomicBool::new(false))).clone();
        let handler: extern "C" fn(libc::c_int) = on_sigusr1;
        // SAFETY: the handler is an `extern "C"` function that lives for the
        // whole process and only touches an initialised `OnceLock` and an atomic.
        let prev = unsafe { libc::signal(libc::SIGUSR1, handler as libc::sighandler_t) };
        (prev != libc::SIG_ERR).then_some(flag)
    }
}

/// Run `wanco interp`.
pub fn run(o: Opts) -> Result<i32> {
    use wanco_interp::{WasiExit, WasiRun, WasiRunner};
    // First thing: a SIGUSR1 while the module loads or a snapshot is read
    // is served once the program runs, instead of ending the process.
    let interrupt = sigusr1::install();
    // A checkpoint file in a directory that does not exist is found out
    // now, not when the checkpoint is due.
    if let Some(why) = wanco_state::snapshot::checkpoint_file_problem(&o.checkpoint_file) {
        anyhow::bail!("--checkpoint-file {}: {why}", o.checkpoint_file.display());
    }
    if let Some(why) = o.checkpoint_after_points.and_then(wanco_state::snapshot::checkpoint_target_problem) {
        anyhow::bail!("{why}");
    }
    let wasm = super::compile::read_module(&o.input)?;
    let what = || format!("cannot run `{}`", o.input.display());
    let module = wanco_interp::Module::new(&wasm).with_context(what)?;
    let (mut runner, restored) = match &o.restore {
        Some(snap_path) => {
            if !o.dirs.is_empty() || !o.env.is_empty() || !o.args.is_empty() || !o.tcplisten.is_empty() {
                eprintln!("note: --dir, --env, --tcplisten and guest arguments are ignored with --restore: they come from the snapshot");
            }
            let bytes = std::fs::read(snap_path).with_context(|| format!("cannot read snapshot `{}`", snap_path.display()))?;
            let refuse = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot restore `{}`: {e}", snap_path.display());
            let snap = wanco_state::snapshot::decode(&bytes).map_err(|e| refuse(&e))?;
            snap.check_module(&module.info().hash).map_err(|e| refuse(&e.message))?;
            if let Some(n) = o.checkpoint_after_points.filter(|n| *n <= snap.migration_points) {
                eprintln!("{}", wanco_state::snapshot::target_behind_note(n, snap.migration_points));
            }
            (WasiRunner::from_snapshot(&module, &snap).map_err(|e| refuse(&e))?, true)
        }
        None => {
            let cfg = wasi_config(&o.input, &o.dirs, &o.env, &o.args);
            let mut ctx = wanco_wasi::WasiCtx::new(cfg).map_err(|e| anyhow::anyhow!("{e}")).with_context(what)?;
            for addr in &o.tcplisten {
                ctx.preopen_listener(addr).map_err(|e| anyhow::anyhow!("--tcplisten: {e}"))?;
            }
            (WasiRunner::from_ctx(&module, ctx).with_context(what)?, false)
        }
    };
    runner.set_pause_at(o.checkpoint_after_points);
    runner.set_interrupt(interrupt);
    let mut r = if restored { runner.resume() } else { runner.start() }.with_context(what)?;
    use std::io::Write;
    let exit = loop {
        let _ = std::io::stdout().flush();
        match r {
            WasiRun::Exited(e) => break e,
            WasiRun::Paused => {
                let signalled = runner.migration_points() != o.checkpoint_after_points.unwrap_or(u64::MAX);
                if let Some(why) = runner.wasi_unrestorable() {
                    if signalled {
                        // The program goes on (nothing is lost); another signal may try again.
                        eprintln!("error: checkpoint failed: {why}; the program goes on");
                        r = runner.resume().with_context(what)?;
                        continue;
                    }
                    anyhow::bail!("cannot take a checkpoint: {why}");
                }
                let snap = runner.snapshot().context("cannot take a checkpoint")?;
                let bytes = wanco_state::snapshot::encode(&snap);
                let path = &o.checkpoint_file;
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(".tmp");
                let tmp = PathBuf::from(tmp);
                let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path));
                match written {
                    Ok(()) => {
                        eprintln!("checkpoint written to {} after {} migration points", path.display(), snap.migration_points);
                        return Ok(0);
                    }
                    // Asked for by a signal: the program goes on (nothing
                    // is lost), and another signal may try again.
                    Err(e) if o.checkpoint_after_points != Some(snap.migration_points) => {
                        let _ = std::fs::remove_file(&tmp);
                        eprintln!("error: checkpoint failed: cannot write the checkpoint to {}: {e}; the program goes on", path.display());
                        r = runner.resume().with_context(what)?;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e).with_context(|| format!("cannot write the checkpoint to {}", path.display()));
                    }
                }
            }
        }
    };
    if let WasiExit::Exit(_) = &exit {
        if let Some(why) = runner.wasi_program_exited() {
            eprintln!("note: {why}");
        }
    }
    if o.count_points {
        eprintln!("migration points: {}", runner.migration_points());
    }
    if let Some(n) = o.checkpoint_after_points.filter(|n| *n > runner.migration_points()) {
        eprintln!(
            "note: the program ended after {} migration points, before --checkpoint-after-points {n}: no checkpoint was taken",
            runner.migration_points()
        );
    }
    if let WasiExit::Trap(t) = &exit {
        eprintln!("wasm trap: {}", t.message());
    }
    Ok(exit.code())
}
