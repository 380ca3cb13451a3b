//! LLVM IR generation for a whole module.
//!
//! Every defined Wasm function becomes an internal LLVM function with the
//! native convention of [`wanco_state::abi`]. Around them the module gets an
//! array trampoline per defined function, a native adapter per imported
//! function, the embedded [`ModuleInfo`](wanco_state::module::ModuleInfo) and
//! one exported module descriptor.

mod func;

use crate::error::{CompileError, Result};
use crate::frontend::Body;
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::module::{Linkage, Module};
use inkwell::types::{BasicMetadataTypeEnum, BasicType, BasicTypeEnum, FunctionType};
use inkwell::values::{BasicMetadataValueEnum, BasicValue, BasicValueEnum, FunctionValue, PointerValue};
use inkwell::AddressSpace;
use wanco_state::abi::{self, symbols};
use wanco_state::module::FuncType;
use wanco_state::ValType;

/// What code generation reads of the decoded module (the function bodies
/// are handed to each part separately).
#[derive(Clone, Copy)]
pub(crate) struct ModuleRef<'w> {
    pub info: &'w wanco_state::module::ModuleInfo,
}

/// Per-module code generation state.
/// Alias classes of the generated code's memory accesses (LLVM `!tbaa`
/// scalar types, siblings under one root, so that accesses of different
/// classes never alias). Wasm linear memory, the cells of Wasm globals and
/// the runtime's `wanco_cr_counter` are disjoint allocations, and generated
/// code reaches each only through accesses tagged with its class; without
/// the tags LLVM assumed that a store to linear memory or a global might
/// change the counter, and reloaded it from memory after such stores where
/// a poll of an inlined function had left it in a register. Untagged
/// accesses (vmctx fields, the runtime's own code through calls) still
/// alias everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tbaa {
    /// An access of Wasm linear memory (loads, stores, SIMD lanes).
    Memory,
    /// The 8-byte cell of a Wasm global (`global.get` / `global.set`).
    Global,
    /// The checkpoint/restore point counter `wanco_cr_counter`.
    Counter,
}

pub(crate) struct ModuleCodegen<'ctx, 'w> {
    pub ctx: &'ctx Context,
    pub module: Module<'ctx>,
    pub decoded: ModuleRef<'w>,
    /// Native LLVM function of each *defined* function.
    pub funcs: Vec<FunctionValue<'ctx>>,
    pub invariant_kind: u32,
    /// `!tbaa` metadata kind id (see [`Tbaa`]).
    pub tbaa_kind: u32,
    /// Checkpoint/restore points and functions (when instrumenting).
    pub cr: Option<func::ModuleCr>,
}

