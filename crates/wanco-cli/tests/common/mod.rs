//! Helpers shared by the integration tests of this directory.

use std::path::Path;
use std::process::Command;

/// A command running compiled binary `bin` built for `isa` (`"x86_64"`
/// natively, `"aarch64"` under qemu-user with the cross sysroot).
pub fn on_isa(bin: &Path, isa: &str) -> Command {
    if isa == "x86_64" {
        Command::new(bin)
    } else {
        let mut c = Command::new("qemu-aarch64");
        c.args(["-L", "/usr/aarch64-linux-gnu"]).arg(bin);
        c
    }
}
