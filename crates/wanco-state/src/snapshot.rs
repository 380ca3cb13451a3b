//! The snapshot file format, version 2: the contract every engine (the
//! interpreter, the compiled runtime on any ISA) writes and reads.
//!
//! A [`Snapshot`] is plain data in the ISA-neutral state model: frames
//! (**outermost first**) named by Wasm code offsets, typed locals and operand
//! stacks, globals, tables (`funcref`s as function indices of the module),
//! sparse linear memory, segment drop flags and the WASI state. Nothing in it
//! depends on the ISA or the engine that wrote it (the [`Producer`] is only
//! informational).
//!
//! # File layout (all integers little-endian)
//!
//! | offset     | size | field                                                     |
//! |------------|------|-----------------------------------------------------------|
//! | 0          | 8    | magic `WSNAP\0\r\n`                                       |
//! | 8          | 4    | format version (`u32`, 2; 1 is still read)                |
//! | 12         | 32   | module hash: SHA-256 of the Wasm bytes                    |
//! | 44         | 8    | body length `L` (`u64`)                                   |
//! | 52         | L    | body: MessagePack (named fields), memory pages LZ4-compressed |
//! | 52 + L     | 32   | SHA-256 of bytes `0 .. 52 + L`                            |
//!
//! [`decode`] checks, in this order: the magic, the version, the length
//! (truncation / trailing bytes), the checksum, then the body. Every error
//! carries the byte offset where the problem is and says what was expected.
//! `docs/snapshot-format.md` is the full specification.

use crate::crmeta::Location;
use crate::value::Value;
use crate::wasi::WasiState;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The 8 magic bytes every snapshot starts with.
pub const MAGIC: [u8; 8] = *b"WSNAP\0\r\n";
/// The format version this code writes (and reads). Version 2 added `v128`
/// values; a version-1 file is the same layout without them.
pub const FORMAT_VERSION: u32 = 2;
/// The format version of an **incremental** snapshot: one that names its
/// parent (the id of the snapshot it continues, [`snapshot_id`]) and stores
/// only the memory pages written since it. Full snapshots are still written
/// as [`FORMAT_VERSION`]; a reader that knows only version 2 thus refuses an
/// incremental one instead of taking its few pages for the whole memory.
pub const INCREMENTAL_VERSION: u32 = 3;
/// The oldest format version this code still reads: version 1 (no `v128`
/// values), decoded as a version-2 snapshot.
pub const MIN_FORMAT_VERSION: u32 = 1;

/// The snapshot versions this build handles, as `--version` prints them:
/// `snapshot format: writes 2 (3 for incremental snapshots), reads 1-3`.
pub fn format_versions_text() -> String {
    format!(
        "snapshot format: writes {FORMAT_VERSION} ({INCREMENTAL_VERSION} for incremental snapshots), reads {MIN_FORMAT_VERSION}-{INCREMENTAL_VERSION}"
    )
}
/// Length of the fixed header (magic, version, module hash, body length).
pub const HEADER_LEN: usize = 52;
/// Length of the trailing checksum (SHA-256).
pub const CHECKSUM_LEN: usize = 32;
/// Size of a Wasm page, the unit of [`Memory::chunks`].
pub const PAGE_SIZE: usize = 65536;
/// Most pages a 32-bit linear memory can have.
pub const MAX_PAGES: u32 = 65536;
/// Restores refuse a [`Snapshot::migration_points`] from here on: no run
/// reaches it, and counting on from near `u64::MAX` would overflow or meet
/// the "never" target.
pub const MAX_MIGRATION_POINTS: u64 = 1 << 63;

/// The migration-point rule this wanco counts by (see
/// [`Snapshot::points_rule`]). Rule 1: every function entry and every loop
/// header is a point. Rule 2: every loop header, and the entry of every
/// function whose body has a `loop` or a call (a body without either runs
/// in bounded time and is never below another frame).
pub const POINTS_RULE: u32 = 2;

/// The rule of a snapshot body without a `points_rule` field (written
/// before the field existed).
pub const POINTS_RULE_UNMARKED: u32 = 1;

/// Check that `snap` counts migration points by this wanco's rule: a
/// restore counts on from [`Snapshot::migration_points`], and checkpoint
/// targets, `wanco-snap diff --against-interp` and the engines' agreement all
/// depend on every engine counting the same points.
pub fn check_points_rule(snap: &Snapshot) -> Result<(), String> {
    if snap.points_rule == POINTS_RULE {
        return Ok(());
    }
    Err(format!(
        "the snapshot counts migration points by rule {} and this wanco counts by rule {POINTS_RULE} \
         (rule 2 has no entry point in functions without loops and calls; docs/snapshot-format.md): \
         take the checkpoint again with this wanco, or restore it with the wanco that wrote it",
        snap.points_rule
    ))
}

/// Who wrote a snapshot (informational only: restoring never depends on it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// Engine: `"interp"` or `"aot"`.
    pub engine: String,
    /// ISA of the writer (`"x86_64"`, `"aarch64"`), `None` for the interpreter.
    pub isa: Option<String>,
    /// Version of wanco that wrote it.
    pub version: String,
}

/// Which kind of migration point a frame is stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FrameKind {
    /// Function entry (innermost frame only); the code offset is the start
    /// of the function body.
    Entry,
    /// Loop header (innermost frame only); the code offset is the `loop` opcode.
    Loop,
    /// Return site of a call (every frame but the innermost); the code offset
    /// is the `call` / `call_indirect` opcode.
    Call,
}

/// One Wasm frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Function index in the module (imported functions counted first).
    pub func: u32,
    /// Byte offset of the point in the module (see [`FrameKind`]).
    pub code_offset: u32,
    /// Kind of the point.
    pub kind: FrameKind,
    /// All locals, parameters first.
    pub locals: Vec<Value>,
    /// Operand stack at the point, bottom first (for a `Call` frame: below
    /// the call's arguments).
    pub stack: Vec<Value>,
}

/// Where the frames sit on one ISA's native stack: the optional *native
/// view* of a snapshot, written by compiled producers at capture and by
/// `wanco-snap translate` for a target binary.
///
/// It describes, it does not replace: [`Snapshot::frames`] stay the
/// authoritative state and every engine restores from them. A compiled
/// binary of the same ISA and build ([`NativeStack::build`]) checks the view
/// against its own stack maps before it restores (`wanco_translate::native`).
/// [`decode`] refuses a view that does not match the frames (see
/// [`NativeStack::check_frames`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeStack {
    /// ISA of the native frames (`"x86_64"`, `"aarch64"`).
    pub isa: String,
    /// Build id of the compiled code the frames belong to
    /// ([`crate::crmeta::CrMeta::build`], 64 hex digits).
    pub build: String,
    /// The native frames, **outermost first** (as [`Snapshot::frames`]).
    pub frames: Vec<NativeFrame>,
}

/// One native (machine) frame of compiled code, stopped at a call's return
/// address; it holds one or more consecutive Wasm frames (inlining).
///
/// In the binary snapshot a frame and its slots are MessagePack arrays
/// (`[func, pc, offset, frame_size, wasm_frames, slots]`, a slot
/// `[kind, reg, offset_or_constant, size, bits]`): a deep stack has many of
/// them. Human-readable encodings (JSON) use the field names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeFrame {
    /// Module function index of the compiled function the frame belongs to.
    pub func: u32,
    /// The return address, as an address of the binary (link-time virtual
    /// address: the runtime address minus the load bias).
    pub pc: u64,
    /// `pc` minus the function's start address (the stack map record's key).
    pub offset: u32,
    /// Bytes between the frame's stack pointer and its CFA, when known (at
    /// capture; for a translation only if the CFA is sp-based).
    pub frame_size: Option<u64>,
    /// How many Wasm frames of [`Snapshot::frames`] it holds, consecutive,
    /// starting after those of the frames before it.
    pub wasm_frames: u32,
    /// One slot per location of the frame's stack map record, in record
    /// order: for each Wasm frame held, the point id (a constant), then one
    /// per local, then one per operand-stack value.
    pub slots: Vec<NativeSlot>,
}

/// One value location of a native frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NativeSlot {
    /// Where the value is: a register, a stack slot or a constant.
    pub location: Location,
    /// Its bits there (`i32`/`f32` zero-extended, the point id for a point
    /// slot); `None` for references, whose native bits are process-specific
    /// pointers.
    pub bits: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct NamedFrame {
    func: u32,
    pc: u64,
    offset: u32,
    frame_size: Option<u64>,
    wasm_frames: u32,
    slots: Vec<NativeSlot>,
}

#[derive(Serialize, Deserialize)]
struct NamedSlot {
    location: Location,
    bits: Option<u64>,
}

/// `[kind, reg, offset or constant, size, bits]`; kind 0 constant,
/// 1 register, 2 indirect, 3 direct.
type CompactSlot = (u8, u16, i64, u8, Option<u64>);

impl Serialize for NativeFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            NamedFrame {
                func: self.func,
                pc: self.pc,
                offset: self.offset,
                frame_size: self.frame_size,
                wasm_frames: self.wasm_frames,
                slots: self.slots.clone(),
            }
            .serialize(s)
        } else {
            (self.func, self.pc, self.offset, self.frame_size, self.wasm_frames, &self.slots).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NativeFrame {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NativeFrame, D::Error> {
        let f = if d.is_human_readable() {
            NamedFrame::deserialize(d)?
        } else {
            let (func, pc, offset, frame_size, wasm_frames, slots) = <(u32, u64, u32, Option<u64>, u32, Vec<NativeSlot>)>::deserialize(d)?;
            NamedFrame { func, pc, offset, frame_size, wasm_frames, slots }
        };
        Ok(NativeFrame {
            func: f.func,
            pc: f.pc,
            offset: f.offset,
            frame_size: f.frame_size,
            wasm_frames: f.wasm_frames,
            slots: f.slots,
        })
    }
}

impl Serialize for NativeSlot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return NamedSlot { location: self.location, bits: self.bits }.serialize(s);
        }
        let c: CompactSlot = match self.location {
            Location::Constant(c) => (0, 0, c, 0, self.bits),
            Location::Register { reg, size } => (1, reg, 0, size, self.bits),
            Location::Indirect { reg, offset, size } => (2, reg, i64::from(offset), size, self.bits),
            Location::Direct { reg, offset } => (3, reg, i64::from(offset), 0, self.bits),
        };
        c.serialize(s)
    }
}

impl<'de> Deserialize<'de> for NativeSlot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NativeSlot, D::Error> {
        if d.is_human_readable() {
            let n = NamedSlot::deserialize(d)?;
            return Ok(NativeSlot { location: n.location, bits: n.bits });
        }
        let (kind, reg, off, size, bits): CompactSlot = Deserialize::deserialize(d)?;
        let offset = || {
            i32::try_from(off).map_err(|_| serde::de::Error::custom(format!("native slot offset {off} does not fit 32 bits")))
        };
        let location = match kind {
            0 => Location::Constant(off),
            1 => Location::Register { reg, size },
            2 => Location::Indirect { reg, offset: offset()?, size },
            3 => Location::Direct { reg, offset: offset()? },
            k => return Err(serde::de::Error::custom(format!("native slot kind {k}, expected 0 (constant), 1 (register), 2 (indirect) or 3 (direct)"))),
        };
        Ok(NativeSlot { location, bits })
    }
}

