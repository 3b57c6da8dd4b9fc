//! A deterministic simulated cluster: N schedulers and the head's state machine joined by a
//! simulated network with a virtual clock and one seeded random number generator.
//!
//! The network delays every envelope by a per-link random latency (so messages reorder),
//! drops and duplicates some, and can cut links (partition) and heal them; a node can be
//! killed (it stops taking events and its envelopes vanish). The simulator plays the guests:
//! a task "runs" for a random time and returns what its function name says (see
//! [`Guest`]); drivers are scripts of submissions, gets and releases on one node. Time jumps
//! from one due thing to the next, like quinn-proto's `Pair`, so a run of minutes of virtual
//! time takes milliseconds, and the same seed replays the same run exactly.
//!
//! After a run [`World::check`] asserts the invariants of ARCHITECTURE.md: no reference
//! leaked (every live node's tables end empty), no object freed while referenced (no pull
//! finds a copy gone, no object is lost unless a node was killed), no task's results settled
//! twice, every attempt run at most once, every driver's gets resolved. This module is test
//! code only; it does no I/O.

mod scenarios;

use crate::link::{Envelope, Peer};
use crate::message::Message;
use crate::rng::Rng;
use crate::time::Time;
use crate::{
    Action, Event, Head, HeadAction, HeadConfig, HeadEvent, ObjectState, ObjectValue, Outcome,
    RunTask, SchedConfig, Scheduler,
};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;
use wasmray_core::{
    ArgSpec, CPU, IdMint, JobId, Lineage, ModuleId, NodeId, ObjectId, ResourceSet, TaskId,
    TaskKind, TaskSpec,
};

/// A stored value in the simulation: a number, the refs inside it, and a size.
#[derive(Debug, Clone)]
pub(crate) struct SimValue(Arc<ValueInner>);

#[derive(Debug)]
pub(crate) struct ValueInner {
    payload: u64,
    contained: Vec<ObjectId>,
    len: u64,
}

thread_local! {
    /// Values alive on this thread (each run is one thread's): a value a live node keeps
    /// once it has freed everything is a leak the object tables do not show.
    static LIVE_VALUES: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

impl Drop for ValueInner {
    fn drop(&mut self) {
        LIVE_VALUES.with(|n| n.set(n.get() - 1));
    }
}

impl SimValue {
    fn new(payload: u64, contained: Vec<ObjectId>, len: u64) -> Self {
        LIVE_VALUES.with(|n| n.set(n.get() + 1));
        SimValue(Arc::new(ValueInner {
            payload,
            contained,
            len,
        }))
    }

    pub(crate) fn payload(&self) -> u64 {
        self.0.payload
    }
}

impl ObjectValue for SimValue {
    fn contained(&self) -> &[ObjectId] {
        &self.0.contained
    }

    fn size(&self) -> u64 {
        self.0.len
    }
}

/// Size of a "big" result: above the inline limit, so it stays where it was made.
const BIG: u64 = 1 << 20;

/// What a task does, by its function name.
///
/// - `add`: returns 1 + the sum of its arguments' payloads.
/// - `big`: as `add`, but the result is large (kept by its maker, pulled by readers).
/// - `nest`: puts a value (payload 42) and returns a value holding a ref to it (payload 0).
/// - `slow`: as `add`, but runs for seconds rather than milliseconds.
/// - `Counter` (an actor's constructor) returns nothing; `Counter::push(x)` appends `x` to the
///   actor's log and returns how long the log is.
/// - `caller(handle)`: calls `push(2000 + i)` on the actor whose handle is inside its
///   argument, for i in 0..5, and returns 0 without waiting for the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guest {
    Add,
    Big,
    Nest,
    Slow,
    Construct,
    Push,
    Caller,
}

impl Guest {
    fn of(function: &str) -> Guest {
        match function {
            "big" => Guest::Big,
            "nest" => Guest::Nest,
            "slow" => Guest::Slow,
            "Counter" => Guest::Construct,
            "Counter::push" => Guest::Push,
            "caller" => Guest::Caller,
            _ => Guest::Add,
        }
    }
}

