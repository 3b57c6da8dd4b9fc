//! The object table: each object's state here, its references here, and — separately — what
//! ownership means for it (who must be told when references go, where copies are).
//!
//! Every object has an **owner**, the node that minted its ID (the ID's task carries it). On
//! the owner the entry counts local references (guest handles, pending task arguments,
//! containing values) and **holders**: for each other node, how many references it was
//! granted and has not released. The owner also knows which other nodes keep a copy of the
//! value (`copies`) and which want to hear when it seals (`subscribers`). It frees the object
//! when no reference is left anywhere: no local one, no holder, and it is no longer pending.
//!
//! On any other node the entry is a **borrow**: local references as above, the number of
//! grants it received, and perhaps a copy of the value. When its local references reach zero
//! it releases the grants to the owner in one message and forgets the object, unless it
//! keeps the copy for the owner (an executor keeps a large result it made until the owner
//! frees it).
//!
//! Freeing releases the references a value held to the objects inside it, with a worklist
//! (never recursion, so a long chain of nested refs cannot overflow the stack). What must
//! happen outside the table (a message to the owner, an unhandled error reported) comes back
//! as [`ObjectEvent`]s. The references a value holds were counted when it was created (see
//! [`crate::ObjectValue`]).

use crate::ObjectValue;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmray_core::{ActorId, IdMap, NodeId, ObjectId, TaskError, TaskId};

/// The state of one object, as this node can use it.
#[derive(Debug, Clone)]
pub enum ObjectState<V> {
    /// Not usable here yet: its task has not finished, or its value is on another node.
    Pending,
    Ready(V),
    Failed(Arc<TaskError>),
}

/// What holds a reference to an object (Ray's `ray memory` reference types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// A handle in a driver, task or actor (including the creator's).
    Local,
    /// A pending task's argument.
    TaskArg,
    /// Another object's value holds it.
    Contained,
}

/// References to one object held on this node, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefCounts {
    pub local: u32,
    pub task_args: u32,
    pub contained: u32,
}

impl RefCounts {
    pub fn total(&self) -> u32 {
        self.local + self.task_args + self.contained
    }

    fn slot(&mut self, kind: RefKind) -> &mut u32 {
        match kind {
            RefKind::Local => &mut self.local,
            RefKind::TaskArg => &mut self.task_args,
            RefKind::Contained => &mut self.contained,
        }
    }
}

/// The owner's side of an object: what other nodes have of it. Empty for an object no other
/// node has heard of (the common case), which then costs no allocation: see [`OwnedState`].
#[derive(Debug, Default)]
pub(crate) struct Owned {
    /// References granted to other nodes and not released, per node. A count may dip below
    /// zero for a moment when a holder's release overtakes the lend that granted it; the
    /// lender's own grant keeps the object alive meanwhile (see ARCHITECTURE.md).
    pub(crate) holders: BTreeMap<NodeId, i64>,
    /// Other nodes keeping a copy of the value for this owner (where it was made); the owner
    /// frees them.
    pub(crate) copies: Vec<NodeId>,
    /// Other nodes that pulled a copy and serve it onward until they release their
    /// references (they drop it themselves then).
    pub(crate) pulled: Vec<NodeId>,
    /// Pulls the owner pointed a subscriber at and has not heard the end of, as
    /// (puller, source): a source serves a bounded number at once (see [`Owned::point`]).
    pub(crate) serving: Vec<(NodeId, NodeId)>,
    /// Nodes to tell when it seals, or (for a large value) waiting for a source with room.
    pub(crate) subscribers: Vec<NodeId>,
    /// Its task finished on another node, which kept the value: it is ready there.
    pub(crate) made_elsewhere: bool,
    /// The value's size in bytes, as the node that made it elsewhere said.
    pub(crate) kept_len: u64,
    /// A pull of a copy is in flight to this node.
    pub(crate) pulling: Option<NodeId>,
}

/// Nothing shared with other nodes: what an [`OwnedState`] reads as until it is first changed.
static NOT_SHARED: Owned = Owned {
    holders: BTreeMap::new(),
    copies: Vec::new(),
    pulled: Vec::new(),
    serving: Vec::new(),
    subscribers: Vec::new(),
    made_elsewhere: false,
    kept_len: 0,
    pulling: None,
};

