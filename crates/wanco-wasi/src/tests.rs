//! Tests that drive [`WasiCtx::call`] with a `Vec<u8>` as guest memory.
//!
//! Expected errno values and layouts were observed with `wasmtime run`
//! (wasmtime 49) on the same operations.

use super::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use WasiFunc as F;

const MEM: usize = 64 * 1024;
// Scratch areas in guest memory.
const OUT: u32 = 0x100; // results
const PATH: u32 = 0x1000; // path strings
const PATH2: u32 = 0x1800;
const IOV: u32 = 0x2000; // iovec arrays
const DATA: u32 = 0x3000; // I/O buffers

struct Guest {
    ctx: WasiCtx,
    mem: Vec<u8>,
}

impl Guest {
    fn new(root: &Path) -> Guest {
        let cfg = WasiConfig {
            args: vec!["prog".into(), "a b".into(), "".into()],
            env: vec![("HOME".into(), "/x".into()), ("EMPTY".into(), "".into())],
            preopens: vec![Preopen {
                host: root.to_str().unwrap().into(),
                guest: "/data".into(),
            }],
        };
        Guest {
            ctx: WasiCtx::new(cfg).unwrap(),
            mem: vec![0; MEM],
        }
    }

    fn restored(state: &WasiState) -> Guest {
        Guest {
            ctx: WasiCtx::from_state(state).unwrap(),
            mem: vec![0; MEM],
        }
    }

    fn call(&mut self, f: WasiFunc, args: &[u64]) -> u32 {
        self.ctx.call(f, &mut self.mem, args).expect("no exit")
    }

    fn put(&mut self, at: u32, bytes: &[u8]) {
        self.mem[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }

    fn get(&self, at: u32, len: usize) -> &[u8] {
        &self.mem[at as usize..at as usize + len]
    }

    fn u32(&self, at: u32) -> u32 {
        u32::from_le_bytes(self.get(at, 4).try_into().unwrap())
    }

    fn u64(&self, at: u32) -> u64 {
        u64::from_le_bytes(self.get(at, 8).try_into().unwrap())
    }

    /// `path_open(dirfd, FOLLOW, path, oflags, rights, rights, fdflags)`.
    fn open_with(
        &mut self,
        dirfd: u32,
        path: &str,
        oflags: u64,
        rights: u64,
        fdflags: u64,
        follow: bool,
    ) -> Result<u32, u32> {
        self.put(PATH, path.as_bytes());
        let look = u64::from(follow);
        let e = self.call(
            F::PathOpen,
            &[
                dirfd.into(),
                look,
                PATH.into(),
                path.len() as u64,
                oflags,
                rights,
                rights,
                fdflags,
                OUT.into(),
            ],
        );
        if e == 0 {
            Ok(self.u32(OUT))
        } else {
            Err(e)
        }
    }

    fn open(&mut self, path: &str, oflags: u64, rights: u64) -> Result<u32, u32> {
        self.open_with(3, path, oflags, rights, 0, true)
    }

    fn write(&mut self, fd: u32, data: &[u8]) -> (u32, u32) {
        self.put(DATA, data);
        self.put(IOV, &DATA.to_le_bytes());
        self.put(IOV + 4, &(data.len() as u32).to_le_bytes());
        let e = self.call(F::FdWrite, &[fd.into(), IOV.into(), 1, OUT.into()]);
        (e, self.u32(OUT))
    }

    fn read(&mut self, fd: u32, len: u32) -> Result<Vec<u8>, u32> {
        self.put(IOV, &DATA.to_le_bytes());
        self.put(IOV + 4, &len.to_le_bytes());
        match self.call(F::FdRead, &[fd.into(), IOV.into(), 1, OUT.into()]) {
            0 => {
                let n = self.u32(OUT) as usize;
                Ok(self.get(DATA, n).to_vec())
            }
            e => Err(e),
        }
    }

    fn seek(&mut self, fd: u32, offset: i64, whence: u64) -> Result<u64, u32> {
        match self.call(F::FdSeek, &[fd.into(), offset as u64, whence, OUT.into()]) {
            0 => Ok(self.u64(OUT)),
            e => Err(e),
        }
    }

    fn path_call(&mut self, f: WasiFunc, path: &str) -> u32 {
        self.put(PATH, path.as_bytes());
        self.call(f, &[3, PATH.into(), path.len() as u64])
    }
}

const R: u64 = rights::FD_READ;
const W: u64 = rights::FD_WRITE;
const RW: u64 = R | W;
const CREAT: u64 = 1;
const DIRECTORY: u64 = 2;
const EXCL: u64 = 4;
const TRUNC: u64 = 8;

fn e(x: Errno) -> u32 {
    u32::from(x.0)
}

/// A preopen `root/` next to a file that must stay unreachable.
fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::create_dir_all(root.join("rd/cdir")).unwrap();
    fs::write(root.join("f.txt"), b"hello\n").unwrap();
    fs::write(root.join("sub/g.txt"), b"g\n").unwrap();
    fs::write(root.join("rd/a"), b"a\n").unwrap();
    fs::write(root.join("rd/bbbbbbbbbb"), b"bb\n").unwrap();
    fs::write(t.path().join("secret.txt"), b"secret").unwrap();
    symlink("../secret.txt", root.join("lout")).unwrap();
    symlink("/etc/passwd", root.join("labs")).unwrap();
    symlink("f.txt", root.join("lrel")).unwrap();
    symlink("../../secret.txt", root.join("sub/lesc")).unwrap();
    (t, root)
}

