//! DWARF CFI stack walking over abstract memory.
//!
//! [`Cfi`] wraps an `.eh_frame` section (optionally with the binary search
//! table of `.eh_frame_hdr`) loaded at known addresses; [`Cfi::step`] turns
//! the register state of one frame into the register state of its caller,
//! reading saved registers through [`Memory`].

use crate::Error;
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, LittleEndian, ParsedEhFrameHdr,
    Register, RegisterRule, UnwindContext, UnwindSection,
};

/// Instruction set of the code being unwound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 (System V).
    X86_64,
    /// AArch64 (AAPCS64).
    Aarch64,
}

impl Isa {
    /// The ISA of a [`wanco_state::crmeta::CrMeta::isa`] string (`"x86_64"`,
    /// `"aarch64"`).
    pub fn from_name(name: &str) -> Option<Isa> {
        match name {
            "x86_64" => Some(Isa::X86_64),
            "aarch64" => Some(Isa::Aarch64),
            _ => None,
        }
    }

    /// The name used in [`wanco_state::crmeta::CrMeta::isa`].
    pub fn name(self) -> &'static str {
        match self {
            Isa::X86_64 => "x86_64",
            Isa::Aarch64 => "aarch64",
        }
    }

    /// DWARF number of the stack pointer.
    pub fn sp_reg(self) -> u16 {
        match self {
            Isa::X86_64 => x86_64::RSP,
            Isa::Aarch64 => aarch64::SP,
        }
    }

    /// DWARF number of the register holding the return address: the return
    /// address column on x86-64 (16, a pseudo register), the link register
    /// x30 on AArch64.
    pub fn ra_reg(self) -> u16 {
        match self {
            Isa::X86_64 => x86_64::RA,
            Isa::Aarch64 => aarch64::LR,
        }
    }

    /// Whether a register keeps its value across calls (callee-saved).
    pub fn is_callee_saved(self, reg: u16) -> bool {
        match self {
            Isa::X86_64 => matches!(reg, x86_64::RBX | x86_64::RBP | 12..=15),
            // x19..x29, d8..d15 (low 64 bits of v8..v15).
            Isa::Aarch64 => matches!(reg, 19..=29 | 72..=79),
        }
    }

    /// A readable name of a DWARF register (for messages).
    pub fn reg_name(self, reg: u16) -> String {
        match self {
            Isa::X86_64 => {
                const NAMES: [&str; 17] = [
                    "rax",
                    "rdx",
                    "rcx",
                    "rbx",
                    "rsi",
                    "rdi",
                    "rbp",
                    "rsp",
                    "r8",
                    "r9",
                    "r10",
                    "r11",
                    "r12",
                    "r13",
                    "r14",
                    "r15",
                    "return address",
                ];
                match NAMES.get(usize::from(reg)) {
                    Some(n) => (*n).to_string(),
                    None if (17..=32).contains(&reg) => format!("xmm{}", reg - 17),
                    None => format!("dwarf register {reg}"),
                }
            }
            Isa::Aarch64 => match reg {
                0..=30 => format!("x{reg}"),
                31 => "sp".to_string(),
                64..=95 => format!("v{}", reg - 64),
                _ => format!("dwarf register {reg}"),
            },
        }
    }
}

/// DWARF register numbers of x86-64.
pub mod x86_64 {
    /// `rax`.
    pub const RAX: u16 = 0;
    /// `rdx`.
    pub const RDX: u16 = 1;
    /// `rcx`.
    pub const RCX: u16 = 2;
    /// `rbx` (callee-saved).
    pub const RBX: u16 = 3;
    /// `rsi`.
    pub const RSI: u16 = 4;
    /// `rdi`.
    pub const RDI: u16 = 5;
    /// `rbp` (callee-saved).
    pub const RBP: u16 = 6;
    /// `rsp`.
    pub const RSP: u16 = 7;
    /// `r12` (callee-saved; `r8..r15` are 8..15).
    pub const R12: u16 = 12;
    /// `r13` (callee-saved).
    pub const R13: u16 = 13;
    /// `r14` (callee-saved).
    pub const R14: u16 = 14;
    /// `r15` (callee-saved).
    pub const R15: u16 = 15;
    /// Return address column.
    pub const RA: u16 = 16;
    /// `xmm0` (`xmm0..xmm15` are 17..32).
    pub const XMM0: u16 = 17;
}

