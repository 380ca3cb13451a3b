//! Lowering of a `.wast` file into engine-independent commands with every
//! module already encoded to a binary.

use std::fmt;
use wanco_state::Value;
use wast::core::{AbstractHeapType, HeapType, NanPattern, WastArgCore, WastRetCore};
use wast::lexer::Lexer;
use wast::parser::{self, ParseBuffer};
use wast::token::Span;
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

use crate::engine::ModuleId;

/// A lowered `.wast` file.
#[derive(Clone, Debug)]
pub struct Script {
    /// Every module binary that may be instantiated, indexed by [`ModuleId`].
    pub modules: Vec<Vec<u8>>,
    /// The directives, in file order.
    pub commands: Vec<Command>,
}

/// One directive with its (1-based) line.
#[derive(Clone, Debug)]
pub struct Command {
    /// Line of the directive in the file.
    pub line: u32,
    /// What to do.
    pub kind: CommandKind,
}

/// What a directive asks for.
#[derive(Clone, Debug)]
pub enum CommandKind {
    /// `(module ...)`: instantiate and make current (and named).
    Module {
        /// The binary.
        module: ModuleId,
        /// `$name`.
        name: Option<String>,
    },
    /// `(module definition $name ...)`: remember, do not instantiate.
    ModuleDefinition {
        /// The binary.
        module: ModuleId,
        /// `$name`.
        name: Option<String>,
    },
    /// `(module instance $inst $def)`.
    ModuleInstance {
        /// Name of the new instance.
        instance: Option<String>,
        /// Name of the definition (latest if absent).
        module: Option<String>,
    },
    /// `(register "name" $inst)`.
    Register {
        /// Module name to register under.
        name: String,
        /// Instance (current if absent).
        instance: Option<String>,
    },
    /// `invoke` / `get` with an expectation.
    Action {
        /// The action.
        action: Action,
        /// What must happen.
        expect: Expect,
    },
    /// `assert_invalid` / `assert_malformed` with a binary: must be rejected.
    AssertRejected {
        /// The binary.
        wasm: Vec<u8>,
        /// Expected message (informational).
        message: String,
        /// `true` for `assert_malformed`.
        malformed: bool,
        /// Whether the module was given as text (`module quote`) that the
        /// wat parser accepted: its malformedness is a property of the text
        /// format, not of the engine.
        text: bool,
    },
    /// `assert_unlinkable`.
    AssertUnlinkable {
        /// The binary.
        module: ModuleId,
        /// Expected message.
        message: String,
    },
    /// `assert_trap (module ...)` / `assert_uninstantiable`.
    AssertModuleTrap {
        /// The binary.
        module: ModuleId,
        /// Expected trap message.
        message: String,
    },
    /// Decided while lowering: passed (e.g. a text module the wat parser rejects).
    Passed(String),
    /// Decided while lowering: failed.
    Failed(String),
    /// Not applicable to the engines (reason).
    Skip(String),
}

/// An action on an instance.
#[derive(Clone, Debug)]
pub enum Action {
    /// Call an exported function.
    Invoke {
        /// Instance name (current if absent).
        instance: Option<String>,
        /// Export name.
        name: String,
        /// Arguments.
        args: Vec<Value>,
    },
    /// Read an exported global.
    Get {
        /// Instance name (current if absent).
        instance: Option<String>,
        /// Export name.
        name: String,
    },
}

/// What an action must produce.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Plain `invoke`: must not trap.
    Success,
    /// `assert_return`.
    Return(Vec<Pattern>),
    /// `assert_trap` with the message.
    Trap(String),
    /// `assert_exhaustion`.
    Exhaustion,
}

/// An expected result.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    /// Exactly this value (floats compared bit for bit).
    Exact(Value),
    /// `nan:canonical` of f32 (`false`) or f64 (`true`).
    CanonicalNan(bool),
    /// `nan:arithmetic` of f32 (`false`) or f64 (`true`).
    ArithmeticNan(bool),
    /// `ref.null`, of the given type (`None`: any null).
    RefNull(Option<wanco_state::ValType>),
    /// `ref.extern` (with the given number, or any non-null).
    RefExtern(Option<u64>),
    /// `ref.func` (any non-null funcref).
    RefFunc,
    /// `(either ...)`.
    Either(Vec<Pattern>),
}

