//! The end-to-end run: compile every program per ISA, run every case on every engine, compare
//! with wasmtime and collect all mismatches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cases::{Case, TRAP_EXIT_CODE};
use crate::diff::{first_line_diff, show_line, tail};
use crate::engine::{Engine, Tools};
use crate::process::{self, contains, Outcome, Status};
use crate::tree::{self, Tree};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Workspace root.
    pub workspace: PathBuf,
    /// `tests/programs`.
    pub programs_dir: PathBuf,
    /// Engines to run on. Without `Wasmtime` nothing can be compared.
    pub engines: Vec<Engine>,
    /// Only cases whose name contains one of these (all when empty).
    pub filter: Vec<String>,
    /// Parallel jobs.
    pub jobs: usize,
    /// Scratch directory: compiled binaries in `bin/`, run directories in `runs/`.
    pub work_dir: PathBuf,
}

impl Config {
    /// The configuration from the environment: `WANCO_E2E_ENGINES` (comma-separated, default
    /// all), `WANCO_E2E_FILTER` (comma-separated substrings of case names), `WANCO_E2E_JOBS`
    /// (default 2), `WANCO_E2E_WORK_DIR` (default `<default_work_dir>`).
    pub fn from_env(workspace: &Path, default_work_dir: &Path) -> Result<Config, String> {
        let engines = match std::env::var("WANCO_E2E_ENGINES") {
            Ok(s) if !s.trim().is_empty() => {
                let mut v = Vec::new();
                for name in s.split(',') {
                    let e = Engine::parse(name).ok_or_else(|| {
                        format!("WANCO_E2E_ENGINES: unknown engine `{name}` (use wasmtime, aot-x86_64, aot-aarch64)")
                    })?;
                    if !v.contains(&e) {
                        v.push(e);
                    }
                }
                if !v.contains(&Engine::Wasmtime) {
                    v.insert(0, Engine::Wasmtime); // the reference is always needed
                }
                v.sort();
                v
            }
            _ => Engine::ALL.to_vec(),
        };
        let filter = std::env::var("WANCO_E2E_FILTER")
            .map(|s| {
                s.split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let jobs = match std::env::var("WANCO_E2E_JOBS") {
            Ok(s) => s
                .parse::<usize>()
                .map_err(|_| format!("WANCO_E2E_JOBS: `{s}` is not a number"))?
                .max(1),
            Err(_) => 2,
        };
        let work_dir = std::env::var_os("WANCO_E2E_WORK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| default_work_dir.to_path_buf());
        Ok(Config {
            workspace: workspace.to_path_buf(),
            programs_dir: workspace.join("tests").join("programs"),
            engines,
            filter,
            jobs,
            work_dir,
        })
    }
}

/// One difference found.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// Case (or `compile <program>`).
    pub case: String,
    /// Engine it concerns.
    pub engine: Engine,
    /// What is wrong, one entry per problem (each may span lines).
    pub problems: Vec<String>,
    /// How to reproduce the run.
    pub command: Option<String>,
}

/// One finished run.
#[derive(Debug)]
struct RunResult {
    outcome: Outcome,
    tree: Result<Tree, String>,
    command: String,
}

/// The result of a whole end-to-end run.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases run.
    pub cases: usize,
    /// Engines used.
    pub engines: Vec<Engine>,
    /// All mismatches, by case.
    pub mismatches: Vec<Mismatch>,
    /// Time spent compiling (summed over jobs), by engine.
    pub compile_time: BTreeMap<Engine, Duration>,
    /// Time spent running (summed over jobs), by engine.
    pub run_time: BTreeMap<Engine, Duration>,
    /// Wall-clock time of the whole run.
    pub wall: Duration,
    /// Cases whose runs all matched, by engine.
    pub passed: BTreeMap<Engine, usize>,
}

impl Report {
    /// A summary for people.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} cases on {}",
            self.cases,
            self.engines
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = write!(s, " in {:.1} s wall clock", self.wall.as_secs_f64());
        for e in &self.engines {
            let _ = write!(
                s,
                "\n  {:<12} {:>3}/{} cases ok; run {:>6.2} s",
                e.name(),
                self.passed.get(e).copied().unwrap_or(0),
                self.cases,
                self.run_time
                    .get(e)
                    .copied()
                    .unwrap_or_default()
                    .as_secs_f64()
            );
            if let Some(c) = self.compile_time.get(e) {
                let _ = write!(s, ", compile {:>6.2} s", c.as_secs_f64());
            }
        }
        s
    }

