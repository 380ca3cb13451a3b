//! Instantiating a compiled module from its descriptor and metadata.

use crate::memory::Memory;
use crate::signals;
use crate::table::Table;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;
use wanco_state::abi::{self, TrapCode};
use wanco_state::module::*;
use wanco_state::snapshot::PackedMemory;

/// The descriptor a compiled object exports (layout: [`abi::descriptor`]).
#[repr(C)]
pub struct Descriptor {
    abi_version: u64,
    meta: *const u8,
    meta_len: u64,
    natives: *const *const c_void,
    arrays: *const *const c_void,
    adapters: *const *const c_void,
    crmeta: *const u8,
}

// SAFETY: the descriptor is immutable static data emitted by the compiler.
unsafe impl Sync for Descriptor {}

/// A function reference record (layout: [`abi::funcref`]).
#[repr(C)]
pub struct FuncRef {
    /// Native-convention entry.
    pub native: *const c_void,
    /// First argument of `native`.
    pub vmctx: *mut c_void,
    /// Canonical type id.
    pub type_id: u64,
    /// Array-convention entry.
    pub array: *const c_void,
    /// First argument of `array`.
    pub array_ctx: *mut c_void,
}

/// An array-convention function: `fn(ctx, values)`.
pub type ArrayFn = unsafe extern "C" fn(*mut c_void, *mut u64);

/// A host function implementation: `fn(ctx, importing instance, values)`.
/// Arguments are in `values[..params]`; results go to `values[..results]`.
pub type HostFn = unsafe fn(*mut c_void, &mut Instance, &mut [u64]);

/// A host function offered for import.
#[derive(Clone, Copy)]
pub struct HostFunc {
    /// Its Wasm type, as a canonical id from [`type_id`].
    pub type_id: u64,
    /// Number of value slots it needs (max of params and results).
    pub slots: usize,
    /// The implementation.
    pub func: HostFn,
    /// Its context argument.
    pub ctx: *mut c_void,
}

/// A host function bound to the instance that imports it.
struct HostCall {
    host: HostFunc,
    instance: *mut Instance,
}

unsafe extern "C" fn host_trampoline(hc: *mut c_void, values: *mut u64) {
    // SAFETY: `hc` is the HostCall owned by the importing instance, which is
    // alive while its code runs; `values` has `slots` entries (the adapter
    // allocates max(params, results) slots).
    unsafe {
        let hc = &*(hc as *const HostCall);
        let vals = std::slice::from_raw_parts_mut(values, hc.host.slots.max(1));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (hc.host.func)(hc.host.ctx, &mut *hc.instance, vals)
        }));
        if r.is_err() {
            // A host function must never panic; if one does, stop cleanly
            // instead of unwinding into compiled code.
            eprintln!("wanco: internal error in a host function; exiting");
            std::process::exit(70);
        }
    }
    crate::cr::points::after_host_call();
}

/// What an import resolves to.
#[derive(Clone, Copy)]
pub enum Extern {
    /// A host function.
    Host(HostFunc),
    /// A function of another instance.
    Func(*const FuncRef),
    /// A table.
    Table(*mut Table),
    /// A memory.
    Memory(*mut Memory),
    /// A global cell and its type.
    Global(*mut u64, GlobalType),
}

static TYPES: Mutex<Vec<FuncType>> = Mutex::new(Vec::new());

/// Canonical id of a function type (equal types get equal ids, across modules).
pub fn type_id(ft: &FuncType) -> u64 {
    let mut t = TYPES.lock().unwrap();
    if let Some(i) = t.iter().position(|x| x == ft) {
        return i as u64;
    }
    t.push(ft.clone());
    (t.len() - 1) as u64
}

/// The fixed part of the instance context (layout: [`abi::vmctx`]).
#[repr(C)]
pub struct VmCtx {
    memory_base: *mut u8,
    memory: *mut Memory,
    func_refs: *const *const FuncRef,
    type_ids: *const u32,
    tables: *const *mut Table,
    globals: *const *mut u64,
    instance: *mut Instance,
}

const _: () = assert!(std::mem::size_of::<VmCtx>() == abi::vmctx::SIZE as usize);
const _: () = assert!(std::mem::size_of::<FuncRef>() == abi::funcref::SIZE as usize);

/// Why instantiation failed.
#[derive(Debug)]
pub enum InstantiateError {
    /// An import is missing or has the wrong type.
    Unlinkable(String),
    /// A trap while initialising segments or running the start function.
    Trap(TrapCode),
    /// Anything else (corrupt object, out of memory).
    Other(String),
}

