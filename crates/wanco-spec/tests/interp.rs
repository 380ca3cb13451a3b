//! A lean subset of the spec suite through the interpreter engine, and the
//! expected-failure bookkeeping.

use wanco_spec::engines;
use wanco_spec::run::{DirectiveResult, Outcome};
use wanco_spec::suite::{self, Counts, ExpectedFailures, FileResult};

const SUBSET: &[(&str, &str)] = &[
    ("wasm-v2", "i32.wast"),
    ("wasm-v2", "f32.wast"),
    ("wasm-v2", "br_table.wast"),
    ("wasm-v2", "call.wast"),
    ("wasm-v2", "call_indirect.wast"),
    ("wasm-v2", "linking.wast"),
    ("wasm-v2", "memory_grow.wast"),
    ("wasm-v2", "table_copy.wast"),
    ("wasm-v2", "bulk.wast"),
    ("wasm-v2", "imports.wast"),
    ("wasm-v2", "binary.wast"),
    ("wasm-v1", "conversions.wast"),
    ("wasm-v1", "linking.wast"),
];

#[test]
fn lean_subset_passes_in_interp() {
    let mut engine = engines::by_name("interp").unwrap();
    let (total, failures) = suite::run_named(engine.as_mut(), SUBSET).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(total.passed > 5000, "{total:?}");
    assert_eq!(total.skipped, 0);
}

/// SIMD files (proposals/simd) in the default test run: lanes, loads and
/// stores with their traps, float NaN rules, saturation, narrowing,
/// conversions, shuffles.
const SIMD_SUBSET: &[(&str, &str)] = &[
    ("simd", "simd_lane.wast"),
    ("simd", "simd_load.wast"),
    ("simd", "simd_load8_lane.wast"),
    ("simd", "simd_store64_lane.wast"),
    ("simd", "simd_load_zero.wast"),
    ("simd", "simd_address.wast"),
    ("simd", "simd_f32x4.wast"),
    ("simd", "simd_f64x2_rounding.wast"),
    ("simd", "simd_i16x8_sat_arith.wast"),
    ("simd", "simd_i16x8_q15mulr_sat_s.wast"),
    ("simd", "simd_conversions.wast"),
    ("simd", "simd_i32x4_trunc_sat_f64x2.wast"),
    ("simd", "simd_bitwise.wast"),
    ("simd", "simd_select.wast"),
    ("simd", "simd_linking.wast"),
];

#[test]
fn lean_simd_subset_passes_in_interp() {
    let mut engine = engines::by_name("interp").unwrap();
    let (total, failures) = suite::run_named(engine.as_mut(), SIMD_SUBSET).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(total.passed > 2000, "{total:?}");
    assert_eq!(total.skipped, 0);
}

#[test]
fn every_folder_has_its_files() {
    for folder in suite::FOLDERS {
        let files = suite::files(folder).unwrap();
        if folder == "simd" {
            assert_eq!(files.len(), 59, "{folder}");
            assert!(files.iter().any(|f| f.name == "simd_lane.wast"));
            continue;
        }
        assert!(files.len() > 70, "{folder}: {}", files.len());
        assert!(files.iter().any(|f| f.name == "i32.wast"));
    }
    assert!(suite::files("wasm-v9").is_err());
}

fn result(folder: &str, name: &str, outcomes: &[(u32, bool)]) -> FileResult {
    FileResult {
        folder: folder.into(),
        name: name.into(),
        results: outcomes
            .iter()
            .map(|(line, ok)| DirectiveResult {
                line: *line,
                outcome: if *ok {
                    Outcome::Passed
                } else {
                    Outcome::Failed("boom".into())
                },
            })
            .collect(),
    }
}

#[test]
fn expected_failures_are_enforced_both_ways() {
    let list = ExpectedFailures::parse(
        "# known\nwasm-v2/a.wast:3\nb.wast:7  # any folder\n\nwasm-v1/a.wast:3\n",
    )
    .unwrap();
    assert_eq!(list.entries.len(), 3);

    // Listed failure fails: fine.
    let v = suite::judge(
        &[result("wasm-v2", "a.wast", &[(1, true), (3, false)])],
        &list,
    );
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.expected_failures, 1);

    // Unlisted failure: error.
    let v = suite::judge(
        &[result("wasm-v2", "a.wast", &[(1, false), (3, false)])],
        &list,
    );
    assert_eq!(v.unexpected_failures.len(), 1);
    assert!(!v.ok());

    // Listed failure that passes: error.
    let v = suite::judge(&[result("wasm-v2", "b.wast", &[(7, true)])], &list);
    assert_eq!(v.unexpected_passes.len(), 1);
    assert!(!v.ok());

    // Files that did not run are not judged.
    let v = suite::judge(&[result("wasm-v2", "c.wast", &[(7, true)])], &list);
    assert!(v.ok());

    assert!(ExpectedFailures::parse("a.wast:x").is_err());
    assert!(ExpectedFailures::parse("a.wast").is_err());
}

#[test]
fn summary_line_format() {
    let c = Counts {
        passed: 3,
        failed: 1,
        skipped: 2,
    };
    assert_eq!(
        suite::summary_line("wasm-v2", "interp", c),
        "spec wasm-v2 interp: passed 3 failed 1 skipped 2"
    );
}
