//! The transport on loopback: joining (and each refusal), frames between members found
//! through the head, fetches, and a client without the cluster's certificate.

use crate::wire::{self, StreamKind};
use crate::{CaPin, ClusterCa, Handler, JoinToken, NetError, Transport, TransportConfig};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use wasmray_core::{NodeId, ObjectId, TaskId};

struct Recorder {
    frames: mpsc::UnboundedSender<(NodeId, Vec<u8>)>,
    objects: Mutex<Vec<(ObjectId, Bytes)>>,
    lost: Mutex<Vec<NodeId>>,
}

impl Handler for Recorder {
    fn frame(&self, from: NodeId, frame: Vec<u8>) {
        let _ = self.frames.send((from, frame));
    }

    fn object_bytes(&self, object: ObjectId) -> Option<Bytes> {
        let objects = self.objects.lock().unwrap();
        objects
            .iter()
            .find(|(id, _)| *id == object)
            .map(|(_, b)| b.clone())
    }

    fn module_bytes(&self, module: wasmray_core::ModuleId) -> Option<(String, Bytes)> {
        (module.0 == [7; 32]).then(|| ("seven.wasm".to_owned(), Bytes::from_static(b"\0asm7")))
    }

    fn prepare_module(&self, from: NodeId, module: wasmray_core::ModuleId) -> crate::PrepareModule {
        Box::pin(async move {
            if module.0 == [7; 32] {
                Ok(())
            } else {
                Err(format!("node {from} asked for a module nobody has"))
            }
        })
    }

    fn link_lost(&self, peer: NodeId) {
        self.lost.lock().unwrap().push(peer);
    }

    fn declared_dead_by(&self, _peer: NodeId) {}
}

fn config() -> TransportConfig {
    TransportConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        timers: Default::default(),
        version: wire::VERSION,
        faults: Default::default(),
    }
}

struct Member {
    transport: Transport,
    recorder: Arc<Recorder>,
    /// The transport holds its handler weakly; this is the strong reference.
    _handler: Arc<dyn Handler>,
    frames: mpsc::UnboundedReceiver<(NodeId, Vec<u8>)>,
}

fn member(transport: Transport) -> Member {
    let (tx, frames) = mpsc::unbounded_channel();
    let recorder = Arc::new(Recorder {
        frames: tx,
        objects: Mutex::new(Vec::new()),
        lost: Mutex::new(Vec::new()),
    });
    let handler: Arc<dyn Handler> = recorder.clone();
    transport.serve(Arc::downgrade(&handler));
    Member {
        transport,
        recorder,
        _handler: handler,
        frames,
    }
}

async fn cluster() -> (Member, JoinToken, CaPin, std::net::SocketAddr) {
    let head = Transport::start_head(config(), ClusterCa::generate().unwrap(), NodeId(1)).unwrap();
    let token = head.add_token(None).unwrap();
    let pin = head.pin();
    let address = head.local_addr().unwrap();
    (member(head), token, pin, address)
}

fn body(frame: &str) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    out.extend_from_slice(frame.as_bytes());
    wire::finish_frame(out).unwrap()
}

