//! Actors driven through the scheduler by hand: ordering, concurrency, restarts, kill,
//! names, detached actors and handle lifetimes, on a simulated node.

use crate::tests::{Sim, Value};
use crate::{Action, Envelope, Event, HeadRequest, Message, ObjectState, Outcome, Peer, Time};
use std::sync::Arc;
use wasmray_core::{
    ActorId, ActorName, ActorSpec, ArgSpec, CPU, ErrorKind, IdMint, JobId, NodeId, ObjectId,
    ResourceSet, TaskError, TaskKind,
};

fn actor_spec(name: Option<&str>) -> ActorSpec {
    ActorSpec {
        class: "Counter".into(),
        max_restarts: 0,
        max_task_retries: 0,
        max_concurrency: 1,
        detached: false,
        name: name.map(|n| ActorName {
            namespace: "ns".into(),
            name: n.into(),
        }),
    }
}

impl Sim {
    fn create(&mut self, actor: ActorSpec, cpus: f64) -> ActorId {
        let mut spec = self.spec("Counter", vec![], 0.0);
        spec.num_returns = 0;
        spec.resources = ResourceSet::from_pairs([(CPU, cpus)]).unwrap();
        spec.kind = TaskKind::ActorCreation(Arc::new(actor));
        let handle = self.value(vec![]);
        let id = ActorId(spec.id);
        self.sched.submit_actor(Arc::new(spec), handle);
        self.pump();
        id
    }

    fn call(&mut self, actor: ActorId, method: &str, args: Vec<ArgSpec<Value>>) -> ObjectId {
        let mut spec = self.spec(method, args, 0.0);
        spec.resources = ResourceSet::new();
        // The node gives a call its actor's `max_task_retries` unless the call says otherwise.
        spec.max_retries = self
            .sched
            .actor_info(actor)
            .map_or(0, |info| info.spec.max_task_retries);
        spec.kind = TaskKind::ActorMethod { actor };
        self.submit(spec)
    }

    fn construct(&mut self) {
        let run = self.take_running("Counter");
        self.sched
            .task_finished(run.spec.id, Outcome::Returned(vec![]));
        self.pump();
    }

    fn lose_instance(&mut self, actor: ActorId) {
        for run in std::mem::take(&mut self.running) {
            let error = oom(&run.spec.function);
            self.sched.task_finished(
                run.spec.id,
                Outcome::Failed {
                    error,
                    system: true,
                },
            );
        }
        self.sched.actor_lost(actor, oom("Counter"));
        self.pump();
    }

    fn stopped(&self, actor: ActorId) -> bool {
        self.log
            .iter()
            .any(|a| matches!(a, Action::StopActor(id) if *id == actor))
    }
}

fn oom(function: &str) -> TaskError {
    TaskError {
        kind: ErrorKind::OutOfMemory,
        function: function.into(),
        message: "exceeded its memory limit".into(),
        backtrace: None,
        task_chain: vec![],
        cause: None,
    }
}

#[test]
fn calls_wait_for_the_constructor_then_run_one_at_a_time_in_order() {
    let mut sim = Sim::new(1.0);
    let actor = sim.create(actor_spec(None), 0.0);
    let first = sim.call(actor, "inc", vec![]);
    sim.call(actor, "get", vec![]);
    assert_eq!(sim.running_functions(), ["Counter"]);
    sim.construct();
    assert_eq!(sim.running_functions(), ["inc"]);
    sim.finish("inc", vec![]);
    assert_eq!(sim.running_functions(), ["get"]);
    assert!(matches!(
        sim.sched.object(first),
        Some(ObjectState::Ready(_))
    ));
}

#[test]
fn a_call_waiting_for_its_argument_holds_back_the_calls_behind_it() {
    let mut sim = Sim::new(1.0);
    let actor = sim.create(actor_spec(None), 0.0);
    sim.construct();
    let slow = sim.submit(sim.spec("slow", vec![], 1.0));
    sim.call(actor, "takes_slow", vec![ArgSpec::ByRef(slow)]);
    sim.call(actor, "after", vec![]);
    assert_eq!(
        sim.running_functions(),
        ["slow"],
        "`after` may not overtake `takes_slow`"
    );
    sim.finish("slow", vec![]);
    assert_eq!(sim.running_functions(), ["takes_slow"]);
    sim.finish("takes_slow", vec![]);
    assert_eq!(sim.running_functions(), ["after"]);
}

