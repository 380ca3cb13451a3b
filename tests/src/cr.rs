//! The checkpoint/restore (C/R) matrix: every program of `tests/programs/cr/cases.toml` is
//! checkpointed after N migration points on every engine (x86_64 natively, aarch64 under qemu,
//! the interpreter) and restored on every engine; the combined output, exit code and final
//! `/data` tree must equal an uninterrupted run's, and the snapshots written by different
//! engines at the same N must hold the same Wasm state. Also chains (restore, checkpoint again,
//! restore on a third engine) and SIGUSR1-triggered checkpoints.
//!
//! The driver is `tests/tests/cr_matrix.rs`; `tests/README.md` describes the knobs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::cases::GUEST_DIR;
use crate::diff::{first_line_diff, tail};
use crate::e2e::parallel_map;
use crate::engine::{Engine, Tools};
use crate::process::{self, contains, shell_quote, Invocation, Outcome, Status};
use crate::tree::{self, Tree};

/// Default per-run time limit in seconds (multiplied by the engine's slowdown factor).
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// The engines of the matrix, in report order.
pub const CR_ENGINES: [Engine; 3] = [Engine::AotX86_64, Engine::AotAarch64, Engine::Interp];

/// Short engine name used in C/R reports and in `WANCO_CR_ENGINES`: `x86_64`, `aarch64`, `interp`.
pub fn short(e: Engine) -> &'static str {
    match e {
        Engine::AotX86_64 => "x86_64",
        Engine::AotAarch64 => "aarch64",
        Engine::Interp => "interp",
        Engine::Wasmtime => "wasmtime",
    }
}

/// One program of the matrix: an entry of `tests/programs/cr/cases.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrCase {
    /// Unique name.
    pub name: String,
    /// The module, relative to `tests/programs` (`.wat` or `.wasm`).
    pub module: String,
    /// Guest arguments after argv[0].
    #[serde(default)]
    pub args: Vec<String>,
    /// Guest environment as `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Files created in the preopened directory before the run: relative path -> contents.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Empty directories created in the preopened directory before the run.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Texts the uninterrupted run's stdout must contain (keeps the case honest).
    #[serde(default)]
    pub stdout_contains: Vec<String>,
    /// Per-run time limit in seconds (before the emulation factor); default 60.
    pub timeout_secs: Option<u64>,
    /// The program holds host-specific values (`stat` results: device and inode numbers,
    /// timestamps) in linear memory and in locals, so snapshots are compared without `memory`
    /// and without the values of locals and operands (their types and the frames' functions,
    /// positions and kinds still are compared).
    #[serde(default)]
    pub host_dependent_values: bool,
    /// The program's exit code (default 0); every restored run must end with it too.
    #[serde(default)]
    pub exit: i32,
    /// Checkpoint at the last this many points too, whatever the spread (the points of a
    /// program's way out: exit paths, calls that never return).
    #[serde(default)]
    pub end_points: u64,
}

/// The long-running program of the SIGUSR1 test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalProgram {
    /// The module, relative to `tests/programs`.
    pub module: String,
    /// Text of the last line its stdout must contain (the program's final result).
    pub final_line: String,
}

/// The contents of `tests/programs/cr/cases.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrCases {
    /// The matrix programs.
    pub case: Vec<CrCase>,
    /// The program of the SIGUSR1 test.
    pub signal: SignalProgram,
}

/// Load and check `cases.toml` (unique names, modules exist below `programs_dir`).
pub fn load_cr_cases(path: &Path, programs_dir: &Path) -> Result<CrCases, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let cases: CrCases = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut seen = std::collections::HashSet::new();
    for c in &cases.case {
        if !seen.insert(c.name.as_str()) {
            return Err(format!(
                "{}: duplicate case name `{}`",
                path.display(),
                c.name
            ));
        }
    }
    for m in cases
        .case
        .iter()
        .map(|c| &c.module)
        .chain(std::iter::once(&cases.signal.module))
    {
        if !programs_dir.join(m).is_file() {
            return Err(format!(
                "{}: module {m} does not exist below {}",
                path.display(),
                programs_dir.display()
            ));
        }
    }
    Ok(cases)
}

/// What to run (from the environment, see [`CrConfig::from_env`]).
#[derive(Debug, Clone)]
pub struct CrConfig {
    /// Workspace root.
    pub workspace: PathBuf,
    /// `tests/programs`.
    pub programs_dir: PathBuf,
    /// Scratch directory (absolute): `bin/`, `runs/`, `signal/`.
    pub work_dir: PathBuf,
    /// Producers and consumers (a subset of [`CR_ENGINES`]). The reference is always x86_64.
    pub engines: Vec<Engine>,
    /// Checkpoints per program, spread over [1, T] (see [`points`]).
    pub points: usize,
    /// Explicit checkpoint points (replace the spread when not empty; clamped to [1, T]).
    pub at: Vec<u64>,
    /// Only cases whose name contains one of these (all when empty).
    pub filter: Vec<String>,
    /// Parallel jobs.
    pub jobs: usize,
    /// Directions of the SIGUSR1 test: (producer, consumer).
    pub signal_pairs: Vec<(Engine, Engine)>,
}

fn parse_engine(s: &str, var: &str) -> Result<Engine, String> {
    Engine::parse(s)
        .filter(|e| CR_ENGINES.contains(e))
        .ok_or_else(|| format!("{var}: unknown engine `{s}` (use x86_64, aarch64, interp)"))
}

impl CrConfig {
    /// The configuration from the environment:
    /// `WANCO_CR_POINTS` (default 2), `WANCO_CR_AT` (comma-separated N, overrides the spread),
    /// `WANCO_CR_FILTER` (comma-separated substrings of case names), `WANCO_CR_ENGINES`
    /// (comma-separated subset of `x86_64,aarch64,interp`), `WANCO_CR_JOBS` (default
    /// `WANCO_E2E_JOBS` or 2), `WANCO_CR_WORK_DIR` (default `default_work_dir`),
    /// `WANCO_CR_SIGNAL` (comma-separated `FROM:TO` pairs, default `x86_64:aarch64,aarch64:x86_64`).
    pub fn from_env(workspace: &Path, default_work_dir: &Path) -> Result<CrConfig, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|s| !s.trim().is_empty());
        let list = |s: String| -> Vec<String> {
            s.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        };
        let engines = match var("WANCO_CR_ENGINES") {
            Some(s) => {
                let mut v = Vec::new();
                for name in list(s) {
                    let e = parse_engine(&name, "WANCO_CR_ENGINES")?;
                    if !v.contains(&e) {
                        v.push(e);
                    }
                }
                v.sort();
                v
            }
            None => CR_ENGINES.to_vec(),
        };
        let points = match var("WANCO_CR_POINTS") {
            Some(s) => s
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| format!("WANCO_CR_POINTS: `{s}` is not a number >= 1"))?,
            None => 2,
        };
        let mut at = Vec::new();
        if let Some(s) = var("WANCO_CR_AT") {
            for t in list(s) {
                at.push(
                    t.parse::<u64>()
                        .map_err(|_| format!("WANCO_CR_AT: `{t}` is not a number"))?,
                );
            }
        }
        let filter = var("WANCO_CR_FILTER").map(list).unwrap_or_default();
        let jobs = match var("WANCO_CR_JOBS").or_else(|| var("WANCO_E2E_JOBS")) {
            Some(s) => s
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("WANCO_CR_JOBS: `{s}` is not a number"))?
                .max(1),
            None => 2,
        };
        let signal =
            var("WANCO_CR_SIGNAL").unwrap_or_else(|| "x86_64:aarch64,aarch64:x86_64".into());
        let mut signal_pairs = Vec::new();
        for pair in list(signal) {
            let (a, b) = pair
                .split_once(':')
                .ok_or_else(|| format!("WANCO_CR_SIGNAL: `{pair}` is not FROM:TO"))?;
            signal_pairs.push((
                parse_engine(a, "WANCO_CR_SIGNAL")?,
                parse_engine(b, "WANCO_CR_SIGNAL")?,
            ));
        }
        let work_dir = var("WANCO_CR_WORK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| default_work_dir.to_path_buf());
        std::fs::create_dir_all(&work_dir)
            .map_err(|e| format!("cannot create {}: {e}", work_dir.display()))?;
        // Snapshots store the preopened host path as given: it must be absolute.
        let work_dir = work_dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", work_dir.display()))?;
        Ok(CrConfig {
            workspace: workspace.to_path_buf(),
            programs_dir: workspace.join("tests").join("programs"),
            work_dir,
            engines,
            points,
            at,
            filter,
            jobs,
            signal_pairs,
        })
    }
}

