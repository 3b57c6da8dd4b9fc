//! hello: the smallest wasmray program, for output-prefix and cold-start tests.
//!
//! The driver prints `hello from wasmray` and then runs one remote task that prints
//! `hello from task` (the host labels task output as it sees fit), and waits for it. Output,
//! in this order:
//!
//! ```text
//! hello from wasmray
//! hello from task
//! ```

use wasmray::TaskError;

#[wasmray::remote]
fn hello() {
    println!("hello from task");
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    println!("hello from wasmray");
    wasmray::get(&hello::remote())
}
