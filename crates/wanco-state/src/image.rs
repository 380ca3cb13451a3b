//! Memory image files: a linear memory as raw pages, what a pre-copy
//! migration's destination builds from the rounds it receives while the
//! program still runs (`wanco agent`), and a restore maps copy-on-write
//! (`PROG --restore FINAL --memory-image FILE`) instead of decompressing
//! and copying the whole memory after the program stopped.
//!
//! # File layout (all integers little-endian)
//!
//! | offset               | size   | field                                              |
//! |----------------------|--------|----------------------------------------------------|
//! | 0                    | 8      | magic `WMIMG\0\r\n`                                |
//! | 8                    | 4      | image format version (`u32`, 1)                    |
//! | 12                   | 4      | pages covered `N` (`u32`): pages 0..N are in the file |
//! | 16                   | 32     | module hash: SHA-256 of the Wasm bytes             |
//! | 48                   | 32     | snapshot id: the snapshot whose memory this is ([`crate::snapshot::snapshot_id`]) |
//! | 80                   | 32     | SHA-256 of bytes `0 .. 80`                         |
//! | 112                  | …      | zero up to [`DATA_OFFSET`]                         |
//! | `DATA_OFFSET + p·64 KiB` | 65536 | Wasm page `p` (`p < N`), raw; a hole reads as zero |
//!
//! Pages at or beyond `N` are zero. The pages start at 64 KiB so that a
//! page's offset is a multiple of every OS page size (4, 16, 64 KiB) and
//! the pages can be mapped. The header is written last, once the image is
//! complete ([`ImageWriter::finish`]): a file whose header does not check
//! is not an image. Only the header has a checksum: a restore maps the
//! pages without reading them (that is the point); each page was checked
//! when it arrived (it decompressed to exactly one page, over an
//! authenticated connection) and the file lives in the agent's private
//! run directory.

use crate::snapshot::{SnapshotError, PAGE_SIZE};
use sha2::{Digest, Sha256};
use std::os::unix::fs::FileExt;

/// The 8 magic bytes every memory image starts with.
pub const IMAGE_MAGIC: [u8; 8] = *b"WMIMG\0\r\n";
/// The image format version this code writes and reads.
pub const IMAGE_VERSION: u32 = 1;
/// Length of the header, checksum included.
pub const IMAGE_HEADER_LEN: usize = 112;
/// Where page 0 starts.
pub const DATA_OFFSET: u64 = PAGE_SIZE as u64;

/// The header of a memory image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Pages 0..`pages` are in the file; the rest are zero.
    pub pages: u32,
    /// SHA-256 of the module's Wasm bytes.
    pub module_hash: [u8; 32],
    /// The id of the snapshot whose memory the image holds: an incremental
    /// snapshot restored on top of it must name it as its parent.
    pub snapshot: [u8; 32],
}

/// Where page `page` starts in an image file.
pub fn page_offset(page: u32) -> u64 {
    DATA_OFFSET + u64::from(page) * PAGE_SIZE as u64
}

