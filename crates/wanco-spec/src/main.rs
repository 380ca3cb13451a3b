//! `wanco-spec`: run the official spec suite against an engine.

use anyhow::Result;
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use wanco_spec::engines;
use wanco_spec::run::Outcome;
use wanco_spec::suite::{self, Counts, ExpectedFailures};

/// Run the official WebAssembly spec suite (wasm-v1, wasm-v2, simd = proposals/simd) against an engine.
///
/// Prints one line per folder: `spec <folder> <engine>: passed P failed F skipped S`
/// and exits non-zero if a failure is not in the engine's expected-failure list
/// or a listed failure passes.
///
/// Examples:
///   wanco-spec --engine interp
///   wanco-spec --engine interp --folder wasm-v2 i32 f64 -v
#[derive(Parser, Debug)]
#[command(name = "wanco-spec", version, verbatim_doc_comment)]
struct Opts {
    /// Engine to test.
    #[arg(long, default_value = "interp")]
    engine: String,
    /// Folder to run (default: all of wasm-v1, wasm-v2 and simd).
    #[arg(long)]
    folder: Vec<String>,
    /// Expected-failure list (default: crates/wanco-spec/expected-failures/<engine>.txt).
    #[arg(long)]
    expected: Option<PathBuf>,
    /// Show failures (file:line, expected vs got) and the reasons of skips.
    #[arg(short, long)]
    verbose: bool,
    /// Only run files whose name contains one of these strings.
    filters: Vec<String>,
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("wanco-spec: unexpected results (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("wanco-spec: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run the suite; `Ok(false)` if the results do not match the expected-failure list.
fn run(opts: &Opts) -> Result<bool> {
    let start = Instant::now();
    let mut engine = engines::by_name(&opts.engine).map_err(anyhow::Error::msg)?;
    let expected_path = opts
        .expected
        .clone()
        .unwrap_or_else(|| ExpectedFailures::default_path(&opts.engine));
    let expected = ExpectedFailures::load(&expected_path).map_err(anyhow::Error::msg)?;
    let folders: Vec<String> = if opts.folder.is_empty() {
        suite::FOLDERS.iter().map(|s| s.to_string()).collect()
    } else {
        opts.folder.clone()
    };

    let mut all_ok = true;
    for folder in &folders {
        let files = suite::files(folder).map_err(anyhow::Error::msg)?;
        let mut results = Vec::new();
        for f in files
            .iter()
            .filter(|f| suite::selected(&f.name, &opts.filters))
        {
            results.push(suite::run_file(engine.as_mut(), f));
        }
        let counts = Counts::of(&results);
        let verdict = suite::judge(&results, &expected);
        if opts.verbose {
            let mut skips: BTreeMap<&str, usize> = BTreeMap::new();
            let mut parser_passes = 0usize;
            for f in &results {
                for r in &f.results {
                    match &r.outcome {
                        Outcome::Failed(m) => {
                            println!("FAIL {}/{}:{}: {m}", f.folder, f.name, r.line)
                        }
                        Outcome::Skipped(why) => *skips.entry(why.as_str()).or_default() += 1,
                        Outcome::PassedInParser(_) => parser_passes += 1,
                        Outcome::Passed => {}
                    }
                }
            }
            if parser_passes > 0 {
                println!(
                    "passed {parser_passes} in {folder} in the text parser (text modules that do not parse)"
                );
            }
            for (why, n) in skips {
                println!("skipped {n} in {folder}: {why}");
            }
        }
        for e in &verdict.unexpected_passes {
            println!(
                "UNEXPECTED PASS {e} (listed in {})",
                expected_path.display()
            );
        }
        if !opts.verbose {
            for (e, m) in &verdict.unexpected_failures {
                println!("FAIL {e}: {m}");
            }
        }
        if verdict.expected_failures > 0 {
            println!(
                "({} of the failures in {folder} are expected, listed in {})",
                verdict.expected_failures,
                expected_path.display()
            );
        }
        println!("{}", suite::summary_line(folder, engine.name(), counts));
        all_ok &= verdict.ok();
    }
    eprintln!("time: {:.2}s", start.elapsed().as_secs_f64());
    Ok(all_ok)
}
