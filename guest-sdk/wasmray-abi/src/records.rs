//! Records passed through import functions, postcard-encoded.
//!
//! Handles are the guest's names for objects: indexes into a per-instance table that the host
//! keeps, like file descriptors. A guest can use only the handles it was given or created.
//! Object IDs never cross into a guest.

use serde::{Deserialize, Serialize};

/// A guest's name for an object reference, valid only inside the instance that holds it.
pub type Handle = u32;

/// A serialized value a guest hands to the host: its postcard bytes and the handles of the
/// object refs it contains. An `ObjectRef` inside `bytes` is encoded as its index in `refs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueOut<'a> {
    #[serde(borrow)]
    pub bytes: &'a [u8],
    pub refs: Vec<Handle>,
}

/// One argument of a submitted task: a value, or a ref the host resolves before the task runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ArgOut<'a> {
    #[serde(borrow)]
    Value(ValueOut<'a>),
    Ref(Handle),
}

/// Options of one call; `None` means "the host's default" (1 CPU, 0 GPUs, 3 retries, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallOptions {
    pub num_cpus: Option<f64>,
    pub num_gpus: Option<f64>,
    /// Custom resources, by name.
    pub resources: Vec<(String, f64)>,
    /// How many calls an instance serves before it is retired; 0 means no limit.
    pub max_calls: Option<u32>,
    /// Retries after a system failure (and after a guest error with `retry_exceptions`).
    pub max_retries: Option<u32>,
    pub retry_exceptions: Option<bool>,
    /// Cap on the instance's linear memory, in bytes.
    pub memory_limit: Option<u64>,
    /// Cap on the guest's running time (not time blocked in `get`), in milliseconds.
    pub cpu_time_limit_ms: Option<u64>,
}

/// A task submission: `submit_task` decodes this from guest memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSubmission<'a> {
    /// Name of the remote function; the module exports `wasmray_task:<function>`.
    pub function: &'a str,
    #[serde(borrow)]
    pub args: Vec<ArgOut<'a>>,
    pub num_returns: u32,
    pub options: CallOptions,
}

/// Options of an actor, fixed at creation; `None` means the host's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActorOptions {
    /// CPUs held for the actor's whole life (default 0, as in Ray).
    pub num_cpus: Option<f64>,
    pub num_gpus: Option<f64>,
    pub resources: Vec<(String, f64)>,
    /// Times the actor is re-created after its instance is lost (default 0).
    pub max_restarts: Option<u32>,
    /// Times a call interrupted by the loss of the instance is retried (default 0).
    pub max_task_retries: Option<u32>,
    /// Registers the actor under this name, for `get_actor`.
    pub name: Option<String>,
    /// The namespace of `name` (default: the job's own namespace).
    pub namespace: Option<String>,
    /// Lives on after every handle is gone and after the job ends, until killed.
    pub detached: bool,
    /// Cap on the instance's linear memory, in bytes.
    pub memory_limit: Option<u64>,
    /// Cap on each method call's running time, in milliseconds.
    pub cpu_time_limit_ms: Option<u64>,
    /// Calls that may be in progress at once (default 1). Above 1, a call blocked in `get` or
    /// `wait` lets the next one run in the same instance.
    pub max_concurrency: Option<u32>,
}

/// `create_actor` decodes this: construct actor class `class` with `args`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorCreation<'a> {
    /// The module exports `wasmray_actor_new:<class>`.
    pub class: &'a str,
    #[serde(borrow)]
    pub args: Vec<ArgOut<'a>>,
    pub options: ActorOptions,
}

/// `call_actor` decodes this: call `method` on the actor behind handle `actor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorCall<'a> {
    pub actor: Handle,
    /// The method's name (`inc`) or `<class>::<method>`; the module exports
    /// `wasmray_actor_call:<class>::<method>`.
    pub method: &'a str,
    #[serde(borrow)]
    pub args: Vec<ArgOut<'a>>,
    pub num_returns: u32,
    pub options: MethodOptions,
}

/// Options of one actor method call (Ray's `c.m.options(..)`); `None` is the actor's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodOptions {
    /// How often the call is retried when the actor's instance is lost under it (and after
    /// guest errors too, with `retry_exceptions`); default: the actor's `max_task_retries`.
    pub max_task_retries: Option<u32>,
    /// Whether the call is retried after it panics or traps as well (default: no).
    pub retry_exceptions: Option<bool>,
}

