//! A node's links to the rest of its cluster: one QUIC endpoint (one UDP port, client and
//! server at once), one connection per peer, an ordered control stream each way, an RPC
//! stream per join, fetch and address lookup.
//!
//! - **Sending** ([`Transport::send`]) never waits: a frame is written at once when nothing is
//!   queued and the peer's control stream is idle (one poll of QUIC's write); otherwise it
//!   joins the peer's outbox, whose writer task dials if needed (asking the head where the
//!   peer listens), opens a control stream and writes whatever has queued up in one go. If the link breaks, queued frames are dropped:
//!   the scheduler's link layer numbers and resends its envelopes, so nothing is lost.
//! - **Receiving**: every control stream's frames are handed to the [`Handler`] in the order
//!   they were sent. Frames from a peer arrive only after its certificate was checked
//!   against the cluster CA and the node it names.
//! - **Duplicates**: when two nodes dial each other at once, both keep the connection dialed
//!   by the smaller node ID and close the other.
//! - **Joining**: a client without a certificate may only ask to join (the head's
//!   [`Admission`] decides); any other stream it opens closes its connection.
//! - **Objects**: [`Transport::fetch`] pulls an object's bytes from a holder on a stream of
//!   their own, at lower priority than control streams, into whatever sink the caller gives.
//!
//! What messages mean is the node's business: frames are opaque here.

use crate::NetError;
use crate::admission::{Admission, StoredToken};
use crate::faults::{Faults, Injector, RpcPoint};
use crate::identity::{CaPin, ClusterCa, Credentials, HEAD_DNS_NAME, JoinToken, NodeKey};
use crate::tls::{self, LinkTimers};
use crate::wire::{
    self, DeployReply, DeployRequest, FetchReply, FetchRequest, Hello, JoinReply, JoinRequest,
    MAX_FRAME, MAX_MODULE, MAX_RPC_FRAME, ModuleReply, ModuleRequest, ResolveReply, ResolveRequest,
    StreamKind,
};
use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};
use wasmray_core::{ModuleId, NodeId, ObjectId};

/// Bytes of an object sent in one write.
const SEGMENT: usize = 8 << 20;
/// How long dialing a peer may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many connections without a certificate (joiners) at once.
const MAX_JOINERS: usize = 64;
/// A joiner must be done within this.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Close codes.
const CLOSE_DUPLICATE: u32 = 1;
const CLOSE_REFUSED: u32 = 2;
const CLOSE_SHUTDOWN: u32 = 3;
/// The peer was declared dead: it is refused for good.
const CLOSE_DEAD: u32 = 4;

/// What the node does with what arrives.
pub trait Handler: Send + Sync + 'static {
    /// One control frame from `from`, in the order `from` sent it.
    fn frame(&self, from: NodeId, frame: Vec<u8>);
    /// The bytes of this node's copy of `object`, for a peer's fetch (kept resident while
    /// the returned `Bytes` live).
    fn object_bytes(&self, object: ObjectId) -> Option<Bytes>;
    /// The name and bytes of a module this node has, for a peer that must run it.
    fn module_bytes(&self, module: ModuleId) -> Option<(String, Bytes)>;
    /// Makes `module` ready to run here (`wasmray deploy` from `from`): fetched from `from`
    /// unless this node has it, checked against its hash, compiled. Resolves to why not.
    fn prepare_module(&self, from: NodeId, module: ModuleId) -> PrepareModule;
    /// The connection to `peer` closed or was reset by the peer or the network (not by this
    /// node, and not as the loser of a duplicate pair): the peer may be gone.
    fn link_lost(&self, peer: NodeId);
    /// `peer` closed the connection because it holds this node dead (the head, after a
    /// partition): nothing this node sends counts any more.
    fn declared_dead_by(&self, peer: NodeId);
}

/// What [`Handler::prepare_module`] returns: resolves once the module is ready, or to why
/// it could not be made ready.
pub type PrepareModule =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// Where a node listens and how its links pace themselves.
#[derive(Debug, Clone, Copy)]
pub struct TransportConfig {
    pub listen: SocketAddr,
    pub timers: LinkTimers,
    /// The wasmray version this node says it runs ([`wire::VERSION`]; tests of version
    /// checks set another).
    pub version: &'static str,
    /// Faults to inject (tests and CI only; none by default).
    pub faults: Faults,
}

/// A node's endpoint and links. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node", &self.shared.me)
            .field("head", &self.shared.head())
            .finish_non_exhaustive()
    }
}

