//! The scheduler proper: its vocabulary (events in, actions out, time passed in) and the
//! task lifecycle from submission to sealed results.
//!
//! A task is waiting (for arguments), ready (queued for resources), running here, or leased
//! to another node. On finishing, its results are sealed, or it is queued again if its retry
//! policy allows. A task whose argument failed never runs: its returns fail at once with the
//! argument's error wrapped, and so do the returns of every task that depends on those,
//! transitively. Messages with other nodes are handled in `cluster.rs`.

use crate::ObjectValue;
use crate::actor_table::{ActorTable, Queued};
use crate::errors::{cancelled, dependency_failed, infeasible, invalid};
use crate::gpus::GpuIds;
use crate::lineage::LineageTable;
use crate::link::{Envelope, Links, Peer};
use crate::message::{HeadAnswer, HeadRequest, Message};
use crate::objects::{ObjectEvent, ObjectState, ObjectTable, RefCounts, RefKind};
use crate::queue::ReadyQueue;
use crate::rng::Rng;
use crate::task_table::TaskTable;
pub(crate) use crate::task_table::{TaskEntry, TaskState};
use crate::time::Time;
use crate::view::ClusterView;
use std::sync::Arc;
use std::time::Duration;
use wasmray_core::{
    ActorId, ArgSpec, CPU, GPU, JobId, NodeId, ObjectId, ResourceSet, TaskError, TaskId, TaskKind,
    TaskSpec,
};

/// How a scheduler is set up.
#[derive(Debug, Clone)]
pub struct SchedConfig {
    /// This node: objects whose IDs it minted are owned here.
    pub node: NodeId,
    /// What this node offers.
    pub total: ResourceSet,
    /// Seeds the random choices (placement ties).
    pub seed: u64,
    /// First resend of an unacknowledged message (doubling after).
    pub resend_after: Duration,
    /// A report to the head at least this often (it is also how the head knows the node
    /// lives).
    pub report_every: Duration,
    /// Reports of changed resources at most this often.
    pub report_gap: Duration,
    /// Results of a remote task up to this size travel in its reply; larger ones stay on the
    /// node that made them until pulled.
    pub inline_limit: u64,
    /// How many bytes of one large object a node serves to pullers at once (at least two
    /// pullers): the owner points further pullers at nodes that finished pulling it, so a
    /// broadcast spreads as a tree.
    pub serve_budget: u64,
    /// How many bytes of task specs an owner keeps to make lost objects again (lineage;
    /// Ray's default is 1 GiB). Past it a result's loss is final (`ObjectLost`).
    pub lineage_budget: u64,
}

impl SchedConfig {
    /// Defaults for a node offering `total`.
    pub fn new(node: NodeId, total: ResourceSet) -> Self {
        Self {
            node,
            total,
            seed: node.0,
            resend_after: Duration::from_millis(500),
            report_every: Duration::from_secs(1),
            report_gap: Duration::from_millis(100),
            inline_limit: 100 * 1024,
            serve_budget: 64 << 20,
            lineage_budget: 1 << 30,
        }
    }
}

/// Everything that can happen to a scheduler. Each is taken in by [`Scheduler::handle`].
#[derive(Debug)]
pub enum Event<V> {
    /// A task was submitted. Its return objects exist from now on with one reference each,
    /// which belongs to the submitter; its `ByRef` arguments gain a reference until it is
    /// done; the references inside its `Value` arguments were counted when they were made.
    Submit(Arc<TaskSpec<V>>),
    /// A task that must not run (bad options, unknown function) was submitted: its returns
    /// exist, with one reference each for the submitter, and fail at once with `error`.
    Reject {
        spec: Arc<TaskSpec<V>>,
        error: TaskError,
    },
    /// An actor is created by this creation task (kind `ActorCreation`; its name, if any, was
    /// claimed at the head). Its handle object ([`ActorId::handle_object`]) holds `handle`
    /// with one reference for the creator; a detached actor holds one more itself.
    CreateActor { spec: Arc<TaskSpec<V>>, handle: V },
    /// An object made by `put`, with one reference (the putter's).
    Put { id: ObjectId, value: V },
    /// A guest gained a handle to an object.
    AddRef(ObjectId),
    /// A guest dropped a handle.
    Release(ObjectId),
    /// A new value holds a reference to an object inside it (see [`ObjectValue`]).
    AddContained(ObjectId),
    /// A value counted with `AddContained` was never stored: drop what it counted.
    ReleaseContained(ObjectId),
    /// A `get` or `wait` waits for the object: say [`Action::Sealed`] when it is usable here
    /// (fetching it from another node if that is where it is).
    Watch(ObjectId),
    /// A `get` saw the object's error: it is not unhandled.
    ErrorSeen(ObjectId),
    /// A running task blocked in `get` or `wait`: its CPU goes back to the pool (as in Ray).
    Blocked(TaskId),
    /// A blocked task may run again: it takes its CPU back at once, even if that briefly
    /// oversubscribes the node (as Ray does), so that unblocking can never deadlock.
    Unblocked(TaskId),
    /// A run of the task ended.
    Finished { task: TaskId, outcome: Outcome<V> },
    /// Ray's `cancel`: stops the task that makes `object`, and with `recursive` the tasks it
    /// submitted, transitively (see [`Scheduler::cancellable`]).
    Cancel { object: ObjectId, recursive: bool },
    /// `kill`: with `no_restart`, or with no restarts left, the actor dies at once and its
    /// calls fail; otherwise its instance is stopped and it is re-created.
    KillActor { actor: ActorId, no_restart: bool },
    /// The node lost the actor's instance (memory cap, CPU limit, kill) after reporting every
    /// call that was in flight: re-create it if restarts remain, or let it die with `cause`.
    ActorLost { actor: ActorId, cause: TaskError },
    /// A job's driver exited: its actors die unless detached.
    JobFinished(JobId),
    /// Ask the head something; the answer comes as [`Action::Answered`] with `request`.
    Ask { request: u64, ask: HeadRequest },
    /// An envelope arrived from another node or the head.
    Received {
        from: Peer,
        envelope: Envelope<Message<V>>,
    },
    /// The bytes [`Action::Fetch`] asked for arrived from `from` (a value holding the
    /// references the fetch listed), or could not be had (`None`: the holder has no copy any
    /// more, the link broke, the store had no room).
    Fetched {
        object: ObjectId,
        from: NodeId,
        value: Option<V>,
    },
    /// The node leaves its cluster for good: the head tells the others, who forget it as
    /// if it had died. Nothing should be submitted after.
    Leave,
    /// The head was restarted: a new head, on a new node, took over from the one that ran
    /// on `old` (dead from now on). The link to the head starts again — the node's join
    /// first, then what the old head had not acknowledged.
    HeadRestarted { old: NodeId },
    /// A guest looked up an object owned by another node (an actor found by name): ask its
    /// owner for a reference; [`Action::Lent`] answers.
    Borrow(ObjectId),
    /// The time [`Scheduler::poll_timeout`] named has come.
    Timeout,
}

