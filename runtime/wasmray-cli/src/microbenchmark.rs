//! `wasmray microbenchmark`: the cases of Ray's `ray microbenchmark`, with the same names and
//! output (`<name> per second <mean> +- <stdev>`), run on an embedded node by a guest written
//! with the SDK (`bench/microbenchmark`, compiled into this binary); plus what users feel
//! first: cold start of `wasmray run` (module cache cold and warm) and the memory of an idle
//! node. `TESTS_TO_RUN=pattern` selects cases, as in Ray.
//!
//! With `--address` the driver runs on a cluster instead (its process joins it as a node with
//! no CPUs, as `wasmray run --address` does), and `--pin RESOURCE` sends the task cases' tasks
//! and the 1:1 actors to the nodes that have that resource: the cross-node figures. Cold start
//! and idle memory are a single node's and are not measured then.

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use wasmray_node::{Node, NodeConfig};

/// The microbenchmark guest, built by build.rs from `bench/microbenchmark`.
const GUEST: &[u8] = include_bytes!(env!("WASMRAY_MICROBENCHMARK_WASM"));
/// The cold-start module (a driver that runs one task), built by build.rs from `bench/hello`.
const HELLO: &[u8] = include_bytes!(env!("WASMRAY_HELLO_WASM"));

#[derive(Debug, Args)]
pub(crate) struct MicrobenchmarkArgs {
    /// Logical CPUs the node offers [default: the machine's cores].
    #[arg(long)]
    num_cpus: Option<f64>,
    /// Short measuring windows (for a smoke test; the figures are noisier).
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    cluster: crate::start::DriverJoinArgs,
    /// Pin the task cases' tasks and the 1:1 actors to the nodes that have this custom
    /// resource (each asks for 0.001 of it).
    #[arg(long, requires = "address")]
    pin: Option<String>,
}

pub(crate) fn microbenchmark(args: MicrobenchmarkArgs) -> anyhow::Result<ExitCode> {
    let filter = std::env::var("TESTS_TO_RUN").unwrap_or_default();
    if filter.is_empty() {
        println!("Tip: set TESTS_TO_RUN='pattern' to run a subset of benchmarks");
    }
    let scratch =
        std::env::temp_dir().join(format!("wasmray-microbenchmark-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let result = match args.cluster.target() {
        Ok(None) => run_all(&args, &filter, &scratch),
        Ok(Some(target)) => run_on_cluster(&args, target, &filter, &scratch),
        Err(error) => Err(error),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn run_all(args: &MicrobenchmarkArgs, filter: &str, scratch: &Path) -> anyhow::Result<ExitCode> {
    let module_path = scratch.join("microbenchmark.wasm");
    std::fs::write(&module_path, GUEST).context("cannot write the microbenchmark module")?;
    let hello_path = scratch.join("hello.wasm");
    std::fs::write(&hello_path, HELLO).context("cannot write the cold-start module")?;
    let runs = if args.quick { (2, 3) } else { (3, 5) };
    cold_start(filter, &hello_path, scratch, runs)?;

    let mut config = NodeConfig {
        cache_dir: Some(scratch.join("cache")),
        ..NodeConfig::default()
    };
    if let Some(cpus) = args.num_cpus {
        config.num_cpus = cpus;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let exit = runtime.block_on(async {
        let node = Node::start(config)?;
        let module = node.load_module(&module_path)?;
        node.run_driver(&module, &["noop".to_owned()]).await?;
        let name = "idle node memory (RSS MiB)";
        if name.contains(filter) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!("{name} {:.1}", resident_mib().unwrap_or(f64::NAN));
        }
        let mut driver_args = vec![filter.to_owned()];
        if args.quick {
            driver_args.push("quick".to_owned());
        }
        anyhow::Ok(node.run_driver(&module, &driver_args).await?)
    })?;
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(crate::exit_code_of(exit, "the microbenchmark driver"))
}

/// The cases on a cluster: the driver's process joins it, then runs the guest.
fn run_on_cluster(
    args: &MicrobenchmarkArgs,
    target: crate::start::JoinTarget,
    filter: &str,
    scratch: &Path,
) -> anyhow::Result<ExitCode> {
    if let Some(pin) = &args.pin {
        anyhow::ensure!(
            !pin.is_empty() && !pin.contains(char::is_whitespace),
            "--pin takes a resource name, e.g. --pin worker"
        );
    }
    let module_path = scratch.join("microbenchmark.wasm");
    std::fs::write(&module_path, GUEST).context("cannot write the microbenchmark module")?;
    let config = NodeConfig {
        cache_dir: Some(scratch.join("cache")),
        num_cpus: args.num_cpus.unwrap_or(0.0),
        ..NodeConfig::default()
    };
    let mut driver_args = vec![
        filter.to_owned(),
        if args.quick { "quick" } else { "full" }.to_owned(),
    ];
    if let Some(pin) = &args.pin {
        driver_args.push(format!("pin={pin}"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let exit = runtime.block_on(async {
        let cluster = crate::start::cluster_config(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))?;
        let node = Node::join(config, cluster, target.address, target.pin, &target.token).await?;
        node.wait_for_peers().await;
        let module = node.load_module(&module_path)?;
        let exit = node.run_driver(&module, &driver_args).await;
        node.shutdown();
        node.close_links().await;
        anyhow::Ok(exit?)
    })?;
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(crate::exit_code_of(exit, "the microbenchmark driver"))
}

/// Times `wasmray run hello.wasm` (a driver that runs one task) as a process: with a fresh
/// module cache (compiles) and a warm one; prints the medians in seconds.
fn cold_start(
    filter: &str,
    module: &Path,
    scratch: &Path,
    (cold_runs, warm_runs): (usize, usize),
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the wasmray executable")?;
    let cases = [
        (
            "cold start (wasmray run, module cache cold) seconds",
            cold_runs,
            true,
        ),
        (
            "cold start (wasmray run, module cache warm) seconds",
            warm_runs,
            false,
        ),
    ];
    for (name, runs, fresh_cache) in cases {
        if !name.contains(filter) {
            continue;
        }
        let warm_cache = scratch.join("warm-cache");
        if !fresh_cache {
            run_hello(&exe, module, &warm_cache)?;
        }
        let mut times = Vec::with_capacity(runs);
        for run in 0..runs {
            let cache = if fresh_cache {
                scratch.join(format!("cold-cache-{run}"))
            } else {
                warm_cache.clone()
            };
            let started = Instant::now();
            run_hello(&exe, module, &cache)?;
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!("{name} {:.4}", times[times.len() / 2]);
    }
    Ok(())
}

fn run_hello(exe: &Path, module: &Path, cache: &PathBuf) -> anyhow::Result<()> {
    let status = Command::new(exe)
        .arg("run")
        .arg(module)
        .arg("--cache-dir")
        .arg(cache)
        .stdout(Stdio::null())
        .status()
        .context("cannot start `wasmray run`")?;
    anyhow::ensure!(
        status.success(),
        "`wasmray run hello.wasm` failed: {status}"
    );
    Ok(())
}

/// This process's resident memory, from `/proc/self/status`.
fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