struct Shared {
    version: &'static str,
    me: NodeId,
    /// The head's node: it changes when a restarted head takes over ([`Transport::find_head`]).
    head: std::sync::atomic::AtomicU64,
    /// Where the head listens (a joined node's; `None` on the head).
    head_address: Option<SocketAddr>,
    pin: CaPin,
    ca: CertificateDer<'static>,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    handler: Mutex<Option<Weak<dyn Handler>>>,
    admission: Option<Mutex<Admission>>,
    /// The connection to each peer (the one kept, see the module doc).
    links: Mutex<HashMap<NodeId, Link>>,
    /// What is queued for each peer, and its control stream when no writer uses it.
    outboxes: Mutex<HashMap<NodeId, Arc<Outbox>>>,
    /// Where peers listen.
    directory: Mutex<HashMap<NodeId, SocketAddr>>,
    joiners: AtomicUsize,
    faults: Option<Injector>,
    /// Nodes declared dead: their certificates are refused at accept, for good.
    refused: Mutex<std::collections::HashSet<NodeId>>,
}

#[derive(Clone)]
struct Link {
    conn: quinn::Connection,
    dialer: NodeId,
}

/// What waits to be written to one peer, and its control stream while no writer holds it.
#[derive(Default)]
struct Outbox {
    state: Mutex<OutboxState>,
    /// Wakes the peer's writer task.
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct OutboxState {
    queue: Vec<u8>,
    /// How many leading bytes of `queue` finish a frame begun on `stream`.
    partial: usize,
    /// The open control stream (and its connection's ID), unless the writer holds it.
    stream: Option<(usize, quinn::SendStream)>,
}

/// What the writer takes to write.
struct Taken {
    batch: Vec<u8>,
    partial: usize,
    stream: Option<(usize, quinn::SendStream)>,
}

impl Outbox {
    /// Writes `frame` now if nothing is queued and the stream is idle; queues it otherwise.
    fn send(&self, frame: Vec<u8>) {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let polled = match (&mut state.stream, state.queue.is_empty()) {
            // One poll: QUIC takes what fits its buffers without waiting, or nothing.
            (Some((_, stream)), true) => Some(
                std::pin::pin!(stream.write(&frame)).poll(&mut Context::from_waker(Waker::noop())),
            ),
            _ => None,
        };
        match polled {
            Some(Poll::Ready(Ok(n))) if n == frame.len() => return,
            Some(Poll::Ready(Ok(n))) => {
                state.partial = frame.len() - n;
                state.queue.extend_from_slice(&frame[n..]);
            }
            Some(Poll::Ready(Err(_))) => {
                state.stream = None;
                state.queue.extend_from_slice(&frame);
            }
            Some(Poll::Pending) | None => state.queue.extend_from_slice(&frame),
        }
        drop(guard);
        self.wake.notify_one();
    }

    /// Everything queued, with the stream if idle; `None` if nothing is queued.
    fn take(&self) -> Option<Taken> {
        let mut state = lock(&self.state);
        if state.queue.is_empty() {
            return None;
        }
        Some(Taken {
            batch: std::mem::take(&mut state.queue),
            partial: std::mem::take(&mut state.partial),
            stream: state.stream.take(),
        })
    }

    /// The writer is done with the stream.
    fn give_back(&self, id: usize, stream: quinn::SendStream) {
        lock(&self.state).stream = Some((id, stream));
    }

    fn clear(&self) {
        let mut state = lock(&self.state);
        state.queue.clear();
        state.partial = 0;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bind_error(listen: SocketAddr, e: std::io::Error) -> NetError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        NetError::BadInput(format!(
            "port {} is in use on {}: pick another with --port (is a wasmray node already running there?)",
            listen.port(),
            listen.ip()
        ))
    } else {
        NetError::Io(format!("could not listen on {listen}: {e}"))
    }
}

/// Opens an RPC stream on `conn`: its kind byte and one framed `request`, the sending side
/// then finished (at `priority`, quinn's stream priority); the answer comes on the stream
/// returned.
async fn open_rpc<T: serde::Serialize>(
    conn: &quinn::Connection,
    kind: StreamKind,
    request: &T,
    priority: i32,
    faults: Option<&Injector>,
) -> Result<quinn::RecvStream, NetError> {
    if let Some(faults) = faults {
        faults.rpc(RpcPoint::BeforeSend)?;
    }
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| NetError::Stream(e.to_string()))?;
    if priority != 0 {
        let _ = send.set_priority(priority);
    }
    let mut bytes = vec![kind as u8];
    bytes.extend(wire::frame(request)?);
    send.write_all(&bytes)
        .await
        .map_err(|e| NetError::Stream(e.to_string()))?;
    let _ = send.finish();
    if let Some(faults) = faults {
        faults.rpc(RpcPoint::AfterSend)?;
    }
    Ok(recv)
}

