//! The switch that stops an instance from another task, and what waits for it.
//!
//! Thrown by the node (a kill, a cancel) and read by the guest's epoch callback and by every
//! wait inside an import, so a running guest traps at its next tick and a blocked one at
//! once. It stops nothing by itself.

use std::sync::Arc;

/// Stops an instance from another task: a running guest traps at its next epoch tick, one
/// blocked in `get` or `wait` at once. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct KillSwitch {
    inner: Arc<KillInner>,
}

#[derive(Debug, Default)]
struct KillInner {
    killed: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl KillSwitch {
    pub fn kill(&self) {
        self.inner
            .killed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_killed(&self) -> bool {
        self.inner.killed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once `kill` has been called.
    pub async fn killed(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }
}
