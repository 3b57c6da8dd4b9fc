//! How a node is set up: its resources, memory, limits and where output goes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmray_core::JobQuotas;
use wasmray_wasm::{OutputSink, StdioSink};

/// A node's settings. `Default` gives what `wasmray run` uses without flags.
#[derive(Clone)]
pub struct NodeConfig {
    /// Logical CPUs offered (default: the machine's cores).
    pub num_cpus: f64,
    pub num_gpus: f64,
    /// Custom resources, by name.
    pub resources: Vec<(String, f64)>,
    /// Capacity of the object store's arena, in bytes (default: 30% of RAM, as Ray).
    pub object_store_memory: u64,
    /// Instances that may exist at once.
    pub max_instances: u32,
    /// The hard upper bound on one instance's memory.
    pub max_task_memory: u64,
    /// A task's memory cap unless its options say otherwise.
    pub default_task_memory: u64,
    /// A task's CPU-time limit unless its options say otherwise.
    pub default_cpu_time_limit: Option<Duration>,
    /// Idle instances kept per (job, module, function) for reuse.
    pub idle_instances_per_function: usize,
    /// Where compiled modules are cached on disk.
    pub cache_dir: Option<PathBuf>,
    /// Parent of the node's scratch directory (spilled objects) [default: the system temp dir].
    pub temp_dir: Option<PathBuf>,
    /// Where guest output and unhandled errors go.
    pub output: Arc<dyn OutputSink>,
    /// Linear memory of every instance on the node together (default: 60% of RAM, beside
    /// the object store's 30%).
    pub guest_memory: u64,
    /// A job's quotas unless it is given its own ([`crate::Node::run_job`]).
    pub default_quotas: JobQuotas,
    /// Off only to measure what enforcing limits costs (see `WasmHostConfig`).
    #[doc(hidden)]
    pub enforce_limits: bool,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("num_cpus", &self.num_cpus)
            .field("num_gpus", &self.num_gpus)
            .field("resources", &self.resources)
            .field("object_store_memory", &self.object_store_memory)
            .field("max_instances", &self.max_instances)
            .field("cache_dir", &self.cache_dir)
            .field("default_quotas", &self.default_quotas)
            .finish_non_exhaustive()
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            num_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
            num_gpus: 0.0,
            resources: Vec::new(),
            object_store_memory: wasmray_store::default_capacity(),
            max_instances: 2048,
            max_task_memory: 4 << 30,
            default_task_memory: 2 << 30,
            default_cpu_time_limit: Some(Duration::from_secs(30 * 60)),
            idle_instances_per_function: 4,
            cache_dir: None,
            temp_dir: None,
            output: Arc::new(StdioSink::new()),
            guest_memory: default_guest_memory(),
            default_quotas: JobQuotas {
                max_guest_memory: default_guest_memory(),
                ..JobQuotas::default()
            },
            enforce_limits: true,
        }
    }
}

/// 60% of the machine's memory (16 GiB where that is unknown).
pub fn default_guest_memory() -> u64 {
    wasmray_store::system_memory().map_or(16 << 30, |total| total / 10 * 6)
}
