//! Error types of the interpreter: decoding/validation errors, link errors,
//! traps.

use std::fmt;
use wanco_state::abi::TrapCode;

/// A module could not be decoded, validated or compiled, or a state could
/// not be used. Carries the byte offset in the module the problem was found at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Byte offset in the module binary (0 if the problem has no position).
    pub offset: usize,
    /// What went wrong, in plain words (says what was expected).
    pub message: String,
}

impl Error {
    /// A new error at `offset`.
    pub fn new(offset: usize, message: impl Into<String>) -> Error {
        Error {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at offset 0x{:x})", self.message, self.offset)
    }
}

impl std::error::Error for Error {}

impl From<wasmparser::BinaryReaderError> for Error {
    fn from(e: wasmparser::BinaryReaderError) -> Error {
        Error::new(e.offset() as usize, e.message().to_string())
    }
}

/// Why execution stopped abnormally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trap {
    /// A trap defined by the Wasm semantics (including call stack exhaustion).
    Wasm(TrapCode),
    /// The guest called WASI `proc_exit` with this code.
    Exit(u32),
    /// A host function failed (or the embedder misused the API).
    Host(String),
}

impl Trap {
    /// Whether this trap is a call-stack exhaustion.
    pub fn is_exhaustion(&self) -> bool {
        matches!(self, Trap::Wasm(TrapCode::StackExhausted))
    }

    /// The message in spec wording (for Wasm traps) or the host's message.
    pub fn message(&self) -> String {
        match self {
            Trap::Wasm(code) => code.message().to_string(),
            Trap::Exit(code) => format!("exit with code {code}"),
            Trap::Host(msg) => msg.clone(),
        }
    }
}

impl From<TrapCode> for Trap {
    fn from(code: TrapCode) -> Trap {
        Trap::Wasm(code)
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Trap {}

/// Why a module could not be instantiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstantiateError {
    /// An import is unknown or has an incompatible type ("unlinkable").
    Unlinkable(String),
    /// A trap during segment initialisation or in the start function
    /// ("uninstantiable"). Effects on shared tables and memories made before
    /// the trap remain, as Wasm 2.0 specifies.
    Trap(Trap),
}

impl fmt::Display for InstantiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstantiateError::Unlinkable(m) => write!(f, "unlinkable: {m}"),
            InstantiateError::Trap(t) => write!(f, "uninstantiable: {t}"),
        }
    }
}

impl std::error::Error for InstantiateError {}