impl NativeStack {
    /// Check that the view holds exactly `frames`: the Wasm frame counts add
    /// up, each native frame has one slot per point id, local and stack value
    /// (two for a v128: its low, then its high 64 bits)
    /// of the Wasm frames it holds, and every non-reference value's bits
    /// equal the slot's. Errors name the native frame and slot.
    pub fn check_frames(&self, frames: &[Frame]) -> Result<(), String> {
        let total: u64 = self.frames.iter().map(|f| u64::from(f.wasm_frames)).sum();
        if total != frames.len() as u64 {
            return Err(format!(
                "the native frames hold {total} Wasm frames, the snapshot has {}",
                frames.len()
            ));
        }
        let mut next = 0usize;
        for (k, nf) in self.frames.iter().enumerate() {
            let held = &frames[next..next + nf.wasm_frames as usize];
            next += nf.wasm_frames as usize;
            if nf.wasm_frames == 0 {
                return Err(format!("native frame {k} holds no Wasm frame"));
            }
            // A v128 takes two slots (its low, then its high 64 bits).
            let width = |v: &Value| if matches!(v, Value::V128(_)) { 2 } else { 1 };
            let need: usize =
                held.iter().map(|f| 1 + f.locals.iter().chain(&f.stack).map(width).sum::<usize>()).sum();
            if nf.slots.len() != need {
                return Err(format!(
                    "native frame {k} (function {}, pc {:#x}) has {} slots, its {} Wasm frame(s) need {need}",
                    nf.func,
                    nf.pc,
                    nf.slots.len(),
                    held.len()
                ));
            }
            let mut slots = nf.slots.iter().enumerate();
            for (j, f) in held.iter().enumerate() {
                let (i, point) = slots.next().expect("counted");
                if !matches!(point.location, Location::Constant(_)) {
                    return Err(format!(
                        "native frame {k}, slot {i}: the point id of Wasm frame {} should be a constant, found {:?}",
                        next - held.len() + j,
                        point.location
                    ));
                }
                let values = f.locals.iter().map(|v| ("local", v)).chain(f.stack.iter().map(|v| ("stack slot", v)));
                let mut counts = (0usize, 0usize);
                for (what, v) in values {
                    let (i, slot) = slots.next().expect("counted");
                    let idx = if what == "local" { &mut counts.0 } else { &mut counts.1 };
                    let want = match *v {
                        Value::V128(x) => {
                            let (i, hi) = slots.next().expect("counted");
                            if hi.bits != Some((x >> 64) as u64) {
                                return Err(format!(
                                    "native frame {k}, slot {i} ({what} {} of Wasm frame {}): holds {}, the frame has {v} (high half)",
                                    *idx,
                                    next - held.len() + j,
                                    hi.bits.map_or_else(|| "a reference".to_string(), |b| format!("{b:#x}"))
                                ));
                            }
                            Some(x as u64)
                        }
                        _ => v.raw_bits(),
                    };
                    if slot.bits != want {
                        return Err(format!(
                            "native frame {k}, slot {i} ({what} {} of Wasm frame {}): holds {}, the frame has {v}",
                            *idx,
                            next - held.len() + j,
                            slot.bits.map_or_else(|| "a reference".to_string(), |b| format!("{b:#x}"))
                        ));
                    }
                    *idx += 1;
                }
            }
        }
        Ok(())
    }
}

/// Linear memory 0, sparse: only pages that are not all zero are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Current size in pages.
    pub pages: u32,
    /// Maximum size in pages, if the memory has one.
    pub max: Option<u32>,
    /// `(page index, page bytes)`: each chunk is exactly [`PAGE_SIZE`] bytes,
    /// indices strictly ascending and below `pages`. Pages not listed are zero.
    pub chunks: Vec<(u32, Vec<u8>)>,
}

impl Memory {
    /// Sparse description of `data` (whose length must be a multiple of
    /// [`PAGE_SIZE`]; a partial last page is zero-padded).
    pub fn from_bytes(data: &[u8], max: Option<u32>) -> Memory {
        let mut chunks = Vec::new();
        for (i, page) in data.chunks(PAGE_SIZE).enumerate() {
            if !is_zero(page) {
                let mut p = page.to_vec();
                p.resize(PAGE_SIZE, 0);
                chunks.push((i as u32, p));
            }
        }
        Memory {
            pages: data.len().div_ceil(PAGE_SIZE) as u32,
            max,
            chunks,
        }
    }

    /// The pages compressed, as a snapshot file stores them.
    pub fn pack(&self) -> PackedMemory {
        // A chunk breaking the invariant (not one page long) is written as
        // it is, and refused by `decode`.
        let mut c = PageCompressor::new();
        let chunks = self.chunks.iter().map(|(i, page)| c.chunk(*i, page)).collect();
        PackedMemory { pages: self.pages, max: self.max, chunks, file: None }
    }

    /// The full memory contents (`pages * PAGE_SIZE` bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut data = vec![0u8; self.pages as usize * PAGE_SIZE];
        for (i, page) in &self.chunks {
            let start = *i as usize * PAGE_SIZE;
            if let Some(dst) = data.get_mut(start..start + PAGE_SIZE) {
                let n = page.len().min(PAGE_SIZE);
                dst[..n].copy_from_slice(&page[..n]);
            }
        }
        data
    }
}

/// Whether every byte is zero (16 bytes at a time: scanning a memory of a
/// few MiB is on the checkpoint's critical path).
fn is_zero(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(16);
    let wide = chunks.by_ref().all(|c| {
        let mut w = [0u8; 16];
        w.copy_from_slice(c);
        u128::from_ne_bytes(w) == 0
    });
    wide && chunks.remainder().iter().all(|b| *b == 0)
}

/// A checkpoint of a WebAssembly program in the ISA-neutral state model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Who wrote it.
    pub producer: Producer,
    /// SHA-256 of the module's Wasm bytes.
    pub module_hash: [u8; 32],
    /// Migration points crossed when the snapshot was taken (the point the
    /// innermost frame stands at included).
    pub migration_points: u64,
    /// The migration-point rule `migration_points` was counted by
    /// ([`POINTS_RULE`] when written by this wanco; restores refuse any
    /// other, see [`check_points_rule`]). Body field `points_rule`, absent
    /// in rule-1 snapshots.
    pub points_rule: u32,
    /// The Wasm frames, **outermost first**; the last one is the frame that
    /// reached the migration point.
    pub frames: Vec<Frame>,
    /// Every global (imported first). `funcref`s are function indices.
    pub globals: Vec<Value>,
    /// Every table's elements (imported first). `funcref`s are function indices.
    pub tables: Vec<Vec<Value>>,
    /// Linear memory 0, if the module has one.
    pub memory: Option<Memory>,
    /// Which data segments have been dropped.
    pub data_dropped: Vec<bool>,
    /// Which element segments have been dropped.
    pub elem_dropped: Vec<bool>,
    /// The WASI host's state.
    pub wasi: WasiState,
    /// The native view of `frames` on one ISA, if the writer had one
    /// (optional; see [`NativeStack`]).
    pub native: Option<NativeStack>,
}

/// Why a snapshot could not be read or used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotError {
    /// Byte offset in the file where the problem is.
    pub offset: u64,
    /// What is wrong and what was expected.
    pub message: String,
}

impl SnapshotError {
    fn new(offset: u64, message: impl Into<String>) -> SnapshotError {
        SnapshotError {
            offset,
            message: message.into(),
        }
    }

    /// An error at byte `offset` of a file (for the formats beside the
    /// snapshot's, e.g. [`crate::image`]).
    pub fn at(offset: u64, message: impl Into<String>) -> SnapshotError {
        SnapshotError::new(offset, message)
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for SnapshotError {}

fn short_hex(h: &[u8; 32]) -> String {
    let s: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{s}…")
}

impl Snapshot {
    /// Check that the snapshot was written for the module whose SHA-256 is
    /// `hash`.
    pub fn check_module(&self, hash: &[u8; 32]) -> Result<(), SnapshotError> {
        if &self.module_hash == hash {
            Ok(())
        } else {
            Err(SnapshotError::new(
                12,
                format!(
                    "snapshot was written for module sha256 {}, this module is {}",
                    short_hex(&self.module_hash),
                    short_hex(hash)
                ),
            ))
        }
    }
}

/// Why `path` cannot receive a checkpoint, found out before the program
/// runs (both engines): its directory does not exist, or it is a directory.
/// The message follows `--checkpoint-file PATH: `.
pub fn checkpoint_file_problem(path: &std::path::Path) -> Option<String> {
    if path.as_os_str().is_empty() {
        return Some("the path is empty".into());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        Some(format!("the directory {} does not exist", dir.display()))
    } else if path.is_dir() {
        Some("it is a directory".into())
    } else {
        None
    }
}

/// Why `--checkpoint-after-points n` can never be met, if it cannot (the
/// same words in every engine).
pub fn checkpoint_target_problem(n: u64) -> Option<String> {
    (n >= MAX_MIGRATION_POINTS).then(|| format!("--checkpoint-after-points {n}: no run reaches 2^63 migration points"))
}

/// The note every engine prints when a restored snapshot is already past
/// `--checkpoint-after-points n` (taken after `points` points).
pub fn target_behind_note(n: u64, points: u64) -> String {
    format!(
        "note: --checkpoint-after-points {n}: the snapshot was taken after {points} migration points, past that one: no checkpoint will be taken"
    )
}

/// A MessagePack `bin` read back into a `Vec<u8>` in one copy (not byte by
/// byte as an array): `#[serde(deserialize_with = "bin::deserialize")]`.
mod bin {
    use serde::Deserializer;
    use std::fmt;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A stored page: its index and its LZ4 bytes.
#[derive(Debug)]
struct WireChunk {
    page: u32,
    lz4: Lz4,
}

/// Where a stored page's LZ4 bytes are.
#[derive(Debug)]
enum Lz4 {
    /// Compressed by this process (a checkpoint).
    Owned(Vec<u8>),
    /// `len` bytes at `start` in the snapshot file a [`PackedMemory`] was
    /// decoded from ([`PackedMemory::file`]): decoding copies no page.
    InFile { start: usize, len: usize },
}

/// The bytes of a snapshot file, shared by what was decoded from it
/// without copying ([`decode_shared`]): a `Vec` or a mapping of the file.
pub type SharedBytes = std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A stored page as written: `{page, lz4}` with `lz4` a MessagePack `bin`.
#[derive(Serialize)]
struct ChunkOut<'a> {
    page: u32,
    #[serde(serialize_with = "bin_ref")]
    lz4: &'a [u8],
}

fn bin_ref<S: Serializer>(v: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

/// Memory as written (field order and names of the format).
#[derive(Serialize)]
struct PackedOut<'a> {
    pages: u32,
    max: Option<u32>,
    chunks: Vec<ChunkOut<'a>>,
}

/// Memory as read without copying its pages (borrowing the body).
#[derive(Deserialize)]
struct PackedIn<'a> {
    pages: u32,
    max: Option<u32>,
    #[serde(borrow)]
    chunks: Vec<ChunkIn<'a>>,
}

#[derive(Deserialize)]
struct ChunkIn<'a> {
    page: u32,
    lz4: &'a [u8],
}

