//! The flags that shape a node — its resources, store and limits — shared by `wasmray run`
//! and `wasmray start`, and the node configuration they make.

use crate::{cache_dir, sizes};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wasmray_node::NodeConfig;

#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Logical CPUs the node offers [default: the machine's cores].
    #[arg(long)]
    pub(crate) num_cpus: Option<f64>,
    /// Logical GPUs the node offers.
    #[arg(long, default_value_t = 0.0)]
    num_gpus: f64,
    /// Custom resources as a JSON object, e.g. '{"disk": 2}'.
    #[arg(long, value_parser = sizes::parse_resources)]
    resources: Option<sizes::ResourceList>,
    /// Object store capacity, e.g. 2GiB [default: 30% of RAM].
    #[arg(long, value_parser = sizes::parse_bytes)]
    object_store_memory: Option<u64>,
    /// Memory cap of each task unless its options say otherwise, e.g. 512MiB [default: 2GiB].
    #[arg(long, value_parser = sizes::parse_bytes)]
    task_memory: Option<u64>,
    /// CPU time each task may use, in seconds, unless its options say otherwise [default: 1800].
    #[arg(long)]
    task_cpu_time_limit: Option<f64>,
    /// Instances that may exist at once (tasks running or blocked, live actors, idle ones).
    #[arg(long)]
    max_instances: Option<u32>,
    /// The most memory any one instance may have, e.g. 256MiB [default: 4GiB]. Each instance
    /// reserves this much address space; lower it to hold 100,000 actors.
    #[arg(long, value_parser = sizes::parse_bytes)]
    max_task_memory: Option<u64>,
    /// Where to cache compiled modules [default: $WASMRAY_CACHE_DIR or ~/.cache/wasmray/modules].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Compile the module afresh and cache nothing.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl NodeArgs {
    /// The node configuration these flags describe.
    pub(crate) fn config(&self) -> anyhow::Result<NodeConfig> {
        node_config(self)
    }
}

fn node_config(args: &NodeArgs) -> anyhow::Result<NodeConfig> {
    let mut config = NodeConfig::default();
    if let Some(cpus) = args.num_cpus {
        anyhow::ensure!(
            cpus.is_finite() && cpus >= 0.0,
            "--num-cpus must be a number >= 0"
        );
        config.num_cpus = cpus;
    }
    anyhow::ensure!(
        args.num_gpus.is_finite() && args.num_gpus >= 0.0,
        "--num-gpus must be a number >= 0"
    );
    config.num_gpus = args.num_gpus;
    if let Some(resources) = &args.resources {
        config.resources = resources.0.clone();
    }
    if let Some(bytes) = args.object_store_memory {
        config.object_store_memory = bytes;
    }
    if let Some(bytes) = args.max_task_memory {
        anyhow::ensure!(
            (1 << 20..=4 << 30).contains(&bytes),
            "--max-task-memory must be between 1MiB and 4GiB"
        );
        config.max_task_memory = bytes;
        config.default_task_memory = config.default_task_memory.min(bytes);
    }
    if let Some(bytes) = args.task_memory {
        anyhow::ensure!(
            bytes <= config.max_task_memory,
            "--task-memory cannot exceed {} bytes (the most a wasm32 memory can address)",
            config.max_task_memory
        );
        config.default_task_memory = bytes;
    }
    if let Some(seconds) = args.task_cpu_time_limit {
        anyhow::ensure!(
            seconds.is_finite() && seconds > 0.0,
            "--task-cpu-time-limit must be a number of seconds > 0"
        );
        config.default_cpu_time_limit = Some(Duration::from_secs_f64(seconds));
    }
    if let Some(max) = args.max_instances {
        anyhow::ensure!(max > 0, "--max-instances must be at least 1");
        config.max_instances = max;
    }
    config.cache_dir = cache_dir::resolve(args.cache_dir.clone(), args.no_cache);
    Ok(config)
}
