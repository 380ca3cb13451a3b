//! End-to-end test support: the test programs of `tests/programs/` run on wasmtime and, compiled
//! by `wanco compile`, natively on x86_64 and under qemu on aarch64; every result is compared
//! with wasmtime's (stdout bytes, exit code, final contents of the preopened directory).
//!
//! The checkpoint/restore matrix ([`cr`]) checkpoints the programs of `tests/programs/cr/` on
//! every engine and restores them on every engine.
//!
//! The drivers are `tests/tests/programs.rs` and `tests/tests/cr_matrix.rs`; `tests/README.md`
//! explains the knobs.
#![deny(missing_docs)]

pub mod cases;
pub mod cr;
pub mod diff;
pub mod e2e;
pub mod engine;
pub mod process;
pub mod tree;