impl<'ctx, 'w> ModuleCodegen<'ctx, 'w> {
    pub fn ptr(&self) -> inkwell::types::PointerType<'ctx> {
        self.ctx.ptr_type(AddressSpace::default())
    }

    pub fn llvm_type(&self, t: ValType) -> BasicTypeEnum<'ctx> {
        match t {
            ValType::I32 => self.ctx.i32_type().into(),
            ValType::I64 => self.ctx.i64_type().into(),
            ValType::F32 => self.ctx.f32_type().into(),
            ValType::F64 => self.ctx.f64_type().into(),
            // As clang's `v128_t`: four i32 lanes; operations bitcast.
            ValType::V128 => self.ctx.i32_type().vec_type(4).into(),
            ValType::FuncRef | ValType::ExternRef => self.ptr().into(),
        }
    }

    /// Native function type for a Wasm function type.
    pub fn native_type(&self, ft: &FuncType) -> FunctionType<'ctx> {
        let mut params: Vec<BasicMetadataTypeEnum> = vec![self.ptr().into()];
        params.extend(ft.params.iter().map(|t| BasicMetadataTypeEnum::from(self.llvm_type(*t))));
        match ft.results.len() {
            0 => self.ctx.void_type().fn_type(&params, false),
            1 => self.llvm_type(ft.results[0]).fn_type(&params, false),
            _ => {
                params.push(self.ptr().into());
                self.ctx.void_type().fn_type(&params, false)
            }
        }
    }

    /// Declare (once) a runtime function.
    pub fn runtime_fn(&self, name: &str, ty: FunctionType<'ctx>) -> FunctionValue<'ctx> {
        if let Some(f) = self.module.get_function(name) {
            return f;
        }
        let f = self.module.add_function(name, ty, Some(Linkage::External));
        // The runtime is linked statically: call it directly, not through the PLT.
        f.as_global_value().set_visibility(inkwell::GlobalVisibility::Hidden);
        let nounwind = self.ctx.create_enum_attribute(Attribute::get_named_enum_kind_id("nounwind"), 0);
        f.add_attribute(AttributeLoc::Function, nounwind);
        // Runtime helpers never reach a migration point: no statepoint.
        f.add_attribute(AttributeLoc::Function, self.ctx.create_string_attribute("gc-leaf-function", ""));
        f
    }

    /// The trap function: `noreturn`, `cold`.
    pub fn trap_fn(&self) -> FunctionValue<'ctx> {
        if let Some(f) = self.module.get_function(symbols::TRAP) {
            return f;
        }
        let ty = self.ctx.void_type().fn_type(&[self.ptr().into(), self.ctx.i32_type().into()], false);
        let f = self.runtime_fn(symbols::TRAP, ty);
        for a in ["noreturn", "cold"] {
            let attr = self.ctx.create_enum_attribute(Attribute::get_named_enum_kind_id(a), 0);
            f.add_attribute(AttributeLoc::Function, attr);
        }
        f
    }

    /// Store `v` into the 8-byte slot `slots[i]`.
    fn store_slot(&self, b: &Builder<'ctx>, slots: PointerValue<'ctx>, i: usize, v: BasicValueEnum<'ctx>) -> Result<()> {
        let i64t = self.ctx.i64_type();
        // SAFETY (LLVM IR semantics, not Rust): the buffer has at least i+1 slots.
        let p = unsafe { b.build_in_bounds_gep(i64t, slots, &[i64t.const_int(i as u64, false)], "slot")? };
        let st = b.build_store(p, v)?;
        // A v128 slot pair is only 8-byte aligned.
        st.set_alignment(8).map_err(|e| CompileError::Llvm(e.to_string()))?;
        Ok(())
    }

    fn load_slot(&self, b: &Builder<'ctx>, slots: PointerValue<'ctx>, i: usize, t: ValType) -> Result<BasicValueEnum<'ctx>> {
        let i64t = self.ctx.i64_type();
        // SAFETY (LLVM IR semantics, not Rust): the buffer has at least i+1 slots.
        let p = unsafe { b.build_in_bounds_gep(i64t, slots, &[i64t.const_int(i as u64, false)], "slot")? };
        let v = b.build_load(self.llvm_type(t), p, "v")?;
        // A v128 slot pair is only 8-byte aligned.
        v.as_instruction_value().unwrap().set_alignment(8).map_err(|e| CompileError::Llvm(e.to_string()))?;
        Ok(v)
    }

    /// Array trampoline for defined function `f`: `fn(vmctx, values)`.
    fn array_trampoline(&self, defined: usize) -> Result<FunctionValue<'ctx>> {
        let info = &self.decoded.info;
        let index = info.num_imported_funcs + defined as u32;
        let ft = info.func_type(index).expect("validated").clone();
        let ty = self.ctx.void_type().fn_type(&[self.ptr().into(), self.ptr().into()], false);
        let f = self.module.add_function(&format!("array{index}"), ty, Some(Linkage::Internal));
        let b = self.ctx.create_builder();
        let bb = self.ctx.append_basic_block(f, "entry");
        b.position_at_end(bb);
        let vmctx = f.get_nth_param(0).unwrap().into_pointer_value();
        let vals = f.get_nth_param(1).unwrap().into_pointer_value();
        let mut args: Vec<BasicMetadataValueEnum> = vec![vmctx.into()];
        let (at, _) = abi::slot_layout(&ft.params);
        for (i, t) in ft.params.iter().enumerate() {
            args.push(self.load_slot(&b, vals, at[i], *t)?.into());
        }
        if ft.results.len() > 1 {
            args.push(vals.into());
        }
        let call = b.build_call(self.funcs[defined], &args, "r")?;
        // The Wasm function keeps its own frame (with its stackmap records):
        // the walk of a checkpoint ends at this trampoline.
        call.add_attribute(AttributeLoc::Function, self.ctx.create_enum_attribute(Attribute::get_named_enum_kind_id("noinline"), 0));
        if ft.results.len() == 1 {
            let r = call.try_as_basic_value().basic().expect("one result");
            self.store_slot(&b, vals, 0, r)?;
        }
        b.build_return(None)?;
        Ok(f)
    }

    /// Native adapter for imported function `index`: called as
    /// `fn(funcref, params..) -> results`, forwards to the funcref's array entry.
    fn import_adapter(&self, index: u32) -> Result<FunctionValue<'ctx>> {
        let ft = self.decoded.info.func_type(index).expect("validated").clone();
        let f = self.module.add_function(&format!("adapter{index}"), self.native_type(&ft), Some(Linkage::Internal));
        let b = self.ctx.create_builder();
        let bb = self.ctx.append_basic_block(f, "entry");
        b.position_at_end(bb);
        let i64t = self.ctx.i64_type();
        let (pat, pn) = abi::slot_layout(&ft.params);
        let (rat, rn) = abi::slot_layout(&ft.results);
        let n = pn.max(rn).max(1);
        let buf = b.build_array_alloca(i64t, i64t.const_int(n as u64, false), "buf")?;
        buf.as_instruction().unwrap().set_alignment(16).map_err(|e| CompileError::Llvm(e.to_string()))?;
        for i in 0..ft.params.len() {
            let v = f.get_nth_param(1 + i as u32).unwrap();
            self.store_slot(&b, buf, pat[i], v)?;
        }
        let fr = f.get_nth_param(0).unwrap().into_pointer_value();
        let array = self.load_field(&b, fr, abi::funcref::ARRAY, false)?;
        let actx = self.load_field(&b, fr, abi::funcref::ARRAY_CTX, false)?;
        let aty = self.ctx.void_type().fn_type(&[self.ptr().into(), self.ptr().into()], false);
        b.build_indirect_call(aty, array, &[actx.into(), buf.into()], "")?;
        match ft.results.len() {
            0 => {
                b.build_return(None)?;
            }
            1 => {
                let r = self.load_slot(&b, buf, 0, ft.results[0])?;
                b.build_return(Some(&r))?;
            }
            m => {
                let out = f.get_nth_param(1 + ft.params.len() as u32).unwrap().into_pointer_value();
                for i in 0..m {
                    let r = self.load_slot(&b, buf, rat[i], ft.results[i])?;
                    self.store_slot(&b, out, rat[i], r)?;
                }
                b.build_return(None)?;
            }
        }
        Ok(f)
    }

    /// Load a pointer-sized field at `offset` of `base`.
    pub fn load_field(&self, b: &Builder<'ctx>, base: PointerValue<'ctx>, offset: u32, invariant: bool) -> Result<PointerValue<'ctx>> {
        let i8t = self.ctx.i8_type();
        // SAFETY (LLVM IR semantics): offsets come from the shared ABI layout.
        let p = unsafe { b.build_in_bounds_gep(i8t, base, &[self.ctx.i64_type().const_int(offset as u64, false)], "fp")? };
        let v = b.build_load(self.ptr(), p, "f")?;
        if invariant {
            self.mark_invariant(v);
        }
        Ok(v.into_pointer_value())
    }

    pub fn mark_invariant(&self, v: BasicValueEnum<'ctx>) {
        if let Some(inst) = v.as_instruction_value() {
            let md = self.ctx.metadata_node(&[]);
            let _ = inst.set_metadata(md, self.invariant_kind);
        }
    }

    /// Tag memory access `inst` with the type-based alias class `class`
    /// (see [`Tbaa`]).
    pub fn tbaa(&self, inst: inkwell::values::InstructionValue<'ctx>, class: Tbaa) {
        let ctx = self.ctx;
        let root = ctx.metadata_node(&[ctx.metadata_string("wanco").into()]);
        let name = match class {
            Tbaa::Memory => "wasm linear memory",
            Tbaa::Global => "wasm global",
            Tbaa::Counter => "wanco_cr_counter",
        };
        let ty = ctx.metadata_node(&[ctx.metadata_string(name).into(), root.into(), ctx.i64_type().const_zero().into()]);
        let tag = ctx.metadata_node(&[ty.into(), ty.into(), ctx.i64_type().const_zero().into()]);
        // Only fails for a non-instruction value: every caller passes a load or a store.
        let _ = inst.set_metadata(tag, self.tbaa_kind);
    }

    fn const_ptr_array(&self, name: &str, fns: &[FunctionValue<'ctx>]) -> PointerValue<'ctx> {
        let ptrs: Vec<PointerValue> = fns.iter().map(|f| f.as_global_value().as_pointer_value()).collect();
        let arr = self.ptr().const_array(&ptrs);
        let g = self.module.add_global(arr.get_type(), None, name);
        g.set_initializer(&arr);
        g.set_constant(true);
        g.set_linkage(Linkage::Internal);
        g.as_pointer_value()
    }
}

/// What to put into the object besides the module.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A program: emit `main` that runs this module with WASI.
    Program,
    /// No entry: the object only exports its descriptor `symbol`.
    Library {
        /// Name of the exported descriptor symbol.
        symbol: String,
    },
}

