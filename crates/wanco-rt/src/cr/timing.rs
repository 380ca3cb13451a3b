//! Durations of checkpoint and restore phases, printed on stderr when
//! `WANCO_CR_TIMING` is set.


use std::sync::Mutex;

/// When the restore began, and its phases so far (for `WANCO_CR_TIMING`).
pub(crate) static RESTORE_START: Mutex<Option<(std::time::Instant, Phases)>> = Mutex::new(None);

pub(crate) fn timing() -> bool {
    std::env::var_os("WANCO_CR_TIMING").is_some()
}

/// Durations of the phases of a checkpoint, printed with `WANCO_CR_TIMING`.
pub(crate) struct Phases {
    last: std::time::Instant,
    done: Vec<(&'static str, u128)>,
}

impl Phases {
    pub(crate) fn start() -> Phases {
        Phases { last: std::time::Instant::now(), done: Vec::new() }
    }

    pub(crate) fn mark(&mut self, what: &'static str) {
        let now = std::time::Instant::now();
        self.done.push((what, (now - self.last).as_micros()));
        self.last = now;
    }

    pub(crate) fn report(&self) {
        if timing() {
            let parts: Vec<String> = self.done.iter().map(|(w, us)| format!("{w} {us} us")).collect();
            eprintln!("wanco-timing: phases: {}", parts.join(", "));
        }
    }
}

/// Mark the start of a restore (reading the snapshot) for `WANCO_CR_TIMING`.
pub fn restore_started() {
    *RESTORE_START.lock().unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), Phases::start()));
}

/// End of a restore phase (for `WANCO_CR_TIMING`).
pub fn restore_mark(what: &'static str) {
    if let Some((_, p)) = RESTORE_START.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        p.mark(what);
    }
}

/// A lazy restore's memory is all in place (for `WANCO_CR_TIMING`):
/// `pages` stored pages, `on_demand` of them (or zero pages) put in because
/// the program touched them first, `took` since the pager started.
pub fn lazy_memory_in(pages: usize, on_demand: usize, took: std::time::Duration) {
    if timing() {
        let since = RESTORE_START.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(t, _)| t.elapsed().as_micros());
        eprintln!(
            "wanco-timing: lazy memory: {pages} pages in place {} us after the restore began (pager {} us, {on_demand} on demand)",
            since.unwrap_or(0),
            took.as_micros()
        );
    }
}

/// The gate descriptor (`--gate-fd`) still open after `G`, to which the
/// moment the restored code resumes is written ([`resumed`]); -1: none.
static RESUME_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
/// How a memory image was used by this restore (`mapped`, `copied`), if any.
static IMAGE_USE: Mutex<Option<&'static str>> = Mutex::new(None);

/// Record how the restore used its memory image (reported by [`resumed`]).
pub fn set_image_use(how: &'static str) {
    *IMAGE_USE.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
}

/// Once the restored code is about to run, write `T<ns>[ image=HOW]\n` to
/// `fd` (`CLOCK_REALTIME` in nanoseconds) and close it.
pub fn report_resume_to(fd: i32) {
    RESUME_FD.store(fd, std::sync::atomic::Ordering::SeqCst);
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    (t.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec as u64)
}

/// The restored frames are rebuilt: the next instruction is the program's
/// own. Tells the gate descriptor when (the destination's half of a
/// migration's downtime, measured on the runtimes' clocks) and closes it.
pub(crate) fn resumed() {
    let fd = RESUME_FD.swap(-1, std::sync::atomic::Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    let now = realtime_ns();
    let image = IMAGE_USE.lock().unwrap_or_else(|e| e.into_inner()).map(|h| format!(" image={h}")).unwrap_or_default();
    let line = format!("T{now}{image}\n");
    // SAFETY: writing a local buffer to, then closing, the gate's
    // descriptor, which nothing else uses. Best effort: the agent may be gone.
    unsafe {
        libc::write(fd, line.as_ptr().cast(), line.len());
        libc::close(fd);
    }
}
