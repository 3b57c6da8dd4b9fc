//! What enforcing limits costs a compute-bound guest (`cargo bench -p wasmray-tests --bench
//! limits`): the same driver on a node that enforces them (epoch interruption compiled into
//! the code, the memory limiter) and on one that does not, alternating, one
//! run each per round. Prints each round and the medians.
//!
//! The guest (WAT, so no compiler choice differs between the two) loops 200 million times
//! over a function call, 64-bit arithmetic and a store into a 512 KiB table — a hot loop with
//! a back-edge and a call per iteration, where epoch checks sit.

use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmray_node::{DriverExit, Node, NodeConfig};
use wasmray_tests::{Capture, test_config};

const KERNEL: &str = r#"(module
    (memory (export "memory") 16)
    (func $mix (param i64) (result i64)
        (i64.add (i64.mul (local.get 0) (i64.const 6364136223846793005))
                 (i64.const 1442695040888963407)))
    (func (export "wasmray_abi_version") (result i32) i32.const 1)
    (func (export "_start") (local $i i32) (local $x i64)
        (loop $again
            (local.set $x (call $mix (local.get $x)))
            (i64.store (i32.shl (i32.and (local.get $i) (i32.const 0xFFFF)) (i32.const 3))
                       (local.get $x))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $again (i32.lt_u (local.get $i) (i32.const 200000000))))))"#;

fn node(runtime: &tokio::runtime::Runtime, enforce_limits: bool) -> Node {
    let _guard = runtime.enter();
    let config = NodeConfig {
        enforce_limits,
        // Each engine compiles its own code (epoch checks in or out): no shared cache.
        cache_dir: None,
        ..test_config(1.0, Arc::new(Capture::default()))
    };
    Node::start(config).expect("start node")
}

fn run(runtime: &tokio::runtime::Runtime, node: &Node) -> Duration {
    let bytes = wat::parse_str(KERNEL).expect("kernel");
    let module = node.load_module_bytes("kernel.wasm", &bytes).expect("load");
    let started = Instant::now();
    let exit = runtime
        .block_on(node.run_driver(&module, &[]))
        .expect("run");
    assert!(matches!(exit, DriverExit::Exited(0)), "{exit:?}");
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--test` (from `cargo test --benches`) runs
    // one quick round.
    let quick = std::env::args().any(|a| a == "--test");
    let rounds = if quick { 1 } else { 11 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let enforced = node(&runtime, true);
    let unenforced = node(&runtime, false);
    // Warm both (compile, first instance).
    run(&runtime, &enforced);
    run(&runtime, &unenforced);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let a = run(&runtime, &enforced);
        let b = run(&runtime, &unenforced);
        println!("round {round}: enforced {a:?}, unenforced {b:?}");
        with.push(a);
        without.push(b);
    }
    let (a, b) = (median(with), median(without));
    println!(
        "limits/compute_bound: enforced {a:?}, unenforced {b:?}, cost {:+.1}%",
        (a.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0
    );
}
