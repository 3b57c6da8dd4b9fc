//! bench: the driver the runtime benchmarks time (`cargo bench`, in tests/benches).
//!
//! `bench roundtrip N`: submits a trivial task and waits for it, N times in sequence, and
//! prints `roundtrip n=N median_ns=M total_ns=T`. `bench throughput N`: submits N trivial tasks,
//! then gathers them all, and prints `throughput n=N total_ns=T`. Times come from the guest's
//! monotonic clock, so they exclude node start and module load.

use std::time::{Duration, Instant};

#[wasmray::remote]
fn noop(x: u64) -> u64 {
    x
}

fn count(args: &[String]) -> u64 {
    args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000)
}

#[wasmray::main]
fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let n = count(&args);
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
        _ => return Err("usage: bench roundtrip|throughput [N]".into()),
    }
    Ok(())
}
