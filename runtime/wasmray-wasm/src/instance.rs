//! One guest instance and the calls it runs: remote-function tasks and the driver's `main`.
//!
//! An instance lives in its own `Store` with its own memory cap, CPU budget, WASI context and
//! handle table. Calls run with `call_async`, so a guest blocked in `get` parks on its fiber
//! and the thread moves on. After a call the handles it held are returned to the caller to
//! release *after* results are sealed (so objects a result refers to never drop to zero in
//! between). An instance that failed is never reused.

use crate::WasmError;
use crate::call::{CallLimits, Caller, Finished, MainOutcome, TaskCall, TaskOutcome};
use crate::cpu_clock::CpuBudget;
use crate::failure::{classify, task_outcome};
use crate::host::WasmHost;
use crate::kill::KillSwitch;
use crate::module::{GuestModule, check_abi_version};
use crate::output::{GuestOutput, OutputSink, Stream};
use crate::services::NodeServices;
use crate::stack_pointer::STACK_POINTER_EXPORT;
use crate::stack_pointer::{restore_stack_pointer, save_stack_pointer};
use crate::state::{CallState, GuestState, HandleTable, MemoryCap};
use std::sync::Arc;
use wasmray_abi::exports;
use wasmray_core::ObjectId;
use wasmtime::{Instance, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// A host directory a job's guests may use, as WASI sees it: preopened at `guest`. Nothing
/// outside it is reachable through it (`..` and symlinks out of it are refused by
/// wasmtime-wasi's capability-based filesystem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    pub host: std::path::PathBuf,
    pub guest: String,
    pub writable: bool,
}

/// How an instance is set up.
pub struct InstanceSetup {
    pub services: Arc<dyn NodeServices>,
    pub output: Arc<dyn OutputSink>,
    /// Most handles the instance may hold at once (its job's quota).
    pub max_handles: u32,
    /// The memory cap and CPU-time limit of instantiation (the start function and the ABI
    /// check): those of the first call the instance serves.
    pub limits: CallLimits,
    /// What its values are charged to (its job's account and largest value).
    pub job: Arc<crate::JobLimits>,
    /// The guest-memory budgets its linear memory also draws from (its job's, the node's).
    pub memory_pools: Vec<Arc<crate::MemoryPool>>,
    /// Host directories the guest may use (its job's grants); none by default.
    pub dirs: Arc<[DirGrant]>,
    /// Command-line arguments the guest sees (the driver's `[args]`; the module's name for
    /// tasks).
    pub args: Vec<String>,
    /// For an actor with `max_concurrency > 1`: where its blocked calls find others to run.
    pub nested: Option<Arc<dyn crate::NestedCalls>>,
}