    /// Every mismatch, grouped by case, with the command that reproduces it.
    pub fn details(&self) -> String {
        let mut s = String::new();
        let mut last_case = "";
        for m in &self.mismatches {
            if m.case != last_case {
                let _ = write!(s, "\n[{}]\n", m.case);
                last_case = &m.case;
            }
            for (i, what) in m.problems.iter().enumerate() {
                let lead = if i == 0 {
                    format!("{}:", m.engine)
                } else {
                    " ".repeat(m.engine.name().len() + 1)
                };
                let indent = format!("\n{}", " ".repeat(lead.len() + 5));
                let _ = writeln!(s, "  {lead} - {}", what.replace('\n', &indent));
            }
            if let Some(c) = &m.command {
                let _ = writeln!(s, "  {} run: {c}", " ".repeat(m.engine.name().len() - 3));
            }
        }
        s
    }
}

/// Apply `f` to every item with at most `jobs` threads; results in input order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item processed"))
        .collect()
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Load the cases selected by the configuration.
pub fn selected_cases(cfg: &Config) -> Result<Vec<Case>, String> {
    let cases = crate::cases::load_cases(&cfg.programs_dir.join("cases.toml"))?;
    Ok(cases
        .into_iter()
        .filter(|c| cfg.filter.is_empty() || cfg.filter.iter().any(|f| c.name.contains(f.as_str())))
        .collect())
}

