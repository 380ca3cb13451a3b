//! Rendering a snapshot's native view (`dump`): machine frames with their
//! pc, symbol, frame size and where each Wasm value lives; with a binary,
//! the instructions around each pc (capstone).

use super::common::{func_label, short, Module};
use anyhow::{bail, Result};
use capstone::prelude::*;
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use std::fmt::Write as _;
use wanco_state::snapshot::{Frame, NativeStack};
use wanco_translate::binary::Binary;
use wanco_translate::native::describe;
use wanco_translate::unwind::Isa;

/// Check that `bin` is the binary the view was captured from / laid out
/// for.
pub fn check_binary(n: &NativeStack, bin: &Binary) -> Result<()> {
    if bin.isa.name() != n.isa {
        bail!("the binary is {}, the snapshot's native frames are {}", bin.isa.name(), n.isa);
    }
    if bin.meta.build != n.build {
        bail!(
            "the binary is build {}…, the snapshot's native frames belong to build {}…",
            short(&bin.meta.build),
            short(&n.build)
        );
    }
    Ok(())
}

/// The native-frames section of `dump`.
pub fn render(n: &NativeStack, frames: &[Frame], module: Option<&Module>, bin: Option<&Binary>, disasm: bool) -> Result<String> {
    let isa = Isa::from_name(&n.isa);
    let mut out = String::new();
    let mut t = Table::new();
    t.load_style(presets::ASCII_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(vec!["#", "pc", "symbol", "frame size", "wasm frames", "slots"]);
    let mut next = 0usize;
    let mut disasm_out = String::new();
    for (k, nf) in n.frames.iter().enumerate() {
        let held = next..next + nf.wasm_frames as usize;
        // A return address: the call is at `pc - 1` (a call that never
        // returns can be its function's last instruction).
        let symbol = match bin.and_then(|b| b.symbolize(nf.pc.saturating_sub(1))) {
            Some((s, off)) => format!("{s}+{:#x}", off + 1),
            None => format!("f{}+{:#x}", nf.func, nf.offset),
        };
        let label = func_label(module, nf.func);
        let symbol = if label.is_empty() || label == "-" { symbol } else { format!("{symbol}\n({label})") };
        let mut slots = String::new();
        let mut it = nf.slots.iter();
        for w in held.clone() {
            let Some(f) = frames.get(w) else { break };
            if let Some(p) = it.next() {
                let _ = writeln!(slots, "wasm frame {w}: point {}", p.bits.unwrap_or(0));
            }
            for (i, v) in f.locals.iter().enumerate() {
                let Some(s) = it.next() else { break };
                let _ = writeln!(slots, "  local {i} = {v} in {}", describe(isa, &s.location));
            }
            for (i, v) in f.stack.iter().enumerate() {
                let Some(s) = it.next() else { break };
                let _ = writeln!(slots, "  stack {i} = {v} in {}", describe(isa, &s.location));
            }
        }
        t.add_row(vec![
            k.to_string(),
            format!("{:#x}", nf.pc),
            symbol,
            nf.frame_size.map_or("?".to_string(), |s| s.to_string()),
            if held.len() == 1 { held.start.to_string() } else { format!("{}..={}", held.start, held.end - 1) },
            slots.trim_end().to_string(),
        ]);
        if disasm {
            if let Some(b) = bin {
                let _ = writeln!(disasm_out, "native frame {k}: pc {:#x}", nf.pc);
                disasm_out.push_str(&disassemble(b, nf.pc)?);
                disasm_out.push('\n');
            }
        }
        next = held.end;
    }
    if let Some(c) = t.column_mut(0) {
        c.set_cell_alignment(CellAlignment::Right);
    }
    let _ = writeln!(
        out,
        "native frames ({}, build {}…, {} machine frames, outermost first; pc = return address in the binary)\n{t}\n",
        n.isa,
        short(&n.build),
        n.frames.len()
    );
    if disasm {
        let _ = writeln!(out, "disassembly (-> marks the return address; the call before it is the frame's call)\n{disasm_out}");
    }
    Ok(out)
}

/// The instructions before and after return address `pc`: from the start
/// of its function (x86 code cannot be decoded backwards), the last few
/// before `pc` and two from it.
fn disassemble(b: &Binary, pc: u64) -> Result<String> {
    let cs = match b.isa {
        Isa::X86_64 => Capstone::new().x86().mode(arch::x86::ArchMode::Mode64).build(),
        Isa::Aarch64 => Capstone::new().arm64().mode(arch::arm64::ArchMode::Arm).build(),
    }
    .map_err(|e| anyhow::anyhow!("capstone: {e}"))?;
    let start = match b.symbolize(pc.saturating_sub(1)) {
        Some((_, off)) => pc - 1 - off,
        None => pc.saturating_sub(64),
    };
    let Some((addr, code)) = b.code(start, pc + 32) else {
        return Ok(format!("  (no code at {pc:#x})\n"));
    };
    let insns = cs.disasm_all(code, addr).map_err(|e| anyhow::anyhow!("capstone: {e}"))?;
    let all: Vec<_> = insns.iter().collect();
    let at = all.iter().position(|i| i.address() >= pc).unwrap_or(all.len());
    let mut out = String::new();
    for i in &all[at.saturating_sub(6)..(at + 2).min(all.len())] {
        let sym = b.symbolize(i.address()).map(|(s, o)| format!("<{s}+{o:#x}>")).unwrap_or_default();
        let ops = i.op_str().unwrap_or("");
        // Name the target of a direct call or branch.
        let target = ops
            .trim_start_matches('#')
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .and_then(|a| b.symbolize(a))
            .map(|(s, o)| if o == 0 { format!("  <{s}>") } else { format!("  <{s}+{o:#x}>") })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {:#x} {sym:<14} {} {ops}{target}",
            if i.address() == pc { "->" } else { "  " },
            i.address(),
            i.mnemonic().unwrap_or("?"),
        );
    }
    Ok(out)
}

/// `verify --binary`: does the snapshot fit this compiled binary? Returns
/// (problems, notes): the binary must be of the snapshot's module, every
/// frame must lay out in its machine frames (each point a migration point or
/// return site it has, with the types it expects), and a native view of this
/// build must match its stack maps exactly. A view of another ISA or build
/// is only noted: restores use the neutral frames then.
pub fn verify_binary(s: &wanco_state::snapshot::Snapshot, bin: &Binary) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    if let Err(e) = super::translate::same_module(s, bin) {
        problems.push(format!("binary: {e}"));
        return (problems, notes);
    }
    if let Err(e) = wanco_translate::native::layout(&bin.meta, &s.frames, &|d| bin.func_start(d), None) {
        problems.push(format!("binary: {e}"));
    }
    match &s.native {
        None => notes.push(format!("the snapshot has no native frames; it restores on this {} binary from its neutral frames", bin.isa.name())),
        Some(n) if n.isa != bin.isa.name() => notes.push(format!(
            "the snapshot's native frames are {}; this {} binary restores from the neutral frames (`wanco-snap translate --to {}` lays them out for it)",
            n.isa,
            bin.isa.name(),
            bin.isa.name()
        )),
        Some(n) if n.build != bin.meta.build => notes.push(format!(
            "the snapshot's native frames belong to build {}…, this binary is build {}…: it restores from the neutral frames",
            short(&n.build),
            short(&bin.meta.build)
        )),
        Some(n) => {
            if let Err(e) = wanco_translate::native::check(&bin.meta, n, &s.frames) {
                problems.push(format!("native frames: {e}"));
            }
            let cfi = bin.cfi().ok();
            if let Err(e) = wanco_translate::native::check_addresses(&bin.meta, n, &|d| bin.func_start(d), cfi.as_ref().map(|c| (c, 0))) {
                problems.push(format!("native frames: {e}"));
            }
        }
    }
    (problems, notes)
}
