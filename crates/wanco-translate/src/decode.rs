//! Native frames to virtual Wasm frames.
//!
//! A statepoint record ([`CrRecord`]) lists where the deopt values of one
//! call site live: a sequence of virtual frames, outermost first (inlining
//! concatenates them), each a `Constant(point id)` followed by one location
//! per local of the point's function and one per operand-stack value of the
//! point. [`decode_record`] reads them out of a register file and memory;
//! [`walk`] does that for every compiled frame of a native stack, unwinding
//! with [`Cfi`].

use crate::unwind::{Cfi, Memory, Regs};
use crate::Error;
use std::borrow::Cow;
use wanco_state::crmeta::{CrFunc, CrMeta, CrPoint, CrRecord, Location};
use wanco_state::ValType;

/// Most physical frames [`walk`] decodes before giving up (a loop guard: the
/// Wasm thread's 64 MiB stack holds at most 4M 16-byte frames).
pub const MAX_FRAMES: usize = 4_000_000;

/// The raw bits of one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawValue {
    /// Its Wasm type.
    pub ty: ValType,
    /// `i32`/`f32`: the 32 bits, zero-extended; `i64`/`f64`: the 64 bits;
    /// references: the raw pointer bits; a v128: its low 64 bits.
    pub bits: u64,
    /// A v128: its high 64 bits; 0 for other types.
    pub hi: u64,
}

impl RawValue {
    /// A value of a type other than v128.
    pub fn new(ty: ValType, bits: u64) -> RawValue {
        RawValue { ty, bits, hi: 0 }
    }

    /// All its bits (a v128's 128; others zero-extended).
    pub fn bits128(&self) -> u128 {
        u128::from(self.bits) | u128::from(self.hi) << 64
    }
}

/// One Wasm frame held by a native frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualFrame {
    /// Point id (index into [`CrMeta::points`]).
    pub point: u32,
    /// All locals of the point's function, parameters first.
    pub locals: Vec<RawValue>,
    /// The operand stack of the point, bottom first.
    pub stack: Vec<RawValue>,
}

/// One physical frame of compiled code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeFrame {
    /// Its pc (a return address).
    pub pc: u64,
    /// Its sp at that return address.
    pub sp: u64,
    /// Its canonical frame address (the caller's sp), from the CFI.
    pub cfa: u64,
    /// Defined-function index.
    pub func: u32,
    /// `pc` minus the function's start address.
    pub offset: u32,
    /// The Wasm frames it holds, outermost first.
    pub frames: Vec<VirtualFrame>,
}

/// Number of stack map locations a value of type `ty` takes: a v128 is two
/// 64-bit halves (low first), every other value one.
pub fn locations_of(ty: ValType) -> usize {
    if ty == ValType::V128 {
        2
    } else {
        1
    }
}

/// Width in bytes of a value of type `ty` in a stack map location.
fn width(ty: ValType) -> u8 {
    match ty {
        ValType::I32 | ValType::F32 => 4,
        ValType::I64 | ValType::F64 | ValType::FuncRef | ValType::ExternRef => 8,
        ValType::V128 => 16,
    }
}

fn truncate(v: u64, width: u8) -> u64 {
    if width == 4 {
        v & 0xffff_ffff
    } else {
        v
    }
}