impl Pattern {
    /// Whether `v` matches.
    pub fn matches(&self, v: &Value) -> bool {
        use wanco_state::ValType;
        match (self, v) {
            (Pattern::Exact(e), v) => e == v,
            (Pattern::CanonicalNan(false), Value::F32(b)) => b & 0x7fff_ffff == 0x7fc0_0000,
            (Pattern::CanonicalNan(true), Value::F64(b)) => {
                b & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000
            }
            (Pattern::ArithmeticNan(false), Value::F32(b)) => b & 0x7fc0_0000 == 0x7fc0_0000,
            (Pattern::ArithmeticNan(true), Value::F64(b)) => {
                b & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000
            }
            (Pattern::RefNull(t), Value::FuncRef(None)) => {
                t.is_none() || *t == Some(ValType::FuncRef)
            }
            (Pattern::RefNull(t), Value::ExternRef(None)) => {
                t.is_none() || *t == Some(ValType::ExternRef)
            }
            (Pattern::RefExtern(n), Value::ExternRef(Some(x))) => n.is_none_or(|n| n == *x),
            (Pattern::RefFunc, Value::FuncRef(Some(_))) => true,
            (Pattern::Either(ps), v) => ps.iter().any(|p| p.matches(v)),
            _ => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(v) => write!(f, "{v}"),
            Pattern::CanonicalNan(w) => write!(f, "f{}:nan:canonical", if *w { 64 } else { 32 }),
            Pattern::ArithmeticNan(w) => {
                write!(f, "f{}:nan:arithmetic", if *w { 64 } else { 32 })
            }
            Pattern::RefNull(None) => f.write_str("ref.null"),
            Pattern::RefNull(Some(t)) => write!(f, "{t}:null"),
            Pattern::RefExtern(None) => f.write_str("externref:non-null"),
            Pattern::RefExtern(Some(n)) => write!(f, "externref:{n}"),
            Pattern::RefFunc => f.write_str("funcref:non-null"),
            Pattern::Either(ps) => {
                f.write_str("either(")?;
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{p}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Why a directive cannot be lowered.
enum Unsupported {
    Skip(String),
}

fn heap_type(h: &HeapType<'_>) -> Result<wanco_state::ValType, Unsupported> {
    match h {
        HeapType::Abstract {
            ty: AbstractHeapType::Func,
            shared: false,
        } => Ok(wanco_state::ValType::FuncRef),
        HeapType::Abstract {
            ty: AbstractHeapType::Extern,
            shared: false,
        } => Ok(wanco_state::ValType::ExternRef),
        _ => Err(Unsupported::Skip(
            "reference type outside Wasm 2.0 (GC / typed function references)".into(),
        )),
    }
}

fn arg(a: &WastArg<'_>) -> Result<Value, Unsupported> {
    let WastArg::Core(a) = a else {
        return Err(Unsupported::Skip("component-model value".into()));
    };
    Ok(match a {
        WastArgCore::I32(v) => Value::I32(*v),
        WastArgCore::I64(v) => Value::I64(*v),
        WastArgCore::F32(v) => Value::F32(v.bits),
        WastArgCore::F64(v) => Value::F64(v.bits),
        WastArgCore::V128(_) => return Err(Unsupported::Skip("SIMD value (v128)".into())),
        WastArgCore::RefNull(h) => match heap_type(h)? {
            wanco_state::ValType::FuncRef => Value::FuncRef(None),
            _ => Value::ExternRef(None),
        },
        WastArgCore::RefExtern(n) => Value::ExternRef(Some(*n as u64)),
        WastArgCore::RefHost(_) => {
            return Err(Unsupported::Skip("host reference (GC proposal)".into()))
        }
    })
}

fn ret_core(r: &WastRetCore<'_>) -> Result<Pattern, Unsupported> {
    Ok(match r {
        WastRetCore::I32(v) => Pattern::Exact(Value::I32(*v)),
        WastRetCore::I64(v) => Pattern::Exact(Value::I64(*v)),
        WastRetCore::F32(NanPattern::Value(v)) => Pattern::Exact(Value::F32(v.bits)),
        WastRetCore::F32(NanPattern::CanonicalNan) => Pattern::CanonicalNan(false),
        WastRetCore::F32(NanPattern::ArithmeticNan) => Pattern::ArithmeticNan(false),
        WastRetCore::F64(NanPattern::Value(v)) => Pattern::Exact(Value::F64(v.bits)),
        WastRetCore::F64(NanPattern::CanonicalNan) => Pattern::CanonicalNan(true),
        WastRetCore::F64(NanPattern::ArithmeticNan) => Pattern::ArithmeticNan(true),
        WastRetCore::V128(_) => return Err(Unsupported::Skip("SIMD value (v128)".into())),
        WastRetCore::RefNull(None) => Pattern::RefNull(None),
        WastRetCore::RefNull(Some(h)) => Pattern::RefNull(Some(heap_type(h)?)),
        WastRetCore::RefExtern(n) => Pattern::RefExtern(n.map(|n| n as u64)),
        WastRetCore::RefFunc(_) => Pattern::RefFunc,
        WastRetCore::Either(v) => {
            Pattern::Either(v.iter().map(ret_core).collect::<Result<_, _>>()?)
        }
        _ => {
            return Err(Unsupported::Skip(
                "result pattern outside Wasm 2.0 (GC references)".into(),
            ))
        }
    })
}

fn ret(r: &WastRet<'_>) -> Result<Pattern, Unsupported> {
    match r {
        WastRet::Core(c) => ret_core(c),
        _ => Err(Unsupported::Skip("component-model value".into())),
    }
}

fn invoke(i: &WastInvoke<'_>) -> Result<Action, Unsupported> {
    Ok(Action::Invoke {
        instance: i.module.map(|id| id.name().to_string()),
        name: i.name.to_string(),
        args: i.args.iter().map(arg).collect::<Result<_, _>>()?,
    })
}

/// Lowering state of one file.
struct Lower<'t> {
    text: &'t str,
    modules: Vec<Vec<u8>>,
    commands: Vec<Command>,
}

impl Lower<'_> {
    fn line(&self, span: Span) -> u32 {
        span.linecol_in(self.text).0 as u32 + 1
    }

    fn push(&mut self, span: Span, kind: CommandKind) {
        let line = self.line(span);
        self.commands.push(Command { line, kind });
    }

    fn add_module(&mut self, wasm: Vec<u8>) -> ModuleId {
        self.modules.push(wasm);
        self.modules.len() - 1
    }

    fn encode_wat(w: &mut Wat<'_>) -> Result<Vec<u8>, String> {
        if matches!(w, Wat::Component(_)) {
            return Err("component".into());
        }
        w.encode().map_err(|e| e.to_string())
    }

    fn directive(&mut self, d: WastDirective<'_>) {
        let span = d.span();
        let kind = match self.lower(d) {
            Ok(k) => k,
            Err(Unsupported::Skip(r)) => CommandKind::Skip(r),
        };
        self.push(span, kind);
    }

    fn lower(&mut self, d: WastDirective<'_>) -> Result<CommandKind, Unsupported> {
        Ok(match d {
            WastDirective::Module(mut q) | WastDirective::ModuleDefinition(mut q)
                if matches!(
                    q,
                    QuoteWat::QuoteComponent(..) | QuoteWat::Wat(Wat::Component(_))
                ) =>
            {
                let _ = &mut q;
                return Err(Unsupported::Skip("component model".into()));
            }
            WastDirective::Module(mut q) => {
                let name = q.name().map(|id| id.name().to_string());
                match q.encode() {
                    Ok(wasm) => CommandKind::Module {
                        module: self.add_module(wasm),
                        name,
                    },
                    Err(e) => CommandKind::Failed(format!("module does not encode: {e}")),
                }
            }
            WastDirective::ModuleDefinition(mut q) => {
                let name = q.name().map(|id| id.name().to_string());
                match q.encode() {
                    Ok(wasm) => CommandKind::ModuleDefinition {
                        module: self.add_module(wasm),
                        name,
                    },
                    Err(e) => CommandKind::Failed(format!("module does not encode: {e}")),
                }
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => CommandKind::ModuleInstance {
                instance: instance.map(|i| i.name().to_string()),
                module: module.map(|i| i.name().to_string()),
            },
            WastDirective::Register { name, module, .. } => CommandKind::Register {
                name: name.to_string(),
                instance: module.map(|i| i.name().to_string()),
            },
            WastDirective::Invoke(i) => CommandKind::Action {
                action: invoke(&i)?,
                expect: Expect::Success,
            },
            WastDirective::AssertReturn { exec, results, .. } => {
                let results = results.iter().map(ret).collect::<Result<_, _>>()?;
                match exec {
                    WastExecute::Invoke(i) => CommandKind::Action {
                        action: invoke(&i)?,
                        expect: Expect::Return(results),
                    },
                    WastExecute::Get { module, global, .. } => CommandKind::Action {
                        action: Action::Get {
                            instance: module.map(|i| i.name().to_string()),
                            name: global.to_string(),
                        },
                        expect: Expect::Return(results),
                    },
                    WastExecute::Wat(_) => CommandKind::Failed(
                        "assert_return of a module is not a valid directive".into(),
                    ),
                }
            }
            WastDirective::AssertTrap { exec, message, .. } => match exec {
                WastExecute::Invoke(i) => CommandKind::Action {
                    action: invoke(&i)?,
                    expect: Expect::Trap(message.to_string()),
                },
                WastExecute::Get { module, global, .. } => CommandKind::Action {
                    action: Action::Get {
                        instance: module.map(|i| i.name().to_string()),
                        name: global.to_string(),
                    },
                    expect: Expect::Trap(message.to_string()),
                },
                WastExecute::Wat(mut w) => match Self::encode_wat(&mut w) {
                    Ok(wasm) => CommandKind::AssertModuleTrap {
                        module: self.add_module(wasm),
                        message: message.to_string(),
                    },
                    Err(e) => CommandKind::Failed(format!("module does not encode: {e}")),
                },
            },
            WastDirective::AssertExhaustion { call, .. } => CommandKind::Action {
                action: invoke(&call)?,
                expect: Expect::Exhaustion,
            },
            WastDirective::AssertUnlinkable {
                mut module,
                message,
                ..
            } => match Self::encode_wat(&mut module) {
                Ok(wasm) => CommandKind::AssertUnlinkable {
                    module: self.add_module(wasm),
                    message: message.to_string(),
                },
                Err(e) => CommandKind::Failed(format!("module does not encode: {e}")),
            },
            WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            } => match module.encode() {
                Ok(wasm) => CommandKind::AssertRejected {
                    wasm,
                    message: message.to_string(),
                    malformed: false,
                    text: false,
                },
                // The text could not even be turned into a binary: the
                // invalidity was caught by the text format's name resolution
                // (e.g. an unknown label or type), before any engine.
                Err(e) => CommandKind::Passed(format!(
                    "invalid text module rejected by the wat parser: {e}"
                )),
            },
            WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            } => {
                let text = matches!(module, QuoteWat::QuoteModule(..));
                match module.encode() {
                    Ok(wasm) => CommandKind::AssertRejected {
                        wasm,
                        message: message.to_string(),
                        malformed: true,
                        text,
                    },
                    Err(e) if text => CommandKind::Passed(format!(
                        "malformed text module rejected by the wat parser: {e}"
                    )),
                    Err(e) => CommandKind::Passed(format!(
                        "malformed module rejected by the wast parser: {e}"
                    )),
                }
            }
            WastDirective::AssertInvalidCustom { .. }
            | WastDirective::AssertMalformedCustom { .. } => {
                return Err(Unsupported::Skip(
                    "custom-section assertions (annotations proposal)".into(),
                ))
            }
            WastDirective::AssertException { .. } => {
                return Err(Unsupported::Skip("exception handling proposal".into()))
            }
            WastDirective::AssertSuspension { .. } => {
                return Err(Unsupported::Skip("stack switching proposal".into()))
            }
            WastDirective::Thread(_) | WastDirective::Wait { .. } => {
                return Err(Unsupported::Skip("threads proposal".into()))
            }
        })
    }
}

/// Parse and lower the text of a `.wast` file.
pub fn lower(text: &str) -> Result<Script, String> {
    let mut lexer = Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buf = ParseBuffer::new_with_lexer(lexer).map_err(|e| e.to_string())?;
    let wast = parser::parse::<Wast<'_>>(&buf).map_err(|e| {
        let mut e = e;
        e.set_text(text);
        e.to_string()
    })?;
    let mut l = Lower {
        text,
        modules: Vec::new(),
        commands: Vec::new(),
    };
    for d in wast.directives {
        l.directive(d);
    }
    Ok(Script {
        modules: l.modules,
        commands: l.commands,
    })
}
