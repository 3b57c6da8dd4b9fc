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

#[wasmray::main]
fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let n = count(&args);
    if let Some(result) = args.get(1).and_then(|mode| actor_case(mode, n)) {
        return result;
    }
    match args.get(1).map(String::as_str) {
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
