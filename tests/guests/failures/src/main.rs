//! failures: tasks that fail in every way the sandbox must contain, and proof that the node
//! keeps serving afterwards.
//!
//! Each case runs one task and prints `<case>: <ErrorKind:?>` for the error `get` returns
//! (or `<case>: unexpectedly returned <value>`). Expected output, in this order:
//!
//! ```text
//! infinite loop: DeadlineExceeded
//! memory bomb: OutOfMemory
//! deep recursion: Trap
//! panic: Panic
//! retried panic: Panic
//! infeasible: Infeasible
//! node still serving: 42
//! ```
//!
//! - `infinite loop`: spins forever under `cpu_time_limit(300 ms)`.
//! - `memory bomb`: allocates 1 MiB chunks forever under `memory_limit(64 MiB)`.
//! - `deep recursion`: recurses without end until the stack is exhausted (the shadow stack in
//!   linear memory or wasm's call stack: a trap either way). A 10 s CPU limit guards against a
//!   compiler turning the recursion into a loop; it would show as `DeadlineExceeded`.
//! - `panic`: panics with `boom: panicking on purpose`.
//! - `retried panic`: always panics, with `max_retries(2)` and `retry_exceptions(true)`; the task
//!   prints `flaky attempt` on each attempt, so its output shows that line 3 times.
//! - `infeasible`: asks for `resource("unobtainium", 1.0)`, which no node has.
//!
//! Every case but the retried one sets `max_retries(0)`, so none is retried and the run stays
//! short whatever the host's default.
//!
//! `failures rebuild` is a cluster case instead (Ray's `test_reconstruction`): it makes a
//! chain of five 1 MiB results, holding only the last, and prints `chain made`; it then waits
//! until a node with the resource `second` is alive and none with `first` is (the test
//! starts one and SIGKILLs the node that made the chain), reads the last link's first byte
//! through a task and prints `rebuilt: 4` — every link made again from its lineage (the
//! first link's task prints `making the first link` each time it runs).
//!
//! `failures drain` makes the same chain and prints `chain made`, then waits until a node
//! with `second` is alive and none with `first` is (the test drains the node that made the
//! chain); reading the last link prints `after drain: 4` — the drained node handed its
//! copies over, so nothing is made again (`making the first link` shows once).
//!
//! `failures keeper` (run on a worker node, through `wasmray submit --socket`) creates the
//! detached actor `tally` in namespace `tests` on a node with `worker`, prints
//! `actor up: 101`, then runs a task 40 times, 100 ms apart (the test kills the head and
//! starts it again meanwhile) and prints `job done: 40 rounds`. `failures find-tally` (a later
//! driver) finds `tally` by name and prints `found after restart: 102`.
//!
//! `failures restart` is another (Ray's actor restart on another node): a named actor
//! `Tally` (`max_restarts(1)`, `max_task_retries(3)`) that needs the resource `host` is
//! created with 100, answers a call (`actor up`), and is sent 20 slow calls; the test then
//! starts a node with `host` and `second` and SIGKILLs the one with `first`. Every call is
//! answered (those lost with the node run again on the new one) and the actor's state
//! started over from its constructor's argument: `all 20 answered`, then `restarted: true`
//! (a new call's count is below what 21 calls on one instance give), then `found by name:
//! true`. Its constructor prints `tally created with 100` on each node it runs on.

use std::hint::black_box;
use std::time::Duration;
use wasmray::{ObjectRef, TaskError};

#[wasmray::remote]
fn spin() -> u64 {
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_add(1));
    }
}

#[wasmray::remote]
fn hog() -> usize {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        // `vec![1; n]` writes every byte, so the pages are really used.
        chunks.push(black_box(vec![1u8; 1 << 20]));
    }
}

/// Recurses without end. Each frame passes a pointer to its own buffer down, so the compiler
/// cannot turn the recursion into a loop: every level really takes stack.
fn depth(parent: &[u8; 64]) -> u64 {
    let frame = black_box([parent[63].wrapping_add(1); 64]);
    if black_box(frame[0]) == 0 && black_box(false) {
        return 0;
    }
    1 + depth(&frame) + u64::from(frame[1])
}

#[wasmray::remote]
fn recurse(seed: u8) -> u64 {
    depth(&[seed; 64])
}

#[wasmray::remote]
fn boom(message: String) -> u64 {
    panic!("boom: {message}")
}

#[wasmray::remote]
fn flaky() -> u64 {
    println!("flaky attempt");
    panic!("flaky fails on every attempt")
}

#[wasmray::remote]
fn answer() -> u64 {
    42
}

#[wasmray::remote]
fn first_link() -> Vec<u8> {
    println!("making the first link");
    vec![0u8; 1 << 20]
}

#[wasmray::remote]
fn next_link(previous: Vec<u8>) -> Vec<u8> {
    let mut link = previous;
    link[0] = link[0].wrapping_add(1);
    link
}

#[wasmray::remote]
fn first_byte(link: Vec<u8>) -> u8 {
    link[0]
}

