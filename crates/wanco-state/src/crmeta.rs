//! Checkpoint/restore metadata: what the compiler tells the runtime (and
//! `wanco-snap`) about the migration points of one compiled module on one ISA.
//!
//! The compiler emits it as a MessagePack blob next to the code (symbol
//! `<descriptor>_crmeta`, referenced by the module descriptor). It has three
//! parts:
//!
//! * [`CrPoint`]s — every migration point (function entry, loop header) and
//!   every return site (call of a Wasm function) with its Wasm code offset,
//!   the types of the operand stack there, and how the restore dispatch
//!   reaches it (`parent`, `route`).
//! * [`CrFunc`]s — per defined function: the types of its locals.
//! * [`CrRecord`]s — one per LLVM statepoint (from `.llvm_stackmaps`): the
//!   return address of a call (as an offset in its function) and where each
//!   deopt value lives at that address. The deopt values are a sequence of
//!   *virtual frames*, outermost first (inlining concatenates them): for each
//!   frame a [`Location::Constant`] with the point id, then one location per
//!   local of the point's function, then one per operand-stack value of the
//!   point.
//!
//! The runtime decodes native frames with these records and DWARF CFI into
//! ISA-neutral [`crate::snapshot::Frame`]s; nothing ISA-specific leaves it.

use crate::snapshot::FrameKind;
use crate::value::ValType;
use serde::{Deserialize, Serialize};

/// Version of the metadata layout (bumped on incompatible change).
pub const CRMETA_VERSION: u32 = 2;

/// Slots at the start of the restore value buffer before the locals: the
/// callee's native entry and vmctx for a `call_indirect` return site.
pub const RESTORE_FIXED_SLOTS: usize = 2;

/// Return value of the slow path: go on normally at this point.
pub const ROUTE_CONTINUE: u32 = 0;
/// Return value of the slow path at a function entry: restore the locals
/// from the value buffer, then go on at the entry.
pub const ROUTE_RESTORE_HERE: u32 = 1;
/// First route index of a nested target.
pub const ROUTE_FIRST_TARGET: u32 = 2;

/// Metadata of one compiled module for one ISA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrMeta {
    /// [`CRMETA_VERSION`].
    pub version: u32,
    /// ISA of the code (`"x86_64"`, `"aarch64"`).
    pub isa: String,
    /// SHA-256 of the module's Wasm bytes, 64 hex digits.
    pub module: String,
    /// Build id: SHA-256 (64 hex digits) of this metadata encoded with an
    /// empty `build` — it changes whenever a record, a point or a route does.
    /// Set by [`CrMeta::seal`]; snapshots' native views name it
    /// ([`crate::snapshot::NativeStack::build`]).
    pub build: String,
    /// Per defined function, in order of definition.
    pub funcs: Vec<CrFunc>,
    /// Every point, indexed by point id.
    pub points: Vec<CrPoint>,
    /// Every statepoint record, sorted by `(func, offset)`.
    pub records: Vec<CrRecord>,
}

/// One defined function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrFunc {
    /// Function index in the module (imports counted first).
    pub func: u32,
    /// Types of all locals, parameters first.
    pub locals: Vec<ValType>,
    /// Id of the function's entry point.
    pub entry_point: u32,
    /// Largest operand-stack height a restore route of this function loads
    /// (the value buffer holds at least this many stack slots).
    pub max_height: u32,
}

/// A migration point or return site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrPoint {
    /// Function index in the module.
    pub func: u32,
    /// Wasm code offset (module file offset) — see [`FrameKind`].
    pub code_offset: u32,
    /// Entry, loop header or call (return site).
    pub kind: FrameKind,
    /// `call_indirect` (the restore route passes the callee in the fixed slots).
    pub indirect: bool,
    /// Types of the operand stack at the point, bottom first (for a call:
    /// below the arguments; for a loop: including the loop parameters).
    pub stack: Vec<ValType>,
    /// Number of call arguments (calls only; zero otherwise).
    pub args: u32,
    /// Calls: the function a direct call calls (module index), or the type
    /// index a `call_indirect` expects.
    pub callee: Option<Callee>,
    /// The poll whose slow path dispatches to this point on restore: the
    /// innermost enclosing loop header, else the function entry. `None` for
    /// the entry itself.
    pub parent: Option<u32>,
    /// Route index the parent's slow path returns to jump here.
    pub route: u32,
}

/// What a return site calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Callee {
    /// `call f`: function index.
    Func(u32),
    /// `call_indirect (type t)`: type index.
    Type(u32),
}

/// Where a deopt value lives at a statepoint (LLVM stackmap location, DWARF
/// register numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Location {
    /// The value itself (sign-extended).
    Constant(i64),
    /// In register `reg`; `size` bytes (low bytes of the register).
    Register {
        /// DWARF register number.
        reg: u16,
        /// Size in bytes.
        size: u8,
    },
    /// In memory at `[reg + offset]`; `size` bytes.
    Indirect {
        /// DWARF register number of the base.
        reg: u16,
        /// Offset from the base.
        offset: i32,
        /// Size in bytes.
        size: u8,
    },
    /// The value is the address `reg + offset` (a stack object).
    Direct {
        /// DWARF register number of the base.
        reg: u16,
        /// Offset from the base.
        offset: i32,
    },
}

/// One statepoint: a call's return address and the deopt values there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrRecord {
    /// Defined-function index (0 = first defined function).
    pub func: u32,
    /// Return address minus the function's start address.
    pub offset: u32,
    /// The deopt values (virtual frames, outermost first; see the module docs).
    pub locations: Vec<Location>,
}

/// Error reading [`CrMeta`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrMetaError {
    /// Byte offset in the blob.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for CrMetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte {} of the checkpoint metadata)", self.message, self.offset)
    }
}

impl std::error::Error for CrMetaError {}

impl CrMeta {
    /// The build id [`CrMeta::build`] should hold.
    pub fn build_id(&self) -> String {
        use sha2::Digest;
        let mut m = self.clone();
        m.build.clear();
        sha2::Sha256::digest(m.to_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Set [`CrMeta::build`].
    pub fn seal(mut self) -> CrMeta {
        self.build = self.build_id();
        self
    }

    /// Encode as MessagePack.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    /// Decode from MessagePack, checking the version.
    pub fn from_bytes(bytes: &[u8]) -> Result<CrMeta, CrMetaError> {
        let mut rd = bytes;
        let meta: CrMeta = {
            let mut de = rmp_serde::Deserializer::new(&mut rd);
            CrMeta::deserialize(&mut de)
        }
        .map_err(|e| CrMetaError {
            offset: (bytes.len() - rd.len()) as u64,
            message: format!("invalid checkpoint metadata: {e}"),
        })?;
        if meta.version != CRMETA_VERSION {
            return Err(CrMetaError {
                offset: 0,
                message: format!(
                    "checkpoint metadata version {} is not supported (this wanco reads {CRMETA_VERSION})",
                    meta.version
                ),
            });
        }
        Ok(meta)
    }

    /// The record for a return address `offset` bytes into defined function
    /// `func`.
    pub fn record(&self, func: u32, offset: u32) -> Option<&CrRecord> {
        self.records
            .binary_search_by(|r| (r.func, r.offset).cmp(&(func, offset)))
            .ok()
            .map(|i| &self.records[i])
    }

    /// The defined function with module index `func`.
    pub fn func(&self, func: u32) -> Option<&CrFunc> {
        let first = self.funcs.first()?.func;
        self.funcs.get(func.checked_sub(first)? as usize)
    }
}
