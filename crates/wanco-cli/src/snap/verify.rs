//! `wanco-snap verify`: is a snapshot intact, and does it fit its module?

use super::common::{read_module, read_snapshot, Module};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use wanco_state::module::{ExportKind, FuncType, ModuleInfo};
use wanco_state::snapshot::{FrameKind, Snapshot};
use wanco_state::wasi::FdKind;
use wanco_state::{ValType, Value};
use wasmparser::{FuncValidator, Operator, Parser, ValidPayload, Validator, ValidatorResources};

/// Check a snapshot: integrity (magic, version, length, checksum, body) and,
/// with `--module`, identity (module hash) and structure (every frame stands
/// at a real migration point of a defined function with the locals and the
/// operand stack the module has there, each outer frame's call targets the
/// next frame's function, globals, tables, memory and segments fit the
/// module; the WASI fd table is consistent).
///
/// Prints `ok`, or one line per problem with its location. Exit code 0: ok,
/// 1: problems found, 2: the snapshot or module cannot be read.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  wanco-snap verify cp.wsnap                  # integrity only\n  wanco-snap verify --module app.wasm cp.wsnap"
)]
pub struct Opts {
    /// The snapshot (`-` for stdin).
    snap: PathBuf,
    /// The module the snapshot should belong to.
    #[arg(long, value_name = "PROG.wasm")]
    module: Option<PathBuf>,
    /// A compiled binary of the module: the frames must lay out in its
    /// machine frames, and a native view of its build must match its stack
    /// maps.
    #[arg(long, value_name = "BIN")]
    binary: Option<PathBuf>,
}

