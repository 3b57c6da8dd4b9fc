//! The node's core: its components side by side, the scheduler's cell with the way changes
//! and their actions go through it, the in-process head and the timers' plumbing.
//!
//! Components (each owns its state; nothing here reaches into their fields): the scheduler
//! cell (`sched_cell.rs`), the head, the waiters of `get`/`wait` (`waiters.rs`), the instance
//! pool (`pool.rs`), the actors' hosts (`actor_host.rs`), each job's failed tasks
//! (`error_log.rs`), each job's quotas, store account and output (`jobs.rs`), the jobs
//! submitted here (`submitted.rs`) and the running tasks a cancel may stop (`running.rs`),
//! over the wasm host
//! and the object store. The files that give the node its behaviour (`execute.rs`,
//! `actors.rs`, `services.rs`, `actor_services.rs`, `control.rs`) depend on this one; it
//! depends on none of them: what an action means is given to it as a function (`node.rs`).

use crate::actor_host::ActorHosts;
use crate::asks::Asks;
use crate::config::NodeConfig;
use crate::error_log::ErrorLog;
use crate::jobs::Jobs;
use crate::pool::InstancePool;
use crate::running::RunningTasks;
use crate::sched_cell::SchedCell;
use crate::submitted::Submitted;
use crate::value::Value;
use crate::waiters::Waiters;
use crate::wire_codec::{self, Route};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use wasmray_core::{IdMint, NodeId, ObjectId};
use wasmray_net::Transport;
use wasmray_sched::{
    Action, Event, Head, HeadAction, HeadAnswer, HeadEvent, HeadRequest, Peer, Scheduler, Time,
};
use wasmray_store::{Account, AccountLimits, ObjectStore};
use wasmray_wasm::WasmHost;

/// What a node is made of.
pub(crate) struct NodeInner {
    pub(crate) id: NodeId,
    pub(crate) mint: IdMint,
    pub(crate) config: NodeConfig,
    pub(crate) host: WasmHost,
    pub(crate) store: ObjectStore,
    sched: SchedCell,
    /// Carries out one of the scheduler's actions (`node.rs` gives it; this file knows only
    /// that actions are carried out in order, one at a time).
    apply: fn(&Arc<NodeInner>, Action<Value>),
    /// The cluster's control state, if this node is the head (an embedded node is its own).
    head: Mutex<Head<Value>>,
    pub(crate) is_head: bool,
    /// The links to the rest of the cluster; `None` for an embedded node.
    pub(crate) net: Option<Transport>,
    /// Questions to the head waiting for answers.
    pub(crate) asks: Asks,
    /// What the transport hands frames to (it holds it weakly).
    pub(crate) net_handler: Mutex<Option<Arc<dyn wasmray_net::Handler>>>,
    /// Held while a module is fetched from a peer, so each is fetched once.
    pub(crate) module_fetch: tokio::sync::Mutex<()>,
    pub(crate) waiters: Waiters,
    pub(crate) pool: InstancePool,
    pub(crate) actors: ActorHosts,
    /// Each running job's failed tasks, for `error_info()`.
    pub(crate) errors: ErrorLog,
    /// Each job's quotas, store account and output.
    pub(crate) jobs: Jobs,
    /// The store account of objects no job is charged for (actor handle objects).
    pub(crate) node_account: Arc<Account>,
    /// Plain tasks running here, for `cancel` to stop.
    pub(crate) running: RunningTasks,
    /// Jobs submitted to this node (`wasmray submit`): their states and logs.
    pub(crate) submitted: Submitted,
    /// This node's scratch space (spilled objects); removed at shutdown.
    pub(crate) temp_dir: std::path::PathBuf,
    pub(crate) shutting_down: AtomicBool,
    /// Wakes the timer task early: the head's next deadline moved earlier than it sleeps.
    pub(crate) timer_wake: Arc<tokio::sync::Notify>,
    /// Set once the scheduler said the node drained (`Action::Drained`).
    pub(crate) drained: tokio::sync::watch::Sender<bool>,
    /// Set once the head declared this node dead (`Action::Fenced`).
    pub(crate) fenced: tokio::sync::watch::Sender<bool>,
    /// The head's state on disk (the head only, with a data directory).
    pub(crate) head_store: Option<crate::head_store::HeadStore>,
    /// When a frame from the head last came (ms since the node started), for the watch
    /// that finds a restarted head (`head_watch.rs`).
    pub(crate) head_heard_ms: std::sync::atomic::AtomicU64,
    /// A frame claimed to be from a head that is not ours: look for the head at once.
    pub(crate) head_look_now: AtomicBool,
    pub(crate) started: std::time::Instant,
}

