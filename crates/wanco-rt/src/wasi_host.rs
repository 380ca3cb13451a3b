//! The bridge from compiled code to the shared WASI implementation
//! (`wanco-wasi`): one host function per WASI import, all operating on the
//! importing instance's memory and one process-wide [`WasiCtx`].

use crate::instance::{type_id, Extern, HostFunc, Instance};
use std::ffi::c_void;
use std::sync::Mutex;
use wanco_state::module::{FuncType, Import, ImportKind};
use wanco_wasi::{WasiCtx, WasiFunc, WasiTrap};

/// The process's WASI context.
pub static WASI: Mutex<Option<WasiCtx>> = Mutex::new(None);

/// The WASI module names wanco accepts.
pub fn is_wasi_module(name: &str) -> bool {
    name == "wasi_snapshot_preview1" || name == "wasi_unstable"
}

unsafe fn call_wasi(ctx: *mut c_void, inst: &mut Instance, vals: &mut [u64]) {
    // The kernel may read or write linear memory in this call: it must all
    // be in place after a lazy restore.
    crate::cr::pager::settle();
    let func = WasiFunc::ALL[ctx as usize];
    let (params, results) = func.signature();
    // An i32 occupies the low half of its slot; the high half is undefined.
    let args: Vec<u64> = vals[..params.len()]
        .iter()
        .zip(params)
        .map(|(v, t)| if *t == wanco_state::ValType::I32 { *v & 0xffff_ffff } else { *v })
        .collect();
    let outcome = {
        let mut guard = WASI.lock().unwrap_or_else(|e| e.into_inner());
        let wasi = guard.as_mut().expect("WASI context initialised before running Wasm");
        let mem: &mut [u8] = match inst.memory() {
            Some(m) => m.bytes_mut(),
            None => &mut [],
        };
        wasi.call(func, mem, &args)
    };
    match outcome {
        Ok(errno) => {
            if !results.is_empty() {
                vals[0] = errno as u64;
            }
        }
        Err(WasiTrap::Exit(code)) => {
            crate::cr::points::at_exit();
            program_exited();
            std::process::exit(code as i32)
        }
    }
}

/// Resolve a WASI import, checking its type.
pub fn resolve(imp: &Import) -> Option<Extern> {
    if !is_wasi_module(&imp.module) {
        return None;
    }
    let ImportKind::Func(_) = imp.kind else { return None };
    let func = WasiFunc::from_name(&imp.name)?;
    let idx = WasiFunc::ALL.iter().position(|f| *f == func)?;
    let (params, results) = func.signature();
    let ft = FuncType { params: params.to_vec(), results: results.to_vec() };
    Some(Extern::Host(HostFunc {
        type_id: type_id(&ft),
        slots: params.len().max(results.len()),
        func: call_wasi,
        ctx: idx as *mut c_void,
    }))
}

/// The program ends (`proc_exit` or `_start` returned): its gateway
/// connections, if any, end now rather than after the gateway's timeout.
pub fn program_exited() {
    if let Some(w) = WASI.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        if let Some(why) = w.program_exited() {
            eprintln!("note: {why}");
        }
    }
}
