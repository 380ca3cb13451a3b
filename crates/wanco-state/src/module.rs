//! Module metadata: what the compiler tells the runtime about a module.
//!
//! The compiler serialises a [`ModuleInfo`] (MessagePack, `rmp-serde`) into
//! every object it emits; the runtime instantiates from it. It holds everything
//! instantiation needs (imports, exports, segments, initialisers) but no code.

use crate::value::ValType;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

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
    /// `v128.const`, the value as [`crate::Value::V128`] holds it (lane 0 in
    /// the lowest bits); only a v128 global's initialiser (validation).
    V128(#[serde(with = "crate::value::v128_serde")] u128),
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
    /// Bytes (a MessagePack `bin`: decoded in one copy, not byte by byte;
    /// borrowed, not copied, by [`ModuleInfo::from_static`]).
    #[serde(with = "in_place::bytes")]
    pub bytes: Cow<'static, [u8]>,
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
    /// Function names from the name section, `(index, name)` (borrowed,
    /// not copied, by [`ModuleInfo::from_static`]).
    pub func_names: Vec<(u32, Name)>,
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
            .map(|p| &*self.func_names[p].1 .0)
    }

    /// Encode as MessagePack.
    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("ModuleInfo is always serialisable")
    }

    /// Decode from MessagePack.
    pub fn from_bytes(bytes: &[u8]) -> Result<ModuleInfo, String> {
        rmp_serde::from_slice(bytes).map_err(|e| format!("corrupt module metadata: {e}"))
    }

    /// Decode from MessagePack that lives as long as the program (a
    /// compiled module's own metadata): data segments and function names
    /// are borrowed from it, not copied (a restore, which never runs the
    /// segments, paid ~40 µs for copying 62 KB of them into fresh pages).
    pub fn from_static(bytes: &'static [u8]) -> Result<ModuleInfo, String> {
        in_place::within(bytes, || Self::from_bytes(bytes))
    }
}

/// A function name (a MessagePack string; borrowed, not copied, by
/// [`ModuleInfo::from_static`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name(#[serde(with = "in_place::string")] pub Cow<'static, str>);

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Cow::Owned(s))
    }
}

/// Byte and string fields decoded in place from a blob that lives as long
/// as the program. `serde` hands a borrowed field a slice of the input with
/// the input's lifetime, which a `ModuleInfo` cannot name; while
/// [`within`] runs, a slice that lies inside its `'static` blob is taken
/// from the blob again at the same offset (found by address), so it is
/// `'static` without any unsafe code. Anything else is copied.
mod in_place {
    use std::borrow::Cow;
    use std::cell::Cell;

    thread_local! {
        static BLOB: Cell<Option<&'static [u8]>> = const { Cell::new(None) };
    }

    /// Run `f` with `blob` as the blob fields may borrow from.
    pub(super) fn within<T>(blob: &'static [u8], f: impl FnOnce() -> T) -> T {
        struct Reset(Option<&'static [u8]>);
        impl Drop for Reset {
            fn drop(&mut self) {
                BLOB.with(|b| b.set(self.0));
            }
        }
        let _reset = Reset(BLOB.with(|b| b.replace(Some(blob))));
        f()
    }

    /// `v` as a slice of the blob, if it is one.
    fn in_blob(v: &[u8]) -> Option<&'static [u8]> {
        let blob = BLOB.with(|b| b.get())?;
        let start = (v.as_ptr() as usize).checked_sub(blob.as_ptr() as usize)?;
        blob.get(start..start.checked_add(v.len())?)
    }

    pub(super) mod bytes {
        use super::*;
        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Cow<'static, [u8]>, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'static, [u8]>, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Cow<'static, [u8]>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a byte string")
                }
                fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                    Ok(in_blob(v).map_or_else(|| Cow::Owned(v.to_vec()), Cow::Borrowed))
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                    Ok(Cow::Owned(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                    Ok(Cow::Owned(v))
                }
            }
            d.deserialize_bytes(V)
        }
    }

    pub(super) mod string {
        use super::*;
        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Cow<'static, str>, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(v)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'static, str>, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Cow<'static, str>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                    // The same bytes, so still UTF-8 (and cut at the same
                    // boundaries).
                    let borrowed = in_blob(v.as_bytes()).and_then(|b| std::str::from_utf8(b).ok());
                    Ok(borrowed.map_or_else(|| Cow::Owned(v.to_string()), Cow::Borrowed))
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(Cow::Owned(v.to_string()))
                }
                fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                    Ok(Cow::Owned(v))
                }
            }
            d.deserialize_str(V)
        }
    }
}

/// SHA-256 of a module's bytes.
pub fn module_hash(wasm: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(wasm).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_blob_lends_its_segments_and_names() {
        let info = ModuleInfo {
            datas: vec![
                DataSegment { mode: DataMode::Passive, bytes: b"hello, segment".to_vec().into() },
                DataSegment { mode: DataMode::Passive, bytes: Vec::new().into() },
            ],
            func_names: vec![(0, "main".to_string().into()), (3, "ünïcode".to_string().into())],
            ..ModuleInfo::default()
        };
        let blob: &'static [u8] = Box::leak(info.to_bytes().into_boxed_slice());
        let inside = |p: *const u8| blob.as_ptr_range().contains(&p);
        let lent = ModuleInfo::from_static(blob).unwrap();
        assert_eq!(lent, info);
        assert!(matches!(&lent.datas[0].bytes, Cow::Borrowed(b) if inside(b.as_ptr())));
        assert!(matches!(&lent.func_names[1].1 .0, Cow::Borrowed(s) if inside(s.as_ptr())));
        assert_eq!(lent.func_name(3), Some("ünïcode"));
        // Decoded from any other slice (or after `from_static` returned),
        // everything is copied.
        let copy = blob.to_vec();
        let owned = ModuleInfo::from_bytes(&copy).unwrap();
        assert_eq!(owned, info);
        assert!(matches!(owned.datas[0].bytes, Cow::Owned(_)) && matches!(owned.func_names[0].1 .0, Cow::Owned(_)));
        let again = ModuleInfo::from_bytes(blob).unwrap();
        assert!(matches!(again.datas[0].bytes, Cow::Owned(_)));
        // A corrupt blob is refused as by `from_bytes`.
        assert!(ModuleInfo::from_static(&blob[..blob.len() - 3]).unwrap_err().contains("corrupt module metadata"));
    }
}