/// DWARF register numbers of AArch64.
pub mod aarch64 {
    /// `x19`, the first callee-saved general register (`x0..x30` are 0..30).
    pub const X19: u16 = 19;
    /// Frame pointer `x29`.
    pub const FP: u16 = 29;
    /// Link register `x30`.
    pub const LR: u16 = 30;
    /// Stack pointer.
    pub const SP: u16 = 31;
    /// `v0` (`v0..v31` are 64..95; `d8..d15`, the callee-saved low halves of
    /// `v8..v15`, are 72..79).
    pub const V0: u16 = 64;
    /// `v8` / `d8`.
    pub const D8: u16 = 72;
}

/// Number of DWARF register slots in a [`Regs`].
pub const NUM_REGS: usize = 128;

/// Memory of the process being unwound.
pub trait Memory {
    /// Read 8 little-endian bytes at `addr`; `None` if unreadable.
    fn read_u64(&self, addr: u64) -> Option<u64>;

    /// Read 4 little-endian bytes at `addr`; `None` if unreadable. The
    /// default reads the aligned 8-byte word(s) containing them.
    fn read_u32(&self, addr: u64) -> Option<u32> {
        let base = addr & !7;
        let shift = (addr & 7) * 8;
        let lo = self.read_u64(base)?;
        if shift <= 32 {
            Some((lo >> shift) as u32)
        } else {
            let hi = self.read_u64(base.checked_add(8)?)?;
            Some(((lo >> shift) | (hi << (64 - shift))) as u32)
        }
    }
}

impl<M: Memory + ?Sized> Memory for &M {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        (**self).read_u64(addr)
    }

    fn read_u32(&self, addr: u64) -> Option<u32> {
        (**self).read_u32(addr)
    }
}

/// The DWARF register file of one frame: the program counter plus one
/// optional 64-bit value per DWARF register (`None` = unknown).
///
/// Vector registers hold their low 64 bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regs {
    isa: Isa,
    pc: u64,
    vals: [Option<u64>; NUM_REGS],
}

impl Regs {
    /// A register file with `pc` and every register unknown.
    pub fn new(isa: Isa, pc: u64) -> Regs {
        Regs {
            isa,
            pc,
            vals: [None; NUM_REGS],
        }
    }

    /// The ISA.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Value of DWARF register `reg`, if known.
    pub fn get(&self, reg: u16) -> Option<u64> {
        self.vals.get(usize::from(reg)).copied().flatten()
    }

    /// Set DWARF register `reg` (ignored if `reg >= NUM_REGS`; returns
    /// whether it was stored).
    pub fn set(&mut self, reg: u16, val: u64) -> bool {
        match self.vals.get_mut(usize::from(reg)) {
            Some(slot) => {
                *slot = Some(val);
                true
            }
            None => false,
        }
    }

    /// Mark DWARF register `reg` unknown.
    pub fn clear(&mut self, reg: u16) {
        if let Some(slot) = self.vals.get_mut(usize::from(reg)) {
            *slot = None;
        }
    }

    /// Program counter (a return address for every frame this crate
    /// decodes).
    pub fn pc(&self) -> u64 {
        self.pc
    }

    /// Set the program counter.
    pub fn set_pc(&mut self, pc: u64) {
        self.pc = pc;
    }

    /// Stack pointer, if known.
    pub fn sp(&self) -> Option<u64> {
        self.get(self.isa.sp_reg())
    }

    /// Set the stack pointer.
    pub fn set_sp(&mut self, sp: u64) {
        self.set(self.isa.sp_reg(), sp);
    }
}

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// CFA = register + offset, from a row (expressions are not supported).
fn cfa_rule(row: &gimli::UnwindTableRow<usize>, pc: u64) -> Result<(u16, i64), Error> {
    match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => Ok((register.0, *offset)),
        CfaRule::Expression(_) => Err(Error::Unwind {
            pc,
            message: "the CFA is a DWARF expression (not supported)".to_string(),
        }),
    }
}

