//! The node: its parts, what carrying out each of the scheduler's actions means, the head's
//! messages, the timer, and drivers.
//!
//! Every change to scheduling state goes through [`NodeInner::with_sched`]: the change runs in
//! the scheduler's cell (`sched_cell.rs`), which queues the actions produced in order, and
//! they are then carried out one by one (spawn a task, wake waiters, report an unhandled
//! error, hand a message to the head or the network). Nothing slow ever runs under the lock.
//!
//! An embedded node ([`Node::start`]) is its own cluster's head: the scheduler's messages to
//! the head go to the node's [`Head`] state machine, and the head's answers come back as
//! events. A cluster's head ([`Node::start_head`]) does the same for itself and sends the
//! head's messages to other nodes as frames; a joined node ([`Node::join`]) sends everything
//! as frames through its transport (`remote.rs` takes in what arrives).

use crate::inner::{NodeInner, Parts};
use crate::jobs::JobOptions;
use crate::remote;
use crate::sched_cell::SchedCell;
use crate::services::GuestServices;
use crate::submitted::Ended;
use crate::value::Value;
use crate::wire_codec::Route;
use crate::{NodeConfig, NodeError};
use std::path::Path;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wasmray_core::{CPU, GPU, JobId, Lineage, NodeId, ResourceSet, TaskError, TaskKind};
use wasmray_net::Transport;
use wasmray_sched::{
    Action, Event, Head, HeadAnswer, HeadConfig, HeadRequest, HealthCheck, Peer, RunTask,
    SchedConfig, SchedStats, Scheduler, Time,
};
use wasmray_store::{ObjectStore, StoreStats};
use wasmray_wasm::{
    CallLimits, Caller, GuestInstance, GuestModule, InstanceSetup, MainOutcome, OutputSink, Stream,
    WasmHost, WasmHostConfig,
};

/// How a cluster node links to the others.
#[derive(Debug, Clone, Copy)]
pub struct ClusterConfig {
    /// Where the node's endpoint listens (port 0: any free port).
    pub listen: std::net::SocketAddr,
    /// How the head checks that nodes are alive (the head's setting; ignored elsewhere).
    pub health: HealthCheck,
    pub timers: wasmray_net::LinkTimers,
    /// The wasmray version the node says it runs (another only to test version checks).
    pub version: &'static str,
    /// Faults its transport injects on purpose (tests and CI; none by default).
    pub faults: wasmray_net::Faults,
    /// A joined node that hears nothing from its head for this long looks for it again (a
    /// restarted head on a new node is joined again).
    pub head_silence: Duration,
}

impl ClusterConfig {
    /// Listening on `listen`, with the default pacing.
    pub fn new(listen: std::net::SocketAddr) -> Self {
        Self {
            listen,
            health: HealthCheck::default(),
            timers: wasmray_net::LinkTimers::default(),
            version: wasmray_net::wire::VERSION,
            faults: wasmray_net::Faults::default(),
            head_silence: Duration::from_secs(3),
        }
    }

    fn transport(&self) -> wasmray_net::TransportConfig {
        wasmray_net::TransportConfig {
            listen: self.listen,
            timers: self.timers,
            version: self.version,
            faults: self.faults,
        }
    }
}

/// How a driver ended.
#[derive(Debug)]
pub enum DriverExit {
    /// `main` returned (0) or exited with this code.
    Exited(i32),
    /// `main` panicked or trapped.
    Failed(TaskError),
}

/// Figures for status displays and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    pub sched: SchedStats,
    pub store: StoreStats,
    pub idle_instances: usize,
    /// Jobs the node keeps an entry for (running here, or with work here).
    pub jobs: usize,
}

/// A running node. Dropping it shuts it down.
pub struct Node {
    inner: Arc<NodeInner>,
}

impl Node {
    /// Starts an embedded node: its own cluster's head, with no links. Must be called inside
    /// a tokio runtime, which runs its tasks.
    pub fn start(config: NodeConfig) -> Result<Node, NodeError> {
        // Alone in its cluster, the head has nobody to check.
        let head = HeadConfig::default();
        Self::start_with(config, NodeId(random_u64()), None, Some(head))
    }

