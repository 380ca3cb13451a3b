//! `wanco-snap translate`: native frames of one ISA -> ISA-neutral frames ->
//! native frames of a target binary.

use super::common::{hex, read_snapshot, short};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use wanco_state::snapshot::{self, Snapshot};
use wanco_translate::binary::Binary;

/// Translate a snapshot's native view to another ISA (or drop it).
///
/// The snapshot's native frames (if any; `decode` already checked they hold
/// exactly its Wasm frames) are read back into ISA-neutral frames, which are
/// then laid out in the machine frames of `--binary`: its return addresses
/// (statepoint records), frame layout (CFI) and the location each local and
/// operand-stack value has there. The target binary checks that layout when
/// it restores. `--to neutral` drops the native view.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  wanco-snap translate cp.wsnap --to aarch64 --binary app.aarch64 -o cp-arm.wsnap\n  qemu-aarch64 -L /usr/aarch64-linux-gnu ./app.aarch64 --restore cp-arm.wsnap\n  wanco-snap translate cp-arm.wsnap --to neutral -o cp-neutral.wsnap"
)]
pub struct Opts {
    /// The snapshot (`-` for stdin).
    snap: PathBuf,
    /// Target: `x86_64`, `aarch64` (needs --binary) or `neutral`.
    #[arg(long, value_name = "ISA")]
    to: String,
    /// The compiled program to lay the frames out for (its ISA must be --to).
    #[arg(long, value_name = "BIN")]
    binary: Option<PathBuf>,
    /// Output file (written whole, then renamed into place).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
}

pub fn run(o: Opts) -> Result<i32> {
    let mut s = read_snapshot(&o.snap)?;
    let from = match &s.native {
        Some(n) => format!("{} native frames ({} machine frames)", n.isa, n.frames.len()),
        None => "neutral frames".to_string(),
    };
    let to = match o.to.as_str() {
        "neutral" => {
            if o.binary.is_some() {
                bail!("--binary is for --to x86_64 or --to aarch64; --to neutral needs no binary");
            }
            s.native = None;
            "neutral frames".to_string()
        }
        "x86_64" | "aarch64" => {
            let Some(bin_path) = &o.binary else {
                bail!(
                    "--to {} needs the target binary (--binary BIN): the frame layout comes from its stack maps and CFI",
                    o.to
                );
            };
            let bin = read_binary(bin_path)?;
            if bin.isa.name() != o.to {
                bail!("`{}` is an {} binary, not {}", bin_path.display(), bin.isa.name(), o.to);
            }
            let n = lay_out(&s, &bin, bin_path)?;
            let k = n.frames.len();
            s.native = Some(n);
            format!("{} native frames ({k} machine frames)", o.to)
        }
        other => bail!("--to {other}: expected x86_64, aarch64 or neutral"),
    };
    write_snapshot(&o.output, &s)?;
    eprintln!(
        "{} Wasm frames: {from} -> {to}; written to {}",
        s.frames.len(),
        o.output.display()
    );
    Ok(0)
}

/// Read a compiled binary, with a one-line error.
pub fn read_binary(path: &Path) -> Result<Binary> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Binary::read(bytes).map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))
}

/// The native view of `s`'s frames in `bin` (checks the module first).
pub fn lay_out(s: &Snapshot, bin: &Binary, path: &Path) -> Result<snapshot::NativeStack> {
    if let Err(e) = same_module(s, bin) {
        bail!("`{}` was {e}", path.display());
    }
    let cfi = bin.cfi().map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?;
    wanco_translate::native::layout(&bin.meta, &s.frames, &|d| bin.func_start(d), Some(&cfi))
        .map_err(|e| anyhow::anyhow!("cannot lay the frames out in `{}`: {e}", path.display()))
}

/// Whether `bin` was compiled from the snapshot's module; the error says
/// `compiled from module sha256 …, the snapshot is of …`.
pub fn same_module(s: &Snapshot, bin: &Binary) -> std::result::Result<(), String> {
    let module = hex(&s.module_hash);
    if bin.meta.module == module {
        Ok(())
    } else {
        Err(format!("compiled from module sha256 {}…, the snapshot is of {}…", short(&bin.meta.module), short(&module)))
    }
}

/// Write a snapshot file whole (temporary file, then rename).
pub fn write_snapshot(path: &Path, s: &Snapshot) -> Result<()> {
    let bytes = snapshot::encode(s);
    let tmp = path.with_extension("wsnap.tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}
