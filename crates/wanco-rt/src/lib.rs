//! `wanco-rt`: the runtime linked into every executable `wanco` compiles.
//!
//! It owns what compiled code cannot do by itself: reserving linear memory
//! with guard pages ([`memory`]), turning faults and explicit traps into Wasm
//! traps ([`signals`]), instantiating modules from the metadata the compiler
//! embeds ([`instance`]), the helpers compiled code calls ([`libcalls`]), the
//! WASI bridge ([`wasi_host`]), checkpoint and restore ([`cr`]: capture, restore, dirty tracking, the lazy-restore pager, the control channel) and the
//! process entry points ([`program`]).
//!
//! `unsafe` lives only in [`memory`] (mmap), the named modules of [`cr`] (see there), [`signals`] (signal handlers,
//! setjmp shim), [`helper`] (jobs that borrow across threads), and the boundary modules where raw pointers from compiled
//! code are turned into references ([`instance`], [`libcalls`], [`wasi_host`]).
#![deny(missing_docs)]

pub mod cr;
pub mod cpu;
pub mod helper;
pub mod instance;
pub mod libcalls;
pub mod memory;
pub mod program;
pub mod signals;
pub mod spec_driver;
pub mod table;
pub mod wasi_host;
