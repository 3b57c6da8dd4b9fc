//! tree-reduce: aggregating 8 values with an `add` that takes one second, as a linear chain and
//! as a tree (Ray docs, "Pattern: Using nested tasks / tree reduce").
//!
//! The chain `add(add(add(1, 2), 3), ...)` has 7 steps one after another; the tree adds pairs
//! level by level, so its depth is 3 and independent adds run in parallel (on a 2-CPU node the
//! first level's 4 adds take two rounds). Refs are passed straight into the next `add`; nothing
//! is fetched until the end. It prints exactly these lines:
//!
//! ```text
//! linear: sum = 36
//! linear took <seconds, about 7>s
//! tree: sum = 36
//! tree took <seconds, about 3 with 4 or more CPUs, 4 with 2>s
//! ```
//!
//! with the times formatted as `{:.3}`. `add` sleeps with `std::thread::sleep`, which the host
//! turns into a non-blocking wait.

use std::time::{Duration, Instant};
use wasmray::{ObjectRef, TaskError};

#[wasmray::remote]
fn add(a: u64, b: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    a + b
}

/// `((((1 + 2) + 3) + 4) ...)`: every add waits for the previous one.
fn linear(values: &[u64]) -> ObjectRef<u64> {
    let mut sum = wasmray::put(&values[0]);
    for value in &values[1..] {
        sum = add::remote(sum, *value);
    }
    sum
}

/// Adds neighbours pairwise until one ref is left.
fn tree(values: &[u64]) -> ObjectRef<u64> {
    let mut level: Vec<ObjectRef<u64>> = values.iter().map(wasmray::put).collect();
    while level.len() > 1 {
        let mut next: Vec<ObjectRef<u64>> = level
            .chunks(2)
            .filter(|pair| pair.len() == 2)
            .map(|pair| add::remote(&pair[0], &pair[1]))
            .collect();
        if level.len() % 2 == 1 {
            next.extend(level.last().cloned());
        }
        level = next;
    }
    level.remove(0)
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let values: Vec<u64> = (1..=8).collect();
    for (name, reduce) in [
        ("linear", linear as fn(&[u64]) -> ObjectRef<u64>),
        ("tree", tree),
    ] {
        let start = Instant::now();
        let sum = wasmray::get(&reduce(&values))?;
        let took = start.elapsed().as_secs_f64();
        println!("{name}: sum = {sum}");
        println!("{name} took {took:.3}s");
    }
    Ok(())
}
