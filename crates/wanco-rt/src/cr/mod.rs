//! Checkpoint and restore of compiled programs: everything that captures,
//! restores, tracks or moves a running program's state.
//!
//! The modules form two layers; imports point one way, from the upper layer
//! down, and from the rest of the runtime only into the lower layer:
//!
//! * **Lower layer** (used by [`crate::instance`], [`crate::signals`],
//!   [`crate::wasi_host`]; depends only on [`crate::memory`] and
//!   [`crate::helper`]):
//!   * [`timing`]: `WANCO_CR_TIMING` phase durations;
//!   * `uffd`: the `userfaultfd` ABI `pager` and `dirty` share;
//!   * [`pager`]: lazy restore of linear memory with `userfaultfd`;
//!   * [`postcopy`]: post-copy restore, the pages coming from `wanco agent`
//!     (with `pager`'s `userfaultfd` requests, or eagerly);
//!   * [`points`]: the migration-point counter compiled code polls,
//!     `SIGUSR1`, the checkpoint target, `at_exit`;
//!   * [`dirty`]: which pages of linear memory were written since the last
//!     snapshot (incremental snapshots, pre-copy).
//! * **Upper layer** (depends on the lower layer, [`crate::instance`] and
//!   [`crate::wasi_host`]; only [`crate::program`] uses it):
//!   * `armed`: the armed state (instance, metadata, a restore under way);
//!   * `native`: reading this process's registers, stack and unwind tables;
//!   * [`capture`]: building and writing a snapshot;
//!   * [`restore`]: validating a snapshot's frames and rebuilding them;
//!   * [`control`]: the `--control` socket (checkpoint and keep running,
//!     stop for a migration);
//!   * `slow`: the slow path of a migration point, which ties them together.
//!
//! `uffd` ← (`pager`, `dirty`); `timing` ← `pager` ← `points` ← (`instance`, `signals`, `wasi_host`) ←
//! `armed` ← `native` ← `capture`/`restore` ← `control` ← `slow`.
//!
//! `unsafe` lives in `pager` and `postcopy` (userfaultfd), `dirty` (userfaultfd
//! write-protection, `PAGEMAP_SCAN`),
//! `points` (the signal handler), `native` and `slow` (raw reads of this
//! process: registers, stack, unwind tables; the trampolines), `armed`,
//! `capture` and `restore` (the armed instance pointer, `renameat2`) and
//! `control` (`getuid`, `atexit`), each with a `SAFETY` comment.

pub(crate) mod armed;
pub mod capture;
pub mod control;
pub mod dirty;
pub(crate) mod native;
pub mod pager;
pub mod points;
pub mod postcopy;
pub mod restore;
pub(crate) mod slow;
pub mod timing;
mod uffd;

pub use armed::{arm, module_meta, ISA};
pub use points::{at_exit, enter_main, install_signal_handler, preset, CrOptions};
pub use restore::prepare_restore;
pub use timing::{restore_mark, restore_started};
