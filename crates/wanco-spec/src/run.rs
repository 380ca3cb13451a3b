//! Running lowered scripts against an engine.

use crate::engine::{Engine, FileInfo, InstanceId, InstantiateError, InvokeError, ModuleId};
use crate::script::{Action, CommandKind, Expect, Script};
use std::collections::HashMap;
use wanco_state::Value;

/// Result of one directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The engine behaved as the directive demands.
    Passed,
    /// Passed without the engine: the text-format parser already rejected
    /// the module (`assert_malformed` / `assert_invalid` of text that does
    /// not parse). Counted as passed; the reason says why.
    PassedInParser(String),
    /// It did not: expected vs got.
    Failed(String),
    /// Not applicable (reason).
    Skipped(String),
}

/// The outcome of one directive of a file.
#[derive(Clone, Debug)]
pub struct DirectiveResult {
    /// 1-based line of the directive.
    pub line: u32,
    /// What happened.
    pub outcome: Outcome,
}

fn fmt_values(vs: &[Value]) -> String {
    let v: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// Whether a trap message matches the expected one (the expected message
/// may carry extra detail after the spec wording, or the other way round).
pub fn trap_matches(expected: &str, got: &str) -> bool {
    got.starts_with(expected) || expected.starts_with(got) || got.contains(expected)
}

struct State {
    current: Option<InstanceId>,
    named: HashMap<String, InstanceId>,
    definitions: HashMap<String, ModuleId>,
    last_definition: Option<ModuleId>,
}

impl State {
    fn instance(&self, name: &Option<String>) -> Result<InstanceId, String> {
        match name {
            None => self
                .current
                .ok_or_else(|| "no current module instance".to_string()),
            Some(n) => self
                .named
                .get(n)
                .copied()
                .ok_or_else(|| format!("unknown instance ${n}")),
        }
    }
}

fn perform(
    engine: &mut dyn Engine,
    st: &State,
    action: &Action,
) -> Result<Result<Vec<Value>, InvokeError>, String> {
    match action {
        Action::Invoke {
            instance,
            name,
            args,
        } => {
            let i = st.instance(instance)?;
            Ok(engine.invoke(i, name, args))
        }
        Action::Get { instance, name } => {
            let i = st.instance(instance)?;
            Ok(engine
                .get(i, name)
                .map(|v| vec![v])
                .map_err(InvokeError::Other))
        }
    }
}

/// Run every directive of `script` (already prepared) against `engine`.
pub fn run_script(
    engine: &mut dyn Engine,
    file: &FileInfo,
    script: &Script,
) -> Vec<DirectiveResult> {
    let mut results = Vec::new();
    if let Err(e) = engine.prepare(file, &script.modules) {
        // Nothing can run: every directive fails.
        for c in &script.commands {
            results.push(DirectiveResult {
                line: c.line,
                outcome: Outcome::Failed(format!("engine could not prepare the file: {e}")),
            });
        }
        return results;
    }
    let mut st = State {
        current: None,
        named: HashMap::new(),
        definitions: HashMap::new(),
        last_definition: None,
    };
    for c in &script.commands {
        let outcome = run_command(engine, &mut st, &c.kind);
        results.push(DirectiveResult {
            line: c.line,
            outcome,
        });
    }
    engine.finish();
    results
}

fn run_command(engine: &mut dyn Engine, st: &mut State, kind: &CommandKind) -> Outcome {
    use Outcome::*;
    match kind {
        CommandKind::Passed(why) => PassedInParser(why.clone()),
        CommandKind::Failed(m) => Failed(m.clone()),
        CommandKind::Skip(r) => Skipped(r.clone()),
        CommandKind::Module { module, name } => {
            match engine.instantiate(*module, name.as_deref()) {
                Ok(i) => {
                    st.current = Some(i);
                    if let Some(n) = name {
                        st.named.insert(n.clone(), i);
                    }
                    Passed
                }
                Err(e) => {
                    st.current = None;
                    Failed(format!("expected the module to instantiate, got {e}"))
                }
            }
        }
        CommandKind::ModuleDefinition { module, name } => {
            if let Some(n) = name {
                st.definitions.insert(n.clone(), *module);
            }
            st.last_definition = Some(*module);
            Passed
        }
        CommandKind::ModuleInstance { instance, module } => {
            let m = match module {
                Some(n) => st.definitions.get(n).copied(),
                None => st.last_definition,
            };
            let Some(m) = m else {
                return Failed("unknown module definition".into());
            };
            match engine.instantiate(m, instance.as_deref()) {
                Ok(i) => {
                    st.current = Some(i);
                    if let Some(n) = instance {
                        st.named.insert(n.clone(), i);
                    }
                    Passed
                }
                Err(e) => Failed(format!("expected the module to instantiate, got {e}")),
            }
        }
        CommandKind::Register { name, instance } => match st.instance(instance) {
            Ok(i) => match engine.register(name, i) {
                Ok(()) => Passed,
                Err(e) => Failed(format!("register failed: {e}")),
            },
            Err(e) => Failed(e),
        },
        CommandKind::Action { action, expect } => {
            let got = match perform(engine, st, action) {
                Ok(g) => g,
                Err(e) => return Failed(e),
            };
            match (expect, got) {
                (Expect::Success, Ok(_)) => Passed,
                (Expect::Return(pats), Ok(vals)) => {
                    if pats.len() == vals.len() && pats.iter().zip(&vals).all(|(p, v)| p.matches(v))
                    {
                        Passed
                    } else {
                        let p: Vec<String> = pats.iter().map(|p| p.to_string()).collect();
                        Failed(format!(
                            "expected [{}], got {}",
                            p.join(", "),
                            fmt_values(&vals)
                        ))
                    }
                }
                (Expect::Trap(m), Err(InvokeError::Trap(got))) => {
                    if trap_matches(m, &got) {
                        Passed
                    } else {
                        Failed(format!("expected trap {m:?}, got trap {got:?}"))
                    }
                }
                (Expect::Exhaustion, Err(InvokeError::Exhaustion)) => Passed,
                (Expect::Success, Err(e)) => Failed(format!("expected success, got {e}")),
                (Expect::Return(_), Err(e)) => Failed(format!("expected results, got {e}")),
                (Expect::Trap(m), Err(e)) => Failed(format!("expected trap {m:?}, got {e}")),
                (Expect::Trap(m), Ok(v)) => Failed(format!(
                    "expected trap {m:?}, got results {}",
                    fmt_values(&v)
                )),
                (Expect::Exhaustion, Err(e)) => {
                    Failed(format!("expected call stack exhaustion, got {e}"))
                }
                (Expect::Exhaustion, Ok(v)) => Failed(format!(
                    "expected call stack exhaustion, got results {}",
                    fmt_values(&v)
                )),
            }
        }
        CommandKind::AssertRejected {
            wasm,
            message,
            malformed,
            text,
        } => match engine.validate(wasm) {
            Err(_) => Passed,
            Ok(()) if *text => Skipped(
                "text-format malformed module: not a property of the engine \
                 (the wat parser accepted it)"
                    .into(),
            ),
            Ok(()) => Failed(format!(
                "expected the module to be rejected as {} ({message:?}), but the engine accepted it",
                if *malformed { "malformed" } else { "invalid" }
            )),
        },
        CommandKind::AssertUnlinkable { module, message } => {
            match engine.instantiate(*module, None) {
                Err(InstantiateError::Unlinkable(_)) => Passed,
                Err(e) => Failed(format!("expected unlinkable ({message:?}), got {e}")),
                Ok(_) => Failed(format!(
                    "expected unlinkable ({message:?}), but the module instantiated"
                )),
            }
        }
        CommandKind::AssertModuleTrap { module, message } => {
            match engine.instantiate(*module, None) {
                Err(InstantiateError::Trap(got)) if trap_matches(message, &got) => Passed,
                Err(e) => Failed(format!("expected instantiation to trap with {message:?}, got {e}")),
                Ok(_) => Failed(format!(
                    "expected instantiation to trap with {message:?}, but it succeeded"
                )),
            }
        }
    }
}
