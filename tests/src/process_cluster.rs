//! A cluster of separate `wasmray start --block` processes for tests, like Ray's
//! `cluster_utils.Cluster`: start a head, add nodes with given resources, wait for N live
//! nodes, SIGKILL a node, and tear everything down when dropped (even when the test fails).
//!
//! Every process of one cluster shares a private `TMPDIR`, so its node records and sockets
//! never mix with another test's, and the cluster listens on loopback ports the OS picks.
//! A process may be started through a launcher (`ip netns exec NS`, see `netns.rs`): the
//! launcher execs the binary, so the child is the node itself.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One `wasmray start --block` process and what it printed.
pub struct NodeProcess {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl NodeProcess {
    /// What it printed that was not waited for yet.
    pub fn printed(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Waits for a printed line containing `needle`; returns it.
    pub fn wait_line(&self, needle: &str, within: Duration) -> anyhow::Result<String> {
        let mut lines = self.wait_lines(needle, within)?;
        Ok(lines.pop().unwrap_or_default())
    }

    /// Waits for a printed line containing `needle`; returns every line printed up to it,
    /// it last.
    pub fn wait_lines(&self, needle: &str, within: Duration) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    seen.push(line);
                    if found {
                        return Ok(seen);
                    }
                }
                Err(_) => break,
            }
        }
        bail!("no line with `{needle}` within {within:?}; printed: {seen:?}")
    }
}

/// A head and nodes, each its own process.
pub struct ProcessCluster {
    bin: PathBuf,
    cache: PathBuf,
    dir: tempfile::TempDir,
    pub head: NodeProcess,
    /// `host:port`, token, CA pin.
    pub address: String,
    pub token: String,
    pub ca_hash: String,
    pub nodes: Vec<NodeProcess>,
    /// Drivers started in the background ([`ProcessCluster::spawn_driver`]).
    pub drivers: Vec<NodeProcess>,
    /// Environment every node and driver of the cluster starts with (e.g. a fault plan).
    env: Vec<(String, String)>,
}

/// `bin args` as a command, through `launcher` (a program and its arguments) if not empty.
fn command(launcher: &[String], bin: &Path) -> Command {
    match launcher.split_first() {
        None => Command::new(bin),
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(bin);
            command
        }
    }
}

fn spawn(
    launcher: &[String],
    bin: &Path,
    dir: &Path,
    cache: &Path,
    env: &[(String, String)],
    args: &[&str],
) -> anyhow::Result<NodeProcess> {
    let mut child = command(launcher, bin)
        .args(args)
        .env("TMPDIR", dir)
        .env("WASMRAY_CACHE_DIR", cache)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start a wasmray process")?;
    let (tx, lines) = mpsc::channel();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    Ok(NodeProcess { child, lines })
}

/// Head flags for tests that kill nodes: a silent node is declared dead 1.6 s after its last
/// word (0.2 s × 3 + 1 s), soon enough for a test and with room for a loaded machine.
pub const QUICK_DETECTION: [&str; 6] = [
    "--health-check-period",
    "0.2",
    "--health-check-timeout",
    "1",
    "--health-check-failures",
    "3",
];

impl ProcessCluster {
    /// Starts a head (`wasmray start --head --block` with `head_args`) and waits for its
    /// join command.
    pub fn start(bin: &Path, cache: &Path, head_args: &[&str]) -> anyhow::Result<Self> {
        let mut args = vec!["--port", "0", "--node-ip-address", "127.0.0.1"];
        args.extend_from_slice(head_args);
        Self::start_via(&[], bin, cache, &args)
    }

    /// Starts a head through `launcher` (`wasmray start --head --block` with `head_args`,
    /// which say where it listens) and waits for its join command.
    pub fn start_via(
        launcher: &[String],
        bin: &Path,
        cache: &Path,
        head_args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_with_env(launcher, bin, cache, head_args, &[])
    }

    /// [`ProcessCluster::start_via`], every process of the cluster (head, nodes, drivers)
    /// started with `env` too.
    pub fn start_with_env(
        launcher: &[String],
        bin: &Path,
        cache: &Path,
        head_args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::tempdir()?;
        let mut args = vec!["start", "--head", "--block"];
        args.extend_from_slice(head_args);
        let head = spawn(launcher, bin, dir.path(), cache, &env, &args)?;
        let join = head.wait_line("wasmray start --address", Duration::from_secs(30))?;
        let words: Vec<&str> = join.split_whitespace().collect();
        let after = |flag: &str| -> anyhow::Result<String> {
            let at = words
                .iter()
                .position(|w| *w == flag)
                .with_context(|| format!("no {flag} in `{join}`"))?;
            Ok(words.get(at + 1).context("a value")?.to_string())
        };
        Ok(Self {
            address: after("--address")?,
            token: after("--token")?,
            ca_hash: after("--ca-hash")?,
            bin: bin.to_owned(),
            cache: cache.to_owned(),
            dir,
            head,
            nodes: Vec::new(),
            drivers: Vec::new(),
            env,
        })
    }

    /// `--address … --token … --ca-hash …`: this cluster, as a joining command names it.
    fn cluster_flags(&self) -> [&str; 6] {
        [
            "--address",
            &self.address,
            "--token",
            &self.token,
            "--ca-hash",
            &self.ca_hash,
        ]
    }

    /// Starts `wasmray args` as one of this cluster's processes, through `launcher`.
    fn spawn(&self, launcher: &[String], args: &[&str]) -> anyhow::Result<NodeProcess> {
        spawn(
            launcher,
            &self.bin,
            self.dir.path(),
            &self.cache,
            &self.env,
            args,
        )
    }