pub fn run(o: Opts) -> Result<i32> {
    let s = read_snapshot(&o.snap)?;
    let mut problems = match &o.module {
        None => Vec::new(),
        Some(p) => {
            let m = read_module(p)?;
            if let Err(e) = s.check_module(&m.info.hash) {
                vec![format!("module: {} (structure not checked)", e.message)]
            } else {
                let code = CodeInfo::parse(&m.wasm, &m.info)
                    .with_context(|| format!("cannot parse module `{}`", p.display()))?;
                check(&s, &m, &code)
            }
        }
    };
    if let Some(p) = &o.binary {
        let bin = super::translate::read_binary(p)?;
        let (more, notes) = super::native_view::verify_binary(&s, &bin);
        problems.extend(more);
        for n in notes {
            println!("note: {n}");
        }
    }
    if problems.is_empty() {
        println!("ok");
        Ok(0)
    } else {
        for p in &problems {
            println!("{p}");
        }
        println!(
            "{} problem{} found",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        Ok(1)
    }
}

/// Types of an operand stack, bottom first; `None` for a value of unknown
/// type (in unreachable code, which never runs).
type Stack = Vec<Option<ValType>>;

/// What a call instruction calls.
#[derive(Clone, Copy)]
enum Callee {
    /// `call`: this function.
    Func(u32),
    /// `call_indirect`: a function of this type.
    Type(u32),
}

/// A call site: its callee and the operand stack below the call's arguments.
struct Call {
    callee: Callee,
    stack: Stack,
}

/// What verify needs to know about one defined function's code.
struct Body {
    /// Offset of the body start (after the size LEB): the `Entry` point.
    start: u32,
    /// Whether the function has an entry point (its body has a `loop` or a
    /// call: migration-point rule 2).
    has_entry: bool,
    /// Declared (non-parameter) locals, expanded.
    locals: Vec<Option<ValType>>,
    /// At each `loop` opcode: the operand stack as the loop (re)starts (its
    /// parameters on top).
    loops: BTreeMap<u32, Stack>,
    /// At each `call` / `call_indirect` opcode: the call.
    calls: BTreeMap<u32, Call>,
}

/// Code of every defined function, in order.
struct CodeInfo {
    bodies: Vec<Body>,
}

fn val_type(t: wasmparser::ValType) -> Option<ValType> {
    use wasmparser::ValType as W;
    match t {
        W::I32 => Some(ValType::I32),
        W::I64 => Some(ValType::I64),
        W::F32 => Some(ValType::F32),
        W::F64 => Some(ValType::F64),
        W::V128 => Some(ValType::V128),
        W::FUNCREF => Some(ValType::FuncRef),
        W::EXTERNREF => Some(ValType::ExternRef),
        _ => None,
    }
}

/// Types of the bottom `count` entries of the validator's operand stack (as
/// the interpreter and the compiler record them at migration points).
fn stack_types(v: &FuncValidator<ValidatorResources>, count: u32) -> Stack {
    let h = v.operand_stack_height();
    (0..count.min(h))
        .map(|i| match v.get_operand_type((h - 1 - i) as usize) {
            // `ref.func` has a concrete (sub)type of funcref; the state model
            // only has funcref and externref.
            Some(Some(wasmparser::ValType::Ref(r))) => Some(if r.is_extern_ref() {
                ValType::ExternRef
            } else {
                ValType::FuncRef
            }),
            Some(Some(t)) => val_type(t),
            _ => None,
        })
        .collect()
}

impl CodeInfo {
    /// Walk every body with the module's validator, recording the operand
    /// stack at each migration point.
    fn parse(wasm: &[u8], info: &ModuleInfo) -> Result<CodeInfo> {
        let mut bodies = Vec::new();
        let mut validator = Validator::new_with_features(wasmparser::WasmFeatures::WASM2);
        for payload in Parser::new(0).parse_all(wasm) {
            let payload = payload?;
            let ValidPayload::Func(func, body) = validator.payload(&payload)? else {
                continue;
            };
            let mut v = func.into_validator(Default::default());
            let mut locals = Vec::new();
            let mut rd = body.get_locals_reader()?;
            for _ in 0..rd.get_count() {
                let off = rd.original_position();
                let (n, t) = rd.read()?;
                v.define_locals(off, n, t)?;
                // A valid module has at most 50000 locals per function.
                locals.extend(std::iter::repeat_n(val_type(t), n.min(1 << 20) as usize));
            }
            let mut loops = BTreeMap::new();
            let mut calls = BTreeMap::new();
            let mut has_entry = false;
            let mut ops = body.get_operators_reader()?;
            while !ops.eof() {
                let (op, off) = ops.read_with_offset()?;
                has_entry |= wanco_state::liveness::needs_entry_point(&op);
                let height = v.operand_stack_height();
                let params = |ty: Option<&FuncType>| ty.map_or(0, |t| t.params.len() as u32);
                match op {
                    Operator::Loop { .. } => {
                        loops.insert(off as u32, stack_types(&v, height));
                    }
                    Operator::Call { function_index } => {
                        let n = params(info.func_type(function_index));
                        let stack = stack_types(&v, height.saturating_sub(n));
                        let callee = Callee::Func(function_index);
                        calls.insert(off as u32, Call { callee, stack });
                    }
                    Operator::CallIndirect { type_index, .. } => {
                        let n = params(info.types.get(type_index as usize)) + 1;
                        let stack = stack_types(&v, height.saturating_sub(n));
                        let callee = Callee::Type(type_index);
                        calls.insert(off as u32, Call { callee, stack });
                    }
                    _ => {}
                }
                v.op(off, &op)?;
            }
            bodies.push(Body {
                start: body.range().start as u32,
                has_entry,
                locals,
                loops,
                calls,
            });
        }
        Ok(CodeInfo { bodies })
    }
}

fn sig(t: &FuncType) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("[{}] -> [{}]", list(&t.params), list(&t.results))
}

/// Whether a path relative to a preopen leads out of it.
fn leaves_preopen(path: &str) -> bool {
    let mut depth = 0i64;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    path.starts_with('/')
}

fn type_name(t: Option<ValType>) -> String {
    t.map_or("(unsupported type)".to_string(), |t| t.to_string())
}

