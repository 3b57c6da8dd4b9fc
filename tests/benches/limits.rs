//! What enforcing limits costs a compute-bound guest (`cargo bench -p wasmray-tests --bench
//! limits`): the same driver on a node that enforces them (epoch interruption compiled into
//! the code, the memory limiter) and on one that does not, alternating, one
//! run each per round. Prints each round and the medians.
//!
//! The guests are WAT, so no compiler choice differs between the two: `call_per_iteration`
//! loops 200 million times over a function call, 64-bit arithmetic and a store into a 512 KiB
//! table — the worst case, an epoch check at the call's entry and at the back-edge of a loop
//! of a few instructions; `inner_loop` does the same arithmetic 16 times per outer iteration
//! without the call, as compiled compute kernels mostly look.

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

const INNER_LOOP: &str = r#"(module
    (memory (export "memory") 16)
    (func (export "wasmray_abi_version") (result i32) i32.const 1)
    (func (export "_start") (local $i i32) (local $x i64)
        (loop $again
            (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
            (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
            (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
            (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
            (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
            (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
            (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
            (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
            (i64.store (i32.shl (i32.and (local.get $i) (i32.const 0xFFFF)) (i32.const 3))
                       (local.get $x))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $again (i32.lt_u (local.get $i) (i32.const 50000000))))))"#;

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

fn run(runtime: &tokio::runtime::Runtime, node: &Node, kernel: &str) -> Duration {
    let bytes = wat::parse_str(kernel).expect("kernel");
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
    for (name, kernel) in [("call_per_iteration", KERNEL), ("inner_loop", INNER_LOOP)] {
        // Warm both (compile, first instance).
        run(&runtime, &enforced, kernel);
        run(&runtime, &unenforced, kernel);
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let a = run(&runtime, &enforced, kernel);
            let b = run(&runtime, &unenforced, kernel);
            println!("{name} round {round}: enforced {a:?}, unenforced {b:?}");
            with.push(a);
            without.push(b);
        }
        let (a, b) = (median(with), median(without));
        println!(
            "limits/{name}: enforced {a:?}, unenforced {b:?}, cost {:+.1}%",
            (a.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0
        );
    }
}
