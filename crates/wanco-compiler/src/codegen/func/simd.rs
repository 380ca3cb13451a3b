//! 128-bit SIMD instructions.
//!
//! A v128 on the operand stack, in locals and globals is `<4 x i32>` (as
//! clang's `v128_t`); each operation bit casts it to the shape it works on
//! (`<16 x i8>`, `<8 x i16>`, `<4 x i32>`, `<2 x i64>`, `<4 x float>`,
//! `<2 x double>`) and its result back. Everything is generic LLVM IR
//! (target-independent: `shufflevector`, `llvm.sadd.sat`, `llvm.minimum`,
//! `llvm.fptosi.sat`, ...) except `i8x16.swizzle`, which uses the one
//! instruction of each ISA with Wasm's meaning for an out-of-range index
//! (x86 `pshufb` after a saturating add of 0x70, aarch64 `tbl`).
//!
//! NaN results follow the scalar rules (docs/architecture.md, "Float
//! exactness"): arithmetic NaNs from the hardware, quieted where LLVM might
//! fold an operation with a constant operand away, canonical with
//! `--canonicalize-nans`.

use super::FuncCx;
use crate::error::{CompileError, Result};
use inkwell::types::{BasicTypeEnum, VectorType};
use inkwell::values::{BasicMetadataValueEnum, BasicValue, BasicValueEnum, IntValue, VectorValue};
use inkwell::{FloatPredicate, IntPredicate};
use wasmparser::Operator as O;

// The lane interpretation of a v128: the one type shared with the
// interpreter and `wanco-snap`.
use wanco_state::LaneShape::{self, *};

enum Sh {
    Shl,
    ShrS,
    ShrU,
}

