//! The scheduler's task records, and the table of them by ID, counted per job as they come and go, so that a job's quota of
//! pending tasks can be checked in O(1) ([`Scheduler::job_tasks`](crate::Scheduler::job_tasks)).
//!
//! A task's job is fixed for its whole life (every spec a task gets is of the same job), so
//! counting on insert and remove is exact. Also what a queued lease is (an executor's
//! lease waiting for its resources) and which leases may wait. Nothing else about tasks
//! lives here.

use std::sync::Arc;
use wasmray_core::{GPU, IdMap, JobId, NodeId, TaskId, TaskKind, TaskSpec};

#[derive(Debug)]
pub(crate) enum TaskState {
    Waiting {
        missing: usize,
    },
    Ready,
    Running {
        blocked: bool,
    },
    /// Owner side: the attempt was sent to this node, which has not answered yet.
    Leased {
        node: NodeId,
    },
}

#[derive(Debug)]
pub(crate) struct TaskEntry<V> {
    pub(crate) spec: Arc<TaskSpec<V>>,
    pub(crate) state: TaskState,
    pub(crate) attempt: u32,
    /// The GPUs a running plain task holds (an actor's are in its actor entry).
    pub(crate) gpu_ids: Vec<u32>,
    /// `cancel` asked for this task to stop: however it ends, it is not retried.
    pub(crate) cancelled: bool,
    /// Executor side: the node that owns this task and leased it here. Its resources were
    /// taken when the lease was granted; its results go back to the owner.
    pub(crate) owner: Option<NodeId>,
}

impl<V> TaskEntry<V> {
    /// A record of `spec`'s attempt `attempt` in `state`, holding no GPUs, not cancelled;
    /// `owner` is the node that leased it here, if another.
    pub(crate) fn new(
        spec: Arc<TaskSpec<V>>,
        state: TaskState,
        attempt: u32,
        owner: Option<NodeId>,
    ) -> Self {
        TaskEntry {
            spec,
            state,
            attempt,
            gpu_ids: Vec::new(),
            cancelled: false,
            owner,
        }
    }
}

#[derive(Debug)]
pub(crate) struct TaskTable<V> {
    entries: IdMap<TaskId, TaskEntry<V>>,
    per_job: IdMap<JobId, u64>,
}

impl<V> Default for TaskTable<V> {
    fn default() -> Self {
        Self {
            entries: IdMap::default(),
            per_job: IdMap::default(),
        }
    }
}

impl<V> TaskTable<V> {
    pub(crate) fn insert(&mut self, id: TaskId, entry: TaskEntry<V>) {
        let job = entry.spec.job;
        if let Some(old) = self.entries.insert(id, entry) {
            self.uncount(old.spec.job);
        }
        *self.per_job.entry(job).or_default() += 1;
    }

    pub(crate) fn remove(&mut self, id: &TaskId) -> Option<TaskEntry<V>> {
        let entry = self.entries.remove(id)?;
        self.uncount(entry.spec.job);
        Some(entry)
    }

    fn uncount(&mut self, job: JobId) {
        if let Some(count) = self.per_job.get_mut(&job) {
            *count -= 1;
            if *count == 0 {
                self.per_job.remove(&job);
            }
        }
    }

    /// Gives back the memory of a table that grew far past what it holds now.
    pub(crate) fn shrink(&mut self) {
        if self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to_fit();
        }
    }

    /// Tasks of `job` in the table (pending, running, or leased here from another node).
    pub(crate) fn of_job(&self, job: JobId) -> u64 {
        self.per_job.get(&job).copied().unwrap_or(0)
    }

    pub(crate) fn get(&self, id: &TaskId) -> Option<&TaskEntry<V>> {
        self.entries.get(id)
    }

    /// The job of a task cannot be changed through this (see the file's doc).
    pub(crate) fn get_mut(&mut self, id: &TaskId) -> Option<&mut TaskEntry<V>> {
        self.entries.get_mut(id)
    }

    pub(crate) fn contains_key(&self, id: &TaskId) -> bool {
        self.entries.contains_key(id)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &TaskEntry<V>> {
        self.entries.values()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TaskId, &TaskEntry<V>)> {
        self.entries.iter()
    }
}

/// Most leases an executor keeps waiting for its resources; past it, leases are rejected.
pub(crate) const MAX_QUEUED_LEASES: usize = 1024;

/// A lease an executor took but cannot start yet (its resources are busy).
#[derive(Debug)]
pub(crate) struct QueuedLease<V> {
    pub(crate) owner: NodeId,
    pub(crate) spec: Arc<TaskSpec<V>>,
    pub(crate) attempt: u32,
}

/// Whether a lease may wait on its executor for resources to free up: plain tasks without
/// GPUs (an actor's creation, or a task whose GPU share needs particular devices, is granted
/// or rejected at once).
pub(crate) fn may_queue<V>(spec: &TaskSpec<V>) -> bool {
    matches!(spec.kind, TaskKind::Task) && spec.resources.get(GPU) == 0.0
}