#[test]
fn max_concurrency_lets_that_many_calls_run_at_once() {
    let mut sim = Sim::new(1.0);
    let actor = sim.create(
        ActorSpec {
            max_concurrency: 2,
            ..actor_spec(None)
        },
        0.0,
    );
    sim.construct();
    for _ in 0..3 {
        sim.call(actor, "m", vec![]);
    }
    assert_eq!(sim.running_functions(), ["m", "m"]);
}

#[test]
fn a_lost_instance_retries_the_call_and_restarts_then_dies_with_the_cause() {
    let mut sim = Sim::new(1.0);
    let spec = ActorSpec {
        max_restarts: 1,
        max_task_retries: 1,
        ..actor_spec(None)
    };
    let actor = sim.create(spec, 0.0);
    sim.construct();
    let call = sim.call(actor, "hog", vec![]);
    let queued = sim.call(actor, "next", vec![]);
    sim.lose_instance(actor);
    assert_eq!(sim.running_functions(), ["Counter"], "re-created first");
    assert!(
        sim.log
            .iter()
            .any(|a| matches!(a, Action::Restart { attempt: 1, .. }))
    );
    sim.construct();
    assert_eq!(
        sim.running_functions(),
        ["hog"],
        "the interrupted call is retried ahead of the queue"
    );
    sim.lose_instance(actor);
    let error = sim.error_of(call);
    assert_eq!(
        error.kind,
        ErrorKind::OutOfMemory,
        "out of task retries: {error}"
    );
    let error = sim.error_of(queued);
    assert_eq!(error.kind, ErrorKind::ActorDied);
    assert_eq!(error.root_cause().kind, ErrorKind::OutOfMemory);
    let late = sim.call(actor, "late", vec![]);
    assert_eq!(sim.error_of(late).kind, ErrorKind::ActorDied);
}

#[test]
fn kill_fails_queued_calls_and_returns_the_actors_resources() {
    let mut sim = Sim::new(1.0);
    let actor = sim.create(actor_spec(None), 1.0);
    sim.construct();
    assert_eq!(
        sim.sched.available().get(CPU),
        0.0,
        "the actor holds its CPU"
    );
    sim.call(actor, "busy", vec![]);
    let queued = sim.call(actor, "queued", vec![]);
    sim.sched.kill_actor(actor, true);
    sim.pump();
    assert!(sim.stopped(actor));
    assert_eq!(sim.error_of(queued).kind, ErrorKind::ActorDied);
    assert_eq!(sim.sched.available().get(CPU), 1.0);
    // The call that was running ends as lost and fails too.
    let run = sim.take_running("busy");
    sim.sched.task_finished(
        run.spec.id,
        Outcome::Failed {
            error: oom("busy"),
            system: true,
        },
    );
    sim.pump();
    assert_eq!(
        sim.error_of(run.spec.id.return_object(1)).kind,
        ErrorKind::ActorDied
    );
}

#[test]
fn an_actor_whose_handles_are_gone_finishes_its_calls_then_dies() {
    let mut sim = Sim::new(1.0);
    let actor = sim.create(actor_spec(None), 1.0);
    sim.construct();
    sim.call(actor, "last", vec![]);
    sim.sched.release(actor.handle_object());
    sim.pump();
    assert!(!sim.stopped(actor), "a queued call still runs");
    sim.finish("last", vec![]);
    assert!(sim.stopped(actor));
    assert_eq!(sim.sched.live_actors(), 0);
    assert_eq!(sim.sched.available().get(CPU), 1.0);
    assert_eq!(
        sim.sched.stats().objects,
        1,
        "only the call's result is left"
    );
}

#[test]
fn a_dead_actor_gives_its_name_back_to_the_head() {
    let mut sim = Sim::new(1.0);
    let actor = sim.create(actor_spec(Some("keeper")), 0.0);
    sim.sched.kill_actor(actor, true);
    sim.pump();
    let released = sim.log.iter().any(|a| {
        matches!(a, Action::Send { to: Peer::Head, envelope }
            if matches!(&envelope.message, Some(Message::Ask {
                ask: HeadRequest::ReleaseName { name, actor: a }, ..
            }) if name.name == "keeper" && *a == actor.0))
    });
    assert!(released, "{:?}", sim.log);
}

