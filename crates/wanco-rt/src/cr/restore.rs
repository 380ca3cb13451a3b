//! Restore of compiled code: the snapshot's frames are validated against
//! the module's metadata, then `_start` is called with the restore flag
//! set: each poll on the way asks the slow path ([`restore_step`]) for the
//! route to the next point of the frame being rebuilt, and the values of the
//! frame come from the buffer [`wanco_cr_values`] points at.
//!
//! `unsafe` here: the instance pointer of the armed state and reading the
//! instance's function references.

use super::armed::{Restore, RestoreFrame, State, STATE};
use super::native::own_eh_frame;
use super::points::{next_batch, wanco_cr_counter, RESTORING, TARGET};
use super::timing::{restore_mark, timing, RESTORE_START};
use std::sync::atomic::{AtomicPtr, Ordering};
use wanco_state::crmeta::{Callee, ROUTE_CONTINUE, ROUTE_RESTORE_HERE, RESTORE_FIXED_SLOTS};
use wanco_state::snapshot::{Frame, FrameKind, Snapshot};


/// The restore value buffer: fixed slots, locals, operand stack.
#[no_mangle]
pub static wanco_cr_values: AtomicPtr<u128> = AtomicPtr::new(std::ptr::null_mut());


// ---------------------------------------------------------------------------
// Restore.

/// Check `snap`'s frames against the module and prepare to rebuild them when
/// `_start` is called next. Call after [`arm`] and [`Instance::install`].
pub fn prepare_restore(snap: &Snapshot) -> Result<(), String> {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let st = guard.as_mut().ok_or("checkpointing is not armed")?;
    st.meta()?;
    restore_mark("metadata");
    // SAFETY: the instance outlives the run.
    let inst = unsafe { &*st.instance };
    wanco_state::snapshot::check_points_rule(snap)?;
    if snap.migration_points >= wanco_state::snapshot::MAX_MIGRATION_POINTS {
        return Err(format!(
            "the snapshot says {} migration points were crossed, more than any run reaches (2^63)",
            snap.migration_points
        ));
    }
    let meta = st.meta.as_ref().expect("parsed");
    let point_of = |f: &Frame| meta.points.find(f.func, f.code_offset, f.kind);
    let n = snap.frames.len();
    if n == 0 {
        return Err("the snapshot has no frames".into());
    }
    // A native view written for this very build (by a checkpoint of this
    // binary or `wanco-snap translate --binary` it) must fit its stack maps;
    // a view for another ISA or build only describes, the frames restore.
    if let Some(nv) = &snap.native {
        if nv.isa == meta.isa && nv.build == meta.build {
            let unfit = |e: &dyn std::fmt::Display| format!("the snapshot's native {} frames do not fit this binary: {e}", nv.isa);
            wanco_translate::native::check(meta, nv, &snap.frames).map_err(|e| unfit(&e))?;
            // Their return addresses too, as `wanco-snap verify --binary`
            // checks them. (Not the frame sizes, which verify also checks:
            // that would read the unwind tables, ~40 µs of every restore,
            // for a view that restoring does not use.)
            let eh = own_eh_frame()?;
            let natives = inst.descriptor().natives(&inst.info);
            let start = |def: u32| natives.get(def as usize).map(|a| a.wrapping_sub(eh.bias));
            wanco_translate::native::check_addresses(meta, nv, &start, None).map_err(|e| unfit(&e))?;
        }
    }
    let name = |f: u32| inst.info.func_name(f).map(|n| format!(" `{n}`")).unwrap_or_default();
    let mut frames = Vec::new();
    for (i, f) in snap.frames.iter().enumerate() {
        let at = format!("frame {i} (function {}{}, code offset {:#x})", f.func, name(f.func), f.code_offset);
        let innermost = i + 1 == n;
        if innermost == (f.kind == FrameKind::Call) {
            return Err(format!(
                "{at}: a {:?} point {}",
                f.kind,
                if innermost { "cannot be the innermost frame" } else { "can only be the innermost frame" }
            ));
        }
        let pid = point_of(f).ok_or_else(|| format!("{at}: the module has no {:?} migration point there", f.kind))?;
        let p = meta.points.get(pid as usize).ok_or_else(|| format!("{at}: corrupt checkpoint metadata (point {pid})"))?;
        let func = meta.func(f.func).ok_or_else(|| format!("{at}: not a defined function"))?;
        if f.locals.len() != func.locals.len() {
            return Err(format!("{at}: {} locals in the snapshot, the function has {}", f.locals.len(), func.locals.len()));
        }
        // At a return site the call's arguments follow the operand stack
        // below them: the route re-issues the call with the next frame's
        // parameters (its entry poll does not restore them).
        let args = if f.kind == FrameKind::Call { p.args as usize } else { 0 };
        let mut values = vec![0u128; RESTORE_FIXED_SLOTS + func.locals.len() + (func.max_height as usize).max(f.stack.len() + args)];
        for (k, (v, t)) in f.locals.iter().zip(&func.locals).enumerate() {
            if v.ty() != *t {
                return Err(format!("{at}: local {k} is {} in the snapshot, the function declares {t}", v.ty()));
            }
            values[RESTORE_FIXED_SLOTS + k] = inst.raw_value128(v).map_err(|e| format!("{at}: local {k}: {e}"))?;
        }
        if f.stack.len() != p.stack.len() {
            return Err(format!("{at}: {} operand-stack values in the snapshot, the module has {} there", f.stack.len(), p.stack.len()));
        }
        for (k, (v, t)) in f.stack.iter().zip(&p.stack).enumerate() {
            if v.ty() != *t {
                return Err(format!("{at}: operand-stack slot {k} is {} in the snapshot, the module has {t} there", v.ty()));
            }
            values[RESTORE_FIXED_SLOTS + func.locals.len() + k] =
                inst.raw_value128(v).map_err(|e| format!("{at}: operand-stack slot {k}: {e}"))?;
        }
        if i == 0 && f.func != st.start_func {
            return Err(format!("{at}: the outermost frame must be `_start` (function {})", st.start_func));
        }
        if let Some(next) = snap.frames.get(i + 1) {
            let base = RESTORE_FIXED_SLOTS + func.locals.len() + f.stack.len();
            for k in 0..args {
                let v = next.locals.get(k).ok_or_else(|| {
                    format!("{at}: the call there passes {args} arguments, the next frame has {} locals", next.locals.len())
                })?;
                values[base + k] = inst.raw_value128(v).map_err(|e| format!("{at}: argument {k} (the next frame's local {k}): {e}"))?;
            }
            match p.callee {
                Some(Callee::Func(c)) if c != next.func => {
                    return Err(format!("{at}: the call there calls function {c}, the next frame is function {}", next.func));
                }
                Some(Callee::Type(t)) => {
                    let want = inst.info.types.get(t as usize);
                    let have = inst.info.func_type(next.func);
                    if want.is_none() || want != have {
                        return Err(format!("{at}: the call_indirect there expects type {t}, the next frame's function {} has another type", next.func));
                    }
                    // The route re-issues the call through these slots.
                    let fr = inst.func_ref(next.func);
                    // SAFETY: FuncRefs of a live instance are valid.
                    unsafe {
                        values[0] = (*fr).native as u128;
                        values[1] = (*fr).vmctx as u128;
                    }
                }
                _ => {}
            }
        }
        let mut chain = vec![(pid, p.route)];
        let mut cur = p;
        while let Some(parent) = cur.parent {
            cur = meta.points.get(parent as usize).ok_or("corrupt checkpoint metadata (parent point)")?;
            chain.push((parent, cur.route));
        }
        chain.reverse();
        if chain[0].0 != func.entry_point {
            return Err(format!("{at}: corrupt checkpoint metadata (route does not start at the entry)"));
        }
        frames.push(RestoreFrame { kind: f.kind, chain, values });
    }
    st.restore = Some(Restore { frames, cur: 0, hop: 0, points: snap.migration_points });
    // Every poll calls the slow path until the frames are rebuilt.
    RESTORING.store(1, Ordering::SeqCst);
    wanco_cr_counter.store(1, Ordering::Relaxed);
    Ok(())
}

