//! Decode and validate a module; collect [`ModuleInfo`] and function bodies.

use crate::error::{CompileError, Result};
use wanco_state::module::*;
use wanco_state::ValType;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// The Wasm features wanco compiles: Wasm 2.0, including 128-bit SIMD
/// (relaxed SIMD and later proposals are refused).
pub fn features() -> WasmFeatures {
    WasmFeatures::WASM2
}

/// A function body to compile.
pub struct Body<'a> {
    /// Function index (in the full index space, imports first).
    pub func_index: u32,
    /// The body as wasmparser gives it.
    pub body: wasmparser::FunctionBody<'a>,
    /// A validator for the body, taken by code generation when it needs the
    /// types of the operand stack (migration points).
    pub validator: std::cell::RefCell<Option<wasmparser::FuncToValidate<wasmparser::ValidatorResources>>>,
}

/// A decoded, validated module.
pub struct Decoded<'a> {
    /// Metadata for the runtime.
    pub info: ModuleInfo,
    /// Defined function bodies in order.
    pub bodies: Vec<Body<'a>>,
}

/// Validate `wasm` with wanco's feature set.
pub fn validate(wasm: &[u8]) -> Result<()> {
    let mut v = Validator::new_with_features(features());
    v.validate_all(wasm).map(|_| ()).map_err(|e| {
        // A module that is valid with every proposal wasmparser knows uses
        // one wanco does not support: say so rather than "invalid" (the
        // validator's words for some proposals, such as exception handling's
        // `exnref`, do not name a disabled feature).
        let msg = e.message().to_string();
        let valid_with_all = || Validator::new_with_features(WasmFeatures::all()).validate_all(wasm).is_ok();
        if msg.contains("support is not enabled") || msg.contains("proposal not enabled") || valid_with_all() {
            CompileError::Unsupported {
                what: format!("{msg} — wanco supports WebAssembly 2.0 (with 128-bit SIMD, without relaxed SIMD or later proposals)"),
                offset: e.offset(),
            }
        } else {
            CompileError::from(e)
        }
    })
}

pub(crate) fn val_type(t: wasmparser::ValType, offset: u64) -> Result<ValType> {
    use wasmparser::ValType as W;
    Ok(match t {
        W::I32 => ValType::I32,
        W::I64 => ValType::I64,
        W::F32 => ValType::F32,
        W::F64 => ValType::F64,
        W::V128 => ValType::V128,
        W::Ref(r) if r == wasmparser::RefType::FUNCREF => ValType::FuncRef,
        W::Ref(r) if r == wasmparser::RefType::EXTERNREF => ValType::ExternRef,
        other => {
            return Err(CompileError::Unsupported { what: format!("value type {other}"), offset })
        }
    })
}

fn ref_type(t: wasmparser::RefType, offset: u64) -> Result<ValType> {
    val_type(wasmparser::ValType::Ref(t), offset)
}

fn const_expr(e: &wasmparser::ConstExpr, offset: u64) -> Result<ConstExpr> {
    use wasmparser::Operator as O;
    let mut r = e.get_operators_reader();
    let op = r.read()?;
    let v = match op {
        O::I32Const { value } => ConstExpr::I32(value),
        O::I64Const { value } => ConstExpr::I64(value),
        O::F32Const { value } => ConstExpr::F32(value.bits()),
        O::F64Const { value } => ConstExpr::F64(value.bits()),
        O::RefNull { hty } => ConstExpr::RefNull(match hty {
            wasmparser::HeapType::Abstract { ty: wasmparser::AbstractHeapType::Func, .. } => {
                ValType::FuncRef
            }
            _ => ValType::ExternRef,
        }),
        O::RefFunc { function_index } => ConstExpr::RefFunc(function_index),
        O::GlobalGet { global_index } => ConstExpr::GlobalGet(global_index),
        O::V128Const { value } => ConstExpr::V128(u128::from_le_bytes(*value.bytes())),
        other => {
            return Err(CompileError::Unsupported {
                what: format!("constant expression {other:?}"),
                offset,
            })
        }
    };
    match r.read()? {
        O::End => Ok(v),
        _ => Err(CompileError::Unsupported {
            what: "extended constant expressions".into(),
            offset,
        }),
    }
}

fn limits(initial: u64, maximum: Option<u64>) -> Limits {
    Limits { min: initial, max: maximum }
}

