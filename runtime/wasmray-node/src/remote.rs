//! The node's side of its links: what arrives from peers (frames for the scheduler or the
//! head, guest output for a driver here, requests for an object's or a module's bytes) and
//! the byte transfers the scheduler asks for.
//!
//! Frames are decoded here (`wire_codec.rs`) and fed to the scheduler or, on the head's node,
//! to the head. A fetch ([`fetch`]) reserves room for the whole object in this node's store,
//! streams the holder's bytes straight into it and seals it; whatever happens, the scheduler
//! hears exactly one `Event::Fetched`. A peer's fetch of one of our objects is served from a
//! pin, so the bytes stay put (and unspilled) while they are sent.

use crate::inner::NodeInner;
use crate::value::Value;
use crate::wire_codec::{self, Route};
use bytes::Bytes;
use std::sync::{Arc, Weak};
use wasmray_core::{ModuleId, NodeId, ObjectId};
use wasmray_net::Handler;
use wasmray_sched::{Event, ObjectState, Peer};

/// What the transport hands the node (held weakly by the transport).
pub(crate) struct NetHandler {
    pub(crate) node: Weak<NodeInner>,
}

impl Handler for NetHandler {
    fn frame(&self, from: NodeId, frame: Vec<u8>) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        if frame.first() == Some(&wire_codec::OUTPUT_ROUTE) {
            match wire_codec::decode_output(&frame) {
                Ok(line) => {
                    let stream = if line.stderr {
                        wasmray_wasm::Stream::Stderr
                    } else {
                        wasmray_wasm::Stream::Stdout
                    };
                    node.jobs
                        .show_forwarded(line.job, line.label.as_deref(), stream, &line.line);
                }
                Err(e) => tracing::warn!(%from, "dropped an output frame: {e}"),
            }
            return;
        }
        let (route, envelope) = match wire_codec::decode(&frame, &node.store, &node.node_account) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(%from, "dropped a frame: {e}");
                return;
            }
        };
        match route {
            Route::Peer => node.event(Event::Received {
                from: Peer::Node(from),
                envelope,
            }),
            Route::ToHead => node.to_head(from, envelope),
            Route::FromHead => {
                if node.net.as_ref().is_some_and(|net| net.head() == from) {
                    node.heard_from_head();
                    node.event(Event::Received {
                        from: Peer::Head,
                        envelope,
                    });
                } else {
                    // Perhaps a restarted head: the watch checks at once (it trusts only
                    // the node holding the head's certificate at the head's address).
                    tracing::debug!(%from, "a node that is not our head spoke for one");
                    node.look_for_head();
                }
            }
        }
    }

    fn object_bytes(&self, object: ObjectId) -> Option<Bytes> {
        let node = self.node.upgrade()?;
        let value = match node.lock_sched().object(object)? {
            ObjectState::Ready(Value(value)) => value,
            _ => return None,
        };
        let pin = value.pin().ok()?;
        Some(Bytes::from_owner(pin))
    }

    fn module_bytes(&self, module: ModuleId) -> Option<(String, Bytes)> {
        let node = self.node.upgrade()?;
        let (name, bytes) = node.host.module_source(&module)?;
        Some((name, Bytes::from_owner(bytes)))
    }

    fn prepare_module(&self, from: NodeId, id: ModuleId) -> wasmray_net::PrepareModule {
        let node = self.node.clone();
        Box::pin(async move {
            let node = node.upgrade().ok_or("the node is shutting down")?;
            module(&node, id, from).await.map(|_| ())
        })
    }

    fn link_lost(&self, peer: NodeId) {
        if let Some(node) = self.node.upgrade() {
            node.suspect(peer);
        }
    }

    fn declared_dead_by(&self, peer: NodeId) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        // Only the head's word counts: it is the one authority on death.
        if node.net.as_ref().is_some_and(|net| net.head() == peer) {
            let fenced = wasmray_sched::Envelope {
                seq: 0,
                ack: 0,
                message: Some(wasmray_sched::Message::Fenced),
            };
            node.event(Event::Received {
                from: Peer::Head,
                envelope: fenced,
            });
        }
    }
}

/// The module `id`, fetched from `from` (a node that runs it) if this node lacks it, checked
/// against its hash and compiled (once: concurrent callers wait for the first).
pub(crate) async fn module(
    node: &Arc<NodeInner>,
    id: ModuleId,
    from: NodeId,
) -> Result<Arc<wasmray_wasm::GuestModule>, String> {
    if let Some(module) = node.host.module(&id) {
        return Ok(module);
    }
    let net = node
        .net
        .as_ref()
        .ok_or("its module is not loaded on this node")?;
    let _one_at_a_time = node.module_fetch.lock().await;
    if let Some(module) = node.host.module(&id) {
        return Ok(module);
    }
    // A broken stream is tried again (three times in all, 50 ms then 200 ms apart) before
    // the task fails for it; a node that answers it lacks the module is not asked again.
    let mut tries = 0;
    let (name, bytes) = loop {
        tries += 1;
        match net.fetch_module(from, id).await {
            Ok(found) => {
                break found.ok_or_else(|| format!("node {from} does not have its module"))?;
            }
            Err(e) if tries >= 3 => {
                return Err(format!("could not fetch its module from node {from}: {e}"));
            }
            Err(e) => {
                tracing::debug!(%from, "module fetch failed, trying again: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50 << (2 * (tries - 1)))).await;
            }
        }
    };
    // Checked before compiling: a peer must not make this node compile bytes nobody asked for.
    if wasmray_wasm::module_id(&bytes) != id {
        return Err(format!(
            "node {from} sent a module whose hash is not the one asked for"
        ));
    }
    let module = node
        .host
        .load(&name, &bytes)
        .map_err(|e| format!("its module from node {from} does not load: {e}"))?;
    tracing::info!(module = %name, %from, "fetched a module");
    Ok(module)
}

/// Carries out `Action::Fetch`: pulls `len` bytes of `object` from `from` into the store.
pub(crate) fn fetch(
    node: &Arc<NodeInner>,
    object: ObjectId,
    from: NodeId,
    len: u64,
    contained: Vec<ObjectId>,
) {
    let node = Arc::clone(node);
    tokio::spawn(async move {
        let value = match transfer(&node, object, from, len, contained).await {
            Ok(value) => Some(Value(value)),
            Err(why) => {
                tracing::warn!(%from, ?object, len, "fetch failed: {why}");
                None
            }
        };
        node.event(Event::Fetched {
            object,
            from,
            value,
        });
    });
}

async fn transfer(
    node: &Arc<NodeInner>,
    object: ObjectId,
    from: NodeId,
    len: u64,
    contained: Vec<ObjectId>,
) -> Result<Arc<wasmray_store::StoredObject>, String> {
    let net = node.net.as_ref().ok_or("this node has no links")?;
    let size = usize::try_from(len).map_err(|_| format!("{len} bytes do not fit here"))?;
    let mut room = node
        .store
        .reserve(&node.node_account, size)
        .map_err(|e| e.to_string())?;
    net.fetch(from, object, len, |piece| {
        room.write(piece).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?;
    // The references inside were taken in by the scheduler when the copy was offered.
    room.seal(contained).map_err(|e| e.to_string())
}
