//! The store: every function, table, memory, global and instance, the names
//! they are linked under, and the execution state.

use crate::error::{Error, InstantiateError, Trap};
use crate::instr::NULL_REF;
use crate::module::{Module, ModuleInner};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wanco_state::abi::TrapCode;
use wanco_state::module::{
    ConstExpr, DataMode, ElemMode, ExportKind, FuncType, GlobalType, ImportKind, Limits, TableType,
};
use wanco_state::{ValType, Value};

/// Size of a Wasm page.
pub const PAGE_SIZE: u64 = 65536;
/// Largest number of pages a 32-bit memory can have.
pub const MAX_PAGES: u64 = 65536;
/// Largest number of elements this implementation lets a table have.
pub const MAX_TABLE_ELEMS: u64 = 10_000_000;
/// Largest number of Wasm frames on the call stack ("call stack exhausted"):
/// deeper than compiled code's 64 MiB stack goes (about a million small
/// frames), so that a snapshot of a deep recursion in a compiled binary
/// continues here too.
pub const MAX_FRAMES: usize = 2_000_000;
/// Largest number of 8-byte value-stack slots (locals and operands of every
/// frame): 256 MiB, allocated as the stack grows.
pub const MAX_STACK_SLOTS: usize = 32 << 20;

/// A host function: receives the linear memory of the calling instance
/// (empty if it has none or the call came from the embedder) and the
/// arguments, returns the results.
pub type HostFunc = Box<dyn FnMut(&mut [u8], &[Value]) -> Result<Vec<Value>, Trap>>;

/// Something that can be imported or exported: a handle into a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Extern {
    /// A function (store function address).
    Func(u32),
    /// A table (store table address).
    Table(u32),
    /// A memory (store memory address).
    Memory(u32),
    /// A global (store global address).
    Global(u32),
}

/// A handle to an instance in a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instance(pub(crate) u32);

