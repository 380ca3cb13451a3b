//! Checkpoint/restore metadata: what the compiler tells the runtime (and
//! `wanco-snap`) about the migration points of one compiled module on one ISA.
//!
//! The compiler emits it as a blob in a flat little-endian layout ([`flat`];
//! every checkpoint and every restore reads it, so it decodes without a
//! serialisation framework) next to the code (symbol `<descriptor>_crmeta`,
//! referenced by the module descriptor). It has three parts:
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
//!
//! The runtime opens its own blob with [`CrMeta::from_static`]: the blob is
//! checked whole, but nothing is decoded until it is looked at (a restore
//! looks at a few functions and points of thousands, a checkpoint at the
//! records of the frames on the stack), so opening it allocates nothing.

use crate::snapshot::FrameKind;
use crate::value::ValType;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Version of the metadata layout (bumped on incompatible change). 6: a
/// function may have no entry point ([`NO_ENTRY_POINT`], migration-point
/// rule 2, [`crate::snapshot::POINTS_RULE`]).
pub const CRMETA_VERSION: u32 = 6;

/// [`CrFunc::entry_point`] of a function without an entry migration point
/// (its body has no `loop` and no call: see
/// [`crate::snapshot::POINTS_RULE`]).
pub const NO_ENTRY_POINT: u32 = u32::MAX;

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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub funcs: Table<CrFunc>,
    /// Every point, indexed by point id.
    pub points: Table<CrPoint>,
    /// Every statepoint record, sorted by `(func, offset)`.
    pub records: Records,
}

/// The functions or the points of a [`CrMeta`]: decoded (built by the
/// compiler or by [`CrMeta::from_bytes`], or from a `Vec` with [`From`]),
/// or read in place from a blob that lives as long as the program
/// ([`CrMeta::from_static`]). An entry is handed out as a [`Cow`]: borrowed
/// when decoded, decoded when it is looked at otherwise (a restore looks at
/// a few of thousands; decoding them all cost it ~150 µs, mostly in the
/// fresh pages they took).
#[derive(Clone)]
pub struct Table<T> {
    repr: Repr<T>,
}

#[derive(Clone)]
enum Repr<T> {
    Decoded(Vec<T>),
    InPlace(InPlace),
}

/// `n` fixed-size entries at byte `at` of `blob`, checked when it was
/// opened; their value types are ranges of `types`.
#[derive(Clone, Copy)]
struct InPlace {
    blob: &'static [u8],
    at: usize,
    n: usize,
    types: &'static [u8],
    /// (Points) ordered by `(func, code_offset, kind)`, no two the same: a
    /// key is looked up by binary search.
    sorted: bool,
}

mod sealed {
    use super::*;

    /// An entry of a [`Table`]: its flat encoding has a fixed size, its
    /// value types (locals or operand stack) are kept apart.
    pub trait Entry: Clone {
        /// Bytes of one encoded entry.
        const SIZE: usize;
        /// Decode an entry checked by [`Entry::check`] (`e`: `SIZE` bytes;
        /// `types`: the table's types area).
        fn decode(e: &[u8], types: &[u8]) -> Self;
        /// Check an encoded entry against a types area of `types` codes:
        /// the offset in `e` of what is wrong, and what.
        fn check(e: &[u8], types: usize) -> Result<(), (usize, String)>;
        /// Encode, its types being at `types_at` of the types area.
        fn encode(&self, w: &mut Vec<u8>, types_at: u32);
        /// Its value types.
        fn types(&self) -> &[ValType];
    }
}
use sealed::Entry;

impl<T: Entry> Table<T> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Decoded(v) => v.len(),
            Repr::InPlace(p) => p.n,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `i` (`None` past the end).
    pub fn get(&self, i: usize) -> Option<Cow<'_, T>> {
        match &self.repr {
            Repr::Decoded(v) => v.get(i).map(Cow::Borrowed),
            Repr::InPlace(p) => (i < p.n).then(|| Cow::Owned(T::decode(p.entry(i, T::SIZE), p.types))),
        }
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, T>> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// Every entry, decoded.
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().map(Cow::into_owned).collect()
    }

    /// The entries as a `Vec` to change (decoding them first if they are
    /// read in place).
    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if let Repr::InPlace(_) = self.repr {
            self.repr = Repr::Decoded(self.to_vec());
        }
        match &mut self.repr {
            Repr::Decoded(v) => v,
            Repr::InPlace(_) => unreachable!("decoded just above"),
        }
    }
}

impl InPlace {
    fn entry(&self, i: usize, size: usize) -> &'static [u8] {
        &self.blob[self.at + i * size..][..size]
    }
}

impl Table<CrFunc> {
    /// Module index of the first defined function.
    pub fn first_func(&self) -> Option<u32> {
        match &self.repr {
            Repr::Decoded(v) => v.first().map(|f| f.func),
            Repr::InPlace(p) => (p.n > 0).then(|| u32le(p.entry(0, CrFunc::SIZE), 0)),
        }
    }
}

