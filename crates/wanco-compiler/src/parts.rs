//! Compiling a module in parts on a few threads.
//!
//! The defined functions are split into contiguous runs of about equal body
//! size (neighbours in the function index space are usually neighbours in
//! the source program and in its call graph, and contiguous runs keep every
//! part's points and functions in the order the metadata needs). Each part
//! is built into its own LLVM context and module, optimised and
//! code-generated into its own object; the first part also holds the
//! module-level definitions. There are as many parts as threads (jobs), or
//! a multiple of that where parts of at most [`PART_CODE_LIMIT`] need more:
//! each thread takes the next part when it is done with one, so only `jobs`
//! LLVM modules are in memory at once. The IR of the parts is generated one
//! after the other (each part continues the previous part's point
//! numbering, handed on through a channel), the optimisation and code
//! generation — nearly all the time — run side by side.
//!
//! A part whose code generation runs out of registers with its deopt values
//! in registers (LLVM 19's greedy allocator can; see
//! `target::emit_object_retrying`) is generated once more with them in
//! stack slots, from a copy of its optimised module (an LLVM option,
//! global: that code generation runs alone, the other parts wait for it);
//! the other parts keep their objects. (Not LLVM's per-call
//! `"deopt-lowering"="live-in"`: a live-in deopt value may sit in a
//! register the call clobbers, and LLVM's caller-saved fix-up leaves those
//! statepoints alone, so a frame below the top would read a clobbered
//! register.)

use crate::codegen::{self, ModuleCr, PartSpec};
use crate::error::{CompileError, Result};
use crate::frontend::{Body, Decoded};
use crate::CompileOptions;
use inkwell::context::Context;
use std::ops::Range;
use std::sync::mpsc;

/// Modules with less function body code than this are compiled in one part
/// unless a number of jobs is asked for: a part costs an `ld -r` and an
/// `objcopy` (some milliseconds), more than such a module's compile gains.
pub(crate) const SMALL_MODULE: usize = 32 * 1024;

/// Stack size of a part's thread.
const PART_STACK: usize = 64 << 20;

/// Weight of a function for balancing: its body size plus a fixed cost.
fn weight(body: &Body<'_>) -> usize {
    body_len(body) + 64
}

fn body_len(body: &Body<'_>) -> usize {
    let r = body.body.range();
    (r.end - r.start) as usize
}

/// Function body code above which a part is split further: each part's
/// LLVM module, optimised and code-generated, takes memory in proportion
/// to its code (with C/R about 0.8 GB per MB of code, a spare copy for the
/// register-exhaustion retry included), so a 22 MB module in two parts
/// peaked at 15.6 GB. Parts of at most this much, `jobs` of them at a time,
/// bound the peak whatever the module's size. The modules of the Sightglass
/// suite (at most 1 MB of code) keep one part per core.
pub(crate) const PART_CODE_LIMIT: usize = 1 << 20;

/// How a module is compiled: in `parts` parts, `jobs` of them at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Number of parts (contiguous runs of functions).
    pub parts: usize,
    /// Number of threads, each compiling one part after another.
    pub jobs: usize,
}

/// The plan for `decoded` under `opts`.
pub(crate) fn plan(decoded: &Decoded<'_>, opts: &CompileOptions) -> Plan {
    let code: usize = decoded.bodies.iter().map(|b| body_len(b)).sum();
    let jobs = match opts.jobs {
        Some(j) => j,
        None if code < SMALL_MODULE => 1,
        None => std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1),
    };
    plan_for(code, decoded.bodies.len(), jobs)
}

/// The plan for `functions` functions of `code` bytes of bodies on `jobs`
/// threads: `jobs` parts, or a multiple of `jobs` (each thread gets as many
/// parts, which keeps the threads busy to the end) where parts of at most
/// [`PART_CODE_LIMIT`] need more.
pub(crate) fn plan_for(code: usize, functions: usize, jobs: usize) -> Plan {
    let jobs = jobs.max(1);
    let rounds = code.div_ceil(jobs.saturating_mul(PART_CODE_LIMIT)).max(1);
    let parts = jobs.saturating_mul(rounds).clamp(1, functions.max(1));
    Plan { parts, jobs: jobs.min(parts) }
}

