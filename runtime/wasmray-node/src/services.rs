//! What guests ask of the node: submit, put, get, wait, references, cluster facts.
//!
//! `get` and `wait` look at the object under the scheduler's lock and, if it is pending,
//! register a waiter and mark the calling task blocked (its CPU goes back to the pool) before
//! sleeping; when woken they mark it unblocked. The driver is not a scheduled task, so marking
//! it blocked changes nothing.

use crate::OBJECT_STORE_MEMORY;
use crate::inner::NodeInner;
use crate::value::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use wasmray_abi::{CallOptions, ClusterQuery, NodeInfo, RuntimeContext};
use wasmray_core::{
    ArgSpec, CPU, DEFAULT_MAX_RETRIES, ErrorKind, GPU, ObjectId, Quota, QuotaExceeded,
    ResourceError, ResourceSet, TaskError, TaskId, TaskKind, TaskSpec,
};
use wasmray_sched::{Event, ObjectState, Time};
use wasmray_store::{Reservation, StoredObject};
use wasmray_wasm::{
    BoxFuture, Caller, CountedValue, GetOutcome, JobLimits, NodeServices, ReleaseContained,
    Submission, SubmittedArg,
};

/// The node as its guests see it.
pub(crate) struct GuestServices {
    pub(crate) node: Arc<NodeInner>,
}

impl GuestServices {
    pub(crate) fn shared(node: &Arc<NodeInner>) -> Arc<dyn NodeServices> {
        Arc::new(GuestServices {
            node: Arc::clone(node),
        })
    }

    /// Registers a stored value as the `n`-th object `caller` put.
    fn register_put(
        &self,
        caller: &Caller,
        n: u32,
        object: Arc<StoredObject>,
    ) -> Result<ObjectId, String> {
        let id = caller.run.put_object(n);
        // A run's put IDs are minted from its own counter: never taken before.
        self.node.event(Event::Put {
            id,
            value: Value(object),
        });
        Ok(id)
    }
}

/// What a lookup found.
enum Lookup {
    Done(GetOutcome),
    Pending,
}

impl NodeInner {
    /// Looks `id` up; a ready value's contained objects gain a reference for the caller. If the
    /// object is pending, `waiter` (if given) is registered under the same lock.
    fn lookup(self: &Arc<Self>, id: ObjectId, waiter: Option<&Arc<Notify>>) -> Lookup {
        // Most gets find a plain value: nothing to count, nothing for the scheduler to do.
        if let Some(ObjectState::Ready(Value(object))) = self.lock_sched().object(id)
            && object.contained().is_empty()
        {
            return Lookup::Done(GetOutcome::Value(object));
        }
        self.with_sched(|sched, now| match sched.object(id) {
            None => Lookup::Done(GetOutcome::Missing),
            Some(ObjectState::Ready(Value(object))) => {
                for &inner in object.contained() {
                    sched.handle(now, Event::AddRef(inner));
                }
                Lookup::Done(GetOutcome::Value(object))
            }
            Some(ObjectState::Failed(error)) => {
                sched.handle(now, Event::ErrorSeen(id));
                Lookup::Done(GetOutcome::Error(error))
            }
            Some(ObjectState::Pending) => {
                if let Some(waiter) = waiter {
                    sched.handle(now, Event::Watch(id));
                    self.waiters.register(id, waiter);
                }
                Lookup::Pending
            }
        })
    }

    /// Stores a value a guest handed over. Its inner refs are counted now, while the guest
    /// still holds handles to them; the value owns those references from here on.
    fn new_value(
        self: &Arc<Self>,
        job: &JobLimits,
        bytes: &[u8],
        contained: Vec<ObjectId>,
    ) -> Result<Arc<StoredObject>, String> {
        let mut room = self.reserve_for(job, bytes.len() as u64)?;
        room.write(bytes).map_err(|e| e.to_string())?;
        self.seal_value(room, contained)
    }

    /// Room for one value of a job: within its quota of value size, charged to its account.
    fn reserve_for(&self, job: &JobLimits, len: u64) -> Result<Reservation, String> {
        if len > job.max_value_bytes {
            let quota = QuotaExceeded {
                quota: Quota::ValueBytes,
                limit: job.max_value_bytes,
            };
            return Err(format!("a value of {len} bytes is over the limit: {quota}"));
        }
        let len = usize::try_from(len).map_err(|_| format!("{len} bytes do not fit in memory"))?;
        self.store
            .reserve(&job.account, len)
            .map_err(|e| e.to_string())
    }

