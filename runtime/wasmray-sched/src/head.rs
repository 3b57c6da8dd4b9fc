//! The head's control state, as a state machine: membership, job IDs, actor names, the
//! module registry.
//!
//! One node of a cluster runs the head beside its scheduler. Nodes join with their resources
//! and report changes; the head relays every node's latest snapshot to the others (latest
//! wins) and is the only one that declares a node dead, which it then tells every live node.
//! It checks health itself ([`HealthCheck`]): a node it has heard nothing from for a period
//! is pinged, once a period, and one whose last `failures` pings all went unanswered past the
//! timeout is dead; any message counts as an answer, so a busy link is never pinged. A
//! connection that closed makes its node suspect ([`HeadEvent::Suspect`]): it is pinged at
//! once rather than a period later. Death is final: the node's links
//! are forgotten, and anything it sends later is answered with [`Message::Fenced`]. Each
//! member gets an incarnation number at join, increasing across the cluster's life. Job IDs
//! are minted here, so they (and the default namespaces `job-<id>`) are unique in the
//! cluster; actor names are registered per namespace.
//!
//! Like the scheduler, it does no I/O and reads no clock: it takes events with the time and
//! answers with actions. It is not on the data path: objects and tasks never pass through it.

use crate::link::{Envelope, Links, Peer};
use crate::message::{HeadAnswer, HeadRequest, Message};
use crate::time::{Time, earliest};
use crate::view::Snapshot;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use wasmray_core::{ActorName, JobId, ModuleId, NodeId, TaskId};

/// How the head checks that nodes are alive (Ray's `health_check_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// A node not heard from for this long is pinged, and pinged again each period after.
    pub period: Duration,
    /// A ping unanswered for this long is a miss.
    pub timeout: Duration,
    /// This many misses in a row (with nothing heard in between) and the node is dead.
    pub failures: u32,
}

impl HealthCheck {
    /// The longest a node can be silent before it is declared dead:
    /// `period × failures + timeout` (less when its connection closed).
    pub fn detection_bound(&self) -> Duration {
        self.period.saturating_mul(self.failures) + self.timeout
    }
}

impl Default for HealthCheck {
    /// 1 s, 2 s, 3 misses: a dead node is declared 5 s after it was last heard (4 s after its
    /// connection closed).
    fn default() -> Self {
        Self {
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            failures: 3,
        }
    }
}

/// How the head paces itself.
#[derive(Debug, Clone)]
pub struct HeadConfig {
    pub health: HealthCheck,
    /// First resend of an unacknowledged message (doubling after).
    pub resend_after: Duration,
    /// The node the head runs on: never declared dead (its reports come in-process; a head
    /// that cannot hear itself has nobody to tell).
    pub local: Option<NodeId>,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            health: HealthCheck::default(),
            resend_after: Duration::from_millis(500),
            local: None,
        }
    }
}

/// How long a head restored from a stored state waits before it checks the health of the
/// members it was restored with (as Ray's GCS waits for raylets to reconnect).
pub const RESTORED_GRACE: Duration = Duration::from_secs(10);

/// How many dead or departed members the head keeps whole (for status displays); older ones
/// are forgotten but for their IDs, which stay refused. A cluster whose drivers come and go
/// (each `wasmray run --address` is a member while it runs) would otherwise grow without end.
pub const KEPT_GONE_MEMBERS: usize = 64;

/// A member's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberState {
    Alive,
    Dead,
    /// It said it was leaving (told to the others as a death).
    Left,
}

/// One node as the head knows it.
#[derive(Debug, Clone)]
pub struct Member {
    pub incarnation: u64,
    pub snapshot: Snapshot,
    pub state: MemberState,
    pub last_heard: Time,
    /// It drains (`wasmray drain`, or it is stopping): no new work goes there.
    pub draining: bool,
    /// When each ping sent since the node was last heard went out, oldest first (at most
    /// `failures` of them).
    pings: VecDeque<Time>,
    /// When the next ping is due (a period after the last word or ping; at once when suspect).
    next_ping: Time,
    /// Restored from a stored state by a restarted head: its next `Join` is the node
    /// reconnecting, not a new one.
    restored: bool,
}

impl Member {
    fn heard(&mut self, now: Time, health: &HealthCheck) {
        self.last_heard = now;
        self.pings.clear();
        self.next_ping = now.after(health.period);
    }

