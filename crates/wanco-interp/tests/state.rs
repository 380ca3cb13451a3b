//! Migration points: counting, pausing, capturing the state and rebuilding it
//! in a fresh store.

use wanco_interp::{Instance, Module, Outcome, PointKind, Store};
use wanco_state::Value;

const PROGRAM: &str = r#"
(module
  (memory 1)
  (global $g (mut i32) (i32.const 0))
  (table 2 funcref)
  (elem (i32.const 0) $fib $sum)
  (type $t (func (param i32) (result i32)))
  ;; recursive, with values on the operand stack across calls
  (func $fib (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else
        (i32.add
          (call $fib (i32.sub (local.get 0) (i32.const 1)))
          (call_indirect (type $t) (i32.sub (local.get 0) (i32.const 2)) (i32.const 0))))))
  ;; a loop with a parameter (multi-value) and memory/global side effects
  (func $sum (param $n i32) (result i32) (local $i i32) (local $f f64)
    (i32.const 0)
    (loop $l (param i32) (result i32)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $f (f64.add (local.get $f) (f64.const 0.5)))
      (i32.store (i32.mul (local.get $i) (i32.const 4)) (local.get $i))
      (global.set $g (i32.add (global.get $g) (local.get $i)))
      (i32.add (call $fib (i32.and (local.get $i) (i32.const 7))))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (i32.add (i32.trunc_f64_s (local.get $f))))
  (func (export "main") (param i32) (result i32)
    (i32.add
      (call $sum (local.get 0))
      (i32.add (global.get $g) (i32.load (i32.const 40)))))
  (func (export "loops") (param $n i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
)
"#;

fn setup() -> (Module, Store, Instance) {
    let wasm = wat::parse_str(PROGRAM).unwrap();
    let module = Module::new(&wasm).unwrap();
    let mut store = Store::new();
    let inst = Instance::instantiate(&mut store, &module).unwrap();
    (module, store, inst)
}

#[test]
fn counts_entries_and_loop_iterations() {
    let (_, mut store, inst) = setup();
    let before = store.migration_points();
    inst.invoke(&mut store, "loops", &[Value::I32(10)]).unwrap();
    // One function entry plus ten executions of the loop header.
    assert_eq!(store.migration_points() - before, 11);
}

#[test]
fn pause_capture_restore_at_every_point() {
    let (module, mut store, inst) = setup();
    let main = match inst.export(&store, "main").unwrap() {
        wanco_interp::Extern::Func(a) => a,
        _ => unreachable!(),
    };
    let args = [Value::I32(12)];
    let expected = store.call_addr(main, &args).unwrap();
    let total = store.migration_points();
    assert!(total > 100, "{total}");

    let mut kinds = std::collections::HashSet::new();
    for n in 1..=total {
        let (_, mut store, inst) = setup();
        store.set_pause_at(Some(n));
        let main = match inst.export(&store, "main").unwrap() {
            wanco_interp::Extern::Func(a) => a,
            _ => unreachable!(),
        };
        assert_eq!(
            store.invoke_addr(main, &args).unwrap(),
            Outcome::Paused,
            "point {n}"
        );
        assert_eq!(store.migration_points(), n);
        let frames = store.frames().unwrap();
        kinds.insert(frames.last().unwrap().kind);
        for f in &frames[..frames.len() - 1] {
            assert_eq!(f.kind, PointKind::Call);
        }
        let istate = store.instance_state(inst).unwrap();

        // Rebuild in a fresh store and finish there.
        let mut fresh = Store::new();
        let inst2 = fresh.instantiate_for_restore(&module).unwrap();
        fresh.set_instance_state(inst2, &istate).unwrap();
        let frames2: Vec<_> = frames
            .iter()
            .cloned()
            .map(|mut f| {
                f.instance = inst2;
                f
            })
            .collect();
        fresh.restore_frames(&frames2).unwrap();
        fresh.set_migration_points(n);
        // The rebuilt state is the captured one.
        assert_eq!(fresh.frames().unwrap(), frames2);
        assert_eq!(
            fresh.resume().unwrap(),
            Outcome::Finished(expected.clone()),
            "point {n}"
        );
        assert_eq!(fresh.migration_points(), total, "point {n}");

        // And the original continues to the same result.
        assert_eq!(store.resume().unwrap(), Outcome::Finished(expected.clone()));
    }
    assert!(kinds.contains(&PointKind::Entry) && kinds.contains(&PointKind::Loop));
}

#[test]
fn frame_offsets_name_wasm_code() {
    let wasm = wat::parse_str(PROGRAM).unwrap();
    let module = Module::new(&wasm).unwrap();
    // Function 1 ($sum) has one loop; its offset is a `loop` opcode (0x03).
    let loops = module.loop_offsets(1);
    assert_eq!(loops.len(), 1);
    assert_eq!(wasm[loops[0] as usize], 0x03);
    let entry = module.func_entry_offset(1).unwrap() as usize;
    assert!(entry < loops[0] as usize);
}

#[test]
fn deep_recursion_is_exhaustion_not_a_crash() {
    let wasm = wat::parse_str(
        r#"(module (func $f (export "f") (param i32) (result i32)
             (i32.add (call $f (local.get 0)) (i32.const 1))))"#,
    )
    .unwrap();
    let module = Module::new(&wasm).unwrap();
    let mut store = Store::new();
    let inst = Instance::instantiate(&mut store, &module).unwrap();
    let e = inst.invoke(&mut store, "f", &[Value::I32(0)]).unwrap_err();
    assert!(e.is_exhaustion());
    assert_eq!(e.message(), "call stack exhausted");
    // The store is usable afterwards.
    let e = inst.invoke(&mut store, "f", &[Value::I32(0)]).unwrap_err();
    assert!(e.is_exhaustion());
}

#[test]
fn unsupported_features_are_named() {
    // 128-bit SIMD is part of Wasm 2.0; relaxed SIMD (Wasm 3.0) is not.
    let wasm = wat::parse_str("(module (func (drop (v128.const i64x2 0 0))))").unwrap();
    Module::new(&wasm).unwrap();
    let wasm = wat::parse_str(
        "(module (func (drop (i8x16.relaxed_swizzle (v128.const i64x2 0 0) (v128.const i64x2 0 0)))))",
    )
    .unwrap();
    let e = Module::new(&wasm).unwrap_err();
    assert!(e.to_string().contains("relaxed SIMD"), "{e}");
    assert!(e.to_string().contains("offset"), "{e}");
    let wasm = wat::parse_str("(module (func (return_call 0)))").unwrap();
    let e = Module::new(&wasm).unwrap_err();
    assert!(e.to_string().contains("tail"), "{e}");
}