impl std::fmt::Display for InstantiateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstantiateError::Unlinkable(m) => write!(f, "{m}"),
            InstantiateError::Trap(c) => write!(f, "wasm trap: {}", c.message()),
            InstantiateError::Other(m) => write!(f, "{m}"),
        }
    }
}

/// A live instance. Never moves once created (boxed); compiled code holds
/// pointers into it.
// The boxes inside the Vecs are deliberate: compiled code and other instances
// hold pointers to each FuncRef/HostCall/Table, so they must not move when a
// Vec grows.
#[allow(clippy::vec_box)]
pub struct Instance {
    /// Module metadata.
    pub info: ModuleInfo,
    vmctx: Box<VmCtx>,
    desc: &'static Descriptor,
    func_refs: Vec<*const FuncRef>,
    own_funcrefs: Vec<Box<FuncRef>>,
    host_calls: Vec<Box<HostCall>>,
    type_ids: Vec<u32>,
    tables: Vec<*mut Table>,
    own_tables: Vec<Box<Table>>,
    globals: Vec<*mut u64>,
    /// 16-byte cells (a v128 global fills one; others use the first 8
    /// bytes), 16-byte aligned.
    own_globals: Box<[u128]>,
    memory: Option<*mut Memory>,
    own_memory: Option<Box<Memory>>,
    /// Evaluated element segments (`None` once dropped).
    elems: Vec<Option<Vec<u64>>>,
    /// Whether each data segment has been dropped.
    data_dropped: Vec<bool>,
}

impl Instance {
    /// Metadata of a descriptor.
    pub fn module_info(desc: &Descriptor) -> Result<ModuleInfo, String> {
        if desc.abi_version != abi::ABI_VERSION {
            return Err(format!(
                "object built for runtime ABI {} but this runtime speaks ABI {}: recompile the module",
                desc.abi_version,
                abi::ABI_VERSION
            ));
        }
        // SAFETY: the compiler emits `meta_len` bytes at `meta`, in the
        // program's read-only data: they live as long as the program
        // (`'static`; descriptors are never unloaded).
        let meta: &'static [u8] = unsafe { std::slice::from_raw_parts(desc.meta, desc.meta_len as usize) };
        // Segments and names are borrowed from it, not copied.
        ModuleInfo::from_static(meta)
    }

    /// Instantiate. `resolve(module, name)` supplies imports. Traps during
    /// segment initialisation or the start function are caught and returned
    /// (the instance then stays alive if `keep_on_trap`, because in Wasm 2.0
    /// earlier segment writes to shared tables/memories remain visible).
    pub fn new(
        desc: &'static Descriptor,
        resolve: &mut dyn FnMut(&Import) -> Option<Extern>,
    ) -> Result<Box<Instance>, InstantiateError> {
        Self::create(desc, None, resolve, true)
    }

    /// Instantiate for a restore: imports are linked and the defined
    /// memories, tables, globals and functions created, but neither the
    /// active segments nor the start function run (the snapshot's state is
    /// installed next with [`Instance::install`]).
    /// `info` is the descriptor's [`Instance::module_info`], already read
    /// (to check the snapshot against it).
    pub fn new_for_restore(
        desc: &'static Descriptor,
        info: ModuleInfo,
        resolve: &mut dyn FnMut(&Import) -> Option<Extern>,
    ) -> Result<Box<Instance>, InstantiateError> {
        Self::create(desc, Some(info), resolve, false)
    }

    fn create(
        desc: &'static Descriptor,
        info: Option<ModuleInfo>,
        resolve: &mut dyn FnMut(&Import) -> Option<Extern>,
        initialize: bool,
    ) -> Result<Box<Instance>, InstantiateError> {
        let info = match info {
            Some(i) => i,
            None => Self::module_info(desc).map_err(InstantiateError::Other)?,
        };
        crate::memory::require_guard(info.memory_guard_bytes);
        let type_ids: Vec<u32> = info.types.iter().map(|t| type_id(t) as u32).collect();
        let mut inst = Box::new(Instance {
            vmctx: Box::new(VmCtx {
                memory_base: std::ptr::null_mut(),
                memory: std::ptr::null_mut(),
                func_refs: std::ptr::null(),
                type_ids: std::ptr::null(),
                tables: std::ptr::null(),
                globals: std::ptr::null(),
                instance: std::ptr::null_mut(),
            }),
            desc,
            func_refs: Vec::with_capacity(info.funcs.len()),
            own_funcrefs: Vec::new(),
            host_calls: Vec::new(),
            type_ids,
            tables: Vec::new(),
            own_tables: Vec::new(),
            globals: Vec::new(),
            own_globals: vec![0u128; info.globals.len()].into_boxed_slice(),
            memory: None,
            own_memory: None,
            elems: Vec::new(),
            data_dropped: vec![false; info.datas.len()],
            info,
        });
        inst.link(resolve)?;
        inst.create_defined()?;
        inst.wire_vmctx();
        if !initialize {
            let elems: Vec<Option<Vec<u64>>> =
                inst.info.elems.iter().map(|s| Some(s.items.iter().map(|e| inst.eval(e)).collect())).collect();
            inst.elems = elems;
            return Ok(inst);
        }
        if let Err(e) = inst.initialize() {
            // Segments written before the trap stay visible in imported
            // tables and memories (Wasm 2.0), and may point at this
            // instance's functions: keep it alive.
            Box::leak(inst);
            return Err(e);
        }
        Ok(inst)
    }