    /// Starts the head of a new cluster, listening on `cluster.listen`; nodes join it with
    /// [`Node::join`] and a token from [`Node::add_join_token`].
    pub fn start_head(config: NodeConfig, cluster: ClusterConfig) -> Result<Node, NodeError> {
        Self::start_head_stored(config, cluster, None).map(|(node, _)| node)
    }

    /// As [`Node::start_head`], the head's control state kept in `store` (see
    /// `head_store.rs`): if an earlier head of a cluster left its state there (it was
    /// killed), this head takes over that cluster — its CA, tokens, members, job IDs, names
    /// and modules — on a new node of its own, and its nodes join it again when they find
    /// it. Returns the node and what was restored, if anything.
    pub fn start_head_stored(
        config: NodeConfig,
        cluster: ClusterConfig,
        store: Option<crate::HeadStore>,
    ) -> Result<(Node, Option<wasmray_sched::HeadState>), NodeError> {
        let id = NodeId(random_u64() | (1 << 62));
        let stored = match &store {
            Some(store) => store.load()?,
            None => None,
        };
        let ca = match &stored {
            Some(stored) => {
                wasmray_net::ClusterCa::restore(&stored.ca_key_pem, &stored.ca_cert_der)?
            }
            None => wasmray_net::ClusterCa::generate()?,
        };
        let net = Transport::start_head(cluster.transport(), ca, id)?;
        let head_config = HeadConfig {
            health: cluster.health,
            local: Some(id),
            ..HeadConfig::default()
        };
        let (head, restored) = match stored {
            Some(stored) => {
                net.restore_tokens(&stored.tokens)?;
                let restored = stored.state.clone();
                let head = Head::restore(head_config.clone(), stored.state, Time::ZERO);
                (head, Some(restored))
            }
            None => (Head::new(head_config.clone()), None),
        };
        if let Some(store) = &store {
            let (key, cert, tokens) = net.identity()?;
            store.save_identity(&key, &cert, &tokens)?;
        }
        let node = Self::start_parts(
            config,
            id,
            Some(net),
            Some(head),
            store,
            cluster.head_silence,
        )?;
        Ok((node, restored))
    }

    /// Stores the head's join tokens again (after [`Node::add_join_token`]).
    fn store_identity(&self) -> Result<(), NodeError> {
        if let (Some(store), Some(net)) = (&self.inner.head_store, &self.inner.net) {
            let (key, cert, tokens) = net.identity()?;
            store.save_identity(&key, &cert, &tokens)?;
        }
        Ok(())
    }

    /// Forgets the head's stored state: the cluster ends with this head (a clean stop).
    pub fn forget_stored_state(&self) -> Result<(), NodeError> {
        if let Some(store) = &self.inner.head_store {
            store.clear()?;
        }
        Ok(())
    }

    /// Starts a node that joins the cluster whose head listens at `head`, checking the head
    /// against `pin` and proving `token`.
    pub async fn join(
        config: NodeConfig,
        cluster: ClusterConfig,
        head: std::net::SocketAddr,
        pin: wasmray_net::CaPin,
        token: &wasmray_net::JoinToken,
    ) -> Result<Node, NodeError> {
        let net = Transport::join(cluster.transport(), head, pin, token).await?;
        let id = net.node();
        Self::start_parts(config, id, Some(net), None, None, cluster.head_silence)
    }

    fn start_with(
        config: NodeConfig,
        id: NodeId,
        net: Option<Transport>,
        head: Option<HeadConfig>,
    ) -> Result<Node, NodeError> {
        let head = head.map(Head::new);
        Self::start_parts(config, id, net, head, None, Duration::from_secs(3))
    }

