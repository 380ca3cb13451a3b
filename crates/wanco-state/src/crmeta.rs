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

use crate::snapshot::FrameKind;
use crate::value::ValType;
use serde::{Deserialize, Serialize};

/// Version of the metadata layout (bumped on incompatible change).
pub const CRMETA_VERSION: u32 = 4;

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
    pub funcs: Vec<CrFunc>,
    /// Every point, indexed by point id.
    pub points: Vec<CrPoint>,
    /// Every statepoint record, sorted by `(func, offset)`.
    pub records: Records,
}

/// The statepoint records of a [`CrMeta`], sorted by `(func, offset)`.
///
/// They are most of the metadata (every deopt value of every call), and a
/// checkpoint needs only those of the frames on the stack, a restore none:
/// [`CrMeta::from_static`] reads only each record's key and size, and
/// decodes (and checks) a record's locations when it is first looked at.
/// Built from a `Vec` ([`From`]) or by [`CrMeta::from_bytes`] they are all
/// decoded and checked.
#[derive(Clone, Default)]
pub struct Records {
    /// `(func, offset)` of each record.
    keys: Vec<(u32, u32)>,
    /// Every record, decoded ([`CrMeta::from_bytes`], [`From`]).
    decoded: Vec<CrRecord>,
    /// Or where the records' locations are, to decode them on first use.
    lazy: Option<LazyRecords>,
}

/// Records of a blob that lives as long as the program, decoded on first
/// use. Only a few are ever decoded (the frames of a stack), so they are
/// kept in a short list, not in a slot per record (which a restore would
/// pay for in fresh pages).
struct LazyRecords {
    blob: &'static [u8],
    /// Per record: byte offset and count of its locations.
    at: Vec<(u32, u32)>,
    /// The records decoded so far (leaked: they live as long as the blob).
    done: std::sync::Mutex<Vec<(usize, &'static Result<CrRecord, CrMetaError>)>>,
}

impl Clone for LazyRecords {
    fn clone(&self) -> LazyRecords {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).clone();
        LazyRecords { blob: self.blob, at: self.at.clone(), done: std::sync::Mutex::new(done) }
    }
}

impl LazyRecords {
    fn get(&self, i: usize, (func, offset): (u32, u32)) -> &'static Result<CrRecord, CrMetaError> {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, r)) = done.iter().find(|(k, _)| *k == i) {
            return r;
        }
        let (pos, n) = self.at[i];
        let decoded = flat::locations(self.blob, pos as usize, n as usize).map(|locations| CrRecord { func, offset, locations });
        let r: &'static Result<CrRecord, CrMetaError> = Box::leak(Box::new(decoded));
        done.push((i, r));
        r
    }
}

impl Records {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Record `i`, decoded on first use; an error says which location of
    /// the blob does not decode (only for [`CrMeta::from_static`], which
    /// checks locations when they are first looked at).
    pub fn try_get(&self, i: usize) -> Option<Result<&CrRecord, &CrMetaError>> {
        let key = *self.keys.get(i)?;
        match &self.lazy {
            Some(l) => Some(l.get(i, key).as_ref()),
            None => self.decoded.get(i).map(Ok),
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
        match self.keys.binary_search(&(func, offset)) {
            Ok(i) => self.try_get(i).map_or(Ok(None), |r| r.map(Some).map_err(Clone::clone)),
            Err(_) => Ok(None),
        }
    }
}

impl From<Vec<CrRecord>> for Records {
    fn from(records: Vec<CrRecord>) -> Records {
        Records { keys: records.iter().map(|r| (r.func, r.offset)).collect(), decoded: records, lazy: None }
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

    /// Encode in the flat layout (see [`flat`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        flat::write(self)
    }

    /// Decode the flat layout, checking the version.
    pub fn from_bytes(bytes: &[u8]) -> Result<CrMeta, CrMetaError> {
        flat::read(bytes, None)
    }

