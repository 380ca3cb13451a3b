//! Translation of one Wasm function body to LLVM IR.
//!
//! Locals live in `alloca`s that `mem2reg` promotes to SSA values; the Wasm
//! operand stack is a compile-time stack of LLVM values; blocks become basic
//! blocks whose results are `phi` nodes built when the block ends.

mod cr;
mod fast;
mod simd;

pub(crate) use cr::ModuleCr;
use super::{ModuleCodegen, Tbaa};
use crate::error::{CompileError, Result};
use crate::frontend::{val_type, Body};
use inkwell::basic_block::BasicBlock;
use inkwell::attributes::AttributeLoc;
use inkwell::builder::Builder;
use inkwell::intrinsics::Intrinsic;
use inkwell::types::{BasicType, BasicTypeEnum};
use inkwell::values::{
    BasicMetadataValueEnum, BasicValue, BasicValueEnum, FloatValue, FunctionValue, IntValue, PhiValue,
    PointerValue, AsValueRef,
};
use inkwell::values::InstructionOpcode;
use inkwell::{FloatPredicate, IntPredicate};
use std::collections::HashMap;
use wanco_state::abi::{self, symbols, TrapCode};
use wanco_state::ValType;
use wasmparser::{BlockType, Operator as O};

/// Per-function code generation options.
#[derive(Clone, Debug, Default)]
pub struct FuncOptions {
    /// Compare every memory access with the memory size instead of relying
    /// on guard pages alone (exact trap order; costs run time).
    pub explicit_bounds_checks: bool,
    /// Checkpoint/restore instrumentation: migration-point polls at entries
    /// and loop headers, deopt state on every Wasm call, restore routes.
    pub cr: bool,
    /// Testing aid for `wanco-snap diff --against-interp`; never use
    /// otherwise: the i32/i64 `add`/`sub`/`mul` at this byte offset of the
    /// module file yields its result + 1 (see [`crate::CompileOptions::inject_fault`]).
    pub inject_fault: Option<u64>,
    /// Every NaN a float operation makes is the positive canonical NaN (see
    /// [`crate::CompileOptions::canonicalize_nans`]).
    pub canonicalize_nans: bool,
    /// The stack pointer's name for `llvm.read_register` (`rsp` on
    /// x86_64), read by the entry's stack check; `None`: `llvm.stacksave`.
    pub sp_register: Option<&'static str>,
    /// Code for x86_64 (else aarch64): the one SIMD instruction without a
    /// target-independent form (`i8x16.swizzle`) uses the ISA's own.
    pub x86: bool,
    /// Testing aid: see [`crate::CompileOptions::raw_stack_params`].
    pub raw_stack_params: bool,
}

enum Kind<'ctx> {
    Function,
    Block,
    /// `header`: where a branch to the loop's label goes (for a loop
    /// without calls under checkpointing, its latch: see `cr::loop_poll`).
    /// `phis`: one per value below the loop's parameters that `header`
    /// re-defines (`base` of them, all values below when checkpointing is
    /// on, none otherwise), then one per parameter. `entry`: for that
    /// call-free loop, the block that enters it (where restore routes come
    /// in) and its phis, laid out as `phis`.
    Loop { header: BasicBlock<'ctx>, phis: Vec<PhiValue<'ctx>>, base: usize, entry: Option<(BasicBlock<'ctx>, Vec<PhiValue<'ctx>>)> },
    /// `entry`: the whole operand stack at the `if` (parameters on top).
    If { else_bb: BasicBlock<'ctx>, entry: Vec<BasicValueEnum<'ctx>>, has_else: bool },
}

struct Control<'ctx> {
    kind: Kind<'ctx>,
    /// A loop whose polls count in the local counter (with checkpointing,
    /// every loop but those of `cr::scan_loops` that count in memory).
    counted: bool,
    results: Vec<ValType>,
    /// Operand stack height below this block's parameters.
    height: usize,
    end_bb: BasicBlock<'ctx>,
    /// Incoming edges to `end_bb`: (block, the stack below the block
    /// followed by the result values). Values below that differ between
    /// edges (a restore route re-defines them) get a phi at the end.
    incoming: Vec<(BasicBlock<'ctx>, Vec<BasicValueEnum<'ctx>>)>,
}

impl Control<'_> {
    /// A loop where, with checkpointing, the count is kept in the local
    /// counter (see `cr`).
    fn is_loop(&self) -> bool {
        self.counted
    }
}

struct FuncCx<'a, 'ctx, 'w> {
    m: &'a ModuleCodegen<'ctx, 'w>,
    b: Builder<'ctx>,
    f: FunctionValue<'ctx>,
    vmctx: PointerValue<'ctx>,
    locals: Vec<(PointerValue<'ctx>, ValType)>,
    stack: Vec<BasicValueEnum<'ctx>>,
    control: Vec<Control<'ctx>>,
    reachable: bool,
    dead_depth: u32,
    traps: HashMap<u32, BasicBlock<'ctx>>,
    mem_base: Option<PointerValue<'ctx>>,
    out_ptr: Option<PointerValue<'ctx>>,
    entry_bb: BasicBlock<'ctx>,
    offset: u64,
    explicit_bounds_checks: bool,
    cr: Option<cr::FuncCr<'ctx>>,
    inject_fault: Option<u64>,
    /// The fast copy of a loop being translated (see `fast`).
    fast: Vec<fast::FastLoop<'ctx>>,
    /// The loops of the fast copy that ended (see `fast`).
    fast_done: Vec<fast::FastLoop<'ctx>>,
    /// The slow copy's loop headers: (offset, header, its phis).
    slow_headers: Vec<(u64, BasicBlock<'ctx>, Vec<PhiValue<'ctx>>)>,
    /// The `loop` being translated opens a slow copy (see `fast`).
    slow_copy: bool,
    canonicalize_nans: bool,
    sp_register: Option<&'static str>,
    x86: bool,
}

pub(crate) fn compile_function(m: &ModuleCodegen<'_, '_>, defined: usize, body: &Body<'_>, opts: &FuncOptions) -> Result<()> {
    let info = &m.decoded.info;
    let ft = info.func_type(body.func_index).expect("validated").clone();
    let f = m.funcs[defined];
    let ctx = m.ctx;
    let b = ctx.create_builder();
    let entry_bb = ctx.append_basic_block(f, "entry");
    b.position_at_end(entry_bb);
    let vmctx = f.get_nth_param(0).unwrap().into_pointer_value();
    let mut cx = FuncCx {
        m,
        b,
        f,
        vmctx,
        locals: Vec::new(),
        stack: Vec::new(),
        control: Vec::new(),
        reachable: true,
        dead_depth: 0,
        traps: HashMap::new(),
        mem_base: None,
        out_ptr: if ft.results.len() > 1 {
            Some(f.get_nth_param(1 + ft.params.len() as u32).unwrap().into_pointer_value())
        } else {
            None
        },
        entry_bb,
        offset: body.body.range().start,
        explicit_bounds_checks: opts.explicit_bounds_checks,
        cr: None,
        inject_fault: opts.inject_fault,
        fast: Vec::new(),
        fast_done: Vec::new(),
        slow_headers: Vec::new(),
        slow_copy: false,
        canonicalize_nans: opts.canonicalize_nans,
        sp_register: opts.sp_register,
        x86: opts.x86,
    };
    // Locals: `alloca`s that `mem2reg` promotes, except, with checkpointing,
    // those `cr::memory_locals` keeps in an escaping frame (see `cr`).
    let live = if opts.cr { Some(wanco_state::liveness::analyze(&body.body, ft.params.len() as u32)?) } else { None };
    let mut types: Vec<ValType> = ft.params.clone();
    let mut lr = body.body.get_locals_reader()?;
    for _ in 0..lr.get_count() {
        let off = lr.original_position();
        let (n, t) = lr.read()?;
        let t = val_type(t, off)?;
        types.extend(std::iter::repeat_n(t, n as usize));
    }
    let mut in_memory = live.as_ref().map(cr::memory_locals).unwrap_or_default();
    let written = if live.is_some() { cr::written_params(&body.body, ft.params.len())? } else { Vec::new() };
    let on_stack = if live.is_some() && !opts.raw_stack_params { cr::stack_params(&ft.params, opts.x86, &written) } else { Vec::new() };
    for (i, s) in on_stack.iter().enumerate() {
        if *s == cr::StackParam::Kept {
            in_memory[i] = true;
        }
    }
    let frame = cx.memory_frame(&types, &in_memory)?;
    for (i, t) in types.iter().enumerate() {
        let a = match &frame {
            Some(slots) if slots[i].is_some() => slots[i].expect("slot"),
            _ => cx.b.build_alloca(m.llvm_type(*t), if i < ft.params.len() { "p" } else { "l" })?,
        };
        if i < ft.params.len() {
            let mut v = f.get_nth_param(1 + i as u32).unwrap();
            if on_stack.get(i) == Some(&cr::StackParam::Copied) {
                v = cx.opaque(v, "sp")?;
            }
            cx.b.build_store(a, v)?;
        } else {
            cx.b.build_store(a, zero(m, *t))?;
        }
        cx.locals.push((a, *t));
    }
    if info.has_memory() {
        let base = m.load_field(&cx.b, vmctx, abi::vmctx::MEMORY_BASE, true)?;
        cx.mem_base = Some(base);
    }
    if let Some(live) = live {
        cx.cr = Some(cr::FuncCr::new(&mut cx, body, live, &in_memory, &on_stack, written, ft.params.len())?);
    }
    cx.stack_check()?;
    let body_bb = ctx.append_basic_block(f, "body");
    cx.b.build_unconditional_branch(body_bb)?;
    cx.b.position_at_end(body_bb);
    if cx.cr.is_some() {
        cx.entry_poll()?;
    }
    let end_bb = ctx.append_basic_block(f, "ret");
    cx.control.push(Control {
        kind: Kind::Function,
        counted: false,
        results: ft.results.clone(),
        height: 0,
        end_bb,
        incoming: vec![],
    });
    let mut ops = body.body.get_operators_reader()?;
    while !ops.eof() {
        let (op, off) = ops.read_with_offset()?;
        if let Some(weight) = cx.wants_fast_copy(&op, off, &ops)? {
            cx.loop_with_fast_copy(&op, off, &mut ops, weight)?;
            continue;
        }
        cx.step(&op, off)?;
    }
    if cx.cr.is_some() {
        cx.finish_cr()?;
    }
    keep_unused_loads(f);
    Ok(())
}

