//! Checkpoint/restore instrumentation of one function.
//!
//! **Polls.** Every migration point (loop header, and function entry where
//! the body has a `loop` or a call: migration-point rule 2,
//! [`wanco_state::liveness::needs_entry_point`]) counts
//! down the runtime's global `wanco_cr_counter`; when it reaches zero,
//! execution goes to the cold slow path, a call of
//! `wanco_cr_slow(vmctx, point)` carrying a `"deopt"` bundle with the
//! point's Wasm state. The runtime sets the counter: a batch of points, at
//! whose end it looks at the signal flag and the checkpoint target, or 1
//! while a restore rebuilds the frames. Where the count is kept:
//!
//! * outside loops: in the global itself, so the entry poll is one
//!   decrement in memory and a branch, and nothing is synchronised around
//!   calls and returns outside loops;
//! * inside loops: in a local (a register after `mem2reg`), loaded where
//!   the outermost loop is entered, stored before and reloaded after every
//!   call in a loop, and stored back wherever control leaves the outermost
//!   loop (`br`, `br_if`, `br_table` and `return` to a label outside: on
//!   that edge only; falling out of it; an `unreachable`). A memory
//!   decrement at every iteration would chain the iterations through a
//!   store and a load (a tight loop with a rare call ran 2x slower so);
//! * but in a loop that calls at every iteration, in the global again (see
//!   [`scan_loops`]): there the local count would be stored
//!   before the call and reloaded after it at every iteration anyway.
//!
//! A loop without calls (nor calls in the loops it contains) is laid out as
//! two nested loops (see `loop_poll`) whose inner one has no call and a
//! computable trip count, so LLVM still vectorizes and hoists it. A small
//! loop nest without calls is translated twice, a fast copy first that no
//! restore route enters (see `super::fast`); this layout is then not used
//! for it.
//!
//! **Return sites.** Every call of a Wasm function that has points (not a
//! direct call of one without a `loop` and a call: see
//! `ModuleCr::pointless`) carries a `"deopt"`
//! bundle with the caller's state (point id, locals, operand stack below the
//! arguments). After `rewrite-statepoints-for-gc` each bundle becomes a
//! stackmap record at the call's return address: a checkpoint walks the
//! native frames and reads every Wasm value where LLVM left it — no value is
//! kept in memory for the instrumentation's sake.
//!
//! **Restore** re-enters the call chain: `wanco_cr_slow` returns a route
//! index and the dispatch block after it jumps to the next point on the path
//! to the frame's point (a nested loop header or a call site), loading the
//! operand stack from the runtime's value buffer `wanco_cr_values`; at a
//! call site the call is re-issued with its arguments (a constant one as
//! the constant, the others from the buffer, where the runtime puts the
//! callee frame's parameters) and the callee's entry poll restores the rest
//! of the callee's frame (not the parameters its body never writes: they
//! hold the arguments, and stay constants where those are). Loops are only
//! ever entered at their entry block, so the control flow stays reducible
//! and loop optimisations are unaffected.
//!
//! **Liveness** ([`wanco_state::liveness`]). A local that is dead at a point
//! (not read before being written on any path from it) is a constant zero in
//! the point's deopt bundle, so nothing keeps its value alive for the
//! instrumentation's sake, and the snapshot holds zero for it as the
//! interpreter's does. On restore, the entry poll stores the locals live at
//! the entry (from the value buffer into their `alloca`s), and a route
//! stores those live at its target but not at its parent poll (the others
//! already hold restored values there, which flow to the target unchanged):
//! `mem2reg` adds restore phis only for live locals, and only where the
//! restored value differs from the one already flowing in.
//!
//! **Huge functions.** Where those restore phis would be too many (a local
//! live at thousands of return sites makes a chain of thousands of phis),
//! the long-lived locals stay in memory: see [`memory_locals`].

use super::{FuncCx, Kind};
use crate::codegen::Tbaa;
use crate::error::{CompileError, Result};
use crate::frontend::{val_type, Body};
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::basic_block::BasicBlock;
use inkwell::module::Linkage;
use inkwell::values::{
    AnyValueEnum, BasicMetadataValueEnum, BasicValue, BasicValueEnum, FunctionValue, GlobalValue, IntValue, OperandBundle,
    PhiValue, PointerValue,
};
use inkwell::IntPredicate;
use wanco_state::abi::symbols;
use wanco_state::crmeta::{Callee, CrFunc, CrPoint, NO_ENTRY_POINT, RESTORE_FIXED_SLOTS, ROUTE_FIRST_TARGET};
use wanco_state::liveness::{FuncLiveness, LiveSet};
use wanco_state::snapshot::FrameKind;
use wanco_state::ValType;
use wasmparser::{FuncValidator, ValidatorResources};

/// A poll's slow path whose dispatch switch is built when the function ends
/// (its routes are only known then).
struct Poll<'ctx> {
    r: IntValue<'ctx>,
    dispatch: BasicBlock<'ctx>,
    /// Where the poll's fast path continues.
    cont: BasicBlock<'ctx>,
    /// Where its slow path rejoins it when no route is taken (`cont`, or
    /// for the entry poll a block of its own: see `slow_join`).
    resume: BasicBlock<'ctx>,
    routes: Vec<(u32, BasicBlock<'ctx>)>,
}

/// Deopt-bundle values (summed over a function's bundles) above which the
/// function is not vectorized. Every local live across a call is an operand
/// of that call's bundle, and LLVM's SLP vectorizer takes time that grows
/// faster than the uses of a function's values: a function with 100 i64
/// locals live across 100 calls (10,100 values) took 10 s to compile, 8 s
/// of it in the SLP vectorizer (2 s without; 0.2 s with `--no-cr`). The
/// largest function of the test programs has 3,867 (wasi-libc's
/// `printf_core` 3,549), and compiles as fast with the vectorizer. LLVM
/// keeps both vectorizers out of a `noimplicitfloat` function, which is how
/// this is done (explicit float code is unchanged; `wanco compile`'s
/// pipeline options cannot turn SLP off: `default<O2>` turns it back on).
const SLP_DEOPT_LIMIT: usize = 5000;

/// What the instrumentation adds to a call in LLVM's inliner's units (an
/// instruction is 5), which inlining the callee takes away (see
/// `inline_cost_of_instrumentation`).
const CALL_OVERHEAD: usize = 20;

/// Per-function checkpoint/restore state.
pub(super) struct FuncCr<'ctx> {
    /// Validator stepped in lockstep with code generation: the types of the
    /// operand stack at each point.
    pub types: FuncValidator<ValidatorResources>,
    pub(super) cnt: PointerValue<'ctx>,
    polls: Vec<Poll<'ctx>>,
    /// Enclosing polls, innermost last: (index in `polls`, point id, the
    /// locals live there).
    regions: Vec<(usize, u32, LiveSet)>,
    entry_point: u32,
    max_height: usize,
    func_index: u32,
    /// The live locals at every point of the function.
    live: FuncLiveness,
    /// Values (live locals and operand-stack values) of all the function's
    /// deopt bundles so far.
    deopt_values: usize,
    /// Code offsets of the loops that contain no call, ascending.
    pub(super) call_free_loops: Vec<u32>,
    /// Code offsets of the loops that keep the count in memory (see
    /// [`scan_loops`]), ascending.
    pub(super) memory_counted_loops: Vec<u32>,
    /// What the instrumentation adds to the function's cost in LLVM's
    /// inliner (an estimate in its units, 5 an instruction, of the code
    /// after `sroa`: see `inline_cost_of_instrumentation`).
    pub(super) cost: usize,
    /// The slow-path calls of the function's polls, the entry poll's first.
    slow_calls: Vec<inkwell::values::CallSiteValue<'ctx>>,
    /// Whether some locals are kept in memory (see [`memory_locals`]).
    frame: bool,
    /// Those locals (empty without a frame). A restore stores them all
    /// once, where it enters the function (see `poll`): the routes leave
    /// them out.
    kept: LiveSet,
    /// The parameters the body writes (`local.set` / `local.tee`), as
    /// locals. The others hold the call's arguments wherever they are
    /// live, and a restore passes those as the arguments of the re-issued
    /// call, so the entry poll does not load them (see `poll`).
    written_params: Vec<usize>,
    /// The parameters that arrive on the stack and are never written: kept
    /// in memory, named by their stack objects in every bundle
    /// ([`StackParam::Kept`]).
    stack_params: LiveSet,
    /// The number of parameters (the first locals).
    params: usize,
}

/// The loops of `body` by code offset, both lists ascending:
///
/// * those that contain no call;
/// * those whose polls count in `wanco_cr_counter` itself, as the entry
///   polls do, not in the local counter: a loop that is in no other loop,
///   has none inside, and calls at its top level (not inside a nested
///   `block` or `if`), so that nearly every iteration calls and would store
///   the local count before the call and load it after. Its poll is one
///   decrement in memory instead (Sightglass `shootout-fib2`: the loop LLVM
///   made of `fib(n - 1) + fib(n - 2)` calls `fib` at every iteration:
///   0.86x the run time). Not for a call of a function that never looks at
///   the count (`counter_free`: no store or load around it, and inlined it
///   leaves the loop without a call: `blind-sig`'s hot loop).
fn scan_loops(body: &wasmparser::FunctionBody<'_>, counter_free: impl Fn(u32) -> bool) -> Result<(Vec<u32>, Vec<u32>)> {
    use wasmparser::Operator as O;
    /// An open `loop`.
    struct Open {
        offset: u32,
        /// A call anywhere inside.
        calls: bool,
        /// In no loop, and none inside so far.
        alone: bool,
        /// A call (of a function that looks at the count) at its top level.
        calls_at_top: bool,
    }
    // Open blocks: `Some` for a loop.
    let mut open: Vec<Option<Open>> = Vec::new();
    let (mut call_free, mut in_memory) = (Vec::new(), Vec::new());
    let mut ops = body.get_operators_reader()?;
    while !ops.eof() {
        let (op, off) = ops.read_with_offset()?;
        let is_call = matches!(
            op,
            O::Call { .. } | O::CallIndirect { .. } | O::ReturnCall { .. } | O::ReturnCallIndirect { .. } | O::CallRef { .. } | O::ReturnCallRef { .. }
        );
        if is_call {
            for l in open.iter_mut().flatten() {
                l.calls = true;
            }
        }
        match op {
            O::Loop { .. } => {
                for l in open.iter_mut().flatten() {
                    l.alone = false;
                }
                let alone = open.iter().all(Option::is_none);
                open.push(Some(Open { offset: off as u32, calls: false, alone, calls_at_top: false }));
            }
            O::Block { .. } | O::If { .. } | O::Try { .. } | O::TryTable { .. } => open.push(None),
            O::End => {
                if let Some(Some(l)) = open.pop() {
                    if !l.calls {
                        call_free.push(l.offset);
                    }
                    if l.alone && l.calls_at_top {
                        in_memory.push(l.offset);
                    }
                }
            }
            O::Call { function_index } if counter_free(function_index) => {}
            O::Call { .. } | O::CallIndirect { .. } | O::CallRef { .. } => {
                if let Some(Some(l)) = open.last_mut() {
                    l.calls_at_top = true;
                }
            }
            _ => {}
        }
    }
    call_free.sort_unstable();
    in_memory.sort_unstable();
    Ok((call_free, in_memory))
}

