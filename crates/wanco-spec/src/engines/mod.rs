//! The engines the runner can drive: one module per engine.

pub mod aot;
pub mod interp;

use crate::engine::Engine;

/// Names of the engines this build knows.
pub const NAMES: &[&str] = &["interp", "aot-x86_64", "aot-aarch64", "aot-x86_64-checked", "aot-aarch64-checked"];

/// Create the engine called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Engine>, String> {
    match name {
        "interp" => Ok(Box::new(interp::InterpEngine::new())),
        "aot-x86_64" => Ok(Box::new(aot::AotEngine::new(wanco_compiler::Target::X86_64))),
        "aot-aarch64" => Ok(Box::new(aot::AotEngine::new(wanco_compiler::Target::Aarch64))),
        "aot-x86_64-checked" => Ok(Box::new(aot::AotEngine::new(wanco_compiler::Target::X86_64).with_explicit_bounds_checks())),
        "aot-aarch64-checked" => Ok(Box::new(aot::AotEngine::new(wanco_compiler::Target::Aarch64).with_explicit_bounds_checks())),
        _ => Err(format!(
            "unknown engine {name:?}: expected one of {}",
            NAMES.join(", ")
        )),
    }
}
