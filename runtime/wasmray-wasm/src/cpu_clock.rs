//! A call's CPU-time budget: the time it has run, inside wasm or inside host imports, but not
//! the time it spent blocked (`get`, `wait`, a sleep: all through `nested::block_on`).
//!
//! Counting epoch ticks would count only wasm: an import that computes for long (a `wait`
//! on millions of handles, a flood of output) would be nearly free. So the budget is the
//! call's time since it began minus its blocked time, read from the coarse monotonic clock
//! (~5 ns a read, kernel-tick resolution of 1–4 ms, far below any limit) by the epoch
//! callback. That callback runs at the first function entry or loop back-edge after the
//! epoch advanced — in particular right after an import that ran past a tick — so time
//! inside imports is seen without a hook on every host call (a hook cost ~2 % of a put).
//! A call nested in a blocked one (a concurrent actor) runs on a budget of its own; the
//! blocked call's is set aside meanwhile.
//!
//! The figure is wall time while running, which is CPU time as long as the worker thread is
//! not preempted (the node runs one worker per core).

use std::time::Duration;

/// `CLOCK_MONOTONIC_COARSE`: the monotonic clock as of the kernel's last tick.
pub fn coarse_clock() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` for the call; the clock ID is a constant
    // every Linux kernel this runs on provides. On failure `now` keeps its zeros.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// One call's CPU-time budget; see the module doc.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuBudget {
    limit: Option<Duration>,
    started: Duration,
    blocked: Duration,
    /// When the block in progress began.
    block_began: Option<Duration>,
}

impl CpuBudget {
    /// A budget of `limit` (none: unlimited) starting now.
    pub(crate) fn start(limit: Option<Duration>) -> Self {
        Self {
            limit,
            started: coarse_clock(),
            blocked: Duration::ZERO,
            block_began: None,
        }
    }

    pub(crate) fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// The call blocks: time from now on does not count.
    pub(crate) fn block(&mut self) {
        self.block_began.get_or_insert_with(coarse_clock);
    }

    /// The call runs again.
    pub(crate) fn unblock(&mut self) {
        if let Some(began) = self.block_began.take() {
            self.blocked += coarse_clock().saturating_sub(began);
        }
    }

    /// Time the call has run.
    pub(crate) fn used(&self) -> Duration {
        let now = self.block_began.unwrap_or_else(coarse_clock);
        now.saturating_sub(self.started)
            .saturating_sub(self.blocked)
    }

    /// Whether the call has run past its limit.
    pub(crate) fn exceeded(&self) -> bool {
        self.limit.is_some_and(|limit| self.used() > limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_time_does_not_count() {
        let mut budget = CpuBudget::start(Some(Duration::from_millis(30)));
        budget.block();
        std::thread::sleep(Duration::from_millis(60));
        assert!(!budget.exceeded(), "blocked: {:?}", budget.used());
        budget.unblock();
        assert!(
            budget.used() < Duration::from_millis(30),
            "{:?}",
            budget.used()
        );
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(60) {}
        assert!(budget.exceeded(), "ran: {:?}", budget.used());
    }
}
