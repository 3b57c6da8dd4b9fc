//! The instance pool: `max_instances` slots, each held by a live instance (task, actor or
//! driver), and the idle task instances kept for reuse.
//!
//! Instances are reused only for the same job, module and function (DESIGN.md §5). When no
//! slot is free, an idle instance is evicted before anyone waits; an idle instance is not kept
//! when every slot is taken; a job's idle instances go when it ends; all of them go when the
//! node's guest memory refuses a new instance (`execute.rs`). It does not run anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmray_core::{JobId, ModuleId};
use wasmray_wasm::GuestInstance;

/// Which instances may serve a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    job: JobId,
    module: ModuleId,
    function: String,
}

impl PoolKey {
    pub(crate) fn new(job: JobId, module: ModuleId, function: String) -> Self {
        Self {
            job,
            module,
            function,
        }
    }
}

/// An instance and the slot it occupies.
pub(crate) struct PooledInstance {
    pub(crate) instance: GuestInstance,
    _slot: OwnedSemaphorePermit,
}

impl PooledInstance {
    pub(crate) fn new(instance: GuestInstance, slot: OwnedSemaphorePermit) -> Self {
        Self {
            instance,
            _slot: slot,
        }
    }
}

/// Slots for instances, and the idle ones kept for reuse.
pub(crate) struct InstancePool {
    slots: Arc<Semaphore>,
    idle: Mutex<HashMap<PoolKey, Vec<PooledInstance>>>,
}

impl InstancePool {
    pub(crate) fn new(max_instances: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_instances)),
            idle: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Vec<PooledInstance>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn take(&self, key: &PoolKey) -> Option<PooledInstance> {
        self.lock().get_mut(key)?.pop()
    }

    pub(crate) fn put(&self, key: PoolKey, instance: PooledInstance, per_key: usize) {
        if self.slots.available_permits() == 0 {
            // Every slot is taken: a task may be waiting in `slot` for one, and an idle
            // instance kept now would hold its slot forever. Let it go.
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(key).or_default();
        if list.len() < per_key {
            list.push(instance);
        }
    }

    /// A free slot, evicting an idle instance if that is what it takes.
    pub(crate) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
                return Some(permit);
            }
            let evicted = {
                let mut idle = self.lock();
                let key = idle
                    .iter()
                    .find(|(_, list)| !list.is_empty())
                    .map(|(k, _)| k.clone());
                key.and_then(|key| idle.get_mut(&key).and_then(Vec::pop))
            };
            if evicted.is_none() {
                return Arc::clone(&self.slots).acquire_owned().await.ok();
            }
        }
    }

    pub(crate) fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Drops the idle instances of `job` (it ended: nothing will reuse them).
    pub(crate) fn forget_job(&self, job: JobId) {
        let drained: Vec<_> = {
            let mut idle = self.lock();
            let keys: Vec<PoolKey> = idle.keys().filter(|k| k.job == job).cloned().collect();
            keys.iter().filter_map(|k| idle.remove(k)).collect()
        };
        drop(drained);
    }

    pub(crate) fn clear(&self) {
        let drained: Vec<_> = self.lock().drain().collect();
        drop(drained);
    }
}