#[test]
fn detached_actors_outlive_their_handles_and_their_job() {
    let mut sim = Sim::new(1.0);
    let detached = sim.create(
        ActorSpec {
            detached: true,
            ..actor_spec(Some("d"))
        },
        0.0,
    );
    let plain = sim.create(actor_spec(None), 0.0);
    sim.construct();
    sim.construct();
    sim.sched.release(detached.handle_object());
    sim.sched.job_finished(JobId(1));
    sim.pump();
    assert!(sim.stopped(plain));
    assert!(!sim.stopped(detached));
    assert_eq!(sim.sched.live_actors(), 1);
}

#[test]
fn a_failing_constructor_fails_every_call_with_its_cause() {
    let mut sim = Sim::new(1.0);
    let actor = sim.create(actor_spec(None), 0.0);
    let call = sim.call(actor, "inc", vec![]);
    sim.fail("Counter", false);
    let error = sim.error_of(call);
    assert_eq!(error.kind, ErrorKind::ActorDied);
    assert_eq!(error.root_cause().message, "boom");
}

#[test]
fn a_call_retried_after_panics_reruns_on_its_actor_but_not_once_the_actor_is_dead() {
    let mut sim = Sim::new(1.0);
    let actor = sim.create(actor_spec(None), 0.0);
    sim.construct();
    let panic = |function: &str| TaskError {
        kind: ErrorKind::Panic,
        function: function.into(),
        message: "boom".into(),
        backtrace: None,
        task_chain: vec![function.into()],
        cause: None,
    };
    let mut spec = sim.spec("flaky", vec![], 0.0);
    spec.resources = ResourceSet::new();
    spec.kind = TaskKind::ActorMethod { actor };
    spec.max_retries = 2;
    spec.retry_exceptions = true;
    let flaky = sim.submit(spec);
    let run = sim.take_running("flaky");
    let failed = |sim: &mut Sim, run: crate::RunTask<Value>| {
        sim.sched.task_finished(
            run.spec.id,
            Outcome::Failed {
                error: panic("flaky"),
                system: false,
            },
        );
        sim.pump();
    };
    failed(&mut sim, run);
    assert_eq!(
        sim.running_functions(),
        ["flaky"],
        "retried on the same actor"
    );
    let run = sim.take_running("flaky");
    sim.sched.kill_actor(actor, true);
    sim.pump();
    failed(&mut sim, run);
    assert!(sim.running.is_empty(), "not retried on a dead actor");
    assert!(
        matches!(sim.sched.object(flaky), Some(ObjectState::Failed(_))),
        "the call ended"
    );
}

#[test]
fn a_constructor_whose_argument_failed_releases_its_arguments_once() {
    let mut sim = Sim::new(2.0);
    let kept = sim.submit(sim.spec("kept", vec![], 1.0));
    sim.finish("kept", vec![]);
    let failing = sim.submit(sim.spec("fails", vec![], 1.0));
    let mut spec = sim.spec(
        "Counter",
        vec![ArgSpec::ByRef(kept), ArgSpec::ByRef(failing)],
        0.0,
    );
    spec.num_returns = 0;
    spec.resources = ResourceSet::new();
    spec.kind = TaskKind::ActorCreation(Arc::new(actor_spec(None)));
    let handle = sim.value(vec![]);
    sim.sched.submit_actor(Arc::new(spec), handle);
    sim.pump();
    sim.fail("fails", false);
    assert!(
        sim.sched.objects.over_released.is_empty(),
        "{:?}",
        sim.sched.objects.over_released
    );
    // The driver still holds `kept`: it is there.
    assert!(matches!(
        sim.sched.object(kept),
        Some(ObjectState::Ready(_))
    ));
}

/// Delivers `message` to the simulated node as the `seq`th on its link from `from`.
fn deliver(sim: &mut Sim, from: Peer, seq: u64, message: Message<Value>) {
    let envelope = Envelope {
        seq,
        ack: 0,
        message: Some(message),
    };
    sim.sched
        .handle(Time::ZERO, Event::Received { from, envelope });
    sim.pump();
}

