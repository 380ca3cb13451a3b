//! Translation of validated Wasm function bodies into [`Instr`] arrays.
//!
//! Validation and translation run in one pass: every operator is handed to
//! wasmparser's function validator, and the validator's view of the operand
//! and control stacks gives the heights and types the translation needs
//! (branch stack adjustments, the types of the operand stack at loop headers
//! and call sites).

use crate::error::Error;
use crate::instr::{BrTarget, FuncCode, Instr, PointInfo, NULL_REF};
use crate::simd::simd_op;
use crate::store::{slot_len, slots_of};
use wanco_state::liveness::LiveSet;
use wanco_state::module::ModuleInfo;
use wanco_state::ValType;
use wasmparser::{BlockType, FrameKind, FuncValidator, FunctionBody, Operator, ValidatorResources};

/// Convert a wasmparser value type into ours (typed references are not
/// supported).
pub(crate) fn conv_valtype(ty: wasmparser::ValType, offset: usize) -> Result<ValType, Error> {
    use wasmparser::ValType as W;
    Ok(match ty {
        W::I32 => ValType::I32,
        W::I64 => ValType::I64,
        W::F32 => ValType::F32,
        W::F64 => ValType::F64,
        W::Ref(r) if r == wasmparser::RefType::FUNCREF => ValType::FuncRef,
        W::Ref(r) if r == wasmparser::RefType::EXTERNREF => ValType::ExternRef,
        W::V128 => ValType::V128,
        W::Ref(_) => {
            return Err(Error::new(
                offset,
                "unsupported reference type: expected funcref or externref",
            ))
        }
    })
}

