//! A fast copy of each small loop nest without calls.
//!
//! With checkpointing, every loop header is a migration point that restore
//! routes may enter (see [`super::cr`]). Entered so, a loop's header takes
//! values LLVM knows nothing about: a restored induction variable may have
//! any value, so LLVM can no longer compute the trip count of
//! `for (i = -1024; i != 0; i += 8)` (vectorization gives up) nor prove
//! that `i += step` does not wrap (the variable stays 32-bit and every
//! address is widened again). And the call-free layout (`cr::loop_poll`)
//! re-enters the loop after each batch of points with its values of that
//! moment, with the same effect.
//!
//! So such a loop (with the loops inside it) is translated twice:
//!
//! * **the fast copy**, entered from the code before the loop and only
//!   from there: no poll, no route, only the count of migration points,
//!   decremented at each loop's entry and at each of its iterations (the
//!   count stays exact); when it reaches zero (the end of a batch: the
//!   runtime looks at the signal flag and the checkpoint target) at the
//!   header of one of its loops, control goes to
//! * **the slow copy**, to the same loop's header poll, with a count of
//!   one, so that poll is the point due; the routes of a restore enter the
//!   slow copy too. Once there the nest runs to its end there. Its loops
//!   are laid out as loops that call (the poll's slow path inside the loop,
//!   not `cr::loop_poll`'s two nested loops): it is seldom run, and so it
//!   is less code to compile. An inner loop of the slow copy is entered in
//!   the middle of its outer one from the fast copy: the slow copy's
//!   control flow is irreducible, which costs only its own optimisation.
//!
//! Both copies' exits go to the same places. Points are numbered in the
//! slow copy only (the fast one has none of its own), so the snapshot
//! format, the interpreter and the count of points are unchanged.
//!
//! Only loops without parameters or results (the loops inside too), of at
//! most [`MAX_OPERATORS`] operators in all (the copy costs compile time).

use super::{FuncCx, Kind};
use crate::error::Result;
use inkwell::basic_block::BasicBlock;
use inkwell::values::{BasicValue, BasicValueEnum};
use wasmparser::{BlockType, OperatorsReader, Operator as O};

/// The largest loop body (in operators) that gets a fast copy.
pub(super) const MAX_OPERATORS: usize = 400;

/// A loop of the fast copy.
pub(super) struct FastLoop<'ctx> {
    /// Its frame's index in the control stack.
    pub(super) level: usize,
    /// Its code offset.
    offset: u64,
    /// Where its count reaches zero.
    due: BasicBlock<'ctx>,
    /// The operand stack at its entry.
    below: Vec<BasicValueEnum<'ctx>>,
}

/// What the fast copy left at its end.
struct FastEnd<'ctx> {
    block: BasicBlock<'ctx>,
    stack: Vec<BasicValueEnum<'ctx>>,
    reachable: bool,
}

/// The largest loop body that gets a fast copy: [`MAX_OPERATORS`], or
/// `WANCO_FAST_LOOPS` (0: none), to measure what they are worth. Read once.
fn max_operators() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| std::env::var("WANCO_FAST_LOOPS").ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_OPERATORS))
}

impl<'a, 'ctx, 'w> FuncCx<'a, 'ctx, 'w> {
    /// Whether the `loop` just read at `off` (`ops` positioned after it)
    /// gets a fast copy; if so, what the slow copy weighs in LLVM's
    /// inliner's units (see `cr::inline_cost_of_instrumentation`).
    pub(super) fn wants_fast_copy(&self, op: &O, off: u64, ops: &OperatorsReader<'_>) -> Result<Option<usize>> {
        let Some(cr) = self.cr.as_ref() else { return Ok(None) };
        if !self.reachable || !matches!(op, O::Loop { blockty: BlockType::Empty }) {
            return Ok(None);
        }
        if cr.call_free_loops.binary_search(&(off as u32)).is_err() {
            return Ok(None);
        }
        let max = max_operators();
        let mut r = ops.clone();
        let (mut depth, mut n, mut weight) = (0usize, 0usize, 0usize);
        loop {
            let op = r.read()?;
            n += 1;
            if n > max {
                return Ok(None);
            }
            match op {
                O::Loop { blockty: BlockType::Empty } => depth += 1,
                O::Loop { .. } => return Ok(None),
                O::Block { .. } | O::If { .. } => depth += 1,
                O::End if depth == 0 => return Ok(Some(weight)),
                O::End => depth -= 1,
                // What `mem2reg` and constant folding leave nothing of.
                O::LocalGet { .. } | O::LocalSet { .. } | O::LocalTee { .. } | O::I32Const { .. } | O::I64Const { .. } | O::Nop | O::Drop => {}
                // An instruction, as LLVM's inliner counts one.
                _ => weight += 5,
            }
        }
    }

