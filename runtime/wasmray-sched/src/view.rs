//! The cluster's resources as one node sees them, and where a task that does not fit locally
//! should go.
//!
//! Each node's entry is a snapshot (totals, available, alive) with the version its node gave
//! it; a snapshot older than the one held is ignored (latest wins), so snapshots may arrive
//! late, twice or out of order. The view is advisory: the node a task is sent to grants or
//! rejects it from its own ledger, so a stale view costs a rejection, never a wrong placement.
//!
//! Placement is Ray's hybrid policy (`hybrid_scheduling_policy.cc`), one hop: a node where the
//! task fits what is *available* beats one where it merely fits the totals; a node's score is
//! its critical utilisation after placing the task, counted as 0 below one half, so lightly
//! loaded nodes tie; CPU-only work avoids GPU nodes while others can take it; the choice is
//! random among the best fifth. This module does not decide whether to run locally (the
//! scheduler tries its own ledger first) and does no I/O.

use crate::rng::Rng;
use std::collections::BTreeMap;
use wasmray_core::{GPU, NodeId, ResourceSet};

/// One node's resources, as it last reported them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Increases with every change the node reports.
    pub version: u64,
    pub total: ResourceSet,
    pub available: ResourceSet,
    /// Bytes the node's object store holds (for status displays; placement ignores it).
    pub store_used: u64,
}

/// What the view holds for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub snapshot: Snapshot,
    pub alive: bool,
    /// It drains: no new work goes there.
    pub draining: bool,
}

/// Utilisation below this counts as idle (Ray's `scheduler_spread_threshold`).
const SPREAD_THRESHOLD: f64 = 0.5;
/// The share of nodes a random pick is made among (Ray's top-k fraction).
const TOP_FRACTION: f64 = 0.2;
/// How much a node keeps in flight to another node beyond what that node has free, as a
/// multiple of its totals, for leases that may wait there (the executor queues them, as Ray's
/// raylet queues lease requests): a burst of small tasks keeps a remote node busy instead of
/// waiting a round trip for each of its free CPUs.
pub const LEASE_WINDOW: u32 = 8;

/// Every node's latest snapshot.
#[derive(Debug, Clone)]
pub struct ClusterView {
    local: NodeId,
    nodes: BTreeMap<NodeId, NodeView>,
    /// What this node's own leases in flight take on each node: counted off its snapshot
    /// until the lease is answered, so a burst spreads instead of piling onto one node.
    leased: BTreeMap<NodeId, ResourceSet>,
    /// Live nodes other than this one (kept, since every event asks).
    live_peers: usize,
}

