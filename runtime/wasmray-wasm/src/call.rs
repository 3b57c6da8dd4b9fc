//! The vocabulary of one call into an instance: who calls, with what limits, the call itself,
//! and how it ended. Plain data, shared by the instance, the imports and the node; it does
//! nothing.

use crate::counted::CountedValue;
use std::sync::Arc;
use std::time::Duration;
use wasmray_abi::TaskError;
use wasmray_core::{ActorId, JobId, Lineage, ModuleId, NodeId, ObjectId, TaskId};
use wasmray_store::StoredObject;

/// Who is calling: the task (or driver) running in an instance.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The scheduled task, or the driver's own ID.
    pub task: TaskId,
    /// Minted per run attempt: objects this run `put`s are `run.put_object(n)`.
    pub run: TaskId,
    pub job: JobId,
    pub module: ModuleId,
    pub lineage: Lineage,
    /// The actor whose constructor or method this is.
    pub actor: Option<ActorId>,
    /// The GPUs the task (or its actor) holds, by logical ID.
    pub gpu_ids: Vec<u32>,
    /// The node the job's driver runs on (tasks it submits say so).
    pub driver: NodeId,
}

/// The limits of one call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub memory_bytes: u64,
    pub cpu_time: Option<Duration>,
}

/// A task to run in an instance.
pub struct TaskCall {
    /// The export to call: `wasmray_task:f`, `wasmray_actor_new:C` or `wasmray_actor_call:C::m`.
    pub export: String,
    /// What errors call it: `f`, `C` or `C::m`.
    pub function: String,
    pub args: Vec<Arc<StoredObject>>,
    pub caller: Caller,
    pub limits: CallLimits,
    /// Shown before each line the task prints.
    pub label: String,
    /// How many results the caller asked for (`task_num_returns` tells the guest).
    pub num_returns: u32,
}

/// How the driver's `main` ended.
#[derive(Debug)]
pub enum MainOutcome {
    /// `main` returned or called `exit`: the process exit code.
    Exited(i32),
    /// `main` panicked or trapped.
    Failed(TaskError),
}

/// A call's outcome plus the objects its handles still referenced: release these once the
/// outcome has been recorded.
#[derive(Debug)]
pub struct Finished<T> {
    pub outcome: T,
    pub held: Vec<ObjectId>,
    /// The instance cannot serve again: it hit its memory cap or CPU limit, or was killed.
    pub instance_lost: bool,
}

/// How a task call ended.
#[derive(Debug)]
pub enum TaskOutcome {
    /// One value per return; the references inside them are owed (see [`CountedValue`]).
    Returned(Vec<CountedValue>),
    Failed(TaskError),
}
