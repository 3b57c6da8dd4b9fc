//! Fault injection for tests and CI (Ray's `RAY_testing_rpc_failure` and
//! `RAY_testing_asio_delay_us`): a transport can be told to drop a fraction of its control
//! frames before or after they are sent, to fail a fraction of its RPCs before the request is
//! sent, after it is sent (the reply never read) or after the reply came, and to hold each
//! arriving frame back a random while (so frames overtake each other). Chaos then runs on
//! any machine, without root or a network namespace.
//!
//! The plan is data ([`Faults`], parsed from `WASMRAY_TESTING_FAULTS` by the binary, or set
//! in [`crate::TransportConfig`]); [`Injector`] rolls its dice from a seeded generator. It
//! never touches the join RPC (a node that cannot join is not a fault the runtime survives)
//! and never the bytes of a frame, only whether and when it goes.

use crate::NetError;
use std::sync::Mutex;
use std::time::Duration;

/// The environment variable the binary reads a fault plan from.
pub const FAULTS_ENV: &str = "WASMRAY_TESTING_FAULTS";

/// What to break, each a fraction from 0 to 1 (all 0 by default: nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Control frames dropped before they are sent.
    pub drop_before_send: f64,
    /// Control frames dropped on arrival: sent, never handed on.
    pub drop_after_send: f64,
    /// RPCs (object fetch, module fetch, address lookup, deploy) failed before the request
    /// goes out.
    pub rpc_before_send: f64,
    /// RPCs failed once the request went out, the reply never read.
    pub rpc_after_send: f64,
    /// RPCs failed after the whole reply came.
    pub rpc_after_reply: f64,
    /// Each arriving control frame is held back a random while up to this.
    pub max_delay: Duration,
    /// Seeds the dice (with the node's ID, so nodes roll differently).
    pub seed: u64,
}

impl Faults {
    /// Whether anything is to be broken.
    pub fn any(&self) -> bool {
        *self
            != Faults {
                seed: self.seed,
                ..Faults::default()
            }
    }

