//! The scheduler proper: task lifecycle from submission to sealed results.
//!
//! A task is waiting (for arguments), ready (queued for resources), or running. On finishing,
//! its results are sealed, or it is queued again if its retry policy allows. A task whose
//! argument failed never runs: its returns fail at once with the argument's error wrapped,
//! and so do the returns of every task that depends on those, transitively.

use crate::ObjectValue;
use crate::actors::ActorTable;
use crate::errors::{cancelled, dependency_failed, infeasible, invalid};
use crate::gpus::GpuIds;
use crate::objects::{ObjectEvent, ObjectState, ObjectTable, RefCounts, RefKind};
use crate::queue::ReadyQueue;
use std::sync::Arc;
use wasmray_core::{
    ActorId, ArgSpec, CPU, GPU, IdMap, JobId, ObjectId, ResourceSet, TaskError, TaskId, TaskKind,
    TaskSpec,
};

/// Something the node must do.
#[derive(Debug)]
pub enum Action<V> {
    /// Run this task now; its resources are already taken.
    Run(RunTask<V>),
    /// An object someone is waiting on (see [`Scheduler::watch`]) is now ready or failed.
    Sealed(ObjectId),
    /// A failed task will run again.
    Retry {
        task: TaskId,
        function: String,
        attempt: u32,
        error: Arc<TaskError>,
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

#[derive(Debug)]
pub(crate) enum TaskState {
    Waiting { missing: usize },
    Ready,
    Running { blocked: bool },
}

#[derive(Debug)]
pub(crate) struct TaskEntry<V> {
    pub(crate) spec: Arc<TaskSpec<V>>,
    pub(crate) state: TaskState,
    pub(crate) attempt: u32,
    /// The GPUs a running plain task holds (an actor's are in its actor entry).
    pub(crate) gpu_ids: Vec<u32>,
    /// `cancel` asked for this running task to stop: however it ends, it is not retried.
    pub(crate) cancelled: bool,
}

/// Counts for status displays and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedStats {
    pub waiting: usize,
    pub ready: usize,
    pub running: usize,
    pub blocked: usize,
    pub objects: usize,
    pub actors: usize,
}

/// The state machine. `V` is the node's handle to a stored value.
#[derive(Debug)]
pub struct Scheduler<V> {
    pub(crate) total: ResourceSet,
    pub(crate) available: ResourceSet,
    pub(crate) objects: ObjectTable<V>,
    pub(crate) tasks: IdMap<TaskId, TaskEntry<V>>,
    ready: ReadyQueue,
    pub(crate) actors: ActorTable<V>,
    pub(crate) gpus: GpuIds,
    /// Actors whose queue may be able to move, looked at by the next `dispatch`.
    actors_to_dispatch: Vec<ActorId>,
    pub(crate) actions: Vec<Action<V>>,
}

impl<V: ObjectValue> Scheduler<V> {
    /// A scheduler for a node offering `total`.
    pub fn new(total: ResourceSet) -> Self {
        Self {
            available: total.clone(),
            gpus: GpuIds::new(total.get(GPU)),
            total,
            objects: ObjectTable::new(),
            tasks: IdMap::default(),
            ready: ReadyQueue::default(),
            actors: ActorTable::default(),
            actors_to_dispatch: Vec::new(),
            actions: Vec::new(),
        }
    }

    pub fn total(&self) -> &ResourceSet {
        &self.total
    }

    pub fn available(&self) -> &ResourceSet {
        &self.available
    }

    /// Takes the actions produced since the last call, in order.
    pub fn drain_actions(&mut self) -> Vec<Action<V>> {
        std::mem::take(&mut self.actions)
    }

    pub fn stats(&self) -> SchedStats {
        let mut stats = SchedStats {
            objects: self.objects.len(),
            actors: self.live_actors(),
            ..SchedStats::default()
        };
        for entry in self.tasks.values() {
            match entry.state {
                TaskState::Waiting { .. } => stats.waiting += 1,
                TaskState::Ready => stats.ready += 1,
                TaskState::Running { blocked: false } => stats.running += 1,
                TaskState::Running { blocked: true } => stats.blocked += 1,
            }
        }
        stats
    }

    /// Submits a task. Its return objects exist from now on with one reference each, which
    /// belongs to the submitter. Arguments gain a reference until the task is done.
    pub fn submit(&mut self, spec: TaskSpec<V>) {
        self.submit_arc(Arc::new(spec));
    }

