//! wasmray's scheduling and ownership core, as a state machine.
//!
//! The node feeds it events (a task was submitted, finished, blocked in `get`; a reference was
//! added or dropped) and it answers with [`Action`]s to carry out (run this task now, an object
//! was sealed, an unhandled error went out of scope). It owns the object table with reference
//! counts, argument dependencies, the resource ledger, retries and error propagation.
//!
//! It does no I/O: no sockets, no threads, no clock, no tokio. That is what lets tests drive it
//! through whole simulated runs deterministically (see `tests.rs`).

#[cfg(test)]
mod actor_tests;
mod actors;
mod errors;
mod gpus;
mod objects;
mod queue;
mod scheduler;
#[cfg(test)]
mod tests;

pub use actors::{ActorInfo, NameTaken};
pub use objects::{ObjectState, RefCounts, RefKind};
pub use scheduler::{Action, Outcome, RunTask, SchedStats, Scheduler};

use wasmray_core::ObjectId;

/// The node's handle to an object's stored value. Cloning must be cheap (an `Arc`); dropping
/// the last clone frees the bytes.
///
/// A value holds one reference to each object it contains. The node counts them when it
/// creates the value (with [`Scheduler::add_contained_ref`]), at the moment a guest hands the value over
/// and still holds its own handles; from then on the scheduler owns those references and
/// releases them when the value is freed or discarded.
pub trait ObjectValue: Clone {
    /// The objects referenced from inside this value, one entry per occurrence.
    fn contained(&self) -> &[ObjectId];
}
