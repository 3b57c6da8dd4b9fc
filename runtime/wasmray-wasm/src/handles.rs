//! An instance's handle table: the `u32` handles a guest holds, each naming one object ID.
//!
//! A slab: a handle is a slot index (low 24 bits) and the slot's generation (high 8 bits,
//! never 0, so no handle is 0). Lookups are an index and a compare, and handles a guest gets in
//! a row sit side by side, so walking or dropping a long list of refs stays in cache (the hash
//! map this replaces was an eighth of "get object containing 10k refs").
//!
//! A freed slot goes to the back of a FIFO queue and is taken again only once more than
//! [`REUSE_AFTER`] slots wait there (or when no fresh index is left); each reuse bumps its
//! generation. So a stale handle (already released) names nothing unless its slot has come
//! round 255 times, i.e. after at least 65,000 frees; even then it names an object of this same
//! instance, never another guest's. At most the table's limit (the job's quota, never above
//! [`MAX_HANDLES`]) live at once; the imports turn a full table into a trap naming the limit.
//!
//! This file knows nothing of references or the scheduler: callers count and release.

use std::collections::VecDeque;
use wasmray_core::ObjectId;

const INDEX_BITS: u32 = 24;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

/// Most handles one instance may hold at once.
pub(crate) const MAX_HANDLES: usize = 1 << INDEX_BITS;

/// How many freed slots wait before one is reused.
const REUSE_AFTER: usize = 256;

#[derive(Clone, Copy)]
struct Slot {
    id: ObjectId,
    generation: u8,
    live: bool,
}

/// Guest handles to object IDs.
pub(crate) struct HandleTable {
    slots: Vec<Slot>,
    free: VecDeque<u32>,
    limit: usize,
}

impl Default for HandleTable {
    fn default() -> Self {
        Self::with_limit(MAX_HANDLES)
    }
}

impl HandleTable {
    /// A table that holds at most `limit` live handles (and never more than [`MAX_HANDLES`]).
    pub(crate) fn with_limit(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            free: VecDeque::new(),
            limit: limit.min(MAX_HANDLES),
        }
    }

    /// Most live handles this table holds.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A new handle for `id` (the caller has already counted the reference), or `None` when
    /// the limit is live.
    pub(crate) fn insert(&mut self, id: ObjectId) -> Option<u32> {
        if self.slots.len() - self.free.len() >= self.limit {
            return None;
        }
        let index = if self.free.len() > REUSE_AFTER || self.slots.len() >= MAX_HANDLES {
            self.free.pop_front()?
        } else {
            self.slots.push(Slot {
                id,
                generation: 1,
                live: false,
            });
            (self.slots.len() - 1) as u32
        };
        let slot = &mut self.slots[index as usize];
        slot.id = id;
        slot.live = true;
        Some(handle(index, slot.generation))
    }

    pub(crate) fn get(&self, handle: u32) -> Option<ObjectId> {
        let slot = self.slots.get((handle & INDEX_MASK) as usize)?;
        (slot.live && slot.generation == generation_of(handle)).then_some(slot.id)
    }

    pub(crate) fn remove(&mut self, handle: u32) -> Option<ObjectId> {
        let index = handle & INDEX_MASK;
        let slot = self.slots.get_mut(index as usize)?;
        if !slot.live || slot.generation != generation_of(handle) {
            return None;
        }
        Some(self.free_slot(index))
    }

    /// Empties the table, returning every ID it referenced (to be released).
    pub(crate) fn drain(&mut self) -> Vec<ObjectId> {
        let mut ids = Vec::new();
        for index in 0..self.slots.len() as u32 {
            if self.slots[index as usize].live {
                ids.push(self.free_slot(index));
            }
        }
        ids
    }

    /// How many handles are live.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().filter(|slot| slot.live).count()
    }

    fn free_slot(&mut self, index: u32) -> ObjectId {
        let slot = &mut self.slots[index as usize];
        slot.live = false;
        slot.generation = if slot.generation == u8::MAX {
            1
        } else {
            slot.generation + 1
        };
        self.free.push_back(index);
        slot.id
    }
}

fn handle(index: u32, generation: u8) -> u32 {
    (u32::from(generation) << INDEX_BITS) | index
}

fn generation_of(handle: u32) -> u8 {
    (handle >> INDEX_BITS) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmray_core::TaskId;

    fn object(n: u32) -> ObjectId {
        ObjectId {
            task: TaskId(7),
            index: n,
        }
    }

    #[test]
    fn handles_name_their_objects_until_removed() {
        let mut table = HandleTable::default();
        let handles: Vec<u32> = (0..1000)
            .map(|n| table.insert(object(n)).expect("room"))
            .collect();
        assert!(handles.iter().all(|&h| h != 0));
        for (n, &h) in handles.iter().enumerate() {
            assert_eq!(table.get(h), Some(object(n as u32)));
        }
        assert_eq!(table.remove(handles[10]), Some(object(10)));
        assert_eq!(table.get(handles[10]), None);
        assert_eq!(table.remove(handles[10]), None, "removed once only");
        assert_eq!(table.get(0), None);
        assert_eq!(table.get(u32::MAX), None);
        assert_eq!(table.len(), 999);
    }

    #[test]
    fn a_stale_handle_names_nothing_after_its_slot_is_reused() {
        let mut table = HandleTable::default();
        let first = table.insert(object(1)).expect("room");
        table.remove(first);
        // Churn: insert and remove far more than the reuse queue holds.
        let mut seen = vec![first];
        for n in 0..10_000 {
            let h = table.insert(object(n)).expect("room");
            assert_eq!(table.get(first), None, "stale handle {first:#x} came back");
            seen.push(h);
            table.remove(h);
        }
        assert!(
            table.slots.len() <= REUSE_AFTER + 2,
            "slots are reused: {}",
            table.slots.len()
        );
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            seen.len(),
            10_001,
            "no handle value repeats within 10,000 frees"
        );
    }

    #[test]
    fn the_limit_counts_live_handles() {
        let mut table = HandleTable::with_limit(3);
        let handles: Vec<u32> = (0..3)
            .map(|n| table.insert(object(n)).expect("room"))
            .collect();
        assert_eq!(table.insert(object(9)), None, "full");
        table.remove(handles[1]);
        assert!(table.insert(object(9)).is_some(), "room again");
        assert_eq!(table.insert(object(10)), None);
    }

    #[test]
    fn drain_returns_every_live_id_and_invalidates_the_handles() {
        let mut table = HandleTable::default();
        let handles: Vec<u32> = (0..5)
            .map(|n| table.insert(object(n)).expect("room"))
            .collect();
        table.remove(handles[2]);
        let mut drained = table.drain();
        drained.sort_by_key(|id| id.index);
        assert_eq!(
            drained,
            [object(0), object(1), object(3), object(4)],
            "live ones, once each"
        );
        assert!(handles.iter().all(|&h| table.get(h).is_none()));
        assert!(table.drain().is_empty());
    }
}
