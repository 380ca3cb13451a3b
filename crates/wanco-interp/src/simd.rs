//! 128-bit SIMD: the operators of the fixed-width SIMD proposal, lane by
//! lane in portable Rust.
//!
//! A `v128` takes two 8-byte slots of the value stack: its low 64 bits (lanes
//! 0.. in memory order) at the lower index, its high 64 bits above. The value
//! as a `u128` is the 16 bytes as Wasm stores them in memory, read little
//! endian (as `wanco_state::Value::V128`). Float lanes follow the scalar
//! rules of the interpreter ([`crate::num`]): NaN results are arithmetic NaNs
//! (canonical when no operand is a NaN).

use crate::compile::mem_offset;
use crate::error::Error;
use crate::exec::{load, store};
use crate::num::{fmax32, fmax64, fmin32, fmin64, nearest32, nearest64, quiet};
use wanco_state::abi::TrapCode;
use wanco_state::LaneShape;
use wasmparser::Operator;

/// A SIMD operator (the names of wasmparser's `Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub(crate) enum SimdOp {
    V128Load,
    V128Load8x8S,
    V128Load8x8U,
    V128Load16x4S,
    V128Load16x4U,
    V128Load32x2S,
    V128Load32x2U,
    V128Load8Splat,
    V128Load16Splat,
    V128Load32Splat,
    V128Load64Splat,
    V128Load32Zero,
    V128Load64Zero,
    V128Store,
    V128Load8Lane,
    V128Load16Lane,
    V128Load32Lane,
    V128Load64Lane,
    V128Store8Lane,
    V128Store16Lane,
    V128Store32Lane,
    V128Store64Lane,
    V128Const,
    I8x16Shuffle,
    I8x16ExtractLaneS,
    I8x16ExtractLaneU,
    I8x16ReplaceLane,
    I16x8ExtractLaneS,
    I16x8ExtractLaneU,
    I16x8ReplaceLane,
    I32x4ExtractLane,
    I32x4ReplaceLane,
    I64x2ExtractLane,
    I64x2ReplaceLane,
    F32x4ExtractLane,
    F32x4ReplaceLane,
    F64x2ExtractLane,
    F64x2ReplaceLane,
    I8x16Swizzle,
    I8x16Splat,
    I16x8Splat,
    I32x4Splat,
    I64x2Splat,
    F32x4Splat,
    F64x2Splat,
    I8x16Eq,
    I8x16Ne,
    I8x16LtS,
    I8x16LtU,
    I8x16GtS,
    I8x16GtU,
    I8x16LeS,
    I8x16LeU,
    I8x16GeS,
    I8x16GeU,
    I16x8Eq,
    I16x8Ne,
    I16x8LtS,
    I16x8LtU,
    I16x8GtS,
    I16x8GtU,
    I16x8LeS,
    I16x8LeU,
    I16x8GeS,
    I16x8GeU,
    I32x4Eq,
    I32x4Ne,
    I32x4LtS,
    I32x4LtU,
    I32x4GtS,
    I32x4GtU,
    I32x4LeS,
    I32x4LeU,
    I32x4GeS,
    I32x4GeU,
    I64x2Eq,
    I64x2Ne,
    I64x2LtS,
    I64x2GtS,
    I64x2LeS,
    I64x2GeS,
    F32x4Eq,
    F32x4Ne,
    F32x4Lt,
    F32x4Gt,
    F32x4Le,
    F32x4Ge,
    F64x2Eq,
    F64x2Ne,
    F64x2Lt,
    F64x2Gt,
    F64x2Le,
    F64x2Ge,
    V128Not,
    V128And,
    V128AndNot,
    V128Or,
    V128Xor,
    V128Bitselect,
    V128AnyTrue,
    I8x16Abs,
    I8x16Neg,
    I8x16Popcnt,
    I8x16AllTrue,
    I8x16Bitmask,
    I8x16NarrowI16x8S,
    I8x16NarrowI16x8U,
    I8x16Shl,
    I8x16ShrS,
    I8x16ShrU,
    I8x16Add,
    I8x16AddSatS,
    I8x16AddSatU,
    I8x16Sub,
    I8x16SubSatS,
    I8x16SubSatU,
    I8x16MinS,
    I8x16MinU,
    I8x16MaxS,
    I8x16MaxU,
    I8x16AvgrU,
    I16x8ExtAddPairwiseI8x16S,
    I16x8ExtAddPairwiseI8x16U,
    I16x8Abs,
    I16x8Neg,
    I16x8Q15MulrSatS,
    I16x8AllTrue,
    I16x8Bitmask,
    I16x8NarrowI32x4S,
    I16x8NarrowI32x4U,
    I16x8ExtendLowI8x16S,
    I16x8ExtendHighI8x16S,
    I16x8ExtendLowI8x16U,
    I16x8ExtendHighI8x16U,
    I16x8Shl,
    I16x8ShrS,
    I16x8ShrU,
    I16x8Add,
    I16x8AddSatS,
    I16x8AddSatU,
    I16x8Sub,
    I16x8SubSatS,
    I16x8SubSatU,
    I16x8Mul,
    I16x8MinS,
    I16x8MinU,
    I16x8MaxS,
    I16x8MaxU,
    I16x8AvgrU,
    I16x8ExtMulLowI8x16S,
    I16x8ExtMulHighI8x16S,
    I16x8ExtMulLowI8x16U,
    I16x8ExtMulHighI8x16U,
    I32x4ExtAddPairwiseI16x8S,
    I32x4ExtAddPairwiseI16x8U,
    I32x4Abs,
    I32x4Neg,
    I32x4AllTrue,
    I32x4Bitmask,
    I32x4ExtendLowI16x8S,
    I32x4ExtendHighI16x8S,
    I32x4ExtendLowI16x8U,
    I32x4ExtendHighI16x8U,
    I32x4Shl,
    I32x4ShrS,
    I32x4ShrU,
    I32x4Add,
    I32x4Sub,
    I32x4Mul,
    I32x4MinS,
    I32x4MinU,
    I32x4MaxS,
    I32x4MaxU,
    I32x4DotI16x8S,
    I32x4ExtMulLowI16x8S,
    I32x4ExtMulHighI16x8S,
    I32x4ExtMulLowI16x8U,
    I32x4ExtMulHighI16x8U,
    I64x2Abs,
    I64x2Neg,
    I64x2AllTrue,
    I64x2Bitmask,
    I64x2ExtendLowI32x4S,
    I64x2ExtendHighI32x4S,
    I64x2ExtendLowI32x4U,
    I64x2ExtendHighI32x4U,
    I64x2Shl,
    I64x2ShrS,
    I64x2ShrU,
    I64x2Add,
    I64x2Sub,
    I64x2Mul,
    I64x2ExtMulLowI32x4S,
    I64x2ExtMulHighI32x4S,
    I64x2ExtMulLowI32x4U,
    I64x2ExtMulHighI32x4U,
    F32x4Ceil,
    F32x4Floor,
    F32x4Trunc,
    F32x4Nearest,
    F32x4Abs,
    F32x4Neg,
    F32x4Sqrt,
    F32x4Add,
    F32x4Sub,
    F32x4Mul,
    F32x4Div,
    F32x4Min,
    F32x4Max,
    F32x4PMin,
    F32x4PMax,
    F64x2Ceil,
    F64x2Floor,
    F64x2Trunc,
    F64x2Nearest,
    F64x2Abs,
    F64x2Neg,
    F64x2Sqrt,
    F64x2Add,
    F64x2Sub,
    F64x2Mul,
    F64x2Div,
    F64x2Min,
    F64x2Max,
    F64x2PMin,
    F64x2PMax,
    I32x4TruncSatF32x4S,
    I32x4TruncSatF32x4U,
    F32x4ConvertI32x4S,
    F32x4ConvertI32x4U,
    I32x4TruncSatF64x2SZero,
    I32x4TruncSatF64x2UZero,
    F64x2ConvertLowI32x4S,
    F64x2ConvertLowI32x4U,
    F32x4DemoteF64x2Zero,
    F64x2PromoteLowF32x4,
}

