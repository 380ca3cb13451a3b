//! A lean subset of the spec suite through the AOT engines: the real compiled
//! code of every module, natively on x86_64 and under qemu-aarch64.
//! (`just spec` runs the whole suite.) Needs the runtime library of both
//! targets (`just build` / `tools/build-runtime.sh`).

use wanco_spec::engines;
use wanco_spec::suite;

const SUBSET: &[(&str, &str)] = &[
    ("wasm-v2", "i32.wast"),
    ("wasm-v2", "i64.wast"),
    ("wasm-v2", "f32.wast"),
    ("wasm-v2", "f64.wast"),
    ("wasm-v2", "conversions.wast"),
    ("wasm-v2", "float_exprs.wast"),
    ("wasm-v2", "address.wast"),
    ("wasm-v2", "br_table.wast"),
    ("wasm-v2", "call.wast"),
    ("wasm-v2", "call_indirect.wast"),
    ("wasm-v2", "linking.wast"),
    ("wasm-v2", "memory_grow.wast"),
    ("wasm-v2", "table_copy.wast"),
    ("wasm-v2", "bulk.wast"),
    ("wasm-v2", "ref_func.wast"),
    ("wasm-v2", "select.wast"),
    ("wasm-v2", "traps.wast"),
    ("wasm-v2", "names.wast"),
    ("wasm-v1", "linking.wast"),
];

fn run_subset(engine_name: &str) {
    let mut engine = engines::by_name(engine_name).unwrap();
    let (total, failures) = suite::run_named(engine.as_mut(), SUBSET).unwrap();
    println!("lean spec subset {engine_name}: passed {} failed {} skipped {}", total.passed, total.failed, total.skipped);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(total.passed > 8000, "{total:?}");
    assert_eq!(total.skipped, 0);
}

#[test]
fn lean_subset_passes_aot_x86_64() {
    run_subset("aot-x86_64");
}

#[test]
fn lean_subset_passes_aot_aarch64() {
    run_subset("aot-aarch64");
}
