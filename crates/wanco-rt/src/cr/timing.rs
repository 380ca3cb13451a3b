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
