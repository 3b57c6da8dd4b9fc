//! TLS and QUIC configuration for the cluster's links: mutual TLS under the cluster CA,
//! TLS 1.3 only, ALPN `wasmray/1`.
//!
//! - A node's server accepts clients with a certificate of the CA, and clients with none —
//!   those may only ask to join (`transport.rs` refuses anything else before reading it).
//! - A node dials another with its own certificate and checks the peer's against the CA and
//!   the peer's node name ([`crate::node_dns_name`]), so a dialer always knows who answered.
//! - A joiner has no certificate yet and no CA: it checks the head's chain against the CA pin
//!   it was given ([`PinnedCa`]), then the head's certificate against that CA.
//!
//! This file builds configurations and checks names; it does no I/O.

use crate::NetError;
use crate::identity::{CaPin, Credentials, node_dns_name};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use wasmray_core::NodeId;

/// The application protocol every link speaks.
pub const ALPN: &[u8] = b"wasmray/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| NetError::Crypto(format!("the cluster CA certificate is unusable: {e}")))?;
    Ok(Arc::new(roots))
}

/// QUIC's pacing for cluster links: many streams (one per RPC; `open_bi` waits silently at
/// the limit), windows large enough for a link's bandwidth-delay product at ~1 GB/s.
fn transport_config(keep_alive: Duration, idle: Duration) -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config
        .max_concurrent_bidi_streams(10_000u32.into())
        .max_concurrent_uni_streams(1_000u32.into())
        .stream_receive_window((32u32 << 20).into())
        .receive_window((128u32 << 20).into())
        .send_window(128 << 20)
        .keep_alive_interval(Some(keep_alive));
    // An idle timeout above the keep-alive, so a live peer's link never times out.
    if let Ok(idle) = quinn::IdleTimeout::try_from(idle) {
        config.max_idle_timeout(Some(idle));
    }
    Arc::new(config)
}

/// How long a silent link stays open, and how often a link with nothing to say pings.
#[derive(Debug, Clone, Copy)]
pub struct LinkTimers {
    pub keep_alive: Duration,
    pub idle: Duration,
}

impl Default for LinkTimers {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(2),
            idle: Duration::from_secs(20),
        }
    }
}

/// The server side of a node's endpoint.
pub fn server_config(
    credentials: &Credentials,
    timers: LinkTimers,
) -> Result<quinn::ServerConfig, NetError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(credentials.ca())?,
        provider(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| NetError::Crypto(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(credentials.chain(), credentials.private_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| NetError::Crypto(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config(timers.keep_alive, timers.idle));
    Ok(config)
}

/// The client side for dialing other members: our certificate, the CA as the only root.
pub fn client_config(
    credentials: &Credentials,
    timers: LinkTimers,
) -> Result<quinn::ClientConfig, NetError> {
    client_config_trusting(credentials, credentials.ca(), timers)
}

/// A client presenting `credentials` that trusts `ca` (the same CA but in tests).
pub(crate) fn client_config_trusting(
    credentials: &Credentials,
    ca: &CertificateDer<'static>,
    timers: LinkTimers,
) -> Result<quinn::ClientConfig, NetError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(credentials.chain(), credentials.private_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    finish_client(tls, timers)
}

/// The client side for joining: no certificate; the head is checked against `pin`.
pub fn join_client_config(pin: CaPin, timers: LinkTimers) -> Result<quinn::ClientConfig, NetError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa { pin }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    finish_client(tls, timers)
}

fn finish_client(
    tls: rustls::ClientConfig,
    timers: LinkTimers,
) -> Result<quinn::ClientConfig, NetError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| NetError::Crypto(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport_config(timers.keep_alive, timers.idle));
    Ok(config)
}

/// Checks a server's chain against a pinned CA: the CA certificate the server presents must
/// hash to the pin, and the server's certificate must be valid under it for the name dialed.
#[derive(Debug)]
struct PinnedCa {
    pin: CaPin,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|cert| CaPin::of(cert) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the head's CA does not match the pin {} (is this the cluster you meant, and the pin its head printed?)",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The node a peer's certificate names (its chain was already checked against the CA by the
/// handshake). Certificates name exactly one node: `n<16 hex>.wasmray`.
pub fn node_of_certificate(cert: &CertificateDer<'_>) -> Option<NodeId> {
    let end_entity = webpki::EndEntityCert::try_from(cert).ok()?;
    let der: &[u8] = cert.as_ref();
    // Find the candidate names in the DER, then let webpki say which one is a subject name.
    const SUFFIX: &[u8] = b".wasmray";
    let mut found = None;
    for start in 0..der.len().saturating_sub(17 + SUFFIX.len() - 1) {
        let candidate = &der[start..start + 17];
        if candidate[0] != b'n'
            || !candidate[1..].iter().all(|b| b.is_ascii_hexdigit())
            || der.get(start + 17..start + 17 + SUFFIX.len()) != Some(SUFFIX)
        {
            continue;
        }
        let Ok(hex) = std::str::from_utf8(&candidate[1..]) else {
            continue;
        };
        let Ok(id) = u64::from_str_radix(hex, 16) else {
            continue;
        };
        let node = NodeId(id);
        let Ok(name) = ServerName::try_from(node_dns_name(node)) else {
            continue;
        };
        if end_entity.verify_is_valid_for_subject_name(&name).is_ok() {
            if found.is_some_and(|f| f != node) {
                return None;
            }
            found = Some(node);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ClusterCa;

    #[test]
    fn a_certificate_names_its_node_and_no_other() {
        let ca = ClusterCa::generate().unwrap();
        let creds = ca.credentials(NodeId(0xabc), false).unwrap();
        assert_eq!(node_of_certificate(&creds.chain()[0]), Some(NodeId(0xabc)));
        assert_eq!(node_of_certificate(&ca.cert_der()), None);
        assert_eq!(
            node_of_certificate(&CertificateDer::from(vec![1, 2, 3])),
            None
        );
    }
}
