//! wasmray's wasm host: the only crate that touches wasmtime or guest memory.
//!
//! It owns the engine (pooling allocator, epoch interruption), the on-disk cache of compiled
//! modules, the linker with WASI preview 1 and the `wasmray` imports of `wit/wasmray.wit`, and
//! guest instances with their memory caps, CPU budgets and handle tables. What a guest's
//! requests *mean* (scheduling, reference counting, storage) is decided by the node through
//! the [`NodeServices`] trait; this crate does not schedule and does not network.

mod actor_imports;
mod cache;
mod call;
mod clocks;
mod counted;
mod cpu_clock;
mod failure;
pub mod fuzz;
mod guest_io;
mod handles;
mod host;
mod imports;
mod instance;
mod kill;
mod mapping;
mod memory;
mod memory_pool;
mod module;
mod nested;
mod object_imports;
mod output;
mod services;
mod sleep;
mod stack_pointer;
mod state;

pub use call::{CallLimits, Caller, Finished, MainOutcome, TaskCall, TaskOutcome};
pub use clocks::GUEST_CLOCK_RESOLUTION;
pub use counted::{CountedValue, ReleaseContained};
pub use cpu_clock::coarse_clock;
pub use host::{EPOCH_TICK, WasmHost, WasmHostConfig, module_id};
pub use instance::{DirGrant, GuestInstance, InstanceSetup};
pub use kill::KillSwitch;
pub use memory::GuestFault;
pub use memory_pool::MemoryPool;
pub use module::GuestModule;
pub use output::{MAX_LINE, OutputRate, OutputSink, RateLimited, StdioSink, Stream};
pub use services::{
    ActorRequest, ActorServices, BoxFuture, GetOutcome, JobLimits, NestedCall, NestedCalls,
    NodeServices, Submission, SubmittedArg,
};

use std::path::PathBuf;

impl WasmError {
    /// The kind of task error this is when it stops a task from starting: the guest's own
    /// limits are its fault (not retried as a system failure); anything else is the node's.
    pub fn error_kind(&self) -> wasmray_abi::ErrorKind {
        match self {
            WasmError::InitialMemory { .. }
            | WasmError::StartOutOfMemory { .. }
            | WasmError::MemoryBudget { .. } => wasmray_abi::ErrorKind::OutOfMemory,
            WasmError::StartDeadline { .. } => wasmray_abi::ErrorKind::DeadlineExceeded,
            _ => wasmray_abi::ErrorKind::System,
        }
    }
}

/// Why a module could not be loaded or instantiated.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("`{}` is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("cannot read `{}`: {}", .0.display(), .1)]
    Read(PathBuf, std::io::Error),
    #[error("`{0}` is not a WebAssembly module (it does not start with the wasm magic bytes)")]
    NotWasm(String),
    #[error(
        "`{0}` is a WebAssembly component or an unsupported wasm version; wasmray runs core modules built for wasm32-wasip1"
    )]
    NotCoreModule(String),
    #[error("`{module}` is not valid WebAssembly: {message}")]
    Compile { module: String, message: String },
    #[error("`{module}` was not built with the wasmray SDK: it has no `{export}` export")]
    MissingExport {
        module: String,
        export: &'static str,
    },
    #[error(
        "`{module}` was built for wasmray ABI version {found}, but this host speaks version {expected}; rebuild it against this SDK"
    )]
    AbiMismatch {
        module: String,
        found: u32,
        expected: u32,
    },
    #[error("`{module}` imports `{import}`, which wasmray does not provide")]
    UnknownImport { module: String, import: String },
    #[error("`{module}` cannot be linked: {message}")]
    Link { module: String, message: String },
    #[error("cannot instantiate `{module}`: {message}")]
    Instantiate { module: String, message: String },
    #[error(
        "`{module}` declares {declared} bytes of initial memory, more than its memory limit of {limit} bytes"
    )]
    InitialMemory {
        module: String,
        declared: u64,
        limit: u64,
    },
    #[error("`{module}`'s start function grew its memory past its memory limit of {limit} bytes")]
    StartOutOfMemory { module: String, limit: u64 },
    #[error("`{module}`'s start function ran for more than its cpu time limit of {limit_ms} ms")]
    StartDeadline { module: String, limit_ms: u64 },
    #[error("`{module}` cannot start: {message}")]
    MemoryBudget { module: String, message: String },
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
}