impl Transport {
    /// The head's transport: a new cluster under `ca`, this node being `head`.
    pub fn start_head(
        config: TransportConfig,
        ca: ClusterCa,
        head: NodeId,
    ) -> Result<Self, NetError> {
        let credentials = ca.credentials(head, true)?;
        let server = tls::server_config(&credentials, config.timers)?;
        let endpoint = quinn::Endpoint::server(server, config.listen)
            .map_err(|e| bind_error(config.listen, e))?;
        let shared = Shared::new(
            &credentials,
            head,
            endpoint,
            config,
            Some(Admission::new(ca, head, config.version.to_owned())),
        )?;
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// Joins the cluster whose head listens at `head_address`, checking it against `pin` and
    /// proving `token`; the node's ID comes from the head.
    pub async fn join(
        config: TransportConfig,
        head_address: SocketAddr,
        pin: CaPin,
        token: &JoinToken,
    ) -> Result<Self, NetError> {
        let endpoint =
            quinn::Endpoint::client(config.listen).map_err(|e| bind_error(config.listen, e))?;
        let key = NodeKey::generate()?;
        let request = JoinRequest {
            version: config.version.to_owned(),
            token_id: token.id.clone(),
            secret: token.secret.clone(),
            public_key: key.public().0,
            proof: key.sign(token.id.as_bytes())?,
        };
        let join_config = tls::join_client_config(pin, config.timers)?;
        let reply = tokio::time::timeout(
            DIAL_TIMEOUT,
            ask_to_join(&endpoint, join_config, head_address, &request),
        )
        .await
        .map_err(|_| no_head(head_address, "it did not answer"))??;
        let (node, head, cert, ca) = match reply {
            JoinReply::Admitted {
                node,
                head,
                cert,
                ca,
            } => (node, head, cert, ca),
            JoinReply::Refused(why) => return Err(NetError::Refused(why)),
        };
        let ca = CertificateDer::from(ca);
        if CaPin::of(&ca) != pin {
            return Err(NetError::Refused(
                "the head sent a CA that does not match the pin".into(),
            ));
        }
        let credentials = Credentials::new(node, CertificateDer::from(cert), ca, key);
        endpoint.set_server_config(Some(tls::server_config(&credentials, config.timers)?));
        let mut shared = Shared::new(&credentials, head, endpoint, config, None)?;
        shared.head_address = Some(head_address);
        lock(&shared.directory).insert(head, head_address);
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// Starts taking connections; what arrives goes to `handler` (held weakly: the node owns
    /// the transport, not the other way round).
    pub fn serve(&self, handler: Weak<dyn Handler>) {
        *lock(&self.shared.handler) = Some(handler);
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            while let Some(incoming) = shared.endpoint.accept().await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Err(e) = shared.take_connection(incoming).await {
                        tracing::debug!("incoming connection: {e}");
                    }
                });
            }
        });
    }

    pub fn node(&self) -> NodeId {
        self.shared.me
    }

    pub fn head(&self) -> NodeId {
        self.shared.head()
    }

    /// A joined node whose head stopped answering: dials the head's address again, expecting
    /// whoever holds the cluster's head certificate, and returns that head's node (a new
    /// one if the head was restarted, which from then on is the one [`Transport::head`]
    /// names and frames for the head go to).
    pub async fn find_head(&self) -> Result<NodeId, NetError> {
        let shared = &self.shared;
        let address = shared
            .head_address
            .ok_or_else(|| NetError::BadInput("the head does not look for itself".into()))?;
        let connecting = shared
            .endpoint
            .connect_with(shared.client.clone(), address, HEAD_DNS_NAME)
            .map_err(|e| NetError::Unreachable(format!("the head at {address}: {e}")))?;
        let conn = tokio::time::timeout(DIAL_TIMEOUT, connecting)
            .await
            .map_err(|_| NetError::Unreachable(format!("the head at {address} did not answer")))?
            .map_err(|e| NetError::Unreachable(format!("the head at {address}: {e}")))?;
        let head = conn
            .peer_identity()
            .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|chain| chain.first().and_then(tls::node_of_certificate))
            .ok_or_else(|| NetError::Refused("the head's certificate names no node".into()))?;
        lock(&shared.directory).insert(head, address);
        shared.head.store(head.0, Ordering::SeqCst);
        shared.keep(head, shared.me, conn);
        Ok(head)
    }

    /// The CA pin of this node's cluster.
    pub fn pin(&self) -> CaPin {
        self.shared.pin
    }

    /// The cluster CA's certificate.
    pub fn ca_cert(&self) -> CertificateDer<'static> {
        self.shared.ca.clone()
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.shared
            .endpoint
            .local_addr()
            .map_err(|e| NetError::Io(e.to_string()))
    }

    /// A new join token (the head only), valid for `ttl` (for the head's life without one).
    pub fn add_token(&self, ttl: Option<Duration>) -> Result<JoinToken, NetError> {
        lock(self.admission()?).add_token(ttl, SystemTime::now())
    }

    fn admission(&self) -> Result<&Mutex<Admission>, NetError> {
        self.shared
            .admission
            .as_ref()
            .ok_or_else(|| NetError::BadInput("only the head issues join tokens".into()))
    }

    /// The head only: the join tokens issued, and the CA's key and certificate, for the
    /// head's store.
    pub fn identity(&self) -> Result<(String, Vec<u8>, Vec<StoredToken>), NetError> {
        let admission = lock(self.admission()?);
        let ca = admission.ca();
        Ok((ca.key_pem(), ca.cert_der().to_vec(), admission.tokens()))
    }

    /// `node` was declared dead: its connection is closed and its certificate refused from
    /// now on (a node back from a partition must join again as a new node).
    pub fn refuse(&self, node: NodeId) {
        lock(&self.shared.refused).insert(node);
        if let Some(link) = lock(&self.shared.links).remove(&node) {
            link.conn
                .close(CLOSE_DEAD.into(), b"this node was declared dead");
        }
    }

    /// The head only: takes back the tokens a previous head of this cluster issued.
    pub fn restore_tokens(&self, tokens: &[StoredToken]) -> Result<(), NetError> {
        lock(self.admission()?).restore_tokens(tokens);
        Ok(())
    }

    /// Sends `frame` (as [`wire::finish_frame`] made it) to `to`. Never waits: when nothing
    /// is queued and the peer's control stream is idle, the frame is written at once (no task
    /// is woken but QUIC's own); otherwise it is queued for the peer's writer task.
    pub fn send(&self, to: NodeId, frame: Vec<u8>) {
        if self
            .shared
            .faults
            .as_ref()
            .is_some_and(Injector::drop_outgoing)
        {
            return;
        }
        let outbox = {
            let mut outboxes = lock(&self.shared.outboxes);
            match outboxes.get(&to) {
                Some(outbox) => Arc::clone(outbox),
                None => {
                    let outbox = Arc::new(Outbox::default());
                    outboxes.insert(to, Arc::clone(&outbox));
                    let shared = Arc::clone(&self.shared);
                    let writer = Arc::clone(&outbox);
                    tokio::spawn(async move { shared.write_loop(to, writer).await });
                    outbox
                }
            }
        };
        outbox.send(frame);
    }

    /// Pulls the `len` bytes of `object` from `from` and gives them to `sink` piece by piece.
    pub async fn fetch(
        &self,
        from: NodeId,
        object: ObjectId,
        len: u64,
        mut sink: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), NetError> {
        let conn = self.shared.connection(from).await?;
        let request = FetchRequest { object, len };
        let faults = self.shared.faults.as_ref();
        let mut recv = open_rpc(&conn, StreamKind::Fetch, &request, -1, faults).await?;
        match wire::read_value::<FetchReply>(&mut recv, MAX_RPC_FRAME).await? {
            FetchReply::Missing => {
                return Err(NetError::Missing(format!(
                    "node {from} no longer holds {object:?}"
                )));
            }
            FetchReply::Sending { len: sent } if sent != len => {
                return Err(NetError::Decode(format!(
                    "node {from} sends {sent} bytes of {object:?}, not the {len} it offered"
                )));
            }
            FetchReply::Sending { .. } => {}
        }
        let mut got = 0u64;
        while got < len {
            let chunk = recv
                .read_chunk(SEGMENT, true)
                .await
                .map_err(|e| NetError::Stream(e.to_string()))?
                .ok_or_else(|| {
                    NetError::Stream(format!("node {from} stopped after {got} of {len} bytes"))
                })?;
            let take = chunk.bytes.len().min((len - got) as usize);
            sink(&chunk.bytes[..take]).map_err(NetError::Sink)?;
            got += take as u64;
        }
        self.shared.after_reply()
    }

    /// Fetches a module's name and bytes from `from`; the caller checks them against the
    /// hash. `None` if `from` does not have it.
    pub async fn fetch_module(
        &self,
        from: NodeId,
        module: ModuleId,
    ) -> Result<Option<(String, Vec<u8>)>, NetError> {
        let conn = self.shared.connection(from).await?;
        let faults = self.shared.faults.as_ref();
        let request = ModuleRequest { module };
        let mut recv = open_rpc(&conn, StreamKind::Module, &request, 0, faults).await?;
        let reply: ModuleReply = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
        let Some((name, len)) = reply.found else {
            return Ok(None);
        };
        if len > MAX_MODULE {
            return Err(NetError::Decode(format!(
                "node {from} offers a module of {len} bytes, above the limit of {MAX_MODULE}"
            )));
        }
        // Grown as bytes arrive (a peer's claimed length is only checked against the limit).
        let mut bytes = Vec::with_capacity((len as usize).min(SEGMENT));
        while (bytes.len() as u64) < len {
            let chunk = recv
                .read_chunk((len as usize) - bytes.len(), true)
                .await
                .map_err(|e| NetError::Stream(e.to_string()))?
                .ok_or_else(|| NetError::Stream(format!("node {from} sent a short module")))?;
            bytes.extend_from_slice(&chunk.bytes);
        }
        self.shared.after_reply()?;
        Ok(Some((name, bytes)))
    }

    /// Asks `to` to have `module` ready to run (it fetches the module from this node unless
    /// it has it): `Ok` once it is, `Err` with why not.
    pub async fn deploy(&self, to: NodeId, module: ModuleId) -> Result<(), NetError> {
        let conn = self.shared.connection(to).await?;
        let faults = self.shared.faults.as_ref();
        let request = DeployRequest { module };
        let mut recv = open_rpc(&conn, StreamKind::Deploy, &request, 0, faults).await?;
        let reply: DeployReply = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
        self.shared.after_reply()?;
        match reply.error {
            None => Ok(()),
            Some(error) => Err(NetError::NotReady(error)),
        }
    }

    /// Where each peer this node knows listens.
    pub fn peers(&self) -> Vec<(NodeId, SocketAddr)> {
        let mut peers: Vec<_> = lock(&self.shared.directory)
            .iter()
            .map(|(n, a)| (*n, *a))
            .collect();
        peers.sort();
        peers
    }

    /// Closes every link and the endpoint; waits (briefly) for the peers to hear of it.
    pub async fn close(&self) {
        self.shared
            .endpoint
            .close(CLOSE_SHUTDOWN.into(), b"the node is shutting down");
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.shared.endpoint.wait_idle()).await;
    }
}