async fn next(member: &mut Member) -> (NodeId, String) {
    let (from, frame) = tokio::time::timeout(Duration::from_secs(10), member.frames.recv())
        .await
        .expect("a frame within 10 s")
        .unwrap();
    (from, String::from_utf8(frame).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_exchange_frames_in_order_and_fetch_bytes() {
    let (mut head, token, pin, address) = cluster().await;
    let mut a = member(
        Transport::join(config(), address, pin, &token)
            .await
            .unwrap(),
    );
    let mut b = member(
        Transport::join(config(), address, pin, &token)
            .await
            .unwrap(),
    );
    assert_ne!(a.transport.node(), b.transport.node());
    assert_eq!(a.transport.head(), NodeId(1));

    // A node finds another through the head, and frames keep their order.
    for i in 0..100 {
        a.transport.send(b.transport.node(), body(&format!("m{i}")));
    }
    for i in 0..100 {
        assert_eq!(next(&mut b).await, (a.transport.node(), format!("m{i}")));
    }
    b.transport.send(a.transport.node(), body("back"));
    assert_eq!(next(&mut a).await, (b.transport.node(), "back".to_owned()));
    b.transport.send(NodeId(1), body("to head"));
    assert_eq!(
        next(&mut head).await,
        (b.transport.node(), "to head".to_owned())
    );

    // A fetch streams an object's bytes; one the holder lacks is `Missing`.
    let object = TaskId((u128::from(b.transport.node().0) << 64) | 1).return_object(1);
    let bytes: Vec<u8> = (0..20 << 20).map(|i: u32| (i % 251) as u8).collect();
    b.recorder
        .objects
        .lock()
        .unwrap()
        .push((object, Bytes::from(bytes.clone())));
    let mut got = Vec::new();
    a.transport
        .fetch(b.transport.node(), object, bytes.len() as u64, |piece| {
            got.extend_from_slice(piece);
            Ok(())
        })
        .await
        .unwrap();
    assert!(got == bytes, "the fetched bytes differ");
    let missing = TaskId((u128::from(b.transport.node().0) << 64) | 2).return_object(1);
    let err = a
        .transport
        .fetch(b.transport.node(), missing, 10, |_| Ok(()))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Missing(_)), "{err}");

    // Modules travel by hash.
    let module = a
        .transport
        .fetch_module(b.transport.node(), wasmray_core::ModuleId([7; 32]))
        .await
        .unwrap();
    assert_eq!(module, Some(("seven.wasm".to_owned(), b"\0asm7".to_vec())));
    let none = a
        .transport
        .fetch_module(b.transport.node(), wasmray_core::ModuleId([8; 32]))
        .await
        .unwrap();
    assert_eq!(none, None);

    // A deploy is answered once the peer has the module ready, or with why not.
    let b_node = b.transport.node();
    a.transport
        .deploy(b_node, wasmray_core::ModuleId([7; 32]))
        .await
        .unwrap();
    let err = a
        .transport
        .deploy(b_node, wasmray_core::ModuleId([8; 32]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("a module nobody has"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_without_the_clusters_credentials_are_refused() {
    let (_head, token, pin, address) = cluster().await;
    // A wrong secret.
    let wrong: JoinToken = format!("{}.0000000000000000", token.id).parse().unwrap();
    let err = Transport::join(config(), address, pin, &wrong)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    // Another cluster's CA pin: the joiner refuses the head before sending its token.
    let other = ClusterCa::generate().unwrap().pin();
    let err = Transport::join(config(), address, other, &token)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pin"), "{err}");
    // Nobody there.
    let nobody = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let err = Transport::join(config(), nobody, pin, &token)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no wasmray head"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let head = Transport::start_head(config(), ClusterCa::generate().unwrap(), NodeId(1)).unwrap();
    let token = head.add_token(Some(Duration::from_millis(1))).unwrap();
    let _head = member(head.clone());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = Transport::join(config(), head.local_addr().unwrap(), head.pin(), &token)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

/// A client with no certificate (or one from another CA) gets no frame to any handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_cluster_certificate_reaches_no_handler() {
    let (mut head, _token, pin, address) = cluster().await;
    // No certificate: it passes the handshake (joiners must), but its control stream closes
    // the connection.
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = crate::tls::join_client_config(pin, Default::default()).unwrap();
    let conn = endpoint
        .connect_with(config, address, crate::HEAD_DNS_NAME)
        .unwrap()
        .await
        .unwrap();
    let mut send = conn.open_uni().await.unwrap();
    let mut bytes = vec![StreamKind::Control as u8];
    bytes.extend(
        wire::frame(&wire::Hello {
            version: wire::VERSION.into(),
            node: NodeId(1),
        })
        .unwrap(),
    );
    bytes.extend(body("forged"));
    let _ = send.write_all(&bytes).await;
    let _ = send.finish();
    let (mut s, _r) = conn.open_bi().await.unwrap();
    let _ = s.write_all(&[StreamKind::Resolve as u8]).await;
    let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap();
    assert!(reason.to_string().contains("may only join"), "{reason}");

    // A certificate from another CA (trusting the real one, so the refusal is the head's).
    let rogue = ClusterCa::generate()
        .unwrap()
        .credentials(NodeId(99), false)
        .unwrap();
    let rogue_config =
        crate::tls::client_config_trusting(&rogue, &head.transport.ca_cert(), Default::default())
            .unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let attempt = endpoint
        .connect_with(rogue_config, address, &crate::node_dns_name(NodeId(1)))
        .unwrap()
        .await;
    let refused = match attempt {
        Err(e) => e.to_string(),
        // In TLS 1.3 the client may finish before the server checks its certificate.
        Ok(conn) => tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .unwrap()
            .to_string(),
    };
    assert!(
        refused.contains("certificate") || refused.contains("CA"),
        "{refused}"
    );
    assert!(
        head.frames.try_recv().is_err(),
        "a forged frame reached the head's handler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_closes_its_end_is_reported_lost() {
    let (mut head, token, pin, address) = cluster().await;
    let a = member(
        Transport::join(config(), address, pin, &token)
            .await
            .unwrap(),
    );
    a.transport.send(NodeId(1), body("hello"));
    assert_eq!(
        next(&mut head).await,
        (a.transport.node(), "hello".to_owned())
    );
    assert!(head.recorder.lost.lock().unwrap().is_empty());
    a.transport.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while head.recorder.lost.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*head.recorder.lost.lock().unwrap(), [a.transport.node()]);
    // The side that closed does not report its own close.
    assert!(a.recorder.lost.lock().unwrap().is_empty());
}