pub(crate) fn restore_step(st: &mut State, point: u32) -> Result<u32, String> {
    let meta = st.meta.as_ref().ok_or("metadata not loaded")?;
    let r = st.restore.as_mut().expect("restoring");
    let frame = &mut r.frames[r.cur];
    let chain = &frame.chain;
    if point != chain[r.hop].0 {
        let p = |id: u32| {
            meta.points.get(id as usize).map(|p| format!("function {} offset {:#x}", p.func, p.code_offset)).unwrap_or_default()
        };
        return Err(format!("frame {} diverged: expected point {}, reached {}", r.cur, p(chain[r.hop].0), p(point)));
    }
    if r.hop == 0 {
        // Entering the frame's function: its values go to the buffer the
        // routes load from (the previous frame's routes have run).
        st.values = std::mem::take(&mut frame.values);
        wanco_cr_values.store(st.values.as_mut_ptr(), Ordering::SeqCst);
    }
    if r.hop + 1 == chain.len() {
        // At the frame's own point: the innermost frame is rebuilt.
        let kind = frame.kind;
        let points = r.points;
        st.restore = None;
        RESTORING.store(0, Ordering::SeqCst);
        let target = TARGET.load(Ordering::Relaxed);
        if target <= points {
            // A target at or below the snapshot's count is never reached.
            eprintln!("{}", wanco_state::snapshot::target_behind_note(target, points));
            TARGET.store(u64::MAX, Ordering::Relaxed);
        }
        next_batch(points);
        super::timing::resumed();
        if timing() {
            if let Some((t, p)) = RESTORE_START.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                p.mark("re-entry");
                p.report();
                eprintln!("wanco-timing: restore {} us", t.elapsed().as_micros());
            }
        }
        return Ok(if kind == FrameKind::Entry { ROUTE_RESTORE_HERE } else { ROUTE_CONTINUE });
    }
    let route = chain[r.hop + 1].1;
    if r.hop + 2 == chain.len() && frame.kind == FrameKind::Call {
        // Routing to the call: the next poll is the callee's entry.
        r.cur += 1;
        r.hop = 0;
    } else {
        r.hop += 1;
    }
    // The next point on the way calls the slow path again.
    wanco_cr_counter.store(1, Ordering::Relaxed);
    Ok(route)
}
