//! The actor classes and tasks the `actors` driver (main.rs) exercises; each exists for one or
//! a few of its cases. Nothing here prints.

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;
use wasmray::ActorHandle;

/// A number with every kind of method: reads, writes, a panic, a memory bomb, a long sleep.
#[wasmray::actor]
pub struct Keeper {
    value: i64,
}

#[wasmray::actor]
impl Keeper {
    pub fn new(value: i64) -> Self {
        Keeper { value }
    }

    pub fn get(&self) -> i64 {
        self.value
    }

    pub fn set(&mut self, value: i64) {
        self.value = value;
    }

    /// Adds one and returns the new value.
    pub fn bump(&mut self) -> i64 {
        self.value += 1;
        self.value
    }

    /// Panics while holding `&mut self`: the next call must still get the state.
    pub fn fail(&mut self, message: String) -> i64 {
        panic!("Keeper::fail: {message}")
    }

    /// Counts the call, then panics while the count is at most `failures`: a call retried
    /// after panics succeeds on attempt `failures + 1`.
    pub fn flaky(&mut self, failures: i64) -> i64 {
        self.value += 1;
        if self.value <= failures {
            panic!(
                "Keeper::flaky: attempt {} of {failures} failing ones",
                self.value
            );
        }
        self.value
    }

    /// Allocates 1 MiB chunks until the instance's memory cap stops it.
    pub fn explode(&mut self) -> usize {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            // `vec![1; n]` writes every byte, so the pages are really used.
            chunks.push(black_box(vec![1u8; 1 << 20]));
        }
    }

    /// Two results: the value and a description of it.
    #[wasmray::method(num_returns = 2)]
    pub fn split(&self) -> (i64, String) {
        (self.value, format!("value {}", self.value))
    }

    /// The same two values, as one tuple result unless a call asks for two objects.
    pub fn pair(&self) -> (i64, String) {
        (self.value, format!("value {}", self.value))
    }

    /// Sleeps `millis` ms, then returns the value.
    pub fn sleep_ms(&self, millis: u64) -> i64 {
        std::thread::sleep(Duration::from_millis(millis));
        self.value
    }
}

/// An actor whose constructor always panics.
#[wasmray::actor]
pub struct Fragile {
    _never: (),
}

#[wasmray::actor]
impl Fragile {
    pub fn new(message: String) -> Self {
        panic!("Fragile::new: {message}")
    }

    pub fn ping(&self) -> u32 {
        1
    }
}

/// Any other class, for looking up a name with the wrong class.
#[wasmray::actor]
pub struct Other {
    _unit: (),
}

#[wasmray::actor]
impl Other {
    pub fn new() -> Self {
        Other { _unit: () }
    }

    pub fn ping(&self) -> u32 {
        2
    }
}

/// Keeps a handle to a `Keeper` in its state and calls it.
#[wasmray::actor]
pub struct Relay {
    target: ActorHandle<Keeper>,
}

#[wasmray::actor]
impl Relay {
    pub fn new(target: ActorHandle<Keeper>) -> Self {
        Relay { target }
    }

    /// Bumps the target and returns its new value.
    pub fn forward(&self) -> i64 {
        match wasmray::get(&self.target.bump().remote()) {
            Ok(value) => value,
            Err(error) => panic!("Relay::forward: the target failed: {error}"),
        }
    }
}

/// Only `&self` methods, so it may run with `max_concurrency > 1`.
#[wasmray::actor]
pub struct Flag {
    set: Cell<bool>,
}

/// How many naps `wait_for_flag` takes before giving up (10 ms each).
const NAPS: u32 = 1_000;

#[wasmray::actor]
impl Flag {
    pub fn new() -> Self {
        Flag {
            set: Cell::new(false),
        }
    }

    /// Waits, blocked in `wasmray::wait` on short tasks, until `set_flag` ran.
    pub fn wait_for_flag(&self) -> String {
        for _ in 0..NAPS {
            if self.set.get() {
                return "flag seen".to_string();
            }
            let _ = wasmray::wait(&[nap::remote(10)], 1, None);
        }
        format!("flag not seen after {NAPS} naps")
    }

    pub fn set_flag(&self) -> bool {
        self.set.set(true);
        true
    }
}

/// Blocks inside the host on purpose, in `sleep`, `get` or `wait`: three calls at once, each
/// nested inside the one blocked before it, and room for a fourth that asks how many started.
#[wasmray::actor]
pub struct Sleeper {
    calls: Cell<u32>,
}

#[wasmray::actor(max_concurrency = 4)]
impl Sleeper {
    pub fn new() -> Self {
        Sleeper {
            calls: Cell::new(0),
        }
    }

    pub fn sleep_ms(&self, millis: u64) -> u64 {
        self.calls.set(self.calls.get() + 1);
        std::thread::sleep(Duration::from_millis(millis));
        millis
    }

    pub fn get_of(&self, value: wasmray::ObjectRef<u64>) -> u64 {
        self.calls.set(self.calls.get() + 1);
        wasmray::get(&value).unwrap_or(0)
    }

    pub fn wait_on(&self, value: wasmray::ObjectRef<u64>) -> u64 {
        self.calls.set(self.calls.get() + 1);
        let (ready, _) = wasmray::wait(&[value], 1, None);
        ready.len() as u64
    }

    /// How many of the blocking methods have started.
    pub fn started(&self) -> u32 {
        self.calls.get()
    }
}

/// Named, namespaced and detached by its class defaults (Ray's `@ray.remote(name=..,
/// namespace=.., lifetime="detached")`).
#[wasmray::actor]
pub struct Registry {
    entries: u32,
}

#[wasmray::actor(name = "registry", namespace = "shared", lifetime = "detached")]
impl Registry {
    pub fn new() -> Self {
        Registry { entries: 0 }
    }

    pub fn add(&mut self) -> u32 {
        self.entries += 1;
        self.entries
    }
}

/// Sleeps `millis` ms.
#[wasmray::remote]
pub fn nap(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

/// Bumps `keeper` from a task, through the handle it was given.
#[wasmray::remote]
pub fn bump_from_task(keeper: ActorHandle<Keeper>) -> i64 {
    match wasmray::get(&keeper.bump().remote()) {
        Ok(value) => value,
        Err(error) => panic!("bump_from_task: the keeper failed: {error}"),
    }
}
