//! The scheduler's cell: the one place the node's scheduler lives, and the way its actions are
//! carried out in the order it emitted them.
//!
//! A change runs under the scheduler's lock; the actions it produced stay in the scheduler's
//! own list, in emission order. If nobody is carrying actions out, the changer becomes the
//! drainer: it takes the list under the lock, applies it outside the lock, and looks again
//! under the lock until the list is empty. Anyone else (another thread, or an action whose
//! effect reenters the scheduler) only adds to the list. So actions are applied one at a time,
//! in order, whichever thread drains them; nothing slow runs under the lock; and a change that
//! produced nothing costs one lock. The cell knows nothing of what actions mean: the node
//! passes the function that applies one.

use crate::value::Value;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use wasmray_sched::{Action, Scheduler, Time};
use wasmray_wasm::coarse_clock;

/// The scheduler and whether someone is carrying out its actions.
struct Guarded {
    sched: Scheduler<Value>,
    draining: bool,
}

pub(crate) struct SchedCell {
    guarded: Mutex<Guarded>,
    /// Time 0 of the scheduler, as an instant and on the coarse clock (`now`).
    epoch: Instant,
    epoch_coarse: std::time::Duration,
}

/// The scheduler, locked, for queries.
pub(crate) struct SchedGuard<'a>(MutexGuard<'a, Guarded>);

impl Deref for SchedGuard<'_> {
    type Target = Scheduler<Value>;

    fn deref(&self) -> &Scheduler<Value> {
        &self.0.sched
    }
}

impl DerefMut for SchedGuard<'_> {
    fn deref_mut(&mut self) -> &mut Scheduler<Value> {
        &mut self.0.sched
    }
}

impl SchedCell {
    /// A cell for `sched`, whose time 0 is now.
    pub(crate) fn new(sched: Scheduler<Value>) -> Self {
        Self {
            guarded: Mutex::new(Guarded {
                sched,
                draining: false,
            }),
            epoch: Instant::now(),
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

    fn guarded(&self) -> MutexGuard<'_, Guarded> {
        // The scheduler's methods leave it consistent even if one panics midway (a bug), and a
        // node must keep serving other jobs.
        self.guarded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The scheduler, for queries. Changes go through [`SchedCell::change`].
    pub(crate) fn lock(&self) -> SchedGuard<'_> {
        SchedGuard(self.guarded())
    }

    /// Runs `change` under the scheduler's lock; `under_lock` sees each action it produced
    /// before the lock goes (for what must not race the scheduler). Then, unless someone else
    /// is, carries out the scheduler's actions with `apply`, in order, until none is left.
    pub(crate) fn change<R>(
        &self,
        change: impl FnOnce(&mut Scheduler<Value>, Time) -> R,
        mut under_lock: impl FnMut(&Action<Value>),
        mut apply: impl FnMut(Action<Value>),
    ) -> R {
        let now = self.now();
        let mut guarded = self.guarded();
        let before = guarded.sched.pending_actions().len();
        let result = change(&mut guarded.sched, now);
        for action in &guarded.sched.pending_actions()[before..] {
            under_lock(action);
        }
        if guarded.draining || guarded.sched.pending_actions().is_empty() {
            return result;
        }
        guarded.draining = true;
        let mut actions = guarded.sched.drain_actions();
        drop(guarded);
        // If `apply` panics (a bug), the actions must not stay claimed forever.
        let claim = Claim(self);
        loop {
            for action in actions {
                apply(action);
            }
            let mut guarded = self.guarded();
            actions = guarded.sched.drain_actions();
            if actions.is_empty() {
                guarded.draining = false;
                std::mem::forget(claim);
                return result;
            }
        }
    }
}

/// The drainer's claim on the actions; released if the drainer unwinds.
struct Claim<'a>(&'a SchedCell);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.guarded().draining = false;
    }
}