/// The SIMD operator `op` as `(op, lane, immediate)`: the immediate is the
/// static offset of memory operators, or the index in the function's
/// constant pool of `v128.const` and `i8x16.shuffle` (`pool` collects them).
pub(crate) fn simd_op(op: &Operator<'_>, pool: &mut Vec<u128>, offset: usize) -> Result<Option<(SimdOp, u8, u32)>, Error> {
    use Operator as O;
    use SimdOp as S;
    Ok(Some(match op {
        O::V128Load { memarg } => (S::V128Load, 0, mem_offset(memarg, offset)?),
        O::V128Load8x8S { memarg } => (S::V128Load8x8S, 0, mem_offset(memarg, offset)?),
        O::V128Load8x8U { memarg } => (S::V128Load8x8U, 0, mem_offset(memarg, offset)?),
        O::V128Load16x4S { memarg } => (S::V128Load16x4S, 0, mem_offset(memarg, offset)?),
        O::V128Load16x4U { memarg } => (S::V128Load16x4U, 0, mem_offset(memarg, offset)?),
        O::V128Load32x2S { memarg } => (S::V128Load32x2S, 0, mem_offset(memarg, offset)?),
        O::V128Load32x2U { memarg } => (S::V128Load32x2U, 0, mem_offset(memarg, offset)?),
        O::V128Load8Splat { memarg } => (S::V128Load8Splat, 0, mem_offset(memarg, offset)?),
        O::V128Load16Splat { memarg } => (S::V128Load16Splat, 0, mem_offset(memarg, offset)?),
        O::V128Load32Splat { memarg } => (S::V128Load32Splat, 0, mem_offset(memarg, offset)?),
        O::V128Load64Splat { memarg } => (S::V128Load64Splat, 0, mem_offset(memarg, offset)?),
        O::V128Load32Zero { memarg } => (S::V128Load32Zero, 0, mem_offset(memarg, offset)?),
        O::V128Load64Zero { memarg } => (S::V128Load64Zero, 0, mem_offset(memarg, offset)?),
        O::V128Store { memarg } => (S::V128Store, 0, mem_offset(memarg, offset)?),
        O::V128Load8Lane { memarg, lane } => (S::V128Load8Lane, *lane, mem_offset(memarg, offset)?),
        O::V128Load16Lane { memarg, lane } => (S::V128Load16Lane, *lane, mem_offset(memarg, offset)?),
        O::V128Load32Lane { memarg, lane } => (S::V128Load32Lane, *lane, mem_offset(memarg, offset)?),
        O::V128Load64Lane { memarg, lane } => (S::V128Load64Lane, *lane, mem_offset(memarg, offset)?),
        O::V128Store8Lane { memarg, lane } => (S::V128Store8Lane, *lane, mem_offset(memarg, offset)?),
        O::V128Store16Lane { memarg, lane } => (S::V128Store16Lane, *lane, mem_offset(memarg, offset)?),
        O::V128Store32Lane { memarg, lane } => (S::V128Store32Lane, *lane, mem_offset(memarg, offset)?),
        O::V128Store64Lane { memarg, lane } => (S::V128Store64Lane, *lane, mem_offset(memarg, offset)?),
        O::V128Const { value } => (S::V128Const, 0, pool_add(pool, value.i128() as u128)),
        O::I8x16Shuffle { lanes } => (S::I8x16Shuffle, 0, pool_add(pool, u128::from_le_bytes(*lanes))),
        O::I8x16ExtractLaneS { lane } => (S::I8x16ExtractLaneS, *lane, 0),
        O::I8x16ExtractLaneU { lane } => (S::I8x16ExtractLaneU, *lane, 0),
        O::I8x16ReplaceLane { lane } => (S::I8x16ReplaceLane, *lane, 0),
        O::I16x8ExtractLaneS { lane } => (S::I16x8ExtractLaneS, *lane, 0),
        O::I16x8ExtractLaneU { lane } => (S::I16x8ExtractLaneU, *lane, 0),
        O::I16x8ReplaceLane { lane } => (S::I16x8ReplaceLane, *lane, 0),
        O::I32x4ExtractLane { lane } => (S::I32x4ExtractLane, *lane, 0),
        O::I32x4ReplaceLane { lane } => (S::I32x4ReplaceLane, *lane, 0),
        O::I64x2ExtractLane { lane } => (S::I64x2ExtractLane, *lane, 0),
        O::I64x2ReplaceLane { lane } => (S::I64x2ReplaceLane, *lane, 0),
        O::F32x4ExtractLane { lane } => (S::F32x4ExtractLane, *lane, 0),
        O::F32x4ReplaceLane { lane } => (S::F32x4ReplaceLane, *lane, 0),
        O::F64x2ExtractLane { lane } => (S::F64x2ExtractLane, *lane, 0),
        O::F64x2ReplaceLane { lane } => (S::F64x2ReplaceLane, *lane, 0),
        O::I8x16Swizzle => S::I8x16Swizzle.into_triple(),
        O::I8x16Splat => S::I8x16Splat.into_triple(),
        O::I16x8Splat => S::I16x8Splat.into_triple(),
        O::I32x4Splat => S::I32x4Splat.into_triple(),
        O::I64x2Splat => S::I64x2Splat.into_triple(),
        O::F32x4Splat => S::F32x4Splat.into_triple(),
        O::F64x2Splat => S::F64x2Splat.into_triple(),
        O::I8x16Eq => S::I8x16Eq.into_triple(),
        O::I8x16Ne => S::I8x16Ne.into_triple(),
        O::I8x16LtS => S::I8x16LtS.into_triple(),
        O::I8x16LtU => S::I8x16LtU.into_triple(),
        O::I8x16GtS => S::I8x16GtS.into_triple(),
        O::I8x16GtU => S::I8x16GtU.into_triple(),
        O::I8x16LeS => S::I8x16LeS.into_triple(),
        O::I8x16LeU => S::I8x16LeU.into_triple(),
        O::I8x16GeS => S::I8x16GeS.into_triple(),
        O::I8x16GeU => S::I8x16GeU.into_triple(),
        O::I16x8Eq => S::I16x8Eq.into_triple(),
        O::I16x8Ne => S::I16x8Ne.into_triple(),
        O::I16x8LtS => S::I16x8LtS.into_triple(),
        O::I16x8LtU => S::I16x8LtU.into_triple(),
        O::I16x8GtS => S::I16x8GtS.into_triple(),
        O::I16x8GtU => S::I16x8GtU.into_triple(),
        O::I16x8LeS => S::I16x8LeS.into_triple(),
        O::I16x8LeU => S::I16x8LeU.into_triple(),
        O::I16x8GeS => S::I16x8GeS.into_triple(),
        O::I16x8GeU => S::I16x8GeU.into_triple(),
        O::I32x4Eq => S::I32x4Eq.into_triple(),
        O::I32x4Ne => S::I32x4Ne.into_triple(),
        O::I32x4LtS => S::I32x4LtS.into_triple(),
        O::I32x4LtU => S::I32x4LtU.into_triple(),
        O::I32x4GtS => S::I32x4GtS.into_triple(),
        O::I32x4GtU => S::I32x4GtU.into_triple(),
        O::I32x4LeS => S::I32x4LeS.into_triple(),
        O::I32x4LeU => S::I32x4LeU.into_triple(),
        O::I32x4GeS => S::I32x4GeS.into_triple(),
        O::I32x4GeU => S::I32x4GeU.into_triple(),
        O::I64x2Eq => S::I64x2Eq.into_triple(),
        O::I64x2Ne => S::I64x2Ne.into_triple(),
        O::I64x2LtS => S::I64x2LtS.into_triple(),
        O::I64x2GtS => S::I64x2GtS.into_triple(),
        O::I64x2LeS => S::I64x2LeS.into_triple(),
        O::I64x2GeS => S::I64x2GeS.into_triple(),
        O::F32x4Eq => S::F32x4Eq.into_triple(),
        O::F32x4Ne => S::F32x4Ne.into_triple(),
        O::F32x4Lt => S::F32x4Lt.into_triple(),
        O::F32x4Gt => S::F32x4Gt.into_triple(),
        O::F32x4Le => S::F32x4Le.into_triple(),
        O::F32x4Ge => S::F32x4Ge.into_triple(),
        O::F64x2Eq => S::F64x2Eq.into_triple(),
        O::F64x2Ne => S::F64x2Ne.into_triple(),
        O::F64x2Lt => S::F64x2Lt.into_triple(),
        O::F64x2Gt => S::F64x2Gt.into_triple(),
        O::F64x2Le => S::F64x2Le.into_triple(),
        O::F64x2Ge => S::F64x2Ge.into_triple(),
        O::V128Not => S::V128Not.into_triple(),
        O::V128And => S::V128And.into_triple(),
        O::V128AndNot => S::V128AndNot.into_triple(),
        O::V128Or => S::V128Or.into_triple(),
        O::V128Xor => S::V128Xor.into_triple(),
        O::V128Bitselect => S::V128Bitselect.into_triple(),
        O::V128AnyTrue => S::V128AnyTrue.into_triple(),
        O::I8x16Abs => S::I8x16Abs.into_triple(),
        O::I8x16Neg => S::I8x16Neg.into_triple(),
        O::I8x16Popcnt => S::I8x16Popcnt.into_triple(),
        O::I8x16AllTrue => S::I8x16AllTrue.into_triple(),
        O::I8x16Bitmask => S::I8x16Bitmask.into_triple(),
        O::I8x16NarrowI16x8S => S::I8x16NarrowI16x8S.into_triple(),
        O::I8x16NarrowI16x8U => S::I8x16NarrowI16x8U.into_triple(),
        O::I8x16Shl => S::I8x16Shl.into_triple(),
        O::I8x16ShrS => S::I8x16ShrS.into_triple(),
        O::I8x16ShrU => S::I8x16ShrU.into_triple(),
        O::I8x16Add => S::I8x16Add.into_triple(),
        O::I8x16AddSatS => S::I8x16AddSatS.into_triple(),
        O::I8x16AddSatU => S::I8x16AddSatU.into_triple(),
        O::I8x16Sub => S::I8x16Sub.into_triple(),
        O::I8x16SubSatS => S::I8x16SubSatS.into_triple(),
        O::I8x16SubSatU => S::I8x16SubSatU.into_triple(),
        O::I8x16MinS => S::I8x16MinS.into_triple(),
        O::I8x16MinU => S::I8x16MinU.into_triple(),
        O::I8x16MaxS => S::I8x16MaxS.into_triple(),
        O::I8x16MaxU => S::I8x16MaxU.into_triple(),
        O::I8x16AvgrU => S::I8x16AvgrU.into_triple(),
        O::I16x8ExtAddPairwiseI8x16S => S::I16x8ExtAddPairwiseI8x16S.into_triple(),
        O::I16x8ExtAddPairwiseI8x16U => S::I16x8ExtAddPairwiseI8x16U.into_triple(),
        O::I16x8Abs => S::I16x8Abs.into_triple(),
        O::I16x8Neg => S::I16x8Neg.into_triple(),
        O::I16x8Q15MulrSatS => S::I16x8Q15MulrSatS.into_triple(),
        O::I16x8AllTrue => S::I16x8AllTrue.into_triple(),
        O::I16x8Bitmask => S::I16x8Bitmask.into_triple(),
        O::I16x8NarrowI32x4S => S::I16x8NarrowI32x4S.into_triple(),
        O::I16x8NarrowI32x4U => S::I16x8NarrowI32x4U.into_triple(),
        O::I16x8ExtendLowI8x16S => S::I16x8ExtendLowI8x16S.into_triple(),
        O::I16x8ExtendHighI8x16S => S::I16x8ExtendHighI8x16S.into_triple(),
        O::I16x8ExtendLowI8x16U => S::I16x8ExtendLowI8x16U.into_triple(),
        O::I16x8ExtendHighI8x16U => S::I16x8ExtendHighI8x16U.into_triple(),
        O::I16x8Shl => S::I16x8Shl.into_triple(),
        O::I16x8ShrS => S::I16x8ShrS.into_triple(),
        O::I16x8ShrU => S::I16x8ShrU.into_triple(),
        O::I16x8Add => S::I16x8Add.into_triple(),
        O::I16x8AddSatS => S::I16x8AddSatS.into_triple(),
        O::I16x8AddSatU => S::I16x8AddSatU.into_triple(),
        O::I16x8Sub => S::I16x8Sub.into_triple(),
        O::I16x8SubSatS => S::I16x8SubSatS.into_triple(),
        O::I16x8SubSatU => S::I16x8SubSatU.into_triple(),
        O::I16x8Mul => S::I16x8Mul.into_triple(),
        O::I16x8MinS => S::I16x8MinS.into_triple(),
        O::I16x8MinU => S::I16x8MinU.into_triple(),
        O::I16x8MaxS => S::I16x8MaxS.into_triple(),
        O::I16x8MaxU => S::I16x8MaxU.into_triple(),
        O::I16x8AvgrU => S::I16x8AvgrU.into_triple(),
        O::I16x8ExtMulLowI8x16S => S::I16x8ExtMulLowI8x16S.into_triple(),
        O::I16x8ExtMulHighI8x16S => S::I16x8ExtMulHighI8x16S.into_triple(),
        O::I16x8ExtMulLowI8x16U => S::I16x8ExtMulLowI8x16U.into_triple(),
        O::I16x8ExtMulHighI8x16U => S::I16x8ExtMulHighI8x16U.into_triple(),
        O::I32x4ExtAddPairwiseI16x8S => S::I32x4ExtAddPairwiseI16x8S.into_triple(),
        O::I32x4ExtAddPairwiseI16x8U => S::I32x4ExtAddPairwiseI16x8U.into_triple(),
        O::I32x4Abs => S::I32x4Abs.into_triple(),
        O::I32x4Neg => S::I32x4Neg.into_triple(),
        O::I32x4AllTrue => S::I32x4AllTrue.into_triple(),
        O::I32x4Bitmask => S::I32x4Bitmask.into_triple(),
        O::I32x4ExtendLowI16x8S => S::I32x4ExtendLowI16x8S.into_triple(),
        O::I32x4ExtendHighI16x8S => S::I32x4ExtendHighI16x8S.into_triple(),
        O::I32x4ExtendLowI16x8U => S::I32x4ExtendLowI16x8U.into_triple(),
        O::I32x4ExtendHighI16x8U => S::I32x4ExtendHighI16x8U.into_triple(),
        O::I32x4Shl => S::I32x4Shl.into_triple(),
        O::I32x4ShrS => S::I32x4ShrS.into_triple(),
        O::I32x4ShrU => S::I32x4ShrU.into_triple(),
        O::I32x4Add => S::I32x4Add.into_triple(),
        O::I32x4Sub => S::I32x4Sub.into_triple(),
        O::I32x4Mul => S::I32x4Mul.into_triple(),
        O::I32x4MinS => S::I32x4MinS.into_triple(),
        O::I32x4MinU => S::I32x4MinU.into_triple(),
        O::I32x4MaxS => S::I32x4MaxS.into_triple(),
        O::I32x4MaxU => S::I32x4MaxU.into_triple(),
        O::I32x4DotI16x8S => S::I32x4DotI16x8S.into_triple(),
        O::I32x4ExtMulLowI16x8S => S::I32x4ExtMulLowI16x8S.into_triple(),
        O::I32x4ExtMulHighI16x8S => S::I32x4ExtMulHighI16x8S.into_triple(),
        O::I32x4ExtMulLowI16x8U => S::I32x4ExtMulLowI16x8U.into_triple(),
        O::I32x4ExtMulHighI16x8U => S::I32x4ExtMulHighI16x8U.into_triple(),
        O::I64x2Abs => S::I64x2Abs.into_triple(),
        O::I64x2Neg => S::I64x2Neg.into_triple(),
        O::I64x2AllTrue => S::I64x2AllTrue.into_triple(),
        O::I64x2Bitmask => S::I64x2Bitmask.into_triple(),
        O::I64x2ExtendLowI32x4S => S::I64x2ExtendLowI32x4S.into_triple(),
        O::I64x2ExtendHighI32x4S => S::I64x2ExtendHighI32x4S.into_triple(),
        O::I64x2ExtendLowI32x4U => S::I64x2ExtendLowI32x4U.into_triple(),
        O::I64x2ExtendHighI32x4U => S::I64x2ExtendHighI32x4U.into_triple(),
        O::I64x2Shl => S::I64x2Shl.into_triple(),
        O::I64x2ShrS => S::I64x2ShrS.into_triple(),
        O::I64x2ShrU => S::I64x2ShrU.into_triple(),
        O::I64x2Add => S::I64x2Add.into_triple(),
        O::I64x2Sub => S::I64x2Sub.into_triple(),
        O::I64x2Mul => S::I64x2Mul.into_triple(),
        O::I64x2ExtMulLowI32x4S => S::I64x2ExtMulLowI32x4S.into_triple(),
        O::I64x2ExtMulHighI32x4S => S::I64x2ExtMulHighI32x4S.into_triple(),
        O::I64x2ExtMulLowI32x4U => S::I64x2ExtMulLowI32x4U.into_triple(),
        O::I64x2ExtMulHighI32x4U => S::I64x2ExtMulHighI32x4U.into_triple(),
        O::F32x4Ceil => S::F32x4Ceil.into_triple(),
        O::F32x4Floor => S::F32x4Floor.into_triple(),
        O::F32x4Trunc => S::F32x4Trunc.into_triple(),
        O::F32x4Nearest => S::F32x4Nearest.into_triple(),
        O::F32x4Abs => S::F32x4Abs.into_triple(),
        O::F32x4Neg => S::F32x4Neg.into_triple(),
        O::F32x4Sqrt => S::F32x4Sqrt.into_triple(),
        O::F32x4Add => S::F32x4Add.into_triple(),
        O::F32x4Sub => S::F32x4Sub.into_triple(),
        O::F32x4Mul => S::F32x4Mul.into_triple(),
        O::F32x4Div => S::F32x4Div.into_triple(),
        O::F32x4Min => S::F32x4Min.into_triple(),
        O::F32x4Max => S::F32x4Max.into_triple(),
        O::F32x4PMin => S::F32x4PMin.into_triple(),
        O::F32x4PMax => S::F32x4PMax.into_triple(),
        O::F64x2Ceil => S::F64x2Ceil.into_triple(),
        O::F64x2Floor => S::F64x2Floor.into_triple(),
        O::F64x2Trunc => S::F64x2Trunc.into_triple(),
        O::F64x2Nearest => S::F64x2Nearest.into_triple(),
        O::F64x2Abs => S::F64x2Abs.into_triple(),
        O::F64x2Neg => S::F64x2Neg.into_triple(),
        O::F64x2Sqrt => S::F64x2Sqrt.into_triple(),
        O::F64x2Add => S::F64x2Add.into_triple(),
        O::F64x2Sub => S::F64x2Sub.into_triple(),
        O::F64x2Mul => S::F64x2Mul.into_triple(),
        O::F64x2Div => S::F64x2Div.into_triple(),
        O::F64x2Min => S::F64x2Min.into_triple(),
        O::F64x2Max => S::F64x2Max.into_triple(),
        O::F64x2PMin => S::F64x2PMin.into_triple(),
        O::F64x2PMax => S::F64x2PMax.into_triple(),
        O::I32x4TruncSatF32x4S => S::I32x4TruncSatF32x4S.into_triple(),
        O::I32x4TruncSatF32x4U => S::I32x4TruncSatF32x4U.into_triple(),
        O::F32x4ConvertI32x4S => S::F32x4ConvertI32x4S.into_triple(),
        O::F32x4ConvertI32x4U => S::F32x4ConvertI32x4U.into_triple(),
        O::I32x4TruncSatF64x2SZero => S::I32x4TruncSatF64x2SZero.into_triple(),
        O::I32x4TruncSatF64x2UZero => S::I32x4TruncSatF64x2UZero.into_triple(),
        O::F64x2ConvertLowI32x4S => S::F64x2ConvertLowI32x4S.into_triple(),
        O::F64x2ConvertLowI32x4U => S::F64x2ConvertLowI32x4U.into_triple(),
        O::F32x4DemoteF64x2Zero => S::F32x4DemoteF64x2Zero.into_triple(),
        O::F64x2PromoteLowF32x4 => S::F64x2PromoteLowF32x4.into_triple(),
        _ => return Ok(None),
    }))
}

