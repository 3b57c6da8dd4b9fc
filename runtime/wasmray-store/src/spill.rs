//! Spilling: when the arena is full, resident objects nobody is reading or mapping are written
//! to files in the spill directory and their arena space freed; a read restores them, byte for
//! byte, into the arena (spilling others if need be).
//!
//! Candidates are taken oldest first. An object being read (its lock is held) or pinned (mapped
//! into a guest) is skipped. A failed write leaves the object resident: nothing is ever lost.
//! One file per spilled object, removed when the object is restored or dropped. Spilled bytes
//! count against the object's account; an account at its spill limit is skipped.

use crate::object::{Data, SpillFile, StoredObject};
use crate::{Inner, StoreError};
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

#[derive(Debug)]
pub(crate) struct Spiller {
    dir: PathBuf,
    resident: Mutex<VecDeque<Weak<StoredObject>>>,
    next: AtomicU64,
}

impl Spiller {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            resident: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Weak<StoredObject>>> {
        self.resident.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers an object that now lives in the arena, as a spill candidate.
    pub(crate) fn track(&self, object: &Arc<StoredObject>) {
        self.track_weak(Arc::downgrade(object));
    }

    pub(crate) fn track_weak(&self, object: Weak<StoredObject>) {
        self.queue().push_back(object);
    }

    /// Spills one resident object; false if none can be spilled now.
    pub(crate) fn spill_one(&self, store: &Arc<Inner>) -> Result<bool, StoreError> {
        let candidates = self.queue().len();
        for _ in 0..candidates {
            let Some(weak) = self.queue().pop_front() else {
                return Ok(false);
            };
            let Some(object) = weak.upgrade() else {
                continue;
            };
            if object.pins.load(Ordering::SeqCst) > 0 {
                self.queue().push_back(weak);
                continue;
            }
            let Ok(mut data) = object.data.try_write() else {
                self.queue().push_back(weak);
                continue;
            };
            // A pin taken between the first look and the lock counted itself under a read
            // lock, so it shows now.
            if object.pins.load(Ordering::SeqCst) > 0 {
                drop(data);
                self.queue().push_back(weak);
                continue;
            }
            let Data::Arena(allocation) = &*data else {
                continue;
            };
            // An object whose owner is at its spill limit stays resident.
            let len = object.len() as u64;
            if !object.charge.account().try_spill(len) {
                drop(data);
                self.queue().push_back(weak);
                continue;
            }
            let path = self
                .dir
                .join(format!("{}.obj", self.next.fetch_add(1, Ordering::Relaxed)));
            if let Err(error) = write_file(&path, allocation.bytes()) {
                let _ = std::fs::remove_file(&path);
                object.charge.account().unspill(len);
                self.queue().push_back(weak);
                return Err(StoreError::Spill(path, error));
            }
            // Dropping the allocation frees its arena range.
            *data = Data::Spilled(SpillFile::new(path));
            store
                .counters
                .spilled_bytes
                .fetch_add(object.len() as u64, Ordering::Relaxed);
            return Ok(true);
        }
        Ok(false)
    }

    /// Brings a spilled object back into the arena; false if it was not spilled (anymore).
    pub(crate) fn restore(
        &self,
        store: &Arc<Inner>,
        object: &StoredObject,
    ) -> Result<bool, StoreError> {
        let mut data = object.data.write().unwrap_or_else(PoisonError::into_inner);
        let Data::Spilled(file) = &*data else {
            return Ok(false);
        };
        let path = file.path().to_owned();
        let len = object.len() as u64;
        // The bytes leave the disk: making room for them may spill the owner's others.
        let account = object.charge.account();
        account.unspill(len);
        let mut outcome = Ok(());
        let allocation = store
            .allocate(object.len(), |bytes| outcome = read_file(&path, bytes))
            .and_then(|allocation| {
                outcome
                    .map(|()| allocation)
                    .map_err(|error| StoreError::Spill(path.clone(), error))
            })
            .inspect_err(|_| account.respill(len))?;
        let _ = std::fs::remove_file(&path);
        *data = Data::Arena(allocation);
        store
            .counters
            .spilled_bytes
            .fetch_sub(len, Ordering::Relaxed);
        Ok(true)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}

fn read_file(path: &Path, out: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    file.read_exact(out)
}
