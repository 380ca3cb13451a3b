//! `wanco`: compile WebAssembly to native executables and run them.

#[path = "../wanco/compile.rs"]
mod compile;
#[path = "../wanco/interp.rs"]
mod interp;
#[path = "../wanco/run.rs"]
mod run;
#[path = "../wanco/migrate.rs"]
mod migrate;
#[path = "../wanco/agent.rs"]
mod agent;

use clap::{Parser, Subcommand};

/// wanco — a WebAssembly AOT compiler whose binaries migrate across CPU architectures.
#[derive(Parser)]
#[command(name = "wanco", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a .wasm (or .wat) module to a native executable.
    Compile(compile::Opts),
    /// Compile (cached) and run a module, like `wasmtime run`.
    Run(run::Opts),
    /// Run a module in the reference interpreter.
    Interp(interp::Opts),
    /// Move a running program (started with --control) to another host.
    Migrate(migrate::Opts),
    /// Receive migrated programs (over ssh: --stdio; mutual TLS: --listen).
    Agent(agent::Opts),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Compile(o) => compile::run(o),
        Command::Run(o) => run::run(o),
        Command::Interp(o) => interp::run(o),
        Command::Migrate(o) => migrate::run(o),
        Command::Agent(o) => agent::run(o),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2)
        }
    }
}
