//! What one job may hold on a node: the quotas that keep a hostile job from exhausting the
//! node's memory, disk or terminal, whatever its guests do.
//!
//! Each node has defaults (`Default` here, overridden by its configuration); a job may be
//! given its own (`wasmray run --max-...`). A job that reaches one gets an error naming the
//! quota and its value ([`QuotaExceeded`]); the node and other jobs go on. This file holds the
//! figures and the error only: counting and enforcing happen where the things are made.

use serde::{Deserialize, Serialize};

/// One job's limits. Sizes are bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQuotas {
    /// Tasks and actor calls submitted and not yet finished (pending or running).
    pub max_pending_tasks: u64,
    /// Actors alive (created and not yet dead).
    pub max_actors: u64,
    /// Objects alive in the store (inline ones count).
    pub max_objects: u64,
    /// Bytes of the job's objects alive, wherever they are (inline, arena or spilled).
    pub max_object_bytes: u64,
    /// Bytes of the job's objects spilled to disk.
    pub max_spill_bytes: u64,
    /// Handles one instance holds at once.
    pub max_handles: u32,
    /// The largest value a guest hands over: an argument, a return value or a put.
    pub max_value_bytes: u64,
    /// Guest output, on average, per second; lines beyond it are dropped with a marker.
    pub output_bytes_per_sec: u64,
    /// Linear memory of all the job's instances together (each also has its own cap); a
    /// node's default is its whole guest memory.
    pub max_guest_memory: u64,
}

impl Default for JobQuotas {
    fn default() -> Self {
        Self {
            max_pending_tasks: 100_000,
            max_actors: 1_000,
            max_objects: 1_000_000,
            max_object_bytes: 64 << 30,
            max_spill_bytes: 16 << 30,
            max_handles: 1 << 20,
            max_value_bytes: 1 << 30,
            output_bytes_per_sec: 1 << 20,
            // Bounded by the node's guest memory; nodes set their own default.
            max_guest_memory: u64::MAX,
        }
    }
}

/// Which quota a job reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    PendingTasks,
    Actors,
    Objects,
    ObjectBytes,
    SpillBytes,
    Handles,
    ValueBytes,
    GuestMemory,
}

impl Quota {
    /// The `wasmray run` flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Quota::PendingTasks => "--max-pending-tasks",
            Quota::Actors => "--max-actors",
            Quota::Objects => "--max-objects",
            Quota::ObjectBytes => "--max-object-bytes",
            Quota::SpillBytes => "--max-spill-bytes",
            Quota::Handles => "--max-handles",
            Quota::ValueBytes => "--max-value-bytes",
            Quota::GuestMemory => "--max-guest-memory",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Quota::PendingTasks => "tasks pending or running",
            Quota::Actors => "live actors",
            Quota::Objects => "objects held",
            Quota::ObjectBytes => "bytes of objects held",
            Quota::SpillBytes => "bytes of objects spilled to disk",
            Quota::Handles => "handles held by one instance",
            Quota::ValueBytes => "bytes in one value",
            Quota::GuestMemory => "bytes of guest memory",
        }
    }

    /// This quota's value in `quotas`.
    pub fn limit(self, quotas: &JobQuotas) -> u64 {
        match self {
            Quota::PendingTasks => quotas.max_pending_tasks,
            Quota::Actors => quotas.max_actors,
            Quota::Objects => quotas.max_objects,
            Quota::ObjectBytes => quotas.max_object_bytes,
            Quota::SpillBytes => quotas.max_spill_bytes,
            Quota::Handles => u64::from(quotas.max_handles),
            Quota::ValueBytes => quotas.max_value_bytes,
            Quota::GuestMemory => quotas.max_guest_memory,
        }
    }
}

/// A job reached one of its quotas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the job's quota of {limit} {} is reached (raise it with {})", .quota.what(), .quota.flag())]
pub struct QuotaExceeded {
    pub quota: Quota,
    pub limit: u64,
}

impl QuotaExceeded {
    pub fn new(quota: Quota, quotas: &JobQuotas) -> Self {
        Self {
            quota,
            limit: quota.limit(quotas),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_quota_its_value_and_its_flag() {
        let error = QuotaExceeded::new(Quota::Actors, &JobQuotas::default());
        assert_eq!(
            error.to_string(),
            "the job's quota of 1000 live actors is reached (raise it with --max-actors)"
        );
    }
}
