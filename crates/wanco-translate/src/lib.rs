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
//! * [`decode`] — native frames to virtual Wasm frames;
//! * [`native`] — native views of a snapshot ([`wanco_state::snapshot::NativeStack`]):
//!   captured from a walk, laid out for a target binary (the translator's
//!   second half), checked against a binary;
//! * [`binary`] — a linked wanco binary read from disk (feature `elf`).
#![deny(missing_docs)]

#[cfg(feature = "elf")]
pub mod binary;
pub mod decode;
#[cfg(feature = "elf")]
pub mod elf;
mod error;
pub mod native;
pub mod stackmap;
pub mod unwind;

pub use error::Error;
