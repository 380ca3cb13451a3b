//! Parser of the LLVM stack map section (`.llvm_stackmaps`), version 3.
//!
//! Layout (little-endian; see LLVM's "Stack maps and patch points"):
//!
//! ```text
//! Header { u8 version = 3; u8 reserved; u16 reserved }
//! u32 NumFunctions; u32 NumConstants; u32 NumRecords
//! StkSizeRecord[NumFunctions] { u64 FunctionAddress; u64 StackSize; u64 RecordCount }
//! u64 Constants[NumConstants]
//! StkMapRecord[NumRecords] {
//!   u64 PatchPointID; u32 InstructionOffset; u16 Flags; u16 NumLocations
//!   Location[NumLocations] { u8 Type; u8 Reserved; u16 Size; u16 DwarfRegNum; u16 Reserved; i32 OffsetOrSmallConstant }
//!   u32 Padding (only if required to align to 8 bytes)
//!   u16 Padding; u16 NumLiveOuts
//!   LiveOut[NumLiveOuts] { u16 DwarfRegNum; u8 Reserved; u8 SizeInBytes }
//!   u32 Padding (only if required to align to 8 bytes)
//! }
//! ```
//!
//! Function `i` owns the next `RecordCount` records, in order.

use crate::Error;
use std::ops::Range;

/// The only stack map version this parser reads.
pub const VERSION: u8 = 3;

/// Byte offset of the first [`StackSizeRecord`] in the section.
pub const FUNCTIONS_OFFSET: usize = 16;

/// Size in bytes of one [`StackSizeRecord`].
pub const FUNCTION_RECORD_SIZE: usize = 24;

/// A parsed `.llvm_stackmaps` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackMaps {
    /// One entry per function with stack map records, in section order.
    pub functions: Vec<StackSizeRecord>,
    /// The large constants referenced by [`LocationKind::ConstantIndex`].
    pub constants: Vec<u64>,
    /// All records, in section order (grouped by function).
    pub records: Vec<StackMapRecord>,
    /// For each function, the range of its records in [`StackMaps::records`].
    ranges: Vec<Range<usize>>,
}

/// Per-function entry (`StkSizeRecord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackSizeRecord {
    /// Function address (0 in a relocatable object: see its relocation).
    pub address: u64,
    /// Stack frame size in bytes (`u64::MAX` if dynamic).
    pub stack_size: u64,
    /// Number of records of this function.
    pub record_count: u64,
}

/// One stack map record (`StkMapRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackMapRecord {
    /// Byte offset of the record in the section.
    pub section_offset: usize,
    /// Patch point / statepoint id.
    pub id: u64,
    /// Offset of the instruction after the call (the return address) from the
    /// function start.
    pub instruction_offset: u32,
    /// Reserved field (record flags).
    pub flags: u16,
    /// The locations.
    pub locations: Vec<Location>,
    /// Registers live across the call (patch points only).
    pub live_outs: Vec<LiveOut>,
}

/// Kind of a [`Location`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocationKind {
    /// The value is in register `reg`.
    Register,
    /// The value is the address `reg + offset`.
    Direct,
    /// The value is in memory at `[reg + offset]`.
    Indirect,
    /// The value is `offset` itself (a small constant).
    Constant,
    /// The value is `constants[offset]`.
    ConstantIndex,
}

/// One location of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// What the fields mean.
    pub kind: LocationKind,
    /// Size of the value in bytes.
    pub size: u16,
    /// DWARF register number (register / base register).
    pub reg: u16,
    /// Offset from the base register, the small constant, or the index into
    /// [`StackMaps::constants`], depending on `kind`.
    pub offset: i32,
}

/// A register live across a patch point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveOut {
    /// DWARF register number.
    pub reg: u16,
    /// Size in bytes.
    pub size: u8,
}

impl StackMaps {
    /// The records of function `i` (index into [`StackMaps::functions`]).
    pub fn function_records(&self, i: usize) -> &[StackMapRecord] {
        self.ranges
            .get(i)
            .and_then(|r| self.records.get(r.clone()))
            .unwrap_or(&[])
    }