    fn link(&mut self, resolve: &mut dyn FnMut(&Import) -> Option<Extern>) -> Result<(), InstantiateError> {
        let imports = self.info.imports.clone();
        let mut func_i = 0usize;
        for imp in &imports {
            let what = format!("{}::{}", imp.module, imp.name);
            let Some(ext) = resolve(imp) else {
                return Err(InstantiateError::Unlinkable(format!("unknown import: `{what}` is not defined")));
            };
            let incompatible = || InstantiateError::Unlinkable(format!("incompatible import type for `{what}`"));
            match (&imp.kind, ext) {
                (ImportKind::Func(t), Extern::Host(h)) => {
                    let want = self.type_ids[*t as usize] as u64;
                    if h.type_id != want {
                        return Err(incompatible());
                    }
                    // SAFETY: the compiler emits one adapter per imported function.
                    let adapter = unsafe { *self.desc.adapters.add(func_i) };
                    let mut hc = Box::new(HostCall { host: h, instance: self as *mut Instance });
                    let mut fr = Box::new(FuncRef {
                        native: adapter,
                        vmctx: std::ptr::null_mut(),
                        type_id: want,
                        array: host_trampoline as *const c_void,
                        array_ctx: &mut *hc as *mut HostCall as *mut c_void,
                    });
                    self.host_calls.push(hc);
                    // The adapter receives its own FuncRef as context.
                    fr.vmctx = &mut *fr as *mut FuncRef as *mut c_void;
                    self.func_refs.push(&*fr as *const FuncRef);
                    self.own_funcrefs.push(fr);
                    func_i += 1;
                }
                (ImportKind::Func(t), Extern::Func(fr)) => {
                    // SAFETY: FuncRefs of live instances are never freed.
                    if unsafe { (*fr).type_id } != self.type_ids[*t as usize] as u64 {
                        return Err(incompatible());
                    }
                    self.func_refs.push(fr);
                    func_i += 1;
                }
                (ImportKind::Table(tt), Extern::Table(t)) => {
                    // SAFETY: tables of live instances are never freed.
                    let have = unsafe { &*t };
                    if have.ty.elem != tt.elem || !limits_match(have.len(), have.ty.limits.max, &tt.limits) {
                        return Err(incompatible());
                    }
                    self.tables.push(t);
                }
                (ImportKind::Memory(l), Extern::Memory(m)) => {
                    // SAFETY: memories of live instances are never freed.
                    let have = unsafe { &*m };
                    let declared_max = if have.max_pages() == crate::memory::MAX_PAGES && l.max.is_none() {
                        None
                    } else {
                        Some(have.max_pages())
                    };
                    if !limits_match(have.pages(), declared_max, l) {
                        return Err(incompatible());
                    }
                    self.memory = Some(m);
                }
                (ImportKind::Global(gt), Extern::Global(cell, have)) => {
                    if have != *gt {
                        return Err(incompatible());
                    }
                    self.globals.push(cell);
                }
                _ => return Err(incompatible()),
            }
        }
        Ok(())
    }