impl Owned {
    /// Another node holds a copy of the value: where it was made, or a node that pulled it.
    pub(crate) fn copied(&self) -> bool {
        !(self.copies.is_empty() && self.pulled.is_empty())
    }

    /// Picks a source for `puller`'s pull of a large value: the least busy of `here` (this
    /// node, if it holds the value), the nodes that made it and those that pulled it, among
    /// those serving fewer than `per_source` pulls; records the pull. `None` if every source
    /// is busy: the puller waits for one to finish (which then holds a copy too, so a
    /// broadcast spreads as a tree instead of every node pulling from one).
    pub(crate) fn point(
        &mut self,
        puller: NodeId,
        here: Option<NodeId>,
        per_source: usize,
    ) -> Option<NodeId> {
        let load = |source: NodeId| self.serving.iter().filter(|(_, s)| *s == source).count();
        let source = here
            .into_iter()
            .chain(self.copies.iter().copied())
            .chain(self.pulled.iter().copied())
            .filter(|source| *source != puller)
            .map(|source| (load(source), source))
            .filter(|(load, _)| *load < per_source)
            .min_by_key(|(load, _)| *load)?
            .1;
        self.serving.push((puller, source));
        Some(source)
    }

    /// `puller`'s pull ended, one way or another: the source it was pointed at, if any.
    pub(crate) fn pull_ended(&mut self, puller: NodeId) -> Option<NodeId> {
        let at = self.serving.iter().position(|(p, _)| *p == puller)?;
        Some(self.serving.swap_remove(at).1)
    }

    /// `puller` holds a copy now and serves it onward.
    pub(crate) fn holding(&mut self, puller: NodeId) {
        self.pull_ended(puller);
        if !self.pulled.contains(&puller) && !self.copies.contains(&puller) {
            self.pulled.push(puller);
        }
    }

    /// `node` holds nothing of the object any more and pulls nothing (it released its
    /// references, or died).
    pub(crate) fn forget(&mut self, node: NodeId) {
        self.pulled.retain(|n| *n != node);
        self.serving.retain(|(p, s)| *p != node && *s != node);
        self.subscribers.retain(|n| *n != node);
    }
}

/// An owner's [`Owned`] state, allocated the first time it is changed: reading it through
/// `Deref` never allocates (an unshared object reads as [`NOT_SHARED`]); `DerefMut` allocates
/// if needed. This keeps the entry of an object only this node knows small.
#[derive(Debug, Default)]
pub(crate) struct OwnedState(Option<Box<Owned>>);

impl OwnedState {
    /// Whether another node was ever told of the object (its state was changed).
    pub(crate) fn is_shared(&self) -> bool {
        self.0.is_some()
    }
}

impl std::ops::Deref for OwnedState {
    type Target = Owned;

    fn deref(&self) -> &Owned {
        self.0.as_deref().unwrap_or(&NOT_SHARED)
    }
}

impl std::ops::DerefMut for OwnedState {
    fn deref_mut(&mut self) -> &mut Owned {
        self.0.get_or_insert_with(Box::default)
    }
}

/// A borrower's side of an object owned by another node.
#[derive(Debug)]
pub(crate) struct Borrowed {
    pub(crate) owner: NodeId,
    /// References granted to this node (by the owner or by a lender) not yet released.
    pub(crate) grants: u32,
    /// The owner was asked to say when it seals.
    pub(crate) subscribed: bool,
    /// Nodes known to hold a copy, not yet tried.
    pub(crate) sources: Vec<NodeId>,
    /// A pull is in flight to this node.
    pub(crate) pulling: Option<NodeId>,
    /// This node keeps the value for the owner until the owner frees it.
    pub(crate) keeps_copy: bool,
}

#[derive(Debug)]
pub(crate) enum Role {
    Owned(OwnedState),
    Borrowed(Box<Borrowed>),
}