impl<'a, 'ctx, 'w> FuncCx<'a, 'ctx, 'w> {
    /// Lane type of `s`.
    fn lane_ty(&self, s: LaneShape) -> BasicTypeEnum<'ctx> {
        let c = self.m.ctx;
        match s {
            I8x16 => c.i8_type().into(),
            I16x8 => c.i16_type().into(),
            I32x4 => c.i32_type().into(),
            I64x2 => c.i64_type().into(),
            F32x4 => c.f32_type().into(),
            F64x2 => c.f64_type().into(),
        }
    }

    /// `<n x lane>` for `n` lanes of shape `s`'s lane type.
    fn vty_n(&self, s: LaneShape, n: u32) -> VectorType<'ctx> {
        match self.lane_ty(s) {
            BasicTypeEnum::IntType(t) => t.vec_type(n),
            BasicTypeEnum::FloatType(t) => t.vec_type(n),
            _ => unreachable!(),
        }
    }

    fn vty(&self, s: LaneShape) -> VectorType<'ctx> {
        self.vty_n(s, s.lanes())
    }

    fn v128_ty(&self) -> VectorType<'ctx> {
        self.i32().vec_type(4)
    }

    fn cast(&self, v: impl BasicValue<'ctx>, t: VectorType<'ctx>) -> Result<VectorValue<'ctx>> {
        let v = v.as_basic_value_enum();
        if v.get_type() == t.into() {
            return Ok(v.into_vector_value());
        }
        Ok(self.b.build_bit_cast(v, t, "vc")?.into_vector_value())
    }

    /// Pop a v128 seen as shape `s`.
    fn popv(&mut self, s: LaneShape) -> Result<VectorValue<'ctx>> {
        let v = self.pop();
        self.cast(v, self.vty(s))
    }

    /// Push a 128-bit vector (any shape) as v128.
    fn pushv(&mut self, v: VectorValue<'ctx>) -> Result<()> {
        let v = self.cast(v, self.v128_ty())?;
        self.push(v);
        Ok(())
    }

    fn lane_idx(&self, i: u32) -> IntValue<'ctx> {
        self.i32().const_int(i as u64, false)
    }

    /// A constant shuffle mask.
    fn mask(&self, idx: impl IntoIterator<Item = u32>) -> VectorValue<'ctx> {
        let v: Vec<IntValue<'ctx>> = idx.into_iter().map(|i| self.lane_idx(i)).collect();
        VectorType::const_vector(&v)
    }

    fn shuffle(&self, a: VectorValue<'ctx>, b: VectorValue<'ctx>, idx: impl IntoIterator<Item = u32>) -> Result<VectorValue<'ctx>> {
        let m = self.mask(idx);
        Ok(self.b.build_shuffle_vector(a, b, m, "shuf")?)
    }

    /// A vector of shape `s` (with `n` lanes) whose lanes are all `x` (a
    /// value of the lane type).
    fn splat_n(&self, x: BasicValueEnum<'ctx>, s: LaneShape, n: u32) -> Result<VectorValue<'ctx>> {
        let t = self.vty_n(s, n);
        let v = self.b.build_insert_element(t.get_undef(), x, self.lane_idx(0), "ins")?;
        self.shuffle(v, t.get_undef(), std::iter::repeat(0).take(n as usize))
    }

    fn splat(&self, x: BasicValueEnum<'ctx>, s: LaneShape) -> Result<VectorValue<'ctx>> {
        self.splat_n(x, s, s.lanes())
    }

    /// A constant integer vector of shape `s` with every lane `x`.
    fn const_splat(&self, s: LaneShape, x: u64) -> VectorValue<'ctx> {
        self.const_splat_n(s, s.lanes(), x)
    }

    /// A constant vector of `n` lanes of `s`'s integer lane type, all `x`.
    fn const_splat_n(&self, s: LaneShape, n: u32, x: u64) -> VectorValue<'ctx> {
        let t = self.lane_ty(s).into_int_type();
        let v: Vec<IntValue<'ctx>> = (0..n).map(|_| t.const_int(x, false)).collect();
        VectorType::const_vector(&v)
    }

    fn vcall(&self, name: &str, tys: &[BasicTypeEnum<'ctx>], args: &[BasicMetadataValueEnum<'ctx>]) -> Result<VectorValue<'ctx>> {
        Ok(self.call_intr(name, tys, args)?.into_vector_value())
    }

    fn vbin(&mut self, s: LaneShape, f: impl Fn(&Self, VectorValue<'ctx>, VectorValue<'ctx>) -> Result<VectorValue<'ctx>>) -> Result<()> {
        let r = self.popv(s)?;
        let l = self.popv(s)?;
        let v = f(self, l, r)?;
        self.pushv(v)
    }

    fn vun(&mut self, s: LaneShape, f: impl Fn(&Self, VectorValue<'ctx>) -> Result<VectorValue<'ctx>>) -> Result<()> {
        let a = self.popv(s)?;
        let v = f(self, a)?;
        self.pushv(v)
    }

    /// A binary LLVM intrinsic overloaded on the vector type.
    fn vbin_intr(&mut self, s: LaneShape, name: &str) -> Result<()> {
        let t: BasicTypeEnum = self.vty(s).into();
        self.vbin(s, |cx, l, r| cx.vcall(name, &[t], &[l.into(), r.into()]))
    }

    fn vcmp_i(&mut self, s: LaneShape, p: IntPredicate) -> Result<()> {
        self.vbin(s, |cx, l, r| {
            let c = cx.b.build_int_compare(p, l, r, "vc")?;
            Ok(cx.b.build_int_s_extend(c, cx.vty(s), "m")?)
        })
    }

    fn vcmp_f(&mut self, s: LaneShape, p: FloatPredicate) -> Result<()> {
        let it = if s == F32x4 { I32x4 } else { I64x2 };
        self.vbin(s, |cx, l, r| {
            let c = cx.b.build_float_compare(p, l, r, "vc")?;
            Ok(cx.b.build_int_s_extend(c, cx.vty(it), "m")?)
        })
    }

    fn vshift(&mut self, s: LaneShape, kind: Sh) -> Result<()> {
        let n = self.pop_i();
        let v = self.popv(s)?;
        // The count modulo the lane width.
        let n = self.b.build_and(n, self.i32().const_int(s.lane_bits() as u64 - 1, false), "sm")?;
        let lt = self.lane_ty(s).into_int_type();
        let n = match s.lane_bits() {
            64 => self.b.build_int_z_extend(n, lt, "sz")?,
            32 => n,
            _ => self.b.build_int_truncate(n, lt, "st")?,
        };
        let n = self.splat(n.into(), s)?;
        let r = match kind {
            Sh::Shl => self.b.build_left_shift(v, n, "vshl")?,
            Sh::ShrS => self.b.build_right_shift(v, n, true, "vsar")?,
            Sh::ShrU => self.b.build_right_shift(v, n, false, "vshr")?,
        };
        self.pushv(r)
    }

    /// Lanes `lo..lo+n` of `v`.
    fn half(&self, v: VectorValue<'ctx>, s: LaneShape, high: bool) -> Result<VectorValue<'ctx>> {
        let n = s.lanes() / 2;
        let lo = if high { n } else { 0 };
        self.shuffle(v, v, lo..lo + n)
    }

    /// Extend the low or high half of `v` (shape `s`) to the wider shape.
    fn extend_half(&self, v: VectorValue<'ctx>, s: LaneShape, high: bool, signed: bool) -> Result<VectorValue<'ctx>> {
        let h = self.half(v, s, high)?;
        let t = self.vty(s.wider());
        Ok(if signed { self.b.build_int_s_extend(h, t, "sx")? } else { self.b.build_int_z_extend(h, t, "zx")? })
    }

    /// Extend every lane of `v` (shape `s`) to twice its width (`2 * 128` bits).
    fn extend_all(&self, v: VectorValue<'ctx>, s: LaneShape, signed: bool) -> Result<VectorValue<'ctx>> {
        let t = self.vty_n(s.wider(), v.get_type().get_size());
        Ok(if signed { self.b.build_int_s_extend(v, t, "sx")? } else { self.b.build_int_z_extend(v, t, "zx")? })
    }

    /// Sum of adjacent lane pairs of the `2n`-lane vector `v`.
    fn pairwise_add(&self, v: VectorValue<'ctx>) -> Result<VectorValue<'ctx>> {
        let n = v.get_type().get_size();
        let even = self.shuffle(v, v, (0..n).step_by(2))?;
        let odd = self.shuffle(v, v, (1..n).step_by(2))?;
        Ok(self.b.build_int_add(even, odd, "pw")?)
    }

    fn smin_smax(&self, v: VectorValue<'ctx>, lo: i64, hi: i64) -> Result<VectorValue<'ctx>> {
        let t = v.get_type();
        let et = t.get_element_type().into_int_type();
        let c = |x: i64| -> VectorValue<'ctx> {
            let v: Vec<IntValue<'ctx>> = (0..t.get_size()).map(|_| et.const_int(x as u64, true)).collect();
            VectorType::const_vector(&v)
        };
        let tb: BasicTypeEnum = t.into();
        let v = self.vcall("llvm.smin", &[tb], &[v.into(), c(hi).into()])?;
        self.vcall("llvm.smax", &[tb], &[v.into(), c(lo).into()])
    }

    /// NaN lanes made the positive canonical NaN.
    fn vcanon(&self, v: VectorValue<'ctx>) -> Result<VectorValue<'ctx>> {
        let s = if v.get_type().get_size() == 4 { F32x4 } else { F64x2 };
        let canonical = if s == F32x4 { 0x7fc0_0000u64 } else { 0x7ff8_0000_0000_0000 };
        let it = if s == F32x4 { I32x4 } else { I64x2 };
        let c = self.cast(self.const_splat(it, canonical), self.vty(s))?;
        let nan = self.b.build_float_compare(FloatPredicate::UNO, v, v, "nan")?;
        Ok(self.b.build_select(nan, c, v, "canon")?.into_vector_value())
    }

    /// NaN lanes quieted (quiet bit set); other lanes unchanged.
    fn vquiet(&self, v: VectorValue<'ctx>) -> Result<VectorValue<'ctx>> {
        let s = if v.get_type().get_size() == 4 { F32x4 } else { F64x2 };
        let (it, bit) = if s == F32x4 { (I32x4, 1u64 << 22) } else { (I64x2, 1u64 << 51) };
        let bits = self.cast(v, self.vty(it))?;
        let q = self.b.build_or(bits, self.const_splat(it, bit), "qb")?;
        let q = self.cast(q, self.vty(s))?;
        let nan = self.b.build_float_compare(FloatPredicate::UNO, v, v, "nan")?;
        Ok(self.b.build_select(nan, q, v, "qn")?.into_vector_value())
    }

    /// Float lane arithmetic (`add` ... `div`): NaN rules as the scalar ones.
    fn vfarith(&mut self, s: LaneShape, f: impl Fn(&Self, VectorValue<'ctx>, VectorValue<'ctx>) -> Result<VectorValue<'ctx>>) -> Result<()> {
        let r = self.popv(s)?;
        let l = self.popv(s)?;
        // LLVM folds an operation with an identity constant to the other
        // operand (letting a signalling NaN through): quiet NaN lanes then.
        let konst = l.is_const() || r.is_const();
        let v = f(self, l, r)?;
        let v = if self.canonicalize_nans {
            self.vcanon(v)?
        } else if konst {
            self.vquiet(v)?
        } else {
            v
        };
        self.pushv(v)
    }

    /// A unary float intrinsic that computes (rounding, `sqrt`).
    fn vfun_arith(&mut self, s: LaneShape, name: &str) -> Result<()> {
        let a = self.popv(s)?;
        let t: BasicTypeEnum = self.vty(s).into();
        let v = self.vcall(name, &[t], &[a.into()])?;
        let v = if self.canonicalize_nans { self.vcanon(v)? } else { v };
        self.pushv(v)
    }

    /// `min`/`max`: IEEE 754-2019 minimum/maximum, NaN lanes quiet.
    fn vfminmax(&mut self, s: LaneShape, name: &str) -> Result<()> {
        let r = self.popv(s)?;
        let l = self.popv(s)?;
        let t: BasicTypeEnum = self.vty(s).into();
        let v = self.vcall(name, &[t], &[l.into(), r.into()])?;
        let v = if self.canonicalize_nans {
            self.vcanon(v)?
        } else {
            let nan = self.b.build_float_compare(FloatPredicate::UNO, v, v, "nan")?;
            let quiet = self.b.build_float_add(l, r, "q")?;
            self.b.build_select(nan, quiet, v, "mm")?.into_vector_value()
        };
        self.pushv(v)
    }

    /// Effective address of a SIMD memory access of `size` bytes (pops the
    /// address; traps out of bounds in both bounds-check modes).
    fn vaddr(&mut self, memarg: &wasmparser::MemArg, size: u64) -> Result<inkwell::values::PointerValue<'ctx>> {
        self.addr(memarg.offset, size)
    }

    fn vload(&mut self, memarg: &wasmparser::MemArg, ty: BasicTypeEnum<'ctx>, size: u64) -> Result<BasicValueEnum<'ctx>> {
        let p = self.vaddr(memarg, size)?;
        let v = self.b.build_load(ty, p, "vld")?;
        v.as_instruction_value().unwrap().set_alignment(1).map_err(|e| CompileError::Llvm(e.to_string()))?;
        self.m.tbaa(v.as_instruction_value().unwrap(), crate::codegen::Tbaa::Memory);
        Ok(v)
    }

    fn vstore(&mut self, p: inkwell::values::PointerValue<'ctx>, v: BasicValueEnum<'ctx>) -> Result<()> {
        let st = self.b.build_store(p, v)?;
        st.set_alignment(1).map_err(|e| CompileError::Llvm(e.to_string()))?;
        self.m.tbaa(st, crate::codegen::Tbaa::Memory);
        Ok(())
    }

    /// `i8x16.swizzle`: lane `i` is `a[s[i]]`, or 0 when `s[i] >= 16`.
    fn swizzle(&mut self) -> Result<()> {
        let idx = self.popv(I8x16)?;
        let a = self.popv(I8x16)?;
        let r = if self.x86 {
            // pshufb zeroes a lane whose index has the top bit set and uses
            // the low 4 bits otherwise: 0..15 + 0x70 keeps them, 16.. saturate to >= 0x80.
            let t: BasicTypeEnum = self.vty(I8x16).into();
            let i = self.vcall("llvm.uadd.sat", &[t], &[idx.into(), self.const_splat(I8x16, 0x70).into()])?;
            self.vcall("llvm.x86.ssse3.pshuf.b.128", &[], &[a.into(), i.into()])?
        } else {
            // tbl gives 0 for an index out of the table.
            self.vcall("llvm.aarch64.neon.tbl1", &[self.vty(I8x16).into()], &[a.into(), idx.into()])?
        };
        self.pushv(r)
    }

    /// Code for a SIMD instruction; `false` if `op` is not one.
    pub(super) fn simd_op(&mut self, op: &O) -> Result<bool> {
        let c = self.m.ctx;
        match *op {
            // ---- memory
            O::V128Load { memarg } => {
                let v = self.vload(&memarg, self.v128_ty().into(), 16)?;
                self.push(v);
            }
            O::V128Load8x8S { memarg } | O::V128Load8x8U { memarg } => {
                let v = self.vload(&memarg, self.vty_n(I8x16, 8).into(), 8)?.into_vector_value();
                let v = self.extend_all(v, I8x16, matches!(op, O::V128Load8x8S { .. }))?;
                self.pushv(v)?;
            }
            O::V128Load16x4S { memarg } | O::V128Load16x4U { memarg } => {
                let v = self.vload(&memarg, self.vty_n(I16x8, 4).into(), 8)?.into_vector_value();
                let v = self.extend_all(v, I16x8, matches!(op, O::V128Load16x4S { .. }))?;
                self.pushv(v)?;
            }
            O::V128Load32x2S { memarg } | O::V128Load32x2U { memarg } => {
                let v = self.vload(&memarg, self.vty_n(I32x4, 2).into(), 8)?.into_vector_value();
                let v = self.extend_all(v, I32x4, matches!(op, O::V128Load32x2S { .. }))?;
                self.pushv(v)?;
            }
            O::V128Load8Splat { memarg } | O::V128Load16Splat { memarg } | O::V128Load32Splat { memarg } | O::V128Load64Splat { memarg } => {
                let s = match op {
                    O::V128Load8Splat { .. } => I8x16,
                    O::V128Load16Splat { .. } => I16x8,
                    O::V128Load32Splat { .. } => I32x4,
                    _ => I64x2,
                };
                let x = self.vload(&memarg, self.lane_ty(s), s.lane_bits() as u64 / 8)?;
                let v = self.splat(x, s)?;
                self.pushv(v)?;
            }
            O::V128Load32Zero { memarg } | O::V128Load64Zero { memarg } => {
                let s = if matches!(op, O::V128Load32Zero { .. }) { I32x4 } else { I64x2 };
                let x = self.vload(&memarg, self.lane_ty(s), s.lane_bits() as u64 / 8)?;
                let v = self.b.build_insert_element(self.vty(s).const_zero(), x, self.lane_idx(0), "lz")?;
                self.pushv(v)?;
            }
            O::V128Store { memarg } => {
                let v = self.pop();
                let p = self.vaddr(&memarg, 16)?;
                self.vstore(p, v)?;
            }
            O::V128Load8Lane { memarg, lane }
            | O::V128Load16Lane { memarg, lane }
            | O::V128Load32Lane { memarg, lane }
            | O::V128Load64Lane { memarg, lane } => {
                let s = match op {
                    O::V128Load8Lane { .. } => I8x16,
                    O::V128Load16Lane { .. } => I16x8,
                    O::V128Load32Lane { .. } => I32x4,
                    _ => I64x2,
                };
                let v = self.popv(s)?;
                let x = self.vload(&memarg, self.lane_ty(s), s.lane_bits() as u64 / 8)?;
                let r = self.b.build_insert_element(v, x, self.lane_idx(lane as u32), "ll")?;
                self.pushv(r)?;
            }
            O::V128Store8Lane { memarg, lane }
            | O::V128Store16Lane { memarg, lane }
            | O::V128Store32Lane { memarg, lane }
            | O::V128Store64Lane { memarg, lane } => {
                let s = match op {
                    O::V128Store8Lane { .. } => I8x16,
                    O::V128Store16Lane { .. } => I16x8,
                    O::V128Store32Lane { .. } => I32x4,
                    _ => I64x2,
                };
                let v = self.popv(s)?;
                let x = self.b.build_extract_element(v, self.lane_idx(lane as u32), "sl")?;
                let p = self.vaddr(&memarg, s.lane_bits() as u64 / 8)?;
                self.vstore(p, x)?;
            }
            // ---- constants, lanes, shuffles
            O::V128Const { value } => {
                let b = value.bytes();
                let lanes: Vec<IntValue<'ctx>> = (0..4)
                    .map(|i| self.i32().const_int(u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) as u64, false))
                    .collect();
                self.push(VectorType::const_vector(&lanes));
            }
            O::I8x16Shuffle { lanes } => {
                let r = self.popv(I8x16)?;
                let l = self.popv(I8x16)?;
                let v = self.shuffle(l, r, lanes.iter().map(|&x| x as u32))?;
                self.pushv(v)?;
            }
            O::I8x16Swizzle => self.swizzle()?,
            O::I8x16ExtractLaneS { lane } | O::I8x16ExtractLaneU { lane } | O::I16x8ExtractLaneS { lane } | O::I16x8ExtractLaneU { lane } => {
                let s = if matches!(op, O::I8x16ExtractLaneS { .. } | O::I8x16ExtractLaneU { .. }) { I8x16 } else { I16x8 };
                let v = self.popv(s)?;
                let x = self.b.build_extract_element(v, self.lane_idx(lane as u32), "el")?.into_int_value();
                let r = if matches!(op, O::I8x16ExtractLaneS { .. } | O::I16x8ExtractLaneS { .. }) {
                    self.b.build_int_s_extend(x, self.i32(), "sx")?
                } else {
                    self.b.build_int_z_extend(x, self.i32(), "zx")?
                };
                self.push(r);
            }
            O::I32x4ExtractLane { lane } | O::I64x2ExtractLane { lane } | O::F32x4ExtractLane { lane } | O::F64x2ExtractLane { lane } => {
                let s = match op {
                    O::I32x4ExtractLane { .. } => I32x4,
                    O::I64x2ExtractLane { .. } => I64x2,
                    O::F32x4ExtractLane { .. } => F32x4,
                    _ => F64x2,
                };
                let v = self.popv(s)?;
                let x = self.b.build_extract_element(v, self.lane_idx(lane as u32), "el")?;
                self.push(x);
            }
            O::I8x16ReplaceLane { lane }
            | O::I16x8ReplaceLane { lane }
            | O::I32x4ReplaceLane { lane }
            | O::I64x2ReplaceLane { lane }
            | O::F32x4ReplaceLane { lane }
            | O::F64x2ReplaceLane { lane } => {
                let s = match op {
                    O::I8x16ReplaceLane { .. } => I8x16,
                    O::I16x8ReplaceLane { .. } => I16x8,
                    O::I32x4ReplaceLane { .. } => I32x4,
                    O::I64x2ReplaceLane { .. } => I64x2,
                    O::F32x4ReplaceLane { .. } => F32x4,
                    _ => F64x2,
                };
                let x = self.pop();
                let x = if s.lane_bits() < 32 {
                    self.b.build_int_truncate(x.into_int_value(), self.lane_ty(s).into_int_type(), "tr")?.into()
                } else {
                    x
                };
                let v = self.popv(s)?;
                let r = self.b.build_insert_element(v, x, self.lane_idx(lane as u32), "rl")?;
                self.pushv(r)?;
            }
            O::I8x16Splat | O::I16x8Splat | O::I32x4Splat | O::I64x2Splat | O::F32x4Splat | O::F64x2Splat => {
                let s = match op {
                    O::I8x16Splat => I8x16,
                    O::I16x8Splat => I16x8,
                    O::I32x4Splat => I32x4,
                    O::I64x2Splat => I64x2,
                    O::F32x4Splat => F32x4,
                    _ => F64x2,
                };
                let x = self.pop();
                let x = if s.lane_bits() < 32 {
                    self.b.build_int_truncate(x.into_int_value(), self.lane_ty(s).into_int_type(), "tr")?.into()
                } else {
                    x
                };
                let v = self.splat(x, s)?;
                self.pushv(v)?;
            }
            // ---- comparisons
            O::I8x16Eq => self.vcmp_i(I8x16, IntPredicate::EQ)?,
            O::I8x16Ne => self.vcmp_i(I8x16, IntPredicate::NE)?,
            O::I8x16LtS => self.vcmp_i(I8x16, IntPredicate::SLT)?,
            O::I8x16LtU => self.vcmp_i(I8x16, IntPredicate::ULT)?,
            O::I8x16GtS => self.vcmp_i(I8x16, IntPredicate::SGT)?,
            O::I8x16GtU => self.vcmp_i(I8x16, IntPredicate::UGT)?,
            O::I8x16LeS => self.vcmp_i(I8x16, IntPredicate::SLE)?,
            O::I8x16LeU => self.vcmp_i(I8x16, IntPredicate::ULE)?,
            O::I8x16GeS => self.vcmp_i(I8x16, IntPredicate::SGE)?,
            O::I8x16GeU => self.vcmp_i(I8x16, IntPredicate::UGE)?,
            O::I16x8Eq => self.vcmp_i(I16x8, IntPredicate::EQ)?,
            O::I16x8Ne => self.vcmp_i(I16x8, IntPredicate::NE)?,
            O::I16x8LtS => self.vcmp_i(I16x8, IntPredicate::SLT)?,
            O::I16x8LtU => self.vcmp_i(I16x8, IntPredicate::ULT)?,
            O::I16x8GtS => self.vcmp_i(I16x8, IntPredicate::SGT)?,
            O::I16x8GtU => self.vcmp_i(I16x8, IntPredicate::UGT)?,
            O::I16x8LeS => self.vcmp_i(I16x8, IntPredicate::SLE)?,
            O::I16x8LeU => self.vcmp_i(I16x8, IntPredicate::ULE)?,
            O::I16x8GeS => self.vcmp_i(I16x8, IntPredicate::SGE)?,
            O::I16x8GeU => self.vcmp_i(I16x8, IntPredicate::UGE)?,
            O::I32x4Eq => self.vcmp_i(I32x4, IntPredicate::EQ)?,
            O::I32x4Ne => self.vcmp_i(I32x4, IntPredicate::NE)?,
            O::I32x4LtS => self.vcmp_i(I32x4, IntPredicate::SLT)?,
            O::I32x4LtU => self.vcmp_i(I32x4, IntPredicate::ULT)?,
            O::I32x4GtS => self.vcmp_i(I32x4, IntPredicate::SGT)?,
            O::I32x4GtU => self.vcmp_i(I32x4, IntPredicate::UGT)?,
            O::I32x4LeS => self.vcmp_i(I32x4, IntPredicate::SLE)?,
            O::I32x4LeU => self.vcmp_i(I32x4, IntPredicate::ULE)?,
            O::I32x4GeS => self.vcmp_i(I32x4, IntPredicate::SGE)?,
            O::I32x4GeU => self.vcmp_i(I32x4, IntPredicate::UGE)?,
            O::I64x2Eq => self.vcmp_i(I64x2, IntPredicate::EQ)?,
            O::I64x2Ne => self.vcmp_i(I64x2, IntPredicate::NE)?,
            O::I64x2LtS => self.vcmp_i(I64x2, IntPredicate::SLT)?,
            O::I64x2GtS => self.vcmp_i(I64x2, IntPredicate::SGT)?,
            O::I64x2LeS => self.vcmp_i(I64x2, IntPredicate::SLE)?,
            O::I64x2GeS => self.vcmp_i(I64x2, IntPredicate::SGE)?,
            O::F32x4Eq => self.vcmp_f(F32x4, FloatPredicate::OEQ)?,
            O::F32x4Ne => self.vcmp_f(F32x4, FloatPredicate::UNE)?,
            O::F32x4Lt => self.vcmp_f(F32x4, FloatPredicate::OLT)?,
            O::F32x4Gt => self.vcmp_f(F32x4, FloatPredicate::OGT)?,
            O::F32x4Le => self.vcmp_f(F32x4, FloatPredicate::OLE)?,
            O::F32x4Ge => self.vcmp_f(F32x4, FloatPredicate::OGE)?,
            O::F64x2Eq => self.vcmp_f(F64x2, FloatPredicate::OEQ)?,
            O::F64x2Ne => self.vcmp_f(F64x2, FloatPredicate::UNE)?,
            O::F64x2Lt => self.vcmp_f(F64x2, FloatPredicate::OLT)?,
            O::F64x2Gt => self.vcmp_f(F64x2, FloatPredicate::OGT)?,
            O::F64x2Le => self.vcmp_f(F64x2, FloatPredicate::OLE)?,
            O::F64x2Ge => self.vcmp_f(F64x2, FloatPredicate::OGE)?,
            // ---- bitwise
            O::V128Not => self.vun(I32x4, |cx, a| Ok(cx.b.build_not(a, "not")?))?,
            O::V128And => self.vbin(I32x4, |cx, l, r| Ok(cx.b.build_and(l, r, "and")?))?,
            O::V128AndNot => self.vbin(I32x4, |cx, l, r| {
                let n = cx.b.build_not(r, "not")?;
                Ok(cx.b.build_and(l, n, "andn")?)
            })?,
            O::V128Or => self.vbin(I32x4, |cx, l, r| Ok(cx.b.build_or(l, r, "or")?))?,
            O::V128Xor => self.vbin(I32x4, |cx, l, r| Ok(cx.b.build_xor(l, r, "xor")?))?,
            O::V128Bitselect => {
                let m = self.popv(I32x4)?;
                let b = self.popv(I32x4)?;
                let a = self.popv(I32x4)?;
                let x = self.b.build_and(a, m, "bs1")?;
                let nm = self.b.build_not(m, "nm")?;
                let y = self.b.build_and(b, nm, "bs2")?;
                let r = self.b.build_or(x, y, "bs")?;
                self.pushv(r)?;
            }
            O::V128AnyTrue => {
                let v = self.pop();
                let i = self.b.build_bit_cast(v, c.i128_type(), "i128")?.into_int_value();
                let nz = self.b.build_int_compare(IntPredicate::NE, i, c.i128_type().const_zero(), "any")?;
                let r = self.b.build_int_z_extend(nz, self.i32(), "z")?;
                self.push(r);
            }
            O::I8x16AllTrue | O::I16x8AllTrue | O::I32x4AllTrue | O::I64x2AllTrue => {
                let s = match op {
                    O::I8x16AllTrue => I8x16,
                    O::I16x8AllTrue => I16x8,
                    O::I32x4AllTrue => I32x4,
                    _ => I64x2,
                };
                let v = self.popv(s)?;
                let nz = self.b.build_int_compare(IntPredicate::NE, v, self.vty(s).const_zero(), "nz")?;
                let it = c.custom_width_int_type(std::num::NonZeroU32::new(s.lanes()).expect("lanes")).expect("iN");
                let bits = self.b.build_bit_cast(nz, it, "bits")?.into_int_value();
                let all = self.b.build_int_compare(IntPredicate::EQ, bits, it.const_all_ones(), "all")?;
                let r = self.b.build_int_z_extend(all, self.i32(), "z")?;
                self.push(r);
            }
            O::I8x16Bitmask | O::I16x8Bitmask | O::I32x4Bitmask | O::I64x2Bitmask => {
                let s = match op {
                    O::I8x16Bitmask => I8x16,
                    O::I16x8Bitmask => I16x8,
                    O::I32x4Bitmask => I32x4,
                    _ => I64x2,
                };
                let v = self.popv(s)?;
                let neg = self.b.build_int_compare(IntPredicate::SLT, v, self.vty(s).const_zero(), "neg")?;
                let it = c.custom_width_int_type(std::num::NonZeroU32::new(s.lanes()).expect("lanes")).expect("iN");
                let bits = self.b.build_bit_cast(neg, it, "bits")?.into_int_value();
                let r = self.b.build_int_z_extend(bits, self.i32(), "z")?;
                self.push(r);
            }
            // ---- integer arithmetic
            O::I8x16Abs | O::I16x8Abs | O::I32x4Abs | O::I64x2Abs => {
                let s = match op {
                    O::I8x16Abs => I8x16,
                    O::I16x8Abs => I16x8,
                    O::I32x4Abs => I32x4,
                    _ => I64x2,
                };
                let t: BasicTypeEnum = self.vty(s).into();
                let f = c.bool_type().const_zero();
                self.vun(s, |cx, a| cx.vcall("llvm.abs", &[t], &[a.into(), f.into()]))?;
            }
            O::I8x16Neg | O::I16x8Neg | O::I32x4Neg | O::I64x2Neg => {
                let s = match op {
                    O::I8x16Neg => I8x16,
                    O::I16x8Neg => I16x8,
                    O::I32x4Neg => I32x4,
                    _ => I64x2,
                };
                self.vun(s, |cx, a| Ok(cx.b.build_int_sub(cx.vty(s).const_zero(), a, "neg")?))?;
            }
            O::I8x16Popcnt => {
                let t: BasicTypeEnum = self.vty(I8x16).into();
                self.vun(I8x16, |cx, a| cx.vcall("llvm.ctpop", &[t], &[a.into()]))?;
            }
            O::I8x16Shl => self.vshift(I8x16, Sh::Shl)?,
            O::I8x16ShrS => self.vshift(I8x16, Sh::ShrS)?,
            O::I8x16ShrU => self.vshift(I8x16, Sh::ShrU)?,
            O::I16x8Shl => self.vshift(I16x8, Sh::Shl)?,
            O::I16x8ShrS => self.vshift(I16x8, Sh::ShrS)?,
            O::I16x8ShrU => self.vshift(I16x8, Sh::ShrU)?,
            O::I32x4Shl => self.vshift(I32x4, Sh::Shl)?,
            O::I32x4ShrS => self.vshift(I32x4, Sh::ShrS)?,
            O::I32x4ShrU => self.vshift(I32x4, Sh::ShrU)?,
            O::I64x2Shl => self.vshift(I64x2, Sh::Shl)?,
            O::I64x2ShrS => self.vshift(I64x2, Sh::ShrS)?,
            O::I64x2ShrU => self.vshift(I64x2, Sh::ShrU)?,
            O::I8x16Add | O::I16x8Add | O::I32x4Add | O::I64x2Add => {
                let s = match op {
                    O::I8x16Add => I8x16,
                    O::I16x8Add => I16x8,
                    O::I32x4Add => I32x4,
                    _ => I64x2,
                };
                self.vbin(s, |cx, l, r| Ok(cx.b.build_int_add(l, r, "add")?))?;
            }
            O::I8x16Sub | O::I16x8Sub | O::I32x4Sub | O::I64x2Sub => {
                let s = match op {
                    O::I8x16Sub => I8x16,
                    O::I16x8Sub => I16x8,
                    O::I32x4Sub => I32x4,
                    _ => I64x2,
                };
                self.vbin(s, |cx, l, r| Ok(cx.b.build_int_sub(l, r, "sub")?))?;
            }
            O::I16x8Mul | O::I32x4Mul | O::I64x2Mul => {
                let s = match op {
                    O::I16x8Mul => I16x8,
                    O::I32x4Mul => I32x4,
                    _ => I64x2,
                };
                self.vbin(s, |cx, l, r| Ok(cx.b.build_int_mul(l, r, "mul")?))?;
            }
            O::I8x16AddSatS => self.vbin_intr(I8x16, "llvm.sadd.sat")?,
            O::I8x16AddSatU => self.vbin_intr(I8x16, "llvm.uadd.sat")?,
            O::I8x16SubSatS => self.vbin_intr(I8x16, "llvm.ssub.sat")?,
            O::I8x16SubSatU => self.vbin_intr(I8x16, "llvm.usub.sat")?,
            O::I16x8AddSatS => self.vbin_intr(I16x8, "llvm.sadd.sat")?,
            O::I16x8AddSatU => self.vbin_intr(I16x8, "llvm.uadd.sat")?,
            O::I16x8SubSatS => self.vbin_intr(I16x8, "llvm.ssub.sat")?,
            O::I16x8SubSatU => self.vbin_intr(I16x8, "llvm.usub.sat")?,
            O::I8x16MinS => self.vbin_intr(I8x16, "llvm.smin")?,
            O::I8x16MinU => self.vbin_intr(I8x16, "llvm.umin")?,
            O::I8x16MaxS => self.vbin_intr(I8x16, "llvm.smax")?,
            O::I8x16MaxU => self.vbin_intr(I8x16, "llvm.umax")?,
            O::I16x8MinS => self.vbin_intr(I16x8, "llvm.smin")?,
            O::I16x8MinU => self.vbin_intr(I16x8, "llvm.umin")?,
            O::I16x8MaxS => self.vbin_intr(I16x8, "llvm.smax")?,
            O::I16x8MaxU => self.vbin_intr(I16x8, "llvm.umax")?,
            O::I32x4MinS => self.vbin_intr(I32x4, "llvm.smin")?,
            O::I32x4MinU => self.vbin_intr(I32x4, "llvm.umin")?,
            O::I32x4MaxS => self.vbin_intr(I32x4, "llvm.smax")?,
            O::I32x4MaxU => self.vbin_intr(I32x4, "llvm.umax")?,
            O::I8x16AvgrU | O::I16x8AvgrU => {
                let s = if matches!(op, O::I8x16AvgrU) { I8x16 } else { I16x8 };
                self.vbin(s, |cx, l, r| {
                    // (l + r + 1) >> 1 without overflow: in lanes twice as wide.
                    let l = cx.extend_all(l, s, false)?;
                    let r = cx.extend_all(r, s, false)?;
                    let one = cx.const_splat_n(s.wider(), s.lanes(), 1);
                    let sum = cx.b.build_int_add(l, r, "s")?;
                    let sum = cx.b.build_int_add(sum, one, "s1")?;
                    let h = cx.b.build_right_shift(sum, one, false, "h")?;
                    Ok(cx.b.build_int_truncate(h, cx.vty(s), "avg")?)
                })?;
            }
            O::I8x16NarrowI16x8S | O::I8x16NarrowI16x8U | O::I16x8NarrowI32x4S | O::I16x8NarrowI32x4U => {
                let (from, to) = if matches!(op, O::I8x16NarrowI16x8S | O::I8x16NarrowI16x8U) { (I16x8, I8x16) } else { (I32x4, I16x8) };
                let signed = matches!(op, O::I8x16NarrowI16x8S | O::I16x8NarrowI32x4S);
                let r = self.popv(from)?;
                let l = self.popv(from)?;
                let both = self.shuffle(l, r, 0..2 * from.lanes())?;
                let bits = to.lane_bits();
                let (lo, hi) = if signed { (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1) } else { (0, (1i64 << bits) - 1) };
                let cl = self.smin_smax(both, lo, hi)?;
                let v = self.b.build_int_truncate(cl, self.vty(to), "nar")?;
                self.pushv(v)?;
            }
            O::I16x8ExtendLowI8x16S | O::I16x8ExtendHighI8x16S | O::I16x8ExtendLowI8x16U | O::I16x8ExtendHighI8x16U
            | O::I32x4ExtendLowI16x8S | O::I32x4ExtendHighI16x8S | O::I32x4ExtendLowI16x8U | O::I32x4ExtendHighI16x8U
            | O::I64x2ExtendLowI32x4S | O::I64x2ExtendHighI32x4S | O::I64x2ExtendLowI32x4U | O::I64x2ExtendHighI32x4U => {
                let (s, high, signed) = match op {
                    O::I16x8ExtendLowI8x16S => (I8x16, false, true),
                    O::I16x8ExtendHighI8x16S => (I8x16, true, true),
                    O::I16x8ExtendLowI8x16U => (I8x16, false, false),
                    O::I16x8ExtendHighI8x16U => (I8x16, true, false),
                    O::I32x4ExtendLowI16x8S => (I16x8, false, true),
                    O::I32x4ExtendHighI16x8S => (I16x8, true, true),
                    O::I32x4ExtendLowI16x8U => (I16x8, false, false),
                    O::I32x4ExtendHighI16x8U => (I16x8, true, false),
                    O::I64x2ExtendLowI32x4S => (I32x4, false, true),
                    O::I64x2ExtendHighI32x4S => (I32x4, true, true),
                    O::I64x2ExtendLowI32x4U => (I32x4, false, false),
                    _ => (I32x4, true, false),
                };
                let v = self.popv(s)?;
                let r = self.extend_half(v, s, high, signed)?;
                self.pushv(r)?;
            }
            O::I16x8ExtMulLowI8x16S | O::I16x8ExtMulHighI8x16S | O::I16x8ExtMulLowI8x16U | O::I16x8ExtMulHighI8x16U
            | O::I32x4ExtMulLowI16x8S | O::I32x4ExtMulHighI16x8S | O::I32x4ExtMulLowI16x8U | O::I32x4ExtMulHighI16x8U
            | O::I64x2ExtMulLowI32x4S | O::I64x2ExtMulHighI32x4S | O::I64x2ExtMulLowI32x4U | O::I64x2ExtMulHighI32x4U => {
                let (s, high, signed) = match op {
                    O::I16x8ExtMulLowI8x16S => (I8x16, false, true),
                    O::I16x8ExtMulHighI8x16S => (I8x16, true, true),
                    O::I16x8ExtMulLowI8x16U => (I8x16, false, false),
                    O::I16x8ExtMulHighI8x16U => (I8x16, true, false),
                    O::I32x4ExtMulLowI16x8S => (I16x8, false, true),
                    O::I32x4ExtMulHighI16x8S => (I16x8, true, true),
                    O::I32x4ExtMulLowI16x8U => (I16x8, false, false),
                    O::I32x4ExtMulHighI16x8U => (I16x8, true, false),
                    O::I64x2ExtMulLowI32x4S => (I32x4, false, true),
                    O::I64x2ExtMulHighI32x4S => (I32x4, true, true),
                    O::I64x2ExtMulLowI32x4U => (I32x4, false, false),
                    _ => (I32x4, true, false),
                };
                let r = self.popv(s)?;
                let l = self.popv(s)?;
                let l = self.extend_half(l, s, high, signed)?;
                let r = self.extend_half(r, s, high, signed)?;
                let v = self.b.build_int_mul(l, r, "em")?;
                self.pushv(v)?;
            }
            O::I16x8ExtAddPairwiseI8x16S | O::I16x8ExtAddPairwiseI8x16U | O::I32x4ExtAddPairwiseI16x8S | O::I32x4ExtAddPairwiseI16x8U => {
                let s = if matches!(op, O::I16x8ExtAddPairwiseI8x16S | O::I16x8ExtAddPairwiseI8x16U) { I8x16 } else { I16x8 };
                let signed = matches!(op, O::I16x8ExtAddPairwiseI8x16S | O::I32x4ExtAddPairwiseI16x8S);
                let v = self.popv(s)?;
                let w = self.extend_all(v, s, signed)?;
                let r = self.pairwise_add(w)?;
                self.pushv(r)?;
            }
            O::I32x4DotI16x8S => {
                let r = self.popv(I16x8)?;
                let l = self.popv(I16x8)?;
                let l = self.extend_all(l, I16x8, true)?;
                let r = self.extend_all(r, I16x8, true)?;
                let p = self.b.build_int_mul(l, r, "dp")?;
                let v = self.pairwise_add(p)?;
                self.pushv(v)?;
            }
            O::I16x8Q15MulrSatS => {
                let r = self.popv(I16x8)?;
                let l = self.popv(I16x8)?;
                let l = self.extend_all(l, I16x8, true)?;
                let r = self.extend_all(r, I16x8, true)?;
                let p = self.b.build_int_mul(l, r, "qm")?;
                let p = self.b.build_int_add(p, self.const_splat_n(I32x4, 8, 0x4000), "qr")?;
                let p = self.b.build_right_shift(p, self.const_splat_n(I32x4, 8, 15), true, "qs")?;
                let p = self.smin_smax(p, -32768, 32767)?;
                let v = self.b.build_int_truncate(p, self.vty(I16x8), "q15")?;
                self.pushv(v)?;
            }
            // ---- float arithmetic
            O::F32x4Abs | O::F64x2Abs => {
                let s = if matches!(op, O::F32x4Abs) { F32x4 } else { F64x2 };
                let t: BasicTypeEnum = self.vty(s).into();
                self.vun(s, |cx, a| cx.vcall("llvm.fabs", &[t], &[a.into()]))?;
            }
            O::F32x4Neg | O::F64x2Neg => {
                let s = if matches!(op, O::F32x4Neg) { F32x4 } else { F64x2 };
                self.vun(s, |cx, a| Ok(cx.b.build_float_neg(a, "fneg")?))?;
            }
            O::F32x4Sqrt => self.vfun_arith(F32x4, "llvm.sqrt")?,
            O::F64x2Sqrt => self.vfun_arith(F64x2, "llvm.sqrt")?,
            O::F32x4Ceil => self.vfun_arith(F32x4, "llvm.ceil")?,
            O::F64x2Ceil => self.vfun_arith(F64x2, "llvm.ceil")?,
            O::F32x4Floor => self.vfun_arith(F32x4, "llvm.floor")?,
            O::F64x2Floor => self.vfun_arith(F64x2, "llvm.floor")?,
            O::F32x4Trunc => self.vfun_arith(F32x4, "llvm.trunc")?,
            O::F64x2Trunc => self.vfun_arith(F64x2, "llvm.trunc")?,
            O::F32x4Nearest => self.vfun_arith(F32x4, "llvm.roundeven")?,
            O::F64x2Nearest => self.vfun_arith(F64x2, "llvm.roundeven")?,
            O::F32x4Add => self.vfarith(F32x4, |cx, l, r| Ok(cx.b.build_float_add(l, r, "fadd")?))?,
            O::F64x2Add => self.vfarith(F64x2, |cx, l, r| Ok(cx.b.build_float_add(l, r, "fadd")?))?,
            O::F32x4Sub => self.vfarith(F32x4, |cx, l, r| Ok(cx.b.build_float_sub(l, r, "fsub")?))?,
            O::F64x2Sub => self.vfarith(F64x2, |cx, l, r| Ok(cx.b.build_float_sub(l, r, "fsub")?))?,
            O::F32x4Mul => self.vfarith(F32x4, |cx, l, r| Ok(cx.b.build_float_mul(l, r, "fmul")?))?,
            O::F64x2Mul => self.vfarith(F64x2, |cx, l, r| Ok(cx.b.build_float_mul(l, r, "fmul")?))?,
            O::F32x4Div => self.vfarith(F32x4, |cx, l, r| Ok(cx.b.build_float_div(l, r, "fdiv")?))?,
            O::F64x2Div => self.vfarith(F64x2, |cx, l, r| Ok(cx.b.build_float_div(l, r, "fdiv")?))?,
            O::F32x4Min => self.vfminmax(F32x4, "llvm.minimum")?,
            O::F64x2Min => self.vfminmax(F64x2, "llvm.minimum")?,
            O::F32x4Max => self.vfminmax(F32x4, "llvm.maximum")?,
            O::F64x2Max => self.vfminmax(F64x2, "llvm.maximum")?,
            O::F32x4PMin | O::F64x2PMin | O::F32x4PMax | O::F64x2PMax => {
                let s = if matches!(op, O::F32x4PMin | O::F32x4PMax) { F32x4 } else { F64x2 };
                let min = matches!(op, O::F32x4PMin | O::F64x2PMin);
                self.vbin(s, |cx, a, b| {
                    // pmin: b < a ? b : a; pmax: a < b ? b : a (an operand, bit for bit).
                    let c = if min {
                        cx.b.build_float_compare(FloatPredicate::OLT, b, a, "pm")?
                    } else {
                        cx.b.build_float_compare(FloatPredicate::OLT, a, b, "pm")?
                    };
                    Ok(cx.b.build_select(c, b, a, "pm")?.into_vector_value())
                })?;
            }
            // ---- conversions
            O::I32x4TruncSatF32x4S | O::I32x4TruncSatF32x4U => {
                let name = if matches!(op, O::I32x4TruncSatF32x4S) { "llvm.fptosi.sat" } else { "llvm.fptoui.sat" };
                let tys = [self.vty(I32x4).into(), self.vty(F32x4).into()];
                self.vun(F32x4, |cx, a| cx.vcall(name, &tys, &[a.into()]))?;
            }
            O::I32x4TruncSatF64x2SZero | O::I32x4TruncSatF64x2UZero => {
                let name = if matches!(op, O::I32x4TruncSatF64x2SZero) { "llvm.fptosi.sat" } else { "llvm.fptoui.sat" };
                let v2 = self.vty_n(I32x4, 2);
                let tys = [v2.into(), self.vty(F64x2).into()];
                self.vun(F64x2, |cx, a| {
                    let t = cx.vcall(name, &tys, &[a.into()])?;
                    cx.shuffle(t, v2.const_zero(), 0..4)
                })?;
            }
            O::F32x4ConvertI32x4S => self.vun(I32x4, |cx, a| Ok(cx.b.build_signed_int_to_float(a, cx.vty(F32x4), "cv")?))?,
            O::F32x4ConvertI32x4U => self.vun(I32x4, |cx, a| Ok(cx.b.build_unsigned_int_to_float(a, cx.vty(F32x4), "cv")?))?,
            O::F64x2ConvertLowI32x4S | O::F64x2ConvertLowI32x4U => {
                let signed = matches!(op, O::F64x2ConvertLowI32x4S);
                self.vun(I32x4, |cx, a| {
                    let lo = cx.shuffle(a, a, 0..2)?;
                    Ok(if signed {
                        cx.b.build_signed_int_to_float(lo, cx.vty(F64x2), "cv")?
                    } else {
                        cx.b.build_unsigned_int_to_float(lo, cx.vty(F64x2), "cv")?
                    })
                })?;
            }
            O::F32x4DemoteF64x2Zero => {
                let a = self.popv(F64x2)?;
                let v2 = self.vty_n(F32x4, 2);
                let d = self.b.build_float_trunc(a, v2, "dem")?;
                let r = self.shuffle(d, v2.const_zero(), 0..4)?;
                let r = if self.canonicalize_nans { self.vcanon(r)? } else { self.vquiet(r)? };
                self.pushv(r)?;
            }
            O::F64x2PromoteLowF32x4 => {
                let a = self.popv(F32x4)?;
                let lo = self.shuffle(a, a, 0..2)?;
                let p = self.b.build_float_ext(lo, self.vty(F64x2), "pro")?;
                let p = if self.canonicalize_nans { self.vcanon(p)? } else { self.vquiet(p)? };
                self.pushv(p)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