    fn start_parts(
        config: NodeConfig,
        id: NodeId,
        net: Option<Transport>,
        head: Option<Head<Value>>,
        head_store: Option<crate::HeadStore>,
        head_silence: Duration,
    ) -> Result<Node, NodeError> {
        let mut total = ResourceSet::new();
        total.insert(CPU, config.num_cpus)?;
        total.insert(GPU, config.num_gpus)?;
        for (name, quantity) in &config.resources {
            total.insert(name, *quantity)?;
        }
        total.insert(
            crate::OBJECT_STORE_MEMORY,
            config.object_store_memory as f64,
        )?;
        let host = WasmHost::new(WasmHostConfig {
            max_instances: config.max_instances,
            max_memory_bytes: config.max_task_memory,
            cache_dir: config.cache_dir.clone(),
            enforce_limits: config.enforce_limits,
        })?;
        let temp_dir = config
            .temp_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("wasmray"))
            .join(format!("node-{id}"));
        let store = ObjectStore::new(config.object_store_memory, temp_dir.join("spill"))?;
        tracing::info!(node = %id, resources = %total, "node started");
        let sched = Scheduler::new(SchedConfig::new(id, total), Time::ZERO);
        let is_head = head.is_some();
        let inner = Arc::new(NodeInner::new(Parts {
            id,
            config,
            host,
            store,
            sched: SchedCell::new(sched),
            head: head.unwrap_or_else(|| Head::new(HeadConfig::default())),
            is_head,
            net,
            apply,
            temp_dir,
            head_store,
        }));
        if let Some(net) = &inner.net {
            let handler: Arc<dyn wasmray_net::Handler> = Arc::new(remote::NetHandler {
                node: Arc::downgrade(&inner),
            });
            // The transport holds the handler weakly; the node keeps it alive.
            net.serve(Arc::downgrade(&handler));
            *inner
                .net_handler
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handler);
            relay_remote_output(&inner);
        }
        // The join message the scheduler starts with goes to the head now.
        inner.with_sched(|_, _| ());
        tokio::spawn(timers(Arc::downgrade(&inner)));
        if !is_head && inner.net.is_some() {
            inner.heard_from_head();
            tokio::spawn(crate::head_watch::watch(
                Arc::downgrade(&inner),
                head_silence,
            ));
        }
        Ok(Node { inner })
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Where this node listens for its cluster's links (`None` for an embedded node).
    pub fn cluster_address(&self) -> Option<std::net::SocketAddr> {
        self.inner
            .net
            .as_ref()
            .and_then(|net| net.local_addr().ok())
    }

    /// The CA pin joiners check this node's cluster against.
    pub fn ca_pin(&self) -> Option<wasmray_net::CaPin> {
        self.inner.net.as_ref().map(|net| net.pin())
    }

    /// A new join token (the head only), valid for `ttl` (for the head's life without one).
    pub fn add_join_token(
        &self,
        ttl: Option<Duration>,
    ) -> Result<wasmray_net::JoinToken, NodeError> {
        let net = self.inner.net.as_ref().ok_or(NodeError::NotInCluster)?;
        let token = net.add_token(ttl)?;
        self.store_identity()?;
        Ok(token)
    }

    /// Every node of the cluster as its head knows it (the head only): ID, state, resources.
    pub fn members(&self) -> Vec<(NodeId, wasmray_sched::Member)> {
        self.inner.head_members()
    }

    /// Leaves the cluster and closes the node's links (after [`Node::shutdown`]): the head is
    /// told (and tells the others, who forget this node as if it had died). Waits (up to 2 s
    /// each) until every message sent was acknowledged before it says it leaves — once the
    /// others hear that, they take nothing more from it — and then for the leave itself, so
    /// that releases of the objects this node owned, its last results, and the leave arrive.
    pub async fn close_links(&self) {
        let Some(net) = &self.inner.net else {
            return;
        };
        let acknowledged = || async {
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.inner.lock_sched().unacknowledged() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        if !self.inner.is_head {
            acknowledged().await;
            self.inner.event(Event::Leave);
        }
        acknowledged().await;
        net.close().await;
    }

    /// Drains this node, as on SIGTERM: asks the head to (no node places new work here from
    /// then on), lets what runs finish and re-homes the copies it keeps for other owners.
    /// True once that is done, false if it was not within `within` (or the head refused,
    /// as it does for itself). Leave with [`Node::close_links`] after.
    pub async fn drain(&self, within: Duration) -> bool {
        if self.inner.is_head || self.inner.net.is_none() {
            return false;
        }
        let work = async {
            let ask = HeadRequest::Drain { node: self.id() };
            matches!(
                self.inner.ask_head(ask).await,
                Some(HeadAnswer::Draining(true))
            ) && {
                self.drained().await;
                true
            }
        };
        tokio::time::timeout(within, work).await.unwrap_or(false)
    }

    /// Resolves once the head declared this node dead (after a partition, say): nothing it
    /// sends is accepted any more; it should stop, and may join again as a new node.
    pub async fn fenced(&self) {
        let mut fenced = self.inner.fenced.subscribe();
        let _ = fenced.wait_for(|done| *done).await;
    }

    /// Resolves once this node drained (asked by [`Node::drain`] or `wasmray drain`).
    pub async fn drained(&self) {
        let mut drained = self.inner.drained.subscribe();
        let _ = drained.wait_for(|done| *done).await;
    }

    /// The head only: drains `node` (see [`Node::drain`]); false if it is not a live member
    /// or is the head.
    pub async fn drain_member(&self, node: NodeId) -> bool {
        matches!(
            self.inner.ask_head(HeadRequest::Drain { node }).await,
            Some(HeadAnswer::Draining(true))
        )
    }

    /// Waits (up to 5 s) until the head has told this node of the cluster's other nodes, so
    /// that work submitted next is placed knowing them: the head sends every member's view
    /// right after the join, so the count settles at once; settled means unchanged for 50 ms.
    pub async fn wait_for_peers(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = self.live_nodes();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = self.live_nodes();
            if now != seen {
                seen = now;
                since = Instant::now();
            } else if seen >= 2 && since.elapsed() >= Duration::from_millis(50) {
                return;
            }
        }
    }

    /// How many nodes this node's scheduler sees alive (itself included).
    pub fn live_nodes(&self) -> usize {
        self.inner.lock_sched().view().live_peers() + 1
    }

    /// Loads (compiles or fetches from cache) a module file.
    pub fn load_module(&self, path: &Path) -> Result<Arc<GuestModule>, NodeError> {
        Ok(self.inner.host.load_file(path)?)
    }

    /// Loads a module from its bytes.
    pub fn load_module_bytes(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Arc<GuestModule>, NodeError> {
        Ok(self.inner.host.load(name, bytes)?)
    }

    /// Runs `module`'s `main` as a new job's driver, with `args` after the program name.
    ///
    /// The driver runs as a task of the runtime, on a worker thread, whatever thread awaits
    /// this: a task it submits and then waits for can run on the same worker (tokio's LIFO
    /// slot) while the driver is parked, so a synchronous round trip needs no thread wake-up.
    /// Awaited from `block_on`, the driver would live on the caller's thread and every round
    /// trip would wake it from another one (~50 µs each on an idle VM vCPU).
    pub async fn run_driver(
        &self,
        module: &Arc<GuestModule>,
        args: &[String],
    ) -> Result<DriverExit, NodeError> {
        let options = JobOptions {
            quotas: self.inner.config.default_quotas,
            ..JobOptions::default()
        };
        self.run_job(module, args, options).await
    }

    /// As [`Node::run_driver`], with the job's own options (quotas instead of the node's
    /// defaults, a shared namespace).
    pub async fn run_job(
        &self,
        module: &Arc<GuestModule>,
        args: &[String],
        options: JobOptions,
    ) -> Result<DriverExit, NodeError> {
        let inner = Arc::clone(&self.inner);
        let module = Arc::clone(module);
        let args = args.to_vec();
        // Dropping this future stops the driver, as it did when the driver ran inside it.
        let mut driver = AbortOnDrop(tokio::spawn(async move {
            inner.run_driver(&module, &args, options).await
        }));
        match (&mut driver.0).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err(NodeError::ShuttingDown),
        }
    }

    pub fn stats(&self) -> NodeStats {
        NodeStats {
            sched: self.inner.lock_sched().stats(),
            store: self.inner.store.stats(),
            idle_instances: self.inner.pool.idle_count(),
            jobs: self.inner.jobs.len(),
        }
    }

    /// The most memory the node keeps resident by design once its work is gone and its idle
    /// instances dropped: warm arena pages and warm instance slots.
    pub fn retained_bytes_bound(&self) -> u64 {
        self.inner.store.retained_bytes_bound() + self.inner.host.retained_bytes_bound()
    }

    /// Drops the idle instances kept for reuse (their memory goes back to the system).
    pub fn drop_idle_instances(&self) {
        self.inner.pool.clear();
    }

    /// Stops taking work and drops idle instances. Running tasks finish on their own.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        self.inner.pool.clear();
        for host in self.inner.actors.drain() {
            host.stop();
        }
    }

    /// Opens the node's control socket (for `wasmray status` and `wasmray memory`) in its temp
    /// dir and points `<temp parent>/latest-node` at it. Returns the socket's path.
    pub fn serve_control(&self) -> Result<std::path::PathBuf, NodeError> {
        let socket = self.inner.temp_dir.join("node.sock");
        self.inner
            .serve_control(&socket)
            .map_err(NodeError::Control)?;
        if let Some(parent) = self.inner.temp_dir.parent() {
            let pointer = parent.join(crate::LATEST_NODE_FILE);
            std::fs::write(&pointer, socket.to_string_lossy().as_bytes())
                .map_err(NodeError::Control)?;
        }
        Ok(socket)
    }

    /// The status `wasmray status` shows.
    pub fn status_report(&self) -> crate::StatusReport {
        self.inner.status_report()
    }

    /// The objects `wasmray memory` lists, largest first.
    pub fn memory_report(&self) -> Vec<crate::ObjectReport> {
        self.inner.memory_report()
    }

    /// This node's scratch directory (spilled objects live under it).
    pub fn temp_dir(&self) -> &std::path::Path {
        &self.inner.temp_dir
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
        // Spill files of objects still alive elsewhere are useless once the node is gone.
        let _ = std::fs::remove_dir_all(&self.inner.temp_dir);
    }
}