impl Table<CrPoint> {
    /// Id of the point of function `func` at `code_offset` of `kind` (the
    /// last one, if several are).
    pub fn find(&self, func: u32, code_offset: u32, kind: FrameKind) -> Option<u32> {
        match &self.repr {
            Repr::Decoded(v) => {
                v.iter().rposition(|p| (p.func, p.code_offset, p.kind) == (func, code_offset, kind)).map(|i| i as u32)
            }
            Repr::InPlace(p) => {
                let want = (func, code_offset, flat::kind_code(kind));
                let key = |i: usize| CrPoint::key(p.entry(i, CrPoint::SIZE));
                if p.sorted {
                    let at = partition_point(p.n, |i| key(i) < want);
                    (at < p.n && key(at) == want).then_some(at as u32)
                } else {
                    (0..p.n).rev().find(|&i| key(i) == want).map(|i| i as u32)
                }
            }
        }
    }
}

/// The first `i` in `0..n` for which `before(i)` is false (`before` is
/// true, then false).
fn partition_point(n: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<T> From<Vec<T>> for Table<T> {
    fn from(v: Vec<T>) -> Table<T> {
        Table { repr: Repr::Decoded(v) }
    }
}

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table { repr: Repr::Decoded(Vec::new()) }
    }
}

impl<'a, T: Entry> IntoIterator for &'a Table<T> {
    type Item = Cow<'a, T>;
    type IntoIter = Box<dyn Iterator<Item = Cow<'a, T>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<T: Entry + PartialEq> PartialEq for Table<T> {
    fn eq(&self, other: &Table<T>) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl<T: Entry + Eq> Eq for Table<T> {}

impl<T: Entry + std::fmt::Debug> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The statepoint records of a [`CrMeta`], sorted by `(func, offset)`.
///
/// They are most of the metadata (every deopt value of every call), and a
/// checkpoint needs only those of the frames on the stack, a restore none:
/// [`CrMeta::from_static`] leaves them in the blob and decodes (and
/// checks) a record's locations when it is first looked at. Built from a
/// `Vec` ([`From`]) or by [`CrMeta::from_bytes`] they are all decoded and
/// checked.
#[derive(Clone)]
pub struct Records {
    repr: RecordsRepr,
}

#[derive(Clone)]
enum RecordsRepr {
    Decoded(Vec<CrRecord>),
    InPlace(LazyRecords),
}

/// Records of a blob that lives as long as the program, decoded on first
/// use. Only a few are ever decoded (the frames of a stack), so they are
/// kept in a short list, not in a slot per record (which a restore would
/// pay for in fresh pages).
struct LazyRecords {
    blob: &'static [u8],
    /// Byte offset of the keys (`flat::KEY_SIZE` bytes each).
    keys: usize,
    /// Number of records.
    n: usize,
    /// Byte offset of the locations.
    locations: usize,
    /// The records decoded so far (leaked: they live as long as the blob).
    done: std::sync::Mutex<Vec<(usize, &'static Result<CrRecord, CrMetaError>)>>,
}

impl Clone for LazyRecords {
    fn clone(&self) -> LazyRecords {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).clone();
        LazyRecords { done: std::sync::Mutex::new(done), ..*self }
    }
}

impl LazyRecords {
    /// `(func, offset, first location, locations)` of record `i` (`< n`).
    fn key(&self, i: usize) -> (u32, u32, u32, u32) {
        let e = &self.blob[self.keys + i * flat::KEY_SIZE..][..flat::KEY_SIZE];
        (u32le(e, 0), u32le(e, 4), u32le(e, 8), u32le(e, 12))
    }

    fn get(&self, i: usize) -> &'static Result<CrRecord, CrMetaError> {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, r)) = done.iter().find(|(k, _)| *k == i) {
            return r;
        }
        let (func, offset, first, n) = self.key(i);
        let pos = self.locations + first as usize * flat::LOCATION_SIZE;
        let decoded = flat::locations(self.blob, pos, n as usize).map(|locations| CrRecord { func, offset, locations });
        let r: &'static Result<CrRecord, CrMetaError> = Box::leak(Box::new(decoded));
        done.push((i, r));
        r
    }
}

