//! The scheduler's cell: the one place the node's scheduler lives, with the queue that
//! carries out its actions in the order it emitted them.
//!
//! A change runs under the scheduler's lock and the actions it produced go into the queue
//! before the lock is let go, so the queue holds every action in emission order. Whoever
//! finds nobody draining the queue drains it, outside the lock, until it is empty; anyone
//! else (another thread, or an action whose effect reenters the scheduler) only adds to it.
//! So actions are applied one at a time, in order, whichever thread drained them, and nothing
//! slow runs under the scheduler's lock. The cell knows nothing of what actions mean: the
//! node passes the function that applies one.

use crate::value::Value;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use wasmray_sched::{Action, Scheduler, Time};

#[derive(Default)]
struct Queue {
    actions: VecDeque<Action<Value>>,
    draining: bool,
}

pub(crate) struct SchedCell {
    sched: Mutex<Scheduler<Value>>,
    queue: Mutex<Queue>,
    epoch: Instant,
}

impl SchedCell {
    /// A cell for `sched`, whose time 0 is `epoch`.
    pub(crate) fn new(sched: Scheduler<Value>, epoch: Instant) -> Self {
        Self {
            sched: Mutex::new(sched),
            queue: Mutex::default(),
            epoch,
        }
    }

    /// The scheduler's time now.
    pub(crate) fn now(&self) -> Time {
        Time::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The instant a scheduler time stands for.
    pub(crate) fn instant(&self, time: Time) -> Instant {
        self.epoch + std::time::Duration::from_micros(time.as_micros())
    }

    /// The scheduler, for queries. Changes go through [`SchedCell::change`].
    pub(crate) fn lock(&self) -> MutexGuard<'_, Scheduler<Value>> {
        // The scheduler's methods leave it consistent even if one panics midway (a bug), and a
        // node must keep serving other jobs.
        self.sched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` under the scheduler's lock; `under_lock` sees each action it produced
    /// before the lock goes (for what must not race the scheduler), then they are queued.
    pub(crate) fn change<R>(
        &self,
        change: impl FnOnce(&mut Scheduler<Value>, Time) -> R,
        mut under_lock: impl FnMut(&Action<Value>),
    ) -> R {
        let now = self.now();
        let mut sched = self.lock();
        let result = change(&mut sched, now);
        let actions = sched.drain_actions();
        if !actions.is_empty() {
            for action in &actions {
                under_lock(action);
            }
            self.queue().actions.extend(actions);
        }
        drop(sched);
        result
    }

    /// Applies queued actions in order until the queue is empty, unless someone else is
    /// already doing so (then they will apply what is queued).
    pub(crate) fn drain(&self, mut apply: impl FnMut(Action<Value>)) {
        {
            let mut queue = self.queue();
            if queue.draining || queue.actions.is_empty() {
                return;
            }
            queue.draining = true;
        }
        // If `apply` panics (a bug), the queue must not stay claimed forever.
        let claim = Claim(self);
        loop {
            let next = {
                let mut queue = self.queue();
                match queue.actions.pop_front() {
                    Some(action) => action,
                    None => {
                        queue.draining = false;
                        std::mem::forget(claim);
                        return;
                    }
                }
            };
            apply(next);
        }
    }
}

/// The drainer's claim on the queue; released if the drainer unwinds.
struct Claim<'a>(&'a SchedCell);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.queue().draining = false;
    }
}