/// Something the node must do.
#[derive(Debug)]
pub enum Action<V> {
    /// Run this task now; its resources are already taken.
    Run(RunTask<V>),
    /// An object someone is waiting on (see [`Event::Watch`]) is now ready or failed here.
    Sealed(ObjectId),
    /// A failed task will run again.
    Retry {
        task: TaskId,
        function: String,
        attempt: u32,
        error: Arc<TaskError>,
    },
    /// Every copy of `object`, a result of `task`, was lost: the task runs again from its
    /// lineage as attempt `attempt`.
    Rebuild {
        object: ObjectId,
        task: TaskId,
        function: String,
        attempt: u32,
    },
    /// A task failed for good.
    Failed {
        task: TaskId,
        job: JobId,
        error: Arc<TaskError>,
    },
    /// An error object was dropped without anyone retrieving it.
    UnhandledError(Arc<TaskError>),
    /// `cancel` asked for this running task to stop: stop its instance. Its report then fails
    /// it as cancelled.
    StopTask(TaskId),
    /// Stop the actor's instance now (calls in flight end as lost).
    StopActor(ActorId),
    /// The actor's instance was lost and it is being re-created (attempt `attempt`).
    Restart {
        actor: ActorId,
        attempt: u32,
        cause: Arc<TaskError>,
    },
    /// The actor is dead for good; forget its instance.
    ActorDied {
        actor: ActorId,
        cause: Arc<TaskError>,
    },
    /// Send `envelope` to `to`. Envelopes to one peer must be sent in the order given; the
    /// link layer tolerates loss, duplication and reordering below that.
    Send {
        to: Peer,
        envelope: Envelope<Message<V>>,
    },
    /// Fetch the `len` bytes of `object` from `from`, which offered them, into this node's
    /// store; the value holds `contained`. Answer with exactly one [`Event::Fetched`].
    Fetch {
        object: ObjectId,
        from: NodeId,
        len: u64,
        contained: Vec<ObjectId>,
    },
    /// The answer to one [`Event::Borrow`] of `object`: if `granted`, this node holds one more
    /// local reference to it (the guest's handle).
    Lent { object: ObjectId, granted: bool },
    /// The head answered [`Event::Ask`] `request`.
    Answered { request: u64, answer: HeadAnswer },
    /// The head declared this node dead: nothing it sends is accepted any more. The node
    /// must stop (and may join again as a new node).
    Fenced,
    /// The driver of `job` ended on another node (the head said so): what the node keeps
    /// for the job beyond the work it still runs can go.
    JobEnded(JobId),
    /// This node drains and is done: nothing but actor calls runs, every copy it kept for
    /// another owner was re-homed. It may leave now (`drain.rs`).
    Drained,
}

/// A task to run, with its arguments resolved to values in order.
#[derive(Debug)]
pub struct RunTask<V> {
    pub spec: Arc<TaskSpec<V>>,
    pub args: Vec<V>,
    /// 0 on the first run.
    pub attempt: u32,
    /// The logical IDs of the GPUs the task holds (an actor's, for its constructor and
    /// methods), `0..` the node's GPU count.
    pub gpu_ids: Vec<u32>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome<V> {
    /// One value per return.
    Returned(Vec<V>),
    /// `system` is true for failures of the runtime rather than of the guest's code; those are
    /// retried up to `max_retries`; guest failures only with `retry_exceptions`. For an actor
    /// method, `system` means the actor's instance was lost during the call.
    Failed { error: TaskError, system: bool },
}

/// Counts for status displays and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedStats {
    pub waiting: usize,
    pub ready: usize,
    pub running: usize,
    pub blocked: usize,
    /// Tasks owned here, running on other nodes.
    pub leased_out: usize,
    pub objects: usize,
    pub actors: usize,
    /// Messages sent and not yet acknowledged.
    pub unacked: usize,
    /// Tasks whose specs are kept to make their lost results again.
    pub lineage: usize,
    /// Tasks run again, so far, to make results whose every copy was lost.
    pub rebuilt: u64,
    /// Leases from other nodes waiting here for room.
    pub queued_leases: usize,
    /// Actor records kept, dead ones included.
    pub actor_entries: usize,
}

