//! The task cases of Ray's `ray_perf.py`, and `small_value`, the trivial task every case that
//! submits tasks calls (`return b"ok"`).
//!
//! | case | Ray | here | multiplier |
//! |---|---|---|---|
//! | single client tasks and get batch | 1000 `small_value.remote()`, then one `ray.get` of the list | the same with `get_all` | 1 |
//! | single client wait 1k refs | 1000 tasks, then 1000 `ray.wait(not_ready)` (1 ready each) | `wait(&not_ready, 1, None)` | 1 |
//! | single client tasks sync | `ray.get(small_value.remote())` | the same | 1 |
//! | single client tasks async | 1000 tasks, then `ray.get` of all | the same | 1000 |
//! | multi client tasks async | 4 `Actor`s each run `small_value_batch(10000)` (10,000 tasks, then get them) | the same | 40000 |
//!
//! Ray's "wait 1k refs" passes `fetch_local=True` on the first `wait` only, to pull objects to
//! the caller's node; on wasmray's single node every object is local, so there is nothing to
//! pass. "tasks and get batch" has no multiplier in Ray either: it counts batches, not tasks.
//!
//! `small_value` returns `b"ok"` as a `Vec<u8>` (postcard: a length byte and two bytes), the
//! nearest thing to Python's `bytes`; every case discards it. Like Ray's, the tasks take the
//! default one CPU each, so at most the node's `CPU` count run at once, and a caller blocked in
//! `get`/`wait` gives its CPU back meanwhile. The actors that submit in "multi client tasks
//! async" hold no CPU (Ray's `num_cpus=0`, wasmray's default for actors), so they never keep
//! their own tasks from running.
//!
//! This file holds no object or actor cases (`objects.rs`, `actors.rs`); the `Actor` class of
//! "multi client tasks async" lives in `actors.rs`.

use crate::actors::Actor;
use crate::timeit::Bench;

/// Tasks per batch in the batch, wait and async cases.
const BATCH: u32 = 1000;
/// Tasks each actor submits in "multi client tasks async" (Ray's `n`).
const MULTI_TASKS: u32 = 10_000;
/// Actors submitting in "multi client tasks async" (Ray's `m`).
const MULTI_CLIENTS: u32 = 4;

/// Ray's `small_value`: a task that returns `b"ok"`.
#[wasmray::remote]
pub fn small_value() -> Vec<u8> {
    b"ok".to_vec()
}

/// One `small_value` task: on a node with the pinned resource when the run pins its work
/// (`pin=RESOURCE`, for the cluster comparison), anywhere otherwise.
pub fn small_value_task() -> wasmray::ObjectRef<Vec<u8>> {
    match crate::pinned() {
        Some(resource) => small_value::options().resource(resource, 0.001).remote(),
        None => small_value::remote(),
    }
}

/// Submits `count` `small_value` tasks and gets them all.
pub fn small_value_batch(count: u32) -> Result<(), wasmray::TaskError> {
    let submitted: Vec<_> = (0..count).map(|_| small_value_task()).collect();
    wasmray::get_all(&submitted).map(drop)
}

/// "single client tasks and get batch": 1000 tasks, then one get of the list; counts batches.
pub fn tasks_and_get_batch(bench: &mut Bench) {
    bench.timeit("single client tasks and get batch", 1.0, || {
        small_value_batch(BATCH)
    });
}

/// "single client wait 1k refs": submits 1000 tasks, then waits them out one `wait` at a time
/// (each returns as soon as one more is ready); counts rounds of 1000. Each `wait` hands the
/// host every ref still pending and gets the pending list back, as Ray's `ray.wait` does with
/// its Python list, so a round does work quadratic in 1000 in both systems: the case measures
/// that, not one task's latency.
pub fn wait_1k_refs(bench: &mut Bench) {
    bench.timeit("single client wait 1k refs", 1.0, || {
        let mut not_ready: Vec<_> = (0..BATCH).map(|_| small_value::remote()).collect();
        for _ in 0..BATCH {
            let (_ready, pending) = wasmray::wait(&not_ready, 1, None);
            not_ready = pending;
        }
        Ok(())
    });
}

/// "single client tasks sync": one task, waited for, at a time.
pub fn tasks_sync(bench: &mut Bench) {
    bench.timeit("single client tasks sync", 1.0, || {
        wasmray::get(&small_value_task()).map(drop)
    });
}

/// "single client tasks async": 1000 tasks, then get them all; counts tasks.
pub fn tasks_async(bench: &mut Bench) {
    bench.timeit("single client tasks async", f64::from(BATCH), || {
        small_value_batch(BATCH)
    });
}

/// "multi client tasks async": 4 actors each submit 10,000 tasks and get them; counts tasks.
pub fn multi_client_tasks_async(bench: &mut Bench) {
    const NAME: &str = "multi client tasks async";
    if !bench.selected(NAME) {
        return;
    }
    let actors: Vec<_> = (0..MULTI_CLIENTS).map(|_| Actor::remote()).collect();
    let multiplier = f64::from(MULTI_TASKS) * f64::from(MULTI_CLIENTS);
    bench.timeit(NAME, multiplier, || {
        let submitted: Vec<_> = actors
            .iter()
            .map(|actor| actor.small_value_batch(MULTI_TASKS).remote())
            .collect();
        wasmray::get_all(&submitted).map(drop)
    });
}
