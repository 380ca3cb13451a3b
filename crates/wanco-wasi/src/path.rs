//! Sandboxed path resolution beneath a directory descriptor.
//!
//! The guest may never reach outside the directory its path is relative to
//! (ultimately a preopen). Paths are resolved here one component at a time,
//! with `O_NOFOLLOW` on every `openat`, and symbolic links are expanded by
//! hand, so the rules are the same on every kernel and under qemu-user:
//!
//! * an absolute path, a `..` above the start directory, or a symbolic link
//!   whose target is absolute or climbs above the start directory is an escape
//!   attempt: `PERM`, which is what wasmtime (cap-std, `openat2` with
//!   `RESOLVE_BENEATH`) reports;
//! * at most [`MAX_SYMLINKS`] links are expanded per lookup (`LOOP`);
//! * trailing slashes require a directory, as in POSIX.
//!
//! [`open_parent`] and [`strip_dir_suffix`] mirror cap-std's helpers of the
//! same name, which decide how wasmtime treats `foo/`, `.` and `..` in the
//! `path_*` calls that act on a directory entry rather than open it.

use crate::errno::{self, Errno};
use crate::sys;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// Maximum number of symbolic links expanded during one lookup (Linux's value).
pub(crate) const MAX_SYMLINKS: u32 = 40;

fn host(e: sys::HostErr) -> Errno {
    errno::from_host(e)
}

/// A directory during resolution: the start directory or one we opened.
enum Cur<'a> {
    Start(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl Cur<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Cur::Start(b) => *b,
            Cur::Owned(o) => o.as_fd(),
        }
    }
}

/// Opens `path` relative to `start` without leaving it.
///
/// `flags` are `open(2)` flags (`O_CLOEXEC` and `O_NOFOLLOW` are added);
/// `follow` says whether a symbolic link in the final component is followed.
pub(crate) fn open_beneath(
    start: BorrowedFd<'_>,
    path: &[u8],
    flags: i32,
    mode: u32,
    follow: bool,
) -> Result<OwnedFd, Errno> {
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    if path[0] == b'/' {
        return Err(Errno::PERM);
    }
    let creat = flags & libc::O_CREAT != 0;
    let excl = flags & libc::O_EXCL != 0;
    // Components still to resolve, next one last.
    let mut pending: Vec<Vec<u8>> = split_rev(path);
    // Directories entered so far (for `..`); empty means "at `start`".
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0u32;

    loop {
        let Some(comp) = pending.pop() else {
            // The path ends at a directory (`.`, `a/..`, ...): open it.
            return open_dot(&stack, start, flags);
        };
        if comp.is_empty() || comp == b"." {
            continue;
        }
        if comp == b".." {
            if stack.pop().is_none() {
                return Err(Errno::PERM);
            }
            continue;
        }
        let cur = stack.last().map(|o| o.as_fd()).unwrap_or(start);
        // Only trailing slashes left after this component?
        let trailing = !pending.is_empty() && pending.iter().all(|c| c.is_empty());
        let is_last = pending.is_empty() || trailing;

        if !is_last || trailing {
            if is_last && creat {
                // `open("name/", O_CREAT)` is EISDIR, whatever `name` is.
                return Err(Errno::ISDIR);
            }
            // Must be a directory (or a link to one): follow links.
            let o_flags = if is_last {
                flags | libc::O_DIRECTORY | libc::O_NOFOLLOW
            } else {
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW
            };
            match sys::openat(cur, &comp, o_flags, mode) {
                Ok(fd) if is_last => return Ok(fd),
                Ok(fd) => {
                    stack.push(fd);
                    continue;
                }
                Err(e) if e == libc::ENOTDIR || e == libc::ELOOP => {
                    match symlink_target(cur, &comp)? {
                        Some(target) => {
                            expand(&mut pending, target, &mut links)?;
                            continue;
                        }
                        None => return Err(host(e)),
                    }
                }
                Err(e) => return Err(host(e)),
            }
        }

        // The final component.
        let follow_last = follow && !(creat && excl);
        match sys::openat(cur, &comp, flags | libc::O_NOFOLLOW, mode) {
            Ok(fd) => {
                if follow_last && flags & libc::O_PATH != 0 {
                    // O_PATH|O_NOFOLLOW opens a link itself: check for one.
                    if let Some(target) = symlink_target(cur, &comp)? {
                        drop(fd);
                        expand(&mut pending, target, &mut links)?;
                        continue;
                    }
                }
                return Ok(fd);
            }
            Err(e) if (e == libc::ELOOP || e == libc::ENOTDIR) && follow_last => {
                match symlink_target(cur, &comp)? {
                    Some(target) => {
                        expand(&mut pending, target, &mut links)?;
                        continue;
                    }
                    None => return Err(host(e)),
                }
            }
            Err(e) => return Err(host(e)),
        }
    }
}

