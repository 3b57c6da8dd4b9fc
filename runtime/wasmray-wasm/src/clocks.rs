//! The clocks a guest sees through WASI: the host's monotonic and wall clocks, rounded down to
//! [`GUEST_CLOCK_RESOLUTION`] (1 µs) and saying so.
//!
//! A guest needs time to measure its own work and to sleep, not nanosecond timestamps: a
//! nanosecond clock is the first tool of timing side channels against its neighbours (cache
//! timing, Spectre-style probes). A microsecond is still fine for any benchmark a guest runs.
//! Sleeps are not affected (they wait on the host's timer, `sleep.rs`).

use std::time::{Duration, Instant, SystemTime};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// The finest step a guest's clocks take.
pub const GUEST_CLOCK_RESOLUTION: Duration = Duration::from_micros(1);

fn round_down(nanos: u128) -> u64 {
    let step = GUEST_CLOCK_RESOLUTION.as_nanos();
    u64::try_from(nanos - nanos % step).unwrap_or(u64::MAX)
}

/// Monotonic time since the instance was made, in whole microseconds.
pub(crate) struct GuestMonotonic {
    start: Instant,
}

impl GuestMonotonic {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl HostMonotonicClock for GuestMonotonic {
    fn resolution(&self) -> u64 {
        GUEST_CLOCK_RESOLUTION.as_nanos() as u64
    }

    fn now(&self) -> u64 {
        round_down(self.start.elapsed().as_nanos())
    }
}

/// Wall-clock time, in whole microseconds since the Unix epoch.
pub(crate) struct GuestWall;

impl HostWallClock for GuestWall {
    fn resolution(&self) -> Duration {
        GUEST_CLOCK_RESOLUTION
    }

    fn now(&self) -> Duration {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Duration::from_nanos(round_down(since_epoch.as_nanos()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_clocks_step_in_whole_microseconds() {
        let monotonic = GuestMonotonic::new();
        std::thread::sleep(Duration::from_micros(1500));
        assert_eq!(monotonic.now() % 1000, 0);
        assert!(monotonic.now() >= 1_000_000);
        assert_eq!(GuestWall.now().subsec_nanos() % 1000, 0);
        assert_eq!(monotonic.resolution(), 1000);
    }
}
