//! The fd table as plain data: capture for a checkpoint, rebuild on restore.

use super::*;

impl WasiCtx {
    /// The WASI state as plain data, for a snapshot: args, env, preopens, the
    /// fd table (each file's path relative to its preopen, flags, rights and
    /// offset), the free fd numbers, and the guest's monotonic time now.
    ///
    /// A file's path is its current location (found through
    /// `/proc/self/fd`, so renames after opening are followed) when that is
    /// inside its preopen, otherwise the path it was opened with.
    pub fn state(&self) -> WasiState {
        let fds = self
            .fds
            .values()
            .map(|d| {
                let mut e = d.entry.clone();
                if !e.is_preopen {
                    if let Some(p) = self.current_rel_path(d) {
                        e.rel_path = p;
                    }
                }
                if e.kind == FdKind::Stdin {
                    // Standard input from a file: how far the guest has read
                    // (a restore given the same file goes on from there).
                    e.offset = sys::regular_file_offset(0).unwrap_or(0);
                    e.size = sys::regular_file_size(0);
                }
                if e.kind == FdKind::File {
                    e.size = d.file.as_ref().and_then(|f| f.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len());
                }
                e
            })
            .collect();
        WasiState {
            args: self.args.clone(),
            env: self.env.clone(),
            preopens: self.preopens.clone(),
            fds,
            clock: ClockState {
                monotonic_last_ns: self.monotonic_now(),
            },
            free_fds: self.free.iter().copied().collect(),
        }
    }

    /// Why a checkpoint of this state could not be restored, if it could
    /// not: a file open on an fd was removed (no path leads to it, so a
    /// restore cannot reopen it, and what was written to it would be lost).
    /// Checkpointers refuse to write such a snapshot.
    ///
    /// With a gateway listener, this is also the checkpoint barrier: it
    /// waits until the gateway holds every byte the guest sent (so that
    /// the snapshot's counts are where the streams continue), and reports
    /// an unreachable gateway as the reason (the program then carries on).
    pub fn unrestorable(&self) -> Option<String> {
        if let Some(why) = self.gateway_sync() {
            return Some(why);
        }
        self.fds.values().find_map(|d| {
            let f = d.file.as_ref().filter(|_| d.entry.kind == FdKind::File)?;
            let m = f.metadata().ok()?;
            (m.nlink() == 0).then(|| {
                format!(
                    "fd {} (`{}`) is a file removed while open: a restore could not reopen it (its contents would be lost); close it before the checkpoint",
                    d.entry.fd, d.entry.rel_path
                )
            })
        })
    }

    fn current_rel_path(&self, d: &Desc) -> Option<String> {
        let file = d.file.as_ref()?;
        let root = self.roots_real.get(d.entry.preopen? as usize)?.as_ref()?;
        if file.metadata().ok()?.nlink() == 0 {
            return None; // unlinked: no path leads to it any more
        }
        let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
        let rel = link.strip_prefix(root).ok()?;
        let parts: Vec<&str> = rel
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<_>>()?;
        Some(parts.join("/"))
    }

