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
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Set (under the queue's lock) when actions are queued, cleared when a drainer finds
    /// the queue empty: a change that produced nothing looks at this, not at the lock.
    has_work: AtomicBool,
    /// Time 0 of the scheduler, as an instant and on the coarse clock (`now`).
    epoch: Instant,
    epoch_coarse: std::time::Duration,
}

impl SchedCell {
    /// A cell for `sched`, whose time 0 is now.
    pub(crate) fn new(sched: Scheduler<Value>) -> Self {
        let epoch = Instant::now();
        Self {
            sched: Mutex::new(sched),
            queue: Mutex::default(),
            has_work: AtomicBool::new(false),
            epoch,
            epoch_coarse: coarse_clock(),
        }
    }

    /// The scheduler's time now, from the coarse monotonic clock: every change reads it,
    /// its timers (resends, reports: hundreds of milliseconds) need no better than the
    /// clock's few milliseconds, and it costs a fraction of a precise read.
    pub(crate) fn now(&self) -> Time {
        let since = coarse_clock().saturating_sub(self.epoch_coarse);
        Time::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    /// The instant a scheduler time stands for (the far future saturates to a year away).
    pub(crate) fn instant(&self, time: Time) -> Instant {
        let year = std::time::Duration::from_secs(365 * 24 * 3600);
        let offset = std::time::Duration::from_micros(time.as_micros()).min(year);
        self.epoch + offset
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
            let mut queue = self.queue();
            queue.actions.extend(actions);
            self.has_work.store(true, Ordering::Release);
        }
        drop(sched);
        result
    }

    /// Applies queued actions in order until the queue is empty, unless someone else is
    /// already doing so (then they will apply what is queued).
    pub(crate) fn drain(&self, mut apply: impl FnMut(Action<Value>)) {
        // This thread's own actions, if any, set the flag before it got here.
        if !self.has_work.load(Ordering::Acquire) {
            return;
        }
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
                        self.has_work.store(false, Ordering::Release);
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

/// `CLOCK_MONOTONIC_COARSE`: the monotonic clock as of the kernel's last tick.
fn coarse_clock() -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` for the call; the clock ID is a constant
    // every Linux kernel this runs on provides. On failure `now` keeps its zeros.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    std::time::Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}