    /// Decode the flat layout of a blob that lives as long as the program
    /// (the runtime's own metadata): everything but the records' locations
    /// is decoded and checked as by [`CrMeta::from_bytes`]; a record's
    /// locations are decoded and checked when it is first looked at (see
    /// [`Records`]), so a restore, which needs none, reads a few percent of
    /// the blob.
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
    pub fn func(&self, func: u32) -> Option<&CrFunc> {
        let first = self.funcs.first()?.func;
        self.funcs.get(func.checked_sub(first)? as usize)
    }
}

/// The flat encoding of [`CrMeta`]: little-endian integers, lengths as
/// `u32`, strings as length + UTF-8.
///
/// ```text
/// u32 version (= CRMETA_VERSION)
/// str isa, str module, str build
/// u32 n, n × func:   u32 func, u32 entry_point, u32 max_height, u32 k, k × u8 type
/// u32 n, n × point:  u32 func, u32 code_offset, u8 kind, u8 indirect, u32 args,
///                    u8 callee (0 none, 1 func, 2 type) + u32, u32 parent (u32::MAX: none),
///                    u32 route, u32 k, k × u8 type
/// u32 n, n × record key: u32 func, u32 offset, u32 k (its number of locations)
/// then every record's locations in record order, 12 bytes each:
///                    u8 tag (0 constant, 1 register, 2 indirect, 3 direct), u8 size,
///                    u16 DWARF register, i64 constant or offset
/// (the keys are contiguous so that opening the blob lazily, as the runtime
/// does, reads a few kilobytes of it, not all of it)
/// ```
/// Types: 0 i32, 1 i64, 2 f32, 3 f64, 4 funcref, 5 externref; kinds: 0
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
        }
    }

    fn kind_code(k: FrameKind) -> u8 {
        match k {
            FrameKind::Entry => 0,
            FrameKind::Loop => 1,
            FrameKind::Call => 2,
        }
    }

    /// Bytes of one encoded location (fixed, so a record's locations
    /// decode in one bounds-checked pass).
    pub(crate) const LOCATION_SIZE: usize = 12;

    /// Decode one location (`e`: [`LOCATION_SIZE`] bytes); the error is the
    /// offset in `e` and what is wrong.
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

    fn ty_of(c: u8) -> Option<ValType> {
        Some(match c {
            0 => ValType::I32,
            1 => ValType::I64,
            2 => ValType::F32,
            3 => ValType::F64,
            4 => ValType::FuncRef,
            5 => ValType::ExternRef,
            _ => return None,
        })
    }

    /// Encode `m`.
    pub fn write(m: &CrMeta) -> Vec<u8> {
        // Writing into a Vec cannot fail: the results are ignored.
        let mut w = Vec::with_capacity(64 + m.points.len() * 32 + m.records.iter().map(|r| 12 + r.locations.len() * 8).sum::<usize>());
        let len = |w: &mut Vec<u8>, n: usize| {
            let _ = w.write_u32::<LE>(n as u32);
        };
        let types = |w: &mut Vec<u8>, ts: &[ValType]| {
            len(w, ts.len());
            w.extend(ts.iter().map(|t| ty_code(*t)));
        };
        let _ = w.write_u32::<LE>(m.version);
        for s in [&m.isa, &m.module, &m.build] {
            len(&mut w, s.len());
            w.extend_from_slice(s.as_bytes());
        }
        len(&mut w, m.funcs.len());
        for f in &m.funcs {
            for v in [f.func, f.entry_point, f.max_height] {
                let _ = w.write_u32::<LE>(v);
            }
            types(&mut w, &f.locals);
        }
        len(&mut w, m.points.len());
        for p in &m.points {
            let _ = w.write_u32::<LE>(p.func);
            let _ = w.write_u32::<LE>(p.code_offset);
            w.push(kind_code(p.kind));
            w.push(p.indirect as u8);
            let _ = w.write_u32::<LE>(p.args);
            let (tag, v) = match p.callee {
                None => (0, 0),
                Some(Callee::Func(f)) => (1, f),
                Some(Callee::Type(t)) => (2, t),
            };
            w.push(tag);
            let _ = w.write_u32::<LE>(v);
            let _ = w.write_u32::<LE>(p.parent.unwrap_or(u32::MAX));
            let _ = w.write_u32::<LE>(p.route);
            types(&mut w, &p.stack);
        }
        len(&mut w, m.records.len());
        for r in &m.records {
            let _ = w.write_u32::<LE>(r.func);
            let _ = w.write_u32::<LE>(r.offset);
            len(&mut w, r.locations.len());
        }
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

        #[cold]
        #[inline(never)]
        fn truncated(&self, what: &str) -> CrMetaError {
            self.err(format!("truncated: expected {what}"))
        }

        #[inline(always)]
        fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CrMetaError> {
            match self.b.get(self.pos..self.pos + n) {
                Some(s) => {
                    self.pos += n;
                    Ok(s)
                }
                None => Err(self.truncated(what)),
            }
        }


        #[inline]
        fn u32(&mut self, what: &str) -> Result<u32, CrMetaError> {
            Ok(LE::read_u32(self.take(4, what)?))
        }

        /// A count of items of at least `min_size` bytes each, checked
        /// against the bytes left (a corrupt count must not allocate).
        fn count(&mut self, what: &str, min_size: usize) -> Result<usize, CrMetaError> {
            let n = self.u32(what)? as usize;
            let left = self.b.len() - self.pos;
            if n.saturating_mul(min_size) > left {
                return Err(self.err(format!("{n} {what}, but only {left} bytes are left")));
            }
            Ok(n)
        }

        fn str(&mut self, what: &str) -> Result<String, CrMetaError> {
            let n = self.count(what, 1)?;
            let start = self.pos;
            let bytes = self.take(n, what)?;
            std::str::from_utf8(bytes).map(str::to_string).map_err(|_| CrMetaError {
                offset: start as u64,
                message: format!("invalid checkpoint metadata: {what} is not UTF-8"),
            })
        }

        #[inline]
        fn types(&mut self, what: &str) -> Result<Vec<ValType>, CrMetaError> {
            let n = self.count(what, 1)?;
            if n == 0 {
                return Ok(Vec::new());
            }
            let start = self.pos;
            let codes = self.take(n, what)?;
            codes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    ty_of(*c).ok_or_else(|| CrMetaError {
                        offset: (start + i + 1) as u64,
                        message: format!("invalid checkpoint metadata: value type code {c}, expected 0 to 5"),
                    })
                })
                .collect()
        }
    }

    /// Decode a blob written by [`write`]. `keep`: the same blob, if it
    /// lives as long as the program: its records are then decoded lazily.
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
        // Fixed-size parts are taken in one bounds check each and parsed
        // from the slice: this runs in a fresh process on every restore.
        let n = r.count("functions", 16)?;
        let mut funcs = Vec::with_capacity(n);
        for _ in 0..n {
            let b = r.take(12, "a function")?;
            let (func, entry_point, max_height) = (LE::read_u32(&b[0..4]), LE::read_u32(&b[4..8]), LE::read_u32(&b[8..12]));
            let locals = r.types("locals")?;
            funcs.push(CrFunc { func, locals, entry_point, max_height });
        }
        let n = r.count("points", 27)?;
        let mut points = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.pos;
            let b = r.take(27, "a point")?;
            let bad = |off: usize, message: String| CrMetaError {
                offset: (at + off) as u64,
                message: format!("invalid checkpoint metadata: {message}"),
            };
            let kind = match b[8] {
                0 => FrameKind::Entry,
                1 => FrameKind::Loop,
                2 => FrameKind::Call,
                k => return Err(bad(8, format!("point kind {k}, expected 0 (entry), 1 (loop) or 2 (call)"))),
            };
            let indirect = match b[9] {
                0 => false,
                1 => true,
                f => return Err(bad(9, format!("flag {f}, expected 0 or 1"))),
            };
            let v = LE::read_u32(&b[15..19]);
            let callee = match b[14] {
                0 => None,
                1 => Some(Callee::Func(v)),
                2 => Some(Callee::Type(v)),
                t => return Err(bad(14, format!("callee tag {t}, expected 0 to 2"))),
            };
            let parent = Some(LE::read_u32(&b[19..23])).filter(|p| *p != u32::MAX);
            let stack = r.types("stack types")?;
            points.push(CrPoint {
                func: LE::read_u32(&b[0..4]),
                code_offset: LE::read_u32(&b[4..8]),
                kind,
                indirect,
                stack,
                args: LE::read_u32(&b[10..14]),
                callee,
                parent,
                route: LE::read_u32(&b[23..27]),
            });
        }
        let n = r.count("records", 12)?;
        let key_bytes = r.take(n * 12, "record keys")?;
        let keys_at = r.pos - n * 12;
        let mut keys = Vec::with_capacity(n);
        let mut counts = Vec::with_capacity(n);
        let mut total = 0usize;
        for (i, b) in key_bytes.chunks_exact(12).enumerate() {
            let (func, offset, k) = (LE::read_u32(&b[0..4]), LE::read_u32(&b[4..8]), LE::read_u32(&b[8..12]) as usize);
            if keys.last().is_some_and(|last| (func, offset) <= *last) {
                return Err(CrMetaError {
                    offset: (keys_at + i * 12) as u64,
                    message: format!("invalid checkpoint metadata: record (function {func}, offset {offset:#x}) out of order"),
                });
            }
            keys.push((func, offset));
            counts.push(k);
            total = total.saturating_add(k);
        }
        let left = bytes.len() - r.pos;
        if total.saturating_mul(LOCATION_SIZE) > left {
            return Err(r.err(format!("{total} locations, but only {left} bytes are left")));
        }
        let mut decoded = Vec::with_capacity(if keep.is_some() { 0 } else { n });
        let mut at = Vec::with_capacity(if keep.is_some() { n } else { 0 });
        for (&(func, offset), &k) in keys.iter().zip(&counts) {
            let start = r.pos;
            r.take(k * LOCATION_SIZE, "locations")?;
            if keep.is_some() {
                // Decoded and checked when first looked at.
                at.push((start as u32, k as u32));
            } else {
                decoded.push(CrRecord { func, offset, locations: locations(bytes, start, k)? });
            }
        }
        let records = match keep {
            Some(blob) => Records {
                keys,
                decoded: Vec::new(),
                lazy: Some(LazyRecords { blob, at, done: std::sync::Mutex::new(Vec::new()) }),
            },
            None => Records::from(decoded),
        };
        if r.pos != bytes.len() {
            return Err(r.err(format!("{} unexpected bytes after the records", bytes.len() - r.pos)));
        }
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
            ],
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
            ],
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
        // The first local's type of the first function.
        let at = 4 + (4 + 7) + (4 + 64) + (4 + 64) + 4 + 12 + 4;
        let mut v = bytes.clone();
        assert_eq!(v[at], 0);
        v[at] = 9;
        let e = CrMeta::from_bytes(&v).unwrap_err();
        assert!(e.message.contains("value type code 9"), "{e}");
        assert_eq!(e.offset, at as u64 + 1);
        // A huge count is refused before anything is allocated.
        let mut v = bytes;
        v[at - 4..at].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(CrMeta::from_bytes(&v).unwrap_err().message.contains("bytes are left"));
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
