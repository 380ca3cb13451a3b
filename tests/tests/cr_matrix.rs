//! The checkpoint/restore matrix: every program of `tests/programs/cr/cases.toml` checkpointed
//! after N migration points on x86_64, aarch64 (qemu) and the interpreter, each snapshot restored
//! on all three; plus chains and SIGUSR1 checkpoints. See `tests/README.md` and `wanco_tests::cr`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wanco_tests::cr::{self, CrConfig};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn config() -> CrConfig {
    let default_work_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wanco-cr");
    CrConfig::from_env(&workspace(), &default_work_dir).unwrap_or_else(|e| panic!("{e}"))
}

/// Every `.wat` in `tests/programs/cr` is used (by a case or by the SIGUSR1 test) and every case's
/// module exists.
#[test]
fn cr_programs_are_listed() {
    let programs = workspace().join("tests").join("programs");
    let cases = cr::load_cr_cases(&programs.join("cr").join("cases.toml"), &programs)
        .unwrap_or_else(|e| panic!("{e}"));
    let used: BTreeSet<String> = cases
        .case
        .iter()
        .map(|c| c.module.clone())
        .chain(std::iter::once(cases.signal.module.clone()))
        .collect();
    let unused: Vec<String> = std::fs::read_dir(programs.join("cr"))
        .expect("tests/programs/cr")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let rel = format!("cr/{name}");
            (name.ends_with(".wat") && !used.contains(&rel)).then_some(rel)
        })
        .collect();
    assert!(
        unused.is_empty(),
        "modules used by no case in cr/cases.toml: {unused:?}"
    );
}

fn finish(what: &str, cfg: &CrConfig, report: cr::CrReport) {
    eprintln!("{what}:\n{}", report.summary());
    if !report.failures.is_empty() {
        panic!(
            "{} C/R failures (outputs, snapshots and data directories are in {}):\n\n{}\n{what}:\n{}",
            report.failures.len(),
            cfg.work_dir.display(),
            report.details(),
            report.summary()
        );
    }
}

/// The matrix: producers x points x consumers, snapshot equality across producers, chains.
#[test]
fn cr_matrix() {
    let cfg = config();
    let report = cr::run_matrix(&cfg).unwrap_or_else(|e| panic!("C/R matrix setup failed: {e}"));
    finish("C/R matrix", &cfg, report);
}

/// SIGUSR1: checkpoint a long-running program at an arbitrary moment, restore on another ISA.
#[test]
fn cr_sigusr1() {
    let cfg = config();
    let report =
        cr::run_signal_tests(&cfg).unwrap_or_else(|e| panic!("C/R SIGUSR1 setup failed: {e}"));
    finish("C/R SIGUSR1", &cfg, report);
}
