//! Accounts: what one owner (a job) holds in the store, against its limits.
//!
//! Every object and reservation carries a [`Charge`] on the account it was made for: one
//! object and its length in bytes, taken when the room is reserved (refused past the
//! account's limits) and given back when the charge drops with the object or the unsealed
//! reservation. The compiler keeps the count: no path frees an object without dropping its
//! charge. A charge for an inline object also holds its bytes in the store's inline total,
//! which counts against the store's capacity. Spilling charges the account's spill limit:
//! an account at its limit has no more objects spilled.
//!
//! An account knows nothing of jobs or scheduling; it is numbers and limits.

use crate::StoreError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmray_core::{Quota, QuotaExceeded};

/// The store's own totals (for [`crate::StoreStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) inline_bytes: AtomicU64,
    pub(crate) spilled_bytes: AtomicU64,
    pub(crate) objects: AtomicU64,
}

/// The limits of an [`Account`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    pub max_objects: u64,
    /// Bytes of live objects, wherever they are.
    pub max_bytes: u64,
    /// Bytes of objects spilled to disk.
    pub max_spill_bytes: u64,
}

impl AccountLimits {
    /// No limit (the node's own objects, and values that arrive from other nodes).
    pub const UNLIMITED: AccountLimits = AccountLimits {
        max_objects: u64::MAX,
        max_bytes: u64::MAX,
        max_spill_bytes: u64::MAX,
    };
}

/// What an account holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountUsage {
    pub objects: u64,
    pub bytes: u64,
    pub spilled_bytes: u64,
}

/// One owner's objects in the store, counted against its limits.
#[derive(Debug)]
pub struct Account {
    limits: AccountLimits,
    objects: AtomicU64,
    bytes: AtomicU64,
    spilled: AtomicU64,
    /// Bytes of its inline objects (they never spill; see `Store::reserve`'s share).
    inline: AtomicU64,
}

impl Account {
    pub fn new(limits: AccountLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            objects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            inline: AtomicU64::new(0),
        })
    }

    /// Bytes of its inline objects now.
    pub(crate) fn inline_bytes(&self) -> u64 {
        self.inline.load(Ordering::Relaxed)
    }

    pub fn limits(&self) -> AccountLimits {
        self.limits
    }

    pub fn usage(&self) -> AccountUsage {
        AccountUsage {
            objects: self.objects.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            spilled_bytes: self.spilled.load(Ordering::Relaxed),
        }
    }

    /// Adds `amount` to `counter` unless that would pass `limit`: one atomic add (and a
    /// subtraction when refused), cheaper under contention than a compare-and-swap loop.
    fn take(counter: &AtomicU64, amount: u64, limit: u64) -> bool {
        let before = counter.fetch_add(amount, Ordering::Relaxed);
        if before
            .checked_add(amount)
            .is_some_and(|after| after <= limit)
        {
            return true;
        }
        counter.fetch_sub(amount, Ordering::Relaxed);
        false
    }

    /// Charges one object of `len` bytes, or says which limit it would pass.
    fn charge(&self, len: u64) -> Result<(), StoreError> {
        if !Self::take(&self.objects, 1, self.limits.max_objects) {
            return Err(self.exceeded(Quota::Objects, self.limits.max_objects));
        }
        if !Self::take(&self.bytes, len, self.limits.max_bytes) {
            self.objects.fetch_sub(1, Ordering::Relaxed);
            return Err(self.exceeded(Quota::ObjectBytes, self.limits.max_bytes));
        }
        Ok(())
    }

    fn exceeded(&self, quota: Quota, limit: u64) -> StoreError {
        StoreError::Quota(QuotaExceeded { quota, limit })
    }

    /// Counts `len` more bytes on disk, unless that passes the spill limit.
    pub(crate) fn try_spill(&self, len: u64) -> bool {
        Self::take(&self.spilled, len, self.limits.max_spill_bytes)
    }

    /// A full store, as this account's owner should hear of it: when the account has
    /// spilled so much that another `len` bytes would pass its spill limit, that limit is
    /// what kept its objects in memory, and the error names the quota.
    pub(crate) fn explain_full(&self, error: StoreError, len: usize) -> StoreError {
        let spilled = self.spilled.load(Ordering::Relaxed);
        match error {
            StoreError::Full { .. }
                if spilled > 0
                    && spilled.saturating_add(len as u64) > self.limits.max_spill_bytes =>
            {
                self.exceeded(Quota::SpillBytes, self.limits.max_spill_bytes)
            }
            other => other,
        }
    }

    /// `len` bytes are on disk again (a restore that could not finish), limit or not.
    pub(crate) fn respill(&self, len: u64) {
        self.spilled.fetch_add(len, Ordering::Relaxed);
    }

    /// `len` bytes are no longer on disk.
    pub(crate) fn unspill(&self, len: u64) {
        self.spilled.fetch_sub(len, Ordering::Relaxed);
    }
}

/// One object's share of its account (and, if inline, of the store's inline total); given
/// back when dropped. See the module doc.
#[derive(Debug)]
pub(crate) struct Charge {
    account: Arc<Account>,
    len: u64,
    inline: Option<Arc<Counters>>,
}

impl Charge {
    /// Charges `account` for one object of `len` bytes; `inline` also counts the bytes in the
    /// store's inline total.
    pub(crate) fn new(
        account: &Arc<Account>,
        len: u64,
        inline: Option<&Arc<Counters>>,
    ) -> Result<Self, StoreError> {
        account.charge(len)?;
        if let Some(counters) = inline {
            counters.inline_bytes.fetch_add(len, Ordering::Relaxed);
            account.inline.fetch_add(len, Ordering::Relaxed);
        }
        Ok(Self {
            account: Arc::clone(account),
            len,
            inline: inline.cloned(),
        })
    }

    pub(crate) fn account(&self) -> &Account {
        &self.account
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.account.objects.fetch_sub(1, Ordering::Relaxed);
        self.account.bytes.fetch_sub(self.len, Ordering::Relaxed);
        if let Some(counters) = &self.inline {
            counters.inline_bytes.fetch_sub(self.len, Ordering::Relaxed);
            self.account.inline.fetch_sub(self.len, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_and_charges_come_back() {
        let account = Account::new(AccountLimits {
            max_objects: 2,
            max_bytes: 100,
            max_spill_bytes: 10,
        });
        let a = Charge::new(&account, 60, None).unwrap();
        let too_big = Charge::new(&account, 41, None).unwrap_err();
        assert!(
            too_big
                .to_string()
                .contains("quota of 100 bytes of objects held")
        );
        let b = Charge::new(&account, 40, None).unwrap();
        let too_many = Charge::new(&account, 0, None).unwrap_err();
        assert!(too_many.to_string().contains("--max-objects"), "{too_many}");
        assert_eq!(
            account.usage(),
            AccountUsage {
                objects: 2,
                bytes: 100,
                spilled_bytes: 0
            }
        );
        assert!(account.try_spill(10) && !account.try_spill(1));
        account.unspill(10);
        drop((a, b));
        assert_eq!(account.usage(), AccountUsage::default());
    }
}
