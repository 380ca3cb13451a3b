//! The checkpoint metadata of a compiled module: points and functions from
//! code generation, statepoint records from the object's `.llvm_stackmaps`
//! (decoded by `wanco-translate`), emitted as a data object and merged into
//! the module's object with `ld -r`.

use crate::error::{CompileError, Result};
use crate::target::Target;
use inkwell::context::Context;
use inkwell::module::Linkage;
use std::process::Command;
use wanco_state::crmeta::{CrFunc, CrMeta, CrPoint, CRMETA_VERSION};
use wanco_state::module::ModuleInfo;

/// Add the metadata blob (symbol `symbol`) to object `obj`.
pub(crate) fn attach(obj: &[u8], target: Target, symbol: &str, info: &ModuleInfo, funcs: Vec<CrFunc>, points: Vec<CrPoint>) -> Result<Vec<u8>> {
    let first = info.num_imported_funcs;
    let defined = |name: &str| -> Option<u32> {
        let idx: u32 = name.strip_prefix('f')?.parse().ok()?;
        idx.checked_sub(first)
    };
    let records = wanco_translate::elf::records_from_object(obj, defined)
        .map_err(|e| CompileError::Llvm(format!("reading the stackmaps LLVM emitted: {e}")))?;
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
    let meta_obj = data_object(target, symbol, &blob)?;
    merge(target, obj, &meta_obj)
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
    crate::target::emit_object(&module, target, 0, false, true)
}

/// `ld -r a b`: one relocatable object.
fn merge(target: Target, a: &[u8], b: &[u8]) -> Result<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("wanco-ld-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).map_err(|e| CompileError::Link(format!("cannot create {}: {e}", dir.display())))?;
    let result = (|| {
        let pa = dir.join("code.o");
        let pb = dir.join("crmeta.o");
        let out = dir.join("merged.o");
        std::fs::write(&pa, a).map_err(|e| CompileError::Link(format!("cannot write {}: {e}", pa.display())))?;
        std::fs::write(&pb, b).map_err(|e| CompileError::Link(format!("cannot write {}: {e}", pb.display())))?;
        let ld = target.ld();
        let o = Command::new(ld)
            .arg("-r")
            .arg("-o")
            .arg(&out)
            .arg(&pa)
            .arg(&pb)
            .output()
            .map_err(|e| CompileError::Link(format!("cannot run `{ld}`: {e} (is binutils for {target} installed?)")))?;
        if !o.status.success() {
            return Err(CompileError::Link(format!("`{ld} -r` failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr))));
        }
        std::fs::read(&out).map_err(|e| CompileError::Link(format!("cannot read {}: {e}", out.display())))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
