//! wasmray's integration tests: one binary, real wasm guests (built by build.rs from
//! `examples/` and `tests/guests/`), real nodes, real processes.

mod abi_contract;
mod actors;
mod buffers;
mod cli;
mod cluster;
mod examples;
mod fuzz;
mod guests;
mod hostile;
mod invariants;
mod netns;
mod sandbox;
mod zero_copy;
