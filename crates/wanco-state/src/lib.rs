//! `wanco-state`: the contract shared by every part of wanco.
//!
//! * [`abi`] — how compiled code and the runtime talk: the layout of the
//!   instance context (`vmctx`), function references, trap codes, symbol names.
//! * [`module`] — the module metadata the compiler embeds in every object and
//!   the runtime (and later the interpreter) instantiates from.
//! * [`wasi`] — the WASI state as plain data (fd table, preopens, args, env,
//!   clocks), so that it can be written into a snapshot.
//! * [`snapshot`] — the snapshot file format (v1) every engine writes and reads.
//! * [`image`] — memory image files: a linear memory as raw pages, built
//!   by a pre-copy migration's destination and mapped by the restore.
//! * [`crmeta`] — checkpoint/restore metadata of a compiled module: migration
//!   points, restore routes and the statepoint records of one ISA.
//! * [`value`] — typed Wasm values, the unit of the ISA-neutral state model.
//! * `liveness` (feature `liveness`) — which locals are live at each
//!   migration point; dead ones are written as zero into snapshots.
#![deny(missing_docs)]

pub mod abi;
pub mod crmeta;
pub mod image;
#[cfg(any(feature = "liveness", test))]
pub mod liveness;
pub mod module;
pub mod snapshot;
pub mod value;
pub mod wasi;

pub use value::{LaneShape, ValType, Value};
