//! Liveness of Wasm locals at the migration points of a function body
//! (feature `liveness`).
//!
//! A local is **live** at a point if some path from the point reads it
//! (`local.get`) before writing it (`local.set` / `local.tee`); otherwise it
//! is **dead**: its value there can never be observed. The points are the
//! ones of the state model ([`crate::snapshot::FrameKind`]):
//!
//! * `Entry` — the start of the body, in a function that has one
//!   ([`needs_entry_point`]);
//! * `Loop` — a `loop` header, as the loop (re-)starts;
//! * `Call` — a `call` / `call_indirect`'s **return** point, right after the
//!   callee returns (calls do not touch locals, so this is also what is live
//!   across the call).
//!
//! Every engine writes a dead local as the zero of its type into a snapshot
//! (docs/snapshot-format.md), so that the compiled code may drop dead locals
//! from its deopt state and the snapshots of all engines stay identical; the
//! compiler and the interpreter both use this one analysis.
//!
//! The analysis is a backward dataflow over the basic blocks of the
//! structured control flow (`block`, `loop` with its back edges, `if`/`else`,
//! `br`, `br_if`, `br_table`, `return`, `unreachable`), iterated to a fixpoint.
//! Code that cannot be reached (after `br`, `br_table`, `return`,
//! `unreachable`) does not make anything live. The body is assumed valid (it
//! is validated elsewhere); a malformed one gives an error or a conservative
//! answer, never a panic.

use wasmparser::{BinaryReaderError, FunctionBody, Operator};

/// Version of the migration-point rule: which instructions are migration
/// points, hence what [`crate::snapshot::Snapshot::migration_points`]
/// counts. Rule 1 (before): every function entry and every loop header.
/// Rule 2: every loop header, and the entry of every function whose body
/// contains a `loop` or a call ([`needs_entry_point`]).
pub const POINTS_RULE: u32 = crate::snapshot::POINTS_RULE;

/// Whether `op` makes its function need an entry migration point: a `loop`
/// (which can run unboundedly) or a call of any kind (which can recurse, and
/// makes the function a possible non-innermost frame). A body without any of
/// these runs in bounded time and is never below another frame, so it gets
/// no entry point: a checkpoint request is still served at its caller's
/// next point, within bounded time. The one rule of every engine (the
/// compiler and the interpreter both call it, through [`analyze`] or
/// [`has_entry_point`]); it looks at every instruction of the body,
/// reachable or not.
pub fn needs_entry_point(op: &Operator<'_>) -> bool {
    matches!(
        op,
        Operator::Loop { .. }
            | Operator::Call { .. }
            | Operator::CallIndirect { .. }
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::CallRef { .. }
            | Operator::ReturnCallRef { .. }
    )
}

/// Whether the function `body` has an entry migration point (see
/// [`needs_entry_point`]).
pub fn has_entry_point(body: &FunctionBody<'_>) -> Result<bool, BinaryReaderError> {
    let mut ops = body.get_operators_reader()?;
    while !ops.eof() {
        if needs_entry_point(&ops.read()?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A set of local indices (a bit set over the function's locals).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LiveSet {
    words: Box<[u64]>,
}

impl LiveSet {
    fn empty(n: usize) -> LiveSet {
        LiveSet {
            words: vec![0; n.div_ceil(64)].into_boxed_slice(),
        }
    }

    /// Every local of a function with `n` locals.
    pub fn all(n: usize) -> LiveSet {
        let mut s = LiveSet::empty(n);
        for i in 0..n {
            s.insert(i);
        }
        s
    }

    /// The set of `indices` (those below `n`) of a function with `n` locals.
    pub fn from_indices(n: usize, indices: impl IntoIterator<Item = usize>) -> LiveSet {
        let mut s = LiveSet::empty(n);
        for i in indices.into_iter().filter(|i| *i < n) {
            s.insert(i);
        }
        s
    }

    /// Whether local `i` is in the set (false beyond the function's locals).
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn insert(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// The indices in the set, increasing.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(k, w)| {
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| k * 64 + b)
        })
    }

    /// Number of locals in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }
}

