//! The armed checkpointing state of a compiled program: its instance, its
//! checkpoint metadata (parsed on first use), a restore under way.
//!
//! `unsafe` here: `State` holds the instance as a raw pointer (it is only
//! used on the Wasm thread).

use super::points::CrOptions;
use crate::instance::{Descriptor, Instance};
use std::path::PathBuf;
use std::sync::Mutex;
use wanco_state::crmeta::CrMeta;
use wanco_state::module::ModuleInfo;
use wanco_state::snapshot::FrameKind;


pub use super::points::ISA;

/// One frame to rebuild, checked and converted when the restore is prepared.
pub(crate) struct RestoreFrame {
    pub(crate) kind: FrameKind,
    /// The points from the function entry to the frame's point, each with
    /// its route (what its parent's slow path returns to jump to it).
    pub(crate) chain: Vec<(u32, u32)>,
    /// The value buffer of the frame: fixed slots (the callee of an
    /// indirect call), locals, operand stack, zero padding; 16-byte
    /// entries (a v128 fills one, other values sit in the low bits).
    pub(crate) values: Vec<u128>,
}

pub(crate) struct Restore {
    pub(crate) frames: Vec<RestoreFrame>,
    pub(crate) cur: usize,
    pub(crate) hop: usize,
    pub(crate) points: u64,
}

pub(crate) struct State {
    pub(crate) file: PathBuf,
    pub(crate) instance: *mut Instance,
    pub(crate) start_func: u32,
    /// Parsed on first use (a checkpoint or a restore): a program that is
    /// never checkpointed does not pay for it at startup.
    pub(crate) meta: Option<CrMeta>,
    pub(crate) restore: Option<Restore>,
    /// The buffer compiled code loads restored values from (kept alive
    /// until the next frame replaces it).
    pub(crate) values: Vec<u128>,
}

// SAFETY: the state is only used on the Wasm thread; the Mutex only guards
// against re-entrancy mistakes.
unsafe impl Send for State {}

pub(crate) static STATE: Mutex<Option<State>> = Mutex::new(None);


/// Why a binary without checkpoint metadata refuses to checkpoint or restore.
const NO_CR: &str = "this binary was compiled with --no-cr: it cannot checkpoint or restore";

/// The module's checkpoint metadata, or why there is none.
pub fn module_meta(desc: &Descriptor) -> Result<CrMeta, String> {
    let blob = desc.crmeta().ok_or(NO_CR)?;
    let meta = CrMeta::from_static(blob).map_err(|e| e.to_string())?;
    if meta.isa != ISA.name() {
        return Err(format!("checkpoint metadata is for {}, this runtime is {}", meta.isa, ISA.name()));
    }
    Ok(meta)
}


/// Arm checkpointing for `inst` (before `_start` runs). `restored_points`:
/// the count a restored snapshot continues from.
pub fn arm(inst: &mut Instance, opts: &CrOptions, start_func: u32) -> Result<(), String> {
    if !inst.descriptor().has_crmeta() {
        return Err(NO_CR.into());
    }
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
        file: opts.file.clone().unwrap_or_else(|| PathBuf::from("checkpoint.wsnap")),
        instance: inst as *mut Instance,
        start_func,
        meta: None,
        restore: None,
        values: Vec::new(),
    });
    let hash: String = inst.info.hash.iter().map(|b| format!("{b:02x}")).collect();
    super::points::set_armed(hash, opts.count_points);
    super::points::install_signal_handler();
    Ok(())
}


/// The declared maximum of memory 0 in pages, as snapshots record it.
pub(crate) fn memory_max(info: &ModuleInfo) -> Option<u32> {
    info.memory0().and_then(|l| l.max).map(|m| m.min(u64::from(u32::MAX)) as u32)
}

/// Capture the program at the current migration point.
impl State {
    pub(crate) fn meta(&mut self) -> Result<&CrMeta, String> {
        if self.meta.is_none() {
            // SAFETY: the instance outlives the run.
            let inst = unsafe { &*self.instance };
            self.meta = Some(module_meta(inst.descriptor())?);
        }
        Ok(self.meta.as_ref().expect("just parsed"))
    }
}
