//! The interface every engine under test implements.
//!
//! The runner drives an engine one `.wast` file at a time:
//!
//! 1. [`Engine::prepare`] receives every module binary the file will
//!    instantiate, up front and indexed by [`ModuleId`] (an ahead-of-time
//!    engine compiles them all into one driver here);
//! 2. the directives follow in file order, as calls of the other methods.
//!
//! A module's identity is its index in that list; the same module may be
//! instantiated several times. Instances are named by the engine-assigned
//! [`InstanceId`]. Modules given to [`Engine::validate`] (from
//! `assert_invalid` / `assert_malformed`) are *not* in the list: they are
//! only checked, never run.

use std::fmt;
use wanco_state::Value;

/// Index of a module binary in the list given to [`Engine::prepare`].
pub type ModuleId = usize;

/// An instance, as numbered by the engine.
pub type InstanceId = u32;

/// Which version of the core specification a test folder is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecVersion {
    /// WebAssembly 1.0 (`wasm-v1`).
    V1,
    /// WebAssembly 2.0 (`wasm-v2`).
    V2,
}

/// The test file being run.
#[derive(Clone, Debug)]
pub struct FileInfo {
    /// Folder of the file (`wasm-v1`, `wasm-v2`).
    pub folder: String,
    /// File name (`i32.wast`).
    pub name: String,
    /// Spec version the folder is written for.
    pub version: SpecVersion,
}

/// Why instantiation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstantiateError {
    /// Unknown import or import of an incompatible type (`assert_unlinkable`).
    Unlinkable(String),
    /// A trap while initialising tables/memories or in the start function
    /// (`assert_trap (module ...)` / `assert_uninstantiable`); the message is
    /// in spec wording ("out of bounds memory access").
    Trap(String),
    /// Call stack exhausted in the start function.
    Exhaustion,
    /// The engine failed for another reason (could not compile the module,
    /// lost its driver process, ...). Always a test failure.
    Other(String),
}

/// Why an invocation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvokeError {
    /// A trap, with its message in spec wording.
    Trap(String),
    /// The call stack was exhausted.
    Exhaustion,
    /// The engine failed for another reason. Always a test failure.
    Other(String),
}

impl fmt::Display for InstantiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstantiateError::Unlinkable(m) => write!(f, "unlinkable: {m}"),
            InstantiateError::Trap(m) => write!(f, "trap: {m}"),
            InstantiateError::Exhaustion => f.write_str("call stack exhausted"),
            InstantiateError::Other(m) => write!(f, "engine error: {m}"),
        }
    }
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvokeError::Trap(m) => write!(f, "trap: {m}"),
            InvokeError::Exhaustion => f.write_str("call stack exhausted"),
            InvokeError::Other(m) => write!(f, "engine error: {m}"),
        }
    }
}

/// An engine under test. `funcref` values crossing this interface only need
/// to be right about null versus non-null; `externref` values carry the
/// number of a `ref.extern N`.
pub trait Engine {
    /// Short name (`interp`, `aot-x86_64`), used in reports and to find the
    /// expected-failure list.
    fn name(&self) -> &str;

    /// Start a new file: forget every instance and registration of the
    /// previous one (the `spectest` module is always available), and receive
    /// every module binary of the file that will be instantiated.
    fn prepare(&mut self, file: &FileInfo, modules: &[Vec<u8>]) -> Result<(), String>;

    /// Decode and validate a module that is never instantiated
    /// (`assert_invalid`, `assert_malformed`): `Err` with a message if the
    /// engine rejects it.
    fn validate(&mut self, wasm: &[u8]) -> Result<(), String>;

    /// Instantiate module `module` of the list given to `prepare`, linking its
    /// imports against the registered names. `name` is the module's name in
    /// the script (`$M`), for diagnostics only.
    fn instantiate(
        &mut self,
        module: ModuleId,
        name: Option<&str>,
    ) -> Result<InstanceId, InstantiateError>;

    /// Make the exports of `instance` importable under module name `name`.
    fn register(&mut self, name: &str, instance: InstanceId) -> Result<(), String>;

    /// Call exported function `export` of `instance`.
    fn invoke(
        &mut self,
        instance: InstanceId,
        export: &str,
        args: &[Value],
    ) -> Result<Vec<Value>, InvokeError>;

    /// Read exported global `export` of `instance`.
    fn get(&mut self, instance: InstanceId, export: &str) -> Result<Value, String>;

    /// The file is done (an engine may release resources here).
    fn finish(&mut self) {}
}