/// Memory as read by the copying reader, which only runs to find where a
/// body that does not decode goes wrong (it reports the byte offset).
#[derive(Deserialize)]
#[allow(dead_code)] // read to check the layout, never used
struct PackedCopied {
    pages: u32,
    max: Option<u32>,
    chunks: Vec<ChunkCopied>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ChunkCopied {
    page: u32,
    #[serde(deserialize_with = "bin::deserialize")]
    lz4: Vec<u8>,
}

/// Linear memory as a snapshot file stores it: the non-zero pages, each
/// LZ4-compressed. A checkpoint packs a live memory without copying it
/// ([`PackedMemory::pack`]) and a restore unpacks it straight into linear
/// memory ([`PackedMemory::unpack_into`]); [`Memory`] is the same content
/// with the pages decompressed.
pub struct PackedMemory {
    /// Current size in pages.
    pub pages: u32,
    /// Maximum size in pages, if the memory has one.
    pub max: Option<u32>,
    chunks: Vec<WireChunk>,
    /// The snapshot file the pages are in ([`Lz4::InFile`]), if decoded.
    file: Option<SharedBytes>,
}

impl fmt::Debug for PackedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedMemory")
            .field("pages", &self.pages)
            .field("max", &self.max)
            .field("stored", &self.chunks.iter().map(|c| c.page).collect::<Vec<_>>())
            .finish()
    }
}

impl PartialEq for PackedMemory {
    fn eq(&self, other: &PackedMemory) -> bool {
        self.pages == other.pages
            && self.max == other.max
            && self.chunks.len() == other.chunks.len()
            && self.chunks.iter().zip(&other.chunks).all(|(a, b)| a.page == b.page && self.lz4(a) == other.lz4(b))
    }
}

impl Eq for PackedMemory {}

impl Serialize for PackedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PackedOut {
            pages: self.pages,
            max: self.max,
            chunks: self.chunks.iter().map(|c| ChunkOut { page: c.page, lz4: self.lz4(c) }).collect(),
        }
        .serialize(s)
    }
}

impl PackedMemory {
    /// The snapshot file the pages are in (empty if packed here).
    fn file_bytes(&self) -> &[u8] {
        self.file.as_ref().map_or(&[][..], |f| (**f).as_ref())
    }

    /// The LZ4 bytes of a stored page.
    fn lz4<'a>(&'a self, c: &'a WireChunk) -> &'a [u8] {
        lz4_of(c, self.file_bytes())
    }

    /// Pack `data` (a whole linear memory, a multiple of [`PAGE_SIZE`]
    /// bytes; a partial last page is zero-padded): every page that is not
    /// all zero, compressed. `known_zero(page)` may say that a page is zero
    /// without it being read (e.g. memory the process never touched).
    /// [`PagePacker`] does the same on several threads.
    pub fn pack(data: &[u8], max: Option<u32>, known_zero: impl Fn(u32) -> bool + Sync) -> PackedMemory {
        let packer = PagePacker::new(data, max, known_zero);
        let part = packer.work();
        packer.finish([part])
    }

    /// The indices of the stored (non-zero) pages, ascending.
    pub fn stored_pages(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().map(|c| c.page)
    }

    /// The stored pages as runs of consecutive indices: `(first, count)`,
    /// ascending.
    pub fn stored_runs(&self) -> Vec<(u32, u32)> {
        runs(&self.chunks).map(|r| (self.chunks[r.start].page, r.len() as u32)).collect()
    }

    /// Check the size, the maximum and the page indices (`at`: the offset
    /// errors report).
    fn check(&self, at: u64) -> Result<(), SnapshotError> {
        if self.pages > MAX_PAGES {
            return Err(SnapshotError::new(at, format!("invalid memory: {} pages, expected at most {MAX_PAGES}", self.pages)));
        }
        if let Some(max) = self.max {
            if max < self.pages || max > MAX_PAGES {
                return Err(SnapshotError::new(
                    at,
                    format!("invalid memory: maximum {max} pages, expected between the size ({}) and {MAX_PAGES}", self.pages),
                ));
            }
        }
        let mut next = 0u32;
        for c in &self.chunks {
            if c.page < next || c.page >= self.pages {
                return Err(SnapshotError::new(
                    at,
                    format!(
                        "invalid memory: page {} out of order or out of range, expected an index from {next} to {} (exclusive)",
                        c.page, self.pages
                    ),
                ));
            }
            next = c.page + 1;
        }
        Ok(())
    }

    /// Decompress the stored pages into `dst`, the whole memory
    /// (`pages * PAGE_SIZE` bytes; pages not stored are left as they are,
    /// so `dst` should be zero there). Errors name the page that does not
    /// decompress to exactly one page.
    pub fn unpack_into(&self, dst: &mut [u8]) -> Result<(), SnapshotError> {
        for share in self.unpack_shares(dst, 1)? {
            share.run(&|_: &mut [u8]| {})?;
        }
        Ok(())
    }

    /// [`PackedMemory::unpack_into`] split into `n` shares (fewer if there
    /// are fewer stored pages) of about as many pages each, over disjoint
    /// parts of `dst`, for as many threads.
    pub fn unpack_shares<'a>(&'a self, dst: &'a mut [u8], n: usize) -> Result<Vec<UnpackShare<'a>>, SnapshotError> {
        if dst.len() != self.pages as usize * PAGE_SIZE {
            return Err(SnapshotError::new(
                HEADER_LEN as u64,
                format!("memory of {} bytes given for a snapshot memory of {} pages", dst.len(), self.pages),
            ));
        }
        // Decoded snapshots are checked; this keeps the split below sound
        // for any value.
        self.check(HEADER_LEN as u64)?;
        let total = self.chunks.len();
        let n = n.clamp(1, total.max(1));
        // Share g has chunks[bounds[g]..bounds[g + 1]] and the part of `dst`
        // from its first page to the next share's first page.
        let bounds: Vec<usize> = (0..=n).map(|g| g * total / n).collect();
        let file = self.file_bytes();
        let mut shares = Vec::with_capacity(n);
        let mut rest = dst;
        let mut rest_start = 0usize;
        for g in 0..n {
            let end = match self.chunks.get(bounds[g + 1]) {
                Some(c) if g + 1 < n => c.page as usize * PAGE_SIZE,
                _ => rest_start + rest.len(),
            };
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(end - rest_start);
            shares.push(UnpackShare { chunks: &self.chunks[bounds[g]..bounds[g + 1]], file, part, base: rest_start });
            rest = tail;
            rest_start = end;
        }
        Ok(shares)
    }

    /// How many pages are stored (not all zero).
    pub fn stored_count(&self) -> usize {
        self.chunks.len()
    }

    /// The page index of the `k`-th stored page.
    pub fn stored_page(&self, k: usize) -> Option<u32> {
        self.chunks.get(k).map(|c| c.page)
    }

    /// The `k`-th stored page: its index and its LZ4 bytes as stored (for
    /// sending pages without decompressing them, e.g. pre-copy rounds).
    pub fn stored_lz4(&self, k: usize) -> Option<(u32, &[u8])> {
        self.chunks.get(k).map(|c| (c.page, self.lz4(c)))
    }

    /// Where page `page` is among the stored pages ([`PackedMemory::stored_pages`]
    /// order), or `None` if it is not stored (it is zero).
    pub fn stored_index(&self, page: u32) -> Option<usize> {
        self.chunks.binary_search_by_key(&page, |c| c.page).ok()
    }

    /// Decompress the `k`-th stored page into `dst` ([`PAGE_SIZE`] bytes);
    /// returns its page index. Errors name the page that does not
    /// decompress to exactly one page, or a `k` out of range.
    pub fn unpack_stored(&self, k: usize, dst: &mut [u8]) -> Result<u32, SnapshotError> {
        let c = self.chunks.get(k).ok_or_else(|| {
            SnapshotError::new(HEADER_LEN as u64, format!("stored page {k} asked for, the memory stores {}", self.chunks.len()))
        })?;
        unpack_page(c, self.lz4(c), dst)?;
        Ok(c.page)
    }

    /// Decompress the pages into a [`Memory`].
    pub fn unpack(&self) -> Result<Memory, SnapshotError> {
        let mut chunks = Vec::with_capacity(self.chunks.len());
        for c in &self.chunks {
            let mut page = vec![0u8; PAGE_SIZE];
            unpack_page(c, self.lz4(c), &mut page)?;
            chunks.push((c.page, page));
        }
        Ok(Memory { pages: self.pages, max: self.max, chunks })
    }
}

/// Part of a [`PackedMemory`] to decompress into its part of linear memory
/// ([`PackedMemory::unpack_shares`]); shares can run on different threads.
pub struct UnpackShare<'a> {
    chunks: &'a [WireChunk],
    /// The file [`Lz4::InFile`] chunks are in.
    file: &'a [u8],
    part: &'a mut [u8],
    /// Byte offset of `part` in the memory.
    base: usize,
}

impl UnpackShare<'_> {
    /// Decompress the share's pages. `prepare(run)` is called on each run of
    /// consecutive stored pages before they are written, e.g. to back them
    /// with memory in one system call.
    pub fn run(self, prepare: &dyn Fn(&mut [u8])) -> Result<(), SnapshotError> {
        let (chunks, file, part, base) = (self.chunks, self.file, self.part, self.base);
        for run in runs(chunks) {
            let run = &chunks[run];
            let start = run[0].page as usize * PAGE_SIZE - base;
            prepare(&mut part[start..start + run.len() * PAGE_SIZE]);
            for c in run {
                let at = c.page as usize * PAGE_SIZE - base;
                unpack_page(c, lz4_of(c, file), &mut part[at..at + PAGE_SIZE])?;
            }
        }
        Ok(())
    }
}

/// The runs of consecutive pages in `chunks` (ascending pages), as index
/// ranges into `chunks`.
fn runs(chunks: &[WireChunk]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = i;
        if start >= chunks.len() {
            return None;
        }
        i += 1;
        while i < chunks.len() && chunks[i].page == chunks[i - 1].page + 1 {
            i += 1;
        }
        Some(start..i)
    })
}

/// LZ4-compresses pages through one worst-case-sized scratch buffer.
struct PageCompressor {
    scratch: Vec<u8>,
}

