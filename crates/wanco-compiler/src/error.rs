//! Compile errors.

use std::fmt;

/// Why a module could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// The input is not a valid WebAssembly module (or uses a feature wanco
    /// does not support). `offset` is the byte offset in the module.
    Invalid {
        /// What is wrong, in the validator's words.
        message: String,
        /// Byte offset in the module where the problem was found.
        offset: u64,
    },
    /// The text format input could not be parsed.
    Text(String),
    /// The module is valid but uses something wanco does not implement.
    Unsupported {
        /// What is not supported.
        what: String,
        /// Byte offset in the module.
        offset: u64,
    },
    /// LLVM rejected the generated code or could not emit it (a compiler bug).
    Llvm(String),
    /// Linking the executable failed.
    Link(String),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Invalid { message, offset } => {
                write!(f, "invalid module: {message} (at offset 0x{offset:x})")
            }
            CompileError::Text(m) => write!(f, "cannot parse text module: {m}"),
            CompileError::Unsupported { what, offset } => {
                write!(f, "unsupported: {what} (at offset 0x{offset:x})")
            }
            CompileError::Llvm(m) => write!(f, "internal compiler error (LLVM): {m}"),
            CompileError::Link(m) => write!(f, "link failed: {m}"),
        }
    }
}

impl std::error::Error for CompileError {}

impl From<wasmparser::BinaryReaderError> for CompileError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        CompileError::Invalid { message: e.message().to_string(), offset: e.offset() }
    }
}

impl From<inkwell::builder::BuilderError> for CompileError {
    fn from(e: inkwell::builder::BuilderError) -> Self {
        CompileError::Llvm(e.to_string())
    }
}

/// Result alias for the compiler.
pub type Result<T> = std::result::Result<T, CompileError>;