/// The parts a node is built from (see [`NodeInner::new`]).
pub(crate) struct Parts {
    pub(crate) id: NodeId,
    pub(crate) config: NodeConfig,
    pub(crate) host: WasmHost,
    pub(crate) store: ObjectStore,
    pub(crate) sched: SchedCell,
    pub(crate) head: Head<Value>,
    pub(crate) is_head: bool,
    pub(crate) net: Option<Transport>,
    pub(crate) apply: fn(&Arc<NodeInner>, Action<Value>),
    pub(crate) temp_dir: std::path::PathBuf,
    pub(crate) head_store: Option<crate::head_store::HeadStore>,
}

impl NodeInner {
    pub(crate) fn new(parts: Parts) -> Self {
        let jobs = Jobs::new(
            parts.config.default_quotas,
            parts.config.guest_memory,
            Arc::clone(&parts.config.output),
        );
        Self {
            id: parts.id,
            mint: IdMint::new(parts.id),
            pool: InstancePool::new(parts.config.max_instances as usize),
            config: parts.config,
            host: parts.host,
            store: parts.store,
            sched: parts.sched,
            apply: parts.apply,
            head: Mutex::new(parts.head),
            is_head: parts.is_head,
            net: parts.net,
            asks: Asks::default(),
            net_handler: Mutex::new(None),
            timer_wake: Arc::new(tokio::sync::Notify::new()),
            drained: tokio::sync::watch::Sender::new(false),
            fenced: tokio::sync::watch::Sender::new(false),
            head_store: parts.head_store,
            head_heard_ms: std::sync::atomic::AtomicU64::new(0),
            head_look_now: AtomicBool::new(false),
            started: std::time::Instant::now(),
            module_fetch: tokio::sync::Mutex::new(()),
            waiters: Waiters::default(),
            actors: ActorHosts::default(),
            errors: ErrorLog::default(),
            jobs,
            node_account: Account::new(AccountLimits::UNLIMITED),
            running: RunningTasks::default(),
            submitted: Submitted::new(parts.temp_dir.join("jobs")),
            temp_dir: parts.temp_dir,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The instant a scheduler time stands for.
    pub(crate) fn instant(&self, time: Time) -> std::time::Instant {
        self.sched.instant(time)
    }

    /// The scheduler, for queries (changes go through [`NodeInner::with_sched`]).
    pub(crate) fn lock_sched(&self) -> crate::sched_cell::SchedGuard<'_> {
        self.sched.lock()
    }

    /// Runs `change` on the scheduler (given the time), then carries out the actions it
    /// produced, in order.
    pub(crate) fn with_sched<R>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut Scheduler<Value>, Time) -> R,
    ) -> R {
        // Stops are carried out under the scheduler's lock, which is what keeps them from
        // racing the task's start and end (see running.rs).
        self.sched.change(
            change,
            |action| {
                if let Action::StopTask(task) = action {
                    self.running.stop(*task);
                }
            },
            |action| (self.apply)(self, action),
        )
    }

    /// Feeds the scheduler one event.
    pub(crate) fn event(self: &Arc<Self>, event: Event<Value>) {
        self.with_sched(|sched, now| sched.handle(now, event));
    }

    /// Feeds the scheduler a batch of events under one lock.
    pub(crate) fn events(self: &Arc<Self>, events: impl IntoIterator<Item = Event<Value>>) {
        self.with_sched(|sched, now| {
            for event in events {
                sched.handle(now, event);
            }
        });
    }

    /// Hands an envelope from `from`'s scheduler to the head (if this node is the head) and
    /// routes what the head answers.
    pub(crate) fn to_head(
        self: &Arc<Self>,
        from: wasmray_core::NodeId,
        envelope: wasmray_sched::Envelope<wasmray_sched::Message<Value>>,
    ) {
        if !self.is_head {
            tracing::warn!(%from, "a message for the head reached a node that is not the head");
            return;
        }
        self.head_event(HeadEvent::Received { from, envelope });
    }

    /// Writes the head's state to its store if it changed (under the head's lock, so states
    /// are written in the order they were made). A failed write is logged: the head goes on
    /// (a restart would then come back with an older state).
    fn persist(&self, head: &mut Head<Value>) {
        let Some(store) = &self.head_store else {
            return;
        };
        if let Some(state) = head.take_state()
            && let Err(error) = store.save_state(&state)
        {
            tracing::error!(%error, "could not store the head's state");
        }
    }

    /// A frame from the head arrived.
    pub(crate) fn heard_from_head(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.head_heard_ms.store(ms, Ordering::Relaxed);
    }

    /// Makes the head watch look for the head at its next tick.
    pub(crate) fn look_for_head(&self) {
        self.head_look_now.store(true, Ordering::Relaxed);
    }

    /// The connection to `node` was lost: the head pings it at once (this node's own head
    /// only; elsewhere the head hears of it through its own connection).
    pub(crate) fn suspect(self: &Arc<Self>, node: wasmray_core::NodeId) {
        if self.is_head {
            self.head_event(HeadEvent::Suspect(node));
        }
    }

    /// Hands `event` to the head, carries out its actions, and wakes the timer task if the
    /// head's next deadline came earlier (a new member, a suspect's ping).
    fn head_event(self: &Arc<Self>, event: HeadEvent<Value>) {
        let now = self.sched.now();
        let (actions, earlier) = {
            let mut head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
            let before = head.poll_timeout();
            head.handle(now, event);
            let after = head.poll_timeout();
            let earlier = after.is_some_and(|a| before.is_none_or(|b| a < b));
            self.persist(&mut head);
            (head.drain_actions(), earlier)
        };
        self.head_actions(actions);
        if earlier {
            self.timer_wake.notify_one();
        }
    }

    fn head_actions(self: &Arc<Self>, actions: Vec<HeadAction<Value>>) {
        for action in actions {
            match action {
                HeadAction::Send { to, envelope } if to == self.id => self.event(Event::Received {
                    from: Peer::Head,
                    envelope,
                }),
                HeadAction::Send { to, envelope } => {
                    self.send_frame(to, Route::FromHead, &envelope)
                }
                HeadAction::Declared(node) => {
                    tracing::warn!(%node, "node declared dead");
                    if let Some(net) = &self.net {
                        net.refuse(node);
                    }
                }
            }
        }
    }

    /// Sends `envelope` to node `to` on `route`, if this node has links.
    pub(crate) fn send_frame(
        &self,
        to: wasmray_core::NodeId,
        route: Route,
        envelope: &wasmray_sched::Envelope<wasmray_sched::Message<Value>>,
    ) {
        let Some(net) = &self.net else {
            tracing::warn!(%to, "no link to node: message dropped");
            return;
        };
        match wire_codec::encode(route, envelope) {
            Ok(frame) => net.send(to, frame),
            // Not sent: the link layer keeps it unacknowledged; nothing is freed early.
            Err(e) => tracing::error!(%to, "could not encode a message: {e}"),
        }
    }

    /// Asks the head `ask`: directly on the head's own node, through the scheduler's link
    /// elsewhere. `None` if the node shuts down first.
    pub(crate) async fn ask_head(self: &Arc<Self>, ask: HeadRequest) -> Option<HeadAnswer> {
        if self.is_head {
            let now = self.sched.now();
            let (answer, actions) = {
                let mut head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
                let answer = head.answer(now, ask);
                self.persist(&mut head);
                (answer, head.drain_actions())
            };
            self.head_actions(actions);
            return Some(answer);
        }
        let (request, answer) = self.asks.open();
        self.event(Event::Ask { request, ask });
        answer.await.ok()
    }

    /// Where each node listens, for status displays: this node's own address (`embedded`
    /// without links), the peers' as the transport knows them (`unknown` otherwise).
    pub(crate) fn addresses(&self) -> impl Fn(wasmray_core::NodeId) -> String + use<> {
        let peers: std::collections::HashMap<_, _> = self
            .net
            .as_ref()
            .map(|net| net.peers().into_iter().collect())
            .unwrap_or_default();
        let local = self
            .net
            .as_ref()
            .and_then(|net| net.local_addr().ok())
            .map_or_else(|| "embedded".to_owned(), |a| a.to_string());
        let me = self.id;
        move |id| {
            if id == me {
                local.clone()
            } else {
                peers
                    .get(&id)
                    .map_or_else(|| "unknown".to_owned(), |a| a.to_string())
            }
        }
    }

    /// The head's members as it knows them (the head only).
    pub(crate) fn head_members(&self) -> Vec<(wasmray_core::NodeId, wasmray_sched::Member)> {
        let head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
        head.members().map(|(id, m)| (id, m.clone())).collect()
    }

    /// The scheduler's and the head's timers: when each is next due.
    pub(crate) fn next_timeout(&self) -> Option<Time> {
        let head = self
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .poll_timeout();
        let sched = self.lock_sched().poll_timeout();
        [head, sched].into_iter().flatten().min()
    }

    /// Fires whichever timers are due.
    pub(crate) fn fire_timers(self: &Arc<Self>) {
        let now = self.sched.now();
        let head_actions = {
            let mut head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
            if head.poll_timeout().is_some_and(|t| t <= now) {
                head.handle(now, HeadEvent::Timeout);
            }
            self.persist(&mut head);
            head.drain_actions()
        };
        self.head_actions(head_actions);
        let due = self.lock_sched().poll_timeout().is_some_and(|t| t <= now);
        if due {
            self.event(Event::Timeout);
        }
    }

    /// Drops one reference to each object.
    pub(crate) fn release(self: &Arc<Self>, ids: &[ObjectId]) {
        if ids.is_empty() {
            return;
        }
        self.events(ids.iter().map(|&id| Event::Release(id)));
    }
}
