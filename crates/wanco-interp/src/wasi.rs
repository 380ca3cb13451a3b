//! Running WASI (preview1) programs: the glue between the interpreter and
//! `wanco-wasi`.

use crate::error::{Error, InstantiateError, Trap};
use crate::module::Module;
use crate::state::{FrameState, InstanceState};
use crate::store::{Extern, Instance, Outcome, Store};
use std::cell::RefCell;
use std::rc::Rc;
use wanco_state::abi::TRAP_EXIT_CODE;
use wanco_state::module::{ExportKind, FuncType, ImportKind};
use wanco_state::wasi::WasiState;
use wanco_state::Value;
use wanco_wasi::{WasiConfig, WasiCtx, WasiFunc, WasiTrap};

/// The import module name of WASI preview1.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// How a WASI program ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasiExit {
    /// `_start` returned (status 0) or the guest called `proc_exit(status)`.
    Exit(u32),
    /// The guest trapped.
    Trap(Trap),
}

impl WasiExit {
    /// The process exit status this corresponds to (a trap is
    /// [`TRAP_EXIT_CODE`], as with wasmtime).
    pub fn code(&self) -> i32 {
        match self {
            WasiExit::Exit(c) => *c as i32,
            WasiExit::Trap(_) => TRAP_EXIT_CODE,
        }
    }
}

/// Where a WASI program stands after [`WasiRunner::start`] or
/// [`WasiRunner::resume`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasiRun {
    /// The program ended.
    Exited(WasiExit),
    /// It paused at the migration point set with [`WasiRunner::set_pause_at`].
    Paused,
}

/// A WASI program instantiated in its own [`Store`].
pub struct WasiRunner {
    store: Store,
    instance: Instance,
    module: Module,
    ctx: Rc<RefCell<WasiCtx>>,
}

fn link_wasi(store: &mut Store, module: &Module, ctx: &Rc<RefCell<WasiCtx>>) {
    for imp in &module.info().imports {
        if imp.module != WASI_MODULE || !matches!(imp.kind, ImportKind::Func(_)) {
            continue;
        }
        // Unknown names stay undefined: instantiation reports them.
        let Some(func) = WasiFunc::from_name(&imp.name) else {
            continue;
        };
        let (params, results) = func.signature();
        let ty = FuncType {
            params: params.to_vec(),
            results: results.to_vec(),
        };
        let has_result = !results.is_empty();
        let ctx = ctx.clone();
        store.define_func(WASI_MODULE, &imp.name, ty, move |mem, args| {
            let raw: Vec<u64> = args
                .iter()
                .map(|a| match *a {
                    Value::I32(x) => x as u32 as u64,
                    Value::I64(x) => x as u64,
                    Value::F32(b) => b as u64,
                    Value::F64(b) => b,
                    Value::FuncRef(r) => r.map(u64::from).unwrap_or(0),
                    Value::ExternRef(r) => r.unwrap_or(0),
                    // No WASI function takes a v128 (import types are
                    // checked when the module is linked).
                    Value::V128(_) => 0,
                })
                .collect();
            match ctx.borrow_mut().call(func, mem, &raw) {
                Ok(errno) if has_result => Ok(vec![Value::I32(errno as i32)]),
                Ok(_) => Ok(vec![]),
                Err(WasiTrap::Exit(code)) => Err(Trap::Exit(code)),
            }
        });
    }
}

fn inst_err(e: InstantiateError) -> Error {
    Error::new(0, e.to_string())
}

impl WasiRunner {
    /// Instantiate `module` with the WASI imports of a fresh context.
    pub fn new(module: &Module, config: WasiConfig) -> Result<WasiRunner, Error> {
        let ctx = WasiCtx::new(config).map_err(|e| Error::new(0, e.message()))?;
        WasiRunner::with_ctx(module, ctx, true)
    }

    /// Instantiate `module` with the WASI imports of a context made by the
    /// caller (e.g. one given listening sockets with
    /// [`WasiCtx::preopen_listener`]).
    pub fn from_ctx(module: &Module, ctx: WasiCtx) -> Result<WasiRunner, Error> {
        WasiRunner::with_ctx(module, ctx, true)
    }

    fn with_ctx(module: &Module, ctx: WasiCtx, run_start: bool) -> Result<WasiRunner, Error> {
        let ctx = Rc::new(RefCell::new(ctx));
        let mut store = Store::new();
        link_wasi(&mut store, module, &ctx);
        let instance = if run_start {
            store.instantiate(module)
        } else {
            store.instantiate_for_restore(module)
        }
        .map_err(inst_err)?;
        Ok(WasiRunner {
            store,
            instance,
            module: module.clone(),
            ctx,
        })
    }