/// Initial slot value of a local of type `ty`.
pub(crate) fn default_slot(ty: ValType) -> u64 {
    match ty {
        ValType::FuncRef | ValType::ExternRef => NULL_REF,
        _ => 0,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CtlKind {
    Block,
    Loop,
    If,
    Else,
    Func,
}

enum Fixup {
    Instr(usize),
    Table(usize),
}

struct Ctl {
    kind: CtlKind,
    /// For loops: index of the `LoopHeader`.
    start: u32,
    /// Forward branches to the end of this construct.
    fixups: Vec<Fixup>,
    /// For `if`: the `JumpIfZero` to patch with the start of `else` (or the end).
    else_jump: Option<usize>,
}

struct Translator<'m> {
    info: &'m ModuleInfo,
    instrs: Vec<Instr>,
    br_tables: Vec<BrTarget>,
    ctl: Vec<Ctl>,
    /// Slots of all locals.
    num_locals: u32,
    /// Types of all locals, parameters first.
    local_types: Vec<ValType>,
    /// Slot (relative to `fp`) of each local.
    local_slot: Vec<u32>,
    loops: Vec<PointInfo>,
    calls: Vec<PointInfo>,
    /// Constants of `v128.const` / `i8x16.shuffle`.
    v128_consts: Vec<u128>,
    /// Whether the body uses a SIMD operator or a `v128` local or global.
    uses_v128: bool,
}

/// Slots of the parameters and of the results of a block of type `bt`.
fn block_arity(info: &ModuleInfo, bt: BlockType) -> (u32, u32, u32) {
    match bt {
        BlockType::Empty => (0, 0, 0),
        BlockType::Type(t) => (0, 1, if t == wasmparser::ValType::V128 { 2 } else { 1 }),
        BlockType::FuncType(i) => info
            .types
            .get(i as usize)
            .map(|t| {
                (
                    slot_len(&t.params) as u32,
                    t.results.len() as u32,
                    slot_len(&t.results) as u32,
                )
            })
            .unwrap_or((0, 0, 0)),
    }
}

/// Number of parameters of a block of type `bt`.
fn block_params(info: &ModuleInfo, bt: BlockType) -> u32 {
    match bt {
        BlockType::FuncType(i) => info
            .types
            .get(i as usize)
            .map(|t| t.params.len() as u32)
            .unwrap_or(0),
        _ => 0,
    }
}

/// Whether the operand at `depth` from the top of the validator's stack is a `v128`.
fn operand_is_v128(v: &FuncValidator<ValidatorResources>, depth: usize) -> bool {
    matches!(v.get_operand_type(depth), Some(Some(wasmparser::ValType::V128)))
}

/// Types of the bottom `count` entries of the validator's operand stack.
fn stack_types(v: &FuncValidator<ValidatorResources>, count: u32) -> Box<[ValType]> {
    let h = v.operand_stack_height();
    (0..count.min(h))
        .map(|i| {
            let depth = (h - 1 - i) as usize;
            match v.get_operand_type(depth) {
                // The validator types `ref.func` as a concrete (sub)type of
                // funcref; the state model only has funcref and externref.
                Some(Some(wasmparser::ValType::Ref(r))) => {
                    if r.is_extern_ref() { ValType::ExternRef } else { ValType::FuncRef }
                }
                Some(Some(t)) => conv_valtype(t, 0).unwrap_or(ValType::I32),
                // Only in unreachable code, which never runs.
                _ => ValType::I32,
            }
        })
        .collect()
}

impl<'m> Translator<'m> {
    fn pc(&self) -> u32 {
        self.instrs.len() as u32
    }

    fn emit(&mut self, i: Instr) -> usize {
        self.instrs.push(i);
        self.instrs.len() - 1
    }

    fn patch(&mut self, fix: Fixup, target: u32) {
        match fix {
            Fixup::Table(i) => self.br_tables[i].to = target,
            Fixup::Instr(i) => {
                self.instrs[i] = match self.instrs[i] {
                    Instr::Jump(_) => Instr::Jump(target),
                    Instr::JumpIfZero(_) => Instr::JumpIfZero(target),
                    Instr::JumpIfNonZero(_) => Instr::JumpIfNonZero(target),
                    Instr::Br { keep, base, .. } => Instr::Br {
                        to: target,
                        keep,
                        base,
                    },
                    Instr::BrIf { keep, base, .. } => Instr::BrIf {
                        to: target,
                        keep,
                        base,
                    },
                    other => other,
                }
            }
        }
    }

    /// Describe a branch to relative depth `depth` taken with `height` values
    /// on the operand stack. Must be called before the validator sees the
    /// branch. Returns `(ctl index, keep, base, needs_adjust)`.
    fn branch(
        &self,
        v: &FuncValidator<ValidatorResources>,
        depth: u32,
        height: u32,
    ) -> Option<(usize, BrTarget, bool)> {
        let frame = v.get_control_frame(depth as usize)?;
        let (param_slots, results, result_slots) = block_arity(self.info, frame.block_type);
        let params = block_params(self.info, frame.block_type);
        let (keep, keep_slots) = if frame.kind == FrameKind::Loop {
            (params, param_slots)
        } else {
            (results, result_slots)
        };
        let ctl = self.ctl.len().checked_sub(1 + depth as usize)?;
        let to = if self.ctl[ctl].kind == CtlKind::Loop {
            self.ctl[ctl].start
        } else {
            0
        };
        let fh = frame.height as u32;
        let adjust = height != fh + keep;
        // The frame's height in slots: the slots of the bottom `fh` operands.
        let base_slots = if self.uses_v128 {
            slot_len(&stack_types(v, fh)) as u32
        } else {
            fh
        };
        Some((
            ctl,
            BrTarget {
                to,
                keep: keep_slots,
                base: self.num_locals + base_slots,
            },
            adjust,
        ))
    }

    fn add_fixup(&mut self, ctl: usize, fix: Fixup) {
        if self.ctl[ctl].kind != CtlKind::Loop {
            self.ctl[ctl].fixups.push(fix);
        }
    }
}

/// Translate (and validate) one function body.
pub(crate) fn translate(
    info: &ModuleInfo,
    func_index: u32,
    body: &FunctionBody<'_>,
    mut v: FuncValidator<ValidatorResources>,
) -> Result<FuncCode, Error> {
    let body_offset = body.range().start as usize;
    let fty = info
        .func_type(func_index)
        .ok_or_else(|| Error::new(body_offset, "function without a type"))?;
    let num_params = fty.params.len() as u32;
    let mut local_types: Vec<ValType> = fty.params.clone();

    let mut locals = body.get_locals_reader()?;
    for _ in 0..locals.get_count() {
        let offset = locals.original_position();
        let (count, ty) = locals.read()?;
        v.define_locals(offset, count, ty)?;
        let t = conv_valtype(ty, offset as usize)?;
        local_types.extend(std::iter::repeat_n(t, count as usize));
    }
    let mut local_inits: Vec<u64> = Vec::new();
    for t in &local_types[num_params as usize..] {
        local_inits.push(default_slot(*t));
        if *t == ValType::V128 {
            local_inits.push(0);
        }
    }
    let mut local_slot = Vec::with_capacity(local_types.len());
    let mut at = 0u32;
    for t in &local_types {
        local_slot.push(at);
        at += slots_of(*t) as u32;
    }
    // Whether `v128` values may be on the operand stack: then heights in
    // slots differ from heights in values.
    let uses_v128 = local_types.contains(&ValType::V128)
        || info
            .types
            .iter()
            .any(|t| t.params.contains(&ValType::V128) || t.results.contains(&ValType::V128))
        || (0..info.num_globals() as u32)
            .any(|g| info.global_type(g).is_some_and(|g| g.ty == ValType::V128));

    let mut t = Translator {
        info,
        instrs: Vec::new(),
        br_tables: Vec::new(),
        ctl: vec![Ctl {
            kind: CtlKind::Func,
            start: 0,
            fixups: Vec::new(),
            else_jump: None,
        }],
        num_locals: at,
        local_types: local_types.clone(),
        local_slot,
        loops: Vec::new(),
        calls: Vec::new(),
        v128_consts: Vec::new(),
        uses_v128,
    };
    let mut max_stack = 0u32;

    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        let (op, offset) = reader.read_with_offset()?;
        let height = v.operand_stack_height();
        translate_op(&mut t, &mut v, &op, offset, height)?;
        max_stack = max_stack.max(v.operand_stack_height());
    }
    reader.finish()?;

    // Live locals at every point, for canonical snapshots (dead ones are
    // captured as zero, as compiled code does).
    let live = wanco_state::liveness::analyze(body, num_params)?;
    let all = || LiveSet::all(local_types.len());
    for p in &mut t.loops {
        p.live = live.at_loop(p.offset).cloned().unwrap_or_else(all);
    }
    for p in &mut t.calls {
        p.live = live.at_call(p.offset).cloned().unwrap_or_else(all);
    }

    // A `v128` takes two slots.
    let max_stack = if t.uses_v128 { 2 * max_stack } else { max_stack };
    Ok(FuncCode {
        instrs: t.instrs,
        br_tables: t.br_tables,
        param_slots: slot_len(&fty.params) as u32,
        result_slots: slot_len(&fty.results) as u32,
        local_slots: t.num_locals,
        local_types,
        local_inits,
        max_stack: max_stack + 2,
        v128_consts: t.v128_consts,
        body_offset: body_offset as u32,
        loops: t.loops,
        calls: t.calls,
        entry_live: live.entry,
        has_entry_point: live.has_entry_point,
    })
}

