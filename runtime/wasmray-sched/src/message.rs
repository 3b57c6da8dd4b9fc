//! The messages schedulers and the head exchange: the cluster's protocol, closed and
//! documented here, with no encoding (the transport encodes; the simulator passes them as they
//! are).
//!
//! Messages travel inside [`crate::Envelope`]s on ordered, exactly-once links
//! ([`crate::link`]). A message that carries references (a task's arguments, a value with refs
//! inside) grants the receiver one reference to each (see ARCHITECTURE.md, "Objects across
//! nodes"); [`Message::refs`] lists them.

use crate::ObjectValue;
use crate::view::Snapshot;
use crate::wire_error;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use wasmray_core::{
    ActorId, ActorName, ArgSpec, JobId, NodeId, ObjectId, TaskError, TaskId, TaskSpec,
};

/// One message of the protocol. `V` is a stored value (the transport carries its bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message<V> {
    // Placement: owner and executor.
    /// Owner → executor: run this attempt if it fits your ledger now, or reject it. A granted
    /// task is never sent on (no re-spill).
    Lease {
        spec: Arc<TaskSpec<V>>,
        attempt: u32,
    },
    /// Executor → owner: the attempt did not fit; the executor's snapshot as of now.
    Rejected {
        task: TaskId,
        attempt: u32,
        snapshot: Snapshot,
    },
    /// Executor → owner: how the attempt ended.
    Done {
        task: TaskId,
        attempt: u32,
        outcome: RemoteOutcome<V>,
    },
    /// Owner → executor: stop this attempt if it runs (`cancel`).
    Stop { task: TaskId, attempt: u32 },

    // Actors: callers, the actor's owner (its creator's node) and its host.
    /// Caller → host: queue this method call behind the caller's earlier ones (the link keeps
    /// their order); its results go back in a `Done`.
    Call {
        spec: Arc<TaskSpec<V>>,
        attempt: u32,
    },
    /// Caller → owner: where does this actor run? `not_at`: not on this node, which the
    /// caller knows is dead (the owner answers once it knows where the actor runs after it).
    Locate {
        actor: ActorId,
        not_at: Option<NodeId>,
    },
    /// Owner → caller: it runs on this node, or it is dead; `retries` is its
    /// `max_task_retries` (for the caller's calls that did not set their own).
    Located {
        actor: ActorId,
        #[serde(with = "wire_error::result")]
        host: Result<NodeId, Arc<TaskError>>,
        retries: u32,
    },
    /// → owner (who forwards it to the host): kill the actor.
    Kill { actor: ActorId, no_restart: bool },
    /// Owner → host: no handle to the actor is left anywhere.
    HandlesGone { actor: ActorId },
    /// Host → owner: the actor died, for good.
    ActorGone {
        actor: ActorId,
        #[serde(with = "wire_error::shared")]
        cause: Arc<TaskError>,
    },
    /// Node → head, and head → every other node: a job's driver exited (its actors die,
    /// wherever they run, unless detached).
    JobEnded { job: JobId },

    // Objects: owner, borrowers, holders.
    /// To an object's owner: say when it seals (at once if it has).
    Subscribe { object: ObjectId },
    /// Owner → subscriber: the object sealed.
    Status {
        object: ObjectId,
        status: RemoteStatus<V>,
    },
    /// To a node holding a copy: send it.
    Pull { object: ObjectId },
    /// Holder → puller: the copy, or `None` if the holder has none (any more). Only values of
    /// at most the inline limit travel in a message; a larger one is `Offered`.
    Pulled { object: ObjectId, value: Option<V> },
    /// Holder → puller: the copy is here but too large for a message: fetch its `len` bytes
    /// from this node (the transport streams them into the puller's store, see
    /// [`crate::Action::Fetch`]). Grants the references inside the value, listed in
    /// `contained`.
    Offered {
        object: ObjectId,
        len: u64,
        contained: Vec<ObjectId>,
    },
    /// Puller → owner: the copy I pulled is here; I serve it onward to other pullers until I
    /// release my references (and drop it: the owner does not `Free` it).
    Holding { object: ObjectId },
    /// Borrower → owner: I passed a reference to `object` on to `to`.
    Lend { object: ObjectId, to: NodeId },
    /// Holder → owner: every reference I held is gone; I was granted `grants` of them.
    Release { object: ObjectId, grants: u32 },
    /// Owner → a node holding its copy: no reference is left anywhere; drop it.
    Free { object: ObjectId },
    /// To an object's owner: grant me a reference to it, if it still exists (a name lookup
    /// found an actor another node owns).
    Borrow { object: ObjectId },
    /// Owner → borrower: the answer to `Borrow`; `granted` grants one reference.
    Lent { object: ObjectId, granted: bool },

    // Membership: node and head.
    /// Node → head, first message: here I am, with what I offer.
    Join { snapshot: Snapshot },
    /// Node → head: my resources changed (and I am alive).
    Report { snapshot: Snapshot },
    /// Node → head: I am leaving the cluster for good (the others forget me as if I died).
    Leave,
    /// Head → every live node: `node` drains; place nothing new there (see `drain.rs`).
    Drain { node: NodeId },
    /// Draining node → owner: I keep this node's copy of `object` and am leaving: take it.
    Rehome { object: ObjectId },
    /// Owner → draining node: I (or another node) have `object` now; drop your copy.
    Rehomed { object: ObjectId },
    /// Head → node: another node's latest snapshot.
    View { node: NodeId, snapshot: Snapshot },
    /// Head → node: `node` is dead, for good.
    NodeDied { node: NodeId },
    /// Head → node: you were declared dead; nothing you send is accepted any more.
    Fenced,
    /// Head → node, outside the link (numbered 0, never resent): are you there? Sent when the
    /// head has heard nothing from the node for a health-check period; a lost one counts as
    /// a miss.
    Ping,
    /// Node → head, outside the link: the answer to `Ping`, sent at once. Any message from
    /// the node counts as an answer.
    Pong,
    /// Node → head: a control request; `request` is echoed in the answer.
    Ask { request: u64, ask: HeadRequest },
    /// Head → node: the answer to `Ask { request, .. }`.
    Answer { request: u64, answer: HeadAnswer },
}

