//! Guests blocked in `get` or `wait`, by the object they wait for.
//!
//! A waiter registers (under the scheduler's lock, after seeing the object pending) before it
//! sleeps, and the scheduler reports the seal only after that, so no wake-up is lost. One
//! `Notify` may wait on many objects (`wait`); a notification stores a permit if the waiter
//! is not asleep yet.

use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use wasmray_core::{IdMap, ObjectId};

#[derive(Debug, Default)]
pub(crate) struct Waiters {
    by_object: Mutex<IdMap<ObjectId, Vec<Arc<Notify>>>>,
}

impl Waiters {
    pub(crate) fn register(&self, id: ObjectId, waiter: &Arc<Notify>) {
        self.lock().entry(id).or_default().push(Arc::clone(waiter));
    }

    /// Forgets `waiter` (it timed out or finished) wherever it still waits.
    pub(crate) fn unregister(&self, ids: &[ObjectId], waiter: &Arc<Notify>) {
        let mut map = self.lock();
        for id in ids {
            if let Some(list) = map.get_mut(id) {
                list.retain(|w| !Arc::ptr_eq(w, waiter));
                if list.is_empty() {
                    map.remove(id);
                }
            }
        }
    }

    /// Wakes everyone waiting for `id`.
    pub(crate) fn wake(&self, id: ObjectId) {
        let woken = self.lock().remove(&id);
        for waiter in woken.into_iter().flatten() {
            waiter.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<ObjectId, Vec<Arc<Notify>>>> {
        self.by_object
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
