//! The node's control socket: how `wasmray status` and `wasmray memory` ask a running node what
//! it holds.
//!
//! A Unix socket in the node's temp dir (and a pointer to it, `latest-node`, in the parent
//! directory, for the CLI to find the most recent node). A request is one byte (0 status,
//! 1 memory); the answer is a little-endian `u32` length and a postcard-encoded report. The
//! node only reports data; the CLI formats it. Reports are read-only: nothing here changes the
//! node.

use crate::inner::NodeInner;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmray_sched::ObjectState;

/// What `wasmray status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub node_id: String,
    pub resources_total: Vec<(String, f64)>,
    pub resources_available: Vec<(String, f64)>,
    pub tasks_waiting: u64,
    pub tasks_ready: u64,
    pub tasks_running: u64,
    pub tasks_blocked: u64,
    pub actors: u64,
    pub objects: u64,
    pub store_capacity: u64,
    pub store_arena_used: u64,
    pub store_inline_used: u64,
    pub store_spilled: u64,
    /// Every node of the cluster, this one included (just this one for an embedded node).
    pub cluster: Vec<MemberReport>,
}

/// One node of the cluster as `wasmray status` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberReport {
    pub node_id: String,
    /// `ip:port`, `embedded`, or `unknown`.
    pub address: String,
    pub alive: bool,
    /// `alive`, `dead` or `left`.
    pub state: String,
    pub is_head: bool,
    pub resources_total: Vec<(String, f64)>,
    pub resources_available: Vec<(String, f64)>,
    pub store_used: u64,
    pub store_capacity: u64,
}

/// One object as `wasmray memory` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectReport {
    pub id: String,
    /// `pending`, `ready` or `failed`.
    pub state: String,
    /// Bytes, once ready.
    pub size: Option<u64>,
    /// `inline`, `arena` or `spilled` once ready; `-` otherwise.
    pub location: String,
    pub local_refs: u32,
    pub task_arg_refs: u32,
    pub contained_refs: u32,
}

/// Name of the file, next to node directories, that points at the newest node's socket.
pub const LATEST_NODE_FILE: &str = "latest-node";

const STATUS: u8 = 0;
const MEMORY: u8 = 1;

impl NodeInner {
    pub(crate) fn status_report(&self) -> StatusReport {
        let (total, available, stats) = {
            let sched = self.lock_sched();
            (
                without_store(sched.total().to_pairs()),
                without_store(sched.available().to_pairs()),
                sched.stats(),
            )
        };
        let store = self.store.stats();
        let cluster = self.member_reports();
        StatusReport {
            cluster,
            node_id: self.id.to_string(),
            resources_total: total,
            resources_available: available,
            tasks_waiting: stats.waiting as u64,
            tasks_ready: stats.ready as u64,
            tasks_running: stats.running as u64,
            tasks_blocked: stats.blocked as u64,
            actors: stats.actors as u64,
            objects: stats.objects as u64,
            store_capacity: store.capacity,
            store_arena_used: store.arena_used,
            store_inline_used: store.inline_used,
            store_spilled: store.spilled,
        }
    }

    pub(crate) fn memory_report(&self) -> Vec<ObjectReport> {
        let listing = self.lock_sched().object_listing();
        let mut reports: Vec<ObjectReport> = listing
            .into_iter()
            .map(|(id, state, refs)| {
                let (state, size, location) = match state {
                    ObjectState::Pending => ("pending", None, "-"),
                    ObjectState::Failed(_) => ("failed", None, "-"),
                    ObjectState::Ready(Value(object)) => {
                        ("ready", Some(object.len() as u64), object.location())
                    }
                };
                ObjectReport {
                    id: format!("{id}"),
                    state: state.into(),
                    size,
                    location: location.into(),
                    local_refs: refs.local,
                    task_arg_refs: refs.task_args,
                    contained_refs: refs.contained,
                }
            })
            .collect();
        reports.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
        reports
    }

    /// Listens on `socket` and answers requests until the node goes.
    pub(crate) fn serve_control(self: &Arc<Self>, socket: &Path) -> std::io::Result<()> {
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket)?;
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(node) = node.upgrade() else { break };
                tokio::spawn(async move {
                    let Ok(request) = stream.read_u8().await else {
                        return;
                    };
                    let encoded = match request {
                        STATUS => postcard::to_allocvec(&node.status_report()),
                        MEMORY => postcard::to_allocvec(&node.memory_report()),
                        _ => return,
                    };
                    let Ok(body) = encoded else { return };
                    let Ok(len) = u32::try_from(body.len()) else {
                        return;
                    };
                    let _ = stream.write_u32_le(len).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        Ok(())
    }
}

/// Why a node could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no running wasmray node found under `{}` (is `wasmray run` running?)", .0.display())]
    NoNode(PathBuf),
    #[error("cannot reach the node at `{}`: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
    #[error("the node at `{}` answered something unreadable: {}", .0.display(), .1)]
    Decode(PathBuf, postcard::Error),
    #[error("the node at `{}` announced a {}-byte answer, more than the {MAX_REPLY} a report may be", .0.display(), .1)]
    TooLarge(PathBuf, u32),
}