/// What a remote attempt produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RemoteOutcome<V> {
    /// One entry per return, in order.
    Returned(Vec<Returned<V>>),
    Failed {
        #[serde(with = "wire_error::owned")]
        error: TaskError,
        system: bool,
    },
}

/// One return of a remote attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Returned<V> {
    /// Small: the value itself.
    Value(V),
    /// Large: the executor keeps it; pull it from there. `len` is its size in bytes.
    Kept { len: u64 },
}

/// An object's state, as its owner tells a subscriber.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RemoteStatus<V> {
    /// Ready: the value itself (small ones), or the nodes holding copies.
    Ready {
        value: Option<V>,
        at: Vec<NodeId>,
    },
    Failed(#[serde(with = "wire_error::shared")] Arc<TaskError>),
}

/// What a node asks the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadRequest {
    /// A new, cluster-unique job ID.
    NewJob,
    /// Register `name` for `actor` (a `class`) of `job`.
    ClaimName {
        name: ActorName,
        actor: TaskId,
        class: String,
        job: JobId,
    },
    /// Forget `name` if it still names `actor`.
    ReleaseName { name: ActorName, actor: TaskId },
    /// The actor registered as `name`.
    LookupName { name: ActorName },
    /// Drain `node`: no new work there; it leaves once its work is done.
    Drain { node: NodeId },
}

/// The head's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadAnswer {
    Job(JobId),
    /// `ClaimName`: true if the name was free.
    Claimed(bool),
    Released,
    /// `LookupName`: the actor and its class.
    Found(Option<(TaskId, String)>),
    /// `Drain`: whether the node drains now (false: no such live node, or the head).
    Draining(bool),
}