/// The kind byte a stream starts with.
async fn read_kind(recv: &mut quinn::RecvStream) -> Result<u8, NetError> {
    let mut kind = [0u8; 1];
    recv.read_exact(&mut kind)
        .await
        .map_err(|e| NetError::Stream(e.to_string()))?;
    Ok(kind[0])
}

fn no_head(address: SocketAddr, why: &str) -> NetError {
    NetError::Unreachable(format!(
        "no wasmray head at {address}: {why} (is the head running, and is this its address and port?)"
    ))
}

async fn ask_to_join(
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    head: SocketAddr,
    request: &JoinRequest,
) -> Result<JoinReply, NetError> {
    let connecting = endpoint
        .connect_with(config, head, HEAD_DNS_NAME)
        .map_err(|e| no_head(head, &e.to_string()))?;
    let conn = connecting.await.map_err(|e| match e {
        quinn::ConnectionError::TransportError(ref t)
            if t.to_string().contains("pin") || t.to_string().contains("certificate") =>
        {
            NetError::Refused(format!("the node at {head} is not the head you named: {t}"))
        }
        quinn::ConnectionError::TimedOut => no_head(head, "it did not answer"),
        other => no_head(head, &other.to_string()),
    })?;
    // Never a fault here: a node that cannot join is not one the runtime survives.
    let reply = match open_rpc(&conn, StreamKind::Join, request, 0, None).await {
        Ok(mut recv) => wire::read_value::<JoinReply>(&mut recv, MAX_RPC_FRAME).await,
        Err(e) => Err(e),
    };
    conn.close(0u32.into(), b"joined");
    reply
}

