//! What a submitted task is: the function to run, its arguments, what it needs, how to retry.
//!
//! The spec is generic over `V`, the node's representation of an inline argument value, so this
//! crate does not depend on the object store. A spec knows the chain of tasks that submitted it
//! (as a shared linked list) so that an error can name where it happened.

use crate::{ActorId, JobId, ModuleId, NodeId, ObjectId, ResourceSet, TaskId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Ray's default number of retries after a system failure.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// One argument as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ArgSpec<V> {
    /// Resolved to the object's value before the task runs.
    ByRef(ObjectId),
    /// Passed by value.
    Value(V),
}

/// What kind of work a task is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TaskKind {
    /// A remote function: runs export `wasmray_task:<function>`.
    Task,
    /// Constructs an actor (export `wasmray_actor_new:<function>`, the class name); its
    /// resources are held until the actor dies. The actor's ID is the task's ID.
    ActorCreation(Arc<ActorSpec>),
    /// A method call (export `wasmray_actor_call:<function>`, `Class::method`), run by the
    /// actor's instance, in submission order.
    ActorMethod { actor: ActorId },
}

/// What an actor is, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorSpec {
    pub class: String,
    pub max_restarts: u32,
    pub max_task_retries: u32,
    pub max_concurrency: u32,
    pub detached: bool,
    pub name: Option<ActorName>,
}

/// A registered actor name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorName {
    pub namespace: String,
    pub name: String,
}

/// A submitted task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec<V> {
    pub id: TaskId,
    pub kind: TaskKind,
    pub job: JobId,
    pub module: ModuleId,
    /// Name of the remote function.
    pub function: String,
    pub args: Vec<ArgSpec<V>>,
    pub num_returns: u32,
    /// What the task holds while it runs.
    pub resources: ResourceSet,
    /// Calls one instance may serve before it is retired; 0 means no limit.
    pub max_calls: u32,
    pub max_retries: u32,
    pub retry_exceptions: bool,
    pub memory_limit: Option<u64>,
    pub cpu_time_limit_ms: Option<u64>,
    /// The tasks this one was submitted from, innermost first.
    pub lineage: Lineage,
    /// The task (or driver) that submitted this one: whose children `cancel(recursive)` finds.
    pub submitter: TaskId,
    /// The node the job's driver runs on: where what the task prints is shown.
    pub driver: NodeId,
}

impl<V> TaskSpec<V> {
    /// The actor this task creates or calls, if any.
    pub fn actor(&self) -> Option<ActorId> {
        match &self.kind {
            TaskKind::Task => None,
            TaskKind::ActorCreation(_) => Some(ActorId(self.id)),
            TaskKind::ActorMethod { actor } => Some(*actor),
        }
    }

    /// The same spec with each by-value argument converted by `f` (a transport decoding a
    /// spec into the node's values).
    pub fn try_map_values<W, E>(
        self,
        f: &mut impl FnMut(V) -> Result<W, E>,
    ) -> Result<TaskSpec<W>, E> {
        let args = self
            .args
            .into_iter()
            .map(|arg| {
                Ok(match arg {
                    ArgSpec::ByRef(id) => ArgSpec::ByRef(id),
                    ArgSpec::Value(value) => ArgSpec::Value(f(value)?),
                })
            })
            .collect::<Result<Vec<_>, E>>()?;
        Ok(TaskSpec {
            id: self.id,
            kind: self.kind,
            job: self.job,
            module: self.module,
            function: self.function,
            args,
            num_returns: self.num_returns,
            resources: self.resources,
            max_calls: self.max_calls,
            max_retries: self.max_retries,
            retry_exceptions: self.retry_exceptions,
            memory_limit: self.memory_limit,
            cpu_time_limit_ms: self.cpu_time_limit_ms,
            lineage: self.lineage,
            submitter: self.submitter,
            driver: self.driver,
        })
    }

    /// The objects this task returns, in order.
    pub fn return_ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        (1..=self.num_returns).map(|i| self.id.return_object(i))
    }
}

/// A task and its ancestors, innermost first; cheap to extend and to clone.
#[derive(Debug, Clone, Default)]
pub struct Lineage(Option<Arc<LineageLink>>);

#[derive(Debug)]
struct LineageLink {
    function: String,
    parent: Lineage,
}

impl Lineage {
    /// How many names an error's task chain lists before `...`.
    pub const ERROR_CHAIN_LIMIT: usize = 16;

    /// The lineage of a driver (or any root): just `function`.
    pub fn root(function: &str) -> Self {
        Lineage::default().child(function)
    }

    /// The lineage of a task named `function` submitted from `self`.
    pub fn child(&self, function: &str) -> Self {
        Lineage(Some(Arc::new(LineageLink {
            function: function.to_owned(),
            parent: self.clone(),
        })))
    }

    /// The chain an error reports: at most [`Lineage::ERROR_CHAIN_LIMIT`] names.
    pub fn error_chain(&self) -> Vec<String> {
        self.names(Self::ERROR_CHAIN_LIMIT)
    }

    /// Function names, innermost first, at most `limit` of them (long chains end with `...`).
    pub fn names(&self, limit: usize) -> Vec<String> {
        let mut names = Vec::new();
        let mut link = self.0.as_deref();
        while let Some(current) = link {
            if names.len() == limit {
                names.push("...".to_owned());
                break;
            }
            names.push(current.function.clone());
            link = current.parent.0.as_deref();
        }
        names
    }
}

/// On the wire a lineage is the names an error would report (innermost first, at most
/// [`Lineage::ERROR_CHAIN_LIMIT`] and `...`): what a remote error needs, bounded in size.
impl Serialize for Lineage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.error_chain().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Lineage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        if names.len() > Self::ERROR_CHAIN_LIMIT + 1 {
            return Err(serde::de::Error::custom("lineage longer than its limit"));
        }
        Ok(names
            .iter()
            .rev()
            .fold(Lineage::default(), |lineage, name| lineage.child(name)))
    }
}

impl Drop for LineageLink {
    // A deep chain would otherwise drop recursively and could overflow the host's stack.
    fn drop(&mut self) {
        let mut next = self.parent.0.take();
        while let Some(link) = next {
            match Arc::try_unwrap(link) {
                Ok(mut owned) => next = owned.parent.0.take(),
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_lists_innermost_first_and_truncates() {
        let chain = Lineage::root("main").child("run").child("sub");
        assert_eq!(chain.names(10), ["sub", "run", "main"]);
        assert_eq!(chain.names(2), ["sub", "run", "..."]);
    }

    #[test]
    fn a_very_deep_lineage_drops_without_overflow() {
        let mut chain = Lineage::root("main");
        for _ in 0..1_000_000 {
            chain = chain.child("f");
        }
        drop(chain);
    }
}
