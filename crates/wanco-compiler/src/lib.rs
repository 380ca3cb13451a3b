//! `wanco-compiler`: WebAssembly -> LLVM IR -> native object, and linking
//! with the runtime into a standalone executable.
//!
//! ```text
//! wasm bytes --frontend (wasmparser: decode + validate)--> ModuleInfo + bodies
//!            --codegen (inkwell)--> LLVM module --opt--> object (x86_64 | aarch64)
//!            --link (cc + libwanco_rt.a)--> ELF executable
//! ```
#![deny(missing_docs)]

mod codegen;
mod crmeta;
mod error;
mod frontend;
mod link;
mod parts;
mod target;

pub use codegen::Entry;
pub use error::{CompileError, Result};
pub use frontend::{features, validate};
pub use link::{link_executable, lld_installed, runtime_library, LinkInputs};
pub use target::Target;

use inkwell::context::Context;

/// Options for [`compile_object`].
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Target ISA.
    pub target: Target,
    /// LLVM optimisation level 0–3.
    pub opt_level: u8,
    /// What entry point to emit.
    pub entry: Entry,
    /// Check every memory access against the memory size (exact trap order
    /// for out-of-bounds accesses; guard pages alone are the default).
    pub explicit_bounds_checks: bool,
    /// Checkpoint/restore instrumentation (migration points, stackmaps,
    /// restore routes). Off gives the `--no-cr` baseline.
    pub cr: bool,
    /// **Testing aid for `wanco-snap diff --against-interp`; never use
    /// otherwise.** Deliberately miscompile the instruction at this byte
    /// offset of the module file, which must be an `i32`/`i64` `add`, `sub`
    /// or `mul` ([`is_fault_site`]): its result gets + 1. This gives a really
    /// miscompiled binary whose divergence from the interpreter the
    /// bisection of `wanco-snap diff --against-interp --binary` must find.
    pub inject_fault: Option<u64>,
    /// Make every NaN an operation produces the positive canonical NaN, so
    /// that NaN bits (and a program's path if it looks at them) are the same
    /// on every ISA. Off by default: it costs a compare and a select after
    /// each float operation, up to 2.3x on float-heavy loops.
    pub canonicalize_nans: bool,
    /// Number of threads compiling the module's functions side by side,
    /// split into as many parts, or a multiple of that where parts of at
    /// most 1 MiB of code need more (clamped to the number of defined
    /// functions; each part is compiled into its own object). `None`: one
    /// per core, or one for a module of less than 32 KiB of code. The
    /// output is the same for the same number (and behaves the same for
    /// every number).
    pub jobs: Option<usize>,
    /// Called with (functions compiled, defined functions) at the start
    /// and as parts finish.
    pub progress: Option<Progress>,
    /// **Testing aid; never set otherwise.** Leave the parameters that
    /// arrive on the stack as they come (not kept in memory nor copied:
    /// see `codegen::func::cr::stack_params`), so that a function of many
    /// of them still runs out of registers with deopt values in registers,
    /// which the test of the retry in stack slots needs.
    pub raw_stack_params: bool,
}

/// A progress callback: `(functions compiled, defined functions)`.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            target: Target::host(),
            opt_level: 2,
            entry: Entry::Program,
            explicit_bounds_checks: false,
            cr: true,
            inject_fault: None,
            canonicalize_nans: false,
            jobs: None,
            progress: None,
            raw_stack_params: false,
        }
    }
}

impl CompileOptions {
    fn func_options(&self) -> codegen::FuncOptions {
        codegen::FuncOptions {
            explicit_bounds_checks: self.explicit_bounds_checks,
            cr: self.cr,
            inject_fault: self.inject_fault,
            canonicalize_nans: self.canonicalize_nans,
            sp_register: match self.target {
                Target::X86_64 => Some("rsp"),
                Target::Aarch64 => None,
            },
            x86: self.target == Target::X86_64,
            raw_stack_params: self.raw_stack_params,
        }
    }

    /// Decode `wasm`, refusing an [`CompileOptions::inject_fault`] offset
    /// that is not a fault site.
    fn decode<'w>(&self, wasm: &'w [u8]) -> Result<frontend::Decoded<'w>> {
        let decoded = frontend::decode(wasm)?;
        if let Some(offset) = self.inject_fault {
            if !fault_site(&decoded, offset)? {
                return Err(CompileError::Unsupported { what: "--inject-fault needs an i32/i64 add/sub/mul here".into(), offset });
            }
        }
        Ok(decoded)
    }
}

/// Accept the text format too: `.wat` source is converted to binary.
pub fn wasm_bytes(input: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    if input.starts_with(b"\0asm") {
        return Ok(std::borrow::Cow::Borrowed(input));
    }
    let text = std::str::from_utf8(input).ok();
    let looks_like_text = text.is_some_and(|t| {
        let t = t.trim_start();
        t.is_empty() || t.starts_with('(') || t.starts_with(';')
    });
    if !looks_like_text {
        let got: Vec<String> = input.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(CompileError::Invalid {
            message: format!(
                "not a WebAssembly module: expected the binary magic 00 61 73 6d (\\0asm) or the text format, found {}",
                got.join(" ")
            ),
            offset: 0,
        });
    }
    wat::parse_bytes(input).map_err(|e| CompileError::Text(e.to_string()))
}