impl PageCompressor {
    fn new() -> PageCompressor {
        PageCompressor { scratch: vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)] }
    }

    /// The stored form of page `index` with contents `page`.
    fn chunk(&mut self, index: u32, page: &[u8]) -> WireChunk {
        let lz4 = if page.len() <= PAGE_SIZE {
            // The scratch buffer has the worst-case size: compressing cannot fail.
            let n = lz4_flex::block::compress_into(page, &mut self.scratch).unwrap_or(0);
            self.scratch[..n].to_vec()
        } else {
            lz4_flex::block::compress(page)
        };
        WireChunk { page: index, lz4: Lz4::Owned(lz4) }
    }
}

/// Packs a live linear memory on several threads at once: every thread
/// that calls [`PagePacker::work`] takes the next page not yet taken until
/// none are left, so the threads share the work however long each joins
/// in; [`PagePacker::finish`] puts the parts together.
pub struct PagePacker<'a, Z> {
    data: &'a [u8],
    max: Option<u32>,
    known_zero: Z,
    /// Pages below this index are stored even when all zero (an
    /// incremental snapshot: a written page that became zero must replace
    /// the parent's page).
    keep_zero_below: u32,
    next: std::sync::atomic::AtomicUsize,
}

/// The pages one [`PagePacker::work`] call packed.
pub struct PackedPart(Vec<WireChunk>);

impl<'a, Z: Fn(u32) -> bool + Sync> PagePacker<'a, Z> {
    /// Pack `data` as [`PackedMemory::pack`] does.
    pub fn new(data: &'a [u8], max: Option<u32>, known_zero: Z) -> PagePacker<'a, Z> {
        PagePacker { data, max, known_zero, keep_zero_below: 0, next: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Pack the pages of an incremental snapshot whose parent had
    /// `parent_pages` pages: below that, only the pages `skip` does not
    /// skip (those written since the parent), each stored even when all
    /// zero; from there on (the memory grew since) every page that is not
    /// all zero, as the parent had zeros there.
    pub fn incremental(data: &'a [u8], max: Option<u32>, parent_pages: u32, skip: Z) -> PagePacker<'a, Z> {
        PagePacker { data, max, known_zero: skip, keep_zero_below: parent_pages, next: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Compress pages until every page is taken.
    pub fn work(&self) -> PackedPart {
        let mut out = Vec::new();
        let mut c: Option<PageCompressor> = None;
        let mut padded = Vec::new();
        let n = self.data.len().div_ceil(PAGE_SIZE);
        loop {
            let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                break;
            }
            let page = &self.data[i * PAGE_SIZE..((i + 1) * PAGE_SIZE).min(self.data.len())];
            let skip = if (i as u32) < self.keep_zero_below {
                // Incremental, within the parent's size: the written pages.
                (self.known_zero)(i as u32)
            } else {
                (self.keep_zero_below == 0 && (self.known_zero)(i as u32)) || is_zero(page)
            };
            if skip {
                continue;
            }
            let page = if page.len() == PAGE_SIZE {
                page
            } else {
                padded.clear();
                padded.extend_from_slice(page);
                padded.resize(PAGE_SIZE, 0);
                &padded[..]
            };
            out.push(c.get_or_insert_with(PageCompressor::new).chunk(i as u32, page));
        }
        PackedPart(out)
    }

    /// The packed memory, from the parts of every [`PagePacker::work`] call.
    pub fn finish(self, parts: impl IntoIterator<Item = PackedPart>) -> PackedMemory {
        let mut chunks: Vec<WireChunk> = parts.into_iter().flat_map(|p| p.0).collect();
        chunks.sort_unstable_by_key(|c| c.page);
        PackedMemory { pages: self.data.len().div_ceil(PAGE_SIZE) as u32, max: self.max, chunks, file: None }
    }
}

/// The LZ4 bytes of `c`, whose [`Lz4::InFile`] bytes are in `file`.
fn lz4_of<'a>(c: &'a WireChunk, file: &'a [u8]) -> &'a [u8] {
    match &c.lz4 {
        Lz4::Owned(v) => v,
        // In range: set from a slice of this very file.
        Lz4::InFile { start, len } => &file[*start..*start + *len],
    }
}

/// Decompress one stored page (`lz4`, the bytes of `c`) into `page`
/// (exactly [`PAGE_SIZE`] bytes).
/// Compress one Wasm page (65,536 bytes) as [`unpack_lz4_page`] reads it.
pub fn pack_lz4_page(page: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress(page)
}

/// Decompress Wasm page `page` (LZ4 as [`PackedMemory::stored_lz4`] gives
/// it, e.g. received in a post-copy migration) into `dst` (65,536 bytes).
pub fn unpack_lz4_page(page: u32, lz4: &[u8], dst: &mut [u8]) -> Result<(), String> {
    match lz4_flex::block::decompress_into(lz4, dst) {
        Ok(PAGE_SIZE) => Ok(()),
        Ok(n) => Err(format!("memory page {page} decompresses to {n} bytes, expected {PAGE_SIZE}")),
        Err(e) => Err(format!("memory page {page} is not valid LZ4 data: {e}")),
    }
}

fn unpack_page(c: &WireChunk, lz4: &[u8], page: &mut [u8]) -> Result<(), SnapshotError> {
    let at = HEADER_LEN as u64;
    match lz4_flex::block::decompress_into(lz4, page) {
        Ok(PAGE_SIZE) => Ok(()),
        Ok(n) => Err(SnapshotError::new(
            at,
            format!("invalid memory: page {} decompresses to {n} bytes, expected {PAGE_SIZE}", c.page),
        )),
        Err(e) => Err(SnapshotError::new(at, format!("invalid memory: page {} is not valid LZ4 data: {e}", c.page))),
    }
}

/// The body as written (borrowing the snapshot).
#[derive(Serialize)]
struct BodyRef<'a> {
    producer: &'a Producer,
    migration_points: u64,
    frames: &'a [Frame],
    globals: &'a [Value],
    tables: &'a [Vec<Value>],
    memory: Option<&'a PackedMemory>,
    data_dropped: &'a [bool],
    elem_dropped: &'a [bool],
    wasi: &'a WasiState,
    #[serde(skip_serializing_if = "Option::is_none")]
    native: Option<&'a NativeStack>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_bin_ref")]
    parent: Option<&'a [u8]>,
    points_rule: u32,
}

fn opt_bin_ref<S: Serializer>(v: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_bytes(b),
        None => s.serialize_none(),
    }
}

/// The optional `parent` field as read: a MessagePack `bin`.
#[derive(Default)]
struct ParentIn(Option<Vec<u8>>);

impl<'de> Deserialize<'de> for ParentIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ParentIn, D::Error> {
        bin::deserialize(d).map(|v| ParentIn(Some(v)))
    }
}

/// The body as read, the memory pages borrowed from it. Field order and
/// names must match [`BodyRef`].
#[derive(Deserialize)]
struct Body<M> {
    producer: Producer,
    migration_points: u64,
    frames: Vec<Frame>,
    globals: Vec<Value>,
    tables: Vec<Vec<Value>>,
    memory: Option<M>,
    data_dropped: Vec<bool>,
    elem_dropped: Vec<bool>,
    wasi: WasiState,
    #[serde(default)]
    native: Option<NativeStack>,
    #[serde(default)]
    parent: ParentIn,
    #[serde(default = "points_rule_unmarked")]
    points_rule: u32,
}

fn points_rule_unmarked() -> u32 {
    POINTS_RULE_UNMARKED
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// Write `snap` in format version [`FORMAT_VERSION`]. Deterministic: the same snapshot always
/// gives the same bytes. (A [`Memory`] that breaks its invariants gives a
/// file that [`decode`] rejects.)
pub fn encode(snap: &Snapshot) -> Vec<u8> {
    let memory = snap.memory.as_ref().map(Memory::pack);
    encode_packed(snap, memory.as_ref())
}

/// Write `snap` with `memory` (already packed) in place of `snap.memory`.
pub fn encode_packed(snap: &Snapshot, memory: Option<&PackedMemory>) -> Vec<u8> {
    encode_with_parent(snap, memory, None)
}

/// Write an incremental snapshot (format version [`INCREMENTAL_VERSION`]):
/// `memory` holds only the pages written since the snapshot whose id
/// ([`snapshot_id`]) is `parent` (packed with [`PagePacker::incremental`]);
/// everything else is whole, as in a full snapshot.
pub fn encode_incremental(snap: &Snapshot, memory: Option<&PackedMemory>, parent: &[u8; 32]) -> Vec<u8> {
    encode_with_parent(snap, memory, Some(parent))
}

/// The id of a snapshot file: its trailing SHA-256 checksum (what an
/// incremental snapshot names as its parent). `None` if the file is
/// shorter than a header and a checksum.
pub fn snapshot_id(bytes: &[u8]) -> Option<[u8; 32]> {
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return None;
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&bytes[bytes.len() - CHECKSUM_LEN..]);
    Some(id)
}

fn encode_with_parent(snap: &Snapshot, memory: Option<&PackedMemory>, parent: Option<&[u8; 32]>) -> Vec<u8> {
    let body = BodyRef {
        producer: &snap.producer,
        migration_points: snap.migration_points,
        points_rule: snap.points_rule,
        frames: &snap.frames,
        globals: &snap.globals,
        tables: &snap.tables,
        memory,
        data_dropped: &snap.data_dropped,
        elem_dropped: &snap.elem_dropped,
        wasi: &snap.wasi,
        native: snap.native.as_ref(),
        parent: parent.map(|p| &p[..]),
    };
    // Serializing plain data into a Vec cannot fail.
    let body = rmp_serde::to_vec_named(&body).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    let version = if parent.is_some() { INCREMENTAL_VERSION } else { FORMAT_VERSION };
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&snap.module_hash);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    let sum = sha256(&out);
    out.extend_from_slice(&sum);
    out
}

/// Read a snapshot. Checks the magic, the version, the length, the checksum
/// and then the body, in this order; never panics.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let (mut snap, packed) = decode_packed(bytes)?;
    snap.memory = packed.map(|m| m.unpack()).transpose()?;
    Ok(snap)
}

/// Read a snapshot like [`decode`], but leave the memory pages compressed:
/// the returned snapshot's `memory` is `None` and the memory, its size,
/// maximum and page indices checked, is returned beside it (a restore
/// unpacks it straight into linear memory). A page that does not
/// decompress is reported by [`PackedMemory::unpack_into`].
pub fn decode_packed(bytes: &[u8]) -> Result<(Snapshot, Option<PackedMemory>), SnapshotError> {
    let (snap, memory, _) = decode_shared(std::sync::Arc::new(bytes.to_vec()), Checksum::Now)?;
    Ok((snap, memory))
}

/// When [`decode_shared`] compares the checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// Before the body is read, as [`decode`] does.
    Now,
    /// Not at all: it is returned as a [`PendingChecksum`] for the caller
    /// to compare later, before anything it did with the snapshot is seen
    /// outside (a lazy restore compares it while the program already runs,
    /// `wanco-rt::pager`). Every other check is made as by [`decode`], so
    /// a damaged file still decodes to nothing worse than a well-formed
    /// snapshot with wrong values.
    Later,
}