/// Read one value of type `ty` at `loc`; `what` names the slot for errors.
fn read_value(
    loc: &Location,
    ty: ValType,
    regs: &Regs,
    mem: &impl Memory,
    what: &dyn Fn() -> String,
) -> Result<RawValue, Error> {
    let w = width(ty);
    if w > 8 {
        // A v128 is two 64-bit locations in the record; a raw value of
        // the translator carries 64 bits: capturing v128 values is not
        // supported yet.
        return Err(Error::Decode(format!(
            "{}: checkpointing a frame with a live {ty} value is not supported yet",
            what()
        )));
    }
    let small = |size: u8| {
        Error::Decode(format!(
            "{}: a {ty} value needs {w} bytes, the location has {size}: {loc:?}",
            what()
        ))
    };
    // Register `reg` of the frame (`role`: "" or "base ", for the message).
    let reg_value = |reg: u16, role: &str| -> Result<u64, Error> {
        regs.get(reg).ok_or_else(|| {
            Error::Decode(format!(
                "{}: {role}register {} is unknown in this frame",
                what(),
                regs.isa().reg_name(reg)
            ))
        })
    };
    // The value of width `w` at `[reg + offset]`.
    let read_mem = |reg: u16, offset: i32| -> Result<u64, Error> {
        let base = reg_value(reg, "base ")?;
        let addr = base.wrapping_add_signed(i64::from(offset));
        let v = if w == 4 {
            mem.read_u32(addr).map(u64::from)
        } else {
            mem.read_u64(addr)
        };
        v.ok_or_else(|| Error::Memory { addr, what: what() })
    };
    let bits = match *loc {
        Location::Constant(c) => truncate(c as u64, w),
        Location::Register { reg, size } => {
            if size < w {
                return Err(small(size));
            }
            truncate(reg_value(reg, "")?, w)
        }
        Location::Indirect { reg, offset, size } => {
            if size < w {
                return Err(small(size));
            }
            read_mem(reg, offset)?
        }
        // A stack object: the compiler names a local kept in memory by its
        // slot at a return site (its value is what the slot holds).
        Location::Direct { reg, offset } => read_mem(reg, offset)?,
    };
    Ok(RawValue::new(ty, bits))
}

/// Read the value of type `ty` whose first location is `locs[i]` (a v128:
/// two 64-bit locations, low half first).
fn read_typed(
    locs: &[Location],
    i: usize,
    ty: ValType,
    regs: &Regs,
    mem: &impl Memory,
    what: &dyn Fn() -> String,
) -> Result<RawValue, Error> {
    if ty != ValType::V128 {
        return read_value(&locs[i], ty, regs, mem, what);
    }
    let lo = read_value(&locs[i], ValType::I64, regs, mem, &|| format!("{} (low half)", what()))?;
    let hi = read_value(&locs[i + 1], ValType::I64, regs, mem, &|| format!("{} (high half)", what()))?;
    Ok(RawValue { ty, bits: lo.bits, hi: hi.bits })
}

/// The virtual frames a statepoint record describes, outermost first: for
/// each, its point id and the index of its first local in
/// `rec.locations` (the locals, then the operand stack, follow). Checks the
/// layout against the metadata without reading any value (the compiler uses
/// it on every record it emits).
///
/// The outermost frame must be a point of the record's own function.
pub fn record_frames(meta: &CrMeta, rec: &CrRecord) -> Result<Vec<(u32, usize)>, Error> {
    Ok(record_layout(meta, rec)?.into_iter().map(|f| (f.point_id, f.first)).collect())
}

/// One virtual frame of a record: its point id, the index of its first
/// local in the record's locations, and its point and function, decoded
/// once (metadata read in place decodes an entry at every look).
pub(crate) struct FrameLayout<'m> {
    pub point_id: u32,
    pub first: usize,
    pub point: Cow<'m, CrPoint>,
    pub func: Cow<'m, CrFunc>,
}

