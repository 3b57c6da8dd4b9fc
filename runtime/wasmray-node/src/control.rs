//! The node's control socket: how `wasmray status`, `memory`, `submit`, `job` and `deploy`
//! reach a running node on this machine.
//!
//! A Unix socket in the node's temp dir (and a pointer to it, `latest-node`, in the parent
//! directory, for the CLI to find the most recent node), readable and writable only by the
//! node's user; a peer of another user is refused. A request is one byte (0 status, 1 memory),
//! or for the job and module requests a byte, a little-endian `u32` length and that many bytes
//! of postcard. An answer is a little-endian `u32` length and a postcard-encoded value; a
//! deploy answers with a frame per node as each one answers. The node only reports data; the
//! CLI formats it. What the job requests do is `submit.rs`'s and `submitted.rs`'s.

use crate::inner::NodeInner;
use crate::submit::{DeployEvent, DeployRequest, SubmitRequest};
use crate::submitted::{JobReport, JobRequestError, LogChunk};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
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
    /// Objects the store holds (whether or not the scheduler still names them).
    pub store_objects: u64,
    /// What a leak would hide in: tasks leased out, messages not acknowledged, leases queued
    /// here, actor records and actor instances.
    pub leased_out: u64,
    pub unacked: u64,
    pub queued_leases: u64,
    pub actor_entries: u64,
    pub actor_hosts: u64,
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
    /// `alive`, `draining`, `dead` or `left`.
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
const SUBMIT: u8 = 2;
const JOBS: u8 = 3;
const JOB_STATUS: u8 = 4;
const JOB_LOGS: u8 = 5;
const JOB_STOP: u8 = 6;
const DEPLOY: u8 = 7;
const DRAIN: u8 = 8;

