//! The scheduler alone (`cargo bench -p wasmray-tests --bench scheduler`): the calls one
//! synchronous task costs it, as the node makes them, with no threads, wasm or clock around.
//!
//! - `sync_task_cycle`: submit a task with one return, look its result up (pending) and watch
//!   it, finish the task with a value, look the result up (ready), release it. This is the
//!   scheduler's share of `single client tasks sync`; unlike that case it is not dominated by
//!   thread wake-ups, so a few per cent of change in it is visible run to run.
//!
//! What it does not measure: locking, carrying out actions, instances, the guest.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use wasmray_core::{
    CPU, IdMint, JobId, Lineage, ModuleId, NodeId, ObjectId, ResourceSet, TaskId, TaskKind,
    TaskSpec,
};
use wasmray_sched::{Event, ObjectState, ObjectValue, Outcome, SchedConfig, Scheduler, Time};

/// A stored value as the scheduler sees one: a shared handle (here to its size), holding no
/// refs.
#[derive(Clone, Debug)]
struct Value(Arc<u64>);

impl ObjectValue for Value {
    fn contained(&self) -> &[ObjectId] {
        &[]
    }

    fn size(&self) -> u64 {
        *self.0
    }
}

fn spec(id: TaskId, resources: &ResourceSet) -> TaskSpec<Value> {
    TaskSpec {
        id,
        kind: TaskKind::Task,
        job: JobId(1),
        module: ModuleId([0; 32]),
        function: "small_value".into(),
        args: Vec::new(),
        num_returns: 1,
        resources: resources.clone(),
        max_calls: 0,
        max_retries: 3,
        retry_exceptions: false,
        memory_limit: None,
        cpu_time_limit_ms: None,
        lineage: Lineage::root("main"),
        submitter: id,
        driver: wasmray_core::NodeId(1),
    }
}

fn bench(c: &mut Criterion) {
    let node = NodeId(1);
    let total = ResourceSet::from_pairs([(CPU, 2.0)]).expect("valid resources");
    let one_cpu = ResourceSet::from_pairs([(CPU, 1.0)]).expect("valid resources");
    let mint = IdMint::new(node);
    let mut sched = Scheduler::new(SchedConfig::new(node, total), Time::ZERO);
    drop(sched.drain_actions());
    let now = Time::from_micros(1);
    c.bench_function("scheduler/sync_task_cycle", |b| {
        b.iter(|| {
            let task = mint.next_task();
            let result = task.return_object(1);
            sched.handle(now, Event::Submit(Arc::new(spec(task, &one_cpu))));
            let run = sched.drain_actions();
            assert_eq!(run.len(), 1, "the task runs at once");
            assert!(matches!(sched.object(result), Some(ObjectState::Pending)));
            sched.handle(now, Event::Watch(result));
            drop(sched.drain_actions());
            drop(run);
            let outcome = Outcome::Returned(vec![Value(Arc::new(8))]);
            sched.handle(now, Event::Finished { task, outcome });
            let sealed = sched.drain_actions();
            assert!(!sealed.is_empty(), "the watched result seals");
            black_box(sched.object(result));
            sched.handle(now, Event::Release(result));
            drop(sched.drain_actions());
        });
    });
    assert_eq!(sched.stats().objects, 0, "every result was freed");
}

criterion_group!(benches, bench);
criterion_main!(benches);
