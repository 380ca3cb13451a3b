//! `wanco-snap diff --against-interp PROG.wasm SNAP [--binary BIN]`: check a
//! snapshot against the reference interpreter and, with a compiled binary,
//! bisect to the first migration point where the binary and the interpreter
//! disagree.
//!
//! * The interpreter runs in this process from `_start` to SNAP's
//!   `migration_points` N, with SNAP's arguments (argv[0] included),
//!   environment and preopened directories, and its state is compared with
//!   SNAP by `diff::diff_named` (producer, argv[0] and the clock are not
//!   compared: they legitimately differ between engines and runs).
//! * With `--binary BIN` and a difference, BIN runs with
//!   `--checkpoint-after-points k` (under `qemu-<isa>` when it is not for
//!   this machine) next to the interpreter run to k. With "k - 1 agrees, k
//!   differs" kept invariant (point 0, before `_start`, agrees; N differs),
//!   binary search finds a k where the states start to differ: the first one
//!   whenever a divergence, once there, stays (the usual case: a wrong value
//!   spreads). A run that ends before k differs from one that reaches it.
//! * Every run gets fresh copies of the preopened directories in a temporary
//!   directory, so the user's files are never written, and stdin, stdout and
//!   stderr on `/dev/null` (the in-process interpreter's too: fds 0-2 are
//!   redirected around the run).
//!
//! Exit codes: 0 no divergence, 1 divergence, 2 bad input.

use super::common::{hex, kind_name, read_input, read_snapshot};
use super::diff::diff_named;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use wanco_interp::{WasiExit, WasiRun, WasiRunner};
use wanco_state::module::ModuleInfo;
use wanco_state::snapshot::Snapshot;
use wanco_state::wasi::Preopen;
use wanco_wasi::WasiConfig;

