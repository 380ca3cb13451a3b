//! `wanco-snap verify`: is a snapshot intact, and does it fit its module?

use super::common::{kind_name, read_module, read_snapshot, Module};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;
use wanco_state::snapshot::{FrameKind, Snapshot};
use wanco_state::{ValType, Value};
use wasmparser::{Operator, Parser, Payload};

/// Check a snapshot: integrity (magic, version, length, checksum, body) and,
/// with `--module`, identity (module hash) and structure (every frame stands
/// at a real migration point of a defined function, locals, globals, tables,
/// memory and segments fit the module).
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
}

pub fn run(o: Opts) -> Result<i32> {
    let s = read_snapshot(&o.snap)?;
    let problems = match &o.module {
        None => Vec::new(),
        Some(p) => {
            let m = read_module(p)?;
            if let Err(e) = s.check_module(&m.info.hash) {
                vec![format!("module: {} (structure not checked)", e.message)]
            } else {
                let code = CodeInfo::parse(&m.wasm)
                    .with_context(|| format!("cannot parse module `{}`", p.display()))?;
                check(&s, &m, &code)
            }
        }
    };
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

/// What verify needs to know about one defined function's code.
struct Body {
    /// Offset of the body start (after the size LEB): the `Entry` point.
    start: u32,
    /// Declared (non-parameter) locals, expanded.
    locals: Vec<Option<ValType>>,
    /// Offsets of the `loop` opcodes.
    loops: BTreeSet<u32>,
    /// Offsets of the `call` / `call_indirect` opcodes.
    calls: BTreeSet<u32>,
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
        W::FUNCREF => Some(ValType::FuncRef),
        W::EXTERNREF => Some(ValType::ExternRef),
        _ => None,
    }
}

impl CodeInfo {
    fn parse(wasm: &[u8]) -> Result<CodeInfo> {
        let mut bodies = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::CodeSectionEntry(body) = payload? {
                let mut locals = Vec::new();
                for l in body.get_locals_reader()? {
                    let (n, t) = l?;
                    // A body cannot declare more locals than it has bytes
                    // for in a valid module; cap to stay safe on huge counts.
                    locals.extend(std::iter::repeat_n(val_type(t), n.min(1 << 20) as usize));
                }
                let mut loops = BTreeSet::new();
                let mut calls = BTreeSet::new();
                let mut ops = body.get_operators_reader()?;
                while !ops.eof() {
                    let (op, off) = ops.read_with_offset()?;
                    match op {
                        Operator::Loop { .. } => {
                            loops.insert(off as u32);
                        }
                        Operator::Call { .. } | Operator::CallIndirect { .. } => {
                            calls.insert(off as u32);
                        }
                        _ => {}
                    }
                }
                bodies.push(Body {
                    start: body.range().start as u32,
                    locals,
                    loops,
                    calls,
                });
            }
        }
        Ok(CodeInfo { bodies })
    }
}

fn type_name(t: Option<ValType>) -> String {
    t.map_or("(unsupported type)".to_string(), |t| t.to_string())
}

fn check(s: &Snapshot, m: &Module, code: &CodeInfo) -> Vec<String> {
    let info = &m.info;
    let mut problems = Vec::new();
    let n = s.frames.len();
    if n == 0 {
        problems.push("frames: the snapshot has no frames".to_string());
    }
    for (i, f) in s.frames.iter().enumerate() {
        let name = info
            .func_name(f.func)
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default();
        let at = format!(
            "frame {i} (func {}{name}, {} at 0x{:x})",
            f.func,
            kind_name(f.kind),
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
                "{at}: the module has no function {} (it has {})",
                f.func,
                info.funcs.len()
            ));
            continue;
        };
        let ok = match f.kind {
            FrameKind::Entry => f.code_offset == body.start,
            FrameKind::Loop => body.loops.contains(&f.code_offset),
            FrameKind::Call => body.calls.contains(&f.code_offset),
        };
        if !ok {
            let expected = match f.kind {
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
            }
        }
        if f.kind == FrameKind::Entry && !f.stack.is_empty() {
            problems.push(format!(
                "{at}: operand stack has {} values at function entry, expected none",
                f.stack.len()
            ));
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
        let nfuncs = info.funcs.len() as u32;
        if let Some((j, v)) = t
            .iter()
            .enumerate()
            .find(|(_, v)| matches!(v, Value::FuncRef(Some(f)) if *f >= nfuncs))
        {
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
    problems
}
