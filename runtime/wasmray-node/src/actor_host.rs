//! Where each actor with an instance on this node lives: its instance (behind an async mutex,
//! so one call at a time holds it), the switch that stops it, and the queue of calls the
//! scheduler dispatched that have not started. How calls run is in `actors.rs`; this holds
//! state only.

use crate::pool::PooledInstance;
use crate::value::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use wasmray_core::{ActorId, IdMap};
use wasmray_sched::RunTask;
use wasmray_wasm::KillSwitch;

/// One actor's place on this node.
pub(crate) struct ActorHost {
    instance: tokio::sync::Mutex<Option<PooledInstance>>,
    kill: Mutex<Option<KillSwitch>>,
    /// Dispatched calls not yet started (see `actors.rs`).
    queue: Mutex<QueuedCalls>,
    /// Wakes a blocked call of a concurrent actor when a call is queued.
    queued: Notify,
    max_concurrency: u32,
}

/// Dispatched calls not yet started, and whether a loop is running them.
#[derive(Default)]
struct QueuedCalls {
    calls: VecDeque<RunTask<Value>>,
    loop_running: bool,
}

impl ActorHost {
    pub(crate) fn new(max_concurrency: u32) -> Self {
        Self {
            instance: tokio::sync::Mutex::new(None),
            kill: Mutex::new(None),
            queue: Mutex::default(),
            queued: Notify::new(),
            max_concurrency,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, QueuedCalls> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    /// Queues a dispatched call; true if no loop runs the queue (the caller starts one).
    pub(crate) fn push(&self, run: RunTask<Value>) -> bool {
        let start_loop = {
            let mut queue = self.queue();
            queue.calls.push_back(run);
            !std::mem::replace(&mut queue.loop_running, true)
        };
        if self.max_concurrency > 1 {
            self.queued.notify_waiters();
        }
        start_loop
    }

    /// The next queued call for the loop; `None` (and the loop is over) when there is none.
    pub(crate) fn next_for_loop(&self) -> Option<RunTask<Value>> {
        let mut queue = self.queue();
        let run = queue.calls.pop_front();
        if run.is_none() {
            queue.loop_running = false;
        }
        run
    }

    /// The next queued call for a blocked call to run nested, waiting until one is queued.
    /// Cancel-safe: a call is taken only in the poll that returns it.
    pub(crate) async fn next_nested(&self) -> RunTask<Value> {
        loop {
            let notified = self.queued.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(run) = self.queue().calls.pop_front() {
                return run;
            }
            notified.await;
        }
    }

    /// The instance, once no other call holds it; `None` inside if it was lost.
    pub(crate) async fn instance(&self) -> tokio::sync::MutexGuard<'_, Option<PooledInstance>> {
        self.instance.lock().await
    }

    /// Records the switch that stops the current instance.
    pub(crate) fn set_kill(&self, kill: KillSwitch) {
        *self.kill.lock().unwrap_or_else(PoisonError::into_inner) = Some(kill);
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

/// The actors with an instance on this node.
#[derive(Default)]
pub(crate) struct ActorHosts {
    hosts: Mutex<IdMap<ActorId, Arc<ActorHost>>>,
}

impl ActorHosts {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<ActorId, Arc<ActorHost>>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, actor: ActorId) -> Option<Arc<ActorHost>> {
        self.lock().get(&actor).cloned()
    }

    /// The actor's host, made now if it has none.
    pub(crate) fn get_or_insert(&self, actor: ActorId, max_concurrency: u32) -> Arc<ActorHost> {
        Arc::clone(
            self.lock()
                .entry(actor)
                .or_insert_with(|| Arc::new(ActorHost::new(max_concurrency))),
        )
    }

    pub(crate) fn remove(&self, actor: ActorId) -> Option<Arc<ActorHost>> {
        self.lock().remove(&actor)
    }

    /// How many actors have a place here.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every host, taken out (the node shuts down).
    pub(crate) fn drain(&self) -> Vec<Arc<ActorHost>> {
        self.lock().drain().map(|(_, host)| host).collect()
    }
}
