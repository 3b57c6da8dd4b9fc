//! Lineage: how to make again an object whose every copy was lost.
//!
//! The owner keeps the spec of a plain task whose large results stay on the node that made
//! them (`Returned::Kept`) for as long as one of those results is alive, within a byte budget
//! (`SchedConfig::lineage_budget`, 1 GiB as Ray's default). While kept, the spec's arguments
//! stay referenced by it (lineage pinning), so they can be had again too. When a kept result
//! loses its last copy, the scheduler resubmits the spec as a new attempt (`Scheduler::rebuild`,
//! in `cluster.rs`); its own lost arguments are rebuilt the same way when the re-run needs
//! them. This file only keeps the entries and their accounting; it sends nothing and runs
//! nothing. A result past the budget, or of a `put`, is not kept: its loss is final
//! (`ErrorKind::ObjectLost`).

use crate::ObjectValue;
use std::sync::Arc;
use wasmray_core::{ArgSpec, IdMap, TaskId, TaskSpec};

/// One task's lineage.
#[derive(Debug)]
struct Entry<V> {
    spec: Arc<TaskSpec<V>>,
    /// Its results still alive on the owner (each one's free counts down).
    live: u32,
    /// What it counts against the budget.
    bytes: u64,
    /// The attempt number a rebuild runs as next (past every attempt already made).
    next_attempt: u32,
    /// How many times it was rebuilt; at most `spec.max_retries`.
    rebuilds: u32,
}

/// The specs kept to rebuild lost objects, owner side.
#[derive(Debug)]
pub(crate) struct LineageTable<V> {
    entries: IdMap<TaskId, Entry<V>>,
    bytes: u64,
    budget: u64,
}

/// Why a lost object cannot be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRebuild {
    /// Its spec was not kept: it was `put`, made here, or past the budget.
    NotKept,
    /// It was rebuilt `max_retries` times already.
    OutOfRetries(u32),
}

impl<V: ObjectValue> LineageTable<V> {
    pub(crate) fn new(budget: u64) -> Self {
        LineageTable {
            entries: IdMap::default(),
            bytes: 0,
            budget,
        }
    }

    /// What keeping `spec` costs: its by-value arguments and a fixed part for the rest.
    fn cost(spec: &TaskSpec<V>) -> u64 {
        let values: u64 = spec
            .args
            .iter()
            .map(|arg| match arg {
                ArgSpec::Value(value) => value.size(),
                ArgSpec::ByRef(_) => 16,
            })
            .sum();
        values + spec.function.len() as u64 + 256
    }

    /// Whether `task`'s lineage is kept.
    pub(crate) fn contains(&self, task: TaskId) -> bool {
        self.entries.contains_key(&task)
    }

    /// Keeps `spec` (whose attempt `attempt` just finished with `live` results kept
    /// elsewhere), if it fits the budget. Returns whether it was kept: if so, the references
    /// to its arguments the finished attempt held now belong to the lineage (they are
    /// released by [`LineageTable::freed`]); if not, the caller releases them.
    pub(crate) fn keep(&mut self, spec: &Arc<TaskSpec<V>>, attempt: u32, live: u32) -> bool {
        let bytes = Self::cost(spec);
        if live == 0 || self.bytes.saturating_add(bytes) > self.budget {
            return false;
        }
        self.bytes += bytes;
        self.entries.insert(
            spec.id,
            Entry {
                spec: Arc::clone(spec),
                live,
                bytes,
                next_attempt: attempt.saturating_add(1),
                rebuilds: 0,
            },
        );
        true
    }

    /// One of `task`'s kept results was freed. Returns the spec once none is left: the
    /// caller releases the references to its arguments.
    pub(crate) fn freed(&mut self, task: TaskId) -> Option<Arc<TaskSpec<V>>> {
        let entry = self.entries.get_mut(&task)?;
        entry.live = entry.live.saturating_sub(1);
        if entry.live > 0 {
            return None;
        }
        let entry = self.entries.remove(&task)?;
        self.bytes -= entry.bytes;
        Some(entry.spec)
    }

    /// Takes one rebuild of `task`: its spec and the attempt to run it as.
    pub(crate) fn rebuild(&mut self, task: TaskId) -> Result<(Arc<TaskSpec<V>>, u32), NoRebuild> {
        let entry = self.entries.get_mut(&task).ok_or(NoRebuild::NotKept)?;
        if entry.rebuilds >= entry.spec.max_retries {
            return Err(NoRebuild::OutOfRetries(entry.rebuilds));
        }
        entry.rebuilds += 1;
        let attempt = entry.next_attempt;
        entry.next_attempt = attempt.saturating_add(1);
        Ok((Arc::clone(&entry.spec), attempt))
    }

    /// A rebuild of `task` finished as `attempt`: the next one runs past it.
    pub(crate) fn ran(&mut self, task: TaskId, attempt: u32) {
        if let Some(entry) = self.entries.get_mut(&task) {
            entry.next_attempt = entry.next_attempt.max(attempt.saturating_add(1));
        }
    }

    /// How many tasks' lineage is kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct Bytes(u64);

    impl ObjectValue for Bytes {
        fn size(&self) -> u64 {
            self.0
        }
        fn contained(&self) -> &[wasmray_core::ObjectId] {
            &[]
        }
    }

    fn spec(id: u128, value: u64, max_retries: u32) -> Arc<TaskSpec<Bytes>> {
        use wasmray_core::{JobId, Lineage, ModuleId, NodeId, ResourceSet, TaskKind};
        Arc::new(TaskSpec {
            id: TaskId(id),
            kind: TaskKind::Task,
            job: JobId(1),
            module: ModuleId([0; 32]),
            function: "f".into(),
            args: vec![ArgSpec::Value(Bytes(value))],
            num_returns: 1,
            resources: ResourceSet::new(),
            max_calls: 0,
            max_retries,
            retry_exceptions: false,
            memory_limit: None,
            cpu_time_limit_ms: None,
            lineage: Lineage::root("main").child("f"),
            submitter: TaskId(0),
            driver: NodeId(0),
        })
    }

    #[test]
    fn a_spec_is_kept_until_its_last_result_is_freed() {
        let mut lineage = LineageTable::new(1 << 20);
        let a = spec(1, 100, 3);
        assert!(lineage.keep(&a, 0, 2));
        assert!(lineage.freed(a.id).is_none());
        assert!(lineage.freed(a.id).is_some_and(|s| s.id == a.id));
        assert_eq!((lineage.len(), lineage.bytes), (0, 0));
    }

    #[test]
    fn past_the_budget_nothing_is_kept() {
        let mut lineage = LineageTable::new(1000);
        assert!(lineage.keep(&spec(1, 500, 3), 0, 1));
        assert!(!lineage.keep(&spec(2, 500, 3), 0, 1));
        assert_eq!(lineage.rebuild(TaskId(2)).err(), Some(NoRebuild::NotKept));
    }

    #[test]
    fn rebuilds_run_as_new_attempts_up_to_max_retries() {
        let mut lineage = LineageTable::new(1 << 20);
        let a = spec(1, 0, 2);
        assert!(lineage.keep(&a, 1, 1));
        assert_eq!(lineage.rebuild(a.id).map(|(_, n)| n), Ok(2));
        lineage.ran(a.id, 4);
        assert_eq!(lineage.rebuild(a.id).map(|(_, n)| n), Ok(5));
        assert_eq!(
            lineage.rebuild(a.id).err(),
            Some(NoRebuild::OutOfRetries(2))
        );
    }
}
