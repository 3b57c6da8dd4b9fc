//! The head's gate: which join tokens are valid, and the certificates it signs for joiners.
//!
//! A join is admitted only with a known, unexpired token, the right secret, the head's
//! wasmray version and a proof that the joiner holds the key it wants certified; the joiner
//! then gets a node ID the head never gave before and a certificate naming it. Each refusal
//! says what to do. Time is passed in; nothing here does I/O.

use crate::identity::{ClusterCa, JoinToken, NODE_CERT_VALIDITY, NodePublicKey};
use crate::wire::{JoinReply, JoinRequest};
use crate::{CaPin, NetError};
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use wasmray_core::NodeId;

#[derive(Debug)]
struct Issued {
    token: JoinToken,
    expires: Option<SystemTime>,
}

/// A join token as a restarted head keeps it: `id.secret`, and when it expires (ms since
/// the Unix epoch; never without).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredToken {
    pub token: String,
    pub expires_ms: Option<u64>,
}

/// The head's CA, its tokens and the node IDs it has handed out.
#[derive(Debug)]
pub struct Admission {
    ca: ClusterCa,
    head: NodeId,
    /// The wasmray version every member must run.
    version: String,
    tokens: Vec<Issued>,
    given: HashSet<NodeId>,
}

impl Admission {
    /// An admission for `ca`'s cluster, where `head` is already taken.
    pub fn new(ca: ClusterCa, head: NodeId, version: String) -> Self {
        Self {
            ca,
            head,
            version,
            tokens: Vec::new(),
            given: HashSet::from([head]),
        }
    }

    pub fn ca(&self) -> &ClusterCa {
        &self.ca
    }

    pub fn pin(&self) -> CaPin {
        self.ca.pin()
    }

    /// A new token, valid until `now + ttl` (forever without one).
    pub fn add_token(
        &mut self,
        ttl: Option<Duration>,
        now: SystemTime,
    ) -> Result<JoinToken, NetError> {
        let token = JoinToken::generate()?;
        self.tokens.push(Issued {
            token: token.clone(),
            expires: ttl.map(|ttl| now + ttl),
        });
        Ok(token)
    }

    /// The tokens issued, for the head's store.
    pub fn tokens(&self) -> Vec<StoredToken> {
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        };
        self.tokens
            .iter()
            .map(|issued| StoredToken {
                token: issued.token.to_string(),
                expires_ms: issued.expires.map(ms),
            })
            .collect()
    }

    /// Takes back the tokens a previous head issued (bad ones are skipped).
    pub fn restore_tokens(&mut self, tokens: &[StoredToken]) {
        for stored in tokens {
            let Ok(token) = stored.token.parse::<JoinToken>() else {
                continue;
            };
            let expires = stored
                .expires_ms
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
            self.tokens.push(Issued { token, expires });
        }
    }

    /// A node ID no node of this cluster has had.
    pub fn new_node_id(&mut self) -> Result<NodeId, NetError> {
        use ring::rand::SecureRandom;
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut bytes = [0u8; 8];
            rng.fill(&mut bytes)
                .map_err(|_| NetError::Crypto("no randomness".into()))?;
            // Small IDs stay free for embedded nodes and the simulator; none is zero.
            let id = NodeId(u64::from_le_bytes(bytes) | (1 << 62));
            if self.given.insert(id) {
                return Ok(id);
            }
        }
    }

    /// Decides a join request.
    pub fn admit(&mut self, request: &JoinRequest, now: SystemTime) -> JoinReply {
        match self.try_admit(request, now) {
            Ok(reply) => reply,
            Err(why) => JoinReply::Refused(why),
        }
    }

    fn try_admit(&mut self, request: &JoinRequest, now: SystemTime) -> Result<JoinReply, String> {
        if request.version != self.version {
            return Err(format!(
                "this head runs wasmray {} and the joining node {}: run the same version on every node",
                self.version, request.version
            ));
        }
        let issued = self
            .tokens
            .iter()
            .find(|t| t.token.id == request.token_id && t.token.secret_matches(&request.secret))
            .ok_or_else(|| {
                "the join token does not match any this head issued: use the token `wasmray start --head` printed for this cluster".to_owned()
            })?;
        if issued.expires.is_some_and(|at| at <= now) {
            return Err(
                "the join token has expired: start the head with a longer --token-ttl".to_owned(),
            );
        }
        let key = NodePublicKey(request.public_key.clone());
        if !key.verify(request.token_id.as_bytes(), &request.proof) {
            return Err("the join request's key proof does not verify".to_owned());
        }
        let node = self.new_node_id().map_err(|e| e.to_string())?;
        let cert = self
            .ca
            .issue(node, &key, false, NODE_CERT_VALIDITY)
            .map_err(|e| format!("could not sign the node's certificate: {e}"))?;
        Ok(JoinReply::Admitted {
            node,
            head: self.head,
            cert: cert.as_ref().to_vec(),
            ca: self.ca.cert_der().as_ref().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeKey;
    use crate::wire::VERSION;

    fn request(token: &JoinToken, key: &NodeKey) -> JoinRequest {
        JoinRequest {
            version: VERSION.into(),
            token_id: token.id.clone(),
            secret: token.secret.clone(),
            public_key: key.public().0,
            proof: key.sign(token.id.as_bytes()).unwrap(),
        }
    }

    #[test]
    fn only_a_valid_unexpired_token_with_a_proven_key_is_admitted() {
        let now = SystemTime::now();
        let mut admission =
            Admission::new(ClusterCa::generate().unwrap(), NodeId(1), VERSION.into());
        let token = admission.add_token(None, now).unwrap();
        let short = admission
            .add_token(Some(Duration::from_secs(1)), now)
            .unwrap();
        let key = NodeKey::generate().unwrap();

        let JoinReply::Admitted { node, .. } = admission.admit(&request(&token, &key), now) else {
            panic!("a valid join was refused");
        };
        let JoinReply::Admitted { node: other, .. } = admission.admit(&request(&token, &key), now)
        else {
            panic!("a token is good for many nodes");
        };
        assert_ne!(node, other);

        let refused =
            |request: &JoinRequest, at: SystemTime, admission: &mut Admission| match admission
                .admit(request, at)
            {
                JoinReply::Refused(why) => why,
                JoinReply::Admitted { .. } => panic!("admitted {request:?}"),
            };
        let mut wrong = request(&token, &key);
        wrong.secret = "0000000000000000".into();
        assert!(refused(&wrong, now, &mut admission).contains("does not match"));
        let later = now + Duration::from_secs(2);
        assert!(refused(&request(&short, &key), later, &mut admission).contains("expired"));
        let mut old = request(&token, &key);
        old.version = "0.0.1".into();
        assert!(refused(&old, now, &mut admission).contains("same version"));
        let mut stolen = request(&token, &key);
        stolen.public_key = NodeKey::generate().unwrap().public().0;
        assert!(refused(&stolen, now, &mut admission).contains("proof"));
    }
}