/// [`record_frames`], with each frame's point and function.
pub(crate) fn record_layout<'m>(meta: &'m CrMeta, rec: &CrRecord) -> Result<Vec<FrameLayout<'m>>, Error> {
    let here = || {
        format!(
            "record of defined function {} at offset {:#x}",
            rec.func, rec.offset
        )
    };
    let own = meta.funcs.get(rec.func as usize).ok_or_else(|| {
        Error::Decode(format!(
            "{}: the module has only {} defined functions",
            here(),
            meta.funcs.len()
        ))
    })?;
    let mut frames = Vec::new();
    let mut i = 0usize;
    let locs = &rec.locations;
    while i < locs.len() {
        let point_id = match locs[i] {
            Location::Constant(c) => u32::try_from(c).map_err(|_| {
                Error::Decode(format!(
                    "{}: location {i} should be a point id, found the constant {c}",
                    here()
                ))
            })?,
            other => {
                return Err(Error::Decode(format!(
                    "{}: location {i} should be a constant point id, found {other:?}",
                    here()
                )))
            }
        };
        i += 1;
        let point = meta.points.get(point_id as usize).ok_or_else(|| {
            Error::Decode(format!(
                "{}: point {point_id} does not exist (the module has {} points)",
                here(),
                meta.points.len()
            ))
        })?;
        let func = meta.func(point.func).ok_or_else(|| {
            Error::Decode(format!(
                "{}: point {point_id} belongs to function {}, which is not a defined function",
                here(),
                point.func
            ))
        })?;
        if frames.is_empty() && own.func != point.func {
            return Err(Error::Decode(format!(
                "{}: the outermost frame is point {point_id} of function {}, expected a point \
                 of function {}",
                here(),
                point.func,
                own.func
            )));
        }
        // A v128 takes two locations (its low and high 64 bits).
        let need: usize = func.locals.iter().chain(point.stack.iter()).map(|t| locations_of(*t)).sum();
        if locs.len() - i < need {
            return Err(Error::Decode(format!(
                "{}: point {point_id} needs {} locals and {} stack values, only {} locations \
                 are left",
                here(),
                func.locals.len(),
                point.stack.len(),
                locs.len() - i
            )));
        }
        frames.push(FrameLayout { point_id, first: i, point, func });
        i += need;
    }
    Ok(frames)
}

/// Decode the virtual frames of one statepoint record, with `regs` the
/// register state of the frame at the record's return address.
///
/// Frames are returned outermost first (see [`record_frames`]).
pub fn decode_record(
    meta: &CrMeta,
    rec: &CrRecord,
    regs: &Regs,
    mem: &impl Memory,
) -> Result<Vec<VirtualFrame>, Error> {
    let here = || {
        format!(
            "record of defined function {} at offset {:#x}",
            rec.func, rec.offset
        )
    };
    let mut frames = Vec::new();
    for FrameLayout { point_id, first, point, func } in record_layout(meta, rec)? {
        let mut i = first;
        let mut locals = Vec::with_capacity(func.locals.len());
        for (k, ty) in func.locals.iter().enumerate() {
            let what = || format!("{}: point {point_id}, local {k}", here());
            locals.push(read_typed(&rec.locations, i, *ty, regs, mem, &what)?);
            i += locations_of(*ty);
        }
        let mut stack = Vec::with_capacity(point.stack.len());
        for (k, ty) in point.stack.iter().enumerate() {
            let what = || format!("{}: point {point_id}, stack slot {k}", here());
            stack.push(read_typed(&rec.locations, i, *ty, regs, mem, &what)?);
            i += locations_of(*ty);
        }
        frames.push(VirtualFrame {
            point: point_id,
            locals,
            stack,
        });
    }
    Ok(frames)
}

