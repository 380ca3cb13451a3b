//! `wanco-snap decode`: print a snapshot as canonical JSON.

use super::common::read_snapshot;
use super::json::JsonSnapshot;
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;

/// Print the whole snapshot as canonical JSON on stdout.
///
/// Memory pages are lowercase hex strings (65536 bytes each, non-zero pages
/// only). `wanco-snap encode` turns the JSON back into the identical binary.
///
/// Example: `wanco-snap decode cp.wsnap > cp.json`
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  wanco-snap decode cp.wsnap > cp.json\n  wanco-snap encode cp.json -o cp2.wsnap   # byte-identical to cp.wsnap"
)]
pub struct Opts {
    /// The snapshot (`-` for stdin).
    snap: PathBuf,
}

pub fn run(o: Opts) -> Result<i32> {
    let s = read_snapshot(&o.snap)?;
    let mut text = serde_json::to_string_pretty(&JsonSnapshot::from_snapshot(&s))?;
    text.push('\n');
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(0)
}