fn check(s: &Snapshot, m: &Module, code: &CodeInfo) -> Vec<String> {
    let info = &m.info;
    let mut problems = Vec::new();
    let nfuncs = info.funcs.len() as u32;
    // A funcref must name a function of the module.
    let bad_ref = |v: &Value| matches!(v, Value::FuncRef(Some(f)) if *f >= nfuncs);
    let name = |f: u32| {
        info.func_name(f)
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default()
    };
    if let Err(e) = wanco_state::snapshot::check_points_rule(s) {
        problems.push(format!("points rule: {e}"));
    }
    if s.migration_points >= wanco_state::snapshot::MAX_MIGRATION_POINTS {
        problems.push(format!(
            "migration points: {}, more than any run reaches (2^63)",
            s.migration_points
        ));
    }
    let n = s.frames.len();
    if n == 0 {
        problems.push("frames: the snapshot has no frames".to_string());
    }
    let start = info
        .exports
        .iter()
        .find(|e| e.name == "_start" && e.kind == ExportKind::Func)
        .map(|e| e.index);
    if let (Some(f), Some(start)) = (s.frames.first(), start) {
        if f.func != start {
            problems.push(format!(
                "frame 0 (function {}{}): the outermost frame must be `_start` (function {start})",
                f.func,
                name(f.func)
            ));
        }
    }
    for (i, f) in s.frames.iter().enumerate() {
        let at = format!(
            "frame {i} (function {}{}, {:?} at 0x{:x})",
            f.func,
            name(f.func),
            f.kind,
            f.code_offset
        );
        let innermost = i + 1 == n;
        match f.kind {
            FrameKind::Call if innermost => {
                problems.push(format!("{at}: the innermost frame must stand at an entry or loop point, not call"))
            }
            FrameKind::Entry | FrameKind::Loop if !innermost => {
                problems.push(format!("{at}: only the innermost frame can be at an entry or loop point, outer frames are at call"))
            }
            _ => {}
        }
        if f.func < info.num_imported_funcs {
            problems.push(format!(
                "{at}: function {} is imported, not defined in the module",
                f.func
            ));
            continue;
        }
        let Some(body) = code.bodies.get((f.func - info.num_imported_funcs) as usize) else {
            problems.push(format!(
                "{at}: the module has no function {} (it has {nfuncs})",
                f.func
            ));
            continue;
        };
        // The operand stack the module has at the point, if it is one.
        let call = body.calls.get(&f.code_offset);
        let stack: Option<&[Option<ValType>]> = match f.kind {
            FrameKind::Entry => (f.code_offset == body.start && body.has_entry).then_some(&[]),
            FrameKind::Loop => body.loops.get(&f.code_offset).map(|s| s.as_slice()),
            FrameKind::Call => call.map(|c| c.stack.as_slice()),
        };
        if stack.is_none() {
            let expected = match f.kind {
                FrameKind::Entry if !body.has_entry => {
                    "no entry point: the function has no `loop` and no call".to_string()
                }
                FrameKind::Entry => format!("the function's body start 0x{:x}", body.start),
                FrameKind::Loop => format!(
                    "a `loop` opcode of the function ({} in it)",
                    body.loops.len()
                ),
                FrameKind::Call => format!(
                    "a `call`/`call_indirect` opcode of the function ({} in it)",
                    body.calls.len()
                ),
            };
            problems.push(format!(
                "{at}: code offset 0x{:x} is not a migration point: expected {expected}",
                f.code_offset
            ));
        }
        let Some(ty) = info.func_type(f.func) else {
            problems.push(format!("{at}: the function has no type in the module"));
            continue;
        };
        let expected: Vec<Option<ValType>> = ty
            .params
            .iter()
            .map(|t| Some(*t))
            .chain(body.locals.iter().copied())
            .collect();
        if expected.len() != f.locals.len() {
            problems.push(format!(
                "{at}: {} locals, expected {} ({} parameters + {} declared)",
                f.locals.len(),
                expected.len(),
                ty.params.len(),
                body.locals.len()
            ));
        }
        for (j, (v, t)) in f.locals.iter().zip(&expected).enumerate() {
            if Some(v.ty()) != *t {
                problems.push(format!(
                    "{at}: local {j} is {v}, expected type {}",
                    type_name(*t)
                ));
            } else if bad_ref(v) {
                problems.push(format!(
                    "{at}: local {j} is {v}, the module has {nfuncs} functions"
                ));
            }
        }
        if let Some(want) = stack {
            if want.len() != f.stack.len() {
                problems.push(format!(
                    "{at}: {} operand-stack values in the snapshot, the module has {} there",
                    f.stack.len(),
                    want.len()
                ));
            }
            for (k, (v, t)) in f.stack.iter().zip(want).enumerate() {
                match t {
                    Some(t) if v.ty() != *t => problems.push(format!(
                        "{at}: stack slot {k} is {} in the snapshot, the module has {t} there",
                        v.ty()
                    )),
                    _ if bad_ref(v) => problems.push(format!(
                        "{at}: stack slot {k} is {v}, the module has {nfuncs} functions"
                    )),
                    _ => {}
                }
            }
        }
        // The call must lead to the next frame.
        if let (FrameKind::Call, Some(call), Some(next)) = (f.kind, call, s.frames.get(i + 1)) {
            match call.callee {
                Callee::Func(c) if c != next.func => problems.push(format!(
                    "{at}: the call there calls function {c}{}, the next frame is function {}{}",
                    name(c),
                    next.func,
                    name(next.func)
                )),
                Callee::Type(t) => {
                    let want = info.types.get(t as usize);
                    let have = info.func_type(next.func);
                    if want.is_some() && have.is_some() && want != have {
                        problems.push(format!(
                            "{at}: the call_indirect there expects type {t} {}, the next frame's function {}{} has type {}",
                            want.map(sig).unwrap_or_default(),
                            next.func,
                            name(next.func),
                            have.map(sig).unwrap_or_default()
                        ));
                    }
                }
                Callee::Func(_) => {}
            }
        }
    }

    if s.globals.len() != info.num_globals() {
        problems.push(format!(
            "globals: {} in the snapshot, the module has {}",
            s.globals.len(),
            info.num_globals()
        ));
    }
    for (i, g) in s.globals.iter().enumerate() {
        if let Some(t) = info.global_type(i as u32) {
            if g.ty() != t.ty {
                problems.push(format!("global {i}: {g}, expected type {}", t.ty));
            } else if bad_ref(g) {
                problems.push(format!(
                    "global {i}: {g}, the module has {nfuncs} functions"
                ));
            }
        }
    }

    if s.tables.len() != info.num_tables() {
        problems.push(format!(
            "tables: {} in the snapshot, the module has {}",
            s.tables.len(),
            info.num_tables()
        ));
    }
    for (i, t) in s.tables.iter().enumerate() {
        let Some(tt) = (i as u32)
            .checked_sub(info.num_imported_tables)
            .and_then(|d| info.tables.get(d as usize))
        else {
            continue; // imported table (type not recorded) or extra table (reported above)
        };
        let size = t.len() as u64;
        if size < tt.limits.min || tt.limits.max.is_some_and(|max| size > max) {
            problems.push(format!(
                "table {i}: {size} elements, expected between {} and {}",
                tt.limits.min,
                tt.limits
                    .max
                    .map_or("no maximum".to_string(), |x| x.to_string())
            ));
        }
        if let Some((j, v)) = t.iter().enumerate().find(|(_, v)| v.ty() != tt.elem) {
            problems.push(format!(
                "table {i}: element {j} is {v}, expected type {}",
                tt.elem
            ));
        }
        if let Some((j, v)) = t.iter().enumerate().find(|(_, v)| bad_ref(v)) {
            problems.push(format!(
                "table {i}: element {j} is {v}, the module has {nfuncs} functions"
            ));
        }
    }

    match (&s.memory, info.has_memory()) {
        (None, true) => problems.push("memory: missing, the module has a memory".to_string()),
        (Some(_), false) => problems.push("memory: present, the module has no memory".to_string()),
        (Some(mem), true) => {
            if let Some(l) = info.memories.first() {
                let pages = mem.pages as u64;
                if pages < l.min || l.max.is_some_and(|max| pages > max) {
                    problems.push(format!(
                        "memory: {pages} pages, the module allows {} to {}",
                        l.min,
                        l.max.map_or("no maximum".to_string(), |x| x.to_string())
                    ));
                }
                if mem.max.map(u64::from) != l.max {
                    problems.push(format!(
                        "memory: maximum {}, the module declares {}",
                        mem.max.map_or("none".to_string(), |x| x.to_string()),
                        l.max.map_or("none".to_string(), |x| x.to_string())
                    ));
                }
            }
        }
        (None, false) => {}
    }

    if s.data_dropped.len() != info.datas.len() {
        problems.push(format!(
            "data segments: {} drop flags, the module has {} segments",
            s.data_dropped.len(),
            info.datas.len()
        ));
    }
    if s.elem_dropped.len() != info.elems.len() {
        problems.push(format!(
            "element segments: {} drop flags, the module has {} segments",
            s.elem_dropped.len(),
            info.elems.len()
        ));
    }

    // The WASI fd table: what a restore reopens.
    let w = &s.wasi;
    let mut seen = BTreeSet::new();
    for e in &w.fds {
        let at = format!("wasi fd {} ({:?} `{}`)", e.fd, e.kind, e.rel_path);
        if !seen.insert(e.fd) {
            problems.push(format!("{at}: fd {} is listed twice", e.fd));
        }
        if matches!(e.kind, FdKind::File | FdKind::Directory) {
            match e.preopen {
                None => problems.push(format!("{at}: belongs to no preopened directory")),
                Some(p) if p as usize >= w.preopens.len() => problems.push(format!(
                    "{at}: refers to preopen #{p}, the snapshot lists {}",
                    w.preopens.len()
                )),
                Some(_) => {}
            }
            if leaves_preopen(&e.rel_path) {
                problems.push(format!("{at}: the path leaves its preopened directory"));
            }
        }
        if e.is_preopen && (e.kind != FdKind::Directory || !e.rel_path.is_empty()) {
            problems.push(format!(
                "{at}: a preopen must be the preopened directory itself"
            ));
        }
    }
    problems
}
