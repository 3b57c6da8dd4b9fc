//! api: Ray's smaller calls, one case per line — runtime context, GPU IDs, `get` with a
//! timeout, `error_info`, `cancel`. Run on a node with 2 CPUs and 2 GPUs. Expected output:
//!
//! ```text
//! is_initialized: true
//! context: driver has no actor, a task shares its job and node and has its own task ID
//! actor context: the same actor ID in two calls, another actor's differs
//! gpu ids: two 1-GPU tasks at once hold [[0], [1]]; two half-GPU tasks share [[0], [0]]; a 1-GPU actor holds [0]; none asked: []
//! get_timeout: GetTimeout after 50ms, then the value 7
//! error_info: [("fails_first", Panic, "first"), ("fails_second", Panic, "second")]
//! cancel queued: Cancelled, true
//! cancel running (sleeping): Cancelled
//! cancel running (computing): Cancelled
//! cancel recursive: parent Cancelled, child Cancelled
//! cancel finished: false
//! ```
//!
//! A case that waits for a cancelled task gives it 10 s and prints `still running` instead of
//! hanging. The first argument picks one case by its first word (`gpu`, `cancel`, ...).

use std::cell::RefCell;
use std::time::{Duration, Instant};
use wasmray::{ErrorKind, ObjectRef, TaskError};

#[wasmray::remote]
fn context() -> (String, String, Option<String>, String) {
    let context = wasmray::get_runtime_context();
    (
        context.job_id,
        context.task_id,
        context.actor_id,
        context.node_id,
    )
}

#[wasmray::remote]
fn gpu_ids_after(millis: u64) -> Vec<u32> {
    std::thread::sleep(Duration::from_millis(millis));
    wasmray::get_gpu_ids()
}

#[wasmray::remote]
fn slow_seven(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    7
}

#[wasmray::remote]
fn fails_first() -> u64 {
    panic!("first")
}

#[wasmray::remote]
fn fails_second() -> u64 {
    panic!("second")
}

