//! Bounds-checked, little-endian access to guest linear memory.
//!
//! Every access checks `ptr + len <= memory.len()` in 64-bit arithmetic; a
//! failing check is `FAULT`, never a panic.

use crate::errno::Errno;
use std::ops::Range;

/// The guest's linear memory during one WASI call.
pub(crate) struct Mem<'a> {
    bytes: &'a mut [u8],
}

/// Guest pointers and sizes are 32-bit.
pub(crate) type Ptr = u32;

impl<'a> Mem<'a> {
    pub(crate) fn new(bytes: &'a mut [u8]) -> Self {
        Mem { bytes }
    }

    /// The byte range `[ptr, ptr + len)`, if it lies inside memory.
    pub(crate) fn range(&self, ptr: Ptr, len: u64) -> Result<Range<usize>, Errno> {
        let start = u64::from(ptr);
        let end = start.checked_add(len).ok_or(Errno::FAULT)?;
        if end > self.bytes.len() as u64 {
            return Err(Errno::FAULT);
        }
        Ok(start as usize..end as usize)
    }

    /// Checks that `len` bytes at `ptr` are addressable.
    pub(crate) fn check(&self, ptr: Ptr, len: u64) -> Result<(), Errno> {
        self.range(ptr, len).map(|_| ())
    }

    pub(crate) fn slice(&self, ptr: Ptr, len: u32) -> Result<&[u8], Errno> {
        let r = self.range(ptr, u64::from(len))?;
        Ok(&self.bytes[r])
    }

    pub(crate) fn slice_mut(&mut self, ptr: Ptr, len: u32) -> Result<&mut [u8], Errno> {
        let r = self.range(ptr, u64::from(len))?;
        Ok(&mut self.bytes[r])
    }

    pub(crate) fn write_bytes(&mut self, ptr: Ptr, data: &[u8]) -> Result<(), Errno> {
        let r = self.range(ptr, data.len() as u64)?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }

    fn read_array<const N: usize>(&self, ptr: Ptr) -> Result<[u8; N], Errno> {
        let r = self.range(ptr, N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[r]);
        Ok(out)
    }

    pub(crate) fn read_u8(&self, ptr: Ptr) -> Result<u8, Errno> {
        Ok(self.read_array::<1>(ptr)?[0])
    }

    pub(crate) fn read_u16(&self, ptr: Ptr) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.read_array(ptr)?))
    }

    pub(crate) fn read_u32(&self, ptr: Ptr) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.read_array(ptr)?))
    }

    pub(crate) fn read_u64(&self, ptr: Ptr) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.read_array(ptr)?))
    }

    pub(crate) fn write_u8(&mut self, ptr: Ptr, v: u8) -> Result<(), Errno> {
        self.write_bytes(ptr, &[v])
    }

    pub(crate) fn write_u16(&mut self, ptr: Ptr, v: u16) -> Result<(), Errno> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    pub(crate) fn write_u32(&mut self, ptr: Ptr, v: u32) -> Result<(), Errno> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    pub(crate) fn write_u64(&mut self, ptr: Ptr, v: u64) -> Result<(), Errno> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Reads a guest string (`ptr`, `len`); invalid UTF-8 is `ILSEQ`.
    pub(crate) fn read_str(&self, ptr: Ptr, len: u32) -> Result<String, Errno> {
        let bytes = self.slice(ptr, len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Errno::ILSEQ)
    }

    /// Every buffer of an array of `count` `ciovec` records, in order (each
    /// bounds-checked).
    pub(crate) fn iovecs(&self, iovs: Ptr, count: u32) -> Result<Vec<&[u8]>, Errno> {
        self.check(iovs, u64::from(count) * 8)?;
        (0..count)
            .map(|i| {
                let rec = iovs + i * 8;
                self.slice(self.read_u32(rec)?, self.read_u32(rec + 4)?)
            })
            .collect()
    }

    /// Reads an array of `count` (`ciovec`/`iovec`) records and returns the
    /// first one with a non-zero length as `(buf, len)`, or `(0, 0)` if all
    /// are empty. (wasmtime reads and writes only that first non-empty buffer
    /// per call; wasi-libc loops over the rest.)
    pub(crate) fn first_nonempty_iovec(&self, iovs: Ptr, count: u32) -> Result<(Ptr, u32), Errno> {
        self.check(iovs, u64::from(count) * 8)?;
        for i in 0..count {
            let rec = iovs + i * 8;
            let buf = self.read_u32(rec)?;
            let len = self.read_u32(rec + 4)?;
            if len != 0 {
                self.check(buf, u64::from(len))?;
                return Ok((buf, len));
            }
        }
        Ok((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let mut v = vec![0u8; 16];
        let mut m = Mem::new(&mut v);
        assert_eq!(m.write_u64(8, 7), Ok(()));
        assert_eq!(m.write_u64(9, 7), Err(Errno::FAULT));
        assert_eq!(m.read_u32(u32::MAX), Err(Errno::FAULT));
        assert_eq!(m.range(16, 0), Ok(16..16));
        assert_eq!(m.range(17, 0), Err(Errno::FAULT));
        assert_eq!(m.read_u64(8), Ok(7));
    }
}
