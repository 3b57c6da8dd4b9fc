//! Runtime benchmarks (`cargo bench -p wasmray-tests`): the figures issue #2 asks for, measured
//! on real guests.
//!
//! - `task_roundtrip`: one trivial task submitted and got from a driver, in sequence.
//! - `tasks_10k_throughput`: 10,000 trivial tasks submitted, then gathered.
//! - `quickstart_warm_cache`: wall time of `wasmray run quickstart.wasm` as a process, with the
//!   compiled module already cached.
//! - `hot_paths/*`: a trivial driver instantiated and called (a WAT module: instance from the
//!   pool, `_start`, teardown), and small-object `put` and `get` calls from a guest.
//! - `actors/*`: 1:1 actor calls sync (call, wait, repeat) and async (submit many, gather), n:n
//!   (2 callers, each with its own actor, concurrently), and creating 10,000 actors, calling
//!   each once, and letting them go (issue #3).
//!
//! Per-task figures come from the guest's own clock (node start and module load excluded).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmray_node::{DriverExit, Node};
use wasmray_tests::{Capture, guests, test_cache_dir, test_config};

/// Runs the bench guest's driver with `args` on `node`; it prints its own timings.
fn run_bench_guest(runtime: &tokio::runtime::Runtime, node: &Node, args: &[&str]) {
    let module = node
        .load_module(guests::BENCH.as_ref())
        .expect("load bench guest");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let exit = runtime
        .block_on(node.run_driver(&module, &args))
        .expect("run bench guest");
    assert!(
        matches!(exit, DriverExit::Exited(0)),
        "bench guest failed: {exit:?}"
    );
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let capture = Arc::new(Capture::default());
    let node = {
        let _guard = runtime.enter();
        Arc::new(Node::start(test_config(2.0, Arc::clone(&capture))).expect("start node"))
    };
    let reported = |prefix: &str| -> Duration {
        let lines = capture.driver_stdout();
        let line = lines
            .iter()
            .rev()
            .find(|l| l.starts_with(prefix))
            .expect("bench guest reported");
        let total = line
            .split(' ')
            .find_map(|w| w.strip_prefix("total_ns="))
            .expect("total_ns");
        Duration::from_nanos(total.parse().expect("a number"))
    };

    let mut group = c.benchmark_group("tasks");
    group.throughput(Throughput::Elements(1));
    group.bench_function("task_roundtrip", |b| {
        b.iter_custom(|iters| {
            run_bench_guest(&runtime, &node, &["roundtrip", &iters.to_string()]);
            reported("roundtrip")
        })
    });
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    group.bench_function("tasks_10k_throughput", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run_bench_guest(&runtime, &node, &["throughput", "10000"]);
                total += reported("throughput");
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("hot_paths");
    let trivial = wat::parse_str(
        r#"(module
            (memory (export "memory") 1)
            (func (export "wasmray_abi_version") (result i32) i32.const 1)
            (func (export "_start")))"#,
    )
    .expect("valid WAT");
    let trivial = node
        .load_module_bytes("trivial.wasm", &trivial)
        .expect("load trivial");
    group.bench_function("instantiate_and_call_trivial_driver", |b| {
        // Timed on a runtime worker, as a driver's own submissions are: awaited from
        // `block_on`, each run would also pay for waking the main thread.
        b.iter_custom(|iters| {
            let node = Arc::clone(&node);
            let trivial = Arc::clone(&trivial);
            runtime
                .block_on(tokio::spawn(async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let exit = node.run_driver(&trivial, &[]).await.expect("run trivial");
                        assert!(matches!(exit, DriverExit::Exited(0)));
                    }
                    started.elapsed()
                }))
                .expect("timing task")
        })
    });
    group.throughput(Throughput::Elements(1));
    for (name, mode) in [
        ("object_put_small", "put-calls"),
        ("object_get_small", "get-calls"),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                run_bench_guest(&runtime, &node, &[mode, &iters.to_string()]);
                reported(mode)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("actors");
    group.throughput(Throughput::Elements(1));
    group.bench_function("actor_calls_sync", |b| {
        b.iter_custom(|iters| {
            run_bench_guest(&runtime, &node, &["actor-sync", &iters.to_string()]);
            reported("actor-sync")
        })
    });
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    for (name, mode) in [
        ("actor_calls_async_10k", "actor-async"),
        ("actor_calls_nn_2x5k", "actor-nn"),
    ] {
        let n = if mode == "actor-nn" { "5000" } else { "10000" };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    run_bench_guest(&runtime, &node, &[mode, n]);
                    total += reported(mode);
                }
                total
            })
        });
    }
    group.finish();

    let scale_node = {
        let _guard = runtime.enter();
        let config = wasmray_node::NodeConfig {
            max_instances: 10_100,
            max_task_memory: 64 << 20,
            default_task_memory: 64 << 20,
            ..test_config(2.0, Arc::new(Capture::default()))
        };
        Node::start(config).expect("start node")
    };
    let scale = scale_node
        .load_module(guests::ACTOR_SCALE.as_ref())
        .expect("load actor-scale");
    let mut group = c.benchmark_group("actors");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(10_000));
    group.bench_function("create_call_drop_10k_actors", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let exit = runtime
                    .block_on(scale_node.run_driver(&scale, &["10000".to_owned()]))
                    .expect("run actor-scale");
                assert!(matches!(exit, DriverExit::Exited(0)), "{exit:?}");
            }
            started.elapsed()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("cli");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    let warm = Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
        .args(["run", guests::QUICKSTART])
        .env("WASMRAY_CACHE_DIR", test_cache_dir())
        .output()
        .expect("warm the cache");
    assert!(warm.status.success());
    group.bench_function("quickstart_warm_cache", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let status = Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
                    .args(["run", guests::QUICKSTART])
                    .env("WASMRAY_CACHE_DIR", test_cache_dir())
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("run quickstart");
                assert!(status.success());
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
