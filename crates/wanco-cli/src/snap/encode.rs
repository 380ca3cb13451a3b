//! `wanco-snap encode`: write the binary snapshot for its canonical JSON.

use super::common::read_input;
use super::json;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use wanco_state::snapshot;

/// Write a binary snapshot from its JSON form (as printed by `decode`).
///
/// Encoding is deterministic: `decode` then `encode` gives the same bytes.
/// The result is decoded again before it is written, so an inconsistent JSON
/// (e.g. memory pages out of order) is refused.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  wanco-snap decode cp.wsnap > cp.json\n  wanco-snap encode cp.json -o cp2.wsnap"
)]
pub struct Opts {
    /// The JSON file (`-` for stdin).
    json: PathBuf,
    /// Where to write the snapshot (`-` for stdout).
    #[arg(short, long, value_name = "SNAP")]
    output: PathBuf,
}

pub fn run(o: Opts) -> Result<i32> {
    let text = read_input(&o.json)?;
    let s = json::parse(&text, &o.json.display().to_string())?;
    let bytes = snapshot::encode(&s);
    snapshot::decode(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "invalid snapshot JSON `{}`: {}",
            o.json.display(),
            e.message
        )
    })?;
    if o.output.as_os_str() == "-" {
        std::io::stdout().lock().write_all(&bytes)?;
    } else {
        std::fs::write(&o.output, &bytes)
            .with_context(|| format!("cannot write `{}`", o.output.display()))?;
    }
    Ok(0)
}
