//! Statepoint records of an ELF object (feature `elf`).
//!
//! The compiler calls [`records_from_object`] on the relocatable object LLVM
//! just emitted, to turn its `.llvm_stackmaps` section into
//! [`CrRecord`]s.

use crate::stackmap::{self, LocationKind, StackMapRecord, StackMaps};
use crate::Error;
use object::elf::{R_AARCH64_ABS64, R_X86_64_64};
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex,
    SymbolKind, SymbolSection,
};
use std::collections::HashMap;
use wanco_state::crmeta::{CrRecord, Location};

/// Name of the stack map section.
pub const STACKMAP_SECTION: &str = ".llvm_stackmaps";

/// Number of constant header locations of a statepoint record (calling
/// convention, flags, number of deopt values).
pub const STATEPOINT_HEADER: usize = 3;

/// The [`CrRecord`]s of an ELF object, sorted by `(func, offset)`.
///
/// Finds `.llvm_stackmaps` (none: no records), resolves each function
/// address through the section's relocations (or, in a linked file, takes it
/// as is) to a function symbol, and maps the symbol's name with
/// `defined_index` to a defined-function index; functions for which it
/// returns `None` are skipped with their records. Each record must be a
/// statepoint: three constant header locations (calling convention, flags,
/// number `N` of deopt values), then the `N` deopt locations (later
/// locations, GC pointers, are ignored).
pub fn records_from_object(
    obj: &[u8],
    defined_index: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<CrRecord>, Error> {
    let file = object::File::parse(obj)
        .map_err(|e| Error::Object(format!("cannot parse the object file: {e}")))?;
    let Some(section) = file.section_by_name(STACKMAP_SECTION) else {
        return Ok(Vec::new());
    };
    let data = section
        .data()
        .map_err(|e| Error::Object(format!("cannot read {STACKMAP_SECTION}: {e}")))?;
    let maps = stackmap::parse(data)?;

    // Relocations of the section, by offset.
    let mut relocs = HashMap::new();
    for (offset, r) in section.relocations() {
        relocs.insert(offset, r);
    }

    let funcs = function_symbols(&file);
    let mut out = Vec::new();
    for (i, (func, records)) in maps.iter_functions().enumerate() {
        let field = (stackmap::FUNCTIONS_OFFSET + stackmap::FUNCTION_RECORD_SIZE * i) as u64;
        let (sec, addr) = match relocs.get(&field) {
            Some(r) => {
                match r.flags() {
                    RelocationFlags::Elf { r_type }
                        if r_type == R_X86_64_64 || r_type == R_AARCH64_ABS64 => {}
                    other => {
                        return Err(Error::Object(format!(
                            "relocation of the address of stack map function {i} (at byte \
                             {field} of {STACKMAP_SECTION}): expected R_X86_64_64 or \
                             R_AARCH64_ABS64, found {other:?}"
                        )))
                    }
                }
                let RelocationTarget::Symbol(sym_index) = r.target() else {
                    return Err(Error::Object(format!(
                        "relocation at byte {field} of {STACKMAP_SECTION}: expected a symbol \
                         target, found {:?}",
                        r.target()
                    )));
                };
                let sym = file.symbol_by_index(sym_index).map_err(|e| {
                    Error::Object(format!(
                        "relocation at byte {field} of {STACKMAP_SECTION}: bad symbol \
                         {sym_index:?}: {e}"
                    ))
                })?;
                let SymbolSection::Section(sec) = sym.section() else {
                    return Err(Error::Object(format!(
                        "relocation at byte {field} of {STACKMAP_SECTION}: symbol {:?} is not \
                         defined in a section",
                        sym.name().unwrap_or("?")
                    )));
                };
                let mut addend = r.addend();
                if r.has_implicit_addend() {
                    addend = addend.wrapping_add(func.address as i64);
                }
                (Some(sec), sym.address().wrapping_add_signed(addend))
            }
            // Linked file: the address is final.
            None => (None, func.address),
        };

        let index = function_at(&funcs, sec, addr, &defined_index).ok_or_else(|| {
            Error::Object(format!(
                "stack map function {i} (at byte {field} of {STACKMAP_SECTION}): no function \
                 symbol at {}{addr:#x}",
                match sec {
                    Some(s) => format!(
                        "{}+",
                        file.section_by_index(s)
                            .ok()
                            .and_then(|s| s.name().ok().map(str::to_string))
                            .unwrap_or_else(|| format!("section {}", s.0))
                    ),
                    None => String::new(),
                }
            ))
        })?;
        let Some(index) = index else { continue };
        for rec in records {
            out.push(convert_record(&maps, rec, index)?);
        }
    }
    out.sort_by_key(|r| (r.func, r.offset));
    if let Some(w) = out
        .windows(2)
        .find(|w| (w[0].func, w[0].offset) == (w[1].func, w[1].offset))
    {
        return Err(Error::Object(format!(
            "two stack map records for defined function {} at offset {:#x}",
            w[0].func, w[0].offset
        )));
    }
    Ok(out)
}

/// Names of the function symbols (`STT_FUNC`) of an object, by address
/// (in order of the symbol table).
fn function_symbols<'d>(file: &object::File<'d>) -> HashMap<u64, Vec<(SymbolSection, &'d str)>> {
    let mut map: HashMap<u64, Vec<(SymbolSection, &'d str)>> = HashMap::new();
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text {
            continue;
        }
        if let Ok(name) = sym.name() {
            map.entry(sym.address())
                .or_default()
                .push((sym.section(), name));
        }
    }
    map
}