impl Records {
    /// Number of records.
    pub fn len(&self) -> usize {
        match &self.repr {
            RecordsRepr::Decoded(v) => v.len(),
            RecordsRepr::InPlace(l) => l.n,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `i`, decoded on first use; an error says which location of
    /// the blob does not decode (only for [`CrMeta::from_static`], which
    /// checks locations when they are first looked at).
    pub fn try_get(&self, i: usize) -> Option<Result<&CrRecord, &CrMetaError>> {
        match &self.repr {
            RecordsRepr::Decoded(v) => v.get(i).map(Ok),
            RecordsRepr::InPlace(l) => (i < l.n).then(|| l.get(i).as_ref()),
        }
    }

    /// Record `i` (`None` past the end or if its locations do not decode:
    /// [`Records::try_get`] says why).
    pub fn get(&self, i: usize) -> Option<&CrRecord> {
        self.try_get(i)?.ok()
    }

    /// Every record, in order (records whose locations do not decode, which
    /// only [`CrMeta::from_static`] can leave, are skipped).
    pub fn iter(&self) -> impl Iterator<Item = &CrRecord> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The record with key `(func, offset)`, if there is one.
    pub fn find(&self, func: u32, offset: u32) -> Result<Option<&CrRecord>, CrMetaError> {
        let (at, found) = match &self.repr {
            RecordsRepr::Decoded(v) => {
                let at = v.partition_point(|r| (r.func, r.offset) < (func, offset));
                (at, v.get(at).is_some_and(|r| (r.func, r.offset) == (func, offset)))
            }
            RecordsRepr::InPlace(l) => {
                let key = |i: usize| {
                    let (f, o, _, _) = l.key(i);
                    (f, o)
                };
                let at = partition_point(l.n, |i| key(i) < (func, offset));
                (at, at < l.n && key(at) == (func, offset))
            }
        };
        if !found {
            return Ok(None);
        }
        self.try_get(at).map_or(Ok(None), |r| r.map(Some).map_err(Clone::clone))
    }
}

impl Default for Records {
    fn default() -> Records {
        Records::from(Vec::new())
    }
}

impl From<Vec<CrRecord>> for Records {
    fn from(records: Vec<CrRecord>) -> Records {
        Records { repr: RecordsRepr::Decoded(records) }
    }
}

impl std::ops::Index<usize> for Records {
    type Output = CrRecord;
    fn index(&self, i: usize) -> &CrRecord {
        self.get(i).unwrap_or_else(|| panic!("record {i} of {}", self.len()))
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = &'a CrRecord;
    type IntoIter = Box<dyn Iterator<Item = &'a CrRecord> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl PartialEq for Records {
    fn eq(&self, other: &Records) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.try_get(i) == other.try_get(i))
    }
}

impl Eq for Records {}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One defined function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrFunc {
    /// Function index in the module (imports counted first).
    pub func: u32,
    /// Types of all locals, parameters first.
    pub locals: Vec<ValType>,
    /// Id of the function's entry point, [`NO_ENTRY_POINT`] if it has none
    /// (then it has no points at all).
    pub entry_point: u32,
    /// Largest operand-stack height a restore route of this function loads
    /// (at a return site with the call's arguments, which the route passes
    /// again; the value buffer holds at least this many stack slots).
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
    /// A stack object at `reg + offset`. LLVM records the address; the
    /// compiler names a local kept in memory this way at a return site, and
    /// the value is what the object holds (the width of the local's type).
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

    /// Encode in the flat layout (see [`flat`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        flat::write(self)
    }

    /// Decode the flat layout, checking the version and every byte.
    pub fn from_bytes(bytes: &[u8]) -> Result<CrMeta, CrMetaError> {
        flat::read(bytes, None)
    }

    /// Open the flat layout of a blob that lives as long as the program
    /// (the runtime's own metadata): it is checked as by
    /// [`CrMeta::from_bytes`] but for the records' locations, and nothing is
    /// decoded: functions and points are decoded when looked at (see
    /// [`Table`]), a record's locations decoded and checked when it is first
    /// looked at (see [`Records`]). Opening allocates nothing.
    pub fn from_static(bytes: &'static [u8]) -> Result<CrMeta, CrMetaError> {
        flat::read(bytes, Some(bytes))
    }

    /// The record for a return address `offset` bytes into defined function
    /// `func`; an error if its locations do not decode (metadata opened
    /// with [`CrMeta::from_static`] checks them only now).
    pub fn record(&self, func: u32, offset: u32) -> Result<Option<&CrRecord>, CrMetaError> {
        self.records.find(func, offset)
    }

    /// The defined function with module index `func`.
    pub fn func(&self, func: u32) -> Option<Cow<'_, CrFunc>> {
        let first = self.funcs.first_func()?;
        self.funcs.get(func.checked_sub(first)? as usize)
    }
}

/// Value types of a table entry: `len` codes at `at` of the types area.
fn types_of(types: &[u8], at: u32, len: u32) -> Vec<ValType> {
    // In range and valid: checked when the blob was opened.
    let codes = types.get(at as usize..).and_then(|t| t.get(..len as usize)).unwrap_or_default();
    codes.iter().filter_map(|c| flat::ty_of(*c)).collect()
}

/// Check a types range of an entry (`at`, `len` at bytes `off`, `off + 4`
/// of it) against a types area of `types` codes.
fn check_types(at: u32, len: u32, off: usize, types: usize) -> Result<(), (usize, String)> {
    if u64::from(at) + u64::from(len) > types as u64 {
        return Err((off, format!("value types {at}..{} past the {types} of the types area", u64::from(at) + u64::from(len))));
    }
    Ok(())
}

impl Entry for CrFunc {
    // u32 func, u32 entry_point, u32 max_height, u32 types at, u32 types len
    const SIZE: usize = 20;

    fn decode(e: &[u8], types: &[u8]) -> CrFunc {
        CrFunc {
            func: u32le(e, 0),
            entry_point: u32le(e, 4),
            max_height: u32le(e, 8),
            locals: types_of(types, u32le(e, 12), u32le(e, 16)),
        }
    }

