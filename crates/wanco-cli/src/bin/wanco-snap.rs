//! `wanco-snap`: inspect, check, compare and convert wanco snapshots (`.wsnap`).
//!
//! Exit codes for every subcommand: 0 success, 1 differences (`diff`) or
//! problems (`verify`) found, 2 bad input (unreadable, damaged or foreign
//! snapshot or module, bad JSON).

#[path = "../snap/against.rs"]
mod against;
#[path = "../snap/chain.rs"]
mod chain;
#[path = "../snap/common.rs"]
mod common;
#[path = "../snap/decode.rs"]
mod decode;
#[path = "../snap/diff.rs"]
mod diff;
#[path = "../snap/dump.rs"]
mod dump;
#[path = "../snap/encode.rs"]
mod encode;
#[path = "../snap/json.rs"]
mod json;
#[path = "../snap/native_view.rs"]
mod native_view;
#[path = "../snap/translate.rs"]
mod translate;
#[path = "../snap/verify.rs"]
mod verify;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// wanco-snap — inspect, check, compare and convert wanco snapshots (.wsnap).
#[derive(Parser)]
#[command(
    name = "wanco-snap",
    about,
    long_about = None,
    after_help = "Examples:\n  wanco-snap dump --module app.wasm checkpoint.wsnap\n  wanco-snap verify --module app.wasm checkpoint.wsnap\n  wanco-snap diff a.wsnap b.wsnap\n  wanco-snap translate cp.wsnap --to aarch64 --binary app.aarch64 -o cp-arm.wsnap\n  wanco-snap decode checkpoint.wsnap > cp.json && wanco-snap encode cp.json -o cp.wsnap\n  wanco-snap merge base.wsnap r1.wsnap r2.wsnap -o whole.wsnap\n\nExit codes: 0 success, 1 differences/problems found, 2 bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a snapshot: header, frames, globals, tables, memory, WASI state.
    Dump(dump::Opts),
    /// Print a snapshot as canonical JSON.
    Decode(decode::Opts),
    /// Write a binary snapshot from its canonical JSON.
    Encode(encode::Opts),
    /// Check a snapshot's integrity and, with --module, that it fits the module.
    Verify(verify::Opts),
    /// Show the structural difference between two snapshots.
    Diff(diff::Opts),
    /// Lay a snapshot's frames out in the native frames of another binary/ISA.
    Translate(translate::Opts),
    /// Show and check a chain of incremental snapshots (full one first).
    Chain(chain::ChainOpts),
    /// Merge a chain of incremental snapshots into one full snapshot.
    Merge(chain::MergeOpts),
    /// Print a shell completion script for wanco-snap on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `wanco-snap --version`: the wanco version and the snapshot format version
/// it reads and writes.
fn command() -> clap::Command {
    let v = format!(
        "{} ({})",
        env!("CARGO_PKG_VERSION"),
        wanco_state::snapshot::format_versions_text()
    );
    // clap wants a 'static version string; it is made once per process.
    Cli::command().version(&*Box::leak(v.into_boxed_str()))
}

fn main() {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    let r = match cli.command {
        Command::Dump(o) => dump::run(o),
        Command::Decode(o) => decode::run(o),
        Command::Encode(o) => encode::run(o),
        Command::Verify(o) => verify::run(o),
        Command::Diff(o) => diff::run(o),
        Command::Translate(o) => translate::run(o),
        Command::Chain(o) => chain::run_chain(o),
        Command::Merge(o) => chain::run_merge(o),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "wanco-snap", &mut std::io::stdout());
            Ok(0)
        }
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2)
        }
    }
}
