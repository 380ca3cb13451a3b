//! The checkpoint metadata of a compiled module: points and functions from
//! code generation, statepoint records from the object's `.llvm_stackmaps`
//! (decoded by `wanco-translate`, one table per part's object), emitted as a
//! data object and merged with the module's objects (`link::merge`).

use crate::error::{CompileError, Result};
use crate::target::Target;
use inkwell::context::Context;
use inkwell::module::Linkage;
use wanco_state::crmeta::{CrFunc, CrMeta, CrPoint, CRMETA_VERSION};
use wanco_state::module::ModuleInfo;

/// The object of the metadata blob (symbol `symbol`) of a module compiled
/// into the objects `objs` (one per part, each with its own
/// `.llvm_stackmaps` table).
pub(crate) fn metadata_object(objs: &[Vec<u8>], target: Target, symbol: &str, info: &ModuleInfo, funcs: Vec<CrFunc>, points: Vec<CrPoint>) -> Result<Vec<u8>> {
    let first = info.num_imported_funcs;
    let defined = |name: &str| -> Option<u32> {
        let idx: u32 = name.strip_prefix('f')?.parse().ok()?;
        idx.checked_sub(first)
    };
    let mut records = Vec::new();
    for (part, obj) in objs.iter().enumerate() {
        let part_records = wanco_translate::elf::records_from_object(obj, defined).map_err(|e| {
            let which = if objs.len() > 1 { format!(" (object of part {part} of {})", objs.len()) } else { String::new() };
            CompileError::Llvm(format!("reading the stackmaps LLVM emitted{which}: {e}"))
        })?;
        records.extend(part_records);
    }
    // Each part's records are sorted; the parts hold disjoint functions.
    records.sort_by_key(|r| (r.func, r.offset));
    if let Some(w) = records.windows(2).find(|w| (w[0].func, w[0].offset) == (w[1].func, w[1].offset)) {
        return Err(CompileError::Llvm(format!("two stackmap records for defined function {} at offset {:#x} (in two parts)", w[0].func, w[0].offset)));
    }
    let module: String = info.hash.iter().map(|b| format!("{b:02x}")).collect();
    let meta = CrMeta { version: CRMETA_VERSION, isa: target.name().to_string(), module, build: String::new(), funcs: funcs.into(), points: points.into(), records: records.into() }.seal();
    // Every record must describe whole virtual frames of known points.
    for r in &meta.records {
        if r.locations.is_empty() {
            return Err(CompileError::Llvm(format!("stackmap record at f+{:#x} of defined function {}: no deopt state", r.offset, r.func)));
        }
        wanco_translate::decode::record_frames(&meta, r).map_err(|e| CompileError::Llvm(format!("stackmap record LLVM emitted: {e}")))?;
    }
    let body = meta.to_bytes();
    let mut blob = (body.len() as u64).to_le_bytes().to_vec();
    blob.extend_from_slice(&body);
    data_object(target, symbol, &blob)
}

/// An object defining `symbol` as read-only bytes.
fn data_object(target: Target, symbol: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let ctx = Context::create();
    let module = ctx.create_module("crmeta");
    let c = ctx.const_string(bytes, false);
    let g = module.add_global(c.get_type(), None, symbol);
    g.set_initializer(&c);
    g.set_constant(true);
    g.set_linkage(Linkage::External);
    g.set_visibility(inkwell::GlobalVisibility::Hidden);
    g.set_alignment(8);
    crate::target::emit_object(&module, target, 0)
}

