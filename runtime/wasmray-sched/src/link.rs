//! Reliable, ordered, deduplicated delivery of messages between two state machines.
//!
//! The transport under the state machines may lose, duplicate and reorder messages (the
//! simulator does all three; QUIC streams are mutually unordered and a broken connection
//! loses what was in flight). Each direction of a link numbers its messages from 1; the
//! receiver delivers them in that order exactly once, holding back early arrivals, and
//! acknowledges the highest number it delivered in every envelope it sends back (or in a
//! pure acknowledgement). The sender keeps what is unacknowledged and resends it when a
//! timer (passed-in time, doubling up to a cap) runs out.
//!
//! Ordering per link is what the ownership protocol leans on: a node's `Lend` of a reference
//! reaches the owner before that node's own `Release` of it (see ARCHITECTURE.md, "Objects
//! across nodes"). It also keeps a caller's actor calls in order.
//!
//! A peer declared dead is forgotten and refused for good. This module does not know what
//! messages mean and does no I/O: it returns envelopes for its user to send.

use crate::time::{Time, earliest};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use wasmray_core::NodeId;

/// Who a message is for: a node's scheduler, or the cluster's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Node(NodeId),
    Head,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Node(id) => write!(f, "node {id}"),
            Peer::Head => f.write_str("the head"),
        }
    }
}

/// One transmission on a link.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Envelope<M> {
    /// The message's number on its link, from 1; 0 for a pure acknowledgement.
    pub seq: u64,
    /// Every message from the receiver numbered up to this one was delivered.
    pub ack: u64,
    pub message: Option<M>,
}

/// How many early arrivals a link holds back at most; later ones are dropped (and resent).
const MAX_HELD: usize = 4096;
/// The longest wait between resends.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Link<M> {
    next_seq: u64,
    unacked: BTreeMap<u64, M>,
    resend_at: Option<Time>,
    backoff: Duration,
    delivered: u64,
    held: BTreeMap<u64, M>,
    ack_owed: bool,
}

impl<M> Link<M> {
    fn new(backoff: Duration) -> Self {
        Self {
            next_seq: 1,
            unacked: BTreeMap::new(),
            resend_at: None,
            backoff,
            delivered: 0,
            held: BTreeMap::new(),
            ack_owed: false,
        }
    }
}

/// Every link of one state machine.
#[derive(Debug)]
pub(crate) struct Links<M> {
    links: BTreeMap<Peer, Link<M>>,
    resend_after: Duration,
    dead: BTreeSet<Peer>,
    /// Some link may owe an acknowledgement (so `take_acks` need not look when none does).
    acks_owed: bool,
    /// When owed acknowledgements go out as pure ones: a message sent back before then
    /// carries them instead (a request's reply acknowledges it), so a request and its reply
    /// cost two transmissions, not four.
    ack_at: Option<Time>,
    ack_delay: Duration,
}

impl<M: Clone> Links<M> {
    pub(crate) fn new(resend_after: Duration) -> Self {
        Self {
            links: BTreeMap::new(),
            resend_after,
            dead: BTreeSet::new(),
            acks_owed: false,
            ack_at: None,
            // Well inside the resend timer, so a pure acknowledgement beats a resend.
            ack_delay: resend_after / 8,
        }
    }

    fn link(&mut self, peer: Peer) -> &mut Link<M> {
        let backoff = self.resend_after;
        self.links.entry(peer).or_insert_with(|| Link::new(backoff))
    }

    /// Numbers `message` for `to`, keeps it until acknowledged and returns the envelope to
    /// send. `None` if `to` is dead.
    pub(crate) fn send(&mut self, now: Time, to: Peer, message: M) -> Option<Envelope<M>> {
        if self.dead.contains(&to) {
            return None;
        }
        let resend_after = self.resend_after;
        let link = self.link(to);
        let seq = link.next_seq;
        link.next_seq += 1;
        link.unacked.insert(seq, message.clone());
        if link.resend_at.is_none() {
            link.backoff = resend_after;
            link.resend_at = Some(now.after(resend_after));
        }
        link.ack_owed = false;
        Some(Envelope {
            seq,
            ack: link.delivered,
            message: Some(message),
        })
    }

    /// Takes in an envelope from `from`; returns the messages now deliverable, in order.
    pub(crate) fn receive(&mut self, now: Time, from: Peer, envelope: Envelope<M>) -> Vec<M> {
        if self.dead.contains(&from) {
            return Vec::new();
        }
        let resend_after = self.resend_after;
        if envelope.seq != 0 && envelope.message.is_some() {
            self.acks_owed = true;
            if self.ack_at.is_none() {
                self.ack_at = Some(now.after(self.ack_delay));
            }
        }
        let link = self.link(from);
        // What the peer acknowledges is done with.
        let acked: Vec<u64> = link
            .unacked
            .range(..=envelope.ack)
            .map(|(s, _)| *s)
            .collect();
        if !acked.is_empty() {
            for seq in acked {
                link.unacked.remove(&seq);
            }
            link.backoff = resend_after;
            link.resend_at = (!link.unacked.is_empty()).then(|| now.after(resend_after));
        }
        let mut delivered = Vec::new();
        let Some(message) = envelope.message else {
            return delivered;
        };
        if envelope.seq == 0 {
            return delivered;
        }
        // Anything at or below `delivered` is a duplicate, but the peer may have missed the
        // acknowledgement: owe it one either way.
        link.ack_owed = true;
        if envelope.seq <= link.delivered {
            return delivered;
        }
        if envelope.seq > link.delivered + 1 {
            if link.held.len() < MAX_HELD && envelope.seq - link.delivered <= MAX_HELD as u64 {
                link.held.entry(envelope.seq).or_insert(message);
            }
            return delivered;
        }
        delivered.push(message);
        link.delivered = envelope.seq;
        while let Some(next) = link.held.remove(&(link.delivered + 1)) {
            delivered.push(next);
            link.delivered += 1;
        }
        delivered
    }