    fn create_defined(&mut self) -> Result<(), InstantiateError> {
        for lim in self.info.memories.clone() {
            let mut m = Memory::new(lim.min, lim.max).map_err(|e| InstantiateError::Other(e.0))?;
            self.memory = Some(&mut *m as *mut Memory);
            self.own_memory = Some(m);
        }
        for tt in self.info.tables.clone() {
            let mut t = Table::new(tt);
            self.tables.push(&mut *t as *mut Table);
            self.own_tables.push(t);
        }
        // Function references of defined functions.
        let n_imp = self.info.num_imported_funcs as usize;
        let vmctx = &mut *self.vmctx as *mut VmCtx as *mut c_void;
        for i in n_imp..self.info.funcs.len() {
            let d = i - n_imp;
            let ty = self.type_ids[self.info.funcs[i] as usize] as u64;
            // SAFETY: the compiler emits one native and one array entry per defined function.
            let (native, array) = unsafe { (*self.desc.natives.add(d), *self.desc.arrays.add(d)) };
            let fr = Box::new(FuncRef { native, vmctx, type_id: ty, array, array_ctx: vmctx });
            self.func_refs.push(&*fr as *const FuncRef);
            self.own_funcrefs.push(fr);
        }
        // Globals: imported cells first, then our own.
        let own = self.own_globals.as_mut_ptr();
        for i in 0..self.info.globals.len() {
            // SAFETY: i < own_globals.len().
            self.globals.push(unsafe { own.add(i) } as *mut u64);
        }
        for (i, g) in self.info.globals.clone().iter().enumerate() {
            let v = match (g.ty.ty, &g.init) {
                (_, ConstExpr::V128(x)) => *x,
                // SAFETY: a v128 global's cell (validated: the imported global is a v128) has 16 bytes.
                (wanco_state::ValType::V128, ConstExpr::GlobalGet(j)) => unsafe { (self.globals[*j as usize] as *const u128).read_unaligned() },
                _ => self.eval(&g.init) as u128,
            };
            self.own_globals[i] = v;
        }
        Ok(())
    }

    fn wire_vmctx(&mut self) {
        let me = self as *mut Instance;
        let v = &mut *self.vmctx;
        v.memory = self.memory.unwrap_or(std::ptr::null_mut());
        // SAFETY: the memory outlives the instance (owned or imported from a live one).
        v.memory_base = self.memory.map(|m| unsafe { (*m).base() }).unwrap_or(std::ptr::null_mut());
        v.func_refs = self.func_refs.as_ptr();
        v.type_ids = self.type_ids.as_ptr();
        v.tables = self.tables.as_ptr();
        v.globals = self.globals.as_ptr();
        v.instance = me;
    }

    /// Evaluate a constant expression to a raw slot value (a `v128.const`,
    /// which validation allows only in a v128 global's initialiser, handled
    /// by the caller there, gives its low 64 bits).
    pub fn eval(&self, e: &ConstExpr) -> u64 {
        match *e {
            ConstExpr::I32(v) => v as u32 as u64,
            ConstExpr::I64(v) => v as u64,
            ConstExpr::F32(b) => b as u64,
            ConstExpr::F64(b) => b,
            ConstExpr::RefNull(_) => 0,
            ConstExpr::RefFunc(i) => self.func_refs[i as usize] as u64,
            // SAFETY: global cells live as long as their instances.
            ConstExpr::GlobalGet(i) => unsafe { *self.globals[i as usize] },
            ConstExpr::V128(x) => x as u64,
        }
    }

    fn initialize(&mut self) -> Result<(), InstantiateError> {
        // Evaluate element segments.
        let elems: Vec<Option<Vec<u64>>> =
            self.info.elems.iter().map(|s| Some(s.items.iter().map(|e| self.eval(e)).collect())).collect();
        self.elems = elems;
        let me: *mut Instance = self;
        let mut result = Ok(());
        let mut run = || {
            // SAFETY: `me` is this boxed instance, alive for the whole call; no
            // Rust borrows of it are held across the calls into Wasm code.
            let inst = unsafe { &mut *me };
            result = inst.init_segments_and_start();
        };
        match signals::catch_traps(&mut run) {
            Ok(()) => result,
            Err(code) => Err(InstantiateError::Trap(code)),
        }
    }

    fn init_segments_and_start(&mut self) -> Result<(), InstantiateError> {
        for i in 0..self.info.elems.len() {
            match self.info.elems[i].mode.clone() {
                ElemMode::Active { table, offset } => {
                    let off = self.eval(&offset) as u32;
                    let n = self.elems[i].as_ref().map_or(0, |v| v.len()) as u32;
                    self.table_init(table, i as u32, off, 0, n);
                    self.elems[i] = None;
                }
                ElemMode::Declared => self.elems[i] = None,
                ElemMode::Passive => {}
            }
        }
        for i in 0..self.info.datas.len() {
            if let DataMode::Active { offset, .. } = self.info.datas[i].mode.clone() {
                let off = self.eval(&offset) as u32;
                let n = self.info.datas[i].bytes.len() as u32;
                self.memory_init(i as u32, off, 0, n);
                self.data_dropped[i] = true;
            }
        }
        if let Some(start) = self.info.start {
            self.call(start, &mut [])
        }
        Ok(())
    }