impl NodeInner {
    /// [`Node::run_driver`], on the worker that runs the driver.
    async fn run_driver(
        self: &Arc<Self>,
        module: &Arc<GuestModule>,
        args: &[String],
        options: JobOptions,
    ) -> Result<DriverExit, NodeError> {
        self.check_driver(module)?;
        let job = self.new_job().await?;
        self.run_driver_as(job, module, args, options, DriverHooks::default())
            .await
    }

    /// Whether `module` can run as a driver here now.
    pub(crate) fn check_driver(&self, module: &GuestModule) -> Result<(), NodeError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(NodeError::ShuttingDown);
        }
        if !module.has_main() {
            return Err(NodeError::NoMain(module.name().to_owned()));
        }
        Ok(())
    }

    /// A new job ID from the head, unique in the cluster.
    pub(crate) async fn new_job(self: &Arc<Self>) -> Result<JobId, NodeError> {
        match self.ask_head(HeadRequest::NewJob).await {
            Some(HeadAnswer::Job(job)) => Ok(job),
            _ => Err(NodeError::ShuttingDown),
        }
    }

    /// Runs `module`'s `main` as the driver of `job` (an ID from [`NodeInner::new_job`]).
    pub(crate) async fn run_driver_as(
        self: &Arc<Self>,
        job: JobId,
        module: &Arc<GuestModule>,
        args: &[String],
        options: JobOptions,
        hooks: DriverHooks,
    ) -> Result<DriverExit, NodeError> {
        self.check_driver(module)?;
        self.errors.begin(job);
        let quotas = options.quotas;
        let entry = self.jobs.begin(job, options, hooks.output);
        let output = Arc::clone(&entry.output);
        let dirs = Arc::clone(&entry.dirs);
        let memory_pools = self.jobs.memory_pools(&entry);
        let job_limits = Arc::clone(&entry.limits);
        // However the driver ends, the job's entry goes and its output is flushed.
        let _job = EndJob(self, job);
        let driver = self.mint.next_task();
        let mut argv = vec![module.name().to_owned()];
        argv.extend_from_slice(args);
        // A driver's instance takes one of the pool's slots like any other, so that a task
        // never finds the slot it was promised taken by a driver.
        let _slot = self.pool.slot().await.ok_or(NodeError::ShuttingDown)?;
        // A driver is held to the node's largest memory cap and the tasks' default CPU limit
        // (time blocked in `get` does not count), its start function included.
        let driver_limits = CallLimits {
            memory_bytes: self.config.max_task_memory,
            cpu_time: self.config.default_cpu_time_limit,
        };
        let mut instance = GuestInstance::new(
            &self.host,
            module,
            InstanceSetup {
                services: GuestServices::shared(self),
                output,
                max_handles: quotas.max_handles,
                limits: driver_limits,
                dirs,
                memory_pools,
                job: job_limits,
                args: argv,
                nested: None,
            },
        )
        .await?;
        // A stop thrown from outside (`wasmray job stop`) kills the driver's instance.
        let _stop_watch = hooks.stop.map(|stop| {
            let kill = instance.kill_switch();
            AbortOnDrop(tokio::spawn(async move {
                stop.killed().await;
                kill.kill();
            }))
        });
        let caller = Caller {
            task: driver,
            run: driver,
            job,
            module: module.id(),
            lineage: Lineage::root("main"),
            actor: None,
            gpu_ids: Vec::new(),
            driver: self.id,
        };
        let finished = instance.run_main(caller, driver_limits).await;
        self.release(&finished.held);
        // The job's actors go with its driver, unless detached (as in Ray).
        self.event(Event::JobFinished(job));
        self.errors.forget(job);
        Ok(match finished.outcome {
            MainOutcome::Exited(code) => DriverExit::Exited(code),
            MainOutcome::Failed(error) => DriverExit::Failed(error),
        })
    }
}

