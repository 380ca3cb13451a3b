//! A linked wanco binary read from disk (feature `elf`): its ISA, its
//! checkpoint metadata, where its functions are, its unwind information and
//! its code — what `wanco-snap` needs to translate, verify and show native
//! frames for that binary.

use crate::unwind::{Cfi, Isa};
use crate::Error;
use object::{Architecture, Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::collections::BTreeMap;
use std::ops::Range;
use wanco_state::abi::symbols::CRMETA_SUFFIX;
use wanco_state::crmeta::CrMeta;

/// A compiled program.
pub struct Binary {
    /// Its ISA.
    pub isa: Isa,
    /// Its checkpoint metadata.
    pub meta: CrMeta,
    data: Vec<u8>,
    /// Compiled Wasm functions by module function index: (address, size).
    funcs: BTreeMap<u32, (u64, u64)>,
    /// Every function symbol by address: (size, name).
    symbols: BTreeMap<u64, (u64, String)>,
    /// Executable sections: (address, file range).
    code: Vec<(u64, Range<usize>)>,
    eh_frame: Option<(u64, Range<usize>)>,
    eh_frame_hdr: Option<(u64, Range<usize>)>,
}

fn section_range(s: &object::Section<'_, '_>) -> Option<(u64, Range<usize>)> {
    let (off, len) = s.file_range()?;
    Some((s.address(), off as usize..(off + len) as usize))
}

impl Binary {
    /// Read a binary `wanco compile` produced. Fails with a message saying
    /// what is missing if it is not an ELF file of a supported ISA or has no
    /// checkpoint metadata (compiled with `--no-cr`, or not by wanco).
    pub fn read(data: Vec<u8>) -> Result<Binary, Error> {
        let file = object::File::parse(&*data)
            .map_err(|e| Error::Object(format!("not an ELF executable: {e}")))?;
        let isa = match file.architecture() {
            Architecture::X86_64 => Isa::X86_64,
            Architecture::Aarch64 => Isa::Aarch64,
            other => return Err(Error::Object(format!("unsupported architecture {other:?} (expected x86_64 or aarch64)"))),
        };
        let mut meta_at = None;
        let mut funcs = BTreeMap::new();
        let mut symbols = BTreeMap::new();
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.ends_with(CRMETA_SUFFIX) {
                meta_at = Some((sym.address(), sym.section_index()));
            }
            if sym.kind() == SymbolKind::Text && sym.address() != 0 {
                if let Some(idx) = name.strip_prefix('f').and_then(|n| n.parse::<u32>().ok()) {
                    funcs.insert(idx, (sym.address(), sym.size()));
                }
                symbols.insert(sym.address(), (sym.size(), name.to_string()));
            }
        }
        let (addr, sec) = meta_at.ok_or_else(|| {
            Error::Object(format!(
                "no checkpoint metadata (no `*{CRMETA_SUFFIX}` symbol): not a wanco binary, or compiled with --no-cr"
            ))
        })?;
        let sec = sec
            .and_then(|i| file.section_by_index(i).ok())
            .ok_or_else(|| Error::Object("the checkpoint metadata symbol has no section".into()))?;
        let bytes = sec
            .data()
            .map_err(|e| Error::Object(format!("cannot read section {}: {e}", sec.name().unwrap_or("?"))))?;
        let at = addr
            .checked_sub(sec.address())
            .map(|o| o as usize)
            .filter(|&o| o + 8 <= bytes.len())
            .ok_or_else(|| Error::Object(format!("checkpoint metadata at {addr:#x} lies outside its section")))?;
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
        let blob = bytes
            .get(at + 8..at + 8usize.saturating_add(len))
            .ok_or_else(|| Error::Object(format!("checkpoint metadata at {addr:#x}: {len} bytes run past its section")))?;
        let meta = CrMeta::from_bytes(blob).map_err(|e| Error::Object(e.to_string()))?;
        if Isa::from_name(&meta.isa) != Some(isa) {
            return Err(Error::Object(format!("the checkpoint metadata is for {}, the ELF file is {}", meta.isa, isa.name())));
        }
        let mut code = Vec::new();
        for s in file.sections() {
            if s.kind() == object::SectionKind::Text {
                if let Some(r) = section_range(&s) {
                    code.push(r);
                }
            }
        }
        let eh_frame = file.section_by_name(".eh_frame").and_then(|s| section_range(&s));
        let eh_frame_hdr = file.section_by_name(".eh_frame_hdr").and_then(|s| section_range(&s));
        for f in &meta.funcs {
            if !funcs.contains_key(&f.func) {
                return Err(Error::Object(format!(
                    "no symbol `f{}` for compiled function {} (was the binary stripped?)",
                    f.func, f.func
                )));
            }
        }
        drop(file);
        Ok(Binary { isa, meta, data, funcs, symbols, code, eh_frame, eh_frame_hdr })
    }

    /// Link-time address of defined function `defined` (0 = the first
    /// defined function).
    pub fn func_start(&self, defined: u32) -> Option<u64> {
        let f = self.meta.funcs.get(defined as usize)?;
        self.funcs.get(&f.func).map(|&(a, _)| a)
    }

    /// Unwind information (`.eh_frame`, searched through `.eh_frame_hdr`
    /// when present).
    pub fn cfi(&self) -> Result<Cfi<'_>, Error> {
        let (eh_addr, eh) = self.eh_frame.clone().ok_or_else(|| Error::Object("no .eh_frame section".into()))?;
        let eh_bytes = &self.data[eh];
        match self.eh_frame_hdr.clone() {
            Some((hdr_addr, hdr)) => Cfi::from_eh_frame_hdr(self.isa, &self.data[hdr], hdr_addr, eh_bytes, eh_addr),
            None => Ok(Cfi::from_eh_frame(self.isa, eh_bytes, eh_addr)),
        }
    }

    /// The function symbol containing `addr` and the offset into it.
    pub fn symbolize(&self, addr: u64) -> Option<(&str, u64)> {
        let (&start, (size, name)) = self.symbols.range(..=addr).next_back()?;
        (addr < start + (*size).max(1)).then(|| (name.as_str(), addr - start))
    }

    /// Code bytes in `[from, to)` (clipped to the executable section that
    /// holds `from`), with the address of the first byte.
    pub fn code(&self, from: u64, to: u64) -> Option<(u64, &[u8])> {
        let (addr, r) = self.code.iter().find(|(a, r)| *a <= from && from < *a + r.len() as u64)?;
        let lo = (from - addr) as usize;
        let hi = ((to.max(from) - addr) as usize).min(r.len());
        Some((from, &self.data[r.start + lo..r.start + hi]))
    }
}
