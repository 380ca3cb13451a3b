//! Helpers called by compiled code (names from [`wanco_state::abi::symbols`]).
//!
//! Every helper receives the caller's vmctx. Bounds are checked up front, as
//! the bulk-memory semantics require: nothing is written when a trap occurs.

use crate::instance::Instance;
use crate::signals::raise;
use std::ffi::c_void;
use wanco_state::abi::TrapCode;

fn inst<'a>(vmctx: *mut c_void) -> &'a mut Instance {
    // SAFETY: compiled code passes its own vmctx, which belongs to a live instance.
    unsafe { Instance::from_vmctx(vmctx) }
}

/// `memory.grow`.
#[no_mangle]
pub extern "C" fn wanco_memory_grow(vmctx: *mut c_void, delta: u32) -> i32 {
    match inst(vmctx).memory().and_then(|m| m.grow(delta as u64)) {
        Some(old) => old as i32,
        None => -1,
    }
}

/// `memory.fill`.
#[no_mangle]
pub extern "C" fn wanco_memory_fill(vmctx: *mut c_void, dst: u32, val: u32, len: u32) {
    let Some(m) = inst(vmctx).memory() else { raise(TrapCode::MemoryOutOfBounds) };
    if dst as u64 + len as u64 > m.size_bytes {
        raise(TrapCode::MemoryOutOfBounds);
    }
    m.bytes_mut()[dst as usize..dst as usize + len as usize].fill(val as u8);
}

/// `memory.copy` (overlapping ranges allowed).
#[no_mangle]
pub extern "C" fn wanco_memory_copy(vmctx: *mut c_void, dst: u32, src: u32, len: u32) {
    let Some(m) = inst(vmctx).memory() else { raise(TrapCode::MemoryOutOfBounds) };
    let size = m.size_bytes;
    if dst as u64 + len as u64 > size || src as u64 + len as u64 > size {
        raise(TrapCode::MemoryOutOfBounds);
    }
    m.bytes_mut().copy_within(src as usize..src as usize + len as usize, dst as usize);
}

/// `memory.init`.
#[no_mangle]
pub extern "C" fn wanco_memory_init(vmctx: *mut c_void, seg: u32, dst: u32, src: u32, len: u32) {
    inst(vmctx).memory_init(seg, dst, src, len)
}

/// `data.drop`.
#[no_mangle]
pub extern "C" fn wanco_data_drop(vmctx: *mut c_void, seg: u32) {
    inst(vmctx).data_drop(seg)
}

/// `table.get`.
#[no_mangle]
pub extern "C" fn wanco_table_get(vmctx: *mut c_void, table: u32, idx: u32) -> u64 {
    let t = inst(vmctx).table(table);
    match t.elems().get(idx as usize) {
        Some(v) => *v,
        None => raise(TrapCode::TableAccessOutOfBounds),
    }
}

/// `table.set`.
#[no_mangle]
pub extern "C" fn wanco_table_set(vmctx: *mut c_void, table: u32, idx: u32, val: u64) {
    let t = inst(vmctx).table(table);
    match t.elems_mut().get_mut(idx as usize) {
        Some(slot) => *slot = val,
        None => raise(TrapCode::TableAccessOutOfBounds),
    }
}

/// `table.grow`.
#[no_mangle]
pub extern "C" fn wanco_table_grow(vmctx: *mut c_void, table: u32, init: u64, delta: u32) -> i32 {
    match inst(vmctx).table(table).grow(delta as u64, init) {
        Some(old) => old as i32,
        None => -1,
    }
}

/// `table.fill`.
#[no_mangle]
pub extern "C" fn wanco_table_fill(vmctx: *mut c_void, table: u32, dst: u32, val: u64, len: u32) {
    let t = inst(vmctx).table(table);
    if dst as u64 + len as u64 > t.len() {
        raise(TrapCode::TableAccessOutOfBounds);
    }
    t.elems_mut()[dst as usize..dst as usize + len as usize].fill(val);
}

/// `table.copy`.
#[no_mangle]
pub extern "C" fn wanco_table_copy(vmctx: *mut c_void, dst_t: u32, src_t: u32, dst: u32, src: u32, len: u32) {
    let i = inst(vmctx);
    let src_len = i.table(src_t).len();
    let dst_len = i.table(dst_t).len();
    if src as u64 + len as u64 > src_len || dst as u64 + len as u64 > dst_len {
        raise(TrapCode::TableAccessOutOfBounds);
    }
    if len == 0 {
        return;
    }
    let items: Vec<u64> = i.table(src_t).elems()[src as usize..(src + len) as usize].to_vec();
    i.table(dst_t).elems_mut()[dst as usize..(dst + len) as usize].copy_from_slice(&items);
}

/// `table.init`.
#[no_mangle]
pub extern "C" fn wanco_table_init(vmctx: *mut c_void, table: u32, seg: u32, dst: u32, src: u32, len: u32) {
    inst(vmctx).table_init(table, seg, dst, src, len)
}

/// `elem.drop`.
#[no_mangle]
pub extern "C" fn wanco_elem_drop(vmctx: *mut c_void, seg: u32) {
    inst(vmctx).elem_drop(seg)
}