#[test]
fn args_and_environ_layout() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    assert_eq!(g.call(F::ArgsSizesGet, &[OUT.into(), (OUT + 4).into()]), 0);
    assert_eq!((g.u32(OUT), g.u32(OUT + 4)), (3, 5 + 4 + 1));
    assert_eq!(g.call(F::ArgsGet, &[0x400, 0x500]), 0);
    assert_eq!(
        (g.u32(0x400), g.u32(0x404), g.u32(0x408)),
        (0x500, 0x505, 0x509)
    );
    assert_eq!(g.get(0x500, 10), b"prog\0a b\0\0");

    assert_eq!(
        g.call(F::EnvironSizesGet, &[OUT.into(), (OUT + 4).into()]),
        0
    );
    assert_eq!((g.u32(OUT), g.u32(OUT + 4)), (2, 8 + 7));
    assert_eq!(g.call(F::EnvironGet, &[0x600, 0x700]), 0);
    assert_eq!((g.u32(0x600), g.u32(0x604)), (0x700, 0x708));
    assert_eq!(g.get(0x700, 15), b"HOME=/x\0EMPTY=\0");
}

#[test]
fn write_seek_tell_read_back() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let fd = g.open("out.txt", CREAT | TRUNC, RW).unwrap();
    assert_eq!(fd, 4);
    assert_eq!(g.write(fd, b"hello world"), (0, 11));
    assert_eq!(g.call(F::FdTell, &[fd.into(), OUT.into()]), 0);
    assert_eq!(g.u64(OUT), 11);
    assert_eq!(g.seek(fd, 6, 0), Ok(6));
    assert_eq!(g.read(fd, 100).unwrap(), b"world");
    assert_eq!(g.read(fd, 100).unwrap(), b"");
    assert_eq!(g.seek(fd, -5, 2), Ok(6));
    assert_eq!(g.seek(fd, -1, 1), Ok(5));
    assert_eq!(g.seek(fd, -100, 1), Err(e(Errno::INVAL)));
    assert_eq!(g.seek(fd, -1, 0), Err(e(Errno::INVAL)));
    assert_eq!(g.seek(fd, 0, 7), Err(e(Errno::INVAL)));
    assert_eq!(g.seek(1, 0, 0), Err(e(Errno::SPIPE)));
    assert_eq!(g.seek(3, 0, 0), Err(e(Errno::BADF)));
    // fd_pread does not move the offset.
    g.put(IOV, &DATA.to_le_bytes());
    g.put(IOV + 4, &3u32.to_le_bytes());
    assert_eq!(
        g.call(F::FdPread, &[fd.into(), IOV.into(), 1, 0, OUT.into()]),
        0
    );
    assert_eq!(g.get(DATA, 3), b"hel");
    assert_eq!(g.seek(fd, 0, 1), Ok(5));
    assert_eq!(fs::read(root.join("out.txt")).unwrap(), b"hello world");

    // Only the first non-empty iovec is written, like wasmtime.
    g.put(DATA, b"XYZ");
    let iovs: Vec<u8> = [0u32, 0, DATA, 1, DATA + 1, 2]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    g.put(IOV, &iovs);
    assert_eq!(
        g.call(F::FdWrite, &[fd.into(), IOV.into(), 3, OUT.into()]),
        0
    );
    assert_eq!(g.u32(OUT), 1);

    // Append mode writes at the end whatever the offset, then reports it.
    let a = g.open_with(3, "out.txt", 0, W, 1, true).unwrap();
    assert_eq!(g.write(a, b"!"), (0, 1));
    assert_eq!(g.seek(a, 0, 1), Ok(12));
    assert_eq!(fs::read(root.join("out.txt")).unwrap(), b"helloXworld!");

    // Reading a write-only file or writing a read-only one: BADF (from the OS).
    assert_eq!(g.read(a, 1), Err(e(Errno::BADF)));
    let ro = g.open("f.txt", 0, R).unwrap();
    assert_eq!(g.write(ro, b"x").0, e(Errno::BADF));
}

#[test]
fn open_refuses_escapes() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    for p in [
        "../secret.txt",
        "/etc/passwd",
        "..",
        "sub/../../secret.txt",
        "lout",
        "labs",
        "sub/lesc",
    ] {
        assert_eq!(g.open(p, 0, R), Err(e(Errno::PERM)), "{p}");
    }
    // Without following, a final symlink is ELOOP (as wasmtime).
    assert_eq!(g.open_with(3, "lout", 0, R, 0, false), Err(e(Errno::LOOP)));
    // Creating through a link that points outside is refused too.
    assert_eq!(g.open("labs", CREAT, RW), Err(e(Errno::PERM)));
    // Links inside the preopen work.
    let fd = g.open("lrel", 0, R).unwrap();
    assert_eq!(g.read(fd, 100).unwrap(), b"hello\n");
    // Other path calls are sandboxed as well.
    assert_eq!(g.path_call(F::PathCreateDirectory, "../up"), e(Errno::PERM));
    assert_eq!(
        g.path_call(F::PathUnlinkFile, "../secret.txt"),
        e(Errno::PERM)
    );
    g.put(PATH2, b"/etc/passwd");
    g.put(PATH, b"newlink");
    assert_eq!(
        g.call(F::PathSymlink, &[PATH2.into(), 11, 3, PATH.into(), 7]),
        e(Errno::PERM)
    );
    g.put(PATH, b"labs");
    assert_eq!(
        g.call(
            F::PathReadlink,
            &[3, PATH.into(), 4, DATA.into(), 64, OUT.into()]
        ),
        e(Errno::PERM)
    );
    g.put(PATH, b"lout");
    assert_eq!(
        g.call(F::PathFilestatGet, &[3, 1, PATH.into(), 4, DATA.into()]),
        e(Errno::PERM)
    );
    assert!(root.parent().unwrap().join("secret.txt").exists());
    assert!(!root.parent().unwrap().join("up").exists());
}

