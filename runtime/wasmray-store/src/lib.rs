//! wasmray's per-node object store: where the bytes of immutable objects live.
//!
//! Small objects (under [`INLINE_MAX`], as Ray's direct-call threshold) are kept inline on the
//! heap; large ones go to an arena of fixed capacity (a sealed memfd) with page-aligned
//! allocations. When the arena is full, resident objects that nobody is reading or mapping are
//! spilled to files in the spill directory and restored transparently, byte for byte, when
//! read. A large object's bytes can be mapped into a guest without copying
//! ([`StoredObject::mappable`]). Reference counting (deciding *when* an object goes) belongs
//! to the scheduler; a [`StoredObject`] frees its bytes, wherever they are, when dropped.
//!
//! Not here: networking, eviction policy beyond "oldest resident first".

mod account;
mod arena;
mod freelist;
mod object;
mod reservation;
mod spill;

use account::{Charge, Counters};
use arena::Arena;
use spill::Spiller;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use wasmray_core::ObjectId;

pub use account::{Account, AccountLimits, AccountUsage};
pub use freelist::PAGE;
pub use object::{BytesGuard, MappableRange, Pin, StoredObject};
pub use reservation::Reservation;

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
        "object store is full: {requested} bytes requested, {used} of {capacity} bytes in use by objects that cannot be spilled now (being read or mapped, or their job is at its spill quota)"
    )]
    Full {
        requested: u64,
        capacity: u64,
        used: u64,
    },
    #[error("could not map the object store's memory: {0}")]
    Map(std::io::Error),
    #[error("could not spill to or restore from `{}`: {}", .0.display(), .1)]
    Spill(PathBuf, std::io::Error),
    #[error(
        "the job holds its share of the object store for small objects: {share} bytes, three quarters of its {capacity}, so other jobs can always put (small objects never spill)"
    )]
    InlineShare { share: u64, capacity: u64 },
    #[error(transparent)]
    Quota(#[from] wasmray_core::QuotaExceeded),
    #[error("{written} bytes written where the object was reserved with {len}")]
    WrongLength { written: u64, len: u64 },
}

/// Usage figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    pub capacity: u64,
    /// Bytes of the arena in use (page-rounded).
    pub arena_used: u64,
    /// Bytes of inline objects alive.
    pub inline_used: u64,
    /// Bytes of objects spilled to disk.
    pub spilled: u64,
    pub objects: u64,
}

/// The store of one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) arena: Arc<Arena>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) spiller: Spiller,
}

impl ObjectStore {
    /// A store whose arena holds `capacity` bytes (rounded down to whole pages), spilling to
    /// files under `spill_dir` (created when first needed).
    pub fn new(capacity: u64, spill_dir: PathBuf) -> Result<Self, StoreError> {
        Ok(Self {
            inner: Arc::new(Inner {
                arena: Arc::new(Arena::new(capacity)?),
                counters: Arc::default(),
                spiller: Spiller::new(spill_dir),
            }),
        })
    }

