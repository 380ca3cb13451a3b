//! The reference interpreter (`wanco-interp`) as a spec engine.

use crate::engine::{
    Engine, FileInfo, InstanceId, InstantiateError, InvokeError, ModuleId, SpecVersion,
};
use wanco_interp::{Instance, Module, Store, Trap, WasmVersion};
use wanco_state::Value;

/// Runs every directive in-process in a [`Store`].
pub struct InterpEngine {
    version: WasmVersion,
    store: Store,
    modules: Vec<Result<Module, String>>,
    instances: Vec<Instance>,
}

impl Default for InterpEngine {
    fn default() -> Self {
        InterpEngine::new()
    }
}

impl InterpEngine {
    /// A fresh engine.
    pub fn new() -> InterpEngine {
        InterpEngine {
            version: WasmVersion::V2,
            store: Store::new(),
            modules: Vec::new(),
            instances: Vec::new(),
        }
    }

    fn instance(&self, id: InstanceId) -> Result<Instance, String> {
        self.instances
            .get(id as usize)
            .copied()
            .ok_or_else(|| format!("no instance {id}"))
    }
}

fn trap(t: Trap) -> InvokeError {
    match t {
        t if t.is_exhaustion() => InvokeError::Exhaustion,
        Trap::Wasm(c) => InvokeError::Trap(c.message().to_string()),
        other => InvokeError::Other(other.message()),
    }
}

impl Engine for InterpEngine {
    fn name(&self) -> &str {
        "interp"
    }

    fn prepare(&mut self, file: &FileInfo, modules: &[Vec<u8>]) -> Result<(), String> {
        self.version = match file.version {
            SpecVersion::V1 => WasmVersion::V1,
            SpecVersion::V2 => WasmVersion::V2,
        };
        self.store = Store::new();
        self.store.define_spectest();
        self.instances.clear();
        self.modules = modules
            .iter()
            .map(|m| Module::with_version(m, self.version).map_err(|e| e.to_string()))
            .collect();
        Ok(())
    }

    fn validate(&mut self, wasm: &[u8]) -> Result<(), String> {
        Module::validate(wasm, self.version).map_err(|e| e.to_string())
    }

    fn instantiate(
        &mut self,
        module: ModuleId,
        _name: Option<&str>,
    ) -> Result<InstanceId, InstantiateError> {
        let m = match self.modules.get(module) {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(InstantiateError::Other(format!("module rejected: {e}"))),
            None => return Err(InstantiateError::Other(format!("no module {module}"))),
        };
        match self.store.instantiate(m) {
            Ok(i) => {
                self.instances.push(i);
                Ok(self.instances.len() as InstanceId - 1)
            }
            Err(wanco_interp::InstantiateError::Unlinkable(m)) => {
                Err(InstantiateError::Unlinkable(m))
            }
            Err(wanco_interp::InstantiateError::Trap(t)) => Err(match trap(t) {
                InvokeError::Trap(m) => InstantiateError::Trap(m),
                InvokeError::Exhaustion => InstantiateError::Exhaustion,
                InvokeError::Other(m) => InstantiateError::Other(m),
            }),
        }
    }

    fn register(&mut self, name: &str, instance: InstanceId) -> Result<(), String> {
        let i = self.instance(instance)?;
        self.store.register(name, i);
        Ok(())
    }

    fn invoke(
        &mut self,
        instance: InstanceId,
        export: &str,
        args: &[Value],
    ) -> Result<Vec<Value>, InvokeError> {
        let i = self.instance(instance).map_err(InvokeError::Other)?;
        i.invoke(&mut self.store, export, args).map_err(trap)
    }

    fn get(&mut self, instance: InstanceId, export: &str) -> Result<Value, String> {
        let i = self.instance(instance)?;
        i.global(&self.store, export)
            .ok_or_else(|| format!("no exported global named {export:?}"))
    }
}