    /// When this member's health check next needs the head: its next ping, or once every
    /// ping it may have outstanding is out, the timeout of the last (its death, unless heard).
    fn check_due(&self, health: &HealthCheck) -> Time {
        match self.pings.back() {
            Some(last) if self.pings.len() >= health.failures.max(1) as usize => {
                last.after(health.timeout)
            }
            _ => self.next_ping,
        }
    }

    /// How many of its pings went unanswered past the timeout at `now`.
    fn misses(&self, now: Time, health: &HealthCheck) -> usize {
        self.pings
            .iter()
            .take_while(|sent| sent.after(health.timeout) <= now)
            .count()
    }
}

/// A registered actor name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct NameEntry {
    actor: TaskId,
    class: String,
    job: JobId,
}

/// What of the head outlives it (`wasmray-node` stores it; see `head_store.rs` there): its
/// members (not their snapshots, which they report again), the IDs refused for good, the
/// counters, actor names and modules. Opaque outside this crate but for its encoding.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeadState {
    /// The node the head ran on when this was stored (dead once another head takes over).
    head: Option<NodeId>,
    members: Vec<(NodeId, u64, MemberState, bool)>,
    gone: Vec<NodeId>,
    next_incarnation: u64,
    next_job: u32,
    names: Vec<(ActorName, NameEntry)>,
    modules: Vec<(ModuleId, u64)>,
}

impl HeadState {
    /// Members alive when it was stored (the head's own node included).
    pub fn live_members(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.2 == MemberState::Alive)
            .count()
    }

    /// Actor names registered.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// The job ID the next job gets.
    pub fn next_job(&self) -> u32 {
        self.next_job
    }
}

/// What the head takes in.
#[derive(Debug)]
pub enum HeadEvent<V> {
    /// An envelope arrived from a node.
    Received {
        from: NodeId,
        envelope: Envelope<Message<V>>,
    },
    /// The time given by [`Head::poll_timeout`] came.
    Timeout,
    /// The connection to `node` closed or was reset: ping it at once.
    Suspect(NodeId),
}

/// What the head asks its driver to do.
#[derive(Debug)]
pub enum HeadAction<V> {
    /// Send `envelope` to `to`.
    Send {
        to: NodeId,
        envelope: Envelope<Message<V>>,
    },
    /// The head declared `node` dead (after telling every live node).
    Declared(NodeId),
}

/// The head's state machine.
#[derive(Debug)]
pub struct Head<V> {
    config: HeadConfig,
    links: Links<Message<V>>,
    members: BTreeMap<NodeId, Member>,
    /// Members that died or left and were forgotten (past [`KEPT_GONE_MEMBERS`]): only their
    /// IDs, so that they stay refused.
    gone: std::collections::BTreeSet<NodeId>,
    next_incarnation: u64,
    next_job: u32,
    names: BTreeMap<ActorName, NameEntry>,
    modules: BTreeMap<ModuleId, u64>,
    actions: Vec<HeadAction<V>>,
    /// Something [`HeadState`] holds changed since [`Head::take_state`] last looked.
    dirty: bool,
}

impl<V: Clone> Head<V> {
    pub fn new(config: HeadConfig) -> Self {
        Self {
            links: Links::new(config.resend_after),
            config,
            members: BTreeMap::new(),
            gone: std::collections::BTreeSet::new(),
            next_incarnation: 1,
            next_job: 1,
            names: BTreeMap::new(),
            modules: BTreeMap::new(),
            actions: Vec::new(),
            dirty: true,
        }
    }

    /// A head taking over from the one that stored `state` (restarted on its data
    /// directory), at `now`. The members alive then are taken as alive but must speak
    /// within the health check's bound, as any silent node; the head they knew (the
    /// previous one's node) is dead, and each hears so when it reconnects.
    pub fn restore(config: HeadConfig, state: HeadState, now: Time) -> Self {
        let mut head = Self::new(config);
        head.next_incarnation = state.next_incarnation;
        head.next_job = state.next_job;
        head.names = state.names.into_iter().collect();
        head.modules = state.modules.into_iter().collect();
        head.gone = state.gone.into_iter().collect();
        for (id, incarnation, member_state, draining) in state.members {
            if member_state != MemberState::Alive || Some(id) == state.head {
                // Dead, departed, or the previous head's own node: refused for good.
                head.gone.insert(id);
                continue;
            }
            head.members.insert(
                id,
                Member {
                    incarnation,
                    snapshot: Snapshot {
                        version: 0,
                        total: wasmray_core::ResourceSet::new(),
                        available: wasmray_core::ResourceSet::new(),
                        store_used: 0,
                    },
                    state: MemberState::Alive,
                    last_heard: now,
                    draining,
                    pings: VecDeque::new(),
                    // Checked once it had time to find this head (its own watch looks after
                    // a few seconds of silence, then dials with backoff).
                    next_ping: now.after(RESTORED_GRACE),
                    restored: true,
                },
            );
        }
        head.dirty = true;
        head
    }

