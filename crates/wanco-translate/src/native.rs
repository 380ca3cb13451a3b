//! Native views of a snapshot's frames ([`NativeStack`]): how the neutral
//! Wasm frames sit in the machine frames of one compiled binary.
//!
//! * [`capture`] — at checkpoint time, from the frames [`crate::decode::walk`]
//!   decoded: the return addresses, frame sizes and each value's location
//!   exactly as they were.
//! * [`layout`] — the translator's second half: lay neutral frames out in
//!   the frames of a *target* binary, from its metadata (statepoint records:
//!   return addresses and value locations) and CFI (frame layout). Which
//!   Wasm frames share a machine frame depends on what the target's LLVM
//!   inlined, so the frames are matched against the target's records.
//! * [`check`] — does a view fit a binary's metadata (same ISA and build,
//!   every return address a record, every location the record's, every
//!   value where and as the record says)?

use crate::decode::{record_frames, record_layout, FrameLayout, NativeFrame as WalkedFrame};
use crate::unwind::{Cfi, Isa};
use crate::Error;
use std::collections::HashMap;
use wanco_state::crmeta::{CrMeta, CrRecord, Location};
use wanco_state::snapshot::{Frame, FrameKind, NativeFrame, NativeSlot, NativeStack};
use wanco_state::{ValType, Value};

fn kind_name(k: FrameKind) -> &'static str {
    match k {
        FrameKind::Entry => "Entry",
        FrameKind::Loop => "Loop",
        FrameKind::Call => "Call",
    }
}

/// Bits of a constant location for a value of type `ty` (as the decoder
/// reads it: 32-bit types truncated).
fn constant_bits(c: i64, ty: ValType) -> u64 {
    match ty {
        ValType::I32 | ValType::F32 => c as u64 & 0xffff_ffff,
        _ => c as u64,
    }
}

/// The native view of the frames [`crate::decode::walk`] returned
/// (**innermost first**, as it returns them), for a binary loaded with
/// `load_bias` (runtime address minus link-time address). Reference values
/// get no bits (they are pointers of this process).
pub fn capture(meta: &CrMeta, walked: &[WalkedFrame], load_bias: u64) -> Result<NativeStack, Error> {
    let mut frames = Vec::with_capacity(walked.len());
    for nf in walked.iter().rev() {
        let rec = meta.record(nf.func, nf.offset).map_err(|e| Error::Decode(e.to_string()))?.ok_or_else(|| {
            Error::Decode(format!(
                "no record for defined function {} at offset {:#x}",
                nf.func, nf.offset
            ))
        })?;
        let func = meta
            .funcs
            .get(nf.func as usize)
            .map(|f| f.func)
            .ok_or_else(|| Error::Decode(format!("defined function {} does not exist", nf.func)))?;
        let mut values = Vec::with_capacity(rec.locations.len());
        for vf in &nf.frames {
            values.push(Some(u64::from(vf.point)));
            for v in vf.locals.iter().chain(&vf.stack) {
                values.push(match v.ty {
                    ValType::FuncRef | ValType::ExternRef => None,
                    _ => Some(v.bits),
                });
                if v.ty == ValType::V128 {
                    // Its second location: the high half.
                    values.push(Some(v.hi));
                }
            }
        }
        if values.len() != rec.locations.len() {
            return Err(Error::Decode(format!(
                "defined function {} at offset {:#x}: {} values decoded, the record has {} locations",
                nf.func,
                nf.offset,
                values.len(),
                rec.locations.len()
            )));
        }
        frames.push(NativeFrame {
            func,
            pc: nf.pc.wrapping_sub(load_bias),
            offset: nf.offset,
            frame_size: Some(nf.cfa - nf.sp),
            wasm_frames: nf.frames.len() as u32,
            slots: rec
                .locations
                .iter()
                .zip(values)
                .map(|(&location, bits)| NativeSlot { location, bits })
                .collect(),
        });
    }
    Ok(NativeStack {
        isa: meta.isa.clone(),
        build: meta.build.clone(),
        frames,
    })
}

/// Point ids of the virtual frames of every record, and an index from
/// `(func, code offset, kind)` to point id.
struct Index<'m> {
    meta: &'m CrMeta,
    points: HashMap<(u32, u32, FrameKind), u32>,
    /// Records by the point id of their outermost virtual frame: (record
    /// index, point ids of its virtual frames, outermost first).
    by_first: HashMap<u32, Vec<(usize, Vec<u32>)>>,
}