/// `get_actor` decodes this: the live actor named `name`, which must be of class `class`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorLookup<'a> {
    pub name: &'a str,
    /// `None`: the caller's job namespace.
    pub namespace: Option<&'a str>,
    pub class: &'a str,
}

/// What `get`, `task_arg` and `cluster_info` stage for the guest to read with `staged_read`.
/// The host writes it as two little-endian `u32`s at the pointer the guest passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StagedInfo {
    pub bytes_len: u32,
    pub refs_len: u32,
}

impl StagedInfo {
    /// Size in guest memory: two `u32`s.
    pub const SIZE: u32 = 8;

    pub fn to_le_bytes(self) -> [u8; 8] {
        let mut out = [0; 8];
        out[..4].copy_from_slice(&self.bytes_len.to_le_bytes());
        out[4..].copy_from_slice(&self.refs_len.to_le_bytes());
        out
    }

    pub fn from_le_bytes(bytes: [u8; 8]) -> Self {
        let [a, b, c, d, e, f, g, h] = bytes;
        Self {
            bytes_len: u32::from_le_bytes([a, b, c, d]),
            refs_len: u32::from_le_bytes([e, f, g, h]),
        }
    }
}

/// The result of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum GetStatus {
    /// The object's value is staged.
    Value = 0,
    /// The object is an error: a postcard-encoded [`crate::TaskError`] is staged.
    Error = 1,
    /// The timeout passed first; nothing is staged.
    Timeout = 2,
}

impl GetStatus {
    pub fn from_i32(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Value),
            1 => Some(Self::Error),
            2 => Some(Self::Timeout),
            _ => None,
        }
    }
}

/// What `cluster_info` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ClusterQuery {
    /// `Vec<NodeInfo>`
    Nodes = 0,
    /// `Vec<(String, f64)>`: totals over live nodes.
    ClusterResources = 1,
    /// `Vec<(String, f64)>`: what is free now.
    AvailableResources = 2,
    /// `RuntimeContext`: the calling task's job, task, actor and node.
    RuntimeContext = 3,
    /// `Vec<ErrorInfo>`: the calling job's failed tasks, oldest first.
    ErrorInfo = 4,
}

impl ClusterQuery {
    pub fn from_i32(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Nodes),
            1 => Some(Self::ClusterResources),
            2 => Some(Self::AvailableResources),
            3 => Some(Self::RuntimeContext),
            4 => Some(Self::ErrorInfo),
            _ => None,
        }
    }
}

/// Where the calling code runs (Ray's `ray.get_runtime_context()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeContext {
    pub job_id: String,
    /// The running task's ID (the driver's own, in the driver).
    pub task_id: String,
    /// The actor whose constructor or method is running, if any.
    pub actor_id: Option<String>,
    pub node_id: String,
    /// IDs of the unit resources the task holds, by resource: `[("GPU", [0, 1])]`. A task or
    /// actor granted GPUs holds logical GPU IDs `0..num_gpus` of its node; no two tasks hold
    /// the same GPU at once unless each asked for a fraction of one.
    pub resource_ids: Vec<(String, Vec<u32>)>,
}

/// One failed task of a job, as `error_info()` lists it (Ray's `ray.error_info()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub task_id: String,
    pub function: String,
    pub kind: crate::ErrorKind,
    pub message: String,
    /// When it failed: milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// One node as `nodes()` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub alive: bool,
    pub is_head: bool,
    pub address: String,
    pub resources: Vec<(String, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_round_trips_with_borrowed_bytes() {
        let payload = [1u8, 2, 3];
        let spec = TaskSubmission {
            function: "f",
            args: vec![
                ArgOut::Value(ValueOut {
                    bytes: &payload,
                    refs: vec![7],
                }),
                ArgOut::Ref(3),
            ],
            num_returns: 2,
            options: CallOptions {
                num_cpus: Some(0.5),
                resources: vec![("disk".into(), 1.0)],
                ..CallOptions::default()
            },
        };
        let bytes = crate::encode(&spec).unwrap();
        let back: TaskSubmission<'_> = crate::decode(&bytes).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn staged_info_is_two_little_endian_words() {
        let info = StagedInfo {
            bytes_len: 0x0102_0304,
            refs_len: 5,
        };
        assert_eq!(info.to_le_bytes(), [4, 3, 2, 1, 5, 0, 0, 0]);
        assert_eq!(StagedInfo::from_le_bytes(info.to_le_bytes()), info);
    }
}
