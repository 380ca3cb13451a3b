//! Reading this process's own machine state for a checkpoint: the registers
//! the slow-path trampoline saved, the Wasm thread's stack, the executable's
//! unwind tables (`.eh_frame_hdr` through `dl_iterate_phdr`).
//!
//! `unsafe` here: all of it reads raw memory of this process.

use std::ffi::c_void;
use wanco_translate::unwind::{Isa, Memory as StackRead, Regs};


/// Register state at the return address of the compiled frame that called
/// the trampoline.
///
/// # Safety
/// `saved` must be the register area the trampoline pushed.
pub(crate) unsafe fn caller_regs(saved: *const u64) -> Regs {
    // SAFETY: guaranteed by the caller; the layouts are the trampolines'.
    unsafe {
        if cfg!(target_arch = "aarch64") {
            let r = |i: usize| *saved.add(i);
            let mut regs = Regs::new(Isa::Aarch64, r(1));
            regs.set(29, r(0));
            regs.set(30, r(1));
            for k in 0..10 {
                regs.set(19 + k as u16, r(2 + k));
            }
            for k in 0..8 {
                regs.set(72 + k as u16, r(12 + k));
            }
            regs.set_sp(saved as u64 + 176);
            regs
        } else {
            let r = |i: usize| *saved.add(i);
            let mut regs = Regs::new(Isa::X86_64, r(6));
            regs.set(15, r(0));
            regs.set(14, r(1));
            regs.set(13, r(2));
            regs.set(12, r(3));
            regs.set(6, r(4));
            regs.set(3, r(5));
            regs.set_sp(saved as u64 + 56);
            regs
        }
    }
}

// ---------------------------------------------------------------------------
// Checkpoint.

/// Reads of the Wasm thread's own stack, bounded by its mapping.
pub(crate) struct OwnStack {
    lo: u64,
    hi: u64,
}

impl StackRead for OwnStack {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if addr < self.lo || addr.checked_add(8)? > self.hi {
            return None;
        }
        // SAFETY: [lo, hi) is this thread's mapped stack.
        Some(unsafe { std::ptr::read_unaligned(addr as *const u64) })
    }
}

pub(crate) fn own_stack() -> Result<OwnStack, String> {
    // SAFETY: pthread_getattr_np on the current thread fills `attr`, which is
    // destroyed after use.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return Err("cannot find the Wasm thread's stack".into());
        }
        let mut addr: *mut c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            return Err("cannot find the Wasm thread's stack".into());
        }
        Ok(OwnStack { lo: addr as u64, hi: addr as u64 + size as u64 })
    }
}

pub(crate) struct EhFrame {
    /// Load bias of the executable (runtime minus link-time addresses).
    pub(crate) bias: u64,
    pub(crate) hdr: &'static [u8],
    pub(crate) hdr_addr: u64,
    pub(crate) eh_frame: &'static [u8],
    pub(crate) eh_frame_addr: u64,
}

/// `.eh_frame_hdr` and `.eh_frame` of the running executable.
pub(crate) fn own_eh_frame() -> Result<EhFrame, String> {
    struct Found {
        bias: u64,
        hdr: Option<(u64, u64)>,
        segs: Vec<(u64, u64)>,
    }
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes valid program headers; `data` is our
        // `Found`. The first object is the executable.
        unsafe {
            let found = &mut *(data as *mut Found);
            let info = &*info;
            found.bias = info.dlpi_addr;
            for i in 0..info.dlpi_phnum as usize {
                let ph = &*info.dlpi_phdr.add(i);
                let start = info.dlpi_addr + ph.p_vaddr;
                if ph.p_type == libc::PT_GNU_EH_FRAME {
                    found.hdr = Some((start, ph.p_memsz));
                } else if ph.p_type == libc::PT_LOAD {
                    found.segs.push((start, start + ph.p_memsz));
                }
            }
        }
        1 // stop after the executable
    }
    let mut found = Found { bias: 0, hdr: None, segs: Vec::new() };
    // SAFETY: the callback matches dl_iterate_phdr's contract.
    unsafe { libc::dl_iterate_phdr(Some(cb), &mut found as *mut Found as *mut c_void) };
    let (hdr_addr, hdr_len) = found.hdr.ok_or("the executable has no .eh_frame_hdr (PT_GNU_EH_FRAME)")?;
    // SAFETY: the PT_GNU_EH_FRAME segment is mapped for the process's lifetime.
    let hdr = unsafe { std::slice::from_raw_parts(hdr_addr as *const u8, hdr_len as usize) };
    // The header's eh_frame pointer (version 1, pc-relative sdata4 is what
    // every linker writes).
    if hdr.len() < 8 || hdr[0] != 1 || hdr[1] != 0x1b {
        return Err(format!("unsupported .eh_frame_hdr encoding at {hdr_addr:#x}"));
    }
    let rel = i32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as i64;
    let eh_frame_addr = (hdr_addr as i64 + 4 + rel) as u64;
    let (_, seg_end) = found
        .segs
        .iter()
        .find(|(s, e)| *s <= eh_frame_addr && eh_frame_addr < *e)
        .ok_or(".eh_frame is outside every loaded segment")?;
    // SAFETY: from .eh_frame to the end of its loaded segment is mapped.
    let eh_frame = unsafe { std::slice::from_raw_parts(eh_frame_addr as *const u8, (seg_end - eh_frame_addr) as usize) };
    Ok(EhFrame { bias: found.bias, hdr, hdr_addr, eh_frame, eh_frame_addr })
}
