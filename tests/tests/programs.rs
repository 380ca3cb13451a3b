//! Every case of `tests/programs/cases.toml` on wasmtime, wanco x86_64 and wanco aarch64 (qemu);
//! every AOT result must equal wasmtime's. See `tests/README.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wanco_tests::e2e::{self, Config};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn config() -> Config {
    let default_work_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wanco-e2e");
    Config::from_env(&workspace(), &default_work_dir).unwrap_or_else(|e| panic!("{e}"))
}

fn names(dir: &Path, ext: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? == ext {
                Some(p.file_stem()?.to_string_lossy().into_owned())
            } else {
                None
            }
        })
        .collect()
}

/// Sources, built modules and cases agree: every source is built, every module has a source
/// and is used by a case, every case names a module.
#[test]
fn cases_sources_and_modules_agree() {
    let programs = workspace().join("tests").join("programs");
    let cases = wanco_tests::cases::load_cases(&programs.join("cases.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sources = names(&programs.join("c"), "c");
    sources.extend(names(&programs.join("rust").join("src").join("bin"), "rs"));
    let modules = names(&programs.join("wasm"), "wasm");
    let used: BTreeSet<String> = cases.iter().map(|c| c.program.clone()).collect();
    let mut problems = Vec::new();
    for s in sources.difference(&modules) {
        problems.push(format!(
            "source `{s}` has no module in tests/programs/wasm (run tools/build-test-programs.sh)"
        ));
    }
    for m in modules.difference(&sources) {
        problems.push(format!("module `{m}.wasm` has no source"));
    }
    for m in modules.difference(&used) {
        problems.push(format!(
            "module `{m}.wasm` is used by no case in cases.toml"
        ));
    }
    for u in used.difference(&modules) {
        problems.push(format!("cases.toml uses `{u}`, which has no module"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The end-to-end comparison. `WANCO_E2E_ENGINES=wasmtime` checks only the reference side.
#[test]
fn programs_match_wasmtime() {
    let cfg = config();
    let report = e2e::run_all(&cfg).unwrap_or_else(|e| panic!("end-to-end setup failed: {e}"));
    eprintln!("{}", report.summary());
    if !report.mismatches.is_empty() {
        panic!(
            "{} mismatches (run directories with stdout/stderr of every run are in {}):\n{}\n{}",
            report.mismatches.len(),
            cfg.work_dir.join("runs").display(),
            report.details(),
            report.summary()
        );
    }
}