#[derive(Clone, Copy, Debug)]
pub(crate) enum FuncKind {
    /// Defined function `def` (index among the defined functions) of `instance`.
    Wasm { instance: u32, def: u32 },
    /// Host function (index into `Store::hosts`).
    Host(u32),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct FuncInst {
    pub type_id: u32,
    pub kind: FuncKind,
}

#[derive(Clone, Debug)]
pub(crate) struct TableInst {
    pub elem: ValType,
    pub max: Option<u64>,
    pub data: Vec<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct MemInst {
    pub max: Option<u64>,
    pub data: Vec<u8>,
}

impl MemInst {
    pub fn pages(&self) -> u64 {
        self.data.len() as u64 / PAGE_SIZE
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct GlobalInst {
    pub ty: GlobalType,
    /// The value's slot (for `v128`: its low 64 bits).
    pub value: u64,
    /// The high 64 bits of a `v128` (0 for other types).
    pub hi: u64,
}

impl GlobalInst {
    /// The global's value as slots (one, or two for `v128`).
    pub fn slots(&self) -> [u64; 2] {
        [self.value, self.hi]
    }
}

pub(crate) struct InstanceData {
    pub module: Arc<ModuleInner>,
    /// Canonical (store-wide) type id of each type index.
    pub type_ids: Vec<u32>,
    pub funcs: Vec<u32>,
    pub tables: Vec<u32>,
    pub mems: Vec<u32>,
    pub globals: Vec<u32>,
    /// Element segments as references (emptied when dropped).
    pub elems: Vec<Vec<u64>>,
    pub elem_dropped: Vec<bool>,
    pub data_dropped: Vec<bool>,
    pub exports: HashMap<String, Extern>,
}

/// One Wasm frame of the explicit call stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    /// Store address of the function.
    pub func: u32,
    /// Index in the value stack of local 0.
    pub fp: u32,
    /// Next instruction (saved when the frame calls or pauses).
    pub pc: u32,
}

/// One call from the embedder into Wasm (nested only for start functions).
#[derive(Clone, Debug)]
pub(crate) struct Activation {
    pub base_frames: usize,
    pub base_sp: usize,
    pub results: Vec<ValType>,
}

#[derive(Default)]
pub(crate) struct Exec {
    pub stack: Vec<u64>,
    pub frames: Vec<Frame>,
    pub activations: Vec<Activation>,
    /// Migration points crossed so far.
    pub points: u64,
    /// Pause when `points` reaches this value (`u64::MAX`: never).
    pub pause_at: u64,
    /// Whether the execution is paused at a migration point.
    pub paused: bool,
    /// Pause at the next migration point once this flag is set (it is
    /// cleared when the pause happens); see [`Store::set_interrupt`].
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl Exec {
    /// Count one migration point; whether execution must pause there.
    #[inline]
    pub(crate) fn point_reached(&mut self) -> bool {
        self.points += 1;
        self.points == self.pause_at
            || self
                .interrupt
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed) && f.swap(false, Ordering::Relaxed))
    }
}

/// Result of running (or resuming) an invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The invoked function returned these results.
    Finished(Vec<Value>),
    /// Execution paused at a migration point (see [`Store::set_pause_at`]);
    /// [`Store::frames`] describes the state, [`Store::resume`] continues.
    Paused,
}

/// What [`Store::start`] did.
enum Started {
    /// A Wasm frame was pushed; run it.
    Entered,
    /// A host function ran to completion.
    Done(Outcome),
}

/// Holds everything instances are made of, and runs them.
pub struct Store {
    pub(crate) types: Vec<FuncType>,
    type_map: HashMap<FuncType, u32>,
    pub(crate) funcs: Vec<FuncInst>,
    pub(crate) tables: Vec<TableInst>,
    pub(crate) mems: Vec<MemInst>,
    pub(crate) globals: Vec<GlobalInst>,
    pub(crate) instances: Vec<InstanceData>,
    pub(crate) hosts: Vec<HostFunc>,
    registry: HashMap<String, HashMap<String, Extern>>,
    pub(crate) exec: Exec,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

fn limits_match(actual_min: u64, actual_max: Option<u64>, want: &Limits) -> bool {
    actual_min >= want.min
        && match want.max {
            None => true,
            Some(wm) => matches!(actual_max, Some(am) if am <= wm),
        }
}

/// Convert a slot to a typed value (funcrefs stay store addresses).
pub(crate) fn slot_to_value(slot: u64, ty: ValType) -> Value {
    match ty {
        ValType::I32 => Value::I32(slot as u32 as i32),
        ValType::I64 => Value::I64(slot as i64),
        ValType::F32 => Value::F32(slot as u32),
        ValType::F64 => Value::F64(slot),
        ValType::FuncRef => Value::FuncRef((slot != NULL_REF).then_some(slot as u32)),
        ValType::ExternRef => Value::ExternRef((slot != NULL_REF).then_some(slot)),
        // A v128 takes two slots: read with `slots_to_value`.
        ValType::V128 => Value::V128(slot as u128),
    }
}

/// Number of 8-byte value-stack slots a value of type `ty` takes: two for
/// `v128` (low half first, at the lower index), one for the others.
#[inline(always)]
pub(crate) fn slots_of(ty: ValType) -> usize {
    if ty == ValType::V128 {
        2
    } else {
        1
    }
}

/// Number of slots of values of types `tys`.
pub(crate) fn slot_len(tys: &[ValType]) -> usize {
    tys.iter().map(|t| slots_of(*t)).sum()
}

/// The typed value held by the first slot(s) of `s`.
pub(crate) fn slots_to_value(s: &[u64], ty: ValType) -> Value {
    if ty == ValType::V128 {
        Value::V128(s[0] as u128 | (s[1] as u128) << 64)
    } else {
        slot_to_value(s[0], ty)
    }
}

/// Values of types `tys` laid out in slots `s`.
pub(crate) fn read_values(s: &[u64], tys: &[ValType]) -> Vec<Value> {
    let mut at = 0;
    tys.iter()
        .map(|t| {
            let v = slots_to_value(&s[at..], *t);
            at += slots_of(*t);
            v
        })
        .collect()
}

/// The slots of `v` (the second is only meaningful for `v128`).
pub(crate) fn value_slots(v: Value) -> [u64; 2] {
    match v {
        Value::V128(x) => [x as u64, (x >> 64) as u64],
        v => [value_to_slot(v), 0],
    }
}

/// Append the slot(s) of `v`.
pub(crate) fn push_value(out: &mut Vec<u64>, v: Value) {
    let [lo, hi] = value_slots(v);
    out.push(lo);
    if v.ty() == ValType::V128 {
        out.push(hi);
    }
}

/// Convert a typed value to a slot (funcrefs are store addresses).
pub(crate) fn value_to_slot(v: Value) -> u64 {
    match v {
        Value::I32(x) => x as u32 as u64,
        Value::I64(x) => x as u64,
        Value::F32(b) => b as u64,
        Value::F64(b) => b,
        Value::FuncRef(r) => r.map(|a| a as u64).unwrap_or(NULL_REF),
        Value::ExternRef(r) => r.unwrap_or(NULL_REF),
        // The low half; `value_slots` gives both.
        Value::V128(x) => x as u64,
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store {
            types: Vec::new(),
            type_map: HashMap::new(),
            funcs: Vec::new(),
            tables: Vec::new(),
            mems: Vec::new(),
            globals: Vec::new(),
            instances: Vec::new(),
            hosts: Vec::new(),
            registry: HashMap::new(),
            exec: Exec {
                pause_at: u64::MAX,
                ..Exec::default()
            },
        }
    }

    pub(crate) fn intern_type(&mut self, ty: &FuncType) -> u32 {
        if let Some(id) = self.type_map.get(ty) {
            return *id;
        }
        let id = self.types.len() as u32;
        self.types.push(ty.clone());
        self.type_map.insert(ty.clone(), id);
        id
    }

    /// Make `ext` importable as `module.name`.
    pub fn define(&mut self, module: &str, name: &str, ext: Extern) {
        self.registry
            .entry(module.to_string())
            .or_default()
            .insert(name.to_string(), ext);
    }

    /// Create a host function and make it importable as `module.name`.
    pub fn define_func(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        f: impl FnMut(&mut [u8], &[Value]) -> Result<Vec<Value>, Trap> + 'static,
    ) -> Extern {
        let type_id = self.intern_type(&ty);
        let h = self.hosts.len() as u32;
        self.hosts.push(Box::new(f));
        let addr = self.funcs.len() as u32;
        self.funcs.push(FuncInst {
            type_id,
            kind: FuncKind::Host(h),
        });
        let ext = Extern::Func(addr);
        self.define(module, name, ext);
        ext
    }

    /// Create a global and make it importable as `module.name`.
    pub fn define_global(&mut self, module: &str, name: &str, ty: GlobalType, v: Value) -> Extern {
        let addr = self.globals.len() as u32;
        let [value, hi] = value_slots(v);
        self.globals.push(GlobalInst { ty, value, hi });
        let ext = Extern::Global(addr);
        self.define(module, name, ext);
        ext
    }

    /// Create a table of null references and make it importable as `module.name`.
    pub fn define_table(&mut self, module: &str, name: &str, ty: TableType) -> Extern {
        let addr = self.tables.len() as u32;
        self.tables.push(TableInst {
            elem: ty.elem,
            max: ty.limits.max,
            data: vec![NULL_REF; ty.limits.min as usize],
        });
        let ext = Extern::Table(addr);
        self.define(module, name, ext);
        ext
    }

    /// Create a zeroed memory and make it importable as `module.name`.
    pub fn define_memory(&mut self, module: &str, name: &str, limits: Limits) -> Extern {
        let addr = self.mems.len() as u32;
        self.mems.push(MemInst {
            max: limits.max,
            data: vec![0; (limits.min * PAGE_SIZE) as usize],
        });
        let ext = Extern::Memory(addr);
        self.define(module, name, ext);
        ext
    }

    /// Make every export of `instance` importable under module name `name`.
    pub fn register(&mut self, name: &str, instance: Instance) {
        let exports: Vec<(String, Extern)> = self.instances[instance.0 as usize]
            .exports
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (k, v) in exports {
            self.define(name, &k, v);
        }
    }

    /// Define the `spectest` module the official test suite imports from:
    /// `print*` functions (which do nothing), `global_i32` = 666,
    /// `global_i64` = 666, `global_f32` = 666.6, `global_f64` = 666.6,
    /// `table` (10 funcref, max 20) and `memory` (1 page, max 2).
    pub fn define_spectest(&mut self) {
        use ValType::*;
        let prints: [(&str, &[ValType]); 7] = [
            ("print", &[]),
            ("print_i32", &[I32]),
            ("print_i64", &[I64]),
            ("print_f32", &[F32]),
            ("print_f64", &[F64]),
            ("print_i32_f32", &[I32, F32]),
            ("print_f64_f64", &[F64, F64]),
        ];
        for (name, params) in prints {
            let ty = FuncType {
                params: params.to_vec(),
                results: vec![],
            };
            self.define_func("spectest", name, ty, |_, _| Ok(vec![]));
        }
        let g = |ty| GlobalType { ty, mutable: false };
        self.define_global("spectest", "global_i32", g(I32), Value::I32(666));
        self.define_global("spectest", "global_i64", g(I64), Value::I64(666));
        self.define_global(
            "spectest",
            "global_f32",
            g(F32),
            Value::F32(666.6f32.to_bits()),
        );
        self.define_global(
            "spectest",
            "global_f64",
            g(F64),
            Value::F64(666.6f64.to_bits()),
        );
        self.define_table(
            "spectest",
            "table",
            TableType {
                elem: FuncRef,
                limits: Limits {
                    min: 10,
                    max: Some(20),
                },
            },
        );
        self.define_memory(
            "spectest",
            "memory",
            Limits {
                min: 1,
                max: Some(2),
            },
        );
    }

    /// Instantiate `module`: resolve its imports against the names defined in
    /// this store, allocate, initialise tables and memories from the active
    /// segments (in order; a trap keeps earlier writes), run the start function.
    pub fn instantiate(&mut self, module: &Module) -> Result<Instance, InstantiateError> {
        self.instantiate_inner(module, true)
    }

    /// Like [`Store::instantiate`] but without running the start function:
    /// for rebuilding an instance whose state is then restored from a snapshot.
    pub fn instantiate_for_restore(
        &mut self,
        module: &Module,
    ) -> Result<Instance, InstantiateError> {
        self.instantiate_inner(module, false)
    }

    fn instantiate_inner(
        &mut self,
        module: &Module,
        run_start: bool,
    ) -> Result<Instance, InstantiateError> {
        let m = module.inner.clone();
        let info = &m.info;
        let mut funcs = Vec::new();
        let mut tables = Vec::new();
        let mut mems = Vec::new();
        let mut globals = Vec::new();

        for imp in &info.imports {
            let what = format!("{}.{}", imp.module, imp.name);
            let ext = self
                .registry
                .get(&imp.module)
                .and_then(|m| m.get(&imp.name))
                .copied()
                .ok_or_else(|| InstantiateError::Unlinkable(format!("unknown import {what}")))?;
            let incompatible = |detail: &str| {
                InstantiateError::Unlinkable(format!(
                    "incompatible import type for {what}: {detail}"
                ))
            };
            match (&imp.kind, ext) {
                (ImportKind::Func(t), Extern::Func(a)) => {
                    let have = &self.types[self.funcs[a as usize].type_id as usize];
                    if Some(have) != info.types.get(*t as usize) {
                        return Err(incompatible("function type differs"));
                    }
                    funcs.push(a);
                }
                (ImportKind::Table(tt), Extern::Table(a)) => {
                    let t = &self.tables[a as usize];
                    if t.elem != tt.elem {
                        return Err(incompatible("element type differs"));
                    }
                    if !limits_match(t.data.len() as u64, t.max, &tt.limits) {
                        return Err(incompatible("table limits do not match"));
                    }
                    tables.push(a);
                }
                (ImportKind::Memory(l), Extern::Memory(a)) => {
                    let mi = &self.mems[a as usize];
                    if !limits_match(mi.pages(), mi.max, l) {
                        return Err(incompatible("memory limits do not match"));
                    }
                    mems.push(a);
                }
                (ImportKind::Global(gt), Extern::Global(a)) => {
                    if self.globals[a as usize].ty != *gt {
                        return Err(incompatible("global type differs"));
                    }
                    globals.push(a);
                }
                _ => return Err(incompatible("kind differs")),
            }
        }

        // Allocation.
        let inst_id = self.instances.len() as u32;
        let type_ids: Vec<u32> = info.types.iter().map(|t| self.intern_type(t)).collect();
        for (def, &t) in info.funcs[info.num_imported_funcs as usize..]
            .iter()
            .enumerate()
        {
            funcs.push(self.funcs.len() as u32);
            self.funcs.push(FuncInst {
                type_id: type_ids[t as usize],
                kind: FuncKind::Wasm {
                    instance: inst_id,
                    def: def as u32,
                },
            });
        }
        for tt in &info.tables {
            if tt.limits.min > MAX_TABLE_ELEMS {
                return Err(InstantiateError::Unlinkable(format!(
                    "table of {} elements exceeds the implementation limit of {MAX_TABLE_ELEMS}",
                    tt.limits.min
                )));
            }
            tables.push(self.tables.len() as u32);
            self.tables.push(TableInst {
                elem: tt.elem,
                max: tt.limits.max,
                data: vec![NULL_REF; tt.limits.min as usize],
            });
        }
        for l in &info.memories {
            mems.push(self.mems.len() as u32);
            self.mems.push(MemInst {
                max: l.max,
                data: vec![0; (l.min * PAGE_SIZE) as usize],
            });
        }
        for g in &info.globals {
            let [value, hi] = match g.init {
                ConstExpr::V128(x) => [x as u64, (x >> 64) as u64],
                ConstExpr::GlobalGet(i) => self.globals[globals[i as usize] as usize].slots(),
                _ => [self.eval_const(&g.init, &globals, &funcs), 0],
            };
            globals.push(self.globals.len() as u32);
            self.globals.push(GlobalInst { ty: g.ty, value, hi });
        }
        let elems: Vec<Vec<u64>> = info
            .elems
            .iter()
            .map(|e| {
                e.items
                    .iter()
                    .map(|c| self.eval_const(c, &globals, &funcs))
                    .collect()
            })
            .collect();
        let mut exports = HashMap::new();
        for e in &info.exports {
            let i = e.index as usize;
            let ext = match e.kind {
                ExportKind::Func => Extern::Func(funcs[i]),
                ExportKind::Table => Extern::Table(tables[i]),
                ExportKind::Memory => Extern::Memory(mems[i]),
                ExportKind::Global => Extern::Global(globals[i]),
            };
            exports.insert(e.name.clone(), ext);
        }
        let n_elems = elems.len();
        self.instances.push(InstanceData {
            module: m.clone(),
            type_ids,
            funcs,
            tables,
            mems,
            globals,
            elems,
            elem_dropped: vec![false; n_elems],
            data_dropped: vec![false; info.datas.len()],
            exports,
        });
        let inst = Instance(inst_id);

        // Active element segments, then active data segments, in order.
        for (i, seg) in info.elems.iter().enumerate() {
            match &seg.mode {
                ElemMode::Active { table, offset } => {
                    let data = &self.instances[inst_id as usize];
                    let off = self.eval_const(offset, &data.globals, &data.funcs) as u32;
                    let n = seg.items.len() as u32;
                    self.table_init(inst_id, *table, i as u32, off, 0, n)
                        .map_err(|c| InstantiateError::Trap(c.into()))?;
                    self.drop_elem(inst_id, i as u32);
                }
                ElemMode::Declared => self.drop_elem(inst_id, i as u32),
                ElemMode::Passive => {}
            }
        }
        for (i, seg) in info.datas.iter().enumerate() {
            if let DataMode::Active { offset, .. } = &seg.mode {
                let data = &self.instances[inst_id as usize];
                let off = self.eval_const(offset, &data.globals, &data.funcs) as u32;
                let n = seg.bytes.len() as u32;
                self.memory_init(inst_id, i as u32, off, 0, n)
                    .map_err(|c| InstantiateError::Trap(c.into()))?;
                self.instances[inst_id as usize].data_dropped[i] = true;
            }
        }
        if let Some(start) = info.start.filter(|_| run_start) {
            let addr = self.instances[inst_id as usize].funcs[start as usize];
            self.call_addr(addr, &[]).map_err(InstantiateError::Trap)?;
        }
        Ok(inst)
    }

    fn eval_const(&self, c: &ConstExpr, globals: &[u32], funcs: &[u32]) -> u64 {
        match *c {
            ConstExpr::I32(v) => v as u32 as u64,
            ConstExpr::I64(v) => v as u64,
            ConstExpr::F32(b) => b as u64,
            ConstExpr::F64(b) => b,
            ConstExpr::RefNull(_) => NULL_REF,
            ConstExpr::RefFunc(i) => funcs[i as usize] as u64,
            ConstExpr::GlobalGet(i) => self.globals[globals[i as usize] as usize].value,
            // Validation allows `v128.const` only in a v128 global's
            // initialiser, which `instantiate` handles: its low 64 bits.
            ConstExpr::V128(x) => x as u64,
        }
    }

    pub(crate) fn drop_elem(&mut self, inst: u32, seg: u32) {
        let d = &mut self.instances[inst as usize];
        d.elems[seg as usize] = Vec::new();
        d.elem_dropped[seg as usize] = true;
    }

    /// `table.init`: copy `n` references from element segment `seg` (from
    /// `src`) into table `table` of `inst` (at `dst`).
    pub(crate) fn table_init(
        &mut self,
        inst: u32,
        table: u32,
        seg: u32,
        dst: u32,
        src: u32,
        n: u32,
    ) -> Result<(), TrapCode> {
        let d = &self.instances[inst as usize];
        let elems = &d.elems[seg as usize];
        let t = &mut self.tables[d.tables[table as usize] as usize];
        let (dst, src, n) = (dst as u64, src as u64, n as u64);
        if src + n > elems.len() as u64 || dst + n > t.data.len() as u64 {
            return Err(TrapCode::TableAccessOutOfBounds);
        }
        t.data[dst as usize..(dst + n) as usize]
            .copy_from_slice(&elems[src as usize..(src + n) as usize]);
        Ok(())
    }

    /// `memory.init`: copy `n` bytes of data segment `seg` (from `src`) into
    /// memory 0 of `inst` (at `dst`).
    pub(crate) fn memory_init(
        &mut self,
        inst: u32,
        seg: u32,
        dst: u32,
        src: u32,
        n: u32,
    ) -> Result<(), TrapCode> {
        let d = &self.instances[inst as usize];
        let bytes: &[u8] = if d.data_dropped[seg as usize] {
            &[]
        } else {
            &d.module.info.datas[seg as usize].bytes
        };
        let mem = &mut self.mems[d.mems[0] as usize].data;
        let (dst, src, n) = (dst as u64, src as u64, n as u64);
        if src + n > bytes.len() as u64 || dst + n > mem.len() as u64 {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        mem[dst as usize..(dst + n) as usize]
            .copy_from_slice(&bytes[src as usize..(src + n) as usize]);
        Ok(())
    }

    /// The canonical type of the function at store address `addr`.
    pub fn func_type(&self, addr: u32) -> Option<&FuncType> {
        let f = self.funcs.get(addr as usize)?;
        self.types.get(f.type_id as usize)
    }

    /// Call the function at store address `addr` to completion (pausing is
    /// ignored: a pause point reached during this call is passed over).
    /// `funcref` arguments and results are store function addresses.
    pub fn call_addr(&mut self, addr: u32, args: &[Value]) -> Result<Vec<Value>, Trap> {
        let saved = self.exec.pause_at;
        self.exec.pause_at = u64::MAX;
        let saved_interrupt = self.exec.interrupt.take();
        let r = match self.start(addr, args) {
            Ok(Started::Entered) => self.resume_inner(),
            Ok(Started::Done(o)) => Ok(o),
            Err(t) => Err(t),
        };
        self.exec.pause_at = saved;
        self.exec.interrupt = saved_interrupt;
        match r? {
            Outcome::Finished(v) => Ok(v),
            Outcome::Paused => Err(Trap::Host("unexpected pause".into())),
        }
    }

    /// Start calling the function at store address `addr`; runs until it
    /// returns or the pause point set by [`Store::set_pause_at`] is reached
    /// (which may be the entry of `addr` itself).
    pub fn invoke_addr(&mut self, addr: u32, args: &[Value]) -> Result<Outcome, Trap> {
        match self.start(addr, args)? {
            Started::Entered if self.exec.paused => Ok(Outcome::Paused),
            Started::Entered => self.resume_inner(),
            Started::Done(o) => Ok(o),
        }
    }

    /// Resume a paused execution.
    pub fn resume(&mut self) -> Result<Outcome, Trap> {
        if !self.exec.paused {
            return Err(Trap::Host("resume: the execution is not paused".into()));
        }
        self.exec.paused = false;
        self.resume_inner()
    }

    /// Whether an execution is paused at a migration point.
    pub fn is_paused(&self) -> bool {
        self.exec.paused
    }

    /// Number of migration points crossed so far (one per entry of a Wasm
    /// function whose body has a `loop` or a call, one per execution of a
    /// loop header, including every back-edge: migration-point rule 2).
    pub fn migration_points(&self) -> u64 {
        self.exec.points
    }

    /// Set the migration-point counter (when restoring a state).
    pub fn set_migration_points(&mut self, n: u64) {
        self.exec.points = n;
    }

    /// Pause execution right after the counter reaches `point` (`None`: never).
    pub fn set_pause_at(&mut self, point: Option<u64>) {
        self.exec.pause_at = point.unwrap_or(u64::MAX);
    }

    /// Pause at the next migration point after `flag` becomes `true` (for
    /// example from a signal handler); the flag is reset to `false` when the
    /// pause happens. `None`: no such flag.
    pub fn set_interrupt(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.exec.interrupt = flag;
    }

    /// Set up an activation for `addr` with `args` and enter it (`exec.paused`
    /// is set if the entry itself is the pause point).
    fn start(&mut self, addr: u32, args: &[Value]) -> Result<Started, Trap> {
        let ty = self
            .func_type(addr)
            .ok_or_else(|| Trap::Host(format!("no function at address {addr}")))?
            .clone();
        if ty.params.len() != args.len() || ty.params.iter().zip(args).any(|(t, a)| *t != a.ty()) {
            return Err(Trap::Host(format!(
                "wrong arguments: expected ({}), got ({})",
                ty.params
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                args.iter()
                    .map(|a| a.ty().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        if self.exec.paused {
            return Err(Trap::Host(
                "cannot start a call while another execution is paused".into(),
            ));
        }
        let base_sp = self.exec.stack.len();
        let base_frames = self.exec.frames.len();
        for a in args {
            push_value(&mut self.exec.stack, *a);
        }
        self.exec.activations.push(Activation {
            base_frames,
            base_sp,
            results: ty.results.clone(),
        });
        let mut stack = std::mem::take(&mut self.exec.stack);
        let entered = self.enter(&mut stack, addr, None);
        self.exec.stack = stack;
        match entered {
            Ok(true) => Ok(Started::Entered),
            Ok(false) => self.finish().map(Started::Done),
            Err(t) => {
                self.unwind();
                Err(t)
            }
        }
    }

    pub(crate) fn resume_inner(&mut self) -> Result<Outcome, Trap> {
        match self.run() {
            Ok(true) => self.finish(),
            Ok(false) => Ok(Outcome::Paused),
            Err(t) => {
                self.unwind();
                Err(t)
            }
        }
    }

    /// Pop the finished activation and collect its results.
    fn finish(&mut self) -> Result<Outcome, Trap> {
        let act = self.exec.activations.pop().expect("active");
        let vals = read_values(&self.exec.stack[act.base_sp..], &act.results);
        self.exec.stack.truncate(act.base_sp);
        Ok(Outcome::Finished(vals))
    }

    /// Drop the current activation after a trap.
    fn unwind(&mut self) {
        if let Some(act) = self.exec.activations.pop() {
            self.exec.frames.truncate(act.base_frames);
            self.exec.stack.truncate(act.base_sp);
        }
        self.exec.paused = false;
    }

    /// Enter function `addr` whose arguments are on top of the value stack.
    /// `caller_mem` is the memory a host function sees. Returns `Ok(true)`
    /// if a Wasm frame was pushed, `Ok(false)` if a host function ran.
    pub(crate) fn enter(
        &mut self,
        stack: &mut Vec<u64>,
        addr: u32,
        caller_mem: Option<u32>,
    ) -> Result<bool, Trap> {
        let f = self.funcs[addr as usize];
        match f.kind {
            FuncKind::Wasm { instance, def } => {
                let code = &self.instances[instance as usize].module.code[def as usize];
                if self.exec.frames.len() >= MAX_FRAMES {
                    return Err(TrapCode::StackExhausted.into());
                }
                let fp = stack.len() - code.param_slots as usize;
                if fp + code.local_slots as usize + code.max_stack as usize > MAX_STACK_SLOTS {
                    return Err(TrapCode::StackExhausted.into());
                }
                stack.extend_from_slice(&code.local_inits);
                let has_entry_point = code.has_entry_point;
                self.exec.frames.push(Frame {
                    func: addr,
                    fp: fp as u32,
                    pc: 0,
                });
                if has_entry_point && self.exec.point_reached() {
                    self.exec.paused = true;
                }
                Ok(true)
            }
            FuncKind::Host(h) => {
                let ty = &self.types[f.type_id as usize];
                let n = slot_len(&ty.params);
                let sp = stack.len() - n;
                let args: Vec<Value> = read_values(&stack[sp..], &ty.params);
                stack.truncate(sp);
                let mem: &mut [u8] = match caller_mem {
                    Some(m) => &mut self.mems[m as usize].data,
                    None => &mut [],
                };
                let results = (self.hosts[h as usize])(mem, &args)?;
                let ty = &self.types[f.type_id as usize];
                if results.len() != ty.results.len()
                    || results.iter().zip(&ty.results).any(|(v, t)| v.ty() != *t)
                {
                    return Err(Trap::Host(
                        "host function returned results of the wrong types".into(),
                    ));
                }
                for v in &results {
                    push_value(stack, *v);
                }
                Ok(false)
            }
        }
    }

    /// Look up an instance's export.
    pub fn export(&self, instance: Instance, name: &str) -> Option<Extern> {
        self.instances
            .get(instance.0 as usize)?
            .exports
            .get(name)
            .copied()
    }

    /// The value of a global.
    pub fn global_value(&self, ext: Extern) -> Option<Value> {
        match ext {
            Extern::Global(a) => {
                let g = self.globals.get(a as usize)?;
                Some(slots_to_value(&g.slots(), g.ty.ty))
            }
            _ => None,
        }
    }

    /// The bytes of a memory.
    pub fn memory(&self, ext: Extern) -> Option<&[u8]> {
        match ext {
            Extern::Memory(a) => Some(&self.mems.get(a as usize)?.data),
            _ => None,
        }
    }

    /// The bytes of a memory, writable.
    pub fn memory_mut(&mut self, ext: Extern) -> Option<&mut Vec<u8>> {
        match ext {
            Extern::Memory(a) => Some(&mut self.mems.get_mut(a as usize)?.data),
            _ => None,
        }
    }

    /// The module an instance was made from.
    pub fn instance_module(&self, instance: Instance) -> Option<Module> {
        self.instances.get(instance.0 as usize).map(|d| Module {
            inner: d.module.clone(),
        })
    }

    /// Check that `instance` exists.
    pub(crate) fn check_instance(&self, instance: Instance) -> Result<&InstanceData, Error> {
        self.instances
            .get(instance.0 as usize)
            .ok_or_else(|| Error::new(0, format!("no instance {}", instance.0)))
    }
}

impl Instance {
    /// Instantiate `module` in `store` (see [`Store::instantiate`]).
    pub fn instantiate(store: &mut Store, module: &Module) -> Result<Instance, InstantiateError> {
        store.instantiate(module)
    }

    /// Call the exported function `name` to completion. `funcref` arguments
    /// and results are store function addresses (see [`Store::call_addr`]).
    pub fn invoke(
        &self,
        store: &mut Store,
        name: &str,
        args: &[Value],
    ) -> Result<Vec<Value>, Trap> {
        match store.export(*self, name) {
            Some(Extern::Func(a)) => store.call_addr(a, args),
            _ => Err(Trap::Host(format!("no exported function named {name:?}"))),
        }
    }

    /// The value of the exported global `name`.
    pub fn global(&self, store: &Store, name: &str) -> Option<Value> {
        store.global_value(store.export(*self, name)?)
    }

    /// Look up an export.
    pub fn export(&self, store: &Store, name: &str) -> Option<Extern> {
        store.export(*self, name)
    }

    /// The instance's index in its store.
    pub fn index(&self) -> u32 {
        self.0
    }
}