impl ClusterView {
    /// A view holding only the local node.
    pub fn new(local: NodeId, total: ResourceSet) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            local,
            NodeView {
                snapshot: Snapshot {
                    version: 0,
                    available: total.clone(),
                    store_used: 0,
                    total,
                },
                alive: true,
                draining: false,
            },
        );
        Self {
            local,
            nodes,
            leased: BTreeMap::new(),
            live_peers: 0,
        }
    }

    /// Takes `snapshot` for `node` if it is newer than what the view holds. A node known to
    /// be dead stays dead. Returns whether anything changed.
    pub fn update(&mut self, node: NodeId, snapshot: Snapshot) -> bool {
        match self.nodes.get_mut(&node) {
            Some(view) if !view.alive || view.snapshot.version >= snapshot.version => false,
            Some(view) => {
                view.snapshot = snapshot;
                true
            }
            None => {
                self.nodes.insert(
                    node,
                    NodeView {
                        snapshot,
                        alive: true,
                        draining: false,
                    },
                );
                self.count_peers();
                true
            }
        }
    }

    /// The local node's latest snapshot (the view's local entry is only as fresh as the last
    /// snapshot the scheduler made).
    pub(crate) fn set_local(&mut self, snapshot: &Snapshot) {
        if let Some(view) = self.nodes.get_mut(&self.local) {
            view.snapshot = snapshot.clone();
        }
    }

    /// Marks `node` dead; it is never picked again.
    pub fn mark_dead(&mut self, node: NodeId) -> bool {
        self.leased.remove(&node);
        match self.nodes.get_mut(&node) {
            Some(view) if view.alive => {
                view.alive = false;
                self.count_peers();
                true
            }
            Some(_) => false,
            None => {
                // Remember the death, so a late snapshot cannot bring it back.
                self.nodes.insert(
                    node,
                    NodeView {
                        snapshot: Snapshot {
                            version: u64::MAX,
                            total: ResourceSet::new(),
                            available: ResourceSet::new(),
                            store_used: 0,
                        },
                        alive: false,
                        draining: false,
                    },
                );
                true
            }
        }
    }

    /// Marks `node` as draining: it is never picked for new work again.
    pub fn mark_draining(&mut self, node: NodeId) {
        if let Some(view) = self.nodes.get_mut(&node) {
            view.draining = true;
        }
    }

    /// Whether any other live node is known.
    pub fn has_peers(&self) -> bool {
        self.live_peers > 0
    }

    fn count_peers(&mut self) {
        let local = self.local;
        self.live_peers = self
            .nodes
            .iter()
            .filter(|(id, v)| **id != local && v.alive)
            .count();
    }

    /// How many other nodes are alive in the view.
    pub fn live_peers(&self) -> usize {
        self.live_peers
    }

    /// Every node and what the view holds for it, in node order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &NodeView)> {
        self.nodes.iter().map(|(id, view)| (*id, view))
    }

    /// The live nodes' totals added up.
    pub fn cluster_total(&self) -> ResourceSet {
        let mut sum = ResourceSet::new();
        for view in self.nodes.values().filter(|v| v.alive) {
            sum.add(&view.snapshot.total);
        }
        sum
    }

    /// Whether some live node could ever hold `demand`.
    pub fn feasible_somewhere(&self, demand: &ResourceSet) -> bool {
        self.nodes
            .values()
            .any(|v| v.alive && demand.fits_in(&v.snapshot.total))
    }

    /// What `demand` lacks on the live node that comes closest to holding it: the names no
    /// node has enough of.
    pub fn shortfall(&self, demand: &ResourceSet) -> Vec<String> {
        self.nodes
            .values()
            .filter(|v| v.alive)
            .map(|v| demand.shortfall(&v.snapshot.total))
            .min_by_key(Vec::len)
            .unwrap_or_else(|| demand.shortfall(&ResourceSet::new()))
    }

    /// A lease of `demand` to `node` was answered (or its node died).
    pub(crate) fn unlease(&mut self, node: NodeId, demand: &ResourceSet) {
        if let Some(leased) = self.leased.get_mut(&node) {
            leased.subtract(demand);
            if leased.is_empty() {
                self.leased.remove(&node);
            }
        }
    }

    /// A remote node to send `demand` to now, or `None` if no other live node has it
    /// available (counting this node's leases in flight there). A lease that `may_wait` on
    /// its executor goes, when no node has it available, to a node whose totals hold it
    /// with this node's leases in flight there within [`LEASE_WINDOW`] times its totals. The
    /// demand counts as leased to the chosen node until [`ClusterView::unlease`].
    pub(crate) fn pick_remote(
        &mut self,
        demand: &ResourceSet,
        may_wait: bool,
        rng: &mut Rng,
    ) -> Option<NodeId> {
        let wants_gpu = demand.get(GPU) > 0.0;
        let mut candidates: Vec<(NodeId, f64, bool)> = Vec::new();
        let mut waiting: Vec<(NodeId, f64, bool)> = Vec::new();
        for (id, view) in &self.nodes {
            if *id == self.local || !view.alive || view.draining {
                continue;
            }
            let mut snapshot = view.snapshot.clone();
            let leased = self.leased.get(id);
            if let Some(leased) = leased {
                snapshot.available.subtract(leased);
            }
            let has_gpu = snapshot.total.get(GPU) > 0.0;
            if demand.fits_in(&snapshot.available) {
                candidates.push((*id, score(demand, &snapshot), has_gpu));
            } else if may_wait && demand.fits_in(&snapshot.total) {
                let mut in_flight = leased.cloned().unwrap_or_default();
                in_flight.add(demand);
                if in_flight.fits_in_times(&snapshot.total, LEASE_WINDOW) {
                    // The fewer of this node's leases wait there, the better.
                    let load = in_flight.get(wasmray_core::CPU)
                        / snapshot.total.get(wasmray_core::CPU).max(1.0);
                    waiting.push((*id, load, has_gpu));
                }
            }
        }
        if candidates.is_empty() {
            candidates = waiting;
        }
        if !wants_gpu && candidates.iter().any(|c| !c.2) {
            candidates.retain(|c| !c.2);
        }
        if candidates.is_empty() {
            return None;
        }
        candidates.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let k =
            ((self.nodes.len() as f64 * TOP_FRACTION).ceil() as usize).clamp(1, candidates.len());
        let chosen = candidates[rng.below(k)].0;
        self.leased.entry(chosen).or_default().add(demand);
        Some(chosen)
    }
}