    /// The state to store, if it changed since the last call.
    pub fn take_state(&mut self) -> Option<HeadState> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(HeadState {
            head: self.config.local,
            members: self
                .members
                .iter()
                .map(|(id, m)| (*id, m.incarnation, m.state, m.draining))
                .collect(),
            gone: self.gone.iter().copied().collect(),
            next_incarnation: self.next_incarnation,
            next_job: self.next_job,
            names: self
                .names
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            modules: self.modules.iter().map(|(k, v)| (*k, *v)).collect(),
        })
    }

    /// Takes in one event at `now`.
    pub fn handle(&mut self, now: Time, event: HeadEvent<V>) {
        match event {
            HeadEvent::Received { from, envelope } => self.received(now, from, envelope),
            HeadEvent::Timeout => {
                self.check_liveness(now);
                for (peer, envelope) in self.links.resends(now) {
                    self.push_send(peer, envelope);
                }
            }
            HeadEvent::Suspect(node) => {
                if let Some(member) = self.members.get_mut(&node)
                    && member.state == MemberState::Alive
                    && member.pings.is_empty()
                {
                    member.next_ping = now;
                    self.check_liveness(now);
                }
            }
        }
        for (peer, envelope) in self.links.take_acks(now) {
            self.push_send(peer, envelope);
        }
    }

    /// When [`HeadEvent::Timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Time> {
        let health = &self.config.health;
        let liveness = self
            .members
            .iter()
            .filter_map(|(id, m)| match m.state {
                MemberState::Alive if Some(*id) != self.config.local => Some(m.check_due(health)),
                MemberState::Left if !self.links.is_dead(Peer::Node(*id)) => {
                    Some(m.last_heard.after(health.detection_bound()))
                }
                _ => None,
            })
            .min();
        earliest(liveness, self.links.poll_timeout())
    }

    /// What the head sent and was not acknowledged yet (the simulator waits for it).
    #[cfg(test)]
    pub(crate) fn unacked_messages(&self) -> impl Iterator<Item = &Message<V>> {
        self.links.unacked_messages()
    }

    /// Takes the actions produced so far, in the order they must be carried out.
    pub fn drain_actions(&mut self) -> Vec<HeadAction<V>> {
        std::mem::take(&mut self.actions)
    }

    /// Every node that ever joined, in node order.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, &Member)> {
        self.members.iter().map(|(id, m)| (*id, m))
    }

    /// Answers a node's control request at `now` (on the head's own node, asked directly;
    /// then carry out [`Head::drain_actions`] after).
    pub fn answer(&mut self, now: Time, ask: HeadRequest) -> HeadAnswer {
        match ask {
            HeadRequest::Drain { node } => HeadAnswer::Draining(self.drain(now, node)),
            HeadRequest::NewJob => HeadAnswer::Job(self.new_job()),
            HeadRequest::ClaimName {
                name,
                actor,
                class,
                job,
            } => HeadAnswer::Claimed(self.claim_name(name, actor, class, job)),
            HeadRequest::ReleaseName { name, actor } => {
                self.release_name(&name, actor);
                HeadAnswer::Released
            }
            HeadRequest::LookupName { name } => HeadAnswer::Found(self.lookup_name(&name)),
        }
    }

    /// Drains `node`: every live node (`node` too) hears it, and nodes that join later do.
    /// False if `node` is not a live member, or is the head's own.
    pub fn drain(&mut self, now: Time, node: NodeId) -> bool {
        if Some(node) == self.config.local {
            return false;
        }
        let Some(member) = self.members.get_mut(&node) else {
            return false;
        };
        if member.state != MemberState::Alive {
            return false;
        }
        if !member.draining {
            member.draining = true;
            self.dirty = true;
            let alive: Vec<NodeId> = self
                .members
                .iter()
                .filter(|(_, m)| m.state == MemberState::Alive)
                .map(|(id, _)| *id)
                .collect();
            for to in alive {
                self.send(now, to, Message::Drain { node });
            }
        }
        true
    }

    /// A new job ID, unique in the cluster.
    pub fn new_job(&mut self) -> JobId {
        let job = JobId(self.next_job);
        self.next_job += 1;
        self.dirty = true;
        job
    }

    /// Registers `name` for `actor`; false if the name is taken.
    pub fn claim_name(
        &mut self,
        name: ActorName,
        actor: TaskId,
        class: String,
        job: JobId,
    ) -> bool {
        if self.names.contains_key(&name) {
            return false;
        }
        self.names.insert(name, NameEntry { actor, class, job });
        self.dirty = true;
        true
    }

    /// Forgets `name` if it names `actor`.
    pub fn release_name(&mut self, name: &ActorName, actor: TaskId) {
        if self.names.get(name).is_some_and(|e| e.actor == actor) {
            self.names.remove(name);
            self.dirty = true;
        }
    }

    /// The actor registered as `name`, with its class.
    pub fn lookup_name(&self, name: &ActorName) -> Option<(TaskId, String)> {
        self.names.get(name).map(|e| (e.actor, e.class.clone()))
    }

    /// Records that a module (by content hash) of `len` bytes is part of the cluster.
    pub fn register_module(&mut self, module: ModuleId, len: u64) {
        self.dirty |= self.modules.insert(module, len) != Some(len);
    }

    /// The modules registered, with their sizes.
    pub fn modules(&self) -> impl Iterator<Item = (&ModuleId, &u64)> {
        self.modules.iter()
    }

    fn push_send(&mut self, peer: Peer, envelope: Envelope<Message<V>>) {
        if let Peer::Node(to) = peer {
            self.actions.push(HeadAction::Send { to, envelope });
        }
    }

    fn send(&mut self, now: Time, to: NodeId, message: Message<V>) {
        if let Some(envelope) = self.links.send(now, Peer::Node(to), message) {
            self.push_send(Peer::Node(to), envelope);
        }
    }

    fn received(&mut self, now: Time, from: NodeId, envelope: Envelope<Message<V>>) {
        if self.gone.contains(&from)
            || self
                .members
                .get(&from)
                .is_some_and(|m| m.state == MemberState::Dead)
        {
            // Outside the link (which is gone): a one-off, resent whenever it speaks again.
            self.actions.push(HeadAction::Send {
                to: from,
                envelope: Envelope {
                    seq: 0,
                    ack: 0,
                    message: Some(Message::Fenced),
                },
            });
            return;
        }
        if let Some(member) = self.members.get_mut(&from) {
            member.heard(now, &self.config.health);
        }
        for message in self.links.receive(now, Peer::Node(from), envelope) {
            self.on_message(now, from, message);
        }
    }

    fn on_message(&mut self, now: Time, from: NodeId, message: Message<V>) {
        match message {
            Message::Join { snapshot } => {
                if self.members.get(&from).is_some_and(|m| m.restored) {
                    return self.rejoined(now, from, snapshot);
                }
                if self.members.contains_key(&from) || self.gone.contains(&from) {
                    return;
                }
                let incarnation = self.next_incarnation;
                self.next_incarnation += 1;
                let others = self.alive_except(from);
                self.members.insert(
                    from,
                    Member {
                        incarnation,
                        snapshot: snapshot.clone(),
                        state: MemberState::Alive,
                        last_heard: now,
                        draining: false,
                        pings: VecDeque::new(),
                        next_ping: now.after(self.config.health.period),
                        restored: false,
                    },
                );
                self.dirty = true;
                for node in others {
                    if let Some(known) = self.members.get(&node).map(|m| m.snapshot.clone()) {
                        self.relay(now, node, known, from);
                    }
                    if self.members.get(&node).is_some_and(|m| m.draining) {
                        self.send(now, from, Message::Drain { node });
                    }
                    self.relay(now, from, snapshot.clone(), node);
                }
            }
            Message::Report { snapshot } => {
                let Some(member) = self.members.get_mut(&from) else {
                    return;
                };
                if member.state != MemberState::Alive || snapshot.version <= member.snapshot.version
                {
                    return;
                }
                member.snapshot = snapshot.clone();
                for node in self.alive_except(from) {
                    self.relay(now, from, snapshot.clone(), node);
                }
            }
            Message::Leave => {
                let Some(member) = self.members.get_mut(&from) else {
                    return;
                };
                if member.state != MemberState::Alive {
                    return;
                }
                member.state = MemberState::Left;
                self.dirty = true;
                member.last_heard = now;
                for other in self.alive_except(from) {
                    self.send(now, other, Message::NodeDied { node: from });
                }
            }
            Message::Ask { request, ask } => {
                let answer = self.answer(now, ask);
                self.send(now, from, Message::Answer { request, answer });
            }
            Message::JobEnded { job } => {
                for node in self.alive_except(from) {
                    self.send(now, node, Message::JobEnded { job });
                }
            }
            // Nothing else is addressed to the head.
            _ => {}
        }
    }

    /// A member of the cluster this head was restored for reconnected (its first message on
    /// the new link): it keeps its incarnation; it and the others hear of each other again.
    fn rejoined(&mut self, now: Time, from: NodeId, snapshot: Snapshot) {
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        member.restored = false;
        member.snapshot = snapshot.clone();
        for node in self.alive_except(from) {
            let Some(known) = self.members.get(&node) else {
                continue;
            };
            // A restored member that has not reconnected yet has no snapshot to tell.
            if !known.restored {
                let (known, draining) = (known.snapshot.clone(), known.draining);
                self.relay(now, node, known, from);
                if draining {
                    self.send(now, from, Message::Drain { node });
                }
                self.relay(now, from, snapshot.clone(), node);
            }
        }
    }

    /// The live members other than `node`.
    fn alive_except(&self, node: NodeId) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(id, m)| **id != node && m.state == MemberState::Alive)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Tells `to` the latest snapshot of `node`.
    fn relay(&mut self, now: Time, node: NodeId, snapshot: Snapshot, to: NodeId) {
        self.send(now, to, Message::View { node, snapshot });
    }

    /// Forgets the oldest dead or departed members past [`KEPT_GONE_MEMBERS`] (once their
    /// links are gone), keeping their IDs refused.
    fn forget_gone_members(&mut self) {
        let mut gone: Vec<(Time, NodeId)> = self
            .members
            .iter()
            .filter(|(id, m)| m.state != MemberState::Alive && self.links.is_dead(Peer::Node(**id)))
            .map(|(id, m)| (m.last_heard, *id))
            .collect();
        if gone.len() <= KEPT_GONE_MEMBERS {
            return;
        }
        gone.sort();
        for (_, node) in gone.iter().take(gone.len() - KEPT_GONE_MEMBERS) {
            self.members.remove(node);
            self.gone.insert(*node);
        }
    }

    fn check_liveness(&mut self, now: Time) {
        let health = self.config.health;
        // A node that left was acknowledged long ago: its link can go.
        let gone: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(id, m)| {
                m.state == MemberState::Left
                    && m.last_heard.after(health.detection_bound()) <= now
                    && !self.links.is_dead(Peer::Node(**id))
            })
            .map(|(id, _)| *id)
            .collect();
        for node in gone {
            self.links.forget(Peer::Node(node));
        }
        let mut silent = Vec::new();
        let mut ping = Vec::new();
        for (id, member) in &mut self.members {
            if member.state != MemberState::Alive || Some(*id) == self.config.local {
                continue;
            }
            if member.misses(now, &health) >= health.failures.max(1) as usize {
                silent.push(*id);
            } else if member.pings.len() < health.failures.max(1) as usize
                && member.next_ping <= now
            {
                member.pings.push_back(now);
                member.next_ping = now.after(health.period);
                ping.push(*id);
            }
        }
        for node in ping {
            // Outside the link: a ping is never resent, a lost one is a miss.
            self.actions.push(HeadAction::Send {
                to: node,
                envelope: Envelope {
                    seq: 0,
                    ack: 0,
                    message: Some(Message::Ping),
                },
            });
        }
        for node in silent {
            if let Some(member) = self.members.get_mut(&node) {
                member.state = MemberState::Dead;
                self.dirty = true;
            }
            self.links.forget(Peer::Node(node));
            for other in self.alive_except(node) {
                self.send(now, other, Message::NodeDied { node });
            }
            self.actions.push(HeadAction::Declared(node));
        }
        self.forget_gone_members();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmray_core::{CPU, ResourceSet};

    type TestHead = Head<()>;

    /// Pings every 100 ms, a miss after 150 ms, dead after 3: declared 450 ms after the
    /// last word.
    fn test_config() -> HeadConfig {
        HeadConfig {
            health: HealthCheck {
                period: Duration::from_millis(100),
                timeout: Duration::from_millis(150),
                failures: 3,
            },
            resend_after: Duration::from_millis(100),
            local: None,
        }
    }

    /// Fires the head's timers up to `until`; every ping to a node for which `answers` holds
    /// is answered with a pong at once. Returns the actions with when they happened.
    fn run_until(
        head: &mut TestHead,
        until: Time,
        answers: impl Fn(NodeId) -> bool,
    ) -> Vec<(Time, HeadAction<()>)> {
        let mut seen = Vec::new();
        while let Some(now) = head.poll_timeout().filter(|t| *t <= until) {
            head.handle(now, HeadEvent::Timeout);
            let actions = head.drain_actions();
            for action in &actions {
                if let HeadAction::Send { to, envelope } = action
                    && matches!(envelope.message, Some(Message::Ping))
                    && answers(*to)
                {
                    let pong = Envelope {
                        seq: 0,
                        ack: 0,
                        message: Some(Message::Pong),
                    };
                    let from = *to;
                    head.handle(
                        now,
                        HeadEvent::Received {
                            from,
                            envelope: pong,
                        },
                    );
                }
            }
            seen.extend(actions.into_iter().map(|a| (now, a)));
            seen.extend(head.drain_actions().into_iter().map(|a| (now, a)));
        }
        seen
    }

    fn pings_to(seen: &[(Time, HeadAction<()>)], node: NodeId) -> Vec<Time> {
        seen.iter()
            .filter_map(|(t, action)| match action {
                HeadAction::Send { to, envelope }
                    if *to == node && matches!(envelope.message, Some(Message::Ping)) =>
                {
                    Some(*t)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_busy_node_is_not_pinged_and_a_closed_connection_is_pinged_at_once() {
        let mut head = TestHead::new(test_config());
        let a = NodeId(1);
        let t0 = Time::ZERO;
        let join = Message::Join {
            snapshot: snapshot(1),
        };
        deliver(&mut head, t0, a, 1, join);
        // A report every 60 ms: a word within every period, so no ping.
        for step in 1..=10u64 {
            let now = t0.after(Duration::from_millis(60 * step));
            let _ = run_until(&mut head, now, |_| true);
            let seq = step + 1;
            let report = Message::Report {
                snapshot: snapshot(seq),
            };
            deliver(&mut head, now, a, seq, report);
        }
        let quiet = t0.after(Duration::from_millis(600));
        let seen = run_until(&mut head, quiet.after(Duration::from_millis(99)), |_| true);
        assert!(pings_to(&seen, a).is_empty(), "{seen:?}");
        // Its connection closes: a ping goes out at once, not a period later.
        let closed = quiet.after(Duration::from_millis(10));
        head.handle(closed, HeadEvent::Suspect(a));
        let pinged = head.drain_actions();
        assert_eq!(
            pings_to(
                &pinged.into_iter().map(|a| (closed, a)).collect::<Vec<_>>(),
                a
            ),
            [closed]
        );
        // Unanswered from then on: dead at the third miss, earlier than silence alone.
        let seen = run_until(&mut head, closed.after(Duration::from_secs(1)), |_| false);
        let period = test_config().health.period;
        assert_eq!(
            pings_to(&seen, a),
            [closed.after(period), closed.after(period * 2)]
        );
        let timeout = test_config().health.timeout;
        assert!(
            seen.iter().any(
                |(t, action)| matches!(action, HeadAction::Declared(n) if *n == a)
                    && *t == closed.after(period * 2 + timeout)
            ),
            "{seen:?}"
        );
    }

    #[test]
    fn a_lost_ping_is_forgiven_when_the_node_speaks() {
        let mut head = TestHead::new(test_config());
        let a = NodeId(1);
        let t0 = Time::ZERO;
        let join = Message::Join {
            snapshot: snapshot(1),
        };
        deliver(&mut head, t0, a, 1, join);
        // Two pings lost, then a word: the misses are forgotten and the node stays alive.
        let seen = run_until(&mut head, t0.after(Duration::from_millis(390)), |_| false);
        assert_eq!(pings_to(&seen, a).len(), 3);
        let now = t0.after(Duration::from_millis(395));
        let report = Message::Report {
            snapshot: snapshot(2),
        };
        deliver(&mut head, now, a, 2, report);
        let seen = run_until(&mut head, now.after(Duration::from_secs(3)), |_| true);
        assert!(
            !seen
                .iter()
                .any(|(_, action)| matches!(action, HeadAction::Declared(_))),
            "{seen:?}"
        );
        assert!(head.members().all(|(_, m)| m.state == MemberState::Alive));
    }

    fn snapshot(version: u64) -> Snapshot {
        let total = ResourceSet::from_pairs([(CPU, 1.0)]).unwrap();
        Snapshot {
            version,
            available: total.clone(),
            total,
            store_used: 0,
        }
    }

    /// Delivers `message` from `from` as the next envelope of its link, and returns what the
    /// head answered to `from`.
    fn deliver(
        head: &mut TestHead,
        now: Time,
        from: NodeId,
        seq: u64,
        message: Message<()>,
    ) -> Vec<Message<()>> {
        let envelope = Envelope {
            seq,
            ack: 0,
            message: Some(message),
        };
        head.handle(now, HeadEvent::Received { from, envelope });
        head.drain_actions()
            .into_iter()
            .filter_map(|action| match action {
                HeadAction::Send { to, envelope } if to == from => envelope.message,
                _ => None,
            })
            .collect()
    }

    #[test]
    fn job_ids_are_unique_and_names_are_per_namespace() {
        let mut head = TestHead::new(HeadConfig::default());
        let (a, b) = (head.new_job(), head.new_job());
        assert_ne!(a, b);
        let name = |ns: &str| ActorName {
            namespace: ns.into(),
            name: "x".into(),
        };
        let actor = TaskId(7);
        assert!(head.claim_name(name("one"), actor, "C".into(), a));
        assert!(!head.claim_name(name("one"), TaskId(8), "C".into(), b));
        assert!(head.claim_name(name("two"), TaskId(8), "C".into(), b));
        // Only the actor that holds a name gives it back.
        head.release_name(&name("one"), TaskId(8));
        assert_eq!(head.lookup_name(&name("one")), Some((actor, "C".into())));
        head.release_name(&name("one"), actor);
        assert_eq!(head.lookup_name(&name("one")), None);
        head.register_module(wasmray_core::ModuleId([1; 32]), 42);
        assert_eq!(head.modules().count(), 1);
    }

    #[test]
    fn departed_members_past_the_limit_are_forgotten_but_stay_refused() {
        let mut head = TestHead::new(test_config());
        let t0 = Time::ZERO;
        let count = KEPT_GONE_MEMBERS as u64 + 6;
        for n in 1..=count {
            let join = Message::Join {
                snapshot: snapshot(1),
            };
            deliver(
                &mut head,
                t0.after(Duration::from_millis(n)),
                NodeId(n),
                1,
                join,
            );
        }
        for n in 1..=count {
            deliver(
                &mut head,
                t0.after(Duration::from_millis(100 + n)),
                NodeId(n),
                2,
                Message::Leave,
            );
        }
        assert_eq!(head.members().count(), count as usize);
        let later = t0.after(Duration::from_secs(5));
        head.handle(later, HeadEvent::Timeout);
        assert_eq!(head.members().count(), KEPT_GONE_MEMBERS);
        // The six that left first were forgotten; they are still refused.
        assert!(head.members().all(|(id, _)| id.0 > 6));
        let fenced = deliver(
            &mut head,
            later,
            NodeId(1),
            3,
            Message::Report {
                snapshot: snapshot(2),
            },
        );
        assert!(matches!(fenced.as_slice(), [Message::Fenced]), "{fenced:?}");
        let rejoin = Message::Join {
            snapshot: snapshot(3),
        };
        deliver(&mut head, later, NodeId(2), 1, rejoin);
        assert!(
            head.members().all(|(id, _)| id != NodeId(2)),
            "no way back in"
        );
    }

    #[test]
    fn requests_by_message_are_answered_and_silence_is_death() {
        let mut head = TestHead::new(test_config());
        let (a, b) = (NodeId(1), NodeId(2));
        let t0 = Time::ZERO;
        deliver(
            &mut head,
            t0,
            a,
            1,
            Message::Join {
                snapshot: snapshot(1),
            },
        );
        let views = deliver(
            &mut head,
            t0,
            b,
            1,
            Message::Join {
                snapshot: snapshot(1),
            },
        );
        assert!(
            views
                .iter()
                .any(|m| matches!(m, Message::View { node, .. } if *node == a)),
            "a joining node hears of the others: {views:?}"
        );
        let ask = |request| Message::Ask {
            request,
            ask: HeadRequest::NewJob,
        };
        let answers = deliver(&mut head, t0, a, 2, ask(5));
        assert!(matches!(
            answers.as_slice(),
            [Message::Answer {
                request: 5,
                answer: HeadAnswer::Job(_)
            }]
        ));
        // b answers every ping, a falls silent: only a is declared dead, and b is told.
        let seen = run_until(&mut head, t0.after(Duration::from_secs(2)), |n| n == b);
        let declared: Vec<(Time, NodeId)> = seen
            .iter()
            .filter_map(|(t, action)| match action {
                HeadAction::Declared(n) => Some((*t, *n)),
                _ => None,
            })
            .collect();
        let bound = test_config().health.detection_bound();
        assert_eq!(declared, vec![(t0.after(bound), a)]);
        assert!(seen.iter().any(|(_, action)| matches!(action,
            HeadAction::Send { to, envelope } if *to == b
                && matches!(envelope.message, Some(Message::NodeDied { node }) if node == a))));
        let due = t0.after(Duration::from_secs(2));
        // Death is final: what a sends now is answered with `Fenced`.
        let fenced = deliver(&mut head, due, a, 3, ask(6));
        assert!(matches!(fenced.as_slice(), [Message::Fenced]), "{fenced:?}");
    }

    #[test]
    fn a_restored_head_keeps_names_jobs_and_members_and_refuses_the_old_head() {
        let old = NodeId(100);
        let mut first = TestHead::new(HeadConfig {
            local: Some(old),
            ..test_config()
        });
        let (a, b, c) = (NodeId(1), NodeId(2), NodeId(3));
        let t0 = Time::ZERO;
        for node in [old, a, b, c] {
            let join = Message::Join {
                snapshot: snapshot(1),
            };
            deliver(&mut first, t0, node, 1, join);
        }
        deliver(&mut first, t0, b, 2, Message::Leave);
        let job = first.new_job();
        let name = ActorName {
            namespace: "ns".into(),
            name: "keeper".into(),
        };
        assert!(first.claim_name(name.clone(), TaskId(9), "C".into(), job));
        let state = first.take_state().expect("changed");
        assert!(first.take_state().is_none(), "nothing new since");
        assert_eq!((state.live_members(), state.names()), (3, 1));
        let new = NodeId(200);
        let mut second = TestHead::restore(
            HeadConfig {
                local: Some(new),
                ..test_config()
            },
            state,
            t0,
        );
        assert_eq!(second.lookup_name(&name), Some((TaskId(9), "C".into())));
        assert!(second.new_job() > job, "job IDs go on");
        // The old head's node and the one that left are refused; `a` reconnects.
        for gone in [old, b] {
            let fenced = deliver(
                &mut second,
                t0,
                gone,
                1,
                Message::Report {
                    snapshot: snapshot(5),
                },
            );
            assert!(matches!(fenced.as_slice(), [Message::Fenced]), "{fenced:?}");
        }
        let join = Message::Join {
            snapshot: snapshot(7),
        };
        deliver(&mut second, t0, a, 1, join);
        let member = second
            .members()
            .find(|(id, _)| *id == a)
            .map(|(_, m)| m.clone());
        assert!(member.is_some_and(|m| m.state == MemberState::Alive && m.snapshot.version == 7));
        // A restored member that has not reconnected is checked only after the grace.
        let early = run_until(&mut second, t0.after(RESTORED_GRACE / 2), |_| false);
        assert!(pings_to(&early, c).is_empty(), "{early:?}");
        let later = run_until(&mut second, t0.after(RESTORED_GRACE * 2), |_| false);
        assert_eq!(pings_to(&later, c).first(), Some(&t0.after(RESTORED_GRACE)));
        assert!(
            later
                .iter()
                .any(|(_, action)| matches!(action, HeadAction::Declared(n) if *n == c)),
            "never heard from again: dead"
        );
    }
}
