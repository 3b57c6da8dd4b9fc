//! Clusters for tests, in one process: a head and nodes joined to it over real QUIC on
//! loopback (port 0), each a full node with its own store and wasm host. (Clusters of
//! separate processes are in `tests/all/cluster.rs`, through the CLI.)

use crate::{Capture, test_config};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmray_node::{ClusterConfig, HealthCheck, Node, NodeConfig};

/// A head and the nodes that joined it.
pub struct LocalCluster {
    pub head: Node,
    pub nodes: Vec<Node>,
    /// What every node's guests printed (one sink for the whole cluster).
    pub output: Arc<Capture>,
}

fn loopback() -> ClusterConfig {
    ClusterConfig::new("127.0.0.1:0".parse().expect("an address"))
}

/// The head's health check in tests that want a death seen fast: a silent node is declared
/// dead 100 ms after its last word (20 ms × 3 + 40 ms).
pub const FAST_HEALTH_CHECK: HealthCheck = HealthCheck {
    period: Duration::from_millis(20),
    timeout: Duration::from_millis(40),
    failures: 3,
};

impl LocalCluster {
    /// A head with `head_cpus` CPUs and one node per entry of `nodes` (its CPUs and custom
    /// resources); returns once the head's scheduler sees every node.
    pub async fn start(head_cpus: f64, nodes: &[(f64, &[(&str, f64)])]) -> anyhow::Result<Self> {
        Self::start_with(head_cpus, nodes, |_| {}).await
    }

    /// As [`LocalCluster::start`], each node's configuration changed by `adjust` first.
    pub async fn start_with(
        head_cpus: f64,
        nodes: &[(f64, &[(&str, f64)])],
        adjust: impl Fn(&mut NodeConfig),
    ) -> anyhow::Result<Self> {
        Self::start_checking(HealthCheck::default(), head_cpus, nodes, adjust).await
    }

    /// As [`LocalCluster::start_with`], the head checking nodes' health with `health`.
    pub async fn start_checking(
        health: HealthCheck,
        head_cpus: f64,
        nodes: &[(f64, &[(&str, f64)])],
        adjust: impl Fn(&mut NodeConfig),
    ) -> anyhow::Result<Self> {
        let output = Arc::new(Capture::default());
        let mut config = test_config(head_cpus, Arc::clone(&output));
        adjust(&mut config);
        let mut cluster = loopback();
        cluster.health = health;
        let head = Node::start_head(config, cluster)?;
        let address = head.cluster_address().expect("the head listens");
        let pin = head.ca_pin().expect("the head has a CA");
        let token = head.add_join_token(None)?;
        let mut joined = Vec::new();
        for (cpus, resources) in nodes {
            let mut config = test_config(*cpus, Arc::clone(&output));
            config.resources = resources
                .iter()
                .map(|(name, amount)| (name.to_string(), *amount))
                .collect();
            adjust(&mut config);
            joined.push(Node::join(config, loopback(), address, pin, &token).await?);
        }
        let cluster = Self {
            head,
            nodes: joined,
            output,
        };
        cluster.wait_for_nodes(nodes.len() + 1).await?;
        Ok(cluster)
    }

    /// Waits until every node's scheduler sees `n` live nodes.
    pub async fn wait_for_nodes(&self, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen: Vec<usize> = std::iter::once(&self.head)
                .chain(&self.nodes)
                .map(Node::live_nodes)
                .collect();
            if seen.iter().all(|&s| s == n) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("nodes see {seen:?} live nodes, not {n} each, after 20 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every node, head first.
    pub fn all(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.head).chain(&self.nodes)
    }
}