/// Split `weights` into `parts` non-empty contiguous runs of about equal
/// total weight (`parts` ≤ `weights.len()`, or 1 for no functions).
pub(crate) fn partition(weights: &[usize], parts: usize) -> Vec<Range<usize>> {
    let n = weights.len();
    if parts <= 1 || n == 0 {
        return vec![0..n];
    }
    let total: usize = weights.iter().sum();
    let mut cuts = vec![0];
    let mut cum = 0usize;
    let mut i = 0;
    for k in 1..parts {
        let goal = total as u128 * k as u128 / parts as u128;
        // At least one function per part, on both sides of the cut.
        let min = cuts[k - 1] + 1;
        let max = n - (parts - k);
        while i < max && (i < min || ((cum as u128) < goal && (cum + weights[i]) as u128 <= goal + weights[i] as u128 / 2)) {
            cum += weights[i];
            i += 1;
        }
        cuts.push(i);
    }
    cuts.push(n);
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// What compiling the parts gave: one object per part and the checkpoint
/// state of all of them.
pub(crate) struct Compiled {
    pub objects: Vec<Vec<u8>>,
    pub cr: Option<ModuleCr>,
    /// The module's metadata.
    pub info: wanco_state::module::ModuleInfo,
}

/// What compiling one part gives: its object and the checkpoint state so far.
type PartResult = Result<(Vec<u8>, Option<ModuleCr>)>;

/// One part's work, taken by the thread that compiles it.
struct Job<'a> {
    bodies: Vec<Body<'a>>,
    range: Range<usize>,
    /// The checkpoint state after the parts before (`None` inside: no C/R).
    from_before: mpsc::Receiver<Option<ModuleCr>>,
    /// Where this part's state goes to the next part.
    to_next: mpsc::Sender<Option<ModuleCr>>,
}

