//! hostile: a guest that attacks its node, one way per case (`hostile <case>`), plus the
//! well-behaved `neighbour` job the hostile-guest suite runs beside each attack
//! (`tests/tests/all/hostile.rs`, through the `wasmray-hostile` harness).
//!
//! Each attack runs in a task (or the driver, where the driver is the attacker) and the
//! driver prints one line, `<case>: <ErrorKind:?>: <message>` for the error it got back, or
//! `<case>: ok <detail>` when the host let it finish (which the suite treats as a failure
//! unless the case says otherwise). Drivers that are themselves stopped print nothing more;
//! the harness reports how they ended.
//!
//! `fs DIR` probes what the guest can reach of the filesystem (DIR as granted) and
//! environment: `fs: passwd=denied root=denied granted=ok dotdot=denied symlink=denied
//! write=denied env=0` under a read-only grant.
//!
//! `escape-codes` prints terminal escape codes from the driver and a task, then panics with
//! some in its message: the node must print them escaped.
//!
//! `neighbour` submits 50 tasks, puts and gets an object, calls an actor, and prints
//! `neighbour: ok 42925` (the sum of the squares of 0..50 plus the object and actor values).

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;
use wasmray::{ObjectRef, TaskError};

/// The CPU-time limit of the attacking tasks: well above what any honest case here needs.
const CPU_LIMIT: Duration = Duration::from_secs(2);

#[wasmray::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[wasmray::actor]
pub struct Counter {
    value: u64,
}

#[wasmray::actor]
impl Counter {
    pub fn new(value: u64) -> Self {
        Counter { value }
    }

    pub fn add(&mut self, by: u64) -> u64 {
        self.value += by;
        self.value
    }

    /// Keeps `mib` MiB of touched memory in its state.
    pub fn hoard(&mut self, mib: u64) -> u64 {
        let block = vec![1u8; (mib as usize) << 20];
        self.value += block
            .iter()
            .step_by(4096)
            .map(|&b| u64::from(b))
            .sum::<u64>();
        std::mem::forget(block);
        self.value
    }
}

/// An actor whose constructor traps.
#[wasmray::actor]
pub struct Trapper {
    value: u64,
}

#[wasmray::actor]
impl Trapper {
    pub fn new(value: u64) -> Self {
        if black_box(value) < u64::MAX {
            std::process::abort();
        }
        Trapper { value }
    }

    pub fn get(&self) -> u64 {
        self.value
    }
}

fn neighbour() -> Result<(), TaskError> {
    let squares: Vec<ObjectRef<u64>> = (0..50).map(square::remote).collect();
    let sum: u64 = wasmray::get_all(&squares)?.into_iter().sum();
    let object = wasmray::put(&500u64);
    let counter = Counter::remote(100);
    let added = wasmray::get(&counter.add(1).remote())?;
    println!("neighbour: ok {}", sum + wasmray::get(&object)? + added);
    Ok(())
}

#[wasmray::remote]
fn spin() -> u64 {
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_add(1));
    }
}

#[wasmray::remote]
fn vec_bomb() -> usize {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(black_box(vec![1u8; 1 << 20]));
    }
}

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
fn abort() -> u64 {
    std::process::abort()
}

#[wasmray::remote]
fn unreachable() -> u64 {
    if black_box(true) {
        core::arch::wasm32::unreachable()
    }
    0
}

/// Panics while formatting a panic's message.
struct PanicsWhenShown;

impl std::fmt::Display for PanicsWhenShown {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("a panic inside a panic")
    }
}

#[wasmray::remote]
fn panic_in_panic() -> u64 {
    panic!("outer: {}", PanicsWhenShown)
}

/// Submits two copies of itself and returns without waiting: a task population that doubles.
#[wasmray::remote]
fn fork_bomb() -> u64 {
    drop(fork_bomb::remote());
    drop(fork_bomb::remote());
    1
}

#[wasmray::remote]
fn flood_lines() -> u64 {
    let mut out = std::io::stdout().lock();
    loop {
        let _ = writeln!(
            out,
            "flooding the terminal with a line that never stops coming"
        );
    }
}