    /// Rebuilds a context from a snapshot's state: reopens every preopen, and
    /// every file and directory at its path under its preopen with the same
    /// access mode, flags and offset. Files are never created or truncated
    /// here. The guest's monotonic clock continues from
    /// `state.clock.monotonic_last_ns`.
    pub fn from_state(state: &WasiState) -> Result<WasiCtx, WasiError> {
        let roots = state
            .preopens
            .iter()
            .map(|p| {
                open_preopen(p).map_err(|e| {
                    if std::path::Path::new(&p.host).is_absolute() {
                        e
                    } else {
                        // Relative to the directory the checkpointed program
                        // ran in, which the snapshot does not record.
                        WasiError::new(format!(
                            "{} (the snapshot names it as it was given, relative to the directory the checkpointed program ran in: restore from there, or give --dir an absolute path)",
                            e.message()
                        ))
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (gateway, mut gw_streams) = sock::reattach_gateway(state)?;
        let mut fds = BTreeMap::new();
        for e in &state.fds {
            if fds.contains_key(&e.fd) {
                return Err(WasiError::new(format!(
                    "the snapshot lists fd {} twice",
                    e.fd
                )));
            }
            // A preopen's fd is the preopened directory itself (it answers
            // `fd_prestat_get` with that preopen's name).
            if e.is_preopen
                && (e.kind != FdKind::Directory
                    || !e.rel_path.is_empty()
                    || e.preopen.is_none_or(|i| i as usize >= state.preopens.len()))
            {
                return Err(WasiError::new(format!(
                    "fd {} is marked as a preopen but is not a listed preopened directory ({:?}, preopen {:?}, path `{}`)",
                    e.fd, e.kind, e.preopen, e.rel_path
                )));
            }
            if sock::is_socket(e.kind) {
                let (entry, sock) = sock::reopen_socket(e, gateway.as_ref(), &mut gw_streams)?;
                fds.insert(e.fd, Desc { entry, file: None, sock });
                continue;
            }
            let file = match e.kind {
                FdKind::TcpListener | FdKind::TcpStream => None, // above
                FdKind::Stdin => {
                    // Read from a file up to `offset`: a restore whose own
                    // standard input is a file goes on from there (from a
                    // pipe or a terminal it reads what it is given).
                    if let (Some(was), Some(now)) = (e.size, sys::regular_file_size(0)) {
                        if was != now {
                            return Err(WasiError::new(format!(
                                "standard input is a file of {now} bytes; at the checkpoint it was a file of {was} bytes, read up to byte {}: give the restore the same input",
                                e.offset
                            )));
                        }
                    }
                    if e.offset > 0 {
                        sys::seek_regular_file(0, e.offset);
                    }
                    None
                }
                FdKind::Stdout | FdKind::Stderr => None,
                FdKind::File | FdKind::Directory => {
                    let idx = e.preopen.ok_or_else(|| {
                        WasiError::new(format!(
                            "fd {} (`{}`) belongs to no preopened directory",
                            e.fd, e.rel_path
                        ))
                    })?;
                    let root = roots.get(idx as usize).ok_or_else(|| {
                        WasiError::new(format!(
                            "fd {} refers to preopen #{idx}, which the snapshot does not list",
                            e.fd
                        ))
                    })?;
                    let host = &state.preopens[idx as usize].host;
                    let file = reopen(root, e).map_err(|err| WasiError::reopen(e, host, err))?;
                    if let Some(was) = e.size {
                        let now = file.metadata().map(|m| m.len()).unwrap_or(0);
                        if now != was {
                            return Err(WasiError::new(format!(
                                "`{}` (fd {}, under preopen `{host}`) has {now} bytes, at the checkpoint it had {was}: it changed after the checkpoint; put it back as it was (or restore a snapshot taken since)",
                                e.rel_path, e.fd
                            )));
                        }
                    }
                    Some(file)
                }
            };
            fds.insert(
                e.fd,
                Desc {
                    entry: e.clone(),
                    file,
                    sock: None,
                },
            );
        }
        Ok(WasiCtx {
            roots_real: state
                .preopens
                .iter()
                .map(|p| std::fs::canonicalize(&p.host).ok())
                .collect(),
            args: state.args.clone(),
            env: state.env.clone(),
            preopens: state.preopens.clone(),
            fds,
            free: state
                .free_fds
                .iter()
                .copied()
                .filter(|fd| !state.fds.iter().any(|e| e.fd == *fd))
                .collect(),
            mono_start: Instant::now(),
            mono_base: state.clock.monotonic_last_ns,
            gateway,
        })
    }
}

/// Reopens a file or directory of a snapshot beneath its preopen.
fn reopen(root: &File, e: &FdEntry) -> Result<File, Errno> {
    let mut flags = match (e.kind, e.read, e.write) {
        (FdKind::Directory, _, _) => libc::O_RDONLY | libc::O_DIRECTORY,
        (_, true, true) => libc::O_RDWR,
        (_, false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    if e.kind == FdKind::File {
        flags |= libc::O_NOCTTY;
    }
    let fd = if e.rel_path.is_empty() {
        sys::openat(root.as_fd(), b".", flags, 0).map_err(host_err)?
    } else {
        open_beneath(root.as_fd(), e.rel_path.as_bytes(), flags, 0, true)?
    };
    let file = File::from(fd);
    let is_dir = file.metadata().map_err(errno::from_io)?.is_dir();
    if e.kind == FdKind::File && is_dir {
        return Err(Errno::ISDIR);
    }
    Ok(file)
}
