//! The interpreter's execution state in the ISA-neutral state model.
//!
//! When execution is paused at a migration point (see
//! [`Store::set_pause_at`]), [`Store::frames`] describes every Wasm frame,
//! **outermost first** (index 0 is the frame the embedder called, the last
//! one is the frame that reached the migration point). Each frame names its
//! point by a Wasm code offset:
//!
//! * function entry: the byte offset of the function body in the module
//!   (`wasmparser::FunctionBody::range().start`, just after the body size),
//!   with the parameters and zero-initialised locals and an empty stack;
//! * loop header: the byte offset of the `loop` opcode, with the operand
//!   stack as it is when the loop (re-)starts (loop parameters on top);
//! * outer frames: the byte offset of the `call` / `call_indirect` opcode
//!   the frame is executing, with the operand stack below the call's
//!   arguments.
//!
//! Locals dead at the point (not read before being written on any path
//! from it, [`wanco_state::liveness`]) are described as zero, so that the
//! description is the same in every engine.
//!
//! A state taken this way can be put back with [`Store::restore_frames`]
//! (in a fresh store, after instantiating the same module and restoring its
//! [`InstanceState`]) and continued with [`Store::resume`].

use crate::error::Error;
use crate::instr::{FuncCode, Instr, PointInfo};
use crate::store::{
    slot_len, slots_of, slots_to_value, value_slots, Activation, Frame, FuncKind, Instance, Store,
};
use wanco_state::{ValType, Value};

/// What kind of point a frame is stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PointKind {
    /// Function entry (innermost frame only).
    Entry,
    /// Loop header (innermost frame only).
    Loop,
    /// A call site (every frame but the innermost).
    Call,
}

/// One Wasm frame in the ISA-neutral state model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameState {
    /// Instance the function belongs to.
    pub instance: Instance,
    /// Function index in its module (imported functions counted first).
    pub func: u32,
    /// Kind of the point.
    pub kind: PointKind,
    /// Code offset of the point (see the module documentation).
    pub code_offset: u32,
    /// All locals, parameters first. `funcref`s are function indices of the
    /// frame's module.
    pub locals: Vec<Value>,
    /// Operand stack, bottom first.
    pub stack: Vec<Value>,
}

/// The state of an instance other than its frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceState {
    /// Every global (imported first). `funcref`s are function indices.
    pub globals: Vec<Value>,
    /// Every table's elements (imported first). `funcref`s are function indices.
    pub tables: Vec<Vec<Value>>,
    /// Linear memory 0, if any.
    pub memory: Option<Vec<u8>>,
    /// Which element segments have been dropped.
    pub elem_dropped: Vec<bool>,
    /// Which data segments have been dropped.
    pub data_dropped: Vec<bool>,
}

fn find_point(points: &[PointInfo], pc: u32) -> Option<&PointInfo> {
    points
        .binary_search_by_key(&pc, |p| p.pc)
        .ok()
        .map(|i| &points[i])
}

impl Store {
    fn func_index_of(&self, inst: u32, addr: u32) -> Option<u32> {
        self.instances[inst as usize]
            .funcs
            .iter()
            .position(|a| *a == addr)
            .map(|i| i as u32)
    }

    /// Typed value of the first slot(s) of `slots`, funcrefs as function
    /// indices of `inst`.
    fn neutral_value(&self, inst: u32, slots: &[u64], ty: ValType) -> Result<Value, Error> {
        match slots_to_value(slots, ty) {
            Value::FuncRef(Some(addr)) => self
                .func_index_of(inst, addr)
                .map(|i| Value::FuncRef(Some(i)))
                .ok_or_else(|| {
                    Error::new(
                        0,
                        "a funcref refers to a function outside the instance's index space",
                    )
                }),
            v => Ok(v),
        }
    }

    /// Typed values of types `tys` laid out in `slots`.
    fn neutral_values(&self, inst: u32, slots: &[u64], tys: &[ValType]) -> Result<Vec<Value>, Error> {
        let mut at = 0;
        tys.iter()
            .map(|t| {
                let v = self.neutral_value(inst, &slots[at..], *t);
                at += slots_of(*t);
                v
            })
            .collect()
    }