pub(crate) fn mem_offset(m: &wasmparser::MemArg, offset: usize) -> Result<u32, Error> {
    u32::try_from(m.offset).map_err(|_| {
        Error::new(
            offset,
            "memory offset out of range: expected a 32-bit offset",
        )
    })
}

fn translate_op(
    t: &mut Translator<'_>,
    v: &mut FuncValidator<ValidatorResources>,
    op: &Operator<'_>,
    offset: u64,
    height: u32,
) -> Result<(), Error> {
    use Instr as I;
    use Operator as O;
    let off = offset as usize;

    // Operators that need the validator's state from before they are applied.
    match op {
        O::Loop { .. } => {
            let types = stack_types(v, height);
            v.op(offset, op)?;
            let pc = t.emit(I::LoopHeader) as u32;
            t.loops.push(PointInfo {
                pc,
                offset: offset as u32,
                stack: types,
                live: LiveSet::default(),
            });
            t.ctl.push(Ctl {
                kind: CtlKind::Loop,
                start: pc,
                fixups: Vec::new(),
                else_jump: None,
            });
            return Ok(());
        }
        O::Br { relative_depth } => {
            let b = t.branch(v, *relative_depth, height);
            v.op(offset, op)?;
            let (ctl, tg, adjust) = b.ok_or_else(|| Error::new(off, "bad branch depth"))?;
            let pc = if adjust {
                t.emit(I::Br {
                    to: tg.to,
                    keep: tg.keep,
                    base: tg.base,
                })
            } else {
                t.emit(I::Jump(tg.to))
            };
            t.add_fixup(ctl, Fixup::Instr(pc));
            return Ok(());
        }
        O::BrIf { relative_depth } => {
            let b = t.branch(v, *relative_depth, height.saturating_sub(1));
            v.op(offset, op)?;
            let (ctl, tg, adjust) = b.ok_or_else(|| Error::new(off, "bad branch depth"))?;
            let pc = if adjust {
                t.emit(I::BrIf {
                    to: tg.to,
                    keep: tg.keep,
                    base: tg.base,
                })
            } else {
                t.emit(I::JumpIfNonZero(tg.to))
            };
            t.add_fixup(ctl, Fixup::Instr(pc));
            return Ok(());
        }
        O::BrTable { targets } => {
            let mut entries = Vec::new();
            let h = height.saturating_sub(1);
            for d in targets.targets() {
                let d = d?;
                entries.push(t.branch(v, d, h));
            }
            entries.push(t.branch(v, targets.default(), h));
            v.op(offset, op)?;
            let start = t.br_tables.len();
            let len = entries.len() as u32 - 1;
            for e in entries {
                let (ctl, tg, _) = e.ok_or_else(|| Error::new(off, "bad branch depth"))?;
                let idx = t.br_tables.len();
                t.br_tables.push(tg);
                t.add_fixup(ctl, Fixup::Table(idx));
            }
            t.emit(I::BrTable {
                start: start as u32,
                len,
            });
            return Ok(());
        }
        O::Call { function_index } => {
            let n = t
                .info
                .func_type(*function_index)
                .map(|f| f.params.len() as u32)
                .unwrap_or(0);
            let types = stack_types(v, height.saturating_sub(n));
            v.op(offset, op)?;
            let pc = t.emit(I::Call(*function_index)) as u32;
            t.calls.push(PointInfo {
                pc,
                offset: offset as u32,
                stack: types,
                live: LiveSet::default(),
            });
            return Ok(());
        }
        O::CallIndirect {
            type_index,
            table_index,
        } => {
            let n = t
                .info
                .types
                .get(*type_index as usize)
                .map(|f| f.params.len() as u32)
                .unwrap_or(0);
            let types = stack_types(v, height.saturating_sub(n + 1));
            v.op(offset, op)?;
            let pc = t.emit(I::CallIndirect {
                ty: *type_index,
                table: *table_index,
            }) as u32;
            t.calls.push(PointInfo {
                pc,
                offset: offset as u32,
                stack: types,
                live: LiveSet::default(),
            });
            return Ok(());
        }
        O::Drop if operand_is_v128(v, 0) => {
            v.op(offset, op)?;
            t.emit(I::Drop);
            t.emit(I::Drop);
            return Ok(());
        }
        O::Select | O::TypedSelect { .. } if operand_is_v128(v, 1) => {
            v.op(offset, op)?;
            t.emit(I::SelectV128);
            return Ok(());
        }
        _ => {}
    }

    v.op(offset, op)?;

    let instr = match op {
        O::Unreachable => I::Unreachable,
        O::Nop => return Ok(()),
        O::Block { .. } => {
            t.ctl.push(Ctl {
                kind: CtlKind::Block,
                start: 0,
                fixups: Vec::new(),
                else_jump: None,
            });
            return Ok(());
        }
        O::If { .. } => {
            let j = t.emit(I::JumpIfZero(0));
            t.ctl.push(Ctl {
                kind: CtlKind::If,
                start: 0,
                fixups: Vec::new(),
                else_jump: Some(j),
            });
            return Ok(());
        }
        O::Else => {
            let j = t.emit(I::Jump(0));
            let pc = t.pc();
            let c = t.ctl.last_mut().expect("validated");
            c.fixups.push(Fixup::Instr(j));
            c.kind = CtlKind::Else;
            if let Some(e) = c.else_jump.take() {
                t.patch(Fixup::Instr(e), pc);
            }
            return Ok(());
        }
        O::End => {
            let c = t.ctl.pop().expect("validated");
            let target = if t.ctl.is_empty() {
                t.emit(I::Return) as u32
            } else {
                t.pc()
            };
            for f in c.fixups {
                t.patch(f, target);
            }
            if let Some(e) = c.else_jump {
                t.patch(Fixup::Instr(e), target);
            }
            return Ok(());
        }
        O::Return => I::Return,
        O::Drop => I::Drop,
        O::Select | O::TypedSelect { .. } => I::Select,
        O::LocalGet { local_index } | O::LocalSet { local_index } | O::LocalTee { local_index } => {
            let i = *local_index as usize;
            let s = t.local_slot[i];
            let v128 = t.local_types[i] == ValType::V128;
            match (op, v128) {
                (O::LocalGet { .. }, false) => I::LocalGet(s),
                (O::LocalSet { .. }, false) => I::LocalSet(s),
                (_, false) => I::LocalTee(s),
                (O::LocalGet { .. }, true) => {
                    t.emit(I::LocalGet(s));
                    I::LocalGet(s + 1)
                }
                (O::LocalSet { .. }, true) => {
                    t.emit(I::LocalSet(s + 1));
                    I::LocalSet(s)
                }
                (_, true) => I::LocalTeeV128(s),
            }
        }
        O::GlobalGet { global_index } | O::GlobalSet { global_index } => {
            let v128 = t
                .info
                .global_type(*global_index)
                .is_some_and(|g| g.ty == ValType::V128);
            match (op, v128) {
                (O::GlobalGet { .. }, false) => I::GlobalGet(*global_index),
                (_, false) => I::GlobalSet(*global_index),
                (O::GlobalGet { .. }, true) => I::GlobalGetV128(*global_index),
                (_, true) => I::GlobalSetV128(*global_index),
            }
        }
        O::TableGet { table } => I::TableGet(*table),
        O::TableSet { table } => I::TableSet(*table),
        O::TableSize { table } => I::TableSize(*table),
        O::TableGrow { table } => I::TableGrow(*table),
        O::TableFill { table } => I::TableFill(*table),
        O::TableCopy {
            dst_table,
            src_table,
        } => I::TableCopy {
            dst: *dst_table,
            src: *src_table,
        },
        O::TableInit { elem_index, table } => I::TableInit {
            table: *table,
            elem: *elem_index,
        },
        O::ElemDrop { elem_index } => I::ElemDrop(*elem_index),
        O::I32Load { memarg } => I::I32Load(mem_offset(memarg, off)?),
        O::I64Load { memarg } => I::I64Load(mem_offset(memarg, off)?),
        O::F32Load { memarg } => I::F32Load(mem_offset(memarg, off)?),
        O::F64Load { memarg } => I::F64Load(mem_offset(memarg, off)?),
        O::I32Load8S { memarg } => I::I32Load8S(mem_offset(memarg, off)?),
        O::I32Load8U { memarg } => I::I32Load8U(mem_offset(memarg, off)?),
        O::I32Load16S { memarg } => I::I32Load16S(mem_offset(memarg, off)?),
        O::I32Load16U { memarg } => I::I32Load16U(mem_offset(memarg, off)?),
        O::I64Load8S { memarg } => I::I64Load8S(mem_offset(memarg, off)?),
        O::I64Load8U { memarg } => I::I64Load8U(mem_offset(memarg, off)?),
        O::I64Load16S { memarg } => I::I64Load16S(mem_offset(memarg, off)?),
        O::I64Load16U { memarg } => I::I64Load16U(mem_offset(memarg, off)?),
        O::I64Load32S { memarg } => I::I64Load32S(mem_offset(memarg, off)?),
        O::I64Load32U { memarg } => I::I64Load32U(mem_offset(memarg, off)?),
        O::I32Store { memarg } => I::I32Store(mem_offset(memarg, off)?),
        O::I64Store { memarg } => I::I64Store(mem_offset(memarg, off)?),
        O::F32Store { memarg } => I::F32Store(mem_offset(memarg, off)?),
        O::F64Store { memarg } => I::F64Store(mem_offset(memarg, off)?),
        O::I32Store8 { memarg } => I::I32Store8(mem_offset(memarg, off)?),
        O::I32Store16 { memarg } => I::I32Store16(mem_offset(memarg, off)?),
        O::I64Store8 { memarg } => I::I64Store8(mem_offset(memarg, off)?),
        O::I64Store16 { memarg } => I::I64Store16(mem_offset(memarg, off)?),
        O::I64Store32 { memarg } => I::I64Store32(mem_offset(memarg, off)?),
        O::MemorySize { .. } => I::MemorySize,
        O::MemoryGrow { .. } => I::MemoryGrow,
        O::MemoryFill { .. } => I::MemoryFill,
        O::MemoryCopy { .. } => I::MemoryCopy,
        O::MemoryInit { data_index, .. } => I::MemoryInit(*data_index),
        O::DataDrop { data_index } => I::DataDrop(*data_index),
        O::I32Const { value } => I::Const(*value as u32 as u64),
        O::I64Const { value } => I::Const(*value as u64),
        O::F32Const { value } => I::Const(value.bits() as u64),
        O::F64Const { value } => I::Const(value.bits()),
        O::RefNull { .. } => I::Const(NULL_REF),
        O::RefIsNull => I::RefIsNull,
        O::RefFunc { function_index } => I::RefFunc(*function_index),
        O::I32ReinterpretF32
        | O::I64ReinterpretF64
        | O::F32ReinterpretI32
        | O::F64ReinterpretI64 => return Ok(()),
        other => match simple(other) {
            Some(i) => i,
            None => match simd_op(other, &mut t.v128_consts, off)? {
                Some((op, lane, imm)) => {
                    t.uses_v128 = true;
                    I::Simd { op, lane, imm }
                }
                None => {
                    return Err(Error::new(
                        off,
                        "unsupported operator: expected a Wasm 2.0 instruction",
                    ))
                }
            },
        },
    };
    t.emit(instr);
    Ok(())
}

