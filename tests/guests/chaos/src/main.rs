//! chaos: a job that keeps the cluster busy with work whose every result is known, for tests
//! that kill, cut off and replace nodes while it runs (Ray's `test_chaos.py`).
//!
//! It creates 20 `Squarer` actors (each needs 0.05 of the resource `worker`, so they spread
//! over the worker nodes; `max_restarts` and `max_task_retries` 1000), then runs rounds. A
//! round is a reduction tree over 1,024 leaves — 2,047 tasks, each `leaf(i)` returning `i`
//! and each `add(a, b)` taking two results by reference, all needing the resource `worker`
//! (so none runs on the driver's node or the head) with `max_retries(1000)` — and one call of
//! each actor, `square(x)`. Each round also makes `BIG` results of 128 KiB (`big(round, i)`),
//! too large to travel in a reply, so each stays in the store of the node that made it and is
//! lost with it (the owner makes it again from its lineage); the driver holds them through
//! the round and reads them last. The round checks the tree's sum (`1023 × 1024 / 2`), every
//! square and every big result's bytes exactly, and prints `round N ok`. Rounds go on until at least `ROUNDS` (first
//! argument, default 5) have run and a node offering the resource `done` is alive (the test
//! starts one when it has done its damage). It then prints
//! `chaos done: R rounds, T tasks, C actor calls, all exact` and exits 0; any wrong value or
//! error ends it with that error instead.

use std::time::Duration;
use wasmray::{ObjectRef, TaskError};

/// Leaves of one round's tree.
const LEAVES: u64 = 1024;
/// Actors the job keeps.
const ACTORS: u64 = 20;
/// Large results per round, and their size: above the 100 KiB a reply carries.
const BIG: u64 = 8;
const BIG_LEN: usize = 128 << 10;
/// Retries and restarts: nodes die many times over a run.
const PERSIST: u32 = 1000;

#[wasmray::remote]
fn leaf(i: u64) -> u64 {
    i
}

#[wasmray::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// `BIG_LEN` bytes that only `(round, i)` makes.
#[wasmray::remote]
fn big(round: u64, i: u64) -> Vec<u8> {
    big_bytes(round, i)
}

fn big_bytes(round: u64, i: u64) -> Vec<u8> {
    (0..BIG_LEN as u64)
        .map(|k| (k.wrapping_mul(31) ^ round.wrapping_mul(7) ^ i) as u8)
        .collect()
}

/// Squares what it is given; keeps nothing a restart would lose.
#[wasmray::actor]
struct Squarer {
    id: u64,
}

#[wasmray::actor]
impl Squarer {
    fn new(id: u64) -> Self {
        Squarer { id }
    }

    /// `x²`, and which actor answered.
    fn square(&self, x: u64) -> (u64, u64) {
        (x * x, self.id)
    }
}

/// One reduction tree; returns its root and how many tasks it took.
fn tree() -> (ObjectRef<u64>, u64) {
    let mut level: Vec<ObjectRef<u64>> = (0..LEAVES)
        .map(|i| {
            leaf::options()
                .max_retries(PERSIST)
                .resource("worker", 0.001)
                .num_cpus(0.5)
                .remote(i)
        })
        .collect();
    let mut tasks = LEAVES;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                tasks += 1;
                add::options()
                    .max_retries(PERSIST)
                    .resource("worker", 0.001)
                    .num_cpus(0.5)
                    .remote(pair[0].clone(), pair[1].clone())
            })
            .collect();
    }
    (level.remove(0), tasks)
}

fn done_node_alive() -> bool {
    wasmray::nodes()
        .iter()
        .any(|n| n.alive && n.resources.iter().any(|(name, _)| name == "done"))
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let actors: Vec<_> = (0..ACTORS)
        .map(|id| {
            Squarer::options()
                .resource("worker", 0.05)
                .max_restarts(PERSIST)
                .max_task_retries(PERSIST)
                .remote(id)
        })
        .collect();
    let (mut round, mut tasks, mut calls) = (0u64, 0u64, 0u64);
    while round < rounds || !done_node_alive() {
        let bigs: Vec<_> = (0..BIG)
            .map(|i| {
                big::options()
                    .max_retries(PERSIST)
                    .resource("worker", 0.001)
                    .num_cpus(0.5)
                    .remote(round, i)
            })
            .collect();
        let (root, made) = tree();
        let squares: Vec<_> = actors
            .iter()
            .enumerate()
            .map(|(i, a)| a.square(round * 100 + i as u64).remote())
            .collect();
        let sum = wasmray::get(&root)?;
        assert_eq!(sum, (LEAVES - 1) * LEAVES / 2, "round {round}: wrong sum");
        for (i, square) in squares.iter().enumerate() {
            let x = round * 100 + i as u64;
            let (got, by) = wasmray::get(square)?;
            assert_eq!((got, by), (x * x, i as u64), "round {round}: wrong square");
        }
        for (i, b) in bigs.iter().enumerate() {
            let bytes = wasmray::get(b)?;
            assert!(
                bytes == big_bytes(round, i as u64),
                "round {round}: wrong bytes in big result {i}"
            );
        }
        tasks += made + BIG;
        calls += ACTORS;
        println!("round {round} ok");
        round += 1;
        if round >= rounds {
            // Waiting for the test to finish its damage: a little slower.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!("chaos done: {round} rounds, {tasks} tasks, {calls} actor calls, all exact");
    Ok(())
}