/// Counts the calls made to it since it was created (or created again).
#[wasmray::actor]
struct Tally {
    start: u64,
    calls: u64,
}

#[wasmray::actor]
impl Tally {
    fn new(start: u64) -> Self {
        println!("tally created with {start}");
        Tally { start, calls: 0 }
    }

    /// Counts a call after `millis`, and returns the start plus the calls so far.
    fn bump(&mut self, millis: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(millis));
        self.calls += 1;
        self.start + self.calls
    }
}

fn restart() -> Result<(), TaskError> {
    let tally = Tally::options()
        .name("tally")
        .resource("host", 1.0)
        .max_restarts(1)
        .max_task_retries(3)
        .remote(100);
    let first = wasmray::get(&tally.bump(0).remote())?;
    let slow: Vec<ObjectRef<u64>> = (0..20).map(|_| tally.bump(100).remote()).collect();
    println!("actor up: {first}");
    let answered = wasmray::get_all(&slow)?;
    println!("all {} answered", answered.len());
    loop {
        let nodes = wasmray::nodes();
        if has_live(&nodes, "second") && !has_live(&nodes, "first") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = wasmray::get(&tally.bump(0).remote())?;
    println!("restarted: {}", now < 100 + 22);
    let found = wasmray::get_actor::<Tally>("tally")?;
    println!(
        "found by name: {}",
        wasmray::get(&found.bump(0).remote())? > now
    );
    Ok(())
}

fn has_live(nodes: &[wasmray::NodeInfo], resource: &str) -> bool {
    nodes
        .iter()
        .any(|n| n.alive && n.resources.iter().any(|(name, _)| name == resource))
}

fn keeper() -> Result<(), TaskError> {
    let tally = Tally::options()
        .name("tally")
        .namespace("tests")
        .detached()
        .resource("worker", 0.5)
        .remote(100);
    println!("actor up: {}", wasmray::get(&tally.bump(0).remote())?);
    for _ in 0..40 {
        let got = wasmray::get(&answer::options().max_retries(5).remote())?;
        assert_eq!(got, 42);
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("job done: 40 rounds");
    Ok(())
}

fn find_tally() -> Result<(), TaskError> {
    let tally = wasmray::get_actor_in::<Tally>("tally", "tests")?;
    println!(
        "found after restart: {}",
        wasmray::get(&tally.bump(0).remote())?
    );
    Ok(())
}

/// Makes the chain of five 1 MiB links, reads the last where it was made (a `wait` or `get`
/// here would pull it here) and prints `chain made`; then waits until a node with `second`
/// is alive and none with `first` is, and reads the last link again: its first byte.
fn chain_across_a_loss() -> Result<u8, TaskError> {
    let mut last = first_link::remote();
    for _ in 0..4 {
        last = next_link::remote(last);
    }
    let read = wasmray::get(&first_byte::remote(last.clone()))?;
    println!("chain made: {read}");
    loop {
        let nodes = wasmray::nodes();
        if has_live(&nodes, "second") && !has_live(&nodes, "first") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    wasmray::get(&first_byte::remote(last))
}

fn drain() -> Result<(), TaskError> {
    println!("after drain: {}", chain_across_a_loss()?);
    Ok(())
}

fn rebuild() -> Result<(), TaskError> {
    println!("rebuilt: {}", chain_across_a_loss()?);
    Ok(())
}

fn report(case: &str, object: ObjectRef<u64>) {
    match wasmray::get(&object) {
        Ok(value) => println!("{case}: unexpectedly returned {value}"),
        Err(error) => println!("{case}: {:?}", error.kind),
    }
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    match std::env::args().nth(1).as_deref() {
        Some("rebuild") => return rebuild(),
        Some("restart") => return restart(),
        Some("drain") => return drain(),
        Some("keeper") => return keeper(),
        Some("find-tally") => return find_tally(),
        _ => {}
    }
    report(
        "infinite loop",
        spin::options()
            .max_retries(0)
            .cpu_time_limit(Duration::from_millis(300))
            .remote(),
    );
    let hog = hog::options()
        .max_retries(0)
        .memory_limit(64 * 1024 * 1024)
        .remote();
    match wasmray::get(&hog) {
        Ok(value) => println!("memory bomb: unexpectedly returned {value}"),
        Err(error) => println!("memory bomb: {:?}", error.kind),
    }
    report(
        "deep recursion",
        recurse::options().max_retries(0).remote(0),
    );
    report(
        "panic",
        boom::options()
            .max_retries(0)
            .remote("panicking on purpose".to_string()),
    );
    report(
        "retried panic",
        flaky::options()
            .max_retries(2)
            .retry_exceptions(true)
            .remote(),
    );
    report(
        "infeasible",
        answer::options()
            .max_retries(0)
            .resource("unobtainium", 1.0)
            .remote(),
    );
    println!("node still serving: {}", wasmray::get(&answer::remote())?);
    Ok(())
}
