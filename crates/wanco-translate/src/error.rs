//! The error type of the crate.

use std::fmt;

/// What went wrong while parsing, unwinding or decoding.
///
/// Every message says what was expected and where (byte offset, address,
/// point, slot).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The `.llvm_stackmaps` section is malformed or unsupported.
    StackMap {
        /// Byte offset in the section.
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// The object file is malformed or does not look as expected.
    Object(String),
    /// There is no unwind information (FDE) covering a code address.
    NoUnwindInfo {
        /// The return address whose frame was to be unwound.
        pc: u64,
    },
    /// The unwind information of a frame could not be evaluated.
    Unwind {
        /// The return address whose frame was being unwound.
        pc: u64,
        /// What is wrong.
        message: String,
    },
    /// A memory read failed.
    Memory {
        /// The address that could not be read.
        addr: u64,
        /// What was being read.
        what: String,
    },
    /// A frame could not be decoded with the checkpoint metadata.
    Decode(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::StackMap { offset, message } => {
                write!(
                    f,
                    "invalid .llvm_stackmaps section at byte {offset}: {message}"
                )
            }
            Error::Object(message) => write!(f, "invalid object file: {message}"),
            Error::NoUnwindInfo { pc } => write!(f, "no unwind info for pc {pc:#x}"),
            Error::Unwind { pc, message } => {
                write!(f, "cannot unwind the frame of pc {pc:#x}: {message}")
            }
            Error::Memory { addr, what } => write!(f, "cannot read {what} at {addr:#x}"),
            Error::Decode(message) => write!(f, "cannot decode frame: {message}"),
        }
    }
}

impl std::error::Error for Error {}