    /// Submits `spec` for `caller`, unless its job already has its quota of tasks pending or
    /// running, or its driver has ended and the caller is not an actor (a detached actor
    /// outlives its driver; a task left running does not get to start more). The quota is
    /// checked under the same scheduler lock as the submission. A refused spec's by-value
    /// arguments give back the references they hold, outside the lock.
    pub(crate) fn submit_within_quota(
        self: &Arc<Self>,
        caller: &Caller,
        job: &JobLimits,
        spec: TaskSpec<Value>,
    ) -> Result<(), String> {
        self.try_submit(caller, job, spec).map_err(|refused| {
            let (message, refused) = *refused;
            let contained = refused.args.iter().flat_map(|arg| match arg {
                ArgSpec::Value(Value(value)) => value.contained(),
                ArgSpec::ByRef(_) => &[],
            });
            self.events(contained.map(|&id| Event::ReleaseContained(id)));
            message
        })
    }

    fn try_submit(
        self: &Arc<Self>,
        caller: &Caller,
        job: &JobLimits,
        spec: TaskSpec<Value>,
    ) -> Result<(), Box<(String, TaskSpec<Value>)>> {
        if caller.actor.is_none() && job.ended.load(Ordering::Relaxed) {
            let message = "the job has ended: its tasks can start no more work".to_owned();
            return Err(Box::new((message, spec)));
        }
        let limit = job.max_pending_tasks;
        let mut spec = spec;
        self.with_sched(|sched, now| {
            if sched.job_tasks(caller.job) >= limit {
                let quota = QuotaExceeded {
                    quota: Quota::PendingTasks,
                    limit,
                };
                return Err(Box::new((quota.to_string(), spec)));
            }
            let lifted = self.lift_large_args(sched, now, &mut spec);
            sched.handle(now, Event::Submit(Arc::new(spec)));
            for id in lifted {
                sched.handle(now, Event::Release(id));
            }
            Ok(())
        })
    }

    /// In a cluster, a by-value argument too large to travel in a message becomes an object
    /// of its own passed by reference (as Ray puts large arguments in the object store), so a
    /// spec sent to another node stays small and the value is fetched like any object. Returns
    /// the objects made, each holding the reference the caller must release once the spec is
    /// in.
    pub(crate) fn lift_large_args(
        &self,
        sched: &mut wasmray_sched::Scheduler<Value>,
        now: wasmray_sched::Time,
        spec: &mut TaskSpec<Value>,
    ) -> Vec<ObjectId> {
        if self.net.is_none() {
            return Vec::new();
        }
        let mut lifted = Vec::new();
        for arg in &mut spec.args {
            let large =
                matches!(arg, ArgSpec::Value(Value(v)) if v.len() > wasmray_store::INLINE_MAX);
            if !large {
                continue;
            }
            let id = self.mint.next_task().put_object(0);
            if let ArgSpec::Value(value) = std::mem::replace(arg, ArgSpec::ByRef(id)) {
                sched.handle(now, Event::Put { id, value });
                lifted.push(id);
            }
        }
        lifted
    }

    /// Seals written room as a value; its inner refs are counted as in [`Self::new_value`].
    fn seal_value(
        self: &Arc<Self>,
        room: Reservation,
        contained: Vec<ObjectId>,
    ) -> Result<Arc<StoredObject>, String> {
        if !contained.is_empty() {
            self.events(contained.iter().map(|&id| Event::AddContained(id)));
        }
        let counted = contained.clone();
        room.seal(contained).map_err(|error| {
            self.events(counted.iter().map(|&id| Event::ReleaseContained(id)));
            error.to_string()
        })
    }

