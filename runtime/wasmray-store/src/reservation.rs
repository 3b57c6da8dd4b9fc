//! A [`Reservation`]: room for one object, written piece by piece and then sealed into a
//! [`StoredObject`].
//!
//! This is how a value too large to copy twice reaches the store: the guest serializes it in
//! small pieces and each piece is written straight into the object's room, so its bytes are
//! copied once. The reservation is an obligation in the type: it becomes an object only with
//! [`Reservation::seal`], and only once every byte has been written (a reused arena range
//! still holds a freed object's bytes); dropping it unsealed gives the room back. Nobody can
//! read or map the bytes before the seal.

use crate::account::Charge;
use crate::arena::Fresh;
use crate::object::{Data, StoredObject};
use crate::{Inner, StoreError};
use std::sync::Arc;
use wasmray_core::ObjectId;

/// Where the reserved bytes are.
pub(crate) enum Room {
    Inline(Box<[u8]>),
    Arena(Fresh),
}

/// Room for one object of a fixed length; see the module doc.
pub struct Reservation {
    room: Room,
    len: usize,
    written: usize,
    charge: Charge,
    store: Arc<Inner>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("len", &self.len)
            .field("written", &self.written)
            .finish()
    }
}

impl Reservation {
    pub(crate) fn new(room: Room, len: usize, charge: Charge, store: &Arc<Inner>) -> Self {
        Self {
            room,
            len,
            written: 0,
            charge,
            store: Arc::clone(store),
        }
    }

    /// The object's length, fixed when it was reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.room {
            Room::Inline(bytes) => bytes,
            Room::Arena(fresh) => fresh.bytes_mut(),
        }
    }

    /// Appends `bytes` after what was written before. Refused, writing nothing, when they do
    /// not fit in the reserved length.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let start = self.written;
        let end = start
            .checked_add(bytes.len())
            .filter(|&end| end <= self.len)
            .ok_or(StoreError::WrongLength {
                written: start as u64 + bytes.len() as u64,
                len: self.len as u64,
            })?;
        self.bytes_mut()[start..end].copy_from_slice(bytes);
        self.written = end;
        Ok(())
    }

    /// All the reserved bytes at once, counted as written: the caller must write every one.
    pub(crate) fn fill_all(&mut self) -> &mut [u8] {
        self.written = self.len;
        self.bytes_mut()
    }

    /// Makes the written bytes an immutable object containing refs to `contained`. Refused
    /// (and the room given back) unless every reserved byte was written.
    pub fn seal(self, contained: Vec<ObjectId>) -> Result<Arc<StoredObject>, StoreError> {
        if self.written != self.len {
            return Err(StoreError::WrongLength {
                written: self.written as u64,
                len: self.len as u64,
            });
        }
        let data = match self.room {
            Room::Inline(bytes) => Data::Inline(bytes),
            Room::Arena(fresh) => Data::Arena(fresh.finish()),
        };
        let object = StoredObject::new(data, self.len, contained, self.charge, &self.store);
        if object.is_resident_in_arena() {
            self.store.spiller.track(&object);
        }
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Account, AccountLimits, INLINE_MAX, ObjectStore};

    #[test]
    fn a_reservation_becomes_an_object_only_when_every_byte_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(4 << 20, dir.path().join("spill")).unwrap();
        let account = Account::new(AccountLimits::UNLIMITED);
        for len in [10, INLINE_MAX * 3 + 7] {
            let mut room = store.reserve(&account, len).unwrap();
            room.write(&vec![1u8; len / 2]).unwrap();
            assert!(room.write(&vec![2u8; len]).is_err(), "past the end");
            room.write(&vec![3u8; len - len / 2]).unwrap();
            let object = room.seal(vec![]).unwrap();
            let bytes = object.read().unwrap();
            assert!(bytes[..len / 2].iter().all(|&b| b == 1));
            assert!(bytes[len / 2..].iter().all(|&b| b == 3));
        }
        let mut short = store.reserve(&account, INLINE_MAX * 2).unwrap();
        short.write(&[0u8; 5]).unwrap();
        assert!(short.seal(vec![]).is_err(), "incomplete");
        let unsealed = store.reserve(&account, 3 << 20).unwrap();
        assert!(store.stats().arena_used >= 3 << 20);
        drop(unsealed);
        let stats = store.stats();
        assert_eq!((stats.arena_used, stats.objects), (0, 0), "room given back");
        assert_eq!(account.usage(), Default::default(), "charges given back");
    }
}
