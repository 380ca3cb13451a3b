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
#[path = "../wanco/tls_opts.rs"]
mod tls_opts;
#[path = "../wanco/gateway.rs"]
mod gateway;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// wanco — a WebAssembly AOT compiler whose binaries migrate across CPU architectures.
#[derive(Parser)]
#[command(name = "wanco", about, long_about = None)]
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
    /// The stable address clients of a migrating server connect to.
    Gateway(gateway::Opts),
    /// Print a shell completion script for wanco on stdout.
    #[command(after_help = "Examples:\n  wanco completions bash > ~/.local/share/bash-completion/completions/wanco\n  wanco completions zsh > ~/.zfunc/_wanco\n  wanco completions fish > ~/.config/fish/completions/wanco.fish\n\n`just install` and the Debian package install them for bash, zsh and fish.")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `wanco --version`: the wanco version, the LLVM it generates code with,
/// and the snapshot format version it writes and reads.
fn version() -> String {
    let (major, minor, patch) = inkwell::support::get_llvm_version();
    let format = wanco_state::snapshot::format_versions_text();
    format!("{} (LLVM {major}.{minor}.{patch}; {format})", env!("CARGO_PKG_VERSION"))
}

fn command() -> clap::Command {
    // clap wants a 'static version string; it is made once per process.
    let v: &'static str = Box::leak(version().into_boxed_str());
    Cli::command().version(v)
}

fn main() {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    let r = match cli.command {
        Command::Compile(o) => compile::run(o),
        Command::Run(o) => run::run(o),
        Command::Interp(o) => interp::run(o),
        Command::Migrate(o) => migrate::run(o),
        Command::Agent(o) => agent::run(o),
        Command::Gateway(o) => gateway::run(o),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "wanco", &mut std::io::stdout());
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
