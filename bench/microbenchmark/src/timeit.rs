//! Ray's `timeit` (`ray/_private/ray_microbenchmark_helpers.py`), line for line, and the case
//! filter that goes with it (Ray's `TESTS_TO_RUN`).
//!
//! For one case: skip it unless the filter is empty or a substring of its name; warm up for
//! 1 s counting calls; `step = count / 10 + 1`; then 4 windows, each running `f` `step` times
//! per inner loop until at least 2 s have passed; each window's rate is `multiplier * calls /
//! elapsed`. The case prints `<name> per second <mean:.2> +- <stdev:.2>`, the stdev being the
//! population one (numpy's `np.std`, ddof 0), as Ray prints it.
//!
//! Two differences from Ray, both deliberate:
//! - Ray sleeps 10 s (`warmup_time_sec`) before every case "to avoid noisy neighbours" (ray
//!   issue 22045): its previous case's worker processes may still be busy. This driver is one
//!   process on an in-process node, so there is nothing to let settle and it does not sleep.
//! - `quick` mode (for tests) shortens the warm-up to 0.2 s and the windows to 0.3 s; the
//!   method is otherwise the same.
//!
//! A failed call (a `TaskError` from a `get`) ends its case with `<name> failed: <error>` on
//! stdout and counts a failure; the next case still runs. A case that needs something wasmray
//! does not have prints `<name> skipped: <reason>` (see [`Bench::skip`]).
//!
//! This file knows nothing about the cases themselves and talks to no node.

use std::time::{Duration, Instant};
use wasmray::TaskError;

/// Measured windows per case, as Ray's `for _ in range(4)`.
const WINDOWS: usize = 4;
/// Ray's warm-up: calls run for this long to choose `step`.
const WARMUP: Duration = Duration::from_secs(1);
/// Ray's window: each measured window lasts at least this long.
const WINDOW: Duration = Duration::from_secs(2);
/// Warm-up in `quick` mode.
const QUICK_WARMUP: Duration = Duration::from_millis(200);
/// Window in `quick` mode.
const QUICK_WINDOW: Duration = Duration::from_millis(300);

/// One benchmark run: which cases to run, how long to time them, and how many failed.
pub struct Bench {
    /// A substring of the names of the cases to run; empty runs all (Ray's `TESTS_TO_RUN`).
    filter: String,
    warmup: Duration,
    window: Duration,
    failures: usize,
}

impl Bench {
    /// A run of the cases whose names contain `filter` (all if it is empty), with Ray's timing,
    /// or the shortened one if `quick`.
    pub fn new(filter: String, quick: bool) -> Self {
        let (warmup, window) = if quick {
            (QUICK_WARMUP, QUICK_WINDOW)
        } else {
            (WARMUP, WINDOW)
        };
        Self {
            filter,
            warmup,
            window,
            failures: 0,
        }
    }

    /// Whether case `name` runs: callers check it before setting a case up, so that a
    /// filtered-out case costs nothing (Ray sets every case up regardless).
    pub fn selected(&self, name: &str) -> bool {
        self.filter.is_empty() || name.contains(self.filter.as_str())
    }

    /// How many cases failed so far.
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// Ray's `timeit(name, fn, multiplier)`: times `f` and prints the case's line.
    pub fn timeit(
        &mut self,
        name: &str,
        multiplier: f64,
        mut f: impl FnMut() -> Result<(), TaskError>,
    ) {
        if !self.selected(name) {
            return;
        }
        // Ray sleeps 10 s here to let the previous case's worker processes settle; one process
        // on an in-process node has nothing to wait for, so we do not.
        match self.measure(multiplier, &mut f) {
            Ok(rates) => {
                let (mean, stdev) = mean_and_stdev(&rates);
                println!("{name} per second {mean:.2} +- {stdev:.2}");
            }
            Err(error) => {
                self.failures += 1;
                println!("{name} failed: {error}");
            }
        }
    }

    /// Prints that case `name` cannot run here, and why, if the filter selects it.
    pub fn skip(&self, name: &str, reason: &str) {
        if self.selected(name) {
            println!("{name} skipped: {reason}");
        }
    }

    /// The warm-up and the 4 windows; returns each window's rate.
    fn measure(
        &self,
        multiplier: f64,
        f: &mut impl FnMut() -> Result<(), TaskError>,
    ) -> Result<Vec<f64>, TaskError> {
        let start = Instant::now();
        let mut count: u64 = 0;
        while start.elapsed() < self.warmup {
            f()?;
            count += 1;
        }
        let step = count / 10 + 1;
        let mut rates = Vec::with_capacity(WINDOWS);
        for _ in 0..WINDOWS {
            let start = Instant::now();
            let mut count: u64 = 0;
            while start.elapsed() < self.window {
                for _ in 0..step {
                    f()?;
                }
                count += step;
            }
            let elapsed = start.elapsed().as_secs_f64();
            rates.push(multiplier * count as f64 / elapsed);
        }
        Ok(rates)
    }
}

/// The mean and the population standard deviation (numpy's `np.mean`, `np.std`).
fn mean_and_stdev(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, variance.sqrt())
}
