//! The arena: one anonymous memory mapping of the store's capacity, carved into page-aligned
//! allocations for large objects.
//!
//! Pages are committed only when written, and handed back to the kernel (`MADV_DONTNEED`) when
//! an allocation is freed, so the node's memory follows what is stored, not the capacity. The
//! mapping is never shrunk or truncated while the store lives (DESIGN.md §4, hazard 2).
//! Zero-copy mapping of these pages into guests is a later step; nothing here maps into
//! guests yet.

use crate::StoreError;
use crate::freelist::{FreeList, page_round};
use memmap2::{MmapMut, MmapOptions, UncheckedAdvice};
use std::sync::{Arc, Mutex, PoisonError};

pub(crate) struct Arena {
    mmap: MmapMut,
    base: *mut u8,
    free: Mutex<FreeList>,
}

// SAFETY: `base` points into `mmap`, which lives as long as the arena. Distinct allocations
// are disjoint ranges (the free list never hands a range out twice), each written only by the
// one thread that owns the `Allocation` before it is shared, and only read afterwards.
unsafe impl Send for Arena {}
// SAFETY: as for `Send`: shared access is reads of sealed allocations and the mutex-guarded
// free list.
unsafe impl Sync for Arena {}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("len", &self.mmap.len())
            .finish()
    }
}

impl Arena {
    pub(crate) fn new(capacity: u64) -> Result<Self, StoreError> {
        let list = FreeList::new(capacity);
        let len = usize::try_from(list.capacity().max(crate::freelist::PAGE)).map_err(|_| {
            StoreError::Map(std::io::Error::other("capacity exceeds the address space"))
        })?;
        let mut mmap = MmapOptions::new()
            .len(len)
            .no_reserve_swap()
            .map_anon()
            .map_err(StoreError::Map)?;
        let base = mmap.as_mut_ptr();
        Ok(Self {
            mmap,
            base,
            free: Mutex::new(list),
        })
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.lock().capacity()
    }

    pub(crate) fn used(&self) -> u64 {
        self.lock().used()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FreeList> {
        // The free list stays consistent across a panic (each method updates it last).
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Allocates room for `len` bytes and lets `fill` write them before anyone can read.
    pub(crate) fn allocate(
        self: &Arc<Self>,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Allocation, StoreError> {
        let requested = len as u64;
        let offset = {
            let mut list = self.lock();
            if page_round(requested) > list.capacity() {
                return Err(StoreError::TooLarge {
                    requested,
                    capacity: list.capacity(),
                });
            }
            list.allocate(requested).ok_or(StoreError::Full {
                requested,
                capacity: list.capacity(),
                used: list.used(),
            })?
        };
        let allocation = Allocation {
            arena: Arc::clone(self),
            offset: offset as usize,
            len,
        };
        // SAFETY: `[offset, offset + len)` lies inside the mapping (the free list only hands
        // out ranges of its capacity, which is at most the mapping's length) and was just
        // reserved for this allocation alone, so no other reference to it exists.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(self.base.add(allocation.offset), len) };
        fill(bytes);
        Ok(allocation)
    }
}

/// A large object's bytes in the arena; freed (and its pages released) on drop.
pub(crate) struct Allocation {
    arena: Arc<Arena>,
    offset: usize,
    len: usize,
}

impl Allocation {
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the range was reserved for this allocation, filled before the allocation was
        // returned, and is never written again while the allocation lives.
        unsafe { std::slice::from_raw_parts(self.arena.base.add(self.offset), self.len) }
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        let rounded = page_round(self.len as u64) as usize;
        // SAFETY: the range is inside the mapping and owned by this allocation, which is being
        // dropped: no slice into it survives, so discarding its pages (they read back as
        // zeros) cannot be observed. The mapping itself keeps its size.
        let _ = unsafe {
            self.arena
                .mmap
                .unchecked_advise_range(UncheckedAdvice::DontNeed, self.offset, rounded)
        };
        self.arena
            .lock()
            .release(self.offset as u64, self.len as u64);
    }
}
