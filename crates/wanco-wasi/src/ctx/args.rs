//! `args_*` and `environ_*`.

use super::*;

impl WasiCtx {
    // ---- args / environ --------------------------------------------------

    pub(super) fn strings(&self, env: bool) -> Vec<Vec<u8>> {
        if env {
            self.env
                .iter()
                .map(|(k, v)| format!("{k}={v}").into_bytes())
                .collect()
        } else {
            self.args.iter().map(|a| a.clone().into_bytes()).collect()
        }
    }

    pub(super) fn strings_sizes(
        &self,
        m: &mut Mem<'_>,
        env: bool,
        count_ptr: Ptr,
        size_ptr: Ptr,
    ) -> Result<(), Errno> {
        let s = self.strings(env);
        let count = u32::try_from(s.len()).map_err(|_| Errno::OVERFLOW)?;
        let size: usize = s.iter().map(|x| x.len() + 1).sum();
        let size = u32::try_from(size).map_err(|_| Errno::OVERFLOW)?;
        m.check(count_ptr, 4)?;
        m.check(size_ptr, 4)?;
        m.write_u32(count_ptr, count)?;
        m.write_u32(size_ptr, size)
    }

    pub(super) fn strings_get(&self, m: &mut Mem<'_>, env: bool, ptrs: Ptr, buf: Ptr) -> Result<(), Errno> {
        let s = self.strings(env);
        let total: u64 = s.iter().map(|x| x.len() as u64 + 1).sum();
        m.check(ptrs, 4 * s.len() as u64)?;
        m.check(buf, total)?;
        let mut at = buf;
        for (i, x) in s.iter().enumerate() {
            m.write_u32(ptrs + 4 * i as u32, at)?;
            m.write_bytes(at, x)?;
            m.write_u8(at + x.len() as u32, 0)?;
            at = at.wrapping_add(x.len() as u32 + 1);
        }
        Ok(())
    }

}