impl ImageHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; IMAGE_HEADER_LEN] {
        let mut b = [0u8; IMAGE_HEADER_LEN];
        b[..8].copy_from_slice(&IMAGE_MAGIC);
        b[8..12].copy_from_slice(&IMAGE_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.pages.to_le_bytes());
        b[16..48].copy_from_slice(&self.module_hash);
        b[48..80].copy_from_slice(&self.snapshot);
        let sum: [u8; 32] = Sha256::digest(&b[..80]).into();
        b[80..112].copy_from_slice(&sum);
        b
    }

    /// Read a header (the first [`IMAGE_HEADER_LEN`] bytes of the file,
    /// or fewer if the file is shorter). Errors carry the byte offset.
    pub fn decode(b: &[u8]) -> Result<ImageHeader, SnapshotError> {
        let n = b.len().min(8);
        if b[..n] != IMAGE_MAGIC[..n] || b.len() < 8 {
            return Err(SnapshotError::at(0, "not a wanco memory image: expected the magic bytes `WMIMG\\0\\r\\n`"));
        }
        if b.len() < IMAGE_HEADER_LEN {
            return Err(SnapshotError::at(
                b.len() as u64,
                format!("memory image is truncated: expected a {IMAGE_HEADER_LEN}-byte header, the file has {} bytes", b.len()),
            ));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let version = u32_at(8);
        if version != IMAGE_VERSION {
            return Err(SnapshotError::at(8, format!("memory image version {version} is not supported (this wanco reads {IMAGE_VERSION})")));
        }
        let sum: [u8; 32] = Sha256::digest(&b[..80]).into();
        if sum[..] != b[80..112] {
            return Err(SnapshotError::at(80, "memory image header checksum mismatch: the file is damaged or was not finished"));
        }
        let pages = u32_at(12);
        if pages > crate::snapshot::MAX_PAGES {
            return Err(SnapshotError::at(12, format!("memory image covers {pages} pages, expected at most {}", crate::snapshot::MAX_PAGES)));
        }
        let mut module_hash = [0u8; 32];
        module_hash.copy_from_slice(&b[16..48]);
        let mut snapshot = [0u8; 32];
        snapshot.copy_from_slice(&b[48..80]);
        Ok(ImageHeader { pages, module_hash, snapshot })
    }

    /// Why the image cannot be the memory under an incremental snapshot of
    /// module `module_hash` with parent `parent` and a memory of
    /// `memory_pages` pages, if it cannot.
    pub fn check_for(&self, module_hash: &[u8; 32], parent: &[u8; 32], memory_pages: u32) -> Result<(), String> {
        let short = |h: &[u8; 32]| h[..8].iter().map(|b| format!("{b:02x}")).collect::<String>();
        if &self.module_hash != module_hash {
            return Err(format!("the memory image is of module {}…, the snapshot of module {}…", short(&self.module_hash), short(module_hash)));
        }
        if &self.snapshot != parent {
            return Err(format!(
                "the memory image holds the memory of snapshot {}…, but the snapshot continues snapshot {}…: a wrong image",
                short(&self.snapshot),
                short(parent)
            ));
        }
        if self.pages > memory_pages {
            return Err(format!("the memory image covers {} pages, the snapshot's memory has only {memory_pages}", self.pages));
        }
        Ok(())
    }
}

/// Builds a memory image from the links of a snapshot chain (pre-copy
/// rounds), page by page as they arrive: each page is decompressed and
/// written at its place in the file. The header is written by
/// [`ImageWriter::finish`].
pub struct ImageWriter {
    file: std::fs::File,
    module_hash: [u8; 32],
    last: Option<[u8; 32]>,
    pages: u32,
    buf: Vec<u8>,
    written: u64,
}

impl ImageWriter {
    /// Start an image in `file` (created empty) for module `module_hash`.
    pub fn new(file: std::fs::File, module_hash: [u8; 32]) -> ImageWriter {
        ImageWriter { file, module_hash, last: None, pages: 0, buf: vec![0u8; PAGE_SIZE], written: 0 }
    }

    /// The id of the last link begun, if any.
    pub fn last_id(&self) -> Option<[u8; 32]> {
        self.last
    }

    /// Bytes of pages written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Start a link: snapshot `id` whose parent is `parent` (`None`: a full
    /// one, which replaces everything held). Refused if `parent` is not the
    /// last link begun.
    pub fn begin(&mut self, id: [u8; 32], parent: Option<[u8; 32]>) -> Result<(), String> {
        let short = |h: &[u8; 32]| h[..8].iter().map(|b| format!("{b:02x}")).collect::<String>();
        match (parent, self.last) {
            (None, _) if self.last.is_none() => {
                // The first link, into the new (empty) file. Not truncated:
                // on ext4 a file truncated to zero and rewritten is flushed
                // whole when closed (`auto_da_alloc`), ~0.3 s for 1 GiB,
                // which would fall into the migration's downtime.
            }
            (None, _) => {
                // A full link after others: the pages before are all replaced.
                self.file.set_len(0).map_err(|e| format!("cannot truncate the memory image: {e}"))?;
                self.pages = 0;
            }
            (Some(p), Some(l)) if p == l => {}
            (Some(p), Some(l)) => {
                return Err(format!("its parent is {}…, but the last snapshot received is {}…: a foreign parent", short(&p), short(&l)))
            }
            (Some(p), None) => return Err(format!("it is incremental: its parent {}… was never received", short(&p))),
        }
        self.last = Some(id);
        Ok(())
    }