#[wasmray::remote]
fn flood_no_newline() -> u64 {
    let chunk = vec![b'x'; 1 << 20];
    let mut out = std::io::stdout().lock();
    loop {
        let _ = out.write_all(&chunk);
    }
}

/// Prints terminal escape codes from a task.
#[wasmray::remote]
fn shout() {
    eprintln!("\x1b]0;pwned\x07task title");
}

#[wasmray::remote]
fn big_return() -> Vec<u8> {
    vec![7u8; 1 << 30]
}

/// Holds refs it was given by value and sleeps: a task that stays pending or running.
#[wasmray::remote]
fn hold(refs: Vec<ObjectRef<u64>>) -> usize {
    std::thread::sleep(Duration::from_secs(30));
    refs.len()
}

#[wasmray::remote]
fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// Puts small objects and keeps every handle.
fn handle_flood() -> String {
    let mut held = Vec::new();
    loop {
        held.push(wasmray::put(&(held.len() as u64)));
        if held.len() > 50_000_000 {
            return format!("ok {} handles", held.len());
        }
    }
}

/// Puts small objects, keeping them alive inside bigger ones so that few handles hold them.
fn inline_flood() -> String {
    let mut outer = Vec::new();
    loop {
        let inner: Vec<ObjectRef<Vec<u8>>> =
            (0..1000).map(|_| wasmray::put(&vec![1u8; 512])).collect();
        outer.push(wasmray::put(&inner));
        if outer.len() > 10_000_000 {
            return format!("ok {} batches", outer.len());
        }
    }
}

/// Puts 1 MiB objects and keeps them: past the store, they spill.
fn spill_flood() -> String {
    let chunk = vec![3u8; 1 << 20];
    let mut held = Vec::new();
    loop {
        held.push(wasmray::put(&chunk));
        if held.len() > 1_000_000 {
            return format!("ok {} MiB", held.len());
        }
    }
}

fn actors(count: usize) -> String {
    let mut made = Vec::new();
    for i in 0..count {
        match Counter::options().try_remote(i as u64) {
            Ok(actor) => made.push(actor),
            Err(error) => return format!("{:?}: {}", error.kind, last_line(&error.message)),
        }
    }
    format!("ok {} actors", made.len())
}

/// What a guest can reach of the filesystem and environment, given a granted directory
/// `dir` (as the guest sees it): one `name=ok|denied` per probe.
fn filesystem(dir: &str) -> String {
    let probe = |ok: bool| if ok { "ok" } else { "denied" };
    let read = |path: &str| std::fs::read_to_string(path).is_ok();
    [
        format!("passwd={}", probe(read("/etc/passwd"))),
        format!("root={}", probe(std::fs::read_dir("/").is_ok())),
        format!("granted={}", probe(read(&format!("{dir}/granted.txt")))),
        format!("dotdot={}", probe(read(&format!("{dir}/../secret.txt")))),
        format!("symlink={}", probe(read(&format!("{dir}/link-out")))),
        format!(
            "write={}",
            probe(std::fs::write(format!("{dir}/written.txt"), "hello").is_ok())
        ),
        format!("env={}", std::env::vars().count()),
    ]
    .join(" ")
}

fn last_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

fn outcome<T: std::fmt::Debug>(result: Result<T, TaskError>) -> String {
    match result {
        Ok(value) => format!("ok {value:?}"),
        Err(error) => format!("{:?}: {}", error.kind, last_line(&error.message)),
    }
}

