//! One guest instance and the calls it runs: remote-function tasks and the driver's `main`.
//!
//! An instance lives in its own `Store` with its own memory cap, CPU budget, WASI context and
//! handle table. Calls run with `call_async`, so a guest blocked in `get` parks on its fiber
//! and the thread moves on. After a call the handles it held are returned to the caller to
//! release *after* results are sealed (so objects a result refers to never drop to zero in
//! between). An instance that failed is never reused.

use crate::WasmError;
use crate::host::WasmHost;
use crate::memory::GuestFault;
use crate::module::{GuestModule, check_abi_version};
use crate::output::{GuestOutput, OutputSink, Stream};
use crate::services::{Caller, NodeServices};
use crate::state::{CallState, GuestState, HandleTable, MemoryCap};
use std::sync::Arc;
use std::time::Duration;
use wasmray_abi::{ErrorKind, TASK_EXPORT_PREFIX, TaskError, exports};
use wasmray_core::ObjectId;
use wasmray_store::StoredObject;
use wasmtime::{Instance, Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

/// How an instance is set up.
pub struct InstanceSetup {
    pub services: Arc<dyn NodeServices>,
    pub output: Arc<dyn OutputSink>,
    /// Command-line arguments the guest sees (the driver's `[args]`; empty for tasks).
    pub args: Vec<String>,
}

/// The limits of one call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub memory_bytes: u64,
    pub cpu_time: Option<Duration>,
}

/// A task to run in an instance.
pub struct TaskCall {
    pub function: String,
    pub args: Vec<Arc<StoredObject>>,
    pub caller: Caller,
    pub limits: CallLimits,
    /// Shown before each line the task prints.
    pub label: String,
}

/// How a task call ended.
#[derive(Debug)]
pub enum TaskOutcome {
    Returned(Vec<Arc<StoredObject>>),
    Failed(TaskError),
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
}

/// A live guest instance.
pub struct GuestInstance {
    store: Store<GuestState>,
    instance: Instance,
    module: Arc<GuestModule>,
    calls: u32,
    poisoned: bool,
}

impl std::fmt::Debug for GuestInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestInstance")
            .field("module", &self.module)
            .field("calls", &self.calls)
            .finish()
    }
}

