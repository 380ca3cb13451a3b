//! Driver for spec-suite bundles: many compiled modules linked into one
//! executable, steered over stdin/stdout by the spec runner (`wanco-spec`).
//!
//! One request per line, one response line each. Names are `x` followed by their bytes in hex.
//!
//! | request | response |
//! |---|---|
//! | `inst MODULE ID` | `ok` / `unlinkable MSG` / `trap MSG` / `error MSG` |
//! | `reg NAMEHEX ID` | `ok` |
//! | `invoke ID NAMEHEX ARGS..` | `ok RESULTS..` / `trap MSG` / `error MSG` |
//! | `get ID NAMEHEX` | `ok VALUE` / `error MSG` |
//!
//! Values: `i32:U32` `i64:U64` `f32:BITS` `f64:BITS` `v128:U128` (decimal; a
//! v128 as `wanco_state::Value::V128` holds it), `funcref:null`,
//! `funcref:ref`, `externref:null`, `externref:N`.

use crate::instance::{type_id, Descriptor, Extern, HostFunc, InstantiateError, Instance};
use crate::memory::Memory;
use crate::signals;
use crate::table::Table;
use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::io::{BufRead, Write};
use wanco_state::module::{FuncType, GlobalType, Limits, TableType};
use wanco_state::ValType;

fn unhex(s: &str) -> Option<String> {
    // `x` prefix so that the empty name is a token too.
    let s = s.strip_prefix('x')?;
    if s.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

/// The value and its type (a v128 fills two slots, others one: the low 64 bits).
fn parse_value(s: &str) -> Option<(ValType, u128)> {
    let (ty, v) = s.split_once(':')?;
    Some(match (ty, v) {
        ("i32", v) => (ValType::I32, v.parse::<u32>().ok()? as u128),
        ("i64", v) => (ValType::I64, v.parse::<u64>().ok()? as u128),
        ("f64", v) => (ValType::F64, v.parse::<u64>().ok()? as u128),
        ("f32", v) => (ValType::F32, v.parse::<u32>().ok()? as u128),
        ("v128", v) => (ValType::V128, v.parse::<u128>().ok()?),
        ("funcref", "null") => (ValType::FuncRef, 0),
        ("externref", "null") => (ValType::ExternRef, 0),
        ("externref", n) => (ValType::ExternRef, n.parse::<u64>().ok()? as u128 + 1),
        _ => return None,
    })
}

fn format_value(ty: ValType, v: u128) -> String {
    let v128 = v;
    let v = v as u64;
    match ty {
        ValType::I32 => format!("i32:{}", v as u32),
        ValType::I64 => format!("i64:{v}"),
        ValType::F32 => format!("f32:{}", v as u32),
        ValType::F64 => format!("f64:{v}"),
        ValType::V128 => format!("v128:{v128}"),
        ValType::FuncRef => if v == 0 { "funcref:null".into() } else { "funcref:ref".into() },
        ValType::ExternRef => if v == 0 { "externref:null".into() } else { format!("externref:{}", v - 1) },
    }
}

unsafe fn spectest_print(_ctx: *mut c_void, _inst: &mut Instance, _vals: &mut [u64]) {}

struct Driver {
    descs: Vec<&'static Descriptor>,
    instances: HashMap<String, Box<Instance>>,
    registered: HashMap<String, HashMap<String, Extern>>,
}

impl Driver {
    fn new(descs: Vec<&'static Descriptor>) -> Driver {
        let mut d = Driver { descs, instances: HashMap::new(), registered: HashMap::new() };
        d.registered.insert("spectest".into(), spectest());
        d
    }

    fn handle(&mut self, line: &str) -> String {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["inst", m, id] => {
                let Some(desc) = m.parse::<usize>().ok().and_then(|m| self.descs.get(m).copied()) else {
                    return "error no such module".into();
                };
                let registered = &self.registered;
                let r = Instance::new(desc, &mut |imp| registered.get(&imp.module)?.get(&imp.name).copied());
                match r {
                    Ok(inst) => {
                        self.instances.insert(id.to_string(), inst);
                        "ok".into()
                    }
                    Err(InstantiateError::Unlinkable(m)) => format!("unlinkable {m}"),
                    Err(InstantiateError::Trap(c)) => format!("trap {}", c.message()),
                    Err(InstantiateError::Other(m)) => format!("error {m}"),
                }
            }
            ["reg", name, id] => {
                let (Some(name), Some(inst)) = (unhex(name), self.instances.get(*id)) else {
                    return "error bad reg".into();
                };
                let exports = inst.exports().keys().filter_map(|n| Some((n.clone(), inst.export(n)?))).collect();
                self.registered.insert(name, exports);
                "ok".into()
            }
            ["invoke", id, name, args @ ..] => {
                let Some(name) = unhex(name) else { return "error bad name".into() };
                let Some(inst) = self.instances.get_mut(*id) else { return "error no such instance".into() };
                let Some(f) = inst.export_func(&name) else { return format!("error no function export {name}") };
                let ft = inst.info.func_type(f).cloned().unwrap_or(FuncType { params: vec![], results: vec![] });
                let (pat, pn) = wanco_state::abi::slot_layout(&ft.params);
                let (rat, rn) = wanco_state::abi::slot_layout(&ft.results);
                let mut vals = vec![0u64; pn.max(rn).max(1)];
                if args.len() != ft.params.len() {
                    return "error wrong argument count".into();
                }
                for (i, a) in args.iter().enumerate() {
                    match parse_value(a) {
                        Some((t, v)) if (t == ValType::V128) == (ft.params[i] == ValType::V128) => {
                            vals[pat[i]] = v as u64;
                            if t == ValType::V128 {
                                vals[pat[i] + 1] = (v >> 64) as u64;
                            }
                        }
                        _ => return format!("error bad value {a}"),
                    }
                }
                let p: *mut Instance = &mut **inst;
                let r = signals::catch_traps(&mut || {
                    // SAFETY: the instance is boxed and alive; no Rust borrow of
                    // it is held while Wasm code runs.
                    unsafe { (*p).call(f, &mut vals) }
                });
                match r {
                    Ok(()) => {
                        let mut s = String::from("ok");
                        for (i, t) in ft.results.iter().enumerate() {
                            s.push(' ');
                            let lo = vals[rat[i]] as u128;
                            let v = if *t == ValType::V128 { lo | (vals[rat[i] + 1] as u128) << 64 } else { lo };
                            s.push_str(&format_value(*t, v));
                        }
                        s
                    }
                    Err(c) => format!("trap {}", c.message()),
                }
            }
            ["get", id, name] => {
                let Some(name) = unhex(name) else { return "error bad name".into() };
                let Some(inst) = self.instances.get(*id) else { return "error no such instance".into() };
                match inst.export(&name) {
                    // SAFETY: global cells live as long as their instances.
                    Some(Extern::Global(cell, gt)) => {
                        // SAFETY: as above; a v128 global's cell has 16 bytes.
                        let v = unsafe { if gt.ty == ValType::V128 { (cell as *const u128).read_unaligned() } else { *cell as u128 } };
                        format!("ok {}", format_value(gt.ty, v))
                    }
                    _ => format!("error no global export {name}"),
                }
            }
            _ => format!("error unknown request `{line}`"),
        }
    }
}

