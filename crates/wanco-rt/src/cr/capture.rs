//! Checkpoint of compiled code: the native stack is walked from the
//! trampoline's saved registers with the module's statepoint records and the
//! executable's DWARF CFI (`wanco-translate`), giving ISA-neutral frames;
//! with the instance state, linear memory and the WASI state they make a
//! [`Snapshot`], written atomically to the checkpoint file.
//!
//! `unsafe` here: the instance pointer of the armed state (only the Wasm
//! thread, in the slow path, uses it) and `renameat2`.

use super::armed::{memory_max, State, ISA};
use super::native::{own_eh_frame, own_stack};
use super::timing::Phases;
use std::path::PathBuf;
use wanco_state::snapshot::{Frame, PagePacker, Producer, Snapshot};
use wanco_state::Value;
use wanco_translate::unwind::{Cfi, Regs};


/// Write `bytes` to `path` so that `path` never holds a partial snapshot:
/// to a temporary file, then swapped in. Returns the temporary path if it
/// now holds the snapshot `path` held before, for the caller to remove
/// (after the checkpoint is in place: on ext4, freeing its blocks costs
/// more than writing the new one, and renaming over it forces the new
/// file's data out first).
fn write_snapshot(path: &std::path::Path, bytes: &[u8]) -> Result<Option<PathBuf>, String> {
    use std::os::unix::ffi::OsStrExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let cannot = |e: std::io::Error| format!("cannot write the checkpoint to {}: {e}", path.display());
    if path.is_dir() {
        // Swapping would move the directory aside.
        return Err(format!("cannot write the checkpoint to {}: it is a directory", path.display()));
    }
    std::fs::write(&tmp, bytes).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot(e)
    })?;
    let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains a NUL byte", p.display()));
    let (from, to) = (c(&tmp)?, c(path)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let swapped = unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_EXCHANGE) } == 0;
    if swapped {
        return Ok(Some(tmp));
    }
    // No snapshot there yet, or a file system without RENAME_EXCHANGE.
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot(e)
    })?;
    Ok(None)
}


/// How a checkpoint is taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// A full snapshot; the program ends after it (nothing tracked).
    Final,
    /// A full snapshot; the program goes on, and writes to its memory are
    /// tracked from here for a later [`Kind::Incremental`] one.
    Full,
    /// Only the pages written since the last snapshot of this process, which
    /// it names as its parent; a full one where there is no parent or no
    /// tracking ([`super::dirty`]).
    Incremental,
    /// The state without any memory page (the memory's size only), for a
    /// post-copy migration: the pages are read from the stopped process.
    StateOnly,
}

/// What a checkpoint wrote.
pub(crate) struct Written {
    /// The snapshot file.
    pub path: PathBuf,
    /// Migration points crossed.
    pub points: u64,
    /// The file it replaced, to remove (see [`write_snapshot`]).
    pub replaced: Option<PathBuf>,
    /// Its id ([`wanco_state::snapshot::snapshot_id`]).
    pub id: [u8; 32],
    /// Its parent's id if it is incremental.
    pub parent: Option<[u8; 32]>,
    /// Memory pages stored.
    pub pages: usize,
    /// [`Kind::StateOnly`]: where the linear memory is (address, bytes) and
    /// which of its Wasm pages were ever touched (`None`: unknown, all).
    pub memory_at: Option<(usize, usize, Option<Vec<bool>>)>,
}

/// The last snapshot this process wrote with tracking on: its id and its
/// memory's size in pages (the parent of the next incremental one).
static LAST: std::sync::Mutex<Option<([u8; 32], u32)>> = std::sync::Mutex::new(None);