/// The layout of a frame at one address, from its CFI row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRule {
    /// DWARF register the CFA is based on.
    pub cfa_reg: u16,
    /// CFA = `cfa_reg` + `cfa_offset`.
    pub cfa_offset: i64,
    /// Registers saved in the frame (including the return address where it
    /// is on the stack), with their offset from the CFA, highest first.
    pub saved: Vec<(u16, i64)>,
}

/// Call frame information of one loaded binary.
#[derive(Clone, Debug)]
pub struct Cfi<'a> {
    isa: Isa,
    eh_frame: EhFrame<Slice<'a>>,
    hdr: Option<ParsedEhFrameHdr<Slice<'a>>>,
    bases: BaseAddresses,
}

impl<'a> Cfi<'a> {
    /// CFI from an `.eh_frame` section's bytes loaded at `section_addr`.
    /// Every lookup scans the FDEs linearly.
    pub fn from_eh_frame(isa: Isa, bytes: &'a [u8], section_addr: u64) -> Cfi<'a> {
        let mut eh_frame = EhFrame::new(bytes, LittleEndian);
        eh_frame.set_address_size(8);
        if isa == Isa::Aarch64 {
            // DW_CFA_AARCH64_negate_ra_state shares its opcode with
            // DW_CFA_GNU_window_save.
            eh_frame.set_vendor(gimli::Vendor::AArch64);
        }
        Cfi {
            isa,
            eh_frame,
            hdr: None,
            bases: BaseAddresses::default().set_eh_frame(section_addr),
        }
    }

    /// CFI from `.eh_frame_hdr` (loaded at `hdr_addr`; its binary search
    /// table is used for lookups) and the `.eh_frame` section it refers to
    /// (loaded at `eh_frame_addr`). Fails if the header is malformed or
    /// points somewhere else than `eh_frame_addr`.
    pub fn from_eh_frame_hdr(
        isa: Isa,
        hdr: &'a [u8],
        hdr_addr: u64,
        eh_frame: &'a [u8],
        eh_frame_addr: u64,
    ) -> Result<Cfi<'a>, Error> {
        let mut cfi = Cfi::from_eh_frame(isa, eh_frame, eh_frame_addr);
        cfi.bases = cfi.bases.set_eh_frame_hdr(hdr_addr);
        let parsed = EhFrameHdr::new(hdr, LittleEndian)
            .parse(&cfi.bases, 8)
            .map_err(|e| {
                Error::Object(format!("cannot parse .eh_frame_hdr at {hdr_addr:#x}: {e}"))
            })?;
        match parsed.eh_frame_ptr().direct() {
            Ok(p) if p == eh_frame_addr => {}
            Ok(p) => {
                return Err(Error::Object(format!(
                    ".eh_frame_hdr at {hdr_addr:#x} refers to .eh_frame at {p:#x}, expected \
                     {eh_frame_addr:#x}"
                )))
            }
            Err(e) => {
                return Err(Error::Object(format!(
                    ".eh_frame_hdr at {hdr_addr:#x}: unsupported .eh_frame pointer: {e}"
                )))
            }
        }
        cfi.hdr = Some(parsed);
        Ok(cfi)
    }