#[wasmray::remote]
fn spin_forever() -> u64 {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Submits a child that sleeps an hour, hands the child's ref to `mailbox`, then waits for it.
#[wasmray::remote]
fn parent(mailbox: wasmray::ActorHandle<Mailbox>) -> Result<u64, TaskError> {
    let child = slow_seven::remote(3_600_000);
    wasmray::get(&mailbox.keep(child.clone()).remote())?;
    wasmray::get(&child)
}

/// Who am I, and which GPUs do I hold.
#[wasmray::actor]
struct Probe {
    _unused: u8,
}

#[wasmray::actor]
impl Probe {
    fn new() -> Self {
        Probe { _unused: 0 }
    }
    fn actor_id(&self) -> Option<String> {
        wasmray::get_runtime_context().actor_id
    }
    fn gpu_ids(&self) -> Vec<u32> {
        wasmray::get_gpu_ids()
    }
}

/// Holds a ref for the driver.
#[wasmray::actor]
struct Mailbox {
    kept: RefCell<Option<ObjectRef<u64>>>,
}

#[wasmray::actor]
impl Mailbox {
    fn new() -> Self {
        Mailbox {
            kept: RefCell::new(None),
        }
    }
    fn keep(&self, object: ObjectRef<u64>) {
        *self.kept.borrow_mut() = Some(object);
    }
    fn kept(&self) -> Option<ObjectRef<u64>> {
        self.kept.borrow().clone()
    }
}

fn kind<T>(result: Result<T, TaskError>) -> String {
    match result {
        Ok(_) => "returned".to_owned(),
        Err(error) => format!("{:?}", error.kind),
    }
}

/// The error kind of `object` once it ends, or `still running` after 10 s.
fn ended(object: &ObjectRef<u64>) -> String {
    let (ready, _) = wasmray::wait(
        std::slice::from_ref(object),
        1,
        Some(Duration::from_secs(10)),
    );
    if ready.is_empty() {
        "still running".to_owned()
    } else {
        kind(wasmray::get(object))
    }
}

fn context_case() -> Result<(), TaskError> {
    println!("is_initialized: {}", wasmray::is_initialized());
    let mine = wasmray::get_runtime_context();
    let (job, task, actor, node) = wasmray::get(&context::remote())?;
    let node_listed = wasmray::nodes().iter().any(|n| n.node_id == node);
    println!(
        "context: driver has {}, a task {} and {} and {}",
        if mine.actor_id.is_none() {
            "no actor"
        } else {
            "an ACTOR"
        },
        if job == mine.job_id && actor.is_none() {
            "shares its job"
        } else {
            "has ANOTHER JOB"
        },
        if node == mine.node_id && node_listed {
            "node"
        } else {
            "ANOTHER NODE"
        },
        if task != mine.task_id && !task.is_empty() {
            "has its own task ID"
        } else {
            "SHARES THE TASK ID"
        },
    );
    let (one, other) = (Probe::remote(), Probe::remote());
    let first = wasmray::get(&one.actor_id().remote())?;
    let again = wasmray::get(&one.actor_id().remote())?;
    let second = wasmray::get(&other.actor_id().remote())?;
    println!(
        "actor context: {}, {}",
        if first.is_some() && first == again {
            "the same actor ID in two calls"
        } else {
            "IDS DIFFER"
        },
        if second.is_some() && second != first {
            "another actor's differs"
        } else {
            "ANOTHER ACTOR'S IS THE SAME"
        },
    );
    Ok(())
}

fn gpu_case() -> Result<(), TaskError> {
    let whole = [
        gpu_ids_after::options().num_gpus(1.0).remote(300),
        gpu_ids_after::options().num_gpus(1.0).remote(300),
    ];
    let mut whole = wasmray::get_all(&whole)?;
    whole.sort();
    let halves = [
        gpu_ids_after::options().num_gpus(0.5).remote(300),
        gpu_ids_after::options().num_gpus(0.5).remote(300),
    ];
    let halves = wasmray::get_all(&halves)?;
    let probe = Probe::options().num_gpus(1.0).remote();
    let actor = wasmray::get(&probe.gpu_ids().remote())?;
    let none = wasmray::get(&gpu_ids_after::remote(0))?;
    println!(
        "gpu ids: two 1-GPU tasks at once hold {whole:?}; two half-GPU tasks share {halves:?}; \
         a 1-GPU actor holds {actor:?}; none asked: {none:?}"
    );
    Ok(())
}

fn get_timeout_case() -> Result<(), TaskError> {
    let slow = slow_seven::remote(1_000);
    let started = Instant::now();
    let first = wasmray::get_timeout(&slow, Duration::from_millis(50));
    let waited = started.elapsed();
    let value = wasmray::get(&slow)?;
    println!(
        "get_timeout: {} after {}, then the value {value}",
        kind(first),
        if waited >= Duration::from_millis(50) {
            "50ms"
        } else {
            "LESS THAN 50ms"
        }
    );
    Ok(())
}

fn error_info_case() -> Result<(), TaskError> {
    let before = wasmray::error_info().len();
    let _ = wasmray::get(&fails_first::options().max_retries(0).remote());
    let _ = wasmray::get(&fails_second::options().max_retries(0).remote());
    let listed: Vec<(String, ErrorKind, String)> = wasmray::error_info()
        .into_iter()
        .skip(before)
        .map(|e| {
            (
                e.function,
                e.kind,
                e.message.lines().last().unwrap_or("").to_owned(),
            )
        })
        .collect();
    println!("error_info: {listed:?}");
    Ok(())
}

fn cancel_case() -> Result<(), TaskError> {
    // Both CPUs taken by an hour's sleep: the next task waits in the queue.
    let hog = slow_seven::options().num_cpus(2.0).remote(3_600_000);
    let queued = slow_seven::remote(0);
    let cancelled = wasmray::cancel(&queued);
    println!(
        "cancel queued: {}, {cancelled}",
        kind(wasmray::get(&queued))
    );
    wasmray::cancel(&hog);
    println!("cancel running (sleeping): {}", ended(&hog));
    let spinning = spin_forever::options().max_retries(3).remote();
    let _ = wasmray::wait(&[slow_seven::remote(100)], 1, None);
    wasmray::cancel(&spinning);
    println!("cancel running (computing): {}", ended(&spinning));

    let mailbox = Mailbox::remote();
    let parent = parent::remote(&mailbox);
    let child = loop {
        if let Some(child) = wasmray::get(&mailbox.kept().remote())? {
            break child;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    wasmray::cancel(&parent);
    let parent_ended = {
        let (ready, _) = wasmray::wait(
            std::slice::from_ref(&parent),
            1,
            Some(Duration::from_secs(10)),
        );
        if ready.is_empty() {
            "still running".to_owned()
        } else {
            kind(wasmray::get(&parent))
        }
    };
    println!(
        "cancel recursive: parent {parent_ended}, child {}",
        ended(&child)
    );
    let done = slow_seven::remote(0);
    wasmray::get(&done)?;
    println!("cancel finished: {}", wasmray::cancel(&done));
    Ok(())
}

type Case = fn() -> Result<(), TaskError>;

const CASES: &[(&str, Case)] = &[
    ("context", context_case),
    ("gpu", gpu_case),
    ("get_timeout", get_timeout_case),
    ("error_info", error_info_case),
    ("cancel", cancel_case),
];

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    match std::env::args().nth(1) {
        None => CASES.iter().try_for_each(|(_, case)| case()),
        Some(name) => match CASES.iter().find(|(case, _)| *case == name) {
            Some((_, case)) => case(),
            None => panic!("unknown case `{name}`"),
        },
    }
}
