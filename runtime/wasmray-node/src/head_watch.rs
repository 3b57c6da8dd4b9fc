//! A joined node's watch on its head: when nothing came from the head for a while (it
//! answers every message, so a live one is heard at least once a report period), the node
//! dials the head's address again, with backoff, until whoever holds the cluster's head
//! certificate answers. If that is a new head — one restarted on its data directory, on a
//! new node — the scheduler is told (`Event::HeadRestarted`): it joins again and resends
//! what the old head never acknowledged. Meanwhile the node keeps running what it has; what
//! needs the head waits in its link.

use crate::inner::NodeInner;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wasmray_sched::Event;

/// How often the watch looks.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The longest wait between two dials of a head that does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Watches the head for as long as the node lives; `silence` is how long without a word
/// from it makes the node look for it again.
pub(crate) async fn watch(node: Weak<NodeInner>, silence: Duration) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let Some(inner) = node.upgrade() else {
            return;
        };
        if inner.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        let Some(net) = inner.net.clone() else {
            return;
        };
        let now = inner.started.elapsed().as_millis() as u64;
        let heard = inner.head_heard_ms.load(Ordering::Relaxed);
        let asked = inner.head_look_now.swap(false, Ordering::Relaxed);
        if !asked && now.saturating_sub(heard) < silence.as_millis() as u64 {
            backoff = Duration::from_millis(100);
            continue;
        }
        let old = net.head();
        drop(inner);
        match net.find_head().await {
            Ok(head) if head != old => {
                let Some(inner) = node.upgrade() else {
                    return;
                };
                tracing::warn!(%old, new = %head, "the head was restarted: joining it again");
                inner.heard_from_head();
                inner.event(Event::HeadRestarted { old });
                backoff = Duration::from_millis(100);
            }
            Ok(_) => {
                // The same head answers: it was only quiet.
                if let Some(inner) = node.upgrade() {
                    inner.heard_from_head();
                }
            }
            Err(error) => {
                tracing::debug!(%error, "the head does not answer; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
