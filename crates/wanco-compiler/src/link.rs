//! Linking compiled objects with the runtime library into an executable.

use crate::error::{CompileError, Result};
use crate::target::Target;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Inputs of a link.
pub struct LinkInputs<'a> {
    /// Object files to link (the compiled module(s)).
    pub objects: &'a [PathBuf],
    /// The runtime static library for the target (`libwanco_rt.a`).
    pub runtime: &'a Path,
    /// Output executable.
    pub output: &'a Path,
    /// Target ISA.
    pub target: Target,
}

/// Find `libwanco_rt.a` for `target`.
///
/// Searched in order: `$WANCO_RT_DIR/<triple>/libwanco_rt.a`,
/// `$WANCO_RT_DIR/libwanco_rt.a` (host only), then the cargo target directory
/// next to the running executable: `<target>/<triple>/{release,debug}/`.
pub fn runtime_library(target: Target) -> Result<PathBuf> {
    let name = "libwanco_rt.a";
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("WANCO_RT_DIR") {
        let dir = PathBuf::from(dir);
        tried.push(dir.join(target.triple()).join(name));
        if target == Target::host() {
            tried.push(dir.join(name));
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        // exe = <target-dir>/<profile>/wanco (or .../deps/test-binary)
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..3 {
            let Some(d) = dir else { break };
            for profile in ["release", "debug"] {
                tried.push(d.join(target.triple()).join(profile).join(name));
            }
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    for p in &tried {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    Err(CompileError::Link(format!(
        "runtime library for {target} not found; build it with `cargo build -p wanco-rt --target {}` \
         (or `just runtime`), or point WANCO_RT_DIR at it. Looked in:\n  {}",
        target.triple(),
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n  ")
    )))
}

/// Link objects and the runtime into a standalone executable.
pub fn link_executable(inputs: &LinkInputs) -> Result<()> {
    let linker = inputs.target.linker();
    let mut cmd = Command::new(linker);
    cmd.args(inputs.objects)
        .arg(inputs.runtime)
        .arg("-o")
        .arg(inputs.output)
        .args(["-Wl,--gc-sections", "-lpthread", "-ldl", "-lm", "-lc"]);
    let out = cmd
        .output()
        .map_err(|e| CompileError::Link(format!("cannot run `{linker}`: {e} (is it installed?)")))?;
    if !out.status.success() {
        return Err(CompileError::Link(format!(
            "`{linker}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}