/// The checkpoint points for a program with `t` migration points: `k` points spread evenly over
/// [1, t]. 1 (the entry of `_start`) is always included; with k = 2 the second point is the
/// middle; with k >= 3 the points are 1 + floor(i (t-1) / (k-1)), which includes t (the last
/// point crossed before the exit).
pub fn points(t: u64, k: usize) -> Vec<u64> {
    let mut v: Vec<u64> = match (t, k) {
        (0, _) => Vec::new(),
        (_, 0 | 1) => vec![1],
        (_, 2) => vec![1, 1 + (t - 1) / 2],
        _ => (0..k as u64)
            .map(|i| 1 + ((i as u128 * (t - 1) as u128) / (k as u128 - 1)) as u64)
            .collect(),
    };
    v.dedup();
    v
}

/// The tools the C/R tests need: wanco (compiler, interpreter), qemu and wanco-snap.
#[derive(Debug, Clone)]
pub struct CrTools {
    /// wanco, qemu and the aarch64 sysroot.
    pub tools: Tools,
    /// `wanco-snap` (`WANCO_SNAP_BIN`, else next to `wanco`).
    pub snap: PathBuf,
}

impl CrTools {
    /// Locate the tools for `engines` (x86_64 is always needed: it runs the reference).
    pub fn locate(workspace: &Path, engines: &[Engine]) -> Result<CrTools, String> {
        let mut need = engines.to_vec();
        if !need.contains(&Engine::AotX86_64) {
            need.push(Engine::AotX86_64);
        }
        let tools = Tools::locate(workspace, &need)?;
        let snap = std::env::var_os("WANCO_SNAP_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| tools.wanco.with_file_name("wanco-snap"));
        if !process::is_executable(&snap) {
            return Err(format!(
                "wanco-snap not found at {} (set WANCO_SNAP_BIN, or build it with `cargo build -p wanco-cli`)",
                snap.display()
            ));
        }
        Ok(CrTools { tools, snap })
    }

    /// The command that runs `artifact` on `engine`. The guest's argv[0] is the module's file
    /// name on every engine (as in the interpreter): C programs copy their arguments into linear
    /// memory, so a different argv[0] would make the snapshots of different engines differ.
    fn base(
        &self,
        engine: Engine,
        case: &CrCase,
        artifact: &Path,
        timeout: Duration,
    ) -> Invocation {
        let argv0 = Path::new(&case.module)
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        match engine {
            Engine::AotAarch64 => {
                let mut inv = Invocation::new(&self.tools.qemu, timeout);
                inv.arg("-L")
                    .arg(&self.tools.aarch64_sysroot)
                    .arg("-0")
                    .arg(argv0)
                    .arg(artifact);
                inv
            }
            Engine::Interp => {
                let mut inv = Invocation::new(&self.tools.wanco, timeout);
                inv.arg("interp");
                inv
            }
            _ => {
                let mut inv = Invocation::new(artifact, timeout);
                inv.arg0 = Some(argv0);
                inv
            }
        }
    }

    /// A fresh start of `case` on `engine` with `/data` = `data` and runtime options `opts`
    /// (`--count-points`, `--checkpoint-after-points N`, ...). `artifact` is the compiled binary
    /// (the module for the interpreter).
    pub fn start(
        &self,
        engine: Engine,
        case: &CrCase,
        artifact: &Path,
        data: &Path,
        opts: &[String],
        cwd: &Path,
    ) -> Invocation {
        let mut inv = self.base(engine, case, artifact, timeout(case, engine));
        inv.arg("--dir")
            .arg(format!("{}::{GUEST_DIR}", data.display()));
        for kv in &case.env {
            inv.arg("--env").arg(kv);
        }
        for o in opts {
            inv.arg(o);
        }
        if engine == Engine::Interp {
            inv.arg(artifact);
        }
        inv.arg("--");
        for a in &case.args {
            inv.arg(a);
        }
        inv.cwd = Some(cwd.to_path_buf());
        inv
    }

    /// Continue from `snap` on `engine`, with runtime options `opts`.
    pub fn restore(
        &self,
        engine: Engine,
        case: &CrCase,
        artifact: &Path,
        snap: &Path,
        opts: &[String],
        cwd: &Path,
    ) -> Invocation {
        let mut inv = self.base(engine, case, artifact, timeout(case, engine));
        inv.arg("--restore").arg(snap);
        for o in opts {
            inv.arg(o);
        }
        if engine == Engine::Interp {
            inv.arg(artifact);
        }
        inv.cwd = Some(cwd.to_path_buf());
        inv
    }

    /// `wanco-snap decode SNAP`.
    pub fn decode(&self, snap: &Path) -> Invocation {
        let mut inv = Invocation::new(&self.snap, Duration::from_secs(300));
        inv.arg("decode").arg(snap);
        inv
    }

    fn compile(
        &self,
        engine: Engine,
        module: &Path,
        out: &Path,
    ) -> Result<(PathBuf, Duration), String> {
        let inv = self.tools.compile_invocation(engine, module, out);
        let o = process::run(&inv);
        if o.status == Status::Exited(0) && out.is_file() {
            Ok((out.to_path_buf(), o.elapsed))
        } else {
            Err(format!(
                "wanco compile failed ({}):\n{}\n  command: {}",
                o.status,
                tail(&o.stderr, 12),
                inv.command_line()
            ))
        }
    }
}

fn timeout(case: &CrCase, engine: Engine) -> Duration {
    Duration::from_secs(
        case.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS) * u64::from(engine.slowdown()),
    )
}

fn checkpoint_opts(n: u64, snap: &Path) -> Vec<String> {
    vec![
        "--checkpoint-after-points".into(),
        n.to_string(),
        "--checkpoint-file".into(),
        snap.display().to_string(),
    ]
}

/// The number in the last `migration points: N` line of a `--count-points` run's stderr.
pub fn counted_points(stderr: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(stderr);
    text.lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix("migration points: ")?
            .trim()
            .parse()
            .ok()
    })
}

/// The N of a `checkpoint written to PATH after N migration points` line.
pub fn checkpoint_points(stderr: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(stderr);
    text.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("checkpoint written to ")?;
        let (_, after) = rest.rsplit_once(" after ")?;
        after.strip_suffix(" migration points")?.parse().ok()
    })
}

/// Copy a directory tree (files, directories, symlinks).
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ft = entry.file_type()?;
        if ft.is_dir() {
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

fn fresh_dir(p: &Path) -> Result<(), String> {
    if p.exists() {
        std::fs::remove_dir_all(p).map_err(|e| format!("cannot clear {}: {e}", p.display()))?;
    }
    std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

/// Replace `data` by a copy of `from`.
fn reset_data(from: &Path, data: &Path) -> Result<(), String> {
    if data.exists() {
        std::fs::remove_dir_all(data)
            .map_err(|e| format!("cannot clear {}: {e}", data.display()))?;
    }
    copy_tree(from, data)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), data.display()))
}

/// The shell command that resets `data` to `from` (for reproduction instructions).
fn reset_command(from: &Path, data: &Path) -> String {
    let (f, d) = (
        shell_quote(&from.to_string_lossy()),
        shell_quote(&data.to_string_lossy()),
    );
    format!("rm -rf {d} && cp -a {f} {d}")
}

