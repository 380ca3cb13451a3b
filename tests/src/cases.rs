//! The run cases of `tests/programs/cases.toml`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

/// Exit code of a run that ended in a trap (wasmtime's, and wanco's: 128 + SIGABRT).
pub const TRAP_EXIT_CODE: i32 = 134;

/// Default time limit of one run, in seconds (multiplied for emulated engines).
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Guest path of the preopened directory of every run.
pub const GUEST_DIR: &str = "/data";

/// One run of one program (see the comment at the top of `cases.toml` for the fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique name.
    pub name: String,
    /// Module `tests/programs/wasm/<program>.wasm`.
    pub program: String,
    /// Guest arguments after argv[0].
    #[serde(default)]
    pub args: Vec<String>,
    /// Guest environment as `KEY=VALUE`, in order.
    #[serde(default)]
    pub env: Vec<String>,
    /// Files created in the preopened directory: relative path -> contents.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Empty directories created in the preopened directory.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Text written to stdin.
    #[serde(default)]
    pub stdin: String,
    /// How many times `stdin` is written.
    #[serde(default = "one")]
    pub stdin_repeat: usize,
    /// Expected exit code on every engine.
    pub exit: Option<i32>,
    /// Expected trap message (then the exit code is 134).
    pub trap: Option<String>,
    /// Texts every engine's stderr must contain.
    #[serde(default)]
    pub stderr_contains: Vec<String>,
    /// Texts every engine's stdout must contain.
    #[serde(default)]
    pub stdout_contains: Vec<String>,
    /// Per-run time limit in seconds (before the emulation factor).
    pub timeout_secs: Option<u64>,
    /// Only these engines run the case (names as `Engine::name`, e.g.
    /// `["wasmtime", "interp"]`); all when absent. For programs some engine
    /// cannot run yet (SIMD on the compiled engines).
    pub engines: Option<Vec<String>>,
}

impl Case {
    /// Whether the engine named `engine` runs this case.
    pub fn runs_on(&self, engine: &str) -> bool {
        self.engines
            .as_ref()
            .is_none_or(|e| e.iter().any(|n| n == engine))
    }
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    case: Vec<Case>,
}

impl Case {
    /// The exit code every engine must produce.
    pub fn expected_exit(&self) -> i32 {
        match (&self.trap, self.exit) {
            (_, Some(code)) => code,
            (Some(_), None) => TRAP_EXIT_CODE,
            (None, None) => 0,
        }
    }

    /// The bytes written to the guest's stdin.
    pub fn stdin_bytes(&self) -> Vec<u8> {
        self.stdin.repeat(self.stdin_repeat).into_bytes()
    }

    /// Environment variables as (key, value) pairs.
    pub fn env_pairs(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|kv| kv.split_once('=').unwrap_or((kv.as_str(), "")))
            .collect()
    }
}

/// Parse and validate a cases file.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_cases(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parse and validate the text of a cases file.
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let file: CasesFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut names = HashSet::new();
    for case in &file.case {
        if !names.insert(case.name.as_str()) {
            return Err(format!("duplicate case name `{}`", case.name));
        }
        for e in case.engines.iter().flatten() {
            if !crate::engine::Engine::ALL.iter().any(|x| x.name() == e) {
                return Err(format!(
                    "case `{}`: unknown engine `{e}` (expected wasmtime, aot-x86_64, aot-aarch64 or interp)",
                    case.name
                ));
            }
        }
        for kv in &case.env {
            if !kv.contains('=') || kv.starts_with('=') {
                return Err(format!(
                    "case `{}`: env entry `{kv}` is not KEY=VALUE",
                    case.name
                ));
            }
        }
        for p in case.files.keys().chain(case.dirs.iter()) {
            let path = Path::new(p);
            if path.is_absolute()
                || path
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(format!(
                    "case `{}`: `{p}` must be a plain relative path",
                    case.name
                ));
            }
        }
        if case.trap.is_some() && case.exit.is_some_and(|c| c != TRAP_EXIT_CODE) {
            return Err(format!(
                "case `{}`: a trap exits with {TRAP_EXIT_CODE}",
                case.name
            ));
        }
    }
    Ok(file.case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_rejects_bad_paths() {
        let cases = parse_cases(
            r#"
            [[case]]
            name = "a"
            program = "p"
            stdin = "x"
            stdin_repeat = 3
            [[case]]
            name = "b"
            program = "p"
            trap = "unreachable"
            env = ["K=V=W"]
            [case.files]
            "d/f.txt" = "hi"
        "#,
        )
        .unwrap();
        assert_eq!(cases[0].expected_exit(), 0);
        assert_eq!(cases[0].stdin_bytes(), b"xxx");
        assert_eq!(cases[1].expected_exit(), 134);
        assert_eq!(cases[1].env_pairs(), vec![("K", "V=W")]);
        assert!(parse_cases("[[case]]\nname='a'\nprogram='p'\ndirs=['../x']").is_err());
        assert!(
            parse_cases("[[case]]\nname='a'\nprogram='p'\n[[case]]\nname='a'\nprogram='q'")
                .is_err()
        );
        assert!(parse_cases("[[case]]\nname='a'\nprogram='p'\nbogus=1").is_err());
    }
}
