//! Time as the state machines see it: a point on a clock that whoever drives them chooses.
//!
//! The scheduler and the head never read a clock. The node passes the time since it started;
//! the cluster simulator passes its virtual clock. Microseconds, so a run of years fits in a
//! `u64` and a simulated run is exactly replayable. This does not sleep or schedule anything:
//! a state machine answers "when should I be called next" and the driver decides how to wait.

use std::time::Duration;

/// Microseconds since an epoch chosen by the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub fn from_micros(micros: u64) -> Time {
        Time(micros)
    }

    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// `self` plus `delay`, saturating at the end of time.
    pub fn after(self, delay: Duration) -> Time {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(micros))
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
