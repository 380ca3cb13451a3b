//! The messages of the migration protocol.

use serde::{Deserialize, Serialize};

/// The version of the protocol this crate speaks ([`Hello::protocol`]).
pub const PROTOCOL_VERSION: u32 = 1;

/// What each side says first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// The sender's wanco version (`CARGO_PKG_VERSION`).
    pub wanco_version: String,
    /// The snapshot format version the sender reads and writes.
    pub snapshot_format: u32,
    /// The ISA programs run on at the sender (`x86_64`, `aarch64`): for the
    /// destination, the ISA its restored programs run on.
    pub isa: String,
    /// The migration modes the sender supports (`stop-and-copy`,
    /// `precopy`, `postcopy`).
    pub modes: Vec<String>,
}

/// Which output stream an [`Message::Output`] carries.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Stream {
    /// The program's standard output.
    Stdout,
    /// The program's standard error.
    Stderr,
}

/// The source asks the destination to get ready, while the program still
/// runs at the source.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Prepare {
    /// SHA-256 of the program's Wasm module (64 hex digits).
    pub module_hash: String,
    /// The migration mode (`stop-and-copy`, `precopy`, `postcopy`).
    pub mode: String,
    /// The executable for the destination's ISA, if the source has one
    /// (otherwise the destination must have it in its cache or compile
    /// `module`).
    #[serde(with = "serde_bytes")]
    pub binary: Option<Vec<u8>>,
    /// The Wasm module, for the destination to compile (before the source
    /// stops).
    #[serde(with = "serde_bytes")]
    pub module: Option<Vec<u8>>,
    /// Guest directory → the destination's host directory holding the same
    /// data (`--dir-map`). Preopens not named keep their host path.
    pub dir_map: Vec<(String, String)>,
    /// The source copies the preopened directories (`FileList`,
    /// `FileChunk`): the destination creates the mapped directories that
    /// do not exist instead of refusing.
    pub sync_dirs: bool,
}

/// A regular file of a directory being synchronised.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the directory, `/`-separated, without `..`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
}