    /// Parses `key=value` pairs separated by commas: `drop_before_send`, `drop_after_send`,
    /// `rpc_before_send`, `rpc_after_send`, `rpc_after_reply` (fractions 0..=1),
    /// `max_delay_ms` and `seed` (integers). Unknown keys and bad values are refused.
    pub fn parse(spec: &str) -> Result<Faults, NetError> {
        let mut faults = Faults::default();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                NetError::BadInput(format!("{FAULTS_ENV}: `{pair}` is not key=value"))
            })?;
            let (key, value) = (key.trim(), value.trim());
            let fraction = || -> Result<f64, NetError> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| (0.0..=1.0).contains(f))
                    .ok_or_else(|| {
                        NetError::BadInput(format!(
                            "{FAULTS_ENV}: {key} must be a fraction from 0 to 1, not `{value}`"
                        ))
                    })
            };
            let integer = || -> Result<u64, NetError> {
                value.parse::<u64>().map_err(|_| {
                    NetError::BadInput(format!(
                        "{FAULTS_ENV}: {key} must be a whole number, not `{value}`"
                    ))
                })
            };
            match key {
                "drop_before_send" => faults.drop_before_send = fraction()?,
                "drop_after_send" => faults.drop_after_send = fraction()?,
                "rpc_before_send" => faults.rpc_before_send = fraction()?,
                "rpc_after_send" => faults.rpc_after_send = fraction()?,
                "rpc_after_reply" => faults.rpc_after_reply = fraction()?,
                "max_delay_ms" => {
                    let ms = integer()?;
                    if ms > 60_000 {
                        return Err(NetError::BadInput(format!(
                            "{FAULTS_ENV}: max_delay_ms is at most 60000, not {ms}"
                        )));
                    }
                    faults.max_delay = Duration::from_millis(ms);
                }
                "seed" => faults.seed = integer()?,
                _ => {
                    return Err(NetError::BadInput(format!(
                        "{FAULTS_ENV}: unknown key `{key}` (known: drop_before_send, \
                         drop_after_send, rpc_before_send, rpc_after_send, rpc_after_reply, \
                         max_delay_ms, seed)"
                    )));
                }
            }
        }
        Ok(faults)
    }

    /// The plan in [`FAULTS_ENV`], if it is set.
    pub fn from_env() -> Result<Option<Faults>, NetError> {
        match std::env::var(FAULTS_ENV) {
            Ok(spec) => Faults::parse(&spec).map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// Where in an RPC a fault may strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcPoint {
    BeforeSend,
    AfterSend,
    AfterReply,
}

/// Rolls the dice of a [`Faults`] plan.
#[derive(Debug)]
pub(crate) struct Injector {
    faults: Faults,
    state: Mutex<u64>,
}

impl Injector {
    pub(crate) fn new(faults: Faults, salt: u64) -> Self {
        Self {
            faults,
            // Never zero: xorshift would stay there.
            state: Mutex::new((faults.seed ^ salt.rotate_left(17)) | 1),
        }
    }

    /// A uniform number in [0, 1).
    fn next(&self) -> f64 {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn roll(&self, fraction: f64) -> bool {
        fraction > 0.0 && self.next() < fraction
    }

    /// Whether to drop an outgoing control frame.
    pub(crate) fn drop_outgoing(&self) -> bool {
        self.roll(self.faults.drop_before_send)
    }

    /// Whether to drop an arriving control frame.
    pub(crate) fn drop_arriving(&self) -> bool {
        self.roll(self.faults.drop_after_send)
    }

    /// How long to hold an arriving frame back (zero most of the time without a delay).
    pub(crate) fn delay(&self) -> Duration {
        if self.faults.max_delay.is_zero() {
            return Duration::ZERO;
        }
        self.faults.max_delay.mul_f64(self.next())
    }

    /// An error if the RPC is to fail at `point`.
    pub(crate) fn rpc(&self, point: RpcPoint) -> Result<(), NetError> {
        let fraction = match point {
            RpcPoint::BeforeSend => self.faults.rpc_before_send,
            RpcPoint::AfterSend => self.faults.rpc_after_send,
            RpcPoint::AfterReply => self.faults.rpc_after_reply,
        };
        if self.roll(fraction) {
            return Err(NetError::Stream(format!("injected fault ({point:?})")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_parses_and_bad_ones_are_refused() {
        let faults =
            Faults::parse("drop_before_send=0.1, rpc_after_reply=1,max_delay_ms=5,seed=9").unwrap();
        assert_eq!(faults.drop_before_send, 0.1);
        assert_eq!(faults.rpc_after_reply, 1.0);
        assert_eq!(faults.max_delay, Duration::from_millis(5));
        assert_eq!(faults.seed, 9);
        assert!(faults.any());
        assert!(!Faults::parse("seed=3").unwrap().any());
        for (bad, expected) in [
            ("drop_before_send=2", "fraction from 0 to 1"),
            ("drop_before_send", "not key=value"),
            ("max_delay_ms=-1", "whole number"),
            ("max_delay_ms=100000", "at most 60000"),
            ("loss=0.1", "unknown key `loss`"),
        ] {
            let error = Faults::parse(bad).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn the_dice_follow_the_fractions_and_the_seed() {
        let faults = Faults {
            drop_before_send: 0.25,
            rpc_before_send: 1.0,
            seed: 5,
            ..Faults::default()
        };
        let injector = Injector::new(faults, 1);
        let dropped = (0..10_000).filter(|_| injector.drop_outgoing()).count();
        assert!((2_000..3_000).contains(&dropped), "{dropped}");
        assert!(!injector.drop_arriving(), "0 never strikes");
        assert!(injector.rpc(RpcPoint::BeforeSend).is_err(), "1 always does");
        assert!(injector.rpc(RpcPoint::AfterReply).is_ok());
        let again = Injector::new(faults, 1);
        let a: Vec<bool> = (0..64).map(|_| again.drop_outgoing()).collect();
        let b = Injector::new(faults, 1);
        let b: Vec<bool> = (0..64).map(|_| b.drop_outgoing()).collect();
        assert_eq!(a, b, "the same seed rolls the same");
    }
}
