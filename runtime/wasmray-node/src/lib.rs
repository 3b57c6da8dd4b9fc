//! A wasmray node: the scheduler, the object store and the wasm host, glued together on tokio.
//!
//! A [`Node`] runs drivers (a module's `main`) and the tasks they submit, each in a wasm
//! instance of its own. It implements what guests ask of it ([`wasmray_wasm::NodeServices`])
//! by feeding events to the scheduler's state machine and carrying out the actions it answers
//! with. This is the single-node (embedded) form; the head role and links to other nodes come
//! with the cluster work and will attach here, not inside the scheduler.
//!
//! The node prints nothing itself: guest output and unhandled errors go to the configured
//! [`OutputSink`]; diagnostics go to `tracing`.

mod actor_host;
mod actor_services;
mod actors;
mod asks;
mod config;
mod control;
mod error_log;
mod execute;
mod head_store;
mod head_watch;
mod inner;
mod jobs;
mod node;
mod pool;
mod relay;
mod remote;
mod running;
mod sched_cell;
mod services;
mod submit;
mod submitted;
mod value;
mod waiters;
pub mod wire_codec;

pub use config::NodeConfig;
pub use head_store::{HeadStore, HeadStoreError};

/// The resource under which a node lists its object store's capacity in bytes, as Ray does;
/// no task asks for it.
pub const OBJECT_STORE_MEMORY: &str = "object_store_memory";
pub use control::{
    ControlError, LATEST_NODE_FILE, MAX_REPLY, MAX_REQUEST, MemberReport, ObjectReport,
    StatusReport, decode_memory, decode_status, deploy_module, drain_node, fuzz_control_jobs,
    fuzz_control_jobs_seeds, job_logs, job_status, latest_socket, list_jobs, query_memory,
    query_status, stop_job, submit_job,
};
pub use jobs::JobOptions;
pub use node::{ClusterConfig, DriverExit, Node, NodeStats};
pub use submit::{DeployEvent, DeployRequest, SubmitRequest};
pub use submitted::{JobReport, JobRequestError, KEPT_ENDED, LogChunk, MAX_LOG_BYTES};
pub use wasmray_abi::{ErrorKind, TaskError};
pub use wasmray_core::{JobQuotas, terminal_safe, terminal_safe_lines};
pub use wasmray_sched::{HealthCheck, SchedStats};
pub use wasmray_store::StoreStats;
pub use wasmray_wasm::{DirGrant, OutputSink, StdioSink, Stream, WasmError};

/// Why a node could not start or run a driver.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Wasm(#[from] WasmError),
    #[error(transparent)]
    Store(#[from] wasmray_store::StoreError),
    #[error("invalid node resources: {0}")]
    Resources(#[from] wasmray_core::ResourceError),
    #[error("`{0}` has no `main` to run as a driver: mark one with #[wasmray::main]")]
    NoMain(String),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("cannot open the node's control socket: {0}")]
    Control(std::io::Error),
    #[error(transparent)]
    Net(#[from] wasmray_net::NetError),
    #[error(transparent)]
    HeadStore(#[from] HeadStoreError),
    #[error("this node is not part of a cluster")]
    NotInCluster,
}