    /// Append the slot(s) of `v` (checked to be of type `ty`) to `out`.
    fn push_slots(
        &self,
        out: &mut Vec<u64>,
        inst: u32,
        v: Value,
        ty: ValType,
        what: &str,
    ) -> Result<(), Error> {
        let [lo, hi] = self.store_slot(inst, v, ty, what)?;
        out.push(lo);
        if ty == ValType::V128 {
            out.push(hi);
        }
        Ok(())
    }

    /// The slots of `v` (checked to be of type `ty`; the second only
    /// meaningful for `v128`), funcrefs as store addresses.
    fn store_slot(&self, inst: u32, v: Value, ty: ValType, what: &str) -> Result<[u64; 2], Error> {
        if v.ty() != ty {
            return Err(Error::new(
                0,
                format!("{what}: expected a value of type {ty}, got {v}"),
            ));
        }
        match v {
            Value::FuncRef(Some(i)) => self.instances[inst as usize]
                .funcs
                .get(i as usize)
                .map(|a| [*a as u64, 0])
                .ok_or_else(|| Error::new(0, format!("{what}: no function {i}"))),
            v => Ok(value_slots(v)),
        }
    }

    /// The frames of the paused execution, outermost first.
    pub fn frames(&self) -> Result<Vec<FrameState>, Error> {
        if !self.exec.paused {
            return Err(Error::new(
                0,
                "no state to capture: the execution is not paused at a migration point",
            ));
        }
        let base = self
            .exec
            .activations
            .last()
            .map(|a| a.base_frames)
            .unwrap_or(0);
        let frames = &self.exec.frames[base..];
        let mut out = Vec::with_capacity(frames.len());
        for (i, fr) in frames.iter().enumerate() {
            let FuncKind::Wasm { instance, def } = self.funcs[fr.func as usize].kind else {
                return Err(Error::new(0, "host frame on the Wasm stack"));
            };
            let code: &FuncCode = &self.instances[instance as usize].module.code[def as usize];
            let innermost = i + 1 == frames.len();
            let end = if innermost {
                self.exec.stack.len()
            } else {
                // The callee's frame starts at its first argument.
                frames[i + 1].fp as usize
            };
            let (kind, offset, types, live): (PointKind, u32, &[ValType], _) =
                if innermost && fr.pc == 0 {
                    (PointKind::Entry, code.body_offset, &[], &code.entry_live)
                } else if innermost {
                    let p = find_point(&code.loops, fr.pc - 1)
                        .ok_or_else(|| Error::new(0, "innermost frame is not at a loop header"))?;
                    (PointKind::Loop, p.offset, &p.stack, &p.live)
                } else {
                    let p = find_point(&code.calls, fr.pc.wrapping_sub(1))
                        .ok_or_else(|| Error::new(0, "outer frame is not at a call site"))?;
                    (PointKind::Call, p.offset, &p.stack, &p.live)
                };
            let fp = fr.fp as usize;
            let nl = code.local_slots as usize;
            let slots = &self.exec.stack[fp + nl..end];
            if slots.len() != slot_len(types) {
                return Err(Error::new(
                    offset as usize,
                    format!(
                        "internal: operand stack has {} slots, the point expects {}",
                        slots.len(),
                        slot_len(types)
                    ),
                ));
            }
            // A local dead at the point (never read before being written
            // from it) is zero, as in every engine's snapshot.
            let local_slots = &self.exec.stack[fp..fp + nl];
            let mut at = 0;
            let locals = code
                .local_types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let s = &local_slots[at..];
                    at += slots_of(*t);
                    if live.contains(i) {
                        self.neutral_value(instance, s, *t)
                    } else {
                        Ok(Value::default_of(*t))
                    }
                })
                .collect::<Result<_, _>>()?;
            let stack = self.neutral_values(instance, slots, types)?;
            let info = &self.instances[instance as usize].module.info;
            out.push(FrameState {
                instance: Instance(instance),
                func: info.num_imported_funcs + def,
                kind,
                code_offset: offset,
                locals,
                stack,
            });
        }
        Ok(out)
    }

    /// Rebuild a paused execution from `frames` (outermost first). The store
    /// must have no execution in progress; call [`Store::resume`] next.
    pub fn restore_frames(&mut self, frames: &[FrameState]) -> Result<(), Error> {
        if !self.exec.activations.is_empty() || self.exec.paused {
            return Err(Error::new(0, "cannot restore: an execution is in progress"));
        }
        if frames.is_empty() {
            return Err(Error::new(0, "cannot restore: no frames"));
        }
        if frames.len() > crate::store::MAX_FRAMES {
            return Err(Error::new(
                0,
                format!(
                    "cannot restore: the snapshot has {} frames, more than the interpreter's call stack holds ({})",
                    frames.len(),
                    crate::store::MAX_FRAMES
                ),
            ));
        }
        let mut stack: Vec<u64> = Vec::new();
        let mut built: Vec<Frame> = Vec::new();
        let mut results = Vec::new();
        for (i, fs) in frames.iter().enumerate() {
            let d = self.check_instance(fs.instance)?;
            let inst = fs.instance.0;
            let info = &d.module.info;
            let def = fs
                .func
                .checked_sub(info.num_imported_funcs)
                .filter(|def| (*def as usize) < d.module.code.len())
                .ok_or_else(|| {
                    Error::new(
                        0,
                        format!(
                            "frame {i}: function {} is not a function defined in the module (it has {} functions, {} of them imported)",
                            fs.func,
                            info.funcs.len(),
                            info.num_imported_funcs
                        ),
                    )
                })?;
            let addr = d.funcs[fs.func as usize];
            let code = &d.module.code[def as usize];
            if i == 0 {
                results = info
                    .func_type(fs.func)
                    .map(|t| t.results.clone())
                    .unwrap_or_default();
            }
            let innermost = i + 1 == frames.len();
            let what = format!("frame {i} (function {})", fs.func);
            let (pc, types): (u32, &[ValType]) = match fs.kind {
                PointKind::Entry if innermost && fs.code_offset == code.body_offset && !code.has_entry_point => {
                    return Err(Error::new(
                        fs.code_offset as usize,
                        format!("{what}: the function has no entry migration point (no loop and no call in its body)"),
                    ))
                }
                PointKind::Entry if innermost && fs.code_offset == code.body_offset => (0, &[]),
                PointKind::Loop if innermost => {
                    let p = code
                        .loops
                        .iter()
                        .find(|p| p.offset == fs.code_offset)
                        .ok_or_else(|| {
                            Error::new(
                                fs.code_offset as usize,
                                format!("{what}: no loop at this offset"),
                            )
                        })?;
                    (p.pc + 1, &p.stack)
                }
                PointKind::Call if !innermost => {
                    let p = code
                        .calls
                        .iter()
                        .find(|p| p.offset == fs.code_offset)
                        .ok_or_else(|| {
                            Error::new(
                                fs.code_offset as usize,
                                format!("{what}: no call at this offset"),
                            )
                        })?;
                    // The call must lead to the next frame: the same function
                    // (`call`) or one of the type it expects (`call_indirect`).
                    let next = frames[i + 1].func;
                    let calls_next = match code.instrs.get(p.pc as usize) {
                        Some(Instr::Call(f)) => *f == next,
                        Some(Instr::CallIndirect { ty, .. }) => info
                            .types
                            .get(*ty as usize)
                            .is_some_and(|t| info.func_type(next) == Some(t)),
                        _ => false,
                    };
                    if !calls_next {
                        return Err(Error::new(
                            fs.code_offset as usize,
                            format!("{what}: the call at this offset cannot call function {next} of the next frame"),
                        ));
                    }
                    (p.pc + 1, &p.stack)
                }
                _ => {
                    return Err(Error::new(
                        fs.code_offset as usize,
                        format!("{what}: not a valid point for this frame"),
                    ))
                }
            };
            if fs.locals.len() != code.local_types.len() || fs.stack.len() != types.len() {
                return Err(Error::new(
                    fs.code_offset as usize,
                    format!(
                        "{what}: expected {} locals and {} stack values, got {} and {}",
                        code.local_types.len(),
                        types.len(),
                        fs.locals.len(),
                        fs.stack.len()
                    ),
                ));
            }
            let fp = stack.len() as u32;
            for (v, t) in fs.locals.iter().zip(&code.local_types) {
                self.push_slots(&mut stack, inst, *v, *t, &what)?;
            }
            for (v, t) in fs.stack.iter().zip(types) {
                self.push_slots(&mut stack, inst, *v, *t, &what)?;
            }
            built.push(Frame { func: addr, fp, pc });
        }
        self.exec.stack = stack;
        self.exec.frames = built;
        self.exec.activations.push(Activation {
            base_frames: 0,
            base_sp: 0,
            results,
        });
        self.exec.paused = true;
        Ok(())
    }

    /// Capture the globals, tables, memory and segment flags of `instance`.
    pub fn instance_state(&self, instance: Instance) -> Result<InstanceState, Error> {
        let d = self.check_instance(instance)?;
        let globals = d
            .globals
            .iter()
            .map(|g| {
                let g = &self.globals[*g as usize];
                self.neutral_value(instance.0, &g.slots(), g.ty.ty)
            })
            .collect::<Result<_, _>>()?;
        let tables = d
            .tables
            .iter()
            .map(|t| {
                let t = &self.tables[*t as usize];
                t.data
                    .iter()
                    .map(|s| self.neutral_value(instance.0, std::slice::from_ref(s), t.elem))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        Ok(InstanceState {
            globals,
            tables,
            memory: d.mems.first().map(|m| self.mems[*m as usize].data.clone()),
            elem_dropped: d.elem_dropped.clone(),
            data_dropped: d.data_dropped.clone(),
        })
    }

    /// Overwrite the globals, tables, memory and segment flags of `instance`
    /// (which must have been made from the same module).
    pub fn set_instance_state(
        &mut self,
        instance: Instance,
        s: &InstanceState,
    ) -> Result<(), Error> {
        let d = self.check_instance(instance)?;
        if s.globals.len() != d.globals.len()
            || s.tables.len() != d.tables.len()
            || s.memory.is_some() == d.mems.is_empty()
            || s.elem_dropped.len() != d.elem_dropped.len()
            || s.data_dropped.len() != d.data_dropped.len()
        {
            return Err(Error::new(0, "instance state does not fit this module"));
        }
        let inst = instance.0;
        let mut gvals = Vec::new();
        for (i, v) in s.globals.iter().enumerate() {
            let g = self.globals[d.globals[i] as usize];
            gvals.push(self.store_slot(inst, *v, g.ty.ty, &format!("global {i}"))?);
        }
        let mut tvals = Vec::new();
        for (i, t) in s.tables.iter().enumerate() {
            let table = &self.tables[d.tables[i] as usize];
            // A table never shrinks and never grows past its maximum.
            let (min, max) = (
                table.data.len() as u64,
                table.max.unwrap_or(u64::from(u32::MAX)),
            );
            if (t.len() as u64) < min || t.len() as u64 > max {
                return Err(Error::new(
                    0,
                    format!("table {i} has {} elements in the snapshot, the module allows {min} to {max}", t.len()),
                ));
            }
            let ty = table.elem;
            tvals.push(
                t.iter()
                    .map(|v| self.store_slot(inst, *v, ty, &format!("table {i}")).map(|s| s[0]))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let d = &self.instances[inst as usize];
        let (gaddrs, taddrs, maddr) =
            (d.globals.clone(), d.tables.clone(), d.mems.first().copied());
        for (a, [lo, hi]) in gaddrs.iter().zip(gvals) {
            let g = &mut self.globals[*a as usize];
            g.value = lo;
            g.hi = hi;
        }
        for (a, v) in taddrs.iter().zip(tvals) {
            self.tables[*a as usize].data = v;
        }
        if let (Some(a), Some(m)) = (maddr, &s.memory) {
            self.mems[a as usize].data = m.clone();
        }
        let d = &mut self.instances[inst as usize];
        d.data_dropped = s.data_dropped.clone();
        d.elem_dropped = s.elem_dropped.clone();
        for (i, dropped) in s.elem_dropped.iter().enumerate() {
            if *dropped {
                d.elems[i] = Vec::new();
            }
        }
        Ok(())
    }
}
