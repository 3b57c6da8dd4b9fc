//! The wasm host of one node: the single `Engine`, its linker, the module registry and cache,
//! and the epoch clock that enforces CPU limits.
//!
//! The engine uses the pooling allocator (instances in 3–4 µs). Each memory slot reserves
//! `min(4 GiB, max_memory_bytes)` plus a guard: at the default 4 GiB, compiled code needs no
//! bounds checks and a memory never moves; a node meant to hold 100,000 actors trades that for
//! smaller slots (the address space is 128 TiB). The epoch clock ticks every [`EPOCH_TICK`];
//! at each tick a running guest yields to the async executor and its CPU budget is checked.

use crate::WasmError;
use crate::cache::ModuleCache;
use crate::module::{GuestModule, declared_memory_bytes};
use crate::stack_pointer::with_stack_pointer_export;
use crate::state::GuestState;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use wasmray_core::ModuleId;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Module, OptLevel, PoolingAllocationConfig,
};

pub use crate::state::EPOCH_TICK;

/// A module's ID: the SHA-256 of its bytes (what a node checks a fetched module against
/// before compiling it).
pub fn module_id(bytes: &[u8]) -> ModuleId {
    ModuleId(Sha256::digest(bytes).into())
}

/// The most fiber stacks (calls in progress at once, blocked ones included) a node keeps.
const MAX_STACKS: u32 = 16_384;

/// How the host is set up.
#[derive(Debug, Clone)]
pub struct WasmHostConfig {
    /// Instances that may exist at once (running, blocked in `get`, or idle for reuse).
    pub max_instances: u32,
    /// The most linear memory any one instance may have; per-task caps are at most this.
    pub max_memory_bytes: u64,
    /// Where compiled modules are cached; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Whether CPU limits, memory caps and kills are enforced (epoch interruption, the
    /// resource limiter). Off only to measure what enforcing them costs
    /// (`cargo bench`, `limits/*`): a guest then runs unbounded and cannot be stopped.
    #[doc(hidden)]
    pub enforce_limits: bool,
}

impl Default for WasmHostConfig {
    fn default() -> Self {
        Self {
            max_instances: 2048,
            max_memory_bytes: 4 << 30,
            cache_dir: None,
            enforce_limits: true,
        }
    }
}

/// A loaded module's name and bytes.
type ModuleSource = (String, Arc<[u8]>);

/// The engine, linker and loaded modules of one node.
pub struct WasmHost {
    engine: Engine,
    linker: Linker<GuestState>,
    cache: Option<ModuleCache>,
    modules: Mutex<HashMap<ModuleId, Arc<GuestModule>>>,
    /// Each loaded module's name and bytes, for peers that must run it (modules travel by
    /// content hash).
    sources: Mutex<HashMap<ModuleId, ModuleSource>>,
    config: WasmHostConfig,
    ticker: EpochTicker,
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmHost")
            .field("config", &self.config)
            .finish()
    }
}

impl WasmHost {
    /// The most memory the host keeps resident once every instance is gone: each slot used
    /// keeps its first pages warm for the next tenant.
    pub fn retained_bytes_bound(&self) -> u64 {
        u64::from(self.config.max_instances) * (MEMORY_KEEP_RESIDENT + TABLE_KEEP_RESIDENT) as u64
    }