    /// Creates an object of `len` bytes that `fill` writes — every one of them: a reused
    /// arena range still holds a freed object's bytes — containing refs to `contained`,
    /// charged to `account`. Spills other objects if that is what it takes to make room.
    pub fn create(
        &self,
        account: &Arc<Account>,
        len: usize,
        contained: Vec<ObjectId>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Arc<StoredObject>, StoreError> {
        let mut reservation = self.reserve(account, len)?;
        fill(reservation.fill_all());
        reservation.seal(contained)
    }

    /// Reserves room for an object of `len` bytes charged to `account`, to be written piece
    /// by piece ([`Reservation::write`]) and then sealed; spills other objects if that is
    /// what it takes to make room. Inline objects count against the capacity too. Dropping
    /// the reservation gives the room back.
    pub fn reserve(&self, account: &Arc<Account>, len: usize) -> Result<Reservation, StoreError> {
        // Checked before anything is allocated: the account's limits, then the store's room.
        if len < INLINE_MAX {
            // Small objects never spill: one account may fill at most three quarters of the
            // store with them, so that another can always put (as with guest memory).
            let capacity = self.inner.arena.capacity();
            let share = capacity / 4 * 3;
            if account.inline_bytes().saturating_add(len as u64) > share {
                return Err(StoreError::InlineShare { share, capacity });
            }
            let charge = Charge::new(account, len as u64, Some(&self.inner.counters))?;
            // The charge above already counts `len` in the inline total.
            self.inner.make_room(0).map_err(|e| match e {
                StoreError::Full { capacity, used, .. } => account.explain_full(
                    StoreError::Full {
                        requested: len as u64,
                        capacity,
                        used,
                    },
                    len,
                ),
                other => other,
            })?;
            let room = reservation::Room::Inline(vec![0; len].into_boxed_slice());
            return Ok(Reservation::new(room, len, charge, &self.inner));
        }
        let charge = Charge::new(account, len as u64, None)?;
        let room = self
            .inner
            .reserve(len)
            .map_err(|e| account.explain_full(e, len))?;
        let room = reservation::Room::Arena(room);
        Ok(Reservation::new(room, len, charge, &self.inner))
    }

    /// Creates an object holding a copy of `bytes`, charged to `account`.
    pub fn create_from(
        &self,
        account: &Arc<Account>,
        bytes: &[u8],
        contained: Vec<ObjectId>,
    ) -> Result<Arc<StoredObject>, StoreError> {
        self.create(account, bytes.len(), contained, |out| {
            out.copy_from_slice(bytes)
        })
    }

    pub fn stats(&self) -> StoreStats {
        let counters = &self.inner.counters;
        StoreStats {
            capacity: self.inner.arena.capacity(),
            arena_used: self.inner.arena.used(),
            inline_used: counters.inline_bytes.load(Ordering::Relaxed),
            spilled: counters.spilled_bytes.load(Ordering::Relaxed),
            objects: counters.objects.load(Ordering::Relaxed),
        }
    }

    /// The most arena memory kept resident once every object is gone (freed pages kept warm
    /// for the next large put).
    pub fn retained_bytes_bound(&self) -> u64 {
        self.inner.arena.warm_limit()
    }

    /// Where spilled objects go.
    pub fn spill_dir(&self) -> &std::path::Path {
        self.inner.spiller.dir()
    }
}

impl Inner {
    /// Spills resident objects until `len` more bytes fit in the capacity beside what the
    /// arena and inline objects hold; `Full` if nothing more can be spilled.
    pub(crate) fn make_room(self: &Arc<Self>, len: usize) -> Result<(), StoreError> {
        let capacity = self.arena.capacity();
        loop {
            let used = self.arena.used() + self.counters.inline_bytes.load(Ordering::Relaxed);
            if used.saturating_add(len as u64) <= capacity {
                return Ok(());
            }
            if !self.spiller.spill_one(self)? {
                return Err(StoreError::Full {
                    requested: len as u64,
                    capacity,
                    used,
                });
            }
        }
    }

    /// Room for `len` bytes in the arena, spilling resident objects until it fits.
    pub(crate) fn reserve(self: &Arc<Self>, len: usize) -> Result<arena::Fresh, StoreError> {
        if (len as u64).div_ceil(PAGE) * PAGE <= self.arena.capacity() {
            self.make_room(len)?;
        }
        loop {
            match self.arena.reserve(len) {
                Err(StoreError::Full { .. }) if self.spiller.spill_one(self)? => continue,
                other => return other,
            }
        }
    }