/// Decode and validate.
pub fn decode(wasm: &[u8]) -> Result<Decoded<'_>> {
    validate(wasm)?;
    let mut info = ModuleInfo { hash: module_hash(wasm), ..Default::default() };
    let mut bodies = Vec::new();
    let mut max_offset: u64 = 0;
    // A second validator only to hand out per-function validators (their
    // operand-stack types describe migration points); errors were reported
    // by `validate` above.
    let mut typer = Validator::new_with_features(features());
    let mut func_validators = std::collections::VecDeque::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        if let Ok(wasmparser::ValidPayload::Func(f, _)) = typer.payload(&payload) {
            func_validators.push_back(f);
        }
        match payload {
            Payload::TypeSection(r) => {
                let off = r.range().start;
                for ft in r.into_iter_err_on_gc_types() {
                    let ft = ft?;
                    info.types.push(FuncType {
                        params: ft.params().iter().map(|t| val_type(*t, off)).collect::<Result<_>>()?,
                        results: ft
                            .results()
                            .iter()
                            .map(|t| val_type(*t, off))
                            .collect::<Result<_>>()?,
                    });
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.into_imports_with_offsets() {
                    let (off, imp) = imp?;
                    
                    let kind = match imp.ty {
                        wasmparser::TypeRef::Func(t) | wasmparser::TypeRef::FuncExact(t) => {
                            info.funcs.push(t);
                            info.num_imported_funcs += 1;
                            ImportKind::Func(t)
                        }
                        wasmparser::TypeRef::Table(t) => {
                            info.num_imported_tables += 1;
                            ImportKind::Table(TableType {
                                elem: ref_type(t.element_type, off)?,
                                limits: limits(t.initial, t.maximum),
                            })
                        }
                        wasmparser::TypeRef::Memory(m) => {
                            info.num_imported_memories += 1;
                            ImportKind::Memory(limits(m.initial, m.maximum))
                        }
                        wasmparser::TypeRef::Global(g) => {
                            let gt =
                                GlobalType { ty: val_type(g.content_type, off)?, mutable: g.mutable };
                            info.imported_globals.push(gt);
                            ImportKind::Global(gt)
                        }
                        wasmparser::TypeRef::Tag(_) => {
                            return Err(CompileError::Unsupported {
                                what: "exception tags".into(),
                                offset: off,
                            })
                        }
                    };
                    info.imports.push(Import {
                        module: imp.module.to_string(),
                        name: imp.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(r) => {
                for t in r {
                    info.funcs.push(t?);
                }
            }
            Payload::TableSection(r) => {
                let off = r.range().start;
                for t in r {
                    let t = t?;
                    if !matches!(t.init, wasmparser::TableInit::RefNull) {
                        return Err(CompileError::Unsupported {
                            what: "table initialiser expressions".into(),
                            offset: off,
                        });
                    }
                    info.tables.push(TableType {
                        elem: ref_type(t.ty.element_type, off)?,
                        limits: limits(t.ty.initial, t.ty.maximum),
                    });
                }
            }
            Payload::MemorySection(r) => {
                for m in r {
                    let m = m?;
                    info.memories.push(limits(m.initial, m.maximum));
                }
            }
            Payload::GlobalSection(r) => {
                let off = r.range().start;
                for g in r {
                    let g = g?;
                    let init = const_expr(&g.init_expr, off)?;
                    info.globals.push(Global {
                        ty: GlobalType { ty: val_type(g.ty.content_type, off)?, mutable: g.ty.mutable },
                        init,
                    });
                }
            }
            Payload::ExportSection(r) => {
                let section_offset = r.range().start;
                for e in r {
                    let e = e?;
                    let kind = match e.kind {
                        wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => {
                            ExportKind::Func
                        }
                        wasmparser::ExternalKind::Table => ExportKind::Table,
                        wasmparser::ExternalKind::Memory => ExportKind::Memory,
                        wasmparser::ExternalKind::Global => ExportKind::Global,
                        wasmparser::ExternalKind::Tag => {
                            return Err(CompileError::Unsupported {
                                what: "exception tags".into(),
                                offset: section_offset,
                            })
                        }
                    };
                    info.exports.push(Export { name: e.name.to_string(), kind, index: e.index });
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(func),
            Payload::ElementSection(r) => {
                for el in r {
                    let el = el?;
                    let off = el.range.start;
                    let mode = match el.kind {
                        wasmparser::ElementKind::Passive => ElemMode::Passive,
                        wasmparser::ElementKind::Declared => ElemMode::Declared,
                        wasmparser::ElementKind::Active { table_index, offset_expr } => {
                            ElemMode::Active {
                                table: table_index.unwrap_or(0),
                                offset: const_expr(&offset_expr, off)?,
                            }
                        }
                    };
                    let (ty, items) = match el.items {
                        wasmparser::ElementItems::Functions(fs) => (
                            ValType::FuncRef,
                            fs.into_iter()
                                .map(|f| f.map(ConstExpr::RefFunc).map_err(CompileError::from))
                                .collect::<Result<Vec<_>>>()?,
                        ),
                        wasmparser::ElementItems::Expressions(rt, es) => (
                            ref_type(rt, off)?,
                            es.into_iter()
                                .map(|e| const_expr(&e?, off))
                                .collect::<Result<Vec<_>>>()?,
                        ),
                    };
                    info.elems.push(ElemSegment { mode, ty, items });
                }
            }
            Payload::DataSection(r) => {
                for d in r {
                    let d = d?;
                    let off = d.range.start;
                    let mode = match d.kind {
                        wasmparser::DataKind::Passive => DataMode::Passive,
                        wasmparser::DataKind::Active { memory_index, offset_expr } => {
                            DataMode::Active {
                                memory: memory_index,
                                offset: const_expr(&offset_expr, off)?,
                            }
                        }
                    };
                    info.datas.push(DataSegment { mode, bytes: d.data.to_vec().into() });
                }
            }
            Payload::CodeSectionEntry(body) => {
                let func_index = info.num_imported_funcs + bodies.len() as u32;
                // Largest static offset: the guard region must cover it.
                let mut ops = body.get_operators_reader()?;
                while !ops.eof() {
                    if let Some(m) = memarg(&ops.read()?) {
                        max_offset = max_offset.max(m.offset);
                    }
                }
                bodies.push(Body { func_index, body, validator: std::cell::RefCell::new(func_validators.pop_front()) });
            }
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                    for n in names.into_iter().flatten() {
                        if let wasmparser::Name::Function(map) = n {
                            for naming in map.into_iter().flatten() {
                                info.func_names.push((naming.index, naming.name.to_string().into()));
                            }
                        }
                    }
                    info.func_names.sort_by_key(|(i, _)| *i);
                    info.func_names.dedup_by_key(|(i, _)| *i);
                }
            }
            _ => {}
        }
    }
    // Offset plus the widest access (16 bytes: v128), rounded up to whole pages.
    info.memory_guard_bytes = (max_offset + 16 + 0xffff) & !0xffff;
    Ok(Decoded { info, bodies })
}

/// The memory argument of a load or store.
pub(crate) fn memarg(op: &wasmparser::Operator) -> Option<wasmparser::MemArg> {
    use wasmparser::Operator as O;
    match op {
        O::I32Load { memarg }
        | O::I64Load { memarg }
        | O::F32Load { memarg }
        | O::F64Load { memarg }
        | O::I32Load8S { memarg }
        | O::I32Load8U { memarg }
        | O::I32Load16S { memarg }
        | O::I32Load16U { memarg }
        | O::I64Load8S { memarg }
        | O::I64Load8U { memarg }
        | O::I64Load16S { memarg }
        | O::I64Load16U { memarg }
        | O::I64Load32S { memarg }
        | O::I64Load32U { memarg }
        | O::I32Store { memarg }
        | O::I64Store { memarg }
        | O::F32Store { memarg }
        | O::F64Store { memarg }
        | O::I32Store8 { memarg }
        | O::I32Store16 { memarg }
        | O::I64Store8 { memarg }
        | O::I64Store16 { memarg }
        | O::I64Store32 { memarg }
        | O::V128Load { memarg }
        | O::V128Load8x8S { memarg }
        | O::V128Load8x8U { memarg }
        | O::V128Load16x4S { memarg }
        | O::V128Load16x4U { memarg }
        | O::V128Load32x2S { memarg }
        | O::V128Load32x2U { memarg }
        | O::V128Load8Splat { memarg }
        | O::V128Load16Splat { memarg }
        | O::V128Load32Splat { memarg }
        | O::V128Load64Splat { memarg }
        | O::V128Load32Zero { memarg }
        | O::V128Load64Zero { memarg }
        | O::V128Store { memarg }
        | O::V128Load8Lane { memarg, .. }
        | O::V128Load16Lane { memarg, .. }
        | O::V128Load32Lane { memarg, .. }
        | O::V128Load64Lane { memarg, .. }
        | O::V128Store8Lane { memarg, .. }
        | O::V128Store16Lane { memarg, .. }
        | O::V128Store32Lane { memarg, .. }
        | O::V128Store64Lane { memarg, .. } => Some(*memarg),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_wat(wat: &str) -> CompileError {
        validate(&wat::parse_str(wat).expect("wat")).expect_err("must be refused")
    }

    /// A valid module of a proposal wanco lacks is "unsupported", named as
    /// such, even where the validator's words do not say "not enabled"
    /// (C++ programs built with exceptions: `exnref`).
    #[test]
    fn a_later_proposal_is_unsupported_not_invalid() {
        for wat in ["(module (func (local exnref)))", "(module (tag $e) (func (throw $e)))"] {
            match validate_wat(wat) {
                CompileError::Unsupported { what, .. } => {
                    assert!(what.contains("wanco supports WebAssembly 2.0"), "{wat}: {what}")
                }
                other => panic!("{wat}: {other:?}"),
            }
        }
    }

    /// An invalid module stays invalid.
    #[test]
    fn an_invalid_module_is_invalid() {
        let e = validate_wat("(module (func (result i32) (i64.const 0)))");
        assert!(!matches!(e, CompileError::Unsupported { .. }), "{e:?}");
    }
}
