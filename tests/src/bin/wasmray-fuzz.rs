//! wasmray's fuzz targets: every decoder of bytes a guest or a peer controls, driven by a
//! seeded mutation fuzzer on stable Rust (no nightly, so no libFuzzer coverage feedback).
//!
//! Each target starts from a corpus of valid encodings and runs mutated inputs (bit flips,
//! byte overwrites with boundary values, huge varints where lengths sit, inserts, deletes,
//! truncation, splices of two inputs). An input that decodes is kept as a seed, up to a
//! bound, so mutations keep reaching past the first field. A target fails if it panics, or
//! if one allocation asks for more than `64 × input + 1 MiB` bytes (a decoder believing a
//! length the input cannot back); the input is written to `fuzz-crash-<target>.bin` and its
//! hex printed, to become a regression test.
//!
//! Targets: `abi-records` (every record the imports decode), `module-metadata` (what the
//! host reads of a module before compiling it), `control-status` and `control-memory` (the
//! control socket's answers, as the CLI decodes them), `control-jobs` (its job and module
//! requests and answers), `wire-frame` (a peer's frame as a node
//! decodes it, values into a scratch store) and `rpc-frames` (the transport's RPC records).
//!
//! Usage: `wasmray-fuzz [TARGET]... [--seconds S] [--seed N]` (all targets, 2 s each and at
//! least 2,000 inputs, seed 1 by default). Prints `TARGET: N executions, K kept, largest allocation B bytes` per target.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmray_abi::{
    ActorCall, ActorCreation, ActorLookup, ActorOptions, ArgOut, CallOptions, MethodOptions,
    TaskSubmission, ValueOut,
};
use wasmray_node::{ObjectReport, StatusReport};

/// Tracks the largest single allocation (the system allocator does the work).
struct Watching;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's own arguments, unchanged; the
// only addition is an atomic maximum, which allocates nothing.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as received; `GlobalAlloc::alloc`'s contract is the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded as received; `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// xorshift64*: small, fast, and the same on every machine for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

struct Target {
    name: &'static str,
    run: fn(&[u8]) -> usize,
    seeds: fn() -> Vec<Vec<u8>>,
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    wasmray_abi::encode(value).expect("seed encodes")
}

fn abi_seeds() -> Vec<Vec<u8>> {
    let value = ValueOut {
        bytes: b"\x03abc",
        refs: vec![1, 2, 0x0100_0003],
    };
    let args = vec![ArgOut::Value(value.clone()), ArgOut::Ref(7)];
    let options = CallOptions {
        num_cpus: Some(1.5),
        resources: vec![("disk".into(), 2.0)],
        memory_limit: Some(64 << 20),
        ..CallOptions::default()
    };
    vec![
        encode(&TaskSubmission {
            function: "square",
            args: args.clone(),
            num_returns: 2,
            options,
        }),
        encode(&value),
        encode(&vec![value.clone(), value]),
        encode(&ActorCreation {
            class: "Counter",
            args: args.clone(),
            options: ActorOptions {
                name: Some("c".into()),
                namespace: Some("ns".into()),
                max_concurrency: Some(4),
                ..ActorOptions::default()
            },
        }),
        encode(&ActorCall {
            actor: 5,
            method: "Counter::add",
            args,
            num_returns: 1,
            options: MethodOptions::default(),
        }),
        encode(&ActorLookup {
            name: "c",
            namespace: Some("ns"),
            class: "Counter",
        }),
    ]
}

fn module_seeds() -> Vec<Vec<u8>> {
    let small = wat::parse_str(
        r#"(module
            (global $sp (mut i32) (i32.const 65536))
            (memory (export "memory") 2)
            (func (export "wasmray_abi_version") (result i32) global.get $sp)
            (func (export "_start")))"#,
    )
    .expect("seed module");
    let mut seeds = vec![small];
    if let Ok(hello) = std::fs::read(wasmray_tests::guests::HELLO) {
        seeds.push(hello);
    }
    seeds
}

fn status_seeds() -> Vec<Vec<u8>> {
    vec![encode(&StatusReport {
        node_id: "a1b2".into(),
        resources_total: vec![("CPU".into(), 2.0), ("GPU".into(), 0.0)],
        resources_available: vec![("CPU".into(), 1.0)],
        tasks_waiting: 1,
        tasks_ready: 2,
        tasks_running: 3,
        tasks_blocked: 4,
        actors: 5,
        objects: 6,
        store_capacity: 1 << 30,
        store_arena_used: 4096,
        store_inline_used: 10,
        store_spilled: 0,
        store_objects: 1,
        leased_out: 0,
        unacked: 2,
        queued_leases: 0,
        actor_entries: 1,
        actor_hosts: 1,
        cluster: vec![wasmray_node::MemberReport {
            node_id: "c3d4".into(),
            address: "127.0.0.1:6390".into(),
            alive: true,
            state: "alive".into(),
            is_head: true,
            resources_total: vec![("CPU".into(), 4.0)],
            resources_available: vec![("CPU".into(), 3.0)],
            store_used: 100,
            store_capacity: 1 << 30,
        }],
    })]
}

fn memory_seeds() -> Vec<Vec<u8>> {
    let object = ObjectReport {
        id: "00ff".into(),
        state: "ready".into(),
        size: Some(100),
        location: "inline".into(),
        local_refs: 1,
        task_arg_refs: 0,
        contained_refs: 2,
    };
    vec![encode(&vec![object.clone(), object])]
}

