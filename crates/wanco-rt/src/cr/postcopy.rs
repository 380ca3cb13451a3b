//! Post-copy restore (`wanco migrate --postcopy`): the restored program runs
//! before its memory has arrived; its pages come from the source over the
//! migration's connection, through `wanco agent`, which hands this process
//! one end of a Unix socket pair (`--page-server-fd N`).
//!
//! The socket carries (all integers little-endian `u32`):
//!
//! * agent → runtime: first `WPM1`, a count `n` and `n` page indices (the
//!   Wasm pages that hold data, ascending; every other page is zero); then
//!   frames `page, len, len bytes of LZ4` (the page's 65,536 bytes), in any
//!   order, each page once or more (later copies are ignored); finally
//!   `0xFFFF_FFFF, 0`: *release*.
//! * runtime → agent: `page` to ask for a page the program touched
//!   (answered by its frame, ahead of the pages pushed in the background,
//!   which the source pushes only once the program runs);
//!   `0xFFFF_FFFF, on_demand` once every page is in.
//!
//! With `userfaultfd` (see [`super::pager`]) the pages are registered as
//! missing and the pager thread puts each in as it arrives, a page the
//! program touches first asked for at once (the touching thread sleeps in
//! the kernel until it is in); a touched page outside the map gets zeros.
//! Without it (qemu-user, no permission) every page is asked for and read
//! in before the program runs (the eager fallback, still over the
//! connection).
//!
//! Either way [`super::pager::settle`] — which every host call, checkpoint,
//! trap message and the program's end waits for — waits until the
//! **release**, not only until the pages are in: the agent releases the
//! program only after the source has passed its point of no return, so a
//! destination whose link or source is lost before can be killed having had
//! no effect outside (exactly one copy runs). If the socket closes before
//! the release the process ends (exit 75) without a host call made.

use std::ffi::c_void;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicBool, Ordering};

use super::pager::{
    external_begin, external_done, open_uffd, UffdMsg, UffdioCopy, UffdioZeropage, CAN_COPY, CAN_ZEROPAGE, PAGE, UFFDIO_COPY,
    UFFDIO_REGISTER_MODE_MISSING, UFFDIO_UNREGISTER, UFFDIO_WAKE, UFFDIO_ZEROPAGE, UFFD_EVENT_PAGEFAULT,
};
use super::uffd::{UffdioRange, UffdioRegister, UFFDIO_REGISTER};

/// The page server's descriptor (`--page-server-fd`), -1 when none.
static FD: AtomicI32 = AtomicI32::new(-1);
/// A post-copy restore was started (the gate must not wait for the pages).
static STARTED: AtomicBool = AtomicBool::new(false);

const MAGIC: &[u8; 4] = b"WPM1";
/// The marker of release (agent → runtime) and of "all in" (runtime → agent).
const MARK: u32 = u32::MAX;

/// `--page-server-fd N`: restore the memory from the page server on fd `fd`.
pub fn set_page_server(fd: RawFd) {
    FD.store(fd, Ordering::Release);
}

/// Whether a page server was given.
pub fn page_server() -> bool {
    FD.load(Ordering::Acquire) >= 0
}

/// Whether a post-copy restore runs (its memory may still be coming: the
/// gate opens without waiting for it).
pub fn started() -> bool {
    STARTED.load(Ordering::Acquire)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// One frame from the page server: `(page, lz4)`, `(MARK, [])` for release.
fn read_frame(r: &mut impl Read) -> Result<(u32, Vec<u8>), String> {
    let lost = |e: std::io::Error| format!("the page server (wanco agent) is gone: {e}");
    let page = read_u32(r).map_err(lost)?;
    let len = read_u32(r).map_err(lost)? as usize;
    if len > 2 * PAGE {
        return Err(format!("the page server sent {len} bytes for page {page}: more than a compressed page can be"));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data).map_err(lost)?;
    Ok((page, data))
}

/// Lost the agent (or the migration) before the release: nothing the
/// program did is seen outside; end.
fn abandoned(why: &str) -> ! {
    // Not `eprintln!`: with the agent gone stderr may be a broken pipe, and
    // a panic would end only this thread, leaving the program waiting.
    let _ = writeln!(std::io::stderr(), "note: the post-copy migration was abandoned before the program made any host call ({why}); this copy ends");
    std::process::exit(75)
}

fn refuse(snapshot: &str, why: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "error: cannot restore `{snapshot}`: {why}");
    std::process::exit(2)
}

