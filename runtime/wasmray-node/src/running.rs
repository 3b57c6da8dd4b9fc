//! The plain tasks running on this node, and how to stop one that `cancel` asked to stop.
//!
//! The scheduler says a task must stop while it considers it running, and the node carries
//! that out before it lets go of the scheduler's lock; a task leaves this table under that
//! lock too, in the same visit that reports its end. So a stop always finds the task between
//! its start and its report — though perhaps before its spawned run has entered here, or
//! before it has an instance: the stop is noted, and the instance's kill switch is thrown as
//! soon as it is attached. Actors' instances are stopped through their `ActorHost`, not here.

use std::sync::{Mutex, PoisonError};
use wasmray_core::{IdMap, TaskId};
use wasmray_wasm::KillSwitch;

#[derive(Debug, Default)]
pub(crate) struct RunningTasks {
    tasks: Mutex<IdMap<TaskId, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    kill: Option<KillSwitch>,
    stop_requested: bool,
}

impl RunningTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<TaskId, Entry>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `task` has started; it leaves with the guard (a stop noted before stays noted).
    pub(crate) fn enter(&self, task: TaskId) -> Running<'_> {
        self.lock().entry(task).or_default();
        Running { tasks: self, task }
    }

    /// Stops running `task`'s instance now, or as soon as it has one. Only called under the
    /// scheduler's lock, for a task it considers running.
    pub(crate) fn stop(&self, task: TaskId) {
        let mut tasks = self.lock();
        let entry = tasks.entry(task).or_default();
        entry.stop_requested = true;
        if let Some(kill) = &entry.kill {
            kill.kill();
        }
    }
}

/// A task's place in [`RunningTasks`] while it runs; drop it under the scheduler's lock, in
/// the visit that reports the task's end.
pub(crate) struct Running<'a> {
    tasks: &'a RunningTasks,
    task: TaskId,
}

impl Running<'_> {
    /// The task's instance is `kill`; thrown at once if a stop already came.
    pub(crate) fn attach(&self, kill: KillSwitch) {
        let mut tasks = self.tasks.lock();
        if let Some(entry) = tasks.get_mut(&self.task) {
            if entry.stop_requested {
                kill.kill();
            }
            entry.kill = Some(kill);
        }
    }
}

impl Running<'_> {
    /// The task's call has ended: its instance is no longer its own (it may go back to the
    /// pool), so a stop must not throw its switch any more.
    pub(crate) fn detach(&self) {
        if let Some(entry) = self.tasks.lock().get_mut(&self.task) {
            entry.kill = None;
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.tasks.lock().remove(&self.task);
    }
}
