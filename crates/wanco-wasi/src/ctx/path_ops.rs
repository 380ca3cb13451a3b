//! `path_*` calls: everything that names a file relative to a directory fd.

use super::stat::*;
use super::*;

/// Whether `lookupflags` ask to follow a final symlink (`INVAL` for any
/// other bit).
fn lookup_follow(flags: u32) -> Result<bool, Errno> {
    if flags & !LOOKUP_SYMLINK_FOLLOW != 0 {
        return Err(Errno::INVAL);
    }
    Ok(flags & LOOKUP_SYMLINK_FOLLOW != 0)
}

impl WasiCtx {
    // ---- path_* ----------------------------------------------------------

    pub(super) fn path_create_directory(&self, m: &mut Mem<'_>, fd: u32, p: Ptr, l: u32) -> Result<(), Errno> {
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        let parent = open_parent(dir, path::strip_dir_suffix(path.as_bytes()))?;
        sys::mkdirat(parent.fd(), &parent.name, 0o777).map_err(host_err)
    }

    pub(super) fn path_filestat_get(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        flags: u32,
        p: Ptr,
        l: u32,
        out: Ptr,
    ) -> Result<(), Errno> {
        let follow = lookup_follow(flags)?;
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        m.check(out, 64)?;
        let meta = stat_at(dir, path.as_bytes(), follow)?;
        Filestat::of(&meta).write(m, out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_filestat_set_times(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        flags: u32,
        p: Ptr,
        l: u32,
        atim: u64,
        mtim: u64,
        fst: u32,
    ) -> Result<(), Errno> {
        let (a, mt) = time_specs(atim, mtim, fst)?;
        let follow = lookup_follow(flags)?;
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        if follow {
            // Like cap-std: open for writing, else for reading, then futimens.
            let nb = libc::O_NONBLOCK;
            let f = match open_beneath(dir, path.as_bytes(), libc::O_WRONLY | nb, 0, true) {
                Err(e) if e == Errno::ACCES || e == Errno::ISDIR => {
                    open_beneath(dir, path.as_bytes(), libc::O_RDONLY | nb, 0, true)?
                }
                r => r?,
            };
            sys::futimens(f.as_fd(), a, mt).map_err(host_err)
        } else {
            let parent = open_parent(dir, path.as_bytes())?;
            sys::utimensat_nofollow(parent.fd(), &parent.name, a, mt).map_err(host_err)
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_link(
        &self,
        m: &mut Mem<'_>,
        old_fd: u32,
        old_flags: u32,
        op: Ptr,
        ol: u32,
        new_fd: u32,
        np: Ptr,
        nl: u32,
    ) -> Result<(), Errno> {
        let follow = lookup_follow(old_flags)?;
        let old_dir = self.dir_fd(old_fd)?;
        let new_dir = self.dir_fd(new_fd)?;
        let old = m.read_str(op, ol)?;
        let new = m.read_str(np, nl)?;
        if follow {
            return Err(Errno::INVAL);
        }
        let op = open_parent(old_dir, old.as_bytes())?;
        let np = open_parent(new_dir, new.as_bytes())?;
        sys::linkat(op.fd(), &op.name, np.fd(), &np.name).map_err(host_err)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_open(
        &mut self,
        m: &mut Mem<'_>,
        dirfd: u32,
        dirflags: u32,
        p: Ptr,
        l: u32,
        oflags: u32,
        rights_base: u64,
        fdflags: u32,
        out: Ptr,
    ) -> Result<(), Errno> {
        let path = m.read_str(p, l)?;
        if dirflags & !LOOKUP_SYMLINK_FOLLOW != 0 || oflags & !0xf != 0 || fdflags & !0x1f != 0 {
            return Err(Errno::INVAL);
        }
        if rights_base & !rights::ALL != 0 {
            return Err(Errno::INVAL);
        }
        m.check(out, 4)?;
        let d = self.desc(dirfd)?;
        match d.entry.kind {
            FdKind::Directory => {}
            FdKind::File | FdKind::TcpListener | FdKind::TcpStream => return Err(Errno::NOTDIR),
            _ => return Err(Errno::BADF),
        }
        let fdflags = fdflags as u16;
        if fdflags & (FDFLAGS_SYNC | FDFLAGS_DSYNC | FDFLAGS_RSYNC) != 0 {
            return Err(Errno::NOTSUP);
        }
        if oflags & OFLAGS_DIRECTORY != 0
            && oflags & (OFLAGS_CREAT | OFLAGS_EXCL | OFLAGS_TRUNC) != 0
        {
            return Err(Errno::INVAL);
        }
        // wasmtime derives the access mode from the rights and oflags.
        let creat = oflags & OFLAGS_CREAT != 0;
        let trunc = oflags & OFLAGS_TRUNC != 0;
        let want_write = rights_base & rights::FD_WRITE != 0;
        let write = want_write || creat || trunc;
        let read = rights_base & rights::FD_READ != 0 || !want_write;
        let mut flags = match (read, write) {
            (true, true) => libc::O_RDWR,
            (false, true) => libc::O_WRONLY,
            _ => libc::O_RDONLY,
        };
        if creat {
            flags |= libc::O_CREAT;
            if oflags & OFLAGS_EXCL != 0 {
                flags |= libc::O_EXCL;
            }
        }
        if trunc {
            flags |= libc::O_TRUNC;
        }
        if oflags & OFLAGS_DIRECTORY != 0 {
            flags |= libc::O_DIRECTORY;
        }
        let follow = dirflags & LOOKUP_SYMLINK_FOLLOW != 0;
        let fd = open_beneath(d.host()?.as_fd(), path.as_bytes(), flags, 0o666, follow)?;
        let file = File::from(fd);
        let is_dir = file.metadata().map_err(errno::from_io)?.is_dir();
        let preopen = d.entry.preopen.unwrap_or(0);
        let rel_path = join_rel(&d.entry.rel_path, &path);
        let new_fd = self.alloc_fd()?;
        let entry = if is_dir {
            dir_entry(new_fd, preopen, rel_path, false)
        } else {
            let r = rights::file(read, write);
            FdEntry {
                fd: new_fd,
                kind: FdKind::File,
                preopen: Some(preopen),
                rel_path,
                read,
                write,
                fdflags: fdflags & (FDFLAGS_APPEND | FDFLAGS_NONBLOCK),
                rights_base: r,
                rights_inheriting: r,
                offset: 0,
                is_preopen: false,
                size: None,
                socket: None,
            }
        };
        self.fds.insert(
            new_fd,
            Desc {
                entry,
                file: Some(file),
                sock: None,
            },
        );
        m.write_u32(out, new_fd)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_readlink(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        p: Ptr,
        l: u32,
        buf: Ptr,
        buf_len: u32,
        used: Ptr,
    ) -> Result<(), Errno> {
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        let parent = open_parent(dir, path.as_bytes())?;
        let mut target = sys::readlinkat(parent.fd(), &parent.name).map_err(host_err)?;
        if target.first() == Some(&b'/') {
            return Err(Errno::PERM); // cap-std refuses to reveal absolute links
        }
        if std::str::from_utf8(&target).is_err() {
            return Err(Errno::ILSEQ);
        }
        target.truncate(buf_len as usize);
        m.check(used, 4)?;
        m.write_bytes(buf, &target)?;
        m.write_u32(used, target.len() as u32)
    }

    pub(super) fn path_remove(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        p: Ptr,
        l: u32,
        flags: i32,
    ) -> Result<(), Errno> {
        let dir = self.dir_fd(fd)?;
        let path = m.read_str(p, l)?;
        let parent = open_parent(dir, path.as_bytes())?;
        sys::unlinkat(parent.fd(), &parent.name, flags).map_err(host_err)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_rename(
        &self,
        m: &mut Mem<'_>,
        old_fd: u32,
        op: Ptr,
        ol: u32,
        new_fd: u32,
        np: Ptr,
        nl: u32,
    ) -> Result<(), Errno> {
        let old_dir = self.dir_fd(old_fd)?;
        let new_dir = self.dir_fd(new_fd)?;
        let old = m.read_str(op, ol)?;
        let new = m.read_str(np, nl)?;
        // cap-std: trailing slashes are ignored for finding the parents and
        // handed back to the kernel on the final names.
        let old_p = open_parent(old_dir, path::strip_dir_suffix(old.as_bytes()))?;
        let new_p = open_parent(new_dir, path::strip_dir_suffix(new.as_bytes()))?;
        let with_slash = |name: &[u8], orig: &str| {
            let mut n = name.to_vec();
            if orig.ends_with('/') {
                n.push(b'/');
            }
            n
        };
        let on = with_slash(&old_p.name, &old);
        let nn = with_slash(&new_p.name, &new);
        sys::renameat(old_p.fd(), &on, new_p.fd(), &nn).map_err(host_err)
    }

    pub(super) fn path_symlink(
        &self,
        m: &mut Mem<'_>,
        op: Ptr,
        ol: u32,
        fd: u32,
        np: Ptr,
        nl: u32,
    ) -> Result<(), Errno> {
        let dir = self.dir_fd(fd)?;
        let target = m.read_str(op, ol)?;
        let new = m.read_str(np, nl)?;
        if target.starts_with('/') {
            return Err(Errno::PERM); // a link out of the sandbox
        }
        let parent = open_parent(dir, new.as_bytes())?;
        sys::symlinkat(target.as_bytes(), parent.fd(), &parent.name).map_err(host_err)
    }

}

/// Joins a directory's path and a guest path relative to it, dropping empty
/// and `.` components (`..` is kept: it is resolved on reopen).
fn join_rel(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in base.split('/').chain(path.split('/')) {
        if !c.is_empty() && c != "." {
            parts.push(c);
        }
    }
    parts.join("/")
}

/// `stat` of `path` under `dir`, as cap-std does it (a single component
/// without following links is looked up directly).
fn stat_at(dir: BorrowedFd<'_>, path: &[u8], follow: bool) -> Result<std::fs::Metadata, Errno> {
    let fd = match (follow, path::single_component(path)) {
        (false, Some(name)) => {
            sys::openat(dir, &name, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(host_err)?
        }
        _ => open_beneath(dir, path, libc::O_PATH, 0, follow)?,
    };
    File::from(fd).metadata().map_err(errno::from_io)
}
