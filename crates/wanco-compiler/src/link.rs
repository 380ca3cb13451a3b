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
/// Searched in order (`docs/installing.md`):
/// 1. `$WANCO_RT_DIR/<triple>/libwanco_rt.a`, `$WANCO_RT_DIR/libwanco_rt.a`
///    (host only);
/// 2. the installed layout next to the running executable:
///    `PREFIX/bin/wanco` -> `PREFIX/lib/wanco/<triple>/libwanco_rt.a`;
/// 3. the cargo target directory holding the running executable (a build in
///    a checkout; cargo marks it with `CACHEDIR.TAG`):
///    `<target-dir>/<triple>/{release,debug}/libwanco_rt.a`.
///
/// The error names every place looked at and the command that installs the
/// library for the way this `wanco` was installed.
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
    // current_exe is the resolved path (/proc/self/exe): a symlink to the
    // binary on PATH still finds the libraries of its own prefix.
    let exe = std::env::current_exe().ok();
    let bin_dir = exe.as_deref().and_then(Path::parent);
    if let Some(prefix) = bin_dir.and_then(Path::parent) {
        tried.push(prefix.join("lib").join("wanco").join(target.triple()).join(name));
    }
    // exe = <target-dir>/<profile>/wanco (or .../deps/test-binary); cargo
    // marks its target directory with CACHEDIR.TAG.
    if let Some(target_dir) = cargo_target_dir(bin_dir) {
        for profile in ["release", "debug"] {
            tried.push(target_dir.join(target.triple()).join(profile).join(name));
        }
    }
    for p in &tried {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    Err(CompileError::Link(format!(
        "runtime library for {target} (`{}/{name}`) not found; {}, or point WANCO_RT_DIR at a directory \
         holding `<triple>/{name}`. Looked in:\n  {}",
        target.triple(),
        runtime_install_hint(bin_dir, target),
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n  ")
    )))
}

/// The cargo target directory holding the running executable's directory
/// (`target/debug`, `target/debug/deps`, ...), if it is in one.
fn cargo_target_dir(bin_dir: Option<&Path>) -> Option<PathBuf> {
    bin_dir?.ancestors().take(4).find(|d| d.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf)
}

/// The command that installs the runtime library, for the way the running
/// executable was installed.
fn runtime_install_hint(bin_dir: Option<&Path>, target: Target) -> String {
    // A cargo build in a checkout: the checkout is above the target directory.
    let checkout = cargo_target_dir(bin_dir).as_deref().and_then(Path::parent).map(Path::to_path_buf);
    if let Some(c) = checkout {
        let rustup = if target == Target::host() {
            String::new()
        } else {
            format!("rustup target add {} && ", target.triple())
        };
        return format!("build it with `cd {} && {rustup}bash tools/build-runtime.sh`", c.display());
    }
    match bin_dir {
        Some(b) if b == Path::new("/usr/bin") => {
            "the `wanco` package installs it: `sudo apt-get install --reinstall wanco`".to_string()
        }
        Some(b) => format!(
            "install it with `just install {}` in a wanco checkout",
            b.parent().unwrap_or(b).display()
        ),
        None => "install it with `just install` in a wanco checkout".to_string(),
    }
}

/// Where LLVM's linker `ld.lld` is looked for, in order: LLVM 19's (the
/// `lld-19` package), the unversioned one on Debian's PATH, LLVM 14's
/// (`lld-14`, which `tools/setup.sh` installs for wasi-libc's clang). Any of
/// them links both ISAs.
const LLD_CANDIDATES: &[&str] = &["/usr/lib/llvm-19/bin/ld.lld", "/usr/bin/ld.lld", "/usr/lib/llvm-14/bin/ld.lld"];

/// The directory of the `ld.lld` the C compiler driver should use, if any.
///
/// `lld` links a module with the runtime library in a third of GNU ld's
/// time (about 0.07 s against 0.25 s of CPU for a small program, a fifth of
/// its whole compile); GNU ld stays the fallback where no `lld` is
/// installed. `WANCO_LINKER=system` forces the driver's default linker.
fn lld_dir() -> Option<PathBuf> {
    if std::env::var_os("WANCO_LINKER").is_some_and(|v| v == "system") {
        return None;
    }
    // gcc's -fuse-ld=lld runs the `ld.lld` it finds in its -B directories.
    installed_lld().and_then(Path::parent).map(Path::to_path_buf)
}

fn installed_lld() -> Option<&'static Path> {
    LLD_CANDIDATES.iter().map(Path::new).find(|p| p.is_file())
}

/// Whether an `ld.lld` that `wanco compile` links with is installed (it
/// does unless `WANCO_LINKER=system`; otherwise GNU ld links).
pub fn lld_installed() -> bool {
    installed_lld().is_some()
}

/// Link objects and the runtime into a standalone executable.
///
/// The runtime's debug information (most of it the Rust standard library's)
/// is left out (`--strip-debug`): it doubled the executable and the time to
/// write it. Symbols, `.eh_frame` (which `wanco-snap` unwinds with) and the
/// module's sections stay.
pub fn link_executable(inputs: &LinkInputs) -> Result<()> {
    let linker = inputs.target.linker();
    let mut cmd = Command::new(linker);
    if let Some(dir) = lld_dir() {
        cmd.arg(format!("-B{}", dir.display())).arg("-fuse-ld=lld");
    }
    cmd.args(inputs.objects)
        .arg(inputs.runtime)
        .arg("-o")
        .arg(inputs.output)
        .args(["-Wl,--gc-sections", "-Wl,--strip-debug", "-lpthread", "-ldl", "-lm", "-lc"]);
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

/// `ld -r` of `objs` into one relocatable object; with `localize`, then
/// `objcopy --localize-hidden`: the hidden symbols the parts of a module
/// share (its functions `f<N>`, its metadata blob) become local, as in a
/// module compiled in one part, so that several modules can be linked into
/// one executable.
pub(crate) fn merge(target: Target, objs: &[&[u8]], localize: bool) -> Result<Vec<u8>> {
    let dir = tempfile_dir()?;
    let result = (|| {
        let mut inputs = Vec::new();
        for (i, o) in objs.iter().enumerate() {
            let p = dir.join(format!("part{i}.o"));
            std::fs::write(&p, o).map_err(|e| CompileError::Link(format!("cannot write {}: {e}", p.display())))?;
            inputs.push(p);
        }
        let out = dir.join("merged.o");
        let ld = target.ld();
        let o = Command::new(ld)
            .arg("-r")
            .arg("-o")
            .arg(&out)
            .args(&inputs)
            .output()
            .map_err(|e| CompileError::Link(format!("cannot run `{ld}`: {e} (is binutils for {target} installed?)")))?;
        if !o.status.success() {
            return Err(CompileError::Link(format!("`{ld} -r` failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr))));
        }
        if localize {
            let objcopy = target.objcopy();
            let o = Command::new(objcopy)
                .arg("--localize-hidden")
                .arg(&out)
                .output()
                .map_err(|e| CompileError::Link(format!("cannot run `{objcopy}`: {e} (is binutils for {target} installed?)")))?;
            if !o.status.success() {
                return Err(CompileError::Link(format!("`{objcopy} --localize-hidden` failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr))));
            }
        }
        std::fs::read(&out).map_err(|e| CompileError::Link(format!("cannot read {}: {e}", out.display())))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A fresh private temporary directory.
fn tempfile_dir() -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("wanco-ld-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).map_err(|e| CompileError::Link(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}