    fn check(e: &[u8], types: usize) -> Result<(), (usize, String)> {
        check_types(u32le(e, 12), u32le(e, 16), 12, types)
    }

    fn encode(&self, w: &mut Vec<u8>, types_at: u32) {
        for v in [self.func, self.entry_point, self.max_height, types_at, self.locals.len() as u32] {
            w.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn types(&self) -> &[ValType] {
        &self.locals
    }
}

impl CrPoint {
    /// `(func, code_offset, kind code)` of an encoded point.
    fn key(e: &[u8]) -> (u32, u32, u8) {
        (u32le(e, 0), u32le(e, 4), e[8])
    }
}

impl Entry for CrPoint {
    // u32 func, u32 code_offset, u8 kind, u8 indirect, u32 args, u8 callee
    // tag, u32 callee, u32 parent, u32 route, u32 types at, u32 types len
    const SIZE: usize = 35;

    fn decode(e: &[u8], types: &[u8]) -> CrPoint {
        // Codes checked when the blob was opened.
        let kind = match e[8] {
            0 => FrameKind::Entry,
            1 => FrameKind::Loop,
            _ => FrameKind::Call,
        };
        let v = u32le(e, 15);
        let callee = match e[14] {
            0 => None,
            1 => Some(Callee::Func(v)),
            _ => Some(Callee::Type(v)),
        };
        CrPoint {
            func: u32le(e, 0),
            code_offset: u32le(e, 4),
            kind,
            indirect: e[9] == 1,
            stack: types_of(types, u32le(e, 27), u32le(e, 31)),
            args: u32le(e, 10),
            callee,
            parent: Some(u32le(e, 19)).filter(|p| *p != u32::MAX),
            route: u32le(e, 23),
        }
    }

    fn check(e: &[u8], types: usize) -> Result<(), (usize, String)> {
        if e[8] > 2 {
            return Err((8, format!("point kind {}, expected 0 (entry), 1 (loop) or 2 (call)", e[8])));
        }
        if e[9] > 1 {
            return Err((9, format!("flag {}, expected 0 or 1", e[9])));
        }
        if e[14] > 2 {
            return Err((14, format!("callee tag {}, expected 0 to 2", e[14])));
        }
        check_types(u32le(e, 27), u32le(e, 31), 27, types)
    }

    fn encode(&self, w: &mut Vec<u8>, types_at: u32) {
        w.extend_from_slice(&self.func.to_le_bytes());
        w.extend_from_slice(&self.code_offset.to_le_bytes());
        w.push(flat::kind_code(self.kind));
        w.push(self.indirect as u8);
        w.extend_from_slice(&self.args.to_le_bytes());
        let (tag, v) = match self.callee {
            None => (0, 0),
            Some(Callee::Func(f)) => (1, f),
            Some(Callee::Type(t)) => (2, t),
        };
        w.push(tag);
        for v in [v, self.parent.unwrap_or(u32::MAX), self.route, types_at, self.stack.len() as u32] {
            w.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn types(&self) -> &[ValType] {
        &self.stack
    }
}

/// The flat encoding of [`CrMeta`]: little-endian integers, counts as
/// `u32`, strings as length + UTF-8. Every table has fixed-size entries, so
/// entry `i` is read in place without decoding the ones before it.
///
/// ```text
/// u32 version (= CRMETA_VERSION)
/// str isa, str module, str build
/// u32 n, n × func (20 bytes):  u32 func, u32 entry_point, u32 max_height,
///                              u32 types at, u32 types len (its locals)
/// u32 n, n × point (35 bytes): u32 func, u32 code_offset, u8 kind, u8 indirect,
///                              u32 args, u8 callee (0 none, 1 func, 2 type),
///                              u32 callee, u32 parent (u32::MAX: none), u32 route,
///                              u32 types at, u32 types len (its operand stack)
/// u32 n, n × record key (16 bytes): u32 func, u32 offset, u32 first location,
///                              u32 locations; sorted by (func, offset)
/// u32 n, n × u8 value type     (the types area the ranges above index)
/// u32 n, n × location (12 bytes): u8 tag (0 constant, 1 register, 2 indirect,
///                              3 direct), u8 size, u16 DWARF register,
///                              i64 constant or offset
/// ```
/// Types: 0 i32, 1 i64, 2 f32, 3 f64, 4 funcref, 5 externref, 6 v128; kinds: 0
/// entry, 1 loop, 2 call.
pub mod flat {
    use super::*;
    use byteorder::{ByteOrder, WriteBytesExt, LE};

    fn ty_code(t: ValType) -> u8 {
        match t {
            ValType::I32 => 0,
            ValType::I64 => 1,
            ValType::F32 => 2,
            ValType::F64 => 3,
            ValType::FuncRef => 4,
            ValType::ExternRef => 5,
            ValType::V128 => 6,
        }
    }

    pub(crate) fn kind_code(k: FrameKind) -> u8 {
        match k {
            FrameKind::Entry => 0,
            FrameKind::Loop => 1,
            FrameKind::Call => 2,
        }
    }

    pub(crate) fn ty_of(c: u8) -> Option<ValType> {
        Some(match c {
            0 => ValType::I32,
            1 => ValType::I64,
            2 => ValType::F32,
            3 => ValType::F64,
            4 => ValType::FuncRef,
            5 => ValType::ExternRef,
            6 => ValType::V128,
            _ => return None,
        })
    }

    /// Bytes of one encoded location (fixed, so a record's locations
    /// decode in one bounds-checked pass).
    pub(crate) const LOCATION_SIZE: usize = 12;

    /// Bytes of one record key.
    pub(crate) const KEY_SIZE: usize = 16;

    /// Decode the `n` locations at byte `pos` of `blob` (in bounds); an
    /// error names the byte of the one that does not decode.
    pub(crate) fn locations(blob: &[u8], pos: usize, n: usize) -> Result<Vec<Location>, CrMetaError> {
        let raw = &blob[pos..][..n * LOCATION_SIZE];
        let mut out = Vec::with_capacity(n);
        for (k, e) in raw.chunks_exact(LOCATION_SIZE).enumerate() {
            out.push(location(e).map_err(|(off, message)| CrMetaError {
                offset: (pos + k * LOCATION_SIZE + off) as u64,
                message: format!("invalid checkpoint metadata: {message}"),
            })?);
        }
        Ok(out)
    }

    /// Decode one location (`e`: [`LOCATION_SIZE`] bytes); the error is the
    /// offset in `e` and what is wrong.
    #[inline]
    fn location(e: &[u8]) -> Result<Location, (usize, String)> {
        let (reg, v) = (LE::read_u16(&e[2..4]), LE::read_i64(&e[4..12]));
        let offset = || i32::try_from(v).map_err(|_| (4, format!("location offset {v} does not fit 32 bits")));
        Ok(match e[0] {
            0 => Location::Constant(v),
            1 => Location::Register { reg, size: e[1] },
            2 => Location::Indirect { reg, offset: offset()?, size: e[1] },
            3 => Location::Direct { reg, offset: offset()? },
            t => return Err((0, format!("location tag {t}, expected 0 to 3"))),
        })
    }

    /// Encode `m`.
    pub fn write(m: &CrMeta) -> Vec<u8> {
        // Writing into a Vec cannot fail: the results are ignored.
        let mut w = Vec::with_capacity(
            256 + m.funcs.len() * CrFunc::SIZE
                + m.points.len() * CrPoint::SIZE
                + m.records.iter().map(|r| KEY_SIZE + r.locations.len() * LOCATION_SIZE).sum::<usize>(),
        );
        let len = |w: &mut Vec<u8>, n: usize| {
            let _ = w.write_u32::<LE>(n as u32);
        };
        let _ = w.write_u32::<LE>(m.version);
        for s in [&m.isa, &m.module, &m.build] {
            len(&mut w, s.len());
            w.extend_from_slice(s.as_bytes());
        }
        let mut types: Vec<u8> = Vec::new();
        fn table<T: Entry>(w: &mut Vec<u8>, types: &mut Vec<u8>, t: &Table<T>) {
            let _ = w.write_u32::<LE>(t.len() as u32);
            for e in t {
                e.encode(w, types.len() as u32);
                types.extend(e.types().iter().map(|t| ty_code(*t)));
            }
        }
        table(&mut w, &mut types, &m.funcs);
        table(&mut w, &mut types, &m.points);
        len(&mut w, m.records.len());
        let mut first = 0u32;
        for r in &m.records {
            for v in [r.func, r.offset, first, r.locations.len() as u32] {
                let _ = w.write_u32::<LE>(v);
            }
            first += r.locations.len() as u32;
        }
        len(&mut w, types.len());
        w.extend_from_slice(&types);
        len(&mut w, first as usize);
        for r in &m.records {
            for l in &r.locations {
                let (tag, size, reg, v) = match *l {
                    Location::Constant(c) => (0u8, 0u8, 0u16, c),
                    Location::Register { reg, size } => (1, size, reg, 0),
                    Location::Indirect { reg, offset, size } => (2, size, reg, i64::from(offset)),
                    Location::Direct { reg, offset } => (3, 0, reg, i64::from(offset)),
                };
                w.push(tag);
                w.push(size);
                let _ = w.write_u16::<LE>(reg);
                let _ = w.write_i64::<LE>(v);
            }
        }
        w
    }

    /// A bounds-checked reader over the blob (slices and `byteorder`, no
    /// `io::Read`: this is on the checkpoint's and the restore's path).
    struct Reader<'a> {
        b: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        #[cold]
        #[inline(never)]
        fn err(&self, message: String) -> CrMetaError {
            CrMetaError { offset: self.pos as u64, message: format!("invalid checkpoint metadata: {message}") }
        }

        fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CrMetaError> {
            match self.b.get(self.pos..).and_then(|b| b.get(..n)) {
                Some(s) => {
                    self.pos += n;
                    Ok(s)
                }
                None => Err(self.err(format!("truncated: expected {what}"))),
            }
        }

        fn u32(&mut self, what: &str) -> Result<u32, CrMetaError> {
            Ok(LE::read_u32(self.take(4, what)?))
        }

        /// A count of items of `size` bytes each, then the items: their
        /// count, the byte offset of the first, and their bytes. The count
        /// is checked against the bytes left (a corrupt one must not
        /// allocate).
        fn items(&mut self, what: &str, size: usize) -> Result<(usize, usize, &'a [u8]), CrMetaError> {
            let n = self.u32(what)? as usize;
            let left = self.b.len() - self.pos;
            if n.saturating_mul(size) > left {
                return Err(self.err(format!("{n} {what}, but only {left} bytes are left")));
            }
            let at = self.pos;
            Ok((n, at, self.take(n * size, what)?))
        }

        fn str(&mut self, what: &str) -> Result<String, CrMetaError> {
            let (_, start, bytes) = self.items(what, 1)?;
            std::str::from_utf8(bytes).map(str::to_string).map_err(|_| CrMetaError {
                offset: start as u64,
                message: format!("invalid checkpoint metadata: {what} is not UTF-8"),
            })
        }
    }

    /// Check every entry of a table (`n` entries at byte `at`, `bytes` of
    /// them) against a types area of `types` codes.
    fn check_table<T: Entry>(n: usize, at: usize, bytes: &[u8], types: usize) -> Result<(), CrMetaError> {
        for (i, e) in bytes.chunks_exact(T::SIZE).take(n).enumerate() {
            T::check(e, types).map_err(|(off, message)| CrMetaError {
                offset: (at + i * T::SIZE + off) as u64,
                message: format!("invalid checkpoint metadata: {message}"),
            })?;
        }
        Ok(())
    }

    /// Decode a blob written by [`write`]. `keep`: the same blob, if it
    /// lives as long as the program: nothing is then decoded (see
    /// [`CrMeta::from_static`]).
    pub fn read(bytes: &[u8], keep: Option<&'static [u8]>) -> Result<CrMeta, CrMetaError> {
        // Version 2 was a MessagePack array of 8 fields (0x98, then the
        // version as a positive fixint).
        if bytes.first() == Some(&0x98) {
            return Err(CrMetaError {
                offset: 0,
                message: format!(
                    "checkpoint metadata version {} (MessagePack) is not supported (this wanco reads {CRMETA_VERSION}): recompile the program with this wanco",
                    bytes.get(1).copied().unwrap_or(0)
                ),
            });
        }
        let mut r = Reader { b: bytes, pos: 0 };
        let version = r.u32("the version")?;
        if version != CRMETA_VERSION {
            return Err(CrMetaError {
                offset: 0,
                message: format!("checkpoint metadata version {version} is not supported (this wanco reads {CRMETA_VERSION}): recompile the program with this wanco"),
            });
        }
        let isa = r.str("the ISA name")?;
        let module = r.str("the module hash")?;
        let build = r.str("the build id")?;
        let (nf, funcs_at, funcs) = r.items("functions", CrFunc::SIZE)?;
        let (np, points_at, points) = r.items("points", CrPoint::SIZE)?;
        let (nr, keys_at, keys) = r.items("records", KEY_SIZE)?;
        let (nt, types_at, types) = r.items("value types", 1)?;
        let (nl, locations_at, _) = r.items("locations", LOCATION_SIZE)?;
        if r.pos != bytes.len() {
            return Err(r.err(format!("{} unexpected bytes after the locations", bytes.len() - r.pos)));
        }
        // Every byte but the locations' is checked now, in place.
        if let Some(i) = types.iter().position(|c| ty_of(*c).is_none()) {
            return Err(CrMetaError {
                offset: (types_at + i) as u64,
                message: format!("invalid checkpoint metadata: value type code {}, expected 0 to 5", types[i]),
            });
        }
        check_table::<CrFunc>(nf, funcs_at, funcs, nt)?;
        check_table::<CrPoint>(np, points_at, points, nt)?;
        let mut last = None;
        for (i, e) in keys.chunks_exact(KEY_SIZE).enumerate() {
            let at = keys_at + i * KEY_SIZE;
            let (func, offset) = (u32le(e, 0), u32le(e, 4));
            if last.is_some_and(|l| (func, offset) <= l) {
                return Err(CrMetaError {
                    offset: at as u64,
                    message: format!("invalid checkpoint metadata: record (function {func}, offset {offset:#x}) out of order"),
                });
            }
            last = Some((func, offset));
            let (first, k) = (u32le(e, 8), u32le(e, 12));
            if u64::from(first) + u64::from(k) > nl as u64 {
                return Err(CrMetaError {
                    offset: (at + 8) as u64,
                    message: format!("invalid checkpoint metadata: locations {first}..{} past the {nl} there are", u64::from(first) + u64::from(k)),
                });
            }
        }
        let sorted = points.chunks_exact(CrPoint::SIZE).zip(points.chunks_exact(CrPoint::SIZE).skip(1)).all(|(a, b)| CrPoint::key(a) < CrPoint::key(b));
        let (funcs, points, records) = match keep {
            Some(blob) => {
                let types = &blob[types_at..][..nt];
                let place = |at, n, sorted| InPlace { blob, at, n, types, sorted };
                let records = LazyRecords { blob, keys: keys_at, n: nr, locations: locations_at, done: std::sync::Mutex::new(Vec::new()) };
                (
                    Table { repr: Repr::InPlace(place(funcs_at, nf, false)) },
                    Table { repr: Repr::InPlace(place(points_at, np, sorted)) },
                    Records { repr: RecordsRepr::InPlace(records) },
                )
            }
            None => {
                let funcs: Vec<CrFunc> = funcs.chunks_exact(CrFunc::SIZE).map(|e| CrFunc::decode(e, types)).collect();
                let points: Vec<CrPoint> = points.chunks_exact(CrPoint::SIZE).map(|e| CrPoint::decode(e, types)).collect();
                let mut records = Vec::with_capacity(nr);
                for e in keys.chunks_exact(KEY_SIZE) {
                    let pos = locations_at + u32le(e, 8) as usize * LOCATION_SIZE;
                    records.push(CrRecord { func: u32le(e, 0), offset: u32le(e, 4), locations: locations(bytes, pos, u32le(e, 12) as usize)? });
                }
                (funcs.into(), points.into(), records.into())
            }
        };
        Ok(CrMeta { version, isa, module, build, funcs, points, records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CrMeta {
        CrMeta {
            version: CRMETA_VERSION,
            isa: "aarch64".into(),
            module: "ab".repeat(32),
            build: String::new(),
            funcs: vec![
                CrFunc { func: 3, locals: vec![ValType::I32, ValType::F64, ValType::ExternRef], entry_point: 0, max_height: 2 },
                CrFunc { func: 4, locals: vec![], entry_point: 2, max_height: 0 },
            ]
            .into(),
            points: vec![
                CrPoint { func: 3, code_offset: 40, kind: FrameKind::Entry, indirect: false, stack: vec![], args: 0, callee: None, parent: None, route: 0 },
                CrPoint {
                    func: 3,
                    code_offset: 44,
                    kind: FrameKind::Call,
                    indirect: true,
                    stack: vec![ValType::I64, ValType::FuncRef, ValType::F32],
                    args: 2,
                    callee: Some(Callee::Type(1)),
                    parent: Some(0),
                    route: 2,
                },
                CrPoint { func: 4, code_offset: 60, kind: FrameKind::Loop, indirect: false, stack: vec![], args: 0, callee: Some(Callee::Func(3)), parent: Some(2), route: 3 },
            ]
            .into(),
            records: vec![CrRecord {
                func: 0,
                offset: 0x1c,
                locations: vec![
                    Location::Constant(-5),
                    Location::Register { reg: 19, size: 8 },
                    Location::Indirect { reg: 31, offset: -16, size: 4 },
                    Location::Direct { reg: 29, offset: 24 },
                ],
            }].into(),
        }
        .seal()
    }

    #[test]
    fn flat_round_trip() {
        let m = sample();
        assert_eq!(m.build.len(), 64);
        let bytes = m.to_bytes();
        assert_eq!(CrMeta::from_bytes(&bytes).unwrap(), m);
        assert_eq!(CrMeta::from_bytes(&bytes).unwrap().to_bytes(), bytes);
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let bytes = sample().to_bytes();
        for n in 0..bytes.len() {
            let e = CrMeta::from_bytes(&bytes[..n]).unwrap_err();
            assert!(e.message.contains("truncated") || e.message.contains("bytes are left"), "prefix {n}: {e}");
            assert!(e.offset <= n as u64, "prefix {n}: {e}");
        }
        let mut long = bytes.clone();
        long.push(0);
        let e = CrMeta::from_bytes(&long).unwrap_err();
        assert!(e.message.contains("1 unexpected bytes"), "{e}");
        assert_eq!(e.offset, bytes.len() as u64);
    }

    #[test]
    fn bad_codes_and_versions_are_named() {
        let m = sample();
        let bytes = m.to_bytes();
        let mut v = bytes.clone();
        v[..4].copy_from_slice(&9u32.to_le_bytes());
        assert!(CrMeta::from_bytes(&v).unwrap_err().message.contains("version 9 is not supported"));
        // The old MessagePack layout.
        let e = CrMeta::from_bytes(&[0x98, 0x02, 0xa6]).unwrap_err();
        assert!(e.message.contains("version 2 (MessagePack)") && e.message.contains("recompile"), "{e}");
        // The first local's type of the first function: the first byte of
        // the types area (after the tables and its count).
        let at = 4 + (4 + 7) + (4 + 64) + (4 + 64) + (4 + 2 * 20) + (4 + 3 * 35) + (4 + 16) + 4;
        let mut v = bytes.clone();
        assert_eq!(v[at..at + 3], [0, 3, 5]);
        v[at] = 9;
        let e = CrMeta::from_bytes(&v).unwrap_err();
        assert!(e.message.contains("value type code 9"), "{e}");
        assert_eq!(e.offset, at as u64);
        // A huge count is refused before anything is allocated.
        let mut v = bytes.clone();
        v[at - 4..at].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(CrMeta::from_bytes(&v).unwrap_err().message.contains("bytes are left"));
        // A types range past the types area, a bad kind, records out of
        // order or past the locations: named at their bytes, by both ways
        // of opening.
        let func0 = 4 + (4 + 7) + (4 + 64) + (4 + 64) + 4;
        let point1 = func0 + 2 * 20 + 4 + 35;
        let key0 = func0 + 2 * 20 + 4 + 3 * 35 + 4;
        for (at, value, what) in [
            (func0 + 16, 200u8, "past the 6 of the types area"),
            (point1 + 8, 3, "point kind 3"),
            (point1 + 14, 3, "callee tag 3"),
            (key0 + 12, 5, "locations 0..5 past the 4"),
        ] {
            let mut v = bytes.clone();
            v[at] = value;
            let e = CrMeta::from_bytes(&v).unwrap_err();
            assert!(e.message.contains(what), "{at}: {e}");
            let named = if what.starts_with("past") || what.starts_with("locations") { at - 4 } else { at };
            assert_eq!(e.offset as usize, named, "{e}");
            let v: &'static [u8] = Box::leak(v.into_boxed_slice());
            assert_eq!(CrMeta::from_static(v).unwrap_err(), e);
        }
    }

    #[test]
    fn points_and_functions_read_in_place_are_the_decoded_ones() {
        let m = sample();
        let bytes: &'static [u8] = Box::leak(m.to_bytes().into_boxed_slice());
        let lazy = CrMeta::from_static(bytes).unwrap();
        assert_eq!(lazy.points.len(), 3);
        for i in 0..4 {
            assert_eq!(lazy.points.get(i), m.points.get(i), "point {i}");
        }
        assert_eq!(lazy.funcs.first_func(), Some(3));
        assert_eq!(lazy.func(3).as_deref(), m.func(3).as_deref());
        assert_eq!(lazy.func(4).unwrap().entry_point, 2);
        assert!(lazy.func(2).is_none() && lazy.func(5).is_none());
        // Looked up by key: sorted, then (a copy moved out of order) not.
        for (i, p) in m.points.iter().enumerate() {
            assert_eq!(lazy.points.find(p.func, p.code_offset, p.kind), Some(i as u32));
            assert_eq!(m.points.find(p.func, p.code_offset, p.kind), Some(i as u32));
        }
        assert_eq!(lazy.points.find(3, 44, FrameKind::Loop), None);
        assert_eq!(lazy.points.find(9, 0, FrameKind::Entry), None);
        let mut unsorted = m.clone();
        unsorted.points.to_mut().swap(0, 2);
        let ub: &'static [u8] = Box::leak(unsorted.to_bytes().into_boxed_slice());
        let lu = CrMeta::from_static(ub).unwrap();
        assert_eq!(lu.points.find(4, 60, FrameKind::Loop), Some(0));
        assert_eq!(lu.points.find(3, 40, FrameKind::Entry), Some(2));
        assert_eq!(lu.points.find(3, 44, FrameKind::Call), Some(1));
        assert_eq!(lu.to_bytes(), ub);
    }

    #[test]
    fn lazy_records_are_the_records_and_are_checked_when_looked_at() {
        let m = sample();
        let bytes: &'static [u8] = Box::leak(m.to_bytes().into_boxed_slice());
        let lazy = CrMeta::from_static(bytes).unwrap();
        // Looked up before anything else is decoded, then all of them.
        assert_eq!(lazy.record(0, 0x1c), m.record(0, 0x1c));
        assert!(lazy.record(0, 0x1c).unwrap().is_some());
        assert_eq!(lazy.record(0, 0x1d), Ok(None));
        assert_eq!(lazy, m);
        assert_eq!(lazy.to_bytes(), bytes);
        // A bad location tag (the third location) or offset: the eager
        // decode refuses the blob; the lazy one opens it and refuses the
        // record, naming the same byte.
        let loc = |i: usize| bytes.len() - (4 - i) * 12;
        for (at, value, what, named) in
            [(loc(2), 7u8, "location tag 7", loc(2)), (loc(3) + 4 + 7, 0x40, "does not fit 32 bits", loc(3) + 4)]
        {
            let mut v = bytes.to_vec();
            v[at] = value;
            let v: &'static [u8] = Box::leak(v.into_boxed_slice());
            let eager = CrMeta::from_bytes(v).unwrap_err();
            assert!(eager.message.contains(what), "{eager}");
            assert_eq!(eager.offset as usize, named, "{eager}");
            let lazy = CrMeta::from_static(v).unwrap();
            assert_eq!(lazy.record(0, 0x1c).unwrap_err(), eager);
            assert!(lazy.records.get(0).is_none());
            assert_eq!(lazy.records.iter().count(), 0);
        }
        // The layout around the locations is still checked when opened.
        let e = CrMeta::from_static(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(e.message.contains("truncated") || e.message.contains("bytes are left"), "{e}");
    }
}
