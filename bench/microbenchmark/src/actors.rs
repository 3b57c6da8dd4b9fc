//! The actor cases of Ray's `ray_perf.py` with its plain (non-async) classes `Actor` and
//! `Client`, and Ray's `n_cpu` (half the cores) that the 1:n and n:n cases size themselves by.
//!
//! | case | Ray | here | multiplier |
//! |---|---|---|---|
//! | 1:1 actor calls sync | `ray.get(a.small_value.remote())` | the same | 1 |
//! | 1:1 actor calls async | 1000 calls, then `ray.get` of all | the same | 1000 |
//! | 1:1 actor calls concurrent | the same on `Actor.options(max_concurrency=16)` | `Actor::options().max_concurrency(16)` | 1000 |
//! | 1:n actor calls async | one `Client` actor calls each of `n_cpu` actors 5000 times, then gets all | the same | 5000 × n_cpu |
//! | n:n actor calls async | 4 tasks each make 5000 calls spread over `n_cpu` actors | the same | 20000 |
//! | n:n actor calls with arg async | `n_cpu` clients, one actor each, 1000 calls each passing a `ray.put(0)` ref | the same | 1000 × n_cpu |
//!
//! Ray declares `Actor` and `Client` with `num_cpus=0`, wasmray's default for actors. Every
//! method here takes `&self` (Ray's do not change state either), which is what lets one `Actor`
//! run with `max_concurrency` 16. Ray's `n_cpu` is `multiprocessing.cpu_count() // 2`; a guest
//! cannot count the machine's cores, so it is half the node's `CPU` resource (which `wasmray run`
//! sets to the machine's cores unless told otherwise), at least 1.
//!
//! This file holds no async-actor cases (`async_actors.rs`).

use crate::tasks::small_value_batch;
use crate::timeit::Bench;
use wasmray::ActorHandle;

/// Calls per batch in the 1:1 async and concurrent cases.
const BATCH: u32 = 1000;
/// Calls per client in "1:n actor calls async" and per task in "n:n actor calls async"
/// (Ray's `n = 5000`); also used by the async-actor versions.
pub const FAN_CALLS: u32 = 5000;
/// Calling tasks in "n:n actor calls async" (Ray's `m = 4`).
pub const FAN_TASKS: u32 = 4;
/// Calls per client in "n:n actor calls with arg async" (Ray's `n = 1000`).
const ARG_CALLS: u32 = 1000;
/// `max_concurrency` of the actor in "1:1 actor calls concurrent", as Ray's.
const CONCURRENT: u32 = 16;

/// Ray's `n_cpu = multiprocessing.cpu_count() // 2`, from the node's `CPU` resource, at least 1.
pub fn half_the_cpus() -> u32 {
    let cpus = wasmray::cluster_resources()
        .get("CPU")
        .copied()
        .unwrap_or(1.0);
    // A float-to-int `as` saturates: a huge or NaN count cannot wrap around.
    ((cpus / 2.0).floor() as u32).max(1)
}

/// Ray's `Actor`: answers `b"ok"`, with or without an argument, or runs a batch of tasks.
#[wasmray::actor]
pub struct Actor {}

#[wasmray::actor]
impl Actor {
    fn new() -> Self {
        Actor {}
    }

    /// Returns `b"ok"`.
    pub fn small_value(&self) -> Vec<u8> {
        b"ok".to_vec()
    }

    /// Returns `b"ok"`, ignoring its argument.
    pub fn small_value_arg(&self, _x: i64) -> Vec<u8> {
        b"ok".to_vec()
    }

    /// Submits `n` `small_value` tasks and gets them all.
    pub fn small_value_batch(&self, n: u32) {
        if let Err(error) = small_value_batch(n) {
            panic!("Actor::small_value_batch: a small_value task failed: {error}");
        }
    }
}

/// Ray's `Client`: calls each of its servers `n` times, then gets all the results.
#[wasmray::actor]
pub struct Client {
    servers: Vec<ActorHandle<Actor>>,
}

#[wasmray::actor]
impl Client {
    fn new(servers: Vec<ActorHandle<Actor>>) -> Self {
        Client { servers }
    }

    /// `n` calls of `small_value` on each server, then gets them all.
    pub fn small_value_batch(&self, n: u32) {
        let results: Vec<_> = self
            .servers
            .iter()
            .flat_map(|server| (0..n).map(|_| server.small_value().remote()))
            .collect();
        if let Err(error) = wasmray::get_all(&results) {
            panic!("Client::small_value_batch: a call failed: {error}");
        }
    }