impl Shared {
    fn new(
        credentials: &Credentials,
        head: NodeId,
        endpoint: quinn::Endpoint,
        config: TransportConfig,
        admission: Option<Admission>,
    ) -> Result<Self, NetError> {
        let timers = config.timers;
        Ok(Self {
            version: config.version,
            me: credentials.node(),
            head: std::sync::atomic::AtomicU64::new(head.0),
            head_address: None,
            pin: credentials.ca_pin(),
            ca: credentials.ca().clone(),
            client: tls::client_config(credentials, timers)?,
            endpoint,
            handler: Mutex::new(None),
            admission: admission.map(Mutex::new),
            links: Mutex::new(HashMap::new()),
            outboxes: Mutex::new(HashMap::new()),
            directory: Mutex::new(HashMap::new()),
            joiners: AtomicUsize::new(0),
            refused: Mutex::new(std::collections::HashSet::new()),
            faults: config
                .faults
                .any()
                .then(|| Injector::new(config.faults, credentials.node().0)),
        })
    }

    fn handler(&self) -> Option<Arc<dyn Handler>> {
        lock(&self.handler).as_ref().and_then(Weak::upgrade)
    }

    fn head(&self) -> NodeId {
        NodeId(self.head.load(Ordering::SeqCst))
    }

    /// An injected fault after an RPC's reply came, if one is due.
    fn after_reply(&self) -> Result<(), NetError> {
        match &self.faults {
            Some(faults) => faults.rpc(RpcPoint::AfterReply),
            None => Ok(()),
        }
    }