impl SimdOp {
    fn into_triple(self) -> (SimdOp, u8, u32) {
        (self, 0, 0)
    }
}

/// Add `v` to a function's constant pool; its index.
fn pool_add(pool: &mut Vec<u128>, v: u128) -> u32 {
    pool.push(v);
    (pool.len() - 1) as u32
}

/// A lane type: its little-endian bytes in a `v128`.
trait Lane: Copy {
    const N: usize;
    fn get(b: &[u8]) -> Self;
    fn put(self, b: &mut [u8]);
}

macro_rules! lane_impl {
    ($($t:ty)*) => {$(
        impl Lane for $t {
            const N: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..Self::N]);
                <$t>::from_le_bytes(a)
            }
            #[inline(always)]
            fn put(self, b: &mut [u8]) {
                b[..Self::N].copy_from_slice(&self.to_le_bytes())
            }
        }
    )*};
}
lane_impl!(i8 u8 i16 u16 i32 u32 i64 u64 f32 f64);

#[inline(always)]
fn lanes<T: Lane, const K: usize>(v: u128) -> [T; K] {
    let b = v.to_le_bytes();
    std::array::from_fn(|i| T::get(&b[i * T::N..]))
}

#[inline(always)]
fn pack<T: Lane, const K: usize>(a: [T; K]) -> u128 {
    let mut b = [0u8; 16];
    for (i, x) in a.iter().enumerate() {
        x.put(&mut b[i * T::N..]);
    }
    u128::from_le_bytes(b)
}

