//! hello: the module `wasmray microbenchmark` times for cold start, wasmray's counterpart of
//! Ray's `ray.init()` plus one task. The driver submits one remote task, waits for its
//! result and checks it; nothing else. It prints nothing, so the timing is start-up and one
//! round trip, not terminal output.
//!
//! Exit status 0 when the task answered 42, 1 otherwise.

use wasmray::TaskError;

#[wasmray::remote]
fn answer() -> u32 {
    42
}

#[wasmray::main]
fn main() -> Result<(), String> {
    let value = wasmray::get(&answer::remote()).map_err(|e: TaskError| e.to_string())?;
    if value == 42 {
        Ok(())
    } else {
        Err(format!("the task answered {value}, not 42"))
    }
}
