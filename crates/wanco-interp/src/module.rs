//! Decoding, validation and translation of a module.

use crate::compile::{conv_valtype, translate};
use crate::error::Error;
use crate::instr::FuncCode;
use std::sync::Arc;
use wanco_state::module::{
    module_hash, ConstExpr, DataMode, DataSegment, ElemMode, ElemSegment, Export, ExportKind,
    FuncType, Global, GlobalType, Import, ImportKind, Limits, ModuleInfo, TableType,
};
use wanco_state::ValType;
use wasmparser::{
    ElementItems, ElementKind, ExternalKind, KnownCustom, Name, Operator, Parser, Payload, TypeRef,
    ValidPayload, Validator, WasmFeatures,
};

/// Which version of the core specification a module is checked against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WasmVersion {
    /// WebAssembly 1.0: the MVP plus mutable-global import/export.
    V1,
    /// WebAssembly 2.0: adds sign-extension, non-trapping float-to-int,
    /// multi-value, bulk memory, reference types and 128-bit SIMD.
    #[default]
    V2,
}

impl WasmVersion {
    /// The wasmparser feature set of this version.
    pub fn features(self) -> WasmFeatures {
        match self {
            WasmVersion::V1 => WasmFeatures::WASM1,
            WasmVersion::V2 => WasmFeatures::WASM2,
        }
    }
}

/// A decoded, validated and translated module, ready to be instantiated
/// (any number of times, in any [`crate::Store`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

#[derive(Debug)]
pub(crate) struct ModuleInner {
    pub info: ModuleInfo,
    /// Translated bodies of the defined functions.
    pub code: Vec<FuncCode>,
}

impl ModuleInner {
}

impl Module {
    /// Decode, validate (WebAssembly 2.0) and translate a module.
    pub fn new(bytes: &[u8]) -> Result<Module, Error> {
        Module::with_version(bytes, WasmVersion::V2)
    }

    /// Like [`Module::new`], checking against the given spec version.
    pub fn with_version(bytes: &[u8], version: WasmVersion) -> Result<Module, Error> {
        let (info, code) = load(bytes, version.features())?;
        Ok(Module {
            inner: Arc::new(ModuleInner { info, code }),
        })
    }

    /// Check a module without keeping the result.
    pub fn validate(bytes: &[u8], version: WasmVersion) -> Result<(), Error> {
        Module::with_version(bytes, version).map(|_| ())
    }

    /// Everything known about the module except its code (imports, exports,
    /// segments, ...), in the shared metadata format.
    pub fn info(&self) -> &ModuleInfo {
        &self.inner.info
    }

    /// Code offset of the function-entry migration point of function
    /// `func_index` (the byte offset of its body, just after the body size),
    /// or `None` for an imported or unknown function, or one without an
    /// entry point (no `loop` and no call in its body).
    pub fn func_entry_offset(&self, func_index: u32) -> Option<u32> {
        let def = func_index.checked_sub(self.inner.info.num_imported_funcs)?;
        self.inner
            .code
            .get(def as usize)
            .filter(|c| c.has_entry_point)
            .map(|c| c.body_offset)
    }

    /// Code offsets of the loop-header migration points of function
    /// `func_index` (byte offsets of its `loop` opcodes), in code order.
    pub fn loop_offsets(&self, func_index: u32) -> Vec<u32> {
        let Some(def) = func_index.checked_sub(self.inner.info.num_imported_funcs) else {
            return Vec::new();
        };
        self.inner
            .code
            .get(def as usize)
            .map(|c| c.loops.iter().map(|p| p.offset).collect())
            .unwrap_or_default()
    }
}