/// Run `diff --against-interp PROG SNAP [--binary BIN]`; the exit code, or an
/// error for bad input (exit 2).
pub fn run(prog: &Path, snap_path: &Path, binary: Option<&Path>, limit: usize) -> Result<i32> {
    let snap = read_snapshot(snap_path)?;
    let bytes = read_input(prog)?;
    let parse =
        |e: &dyn std::fmt::Display| anyhow!("cannot parse module `{}`: {e}", prog.display());
    let wasm = wanco_compiler::wasm_bytes(&bytes).map_err(|e| parse(&e))?;
    let module = wanco_interp::Module::new(&wasm).map_err(|e| parse(&e))?;
    let info = module.info().clone();
    let snap_name = snap_path.display().to_string();
    snap.check_module(&info.hash).map_err(|e| {
        anyhow!(
            "`{snap_name}` is not a snapshot of `{}`: {}",
            prog.display(),
            e.message
        )
    })?;
    wanco_state::snapshot::check_points_rule(&snap).map_err(|e| anyhow!("`{snap_name}`: {e}"))?;
    let n = snap.migration_points;
    if n == 0 {
        bail!("`{snap_name}` is at migration point 0: there is no such point (they count from 1)");
    }
    let binary = binary.map(Binary::inspect).transpose()?;
    let cx = Cx {
        module,
        info,
        snap,
        limit,
        binary,
    };

    let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("[{elapsed}] {bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    let out = |line: String| bar.suspend(|| say(&line));

    // Is BIN a wanco executable of this module? Its state at point 1 says.
    if let Some(b) = &cx.binary {
        bar.set_message(format!("{} to point 1", b.shown));
        match cx.finish_binary(cx.spawn_binary(1)?)? {
            Outcome::At(s) => {
                if s.module_hash != cx.info.hash {
                    bail!(
                        "`{}` was compiled from another module than `{}` (module sha256 {}…, `{}` is {}…)",
                        b.shown,
                        prog.display(),
                        &hex(&s.module_hash)[..16],
                        prog.display(),
                        &hex(&cx.info.hash)[..16]
                    );
                }
            }
            Outcome::Ended { detail, .. } => bail!(
                "`{}` is not a wanco executable with checkpoint support: it wrote no checkpoint at migration point 1 ({detail})",
                b.shown
            ),
        }
    }

    bar.set_message(format!("interpreter to point {n}"));
    let given = Outcome::At(Box::new(cx.snap.clone()));
    let interp_n = cx.interp(n)?;
    bar.inc(1);
    let d = cx.compare(&given, &interp_n, n, "the snapshot");
    if d.is_empty() {
        bar.finish_and_clear();
        say(&format!(
            "no divergence at point {n}: `{snap_name}` matches the interpreter"
        ));
        return Ok(0);
    }
    out(format!(
        "`{snap_name}` differs from the interpreter at point {n} (snapshot -> interpreter):"
    ));
    for l in &d {
        out(format!("  {l}"));
    }
    if let Some(note) = preopen_note(&cx.snap) {
        out(note);
    }
    let Some(bin) = &cx.binary else {
        bar.finish_and_clear();
        return Ok(1);
    };

    // Bisection: keep "lo agrees (0: before `_start`), hi differs".
    let steps = 64 - (n - 1).leading_zeros() as u64; // ceil(log2 n)
    bar.set_length(2 + steps);
    bar.set_message(format!("{} to point {n}", bin.shown));
    let bin_n = cx.finish_binary(cx.spawn_binary(n)?)?;
    bar.inc(1);
    let d = cx.compare(&bin_n, &interp_n, n, "the binary");
    if d.is_empty() {
        bar.finish_and_clear();
        say(&format!(
            "`{}` agrees with the interpreter at point {n}: the snapshot differs from both",
            bin.shown
        ));
        say("  run from the start, the binary computes the interpreter's state: the difference comes from elsewhere (a restore, if the snapshot was written after one; another binary; other arguments, environment or files; stdout on a terminal, where C programs buffer it by line)");
        return Ok(1);
    }
    out(format!(
        "bisecting points 1..{n} with `{}` ({}), about {steps} steps",
        bin.shown, bin.isa
    ));
    let (mut lo, mut hi) = (0u64, n);
    let mut at_hi = (bin_n, interp_n, d);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        bar.set_message(format!("points {}..{hi}: trying {mid}", lo + 1));
        let child = cx.spawn_binary(mid)?;
        let i = cx.interp(mid);
        let b = cx.finish_binary(child)?;
        let i = i?;
        bar.inc(1);
        let d = cx.compare(&b, &i, mid, "the binary");
        if d.is_empty() {
            lo = mid;
        } else {
            hi = mid;
            at_hi = (b, i, d);
        }
    }
    bar.finish_and_clear();
    let (b, i, d) = at_hi;
    let before = if hi == 1 {
        "it is the first point".to_string()
    } else {
        format!("point {lo} agrees")
    };
    say(&format!("first divergence at point {hi} ({before})"));
    let reference = match (&i, &b) {
        (Outcome::At(s), _) | (_, Outcome::At(s)) => Some(s),
        _ => None,
    };
    if let Some(s) = reference {
        if let Some(f) = s.frames.last() {
            let name = cx
                .info
                .func_name(f.func)
                .map(|n| format!(" `{n}`"))
                .unwrap_or_default();
            say(&format!(
                "  at: func {}{name}, {} at code offset 0x{:x} (innermost frame {})",
                f.func,
                kind_name(f.kind),
                f.code_offset,
                s.frames.len() - 1
            ));
        }
    }
    say("  binary -> interpreter:");
    for l in &d {
        say(&format!("  {l}"));
    }
    if let Some(note) = preopen_note(&cx.snap) {
        say(&note);
    }
    Ok(1)
}

/// What a difference may be due to when the program has preopened
/// directories: the runs here use copies of them as they are now.
fn preopen_note(snap: &Snapshot) -> Option<String> {
    let dirs: Vec<&str> = snap.wasi.preopens.iter().map(|p| p.host.as_str()).collect();
    (!dirs.is_empty()).then(|| {
        format!(
            "note: these runs used fresh copies of the preopened directories ({}) as they are now: if the program read files changed since the snapshot was taken, or keeps inode numbers or times (from listing a directory or a stat) in its state, that alone makes a difference",
            dirs.join(", ")
        )
    })
}