/// Compile `decoded` as `plan` says: its parts in order, each taken by the
/// next free one of `plan.jobs` threads.
///
/// A part's IR needs the checkpoint state of the parts before it (point
/// numbering), handed on as soon as their IR is built; the threads take the
/// parts in order, so the part a thread waits for is always being built by
/// another thread, and only `jobs` parts are in memory at once.
///
/// `retry`: whether a part that runs out of registers is generated again
/// with its deopt values in stack slots (always, but in a test of the first
/// attempt).
pub(crate) fn compile(decoded: Decoded<'_>, plan: Plan, opts: &CompileOptions, retry: bool) -> Result<Compiled> {
    let Decoded { info, mut bodies } = decoded;
    let num_defined = bodies.len();
    // Before the bodies are split into the parts: which functions have no points.
    let cr0 = if opts.cr { Some(ModuleCr::new(&bodies)?) } else { None };
    let weights: Vec<usize> = bodies.iter().map(weight).collect();
    let ranges = partition(&weights, plan.parts);
    let split = ranges.len() > 1;
    // Owned bodies per part (a body's validator is taken by its part).
    let mut chunks: Vec<Vec<Body<'_>>> = Vec::new();
    for r in ranges.iter().rev() {
        chunks.push(bodies.split_off(r.start));
    }
    chunks.reverse();
    let (first_tx, mut rx) = mpsc::channel::<Option<ModuleCr>>();
    first_tx.send(cr0).expect("receiver alive");
    drop(first_tx);
    let mut jobs = Vec::new();
    for (bodies, range) in chunks.into_iter().zip(ranges.iter().cloned()) {
        let (tx, next_rx) = mpsc::channel::<Option<ModuleCr>>();
        let from_before = std::mem::replace(&mut rx, next_rx);
        jobs.push(Job { bodies, range, from_before, to_next: tx });
    }
    drop(rx);
    let nparts = jobs.len();
    let last = nparts - 1;
    // The parts in order, each taken once by the next free thread.
    let queue = std::sync::Mutex::new(jobs.into_iter().enumerate());
    let fopts = opts.func_options();
    // Investigating the compiler itself: time of each part's steps.
    let timing = std::env::var_os("WANCO_PARTS_TIMING").is_some();
    let weights = &weights;
    let progress = opts.progress.clone();
    if let Some(p) = &progress {
        (p.0)(0, num_defined);
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let info_ref = &info;
    let (fopts, done, progress, failed, queue) = (&fopts, &done, &progress, &failed, &queue);
    // Compile part `k` from its job.
    let part = move |k: usize, job: Job<'_>| -> PartResult {
        let Job { bodies, range, from_before, to_next } = job;
        // The checkpoint state of the parts before: none if one failed
        // (its own error is reported).
        let cr = from_before.recv().map_err(|_| CompileError::Llvm(format!("part {k} not compiled: an earlier part failed")))?;
        let c0 = thread_cpu();
        let ctx = Context::create();
        let spec = PartSpec { first: range.start, bodies: &bodies, num_defined, shared: k == 0, split };
        let built = codegen::build_part(&ctx, info_ref, &spec, &opts.entry, fopts, cr, || {})?;
        let mut cr = built.cr;
        if k != last {
            // The receiver is gone only if the next part is not compiled.
            let _ = to_next.send(cr.take());
        }
        drop(to_next);
        let c1 = thread_cpu();
        let (obj, twice) = crate::target::emit_object_retrying(&built.module, opts.target, opts.opt_level, opts.cr, retry)?;
        let retried = if twice { " (generated twice: out of registers with deopt values in registers)" } else { "" };
        if timing {
            let c2 = thread_cpu();
            eprintln!(
                "wanco: part {k}: functions {}..{} ({} bytes of code): thread CPU seconds: IR {:.3}, optimisation + code generation {:.3}{retried}",
                range.start,
                range.end,
                range.clone().map(|i| weights[i] - 64).sum::<usize>(),
                c1 - c0,
                c2 - c1
            );
        }
        let d = done.fetch_add(range.len(), std::sync::atomic::Ordering::SeqCst) + range.len();
        if let Some(p) = progress {
            (p.0)(d, num_defined);
        }
        Ok((obj, cr))
    };
    let part = &part;
    let mut results = std::thread::scope(|s| -> Result<Vec<(usize, PartResult)>> {
        let mut handles = Vec::new();
        for t in 0..plan.jobs {
            let handle = std::thread::Builder::new()
                .name(format!("wanco-part{t}"))
                // LLVM recurses over deeply nested code: the stack of a main
                // thread (8 MiB), not the 2 MiB of a spawned one. Reserved,
                // committed only as used.
                .stack_size(PART_STACK)
                .spawn_scoped(s, move || {
                    let mut out = Vec::new();
                    // After a failure no new part is started.
                    while !failed.load(std::sync::atomic::Ordering::SeqCst) {
                        let Some((k, job)) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else { break };
                        let r = part(k, job);
                        if r.is_err() {
                            failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        out.push((k, r));
                    }
                    out
                })
                .map_err(|e| CompileError::Llvm(format!("cannot start a compile thread: {e}")))?;
            handles.push(handle);
        }
        let mut results = Vec::new();
        for (t, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(r) => results.extend(r),
                // First: the parts after it may only say that an earlier part failed.
                Err(_) => results.insert(0, (0, Err(CompileError::Llvm(format!("compile thread {t} panicked"))))),
            }
        }
        Ok(results)
    })?;
    // Stable: a panic stays before part 0's result.
    results.sort_by_key(|(k, _)| *k);
    let mut objects = Vec::new();
    let mut cr = None;
    let mut first_err = None;
    for (_, r) in results {
        match r {
            Ok((obj, c)) => {
                objects.push(obj);
                if c.is_some() {
                    cr = c;
                }
            }
            Err(e) => {
                // The first part's own error, not a later part's "an
                // earlier part failed".
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if objects.len() != nparts {
        return Err(CompileError::Llvm(format!("{} of {} parts compiled", objects.len(), nparts)));
    }
    Ok(Compiled { objects, cr, info })
}

/// CPU time of the calling thread in seconds (Linux `schedstat`; 0 if
/// unreadable): for `WANCO_PARTS_TIMING`, which measures each part's own
/// work on a machine other programs load.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::{partition, plan_for, Plan, PART_CODE_LIMIT};
    use crate::{compile_object, CompileOptions, Entry};
    use object::{Object, ObjectSymbol};

    /// A library module compiled in parts: its functions are local symbols
    /// again (two modules can be linked together), only the descriptor is
    /// global, and the metadata has the records of the functions of every
    /// part.
    #[test]
    fn parts_merge_into_one_object_with_local_functions() {
        let wat = r#"(module
          (func $a (param i32) (result i32) (loop (br_if 0 (i32.eqz (local.get 0)))) (call $b (local.get 0)))
          (func $b (param i32) (result i32) (call $c (i32.add (local.get 0) (i32.const 1))))
          (func $c (param i32) (result i32) (loop (br_if 0 (i32.eqz (local.get 0)))) (local.get 0))
          (export "a" (func $a)))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        let opts = |jobs| CompileOptions { jobs: Some(jobs), entry: Entry::Library { symbol: "wanco_test_lib".into() }, ..Default::default() };
        let one = compile_object(&wasm, &opts(1)).expect("compile -j1");
        let three = compile_object(&wasm, &opts(3)).expect("compile -j3");
        assert_ne!(one, three, "-j3 gave the -j1 object");
        assert_eq!(three, compile_object(&wasm, &opts(3)).expect("compile -j3 again"), "two -j3 objects differ");
        let file = object::File::parse(three.as_slice()).expect("object");
        let mut funcs = Vec::new();
        for sym in file.symbols() {
            let name = sym.name().expect("name");
            if name.strip_prefix('f').is_some_and(|n| n.parse::<u32>().is_ok()) {
                assert!(sym.is_local() && sym.is_definition(), "{name} is not a local definition");
                funcs.push(name.to_string());
            }
            if sym.is_global() && sym.is_definition() {
                assert_eq!(name, "wanco_test_lib", "global symbol besides the descriptor");
            }
        }
        funcs.sort();
        assert_eq!(funcs, ["f0", "f1", "f2"]);
        // The metadata: the same points for both, records from every part.
        let (m1, m3) = (crmeta(&one), crmeta(&three));
        assert_eq!(m1.points, m3.points);
        assert_eq!(m1.funcs, m3.funcs);
        let with_records = |m: &wanco_state::crmeta::CrMeta| {
            let mut f: Vec<u32> = m.records.iter().map(|r| r.func).collect();
            f.dedup();
            f
        };
        assert_eq!(with_records(&m3), with_records(&m1));
        assert!(with_records(&m3).len() >= 2, "records of {:?} only", with_records(&m3));
    }

    /// More parts than threads: a thread compiles one part after another,
    /// and the object is the one of as many parts on as many threads.
    #[test]
    fn threads_take_the_parts_in_turn() {
        let wat = r#"(module
          (func $a (param i32) (result i32) (loop (br_if 0 (i32.eqz (local.get 0)))) (call $b (local.get 0)))
          (func $b (param i32) (result i32) (call $c (i32.add (local.get 0) (i32.const 1))))
          (func $c (param i32) (result i32) (loop (br_if 0 (i32.eqz (local.get 0)))) (call $d (local.get 0)))
          (func $d (param i32) (result i32) (call $e (i32.add (local.get 0) (i32.const 2))))
          (func $e (param i32) (result i32) (loop (br_if 0 (i32.eqz (local.get 0)))) (local.get 0))
          (export "a" (func $a)))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        for cr in [true, false] {
            let opts = CompileOptions { cr, entry: Entry::Library { symbol: "wanco_test_lib".into() }, ..Default::default() };
            let planned = |parts, jobs| crate::compile_object_planned(&wasm, &opts, true, Some(Plan { parts, jobs })).expect("compile");
            let side_by_side = planned(4, 4);
            assert_eq!(planned(4, 1), side_by_side, "cr {cr}: 4 parts on 1 thread");
            assert_eq!(planned(4, 2), side_by_side, "cr {cr}: 4 parts on 2 threads");
            assert_ne!(planned(2, 2), side_by_side, "cr {cr}: 2 parts gave the 4-part object");
        }
    }

    /// The checkpoint metadata blob of a library object.
    fn crmeta(obj: &[u8]) -> wanco_state::crmeta::CrMeta {
        use object::ObjectSection;
        let file = object::File::parse(obj).expect("object");
        let sym = file.symbols().find(|s| s.name() == Ok("wanco_test_lib_crmeta")).expect("metadata symbol");
        let sec = file.section_by_index(sym.section_index().expect("in a section")).expect("section");
        let data = sec.data().expect("data");
        let at = (sym.address() - sec.address()) as usize;
        let len = u64::from_le_bytes(data[at..at + 8].try_into().unwrap()) as usize;
        wanco_state::crmeta::CrMeta::from_bytes(&data[at + 8..at + 8 + len]).expect("metadata")
    }

    /// Large modules are split into parts of at most the limit, a multiple
    /// of the jobs so that every thread gets as many; small ones keep one
    /// part per job.
    #[test]
    fn large_modules_are_split_into_bounded_parts_for_every_job() {
        const MB: usize = PART_CODE_LIMIT;
        assert_eq!(plan_for(700 << 10, 2500, 2), Plan { parts: 2, jobs: 2 });
        assert_eq!(plan_for(2 * MB, 2500, 2), Plan { parts: 2, jobs: 2 });
        assert_eq!(plan_for(2 * MB + 1, 2500, 2), Plan { parts: 4, jobs: 2 });
        assert_eq!(plan_for(20 * MB, 30_000, 2), Plan { parts: 20, jobs: 2 });
        assert_eq!(plan_for(20 * MB, 30_000, 1), Plan { parts: 20, jobs: 1 });
        assert_eq!(plan_for(20 * MB, 30_000, 8), Plan { parts: 24, jobs: 8 });
        // Never more parts than functions, nor more threads than parts.
        assert_eq!(plan_for(20 * MB, 3, 2), Plan { parts: 3, jobs: 2 });
        assert_eq!(plan_for(100, 3, 8), Plan { parts: 3, jobs: 3 });
        assert_eq!(plan_for(0, 0, 4), Plan { parts: 1, jobs: 1 });
    }

    #[test]
    fn partitions_are_contiguous_non_empty_and_balanced() {
        let w = [10, 10, 10, 10, 10, 10];
        assert_eq!(partition(&w, 2), vec![0..3, 3..6]);
        assert_eq!(partition(&w, 3), vec![0..2, 2..4, 4..6]);
        assert_eq!(partition(&w, 6), vec![0..1, 1..2, 2..3, 3..4, 4..5, 5..6]);
        assert_eq!(partition(&w, 1), vec![0..6]);
        // One big function: alone in its part, the rest share the others.
        assert_eq!(partition(&[1000, 1, 1, 1], 2), vec![0..1, 1..4]);
        assert_eq!(partition(&[1, 1, 1, 1000], 2), vec![0..3, 3..4]);
        assert_eq!(partition(&[1, 1000, 1, 1], 3), vec![0..1, 1..2, 2..4]);
        assert_eq!(partition(&[], 4), vec![0..0]);
    }
}
