//! `wasmray start`: start a cluster's head (`--head`) or a node that joins one
//! (`--address HOST:PORT --token T --ca-hash sha256:…`), in the background unless `--block`.
//!
//! In the background, `start` runs itself again with `--block` as a process of its own (its
//! output in `$TMPDIR/wasmray/cluster/logs/`), waits until that node is up or has failed, and
//! prints what the node printed: for a head, the exact command that joins another node. A
//! blocking node runs until SIGTERM or SIGINT (`wasmray stop` sends SIGTERM), then leaves its
//! cluster cleanly and removes its records (`cluster_files.rs`).

use crate::cluster_files::{self, HeadRecord, NodeRecord};
use crate::node_args::NodeArgs;
use anyhow::{Context, bail};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use wasmray_node::{ClusterConfig, HealthCheck, Node};

/// The port a head listens on unless told otherwise.
pub(crate) const DEFAULT_PORT: u16 = 6390;
/// Where a blocking child tells its parent it is up (what it would have printed).
const READY_ENV: &str = "WASMRAY_START_READY";
/// Makes a node claim another wasmray version (for tests of the version check only).
const VERSION_ENV: &str = "WASMRAY_TEST_CLAIM_VERSION";

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// Start the head of a new cluster.
    #[arg(long, conflicts_with = "address")]
    head: bool,
    /// Join the cluster whose head listens at HOST:PORT (as the head's join command says).
    #[arg(long, required_unless_present = "head")]
    address: Option<String>,
    /// The join token the head printed (`<id>.<secret>`).
    #[arg(long, requires = "address")]
    token: Option<String>,
    /// The pin of the cluster's CA the head printed (`sha256:<hex>`).
    #[arg(long, requires = "address")]
    ca_hash: Option<String>,
    /// The UDP port to listen on [default: 6390 for a head, any free port for a node].
    #[arg(long)]
    port: Option<u16>,
    /// The IP address other nodes reach this one at, in the join command a head prints
    /// [default: the address of the interface that routes outwards].
    #[arg(long)]
    node_ip_address: Option<IpAddr>,
    /// How long the head's join token is valid, in seconds [default: as long as the head runs].
    #[arg(long, requires = "head")]
    token_ttl: Option<f64>,
    /// Seconds of silence after which the head pings a node, and between its pings
    /// [default: 1].
    #[arg(long, requires = "head", value_name = "SECS")]
    health_check_period: Option<f64>,
    /// Seconds the head waits for a ping's answer before counting a miss [default: 2].
    #[arg(long, requires = "head", value_name = "SECS")]
    health_check_timeout: Option<f64>,
    /// Misses in a row after which the head declares a node dead (for good) [default: 3].
    #[arg(long, requires = "head", value_name = "N")]
    health_check_failures: Option<u32>,
    /// Where the head keeps its control state (members, job IDs, actor names, modules, the
    /// cluster's CA and tokens), so that a head killed and started again on the same
    /// directory takes its cluster back; a head stopped cleanly forgets it
    /// [default: $TMPDIR/wasmray/head].
    #[arg(long, requires = "head", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds a node stopped by SIGTERM or Ctrl-C may take to drain (its work finishing,
    /// the objects only it holds moving) before it leaves anyway; 0 leaves at once
    /// [default: 8].
    #[arg(long, value_name = "SECS")]
    drain_timeout: Option<f64>,
    /// Run in the foreground until stopped (SIGTERM or Ctrl-C) instead of in the background.
    #[arg(long)]
    block: bool,
    #[command(flatten)]
    node: NodeArgs,
}

pub(crate) fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    if args.block {
        run_blocking(args)
    } else {
        start_in_background()
    }
}

fn seconds(name: &str, value: Option<f64>) -> anyhow::Result<Option<Duration>> {
    value
        .map(|s| {
            anyhow::ensure!(
                s.is_finite() && s > 0.0,
                "{name} must be a number of seconds > 0"
            );
            Duration::try_from_secs_f64(s)
                .map_err(|_| anyhow::anyhow!("{name} is too large: {s} seconds"))
        })
        .transpose()
}

/// A node's cluster settings listening on `listen`, with the faults `WASMRAY_TESTING_FAULTS`
/// asks for (tests and CI).
pub(crate) fn cluster_config(listen: SocketAddr) -> anyhow::Result<ClusterConfig> {
    let mut cluster = ClusterConfig::new(listen);
    if let Some(faults) = wasmray_net::Faults::from_env()? {
        tracing::warn!(
            ?faults,
            "injecting faults into the cluster's links, on purpose"
        );
        cluster.faults = faults;
    }
    Ok(cluster)
}