/// Restore `memory` (fresh, all zero, `memory.len() / 65536` pages) from
/// the page server: lazily with `userfaultfd` where the system allows it,
/// else every page now. Returns whether it is lazy. The error is a
/// refusal's reason (a page map that does not fit the memory).
pub fn start(memory: &mut [u8], snapshot: &str) -> Result<bool, String> {
    let fd = FD.swap(-1, Ordering::AcqRel);
    if fd < 0 {
        return Err("no page server".into());
    }
    // SAFETY: the agent handed this descriptor to this process for this
    // use only; it is owned from here on.
    let mut sock = unsafe { std::fs::File::from_raw_fd(fd) };
    let pages = memory.len() / PAGE;
    let mut magic = [0u8; 4];
    sock.read_exact(&mut magic).map_err(|e| format!("the page server sent no page map: {e}"))?;
    if &magic != MAGIC {
        return Err(format!("the page server sent {magic:02x?}, expected the page map `WPM1`"));
    }
    let n = read_u32(&mut sock).map_err(|e| format!("the page map is cut short: {e}"))? as usize;
    if n > pages {
        return Err(format!("the page map names {n} pages, the memory has {pages}"));
    }
    let mut want = vec![false; pages];
    let mut last: Option<u32> = None;
    // In one read (the socket is unbuffered: one read per entry cost 20 ms
    // for a 1 GiB memory, before the program could run).
    let mut map = vec![0u8; n * 4];
    sock.read_exact(&mut map).map_err(|e| format!("the page map is cut short: {e}"))?;
    for entry in map.chunks_exact(4) {
        let p = u32::from_le_bytes(entry.try_into().expect("4 bytes"));
        if p as usize >= pages || last.is_some_and(|l| p <= l) {
            return Err(format!("the page map names page {p} out of order or beyond the memory's {pages} pages"));
        }
        want[p as usize] = true;
        last = Some(p);
    }
    STARTED.store(true, Ordering::Release);
    external_begin();
    let lazy = std::env::var_os("WANCO_LAZY_RESTORE").is_none_or(|v| v != "0");
    if lazy && n > 0 {
        if let Some(p) = RemotePager::register(memory, sock.try_clone().map_err(|e| e.to_string())?, want.clone(), n, snapshot) {
            // A thread of its own: it blocks on the socket and the faults.
            std::thread::Builder::new()
                .name("wanco-postcopy".into())
                .spawn(move || p.run())
                .map_err(|e| format!("cannot start the post-copy pager thread: {e}"))?;
            return Ok(true);
        }
    }
    // Eager: ask for every page, read them all now, then wait for the
    // release on a thread of its own.
    let asks: Vec<u8> = (0..pages as u32).filter(|p| want[*p as usize]).flat_map(|p| p.to_le_bytes()).collect();
    if let Err(e) = sock.write_all(&asks) {
        abandoned(&format!("the page server (wanco agent) is gone: {e}"));
    }
    let mut got = 0usize;
    let mut have = vec![false; pages];
    while got < n {
        let (page, lz4) = read_frame(&mut sock).unwrap_or_else(|e| abandoned(&e));
        if page == MARK || !want.get(page as usize).copied().unwrap_or(false) {
            refuse(snapshot, &format!("the page server sent page {page}, which the page map does not name"));
        }
        if have[page as usize] {
            continue;
        }
        let dst = &mut memory[page as usize * PAGE..(page as usize + 1) * PAGE];
        wanco_state::snapshot::unpack_lz4_page(page, &lz4, dst).unwrap_or_else(|e| refuse(snapshot, &e));
        have[page as usize] = true;
        got += 1;
    }
    super::timing::lazy_memory_in(n, 0, std::time::Duration::ZERO);
    std::thread::Builder::new()
        .name("wanco-postcopy".into())
        .spawn(move || all_in_then_release(sock, 0))
        .map_err(|e| format!("cannot start the post-copy thread: {e}"))?;
    Ok(false)
}

