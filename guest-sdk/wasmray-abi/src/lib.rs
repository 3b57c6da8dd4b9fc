//! The records that cross wasmray's host ABI, shared by the guest SDK and the host.
//!
//! `wit/wasmray.wit` is the normative description of the ABI; this crate is its Rust
//! rendering. Import functions pass scalars and `(pointer, length)` pairs; anything richer
//! travels as a [postcard](https://docs.rs/postcard)-encoded record defined here. The names of
//! imports and exports live in [`imports`] and [`exports`] so that the host's linker, the SDK's
//! `extern` block and the WIT file can be checked against one list.
//!
//! This crate holds no behaviour beyond encoding: no I/O, no allocation policy, no host logic.

mod error;
mod records;

pub use error::{ErrorKind, TaskError};
pub use records::{
    ActorCall, ActorCreation, ActorLookup, ActorOptions, ArgOut, CallOptions, ClusterQuery,
    ErrorInfo, GetStatus, Handle, MethodOptions, NodeInfo, RuntimeContext, StagedInfo,
    TaskSubmission, ValueOut,
};

/// Version of the ABI; a module exports it as `wasmray_abi_version` and the host refuses a
/// module whose version differs.
pub const ABI_VERSION: u32 = 1;

/// Alignment (and length granularity) of a guest region that `map_object` maps an object
/// into: one wasm page, a multiple of any host's page size.
pub const MAP_ALIGN: u32 = 65536;

/// The most results one task or method call may declare (`num_returns`); the host refuses a
/// submission above it before it creates anything for it.
pub const MAX_RETURNS: u32 = 10_000;

/// What `map_object` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum MapStatus {
    /// The object's pages are mapped copy-on-write into the region: no bytes were copied.
    Mapped = 0,
    /// The object is small (kept inline) or not mappable here: its bytes were copied into the
    /// region. The region is still the guest's and needs no `unmap_object`.
    Copied = 1,
}

impl MapStatus {
    pub fn from_i32(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Mapped),
            1 => Some(Self::Copied),
            _ => None,
        }
    }
}

/// Name of the import module every wasmray host function lives in.
pub const IMPORT_MODULE: &str = "wasmray";

/// Prefix of the export that runs remote function `f`: `wasmray_task:f`.
pub const TASK_EXPORT_PREFIX: &str = "wasmray_task:";

/// Prefix of the export that constructs actor class `C`: `wasmray_actor_new:C`.
pub const ACTOR_NEW_EXPORT_PREFIX: &str = "wasmray_actor_new:";

/// Prefix of the export that runs method `m` of actor class `C`: `wasmray_actor_call:C::m`.
pub const ACTOR_CALL_EXPORT_PREFIX: &str = "wasmray_actor_call:";

/// Names of the host functions a guest may import from [`IMPORT_MODULE`].
pub mod imports {
    /// `submit-task(spec-ptr, spec-len, returns-ptr) -> status`
    pub const SUBMIT_TASK: &str = "submit_task";
    /// `put(value-ptr, value-len) -> handle`
    pub const PUT: &str = "put";
    /// `get(handle, timeout-ms, info-ptr) -> get-status`
    pub const GET: &str = "get";
    /// `wait(handles-ptr, count, num-returns, timeout-ms, ready-ptr) -> ready-count`
    pub const WAIT: &str = "wait";
    /// `release(handle)`
    pub const RELEASE: &str = "release";
    /// `staged-read(bytes-ptr, handles-ptr)`
    pub const STAGED_READ: &str = "staged_read";
    /// `task-arg(index, info-ptr)`
    pub const TASK_ARG: &str = "task_arg";
    /// `task-return(values-ptr, values-len)`
    pub const TASK_RETURN: &str = "task_return";
    /// `report-panic(message-ptr, message-len)`
    pub const REPORT_PANIC: &str = "report_panic";
    /// `cluster-info(query, info-ptr)`
    pub const CLUSTER_INFO: &str = "cluster_info";
    /// `create-actor(spec-ptr, spec-len, info-ptr) -> status`
    pub const CREATE_ACTOR: &str = "create_actor";
    /// `call-actor(spec-ptr, spec-len, returns-ptr) -> status`
    pub const CALL_ACTOR: &str = "call_actor";
    /// `get-actor(spec-ptr, spec-len, info-ptr) -> status`
    pub const GET_ACTOR: &str = "get_actor";
    /// `kill-actor(handle, no-restart)`
    pub const KILL_ACTOR: &str = "kill_actor";
    /// `put-bytes(bytes-ptr, bytes-len) -> handle`
    pub const PUT_BYTES: &str = "put_bytes";
    /// `object-len(handle) -> s64`
    pub const OBJECT_LEN: &str = "object_len";
    /// `map-object(handle, dest-ptr, dest-len) -> status`
    pub const MAP_OBJECT: &str = "map_object";
    /// `put-begin(len)`
    pub const PUT_BEGIN: &str = "put_begin";
    /// `put-write(bytes-ptr, bytes-len)`
    pub const PUT_WRITE: &str = "put_write";
    /// `put-end(refs-ptr, refs-count) -> handle`
    pub const PUT_END: &str = "put_end";
    /// `cancel(handle, force, recursive) -> s32`
    pub const CANCEL: &str = "cancel";
    /// `task-num-returns() -> u32`
    pub const TASK_NUM_RETURNS: &str = "task_num_returns";
    /// `unmap-object(dest-ptr, dest-len)`
    pub const UNMAP_OBJECT: &str = "unmap_object";

    /// Every import, in the order `wit/wasmray.wit` lists them.
    pub const ALL: &[&str] = &[
        SUBMIT_TASK,
        PUT,
        GET,
        WAIT,
        RELEASE,
        STAGED_READ,
        TASK_ARG,
        TASK_RETURN,
        REPORT_PANIC,
        CLUSTER_INFO,
        CREATE_ACTOR,
        CALL_ACTOR,
        GET_ACTOR,
        KILL_ACTOR,
        PUT_BYTES,
        OBJECT_LEN,
        MAP_OBJECT,
        UNMAP_OBJECT,
        PUT_BEGIN,
        PUT_WRITE,
        PUT_END,
        CANCEL,
        TASK_NUM_RETURNS,
    ];
}

/// Names of the functions a wasmray module exports.
pub mod exports {
    /// `wasmray-abi-version() -> u32`: present in every module built with the SDK.
    pub const ABI_VERSION: &str = "wasmray_abi_version";
    /// The WASI command entry point: the driver's `main`.
    pub const START: &str = "_start";
    /// The guest's linear memory.
    pub const MEMORY: &str = "memory";
}

/// Encodes a record with postcard.
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(value)
}

/// Decodes a record with postcard; the record may borrow from `bytes`.
pub fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}
