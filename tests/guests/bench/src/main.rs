//! bench: the driver the runtime benchmarks time (`cargo bench`, in tests/benches).
//!
//! `bench roundtrip N`: submits a trivial task and waits for it, N times in sequence, and
//! prints `roundtrip n=N median_ns=M total_ns=T`. `bench throughput N`: submits N trivial tasks,
//! then gathers them all, and prints `throughput n=N total_ns=T`. Times come from the guest's
//! monotonic clock, so they exclude node start and module load.
//!
//! Actor cases (one `Echo` actor unless said): `bench actor-sync N` calls a method and waits
//! for it, N times (`actor-sync n=N total_ns=T`); `bench actor-async N` submits N calls, then
//! gathers them (`actor-async n=N total_ns=T`); `bench actor-nn N` has 2 caller tasks each
//! submit N calls to its own actor and gather them, concurrently (`actor-nn n=2N total_ns=T`).
//!
//! Object cases: `bench put-gb MB` puts an MB-megabyte `Buffer<u8>` 5 times
//! (`put-gb bytes=B median_ns=T`); `bench get-gb MB` puts one and has 5 tasks map it (first
//! access, no copy) and then read every byte (`get-gb bytes=B map_median_ns=T
//! read_median_ns=R mapped=true`); `bench put-calls N` puts N small values
//! (`put-calls n=N total_ns=T`); `bench get-calls N` gets one small object N times
//! (`get-calls n=N total_ns=T`). `bench pull-gb MB`, 3 times: puts a fresh MB-megabyte
//! `Buffer<u8>` and times a task that takes it and reads one byte of every MiB, from submit
//! to result (`pull-gb bytes=B median_ns=T all_ns=[..]`): where the task runs on another
//! node, that is the pull of the object into its store. `bench broadcast MB K`: puts one
//! MB-megabyte `Buffer<u8>` (byte `i` is `i % 251`) and runs, at once, one task on each of the
//! nodes that have custom resource `node1` … `nodeK` (1 each), each checking one byte of every
//! page of its copy; prints `broadcast bytes=B nodes=K total_ns=T` from submit to the last
//! result, or fails naming the node whose copy differs.
//!
//! Value cases (the SDK's `put` of plain data, against `Buffer` of the same data): `bench
//! put-value MB` makes a `Vec<f64>` of MB megabytes and times, 5 times, alternating, `put(&v)`
//! and `Buffer::from_vec` of a copy made beforehand (`put-value bytes=B put_ns=[..]
//! buffer_ns=[..]`, each object dropped after it was timed); `bench put-mib N` times N `put`s of
//! a 1 MiB `Vec<u8>`, of a 1 MiB `Vec<f64>` and N `Buffer::from_slice` of the same bytes
//! (`put-mib n=N u8_median_ns=.. f64_median_ns=.. buffer_median_ns=..`). `bench sleep N` times N
//! guest `std::thread::sleep`s each of 10 µs, 100 µs and 1 ms (`sleep n=N 10us_median_ns=..
//! 100us_median_ns=.. 1ms_median_ns=..`).

use std::time::{Duration, Instant};

#[wasmray::remote]
fn noop(x: u64) -> u64 {
    x
}

fn count(args: &[String]) -> u64 {
    args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000)
}

/// The actor the actor cases call.
#[wasmray::actor]
struct Echo {
    calls: u64,
}

#[wasmray::actor]
impl Echo {
    fn new() -> Self {
        Echo { calls: 0 }
    }

    fn echo(&mut self, x: u64) -> u64 {
        self.calls += 1;
        x
    }
}

/// Submits `n` calls to `actor` and gathers them; returns their sum.
fn call_many(actor: &wasmray::ActorHandle<Echo>, n: u64) -> Result<u64, String> {
    let refs: Vec<_> = (0..n).map(|i| actor.echo(i).remote()).collect();
    let values = wasmray::get_all(&refs).map_err(|e| e.to_string())?;
    Ok(values.iter().sum())
}

/// One of the concurrent callers of `actor-nn`: calls its own actor `n` times.
#[wasmray::remote]
fn caller(n: u64) -> u64 {
    let actor = Echo::remote();
    match call_many(&actor, n) {
        Ok(sum) => sum,
        Err(error) => panic!("caller failed: {error}"),
    }
}

/// Maps a buffer a task received, then reads all of it; returns (map ns, read ns, sum, mapped).
#[wasmray::remote]
fn map_and_read(buffer: wasmray::Buffer<u8>) -> (u64, u64, u64, bool) {
    let started = Instant::now();
    let bytes = buffer.as_slice();
    let mapped = started.elapsed();
    let started = Instant::now();
    let sum = bytes.iter().map(|&b| u64::from(b)).sum();
    (
        mapped.as_nanos() as u64,
        started.elapsed().as_nanos() as u64,
        sum,
        buffer.is_mapped(),
    )
}

/// Reads one byte of every MiB of a buffer a task received (reading every page would time
/// the page faults of mapping it, not its transfer).
#[wasmray::remote]
fn touch_pages(buffer: wasmray::Buffer<u8>) -> u64 {
    buffer
        .as_slice()
        .iter()
        .step_by(1 << 20)
        .map(|&b| u64::from(b))
        .sum()
}

