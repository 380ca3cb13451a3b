//! Lowering of a `.wast` file into engine-independent commands with every
//! module already encoded to a binary.

use std::fmt;
use wanco_state::Value;
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
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
    /// A `v128` of float lanes (`f32x4` when `wide` is false, `f64x2`
    /// otherwise), each lane matched by its own pattern (exact bits or a
    /// NaN class).
    V128Lanes {
        /// `f64x2` lanes (else `f32x4`).
        wide: bool,
        /// One pattern per lane, lane 0 first.
        lanes: Vec<Pattern>,
    },
}

/// The float lanes of a `v128` as scalar values.
fn float_lanes(x: u128, wide: bool) -> Vec<Value> {
    if wide {
        (0..2).map(|i| Value::F64((x >> (64 * i)) as u64)).collect()
    } else {
        (0..4).map(|i| Value::F32((x >> (32 * i)) as u32)).collect()
    }
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
            (Pattern::V128Lanes { wide, lanes }, Value::V128(x)) => float_lanes(*x, *wide)
                .iter()
                .zip(lanes)
                .all(|(v, p)| p.matches(v)),
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
            Pattern::V128Lanes { wide, lanes } => {
                write!(f, "v128 {} [", if *wide { "f64x2" } else { "f32x4" })?;
                for (i, p) in lanes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{p}")?;
                }
                f.write_str("]")
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
        WastArgCore::V128(c) => Value::V128(u128::from_le_bytes(c.to_le_bytes())),
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
        WastRetCore::V128(p) => v128_pattern(p),
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

/// Lane pattern of a float lane.
fn nan_lane<T>(p: &NanPattern<T>, wide: bool, bits: impl Fn(&T) -> u64) -> Pattern {
    match p {
        NanPattern::Value(v) if wide => Pattern::Exact(Value::F64(bits(v))),
        NanPattern::Value(v) => Pattern::Exact(Value::F32(bits(v) as u32)),
        NanPattern::CanonicalNan => Pattern::CanonicalNan(wide),
        NanPattern::ArithmeticNan => Pattern::ArithmeticNan(wide),
    }
}

/// Pattern of a `v128` result: integer shapes are exact 16 bytes; float
/// shapes match lane by lane (NaN classes per lane).
fn v128_pattern(p: &V128Pattern) -> Pattern {
    fn bytes<const N: usize, const K: usize>(lanes: impl Fn(usize) -> [u8; N]) -> Value {
        let mut b = [0u8; 16];
        for i in 0..K {
            b[i * N..(i + 1) * N].copy_from_slice(&lanes(i));
        }
        Value::V128(u128::from_le_bytes(b))
    }
    match p {
        V128Pattern::I8x16(l) => Pattern::Exact(bytes::<1, 16>(|i| l[i].to_le_bytes())),
        V128Pattern::I16x8(l) => Pattern::Exact(bytes::<2, 8>(|i| l[i].to_le_bytes())),
        V128Pattern::I32x4(l) => Pattern::Exact(bytes::<4, 4>(|i| l[i].to_le_bytes())),
        V128Pattern::I64x2(l) => Pattern::Exact(bytes::<8, 2>(|i| l[i].to_le_bytes())),
        V128Pattern::F32x4(l) => Pattern::V128Lanes {
            wide: false,
            lanes: l.iter().map(|p| nan_lane(p, false, |v| v.bits as u64)).collect(),
        },
        V128Pattern::F64x2(l) => Pattern::V128Lanes {
            wide: true,
            lanes: l.iter().map(|p| nan_lane(p, true, |v| v.bits)).collect(),
        },
    }
}

/// Why a module that is valid with every proposal wasmparser knows is
/// invalid in WebAssembly 2.0 (e.g. multiple memories), if it is: such a
/// module uses a later proposal, outside what the engines implement.
fn outside_wasm2(wasm: &[u8]) -> Option<String> {
    use wasmparser::{Validator, WasmFeatures};
    let e = Validator::new_with_features(WasmFeatures::WASM2)
        .validate_all(wasm)
        .err()?;
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(wasm)
        .ok()?;
    Some(format!("module uses a proposal outside Wasm 2.0: {}", e.message()))
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
    /// Set after a module outside Wasm 2.0 was skipped: the actions that
    /// follow (until the next module) use it and are skipped too.
    skip_rest: Option<String>,
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
        let uses_current = matches!(
            d,
            WastDirective::Invoke(_)
                | WastDirective::AssertReturn { .. }
                | WastDirective::AssertTrap { .. }
                | WastDirective::AssertExhaustion { .. }
                | WastDirective::Register { .. }
        );
        if matches!(d, WastDirective::Module(_)) {
            self.skip_rest = None;
        }
        if let (Some(r), true) = (&self.skip_rest, uses_current) {
            let kind = CommandKind::Skip(format!("uses the module skipped above ({r})"));
            self.push(span, kind);
            return;
        }
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
                    Ok(wasm) if outside_wasm2(&wasm).is_some() => {
                        // The failure of the directives using it follows
                        // from this one; they are not run either.
                        self.skip_rest = outside_wasm2(&wasm);
                        return Err(Unsupported::Skip(self.skip_rest.clone().unwrap_or_default()));
                    }
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
        skip_rest: None,
    };
    for d in wast.directives {
        l.directive(d);
    }
    Ok(Script {
        modules: l.modules,
        commands: l.commands,
    })
}