/// A node's critical utilisation once `demand` is placed on it, 0 below the spread threshold.
fn score(demand: &ResourceSet, snapshot: &Snapshot) -> f64 {
    let mut worst: f64 = 0.0;
    for (name, total) in snapshot.total.to_pairs() {
        if total <= 0.0 {
            continue;
        }
        let used = total - snapshot.available.get(&name) + demand.get(&name);
        worst = worst.max(used / total);
    }
    if worst < SPREAD_THRESHOLD { 0.0 } else { worst }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmray_core::CPU;

    fn set(pairs: &[(&str, f64)]) -> ResourceSet {
        ResourceSet::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn snap(version: u64, total: &[(&str, f64)], available: &[(&str, f64)]) -> Snapshot {
        Snapshot {
            version,
            total: set(total),
            available: set(available),
            store_used: 0,
        }
    }

    #[test]
    fn latest_snapshot_wins_and_death_is_final() {
        let mut view = ClusterView::new(NodeId(1), set(&[(CPU, 1.0)]));
        assert!(view.update(NodeId(2), snap(2, &[(CPU, 4.0)], &[(CPU, 4.0)])));
        assert!(!view.update(NodeId(2), snap(1, &[(CPU, 4.0)], &[(CPU, 0.0)])));
        assert!(view.mark_dead(NodeId(2)));
        assert!(!view.update(NodeId(2), snap(9, &[(CPU, 4.0)], &[(CPU, 4.0)])));
        assert_eq!(view.cluster_total(), set(&[(CPU, 1.0)]));
    }

    #[test]
    fn available_beats_feasible_and_cpu_work_avoids_gpu_nodes() {
        let mut rng = Rng::new(1);
        let mut view = ClusterView::new(NodeId(1), set(&[(CPU, 1.0)]));
        view.update(NodeId(2), snap(1, &[(CPU, 8.0)], &[(CPU, 0.0)]));
        view.update(
            NodeId(3),
            snap(1, &[(CPU, 2.0), (GPU, 1.0)], &[(CPU, 2.0), (GPU, 1.0)]),
        );
        view.update(NodeId(4), snap(1, &[(CPU, 2.0)], &[(CPU, 2.0)]));
        let one_cpu = set(&[(CPU, 1.0)]);
        assert_eq!(view.pick_remote(&one_cpu, false, &mut rng), Some(NodeId(4)));
        assert_eq!(view.pick_remote(&one_cpu, false, &mut rng), Some(NodeId(4)));
        // Node 4 is now full in the view: only the GPU node has room.
        assert_eq!(view.pick_remote(&one_cpu, false, &mut rng), Some(NodeId(3)));
        assert_eq!(
            view.pick_remote(&set(&[(GPU, 1.0)]), false, &mut rng),
            Some(NodeId(3))
        );
        assert_eq!(view.pick_remote(&one_cpu, false, &mut rng), Some(NodeId(3)));
        assert_eq!(view.pick_remote(&one_cpu, false, &mut rng), None);
        assert!(view.feasible_somewhere(&set(&[(CPU, 8.0)])));
        assert_eq!(view.shortfall(&set(&[(CPU, 9.0)])), vec!["CPU".to_owned()]);
    }

    #[test]
    fn leases_that_may_wait_fill_a_window_beyond_what_is_free() {
        let mut rng = Rng::new(1);
        let mut view = ClusterView::new(NodeId(1), set(&[(CPU, 0.0)]));
        view.update(NodeId(2), snap(1, &[(CPU, 2.0)], &[(CPU, 2.0)]));
        let one_cpu = set(&[(CPU, 1.0)]);
        let window = 2 * LEASE_WINDOW as usize;
        for n in 0..window {
            assert_eq!(
                view.pick_remote(&one_cpu, true, &mut rng),
                Some(NodeId(2)),
                "lease {n}"
            );
        }
        assert_eq!(
            view.pick_remote(&one_cpu, true, &mut rng),
            None,
            "the window is full"
        );
        // Leases that may not wait stop at what is free.
        assert_eq!(view.pick_remote(&one_cpu, false, &mut rng), None);
        view.unlease(NodeId(2), &one_cpu);
        assert_eq!(view.pick_remote(&one_cpu, true, &mut rng), Some(NodeId(2)));
        // More than the node's totals never waits there.
        assert_eq!(view.pick_remote(&set(&[(CPU, 3.0)]), true, &mut rng), None);
    }
}
