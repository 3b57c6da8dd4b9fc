//! Draining a node (Ray's `DrainNode`): the head says a node drains (`Message::Drain`, to
//! every live node); nobody places new work there from then on. The draining node itself
//! hands back the leases it had queued, runs no new work of its own (it spills it), lets
//! what runs finish, and re-homes every copy it keeps for another owner: it asks the owner to
//! take it (`Rehome`); the owner pulls a copy into its own store unless another node has one,
//! then says so (`Rehomed`) and the draining node drops its copy. Once nothing but actor
//! calls is left running and no copy waits to be re-homed, the scheduler says
//! [`crate::Action::Drained`]: the node may leave. Its actors then restart elsewhere, as for
//! a death (their owners see its `Leave`).
//!
//! Objects the draining node itself owns are not moved (ownership has no hand-over): a
//! borrower of one that outlives the node gets `OwnerDied`, as in Ray.

use crate::link::Peer;
use crate::message::Message;
use crate::objects::Role;
use crate::scheduler::Action;
use crate::{ObjectValue, Scheduler};
use wasmray_core::{NodeId, ObjectId, TaskKind};

impl<V: ObjectValue> Scheduler<V> {
    /// The head says `node` drains.
    pub(crate) fn drain_said(&mut self, node: NodeId) {
        self.view.mark_draining(node);
        if node != self.config.node || self.draining {
            return;
        }
        self.draining = true;
        // Queued leases go back to their owners, who place them elsewhere.
        self.reject_queued_leases(|_| true);
        let kept: Vec<(ObjectId, NodeId)> = self
            .objects
            .iter()
            .filter_map(|(id, e)| match &e.role {
                Role::Borrowed(b) if b.keeps_copy && e.is_sealed() => Some((*id, b.owner)),
                _ => None,
            })
            .collect();
        for (object, owner) in kept {
            self.send(Peer::Node(owner), Message::Rehome { object });
        }
        // Its own ready tasks go to other nodes now.
        self.dispatch();
    }

    /// Whether this node is draining: it starts no new work of its own while another node
    /// can take it.
    pub(crate) fn holds_back_work(&self) -> bool {
        self.draining && self.view.has_peers()
    }

    /// Owner side: `node`, which is draining, keeps the copy of `object` made there.
    pub(crate) fn rehome_in(&mut self, node: NodeId, object: ObjectId) {
        let Some(entry) = self.objects.get_mut(object) else {
            // Freed meanwhile (its `Free` is on the way): nothing to keep.
            self.send(Peer::Node(node), Message::Rehomed { object });
            return;
        };
        let sealed_here = entry.is_sealed();
        let Some(owned) = entry.owned_mut() else {
            return;
        };
        let elsewhere = owned.copies.iter().any(|n| *n != node) || !owned.pulled.is_empty();
        if sealed_here || elsewhere {
            owned.copies.retain(|n| *n != node);
            self.send(Peer::Node(node), Message::Rehomed { object });
            return;
        }
        // The only copy: pulled here, and the draining node hears when it is.
        self.rehoming.entry(object).or_default().push(node);
        self.need(object);
    }

    /// Owner side: `object` sealed here; the draining nodes that asked may drop theirs.
    pub(crate) fn rehomed_here(&mut self, object: ObjectId) {
        let Some(nodes) = self.rehoming.remove(&object) else {
            return;
        };
        if let Some(owned) = self.objects.get_mut(object).and_then(|e| e.owned_mut()) {
            owned.copies.retain(|n| !nodes.contains(n));
        }
        for node in nodes {
            self.send(Peer::Node(node), Message::Rehomed { object });
        }
    }

    /// Draining side: the owner has `object` now; this node's copy goes.
    pub(crate) fn rehomed_in(&mut self, owner: NodeId, object: ObjectId) {
        if object.task.node() != owner {
            return;
        }
        let mut events = Vec::new();
        self.objects.drop_kept_copy(object, &mut events);
        self.push_events(events);
    }

    /// Says [`Action::Drained`] once a draining node has nothing left to finish or re-home.
    pub(crate) fn check_drained(&mut self) {
        if !self.draining || self.drained {
            return;
        }
        let busy = self
            .tasks
            .values()
            .any(|t| !matches!(t.spec.kind, TaskKind::ActorMethod { .. }));
        let keeps = self.objects.iter().any(|(_, e)| {
            matches!(&e.role, Role::Borrowed(b) if b.keeps_copy
                && !self.links.is_dead(Peer::Node(b.owner)))
        });
        if busy || !self.queued_leases.is_empty() || keeps {
            return;
        }
        self.drained = true;
        self.actions.push(Action::Drained);
    }
}
