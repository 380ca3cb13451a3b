//! Typed WebAssembly values (Wasm 2.0 without SIMD).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A WebAssembly value type (no `v128`: SIMD is not supported).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// Nullable function reference.
    FuncRef,
    /// Nullable external reference.
    ExternRef,
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
        })
    }
}

/// A typed WebAssembly value. Floats are kept as raw bits so NaN payloads
/// survive every round trip exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    /// `i32` value.
    I32(i32),
    /// `i64` value.
    I64(i64),
    /// `f32` value as IEEE bits.
    F32(u32),
    /// `f64` value as IEEE bits.
    F64(u64),
    /// `funcref`: `None` is null, otherwise a function index of the owning module.
    FuncRef(Option<u32>),
    /// `externref`: `None` is null, otherwise an opaque host value.
    ExternRef(Option<u64>),
}

impl Value {
    /// The bits of a number as a native register or stack slot holds them
    /// (`i32`/`f32` zero-extended to 64 bits); `None` for references.
    pub fn raw_bits(&self) -> Option<u64> {
        match *self {
            Value::I32(v) => Some(u64::from(v as u32)),
            Value::I64(v) => Some(v as u64),
            Value::F32(b) => Some(u64::from(b)),
            Value::F64(b) => Some(b),
            Value::FuncRef(_) | Value::ExternRef(_) => None,
        }
    }

    /// The type of this value.
    pub fn ty(&self) -> ValType {
        match self {
            Value::I32(_) => ValType::I32,
            Value::I64(_) => ValType::I64,
            Value::F32(_) => ValType::F32,
            Value::F64(_) => ValType::F64,
            Value::FuncRef(_) => ValType::FuncRef,
            Value::ExternRef(_) => ValType::ExternRef,
        }
    }

    /// The zero / null value of a type (the initial value of a local).
    pub fn default_of(ty: ValType) -> Value {
        match ty {
            ValType::I32 => Value::I32(0),
            ValType::I64 => Value::I64(0),
            ValType::F32 => Value::F32(0),
            ValType::F64 => Value::F64(0),
            ValType::FuncRef => Value::FuncRef(None),
            ValType::ExternRef => Value::ExternRef(None),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::I32(v) => write!(f, "i32:{v}"),
            Value::I64(v) => write!(f, "i64:{v}"),
            Value::F32(b) => write!(f, "f32:{} (0x{b:08x})", f32::from_bits(*b)),
            Value::F64(b) => write!(f, "f64:{} (0x{b:016x})", f64::from_bits(*b)),
            Value::FuncRef(None) => f.write_str("funcref:null"),
            Value::FuncRef(Some(i)) => write!(f, "funcref:{i}"),
            Value::ExternRef(None) => f.write_str("externref:null"),
            Value::ExternRef(Some(v)) => write!(f, "externref:{v}"),
        }
    }
}