#[test]
fn open_errors_like_wasmtime() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    assert_eq!(g.open("nonexist", 0, R), Err(e(Errno::NOENT)));
    assert_eq!(g.open("", 0, R), Err(e(Errno::NOENT)));
    assert_eq!(g.open("f.txt/", 0, R), Err(e(Errno::NOTDIR)));
    assert_eq!(g.open("f.txt", DIRECTORY, R), Err(e(Errno::NOTDIR)));
    assert_eq!(g.open("sub", DIRECTORY | CREAT, R), Err(e(Errno::INVAL)));
    assert_eq!(g.open("sub", 0, RW), Err(e(Errno::ISDIR)));
    assert_eq!(g.open("nonexist/", CREAT, RW), Err(e(Errno::ISDIR)));
    assert_eq!(g.open("f.txt", CREAT | EXCL, RW), Err(e(Errno::EXIST)));
    assert_eq!(
        g.open_with(3, "f.txt", 0, R, 16, true),
        Err(e(Errno::NOTSUP))
    );
    let f = g.open("f.txt", 0, R).unwrap();
    assert_eq!(g.open_with(f, "x", 0, R, 0, true), Err(e(Errno::NOTDIR)));
    assert_eq!(g.open_with(1, "x", 0, R, 0, true), Err(e(Errno::BADF)));
    // Opening a directory gives a directory fd usable for further lookups.
    let d = g.open("sub", DIRECTORY, R).unwrap();
    let gfd = g.open_with(d, "g.txt", 0, R, 0, true).unwrap();
    assert_eq!(g.read(gfd, 10).unwrap(), b"g\n");
}

#[test]
fn fdstat_and_prestat() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let fdstat = |g: &mut Guest, fd: u32| {
        let r = g.call(F::FdFdstatGet, &[fd.into(), OUT.into()]);
        (
            r,
            g.get(OUT, 1)[0],
            u16::from_le_bytes(g.get(OUT + 2, 2).try_into().unwrap()),
            g.u64(OUT + 8),
            g.u64(OUT + 16),
        )
    };
    assert_eq!(fdstat(&mut g, 3), (0, 3, 0, 0x7b7fe00, 0xff7ffff));
    let ro = g.open("f.txt", 0, 0).unwrap();
    assert_eq!(fdstat(&mut g, ro), (0, 4, 0, 0x3fffffbf, 0x3fffffbf));
    let wo = g.open("f.txt", 0, W).unwrap();
    assert_eq!(fdstat(&mut g, wo), (0, 4, 0, 0x3fffbffd, 0x3fffbffd));
    let ap = g.open_with(3, "new.txt", CREAT, R, 1 | 4, true).unwrap();
    assert_eq!(fdstat(&mut g, ap), (0, 4, 5, 0x3fffffff, 0x3fffffff));
    let d = g.open("rd", DIRECTORY, R).unwrap();
    assert_eq!(fdstat(&mut g, d), (0, 3, 0, 0x3fb7ffbb, 0x3fb7ffbb));
    assert_eq!(fdstat(&mut g, 99).0, e(Errno::BADF));
    let r = fdstat(&mut g, 0);
    assert_eq!((r.0, r.3, r.4), (0, 2, 2));

    assert_eq!(g.call(F::FdFdstatSetFlags, &[ap.into(), 0]), 0);
    assert_eq!(fdstat(&mut g, ap).2, 0);
    assert_eq!(
        g.call(F::FdFdstatSetFlags, &[ap.into(), 16]),
        e(Errno::INVAL)
    );
    assert_eq!(g.call(F::FdFdstatSetFlags, &[3, 0]), e(Errno::BADF));
    assert_eq!(
        g.call(F::FdFdstatSetRights, &[ap.into(), 0, 0]),
        e(Errno::NOTSUP)
    );

    assert_eq!(g.call(F::FdPrestatGet, &[3, OUT.into()]), 0);
    assert_eq!((g.get(OUT, 1)[0], g.u32(OUT + 4)), (0, 5));
    assert_eq!(g.call(F::FdPrestatDirName, &[3, DATA.into(), 5]), 0);
    assert_eq!(g.get(DATA, 5), b"/data");
    assert_eq!(
        g.call(F::FdPrestatDirName, &[3, DATA.into(), 4]),
        e(Errno::NAMETOOLONG)
    );
    assert_eq!(
        g.call(F::FdPrestatGet, &[d.into(), OUT.into()]),
        e(Errno::BADF)
    );
    assert_eq!(
        g.call(F::FdPrestatDirName, &[d.into(), DATA.into(), 5]),
        e(Errno::NOTDIR)
    );
    assert_eq!(g.call(F::FdPrestatGet, &[99, OUT.into()]), e(Errno::BADF));
}

