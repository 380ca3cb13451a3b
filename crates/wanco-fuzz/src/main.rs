//! `wanco-fuzz`: run seeds `S..S+N` differentially (wanco-interp vs wasmi).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use wanco_fuzz::{run_seed, RunStats};

/// Differential fuzzing of wanco-interp against wasmi on wasm-smith modules.
#[derive(Parser)]
#[command(name = "wanco-fuzz")]
struct Args {
    /// Number of modules to generate and run.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// First seed (modules use seeds SEED..SEED+COUNT).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: available parallelism).
    #[arg(long)]
    jobs: Option<usize>,
    /// Stop at the first mismatch.
    #[arg(long)]
    fail_fast: bool,
    /// Run these .wasm files (e.g. saved failures) instead of generated modules.
    #[arg(long, num_args = 1..)]
    replay: Vec<std::path::PathBuf>,
    /// Compare the interpreter with compiled code instead of wasmi:
    /// `aot-x86_64` or `aot-aarch64` (modules compiled in batches into one driver).
    #[arg(long, value_name = "ENGINE")]
    aot: Option<String>,
    /// Modules per compiled driver with --aot.
    #[arg(long, default_value_t = 50)]
    batch: u64,
}

fn main() {
    let args = Args::parse();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let start = Instant::now();
    if let Some(engine) = &args.aot {
        let mut total = wanco_fuzz::aot::AotStats::default();
        let mut s = args.seed;
        let end = args.seed + args.count;
        while s < end {
            let e = (s + args.batch.max(1)).min(end);
            match wanco_fuzz::aot::run_batch(engine, s..e) {
                Ok(st) => {
                    total.modules += st.modules;
                    total.instantiated += st.instantiated;
                    total.simd_modules += st.simd_modules;
                    total.calls += st.calls;
                    total.trap_kind_differs += st.trap_kind_differs;
                    total.memory_trap_lost += st.memory_trap_lost;
                    eprintln!("seeds {s}..{e}: {} modules ({} with SIMD), {} calls agree", st.modules, st.simd_modules, st.calls);
                }
                Err(m) => {
                    println!("MISMATCH {m}");
                    println!("fuzz {engine}: {} modules, {} calls, 1 mismatches, {:.1} s", total.modules, total.calls, start.elapsed().as_secs_f64());
                    std::process::exit(1);
                }
            }
            s = e;
        }
        println!(
            "fuzz {engine}: {} modules ({} with SIMD, {} instantiated), {} calls, 0 mismatches; known imprecisions: {} different trap kind, {} memory trap lost; {:.1} s",
            total.modules,
            total.simd_modules,
            total.instantiated,
            total.calls,
            total.trap_kind_differs,
            total.memory_trap_lost,
            start.elapsed().as_secs_f64()
        );
        return;
    }
    if !args.replay.is_empty() {
        let mut failed = false;
        for path in &args.replay {
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    std::process::exit(2);
                }
            };
            match wanco_fuzz::run_differential_stats(&bytes) {
                Ok(st) => println!("{}: agree ({} calls)", path.display(), st.calls),
                Err(m) => {
                    failed = true;
                    println!("{}: {m}", path.display());
                }
            }
        }
        std::process::exit(failed as i32);
    }
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let total = Mutex::new(RunStats::default());
    let mismatches = Mutex::new(Vec::new());
    let progress_every = (args.count / 20).max(1);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                let mut local = RunStats::default();
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.count {
                        break;
                    }
                    let seed = args.seed.wrapping_add(i);
                    match run_seed(seed) {
                        Ok(st) => local.add(&st),
                        Err(m) => {
                            local.modules += 1;
                            eprintln!("{m}");
                            mismatches.lock().unwrap().push(m);
                            if args.fail_fast {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d.is_multiple_of(progress_every) {
                        eprintln!(
                            "fuzz: {d}/{} modules, {:.1} s",
                            args.count,
                            start.elapsed().as_secs_f64()
                        );
                    }
                }
                total.lock().unwrap().add(&local);
            });
        }
    });
    let total = total.into_inner().unwrap();
    let mismatches = mismatches.into_inner().unwrap();
    eprintln!(
        "fuzz: {} uninstantiable in both engines; calls: {} trapped ({} of them unreachable/out of fuel), {} inconclusive (only one engine exhausted its stack)",
        total.uninstantiable, total.traps, total.unreachable, total.inconclusive
    );
    println!(
        "fuzz: {} modules, {} calls, {} mismatches, {:.1} s",
        total.modules,
        total.calls,
        mismatches.len(),
        start.elapsed().as_secs_f64()
    );
    if !mismatches.is_empty() {
        std::process::exit(1);
    }
}
