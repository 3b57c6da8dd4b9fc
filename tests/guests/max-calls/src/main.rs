//! max-calls: instance reuse, seen through a `static` counter that lives in the instance.
//!
//! `count()` increments a `static AtomicU32` and returns it. Called 5 times one after another
//! with `max_calls(1)`, every call gets a fresh instance and returns 1. Called 5 times with
//! default options (`num_cpus(1.0)`), one after another, the calls reuse one instance and the
//! counter climbs. Expected output:
//!
//! ```text
//! max_calls=1: [1, 1, 1, 1, 1]
//! reused: [1, 2, 3, 4, 5]
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use wasmray::TaskError;

static CALLS: AtomicU32 = AtomicU32::new(0);

#[wasmray::remote]
fn count() -> u32 {
    CALLS.fetch_add(1, Ordering::Relaxed) + 1
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let mut fresh = Vec::new();
    for _ in 0..5 {
        fresh.push(wasmray::get(&count::options().max_calls(1).remote())?);
    }
    println!("max_calls=1: {fresh:?}");

    let mut reused = Vec::new();
    for _ in 0..5 {
        reused.push(wasmray::get(&count::options().num_cpus(1.0).remote())?);
    }
    println!("reused: {reused:?}");
    Ok(())
}
