//! The interpreter loop.

use crate::error::Trap;
use crate::instr::{Instr, NULL_REF};
use crate::num::*;
use crate::store::{FuncKind, Store, MAX_PAGES, MAX_TABLE_ELEMS, PAGE_SIZE};
use wanco_state::abi::TrapCode;

#[inline(always)]
fn i32_(x: u64) -> i32 {
    x as u32 as i32
}
#[inline(always)]
fn u32_(x: u64) -> u32 {
    x as u32
}
#[inline(always)]
fn f32_(x: u64) -> f32 {
    f32::from_bits(x as u32)
}
#[inline(always)]
fn f64_(x: u64) -> f64 {
    f64::from_bits(x)
}
#[inline(always)]
fn from_i32(v: i32) -> u64 {
    v as u32 as u64
}
#[inline(always)]
fn from_u32(v: u32) -> u64 {
    v as u64
}
#[inline(always)]
fn from_f32(v: f32) -> u64 {
    v.to_bits() as u64
}
#[inline(always)]
fn from_f64(v: f64) -> u64 {
    v.to_bits()
}
#[inline(always)]
fn from_bool(b: bool) -> u64 {
    b as u64
}

/// Bounds-checked read of `N` bytes at `addr + off`.
#[inline(always)]
pub(crate) fn load<const N: usize>(mem: &[u8], addr: u64, off: u32) -> Result<[u8; N], TrapCode> {
    let ea = (addr as u32 as u64) + off as u64;
    let end = ea + N as u64;
    if end > mem.len() as u64 {
        return Err(TrapCode::MemoryOutOfBounds);
    }
    let mut b = [0u8; N];
    b.copy_from_slice(&mem[ea as usize..end as usize]);
    Ok(b)
}

/// Bounds-checked write of `N` bytes at `addr + off`.
#[inline(always)]
pub(crate) fn store<const N: usize>(mem: &mut [u8], addr: u64, off: u32, b: [u8; N]) -> Result<(), TrapCode> {
    let ea = (addr as u32 as u64) + off as u64;
    let end = ea + N as u64;
    if end > mem.len() as u64 {
        return Err(TrapCode::MemoryOutOfBounds);
    }
    mem[ea as usize..end as usize].copy_from_slice(&b);
    Ok(())
}

impl Store {
    /// Run the current activation until its bottom frame returns (`Ok(true)`)
    /// or a pause point is reached (`Ok(false)`).
    pub(crate) fn run(&mut self) -> Result<bool, Trap> {
        // The value stack is moved into a local for the duration of the loop
        // so that its pointer and length can live in registers.
        let mut stack = std::mem::take(&mut self.exec.stack);
        let r = self.run_loop(&mut stack);
        self.exec.stack = stack;
        r
    }