    pub(crate) fn submit_arc(&mut self, spec: Arc<TaskSpec<V>>) {
        for id in spec.return_ids() {
            self.objects.create(id, ObjectState::Pending);
        }
        let mut missing = 0;
        let mut failed_arg = None;
        for (index, arg) in spec.args.iter().enumerate() {
            match arg {
                ArgSpec::ByRef(id) => {
                    if !self.objects.add_ref(*id, RefKind::TaskArg) {
                        failed_arg.get_or_insert_with(|| {
                            invalid(
                                &spec,
                                format!(
                                    "argument {index} refers to an object that no longer exists"
                                ),
                            )
                        });
                        continue;
                    }
                    if let Some(entry) = self.objects.get_mut(*id) {
                        match &entry.state {
                            ObjectState::Pending => {
                                entry.dependents.push(spec.id);
                                missing += 1;
                            }
                            ObjectState::Failed(error) => {
                                entry.error_handled = true;
                                let error = Arc::clone(error);
                                failed_arg
                                    .get_or_insert_with(|| dependency_failed(&spec, index, &error));
                            }
                            ObjectState::Ready(_) => {}
                        }
                    }
                }
                // Its contained refs were counted when the value was created.
                ArgSpec::Value(_) => {}
            }
        }
        let task = spec.id;
        let shortfall = spec.resources.shortfall(&self.total);
        self.tasks.insert(
            task,
            TaskEntry {
                spec: Arc::clone(&spec),
                state: TaskState::Waiting { missing },
                attempt: 0,
                gpu_ids: Vec::new(),
                cancelled: false,
            },
        );
        if let TaskKind::ActorMethod { actor } = spec.kind
            && let Err(error) = self.enqueue_call(actor, task, &spec)
        {
            failed_arg.get_or_insert(error);
        }
        if let Some(error) = failed_arg {
            self.fail_for_good(task, error);
        } else if !shortfall.is_empty() {
            let error = infeasible(&spec, &shortfall, &self.total);
            self.fail_for_good(task, error);
        } else if missing == 0 {
            self.make_ready(task);
        }
        self.dispatch();
    }

    /// Registers a task that must not run (bad options, unknown function): its returns exist,
    /// with one reference each for the submitter, and fail at once with `error`.
    pub fn reject(&mut self, spec: TaskSpec<V>, error: TaskError) {
        let spec = Arc::new(spec);
        for id in spec.return_ids() {
            self.objects.create(id, ObjectState::Pending);
        }
        let task = spec.id;
        // Arguments are referenced as in `submit`, so releasing them stays symmetric.
        for arg in &spec.args {
            if let ArgSpec::ByRef(id) = arg {
                self.objects.add_ref(*id, RefKind::TaskArg);
            }
        }
        self.tasks.insert(
            task,
            TaskEntry {
                spec,
                state: TaskState::Waiting { missing: 0 },
                attempt: 0,
                gpu_ids: Vec::new(),
                cancelled: false,
            },
        );
        self.fail_for_good(task, error);
    }

    /// Stores an object created by `put`, with one reference (the putter's).
    /// Returns false if the ID is already taken.
    pub fn put(&mut self, id: ObjectId, value: V) -> bool {
        self.objects.create(id, ObjectState::Ready(value))
    }

    /// Adds a reference to an object; false if it no longer exists.
    pub fn add_ref(&mut self, id: ObjectId) -> bool {
        self.objects.add_ref(id, RefKind::Local)
    }

    /// Adds the reference a new value holds to an object inside it (see [`ObjectValue`]).
    pub fn add_contained_ref(&mut self, id: ObjectId) -> bool {
        self.objects.add_ref(id, RefKind::Contained)
    }

    /// Drops a reference [`Scheduler::add_contained_ref`] added, for a value never stored.
    pub fn release_contained(&mut self, id: ObjectId) {
        let mut events = Vec::new();
        self.objects.release(id, RefKind::Contained, &mut events);
        self.push_events(events);
    }

    /// Every object with its state and references, for `wasmray memory`.
    pub fn object_listing(&self) -> Vec<(ObjectId, ObjectState<V>, RefCounts)> {
        self.objects
            .iter()
            .map(|(id, entry)| (*id, entry.state.clone(), entry.refs))
            .collect()
    }

    /// Drops a reference to an object.
    pub fn release(&mut self, id: ObjectId) {
        let mut events = Vec::new();
        self.objects.release(id, RefKind::Local, &mut events);
        self.push_events(events);
    }

    /// The object's state, or `None` if it no longer exists. Reading a failure counts as
    /// handling it.
    pub fn object(&mut self, id: ObjectId) -> Option<ObjectState<V>> {
        let entry = self.objects.get_mut(id)?;
        if matches!(entry.state, ObjectState::Failed(_)) {
            entry.error_handled = true;
        }
        Some(entry.state.clone())
    }

