//! counter: the Ray docs' `Counter` actor, called from the driver and from tasks through a
//! passed handle.
//!
//! The driver creates a `Counter`, calls `inc` twice and `get_value` once. Then it creates a
//! second `Counter` and 4 tasks, each given a copy of its handle, call `inc` 250 times, each
//! waiting for its own increments. All copies reach the same actor, whose calls run one at a
//! time, so no increment is lost. It prints exactly these lines:
//!
//! ```text
//! value after two incs = 2
//! value after 4 tasks x 250 = 1000
//! 4 tasks x 250 incs took <seconds, {:.3}>s
//! ```

use std::time::Instant;
use wasmray::{ActorHandle, TaskError};

/// How many tasks increment the counter.
const TASKS: u64 = 4;
/// Increments per task.
const INCS: u64 = 250;

/// Ray's `Counter`: one number that only goes up.
#[wasmray::actor]
struct Counter {
    value: u64,
}

#[wasmray::actor]
impl Counter {
    fn new() -> Self {
        Counter { value: 0 }
    }

    /// Adds one and returns the new value.
    fn inc(&mut self) -> u64 {
        self.value += 1;
        self.value
    }

    fn get_value(&self) -> u64 {
        self.value
    }
}

/// Increments `counter` `times` times and waits for all of them; returns the last value seen.
#[wasmray::remote]
fn increment_many(counter: ActorHandle<Counter>, times: u64) -> u64 {
    let refs: Vec<_> = (0..times).map(|_| counter.inc().remote()).collect();
    match wasmray::get_all(&refs) {
        Ok(values) => values.last().copied().unwrap_or(0),
        Err(error) => panic!("an increment failed: {error}"),
    }
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let counter = Counter::remote();
    let _first = counter.inc().remote();
    let _second = counter.inc().remote();
    let value = wasmray::get(&counter.get_value().remote())?;
    println!("value after two incs = {value}");

    let start = Instant::now();
    let shared = Counter::remote();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| increment_many::remote(&shared, INCS))
        .collect();
    wasmray::get_all(&tasks)?;
    let took = start.elapsed().as_secs_f64();
    let value = wasmray::get(&shared.get_value().remote())?;
    println!("value after {TASKS} tasks x {INCS} = {value}");
    println!("{TASKS} tasks x {INCS} incs took {took:.3}s");
    Ok(())
}