/// The state machine. `V` is the node's handle to a stored value.
#[derive(Debug)]
pub struct Scheduler<V> {
    pub(crate) config: SchedConfig,
    /// The time of the event being handled.
    pub(crate) now: Time,
    pub(crate) total: ResourceSet,
    pub(crate) available: ResourceSet,
    pub(crate) objects: ObjectTable<V>,
    pub(crate) tasks: TaskTable<V>,
    pub(crate) ready: ReadyQueue,
    pub(crate) actors: ActorTable<V>,
    pub(crate) gpus: GpuIds,
    /// Actors whose queue may be able to move, looked at by the next `dispatch`.
    actors_to_dispatch: Vec<ActorId>,
    pub(crate) actions: Vec<Action<V>>,
    pub(crate) view: ClusterView,
    pub(crate) links: Links<Message<V>>,
    /// Specs kept to make lost results again (owner side).
    pub(crate) lineage: LineageTable<V>,
    /// Tasks run again to make lost results, so far.
    pub(crate) rebuilt: u64,
    pub(crate) rng: Rng,
    /// When the last report went to the head, and what it said was available.
    pub(crate) last_report: Time,
    pub(crate) reported: ResourceSet,
    pub(crate) report_version: u64,
    /// What the node last said its store holds (carried in reports, for status displays).
    pub(crate) store_used: u64,
    pub(crate) reported_store: u64,
    /// What the head was last told is available.
    pub(crate) head_has: ResourceSet,
    /// The head declared this node dead.
    pub(crate) fenced: bool,
    /// This node told the head it leaves: the others forget it once they hear, so it takes
    /// nothing more from them and sends them nothing (what it would answer, they learn from
    /// its death: a lease is placed elsewhere, a pull goes to another copy).
    pub(crate) left: bool,
    /// The head said this node drains (`drain.rs`); `drained` once it said it was done.
    pub(crate) draining: bool,
    pub(crate) drained: bool,
    /// Owner side: objects being pulled here because the draining nodes listed keep their
    /// only copy.
    pub(crate) rehoming: wasmray_core::IdMap<ObjectId, Vec<NodeId>>,
    /// Fetches asked of the node ([`Action::Fetch`]) not answered yet, by object and source:
    /// the references taken in for the value (given back if it never comes).
    pub(crate) fetching: wasmray_core::IdMap<(ObjectId, NodeId), Vec<ObjectId>>,
    /// Borrows asked of owners ([`Event::Borrow`]) not answered yet, per object.
    pub(crate) borrowing: wasmray_core::IdMap<ObjectId, u32>,
    /// Executor side: leases of plain tasks that fit this node's totals but not what is free
    /// now, granted in arrival order as resources free up (`cluster.rs`).
    pub(crate) queued_leases: std::collections::VecDeque<crate::task_table::QueuedLease<V>>,
    /// Executor side: leased tasks whose arguments all arrived, waiting for a CPU to free up
    /// (they gave theirs back while they waited; see `arrived`), oldest first.
    pub(crate) parked: std::collections::VecDeque<TaskId>,
    /// How many times each task's results were settled (sealed or failed): the simulator
    /// checks it never exceeds one.
    #[cfg(test)]
    pub(crate) settled: wasmray_core::IdMap<TaskId, u32>,
    /// How many times each task was run again to make lost results (for the same checks).
    #[cfg(test)]
    pub(crate) rebuilds: wasmray_core::IdMap<TaskId, u32>,
}

impl<V: ObjectValue> Scheduler<V> {
    /// A scheduler for a node, starting at `now`; its first action joins the head.
    pub fn new(config: SchedConfig, now: Time) -> Self {
        let total = config.total.clone();
        let mut sched = Self {
            now,
            available: total.clone(),
            gpus: GpuIds::new(total.get(GPU)),
            view: ClusterView::new(config.node, total.clone()),
            objects: ObjectTable::new(config.node),
            tasks: TaskTable::default(),
            ready: ReadyQueue::default(),
            actors: ActorTable::default(),
            actors_to_dispatch: Vec::new(),
            actions: Vec::new(),
            links: Links::new(config.resend_after),
            lineage: LineageTable::new(config.lineage_budget),
            rebuilt: 0,
            rng: Rng::new(config.seed),
            last_report: now,
            reported: total.clone(),
            head_has: total.clone(),
            report_version: 1,
            store_used: 0,
            reported_store: 0,
            fenced: false,
            left: false,
            draining: false,
            drained: false,
            rehoming: wasmray_core::IdMap::default(),
            fetching: Default::default(),
            borrowing: Default::default(),
            queued_leases: Default::default(),
            parked: Default::default(),
            #[cfg(test)]
            settled: wasmray_core::IdMap::default(),
            #[cfg(test)]
            rebuilds: wasmray_core::IdMap::default(),
            total,
            config,
        };
        let snapshot = sched.snapshot();
        sched.send(Peer::Head, Message::Join { snapshot });
        sched
    }

    pub fn node(&self) -> NodeId {
        self.config.node
    }

    pub fn total(&self) -> &ResourceSet {
        &self.total
    }

    pub fn available(&self) -> &ResourceSet {
        &self.available
    }