#[derive(Debug)]
pub(crate) struct ObjectEntry<V> {
    pub(crate) state: ObjectState<V>,
    pub(crate) refs: RefCounts,
    /// Tasks whose arguments include this object, waiting for it to be usable here.
    pub(crate) dependents: Vec<TaskId>,
    /// A `get` or `wait` is waiting: report the seal.
    pub(crate) watched: bool,
    /// The error was seen by a `get` or passed on to a dependent task.
    pub(crate) error_handled: bool,
    pub(crate) role: Role,
}

impl<V> ObjectEntry<V> {
    pub(crate) fn owned(&self) -> Option<&Owned> {
        match &self.role {
            Role::Owned(owned) => Some(owned),
            Role::Borrowed(_) => None,
        }
    }

    pub(crate) fn owned_mut(&mut self) -> Option<&mut Owned> {
        match &mut self.role {
            Role::Owned(owned) => Some(owned),
            Role::Borrowed(_) => None,
        }
    }

    pub(crate) fn borrowed_mut(&mut self) -> Option<&mut Borrowed> {
        match &mut self.role {
            Role::Borrowed(borrowed) => Some(borrowed),
            Role::Owned(_) => None,
        }
    }

    /// Whether a value or an error is here to use.
    pub(crate) fn is_sealed(&self) -> bool {
        !matches!(self.state, ObjectState::Pending)
    }

    /// Whether anything on this node still waits for it.
    /// Owner side: it was made on another node that keeps it, and a copy is there still.
    pub(crate) fn made_elsewhere(&self) -> bool {
        self.owned().is_some_and(|o| o.made_elsewhere && o.copied())
    }

    pub(crate) fn is_needed(&self) -> bool {
        self.watched || !self.dependents.is_empty()
    }
}

/// What happened to an object that the scheduler must act on.
#[derive(Debug)]
pub(crate) enum ObjectEvent {
    /// An unretrieved error went out of scope: Ray prints these as "unhandled errors".
    UnhandledError(Arc<TaskError>),
    /// The last reference to an actor's handle object went.
    ActorHandleFreed(ActorId),
    /// A borrow ended: give `grants` back to `owner`.
    Released {
        object: ObjectId,
        owner: NodeId,
        grants: u32,
    },
    /// An owned object that was made elsewhere or copied was freed: these nodes keep copies
    /// to drop.
    Freed {
        object: ObjectId,
        copies: Vec<NodeId>,
    },
}

#[derive(Debug)]
pub(crate) struct ObjectTable<V> {
    local: NodeId,
    entries: IdMap<ObjectId, ObjectEntry<V>>,
    /// Releases of a reference that was not there (a count already at zero, or an object
    /// already gone): the simulator checks there are none.
    #[cfg(test)]
    pub(crate) over_released: Vec<(ObjectId, RefKind)>,
}