/// Output of jobs whose drivers run on other nodes goes to the driver's node (`relay.rs`).
fn relay_remote_output(inner: &Arc<NodeInner>) {
    let weak = Arc::downgrade(inner);
    let me = inner.id;
    inner
        .jobs
        .set_remote_output(Box::new(move |job, driver, here| {
            if driver == me {
                return here;
            }
            let node = weak.clone();
            let send: crate::relay::SendLine = Box::new(move |to, line| {
                let Some(node) = node.upgrade() else { return };
                let Some(net) = &node.net else { return };
                match crate::wire_codec::encode_output(line) {
                    Ok(frame) => net.send(to, frame),
                    Err(e) => tracing::warn!("could not encode an output line: {e}"),
                }
            });
            Arc::new(crate::relay::OutputRelay::new(job, me, driver, send))
        }));
}

impl NodeInner {
    /// Runs a submitted job's driver on its own, its output going to `log`, stopped by
    /// `stop`; how it ends goes to the job's record (`submitted.rs`).
    pub(crate) fn spawn_submitted(
        self: &Arc<Self>,
        job: JobId,
        module: Arc<GuestModule>,
        args: Vec<String>,
        options: JobOptions,
        log: Arc<crate::submitted::LogFile>,
        stop: wasmray_wasm::KillSwitch,
    ) {
        let hooks = DriverHooks {
            output: Some(log as Arc<dyn OutputSink>),
            stop: Some(stop),
        };
        let node = Arc::clone(self);
        tokio::spawn(async move {
            let exit = node
                .run_driver_as(job, &module, &args, options, hooks)
                .await;
            let ended = match exit {
                Ok(DriverExit::Exited(code)) => Ended::Exited(code),
                Ok(DriverExit::Failed(error)) => Ended::Failed(error.to_string()),
                Err(error) => Ended::Failed(error.to_string()),
            };
            node.submitted.finish(job, ended);
        });
    }
}