    /// The arguments that join a node to this cluster in the foreground.
    pub fn join_args(&self) -> Vec<&str> {
        let mut args = vec!["start", "--block"];
        args.extend(self.cluster_flags());
        args
    }

    /// Adds a node (`wasmray start --address … --block` with `args`, e.g. its resources);
    /// returns its index once it joined.
    pub fn add_node(&mut self, args: &[&str]) -> anyhow::Result<usize> {
        self.add_node_via(&[], args)
    }

    /// [`ProcessCluster::add_node`] through `launcher`.
    pub fn add_node_via(&mut self, launcher: &[String], args: &[&str]) -> anyhow::Result<usize> {
        let mut all = self.join_args();
        all.extend_from_slice(args);
        let node = self.spawn(launcher, &all)?;
        node.wait_line("joined the cluster", Duration::from_secs(30))?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// Runs the CLI with this cluster's `TMPDIR` (so it finds the head started here).
    pub fn wasmray(&self, args: &[&str]) -> Output {
        self.wasmray_with(args, &[])
    }

    /// [`ProcessCluster::wasmray`] with extra environment variables.
    pub fn wasmray_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.wasmray_via(&[], args, env)
    }

    /// [`ProcessCluster::wasmray_with`] through `launcher`.
    pub fn wasmray_via(&self, launcher: &[String], args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = command(launcher, &self.bin);
        command
            .args(args)
            .env("TMPDIR", self.dir.path())
            .env("WASMRAY_CACHE_DIR", &self.cache);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("run wasmray")
    }

    /// `wasmray run --address … --token … --ca-hash …` with `args` (the module and its
    /// arguments), through `launcher`: a driver whose process joins this cluster.
    pub fn run_via(&self, launcher: &[String], args: &[&str]) -> Output {
        let mut all = vec!["run"];
        all.extend(self.cluster_flags());
        all.extend_from_slice(args);
        self.wasmray_via(launcher, &all, &[])
    }

    /// Starts `wasmray run --address … --token … --ca-hash …` with `args` in the background:
    /// a driver whose lines the test reads as they come (to act on the cluster mid-run).
    /// Returns its index in `drivers`; it is killed with the cluster.
    pub fn spawn_driver(&mut self, args: &[&str]) -> anyhow::Result<usize> {
        self.spawn_driver_via(&[], args)
    }

    /// [`ProcessCluster::spawn_driver`] through `launcher`.
    pub fn spawn_driver_via(
        &mut self,
        launcher: &[String],
        args: &[&str],
    ) -> anyhow::Result<usize> {
        let mut all = vec!["run"];
        all.extend(self.cluster_flags());
        all.extend_from_slice(args);
        let driver = self.spawn(launcher, &all)?;
        self.drivers.push(driver);
        Ok(self.drivers.len() - 1)
    }

    /// Waits until `wasmray status` prints `needle`; returns what it printed.
    pub fn wait_for_status(&self, needle: &str, within: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let out = self.wasmray(&["status"]);
            let printed = String::from_utf8_lossy(&out.stdout).into_owned();
            if printed.contains(needle) {
                return Ok(printed);
            }
            if Instant::now() > deadline {
                bail!("`wasmray status` never showed `{needle}` within {within:?}:\n{printed}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Live and total nodes, as `wasmray status` (asking the head) reports them.
    pub fn counts(&self) -> Option<(usize, usize)> {
        let out = self.wasmray(&["status"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("Cluster: "))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        Some((words.get(3)?.parse().ok()?, words.get(1)?.parse().ok()?))
    }

    /// Waits until the head reports `n` live nodes.
    pub fn wait_for_nodes(&self, n: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let counts = self.counts();
            if counts.is_some_and(|(alive, _)| alive == n) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the head reports {counts:?} (alive, total) nodes, not {n} alive");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the head and starts another on the same port and the same data directory
    /// (under the cluster's `TMPDIR`) with `head_args`; returns what it printed up to its
    /// join command.
    pub fn restart_head(&mut self, head_args: &[&str]) -> anyhow::Result<Vec<String>> {
        let _ = self.head.child.kill();
        let _ = self.head.child.wait();
        let port = self
            .address
            .rsplit(':')
            .next()
            .context("the head's address has a port")?
            .to_owned();
        let mut args = vec![
            "start",
            "--head",
            "--block",
            "--port",
            &port,
            "--node-ip-address",
            "127.0.0.1",
        ];
        args.extend_from_slice(head_args);
        let head = self.spawn(&[], &args)?;
        let printed = head.wait_lines("wasmray start --address", Duration::from_secs(30))?;
        self.head = head;
        Ok(printed)
    }

    /// The control socket of the node started last on this machine.
    pub fn latest_socket(&self) -> anyhow::Result<String> {
        let pointer = self.dir.path().join("wasmray").join("latest-node");
        Ok(std::fs::read_to_string(&pointer)
            .with_context(|| format!("read {}", pointer.display()))?
            .trim()
            .to_owned())
    }

    /// SIGKILLs node `index`.
    pub fn kill_node(&mut self, index: usize) {
        let _ = self.nodes[index].child.kill();
        let _ = self.nodes[index].child.wait();
    }

    /// This cluster's private temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for node in self
            .drivers
            .iter_mut()
            .chain(self.nodes.iter_mut())
            .chain(std::iter::once(&mut self.head))
        {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}