/// The checksum of a snapshot decoded with [`Checksum::Later`], still to
/// be compared, a piece at a time ([`PendingChecksum::step`]) or at once.
pub struct PendingChecksum {
    file: SharedBytes,
    body_end: usize,
    hashed: usize,
    hasher: sha2::Sha256,
}

impl PendingChecksum {
    /// Hash up to `max` more bytes of the file; `Some` with the outcome
    /// once all are hashed (the error is [`decode`]'s checksum mismatch).
    pub fn step(&mut self, max: usize) -> Option<Result<(), SnapshotError>> {
        use sha2::Digest;
        let bytes = (*self.file).as_ref();
        let end = self.body_end.min(self.hashed.saturating_add(max.max(1)));
        self.hasher.update(&bytes[self.hashed..end]);
        self.hashed = end;
        if end < self.body_end {
            return None;
        }
        let sum: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        Some(if sum[..] == bytes[self.body_end..] { Ok(()) } else { Err(checksum_mismatch(self.body_end)) })
    }

    /// Compare it now.
    pub fn finish(mut self) -> Result<(), SnapshotError> {
        loop {
            if let Some(r) = self.step(usize::MAX) {
                return r;
            }
        }
    }

    /// Bytes still to hash.
    pub fn remaining(&self) -> usize {
        self.body_end - self.hashed
    }
}

fn checksum_mismatch(body_end: usize) -> SnapshotError {
    SnapshotError::new(body_end as u64, "checksum mismatch: the file is damaged")
}

/// [`decode_packed`] for a file that stays in memory as long as the
/// returned memory: its pages are not copied out of `file` (a restore maps
/// the snapshot file and decompresses the pages straight from it). With
/// [`Checksum::Later`] the checksum is left to the caller.
pub fn decode_shared(
    file: SharedBytes,
    checksum: Checksum,
) -> Result<(Snapshot, Option<PackedMemory>, Option<PendingChecksum>), SnapshotError> {
    let (snap, memory, pending, parent) = decode_any(file, checksum)?;
    if let Some(p) = parent {
        return Err(SnapshotError::new(
            8,
            format!(
                "this is an incremental snapshot (format version {INCREMENTAL_VERSION}): it holds only the memory pages written since its parent {}; merge its chain into one full snapshot first (`wanco-snap merge`)",
                short_hex(&p)
            ),
        ));
    }
    Ok((snap, memory, pending))
}

/// [`decode_shared`] for a full or an incremental snapshot: the fourth
/// value is the parent's id if it is incremental (its memory then holds
/// only the pages written since the parent: a restore lays them over the
/// parent's memory, e.g. a memory image, [`crate::image`]).
#[allow(clippy::type_complexity)]
pub fn decode_shared_link(
    file: SharedBytes,
    checksum: Checksum,
) -> Result<(Snapshot, Option<PackedMemory>, Option<PendingChecksum>, Option<[u8; 32]>), SnapshotError> {
    decode_any(file, checksum)
}

/// Read a full or an incremental snapshot (checksum compared): the
/// snapshot, its memory (for an incremental one only the pages written
/// since its parent, see [`PagePacker::incremental`]) and the parent's id
/// if it is incremental.
pub fn decode_link(bytes: &[u8]) -> Result<(Snapshot, Option<PackedMemory>, Option<[u8; 32]>), SnapshotError> {
    let (snap, memory, _, parent) = decode_any(std::sync::Arc::new(bytes.to_vec()), Checksum::Now)?;
    Ok((snap, memory, parent))
}

#[allow(clippy::type_complexity)]
fn decode_any(
    file: SharedBytes,
    checksum: Checksum,
) -> Result<(Snapshot, Option<PackedMemory>, Option<PendingChecksum>, Option<[u8; 32]>), SnapshotError> {
    let bytes: &[u8] = (*file).as_ref();
    // Magic.
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return Err(SnapshotError::new(
            0,
            "not a wanco snapshot: expected the magic bytes `WSNAP\\0\\r\\n`",
        ));
    }
    if bytes.len() < HEADER_LEN {
        return Err(SnapshotError::new(
            bytes.len() as u64,
            format!(
                "snapshot is truncated: expected a {HEADER_LEN}-byte header, the file has {} bytes",
                bytes.len()
            ),
        ));
    }
    // Version.
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version > INCREMENTAL_VERSION {
        return Err(SnapshotError::new(
            8,
            format!(
                "snapshot format version {version} is newer than this wanco (supports {MIN_FORMAT_VERSION} to {INCREMENTAL_VERSION})"
            ),
        ));
    }
    if version < MIN_FORMAT_VERSION {
        return Err(SnapshotError::new(
            8,
            format!("snapshot format version {version} is not supported (this wanco supports {MIN_FORMAT_VERSION} to {INCREMENTAL_VERSION})"),
        ));
    }
    let mut module_hash = [0u8; 32];
    module_hash.copy_from_slice(&bytes[12..44]);
    // Length.
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[44..52]);
    let body_len = u64::from_le_bytes(len_bytes);
    let rest = (bytes.len() - HEADER_LEN) as u64;
    let expected = body_len.checked_add(CHECKSUM_LEN as u64);
    match expected {
        Some(e) if e == rest => {}
        Some(e) if e < rest => {
            return Err(SnapshotError::new(
                HEADER_LEN as u64 + e,
                format!(
                    "{} unexpected bytes after the checksum (the header says the body has {body_len} bytes)",
                    rest - e
                ),
            ))
        }
        _ => {
            return Err(SnapshotError::new(
                bytes.len() as u64,
                format!(
                    "snapshot is truncated: expected {body_len} body bytes and a {CHECKSUM_LEN}-byte checksum after the header, the file has {rest} bytes there"
                ),
            ))
        }
    }
    let body_end = HEADER_LEN + body_len as usize;
    // Checksum.
    let pending = match checksum {
        Checksum::Now => {
            if sha256(&bytes[..body_end]) != bytes[body_end..] {
                return Err(checksum_mismatch(body_end));
            }
            None
        }
        Checksum::Later => {
            use sha2::Digest;
            Some(PendingChecksum { file: file.clone(), body_end, hashed: 0, hasher: sha2::Sha256::new() })
        }
    };
    // Body: read borrowing the page bytes, and checked to end where the
    // body does (parsing past the end gives an end-of-data error). Where
    // that fails, the copying reader, which knows its position, says where.
    let body_bytes = &bytes[HEADER_LEN..body_end];
    let mut de = rmp_serde::Deserializer::from_read_ref(body_bytes);
    let body = match Body::<PackedIn>::deserialize(&mut de) {
        Ok(b) if at_end(&mut de) => b,
        _ => return Err(body_error(body_bytes)),
    };
    let memory = match body.memory {
        None => None,
        Some(m) => {
            let base = bytes.as_ptr() as usize;
            let chunks = m
                .chunks
                .iter()
                .map(|c| WireChunk { page: c.page, lz4: Lz4::InFile { start: c.lz4.as_ptr() as usize - base, len: c.lz4.len() } })
                .collect();
            Some(PackedMemory { pages: m.pages, max: m.max, chunks, file: Some(file.clone()) })
        }
    };
    if let Some(m) = &memory {
        m.check(HEADER_LEN as u64)?;
    }
    if version < 2 {
        let v128 = body
            .frames
            .iter()
            .flat_map(|f| f.locals.iter().chain(&f.stack))
            .chain(&body.globals)
            .chain(body.tables.iter().flatten())
            .any(|v| matches!(v, Value::V128(_)));
        if v128 {
            return Err(SnapshotError::new(
                HEADER_LEN as u64,
                format!("a format version {version} snapshot cannot hold v128 values (they came with version 2)"),
            ));
        }
    }
    if let Some(n) = &body.native {
        n.check_frames(&body.frames).map_err(|m| {
            SnapshotError::new(
                HEADER_LEN as u64,
                format!("invalid native frames ({} view): {m}", n.isa),
            )
        })?;
    }
    let parent = match (version, body.parent.0) {
        (INCREMENTAL_VERSION, Some(p)) if p.len() == 32 => {
            let mut id = [0u8; 32];
            id.copy_from_slice(&p);
            Some(id)
        }
        (INCREMENTAL_VERSION, Some(p)) => {
            return Err(SnapshotError::new(
                HEADER_LEN as u64,
                format!("invalid snapshot body: the parent id has {} bytes, expected 32", p.len()),
            ))
        }
        (INCREMENTAL_VERSION, None) => {
            return Err(SnapshotError::new(
                HEADER_LEN as u64,
                format!("invalid snapshot body: a format version {INCREMENTAL_VERSION} (incremental) snapshot must name its parent"),
            ))
        }
        (_, Some(_)) => {
            return Err(SnapshotError::new(
                HEADER_LEN as u64,
                format!("invalid snapshot body: a format version {version} snapshot cannot name a parent (only version {INCREMENTAL_VERSION} does)"),
            ))
        }
        (_, None) => None,
    };
    let snap = Snapshot {
        producer: body.producer,
        module_hash,
        migration_points: body.migration_points,
        points_rule: body.points_rule,
        frames: body.frames,
        globals: body.globals,
        tables: body.tables,
        memory: None,
        data_dropped: body.data_dropped,
        elem_dropped: body.elem_dropped,
        wasi: body.wasi,
        native: body.native,
    };
    Ok((snap, memory, pending, parent))
}

/// Why a chain of snapshots could not be merged: which link (0 is the
/// full snapshot the chain starts with) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainError {
    /// Index of the snapshot in the chain.
    pub link: usize,
    /// What is wrong (for a snapshot that does not decode, with its byte
    /// offset).
    pub message: String,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snapshot {} of the chain: {}", self.link, self.message)
    }
}

impl std::error::Error for ChainError {}

/// One link of a checked chain ([`check_chain`]).
#[derive(Debug)]
pub struct ChainLink {
    /// The snapshot (memory `None`: see `memory`).
    pub snapshot: Snapshot,
    /// Its memory as stored (for an incremental link, the pages written
    /// since its parent).
    pub memory: Option<PackedMemory>,
    /// Its id ([`snapshot_id`]).
    pub id: [u8; 32],
    /// Its parent's id, if it is incremental.
    pub parent: Option<[u8; 32]>,
}