impl<V: Clone> Message<V> {
    /// The same message with every value it carries converted by `f` (the transport decodes
    /// into wire values, then into the node's own).
    pub fn try_map_values<W, E>(
        self,
        f: &mut impl FnMut(V) -> Result<W, E>,
    ) -> Result<Message<W>, E> {
        let mut spec = |spec: Arc<TaskSpec<V>>| {
            Arc::unwrap_or_clone(spec)
                .try_map_values(&mut *f)
                .map(Arc::new)
        };
        Ok(match self {
            Message::Lease { spec: s, attempt } => Message::Lease {
                spec: spec(s)?,
                attempt,
            },
            Message::Call { spec: s, attempt } => Message::Call {
                spec: spec(s)?,
                attempt,
            },
            Message::Rejected {
                task,
                attempt,
                snapshot,
            } => Message::Rejected {
                task,
                attempt,
                snapshot,
            },
            Message::Done {
                task,
                attempt,
                outcome,
            } => Message::Done {
                task,
                attempt,
                outcome: match outcome {
                    RemoteOutcome::Returned(values) => RemoteOutcome::Returned(
                        values
                            .into_iter()
                            .map(|r| {
                                Ok(match r {
                                    Returned::Value(v) => Returned::Value(f(v)?),
                                    Returned::Kept { len } => Returned::Kept { len },
                                })
                            })
                            .collect::<Result<_, E>>()?,
                    ),
                    RemoteOutcome::Failed { error, system } => {
                        RemoteOutcome::Failed { error, system }
                    }
                },
            },
            Message::Stop { task, attempt } => Message::Stop { task, attempt },
            Message::Locate { actor, not_at } => Message::Locate { actor, not_at },
            Message::Located {
                actor,
                host,
                retries,
            } => Message::Located {
                actor,
                host,
                retries,
            },
            Message::Kill { actor, no_restart } => Message::Kill { actor, no_restart },
            Message::HandlesGone { actor } => Message::HandlesGone { actor },
            Message::ActorGone { actor, cause } => Message::ActorGone { actor, cause },
            Message::JobEnded { job } => Message::JobEnded { job },
            Message::Subscribe { object } => Message::Subscribe { object },
            Message::Status { object, status } => Message::Status {
                object,
                status: match status {
                    RemoteStatus::Ready { value, at } => RemoteStatus::Ready {
                        value: value.map(&mut *f).transpose()?,
                        at,
                    },
                    RemoteStatus::Failed(error) => RemoteStatus::Failed(error),
                },
            },
            Message::Pull { object } => Message::Pull { object },
            Message::Pulled { object, value } => Message::Pulled {
                object,
                value: value.map(&mut *f).transpose()?,
            },
            Message::Offered {
                object,
                len,
                contained,
            } => Message::Offered {
                object,
                len,
                contained,
            },
            Message::Holding { object } => Message::Holding { object },
            Message::Lend { object, to } => Message::Lend { object, to },
            Message::Release { object, grants } => Message::Release { object, grants },
            Message::Free { object } => Message::Free { object },
            Message::Borrow { object } => Message::Borrow { object },
            Message::Lent { object, granted } => Message::Lent { object, granted },
            Message::Join { snapshot } => Message::Join { snapshot },
            Message::Report { snapshot } => Message::Report { snapshot },
            Message::Leave => Message::Leave,
            Message::View { node, snapshot } => Message::View { node, snapshot },
            Message::NodeDied { node } => Message::NodeDied { node },
            Message::Fenced => Message::Fenced,
            Message::Drain { node } => Message::Drain { node },
            Message::Rehome { object } => Message::Rehome { object },
            Message::Rehomed { object } => Message::Rehomed { object },
            Message::Ping => Message::Ping,
            Message::Pong => Message::Pong,
            Message::Ask { request, ask } => Message::Ask { request, ask },
            Message::Answer { request, answer } => Message::Answer { request, answer },
        })
    }
}

impl<V: ObjectValue> Message<V> {
    /// The references the message grants its receiver, one per occurrence.
    pub fn refs(&self) -> Vec<ObjectId> {
        let mut refs = Vec::new();
        match self {
            Message::Lease { spec, .. } | Message::Call { spec, .. } => {
                // A method call holds its actor's handle (see `reference_args`).
                if let Some(actor) = spec.actor()
                    && matches!(spec.kind, wasmray_core::TaskKind::ActorMethod { .. })
                {
                    refs.push(actor.handle_object());
                }
                for arg in &spec.args {
                    match arg {
                        ArgSpec::ByRef(id) => refs.push(*id),
                        ArgSpec::Value(value) => refs.extend_from_slice(value.contained()),
                    }
                }
            }
            Message::Done {
                outcome: RemoteOutcome::Returned(values),
                ..
            } => {
                for value in values {
                    if let Returned::Value(value) = value {
                        refs.extend_from_slice(value.contained());
                    }
                }
            }
            Message::Status {
                status:
                    RemoteStatus::Ready {
                        value: Some(value), ..
                    },
                ..
            }
            | Message::Pulled {
                value: Some(value), ..
            } => refs.extend_from_slice(value.contained()),
            Message::Offered { contained, .. } => refs.extend_from_slice(contained),
            Message::Lent {
                object,
                granted: true,
            } => refs.push(*object),
            _ => {}
        }
        refs
    }

    /// A short name for logs and simulator traces.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Lease { .. } => "lease",
            Message::Rejected { .. } => "rejected",
            Message::Done { .. } => "done",
            Message::Stop { .. } => "stop",
            Message::Call { .. } => "call",
            Message::Locate { .. } => "locate",
            Message::Located { .. } => "located",
            Message::Kill { .. } => "kill",
            Message::HandlesGone { .. } => "handles-gone",
            Message::ActorGone { .. } => "actor-gone",
            Message::JobEnded { .. } => "job-ended",
            Message::Subscribe { .. } => "subscribe",
            Message::Status { .. } => "status",
            Message::Pull { .. } => "pull",
            Message::Pulled { .. } => "pulled",
            Message::Offered { .. } => "offered",
            Message::Holding { .. } => "holding",
            Message::Lend { .. } => "lend",
            Message::Release { .. } => "release",
            Message::Free { .. } => "free",
            Message::Borrow { .. } => "borrow",
            Message::Lent { .. } => "lent",
            Message::Join { .. } => "join",
            Message::Report { .. } => "report",
            Message::Leave => "leave",
            Message::View { .. } => "view",
            Message::NodeDied { .. } => "node-died",
            Message::Fenced => "fenced",
            Message::Drain { .. } => "drain",
            Message::Rehome { .. } => "rehome",
            Message::Rehomed { .. } => "rehomed",
            Message::Ping => "ping",
            Message::Pong => "pong",
            Message::Ask { .. } => "ask",
            Message::Answer { .. } => "answer",
        }
    }
}