    /// Translate the `loop` (`op`, read at `off`; `ops` after it) twice: its
    /// fast copy, then its slow copy, and join their ends.
    pub(super) fn loop_with_fast_copy(&mut self, op: &O<'_>, off: u64, ops: &mut OperatorsReader<'_>, weight: usize) -> Result<()> {
        // The slow copy is instrumentation, in the inliner's weighing: a
        // function like `strlen` is inlined as it is without checkpointing.
        self.crs().cost += weight;
        let start = ops.clone();
        let below = self.stack.clone();
        self.offset = off;
        self.begin_fast_copy()?;
        self.translate_to_end(ops, false)?;
        let fast = FastEnd { block: self.b.get_insert_block().expect("positioned"), stack: self.stack.clone(), reachable: self.reachable };
        let dues = std::mem::take(&mut self.fast_done);

        // The slow copy: only entered where the fast one's count is due
        // (and by restore routes).
        *ops = start;
        self.stack = below.clone();
        self.reachable = true;
        self.dead_depth = 0;
        let pre = self.m.ctx.append_basic_block(self.f, "loop_slow");
        self.b.position_at_end(pre);
        self.slow_copy = true;
        self.slow_headers.clear();
        let stepped = self.step(op, off).and_then(|_| self.translate_to_end(ops, true));
        self.slow_copy = false;
        stepped?;
        let end = self.b.get_insert_block().expect("positioned");
        let cnt = self.crs().cnt;
        for d in dues {
            let (_, entry, phis) =
                self.slow_headers.iter().find(|(o, _, _)| *o == d.offset).expect("each loop of the fast copy has one in the slow copy");
            self.b.position_at_end(d.due);
            // The slow copy's header poll counts this point: it finds the count
            // at one and makes it zero.
            self.b.build_store(cnt, self.i64().const_int(1, false))?;
            self.b.build_unconditional_branch(*entry)?;
            for (phi, v) in phis.iter().zip(&d.below) {
                phi.add_incoming(&[(v as &dyn BasicValue, d.due)]);
            }
        }
        self.b.position_at_end(end);
        self.join_copies(fast)
    }

    /// A loop's entry and frame in the fast copy: the count of its first
    /// arrival at the header, then a loop whose latch counts each further
    /// arrival.
    fn begin_fast_copy(&mut self) -> Result<()> {
        if !self.in_loop() {
            self.counter_into_loop()?;
        }
        let ctx = self.m.ctx;
        let header = ctx.append_basic_block(self.f, "fast_loop");
        let latch = ctx.append_basic_block(self.f, "fast_latch");
        let due = ctx.append_basic_block(self.f, "fast_due");
        let cnt = self.crs().cnt;
        self.count_down(cnt, due, header)?;
        self.b.position_at_end(latch);
        self.count_down(cnt, due, header)?;
        self.b.position_at_end(header);
        let below = self.stack.clone();
        self.push_control(Kind::Loop { header: latch, phis: Vec::new(), base: 0, entry: None }, Vec::new(), Vec::new());
        self.fast.push(FastLoop { level: self.control.len() - 1, offset: self.offset, due, below });
        Ok(())
    }

    /// Translate operators up to the `end` of the frame open now,
    /// inclusive; the slow copy's also go to the validator that tracks
    /// the operand stack's types (the fast copy's are the same operators).
    fn translate_to_end(&mut self, ops: &mut OperatorsReader<'_>, validate: bool) -> Result<()> {
        let mut depth = 0usize;
        loop {
            let (op, off) = ops.read_with_offset()?;
            let last = match op {
                O::Block { .. } | O::If { .. } | O::Loop { .. } => {
                    depth += 1;
                    false
                }
                O::End if depth == 0 => true,
                O::End => {
                    depth -= 1;
                    false
                }
                _ => false,
            };
            if validate {
                self.step(&op, off)?;
            } else if matches!(op, O::Loop { .. }) && self.reachable {
                self.offset = off;
                self.begin_fast_copy()?;
            } else {
                self.translate_op(&op, off)?;
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Continue after the loop from both copies' ends: a phi for each
    /// stack value they disagree on (a restore route re-defines them).
    fn join_copies(&mut self, fast: FastEnd<'ctx>) -> Result<()> {
        if !fast.reachable {
            return Ok(());
        }
        if !self.reachable {
            self.b.position_at_end(fast.block);
            self.stack = fast.stack;
            self.reachable = true;
            return Ok(());
        }
        let slow_block = self.b.get_insert_block().expect("positioned");
        let join = self.m.ctx.append_basic_block(self.f, "loop_join");
        self.b.build_unconditional_branch(join)?;
        self.b.position_at_end(fast.block);
        self.b.build_unconditional_branch(join)?;
        self.b.position_at_end(join);
        let mut vals = Vec::with_capacity(self.stack.len());
        for (s, f) in self.stack.iter().zip(&fast.stack) {
            if s == f {
                vals.push(*s);
                continue;
            }
            let phi = self.b.build_phi(s.get_type(), "lj")?;
            phi.add_incoming(&[(s as &dyn BasicValue, slow_block), (f as &dyn BasicValue, fast.block)]);
            vals.push(phi.as_basic_value());
        }
        self.stack = vals;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::cr::tests::function_ir;

    /// gcc-loops' `example1` as clang leaves it: an induction variable from
    /// -1024 up to 0 by 8. Entered with a restored value (any value: it
    /// might never reach 0), LLVM could not count its iterations and did
    /// not vectorize it; the fast copy is entered only with -1024.
    #[test]
    fn a_loop_entered_by_restore_routes_is_vectorized_in_its_fast_copy() {
        let wat = r#"(module
          (memory 2)
          (func $k (local i32)
            (local.set 0 (i32.const -1024))
            (loop $l
              (i32.store (i32.add (local.get 0) (i32.const 78064))
                (i32.add (i32.load (i32.add (local.get 0) (i32.const 94448))) (i32.load (i32.add (local.get 0) (i32.const 86256)))))
              (i32.store (i32.add (local.get 0) (i32.const 78068))
                (i32.add (i32.load (i32.add (local.get 0) (i32.const 94452))) (i32.load (i32.add (local.get 0) (i32.const 86260)))))
              (br_if $l (local.tee 0 (i32.add (local.get 0) (i32.const 8))))))
          (func (export "_start") (call $k)))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        let opts = crate::CompileOptions { cr: true, ..Default::default() };
        let ir = crate::compile_ir(&wasm, &opts).expect("compile");
        let k = function_ir(&ir, "f0");
        assert!(k.contains(" x i32>"), "not vectorized:\n{k}");
        // Still a migration point at the loop header, in the slow copy.
        assert!(k.contains("@wanco_cr_slow"), "{k}");
    }
}