fn spectest() -> HashMap<String, Extern> {
    let mut m = HashMap::new();
    let host = |params: Vec<ValType>| {
        Extern::Host(HostFunc {
            type_id: type_id(&FuncType { params: params.clone(), results: vec![] }),
            slots: params.len(),
            func: spectest_print,
            ctx: std::ptr::null_mut(),
        })
    };
    use ValType::*;
    m.insert("print".into(), host(vec![]));
    m.insert("print_i32".into(), host(vec![I32]));
    m.insert("print_i64".into(), host(vec![I64]));
    m.insert("print_f32".into(), host(vec![F32]));
    m.insert("print_f64".into(), host(vec![F64]));
    m.insert("print_i32_f32".into(), host(vec![I32, F32]));
    m.insert("print_f64_f64".into(), host(vec![F64, F64]));
    let global = |ty: ValType, v: u64| {
        let cell = Box::leak(Box::new(v));
        Extern::Global(cell, GlobalType { ty, mutable: false })
    };
    m.insert("global_i32".into(), global(I32, 666));
    m.insert("global_i64".into(), global(I64, 666));
    m.insert("global_f32".into(), global(F32, 666.6f32.to_bits() as u64));
    m.insert("global_f64".into(), global(F64, 666.6f64.to_bits()));
    let table = Box::leak(Table::new(TableType { elem: FuncRef, limits: Limits { min: 10, max: Some(20) } }));
    m.insert("table".into(), Extern::Table(table));
    match Memory::new(1, Some(2)) {
        Ok(mem) => {
            m.insert("memory".into(), Extern::Memory(Box::leak(mem)));
        }
        Err(e) => eprintln!("spectest memory: {}", e.0),
    }
    m
}

/// Entry of a spec-suite bundle.
///
/// # Safety
/// `descs` must point to `n` descriptors emitted by the compiler.
#[no_mangle]
pub unsafe extern "C" fn wanco_spec_main(_argc: i32, _argv: *const *const c_char, descs: *const &'static Descriptor, n: u64) -> i32 {
    // SAFETY: guaranteed by the caller (the generated main).
    let descs: Vec<&'static Descriptor> = unsafe { std::slice::from_raw_parts(descs, n as usize) }.to_vec();
    crate::cpu::require_baseline();
    for d in &descs {
        if let Ok(info) = Instance::module_info(d) {
            crate::memory::require_guard(info.memory_guard_bytes);
        }
    }
    signals::run_on_wasm_stack(crate::program::WASM_STACK, move || {
        let mut driver = Driver::new(descs);
        let stdin = std::io::stdin();
        let mut out = std::io::stdout().lock();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let resp = driver.handle(line.trim());
            let _ = writeln!(out, "{resp}");
            let _ = out.flush();
        }
        0
    })
}
