//! A stored object: immutable bytes that live inline, in the arena, or spilled to a file, plus
//! the refs they contain.
//!
//! Readers get the bytes through a [`BytesGuard`] (which restores a spilled object first and
//! keeps it from being spilled while held); whoever maps the bytes into a guest holds a
//! [`Pin`], which keeps the object resident at the same place until dropped.

use crate::account::Charge;
use crate::arena::Allocation;
use crate::{Inner, StoreError};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use wasmray_core::ObjectId;

/// An object's bytes on disk.
pub(crate) struct SpillFile {
    path: PathBuf,
}

impl SpillFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub(crate) fn remove(&self) {
        // A file we cannot remove is left behind in the node's temp dir, nothing worse.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where an object's bytes are.
pub(crate) enum Data {
    Inline(Box<[u8]>),
    Arena(Allocation),
    Spilled(SpillFile),
}

/// An immutable object: its serialized bytes and the objects referenced from inside them.
pub struct StoredObject {
    pub(crate) data: RwLock<Data>,
    len: usize,
    contained: Vec<ObjectId>,
    pub(crate) pins: AtomicU32,
    /// This object's share of its account, given back when it goes.
    pub(crate) charge: Charge,
    store: Arc<Inner>,
    /// This object, for the spiller to track it again after a restore.
    me: std::sync::Weak<StoredObject>,
}

/// Where an object's bytes are in the arena's file, for mapping them. Valid while the [`Pin`]
/// it came from is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappableRange {
    pub fd: std::os::fd::RawFd,
    /// Page-aligned offset in the file.
    pub offset: u64,
    pub len: usize,
}

impl StoredObject {
    pub(crate) fn new(
        data: Data,
        len: usize,
        contained: Vec<ObjectId>,
        charge: Charge,
        store: &Arc<Inner>,
    ) -> Arc<Self> {
        store.counters.objects.fetch_add(1, Ordering::Relaxed);
        Arc::new_cyclic(|me| Self {
            data: RwLock::new(data),
            len,
            contained,
            pins: AtomicU32::new(0),
            charge,
            store: Arc::clone(store),
            me: me.clone(),
        })
    }

    fn read_data(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_resident_in_arena(&self) -> bool {
        matches!(*self.read_data(), Data::Arena(_))
    }

    /// The bytes, restored from disk first if the object was spilled.
    pub fn read(&self) -> Result<BytesGuard<'_>, StoreError> {
        loop {
            let guard = self.read_data();
            if !matches!(*guard, Data::Spilled(_)) {
                return Ok(BytesGuard { guard });
            }
            drop(guard);
            if self.store.spiller.restore(&self.store, self)? {
                self.store.spiller.track_weak(self.me.clone());
            }
        }
    }

    /// Keeps the object resident (restoring it if needed) until the pin is dropped.
    pub fn pin(self: &Arc<Self>) -> Result<Pin, StoreError> {
        loop {
            let guard = self.read()?;
            self.pins.fetch_add(1, Ordering::SeqCst);
            drop(guard);
            // A spill that won the race between the read and the pin makes us try again.
            if !matches!(*self.read_data(), Data::Spilled(_)) {
                return Ok(Pin {
                    object: Arc::clone(self),
                });
            }
            self.pins.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Refs inside the value, one per occurrence, in the order the value encodes them.
    pub fn contained(&self) -> &[ObjectId] {
        &self.contained
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the bytes sit now: `inline`, `arena` or `spilled`.
    pub fn location(&self) -> &'static str {
        match *self.read_data() {
            Data::Inline(_) => "inline",
            Data::Arena(_) => "arena",
            Data::Spilled(_) => "spilled",
        }
    }
}

impl Drop for StoredObject {
    fn drop(&mut self) {
        let counters = &self.store.counters;
        counters.objects.fetch_sub(1, Ordering::Relaxed);
        let data = self.data.get_mut().unwrap_or_else(PoisonError::into_inner);
        // An inline object's bytes leave the store's inline total with its charge.
        if let Data::Spilled(file) = data {
            counters
                .spilled_bytes
                .fetch_sub(self.len as u64, Ordering::Relaxed);
            self.charge.account().unspill(self.len as u64);
            file.remove();
        }
    }
}

impl std::fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredObject")
            .field("len", &self.len)
            .field("location", &self.location())
            .field("contained", &self.contained.len())
            .finish()
    }
}

/// Read access to an object's bytes; the object cannot be spilled while this is held.
pub struct BytesGuard<'a> {
    guard: RwLockReadGuard<'a, Data>,
}

impl Deref for BytesGuard<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &*self.guard {
            Data::Inline(bytes) => bytes,
            Data::Arena(allocation) => allocation.bytes(),
            // Never constructed for a spilled object (see `read`).
            Data::Spilled(_) => &[],
        }
    }
}

/// Keeps an object resident at one place in the arena (while it is mapped into a guest).
#[derive(Debug)]
pub struct Pin {
    object: Arc<StoredObject>,
}

impl Pin {
    pub fn object(&self) -> &Arc<StoredObject> {
        &self.object
    }

    /// The object's bytes, valid as long as the pin: a pinned object is never spilled, so
    /// its bytes never move.
    pub fn bytes(&self) -> &[u8] {
        let guard = self.object.read_data();
        let bytes: &[u8] = match &*guard {
            Data::Inline(bytes) => bytes,
            Data::Arena(allocation) => allocation.bytes(),
            // `pin` never returns for a spilled object, and a pinned one is never spilled.
            Data::Spilled(_) => &[],
        };
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        drop(guard);
        // SAFETY: `Data` changes only when the spiller spills or restores the object; the
        // spiller skips objects whose pin count is above zero (`spill.rs`), and this pin holds
        // one for as long as `&self` lives. Inline bytes are a `Vec` that is never mutated
        // after creation and an arena allocation's range is fixed until it is freed, which
        // needs the object (held by `self.object`) to go. So the `ptr..ptr + len` read above
        // stays valid and unchanged for the returned lifetime.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// Where the bytes are in the arena's file; `None` for inline objects.
    pub fn mappable(&self) -> Option<MappableRange> {
        match &*self.object.read_data() {
            Data::Arena(allocation) => {
                let (fd, offset, len) = allocation.file_range();
                Some(MappableRange { fd, offset, len })
            }
            _ => None,
        }
    }
}

impl AsRef<[u8]> for Pin {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.object.pins.fetch_sub(1, Ordering::SeqCst);
    }
}
