//! Identifiers of nodes, jobs, modules, tasks and objects.
//!
//! A [`TaskId`] is the minting node's ID in the high 64 bits and that node's counter in the low
//! 64, so nodes mint IDs without coordination. An [`ObjectId`] is the task that produces the
//! object plus an index: returns are `1..=n`, objects `put` by the task have the top bit set.
//! The task part names the object's owner, which is what multi-node reference counting and
//! lineage reconstruction need.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A hash map keyed by identifiers the runtime mints itself (tasks, objects, actors, guest
/// handles). Their values come from the runtime's counters, never from a guest, so the fast
/// unkeyed Fx hash cannot be flooded; the default SipHash showed up in profiles of every call.
pub type IdMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// A node of the cluster; random at start so that restarts never reuse an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// A job: one driver run and everything it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub u32);

/// A module, named by the SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModuleId(pub [u8; 32]);

/// A task (or a driver: drivers get task IDs so their puts and submissions have an owner).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub u128);

/// An actor, named by the task that created it. Its handle object is
/// [`ActorId::handle_object`]: while any reference to that object exists, the actor lives.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorId(pub TaskId);

impl ActorId {
    /// The object whose references are the actor's handles (index 0: never a return or put).
    pub fn handle_object(self) -> ObjectId {
        ObjectId {
            task: self.0,
            index: 0,
        }
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0.0 as u64)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({:?})", self.0)
    }
}

/// An object: produced by `task`, as return `index` or as a put (top bit of `index` set).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    pub task: TaskId,
    pub index: u32,
}

const PUT_BIT: u32 = 1 << 31;

impl TaskId {
    /// The node that minted this ID (the owner of its objects).
    pub fn node(self) -> NodeId {
        NodeId((self.0 >> 64) as u64)
    }

    /// Return value `index` (1-based, as in Ray) of this task.
    pub fn return_object(self, index: u32) -> ObjectId {
        ObjectId { task: self, index }
    }

    /// The `n`th object this task put (0-based).
    pub fn put_object(self, n: u32) -> ObjectId {
        ObjectId {
            task: self,
            index: PUT_BIT | n,
        }
    }
}

impl ObjectId {
    /// The actor this object is the handle of, if it is an actor handle object.
    pub fn actor(self) -> Option<ActorId> {
        (self.index == 0).then_some(ActorId(self.task))
    }

    /// Whether the object was created by `put` rather than returned by its task.
    pub fn is_put(self) -> bool {
        self.index & PUT_BIT != 0
    }
}

impl ModuleId {
    /// The first 12 hex digits: enough to tell modules apart in logs.
    pub fn short(&self) -> String {
        self.0[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleId({})", self.short())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({:x}:{})", self.0 >> 64, self.0 as u64)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:08x}", self.task, self.index)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_put() {
            write!(f, "ObjectId({:?}/put{})", self.task, self.index & !PUT_BIT)
        } else {
            write!(f, "ObjectId({:?}/{})", self.task, self.index)
        }
    }
}

/// Mints task IDs for one node: lock-free, never repeating for the node's lifetime.
#[derive(Debug)]
pub struct IdMint {
    node: NodeId,
    next: AtomicU64,
}

impl IdMint {
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            next: AtomicU64::new(1),
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn next_task(&self) -> TaskId {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        TaskId((u128::from(self.node.0) << 64) | u128::from(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_carry_their_node_and_never_repeat() {
        let mint = IdMint::new(NodeId(0xabcd));
        let a = mint.next_task();
        let b = mint.next_task();
        assert_ne!(a, b);
        assert_eq!(a.node(), NodeId(0xabcd));
        let other = IdMint::new(NodeId(0xabce)).next_task();
        assert_ne!(a, other);
    }

    #[test]
    fn put_and_return_objects_of_one_task_differ() {
        let task = IdMint::new(NodeId(1)).next_task();
        assert!(!task.return_object(1).is_put());
        assert!(task.put_object(1).is_put());
        assert_ne!(task.return_object(1), task.put_object(1));
    }
}