/// The longest answer a client reads (a memory report of a million objects is ~100 MB).
pub const MAX_REPLY: u64 = 512 << 20;

/// Decodes a status report as the client does (also the control socket's fuzz target).
pub fn decode_status(body: &[u8]) -> Result<StatusReport, postcard::Error> {
    postcard::from_bytes(body)
}

/// Decodes a memory report as the client does (also the control socket's fuzz target).
pub fn decode_memory(body: &[u8]) -> Result<Vec<ObjectReport>, postcard::Error> {
    postcard::from_bytes(body)
}

/// The socket of the newest node whose temp dirs live under `parent`.
pub fn latest_socket(parent: &Path) -> Result<PathBuf, ControlError> {
    let pointer = parent.join(LATEST_NODE_FILE);
    let socket =
        std::fs::read_to_string(&pointer).map_err(|_| ControlError::NoNode(parent.to_owned()))?;
    let socket = PathBuf::from(socket.trim());
    if socket.exists() {
        Ok(socket)
    } else {
        Err(ControlError::NoNode(parent.to_owned()))
    }
}

async fn ask(socket: &Path, request: u8) -> Result<Vec<u8>, ControlError> {
    let io = |e| ControlError::Io(socket.to_owned(), e);
    let mut stream = tokio::net::UnixStream::connect(socket).await.map_err(io)?;
    stream.write_u8(request).await.map_err(io)?;
    let len = stream.read_u32_le().await.map_err(io)?;
    if u64::from(len) > MAX_REPLY {
        return Err(ControlError::TooLarge(socket.to_owned(), len));
    }
    // Grown as bytes arrive, not allocated at the length the peer claims.
    let mut body = Vec::new();
    let read = (&mut stream)
        .take(u64::from(len))
        .read_to_end(&mut body)
        .await
        .map_err(io)?;
    if read != len as usize {
        return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(body)
}

/// Asks the node at `socket` for its status.
pub async fn query_status(socket: &Path) -> Result<StatusReport, ControlError> {
    let body = ask(socket, STATUS).await?;
    decode_status(&body).map_err(|e| ControlError::Decode(socket.to_owned(), e))
}

/// Asks the node at `socket` for its objects.
pub async fn query_memory(socket: &Path) -> Result<Vec<ObjectReport>, ControlError> {
    let body = ask(socket, MEMORY).await?;
    decode_memory(&body).map_err(|e| ControlError::Decode(socket.to_owned(), e))
}

impl NodeInner {
    /// The cluster's nodes: the head's members on the head (dead ones too), this node's view
    /// elsewhere (live ones).
    fn member_reports(&self) -> Vec<MemberReport> {
        let head = self.net.as_ref().map_or(self.id, |net| net.head());
        let address_of = self.addresses();
        let store = self.store.stats();
        let report = |id: wasmray_core::NodeId, state: &str, snapshot: &wasmray_sched::Snapshot| {
            let alive = state == "alive";
            let capacity = snapshot.total.get(crate::OBJECT_STORE_MEMORY) as u64;
            let used = if id == self.id {
                store.arena_used + store.inline_used
            } else {
                snapshot.store_used
            };
            MemberReport {
                node_id: id.to_string(),
                address: address_of(id),
                alive,
                state: state.to_owned(),
                is_head: id == head,
                resources_total: without_store(snapshot.total.to_pairs()),
                resources_available: without_store(snapshot.available.to_pairs()),
                store_used: used,
                store_capacity: capacity,
            }
        };
        if self.is_head && self.net.is_some() {
            self.head_members()
                .iter()
                .map(|(id, member)| {
                    let state = match member.state {
                        wasmray_sched::MemberState::Alive => "alive",
                        wasmray_sched::MemberState::Dead => "dead",
                        wasmray_sched::MemberState::Left => "left",
                    };
                    report(*id, state, &member.snapshot)
                })
                .collect()
        } else {
            let sched = self.lock_sched();
            sched
                .view()
                .nodes()
                .filter(|(_, view)| view.alive)
                .map(|(id, view)| report(id, "alive", &view.snapshot))
                .collect()
        }
    }
}

/// Resources without the store's capacity, which the report shows on its own.
fn without_store(mut pairs: Vec<(String, f64)>) -> Vec<(String, f64)> {
    pairs.retain(|(name, _)| name != crate::OBJECT_STORE_MEMORY);
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer on the socket that announces an answer of `len` bytes and sends `body`.
    async fn peer(dir: &Path, len: u32, body: &'static [u8]) -> PathBuf {
        let socket = dir.join("fake.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let _ = stream.read_u8().await;
            let _ = stream.write_u32_le(len).await;
            let _ = stream.write_all(body).await;
        });
        socket
    }

    #[tokio::test]
    async fn an_absurd_answer_length_is_refused_before_anything_is_allocated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = peer(dir.path(), u32::MAX, b"").await;
        let error = query_status(&socket).await.expect_err("refused");
        assert!(
            matches!(error, ControlError::TooLarge(_, u32::MAX)),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_answer_shorter_than_announced_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = peer(dir.path(), 1000, b"short").await;
        let error = query_status(&socket).await.expect_err("refused");
        assert!(matches!(error, ControlError::Io(..)), "{error}");
    }
}
