//! WASI programs in the interpreter.

use wanco_interp::{run_wasi, Module, WasiConfig, WasiExit, WasiRun, WasiRunner};

const PROGRAM: &str = r#"
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32) (local $acc i32)
    (drop (call $args_sizes (i32.const 0) (i32.const 4)))
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    ;; exit code: argc * 10 + sum(0..10) (= 45)
    (call $exit (i32.add (i32.mul (i32.load (i32.const 0)) (i32.const 10)) (local.get $acc))))
)
"#;

fn config(args: &[&str]) -> WasiConfig {
    WasiConfig {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        preopens: vec![],
    }
}

#[test]
fn exit_code_and_args() {
    let wasm = wat::parse_str(PROGRAM).unwrap();
    let exit = run_wasi(&wasm, config(&["prog", "a"])).unwrap();
    assert_eq!(exit, WasiExit::Exit(65));
    assert_eq!(exit.code(), 65);
}

#[test]
fn checkpoint_and_restore_in_a_fresh_runner() {
    let wasm = wat::parse_str(PROGRAM).unwrap();
    let module = Module::new(&wasm).unwrap();
    for n in 1..=11 {
        let mut r = WasiRunner::new(&module, config(&["prog"])).unwrap();
        r.set_pause_at(Some(n));
        assert_eq!(r.start().unwrap(), WasiRun::Paused);
        let frames = r.store().frames().unwrap();
        let inst = r.store().instance_state(r.instance()).unwrap();
        let wasi = r.wasi_state();
        let mut r2 = WasiRunner::restore(&module, &wasi, &inst, &frames, n).unwrap();
        assert_eq!(r2.resume().unwrap(), WasiRun::Exited(WasiExit::Exit(55)));
    }
}

#[test]
fn traps_are_reported() {
    let wasm = wat::parse_str(r#"(module (func (export "_start") unreachable))"#).unwrap();
    let exit = run_wasi(&wasm, config(&["prog"])).unwrap();
    assert_eq!(exit.code(), 134);
    assert!(matches!(exit, WasiExit::Trap(_)));
}

/// A `ref.func` result under a call's arguments is a funcref in the frame
/// (the validator types it as a concrete subtype of funcref).
#[test]
fn ref_func_on_the_operand_stack_is_a_funcref() {
    let wasm = wat::parse_str(
        r#"(module (table 1 funcref) (elem declare func $g)
  (func $g (result i32) (i32.const 7)) (func $f (param i32) (result i32) (loop) (local.get 0))
  (func (export "_start") (local funcref)
    (ref.func $g) (drop (call $f (i32.const 1))) (local.set 0) (table.set (i32.const 0) (local.get 0))))"#,
    )
    .unwrap();
    let module = Module::new(&wasm).unwrap();
    let mut r = WasiRunner::new(&module, config(&["prog"])).unwrap();
    // Point 1: `_start`'s entry; point 2: `$f`'s entry (it has one for its
    // loop), with `ref.func $g` below.
    r.set_pause_at(Some(2));
    assert_eq!(r.start().unwrap(), WasiRun::Paused);
    let snap = r.snapshot().unwrap();
    assert_eq!(snap.frames[0].stack, vec![wanco_state::Value::FuncRef(Some(0))]);
    let mut r2 = WasiRunner::from_snapshot(&module, &snap).unwrap();
    assert_eq!(r2.resume().unwrap(), WasiRun::Exited(WasiExit::Exit(0)));
}