/// Whether `v` is an LLVM constant.
fn is_constant(v: &BasicValueEnum<'_>) -> bool {
    match v {
        BasicValueEnum::IntValue(x) => x.is_const(),
        BasicValueEnum::FloatValue(x) => x.is_const(),
        BasicValueEnum::PointerValue(x) => x.is_const(),
        BasicValueEnum::VectorValue(x) => x.is_const(),
        _ => false,
    }
}

/// The parameters (of the first `params` locals) that `body` writes.
pub(super) fn written_params(body: &wasmparser::FunctionBody<'_>, params: usize) -> Result<Vec<usize>> {
    use wasmparser::Operator as O;
    let mut out = Vec::new();
    let mut ops = body.get_operators_reader()?;
    while !ops.eof() {
        if let O::LocalSet { local_index } | O::LocalTee { local_index } = ops.read()? {
            let i = local_index as usize;
            if i < params && !out.contains(&i) {
                out.push(i);
            }
        }
    }
    Ok(out)
}

/// Restore values (summed over the locals: the return sites where each is
/// live) above which a function keeps its long-lived locals in memory (see
/// [`memory_locals`]).
const MEMORY_FRAME_LIMIT: usize = 4000;

/// In such a function, a local live at this many return sites or more is
/// kept in memory.
const MEMORY_FRAME_MIN_SITES: usize = 16;

/// Which locals of a function (with liveness `live`) are kept in memory: in
/// an `alloca` frame that escapes, so that `mem2reg` leaves them there.
///
/// A local promoted to a register that is live at a return site gets a phi
/// there (the value it held on the way in, or the one a restore route
/// loaded), so a function with many calls makes a chain of phis per local,
/// one link per call: a function of 87 locals around 11,190 calls
/// (Sightglass `hashset`) did not compile in 15 minutes, the register
/// coalescer and allocator being quadratic along such chains. A local in
/// memory needs no phi: the route stores its value where the normal path
/// did. What it costs: a store where it is set before a call and a load
/// after (LLVM keeps it in a register between calls, and in loops without
/// calls). Chosen where the restore values of a function (one per local
/// per return site where it is live) exceed `MEMORY_FRAME_LIMIT`: the
/// locals live at `MEMORY_FRAME_MIN_SITES` return sites or more.
pub(super) fn memory_locals(live: &FuncLiveness) -> Vec<bool> {
    let mut sites = vec![0usize; live.num_locals];
    for (_, set) in &live.calls {
        for i in set.iter() {
            if let Some(n) = sites.get_mut(i) {
                *n += 1;
            }
        }
    }
    if sites.iter().sum::<usize>() <= MEMORY_FRAME_LIMIT {
        return vec![false; live.num_locals];
    }
    sites.iter().map(|n| *n >= MEMORY_FRAME_MIN_SITES).collect()
}

/// Which parameters (of types `params`) arrive on the stack — after the
/// ABI's argument registers, which the `vmctx` pointer opens: x86_64 has 6
/// for integers and 8 for floats, aarch64 8 and 8.
///
/// Such a parameter is a load from the caller's argument area, which LLVM
/// 19's register allocator rematerialises where it needs the value instead
/// of spilling it, so with deopt values in registers
/// (`-use-registers-for-deopt-values`) a statepoint that carries many of
/// them runs out of registers: regex's `f101` (12 parameters, 7 on the
/// stack) in its entry poll, `tests/programs/compile/regalloc_regex_f101.wat`;
/// the same bundle with 7 computed values compiles. Each failure cost a
/// whole part's code generation, done again with deopt values in stack
/// slots (sqlite3: ~19 s of CPU, regex, rust-compression). So the compiler
/// keeps such a parameter that the body never writes (`written`) in memory
/// (see [`memory_locals`]), every deopt bundle naming its stack object, and
/// passes one it writes through an empty `asm` where the function is
/// entered (integers: a value of its own, which the allocator spills like
/// any other). What it costs: a store (or a copy) per such parameter where
/// the function is entered; its reads were loads from the argument area
/// already.
pub(super) fn stack_params(params: &[ValType], x86: bool, written: &[usize]) -> Vec<StackParam> {
    let (mut ints, mut floats): (u32, u32) = (if x86 { 5 } else { 7 }, 8);
    params
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let regs = match t {
                ValType::F32 | ValType::F64 | ValType::V128 => &mut floats,
                _ => &mut ints,
            };
            let in_register = *regs > 0;
            *regs = regs.saturating_sub(1);
            match (in_register, t, written.contains(&i)) {
                (true, ..) | (_, ValType::V128, _) => StackParam::No,
                (false, _, false) => StackParam::Kept,
                (false, ValType::I32 | ValType::I64, true) => StackParam::Copied,
                (false, _, true) => StackParam::No,
            }
        })
        .collect()
}

/// What the compiler does with a parameter (see [`stack_params`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StackParam {
    /// Nothing: it comes in a register (or is a float the body writes).
    No,
    /// Kept in memory, named by its stack object in every deopt bundle.
    Kept,
    /// Copied through an empty `asm` where the function is entered.
    Copied,
}

impl<'ctx> FuncCr<'ctx> {
    pub fn new(
        cx: &mut FuncCx<'_, 'ctx, '_>,
        body: &Body<'_>,
        live: FuncLiveness,
        in_memory: &[bool],
        on_stack: &[StackParam],
        written_params: Vec<usize>,
        params: usize,
    ) -> Result<FuncCr<'ctx>> {
        let fv = body.validator.borrow_mut().take().ok_or_else(|| CompileError::Llvm("function validator missing".into()))?;
        let mut types = fv.into_validator(Default::default());
        let mut reader = body.body.get_binary_reader();
        types.read_locals(&mut reader)?;
        // Loaded from `wanco_cr_counter` where the outermost loop is
        // entered (see the module docs).
        let cnt = cx.b.build_alloca(cx.i64(), "cnt")?;
        let live_locals = live.num_locals;
        let imported = cx.m.decoded.info.num_imported_funcs;
        let free = cx.m.cr.as_ref().map(|c| c.counter_free.as_slice()).unwrap_or(&[]);
        let (call_free_loops, memory_counted_loops) =
            scan_loops(&body.body, |f| f >= imported && free.get((f - imported) as usize).copied().unwrap_or(false))?;
        Ok(FuncCr {
            types,
            cnt,
            polls: Vec::new(),
            regions: Vec::new(),
            entry_point: 0,
            max_height: 0,
            func_index: body.func_index,
            live,
            deopt_values: 0,
            call_free_loops,
            memory_counted_loops,
            cost: 0,
            slow_calls: Vec::new(),
            kept: LiveSet::from_indices(live_locals, in_memory.iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| i)),
            frame: in_memory.iter().any(|m| *m),
            written_params,
            stack_params: LiveSet::from_indices(live_locals, on_stack.iter().enumerate().filter(|(_, m)| **m == StackParam::Kept).map(|(i, _)| i)),
            params,
        })
    }
}

