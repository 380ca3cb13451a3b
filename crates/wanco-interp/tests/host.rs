//! Host functions and linking through the store.

use wanco_interp::{Instance, InstantiateError, Module, Store, Trap};
use wanco_state::module::FuncType;
use wanco_state::{ValType, Value};

#[test]
fn host_functions_take_and_return_values() {
    let mut store = Store::new();
    let ty = FuncType {
        params: vec![ValType::I32, ValType::I64],
        results: vec![ValType::I64, ValType::I32],
    };
    store.define_func("env", "swap_add", ty, |_mem, args| match args {
        [Value::I32(a), Value::I64(b)] => Ok(vec![Value::I64(b + 1), Value::I32(a + 1)]),
        _ => Err(Trap::Host("bad args".into())),
    });
    store.define_func(
        "env",
        "fail",
        FuncType {
            params: vec![],
            results: vec![],
        },
        |_, _| Err(Trap::Host("host says no".into())),
    );
    let wasm = wat::parse_str(
        r#"(module
          (import "env" "swap_add" (func $h (param i32 i64) (result i64 i32)))
          (import "env" "fail" (func $fail))
          (func (export "f") (result i64)
            (local $x i32)
            (call $h (i32.const 41) (i64.const 99))
            (local.set $x)
            (i64.add (i64.extend_i32_u (local.get $x))))
          (func (export "g") (call $fail)))"#,
    )
    .unwrap();
    let module = Module::new(&wasm).unwrap();
    let inst = Instance::instantiate(&mut store, &module).unwrap();
    assert_eq!(
        inst.invoke(&mut store, "f", &[]).unwrap(),
        vec![Value::I64(142)]
    );
    assert_eq!(
        inst.invoke(&mut store, "g", &[]).unwrap_err(),
        Trap::Host("host says no".into())
    );
    // Still usable after a host trap.
    assert_eq!(
        inst.invoke(&mut store, "f", &[]).unwrap(),
        vec![Value::I64(142)]
    );
}

#[test]
fn imports_are_checked() {
    let mut store = Store::new();
    store.define_spectest();
    let m = |s: &str| Module::new(&wat::parse_str(s).unwrap()).unwrap();
    let e = store
        .instantiate(&m(r#"(module (import "spectest" "nope" (func)))"#))
        .unwrap_err();
    assert!(
        matches!(e, InstantiateError::Unlinkable(ref s) if s.contains("unknown import")),
        "{e}"
    );
    let e = store
        .instantiate(&m(
            r#"(module (import "spectest" "print_i32" (func (param i64))))"#,
        ))
        .unwrap_err();
    assert!(
        matches!(e, InstantiateError::Unlinkable(ref s) if s.contains("incompatible")),
        "{e}"
    );
    // spectest memory is (1, max 2): importing with max 1 is not allowed.
    let e = store
        .instantiate(&m(r#"(module (import "spectest" "memory" (memory 1 1)))"#))
        .unwrap_err();
    assert!(matches!(e, InstantiateError::Unlinkable(_)), "{e}");
    store
        .instantiate(&m(r#"(module (import "spectest" "memory" (memory 1 3)))"#))
        .unwrap();
    // A trap in the start function makes the module uninstantiable.
    let e = store
        .instantiate(&m(r#"(module (func $s unreachable) (start $s))"#))
        .unwrap_err();
    assert!(matches!(e, InstantiateError::Trap(Trap::Wasm(_))), "{e}");
}

#[test]
fn wrong_arguments_are_an_error_not_a_crash() {
    let mut store = Store::new();
    let module =
        Module::new(&wat::parse_str(r#"(module (func (export "f") (param i32)))"#).unwrap())
            .unwrap();
    let inst = Instance::instantiate(&mut store, &module).unwrap();
    assert!(matches!(
        inst.invoke(&mut store, "f", &[Value::I64(1)]),
        Err(Trap::Host(_))
    ));
    assert!(matches!(
        inst.invoke(&mut store, "g", &[]),
        Err(Trap::Host(_))
    ));
    assert_eq!(
        inst.invoke(&mut store, "f", &[Value::I32(1)]).unwrap(),
        vec![]
    );
}