/// Print a line of the report on stdout; a closed pipe (`| head`) is not
/// an error worth a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A compiled executable and how to run it.
struct Binary {
    /// The path as given, for messages.
    shown: String,
    /// Absolute path (a bare name must not be looked up in `PATH`).
    path: PathBuf,
    /// `x86_64` or `aarch64`.
    isa: &'static str,
    /// `Some("qemu-aarch64")` when the ISA is not this machine's.
    qemu: Option<String>,
}

impl Binary {
    /// Check BIN is an x86_64 or aarch64 ELF executable that looks like a
    /// wanco one (its symbols, when it has any, include the runtime's entry).
    fn inspect(path: &Path) -> Result<Binary> {
        use object::{Object, ObjectSymbol};
        let shown = path.display().to_string();
        let data = std::fs::read(path).with_context(|| format!("cannot read `{shown}`"))?;
        let file = object::File::parse(&*data).map_err(|_| {
            anyhow!("`{shown}` is not an ELF executable (a wanco executable was expected)")
        })?;
        let isa = match file.architecture() {
            object::Architecture::X86_64 => "x86_64",
            object::Architecture::Aarch64 => "aarch64",
            other => bail!(
                "`{shown}` is an executable for {other:?}; wanco executables are for x86_64 or aarch64"
            ),
        };
        let main = wanco_state::abi::symbols::PROGRAM_MAIN;
        let mut any = false;
        let mut found = false;
        for s in file.symbols().chain(file.dynamic_symbols()) {
            any = true;
            found |= s.name() == Ok(main);
        }
        if any && !found {
            bail!("`{shown}` is not a wanco executable (it has no `{main}`)");
        }
        let path = std::path::absolute(path).with_context(|| format!("cannot read `{shown}`"))?;
        let qemu = (isa != std::env::consts::ARCH).then(|| format!("qemu-{isa}"));
        Ok(Binary {
            shown,
            path,
            isa,
            qemu,
        })
    }
}

/// Where a run stands at migration point k.
enum Outcome {
    /// It reached k: its state.
    At(Box<Snapshot>),
    /// It ended before k.
    Ended {
        /// Exit status (`None`: killed by a signal, or no status at all).
        code: Option<i32>,
        /// How it ended, for the report.
        detail: String,
    },
}

/// Everything a run needs.
struct Cx {
    module: wanco_interp::Module,
    info: ModuleInfo,
    snap: Snapshot,
    limit: usize,
    binary: Option<Binary>,
}

/// Fresh copies of the snapshot's preopened directories for one run.
struct Sandbox {
    dir: tempfile::TempDir,
    /// Preopens pointing at the copies (same guest names, same order).
    preopens: Vec<Preopen>,
}

/// A binary started towards point k.
struct Running {
    child: Child,
    /// Its preopened directories and checkpoint file: removed when the
    /// run's result has been read.
    _sandbox: Sandbox,
    file: PathBuf,
    k: u64,
}

