//! Whole runs of the scheduler driven by hand: a simulated node where the test plays the part
//! of the instances, deciding when each task blocks, finishes or fails.

use crate::{Action, ObjectState, ObjectValue, Outcome, RunTask, SchedConfig, Scheduler, Time};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmray_core::{
    ArgSpec, CPU, ErrorKind, IdMint, JobId, Lineage, ModuleId, NodeId, ObjectId, ResourceSet,
    TaskError, TaskId, TaskKind, TaskSpec,
};

/// A stored value that counts how many are alive, so tests can see objects being freed.
#[derive(Debug, Clone)]
pub(crate) struct Value(Arc<Payload>);

#[derive(Debug)]
struct Payload {
    contained: Vec<ObjectId>,
    alive: Arc<AtomicUsize>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ObjectValue for Value {
    fn contained(&self) -> &[ObjectId] {
        &self.0.contained
    }

    fn size(&self) -> u64 {
        0
    }
}

/// A scheduler for node 7 (the node `Sim`'s IDs are minted for), alone in its cluster.
fn single(total: ResourceSet) -> Scheduler<Value> {
    Scheduler::new(SchedConfig::new(NodeId(7), total), Time::ZERO)
}

pub(crate) struct Sim {
    pub(crate) sched: Scheduler<Value>,
    pub(crate) mint: IdMint,
    pub(crate) alive: Arc<AtomicUsize>,
    pub(crate) running: Vec<RunTask<Value>>,
    pub(crate) log: Vec<Action<Value>>,
}

impl Sim {
    pub(crate) fn new(cpus: f64) -> Self {
        Self {
            sched: single(ResourceSet::from_pairs([(CPU, cpus)]).unwrap()),
            mint: IdMint::new(NodeId(7)),
            alive: Arc::new(AtomicUsize::new(0)),
            running: Vec::new(),
            log: Vec::new(),
        }
    }

    pub(crate) fn value(&self, contained: Vec<ObjectId>) -> Value {
        self.alive.fetch_add(1, Ordering::SeqCst);
        Value(Arc::new(Payload {
            contained,
            alive: Arc::clone(&self.alive),
        }))
    }

    pub(crate) fn spec(
        &self,
        function: &str,
        args: Vec<ArgSpec<Value>>,
        cpus: f64,
    ) -> TaskSpec<Value> {
        TaskSpec {
            id: self.mint.next_task(),
            kind: TaskKind::Task,
            job: JobId(1),
            module: ModuleId([0; 32]),
            function: function.into(),
            args,
            num_returns: 1,
            resources: ResourceSet::from_pairs([(CPU, cpus)]).unwrap(),
            max_calls: 0,
            max_retries: 3,
            retry_exceptions: false,
            memory_limit: None,
            cpu_time_limit_ms: None,
            lineage: Lineage::root("main").child(function),
            submitter: TaskId(0),
            driver: NodeId(0),
        }
    }

    pub(crate) fn submit(&mut self, spec: TaskSpec<Value>) -> ObjectId {
        let id = spec.id.return_object(1);
        self.sched.submit(spec);
        self.pump();
        id
    }

    pub(crate) fn pump(&mut self) {
        for action in self.sched.drain_actions() {
            match action {
                Action::Run(run) => self.running.push(run),
                other => self.log.push(other),
            }
        }
    }

    pub(crate) fn running_functions(&self) -> Vec<&str> {
        self.running
            .iter()
            .map(|r| r.spec.function.as_str())
            .collect()
    }

    pub(crate) fn take_running(&mut self, function: &str) -> RunTask<Value> {
        let at = self
            .running
            .iter()
            .position(|r| r.spec.function == function)
            .expect("task is running");
        self.running.remove(at)
    }

    pub(crate) fn finish(&mut self, function: &str, contained: Vec<ObjectId>) -> TaskId {
        let run = self.take_running(function);
        let value = self.value(contained);
        self.sched
            .task_finished(run.spec.id, Outcome::Returned(vec![value]));
        self.pump();
        run.spec.id
    }