    /// Which of `ids` are sealed (ready or failed), looked up in list order under one lock,
    /// and how many. Without a `waiter` the look stops once `enough` are sealed (the rest are
    /// reported unsealed: `wait` hands back only the first `num_returns` sealed ones, so
    /// waiting on a long list costs what its head costs). With a `waiter`, every id is looked
    /// at and the waiter is registered on each one still pending.
    fn sealed_flags(
        self: &Arc<Self>,
        ids: &[ObjectId],
        waiter: Option<&Arc<Notify>>,
        enough: usize,
    ) -> (Vec<bool>, usize) {
        let look = |sched: &mut wasmray_sched::Scheduler<Value>, now| {
            let mut flags = vec![false; ids.len()];
            let mut sealed = 0;
            for (flag, &id) in flags.iter_mut().zip(ids) {
                if waiter.is_none() && sealed >= enough {
                    break;
                }
                let pending = matches!(sched.object(id), Some(ObjectState::Pending));
                if let (true, Some(waiter)) = (pending, waiter) {
                    sched.handle(now, Event::Watch(id));
                    self.waiters.register(id, waiter);
                }
                *flag = !pending;
                sealed += usize::from(!pending);
            }
            (flags, sealed)
        };
        match waiter {
            // A look that registers nothing changes nothing: no actions to carry out.
            None => look(&mut self.lock_sched(), Time::ZERO),
            Some(_) => self.with_sched(look),
        }
    }

    fn is_sealed(self: &Arc<Self>, id: ObjectId, waiter: &Arc<Notify>) -> bool {
        self.with_sched(|sched, now| match sched.object(id) {
            Some(ObjectState::Pending) => {
                sched.handle(now, Event::Watch(id));
                self.waiters.register(id, waiter);
                false
            }
            _ => true,
        })
    }

    /// The spec of a submission, and what is wrong with it if it must not run.
    fn spec_of(
        &self,
        caller: &Caller,
        submission: Submission,
    ) -> (TaskSpec<Value>, Option<String>) {
        let options = &submission.options;
        let resources = resources_of(options);
        let mut spec = TaskSpec {
            id: self.mint.next_task(),
            kind: TaskKind::Task,
            job: caller.job,
            module: caller.module,
            lineage: caller.lineage.child(&submission.function),
            submitter: caller.task,
            driver: caller.driver,
            function: submission.function,
            args: submission
                .args
                .into_iter()
                .map(|arg| match arg {
                    SubmittedArg::ByRef(id) => ArgSpec::ByRef(id),
                    SubmittedArg::Value(value) => ArgSpec::Value(Value(value.hand_over())),
                })
                .collect(),
            num_returns: submission.num_returns,
            resources: ResourceSet::new(),
            max_calls: options.max_calls.unwrap_or(0),
            max_retries: options.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            retry_exceptions: options.retry_exceptions.unwrap_or(false),
            memory_limit: options.memory_limit,
            cpu_time_limit_ms: options.cpu_time_limit_ms,
        };
        let problem = match resources {
            Err(error) => Some(error.to_string()),
            Ok(_)
                if self
                    .host
                    .module(&spec.module)
                    .is_none_or(|m| !m.has_function(&spec.function)) =>
            {
                Some(format!(
                    "the module has no remote function `{}` (is it marked #[wasmray::remote]?)",
                    spec.function
                ))
            }
            Ok(_)
                if options
                    .memory_limit
                    .is_some_and(|m| m > self.config.max_task_memory) =>
            {
                Some(format!(
                    "memory_limit of {} bytes is above this node's maximum of {} bytes",
                    options.memory_limit.unwrap_or(0),
                    self.config.max_task_memory
                ))
            }
            Ok(set) => {
                spec.resources = set;
                None
            }
        };
        (spec, problem)
    }
}

pub(crate) fn resources_of(options: &CallOptions) -> Result<ResourceSet, ResourceError> {
    let mut set = ResourceSet::new();
    set.insert(CPU, options.num_cpus.unwrap_or(1.0))?;
    let gpus = options.num_gpus.unwrap_or(0.0);
    if gpus > 1.0 && gpus.fract() != 0.0 {
        return Err(ResourceError::FractionalGpus(gpus));
    }
    set.insert(GPU, gpus)?;
    for (name, quantity) in &options.resources {
        set.insert(name, *quantity)?;
    }
    Ok(set)
}

