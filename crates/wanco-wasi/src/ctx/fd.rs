//! `fd_*` calls on files, directories and stdio.

use super::stat::*;
use super::*;

impl WasiCtx {
    // ---- fd_* ------------------------------------------------------------

    pub(super) fn fd_advise(&self, fd: u32, offset: u64, len: u64, advice: u32) -> Result<(), Errno> {
        let advice = match advice {
            0 => libc::POSIX_FADV_NORMAL,
            1 => libc::POSIX_FADV_SEQUENTIAL,
            2 => libc::POSIX_FADV_RANDOM,
            3 => libc::POSIX_FADV_WILLNEED,
            4 => libc::POSIX_FADV_DONTNEED,
            5 => libc::POSIX_FADV_NOREUSE,
            _ => return Err(Errno::INVAL),
        };
        let f = self.file(fd)?;
        sys::fadvise(f.as_fd(), offset, len, advice).map_err(host_err)
    }

    pub(super) fn fd_close(&mut self, fd: u32) -> Result<(), Errno> {
        self.fds.remove(&fd).ok_or(Errno::BADF)?;
        self.free.insert(fd);
        Ok(())
    }

    pub(super) fn fd_fdstat_get(&self, m: &mut Mem<'_>, fd: u32, out: Ptr) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        let e = &d.entry;
        let (filetype, flags, base, inh) = match e.kind {
            FdKind::Stdin | FdKind::Stdout | FdKind::Stderr => (
                stdio_filetype(stdio_host_fd(e.kind)),
                0,
                e.rights_base,
                e.rights_inheriting,
            ),
            FdKind::Directory => (FILETYPE_DIRECTORY, 0, e.rights_base, e.rights_inheriting),
            FdKind::TcpListener | FdKind::TcpStream => self.sock_fdstat(d),
            FdKind::File => {
                let meta = d.host()?.metadata().map_err(errno::from_io)?;
                let r = rights::file(e.read, e.write);
                (
                    filetype_of(meta.file_type()),
                    e.fdflags & (FDFLAGS_APPEND | FDFLAGS_NONBLOCK),
                    r,
                    r,
                )
            }
        };
        m.check(out, 24)?;
        m.write_u8(out, filetype)?;
        m.write_u16(out + 2, flags)?;
        m.write_u64(out + 8, base)?;
        m.write_u64(out + 16, inh)
    }