impl<V: ObjectValue> ObjectTable<V> {
    pub(crate) fn new(local: NodeId) -> Self {
        Self {
            local,
            entries: IdMap::default(),
            #[cfg(test)]
            over_released: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Gives back the memory of a table that grew far past what it holds now.
    pub(crate) fn shrink(&mut self) {
        if self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to_fit();
        }
    }

    pub(crate) fn get(&self, id: ObjectId) -> Option<&ObjectEntry<V>> {
        self.entries.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: ObjectId) -> Option<&mut ObjectEntry<V>> {
        self.entries.get_mut(&id)
    }

    fn new_entry(&self, id: ObjectId, state: ObjectState<V>, refs: RefCounts) -> ObjectEntry<V> {
        let owner = id.task.node();
        let role = if owner == self.local {
            Role::Owned(OwnedState::default())
        } else {
            Role::Borrowed(Box::new(Borrowed {
                owner,
                grants: 0,
                subscribed: false,
                sources: Vec::new(),
                pulling: None,
                keeps_copy: false,
            }))
        };
        ObjectEntry {
            state,
            refs,
            dependents: Vec::new(),
            watched: false,
            error_handled: false,
            role,
        }
    }

    /// Registers an object this node owns with one local reference, in `state`. Returns false
    /// (and changes nothing) if the ID is taken.
    pub(crate) fn create(&mut self, id: ObjectId, state: ObjectState<V>) -> bool {
        if self.entries.contains_key(&id) {
            return false;
        }
        let refs = RefCounts {
            local: 1,
            ..RefCounts::default()
        };
        let entry = self.new_entry(id, state, refs);
        self.entries.insert(id, entry);
        true
    }

    /// Adds a reference; false if the object is unknown here (freed, or never seen).
    pub(crate) fn add_ref(&mut self, id: ObjectId, kind: RefKind) -> bool {
        match self.entries.get_mut(&id) {
            Some(entry) => {
                *entry.refs.slot(kind) += 1;
                true
            }
            None => false,
        }
    }

    /// Takes in a reference another node granted this one, as `kind`. On the owner it is a
    /// plain reference (false if the object is gone, which the protocol rules out); elsewhere
    /// it is a borrow, created if new.
    pub(crate) fn receive_ref(&mut self, id: ObjectId, kind: RefKind) -> bool {
        if id.task.node() == self.local {
            return self.add_ref(id, kind);
        }
        let mut refs = RefCounts::default();
        *refs.slot(kind) += 1;
        match self.entries.get_mut(&id) {
            Some(entry) => {
                *entry.refs.slot(kind) += 1;
                if let Some(borrowed) = entry.borrowed_mut() {
                    borrowed.grants += 1;
                }
            }
            None => {
                let mut entry = self.new_entry(id, ObjectState::Pending, refs);
                if let Some(borrowed) = entry.borrowed_mut() {
                    borrowed.grants = 1;
                }
                self.entries.insert(id, entry);
            }
        }
        true
    }

    /// Makes sure a borrow entry for `id` (owned elsewhere) exists, with no reference yet.
    pub(crate) fn ensure_borrowed(&mut self, id: ObjectId) {
        if id.task.node() != self.local && !self.entries.contains_key(&id) {
            let entry = self.new_entry(id, ObjectState::Pending, RefCounts::default());
            self.entries.insert(id, entry);
        }
    }

    /// The owner granted `node` one more reference (it is about to send it one).
    pub(crate) fn grant(&mut self, id: ObjectId, node: NodeId) {
        if let Some(owned) = self.entries.get_mut(&id).and_then(ObjectEntry::owned_mut) {
            *owned.holders.entry(node).or_default() += 1;
        }
    }

    /// Changes what the owner knows `node` holds by `delta`, freeing the object if nothing
    /// references it any more.
    pub(crate) fn adjust_holder(
        &mut self,
        id: ObjectId,
        node: NodeId,
        delta: i64,
        events: &mut Vec<ObjectEvent>,
    ) {
        let Some(owned) = self.entries.get_mut(&id).and_then(ObjectEntry::owned_mut) else {
            return;
        };
        let count = owned.holders.entry(node).or_default();
        *count += delta;
        if *count == 0 {
            owned.holders.remove(&node);
        }
        self.free_if_unreferenced(id, events);
    }

    /// Forgets everything `node` held or kept (it died); frees what that leaves unreferenced.
    pub(crate) fn forget_node(&mut self, node: NodeId, events: &mut Vec<ObjectEvent>) {
        // An object no other node heard of has nothing of `node`'s to forget.
        let ids: Vec<ObjectId> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(&e.role, Role::Owned(owned) if owned.is_shared()))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(owned) = self.entries.get_mut(&id).and_then(ObjectEntry::owned_mut) {
                owned.holders.remove(&node);
                owned.copies.retain(|n| *n != node);
                owned.forget(node);
            }
            self.free_if_unreferenced(id, events);
        }
    }

    /// Drops a reference, freeing what reaches zero.
    pub(crate) fn release(&mut self, id: ObjectId, kind: RefKind, events: &mut Vec<ObjectEvent>) {
        // The first release is of `kind`; what freeing reaches are contained refs. Most
        // releases free nothing with refs inside: no worklist is allocated for them.
        let mut work = Vec::new();
        let mut next = Some((id, kind));
        while let Some((id, kind)) = next
            .take()
            .or_else(|| work.pop().map(|id| (id, RefKind::Contained)))
        {
            let Some(entry) = self.entries.get_mut(&id) else {
                #[cfg(test)]
                self.over_released.push((id, kind));
                continue;
            };
            let slot = entry.refs.slot(kind);
            #[cfg(test)]
            if *slot == 0 {
                self.over_released.push((id, kind));
            }
            *slot = slot.saturating_sub(1);
            self.collect(id, &mut work, events);
        }
    }

    /// Frees `id` if nothing references it any more (releasing what its value held).
    pub(crate) fn free_if_unreferenced(&mut self, id: ObjectId, events: &mut Vec<ObjectEvent>) {
        let mut work = Vec::new();
        self.collect(id, &mut work, events);
        for inner in work {
            self.release(inner, RefKind::Contained, events);
        }
    }

    /// The owner says no reference is left anywhere: drop the copy this node kept.
    pub(crate) fn drop_kept_copy(&mut self, id: ObjectId, events: &mut Vec<ObjectEvent>) {
        if let Some(borrowed) = self
            .entries
            .get_mut(&id)
            .and_then(ObjectEntry::borrowed_mut)
        {
            borrowed.keeps_copy = false;
        }
        self.free_if_unreferenced(id, events);
    }

    /// Removes `id` if unreferenced; the objects its value held go into `work`.
    fn collect(&mut self, id: ObjectId, work: &mut Vec<ObjectId>, events: &mut Vec<ObjectEvent>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.refs.total() > 0 {
            return;
        }
        let sealed = entry.is_sealed();
        match &mut entry.role {
            Role::Owned(owned) => {
                let produced = sealed || owned.made_elsewhere;
                if !owned.holders.is_empty() || !produced {
                    return;
                }
            }
            Role::Borrowed(borrowed) => {
                if borrowed.grants > 0 {
                    events.push(ObjectEvent::Released {
                        object: id,
                        owner: borrowed.owner,
                        grants: borrowed.grants,
                    });
                    borrowed.grants = 0;
                }
                if borrowed.keeps_copy {
                    return;
                }
            }
        }
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        if let Some(actor) = id.actor()
            && entry.owned().is_some()
        {
            events.push(ObjectEvent::ActorHandleFreed(actor));
        }
        // A result made elsewhere says so when freed even with no copy left: its lineage goes.
        if let Role::Owned(owned) = &entry.role
            && (owned.made_elsewhere || !owned.copies.is_empty())
        {
            events.push(ObjectEvent::Freed {
                object: id,
                copies: owned.copies.clone(),
            });
        }
        match entry.state {
            ObjectState::Ready(value) => work.extend_from_slice(value.contained()),
            ObjectState::Failed(error) if !entry.error_handled && entry.owned().is_some() => {
                events.push(ObjectEvent::UnhandledError(error));
            }
            _ => {}
        }
    }

    /// Drops the references a value not kept holds to the objects inside it.
    pub(crate) fn release_inside(&mut self, state: &ObjectState<V>, events: &mut Vec<ObjectEvent>) {
        if let ObjectState::Ready(value) = state {
            for &inner in value.contained() {
                self.release(inner, RefKind::Contained, events);
            }
        }
    }

    /// Every object, for listings.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ObjectId, &ObjectEntry<V>)> {
        self.entries.iter()
    }

    /// Makes a pending object usable here. Returns the tasks that were waiting on it.
    pub(crate) fn seal(
        &mut self,
        id: ObjectId,
        state: ObjectState<V>,
        events: &mut Vec<ObjectEvent>,
    ) -> Sealed {
        let Some(entry) = self.entries.get_mut(&id) else {
            // Nobody registered the object: drop the references its value holds.
            self.release_inside(&state, events);
            return Sealed::default();
        };
        if entry.is_sealed() {
            // Already usable (a second copy arrived): keep the first.
            self.release_inside(&state, events);
            return Sealed::default();
        }
        entry.state = state;
        let sealed = Sealed {
            dependents: std::mem::take(&mut entry.dependents),
            watched: entry.watched,
            subscribed: entry.owned().is_some_and(|o| !o.subscribers.is_empty()),
        };
        if entry.refs.total() == 0 {
            self.free_if_unreferenced(id, events);
        }
        sealed
    }
}

/// What sealing an object woke.
#[derive(Debug, Default)]
pub(crate) struct Sealed {
    pub(crate) dependents: Vec<TaskId>,
    pub(crate) watched: bool,
    /// Other nodes subscribed to hear of it.
    pub(crate) subscribed: bool,
}