macro_rules! simple_ops {
    ($($name:ident)*) => {
        fn simple(op: &Operator<'_>) -> Option<Instr> {
            Some(match op {
                $(Operator::$name => Instr::$name,)*
                _ => return None,
            })
        }
    };
}

simple_ops! {
    I32Eqz I32Eq I32Ne I32LtS I32LtU I32GtS I32GtU I32LeS I32LeU I32GeS I32GeU
    I64Eqz I64Eq I64Ne I64LtS I64LtU I64GtS I64GtU I64LeS I64LeU I64GeS I64GeU
    F32Eq F32Ne F32Lt F32Gt F32Le F32Ge
    F64Eq F64Ne F64Lt F64Gt F64Le F64Ge
    I32Clz I32Ctz I32Popcnt I32Add I32Sub I32Mul I32DivS I32DivU I32RemS I32RemU
    I32And I32Or I32Xor I32Shl I32ShrS I32ShrU I32Rotl I32Rotr
    I64Clz I64Ctz I64Popcnt I64Add I64Sub I64Mul I64DivS I64DivU I64RemS I64RemU
    I64And I64Or I64Xor I64Shl I64ShrS I64ShrU I64Rotl I64Rotr
    F32Abs F32Neg F32Ceil F32Floor F32Trunc F32Nearest F32Sqrt
    F32Add F32Sub F32Mul F32Div F32Min F32Max F32Copysign
    F64Abs F64Neg F64Ceil F64Floor F64Trunc F64Nearest F64Sqrt
    F64Add F64Sub F64Mul F64Div F64Min F64Max F64Copysign
    I32WrapI64 I32TruncF32S I32TruncF32U I32TruncF64S I32TruncF64U
    I64ExtendI32S I64ExtendI32U I64TruncF32S I64TruncF32U I64TruncF64S I64TruncF64U
    F32ConvertI32S F32ConvertI32U F32ConvertI64S F32ConvertI64U F32DemoteF64
    F64ConvertI32S F64ConvertI32U F64ConvertI64S F64ConvertI64U F64PromoteF32
    I32Extend8S I32Extend16S I64Extend8S I64Extend16S I64Extend32S
    I32TruncSatF32S I32TruncSatF32U I32TruncSatF64S I32TruncSatF64U
    I64TruncSatF32S I64TruncSatF32U I64TruncSatF64S I64TruncSatF64U
}
