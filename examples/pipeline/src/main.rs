//! pipeline: processing results as they complete with `wait`, against fetching them all at once
//! with `get` (Ray docs, "Pattern: Using ray.wait to process results in the order they finish").
//!
//! Eight tasks sleep for different times (0.1 s to 0.8 s, in scrambled order) and return their
//! index squared; the driver then "processes" each result with a 0.1 s sleep. All at once, the
//! processing starts after the slowest task; in completion order, it overlaps the remaining
//! tasks, so the second wall time is shorter. Both loops add up the same total.
//! It prints exactly these lines:
//!
//! ```text
//! all at once: total = 140
//! all at once took <seconds, {:.3}>s
//! in completion order: total = 140
//! in completion order took <seconds, {:.3}>s
//! ```

use std::time::{Duration, Instant};
use wasmray::{ObjectRef, TaskError};

/// How long task `i` sleeps, in milliseconds.
const SLEEP_MS: [u64; 8] = [800, 100, 600, 300, 700, 200, 500, 400];

#[wasmray::remote]
fn work(i: u64, millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    i * i
}

/// The driver's work on one result.
fn process(result: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    result
}

fn launch() -> Vec<ObjectRef<u64>> {
    (0..)
        .zip(SLEEP_MS)
        .map(|(i, ms)| work::remote(i, ms))
        .collect()
}

fn all_at_once() -> Result<u64, TaskError> {
    let results = wasmray::get_all(&launch())?;
    Ok(results.into_iter().map(process).sum())
}

fn in_completion_order() -> Result<u64, TaskError> {
    let mut unfinished = launch();
    let mut total = 0;
    while !unfinished.is_empty() {
        let (finished, rest) = wasmray::wait(&unfinished, 1, None);
        for object in &finished {
            total += process(wasmray::get(object)?);
        }
        unfinished = rest;
    }
    Ok(total)
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    for (name, run) in [
        ("all at once", all_at_once as fn() -> Result<u64, TaskError>),
        ("in completion order", in_completion_order),
    ] {
        let start = Instant::now();
        let total = run()?;
        let took = start.elapsed().as_secs_f64();
        println!("{name}: total = {total}");
        println!("{name} took {took:.3}s");
    }
    Ok(())
}
