//! `wanco-snap chain` and `wanco-snap merge`: chains of incremental
//! snapshots (a full snapshot, then snapshots that each hold only the memory
//! pages written since the one before, naming it as their parent).

use super::common::{hex, read_input, short};
use anyhow::{Context, Result};
use std::path::PathBuf;
use wanco_state::snapshot::{check_chain, merge_chain};

/// Show a chain, oldest first, and check it: the first is a full snapshot,
/// each later one names the one before it as its parent, all are of one
/// module. A missing or foreign parent is reported naming the link.
///
/// Exit code 0: a whole chain, 2: a snapshot cannot be read or the chain is
/// broken.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  wanco-snap chain base.wsnap r1.wsnap r2.wsnap")]
pub struct ChainOpts {
    /// The snapshots, the full one first.
    #[arg(required = true)]
    snaps: Vec<PathBuf>,
}

/// Merge a chain (checked as `wanco-snap chain` does) into one full
/// snapshot: the last snapshot's state with every link's memory applied.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  wanco-snap merge base.wsnap r1.wsnap r2.wsnap -o whole.wsnap")]
pub struct MergeOpts {
    /// The snapshots, the full one first.
    #[arg(required = true)]
    snaps: Vec<PathBuf>,
    /// Where to write the full snapshot.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    paths.iter().map(|p| read_input(p)).collect()
}

fn named(e: wanco_state::snapshot::ChainError, paths: &[PathBuf]) -> anyhow::Error {
    let name = paths.get(e.link).map(|p| p.display().to_string()).unwrap_or_default();
    anyhow::anyhow!("{name} (snapshot {} of the chain): {}", e.link, e.message)
}

pub fn run_chain(o: ChainOpts) -> Result<i32> {
    let files = read_all(&o.snaps)?;
    let refs: Vec<&[u8]> = files.iter().map(|f| &f[..]).collect();
    let links = check_chain(&refs).map_err(|e| named(e, &o.snaps))?;
    for (k, (l, path)) in links.iter().zip(&o.snaps).enumerate() {
        let id = hex(&l.id);
        let parent = l.parent.map_or_else(|| "none (full)".to_string(), |p| short(&hex(&p)).to_string());
        let (pages, stored) = l.memory.as_ref().map_or((0, 0), |m| (m.pages, m.stored_count()));
        println!(
            "{k}: {}  id {}  parent {parent}  migration points {}  memory {pages} pages, {stored} stored  {} bytes",
            path.display(),
            short(&id),
            l.snapshot.migration_points,
            files[k].len()
        );
    }
    println!("ok: a chain of {} snapshots", links.len());
    Ok(0)
}

pub fn run_merge(o: MergeOpts) -> Result<i32> {
    let files = read_all(&o.snaps)?;
    let refs: Vec<&[u8]> = files.iter().map(|f| &f[..]).collect();
    let merged = merge_chain(&refs).map_err(|e| named(e, &o.snaps))?;
    std::fs::write(&o.output, &merged).with_context(|| format!("cannot write {}", o.output.display()))?;
    println!("merged {} snapshots into {} ({} bytes)", files.len(), o.output.display(), merged.len());
    Ok(0)
}