#[inline(always)]
fn map1<T: Lane, U: Lane, const K: usize>(v: u128, f: impl Fn(T) -> U) -> u128 {
    pack::<U, K>(lanes::<T, K>(v).map(f))
}

#[inline(always)]
fn map2<T: Lane, U: Lane, const K: usize>(a: u128, b: u128, f: impl Fn(T, T) -> U) -> u128 {
    let (x, y) = (lanes::<T, K>(a), lanes::<T, K>(b));
    pack::<U, K>(std::array::from_fn(|i| f(x[i], y[i])))
}

/// Lanes `off..off + OUT` of `a`, each converted by `f`.
#[inline(always)]
fn extend<T: Lane, U: Lane, const IN: usize, const OUT: usize>(
    a: u128,
    off: usize,
    f: impl Fn(T) -> U,
) -> u128 {
    let x = lanes::<T, IN>(a);
    pack::<U, OUT>(std::array::from_fn(|i| f(x[i + off])))
}

/// `f` of lanes `off..off + OUT` of `a` and `b`.
#[inline(always)]
fn extmul<T: Lane, U: Lane, const IN: usize, const OUT: usize>(
    a: u128,
    b: u128,
    off: usize,
    f: impl Fn(T, T) -> U,
) -> u128 {
    let (x, y) = (lanes::<T, IN>(a), lanes::<T, IN>(b));
    pack::<U, OUT>(std::array::from_fn(|i| f(x[i + off], y[i + off])))
}

/// `f` of adjacent lane pairs of `a`.
#[inline(always)]
fn pairwise<T: Lane, U: Lane, const IN: usize, const OUT: usize>(
    a: u128,
    f: impl Fn(T, T) -> U,
) -> u128 {
    let x = lanes::<T, IN>(a);
    pack::<U, OUT>(std::array::from_fn(|i| f(x[2 * i], x[2 * i + 1])))
}

/// The lanes of `a` then those of `b`, each narrowed by `f`.
#[inline(always)]
fn narrow<T: Lane, U: Lane, const IN: usize, const OUT: usize>(
    a: u128,
    b: u128,
    f: impl Fn(T) -> U,
) -> u128 {
    let (x, y) = (lanes::<T, IN>(a), lanes::<T, IN>(b));
    pack::<U, OUT>(std::array::from_fn(|i| if i < IN { f(x[i]) } else { f(y[i - IN]) }))
}