impl Cx {
    fn sandbox(&self) -> Result<Sandbox> {
        let dir = tempfile::Builder::new()
            .prefix("wanco-against-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let mut copies: HashMap<&str, PathBuf> = HashMap::new();
        let mut preopens = Vec::new();
        for (i, p) in self.snap.wasi.preopens.iter().enumerate() {
            let copy = match copies.get(p.host.as_str()) {
                Some(c) => c.clone(),
                None => {
                    let src = Path::new(&p.host);
                    if !src.is_dir() {
                        bail!(
                            "the snapshot's preopened directory `{}` (guest `{}`) is not a directory here; run from the directory the program ran in",
                            p.host,
                            p.guest
                        );
                    }
                    let dst = dir.path().join(format!("preopen{i}"));
                    copy_tree(src, &dst).with_context(|| {
                        format!("cannot copy the preopened directory `{}`", p.host)
                    })?;
                    copies.insert(&p.host, dst.clone());
                    dst
                }
            };
            preopens.push(Preopen {
                host: copy.to_string_lossy().into_owned(),
                guest: p.guest.clone(),
            });
        }
        Ok(Sandbox { dir, preopens })
    }

    /// A run's snapshot names the copies: put the user's paths back.
    fn own_preopens(&self, s: &mut Snapshot) {
        if s.wasi.preopens.len() == self.snap.wasi.preopens.len() {
            s.wasi.preopens.clone_from(&self.snap.wasi.preopens);
        }
    }

    /// The interpreter's state at point k.
    fn interp(&self, k: u64) -> Result<Outcome> {
        let sandbox = self.sandbox()?;
        let cfg = WasiConfig {
            args: self.snap.wasi.args.clone(),
            env: self.snap.wasi.env.clone(),
            preopens: sandbox.preopens.clone(),
        };
        let mut r = WasiRunner::new(&self.module, cfg)
            .map_err(|e| anyhow!("the interpreter cannot start the program: {e}"))?;
        r.set_pause_at(Some(k));
        let res = {
            let _quiet = Quiet::new();
            r.start()
        };
        let res = res.map_err(|e| anyhow!("the interpreter cannot run the program: {e}"))?;
        Ok(match res {
            WasiRun::Paused => {
                let mut s = r
                    .snapshot()
                    .map_err(|e| anyhow!("the interpreter cannot describe its state: {e}"))?;
                self.own_preopens(&mut s);
                Outcome::At(Box::new(s))
            }
            WasiRun::Exited(e) => {
                let points = r.migration_points();
                let detail = match &e {
                    WasiExit::Exit(c) => format!("exits with status {c} after {points} points"),
                    WasiExit::Trap(t) => {
                        format!("traps ({}) after {points} points", t.message())
                    }
                };
                Outcome::Ended {
                    code: Some(e.code()),
                    detail,
                }
            }
        })
    }

    /// Start the binary towards point k.
    fn spawn_binary(&self, k: u64) -> Result<Running> {
        let b = self.binary.as_ref().expect("a binary");
        let sandbox = self.sandbox()?;
        let file = sandbox.dir.path().join("checkpoint.wsnap");
        let argv0 = self
            .snap
            .wasi
            .args
            .first()
            .cloned()
            .unwrap_or_else(|| b.shown.clone());
        let mut cmd = match &b.qemu {
            None => {
                let mut c = Command::new(&b.path);
                std::os::unix::process::CommandExt::arg0(&mut c, &argv0);
                c
            }
            Some(q) => {
                let mut c = Command::new(q);
                c.arg("-L")
                    .arg(format!("/usr/{}-linux-gnu", b.isa))
                    .arg("-0")
                    .arg(&argv0)
                    .arg(&b.path);
                c
            }
        };
        cmd.arg("--checkpoint-after-points")
            .arg(k.to_string())
            .arg("--checkpoint-file")
            .arg(&file);
        for p in &sandbox.preopens {
            cmd.arg("--dir").arg(format!("{}::{}", p.host, p.guest));
        }
        for (key, v) in &self.snap.wasi.env {
            cmd.arg("--env").arg(format!("{key}={v}"));
        }
        cmd.arg("--");
        cmd.args(self.snap.wasi.args.iter().skip(1));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|e| match &b.qemu {
            Some(q) => anyhow!(
                "cannot run `{q}` for the {} executable `{}`: {e}; install it with `{}apt-get install qemu-user`",
                b.isa,
                b.shown,
                // SAFETY: geteuid has no preconditions and cannot fail.
                if unsafe { libc::geteuid() } == 0 { "" } else { "sudo " }
            ),
            None => anyhow!("cannot run `{}`: {e}", b.shown),
        })?;
        Ok(Running {
            child,
            _sandbox: sandbox,
            file,
            k,
        })
    }