/// An argument in a driver's script.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// By reference to a named handle the driver holds.
    Ref(&'static str),
    /// By value: a small value with this payload.
    Value(u64),
    /// By value: a value holding the reference a named handle is (an actor handle passed
    /// inside an argument, as the SDK does).
    Holding(&'static str),
}

/// One step of a driver's script. Names refer to handles the driver holds.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Submit `function(args)`; its result's handle is `name`.
    Submit {
        name: &'static str,
        function: &'static str,
        args: Vec<Arg>,
        resources: Vec<(&'static str, f64)>,
    },
    /// Wait until `name` is usable here; check its payload. The refs inside the value become
    /// handles `name.0`, `name.1`, ...
    Get { name: &'static str, expect: Expect },
    /// Create an actor of class `Counter` asking for `resources`, restarted up to
    /// `restarts` times and its calls retried up to `retries`; its handle is `name`.
    CreateActor {
        name: &'static str,
        args: Vec<Arg>,
        resources: Vec<(&'static str, f64)>,
        restarts: u32,
        retries: u32,
    },
    /// Call `Counter::push(payload)` on the actor `actor`; the result's handle is `name`.
    Call {
        name: &'static str,
        actor: &'static str,
        payload: u64,
    },
    /// Drop the handle `name`.
    Release(&'static str),
    /// `kill()` the actor whose handle is `name` (no restart).
    KillActor(&'static str),
    /// The driver exits, as a real one does: every handle it holds goes, then its node says
    /// the job ended (its actors die everywhere, through the head). The last step.
    EndJob,
    /// Make something happen to the cluster now.
    Fault(Fault),
    /// Wait until the driver's node knows `n` live nodes (itself included), like Ray's
    /// `wait_for_nodes`.
    WaitNodes(usize),
    /// Wait until the driver's node knows `node` is gone (dead or left).
    WaitGone(NodeId),
    /// Kill, mid-transfer, the first node seen serving a copy it pulled itself, or the
    /// `fallback` node once a transfer to or from it is under way.
    KillServing { fallback: NodeId },
}

/// What a `Get` must find.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    Payload(u64),
    /// A value, whatever its payload.
    Value,
    /// An error of this kind.
    Error(wasmray_core::ErrorKind),
    /// A value or an error of a loss (a node died): nodes were killed and the result may be
    /// lost.
    Anything,
}

/// A driver: a script run on one node, step by step.
#[derive(Debug)]
struct Driver {
    node: NodeId,
    steps: Vec<Step>,
    next: usize,
    handles: BTreeMap<String, ObjectId>,
    /// The handle a `Get` is waiting for.
    waiting: Option<ObjectId>,
    mint: TaskId,
    submitted: u32,
}

/// Something the world does at a given time.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    Partition(NodeId, NodeId),
    Heal(NodeId, NodeId),
    /// Cut the node from every other node and the head.
    Isolate(NodeId),
    /// Isolate whichever node is running `function` now (nothing if none is).
    IsolateRunner(&'static str),
    Rejoin(NodeId),
    /// Heal the node `IsolateRunner` cut off.
    RejoinIsolated,
    Kill(NodeId),
    /// Kill the node `function` last started on (nothing if it never ran).
    KillWhereRan(&'static str),
    /// The head drains the node (`wasmray drain`); it leaves once drained.
    Drain(NodeId),
}

/// The network's character for one run.
#[derive(Debug, Clone)]
pub(crate) struct NetConfig {
    pub(crate) min_latency: Duration,
    pub(crate) max_latency: Duration,
    pub(crate) loss: f64,
    pub(crate) duplication: f64,
}

impl NetConfig {
    /// A random network: latencies up to 5 ms, loss up to 5 %, duplication up to 2 %.
    fn random(rng: &mut Rng) -> Self {
        let unit = |rng: &mut Rng| rng.below(1_000_001) as f64 / 1_000_000.0;
        let min = Duration::from_micros(50 + rng.below(500) as u64);
        Self {
            min_latency: min,
            max_latency: min + Duration::from_micros(rng.below(5_000) as u64),
            loss: unit(rng) * 0.05,
            duplication: unit(rng) * 0.02,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct InFlight {
    at: Time,
    seq: u64,
    from: Peer,
    to: Peer,
    envelope: usize,
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A max-heap: the earliest delivery first.
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A running task the simulator plays the guest of.
#[derive(Debug)]
struct Running {
    node: NodeId,
    run: RunTask<SimValue>,
}

struct SimNode {
    sched: Scheduler<SimValue>,
    mint: IdMint,
    alive: bool,
}

/// A transfer of an offered copy's bytes, as a node's transport does it.
#[derive(Debug)]
struct Fetch {
    to: NodeId,
    from: NodeId,
    object: ObjectId,
}

/// The simulated cluster.
pub(crate) struct World {
    pub(crate) seed: u64,
    now: Time,
    rng: Rng,
    net: NetConfig,
    nodes: BTreeMap<NodeId, SimNode>,
    head: Head<SimValue>,
    in_flight: BinaryHeap<InFlight>,
    envelopes: Vec<Option<Envelope<Message<SimValue>>>>,
    next_seq: u64,
    cut: BTreeSet<(Peer, Peer)>,
    running: Vec<(Time, u64, Running)>,
    /// Byte transfers under way ([`Action::Fetch`]): when each ends.
    fetches: Vec<(Time, u64, Fetch)>,
    drivers: Vec<Driver>,
    faults: Vec<(Time, Fault)>,
    /// Runs per (task, attempt), over the whole cluster.
    runs: BTreeMap<(TaskId, u32), u32>,
    /// Which node ran each task last.
    pub(crate) ran_on: BTreeMap<String, Vec<NodeId>>,
    /// Nodes that said they drained, in order.
    pub(crate) drained: Vec<NodeId>,
    /// Drained nodes that leave once everything they sent is acknowledged.
    leaving: Vec<NodeId>,
    /// Work of its own a node started while it knew it drained (must stay empty).
    pub(crate) ran_while_draining: Vec<(NodeId, String)>,
    /// Pulls answered "no copy" (or fetches that found none) by a node that was to keep its
    /// copy: only a dead node can make one legitimate.
    empty_pulls: usize,
    /// Nodes that said they hold a pulled copy (`Holding`): they drop it when they release
    /// their references, so a pull may find it gone.
    pulled_copies: BTreeSet<(NodeId, ObjectId)>,
    /// Offered copies whose bytes arrived.
    pub(crate) fetched: usize,
    /// Of those, copies fetched from a node that had pulled the object itself.
    pub(crate) fetched_onward: usize,
    /// The most leases any executor held queued at once.
    pub(crate) most_queued_leases: usize,
    killed: bool,
    isolated: Option<NodeId>,
    /// What each actor's `push` calls received, in the order they ran.
    pub(crate) actor_logs: BTreeMap<wasmray_core::ActorId, Vec<u64>>,
    /// What the drivers' gets found, in order.
    pub(crate) got: Vec<(&'static str, Option<u64>)>,
    trace: Vec<String>,
}

/// Node IDs in the simulation: small numbers, so traces read easily.
pub(crate) fn node(n: u64) -> NodeId {
    NodeId(n)
}

impl World {
    /// A cluster of nodes offering `resources` (one entry per node, node IDs 1..), under the
    /// network drawn from `seed`.
    pub(crate) fn new(seed: u64, resources: &[Vec<(&str, f64)>]) -> Self {
        let mut rng = Rng::new(seed);
        let net = NetConfig::random(&mut rng);
        let head = Head::new(HeadConfig {
            // Declared 1 s after the last word, as before pings.
            health: crate::HealthCheck {
                period: Duration::from_millis(200),
                timeout: Duration::from_millis(400),
                failures: 3,
            },
            resend_after: Duration::from_millis(30),
            local: None,
        });
        let mut world = World {
            seed,
            now: Time::ZERO,
            rng,
            net,
            nodes: BTreeMap::new(),
            head,
            in_flight: BinaryHeap::new(),
            envelopes: Vec::new(),
            next_seq: 0,
            cut: BTreeSet::new(),
            running: Vec::new(),
            fetches: Vec::new(),
            fetched: 0,
            fetched_onward: 0,
            pulled_copies: BTreeSet::new(),
            most_queued_leases: 0,
            drivers: Vec::new(),
            faults: Vec::new(),
            runs: BTreeMap::new(),
            ran_on: BTreeMap::new(),
            drained: Vec::new(),
            ran_while_draining: Vec::new(),
            leaving: Vec::new(),
            empty_pulls: 0,
            killed: false,
            isolated: None,
            actor_logs: BTreeMap::new(),
            got: Vec::new(),
            trace: Vec::new(),
        };
        for (i, pairs) in resources.iter().enumerate() {
            let id = node(i as u64 + 1);
            let total = ResourceSet::from_pairs(pairs.iter().copied()).expect("valid resources");
            let mut config = SchedConfig::new(id, total);
            config.seed = seed ^ id.0;
            config.resend_after = Duration::from_millis(30);
            config.report_every = Duration::from_millis(200);
            config.report_gap = Duration::from_millis(20);
            // Two pulls of a big value per source at once: a third puller waits, then pulls
            // from a node that finished.
            config.serve_budget = BIG;
            let sched = Scheduler::new(config, Time::ZERO);
            world.nodes.insert(
                id,
                SimNode {
                    sched,
                    mint: IdMint::new(id),
                    alive: true,
                },
            );
            world.drain(id);
        }
        world
    }

    /// Runs `steps` as a driver on `node` (from the start of the run).
    pub(crate) fn driver(&mut self, on: NodeId, steps: Vec<Step>) {
        let mint = self.nodes[&on].mint.next_task();
        self.drivers.push(Driver {
            node: on,
            steps,
            next: 0,
            handles: BTreeMap::new(),
            waiting: None,
            mint,
            submitted: 0,
        });
    }

    /// Schedules a fault at `at` (since the start).
    pub(crate) fn fault(&mut self, at: Duration, fault: Fault) {
        self.faults.push((Time::ZERO.after(at), fault));
        self.faults.sort_by_key(|(t, _)| *t);
    }

    fn log(&mut self, line: String) {
        if self.trace.len() < 20_000 {
            self.trace.push(format!("{} {line}", self.now));
        }
    }

    /// Carries out what node `id`'s scheduler asked for.
    fn drain(&mut self, id: NodeId) {
        loop {
            let Some(sim) = self.nodes.get_mut(&id) else {
                return;
            };
            let actions = sim.sched.drain_actions();
            self.most_queued_leases = self.most_queued_leases.max(sim.sched.queued_leases.len());
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.apply(id, action);
            }
        }
    }

    fn apply(&mut self, id: NodeId, action: Action<SimValue>) {
        match action {
            Action::Run(run) => {
                let draining = self.nodes.get(&id).is_some_and(|n| n.sched.draining);
                if draining && !matches!(run.spec.kind, TaskKind::ActorMethod { .. }) {
                    // A node that knows it drains starts nothing new (a leased task that
                    // waited for its arguments was granted before).
                    let leased = self.nodes.get(&id).is_some_and(|n| {
                        n.sched
                            .tasks
                            .get(&run.spec.id)
                            .is_some_and(|t| t.owner.is_some())
                    });
                    if !leased {
                        self.ran_while_draining
                            .push((id, run.spec.function.clone()));
                    }
                }
                let key = (run.spec.id, run.attempt);
                *self.runs.entry(key).or_default() += 1;
                self.ran_on
                    .entry(run.spec.function.clone())
                    .or_default()
                    .push(id);
                let guest = Guest::of(&run.spec.function);
                let base = if guest == Guest::Slow { 2_000_000 } else { 500 };
                let took = base + self.rng.below(3_000) as u64;
                let at = self.now.after(Duration::from_micros(took));
                self.log(format!(
                    "node {id} runs {} attempt {}",
                    run.spec.function, run.attempt
                ));
                let seq = self.bump();
                self.running.push((at, seq, Running { node: id, run }));
            }
            Action::Send { to, envelope } => self.transmit(Peer::Node(id), to, envelope),
            Action::Fetch {
                object, from, len, ..
            } => {
                // A round trip, then the bytes at 1 GB/s.
                let took = self.net.min_latency * 2 + Duration::from_nanos(len);
                let at = self.now.after(took);
                self.log(format!(
                    "node {id} fetches {object:?} ({len} bytes) from {from}"
                ));
                let seq = self.bump();
                self.fetches.push((
                    at,
                    seq,
                    Fetch {
                        to: id,
                        from,
                        object,
                    },
                ));
            }
            Action::JobEnded(job) => self.log(format!("node {id} heard job {} ended", job.0)),
            Action::Drained => {
                // As the node process does: it leaves once drained, when everything it sent
                // was acknowledged.
                self.log(format!("node {id} drained"));
                self.drained.push(id);
                self.leaving.push(id);
            }
            Action::Fenced => {
                self.log(format!("node {id} fenced"));
                self.killed = true;
                if let Some(sim) = self.nodes.get_mut(&id) {
                    sim.alive = false;
                }
                self.running.retain(|(_, _, r)| r.node != id);
            }
            Action::Failed { task, error, .. } => {
                self.log(format!("task {task:?} failed: {}", error.message));
            }
            Action::Rebuild {
                object, attempt, ..
            } => self.log(format!(
                "node {id} makes {object:?} again (attempt {attempt})"
            )),
            Action::StopTask(task) => {
                // The instance stops: it reports a failure at once.
                if let Some(at) = self
                    .running
                    .iter()
                    .position(|(_, _, r)| r.run.spec.id == task)
                {
                    self.running[at].0 = self.now;
                }
            }
            _ => {}
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn transmit(&mut self, from: Peer, to: Peer, envelope: Envelope<Message<SimValue>>) {
        if self.cut.contains(&(from, to)) {
            return;
        }
        match (&envelope.message, from) {
            (
                Some(Message::Pulled {
                    value: None,
                    object,
                }),
                Peer::Node(node),
            ) if !self.pulled_copies.contains(&(node, *object)) => {
                self.empty_pulls += 1;
            }
            (Some(Message::Holding { object }), Peer::Node(node)) => {
                self.pulled_copies.insert((node, *object));
            }
            _ => {}
        }
        let unit = |rng: &mut Rng| rng.below(1_000_001) as f64 / 1_000_000.0;
        if unit(&mut self.rng) < self.net.loss {
            return;
        }
        let copies = if unit(&mut self.rng) < self.net.duplication {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let spread = self.net.max_latency.saturating_sub(self.net.min_latency);
            let extra = self.rng.below(spread.as_micros() as usize + 1) as u64;
            let at = self
                .now
                .after(self.net.min_latency + Duration::from_micros(extra));
            let index = self.envelopes.len();
            self.envelopes.push(Some(envelope.clone()));
            let seq = self.bump();
            self.in_flight.push(InFlight {
                at,
                seq,
                from,
                to,
                envelope: index,
            });
        }
    }

    fn deliver(&mut self, item: InFlight) {
        let Some(envelope) = self.envelopes.get_mut(item.envelope).and_then(Option::take) else {
            return;
        };
        if self.cut.contains(&(item.from, item.to)) {
            return;
        }
        if let Some(message) = envelope
            .message
            .as_ref()
            .filter(|m| !matches!(m, Message::Report { .. } | Message::View { .. }))
        {
            let line = format!(
                "{} -> {}: #{} {} {}",
                item.from,
                item.to,
                envelope.seq,
                message.name(),
                brief(message)
            );
            self.log(line);
        }
        match item.to {
            Peer::Head => {
                let Peer::Node(from) = item.from else {
                    return;
                };
                self.head
                    .handle(self.now, HeadEvent::Received { from, envelope });
                self.drain_head();
            }
            Peer::Node(id) => {
                let alive = self.nodes.get(&id).is_some_and(|n| n.alive);
                if !alive {
                    return;
                }
                let now = self.now;
                if let Some(sim) = self.nodes.get_mut(&id) {
                    sim.sched.handle(
                        now,
                        Event::Received {
                            from: item.from,
                            envelope,
                        },
                    );
                }
                self.drain(id);
            }
        }
    }

    fn drain_head(&mut self) {
        for action in self.head.drain_actions() {
            match action {
                HeadAction::Send { to, envelope } => {
                    self.transmit(Peer::Head, Peer::Node(to), envelope)
                }
                HeadAction::Declared(node) => self.log(format!("head declares node {node} dead")),
            }
        }
    }

    fn finish_run(&mut self, running: Running) {
        let Running { node: id, run } = running;
        let alive = self.nodes.get(&id).is_some_and(|n| n.alive);
        if !alive {
            return;
        }
        let guest = Guest::of(&run.spec.function);
        let sum: u64 = run.args.iter().map(SimValue::payload).sum();
        let now = self.now;
        let Some(sim) = self.nodes.get_mut(&id) else {
            return;
        };
        let mut held = None;
        let value = match guest {
            Guest::Construct => {
                sim.sched.handle(
                    now,
                    Event::Finished {
                        task: run.spec.id,
                        outcome: Outcome::Returned(Vec::new()),
                    },
                );
                self.drain(id);
                return;
            }
            Guest::Push => {
                let actor = run.spec.actor().expect("a method has an actor");
                let log = self.actor_logs.entry(actor).or_default();
                log.push(sum);
                SimValue::new(log.len() as u64, Vec::new(), 8)
            }
            Guest::Caller => {
                // Deserializing the argument gives the guest a handle to the actor.
                let handle = run.args[0].contained()[0];
                sim.sched.handle(now, Event::AddRef(handle));
                let mut results = Vec::new();
                for i in 0..5 {
                    let task = sim.mint.next_task();
                    // Its own retries unset: its actor's, as the owner tells this node.
                    let spec = method_spec(task, handle, 2000 + i, run.spec.id);
                    results.push(task.return_object(1));
                    sim.sched.handle(now, Event::Submit(Arc::new(spec)));
                }
                sim.sched.handle(now, Event::Release(handle));
                for result in results {
                    sim.sched.handle(now, Event::Release(result));
                }
                SimValue::new(0, Vec::new(), 8)
            }
            Guest::Add | Guest::Slow => SimValue::new(sum + 1, Vec::new(), 8),
            Guest::Big => SimValue::new(sum + 1, Vec::new(), BIG),
            Guest::Nest => {
                // The guest puts a value (its handle is the put's reference), then returns a
                // value holding a ref to it, then its handles go.
                let inner = sim.mint.next_task().put_object(0);
                sim.sched.handle(
                    now,
                    Event::Put {
                        id: inner,
                        value: SimValue::new(42, Vec::new(), 8),
                    },
                );
                sim.sched.handle(now, Event::AddContained(inner));
                held = Some(inner);
                SimValue::new(0, vec![inner], 8)
            }
        };
        let outcome =
            Outcome::Returned(std::iter::repeat_n(value, run.spec.num_returns as usize).collect());
        sim.sched.handle(
            now,
            Event::Finished {
                task: run.spec.id,
                outcome,
            },
        );
        if let Some(inner) = held {
            sim.sched.handle(now, Event::Release(inner));
        }
        self.drain(id);
    }

    /// Moves each driver on as far as it can go.
    fn step_drivers(&mut self) {
        for index in 0..self.drivers.len() {
            loop {
                let progressed = self.step_driver(index);
                if !progressed {
                    break;
                }
            }
        }
    }

    fn step_driver(&mut self, index: usize) -> bool {
        let now = self.now;
        let driver = &mut self.drivers[index];
        let id = driver.node;
        let Some(sim) = self.nodes.get_mut(&id) else {
            return false;
        };
        if !sim.alive {
            return false;
        }
        if let Some(waiting) = driver.waiting {
            match sim.sched.object(waiting) {
                Some(ObjectState::Pending) => return false,
                None => panic!(
                    "seed {}: a driver's handle names an object its node forgot",
                    self.seed
                ),
                Some(_) => driver.waiting = None,
            }
        }
        let Some(step) = driver.steps.get(driver.next).cloned() else {
            return false;
        };
        match step {
            Step::Submit {
                name,
                function,
                args,
                resources,
            } => {
                driver.submitted += 1;
                let task = sim.mint.next_task();
                let spec_args = spec_args(driver, &mut sim.sched, now, args);
                let mut needs = vec![(CPU, 1.0)];
                needs.extend(resources);
                let spec = plain_spec(task, function, spec_args, &needs, driver.mint);
                driver
                    .handles
                    .insert(name.to_owned(), task.return_object(1));
                sim.sched.handle(now, Event::Submit(Arc::new(spec)));
            }
            Step::Get { name, expect } => {
                let id = *driver
                    .handles
                    .get(name)
                    .unwrap_or_else(|| panic!("script refers to unknown handle `{name}`"));
                match sim.sched.object(id) {
                    Some(ObjectState::Pending) => {
                        sim.sched.handle(now, Event::Watch(id));
                        driver.waiting = Some(id);
                        self.drain(self.drivers[index].node);
                        return false;
                    }
                    Some(ObjectState::Ready(value)) => {
                        if let Expect::Error(kind) = expect {
                            panic!(
                                "seed {}: `{name}` should have failed with {kind:?}",
                                self.seed
                            );
                        }
                        if let Expect::Payload(want) = expect {
                            assert_eq!(
                                value.payload(),
                                want,
                                "seed {}: `{name}` has the wrong value",
                                self.seed
                            );
                        }
                        for (i, inner) in value.contained().iter().enumerate() {
                            sim.sched.handle(now, Event::AddRef(*inner));
                            driver.handles.insert(format!("{name}.{i}"), *inner);
                        }
                        self.got.push((name, Some(value.payload())));
                    }
                    Some(ObjectState::Failed(error)) => {
                        sim.sched.handle(now, Event::ErrorSeen(id));
                        if let Expect::Error(kind) = expect {
                            assert_eq!(error.kind, kind, "seed {}: `{name}`", self.seed);
                        }
                        if let Expect::Anything = expect {
                            // Only a loss may fail it: a node died with its result, its
                            // owner, or the only node that could run it.
                            use wasmray_core::ErrorKind::*;
                            let kind = error.root_cause().kind;
                            assert!(
                                matches!(kind, ObjectLost | OwnerDied | System | Infeasible),
                                "seed {}: `{name}` failed with {kind:?}: {}",
                                self.seed,
                                error.message
                            );
                        }
                        if let Expect::Payload(_) | Expect::Value = expect {
                            panic!(
                                "seed {}: `{name}` failed: {}\n{}",
                                self.seed,
                                error.message,
                                self.trace_tail()
                            );
                        }
                        self.got.push((name, None));
                    }
                    None => panic!("seed {}: `{name}` was freed while held", self.seed),
                }
            }
            Step::Fault(fault) => {
                self.inject(fault);
                let driver = &mut self.drivers[index];
                driver.next += 1;
                return true;
            }
            Step::CreateActor {
                name,
                args,
                resources,
                restarts,
                retries,
            } => {
                let task = sim.mint.next_task();
                let args = spec_args(driver, &mut sim.sched, now, args);
                let mut spec = plain_spec(task, "Counter", args, &resources, driver.mint);
                spec.num_returns = 0;
                spec.kind = TaskKind::ActorCreation(Arc::new(wasmray_core::ActorSpec {
                    class: "Counter".into(),
                    max_restarts: restarts,
                    max_task_retries: retries,
                    max_concurrency: 1,
                    detached: false,
                    name: None,
                }));
                let actor = wasmray_core::ActorId(task);
                driver
                    .handles
                    .insert(name.to_owned(), actor.handle_object());
                sim.sched.handle(
                    now,
                    Event::CreateActor {
                        spec: Arc::new(spec),
                        handle: SimValue::new(0, Vec::new(), 8),
                    },
                );
            }
            Step::Call {
                name,
                actor,
                payload,
            } => {
                let handle = *driver
                    .handles
                    .get(actor)
                    .unwrap_or_else(|| panic!("script refers to unknown handle `{actor}`"));
                let task = sim.mint.next_task();
                let mut spec = method_spec(task, handle, payload, driver.mint);
                // As the node does: a call is retried as often as its actor's calls may be.
                let actor_id = wasmray_core::ActorId(handle.task);
                spec.max_retries = sim
                    .sched
                    .actor_info(actor_id)
                    .map_or(0, |info| info.spec.max_task_retries);
                driver
                    .handles
                    .insert(name.to_owned(), task.return_object(1));
                sim.sched.handle(now, Event::Submit(Arc::new(spec)));
            }
            Step::WaitNodes(n) => {
                let live = sim.sched.view().nodes().filter(|(_, v)| v.alive).count();
                if live < n {
                    return false;
                }
            }
            Step::WaitGone(node) => {
                let gone = sim
                    .sched
                    .view()
                    .nodes()
                    .any(|(id, v)| id == node && !v.alive);
                if !gone {
                    return false;
                }
            }
            Step::KillServing { fallback } => {
                let fetches = || self.fetches.iter().map(|(_, _, f)| f);
                let victim = fetches()
                    .find(|f| self.pulled_copies.contains(&(f.from, f.object)))
                    .map(|f| f.from)
                    .or_else(|| {
                        fetches()
                            .any(|f| f.to == fallback || f.from == fallback)
                            .then_some(fallback)
                    });
                let Some(victim) = victim else {
                    return false;
                };
                self.inject(Fault::Kill(victim));
                self.drivers[index].next += 1;
                return true;
            }
            Step::Release(name) => {
                let Some(id) = driver.handles.remove(name) else {
                    panic!("script releases unknown handle `{name}`");
                };
                sim.sched.handle(now, Event::Release(id));
            }
            Step::KillActor(name) => {
                let Some(id) = driver.handles.get(name) else {
                    panic!("script kills unknown actor `{name}`");
                };
                let actor = wasmray_core::ActorId(id.task);
                sim.sched.handle(
                    now,
                    Event::KillActor {
                        actor,
                        no_restart: true,
                    },
                );
            }
            Step::EndJob => {
                release_all(driver, &mut sim.sched, now);
                sim.sched.handle(now, Event::JobFinished(JobId(1)));
            }
        }
        let driver = &mut self.drivers[index];
        driver.next += 1;
        if driver.next == driver.steps.len()
            && let Some(sim) = self.nodes.get_mut(&id)
        {
            // The driver exits: every handle it still holds goes.
            release_all(driver, &mut sim.sched, now);
        }
        self.drain(id);
        true
    }

    fn drivers_done(&self) -> bool {
        self.drivers
            .iter()
            .all(|d| d.next == d.steps.len() || !self.nodes.get(&d.node).is_some_and(|n| n.alive))
    }

    /// Whether nothing but heartbeats is left to happen.
    fn quiet(&self) -> bool {
        self.drivers_done()
            && self.running.is_empty()
            && self.fetches.is_empty()
            && self.in_flight.iter().all(|f| {
                self.envelopes[f.envelope]
                    .as_ref()
                    .is_none_or(|e| e.message.as_ref().is_none_or(is_heartbeat))
            })
            && self.head.unacked_messages().all(is_heartbeat)
            && self.nodes.values().filter(|n| n.alive).all(|n| {
                let stats = n.sched.stats();
                stats.objects == 0
                    && n.sched.links.unacked_messages().all(is_heartbeat)
                    && stats.waiting + stats.ready + stats.running + stats.leased_out == 0
            })
    }

    /// Runs until every driver is done and the cluster is quiet, or `limit` of virtual time.
    /// Drained nodes whose messages were all acknowledged leave now.
    fn leave_when_acknowledged(&mut self) {
        let now = self.now;
        let mut left = Vec::new();
        for &id in &self.leaving {
            if let Some(sim) = self.nodes.get_mut(&id)
                && sim.sched.unacknowledged() == 0
            {
                sim.sched.handle(now, Event::Leave);
                left.push(id);
            }
        }
        for id in left {
            self.log(format!("node {id} leaves"));
            self.leaving.retain(|n| *n != id);
            self.drain(id);
        }
    }

    pub(crate) fn run(&mut self, limit: Duration) {
        let end = Time::ZERO.after(limit);
        self.step_drivers();
        loop {
            self.leave_when_acknowledged();
            if self.quiet() {
                return;
            }
            let next_fault = self.faults.first().map(|(t, _)| *t);
            let next_net = self.in_flight.peek().map(|f| f.at);
            let next_run = self.running.iter().map(|(t, _, _)| *t).min();
            let next_fetch = self.fetches.iter().map(|(t, _, _)| *t).min();
            let next_timer = self
                .nodes
                .values()
                .filter(|n| n.alive)
                .filter_map(|n| n.sched.poll_timeout())
                .chain(self.head.poll_timeout())
                .min();
            let Some(next) = [next_fault, next_net, next_run, next_fetch, next_timer]
                .into_iter()
                .flatten()
                .min()
            else {
                return;
            };
            if next > end {
                return;
            }
            self.now = self.now.max(next);
            if next_fault == Some(next) {
                let (_, fault) = self.faults.remove(0);
                self.inject(fault);
            } else if next_net == Some(next) {
                if let Some(item) = self.in_flight.pop() {
                    self.deliver(item);
                }
            } else if next_run == Some(next) {
                let running = take_earliest(&mut self.running).expect("a run is due");
                self.finish_run(running);
            } else if next_fetch == Some(next) {
                let fetch = take_earliest(&mut self.fetches).expect("a fetch is due");
                self.finish_fetch(fetch);
            } else {
                self.timers();
            }
            self.step_drivers();
        }
    }

    /// A transfer ends: the holder's copy if it is still there and the link is up.
    fn finish_fetch(&mut self, fetch: Fetch) {
        let Fetch { to, from, object } = fetch;
        if !self.nodes.get(&to).is_some_and(|n| n.alive) {
            return;
        }
        let cut = self.cut.contains(&(Peer::Node(from), Peer::Node(to)))
            || self.cut.contains(&(Peer::Node(to), Peer::Node(from)));
        let value = self
            .nodes
            .get(&from)
            .filter(|n| n.alive && !cut)
            .and_then(|n| match n.sched.object(object) {
                Some(ObjectState::Ready(value)) => Some(value),
                _ => None,
            });
        self.log(format!(
            "node {to} fetched {object:?} from {from}: {}",
            if value.is_some() { "ok" } else { "failed" }
        ));
        let onward = self.pulled_copies.contains(&(from, object));
        let still_wanted = self
            .nodes
            .get(&to)
            .is_some_and(|n| n.sched.object(object).is_some());
        if value.is_none()
            && !cut
            && !onward
            && still_wanted
            && self.nodes.get(&from).is_some_and(|n| n.alive)
        {
            // The node that made it keeps it while anyone references it (`to` does).
            self.empty_pulls += 1;
        }
        self.fetched += usize::from(value.is_some());
        self.fetched_onward += usize::from(value.is_some() && onward);
        let now = self.now;
        if let Some(sim) = self.nodes.get_mut(&to) {
            sim.sched.handle(
                now,
                Event::Fetched {
                    object,
                    from,
                    value,
                },
            );
        }
        self.drain(to);
    }

    fn timers(&mut self) {
        let now = self.now;
        if self.head.poll_timeout().is_some_and(|t| t <= now) {
            self.head.handle(now, HeadEvent::Timeout);
            self.drain_head();
        }
        let due: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.alive && n.sched.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(sim) = self.nodes.get_mut(&id) {
                sim.sched.handle(now, Event::Timeout);
            }
            self.drain(id);
        }
    }

    fn inject(&mut self, fault: Fault) {
        self.log(format!("fault: {fault:?}"));
        let peers: Vec<Peer> = self
            .nodes
            .keys()
            .map(|id| Peer::Node(*id))
            .chain([Peer::Head])
            .collect();
        match fault {
            Fault::Partition(a, b) => {
                self.cut.insert((Peer::Node(a), Peer::Node(b)));
                self.cut.insert((Peer::Node(b), Peer::Node(a)));
            }
            Fault::Heal(a, b) => {
                self.cut.remove(&(Peer::Node(a), Peer::Node(b)));
                self.cut.remove(&(Peer::Node(b), Peer::Node(a)));
            }
            Fault::Isolate(a) => {
                for peer in peers {
                    if peer != Peer::Node(a) {
                        self.cut.insert((Peer::Node(a), peer));
                        self.cut.insert((peer, Peer::Node(a)));
                    }
                }
            }
            Fault::IsolateRunner(function) => {
                let runner = self
                    .running
                    .iter()
                    .find(|(_, _, r)| r.run.spec.function == function)
                    .map(|(_, _, r)| r.node);
                if let Some(a) = runner {
                    self.isolated = Some(a);
                    self.inject(Fault::Isolate(a));
                }
            }
            Fault::RejoinIsolated => {
                if let Some(a) = self.isolated.take() {
                    self.inject(Fault::Rejoin(a));
                }
            }
            Fault::Rejoin(a) => self
                .cut
                .retain(|(x, y)| *x != Peer::Node(a) && *y != Peer::Node(a)),
            Fault::Drain(a) => {
                let now = self.now;
                self.head.drain(now, a);
                self.drain_head();
            }
            Fault::KillWhereRan(function) => {
                if let Some(&a) = self.ran_on.get(function).and_then(|on| on.last()) {
                    self.inject(Fault::Kill(a));
                }
            }
            Fault::Kill(a) => {
                self.killed = true;
                if let Some(sim) = self.nodes.get_mut(&a) {
                    sim.alive = false;
                }
                self.running.retain(|(_, _, r)| r.node != a);
            }
        }
    }

    /// Node `id` keeps no lineage (as past its budget): the loss of a result made elsewhere
    /// is final there.
    pub(crate) fn keep_no_lineage(&mut self, id: NodeId) {
        if let Some(sim) = self.nodes.get_mut(&id) {
            sim.sched.lineage = crate::lineage::LineageTable::new(0);
        }
    }

    /// Tasks run again, on every node, to make lost results.
    pub(crate) fn rebuilt(&self) -> u64 {
        self.nodes.values().map(|n| n.sched.stats().rebuilt).sum()
    }

    /// The trace's last 60 lines, or as many as `WASMRAY_SIM_TRACE` says.
    pub(crate) fn trace_tail(&self) -> String {
        let lines = std::env::var("WASMRAY_SIM_TRACE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        let start = self.trace.len().saturating_sub(lines);
        self.trace[start..].join("\n")
    }

    /// Asserts that once a run is over, with the dead nodes, the network and the drivers gone,
    /// no value is kept anywhere: what the live nodes hold beyond their object tables (link
    /// buffers, queued leases, actor entries, task specs) is empty too. Consumes the world.
    pub(crate) fn check_no_value_kept(mut self) {
        let seed = self.seed;
        let before = LIVE_VALUES.with(|n| n.get());
        let dead: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.alive)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.nodes.remove(&id);
        }
        self.in_flight.clear();
        self.running.clear();
        self.fetches.clear();
        self.drivers.clear();
        let tail = self.trace_tail();
        let live: Vec<NodeId> = self.nodes.keys().copied().collect();
        let kept = LIVE_VALUES.with(|n| n.get());
        let mut per_node = Vec::new();
        for id in live {
            if let Some(node) = self.nodes.remove(&id) {
                let at = LIVE_VALUES.with(|n| n.get());
                drop(node);
                let freed = at - LIVE_VALUES.with(|n| n.get());
                if freed > 0 {
                    per_node.push((id, freed));
                }
            }
        }
        assert!(
            per_node.is_empty(),
            "seed {seed}: live nodes kept values after the run ({kept} of {before} alive once \
             the dead nodes and the network went), by node: {per_node:?}\n{tail}"
        );
    }

    /// Asserts the invariants after a run (see the module doc).
    pub(crate) fn check(&self) {
        let seed = self.seed;
        let context = || {
            format!(
                "seed {seed} (replay: WASMRAY_SIM_SEED={seed} cargo test -p wasmray-sched sim::)\n{}",
                self.trace_tail()
            )
        };
        assert!(
            self.drivers_done(),
            "a driver never finished (a get neither resolved nor failed)\n{}",
            context()
        );
        for ((task, attempt), runs) in &self.runs {
            assert!(
                *runs <= 1,
                "{task:?} attempt {attempt} ran {runs} times\n{}",
                context()
            );
        }
        assert!(
            self.ran_while_draining.is_empty(),
            "work started on a node that knew it drained: {:?}\n{}",
            self.ran_while_draining,
            context()
        );
        for (id, sim) in &self.nodes {
            assert!(
                sim.sched.objects.over_released.is_empty(),
                "node {id} released references it did not hold: {:?}\n{}",
                sim.sched.objects.over_released,
                context()
            );
            for (task, settled) in &sim.sched.settled {
                // Once, and once more per run that made its lost results again.
                let rebuilds = sim.sched.rebuilds.get(task).copied().unwrap_or(0);
                assert!(
                    *settled <= 1 + rebuilds,
                    "node {id} settled {task:?} {settled} times ({rebuilds} rebuilds)\n{}",
                    context()
                );
            }
            if !sim.alive {
                continue;
            }
            assert!(
                sim.sched.fetching.is_empty(),
                "node {id} has fetches unanswered: {:?}\n{}",
                sim.sched.fetching,
                context()
            );
            let stats = sim.sched.stats();
            assert_eq!(
                stats.lineage,
                0,
                "node {id} kept lineage of results all freed\n{}",
                context()
            );
            assert_eq!(
                stats.objects,
                0,
                "node {id} leaked objects: {:?}\n{}",
                sim.sched.object_listing(),
                context()
            );
            assert_eq!(
                stats.waiting + stats.ready + stats.running + stats.blocked + stats.leased_out,
                0,
                "node {id} has tasks left: {stats:?}\n{}",
                context()
            );
            assert!(
                sim.sched.actors.entries.is_empty(),
                "node {id} keeps actor entries: {:?}\n{}",
                sim.sched.actors.entries.keys().collect::<Vec<_>>(),
                context()
            );
            assert!(
                sim.sched.links.unacked_messages().all(is_heartbeat),
                "node {id} has messages unacknowledged at {}: {:?}\n{}",
                self.now,
                sim.sched.links.unacked_detail(),
                context()
            );
            assert_eq!(
                sim.sched.available(),
                sim.sched.total(),
                "node {id} did not get its resources back\n{}",
                context()
            );
        }
        if !self.killed {
            assert_eq!(
                self.empty_pulls,
                0,
                "a pull found a copy freed while referenced\n{}",
                context()
            );
        }
    }
}

/// A script's arguments as a spec's, in the driver's node: a value holding a handle counts
/// the reference inside it.
fn spec_args(
    driver: &Driver,
    sched: &mut Scheduler<SimValue>,
    now: Time,
    args: Vec<Arg>,
) -> Vec<ArgSpec<SimValue>> {
    let handle = |name: &str| {
        *driver
            .handles
            .get(name)
            .unwrap_or_else(|| panic!("script refers to unknown handle `{name}`"))
    };
    args.into_iter()
        .map(|arg| match arg {
            Arg::Ref(name) => ArgSpec::ByRef(handle(name)),
            Arg::Value(payload) => ArgSpec::Value(SimValue::new(payload, Vec::new(), 8)),
            Arg::Holding(name) => {
                let id = handle(name);
                sched.handle(now, Event::AddContained(id));
                ArgSpec::Value(SimValue::new(0, vec![id], 8))
            }
        })
        .collect()
}

/// The driver lets go of every handle it holds.
fn release_all(driver: &mut Driver, sched: &mut Scheduler<SimValue>, now: Time) {
    for (_, object) in std::mem::take(&mut driver.handles) {
        sched.handle(now, Event::Release(object));
    }
}

/// Removes and returns the item due first (ties in the order they were added).
fn take_earliest<T>(items: &mut Vec<(Time, u64, T)>) -> Option<T> {
    let at = items
        .iter()
        .enumerate()
        .min_by_key(|(_, (t, seq, _))| (*t, *seq))
        .map(|(i, _)| i)?;
    Some(items.remove(at).2)
}

/// A plain task's spec in the simulation.
fn plain_spec(
    task: TaskId,
    function: &str,
    args: Vec<ArgSpec<SimValue>>,
    needs: &[(&str, f64)],
    submitter: TaskId,
) -> TaskSpec<SimValue> {
    TaskSpec {
        id: task,
        kind: TaskKind::Task,
        job: JobId(1),
        module: ModuleId([0; 32]),
        function: function.to_owned(),
        args,
        num_returns: 1,
        resources: ResourceSet::from_pairs(needs.iter().copied()).expect("valid"),
        max_calls: 0,
        max_retries: 3,
        retry_exceptions: false,
        memory_limit: None,
        cpu_time_limit_ms: None,
        lineage: Lineage::root("main").child(function),
        submitter,
        driver: NodeId(0),
    }
}

/// A `Counter::push(payload)` call on the actor whose handle object is `handle`.
fn method_spec(
    task: TaskId,
    handle: ObjectId,
    payload: u64,
    submitter: TaskId,
) -> TaskSpec<SimValue> {
    let mut spec = plain_spec(
        task,
        "Counter::push",
        vec![ArgSpec::Value(SimValue::new(payload, Vec::new(), 8))],
        &[],
        submitter,
    );
    spec.kind = TaskKind::ActorMethod {
        actor: wasmray_core::ActorId(handle.task),
    };
    spec.max_retries = 0;
    spec
}

/// Whether a message only says "alive, with these resources" (sent forever, so never
/// waited for).
fn is_heartbeat(message: &Message<SimValue>) -> bool {
    matches!(message, Message::Report { .. } | Message::View { .. })
}

/// The identifying part of a message, for traces.
fn brief(message: &Message<SimValue>) -> String {
    match message {
        Message::Lease { spec, attempt } => {
            format!("{} {:?} attempt {attempt}", spec.function, spec.id)
        }
        Message::Rejected { task, .. }
        | Message::Done { task, .. }
        | Message::Stop { task, .. } => {
            format!("{task:?}")
        }
        Message::Subscribe { object }
        | Message::Status { object, .. }
        | Message::Pull { object }
        | Message::Pulled { object, .. }
        | Message::Offered { object, .. }
        | Message::Holding { object }
        | Message::Free { object } => format!("{object:?}"),
        Message::Lend { object, to } => format!("{object:?} to {to}"),
        Message::Release { object, grants } => format!("{object:?} x{grants}"),
        Message::View { node, .. } | Message::NodeDied { node } => format!("{node}"),
        _ => String::new(),
    }
}
