//! What a guest instance's store holds: its WASI context, limits, handle table, staged reply
//! and the call in progress.
//!
//! The handle table (`handles.rs`) maps the guest's handles to object IDs.

use crate::call::Caller;
use crate::counted::CountedValue;
pub(crate) use crate::handles::HandleTable;
use crate::memory_pool::MemoryPool;
use crate::output::GuestOutput;
use crate::services::NodeServices;
use std::sync::Arc;
use wasmray_store::StoredObject;
use wasmtime::{Memory, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;

/// How often the epoch clock ticks: the granularity of CPU limits and of cooperative yields.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The data of one guest's wasmtime `Store`.
pub(crate) struct GuestState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limits: MemoryCap,
    pub(crate) services: Arc<dyn NodeServices>,
    /// What the instance's values are charged to (its job's).
    pub(crate) job: Arc<crate::JobLimits>,
    pub(crate) output: GuestOutput,
    pub(crate) memory: Option<Memory>,
    pub(crate) handles: HandleTable,
    pub(crate) staged: Option<Staged>,
    pub(crate) call: Option<CallState>,
    /// The call's CPU-time budget (see `cpu_clock.rs`).
    pub(crate) cpu: crate::cpu_clock::CpuBudget,
    pub(crate) deadline_hit: bool,
    pub(crate) kill: crate::kill::KillSwitch,
    /// Where an actor with `max_concurrency > 1` finds calls to run while one is blocked.
    pub(crate) nested: Option<std::sync::Arc<dyn crate::NestedCalls>>,
    /// The guest's shadow stack pointer, exported at load (see `stack_pointer.rs`).
    pub(crate) stack_pointer: Option<wasmtime::Global>,
    /// Objects mapped into the memory (see `mapping.rs`).
    pub(crate) mappings: Vec<crate::mapping::Mapping>,
    /// Below this offset lies the module's initial memory, never mapped over.
    pub(crate) mappable_from: usize,
}

/// The task or driver call running in the instance.
pub(crate) struct CallState {
    pub(crate) caller: Caller,
    pub(crate) args: Vec<Arc<StoredObject>>,
    pub(crate) results: Option<Vec<CountedValue>>,
    pub(crate) panic_message: Option<String>,
    pub(crate) puts: u32,
    /// How many results the caller asked for.
    pub(crate) num_returns: u32,
    /// A streamed put between `put_begin` and `put_end`; its room is given back if the call
    /// ends first.
    pub(crate) streamed_put: Option<wasmray_store::Reservation>,
}

impl CallState {
    pub(crate) fn new(caller: Caller, args: Vec<Arc<StoredObject>>, num_returns: u32) -> Self {
        Self {
            caller,
            args,
            results: None,
            panic_message: None,
            puts: 0,
            num_returns,
            streamed_put: None,
        }
    }

    /// The number of the next object this call puts.
    pub(crate) fn next_put(&mut self) -> u32 {
        let n = self.puts;
        self.puts += 1;
        n
    }
}

/// A reply waiting for the guest's `staged_read`.
pub(crate) struct Staged {
    pub(crate) bytes: StagedBytes,
    pub(crate) handles: Vec<u32>,
}

pub(crate) enum StagedBytes {
    Object(Arc<StoredObject>),
    Owned(Vec<u8>),
}

impl StagedBytes {
    pub(crate) fn len(&self) -> usize {
        match self {
            StagedBytes::Object(object) => object.len(),
            StagedBytes::Owned(bytes) => bytes.len(),
        }
    }

    /// Calls `f` with the bytes (an object spilled to disk is restored first).
    pub(crate) fn with_bytes<R>(
        &self,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, wasmray_store::StoreError> {
        match self {
            StagedBytes::Object(object) => Ok(f(&object.read()?)),
            StagedBytes::Owned(bytes) => Ok(f(bytes)),
        }
    }
}

/// Caps one instance's linear memory and remembers whether the cap was hit, so that the trap
/// that follows (Rust aborts when allocation fails) is reported as out of memory. Every byte
/// it grows by is also taken from its pools (the job's and the node's, `memory_pool.rs`), and
/// what it was granted goes back to them when it is dropped, with its store.
pub(crate) struct MemoryCap {
    pub(crate) max_bytes: usize,
    pub(crate) hit: bool,
    /// The pool that refused a growth, if one did (its message explains the error).
    pub(crate) refused_by: Option<String>,
    pub(crate) pools: Vec<Arc<MemoryPool>>,
    granted: u64,
}

impl MemoryCap {
    pub(crate) fn new(max_bytes: usize, pools: Vec<Arc<MemoryPool>>) -> Self {
        Self {
            max_bytes,
            hit: false,
            refused_by: None,
            pools,
            granted: 0,
        }
    }

    /// Takes `bytes` from every pool, or from none.
    fn take(&mut self, bytes: u64) -> bool {
        for (i, pool) in self.pools.iter().enumerate() {
            if !pool.take(bytes) {
                for earlier in &self.pools[..i] {
                    earlier.give_back(bytes);
                }
                self.refused_by = Some(pool.refusal().to_owned());
                return false;
            }
        }
        self.granted += bytes;
        true
    }
}

impl Drop for MemoryCap {
    fn drop(&mut self) {
        for pool in &self.pools {
            pool.give_back(self.granted);
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed =
            desired <= self.max_bytes && self.take(desired.saturating_sub(current) as u64);
        if !allowed {
            self.hit = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}
