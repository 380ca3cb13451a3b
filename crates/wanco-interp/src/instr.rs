//! The internal instruction set the interpreter executes.
//!
//! Function bodies are translated once, at module load, into an array of
//! [`Instr`]. Branch targets are resolved to instruction indices and carry the
//! stack adjustment they need, so execution never looks at Wasm bytes and
//! needs no control stack: the operand stack of a frame at run time is exactly
//! the Wasm operand stack of that function (all enclosing blocks included),
//! which is what makes its state expressible at every migration point.
//!
//! Locals are addressed relative to the frame pointer `fp` (the index in the
//! value stack of local 0). Branch "bases" are relative to `fp` as well.
//!
//! The value stack is made of 8-byte slots; a `v128` takes two (low half at
//! the lower index, see [`crate::simd`]). Local indices, branch bases and
//! `keep` counts of instructions are in slots, so scalar code runs exactly
//! as without SIMD.

use wanco_state::liveness::LiveSet;
use wanco_state::ValType;

/// Value of a null reference in a value-stack slot.
pub(crate) const NULL_REF: u64 = u64::MAX;

/// One internal instruction. `Copy` and 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)]
pub(crate) enum Instr {
    // ---- control ----
    Unreachable,
    /// A loop header: a migration point. Branches to the loop target this
    /// instruction, so every iteration crosses it.
    LoopHeader,
    /// Unconditional jump, no stack adjustment.
    Jump(u32),
    /// Pop an i32; jump if it is zero (`if`).
    JumpIfZero(u32),
    /// Pop an i32; jump if it is non-zero (`br_if` without stack adjustment).
    JumpIfNonZero(u32),
    /// Branch: keep the top `keep` values, drop down to `fp + base`, jump.
    Br {
        to: u32,
        keep: u32,
        base: u32,
    },
    /// Pop an i32; if non-zero, branch as [`Instr::Br`].
    BrIf {
        to: u32,
        keep: u32,
        base: u32,
    },
    /// Pop an index; branch to `br_tables[start + min(index, len)]`.
    BrTable {
        start: u32,
        len: u32,
    },
    /// Return the top `n` values (`n` = result count of the function).
    Return,
    /// Call function `index` of the current instance.
    Call(u32),
    /// Indirect call through `table` with the expected type index `ty`.
    CallIndirect {
        ty: u32,
        table: u32,
    },

    // ---- parametric / variables ----
    Drop,
    Select,
    /// `select` of two `v128`s.
    SelectV128,
    /// `local.tee` of a `v128` local (whose low slot is the operand).
    LocalTeeV128(u32),
    /// `global.get` of a `v128` global.
    GlobalGetV128(u32),
    /// `global.set` of a `v128` global.
    GlobalSetV128(u32),
    /// A SIMD operator: `lane` is its lane index, `imm` its static memory
    /// offset or the index of its `v128` in [`FuncCode::v128_consts`].
    Simd {
        op: crate::simd::SimdOp,
        lane: u8,
        imm: u32,
    },
    LocalGet(u32),
    LocalSet(u32),
    LocalTee(u32),
    GlobalGet(u32),
    GlobalSet(u32),

    // ---- tables ----
    TableGet(u32),
    TableSet(u32),
    TableSize(u32),
    TableGrow(u32),
    TableFill(u32),
    TableCopy {
        dst: u32,
        src: u32,
    },
    TableInit {
        table: u32,
        elem: u32,
    },
    ElemDrop(u32),

    // ---- memory (the u32 is the static offset) ----
    I32Load(u32),
    I64Load(u32),
    F32Load(u32),
    F64Load(u32),
    I32Load8S(u32),
    I32Load8U(u32),
    I32Load16S(u32),
    I32Load16U(u32),
    I64Load8S(u32),
    I64Load8U(u32),
    I64Load16S(u32),
    I64Load16U(u32),
    I64Load32S(u32),
    I64Load32U(u32),
    I32Store(u32),
    I64Store(u32),
    F32Store(u32),
    F64Store(u32),
    I32Store8(u32),
    I32Store16(u32),
    I64Store8(u32),
    I64Store16(u32),
    I64Store32(u32),
    MemorySize,
    MemoryGrow,
    MemoryFill,
    MemoryCopy,
    MemoryInit(u32),
    DataDrop(u32),

    // ---- constants and references ----
    /// Push a raw slot value (any type, floats as bits, null as `NULL_REF`).
    Const(u64),
    RefIsNull,
    RefFunc(u32),