impl GuestInstance {
    /// Instantiates `module` with its own store.
    pub async fn new(
        host: &WasmHost,
        module: &Arc<GuestModule>,
        setup: InstanceSetup,
    ) -> Result<Self, WasmError> {
        let output = GuestOutput::new(setup.output, None);
        let wasi = WasiCtxBuilder::new()
            .stdout(output.writer(Stream::Stdout))
            .stderr(output.writer(Stream::Stderr))
            .args(&setup.args)
            .build_p1();
        let state = GuestState {
            wasi,
            limits: MemoryCap {
                max_bytes: host.config().max_memory_bytes as usize,
                hit: false,
            },
            services: setup.services,
            output,
            memory: None,
            handles: HandleTable::default(),
            staged: None,
            call: None,
            ticks: 0,
            tick_limit: None,
            deadline_hit: false,
        };
        let mut store = Store::new(host.engine(), state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|mut context| {
            let state = context.data_mut();
            state.ticks += 1;
            if state.tick_limit.is_some_and(|limit| state.ticks > limit) {
                state.deadline_hit = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store.set_epoch_deadline(1);
        let instance = module
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| WasmError::Instantiate {
                module: module.name.clone(),
                message: format!("{e:#}"),
            })?;
        let memory = instance.get_memory(&mut store, exports::MEMORY);
        store.data_mut().memory = memory;
        let version = instance
            .get_typed_func::<(), i32>(&mut store, exports::ABI_VERSION)
            .map_err(|_| WasmError::MissingExport {
                module: module.name.clone(),
                export: exports::ABI_VERSION,
            })?;
        store.set_epoch_deadline(1);
        let found =
            version
                .call_async(&mut store, ())
                .await
                .map_err(|e| WasmError::Instantiate {
                    module: module.name.clone(),
                    message: format!("{e:#}"),
                })?;
        check_abi_version(&module.name, found)?;
        Ok(Self {
            store,
            instance,
            module: Arc::clone(module),
            calls: 0,
            poisoned: false,
        })
    }

    pub fn module(&self) -> &Arc<GuestModule> {
        &self.module
    }

    /// Calls served so far.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// Whether the instance may serve another call (it has not failed).
    pub fn reusable(&self) -> bool {
        !self.poisoned
    }

    /// Runs remote function `call.function`.
    pub async fn run_task(&mut self, call: TaskCall) -> Finished<TaskOutcome> {
        let export = format!("{TASK_EXPORT_PREFIX}{}", call.function);
        let function = call.function.clone();
        self.begin(call.caller, call.args, call.limits, Some(call.label));
        let result = match self
            .instance
            .get_typed_func::<(), ()>(&mut self.store, &export)
        {
            Ok(func) => func.call_async(&mut self.store, ()).await,
            Err(_) => Err(wasmtime::Error::msg(format!(
                "the module exports no `{export}`"
            ))),
        };
        let (mut state, mut held) = self.end();
        if result.is_err() {
            // Results set before a later trap are discarded: release the refs they hold.
            for value in state.results.take().into_iter().flatten() {
                held.extend_from_slice(value.contained());
            }
        }
        let outcome = match result {
            Ok(()) => {
                match state.results {
                    Some(results) => TaskOutcome::Returned(results),
                    None => {
                        self.poisoned = true;
                        TaskOutcome::Failed(task_error(&state, &function, ErrorKind::InvalidTask, "returned without calling task_return (was it built with the wasmray SDK?)".into(), None))
                    }
                }
            }
            Err(error) => {
                self.poisoned = true;
                TaskOutcome::Failed(self.classify(&state, &function, &error))
            }
        };
        Finished { outcome, held }
    }

    /// Runs the module's `main` as the driver.
    pub async fn run_main(&mut self, caller: Caller, memory_bytes: u64) -> Finished<MainOutcome> {
        self.begin(
            caller,
            Vec::new(),
            CallLimits {
                memory_bytes,
                cpu_time: None,
            },
            None,
        );
        let result = match self
            .instance
            .get_typed_func::<(), ()>(&mut self.store, exports::START)
        {
            Ok(func) => func.call_async(&mut self.store, ()).await,
            Err(_) => Err(wasmtime::Error::msg(
                "the module has no `main` (no `_start` export)",
            )),
        };
        let (state, held) = self.end();
        self.poisoned = true;
        let outcome = match result {
            Ok(()) => MainOutcome::Exited(0),
            Err(error) => match error.downcast_ref::<I32Exit>() {
                Some(exit) => MainOutcome::Exited(exit.0),
                None => MainOutcome::Failed(self.classify(&state, "main", &error)),
            },
        };
        Finished { outcome, held }
    }

    fn begin(
        &mut self,
        caller: Caller,
        args: Vec<Arc<StoredObject>>,
        limits: CallLimits,
        label: Option<String>,
    ) {
        self.calls += 1;
        let state = self.store.data_mut();
        state.output.set_label(label);
        state.limits.max_bytes = limits.memory_bytes as usize;
        state.limits.hit = false;
        state.ticks = 0;
        state.deadline_hit = false;
        state.tick_limit = limits.cpu_time.map(WasmHost::ticks_for);
        state.call = Some(CallState {
            caller,
            args,
            results: None,
            panic_message: None,
            puts: 0,
        });
        self.store.set_epoch_deadline(1);
    }

    fn end(&mut self) -> (CallState, Vec<ObjectId>) {
        let state = self.store.data_mut();
        state.output.flush();
        state.staged = None;
        let held = state.handles.drain();
        // `begin` set the call and guests have no way to remove it.
        let call = state.call.take().expect("a call is in progress");
        (call, held)
    }

    fn classify(&self, call: &CallState, function: &str, error: &wasmtime::Error) -> TaskError {
        let state = self.store.data();
        let backtrace = error
            .downcast_ref::<WasmBacktrace>()
            .and_then(format_backtrace);
        let (kind, message) = if state.deadline_hit {
            let limit = state.tick_limit.unwrap_or(0) * crate::host::EPOCH_TICK.as_millis() as u64;
            (
                ErrorKind::DeadlineExceeded,
                format!("ran for more than its cpu time limit of {limit} ms"),
            )
        } else if state.limits.hit {
            (
                ErrorKind::OutOfMemory,
                format!(
                    "exceeded its memory limit of {} bytes",
                    state.limits.max_bytes
                ),
            )
        } else if let Some(message) = &call.panic_message {
            (ErrorKind::Panic, message.clone())
        } else if let Some(exit) = error.downcast_ref::<I32Exit>() {
            (
                ErrorKind::Trap,
                format!("called exit({}) inside a task", exit.0),
            )
        } else if let Some(fault) = error.downcast_ref::<GuestFault>() {
            (ErrorKind::Trap, format!("misused the host ABI: {fault}"))
        } else if let Some(trap) = error.downcast_ref::<Trap>() {
            (ErrorKind::Trap, trap_message(*trap))
        } else {
            (ErrorKind::Trap, format!("{error:#}"))
        };
        task_error(call, function, kind, message, backtrace)
    }
}

impl Drop for GuestInstance {
    fn drop(&mut self) {
        let state = self.store.data_mut();
        let held = state.handles.drain();
        if !held.is_empty() {
            state.services.release(&held);
        }
    }
}

fn task_error(
    call: &CallState,
    function: &str,
    kind: ErrorKind,
    message: String,
    backtrace: Option<String>,
) -> TaskError {
    TaskError {
        kind,
        function: function.to_owned(),
        message,
        backtrace,
        task_chain: call.caller.lineage.error_chain(),
        cause: None,
    }
}

fn trap_message(trap: Trap) -> String {
    match trap {
        Trap::StackOverflow => "overflowed its stack (unbounded recursion?)".into(),
        Trap::UnreachableCodeReached => "unreachable code reached (an abort)".into(),
        Trap::MemoryOutOfBounds => "out-of-bounds memory access".into(),
        Trap::IntegerDivisionByZero => "integer division by zero".into(),
        other => other.to_string(),
    }
}

/// Frames of the panic machinery that sit above the guest's own code in a panic's backtrace.
fn is_panic_machinery(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "abort",
        "std::",
        "core::",
        "__rustc::",
        "__rust_",
        "rust_panic",
        "rust_begin_unwind",
    ];
    PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Demangled frames, innermost first, without the panic machinery above the guest's code.
fn format_backtrace(backtrace: &WasmBacktrace) -> Option<String> {
    let names: Vec<String> = backtrace
        .frames()
        .iter()
        .map(|frame| {
            frame.func_name().map_or_else(
                || "<unnamed>".to_owned(),
                |n| format!("{:#}", rustc_demangle::demangle(n)),
            )
        })
        .collect();
    let first_own = names
        .iter()
        .position(|n| !is_panic_machinery(n))
        .unwrap_or(0);
    let frames: Vec<String> = names[first_own..]
        .iter()
        .enumerate()
        .map(|(i, name)| format!("  {i}: {name}"))
        .collect();
    (!frames.is_empty()).then(|| frames.join("\n"))
}
