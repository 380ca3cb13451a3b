//! `poll_oneoff`: clocks and fd readiness.

use super::*;

/// A parsed `poll_oneoff` subscription.
enum Sub {
    Clock { deadline: Option<Instant> },
    Stdin,
    FileRead { fd: u32 },
    Write,
    /// A socket with a host descriptor: ready as `poll(2)` says.
    Sock { fd: u32, read: bool },
    /// A connection restored as reset: always ready, with `HANGUP`.
    Reset { read: bool },
}

impl WasiCtx {
    // ---- poll_oneoff -----------------------------------------------------

    pub(super) fn poll_oneoff(
        &mut self,
        m: &mut Mem<'_>,
        subs: Ptr,
        events: Ptr,
        n: u32,
        nevents: Ptr,
    ) -> Result<(), Errno> {
        if n == 0 {
            return Err(Errno::INVAL);
        }
        m.check(subs, u64::from(n) * u64::from(SUBSCRIPTION_SIZE))?;
        m.check(events, u64::from(n) * u64::from(EVENT_SIZE))?;
        m.check(nevents, 4)?;
        // Read all subscriptions: (userdata, tag, payload).
        let mut raw = Vec::with_capacity(n as usize);
        for i in 0..n {
            let s = subs + i * SUBSCRIPTION_SIZE;
            let userdata = m.read_u64(s)?;
            let tag = m.read_u8(s + 8)?;
            match tag {
                0 => {
                    let id = m.read_u32(s + 16)?;
                    let timeout = m.read_u64(s + 24)?;
                    let flags = m.read_u16(s + 40)?;
                    if id > CLOCK_THREAD_CPUTIME || flags & !SUBCLOCK_ABSTIME != 0 {
                        return Err(Errno::INVAL);
                    }
                    raw.push((userdata, tag, id, timeout, flags));
                }
                1 | 2 => raw.push((userdata, tag, m.read_u32(s + 16)?, 0, 0)),
                _ => return Err(Errno::INVAL),
            }
        }
        // wasmtime's fast path: a single relative timer just sleeps.
        if let [(userdata, 0, _, timeout, flags)] = raw[..] {
            if flags & SUBCLOCK_ABSTIME == 0 {
                std::thread::sleep(Duration::from_nanos(timeout));
                write_event(m, events, userdata, EVENTTYPE_CLOCK, 1, 0)?;
                return m.write_u32(nevents, 1);
            }
        }
        let now = Instant::now();
        let mut parsed = Vec::with_capacity(raw.len());
        for &(_, tag, a, timeout, flags) in &raw {
            let sub = match tag {
                0 => {
                    let abs = flags & SUBCLOCK_ABSTIME != 0;
                    let wait = match (a, abs) {
                        (CLOCK_MONOTONIC, false) | (CLOCK_REALTIME, false) => Some(timeout),
                        (CLOCK_MONOTONIC, true) => {
                            // Guest monotonic time -> time left from now.
                            Some(timeout.saturating_sub(self.monotonic_now()))
                        }
                        (CLOCK_REALTIME, true) => {
                            Some(timeout.saturating_sub(Self::realtime_now()?))
                        }
                        _ => return Err(Errno::INVAL),
                    };
                    Sub::Clock {
                        deadline: wait.and_then(|ns| now.checked_add(Duration::from_nanos(ns))),
                    }
                }
                1 => {
                    let d = self.desc(a)?;
                    match d.entry.kind {
                        FdKind::Stdin => Sub::Stdin,
                        FdKind::File => Sub::FileRead { fd: a },
                        FdKind::TcpListener | FdKind::TcpStream if d.sock.is_some() => {
                            Sub::Sock { fd: a, read: true }
                        }
                        FdKind::TcpStream => Sub::Reset { read: true },
                        _ => return Err(Errno::BADF),
                    }
                }
                _ => {
                    let d = self.desc(a)?;
                    match d.entry.kind {
                        FdKind::Stdout | FdKind::Stderr | FdKind::File => Sub::Write,
                        FdKind::TcpListener | FdKind::TcpStream if d.sock.is_some() => {
                            Sub::Sock { fd: a, read: false }
                        }
                        FdKind::TcpStream => Sub::Reset { read: false },
                        _ => return Err(Errno::BADF),
                    }
                }
            };
            parsed.push(sub);
        }
        // Wait until something is ready: files and stdout are always ready,
        // stdin when it has data, timers at their deadline.
        let always_ready = parsed
            .iter()
            .any(|s| matches!(s, Sub::FileRead { .. } | Sub::Write | Sub::Reset { .. }));
        let watches_stdin = parsed.iter().any(|s| matches!(s, Sub::Stdin));
        let earliest = parsed
            .iter()
            .filter_map(|s| match s {
                Sub::Clock { deadline } => Some(*deadline),
                _ => None,
            })
            .min_by(|a, b| match (a, b) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) => x.cmp(y),
            });
        let mut stdin_ready = false;
        // `revents` of each socket subscription (by index into `parsed`).
        let mut revents: Vec<i16> = vec![0; parsed.len()];
        if parsed.iter().any(|s| matches!(s, Sub::Sock { .. })) {
            // Sockets (and stdin) wait together in one poll(2).
            let mut pfds = Vec::new();
            let mut slots = Vec::new();
            if watches_stdin {
                pfds.push(libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 });
            }
            for (i, s) in parsed.iter().enumerate() {
                if let Sub::Sock { fd, read } = s {
                    let host = self.desc(*fd)?.sock.as_ref().ok_or(Errno::BADF)?.as_fd();
                    let events = if *read { libc::POLLIN } else { libc::POLLOUT };
                    pfds.push(libc::pollfd { fd: host.as_raw_fd(), events, revents: 0 });
                    slots.push(i);
                }
            }
            let timeout = if always_ready {
                Some(Duration::ZERO)
            } else {
                match earliest {
                    Some(Some(d)) => Some(d.saturating_duration_since(Instant::now())),
                    _ => None, // no timer, or only timers that never fire
                }
            };
            sys::poll_fds(&mut pfds, timeout).map_err(errno::from_host_net)?;
            let first = usize::from(watches_stdin);
            stdin_ready = watches_stdin && pfds[0].revents != 0;
            for (slot, &i) in slots.iter().enumerate() {
                revents[i] = pfds[first + slot].revents;
            }
        } else if !always_ready {
            let timeout = earliest.map(|d| d.map(|d| d.saturating_duration_since(Instant::now())));
            match (watches_stdin, timeout) {
                (true, t) => stdin_ready = sys::poll_readable(0, t.flatten()),
                (false, Some(Some(t))) => std::thread::sleep(t),
                (false, _) => {
                    // Only timers that never fire: block forever, as the host would.
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
            }
        } else if watches_stdin {
            stdin_ready = sys::poll_readable(0, Some(Duration::ZERO));
        }
        let now = Instant::now();
        let mut count = 0u32;
        for (i, (sub, &(userdata, tag, _, _, _))) in parsed.iter().zip(&raw).enumerate() {
            let ev = events + count * EVENT_SIZE;
            let written = match sub {
                Sub::Clock { deadline } => {
                    if deadline.is_some_and(|d| d <= now) {
                        write_event(m, ev, userdata, EVENTTYPE_CLOCK, 0, 0)?;
                        true
                    } else {
                        false
                    }
                }
                Sub::Stdin => {
                    if stdin_ready {
                        write_event(m, ev, userdata, EVENTTYPE_FD_READ, 1, 0)?;
                    }
                    stdin_ready
                }
                Sub::FileRead { fd } => {
                    let d = self.desc(*fd)?;
                    let size = d.host()?.metadata().map_err(errno::from_io)?.len();
                    let flags = if size <= d.entry.offset {
                        EVENTRW_HANGUP
                    } else {
                        0
                    };
                    write_event(m, ev, userdata, EVENTTYPE_FD_READ, 1, flags)?;
                    true
                }
                Sub::Write => {
                    debug_assert_eq!(tag, 2);
                    write_event(m, ev, userdata, EVENTTYPE_FD_WRITE, 1, 0)?;
                    true
                }
                Sub::Reset { read } => {
                    let ty = if *read { EVENTTYPE_FD_READ } else { EVENTTYPE_FD_WRITE };
                    write_event(m, ev, userdata, ty, u64::from(*read), EVENTRW_HANGUP)?;
                    true
                }
                Sub::Sock { fd, read } => {
                    // As wasmtime 36: an invalid descriptor is BADF, an
                    // error condition IO, a hang-up sets HANGUP; a read
                    // event says how many bytes are waiting (at least 1),
                    // a write event 0.
                    let r = revents[i];
                    let ty = if *read { EVENTTYPE_FD_READ } else { EVENTTYPE_FD_WRITE };
                    if r == 0 {
                        false
                    } else {
                        let (error, flags) = if r & libc::POLLNVAL != 0 {
                            (Errno::BADF, 0)
                        } else if r & libc::POLLERR != 0 {
                            (Errno::IO, 0)
                        } else if r & libc::POLLHUP != 0 {
                            (Errno::SUCCESS, EVENTRW_HANGUP)
                        } else {
                            (Errno::SUCCESS, 0)
                        };
                        let nbytes = if !*read || error != Errno::SUCCESS {
                            0
                        } else {
                            let d = self.desc(*fd)?;
                            match &d.sock {
                                Some(Sock::Stream(s)) => sys::readable_bytes(s.as_fd()).unwrap_or(0).max(1),
                                _ => 1,
                            }
                        };
                        write_event(m, ev, userdata, ty, nbytes, flags)?;
                        if error != Errno::SUCCESS {
                            m.write_u16(ev + 8, error.0)?;
                        }
                        true
                    }
                }
            };
            if written {
                count += 1;
            }
        }
        m.write_u32(nevents, count)
    }
}

/// Writes one `event` (only its fields: padding is left as it was).
fn write_event(
    m: &mut Mem<'_>,
    at: Ptr,
    userdata: u64,
    ty: u8,
    nbytes: u64,
    flags: u16,
) -> Result<(), Errno> {
    m.write_u64(at, userdata)?;
    m.write_u16(at + 8, 0)?;
    m.write_u8(at + 10, ty)?;
    m.write_u64(at + 16, nbytes)?;
    m.write_u16(at + 24, flags)
}