/// What a driver started from outside the node's API (a submitted job) comes with.
#[derive(Default)]
pub(crate) struct DriverHooks {
    /// Where the job's output goes instead of the node's sink.
    pub(crate) output: Option<Arc<dyn OutputSink>>,
    /// Thrown to stop the driver.
    pub(crate) stop: Option<wasmray_wasm::KillSwitch>,
}

/// Ends a job's entry (`jobs.rs`) when dropped.
struct EndJob<'a>(&'a NodeInner, JobId);

impl Drop for EndJob<'_> {
    fn drop(&mut self) {
        self.0.jobs.end(self.1);
        self.0.pool.forget_job(self.1);
    }
}

/// What carrying out each of the scheduler's actions means on this node.
fn apply(node: &Arc<NodeInner>, action: Action<Value>) {
    {
        match action {
            Action::Run(run) => start(node, run),
            Action::Sealed(id) => node.waiters.wake(id),
            Action::Retry {
                task,
                function,
                attempt,
                error,
            } => {
                let reason = error.message.lines().last().unwrap_or_default().to_owned();
                tracing::warn!(%task, %function, attempt, %reason, "task failed; retrying");
            }
            Action::Rebuild {
                object,
                task,
                function,
                attempt,
            } => {
                tracing::warn!(%object, %task, %function, attempt, "result lost with every copy; making it again");
            }
            Action::Failed { task, job, error } => {
                tracing::debug!(%task, %error, "task failed");
                node.errors.record(job, task, &error);
            }
            Action::StopActor(actor) => node.stop_actor(actor),
            Action::ActorDied { actor, cause } => {
                tracing::debug!(%actor, %cause, "actor died");
                node.forget_actor(actor);
            }
            Action::Restart {
                actor,
                attempt,
                cause,
            } => {
                let reason = cause.message.lines().last().unwrap_or_default().to_owned();
                tracing::warn!(%actor, attempt, %reason, "actor restarting");
            }
            Action::StopTask(_) => {}
            Action::Send {
                to: Peer::Head,
                envelope,
            } if node.is_head => node.to_head(node.id, envelope),
            Action::Send {
                to: Peer::Head,
                envelope,
            } => {
                if let Some(head) = node.net.as_ref().map(|net| net.head()) {
                    node.send_frame(head, Route::ToHead, &envelope);
                }
            }
            Action::Send {
                to: Peer::Node(to),
                envelope,
            } => node.send_frame(to, Route::Peer, &envelope),
            Action::Fetch {
                object,
                from,
                len,
                contained,
            } => remote::fetch(node, object, from, len, contained),
            Action::Answered { request, answer } => node.asks.answered(request, answer),
            Action::Lent { object, granted } => {
                if !node.asks.lent(object, granted) {
                    // Granted to a lookup that is gone: let go of it.
                    node.event(Event::Release(object));
                }
            }
            Action::Fenced => {
                tracing::error!("the head declared this node dead");
                node.fenced.send_replace(true);
            }
            Action::Drained => {
                tracing::info!("drained: the node's work is done and its copies re-homed");
                node.drained.send_replace(true);
            }
            Action::JobEnded(job) => {
                // Its driver ran elsewhere: its entry here goes (what still runs keeps it).
                node.jobs.end(job);
                node.pool.forget_job(job);
                node.errors.forget(job);
            }
            // A cancelled task's results were given up on purpose (as in Ray).
            Action::UnhandledError(error) if error.kind == wasmray_core::ErrorKind::Cancelled => {}
            Action::UnhandledError(error) => {
                let text = format!("unhandled error (the result was never retrieved): {error}");
                for line in text.lines() {
                    node.jobs
                        .reports()
                        .line(Some("wasmray"), Stream::Stderr, line);
                }
            }
        }
    }
}

