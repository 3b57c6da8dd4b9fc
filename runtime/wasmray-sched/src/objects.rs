//! The object table: each object's state (pending, ready, failed), its reference count and the
//! tasks waiting for it.
//!
//! A reference is anything that keeps an object alive: a handle in a guest or driver, a pending
//! task's argument, a containing object. When the count reaches zero and the object is not
//! pending, the entry goes and the references its value held are released in turn (with a
//! worklist, never recursion, so a long chain of nested refs cannot overflow the stack).
//! Values are held as `V`, the node's handle to stored bytes; dropping it frees them. The
//! references a value holds to the objects inside it were counted when the value was created
//! (see [`crate::ObjectValue`]); this table releases them when the value goes.

use crate::ObjectValue;
use std::sync::Arc;
use wasmray_core::{ActorId, IdMap, ObjectId, TaskError, TaskId};

/// The state of one object.
#[derive(Debug, Clone)]
pub enum ObjectState<V> {
    /// Its task has not finished.
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

/// References to one object, by kind.
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

#[derive(Debug)]
pub(crate) struct ObjectEntry<V> {
    pub(crate) state: ObjectState<V>,
    pub(crate) refs: RefCounts,
    /// Tasks whose arguments include this object, waiting for it to seal.
    pub(crate) dependents: Vec<TaskId>,
    /// A `get` or `wait` is waiting: report the seal.
    pub(crate) watched: bool,
    /// The error was seen by a `get` or passed on to a dependent task.
    pub(crate) error_handled: bool,
}

/// What happened to an object that the node must hear about.
#[derive(Debug)]
pub(crate) enum ObjectEvent {
    /// An unretrieved error went out of scope: Ray prints these as "unhandled errors".
    UnhandledError(Arc<TaskError>),
    /// The last reference to an actor's handle object went.
    ActorHandleFreed(ActorId),
}

#[derive(Debug)]
pub(crate) struct ObjectTable<V> {
    entries: IdMap<ObjectId, ObjectEntry<V>>,
}

impl<V: ObjectValue> ObjectTable<V> {
    pub(crate) fn new() -> Self {
        Self {
            entries: IdMap::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, id: ObjectId) -> Option<&ObjectEntry<V>> {
        self.entries.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: ObjectId) -> Option<&mut ObjectEntry<V>> {
        self.entries.get_mut(&id)
    }

    /// Registers an object with one reference, in `state`. Returns false (and changes
    /// nothing) if the ID is taken.
    pub(crate) fn create(&mut self, id: ObjectId, state: ObjectState<V>) -> bool {
        if self.entries.contains_key(&id) {
            return false;
        }
        self.entries.insert(
            id,
            ObjectEntry {
                state,
                refs: RefCounts {
                    local: 1,
                    ..RefCounts::default()
                },
                dependents: Vec::new(),
                watched: false,
                error_handled: false,
            },
        );
        true
    }

    /// Adds a reference; false if the object is unknown (already freed or never existed).
    pub(crate) fn add_ref(&mut self, id: ObjectId, kind: RefKind) -> bool {
        match self.entries.get_mut(&id) {
            Some(entry) => {
                *entry.refs.slot(kind) += 1;
                true
            }
            None => false,
        }
    }

    /// Drops a reference, freeing what reaches zero.
    pub(crate) fn release(&mut self, id: ObjectId, kind: RefKind, events: &mut Vec<ObjectEvent>) {
        let mut work = vec![(id, kind)];
        while let Some((id, kind)) = work.pop() {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            let slot = entry.refs.slot(kind);
            *slot = slot.saturating_sub(1);
            if entry.refs.total() == 0 && !matches!(entry.state, ObjectState::Pending) {
                let mut inner = Vec::new();
                self.free(id, &mut inner, events);
                work.extend(inner.into_iter().map(|id| (id, RefKind::Contained)));
            }
        }
    }

    /// Every object, for listings.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ObjectId, &ObjectEntry<V>)> {
        self.entries.iter()
    }

    /// Moves a pending object to its final state. Returns the tasks that were waiting on it.
    pub(crate) fn seal(
        &mut self,
        id: ObjectId,
        state: ObjectState<V>,
        events: &mut Vec<ObjectEvent>,
    ) -> Sealed {
        let Some(entry) = self.entries.get_mut(&id) else {
            // Nobody registered the object: drop the references its value holds.
            if let ObjectState::Ready(value) = &state {
                for &inner in value.contained() {
                    self.release(inner, RefKind::Contained, events);
                }
            }
            return Sealed::default();
        };
        entry.state = state;
        let sealed = Sealed {
            dependents: std::mem::take(&mut entry.dependents),
            watched: entry.watched,
        };
        if entry.refs.total() == 0 {
            let mut work = Vec::new();
            self.free(id, &mut work, events);
            for inner in work {
                self.release(inner, RefKind::Contained, events);
            }
        }
        sealed
    }

    fn free(&mut self, id: ObjectId, work: &mut Vec<ObjectId>, events: &mut Vec<ObjectEvent>) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        if let Some(actor) = id.actor() {
            events.push(ObjectEvent::ActorHandleFreed(actor));
        }
        match entry.state {
            ObjectState::Ready(value) => work.extend_from_slice(value.contained()),
            ObjectState::Failed(error) if !entry.error_handled => {
                events.push(ObjectEvent::UnhandledError(error));
            }
            _ => {}
        }
    }
}

/// What sealing an object woke.
#[derive(Debug, Default)]
pub(crate) struct Sealed {
    pub(crate) dependents: Vec<TaskId>,
    pub(crate) watched: bool,
}
