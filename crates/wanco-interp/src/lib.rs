//! `wanco-interp`: the reference interpreter of wanco.
//!
//! It executes WebAssembly 2.0 (MVP, mutable globals, sign-extension,
//! non-trapping float-to-int, multi-value, bulk memory, reference types,
//! 128-bit SIMD) and is the semantic yardstick the compiled code is compared
//! against. Later proposals (relaxed SIMD, multiple memories, ...) are
//! refused by validation with the feature and offset named.
//!
//! # Design
//!
//! * [`Module::new`] decodes and validates with `wasmparser` and translates
//!   every function body into an internal instruction array with resolved
//!   branch targets; execution never re-reads Wasm bytes.
//! * A [`Store`] holds functions, tables, memories, globals and instances, and
//!   the names they can be imported under ([`Store::define`],
//!   [`Store::register`], [`Store::define_spectest`]).
//! * Execution uses an explicit frame stack and one value stack (no Rust
//!   recursion per Wasm call), so the state can be described at every
//!   migration point (every function entry and every loop header) in the
//!   ISA-neutral state model — see [`state`] — and rebuilt from it.
//! * Migration points are counted ([`Store::migration_points`]); execution
//!   can pause at a given count ([`Store::set_pause_at`]); then
//!   [`Store::frames`] and [`Store::instance_state`] describe the state and
//!   [`Store::restore_frames`] / [`Store::set_instance_state`] rebuild it in
//!   another store.
//! * [`WasiRunner::snapshot`] / [`WasiRunner::from_snapshot`] convert a paused
//!   WASI program to and from the snapshot format of
//!   [`wanco_state::snapshot`] (see [`snapshot`]).
//! * WASI programs run through [`WasiRunner`] (or [`run_wasi`]), on the WASI
//!   host of `wanco-wasi`, whose state is plain data as well.
//! * Traps carry a [`wanco_state::abi::TrapCode`] (spec wording via
//!   [`Trap::message`]); the call stack is capped at [`MAX_FRAMES`] frames and
//!   [`MAX_STACK_SLOTS`] value slots ("call stack exhausted").
//!
//! ```
//! use wanco_interp::{Module, Store, Instance};
//! use wanco_state::Value;
//! // (module (func (export "add") (param i32 i32) (result i32)
//! //   local.get 0 local.get 1 i32.add))
//! let wasm = [
//!     0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x07, 0x01, 0x60, 0x02, 0x7f,
//!     0x7f, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07, 0x07, 0x01, 0x03, 0x61, 0x64, 0x64,
//!     0x00, 0x00, 0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b,
//! ];
//! let module = Module::new(&wasm).unwrap();
//! let mut store = Store::new();
//! let inst = Instance::instantiate(&mut store, &module).unwrap();
//! let r = inst.invoke(&mut store, "add", &[Value::I32(2), Value::I32(3)]).unwrap();
//! assert_eq!(r, vec![Value::I32(5)]);
//! ```
#![deny(missing_docs)]

mod compile;
mod error;
mod exec;
mod instr;
mod module;
mod num;
mod simd;
pub mod snapshot;
pub mod state;
mod store;
pub mod wasi;

pub use error::{Error, InstantiateError, Trap};
pub use module::{Module, WasmVersion};
pub use state::{FrameState, InstanceState, PointKind};
pub use store::{
    Extern, HostFunc, Instance, Outcome, Store, MAX_FRAMES, MAX_STACK_SLOTS, MAX_TABLE_ELEMS,
    PAGE_SIZE,
};
pub use wanco_wasi::WasiConfig;
pub use wasi::{run_wasi, WasiExit, WasiRun, WasiRunner};
