//! wasmray's cluster transport: the links between nodes, and who may have one.
//!
//! - `identity.rs`: the cluster CA, node certificates, the CA pin, join tokens.
//! - `admission.rs`: the head's decision on a join.
//! - `tls.rs`: mutual-TLS configurations (TLS 1.3, ALPN `wasmray/1`) and peer names.
//! - `wire.rs`: stream kinds, frames, the RPCs' requests and answers.
//! - `transport.rs`: the endpoint, one connection per peer, control streams, fetches.
//! - `faults.rs`: faults injected on purpose (tests and CI): dropped frames, failed RPCs,
//!   delays.
//!
//! Frames are opaque here: the node encodes its scheduler's envelopes. No scheduling, store or
//! wasm knowledge lives in this crate (DESIGN §8, "transport" and "security").

mod admission;
mod faults;
mod identity;
mod tls;
mod transport;
#[cfg(test)]
mod transport_tests;
pub mod wire;

pub use admission::{Admission, StoredToken};
pub use faults::{FAULTS_ENV, Faults};
pub use identity::{
    CaPin, ClusterCa, Credentials, HEAD_DNS_NAME, JoinToken, NODE_CERT_VALIDITY, NodeKey,
    NodePublicKey, node_dns_name,
};
pub use tls::{ALPN, LinkTimers, node_of_certificate};
pub use transport::{Handler, PrepareModule, Transport, TransportConfig};

/// What can go wrong on a link.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("stream: {0}")]
    Stream(String),
    #[error("bad frame from a peer: {0}")]
    Decode(String),
    #[error("could not encode a frame: {0}")]
    Encode(String),
    #[error("{0}")]
    Missing(String),
    /// A peer could not make a module ready (`deploy`): its own words.
    #[error("{0}")]
    NotReady(String),
    #[error("the receiving store: {0}")]
    Sink(String),
    #[error("i/o: {0}")]
    Io(String),
    #[error("tls: {0}")]
    Crypto(String),
}

impl From<rcgen::Error> for NetError {
    fn from(e: rcgen::Error) -> Self {
        NetError::Crypto(e.to_string())
    }
}

impl From<rustls::Error> for NetError {
    fn from(e: rustls::Error) -> Self {
        NetError::Crypto(e.to_string())
    }
}
