//! An owned libsolv `Queue`, freed on drop.

use crate::ffi::{self, Id, Queue};

pub(crate) struct OwnedQueue(Queue);

impl OwnedQueue {
    pub(crate) fn new() -> OwnedQueue {
        let mut q = Queue {
            elements: std::ptr::null_mut(),
            count: 0,
            alloc: std::ptr::null_mut(),
            left: 0,
        };
        // SAFETY: queue_init only writes the four fields.
        unsafe { ffi::queue_init(&mut q) };
        OwnedQueue(q)
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut Queue {
        &mut self.0
    }

    pub(crate) fn push(&mut self, v: Id) {
        // SAFETY: an initialised queue we own.
        unsafe { ffi::rs_queue_push(&mut self.0, v) }
    }

    pub(crate) fn as_slice(&self) -> &[Id] {
        if self.0.count <= 0 || self.0.elements.is_null() {
            return &[];
        }
        // SAFETY: libsolv keeps `count` initialised Ids at `elements`.
        unsafe { std::slice::from_raw_parts(self.0.elements, self.0.count as usize) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: initialised by queue_init, freed once.
        unsafe { ffi::queue_free(&mut self.0) }
    }
}
