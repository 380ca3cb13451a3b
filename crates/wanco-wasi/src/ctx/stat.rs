//! Preview1 `filestat` and `filetype` values, as wasmtime reports them.

use super::*;

/// wasmtime reports `ino` as a 64-bit hash of `(dev, ino)` and `dev` as 1.
pub(super) fn ino_hash(dev: u64, ino: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u64(dev);
    h.write_u64(ino);
    h.finish()
}

pub(super) fn filetype_of(ft: std::fs::FileType) -> u8 {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        FILETYPE_DIRECTORY
    } else if ft.is_symlink() {
        FILETYPE_SYMBOLIC_LINK
    } else if ft.is_block_device() {
        FILETYPE_BLOCK_DEVICE
    } else if ft.is_char_device() {
        FILETYPE_CHARACTER_DEVICE
    } else if ft.is_file() {
        FILETYPE_REGULAR_FILE
    } else {
        FILETYPE_UNKNOWN
    }
}

pub(super) fn filetype_of_mode(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FILETYPE_DIRECTORY,
        libc::S_IFLNK => FILETYPE_SYMBOLIC_LINK,
        libc::S_IFBLK => FILETYPE_BLOCK_DEVICE,
        libc::S_IFCHR => FILETYPE_CHARACTER_DEVICE,
        libc::S_IFREG => FILETYPE_REGULAR_FILE,
        _ => FILETYPE_UNKNOWN,
    }
}

pub(super) fn nanos(t: std::io::Result<SystemTime>) -> u64 {
    match t.map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        _ => 0,
    }
}

/// A preview1 `filestat`.
pub(super) struct Filestat {
    dev: u64,
    ino: u64,
    filetype: u8,
    nlink: u64,
    size: u64,
    atim: u64,
    mtim: u64,
    ctim: u64,
}

impl Filestat {
    pub(super) fn of(meta: &std::fs::Metadata) -> Filestat {
        Filestat {
            dev: 1,
            ino: ino_hash(meta.dev(), meta.ino()),
            filetype: filetype_of(meta.file_type()),
            nlink: meta.nlink(),
            size: meta.size(),
            atim: nanos(meta.accessed()),
            mtim: nanos(meta.modified()),
            // wasmtime reports the birth time here (0 where unknown).
            ctim: nanos(meta.created()),
        }
    }

    pub(super) fn stdio(filetype: u8) -> Filestat {
        Filestat {
            dev: 0,
            ino: 0,
            filetype,
            nlink: 0,
            size: 0,
            atim: 0,
            mtim: 0,
            ctim: 0,
        }
    }

    pub(super) fn write(&self, m: &mut Mem<'_>, p: Ptr) -> Result<(), Errno> {
        m.check(p, 64)?;
        m.write_u64(p, self.dev)?;
        m.write_u64(p + 8, self.ino)?;
        m.write_u8(p + 16, self.filetype)?;
        m.write_u64(p + 24, self.nlink)?;
        m.write_u64(p + 32, self.size)?;
        m.write_u64(p + 40, self.atim)?;
        m.write_u64(p + 48, self.mtim)?;
        m.write_u64(p + 56, self.ctim)
    }
}

pub(super) fn stdio_filetype(host_fd: i32) -> u8 {
    if sys::isatty(host_fd) {
        FILETYPE_CHARACTER_DEVICE
    } else {
        FILETYPE_UNKNOWN
    }
}

pub(super) fn stdio_host_fd(kind: FdKind) -> i32 {
    match kind {
        FdKind::Stdin => 0,
        FdKind::Stdout => 1,
        _ => 2,
    }
}

/// `fstflags` -> (atime, mtime) updates; both "set" and "now" is `INVAL`.
pub(super) fn time_specs(atim: u64, mtim: u64, fst: u32) -> Result<(TimeSpec, TimeSpec), Errno> {
    if fst & !0xf != 0 {
        return Err(Errno::INVAL);
    }
    let one = |set: u32, now: u32, t: u64| {
        if fst & set != 0 && fst & now != 0 {
            Err(Errno::INVAL)
        } else if fst & set != 0 {
            Ok(TimeSpec::At(t))
        } else if fst & now != 0 {
            Ok(TimeSpec::Now)
        } else {
            Ok(TimeSpec::Omit)
        }
    };
    Ok((
        one(FST_ATIM, FST_ATIM_NOW, atim)?,
        one(FST_MTIM, FST_MTIM_NOW, mtim)?,
    ))
}