    /// Write one page of the current link (its LZ4 bytes as stored). A page
    /// that does not decompress to exactly one page is refused.
    pub fn apply(&mut self, page: u32, lz4: &[u8]) -> Result<(), String> {
        if self.last.is_none() {
            return Err(format!("page {page} arrived before any snapshot began"));
        }
        if page >= crate::snapshot::MAX_PAGES {
            return Err(format!("page {page} is beyond any 32-bit memory"));
        }
        match lz4_flex::block::decompress_into(lz4, &mut self.buf) {
            Ok(PAGE_SIZE) => {}
            _ => return Err(format!("page {page} does not decompress to {PAGE_SIZE} bytes")),
        }
        if page >= self.pages && self.buf.iter().all(|&b| b == 0) {
            // Beyond the end: a hole already reads as zero.
            return Ok(());
        }
        self.file.write_all_at(&self.buf, page_offset(page)).map_err(|e| format!("cannot write page {page} of the memory image: {e}"))?;
        self.pages = self.pages.max(page + 1);
        self.written += PAGE_SIZE as u64;
        Ok(())
    }

    /// Write the header (the last link begun is the image's snapshot) and
    /// make the file cover every page. Not synced to disk: the restore that
    /// maps it runs on this machine, from the page cache.
    pub fn finish(self) -> Result<ImageHeader, String> {
        let Some(snapshot) = self.last else { return Err("no snapshot was received for the memory image".into()) };
        let h = ImageHeader { pages: self.pages, module_hash: self.module_hash, snapshot };
        self.file.set_len(page_offset(self.pages)).map_err(|e| format!("cannot size the memory image: {e}"))?;
        self.file.write_all_at(&h.encode(), 0).map_err(|e| format!("cannot write the memory image header: {e}"))?;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(byte: u8) -> Vec<u8> {
        lz4_flex::block::compress(&vec![byte; PAGE_SIZE])
    }

    #[test]
    fn header_round_trip_and_damage() {
        let h = ImageHeader { pages: 7, module_hash: [1; 32], snapshot: [2; 32] };
        let b = h.encode();
        assert_eq!(ImageHeader::decode(&b).unwrap(), h);
        let mut bad = b;
        bad[50] ^= 1;
        assert!(ImageHeader::decode(&bad).unwrap_err().to_string().contains("checksum mismatch"));
        assert!(ImageHeader::decode(&b[..40]).unwrap_err().to_string().contains("truncated"));
        assert!(ImageHeader::decode(b"WSNAP\0\r\n").unwrap_err().to_string().contains("not a wanco memory image"));
        assert!(h.check_for(&[1; 32], &[2; 32], 7).is_ok());
        assert!(h.check_for(&[1; 32], &[3; 32], 7).unwrap_err().contains("wrong image"));
        assert!(h.check_for(&[9; 32], &[2; 32], 7).unwrap_err().contains("of module"));
        assert!(h.check_for(&[1; 32], &[2; 32], 6).unwrap_err().contains("covers 7 pages"));
    }

    #[test]
    fn writer_applies_links_in_order() {
        let dir = std::env::temp_dir().join(format!("wanco-image-test-{}", std::process::id()));
        let f = std::fs::File::options().read(true).write(true).create(true).truncate(true).open(&dir).unwrap();
        let mut w = ImageWriter::new(f.try_clone().unwrap(), [5; 32]);
        assert!(w.apply(0, &page(1)).is_err(), "a page before any link");
        w.begin([1; 32], None).unwrap();
        w.apply(0, &page(1)).unwrap();
        w.apply(3, &page(2)).unwrap();
        assert!(w.begin([3; 32], Some([9; 32])).unwrap_err().contains("foreign parent"));
        w.begin([2; 32], Some([1; 32])).unwrap();
        w.apply(3, &page(0)).unwrap(); // written back to zero
        w.apply(9, &page(0)).unwrap(); // zero beyond the end: nothing
        assert!(w.apply(1, &page(1)[..10]).is_err());
        let h = w.finish().unwrap();
        assert_eq!(h, ImageHeader { pages: 4, module_hash: [5; 32], snapshot: [2; 32] });
        let bytes = std::fs::read(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(bytes.len() as u64, page_offset(4));
        assert_eq!(ImageHeader::decode(&bytes).unwrap(), h);
        let at = |p: u32| &bytes[page_offset(p) as usize..page_offset(p) as usize + PAGE_SIZE];
        assert!(at(0).iter().all(|&b| b == 1));
        assert!(at(1).iter().chain(at(2)).chain(at(3)).all(|&b| b == 0));
    }
}