/// Checks one byte of every 4 KiB page (a different offset in each) against the broadcast
/// pattern; returns how many pages were wrong.
#[wasmray::remote]
fn check_pattern(buffer: wasmray::Buffer<u8>) -> u64 {
    let bytes = buffer.as_slice();
    (0..bytes.len().div_ceil(4096))
        .filter(|page| {
            let at = (page * 4096 + page % 4096).min(bytes.len() - 1);
            bytes[at] != (at % 251) as u8
        })
        .count() as u64
}

/// `bench broadcast MB K`: see the file's doc.
fn broadcast(args: &[String]) -> Result<(), String> {
    let mb: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1024);
    let nodes: u32 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1);
    let bytes = mb << 20;
    let buffer = wasmray::Buffer::from_vec((0..bytes).map(|i| (i % 251) as u8).collect());
    let started = Instant::now();
    let checks: Vec<_> = (1..=nodes)
        .map(|node| {
            check_pattern::options()
                .num_cpus(0.0)
                .resource(format!("node{node}"), 1.0)
                .remote(&buffer)
        })
        .collect();
    let wrong = wasmray::get_all(&checks).map_err(|e| e.to_string())?;
    let total = started.elapsed();
    if let Some((node, pages)) = wrong.iter().enumerate().find(|(_, w)| **w != 0) {
        return Err(format!("node{}: {pages} pages differ", node + 1));
    }
    println!(
        "broadcast bytes={bytes} nodes={nodes} total_ns={}",
        total.as_nanos()
    );
    Ok(())
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// The object cases; `None` if `mode` is not one.
fn object_case(mode: &str, n: u64) -> Option<Result<(), String>> {
    let run = || -> Result<(), String> {
        match mode {
            "put-gb" | "get-gb" => {
                let bytes = (n as usize) << 20;
                let data = vec![1u8; bytes];
                if mode == "put-gb" {
                    let times: Vec<u64> = (0..5)
                        .map(|_| {
                            let started = Instant::now();
                            drop(wasmray::Buffer::from_slice(&data));
                            started.elapsed().as_nanos() as u64
                        })
                        .collect();
                    println!("put-gb bytes={bytes} median_ns={}", median(times));
                } else {
                    let buffer = wasmray::Buffer::from_slice(&data);
                    drop(data);
                    let (mut maps, mut reads, mut all_mapped) = (Vec::new(), Vec::new(), true);
                    for _ in 0..5 {
                        let (map, read, sum, mapped) = wasmray::get(&map_and_read::remote(&buffer))
                            .map_err(|e| e.to_string())?;
                        if sum != bytes as u64 {
                            return Err(format!("read {sum} of {bytes} bytes"));
                        }
                        maps.push(map);
                        reads.push(read);
                        all_mapped &= mapped;
                    }
                    println!(
                        "get-gb bytes={bytes} map_median_ns={} read_median_ns={} mapped={all_mapped}",
                        median(maps),
                        median(reads)
                    );
                }
            }
            "pull-gb" => {
                let bytes = (n as usize) << 20;
                let mut times = Vec::new();
                for round in 0..3u8 {
                    let buffer = wasmray::Buffer::from_vec(vec![round + 1; bytes]);
                    let started = Instant::now();
                    let sum =
                        wasmray::get(&touch_pages::remote(&buffer)).map_err(|e| e.to_string())?;
                    times.push(started.elapsed().as_nanos() as u64);
                    let pages = bytes.div_ceil(1 << 20) as u64;
                    if sum != pages * u64::from(round + 1) {
                        return Err(format!("read {sum}, not {} per page", round + 1));
                    }
                }
                println!(
                    "pull-gb bytes={bytes} median_ns={} all_ns={times:?}",
                    median(times.clone())
                );
            }
            "put-calls" => {
                let started = Instant::now();
                for i in 0..n {
                    drop(wasmray::put(&i));
                }
                println!("put-calls n={n} total_ns={}", started.elapsed().as_nanos());
            }
            _ => {
                let object = wasmray::put(&7u64);
                let started = Instant::now();
                for _ in 0..n {
                    let value = wasmray::get(&object).map_err(|e| e.to_string())?;
                    if value != 7 {
                        return Err(format!("got {value}"));
                    }
                }
                println!("get-calls n={n} total_ns={}", started.elapsed().as_nanos());
            }
        }
        Ok(())
    };
    matches!(
        mode,
        "put-gb" | "get-gb" | "pull-gb" | "put-calls" | "get-calls"
    )
    .then(run)
}

