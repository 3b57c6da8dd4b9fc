//! The hostile-guest suite's harness (`tests/tests/all/hostile.rs`): one attack per process.
//!
//! Starts a node, runs the well-behaved neighbour job once to warm up, measures the process's
//! memory, then runs the attacking driver while the neighbour job runs again and again beside
//! it on the same node. When the attack ends it waits for the node to let go of everything,
//! measures the memory again and prints a report, one `key: value` per line:
//!
//! ```text
//! exit: <how the attacking driver ended>
//! seconds: <time the attack took>
//! line: <each line the attacker's driver printed, at most 20>
//! output_lines: <lines the node's output sink took, every job>
//! dropped_markers: <lines saying output was dropped>
//! quota_lines: <lines naming a job's quota (unhandled errors of refused work)>
//! neighbour: <runs> runs, <failures> failed
//! baseline_rss / retained_bound / peak_rss / final_rss: <bytes> (retained_bound: what the
//! node keeps resident by design once its work is gone)
//! leftover: <what the node still held>
//! ```
//!
//! Usage: `wasmray-hostile MODULE[.wasm|.wat] [ARG]... --neighbour GUEST.wasm [--store BYTES]
//! [--max-task-memory BYTES] [--node-guest-memory BYTES] [--cpu-limit-ms MS]
//! [--quota NAME=VALUE]...`. A process of its
//! own, so that memory figures are the attack's alone.

use anyhow::{Context, bail};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use wasmray_node::{DriverExit, JobOptions, JobQuotas, Node, NodeConfig, OutputSink, Stream};

/// Counts what guests print, keeping the first lines each driver writes.
#[derive(Default)]
struct Tally {
    lines: AtomicU64,
    markers: AtomicU64,
    quota_lines: AtomicU64,
    driver_lines: Mutex<Vec<String>>,
}

impl OutputSink for Tally {
    fn line(&self, label: Option<&str>, _stream: Stream, line: &str) {
        self.lines.fetch_add(1, Ordering::Relaxed);
        if line.contains("of output dropped") {
            self.markers.fetch_add(1, Ordering::Relaxed);
        }
        if line.contains("the job's quota of") {
            self.quota_lines.fetch_add(1, Ordering::Relaxed);
        }
        // The attack's driver lines; the neighbour's (its driver prints one per run) would
        // fill the cap in a slow run and crowd the attack's outcome out.
        if label.is_none() && !line.starts_with("neighbour: ") {
            let mut lines = self
                .driver_lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if lines.len() < 1000 {
                lines.push(line.chars().take(300).collect());
            }
        }
    }
}

struct Options {
    module: String,
    args: Vec<String>,
    neighbour: String,
    config: NodeConfig,
    quotas: JobQuotas,
}

fn parse(tally: &Arc<Tally>) -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let module = args
        .next()
        .context("usage: wasmray-hostile MODULE [ARG]... --neighbour GUEST")?;
    let mut options = Options {
        module,
        args: Vec::new(),
        neighbour: String::new(),
        config: NodeConfig {
            num_cpus: 2.0,
            object_store_memory: 256 << 20,
            max_instances: 1200,
            max_task_memory: 4 << 30,
            cache_dir: Some(wasmray_tests::test_cache_dir()),
            output: Arc::clone(tally) as Arc<dyn OutputSink>,
            ..NodeConfig::default()
        },
        quotas: JobQuotas::default(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--neighbour" => options.neighbour = value()?,
            "--store" => options.config.object_store_memory = value()?.parse()?,
            "--node-guest-memory" => options.config.guest_memory = value()?.parse()?,
            "--max-task-memory" => options.config.max_task_memory = value()?.parse()?,
            "--cpu-limit-ms" => {
                options.config.default_cpu_time_limit =
                    Some(Duration::from_millis(value()?.parse()?));
            }
            "--quota" => {
                let setting = value()?;
                let (name, number) = setting.split_once('=').context("--quota NAME=VALUE")?;
                let number: u64 = number.parse()?;
                let quotas = &mut options.quotas;
                match name {
                    "pending-tasks" => quotas.max_pending_tasks = number,
                    "actors" => quotas.max_actors = number,
                    "objects" => quotas.max_objects = number,
                    "object-bytes" => quotas.max_object_bytes = number,
                    "spill-bytes" => quotas.max_spill_bytes = number,
                    "handles" => quotas.max_handles = u32::try_from(number)?,
                    "value-bytes" => quotas.max_value_bytes = number,
                    "output-rate" => quotas.output_bytes_per_sec = number,
                    "guest-memory" => quotas.max_guest_memory = number,
                    other => bail!("unknown quota `{other}`"),
                }
            }
            _ => options.args.push(arg),
        }
    }
    if options.neighbour.is_empty() {
        bail!("--neighbour GUEST.wasm is required");
    }
    Ok(options)
}

