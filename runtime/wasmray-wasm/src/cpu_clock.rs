//! Counting the time a call spends inside host imports against its CPU-time limit.
//!
//! Epoch ticks count time in wasm; an import that computes for a long time (a `wait` on
//! millions of handles, a flood of output) would otherwise be free. The store's call hook
//! reads the coarse monotonic clock on the way into and out of every import and adds the
//! difference to the call's ticks. Time an import spends blocked (`get`, `wait`, a sleep,
//! all through `nested::block_on`) is not CPU: the block restarts the interval when it ends.
//!
//! The coarse clock advances once per kernel tick (1–4 ms), so a short import usually reads
//! 0 and now and then a whole tick: summed over many imports that is the true time on
//! average, at ~5 ns a read instead of ~25 ns.

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

/// Time spent in host imports and not yet counted as a whole tick.
#[derive(Debug, Default)]
pub(crate) struct HostTime {
    since: Option<Duration>,
    pending: Duration,
}

impl HostTime {
    /// An import's time so far is not CPU (it was blocked): count from now.
    pub(crate) fn restart(&mut self) {
        if self.since.is_some() {
            self.since = Some(coarse_clock());
        }
    }

    /// The guest calls into the host.
    pub(crate) fn enter(&mut self) {
        self.since = Some(coarse_clock());
    }

    /// The host returns to the guest: the whole `tick`s spent in the host since `enter` (and
    /// left over from before), to count against the call's limit.
    pub(crate) fn leave(&mut self, tick: Duration) -> u64 {
        let Some(since) = self.since.take() else {
            return 0;
        };
        self.pending += coarse_clock().saturating_sub(since);
        let ticks = (self.pending.as_micros() / tick.as_micros().max(1)) as u32;
        self.pending -= tick * ticks;
        u64::from(ticks)
    }

    /// Starts over for a new call.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}
