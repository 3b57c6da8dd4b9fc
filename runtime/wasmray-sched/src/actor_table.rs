//! The scheduler's actor records: each actor's lifecycle state, its queue of calls, where it
//! runs, and the routes to actors other nodes own. Data only; what happens to actors is in
//! `actors.rs`.

use std::collections::VecDeque;
use std::sync::Arc;
use wasmray_core::{ActorId, ActorSpec, IdMap, JobId, NodeId, TaskError, TaskId, TaskSpec};

#[derive(Debug)]
pub(crate) enum ActorState {
    /// The constructor has not finished yet (first run or a restart).
    Creating,
    Alive,
    /// No handle remains: finishes what is queued, then dies.
    Draining,
    /// A call reported the instance lost; waiting for the node's `actor_lost`.
    Lost,
    Dead(Arc<TaskError>),
}

#[derive(Debug)]
pub(crate) struct ActorEntry<V> {
    pub(crate) spec: Arc<ActorSpec>,
    pub(crate) creation: Arc<TaskSpec<V>>,
    pub(crate) state: ActorState,
    /// Calls not started yet, in submission order.
    pub(crate) queue: VecDeque<TaskId>,
    pub(crate) running: usize,
    pub(crate) restarts: u32,
    /// Whether the actor holds its resources (from the first successful construction).
    pub(crate) holding: bool,
    /// Whether the creation task's arguments are still referenced (until death).
    pub(crate) holds_args: bool,
    pub(crate) handle_dropped: bool,
    /// The GPUs the actor holds while it holds its resources.
    pub(crate) gpu_ids: Vec<u32>,
    /// On the owner, once the actor runs on another node: that node. The entry is then a
    /// proxy: its queue holds calls until they are forwarded there.
    pub(crate) remote_host: Option<NodeId>,
    /// On a host, for an actor another node created: that node (the actor's owner).
    pub(crate) owner: Option<NodeId>,
    /// Nodes that asked where the actor runs before anyone knew.
    pub(crate) locators: Vec<NodeId>,
}

/// Where a caller's calls to an actor owned by another node go.
#[derive(Debug)]
pub(crate) enum Route {
    /// The owner was asked; these calls wait for its answer, in order.
    Locating(Vec<TaskId>),
    At(NodeId),
    Dead(Arc<TaskError>),
}

/// How `enqueue_call` placed a call.
pub(crate) enum Queued {
    /// In this node's queue for the actor (hosted here, or not placed yet).
    Here,
    /// Sent (or to be sent) to the node hosting the actor.
    Forwarded,
}

/// What the scheduler knows of a live actor it owns.
#[derive(Debug, Clone)]
pub struct ActorInfo {
    pub id: ActorId,
    pub spec: Arc<ActorSpec>,
    pub job: JobId,
    /// The instance's memory cap and each call's CPU-time limit, as created.
    pub memory_limit: Option<u64>,
    pub cpu_time_limit_ms: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct ActorTable<V> {
    pub(crate) entries: IdMap<ActorId, ActorEntry<V>>,
    /// Routes to actors other nodes own, for calls made here.
    pub(crate) routes: IdMap<ActorId, Route>,
    /// Each such actor's `max_task_retries`, as its owner said.
    pub(crate) retries: IdMap<ActorId, u32>,
}

impl<V> Default for ActorTable<V> {
    fn default() -> Self {
        Self {
            entries: IdMap::default(),
            routes: IdMap::default(),
            retries: IdMap::default(),
        }
    }
}

impl<V> ActorTable<V> {
    /// Actors of `job` owned here and not dead (a scan: creations are rare next to calls).
    pub(crate) fn live_of_job(&self, job: JobId) -> u64 {
        self.entries
            .values()
            .filter(|e| {
                e.creation.job == job
                    && e.owner.is_none()
                    && !matches!(e.state, ActorState::Dead(_))
            })
            .count() as u64
    }
}

impl<V> ActorEntry<V> {
    pub(crate) fn new(
        spec: Arc<ActorSpec>,
        creation: Arc<TaskSpec<V>>,
        owner: Option<NodeId>,
    ) -> Self {
        Self {
            spec,
            creation,
            state: ActorState::Creating,
            queue: VecDeque::new(),
            running: 0,
            restarts: 0,
            holding: false,
            gpu_ids: Vec::new(),
            holds_args: true,
            handle_dropped: false,
            remote_host: None,
            owner,
            locators: Vec::new(),
        }
    }
}