/// An LLVM module built from a Wasm module (or from one part of it).
pub(crate) struct Built<'ctx> {
    pub module: Module<'ctx>,
    /// With checkpointing: the points and functions so far (in function
    /// order: each part continues the previous part's).
    pub cr: Option<func::ModuleCr>,
}

/// One part of a module to build into its own LLVM module.
pub(crate) struct PartSpec<'a, 'w> {
    /// The defined functions this part defines: `bodies[i]` is defined
    /// function `first + i`.
    pub first: usize,
    /// Their bodies.
    pub bodies: &'a [Body<'w>],
    /// Number of defined functions of the whole module.
    pub num_defined: usize,
    /// Whether this part holds the module-level definitions (metadata,
    /// function tables, trampolines, adapters, descriptor, `main`).
    pub shared: bool,
    /// Whether the module is split into several parts: every defined
    /// function is then a hidden global symbol (defined in one part,
    /// declared in the others); otherwise internal.
    pub split: bool,
}

/// The symbol of the module descriptor for `entry`.
pub(crate) fn descriptor_symbol(entry: &Entry) -> String {
    match entry {
        Entry::Program => "wanco_program_module".to_string(),
        Entry::Library { symbol } => symbol.clone(),
    }
}

/// The symbol of the checkpoint metadata blob for `entry`.
pub(crate) fn crmeta_symbol(entry: &Entry) -> String {
    format!("{}{}", descriptor_symbol(entry), symbols::CRMETA_SUFFIX)
}