/// The actor cases; `None` if `mode` is not one.
fn actor_case(mode: &str, n: u64) -> Option<Result<(), String>> {
    let run = || -> Result<(), String> {
        let started = Instant::now();
        let expected = n * n.saturating_sub(1) / 2;
        match mode {
            "actor-sync" => {
                let actor = Echo::remote();
                for i in 0..n {
                    let value = wasmray::get(&actor.echo(i).remote()).map_err(|e| e.to_string())?;
                    if value != i {
                        return Err(format!("echo({i}) returned {value}"));
                    }
                }
            }
            "actor-async" => {
                if call_many(&Echo::remote(), n)? != expected {
                    return Err("actor-async results do not add up".into());
                }
            }
            _ => {
                let callers = [caller::remote(n), caller::remote(n)];
                let sums = wasmray::get_all(&callers).map_err(|e| e.to_string())?;
                if sums != [expected, expected] {
                    return Err("actor-nn results do not add up".into());
                }
            }
        }
        let total = started.elapsed();
        let calls = if mode == "actor-nn" { 2 * n } else { n };
        println!("{mode} n={calls} total_ns={}", total.as_nanos());
        Ok(())
    };
    matches!(mode, "actor-sync" | "actor-async" | "actor-nn").then(run)
}

/// The median of `times`, in nanoseconds.
fn median_ns(mut times: Vec<Duration>) -> u128 {
    times.sort();
    times.get(times.len() / 2).map_or(0, Duration::as_nanos)
}

/// Times `f` `n` times; the median, in nanoseconds.
fn timed(n: u64, mut f: impl FnMut()) -> u128 {
    let times = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    median_ns(times)
}

/// The value cases; `None` if `mode` is not one.
fn value_case(mode: &str, n: u64) -> Option<Result<(), String>> {
    let run = || -> Result<(), String> {
        match mode {
            "put-value" => {
                let len = (n as usize) << 20 >> 3;
                let values: Vec<f64> = (0..len).map(|i| i as f64 * 0.25).collect();
                let (mut puts, mut buffers) = (Vec::new(), Vec::new());
                for _ in 0..5 {
                    let start = Instant::now();
                    let object = wasmray::put(&values);
                    puts.push(start.elapsed().as_nanos());
                    drop(object);
                    let copy = values.clone();
                    let start = Instant::now();
                    let buffer = wasmray::Buffer::from_vec(copy);
                    buffers.push(start.elapsed().as_nanos());
                    drop(buffer);
                }
                println!(
                    "put-value bytes={} put_ns={puts:?} buffer_ns={buffers:?}",
                    len * 8
                );
            }
            "put-mib" => {
                let bytes: Vec<u8> = (0..1u32 << 20).map(|i| i as u8).collect();
                let floats: Vec<f64> = (0..1usize << 17).map(|i| i as f64).collect();
                let u8_ns = timed(n, || drop(wasmray::put(&bytes)));
                let f64_ns = timed(n, || drop(wasmray::put(&floats)));
                let buffer_ns = timed(n, || drop(wasmray::Buffer::from_slice(&bytes)));
                println!(
                    "put-mib n={n} u8_median_ns={u8_ns} f64_median_ns={f64_ns} buffer_median_ns={buffer_ns}"
                );
            }
            _ => {
                let nap = |micros| timed(n, || std::thread::sleep(Duration::from_micros(micros)));
                let (short, medium, long) = (nap(10), nap(100), nap(1000));
                println!(
                    "sleep n={n} 10us_median_ns={short} 100us_median_ns={medium} 1ms_median_ns={long}"
                );
            }
        }
        Ok(())
    };
    matches!(mode, "put-value" | "put-mib" | "sleep").then(run)
}

#[wasmray::main]
fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let n = count(&args);
    if let Some(result) = args.get(1).and_then(|mode| actor_case(mode, n)) {
        return result;
    }
    if let Some(result) = args.get(1).and_then(|mode| object_case(mode, n)) {
        return result;
    }
    if let Some(result) = args.get(1).and_then(|mode| value_case(mode, n)) {
        return result;
    }
    match args.get(1).map(String::as_str) {
        Some("broadcast") => broadcast(&args)?,
        Some("roundtrip") => {
            let mut times = Vec::with_capacity(n as usize);
            let started = Instant::now();
            for i in 0..n {
                let one = Instant::now();
                let value = wasmray::get(&noop::remote(i)).map_err(|e| e.to_string())?;
                times.push(one.elapsed());
                if value != i {
                    return Err(format!("noop({i}) returned {value}"));
                }
            }
            let total = started.elapsed();
            times.sort();
            let median = times
                .get(times.len() / 2)
                .copied()
                .unwrap_or(Duration::ZERO);
            println!(
                "roundtrip n={n} median_ns={} total_ns={}",
                median.as_nanos(),
                total.as_nanos()
            );
        }
        Some("throughput") => {
            let started = Instant::now();
            let refs: Vec<_> = (0..n).map(noop::remote).collect();
            let values = wasmray::get_all(&refs).map_err(|e| e.to_string())?;
            let total = started.elapsed();
            if values.iter().sum::<u64>() != n * n.saturating_sub(1) / 2 {
                return Err("throughput results do not add up".into());
            }
            println!("throughput n={n} total_ns={}", total.as_nanos());
        }
        _ => {
            return Err(
                "usage: bench roundtrip|throughput|actor-sync|actor-async|actor-nn [N]".into(),
            );
        }
    }
    Ok(())
}