impl<'a, 'ctx, 'w> FuncCx<'a, 'ctx, 'w> {
    /// With `in_memory[i]` for some local `i` (of type `types[i]`): the
    /// locals kept in memory, an `alloca` each (a stack object of its own,
    /// so that a return site's deopt bundle can name it: see
    /// `deopt_bundle`), and per local its slot. Returns whether there are any.
    pub(super) fn memory_frame(&mut self, types: &[ValType], in_memory: &[bool]) -> Result<Option<Vec<Option<PointerValue<'ctx>>>>> {
        if !in_memory.iter().any(|m| *m) {
            return Ok(None);
        }
        let mut slots = vec![None; types.len()];
        for (i, t) in types.iter().enumerate() {
            if in_memory.get(i).copied().unwrap_or(false) {
                slots[i] = Some(self.b.build_alloca(self.m.llvm_type(*t), "fl")?);
            }
        }
        Ok(Some(slots))
    }

    /// Where a restore route joins the normal path at a return site: an
    /// empty `asm` that may read and write memory (the locals kept in
    /// memory have escaped, through the deopt bundles that name them), so
    /// that those locals are loaded after this point, never merged by phis
    /// of the values stored on either path.
    fn frame_barrier(&mut self) -> Result<()> {
        if !self.cr.as_ref().is_some_and(|c| c.frame) {
            return Ok(());
        }
        let ty = self.m.ctx.void_type().fn_type(&[], false);
        let asm = self.m.ctx.create_inline_asm(ty, String::new(), "~{memory}".into(), true, false, None, false);
        let call = self.b.build_indirect_call(ty, asm, &[], "")?;
        call.add_attribute(AttributeLoc::Function, self.m.ctx.create_string_attribute("gc-leaf-function", ""));
        Ok(())
    }

    pub(super) fn crs(&mut self) -> &mut FuncCr<'ctx> {
        self.cr.as_mut().expect("checkpointing enabled")
    }

    /// Types of the whole operand stack (bottom first) before the current
    /// operator.
    pub(super) fn stack_types(&mut self) -> Result<Vec<ValType>> {
        let offset = self.offset;
        let fv = &self.crs().types;
        let h = fv.operand_stack_height() as usize;
        let mut out = Vec::with_capacity(h);
        for depth in (0..h).rev() {
            match fv.get_operand_type(depth) {
                // The validator types `ref.func` as a concrete (sub)type of
                // funcref; the state model only has funcref and externref.
                Some(Some(wasmparser::ValType::Ref(r))) => {
                    out.push(if r.is_extern_ref() { ValType::ExternRef } else { ValType::FuncRef })
                }
                Some(Some(t)) => out.push(val_type(t, offset)?),
                _ => return Err(CompileError::Llvm(format!("operand type unknown at a migration point (offset {offset})"))),
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_point(&mut self, kind: FrameKind, stack: Vec<ValType>, args: u32, indirect: bool, callee: Option<Callee>, parent: Option<u32>, route: u32) -> u32 {
        let func = self.crs().func_index;
        let cr = self.m.cr.as_ref().expect("checkpointing enabled");
        let mut points = cr.points.borrow_mut();
        points.push(CrPoint { func, code_offset: self.offset as u32, kind, indirect, stack, args, callee, parent, route });
        (points.len() - 1) as u32
    }

    /// The locals live at the point of `kind` at the current code offset
    /// (the `loop` / `call` opcode; any offset for the entry).
    fn live_here(&self, kind: FrameKind) -> Result<LiveSet> {
        let c = self.cr.as_ref().expect("checkpointing enabled");
        c.live
            .at(kind, self.offset as u32)
            .cloned()
            .ok_or_else(|| CompileError::Llvm(format!("no liveness for the {kind:?} point at offset {}", self.offset)))
    }

    /// The deopt bundle of `point`: its id, every local (a constant zero for
    /// one dead at the point), then `stack` (for a return site: the operand
    /// stack below the arguments).
    pub(super) fn deopt_bundle(&mut self, point: u32, stack: &[BasicValueEnum<'ctx>]) -> Result<OperandBundle<'ctx>> {
        let kind = self.m.cr.as_ref().expect("checkpointing enabled").points.borrow()[point as usize].kind;
        let live = self.live_here(kind)?;
        let mut vals: Vec<AnyValueEnum<'ctx>> = vec![self.i32().const_int(point as u64, false).into()];
        let mut constants = 1;
        for (i, (p, t)) in self.locals.clone().into_iter().enumerate() {
            if !live.contains(i) {
                vals.push(self.dead_value(t));
                if t == ValType::V128 {
                    vals.push(self.dead_value(t));
                }
                constants += if t == ValType::V128 { 2 } else { 1 };
                continue;
            }
            let named = (kind == FrameKind::Call && self.crs().kept.contains(i)) || self.crs().stack_params.contains(i);
            if named && t != ValType::V128 {
                // A local kept in memory, at a return site: its stack
                // object itself, which the stackmap records as a `Direct`
                // location (frame register + offset) and a checkpoint reads
                // the value from. The call reads it (a deopt bundle reads
                // through its pointers), so it holds the local's value
                // there. Loading it instead made a value per kept local per
                // return site for the register allocator: `hashset`'s
                // largest function, 17 locals at 15,000 calls, spent most
                // of its compile time in the allocator. A loop header's
                // slow path still loads it: a call in a loop that reads
                // the local's memory would keep LLVM from holding the
                // local in a register through the loop.
                vals.push(p.into());
                continue;
            }
            let v = self.b.build_load(self.m.llvm_type(t), p, "dl")?;
            self.push_deopt_value(&mut vals, v)?;
        }
        for v in stack {
            self.push_deopt_value(&mut vals, *v)?;
        }
        self.crs().deopt_values += vals.len() - constants;
        Ok(OperandBundle::create("deopt", &vals))
    }

    /// Add `v` to a deopt bundle: a v128 as two `i64` values, its low then
    /// its high 64 bits (vector registers are not callee-saved in full on
    /// either ISA, and a stackmap location of 16 bytes in a register would
    /// need the unwinder to recover vector registers: two integers live in
    /// general registers or 8-byte spill slots, like every other value).
    fn push_deopt_value(&mut self, vals: &mut Vec<AnyValueEnum<'ctx>>, v: BasicValueEnum<'ctx>) -> Result<()> {
        if v.is_vector_value() {
            let w = self.b.build_bit_cast(v, self.i64().vec_type(2), "v2")?.into_vector_value();
            for k in 0..2 {
                let x = self.b.build_extract_element(w, self.i32().const_int(k, false), "vh")?;
                vals.push(x.into());
            }
        } else {
            vals.push(v.into());
        }
        Ok(())
    }

    /// What a dead local of type `t` is in a deopt bundle (a v128: two of
    /// the `i64` zero): an integer
    /// constant zero of the type's width (floats too: an FP constant would
    /// be materialised in a register, an integer one is a stackmap
    /// `Constant`, which decodes as the all-zero bits), null for references.
    fn dead_value(&self, t: ValType) -> AnyValueEnum<'ctx> {
        match t {
            ValType::I32 | ValType::F32 => self.i32().const_zero().into(),
            ValType::I64 | ValType::F64 | ValType::V128 => self.i64().const_zero().into(),
            ValType::FuncRef | ValType::ExternRef => self.m.ptr().const_null().into(),
        }
    }

    /// Store the locals in `live` from the restore value buffer `buf` into
    /// their `alloca`s.
    fn restore_locals(&mut self, buf: PointerValue<'ctx>, live: &LiveSet) -> Result<()> {
        // A load each (the store becomes a phi, which costs nothing).
        self.crs().cost += 5 * live.iter().count();
        for i in live.iter() {
            let (p, t) = self.locals[i];
            let slot = self.value_slot(buf, RESTORE_FIXED_SLOTS + i)?;
            let v = self.b.build_load(self.m.llvm_type(t), slot, "rl")?;
            self.b.build_store(p, v)?;
        }
        Ok(())
    }

    /// Pointer to slot `i` of the restore value buffer.
    fn value_slot(&mut self, buf: PointerValue<'ctx>, i: usize) -> Result<PointerValue<'ctx>> {
        // SAFETY (LLVM IR semantics): the runtime sizes the buffer for every
        // slot a route of this function loads (`CrFunc::max_height`).
        // Entries are 16 bytes (a v128 fills one; other values sit at its start).
        Ok(unsafe { self.b.build_in_bounds_gep(self.m.ctx.i128_type(), buf, &[self.i64().const_int(i as u64, false)], "vs")? })
    }

    /// `p`, through an empty `asm`: a value of its own for LLVM. The routes
    /// of a poll all load the same slots of the value buffer after the same
    /// dispatch, so GVN numbered their loads and addresses alike and, none
    /// dominating another, walked lists as long as the routes for each
    /// (`findLeader`: quadratic; `hashset`'s 11,190 routes kept it busy for
    /// minutes). From a route's own base they differ.
    fn opaque_pointer(&mut self, p: PointerValue<'ctx>) -> Result<PointerValue<'ctx>> {
        Ok(self.opaque(p.into(), "rb")?.into_pointer_value())
    }

    /// `v` (a pointer or an integer) through an empty `asm`: a value of its
    /// own for LLVM, which it can neither see through nor rematerialise.
    pub(super) fn opaque(&mut self, v: BasicValueEnum<'ctx>, name: &str) -> Result<BasicValueEnum<'ctx>> {
        use inkwell::types::BasicType;
        let t = v.get_type();
        let ty = t.fn_type(&[t.into()], false);
        let asm = self.m.ctx.create_inline_asm(ty, String::new(), "=r,0".into(), true, false, None, false);
        let call = self.b.build_indirect_call(ty, asm, &[v.into()], name)?;
        call.add_attribute(AttributeLoc::Function, self.m.ctx.create_string_attribute("gc-leaf-function", ""));
        Ok(call.try_as_basic_value().basic().expect("a value"))
    }

    fn value_buffer(&mut self) -> Result<PointerValue<'ctx>> {
        let g = self.m.cr_global(symbols::CR_VALUES, self.m.ptr().into());
        Ok(self.b.build_load(self.m.ptr(), g.as_pointer_value(), "vb")?.into_pointer_value())
    }

    /// Mark conditional branch `br` as all but never taking its first
    /// successor (a due poll: once a batch of points), so that block
    /// placement lets the loop or the function fall through the poll.
    fn unlikely_first(&self, br: inkwell::values::InstructionValue<'ctx>) {
        let ctx = self.m.ctx;
        let weights = ctx.metadata_node(&[
            ctx.metadata_string("branch_weights").into(),
            ctx.i32_type().const_int(1, false).into(),
            ctx.i32_type().const_int(1 << 20, false).into(),
        ]);
        br.set_metadata(weights, ctx.get_kind_id("prof")).expect("branch metadata");
    }

    /// Decrement the count at `at` (the local counter or the global one) and
    /// branch to `due` when it reaches zero, else to `cont` (marked
    /// unlikely). Returns the decremented count.
    pub(super) fn count_down(&mut self, at: PointerValue<'ctx>, due: BasicBlock<'ctx>, cont: BasicBlock<'ctx>) -> Result<IntValue<'ctx>> {
        let i64t = self.i64();
        let c = self.b.build_load(i64t, at, "c")?;
        self.m.tbaa(c.as_instruction_value().expect("load"), Tbaa::Counter);
        let c1 = self.b.build_int_sub(c.into_int_value(), i64t.const_int(1, false), "c1")?;
        let st = self.b.build_store(at, c1)?;
        self.m.tbaa(st, Tbaa::Counter);
        let cond = self.b.build_int_compare(IntPredicate::EQ, c1, i64t.const_zero(), "due")?;
        let br = self.b.build_conditional_branch(cond, due, cont)?;
        self.unlikely_first(br);
        if let Some(c) = self.cr.as_mut() {
            // The local count's load and store become a phi.
            c.cost += if at == c.cnt { 15 } else { 25 };
        }
        Ok(c1)
    }

    /// Emit the poll of migration point `point` at the current position.
    fn poll(&mut self, point: u32, entry: bool, stack: &[BasicValueEnum<'ctx>]) -> Result<()> {
        let ctx = self.m.ctx;
        let cnt = self.crs().cnt;
        let i64t = self.i64();
        let counter = self.m.cr_global(symbols::CR_COUNTER, i64t.into());
        // Outside loops the count is kept in `wanco_cr_counter` itself (the
        // entry poll is one decrement of it in memory); inside, in `cnt`.
        let local = !entry && self.in_loop();
        let at = if local { cnt } else { counter.as_pointer_value() };
        // The runtime looks at the signal flag and the checkpoint target
        // when a batch of points ends (the counter reaches zero): the poll
        // is a decrement and a branch.
        let slow = ctx.append_basic_block(self.f, "cr_slow");
        let cont = ctx.append_basic_block(self.f, "cr_cont");
        let c1 = self.count_down(at, slow, cont)?;
        self.b.position_at_end(slow);
        if local {
            let st = self.b.build_store(counter.as_pointer_value(), c1)?;
            self.m.tbaa(st, Tbaa::Counter);
        }
        let bundle = self.deopt_bundle(point, stack)?;
        let slow_fn = self.m.cr_slow_fn();
        let args: [BasicMetadataValueEnum; 2] = [self.vmctx.into(), self.i32().const_int(point as u64, false).into()];
        let call = self.b.build_direct_call_with_operand_bundles(slow_fn, &args, &[bundle], "route")?;
        call.set_tail_call_kind(inkwell::values::LLVMTailCallKind::LLVMTailCallKindNoTail);
        let r = call.try_as_basic_value().basic().expect("i32").into_int_value();
        // The call costs nothing (see `inline_cost_of_instrumentation`);
        // the counter stored (in a loop) and reloaded, the entry poll's
        // compare and branch to its restore (a loop poll's dispatch is
        // counted in `finish_cr`).
        self.crs().cost += if entry { 15 } else { 10 };
        self.crs().slow_calls.push(call);
        // The runtime sets the counter (a new batch, or 1 while a restore
        // rebuilds the frames); a restore route may lead into a loop.
        let c2 = self.b.build_load(i64t, counter.as_pointer_value(), "c2")?;
        self.m.tbaa(c2.as_instruction_value().expect("load"), Tbaa::Counter);
        self.b.build_store(cnt, c2)?;
        let (dispatch, resume) = if entry {
            // Any restore passes here first: the locals live at the entry
            // (the routes add those live at their targets).
            let restore = ctx.append_basic_block(self.f, "cr_restore_locals");
            let resume = self.slow_join(cont)?;
            self.b.position_at_end(slow);
            let is_restore = self.b.build_int_compare(IntPredicate::NE, r, self.i32().const_zero(), "rst")?;
            self.b.build_conditional_branch(is_restore, restore, resume)?;
            self.b.position_at_end(restore);
            // With the locals live at the entry, every local kept in memory,
            // live there or not: a restore passes here first, so no route
            // needs to store one (a function with thousands of return
            // sites had a copy of them in every route: Sightglass
            // `hashset`'s largest function, 800,000 instructions of its
            // 2.3 million). One dead where the frame stopped gets the zero
            // the snapshot holds for it, and is written before it is read.
            //
            //
            // Not the parameters the body never writes: they hold the
            // call's arguments, which the caller's restore route passes
            // again (see `call_site`), so they reach the body on one path,
            // and a constant argument stays a constant in the inliner's
            // weighing and in the inlined body. With a restore phi of every
            // parameter at the entry, an inlined callee was no longer
            // specialised for its constant arguments, and its weighing saw
            // none of the code they leave dead.
            let live = self.live_here(FrameKind::Entry)?;
            let n = self.locals.len();
            let params = self.crs().written_params.clone();
            let first_local = self.crs().params;
            let kept = &self.crs().kept;
            let live = LiveSet::from_indices(n, live.iter().filter(|i| *i >= first_local || params.contains(i)).chain(kept.iter()));
            if live.iter().next().is_some() {
                self.crs().cost += 5;
                let buf = self.value_buffer()?;
                self.restore_locals(buf, &live)?;
            }
            (restore, resume)
        } else {
            (slow, cont)
        };
        self.crs().polls.push(Poll { r, dispatch, cont, resume, routes: Vec::new() });
        self.b.position_at_end(cont);
        Ok(())
    }

    /// A block of the entry poll's slow path (new, before `cont`) that both
    /// ways out of it (no restore; a restore without a route) go through,
    /// where the count that `wanco_cr_slow` left in `wanco_cr_counter` is
    /// stored back to it through an opaque copy (an empty `asm` without
    /// memory effects). So after the poll the counter's value is a value
    /// LLVM knows on every path: the decremented count on the fast path,
    /// the copy on the slow one. Where the function is inlined in a loop,
    /// the caller's reload of the counter after the call then becomes a phi
    /// of those, in a register; before, the slow path's call left the
    /// counter unknown there and the caller reloaded it from memory after
    /// every inlined leaf function (Sightglass `shootout-ctype`: an inlined
    /// `isalpha`-like helper's poll cost a store-to-load round trip). Cold
    /// code only: the fast path is unchanged.
    fn slow_join(&mut self, cont: BasicBlock<'ctx>) -> Result<BasicBlock<'ctx>> {
        let ctx = self.m.ctx;
        let i64t = self.i64();
        let join = ctx.append_basic_block(self.f, "cr_resume");
        self.b.position_at_end(join);
        let counter = self.m.cr_global(symbols::CR_COUNTER, i64t.into());
        let c = self.b.build_load(i64t, counter.as_pointer_value(), "cr")?;
        self.m.tbaa(c.as_instruction_value().expect("load"), Tbaa::Counter);
        let ty = i64t.fn_type(&[i64t.into()], false);
        let asm = ctx.create_inline_asm(ty, String::new(), "=r,0".into(), true, false, None, false);
        let call = self.b.build_indirect_call(ty, asm, &[c.into()], "crc")?;
        call.add_attribute(AttributeLoc::Function, ctx.create_string_attribute("gc-leaf-function", ""));
        call.add_attribute(AttributeLoc::Function, ctx.create_enum_attribute(Attribute::get_named_enum_kind_id("memory"), 0));
        call.add_attribute(AttributeLoc::Function, ctx.create_enum_attribute(Attribute::get_named_enum_kind_id("nounwind"), 0));
        let copy = call.try_as_basic_value().basic().expect("i64");
        let st = self.b.build_store(counter.as_pointer_value(), copy)?;
        self.m.tbaa(st, Tbaa::Counter);
        self.b.build_unconditional_branch(cont)?;
        // A load, the `asm` (a call: see `inline_cost_of_instrumentation`),
        // a store.
        self.crs().cost += 20;
        Ok(join)
    }

    /// A restore route from the innermost enclosing poll to `target`:
    /// the locals in `live` (those live at the target) that are not live at
    /// that poll (which has restored those) get the frame's locals from the
    /// value buffer; `phis[..restored]` get the frame's operand stack, the
    /// other phis zero; `fixed[k]` gets fixed slot `k`. Returns (parent
    /// point, route index).
    ///
    /// `phis[args..restored]` are a call's arguments (`args ==
    /// restored` elsewhere): one that is a constant on the way in (its
    /// phi's one incoming value so far) gets that constant, so that its
    /// phi folds and the callee is weighed and inlined with it. The
    /// re-issued call is the same call, and a callee restores its frame's
    /// values of the parameters it writes itself (see `poll`); the others
    /// still hold the call's arguments.
    #[allow(clippy::too_many_arguments)]
    fn add_route(
        &mut self,
        target: BasicBlock<'ctx>,
        live: &LiveSet,
        phis: &[PhiValue<'ctx>],
        args: usize,
        restored: usize,
        fixed: &[PhiValue<'ctx>],
    ) -> Result<(u32, u32)> {
        let cur = self.b.get_insert_block().expect("positioned");
        let nlocals = self.locals.len();
        let (poll, parent, parent_live) = self.crs().regions.last().cloned().expect("entry region");
        let idx = ROUTE_FIRST_TARGET + self.crs().polls[poll].routes.len() as u32;
        let rb = self.m.ctx.append_basic_block(self.f, "cr_route");
        self.b.position_at_end(rb);
        let buf = self.value_buffer()?;
        let buf = self.opaque_pointer(buf)?;
        // The buffer's address (a load and the `asm`), a load per value
        // (not the constant arguments: see below; phis cost nothing).
        self.crs().cost += 15 + 5 * fixed.len();
        let kept = self.crs().kept.clone();
        let missing = LiveSet::from_indices(self.locals.len(), live.iter().filter(|i| !parent_live.contains(*i) && !kept.contains(*i)));
        self.restore_locals(buf, &missing)?;
        for (j, phi) in phis.iter().enumerate() {
            let ty = phi.as_basic_value().get_type();
            let constant = if j >= args { phi.get_incoming(0).map(|(v, _)| v).filter(is_constant) } else { None };
            let v = if let Some(c) = constant {
                c
            } else if j < restored {
                self.crs().cost += 5;
                let slot = self.value_slot(buf, RESTORE_FIXED_SLOTS + nlocals + j)?;
                self.b.build_load(ty, slot, "rv")?
            } else {
                ty.const_zero()
            };
            phi.add_incoming(&[(&v as &dyn BasicValue, rb)]);
        }
        for (k, phi) in fixed.iter().enumerate() {
            let slot = self.value_slot(buf, k)?;
            let v = self.b.build_load(phi.as_basic_value().get_type(), slot, "rf")?;
            phi.add_incoming(&[(&v as &dyn BasicValue, rb)]);
        }
        self.b.build_unconditional_branch(target)?;
        self.b.position_at_end(cur);
        let c = self.crs();
        c.polls[poll].routes.push((idx, rb));
        c.max_height = c.max_height.max(restored);
        Ok((parent, idx))
    }

    /// The function-entry migration point (at the start of the body), in a
    /// function that has one (its body has a `loop` or a call:
    /// [`wanco_state::liveness::needs_entry_point`]). One without has no
    /// points at all and no instrumentation: it runs in bounded time and is
    /// never below another frame, so a checkpoint waits for its caller's
    /// next point, and no restore route goes through it.
    pub(super) fn entry_poll(&mut self) -> Result<()> {
        if !self.crs().live.has_entry_point {
            self.crs().entry_point = NO_ENTRY_POINT;
            return Ok(());
        }
        let point = self.new_point(FrameKind::Entry, vec![], 0, false, None, None, 0);
        self.crs().entry_point = point;
        self.poll(point, true, &[])?;
        let idx = self.crs().polls.len() - 1;
        let live = self.live_here(FrameKind::Entry)?;
        self.crs().regions.push((idx, point, live));
        Ok(())
    }

    /// Keep the instrumentation out of LLVM's inlining decisions, so that a
    /// function is inlined where it is without the instrumentation (a
    /// 128-bit multiply of `blind-sig` called in a hot loop stayed a call
    /// with it: its polls, slow path and restore code took its cost over
    /// the threshold; 2x the run time). The inliner reads two attributes of
    /// the calls inside the function it weighs: each slow-path call costs
    /// nothing (`call-inline-cost`), and the entry poll's raises the
    /// threshold by what the rest of the instrumentation costs
    /// (`call-threshold-bonus`: `FuncCr::cost`, an estimate in the
    /// inliner's units of the code left after `sroa`; 5 × the instructions
    /// emitted overcounted the polls of the local count and the restore
    /// loads, whose stores become phis, and undercounted the restore
    /// switches: `rust-json` had 108 call sites inlined that `--no-cr`
    /// keeps, 12 with this estimate). The
    /// attributes move with the calls when the function is inlined, so its
    /// caller's own weighing also leaves them out. All this code is cold.
    fn inline_cost_of_instrumentation(&mut self) {
        let ctx = self.m.ctx;
        let c = self.crs();
        // And what the instrumentation adds to a call of the function,
        // which inlining it takes away: the caller's store and reload of
        // the count around the call (in a loop), and the load and store of
        // `wanco_cr_counter` by the entry poll, whose count stays in a
        // register once inlined (see `slow_join`). The C/R build thus
        // inlines a little more than `--no-cr` where a call costs it more:
        // `shootout-minicsv`'s `strlen` (10 over the threshold with
        // `--no-cr`) ran 7% faster inlined.
        let bonus = c.cost + CALL_OVERHEAD;
        for (i, call) in c.slow_calls.iter().enumerate() {
            call.add_attribute(AttributeLoc::Function, ctx.create_string_attribute("call-inline-cost", "0"));
            if i == 0 {
                call.add_attribute(AttributeLoc::Function, ctx.create_string_attribute("call-threshold-bonus", &bonus.to_string()));
            }
        }
    }

    /// Push the frame of the loop whose header block `header` (with `phis`
    /// for the whole stack) was just built, and emit its point: a loop
    /// without calls gets a latch, to which branches to its label go (see
    /// `loop_poll`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_cr_loop(
        &mut self,
        header: BasicBlock<'ctx>,
        phis: Vec<PhiValue<'ctx>>,
        base: usize,
        params: Vec<ValType>,
        results: Vec<ValType>,
        types: Vec<ValType>,
    ) -> Result<()> {
        let offset = self.offset as u32;
        let kind = if !self.slow_copy && self.crs().call_free_loops.binary_search(&offset).is_ok() {
            let latch = self.m.ctx.append_basic_block(self.f, "loop_latch");
            self.b.position_at_end(latch);
            let mut lphis = Vec::with_capacity(phis.len());
            for phi in &phis {
                lphis.push(self.b.build_phi(phi.as_basic_value().get_type(), "lb")?);
            }
            self.b.position_at_end(header);
            Kind::Loop { header: latch, phis: lphis, base, entry: Some((header, phis)) }
        } else {
            if self.slow_copy {
                self.slow_headers.push((self.offset, header, phis.clone()));
            }
            Kind::Loop { header, phis, base, entry: None }
        };
        self.push_control(kind, params, results);
        self.loop_poll(types)
    }

    /// The loop-header migration point of the loop just pushed, in two
    /// nested natural loops:
    ///
    /// ```text
    /// entry:  phis (the stack: from before the loop, restore routes, exit)
    ///         counter -= 1; == 0 ? slow : body
    /// slow:   wanco_cr_slow(point) [deopt]; restore dispatch, else -> body
    /// body:   phis (from entry, slow, latch) ... the loop's code ...
    /// latch:  phis (every branch to the label)
    ///         counter -= 1; == 0 ? exit : body
    /// exit:   counter = 1 -> entry
    /// ```
    ///
    /// The inner loop (`body` .. `latch`) has no call of its own and its
    /// counter is an induction variable with a computable exit, so a loop
    /// without calls stays a candidate for vectorization and hoisting: its
    /// values leave it at the latch, as its natural exits' do. A due poll
    /// at the latch leaves it for `entry` with the counter at 1, so that
    /// `entry`'s decrement, which counts nothing, takes the slow path: one
    /// statepoint per point, and the point is counted once. Restore routes
    /// come in at `entry`.
    ///
    /// A loop that calls keeps the simpler layout: the poll and its slow
    /// path at the header, which branches to the label come back to.
    fn loop_poll(&mut self, types: Vec<ValType>) -> Result<()> {
        // Routes come in at `entry` (the header of a loop that calls).
        let (entry, phis, split) = match &self.control.last().expect("loop").kind {
            Kind::Loop { header, phis: lphis, entry: Some((entry, phis)), .. } => (*entry, phis.clone(), Some((*header, lphis.clone()))),
            Kind::Loop { header, phis, entry: None, .. } => (*header, phis.clone(), None),
            _ => unreachable!("loop_poll after a loop"),
        };
        let live = self.live_here(FrameKind::Loop)?;
        let (parent, route) = self.add_route(entry, &live, &phis, phis.len(), phis.len(), &[])?;
        let point = self.new_point(FrameKind::Loop, types, 0, false, None, Some(parent), route);
        let stack = self.stack.clone();
        self.poll(point, false, &stack)?;
        let idx = self.crs().polls.len() - 1;
        self.crs().regions.push((idx, point, live));
        let Some((latch, lphis)) = split else { return Ok(()) };
        let (slow, body) = {
            let p = &self.crs().polls[idx];
            (p.dispatch, p.cont)
        };
        // `body`, positioned by `poll`: the loop's own header.
        let mut bphis = Vec::with_capacity(stack.len());
        for (v, lphi) in stack.iter().zip(&lphis) {
            let phi = self.b.build_phi(v.get_type(), "lh")?;
            phi.add_incoming(&[(v as &dyn BasicValue, entry), (v as &dyn BasicValue, slow), (&lphi.as_basic_value() as &dyn BasicValue, latch)]);
            bphis.push(phi.as_basic_value());
        }
        self.stack.truncate(self.stack.len() - stack.len());
        self.stack.extend(bphis);
        // The latch and the exit.
        let exit = self.m.ctx.append_basic_block(self.f, "loop_due");
        self.b.position_at_end(latch);
        let cnt = self.crs().cnt;
        self.count_down(cnt, exit, body)?;
        self.b.position_at_end(exit);
        self.b.build_store(cnt, self.i64().const_int(1, false))?;
        self.b.build_unconditional_branch(entry)?;
        for (phi, lphi) in phis.iter().zip(&lphis) {
            phi.add_incoming(&[(&lphi.as_basic_value() as &dyn BasicValue, exit)]);
        }
        self.b.position_at_end(body);
        Ok(())
    }

    /// Leave the region of a loop (at its `end`).
    pub(super) fn end_loop_region(&mut self) {
        if let Some(c) = self.cr.as_mut() {
            c.regions.pop();
        }
    }

    /// Make the current position a return site: a block whose phis hold the
    /// operand stack (and, for an indirect call, the callee), reachable by a
    /// restore route. Returns the point id, and the callee pointer and vmctx
    /// to use (phis for an indirect call).
    pub(super) fn call_site(
        &mut self,
        nargs: usize,
        indirect: Option<(PointerValue<'ctx>, PointerValue<'ctx>)>,
        what: Callee,
        mut types: Vec<ValType>,
    ) -> Result<(u32, Option<(PointerValue<'ctx>, PointerValue<'ctx>)>)> {
        let cur = self.b.get_insert_block().expect("positioned");
        let site = self.m.ctx.append_basic_block(self.f, "cr_call");
        self.b.build_unconditional_branch(site)?;
        self.b.position_at_end(site);
        let mut phis = Vec::new();
        for v in self.stack.clone() {
            let phi = self.b.build_phi(v.get_type(), "cs")?;
            phi.add_incoming(&[(&v as &dyn BasicValue, cur)]);
            phis.push(phi);
        }
        self.stack = phis.iter().map(|p| p.as_basic_value()).collect();
        let mut fixed = Vec::new();
        let callee = match indirect {
            Some((native, cvm)) => {
                let pn = self.b.build_phi(self.m.ptr(), "callee")?;
                pn.add_incoming(&[(&native as &dyn BasicValue, cur)]);
                let pv = self.b.build_phi(self.m.ptr(), "cvm")?;
                pv.add_incoming(&[(&cvm as &dyn BasicValue, cur)]);
                fixed = vec![pn, pv];
                Some((pn.as_basic_value().into_pointer_value(), pv.as_basic_value().into_pointer_value()))
            }
            None => None,
        };
        self.frame_barrier()?;
        let below = phis.len() - nargs;
        let live = self.live_here(FrameKind::Call)?;
        // The route passes the arguments too (a constant one as it is, the
        // others loaded: the runtime puts the callee frame's parameters
        // after the operand stack below them), and the callee's entry poll
        // restores only the parameters it writes (see `poll`).
        let (parent, route) = self.add_route(site, &live, &phis, below, phis.len(), &fixed)?;
        types.truncate(below);
        let point = self.new_point(FrameKind::Call, types, nargs as u32, indirect.is_some(), Some(what), Some(parent), route);
        Ok((point, callee))
    }

    /// Whether the current position is inside a loop: where the count is
    /// kept in the local counter.
    pub(super) fn in_loop(&self) -> bool {
        self.control.iter().any(super::Control::is_loop)
    }

    /// Inside a loop, store the local counter to the global one (before a
    /// call or an `unreachable`, and where control leaves the outermost
    /// loop). Elsewhere the global one is current.
    pub(super) fn counter_out(&mut self) -> Result<()> {
        if !self.in_loop() {
            return Ok(());
        }
        if let Some(cnt) = self.cr.as_ref().map(|c| c.cnt) {
            let c = self.b.build_load(self.i64(), cnt, "co")?;
            let g = self.m.cr_global(symbols::CR_COUNTER, self.i64().into());
            let st = self.b.build_store(g.as_pointer_value(), c)?;
            self.m.tbaa(st, Tbaa::Counter);
            self.crs().cost += 5;
        }
        Ok(())
    }

    /// Where the outermost loop is entered: load the local counter from the
    /// global one.
    pub(super) fn counter_into_loop(&mut self) -> Result<()> {
        let cnt = self.crs().cnt;
        let g = self.m.cr_global(symbols::CR_COUNTER, self.i64().into());
        let c = self.b.build_load(self.i64(), g.as_pointer_value(), "cl")?;
        self.m.tbaa(c.as_instruction_value().expect("load"), Tbaa::Counter);
        self.b.build_store(cnt, c)?;
        self.crs().cost += 5;
        Ok(())
    }

    /// Inside a loop, reload the local counter from the global one (after a
    /// call).
    pub(super) fn counter_in(&mut self) -> Result<()> {
        if !self.in_loop() {
            return Ok(());
        }
        if let Some(cnt) = self.cr.as_ref().map(|c| c.cnt) {
            let g = self.m.cr_global(symbols::CR_COUNTER, self.i64().into());
            let c = self.b.build_load(self.i64(), g.as_pointer_value(), "ci")?;
            self.m.tbaa(c.as_instruction_value().expect("load"), Tbaa::Counter);
            self.b.build_store(cnt, c)?;
            self.crs().cost += 5;
        }
        Ok(())
    }

    /// Build the restore dispatch switches and record the function.
    pub(super) fn finish_cr(&mut self) -> Result<()> {
        let cur = self.b.get_insert_block();
        let polls = std::mem::take(&mut self.crs().polls);
        for p in &polls {
            // LLVM weighs a switch of n > 3 cases as 3n/2 - 1 compares
            // and branches (fewer as a compare and branch each).
            let n = p.routes.len();
            self.crs().cost += if n <= 3 { 10 * n } else { 10 * (3 * n / 2 - 1) };
            self.b.position_at_end(p.dispatch);
            let cases: Vec<(IntValue<'ctx>, BasicBlock<'ctx>)> =
                p.routes.iter().map(|(i, bb)| (self.i32().const_int(*i as u64, false), *bb)).collect();
            self.b.build_switch(p.r, p.resume, &cases)?;
        }
        if let Some(bb) = cur {
            self.b.position_at_end(bb);
        }
        let c = self.cr.as_ref().expect("checkpointing enabled");
        let func = CrFunc {
            func: c.func_index,
            locals: self.locals.iter().map(|(_, t)| *t).collect(),
            entry_point: c.entry_point,
            max_height: c.max_height as u32,
        };
        self.m.cr.as_ref().expect("checkpointing enabled").funcs.borrow_mut().push(func);
        self.inline_cost_of_instrumentation();
        let c = self.cr.as_ref().expect("checkpointing enabled");
        if c.deopt_values > SLP_DEOPT_LIMIT {
            // Keeps the SLP vectorizer (and with it the loop vectorizer) out
            // of this function: see `SLP_DEOPT_LIMIT`.
            let attr = self.m.ctx.create_enum_attribute(Attribute::get_named_enum_kind_id("noimplicitfloat"), 0);
            self.f.add_attribute(AttributeLoc::Function, attr);
        }
        Ok(())
    }
}

/// Module-level checkpoint/restore state: every point and function.
pub(crate) struct ModuleCr {
    pub points: std::cell::RefCell<Vec<CrPoint>>,
    pub funcs: std::cell::RefCell<Vec<CrFunc>>,
    /// Per defined function: whether it has no migration point at all (no
    /// `loop` and no call in its body, rule 2). A call of such a function is
    /// no return site: no frame can ever stand there in a snapshot (its
    /// callee never reaches a point), so it carries no deopt state and no
    /// restore route, and LLVM treats it as an ordinary call.
    pub pointless: Vec<bool>,
    /// Per defined function: whether it is `pointless` and has no
    /// `unreachable` either, so that nothing reads or changes the count
    /// while it runs: no point, no host call (which may shorten the batch:
    /// `after_host_call` in the runtime), no `unreachable` (where the
    /// runtime reads the count for `--count-points` and the notes). A
    /// caller in a loop keeps its count in a register across a call of
    /// such a function: no store before and no reload after it (see
    /// `emit_call`). Inlined, that store stayed in the loop (LLVM does not
    /// see that every path overwrites it before the count is read):
    /// Sightglass `blind-sig`'s hot bignum loop, whose 128-bit multiply
    /// helper is such a function, stored the count at every iteration.
    pub counter_free: Vec<bool>,
}

/// Whether `body` has an `unreachable`.
fn has_unreachable(body: &wasmparser::FunctionBody<'_>) -> Result<bool> {
    let mut ops = body.get_operators_reader()?;
    while !ops.eof() {
        if matches!(ops.read()?, wasmparser::Operator::Unreachable) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl ModuleCr {
    /// The state for a module whose defined functions have these bodies.
    pub fn new(bodies: &[Body<'_>]) -> Result<ModuleCr> {
        let mut pointless = Vec::with_capacity(bodies.len());
        let mut counter_free = Vec::with_capacity(bodies.len());
        for b in bodies {
            let none = !wanco_state::liveness::has_entry_point(&b.body)?;
            pointless.push(none);
            counter_free.push(none && !has_unreachable(&b.body)?);
        }
        Ok(ModuleCr { points: Default::default(), funcs: Default::default(), pointless, counter_free })
    }
}

impl<'ctx> super::super::ModuleCodegen<'ctx, '_> {
    /// A runtime global (declared once, hidden: linked statically).
    pub fn cr_global(&self, name: &str, ty: inkwell::types::BasicTypeEnum<'ctx>) -> GlobalValue<'ctx> {
        match self.module.get_global(name) {
            Some(g) => g,
            None => {
                let g = self.module.add_global(ty, None, name);
                g.set_linkage(Linkage::External);
                g.set_visibility(inkwell::GlobalVisibility::Hidden);
                g
            }
        }
    }

    /// `wanco_cr_slow(vmctx, point) -> route`: cold, and (unlike the other
    /// runtime functions) a statepoint, so that its return address has the
    /// innermost frame's record.
    pub fn cr_slow_fn(&self) -> FunctionValue<'ctx> {
        if let Some(f) = self.module.get_function(symbols::CR_SLOW) {
            return f;
        }
        let ty = self.ctx.i32_type().fn_type(&[self.ptr().into(), self.ctx.i32_type().into()], false);
        let f = self.module.add_function(symbols::CR_SLOW, ty, Some(Linkage::External));
        f.as_global_value().set_visibility(inkwell::GlobalVisibility::Hidden);
        for a in ["cold", "nounwind"] {
            let attr = self.ctx.create_enum_attribute(Attribute::get_named_enum_kind_id(a), 0);
            f.add_attribute(AttributeLoc::Function, attr);
        }
        f
    }
}

#[cfg(test)]
pub(super) mod tests {
    use wanco_state::crmeta::Location;

    /// A local dead at a point is a constant zero in the point's stackmap
    /// record, even where its value is not a constant (`$x` at the loop
    /// header holds the previous iteration's value), so the register
    /// allocator need not keep it.
    #[test]
    fn dead_locals_are_constant_zero_in_the_records() {
        let wat = r#"(module
          (func $sum (param $n i32) (result f64) (local $i i32) (local $x f64) (local $acc f64)
            (loop $l
              (local.set $x (f64.convert_i32_s (local.get $i)))
              (local.set $acc (f64.add (local.get $acc) (f64.mul (local.get $x) (local.get $x))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_s (local.get $i) (local.get $n))))
            (local.get $acc))
          (func (export "_start") (drop (call $sum (i32.const 100)))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        let obj = crate::compile_object(&wasm, &crate::CompileOptions::default()).expect("compile");
        let records = wanco_translate::elf::records_from_object(&obj, |name| name.strip_prefix('f')?.parse().ok()).expect("records");
        // $sum's records (defined function 0): its entry and loop polls; one
        // frame each (point id, then $n, $i, $x, $acc).
        let sum: Vec<_> = records.iter().filter(|r| r.func == 0).collect();
        assert!(sum.len() >= 2, "{records:?}");
        for r in &sum {
            assert_eq!(r.locations.len(), 5, "{r:?}");
            assert_eq!(r.locations[3], Location::Constant(0), "$x is dead at both points: {r:?}");
        }
        // $acc is live at the loop header, where it is not a constant.
        assert!(sum.iter().any(|r| !matches!(r.locations[4], Location::Constant(_))), "{sum:?}");
    }

    /// The lines of a function's IR, each with the label of its block.
    fn lines_by_block(f: &str) -> Vec<(&str, &str)> {
        let mut block = "";
        f.lines()
            .map(|line| {
                if let Some((label, _)) = line.split_once(':').filter(|(l, _)| !l.starts_with(' ') && !l.is_empty()) {
                    block = label;
                }
                (block, line)
            })
            .collect()
    }

    /// The text of function `name` in IR `ir`.
    pub(in crate::codegen::func) fn function_ir<'a>(ir: &'a str, name: &str) -> &'a str {
        let start = ir.find(&format!("@{name}(")).expect("defined");
        let end = ir[start..].find("\n}\n").expect("function end");
        &ir[start..start + end]
    }

    /// A loop without calls stays a loop LLVM vectorizes with the
    /// instrumentation (its polls: an induction variable with a computable
    /// exit, its slow path outside it): the byte fill below is vectorized as
    /// it is without, and a checkpoint or a restore still stops it at every
    /// iteration (the C/R matrix: `cr_loops`).
    #[test]
    fn call_free_loops_are_vectorized() {
        let wat = r#"(module
          (memory 1)
          (func $fill (param $p i32) (param $n i32) (param $k i32) (local $i i32)
            (block $out
              (br_if $out (i32.eqz (local.get $n)))
              (loop $l
                (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.add (local.get $k) (local.get $i)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $l (i32.lt_u (local.get $i) (local.get $n))))))
          (func (export "_start") (call $fill (i32.const 0) (i32.const 100) (i32.const 3))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        for cr in [true, false] {
            let opts = crate::CompileOptions { cr, ..Default::default() };
            let ir = crate::compile_ir(&wasm, &opts).expect("compile");
            let fill = function_ir(&ir, "f0");
            assert!(fill.contains(" x i8> "), "cr {cr}: the fill is not vectorized:\n{fill}");
            assert_eq!(fill.contains("@wanco_cr_slow"), cr, "cr {cr}:\n{fill}");
        }
    }

    /// Every poll's branch to its slow path is marked as all but never taken
    /// (block placement then lets loops fall through their polls: a tight
    /// loop ran 2x slower with the slow path laid out in its way).
    #[test]
    fn polls_are_marked_unlikely() {
        let wat = r#"(module
          (global $g (mut i32) (i32.const 0))
          (func $rare (global.set $g (i32.add (global.get $g) (i32.const 1))))
          (func $work (param $n i32) (result i32) (local $i i32)
            (loop $l
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (if (i32.eqz (i32.and (local.get $i) (i32.const 0xffff))) (then (call $rare)))
              (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
            (local.get $i))
          (func (export "_start") (drop (call $work (i32.const 1000)))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        let opts = crate::CompileOptions { opt_level: 0, ..Default::default() };
        let ir = crate::compile_ir(&wasm, &opts).expect("compile");
        let work = function_ir(&ir, "f1");
        let polls = work.lines().filter(|l| l.contains("br i1") && l.contains("cr_slow")).count();
        let marked = work.lines().filter(|l| l.contains("br i1") && l.contains("cr_slow") && l.contains("!prof")).count();
        assert!(polls >= 2, "entry and loop polls expected:\n{work}");
        assert_eq!(marked, polls, "{work}");
        assert!(ir.contains(r#"!{!"branch_weights", i32 1, i32 1048576}"#), "{ir}");
    }

    /// A small function called in a loop is inlined with the
    /// instrumentation as without: its polls, slow path and restore code do
    /// not count against LLVM's inline threshold (the 128-bit multiply
    /// below, as `blind-sig`'s, stayed a call before).
    #[test]
    fn instrumentation_does_not_block_inlining() {
        let wat = r#"(module
  (memory 1)
  (func $mul128 (param $out i32) (param $a i64) (param $b i64) (param $c i64) (param $d i64)
    (local $lo i64) (local $mid i64) (local $t i64)
    (local.set $lo (i64.mul (i64.and (local.get $c) (i64.const 0xffffffff)) (i64.and (local.get $a) (i64.const 0xffffffff))))
    (local.set $mid (i64.add (i64.mul (i64.shr_u (local.get $c) (i64.const 32)) (i64.and (local.get $a) (i64.const 0xffffffff)))
                             (i64.mul (i64.and (local.get $c) (i64.const 0xffffffff)) (i64.shr_u (local.get $a) (i64.const 32)))))
    (local.set $t (i64.add (i64.shl (local.get $mid) (i64.const 32)) (local.get $lo)))
    (i64.store (local.get $out) (local.get $t))
    (i64.store offset=8 (local.get $out)
      (i64.add (i64.add (i64.add (i64.mul (local.get $d) (local.get $a)) (i64.mul (local.get $c) (local.get $b)))
                        (i64.mul (i64.shr_u (local.get $c) (i64.const 32)) (i64.shr_u (local.get $a) (i64.const 32))))
               (i64.add (i64.shr_u (local.get $mid) (i64.const 32))
                        (i64.add (select (i64.const 0x100000000) (i64.const 0) (i64.lt_u (local.get $mid) (local.get $lo)))
                                 (i64.extend_i32_u (i64.lt_u (local.get $t) (local.get $lo))))))))
  (func $work (param $n i32) (result i64) (local $i i32) (local $acc i64)
    (loop $l
      (call $mul128 (i32.const 16) (i64.extend_i32_u (local.get $i)) (local.get $acc) (i64.load (i32.const 16)) (i64.load (i32.const 24)))
      (local.set $acc (i64.add (local.get $acc) (i64.load (i32.const 16))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
  (func (export "_start") (drop (call $work (i32.const 1000)))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        for cr in [true, false] {
            let opts = crate::CompileOptions { cr, ..Default::default() };
            let ir = crate::compile_ir(&wasm, &opts).expect("compile");
            let work = function_ir(&ir, "f1");
            assert!(!work.contains("@f0"), "cr {cr}: $mul128 is not inlined into the loop:\n{work}");
            // The inlined entry poll keeps its slow path (a migration point).
            assert_eq!(work.contains("@wanco_cr_slow"), cr, "cr {cr}:\n{work}");
        }
    }

    /// A constant argument stays a constant in the inlined callee with the
    /// instrumentation as without: `$g`'s `if` on its parameter `$k`
    /// (never written, so not restored at its entry poll) folds where the
    /// caller passes 0, and the load of the dead branch (address 4656) is
    /// gone. Before, the entry poll's restore phi of `$k` kept both
    /// branches in the inlined body.
    #[test]
    fn constant_arguments_reach_the_inlined_callee() {
        let wat = r#"(module
  (memory 1)
  (func $g (param $k i32) (param $p i32) (result i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $p))))
    (if (result i32) (local.get $k)
      (then (i32.load (i32.const 4656)))
      (else (local.get $i))))
  (func $work (param $n i32) (result i32)
    (call $g (i32.const 0) (local.get $n)))
  (func (export "_start") (drop (call $work (i32.const 10)))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        for cr in [true, false] {
            let opts = crate::CompileOptions { cr, ..Default::default() };
            let ir = crate::compile_ir(&wasm, &opts).expect("compile");
            let work = function_ir(&ir, "f1");
            assert!(!work.contains("@f0"), "cr {cr}: $g is expected to be inlined:\n{work}");
            assert!(!work.contains("4656"), "cr {cr}: the branch $k = 0 leaves dead is still there:\n{work}");
        }
    }

    /// The instrumentation's own code is weighed as LLVM weighs it:
    /// Sightglass `shootout-minicsv`'s `strlen` (a word loop and a byte
    /// loop; cost 235 against a threshold of 225 with `--no-cr`) costs 445
    /// with it, and the estimate of the instrumentation's cost makes the
    /// threshold 445 for it (5 × the instructions the instrumentation
    /// emitted made it 535, and `rust-json` had 108 inlined call sites
    /// more than with `--no-cr`). With `CALL_OVERHEAD`, what a call costs
    /// more with the instrumentation, it is inlined with C/R (7% faster)
    /// and not with `--no-cr`. (Called twice: LLVM inlines the only call
    /// of an internal function whatever it costs.)
    #[test]
    fn instrumentation_is_weighed_as_llvm_weighs_it() {
        let wat = r#"(module
  (memory 1)
  (func $strlen (param i32) (result i32)
    (local i32 i32)
    local.get 0
    local.set 1
    block  ;; label = @1
      block  ;; label = @2
        local.get 0
        i32.const 3
        i32.and
        i32.eqz
        br_if 0 (;@2;)
        local.get 0
        local.set 1
        local.get 0
        i32.load8_u
        i32.eqz
        br_if 1 (;@1;)
        local.get 0
        i32.const 1
        i32.add
        local.tee 1
        i32.const 3
        i32.and
        i32.eqz
        br_if 0 (;@2;)
        local.get 1
        i32.load8_u
        i32.eqz
        br_if 1 (;@1;)
        local.get 0
        i32.const 2
        i32.add
        local.tee 1
        i32.const 3
        i32.and
        i32.eqz
        br_if 0 (;@2;)
        local.get 1
        i32.load8_u
        i32.eqz
        br_if 1 (;@1;)
        local.get 0
        i32.const 3
        i32.add
        local.tee 1
        i32.const 3
        i32.and
        i32.eqz
        br_if 0 (;@2;)
        local.get 1
        i32.load8_u
        i32.eqz
        br_if 1 (;@1;)
        local.get 0
        i32.const 4
        i32.add
        local.set 1
      end
      local.get 1
      i32.const -5
      i32.add
      local.set 1
      loop  ;; label = @2
        local.get 1
        i32.const 5
        i32.add
        local.set 2
        local.get 1
        i32.const 4
        i32.add
        local.set 1
        local.get 2
        i32.load
        local.tee 2
        i32.const -1
        i32.xor
        local.get 2
        i32.const -16843009
        i32.add
        i32.and
        i32.const -2139062144
        i32.and
        i32.eqz
        br_if 0 (;@2;)
      end
      loop  ;; label = @2
        local.get 1
        i32.const 1
        i32.add
        local.tee 1
        i32.load8_u
        br_if 0 (;@2;)
      end
    end
    local.get 1
    local.get 0
    i32.sub)
  (func $count (export "count") (param $p i32) (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (call $strlen (i32.add (local.get $p) (local.get $i)))))
      (local.set $acc (i32.sub (local.get $acc) (call $strlen (i32.add (local.get $acc) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
  (func (export "_start") (drop (call $count (i32.const 16) (i32.const 100)))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        let inlined: Vec<bool> = [true, false]
            .into_iter()
            .map(|cr| {
                let ir = crate::compile_ir(&wasm, &crate::CompileOptions { cr, ..Default::default() }).expect("compile");
                // A call of it stays (a statepoint's operand with C/R).
                !function_ir(&ir, "f1").contains("@f0")
            })
            .collect();
        assert_eq!(inlined, [true, false], "strlen inlined with C/R, with --no-cr");
    }

    /// A leaf function inlined in a loop leaves no reload of
    /// `wanco_cr_counter` on the loop's fast path, even where it stores to
    /// linear memory and a global after its entry poll: the counter's loads
    /// outside the slow paths are the caller's own entry poll's (block
    /// `body`). Before, the caller reloaded the counter after each inlined
    /// call (the callee's slow path left it unknown, and a store to linear
    /// memory or a global might have changed it).
    #[test]
    fn inlined_leaf_polls_keep_the_count_in_a_register() {
        let wat = r#"(module
  (memory 1)
  (global $g (mut i32) (i32.const 1024))
  (func $isdigit (param i32) (result i32)
    (global.set $g (i32.sub (global.get $g) (i32.const 16)))
    (i32.store8 offset=8 (global.get $g) (local.get 0))
    (global.set $g (i32.add (global.get $g) (i32.const 16)))
    (i32.lt_u (i32.sub (local.get 0) (i32.const 48)) (i32.const 10)))
  (func $count (param $p i32) (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc)
        (call $isdigit (i32.load8_u (i32.add (local.get $p) (local.get $i))))))
      (i32.store (i32.const 0) (local.get $acc))
      (i32.store offset=12 (i32.const 0) (local.get $i))
      (if (i32.and (local.get $i) (i32.const 1))
        (then (local.set $acc (i32.add (local.get $acc)
          (call $isdigit (i32.load8_u offset=1 (i32.add (local.get $p) (local.get $i))))))))
      (i32.store offset=4 (i32.const 0) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
  (func (export "_start") (drop (call $count (i32.const 16) (i32.const 100)))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        let ir = crate::compile_ir(&wasm, &crate::CompileOptions::default()).expect("compile");
        let count = function_ir(&ir, "f1");
        assert!(!count.contains("@f0("), "$isdigit is expected to be inlined:\n{count}");
        let mut hot_loads = Vec::new();
        for (block, line) in lines_by_block(count) {
            if line.contains("load i64, ptr @wanco_cr_counter") && !block.starts_with("cr_") {
                hot_loads.push(block);
            }
        }
        assert_eq!(hot_loads, ["body"], "loads of the counter outside the slow paths:\n{count}");
    }

    /// A loop that calls a function without points, host calls and
    /// `unreachable` (a multiply helper) keeps its count in a register
    /// across the call: once the helper is inlined, the loop stores
    /// `wanco_cr_counter` only on its way out and on its slow path. A
    /// helper with an `unreachable` (where the runtime reads the count)
    /// still gets the count stored before every call.
    #[test]
    fn calls_that_never_look_at_the_count_keep_it_in_a_register() {
        for (trap, stored_in_loop) in [("", false), ("(if (i64.eqz (local.get 1)) (then unreachable))", true)] {
            let wat = format!(
                r#"(module
  (memory 1)
  (func $mul (param i64 i64) (result i64)
    {trap}
    (i64.add (i64.mul (local.get 0) (local.get 1)) (i64.shr_u (local.get 0) (i64.const 32))))
  (func $sum (param $p i32) (param $n i32) (result i64) (local $i i32) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc)
        (call $mul (i64.load (i32.add (local.get $p) (local.get $i))) (i64.extend_i32_u (local.get $i)))))
      (i64.store (local.get $i) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
  (func (export "_start") (drop (call $sum (i32.const 16) (i32.const 800)))))"#
            );
            let wasm = wat::parse_str(&wat).expect("wat");
            let ir = crate::compile_ir(&wasm, &crate::CompileOptions::default()).expect("compile");
            let sum = function_ir(&ir, "f1");
            assert!(!sum.contains("@f0("), "$mul is expected to be inlined:\n{sum}");
            // Stores of the count outside the slow paths (and not the zero
            // a due poll stores before calling the runtime).
            let mut hot_stores = Vec::new();
            for (block, line) in lines_by_block(sum) {
                let cold = ["cr_slow", "cr_route", "cr_restore", "cr_resume"].iter().any(|c| block.starts_with(c));
                if line.contains("store i64") && line.contains("ptr @wanco_cr_counter") && !cold && !line.contains("store i64 0,") {
                    hot_stores.push(block.to_string());
                }
            }
            // The entry poll's own store (block `body`) and the one where the
            // loop is left (`brif`) are outside the loop; any other is in it.
            let in_loop: Vec<&String> = hot_stores.iter().filter(|b| *b != "body" && *b != "brif").collect();
            assert_eq!(!in_loop.is_empty(), stored_in_loop, "trap {trap:?}: counter stores {hot_stores:?}:\n{sum}");
        }
    }

    /// A loop that calls at every iteration (fib's, as LLVM makes it of
    /// `fib(n - 1) + fib(n - 2)`) counts in `wanco_cr_counter` itself: no
    /// count in a register (an `i64` phi) to store before its call and load
    /// after; one whose call is in an `if` (rare) keeps the count in a
    /// register.
    #[test]
    fn loops_that_call_at_every_iteration_count_in_memory() {
        let wat = r#"(module
  (func $fib (param i32) (result i32) (local i32)
    (local.set 1 (i32.const 1))
    (block
      (br_if 0 (i32.lt_u (local.get 0) (i32.const 2)))
      (local.set 1 (i32.const 0))
      (loop
        (local.set 1 (i32.add (call $fib (i32.add (local.get 0) (i32.const -2))) (local.get 1)))
        (br_if 0 (i32.gt_u (local.tee 0 (i32.add (local.get 0) (i32.const -1))) (i32.const 1)))))
    (local.get 1))
  (func $rare (param i32) (result i32) (local i32)
    (loop
      (if (i32.eqz (i32.and (local.get 0) (i32.const 1023)))
        (then (local.set 1 (i32.add (local.get 1) (call $fib (i32.const 5))))))
      (local.set 1 (i32.add (local.get 1) (local.get 0)))
      (br_if 0 (local.tee 0 (i32.add (local.get 0) (i32.const -1)))))
    (local.get 1))
  (func (export "_start") (drop (call $rare (call $fib (i32.const 20))))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        let ir = crate::compile_ir(&wasm, &crate::CompileOptions::default()).expect("compile");
        let fib = function_ir(&ir, "f0");
        assert!(!fib.contains("phi i64"), "fib's loop is expected to count in memory:\n{fib}");
        let header: Vec<&str> = lines_by_block(fib).into_iter().filter(|(b, _)| *b == "loop").map(|(_, l)| l).collect();
        assert!(header.iter().any(|l| l.contains("store i64") && l.contains("@wanco_cr_counter")), "the loop header's poll decrements the counter in memory:\n{fib}");
        let rare = function_ir(&ir, "f1");
        assert!(rare.contains("phi i64"), "a loop with a rare call keeps the count in a register:\n{rare}");
    }

    /// Whether function `name` of optimised IR `ir` has attribute `attr`.
    fn has_attribute(ir: &str, name: &str, attr: &str) -> bool {
        let define = ir.lines().find(|l| l.starts_with("define") && l.contains(&format!("@{name}("))).expect("defined");
        let group = define.rsplit_once(" #").and_then(|(_, g)| g.split_whitespace().next()).expect("attribute group");
        let attrs = ir.lines().find(|l| l.starts_with(&format!("attributes #{group} = "))).expect("group defined");
        attrs.split_whitespace().any(|a| a == attr)
    }

    /// `n` i64 locals of function 1 each set by a call while the ones
    /// before are live, then all summed.
    fn wide(n: usize) -> Vec<u8> {
        let locals: String = (0..n).map(|i| format!("(local $a{i} i64) ")).collect();
        let sets: String = (0..n).map(|i| format!("(local.set $a{i} (call $g (i64.const {i})))\n")).collect();
        let sum: String = (0..n).map(|i| format!("(local.get $a{i}) i64.add\n")).collect();
        let wat = format!(
            r#"(module
              ;; $g's loop gives it an entry point, so its calls are return sites.
              (func $g (param i64) (result i64) (loop) (i64.mul (local.get 0) (i64.const 3)))
              (func $w (result i64) {locals}
                {sets}
                i64.const 0
                {sum})
              (func (export "_start") (drop (call $w))))"#
        );
        wat::parse_str(wat).expect("wat")
    }

    /// A function whose deopt bundles hold more than `SLP_DEOPT_LIMIT` values
    /// is kept from the vectorizers (`noimplicitfloat`); others are not, and
    /// nothing is without the instrumentation.
    #[test]
    fn functions_with_huge_deopt_bundles_are_not_vectorized() {
        // 120 locals: ~7,300 live values over the bundles; 40: ~800.
        for (n, cr, kept_out) in [(120, true, true), (40, true, false), (120, false, false)] {
            let opts = crate::CompileOptions { cr, ..Default::default() };
            let ir = crate::compile_ir(&wide(n), &opts).expect("compile");
            assert_eq!(has_attribute(&ir, "f1", "noimplicitfloat"), kept_out, "{n} locals, cr {cr}");
        }
    }

    /// A function whose locals are live at many return sites keeps them in
    /// memory (see `memory_locals`): the phis of `wide(120)` grow with its
    /// calls (a few per return site: the stored call result, the inlined
    /// callee's entry and the count after it), not with its calls times
    /// its locals; `wide(40)`
    /// stays below the limit and has a restore phi per local per site.
    #[test]
    fn locals_live_across_many_calls_stay_in_memory() {
        for (n, in_memory) in [(120, true), (40, false)] {
            let ir = crate::compile_ir(&wide(n), &crate::CompileOptions::default()).expect("compile");
            let w = function_ir(&ir, "f1");
            // The return sites' barrier, and their deopt bundles naming the
            // locals' stack objects (read by the unwinder: `Direct`).
            assert_eq!(w.contains(r#"asm sideeffect "", "~{memory}""#), in_memory, "{n} locals:\n{w}");
            assert_eq!(w.contains("ptr %fl"), in_memory, "{n} locals:\n{w}");
            let phis = w.lines().filter(|l| l.contains(" = phi ")).count();
            if in_memory {
                // ~5.6 per site: with the inlined callee's entry poll, the
                // count after it (see `slow_join`) and its restore.
                assert!(phis < 8 * n, "{n} locals: {phis} phis");
            } else {
                assert!(phis > n * n / 4, "{n} locals: {phis} phis (restore phis expected)");
            }
        }
    }

    /// LLVM 19's greedy register allocator runs out of registers on x86_64
    /// with deopt values in registers on `regalloc_regex_f101.wat` (a
    /// function of Sightglass `regex`): the first attempt must fail so (else
    /// the fixture no longer tests the retry), and the compile must succeed
    /// on both ISAs, the part built again with them in stack slots.
    /// `cr_regalloc.wat` (from `rust-compression`) ran out before the entry
    /// polls' slow paths stored the counter back (see `slow_join`); it must
    /// compile too, and may fail only so on a first attempt.
    #[test]
    fn register_exhaustion_is_retried() {
        let f101 = wat::parse_str(include_str!("../../../../../tests/programs/compile/regalloc_regex_f101.wat")).expect("wat");
        // With its stack parameters as they come, the fixture still runs
        // out of registers (the only known way now: see `stack_params`).
        let raw = crate::CompileOptions { target: crate::Target::X86_64, raw_stack_params: true, ..Default::default() };
        match crate::compile_object_with(&f101, &raw, false) {
            Err(e) => assert!(crate::target::is_register_exhaustion(&e), "the first attempt failed otherwise: {e}"),
            Ok(_) => panic!("regalloc_regex_f101.wat no longer runs out of registers on a first attempt: find another fixture"),
        }
        crate::compile_object(&f101, &raw).expect("the retry with deopt values in stack slots");
        let rust_compression = wat::parse_str(include_str!("../../../../../tests/programs/cr/cr_regalloc.wat")).expect("wat");
        for wasm in [&f101, &rust_compression] {
            for target in [crate::Target::X86_64, crate::Target::Aarch64] {
                let opts = crate::CompileOptions { target, ..Default::default() };
                if let Err(e) = crate::compile_object_with(wasm, &opts, false) {
                    assert!(crate::target::is_register_exhaustion(&e), "{target}: the first attempt failed otherwise: {e}");
                }
                crate::compile_object(wasm, &opts).unwrap_or_else(|e| panic!("{target}: {e}"));
            }
        }
    }

    /// Parameters that arrive on the stack are kept in memory (never
    /// written) or copied (written), so that the functions that ran out of
    /// registers with deopt values in registers no longer do: regex's
    /// `f101`, rust-compression's `f173` and 12-parameter `f44`, and one of
    /// 20 parameters that it writes (each failure cost a part's code
    /// generation: see `stack_params`).
    #[test]
    fn stack_parameters_do_not_run_out_of_registers() {
        let n = 20;
        let mut body = vec!["(drop (call $g (local.get 0)))".to_string()];
        for i in 0..n {
            body.push(format!("(local.set {i} (i32.mul (local.get {i}) (i32.add (local.get {}) (i32.const {}))))", (i + 1) % n, i + 3));
        }
        let sum = (1..n).fold("(local.get 0)".to_string(), |s, i| format!("(i32.xor {s} (local.get {i}))"));
        let written = format!(
            "(module (func $g (param i32) (result i32) (local.get 0)) (func $f (export \"f\") (param {}) (result i32) {} {sum}))",
            vec!["i32"; n].join(" "),
            body.join(" ")
        );
        let fixtures = [
            ("regalloc_regex_f101.wat", include_str!("../../../../../tests/programs/compile/regalloc_regex_f101.wat").to_string()),
            ("cr_regalloc.wat", include_str!("../../../../../tests/programs/cr/cr_regalloc.wat").to_string()),
            ("20 written parameters", written),
        ];
        for (name, wat) in &fixtures {
            let wasm = wat::parse_str(wat).expect("wat");
            for target in [crate::Target::X86_64, crate::Target::Aarch64] {
                let opts = crate::CompileOptions { target, ..Default::default() };
                if let Err(e) = crate::compile_object_with(&wasm, &opts, false) {
                    panic!("{name}, {target}: the first attempt failed: {e}");
                }
            }
        }
        let raw = crate::CompileOptions { target: crate::Target::X86_64, raw_stack_params: true, ..Default::default() };
        let written = wat::parse_str(&fixtures[2].1).expect("wat");
        assert!(crate::compile_object_with(&written, &raw, false).is_err(), "the 20-parameter fixture no longer tests anything");
    }
}