/// Compile a binary module to a relocatable object file for `opts.target`.
///
/// The module is compiled in [`CompileOptions::jobs`] parts side by side;
/// their objects (and the checkpoint metadata) are merged into one.
pub fn compile_object(wasm: &[u8], opts: &CompileOptions) -> Result<Vec<u8>> {
    compile_object_with(wasm, opts, true)
}

/// [`compile_object`]; `retry`: see [`parts::compile`].
fn compile_object_with(wasm: &[u8], opts: &CompileOptions, retry: bool) -> Result<Vec<u8>> {
    compile_object_planned(wasm, opts, retry, None)
}

/// [`compile_object_with`] in the parts `plan` says (tests), or as
/// [`parts::plan`] decides.
fn compile_object_planned(wasm: &[u8], opts: &CompileOptions, retry: bool, plan: Option<parts::Plan>) -> Result<Vec<u8>> {
    let decoded = opts.decode(wasm)?;
    let plan = plan.unwrap_or_else(|| parts::plan(&decoded, opts));
    let compiled = parts::compile(decoded, plan, opts, retry)?;
    let info = compiled.info;
    let split = compiled.objects.len() > 1;
    let mut objects = compiled.objects;
    if let Some(cr) = compiled.cr {
        let symbol = codegen::crmeta_symbol(&opts.entry);
        let meta = crmeta::metadata_object(&objects, opts.target, &symbol, &info, cr.funcs.into_inner(), cr.points.into_inner())?;
        objects.push(meta);
    }
    if objects.len() == 1 {
        return Ok(objects.pop().expect("one object"));
    }
    let refs: Vec<&[u8]> = objects.iter().map(Vec::as_slice).collect();
    link::merge(opts.target, &refs, split)
}

/// Whether byte offset `offset` of `wasm` is an `i32`/`i64` `add`, `sub` or
/// `mul` in a function body: a site [`CompileOptions::inject_fault`] accepts.
pub fn is_fault_site(wasm: &[u8], offset: u64) -> Result<bool> {
    fault_site(&frontend::decode(wasm)?, offset)
}

fn fault_site(decoded: &frontend::Decoded<'_>, offset: u64) -> Result<bool> {
    use wasmparser::Operator as O;
    for body in &decoded.bodies {
        let range = body.body.range();
        if !range.contains(&offset) {
            continue;
        }
        let mut ops = body.body.get_operators_reader()?;
        while !ops.eof() {
            let (op, at) = ops.read_with_offset()?;
            if at == offset {
                return Ok(matches!(op, O::I32Add | O::I64Add | O::I32Sub | O::I64Sub | O::I32Mul | O::I64Mul));
            }
        }
    }
    Ok(false)
}

/// Compile to textual LLVM IR (after optimisation), for debugging: the
/// whole module in one LLVM module, whatever [`CompileOptions::jobs`] says.
pub fn compile_ir(wasm: &[u8], opts: &CompileOptions) -> Result<String> {
    let decoded = opts.decode(wasm)?;
    let ctx = Context::create();
    let part = codegen::PartSpec { first: 0, bodies: &decoded.bodies, num_defined: decoded.bodies.len(), shared: true, split: false };
    let cr = if opts.cr { Some(codegen::ModuleCr::new(&decoded.bodies)?) } else { None };
    let built = codegen::build_part(&ctx, &decoded.info, &part, &opts.entry, &opts.func_options(), cr, || {})?;
    target::optimize(&built.module, opts.target, opts.opt_level, opts.cr)?;
    Ok(built.module.print_to_string().to_string())
}

/// Decode and validate a module, returning the metadata the runtime will see.
pub fn module_info(wasm: &[u8]) -> Result<wanco_state::module::ModuleInfo> {
    Ok(frontend::decode(wasm)?.info)
}

/// An object defining `main` for a bundle of library-compiled modules: it
/// passes their descriptors (by symbol, in order) to the runtime entry
/// `entry` (e.g. [`wanco_state::abi::symbols::SPEC_MAIN`]).
pub fn bundle_main_object(target: Target, entry: &str, descriptor_symbols: &[String]) -> Result<Vec<u8>> {
    use inkwell::module::Linkage;
    let ctx = Context::create();
    let module = ctx.create_module("bundle");
    let ptr = ctx.ptr_type(inkwell::AddressSpace::default());
    let i32t = ctx.i32_type();
    let i64t = ctx.i64_type();
    let ptrs: Vec<_> = descriptor_symbols
        .iter()
        .map(|s| {
            let g = module.add_global(ctx.i8_type(), None, s);
            g.set_linkage(Linkage::External);
            g.as_pointer_value()
        })
        .collect();
    let arr = ptr.const_array(&ptrs);
    let g = module.add_global(arr.get_type(), None, "wanco_bundle_modules");
    g.set_initializer(&arr);
    g.set_constant(true);
    g.set_linkage(Linkage::Internal);
    let main = module.add_function("main", i32t.fn_type(&[i32t.into(), ptr.into()], false), None);
    let rt = module.add_function(entry, i32t.fn_type(&[i32t.into(), ptr.into(), ptr.into(), i64t.into()], false), None);
    let b = ctx.create_builder();
    b.position_at_end(ctx.append_basic_block(main, "entry"));
    let r = b.build_call(
        rt,
        &[
            main.get_nth_param(0).unwrap().into(),
            main.get_nth_param(1).unwrap().into(),
            g.as_pointer_value().into(),
            i64t.const_int(ptrs.len() as u64, false).into(),
        ],
        "r",
    )?;
    b.build_return(Some(&r.try_as_basic_value().basic().expect("i32")))?;
    target::emit_object(&module, target, 0)
}