#[test]
fn readdir_lists_and_truncates_like_wasmtime() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let d = g.open("rd", DIRECTORY, R).unwrap();
    let readdir = |g: &mut Guest, len: u32, cookie: u64| {
        g.mem[DATA as usize..DATA as usize + 512].fill(0xaa);
        assert_eq!(
            g.call(
                F::FdReaddir,
                &[d.into(), DATA.into(), len.into(), cookie, OUT.into()]
            ),
            0
        );
        g.u32(OUT)
    };
    let n = readdir(&mut g, 512, 0);
    // Parse the entries.
    let mut names = Vec::new();
    let mut at = DATA;
    while at < DATA + n {
        let next = g.u64(at);
        let namlen = g.u32(at + 16);
        let ty = g.get(at + 20, 1)[0];
        assert_eq!(g.get(at + 21, 3), [0, 0, 0]);
        let name = String::from_utf8(g.get(at + 24, namlen as usize).to_vec()).unwrap();
        assert_eq!(next, names.len() as u64 + 1);
        names.push((name, ty));
        at += 24 + namlen;
    }
    assert_eq!(at, DATA + n);
    assert_eq!(&names[..2], &[(".".to_string(), 3), ("..".to_string(), 3)]);
    let mut rest = names[2..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        vec![
            ("a".to_string(), 4),
            ("bbbbbbbbbb".to_string(), 4),
            ("cdir".to_string(), 3)
        ]
    );
    assert_eq!(n, 24 * 5 + 1 + 2 + 1 + 10 + 4);
    // "." and ".." carry the directory's own inode hash.
    assert_eq!(g.u64(DATA + 8), g.u64(DATA + 24 + 1 + 8));

    // A short buffer is filled completely (the last entry cut off).
    assert_eq!(readdir(&mut g, 30, 0), 30);
    assert_eq!(g.get(DATA + 24, 6), [b'.', 2, 0, 0, 0, 0]);
    assert_eq!(g.get(DATA + 30, 1), [0xaa]);
    assert_eq!(readdir(&mut g, 3, 0), 3);
    // Cookies index the entries.
    assert_eq!(readdir(&mut g, 512, 2), n - 24 - 1 - 24 - 2);
    assert_eq!(readdir(&mut g, 512, 5), 0);
    assert_eq!(readdir(&mut g, 512, 100), 0);
    let f = g.open("f.txt", 0, R).unwrap();
    assert_eq!(
        g.call(F::FdReaddir, &[f.into(), DATA.into(), 512, 0, OUT.into()]),
        e(Errno::BADF)
    );
}

#[test]
fn filestat_reports_size_and_type() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let fd = g.open("f.txt", 0, RW).unwrap();
    assert_eq!(g.call(F::FdFilestatGet, &[fd.into(), OUT.into()]), 0);
    assert_eq!(
        (
            g.u64(OUT),
            g.get(OUT + 16, 1)[0],
            g.u64(OUT + 24),
            g.u64(OUT + 32)
        ),
        (1, 4, 1, 6)
    );
    let ino = g.u64(OUT + 8);
    g.put(PATH, b"lrel");
    assert_eq!(
        g.call(F::PathFilestatGet, &[3, 1, PATH.into(), 4, OUT.into()]),
        0
    );
    assert_eq!(
        (g.get(OUT + 16, 1)[0], g.u64(OUT + 32), g.u64(OUT + 8)),
        (4, 6, ino)
    );
    assert_eq!(
        g.call(F::PathFilestatGet, &[3, 0, PATH.into(), 4, OUT.into()]),
        0
    );
    assert_eq!(g.get(OUT + 16, 1)[0], 7);
    // Grow, then set times.
    assert_eq!(g.call(F::FdFilestatSetSize, &[fd.into(), 100]), 0);
    assert_eq!(
        g.call(
            F::FdFilestatSetTimes,
            &[fd.into(), 1_000_000_000, 2_000_000_000, 1 | 4]
        ),
        0
    );
    assert_eq!(g.call(F::FdFilestatGet, &[fd.into(), OUT.into()]), 0);
    assert_eq!(
        (g.u64(OUT + 32), g.u64(OUT + 40), g.u64(OUT + 48)),
        (100, 1_000_000_000, 2_000_000_000)
    );
    assert_eq!(
        g.call(F::FdFilestatSetTimes, &[fd.into(), 0, 0, 1 | 2]),
        e(Errno::INVAL)
    );
    // Stdio has an all-zero filestat.
    g.put(OUT, &[0xff; 64]);
    assert_eq!(g.call(F::FdFilestatGet, &[1, OUT.into()]), 0);
    assert_eq!(g.u64(OUT), 0);
    assert_eq!(g.u64(OUT + 32), 0);
}

