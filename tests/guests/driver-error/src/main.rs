//! driver-error: a driver whose `main` returns `Err`.
//!
//! Rust's own `Termination` handles it, as in any program: it prints
//! `Error: "bad configuration"` (the error's `Debug`) to stderr and exits with status 1. Nothing
//! is printed on stdout; no task runs.

#[wasmray::main]
fn main() -> Result<(), String> {
    Err("bad configuration".into())
}
