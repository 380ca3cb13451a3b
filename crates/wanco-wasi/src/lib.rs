//! `wanco-wasi`: a WASI preview1 (`wasi_snapshot_preview1`) host over an
//! abstract guest memory, shared by the runtime of compiled binaries and by
//! the reference interpreter.
//!
//! * [`WasiCtx::call`] executes one call against the guest's linear memory
//!   (a plain `&mut [u8]`); every pointer is bounds-checked.
//! * [`WasiCtx::state`] / [`WasiCtx::from_state`] turn the host state into
//!   plain data ([`WasiState`]) for a snapshot and back: the fd table with
//!   paths, flags, rights and offsets, preopens, args, env, clock continuity.
//!
//! Observable behaviour follows the `wasmtime` CLI (its preview1 adapter,
//! checked against wasmtime 49): the same errno for the same failure, the same
//! rights in `fd_fdstat_get`, the same `fd_readdir` bytes, the same fd
//! numbering. Where wasmtime *traps* (an out-of-bounds pointer, an invalid
//! enum or flag value) this host returns `FAULT` or `INVAL` instead, because a
//! WASI call here can only return an errno or exit.
//!
//! Sockets (`WasiCtx::preopen_listener`, the runtimes' `--tcplisten`)
//! follow wasmtime 36's preview1 host instead (`-S preview2=n -S tcplisten=`),
//! the last wasmtime that offers preview1 modules sockets; see `ctx/sock.rs`.
//!
//! Sandboxing: paths never leave the preopen they are relative to. They are
//! resolved one component at a time with `O_NOFOLLOW`, symbolic links are
//! expanded by hand (at most 40 per lookup, then `LOOP`), and an absolute
//! path, a `..` above the preopen, or a link whose target is absolute or
//! climbs out fails with `PERM` (errno 63), as in wasmtime.
//!
//! Standard output and error are written with `write(2)` directly, never
//! buffered, so that a checkpoint right after a call loses nothing.
//!
//! Linux only (x86_64 and aarch64); depends on `libc` and std only.
#![deny(missing_docs)]

mod ctx;
pub mod errno;
mod func;
mod mem;
mod path;
mod sys;

pub use ctx::{rights, WasiConfig, WasiCtx};
pub use errno::Errno;
pub use func::WasiFunc;
pub use wanco_state::wasi::{ClockState, FdEntry, FdKind, Preopen, WasiState};

use std::fmt;

/// Why a WASI call did not return to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasiTrap {
    /// `proc_exit(code)`: the guest asked to exit with this status.
    ///
    /// wasmtime rejects statuses of 126 and above with an error (the process
    /// then exits with status 1); this host reports such calls as `Exit(1)`
    /// so that the exit status matches.
    Exit(u32),
}

impl fmt::Display for WasiTrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WasiTrap::Exit(code) => write!(f, "guest exited with status {code}"),
        }
    }
}

impl std::error::Error for WasiTrap {}

/// A failure to set up (or restore) the WASI host, with a plain-language
/// message naming the path or fd at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasiError {
    message: String,
}

impl WasiError {
    fn new(message: String) -> Self {
        WasiError { message }
    }

    fn preopen(host: &str, e: std::io::Error) -> Self {
        let why = match e.raw_os_error() {
            Some(libc::ENOENT) => "it does not exist".to_string(),
            Some(libc::ENOTDIR) => "it is not a directory".to_string(),
            _ => e.to_string(),
        };
        WasiError::new(format!("cannot preopen directory `{host}`: {why}"))
    }

    fn reopen(e: &FdEntry, host: &str, errno: Errno) -> Self {
        let what = if e.kind == FdKind::Directory {
            "directory"
        } else {
            "file"
        };
        let path = if e.rel_path.is_empty() {
            "."
        } else {
            &e.rel_path
        };
        WasiError::new(format!(
            "cannot reopen fd {} ({what} `{path}` under `{host}`): {}",
            e.fd,
            errno.describe()
        ))
    }

    /// The message, without any prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for WasiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WasiError {}

#[cfg(test)]
mod tests;

/// Parse a `--dir` value: `HOST::GUEST`, or `HOST` (the guest sees the same path).
/// Shared by compiled programs and `wanco interp` so both accept the same syntax.
pub fn parse_dir(spec: &str) -> Preopen {
    match spec.split_once("::") {
        Some((host, guest)) => Preopen { host: host.to_string(), guest: guest.to_string() },
        None => Preopen { host: spec.to_string(), guest: spec.to_string() },
    }
}

/// Parse an `--env` value: `KEY=VALUE`, or `KEY` (the host's value, empty if unset).
pub fn parse_env(spec: &str) -> (String, String) {
    match spec.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (spec.to_string(), std::env::var(spec).unwrap_or_default()),
    }
}
