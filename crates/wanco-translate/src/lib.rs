//! `wanco-translate`: decodes native frames of wanco-compiled code into
//! ISA-neutral Wasm frames.
//!
//! Used in two places:
//!
//! * by the compiler, at compile time: [`elf::records_from_object`] (feature
//!   `elf`) turns the `.llvm_stackmaps` section of a freshly emitted
//!   relocatable object into [`wanco_state::crmeta::CrRecord`]s;
//! * by the runtime, in-process at checkpoint time: [`unwind::Cfi`] walks the
//!   native stack with DWARF CFI (`.eh_frame`, `.eh_frame_hdr`) and
//!   [`decode::walk`] / [`decode::decode_record`] read the values each frame
//!   holds, through the [`unwind::Memory`] trait (no unsafe code here).
//!
//! Modules:
//!
//! * [`stackmap`] — parser of the LLVM StackMap v3 section;
//! * [`elf`] — stack map records of a relocatable ELF object (feature `elf`);
//! * [`unwind`] — register files, CFI lookup and one-frame unwinding;
//! * [`decode`] — native frames to virtual Wasm frames.
#![deny(missing_docs)]

pub mod decode;
#[cfg(feature = "elf")]
pub mod elf;
mod error;
pub mod stackmap;
pub mod unwind;

pub use error::Error;