/// A post-copy restore of a program without linear memory: the page map
/// must be empty; the host calls still wait for the release. Nothing to do
/// if no page server was given.
pub fn without_memory() -> Result<(), String> {
    if !page_server() {
        return Ok(());
    }
    // A memory of no page: the map must name none.
    start(&mut [], "the snapshot").map(|_| ())
}

/// Say every page is in, wait for the release, then let [`super::pager::settle`] go.
fn all_in_then_release(mut sock: std::fs::File, on_demand: u32) {
    let mut msg = MARK.to_le_bytes().to_vec();
    msg.extend_from_slice(&on_demand.to_le_bytes());
    if let Err(e) = sock.write_all(&msg) {
        abandoned(&format!("the page server (wanco agent) is gone: {e}"));
    }
    match read_frame(&mut sock) {
        Ok((MARK, _)) => external_done(),
        Ok((page, _)) => abandoned(&format!("the page server sent page {page} after all were in")),
        Err(e) => abandoned(&e),
    }
}

/// The post-copy pager: puts the pages in as they arrive, asks for those
/// touched first.
struct RemotePager {
    uffd: libc::c_int,
    range: UffdioRange,
    sock: std::fs::File,
    want: Vec<bool>,
    done: Vec<bool>,
    asked: Vec<bool>,
    /// Pages of the map not in yet.
    left: usize,
    total: usize,
    on_demand: u32,
    snapshot: String,
}

impl RemotePager {
    fn register(memory: &mut [u8], sock: std::fs::File, want: Vec<bool>, n: usize, snapshot: &str) -> Option<RemotePager> {
        let uffd = open_uffd()?;
        // SAFETY: the range is our linear memory, which nothing uses yet;
        // its contents are zero before and after.
        unsafe { libc::madvise(memory.as_mut_ptr() as *mut c_void, memory.len(), libc::MADV_DONTNEED) };
        let range = UffdioRange { start: memory.as_mut_ptr() as u64, len: memory.len() as u64 };
        let mut reg = UffdioRegister { range, mode: UFFDIO_REGISTER_MODE_MISSING, ioctls: 0 };
        // SAFETY: `reg` is the argument this ioctl takes; the range is
        // memory this process mapped (the linear memory, unused yet).
        let ok = unsafe { libc::ioctl(uffd, UFFDIO_REGISTER as _, &mut reg as *mut UffdioRegister) } == 0;
        if !ok || reg.ioctls & (CAN_COPY | CAN_ZEROPAGE) != CAN_COPY | CAN_ZEROPAGE {
            // SAFETY: closing our own descriptor (unregisters the range).
            unsafe { libc::close(uffd) };
            return None;
        }
        let pages = want.len();
        Some(RemotePager {
            uffd,
            range,
            sock,
            want,
            done: vec![false; pages],
            asked: vec![false; pages],
            left: n,
            total: n,
            on_demand: 0,
            snapshot: snapshot.to_string(),
        })
    }