    /// `n` calls of `small_value_arg` on each server, all passing one `put(0)` by ref, then
    /// gets them all.
    pub fn small_value_batch_arg(&self, n: u32) {
        let x = wasmray::put(&0i64);
        let results: Vec<_> = self
            .servers
            .iter()
            .flat_map(|server| (0..n).map(|_| server.small_value_arg(&x).remote()))
            .collect();
        if let Err(error) = wasmray::get_all(&results) {
            panic!("Client::small_value_batch_arg: a call failed: {error}");
        }
    }
}

/// Ray's `work`: `n` calls spread round-robin over `actors`, then gets them all.
#[wasmray::remote]
fn work(actors: Vec<ActorHandle<Actor>>, n: u32) {
    let calls: Vec<_> = actors
        .iter()
        .cycle()
        .take(n as usize)
        .map(|actor| actor.small_value().remote())
        .collect();
    if let Err(error) = wasmray::get_all(&calls) {
        panic!("work: an actor call failed: {error}");
    }
}

/// Gets `count` calls of `small_value` on `actor`.
fn call_batch(actor: &ActorHandle<Actor>, count: u32) -> Result<(), wasmray::TaskError> {
    let calls: Vec<_> = (0..count).map(|_| actor.small_value().remote()).collect();
    wasmray::get_all(&calls).map(drop)
}

/// "1:1 actor calls sync": one call, waited for, at a time.
pub fn one_to_one_sync(bench: &mut Bench) {
    const NAME: &str = "1:1 actor calls sync";
    if !bench.selected(NAME) {
        return;
    }
    let a = match crate::pinned() {
        Some(resource) => Actor::options().resource(resource, 0.001).remote(),
        None => Actor::remote(),
    };
    bench.timeit(NAME, 1.0, || {
        wasmray::get(&a.small_value().remote()).map(drop)
    });
}

/// "1:1 actor calls async": 1000 calls, then get them all; counts calls.
pub fn one_to_one_async(bench: &mut Bench) {
    const NAME: &str = "1:1 actor calls async";
    if !bench.selected(NAME) {
        return;
    }
    let a = match crate::pinned() {
        Some(resource) => Actor::options().resource(resource, 0.001).remote(),
        None => Actor::remote(),
    };
    bench.timeit(NAME, f64::from(BATCH), || call_batch(&a, BATCH));
}

/// "1:1 actor calls concurrent": as "async", on an actor with `max_concurrency` 16.
pub fn one_to_one_concurrent(bench: &mut Bench) {
    const NAME: &str = "1:1 actor calls concurrent";
    if !bench.selected(NAME) {
        return;
    }
    let a = Actor::options().max_concurrency(CONCURRENT).remote();
    bench.timeit(NAME, f64::from(BATCH), || call_batch(&a, BATCH));
}

/// "1:n actor calls async": one client actor calls `n_cpu` actors 5000 times each.
pub fn one_to_n_async(bench: &mut Bench) {
    const NAME: &str = "1:n actor calls async";
    if !bench.selected(NAME) {
        return;
    }
    let n_cpu = half_the_cpus();
    let actors: Vec<_> = (0..n_cpu).map(|_| Actor::remote()).collect();
    let client = Client::remote(&actors);
    let multiplier = f64::from(FAN_CALLS) * f64::from(n_cpu);
    bench.timeit(NAME, multiplier, || {
        wasmray::get(&client.small_value_batch(FAN_CALLS).remote())
    });
}

/// "n:n actor calls async": 4 tasks each make 5000 calls spread over `n_cpu` actors.
pub fn n_to_n_async(bench: &mut Bench) {
    const NAME: &str = "n:n actor calls async";
    if !bench.selected(NAME) {
        return;
    }
    let a: Vec<_> = (0..half_the_cpus()).map(|_| Actor::remote()).collect();
    let multiplier = f64::from(FAN_TASKS) * f64::from(FAN_CALLS);
    bench.timeit(NAME, multiplier, || {
        let submitted: Vec<_> = (0..FAN_TASKS)
            .map(|_| work::remote(&a, FAN_CALLS))
            .collect();
        wasmray::get_all(&submitted).map(drop)
    });
}

/// "n:n actor calls with arg async": `n_cpu` clients, each with its own actor, make 1000
/// calls each, passing a put ref as the argument.
pub fn n_to_n_with_arg_async(bench: &mut Bench) {
    const NAME: &str = "n:n actor calls with arg async";
    if !bench.selected(NAME) {
        return;
    }
    let n_cpu = half_the_cpus();
    let clients: Vec<_> = (0..n_cpu)
        .map(|_| Client::remote(vec![Actor::remote()]))
        .collect();
    let multiplier = f64::from(ARG_CALLS) * f64::from(n_cpu);
    bench.timeit(NAME, multiplier, || {
        let submitted: Vec<_> = clients
            .iter()
            .map(|client| client.small_value_batch_arg(ARG_CALLS).remote())
            .collect();
        wasmray::get_all(&submitted).map(drop)
    });
}
