//! Guest memory held across instances: a budget that several instances' linear memories draw
//! from (one per job, one for the whole node), so that a job with many instances (actors,
//! tasks blocked in `get`) cannot take the machine's memory even when each stays under its
//! own cap.
//!
//! An instance's memory cap (`state.rs`) asks its pools for every byte it grows by, and gives
//! back everything it was granted when it goes. This file only counts; it never allocates.

use std::sync::atomic::{AtomicU64, Ordering};

/// A budget of guest memory bytes.
#[derive(Debug)]
pub struct MemoryPool {
    limit: u64,
    used: AtomicU64,
    /// What to say when a growth is refused.
    refusal: String,
}

impl MemoryPool {
    /// A pool of `limit` bytes; `refusal` is the message a guest refused by it gets.
    pub fn new(limit: u64, refusal: String) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            refusal,
        }
    }

    /// The most it grants.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes granted now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Grants `bytes` unless that passes the limit.
    pub(crate) fn take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    pub(crate) fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(crate) fn refusal(&self) -> &str {
        &self.refusal
    }
}
