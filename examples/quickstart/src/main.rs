//! quickstart: the tour of Ray's core API from the Ray docs, in wasmray.
//!
//! Remote functions and chaining by ref, `num_returns = 2`, `get_all`, `put` shared by many
//! tasks, `wait` with `num_returns` and a timeout, a failing task and a task depending on it,
//! nested tasks, and the cluster queries. It prints exactly these lines, in this order:
//!
//! ```text
//! f(0) = 1
//! f(f(0)) = 2
//! div_mod(17, 5) = (3, 2)
//! get_all = [1, 2, 3, 4]
//! sum of 10 tasks reading one put = 27472500
//! wait(num_returns = 3, timeout = 1s): 2 ready, 2 pending
//! wait(num_returns = 4): 4 ready, 0 pending
//! fail() error: Panic: this task fails on purpose
//! plus_one(fail()) error: DependencyFailed caused by Panic: this task fails on purpose
//! experiments = [45, 55, 65, 75, 85]
//! nodes: 1
//! cluster CPU total: <the node's CPU count, e.g. 2>
//! ```
//!
//! The `wait` line assumes the two fast tasks finish within a second while the two slow ones
//! sleep for two; the error lines print the last line of the task error's message (the host puts
//! the panic location before it). The run takes about 2 seconds (the slow tasks' sleep).

use std::time::Duration;
use wasmray::TaskError;

#[wasmray::remote]
fn f(x: i64) -> i64 {
    x + 1
}

#[wasmray::remote(num_returns = 2)]
fn div_mod(a: i64, b: i64) -> (i64, i64) {
    (a / b, a % b)
}

#[wasmray::remote]
fn scaled_sum(data: Vec<u64>, k: u64) -> u64 {
    k * data.iter().sum::<u64>()
}

#[wasmray::remote]
fn sleepy(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

#[wasmray::remote(max_retries = 0)]
fn fail() -> i64 {
    panic!("this task fails on purpose")
}

#[wasmray::remote]
fn plus_one(x: i64) -> i64 {
    x + 1
}

#[wasmray::remote]
fn sub_experiment(i: u64, j: u64) -> u64 {
    i + j
}

/// Launches 10 nested tasks and sums their results.
#[wasmray::remote]
fn run_experiment(i: u64) -> u64 {
    let subs: Vec<_> = (0..10).map(|j| sub_experiment::remote(i, j)).collect();
    match wasmray::get_all(&subs) {
        Ok(results) => results.iter().sum(),
        Err(error) => panic!("sub-experiment of {i} failed: {error}"),
    }
}

/// The last line of an error's message: the guest's own panic message.
fn last_line(error: &TaskError) -> &str {
    error.message.lines().last().unwrap_or("")
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    // Remote functions return refs at once; `get` waits for the value.
    let one = f::remote(0);
    println!("f(0) = {}", wasmray::get(&one)?);

    // A ref passed as an argument is resolved before the task runs.
    let two = f::remote(f::remote(0));
    println!("f(f(0)) = {}", wasmray::get(&two)?);

    // num_returns = 2: one ref per result.
    let (quotient, remainder) = div_mod::remote(17, 5);
    let (q, r) = (wasmray::get(&quotient)?, wasmray::get(&remainder)?);
    println!("div_mod(17, 5) = ({q}, {r})");

    // [f.remote(i) for i in range(4)]
    let refs: Vec<_> = (0..4).map(f::remote).collect();
    println!("get_all = {:?}", wasmray::get_all(&refs)?);

    // One put, read by ten tasks.
    let data = wasmray::put(&(0..1000u64).collect::<Vec<u64>>());
    let sums: Vec<_> = (1..=10).map(|k| scaled_sum::remote(&data, k)).collect();
    let total: u64 = wasmray::get_all(&sums)?.iter().sum();
    println!("sum of 10 tasks reading one put = {total}");

    // wait: two fast tasks, two slow ones.
    let mut mixed: Vec<_> = (0..2).map(sleepy::remote).collect();
    mixed.extend((0..2).map(|_| sleepy::remote(2000)));
    let (ready, pending) = wasmray::wait(&mixed, 3, Some(Duration::from_secs(1)));
    println!(
        "wait(num_returns = 3, timeout = 1s): {} ready, {} pending",
        ready.len(),
        pending.len()
    );
    let (ready, pending) = wasmray::wait(&mixed, 4, None);
    println!(
        "wait(num_returns = 4): {} ready, {} pending",
        ready.len(),
        pending.len()
    );

    // A failing task, and a task that depends on it.
    let failed = fail::remote();
    match wasmray::get(&failed) {
        Ok(value) => println!("fail() unexpectedly returned {value}"),
        Err(error) => println!("fail() error: {:?}: {}", error.kind, last_line(&error)),
    }
    match wasmray::get(&plus_one::remote(&failed)) {
        Ok(value) => println!("plus_one(fail()) unexpectedly returned {value}"),
        Err(error) => {
            let root = error.root_cause();
            println!(
                "plus_one(fail()) error: {:?} caused by {:?}: {}",
                error.kind,
                root.kind,
                last_line(root)
            );
        }
    }

    // Nested tasks: each experiment launches ten sub-experiments.
    let experiments: Vec<_> = (0..5).map(run_experiment::remote).collect();
    println!("experiments = {:?}", wasmray::get_all(&experiments)?);

    println!("nodes: {}", wasmray::nodes().len());
    let cpus = wasmray::cluster_resources()
        .get("CPU")
        .copied()
        .unwrap_or(0.0);
    println!("cluster CPU total: {cpus}");
    Ok(())
}
