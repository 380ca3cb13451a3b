//! Checkpoint and restore of WASI programs in the snapshot format of
//! [`wanco_state::snapshot`].
//!
//! [`WasiRunner::snapshot`] describes a program paused at a migration point
//! as a [`Snapshot`] (frames outermost first, `funcref`s as function indices,
//! sparse memory, the WASI host's state); [`WasiRunner::from_snapshot`]
//! rebuilds it on a fresh instance of the same module — without running the
//! data/element segments' initialisation or the start function again — so
//! that [`WasiRunner::resume`] continues it.

use crate::error::Error;
use crate::module::Module;
use crate::state::{FrameState, InstanceState, PointKind};
use crate::wasi::WasiRunner;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use wanco_state::snapshot::{Frame, FrameKind, Memory, Producer, Snapshot, PAGE_SIZE};

/// The name the interpreter writes as [`Producer::engine`].
pub const ENGINE: &str = "interp";

fn kind_to_neutral(k: PointKind) -> FrameKind {
    match k {
        PointKind::Entry => FrameKind::Entry,
        PointKind::Loop => FrameKind::Loop,
        PointKind::Call => FrameKind::Call,
    }
}

fn kind_from_neutral(k: FrameKind) -> PointKind {
    match k {
        FrameKind::Entry => PointKind::Entry,
        FrameKind::Loop => PointKind::Loop,
        FrameKind::Call => PointKind::Call,
    }
}

/// Declared maximum (pages) of memory 0 of `module`, if it has one.
fn memory_limits(module: &Module) -> Option<(u64, Option<u64>)> {
    module.info().memory0().map(|l| (l.min, l.max))
}

impl WasiRunner {
    /// Pause at the next migration point once `flag` is set (e.g. by a
    /// `SIGUSR1` handler); the flag is reset when the pause happens.
    pub fn set_interrupt(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.store_mut().set_interrupt(flag);
    }