    pub(super) fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u32) -> Result<(), Errno> {
        let flags = u16::try_from(flags)
            .ok()
            .filter(|f| f & !0x1f == 0)
            .ok_or(Errno::INVAL)?;
        if self.is_socket_fd(fd) {
            return self.sock_set_flags(fd, flags);
        }
        self.file(fd)?;
        if flags & (FDFLAGS_DSYNC | FDFLAGS_SYNC | FDFLAGS_RSYNC) != 0 {
            return Err(Errno::INVAL);
        }
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        d.entry.fdflags = flags & (FDFLAGS_APPEND | FDFLAGS_NONBLOCK);
        Ok(())
    }

    pub(super) fn fd_fdstat_set_rights(&self, fd: u32) -> Result<(), Errno> {
        match self.desc(fd)?.entry.kind {
            FdKind::Stdin | FdKind::Stdout | FdKind::Stderr => Err(Errno::BADF),
            // wasmtime 36 accepts (and ignores) it on a socket.
            FdKind::TcpListener | FdKind::TcpStream => Ok(()),
            // wasmtime does not support changing rights.
            _ => Err(Errno::NOTSUP),
        }
    }

    pub(super) fn fd_filestat_get(&self, m: &mut Mem<'_>, fd: u32, out: Ptr) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        let st = match d.entry.kind {
            FdKind::Stdin | FdKind::Stdout | FdKind::Stderr => {
                Filestat::stdio(stdio_filetype(stdio_host_fd(d.entry.kind)))
            }
            FdKind::TcpListener | FdKind::TcpStream => Self::sock_filestat(),
            _ => Filestat::of(&d.host()?.metadata().map_err(errno::from_io)?),
        };
        st.write(m, out)
    }

    pub(super) fn fd_filestat_set_times(&self, fd: u32, atim: u64, mtim: u64, fst: u32) -> Result<(), Errno> {
        let (a, mt) = time_specs(atim, mtim, fst)?;
        let d = self.desc(fd)?;
        if d.entry.is_preopen {
            // wasmtime holds preopens as O_PATH descriptors, which futimens
            // refuses.
            return Err(Errno::BADF);
        }
        let f = d.host()?;
        sys::futimens(f.as_fd(), a, mt).map_err(host_err)
    }

    pub(super) fn fd_read(
        &mut self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        nread: Ptr,
    ) -> Result<(), Errno> {
        if self.is_socket_fd(fd) {
            return self.sock_read(m, fd, iovs, iovs_len, nread);
        }
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nread, 4)?;
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        let n = match d.entry.kind {
            FdKind::File => {
                let pos = d.entry.offset;
                let f = d.file.as_ref().ok_or(Errno::BADF)?;
                let n = f
                    .read_at(m.slice_mut(buf, len)?, pos)
                    .map_err(errno::from_io)?;
                d.entry.offset = pos.checked_add(n as u64).ok_or(Errno::OVERFLOW)?;
                n
            }
            FdKind::Stdin => {
                if len == 0 {
                    // wasmtime: a zero-length blocking read is "interrupted".
                    return Err(Errno::INTR);
                }
                sys::read(0, m.slice_mut(buf, len)?).map_err(host_err)?
            }
            _ => return Err(Errno::BADF),
        };
        m.write_u32(nread, n as u32)
    }

    /// The file behind `fd` for positional I/O: `SPIPE` for the stdio fds
    /// of the direction (`stdio` is `Stdin` for reads, `Stdout` for writes,
    /// which stands for stderr too), `BADF` for anything else.
    fn positional(&self, fd: u32, stdio: FdKind) -> Result<&File, Errno> {
        let d = self.desc(fd)?;
        match (d.entry.kind, stdio) {
            (FdKind::File, _) => d.host(),
            (FdKind::Stdin, FdKind::Stdin) | (FdKind::Stdout | FdKind::Stderr, FdKind::Stdout) => Err(Errno::SPIPE),
            _ => Err(Errno::BADF),
        }
    }

    pub(super) fn fd_pread(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        offset: u64,
        nread: Ptr,
    ) -> Result<(), Errno> {
        let f = self.positional(fd, FdKind::Stdin)?;
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nread, 4)?;
        let n = f
            .read_at(m.slice_mut(buf, len)?, offset)
            .map_err(errno::from_io)?;
        m.write_u32(nread, n as u32)
    }

    pub(super) fn fd_write(
        &mut self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        nwritten: Ptr,
    ) -> Result<(), Errno> {
        if self.is_socket_fd(fd) {
            return self.sock_send(m, fd, iovs, iovs_len, nwritten);
        }
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nwritten, 4)?;
        let d = self.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        let data = m.slice(buf, len)?;
        let n = match d.entry.kind {
            FdKind::File => {
                let f = d.file.as_ref().ok_or(Errno::BADF)?;
                if d.entry.fdflags & FDFLAGS_APPEND != 0 {
                    let n = sys::pwrite_append(f, data).map_err(host_err)?;
                    d.entry.offset = f.metadata().map_err(errno::from_io)?.len();
                    n
                } else {
                    let pos = d.entry.offset;
                    let n = f.write_at(data, pos).map_err(errno::from_io)?;
                    d.entry.offset = pos.checked_add(n as u64).ok_or(Errno::OVERFLOW)?;
                    n
                }
            }
            FdKind::Stdout | FdKind::Stderr => {
                sys::write_all(stdio_host_fd(d.entry.kind), data).map_err(host_err)?;
                data.len()
            }
            _ => return Err(Errno::BADF),
        };
        m.write_u32(nwritten, n as u32)
    }

    pub(super) fn fd_pwrite(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        iovs: Ptr,
        iovs_len: u32,
        offset: u64,
        nwritten: Ptr,
    ) -> Result<(), Errno> {
        let f = self.positional(fd, FdKind::Stdout)?;
        let (buf, len) = m.first_nonempty_iovec(iovs, iovs_len)?;
        m.check(nwritten, 4)?;
        let data = m.slice(buf, len)?;
        // Like Linux pwrite(2) on an O_APPEND file, append mode wins.
        let n = if self.desc(fd)?.entry.fdflags & FDFLAGS_APPEND != 0 {
            sys::pwrite_append(f, data).map_err(host_err)?
        } else {
            f.write_at(data, offset).map_err(errno::from_io)?
        };
        m.write_u32(nwritten, n as u32)
    }

    pub(super) fn fd_prestat_get(&self, m: &mut Mem<'_>, fd: u32, out: Ptr) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        if !d.entry.is_preopen {
            return Err(Errno::BADF);
        }
        let name = &self.preopens[d.entry.preopen.unwrap_or(0) as usize].guest;
        let len = u32::try_from(name.len()).map_err(|_| Errno::OVERFLOW)?;
        m.check(out, 8)?;
        m.write_u8(out, 0)?; // preopentype::dir
        m.write_u32(out + 4, len)
    }

    pub(super) fn fd_prestat_dir_name(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        buf: Ptr,
        buf_len: u32,
    ) -> Result<(), Errno> {
        let d = self.desc(fd)?;
        if !d.entry.is_preopen {
            return Err(Errno::NOTDIR);
        }
        let name = &self.preopens[d.entry.preopen.unwrap_or(0) as usize].guest;
        if name.len() > buf_len as usize {
            return Err(Errno::NAMETOOLONG);
        }
        m.write_bytes(buf, name.as_bytes())
    }

    pub(super) fn fd_readdir(
        &self,
        m: &mut Mem<'_>,
        fd: u32,
        buf: Ptr,
        buf_len: u32,
        cookie: u64,
        used: Ptr,
    ) -> Result<(), Errno> {
        let dir = self.dir(fd)?.host()?;
        m.check(buf, u64::from(buf_len))?;
        m.check(used, 4)?;
        let self_meta = dir.metadata().map_err(errno::from_io)?;
        let self_ino = ino_hash(self_meta.dev(), self_meta.ino());
        let mut entries: Vec<(u64, u8, Vec<u8>)> = vec![
            (self_ino, FILETYPE_DIRECTORY, b".".to_vec()),
            (self_ino, FILETYPE_DIRECTORY, b"..".to_vec()),
        ];
        for name in sys::read_dir_names(dir.as_fd()).map_err(host_err)? {
            if std::str::from_utf8(&name).is_err() {
                return Err(Errno::ILSEQ);
            }
            let (dev, ino, mode) = sys::lstat_at(dir.as_fd(), &name).map_err(host_err)?;
            entries.push((ino_hash(dev, ino), filetype_of_mode(mode), name));
        }
        let cookie = usize::try_from(cookie).map_err(|_| Errno::OVERFLOW)?;
        // Serialize like wasmtime: each header, then the name, both cut off
        // where the buffer ends; a full buffer tells the guest to call again.
        let mut at = buf;
        let mut cap = buf_len;
        for (i, (ino, ty, name)) in entries.iter().enumerate().skip(cookie) {
            let mut header = [0u8; DIRENT_SIZE as usize];
            header[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            header[8..16].copy_from_slice(&ino.to_le_bytes());
            header[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
            header[20] = *ty;
            let n = cap.min(DIRENT_SIZE);
            m.write_bytes(at, &header[..n as usize])?;
            at = at.wrapping_add(n);
            cap -= n;
            if cap == 0 {
                return m.write_u32(used, buf_len);
            }
            let n = cap.min(name.len() as u32);
            m.write_bytes(at, &name[..n as usize])?;
            at = at.wrapping_add(n);
            cap -= n;
            if cap == 0 {
                return m.write_u32(used, buf_len);
            }
        }
        m.write_u32(used, buf_len - cap)
    }

    pub(super) fn fd_renumber(&mut self, from: u32, to: u32) -> Result<(), Errno> {
        if !self.fds.contains_key(&from) || !self.fds.contains_key(&to) {
            return Err(Errno::BADF);
        }
        if from != to {
            let mut d = self.fds.remove(&from).ok_or(Errno::BADF)?;
            self.free.insert(from);
            self.free.remove(&to);
            d.entry.fd = to;
            self.fds.insert(to, d); // drops (closes) what `to` was
        }
        Ok(())
    }

    pub(super) fn fd_seek(
        &mut self,
        m: &mut Mem<'_>,
        fd: u32,
        offset: i64,
        whence: u32,
        out: Ptr,
    ) -> Result<(), Errno> {
        if whence > 2 {
            return Err(Errno::INVAL);
        }
        m.check(out, 8)?;
        let d = self.seekable(fd)?;
        let pos = match whence {
            0 => u64::try_from(offset).map_err(|_| Errno::INVAL)?,
            1 => d
                .entry
                .offset
                .checked_add_signed(offset)
                .ok_or(Errno::INVAL)?,
            _ => {
                let size = d.host()?.metadata().map_err(errno::from_io)?.len();
                size.checked_add_signed(offset).ok_or(Errno::INVAL)?
            }
        };
        d.entry.offset = pos;
        m.write_u64(out, pos)
    }

    pub(super) fn fd_tell(&mut self, m: &mut Mem<'_>, fd: u32, out: Ptr) -> Result<(), Errno> {
        let pos = self.seekable(fd)?.entry.offset;
        m.write_u64(out, pos)
    }

}