/// Run everything and report. `Err` only for setup problems (missing tools, bad cases file).
pub fn run_all(cfg: &Config) -> Result<Report, String> {
    let start = Instant::now();
    let cases = selected_cases(cfg)?;
    if cases.is_empty() {
        return Err(format!(
            "no case matches WANCO_E2E_FILTER={}",
            cfg.filter.join(",")
        ));
    }
    let tools = Tools::locate(&cfg.workspace, &cfg.engines)?;
    let wasm_dir = cfg.programs_dir.join("wasm");
    for c in &cases {
        let w = wasm_dir.join(format!("{}.wasm", c.program));
        if !w.is_file() {
            return Err(format!(
                "case `{}`: {} does not exist (run tools/build-test-programs.sh)",
                c.name,
                w.display()
            ));
        }
    }
    let bin_dir = cfg.work_dir.join("bin");
    let runs_dir = cfg.work_dir.join("runs");
    for d in [&bin_dir, &runs_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| format!("cannot clear {}: {e}", d.display()))?;
        }
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let mut report = Report {
        cases: cases.len(),
        engines: cfg.engines.clone(),
        ..Report::default()
    };

    // 1. Compile every program once per ISA. aarch64 first: those runs are the slowest.
    let programs: BTreeSet<&str> = cases.iter().map(|c| c.program.as_str()).collect();
    let mut compile_jobs: Vec<(Engine, &str)> = Vec::new();
    for e in cfg.engines.iter().rev().filter(|e| e.isa().is_some()) {
        compile_jobs.extend(
            programs
                .iter()
                .filter(|p| cases.iter().any(|c| c.program == **p && c.runs_on(e.name())))
                .map(|p| (*e, *p)),
        );
    }
    let done = AtomicUsize::new(0);
    let compiled = parallel_map(&compile_jobs, cfg.jobs, |&(engine, program)| {
        let out = bin_dir.join(format!("{program}.{}", engine.isa().unwrap()));
        let inv = tools.compile_invocation(engine, &wasm_dir.join(format!("{program}.wasm")), &out);
        let o = process::run(&inv);
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!(
            "[compile {n}/{}] {program} {engine}: {} ({:.2} s)",
            compile_jobs.len(),
            o.status,
            o.elapsed.as_secs_f64()
        );
        let result = if o.status == Status::Exited(0) && out.is_file() {
            Ok(out)
        } else {
            let why = if o.status == Status::Exited(0) {
                "exited 0 but wrote no output file".to_string()
            } else {
                o.status.to_string()
            };
            Err(format!(
                "wanco compile failed: {why}\n{}",
                tail(&o.stderr, 12)
            ))
        };
        (result, o.elapsed, inv.command_line())
    });
    let mut artifacts: BTreeMap<(Engine, &str), PathBuf> = BTreeMap::new();
    let mut compile_failed: BTreeSet<(Engine, &str)> = BTreeSet::new();
    for (&(engine, program), (result, elapsed, command)) in compile_jobs.iter().zip(compiled) {
        *report.compile_time.entry(engine).or_default() += elapsed;
        match result {
            Ok(path) => {
                artifacts.insert((engine, program), path);
            }
            Err(what) => {
                compile_failed.insert((engine, program));
                let users: Vec<&str> = cases
                    .iter()
                    .filter(|c| c.program == program)
                    .map(|c| c.name.as_str())
                    .collect();
                report.mismatches.push(Mismatch {
                    case: format!("compile {program}"),
                    engine,
                    problems: vec![format!("{what}\n(affects cases: {})", users.join(", "))],
                    command: Some(command),
                });
            }
        }
    }
    for p in &programs {
        for e in [Engine::Wasmtime, Engine::Interp] {
            artifacts.insert((e, p), wasm_dir.join(format!("{p}.wasm")));
        }
    }

    // 2. Run every case on every engine that has an artifact.
    let mut run_jobs: Vec<(Engine, &Case)> = Vec::new();
    for e in cfg.engines.iter().rev() {
        run_jobs.extend(
            cases
                .iter()
                .filter(|c| c.runs_on(e.name()))
                .filter(|c| artifacts.contains_key(&(*e, c.program.as_str())))
                .map(|c| (*e, c)),
        );
    }
    let done = AtomicUsize::new(0);
    let results = parallel_map(&run_jobs, cfg.jobs, |&(engine, case)| {
        let r = run_one(
            &tools,
            engine,
            case,
            &artifacts[&(engine, case.program.as_str())],
            &runs_dir,
        );
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!(
            "[run {n}/{}] {} {engine}: {} ({:.2} s)",
            run_jobs.len(),
            case.name,
            r.outcome.status,
            r.outcome.elapsed.as_secs_f64()
        );
        r
    });
    let mut by_case: BTreeMap<&str, BTreeMap<Engine, RunResult>> = BTreeMap::new();
    for (&(engine, case), r) in run_jobs.iter().zip(results) {
        *report.run_time.entry(engine).or_default() += r.outcome.elapsed;
        by_case
            .entry(case.name.as_str())
            .or_default()
            .insert(engine, r);
    }

    // 3. Check expectations and compare with wasmtime, case by case in file order.
    for case in &cases {
        let runs = by_case.remove(case.name.as_str()).unwrap_or_default();
        let reference = runs.get(&Engine::Wasmtime);
        for &engine in &cfg.engines {
            if compile_failed.contains(&(engine, case.program.as_str())) {
                continue; // reported once per program
            }
            let Some(run) = runs.get(&engine) else {
                continue;
            };
            // AOT engines are compared with wasmtime (which is checked against the expectations);
            // the expected exit code and stdout texts then add nothing but noise.
            let problems = match reference.filter(|_| engine != Engine::Wasmtime) {
                Some(reference) => {
                    let mut p = compare_with_reference(engine, reference, run);
                    p.extend(check_expectations(case, run, false));
                    p
                }
                None => check_expectations(case, run, true),
            };
            if problems.is_empty() {
                *report.passed.entry(engine).or_default() += 1;
            } else {
                report.mismatches.push(Mismatch {
                    case: case.name.clone(),
                    engine,
                    problems,
                    command: Some(run.command.clone()),
                });
            }
        }
    }
    report.wall = start.elapsed();
    Ok(report)
}