#[inline(always)]
fn pop_v(s: &mut Vec<u64>) -> u128 {
    let hi = s.pop().unwrap_or(0);
    let lo = s.pop().unwrap_or(0);
    (hi as u128) << 64 | lo as u128
}

#[inline(always)]
fn push_v(s: &mut Vec<u64>, v: u128) {
    s.push(v as u64);
    s.push((v >> 64) as u64);
}

#[inline(always)]
fn pop_s(s: &mut Vec<u64>) -> u64 {
    s.pop().unwrap_or(0)
}

/// `v` with lane `lane` of the `N`-byte integer shape replaced by `b`
/// (the lane forms of loads: `v128.loadN_lane`).
fn set_bytes<const N: usize>(v: u128, lane: u8, b: [u8; N]) -> u128 {
    let mut x = [0u8; 8];
    x[..N].copy_from_slice(&b);
    LaneShape::int_of_bytes(N).map_or(v, |s| s.with_lane(v, lane as u32, u64::from_le_bytes(x)))
}

/// Lane `lane` of the `N`-byte integer shape of `v`, as bytes in memory
/// order (the lane forms of stores: `v128.storeN_lane`).
fn get_bytes<const N: usize>(v: u128, lane: u8) -> [u8; N] {
    let x = LaneShape::int_of_bytes(N).map_or(0, |s| s.lane(v, lane as u32)).to_le_bytes();
    let mut b = [0u8; N];
    b.copy_from_slice(&x[..N]);
    b
}