/// The longest request the node reads: a module of the most a node fetches, and its options.
pub const MAX_REQUEST: u64 = wasmray_net::wire::MAX_MODULE + (1 << 20);

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
            store_objects: store.objects,
            leased_out: stats.leased_out as u64,
            unacked: stats.unacked as u64,
            queued_leases: stats.queued_leases as u64,
            actor_entries: stats.actor_entries as u64,
            actor_hosts: self.actors.len() as u64,
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
        use std::os::unix::fs::PermissionsExt;
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        let owner = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(socket)?.uid()
        };
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Some(node) = node.upgrade() else { break };
                // The socket's mode keeps others out; the peer's credentials say so again
                // (a socket's mode is not honoured everywhere).
                let allowed = stream
                    .peer_cred()
                    .is_ok_and(|cred| cred.uid() == owner || cred.uid() == 0);
                if !allowed {
                    continue;
                }
                tokio::spawn(async move {
                    if let Err(error) = node.answer_control(stream).await {
                        tracing::debug!(%error, "a control request failed");
                    }
                });
            }
        });
        Ok(())
    }

    async fn answer_control(self: &Arc<Self>, mut stream: UnixStream) -> std::io::Result<()> {
        let request = stream.read_u8().await?;
        let body = match request {
            STATUS => postcard::to_allocvec(&self.status_report()),
            MEMORY => postcard::to_allocvec(&self.memory_report()),
            SUBMIT => {
                let request: SubmitRequest = read_request(&mut stream).await?;
                postcard::to_allocvec(&self.submit(request).await)
            }
            JOBS => {
                let () = read_request(&mut stream).await?;
                postcard::to_allocvec(&self.submitted.list())
            }
            JOB_STATUS => {
                let job: u32 = read_request(&mut stream).await?;
                postcard::to_allocvec(&self.submitted.status(job))
            }
            JOB_LOGS => {
                let (job, offset): (u32, u64) = read_request(&mut stream).await?;
                postcard::to_allocvec(&self.submitted.logs(job, offset))
            }
            JOB_STOP => {
                let job: u32 = read_request(&mut stream).await?;
                postcard::to_allocvec(&self.submitted.stop(job))
            }
            DRAIN => {
                let node: u64 = read_request(&mut stream).await?;
                let ask = wasmray_sched::HeadRequest::Drain {
                    node: wasmray_core::NodeId(node),
                };
                let draining = matches!(
                    self.ask_head(ask).await,
                    Some(wasmray_sched::HeadAnswer::Draining(true))
                );
                postcard::to_allocvec(&draining)
            }
            DEPLOY => {
                let request: DeployRequest = read_request(&mut stream).await?;
                let (events, mut answers) = tokio::sync::mpsc::channel(16);
                let node = Arc::clone(self);
                tokio::spawn(async move { node.deploy(request, events).await });
                while let Some(event) = answers.recv().await {
                    let body = postcard::to_allocvec(&event).map_err(std::io::Error::other)?;
                    write_answer(&mut stream, &body).await?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let body = body.map_err(std::io::Error::other)?;
        write_answer(&mut stream, &body).await
    }
}

/// Reads a request's length and body (grown as bytes arrive, not allocated at the length
/// the peer claims) and decodes it.
async fn read_request<T: serde::de::DeserializeOwned>(
    stream: &mut UnixStream,
) -> std::io::Result<T> {
    let len = stream.read_u32_le().await?;
    if u64::from(len) > MAX_REQUEST {
        return Err(std::io::Error::other(format!(
            "a {len}-byte request, more than the {MAX_REQUEST} one may be"
        )));
    }
    let mut body = Vec::new();
    let read = (&mut *stream)
        .take(u64::from(len))
        .read_to_end(&mut body)
        .await?;
    if read != len as usize {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    postcard::from_bytes(&body).map_err(std::io::Error::other)
}

async fn write_answer(stream: &mut UnixStream, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    stream.write_u32_le(len).await?;
    stream.write_all(body).await
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
    #[error("a {0}-byte request is more than the {MAX_REQUEST} a node reads")]
    RequestTooLarge(u64),
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

/// For the fuzz target: decodes `bytes` as each job and module request and answer the
/// control socket carries; returns how many decoded.
pub fn fuzz_control_jobs(bytes: &[u8]) -> usize {
    fn ok<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> usize {
        usize::from(postcard::from_bytes::<T>(bytes).is_ok())
    }
    ok::<SubmitRequest>(bytes)
        + ok::<DeployRequest>(bytes)
        + ok::<Result<u32, String>>(bytes)
        + ok::<Vec<JobReport>>(bytes)
        + ok::<Result<JobReport, JobRequestError>>(bytes)
        + ok::<Result<LogChunk, JobRequestError>>(bytes)
        + ok::<DeployEvent>(bytes)
        + ok::<(u32, u64)>(bytes)
}

/// Valid job and module requests and answers, for the fuzz target.
pub fn fuzz_control_jobs_seeds() -> Vec<Vec<u8>> {
    let report = JobReport {
        id: 3,
        module: "app.wasm".into(),
        args: vec!["a".into()],
        state: "failed".into(),
        exit_code: Some(2),
        message: Some("panicked".into()),
        started_unix_ms: 1_700_000_000_000,
        ended_unix_ms: Some(1_700_000_001_000),
        log_bytes: 12,
    };
    let seeds: [Result<Vec<u8>, postcard::Error>; 6] = [
        postcard::to_allocvec(&SubmitRequest {
            module_name: "app.wasm".into(),
            module: b"\0asm\x01\0\0\0".to_vec(),
            args: vec!["x".into()],
            quotas: wasmray_core::JobQuotas::default(),
            namespace: Some("team".into()),
            dirs: vec![("/data".into(), "/data".into(), false)],
        }),
        postcard::to_allocvec(&vec![report.clone()]),
        postcard::to_allocvec(&Ok::<_, JobRequestError>(report)),
        postcard::to_allocvec(&Ok::<_, JobRequestError>(LogChunk {
            bytes: b"hello\n".to_vec(),
            next_offset: 6,
            ended: true,
        })),
        postcard::to_allocvec(&DeployEvent::Started {
            module: "app.wasm".into(),
            hash: "ab".repeat(32),
            bytes: 1000,
            nodes: 7,
        }),
        postcard::to_allocvec(&DeployEvent::Node {
            node: "n1".into(),
            error: Some("does not load".into()),
        }),
    ];
    seeds.into_iter().flatten().collect()
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
    let mut stream = connect(socket).await?;
    stream
        .write_u8(request)
        .await
        .map_err(|e| ControlError::Io(socket.to_owned(), e))?;
    read_answer(socket, &mut stream).await
}

async fn connect(socket: &Path) -> Result<UnixStream, ControlError> {
    UnixStream::connect(socket)
        .await
        .map_err(|e| ControlError::Io(socket.to_owned(), e))
}

/// Sends a request with a body (the job and module requests).
async fn send_request<T: Serialize>(
    socket: &Path,
    request: u8,
    body: &T,
) -> Result<UnixStream, ControlError> {
    let io = |e| ControlError::Io(socket.to_owned(), e);
    let body = postcard::to_allocvec(body).map_err(|e| io(std::io::Error::other(e)))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&len| u64::from(len) <= MAX_REQUEST)
        .ok_or(ControlError::RequestTooLarge(body.len() as u64))?;
    let mut stream = connect(socket).await?;
    stream.write_u8(request).await.map_err(io)?;
    stream.write_u32_le(len).await.map_err(io)?;
    stream.write_all(&body).await.map_err(io)?;
    Ok(stream)
}

/// Reads one answer; `None` at a clean end of the stream.
async fn read_answer_or_end(
    socket: &Path,
    stream: &mut UnixStream,
) -> Result<Option<Vec<u8>>, ControlError> {
    let io = |e| ControlError::Io(socket.to_owned(), e);
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let len = u32::from_le_bytes(len);
    if u64::from(len) > MAX_REPLY {
        return Err(ControlError::TooLarge(socket.to_owned(), len));
    }
    // Grown as bytes arrive, not allocated at the length the peer claims.
    let mut body = Vec::new();
    let read = (&mut *stream)
        .take(u64::from(len))
        .read_to_end(&mut body)
        .await
        .map_err(io)?;
    if read != len as usize {
        return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(Some(body))
}

async fn read_answer(socket: &Path, stream: &mut UnixStream) -> Result<Vec<u8>, ControlError> {
    read_answer_or_end(socket, stream).await?.ok_or_else(|| {
        ControlError::Io(socket.to_owned(), std::io::ErrorKind::UnexpectedEof.into())
    })
}

/// Sends a request with a body and decodes its one answer.
async fn ask_with<B: Serialize, T: serde::de::DeserializeOwned>(
    socket: &Path,
    request: u8,
    body: &B,
) -> Result<T, ControlError> {
    let mut stream = send_request(socket, request, body).await?;
    decode(socket, &read_answer(socket, &mut stream).await?)
}

fn decode<T: serde::de::DeserializeOwned>(socket: &Path, body: &[u8]) -> Result<T, ControlError> {
    postcard::from_bytes(body).map_err(|e| ControlError::Decode(socket.to_owned(), e))
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

/// Asks the node at `socket` to run a job; the answer is its ID or why it did not start.
pub async fn submit_job(
    socket: &Path,
    request: &SubmitRequest,
) -> Result<Result<u32, String>, ControlError> {
    ask_with(socket, SUBMIT, request).await
}

/// The jobs submitted to the node at `socket`, oldest first.
pub async fn list_jobs(socket: &Path) -> Result<Vec<JobReport>, ControlError> {
    ask_with(socket, JOBS, &()).await
}

/// One submitted job's state.
pub async fn job_status(
    socket: &Path,
    job: u32,
) -> Result<Result<JobReport, JobRequestError>, ControlError> {
    ask_with(socket, JOB_STATUS, &job).await
}

/// A piece of a submitted job's log from `offset`.
pub async fn job_logs(
    socket: &Path,
    job: u32,
    offset: u64,
) -> Result<Result<LogChunk, JobRequestError>, ControlError> {
    ask_with(socket, JOB_LOGS, &(job, offset)).await
}

/// Stops a submitted job (its state right after the stop was thrown).
pub async fn stop_job(
    socket: &Path,
    job: u32,
) -> Result<Result<JobReport, JobRequestError>, ControlError> {
    ask_with(socket, JOB_STOP, &job).await
}

/// Asks the cluster of the node at `socket` to drain the node with ID `node`: true if it
/// drains now (false: no such live node, or it is the head).
pub async fn drain_node(socket: &Path, node: u64) -> Result<bool, ControlError> {
    ask_with(socket, DRAIN, &node).await
}

/// Deploys a module through the node at `socket`; `progress` sees each event as it comes.
pub async fn deploy_module(
    socket: &Path,
    request: &DeployRequest,
    mut progress: impl FnMut(&DeployEvent),
) -> Result<(), ControlError> {
    let mut stream = send_request(socket, DEPLOY, request).await?;
    while let Some(body) = read_answer_or_end(socket, &mut stream).await? {
        let event: DeployEvent = decode(socket, &body)?;
        progress(&event);
        if matches!(event, DeployEvent::Done | DeployEvent::Failed(_)) {
            return Ok(());
        }
    }
    // The node went before every node had answered.
    Err(ControlError::Io(
        socket.to_owned(),
        std::io::ErrorKind::UnexpectedEof.into(),
    ))
}

impl NodeInner {
    /// The cluster's nodes: the head's members on the head (dead ones too), this node's view
    /// elsewhere (live ones).
    fn member_reports(&self) -> Vec<MemberReport> {
        let head = self.net.as_ref().map_or(self.id, |net| net.head());
        let address_of = self.addresses();
        let store = self.store.stats();
        let report = |id: wasmray_core::NodeId, state: &str, snapshot: &wasmray_sched::Snapshot| {
            let alive = state == "alive" || state == "draining";
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
                        wasmray_sched::MemberState::Alive if member.draining => "draining",
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
