//! Tables of references. `#[repr(C)]` prefix read by compiled code:
//! `elems` at [`wanco_state::abi::table::ELEMS`], `len` at
//! [`wanco_state::abi::table::LEN`].

use wanco_state::module::TableType;

/// A table.
#[repr(C)]
pub struct Table {
    elems: *mut u64,
    len: u64,
    storage: Vec<u64>,
    /// Its type (element type and limits; `min` is the initial size).
    pub ty: TableType,
}

impl Table {
    /// A table of `ty.limits.min` null elements.
    pub fn new(ty: TableType) -> Box<Table> {
        let mut t = Box::new(Table { elems: std::ptr::null_mut(), len: 0, storage: vec![0; ty.limits.min as usize], ty });
        t.sync();
        t
    }

    fn sync(&mut self) {
        self.elems = self.storage.as_mut_ptr();
        self.len = self.storage.len() as u64;
    }

    /// Current number of elements.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the table has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum size.
    pub fn max(&self) -> u64 {
        self.ty.limits.max.unwrap_or(u32::MAX as u64)
    }

    /// The elements.
    pub fn elems(&self) -> &[u64] {
        &self.storage
    }

    /// The elements, mutably.
    pub fn elems_mut(&mut self) -> &mut [u64] {
        &mut self.storage
    }

    /// Grow by `delta` elements set to `init`; returns the old size or `None`.
    pub fn grow(&mut self, delta: u64, init: u64) -> Option<u64> {
        let old = self.len;
        let new = old.checked_add(delta)?;
        if new > self.max() {
            return None;
        }
        self.storage.resize(new as usize, init);
        self.sync();
        Some(old)
    }
}