#[test]
fn path_operations() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    assert_eq!(g.path_call(F::PathCreateDirectory, "newdir/"), 0);
    assert!(root.join("newdir").is_dir());
    assert_eq!(g.path_call(F::PathCreateDirectory, "sub"), e(Errno::EXIST));
    assert_eq!(
        g.path_call(F::PathRemoveDirectory, "sub"),
        e(Errno::NOTEMPTY)
    );
    assert_eq!(
        g.path_call(F::PathRemoveDirectory, "f.txt"),
        e(Errno::NOTDIR)
    );
    assert_eq!(
        g.path_call(F::PathRemoveDirectory, "newdir/"),
        e(Errno::INVAL)
    );
    assert_eq!(g.path_call(F::PathRemoveDirectory, "newdir"), 0);
    assert_eq!(g.path_call(F::PathUnlinkFile, "sub"), e(Errno::ISDIR));
    assert_eq!(g.path_call(F::PathUnlinkFile, "nope"), e(Errno::NOENT));
    // symlink + readlink
    g.put(PATH2, b"f.txt");
    g.put(PATH, b"l2");
    assert_eq!(
        g.call(F::PathSymlink, &[PATH2.into(), 5, 3, PATH.into(), 2]),
        0
    );
    assert_eq!(
        g.call(
            F::PathReadlink,
            &[3, PATH.into(), 2, DATA.into(), 64, OUT.into()]
        ),
        0
    );
    assert_eq!((g.u32(OUT), g.get(DATA, 5)), (5, &b"f.txt"[..]));
    assert_eq!(
        g.call(
            F::PathReadlink,
            &[3, PATH.into(), 2, DATA.into(), 2, OUT.into()]
        ),
        0
    );
    assert_eq!(g.u32(OUT), 2);
    // link + rename
    g.put(PATH, b"f.txt");
    g.put(PATH2, b"hl");
    assert_eq!(
        g.call(F::PathLink, &[3, 0, PATH.into(), 5, 3, PATH2.into(), 2]),
        0
    );
    assert_eq!(
        g.call(F::PathLink, &[3, 1, PATH.into(), 5, 3, PATH2.into(), 2]),
        e(Errno::INVAL)
    );
    g.put(PATH, b"hl");
    g.put(PATH2, b"hl3");
    assert_eq!(
        g.call(F::PathRename, &[3, PATH.into(), 2, 3, PATH2.into(), 3]),
        0
    );
    assert_eq!(fs::read(root.join("hl3")).unwrap(), b"hello\n");
    g.put(PATH, b"hl3");
    g.put(PATH2, b"../hl3");
    assert_eq!(
        g.call(F::PathRename, &[3, PATH.into(), 3, 3, PATH2.into(), 6]),
        e(Errno::PERM)
    );
    g.put(PATH2, b"g/");
    assert_eq!(
        g.call(F::PathRename, &[3, PATH.into(), 3, 3, PATH2.into(), 2]),
        e(Errno::NOTDIR)
    );
    // Bad UTF-8 in a path.
    g.put(PATH, &[0xff, 0xfe]);
    assert_eq!(
        g.call(F::PathCreateDirectory, &[3, PATH.into(), 2]),
        e(Errno::ILSEQ)
    );
    // path_* on a file fd
    let f = g.open("f.txt", 0, R).unwrap();
    g.put(PATH, b"x");
    assert_eq!(
        g.call(F::PathCreateDirectory, &[f.into(), PATH.into(), 1]),
        e(Errno::BADF)
    );
}

#[test]
fn renumber_close_and_fd_order() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let a = g.open("f.txt", 0, R).unwrap();
    let b = g.open("sub/g.txt", 0, R).unwrap();
    let c = g.open("f.txt", 0, R).unwrap();
    assert_eq!((a, b, c), (4, 5, 6));
    // Renumbering needs an existing target, which it replaces.
    assert_eq!(g.call(F::FdRenumber, &[b.into(), 50]), e(Errno::BADF));
    assert_eq!(g.call(F::FdRenumber, &[99, a.into()]), e(Errno::BADF));
    assert_eq!(g.call(F::FdRenumber, &[b.into(), a.into()]), 0);
    assert_eq!(g.read(a, 10).unwrap(), b"g\n");
    assert_eq!(g.read(b, 10), Err(e(Errno::BADF)));
    assert_eq!(g.call(F::FdRenumber, &[a.into(), a.into()]), 0);
    // Freed numbers are reused highest first.
    assert_eq!(g.call(F::FdClose, &[c.into()]), 0);
    assert_eq!(g.call(F::FdClose, &[c.into()]), e(Errno::BADF));
    assert_eq!(g.open("f.txt", 0, R), Ok(6));
    assert_eq!(g.open("f.txt", 0, R), Ok(5));
    assert_eq!(g.open("f.txt", 0, R), Ok(7));
    // A file renumbered over stdout receives the guest's fd 1 writes.
    let out = g.open("out.txt", CREAT, W).unwrap();
    assert_eq!(g.call(F::FdRenumber, &[out.into(), 1]), 0);
    assert_eq!(g.write(1, b"to file"), (0, 7));
    assert_eq!(fs::read(root.join("out.txt")).unwrap(), b"to file");
    assert_eq!(g.open("f.txt", 0, R), Ok(8));
}

#[test]
fn state_round_trip_resumes_a_write_mid_file() {
    let (_t, root) = fixture();
    // Uninterrupted run.
    let mut g = Guest::new(&root);
    let fd = g.open("whole.txt", CREAT | TRUNC, W).unwrap();
    g.write(fd, b"first part, ");
    g.write(fd, b"second part");
    drop(g);

    // Interrupted run: checkpoint after the first write.
    let mut g = Guest::new(&root);
    let fd = g.open("split.txt", CREAT | TRUNC, W).unwrap();
    let ap = g.open_with(3, "log.txt", CREAT, W, 1, true).unwrap();
    let d = g.open("sub", DIRECTORY, R).unwrap();
    let r = g.open_with(d, "g.txt", 0, R, 0, true).unwrap();
    assert_eq!(g.read(r, 1).unwrap(), b"g");
    g.write(fd, b"first part, ");
    g.write(ap, b"one ");
    let spare = g.open("f.txt", 0, R).unwrap();
    g.call(F::FdClose, &[spare.into()]);
    let state = g.ctx.state();
    drop(g);

    // The state is plain data describing every fd.
    let entry = state.fds.iter().find(|e| e.fd == fd).unwrap();
    assert_eq!(
        (
            entry.kind,
            entry.rel_path.as_str(),
            entry.offset,
            entry.write
        ),
        (FdKind::File, "split.txt", 12, true)
    );
    let entry = state.fds.iter().find(|e| e.fd == r).unwrap();
    assert_eq!(
        (entry.rel_path.as_str(), entry.offset, entry.preopen),
        ("sub/g.txt", 1, Some(0))
    );
    assert_eq!(state.fds.iter().find(|e| e.fd == ap).unwrap().fdflags, 1);
    assert_eq!(state.free_fds, vec![spare]);
    assert_eq!(state.fds.iter().filter(|e| e.is_preopen).count(), 1);

    // Something else touches the file between checkpoint and restore? No:
    // restore must neither truncate nor rewind it.
    let mut g = Guest::restored(&state);
    g.write(fd, b"second part");
    g.write(ap, b"two");
    assert_eq!(g.read(r, 10).unwrap(), b"\n");
    assert_eq!(
        fs::read(root.join("split.txt")).unwrap(),
        fs::read(root.join("whole.txt")).unwrap()
    );
    assert_eq!(fs::read(root.join("log.txt")).unwrap(), b"one two");
    // Same fd numbering afterwards, and the restored state is the same.
    assert_eq!(g.open("f.txt", 0, R), Ok(spare));
    let again = g.ctx.state();
    assert_eq!(again.args, state.args);
    assert_eq!(again.preopens, state.preopens);
    // The directory fd still works for lookups, the preopen still answers prestat.
    assert!(g.open_with(d, "g.txt", 0, R, 0, true).is_ok());
    assert_eq!(g.call(F::FdPrestatGet, &[3, OUT.into()]), 0);
}

