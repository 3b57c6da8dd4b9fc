//! microbenchmark: the driver `wasmray microbenchmark` runs. Ray's `ray microbenchmark`
//! (`ray/_private/ray_perf.py`, Ray 2.x) case by case, with Ray's case names, order, method
//! (`timeit`) and multipliers, each case written with the wasmray guest SDK the way Ray's
//! Python does it.
//!
//! ```text
//! microbenchmark.wasm [FILTER [quick]]
//! ```
//!
//! - `FILTER`: run only the cases whose names contain it (Ray's `TESTS_TO_RUN`); empty or absent
//!   runs them all. `noop` returns at once without touching the node (the CLI times cold start
//!   with it).
//! - `quick`: shortens every case (0.2 s warm-up, 4 windows of 0.3 s) for tests; the numbers
//!   are then rough.
//!
//! Output, one line per selected case, on stdout:
//!
//! ```text
//! <name> per second <mean, 2 decimals> +- <population stdev, 2 decimals>
//! <name> skipped: <reason>
//! <name> failed: <error>
//! ```
//!
//! `main` fails (exit status 1) after the last case if any case failed.
//!
//! The cases, in Ray's order (multipliers as Ray's; see each file's table for the mapping):
//! `objects.rs` get calls, put calls, multi client put calls; put gigabytes; `tasks.rs` tasks
//! and get batch; `objects.rs` multi client put gigabytes, get object containing 10k refs;
//! `tasks.rs` wait 1k refs, tasks sync, tasks async, multi client tasks async; `actors.rs` the
//! 1:1, 1:n and n:n actor calls; `async_actors.rs` the async-actor variants. Then the cases
//! wasmray cannot run, printed as skipped: Ray's placement-group case and the Ray Client cases
//! that `ray microbenchmark` runs last.
//!
//! This driver does not start nodes, time cold start or measure memory: the CLI does.

mod actors;
mod async_actors;
mod objects;
mod tasks;
mod timeit;

use timeit::Bench;

/// Why the Ray Client cases are skipped.
const NO_RAY_CLIENT: &str = "wasmray has no Ray Client (a driver attached to a remote cluster \
                             over gRPC): every driver runs on its node";

/// The cases `ray microbenchmark` runs that wasmray cannot, each with the reason, in Ray's
/// order (ray_perf.py, then ray_client_microbenchmark.py).
const SKIPPED: &[(&str, &str)] = &[
    (
        "placement group create/removal",
        "wasmray has no placement groups",
    ),
    ("client: get calls", NO_RAY_CLIENT),
    ("client: tasks and get batch", NO_RAY_CLIENT),
    ("client: put calls", NO_RAY_CLIENT),
    ("client: tasks and put batch", NO_RAY_CLIENT),
    ("client: put gigabytes", NO_RAY_CLIENT),
    ("client: 1:1 actor calls sync", NO_RAY_CLIENT),
    ("client: 1:1 actor calls async", NO_RAY_CLIENT),
    ("client: 1:1 actor calls concurrent", NO_RAY_CLIENT),
];

/// Every case this driver runs, in Ray's order.
const CASES: &[fn(&mut Bench)] = &[
    objects::get_calls,
    objects::put_calls,
    objects::multi_client_put_calls,
    objects::put_gigabytes,
    tasks::tasks_and_get_batch,
    objects::multi_client_put_gigabytes,
    objects::get_object_containing_10k_refs,
    tasks::wait_1k_refs,
    tasks::tasks_sync,
    tasks::tasks_async,
    tasks::multi_client_tasks_async,
    actors::one_to_one_sync,
    actors::one_to_one_async,
    actors::one_to_one_concurrent,
    actors::one_to_n_async,
    actors::n_to_n_async,
    actors::n_to_n_with_arg_async,
    async_actors::one_to_one_sync,
    async_actors::one_to_one_async,
    async_actors::one_to_one_with_args_async,
    async_actors::one_to_n_async,
    async_actors::n_to_n_async,
];

/// The command line: the filter, whether to run quick, and the resource that pins the work.
struct Args {
    filter: String,
    quick: bool,
}

const USAGE: &str = "usage: microbenchmark [FILTER [quick|full [pin=RESOURCE]]]";

/// The resource the work is pinned to (`pin=RESOURCE`): the tasks of the task cases and the
/// actors of the 1:1 cases ask for 0.001 of it, so on a cluster they run on the nodes that
/// have it, as Ray's docs pin work with a custom resource.
static PIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// See [`PIN`].
pub fn pinned() -> Option<&'static str> {
    PIN.get().map(String::as_str)
}

/// Reads `[FILTER [quick|full [pin=RESOURCE]]]` from the driver's arguments (`argv[0]` is
/// the module).
fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_default();
    let quick = match args.next().as_deref() {
        None | Some("") | Some("full") => false,
        Some("quick") => true,
        Some(other) => return Err(format!("unknown second argument {other:?}: {USAGE}")),
    };
    if let Some(pin) = args.next() {
        match pin.strip_prefix("pin=") {
            Some(resource) if !resource.is_empty() => {
                let _ = PIN.set(resource.to_owned());
            }
            _ => return Err(format!("unknown third argument {pin:?}: {USAGE}")),
        }
    }
    if let Some(extra) = args.next() {
        return Err(format!("unexpected argument {extra:?}: {USAGE}"));
    }
    Ok(Args { filter, quick })
}

#[wasmray::main]
fn main() -> Result<(), String> {
    let args = parse_args()?;
    if args.filter == "noop" {
        return Ok(());
    }
    let mut bench = Bench::new(args.filter, args.quick);
    for case in CASES {
        case(&mut bench);
    }
    for (name, reason) in SKIPPED {
        bench.skip(name, reason);
    }
    match bench.failures() {
        0 => Ok(()),
        failed => Err(format!("{failed} case(s) failed")),
    }
}