    fn run(mut self) {
        let t0 = std::time::Instant::now();
        let mut scratch = vec![0u8; PAGE];
        let sock_fd = std::os::fd::AsRawFd::as_raw_fd(&self.sock);
        while self.left > 0 {
            let mut p = [
                libc::pollfd { fd: self.uffd, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: sock_fd, events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: two pollfds, their count passed.
            let n = unsafe { libc::poll(p.as_mut_ptr(), 2, -1) };
            if n < 0 {
                continue; // EINTR
            }
            if p[0].revents != 0 {
                self.faults();
            }
            if p[1].revents != 0 {
                let (page, lz4) = read_frame(&mut self.sock).unwrap_or_else(|e| abandoned(&e));
                if page == MARK || !self.want.get(page as usize).copied().unwrap_or(false) {
                    self.fail(&format!("the page server sent page {page}, which the page map does not name"));
                }
                if self.done[page as usize] {
                    continue;
                }
                if let Err(e) = wanco_state::snapshot::unpack_lz4_page(page, &lz4, &mut scratch) {
                    self.fail(&e);
                }
                let dst = self.range.start + (page as usize * PAGE) as u64;
                let mut c = UffdioCopy { dst, src: scratch.as_ptr() as u64, len: PAGE as u64, mode: 0, copy: 0 };
                // SAFETY: copies our scratch page into a registered,
                // still-missing page of the range (`done` says so).
                if let Err(e) = super::uffd::retry(|| unsafe { libc::ioctl(self.uffd, UFFDIO_COPY as _, &mut c as *mut UffdioCopy) }) {
                    self.fail(&format!("cannot put memory page {page} in place: {e}"));
                }
                self.done[page as usize] = true;
                self.left -= 1;
            }
        }
        let r = self.range;
        // SAFETY: the range is the one registered; unregistering wakes any
        // thread still waiting (on a zero page), the wake is for kernels
        // that would not.
        unsafe {
            libc::ioctl(self.uffd, UFFDIO_UNREGISTER as _, &r as *const UffdioRange);
            libc::ioctl(self.uffd, UFFDIO_WAKE as _, &r as *const UffdioRange);
            libc::close(self.uffd);
        }
        super::timing::lazy_memory_in(self.total, self.on_demand as usize, t0.elapsed());
        all_in_then_release(self.sock, self.on_demand);
    }

    /// Serve the pending faults: zeros for a page outside the map, a request
    /// for one of the map not asked for yet.
    fn faults(&mut self) {
        loop {
            let mut msg = UffdMsg::default();
            // SAFETY: reading one message into a buffer of its size.
            let n = unsafe { libc::read(self.uffd, &mut msg as *mut UffdMsg as *mut c_void, std::mem::size_of::<UffdMsg>()) };
            if n != std::mem::size_of::<UffdMsg>() as isize {
                return; // EAGAIN: nothing pending
            }
            if msg.event != UFFD_EVENT_PAGEFAULT {
                continue;
            }
            let page = msg.address.wrapping_sub(self.range.start) as usize / PAGE;
            if page >= self.done.len() {
                continue;
            }
            let at = self.range.start + (page * PAGE) as u64;
            if self.done[page] {
                let r = UffdioRange { start: at, len: PAGE as u64 };
                // SAFETY: a range inside the registered one.
                unsafe { libc::ioctl(self.uffd, UFFDIO_WAKE as _, &r as *const UffdioRange) };
            } else if !self.want[page] {
                let mut z = UffdioZeropage { range: UffdioRange { start: at, len: PAGE as u64 }, mode: 0, zeropage: 0 };
                // SAFETY: maps zeros at a registered, still-missing page.
                if let Err(e) = super::uffd::retry(|| unsafe { libc::ioctl(self.uffd, UFFDIO_ZEROPAGE as _, &mut z as *mut UffdioZeropage) }) {
                    self.fail(&format!("cannot put memory page {page} in place: {e}"));
                }
                self.done[page] = true;
            } else if !self.asked[page] {
                self.asked[page] = true;
                self.on_demand += 1;
                if let Err(e) = self.sock.write_all(&(page as u32).to_le_bytes()) {
                    abandoned(&format!("the page server (wanco agent) is gone: {e}"));
                }
            }
        }
    }

    fn fail(&self, why: &str) -> ! {
        refuse(&self.snapshot, why)
    }
}