fn limited() -> square::Call {
    square::options()
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let case = std::env::args().nth(1).unwrap_or_default();
    let line = match case.as_str() {
        "neighbour" => return neighbour(),
        "infinite-loop" => outcome(wasmray::get(
            &spin::options()
                .max_retries(0)
                .cpu_time_limit(CPU_LIMIT)
                .remote(),
        )),
        "vec-bomb" => outcome(wasmray::get(
            &vec_bomb::options()
                .max_retries(0)
                .memory_limit(64 << 20)
                .remote(),
        )),
        "stack-overflow" => outcome(wasmray::get(&recurse::options().max_retries(0).remote(0))),
        "abort" => outcome(wasmray::get(&abort::options().max_retries(0).remote())),
        "unreachable" => outcome(wasmray::get(
            &unreachable::options().max_retries(0).remote(),
        )),
        "panic-in-panic" => outcome(wasmray::get(
            &panic_in_panic::options().max_retries(0).remote(),
        )),
        "fork-bomb" => {
            let first = fork_bomb::remote();
            let started = wasmray::get(&first);
            // The population grows until the job's quota stops it; give it time to get there.
            std::thread::sleep(Duration::from_secs(3));
            outcome(started.map(|_| "the bomb went off"))
        }
        "stdout-lines" => outcome(wasmray::get(
            &flood_lines::options()
                .max_retries(0)
                .cpu_time_limit(CPU_LIMIT)
                .remote(),
        )),
        "stdout-no-newline" => outcome(wasmray::get(
            &flood_no_newline::options()
                .max_retries(0)
                .cpu_time_limit(CPU_LIMIT)
                .remote(),
        )),
        "big-return" => outcome(wasmray::get(
            &big_return::options()
                .max_retries(0)
                .memory_limit(3 << 30)
                .remote(),
        )),
        "big-argument" => {
            let bytes = vec![5u8; 1 << 30];
            outcome(wasmray::get(
                &length::options().max_retries(0).remote(bytes),
            ))
        }
        "big-put" => {
            let bytes = vec![5u8; 1 << 30];
            let object = wasmray::put(&bytes);
            drop(bytes);
            outcome(wasmray::get(&object).map(|b| b.len()))
        }
        "clock" => {
            // How fine the clocks a guest can read are: every reading's nanoseconds.
            let start = std::time::Instant::now();
            let finest = (0..10_000)
                .map(|_| {
                    let wall = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    let mono = start.elapsed();
                    (wall.subsec_nanos() % 1000).max(mono.subsec_nanos() % 1000)
                })
                .max()
                .unwrap_or(0);
            format!("sub-microsecond nanoseconds seen: {finest}")
        }
        "handle-flood" => handle_flood(),
        "refused-with-refs" => {
            // Submits until the pending-tasks quota refuses one (the driver traps): the refused
            // submission's refs, inside its by-value argument, must be given back.
            let mut pending = Vec::new();
            loop {
                let refs = vec![wasmray::put(&1u64), wasmray::put(&2u64)];
                pending.push(hold::remote(refs));
            }
        }
        "inline-flood" => inline_flood(),
        "spill-flood" => spill_flood(),
        "actors" => actors(10_000),
        "memory-spread" => {
            // Each actor stays under its own cap; together they would take the machine.
            let mut hoarders = Vec::new();
            loop {
                let actor = Counter::remote(0);
                if let Err(error) = wasmray::get(&actor.hoard(32).remote()) {
                    break format!(
                        "{:?} after {} actors: {}",
                        error.kind,
                        hoarders.len(),
                        last_line(&error.message)
                    );
                }
                hoarders.push(actor);
            }
        }
        "escape-codes" => {
            println!("\x1b[2J\rforged: cleared the screen");
            wasmray::get(&shout::remote())?;
            panic!("\x1b[31mred alert\x07")
        }
        "fs" => filesystem(
            &std::env::args()
                .nth(2)
                .unwrap_or_else(|| "/data".to_owned()),
        ),
        "constructor-trap" => {
            let trapper = Trapper::remote(1);
            outcome(wasmray::get(&trapper.get().remote()))
        }
        "bad-resources" => [-1.0, f64::NAN, 1e30]
            .into_iter()
            .map(|cpus| {
                outcome(wasmray::get(
                    &limited().max_retries(0).num_cpus(cpus).remote(2),
                ))
            })
            .collect::<Vec<_>>()
            .join(" | "),
        other => panic!("unknown case `{other}`"),
    };
    println!("{case}: {line}");
    Ok(())
}
