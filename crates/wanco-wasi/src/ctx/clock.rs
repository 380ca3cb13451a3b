//! `clock_*`, and the guest's monotonic time across checkpoints.

use super::*;

impl WasiCtx {
    pub(super) fn monotonic_now(&self) -> u64 {
        let e = u64::try_from(self.mono_start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.mono_base.saturating_add(e)
    }

    pub(super) fn realtime_now() -> Result<u64, Errno> {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Errno::OVERFLOW)?;
        u64::try_from(d.as_nanos()).map_err(|_| Errno::OVERFLOW)
    }

    // ---- clocks ----------------------------------------------------------

    pub(super) fn clock_res_get(&self, m: &mut Mem<'_>, id: u32, out: Ptr) -> Result<(), Errno> {
        match id {
            CLOCK_REALTIME | CLOCK_MONOTONIC => m.write_u64(out, 1),
            // wasmtime has no CPU-time clocks.
            CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => Err(Errno::BADF),
            _ => Err(Errno::INVAL),
        }
    }

    pub(super) fn clock_time_get(&self, m: &mut Mem<'_>, id: u32, out: Ptr) -> Result<(), Errno> {
        let t = match id {
            CLOCK_REALTIME => Self::realtime_now()?,
            CLOCK_MONOTONIC => self.monotonic_now(),
            CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => return Err(Errno::BADF),
            _ => return Err(Errno::INVAL),
        };
        m.write_u64(out, t)
    }

}