/// The live locals at every migration point of one function body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncLiveness {
    /// Number of locals, parameters first.
    pub num_locals: usize,
    /// Whether the function has an entry migration point
    /// ([`needs_entry_point`]).
    pub has_entry_point: bool,
    /// Live at the function entry (meaningful as a point only with
    /// `has_entry_point`).
    pub entry: LiveSet,
    /// Per `loop`, in code order: the code offset of the `loop` opcode and
    /// what is live at its header.
    pub loops: Vec<(u32, LiveSet)>,
    /// Per `call` / `call_indirect`, in code order: the code offset of the
    /// opcode and what is live when the call returns.
    pub calls: Vec<(u32, LiveSet)>,
}

impl FuncLiveness {
    /// What is live at the `loop` whose opcode is at `offset`.
    pub fn at_loop(&self, offset: u32) -> Option<&LiveSet> {
        find(&self.loops, offset)
    }

    /// What is live when the call whose opcode is at `offset` returns.
    pub fn at_call(&self, offset: u32) -> Option<&LiveSet> {
        find(&self.calls, offset)
    }

    /// What is live at the point of `kind` at `code_offset` (the body's
    /// start for `Entry`); `None` if there is no such point.
    pub fn at(&self, kind: crate::snapshot::FrameKind, code_offset: u32) -> Option<&LiveSet> {
        use crate::snapshot::FrameKind;
        match kind {
            FrameKind::Entry => self.has_entry_point.then_some(&self.entry),
            FrameKind::Loop => self.at_loop(code_offset),
            FrameKind::Call => self.at_call(code_offset),
        }
    }
}

fn find(v: &[(u32, LiveSet)], offset: u32) -> Option<&LiveSet> {
    v.binary_search_by_key(&offset, |(o, _)| *o)
        .ok()
        .map(|i| &v[i].1)
}

/// A basic block: what it reads before writing (`gen`), what it writes
/// (`kill`), where it goes.
struct Block {
    gen: Vec<u64>,
    kill: Vec<u64>,
    succs: Vec<u32>,
}

enum CtlKind {
    Func,
    Block,
    Loop { header: u32 },
    If { else_bb: u32, has_else: bool },
}

struct Ctl {
    kind: CtlKind,
    end: u32,
}

struct Cfg {
    words: usize,
    blocks: Vec<Block>,
    cur: u32,
}

impl Cfg {
    fn new_block(&mut self) -> u32 {
        self.blocks.push(Block {
            gen: vec![0; self.words],
            kill: vec![0; self.words],
            succs: Vec::new(),
        });
        (self.blocks.len() - 1) as u32
    }

    fn edge(&mut self, from: u32, to: u32) {
        let s = &mut self.blocks[from as usize].succs;
        if !s.contains(&to) {
            s.push(to);
        }
    }

    fn use_local(&mut self, i: u32) {
        let (w, b) = (i as usize / 64, 1u64 << (i % 64));
        let bl = &mut self.blocks[self.cur as usize];
        if w < self.words && bl.kill[w] & b == 0 {
            bl.gen[w] |= b;
        }
    }

    fn def_local(&mut self, i: u32) {
        let (w, b) = (i as usize / 64, 1u64 << (i % 64));
        if w < self.words {
            self.blocks[self.cur as usize].kill[w] |= b;
        }
    }

    /// Continue in a fresh block that nothing reaches (after an
    /// unconditional transfer).
    fn dead(&mut self) {
        self.cur = self.new_block();
    }

    /// Continue in a fresh block reached from the current one.
    fn split(&mut self) -> u32 {
        let next = self.new_block();
        self.edge(self.cur, next);
        self.cur = next;
        next
    }
}

fn label(ctl: &[Ctl], depth: u32) -> u32 {
    // A depth beyond the function (invalid code) leaves the function.
    match ctl.len().checked_sub(1 + depth as usize) {
        Some(i) => match ctl[i].kind {
            CtlKind::Loop { header } => header,
            _ => ctl[i].end,
        },
        None => ctl[0].end,
    }
}

