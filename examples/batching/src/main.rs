//! batching: 100,000 tiny tasks one by one against 100 batches of 1,000 (Ray docs,
//! "Anti-pattern: Over-parallelizing with too fine-grained tasks").
//!
//! Each tiny task doubles one number; each batch task doubles a range of 1,000. All tasks are
//! submitted before any result is fetched. Both ways compute the same total,
//! `2 · (0 + 1 + … + 99,999) = 9999900000`. It prints exactly these lines:
//!
//! ```text
//! one by one: total = 9999900000
//! one by one took <seconds, {:.3}>s
//! batched: total = 9999900000
//! batched took <seconds, {:.3}>s
//! ```

use std::time::Instant;
use wasmray::TaskError;

/// How many numbers are doubled.
const COUNT: u64 = 100_000;
/// Numbers per batch.
const BATCH: u64 = 1_000;

#[wasmray::remote]
fn double(x: u64) -> u64 {
    2 * x
}

#[wasmray::remote]
fn double_batch(start: u64, end: u64) -> Vec<u64> {
    (start..end).map(|x| 2 * x).collect()
}

fn one_by_one() -> Result<u64, TaskError> {
    let refs: Vec<_> = (0..COUNT).map(double::remote).collect();
    Ok(wasmray::get_all(&refs)?.iter().sum())
}

fn batched() -> Result<u64, TaskError> {
    let refs: Vec<_> = (0..COUNT)
        .step_by(BATCH as usize)
        .map(|start| double_batch::remote(start, start + BATCH))
        .collect();
    Ok(wasmray::get_all(&refs)?.iter().flatten().sum())
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    for (name, run) in [
        ("one by one", one_by_one as fn() -> Result<u64, TaskError>),
        ("batched", batched),
    ] {
        let start = Instant::now();
        let total = run()?;
        let took = start.elapsed().as_secs_f64();
        println!("{name}: total = {total}");
        println!("{name} took {took:.3}s");
    }
    Ok(())
}