#[test]
fn state_follows_renamed_files() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let fd = g.open("a.txt", CREAT, W).unwrap();
    g.write(fd, b"abc");
    g.put(PATH, b"a.txt");
    g.put(PATH2, b"sub/b.txt");
    assert_eq!(
        g.call(F::PathRename, &[3, PATH.into(), 5, 3, PATH2.into(), 9]),
        0
    );
    let state = g.ctx.state();
    let entry = state.fds.iter().find(|e| e.fd == fd).unwrap();
    if Path::new("/proc/self/fd").exists() {
        assert_eq!(entry.rel_path, "sub/b.txt");
        let mut g = Guest::restored(&state);
        g.write(fd, b"def");
        assert_eq!(fs::read(root.join("sub/b.txt")).unwrap(), b"abcdef");
    }
}

/// The state records each open regular file's size; a restore refuses a file whose size has
/// changed since (truncated input, a written file cut short or grown by someone else), naming it,
/// and accepts it once it is back as it was.
#[test]
fn restore_refuses_a_file_whose_size_changed() {
    let (_t, root) = fixture();
    fs::write(root.join("input.txt"), b"0123456789abcdef").unwrap();
    let mut g = Guest::new(&root);
    let r = g.open("input.txt", 0, R).unwrap();
    assert_eq!(g.read(r, 4).unwrap(), b"0123");
    let w = g.open("out.txt", CREAT, W).unwrap();
    g.write(w, b"written");
    let state = g.ctx.state();
    drop(g);
    let size = |fd: u32| state.fds.iter().find(|e| e.fd == fd).unwrap().size;
    assert_eq!((size(r), size(w)), (Some(16), Some(7)));
    assert_eq!(state.fds.iter().find(|e| e.is_preopen).unwrap().size, None);

    fs::write(root.join("input.txt"), b"01234").unwrap();
    let err = WasiCtx::from_state(&state).unwrap_err().to_string();
    assert!(
        err.contains("`input.txt`") && err.contains("has 5 bytes, at the checkpoint it had 16") && err.contains("changed after the checkpoint"),
        "{err}"
    );
    fs::write(root.join("input.txt"), b"0123456789abcdef").unwrap();
    fs::write(root.join("out.txt"), b"written, then more").unwrap();
    let err = WasiCtx::from_state(&state).unwrap_err().to_string();
    assert!(err.contains("`out.txt`") && err.contains("has 18 bytes, at the checkpoint it had 7"), "{err}");
    fs::write(root.join("out.txt"), b"written").unwrap();
    let mut g = Guest::restored(&state);
    assert_eq!(g.read(r, 4).unwrap(), b"4567");
}

/// A file removed while open cannot be reopened by a restore: a checkpoint is refused (by
/// name), until the guest closes it; a file only renamed is fine.
#[test]
fn a_file_removed_while_open_makes_the_state_unrestorable() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let u = g.open("u.txt", CREAT, W).unwrap();
    g.write(u, b"kept only in the open file");
    let k = g.open("k.txt", CREAT, W).unwrap();
    assert_eq!(g.ctx.unrestorable(), None);
    fs::rename(root.join("k.txt"), root.join("k2.txt")).unwrap();
    assert_eq!(g.ctx.unrestorable(), None, "renamed, still reachable");
    fs::remove_file(root.join("u.txt")).unwrap();
    let why = g.ctx.unrestorable().expect("refused");
    assert!(why.contains(&format!("fd {u} (`u.txt`) is a file removed while open")), "{why}");
    let _ = k;
}

#[test]
fn restore_explains_a_relative_preopen_that_is_not_there() {
    let (_t, root) = fixture();
    let g = Guest::new(&root);
    let mut state = g.ctx.state();
    drop(g);
    state.preopens[0].host = "no-such-relative-dir-of-wanco".into();
    let err = WasiCtx::from_state(&state).unwrap_err().to_string();
    assert!(
        err.contains("no-such-relative-dir-of-wanco")
            && err.contains("does not exist")
            && err.contains("give --dir an absolute path"),
        "{err}"
    );
}