fn const_expr(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, Error> {
    let mut r = expr.get_operators_reader();
    let start = r.original_position() as usize;
    let op = r.read()?;
    let c = match op {
        Operator::I32Const { value } => ConstExpr::I32(value),
        Operator::I64Const { value } => ConstExpr::I64(value),
        Operator::F32Const { value } => ConstExpr::F32(value.bits()),
        Operator::F64Const { value } => ConstExpr::F64(value.bits()),
        Operator::RefNull { hty } => {
            let ty = match hty {
                wasmparser::HeapType::Abstract {
                    ty: wasmparser::AbstractHeapType::Extern,
                    ..
                } => ValType::ExternRef,
                _ => ValType::FuncRef,
            };
            ConstExpr::RefNull(ty)
        }
        Operator::RefFunc { function_index } => ConstExpr::RefFunc(function_index),
        Operator::GlobalGet { global_index } => ConstExpr::GlobalGet(global_index),
        Operator::V128Const { value } => ConstExpr::V128(u128::from_le_bytes(*value.bytes())),
        _ => {
            return Err(Error::new(
                start,
                "unsupported constant expression: expected a single constant, ref.null, ref.func or global.get",
            ))
        }
    };
    match r.read()? {
        Operator::End => Ok(c),
        _ => Err(Error::new(
            r.original_position() as usize,
            "unsupported constant expression: expected `end` after one instruction",
        )),
    }
}

fn limits(initial: u64, maximum: Option<u64>) -> Limits {
    Limits {
        min: initial,
        max: maximum,
    }
}

fn table_type(t: &wasmparser::TableType, offset: usize) -> Result<TableType, Error> {
    Ok(TableType {
        elem: conv_valtype(wasmparser::ValType::Ref(t.element_type), offset)?,
        limits: limits(t.initial, t.maximum),
    })
}

fn global_type(t: &wasmparser::GlobalType, offset: usize) -> Result<GlobalType, Error> {
    Ok(GlobalType {
        ty: conv_valtype(t.content_type, offset)?,
        mutable: t.mutable,
    })
}

fn load(bytes: &[u8], features: WasmFeatures) -> Result<(ModuleInfo, Vec<FuncCode>), Error> {
    let mut validator = Validator::new_with_features(features);
    let mut parser = Parser::new(0);
    parser.set_features(features);
    let mut info = ModuleInfo {
        hash: module_hash(bytes),
        ..ModuleInfo::default()
    };
    let mut code = Vec::new();
    let mut next_func = 0u32;

    for payload in parser.parse_all(bytes) {
        let payload = payload?;
        let valid = validator.payload(&payload)?;
        match &payload {
            Payload::TypeSection(r) => {
                for group in r.clone().into_iter_with_offsets() {
                    let (off, group) = group?;
                    let off = off as usize;
                    for sub in group.into_types() {
                        match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => {
                                let params = f
                                    .params()
                                    .iter()
                                    .map(|t| conv_valtype(*t, off))
                                    .collect::<Result<_, _>>()?;
                                let results = f
                                    .results()
                                    .iter()
                                    .map(|t| conv_valtype(*t, off))
                                    .collect::<Result<_, _>>()?;
                                info.types.push(FuncType { params, results });
                            }
                            _ => {
                                return Err(Error::new(
                                    off,
                                    "unsupported type: expected a function type",
                                ))
                            }
                        }
                    }
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.clone().into_imports_with_offsets() {
                    let (off, imp) = imp?;
                    let off = off as usize;
                    let kind =
                        match imp.ty {
                            TypeRef::Func(t) => {
                                info.num_imported_funcs += 1;
                                info.funcs.push(t);
                                ImportKind::Func(t)
                            }
                            TypeRef::Table(t) => {
                                info.num_imported_tables += 1;
                                ImportKind::Table(table_type(&t, off)?)
                            }
                            TypeRef::Memory(m) => {
                                info.num_imported_memories += 1;
                                ImportKind::Memory(limits(m.initial, m.maximum))
                            }
                            TypeRef::Global(g) => {
                                let gt = global_type(&g, off)?;
                                info.imported_globals.push(gt);
                                ImportKind::Global(gt)
                            }
                            _ => return Err(Error::new(
                                off,
                                "unsupported import kind: expected func, table, memory or global",
                            )),
                        };
                    info.imports.push(Import {
                        module: imp.module.to_string(),
                        name: imp.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(r) => {
                for t in r.clone() {
                    info.funcs.push(t?);
                }
            }
            Payload::TableSection(r) => {
                for t in r.clone().into_iter_with_offsets() {
                    let (off, t) = t?;
                    let off = off as usize;
                    if !matches!(t.init, wasmparser::TableInit::RefNull) {
                        return Err(Error::new(
                            off,
                            "unsupported table initialiser (function-references proposal)",
                        ));
                    }
                    info.tables.push(table_type(&t.ty, off)?);
                }
            }
            Payload::MemorySection(r) => {
                for m in r.clone() {
                    let m = m?;
                    info.memories.push(limits(m.initial, m.maximum));
                }
            }
            Payload::GlobalSection(r) => {
                for g in r.clone().into_iter_with_offsets() {
                    let (off, g) = g?;
                    let off = off as usize;
                    let init = const_expr(&g.init_expr)?;
                    info.globals.push(Global {
                        ty: global_type(&g.ty, off)?,
                        init,
                    });
                }
            }
            Payload::ExportSection(r) => {
                for e in r.clone() {
                    let e = e?;
                    let kind = match e.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
                        ExternalKind::Table => ExportKind::Table,
                        ExternalKind::Memory => ExportKind::Memory,
                        ExternalKind::Global => ExportKind::Global,
                        ExternalKind::Tag => {
                            return Err(Error::new(0, "unsupported export kind: tag"))
                        }
                    };
                    info.exports.push(Export {
                        name: e.name.to_string(),
                        kind,
                        index: e.index,
                    });
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(*func),
            Payload::ElementSection(r) => {
                for e in r.clone() {
                    let e = e?;
                    let off = e.range.start as usize;
                    let mode = match &e.kind {
                        ElementKind::Passive => ElemMode::Passive,
                        ElementKind::Declared => ElemMode::Declared,
                        ElementKind::Active {
                            table_index,
                            offset_expr,
                        } => ElemMode::Active {
                            table: table_index.unwrap_or(0),
                            offset: const_expr(offset_expr)?,
                        },
                    };
                    let (ty, items) = match &e.items {
                        ElementItems::Functions(r) => {
                            let mut items = Vec::new();
                            for f in r.clone() {
                                items.push(ConstExpr::RefFunc(f?));
                            }
                            (ValType::FuncRef, items)
                        }
                        ElementItems::Expressions(rt, r) => {
                            let mut items = Vec::new();
                            for x in r.clone() {
                                items.push(const_expr(&x?)?);
                            }
                            (conv_valtype(wasmparser::ValType::Ref(*rt), off)?, items)
                        }
                    };
                    info.elems.push(ElemSegment { mode, ty, items });
                }
            }
            Payload::DataSection(r) => {
                for d in r.clone() {
                    let d = d?;
                    let mode = match &d.kind {
                        wasmparser::DataKind::Passive => DataMode::Passive,
                        wasmparser::DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => DataMode::Active {
                            memory: *memory_index,
                            offset: const_expr(offset_expr)?,
                        },
                    };
                    info.datas.push(DataSegment {
                        mode,
                        bytes: d.data.to_vec().into(),
                    });
                }
            }
            Payload::CustomSection(c) => {
                if let KnownCustom::Name(names) = c.as_known() {
                    // A malformed name section is not an error (it is custom).
                    for n in names.into_iter().flatten() {
                        if let Name::Function(map) = n {
                            for naming in map.into_iter().flatten() {
                                info.func_names
                                    .push((naming.index, naming.name.to_string().into()));
                            }
                        }
                    }
                    info.func_names.sort_by_key(|(i, _)| *i);
                    info.func_names.dedup_by_key(|(i, _)| *i);
                }
            }
            _ => {}
        }
        if let ValidPayload::Func(func, body) = valid {
            let index = info.num_imported_funcs + next_func;
            next_func += 1;
            let v = func.into_validator(Default::default());
            code.push(translate(&info, index, &body, v)?);
        }
    }
    Ok((info, code))
}