    /// Set the `.text` base address, for the (rare) text-relative pointer
    /// encodings.
    pub fn with_text(mut self, text_addr: u64) -> Cfi<'a> {
        self.bases = self.bases.set_text(text_addr);
        self
    }

    /// The ISA.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Whether lookups use the `.eh_frame_hdr` binary search table.
    pub fn has_search_table(&self) -> bool {
        self.hdr.as_ref().is_some_and(|h| h.table().is_some())
    }

    /// Start and end address of the FDE covering `addr`.
    pub fn fde_range(&self, addr: u64) -> Result<(u64, u64), Error> {
        let fde = self.fde(addr, addr)?;
        Ok((fde.initial_address(), fde.end_address()))
    }

    fn fde(&self, addr: u64, pc: u64) -> Result<gimli::FrameDescriptionEntry<Slice<'a>>, Error> {
        let table = self.hdr.as_ref().and_then(|h| h.table());
        let res = match table {
            Some(t) => {
                t.fde_for_address(&self.eh_frame, &self.bases, addr, EhFrame::cie_from_offset)
            }
            None => self
                .eh_frame
                .fde_for_address(&self.bases, addr, EhFrame::cie_from_offset),
        };
        res.map_err(|e| match e {
            gimli::Error::NoUnwindInfoForAddress => Error::NoUnwindInfo { pc },
            e => Error::Unwind {
                pc,
                message: format!("cannot find the FDE for {addr:#x}: {e}"),
            },
        })
    }

    /// The CFI row for return address `pc` (looked up at `pc - 1`, inside
    /// the call) and the CIE's return address register.
    fn row(&self, pc: u64) -> Result<(gimli::UnwindTableRow<usize>, Register), Error> {
        let addr = pc.checked_sub(1).ok_or(Error::NoUnwindInfo { pc })?;
        let fde = self.fde(addr, pc)?;
        let mut ctx = UnwindContext::new();
        let row = fde
            .unwind_info_for_address(&self.eh_frame, &self.bases, &mut ctx, addr)
            .map_err(|e| match e {
                gimli::Error::NoUnwindInfoForAddress => Error::NoUnwindInfo { pc },
                e => Error::Unwind {
                    pc,
                    message: format!("cannot evaluate the CFI: {e}"),
                },
            })?;
        Ok((row.clone(), fde.cie().return_address_register()))
    }

    /// The frame layout at return address `pc` (the row for `pc - 1`): how
    /// the CFA is computed and where the callee-saved registers are saved,
    /// as offsets from the CFA.
    pub fn frame_rule(&self, pc: u64) -> Result<FrameRule, Error> {
        let (row, _) = self.row(pc)?;
        let (cfa_reg, cfa_offset) = cfa_rule(&row, pc)?;
        let mut saved = Vec::new();
        for (reg, rule) in row.registers() {
            if let RegisterRule::Offset(n) = rule {
                saved.push((reg.0, *n));
            }
        }
        saved.sort_unstable_by_key(|&(_, n)| std::cmp::Reverse(n));
        Ok(FrameRule {
            cfa_reg,
            cfa_offset,
            saved,
        })
    }

    /// Unwind one frame.
    ///
    /// `regs` is the register state of a frame whose pc is a return address
    /// (the CFI row is looked up for `pc - 1`). Returns the caller's state:
    /// its sp is the CFA, its pc the return address; registers with a rule
    /// in the CFI row are recovered, callee-saved registers the row does not
    /// mention keep their value, caller-saved ones become unknown.
    pub fn step(&self, regs: &Regs, mem: &impl Memory) -> Result<Regs, Error> {
        let isa = self.isa;
        let pc = regs.pc();
        if regs.isa() != isa {
            return Err(Error::Unwind {
                pc,
                message: format!(
                    "register file is for {}, the unwind info for {}",
                    regs.isa().name(),
                    isa.name()
                ),
            });
        }
        let (row, ra_reg) = self.row(pc)?;
        let (cfa_reg, cfa_offset) = cfa_rule(&row, pc)?;
        let cfa = regs
            .get(cfa_reg)
            .ok_or_else(|| Error::Unwind {
                pc,
                message: format!(
                    "the CFA is based on {}, whose value is unknown",
                    isa.reg_name(cfa_reg)
                ),
            })?
            .wrapping_add_signed(cfa_offset);

        let eval = |reg: Register, rule: &RegisterRule<usize>| -> Result<Option<u64>, Error> {
            Ok(match rule {
                RegisterRule::Undefined => None,
                RegisterRule::SameValue => regs.get(reg.0),
                RegisterRule::Offset(n) => {
                    let at = cfa.wrapping_add_signed(*n);
                    Some(mem.read_u64(at).ok_or_else(|| Error::Memory {
                        addr: at,
                        what: format!(
                            "the saved register {} (unwinding pc {pc:#x})",
                            isa.reg_name(reg.0)
                        ),
                    })?)
                }
                RegisterRule::ValOffset(n) => Some(cfa.wrapping_add_signed(*n)),
                RegisterRule::Register(r) => regs.get(r.0),
                RegisterRule::Constant(c) => Some(*c),
                other => {
                    return Err(Error::Unwind {
                        pc,
                        message: format!("unsupported rule for {}: {other:?}", isa.reg_name(reg.0)),
                    })
                }
            })
        };

        let mut out = regs.clone();
        for reg in 0..NUM_REGS as u16 {
            if !isa.is_callee_saved(reg) {
                out.clear(reg);
            }
        }
        for (reg, rule) in row.registers() {
            if isa == Isa::X86_64 && *reg == ra_reg {
                continue; // the return address column is no real register
            }
            match eval(*reg, rule)? {
                Some(v) => {
                    out.set(reg.0, v);
                }
                None => out.clear(reg.0),
            }
        }

        let ra = match row.register(ra_reg) {
            Some(rule) => eval(ra_reg, &rule)?,
            // No rule: the return address register was not touched (an
            // AArch64 leaf keeps it in x30).
            None if isa == Isa::Aarch64 => regs.get(ra_reg.0),
            None => None,
        };
        let ra = ra.ok_or_else(|| Error::Unwind {
            pc,
            message: format!(
                "the return address ({}) is not recoverable",
                isa.reg_name(ra_reg.0)
            ),
        })?;
        if isa == Isa::Aarch64 {
            if let Some(RegisterRule::Constant(1)) = row.register(gimli::AArch64::RA_SIGN_STATE) {
                return Err(Error::Unwind {
                    pc,
                    message: "the return address is signed (pointer authentication is not \
                              supported)"
                        .to_string(),
                });
            }
            out.set(aarch64::LR, ra);
        }
        out.set_sp(cfa);
        out.set_pc(ra);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Words(HashMap<u64, u64>);

    impl Memory for Words {
        fn read_u64(&self, addr: u64) -> Option<u64> {
            self.0.get(&addr).copied()
        }
    }

    #[test]
    fn read_u32_default_extracts_little_endian_halves() {
        let m = Words(HashMap::from([
            (0x100, 0x8877_6655_4433_2211),
            (0x108, 0xffee_ddcc_bbaa_9988),
        ]));
        assert_eq!(m.read_u32(0x100), Some(0x4433_2211));
        assert_eq!(m.read_u32(0x104), Some(0x8877_6655));
        assert_eq!(m.read_u32(0x102), Some(0x6655_4433));
        assert_eq!(m.read_u32(0x106), Some(0x9988_8877));
        assert_eq!(m.read_u32(0x107), Some(0xaa99_8888));
        assert_eq!(m.read_u32(0x10c), Some(0xffee_ddcc));
        assert_eq!(m.read_u32(0x10e), None);
        assert_eq!(m.read_u32(0xfc), None);
    }

    #[test]
    fn regs_basics() {
        let mut r = Regs::new(Isa::Aarch64, 0x1234);
        assert_eq!(r.pc(), 0x1234);
        assert_eq!(r.sp(), None);
        r.set_sp(0x8000);
        assert_eq!(r.get(31), Some(0x8000));
        assert!(r.set(79, 5));
        assert!(!r.set(200, 5));
        assert_eq!(r.get(200), None);
        r.clear(79);
        assert_eq!(r.get(79), None);
        assert_eq!(Isa::Aarch64.reg_name(72), "v8");
        assert_eq!(Isa::X86_64.reg_name(14), "r14");
        assert_eq!(Isa::from_name("x86_64"), Some(Isa::X86_64));
    }

    #[test]
    fn empty_or_garbage_eh_frame_gives_errors() {
        let mut regs = Regs::new(Isa::X86_64, 0x1000);
        regs.set_sp(0x8000);
        let mem = Words(HashMap::new());
        let cfi = Cfi::from_eh_frame(Isa::X86_64, &[], 0x5000);
        assert_eq!(
            cfi.step(&regs, &mem),
            Err(Error::NoUnwindInfo { pc: 0x1000 })
        );
        assert_eq!(
            cfi.step(&regs, &mem).unwrap_err().to_string(),
            "no unwind info for pc 0x1000"
        );
        let junk = [0xffu8; 64];
        let cfi = Cfi::from_eh_frame(Isa::X86_64, &junk, 0x5000);
        assert!(cfi.step(&regs, &mem).is_err());
        let regs0 = Regs::new(Isa::X86_64, 0);
        assert_eq!(cfi.step(&regs0, &mem), Err(Error::NoUnwindInfo { pc: 0 }));
        assert!(Cfi::from_eh_frame_hdr(Isa::X86_64, &[1, 2], 0x4000, &[], 0x5000).is_err());
    }
}
