//! The arena: one sealed memfd of the store's capacity, mapped shared into the node and carved
//! into page-aligned allocations for large objects.
//!
//! Being a file, the arena can be mapped copy-on-write into a guest's linear memory (zero-copy
//! `get`; the wasm host does the mapping from [`crate::MappableRange`]). Its size is set once
//! and sealed (`F_SEAL_SHRINK | F_SEAL_GROW`): nothing can truncate it under a live mapping,
//! which would kill the node with SIGBUS (DESIGN.md §4, hazard 2). Pages are committed only
//! when written and handed back to the kernel (`FALLOC_FL_PUNCH_HOLE`) when an allocation is
//! freed, so memory follows what is stored, not the capacity; punched pages read as zeros.

use crate::StoreError;
use crate::freelist::{FreeList, page_round};
use memmap2::{MmapMut, MmapOptions};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub(crate) struct Arena {
    file: File,
    mmap: MmapMut,
    base: *mut u8,
    free: Mutex<FreeList>,
    /// Freed bytes whose pages were kept resident for reuse (first-touch faults, not copies,
    /// bound large puts on this kind of machine), at most `warm_limit`.
    warm: AtomicU64,
    warm_limit: u64,
    /// The free list's capacity and bytes in use, readable without its lock (every inline
    /// reservation checks them); `used` is updated under the lock after each change.
    capacity: u64,
    used: AtomicU64,
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
        let file = sealed_memfd(len).map_err(StoreError::Map)?;
        // SAFETY: the file is our own memfd, sized once above and sealed against shrinking or
        // growing, so the mapping can never extend past its end; nothing else writes to it.
        let mut mmap =
            unsafe { MmapOptions::new().len(len).map_mut(&file) }.map_err(StoreError::Map)?;
        let base = mmap.as_mut_ptr();
        Ok(Self {
            file,
            mmap,
            base,
            capacity: list.capacity(),
            free: Mutex::new(list),
            warm: AtomicU64::new(0),
            warm_limit: (len as u64 / 4).min(WARM_LIMIT),
            used: AtomicU64::new(0),
        })
    }

    /// The memfd holding the arena, for mapping allocations into guests.
    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn warm_limit(&self) -> u64 {
        self.warm_limit
    }

    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FreeList> {
        // The free list stays consistent across a panic (each method updates it last).
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves room for `len` bytes: an allocation nobody else can see until its owner has
    /// written every byte and made it an [`Allocation`] (a reused range still holds a freed
    /// object's bytes). The rest of the last page is zeroed here, since a mapping into a guest
    /// exposes whole pages.
    pub(crate) fn reserve(self: &Arc<Self>, len: usize) -> Result<Fresh, StoreError> {
        let requested = len as u64;
        let offset = {
            let mut list = self.lock();
            if page_round(requested) > list.capacity() {
                return Err(StoreError::TooLarge {
                    requested,
                    capacity: list.capacity(),
                });
            }
            let offset = list.allocate(requested).ok_or(StoreError::Full {
                requested,
                capacity: list.capacity(),
                used: list.used(),
            })?;
            self.used.store(list.used(), Ordering::Relaxed);
            offset
        };
        let fresh = Fresh(Allocation {
            arena: Arc::clone(self),
            offset: offset as usize,
            len,
        });
        let rounded = page_round(requested) as usize;
        // SAFETY: `[offset + len, offset + page_round(len))` lies inside the mapping (the free
        // list only hands out page-rounded ranges of its capacity, which is at most the
        // mapping's length) and was just reserved for this allocation alone.
        unsafe {
            std::slice::from_raw_parts_mut(self.base.add(fresh.0.offset + len), rounded - len)
        }
        .fill(0);
        let _ = self
            .warm
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |warm| {
                Some(warm.saturating_sub(rounded as u64))
            });
        Ok(fresh)
    }
}

/// An allocation being written by its one owner, before anyone can read it: the only way to
/// write arena bytes. [`Fresh::finish`] makes it a read-only [`Allocation`]; dropping it frees
/// the range.
pub(crate) struct Fresh(Allocation);

impl Fresh {
    /// The allocation's bytes, writable.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the range was reserved for this allocation alone (see `reserve`) and lies
        // inside the mapping; a `Fresh` is never shared, read or mapped (only `finish` turns it
        // into something readable), so this is the only reference to those bytes.
        unsafe { std::slice::from_raw_parts_mut(self.0.arena.base.add(self.0.offset), self.0.len) }
    }

    /// The bytes are written: from now on they are only read.
    pub(crate) fn finish(self) -> Allocation {
        self.0
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
        let rounded = page_round(self.len as u64);
        let keep_warm = self
            .arena
            .warm
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |warm| {
                (warm + rounded <= self.arena.warm_limit).then_some(warm + rounded)
            })
            .is_ok();
        if !keep_warm {
            // SAFETY: plain system call on our own memfd. The range belongs to this allocation,
            // which is being dropped: no slice into it and no guest mapping of it survives
            // (guests pin the object while it is mapped), so zeroing its pages cannot be
            // observed. The file keeps its size (KEEP_SIZE): no mapping can fault past its end.
            let _ = unsafe {
                libc::fallocate(
                    self.arena.fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    self.offset as i64,
                    rounded as i64,
                )
            };
        }
        let mut list = self.arena.lock();
        list.release(self.offset as u64, self.len as u64);
        self.arena.used.store(list.used(), Ordering::Relaxed);
    }
}

impl Allocation {
    /// Where the allocation's bytes are in the arena's file.
    pub(crate) fn file_range(&self) -> (RawFd, u64, usize) {
        (self.arena.fd(), self.offset as u64, self.len)
    }
}

/// The most freed memory kept resident for reuse (also at most a quarter of the capacity).
const WARM_LIMIT: u64 = 2 << 30;

/// A memfd of `len` bytes whose size can never change again.
fn sealed_memfd(len: usize) -> std::io::Result<File> {
    let name = c"wasmray-object-store";
    // SAFETY: `name` is a valid NUL-terminated string; the call has no other inputs.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len as u64)?;
    // SAFETY: plain fcntl on the fd we own.
    let sealed = unsafe {
        libc::fcntl(
            fd,
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )
    };
    if sealed < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_file_can_never_be_truncated() {
        let arena = Arena::new(1 << 20).unwrap();
        assert!(arena.file.set_len(4096).is_err(), "shrinking is sealed");
        assert!(arena.file.set_len(2 << 20).is_err(), "growing is sealed");
        assert_eq!(arena.file.metadata().unwrap().len(), 1 << 20);
    }
}
