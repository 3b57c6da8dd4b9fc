//! wasmray's per-node object store: where the bytes of immutable objects live.
//!
//! Small objects (under [`INLINE_MAX`], as Ray's direct-call threshold) are kept inline on the
//! heap; large ones go to a memory-mapped arena of fixed capacity with page-aligned
//! allocations. A [`StoredObject`] is immutable once created and frees its bytes when dropped;
//! reference counting (deciding *when* to drop) belongs to the scheduler, not here.
//!
//! Not here yet: spilling to disk and zero-copy mapping into guests (later work), networking.

mod arena;
mod freelist;

use arena::{Allocation, Arena};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmray_core::ObjectId;

pub use freelist::PAGE;

/// Objects smaller than this are stored inline on the heap.
pub const INLINE_MAX: usize = 100 * 1024;

/// Why the store refused an object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "object of {requested} bytes is larger than the object store's capacity of {capacity} bytes (raise --object-store-memory)"
    )]
    TooLarge { requested: u64, capacity: u64 },
    #[error(
        "object store is full: {requested} bytes requested, {used} of {capacity} bytes in use by referenced objects"
    )]
    Full {
        requested: u64,
        capacity: u64,
        used: u64,
    },
    #[error("could not map the object store's memory: {0}")]
    Map(std::io::Error),
}

/// Usage figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    pub capacity: u64,
    /// Bytes of the arena in use (page-rounded).
    pub arena_used: u64,
    /// Bytes of inline objects alive.
    pub inline_used: u64,
    pub objects: u64,
}

/// The store of one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    arena: Arc<Arena>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    inline_bytes: AtomicU64,
    objects: AtomicU64,
}

impl ObjectStore {
    /// A store whose arena holds `capacity` bytes (rounded down to whole pages).
    pub fn new(capacity: u64) -> Result<Self, StoreError> {
        Ok(Self {
            inner: Arc::new(Inner {
                arena: Arc::new(Arena::new(capacity)?),
                counters: Arc::default(),
            }),
        })
    }

    /// Creates an object of `len` bytes that `fill` writes, containing refs to `contained`.
    pub fn create(
        &self,
        len: usize,
        contained: Vec<ObjectId>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<StoredObject, StoreError> {
        let data = if len < INLINE_MAX {
            let mut bytes = vec![0; len].into_boxed_slice();
            fill(&mut bytes);
            self.inner
                .counters
                .inline_bytes
                .fetch_add(len as u64, Ordering::Relaxed);
            Data::Inline(bytes)
        } else {
            Data::Arena(self.inner.arena.allocate(len, fill)?)
        };
        self.inner.counters.objects.fetch_add(1, Ordering::Relaxed);
        Ok(StoredObject {
            data,
            contained,
            counters: Arc::clone(&self.inner.counters),
        })
    }

    /// Creates an object holding a copy of `bytes`.
    pub fn create_from(
        &self,
        bytes: &[u8],
        contained: Vec<ObjectId>,
    ) -> Result<StoredObject, StoreError> {
        self.create(bytes.len(), contained, |out| out.copy_from_slice(bytes))
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            capacity: self.inner.arena.capacity(),
            arena_used: self.inner.arena.used(),
            inline_used: self.inner.counters.inline_bytes.load(Ordering::Relaxed),
            objects: self.inner.counters.objects.load(Ordering::Relaxed),
        }
    }
}

/// An immutable object: its serialized bytes and the objects referenced from inside them.
pub struct StoredObject {
    data: Data,
    contained: Vec<ObjectId>,
    counters: Arc<Counters>,
}

enum Data {
    Inline(Box<[u8]>),
    Arena(Allocation),
}

impl StoredObject {
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Inline(bytes) => bytes,
            Data::Arena(allocation) => allocation.bytes(),
        }
    }

    /// Refs inside the value, one per occurrence, in the order the value encodes them.
    pub fn contained(&self) -> &[ObjectId] {
        &self.contained
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for StoredObject {
    fn drop(&mut self) {
        if let Data::Inline(bytes) = &self.data {
            self.counters
                .inline_bytes
                .fetch_sub(bytes.len() as u64, Ordering::Relaxed);
        }
        self.counters.objects.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredObject")
            .field("len", &self.len())
            .field("inline", &matches!(self.data, Data::Inline(_)))
            .field("contained", &self.contained.len())
            .finish()
    }
}

/// Total physical memory of this machine, from `/proc/meminfo`; `None` where unknown.
pub fn system_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Ray's default: 30% of the machine's memory (1 GiB where that is unknown).
pub fn default_capacity() -> u64 {
    system_memory().map_or(1 << 30, |total| total / 10 * 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_objects_are_inline_and_large_ones_in_the_arena() {
        let store = ObjectStore::new(16 << 20).unwrap();
        let small = store.create_from(b"hello", vec![]).unwrap();
        let large = store.create(INLINE_MAX, vec![], |b| b.fill(7)).unwrap();
        assert_eq!(small.bytes(), b"hello");
        assert!(large.bytes().iter().all(|&b| b == 7));
        let stats = store.stats();
        assert_eq!(stats.inline_used, 5);
        assert_eq!(stats.arena_used, (INLINE_MAX as u64).div_ceil(PAGE) * PAGE);
        assert_eq!(stats.objects, 2);
        drop((small, large));
        let stats = store.stats();
        assert_eq!(
            (stats.inline_used, stats.arena_used, stats.objects),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_full_store_refuses_clearly_and_recovers_when_objects_go() {
        let store = ObjectStore::new(4 << 20).unwrap();
        let big = store.create(3 << 20, vec![], |_| {}).unwrap();
        let err = store.create(2 << 20, vec![], |_| {}).unwrap_err();
        assert!(matches!(err, StoreError::Full { .. }), "{err}");
        assert!(err.to_string().starts_with("object store is full"));
        let too_large = store.create(8 << 20, vec![], |_| {}).unwrap_err();
        assert!(
            matches!(too_large, StoreError::TooLarge { .. }),
            "{too_large}"
        );
        drop(big);
        assert!(store.create(4 << 20, vec![], |_| {}).is_ok());
    }

    #[test]
    fn freed_pages_read_back_as_zeros_for_the_next_object() {
        let store = ObjectStore::new(1 << 20).unwrap();
        let first = store
            .create(INLINE_MAX * 2, vec![], |b| b.fill(0xAB))
            .unwrap();
        drop(first);
        let second = store.create(INLINE_MAX * 2, vec![], |_| {}).unwrap();
        assert!(
            second.bytes().iter().all(|&b| b == 0),
            "no bytes of a freed object leak"
        );
    }
}