/// A live guest instance.
pub struct GuestInstance {
    store: Store<GuestState>,
    instance: Instance,
    module: Arc<GuestModule>,
    calls: u32,
    poisoned: bool,
    retain_handles: bool,
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
        let limits = setup.limits;
        let declared = module.initial_memory_bytes() as u64;
        if declared > limits.memory_bytes {
            return Err(WasmError::InitialMemory {
                module: module.name.clone(),
                declared,
                limit: limits.memory_bytes,
            });
        }
        let output = GuestOutput::new(setup.output, None);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.writer(Stream::Stdout))
            .stderr(output.writer(Stream::Stderr))
            .monotonic_clock(crate::clocks::GuestMonotonic::new())
            .wall_clock(crate::clocks::GuestWall)
            .args(&setup.args);
        for grant in setup.dirs.iter() {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(|e| WasmError::Instantiate {
                    module: module.name.clone(),
                    message: format!("cannot grant `{}`: {e:#}", grant.host.display()),
                })?;
        }
        let wasi = wasi.build_p1();
        let state = GuestState {
            wasi,
            limits: MemoryCap::new(limits.memory_bytes as usize, setup.memory_pools),
            services: setup.services,
            job: setup.job,
            output,
            memory: None,
            handles: HandleTable::with_limit(setup.max_handles as usize),
            staged: None,
            call: None,
            cpu: CpuBudget::start(limits.cpu_time),
            deadline_hit: false,
            kill: KillSwitch::default(),
            nested: setup.nested,
            stack_pointer: None,
            mappings: Vec::new(),
            mappable_from: module.initial_memory_bytes(),
        };
        let mut store = Store::new(host.engine(), state);
        if host.config().enforce_limits {
            enforce_limits(&mut store);
        }
        let instance = module
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| instantiation_error(&store, module, e))?;
        let memory = instance.get_memory(&mut store, exports::MEMORY);
        store.data_mut().memory = memory;
        let stack_pointer = instance.get_global(&mut store, STACK_POINTER_EXPORT);
        store.data_mut().stack_pointer = stack_pointer;
        let version = instance
            .get_typed_func::<(), i32>(&mut store, exports::ABI_VERSION)
            .map_err(|_| WasmError::MissingExport {
                module: module.name.clone(),
                export: exports::ABI_VERSION,
            })?;
        store.set_epoch_deadline(1);
        let found = version
            .call_async(&mut store, ())
            .await
            .map_err(|e| instantiation_error(&store, module, e))?;
        check_abi_version(&module.name, found)?;
        Ok(Self {
            store,
            instance,
            module: Arc::clone(module),
            calls: 0,
            poisoned: false,
            retain_handles: false,
        })
    }

    pub fn module(&self) -> &Arc<GuestModule> {
        &self.module
    }

    /// The size of the instance's linear memory now (a reused instance must not serve a
    /// call whose memory cap is below it).
    pub fn memory_bytes(&self) -> u64 {
        self.store
            .data()
            .memory
            .map_or(0, |memory| memory.data_size(&self.store) as u64)
    }

    /// Calls served so far.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// Whether the instance may serve another call: it was not lost, and no call left it in
    /// a state the host cannot vouch for.
    pub fn reusable(&self) -> bool {
        !self.poisoned
    }

    /// Keeps handles from one call to the next (an actor's state may hold refs); they are
    /// released when the guest drops them or the instance goes.
    pub fn retain_handles(&mut self) {
        self.retain_handles = true;
    }

    /// The switch that stops this instance.
    pub fn kill_switch(&self) -> KillSwitch {
        self.store.data().kill.clone()
    }

    /// Runs the export `call.export` as a task, constructor or method.
    pub async fn run_task(&mut self, call: TaskCall) -> Finished<TaskOutcome> {
        let export = call.export;
        let function = call.function.clone();
        self.begin(
            CallState::new(call.caller, call.args, call.num_returns),
            call.limits,
            Some(call.label),
        );
        let stack = save_stack_pointer(&mut self.store);
        let result = match self
            .instance
            .get_typed_func::<(), ()>(&mut self.store, &export)
        {
            Ok(func) => func.call_async(&mut self.store, ()).await,
            Err(_) => Err(wasmtime::Error::msg(format!(
                "the module exports no `{export}`"
            ))),
        };
        if result.is_err() {
            restore_stack_pointer(&mut self.store, stack);
        }
        let (call, held) = self.end();
        let instance_lost = self.lost();
        self.poisoned |= instance_lost;
        let outcome = task_outcome(self.store.data(), call, &function, result);
        Finished {
            outcome,
            held,
            instance_lost,
        }
    }

    fn lost(&self) -> bool {
        let state = self.store.data();
        state.limits.hit || state.deadline_hit || state.kill.is_killed()
    }

    /// Runs the module's `main` as the driver, within `limits`.
    pub async fn run_main(&mut self, caller: Caller, limits: CallLimits) -> Finished<MainOutcome> {
        self.begin(CallState::new(caller, Vec::new(), 0), limits, None);
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
        let instance_lost = self.lost();
        self.poisoned = true;
        let outcome = match result {
            Ok(()) => MainOutcome::Exited(0),
            Err(error) => match error.downcast_ref::<I32Exit>() {
                Some(exit) => MainOutcome::Exited(exit.0),
                None => MainOutcome::Failed(classify(self.store.data(), &state, "main", &error)),
            },
        };
        Finished {
            outcome,
            held,
            instance_lost,
        }
    }

    fn begin(&mut self, call: CallState, limits: CallLimits, label: Option<String>) {
        self.calls += 1;
        let state = self.store.data_mut();
        state.output.set_label(label);
        state.limits.max_bytes = limits.memory_bytes as usize;
        state.limits.hit = false;
        state.limits.refused_by = None;
        state.cpu = CpuBudget::start(limits.cpu_time);
        state.deadline_hit = false;
        state.call = Some(call);
        self.store.set_epoch_deadline(1);
    }

    /// Takes every object mapping out of the instance's memory.
    fn unmap_all(&mut self) {
        let mappings = std::mem::take(&mut self.store.data_mut().mappings);
        let Some(memory) = self.store.data().memory else {
            return;
        };
        let base = memory.data_ptr(&self.store);
        // SAFETY: every mapping was made in this memory, which never moves (the pooling
        // allocator's slots are fixed); no guest code is running (no call is in progress, or
        // it has ended) and the host holds no reference into the memory here.
        unsafe { crate::mapping::unmap_all(base, mappings) };
    }

    fn end(&mut self) -> (CallState, Vec<ObjectId>) {
        if !self.retain_handles {
            // A task's mappings end with its call; an actor's live as long as its state.
            self.unmap_all();
        }
        let state = self.store.data_mut();
        state.output.flush();
        state.staged = None;
        let held = if self.retain_handles {
            Vec::new()
        } else {
            state.handles.drain()
        };
        // `begin` set the call and guests have no way to remove it.
        let call = state.call.take().expect("a call is in progress");
        (call, held)
    }
}

/// Installs the memory cap and, in the epoch callback, the CPU-time check and the kill
/// switch's check on `store`.
fn enforce_limits(store: &mut Store<GuestState>) {
    store.limiter(|state| &mut state.limits);
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut();
        if state.kill.is_killed() {
            return Ok(UpdateDeadline::Interrupt);
        }
        if state.cpu.exceeded() {
            state.deadline_hit = true;
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store.set_epoch_deadline(1);
}

/// Why instantiation (the start function included) failed: a limit it hit, or the trap.
fn instantiation_error(
    store: &Store<GuestState>,
    module: &GuestModule,
    error: wasmtime::Error,
) -> WasmError {
    let state = store.data();
    let module = module.name.clone();
    if state.deadline_hit {
        let limit_ms = state.cpu.limit().unwrap_or_default().as_millis() as u64;
        WasmError::StartDeadline { module, limit_ms }
    } else if let Some(refusal) = &state.limits.refused_by {
        WasmError::MemoryBudget {
            module,
            message: refusal.clone(),
        }
    } else if state.limits.hit {
        WasmError::StartOutOfMemory {
            module,
            limit: state.limits.max_bytes as u64,
        }
    } else {
        WasmError::Instantiate {
            module,
            message: format!("{error:#}"),
        }
    }
}

impl Drop for GuestInstance {
    fn drop(&mut self) {
        // Before the slot goes back to the pool: the next tenant must see zeros.
        self.unmap_all();
        let state = self.store.data_mut();
        let held = state.handles.drain();
        if !held.is_empty() {
            state.services.release(&held);
        }
    }
}