    /// Wait for the binary and read its state.
    fn finish_binary(&self, r: Running) -> Result<Outcome> {
        let b = self.binary.as_ref().expect("a binary");
        let out = r
            .child
            .wait_with_output()
            .with_context(|| format!("cannot run `{}`", b.shown))?;
        if let Ok(bytes) = std::fs::read(&r.file) {
            return Ok(match wanco_state::snapshot::decode(&bytes) {
                Ok(mut s) => {
                    self.own_preopens(&mut s);
                    Outcome::At(Box::new(s))
                }
                Err(e) => Outcome::Ended {
                    code: None,
                    detail: format!("writes an unreadable checkpoint at point {}: {e}", r.k),
                },
            });
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(", stderr: {}", l.trim()))
            .unwrap_or_default();
        let how = match out.status.code() {
            Some(c) => format!("exits with status {c}"),
            None => format!("ends without a status ({})", out.status),
        };
        Ok(Outcome::Ended {
            code: out.status.code(),
            detail: format!("{how}{last}"),
        })
    }

    /// The differences between `x` (the snapshot or the binary, called
    /// `who`) and the interpreter `y` at point k; empty when they agree.
    fn compare(&self, x: &Outcome, y: &Outcome, k: u64, who: &str) -> Vec<String> {
        match (x, y) {
            (Outcome::At(a), Outcome::At(b)) => {
                let mut a = a.as_ref().clone();
                a.producer.clone_from(&b.producer);
                a.wasi.clock.clone_from(&b.wasi.clock);
                // The interpreter has no native view.
                a.native.clone_from(&b.native);
                if let (Some(x0), Some(y0)) = (a.wasi.args.first_mut(), b.wasi.args.first()) {
                    x0.clone_from(y0);
                }
                diff_named(&a, b, self.limit, Some(&self.info))
            }
            (
                Outcome::Ended {
                    code: c,
                    detail: dx,
                },
                Outcome::Ended {
                    code: d,
                    detail: dy,
                },
            ) => {
                if c == d {
                    Vec::new()
                } else {
                    vec![format!(
                        "both end before point {k}: {who} {dx} -> the interpreter {dy}"
                    )]
                }
            }
            (Outcome::At(_), Outcome::Ended { detail, .. }) => vec![format!(
                "{who} reaches point {k}; the interpreter {detail}, before it"
            )],
            (Outcome::Ended { detail, .. }, Outcome::At(_)) => vec![format!(
                "{who} {detail}, before reaching point {k}; the interpreter reaches it"
            )],
        }
    }
}

/// Copy a directory tree (files, directories, symbolic links as links).
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let t = e.file_type()?;
        if t.is_dir() {
            copy_tree(&from, &to)?;
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if t.is_file() {
            std::fs::copy(&from, &to)?;
            // Same timestamps (best effort): a program that stats its files
            // sees the same values in every run (inode numbers still differ).
            if let (Ok(m), Ok(f)) = (e.metadata(), std::fs::File::open(&to)) {
                if let (Ok(a), Ok(w)) = (m.accessed(), m.modified()) {
                    let _ = f.set_times(std::fs::FileTimes::new().set_accessed(a).set_modified(w));
                }
            }
        }
    }
    std::fs::set_permissions(dst, std::fs::metadata(src)?.permissions())
}

/// While alive, fds 0, 1 and 2 are `/dev/null`: what the interpreted program
/// reads and writes stays out of the report (and off the terminal).
struct Quiet {
    /// Duplicates of the original fds 0-2 (-1: was not open).
    saved: [libc::c_int; 3],
}

impl Quiet {
    fn new() -> Option<Quiet> {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: plain fd syscalls on a NUL-terminated path; every fd
        // created here is either closed or kept in `saved` (close-on-exec,
        // so a binary started meanwhile does not inherit it).
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null < 0 {
                return None;
            }
            let mut saved = [-1; 3];
            for (fd, s) in saved.iter_mut().enumerate() {
                *s = libc::fcntl(fd as libc::c_int, libc::F_DUPFD_CLOEXEC, 3);
                libc::dup2(null, fd as libc::c_int);
            }
            libc::close(null);
            Some(Quiet { saved })
        }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        // SAFETY: restores the fds saved by `new` and closes the duplicates.
        unsafe {
            for (fd, &s) in self.saved.iter().enumerate() {
                if s >= 0 {
                    libc::dup2(s, fd as libc::c_int);
                    libc::close(s);
                } else {
                    libc::close(fd as libc::c_int);
                }
            }
        }
    }
}
