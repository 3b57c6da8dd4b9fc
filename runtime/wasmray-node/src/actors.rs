//! Actors on the node: each live actor's instance, how its constructor and methods run, and
//! how concurrent calls of one actor share its single instance.
//!
//! An actor's instance sits behind an async mutex. With `max_concurrency` 1 the scheduler
//! never dispatches two calls at once, so the mutex is uncontended. Above 1, a call that finds
//! the instance busy puts itself in the actor's nested queue; a call blocked in `get`/`wait`
//! runs it nested (see `wasmray_wasm`'s `nested.rs`), or, if the instance comes free first,
//! the call takes itself back and runs directly. Only the call that holds the instance reports
//! it lost, so a loss is reported once.

use crate::execute::{PooledInstance, sched_outcome};
use crate::node::NodeInner;
use crate::value::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, oneshot};
use wasmray_abi::{ACTOR_CALL_EXPORT_PREFIX, ACTOR_NEW_EXPORT_PREFIX};
use wasmray_core::{ActorId, ErrorKind, TaskError, TaskKind};
use wasmray_sched::RunTask;
use wasmray_wasm::{
    BoxFuture, Finished, KillSwitch, NestedCall, NestedCalls, TaskCall, TaskOutcome,
};

/// How many calls a serial actor's loop runs before it lets other tasks of its worker run.
const CALLS_BEFORE_YIELD: u32 = 32;

/// One actor's place on this node.
pub(crate) struct ActorHost {
    instance: tokio::sync::Mutex<Option<PooledInstance>>,
    kill: Mutex<Option<KillSwitch>>,
    nested: Arc<NestedQueue>,
    /// Calls of a `max_concurrency` 1 actor, run in order by one loop (see `dispatch_method`).
    serial: Mutex<SerialCalls>,
    max_concurrency: u32,
}

/// Dispatched calls of a serial actor not yet started, and whether a loop is running them.
#[derive(Default)]
struct SerialCalls {
    queue: VecDeque<RunTask<Value>>,
    running: bool,
}

impl ActorHost {
    fn new(max_concurrency: u32) -> Self {
        Self {
            instance: tokio::sync::Mutex::new(None),
            kill: Mutex::new(None),
            nested: Arc::new(NestedQueue::default()),
            serial: Mutex::default(),
            max_concurrency,
        }
    }

    fn serial(&self) -> std::sync::MutexGuard<'_, SerialCalls> {
        self.serial.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the instance: a running call traps at its next tick, a blocked one at once.
    pub(crate) fn stop(&self) {
        if let Some(kill) = self
            .kill
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            kill.kill();
        }
        // An idle instance goes right away; a busy one goes when its call ends as lost.
        if let Ok(mut idle) = self.instance.try_lock() {
            idle.take();
        }
    }
}

/// Calls waiting to run nested inside a blocked call of the same actor.
#[derive(Default)]
struct NestedQueue {
    queue: Mutex<VecDeque<(u64, NestedCall)>>,
    notify: Notify,
    next_id: AtomicU64,
}

impl NestedQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, NestedCall)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, call: NestedCall) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push_back((id, call));
        self.notify.notify_waiters();
        id
    }

    /// Takes call `id` back if nobody has started it.
    fn take_back(&self, id: u64) -> Option<NestedCall> {
        let mut queue = self.lock();
        let at = queue.iter().position(|(queued, _)| *queued == id)?;
        queue.remove(at).map(|(_, call)| call)
    }
}

impl NestedCalls for NestedQueue {
    fn next(&self) -> BoxFuture<'_, NestedCall> {
        Box::pin(async move {
            loop {
                let notified = self.notify.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if let Some((_, call)) = self.lock().pop_front() {
                    return call;
                }
                notified.await;
            }
        })
    }
}