pub(crate) fn checkpoint(st: &mut State, regs: Regs, points: u64, kind: Kind) -> Result<Written, String> {
    // After a lazy restore, the memory must be whole before it is read.
    super::pager::settle();
    let mut phases = Phases::start();
    // SAFETY: the instance outlives the run; nothing else uses it while the
    // slow path runs.
    let inst = unsafe { &*st.instance };
    // Memory is packed on the helper thread from the start, while this
    // thread decodes the metadata and walks the stack; it joins in when done.
    let max = memory_max(&inst.info);
    let mem = inst.memory_shared();
    let bytes = mem.map(|m| m.bytes());
    // Pages the process never touched are zero: not even read. Whichever
    // side starts packing first reads which ones they are.
    let touched: std::sync::OnceLock<Option<Vec<bool>>> = std::sync::OnceLock::new();
    let known_zero = |p: u32| {
        let t = touched.get_or_init(|| bytes.and_then(crate::memory::touched_pages));
        t.as_ref().is_some_and(|t| !t.get(p as usize).copied().unwrap_or(true))
    };
    // An incremental snapshot: the pages written since the parent (read
    // while the program is stopped here, so none is missed) below the
    // parent's size, what is not zero above it.
    let last = *LAST.lock().unwrap_or_else(|e| e.into_inner());
    let written = match (kind, bytes, last) {
        (Kind::Incremental, Some(b), Some(_)) => super::dirty::take(b),
        _ => None,
    };
    let parent = written.as_ref().and(last);
    type Skip<'a> = Box<dyn Fn(u32) -> bool + Sync + 'a>;
    let packer = bytes.map(|b| match (&written, parent) {
        (Some(w), Some((_, parent_pages))) => {
            let skip: Skip = Box::new(move |p: u32| !w.get(p as usize).copied().unwrap_or(true));
            PagePacker::incremental(b, max, parent_pages, skip)
        }
        _ if kind == Kind::StateOnly => PagePacker::new(b, max, Box::new(|_: u32| true) as Skip),
        _ => PagePacker::new(b, max, Box::new(known_zero) as Skip),
    });
    let share = mem.is_some_and(|m| crate::memory::share_packing(m.pages() as usize));
    let helper_part = || packer.as_ref().map(|p| p.work());
    let main_part = || -> Result<_, String> {
        st.meta()?;
        let meta = st.meta.as_ref().expect("parsed");
        phases.mark("metadata");
        let eh = own_eh_frame()?;
        let cfi = Cfi::from_eh_frame_hdr(ISA, eh.hdr, eh.hdr_addr, eh.eh_frame, eh.eh_frame_addr).map_err(|e| e.to_string())?;
        phases.mark("cfi");
        let stack = own_stack()?;
        let natives = inst.descriptor().natives(&inst.info);
        let native = wanco_translate::decode::walk(meta, &natives, &cfi, regs, &stack).map_err(|e| e.to_string())?;
        let rd = inst.value_reader();
        let typed = |vals: &[wanco_translate::decode::RawValue]| -> Result<Vec<Value>, String> {
            vals.iter()
                .map(|v| if v.ty == wanco_state::ValType::V128 { Ok(Value::V128(v.bits128())) } else { rd.typed(v.ty, v.bits) })
                .collect()
        };
        let mut frames = Vec::new();
        for vf in native.iter().rev().flat_map(|nf| &nf.frames) {
            let p = meta.points.get(vf.point as usize).ok_or_else(|| format!("corrupt checkpoint metadata: no point {}", vf.point))?;
            frames.push(Frame { func: p.func, code_offset: p.code_offset, kind: p.kind, locals: typed(&vf.locals)?, stack: typed(&vf.stack)? });
        }
        match frames.first() {
            Some(f) if f.func == st.start_func => {}
            Some(f) => return Err(format!("the outermost frame is function {}, not `_start` ({})", f.func, st.start_func)),
            None => return Err("no Wasm frames on the stack".into()),
        }
        let native_view = wanco_translate::native::capture(meta, &native, eh.bias).map_err(|e| e.to_string())?;
        phases.mark("stack walk");
        let cs = inst.capture_state(&rd)?;
        phases.mark("globals+tables");
        let memory = packer.as_ref().map(|p| p.work());
        Ok((frames, native_view, cs, memory))
    };
    let (theirs, mine) = if share { crate::helper::join(helper_part, main_part) } else { (None, main_part()) };
    let (frames, native_view, cs, mine) = mine?;
    let memory = packer.zip(mine).map(|(p, part)| p.finish([part].into_iter().chain(theirs)));
    phases.mark("memory");
    let wasi = crate::wasi_host::WASI
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|w| w.unrestorable().map_or_else(|| Ok(w.state()), Err))
        .ok_or("no WASI context")??;
    let snap = Snapshot {
        producer: Producer { engine: "aot".into(), isa: Some(ISA.name().into()), version: env!("CARGO_PKG_VERSION").into() },
        module_hash: inst.info.hash,
        migration_points: points,
        points_rule: wanco_state::snapshot::POINTS_RULE,
        frames,
        globals: cs.globals,
        tables: cs.tables,
        memory: None,
        data_dropped: cs.data_dropped,
        elem_dropped: cs.elem_dropped,
        wasi,
        native: Some(native_view),
    };
    let stored = memory.as_ref().map_or(0, |m| m.stored_count());
    let size = memory.as_ref().map_or(0, |m| m.pages);
    let file_bytes = match parent {
        Some((id, _)) => wanco_state::snapshot::encode_incremental(&snap, memory.as_ref(), &id),
        None => wanco_state::snapshot::encode_packed(&snap, memory.as_ref()),
    };
    let bytes = file_bytes;
    phases.mark("encode");
    let path = st.file.clone();
    let replaced = write_snapshot(&path, &bytes)?;
    let id = wanco_state::snapshot::snapshot_id(&bytes).unwrap_or_default();
    if kind == Kind::Full || kind == Kind::Incremental {
        // Track from here: a full snapshot (re)starts tracking; after an
        // incremental one `dirty::take` has protected the pages again.
        let tracking = written.is_some() || mem.is_some_and(|m| super::dirty::start(m.bytes()).is_ok());
        *LAST.lock().unwrap_or_else(|e| e.into_inner()) = tracking.then_some((id, size));
    }
    phases.mark("write");
    phases.report();
    let memory_at = match (kind, mem.map(|m| m.bytes())) {
        (Kind::StateOnly, Some(b)) => {
            // Per Wasm page: whether any of its OS pages was touched.
            Some((b.as_ptr() as usize, b.len(), crate::memory::touched_pages(b)))
        }
        _ => None,
    };
    Ok(Written { path, points, replaced, id, parent: parent.map(|(p, _)| p), pages: stored, memory_at })
}