/// Build the LLVM module of one part of a decoded Wasm module. `cr` is the
/// checkpoint state of the parts before it (`None` without C/R).
pub(crate) fn build_part<'ctx>(
    ctx: &'ctx Context,
    info: &wanco_state::module::ModuleInfo,
    part: &PartSpec<'_, '_>,
    entry: &Entry,
    opts: &func::FuncOptions,
    cr: Option<func::ModuleCr>,
    mut on_function: impl FnMut(),
) -> Result<Built<'ctx>> {
    let module = ctx.create_module("wasm");
    let mut cg = ModuleCodegen {
        ctx,
        module,
        decoded: ModuleRef { info },
        funcs: Vec::new(),
        invariant_kind: ctx.get_kind_id("invariant.load"),
        tbaa_kind: ctx.get_kind_id("tbaa"),
        cr,
    };
    // Declare all defined functions first (calls may go forward, or to
    // another part).
    for defined in 0..part.num_defined {
        let index = info.num_imported_funcs + defined as u32;
        let ft = info.func_type(index).expect("validated");
        let linkage = if part.split { Linkage::External } else { Linkage::Internal };
        let f = cg.module.add_function(&format!("f{index}"), cg.native_type(ft), Some(linkage));
        if part.split {
            // Linked statically into the same executable: direct calls, and
            // made local again once the parts are merged (`link::merge`).
            f.as_global_value().set_visibility(inkwell::GlobalVisibility::Hidden);
        }
        if opts.cr {
            // Calls become statepoints (`rewrite-statepoints-for-gc`).
            f.set_gc("statepoint-example");
            // A checkpoint unwinds these frames with their CFI, which LLVM
            // leaves out for `nounwind` functions without an unwind table.
            f.add_attribute(AttributeLoc::Function, ctx.create_enum_attribute(Attribute::get_named_enum_kind_id("uwtable"), 2));
        }
        cg.funcs.push(f);
    }
    for (i, body) in part.bodies.iter().enumerate() {
        func::compile_function(&cg, part.first + i, body, opts)?;
        on_function();
    }
    if part.shared {
        shared_definitions(&cg, entry, opts)?;
    }
    cg.module.verify().map_err(|e| CompileError::Llvm(e.to_string()))?;
    Ok(Built { module: cg.module, cr: cg.cr.take() })
}