/// Opens the directory the resolution currently stands in.
fn open_dot(stack: &[OwnedFd], start: BorrowedFd<'_>, flags: i32) -> Result<OwnedFd, Errno> {
    if flags & libc::O_CREAT != 0 {
        return Err(Errno::ISDIR);
    }
    let cur = stack.last().map(|o| o.as_fd()).unwrap_or(start);
    sys::openat(cur, b".", flags & !libc::O_NOFOLLOW, 0).map_err(host)
}

/// The target of `name` in `dir` if it is a symbolic link.
fn symlink_target(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<Vec<u8>>, Errno> {
    match sys::readlinkat(dir, name) {
        Ok(t) => Ok(Some(t)),
        Err(libc::EINVAL) | Err(libc::ENOENT) => Ok(None),
        Err(e) => Err(host(e)),
    }
}

/// Replaces a symbolic link by its target in the pending components.
fn expand(pending: &mut Vec<Vec<u8>>, target: Vec<u8>, links: &mut u32) -> Result<(), Errno> {
    *links += 1;
    if *links > MAX_SYMLINKS {
        return Err(Errno::LOOP);
    }
    if target.is_empty() {
        return Err(Errno::NOENT);
    }
    if target[0] == b'/' {
        return Err(Errno::PERM);
    }
    pending.extend(split_rev(&target));
    Ok(())
}

/// `a/b/c` -> `[c, b, a]`, keeping empty components (trailing slashes).
fn split_rev(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

/// Whether `path` names a directory by its spelling (cap-std's rule: it ends
/// with `/` or `/.`).
pub(crate) fn path_requires_dir(path: &[u8]) -> bool {
    path.ends_with(b"/") || path.ends_with(b"/.")
}

/// Strips trailing slashes, unless that would leave nothing (cap-std's rule
/// for `mkdir` and `rename`).
pub(crate) fn strip_dir_suffix(path: &[u8]) -> &[u8] {
    let mut p = path;
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    p
}

/// A directory that contains the entry a `path_*` call acts on, plus the
/// entry's name in it.
pub(crate) struct Parent<'a> {
    dir: Cur<'a>,
    /// The last component (never `..`; may be `.`).
    pub(crate) name: Vec<u8>,
}

impl Parent<'_> {
    /// The directory holding [`Parent::name`].
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.dir.fd()
    }
}

/// Splits `path` like cap-std's `open_parent`: opens (sandboxed, following
/// links) everything but the last component and returns that component.
/// `foo/`, `foo/.` and `foo/..` act on `.` inside the directory they name.
pub(crate) fn open_parent<'a>(start: BorrowedFd<'a>, path: &[u8]) -> Result<Parent<'a>, Errno> {
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    if path[0] == b'/' {
        return Err(Errno::PERM);
    }
    let (dirname, name): (&[u8], Vec<u8>) = if path_requires_dir(path) {
        (path, b".".to_vec())
    } else {
        let p = Path::new(OsStr::from_bytes(path));
        let mut comps = p.components();
        match comps.next_back() {
            Some(Component::Normal(n)) => (
                comps.as_path().as_os_str().as_bytes(),
                n.as_bytes().to_vec(),
            ),
            Some(Component::CurDir) => (comps.as_path().as_os_str().as_bytes(), b".".to_vec()),
            _ => (path, b".".to_vec()),
        }
    };
    let dir = if dirname.is_empty() {
        Cur::Start(start)
    } else {
        Cur::Owned(open_beneath(
            start,
            dirname,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            true,
        )?)
    };
    Ok(Parent { dir, name })
}