/// The head's health check from its flags, each defaulting on its own.
fn health_check(args: &StartArgs) -> anyhow::Result<HealthCheck> {
    let mut health = HealthCheck::default();
    let shortest = Duration::from_millis(10);
    if let Some(period) = seconds("--health-check-period", args.health_check_period)? {
        anyhow::ensure!(
            period >= shortest,
            "--health-check-period must be at least 0.01 seconds"
        );
        health.period = period;
    }
    if let Some(timeout) = seconds("--health-check-timeout", args.health_check_timeout)? {
        anyhow::ensure!(
            timeout >= shortest,
            "--health-check-timeout must be at least 0.01 seconds"
        );
        health.timeout = timeout;
    }
    if let Some(failures) = args.health_check_failures {
        anyhow::ensure!(
            (1..=1000).contains(&failures),
            "--health-check-failures must be between 1 and 1000"
        );
        health.failures = failures;
    }
    Ok(health)
}

/// Runs `wasmray <same arguments> --block` as a background process and waits until it is up.
fn start_in_background() -> anyhow::Result<ExitCode> {
    let logs = cluster_files::dir().join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let log_path = logs.join(format!("node-{stamp}.log"));
    let ready_path = logs.join(format!("node-{stamp}.ready"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the wasmray executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .arg("--block")
        .env(READY_ENV, &ready_path)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: a Ctrl-C in this terminal does not reach the node.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().context("cannot start the node's process")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready_path) {
            let _ = std::fs::remove_file(&ready_path);
            print!("{text}");
            println!("Its log: {}", log_path.display());
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .map_or_else(|| format!("the node exited with {status}"), str::to_owned);
            // The child's own one-line error, without a second `error: ` in front.
            bail!("{}", last.trim_start_matches("error: "));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the node did not come up within 60 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The address of the interface that routes outwards (no packet is sent), else loopback.
fn outward_ip() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn run_blocking(args: StartArgs) -> anyhow::Result<ExitCode> {
    let config = args.node.config()?;
    let token_ttl = seconds("--token-ttl", args.token_ttl)?;
    let drain_timeout = match args.drain_timeout {
        Some(0.0) => Duration::ZERO,
        other => seconds("--drain-timeout", other)?.unwrap_or(Duration::from_secs(8)),
    };
    let health = health_check(&args)?;
    let port = args
        .port
        .unwrap_or(if args.head { DEFAULT_PORT } else { 0 });
    let mut cluster = cluster_config(SocketAddr::from(([0, 0, 0, 0], port)))?;
    cluster.health = health;
    if let Ok(version) = std::env::var(VERSION_ENV) {
        cluster.version = Box::leak(version.into_boxed_str());
    }
    let join = match &args.address {
        Some(address) => Some(JoinTarget::parse(
            address,
            args.token.as_deref(),
            args.ca_hash.as_deref(),
        )?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wasmray-worker")
        .build()
        .context("cannot start the async runtime")?;
    let pid = std::process::id();
    let result = runtime.block_on(async {
        let mut restored = None;
        let node = match &join {
            None => {
                let dir = args
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| std::env::temp_dir().join("wasmray").join("head"));
                let store = wasmray_node::HeadStore::open(&dir)?;
                let (node, state) = Node::start_head_stored(config, cluster, Some(store))?;
                restored = state.map(|state| {
                    format!(
                        "Took over the cluster whose state is in {}: {} nodes it knew alive \
                         (they join again when they find this head), {} actor names, the next \
                         job is {}.\n",
                        dir.display(),
                        state.live_members().saturating_sub(1),
                        state.names(),
                        state.next_job()
                    )
                });
                node
            }
            Some(target) => {
                Node::join(config, cluster, target.address, target.pin, &target.token).await?
            }
        };
        if let Some(restored) = &restored {
            print!("{restored}");
        }
        let socket = node.serve_control()?;
        let listen = node
            .cluster_address()
            .context("the node has no cluster address")?;
        let ip = args.node_ip_address.unwrap_or_else(outward_ip);
        let reachable = SocketAddr::new(ip, listen.port());
        let message = if join.is_none() {
            let token = node.add_join_token(token_ttl)?;
            let pin = node.ca_pin().context("the head has no CA")?;
            let head = HeadRecord {
                pid,
                address: reachable.to_string(),
                token: token.to_string(),
                ca_hash: pin.to_string(),
            };
            cluster_files::write_head(&head)?;
            let what = if restored.is_some() {
                "the wasmray cluster again"
            } else {
                "a new wasmray cluster"
            };
            format!(
                "Started the head of {what}: node {} at {reachable}.\n\
                 To add a node to it, run on that machine:\n\n    {}\n\n\
                 Run a driver on the cluster with `wasmray run --address {reachable} app.wasm`; \
                 see it with `wasmray status`; stop the nodes on this machine with `wasmray stop`.\n",
                node.id(),
                head.join_command()
            )
        } else {
            format!(
                "Node {} joined the cluster at {}; it listens at {reachable}.\n",
                node.id(),
                args.address.as_deref().unwrap_or_default()
            )
        };
        cluster_files::write_node(&NodeRecord {
            pid,
            node_id: node.id().to_string(),
            head: join.is_none(),
            address: reachable.to_string(),
            socket,
        })?;
        print!("{message}");
        if let Some(ready) = std::env::var_os(READY_ENV) {
            let ready = PathBuf::from(ready);
            let temp = ready.with_extension("tmp");
            std::fs::write(&temp, &message)?;
            std::fs::rename(&temp, &ready)?;
        }
        tokio::select! {
            () = wait_for_stop() => {
                if join.is_some() && !drain_timeout.is_zero() {
                    println!("Draining: no new work comes here; leaving once what runs is done.");
                    // A second signal leaves at once.
                    let drained = tokio::select! {
                        drained = node.drain(drain_timeout) => drained,
                        () = wait_for_stop() => false,
                    };
                    if !drained {
                        println!("Not drained within {drain_timeout:?}: leaving anyway.");
                    }
                }
            }
            // Drained from elsewhere (`wasmray drain`): its work is done, it goes.
            () = node.drained() => println!("Drained: leaving the cluster."),
            // Declared dead (it was cut off): nothing it does counts any more.
            () = node.fenced() => {
                eprintln!(
                    "error: the head declared this node dead (it was unreachable): stopping; \
                     start it again to join as a new node"
                );
                node.shutdown();
                return anyhow::Ok(ExitCode::from(1));
            }
        }
        if join.is_none() {
            // Stopped cleanly, the head ends its cluster: the next head here starts anew.
            node.forget_stored_state()?;
        }
        node.shutdown();
        node.close_links().await;
        anyhow::Ok(ExitCode::SUCCESS)
    });
    cluster_files::remove_node(pid);
    if join.is_none() {
        cluster_files::remove_head(pid);
    }
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The flags that point a driver's process at a cluster (`run`, `microbenchmark`).
#[derive(Debug, clap::Args)]
pub(crate) struct DriverJoinArgs {
    /// Run the driver on the cluster whose head listens at HOST:PORT instead of on an
    /// embedded node. The driver's process joins the cluster as a node (offering no CPUs
    /// unless --num-cpus says so), since it owns the objects its driver makes; it leaves
    /// when the driver ends.
    #[arg(long)]
    pub address: Option<String>,
    /// The cluster's join token [default: the one of the head started on this machine].
    #[arg(long, requires = "address")]
    pub token: Option<String>,
    /// The cluster CA's pin [default: the one of the head started on this machine].
    #[arg(long, requires = "address")]
    pub ca_hash: Option<String>,
}

impl DriverJoinArgs {
    /// Where to join, if `--address` was given.
    pub(crate) fn target(&self) -> anyhow::Result<Option<JoinTarget>> {
        self.address
            .as_deref()
            .map(|address| {
                JoinTarget::parse(address, self.token.as_deref(), self.ca_hash.as_deref())
            })
            .transpose()
    }
}

/// Where and how to join.
pub(crate) struct JoinTarget {
    pub address: SocketAddr,
    pub token: wasmray_net::JoinToken,
    pub pin: wasmray_net::CaPin,
}

impl JoinTarget {
    /// From the flags, or for a head started on this machine from its record.
    pub(crate) fn parse(
        address: &str,
        token: Option<&str>,
        ca_hash: Option<&str>,
    ) -> anyhow::Result<Self> {
        let resolved = resolve(address)?;
        let local = cluster_files::head()
            .filter(|h| cluster_files::alive(h.pid))
            .filter(|h| resolve(&h.address).is_ok_and(|a| a.port() == resolved.port()));
        let (token, ca_hash) = match (token, ca_hash) {
            (Some(token), Some(hash)) => (token.to_owned(), hash.to_owned()),
            (None, None) => match local {
                Some(head) => (head.token, head.ca_hash),
                None => bail!(
                    "--token and --ca-hash are needed to join {address}: use the join command its head printed"
                ),
            },
            _ => bail!("--token and --ca-hash go together: use the join command the head printed"),
        };
        Ok(Self {
            address: resolved,
            token: token.parse()?,
            pin: ca_hash.parse()?,
        })
    }
}

/// `HOST:PORT` as a socket address (a name is looked up).
fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let with_port = if address.contains(':') {
        address.to_owned()
    } else {
        format!("{address}:{DEFAULT_PORT}")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .with_context(|| {
            format!(
                "`{address}` is not an address: expected HOST:PORT, e.g. 10.0.0.5:{DEFAULT_PORT}"
            )
        })
}
