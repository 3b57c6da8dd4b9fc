//! Helpers for wasmray's integration tests and benchmarks: where the built guests are, a node
//! configured for tests, and an output sink that captures what guests print.
//!
//! The guests themselves are compiled by `build.rs`; nothing here fakes a guest or a node.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use wasmray_node::{DriverExit, Node, NodeConfig, OutputSink, Stream};

pub mod cluster;
pub mod netns;
pub mod process_cluster;

/// Paths of the wasm guests `build.rs` built, one constant per crate (`QUICKSTART`, `REFS`...).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The module cache the tests share, so each guest compiles once per test run.
pub fn test_cache_dir() -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join("module-cache")
}

/// A node configuration sized for tests: `cpus` logical CPUs, a 256 MiB store, captured output.
pub fn test_config(cpus: f64, output: Arc<Capture>) -> NodeConfig {
    NodeConfig {
        num_cpus: cpus,
        object_store_memory: 256 << 20,
        max_instances: 1200,
        cache_dir: Some(test_cache_dir()),
        output,
        ..NodeConfig::default()
    }
}

/// One line a guest printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `None` for the driver; `Some("f task=..")` for a task.
    pub label: Option<String>,
    pub stream: Stream,
    pub text: String,
}

/// Captures guest output for assertions.
#[derive(Debug, Default)]
pub struct Capture {
    lines: Mutex<Vec<Line>>,
}

impl OutputSink for Capture {
    fn line(&self, label: Option<&str>, stream: Stream, line: &str) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Line {
                label: label.map(str::to_owned),
                stream,
                text: line.to_owned(),
            });
    }
}

impl Capture {
    pub fn lines(&self) -> Vec<Line> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What the driver printed to stdout, line by line.
    pub fn driver_stdout(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.label.is_none() && l.stream == Stream::Stdout)
            .map(|l| l.text)
            .collect()
    }

    /// Every line (driver and tasks, both streams) as `(label) text` or `text`.
    pub fn all_text(&self) -> String {
        self.lines()
            .into_iter()
            .map(|l| match l.label {
                Some(label) => format!("({label}) {}\n", l.text),
                None => format!("{}\n", l.text),
            })
            .collect()
    }
}

/// The result of running one guest's driver on a fresh node.
pub struct Run {
    pub exit: DriverExit,
    pub output: Arc<Capture>,
    pub node: Node,
}

impl Run {
    /// The driver's stdout lines, after asserting that it exited 0.
    pub fn stdout_ok(&self) -> Vec<String> {
        match &self.exit {
            DriverExit::Exited(0) => self.output.driver_stdout(),
            other => panic!(
                "driver ended with {other:?}; output:\n{}",
                self.output.all_text()
            ),
        }
    }
}

impl Run {
    /// The node's figures once work still winding down has let go of its objects: a task
    /// that delivered its result may hold its arguments for a moment after the driver ends.
    /// Waits until no object remains or 5 s pass, then returns the figures either way.
    pub async fn settled_stats(&self) -> wasmray_node::NodeStats {
        settled_stats(&self.node).await
    }
}

/// [`Run::settled_stats`] for any node.
pub async fn settled_stats(node: &Node) -> wasmray_node::NodeStats {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stats = node.stats();
        if (stats.store.objects == 0 && stats.sched.objects == 0)
            || std::time::Instant::now() > deadline
        {
            return stats;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Starts a node with `cpus` CPUs and runs `guest`'s driver with `args`.
pub async fn run_guest(guest: &str, cpus: f64, args: &[&str]) -> anyhow::Result<Run> {
    run_guest_with(guest, cpus, |_| {}, args).await
}

/// [`run_guest`] on a node whose test configuration `adjust` changed first.
pub async fn run_guest_with(
    guest: &str,
    cpus: f64,
    adjust: impl FnOnce(&mut NodeConfig),
    args: &[&str],
) -> anyhow::Result<Run> {
    let output = Arc::new(Capture::default());
    let mut config = test_config(cpus, Arc::clone(&output));
    adjust(&mut config);
    let node = Node::start(config)?;
    let module = node.load_module(guest.as_ref())?;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let exit = node.run_driver(&module, &args).await?;
    Ok(Run { exit, output, node })
}

/// What `examples/quickstart` prints on a cluster of `nodes` nodes with `cpus` CPUs in all.
pub fn quickstart_output(nodes: usize, cpus: u32) -> Vec<String> {
    let mut lines: Vec<String> = [
        "f(0) = 1",
        "f(f(0)) = 2",
        "div_mod(17, 5) = (3, 2)",
        "get_all = [1, 2, 3, 4]",
        "sum of 10 tasks reading one put = 27472500",
        "wait(num_returns = 3, timeout = 1s): 2 ready, 2 pending",
        "wait(num_returns = 4): 4 ready, 0 pending",
        "fail() error: Panic: this task fails on purpose",
        "plus_one(fail()) error: DependencyFailed caused by Panic: this task fails on purpose",
        "experiments = [45, 55, 65, 75, 85]",
    ]
    .map(str::to_owned)
    .to_vec();
    lines.push(format!("nodes: {nodes}"));
    lines.push(format!("cluster CPU total: {cpus}"));
    lines
}

/// The line of `lines` that starts with `prefix`, without the prefix.
pub fn value_after<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| l.strip_prefix(prefix))
}

static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Taken (shared) by the tests whose figures depend on the machine not being swamped (the
/// hostile suite's attacks, timed and measured against their neighbour job); taken alone
/// ([`whole_machine`]) by a test that swamps it (eight nodes and a 1 GiB broadcast), so the
/// two never overlap.
pub fn shared_machine() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}

/// See [`shared_machine`].
pub fn whole_machine() -> std::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the tests run as root (they can then act as another user, or make network
/// namespaces).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