#[test]
fn restore_reports_missing_files_and_preopens() {
    let (t, root) = fixture();
    let mut g = Guest::new(&root);
    let fd = g.open("gone.txt", CREAT, W).unwrap();
    let state = g.ctx.state();
    drop(g);
    fs::remove_file(root.join("gone.txt")).unwrap();
    let err = WasiCtx::from_state(&state).unwrap_err().to_string();
    assert!(
        err.contains(&format!("fd {fd}")) && err.contains("gone.txt"),
        "{err}"
    );

    let missing = t.path().join("nope");
    let cfg = WasiConfig {
        preopens: vec![Preopen {
            host: missing.to_str().unwrap().into(),
            guest: "/x".into(),
        }],
        ..Default::default()
    };
    let err = WasiCtx::new(cfg).unwrap_err().to_string();
    assert!(
        err.contains(missing.to_str().unwrap()) && err.contains("does not exist"),
        "{err}"
    );
    let file = root.join("f.txt");
    let cfg = WasiConfig {
        preopens: vec![Preopen {
            host: file.to_str().unwrap().into(),
            guest: "/x".into(),
        }],
        ..Default::default()
    };
    let err = WasiCtx::new(cfg).unwrap_err().to_string();
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn clocks_and_monotonic_continuity() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    assert_eq!(g.call(F::ClockResGet, &[1, OUT.into()]), 0);
    assert_eq!(g.u64(OUT), 1);
    assert_eq!(g.call(F::ClockTimeGet, &[0, 1, OUT.into()]), 0);
    assert!(g.u64(OUT) > 1_600_000_000_000_000_000);
    assert_eq!(g.call(F::ClockTimeGet, &[2, 1, OUT.into()]), e(Errno::BADF));
    assert_eq!(
        g.call(F::ClockTimeGet, &[9, 1, OUT.into()]),
        e(Errno::INVAL)
    );
    assert_eq!(g.call(F::ClockTimeGet, &[1, 1, OUT.into()]), 0);
    let t0 = g.u64(OUT);

    let mut state = g.ctx.state();
    assert!(state.clock.monotonic_last_ns >= t0);
    state.clock.monotonic_last_ns = 1_000_000_000_000_000;
    let mut g = Guest::restored(&state);
    assert_eq!(g.call(F::ClockTimeGet, &[1, 1, OUT.into()]), 0);
    let t1 = g.u64(OUT);
    assert!(t1 >= 1_000_000_000_000_000);
    assert_eq!(g.call(F::ClockTimeGet, &[1, 1, OUT.into()]), 0);
    assert!(g.u64(OUT) >= t1);
}

#[test]
fn poll_oneoff_events() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let sub = |g: &mut Guest, i: u32, userdata: u64, tag: u8, a: u32, timeout: u64, flags: u16| {
        let s = DATA + i * 48;
        g.mem[s as usize..s as usize + 48].fill(0);
        g.put(s, &userdata.to_le_bytes());
        g.put(s + 8, &[tag]);
        g.put(s + 16, &a.to_le_bytes());
        g.put(s + 24, &timeout.to_le_bytes());
        g.put(s + 40, &flags.to_le_bytes());
    };
    const EV: u32 = 0x4000;
    // A single relative timer: slept, reported with nbytes = 1.
    sub(&mut g, 0, 11, 0, 1, 1_000_000, 0);
    g.mem[EV as usize..EV as usize + 64].fill(0xaa);
    let start = std::time::Instant::now();
    assert_eq!(
        g.call(F::PollOneoff, &[DATA.into(), EV.into(), 1, OUT.into()]),
        0
    );
    assert!(start.elapsed() >= std::time::Duration::from_millis(1));
    assert_eq!(g.u32(OUT), 1);
    assert_eq!(
        g.get(EV, 32),
        [
            11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, //
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        ]
    );
    // A file read and a long timer: only the file is ready; at EOF it hangs up.
    let f = g.open("f.txt", 0, R).unwrap();
    sub(&mut g, 0, 5, 0, 1, 10_000_000_000, 0);
    sub(&mut g, 1, 6, 1, f, 0, 0);
    assert_eq!(
        g.call(F::PollOneoff, &[DATA.into(), EV.into(), 2, OUT.into()]),
        0
    );
    assert_eq!(g.u32(OUT), 1);
    assert_eq!(
        (
            g.u64(EV),
            g.get(EV + 10, 1)[0],
            g.u64(EV + 16),
            g.get(EV + 24, 2)
        ),
        (6, 1, 1, &[0, 0][..])
    );
    g.seek(f, 0, 2).unwrap();
    assert_eq!(
        g.call(F::PollOneoff, &[DATA.into(), EV.into(), 2, OUT.into()]),
        0
    );
    assert_eq!(g.get(EV + 24, 2), [1, 0]);
    // Two expired timers: both reported, nbytes = 0.
    sub(&mut g, 0, 7, 0, 1, 0, 0);
    sub(&mut g, 1, 8, 0, 0, 0, 1);
    assert_eq!(
        g.call(F::PollOneoff, &[DATA.into(), EV.into(), 2, OUT.into()]),
        0
    );
    assert_eq!(
        (g.u32(OUT), g.u64(EV), g.u64(EV + 16), g.u64(EV + 32)),
        (2, 7, 0, 8)
    );
    // Errors.
    assert_eq!(
        g.call(F::PollOneoff, &[DATA.into(), EV.into(), 0, OUT.into()]),
        e(Errno::INVAL)
    );
    sub(&mut g, 1, 8, 1, 77, 0, 0);
    assert_eq!(
        g.call(F::PollOneoff, &[DATA.into(), EV.into(), 2, OUT.into()]),
        e(Errno::BADF)
    );
    sub(&mut g, 1, 8, 0, 2, 0, 0);
    assert_eq!(
        g.call(F::PollOneoff, &[DATA.into(), EV.into(), 2, OUT.into()]),
        e(Errno::INVAL)
    );
}