    /// The connection to `peer`, dialing it if there is none.
    async fn connection(self: &Arc<Self>, peer: NodeId) -> Result<quinn::Connection, NetError> {
        if let Some(link) = lock(&self.links).get(&peer)
            && link.conn.close_reason().is_none()
        {
            return Ok(link.conn.clone());
        }
        let address = self.address_of(peer).await?;
        let name = crate::node_dns_name(peer);
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), address, &name)
            .map_err(|e| NetError::Unreachable(format!("node {peer} at {address}: {e}")))?;
        let conn = tokio::time::timeout(DIAL_TIMEOUT, connecting)
            .await
            .map_err(|_| NetError::Unreachable(format!("node {peer} at {address} did not answer")))?
            .map_err(|e| NetError::Unreachable(format!("node {peer} at {address}: {e}")))?;
        Ok(self.keep(peer, self.me, conn))
    }

    /// Where `peer` listens: known already, or asked of the head.
    async fn address_of(self: &Arc<Self>, peer: NodeId) -> Result<SocketAddr, NetError> {
        if let Some(address) = lock(&self.directory).get(&peer) {
            return Ok(*address);
        }
        let head = self.head();
        if peer == head || self.me == head {
            return Err(NetError::Unreachable(format!(
                "the address of node {peer} is not known"
            )));
        }
        let conn = Box::pin(self.connection(head)).await?;
        let request = ResolveRequest { node: peer };
        let faults = self.faults.as_ref();
        let mut recv = open_rpc(&conn, StreamKind::Resolve, &request, 0, faults).await?;
        let reply: ResolveReply = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
        self.after_reply()?;
        let address: SocketAddr = reply
            .address
            .ok_or_else(|| NetError::Unreachable(format!("the head does not know node {peer}")))?
            .parse()
            .map_err(|_| NetError::Decode("the head sent a bad address".into()))?;
        lock(&self.directory).insert(peer, address);
        Ok(address)
    }

    /// Keeps `conn` as the link to `peer` unless a better one is there (the one dialed by the
    /// smaller node ID); returns the link kept, and serves `conn` either way until it closes.
    fn keep(
        self: &Arc<Self>,
        peer: NodeId,
        dialer: NodeId,
        conn: quinn::Connection,
    ) -> quinn::Connection {
        let preferred = peer.min(self.me);
        let kept = {
            let mut links = lock(&self.links);
            match links.get(&peer) {
                Some(old)
                    if old.conn.close_reason().is_none()
                        && (old.dialer == preferred || dialer != preferred) =>
                {
                    if old.conn.stable_id() != conn.stable_id() {
                        conn.close(CLOSE_DUPLICATE.into(), b"duplicate connection");
                    }
                    old.conn.clone()
                }
                old => {
                    if let Some(old) = old
                        && old.conn.stable_id() != conn.stable_id()
                    {
                        old.conn
                            .close(CLOSE_DUPLICATE.into(), b"duplicate connection");
                    }
                    links.insert(
                        peer,
                        Link {
                            conn: conn.clone(),
                            dialer,
                        },
                    );
                    conn.clone()
                }
            }
        };
        let shared = Arc::clone(self);
        tokio::spawn(async move { shared.serve_connection(peer, conn).await });
        kept
    }

    async fn take_connection(self: &Arc<Self>, incoming: quinn::Incoming) -> Result<(), NetError> {
        let conn = incoming
            .await
            .map_err(|e| NetError::Stream(e.to_string()))?;
        let peer = conn
            .peer_identity()
            .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|chain| chain.first().and_then(tls::node_of_certificate));
        match peer {
            Some(peer) if lock(&self.refused).contains(&peer) => {
                conn.close(
                    CLOSE_DEAD.into(),
                    b"this node was declared dead: start it again to join as a new node",
                );
                Ok(())
            }
            Some(peer) => {
                lock(&self.directory).insert(peer, conn.remote_address());
                self.keep(peer, peer, conn);
                Ok(())
            }
            None => self.serve_joiner(conn).await,
        }
    }

    /// A connection without a certificate: one join request, nothing else.
    async fn serve_joiner(self: &Arc<Self>, conn: quinn::Connection) -> Result<(), NetError> {
        let Some(admission) = &self.admission else {
            conn.close(
                CLOSE_REFUSED.into(),
                b"not the head: only the head admits nodes",
            );
            return Ok(());
        };
        if self.joiners.fetch_add(1, Ordering::SeqCst) >= MAX_JOINERS {
            self.joiners.fetch_sub(1, Ordering::SeqCst);
            conn.close(CLOSE_REFUSED.into(), b"too many nodes joining at once");
            return Ok(());
        }
        let result = tokio::time::timeout(JOIN_TIMEOUT, async {
            let (mut send, mut recv) = conn
                .accept_bi()
                .await
                .map_err(|e| NetError::Stream(e.to_string()))?;
            let mut kind = [0u8; 1];
            recv.read_exact(&mut kind)
                .await
                .map_err(|e| NetError::Stream(e.to_string()))?;
            if StreamKind::from_byte(kind[0]) != Some(StreamKind::Join) {
                conn.close(
                    CLOSE_REFUSED.into(),
                    b"a node without the cluster's certificate may only join",
                );
                return Err(NetError::Refused(
                    "a stream other than a join from a joiner".into(),
                ));
            }
            let request: JoinRequest = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
            let reply = lock(admission).admit(&request, SystemTime::now());
            if let JoinReply::Admitted { node, .. } = &reply {
                lock(&self.directory).insert(*node, conn.remote_address());
                tracing::info!(%node, address = %conn.remote_address(), "node admitted");
            }
            send.write_all(&wire::frame(&reply)?)
                .await
                .map_err(|e| NetError::Stream(e.to_string()))?;
            let _ = send.finish();
            let _ = send.stopped().await;
            Ok(())
        })
        .await;
        self.joiners.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(result) => result,
            Err(_) => {
                conn.close(CLOSE_REFUSED.into(), b"join timed out");
                Err(NetError::Refused("a joiner took too long".into()))
            }
        }
    }

    /// Serves a checked peer's streams until its connection closes.
    async fn serve_connection(self: Arc<Self>, peer: NodeId, conn: quinn::Connection) {
        let uni = {
            let shared = Arc::clone(&self);
            let conn = conn.clone();
            tokio::spawn(async move {
                while let Ok(recv) = conn.accept_uni().await {
                    let shared = Arc::clone(&shared);
                    let conn = conn.clone();
                    tokio::spawn(async move {
                        if let Err(e) = shared.read_control(peer, recv).await {
                            tracing::debug!(%peer, "control stream: {e}");
                            if matches!(e, NetError::Refused(_)) {
                                conn.close(CLOSE_REFUSED.into(), e.to_string().as_bytes());
                            }
                        }
                    });
                }
            })
        };
        while let Ok((send, recv)) = conn.accept_bi().await {
            let shared = Arc::clone(&self);
            tokio::spawn(async move {
                if let Err(e) = shared.answer_rpc(peer, send, recv).await {
                    tracing::debug!(%peer, "rpc: {e}");
                }
            });
        }
        uni.abort();
        let was_current = {
            let mut links = lock(&self.links);
            let current = links
                .get(&peer)
                .is_some_and(|l| l.conn.stable_id() == conn.stable_id());
            if current {
                links.remove(&peer);
            }
            current
        };
        let reason = conn.close_reason();
        if let Some(quinn::ConnectionError::ApplicationClosed(close)) = &reason
            && close.error_code == CLOSE_DEAD.into()
            && let Some(handler) = self.handler()
        {
            handler.declared_dead_by(peer);
            return;
        }
        let lost = match reason {
            Some(quinn::ConnectionError::LocallyClosed) | None => false,
            Some(quinn::ConnectionError::ApplicationClosed(close)) => {
                close.error_code != CLOSE_DUPLICATE.into()
            }
            Some(_) => true,
        };
        if was_current
            && lost
            && let Some(handler) = self.handler()
        {
            handler.link_lost(peer);
        }
    }

    async fn read_control(
        &self,
        peer: NodeId,
        mut recv: quinn::RecvStream,
    ) -> Result<(), NetError> {
        let kind = read_kind(&mut recv).await?;
        if StreamKind::from_byte(kind) != Some(StreamKind::Control) {
            return Err(NetError::Refused(format!("unknown stream kind {kind}")));
        }
        let hello: Hello = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
        if hello.version != self.version {
            return Err(NetError::Refused(format!(
                "node {peer} runs wasmray {} and this node {}",
                hello.version, self.version
            )));
        }
        if hello.node != peer {
            return Err(NetError::Refused(format!(
                "node {peer} said it was node {}",
                hello.node
            )));
        }
        while let Some(frame) = wire::read_frame(&mut recv, MAX_FRAME).await? {
            let Some(handler) = self.handler() else {
                return Ok(());
            };
            if let Some(faults) = &self.faults {
                if faults.drop_arriving() {
                    continue;
                }
                let delay = faults.delay();
                if !delay.is_zero() {
                    // Held back: later frames may overtake it (the link layer reorders).
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        handler.frame(peer, frame);
                    });
                    continue;
                }
            }
            handler.frame(peer, frame);
        }
        Ok(())
    }

    async fn answer_rpc(
        &self,
        peer: NodeId,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> Result<(), NetError> {
        let kind = read_kind(&mut recv).await?;
        let stream = |e: quinn::WriteError| NetError::Stream(e.to_string());
        match StreamKind::from_byte(kind) {
            Some(StreamKind::Fetch) => {
                let request: FetchRequest = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
                let bytes = self
                    .handler()
                    .and_then(|h| h.object_bytes(request.object))
                    .filter(|b| b.len() as u64 == request.len);
                let _ = send.set_priority(-1);
                let Some(bytes) = bytes else {
                    send.write_all(&wire::frame(&FetchReply::Missing)?)
                        .await
                        .map_err(stream)?;
                    let _ = send.finish();
                    return Ok(());
                };
                send.write_all(&wire::frame(&FetchReply::Sending {
                    len: bytes.len() as u64,
                })?)
                .await
                .map_err(stream)?;
                let mut at = 0;
                while at < bytes.len() {
                    let end = (at + SEGMENT).min(bytes.len());
                    send.write_chunk(bytes.slice(at..end))
                        .await
                        .map_err(stream)?;
                    at = end;
                }
                let _ = send.finish();
                let _ = send.stopped().await;
                Ok(())
            }
            Some(StreamKind::Module) => {
                let request: ModuleRequest = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
                let found = self.handler().and_then(|h| h.module_bytes(request.module));
                let reply = ModuleReply {
                    found: found
                        .as_ref()
                        .map(|(name, bytes)| (name.clone(), bytes.len() as u64)),
                };
                send.write_all(&wire::frame(&reply)?)
                    .await
                    .map_err(stream)?;
                if let Some((_, bytes)) = found {
                    send.write_chunk(bytes).await.map_err(stream)?;
                }
                let _ = send.finish();
                let _ = send.stopped().await;
                Ok(())
            }
            Some(StreamKind::Deploy) => {
                let request: DeployRequest = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
                let prepared = match self.handler() {
                    Some(handler) => handler.prepare_module(peer, request.module).await,
                    None => Err("the node is shutting down".to_owned()),
                };
                let reply = DeployReply {
                    error: prepared.err(),
                };
                send.write_all(&wire::frame(&reply)?)
                    .await
                    .map_err(stream)?;
                let _ = send.finish();
                let _ = send.stopped().await;
                Ok(())
            }
            Some(StreamKind::Resolve) => {
                let request: ResolveRequest = wire::read_value(&mut recv, MAX_RPC_FRAME).await?;
                let address = lock(&self.directory)
                    .get(&request.node)
                    .map(|a| a.to_string());
                send.write_all(&wire::frame(&ResolveReply { address })?)
                    .await
                    .map_err(stream)?;
                let _ = send.finish();
                Ok(())
            }
            _ => Err(NetError::Refused(format!(
                "node {peer} opened a stream of unknown kind {kind}"
            ))),
        }
    }

    /// Writes what is queued for `peer`, dialing and re-dialing as needed.
    async fn write_loop(self: Arc<Self>, peer: NodeId, outbox: Arc<Outbox>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            outbox.wake.notified().await;
            while let Some(Taken {
                batch,
                partial,
                stream,
            }) = outbox.take()
            {
                let (id, mut send, skip) = match stream {
                    Some((id, send)) if self.is_current(peer, id) => (id, send, 0),
                    // The rest of a frame cut short belongs to the old stream: a new stream
                    // starts with a whole frame.
                    _ => match self.open_control(peer).await {
                        Ok((id, send)) => {
                            backoff = Duration::from_millis(50);
                            (id, send, partial)
                        }
                        Err(e) => {
                            tracing::debug!(%peer, "link down: {e}; dropping what was queued");
                            outbox.clear();
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            continue;
                        }
                    },
                };
                match send.write_all(&batch[skip..]).await {
                    Ok(()) => outbox.give_back(id, send),
                    // Lost with the link: the scheduler's link layer resends its envelopes.
                    Err(e) => tracing::debug!(%peer, "write failed: {e}"),
                }
            }
        }
    }

    fn is_current(&self, peer: NodeId, stable_id: usize) -> bool {
        lock(&self.links)
            .get(&peer)
            .is_some_and(|l| l.conn.stable_id() == stable_id && l.conn.close_reason().is_none())
    }

    async fn open_control(
        self: &Arc<Self>,
        peer: NodeId,
    ) -> Result<(usize, quinn::SendStream), NetError> {
        let conn = self.connection(peer).await?;
        let mut send = conn
            .open_uni()
            .await
            .map_err(|e| NetError::Stream(e.to_string()))?;
        let mut hello = vec![StreamKind::Control as u8];
        hello.extend(wire::frame(&Hello {
            version: self.version.to_owned(),
            node: self.me,
        })?);
        send.write_all(&hello)
            .await
            .map_err(|e| NetError::Stream(e.to_string()))?;
        Ok((conn.stable_id(), send))
    }
}
