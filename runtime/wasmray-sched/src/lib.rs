//! wasmray's scheduling and ownership core, and the head's control state, as state machines.
//!
//! A node feeds its [`Scheduler`] [`Event`]s with the time (a task was submitted, finished,
//! blocked in `get`; a reference was added or dropped; a message arrived from another node)
//! and it answers with [`Action`]s to carry out in order (run this task now, an object sealed,
//! send this envelope). It owns the object table with ownership, borrowers and locations,
//! argument dependencies, the resource ledger, placement on the cluster (one hop), retries
//! and error propagation. The [`Head`] keeps membership, job IDs and actor names.
//!
//! Neither does I/O: no sockets, no threads, no clock, no tokio. That is what lets tests drive
//! them through whole simulated runs, and a simulated cluster, deterministically.

mod actor_table;
#[cfg(test)]
mod actor_tests;
mod actors;
mod cluster;
mod drain;
mod errors;
mod gpus;
mod head;
mod lineage;
mod link;
mod message;
mod objects;
mod queue;
mod rng;
mod scheduler;
#[cfg(test)]
mod sim;
mod task_table;
#[cfg(test)]
mod tests;
mod time;
mod view;
pub mod wire_error;

pub use actor_table::ActorInfo;
pub use head::{
    Head, HeadAction, HeadConfig, HeadEvent, HeadState, HealthCheck, Member, MemberState,
};
pub use link::{Envelope, Peer};
pub use message::{HeadAnswer, HeadRequest, Message, RemoteOutcome, RemoteStatus, Returned};
pub use objects::{ObjectState, RefCounts, RefKind};
pub use scheduler::{Action, Event, Outcome, RunTask, SchedConfig, SchedStats, Scheduler};
pub use time::Time;
pub use view::{ClusterView, NodeView, Snapshot};

use wasmray_core::ObjectId;

/// The node's handle to an object's stored value. Cloning must be cheap (an `Arc`); dropping
/// the last clone frees the bytes.
///
/// A value holds one reference to each object it contains. The node counts them when it
/// creates the value (with [`Event::AddContained`]), at the moment a guest hands the value over
/// and still holds its own handles; from then on the scheduler owns those references and
/// releases them when the value is freed or discarded.
pub trait ObjectValue: Clone {
    /// The objects referenced from inside this value, one entry per occurrence.
    fn contained(&self) -> &[ObjectId];
    /// Its size in bytes (small values travel inside messages; large ones are pulled).
    fn size(&self) -> u64;
}