impl<'m> Index<'m> {
    fn new(meta: &'m CrMeta) -> Result<Index<'m>, Error> {
        let mut points = HashMap::new();
        for (i, p) in meta.points.iter().enumerate() {
            points.entry((p.func, p.code_offset, p.kind)).or_insert(i as u32);
        }
        let mut by_first: HashMap<u32, Vec<(usize, Vec<u32>)>> = HashMap::new();
        for (i, r) in (0..meta.records.len()).filter_map(|i| Some((i, meta.records.get(i)?))) {
            let seq: Vec<u32> = record_frames(meta, r)?.into_iter().map(|(p, _)| p).collect();
            if let Some(&first) = seq.first() {
                by_first.entry(first).or_default().push((i, seq));
            }
        }
        Ok(Index { meta, points, by_first })
    }

    fn point_of(&self, i: usize, f: &Frame) -> Result<u32, Error> {
        self.points.get(&(f.func, f.code_offset, f.kind)).copied().ok_or_else(|| {
            Error::Decode(format!(
                "frame {i} (function {}, {} at {:#x}) is not a migration point or return site of the {} binary",
                f.func,
                kind_name(f.kind),
                f.code_offset,
                self.meta.isa
            ))
        })
    }
}

/// Split `frames` (outermost first) into machine frames of the binary
/// `meta` describes: for each, the record and how many Wasm frames it holds.
/// Prefers records that hold more Wasm frames (the target inlined there);
/// among records for the same frames, the first (lowest address).
fn match_records<'m>(index: &Index<'m>, frames: &[Frame]) -> Result<Vec<(&'m CrRecord, usize)>, Error> {
    let n = frames.len();
    let pids: Vec<u32> = frames.iter().enumerate().map(|(i, f)| index.point_of(i, f)).collect::<Result<_, _>>()?;
    // best[i]: the record covering frames i.. first, if frames i..n can be covered.
    let mut best: Vec<Option<(usize, usize)>> = vec![None; n + 1];
    let mut ok = vec![false; n + 1];
    ok[n] = true;
    for i in (0..n).rev() {
        let Some(cands) = index.by_first.get(&pids[i]) else {
            continue;
        };
        for (r, seq) in cands {
            let len = seq.len();
            if i + len > n || seq[..] != pids[i..i + len] || !ok[i + len] {
                continue;
            }
            let better = match best[i] {
                None => true,
                Some((_, l)) => len > l,
            };
            if better {
                best[i] = Some((*r, len));
                ok[i] = true;
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let Some((r, len)) = best[i] else {
            let f = &frames[i];
            return Err(Error::Decode(format!(
                "the {} binary has no machine frame for frame {i} (function {}, {} at {:#x}) and the frames inside it{}",
                index.meta.isa,
                f.func,
                kind_name(f.kind),
                f.code_offset,
                if i + 1 == n { "" } else { " (no statepoint record holds that sequence of points)" }
            )));
        };
        out.push((&index.meta.records[r], len));
        i += len;
    }
    Ok(out)
}

/// The bits a slot at `loc` holds for `v`; fails if `loc` is a constant
/// that differs from `v` (the target cannot hold that value there).
/// The values of `v`'s stack map locations: a v128 is two (its low and
/// high 64 bits, as `i64`), other values one.
fn halves(v: &Value) -> Vec<Value> {
    match *v {
        Value::V128(x) => vec![Value::I64(x as u64 as i64), Value::I64((x >> 64) as u64 as i64)],
        ref other => vec![other.clone()],
    }
}

fn slot_bits(loc: &Location, v: &Value, what: &dyn Fn() -> String) -> Result<Option<u64>, Error> {
    if let Location::Constant(c) = *loc {
        let fits = match v.raw_bits() {
            Some(b) => b == constant_bits(c, v.ty()),
            // A reference constant can only be null.
            None => c == 0 && matches!(v, Value::FuncRef(None) | Value::ExternRef(None)),
        };
        if !fits {
            return Err(Error::Decode(format!(
                "{}: the target binary has the constant {c} there, the snapshot has {v}",
                what()
            )));
        }
    }
    Ok(v.raw_bits())
}

/// Lay `frames` out in the machine frames of the binary described by
/// `meta`, with `func_start(defined index)` its functions' link-time
/// addresses and `cfi` (if given) its unwind information for frame sizes.
pub fn layout(
    meta: &CrMeta,
    frames: &[Frame],
    func_start: &dyn Fn(u32) -> Option<u64>,
    cfi: Option<&Cfi<'_>>,
) -> Result<NativeStack, Error> {
    let index = Index::new(meta)?;
    let matched = match_records(&index, frames)?;
    let isa = Isa::from_name(&meta.isa);
    let mut out = Vec::with_capacity(matched.len());
    let mut next = 0usize;
    for (rec, len) in matched {
        let held = &frames[next..next + len];
        let layout = record_frames(meta, rec)?;
        let mut slots = Vec::with_capacity(rec.locations.len());
        for (j, (f, (pid, first))) in held.iter().zip(&layout).enumerate() {
            let i = next + j;
            slots.push(NativeSlot {
                location: rec.locations[*first - 1],
                bits: Some(u64::from(*pid)),
            });
            let func = meta.func(f.func).ok_or_else(|| Error::Decode(format!("frame {i}: function {} is not defined", f.func)))?;
            let point = meta.points.get(*pid as usize).ok_or_else(|| Error::Decode(format!("frame {i}: point {pid} does not exist")))?;
            if func.locals.len() != f.locals.len() || point.stack.len() != f.stack.len() {
                return Err(Error::Decode(format!(
                    "frame {i} (function {}, {} at {:#x}): {} locals and {} stack values, the target has {} and {} there",
                    f.func,
                    kind_name(f.kind),
                    f.code_offset,
                    f.locals.len(),
                    f.stack.len(),
                    func.locals.len(),
                    point.stack.len()
                )));
            }
            let types = func.locals.iter().chain(&point.stack);
            let values = f.locals.iter().map(|v| ("local", v)).chain(f.stack.iter().map(|v| ("stack slot", v)));
            let mut counts = [0usize; 2];
            let mut at = *first;
            for ((what, v), ty) in values.zip(types) {
                let c = &mut counts[usize::from(what != "local")];
                let idx = *c;
                *c += 1;
                let describe = || format!("frame {i} (function {}), {what} {idx}", f.func);
                if v.ty() != *ty {
                    return Err(Error::Decode(format!("{}: the snapshot has {v}, the target expects {ty}", describe())));
                }
                for h in halves(v) {
                    let loc = rec.locations[at];
                    at += 1;
                    slots.push(NativeSlot { location: loc, bits: slot_bits(&loc, &h, &describe)? });
                }
            }
        }
        let start = func_start(rec.func).ok_or_else(|| {
            Error::Decode(format!("the address of defined function {} is unknown", rec.func))
        })?;
        let pc = start + u64::from(rec.offset);
        let frame_size = match (cfi, isa) {
            (Some(cfi), Some(isa)) => {
                let rule = cfi.frame_rule(pc)?;
                (rule.cfa_reg == isa.sp_reg()).then_some(rule.cfa_offset as u64)
            }
            _ => None,
        };
        out.push(NativeFrame {
            func: meta.funcs.first_func().filter(|_| (rec.func as usize) < meta.funcs.len()).map(|f| f + rec.func).ok_or_else(|| {
                Error::Decode(format!("defined function {} does not exist", rec.func))
            })?,
            pc,
            offset: rec.offset,
            frame_size,
            wasm_frames: len as u32,
            slots,
        });
        next += len;
    }
    Ok(NativeStack {
        isa: meta.isa.clone(),
        build: meta.build.clone(),
        frames: out,
    })
}

/// Check that `native` is a view of `frames` in the binary `meta` describes:
/// same ISA and build, every machine frame at a return address with a record
/// whose virtual frames are the Wasm frames it holds and whose locations are
/// the slots' locations, every constant location holding its constant.
pub fn check(meta: &CrMeta, native: &NativeStack, frames: &[Frame]) -> Result<(), Error> {
    if native.isa != meta.isa {
        return Err(Error::Decode(format!(
            "the native frames are for {}, the binary is {}",
            native.isa, meta.isa
        )));
    }
    if native.build != meta.build {
        return Err(Error::Decode(format!(
            "the native frames are for build {}, the binary is build {}",
            short(&native.build),
            short(&meta.build)
        )));
    }
    native.check_frames(frames).map_err(Error::Decode)?;
    let first = meta.funcs.first_func().unwrap_or(0);
    let mut next = 0usize;
    for (k, nf) in native.frames.iter().enumerate() {
        let here = || format!("native frame {k} (function {}, offset {:#x})", nf.func, nf.offset);
        let def = nf.func.checked_sub(first).ok_or_else(|| Error::Decode(format!("{}: not a defined function", here())))?;
        let rec = meta
            .record(def, nf.offset)
            .map_err(|e| Error::Decode(format!("{}: {e}", here())))?
            .ok_or_else(|| Error::Decode(format!("{}: the binary has no return site there", here())))?;
        if rec.locations.len() != nf.slots.len() {
            return Err(Error::Decode(format!(
                "{}: {} slots, the binary's record has {} locations",
                here(),
                nf.slots.len(),
                rec.locations.len()
            )));
        }
        for (i, (s, l)) in nf.slots.iter().zip(&rec.locations).enumerate() {
            if s.location != *l {
                let isa = Isa::from_name(&meta.isa);
                return Err(Error::Decode(format!(
                    "{}, slot {i}: the snapshot says the value is in {}, the binary has it in {}",
                    here(),
                    describe(isa, &s.location),
                    describe(isa, l)
                )));
            }
        }
        let layout = record_layout(meta, rec)?;
        if layout.len() != nf.wasm_frames as usize {
            return Err(Error::Decode(format!(
                "{}: holds {} Wasm frames, the binary's record {}",
                here(),
                nf.wasm_frames,
                layout.len()
            )));
        }
        for (j, FrameLayout { point_id: pid, first, point: p, .. }) in layout.iter().enumerate() {
            let f = &frames[next + j];
            if (p.func, p.code_offset, p.kind) != (f.func, f.code_offset, f.kind) {
                return Err(Error::Decode(format!(
                    "{}: Wasm frame {} is function {} {} at {:#x}, the binary's record has function {} {} at {:#x}",
                    here(),
                    next + j,
                    f.func,
                    kind_name(f.kind),
                    f.code_offset,
                    p.func,
                    kind_name(p.kind),
                    p.code_offset
                )));
            }
            if nf.slots[first - 1].bits != Some(u64::from(*pid)) {
                return Err(Error::Decode(format!("{}, slot {}: expected point id {pid}", here(), first - 1)));
            }
            let mut at = *first;
            for v in f.locals.iter().chain(&f.stack) {
                for h in halves(v) {
                    let (loc, i) = (rec.locations.get(at).copied(), at);
                    at += 1;
                    let describe = || format!("{}, slot {}", here(), i);
                    let loc = loc.ok_or_else(|| Error::Decode(format!("{}: the record has no location there", describe())))?;
                    slot_bits(&loc, &h, &describe)?;
                }
            }
        }
        next += nf.wasm_frames as usize;
    }
    Ok(())
}

/// Check the addresses of `native` against the binary: every frame's `pc`
/// is its function's start (`func_start(defined index)`, link-time) plus
/// its `offset`, and a known `frame_size` is the binary's, where the CFI
/// (`cfi`) gives the frame's CFA as a fixed offset from the stack pointer
/// (otherwise it depends on the run and is not checked). `cfi` comes with
/// the bias its addresses have over link-time ones (0 for a binary's file;
/// the load bias for a running process's own CFI).
pub fn check_addresses(
    meta: &CrMeta,
    native: &NativeStack,
    func_start: &dyn Fn(u32) -> Option<u64>,
    cfi: Option<(&Cfi<'_>, u64)>,
) -> Result<(), Error> {
    let first = meta.funcs.first_func().unwrap_or(0);
    let isa = Isa::from_name(&meta.isa);
    // The frame rule of each return site once: a deep recursion repeats a
    // few sites thousands of times (a restore checks its own view).
    let mut rules: Vec<(u64, crate::unwind::FrameRule)> = Vec::new();
    for (k, nf) in native.frames.iter().enumerate() {
        let here = || format!("native frame {k} (function {}, offset {:#x})", nf.func, nf.offset);
        let start = nf
            .func
            .checked_sub(first)
            .and_then(func_start)
            .ok_or_else(|| Error::Decode(format!("{}: the binary has no such function", here())))?;
        let pc = start + u64::from(nf.offset);
        if nf.pc != pc {
            return Err(Error::Decode(format!(
                "{}: pc {:#x}, but the function starts at {start:#x} in the binary, so the return address is {pc:#x}",
                here(),
                nf.pc
            )));
        }
        if let (Some(size), Some((cfi, bias)), Some(isa)) = (nf.frame_size, cfi, isa) {
            let rule = match rules.iter().find(|(at, _)| *at == pc) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = cfi.frame_rule(pc.wrapping_add(bias))?;
                    rules.push((pc, r.clone()));
                    r
                }
            };
            if rule.cfa_reg == isa.sp_reg() && size != rule.cfa_offset as u64 {
                return Err(Error::Decode(format!(
                    "{}: frame size {size}, the binary's unwind information says {} at pc {pc:#x}",
                    here(),
                    rule.cfa_offset
                )));
            }
        }
    }
    Ok(())
}

/// A location as an engineer reads it: `rbx`, `[rsp+16] (8 bytes)`,
/// `const 0` (register names of `isa`, DWARF numbers if it is unknown).
pub fn describe(isa: Option<Isa>, l: &Location) -> String {
    let reg = |r: u16| isa.map_or_else(|| format!("r{r}"), |i| i.reg_name(r));
    match *l {
        Location::Constant(c) => format!("const {c}"),
        Location::Register { reg: r, .. } => reg(r),
        Location::Indirect { reg: r, offset, size } => format!("[{}{offset:+}] ({size} bytes)", reg(r)),
        Location::Direct { reg: r, offset } => format!("{}{offset:+}", reg(r)),
    }
}

fn short(h: &str) -> String {
    h.chars().take(16).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanco_state::crmeta::{CrFunc, CrPoint, CRMETA_VERSION};

    fn point(func: u32, code_offset: u32, kind: FrameKind) -> CrPoint {
        CrPoint { func, code_offset, kind, indirect: false, stack: vec![], args: 0, callee: None, parent: None, route: 0 }
    }

    /// Functions 1 (`_start`, one i32 local) and 2 (one i64 local). Points:
    /// 0 = call in 1, 1 = entry of 2, 2 = loop in 2, 3 = call in 2.
    /// Records: [0] in 1 (call, not inlined), [0, 1] in 1 (2 inlined, its
    /// entry poll), [1] in 2 and [2] in 2 (polls).
    fn meta() -> CrMeta {
        let c = Location::Constant;
        let r = |reg| Location::Register { reg, size: 8 };
        CrMeta {
            version: CRMETA_VERSION,
            isa: "x86_64".into(),
            module: String::new(),
            build: "b".into(),
            funcs: vec![
                CrFunc { func: 1, locals: vec![ValType::I32], entry_point: 0, max_height: 0 },
                CrFunc { func: 2, locals: vec![ValType::I64], entry_point: 1, max_height: 0 },
            ]
            .into(),
            points: vec![
                point(1, 10, FrameKind::Call),
                point(2, 20, FrameKind::Entry),
                point(2, 30, FrameKind::Loop),
                point(2, 40, FrameKind::Call),
            ]
            .into(),
            records: vec![
                CrRecord { func: 0, offset: 0x10, locations: vec![c(0), r(3)] },
                CrRecord { func: 0, offset: 0x20, locations: vec![c(0), r(3), c(1), c(0)] },
                CrRecord { func: 1, offset: 0x08, locations: vec![c(1), c(0)] },
                CrRecord { func: 1, offset: 0x18, locations: vec![c(2), r(14)] },
            ].into(),
        }
    }

    fn frame(func: u32, code_offset: u32, kind: FrameKind, local: Value) -> Frame {
        Frame { func, code_offset, kind, locals: vec![local], stack: vec![] }
    }

    #[test]
    fn layout_prefers_the_inlined_record_and_checks_back() {
        let m = meta();
        let starts = |d: u32| Some(0x1000 + 0x100 * u64::from(d));
        // _start calling 2 at its entry: the inlined record [0, 1].
        let frames = vec![frame(1, 10, FrameKind::Call, Value::I32(-1)), frame(2, 20, FrameKind::Entry, Value::I64(0))];
        let n = layout(&m, &frames, &starts, None).unwrap();
        assert_eq!(n.frames.len(), 1);
        assert_eq!((n.frames[0].pc, n.frames[0].offset, n.frames[0].wasm_frames), (0x1020, 0x20, 2));
        assert_eq!(n.frames[0].slots[1].bits, Some(0xffff_ffff));
        check(&m, &n, &frames).unwrap();
        n.check_frames(&frames).unwrap();

        // At the loop: no inlined record holds [0, 2], so two machine frames.
        let frames = vec![frame(1, 10, FrameKind::Call, Value::I32(7)), frame(2, 30, FrameKind::Loop, Value::I64(-2))];
        let n = layout(&m, &frames, &starts, None).unwrap();
        assert_eq!(n.frames.iter().map(|f| (f.func, f.pc)).collect::<Vec<_>>(), vec![(1, 0x1010), (2, 0x1118)]);
        check(&m, &n, &frames).unwrap();

        // A value where the target has a constant: refused.
        let frames = vec![frame(1, 10, FrameKind::Call, Value::I32(7)), frame(2, 20, FrameKind::Entry, Value::I64(5))];
        let e = layout(&m, &frames, &starts, None).unwrap_err().to_string();
        assert!(e.contains("frame 1 (function 2), local 0: the target binary has the constant 0 there, the snapshot has i64:5"), "{e}");

        // A frame at no point of the target.
        let frames = vec![frame(1, 11, FrameKind::Call, Value::I32(7)), frame(2, 30, FrameKind::Loop, Value::I64(0))];
        let e = layout(&m, &frames, &starts, None).unwrap_err().to_string();
        assert!(e.contains("frame 0 (function 1, Call at 0xb) is not a migration point"), "{e}");

        // A sequence no record holds: a call in 2 at the innermost position.
        let frames = vec![frame(1, 10, FrameKind::Call, Value::I32(7)), frame(2, 40, FrameKind::Call, Value::I64(0))];
        let e = layout(&m, &frames, &starts, None).unwrap_err().to_string();
        assert!(e.contains("has no machine frame for frame 0"), "{e}");

        // Wrong type.
        let frames = vec![frame(1, 10, FrameKind::Call, Value::F32(0)), frame(2, 30, FrameKind::Loop, Value::I64(0))];
        let e = layout(&m, &frames, &starts, None).unwrap_err().to_string();
        assert!(e.contains("the snapshot has f32:0 (0x00000000), the target expects i32"), "{e}");
    }

    #[test]
    fn check_names_what_does_not_fit() {
        let m = meta();
        let starts = |d: u32| Some(0x1000 + 0x100 * u64::from(d));
        let frames = vec![frame(1, 10, FrameKind::Call, Value::I32(7)), frame(2, 30, FrameKind::Loop, Value::I64(-2))];
        let good = layout(&m, &frames, &starts, None).unwrap();
        let err = |n: &NativeStack| check(&m, n, &frames).unwrap_err().to_string();

        let mut n = good.clone();
        n.build = "other".into();
        assert!(err(&n).contains("are for build other"), "{}", err(&n));
        let mut n = good.clone();
        n.isa = "aarch64".into();
        assert!(err(&n).contains("are for aarch64, the binary is x86_64"));
        let mut n = good.clone();
        n.frames[1].offset = 0x19;
        assert!(err(&n).contains("has no return site there"), "{}", err(&n));
        let mut n = good.clone();
        n.frames[1].slots[1].location = Location::Register { reg: 15, size: 8 };
        assert!(err(&n).contains("slot 1: the snapshot says the value is in r15, the binary has it in r14"), "{}", err(&n));
        // The records of the binary hold other points than the frames.
        let mut n = good.clone();
        n.frames[1].offset = 0x08; // the entry poll's record: [1] with a constant local
        n.frames[1].slots[0] = NativeSlot { location: Location::Constant(1), bits: Some(1) };
        n.frames[1].slots[1].location = Location::Constant(0);
        assert!(err(&n).contains("Wasm frame 1 is function 2 Loop at 0x1e, the binary's record has function 2 Entry at 0x14"), "{}", err(&n));
    }
}