/// Walk the native stack from `start`, the register state at the return
/// address of the innermost compiled frame (the one that called the
/// runtime), decoding every compiled frame until the first frame that is not
/// a return site of compiled code (the trampoline that entered Wasm).
///
/// `func_starts[i]` is the runtime start address of defined function `i`.
/// Returns the physical frames **innermost first** (each with its virtual
/// frames outermost first). Fails if the first frame is not a return site,
/// if a frame cannot be decoded or unwound, if the stack pointer does not
/// strictly increase from frame to frame, or after [`MAX_FRAMES`] frames.
pub fn walk(
    meta: &CrMeta,
    func_starts: &[u64],
    cfi: &Cfi<'_>,
    start: Regs,
    mem: &impl Memory,
) -> Result<Vec<NativeFrame>, Error> {
    let mut starts: Vec<(u64, u32)> = Vec::with_capacity(func_starts.len());
    for (i, &a) in func_starts.iter().enumerate() {
        let i = u32::try_from(i)
            .map_err(|_| Error::Decode(format!("too many functions ({})", func_starts.len())))?;
        starts.push((a, i));
    }
    starts.sort_unstable();

    let mut out: Vec<NativeFrame> = Vec::new();
    let mut regs = start;
    loop {
        let pc = regs.pc();
        // The function holding the call is the one holding `pc - 1`: a call
        // LLVM knows never returns (`call; unreachable`) can be the last
        // instruction of its function, its return address the next
        // function's first byte (seen on aarch64). The record's offset is
        // then the function's size.
        let n = starts.partition_point(|&(a, _)| a < pc);
        let site = n
            .checked_sub(1)
            .and_then(|k| starts.get(k))
            .and_then(|&(a, f)| Some((f, u32::try_from(pc - a).ok()?)));
        let found = match site {
            Some((f, off)) => meta
                .record(f, off)
                .map_err(|e| Error::Decode(format!("the record at pc {pc:#x}: {e}")))?
                .map(|rec| (f, off, rec)),
            None => None,
        };
        let Some((func, offset, rec)) = found else {
            if out.is_empty() {
                return Err(Error::Decode(format!(
                    "pc {pc:#x} of the innermost frame is not a return site of compiled code"
                )));
            }
            break;
        };
        let sp = regs.sp().ok_or_else(|| {
            Error::Decode(format!(
                "the stack pointer of the frame at pc {pc:#x} is unknown"
            ))
        })?;
        let frames = decode_record(meta, rec, &regs, mem)?;
        let next = cfi.step(&regs, mem)?;
        let cfa = match next.sp() {
            Some(nsp) if nsp > sp => nsp,
            other => {
                return Err(Error::Unwind {
                    pc,
                    message: format!(
                        "the caller's sp ({}) is not above the frame's sp {sp:#x}",
                        other.map_or_else(|| "unknown".to_string(), |v| format!("{v:#x}"))
                    ),
                })
            }
        };
        out.push(NativeFrame {
            pc,
            sp,
            cfa,
            func,
            offset,
            frames,
        });
        if out.len() >= MAX_FRAMES {
            return Err(Error::Decode(format!(
                "more than {MAX_FRAMES} compiled frames (at pc {pc:#x}): the stack is corrupt"
            )));
        }
        regs = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unwind::Isa;
    use std::collections::HashMap;
    use wanco_state::crmeta::CRMETA_VERSION;
    use wanco_state::snapshot::FrameKind;

    #[derive(Default)]
    struct Words(HashMap<u64, u64>);

    impl Memory for Words {
        fn read_u64(&self, addr: u64) -> Option<u64> {
            self.0.get(&addr).copied()
        }
    }

    fn point(func: u32, stack: Vec<ValType>) -> CrPoint {
        CrPoint {
            func,
            code_offset: 0,
            kind: FrameKind::Call,
            indirect: false,
            stack,
            args: 0,
            callee: None,
            parent: None,
            route: 0,
        }
    }

    /// Module functions 5 (locals i32, f64) and 6 (locals f32); point 0 in
    /// 5 with stack [i64, externref], point 1 in 6 with an empty stack.
    fn meta(records: Vec<CrRecord>) -> CrMeta {
        CrMeta {
            version: CRMETA_VERSION,
            module: String::new(),
            build: String::new(),
            isa: "x86_64".into(),
            funcs: vec![
                CrFunc {
                    func: 5,
                    locals: vec![ValType::I32, ValType::F64],
                    entry_point: 0,
                    max_height: 2,
                },
                CrFunc {
                    func: 6,
                    locals: vec![ValType::F32],
                    entry_point: 1,
                    max_height: 0,
                },
            ]
            .into(),
            points: vec![
                point(5, vec![ValType::I64, ValType::ExternRef]),
                point(6, vec![]),
            ]
            .into(),
            records: records.into(),
        }
    }

    fn rec(locations: Vec<Location>) -> CrRecord {
        CrRecord {
            func: 0,
            offset: 0x10,
            locations,
        }
    }

    fn good_locations() -> Vec<Location> {
        vec![
            Location::Constant(0),
            Location::Register { reg: 3, size: 8 }, // i32 in an 8-byte register: low half
            Location::Indirect {
                reg: 7,
                offset: 8,
                size: 8,
            },
            Location::Constant(-2),
            Location::Indirect {
                reg: 7,
                offset: 16,
                size: 8,
            },
            Location::Constant(1),
            Location::Indirect {
                reg: 7,
                offset: 22,
                size: 4,
            }, // straddles two words
        ]
    }

    fn regs_and_mem() -> (Regs, Words) {
        let mut r = Regs::new(Isa::X86_64, 0x1010);
        r.set_sp(0x8000);
        r.set(3, 0xaaaa_bbbb_1234_5678);
        let mut m = Words::default();
        m.0.insert(0x8008, 0x4005_bf0a_8b14_5769); // f64 e
                                                   // [sp+16]: 8 bytes; [sp+22]: f32 pi = 0x40490fdb across two words.
        m.0.insert(0x8010, 0x0fdb_1234_0000_5678);
        m.0.insert(0x8018, 0xffff_ffff_ffff_4049);
        (r, m)
    }

    #[test]
    fn decodes_two_virtual_frames() {
        let (r, m) = regs_and_mem();
        let meta = meta(vec![]);
        let frames = decode_record(&meta, &rec(good_locations()), &r, &m).expect("decode");
        let v = |ty, bits| RawValue::new(ty, bits);
        assert_eq!(
            frames,
            vec![
                VirtualFrame {
                    point: 0,
                    locals: vec![
                        v(ValType::I32, 0x1234_5678),
                        v(ValType::F64, 0x4005_bf0a_8b14_5769)
                    ],
                    stack: vec![
                        v(ValType::I64, (-2i64) as u64),
                        v(ValType::ExternRef, 0x0fdb_1234_0000_5678)
                    ],
                },
                VirtualFrame {
                    point: 1,
                    locals: vec![v(ValType::F32, 0x4049_0fdb)],
                    stack: vec![]
                },
            ]
        );
        // Constants are truncated to 32 bits for i32/f32.
        let mut l = good_locations();
        l[1] = Location::Constant(-1);
        let frames = decode_record(&meta, &rec(l), &r, &m).expect("decode");
        assert_eq!(frames[0].locals[0], v(ValType::I32, 0xffff_ffff));
    }

    fn decode_err(locs: Vec<Location>) -> String {
        let (r, m) = regs_and_mem();
        match decode_record(&meta(vec![]), &rec(locs), &r, &m) {
            Err(e) => e.to_string(),
            Ok(f) => panic!("expected an error, decoded {f:?}"),
        }
    }

    /// A local kept in memory is named by its stack object (`Direct`): the
    /// value is read from there, as from the spill slot (`Indirect`) at the
    /// same place.
    #[test]
    fn a_direct_location_reads_the_stack_object() {
        let (r, m) = regs_and_mem();
        let mut l = good_locations();
        l[2] = Location::Direct { reg: 7, offset: 8 };
        let direct = decode_record(&meta(vec![]), &rec(l), &r, &m).expect("decode");
        let indirect = decode_record(&meta(vec![]), &rec(good_locations()), &r, &m).expect("decode");
        assert_eq!(direct, indirect);
    }

    #[test]
    fn decode_errors_name_the_slot() {
        // A stack object whose base register the frame does not know.
        let mut l = good_locations();
        l[2] = Location::Direct { reg: 5, offset: 8 };
        let e = decode_err(l);
        assert!(
            e.contains("point 0, local 1") && e.contains("base register"),
            "{e}"
        );

        let mut l = good_locations();
        l[2] = Location::Register { reg: 17, size: 4 }; // f64 in 4 bytes
        let e = decode_err(l);
        assert!(
            e.contains("point 0, local 1") && e.contains("needs 8 bytes"),
            "{e}"
        );

        let mut l = good_locations();
        l[1] = Location::Register { reg: 12, size: 4 }; // r12 unknown
        let e = decode_err(l);
        assert!(
            e.contains("point 0, local 0") && e.contains("r12 is unknown"),
            "{e}"
        );

        let mut l = good_locations();
        l[4] = Location::Indirect {
            reg: 7,
            offset: 0x100,
            size: 8,
        };
        assert_eq!(
            decode_err(l),
            "cannot read record of defined function 0 at offset 0x10: point 0, stack slot 1 at 0x8100"
        );

        let e = decode_err(vec![Location::Constant(7)]);
        assert!(e.contains("point 7 does not exist"), "{e}");
        let e = decode_err(vec![Location::Constant(-1)]);
        assert!(e.contains("should be a point id"), "{e}");
        let e = decode_err(vec![Location::Register { reg: 3, size: 8 }]);
        assert!(
            e.contains("location 0 should be a constant point id"),
            "{e}"
        );
        // Outermost frame of another function.
        let e = decode_err(vec![Location::Constant(1), Location::Constant(0)]);
        assert!(e.contains("expected a point of function 5"), "{e}");
        // Locations end early.
        let mut l = good_locations();
        l.pop();
        let e = decode_err(l);
        assert!(
            e.contains("point 1 needs 1 locals and 0 stack values, only 0"),
            "{e}"
        );
        // Point of a function that is not defined.
        let (r, m) = regs_and_mem();
        let mut mt = meta(vec![]);
        mt.points.to_mut().push(point(9, vec![]));
        let e = decode_record(&mt, &rec(vec![Location::Constant(2)]), &r, &m).unwrap_err();
        assert!(
            e.to_string()
                .contains("function 9, which is not a defined function"),
            "{e}"
        );
        // Record of a function that does not exist.
        let bad = CrRecord {
            func: 4,
            offset: 0,
            locations: vec![],
        };
        assert!(decode_record(&mt, &bad, &r, &m).is_err());
    }

    /// A hand-assembled x86-64 `.eh_frame` with one FDE for
    /// `[start, start + len)`: CFA = rsp + `cfa_offset`, return address at
    /// CFA-8, absolute (8-byte) FDE addresses.
    fn eh_frame(start: u64, len: u64, cfa_offset: u8) -> Vec<u8> {
        let mut cie = vec![0, 0, 0, 0, 1]; // CIE id, version
        cie.extend(b"zR\0");
        cie.extend([1, 0x78, 16, 1, 0x00]); // code align 1, data align -8, RA 16, aug len 1, absptr
        cie.extend([0x0c, 7, cfa_offset, 0x90, 1]); // def_cfa rsp+off; offset r16 at CFA-8
        while (cie.len() + 4) % 8 != 0 {
            cie.push(0);
        }
        let mut out = (cie.len() as u32).to_le_bytes().to_vec();
        out.extend(&cie);
        let mut fde = Vec::new();
        fde.extend(((out.len() + 4) as u32).to_le_bytes()); // CIE pointer
        fde.extend(start.to_le_bytes());
        fde.extend(len.to_le_bytes());
        fde.push(0); // aug data length
        while (fde.len() + 4) % 8 != 0 {
            fde.push(0);
        }
        out.extend((fde.len() as u32).to_le_bytes());
        out.extend(fde);
        out.extend([0, 0, 0, 0]);
        out
    }

    #[test]
    fn walk_stops_at_the_trampoline_and_rejects_loops() {
        // One function at 0x1000 whose frame has CFA = rsp + 16.
        let eh = eh_frame(0x1000, 0x100, 16);
        let cfi = Cfi::from_eh_frame(Isa::X86_64, &eh, 0x9000);
        let meta = meta(vec![
            CrRecord {
                func: 0,
                offset: 0x10,
                locations: vec![Location::Constant(1), Location::Constant(3)],
            },
            CrRecord {
                func: 0,
                offset: 0x20,
                locations: vec![Location::Constant(1), Location::Constant(4)],
            },
        ]);
        let mut meta = meta;
        // Make point 1 belong to function 5 (defined 0) with one f32 local.
        meta.points.to_mut()[1] = point(5, vec![]);
        meta.funcs.to_mut()[0].locals = vec![ValType::F32];
        let starts = [0x1000u64, 0x5000];

        // pc 0x1010 (record 1) called from 0x1020 (record 2) called from the
        // trampoline at 0x7000 (function 1, no record there).
        let mut r = Regs::new(Isa::X86_64, 0x1010);
        r.set_sp(0x8000);
        let mut m = Words::default();
        m.0.insert(0x8008, 0x1020);
        m.0.insert(0x8018, 0x7000);
        let frames = walk(&meta, &starts, &cfi, r.clone(), &m).expect("walk");
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[0].pc, frames[0].sp, frames[0].offset),
            (0x1010, 0x8000, 0x10)
        );
        assert_eq!(
            (frames[1].pc, frames[1].sp, frames[1].offset),
            (0x1020, 0x8010, 0x20)
        );
        assert_eq!(frames[1].frames[0].locals[0].bits, 4);

        // CFA = rsp + 0: the caller's sp does not increase.
        let eh0 = eh_frame(0x1000, 0x100, 0);
        let cfi0 = Cfi::from_eh_frame(Isa::X86_64, &eh0, 0x9000);
        m.0.insert(0x7ff8, 0x1010);
        let e = walk(&meta, &starts, &cfi0, r.clone(), &m).unwrap_err();
        assert!(e.to_string().contains("is not above"), "{e}");

        // Unreadable return address.
        let e = walk(&meta, &starts, &cfi, r.clone(), &Words::default()).unwrap_err();
        assert_eq!(
            e,
            Error::Memory {
                addr: 0x8008,
                what: "the saved register return address (unwinding pc 0x1010)".into()
            }
        );
        // Unknown sp.
        let r2 = Regs::new(Isa::X86_64, 0x1010);
        assert!(walk(&meta, &starts, &cfi, r2, &m).is_err());
        // First frame outside any function / not a return site.
        let r3 = Regs::new(Isa::X86_64, 0x10);
        assert!(matches!(
            walk(&meta, &starts, &cfi, r3, &m),
            Err(Error::Decode(_))
        ));
        let mut r4 = r.clone();
        r4.set_pc(0x1011);
        assert!(matches!(
            walk(&meta, &starts, &cfi, r4, &m),
            Err(Error::Decode(_))
        ));
        // Register file of the wrong ISA.
        let mut r5 = Regs::new(Isa::Aarch64, 0x1010);
        r5.set_sp(0x8000);
        assert!(matches!(cfi.step(&r5, &m), Err(Error::Unwind { .. })));
    }

    /// A call that never returns can be its function's last instruction:
    /// its return address is the next function's first byte, and belongs
    /// to the function before (the record's offset is that function's size).
    #[test]
    fn a_return_address_at_the_end_of_its_function_is_that_functions() {
        // Function 0 is [0x1000, 0x1040), function 1 starts at 0x1040.
        let eh = eh_frame(0x1000, 0x40, 16);
        let cfi = Cfi::from_eh_frame(Isa::X86_64, &eh, 0x9000);
        let mut meta = meta(vec![CrRecord { func: 0, offset: 0x40, locations: vec![Location::Constant(1), Location::Constant(7)] }]);
        meta.points.to_mut()[1] = point(5, vec![]);
        meta.funcs.to_mut()[0].locals = vec![ValType::F32];
        let starts = [0x1000u64, 0x1040];
        let mut r = Regs::new(Isa::X86_64, 0x1040);
        r.set_sp(0x8000);
        let mut m = Words::default();
        m.0.insert(0x8008, 0x7000); // called from the trampoline
        let frames = walk(&meta, &starts, &cfi, r, &m).expect("walk");
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].func, frames[0].offset), (0, 0x40));
        assert_eq!(frames[0].frames[0].locals[0].bits, 7);
    }
}