/// Execute SIMD operator `op` with lane index `lane` and immediate `imm`
/// (see [`simd_op`]) on the value stack `stack`, memory `mem` (empty if the
/// instance has none) and the function's constant pool `pool`.
pub(crate) fn exec(
    op: SimdOp,
    lane: u8,
    imm: u32,
    stack: &mut Vec<u64>,
    mem: &mut [u8],
    pool: &[u128],
) -> Result<(), TrapCode> {
    use SimdOp as S;
    let st = stack;
    let l = lane as usize;
    macro_rules! un {
        ($t:ty, $k:literal, $f:expr) => {{
            let a = pop_v(st);
            push_v(st, map1::<$t, $t, $k>(a, $f));
        }};
    }
    macro_rules! bin {
        ($t:ty, $k:literal, $f:expr) => {{
            let b = pop_v(st);
            let a = pop_v(st);
            push_v(st, map2::<$t, $t, $k>(a, b, $f));
        }};
    }
    macro_rules! cmp {
        ($t:ty, $m:ty, $k:literal, $f:expr) => {{
            let b = pop_v(st);
            let a = pop_v(st);
            let f = $f;
            push_v(
                st,
                map2::<$t, $m, $k>(a, b, |x: $t, y: $t| -> $m { if f(x, y) { -1 } else { 0 } }),
            );
        }};
    }
    macro_rules! shift {
        ($t:ty, $k:literal, $f:expr) => {{
            let s = pop_s(st) as u32;
            let a = pop_v(st);
            let f = $f;
            push_v(st, map1::<$t, $t, $k>(a, |x: $t| f(x, s)));
        }};
    }
    macro_rules! all_true {
        ($t:ty, $k:literal) => {{
            let a = pop_v(st);
            st.push(lanes::<$t, $k>(a).iter().all(|x| *x != 0) as u64);
        }};
    }
    macro_rules! bitmask {
        ($t:ty, $k:literal) => {{
            let a = pop_v(st);
            let m = lanes::<$t, $k>(a)
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, x)| m | (((*x < 0) as u64) << i));
            st.push(m);
        }};
    }
    macro_rules! splat {
        ($t:ty, $k:literal, $conv:expr) => {{
            let x = pop_s(st);
            let c = $conv;
            let v: $t = c(x);
            push_v(st, pack::<$t, $k>([v; $k]));
        }};
    }
    macro_rules! extract {
        ($t:ty, $k:literal, $conv:expr) => {{
            let a = pop_v(st);
            let c = $conv;
            st.push(c(lanes::<$t, $k>(a)[l]));
        }};
    }
    macro_rules! replace {
        ($t:ty, $k:literal, $conv:expr) => {{
            let x = pop_s(st);
            let a = pop_v(st);
            let c = $conv;
            let mut v = lanes::<$t, $k>(a);
            v[l] = c(x);
            push_v(st, pack::<$t, $k>(v));
        }};
    }
    macro_rules! ld_ext {
        ($n:literal, $t:ty, $u:ty, $k:literal) => {{
            let a = pop_s(st);
            let b = load::<8>(mem, a, imm)?;
            let x: [$t; $k] = std::array::from_fn(|i| <$t as Lane>::get(&b[i * $n..]));
            push_v(st, pack::<$u, $k>(x.map(|v| v as $u)));
        }};
    }
    macro_rules! ld_splat {
        ($n:literal, $t:ty, $k:literal) => {{
            let a = pop_s(st);
            let b = load::<$n>(mem, a, imm)?;
            push_v(st, pack::<$t, $k>([<$t as Lane>::get(&b); $k]));
        }};
    }
    macro_rules! ld_lane {
        ($n:literal) => {{
            let v = pop_v(st);
            let a = pop_s(st);
            let b = load::<$n>(mem, a, imm)?;
            push_v(st, set_bytes::<$n>(v, lane, b));
        }};
    }
    macro_rules! st_lane {
        ($n:literal) => {{
            let v = pop_v(st);
            let a = pop_s(st);
            store::<$n>(mem, a, imm, get_bytes::<$n>(v, lane))?;
        }};
    }
    let b16 = |x: bool| x as u64;
    match op {
        // ---- memory ----
        S::V128Load => {
            let a = pop_s(st);
            let b = load::<16>(mem, a, imm)?;
            push_v(st, u128::from_le_bytes(b));
        }
        S::V128Load8x8S => ld_ext!(1, i8, i16, 8),
        S::V128Load8x8U => ld_ext!(1, u8, u16, 8),
        S::V128Load16x4S => ld_ext!(2, i16, i32, 4),
        S::V128Load16x4U => ld_ext!(2, u16, u32, 4),
        S::V128Load32x2S => ld_ext!(4, i32, i64, 2),
        S::V128Load32x2U => ld_ext!(4, u32, u64, 2),
        S::V128Load8Splat => ld_splat!(1, u8, 16),
        S::V128Load16Splat => ld_splat!(2, u16, 8),
        S::V128Load32Splat => ld_splat!(4, u32, 4),
        S::V128Load64Splat => ld_splat!(8, u64, 2),
        S::V128Load32Zero => {
            let a = pop_s(st);
            let b = load::<4>(mem, a, imm)?;
            push_v(st, u32::from_le_bytes(b) as u128);
        }
        S::V128Load64Zero => {
            let a = pop_s(st);
            let b = load::<8>(mem, a, imm)?;
            push_v(st, u64::from_le_bytes(b) as u128);
        }
        S::V128Store => {
            let v = pop_v(st);
            let a = pop_s(st);
            store::<16>(mem, a, imm, v.to_le_bytes())?;
        }
        S::V128Load8Lane => ld_lane!(1),
        S::V128Load16Lane => ld_lane!(2),
        S::V128Load32Lane => ld_lane!(4),
        S::V128Load64Lane => ld_lane!(8),
        S::V128Store8Lane => st_lane!(1),
        S::V128Store16Lane => st_lane!(2),
        S::V128Store32Lane => st_lane!(4),
        S::V128Store64Lane => st_lane!(8),

        // ---- constants, lanes, shuffles ----
        S::V128Const => push_v(st, pool[imm as usize]),
        S::I8x16Shuffle => {
            let b = pop_v(st).to_le_bytes();
            let a = pop_v(st).to_le_bytes();
            let idx = pool[imm as usize].to_le_bytes();
            let out: [u8; 16] = std::array::from_fn(|i| {
                let j = idx[i] as usize;
                if j < 16 {
                    a[j]
                } else {
                    b[j - 16]
                }
            });
            push_v(st, u128::from_le_bytes(out));
        }
        S::I8x16Swizzle => {
            let s = pop_v(st).to_le_bytes();
            let a = pop_v(st).to_le_bytes();
            let out: [u8; 16] = std::array::from_fn(|i| a.get(s[i] as usize).copied().unwrap_or(0));
            push_v(st, u128::from_le_bytes(out));
        }
        S::I8x16ExtractLaneS => extract!(i8, 16, |x: i8| x as i32 as u32 as u64),
        S::I8x16ExtractLaneU => extract!(u8, 16, |x: u8| x as u64),
        S::I16x8ExtractLaneS => extract!(i16, 8, |x: i16| x as i32 as u32 as u64),
        S::I16x8ExtractLaneU => extract!(u16, 8, |x: u16| x as u64),
        S::I32x4ExtractLane => extract!(u32, 4, |x: u32| x as u64),
        S::I64x2ExtractLane => extract!(u64, 2, |x: u64| x),
        S::F32x4ExtractLane => extract!(u32, 4, |x: u32| x as u64),
        S::F64x2ExtractLane => extract!(u64, 2, |x: u64| x),
        S::I8x16ReplaceLane => replace!(u8, 16, |x: u64| x as u8),
        S::I16x8ReplaceLane => replace!(u16, 8, |x: u64| x as u16),
        S::I32x4ReplaceLane | S::F32x4ReplaceLane => replace!(u32, 4, |x: u64| x as u32),
        S::I64x2ReplaceLane | S::F64x2ReplaceLane => replace!(u64, 2, |x: u64| x),
        S::I8x16Splat => splat!(u8, 16, |x: u64| x as u8),
        S::I16x8Splat => splat!(u16, 8, |x: u64| x as u16),
        S::I32x4Splat | S::F32x4Splat => splat!(u32, 4, |x: u64| x as u32),
        S::I64x2Splat | S::F64x2Splat => splat!(u64, 2, |x: u64| x),

        // ---- comparisons ----
        S::I8x16Eq => cmp!(i8, i8, 16, |a, b| a == b),
        S::I8x16Ne => cmp!(i8, i8, 16, |a, b| a != b),
        S::I8x16LtS => cmp!(i8, i8, 16, |a, b| a < b),
        S::I8x16LtU => cmp!(u8, i8, 16, |a, b| a < b),
        S::I8x16GtS => cmp!(i8, i8, 16, |a, b| a > b),
        S::I8x16GtU => cmp!(u8, i8, 16, |a, b| a > b),
        S::I8x16LeS => cmp!(i8, i8, 16, |a, b| a <= b),
        S::I8x16LeU => cmp!(u8, i8, 16, |a, b| a <= b),
        S::I8x16GeS => cmp!(i8, i8, 16, |a, b| a >= b),
        S::I8x16GeU => cmp!(u8, i8, 16, |a, b| a >= b),
        S::I16x8Eq => cmp!(i16, i16, 8, |a, b| a == b),
        S::I16x8Ne => cmp!(i16, i16, 8, |a, b| a != b),
        S::I16x8LtS => cmp!(i16, i16, 8, |a, b| a < b),
        S::I16x8LtU => cmp!(u16, i16, 8, |a, b| a < b),
        S::I16x8GtS => cmp!(i16, i16, 8, |a, b| a > b),
        S::I16x8GtU => cmp!(u16, i16, 8, |a, b| a > b),
        S::I16x8LeS => cmp!(i16, i16, 8, |a, b| a <= b),
        S::I16x8LeU => cmp!(u16, i16, 8, |a, b| a <= b),
        S::I16x8GeS => cmp!(i16, i16, 8, |a, b| a >= b),
        S::I16x8GeU => cmp!(u16, i16, 8, |a, b| a >= b),
        S::I32x4Eq => cmp!(i32, i32, 4, |a, b| a == b),
        S::I32x4Ne => cmp!(i32, i32, 4, |a, b| a != b),
        S::I32x4LtS => cmp!(i32, i32, 4, |a, b| a < b),
        S::I32x4LtU => cmp!(u32, i32, 4, |a, b| a < b),
        S::I32x4GtS => cmp!(i32, i32, 4, |a, b| a > b),
        S::I32x4GtU => cmp!(u32, i32, 4, |a, b| a > b),
        S::I32x4LeS => cmp!(i32, i32, 4, |a, b| a <= b),
        S::I32x4LeU => cmp!(u32, i32, 4, |a, b| a <= b),
        S::I32x4GeS => cmp!(i32, i32, 4, |a, b| a >= b),
        S::I32x4GeU => cmp!(u32, i32, 4, |a, b| a >= b),
        S::I64x2Eq => cmp!(i64, i64, 2, |a, b| a == b),
        S::I64x2Ne => cmp!(i64, i64, 2, |a, b| a != b),
        S::I64x2LtS => cmp!(i64, i64, 2, |a, b| a < b),
        S::I64x2GtS => cmp!(i64, i64, 2, |a, b| a > b),
        S::I64x2LeS => cmp!(i64, i64, 2, |a, b| a <= b),
        S::I64x2GeS => cmp!(i64, i64, 2, |a, b| a >= b),
        S::F32x4Eq => cmp!(f32, i32, 4, |a, b| a == b),
        S::F32x4Ne => cmp!(f32, i32, 4, |a, b| a != b),
        S::F32x4Lt => cmp!(f32, i32, 4, |a, b| a < b),
        S::F32x4Gt => cmp!(f32, i32, 4, |a, b| a > b),
        S::F32x4Le => cmp!(f32, i32, 4, |a, b| a <= b),
        S::F32x4Ge => cmp!(f32, i32, 4, |a, b| a >= b),
        S::F64x2Eq => cmp!(f64, i64, 2, |a, b| a == b),
        S::F64x2Ne => cmp!(f64, i64, 2, |a, b| a != b),
        S::F64x2Lt => cmp!(f64, i64, 2, |a, b| a < b),
        S::F64x2Gt => cmp!(f64, i64, 2, |a, b| a > b),
        S::F64x2Le => cmp!(f64, i64, 2, |a, b| a <= b),
        S::F64x2Ge => cmp!(f64, i64, 2, |a, b| a >= b),

        // ---- bitwise ----
        S::V128Not => {
            let a = pop_v(st);
            push_v(st, !a);
        }
        S::V128And | S::V128AndNot | S::V128Or | S::V128Xor => {
            let b = pop_v(st);
            let a = pop_v(st);
            push_v(
                st,
                match op {
                    S::V128And => a & b,
                    S::V128AndNot => a & !b,
                    S::V128Or => a | b,
                    _ => a ^ b,
                },
            );
        }
        S::V128Bitselect => {
            let c = pop_v(st);
            let b = pop_v(st);
            let a = pop_v(st);
            push_v(st, (a & c) | (b & !c));
        }
        S::V128AnyTrue => {
            let a = pop_v(st);
            st.push(b16(a != 0));
        }

        // ---- i8x16 ----
        S::I8x16Abs => un!(i8, 16, |x: i8| x.wrapping_abs()),
        S::I8x16Neg => un!(i8, 16, |x: i8| x.wrapping_neg()),
        S::I8x16Popcnt => un!(u8, 16, |x: u8| x.count_ones() as u8),
        S::I8x16AllTrue => all_true!(u8, 16),
        S::I8x16Bitmask => bitmask!(i8, 16),
        S::I8x16NarrowI16x8S => {
            let b = pop_v(st);
            let a = pop_v(st);
            push_v(st, narrow::<i16, i8, 8, 16>(a, b, |x| x.clamp(-128, 127) as i8));
        }
        S::I8x16NarrowI16x8U => {
            let b = pop_v(st);
            let a = pop_v(st);
            push_v(st, narrow::<i16, u8, 8, 16>(a, b, |x| x.clamp(0, 255) as u8));
        }
        S::I8x16Shl => shift!(u8, 16, |x: u8, s: u32| x.wrapping_shl(s)),
        S::I8x16ShrS => shift!(i8, 16, |x: i8, s: u32| x.wrapping_shr(s)),
        S::I8x16ShrU => shift!(u8, 16, |x: u8, s: u32| x.wrapping_shr(s)),
        S::I8x16Add => bin!(u8, 16, |a: u8, b| a.wrapping_add(b)),
        S::I8x16AddSatS => bin!(i8, 16, |a: i8, b| a.saturating_add(b)),
        S::I8x16AddSatU => bin!(u8, 16, |a: u8, b| a.saturating_add(b)),
        S::I8x16Sub => bin!(u8, 16, |a: u8, b| a.wrapping_sub(b)),
        S::I8x16SubSatS => bin!(i8, 16, |a: i8, b| a.saturating_sub(b)),
        S::I8x16SubSatU => bin!(u8, 16, |a: u8, b| a.saturating_sub(b)),
        S::I8x16MinS => bin!(i8, 16, |a: i8, b| a.min(b)),
        S::I8x16MinU => bin!(u8, 16, |a: u8, b| a.min(b)),
        S::I8x16MaxS => bin!(i8, 16, |a: i8, b| a.max(b)),
        S::I8x16MaxU => bin!(u8, 16, |a: u8, b| a.max(b)),
        S::I8x16AvgrU => bin!(u8, 16, |a: u8, b: u8| ((a as u16 + b as u16 + 1) >> 1) as u8),

        // ---- i16x8 ----
        S::I16x8ExtAddPairwiseI8x16S => {
            let a = pop_v(st);
            push_v(st, pairwise::<i8, i16, 16, 8>(a, |x, y| x as i16 + y as i16));
        }
        S::I16x8ExtAddPairwiseI8x16U => {
            let a = pop_v(st);
            push_v(st, pairwise::<u8, u16, 16, 8>(a, |x, y| x as u16 + y as u16));
        }
        S::I16x8Abs => un!(i16, 8, |x: i16| x.wrapping_abs()),
        S::I16x8Neg => un!(i16, 8, |x: i16| x.wrapping_neg()),
        S::I16x8Q15MulrSatS => bin!(i16, 8, |a: i16, b: i16| {
            ((a as i32 * b as i32 + 0x4000) >> 15).clamp(-32768, 32767) as i16
        }),
        S::I16x8AllTrue => all_true!(u16, 8),
        S::I16x8Bitmask => bitmask!(i16, 8),
        S::I16x8NarrowI32x4S => {
            let b = pop_v(st);
            let a = pop_v(st);
            push_v(st, narrow::<i32, i16, 4, 8>(a, b, |x| x.clamp(-32768, 32767) as i16));
        }
        S::I16x8NarrowI32x4U => {
            let b = pop_v(st);
            let a = pop_v(st);
            push_v(st, narrow::<i32, u16, 4, 8>(a, b, |x| x.clamp(0, 65535) as u16));
        }
        S::I16x8ExtendLowI8x16S | S::I16x8ExtendHighI8x16S => {
            let a = pop_v(st);
            let off = if op == S::I16x8ExtendLowI8x16S { 0 } else { 8 };
            push_v(st, extend::<i8, i16, 16, 8>(a, off, |x| x as i16));
        }
        S::I16x8ExtendLowI8x16U | S::I16x8ExtendHighI8x16U => {
            let a = pop_v(st);
            let off = if op == S::I16x8ExtendLowI8x16U { 0 } else { 8 };
            push_v(st, extend::<u8, u16, 16, 8>(a, off, |x| x as u16));
        }
        S::I16x8Shl => shift!(u16, 8, |x: u16, s: u32| x.wrapping_shl(s)),
        S::I16x8ShrS => shift!(i16, 8, |x: i16, s: u32| x.wrapping_shr(s)),
        S::I16x8ShrU => shift!(u16, 8, |x: u16, s: u32| x.wrapping_shr(s)),
        S::I16x8Add => bin!(u16, 8, |a: u16, b| a.wrapping_add(b)),
        S::I16x8AddSatS => bin!(i16, 8, |a: i16, b| a.saturating_add(b)),
        S::I16x8AddSatU => bin!(u16, 8, |a: u16, b| a.saturating_add(b)),
        S::I16x8Sub => bin!(u16, 8, |a: u16, b| a.wrapping_sub(b)),
        S::I16x8SubSatS => bin!(i16, 8, |a: i16, b| a.saturating_sub(b)),
        S::I16x8SubSatU => bin!(u16, 8, |a: u16, b| a.saturating_sub(b)),
        S::I16x8Mul => bin!(u16, 8, |a: u16, b| a.wrapping_mul(b)),
        S::I16x8MinS => bin!(i16, 8, |a: i16, b| a.min(b)),
        S::I16x8MinU => bin!(u16, 8, |a: u16, b| a.min(b)),
        S::I16x8MaxS => bin!(i16, 8, |a: i16, b| a.max(b)),
        S::I16x8MaxU => bin!(u16, 8, |a: u16, b| a.max(b)),
        S::I16x8AvgrU => bin!(u16, 8, |a: u16, b: u16| ((a as u32 + b as u32 + 1) >> 1) as u16),
        S::I16x8ExtMulLowI8x16S | S::I16x8ExtMulHighI8x16S => {
            let b = pop_v(st);
            let a = pop_v(st);
            let off = if op == S::I16x8ExtMulLowI8x16S { 0 } else { 8 };
            push_v(st, extmul::<i8, i16, 16, 8>(a, b, off, |x, y| x as i16 * y as i16));
        }
        S::I16x8ExtMulLowI8x16U | S::I16x8ExtMulHighI8x16U => {
            let b = pop_v(st);
            let a = pop_v(st);
            let off = if op == S::I16x8ExtMulLowI8x16U { 0 } else { 8 };
            push_v(st, extmul::<u8, u16, 16, 8>(a, b, off, |x, y| x as u16 * y as u16));
        }

        // ---- i32x4 ----
        S::I32x4ExtAddPairwiseI16x8S => {
            let a = pop_v(st);
            push_v(st, pairwise::<i16, i32, 8, 4>(a, |x, y| x as i32 + y as i32));
        }
        S::I32x4ExtAddPairwiseI16x8U => {
            let a = pop_v(st);
            push_v(st, pairwise::<u16, u32, 8, 4>(a, |x, y| x as u32 + y as u32));
        }
        S::I32x4Abs => un!(i32, 4, |x: i32| x.wrapping_abs()),
        S::I32x4Neg => un!(i32, 4, |x: i32| x.wrapping_neg()),
        S::I32x4AllTrue => all_true!(u32, 4),
        S::I32x4Bitmask => bitmask!(i32, 4),
        S::I32x4ExtendLowI16x8S | S::I32x4ExtendHighI16x8S => {
            let a = pop_v(st);
            let off = if op == S::I32x4ExtendLowI16x8S { 0 } else { 4 };
            push_v(st, extend::<i16, i32, 8, 4>(a, off, |x| x as i32));
        }
        S::I32x4ExtendLowI16x8U | S::I32x4ExtendHighI16x8U => {
            let a = pop_v(st);
            let off = if op == S::I32x4ExtendLowI16x8U { 0 } else { 4 };
            push_v(st, extend::<u16, u32, 8, 4>(a, off, |x| x as u32));
        }
        S::I32x4Shl => shift!(u32, 4, |x: u32, s: u32| x.wrapping_shl(s)),
        S::I32x4ShrS => shift!(i32, 4, |x: i32, s: u32| x.wrapping_shr(s)),
        S::I32x4ShrU => shift!(u32, 4, |x: u32, s: u32| x.wrapping_shr(s)),
        S::I32x4Add => bin!(u32, 4, |a: u32, b| a.wrapping_add(b)),
        S::I32x4Sub => bin!(u32, 4, |a: u32, b| a.wrapping_sub(b)),
        S::I32x4Mul => bin!(u32, 4, |a: u32, b| a.wrapping_mul(b)),
        S::I32x4MinS => bin!(i32, 4, |a: i32, b| a.min(b)),
        S::I32x4MinU => bin!(u32, 4, |a: u32, b| a.min(b)),
        S::I32x4MaxS => bin!(i32, 4, |a: i32, b| a.max(b)),
        S::I32x4MaxU => bin!(u32, 4, |a: u32, b| a.max(b)),
        S::I32x4DotI16x8S => {
            let b = pop_v(st);
            let a = pop_v(st);
            let (x, y) = (lanes::<i16, 8>(a), lanes::<i16, 8>(b));
            let out: [i32; 4] = std::array::from_fn(|i| {
                (x[2 * i] as i32 * y[2 * i] as i32)
                    .wrapping_add(x[2 * i + 1] as i32 * y[2 * i + 1] as i32)
            });
            push_v(st, pack::<i32, 4>(out));
        }
        S::I32x4ExtMulLowI16x8S | S::I32x4ExtMulHighI16x8S => {
            let b = pop_v(st);
            let a = pop_v(st);
            let off = if op == S::I32x4ExtMulLowI16x8S { 0 } else { 4 };
            push_v(st, extmul::<i16, i32, 8, 4>(a, b, off, |x, y| x as i32 * y as i32));
        }
        S::I32x4ExtMulLowI16x8U | S::I32x4ExtMulHighI16x8U => {
            let b = pop_v(st);
            let a = pop_v(st);
            let off = if op == S::I32x4ExtMulLowI16x8U { 0 } else { 4 };
            push_v(st, extmul::<u16, u32, 8, 4>(a, b, off, |x, y| x as u32 * y as u32));
        }

        // ---- i64x2 ----
        S::I64x2Abs => un!(i64, 2, |x: i64| x.wrapping_abs()),
        S::I64x2Neg => un!(i64, 2, |x: i64| x.wrapping_neg()),
        S::I64x2AllTrue => all_true!(u64, 2),
        S::I64x2Bitmask => bitmask!(i64, 2),
        S::I64x2ExtendLowI32x4S | S::I64x2ExtendHighI32x4S => {
            let a = pop_v(st);
            let off = if op == S::I64x2ExtendLowI32x4S { 0 } else { 2 };
            push_v(st, extend::<i32, i64, 4, 2>(a, off, |x| x as i64));
        }
        S::I64x2ExtendLowI32x4U | S::I64x2ExtendHighI32x4U => {
            let a = pop_v(st);
            let off = if op == S::I64x2ExtendLowI32x4U { 0 } else { 2 };
            push_v(st, extend::<u32, u64, 4, 2>(a, off, |x| x as u64));
        }
        S::I64x2Shl => shift!(u64, 2, |x: u64, s: u32| x.wrapping_shl(s)),
        S::I64x2ShrS => shift!(i64, 2, |x: i64, s: u32| x.wrapping_shr(s)),
        S::I64x2ShrU => shift!(u64, 2, |x: u64, s: u32| x.wrapping_shr(s)),
        S::I64x2Add => bin!(u64, 2, |a: u64, b| a.wrapping_add(b)),
        S::I64x2Sub => bin!(u64, 2, |a: u64, b| a.wrapping_sub(b)),
        S::I64x2Mul => bin!(u64, 2, |a: u64, b| a.wrapping_mul(b)),
        S::I64x2ExtMulLowI32x4S | S::I64x2ExtMulHighI32x4S => {
            let b = pop_v(st);
            let a = pop_v(st);
            let off = if op == S::I64x2ExtMulLowI32x4S { 0 } else { 2 };
            push_v(st, extmul::<i32, i64, 4, 2>(a, b, off, |x, y| x as i64 * y as i64));
        }
        S::I64x2ExtMulLowI32x4U | S::I64x2ExtMulHighI32x4U => {
            let b = pop_v(st);
            let a = pop_v(st);
            let off = if op == S::I64x2ExtMulLowI32x4U { 0 } else { 2 };
            push_v(st, extmul::<u32, u64, 4, 2>(a, b, off, |x, y| x as u64 * y as u64));
        }

        // ---- f32x4 ----
        S::F32x4Ceil => un!(f32, 4, |x: f32| quiet(x.ceil())),
        S::F32x4Floor => un!(f32, 4, |x: f32| quiet(x.floor())),
        S::F32x4Trunc => un!(f32, 4, |x: f32| quiet(x.trunc())),
        S::F32x4Nearest => un!(f32, 4, nearest32),
        S::F32x4Abs => un!(u32, 4, |x: u32| x & 0x7fff_ffff),
        S::F32x4Neg => un!(u32, 4, |x: u32| x ^ 0x8000_0000),
        S::F32x4Sqrt => un!(f32, 4, |x: f32| quiet(x.sqrt())),
        S::F32x4Add => bin!(f32, 4, |a: f32, b| a + b),
        S::F32x4Sub => bin!(f32, 4, |a: f32, b| a - b),
        S::F32x4Mul => bin!(f32, 4, |a: f32, b| a * b),
        S::F32x4Div => bin!(f32, 4, |a: f32, b| a / b),
        S::F32x4Min => bin!(f32, 4, fmin32),
        S::F32x4Max => bin!(f32, 4, fmax32),
        S::F32x4PMin => bin!(f32, 4, |a: f32, b: f32| if b < a { b } else { a }),
        S::F32x4PMax => bin!(f32, 4, |a: f32, b: f32| if a < b { b } else { a }),

        // ---- f64x2 ----
        S::F64x2Ceil => un!(f64, 2, |x: f64| quiet(x.ceil())),
        S::F64x2Floor => un!(f64, 2, |x: f64| quiet(x.floor())),
        S::F64x2Trunc => un!(f64, 2, |x: f64| quiet(x.trunc())),
        S::F64x2Nearest => un!(f64, 2, nearest64),
        S::F64x2Abs => un!(u64, 2, |x: u64| x & !(1u64 << 63)),
        S::F64x2Neg => un!(u64, 2, |x: u64| x ^ (1u64 << 63)),
        S::F64x2Sqrt => un!(f64, 2, |x: f64| quiet(x.sqrt())),
        S::F64x2Add => bin!(f64, 2, |a: f64, b| a + b),
        S::F64x2Sub => bin!(f64, 2, |a: f64, b| a - b),
        S::F64x2Mul => bin!(f64, 2, |a: f64, b| a * b),
        S::F64x2Div => bin!(f64, 2, |a: f64, b| a / b),
        S::F64x2Min => bin!(f64, 2, fmin64),
        S::F64x2Max => bin!(f64, 2, fmax64),
        S::F64x2PMin => bin!(f64, 2, |a: f64, b: f64| if b < a { b } else { a }),
        S::F64x2PMax => bin!(f64, 2, |a: f64, b: f64| if a < b { b } else { a }),

        // ---- conversions ----
        S::I32x4TruncSatF32x4S => {
            let a = pop_v(st);
            push_v(st, map1::<f32, i32, 4>(a, |x| x as i32));
        }
        S::I32x4TruncSatF32x4U => {
            let a = pop_v(st);
            push_v(st, map1::<f32, u32, 4>(a, |x| x as u32));
        }
        S::F32x4ConvertI32x4S => {
            let a = pop_v(st);
            push_v(st, map1::<i32, f32, 4>(a, |x| x as f32));
        }
        S::F32x4ConvertI32x4U => {
            let a = pop_v(st);
            push_v(st, map1::<u32, f32, 4>(a, |x| x as f32));
        }
        S::I32x4TruncSatF64x2SZero => {
            let x = lanes::<f64, 2>(pop_v(st));
            push_v(st, pack::<i32, 4>([x[0] as i32, x[1] as i32, 0, 0]));
        }
        S::I32x4TruncSatF64x2UZero => {
            let x = lanes::<f64, 2>(pop_v(st));
            push_v(st, pack::<u32, 4>([x[0] as u32, x[1] as u32, 0, 0]));
        }
        S::F64x2ConvertLowI32x4S => {
            let x = lanes::<i32, 4>(pop_v(st));
            push_v(st, pack::<f64, 2>([x[0] as f64, x[1] as f64]));
        }
        S::F64x2ConvertLowI32x4U => {
            let x = lanes::<u32, 4>(pop_v(st));
            push_v(st, pack::<f64, 2>([x[0] as f64, x[1] as f64]));
        }
        S::F32x4DemoteF64x2Zero => {
            let x = lanes::<f64, 2>(pop_v(st));
            push_v(st, pack::<f32, 4>([quiet(x[0] as f32), quiet(x[1] as f32), 0.0, 0.0]));
        }
        S::F64x2PromoteLowF32x4 => {
            let x = lanes::<f32, 4>(pop_v(st));
            push_v(st, pack::<f64, 2>([quiet(x[0] as f64), quiet(x[1] as f64)]));
        }
    }
    Ok(())
}