impl NodeServices for GuestServices {
    fn submit(
        &self,
        caller: &Caller,
        job: &JobLimits,
        submission: Submission,
    ) -> Result<Vec<ObjectId>, String> {
        let node = &self.node;
        Ok(match node.spec_of(caller, submission) {
            (spec, None) => {
                let ids = spec.return_ids().collect();
                // A refused spec drops here, outside the scheduler's lock.
                node.submit_within_quota(caller, job, spec)?;
                ids
            }
            (spec, Some(message)) => {
                let ids = spec.return_ids().collect();
                let error = TaskError {
                    kind: ErrorKind::InvalidTask,
                    function: spec.function.clone(),
                    message,
                    backtrace: None,
                    task_chain: spec.lineage.error_chain(),
                    cause: None,
                };
                node.event(Event::Reject {
                    spec: Arc::new(spec),
                    error,
                });
                ids
            }
        })
    }

    fn put(
        &self,
        caller: &Caller,
        job: &JobLimits,
        n: u32,
        bytes: &[u8],
        contained: Vec<ObjectId>,
    ) -> Result<ObjectId, String> {
        let object = self.node.new_value(job, bytes, contained)?;
        self.register_put(caller, n, object)
    }

    fn reserve(&self, job: &JobLimits, len: u64) -> Result<Reservation, String> {
        self.node.reserve_for(job, len)
    }

    fn put_reserved(
        &self,
        caller: &Caller,
        n: u32,
        room: Reservation,
        contained: Vec<ObjectId>,
    ) -> Result<ObjectId, String> {
        let object = self.node.seal_value(room, contained)?;
        self.register_put(caller, n, object)
    }

    fn store_value(
        &self,
        job: &JobLimits,
        bytes: &[u8],
        contained: Vec<ObjectId>,
    ) -> Result<CountedValue, String> {
        let object = self.node.new_value(job, bytes, contained)?;
        Ok(CountedValue::new(object, || {
            Arc::new(Releaser(Arc::clone(&self.node)))
        }))
    }

