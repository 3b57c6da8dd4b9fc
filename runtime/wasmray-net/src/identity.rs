//! The cluster's identities: the CA the head creates, the node certificates it signs, the
//! pin a joiner checks the CA against, and join tokens.
//!
//! `wasmray start --head` makes a [`ClusterCa`] (ECDSA P-256, rcgen) and a [`JoinToken`]; the
//! join command it prints carries the token and the CA's [`CaPin`] (the SHA-256 of the CA
//! certificate, kubeadm's scheme). A joining node makes its own key ([`NodeKey`]: the private
//! key never leaves it), proves it holds the key by signing the token's ID, and gets back a
//! certificate whose only names are its node's DNS name ([`node_dns_name`]) — the node's
//! identity is its certificate, not its IP address. Every link is then mutual TLS under the
//! CA (`tls.rs`).
//!
//! This file makes and checks credentials; it does no I/O and keeps nothing on disk.

use crate::NetError;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};
use wasmray_core::NodeId;

/// How long a node certificate is valid. Renewal is not built: a node lives at most this long.
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long the cluster CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start a little in the past, so a peer whose clock is behind accepts them.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The DNS name a node's certificate carries, and the name dialers check: `n<16 hex>.wasmray`.
pub fn node_dns_name(node: NodeId) -> String {
    format!("n{:016x}.wasmray", node.0)
}

/// The name the head's certificate carries besides its node name, checked by joiners.
pub const HEAD_DNS_NAME: &str = "head.wasmray";

fn offset_time(at: SystemTime) -> time::OffsetDateTime {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    time::OffsetDateTime::UNIX_EPOCH + since
}

/// The cluster's certificate authority. Only the head has one.
pub struct ClusterCa {
    key: rcgen::KeyPair,
    /// Signs what the CA issues (for a restored CA, made again from the same key and names).
    cert: rcgen::Certificate,
    /// The certificate every node trusts, as first made.
    der: CertificateDer<'static>,
}

/// The CA certificate's fields (the issuer every node certificate names).
fn ca_params(now: SystemTime) -> Result<rcgen::CertificateParams, NetError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wasmray cluster CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = offset_time(now - CLOCK_SKEW);
    params.not_after = offset_time(now + CA_VALIDITY);
    Ok(params)
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("pin", &self.pin())
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new CA with a fresh key.
    pub fn generate() -> Result<Self, NetError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = ca_params(SystemTime::now())?.self_signed(&key)?;
        let der = cert.der().clone();
        Ok(Self { key, cert, der })
    }

    /// The CA certificate (DER), which every node trusts.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }

    /// The private key (PEM), for the head's store only: whoever has it can admit nodes.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The CA a restarted head keeps: its key (PEM) and the certificate (DER) every node
    /// trusts, as [`ClusterCa::key_pem`] and [`ClusterCa::cert_der`] gave them. The
    /// certificate is kept as it was (so the pin holds); certificates it issues from now on
    /// name the same issuer and are signed by the same key.
    pub fn restore(key_pem: &str, cert_der: &[u8]) -> Result<Self, NetError> {
        let key = rcgen::KeyPair::from_pem(key_pem)?;
        // A certificate carries its subject's public key (SPKI) as it is: the key must be
        // the one the stored certificate was made for.
        let public = key.public_key_der();
        if !cert_der
            .windows(public.len())
            .any(|w| w == public.as_slice())
        {
            return Err(NetError::Crypto(
                "the stored CA key does not match the stored CA certificate".into(),
            ));
        }
        let cert = ca_params(SystemTime::now())?.self_signed(&key)?;
        Ok(Self {
            key,
            cert,
            der: CertificateDer::from(cert_der.to_vec()),
        })
    }

    /// What a joiner checks the CA against.
    pub fn pin(&self) -> CaPin {
        CaPin::of(&self.der)
    }

    /// Signs a certificate for `node` over `public_key`, valid for `valid_for` from now; the
    /// head's own also carries [`HEAD_DNS_NAME`].
    pub fn issue(
        &self,
        node: NodeId,
        public_key: &NodePublicKey,
        head: bool,
        valid_for: Duration,
    ) -> Result<CertificateDer<'static>, NetError> {
        let mut names = vec![node_dns_name(node)];
        if head {
            names.push(HEAD_DNS_NAME.to_owned());
        }
        let mut params = rcgen::CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("wasmray node {node}"));
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = SystemTime::now();
        params.not_before = offset_time(now - CLOCK_SKEW);
        params.not_after = offset_time(now + valid_for);
        let cert = params.signed_by(public_key, &self.cert, &self.key)?;
        Ok(cert.der().clone())
    }

    /// Credentials for a node of this CA's cluster made here (the head's own, and nodes
    /// started in the head's process).
    pub fn credentials(&self, node: NodeId, head: bool) -> Result<Credentials, NetError> {
        let key = NodeKey::generate()?;
        let cert = self.issue(node, &key.public(), head, NODE_CERT_VALIDITY)?;
        Ok(Credentials::new(node, cert, self.cert_der(), key))
    }
}

/// A node's key pair (ECDSA P-256); the private half never leaves the node.
pub struct NodeKey {
    pkcs8: Vec<u8>,
    pair: ring::signature::EcdsaKeyPair,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey")
    }
}

