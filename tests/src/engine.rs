//! The engines a case runs on, and the tools they need.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cases::{Case, GUEST_DIR};
use crate::process::{self, Invocation, Status};

/// Where a program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Engine {
    /// The reference: `wasmtime run`.
    Wasmtime,
    /// `wanco compile --target x86_64`, run natively.
    AotX86_64,
    /// `wanco compile --target aarch64`, run under qemu-aarch64.
    AotAarch64,
    /// `wanco interp`: the reference interpreter.
    Interp,
}

impl Engine {
    /// All engines, reference first.
    pub const ALL: [Engine; 4] = [Engine::Wasmtime, Engine::AotX86_64, Engine::AotAarch64, Engine::Interp];

    /// Name used in reports and in `WANCO_E2E_ENGINES`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Wasmtime => "wasmtime",
            Engine::AotX86_64 => "aot-x86_64",
            Engine::AotAarch64 => "aot-aarch64",
            Engine::Interp => "interp",
        }
    }

    /// Parse a name (`wasmtime`, `aot-x86_64`/`x86_64`, `aot-aarch64`/`aarch64`).
    pub fn parse(s: &str) -> Option<Engine> {
        match s.trim() {
            "wasmtime" => Some(Engine::Wasmtime),
            "aot-x86_64" | "x86_64" => Some(Engine::AotX86_64),
            "aot-aarch64" | "aarch64" => Some(Engine::AotAarch64),
            "interp" => Some(Engine::Interp),
            _ => None,
        }
    }

    /// The `--target` of `wanco compile`, for AOT engines.
    pub fn isa(self) -> Option<&'static str> {
        match self {
            Engine::Wasmtime | Engine::Interp => None,
            Engine::AotX86_64 => Some("x86_64"),
            Engine::AotAarch64 => Some("aarch64"),
        }
    }

    /// Factor applied to time limits (emulation is slow).
    pub fn slowdown(self) -> u32 {
        match self {
            Engine::AotAarch64 | Engine::Interp => 4,
            _ => 1,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Paths of the external tools.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The wasmtime CLI.
    pub wasmtime: PathBuf,
    /// The wanco CLI (needed by AOT engines).
    pub wanco: PathBuf,
    /// qemu-aarch64 (needed by the aarch64 engine).
    pub qemu: PathBuf,
    /// Sysroot given to qemu with `-L`.
    pub aarch64_sysroot: PathBuf,
}

impl Tools {
    /// Locate the tools. `WASMTIME` overrides wasmtime (else `tools/find-wasmtime.sh`), `WANCO_BIN`
    /// overrides `<workspace>/target/debug/wanco`, `QEMU_AARCH64` and `WANCO_AARCH64_SYSROOT`
    /// override qemu-aarch64 on PATH and /usr/aarch64-linux-gnu. Checks only what `engines` need
    /// (wasmtime is looked for only when `engines` contains [`Engine::Wasmtime`]).
    pub fn locate(workspace: &Path, engines: &[Engine]) -> Result<Tools, String> {
        let wasmtime = if engines.contains(&Engine::Wasmtime) {
            locate_wasmtime(workspace)?
        } else {
            PathBuf::from("wasmtime")
        };
        let wanco = std::env::var_os("WANCO_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target").join("debug").join("wanco"));
        if engines.iter().any(|e| e.isa().is_some() || *e == Engine::Interp) && !process::is_executable(&wanco) {
            return Err(format!(
                "the wanco compiler was not found at {} (set WANCO_BIN, or build it with \
                 `cargo build -p wanco-cli`; to check only the reference engine run with \
                 WANCO_E2E_ENGINES=wasmtime)",
                wanco.display()
            ));
        }
        let qemu = process::find_executable("QEMU_AARCH64", "qemu-aarch64")
            .unwrap_or_else(|| "qemu-aarch64".into());
        let aarch64_sysroot = std::env::var_os("WANCO_AARCH64_SYSROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/aarch64-linux-gnu".into());
        if engines.contains(&Engine::AotAarch64) {
            if !process::is_executable(&qemu) {
                return Err(
                    "qemu-aarch64 not found (apt-get install qemu-user, or set QEMU_AARCH64)"
                        .into(),
                );
            }
            if !aarch64_sysroot.is_dir() {
                return Err(format!(
                    "aarch64 sysroot {} missing (apt-get install libc6-dev-arm64-cross, or set WANCO_AARCH64_SYSROOT)",
                    aarch64_sysroot.display()
                ));
            }
        }
        Ok(Tools {
            wasmtime,
            wanco,
            qemu,
            aarch64_sysroot,
        })
    }

    /// The command that compiles `wasm` for `engine`'s ISA into `out`.
    pub fn compile_invocation(&self, engine: Engine, wasm: &Path, out: &Path) -> Invocation {
        let mut inv = Invocation::new(&self.wanco, Duration::from_secs(600));
        inv.arg("compile")
            .arg(wasm)
            .arg("--target")
            .arg(engine.isa().expect("AOT engine"))
            .arg("-o")
            .arg(out);
        inv
    }

    /// The command that runs `case` on `engine`. `artifact` is the .wasm for wasmtime and the
    /// compiled binary otherwise; `host_dir` is preopened as `/data`; `cwd` is the working dir.
    pub fn run_invocation(
        &self,
        engine: Engine,
        case: &Case,
        artifact: &Path,
        host_dir: &Path,
        cwd: &Path,
    ) -> Invocation {
        let timeout = Duration::from_secs(
            case.timeout_secs
                .unwrap_or(crate::cases::DEFAULT_TIMEOUT_SECS)
                * u64::from(engine.slowdown()),
        );
        let dir_arg = format!("{}::{GUEST_DIR}", host_dir.display());
        let mut inv = match engine {
            Engine::Wasmtime => {
                // wasmtime run [OPTIONS] <WASM> [ARGS]...: everything after the module goes to the guest.
                let mut inv = Invocation::new(&self.wasmtime, timeout);
                inv.arg("run").arg("--dir").arg(&dir_arg);
                for kv in &case.env {
                    inv.arg("--env").arg(kv);
                }
                inv.arg(artifact);
                inv
            }
            Engine::Interp => {
                // wanco interp [OPTIONS] <WASM> [ARGS]...
                let mut inv = Invocation::new(&self.wanco, timeout);
                inv.arg("interp").arg("--dir").arg(&dir_arg);
                for kv in &case.env {
                    inv.arg("--env").arg(kv);
                }
                inv.arg(artifact).arg("--");
                inv
            }
            Engine::AotX86_64 | Engine::AotAarch64 => {
                // BINARY [RUNTIME OPTIONS] -- [ARGS]...
                let mut inv = if engine == Engine::AotAarch64 {
                    let mut inv = Invocation::new(&self.qemu, timeout);
                    inv.arg("-L").arg(&self.aarch64_sysroot).arg(artifact);
                    inv
                } else {
                    Invocation::new(artifact, timeout)
                };
                inv.arg("--dir").arg(&dir_arg);
                for kv in &case.env {
                    inv.arg("--env").arg(kv);
                }
                inv.arg("--");
                inv
            }
        };
        for a in &case.args {
            inv.arg(a);
        }
        inv.stdin = case.stdin_bytes();
        inv.cwd = Some(cwd.to_path_buf());
        inv
    }
}

fn locate_wasmtime(workspace: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("WASMTIME") {
        let p = PathBuf::from(p);
        return if process::is_executable(&p) {
            Ok(p)
        } else {
            Err(format!("WASMTIME={} is not executable", p.display()))
        };
    }
    let script = workspace.join("tools").join("find-wasmtime.sh");
    let mut inv = Invocation::new("bash", Duration::from_secs(300));
    inv.arg(&script);
    let out = process::run(&inv);
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status == Status::Exited(0)
        && !path.is_empty()
        && process::is_executable(Path::new(&path))
    {
        Ok(PathBuf::from(path))
    } else {
        Err(format!(
            "wasmtime (the reference engine) not found: {} {}\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