/// If `path` is a single component other than `..` (as Rust's `Path` counts
/// them: `a/` and `./` are single), that component. cap-std stats such paths
/// directly with `fstatat`, which is observable for `a/` without following.
pub(crate) fn single_component(path: &[u8]) -> Option<Vec<u8>> {
    let p = Path::new(OsStr::from_bytes(path));
    let mut comps = p.components();
    let first = comps.next()?;
    if comps.next().is_some() {
        return None;
    }
    match first {
        Component::Normal(n) => Some(n.as_bytes().to_vec()),
        Component::CurDir => Some(b".".to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn fixture() -> (tempfile::TempDir, fs::File) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("f.txt"), b"hello\n").unwrap();
        fs::write(t.path().join("outside.txt"), b"secret").unwrap();
        symlink("f.txt", root.join("lrel")).unwrap();
        symlink("../outside.txt", root.join("lout")).unwrap();
        symlink("/etc/passwd", root.join("labs")).unwrap();
        symlink("sub", root.join("lsub")).unwrap();
        symlink("../f.txt", root.join("sub/lup")).unwrap();
        symlink("../../f.txt", root.join("sub/lesc")).unwrap();
        symlink("lloop", root.join("lloop")).unwrap();
        let dir = fs::File::open(&root).unwrap();
        (t, dir)
    }

    fn open(d: &fs::File, p: &str, follow: bool) -> Result<OwnedFd, Errno> {
        open_beneath(d.as_fd(), p.as_bytes(), libc::O_RDONLY, 0, follow)
    }

    #[test]
    fn resolves_inside_and_refuses_escapes() {
        let (_t, d) = fixture();
        assert!(open(&d, "f.txt", true).is_ok());
        assert!(open(&d, "sub/../f.txt", true).is_ok());
        assert!(open(&d, "./sub//deeper/", true).is_ok());
        assert!(open(&d, "lrel", true).is_ok());
        assert!(open(&d, "lsub/deeper", false).is_ok());
        assert!(open(&d, "sub/lup", true).is_ok());
        assert_eq!(open(&d, "lrel", false).err(), Some(Errno::LOOP));
        assert_eq!(open(&d, "../x", true).err(), Some(Errno::PERM));
        assert_eq!(open(&d, "..", true).err(), Some(Errno::PERM));
        assert_eq!(open(&d, "/etc/passwd", true).err(), Some(Errno::PERM));
        assert_eq!(open(&d, "lout", true).err(), Some(Errno::PERM));
        assert_eq!(open(&d, "labs", true).err(), Some(Errno::PERM));
        assert_eq!(open(&d, "sub/lesc", true).err(), Some(Errno::PERM));
        assert_eq!(open(&d, "lloop", true).err(), Some(Errno::LOOP));
        assert_eq!(open(&d, "nope/../f.txt", true).err(), Some(Errno::NOENT));
        assert_eq!(open(&d, "f.txt/", true).err(), Some(Errno::NOTDIR));
        assert_eq!(open(&d, "", true).err(), Some(Errno::NOENT));
        let creat = open_beneath(
            d.as_fd(),
            b"new/",
            libc::O_CREAT | libc::O_WRONLY,
            0o666,
            true,
        );
        assert_eq!(creat.err(), Some(Errno::ISDIR));
    }

    #[test]
    fn parents() {
        let (_t, d) = fixture();
        assert_eq!(open_parent(d.as_fd(), b"a").unwrap().name, b"a");
        assert_eq!(open_parent(d.as_fd(), b"sub/x").unwrap().name, b"x");
        assert_eq!(open_parent(d.as_fd(), b"sub/").unwrap().name, b".");
        assert_eq!(open_parent(d.as_fd(), b".").unwrap().name, b".");
        assert_eq!(
            open_parent(d.as_fd(), b"..").err().map(|e| e.0),
            Some(Errno::PERM.0)
        );
        assert_eq!(
            open_parent(d.as_fd(), b"../x").err().map(|e| e.0),
            Some(Errno::PERM.0)
        );
        assert_eq!(strip_dir_suffix(b"a//"), b"a");
        assert_eq!(strip_dir_suffix(b"/"), b"/");
        assert_eq!(single_component(b"a/"), Some(b"a".to_vec()));
        assert_eq!(single_component(b"./a"), None);
        assert_eq!(single_component(b".."), None);
    }
}
