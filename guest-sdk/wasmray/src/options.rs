//! Per-call options (Ray's `.options(...)`): resources, instance reuse, retries and limits.
//!
//! [`CallOptions`] is a builder over the ABI's `CallOptions` record; an option left unset means
//! "the host's default". `#[wasmray::remote(...)]` turns its arguments into a `CallOptions`, and
//! `f::options()` returns a `Call` that starts from those and takes the same setters, generated
//! by [`__impl_call_setters!`](crate::__impl_call_setters) so every function gets identical,
//! documented methods without the macro crate spelling them out.
//!
//! This file does not validate amounts (negative CPUs, zero limits): the host does, and answers
//! with an `InvalidTask` error.

use std::time::Duration;

/// Sets `name`'s amount in a resource list, replacing an earlier amount for the same name.
pub(crate) fn set_resource(resources: &mut Vec<(String, f64)>, name: String, amount: f64) {
    match resources.iter_mut().find(|(n, _)| *n == name) {
        Some(entry) => entry.1 = amount,
        None => resources.push((name, amount)),
    }
}

/// `duration` in whole milliseconds, rounded up, saturating (the ABI's unit for limits and
/// timeouts).
pub(crate) fn millis_rounded_up(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Options of one call, as Ray's `f.options(...)`. Unset options take the host's defaults (one
/// CPU, no GPUs, retries on system failures, the node's memory and CPU-time limits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    record: wasmray_abi::CallOptions,
}

impl CallOptions {
    /// No options set: everything at the host's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// CPUs the task holds while it runs (Ray's `num_cpus`); may be fractional.
    pub fn num_cpus(mut self, amount: f64) -> Self {
        self.record.num_cpus = Some(amount);
        self
    }

    /// GPUs the task holds while it runs (Ray's `num_gpus`).
    pub fn num_gpus(mut self, amount: f64) -> Self {
        self.record.num_gpus = Some(amount);
        self
    }

    /// An amount of a custom resource (Ray's `resources={name: amount}`); setting the same name
    /// again replaces the amount.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        set_resource(&mut self.record.resources, name.into(), amount);
        self
    }

    /// How many calls one instance serves before it is retired (Ray's `max_calls`); 0 means no
    /// limit. `max_calls(1)` gives every call a fresh instance.
    pub fn max_calls(mut self, calls: u32) -> Self {
        self.record.max_calls = Some(calls);
        self
    }

    /// How many times a failed task is retried (Ray's `max_retries`): after system failures,
    /// and after guest errors too with [`retry_exceptions`](Self::retry_exceptions).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.record.max_retries = Some(retries);
        self
    }

    /// Whether panics and traps in the guest are retried as well (Ray's `retry_exceptions`).
    pub fn retry_exceptions(mut self, retry: bool) -> Self {
        self.record.retry_exceptions = Some(retry);
        self
    }

    /// Cap on the task instance's linear memory, in bytes; going over it fails the task with
    /// `OutOfMemory`.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.record.memory_limit = Some(bytes);
        self
    }

    /// Cap on the task's running time (time blocked in `get`/`wait` does not count); going over
    /// it fails the task with `DeadlineExceeded`. Rounded up to whole milliseconds.
    pub fn cpu_time_limit(mut self, limit: Duration) -> Self {
        self.record.cpu_time_limit_ms = Some(millis_rounded_up(limit));
        self
    }

    /// The ABI record the host receives.
    #[doc(hidden)]
    pub fn record(&self) -> &wasmray_abi::CallOptions {
        &self.record
    }
}

/// Generates the option setters of a `Call` type (the builder `f::options()` returns) that has a
/// field `options: wasmray::CallOptions`. Used by the code `#[wasmray::remote]` generates.
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_call_setters {
    ($call:ident) => {
        impl $call {
            /// CPUs the task holds while it runs (Ray's `num_cpus`); may be fractional.
            pub fn num_cpus(mut self, amount: f64) -> Self {
                self.options = self.options.num_cpus(amount);
                self
            }

            /// GPUs the task holds while it runs (Ray's `num_gpus`).
            pub fn num_gpus(mut self, amount: f64) -> Self {
                self.options = self.options.num_gpus(amount);
                self
            }

            /// An amount of a custom resource (Ray's `resources={name: amount}`).
            pub fn resource(
                mut self,
                name: impl ::core::convert::Into<::std::string::String>,
                amount: f64,
            ) -> Self {
                self.options = self.options.resource(name, amount);
                self
            }

            /// How many calls one instance serves before it is retired; 0 means no limit.
            pub fn max_calls(mut self, calls: u32) -> Self {
                self.options = self.options.max_calls(calls);
                self
            }

            /// How many times a failed task is retried (Ray's `max_retries`).
            pub fn max_retries(mut self, retries: u32) -> Self {
                self.options = self.options.max_retries(retries);
                self
            }

            /// Whether guest panics and traps are retried too (Ray's `retry_exceptions`).
            pub fn retry_exceptions(mut self, retry: bool) -> Self {
                self.options = self.options.retry_exceptions(retry);
                self
            }

            /// Cap on the task instance's linear memory, in bytes.
            pub fn memory_limit(mut self, bytes: u64) -> Self {
                self.options = self.options.memory_limit(bytes);
                self
            }

            /// Cap on the task's running time, not counting time blocked in `get`/`wait`.
            pub fn cpu_time_limit(mut self, limit: ::core::time::Duration) -> Self {
                self.options = self.options.cpu_time_limit(limit);
                self
            }
        }
    };
}