    /// The function reference of function `index`.
    pub fn func_ref(&self, index: u32) -> *const FuncRef {
        self.func_refs[index as usize]
    }

    /// Call function `index` with the array convention (`values` holds the
    /// arguments and receives the results). Traps propagate (see [`signals`]).
    pub fn call(&mut self, index: u32, values: &mut [u64]) {
        let fr = self.func_refs[index as usize];
        // SAFETY: `fr` is a live FuncRef; its array entry has the array
        // convention and `values` has max(params, results) slots (caller's duty).
        unsafe {
            let f: ArrayFn = std::mem::transmute((*fr).array);
            f((*fr).array_ctx, values.as_mut_ptr());
        }
    }

    /// Look up an export.
    pub fn export(&self, name: &str) -> Option<Extern> {
        let e = self.info.exports.iter().find(|e| e.name == name)?;
        Some(match e.kind {
            ExportKind::Func => Extern::Func(self.func_refs[e.index as usize]),
            ExportKind::Table => Extern::Table(self.tables[e.index as usize]),
            ExportKind::Memory => Extern::Memory(self.memory?),
            ExportKind::Global => {
                Extern::Global(self.globals[e.index as usize], self.info.global_type(e.index)?)
            }
        })
    }

    /// Index of an exported function.
    pub fn export_func(&self, name: &str) -> Option<u32> {
        self.info.exports.iter().find(|e| e.name == name && e.kind == ExportKind::Func).map(|e| e.index)
    }

    /// The instance's memory.
    pub fn memory(&mut self) -> Option<&mut Memory> {
        // SAFETY: the memory outlives the instance; access is single-threaded.
        self.memory.map(|m| unsafe { &mut *m })
    }

    /// The instance's memory, shared (a checkpoint reads it from several
    /// threads while the Wasm thread waits in the slow path).
    pub fn memory_shared(&self) -> Option<&Memory> {
        // SAFETY: the memory outlives the instance; `&self` rules out a
        // `&mut` from `memory()` at the same time.
        self.memory.map(|m| unsafe { &*m })
    }

    /// Table `index`.
    pub fn table(&mut self, index: u32) -> &mut Table {
        // SAFETY: tables outlive the instance; access is single-threaded.
        unsafe { &mut *self.tables[index as usize] }
    }

    /// The instance owning a vmctx.
    ///
    /// # Safety
    /// `vmctx` must be the context of a live instance.
    pub unsafe fn from_vmctx<'a>(vmctx: *mut c_void) -> &'a mut Instance {
        // SAFETY: guaranteed by the caller.
        unsafe { &mut *(*(vmctx as *mut VmCtx)).instance }
    }

    /// `memory.init` semantics (traps on out-of-bounds).
    pub fn memory_init(&mut self, seg: u32, dst: u32, src: u32, len: u32) {
        let dropped = self.data_dropped[seg as usize];
        let data_len = if dropped { 0 } else { self.info.datas[seg as usize].bytes.len() as u64 };
        let me = self as *mut Instance;
        let Some(mem) = self.memory() else { signals::raise(TrapCode::MemoryOutOfBounds) };
        if src as u64 + len as u64 > data_len || dst as u64 + len as u64 > mem.size_bytes {
            signals::raise(TrapCode::MemoryOutOfBounds);
        }
        if len == 0 {
            return;
        }
        // SAFETY: `me` is self; the segment bytes and memory do not overlap.
        let data = unsafe { &(&(*me).info.datas)[seg as usize].bytes };
        mem.bytes_mut()[dst as usize..dst as usize + len as usize]
            .copy_from_slice(&data[src as usize..src as usize + len as usize]);
    }

    /// `data.drop`.
    pub fn data_drop(&mut self, seg: u32) {
        self.data_dropped[seg as usize] = true;
    }

    /// `table.init` semantics (traps on out-of-bounds).
    pub fn table_init(&mut self, table: u32, seg: u32, dst: u32, src: u32, len: u32) {
        let items: &[u64] = self.elems[seg as usize].as_deref().unwrap_or(&[]);
        let items = items as *const [u64];
        let t = self.table(table);
        // SAFETY: `items` points into self.elems, which `table()` does not touch.
        let items = unsafe { &*items };
        if src as u64 + len as u64 > items.len() as u64 || dst as u64 + len as u64 > t.len() {
            signals::raise(TrapCode::TableAccessOutOfBounds);
        }
        t.elems_mut()[dst as usize..(dst + len) as usize].copy_from_slice(&items[src as usize..(src + len) as usize]);
    }