#[test]
fn proc_exit_and_misc() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    assert_eq!(
        g.ctx.call(F::ProcExit, &mut g.mem, &[3]),
        Err(WasiTrap::Exit(3))
    );
    assert_eq!(
        g.ctx.call(F::ProcExit, &mut g.mem, &[0]),
        Err(WasiTrap::Exit(0))
    );
    assert_eq!(
        g.ctx.call(F::ProcExit, &mut g.mem, &[200]),
        Err(WasiTrap::Exit(1))
    );
    assert_eq!(g.call(F::ProcRaise, &[2]), e(Errno::NOTSUP));
    assert_eq!(g.call(F::SchedYield, &[]), 0);
    // A socket call on a directory: BADF, as in wasmtime 36's preview1
    // host (the one that has sockets; wasmtime 49's adapter says NOTSOCK).
    assert_eq!(
        g.call(F::SockAccept, &[3, 0, OUT.into()]),
        e(Errno::BADF)
    );
    assert_eq!(g.call(F::SockShutdown, &[99, 0]), e(Errno::BADF));
    assert_eq!(g.call(F::FdAllocate, &[3, 0, 1]), e(Errno::BADF));
    let f = g.open("f.txt", 0, RW).unwrap();
    assert_eq!(g.call(F::FdAllocate, &[f.into(), 0, 1]), e(Errno::NOTSUP));
    assert_eq!(g.call(F::FdAdvise, &[f.into(), 0, 1, 1]), 0);
    assert_eq!(g.call(F::FdSync, &[f.into()]), 0);
    assert_eq!(g.call(F::FdDatasync, &[1]), e(Errno::BADF));
    assert_eq!(g.call(F::RandomGet, &[DATA.into(), 64]), 0);
    assert_ne!(g.get(DATA, 64), [0u8; 64]);
    // Zero-length write to stdout succeeds without output.
    assert_eq!(g.write(1, b""), (0, 0));
    // Too few arguments: INVAL, not a panic.
    assert_eq!(g.call(F::FdWrite, &[1]), e(Errno::INVAL));
}

#[test]
fn bad_pointers_fault() {
    let (_t, root) = fixture();
    let mut g = Guest::new(&root);
    let top = (MEM as u64) - 2;
    let huge = u64::from(u32::MAX);
    assert_eq!(g.call(F::ArgsSizesGet, &[top, OUT.into()]), e(Errno::FAULT));
    assert_eq!(g.call(F::ArgsGet, &[OUT.into(), top]), e(Errno::FAULT));
    assert_eq!(g.call(F::EnvironGet, &[huge, 0]), e(Errno::FAULT));
    assert_eq!(g.call(F::ClockTimeGet, &[1, 0, top]), e(Errno::FAULT));
    assert_eq!(g.call(F::RandomGet, &[top, 16]), e(Errno::FAULT));
    assert_eq!(g.call(F::RandomGet, &[huge, huge]), e(Errno::FAULT));
    assert_eq!(
        g.call(F::FdWrite, &[1, huge, 1, OUT.into()]),
        e(Errno::FAULT)
    );
    // An iovec pointing outside memory.
    g.put(IOV, &(MEM as u32 - 4).to_le_bytes());
    g.put(IOV + 4, &100u32.to_le_bytes());
    assert_eq!(
        g.call(F::FdWrite, &[1, IOV.into(), 1, OUT.into()]),
        e(Errno::FAULT)
    );
    assert_eq!(
        g.call(F::FdWrite, &[1, IOV.into(), huge, OUT.into()]),
        e(Errno::FAULT)
    );
    g.put(IOV + 4, &1u32.to_le_bytes());
    assert_eq!(
        g.call(F::FdWrite, &[2, IOV.into(), 1, huge]),
        e(Errno::FAULT)
    );
    assert_eq!(
        g.call(F::PathOpen, &[3, 1, huge, 10, 0, R, R, 0, OUT.into()]),
        e(Errno::FAULT)
    );
    g.put(PATH, b"f.txt");
    assert_eq!(
        g.call(F::PathOpen, &[3, 1, PATH.into(), 5, 0, R, R, 0, huge]),
        e(Errno::FAULT)
    );
    assert_eq!(g.call(F::FdFdstatGet, &[3, top]), e(Errno::FAULT));
    assert_eq!(g.call(F::FdFilestatGet, &[3, top]), e(Errno::FAULT));
    assert_eq!(g.call(F::FdPrestatDirName, &[3, top, 100]), e(Errno::FAULT));
    assert_eq!(
        g.call(F::PollOneoff, &[top, 0, 1, OUT.into()]),
        e(Errno::FAULT)
    );
    let d = g.open("rd", DIRECTORY, R).unwrap();
    assert_eq!(
        g.call(F::FdReaddir, &[d.into(), top, 100, 0, OUT.into()]),
        e(Errno::FAULT)
    );
    // Nothing was opened by the failed path_open.
    assert_eq!(g.open("f.txt", 0, R), Ok(d + 1));
    // Unknown fds are BADF everywhere.
    for f in [F::FdClose, F::FdSync, F::FdDatasync] {
        assert_eq!(g.call(f, &[1234]), e(Errno::BADF));
    }
    // Every function survives arbitrary arguments without panicking.
    for &f in WasiFunc::ALL {
        if f == F::ProcExit || f == F::PollOneoff {
            continue;
        }
        for v in [0u64, 3, top, huge, u64::MAX] {
            let args = vec![v; f.signature().0.len()];
            let _ = g.ctx.call(f, &mut g.mem, &args);
        }
    }
}

mod sock;
