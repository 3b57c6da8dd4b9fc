//! The head's control state, as a state machine: membership, job IDs, actor names, the
//! module registry.
//!
//! One node of a cluster runs the head beside its scheduler. Nodes join with their resources
//! and report changes; the head relays every node's latest snapshot to the others (latest
//! wins) and is the only one that declares a node dead — when it has heard nothing from it
//! for `dead_after` — which it then tells every live node. Death is final: the node's links
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
use std::collections::BTreeMap;
use std::time::Duration;
use wasmray_core::{ActorName, JobId, ModuleId, NodeId, TaskId};

/// How the head paces itself.
#[derive(Debug, Clone)]
pub struct HeadConfig {
    /// A node silent for this long is declared dead.
    pub dead_after: Duration,
    /// First resend of an unacknowledged message (doubling after).
    pub resend_after: Duration,
    /// The node the head runs on: never declared dead (its reports come in-process; a head
    /// that cannot hear itself has nobody to tell).
    pub local: Option<NodeId>,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            dead_after: Duration::from_secs(6),
            resend_after: Duration::from_millis(500),
            local: None,
        }
    }
}

/// How many dead or departed members the head keeps whole (for status displays); older ones
/// are forgotten but for their IDs, which stay refused. A cluster whose drivers come and go
/// (each `wasmray run --address` is a member while it runs) would otherwise grow without end.
pub const KEPT_GONE_MEMBERS: usize = 64;

/// A member's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// A registered actor name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NameEntry {
    actor: TaskId,
    class: String,
    job: JobId,
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
        }
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
        }
        for (peer, envelope) in self.links.take_acks(now) {
            self.push_send(peer, envelope);
        }
    }

    /// When [`HeadEvent::Timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Time> {
        let liveness = self
            .members
            .iter()
            .filter(|(id, m)| {
                (m.state == MemberState::Alive && Some(**id) != self.config.local)
                    || (m.state == MemberState::Left && !self.links.is_dead(Peer::Node(**id)))
            })
            .map(|(_, m)| m)
            .map(|m| m.last_heard.after(self.config.dead_after))
            .min();
        earliest(liveness, self.links.poll_timeout())
    }

    /// Takes the actions produced so far, in the order they must be carried out.
    pub fn drain_actions(&mut self) -> Vec<HeadAction<V>> {
        std::mem::take(&mut self.actions)
    }

    /// Every node that ever joined, in node order.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, &Member)> {
        self.members.iter().map(|(id, m)| (*id, m))
    }

    /// Answers a node's control request (on the head's own node, asked directly).
    pub fn answer(&mut self, ask: HeadRequest) -> HeadAnswer {
        match ask {
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

    /// A new job ID, unique in the cluster.
    pub fn new_job(&mut self) -> JobId {
        let job = JobId(self.next_job);
        self.next_job += 1;
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
        true
    }

    /// Forgets `name` if it names `actor`.
    pub fn release_name(&mut self, name: &ActorName, actor: TaskId) {
        if self.names.get(name).is_some_and(|e| e.actor == actor) {
            self.names.remove(name);
        }
    }

    /// The actor registered as `name`, with its class.
    pub fn lookup_name(&self, name: &ActorName) -> Option<(TaskId, String)> {
        self.names.get(name).map(|e| (e.actor, e.class.clone()))
    }

    /// Records that a module (by content hash) of `len` bytes is part of the cluster.
    pub fn register_module(&mut self, module: ModuleId, len: u64) {
        self.modules.insert(module, len);
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
            member.last_heard = now;
        }
        for message in self.links.receive(now, Peer::Node(from), envelope) {
            self.on_message(now, from, message);
        }
    }

    fn on_message(&mut self, now: Time, from: NodeId, message: Message<V>) {
        match message {
            Message::Join { snapshot } => {
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
                    },
                );
                for node in others {
                    if let Some(known) = self.members.get(&node).map(|m| m.snapshot.clone()) {
                        self.relay(now, node, known, from);
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
                member.last_heard = now;
                for other in self.alive_except(from) {
                    self.send(now, other, Message::NodeDied { node: from });
                }
            }
            Message::Ask { request, ask } => {
                let answer = self.answer(ask);
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
        // A node that left was acknowledged long ago: its link can go.
        let gone: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(id, m)| {
                m.state == MemberState::Left
                    && m.last_heard.after(self.config.dead_after) <= now
                    && !self.links.is_dead(Peer::Node(**id))
            })
            .map(|(id, _)| *id)
            .collect();
        for node in gone {
            self.links.forget(Peer::Node(node));
        }
        let silent: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(id, m)| {
                m.state == MemberState::Alive
                    && Some(**id) != self.config.local
                    && m.last_heard.after(self.config.dead_after) <= now
            })
            .map(|(id, _)| *id)
            .collect();
        for node in silent {
            if let Some(member) = self.members.get_mut(&node) {
                member.state = MemberState::Dead;
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
        let mut head = TestHead::new(HeadConfig {
            dead_after: Duration::from_secs(1),
            resend_after: Duration::from_millis(100),
            local: None,
        });
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
        let mut head = TestHead::new(HeadConfig {
            dead_after: Duration::from_secs(1),
            resend_after: Duration::from_millis(100),
            local: None,
        });
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
        // b keeps reporting, a falls silent: only a is declared dead, and b is told.
        let later = t0.after(Duration::from_millis(900));
        deliver(
            &mut head,
            later,
            b,
            2,
            Message::Report {
                snapshot: snapshot(2),
            },
        );
        // At 1.5 s a was last heard 1.5 s ago, b 0.6 s ago.
        let due = t0.after(Duration::from_millis(1500));
        assert!(head.poll_timeout().is_some_and(|t| t <= due));
        head.handle(due, HeadEvent::Timeout);
        let actions = head.drain_actions();
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, HeadAction::Declared(n) if *n == NodeId(1)))
        );
        assert!(actions.iter().any(|action| matches!(action,
            HeadAction::Send { to, envelope } if *to == b
                && matches!(envelope.message, Some(Message::NodeDied { node }) if node == a))));
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, HeadAction::Declared(n) if *n == b))
        );
        // Death is final: what a sends now is answered with `Fenced`.
        let fenced = deliver(&mut head, due, a, 3, ask(6));
        assert!(matches!(fenced.as_slice(), [Message::Fenced]), "{fenced:?}");
    }
}