    /// `elem.drop`.
    pub fn elem_drop(&mut self, seg: u32) {
        self.elems[seg as usize] = None;
    }

    /// The descriptor the instance was created from.
    pub fn descriptor(&self) -> &'static Descriptor {
        self.desc
    }

    /// Raw slot value of a typed value (`funcref`: its FuncRef pointer).
    pub fn raw_value(&self, v: &wanco_state::Value) -> Result<u64, String> {
        use wanco_state::Value;
        Ok(match *v {
            Value::I32(x) => x as u32 as u64,
            Value::I64(x) => x as u64,
            Value::F32(b) => b as u64,
            Value::F64(b) => b,
            Value::FuncRef(None) | Value::ExternRef(None) => 0,
            Value::FuncRef(Some(i)) => match self.func_refs.get(i as usize) {
                Some(p) => *p as u64,
                None => return Err(format!("funcref to function {i}, the module has {}", self.func_refs.len())),
            },
            Value::ExternRef(Some(x)) => x,
            Value::V128(_) => return Err("a v128 value does not fit a 64-bit slot (compiled SIMD is not supported)".into()),
        })
    }

    /// Raw 128-bit entry of a typed value: a v128's bits, other values'
    /// [`Instance::raw_value`] zero-extended.
    pub fn raw_value128(&self, v: &wanco_state::Value) -> Result<u128, String> {
        match *v {
            wanco_state::Value::V128(x) => Ok(x),
            _ => self.raw_value(v).map(u128::from),
        }
    }

    /// A converter from raw slots to typed values (function references to
    /// function indices, looked up in a map built once).
    pub fn value_reader(&self) -> ValueReader {
        ValueReader { funcs: self.func_refs.iter().enumerate().map(|(i, p)| (*p as u64, i as u32)).collect() }
    }

    /// Globals, tables and drop flags as typed values (for a snapshot).
    pub fn capture_state(&self, rd: &ValueReader) -> Result<CapturedState, String> {
        let mut globals = Vec::new();
        for (i, cell) in self.globals.iter().enumerate() {
            let ty = self.info.global_type(i as u32).ok_or("global without a type")?.ty;
            if ty == wanco_state::ValType::V128 {
                // SAFETY: a v128 global's cell has 16 bytes and lives as long as its instance.
                globals.push(wanco_state::Value::V128(unsafe { (*cell as *const u128).read_unaligned() }));
                continue;
            }
            // SAFETY: global cells live as long as their instances.
            globals.push(rd.typed(ty, unsafe { **cell })?);
        }
        let mut tables = Vec::new();
        for t in &self.tables {
            // SAFETY: tables outlive the instance; access is single-threaded.
            let t = unsafe { &**t };
            let ty = match t.ty.elem {
                wanco_state::ValType::ExternRef => wanco_state::ValType::ExternRef,
                _ => wanco_state::ValType::FuncRef,
            };
            tables.push(t.elems().iter().map(|e| rd.typed(ty, *e)).collect::<Result<Vec<_>, _>>()?);
        }
        Ok(CapturedState {
            globals,
            tables,
            data_dropped: self.data_dropped.clone(),
            elem_dropped: self.elems.iter().map(|e| e.is_none()).collect(),
        })
    }

    /// Install globals, tables, memory and drop flags from a snapshot read
    /// by [`wanco_state::snapshot::decode_packed`]: the memory is `memory`,
    /// unpacked straight into linear memory (`snap.memory` is not looked at).
    pub fn install(&mut self, snap: &wanco_state::snapshot::Snapshot, memory: Option<PackedMemory>, snapshot: &str) -> Result<(), String> {
        self.install_over(snap, memory, None, snapshot).map(|_| ())
    }

    /// [`Instance::install`] of an incremental snapshot over a memory image
    /// (`image`: the file and the pages it covers, its header checked
    /// against the snapshot): the image is mapped copy-on-write
    /// ([`crate::memory::Memory::map_image`]) and the snapshot's pages,
    /// those written since the image's snapshot, are unpacked over it.
    /// Without an image, as [`Instance::install`]. Returns how the image
    /// was used.
    pub fn install_over(
        &mut self,
        snap: &wanco_state::snapshot::Snapshot,
        memory: Option<PackedMemory>,
        image: Option<(&std::fs::File, u32)>,
        snapshot: &str,
    ) -> Result<Option<crate::memory::ImageUse>, String> {
        if snap.globals.len() != self.globals.len() {
            return Err(format!("snapshot has {} globals, the module has {}", snap.globals.len(), self.globals.len()));
        }
        for (i, v) in snap.globals.iter().enumerate() {
            let ty = self.info.global_type(i as u32).ok_or("global without a type")?.ty;
            if v.ty() != ty {
                return Err(format!("global {i} is {} in the snapshot, the module declares {ty}", v.ty()));
            }
            if let wanco_state::Value::V128(x) = *v {
                // SAFETY: a v128 global's cell has 16 bytes and lives as long as its instance.
                unsafe { (self.globals[i] as *mut u128).write_unaligned(x) };
                continue;
            }
            let raw = self.raw_value(v)?;
            // SAFETY: global cells live as long as their instances.
            unsafe { *self.globals[i] = raw };
        }
        if snap.tables.len() != self.tables.len() {
            return Err(format!("snapshot has {} tables, the module has {}", snap.tables.len(), self.tables.len()));
        }
        for (i, elems) in snap.tables.iter().enumerate() {
            // Elements are stored as raw slots: an `externref` (any 64-bit
            // value) in a `funcref` table would be called through.
            let declared = (i as u32).checked_sub(self.info.num_imported_tables).and_then(|d| self.info.tables.get(d as usize));
            if let Some(ty) = declared {
                if let Some((j, v)) = elems.iter().enumerate().find(|(_, v)| v.ty() != ty.elem) {
                    return Err(format!("table {i} element {j} is {v} in the snapshot, the table holds {}", ty.elem));
                }
            }
            let raws = elems.iter().map(|v| self.raw_value(v)).collect::<Result<Vec<_>, _>>()?;
            let t = self.table(i as u32);
            let want = raws.len() as u64;
            if want < t.len() || want > t.max() {
                return Err(format!("table {i} has {want} elements in the snapshot, the module allows {} to {}", t.len(), t.max()));
            }
            if want > t.len() && t.grow(want - t.len(), 0).is_none() {
                return Err(format!("cannot grow table {i} to {want} elements"));
            }
            t.elems_mut().copy_from_slice(&raws);
        }
        self.install_segments(snap)?;
        let max = crate::cr::armed::memory_max(&self.info);
        match (memory, self.memory()) {
            (None, None) => {}
            (Some(m), Some(mem)) => {
                if m.max != max {
                    return Err(format!("snapshot memory has the maximum {:?} pages, the module declares {max:?}", m.max));
                }
                let have = mem.pages();
                let want = u64::from(m.pages);
                if want < have || want > mem.max_pages() {
                    return Err(format!("snapshot memory has {want} pages, the module allows {have} to {}", mem.max_pages()));
                }
                if want > have && mem.grow(want - have).is_none() {
                    return Err(format!("cannot grow memory to {want} pages"));
                }
                if let Some((file, pages)) = image {
                    // The image below, the pages written since on top:
                    // nothing here reads or writes the image's pages.
                    let used = mem.map_image(file, pages)?;
                    m.unpack_into(mem.bytes_mut()).map_err(|e| e.to_string())?;
                    return Ok(Some(used));
                }
                // The memory is fresh (no data segments were copied): zero
                // wherever the snapshot stores no page. Where the system
                // allows it, the pages are put in lazily, while the
                // program runs (`crate::cr::pager`). Else half the pages are
                // unpacked on the helper thread; each side backs its runs
                // of stored pages in one system call per run, then
                // decompresses into them.
                if crate::cr::postcopy::page_server() {
                    // Post-copy: the pages come from the migration's source.
                    if m.stored_count() != 0 {
                        return Err(format!("a post-copy restore's snapshot stores no memory pages, this one stores {}", m.stored_count()));
                    }
                    let lazy = crate::cr::postcopy::start(mem.bytes_mut(), snapshot)?;
                    crate::cr::timing::set_image_use(if lazy { "postcopy-lazy" } else { "postcopy-eager" });
                    return Ok(None);
                }
                let m = match crate::cr::pager::start(mem.bytes_mut(), m, snapshot) {
                    crate::cr::pager::Started::Lazy => return Ok(None),
                    crate::cr::pager::Started::Eager(m) => m,
                };
                let n = if crate::memory::share_packing(m.stored_count()) { 2 } else { 1 };
                let mut shares = m.unpack_shares(mem.bytes_mut(), n).map_err(|e| e.to_string())?;
                let populate = crate::memory::populate;
                let r = match (shares.pop(), shares.pop()) {
                    (Some(theirs), Some(mine)) => {
                        let (a, b) = crate::helper::join(|| theirs.run(&populate), || mine.run(&populate));
                        b.and(a)
                    }
                    (Some(only), None) => only.run(&populate),
                    _ => Ok(()),
                };
                r.map_err(|e| e.to_string())?;
            }
            (Some(_), None) => return Err("snapshot has a memory, the module has none".into()),
            (None, Some(_)) => return Err("the module has a memory, the snapshot has none".into()),
        }
        Ok(None)
    }

    /// The rest of [`Instance::install`]: which segments were dropped.
    fn install_segments(&mut self, snap: &wanco_state::snapshot::Snapshot) -> Result<(), String> {
        if snap.data_dropped.len() != self.data_dropped.len() || snap.elem_dropped.len() != self.elems.len() {
            return Err(format!(
                "snapshot has {} data and {} element segments, the module has {} and {}",
                snap.data_dropped.len(),
                snap.elem_dropped.len(),
                self.data_dropped.len(),
                self.elems.len()
            ));
        }
        self.data_dropped.clone_from(&snap.data_dropped);
        for (i, d) in snap.elem_dropped.iter().enumerate() {
            if *d {
                self.elems[i] = None;
            }
        }
        Ok(())
    }

    /// Names of all exports.
    pub fn exports(&self) -> HashMap<String, ExportKind> {
        self.info.exports.iter().map(|e| (e.name.clone(), e.kind)).collect()
    }
}