/// The function symbol(s) at `addr` (in section `sec`, if given): `None` if
/// there is none, `Some(None)` if there are some but `defined_index` maps
/// none of them, `Some(Some(index))` otherwise.
fn function_at(
    funcs: &HashMap<u64, Vec<(SymbolSection, &str)>>,
    sec: Option<SectionIndex>,
    addr: u64,
    defined_index: &impl Fn(&str) -> Option<u32>,
) -> Option<Option<u32>> {
    let mut any = false;
    for (section, name) in funcs.get(&addr)? {
        if sec.is_some_and(|sec| *section != SymbolSection::Section(sec)) {
            continue;
        }
        any = true;
        if let Some(idx) = defined_index(name) {
            return Some(Some(idx));
        }
    }
    any.then_some(None)
}

fn convert_record(maps: &StackMaps, rec: &StackMapRecord, func: u32) -> Result<CrRecord, Error> {
    let at = rec.section_offset;
    let err = |message: String| Error::StackMap {
        offset: at,
        message,
    };
    let header = |k: usize| -> Result<i64, Error> {
        match rec.locations.get(k) {
            Some(l) if matches!(l.kind, LocationKind::Constant | LocationKind::ConstantIndex) => {
                constant(maps, l, at)
            }
            Some(l) => Err(err(format!(
                "statepoint record (id {:#x}): expected a constant header location {k}, found {:?}",
                rec.id, l.kind
            ))),
            None => Err(err(format!(
                "statepoint record (id {:#x}): expected at least {STATEPOINT_HEADER} header \
                 locations, found {}",
                rec.id,
                rec.locations.len()
            ))),
        }
    };
    let n = header(2)?;
    header(0)?;
    header(1)?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= rec.locations.len() - STATEPOINT_HEADER)
        .ok_or_else(|| {
            err(format!(
                "statepoint record (id {:#x}): header says {n} deopt values, but only {} \
                 locations follow the header",
                rec.id,
                rec.locations.len() - STATEPOINT_HEADER
            ))
        })?;
    let mut locations = Vec::with_capacity(n);
    for (k, l) in rec.locations[STATEPOINT_HEADER..STATEPOINT_HEADER + n]
        .iter()
        .enumerate()
    {
        let size = || {
            u8::try_from(l.size).map_err(|_| {
                err(format!(
                    "deopt location {k}: size {} does not fit in a byte",
                    l.size
                ))
            })
        };
        locations.push(match l.kind {
            LocationKind::Constant | LocationKind::ConstantIndex => {
                Location::Constant(constant(maps, l, at)?)
            }
            LocationKind::Register => Location::Register {
                reg: l.reg,
                size: size()?,
            },
            LocationKind::Indirect => Location::Indirect {
                reg: l.reg,
                offset: l.offset,
                size: size()?,
            },
            LocationKind::Direct => Location::Direct {
                reg: l.reg,
                offset: l.offset,
            },
        });
    }
    Ok(CrRecord {
        func,
        offset: rec.instruction_offset,
        locations,
    })
}

/// Value of a Constant (sign-extended) or ConstantIndex location.
fn constant(maps: &StackMaps, l: &stackmap::Location, at: usize) -> Result<i64, Error> {
    match l.kind {
        LocationKind::ConstantIndex => usize::try_from(l.offset)
            .ok()
            .and_then(|i| maps.constants.get(i))
            .map(|&c| c as i64)
            .ok_or_else(|| Error::StackMap {
                offset: at,
                message: format!(
                    "constant index {} out of range ({} constants)",
                    l.offset,
                    maps.constants.len()
                ),
            }),
        _ => Ok(i64::from(l.offset)),
    }
}