/// A figure from `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Resident memory once the allocator has given back what it can.
fn settled_rss() -> u64 {
    // SAFETY: `malloc_trim` only returns free heap memory to the system; it has no
    // preconditions beyond being called with glibc's allocator, which this process uses.
    unsafe { libc::malloc_trim(0) };
    status_bytes("VmRSS")
}

fn describe(exit: &Result<DriverExit, wasmray_node::NodeError>) -> String {
    match exit {
        Ok(DriverExit::Exited(code)) => format!("exited {code}"),
        Ok(DriverExit::Failed(error)) => {
            let first = error.message.lines().next().unwrap_or_default();
            format!("failed {:?}: {first}", error.kind)
        }
        Err(error) => format!("refused: {error}"),
    }
}

fn main() -> anyhow::Result<()> {
    let tally = Arc::new(Tally::default());
    let options = parse(&tally)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(options, tally))
}

async fn run(options: Options, tally: Arc<Tally>) -> anyhow::Result<()> {
    let node = Arc::new(Node::start(options.config)?);
    let neighbour = node.load_module(options.neighbour.as_ref())?;
    let neighbour_args = ["neighbour".to_owned()];
    let warm = node.run_driver(&neighbour, &neighbour_args).await?;
    if !matches!(warm, DriverExit::Exited(0)) {
        bail!("the neighbour failed on its own: {warm:?}");
    }
    node.drop_idle_instances();
    let baseline = settled_rss();

    let attack_over = Arc::new(AtomicBool::new(false));
    let beside = {
        let node = Arc::clone(&node);
        let module = Arc::clone(&neighbour);
        let over = Arc::clone(&attack_over);
        tokio::spawn(async move {
            let (mut runs, mut failures) = (0u32, 0u32);
            // At least one run entirely beside the attack, then as many as fit in it.
            loop {
                runs += 1;
                match node.run_driver(&module, &neighbour_args).await {
                    Ok(DriverExit::Exited(0)) => {}
                    _ => failures += 1,
                }
                if over.load(Ordering::Relaxed) {
                    return (runs, failures);
                }
            }
        })
    };

    let job = JobOptions {
        quotas: options.quotas,
        ..JobOptions::default()
    };
    let started = Instant::now();
    let exit = if options.module.ends_with(".wat") {
        let text = std::fs::read_to_string(&options.module)?;
        let bytes = wat::parse_str(&text)?;
        match node.load_module_bytes("hostile.wasm", &bytes) {
            Ok(module) => node.run_job(&module, &options.args, job.clone()).await,
            Err(error) => Err(error),
        }
    } else {
        match node.load_module(options.module.as_ref()) {
            Ok(module) => node.run_job(&module, &options.args, job.clone()).await,
            Err(error) => Err(error),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    attack_over.store(true, Ordering::Relaxed);
    let (runs, failures) = beside.await?;

    // Whatever the attack left running winds down (its job ended: its tasks are cancelled).
    let deadline = Instant::now() + Duration::from_secs(60);
    let stats = loop {
        let stats = node.stats();
        let sched = &stats.sched;
        let busy = sched.waiting + sched.ready + sched.running + sched.blocked;
        if (busy == 0 && sched.objects == 0 && stats.store.objects == 0)
            || Instant::now() > deadline
        {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    node.drop_idle_instances();
    let final_rss = settled_rss();

    println!("exit: {}", describe(&exit));
    println!("seconds: {seconds:.2}");
    for line in tally
        .driver_lines
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .take(20)
    {
        println!("line: {line}");
    }
    println!("output_lines: {}", tally.lines.load(Ordering::Relaxed));
    println!("dropped_markers: {}", tally.markers.load(Ordering::Relaxed));
    println!("quota_lines: {}", tally.quota_lines.load(Ordering::Relaxed));
    println!("neighbour: {runs} runs, {failures} failed");
    println!("baseline_rss: {baseline}");
    println!("retained_bound: {}", node.retained_bytes_bound());
    println!("peak_rss: {}", status_bytes("VmHWM"));
    println!("final_rss: {final_rss}");
    println!(
        "final_rss_parts: anon={} file={} shmem={}",
        status_bytes("RssAnon"),
        status_bytes("RssFile"),
        status_bytes("RssShmem")
    );
    let sched = &stats.sched;
    println!(
        "leftover: tasks={} objects={} actors={} store_objects={} store_bytes={} spilled={}",
        sched.waiting + sched.ready + sched.running + sched.blocked,
        sched.objects,
        sched.actors,
        stats.store.objects,
        stats.store.arena_used + stats.store.inline_used,
        stats.store.spilled,
    );
    Ok(())
}
