//! The process's first thread as a helper for the Wasm thread.
//!
//! Compiled code runs on a thread of its own, with a large stack
//! ([`crate::signals::run_on_wasm_stack`]); the first thread only waits for
//! it to end. While it waits it runs jobs the Wasm thread hands it with
//! [`join`]: a checkpoint packs memory on it while the Wasm thread decodes
//! the metadata and walks its stack, a restore decompresses half of the
//! pages on it. No thread is started for this: starting one costs about
//! 100 µs on a virtual machine, as much as the work it would share.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Mutex;

/// A job for the helper.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Where jobs go while a helper serves them.
static JOBS: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

/// Serve jobs on this thread until [`Serving`] is dropped (the Wasm thread
/// ended). Call [`serving`] first, before starting the thread that hands
/// out jobs.
pub(crate) fn serve(jobs: mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        job();
    }
}

/// Open the job queue; jobs are accepted until the returned guard is dropped.
pub(crate) fn serving() -> (Serving, mpsc::Receiver<Job>) {
    let (tx, rx) = mpsc::channel();
    *JOBS.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    (Serving, rx)
}

/// Closes the job queue when dropped (also when the Wasm thread unwinds),
/// so that [`serve`] returns.
pub(crate) struct Serving;

impl Drop for Serving {
    fn drop(&mut self) {
        JOBS.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Whether a helper serves jobs (there is a Wasm thread).
pub fn available() -> bool {
    JOBS.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Hand `job` to the helper and go on without waiting for it (a lazy
/// restore's pager, [`crate::cr::pager`]); the job is given back if there is
/// no helper.
pub fn spawn(job: Job) -> Result<(), Job> {
    let Some(tx) = JOBS.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return Err(job);
    };
    tx.send(job).map_err(|mpsc::SendError(job)| job)
}

/// Run `a` on the helper and `b` here, at the same time, and return both
/// results. Without a helper (no Wasm thread, e.g. in tests) both run here,
/// `a` first. A panic in either is resumed here once both are done.
pub fn join<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    let Some(tx) = JOBS.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        let ra = a();
        return (ra, b());
    };
    let (done_tx, done_rx) = mpsc::sync_channel::<std::thread::Result<A>>(1);
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(a));
        let _ = done_tx.send(r);
    });
    // SAFETY: the job borrows from this frame. It is only erased to
    // 'static to cross the queue: this function does not return or unwind
    // before `done_rx` has the job's result, i.e. before `a` has run and
    // been dropped (after which the job touches only its own sender). If
    // the helper has gone, `send` gives the job back and it runs here.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    if let Err(mpsc::SendError(job)) = tx.send(job) {
        job();
    }
    let rb = catch_unwind(AssertUnwindSafe(b));
    let ra = match done_rx.recv() {
        Ok(r) => r,
        // The queue dropped the job unrun: only if the helper panicked in
        // another job, which `join` never lets happen.
        Err(_) => Err(Box::new("the helper thread is gone") as Box<dyn std::any::Any + Send>),
    };
    match (ra, rb) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(p), _) | (_, Err(p)) => resume_unwind(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_runs_both_with_and_without_a_helper() {
        let data = [1u64, 2, 3];
        let (a, b) = join(|| data.iter().sum::<u64>(), || data.len());
        assert_eq!((a, b), (6, 3));
        let (serving, rx) = serving();
        let helper = std::thread::spawn(move || serve(rx));
        let here = std::thread::current().id();
        let (ta, tb) = join(|| std::thread::current().id(), || std::thread::current().id());
        assert_ne!(ta, here, "a ran on the helper");
        assert_eq!(tb, here);
        let (a, b) = join(|| data.iter().sum::<u64>() * 2, || data.len() * 2);
        assert_eq!((a, b), (12, 6));
        drop(serving);
        helper.join().unwrap();
    }
}