    // ---- numeric ----
    I32Eqz,
    I32Eq,
    I32Ne,
    I32LtS,
    I32LtU,
    I32GtS,
    I32GtU,
    I32LeS,
    I32LeU,
    I32GeS,
    I32GeU,
    I64Eqz,
    I64Eq,
    I64Ne,
    I64LtS,
    I64LtU,
    I64GtS,
    I64GtU,
    I64LeS,
    I64LeU,
    I64GeS,
    I64GeU,
    F32Eq,
    F32Ne,
    F32Lt,
    F32Gt,
    F32Le,
    F32Ge,
    F64Eq,
    F64Ne,
    F64Lt,
    F64Gt,
    F64Le,
    F64Ge,
    I32Clz,
    I32Ctz,
    I32Popcnt,
    I32Add,
    I32Sub,
    I32Mul,
    I32DivS,
    I32DivU,
    I32RemS,
    I32RemU,
    I32And,
    I32Or,
    I32Xor,
    I32Shl,
    I32ShrS,
    I32ShrU,
    I32Rotl,
    I32Rotr,
    I64Clz,
    I64Ctz,
    I64Popcnt,
    I64Add,
    I64Sub,
    I64Mul,
    I64DivS,
    I64DivU,
    I64RemS,
    I64RemU,
    I64And,
    I64Or,
    I64Xor,
    I64Shl,
    I64ShrS,
    I64ShrU,
    I64Rotl,
    I64Rotr,
    F32Abs,
    F32Neg,
    F32Ceil,
    F32Floor,
    F32Trunc,
    F32Nearest,
    F32Sqrt,
    F32Add,
    F32Sub,
    F32Mul,
    F32Div,
    F32Min,
    F32Max,
    F32Copysign,
    F64Abs,
    F64Neg,
    F64Ceil,
    F64Floor,
    F64Trunc,
    F64Nearest,
    F64Sqrt,
    F64Add,
    F64Sub,
    F64Mul,
    F64Div,
    F64Min,
    F64Max,
    F64Copysign,
    I32WrapI64,
    I32TruncF32S,
    I32TruncF32U,
    I32TruncF64S,
    I32TruncF64U,
    I64ExtendI32S,
    I64ExtendI32U,
    I64TruncF32S,
    I64TruncF32U,
    I64TruncF64S,
    I64TruncF64U,
    F32ConvertI32S,
    F32ConvertI32U,
    F32ConvertI64S,
    F32ConvertI64U,
    F32DemoteF64,
    F64ConvertI32S,
    F64ConvertI32U,
    F64ConvertI64S,
    F64ConvertI64U,
    F64PromoteF32,
    I32Extend8S,
    I32Extend16S,
    I64Extend8S,
    I64Extend16S,
    I64Extend32S,
    I32TruncSatF32S,
    I32TruncSatF32U,
    I32TruncSatF64S,
    I32TruncSatF64U,
    I64TruncSatF32S,
    I64TruncSatF32U,
    I64TruncSatF64S,
    I64TruncSatF64U,
}

/// One entry of a `br_table`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BrTarget {
    /// Target instruction.
    pub to: u32,
    /// Values carried.
    pub keep: u32,
    /// Height (relative to `fp`) to drop to.
    pub base: u32,
}

/// Static description of a point in a function where a frame's state is
/// observable: a loop header or a call site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PointInfo {
    /// Index of the `LoopHeader` / `Call` / `CallIndirect` instruction.
    pub pc: u32,
    /// Byte offset in the module of the `loop` / `call` / `call_indirect` opcode.
    pub offset: u32,
    /// Types of the operand stack at the point (bottom first). For call
    /// sites: the values below the call's arguments.
    pub stack: Box<[ValType]>,
    /// Locals live at the point (for a call: when it returns); the others
    /// are captured as zero ([`wanco_state::liveness`]).
    pub live: LiveSet,
}

/// A translated function body.
#[derive(Clone, Debug)]
pub(crate) struct FuncCode {
    /// Instructions; the last one is a `Return`.
    pub instrs: Vec<Instr>,
    /// Entries of every `br_table`, default last.
    pub br_tables: Vec<BrTarget>,
    /// Number of value-stack slots of the parameters.
    pub param_slots: u32,
    /// Number of value-stack slots of the results.
    pub result_slots: u32,
    /// Types of all locals, parameters first.
    pub local_types: Vec<ValType>,
    /// Number of value-stack slots of all locals.
    pub local_slots: u32,
    /// Initial slot values of the non-parameter locals.
    pub local_inits: Vec<u64>,
    /// Largest operand stack height (in slots) the body reaches, or more.
    pub max_stack: u32,
    /// Constants of `v128.const` and lane indices of `i8x16.shuffle`.
    pub v128_consts: Vec<u128>,
    /// Byte offset in the module of the body (just after its size field):
    /// the code offset of the function-entry migration point.
    pub body_offset: u32,
    /// Loop headers, by increasing `pc`.
    pub loops: Vec<PointInfo>,
    /// Call sites, by increasing `pc`.
    pub calls: Vec<PointInfo>,
    /// Locals live at the function-entry point.
    pub entry_live: LiveSet,
    /// Whether the function has an entry migration point (its body has a
    /// `loop` or a call: [`wanco_state::liveness::needs_entry_point`]).
    pub has_entry_point: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn instr_is_16_bytes() {
        assert_eq!(std::mem::size_of::<super::Instr>(), 16);
    }
}