    /// Every function with its records, in section order.
    pub fn iter_functions(&self) -> impl Iterator<Item = (&StackSizeRecord, &[StackMapRecord])> {
        self.functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f, self.function_records(i)))
    }
}

/// Bounds-checked little-endian reader over the section.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Error> {
        let end = self.pos.checked_add(N);
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(s) => {
                let mut out = [0u8; N];
                out.copy_from_slice(s);
                self.pos += N;
                Ok(out)
            }
            None => Err(Error::StackMap {
                offset: self.pos,
                message: format!(
                    "expected {what} ({N} bytes) but the section ends after {} bytes",
                    self.data.len()
                ),
            }),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8, Error> {
        Ok(self.bytes::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.bytes(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32, Error> {
        Ok(i32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// Skip padding up to the next multiple of 8 (from the section start).
    fn align8(&mut self, what: &str) -> Result<(), Error> {
        let pad = (8 - self.pos % 8) % 8;
        if pad > 0 {
            if self.data.len() - self.pos.min(self.data.len()) < pad {
                return Err(Error::StackMap {
                    offset: self.pos,
                    message: format!(
                        "expected {pad} bytes of {what} but the section ends after {} bytes",
                        self.data.len()
                    ),
                });
            }
            self.pos += pad;
        }
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
}

/// Capacity for `n` items of at least `item_size` bytes each: never more
/// than the rest of the section can hold (malformed counts must not make us
/// allocate gigabytes).
fn capacity(r: &Reader<'_>, n: u64, item_size: usize) -> usize {
    let max = r.remaining() / item_size.max(1);
    usize::try_from(n).map_or(max, |n| n.min(max))
}

/// Parse a `.llvm_stackmaps` section (version 3).
pub fn parse(section: &[u8]) -> Result<StackMaps, Error> {
    let mut r = Reader {
        data: section,
        pos: 0,
    };
    let version = r.u8("the stack map version")?;
    if version != VERSION {
        return Err(Error::StackMap {
            offset: 0,
            message: format!("expected stack map version {VERSION}, found {version}"),
        });
    }
    r.u8("a reserved header byte")?;
    r.u16("the reserved header field")?;
    let num_functions = r.u32("NumFunctions")?;
    let num_constants = r.u32("NumConstants")?;
    let num_records = r.u32("NumRecords")?;

    let mut functions =
        Vec::with_capacity(capacity(&r, num_functions.into(), FUNCTION_RECORD_SIZE));
    for i in 0..num_functions {
        let what = |f: &str| format!("{f} of function record {i}");
        functions.push(StackSizeRecord {
            address: r.u64(&what("FunctionAddress"))?,
            stack_size: r.u64(&what("StackSize"))?,
            record_count: r.u64(&what("RecordCount"))?,
        });
    }

    let mut constants = Vec::with_capacity(capacity(&r, num_constants.into(), 8));
    for i in 0..num_constants {
        constants.push(r.u64(&format!("constant {i}"))?);
    }

    let records_start = r.pos;
    let total: Option<u64> = functions
        .iter()
        .try_fold(0u64, |acc, f| acc.checked_add(f.record_count));
    if total != Some(u64::from(num_records)) {
        return Err(Error::StackMap {
            offset: FUNCTIONS_OFFSET,
            message: format!(
                "expected the record counts of the {num_functions} functions to add up to \
                 NumRecords = {num_records}, they add up to {}",
                total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string())
            ),
        });
    }

    let mut records = Vec::with_capacity(capacity(&r, num_records.into(), 16));
    for i in 0..num_records {
        records.push(parse_record(&mut r, i, constants.len())?);
    }
    if r.pos != section.len() {
        // LLVM emits exactly one stack map blob per object; trailing bytes
        // mean the counts are wrong.
        return Err(Error::StackMap {
            offset: r.pos,
            message: format!(
                "expected the section to end after {num_records} records (started at byte \
                 {records_start}), but {} bytes follow",
                section.len() - r.pos
            ),
        });
    }

    let mut ranges = Vec::with_capacity(functions.len());
    let mut start = 0usize;
    for f in &functions {
        // Each count is at most num_records (checked above), so this fits.
        let end = start + f.record_count as usize;
        ranges.push(start..end);
        start = end;
    }

    Ok(StackMaps {
        functions,
        constants,
        records,
        ranges,
    })
}

fn parse_record(r: &mut Reader<'_>, i: u32, num_constants: usize) -> Result<StackMapRecord, Error> {
    let section_offset = r.pos;
    let what = |f: &str| format!("{f} of record {i} (at byte {section_offset})");
    let id = r.u64(&what("the patch point id"))?;
    let instruction_offset = r.u32(&what("the instruction offset"))?;
    let flags = r.u16(&what("the flags"))?;
    let num_locations = r.u16(&what("NumLocations"))?;
    let mut locations = Vec::with_capacity(capacity(r, num_locations.into(), 12));
    for l in 0..num_locations {
        let loc_offset = r.pos;
        let lwhat = |f: &str| what(&format!("{f} of location {l}"));
        let ty = r.u8(&lwhat("the type"))?;
        r.u8(&lwhat("the reserved byte"))?;
        let size = r.u16(&lwhat("the size"))?;
        let reg = r.u16(&lwhat("the register"))?;
        r.u16(&lwhat("the reserved field"))?;
        let offset = r.i32(&lwhat("the offset"))?;
        let kind = match ty {
            1 => LocationKind::Register,
            2 => LocationKind::Direct,
            3 => LocationKind::Indirect,
            4 => LocationKind::Constant,
            5 => LocationKind::ConstantIndex,
            other => {
                return Err(Error::StackMap {
                    offset: loc_offset,
                    message: format!(
                    "expected a location type 1..=5 in location {l} of record {i}, found {other}"
                ),
                })
            }
        };
        if kind == LocationKind::ConstantIndex
            && usize::try_from(offset).map_or(true, |idx| idx >= num_constants)
        {
            return Err(Error::StackMap {
                offset: loc_offset,
                message: format!(
                    "location {l} of record {i} refers to constant {offset}, but there are \
                     only {num_constants} constants"
                ),
            });
        }
        locations.push(Location {
            kind,
            size,
            reg,
            offset,
        });
    }
    r.align8(&what("padding after the locations"))?;
    r.u16(&what("the padding before NumLiveOuts"))?;
    let num_live_outs = r.u16(&what("NumLiveOuts"))?;
    let mut live_outs = Vec::with_capacity(capacity(r, num_live_outs.into(), 4));
    for l in 0..num_live_outs {
        let lwhat = |f: &str| what(&format!("{f} of live-out {l}"));
        let reg = r.u16(&lwhat("the register"))?;
        r.u8(&lwhat("the reserved byte"))?;
        let size = r.u8(&lwhat("the size"))?;
        live_outs.push(LiveOut { reg, size });
    }
    r.align8(&what("padding after the live-outs"))?;
    Ok(StackMapRecord {
        section_offset,
        id,
        instruction_offset,
        flags,
        locations,
        live_outs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-assembled section: one function, one constant, one record with
    /// a Constant, a Register, an Indirect and a ConstantIndex location and
    /// one live-out.
    pub(crate) fn sample() -> Vec<u8> {
        let mut s = vec![3u8, 0, 0, 0];
        s.extend(1u32.to_le_bytes()); // functions
        s.extend(1u32.to_le_bytes()); // constants
        s.extend(1u32.to_le_bytes()); // records
        s.extend(0x1000u64.to_le_bytes());
        s.extend(48u64.to_le_bytes());
        s.extend(1u64.to_le_bytes());
        s.extend(0x1122_3344_5566_7788u64.to_le_bytes());
        // record at 48
        s.extend(0xABCDu64.to_le_bytes());
        s.extend(0x2au32.to_le_bytes());
        s.extend(0u16.to_le_bytes());
        s.extend(4u16.to_le_bytes());
        let loc = |s: &mut Vec<u8>, ty: u8, size: u16, reg: u16, off: i32| {
            s.push(ty);
            s.push(0);
            s.extend(size.to_le_bytes());
            s.extend(reg.to_le_bytes());
            s.extend(0u16.to_le_bytes());
            s.extend(off.to_le_bytes());
        };
        loc(&mut s, 4, 8, 0, -5);
        loc(&mut s, 1, 4, 3, 0);
        loc(&mut s, 3, 8, 7, 16);
        loc(&mut s, 5, 8, 0, 0);
        // 48 + 16 + 48 = 112: aligned, no padding
        s.extend(0u16.to_le_bytes());
        s.extend(1u16.to_le_bytes());
        s.extend(6u16.to_le_bytes());
        s.push(0);
        s.push(8);
        // 112 + 8 = 120: aligned
        s
    }

    #[test]
    fn parses_hand_assembled_section() {
        let s = sample();
        let m = parse(&s).expect("valid section");
        assert_eq!(
            m.functions,
            vec![StackSizeRecord {
                address: 0x1000,
                stack_size: 48,
                record_count: 1
            }]
        );
        assert_eq!(m.constants, vec![0x1122_3344_5566_7788]);
        assert_eq!(m.records.len(), 1);
        let r = &m.records[0];
        assert_eq!(
            (r.section_offset, r.id, r.instruction_offset),
            (48, 0xABCD, 0x2a)
        );
        assert_eq!(
            r.locations,
            vec![
                Location {
                    kind: LocationKind::Constant,
                    size: 8,
                    reg: 0,
                    offset: -5
                },
                Location {
                    kind: LocationKind::Register,
                    size: 4,
                    reg: 3,
                    offset: 0
                },
                Location {
                    kind: LocationKind::Indirect,
                    size: 8,
                    reg: 7,
                    offset: 16
                },
                Location {
                    kind: LocationKind::ConstantIndex,
                    size: 8,
                    reg: 0,
                    offset: 0
                },
            ]
        );
        assert_eq!(r.live_outs, vec![LiveOut { reg: 6, size: 8 }]);
        assert_eq!(m.function_records(0).len(), 1);
        assert!(m.function_records(1).is_empty());
    }

    #[test]
    fn every_truncation_is_an_error_with_offset() {
        let s = sample();
        for len in 0..s.len() {
            match parse(&s[..len]) {
                Err(Error::StackMap { offset, message }) => {
                    assert!(
                        offset <= len,
                        "offset {offset} beyond truncation {len}: {message}"
                    );
                    assert!(message.contains("expected"), "{message}");
                }
                other => panic!("truncated to {len}: expected a stack map error, got {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_version() {
        let mut s = sample();
        s[0] = 2;
        let e = parse(&s).unwrap_err();
        assert_eq!(
            e,
            Error::StackMap {
                offset: 0,
                message: "expected stack map version 3, found 2".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "invalid .llvm_stackmaps section at byte 0: expected stack map version 3, found 2"
        );
    }

    #[test]
    fn bad_location_type_and_constant_index() {
        let mut s = sample();
        s[64] = 9; // type of the first location
        assert!(matches!(parse(&s), Err(Error::StackMap { offset: 64, .. })));
        let mut s = sample();
        s[64 + 36 + 8..64 + 36 + 12].copy_from_slice(&1i32.to_le_bytes()); // ConstantIndex 1
        assert!(matches!(
            parse(&s),
            Err(Error::StackMap { offset: 100, .. })
        ));
    }

    #[test]
    fn inconsistent_counts() {
        // Record count of the function larger than NumRecords.
        let mut s = sample();
        s[32..40].copy_from_slice(&2u64.to_le_bytes());
        assert!(matches!(parse(&s), Err(Error::StackMap { offset: 16, .. })));
        // Overflowing counts.
        s[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&s), Err(Error::StackMap { offset: 16, .. })));
        // Huge NumFunctions: no huge allocation, just an error.
        let mut s = sample();
        s[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse(&s), Err(Error::StackMap { .. })));
        // Trailing bytes.
        let mut s = sample();
        s.extend([0u8; 8]);
        assert!(matches!(
            parse(&s),
            Err(Error::StackMap { offset: 120, .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic pseudo-random mutations of the sample.
        let base = sample();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut s = base.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % s.len();
                s[i] = (x >> 32) as u8;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x as usize) % (s.len() + 1);
            let _ = parse(&s[..len]);
            let _ = parse(&s);
        }
    }
}