/// One message. The phases of a migration, in order (S: `wanco migrate`,
/// D: `wanco agent`):
///
/// 1. **Hello**: S → `Hello`, D → `Hello`; each side checks the other's
///    protocol version.
/// 2. **Prepare** (the program still runs at the source): S → `Prepare`;
///    D gets the binary ready (received, cached or compiled, its module hash
///    checked) and answers `Prepared` or `Refused`.
///    With `sync_dirs`, S then sends a `FileList` per directory; D answers
///    `FileWants` (the files it lacks or has with another size or time) and
///    S sends them as `FileChunk`s — once while the program runs and once
///    more after it stopped (what changed meanwhile).
/// 3. **Transfer** (the program is stopped): S → `SnapshotChunk`…, the last
///    one with `last: true`. *Later modes add, without changing the rest:*
///    pre-copy sends `MemoryRound`s while the program still runs (between 2
///    and 3), and the final snapshot then names its parent. Post-copy sends
///    a `PageMap` first and a snapshot without pages; from then on S answers
///    D's `PageRequest`s with `PageData` and, once D said `Running`, pushes
///    the other pages, until
///    D says `AllPagesIn`; S then `hold`s the source and sends `Release`,
///    D lets the program make host calls and answers `Released`, S ends
///    the source. Until `Release`, a lost connection kills the
///    destination's program (it has had no effect) and the source resumes.
/// 4. **Restore**: D restores up to the program's first instruction
///    (everything checked) and answers `Restored` — or `Refused` if the
///    restore failed.
/// 5. **Go**: S tells the source runtime `hold` (its point of no return),
///    then sends `Go`; D lets the program run and answers `Running`. S then
///    ends the source (`commit`). Before `Go`, `Abort` (or a lost
///    connection) makes D discard the restored program: it never ran.
/// 6. **Relay**: D sends `Output` as the program writes, then `Exited`. S
///    may send `Detach` instead of `Go`: D lets the program run, answers
///    `Running` and `Detached` and keeps the output in files.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Message {
    /// Phase 1.
    Hello(Hello),
    /// Phase 2, S → D.
    Prepare(Prepare),
    /// Phase 2, D → S: ready for the snapshot.
    Prepared {
        /// How the destination got the binary (`sent`, `cache`, `compiled`).
        binary_from: String,
    },
    /// D → S, any phase: the destination cannot go on.
    Refused {
        /// The phase (`prepare`, `restore`, …).
        phase: String,
        /// Why, for the operator.
        reason: String,
    },
    /// Phase 3, S → D: a piece of the snapshot file.
    SnapshotChunk {
        /// Offset of `data` in the snapshot.
        offset: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// This is the last piece.
        last: bool,
    },
    /// Phases 2–3, S → D: the regular files of a directory (`--sync-dirs`).
    FileList {
        /// The directory at the destination.
        dir: String,
        /// Every regular file under it at the source.
        files: Vec<FileEntry>,
    },
    /// D → S: the files of the last `FileList` to send.
    FileWants {
        /// Their paths.
        paths: Vec<String>,
    },
    /// S → D: a piece of a file of the last `FileList`.
    FileChunk {
        /// The directory at the destination.
        dir: String,
        /// The file's path under it.
        path: String,
        /// Offset of `data` in the file (0: the file is truncated first).
        offset: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// The file's last piece: its time and mode are set then.
        last: bool,
        /// Modification time, nanoseconds since the Unix epoch.
        mtime_ns: i64,
        /// Permission bits.
        mode: u32,
    },
    /// Pre-copy: (a piece of) a round of linear-memory pages sent while the
    /// program runs: the pages of snapshot `id` (a full one when `parent`
    /// is `None`, else the pages written since snapshot `parent`, the
    /// previous round's). A round larger than a frame is sent in several
    /// messages with the same `round` and `id`; each is applied as it comes.
    MemoryRound {
        /// Round number, from 1.
        round: u32,
        /// (Wasm page index, its 65,536 bytes compressed with LZ4).
        pages: Vec<(u32, serde_bytes::ByteBuf)>,
        /// The id of the round's snapshot (its SHA-256 checksum).
        #[serde(default)]
        id: Option<serde_bytes::ByteBuf>,
        /// The id of its parent (the previous round's snapshot), `None` for
        /// a full round.
        #[serde(default)]
        parent: Option<serde_bytes::ByteBuf>,
    },
    /// Post-copy, S → D before the first `SnapshotChunk`: the Wasm pages
    /// the memory holds data in (every other page is zero). The snapshot
    /// that follows stores no pages: D gets these as `PageData`.
    PageMap {
        /// Wasm page indices, ascending.
        pages: Vec<u32>,
    },
    /// Post-copy, D → S: the restored program touched a page it does not
    /// have yet (S answers with its `PageData` next).
    PageRequest {
        /// Wasm page index.
        page: u32,
    },
    /// Post-copy, S → D: a page of the `PageMap`, asked for
    /// ([`Message::PageRequest`]) or pushed in the background.
    PageData {
        /// Wasm page index.
        page: u32,
        /// The page, compressed with LZ4.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Phase 4, D → S: restored and checked, waiting for `Go`.
    Restored {
        /// Microseconds from the end of the snapshot's arrival to `Restored`.
        restore_us: u64,
    },
    /// Phase 5, S → D.
    Go,
    /// Phase 5, D → S: the program runs.
    Running {
        /// Its process id at the destination.
        pid: u32,
        /// When the restored code resumed, just before its first
        /// instruction (the destination runtime's `CLOCK_REALTIME`,
        /// nanoseconds since the Unix epoch), if the runtime said so.
        #[serde(default)]
        resumed_at_ns: Option<u64>,
        /// How the memory came in: `image-mapped` (pre-copy rounds kept in
        /// a memory image, mapped copy-on-write), `image-copied` (the image
        /// read into memory), `snapshot` (decoded from the snapshot).
        #[serde(default)]
        memory: Option<String>,
    },
    /// Post-copy, D → S: every page of the `PageMap` is in the restored
    /// program's memory. It still makes no host call until `Release`.
    AllPagesIn {
        /// Pages the program touched before they came (asked for).
        on_demand: u32,
        /// Pages received in all.
        pages: u32,
    },
    /// Post-copy, S → D after `AllPagesIn` (the source is held: its point
    /// of no return): the program may make host calls now.
    Release,
    /// Post-copy, D → S: the program was released (S then ends the source).
    Released,
    /// S → D before `Go` (post-copy: before `Release`): discard everything
    /// of this migration.
    Abort {
        /// Why.
        reason: String,
    },
    /// Phase 6, D → S.
    Output {
        /// Which stream.
        stream: Stream,
        /// The bytes as the program wrote them.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Phase 6, D → S: the program ended.
    Exited {
        /// Its exit status (128 + signal number if a signal ended it).
        code: i32,
    },
    /// Phase 5, S → D: `Go`, but do not relay the output (D keeps it in
    /// files and answers `Detached` after `Running`).
    Detach,
    /// D → S after `Detach`: where the output goes.
    Detached {
        /// The files at the destination.
        stdout: String,
        /// The files at the destination.
        stderr: String,
    },
}

impl Message {
    /// The message's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "Hello",
            Message::Prepare(_) => "Prepare",
            Message::Prepared { .. } => "Prepared",
            Message::Refused { .. } => "Refused",
            Message::SnapshotChunk { .. } => "SnapshotChunk",
            Message::FileList { .. } => "FileList",
            Message::FileWants { .. } => "FileWants",
            Message::FileChunk { .. } => "FileChunk",
            Message::MemoryRound { .. } => "MemoryRound",
            Message::PageMap { .. } => "PageMap",
            Message::PageRequest { .. } => "PageRequest",
            Message::PageData { .. } => "PageData",
            Message::AllPagesIn { .. } => "AllPagesIn",
            Message::Release => "Release",
            Message::Released => "Released",
            Message::Restored { .. } => "Restored",
            Message::Go => "Go",
            Message::Running { .. } => "Running",
            Message::Abort { .. } => "Abort",
            Message::Output { .. } => "Output",
            Message::Exited { .. } => "Exited",
            Message::Detach => "Detach",
            Message::Detached { .. } => "Detached",
        }
    }
}

impl Hello {
    /// This side's hello.
    pub fn new(isa: &str, snapshot_format: u32) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            wanco_version: env!("CARGO_PKG_VERSION").into(),
            snapshot_format,
            isa: isa.into(),
            modes: vec!["stop-and-copy".into(), "precopy".into(), "postcopy".into()],
        }
    }
}