    /// Whether some link may owe a pure acknowledgement (cheap; see `take_acks`).
    #[inline]
    pub(crate) fn owes_acks(&self) -> bool {
        self.acks_owed
    }

    /// Pure acknowledgements owed (to peers nothing was sent to since their messages came),
    /// once their delay is over at `now`.
    pub(crate) fn take_acks(&mut self, now: Time) -> Vec<(Peer, Envelope<M>)> {
        let mut acks = Vec::new();
        if !self.acks_owed || self.ack_at.is_some_and(|at| at > now) {
            return acks;
        }
        self.acks_owed = false;
        self.ack_at = None;
        for (peer, link) in &mut self.links {
            if link.ack_owed {
                link.ack_owed = false;
                acks.push((
                    *peer,
                    Envelope {
                        seq: 0,
                        ack: link.delivered,
                        message: None,
                    },
                ));
            }
        }
        acks
    }

    /// When the next resend is due.
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        let acks = self.ack_at.filter(|_| self.acks_owed);
        self.links
            .values()
            .fold(acks, |soonest, link| earliest(soonest, link.resend_at))
    }

    /// Everything due for a resend at `now`, with the timers backed off.
    pub(crate) fn resends(&mut self, now: Time) -> Vec<(Peer, Envelope<M>)> {
        let mut out = Vec::new();
        for (peer, link) in &mut self.links {
            if link.resend_at.is_none_or(|at| at > now) {
                continue;
            }
            for (&seq, message) in &link.unacked {
                out.push((
                    *peer,
                    Envelope {
                        seq,
                        ack: link.delivered,
                        message: Some(message.clone()),
                    },
                ));
            }
            link.ack_owed = false;
            link.backoff = (link.backoff * 2).min(MAX_BACKOFF);
            link.resend_at = (!link.unacked.is_empty()).then(|| now.after(link.backoff));
        }
        out
    }

    /// `peer` starts over (a restarted head): its link begins again from 1 both ways; the
    /// messages it had not acknowledged are returned, in order, to be sent anew.
    pub(crate) fn reset(&mut self, peer: Peer) -> Vec<M> {
        self.links
            .remove(&peer)
            .map(|link| link.unacked.into_values().collect())
            .unwrap_or_default()
    }

    /// `peer` is dead: drop what was queued for it and refuse what comes from it from now on.
    pub(crate) fn forget(&mut self, peer: Peer) {
        self.links.remove(&peer);
        self.dead.insert(peer);
    }

    pub(crate) fn is_dead(&self, peer: Peer) -> bool {
        self.dead.contains(&peer)
    }

    /// Each link with messages unacknowledged: the peer and the numbers waiting.
    #[cfg(test)]
    pub(crate) fn unacked_detail(&self) -> Vec<(Peer, Vec<u64>, Option<Time>)> {
        self.links
            .iter()
            .filter(|(_, l)| !l.unacked.is_empty())
            .map(|(p, l)| (*p, l.unacked.keys().copied().collect(), l.resend_at))
            .collect()
    }

    /// Every message sent and not yet acknowledged.
    #[cfg(test)]
    pub(crate) fn unacked_messages(&self) -> impl Iterator<Item = &M> {
        self.links.values().flat_map(|l| l.unacked.values())
    }

    /// Messages sent and not yet acknowledged, over all links.
    pub(crate) fn unacked(&self) -> usize {
        self.links.values().map(|l| l.unacked.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_once_despite_reordering_duplication_and_loss() {
        let a = Peer::Node(NodeId(1));
        let b = Peer::Node(NodeId(2));
        let step = Duration::from_millis(10);
        let mut sender: Links<u32> = Links::new(step);
        let mut receiver: Links<u32> = Links::new(step);
        let now = Time::ZERO;
        let e1 = sender.send(now, b, 1).unwrap();
        let e2 = sender.send(now, b, 2).unwrap();
        let _lost = sender.send(now, b, 3).unwrap();
        let e4 = sender.send(now, b, 4).unwrap();
        assert!(receiver.receive(now, a, e2.clone()).is_empty());
        assert_eq!(receiver.receive(now, a, e1.clone()), vec![1, 2]);
        assert!(receiver.receive(now, a, e1).is_empty());
        assert!(receiver.receive(now, a, e4).is_empty());
        // Owed acknowledgements wait a little for a reply to carry them.
        assert!(receiver.take_acks(now).is_empty());
        let acks = receiver.take_acks(now.after(step / 8));
        assert_eq!(acks.len(), 1);
        for (_, ack) in acks {
            assert!(sender.receive(now, b, ack).is_empty());
        }
        // 1 and 2 are acknowledged; 3 and 4 come again when the timer runs out.
        assert!(sender.resends(now).is_empty());
        let later = now.after(step);
        let again: Vec<u32> = sender
            .resends(later)
            .into_iter()
            .flat_map(|(_, e)| receiver.receive(later, a, e))
            .collect();
        assert_eq!(again, vec![3, 4]);
        assert_eq!(receiver.receive(later, a, e2), Vec::<u32>::new());
    }

    #[test]
    fn a_dead_peer_is_refused() {
        let a = Peer::Node(NodeId(1));
        let mut links: Links<u32> = Links::new(Duration::from_millis(1));
        links.forget(a);
        assert!(links.send(Time::ZERO, a, 1).is_none());
        let envelope = Envelope {
            seq: 1,
            ack: 0,
            message: Some(7),
        };
        assert!(links.receive(Time::ZERO, a, envelope).is_empty());
        assert!(links.is_dead(a));
    }
}