    pub fn new(config: WasmHostConfig) -> Result<Self, WasmError> {
        let engine = Engine::new(&engine_config(&config)).map_err(|e| {
            let mut message = format!("{e:#}");
            if message.contains("Cannot allocate memory") {
                message.push_str(&format!(
                    " (each of the {} instance slots needs its own memory mappings: lower --max-instances or raise the vm.max_map_count sysctl)",
                    config.max_instances
                ));
            }
            WasmError::Engine(message)
        })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut GuestState| {
            &mut state.wasi
        })
        .and_then(|_| crate::sleep::add_to_linker(&mut linker))
        .and_then(|_| crate::imports::add_to_linker(&mut linker))
        .and_then(|_| crate::actor_imports::add_to_linker(&mut linker))
        .and_then(|_| crate::object_imports::add_to_linker(&mut linker))
        .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let cache = config
            .cache_dir
            .clone()
            .map(|dir| ModuleCache::new(dir, &engine));
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch clock: {e}")))?;
        Ok(Self {
            engine,
            linker,
            cache,
            modules: Mutex::default(),
            sources: Mutex::default(),
            config,
            ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &WasmHostConfig {
        &self.config
    }

    /// Loads a module from a file: compiled once, then cached on disk and in memory.
    pub fn load_file(&self, path: &Path) -> Result<Arc<GuestModule>, WasmError> {
        if !path.is_file() {
            return Err(WasmError::NotAFile(path.to_owned()));
        }
        let bytes = std::fs::read(path).map_err(|e| WasmError::Read(path.to_owned(), e))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.load(&name, &bytes)
    }

    /// Loads a module from its bytes; `name` is used in messages.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Arc<GuestModule>, WasmError> {
        check_magic(name, bytes)?;
        let id = module_id(bytes);
        if let Some(module) = self
            .modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(Arc::clone(module));
        }
        let module = match self
            .cache
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, &id))
        {
            Some(module) => module,
            None => {
                let started = Instant::now();
                let limit = self.config.max_memory_bytes;
                if let Some(declared) = declared_memory_bytes(bytes).filter(|&d| d > limit) {
                    return Err(WasmError::InitialMemory {
                        module: name.to_owned(),
                        declared,
                        limit,
                    });
                }
                let prepared = with_stack_pointer_export(bytes);
                let module =
                    Module::new(&self.engine, &prepared).map_err(|e| WasmError::Compile {
                        module: name.to_owned(),
                        message: format!("{e:#}"),
                    })?;
                tracing::info!(module = name, elapsed = ?started.elapsed(), "compiled module");
                if let Some(cache) = &self.cache {
                    cache.store(&id, &module);
                }
                module
            }
        };
        let guest = Arc::new(GuestModule::new(
            id,
            name.to_owned(),
            &module,
            &self.linker,
        )?);
        self.modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&guest));
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, (name.to_owned(), Arc::from(bytes)));
        Ok(guest)
    }

    /// The name and bytes of a module loaded before, by ID.
    pub fn module_source(&self, id: &ModuleId) -> Option<(String, Arc<[u8]>)> {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// A module loaded before, by ID.
    pub fn module(&self, id: &ModuleId) -> Option<Arc<GuestModule>> {
        self.modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }
}

impl Drop for WasmHost {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Bytes of a slot's memory and table kept resident when its instance goes (reused warm).
const MEMORY_KEEP_RESIDENT: usize = 64 << 10;
const TABLE_KEEP_RESIDENT: usize = 16 << 10;

/// The most stack a guest's wasm may use; deeper recursion traps ("call stack exhausted").
pub const MAX_WASM_STACK: usize = 1 << 20;

fn engine_config(config: &WasmHostConfig) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(config.max_instances)
        .total_memories(config.max_instances)
        .total_tables(config.max_instances)
        // Fiber stacks are held only by calls in progress (running or blocked), not by idle
        // actors, so a node holding 100,000 actors needs far fewer of them.
        .total_stacks(config.max_instances.min(MAX_STACKS))
        .max_memory_size(config.max_memory_bytes as usize)
        .table_elements(100_000)
        // Keep freshly used pages of a slot warm: first-touch faults, not copies, dominate
        // short tasks on this kind of machine.
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT);
    let mut wasm = Config::new();
    wasm.epoch_interruption(config.enforce_limits)
        .max_wasm_stack(MAX_WASM_STACK)
        // Room on each fiber for the host's own frames below the guest's.
        .async_stack_size(MAX_WASM_STACK + (1 << 20))
        .wasm_backtrace_max_frames(NonZeroUsize::new(64))
        .cranelift_opt_level(OptLevel::Speed)
        .memory_reservation(config.max_memory_bytes.min(4 << 30))
        .memory_guard_size(32 << 20)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}

fn check_magic(name: &str, bytes: &[u8]) -> Result<(), WasmError> {
    match bytes {
        [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => Ok(()),
        [0, b'a', b's', b'm', ..] => Err(WasmError::NotCoreModule(name.to_owned())),
        _ => Err(WasmError::NotWasm(name.to_owned())),
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("wasmray-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
