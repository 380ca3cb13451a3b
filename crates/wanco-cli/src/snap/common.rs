//! Helpers shared by the `wanco-snap` subcommands: reading inputs (`-` is
//! stdin), decoding snapshots with a one-line error, loading the module,
//! hex formatting.

use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;
use wanco_state::module::ModuleInfo;
use wanco_state::snapshot::{self, Snapshot};

/// Read a whole file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
    }
}

/// Read and decode a snapshot. A damaged or foreign file gives the
/// `SnapshotError` as one line: `cannot read snapshot `FILE`: … (at byte N)`.
pub fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let bytes = read_input(path)?;
    let name = if path == Path::new("-") {
        "stdin".to_string()
    } else {
        format!("`{}`", path.display())
    };
    snapshot::decode(&bytes).map_err(|e| anyhow::anyhow!("cannot read snapshot {name}: {e}"))
}

/// Like [`read_snapshot`], with the format version of the file.
pub fn read_snapshot_versioned(path: &Path) -> Result<(Snapshot, u32)> {
    let bytes = read_input(path)?;
    let name = if path == Path::new("-") {
        "stdin".to_string()
    } else {
        format!("`{}`", path.display())
    };
    let s = snapshot::decode(&bytes).map_err(|e| anyhow::anyhow!("cannot read snapshot {name}: {e}"))?;
    // `decode` checked the header, so the version is there.
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    Ok((s, version))
}

/// A module: its bytes and its metadata.
pub struct Module {
    /// The Wasm bytes.
    pub wasm: Vec<u8>,
    /// Metadata (hash, types, names, …).
    pub info: ModuleInfo,
}

/// Read and parse a module (`.wasm`, or `.wat` text).
pub fn read_module(path: &Path) -> Result<Module> {
    let bytes = read_input(path)?;
    let what = || format!("cannot parse module `{}`", path.display());
    let wasm = wanco_compiler::wasm_bytes(&bytes)
        .with_context(what)?
        .into_owned();
    // The interpreter reads every Wasm 2.0 module (SIMD included).
    let info = wanco_interp::Module::new(&wasm)
        .map(|m| m.info().clone())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(what)?;
    Ok(Module { wasm, info })
}

/// The first 16 digits of a hex id (module hash, build id), for messages.
pub fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parse lowercase or uppercase hex; `what` names the field in the error.
pub fn unhex(s: &str, what: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        anyhow::bail!(
            "{what}: expected an even number of hex digits, got {}",
            s.len()
        );
    }
    let digit = |c: u8, at: usize| -> Result<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => anyhow::bail!(
                "{what}: expected a hex digit at character {at}, got {:?}",
                c as char
            ),
        }
    };
    s.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, p)| Ok(digit(p[0], 2 * i)? << 4 | digit(p[1], 2 * i + 1)?))
        .collect()
}

/// Name of function `index` from the module's name section, or empty.
pub fn func_label(module: Option<&Module>, index: u32) -> String {
    match module.and_then(|m| m.info.func_name(index)) {
        Some(n) => n.to_string(),
        None => String::new(),
    }
}

/// How a frame kind is shown: `entry`, `loop`, `call`.
pub fn kind_name(k: wanco_state::snapshot::FrameKind) -> &'static str {
    use wanco_state::snapshot::FrameKind;
    match k {
        FrameKind::Entry => "entry",
        FrameKind::Loop => "loop",
        FrameKind::Call => "call",
    }
}

/// How an fd kind is shown: `stdin`, `file`, `directory`, …
pub fn fd_kind_name(k: wanco_state::wasi::FdKind) -> &'static str {
    use wanco_state::wasi::FdKind;
    match k {
        FdKind::Stdin => "stdin",
        FdKind::Stdout => "stdout",
        FdKind::Stderr => "stderr",
        FdKind::File => "file",
        FdKind::Directory => "directory",
        FdKind::TcpListener => "tcp listener",
        FdKind::TcpStream => "tcp connection",
    }
}
