//! wasmray's vocabulary: the identifiers, resource sets and task descriptions every other
//! runtime crate speaks in.
//!
//! Identifiers are built for a cluster from the start: a task ID carries the node that minted
//! it, so IDs minted on different nodes never collide and an object's owner can be found from
//! its ID. This crate holds data types only: no scheduling, no storage, no I/O.

mod escape;
mod ids;
mod quotas;
mod resources;
mod spec;

pub use escape::{terminal_safe, terminal_safe_lines};
pub use ids::{ActorId, IdMap, IdMint, JobId, ModuleId, NodeId, ObjectId, TaskId};
pub use quotas::{JobQuotas, Quota, QuotaExceeded};
pub use resources::{CPU, GPU, ResourceError, ResourceSet};
pub use spec::{ActorName, ActorSpec, ArgSpec, DEFAULT_MAX_RETRIES, Lineage, TaskKind, TaskSpec};
pub use wasmray_abi::{ErrorKind, TaskError};