/// Decode a chain, oldest first, and check that it is one: the first is a
/// full snapshot, each later one is incremental and names the one before it
/// as its parent, all are of one module. A missing or foreign parent is
/// refused naming the link and both ids.
pub fn check_chain(files: &[&[u8]]) -> Result<Vec<ChainLink>, ChainError> {
    let mut out: Vec<ChainLink> = Vec::with_capacity(files.len());
    if files.is_empty() {
        return Err(ChainError { link: 0, message: "the chain is empty".into() });
    }
    for (k, bytes) in files.iter().enumerate() {
        let err = |message: String| ChainError { link: k, message };
        let (snapshot, memory, parent) = decode_link(bytes).map_err(|e| err(e.to_string()))?;
        let id = snapshot_id(bytes).ok_or_else(|| err("too short to be a snapshot".into()))?;
        match (out.last(), parent) {
            (None, Some(p)) => {
                return Err(err(format!(
                    "it is incremental: its parent {} is missing (a chain starts with a full snapshot)",
                    short_hex(&p)
                )))
            }
            (Some(prev), None) => {
                return Err(err(format!(
                    "it is a full snapshot, not an increment of snapshot {} ({}); a chain has one full snapshot, first",
                    k - 1,
                    short_hex(&prev.id)
                )))
            }
            (Some(prev), Some(p)) if p != prev.id => {
                return Err(err(format!(
                    "its parent is {}, but the snapshot before it is {}: a foreign parent (or a missing link in between)",
                    short_hex(&p),
                    short_hex(&prev.id)
                )))
            }
            _ => {}
        }
        if let Some(prev) = out.last() {
            if prev.snapshot.module_hash != snapshot.module_hash {
                return Err(err(format!(
                    "it is of module {}, its parent of module {}",
                    short_hex(&snapshot.module_hash),
                    short_hex(&prev.snapshot.module_hash)
                )));
            }
            if prev.memory.is_some() != memory.is_some() {
                return Err(err("it and its parent disagree on whether the module has a memory".into()));
            }
        }
        out.push(ChainLink { snapshot, memory, id, parent });
    }
    Ok(out)
}

/// The memory of a chain being received link by link (pre-copy migration:
/// rounds of pages while the program runs, then its final snapshot): the
/// pages that are not zero, as LZ4 bytes.
#[derive(Default, Debug)]
pub struct PageImage {
    pages: std::collections::BTreeMap<u32, Vec<u8>>,
    /// The id of the last link applied.
    last: Option<[u8; 32]>,
}

impl PageImage {
    /// An empty image (no link applied).
    pub fn new() -> PageImage {
        PageImage::default()
    }

    /// The id of the last link applied, if any.
    pub fn last_id(&self) -> Option<[u8; 32]> {
        self.last
    }

    /// Pages held (not zero).
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// No page held.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Start a link: the snapshot `id` whose parent is `parent` (`None`: a
    /// full one, which replaces everything held). Refused if `parent` is
    /// not the last link applied (a foreign or missing parent).
    pub fn begin(&mut self, id: [u8; 32], parent: Option<[u8; 32]>) -> Result<(), String> {
        match (parent, self.last) {
            (None, _) => self.pages.clear(),
            (Some(p), Some(l)) if p == l => {}
            (Some(p), Some(l)) => {
                return Err(format!("its parent is {}, but the last snapshot received is {}: a foreign parent", short_hex(&p), short_hex(&l)))
            }
            (Some(p), None) => return Err(format!("it is incremental: its parent {} was never received", short_hex(&p))),
        }
        self.last = Some(id);
        Ok(())
    }

    /// Apply one page of the current link (its LZ4 bytes as stored). A page
    /// that does not decompress to one page is refused.
    pub fn apply(&mut self, page: u32, lz4: &[u8]) -> Result<(), String> {
        let mut buf = vec![0u8; PAGE_SIZE];
        match lz4_flex::block::decompress_into(lz4, &mut buf) {
            Ok(PAGE_SIZE) => {}
            _ => return Err(format!("page {page} does not decompress to {PAGE_SIZE} bytes")),
        }
        if is_zero(&buf) {
            self.pages.remove(&page);
        } else {
            self.pages.insert(page, lz4.to_vec());
        }
        Ok(())
    }

    /// The full snapshot (format version [`FORMAT_VERSION`]) of the chain
    /// ending in `last`, the bytes of its last link (full or incremental;
    /// an incremental one must name the last link applied).
    pub fn finish(mut self, last: &[u8]) -> Result<Vec<u8>, String> {
        let (snap, memory, parent) = decode_link(last).map_err(|e| e.to_string())?;
        let id = snapshot_id(last).unwrap_or_default();
        self.begin(id, parent)?;
        let memory = match memory {
            None => None,
            Some(m) => {
                for k in 0..m.stored_count() {
                    if let Some((page, lz4)) = m.stored_lz4(k) {
                        self.apply(page, lz4)?;
                    }
                }
                if let Some((&p, _)) = self.pages.range(m.pages..).next() {
                    return Err(format!("page {p} is beyond the memory's {} pages", m.pages));
                }
                Some(PackedMemory {
                    pages: m.pages,
                    max: m.max,
                    chunks: std::mem::take(&mut self.pages).into_iter().map(|(page, lz4)| WireChunk { page, lz4: Lz4::Owned(lz4) }).collect(),
                    file: None,
                })
            }
        };
        Ok(encode_packed(&snap, memory.as_ref()))
    }
}

/// Merge a chain (oldest first, see [`check_chain`]) into one full snapshot:
/// the last link's state with the memory of every link applied in turn. The
/// result is a full snapshot's bytes (format version [`FORMAT_VERSION`]),
/// equal to the one a full checkpoint at the last link's moment writes.
pub fn merge_chain(files: &[&[u8]]) -> Result<Vec<u8>, ChainError> {
    let links = check_chain(files)?;
    let mut pages: std::collections::BTreeMap<u32, Vec<u8>> = std::collections::BTreeMap::new();
    let mut last = None;
    let mut final_state = None;
    for (k, link) in links.into_iter().enumerate() {
        if let Some(m) = &link.memory {
            let parent_pages = last.as_ref().map_or(0, |(p, _): &(u32, Option<u32>)| p.to_owned());
            if m.pages < parent_pages {
                return Err(ChainError {
                    link: k,
                    message: format!("its memory has {} pages, its parent's {parent_pages}: a memory never shrinks", m.pages),
                });
            }
            let mut page = vec![0u8; PAGE_SIZE];
            for c in &m.chunks {
                unpack_page(c, m.lz4(c), &mut page).map_err(|e| ChainError { link: k, message: e.to_string() })?;
                if is_zero(&page) {
                    pages.remove(&c.page);
                } else {
                    pages.insert(c.page, m.lz4(c).to_vec());
                }
            }
            last = Some((m.pages, m.max));
        }
        final_state = Some(link.snapshot);
    }
    let Some(snap) = final_state else {
        return Err(ChainError { link: 0, message: "the chain is empty".into() });
    };
    let memory = last.map(|(n, max)| PackedMemory {
        pages: n,
        max,
        chunks: pages.into_iter().map(|(page, lz4)| WireChunk { page, lz4: Lz4::Owned(lz4) }).collect(),
        file: None,
    });
    Ok(encode_packed(&snap, memory.as_ref()))
}