/// The messages the simulated node sent to `to`, oldest first, taken from its log.
fn sent_to(sim: &mut Sim, to: Peer) -> Vec<Message<Value>> {
    let (sent, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut sim.log)
        .into_iter()
        .partition(|a| matches!(a, Action::Send { to: t, .. } if *t == to));
    sim.log = rest;
    sent.into_iter()
        .filter_map(|a| match a {
            Action::Send { envelope, .. } => envelope.message,
            _ => None,
        })
        .collect()
}

#[test]
fn an_owner_naming_a_host_this_node_knows_died_is_asked_again() {
    // Node 7 calls an actor node 1 owns. Node 1 answers that node 3 runs it, but its answer
    // comes after the head's word that node 3 died: the call must not go to the dead node
    // (it would wait there for ever), but back to the owner, which answers once it knows.
    let mut sim = Sim::new(1.0);
    let owner = IdMint::new(NodeId(1));
    let actor = ActorId(owner.next_task());
    let mut spec = sim.spec("Counter::push", vec![], 0.0);
    spec.resources = ResourceSet::new();
    spec.kind = TaskKind::ActorMethod { actor };
    let result = sim.submit(spec);
    let asked = sent_to(&mut sim, Peer::Node(NodeId(1)));
    assert!(
        matches!(asked[..], [Message::Locate { not_at: None, .. }]),
        "{asked:?}"
    );
    let dead = NodeId(3);
    deliver(&mut sim, Peer::Head, 1, Message::NodeDied { node: dead });
    let located = |host| Message::Located {
        actor,
        host: Ok(host),
        retries: 1,
    };
    deliver(&mut sim, Peer::Node(NodeId(1)), 1, located(dead));
    let asked = sent_to(&mut sim, Peer::Node(NodeId(1)));
    assert!(
        matches!(asked[..], [Message::Locate { not_at: Some(n), .. }] if n == dead),
        "{asked:?}"
    );
    let restarted = NodeId(4);
    deliver(&mut sim, Peer::Node(NodeId(1)), 2, located(restarted));
    let calls = sent_to(&mut sim, Peer::Node(restarted));
    assert!(
        matches!(&calls[..], [Message::Call { spec, .. }] if spec.id == result.task),
        "{calls:?}"
    );
}

#[test]
fn routes_no_call_uses_are_forgotten_when_a_job_ends() {
    // Node 7 called an actor node 1 owns; node 1 said it died. While a call uses that route
    // the route stays; once none does, a job's end forgets it, and the next call asks the
    // owner again.
    let mut sim = Sim::new(1.0);
    let owner = IdMint::new(NodeId(1));
    let actor = ActorId(owner.next_task());
    let call = |sim: &mut Sim| {
        let mut spec = sim.spec("Counter::push", vec![], 0.0);
        spec.resources = ResourceSet::new();
        spec.kind = TaskKind::ActorMethod { actor };
        sim.submit(spec)
    };
    let first = call(&mut sim);
    let second = call(&mut sim);
    sim.sched.handle(Time::ZERO, Event::JobFinished(JobId(2)));
    assert_eq!(sim.sched.actors.routes.len(), 1, "calls wait on the route");
    let asked = sent_to(&mut sim, Peer::Node(NodeId(1)));
    assert_eq!(asked.len(), 1, "one question for both calls: {asked:?}");
    let cause = Arc::new(oom("Counter"));
    let dead = Message::Located {
        actor,
        host: Err(cause),
        retries: 0,
    };
    deliver(&mut sim, Peer::Node(NodeId(1)), 1, dead);
    for result in [first, second] {
        assert_eq!(sim.error_of(result).kind, ErrorKind::ActorDied);
    }
    sim.sched.handle(Time::ZERO, Event::JobFinished(JobId(2)));
    assert!(sim.sched.actors.routes.is_empty());
    assert!(sim.sched.actors.retries.is_empty());
    call(&mut sim);
    let asked = sent_to(&mut sim, Peer::Node(NodeId(1)));
    assert!(
        matches!(asked[..], [Message::Locate { not_at: None, .. }]),
        "{asked:?}"
    );
}