    /// Rebuild a paused program from a state: the WASI host from `wasi`, the
    /// globals, tables and memory from `instance`, the frames from `frames`
    /// (outermost first) and the migration-point counter. Call
    /// [`WasiRunner::resume`] next. The module's start function is not run.
    pub fn restore(
        module: &Module,
        wasi: &WasiState,
        instance: &InstanceState,
        frames: &[FrameState],
        points: u64,
    ) -> Result<WasiRunner, Error> {
        // The outermost frame is the program's entry: when it returns, the
        // program has ended.
        let start = module
            .info()
            .exports
            .iter()
            .find(|e| e.name == "_start" && e.kind == ExportKind::Func)
            .map(|e| e.index);
        if let (Some(f), Some(start)) = (frames.first(), start) {
            if f.func != start {
                return Err(Error::new(
                    0,
                    format!("frame 0 (function {}) is not `_start` (function {start}): the outermost frame must be the program's entry", f.func),
                ));
            }
        }
        // Counting goes on from `points`: a count no run reaches (it would
        // overflow, or meet the "never" pause point) is damage.
        if points >= wanco_state::snapshot::MAX_MIGRATION_POINTS {
            return Err(Error::new(
                0,
                format!("the snapshot says {points} migration points were crossed, more than any run reaches (2^63)"),
            ));
        }
        let ctx = WasiCtx::from_state(wasi).map_err(|e| Error::new(0, e.message()))?;
        let mut r = WasiRunner::with_ctx(module, ctx, false)?;
        r.store.set_instance_state(r.instance, instance)?;
        let frames: Vec<FrameState> = frames
            .iter()
            .cloned()
            .map(|mut f| {
                f.instance = r.instance;
                f
            })
            .collect();
        r.store.restore_frames(&frames)?;
        r.store.set_migration_points(points);
        Ok(r)
    }

    /// The store (for inspection).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, writable.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The program's instance.
    pub fn instance(&self) -> Instance {
        self.instance
    }

    /// The module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The WASI host's state as plain data (for a snapshot).
    pub fn wasi_state(&self) -> WasiState {
        self.ctx.borrow().state()
    }

    /// Why a snapshot of the WASI state now could not be restored, if it
    /// could not (`WasiCtx::unrestorable`).
    pub fn wasi_unrestorable(&self) -> Option<String> {
        self.ctx.borrow().unrestorable()
    }

    /// The program ended (not a checkpoint): its gateway connections, if
    /// any, end now (`WasiCtx::program_exited`); what went wrong, if anything.
    pub fn wasi_program_exited(&self) -> Option<String> {
        self.ctx.borrow_mut().program_exited()
    }

    /// Pause at migration point `point` (`None`: never).
    pub fn set_pause_at(&mut self, point: Option<u64>) {
        self.store.set_pause_at(point);
    }

    /// Migration points crossed so far.
    pub fn migration_points(&self) -> u64 {
        self.store.migration_points()
    }

    /// Call `_start`.
    pub fn start(&mut self) -> Result<WasiRun, Error> {
        let addr = match self.store.export(self.instance, "_start") {
            Some(Extern::Func(a)) => a,
            _ => return Err(Error::new(0, "the module exports no `_start` function")),
        };
        let ty = self.store.func_type(addr).cloned().unwrap_or(FuncType {
            params: vec![],
            results: vec![],
        });
        if !ty.params.is_empty() || !ty.results.is_empty() {
            return Err(Error::new(0, "`_start` must have type [] -> []"));
        }
        Ok(Self::run_result(self.store.invoke_addr(addr, &[])))
    }

    /// Continue a paused (or restored) program.
    pub fn resume(&mut self) -> Result<WasiRun, Error> {
        Ok(Self::run_result(self.store.resume()))
    }

    fn run_result(r: Result<Outcome, Trap>) -> WasiRun {
        match r {
            Ok(Outcome::Finished(_)) => WasiRun::Exited(WasiExit::Exit(0)),
            Ok(Outcome::Paused) => WasiRun::Paused,
            Err(Trap::Exit(code)) => WasiRun::Exited(WasiExit::Exit(code)),
            Err(t) => WasiRun::Exited(WasiExit::Trap(t)),
        }
    }

    /// Run to the end (ignoring any pause point).
    pub fn run(&mut self) -> Result<WasiExit, Error> {
        self.set_pause_at(None);
        match self.start()? {
            WasiRun::Exited(e) => Ok(e),
            WasiRun::Paused => Err(Error::new(0, "unexpected pause")),
        }
    }
}

/// Decode, validate, instantiate and run a WASI program to its end.
pub fn run_wasi(bytes: &[u8], config: WasiConfig) -> Result<WasiExit, Error> {
    let module = Module::new(bytes)?;
    WasiRunner::new(&module, config)?.run()
}