    /// Asks for an [`Action::Sealed`] when the object seals.
    pub fn watch(&mut self, id: ObjectId) {
        if let Some(entry) = self.objects.get_mut(id) {
            entry.watched = true;
        }
    }

    /// A running task blocked in `get` or `wait`: its CPU goes back to the pool (as in Ray).
    pub fn task_blocked(&mut self, task: TaskId) {
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

    /// A blocked task may run again: it takes its CPU back at once, even if that briefly
    /// oversubscribes the node (as Ray does), so that unblocking can never deadlock.
    pub fn task_unblocked(&mut self, task: TaskId) {
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
    pub fn task_finished(&mut self, task: TaskId, outcome: Outcome<V>) {
        let Some(entry) = self.tasks.get(&task) else {
            return;
        };
        let TaskState::Running { blocked } = entry.state else {
            return;
        };
        match entry.spec.kind.clone() {
            TaskKind::ActorCreation(_) => self.creation_finished(task, outcome),
            TaskKind::ActorMethod { actor } => self.method_finished(task, actor, outcome),
            TaskKind::Task => {
                let mut held = entry.spec.resources.clone();
                if blocked {
                    held.subtract(&cpu_part(&entry.spec.resources));
                }
                self.available.add_capped(&held, &self.total);
                if let Some(entry) = self.tasks.get_mut(&task) {
                    let ids = std::mem::take(&mut entry.gpu_ids);
                    self.gpus.give_back(&ids, entry.spec.resources.get(GPU));
                }
                self.finish_plain(task, outcome);
            }
        }
        self.dispatch();
    }

    /// Ray's `cancel`: stops the task that makes `object`, and with `recursive` the tasks it
    /// submitted, transitively. A task not yet running fails at once with `Cancelled` (a
    /// queued actor call too); a running one gets a [`Action::StopTask`] and fails as
    /// cancelled when it reports, without retries (unless it returned first). A running actor
    /// method is left alone: stopping it would lose its actor. Returns whether a task was
    /// cancelled.
    pub fn cancel(&mut self, object: ObjectId, recursive: bool) -> bool {
        if object.is_put() || object.actor().is_some() {
            return false;
        }
        let mut found = false;
        let mut pending = vec![(object.task, "cancelled by the caller")];
        while let Some((task, why)) = pending.pop() {
            let Some(entry) = self.tasks.get_mut(&task) else {
                continue;
            };
            let is_creation = matches!(entry.spec.kind, TaskKind::ActorCreation(_));
            match (&entry.state, &entry.spec.kind) {
                _ if is_creation => continue,
                (TaskState::Running { .. }, TaskKind::ActorMethod { .. }) => continue,
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
        self.dispatch();
        found
    }

    /// Seals a finished run's results, or retries or fails it (resources already settled).
    pub(crate) fn finish_plain(&mut self, task: TaskId, outcome: Outcome<V>) {
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        match outcome {
            Outcome::Returned(values) if values.len() == entry.spec.num_returns as usize => {
                let spec = Arc::clone(&entry.spec);
                self.tasks.remove(&task);
                let mut events = Vec::new();
                for (id, value) in spec.return_ids().zip(values) {
                    self.seal(id, ObjectState::Ready(value), &mut events);
                }
                self.release_args(&spec, &mut events);
                self.push_events(events);
            }
            Outcome::Returned(values) => {
                let mut events = Vec::new();
                for value in &values {
                    for &inner in value.contained() {
                        self.objects.release(inner, RefKind::Contained, &mut events);
                    }
                }
                self.push_events(events);
                let entry = match self.tasks.get(&task) {
                    Some(entry) => entry,
                    None => return,
                };
                let error = invalid(
                    &entry.spec,
                    format!(
                        "returned {} values but declares num_returns = {}",
                        values.len(),
                        entry.spec.num_returns
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

    fn make_ready(&mut self, task: TaskId) {
        if let Some(entry) = self.tasks.get_mut(&task) {
            entry.state = TaskState::Ready;
            match entry.spec.kind {
                TaskKind::ActorMethod { actor } => self.actors_to_dispatch.push(actor),
                _ => self.ready.push(&entry.spec.resources, task),
            }
        }
    }

    pub(crate) fn dispatch(&mut self) {
        while let Some(actor) = self.actors_to_dispatch.pop() {
            self.dispatch_actor(actor);
        }
        if self.ready.len() == 0 {
            return;
        }
        // A task fits when the ledger has its resources and some GPUs have room for its GPU
        // share (fractions may leave no single GPU with enough); it takes their IDs then.
        let gpu_ledger = &mut self.gpus;
        let fitting = self
            .ready
            .take_fitting(&mut self.available, |shape| gpu_ledger.take(shape.get(GPU)));
        for (task, gpu_ids) in fitting {
            let Some(gpus) = self.tasks.get(&task).map(|e| e.spec.resources.get(GPU)) else {
                continue;
            };
            let is_creation = self
                .tasks
                .get(&task)
                .is_some_and(|e| matches!(e.spec.kind, TaskKind::ActorCreation(_)));
            if is_creation && !self.creation_may_start(ActorId(task), &gpu_ids) {
                // Its actor died while the creation waited: give the resources back.
                if let Some(entry) = self.tasks.remove(&task) {
                    self.available
                        .add_capped(&entry.spec.resources, &self.total);
                    self.gpus.give_back(&gpu_ids, gpus);
                }
                continue;
            }
            let Some(entry) = self.tasks.get_mut(&task) else {
                self.gpus.give_back(&gpu_ids, gpus);
                continue;
            };
            entry.state = TaskState::Running { blocked: false };
            if !is_creation {
                entry.gpu_ids = gpu_ids.clone();
            }
            let spec = Arc::clone(&entry.spec);
            let attempt = entry.attempt;
            let args = spec
                .args
                .iter()
                .filter_map(|arg| match arg {
                    ArgSpec::Value(value) => Some(value.clone()),
                    ArgSpec::ByRef(id) => match self.objects.get(*id).map(|e| &e.state) {
                        Some(ObjectState::Ready(value)) => Some(value.clone()),
                        _ => None,
                    },
                })
                .collect::<Vec<_>>();
            if args.len() == spec.args.len() {
                self.actions.push(Action::Run(RunTask {
                    spec,
                    args,
                    attempt,
                    gpu_ids,
                }));
            } else {
                // Unreachable while the task holds references to its arguments; fail loudly
                // rather than run with missing inputs.
                self.available.add_capped(&spec.resources, &self.total);
                if !is_creation {
                    self.gpus.give_back(&gpu_ids, spec.resources.get(GPU));
                }
                let error = invalid(
                    &spec,
                    "an argument was lost before the task could run".into(),
                );
                self.fail_for_good(task, error);
            }
        }
    }

    /// Fails `task`'s returns with `error`, then every task waiting on them, transitively.
    pub(crate) fn fail_for_good(&mut self, task: TaskId, error: TaskError) {
        let mut failing = vec![(task, Arc::new(error))];
        let mut events = Vec::new();
        while let Some((task, error)) = failing.pop() {
            let Some(entry) = self.tasks.remove(&task) else {
                continue;
            };
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
                        let index = waiting
                            .spec
                            .args
                            .iter()
                            .position(|a| matches!(a, ArgSpec::ByRef(arg) if *arg == id))
                            .unwrap_or(0);
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
            self.release_args(&entry.spec, &mut events);
        }
        self.push_events(events);
    }

    /// Seals `id`; returns the waiting tasks whose argument failed (ready ones are queued).
    fn seal(
        &mut self,
        id: ObjectId,
        state: ObjectState<V>,
        events: &mut Vec<ObjectEvent>,
    ) -> Vec<TaskId> {
        let failed = matches!(state, ObjectState::Failed(_));
        let sealed = self.objects.seal(id, state, events);
        if sealed.watched {
            self.actions.push(Action::Sealed(id));
        }
        if failed {
            return sealed.dependents;
        }
        for dependent in sealed.dependents {
            if let Some(TaskEntry {
                state: TaskState::Waiting { missing },
                ..
            }) = self.tasks.get_mut(&dependent)
            {
                *missing -= 1;
                if *missing == 0 {
                    self.make_ready(dependent);
                }
            }
        }
        Vec::new()
    }

    pub(crate) fn release_args(&mut self, spec: &TaskSpec<V>, events: &mut Vec<ObjectEvent>) {
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
        for event in events {
            match event {
                ObjectEvent::UnhandledError(error) => {
                    self.actions.push(Action::UnhandledError(error))
                }
                ObjectEvent::ActorHandleFreed(actor) => self.actor_handle_freed(actor),
            }
        }
    }
}

fn cpu_part(resources: &ResourceSet) -> ResourceSet {
    let mut cpu = ResourceSet::new();
    // The quantity came from a valid set, so it is valid again.
    let _ = cpu.insert(CPU, resources.get(CPU));
    cpu
}