    /// Describe the paused program as a [`Snapshot`].
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        let frames = self
            .store()
            .frames()?
            .into_iter()
            .map(|f| Frame {
                func: f.func,
                code_offset: f.code_offset,
                kind: kind_to_neutral(f.kind),
                locals: f.locals,
                stack: f.stack,
            })
            .collect();
        let st = self.store().instance_state(self.instance())?;
        let max = memory_limits(self.module())
            .and_then(|(_, max)| max)
            .map(|m| m.min(u64::from(u32::MAX)) as u32);
        Ok(Snapshot {
            producer: Producer {
                engine: ENGINE.into(),
                isa: None,
                version: env!("CARGO_PKG_VERSION").into(),
            },
            module_hash: self.module().info().hash,
            migration_points: self.migration_points(),
            points_rule: wanco_state::snapshot::POINTS_RULE,
            frames,
            globals: st.globals,
            tables: st.tables,
            memory: st.memory.map(|m| Memory::from_bytes(&m, max)),
            data_dropped: st.data_dropped,
            elem_dropped: st.elem_dropped,
            wasi: self.wasi_state(),
            native: None,
        })
    }

    /// Rebuild a program from `snap` on a fresh instance of `module` (which
    /// must be the module the snapshot was written for). Neither the segment
    /// initialisation nor the start function runs; the WASI host reopens its
    /// files at their offsets. Call [`WasiRunner::resume`] next.
    pub fn from_snapshot(module: &Module, snap: &Snapshot) -> Result<WasiRunner, Error> {
        snap.check_module(&module.info().hash)
            .map_err(|e| Error::new(0, e.message))?;
        wanco_state::snapshot::check_points_rule(snap).map_err(|e| Error::new(0, e))?;
        let memory = match (&snap.memory, memory_limits(module)) {
            (None, None) => None,
            (Some(m), Some((min, max))) => {
                let pages = u64::from(m.pages);
                if pages < min || max.is_some_and(|max| pages > max) {
                    return Err(Error::new(
                        0,
                        format!(
                            "snapshot memory has {pages} pages, the module's memory allows {min} to {}",
                            max.map(|m| m.to_string()).unwrap_or_else(|| "65536".into())
                        ),
                    ));
                }
                if m.max.map(u64::from) != max {
                    return Err(Error::new(
                        0,
                        format!(
                            "snapshot memory has the maximum {:?} pages, the module declares {max:?}",
                            m.max
                        ),
                    ));
                }
                if m.chunks
                    .iter()
                    .any(|(i, p)| *i >= m.pages || p.len() != PAGE_SIZE)
                {
                    return Err(Error::new(0, "snapshot memory has a malformed page"));
                }
                Some(m.to_bytes())
            }
            (Some(_), None) => {
                return Err(Error::new(0, "snapshot has a memory, the module has none"))
            }
            (None, Some(_)) => {
                return Err(Error::new(
                    0,
                    "the module has a memory, the snapshot has none",
                ))
            }
        };
        let instance = InstanceState {
            globals: snap.globals.clone(),
            tables: snap.tables.clone(),
            memory,
            elem_dropped: snap.elem_dropped.clone(),
            data_dropped: snap.data_dropped.clone(),
        };
        // The instance field is replaced by `restore`.
        let placeholder = crate::store::Instance(0);
        let frames: Vec<FrameState> = snap
            .frames
            .iter()
            .map(|f| FrameState {
                instance: placeholder,
                func: f.func,
                kind: kind_from_neutral(f.kind),
                code_offset: f.code_offset,
                locals: f.locals.clone(),
                stack: f.stack.clone(),
            })
            .collect();
        WasiRunner::restore(
            module,
            &snap.wasi,
            &instance,
            &frames,
            snap.migration_points,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasi::{WasiExit, WasiRun};
    use crate::WasiConfig;
    use wanco_state::snapshot::{decode, encode};
    use wanco_state::Value;

    const WAT: &str = r#"(module
  (type $t (func (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $double $inc)
  (global $g (mut funcref) (ref.null func))
  (global $acc (mut i32) (i32.const 1))
  (global $starts (mut i32) (i32.const 0))
  (memory 2 5)
  (data (i32.const 70000) "hello")
  (start $s)
  (func $s (global.set $starts (i32.add (global.get $starts) (i32.const 1))))
  (func $double (type $t) (i32.mul (local.get 0) (i32.const 2)))
  ;; $double has no entry point (no loop, no call); $inc's loop gives it one.
  (func $inc (type $t) (loop $once) (i32.add (local.get 0) (i32.const 1)))
  (func (export "_start") (local $i i32) (local $f funcref)
    (i32.store (i32.const 70000) (i32.const 0x41414141))
    (loop $l
      (global.set $g (table.get (i32.and (local.get $i) (i32.const 1))))
      (local.set $f (global.get $g))
      (global.set $acc
        (call_indirect (type $t) (global.get $acc) (i32.and (local.get $i) (i32.const 1))))
      (i32.store (i32.add (i32.const 70016) (i32.shl (local.get $i) (i32.const 2)))
        (global.get $acc))
      ;; $f is read after the call, so it is live (not zeroed) in the outer frame.
      (drop (ref.is_null (local.get $f)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 50))))))"#;

    fn config() -> WasiConfig {
        WasiConfig {
            args: vec!["t".into()],
            env: vec![],
            preopens: vec![],
        }
    }

    #[test]
    fn checkpoint_restore_at_every_point() {
        let module = Module::new(&wat::parse_str(WAT).unwrap()).unwrap();
        let mut base = WasiRunner::new(&module, config()).unwrap();
        let start_points = base.migration_points();
        assert_eq!(base.start().unwrap(), WasiRun::Exited(WasiExit::Exit(0)));
        let total = base.migration_points();
        let want = base.store().instance_state(base.instance()).unwrap();
        // `_start`'s entry, 50 loop headers, and 25 calls of $inc (its entry
        // and its loop header); $double's 25 entries and the start
        // function's are not points (migration-point rule 2).
        assert_eq!(total - start_points, 1 + 50 + 25 * 2);
        let mut saw_funcref_local = false;
        for n in start_points + 1..=total {
            let mut r = WasiRunner::new(&module, config()).unwrap();
            r.set_pause_at(Some(n));
            assert_eq!(r.start().unwrap(), WasiRun::Paused, "point {n}");
            let snap = r.snapshot().unwrap();
            assert_eq!(snap.migration_points, n);
            assert_eq!(snap.producer.engine, "interp");
            let mem = snap.memory.as_ref().unwrap();
            assert_eq!((mem.pages, mem.max), (2, Some(5)));
            // Only page 1 is non-zero.
            assert_eq!(mem.chunks.len(), 1);
            // funcrefs are function indices ($double = 1, $inc = 2).
            assert_eq!(
                snap.tables[0],
                vec![Value::FuncRef(Some(1)), Value::FuncRef(Some(2))]
            );
            let outer = &snap.frames[0];
            if matches!(outer.locals[1], Value::FuncRef(Some(1 | 2))) {
                saw_funcref_local = true;
            }
            let bytes = encode(&snap);
            let back = decode(&bytes).unwrap();
            assert_eq!(back, snap);
            let mut r2 = WasiRunner::from_snapshot(&module, &back).unwrap();
            assert_eq!(
                r2.resume().unwrap(),
                WasiRun::Exited(WasiExit::Exit(0)),
                "point {n}"
            );
            assert_eq!(r2.migration_points(), total, "point {n}");
            // Neither the data segment nor the start function ran again.
            let got = r2.store().instance_state(r2.instance()).unwrap();
            assert_eq!(got, want, "point {n}");
        }
        assert!(saw_funcref_local);
    }

    /// Locals dead at a frame's point (not read before being written from
    /// it) are captured as zero whatever the interpreter holds, like in
    /// compiled code's snapshots; the restore still finishes the run.
    #[test]
    fn dead_locals_are_captured_as_zero() {
        const DEAD: &str = r#"(module (memory 1)
  (func $id (param i32) (result i32) (loop $once) (local.get 0))
  (func (export "_start") (local $i i32) (local $t i32) (local $u i64)
    (loop $l
      (local.set $t (i32.add (local.get $i) (i32.const 100)))
      (local.set $u (i64.const 7))
      (local.set $i (i32.sub (call $id (local.get $t)) (i32.const 99)))
      (i32.store (i32.const 0) (i32.add (local.get $i) (i32.wrap_i64 (local.get $u))))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))))"#;
        let module = Module::new(&wat::parse_str(DEAD).unwrap()).unwrap();
        let mut base = WasiRunner::new(&module, config()).unwrap();
        let start_points = base.migration_points();
        assert_eq!(base.start().unwrap(), WasiRun::Exited(WasiExit::Exit(0)));
        let total = base.migration_points();
        let want = base.store().instance_state(base.instance()).unwrap();
        let (mut loops, mut calls) = (0, 0);
        for n in start_points + 1..=total {
            let mut r = WasiRunner::new(&module, config()).unwrap();
            r.set_pause_at(Some(n));
            assert_eq!(r.start().unwrap(), WasiRun::Paused, "point {n}");
            let snap = r.snapshot().unwrap();
            let f = &snap.frames[0];
            match (f.kind, snap.frames.len()) {
                // Loop header: $i live; $t and $u are written before being read.
                (FrameKind::Loop, 1) => {
                    loops += 1;
                    assert!(matches!(f.locals[0], Value::I32(_)));
                    assert_eq!(f.locals[1..], [Value::I32(0), Value::I64(0)], "point {n}");
                }
                // In $id (its entry and its loop: a body without a loop or
                // a call has no entry point): the caller's $i (set from the result) and $t
                // are dead after the call, $u is read after it; $id's
                // parameter is live.
                (FrameKind::Call, 2) => {
                    calls += 1;
                    assert_eq!(
                        f.locals,
                        [Value::I32(0), Value::I32(0), Value::I64(7)],
                        "point {n}"
                    );
                    let p = snap.frames[1].locals[0];
                    assert!(matches!(p, Value::I32(v) if v >= 100), "point {n}: {p}");
                }
                (FrameKind::Entry, 1) => {}
                other => panic!("point {n}: unexpected frames {other:?}"),
            }
            let mut r2 = WasiRunner::from_snapshot(&module, &snap).unwrap();
            assert_eq!(
                r2.resume().unwrap(),
                WasiRun::Exited(WasiExit::Exit(0)),
                "point {n}"
            );
            assert_eq!(
                r2.store().instance_state(r2.instance()).unwrap(),
                want,
                "point {n}"
            );
        }
        assert_eq!((loops, calls), (10, 20));
    }

    #[test]
    fn snapshot_of_another_point_rule_is_refused() {
        let module = Module::new(&wat::parse_str(WAT).unwrap()).unwrap();
        let mut r = WasiRunner::new(&module, config()).unwrap();
        r.set_pause_at(Some(r.migration_points() + 3));
        assert_eq!(r.start().unwrap(), WasiRun::Paused);
        let mut snap = r.snapshot().unwrap();
        snap.points_rule = 1;
        let e = WasiRunner::from_snapshot(&module, &snap).err().unwrap();
        assert!(e.message.contains("by rule 1 and this wanco counts by rule 2"), "{e}");
    }

    #[test]
    fn other_module_is_refused() {
        let module = Module::new(&wat::parse_str(WAT).unwrap()).unwrap();
        let other = Module::new(
            &wat::parse_str("(module (memory 2 5) (func (export \"_start\")))").unwrap(),
        )
        .unwrap();
        let mut r = WasiRunner::new(&module, config()).unwrap();
        r.set_pause_at(Some(r.migration_points() + 3));
        assert_eq!(r.start().unwrap(), WasiRun::Paused);
        let snap = r.snapshot().unwrap();
        let e = WasiRunner::from_snapshot(&other, &snap).err().unwrap();
        assert!(
            e.message.contains("snapshot was written for module sha256"),
            "{e}"
        );
    }
}