    pub(crate) fn fail(&mut self, function: &str, system: bool) {
        let run = self.take_running(function);
        let error = TaskError {
            kind: if system {
                ErrorKind::System
            } else {
                ErrorKind::Panic
            },
            function: function.into(),
            message: "boom".into(),
            backtrace: None,
            task_chain: vec![function.into()],
            cause: None,
        };
        self.sched
            .task_finished(run.spec.id, Outcome::Failed { error, system });
        self.pump();
    }

    /// The object's error, read as a `get` would (which counts as handling it).
    pub(crate) fn error_of(&mut self, id: ObjectId) -> Arc<TaskError> {
        self.sched.handle(Time::ZERO, crate::Event::ErrorSeen(id));
        match self.sched.object(id) {
            Some(ObjectState::Failed(error)) => error,
            other => panic!("expected a failed object, got {other:?}"),
        }
    }
}

#[test]
fn a_chained_task_waits_for_its_argument() {
    let mut sim = Sim::new(2.0);
    let a = sim.submit(sim.spec("f", vec![], 1.0));
    let spec = sim.spec("g", vec![ArgSpec::ByRef(a)], 1.0);
    let b = sim.submit(spec);
    assert_eq!(sim.running_functions(), ["f"]);
    sim.finish("f", vec![]);
    assert_eq!(sim.running_functions(), ["g"]);
    assert_eq!(sim.running[0].args.len(), 1);
    sim.finish("g", vec![]);
    assert!(matches!(sim.sched.object(b), Some(ObjectState::Ready(_))));
}

#[test]
fn tasks_beyond_the_cpus_wait_their_turn() {
    let mut sim = Sim::new(2.0);
    for name in ["a", "b", "c"] {
        let spec = sim.spec(name, vec![], 1.0);
        sim.submit(spec);
    }
    assert_eq!(sim.running_functions(), ["a", "b"]);
    sim.finish("a", vec![]);
    assert_eq!(sim.running_functions(), ["b", "c"]);
    assert_eq!(sim.sched.available().get(CPU), 0.0);
}

#[test]
fn a_blocked_task_gives_its_cpu_back_so_nesting_never_deadlocks() {
    let mut sim = Sim::new(2.0);
    let depth = 1000;
    let spec = sim.spec("level", vec![], 1.0);
    sim.submit(spec);
    for _ in 1..depth {
        let parent = sim.running.last().expect("a level runs").spec.id;
        sim.sched.task_blocked(parent);
        let spec = sim.spec("level", vec![], 1.0);
        sim.submit(spec);
        assert_eq!(
            sim.running.len(),
            sim.sched.stats().running + sim.sched.stats().blocked
        );
    }
    assert_eq!(sim.sched.stats().blocked, depth - 1);
    // Unwind: the innermost finishes, its parent unblocks and finishes, and so on.
    while let Some(run) = sim.running.pop() {
        sim.sched.task_unblocked(run.spec.id);
        let value = sim.value(vec![]);
        sim.sched
            .task_finished(run.spec.id, Outcome::Returned(vec![value]));
        sim.pump();
    }
    assert_eq!(sim.sched.available().get(CPU), 2.0);
}

#[test]
fn a_failure_propagates_wrapped_to_every_dependent() {
    let mut sim = Sim::new(1.0);
    let a = sim.submit(sim.spec("f", vec![], 1.0));
    let spec = sim.spec("g", vec![ArgSpec::ByRef(a)], 1.0);
    let b = sim.submit(spec);
    let spec = sim.spec("h", vec![ArgSpec::ByRef(b)], 1.0);
    let c = sim.submit(spec);
    sim.fail("f", false);
    assert!(sim.running.is_empty(), "dependents never run");
    let error = sim.error_of(c);
    assert_eq!(error.kind, ErrorKind::DependencyFailed);
    assert_eq!(error.function, "h");
    assert_eq!(error.root_cause().function, "f");
    assert_eq!(error.root_cause().message, "boom");
    assert_eq!(
        sim.error_of(b)
            .cause
            .as_deref()
            .map(|e| e.function.as_str()),
        Some("f")
    );
    // A task submitted after the failure fails at once too.
    let spec = sim.spec("late", vec![ArgSpec::ByRef(a)], 1.0);
    let d = sim.submit(spec);
    assert_eq!(sim.error_of(d).kind, ErrorKind::DependencyFailed);
}

#[test]
fn a_task_that_can_never_fit_is_infeasible() {
    let mut sim = Sim::new(2.0);
    let mut spec = sim.spec("big", vec![], 4.0);
    spec.resources.insert("unobtainium", 1.0).unwrap();
    let id = sim.submit(spec);
    let error = sim.error_of(id);
    assert_eq!(error.kind, ErrorKind::Infeasible);
    assert!(
        error.message.contains("short of: CPU, unobtainium"),
        "{}",
        error.message
    );
    assert_eq!(sim.sched.available().get(CPU), 2.0);
}

#[test]
fn system_failures_retry_and_guest_failures_do_not_by_default() {
    let mut sim = Sim::new(1.0);
    let a = sim.submit(sim.spec("flaky", vec![], 1.0));
    for _ in 0..3 {
        sim.fail("flaky", true);
        assert_eq!(sim.running_functions(), ["flaky"], "retried");
    }
    sim.fail("flaky", true);
    assert_eq!(sim.error_of(a).kind, ErrorKind::System);
    let retries = sim
        .log
        .iter()
        .filter(|a| matches!(a, Action::Retry { .. }))
        .count();
    assert_eq!(retries, 3);

    let b = sim.submit(sim.spec("buggy", vec![], 1.0));
    sim.fail("buggy", false);
    assert_eq!(sim.error_of(b).kind, ErrorKind::Panic);

    let mut spec = sim.spec("buggy", vec![], 1.0);
    spec.retry_exceptions = true;
    spec.max_retries = 1;
    let c = sim.submit(spec);
    sim.fail("buggy", false);
    sim.finish("buggy", vec![]);
    assert!(matches!(sim.sched.object(c), Some(ObjectState::Ready(_))));
}

#[test]
fn objects_are_freed_with_their_last_reference_including_nested_ones() {
    let mut sim = Sim::new(1.0);
    let driver = sim.mint.next_task();
    let inner = driver.put_object(0);
    let outer = driver.put_object(1);
    let value = sim.value(vec![]);
    assert!(sim.sched.put(inner, value));
    // The node counts a value's inner refs when it creates the value.
    assert!(sim.sched.add_contained_ref(inner));
    let value = sim.value(vec![inner]);
    assert!(sim.sched.put(outer, value));
    assert_eq!(sim.alive.load(Ordering::SeqCst), 2);
    sim.sched.release(inner);
    assert_eq!(
        sim.alive.load(Ordering::SeqCst),
        2,
        "outer still holds inner"
    );
    sim.sched.release(outer);
    assert_eq!(sim.alive.load(Ordering::SeqCst), 0);
    assert_eq!(sim.sched.stats().objects, 0);
}

#[test]
fn a_result_nobody_references_is_freed_as_soon_as_it_is_sealed() {
    let mut sim = Sim::new(1.0);
    let a = sim.submit(sim.spec("f", vec![], 1.0));
    sim.sched.release(a);
    assert_eq!(
        sim.sched.stats().objects,
        1,
        "pending objects stay until sealed"
    );
    sim.finish("f", vec![]);
    assert_eq!(sim.sched.stats().objects, 0);
    assert_eq!(sim.alive.load(Ordering::SeqCst), 0);
}

#[test]
fn arguments_live_until_the_task_is_done() {
    let mut sim = Sim::new(1.0);
    let driver = sim.mint.next_task();
    let arg = driver.put_object(0);
    let value = sim.value(vec![]);
    sim.sched.put(arg, value);
    let spec = sim.spec("f", vec![ArgSpec::ByRef(arg)], 1.0);
    sim.submit(spec);
    sim.sched.release(arg);
    assert_eq!(sim.alive.load(Ordering::SeqCst), 1);
    sim.finish("f", vec![]);
    assert_eq!(
        sim.alive.load(Ordering::SeqCst),
        1,
        "only f's result is alive"
    );
}

#[test]
fn a_dropped_error_nobody_read_is_reported_and_a_read_one_is_not() {
    let mut sim = Sim::new(1.0);
    let a = sim.submit(sim.spec("f", vec![], 1.0));
    let b = sim.submit(sim.spec("f", vec![], 1.0));
    sim.fail("f", false);
    sim.fail("f", false);
    sim.error_of(b);
    sim.sched.release(a);
    sim.sched.release(b);
    sim.pump();
    let unhandled = sim
        .log
        .iter()
        .filter(|a| matches!(a, Action::UnhandledError(_)))
        .count();
    assert_eq!(unhandled, 1);
}

#[test]
fn a_watched_object_reports_its_seal() {
    let mut sim = Sim::new(1.0);
    let a = sim.submit(sim.spec("f", vec![], 1.0));
    sim.sched.watch(a);
    sim.finish("f", vec![]);
    assert!(
        sim.log
            .iter()
            .any(|action| matches!(action, Action::Sealed(id) if *id == a))
    );
}

#[test]
fn concurrent_gpu_tasks_hold_distinct_gpu_ids_and_free_ones_are_reused() {
    let mut sim = Sim::new(4.0);
    sim.sched = single(ResourceSet::from_pairs([(CPU, 4.0), (wasmray_core::GPU, 2.0)]).unwrap());
    let gpu_task = |sim: &Sim, name: &str, gpus: f64| {
        let mut spec = sim.spec(name, vec![], 1.0);
        spec.resources = ResourceSet::from_pairs([(CPU, 1.0), (wasmray_core::GPU, gpus)]).unwrap();
        spec
    };
    for name in ["a", "b", "c"] {
        let spec = gpu_task(&sim, name, 1.0);
        sim.submit(spec);
    }
    assert_eq!(sim.running_functions(), ["a", "b"], "two GPUs, two tasks");
    let ids: Vec<Vec<u32>> = sim.running.iter().map(|r| r.gpu_ids.clone()).collect();
    assert_eq!(ids, [vec![0], vec![1]]);
    sim.finish("a", vec![]);
    assert_eq!(sim.running_functions(), ["b", "c"]);
    assert_eq!(sim.running[1].gpu_ids, [0], "a's GPU went to c");
    let cpu_only = sim.spec("d", vec![], 1.0);
    sim.submit(cpu_only);
    assert_eq!(sim.running[2].gpu_ids, Vec::<u32>::new());
}

#[test]
fn cancel_fails_queued_tasks_stops_running_ones_and_reaches_their_children() {
    let mut sim = Sim::new(1.0);
    let running = sim.submit(sim.spec("running", vec![], 1.0));
    let queued = sim.submit(sim.spec("queued", vec![], 1.0));
    let dependent = sim.submit(sim.spec("dependent", vec![ArgSpec::ByRef(queued)], 1.0));
    assert!(sim.sched.cancel(queued, false));
    assert_eq!(sim.error_of(queued).kind, ErrorKind::Cancelled);
    let wrapped = sim.error_of(dependent);
    assert_eq!(wrapped.kind, ErrorKind::DependencyFailed);
    assert_eq!(wrapped.root_cause().kind, ErrorKind::Cancelled);
    assert!(!sim.sched.cancel(queued, false), "already gone");

    // The running task submitted a child, which is still queued behind it.
    let parent = sim.running[0].spec.id;
    let mut child = sim.spec("child", vec![], 1.0);
    child.submitter = parent;
    let child = sim.submit(child);
    assert!(sim.sched.cancel(running, true));
    sim.pump();
    assert!(
        sim.log
            .iter()
            .any(|a| matches!(a, Action::StopTask(t) if *t == parent)),
        "the running task is stopped"
    );
    assert_eq!(sim.error_of(child).kind, ErrorKind::Cancelled);
    // Its instance stops and reports a system failure: cancelled, not retried.
    sim.fail("running", true);
    assert_eq!(sim.error_of(running).kind, ErrorKind::Cancelled);
    assert!(sim.running.is_empty());
    let next = sim.submit(sim.spec("next", vec![], 1.0));
    assert_eq!(sim.running_functions(), ["next"], "its CPU came back");
    assert!(
        !sim.sched.cancel(next.task.put_object(0), false),
        "a put: nothing to cancel"
    );
}
