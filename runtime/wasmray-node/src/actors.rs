//! Actors on the node: each live actor's instance, how its constructor and methods run, and
//! how concurrent calls of one actor share its single instance.
//!
//! An actor's dispatched calls go to a queue on its [`ActorHost`], and one loop task per busy
//! actor runs them in order on the instance; the loop lives while calls keep coming (the
//! scheduler dispatches the next call while the previous one is being reported, so the loop
//! usually finds it queued: no task is spawned and no thread woken per call). For an actor with
//! `max_concurrency > 1`, a call blocked in `get`/`wait` also takes calls from that queue and
//! runs them nested on the same instance (see `wasmray_wasm`'s `nested.rs`); a nested call's
//! result is reported by a small task that awaits it. Only the loop's own call holds the
//! instance and reports it lost, so a loss is reported once.

use crate::actor_host::ActorHost;
use crate::execute::sched_outcome;
use crate::inner::NodeInner;
use crate::pool::PooledInstance;
use crate::value::Value;
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;
use wasmray_abi::{ACTOR_CALL_EXPORT_PREFIX, ACTOR_NEW_EXPORT_PREFIX};
use wasmray_core::{ActorId, ErrorKind, TaskError, TaskId, TaskKind};
use wasmray_sched::{Event, RunTask};
use wasmray_wasm::{BoxFuture, Finished, NestedCall, NestedCalls, TaskCall, TaskOutcome};

/// How many calls an actor's loop runs before it lets other tasks of its worker run.
const CALLS_BEFORE_YIELD: u32 = 32;

/// Where a blocked call of a concurrent actor finds calls to run nested: the actor's queue.
struct NestedSource {
    node: Weak<NodeInner>,
    host: Weak<ActorHost>,
    actor: ActorId,
}

impl NestedCalls for NestedSource {
    fn next(&self) -> BoxFuture<'_, NestedCall> {
        Box::pin(async move {
            let (Some(node), Some(host)) = (self.node.upgrade(), self.host.upgrade()) else {
                // The node or the actor is gone: nothing will ever be queued.
                return std::future::pending().await;
            };
            // Taken and handed over in one poll: a call is never lost to cancellation.
            let run = host.next_nested().await;
            let (task, call) = node.method_call(self.actor, run);
            let (reply, answer) = oneshot::channel();
            let function = call.function.clone();
            let reporter = Arc::clone(&node);
            let actor = self.actor;
            tokio::spawn(async move {
                let finished = answer.await.unwrap_or_else(|_| lost_call(&function));
                reporter.method_finished(actor, task, finished, false);
            });
            NestedCall { call, reply }
        })
    }
}

impl NodeInner {
    /// Forgets a dead actor's instance.
    pub(crate) fn forget_actor(&self, actor: ActorId) {
        if let Some(host) = self.actors.remove(actor) {
            host.stop();
        }
    }

    /// Stops an actor's instance (the scheduler decided it must go).
    pub(crate) fn stop_actor(&self, actor: ActorId) {
        if let Some(host) = self.actors.get(actor) {
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
        let host = self.actors.get_or_insert(actor, actor_spec.max_concurrency);
        let nested = (host.max_concurrency() > 1).then(|| {
            Arc::new(NestedSource {
                node: Arc::downgrade(&self),
                host: Arc::downgrade(&host),
                actor,
            }) as Arc<dyn NestedCalls>
        });
        let mut pooled = match self.instantiate(&spec, nested).await {
            Ok(pooled) => pooled,
            Err(error) => {
                // A constructor's instance past its own limits is the actor's failure, not
                // the node's: not retried as one.
                let system = error.kind == wasmray_core::ErrorKind::System;
                self.report_failure(spec.id, error, system);
                return;
            }
        };
        pooled.instance.retain_handles();
        let export = format!("{ACTOR_NEW_EXPORT_PREFIX}{}", actor_spec.class);
        let label = format!("{} actor={actor}", actor_spec.class);
        let call = self.task_call(run, export, label);
        let kill = pooled.instance.kill_switch();
        let mut slot = host.instance().await;
        host.set_kill(kill);
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

    /// Queues a method call the scheduler dispatched, and starts the actor's loop if it is
    /// not running.
    pub(crate) fn dispatch_method(self: &Arc<Self>, actor: ActorId, run: RunTask<Value>) {
        let Some(host) = self.actors.get(actor) else {
            let error = lost(&run.spec.function, "the actor has no instance on this node");
            self.report_failure(run.spec.id, error, true);
            return;
        };
        if host.push(run) {
            let node = Arc::clone(self);
            tokio::spawn(async move { node.run_actor_loop(actor, host).await });
        }
    }

    /// An actor's loop: runs its queued calls in order until none is left.
    async fn run_actor_loop(self: Arc<Self>, actor: ActorId, host: Arc<ActorHost>) {
        let mut ran = 0u32;
        loop {
            let Some(run) = host.next_for_loop() else {
                return;
            };
            let (task, call) = self.method_call(actor, run);
            let (finished, owner) = run_owned(host.instance().await, call).await;
            self.method_finished(actor, task, finished, owner);
            ran += 1;
            if ran.is_multiple_of(CALLS_BEFORE_YIELD) {
                tokio::task::yield_now().await;
            }
        }
    }

    /// The call a dispatched method makes into its actor's instance.
    fn method_call(&self, actor: ActorId, run: RunTask<Value>) -> (TaskId, TaskCall) {
        let task = run.spec.id;
        // A caller on a node that had not heard of the actor's class names the bare method;
        // the actor's host knows the class.
        let function = if run.spec.function.contains("::") {
            run.spec.function.clone()
        } else {
            let class = self
                .lock_sched()
                .actor_info(actor)
                .map(|info| info.spec.class.clone());
            match class {
                Some(class) => format!("{class}::{}", run.spec.function),
                None => run.spec.function.clone(),
            }
        };
        let export = format!("{ACTOR_CALL_EXPORT_PREFIX}{function}");
        let label = format!("{function} actor={actor}");
        (task, self.task_call(run, export, label))
    }

    /// Reports how a method call ended; the call that `owned` the instance also reports its
    /// loss.
    fn method_finished(
        self: &Arc<Self>,
        actor: ActorId,
        task: TaskId,
        finished: Finished<TaskOutcome>,
        owned: bool,
    ) {
        let error_if_lost = match &finished.outcome {
            TaskOutcome::Failed(error) if finished.instance_lost => Some(error.clone()),
            _ => None,
        };
        self.report_and_release(
            task,
            sched_outcome(finished.outcome, finished.instance_lost),
            &finished.held,
        );
        if let (Some(error), true) = (error_if_lost, owned) {
            self.event(Event::ActorLost {
                actor,
                cause: error,
            });
        }
    }
}

/// Runs `call` on the instance the guard holds. Returns the outcome and whether the call found
/// an instance (and so reports a loss).
async fn run_owned(
    mut guard: tokio::sync::MutexGuard<'_, Option<PooledInstance>>,
    call: TaskCall,
) -> (Finished<TaskOutcome>, bool) {
    let Some(pooled) = guard.as_mut() else {
        return (lost_call(&call.function), false);
    };
    let finished = pooled.instance.run_task(call).await;
    if finished.instance_lost {
        guard.take();
    }
    (finished, true)
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