    fn run_loop(&mut self, stack: &mut Vec<u64>) -> Result<bool, Trap> {
        let base = self
            .exec
            .activations
            .last()
            .map(|a| a.base_frames)
            .unwrap_or(0);

        macro_rules! pop {
            () => {
                stack.pop().unwrap_or(0)
            };
        }
        macro_rules! push {
            ($v:expr) => {{
                let v = $v;
                stack.push(v)
            }};
        }
        macro_rules! top {
            () => {
                *stack.last_mut().expect("validated")
            };
        }
        // Unary op in place: `un!(in, out, |x| ...)`.
        macro_rules! un {
            ($from:ident, $to:ident, $f:expr) => {{
                let t = stack.last_mut().expect("validated");
                let f = $f;
                *t = $to(f($from(*t)));
            }};
        }
        macro_rules! bin {
            ($from:ident, $to:ident, $f:expr) => {{
                let b = $from(pop!());
                let t = stack.last_mut().expect("validated");
                let f = $f;
                *t = $to(f($from(*t), b));
            }};
        }
        macro_rules! bin_trap {
            ($from:ident, $to:ident, $f:expr) => {{
                let b = $from(pop!());
                let t = stack.last_mut().expect("validated");
                let f = $f;
                *t = $to(f($from(*t), b)?);
            }};
        }
        macro_rules! un_trap {
            ($from:ident, $to:ident, $f:expr) => {{
                let t = stack.last_mut().expect("validated");
                let f = $f;
                *t = $to(f($from(*t))?);
            }};
        }

        'frame: loop {
            if self.exec.frames.len() <= base {
                return Ok(true);
            }
            let fr = *self.exec.frames.last().expect("frame");
            let FuncKind::Wasm { instance, def } = self.funcs[fr.func as usize].kind else {
                unreachable!("host functions have no frames")
            };
            let inst = instance as usize;
            let module = self.instances[inst].module.clone();
            let f = &module.code[def as usize];
            let code = &f.instrs[..];
            let fp = fr.fp as usize;
            let mut pc = fr.pc as usize;
            let mem = self.instances[inst]
                .mems
                .first()
                .map(|m| *m as usize)
                .unwrap_or(usize::MAX);

            macro_rules! memr {
                () => {
                    &self.mems[mem].data
                };
            }
            macro_rules! memw {
                () => {
                    &mut self.mems[mem].data
                };
            }
            macro_rules! ld {
                ($n:literal, $off:expr, $conv:expr) => {{
                    let a = pop!();
                    let b = load::<$n>(memr!(), a, $off)?;
                    let c = $conv;
                    push!(c(b));
                }};
            }
            macro_rules! st {
                ($n:literal, $off:expr, $conv:expr) => {{
                    let v = pop!();
                    let a = pop!();
                    let c = $conv;
                    store::<$n>(memw!(), a, $off, c(v))?;
                }};
            }
            macro_rules! call {
                ($callee:expr) => {{
                    let callee = $callee;
                    self.exec.frames.last_mut().expect("frame").pc = pc as u32;
                    let caller_mem = (mem != usize::MAX).then_some(mem as u32);
                    if self.enter(stack, callee, caller_mem)? {
                        if self.exec.paused {
                            return Ok(false);
                        }
                        continue 'frame;
                    }
                }};
            }

            loop {
                let ins = code[pc];
                pc += 1;
                match ins {
                    Instr::Unreachable => return Err(TrapCode::Unreachable.into()),
                    Instr::LoopHeader => {
                        if self.exec.point_reached() {
                            self.exec.frames.last_mut().expect("frame").pc = pc as u32;
                            self.exec.paused = true;
                            return Ok(false);
                        }
                    }
                    Instr::Jump(to) => pc = to as usize,
                    Instr::JumpIfZero(to) => {
                        if pop!() as u32 == 0 {
                            pc = to as usize;
                        }
                    }
                    Instr::JumpIfNonZero(to) => {
                        if pop!() as u32 != 0 {
                            pc = to as usize;
                        }
                    }
                    Instr::Br { to, keep, base } => {
                        let st = &mut *stack;
                        let sp = st.len();
                        let k = keep as usize;
                        let b = fp + base as usize;
                        st.copy_within(sp - k..sp, b);
                        st.truncate(b + k);
                        pc = to as usize;
                    }
                    Instr::BrIf { to, keep, base } => {
                        if pop!() as u32 != 0 {
                            let st = &mut *stack;
                            let sp = st.len();
                            let k = keep as usize;
                            let b = fp + base as usize;
                            st.copy_within(sp - k..sp, b);
                            st.truncate(b + k);
                            pc = to as usize;
                        }
                    }
                    Instr::BrTable { start, len } => {
                        let i = pop!() as u32;
                        let e = f.br_tables[start as usize + i.min(len) as usize];
                        let st = &mut *stack;
                        let sp = st.len();
                        let k = e.keep as usize;
                        let b = fp + e.base as usize;
                        if sp - k != b {
                            st.copy_within(sp - k..sp, b);
                            st.truncate(b + k);
                        }
                        pc = e.to as usize;
                    }
                    Instr::Return => {
                        let n = f.result_slots as usize;
                        let st = &mut *stack;
                        let sp = st.len();
                        if sp - n != fp {
                            st.copy_within(sp - n..sp, fp);
                            st.truncate(fp + n);
                        }
                        self.exec.frames.pop();
                        continue 'frame;
                    }
                    Instr::Call(idx) => {
                        call!(self.instances[inst].funcs[idx as usize]);
                    }
                    Instr::CallIndirect { ty, table } => {
                        let i = pop!() as u32 as usize;
                        let d = &self.instances[inst];
                        let expected = d.type_ids[ty as usize];
                        let t = &self.tables[d.tables[table as usize] as usize];
                        let r = *t.data.get(i).ok_or(TrapCode::TableOutOfBounds)?;
                        if r == NULL_REF {
                            return Err(TrapCode::IndirectCallNull.into());
                        }
                        if self.funcs[r as usize].type_id != expected {
                            return Err(TrapCode::IndirectCallType.into());
                        }
                        call!(r as u32);
                    }

                    Instr::Drop => {
                        stack.pop();
                    }
                    Instr::Select => {
                        let c = pop!() as u32;
                        let b = pop!();
                        if c == 0 {
                            top!() = b;
                        }
                    }
                    Instr::SelectV128 => {
                        let c = pop!() as u32;
                        let st = &mut *stack;
                        let sp = st.len();
                        if c == 0 {
                            st.copy_within(sp - 2..sp, sp - 4);
                        }
                        st.truncate(sp - 2);
                    }
                    Instr::LocalTeeV128(i) => {
                        let sp = stack.len();
                        let (lo, hi) = (stack[sp - 2], stack[sp - 1]);
                        stack[fp + i as usize] = lo;
                        stack[fp + i as usize + 1] = hi;
                    }
                    Instr::GlobalGetV128(i) => {
                        let g = self.instances[inst].globals[i as usize];
                        let g = &self.globals[g as usize];
                        let (lo, hi) = (g.value, g.hi);
                        push!(lo);
                        push!(hi);
                    }
                    Instr::GlobalSetV128(i) => {
                        let hi = pop!();
                        let lo = pop!();
                        let g = self.instances[inst].globals[i as usize];
                        let g = &mut self.globals[g as usize];
                        g.value = lo;
                        g.hi = hi;
                    }
                    Instr::Simd { op, lane, imm } => {
                        let m: &mut [u8] = match self.mems.get_mut(mem) {
                            Some(m) => &mut m.data,
                            None => &mut [],
                        };
                        crate::simd::exec(op, lane, imm, stack, m, &f.v128_consts)?;
                    }
                    Instr::LocalGet(i) => {
                        let v = stack[fp + i as usize];
                        push!(v);
                    }
                    Instr::LocalSet(i) => {
                        let v = pop!();
                        stack[fp + i as usize] = v;
                    }
                    Instr::LocalTee(i) => {
                        let v = *stack.last().expect("validated");
                        stack[fp + i as usize] = v;
                    }
                    Instr::GlobalGet(i) => {
                        let g = self.instances[inst].globals[i as usize];
                        push!(self.globals[g as usize].value);
                    }
                    Instr::GlobalSet(i) => {
                        let g = self.instances[inst].globals[i as usize];
                        self.globals[g as usize].value = pop!();
                    }

                    Instr::TableGet(t) => {
                        let i = pop!() as u32 as usize;
                        let ta = self.instances[inst].tables[t as usize];
                        let v = *self.tables[ta as usize]
                            .data
                            .get(i)
                            .ok_or(TrapCode::TableAccessOutOfBounds)?;
                        push!(v);
                    }
                    Instr::TableSet(t) => {
                        let v = pop!();
                        let i = pop!() as u32 as usize;
                        let ta = self.instances[inst].tables[t as usize];
                        *self.tables[ta as usize]
                            .data
                            .get_mut(i)
                            .ok_or(TrapCode::TableAccessOutOfBounds)? = v;
                    }
                    Instr::TableSize(t) => {
                        let ta = self.instances[inst].tables[t as usize];
                        push!(self.tables[ta as usize].data.len() as u64);
                    }
                    Instr::TableGrow(t) => {
                        let n = pop!() as u32 as u64;
                        let init = pop!();
                        let ta = self.instances[inst].tables[t as usize];
                        let tb = &mut self.tables[ta as usize];
                        let old = tb.data.len() as u64;
                        let max = tb.max.unwrap_or(u32::MAX as u64).min(MAX_TABLE_ELEMS);
                        if old + n > max {
                            push!(u32::MAX as u64);
                        } else {
                            tb.data.resize((old + n) as usize, init);
                            push!(old);
                        }
                    }
                    Instr::TableFill(t) => {
                        let n = pop!() as u32 as u64;
                        let v = pop!();
                        let i = pop!() as u32 as u64;
                        let ta = self.instances[inst].tables[t as usize];
                        let tb = &mut self.tables[ta as usize];
                        if i + n > tb.data.len() as u64 {
                            return Err(TrapCode::TableAccessOutOfBounds.into());
                        }
                        tb.data[i as usize..(i + n) as usize].fill(v);
                    }
                    Instr::TableCopy { dst, src } => {
                        let n = pop!() as u32 as u64;
                        let s = pop!() as u32 as u64;
                        let d = pop!() as u32 as u64;
                        let da = self.instances[inst].tables[dst as usize] as usize;
                        let sa = self.instances[inst].tables[src as usize] as usize;
                        if s + n > self.tables[sa].data.len() as u64
                            || d + n > self.tables[da].data.len() as u64
                        {
                            return Err(TrapCode::TableAccessOutOfBounds.into());
                        }
                        let (s, d, n) = (s as usize, d as usize, n as usize);
                        if da == sa {
                            self.tables[da].data.copy_within(s..s + n, d);
                        } else {
                            let tmp: Vec<u64> = self.tables[sa].data[s..s + n].to_vec();
                            self.tables[da].data[d..d + n].copy_from_slice(&tmp);
                        }
                    }
                    Instr::TableInit { table, elem } => {
                        let n = pop!() as u32;
                        let s = pop!() as u32;
                        let d = pop!() as u32;
                        self.table_init(instance, table, elem, d, s, n)?;
                    }
                    Instr::ElemDrop(e) => self.drop_elem(instance, e),

                    Instr::I32Load(o) => ld!(4, o, |b| u32::from_le_bytes(b) as u64),
                    Instr::I64Load(o) => ld!(8, o, u64::from_le_bytes),
                    Instr::F32Load(o) => ld!(4, o, |b| u32::from_le_bytes(b) as u64),
                    Instr::F64Load(o) => ld!(8, o, u64::from_le_bytes),
                    Instr::I32Load8S(o) => ld!(1, o, |b| from_i32(i8::from_le_bytes(b) as i32)),
                    Instr::I32Load8U(o) => ld!(1, o, |b: [u8; 1]| b[0] as u64),
                    Instr::I32Load16S(o) => {
                        ld!(2, o, |b| from_i32(i16::from_le_bytes(b) as i32))
                    }
                    Instr::I32Load16U(o) => ld!(2, o, |b| u16::from_le_bytes(b) as u64),
                    Instr::I64Load8S(o) => ld!(1, o, |b| i8::from_le_bytes(b) as i64 as u64),
                    Instr::I64Load8U(o) => ld!(1, o, |b: [u8; 1]| b[0] as u64),
                    Instr::I64Load16S(o) => ld!(2, o, |b| i16::from_le_bytes(b) as i64 as u64),
                    Instr::I64Load16U(o) => ld!(2, o, |b| u16::from_le_bytes(b) as u64),
                    Instr::I64Load32S(o) => ld!(4, o, |b| i32::from_le_bytes(b) as i64 as u64),
                    Instr::I64Load32U(o) => ld!(4, o, |b| u32::from_le_bytes(b) as u64),
                    Instr::I32Store(o) => st!(4, o, |v: u64| (v as u32).to_le_bytes()),
                    Instr::I64Store(o) => st!(8, o, |v: u64| v.to_le_bytes()),
                    Instr::F32Store(o) => st!(4, o, |v: u64| (v as u32).to_le_bytes()),
                    Instr::F64Store(o) => st!(8, o, |v: u64| v.to_le_bytes()),
                    Instr::I32Store8(o) | Instr::I64Store8(o) => {
                        st!(1, o, |v: u64| [v as u8])
                    }
                    Instr::I32Store16(o) | Instr::I64Store16(o) => {
                        st!(2, o, |v: u64| (v as u16).to_le_bytes())
                    }
                    Instr::I64Store32(o) => st!(4, o, |v: u64| (v as u32).to_le_bytes()),
                    Instr::MemorySize => push!(self.mems[mem].pages()),
                    Instr::MemoryGrow => {
                        let n = pop!() as u32 as u64;
                        let m = &mut self.mems[mem];
                        let old = m.pages();
                        let max = m.max.unwrap_or(MAX_PAGES).min(MAX_PAGES);
                        let new = old + n;
                        let grown = new <= max && {
                            let bytes = (new * PAGE_SIZE) as usize;
                            m.data.try_reserve_exact(bytes - m.data.len()).is_ok()
                        };
                        if grown {
                            m.data.resize((new * PAGE_SIZE) as usize, 0);
                            push!(old);
                        } else {
                            push!(u32::MAX as u64);
                        }
                    }
                    Instr::MemoryFill => {
                        let n = pop!() as u32 as u64;
                        let v = pop!() as u8;
                        let d = pop!() as u32 as u64;
                        let m = memw!();
                        if d + n > m.len() as u64 {
                            return Err(TrapCode::MemoryOutOfBounds.into());
                        }
                        m[d as usize..(d + n) as usize].fill(v);
                    }
                    Instr::MemoryCopy => {
                        let n = pop!() as u32 as u64;
                        let s = pop!() as u32 as u64;
                        let d = pop!() as u32 as u64;
                        let m = memw!();
                        if s + n > m.len() as u64 || d + n > m.len() as u64 {
                            return Err(TrapCode::MemoryOutOfBounds.into());
                        }
                        m.copy_within(s as usize..(s + n) as usize, d as usize);
                    }
                    Instr::MemoryInit(seg) => {
                        let n = pop!() as u32;
                        let s = pop!() as u32;
                        let d = pop!() as u32;
                        self.memory_init(instance, seg, d, s, n)?;
                    }
                    Instr::DataDrop(seg) => {
                        self.instances[inst].data_dropped[seg as usize] = true;
                    }

                    Instr::Const(v) => push!(v),
                    Instr::RefIsNull => un!(u64_, from_bool, |x: u64| x == NULL_REF),
                    Instr::RefFunc(i) => push!(self.instances[inst].funcs[i as usize] as u64),

                    // ---- comparisons ----
                    Instr::I32Eqz => un!(u32_, from_bool, |x: u32| x == 0),
                    Instr::I32Eq => bin!(u32_, from_bool, |a, b| a == b),
                    Instr::I32Ne => bin!(u32_, from_bool, |a, b| a != b),
                    Instr::I32LtS => bin!(i32_, from_bool, |a, b| a < b),
                    Instr::I32LtU => bin!(u32_, from_bool, |a, b| a < b),
                    Instr::I32GtS => bin!(i32_, from_bool, |a, b| a > b),
                    Instr::I32GtU => bin!(u32_, from_bool, |a, b| a > b),
                    Instr::I32LeS => bin!(i32_, from_bool, |a, b| a <= b),
                    Instr::I32LeU => bin!(u32_, from_bool, |a, b| a <= b),
                    Instr::I32GeS => bin!(i32_, from_bool, |a, b| a >= b),
                    Instr::I32GeU => bin!(u32_, from_bool, |a, b| a >= b),
                    Instr::I64Eqz => un!(u64_, from_bool, |x: u64| x == 0),
                    Instr::I64Eq => bin!(u64_, from_bool, |a: u64, b: u64| a == b),
                    Instr::I64Ne => bin!(u64_, from_bool, |a: u64, b: u64| a != b),
                    Instr::I64LtS => bin!(i64_, from_bool, |a, b| a < b),
                    Instr::I64LtU => bin!(u64_, from_bool, |a: u64, b: u64| a < b),
                    Instr::I64GtS => bin!(i64_, from_bool, |a, b| a > b),
                    Instr::I64GtU => bin!(u64_, from_bool, |a: u64, b: u64| a > b),
                    Instr::I64LeS => bin!(i64_, from_bool, |a, b| a <= b),
                    Instr::I64LeU => bin!(u64_, from_bool, |a: u64, b: u64| a <= b),
                    Instr::I64GeS => bin!(i64_, from_bool, |a, b| a >= b),
                    Instr::I64GeU => bin!(u64_, from_bool, |a: u64, b: u64| a >= b),
                    Instr::F32Eq => bin!(f32_, from_bool, |a, b| a == b),
                    Instr::F32Ne => bin!(f32_, from_bool, |a, b| a != b),
                    Instr::F32Lt => bin!(f32_, from_bool, |a, b| a < b),
                    Instr::F32Gt => bin!(f32_, from_bool, |a, b| a > b),
                    Instr::F32Le => bin!(f32_, from_bool, |a, b| a <= b),
                    Instr::F32Ge => bin!(f32_, from_bool, |a, b| a >= b),
                    Instr::F64Eq => bin!(f64_, from_bool, |a, b| a == b),
                    Instr::F64Ne => bin!(f64_, from_bool, |a, b| a != b),
                    Instr::F64Lt => bin!(f64_, from_bool, |a, b| a < b),
                    Instr::F64Gt => bin!(f64_, from_bool, |a, b| a > b),
                    Instr::F64Le => bin!(f64_, from_bool, |a, b| a <= b),
                    Instr::F64Ge => bin!(f64_, from_bool, |a, b| a >= b),

                    // ---- i32 arithmetic ----
                    Instr::I32Clz => un!(u32_, from_u32, |x: u32| x.leading_zeros()),
                    Instr::I32Ctz => un!(u32_, from_u32, |x: u32| x.trailing_zeros()),
                    Instr::I32Popcnt => un!(u32_, from_u32, |x: u32| x.count_ones()),
                    Instr::I32Add => bin!(u32_, from_u32, |a: u32, b| a.wrapping_add(b)),
                    Instr::I32Sub => bin!(u32_, from_u32, |a: u32, b| a.wrapping_sub(b)),
                    Instr::I32Mul => bin!(u32_, from_u32, |a: u32, b| a.wrapping_mul(b)),
                    Instr::I32DivS => bin_trap!(i32_, from_i32, |a: i32, b: i32| {
                        if b == 0 {
                            Err(TrapCode::IntegerDivideByZero)
                        } else if a == i32::MIN && b == -1 {
                            Err(TrapCode::IntegerOverflow)
                        } else {
                            Ok(a / b)
                        }
                    }),
                    Instr::I32DivU => bin_trap!(u32_, from_u32, |a: u32, b: u32| {
                        a.checked_div(b).ok_or(TrapCode::IntegerDivideByZero)
                    }),
                    Instr::I32RemS => bin_trap!(i32_, from_i32, |a: i32, b: i32| {
                        if b == 0 {
                            Err(TrapCode::IntegerDivideByZero)
                        } else {
                            Ok(a.wrapping_rem(b))
                        }
                    }),
                    Instr::I32RemU => bin_trap!(u32_, from_u32, |a: u32, b: u32| {
                        a.checked_rem(b).ok_or(TrapCode::IntegerDivideByZero)
                    }),
                    Instr::I32And => bin!(u32_, from_u32, |a: u32, b| a & b),
                    Instr::I32Or => bin!(u32_, from_u32, |a: u32, b| a | b),
                    Instr::I32Xor => bin!(u32_, from_u32, |a: u32, b| a ^ b),
                    Instr::I32Shl => bin!(u32_, from_u32, |a: u32, b| a.wrapping_shl(b)),
                    Instr::I32ShrS => bin!(i32_, from_i32, |a: i32, b| a.wrapping_shr(b as u32)),
                    Instr::I32ShrU => bin!(u32_, from_u32, |a: u32, b| a.wrapping_shr(b)),
                    Instr::I32Rotl => bin!(u32_, from_u32, |a: u32, b| a.rotate_left(b % 32)),
                    Instr::I32Rotr => bin!(u32_, from_u32, |a: u32, b| a.rotate_right(b % 32)),

                    // ---- i64 arithmetic ----
                    Instr::I64Clz => un!(u64_, u64_, |x: u64| x.leading_zeros() as u64),
                    Instr::I64Ctz => un!(u64_, u64_, |x: u64| x.trailing_zeros() as u64),
                    Instr::I64Popcnt => un!(u64_, u64_, |x: u64| x.count_ones() as u64),
                    Instr::I64Add => bin!(u64_, u64_, |a: u64, b| a.wrapping_add(b)),
                    Instr::I64Sub => bin!(u64_, u64_, |a: u64, b| a.wrapping_sub(b)),
                    Instr::I64Mul => bin!(u64_, u64_, |a: u64, b| a.wrapping_mul(b)),
                    Instr::I64DivS => bin_trap!(i64_, from_i64, |a: i64, b: i64| {
                        if b == 0 {
                            Err(TrapCode::IntegerDivideByZero)
                        } else if a == i64::MIN && b == -1 {
                            Err(TrapCode::IntegerOverflow)
                        } else {
                            Ok(a / b)
                        }
                    }),
                    Instr::I64DivU => bin_trap!(u64_, u64_, |a: u64, b: u64| {
                        a.checked_div(b).ok_or(TrapCode::IntegerDivideByZero)
                    }),
                    Instr::I64RemS => bin_trap!(i64_, from_i64, |a: i64, b: i64| {
                        if b == 0 {
                            Err(TrapCode::IntegerDivideByZero)
                        } else {
                            Ok(a.wrapping_rem(b))
                        }
                    }),
                    Instr::I64RemU => bin_trap!(u64_, u64_, |a: u64, b: u64| {
                        a.checked_rem(b).ok_or(TrapCode::IntegerDivideByZero)
                    }),
                    Instr::I64And => bin!(u64_, u64_, |a: u64, b| a & b),
                    Instr::I64Or => bin!(u64_, u64_, |a: u64, b| a | b),
                    Instr::I64Xor => bin!(u64_, u64_, |a: u64, b| a ^ b),
                    Instr::I64Shl => bin!(u64_, u64_, |a: u64, b: u64| a.wrapping_shl(b as u32)),
                    Instr::I64ShrS => {
                        bin!(i64_, from_i64, |a: i64, b: i64| a.wrapping_shr(b as u32))
                    }
                    Instr::I64ShrU => bin!(u64_, u64_, |a: u64, b: u64| a.wrapping_shr(b as u32)),
                    Instr::I64Rotl => {
                        bin!(u64_, u64_, |a: u64, b: u64| a.rotate_left((b % 64) as u32))
                    }
                    Instr::I64Rotr => {
                        bin!(u64_, u64_, |a: u64, b: u64| a.rotate_right((b % 64) as u32))
                    }

                    // ---- f32 arithmetic ----
                    Instr::F32Abs => un!(u64_, u64_, |x: u64| x & 0x7fff_ffff),
                    Instr::F32Neg => un!(u64_, u64_, |x: u64| (x ^ 0x8000_0000) & 0xffff_ffff),
                    Instr::F32Ceil => un!(f32_, from_f32, |x: f32| quiet(x.ceil())),
                    Instr::F32Floor => un!(f32_, from_f32, |x: f32| quiet(x.floor())),
                    Instr::F32Trunc => un!(f32_, from_f32, |x: f32| quiet(x.trunc())),
                    Instr::F32Nearest => un!(f32_, from_f32, nearest32),
                    Instr::F32Sqrt => un!(f32_, from_f32, |x: f32| quiet(x.sqrt())),
                    Instr::F32Add => bin!(f32_, from_f32, |a: f32, b| a + b),
                    Instr::F32Sub => bin!(f32_, from_f32, |a: f32, b| a - b),
                    Instr::F32Mul => bin!(f32_, from_f32, |a: f32, b| a * b),
                    Instr::F32Div => bin!(f32_, from_f32, |a: f32, b| a / b),
                    Instr::F32Min => bin!(f32_, from_f32, fmin32),
                    Instr::F32Max => bin!(f32_, from_f32, fmax32),
                    Instr::F32Copysign => bin!(u64_, u64_, |a: u64, b: u64| {
                        (a & 0x7fff_ffff) | (b & 0x8000_0000)
                    }),

                    // ---- f64 arithmetic ----
                    Instr::F64Abs => un!(u64_, u64_, |x: u64| x & !(1u64 << 63)),
                    Instr::F64Neg => un!(u64_, u64_, |x: u64| x ^ (1u64 << 63)),
                    Instr::F64Ceil => un!(f64_, from_f64, |x: f64| quiet(x.ceil())),
                    Instr::F64Floor => un!(f64_, from_f64, |x: f64| quiet(x.floor())),
                    Instr::F64Trunc => un!(f64_, from_f64, |x: f64| quiet(x.trunc())),
                    Instr::F64Nearest => un!(f64_, from_f64, nearest64),
                    Instr::F64Sqrt => un!(f64_, from_f64, |x: f64| quiet(x.sqrt())),
                    Instr::F64Add => bin!(f64_, from_f64, |a: f64, b| a + b),
                    Instr::F64Sub => bin!(f64_, from_f64, |a: f64, b| a - b),
                    Instr::F64Mul => bin!(f64_, from_f64, |a: f64, b| a * b),
                    Instr::F64Div => bin!(f64_, from_f64, |a: f64, b| a / b),
                    Instr::F64Min => bin!(f64_, from_f64, fmin64),
                    Instr::F64Max => bin!(f64_, from_f64, fmax64),
                    Instr::F64Copysign => bin!(u64_, u64_, |a: u64, b: u64| {
                        (a & !(1u64 << 63)) | (b & (1u64 << 63))
                    }),

                    // ---- conversions ----
                    Instr::I32WrapI64 => un!(u64_, u64_, |x: u64| x & 0xffff_ffff),
                    Instr::I32TruncF32S => un_trap!(f32_, from_i32, |x: f32| trunc_i32_s(x as f64)),
                    Instr::I32TruncF32U => un_trap!(f32_, from_u32, |x: f32| trunc_i32_u(x as f64)),
                    Instr::I32TruncF64S => un_trap!(f64_, from_i32, trunc_i32_s),
                    Instr::I32TruncF64U => un_trap!(f64_, from_u32, trunc_i32_u),
                    Instr::I64ExtendI32S => un!(i32_, from_i64, |x: i32| x as i64),
                    Instr::I64ExtendI32U => un!(u32_, u64_, |x: u32| x as u64),
                    Instr::I64TruncF32S => un_trap!(f32_, from_i64, |x: f32| trunc_i64_s(x as f64)),
                    Instr::I64TruncF32U => un_trap!(f32_, u64_, |x: f32| trunc_i64_u(x as f64)),
                    Instr::I64TruncF64S => un_trap!(f64_, from_i64, trunc_i64_s),
                    Instr::I64TruncF64U => un_trap!(f64_, u64_, trunc_i64_u),
                    Instr::F32ConvertI32S => un!(i32_, from_f32, |x: i32| x as f32),
                    Instr::F32ConvertI32U => un!(u32_, from_f32, |x: u32| x as f32),
                    Instr::F32ConvertI64S => un!(i64_, from_f32, |x: i64| x as f32),
                    Instr::F32ConvertI64U => un!(u64_, from_f32, |x: u64| x as f32),
                    Instr::F32DemoteF64 => un!(f64_, from_f32, |x: f64| x as f32),
                    Instr::F64ConvertI32S => un!(i32_, from_f64, |x: i32| x as f64),
                    Instr::F64ConvertI32U => un!(u32_, from_f64, |x: u32| x as f64),
                    Instr::F64ConvertI64S => un!(i64_, from_f64, |x: i64| x as f64),
                    Instr::F64ConvertI64U => un!(u64_, from_f64, |x: u64| x as f64),
                    Instr::F64PromoteF32 => un!(f32_, from_f64, |x: f32| x as f64),
                    Instr::I32Extend8S => un!(u64_, from_i32, |x: u64| x as i8 as i32),
                    Instr::I32Extend16S => un!(u64_, from_i32, |x: u64| x as i16 as i32),
                    Instr::I64Extend8S => un!(u64_, from_i64, |x: u64| x as i8 as i64),
                    Instr::I64Extend16S => un!(u64_, from_i64, |x: u64| x as i16 as i64),
                    Instr::I64Extend32S => un!(u64_, from_i64, |x: u64| x as i32 as i64),
                    Instr::I32TruncSatF32S => un!(f32_, from_i32, |x: f32| x as i32),
                    Instr::I32TruncSatF32U => un!(f32_, from_u32, |x: f32| x as u32),
                    Instr::I32TruncSatF64S => un!(f64_, from_i32, |x: f64| x as i32),
                    Instr::I32TruncSatF64U => un!(f64_, from_u32, |x: f64| x as u32),
                    Instr::I64TruncSatF32S => un!(f32_, from_i64, |x: f32| x as i64),
                    Instr::I64TruncSatF32U => un!(f32_, u64_, |x: f32| x as u64),
                    Instr::I64TruncSatF64S => un!(f64_, from_i64, |x: f64| x as i64),
                    Instr::I64TruncSatF64U => un!(f64_, u64_, |x: f64| x as u64),
                }
            }
        }
    }
}

#[inline(always)]
fn i64_(x: u64) -> i64 {
    x as i64
}
#[inline(always)]
fn from_i64(v: i64) -> u64 {
    v as u64
}
#[inline(always)]
fn u64_(x: u64) -> u64 {
    x
}
