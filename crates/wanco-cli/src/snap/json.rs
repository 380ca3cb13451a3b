//! The canonical JSON form of a snapshot (what `wanco-snap decode` prints and
//! `wanco-snap encode` reads).
//!
//! Same fields as the binary body (`docs/snapshot-format.md`), plus
//! `format_version` and `module_hash` (64 hex digits) from the header. Values
//! are `{"I32": -1}`, `{"F64": <IEEE bits as an integer>}`, `{"FuncRef": null}`, …
//! Memory pages are stored uncompressed as **lowercase hex strings** of
//! exactly 65536 bytes (131072 digits), one per non-zero page:
//! `{"page": 1, "hex": "00ff…"}`.

use super::common::{hex, unhex};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use wanco_state::snapshot::{Frame, Memory, NativeStack, Producer, Snapshot, FORMAT_VERSION, PAGE_SIZE};
use wanco_state::wasi::WasiState;
use wanco_state::Value;

/// A snapshot as JSON.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSnapshot {
    /// Format version of the binary file (always 1).
    pub format_version: u32,
    /// SHA-256 of the module, 64 hex digits.
    pub module_hash: String,
    /// Who wrote it.
    pub producer: Producer,
    /// Migration points crossed.
    pub migration_points: u64,
    /// The migration-point rule they were counted by (1 when absent).
    #[serde(default = "points_rule_unmarked")]
    pub points_rule: u32,
    /// Frames, outermost first.
    pub frames: Vec<Frame>,
    /// Globals.
    pub globals: Vec<Value>,
    /// Tables' elements.
    pub tables: Vec<Vec<Value>>,
    /// Linear memory 0.
    pub memory: Option<JsonMemory>,
    /// Data segment drop flags.
    pub data_dropped: Vec<bool>,
    /// Element segment drop flags.
    pub elem_dropped: Vec<bool>,
    /// WASI state.
    pub wasi: WasiState,
    /// The native view of the frames (compiled producers, translations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeStack>,
}

/// Memory as JSON.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonMemory {
    /// Size in pages.
    pub pages: u32,
    /// Maximum in pages.
    pub max: Option<u32>,
    /// Non-zero pages.
    pub chunks: Vec<JsonChunk>,
}

/// One stored page.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonChunk {
    /// Page index.
    pub page: u32,
    /// The page's 65536 bytes as hex.
    pub hex: String,
}

fn points_rule_unmarked() -> u32 {
    wanco_state::snapshot::POINTS_RULE_UNMARKED
}

impl JsonSnapshot {
    /// The JSON form of `s`.
    pub fn from_snapshot(s: &Snapshot) -> JsonSnapshot {
        JsonSnapshot {
            format_version: FORMAT_VERSION,
            module_hash: hex(&s.module_hash),
            producer: s.producer.clone(),
            migration_points: s.migration_points,
            points_rule: s.points_rule,
            frames: s.frames.clone(),
            globals: s.globals.clone(),
            tables: s.tables.clone(),
            memory: s.memory.as_ref().map(|m| JsonMemory {
                pages: m.pages,
                max: m.max,
                chunks: m
                    .chunks
                    .iter()
                    .map(|(page, bytes)| JsonChunk {
                        page: *page,
                        hex: hex(bytes),
                    })
                    .collect(),
            }),
            data_dropped: s.data_dropped.clone(),
            elem_dropped: s.elem_dropped.clone(),
            wasi: s.wasi.clone(),
            native: s.native.clone(),
        }
    }

    /// Back to a snapshot; checks the version, the hash and the page sizes
    /// (the rest is checked by decoding the encoded result).
    pub fn into_snapshot(self) -> Result<Snapshot> {
        if self.format_version != FORMAT_VERSION {
            bail!(
                "format_version {} is not supported (this wanco-snap writes {FORMAT_VERSION})",
                self.format_version
            );
        }
        let h = unhex(&self.module_hash, "module_hash")?;
        let module_hash: [u8; 32] = h.try_into().map_err(|h: Vec<u8>| {
            anyhow::anyhow!(
                "module_hash: expected 32 bytes (64 hex digits), got {}",
                h.len()
            )
        })?;
        let memory = match self.memory {
            None => None,
            Some(m) => {
                let mut chunks = Vec::with_capacity(m.chunks.len());
                for c in m.chunks {
                    let what = format!("memory page {}", c.page);
                    let bytes = unhex(&c.hex, &what)?;
                    if bytes.len() != PAGE_SIZE {
                        bail!("{what}: expected {PAGE_SIZE} bytes, got {}", bytes.len());
                    }
                    chunks.push((c.page, bytes));
                }
                Some(Memory {
                    pages: m.pages,
                    max: m.max,
                    chunks,
                })
            }
        };
        Ok(Snapshot {
            producer: self.producer,
            module_hash,
            migration_points: self.migration_points,
            points_rule: self.points_rule,
            frames: self.frames,
            globals: self.globals,
            tables: self.tables,
            memory,
            data_dropped: self.data_dropped,
            elem_dropped: self.elem_dropped,
            wasi: self.wasi,
            native: self.native,
        })
    }
}

/// Parse the JSON form.
pub fn parse(text: &[u8], name: &str) -> Result<Snapshot> {
    let j: JsonSnapshot = serde_json::from_slice(text)
        .with_context(|| format!("`{name}` is not a snapshot in JSON form"))?;
    j.into_snapshot()
        .with_context(|| format!("invalid snapshot JSON `{name}`"))
}