    /// An arena allocation of `len` bytes that `fill` writes (every byte).
    pub(crate) fn allocate(
        self: &Arc<Self>,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<arena::Allocation, StoreError> {
        let mut fresh = self.reserve(len)?;
        fill(fresh.bytes_mut());
        Ok(fresh.finish())
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

    fn store(capacity: u64) -> (ObjectStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            ObjectStore::new(capacity, dir.path().join("spill")).unwrap(),
            dir,
        )
    }

    fn unlimited() -> Arc<Account> {
        Account::new(AccountLimits::UNLIMITED)
    }

    #[test]
    fn small_objects_are_inline_and_large_ones_in_the_arena() {
        let (store, _dir) = store(16 << 20);
        let a = unlimited();
        let small = store.create_from(&a, b"hello", vec![]).unwrap();
        let large = store.create(&a, INLINE_MAX, vec![], |b| b.fill(7)).unwrap();
        assert_eq!(&*small.read().unwrap(), b"hello");
        assert!(large.read().unwrap().iter().all(|&b| b == 7));
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
    fn a_full_store_spills_and_restores_byte_exact() {
        let (store, _dir) = store(4 << 20);
        let a = unlimited();
        let objects: Vec<_> = (0..6u8)
            .map(|i| {
                store
                    .create(&a, 1 << 20, vec![], |b| {
                        b.iter_mut()
                            .enumerate()
                            .for_each(|(j, x)| *x = i ^ (j as u8))
                    })
                    .unwrap()
            })
            .collect();
        let stats = store.stats();
        assert!(stats.spilled >= 2 << 20, "{stats:?}");
        assert!(objects.iter().any(|o| o.location() == "spilled"));
        for (i, object) in objects.iter().enumerate() {
            let bytes = object.read().unwrap();
            assert!(
                bytes
                    .iter()
                    .enumerate()
                    .all(|(j, &x)| x == (i as u8) ^ (j as u8)),
                "object {i}"
            );
        }
        drop(objects);
        let stats = store.stats();
        assert_eq!((stats.arena_used, stats.spilled, stats.objects), (0, 0, 0));
        assert_eq!(
            std::fs::read_dir(store.spill_dir()).map_or(0, |d| d.count()),
            0,
            "spill files removed"
        );
    }

    #[test]
    fn pinned_objects_are_never_spilled_and_too_large_ones_are_refused() {
        let (store, _dir) = store(4 << 20);
        let a = unlimited();
        let big = store.create(&a, 3 << 20, vec![], |_| {}).unwrap();
        let pin = big.pin().unwrap();
        let err = store.create(&a, 2 << 20, vec![], |_| {}).unwrap_err();
        assert!(matches!(err, StoreError::Full { .. }), "{err}");
        assert!(err.to_string().starts_with("object store is full"));
        let too_large = store.create(&a, 8 << 20, vec![], |_| {}).unwrap_err();
        assert!(
            matches!(too_large, StoreError::TooLarge { .. }),
            "{too_large}"
        );
        drop(pin);
        assert!(
            store.create(&a, 2 << 20, vec![], |_| {}).is_ok(),
            "unpinned: spilled to make room"
        );
        assert_eq!(big.location(), "spilled");
    }

    #[test]
    fn a_reused_range_shows_only_the_new_objects_bytes_and_zeros_after_them() {
        let (store, _dir) = store(1 << 20);
        let a = unlimited();
        let first = store
            .create(&a, INLINE_MAX * 2, vec![], |b| b.fill(0xAB))
            .unwrap();
        drop(first);
        let len = INLINE_MAX + 5;
        let second = store.create_from(&a, &vec![1u8; len], vec![]).unwrap();
        assert!(second.read().unwrap().iter().all(|&b| b == 1));
        let pin = second.pin().unwrap();
        let range = pin.mappable().unwrap();
        let page_end = (len as u64).div_ceil(PAGE) * PAGE;
        let mut tail = vec![0xFFu8; (page_end - len as u64) as usize];
        use std::os::unix::fs::FileExt;
        // SAFETY: the fd belongs to the store, alive while `store` is; `ManuallyDrop` keeps
        // this borrowed `File` from closing it.
        let file = std::mem::ManuallyDrop::new(unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(range.fd)
        });
        file.read_exact_at(&mut tail, range.offset + len as u64)
            .unwrap();
        assert!(
            tail.iter().all(|&b| b == 0),
            "a mapping's last page shows nothing of the freed object"
        );
    }

    #[test]
    fn inline_objects_count_against_the_capacity() {
        let (store, _dir) = store(1 << 20);
        let small = vec![7u8; 1000];
        let mut held = Vec::new();
        let mut fill = |account: &Arc<Account>| loop {
            match store.create_from(account, &small, vec![]) {
                Ok(object) => held.push(object),
                Err(error) => break error,
            }
        };
        // One account stops at three quarters of the store; another fills the rest.
        let (a, b) = (unlimited(), unlimited());
        let error = fill(&a);
        assert!(matches!(error, StoreError::InlineShare { .. }), "{error}");
        let error = fill(&b);
        assert!(matches!(error, StoreError::Full { .. }), "{error}");
        assert_eq!(held.len(), (1 << 20) / 1000);
        assert!(store.stats().inline_used <= 1 << 20);
        drop(held);
        assert_eq!(store.stats().inline_used, 0);
        assert_eq!(a.usage(), AccountUsage::default());
        assert_eq!(b.usage(), AccountUsage::default());
    }

    #[test]
    fn an_account_at_its_spill_limit_is_not_spilled_and_its_limits_name_the_quota() {
        let (store, _dir) = store(2 << 20);
        let capped = Account::new(AccountLimits {
            max_objects: 10,
            max_bytes: 8 << 20,
            max_spill_bytes: 1 << 20,
        });
        let first = store
            .create(&capped, 1 << 20, vec![], |b| b.fill(1))
            .unwrap();
        let second = store
            .create(&capped, 1 << 20, vec![], |b| b.fill(2))
            .unwrap();
        // Room for a third means spilling one (allowed: 1 MiB), a fourth another (refused).
        let third = store
            .create(&capped, 1 << 20, vec![], |b| b.fill(3))
            .unwrap();
        assert_eq!(capped.usage().spilled_bytes, 1 << 20);
        let error = store.create(&capped, 1 << 20, vec![], |_| {}).unwrap_err();
        assert!(
            error.to_string().contains("--max-spill-bytes"),
            "the spill quota kept the store full: {error}"
        );
        let too_much = store.create(&capped, 6 << 20, vec![], |_| {}).unwrap_err();
        assert!(
            too_much.to_string().contains("--max-object-bytes"),
            "{too_much}"
        );
        for (object, byte) in [(&first, 1), (&second, 2), (&third, 3)] {
            assert!(object.read().unwrap().iter().all(|&b| b == byte));
        }
        drop((first, second, third));
        assert_eq!(capped.usage(), AccountUsage::default());
        assert_eq!(store.stats().spilled, 0);
    }
}
