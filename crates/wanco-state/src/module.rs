//! Module metadata: what the compiler tells the runtime about a module.
//!
//! The compiler serialises a [`ModuleInfo`] (MessagePack, `rmp-serde`) into
//! every object it emits; the runtime instantiates from it. It holds everything
//! instantiation needs (imports, exports, segments, initialisers) but no code.

use crate::value::ValType;
use serde::{Deserialize, Serialize};

/// A function type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FuncType {
    /// Parameter types.
    pub params: Vec<ValType>,
    /// Result types.
    pub results: Vec<ValType>,
}

/// Limits of a table or memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Initial size (elements or 64 KiB pages).
    pub min: u64,
    /// Maximum size, if declared.
    pub max: Option<u64>,
}

/// A table type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableType {
    /// `FuncRef` or `ExternRef`.
    pub elem: ValType,
    /// Size limits.
    pub limits: Limits,
}

/// A global type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalType {
    /// Value type.
    pub ty: ValType,
    /// Whether `global.set` is allowed.
    pub mutable: bool,
}

/// What an import brings in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportKind {
    /// A function of the given type index.
    Func(u32),
    /// A table.
    Table(TableType),
    /// A memory.
    Memory(Limits),
    /// A global.
    Global(GlobalType),
}

/// One import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// Module name.
    pub module: String,
    /// Field name.
    pub name: String,
    /// What is imported.
    pub kind: ImportKind,
}

/// What an export refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportKind {
    /// Function index.
    Func,
    /// Table index.
    Table,
    /// Memory index.
    Memory,
    /// Global index.
    Global,
}

/// One export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Export name.
    pub name: String,
    /// Kind of the exported item.
    pub kind: ExportKind,
    /// Index in the kind's index space.
    pub index: u32,
}

/// A constant expression (Wasm 2.0 subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConstExpr {
    /// `i32.const`.
    I32(i32),
    /// `i64.const`.
    I64(i64),
    /// `f32.const`, as bits.
    F32(u32),
    /// `f64.const`, as bits.
    F64(u64),
    /// `ref.null` of the given reference type.
    RefNull(ValType),
    /// `ref.func`.
    RefFunc(u32),
    /// `global.get` of an (imported) global.
    GlobalGet(u32),
}

/// A defined global.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Global {
    /// Its type.
    pub ty: GlobalType,
    /// Initialiser.
    pub init: ConstExpr,
}

/// How a data segment is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataMode {
    /// Only by `memory.init`.
    Passive,
    /// Copied into memory at instantiation, then dropped.
    Active {
        /// Memory index.
        memory: u32,
        /// Offset expression.
        offset: ConstExpr,
    },
}

/// A data segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSegment {
    /// Mode.
    pub mode: DataMode,
    /// Bytes (a MessagePack `bin`: decoded in one copy, not byte by byte).
    #[serde(with = "crate::snapshot::bin")]
    pub bytes: Vec<u8>,
}

/// How an element segment is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElemMode {
    /// Only by `table.init`.
    Passive,
    /// Forward declaration for `ref.func`; dropped at instantiation.
    Declared,
    /// Copied into a table at instantiation, then dropped.
    Active {
        /// Table index.
        table: u32,
        /// Offset expression.
        offset: ConstExpr,
    },
}

/// An element segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElemSegment {
    /// Mode.
    pub mode: ElemMode,
    /// Element type.
    pub ty: ValType,
    /// Items (each `RefFunc`, `RefNull` or `GlobalGet`).
    pub items: Vec<ConstExpr>,
}

/// Everything the runtime needs to instantiate a compiled module.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// SHA-256 of the Wasm bytes: the module's identity in snapshots.
    pub hash: [u8; 32],
    /// All function types, by type index.
    pub types: Vec<FuncType>,
    /// Imports, in order.
    pub imports: Vec<Import>,
    /// Type index of every function (imported first).
    pub funcs: Vec<u32>,
    /// Number of imported functions.
    pub num_imported_funcs: u32,
    /// Defined tables.
    pub tables: Vec<TableType>,
    /// Number of imported tables.
    pub num_imported_tables: u32,
    /// Defined memories (at most one).
    pub memories: Vec<Limits>,
    /// Number of imported memories.
    pub num_imported_memories: u32,
    /// Types of imported globals, in order.
    pub imported_globals: Vec<GlobalType>,
    /// Defined globals.
    pub globals: Vec<Global>,
    /// Exports.
    pub exports: Vec<Export>,
    /// Start function.
    pub start: Option<u32>,
    /// Element segments.
    pub elems: Vec<ElemSegment>,
    /// Data segments.
    pub datas: Vec<DataSegment>,
    /// Bytes of inaccessible memory the compiled code relies on after the
    /// 4 GiB index space (covers the largest static offset + access size).
    pub memory_guard_bytes: u64,
    /// Function names from the name section, `(index, name)`.
    pub func_names: Vec<(u32, String)>,
}

impl ModuleInfo {
    /// Total number of globals (imported + defined).
    pub fn num_globals(&self) -> usize {
        self.imported_globals.len() + self.globals.len()
    }

    /// Total number of tables.
    pub fn num_tables(&self) -> usize {
        self.num_imported_tables as usize + self.tables.len()
    }

    /// Whether the module has a memory (imported or defined).
    pub fn has_memory(&self) -> bool {
        self.num_imported_memories > 0 || !self.memories.is_empty()
    }

    /// Type of function `index`.
    pub fn func_type(&self, index: u32) -> Option<&FuncType> {
        self.types.get(*self.funcs.get(index as usize)? as usize)
    }

    /// Type of global `index`.
    pub fn global_type(&self, index: u32) -> Option<GlobalType> {
        let i = index as usize;
        if i < self.imported_globals.len() {
            Some(self.imported_globals[i])
        } else {
            self.globals.get(i - self.imported_globals.len()).map(|g| g.ty)
        }
    }

    /// Limits of memory 0 (imported or defined), if the module has one.
    pub fn memory0(&self) -> Option<Limits> {
        self.imports
            .iter()
            .find_map(|i| match &i.kind {
                ImportKind::Memory(l) => Some(*l),
                _ => None,
            })
            .or_else(|| self.memories.first().copied())
    }

    /// Name of function `index` from the name section, if any.
    pub fn func_name(&self, index: u32) -> Option<&str> {
        self.func_names
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|p| self.func_names[p].1.as_str())
    }

    /// Encode as MessagePack.
    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("ModuleInfo is always serialisable")
    }

    /// Decode from MessagePack.
    pub fn from_bytes(bytes: &[u8]) -> Result<ModuleInfo, String> {
        rmp_serde::from_slice(bytes).map_err(|e| format!("corrupt module metadata: {e}"))
    }
}

/// SHA-256 of a module's bytes.
pub fn module_hash(wasm: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(wasm).into()
}