/// The Wasm state of a snapshot's canonical JSON, without what legitimately differs between
/// engines and runs: `producer`, `native` (the native view of compiled producers), `wasi.clock`, `wasi.args[0]` (the program path) and the host
/// paths of `wasi.preopens` (every run has its own directory); and quiet NaN values (`F32`/`F64`
/// in frames and globals) all become `"quiet NaN"`, because Wasm lets every engine choose the
/// sign and payload of a NaN produced by arithmetic (x86_64 and aarch64 do differ). Signaling
/// NaNs, which only moves produce, are kept bit for bit. Everything else is kept:
/// `migration_points`, `frames`, `globals`, `tables`, `memory`, `data_dropped`,
/// `elem_dropped`, the module hash and the WASI descriptors (kinds, paths, offsets, flags).
/// With `host_values` (see [`CrCase::host_dependent_values`]) `memory` is left out and the
/// values of the frames' locals and operands become `"?"` (their types stay).
pub fn normalized_state(json_text: &str, host_values: bool) -> Result<Value, String> {
    let mut v: Value =
        serde_json::from_str(json_text).map_err(|e| format!("invalid snapshot JSON: {e}"))?;
    let remove = |v: &mut Value, key: &str| {
        if let Some(m) = v.as_object_mut() {
            m.remove(key);
        }
    };
    remove(&mut v, "producer");
    // The native view (compiled producers) is ISA- and build-specific.
    remove(&mut v, "native");
    if host_values {
        remove(&mut v, "memory");
        if let Some(Value::Array(frames)) = v.get_mut("frames") {
            for f in frames {
                for key in ["locals", "stack"] {
                    if let Some(Value::Array(vals)) = f.get_mut(key) {
                        for x in vals {
                            if let Value::Object(m) = x {
                                for (_, val) in m.iter_mut() {
                                    *val = Value::String("?".into());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for key in ["frames", "globals"] {
        if let Some(x) = v.get_mut(key) {
            hide_quiet_nans(x);
        }
    }
    if let Some(w) = v.get_mut("wasi") {
        remove(w, "clock");
        if let Some(Value::Array(args)) = w.get_mut("args") {
            if let Some(a0) = args.first_mut() {
                *a0 = Value::String("<argv[0]>".into());
            }
        }
        if let Some(Value::Array(pre)) = w.get_mut("preopens") {
            for p in pre {
                if let Some(h) = p.get_mut("host") {
                    *h = Value::String("<host dir>".into());
                }
            }
        }
    }
    Ok(v)
}

/// Whether `bits` is a quiet NaN of the float type `ty` (`F32` or `F64`).
pub fn is_quiet_nan(ty: &str, bits: u64) -> bool {
    match ty {
        "F32" => bits & 0x7fc0_0000 == 0x7fc0_0000 && bits >> 32 == 0,
        "F64" => bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
        _ => false,
    }
}

fn hide_quiet_nans(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(hide_quiet_nans),
        Value::Object(m) => {
            if m.len() == 1 {
                // A typed value `{"F32": bits}`.
                if let Some((ty, Value::Number(n))) = m.iter_mut().next() {
                    if n.as_u64().is_some_and(|b| is_quiet_nan(ty, b)) {
                        let ty = ty.clone();
                        m.insert(ty, Value::String("quiet NaN".into()));
                    }
                    return;
                }
            }
            m.values_mut().for_each(hide_quiet_nans);
        }
        _ => {}
    }
}

/// Where two JSON documents first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Difference {
    /// Path of the differing value, e.g. `frames[3]{func=7}.stack[0].F32` (array elements that
    /// are objects with a `func` or `page` member are annotated with it).
    path: String,
    /// The left value (compact, shortened).
    left: String,
    /// The right value (compact, shortened).
    right: String,
}

/// Compact JSON text of `v`, cut after about `max` characters (with `…`).
fn compact(v: &Value, max: usize) -> String {
    fn write(v: &Value, s: &mut String, max: usize) {
        if s.len() > max {
            return;
        }
        match v {
            Value::Array(a) => {
                s.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    write(x, s, max);
                    if s.len() > max {
                        return;
                    }
                }
                s.push(']');
            }
            Value::Object(m) => {
                s.push('{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(&Value::String(k.clone()).to_string());
                    s.push(':');
                    write(x, s, max);
                    if s.len() > max {
                        return;
                    }
                }
                s.push('}');
            }
            // Scalars and strings (memory pages in hex can be long: cut below).
            x => s.push_str(&x.to_string()),
        }
    }
    let mut s = String::new();
    write(v, &mut s, max);
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The first difference between `a` and `b` (depth first; object members in key order), if
/// any.
fn first_difference(a: &Value, b: &Value) -> Option<Difference> {
    let mut path = String::new();
    diff_at(a, b, &mut path)
}

fn diff_at(a: &Value, b: &Value, path: &mut String) -> Option<Difference> {
    if a == b {
        return None;
    }
    let here = |path: &str, left: String, right: String| Difference {
        path: if path.is_empty() {
            "(root)".into()
        } else {
            path.to_string()
        },
        left,
        right,
    };
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            for (i, (u, v)) in x.iter().zip(y.iter()).enumerate() {
                if u != v {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    for key in ["func", "page"] {
                        if let Some(Value::Number(n)) = u.get(key) {
                            let _ = write!(path, "{{{key}={n}}}");
                        }
                    }
                    let d = diff_at(u, v, path);
                    path.truncate(len);
                    return d;
                }
            }
            Some(here(
                path,
                format!("{} elements", x.len()),
                format!("{} elements", y.len()),
            ))
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, u) in x {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let d = match y.get(k) {
                    Some(v) => diff_at(u, v, path),
                    None => Some(here(path, compact(u, 200), "(missing)".into())),
                };
                path.truncate(len);
                if d.is_some() {
                    return d;
                }
            }
            let (k, v) = y.iter().find(|(k, _)| !x.contains_key(*k))?;
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            Some(here(&p, "(missing)".into(), compact(v, 200)))
        }
        (Value::String(x), Value::String(y)) if x.len() > 64 || y.len() > 64 => {
            // Long strings (memory contents in hex): show where they start to differ.
            let at = x
                .bytes()
                .zip(y.bytes())
                .position(|(p, q)| p != q)
                .unwrap_or(x.len().min(y.len()));
            let from = at.saturating_sub(8) & !1;
            let window = |s: &str| {
                let end = (from + 40).min(s.len());
                s.get(from..end).unwrap_or("").to_string()
            };
            Some(here(
                &format!(
                    "{path} (character {at}, byte {} if hex; lengths {} and {})",
                    at / 2,
                    x.len(),
                    y.len()
                ),
                format!("…{}…", window(x)),
                format!("…{}…", window(y)),
            ))
        }
        _ => Some(here(path, compact(a, 200), compact(b, 200))),
    }
}

/// One failed check.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Program.
    pub case: String,
    /// Which run: e.g. `x86_64 -> aarch64 at N=1234 of 5678`.
    pub what: String,
    /// What differed, one entry per problem.
    pub problems: Vec<String>,
    /// Shell commands that reproduce it, in order.
    pub reproduce: Vec<String>,
}

impl Failure {
    fn render(&self) -> String {
        let mut s = format!("[{}] {}\n", self.case, self.what);
        for p in &self.problems {
            let _ = writeln!(s, "  - {}", p.replace('\n', "\n    "));
        }
        if !self.reproduce.is_empty() {
            let _ = writeln!(s, "  reproduce:");
            for c in &self.reproduce {
                let _ = writeln!(s, "    {c}");
            }
        }
        s
    }
}

/// Per-program results.
#[derive(Debug, Clone, Default)]
pub struct CaseSummary {
    /// Migration points of the uninterrupted x86_64 run.
    pub total_points: u64,
    /// The checkpoint points used.
    pub points: Vec<u64>,
    /// Restores run and restores that matched.
    pub restores: (usize, usize),
    /// Snapshot comparisons (same N, different producers) run and equal.
    pub snapshots: (usize, usize),
    /// The chains: description and whether it passed.
    pub chains: Vec<(String, bool)>,
}

/// The result of a C/R run.
#[derive(Debug, Default)]
pub struct CrReport {
    /// Every failure.
    pub failures: Vec<Failure>,
    /// Per program (matrix only).
    pub cases: BTreeMap<String, CaseSummary>,
    /// Informational lines (e.g. the SIGUSR1 runs).
    pub notes: Vec<String>,
    /// Time spent running processes, by engine (summed over jobs).
    pub run_time: BTreeMap<&'static str, Duration>,
    /// Time spent compiling (summed over jobs).
    pub compile_time: Duration,
    /// Wall clock.
    pub wall: Duration,
}

impl CrReport {
    fn add_time(&mut self, engine: Engine, d: Duration) {
        *self.run_time.entry(short(engine)).or_default() += d;
    }

    /// A summary for people.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (name, c) in &self.cases {
            let _ = write!(
                s,
                "  {name:<18} T={:<9} restores {}/{} ok, snapshot comparisons {}/{} equal",
                c.total_points, c.restores.1, c.restores.0, c.snapshots.1, c.snapshots.0
            );
            let shown: Vec<String> = c.points.iter().take(12).map(|n| n.to_string()).collect();
            let more = if c.points.len() > 12 { ",…" } else { "" };
            let _ = writeln!(s, "\n  {:<18} N = {}{more}", "", shown.join(","));
            for (desc, ok) in &c.chains {
                let _ = writeln!(
                    s,
                    "  {:<18} chain {desc}: {}",
                    "",
                    if *ok { "ok" } else { "FAILED" }
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "  {n}");
        }
        let _ = write!(
            s,
            "  {} failures; {:.1} s wall clock; compile {:.1} s",
            self.failures.len(),
            self.wall.as_secs_f64(),
            self.compile_time.as_secs_f64()
        );
        for (e, d) in &self.run_time {
            let _ = write!(s, "; {e} runs {:.1} s", d.as_secs_f64());
        }
        s
    }

    /// Every failure with its reproduction commands.
    pub fn details(&self) -> String {
        self.failures
            .iter()
            .map(Failure::render)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A finished run, its data tree and command.
struct Run {
    outcome: Outcome,
    command: String,
}

fn run_logged(inv: &Invocation, dir: &Path) -> Run {
    let outcome = process::run(inv);
    let _ = std::fs::write(dir.join("stdout"), &outcome.stdout);
    let _ = std::fs::write(dir.join("stderr"), &outcome.stderr);
    Run {
        outcome,
        command: inv.command_line(),
    }
}

/// The uninterrupted x86_64 run of a program.
#[derive(Debug, Clone)]
struct Reference {
    points: u64,
    stdout: Vec<u8>,
    status: Status,
    tree: Tree,
}

/// Everything the jobs share.
struct Ctx<'a> {
    cfg: &'a CrConfig,
    tools: &'a CrTools,
    artifacts: BTreeMap<(String, Engine), PathBuf>,
}

impl Ctx<'_> {
    fn artifact(&self, case: &CrCase, e: Engine) -> &Path {
        &self.artifacts[&(case.name.clone(), e)]
    }
}

/// Compare a finished (possibly multi-part) run with the reference; problems, empty when equal.
fn compare_final(
    reference: &Reference,
    stdout: &[u8],
    status: &Status,
    data: &Path,
    label: &str,
    last_stderr: &[u8],
) -> Vec<String> {
    let mut problems = Vec::new();
    if *status != reference.status {
        problems.push(format!(
            "exit status differs: uninterrupted {}, {label} {status}; {label} stderr ends with:\n{}",
            reference.status,
            tail(last_stderr, 8)
        ));
    }
    if stdout != reference.stdout.as_slice() {
        problems.push(format!(
            "stdout differs: {}",
            first_line_diff(&reference.stdout, stdout, "uninterrupted", label)
        ));
    }
    match tree::snapshot(data) {
        Ok(t) => {
            let d = tree::diff(&reference.tree, &t, "uninterrupted", label);
            if !d.is_empty() {
                let more = if d.len() > 10 {
                    format!("\n... and {} more", d.len() - 10)
                } else {
                    String::new()
                };
                problems.push(format!(
                    "final contents of {GUEST_DIR} differ:\n{}{more}",
                    d.iter()
                        .take(10)
                        .map(|s| format!("  {s}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
        }
        Err(e) => problems.push(format!("cannot read {}: {e}", data.display())),
    }
    problems
}

/// Problems of a run that should have written a checkpoint at `n` (None: unknown N, e.g. SIGUSR1).
fn check_checkpoint(
    run: &Run,
    snap: &Path,
    n: Option<u64>,
    reference: &Reference,
    label: &str,
) -> Vec<String> {
    let o = &run.outcome;
    let mut problems = Vec::new();
    if o.status != Status::Exited(0) {
        problems.push(format!(
            "{label}: expected exit code 0 after the checkpoint, got {}; stderr ends with:\n{}",
            o.status,
            tail(&o.stderr, 8)
        ));
    }
    let msg = format!("checkpoint written to {}", snap.display());
    let got_n = checkpoint_points(&o.stderr);
    if !contains(&o.stderr, msg.as_bytes()) || got_n.is_none() || (n.is_some() && got_n != n) {
        problems.push(format!(
            "{label}: stderr lacks `{msg} after {} migration points`; it ends with:\n{}",
            n.map(|n| n.to_string()).unwrap_or_else(|| "N".into()),
            tail(&o.stderr, 8)
        ));
    }
    if !snap.is_file() {
        problems.push(format!("{label}: no snapshot at {}", snap.display()));
    }
    if !reference.stdout.starts_with(&o.stdout) {
        problems.push(format!(
            "{label}: stdout before the checkpoint is not a prefix of the uninterrupted stdout: {}",
            first_line_diff(&reference.stdout, &o.stdout, "uninterrupted", label)
        ));
    }
    problems
}

/// Decode a snapshot to `<snap>.json`; the JSON text.
fn decode_snapshot(tools: &CrTools, snap: &Path) -> Result<String, String> {
    let inv = tools.decode(snap);
    let o = process::run(&inv);
    if o.status != Status::Exited(0) {
        return Err(format!(
            "wanco-snap decode failed ({}):\n{}\n  command: {}",
            o.status,
            tail(&o.stderr, 8),
            inv.command_line()
        ));
    }
    let text = String::from_utf8(o.stdout)
        .map_err(|_| "wanco-snap decode: output is not UTF-8".to_string())?;
    let _ = std::fs::write(snap.with_extension("json"), &text);
    Ok(text)
}

/// The first difference between the Wasm states of two snapshots (their decoded JSON), if any.
fn state_difference(
    a: &str,
    b: &str,
    la: &str,
    lb: &str,
    host_values: bool,
) -> Result<Option<String>, String> {
    let (x, y) = (
        normalized_state(a, host_values)?,
        normalized_state(b, host_values)?,
    );
    Ok(first_difference(&x, &y).map(|d| {
        format!(
            "first difference at {}:\n  {la:>8}: {}\n  {lb:>8}: {}",
            d.path, d.left, d.right
        )
    }))
}

struct JobOutcome {
    failures: Vec<Failure>,
    restores: (usize, usize),
    chain: Option<(String, bool)>,
    times: Vec<(Engine, Duration)>,
    line: String,
}

/// One producer at one N, then every consumer restoring its snapshot.
fn producer_job(
    ctx: &Ctx,
    case: &CrCase,
    reference: &Reference,
    n: u64,
    producer: Engine,
) -> JobOutcome {
    let mut out = JobOutcome {
        failures: Vec::new(),
        restores: (0, 0),
        chain: None,
        times: Vec::new(),
        line: String::new(),
    };
    let t = reference.points;
    let dir = ctx
        .cfg
        .work_dir
        .join("runs")
        .join(&case.name)
        .join(format!("n{n}"))
        .join(short(producer));
    let (initial, data, checkpointed) = (
        dir.join("data.initial"),
        dir.join("data"),
        dir.join("data.checkpointed"),
    );
    let snap = dir.join("checkpoint.wsnap");
    let what = |consumer: Option<Engine>| match consumer {
        Some(c) => format!("{} -> {} at N={n} of {t}", short(producer), short(c)),
        None => format!("checkpoint on {} at N={n} of {t}", short(producer)),
    };
    let setup = fresh_dir(&dir)
        .and_then(|_| tree::populate(&initial, &case.files, &case.dirs).map_err(|e| e.to_string()))
        .and_then(|_| reset_data(&initial, &data));
    if let Err(e) = setup {
        out.failures.push(Failure {
            case: case.name.clone(),
            what: what(None),
            problems: vec![e],
            reproduce: vec![],
        });
        return out;
    }
    let inv = ctx.tools.start(
        producer,
        case,
        ctx.artifact(case, producer),
        &data,
        &checkpoint_opts(n, &snap),
        &dir,
    );
    let prod = run_logged(&inv, &dir);
    out.times.push((producer, prod.outcome.elapsed));
    let prepare = reset_command(&initial, &data);
    let reproduce = vec![prepare, prod.command.clone()];
    let problems = check_checkpoint(&prod, &snap, Some(n), reference, short(producer));
    let _ = write!(
        out.line,
        "{} N={n}: {} checkpoint {} ({:.2} s)",
        case.name,
        short(producer),
        if problems.is_empty() { "ok" } else { "FAILED" },
        prod.outcome.elapsed.as_secs_f64()
    );
    if !problems.is_empty() {
        out.failures.push(Failure {
            case: case.name.clone(),
            what: what(None),
            problems,
            reproduce,
        });
        return out;
    }
    if let Err(e) = decode_snapshot(ctx.tools, &snap) {
        out.failures.push(Failure {
            case: case.name.clone(),
            what: what(None),
            problems: vec![e],
            reproduce: reproduce.clone(),
        });
    }
    if let Err(e) = copy_tree(&data, &checkpointed) {
        out.failures.push(Failure {
            case: case.name.clone(),
            what: what(None),
            problems: vec![format!("cannot copy {}: {e}", data.display())],
            reproduce: vec![],
        });
        return out;
    }
    out.line.push_str(" ->");
    for &consumer in &ctx.cfg.engines {
        out.restores.0 += 1;
        let cdir = dir.join(format!("to-{}", short(consumer)));
        if let Err(e) = fresh_dir(&cdir).and_then(|_| reset_data(&checkpointed, &data)) {
            out.failures.push(Failure {
                case: case.name.clone(),
                what: what(Some(consumer)),
                problems: vec![e],
                reproduce: vec![],
            });
            continue;
        }
        let inv = ctx.tools.restore(
            consumer,
            case,
            ctx.artifact(case, consumer),
            &snap,
            &[],
            &cdir,
        );
        let cons = run_logged(&inv, &cdir);
        out.times.push((consumer, cons.outcome.elapsed));
        let mut stdout = prod.outcome.stdout.clone();
        stdout.extend_from_slice(&cons.outcome.stdout);
        let label = format!("{}->{}", short(producer), short(consumer));
        let problems = compare_final(
            reference,
            &stdout,
            &cons.outcome.status,
            &data,
            &label,
            &cons.outcome.stderr,
        );
        // Keep the consumer's final directory next to its output.
        let _ = std::fs::rename(&data, cdir.join("data"));
        let _ = write!(
            out.line,
            " {} {} ({:.2} s)",
            short(consumer),
            if problems.is_empty() { "ok" } else { "FAILED" },
            cons.outcome.elapsed.as_secs_f64()
        );
        if problems.is_empty() {
            out.restores.1 += 1;
        } else {
            let mut r = reproduce.clone();
            r.push(format!(
                "# the producer leaves /data as the restore needs it; or: {}",
                reset_command(&checkpointed, &data)
            ));
            r.push(cons.command.clone());
            out.failures.push(Failure {
                case: case.name.clone(),
                what: what(Some(consumer)),
                problems,
                reproduce: r,
            });
        }
    }
    out
}

/// The two chains of a program with `t` points: (T/3, 2T/3) and (T/2, T/2 + 1), the second
/// checkpointing again at the very next migration point after the restore.
pub fn chain_points(t: u64) -> Vec<(u64, u64)> {
    if t < 3 {
        return Vec::new();
    }
    let mut v = vec![
        ((t / 3).max(1), (2 * t / 3).max(t / 3 + 1)),
        (t / 2, t / 2 + 1),
    ];
    v.dedup();
    v
}

/// A chain: `a` checkpoints at `n1`, `b` restores it and checkpoints again at `m` (> `n1`), `c`
/// restores that. Also compares the second snapshot with one written by `b` straight from the
/// start at `m`.
fn chain_job(
    ctx: &Ctx,
    case: &CrCase,
    reference: &Reference,
    engines: [Engine; 3],
    (n1, m): (u64, u64),
) -> JobOutcome {
    let t = reference.points;
    let [a, b, c] = engines;
    let desc = format!("{}@{n1} -> {}@{m} -> {}", short(a), short(b), short(c));
    let mut out = JobOutcome {
        failures: Vec::new(),
        restores: (0, 0),
        chain: None,
        times: Vec::new(),
        line: String::new(),
    };
    let dir = ctx
        .cfg
        .work_dir
        .join("runs")
        .join(&case.name)
        .join(format!("chain-{n1}-{m}"));
    let (initial, data) = (dir.join("data.initial"), dir.join("data"));
    let (snap_a, snap_b, snap_direct) = (
        dir.join("a.wsnap"),
        dir.join("b.wsnap"),
        dir.join("direct.wsnap"),
    );
    let direct_data = dir.join("direct").join("data");
    let what = format!("chain {desc} (T={t})");
    let fail = |problems: Vec<String>, reproduce: Vec<String>| Failure {
        case: case.name.clone(),
        what: what.clone(),
        problems,
        reproduce,
    };
    let setup = fresh_dir(&dir)
        .and_then(|_| tree::populate(&initial, &case.files, &case.dirs).map_err(|e| e.to_string()))
        .and_then(|_| reset_data(&initial, &data))
        .and_then(|_| {
            ["a", "b", "c"]
                .iter()
                .try_for_each(|s| fresh_dir(&dir.join(s)))
        })
        .and_then(|_| reset_data(&initial, &direct_data));
    if let Err(e) = setup {
        out.failures.push(fail(vec![e], vec![]));
        out.chain = Some((desc, false));
        return out;
    }
    let mut reproduce = vec![reset_command(&initial, &data)];
    let inv_a = ctx.tools.start(
        a,
        case,
        ctx.artifact(case, a),
        &data,
        &checkpoint_opts(n1, &snap_a),
        &dir.join("a"),
    );
    let run_a = run_logged(&inv_a, &dir.join("a"));
    out.times.push((a, run_a.outcome.elapsed));
    reproduce.push(run_a.command.clone());
    let mut problems = check_checkpoint(
        &run_a,
        &snap_a,
        Some(n1),
        reference,
        &format!("first checkpoint ({})", short(a)),
    );
    let mut stdout = run_a.outcome.stdout.clone();
    if problems.is_empty() {
        let inv_b = ctx.tools.restore(
            b,
            case,
            ctx.artifact(case, b),
            &snap_a,
            &checkpoint_opts(m, &snap_b),
            &dir.join("b"),
        );
        let run_b = run_logged(&inv_b, &dir.join("b"));
        out.times.push((b, run_b.outcome.elapsed));
        reproduce.push(run_b.command.clone());
        let partial = Reference {
            stdout: reference.stdout[stdout.len().min(reference.stdout.len())..].to_vec(),
            ..reference.clone()
        };
        problems.extend(check_checkpoint(
            &run_b,
            &snap_b,
            Some(m),
            &partial,
            &format!("second checkpoint ({} restoring)", short(b)),
        ));
        stdout.extend_from_slice(&run_b.outcome.stdout);
    }
    if problems.is_empty() {
        let inv_c = ctx
            .tools
            .restore(c, case, ctx.artifact(case, c), &snap_b, &[], &dir.join("c"));
        let run_c = run_logged(&inv_c, &dir.join("c"));
        out.times.push((c, run_c.outcome.elapsed));
        reproduce.push(run_c.command.clone());
        stdout.extend_from_slice(&run_c.outcome.stdout);
        problems.extend(compare_final(
            reference,
            &stdout,
            &run_c.outcome.status,
            &data,
            &desc,
            &run_c.outcome.stderr,
        ));
        // The second snapshot must hold the state of an uninterrupted run at m.
        let inv_d = ctx.tools.start(
            b,
            case,
            ctx.artifact(case, b),
            &direct_data,
            &checkpoint_opts(m, &snap_direct),
            &dir.join("direct"),
        );
        let run_d = run_logged(&inv_d, &dir.join("direct"));
        out.times.push((b, run_d.outcome.elapsed));
        let direct_label = format!("direct checkpoint ({} at {m})", short(b));
        let mut dproblems =
            check_checkpoint(&run_d, &snap_direct, Some(m), reference, &direct_label);
        if dproblems.is_empty() {
            match (decode_snapshot(ctx.tools, &snap_b), decode_snapshot(ctx.tools, &snap_direct)) {
                (Ok(x), Ok(y)) => match state_difference(&y, &x, "direct", "chained", case.host_dependent_values) {
                    Ok(None) => {}
                    Ok(Some(d)) => dproblems.push(format!(
                        "the snapshot written after restoring differs from the one written at N={m} without interruption: {d}\n(compare: {} diff {} {})",
                        ctx.tools.snap.display(),
                        snap_direct.display(),
                        snap_b.display()
                    )),
                    Err(e) => dproblems.push(e),
                },
                (Err(e), _) | (_, Err(e)) => dproblems.push(e),
            }
        }
        if !dproblems.is_empty() {
            reproduce.push(format!("{}  # direct", run_d.command));
            problems.extend(dproblems);
        }
    }
    out.line = format!(
        "{} chain {desc}: {}",
        case.name,
        if problems.is_empty() { "ok" } else { "FAILED" }
    );
    out.chain = Some((desc, problems.is_empty()));
    if !problems.is_empty() {
        out.failures.push(fail(problems, reproduce));
    }
    out
}

/// The engines of the chain of the `i`-th case: the orders rotate over the cases, so that the
/// chains of six cases cover all six orders of three engines.
pub fn chain_order(engines: &[Engine], i: usize) -> [Engine; 3] {
    const ORDERS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [1, 2, 0],
        [2, 0, 1],
        [0, 2, 1],
        [2, 1, 0],
        [1, 0, 2],
    ];
    let e = engines;
    match e.len() {
        0 => [Engine::AotX86_64; 3],
        1 => [e[0]; 3],
        2 => [e[i % 2], e[(i + 1) % 2], e[i % 2]],
        _ => ORDERS[i % 6].map(|k| e[k]),
    }
}

fn selected(cfg: &CrConfig, cases: Vec<CrCase>) -> Vec<CrCase> {
    cases
        .into_iter()
        .filter(|c| cfg.filter.is_empty() || cfg.filter.iter().any(|f| c.name.contains(f.as_str())))
        .collect()
}

/// Compile `(case name, module)` for every AOT engine in `engines`; artifacts per (name, engine)
/// (the module itself for the interpreter). Failures are added to `report`.
fn compile_all(
    cfg: &CrConfig,
    tools: &CrTools,
    programs: &[(String, PathBuf)],
    engines: &[Engine],
    bin_dir: &Path,
    report: &mut CrReport,
) -> BTreeMap<(String, Engine), PathBuf> {
    let mut jobs: Vec<(&str, &Path, Engine)> = Vec::new();
    for e in engines.iter().rev().filter(|e| e.isa().is_some()) {
        jobs.extend(programs.iter().map(|(n, m)| (n.as_str(), m.as_path(), *e)));
    }
    let done = AtomicUsize::new(0);
    let results = parallel_map(&jobs, cfg.jobs, |&(name, module, e)| {
        let r = tools.compile(e, module, &bin_dir.join(format!("{name}.{}", short(e))));
        let k = done.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!(
            "[cr compile {k}/{}] {name} {}: {}",
            jobs.len(),
            short(e),
            match &r {
                Ok((_, d)) => format!("ok ({:.2} s)", d.as_secs_f64()),
                Err(_) => "FAILED".into(),
            }
        );
        r
    });
    let mut artifacts = BTreeMap::new();
    for ((name, _, e), r) in jobs.iter().zip(results) {
        match r {
            Ok((p, d)) => {
                report.compile_time += d;
                artifacts.insert((name.to_string(), *e), p);
            }
            Err(what) => report.failures.push(Failure {
                case: name.to_string(),
                what: format!("compile for {}", short(*e)),
                problems: vec![what],
                reproduce: vec![],
            }),
        }
    }
    for (name, module) in programs {
        artifacts.insert((name.clone(), Engine::Interp), module.clone());
    }
    artifacts
}

/// The uninterrupted runs of a case: x86_64 (the reference, with `--count-points`) and the other
/// engines, which must agree with it (stdout, exit code, /data, number of points).
fn reference_job(
    ctx: &Ctx,
    case: &CrCase,
) -> (Option<Reference>, Vec<Failure>, Vec<(Engine, Duration)>) {
    let mut failures = Vec::new();
    let mut times = Vec::new();
    let base = ctx
        .cfg
        .work_dir
        .join("runs")
        .join(&case.name)
        .join("uninterrupted");
    let mut reference: Option<Reference> = None;
    let mut engines = vec![Engine::AotX86_64];
    engines.extend(ctx.cfg.engines.iter().filter(|e| **e != Engine::AotX86_64));
    for e in engines {
        if !ctx.artifacts.contains_key(&(case.name.clone(), e)) {
            continue; // compile failure, reported already
        }
        let dir = base.join(short(e));
        let data = dir.join("data");
        let what = format!("uninterrupted run on {}", short(e));
        if let Err(err) = fresh_dir(&dir)
            .and_then(|_| tree::populate(&data, &case.files, &case.dirs).map_err(|x| x.to_string()))
        {
            failures.push(Failure {
                case: case.name.clone(),
                what,
                problems: vec![err],
                reproduce: vec![],
            });
            continue;
        }
        let inv = ctx.tools.start(
            e,
            case,
            ctx.artifact(case, e),
            &data,
            &["--count-points".to_string()],
            &dir,
        );
        let run = run_logged(&inv, &dir);
        times.push((e, run.outcome.elapsed));
        let o = &run.outcome;
        let mut problems = Vec::new();
        let points = counted_points(&o.stderr);
        if points.is_none() {
            problems.push(format!(
                "no `migration points: N` line in stderr; it ends with:\n{}",
                tail(&o.stderr, 8)
            ));
        }
        match &reference {
            None => {
                if o.status != Status::Exited(case.exit) {
                    problems.push(format!(
                        "expected exit code {}, got {}; stderr ends with:\n{}",
                        case.exit,
                        o.status,
                        tail(&o.stderr, 8)
                    ));
                }
                for t in &case.stdout_contains {
                    if !contains(&o.stdout, t.as_bytes()) {
                        problems.push(format!(
                            "stdout does not contain `{t}`; it ends with:\n{}",
                            tail(&o.stdout, 5)
                        ));
                    }
                }
                match (tree::snapshot(&data), points) {
                    (Ok(tree), Some(p)) if problems.is_empty() => {
                        reference = Some(Reference {
                            points: p,
                            stdout: o.stdout.clone(),
                            status: o.status.clone(),
                            tree,
                        });
                    }
                    (Err(err), _) => {
                        problems.push(format!("cannot read {}: {err}", data.display()))
                    }
                    _ => {}
                }
            }
            Some(r) => {
                problems.extend(compare_final(
                    r,
                    &o.stdout,
                    &o.status,
                    &data,
                    short(e),
                    &o.stderr,
                ));
                if let Some(p) = points.filter(|p| *p != r.points) {
                    problems.push(format!(
                        "{} migration points, x86_64 {}: the checkpoint points are not deterministic for this program",
                        p, r.points
                    ));
                }
            }
        }
        if !problems.is_empty() {
            failures.push(Failure {
                case: case.name.clone(),
                what,
                problems,
                reproduce: vec![run.command],
            });
            if reference.is_none() {
                break; // nothing to compare with
            }
        }
    }
    (reference, failures, times)
}

/// Run the whole matrix (see the module docs). `Err` only for setup problems.
pub fn run_matrix(cfg: &CrConfig) -> Result<CrReport, String> {
    let start = Instant::now();
    let programs_dir = &cfg.programs_dir;
    let all = load_cr_cases(&programs_dir.join("cr").join("cases.toml"), programs_dir)?;
    let cases = selected(cfg, all.case);
    if cases.is_empty() {
        return Err(format!(
            "no C/R case matches WANCO_CR_FILTER={}",
            cfg.filter.join(",")
        ));
    }
    let tools = CrTools::locate(&cfg.workspace, &cfg.engines)?;
    let bin_dir = cfg.work_dir.join("bin");
    fresh_dir(&bin_dir)?;
    fresh_dir(&cfg.work_dir.join("runs"))?;
    let mut report = CrReport::default();
    let mut engines_needed = cfg.engines.clone();
    if !engines_needed.contains(&Engine::AotX86_64) {
        engines_needed.push(Engine::AotX86_64);
    }
    let programs: Vec<(String, PathBuf)> = cases
        .iter()
        .map(|c| (c.name.clone(), programs_dir.join(&c.module)))
        .collect();
    let artifacts = compile_all(
        cfg,
        &tools,
        &programs,
        &engines_needed,
        &bin_dir,
        &mut report,
    );
    let ctx = Ctx {
        cfg,
        tools: &tools,
        artifacts,
    };

    // 1. Uninterrupted runs: the reference (T, stdout, exit code, /data) and agreement.
    let refs = parallel_map(&cases, cfg.jobs, |case| {
        if !ctx
            .artifacts
            .contains_key(&(case.name.clone(), Engine::AotX86_64))
        {
            return (None, Vec::new(), Vec::new());
        }
        let r = reference_job(&ctx, case);
        eprintln!(
            "[cr reference] {}: {}",
            case.name,
            match &r.0 {
                Some(r) => format!("{} migration points", r.points),
                None => "FAILED".into(),
            }
        );
        r
    });
    let mut references: BTreeMap<String, Reference> = BTreeMap::new();
    for (case, (r, f, times)) in cases.iter().zip(refs) {
        report.failures.extend(f);
        for (e, d) in times {
            report.add_time(e, d);
        }
        if let Some(r) = r {
            references.insert(case.name.clone(), r);
        }
    }

    // 2. Producers x points (each followed by its consumers), and two chains per case.
    enum Job<'c> {
        Produce(&'c CrCase, u64, Engine),
        Chain(&'c CrCase, [Engine; 3], (u64, u64)),
    }
    let mut jobs: Vec<Job> = Vec::new();
    let usable = |case: &CrCase, e: Engine| ctx.artifacts.contains_key(&(case.name.clone(), e));
    for (ci, case) in cases.iter().enumerate() {
        let Some(r) = references.get(&case.name) else {
            continue;
        };
        if !cfg.engines.iter().all(|e| usable(case, *e)) {
            continue; // compile failure, reported already
        }
        let ns = if cfg.at.is_empty() {
            let mut v = points(r.points, cfg.points);
            v.extend(r.points.saturating_sub(case.end_points.saturating_sub(1)).max(1)..=r.points);
            v.sort();
            v.dedup();
            v
        } else {
            let mut v: Vec<u64> = cfg
                .at
                .iter()
                .map(|n| (*n).clamp(1, r.points.max(1)))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        report.cases.insert(
            case.name.clone(),
            CaseSummary {
                total_points: r.points,
                points: ns.clone(),
                ..CaseSummary::default()
            },
        );
        for &n in &ns {
            for &p in &cfg.engines {
                jobs.push(Job::Produce(case, n, p));
            }
        }
        for (k, pair) in chain_points(r.points).into_iter().enumerate() {
            jobs.push(Job::Chain(
                case,
                chain_order(&cfg.engines, ci + 3 * k),
                pair,
            ));
        }
    }
    // The slowest jobs (aarch64 and interp producers, chains) first.
    jobs.sort_by_key(|j| match j {
        Job::Produce(_, _, Engine::AotX86_64) => 2,
        Job::Produce(..) => 0,
        Job::Chain(..) => 1,
    });
    let done = AtomicUsize::new(0);
    let results = parallel_map(&jobs, cfg.jobs, |job| {
        let o = match job {
            Job::Produce(case, n, p) => producer_job(&ctx, case, &references[&case.name], *n, *p),
            Job::Chain(case, order, pair) => {
                chain_job(&ctx, case, &references[&case.name], *order, *pair)
            }
        };
        let k = done.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!("[cr {k}/{}] {}", jobs.len(), o.line);
        o
    });
    for (job, o) in jobs.iter().zip(results) {
        let name = match job {
            Job::Produce(c, ..) | Job::Chain(c, ..) => &c.name,
        };
        let s = report.cases.get_mut(name.as_str()).expect("summary exists");
        s.restores.0 += o.restores.0;
        s.restores.1 += o.restores.1;
        s.chains.extend(o.chain);
        for (e, d) in o.times {
            report.add_time(e, d);
        }
        report.failures.extend(o.failures);
    }

    // 3. Determinism: the snapshots of all producers at the same N hold the same state.
    let groups: Vec<(&CrCase, u64)> = cases
        .iter()
        .filter_map(|c| report.cases.get(&c.name).map(|s| (c, s.points.clone())))
        .flat_map(|(c, ns)| ns.into_iter().map(move |n| (c, n)))
        .collect();
    let compared = parallel_map(&groups, cfg.jobs, |&(case, n)| {
        let dir = cfg
            .work_dir
            .join("runs")
            .join(&case.name)
            .join(format!("n{n}"));
        let t = references[&case.name].points;
        let mut failures = Vec::new();
        let mut counts = (0, 0);
        let mut first: Option<(Engine, String)> = None;
        for &p in &cfg.engines {
            let json_path = dir.join(short(p)).join("checkpoint.json");
            let Ok(text) = std::fs::read_to_string(&json_path) else {
                continue; // the producer failed: reported already
            };
            match &first {
                None => first = Some((p, text)),
                Some((q, base)) => {
                    counts.0 += 1;
                    let snaps = |e: Engine| dir.join(short(e)).join("checkpoint.wsnap");
                    match state_difference(
                        base,
                        &text,
                        short(*q),
                        short(p),
                        case.host_dependent_values,
                    ) {
                        Ok(None) => counts.1 += 1,
                        Ok(Some(d)) => failures.push(Failure {
                            case: case.name.clone(),
                            what: format!(
                                "snapshots of {} and {} at N={n} of {t}",
                                short(*q),
                                short(p)
                            ),
                            problems: vec![format!("the Wasm state differs; {d}")],
                            reproduce: vec![
                                format!(
                                    "{} diff {} {}",
                                    tools.snap.display(),
                                    snaps(*q).display(),
                                    snaps(p).display()
                                ),
                                format!(
                                    "diff {} {}",
                                    dir.join(short(*q)).join("checkpoint.json").display(),
                                    json_path.display()
                                ),
                            ],
                        }),
                        Err(e) => failures.push(Failure {
                            case: case.name.clone(),
                            what: format!("snapshot of {} at N={n}", short(p)),
                            problems: vec![e],
                            reproduce: vec![],
                        }),
                    }
                }
            }
        }
        (case.name.clone(), counts, failures)
    });
    for (name, counts, failures) in compared {
        let s = report.cases.get_mut(&name).expect("summary exists");
        s.snapshots.0 += counts.0;
        s.snapshots.1 += counts.1;
        report.failures.extend(failures);
    }
    // Group the failures by program (stable: within a program, in the order found).
    report.failures.sort_by(|a, b| a.case.cmp(&b.case));
    report.wall = start.elapsed();
    Ok(report)
}

/// Run `inv`, capturing its output; as soon as its stdout contains `marker`, send it `signal`
/// (with `kill -SIGNAL PID`). Returns the outcome and when the signal was sent.
pub fn run_with_signal(
    inv: &Invocation,
    marker: &[u8],
    signal: &str,
) -> (Outcome, Option<Duration>) {
    let start = Instant::now();
    let mut cmd = process::command(inv, Stdio::null());
    let fail = |e: String| Outcome {
        status: Status::SpawnFailed(e),
        stdout: Vec::new(),
        stderr: Vec::new(),
        elapsed: start.elapsed(),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (fail(format!("{}: {e}", inv.program.display())), None),
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut out = child.stdout.take().expect("piped stdout");
    let out_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(k) = out.read(&mut buf) {
            if k == 0 || tx.send(buf[..k].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut err = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut stdout = Vec::new();
    let mut signaled = None;
    let status = loop {
        while let Ok(chunk) = rx.try_recv() {
            stdout.extend_from_slice(&chunk);
        }
        if signaled.is_none() && contains(&stdout, marker) {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
            signaled = Some(start.elapsed());
        }
        match process::poll_status(&mut child, start, inv.timeout) {
            Some(st) => break st,
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let _ = out_reader.join();
    while let Ok(chunk) = rx.try_recv() {
        stdout.extend_from_slice(&chunk);
    }
    let stderr = err_reader.join().unwrap_or_default();
    (
        Outcome {
            status,
            stdout,
            stderr,
            elapsed: start.elapsed(),
        },
        signaled,
    )
}

/// The stdout line after which the SIGUSR1 test signals a run on `e`: about 0.5 s into a native
/// run, later (and earlier in the program) under emulation.
pub fn signal_marker(e: Engine) -> &'static str {
    match e {
        Engine::AotX86_64 => "progress 2/10\n",
        _ => "progress 1/10\n",
    }
}

/// The SIGUSR1 test: for each `(from, to)` of `cfg.signal_pairs`, start the long-running program
/// on `from`, send SIGUSR1 once it printed [`signal_marker`], expect exit 0 and the checkpoint
/// message, restore on `to` and compare with the uninterrupted x86_64 run.
pub fn run_signal_tests(cfg: &CrConfig) -> Result<CrReport, String> {
    let start = Instant::now();
    let programs_dir = &cfg.programs_dir;
    let cases = load_cr_cases(&programs_dir.join("cr").join("cases.toml"), programs_dir)?;
    let mut engines: Vec<Engine> = cfg
        .signal_pairs
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .collect();
    engines.push(Engine::AotX86_64);
    engines.sort();
    engines.dedup();
    let tools = CrTools::locate(&cfg.workspace, &engines)?;
    let base = cfg.work_dir.join("signal");
    fresh_dir(&base)?;
    fresh_dir(&base.join("bin"))?;
    let mut report = CrReport::default();
    let module = programs_dir.join(&cases.signal.module);
    let name = module
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let case = CrCase {
        name: name.clone(),
        module: cases.signal.module.clone(),
        args: vec![],
        env: vec![],
        files: BTreeMap::new(),
        dirs: vec![],
        stdout_contains: vec![cases.signal.final_line.clone()],
        timeout_secs: Some(120),
        host_dependent_values: false,
        exit: 0,
        end_points: 0,
    };
    let artifacts = compile_all(
        cfg,
        &tools,
        &[(name.clone(), module)],
        &engines,
        &base.join("bin"),
        &mut report,
    );
    let ctx = Ctx {
        cfg,
        tools: &tools,
        artifacts,
    };
    let art = |e: Engine| ctx.artifacts.get(&(name.clone(), e));
    if art(Engine::AotX86_64).is_none() {
        report.wall = start.elapsed();
        return Ok(report);
    }
    // The uninterrupted run.
    let rdir = base.join("uninterrupted");
    fresh_dir(&rdir.join("data"))?;
    let inv = tools.start(
        Engine::AotX86_64,
        &case,
        art(Engine::AotX86_64).unwrap(),
        &rdir.join("data"),
        &[],
        &rdir,
    );
    let r = run_logged(&inv, &rdir);
    report.add_time(Engine::AotX86_64, r.outcome.elapsed);
    report.notes.push(format!(
        "{name} uninterrupted on x86_64: {:.2} s",
        r.outcome.elapsed.as_secs_f64()
    ));
    if r.outcome.status != Status::Exited(0)
        || !contains(&r.outcome.stdout, case.stdout_contains[0].as_bytes())
    {
        report.failures.push(Failure {
            case: name.clone(),
            what: "uninterrupted run on x86_64".into(),
            problems: vec![format!(
                "expected exit 0 and `{}` in stdout; got {}; stdout ends with:\n{}\nstderr ends with:\n{}",
                case.stdout_contains[0],
                r.outcome.status,
                tail(&r.outcome.stdout, 3),
                tail(&r.outcome.stderr, 5)
            )],
            reproduce: vec![r.command],
        });
        report.wall = start.elapsed();
        return Ok(report);
    }
    let reference = Reference {
        points: 0,
        stdout: r.outcome.stdout.clone(),
        status: Status::Exited(0),
        tree: tree::snapshot(&rdir.join("data")).unwrap_or_default(),
    };
    for &(from, to) in &cfg.signal_pairs {
        let (Some(a_from), Some(a_to)) = (art(from), art(to)) else {
            continue;
        };
        let what = format!("SIGUSR1 on {} -> restore on {}", short(from), short(to));
        let dir = base.join(format!("{}-to-{}", short(from), short(to)));
        let data = dir.join("data");
        let snap = dir.join("checkpoint.wsnap");
        fresh_dir(&dir.join("from"))?;
        fresh_dir(&dir.join("to"))?;
        fresh_dir(&data)?;
        let inv = tools.start(
            from,
            &case,
            a_from,
            &data,
            &["--checkpoint-file".to_string(), snap.display().to_string()],
            &dir.join("from"),
        );
        let marker = signal_marker(from);
        let (o, signaled) = run_with_signal(&inv, marker.as_bytes(), "USR1");
        let _ = std::fs::write(dir.join("from").join("stdout"), &o.stdout);
        let _ = std::fs::write(dir.join("from").join("stderr"), &o.stderr);
        report.add_time(from, o.elapsed);
        let manual = format!(
            "{}  # in another shell, once it printed `{}`: kill -USR1 <pid>",
            inv.command_line(),
            marker.trim_end()
        );
        let mut reproduce = vec![manual];
        let run = Run {
            outcome: o,
            command: inv.command_line(),
        };
        let mut problems = Vec::new();
        match signaled {
            None => problems.push(format!(
                "`{}` never appeared on stdout, no signal sent; {}; stdout ends with:\n{}",
                marker.trim_end(),
                run.outcome.status,
                tail(&run.outcome.stdout, 3)
            )),
            Some(_) if contains(&run.outcome.stdout, case.stdout_contains[0].as_bytes()) => problems.push(
                "the program ran to its end although SIGUSR1 was sent before (no checkpoint taken)".into(),
            ),
            Some(_) => problems.extend(check_checkpoint(&run, &snap, None, &reference, short(from))),
        }
        let n = checkpoint_points(&run.outcome.stderr);
        let mut line = format!(
            "{what}: signal at {:.2} s, checkpoint after {} points, exit after {:.2} s",
            signaled.unwrap_or_default().as_secs_f64(),
            n.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            run.outcome.elapsed.as_secs_f64()
        );
        if problems.is_empty() {
            let inv = tools.restore(to, &case, a_to, &snap, &[], &dir.join("to"));
            let r2 = run_logged(&inv, &dir.join("to"));
            report.add_time(to, r2.outcome.elapsed);
            reproduce.push(r2.command.clone());
            let mut stdout = run.outcome.stdout.clone();
            stdout.extend_from_slice(&r2.outcome.stdout);
            problems.extend(compare_final(
                &reference,
                &stdout,
                &r2.outcome.status,
                &data,
                &what,
                &r2.outcome.stderr,
            ));
            let _ = write!(line, "; restore {:.2} s", r2.outcome.elapsed.as_secs_f64());
        }
        line.push_str(if problems.is_empty() {
            ": ok"
        } else {
            ": FAILED"
        });
        eprintln!("[cr signal] {line}");
        report.notes.push(line);
        if !problems.is_empty() {
            report.failures.push(Failure {
                case: name.clone(),
                what,
                problems,
                reproduce,
            });
        }
    }
    report.wall = start.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_points() {
        assert_eq!(points(0, 5), Vec::<u64>::new());
        assert_eq!(points(1, 5), vec![1]);
        assert_eq!(points(100, 1), vec![1]);
        assert_eq!(points(101, 2), vec![1, 51]);
        assert_eq!(points(101, 3), vec![1, 51, 101]);
        assert_eq!(points(11, 11), (1..=11).collect::<Vec<_>>());
        assert_eq!(points(5, 25), vec![1, 2, 3, 4, 5]);
        let p = points(1_000_000, 25);
        assert_eq!((p.len(), p[0], p[24]), (25, 1, 1_000_000));
    }

    #[test]
    fn chains() {
        assert_eq!(chain_points(2), vec![]);
        assert_eq!(chain_points(3), vec![(1, 2)]);
        assert_eq!(chain_points(90), vec![(30, 60), (45, 46)]);
        let all = CR_ENGINES;
        let orders: std::collections::BTreeSet<[Engine; 3]> =
            (0..6).map(|i| chain_order(&all, i)).collect();
        assert_eq!(orders.len(), 6);
        let two = [Engine::AotX86_64, Engine::Interp];
        assert_eq!(
            chain_order(&two, 1),
            [Engine::Interp, Engine::AotX86_64, Engine::Interp]
        );
    }

    #[test]
    fn parses_runtime_messages() {
        assert_eq!(counted_points(b"x\nmigration points: 1234\n"), Some(1234));
        assert_eq!(
            checkpoint_points(b"checkpoint written to /a b/c.wsnap after 77 migration points\n"),
            Some(77)
        );
        assert_eq!(checkpoint_points(b"nothing\n"), None);
    }

    #[test]
    fn normalizes_engine_specific_fields() {
        let a = r#"{"producer": {"engine": "aot"}, "migration_points": 5,
            "wasi": {"args": ["./x.x86_64", "a"], "preopens": [{"host": "/t/1", "guest": "/data"}], "clock": {"monotonic_last_ns": 1}}}"#;
        let b = r#"{"producer": {"engine": "interp"}, "migration_points": 5,
            "wasi": {"args": ["x.wat", "a"], "preopens": [{"host": "/t/2", "guest": "/data"}], "clock": {"monotonic_last_ns": 2}}}"#;
        assert_eq!(state_difference(a, b, "a", "b", false).unwrap(), None);
        let c = b.replace("\"a\"]", "\"B\"]");
        assert!(state_difference(a, &c, "a", "c", false)
            .unwrap()
            .unwrap()
            .contains("wasi.args[1]"));
        // Quiet NaNs of either sign and any payload are equal, signaling NaNs are not.
        let f = |bits: &str| {
            format!(
                r#"{{"frames": [{{"locals": [{{"F64": {bits}}}, {{"F32": 1}}]}}], "globals": []}}"#
            )
        };
        let (pos, neg) = (f("9221120237041090560"), f("18444492273895866368"));
        assert_eq!(state_difference(&pos, &neg, "a", "b", false).unwrap(), None);
        let (snan, snan2) = (f("9218868437227405313"), f("9218868437227405314"));
        assert!(state_difference(&snan, &snan2, "a", "b", false)
            .unwrap()
            .is_some());
        assert!(is_quiet_nan("F32", 0xffc1_2345) && !is_quiet_nan("F32", 0x7f80_0001));
        // Host-dependent values: locals compare by type only, memory not at all.
        let g = |v: &str, ty: &str, mem: &str| {
            format!(
                r#"{{"frames": [{{"func": 3, "locals": [{{"{ty}": {v}}}]}}], "memory": {mem}}}"#
            )
        };
        let (x, y) = (g("1", "I64", "1"), g("2", "I64", "2"));
        assert!(state_difference(&x, &y, "a", "b", false).unwrap().is_some());
        assert_eq!(state_difference(&x, &y, "a", "b", true).unwrap(), None);
        assert!(state_difference(&x, &g("1", "I32", "1"), "a", "b", true)
            .unwrap()
            .is_some());
    }

    #[test]
    fn finds_the_first_difference() {
        let p = |t: &str| -> Value { serde_json::from_str(t).unwrap() };
        let a =
            p(r#"{"a": [1, {"func": 7, "x": "\u00e9\n"}], "b": null, "c": 18446744073709551615}"#);
        let b = p(r#"{"a": [1, {"func": 7, "x": "é\n"}], "b": null, "c": 18446744073709551615}"#);
        assert_eq!(first_difference(&a, &b), None);
        let c = p(r#"{"a": [1, {"func": 7, "x": "e"}], "b": null, "c": 1}"#);
        let d = first_difference(&a, &c).unwrap();
        assert_eq!(d.path, "a[1]{func=7}.x");
        assert_eq!((d.left.as_str(), d.right.as_str()), ("\"é\\n\"", "\"e\""));
        let mut e = c.clone();
        e.as_object_mut().unwrap().remove("b");
        let d = first_difference(&c, &e).unwrap();
        assert_eq!((d.path.as_str(), d.right.as_str()), ("b", "(missing)"));
        let d = first_difference(&e, &c).unwrap();
        assert_eq!((d.path.as_str(), d.left.as_str()), ("b", "(missing)"));
        let long1 = Value::String("0".repeat(100));
        let long2 = Value::String(format!("{}1{}", "0".repeat(50), "0".repeat(49)));
        let d = first_difference(&long1, &long2).unwrap();
        assert!(d.path.contains("character 50, byte 25"), "{d:?}");
        let big = Value::Array(vec![Value::String("x".repeat(1000))]);
        assert_eq!(compact(&big, 10).chars().count(), 11);
        assert_eq!(
            compact(&p(r#"{"k": [1, null, true]}"#), 200),
            r#"{"k":[1,null,true]}"#
        );
        assert!(normalized_state("[1,]", false).is_err());
    }

    #[test]
    fn copies_trees() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let files: BTreeMap<String, String> = [("x/y.txt".to_string(), "1".to_string())].into();
        tree::populate(a.path(), &files, &["e".into()]).unwrap();
        copy_tree(a.path(), &b.path().join("c")).unwrap();
        assert_eq!(
            tree::snapshot(a.path()).unwrap(),
            tree::snapshot(&b.path().join("c")).unwrap()
        );
    }
}
