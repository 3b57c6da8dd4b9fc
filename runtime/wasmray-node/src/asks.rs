//! Questions to the head waiting for their answers (job IDs, actor names).
//!
//! A node asks through its scheduler (`Event::Ask`, which travels on the link to the head);
//! the answer comes back as `Action::Answered` with the same request number, and completes
//! the waiting future here. On the head's own node the link is in-process, so the answer
//! often arrives before the asker waits: that is fine, the channel keeps it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::sync::oneshot;
use wasmray_core::{IdMap, ObjectId};
use wasmray_sched::HeadAnswer;

#[derive(Debug, Default)]
pub(crate) struct Asks {
    next: AtomicU64,
    pending: Mutex<IdMap<u64, oneshot::Sender<HeadAnswer>>>,
    /// Borrows of objects other nodes own, answered in the order asked.
    borrows: Mutex<IdMap<ObjectId, VecDeque<oneshot::Sender<bool>>>>,
}

impl Asks {
    /// A request number and where its answer will arrive.
    pub(crate) fn open(&self) -> (u64, oneshot::Receiver<HeadAnswer>) {
        let request = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request, tx);
        (request, rx)
    }

    /// Where the answer to a borrow of `object` will arrive (ask right after).
    pub(crate) fn open_borrow(&self, object: ObjectId) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.borrows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(object)
            .or_default()
            .push_back(tx);
        rx
    }

    /// The owner answered a borrow of `object`. A waiter that gave up meanwhile leaves a
    /// granted reference nobody holds: it is reported so the caller releases it.
    pub(crate) fn lent(&self, object: ObjectId, granted: bool) -> bool {
        let tx = {
            let mut borrows = self.borrows.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = borrows.get_mut(&object).and_then(VecDeque::pop_front);
            if borrows.get(&object).is_some_and(VecDeque::is_empty) {
                borrows.remove(&object);
            }
            tx
        };
        match tx {
            Some(tx) => tx.send(granted).is_ok() || !granted,
            None => !granted,
        }
    }

    /// The head answered `request` (an unknown one is a duplicate, dropped).
    pub(crate) fn answered(&self, request: u64, answer: HeadAnswer) {
        let tx = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request);
        if let Some(tx) = tx {
            let _ = tx.send(answer);
        }
    }
}