impl NodeInner {
    fn actor_host(&self, actor: ActorId) -> Option<Arc<ActorHost>> {
        self.actors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&actor)
            .cloned()
    }

    /// Forgets a dead actor's instance.
    pub(crate) fn forget_actor(&self, actor: ActorId) {
        let host = self
            .actors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&actor);
        if let Some(host) = host {
            host.stop();
        }
    }

    /// Stops an actor's instance (the scheduler decided it must go).
    pub(crate) fn stop_actor(&self, actor: ActorId) {
        if let Some(host) = self.actor_host(actor) {
            host.stop();
        }
    }

    /// Runs an actor's constructor in a fresh instance (first creation or a restart).
    pub(crate) async fn construct_actor(self: Arc<Self>, run: RunTask<Value>) {
        let spec = Arc::clone(&run.spec);
        let TaskKind::ActorCreation(actor_spec) = &spec.kind else {
            return;
        };
        let actor = ActorId(spec.id);
        let host = {
            let mut actors = self.actors.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                actors
                    .entry(actor)
                    .or_insert_with(|| Arc::new(ActorHost::new(actor_spec.max_concurrency))),
            )
        };
        let nested =
            (host.max_concurrency > 1).then(|| Arc::clone(&host.nested) as Arc<dyn NestedCalls>);
        let mut pooled = match self.instantiate(&spec, nested).await {
            Ok(pooled) => pooled,
            Err(error) => {
                self.report_failure(spec.id, error, true);
                return;
            }
        };
        pooled.instance.retain_handles();
        let export = format!("{ACTOR_NEW_EXPORT_PREFIX}{}", actor_spec.class);
        let label = format!("{} actor={actor}", actor_spec.class);
        let call = self.task_call(run, export, label);
        let kill = pooled.instance.kill_switch();
        let mut slot = host.instance.lock().await;
        *host.kill.lock().unwrap_or_else(PoisonError::into_inner) = Some(kill);
        let finished = pooled.instance.run_task(call).await;
        if matches!(finished.outcome, TaskOutcome::Returned(_)) {
            *slot = Some(pooled);
        }
        drop(slot);
        self.report(
            spec.id,
            sched_outcome(finished.outcome, finished.instance_lost),
        );
    }

    /// Starts a method call the scheduler dispatched.
    ///
    /// A `max_concurrency` 1 actor's calls run one after another in a single loop task, which
    /// lives while calls keep coming: the scheduler dispatches the next call when the previous
    /// one is reported, so the loop finds it queued and runs it without spawning a task or
    /// waking a thread. Concurrent actors spawn a task per call (they may interleave).
    pub(crate) fn dispatch_method(self: &Arc<Self>, actor: ActorId, run: RunTask<Value>) {
        let Some(host) = self.actor_host(actor) else {
            let error = lost(&run.spec.function, "the actor has no instance on this node");
            self.report_failure(run.spec.id, error, true);
            return;
        };
        let node = Arc::clone(self);
        if host.max_concurrency > 1 {
            tokio::spawn(async move { node.call_method(actor, &host, run).await });
            return;
        }
        let start_loop = {
            let mut serial = host.serial();
            serial.queue.push_back(run);
            !std::mem::replace(&mut serial.running, true)
        };
        if start_loop {
            tokio::spawn(async move { node.run_serial_calls(actor, host).await });
        }
    }

    /// The loop of a serial actor: runs its queued calls until none is left.
    async fn run_serial_calls(self: Arc<Self>, actor: ActorId, host: Arc<ActorHost>) {
        let mut ran = 0u32;
        loop {
            let run = {
                let mut serial = host.serial();
                match serial.queue.pop_front() {
                    Some(run) => run,
                    None => {
                        serial.running = false;
                        return;
                    }
                }
            };
            Arc::clone(&self).call_method(actor, &host, run).await;
            ran += 1;
            if ran.is_multiple_of(CALLS_BEFORE_YIELD) {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Runs a method call on its actor's instance.
    async fn call_method(self: Arc<Self>, actor: ActorId, host: &ActorHost, run: RunTask<Value>) {
        let spec = Arc::clone(&run.spec);
        let export = format!("{ACTOR_CALL_EXPORT_PREFIX}{}", spec.function);
        let label = format!("{} actor={actor}", spec.function);
        let call = self.task_call(run, export, label);
        let (finished, owner) = self.run_on_actor(host, call).await;
        let error_if_lost = match &finished.outcome {
            TaskOutcome::Failed(error) if finished.instance_lost => Some(error.clone()),
            _ => None,
        };
        self.report_and_release(
            spec.id,
            sched_outcome(finished.outcome, finished.instance_lost),
            &finished.held,
        );
        if let (Some(error), true) = (error_if_lost, owner) {
            self.with_sched(|sched| sched.actor_lost(actor, error));
        }
    }

    /// Runs `call` on the actor's instance, directly or nested in a blocked call. Returns the
    /// outcome and whether this call owned the instance (and so reports a loss).
    async fn run_on_actor(
        &self,
        host: &ActorHost,
        call: TaskCall,
    ) -> (Finished<TaskOutcome>, bool) {
        if host.max_concurrency <= 1 {
            let guard = host.instance.lock().await;
            return self.run_owned(guard, call).await;
        }
        if let Ok(guard) = host.instance.try_lock() {
            return self.run_owned(guard, call).await;
        }
        let function = call.function.clone();
        let (reply, mut answer) = oneshot::channel();
        let id = host.nested.push(NestedCall { call, reply });
        tokio::select! {
            finished = &mut answer => (finished.unwrap_or_else(|_| lost_call(&function)), false),
            guard = host.instance.lock() => match host.nested.take_back(id) {
                Some(NestedCall { call, .. }) => self.run_owned(guard, call).await,
                None => {
                    // A blocked call took it just now: wait for its answer.
                    drop(guard);
                    (answer.await.unwrap_or_else(|_| lost_call(&function)), false)
                }
            },
        }
    }

    async fn run_owned(
        &self,
        mut guard: tokio::sync::MutexGuard<'_, Option<PooledInstance>>,
        call: TaskCall,
    ) -> (Finished<TaskOutcome>, bool) {
        let function = call.function.clone();
        let Some(pooled) = guard.as_mut() else {
            return (lost_call(&function), false);
        };
        let finished = pooled.instance.run_task(call).await;
        if finished.instance_lost {
            guard.take();
        }
        (finished, true)
    }
}

fn lost(function: &str, message: &str) -> TaskError {
    TaskError {
        kind: ErrorKind::System,
        function: function.to_owned(),
        message: message.to_owned(),
        backtrace: None,
        task_chain: vec![function.to_owned()],
        cause: None,
    }
}

fn lost_call(function: &str) -> Finished<TaskOutcome> {
    Finished {
        outcome: TaskOutcome::Failed(lost(
            function,
            "the actor's instance went away during the call",
        )),
        held: Vec::new(),
        instance_lost: true,
    }
}