impl NodeKey {
    pub fn generate() -> Result<Self, NetError> {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng)
            .map_err(|_| NetError::Crypto("could not generate a key".into()))?;
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
            .map_err(|_| NetError::Crypto("could not read a generated key".into()))?;
        Ok(Self {
            pkcs8: pkcs8.as_ref().to_vec(),
            pair,
        })
    }

    pub fn public(&self) -> NodePublicKey {
        use ring::signature::KeyPair;
        NodePublicKey(self.pair.public_key().as_ref().to_vec())
    }

    /// Signs `message` (the proof of possession a join carries).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, NetError> {
        let rng = ring::rand::SystemRandom::new();
        self.pair
            .sign(&rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| NetError::Crypto("could not sign".into()))
    }
}

/// A node's public key: the uncompressed P-256 point (65 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePublicKey(pub Vec<u8>);

impl NodePublicKey {
    /// Whether `signature` is this key's signature of `message` (which also proves the bytes
    /// are a valid point).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

impl rcgen::PublicKeyData for NodePublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// What a node needs for its links: its certificate and key, and the CA it trusts.
#[derive(Debug)]
pub struct Credentials {
    node: NodeId,
    cert: CertificateDer<'static>,
    ca: CertificateDer<'static>,
    key: NodeKey,
}

impl Credentials {
    pub fn new(
        node: NodeId,
        cert: CertificateDer<'static>,
        ca: CertificateDer<'static>,
        key: NodeKey,
    ) -> Self {
        Self {
            node,
            cert,
            ca,
            key,
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The chain a node presents: its certificate, then the CA's.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone(), self.ca.clone()]
    }

    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.pkcs8.clone()))
    }

    pub fn ca_pin(&self) -> CaPin {
        CaPin::of(&self.ca)
    }
}

/// The SHA-256 of the CA certificate, written `sha256:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CaPin(pub [u8; 32]);

impl CaPin {
    pub fn of(cert: &[u8]) -> Self {
        CaPin(Sha256::digest(cert).into())
    }
}

impl fmt::Display for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for CaPin {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Self, NetError> {
        let bad = || {
            NetError::BadInput(format!(
                "`{text}` is not a CA pin: expected `sha256:` and 64 hex digits, as `wasmray start --head` prints"
            ))
        };
        let hex = text.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut pin = [0u8; 32];
        for (i, byte) in pin.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(CaPin(pin))
    }
}

/// A join token, `<id>.<secret>`: 6 and 16 characters of `[a-z0-9]`.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub id: String,
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken({}.…)", self.id)
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_text(len: usize) -> Result<String, NetError> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut text = String::with_capacity(len);
    while text.len() < len {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes)
            .map_err(|_| NetError::Crypto("no randomness".into()))?;
        // 252 = 7 × 36: dropping bytes above it keeps the characters uniform.
        for byte in bytes.into_iter().filter(|b| *b < 252) {
            if text.len() < len {
                text.push(TOKEN_ALPHABET[usize::from(byte) % TOKEN_ALPHABET.len()] as char);
            }
        }
    }
    Ok(text)
}

impl JoinToken {
    pub fn generate() -> Result<Self, NetError> {
        Ok(Self {
            id: random_text(6)?,
            secret: random_text(16)?,
        })
    }

    /// Whether `secret` is this token's, compared in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl FromStr for JoinToken {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Self, NetError> {
        let bad = || {
            NetError::BadInput(
                "a join token is `<6 characters>.<16 characters>` of a-z and 0-9, as `wasmray start --head` prints"
                    .to_owned(),
            )
        };
        let (id, secret) = text.split_once('.').ok_or_else(bad)?;
        let ok = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| TOKEN_ALPHABET.contains(&b))
        };
        if !ok(id, 6) || !ok(secret, 16) {
            return Err(bad());
        }
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_pins_parse_back_and_reject_bad_text() {
        let token = JoinToken::generate().unwrap();
        assert_eq!(token.to_string().parse::<JoinToken>().unwrap(), token);
        assert!(token.secret_matches(&token.secret));
        assert!(!token.secret_matches("0000000000000000"));
        for bad in [
            "",
            "abc",
            "abcdef.short",
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef",
        ] {
            assert!(bad.parse::<JoinToken>().is_err(), "{bad}");
        }
        let ca = ClusterCa::generate().unwrap();
        let pin = ca.pin();
        assert_eq!(pin.to_string().parse::<CaPin>().unwrap(), pin);
        for bad in ["sha256:", "md5:00", &pin.to_string()[1..], "sha256:zz"] {
            assert!(bad.parse::<CaPin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_signature_proves_the_key_and_nothing_else() {
        let key = NodeKey::generate().unwrap();
        let signature = key.sign(b"token-id").unwrap();
        assert!(key.public().verify(b"token-id", &signature));
        assert!(!key.public().verify(b"other", &signature));
        let other = NodeKey::generate().unwrap();
        assert!(!other.public().verify(b"token-id", &signature));
        assert!(!NodePublicKey(vec![4; 65]).verify(b"token-id", &signature));
    }
}