/// Analyse `body` of a function with `num_params` parameters.
pub fn analyze(
    body: &FunctionBody<'_>,
    num_params: u32,
) -> Result<FuncLiveness, BinaryReaderError> {
    let mut num_locals = num_params as usize;
    let mut lr = body.get_locals_reader()?;
    for _ in 0..lr.get_count() {
        let (n, _) = lr.read()?;
        num_locals += n as usize;
    }
    let words = num_locals.div_ceil(64);
    let mut cfg = Cfg {
        words,
        blocks: Vec::new(),
        cur: 0,
    };
    let entry = cfg.new_block();
    let func_end = cfg.new_block();
    let mut ctl = vec![Ctl {
        kind: CtlKind::Func,
        end: func_end,
    }];
    // (offset, block whose live-in is the point's live set)
    let mut loops: Vec<(u32, u32)> = Vec::new();
    let mut calls: Vec<(u32, u32)> = Vec::new();
    let mut has_entry_point = false;
    cfg.cur = entry;
    let mut ops = body.get_operators_reader()?;
    while !ops.eof() {
        let (op, off) = ops.read_with_offset()?;
        has_entry_point |= needs_entry_point(&op);
        match op {
            Operator::LocalGet { local_index } => cfg.use_local(local_index),
            Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                cfg.def_local(local_index)
            }
            Operator::Block { .. } => {
                let end = cfg.new_block();
                ctl.push(Ctl {
                    kind: CtlKind::Block,
                    end,
                });
            }
            Operator::Loop { .. } => {
                let header = cfg.split();
                loops.push((off as u32, header));
                let end = cfg.new_block();
                ctl.push(Ctl {
                    kind: CtlKind::Loop { header },
                    end,
                });
            }
            Operator::If { .. } => {
                let then_bb = cfg.new_block();
                let else_bb = cfg.new_block();
                let end = cfg.new_block();
                cfg.edge(cfg.cur, then_bb);
                cfg.edge(cfg.cur, else_bb);
                cfg.cur = then_bb;
                ctl.push(Ctl {
                    kind: CtlKind::If {
                        else_bb,
                        has_else: false,
                    },
                    end,
                });
            }
            Operator::Else => {
                if let Some(c) = ctl.last_mut() {
                    if let CtlKind::If { else_bb, has_else } = &mut c.kind {
                        *has_else = true;
                        let (else_bb, end) = (*else_bb, c.end);
                        cfg.edge(cfg.cur, end);
                        cfg.cur = else_bb;
                    }
                }
            }
            Operator::End => {
                let Some(c) = ctl.pop() else { break };
                cfg.edge(cfg.cur, c.end);
                if let CtlKind::If {
                    else_bb,
                    has_else: false,
                } = c.kind
                {
                    cfg.edge(else_bb, c.end);
                }
                cfg.cur = c.end;
                if matches!(c.kind, CtlKind::Func) {
                    break;
                }
            }
            Operator::Br { relative_depth } => {
                let t = label(&ctl, relative_depth);
                cfg.edge(cfg.cur, t);
                cfg.dead();
            }
            Operator::BrIf { relative_depth } => {
                let t = label(&ctl, relative_depth);
                cfg.edge(cfg.cur, t);
                cfg.split();
            }
            Operator::BrTable { targets } => {
                for d in targets.targets() {
                    let t = label(&ctl, d?);
                    cfg.edge(cfg.cur, t);
                }
                let t = label(&ctl, targets.default());
                cfg.edge(cfg.cur, t);
                cfg.dead();
            }
            Operator::Return => {
                cfg.edge(cfg.cur, func_end);
                cfg.dead();
            }
            Operator::Unreachable => cfg.dead(),
            Operator::Call { .. } | Operator::CallIndirect { .. } => {
                let after = cfg.split();
                calls.push((off as u32, after));
            }
            // Tail calls (not in Wasm 2.0) leave the function.
            Operator::ReturnCall { .. } | Operator::ReturnCallIndirect { .. } => {
                cfg.edge(cfg.cur, func_end);
                cfg.dead();
            }
            _ => {}
        }
    }
    let live_in = solve(&cfg.blocks, words);
    let set = |b: u32| LiveSet {
        words: live_in[b as usize].clone().into_boxed_slice(),
    };
    Ok(FuncLiveness {
        num_locals,
        has_entry_point,
        entry: set(entry),
        loops: sorted(loops.into_iter().map(|(o, b)| (o, set(b))).collect()),
        calls: sorted(calls.into_iter().map(|(o, b)| (o, set(b))).collect()),
    })
}

