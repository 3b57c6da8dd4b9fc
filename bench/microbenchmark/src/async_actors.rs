//! The async-actor cases of Ray's `ray_perf.py`, with its `AsyncActor` class mapped onto
//! wasmray.
//!
//! Ray's `AsyncActor` has `async def` methods and runs them on an asyncio event loop, up to
//! 1000 at once (Ray's default `max_concurrency` for async actors). wasmray has no async
//! methods; its equivalent is an actor with `max_concurrency > 1` whose methods all take
//! `&self`: a call blocked in `get`/`wait` lets the next one run in the same instance, as an
//! `await` yields the event loop. So `AsyncActor` here is `Actor`'s twin with
//! `max_concurrency = 1000` as its class default.
//!
//! | case | Ray | here | multiplier |
//! |---|---|---|---|
//! | 1:1 async-actor calls sync | `ray.get(a.small_value.remote())` | the same | 1 |
//! | 1:1 async-actor calls async | 1000 calls, then `ray.get` of all | the same | 1000 |
//! | 1:1 async-actor calls with args async | 1000 calls `small_value_with_arg(i)` | the same | 1000 |
//! | 1:n async-actor calls async | one `Client` calls each of `n_cpu` async actors 5000 times | `AsyncClient`, the same | 5000 × n_cpu |
//! | n:n async-actor calls async | 4 tasks each make 5000 calls spread over `n_cpu` async actors | the same | 20000 |
//!
//! Ray's `Client` takes any actor handles (Python is untyped); a wasmray handle is typed by its
//! class, so the 1:n case uses `AsyncClient`, `Client`'s twin over `AsyncActor`s.
//!
//! This file holds no plain-actor cases (`actors.rs`).

use crate::actors::{FAN_CALLS, FAN_TASKS, half_the_cpus};
use crate::tasks::small_value;
use crate::timeit::Bench;
use wasmray::ActorHandle;

/// Calls per batch in the 1:1 async cases.
const BATCH: u32 = 1000;

/// Ray's `AsyncActor`: `Actor` with async methods, here `&self` methods and
/// `max_concurrency = 1000` (Ray's default for async actors).
#[wasmray::actor]
pub struct AsyncActor {}

#[wasmray::actor(max_concurrency = 1000)]
impl AsyncActor {
    fn new() -> Self {
        AsyncActor {}
    }

    /// Returns `b"ok"`.
    pub fn small_value(&self) -> Vec<u8> {
        b"ok".to_vec()
    }

    /// Returns `b"ok"`, ignoring its argument.
    pub fn small_value_with_arg(&self, _x: u32) -> Vec<u8> {
        b"ok".to_vec()
    }

    /// Ray's `await asyncio.wait([small_value.remote() for _ in range(n)])`: submits `n` tasks
    /// and waits until all are done. No case calls it, in Ray either; it completes the class.
    pub fn small_value_batch(&self, n: u32) {
        let submitted: Vec<_> = (0..n).map(|_| small_value::remote()).collect();
        let (_done, pending) = wasmray::wait(&submitted, submitted.len(), None);
        assert!(
            pending.is_empty(),
            "AsyncActor::small_value_batch: a wait without timeout left {} tasks pending",
            pending.len()
        );
    }
}

/// Ray's `Client` over async actors: calls each of its servers `n` times, then gets them all.
#[wasmray::actor]
pub struct AsyncClient {
    servers: Vec<ActorHandle<AsyncActor>>,
}

#[wasmray::actor]
impl AsyncClient {
    fn new(servers: Vec<ActorHandle<AsyncActor>>) -> Self {
        AsyncClient { servers }
    }

    /// `n` calls of `small_value` on each server, then gets them all.
    pub fn small_value_batch(&self, n: u32) {
        let results: Vec<_> = self
            .servers
            .iter()
            .flat_map(|server| (0..n).map(|_| server.small_value().remote()))
            .collect();
        if let Err(error) = wasmray::get_all(&results) {
            panic!("AsyncClient::small_value_batch: a call failed: {error}");
        }
    }
}

/// Ray's `async_actor_work`: `n` calls spread round-robin over `actors`, then gets them all.
#[wasmray::remote]
fn async_actor_work(actors: Vec<ActorHandle<AsyncActor>>, n: u32) {
    let calls: Vec<_> = actors
        .iter()
        .cycle()
        .take(n as usize)
        .map(|actor| actor.small_value().remote())
        .collect();
    if let Err(error) = wasmray::get_all(&calls) {
        panic!("async_actor_work: an actor call failed: {error}");
    }
}

/// "1:1 async-actor calls sync": one call, waited for, at a time.
pub fn one_to_one_sync(bench: &mut Bench) {
    const NAME: &str = "1:1 async-actor calls sync";
    if !bench.selected(NAME) {
        return;
    }
    let a = AsyncActor::remote();
    bench.timeit(NAME, 1.0, || {
        wasmray::get(&a.small_value().remote()).map(drop)
    });
}

/// "1:1 async-actor calls async": 1000 calls, then get them all; counts calls.
pub fn one_to_one_async(bench: &mut Bench) {
    const NAME: &str = "1:1 async-actor calls async";
    if !bench.selected(NAME) {
        return;
    }
    let a = AsyncActor::remote();
    bench.timeit(NAME, f64::from(BATCH), || {
        let calls: Vec<_> = (0..BATCH).map(|_| a.small_value().remote()).collect();
        wasmray::get_all(&calls).map(drop)
    });
}

/// "1:1 async-actor calls with args async": 1000 calls passing `i`, then get them all.
pub fn one_to_one_with_args_async(bench: &mut Bench) {
    const NAME: &str = "1:1 async-actor calls with args async";
    if !bench.selected(NAME) {
        return;
    }
    let a = AsyncActor::remote();
    bench.timeit(NAME, f64::from(BATCH), || {
        let calls: Vec<_> = (0..BATCH)
            .map(|i| a.small_value_with_arg(i).remote())
            .collect();
        wasmray::get_all(&calls).map(drop)
    });
}

/// "1:n async-actor calls async": one client actor calls `n_cpu` async actors 5000 times each.
pub fn one_to_n_async(bench: &mut Bench) {
    const NAME: &str = "1:n async-actor calls async";
    if !bench.selected(NAME) {
        return;
    }
    let n_cpu = half_the_cpus();
    let actors: Vec<_> = (0..n_cpu).map(|_| AsyncActor::remote()).collect();
    let client = AsyncClient::remote(&actors);
    let multiplier = f64::from(FAN_CALLS) * f64::from(n_cpu);
    bench.timeit(NAME, multiplier, || {
        wasmray::get(&client.small_value_batch(FAN_CALLS).remote())
    });
}

/// "n:n async-actor calls async": 4 tasks each make 5000 calls spread over `n_cpu` async actors.
pub fn n_to_n_async(bench: &mut Bench) {
    const NAME: &str = "n:n async-actor calls async";
    if !bench.selected(NAME) {
        return;
    }
    let a: Vec<_> = (0..half_the_cpus()).map(|_| AsyncActor::remote()).collect();
    let multiplier = f64::from(FAN_TASKS) * f64::from(FAN_CALLS);
    bench.timeit(NAME, multiplier, || {
        let submitted: Vec<_> = (0..FAN_TASKS)
            .map(|_| async_actor_work::remote(&a, FAN_CALLS))
            .collect();
        wasmray::get_all(&submitted).map(drop)
    });
}
