//! cli-probe: a driver that reports what the node it runs on was configured with, so the CLI
//! test can check that every `wasmray run` flag reaches the node.
//!
//! Its arguments are probes, run in order, each printing one line (`name: answer`):
//! - `resources`: every resource of `cluster_resources()`, as `resources: CPU=2 GPU=1 ...`;
//! - `needs=NAME`: runs a task that asks for 1 of resource NAME: `needs NAME: ran`;
//! - `alloc=MIB`: runs a task that allocates and touches MIB MiB: `alloc MIB: ok` or
//!   `alloc MIB: <error kind>`;
//! - `spin=MS`: runs a task that computes for MS milliseconds: `spin MS: ok` or `spin MS: <kind>`;
//! - `concurrency=N`: runs N tasks at once that each sleep 200 ms while holding a place in an
//!   actor that counts them: `concurrency N: at most K at once`.
//!
//! It does not judge the answers: the test does.

use std::time::{Duration, Instant};
use wasmray::TaskError;

#[wasmray::remote]
fn needs() -> String {
    "ran".to_owned()
}

#[wasmray::remote]
fn alloc(mib: usize) -> usize {
    let mut block = vec![0u8; mib << 20];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    block.iter().map(|&b| usize::from(b)).sum()
}

#[wasmray::remote]
fn spin(ms: u64) -> u64 {
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_millis(ms) {
        rounds = std::hint::black_box(rounds + 1);
    }
    rounds
}

/// Counts how many tasks hold a place at once.
#[wasmray::actor]
struct Gauge {
    now: u32,
    most: u32,
}

#[wasmray::actor]
impl Gauge {
    fn new() -> Self {
        Gauge { now: 0, most: 0 }
    }
    fn enter(&mut self) {
        self.now += 1;
        self.most = self.most.max(self.now);
    }
    fn leave(&mut self) {
        self.now -= 1;
    }
    fn most(&self) -> u32 {
        self.most
    }
}

#[wasmray::remote]
fn hold(gauge: wasmray::ActorHandle<Gauge>) -> Result<(), TaskError> {
    wasmray::get(&gauge.enter().remote())?;
    std::thread::sleep(Duration::from_millis(200));
    wasmray::get(&gauge.leave().remote())
}

fn outcome<T>(result: Result<T, TaskError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(error) => format!("{:?}", error.kind),
    }
}

fn number<T: std::str::FromStr>(probe: &str, text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| panic!("cli-probe: `{probe}` needs a number, not `{text}`"))
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    for probe in std::env::args().skip(1) {
        let (name, value) = probe.split_once('=').unwrap_or((probe.as_str(), ""));
        match name {
            "resources" => {
                let listed: Vec<String> = wasmray::cluster_resources()
                    .into_iter()
                    .map(|(name, amount)| format!("{name}={amount}"))
                    .collect();
                println!("resources: {}", listed.join(" "));
            }
            "needs" => {
                let answer = wasmray::get(&needs::options().resource(value, 1.0).remote())?;
                println!("needs {value}: {answer}");
            }
            "alloc" => {
                let mib: usize = number(&probe, value);
                println!(
                    "alloc {mib}: {}",
                    outcome(wasmray::get(&alloc::remote(mib)))
                );
            }
            "spin" => {
                let ms: u64 = number(&probe, value);
                println!("spin {ms}: {}", outcome(wasmray::get(&spin::remote(ms))));
            }
            "concurrency" => {
                let count: usize = number(&probe, value);
                let gauge = Gauge::remote();
                // The gauge takes its instance slot before the tasks can take them all.
                wasmray::get(&gauge.most().remote())?;
                let held: Vec<_> = (0..count).map(|_| hold::remote(&gauge)).collect();
                wasmray::get_all(&held)?;
                let most = wasmray::get(&gauge.most().remote())?;
                println!("concurrency {count}: at most {most} at once");
            }
            other => panic!("cli-probe: unknown probe `{other}`"),
        }
    }
    Ok(())
}