/// Starts what the scheduler dispatched: a task or an actor's constructor in a runtime task of
/// its own, a method call in its actor's queue.
fn start(node: &Arc<NodeInner>, run: RunTask<Value>) {
    let node = Arc::clone(node);
    match run.spec.kind {
        TaskKind::Task => drop(tokio::spawn(node.execute_task(run))),
        TaskKind::ActorCreation(_) => drop(tokio::spawn(node.construct_actor(run))),
        TaskKind::ActorMethod { actor } => node.dispatch_method(actor, run),
    }
}

/// Fires the scheduler's and the head's timers when they are due, for as long as the node
/// lives. Wakes at least once a second, so a deadline of the scheduler's that moved earlier is
/// seen in time for the timers that exist (heartbeats, resends); the head's wake it at once.
async fn timers(node: Weak<NodeInner>) {
    loop {
        let wake = {
            let Some(node) = node.upgrade() else {
                return;
            };
            if node.shutting_down.load(Ordering::Relaxed) {
                return;
            }
            if node.net.is_some() {
                let store = node.store.stats();
                let used = store.arena_used + store.inline_used;
                node.with_sched(|sched, _| sched.set_store_used(used));
            }
            node.fire_timers();
            let now = Instant::now();
            let soon = now + Duration::from_secs(1);
            // The scheduler's clock is coarse (see sched_cell.rs): a deadline this clock has
            // passed may not be due on it yet, so wait at least a millisecond.
            let wake = node
                .next_timeout()
                .map_or(soon, |t| node.instant(t).min(soon))
                .max(now + Duration::from_millis(1));
            (wake, Arc::clone(&node.timer_wake))
        };
        let (wake, early) = wake;
        // Woken early when the head's next deadline moves earlier. The node itself is not
        // held while asleep, so dropping it ends this task.
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = early.notified() => {}
        }
    }
}

/// A spawned task that is aborted when its handle is dropped before it finished.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// 64 random bits from the OS, for node IDs (falls back to time and pid where unavailable).
fn random_u64() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_le_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}