    /// The cluster as this node sees it.
    /// Messages sent to other nodes or the head and not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        self.links.unacked()
    }

    /// The node's store use, for the reports the head relays (the next heartbeat carries it).
    pub fn set_store_used(&mut self, bytes: u64) {
        self.store_used = bytes;
    }

    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// Takes in one event at `now` (which must not go backwards).
    pub fn handle(&mut self, now: Time, event: Event<V>) {
        self.now = self.now.max(now);
        match event {
            Event::Submit(spec) => self.submit_arc(spec),
            Event::Reject { spec, error } => self.reject(spec, error),
            Event::CreateActor { spec, handle } => self.submit_actor(spec, handle),
            Event::Put { id, value } => {
                self.put(id, value);
            }
            Event::AddRef(id) => {
                self.add_ref(id);
            }
            Event::Release(id) => self.release(id),
            Event::AddContained(id) => {
                self.add_contained_ref(id);
            }
            Event::ReleaseContained(id) => self.release_contained(id),
            Event::Watch(id) => self.watch(id),
            Event::ErrorSeen(id) => {
                if let Some(entry) = self.objects.get_mut(id) {
                    entry.error_handled = true;
                }
            }
            Event::Blocked(task) => self.task_blocked(task),
            Event::Unblocked(task) => self.task_unblocked(task),
            Event::Finished { task, outcome } => self.task_finished(task, outcome),
            Event::Cancel { object, recursive } => {
                self.cancel(object, recursive);
            }
            Event::KillActor { actor, no_restart } => self.kill_actor(actor, no_restart),
            Event::ActorLost { actor, cause } => self.actor_lost(actor, cause),
            Event::JobFinished(job) => self.driver_exited(job),
            Event::Ask { request, ask } => self.send(Peer::Head, Message::Ask { request, ask }),
            Event::Received { from, envelope } => self.received(from, envelope),
            Event::Fetched {
                object,
                from,
                value,
            } => self.fetched(object, from, value),
            Event::Borrow(object) => self.borrow(object),
            Event::Leave => {
                self.left = true;
                self.send(Peer::Head, Message::Leave);
            }
            Event::HeadRestarted { old } => self.head_restarted(old),
            Event::Timeout => self.timeout(),
        }
        self.after_event();
    }

    /// When [`Event::Timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Time> {
        crate::time::earliest(self.links.poll_timeout(), Some(self.next_report()))
    }

    /// The actions produced and not yet taken, in order (a query: see `drain_actions`).
    pub fn pending_actions(&self) -> &[Action<V>] {
        &self.actions
    }

    /// Takes the actions produced since the last call. They must be carried out in this
    /// order: a message that grants a reference is sent before the one that releases it.
    pub fn drain_actions(&mut self) -> Vec<Action<V>> {
        std::mem::take(&mut self.actions)
    }

    pub fn stats(&self) -> SchedStats {
        let mut stats = SchedStats {
            objects: self.objects.len(),
            actors: self.live_actors(),
            unacked: self.links.unacked(),
            lineage: self.lineage.len(),
            rebuilt: self.rebuilt,
            queued_leases: self.queued_leases.len(),
            actor_entries: self.actors.entries.len(),
            ..SchedStats::default()
        };
        for entry in self.tasks.values() {
            match entry.state {
                TaskState::Waiting { .. } => stats.waiting += 1,
                TaskState::Ready => stats.ready += 1,
                TaskState::Running { blocked: false } => stats.running += 1,
                TaskState::Running { blocked: true } => stats.blocked += 1,
                TaskState::Leased { .. } => stats.leased_out += 1,
            }
        }
        stats
    }

    /// Tasks and actor calls of `job` this scheduler holds, pending or running (a job's quota
    /// of pending tasks is checked against it before a submission).
    pub fn job_tasks(&self, job: JobId) -> u64 {
        self.tasks.of_job(job)
    }

    /// Actors of `job` this scheduler owns that are not dead.
    pub fn job_actors(&self, job: JobId) -> u64 {
        self.actors.live_of_job(job)
    }

    /// Whether [`Event::Cancel`] of `object` would find a task to cancel.
    pub fn cancellable(&self, object: ObjectId) -> bool {
        !object.is_put() && object.actor().is_none() && self.tasks.contains_key(&object.task)
    }

    /// The object's state here, or `None` if this node knows nothing of it.
    pub fn object(&self, id: ObjectId) -> Option<ObjectState<V>> {
        Some(self.objects.get(id)?.state.clone())
    }

    /// Every object with its state and references, for `wasmray memory`.
    pub fn object_listing(&self) -> Vec<(ObjectId, ObjectState<V>, RefCounts)> {
        self.objects
            .iter()
            .map(|(id, entry)| (*id, entry.state.clone(), entry.refs))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn submit(&mut self, spec: TaskSpec<V>) {
        self.submit_arc(Arc::new(spec));
    }

    pub(crate) fn submit_arc(&mut self, spec: Arc<TaskSpec<V>>) {
        for id in spec.return_ids() {
            self.objects.create(id, ObjectState::Pending);
        }
        let forwarded =
            matches!(spec.kind, TaskKind::ActorMethod { actor } if self.calls_go_elsewhere(actor));
        // A call that goes to another node waits for its arguments there, behind the
        // caller's earlier calls.
        let (missing, failed_arg) = self.reference_args(&spec, false, !forwarded);
        let task = spec.id;
        self.tasks.insert(
            task,
            TaskEntry::new(Arc::clone(&spec), TaskState::Waiting { missing }, 0, None),
        );
        let mut failed_arg = failed_arg;
        let mut queued_elsewhere = false;
        if let TaskKind::ActorMethod { actor } = spec.kind {
            match self.enqueue_call(actor, task, &spec) {
                Ok(Queued::Forwarded) => queued_elsewhere = true,
                Ok(Queued::Here) => {}
                Err(error) => {
                    failed_arg.get_or_insert(error);
                }
            }
        }
        if let Some(error) = failed_arg {
            self.fail_for_good(task, error);
        } else if let Some(error) = self.infeasibility(&spec) {
            self.fail_for_good(task, error);
        } else if missing == 0 && !queued_elsewhere {
            self.make_ready(task);
        }
        self.dispatch();
    }

    /// Whether `spec` is a plain task this node can never run (it does not fit its totals),
    /// so another node will: that node fetches its arguments, not this one.
    pub(crate) fn runs_elsewhere(&self, spec: &TaskSpec<V>) -> bool {
        matches!(spec.kind, TaskKind::Task)
            && self.view.has_peers()
            && !spec.resources.fits_in(&self.total)
    }

    /// Runs a finished plain task again as `attempt`, to make results of it whose every copy
    /// was lost (they exist here, pending, and wait for it). Its arguments are referenced
    /// afresh for the run, and fetched or made again if they are not here.
    pub(crate) fn resubmit(&mut self, spec: Arc<TaskSpec<V>>, attempt: u32) {
        let (missing, failed_arg) = self.reference_args(&spec, false, true);
        self.run_again(spec, attempt, missing, failed_arg);
        self.dispatch();
    }

    /// Enters a new `attempt` of an owned task waiting for `missing` arguments: it fails at
    /// once if one failed or no node can run it, is ready if none is missing.
    pub(crate) fn run_again(
        &mut self,
        spec: Arc<TaskSpec<V>>,
        attempt: u32,
        missing: usize,
        failed_arg: Option<TaskError>,
    ) {
        let task = spec.id;
        self.tasks.insert(
            task,
            TaskEntry::new(
                Arc::clone(&spec),
                TaskState::Waiting { missing },
                attempt,
                None,
            ),
        );
        if let Some(error) = failed_arg.or_else(|| self.infeasibility(&spec)) {
            self.fail_for_good(task, error);
        } else if missing == 0 {
            self.make_ready(task);
        }
    }

    /// Fails, with the shortfall named, every task owned here and not yet placed that no node
    /// left in the cluster can run (a node died, and with it the only one that could): it
    /// would otherwise wait forever in the queue.
    pub(crate) fn fail_newly_infeasible(&mut self) {
        let doomed: Vec<(TaskId, Option<ResourceSet>, TaskError)> = self
            .tasks
            .iter()
            .filter(|(_, e)| {
                e.owner.is_none()
                    && !matches!(e.spec.kind, TaskKind::ActorMethod { .. })
                    && matches!(e.state, TaskState::Waiting { .. } | TaskState::Ready)
            })
            .filter_map(|(task, e)| {
                // A ready one is in the queue under its shape.
                let queued = matches!(e.state, TaskState::Ready).then(|| e.spec.resources.clone());
                self.infeasibility(&e.spec)
                    .map(|error| (*task, queued, error))
            })
            .collect();
        for (task, queued, error) in doomed {
            if let Some(shape) = queued {
                self.ready.remove(&shape, task);
            }
            self.fail_for_good(task, error);
        }
    }

    /// Why `spec` can never run, judged against the whole cluster.
    pub(crate) fn infeasibility(&self, spec: &TaskSpec<V>) -> Option<TaskError> {
        let needs = &spec.resources;
        if needs.fits_in(&self.total) || self.view.feasible_somewhere(needs) {
            return None;
        }
        let shortfall = self.view.shortfall(needs);
        Some(infeasible(spec, &shortfall, &self.view.cluster_total()))
    }

    /// References `spec`'s arguments for the task: `ByRef` ones gain a task-argument
    /// reference (taken in as granted if the spec came from another node, `received`);
    /// with `wait`, pending ones get the task as a dependent and are fetched. Returns how
    /// many it waits for, and the error to fail with if one failed or is gone.
    pub(crate) fn reference_args(
        &mut self,
        spec: &Arc<TaskSpec<V>>,
        received: bool,
        wait: bool,
    ) -> (usize, Option<TaskError>) {
        let mut failed_arg = None;
        for (index, arg) in spec.args.iter().enumerate() {
            match arg {
                ArgSpec::ByRef(id) => {
                    let counted = if received {
                        self.objects.receive_ref(*id, RefKind::TaskArg)
                    } else {
                        self.objects.add_ref(*id, RefKind::TaskArg)
                    };
                    if !counted {
                        failed_arg.get_or_insert_with(|| {
                            invalid(
                                spec,
                                format!(
                                    "argument {index} refers to an object that no longer exists"
                                ),
                            )
                        });
                    }
                }
                // Its contained refs were counted when the value was created (or, for a spec
                // from another node, are taken in now).
                ArgSpec::Value(value) => {
                    if received {
                        self.take_in_value(value);
                    }
                }
            }
        }
        // A method call also holds its actor's handle until it is done, so that an actor
        // whose handles all go while calls are still on their way serves them first.
        if let TaskKind::ActorMethod { actor } = spec.kind {
            let handle = actor.handle_object();
            if received {
                self.objects.receive_ref(handle, RefKind::TaskArg);
            } else {
                self.objects.add_ref(handle, RefKind::TaskArg);
            }
        }
        let (missing, failed) = self.await_args(spec, wait);
        (missing, failed_arg.or(failed))
    }

    /// Makes the task wait for `spec`'s arguments that are not usable here yet (with `wait`;
    /// they are fetched), without referencing them. Returns how many it waits for, and the
    /// error to fail with if one failed.
    pub(crate) fn await_args(
        &mut self,
        spec: &Arc<TaskSpec<V>>,
        wait: bool,
    ) -> (usize, Option<TaskError>) {
        let mut missing = 0;
        let mut failed_arg = None;
        let mut needed = Vec::new();
        let elsewhere = self.runs_elsewhere(spec);
        for (index, arg) in spec.args.iter().enumerate() {
            let ArgSpec::ByRef(id) = arg else {
                continue;
            };
            let Some(entry) = self.objects.get_mut(*id) else {
                continue;
            };
            match &entry.state {
                ObjectState::Pending if !wait => {}
                // Made on another node, and the task runs on another node too: the node that
                // runs it pulls it, not this one.
                ObjectState::Pending if elsewhere && entry.made_elsewhere() => {}
                ObjectState::Pending => {
                    entry.dependents.push(spec.id);
                    missing += 1;
                    needed.push(*id);
                }
                ObjectState::Failed(error) => {
                    entry.error_handled = true;
                    let error = Arc::clone(error);
                    failed_arg.get_or_insert_with(|| dependency_failed(spec, index, &error));
                }
                ObjectState::Ready(_) => {}
            }
        }
        for id in needed {
            self.need(id);
        }
        (missing, failed_arg)
    }

    pub(crate) fn reject(&mut self, spec: Arc<TaskSpec<V>>, error: TaskError) {
        for id in spec.return_ids() {
            self.objects.create(id, ObjectState::Pending);
        }
        let task = spec.id;
        // Arguments are referenced as in `submit`, so releasing them stays symmetric; a
        // creation's are its actor's, and there is no actor.
        for arg in &spec.args {
            if let ArgSpec::ByRef(id) = arg
                && !matches!(spec.kind, TaskKind::ActorCreation(_))
            {
                self.objects.add_ref(*id, RefKind::TaskArg);
            }
        }
        if let TaskKind::ActorMethod { actor } = spec.kind {
            self.objects
                .add_ref(actor.handle_object(), RefKind::TaskArg);
        }
        self.tasks.insert(
            task,
            TaskEntry::new(spec, TaskState::Waiting { missing: 0 }, 0, None),
        );
        self.fail_for_good(task, error);
    }

    /// Stores an object created by `put`, with one reference (the putter's).
    /// Returns false if the ID is already taken.
    pub(crate) fn put(&mut self, id: ObjectId, value: V) -> bool {
        self.objects.create(id, ObjectState::Ready(value))
    }

    /// Adds a reference to an object; false if it no longer exists.
    pub(crate) fn add_ref(&mut self, id: ObjectId) -> bool {
        self.objects.add_ref(id, RefKind::Local)
    }

    /// Adds the reference a new value holds to an object inside it (see [`ObjectValue`]).
    pub(crate) fn add_contained_ref(&mut self, id: ObjectId) -> bool {
        self.objects.add_ref(id, RefKind::Contained)
    }

    /// Drops a reference [`Scheduler::add_contained_ref`] added, for a value never stored.
    pub(crate) fn release_contained(&mut self, id: ObjectId) {
        let mut events = Vec::new();
        self.objects.release(id, RefKind::Contained, &mut events);
        self.push_events(events);
    }

    /// Drops a reference to an object.
    pub(crate) fn release(&mut self, id: ObjectId) {
        let mut events = Vec::new();
        self.objects.release(id, RefKind::Local, &mut events);
        self.push_events(events);
    }

    /// Asks for an [`Action::Sealed`] when the object is usable here.
    pub(crate) fn watch(&mut self, id: ObjectId) {
        if let Some(entry) = self.objects.get_mut(id) {
            entry.watched = true;
            if !entry.is_sealed() {
                self.need(id);
            }
        }
    }

    pub(crate) fn task_blocked(&mut self, task: TaskId) {
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        if let TaskState::Running {
            blocked: blocked @ false,
        } = &mut entry.state
        {
            *blocked = true;
            let cpu = cpu_part(&entry.spec.resources);
            self.available.add_capped(&cpu, &self.total);
            self.dispatch();
        }
    }

    pub(crate) fn task_unblocked(&mut self, task: TaskId) {
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        if let TaskState::Running {
            blocked: blocked @ true,
        } = &mut entry.state
        {
            *blocked = false;
            let cpu = cpu_part(&entry.spec.resources);
            self.available.subtract(&cpu);
        }
    }

    /// A run of `task` ended.
    pub(crate) fn task_finished(&mut self, task: TaskId, outcome: Outcome<V>) {
        let Some(entry) = self.tasks.get(&task) else {
            return;
        };
        let TaskState::Running { blocked } = entry.state else {
            return;
        };
        let owner = entry.owner;
        match entry.spec.kind.clone() {
            TaskKind::ActorCreation(_) => self.creation_finished(task, outcome),
            TaskKind::ActorMethod { actor } => self.method_finished(task, actor, outcome),
            TaskKind::Task => {
                self.give_back_task_resources(task, blocked);
                if let Some(owner) = owner {
                    self.finish_leased_in(task, owner, outcome);
                } else {
                    self.finish_plain(task, outcome);
                }
            }
        }
        self.dispatch();
    }

    /// A plain task's resources and GPUs go back (its CPU already did if it is `blocked`).
    pub(crate) fn give_back_task_resources(&mut self, task: TaskId, blocked: bool) {
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        if blocked {
            let mut held = entry.spec.resources.clone();
            held.subtract(&cpu_part(&entry.spec.resources));
            self.available.add_capped(&held, &self.total);
        } else {
            self.available
                .add_capped(&entry.spec.resources, &self.total);
        }
        let ids = std::mem::take(&mut entry.gpu_ids);
        self.gpus.give_back(&ids, entry.spec.resources.get(GPU));
    }

    /// Ray's `cancel`: stops the task that makes `object`, and with `recursive` the tasks it
    /// submitted, transitively. A task not yet running fails at once with `Cancelled` (a
    /// queued actor call too); a running one gets a [`Action::StopTask`] (or, on another
    /// node, a stop message) and fails as cancelled when it reports, without retries (unless
    /// it returned first). A running actor method is left alone: stopping it would lose its
    /// actor. Returns whether a task was cancelled.
    pub(crate) fn cancel(&mut self, object: ObjectId, recursive: bool) -> bool {
        if object.is_put() || object.actor().is_some() {
            return false;
        }
        self.cancel_tasks(vec![(object.task, "cancelled by the caller")], recursive)
    }

    /// Cancels every plain task of `job` (its driver ended): nothing a job started outlives
    /// it but its detached actors.
    pub(crate) fn cancel_job_tasks(&mut self, job: JobId) {
        let doomed: Vec<(TaskId, &'static str)> = self
            .tasks
            .iter()
            .filter(|(_, e)| e.spec.job == job && matches!(e.spec.kind, TaskKind::Task))
            .map(|(&task, _)| (task, "cancelled: its job ended"))
            .collect();
        if !doomed.is_empty() {
            self.cancel_tasks(doomed, false);
        }
    }

    /// Cancels `roots` (and with `recursive`, the tasks they submitted); whether any was found.
    fn cancel_tasks(&mut self, roots: Vec<(TaskId, &'static str)>, recursive: bool) -> bool {
        let mut found = false;
        let mut pending = roots;
        let mut stops = Vec::new();
        while let Some((task, why)) = pending.pop() {
            let Some(entry) = self.tasks.get_mut(&task) else {
                continue;
            };
            let is_creation = matches!(entry.spec.kind, TaskKind::ActorCreation(_));
            match (&entry.state, &entry.spec.kind) {
                _ if is_creation => continue,
                (TaskState::Running { .. }, TaskKind::ActorMethod { .. }) => continue,
                (TaskState::Leased { node }, _) => {
                    if !entry.cancelled {
                        entry.cancelled = true;
                        stops.push((*node, task, entry.attempt));
                    }
                }
                (TaskState::Running { .. }, _) => {
                    if !entry.cancelled {
                        entry.cancelled = true;
                        self.actions.push(Action::StopTask(task));
                    }
                }
                (TaskState::Ready, TaskKind::Task) => {
                    let shape = entry.spec.resources.clone();
                    self.ready.remove(&shape, task);
                    let error = cancelled(&entry.spec, why);
                    self.fail_for_good(task, error);
                }
                (TaskState::Waiting { .. } | TaskState::Ready, _) => {
                    let error = cancelled(&entry.spec, why);
                    self.fail_for_good(task, error);
                }
            }
            found = true;
            if recursive {
                pending.extend(
                    self.tasks
                        .iter()
                        .filter(|(_, child)| child.spec.submitter == task)
                        .map(|(&child, _)| (child, "cancelled with the task that submitted it")),
                );
            }
        }
        for (node, task, attempt) in stops {
            self.send(Peer::Node(node), Message::Stop { task, attempt });
        }
        self.dispatch();
        found
    }

    /// Seals a finished run's results, or retries or fails it (resources already settled).
    pub(crate) fn finish_plain(&mut self, task: TaskId, outcome: Outcome<V>) {
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        if let Some(owner) = entry.owner {
            // Run here for another node (an actor call): its results go back there.
            self.finish_leased_in(task, owner, outcome);
            return;
        }
        if let Outcome::Failed {
            error,
            system: true,
        } = &outcome
            && matches!(entry.spec.kind, TaskKind::ActorCreation(_))
            && !entry.cancelled
            && self.creation_retried(task, error)
        {
            return;
        }
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        match outcome {
            Outcome::Returned(values) if values.len() == entry.spec.num_returns as usize => {
                let spec = Arc::clone(&entry.spec);
                self.tasks.remove(&task);
                self.note_settled(task);
                let mut events = Vec::new();
                for (id, value) in spec.return_ids().zip(values) {
                    self.seal(id, ObjectState::Ready(value), &mut events);
                }
                self.release_args(&spec, &mut events);
                self.push_events(events);
            }
            Outcome::Returned(values) => {
                let expected = entry.spec.num_returns;
                let mut events = Vec::new();
                for value in values.iter().cloned() {
                    self.objects
                        .release_inside(&ObjectState::Ready(value), &mut events);
                }
                self.push_events(events);
                let entry = match self.tasks.get(&task) {
                    Some(entry) => entry,
                    None => return,
                };
                let error = invalid(
                    &entry.spec,
                    format!(
                        "returned {} values but declares num_returns = {expected}",
                        values.len(),
                    ),
                );
                self.fail_for_good(task, error);
            }
            Outcome::Failed { .. } if entry.cancelled => {
                let error = cancelled(&entry.spec, "cancelled while it ran");
                self.fail_for_good(task, error);
            }
            Outcome::Failed { error, system } => {
                // An actor call's retries go back to its actor's queue (`method_finished`);
                // here only plain tasks retry.
                let retry = matches!(entry.spec.kind, TaskKind::Task)
                    && (system || entry.spec.retry_exceptions)
                    && entry.attempt < entry.spec.max_retries;
                if retry {
                    entry.attempt += 1;
                    self.actions.push(Action::Retry {
                        task,
                        function: entry.spec.function.clone(),
                        attempt: entry.attempt,
                        error: Arc::new(error),
                    });
                    self.make_ready(task);
                } else {
                    self.fail_for_good(task, error);
                }
            }
        }
    }

    /// Counts a task's results settled (for the simulator's checks; nothing in a build).
    pub(crate) fn note_settled(&mut self, _task: TaskId) {
        #[cfg(test)]
        {
            *self.settled.entry(_task).or_default() += 1;
        }
    }

    pub(crate) fn make_ready(&mut self, task: TaskId) {
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        if entry.owner.is_some() && !matches!(entry.spec.kind, TaskKind::ActorMethod { .. }) {
            // Leased here: its resources are already taken.
            let gpu_ids = std::mem::take(&mut entry.gpu_ids);
            self.start(task, gpu_ids);
            return;
        }
        entry.state = TaskState::Ready;
        match entry.spec.kind {
            TaskKind::ActorMethod { actor } => self.actors_to_dispatch.push(actor),
            _ => self.ready.push(&entry.spec.resources, task),
        }
    }

    /// Executor side: starts parked leased tasks, oldest first, while a CPU is free for the
    /// front one (one that ended meanwhile is dropped from the queue).
    pub(crate) fn start_parked(&mut self) {
        while let Some(&task) = self.parked.front() {
            let Some(entry) = self.tasks.get(&task) else {
                self.parked.pop_front();
                continue;
            };
            if !matches!(entry.state, TaskState::Waiting { missing: 0 }) {
                self.parked.pop_front();
                continue;
            }
            let cpu = cpu_part(&entry.spec.resources);
            if !cpu.fits_in(&self.available) {
                return;
            }
            self.parked.pop_front();
            self.available.subtract(&cpu);
            self.make_ready(task);
        }
    }

    pub(crate) fn dispatch(&mut self) {
        if !self.parked.is_empty() {
            self.start_parked();
        }
        while let Some(actor) = self.actors_to_dispatch.pop() {
            self.dispatch_actor(actor);
        }
        if self.ready.len() == 0 {
            return;
        }
        if self.holds_back_work() {
            self.spill();
            return;
        }
        // A task fits when the ledger has its resources and some GPUs have room for its GPU
        // share (fractions may leave no single GPU with enough); it takes their IDs then.
        let gpu_ledger = &mut self.gpus;
        let fitting = self
            .ready
            .take_fitting(&mut self.available, |shape| gpu_ledger.take(shape.get(GPU)));
        for (task, gpu_ids) in fitting {
            let Some((gpus, is_creation)) = self.tasks.get(&task).map(|e| {
                (
                    e.spec.resources.get(GPU),
                    matches!(e.spec.kind, TaskKind::ActorCreation(_)),
                )
            }) else {
                self.gpus.give_back(&gpu_ids, 0.0);
                continue;
            };
            if is_creation && !self.creation_may_start(ActorId(task), &gpu_ids) {
                // Its actor died while the creation waited: give the resources back.
                if let Some(entry) = self.tasks.remove(&task) {
                    self.available
                        .add_capped(&entry.spec.resources, &self.total);
                    self.gpus.give_back(&gpu_ids, gpus);
                }
                continue;
            }
            self.start(task, gpu_ids);
        }
        if self.ready.len() > 0 && self.view.has_peers() {
            self.spill();
        }
    }

    /// Runs `task` here now: its resources (and GPUs `gpu_ids`) are taken.
    fn start(&mut self, task: TaskId, gpu_ids: Vec<u32>) {
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        let is_creation = matches!(entry.spec.kind, TaskKind::ActorCreation(_));
        entry.state = TaskState::Running { blocked: false };
        if !is_creation {
            entry.gpu_ids = gpu_ids.clone();
        }
        let spec = Arc::clone(&entry.spec);
        let attempt = entry.attempt;
        if let Err(spec) = self.push_run(spec, attempt, gpu_ids) {
            // Unreachable while the task holds references to its arguments; fail loudly
            // rather than run with missing inputs.
            let error = invalid(
                &spec,
                "an argument was lost before the task could run".into(),
            );
            self.task_finished(
                task,
                Outcome::Failed {
                    error,
                    system: false,
                },
            );
        }
    }

    /// Asks for a run of `spec` with its arguments' values; gives the spec back if one of them
    /// is not here.
    pub(crate) fn push_run(
        &mut self,
        spec: Arc<TaskSpec<V>>,
        attempt: u32,
        gpu_ids: Vec<u32>,
    ) -> Result<(), Arc<TaskSpec<V>>> {
        let Some(args) = self.resolve_args(&spec) else {
            return Err(spec);
        };
        self.actions.push(Action::Run(RunTask {
            spec,
            args,
            attempt,
            gpu_ids,
        }));
        Ok(())
    }

    /// Fails `task`'s returns with `error`, then every task waiting on them, transitively.
    pub(crate) fn fail_for_good(&mut self, task: TaskId, error: TaskError) {
        let mut failing = vec![(task, Arc::new(error))];
        let mut events = Vec::new();
        while let Some((task, error)) = failing.pop() {
            let Some(entry) = self.tasks.get(&task) else {
                continue;
            };
            if let Some(owner) = entry.owner {
                // Leased here: the owner fails it; this node only reports and lets go.
                let running = matches!(entry.state, TaskState::Running { .. });
                // Waiting for arguments or for a CPU, it holds no CPU (`lease_in`).
                let waiting = matches!(entry.state, TaskState::Waiting { .. });
                match entry.spec.kind {
                    TaskKind::Task if !running => self.give_back_task_resources(task, waiting),
                    TaskKind::ActorMethod { actor } => {
                        self.forget_call(actor, task);
                        self.actors_to_dispatch.push(actor);
                    }
                    // A hosted actor holds the creation's resources; they go when it dies.
                    _ => {}
                }
                self.finish_leased_in(
                    task,
                    owner,
                    Outcome::Failed {
                        error: (*error).clone(),
                        system: false,
                    },
                );
                continue;
            }
            let Some(entry) = self.tasks.remove(&task) else {
                continue;
            };
            self.note_settled(task);
            match entry.spec.kind {
                TaskKind::ActorMethod { actor } => {
                    self.forget_call(actor, task);
                    self.actors_to_dispatch.push(actor);
                }
                TaskKind::ActorCreation(_) => self.creation_failed_early(ActorId(task), &error),
                TaskKind::Task => {}
            }
            self.actions.push(Action::Failed {
                task,
                job: entry.spec.job,
                error: Arc::clone(&error),
            });
            for id in entry.spec.return_ids() {
                for dependent in self.seal(id, ObjectState::Failed(Arc::clone(&error)), &mut events)
                {
                    if let Some(waiting) = self.tasks.get(&dependent) {
                        let index = arg_index(&waiting.spec, id);
                        failing.push((
                            dependent,
                            Arc::new(dependency_failed(&waiting.spec, index, &error)),
                        ));
                    }
                    if let Some(object) = self.objects.get_mut(id) {
                        object.error_handled = true;
                    }
                }
            }
            // A creation's argument references are its actor's (released when it dies).
            if !matches!(entry.spec.kind, TaskKind::ActorCreation(_)) {
                self.release_args(&entry.spec, &mut events);
            }
        }
        self.push_events(events);
    }

    /// Fails `id` here with `error`, and with it every task here waiting for it (as
    /// `DependencyFailed`; one leased here is reported to its owner).
    pub(crate) fn fail_object(&mut self, id: ObjectId, error: Arc<TaskError>) {
        let mut events = Vec::new();
        let dependents = self.seal(id, ObjectState::Failed(Arc::clone(&error)), &mut events);
        self.push_events(events);
        for dependent in dependents {
            let Some(waiting) = self.tasks.get(&dependent) else {
                continue;
            };
            let failed = dependency_failed(&waiting.spec, arg_index(&waiting.spec, id), &error);
            if let Some(object) = self.objects.get_mut(id) {
                object.error_handled = true;
            }
            self.fail_for_good(dependent, failed);
        }
    }

    /// Makes `id` usable here; returns the waiting tasks whose argument failed (ready ones
    /// are queued). Subscribers on other nodes hear of it.
    pub(crate) fn seal(
        &mut self,
        id: ObjectId,
        state: ObjectState<V>,
        events: &mut Vec<ObjectEvent>,
    ) -> Vec<TaskId> {
        let failed = matches!(state, ObjectState::Failed(_));
        let sealed = self.objects.seal(id, state, events);
        if !failed && !self.rehoming.is_empty() {
            self.rehomed_here(id);
        }
        if sealed.watched {
            self.actions.push(Action::Sealed(id));
        }
        if sealed.subscribed {
            self.notify_subscribers(id);
        }
        if failed {
            return sealed.dependents;
        }
        for dependent in sealed.dependents {
            self.arrived(dependent);
        }
        Vec::new()
    }

    /// One argument `task` waited for is usable for it now.
    pub(crate) fn arrived(&mut self, task: TaskId) {
        if let Some(TaskEntry {
            state: TaskState::Waiting { missing },
            spec,
            owner,
            ..
        }) = self.tasks.get_mut(&task)
        {
            *missing -= 1;
            if *missing == 0 {
                if owner.is_some() && matches!(spec.kind, TaskKind::Task) {
                    // Leased here and waiting, it gave its CPU back (`lease_in`): it runs once
                    // a CPU is free, before anything new.
                    self.parked.push_back(task);
                    self.start_parked();
                } else {
                    self.make_ready(task);
                }
            }
        }
    }

    pub(crate) fn release_args(&mut self, spec: &TaskSpec<V>, events: &mut Vec<ObjectEvent>) {
        if let TaskKind::ActorMethod { actor } = spec.kind {
            self.objects
                .release(actor.handle_object(), RefKind::TaskArg, events);
        }
        for arg in &spec.args {
            match arg {
                ArgSpec::ByRef(id) => self.objects.release(*id, RefKind::TaskArg, events),
                ArgSpec::Value(value) => {
                    for &inner in value.contained() {
                        self.objects.release(inner, RefKind::Contained, events);
                    }
                }
            }
        }
    }

    pub(crate) fn push_events(&mut self, events: Vec<ObjectEvent>) {
        let mut queue = std::collections::VecDeque::from(events);
        while let Some(event) = queue.pop_front() {
            match event {
                ObjectEvent::UnhandledError(error) => {
                    self.actions.push(Action::UnhandledError(error))
                }
                ObjectEvent::ActorHandleFreed(actor) => self.actor_handle_freed(actor),
                ObjectEvent::Released {
                    object,
                    owner,
                    grants,
                } => self.send(Peer::Node(owner), Message::Release { object, grants }),
                ObjectEvent::Freed { object, copies } => {
                    for node in copies {
                        self.send(Peer::Node(node), Message::Free { object });
                    }
                    // The last kept result of a task went: its lineage, and the references
                    // it pinned to the task's arguments, go too.
                    if let Some(spec) = self.lineage.freed(object.task) {
                        let mut more = Vec::new();
                        self.release_args(&spec, &mut more);
                        queue.extend(more);
                    }
                }
            }
        }
    }
}

/// Which of `spec`'s arguments is `id` (the first, if it is none: for error messages).
fn arg_index<V>(spec: &TaskSpec<V>, id: ObjectId) -> usize {
    spec.args
        .iter()
        .position(|a| matches!(a, ArgSpec::ByRef(arg) if *arg == id))
        .unwrap_or(0)
}

pub(crate) fn cpu_part(resources: &ResourceSet) -> ResourceSet {
    let mut cpu = ResourceSet::new();
    // The quantity came from a valid set, so it is valid again.
    let _ = cpu.insert(CPU, resources.get(CPU));
    cpu
}