/// Raw slot values → typed values of one instance ([`Instance::value_reader`]).
pub struct ValueReader {
    funcs: HashMap<u64, u32>,
}

impl ValueReader {
    /// Typed value of a raw slot: a non-null `funcref` must be a function
    /// reference of the instance (it becomes its function index).
    pub fn typed(&self, ty: wanco_state::ValType, raw: u64) -> Result<wanco_state::Value, String> {
        use wanco_state::{ValType, Value};
        Ok(match ty {
            ValType::I32 => Value::I32(raw as u32 as i32),
            ValType::I64 => Value::I64(raw as i64),
            ValType::F32 => Value::F32(raw as u32),
            ValType::F64 => Value::F64(raw),
            ValType::FuncRef if raw == 0 => Value::FuncRef(None),
            ValType::FuncRef => match self.funcs.get(&raw) {
                Some(i) => Value::FuncRef(Some(*i)),
                None => return Err(format!("function reference {raw:#x} is not a function of this module")),
            },
            ValType::ExternRef => Value::ExternRef(if raw == 0 { None } else { Some(raw) }),
            ValType::V128 => return Err("a v128 value does not fit a 64-bit slot (compiled SIMD is not supported)".into()),
        })
    }
}

/// Globals, tables and segment drop flags of an instance, typed.
pub struct CapturedState {
    /// Every global (imported first).
    pub globals: Vec<wanco_state::Value>,
    /// Every table's elements.
    pub tables: Vec<Vec<wanco_state::Value>>,
    /// Per data segment: dropped.
    pub data_dropped: Vec<bool>,
    /// Per element segment: dropped.
    pub elem_dropped: Vec<bool>,
}