    fn get(
        &self,
        caller: &Caller,
        id: ObjectId,
        timeout: Option<Duration>,
    ) -> BoxFuture<'static, GetOutcome> {
        let node = Arc::clone(&self.node);
        let task = caller.task;
        Box::pin(async move {
            let waiter = Arc::new(Notify::new());
            if let Lookup::Done(outcome) = node.lookup(id, Some(&waiter)) {
                return outcome;
            }
            let deadline = timeout.map(|t| Instant::now() + t);
            let woke = blocked(&node, task, async {
                loop {
                    if !sleep_until(&waiter, deadline).await {
                        return false;
                    }
                    if node.is_sealed(id, &waiter) {
                        return true;
                    }
                }
            })
            .await;
            node.waiters.unregister(&[id], &waiter);
            if !woke {
                return GetOutcome::Timeout;
            }
            match node.lookup(id, None) {
                Lookup::Done(outcome) => outcome,
                Lookup::Pending => GetOutcome::Timeout,
            }
        })
    }

    fn wait(
        &self,
        caller: &Caller,
        ids: Vec<ObjectId>,
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> BoxFuture<'static, Vec<bool>> {
        let node = Arc::clone(&self.node);
        let task = caller.task;
        Box::pin(async move {
            let wanted = num_returns.min(ids.len());
            // Most waits return at once: one look under one lock, nothing registered.
            let (ready, sealed) = node.sealed_flags(&ids, None, wanted);
            if sealed >= wanted || timeout == Some(Duration::ZERO) {
                return ready;
            }
            let waiter = Arc::new(Notify::new());
            let deadline = timeout.map(|t| Instant::now() + t);
            let ready = blocked(&node, task, async {
                // Registers on the pending ones under the same lock as the look, so no seal
                // is missed; a registration lasts until its object seals, so once is enough.
                let mut register = Some(&waiter);
                loop {
                    let (_, sealed) = node.sealed_flags(&ids, register.take(), wanted);
                    if sealed >= wanted || !sleep_until(&waiter, deadline).await {
                        return node.sealed_flags(&ids, None, wanted).0;
                    }
                }
            })
            .await;
            node.waiters.unregister(&ids, &waiter);
            ready
        })
    }

    fn peek(&self, id: ObjectId) -> Option<Arc<StoredObject>> {
        match self.node.lock_sched().object(id) {
            Some(ObjectState::Ready(Value(object))) => Some(object),
            _ => None,
        }
    }

    fn add_refs(&self, ids: &[ObjectId]) {
        if ids.is_empty() {
            return;
        }
        self.node.events(ids.iter().map(|&id| Event::AddRef(id)));
    }

    fn release(&self, ids: &[ObjectId]) {
        self.node.release(ids);
    }

    fn cancel(&self, object: ObjectId, recursive: bool) -> bool {
        self.node.with_sched(|sched, now| {
            let found = sched.cancellable(object);
            sched.handle(now, Event::Cancel { object, recursive });
            found
        })
    }

    fn cluster_info(&self, caller: &Caller, query: ClusterQuery) -> Vec<u8> {
        match query {
            ClusterQuery::RuntimeContext => {
                let mut resource_ids = Vec::new();
                if !caller.gpu_ids.is_empty() {
                    resource_ids.push((GPU.to_owned(), caller.gpu_ids.clone()));
                }
                let context = RuntimeContext {
                    job_id: format!("{:08x}", caller.job.0),
                    task_id: caller.task.to_string(),
                    actor_id: caller.actor.map(|actor| actor.to_string()),
                    node_id: self.node.id.to_string(),
                    resource_ids,
                };
                return wasmray_abi::encode(&context).unwrap_or_default();
            }
            ClusterQuery::ErrorInfo => {
                let (errors, _dropped) = self.node.errors.of(caller.job);
                return wasmray_abi::encode(&errors).unwrap_or_default();
            }
            ClusterQuery::Nodes
            | ClusterQuery::ClusterResources
            | ClusterQuery::AvailableResources => {}
        }
        // Every live node of the cluster as this node's view has it (its latest report);
        // this node's own free store bytes are exact, other nodes' are as they reported.
        let store = self.node.store.stats();
        let free = store
            .capacity
            .saturating_sub(store.arena_used + store.inline_used);
        let head = self
            .node
            .net
            .as_ref()
            .map_or(self.node.id, |net| net.head());
        let address_of = self.node.addresses();
        let mut nodes = Vec::new();
        let mut total = ResourceSet::new();
        let mut available = ResourceSet::new();
        {
            let sched = self.node.lock_sched();
            for (id, view) in sched.view().nodes().filter(|(_, v)| v.alive) {
                let mut node_available = view.snapshot.available.clone();
                if id == self.node.id {
                    node_available = sched.available().clone();
                    let _ = node_available.set(OBJECT_STORE_MEMORY, free as f64);
                }
                total.add(&view.snapshot.total);
                available.add(&node_available);
                nodes.push(NodeInfo {
                    node_id: id.to_string(),
                    alive: true,
                    is_head: id == head,
                    address: address_of(id),
                    resources: view.snapshot.total.to_pairs(),
                });
            }
        }
        let encoded = match query {
            ClusterQuery::Nodes => wasmray_abi::encode(&nodes),
            ClusterQuery::ClusterResources => wasmray_abi::encode(&total.to_pairs()),
            ClusterQuery::AvailableResources => wasmray_abi::encode(&available.to_pairs()),
            ClusterQuery::RuntimeContext | ClusterQuery::ErrorInfo => Ok(Vec::new()),
        };
        // Encoding plain vectors of strings and numbers into memory cannot fail.
        encoded.unwrap_or_default()
    }
}

/// Gives back the references counted inside a value that was never handed to the scheduler.
struct Releaser(Arc<NodeInner>);

impl ReleaseContained for Releaser {
    fn release_contained(&self, ids: &[ObjectId]) {
        self.0
            .events(ids.iter().map(|&id| Event::ReleaseContained(id)));
    }
}

/// Runs `wait` with `task` marked blocked, so its CPU serves others meanwhile.
async fn blocked<T>(
    node: &Arc<NodeInner>,
    task: TaskId,
    wait: impl std::future::Future<Output = T>,
) -> T {
    node.event(Event::Blocked(task));
    let result = wait.await;
    node.event(Event::Unblocked(task));
    result
}

/// Sleeps until notified (true) or until `deadline` passes (false).
async fn sleep_until(waiter: &Notify, deadline: Option<Instant>) -> bool {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, waiter.notified())
            .await
            .is_ok(),
        None => {
            waiter.notified().await;
            true
        }
    }
}