const TARGETS: &[Target] = &[
    Target {
        name: "abi-records",
        run: wasmray_wasm::fuzz::abi_records,
        seeds: abi_seeds,
    },
    Target {
        name: "module-metadata",
        run: wasmray_wasm::fuzz::module_metadata,
        seeds: module_seeds,
    },
    Target {
        name: "control-status",
        run: |bytes| usize::from(wasmray_node::decode_status(bytes).is_ok()),
        seeds: status_seeds,
    },
    Target {
        name: "control-memory",
        run: |bytes| wasmray_node::decode_memory(bytes).map_or(0, |r| r.len()),
        seeds: memory_seeds,
    },
    Target {
        name: "control-jobs",
        run: wasmray_node::fuzz_control_jobs,
        seeds: wasmray_node::fuzz_control_jobs_seeds,
    },
    Target {
        name: "wire-frame",
        run: wasmray_node::wire_codec::fuzz_frame,
        seeds: wasmray_node::wire_codec::fuzz_frame_seeds,
    },
    Target {
        name: "rpc-frames",
        run: wasmray_net::wire::fuzz_rpc,
        seeds: wasmray_net::wire::fuzz_rpc_seeds,
    },
];

/// Changes `input` in place, one to four ways.
fn mutate(input: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = [0, 1, 0x7F, 0x80, 0xFF][rng.below(5)];
            }
            2 => {
                // A huge varint where a length might be.
                let at = rng.below(len + 1);
                let huge: &[u8] = [
                    &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F][..],
                    &[0xFF; 10][..],
                    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..],
                ][rng.below(3)];
                input.splice(at..at, huge.iter().copied());
            }
            3 => {
                let at = rng.below(len + 1);
                let count = 1 + rng.below(8);
                for _ in 0..count {
                    input.insert(at, rng.next() as u8);
                }
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                input.drain(at..end);
            }
            5 if len > 0 => input.truncate(rng.below(len)),
            6 if !other.is_empty() => {
                let at = rng.below(len + 1);
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
            _ if len > 1 => {
                let (a, b) = (rng.below(len), rng.below(len));
                input.swap(a, b);
            }
            _ => input.push(rng.next() as u8),
        }
    }
}

/// Runs one target for `budget`; the number of executions, or the input that failed.
/// The fewest inputs a target runs, even past its time budget (a loaded machine gives a
/// second of wall time little CPU).
const MIN_EXECUTIONS: usize = 2_000;

fn fuzz(
    target: &Target,
    budget: Duration,
    rng: &mut Rng,
) -> Result<(usize, usize, usize), Vec<u8>> {
    let mut corpus = (target.seeds)();
    let seeds = corpus.len();
    let started = Instant::now();
    let mut executions = 0usize;
    let mut largest = 0usize;
    // However busy the machine, each target gets at least this many inputs.
    while started.elapsed() < budget || executions < MIN_EXECUTIONS {
        for _ in 0..64 {
            let base = rng.below(corpus.len());
            let other = rng.below(corpus.len());
            let mut input = corpus[base].clone();
            let splice = corpus[other].clone();
            mutate(&mut input, &splice, rng);
            LARGEST.store(0, Ordering::Relaxed);
            let outcome = std::panic::catch_unwind(|| (target.run)(&input));
            let allocated = LARGEST.load(Ordering::Relaxed);
            executions += 1;
            let bound = 64 * input.len() + (1 << 20);
            match outcome {
                Err(_) => return Err(input),
                Ok(_) if allocated > bound => {
                    eprintln!(
                        "{}: one allocation of {allocated} bytes for {} input bytes",
                        target.name,
                        input.len()
                    );
                    return Err(input);
                }
                Ok(decoded) => {
                    largest = largest.max(allocated);
                    if decoded > 0 && corpus.len() < 4096 && input.len() < 1 << 20 {
                        corpus.push(input);
                    }
                }
            }
        }
    }
    Ok((executions, corpus.len() - seeds, largest))
}

fn main() -> std::process::ExitCode {
    let mut names = Vec::new();
    let mut seconds = 2.0f64;
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(seed),
            name => names.push(name.to_owned()),
        }
    }
    if let Some(unknown) = names
        .iter()
        .find(|n| !TARGETS.iter().any(|t| t.name == n.as_str()))
    {
        let known: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "unknown target `{unknown}`; the targets are {}",
            known.join(", ")
        );
        return std::process::ExitCode::from(2);
    }
    // Panics are caught and reported; their default messages would only repeat them.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed.max(1));
    for target in TARGETS {
        if !names.is_empty() && !names.iter().any(|n| n == target.name) {
            continue;
        }
        match fuzz(target, Duration::from_secs_f64(seconds), &mut rng) {
            Ok((executions, kept, largest)) => println!(
                "{}: {executions} executions, {kept} kept, largest allocation {largest} bytes",
                target.name
            ),
            Err(input) => {
                let file = format!("fuzz-crash-{}.bin", target.name);
                let _ = std::fs::write(&file, &input);
                let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                println!(
                    "{}: FAILED on {} bytes (saved to {file}): {hex}",
                    target.name,
                    input.len()
                );
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
