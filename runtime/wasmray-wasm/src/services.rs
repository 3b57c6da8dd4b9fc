//! What a guest asks of its node, as a trait the node implements.
//!
//! Host functions decode and bounds-check what the guest passed, translate handles to object
//! IDs, and call these methods; the node decides what happens (scheduling, reference counting,
//! storage). Keeping the seam here means this crate knows nothing of schedulers or networks,
//! and the node knows nothing of guest memory.

use crate::call::{Caller, Finished, TaskCall, TaskOutcome};
use crate::counted::CountedValue;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use wasmray_abi::{CallOptions, ClusterQuery, MethodOptions, TaskError};
use wasmray_core::ObjectId;
use wasmray_store::{Reservation, StoredObject};

/// What an instance's values are charged to: its job's store account and largest value. Given
/// to the instance when it is made (instances never serve two jobs), so a put needs no lookup.
#[derive(Debug)]
pub struct JobLimits {
    pub account: Arc<wasmray_store::Account>,
    pub max_value_bytes: u64,
    pub max_pending_tasks: u64,
    /// Set when the job's driver has ended: from then on only its actors may submit.
    pub ended: std::sync::atomic::AtomicBool,
}

/// A boxed future, as the trait's async methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One argument of a submission, with handles already translated.
#[derive(Debug)]
pub enum SubmittedArg {
    ByRef(ObjectId),
    /// A value whose inner references are counted and owed.
    Value(CountedValue),
}

/// A task submitted by a guest.
#[derive(Debug)]
pub struct Submission {
    pub function: String,
    pub args: Vec<SubmittedArg>,
    pub num_returns: u32,
    pub options: CallOptions,
}

/// What `get` found.
#[derive(Debug)]
pub enum GetOutcome {
    /// The value; each contained object already has one more reference, for the caller.
    Value(Arc<StoredObject>),
    Error(Arc<TaskError>),
    Timeout,
    /// The object does not exist (the guest holds a handle to nothing).
    Missing,
}

/// A node as seen from its guests.
pub trait NodeServices: ActorServices {
    /// Submits a task; returns its return objects, each with one reference for the caller.
    /// A function the module does not export fails the task with an `invalid-task` error;
    /// a job over its quota of pending tasks is refused (the guest traps with the message).
    fn submit(
        &self,
        caller: &Caller,
        job: &JobLimits,
        submission: Submission,
    ) -> Result<Vec<ObjectId>, String>;

    /// Stores `bytes` as a new object, created by `put` (its ID is `caller.run.put_object(n)`);
    /// one reference, for the caller. The refs in `contained` are still held by the guest's
    /// handles; the node counts one more reference to each, owned by the new object.
    fn put(
        &self,
        caller: &Caller,
        job: &JobLimits,
        n: u32,
        bytes: &[u8],
        contained: Vec<ObjectId>,
    ) -> Result<ObjectId, String>;

    /// Reserves room for a value of `len` bytes that a guest streams in (`put_begin`),
    /// charged to its job.
    fn reserve(&self, job: &JobLimits, len: u64) -> Result<Reservation, String>;

    /// As [`put`](Self::put), for a value streamed into `room` (`put_end`); refused unless every
    /// reserved byte was written.
    fn put_reserved(
        &self,
        caller: &Caller,
        n: u32,
        room: Reservation,
        contained: Vec<ObjectId>,
    ) -> Result<ObjectId, String>;

    /// Stores a value a guest handed over (a return value, an argument passed by value); it is
    /// not visible to anyone until it is registered. As with `put`, the node counts a
    /// reference to each object in `contained`, owed by the value until it is handed over.
    fn store_value(
        &self,
        job: &JobLimits,
        bytes: &[u8],
        contained: Vec<ObjectId>,
    ) -> Result<CountedValue, String>;

    /// Waits for an object, giving the caller's CPU back while it blocks.
    fn get(
        &self,
        caller: &Caller,
        id: ObjectId,
        timeout: Option<Duration>,
    ) -> BoxFuture<'static, GetOutcome>;

    /// Ray's `wait`: which of `ids` are ready once `num_returns` are, or the timeout passes.
    /// Looks in list order and may stop at the `num_returns`-th ready one (later ones then
    /// read as not ready).
    fn wait(
        &self,
        caller: &Caller,
        ids: Vec<ObjectId>,
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> BoxFuture<'static, Vec<bool>>;

    /// The value of `id` if it is ready, without waiting and without adding references.
    fn peek(&self, id: ObjectId) -> Option<Arc<StoredObject>>;

    /// Adds one reference to each object (a guest received handles to them).
    fn add_refs(&self, ids: &[ObjectId]);

    /// Drops one reference to each object.
    fn release(&self, ids: &[ObjectId]);

    /// Cancels the task that makes `object` (Ray's `cancel`), and with `recursive` the tasks
    /// it submitted; whether a task was cancelled.
    fn cancel(&self, object: ObjectId, recursive: bool) -> bool;

    /// Answers a cluster query from `caller`, postcard-encoded as `wit/wasmray.wit` says.
    fn cluster_info(&self, caller: &Caller, query: ClusterQuery) -> Vec<u8>;
}

/// What a guest asks to create an actor, with handles already translated.
#[derive(Debug)]
pub struct ActorRequest {
    pub class: String,
    pub args: Vec<SubmittedArg>,
    pub options: wasmray_abi::ActorOptions,
}

/// The actor side of a node, as its guests see it.
pub trait ActorServices: Send + Sync + 'static {
    /// Creates an actor; returns its handle object, with one reference for the caller. (A
    /// named actor's name is claimed at the head first: a round trip in a cluster.)
    fn create_actor(
        &self,
        caller: &Caller,
        request: ActorRequest,
    ) -> BoxFuture<'static, Result<ObjectId, TaskError>>;

    /// Calls `method` (`Class::method`) on the actor whose handle object is `actor`; returns
    /// the result objects, each with one reference for the caller. Refused as
    /// [`NodeServices::submit`] is when the job is over its quota of pending tasks.
    #[allow(clippy::too_many_arguments)]
    fn call_actor(
        &self,
        caller: &Caller,
        job: &JobLimits,
        actor: ObjectId,
        method: &str,
        args: Vec<SubmittedArg>,
        num_returns: u32,
        options: &MethodOptions,
    ) -> Result<Vec<ObjectId>, String>;

    /// The handle object of the live actor `name` of class `class`, with one reference for
    /// the caller.
    fn get_actor(
        &self,
        caller: &Caller,
        name: &str,
        namespace: Option<&str>,
        class: &str,
    ) -> BoxFuture<'static, Result<ObjectId, TaskError>>;

    /// Kills the actor whose handle object is `actor`.
    fn kill_actor(&self, actor: ObjectId, no_restart: bool);
}

/// A call for an actor instance to run nested inside one of its calls that is blocked in
/// `get` or `wait` (actors with `max_concurrency > 1`).
pub struct NestedCall {
    pub call: TaskCall,
    pub reply: tokio::sync::oneshot::Sender<Finished<TaskOutcome>>,
}

/// Where a blocked call of a concurrent actor finds the calls to run meanwhile.
pub trait NestedCalls: Send + Sync + 'static {
    /// The next call to run; must be cancel-safe (a call is taken only when returned).
    fn next(&self) -> BoxFuture<'_, NestedCall>;
}