/// Whether the deserializer has read all of its input.
fn at_end<'de>(de: &mut rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'de, [u8]>>) -> bool {
    match serde::de::IgnoredAny::deserialize(de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) => e.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

/// Why `body` (a body that does not decode) does not decode, and where.
fn body_error(body: &[u8]) -> SnapshotError {
    let mut rd: &[u8] = body;
    let parsed = {
        let mut de = rmp_serde::Deserializer::new(&mut rd);
        Body::<PackedCopied>::deserialize(&mut de)
    };
    let at = |rd: &[u8]| (HEADER_LEN + body.len() - rd.len()) as u64;
    match parsed {
        Err(e) => SnapshotError::new(at(rd), format!("invalid snapshot body: expected the MessagePack snapshot fields: {e}")),
        Ok(_) if !rd.is_empty() => SnapshotError::new(at(rd), format!("{} unexpected bytes after the snapshot body", rd.len())),
        // Both readers read the same layout; should they ever disagree,
        // still refuse.
        Ok(_) => SnapshotError::new(HEADER_LEN as u64, "invalid snapshot body: expected the MessagePack snapshot fields"),
    }
}

#[cfg(test)]
mod tests {

    /// An incremental snapshot of `after` over `before`'s file: the pages
    /// `written` (and what grew) only.
    fn increment(before: &[u8], after: &Snapshot, written: &[u32]) -> Vec<u8> {
        let data = after.memory.as_ref().map(|m| m.to_bytes()).unwrap_or_default();
        let (_, pm, _) = decode_link(before).unwrap();
        let parent_pages = pm.map_or(0, |m| m.pages);
        let packer = PagePacker::incremental(&data, Some(10), parent_pages, |p| !written.contains(&p));
        let part = packer.work();
        let mem = packer.finish([part]);
        encode_incremental(after, Some(&mem), &snapshot_id(before).unwrap())
    }

    #[test]
    fn a_merged_chain_equals_the_full_snapshot() {
        let a = sample();
        let full_a = encode(&a);
        // b: page 1 changed, page 2 became zero, the memory grew by 2
        // pages of which page 4 is not zero; a global changed.
        let mut b = sample();
        let mut data = a.memory.as_ref().unwrap().to_bytes();
        data[PAGE_SIZE + 3] ^= 0x55;
        data[3 * PAGE_SIZE - 1] = 0;
        data.resize(5 * PAGE_SIZE, 0);
        data[4 * PAGE_SIZE + 7] = 1;
        b.memory = Some(Memory::from_bytes(&data, Some(10)));
        b.globals[0] = Value::I32(7);
        b.migration_points += 100;
        let inc_b = increment(&full_a, &b, &[1, 2]);
        assert_eq!(u32::from_le_bytes(inc_b[8..12].try_into().unwrap()), INCREMENTAL_VERSION);
        let (_, m, parent) = decode_link(&inc_b).unwrap();
        assert_eq!(parent, snapshot_id(&full_a));
        // Pages 1 and 2 (the zero one too) and the grown non-zero page 4.
        assert_eq!(m.unwrap().stored_pages().collect::<Vec<_>>(), vec![1, 2, 4]);
        // c: nothing written but page 0.
        let mut c = b.clone();
        let mut data_c = data.clone();
        data_c[0] = 42;
        c.memory = Some(Memory::from_bytes(&data_c, Some(10)));
        let inc_c = increment(&inc_b, &c, &[0]);
        let merged = merge_chain(&[&full_a, &inc_b, &inc_c]).unwrap();
        assert_eq!(merged, encode(&c));
        assert_eq!(merge_chain(&[&full_a, &inc_b]).unwrap(), encode(&b));
        assert_eq!(merge_chain(&[&full_a]).unwrap(), full_a);
        // The same chain received as pre-copy rounds of pages, then the last link.
        let mut image = PageImage::new();
        for link in [&full_a, &inc_b] {
            let (_, m, parent) = decode_link(link).unwrap();
            image.begin(snapshot_id(link).unwrap(), parent).unwrap();
            let m = m.unwrap();
            for k in 0..m.stored_count() {
                let (page, lz4) = m.stored_lz4(k).unwrap();
                image.apply(page, lz4).unwrap();
            }
        }
        assert_eq!(image.finish(&inc_c).unwrap(), encode(&c));
        // A last link whose parent is not the last round is refused.
        let mut image = PageImage::new();
        image.begin(snapshot_id(&full_a).unwrap(), None).unwrap();
        let e = image.finish(&inc_c).unwrap_err();
        assert!(e.contains("foreign parent"), "{e}");
    }

    #[test]
    fn a_broken_chain_is_refused_naming_the_link() {
        let a = sample();
        let full_a = encode(&a);
        let mut b = sample();
        b.migration_points += 1;
        let inc_b = increment(&full_a, &b, &[1]);
        let inc_c = increment(&inc_b, &b, &[]);
        // The parent missing at the start.
        let e = merge_chain(&[&inc_b]).unwrap_err();
        assert_eq!(e.link, 0);
        assert!(e.message.contains("its parent") && e.message.contains("is missing"), "{e}");
        // A missing link in between: c's parent is b, not a.
        let e = merge_chain(&[&full_a, &inc_c]).unwrap_err();
        assert_eq!(e.link, 1);
        assert!(e.message.contains("foreign parent"), "{e}");
        assert!(e.to_string().contains(&short_hex(&snapshot_id(&inc_b).unwrap())), "{e}");
        // A foreign full snapshot as the parent.
        let mut other = sample();
        other.migration_points = 1;
        let e = merge_chain(&[&encode(&other), &inc_b]).unwrap_err();
        assert_eq!(e.link, 1);
        assert!(e.message.contains("foreign parent"), "{e}");
        // Two full snapshots.
        let e = merge_chain(&[&full_a, &full_a]).unwrap_err();
        assert!(e.message.contains("is a full snapshot"), "{e}");
        // Another module.
        let mut m = sample();
        m.module_hash = [1; 32];
        let inc_m = increment(&full_a, &m, &[]);
        let e = merge_chain(&[&full_a, &inc_m]).unwrap_err();
        assert!(e.message.contains("of module"), "{e}");
        // Restoring an increment by itself is refused with what to do.
        let e = decode(&inc_b).unwrap_err();
        assert!(e.message.contains("incremental snapshot") && e.message.contains("wanco-snap merge"), "{e}");
    }
    use super::*;
    use crate::wasi::{ClockState, FdEntry, FdKind, Preopen};

    #[test]
    fn points_rule_roundtrips_and_another_is_refused() {
        let mut s = sample();
        assert_eq!(decode(&encode(&s)).unwrap().points_rule, POINTS_RULE);
        assert!(check_points_rule(&s).is_ok());
        s.points_rule = POINTS_RULE_UNMARKED;
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back.points_rule, 1);
        let e = check_points_rule(&back).unwrap_err();
        assert!(e.contains("by rule 1 and this wanco counts by rule 2"), "{e}");
    }

    fn sample() -> Snapshot {
        let mut data = vec![0u8; 3 * PAGE_SIZE];
        for (i, b) in data[PAGE_SIZE..PAGE_SIZE + 5000].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        data[3 * PAGE_SIZE - 1] = 9;
        Snapshot {
            producer: Producer {
                engine: "interp".into(),
                isa: None,
                version: "0.1.0".into(),
            },
            module_hash: [0xab; 32],
            migration_points: 12345,
            points_rule: POINTS_RULE,
            frames: vec![
                Frame {
                    func: 3,
                    code_offset: 100,
                    kind: FrameKind::Call,
                    locals: vec![Value::I32(-1), Value::F64(f64::NAN.to_bits() | 1)],
                    stack: vec![Value::FuncRef(Some(2)), Value::ExternRef(None)],
                },
                Frame {
                    func: 4,
                    code_offset: 140,
                    kind: FrameKind::Loop,
                    locals: vec![Value::I64(i64::MIN), Value::F32(0x7fc0_0001)],
                    stack: vec![],
                },
            ],
            globals: vec![Value::I32(65536), Value::FuncRef(None)],
            tables: vec![vec![Value::FuncRef(Some(1)), Value::FuncRef(None)]],
            memory: Some(Memory::from_bytes(&data, Some(10))),
            data_dropped: vec![true, false],
            elem_dropped: vec![false],
            wasi: WasiState {
                args: vec!["prog.wasm".into(), "x".into()],
                env: vec![("K".into(), "V".into())],
                preopens: vec![Preopen {
                    host: "/tmp/d".into(),
                    guest: "/data".into(),
                }],
                fds: vec![FdEntry {
                    fd: 3,
                    kind: FdKind::Directory,
                    preopen: Some(0),
                    rel_path: String::new(),
                    read: true,
                    write: false,
                    fdflags: 0,
                    rights_base: u64::MAX,
                    rights_inheriting: 7,
                    offset: 0,
                    is_preopen: true,
                    size: None,
                    socket: None,
                }],
                clock: ClockState {
                    monotonic_last_ns: 99,
                },
                free_fds: vec![5],
            },
            native: None,
        }
    }

    /// A native view of `sample()`'s frames: the outer frame alone, the
    /// inner one in a second native frame.
    fn native_view(s: &Snapshot) -> NativeStack {
        let reg = |r| Location::Register { reg: r, size: 8 };
        let slots = |f: &Frame, id: i64| {
            let mut v = vec![NativeSlot { location: Location::Constant(id), bits: Some(id as u64) }];
            for (i, x) in f.locals.iter().chain(&f.stack).enumerate() {
                v.push(NativeSlot { location: reg(i as u16), bits: x.raw_bits() });
            }
            v
        };
        NativeStack {
            isa: "x86_64".into(),
            build: "00".repeat(32),
            frames: vec![
                NativeFrame { func: 3, pc: 0x1234, offset: 0x34, frame_size: Some(48), wasm_frames: 1, slots: slots(&s.frames[0], 7) },
                NativeFrame { func: 4, pc: 0x2345, offset: 0x45, frame_size: None, wasm_frames: 1, slots: slots(&s.frames[1], 9) },
            ],
        }
    }

    #[test]
    fn native_view_round_trips_and_must_match_the_frames() {
        let mut s = sample();
        let plain = encode(&s);
        s.native = Some(native_view(&s));
        let with = encode(&s);
        assert!(with.len() > plain.len());
        assert_eq!(decode(&with).unwrap(), s);
        // A snapshot without a view encodes exactly as before the field existed.
        assert_eq!(decode(&plain).unwrap().native, None);

        let refuse = |n: NativeStack| {
            let mut t = sample();
            t.native = Some(n);
            decode(&encode(&t)).unwrap_err().message
        };
        let mut n = native_view(&s);
        n.frames[1].slots[1].bits = Some(1);
        let e = refuse(n);
        assert!(e.contains("native frame 1, slot 1 (local 0 of Wasm frame 1)"), "{e}");
        let mut n = native_view(&s);
        n.frames[0].wasm_frames = 2;
        assert!(refuse(n).contains("hold 3 Wasm frames, the snapshot has 2"));
        let mut n = native_view(&s);
        n.frames[0].slots.pop();
        assert!(refuse(n).contains("has 4 slots, its 1 Wasm frame(s) need 5"));
        let mut n = native_view(&s);
        n.frames[0].slots[0].location = Location::Register { reg: 1, size: 8 };
        assert!(refuse(n).contains("point id of Wasm frame 0 should be a constant"));
        let mut n = native_view(&s);
        n.frames[0].slots[3].bits = Some(5); // a funcref has no bits
        assert!(refuse(n).contains("stack slot 0 of Wasm frame 0"));
    }

    /// A v128 local takes two slots of the native view: its low, then its
    /// high 64 bits; a view with one slot for it, or a wrong half, is refused.
    #[test]
    fn native_view_v128_is_two_slots() {
        let mut s = sample();
        let x: u128 = 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10;
        s.frames[1].locals.push(Value::V128(x));
        let reg = |r| Location::Register { reg: r, size: 8 };
        let mut n = native_view(&s);
        // `native_view` gave the v128 one slot without bits: make it the two halves.
        n.frames[1].slots.pop();
        n.frames[1].slots.push(NativeSlot { location: reg(20), bits: Some(x as u64) });
        n.frames[1].slots.push(NativeSlot { location: reg(21), bits: Some((x >> 64) as u64) });
        let mut t = s.clone();
        t.native = Some(n.clone());
        assert_eq!(decode(&encode(&t)).unwrap(), t);
        let refuse = |n: NativeStack| {
            let mut t = s.clone();
            t.native = Some(n);
            decode(&encode(&t)).unwrap_err().message
        };
        let mut bad = n.clone();
        bad.frames[1].slots[4].bits = Some(0);
        let e = refuse(bad);
        assert!(e.contains("slot 4") && e.contains("high half"), "{e}");
        let mut short = n;
        short.frames[1].slots.pop();
        let e = refuse(short);
        assert!(e.contains("has 4 slots, its 1 Wasm frame(s) need 5"), "{e}");
    }

    #[test]
    fn round_trip_and_deterministic() {
        let s = sample();
        assert_eq!(s.memory.as_ref().unwrap().chunks.len(), 2);
        assert_eq!(s.memory.as_ref().unwrap().to_bytes().len(), 3 * PAGE_SIZE);
        let a = encode(&s);
        let b = encode(&s.clone());
        assert_eq!(a, b);
        assert_eq!(&a[..8], b"WSNAP\0\r\n");
        assert_eq!(decode(&a).unwrap(), s);
        // Compression works: far smaller than the two stored pages.
        assert!(a.len() < PAGE_SIZE, "{}", a.len());
    }

    #[test]
    fn no_memory_round_trip() {
        let mut s = sample();
        s.memory = None;
        assert_eq!(decode(&encode(&s)).unwrap(), s);
    }

    /// `snap` written as format `version` (checksum recomputed).
    fn with_version(snap: &Snapshot, version: u32) -> Vec<u8> {
        let mut b = encode(snap);
        b[8..12].copy_from_slice(&version.to_le_bytes());
        let end = b.len() - CHECKSUM_LEN;
        let sum = sha256(&b[..end]);
        b[end..].copy_from_slice(&sum);
        b
    }

    #[test]
    fn version_1_is_read_and_v128_needs_version_2() {
        let snap = sample();
        assert_eq!(encode(&snap)[8..12], 2u32.to_le_bytes());
        // A version-1 file (no v128) decodes to the same snapshot.
        assert_eq!(decode(&with_version(&snap, 1)).unwrap(), snap);
        // v128 values round-trip in version 2, and are refused in version 1.
        let mut v = snap.clone();
        v.globals.push(Value::V128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10));
        v.frames[0].stack.push(Value::V128(u128::MAX));
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        let e = decode(&with_version(&v, 1)).unwrap_err();
        assert!(e.message.contains("cannot hold v128 values"), "{e}");
        // Any other version is refused, naming both supported versions.
        let e = decode(&with_version(&snap, 0)).unwrap_err();
        assert_eq!(
            e.message,
            "snapshot format version 0 is not supported (this wanco supports 1 to 3)"
        );
        assert_eq!(e.offset, 8);
    }

    #[test]
    fn errors_in_order() {
        let good = encode(&sample());
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(decode(&bad).unwrap_err().message.contains("magic"));
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&7u32.to_le_bytes());
        let e = decode(&bad).unwrap_err();
        assert_eq!(
            e.message,
            "snapshot format version 7 is newer than this wanco (supports 1 to 3)"
        );
        assert_eq!(e.offset, 8);
        let e = decode(&good[..good.len() - 1]).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        let mut bad = good.clone();
        bad.push(0);
        assert!(decode(&bad)
            .unwrap_err()
            .message
            .contains("unexpected bytes"));
        let mut bad = good.clone();
        bad[60] ^= 1;
        let e = decode(&bad).unwrap_err();
        assert_eq!(e.message, "checksum mismatch: the file is damaged");
        assert_eq!(e.offset as usize, good.len() - CHECKSUM_LEN);
        assert!(decode(&[]).is_err());
        assert!(decode(b"WSN").unwrap_err().message.contains("truncated"));
    }

    #[test]
    fn bad_body_with_valid_checksum() {
        // A body that is not MessagePack, behind a correct checksum.
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC);
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&[0; 32]);
        f.extend_from_slice(&3u64.to_le_bytes());
        f.extend_from_slice(&[0xc1, 0xc1, 0xc1]);
        let sum = sha256(&f);
        f.extend_from_slice(&sum);
        let e = decode(&f).unwrap_err();
        assert!(e.message.contains("invalid snapshot body"), "{e}");
        assert!(e.offset >= HEADER_LEN as u64);
    }

    /// A body followed by more MessagePack inside the stated length (with
    /// a valid checksum) is refused at the byte after the body, by the
    /// borrowing reader as by the copying one.
    #[test]
    fn bytes_after_the_body_are_named() {
        let good = encode(&sample());
        let body_end = good.len() - CHECKSUM_LEN;
        let mut f = good[..body_end].to_vec();
        f.push(0xc0);
        let len = (f.len() - HEADER_LEN) as u64;
        f[44..52].copy_from_slice(&len.to_le_bytes());
        let sum = sha256(&f);
        f.extend_from_slice(&sum);
        let e = decode(&f).unwrap_err();
        assert_eq!(e.message, "1 unexpected bytes after the snapshot body");
        assert_eq!(e.offset as usize, body_end);
    }

    /// `decode_shared` reads the pages in place and, with
    /// `Checksum::Later`, leaves the checksum to the caller: the same
    /// snapshot as `decode`, and a damaged file decodes but its checksum
    /// does not match, however it is compared.
    #[test]
    fn shared_decoding_and_the_checksum_later() {
        let snap = sample();
        let good = encode(&snap);
        let (s, m, pending) = decode_shared(std::sync::Arc::new(good.clone()), Checksum::Later).unwrap();
        let mut pending = pending.expect("left to the caller");
        assert_eq!(pending.remaining(), good.len() - CHECKSUM_LEN);
        assert_eq!(Snapshot { memory: Some(m.as_ref().unwrap().unpack().unwrap()), ..s }, snap);
        let mut steps = 0;
        let outcome = loop {
            steps += 1;
            if let Some(r) = pending.step(100) {
                break r;
            }
        };
        assert!(outcome.is_ok());
        assert_eq!(steps, (good.len() - CHECKSUM_LEN).div_ceil(100));
        // The pages in the file and the pages packed here are the same.
        assert_eq!(m.unwrap(), snap.memory.as_ref().unwrap().pack());
        let (_, _, none) = decode_shared(std::sync::Arc::new(good.clone()), Checksum::Now).unwrap();
        assert!(none.is_none());
        // One bit of a page's bytes flipped: `decode` refuses the file,
        // the deferred check does too.
        let (_, m, _) = decode_shared(std::sync::Arc::new(good.clone()), Checksum::Now).unwrap();
        let Lz4::InFile { start, len } = m.unwrap().chunks[0].lz4 else { panic!("decoded in place") };
        let mut bad = good.clone();
        bad[start + len / 2] ^= 4;
        assert_eq!(decode(&bad).unwrap_err().message, "checksum mismatch: the file is damaged");
        let (_, _, pending) = decode_shared(std::sync::Arc::new(bad.clone()), Checksum::Later).unwrap();
        let e = pending.unwrap().finish().unwrap_err();
        assert_eq!((e.message.as_str(), e.offset as usize), ("checksum mismatch: the file is damaged", good.len() - CHECKSUM_LEN));
    }

    #[test]
    fn checkpoint_file_problems() {
        use std::path::Path;
        assert_eq!(checkpoint_file_problem(Path::new("")).as_deref(), Some("the path is empty"));
        assert_eq!(checkpoint_file_problem(Path::new("x.wsnap")), None);
        assert!(checkpoint_file_problem(Path::new("/nonexistent-dir-wanco/x.wsnap")).unwrap().contains("does not exist"));
        assert_eq!(checkpoint_file_problem(Path::new("/")).as_deref(), Some("it is a directory"));
    }

    #[test]
    fn check_module_message() {
        let s = sample();
        assert!(s.check_module(&[0xab; 32]).is_ok());
        let e = s.check_module(&[0xcd; 32]).unwrap_err();
        assert_eq!(
            e.message,
            "snapshot was written for module sha256 abababababababab…, this module is cdcdcdcdcdcdcdcd…"
        );
    }

    #[test]
    fn random_damage_never_panics() {
        let good = encode(&sample());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let cut = (rnd() % good.len() as u64) as usize;
            assert!(decode(&good[..cut]).is_err(), "truncated at {cut}");
            let mut bad = good.clone();
            let flips = 1 + rnd() % 4;
            for _ in 0..flips {
                let i = (rnd() % good.len() as u64) as usize;
                bad[i] ^= 1 << (rnd() % 8);
            }
            if bad != good {
                assert!(decode(&bad).is_err());
                // Left for later, the checksum still catches what the
                // other checks let through, and nothing panics.
                if let Ok((_, m, pending)) = decode_shared(std::sync::Arc::new(bad.clone()), Checksum::Later) {
                    let _ = m.map(|m| m.unpack());
                    assert!(pending.unwrap().finish().is_err());
                }
            }
        }
    }

    #[test]
    fn packed_memory_is_the_memory_and_skips_known_zero_pages() {
        let mut data = vec![0u8; 4 * PAGE_SIZE];
        data[PAGE_SIZE + 7] = 1;
        data[3 * PAGE_SIZE..].iter_mut().enumerate().for_each(|(i, b)| *b = (i % 13) as u8);
        // Pages 0 and 2 said to be untouched (not read); page 1 is scanned.
        let p = PackedMemory::pack(&data, Some(9), |i| i == 0 || i == 2);
        assert_eq!(p.stored_pages().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(p.stored_runs(), vec![(1, 1), (3, 1)]);
        assert_eq!(p.pages, 4);
        assert_eq!(p.unpack().unwrap(), Memory::from_bytes(&data, Some(9)));
        assert_eq!(p, Memory::from_bytes(&data, Some(9)).pack());
        let mut out = vec![0u8; 4 * PAGE_SIZE];
        p.unpack_into(&mut out).unwrap();
        assert_eq!(out, data);
        let e = p.unpack_into(&mut out[..PAGE_SIZE]).unwrap_err();
        assert!(e.to_string().contains("for a snapshot memory of 4 pages"), "{e}");
        // The file form: decode_packed leaves the pages compressed, decode
        // unpacks them, both agree.
        let mut snap = sample();
        snap.memory = Some(Memory::from_bytes(&data, Some(9)));
        let bytes = encode(&snap);
        assert_eq!(encode_packed(&Snapshot { memory: None, ..snap.clone() }, Some(&p)), bytes);
        let (rest, packed) = decode_packed(&bytes).unwrap();
        assert!(rest.memory.is_none());
        assert_eq!(packed.as_ref(), Some(&p));
        assert_eq!(decode(&bytes).unwrap(), snap);
    }

    #[test]
    fn parallel_pack_and_unpack_agree_with_one_thread() {
        // 23 pages: runs {1,2,3}, {6}, {9..=15}, {20,21}, the last page partial.
        let mut data = vec![0u8; 22 * PAGE_SIZE + 100];
        for p in [1usize, 2, 3, 6, 9, 10, 11, 12, 13, 14, 15, 20, 21, 22] {
            let page = &mut data[p * PAGE_SIZE..((p + 1) * PAGE_SIZE).min(22 * PAGE_SIZE + 100)];
            page.iter_mut().enumerate().for_each(|(i, b)| *b = ((i * 7 + p) % 251) as u8);
        }
        let one = PackedMemory::pack(&data, None, |_| false);
        let packer = PagePacker::new(&data, None, |_| false);
        let parts = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3).map(|_| s.spawn(|| packer.work())).collect();
            let mut parts = vec![packer.work()];
            parts.extend(hs.into_iter().map(|h| h.join().unwrap()));
            parts
        });
        let many = packer.finish(parts);
        assert_eq!(many, one);
        assert_eq!(one.stored_runs(), vec![(1, 3), (6, 1), (9, 7), (20, 3)]);
        let mut padded = data.clone();
        padded.resize(23 * PAGE_SIZE, 0);
        for workers in [1, 2, 3, 5, 14, 40] {
            let mut out = vec![0u8; 23 * PAGE_SIZE];
            let prepared = std::sync::Mutex::new(Vec::new());
            let base = out.as_ptr() as usize;
            let prepare = |run: &mut [u8]| {
                assert!(run.iter().all(|b| *b == 0), "prepared after being written");
                let first = (run.as_ptr() as usize - base) / PAGE_SIZE;
                prepared.lock().unwrap().push((first as u32, (run.len() / PAGE_SIZE) as u32));
            };
            let shares = one.unpack_shares(&mut out, workers).unwrap();
            assert_eq!(shares.len(), workers.min(14));
            std::thread::scope(|s| {
                for h in shares.into_iter().map(|sh| s.spawn(|| sh.run(&prepare))).collect::<Vec<_>>() {
                    h.join().unwrap().unwrap();
                }
            });
            assert_eq!(out, padded, "{workers} workers");
            // Every stored page prepared exactly once (runs split between shares).
            let mut pages: Vec<u32> = prepared.into_inner().unwrap().iter().flat_map(|&(f, n)| f..f + n).collect();
            pages.sort_unstable();
            assert_eq!(pages, one.stored_pages().collect::<Vec<_>>(), "{workers} workers");
        }
        // A page that does not decompress is named, whichever share has it.
        let mut bad = one;
        match &mut bad.chunks[9].lz4 {
            Lz4::Owned(v) => v.truncate(5),
            Lz4::InFile { .. } => unreachable!("packed here"),
        }
        let mut out = vec![0u8; 23 * PAGE_SIZE];
        let errors: Vec<String> =
            bad.unpack_shares(&mut out, 3).unwrap().into_iter().filter_map(|sh| sh.run(&|_: &mut [u8]| {}).err()).map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("page 14"), "{}", errors[0]);
    }
}