fn sorted(mut v: Vec<(u32, LiveSet)>) -> Vec<(u32, LiveSet)> {
    // Code order is offset order; sort anyway so that lookups never miss.
    v.sort_by_key(|(o, _)| *o);
    v
}

/// Backward fixpoint: `in[b] = gen[b] ∪ (∪ in[succ] − kill[b])`.
fn solve(blocks: &[Block], words: usize) -> Vec<Vec<u64>> {
    let mut live_in: Vec<Vec<u64>> = blocks.iter().map(|b| b.gen.clone()).collect();
    let mut out = vec![0u64; words];
    let mut changed = true;
    while changed {
        changed = false;
        // Blocks are numbered roughly in code order: visit them backwards.
        for b in (0..blocks.len()).rev() {
            let bl = &blocks[b];
            if bl.succs.is_empty() {
                continue;
            }
            out.iter_mut().for_each(|w| *w = 0);
            for s in &bl.succs {
                for (o, i) in out.iter_mut().zip(&live_in[*s as usize]) {
                    *o |= i;
                }
            }
            let cur = &mut live_in[b];
            for k in 0..words {
                let v = bl.gen[k] | (out[k] & !bl.kill[k]);
                if v != cur[k] {
                    cur[k] = v;
                    changed = true;
                }
            }
        }
    }
    live_in
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Parser, Payload};

    /// Liveness of every defined function of a module in the text format
    /// (`fn` index = defined-function index), with the code offsets of the
    /// loops and calls.
    fn analyse(wat: &str) -> Vec<FuncLiveness> {
        let wasm = wat::parse_str(wat).expect("wat");
        let mut types: Vec<u32> = Vec::new();
        let mut func_types: Vec<u32> = Vec::new();
        let mut out = Vec::new();
        let mut i = 0;
        for p in Parser::new(0).parse_all(&wasm) {
            match p.expect("parse") {
                Payload::TypeSection(r) => {
                    for t in r.into_iter_err_on_gc_types() {
                        types.push(t.expect("type").params().len() as u32);
                    }
                }
                Payload::FunctionSection(r) => {
                    for t in r {
                        func_types.push(t.expect("func"));
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    let np = types[func_types[i] as usize];
                    out.push(analyze(&body, np).expect("analyze"));
                    i += 1;
                }
                _ => {}
            }
        }
        out
    }

    fn v(s: &LiveSet) -> Vec<usize> {
        s.iter().collect()
    }

    fn loops(f: &FuncLiveness) -> Vec<Vec<usize>> {
        f.loops.iter().map(|(_, s)| v(s)).collect()
    }

    fn calls(f: &FuncLiveness) -> Vec<Vec<usize>> {
        f.calls.iter().map(|(_, s)| v(s)).collect()
    }

    #[test]
    fn entry_point_only_with_a_loop_or_a_call() {
        let fs = analyse(
            r#"(module (type $t (func)) (table 1 funcref)
              (func $leaf (param i32) (result i32)
                (block (br_if 0 (local.get 0)) (unreachable)) (local.get 0))
              (func $calls (call $leaf0))
              (func $calls_indirect (call_indirect (type $t) (i32.const 0)))
              (func $loops (loop))
              (func $leaf0)
              ;; Unreachable code counts too: the rule is syntactic.
              (func $dead_call (return) (call $leaf0))
              (func $tail (return_call $leaf0)))"#,
        );
        let has: Vec<bool> = fs.iter().map(|f| f.has_entry_point).collect();
        assert_eq!(has, [false, true, true, true, false, true, true]);
        use crate::snapshot::FrameKind;
        assert!(fs[0].at(FrameKind::Entry, 0).is_none());
        assert!(fs[1].at(FrameKind::Entry, 0).is_some());
    }

    #[test]
    fn straight_line() {
        let f = &analyse(
            r#"(module (func $g)
              (func (param i32 i32) (local i64 f64)
                (local.set 2 (i64.const 1))
                (drop (local.get 0))
                (call $g)
                (drop (local.get 2))
                (local.set 3 (f64.const 0))
                (call $g)
                (drop (local.get 3))
                (call $g)))"#,
        )[1];
        assert_eq!(f.num_locals, 4);
        // Param 1 is never read; local 2 is written before read; local 3 zero-initialised but written first.
        assert_eq!(v(&f.entry), vec![0]);
        assert_eq!(calls(f), vec![vec![2], vec![3], vec![]]);
    }

    #[test]
    fn uninitialised_local_read_is_live_at_entry() {
        let f = &analyse("(module (func (local i32) (drop (local.get 0))))")[0];
        assert_eq!(v(&f.entry), vec![0]);
    }

    #[test]
    fn loop_reads_before_write_in_next_iteration() {
        // $acc is read at the top of the loop body (from the previous
        // iteration) before being written: live at the header. $t is written
        // before read in every iteration: dead at the header. $n is read by
        // the exit test.
        let f = &analyse(
            r#"(module (func $g)
              (func (param $n i32) (local $acc i32) (local $t i32) (local $after i32)
                (loop $l
                  (local.set $t (i32.add (local.get $acc) (i32.const 1)))
                  (local.set $acc (local.get $t))
                  (call $g)
                  (br_if $l (i32.lt_u (local.get $acc) (local.get $n))))
                (local.set $after (i32.const 3))
                (drop (local.get $after))))"#,
        )[1];
        assert_eq!(v(&f.entry), vec![0, 1]);
        assert_eq!(loops(f), vec![vec![0, 1]]);
        // After the call: $acc and $n are read (the back edge reads $acc again).
        assert_eq!(calls(f), vec![vec![0, 1]]);
    }

    #[test]
    fn loop_local_live_only_through_back_edge() {
        // $x is read after the call only on the next iteration (before its
        // write): live at the header and after the call.
        let f = &analyse(
            r#"(module (func $g)
              (func (local $x i32) (local $i i32)
                (loop $l
                  (drop (local.get $x))
                  (local.set $x (local.get $i))
                  (call $g)
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (local.get $i)))))"#,
        )[1];
        assert_eq!(loops(f), vec![vec![0, 1]]);
        assert_eq!(calls(f), vec![vec![0, 1]]);
    }

    #[test]
    fn loop_without_back_edge_is_not_a_cycle() {
        // A loop whose body never branches to it: the write at the bottom
        // does not reach the read at the top.
        let f = &analyse(
            r#"(module (func $g)
              (func (local $x i32)
                (loop $l
                  (local.set $x (i32.const 1))
                  (call $g)
                  (drop (local.get $x))
                  (local.set $x (i32.const 2)))))"#,
        )[1];
        assert_eq!(loops(f), vec![Vec::<usize>::new()]);
        assert_eq!(calls(f), vec![vec![0]]);
    }

    #[test]
    fn nested_loops() {
        let f = &analyse(
            r#"(module
              (func (local $i i32) (local $j i32) (local $s i32) (local $tmp i32)
                (loop $outer
                  (local.set $j (i32.const 0))
                  (loop $inner
                    (local.set $tmp (i32.mul (local.get $i) (local.get $j)))
                    (local.set $s (i32.add (local.get $s) (local.get $tmp)))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br_if $inner (i32.lt_u (local.get $j) (i32.const 10))))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $outer (i32.lt_u (local.get $i) (i32.const 10))))
                (drop (local.get $s))))"#,
        )[0];
        // Outer header: $i, $s ($j is reset first, $tmp written before read).
        // Inner header: $i, $j, $s.
        assert_eq!(loops(f), vec![vec![0, 2], vec![0, 1, 2]]);
        assert_eq!(v(&f.entry), vec![0, 2]);
    }

    #[test]
    fn br_out_of_nested_blocks() {
        // The `br 1` skips the read of $a in the outer block: after the call
        // $a is live only because of the fall-through path.
        let f = &analyse(
            r#"(module (func $g) (func $c (result i32) (i32.const 1))
              (func (local $a i32) (local $b i32) (local $c i32)
                (block $out
                  (block $in
                    (call $g)
                    (br_if $out (call $c))
                    (drop (local.get $b))
                    (br $in)
                    (drop (local.get $c)))
                  (drop (local.get $a)))
                (call $g)))"#,
        )[2];
        // call $g: then br_if $out reads nothing; fall-through reads $b, then
        // `br $in` continues after $in (reads $a). $c is in dead code.
        assert_eq!(calls(f), vec![vec![0, 1], vec![0, 1], vec![]]);
        assert_eq!(v(&f.entry), vec![0, 1]);
    }

    #[test]
    fn br_to_outer_loop_and_block_targets() {
        // `br 2` from inside a block nested in a loop targets the loop header.
        let f = &analyse(
            r#"(module (func $g)
              (func (local $x i32) (local $y i32)
                (loop $l
                  (drop (local.get $x))
                  (block $b
                    (call $g)
                    (local.set $x (i32.const 1))
                    (br_if $l (i32.const 1))
                    (local.set $x (i32.const 2))
                    (br $b))
                  (drop (local.get $y)))))"#,
        )[1];
        assert_eq!(loops(f), vec![vec![0, 1]]);
        // After the call: $x is set on every path before the header reads it; $y read after $b.
        assert_eq!(calls(f), vec![vec![1]]);
    }

    #[test]
    fn br_table_targets() {
        let f = &analyse(
            r#"(module (func $g)
              (func (param $k i32) (local $a i32) (local $b i32) (local $c i32)
                (block $B
                  (block $A
                    (call $g)
                    (br_table $A $B $A (local.get $k))
                    (drop (local.get $c)))
                  (drop (local.get $a))
                  (return))
                (drop (local.get $b))))"#,
        )[1];
        // After the call: $k (the index), $a (via $A), $b (via $B). $c is dead code.
        assert_eq!(calls(f), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn br_table_to_loop_header() {
        let f = &analyse(
            r#"(module (func $g)
              (func (param $k i32) (local $a i32) (local $b i32)
                (block $done
                  (loop $l
                    (drop (local.get $a))
                    (call $g)
                    (local.set $a (i32.const 0))
                    (br_table $l $done (local.get $k))))
                (drop (local.get $b))))"#,
        )[1];
        assert_eq!(loops(f), vec![vec![0, 1, 2]]);
        // After the call $a is written before any read; $b read after $done.
        assert_eq!(calls(f), vec![vec![0, 2]]);
    }

    #[test]
    fn if_without_else() {
        // The false edge skips the write: $x is live before the `if`.
        let f = &analyse(
            r#"(module (func $g)
              (func (param $c i32) (local $x i32)
                (call $g)
                (if (local.get $c) (then (local.set $x (i32.const 1))))
                (drop (local.get $x))))"#,
        )[1];
        assert_eq!(calls(f), vec![vec![0, 1]]);
    }

    #[test]
    fn written_in_both_branches_is_dead_before_the_if() {
        let f = &analyse(
            r#"(module (func $g)
              (func (param $c i32) (local $x i32) (local $y i32)
                (call $g)
                (if (local.get $c)
                  (then (local.set $x (i32.const 1)) (local.set $y (i32.const 1)))
                  (else (local.set $x (i32.const 2))))
                (drop (local.get $x))
                (drop (local.get $y))))"#,
        )[1];
        // $x written in both branches: dead. $y written only in `then`: live.
        assert_eq!(calls(f), vec![vec![0, 2]]);
    }

    #[test]
    fn read_in_one_branch_only() {
        let f = &analyse(
            r#"(module (func $g)
              (func (param $c i32) (local $x i32) (local $y i32)
                (call $g)
                (if (local.get $c)
                  (then (drop (local.get $x)))
                  (else (local.set $y (i32.const 0)) (drop (local.get $y))))))"#,
        )[1];
        assert_eq!(calls(f), vec![vec![0, 1]]);
    }

    #[test]
    fn unreachable_code_after_return_and_unreachable() {
        let f = &analyse(
            r#"(module (func $g)
              (func (param $c i32) (local $x i32) (local $y i32)
                (call $g)
                (if (local.get $c) (then (return) (drop (local.get $x))))
                (call $g)
                (unreachable)
                (drop (local.get $y))
                (loop $dead (drop (local.get $y)) (br $dead))))"#,
        )[1];
        assert_eq!(calls(f), vec![vec![0], vec![]]);
        assert_eq!(v(&f.entry), vec![0]);
        // The loop in dead code is still listed (an engine never reaches it).
        assert_eq!(f.loops.len(), 1);
    }

    #[test]
    fn tee_is_a_write_and_call_indirect_is_a_call() {
        let f = &analyse(
            r#"(module (type $t (func (param i32) (result i32))) (table 1 funcref)
              (func (param $p i32) (local $x i32) (local $i i32)
                (drop (call_indirect (type $t) (local.tee $x (local.get $p)) (local.get $i)))
                (drop (local.get $x))))"#,
        )[0];
        // The tee writes $x before the call: live after it. $i and $p are
        // read before the call only.
        assert_eq!(calls(f), vec![vec![1]]);
        assert_eq!(v(&f.entry), vec![0, 2]);
    }

    #[test]
    fn br_to_function_label_is_return() {
        let f = &analyse(
            r#"(module (func $g)
              (func (param $c i32) (local $x i32)
                (call $g)
                (br_if 0 (local.get $c))
                (drop (local.get $x))))"#,
        )[1];
        assert_eq!(calls(f), vec![vec![0, 1]]);
    }

    #[test]
    fn many_locals_span_words() {
        let f = &analyse(
            r#"(module (func $g)
              (func (local i32) (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
                i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
                i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
                i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 f32 f64)
                (call $g)
                (drop (local.get 65))
                (drop (local.get 64))
                (drop (local.get 0))))"#,
        )[1];
        assert_eq!(f.num_locals, 67);
        assert_eq!(calls(f), vec![vec![0, 64, 65]]);
        assert!(!f.calls[0].1.contains(66));
        assert!(!f.calls[0].1.contains(1000));
        assert_eq!(f.calls[0].1.len(), 3);
        assert_eq!(LiveSet::all(67).len(), 67);
        let s = LiveSet::from_indices(67, [3, 64, 66, 67, 500]);
        assert_eq!(v(&s), vec![3, 64, 66]);
        assert!(LiveSet::from_indices(67, []).is_empty());
    }

    #[test]
    fn lookups_by_offset_and_kind() {
        use crate::snapshot::FrameKind;
        let f = &analyse(
            r#"(module (func $g)
              (func (local $x i32)
                (loop $l (call $g) (br_if $l (local.get $x)))))"#,
        )[1];
        let (lo, ls) = &f.loops[0];
        let (co, cs) = &f.calls[0];
        assert!(lo < co);
        assert_eq!(f.at(FrameKind::Loop, *lo), Some(ls));
        assert_eq!(f.at(FrameKind::Call, *co), Some(cs));
        assert_eq!(f.at(FrameKind::Entry, 0), Some(&f.entry));
        assert_eq!(f.at_call(*lo), None);
        assert_eq!(v(cs), vec![0]);
    }

    #[test]
    fn multi_value_blocks_and_loop_params() {
        // Block and loop parameters are operand-stack values, not locals.
        let f = &analyse(
            r#"(module (func $g)
              (func (param $n i32) (result i32) (local $k i32)
                (i32.const 0)
                (loop $l (param i32) (result i32)
                  (call $g)
                  (i32.add (i32.const 1))
                  (local.tee $k)
                  (br_if $l (i32.lt_u (local.get $k) (local.get $n))))))"#,
        )[1];
        assert_eq!(loops(f), vec![vec![0]]);
        assert_eq!(calls(f), vec![vec![0]]);
    }
}