/// A Wasm load whose value is never used (dropped, or discarded by a branch)
/// must still trap when out of bounds, but LLVM deletes unused loads: make
/// those volatile. (Loads of the runtime's own fields always have uses.)
fn keep_unused_loads(f: FunctionValue<'_>) {
    for bb in f.get_basic_block_iter() {
        let mut inst = bb.get_first_instruction();
        while let Some(i) = inst {
            inst = i.get_next_instruction();
            if i.get_first_use().is_none() {
                mark_dead_load(i, 0);
            }
        }
    }
}

/// Make the load `i` stands for volatile: `i` itself, or a load that only
/// reaches an unused value through extensions, bit casts and lane
/// insertions/shuffles (a narrow or SIMD load: `v128.load8_splat` is a
/// load, an `insertelement` and a `shufflevector`).
fn mark_dead_load(i: inkwell::values::InstructionValue<'_>, depth: u32) {
    match i.get_opcode() {
        InstructionOpcode::Load => {
            // Not a local's load (volatile would keep it from becoming a register).
            let local = matches!(i.get_operand(0), Some(inkwell::values::Operand::Value(p))
                if p.as_instruction_value().is_some_and(|a| a.get_opcode() == InstructionOpcode::Alloca));
            if !local {
                let _ = i.set_volatile(true);
            }
        }
        InstructionOpcode::SExt
        | InstructionOpcode::ZExt
        | InstructionOpcode::BitCast
        | InstructionOpcode::InsertElement
        | InstructionOpcode::ShuffleVector
            if depth < 4 =>
        {
            for k in 0..i.get_num_operands() {
                if let Some(inkwell::values::Operand::Value(v)) = i.get_operand(k) {
                    if let Some(op) = v.as_instruction_value() {
                        mark_dead_load(op, depth + 1);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Bytes accessed by a load or store of `ty` (an integer or float type).
fn access_size(ty: BasicTypeEnum<'_>) -> u64 {
    match ty {
        BasicTypeEnum::IntType(t) => t.get_bit_width() as u64 / 8,
        BasicTypeEnum::FloatType(t) if t == t.get_context().f32_type() => 4,
        _ => 8,
    }
}

fn zero<'ctx>(m: &ModuleCodegen<'ctx, '_>, t: ValType) -> BasicValueEnum<'ctx> {
    match t {
        ValType::I32 => m.ctx.i32_type().const_zero().into(),
        ValType::I64 => m.ctx.i64_type().const_zero().into(),
        ValType::F32 => m.ctx.f32_type().const_zero().into(),
        ValType::F64 => m.ctx.f64_type().const_zero().into(),
        ValType::V128 => m.ctx.i32_type().vec_type(4).const_zero().into(),
        ValType::FuncRef | ValType::ExternRef => m.ptr().const_null().into(),
    }
}

impl<'a, 'ctx, 'w> FuncCx<'a, 'ctx, 'w> {
    /// Translate one operator, read at `off`, and step the validator that
    /// tracks the operand stack's types.
    fn step(&mut self, op: &O<'_>, off: u64) -> Result<()> {
        self.translate_op(op, off)?;
        if let Some(c) = self.cr.as_mut() {
            c.types.op(off, op)?;
        }
        Ok(())
    }

    /// Translate one operator, read at `off` (with the fault planted there,
    /// if any), without the validator (see `fast`: a copy's operators).
    fn translate_op(&mut self, op: &O<'_>, off: u64) -> Result<()> {
        self.offset = off;
        let fault_here = self.reachable && self.inject_fault == Some(self.offset);
        self.op(op)?;
        if fault_here {
            self.plant_fault(op)?;
        }
        Ok(())
    }

    fn pop(&mut self) -> BasicValueEnum<'ctx> {
        self.stack.pop().expect("validated: operand stack underflow")
    }
    fn pop_i(&mut self) -> IntValue<'ctx> {
        self.pop().into_int_value()
    }
    fn pop_f(&mut self) -> FloatValue<'ctx> {
        self.pop().into_float_value()
    }
    fn push(&mut self, v: impl BasicValue<'ctx>) {
        self.stack.push(v.as_basic_value_enum());
    }
    fn pop_n(&mut self, n: usize) -> Vec<BasicValueEnum<'ctx>> {
        let at = self.stack.len() - n;
        self.stack.split_off(at)
    }
    fn i32(&self) -> inkwell::types::IntType<'ctx> {
        self.m.ctx.i32_type()
    }
    fn i64(&self) -> inkwell::types::IntType<'ctx> {
        self.m.ctx.i64_type()
    }
    fn unsupported(&self, what: &str) -> CompileError {
        CompileError::Unsupported { what: what.to_string(), offset: self.offset }
    }

    fn block_sig(&self, bt: BlockType) -> Result<(Vec<ValType>, Vec<ValType>)> {
        Ok(match bt {
            BlockType::Empty => (vec![], vec![]),
            BlockType::Type(t) => (vec![], vec![val_type(t, self.offset)?]),
            BlockType::FuncType(i) => {
                let ft = &self.m.decoded.info.types[i as usize];
                (ft.params.clone(), ft.results.clone())
            }
        })
    }

    /// The block that raises `code`.
    fn trap_bb(&mut self, code: TrapCode) -> Result<BasicBlock<'ctx>> {
        // An `unreachable` inside a loop stores the local counter: its trap
        // block is not shared with code outside loops.
        let key = code as u32 | if code == TrapCode::Unreachable && self.in_loop() { 1 << 16 } else { 0 };
        if let Some(bb) = self.traps.get(&key) {
            return Ok(*bb);
        }
        let cur = self.b.get_insert_block().unwrap();
        let bb = self.m.ctx.append_basic_block(self.f, "trap");
        self.b.position_at_end(bb);
        // Inside loops the migration-point count is kept in a local between
        // calls; at an `unreachable` (abort, a Rust panic: how programs
        // die) the runtime reads it (`--count-points`, the notes), so the
        // local is stored (outside loops the global is current). Not at the
        // traps of checks inside loops (division, indirect calls, bounds):
        // the store there kept the count live on hot paths, 5 % of
        // `compute`'s run time.
        if code == TrapCode::Unreachable {
            self.counter_out()?;
        }
        let trap = self.m.trap_fn();
        self.b.build_call(trap, &[self.vmctx.into(), self.i32().const_int(code as u64, false).into()], "")?;
        self.b.build_unreachable()?;
        self.b.position_at_end(cur);
        self.traps.insert(key, bb);
        Ok(bb)
    }

    /// Trap with `code` if `cond` is true.
    fn trap_if(&mut self, cond: IntValue<'ctx>, code: TrapCode) -> Result<()> {
        let trap = self.trap_bb(code)?;
        let cont = self.m.ctx.append_basic_block(self.f, "ok");
        self.b.build_conditional_branch(cond, trap, cont)?;
        self.b.position_at_end(cont);
        Ok(())
    }

    fn stack_check(&mut self) -> Result<()> {
        let m = self.m;
        let limit_g = match m.module.get_global(symbols::STACK_LIMIT) {
            Some(g) => g,
            None => {
                let g = m.module.add_global(self.i64(), None, symbols::STACK_LIMIT);
                g.set_linkage(inkwell::module::Linkage::External);
                // Linked statically into the same executable: no GOT indirection.
                g.set_visibility(inkwell::GlobalVisibility::Hidden);
                g
            }
        };
        let limit = self.b.build_load(self.i64(), limit_g.as_pointer_value(), "limit")?.into_int_value();
        // `llvm.read_register` only reads memory as LLVM sees it;
        // `llvm.stacksave` may write any: once this check is inlined into a
        // loop, it kept the C/R counter from staying in a register across
        // it (the counter went through memory three times per iteration:
        // 2.7x on `shootout-ctype`).
        let sp = match self.sp_register {
            Some(name) => {
                let rr = self.intrinsic("llvm.read_register", &[self.i64().into()]);
                let md = m.ctx.metadata_node(&[m.ctx.metadata_string(name).into()]);
                self.b.build_call(rr, &[md.into()], "sp")?.try_as_basic_value().basic().unwrap().into_int_value()
            }
            None => {
                let ss = Intrinsic::find("llvm.stacksave").expect("llvm.stacksave");
                let ss = ss.get_declaration(&m.module, &[m.ptr().into()]).expect("stacksave decl");
                let sp = self.b.build_call(ss, &[], "sp")?.try_as_basic_value().basic().unwrap().into_pointer_value();
                self.b.build_ptr_to_int(sp, self.i64(), "spi")?
            }
        };
        let cond = self.b.build_int_compare(IntPredicate::ULT, sp, limit, "ovf")?;
        self.trap_if(cond, TrapCode::StackExhausted)
    }

    fn intrinsic(&self, name: &str, tys: &[BasicTypeEnum<'ctx>]) -> FunctionValue<'ctx> {
        let i = Intrinsic::find(name).unwrap_or_else(|| panic!("LLVM intrinsic {name}"));
        i.get_declaration(&self.m.module, tys).unwrap_or_else(|| panic!("declare {name}"))
    }

    fn call_intr(&self, name: &str, tys: &[BasicTypeEnum<'ctx>], args: &[BasicMetadataValueEnum<'ctx>]) -> Result<BasicValueEnum<'ctx>> {
        let f = self.intrinsic(name, tys);
        Ok(self.b.build_call(f, args, "i")?.try_as_basic_value().basic().expect("intrinsic result"))
    }

    /// Call a runtime helper taking vmctx first.
    fn libcall(&mut self, name: &str, ret: Option<BasicTypeEnum<'ctx>>, args: &[BasicMetadataValueEnum<'ctx>]) -> Result<Option<BasicValueEnum<'ctx>>> {
        let mut params: Vec<inkwell::types::BasicMetadataTypeEnum> = vec![self.m.ptr().into()];
        for a in args {
            params.push(match a {
                BasicMetadataValueEnum::IntValue(v) => v.get_type().into(),
                BasicMetadataValueEnum::PointerValue(v) => v.get_type().into(),
                BasicMetadataValueEnum::FloatValue(v) => v.get_type().into(),
                _ => unreachable!(),
            });
        }
        let ty = match ret {
            Some(r) => r.fn_type(&params, false),
            None => self.m.ctx.void_type().fn_type(&params, false),
        };
        let f = self.m.runtime_fn(name, ty);
        let mut all: Vec<BasicMetadataValueEnum> = vec![self.vmctx.into()];
        all.extend_from_slice(args);
        Ok(self.b.build_call(f, &all, "lc")?.try_as_basic_value().basic())
    }

    fn cmp(&mut self, p: IntPredicate) -> Result<()> {
        let r = self.pop_i();
        let l = self.pop_i();
        let c = self.b.build_int_compare(p, l, r, "c")?;
        let v = self.b.build_int_z_extend(c, self.i32(), "z")?;
        self.push(v);
        Ok(())
    }

    fn fcmp(&mut self, p: FloatPredicate) -> Result<()> {
        let r = self.pop_f();
        let l = self.pop_f();
        let c = self.b.build_float_compare(p, l, r, "c")?;
        let v = self.b.build_int_z_extend(c, self.i32(), "z")?;
        self.push(v);
        Ok(())
    }

    /// The planted fault (testing aid, see [`FuncOptions::inject_fault`]):
    /// the result of the add/sub/mul just emitted gets + 1.
    fn plant_fault(&mut self, op: &O) -> Result<()> {
        if matches!(op, O::I32Add | O::I64Add | O::I32Sub | O::I64Sub | O::I32Mul | O::I64Mul) {
            let v = self.pop_i();
            let one = v.get_type().const_int(1, false);
            let v = self.b.build_int_add(v, one, "fault")?;
            self.push(v);
        }
        Ok(())
    }

    fn ibin(&mut self, f: impl Fn(&Builder<'ctx>, IntValue<'ctx>, IntValue<'ctx>) -> std::result::Result<IntValue<'ctx>, inkwell::builder::BuilderError>) -> Result<()> {
        let r = self.pop_i();
        let l = self.pop_i();
        let v = f(&self.b, l, r)?;
        self.push(v);
        Ok(())
    }


    /// `add`/`sub`/`mul`/`div`. With an identity constant operand (±0, ±1)
    /// LLVM folds the operation to the other operand (or its negation), which
    /// would let a signalling NaN through; Wasm requires an arithmetic NaN, so
    /// such results are quieted explicitly. No cost on other operations.
    fn farith(&mut self, f: impl Fn(&Builder<'ctx>, FloatValue<'ctx>, FloatValue<'ctx>) -> std::result::Result<FloatValue<'ctx>, inkwell::builder::BuilderError>) -> Result<()> {
        let r = self.pop_f();
        let l = self.pop_f();
        // A constant that may fold to an identity. `get_constant` only on a
        // `ConstantFP`: inkwell reads any constant as one
        // (`LLVMConstRealGetDouble` casts unchecked) and read garbage or
        // crashed on undef/poison (LLVM folds `fptoui` of an out-of-range
        // constant to poison, after the check that traps there) and on
        // constant expressions such as `extractelement (<2 x double> bitcast
        // (<4 x i32> ...) to <2 x double>), i32 0)` (`f64x2.extract_lane` of
        // a `v128.const`; found by `wanco-fuzz --aot`). Those other constants
        // may still fold to ±0 or ±1 later, so they count as identities.
        let identity = |v: FloatValue<'ctx>| {
            if !v.is_const() {
                return false;
            }
            // SAFETY: `v` is a live value of this module's context;
            // `LLVMIsAConstantFP` only inspects its kind.
            let is_fp = unsafe { !llvm_sys::core::LLVMIsAConstantFP(v.as_value_ref()).is_null() };
            !is_fp || v.get_constant().is_some_and(|(c, _)| c == 0.0 || c == 1.0 || c == -1.0)
        };
        let needs_quiet = identity(l) || identity(r);
        let v = f(&self.b, l, r)?;
        let v = if self.canonicalize_nans {
            self.canon(v)?
        } else if needs_quiet {
            self.quiet_nan(v)?
        } else {
            v
        };
        self.push(v);
        Ok(())
    }

    /// With `canonicalize_nans`: a NaN result made the positive canonical
    /// NaN (x86's own NaN is negative, aarch64's positive: Wasm allows
    /// either, but a program that looks at the bits would take another path
    /// on the other ISA). Other values unchanged; neg, abs and copysign keep
    /// the bits and do not come here.
    fn canon(&mut self, v: FloatValue<'ctx>) -> Result<FloatValue<'ctx>> {
        let is64 = v.get_type() == self.m.ctx.f64_type();
        let (it, bits) = if is64 { (self.i64(), 0x7ff8_0000_0000_0000u64) } else { (self.i32(), 0x7fc0_0000u64) };
        let canonical = self.b.build_bit_cast(it.const_int(bits, false), v.get_type(), "cnan")?.into_float_value();
        let nan = self.b.build_float_compare(FloatPredicate::UNO, v, v, "nan")?;
        Ok(self.b.build_select(nan, canonical, v, "canon")?.into_float_value())
    }

    /// A rounding or `sqrt` (an LLVM intrinsic), canonical with `canonicalize_nans`.
    fn funary_arith(&mut self, name: &str) -> Result<()> {
        let v = self.pop_f();
        let ty: BasicTypeEnum = v.get_type().into();
        let r = self.call_intr(name, &[ty], &[v.into()])?.into_float_value();
        let r = if self.canonicalize_nans { self.canon(r)? } else { r };
        self.push(r);
        Ok(())
    }

    /// Set the quiet bit of a NaN; other values unchanged.
    fn quiet_nan(&mut self, v: FloatValue<'ctx>) -> Result<FloatValue<'ctx>> {
        let is64 = v.get_type() == self.m.ctx.f64_type();
        let (it, bit) = if is64 { (self.i64(), 1u64 << 51) } else { (self.i32(), 1u64 << 22) };
        let bits = self.b.build_bit_cast(v, it, "bits")?.into_int_value();
        let q = self.b.build_or(bits, it.const_int(bit, false), "qb")?;
        let q = self.b.build_bit_cast(q, v.get_type(), "q")?.into_float_value();
        let nan = self.b.build_float_compare(FloatPredicate::UNO, v, v, "nan")?;
        Ok(self.b.build_select(nan, q, v, "qn")?.into_float_value())
    }

    fn iunary_intr(&mut self, name: &str, with_flag: bool) -> Result<()> {
        let v = self.pop_i();
        let ty: BasicTypeEnum = v.get_type().into();
        let mut args: Vec<BasicMetadataValueEnum> = vec![v.into()];
        if with_flag {
            args.push(self.m.ctx.bool_type().const_zero().into());
        }
        let r = self.call_intr(name, &[ty], &args)?;
        self.push(r);
        Ok(())
    }

    fn funary_intr(&mut self, name: &str) -> Result<()> {
        let v = self.pop_f();
        let ty: BasicTypeEnum = v.get_type().into();
        let r = self.call_intr(name, &[ty], &[v.into()])?;
        self.push(r);
        Ok(())
    }

    fn fbin_intr(&mut self, name: &str) -> Result<()> {
        let r = self.pop_f();
        let l = self.pop_f();
        let ty: BasicTypeEnum = l.get_type().into();
        let v = self.call_intr(name, &[ty], &[l.into(), r.into()])?;
        self.push(v);
        Ok(())
    }

    /// `min`/`max`: IEEE 754-2019 minimum/maximum, with a NaN result made
    /// quiet (x86's lowering passes a signalling NaN operand through; Wasm
    /// requires an arithmetic NaN).
    fn fminmax(&mut self, name: &str) -> Result<()> {
        let r = self.pop_f();
        let l = self.pop_f();
        let ty: BasicTypeEnum = l.get_type().into();
        let v = self.call_intr(name, &[ty], &[l.into(), r.into()])?.into_float_value();
        let out = if self.canonicalize_nans {
            self.canon(v)?
        } else {
            let nan = self.b.build_float_compare(FloatPredicate::UNO, v, v, "nan")?;
            let quiet = self.b.build_float_add(l, r, "q")?;
            self.b.build_select(nan, quiet, v, "mm")?.into_float_value()
        };
        self.push(out);
        Ok(())
    }

    fn shift(&mut self, kind: u8) -> Result<()> {
        let r = self.pop_i();
        let l = self.pop_i();
        let bits = l.get_type().get_bit_width() as u64;
        let mask = l.get_type().const_int(bits - 1, false);
        let r = self.b.build_and(r, mask, "m")?;
        let v = match kind {
            0 => self.b.build_left_shift(l, r, "shl")?,
            1 => self.b.build_right_shift(l, r, true, "sar")?,
            _ => self.b.build_right_shift(l, r, false, "shr")?,
        };
        self.push(v);
        Ok(())
    }

    fn rotate(&mut self, left: bool) -> Result<()> {
        let r = self.pop_i();
        let l = self.pop_i();
        let ty: BasicTypeEnum = l.get_type().into();
        let v = self.call_intr(if left { "llvm.fshl" } else { "llvm.fshr" }, &[ty], &[l.into(), l.into(), r.into()])?;
        self.push(v);
        Ok(())
    }

    fn divrem(&mut self, signed: bool, rem: bool) -> Result<()> {
        let r = self.pop_i();
        let l = self.pop_i();
        let ty = l.get_type();
        let is_zero = self.b.build_int_compare(IntPredicate::EQ, r, ty.const_zero(), "z")?;
        self.trap_if(is_zero, TrapCode::IntegerDivideByZero)?;
        let v = if signed {
            let minus1 = ty.const_all_ones();
            let is_m1 = self.b.build_int_compare(IntPredicate::EQ, r, minus1, "m1")?;
            if rem {
                // INT_MIN % -1 is 0 in Wasm but undefined in LLVM: divide by 1 instead.
                let safe = self.b.build_select(is_m1, ty.const_int(1, false), r, "s")?.into_int_value();
                self.b.build_int_signed_rem(l, safe, "srem")?
            } else {
                let bits = ty.get_bit_width();
                let min = ty.const_int(1u64 << (bits - 1), false);
                let is_min = self.b.build_int_compare(IntPredicate::EQ, l, min, "min")?;
                let ovf = self.b.build_and(is_min, is_m1, "ovf")?;
                self.trap_if(ovf, TrapCode::IntegerOverflow)?;
                self.b.build_int_signed_div(l, r, "sdiv")?
            }
        } else if rem {
            self.b.build_int_unsigned_rem(l, r, "urem")?
        } else {
            self.b.build_int_unsigned_div(l, r, "udiv")?
        };
        self.push(v);
        Ok(())
    }

    fn fconst(&self, bits: u64, f64ty: bool) -> Result<FloatValue<'ctx>> {
        // Via a bit cast so that NaN payloads survive exactly.
        Ok(if f64ty {
            self.b.build_bit_cast(self.i64().const_int(bits, false), self.m.ctx.f64_type(), "fc")?.into_float_value()
        } else {
            self.b.build_bit_cast(self.i32().const_int(bits, false), self.m.ctx.f32_type(), "fc")?.into_float_value()
        })
    }

    /// Trapping float -> int truncation.
    fn trunc(&mut self, to64: bool, signed: bool) -> Result<()> {
        let v = self.pop_f();
        let is64 = v.get_type() == self.m.ctx.f64_type();
        let nan = self.b.build_float_compare(FloatPredicate::UNO, v, v, "nan")?;
        self.trap_if(nan, TrapCode::InvalidConversion)?;
        // Exclusive bounds, exactly representable in the source type.
        let (lo, hi): (f64, f64) = match (to64, signed) {
            (false, true) => (-2147483649.0, 2147483648.0),
            (false, false) => (-1.0, 4294967296.0),
            (true, true) => (-9223372036854777856.0, 9223372036854775808.0),
            (true, false) => (-1.0, 18446744073709551616.0),
        };
        let ty = v.get_type();
        let (lo_c, lo_pred) = if !is64 && signed {
            // f32 cannot represent the exclusive lower bound; use >= -2^31 / -2^63.
            let lo = if to64 { -9223372036854775808.0 } else { -2147483648.0 };
            (ty.const_float(lo), FloatPredicate::OLT)
        } else if is64 && signed && to64 {
            (ty.const_float(-9223372036854775808.0), FloatPredicate::OLT)
        } else {
            (ty.const_float(lo), FloatPredicate::OLE)
        };
        let too_low = self.b.build_float_compare(lo_pred, v, lo_c, "lo")?;
        let too_high = self.b.build_float_compare(FloatPredicate::OGE, v, ty.const_float(hi), "hi")?;
        let bad = self.b.build_or(too_low, too_high, "bad")?;
        self.trap_if(bad, TrapCode::ConversionOverflow)?;
        let it = if to64 { self.i64() } else { self.i32() };
        let r = if signed {
            self.b.build_float_to_signed_int(v, it, "t")?
        } else {
            self.b.build_float_to_unsigned_int(v, it, "t")?
        };
        self.push(r);
        Ok(())
    }

    fn trunc_sat(&mut self, to64: bool, signed: bool) -> Result<()> {
        let v = self.pop_f();
        let it: BasicTypeEnum = if to64 { self.i64().into() } else { self.i32().into() };
        let name = if signed { "llvm.fptosi.sat" } else { "llvm.fptoui.sat" };
        let r = self.call_intr(name, &[it, v.get_type().into()], &[v.into()])?;
        self.push(r);
        Ok(())
    }

    /// Effective address of a memory access.
    fn addr(&mut self, offset: u64, size: u64) -> Result<PointerValue<'ctx>> {
        let a = self.pop_i();
        let a = self.b.build_int_z_extend(a, self.i64(), "a")?;
        let a = if offset != 0 {
            self.b.build_int_add(a, self.i64().const_int(offset, false), "ea")?
        } else {
            a
        };
        if self.explicit_bounds_checks {
            // end = ea + size cannot overflow: ea < 2^33.
            let end = self.b.build_int_add(a, self.i64().const_int(size, false), "end")?;
            let mem = self.m.load_field(&self.b, self.vmctx, abi::vmctx::MEMORY, true)?;
            let len = self.load_i64_field(mem, abi::memory::SIZE_BYTES)?;
            let oob = self.b.build_int_compare(IntPredicate::UGT, end, len, "oob")?;
            self.trap_if(oob, TrapCode::MemoryOutOfBounds)?;
        }
        let base = self.mem_base.expect("validated: memory access without memory");
        // SAFETY (LLVM IR semantics): the reservation covers 4 GiB + guard bytes.
        Ok(unsafe { self.b.build_gep(self.m.ctx.i8_type(), base, &[a], "p")? })
    }

    fn load(&mut self, memarg: &wasmparser::MemArg, ty: BasicTypeEnum<'ctx>, ext: Option<(inkwell::types::IntType<'ctx>, bool)>) -> Result<()> {
        let size = access_size(ty);
        let p = self.addr(memarg.offset, size)?;
        let v = self.b.build_load(ty, p, "ld")?;
        v.as_instruction_value().unwrap().set_alignment(1).map_err(|e| CompileError::Llvm(e.to_string()))?;
        self.m.tbaa(v.as_instruction_value().unwrap(), Tbaa::Memory);
        let v = match ext {
            Some((to, signed)) => {
                let iv = v.into_int_value();
                if signed {
                    self.b.build_int_s_extend(iv, to, "sx")?.into()
                } else {
                    self.b.build_int_z_extend(iv, to, "zx")?.into()
                }
            }
            None => v,
        };
        self.push(v);
        Ok(())
    }

    fn store(&mut self, memarg: &wasmparser::MemArg, narrow: Option<inkwell::types::IntType<'ctx>>) -> Result<()> {
        let v = self.pop();
        let size = match narrow {
            Some(t) => t.get_bit_width() as u64 / 8,
            None => access_size(v.get_type()),
        };
        let p = self.addr(memarg.offset, size)?;
        let v = match narrow {
            Some(t) => self.b.build_int_truncate(v.into_int_value(), t, "tr")?.into(),
            None => v,
        };
        let st = self.b.build_store(p, v)?;
        st.set_alignment(1).map_err(|e| CompileError::Llvm(e.to_string()))?;
        self.m.tbaa(st, Tbaa::Memory);
        Ok(())
    }

    /// Pointer to the 8-byte cell of global `index`.
    fn global_ptr(&mut self, index: u32) -> Result<PointerValue<'ctx>> {
        let arr = self.m.load_field(&self.b, self.vmctx, abi::vmctx::GLOBALS, true)?;
        self.index_ptr(arr, index as u64, true)
    }

    /// Load `arr[i]` (pointer array).
    fn index_ptr(&mut self, arr: PointerValue<'ctx>, i: u64, invariant: bool) -> Result<PointerValue<'ctx>> {
        // SAFETY (LLVM IR semantics): `arr` has an entry for every index.
        let p = unsafe { self.b.build_in_bounds_gep(self.m.ptr(), arr, &[self.i64().const_int(i, false)], "e")? };
        let v = self.b.build_load(self.m.ptr(), p, "ev")?;
        if invariant {
            self.m.mark_invariant(v);
        }
        Ok(v.into_pointer_value())
    }

    fn table_ptr(&mut self, table: u32) -> Result<PointerValue<'ctx>> {
        let arr = self.m.load_field(&self.b, self.vmctx, abi::vmctx::TABLES, true)?;
        self.index_ptr(arr, table as u64, true)
    }

    fn load_i64_field(&mut self, base: PointerValue<'ctx>, off: u32) -> Result<IntValue<'ctx>> {
        // SAFETY (LLVM IR semantics): field offsets from the shared ABI.
        let p = unsafe { self.b.build_in_bounds_gep(self.m.ctx.i8_type(), base, &[self.i64().const_int(off as u64, false)], "fp")? };
        Ok(self.b.build_load(self.i64(), p, "fv")?.into_int_value())
    }

    /// Call with the native convention; pushes the results. `site`: the
    /// callee is a Wasm function of this module, so with checkpointing the
    /// call is a return site — the operand types before the call
    /// instruction (bottom first) and what it calls.
    ///
    /// `counter_free`: the callee neither reads nor changes the migration
    /// point count (`ModuleCr::counter_free`), so a count kept in a
    /// register (in a loop) stays there across the call.
    fn emit_call(
        &mut self,
        callee: either::Callee<'ctx>,
        ft: &wanco_state::module::FuncType,
        callee_vmctx: PointerValue<'ctx>,
        site: Option<(Vec<ValType>, wanco_state::crmeta::Callee)>,
        counter_free: bool,
    ) -> Result<()> {
        let (callee, callee_vmctx, point) = match site {
            Some((types, what)) if self.cr.is_some() => {
                let indirect = match callee {
                    either::Callee::Indirect(p) => Some((p, callee_vmctx)),
                    either::Callee::Direct(_) => None,
                };
                let (point, repl) = self.call_site(ft.params.len(), indirect, what, types)?;
                match repl {
                    Some((p, v)) => (either::Callee::Indirect(p), v, Some(point)),
                    None => (callee, callee_vmctx, Some(point)),
                }
            }
            _ => (callee, callee_vmctx, None),
        };
        let args = self.pop_n(ft.params.len());
        let bundle = match point {
            Some(point) => {
                let below = self.stack.clone();
                Some(self.deopt_bundle(point, &below)?)
            }
            None => None,
        };
        let mut all: Vec<BasicMetadataValueEnum> = vec![callee_vmctx.into()];
        all.extend(args.iter().map(|a| BasicMetadataValueEnum::from(*a)));
        let out = if ft.results.len() > 1 {
            let cur = self.b.get_insert_block().unwrap();
            // Result buffer in the entry block so it is allocated once.
            match self.entry_bb.get_first_instruction() {
                Some(i) => self.b.position_before(&i),
                None => self.b.position_at_end(self.entry_bb),
            }
            let ty = self.i64().array_type(abi::slot_layout(&ft.results).1 as u32);
            let buf = self.b.build_alloca(ty, "mr")?;
            self.b.position_at_end(cur);
            all.push(buf.into());
            Some(buf)
        } else {
            None
        };
        // The global counter is current at every call (a host function may
        // exit the process, which reports the count), but one that does not
        // look at it.
        if !counter_free {
            self.counter_out()?;
        }
        let call = match (callee, &bundle) {
            (either::Callee::Direct(f), None) => self.b.build_call(f, &all, "call")?,
            (either::Callee::Indirect(p), None) => self.b.build_indirect_call(self.m.native_type(ft), p, &all, "call")?,
            (either::Callee::Direct(f), Some(b)) => self.b.build_direct_call_with_operand_bundles(f, &all, std::slice::from_ref(b), "call")?,
            (either::Callee::Indirect(p), Some(b)) => {
                self.b.build_indirect_call_with_operand_bundles(self.m.native_type(ft), p, &all, std::slice::from_ref(b), "call")?
            }
        };
        // Every Wasm call keeps its frame: no tail-call elimination (runaway
        // recursion must exhaust the stack, and checkpoints need the frames).
        call.set_tail_call_kind(inkwell::values::LLVMTailCallKind::LLVMTailCallKindNoTail);
        if point.is_some() {
            self.counter_in()?;
        } else if self.cr.is_some() {
            // A host function, or a Wasm function without points: never a
            // safepoint. The runtime may shorten
            // the batch in it (SIGUSR1 while the program waited in the
            // host), so the counter is read back.
            call.add_attribute(AttributeLoc::Function, self.m.ctx.create_string_attribute("gc-leaf-function", ""));
            if !counter_free {
                self.counter_in()?;
            }
        }
        match (ft.results.len(), out) {
            (0, _) => {}
            (1, _) => {
                let r = call.try_as_basic_value().basic().expect("one result");
                self.push(r);
            }
            (_, Some(buf)) => {
                let (at, _) = abi::slot_layout(&ft.results);
                for (i, t) in ft.results.iter().enumerate() {
                    // SAFETY (LLVM IR semantics): the buffer has the slots of every result.
                    let p = unsafe { self.b.build_in_bounds_gep(self.i64(), buf, &[self.i64().const_int(at[i] as u64, false)], "rp")? };
                    let v = self.b.build_load(self.m.llvm_type(*t), p, "r")?;
                    v.as_instruction_value().unwrap().set_alignment(8).map_err(|e| CompileError::Llvm(e.to_string()))?;
                    self.push(v);
                }
            }
            _ => unreachable!(),
        }
        Ok(())
    }

    /// Record a branch from the current block to label `depth`, passing the
    /// label's arity of values from the top of the stack (not popped).
    fn branch_to(&mut self, depth: u32) -> Result<BasicBlock<'ctx>> {
        let idx = self.control.len() - 1 - depth as usize;
        let leaves_loops = self.cr.is_some() && self.in_loop() && !self.control[idx].is_loop() && !self.loop_below(idx);
        let mut edge = None;
        if leaves_loops {
            // Leaving the outermost loop: the global counter is current from
            // here on. The store is on this edge only, not on the loop's path.
            let from = self.b.get_insert_block().unwrap();
            let e = self.m.ctx.append_basic_block(self.f, "loop_leave");
            self.b.position_at_end(e);
            self.counter_out()?;
            edge = Some((from, e));
        }
        let cur = self.b.get_insert_block().unwrap();
        let c = &mut self.control[idx];
        let target = match &c.kind {
            Kind::Loop { header, phis, base, .. } => {
                let nparams = phis.len() - base;
                let below = &self.stack[c.height - base..c.height];
                let params = &self.stack[self.stack.len() - nparams..];
                for (phi, v) in phis.iter().zip(below.iter().chain(params)) {
                    phi.add_incoming(&[(v as &dyn BasicValue, cur)]);
                }
                *header
            }
            _ => {
                let n = c.results.len();
                let mut vals = self.stack[..c.height].to_vec();
                vals.extend_from_slice(&self.stack[self.stack.len() - n..]);
                c.incoming.push((cur, vals));
                c.end_bb
            }
        };
        match edge {
            Some((from, e)) => {
                self.b.build_unconditional_branch(target)?;
                self.b.position_at_end(from);
                Ok(e)
            }
            None => Ok(target),
        }
    }

    /// Whether a control frame below frame `idx` is a loop (after the end
    /// of frame `idx`, control is still in a loop).
    fn loop_below(&self, idx: usize) -> bool {
        self.control[..idx].iter().any(Control::is_loop)
    }

    fn start_dead(&mut self) {
        self.reachable = false;
        self.dead_depth = 0;
    }

    fn push_control(&mut self, kind: Kind<'ctx>, params: Vec<ValType>, results: Vec<ValType>) {
        let end_bb = self.m.ctx.append_basic_block(self.f, "end");
        let height = self.stack.len() - params.len();
        let counted = matches!(kind, Kind::Loop { .. }) && !self.memory_counted_loop();
        self.control.push(Control { kind, counted, results, height, end_bb, incoming: vec![] });
    }

    /// Whether the `loop` at the current offset counts in the global
    /// counter, not in the local one (see `cr::scan_loops`).
    fn memory_counted_loop(&self) -> bool {
        self.cr.as_ref().is_some_and(|c| c.memory_counted_loops.binary_search(&(self.offset as u32)).is_ok())
    }

    /// Finish the innermost control frame at its `end`.
    fn end_frame(&mut self) -> Result<()> {
        if self.reachable {
            // Fall through to the end (for a loop too: not a branch to its label).
            let top = self.control.len() - 1;
            if self.control[top].is_loop() && !self.loop_below(top) {
                // Falling out of the outermost loop.
                self.counter_out()?;
            }
            let cur = self.b.get_insert_block().unwrap();
            let c = self.control.last_mut().unwrap();
            let mut vals = self.stack[..c.height].to_vec();
            vals.extend_from_slice(&self.stack[self.stack.len() - c.results.len()..]);
            c.incoming.push((cur, vals));
            let end = c.end_bb;
            self.b.build_unconditional_branch(end)?;
        }
        let fast = self.fast.last().is_some_and(|f| f.level == self.control.len() - 1);
        if fast {
            let f = self.fast.pop().expect("checked");
            self.fast_done.push(f);
        }
        let mut c = self.control.pop().unwrap();
        if matches!(c.kind, Kind::Loop { .. }) && !fast {
            // (A fast copy has no region: see `fast`.)
            self.end_loop_region();
        }
        if let Kind::If { else_bb, entry, has_else: false } = &c.kind {
            // No else: the false edge carries the parameters through.
            self.b.position_at_end(*else_bb);
            c.incoming.push((*else_bb, entry.clone()));
            self.b.build_unconditional_branch(c.end_bb)?;
        }
        self.b.position_at_end(c.end_bb);
        if c.incoming.is_empty() {
            self.stack.truncate(c.height);
            self.b.build_unreachable()?;
            if matches!(c.kind, Kind::Function) {
                return Ok(());
            }
            self.start_dead();
            return Ok(());
        }
        // The stack below the block: one value if every edge agrees, else a
        // phi (a restore route re-defined it on some path); then the results.
        let mut vals = Vec::new();
        let total = c.height + c.results.len();
        for i in 0..total {
            let first = c.incoming[0].1[i];
            if i < c.height && c.incoming.iter().all(|(_, vs)| vs[i] == first) {
                vals.push(first);
                continue;
            }
            let phi = self.b.build_phi(first.get_type(), "r")?;
            for (bb, vs) in &c.incoming {
                phi.add_incoming(&[(&vs[i] as &dyn BasicValue, *bb)]);
            }
            vals.push(phi.as_basic_value());
        }
        self.reachable = true;
        if matches!(c.kind, Kind::Function) {
            self.emit_return(&vals, &c.results)?;
            return Ok(());
        }
        self.stack = vals;
        Ok(())
    }

    fn emit_return(&mut self, vals: &[BasicValueEnum<'ctx>], results: &[ValType]) -> Result<()> {
        match vals.len() {
            0 => {
                self.b.build_return(None)?;
            }
            1 => {
                self.b.build_return(Some(&vals[0]))?;
            }
            _ => {
                let out = self.out_ptr.unwrap();
                let (at, _) = abi::slot_layout(results);
                for (i, v) in vals.iter().enumerate() {
                    // SAFETY (LLVM IR semantics): caller passes the slots of every result.
                    let p = unsafe { self.b.build_in_bounds_gep(self.i64(), out, &[self.i64().const_int(at[i] as u64, false)], "op")? };
                    let st = self.b.build_store(p, *v)?;
                    st.set_alignment(8).map_err(|e| CompileError::Llvm(e.to_string()))?;
                }
                self.b.build_return(None)?;
            }
        }
        Ok(())
    }

    fn op(&mut self, op: &O) -> Result<()> {
        if !self.reachable {
            match op {
                O::Block { .. } | O::Loop { .. } | O::If { .. } => {
                    self.dead_depth += 1;
                    return Ok(());
                }
                O::Else if self.dead_depth == 0 => {}
                O::End if self.dead_depth == 0 => {}
                O::End => {
                    self.dead_depth -= 1;
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
        let ctx = self.m.ctx;
        match *op {
            O::Unreachable => {
                let bb = self.trap_bb(TrapCode::Unreachable)?;
                self.b.build_unconditional_branch(bb)?;
                self.start_dead();
            }
            O::Nop => {}
            O::Block { blockty } => {
                let (p, r) = self.block_sig(blockty)?;
                self.push_control(Kind::Block, p, r);
            }
            O::Loop { blockty } => {
                let (p, r) = self.block_sig(blockty)?;
                let types = if self.cr.is_some() { Some(self.stack_types()?) } else { None };
                if types.is_some() && !self.in_loop() && !self.memory_counted_loop() {
                    self.counter_into_loop()?;
                }
                let cur = self.b.get_insert_block().unwrap();
                let header = ctx.append_basic_block(self.f, "loop");
                self.b.build_unconditional_branch(header)?;
                self.b.position_at_end(header);
                // With checkpointing, the header re-defines the whole stack:
                // a restore route enters the loop here with restored values.
                let base = if self.cr.is_some() { self.stack.len() - p.len() } else { 0 };
                let vals = self.pop_n(p.len() + base);
                let mut phis = Vec::new();
                for v in &vals {
                    let phi = self.b.build_phi(v.get_type(), "lp")?;
                    phi.add_incoming(&[(v as &dyn BasicValue, cur)]);
                    self.push(phi.as_basic_value());
                    phis.push(phi);
                }
                match types {
                    Some(types) => self.push_cr_loop(header, phis, base, p, r, types)?,
                    None => self.push_control(Kind::Loop { header, phis, base, entry: None }, p, r),
                }
            }
            O::If { blockty } => {
                let (p, r) = self.block_sig(blockty)?;
                let cond = self.pop_i();
                let c = self.b.build_int_compare(IntPredicate::NE, cond, self.i32().const_zero(), "c")?;
                let then_bb = ctx.append_basic_block(self.f, "then");
                let else_bb = ctx.append_basic_block(self.f, "else");
                self.b.build_conditional_branch(c, then_bb, else_bb)?;
                self.b.position_at_end(then_bb);
                let entry = self.stack.clone();
                self.push_control(Kind::If { else_bb, entry, has_else: false }, p, r);
            }
            O::Else => {
                if self.reachable {
                    self.branch_to(0)?;
                    let end = self.control.last().unwrap().end_bb;
                    self.b.build_unconditional_branch(end)?;
                }
                let c = self.control.last_mut().unwrap();
                let (else_bb, entry) = match &mut c.kind {
                    Kind::If { else_bb, entry, has_else } => {
                        *has_else = true;
                        (*else_bb, entry.clone())
                    }
                    _ => unreachable!("validated: else without if"),
                };
                self.stack = entry;
                self.b.position_at_end(else_bb);
                self.reachable = true;
            }
            O::End => self.end_frame()?,
            O::Br { relative_depth } => {
                let t = self.branch_to(relative_depth)?;
                self.b.build_unconditional_branch(t)?;
                self.start_dead();
            }
            O::BrIf { relative_depth } => {
                let cond = self.pop_i();
                let c = self.b.build_int_compare(IntPredicate::NE, cond, self.i32().const_zero(), "c")?;
                let t = self.branch_to(relative_depth)?;
                let cont = ctx.append_basic_block(self.f, "brif");
                self.b.build_conditional_branch(c, t, cont)?;
                self.b.position_at_end(cont);
            }
            O::BrTable { ref targets } => {
                let idx = self.pop_i();
                let default = targets.default();
                let mut cases = Vec::new();
                for (i, t) in targets.targets().enumerate() {
                    let t = t?;
                    let bb = self.branch_to(t)?;
                    cases.push((self.i32().const_int(i as u64, false), bb));
                }
                let dbb = self.branch_to(default)?;
                self.b.build_switch(idx, dbb, &cases)?;
                self.start_dead();
            }
            O::Return => {
                let t = self.branch_to(self.control.len() as u32 - 1)?;
                self.b.build_unconditional_branch(t)?;
                self.start_dead();
            }
            O::Call { function_index } => {
                let types = if self.cr.is_some() { Some(self.stack_types()?) } else { None };
                let info = &self.m.decoded.info;
                let ft = info.func_type(function_index).unwrap().clone();
                if function_index < info.num_imported_funcs {
                    let refs = self.m.load_field(&self.b, self.vmctx, abi::vmctx::FUNC_REFS, true)?;
                    let fr = self.index_ptr(refs, function_index as u64, true)?;
                    let native = self.m.load_field(&self.b, fr, abi::funcref::NATIVE, true)?;
                    let cvm = self.m.load_field(&self.b, fr, abi::funcref::VMCTX, true)?;
                    self.emit_call(either::Callee::Indirect(native), &ft, cvm, None, false)?;
                } else {
                    let def = (function_index - info.num_imported_funcs) as usize;
                    let f = self.m.funcs[def];
                    // A callee without points: not a return site (see `ModuleCr::pointless`).
                    let pointless = self.m.cr.as_ref().is_some_and(|c| c.pointless.get(def).copied().unwrap_or(false));
                    let counter_free = self.m.cr.as_ref().is_some_and(|c| c.counter_free.get(def).copied().unwrap_or(false));
                    let site = types.filter(|_| !pointless).map(|t| (t, wanco_state::crmeta::Callee::Func(function_index)));
                    self.emit_call(either::Callee::Direct(f), &ft, self.vmctx, site, counter_free)?;
                }
            }
            O::CallIndirect { type_index, table_index } => {
                // Operand types without the table index.
                let types = if self.cr.is_some() {
                    let mut t = self.stack_types()?;
                    t.pop();
                    Some(t)
                } else {
                    None
                };
                let ft = self.m.decoded.info.types[type_index as usize].clone();
                let idx = self.pop_i();
                let table = self.table_ptr(table_index)?;
                let len = self.load_i64_field(table, abi::table::LEN)?;
                let idx64 = self.b.build_int_z_extend(idx, self.i64(), "i")?;
                let oob = self.b.build_int_compare(IntPredicate::UGE, idx64, len, "oob")?;
                self.trap_if(oob, TrapCode::TableOutOfBounds)?;
                let elems = self.m.load_field(&self.b, table, abi::table::ELEMS, false)?;
                // SAFETY (LLVM IR semantics): idx < len checked above.
                let ep = unsafe { self.b.build_in_bounds_gep(self.m.ptr(), elems, &[idx64], "ep")? };
                let fr = self.b.build_load(self.m.ptr(), ep, "fr")?.into_pointer_value();
                let null = self.b.build_is_null(fr, "null")?;
                self.trap_if(null, TrapCode::IndirectCallNull)?;
                let tid = self.load_i64_field(fr, abi::funcref::TYPE_ID)?;
                let ids = self.m.load_field(&self.b, self.vmctx, abi::vmctx::TYPE_IDS, true)?;
                // SAFETY (LLVM IR semantics): one id per type index.
                let ip = unsafe { self.b.build_in_bounds_gep(self.i32(), ids, &[self.i64().const_int(type_index as u64, false)], "tp")? };
                let want = self.b.build_load(self.i32(), ip, "want")?;
                self.m.mark_invariant(want);
                let want = self.b.build_int_z_extend(want.into_int_value(), self.i64(), "w")?;
                let bad = self.b.build_int_compare(IntPredicate::NE, tid, want, "bad")?;
                self.trap_if(bad, TrapCode::IndirectCallType)?;
                let native = self.m.load_field(&self.b, fr, abi::funcref::NATIVE, false)?;
                let cvm = self.m.load_field(&self.b, fr, abi::funcref::VMCTX, false)?;
                self.emit_call(either::Callee::Indirect(native), &ft, cvm, types.map(|t| (t, wanco_state::crmeta::Callee::Type(type_index))), false)?;
            }
            O::Drop => {
                self.pop();
            }
            O::Select | O::TypedSelect { .. } | O::TypedSelectMulti { .. } => {
                let c = self.pop_i();
                let r = self.pop();
                let l = self.pop();
                let c = self.b.build_int_compare(IntPredicate::NE, c, self.i32().const_zero(), "c")?;
                let v = self.b.build_select(c, l, r, "sel")?;
                self.push(v);
            }
            O::LocalGet { local_index } => {
                let (p, t) = self.locals[local_index as usize];
                let v = self.b.build_load(self.m.llvm_type(t), p, "lg")?;
                self.push(v);
            }
            O::LocalSet { local_index } => {
                let v = self.pop();
                self.b.build_store(self.locals[local_index as usize].0, v)?;
            }
            O::LocalTee { local_index } => {
                let v = *self.stack.last().unwrap();
                self.b.build_store(self.locals[local_index as usize].0, v)?;
            }
            O::GlobalGet { global_index } => {
                let gt = self.m.decoded.info.global_type(global_index).unwrap();
                let p = self.global_ptr(global_index)?;
                let v = self.b.build_load(self.m.llvm_type(gt.ty), p, "gg")?;
                self.m.tbaa(v.as_instruction_value().expect("load"), Tbaa::Global);
                if !gt.mutable {
                    self.m.mark_invariant(v);
                }
                self.push(v);
            }
            O::GlobalSet { global_index } => {
                let v = self.pop();
                let p = self.global_ptr(global_index)?;
                let st = self.b.build_store(p, v)?;
                self.m.tbaa(st, Tbaa::Global);
            }
            O::TableGet { table } => {
                let i = self.pop_i();
                let r = self.libcall(symbols::TABLE_GET, Some(self.m.ptr().into()), &[self.i32().const_int(table as u64, false).into(), i.into()])?;
                self.push(r.unwrap());
            }
            O::TableSet { table } => {
                let v = self.pop();
                let i = self.pop_i();
                self.libcall(symbols::TABLE_SET, None, &[self.i32().const_int(table as u64, false).into(), i.into(), v.into()])?;
            }
            O::TableSize { table } => {
                let t = self.table_ptr(table)?;
                let len = self.load_i64_field(t, abi::table::LEN)?;
                let v = self.b.build_int_truncate(len, self.i32(), "ts")?;
                self.push(v);
            }
            O::TableGrow { table } => {
                let n = self.pop_i();
                let init = self.pop();
                let r = self.libcall(symbols::TABLE_GROW, Some(self.i32().into()), &[self.i32().const_int(table as u64, false).into(), init.into(), n.into()])?;
                self.push(r.unwrap());
            }
            O::TableFill { table } => {
                let n = self.pop_i();
                let v = self.pop();
                let d = self.pop_i();
                self.libcall(symbols::TABLE_FILL, None, &[self.i32().const_int(table as u64, false).into(), d.into(), v.into(), n.into()])?;
            }
            O::TableCopy { dst_table, src_table } => {
                let n = self.pop_i();
                let s = self.pop_i();
                let d = self.pop_i();
                let c = |x: u32| self.i32().const_int(x as u64, false).into();
                let args = [c(dst_table), c(src_table), d.into(), s.into(), n.into()];
                self.libcall(symbols::TABLE_COPY, None, &args)?;
            }
            O::TableInit { elem_index, table } => {
                let n = self.pop_i();
                let s = self.pop_i();
                let d = self.pop_i();
                let c = |x: u32| self.i32().const_int(x as u64, false).into();
                let args = [c(table), c(elem_index), d.into(), s.into(), n.into()];
                self.libcall(symbols::TABLE_INIT, None, &args)?;
            }
            O::ElemDrop { elem_index } => {
                self.libcall(symbols::ELEM_DROP, None, &[self.i32().const_int(elem_index as u64, false).into()])?;
            }
            O::I32Load { memarg } => self.load(&memarg, self.i32().into(), None)?,
            O::I64Load { memarg } => self.load(&memarg, self.i64().into(), None)?,
            O::F32Load { memarg } => self.load(&memarg, ctx.f32_type().into(), None)?,
            O::F64Load { memarg } => self.load(&memarg, ctx.f64_type().into(), None)?,
            O::I32Load8S { memarg } => self.load(&memarg, ctx.i8_type().into(), Some((self.i32(), true)))?,
            O::I32Load8U { memarg } => self.load(&memarg, ctx.i8_type().into(), Some((self.i32(), false)))?,
            O::I32Load16S { memarg } => self.load(&memarg, ctx.i16_type().into(), Some((self.i32(), true)))?,
            O::I32Load16U { memarg } => self.load(&memarg, ctx.i16_type().into(), Some((self.i32(), false)))?,
            O::I64Load8S { memarg } => self.load(&memarg, ctx.i8_type().into(), Some((self.i64(), true)))?,
            O::I64Load8U { memarg } => self.load(&memarg, ctx.i8_type().into(), Some((self.i64(), false)))?,
            O::I64Load16S { memarg } => self.load(&memarg, ctx.i16_type().into(), Some((self.i64(), true)))?,
            O::I64Load16U { memarg } => self.load(&memarg, ctx.i16_type().into(), Some((self.i64(), false)))?,
            O::I64Load32S { memarg } => self.load(&memarg, self.i32().into(), Some((self.i64(), true)))?,
            O::I64Load32U { memarg } => self.load(&memarg, self.i32().into(), Some((self.i64(), false)))?,
            O::I32Store { memarg } | O::I64Store { memarg } | O::F32Store { memarg } | O::F64Store { memarg } => {
                self.store(&memarg, None)?
            }
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => self.store(&memarg, Some(ctx.i8_type()))?,
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => self.store(&memarg, Some(ctx.i16_type()))?,
            O::I64Store32 { memarg } => self.store(&memarg, Some(self.i32()))?,
            O::MemorySize { .. } => {
                let mem = self.m.load_field(&self.b, self.vmctx, abi::vmctx::MEMORY, true)?;
                let bytes = self.load_i64_field(mem, abi::memory::SIZE_BYTES)?;
                let pages = self.b.build_right_shift(bytes, self.i64().const_int(16, false), false, "pg")?;
                let v = self.b.build_int_truncate(pages, self.i32(), "ms")?;
                self.push(v);
            }
            O::MemoryGrow { .. } => {
                let d = self.pop_i();
                let r = self.libcall(symbols::MEMORY_GROW, Some(self.i32().into()), &[d.into()])?;
                self.push(r.unwrap());
            }
            O::MemoryFill { .. } => {
                let n = self.pop_i();
                let v = self.pop_i();
                let d = self.pop_i();
                self.libcall(symbols::MEMORY_FILL, None, &[d.into(), v.into(), n.into()])?;
            }
            O::MemoryCopy { .. } => {
                let n = self.pop_i();
                let s = self.pop_i();
                let d = self.pop_i();
                self.libcall(symbols::MEMORY_COPY, None, &[d.into(), s.into(), n.into()])?;
            }
            O::MemoryInit { data_index, .. } => {
                let n = self.pop_i();
                let s = self.pop_i();
                let d = self.pop_i();
                let seg = self.i32().const_int(data_index as u64, false);
                self.libcall(symbols::MEMORY_INIT, None, &[seg.into(), d.into(), s.into(), n.into()])?;
            }
            O::DataDrop { data_index } => {
                self.libcall(symbols::DATA_DROP, None, &[self.i32().const_int(data_index as u64, false).into()])?;
            }
            O::I32Const { value } => self.push(self.i32().const_int(value as u32 as u64, false)),
            O::I64Const { value } => self.push(self.i64().const_int(value as u64, false)),
            O::F32Const { value } => {
                let v = self.fconst(value.bits() as u64, false)?;
                self.push(v)
            }
            O::F64Const { value } => {
                let v = self.fconst(value.bits(), true)?;
                self.push(v)
            }
            O::RefNull { .. } => self.push(self.m.ptr().const_null()),
            O::RefIsNull => {
                let v = self.pop().into_pointer_value();
                let c = self.b.build_is_null(v, "isnull")?;
                let z = self.b.build_int_z_extend(c, self.i32(), "z")?;
                self.push(z);
            }
            O::RefFunc { function_index } => {
                let refs = self.m.load_field(&self.b, self.vmctx, abi::vmctx::FUNC_REFS, true)?;
                let fr = self.index_ptr(refs, function_index as u64, true)?;
                self.push(fr);
            }
            O::I32Eqz | O::I64Eqz => {
                let v = self.pop_i();
                let c = self.b.build_int_compare(IntPredicate::EQ, v, v.get_type().const_zero(), "eqz")?;
                let z = self.b.build_int_z_extend(c, self.i32(), "z")?;
                self.push(z);
            }
            O::I32Eq | O::I64Eq => self.cmp(IntPredicate::EQ)?,
            O::I32Ne | O::I64Ne => self.cmp(IntPredicate::NE)?,
            O::I32LtS | O::I64LtS => self.cmp(IntPredicate::SLT)?,
            O::I32LtU | O::I64LtU => self.cmp(IntPredicate::ULT)?,
            O::I32GtS | O::I64GtS => self.cmp(IntPredicate::SGT)?,
            O::I32GtU | O::I64GtU => self.cmp(IntPredicate::UGT)?,
            O::I32LeS | O::I64LeS => self.cmp(IntPredicate::SLE)?,
            O::I32LeU | O::I64LeU => self.cmp(IntPredicate::ULE)?,
            O::I32GeS | O::I64GeS => self.cmp(IntPredicate::SGE)?,
            O::I32GeU | O::I64GeU => self.cmp(IntPredicate::UGE)?,
            O::F32Eq | O::F64Eq => self.fcmp(FloatPredicate::OEQ)?,
            O::F32Ne | O::F64Ne => self.fcmp(FloatPredicate::UNE)?,
            O::F32Lt | O::F64Lt => self.fcmp(FloatPredicate::OLT)?,
            O::F32Gt | O::F64Gt => self.fcmp(FloatPredicate::OGT)?,
            O::F32Le | O::F64Le => self.fcmp(FloatPredicate::OLE)?,
            O::F32Ge | O::F64Ge => self.fcmp(FloatPredicate::OGE)?,
            O::I32Clz | O::I64Clz => self.iunary_intr("llvm.ctlz", true)?,
            O::I32Ctz | O::I64Ctz => self.iunary_intr("llvm.cttz", true)?,
            O::I32Popcnt | O::I64Popcnt => self.iunary_intr("llvm.ctpop", false)?,
            O::I32Add | O::I64Add => self.ibin(|b, l, r| b.build_int_add(l, r, "add"))?,
            O::I32Sub | O::I64Sub => self.ibin(|b, l, r| b.build_int_sub(l, r, "sub"))?,
            O::I32Mul | O::I64Mul => self.ibin(|b, l, r| b.build_int_mul(l, r, "mul"))?,
            O::I32DivS | O::I64DivS => self.divrem(true, false)?,
            O::I32DivU | O::I64DivU => self.divrem(false, false)?,
            O::I32RemS | O::I64RemS => self.divrem(true, true)?,
            O::I32RemU | O::I64RemU => self.divrem(false, true)?,
            O::I32And | O::I64And => self.ibin(|b, l, r| b.build_and(l, r, "and"))?,
            O::I32Or | O::I64Or => self.ibin(|b, l, r| b.build_or(l, r, "or"))?,
            O::I32Xor | O::I64Xor => self.ibin(|b, l, r| b.build_xor(l, r, "xor"))?,
            O::I32Shl | O::I64Shl => self.shift(0)?,
            O::I32ShrS | O::I64ShrS => self.shift(1)?,
            O::I32ShrU | O::I64ShrU => self.shift(2)?,
            O::I32Rotl | O::I64Rotl => self.rotate(true)?,
            O::I32Rotr | O::I64Rotr => self.rotate(false)?,
            O::F32Abs | O::F64Abs => self.funary_intr("llvm.fabs")?,
            O::F32Neg | O::F64Neg => {
                let v = self.pop_f();
                let r = self.b.build_float_neg(v, "neg")?;
                self.push(r);
            }
            O::F32Ceil | O::F64Ceil => self.funary_arith("llvm.ceil")?,
            O::F32Floor | O::F64Floor => self.funary_arith("llvm.floor")?,
            O::F32Trunc | O::F64Trunc => self.funary_arith("llvm.trunc")?,
            O::F32Nearest | O::F64Nearest => self.funary_arith("llvm.roundeven")?,
            O::F32Sqrt | O::F64Sqrt => self.funary_arith("llvm.sqrt")?,
            O::F32Add | O::F64Add => self.farith(|b, l, r| b.build_float_add(l, r, "fadd"))?,
            O::F32Sub | O::F64Sub => self.farith(|b, l, r| b.build_float_sub(l, r, "fsub"))?,
            O::F32Mul | O::F64Mul => self.farith(|b, l, r| b.build_float_mul(l, r, "fmul"))?,
            O::F32Div | O::F64Div => self.farith(|b, l, r| b.build_float_div(l, r, "fdiv"))?,
            O::F32Min | O::F64Min => self.fminmax("llvm.minimum")?,
            O::F32Max | O::F64Max => self.fminmax("llvm.maximum")?,
            O::F32Copysign | O::F64Copysign => self.fbin_intr("llvm.copysign")?,
            O::I32WrapI64 => {
                let v = self.pop_i();
                let r = self.b.build_int_truncate(v, self.i32(), "wrap")?;
                self.push(r);
            }
            O::I32TruncF32S | O::I32TruncF64S => self.trunc(false, true)?,
            O::I32TruncF32U | O::I32TruncF64U => self.trunc(false, false)?,
            O::I64TruncF32S | O::I64TruncF64S => self.trunc(true, true)?,
            O::I64TruncF32U | O::I64TruncF64U => self.trunc(true, false)?,
            O::I32TruncSatF32S | O::I32TruncSatF64S => self.trunc_sat(false, true)?,
            O::I32TruncSatF32U | O::I32TruncSatF64U => self.trunc_sat(false, false)?,
            O::I64TruncSatF32S | O::I64TruncSatF64S => self.trunc_sat(true, true)?,
            O::I64TruncSatF32U | O::I64TruncSatF64U => self.trunc_sat(true, false)?,
            O::I64ExtendI32S => {
                let v = self.pop_i();
                let r = self.b.build_int_s_extend(v, self.i64(), "sx")?;
                self.push(r);
            }
            O::I64ExtendI32U => {
                let v = self.pop_i();
                let r = self.b.build_int_z_extend(v, self.i64(), "zx")?;
                self.push(r);
            }
            O::F32ConvertI32S | O::F32ConvertI64S => {
                let v = self.pop_i();
                let r = self.b.build_signed_int_to_float(v, ctx.f32_type(), "cv")?;
                self.push(r);
            }
            O::F32ConvertI32U | O::F32ConvertI64U => {
                let v = self.pop_i();
                let r = self.b.build_unsigned_int_to_float(v, ctx.f32_type(), "cv")?;
                self.push(r);
            }
            O::F64ConvertI32S | O::F64ConvertI64S => {
                let v = self.pop_i();
                let r = self.b.build_signed_int_to_float(v, ctx.f64_type(), "cv")?;
                self.push(r);
            }
            O::F64ConvertI32U | O::F64ConvertI64U => {
                let v = self.pop_i();
                let r = self.b.build_unsigned_int_to_float(v, ctx.f64_type(), "cv")?;
                self.push(r);
            }
            O::F32DemoteF64 => {
                let v = self.pop_f();
                // LLVM folds demote(promote(x)) to x, letting a signalling NaN through.
                let folds = v.as_instruction_value().is_some_and(|i| i.get_opcode() == InstructionOpcode::FPExt);
                let r = self.b.build_float_trunc(v, ctx.f32_type(), "dem")?;
                let r = if self.canonicalize_nans {
                    self.canon(r)?
                } else if folds {
                    self.quiet_nan(r)?
                } else {
                    r
                };
                self.push(r);
            }
            O::F64PromoteF32 => {
                let v = self.pop_f();
                let r = self.b.build_float_ext(v, ctx.f64_type(), "pro")?;
                let r = if self.canonicalize_nans { self.canon(r)? } else { r };
                self.push(r);
            }
            O::I32ReinterpretF32 | O::I64ReinterpretF64 | O::F32ReinterpretI32 | O::F64ReinterpretI64 => {
                let v = self.pop();
                let to: BasicTypeEnum = match op {
                    O::I32ReinterpretF32 => self.i32().into(),
                    O::I64ReinterpretF64 => self.i64().into(),
                    O::F32ReinterpretI32 => ctx.f32_type().into(),
                    _ => ctx.f64_type().into(),
                };
                let r = self.b.build_bit_cast(v, to, "bc")?;
                self.push(r);
            }
            O::I32Extend8S | O::I32Extend16S | O::I64Extend8S | O::I64Extend16S | O::I64Extend32S => {
                let v = self.pop_i();
                let narrow = match op {
                    O::I32Extend8S | O::I64Extend8S => ctx.i8_type(),
                    O::I32Extend16S | O::I64Extend16S => ctx.i16_type(),
                    _ => self.i32(),
                };
                let t = self.b.build_int_truncate(v, narrow, "n")?;
                let r = self.b.build_int_s_extend(t, v.get_type(), "sx")?;
                self.push(r);
            }
            ref other => {
                if !self.simd_op(other)? {
                    return Err(self.unsupported(&format!("instruction {other:?}")));
                }
            }
        }
        Ok(())
    }
}

mod either {
    use inkwell::values::{FunctionValue, PointerValue};
    pub enum Callee<'ctx> {
        Direct(FunctionValue<'ctx>),
        Indirect(PointerValue<'ctx>),
    }
}

#[cfg(test)]
mod tests {
    /// Arithmetic on a value LLVM folded to poison (an out-of-range constant
    /// truncated after the check that traps) compiles: wasm-smith seed 1470
    /// crashed the compiler (`wanco compile` died of SIGSEGV) when the NaN
    /// quieting looked at the operand as a float constant.
    #[test]
    fn arithmetic_on_folded_poison_compiles() {
        let wat = r#"(module
          (func (export "f") (result f64)
            (f64.add (f64.convert_i32_u (i32.trunc_f64_u (f64.const 1e300))) (f64.const 1))))"#;
        let wasm = wat::parse_str(wat).expect("wat");
        for cr in [true, false] {
            let opts = crate::CompileOptions { cr, ..Default::default() };
            crate::compile_object(&wasm, &opts).expect("compile");
        }
    }
}