impl Descriptor {
    /// Native entry address of each defined function.
    pub fn natives(&self, info: &ModuleInfo) -> Vec<u64> {
        let n = info.funcs.len() - info.num_imported_funcs as usize;
        // SAFETY: the compiler emits one native entry per defined function.
        (0..n).map(|i| unsafe { *self.natives.add(i) } as u64).collect()
    }

    /// Whether the module was compiled with checkpointing (without reading
    /// the metadata).
    pub fn has_crmeta(&self) -> bool {
        !self.crmeta.is_null()
    }

    /// The checkpoint metadata blob (without its length prefix), if the
    /// module was compiled with checkpointing.
    pub fn crmeta(&self) -> Option<&'static [u8]> {
        if self.crmeta.is_null() {
            return None;
        }
        // SAFETY: the compiler emits a u64 length followed by that many bytes
        // (8-byte aligned) at `crmeta`.
        unsafe {
            let len = std::ptr::read_unaligned(self.crmeta as *const u64) as usize;
            Some(std::slice::from_raw_parts(self.crmeta.add(8), len))
        }
    }
}

/// Import subtyping of limits: `have` (actual current size and max) must
/// satisfy `want`.
fn limits_match(have_min: u64, have_max: Option<u64>, want: &Limits) -> bool {
    if have_min < want.min {
        return false;
    }
    match (want.max, have_max) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(w), Some(h)) => h <= w,
    }
}