/// The module-level definitions: trampolines, adapters, metadata, tables,
/// the descriptor and (for a program) `main`.
fn shared_definitions(cg: &ModuleCodegen<'_, '_>, entry: &Entry, opts: &func::FuncOptions) -> Result<()> {
    let ctx = cg.ctx;
    let info = cg.decoded.info;
    let arrays: Vec<_> = (0..cg.funcs.len()).map(|i| cg.array_trampoline(i)).collect::<Result<_>>()?;
    let adapters: Vec<_> = (0..info.num_imported_funcs).map(|i| cg.import_adapter(i)).collect::<Result<_>>()?;

    // Embedded metadata.
    let meta = info.to_bytes();
    let meta_const = ctx.const_string(&meta, false);
    let meta_g = cg.module.add_global(meta_const.get_type(), None, "wanco_meta");
    meta_g.set_initializer(&meta_const);
    meta_g.set_constant(true);
    meta_g.set_linkage(Linkage::Internal);

    let natives = cg.const_ptr_array("wanco_natives", &cg.funcs);
    let arrays = cg.const_ptr_array("wanco_arrays", &arrays);
    let adapters = cg.const_ptr_array("wanco_adapters", &adapters);
    let i64t = ctx.i64_type();
    let desc_name = descriptor_symbol(entry);
    let crmeta_ptr = if opts.cr {
        // Defined by the metadata object the compiler adds after code generation.
        let g = cg.module.add_global(ctx.i8_type(), None, &crmeta_symbol(entry));
        g.set_linkage(Linkage::External);
        g.set_visibility(inkwell::GlobalVisibility::Hidden);
        g.as_pointer_value()
    } else {
        cg.ptr().const_null()
    };
    let desc = ctx.const_struct(
        &[
            i64t.const_int(abi::ABI_VERSION, false).into(),
            meta_g.as_pointer_value().into(),
            i64t.const_int(meta.len() as u64, false).into(),
            natives.into(),
            arrays.into(),
            adapters.into(),
            crmeta_ptr.into(),
        ],
        false,
    );
    let desc_g = cg.module.add_global(desc.get_type(), None, &desc_name);
    desc_g.set_initializer(&desc);
    desc_g.set_constant(true);
    match entry {
        Entry::Program => {
            desc_g.set_linkage(Linkage::Internal);
            let i32t = ctx.i32_type();
            let main_ty = i32t.fn_type(&[i32t.into(), cg.ptr().into()], false);
            let main = cg.module.add_function("main", main_ty, Some(Linkage::External));
            let rt_ty = i32t.fn_type(&[i32t.into(), cg.ptr().into(), cg.ptr().into()], false);
            let rt_main = cg.runtime_fn(symbols::PROGRAM_MAIN, rt_ty);
            let b = ctx.create_builder();
            b.position_at_end(ctx.append_basic_block(main, "entry"));
            let r = b.build_call(
                rt_main,
                &[
                    main.get_nth_param(0).unwrap().into(),
                    main.get_nth_param(1).unwrap().into(),
                    desc_g.as_pointer_value().into(),
                ],
                "r",
            )?;
            b.build_return(Some(&r.try_as_basic_value().basic().expect("i32")))?;
        }
        Entry::Library { .. } => desc_g.set_linkage(Linkage::External),
    }
    Ok(())
}

pub(crate) use func::{FuncOptions, ModuleCr};