fn run_one(
    tools: &Tools,
    engine: Engine,
    case: &Case,
    artifact: &Path,
    runs_dir: &Path,
) -> RunResult {
    let dir = runs_dir.join(sanitize(&case.name)).join(engine.name());
    let data = dir.join("data");
    let setup = tree::populate(&data, &case.files, &case.dirs);
    let inv = tools.run_invocation(engine, case, artifact, &data, &dir);
    let command = inv.command_line();
    if let Err(e) = setup {
        let outcome = Outcome {
            status: Status::SpawnFailed(format!("cannot prepare {}: {e}", data.display())),
            stdout: Vec::new(),
            stderr: Vec::new(),
            elapsed: Duration::ZERO,
        };
        return RunResult {
            outcome,
            tree: Err("not run".into()),
            command,
        };
    }
    let outcome = process::run(&inv);
    // Keep the outputs next to the directory, for looking at failures by hand.
    let _ = std::fs::write(dir.join("stdout"), &outcome.stdout);
    let _ = std::fs::write(dir.join("stderr"), &outcome.stderr);
    let tree = tree::snapshot(&data).map_err(|e| format!("cannot read {}: {e}", data.display()));
    RunResult {
        outcome,
        tree,
        command,
    }
}

/// Expectations of the cases file. `full`: also the exit code and the stdout texts (checked on
/// wasmtime, which validates the programs and the cases themselves).
fn check_expectations(case: &Case, run: &RunResult, full: bool) -> Vec<String> {
    let o = &run.outcome;
    let mut problems = Vec::new();
    let expected = case.expected_exit();
    if full && o.status != Status::Exited(expected) {
        let mut what = format!("expected exit code {expected}, got {}", o.status);
        if case.trap.is_some() && expected == TRAP_EXIT_CODE {
            what.push_str(&format!(" (a trap exits with {TRAP_EXIT_CODE})"));
        }
        what.push_str(&format!("; stderr ends with:\n{}", tail(&o.stderr, 8)));
        problems.push(what);
    }
    if let Some(trap) = &case.trap {
        if !contains(&o.stderr, trap.as_bytes()) {
            problems.push(format!(
                "trap message `{trap}` not in stderr; stderr ends with:\n{}",
                tail(&o.stderr, 8)
            ));
        }
    }
    for t in &case.stderr_contains {
        if !contains(&o.stderr, t.as_bytes()) {
            problems.push(format!(
                "stderr does not contain `{}`; it ends with:\n{}",
                show_line(t.as_bytes()),
                tail(&o.stderr, 8)
            ));
        }
    }
    for t in case.stdout_contains.iter().filter(|_| full) {
        if !contains(&o.stdout, t.as_bytes()) {
            problems.push(format!(
                "stdout does not contain `{}`; it ends with:\n{}",
                show_line(t.as_bytes()),
                tail(&o.stdout, 5)
            ));
        }
    }
    if let Err(e) = &run.tree {
        problems.push(e.clone());
    }
    problems
}

fn compare_with_reference(engine: Engine, reference: &RunResult, run: &RunResult) -> Vec<String> {
    let mut problems = Vec::new();
    let (r, o) = (&reference.outcome, &run.outcome);
    let name = engine.name();
    if r.status != o.status {
        let mut what = format!(
            "exit status differs: wasmtime {}, {name} {}",
            r.status, o.status
        );
        if !o.stderr.is_empty() {
            what.push_str(&format!(
                "; {name} stderr ends with:\n{}",
                tail(&o.stderr, 8)
            ));
        }
        problems.push(what);
    }
    if r.stdout != o.stdout {
        problems.push(format!(
            "stdout differs: {}",
            first_line_diff(&r.stdout, &o.stdout, "wasmtime", name)
        ));
    }
    if let (Ok(rt), Ok(ot)) = (&reference.tree, &run.tree) {
        let d = tree::diff(rt, ot, "wasmtime", name);
        if !d.is_empty() {
            let shown: Vec<&String> = d.iter().take(10).collect();
            let more = if d.len() > 10 {
                format!("\n... and {} more", d.len() - 10)
            } else {
                String::new()
            };
            problems.push(format!(
                "final contents of {} differ:\n{}{more}",
                crate::cases::GUEST_DIR,
                shown
                    .iter()
                    .map(|s| format!("  {s}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    problems
}
