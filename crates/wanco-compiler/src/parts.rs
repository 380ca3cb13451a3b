//! Compiling a module in parts, one thread each.
//!
//! The defined functions are split into contiguous runs of about equal body
//! size (neighbours in the function index space are usually neighbours in
//! the source program and in its call graph, and contiguous runs keep every
//! part's points and functions in the order the metadata needs). Each part
//! is built into its own LLVM context and module, optimised and
//! code-generated into its own object on its own thread; the first part also
//! holds the module-level definitions. The IR of the parts is generated one
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

/// The number of parts for `decoded` under `opts`.
pub(crate) fn part_count(decoded: &Decoded<'_>, opts: &CompileOptions) -> usize {
    let n = decoded.bodies.len();
    let jobs = match opts.jobs {
        Some(j) => j,
        None => {
            let code: usize = decoded.bodies.iter().map(|b| body_len(b)).sum();
            if code < SMALL_MODULE {
                1
            } else {
                std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1)
            }
        }
    };
    jobs.clamp(1, n.max(1))
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

/// Compile `decoded` in `parts` parts on as many threads.
///
/// `retry`: whether a part that runs out of registers is generated again
/// with its deopt values in stack slots (always, but in a test of the first
/// attempt).
pub(crate) fn compile(decoded: Decoded<'_>, parts: usize, opts: &CompileOptions, retry: bool) -> Result<Compiled> {
    let Decoded { info, mut bodies } = decoded;
    let num_defined = bodies.len();
    // Before the bodies are split into the parts: which functions have no points.
    let cr0 = if opts.cr { Some(ModuleCr::new(&bodies)?) } else { None };
    let weights: Vec<usize> = bodies.iter().map(weight).collect();
    let ranges = partition(&weights, parts);
    let split = ranges.len() > 1;
    // Owned bodies per part (a body's validator is taken by its part).
    let mut chunks: Vec<Vec<Body<'_>>> = Vec::new();
    for r in ranges.iter().rev() {
        chunks.push(bodies.split_off(r.start));
    }
    chunks.reverse();
    let fopts = opts.func_options();
    // Investigating the compiler itself: time of each part's steps.
    let timing = std::env::var_os("WANCO_PARTS_TIMING").is_some();
    let weights = &weights;
    let progress = opts.progress.clone();
    if let Some(p) = &progress {
        (p.0)(0, num_defined);
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let info_ref = &info;
    let (fopts, done, progress) = (&fopts, &done, &progress);
    let (objects, cr) = std::thread::scope(|s| -> Result<(Vec<Vec<u8>>, Option<ModuleCr>)> {
        let (first_tx, mut rx) = mpsc::channel::<Option<ModuleCr>>();
        first_tx.send(cr0).expect("receiver alive");
        let last = chunks.len() - 1;
        let mut handles = Vec::new();
        for (k, (bodies, range)) in chunks.into_iter().zip(ranges.iter().cloned()).enumerate() {
            let (tx, next_rx) = mpsc::channel::<Option<ModuleCr>>();
            let my_rx = std::mem::replace(&mut rx, next_rx);
            let handle = std::thread::Builder::new()
                .name(format!("wanco-part{k}"))
                // LLVM recurses over deeply nested code: the stack of a main
                // thread (8 MiB), not the 2 MiB of a spawned one. Reserved,
                // committed only as used.
                .stack_size(PART_STACK)
                .spawn_scoped(s, move || -> Result<(Vec<u8>, Option<ModuleCr>)> {
                    // The checkpoint state of the parts before: none if one failed
                    // (its own error is reported).
                    let cr = my_rx.recv().map_err(|_| CompileError::Llvm(format!("part {k} not compiled: an earlier part failed")))?;
                    let c0 = thread_cpu();
                    let ctx = Context::create();
                    let spec = PartSpec { first: range.start, bodies: &bodies, num_defined, shared: k == 0, split };
                    let built = codegen::build_part(&ctx, info_ref, &spec, &opts.entry, fopts, cr, || {})?;
                    let mut cr = built.cr;
                    if k != last {
                        // The receiver is gone only if the next part's thread died.
                        let _ = tx.send(cr.take());
                    }
                    drop(tx);
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
                })
                .map_err(|e| CompileError::Llvm(format!("cannot start a compile thread: {e}")))?;
            handles.push(handle);
        }
        drop(rx);
        let mut objects = Vec::new();
        let mut cr = None;
        let mut first_err = None;
        for (k, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(Ok((obj, c))) => {
                    objects.push(obj);
                    if c.is_some() {
                        cr = c;
                    }
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(CompileError::Llvm(format!("the thread compiling part {k} panicked")));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok((objects, cr)),
        }
    })?;
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
    use super::partition;
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
