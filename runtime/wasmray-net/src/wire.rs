//! What travels on a link's streams, and how it is framed.
//!
//! - A **control stream** is a unidirectional stream a node opens to a peer for its messages:
//!   the kind byte [`StreamKind::Control`], a [`Hello`], then frames, each a `u32`
//!   little-endian length and that many bytes (opaque here: the node encodes its envelopes).
//! - An **RPC** is a bidirectional stream: a kind byte, one framed request, one framed answer
//!   (and for a fetch, the object's raw bytes after the answer).
//!
//! Every length read from a peer is checked against its limit before anything is allocated
//! for it. Frames are postcard; [`decode`] refuses trailing bytes. This file does no I/O
//! beyond reading and writing the streams it is handed.

use crate::NetError;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use wasmray_core::{NodeId, ObjectId};

/// The largest control frame: a message with inline values (each ≤ 100 KiB) and specs.
pub const MAX_FRAME: usize = 64 << 20;
/// The largest RPC request or answer frame.
pub const MAX_RPC_FRAME: usize = 1 << 20;

/// wasmray's version: nodes of different versions refuse each other.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The first byte of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamKind {
    Control = 1,
    Join = 2,
    Fetch = 3,
    Resolve = 4,
    Module = 5,
    Deploy = 6,
}

impl StreamKind {
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => StreamKind::Control,
            2 => StreamKind::Join,
            3 => StreamKind::Fetch,
            4 => StreamKind::Resolve,
            5 => StreamKind::Module,
            6 => StreamKind::Deploy,
            _ => return None,
        })
    }
}

/// The first frame of a control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: String,
    pub node: NodeId,
}

/// A node asks the head to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub version: String,
    pub token_id: String,
    pub secret: String,
    /// The joiner's public key (uncompressed P-256 point).
    pub public_key: Vec<u8>,
    /// The key's signature of `token_id`: the joiner holds the key it wants certified.
    pub proof: Vec<u8>,
}

/// The head's answer to a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReply {
    Admitted {
        node: NodeId,
        head: NodeId,
        /// The joiner's certificate (DER) and the cluster CA's.
        cert: Vec<u8>,
        ca: Vec<u8>,
    },
    Refused(String),
}

/// A node asks a holder for an object's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub object: ObjectId,
    /// How many bytes the puller expects (what the holder offered).
    pub len: u64,
}

/// The holder's answer; `Sending` is followed by exactly `len` raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchReply {
    Sending { len: u64 },
    Missing,
}

/// A node asks a peer for a module's bytes, by content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRequest {
    pub module: wasmray_core::ModuleId,
}

/// The module's name and size; `len` raw bytes follow. `None`: not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleReply {
    pub found: Option<(String, u64)>,
}

/// A node asks a peer to have a module ready to run (`wasmray deploy`): the peer fetches it
/// from the asker unless it has it, checks its hash and compiles it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRequest {
    pub module: wasmray_core::ModuleId,
}

/// `None` once the module is ready on the peer; why not otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployReply {
    pub error: Option<String>,
}

/// The largest module a node fetches.
pub const MAX_MODULE: u64 = 1 << 30;

/// A node asks the head (or a peer) where a node listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveRequest {
    pub node: NodeId,
}

/// Where it listens, as `ip:port`, if known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveReply {
    pub address: Option<String>,
}

/// Encodes `value` as one frame (length included).
pub fn frame<T: Serialize>(value: &T) -> Result<Vec<u8>, NetError> {
    let mut out = vec![0u8; 4];
    let out = postcard::to_extend(value, std::mem::take(&mut out))
        .map_err(|e| NetError::Encode(e.to_string()))?;
    finish_frame(out)
}

/// Writes the length of a frame built after 4 reserved bytes.
pub fn finish_frame(mut out: Vec<u8>) -> Result<Vec<u8>, NetError> {
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(NetError::Encode(format!(
            "a frame of {len} bytes is above the limit of {MAX_FRAME}"
        )));
    }
    out[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

/// Decodes a whole frame's bytes, refusing trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, NetError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| NetError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(NetError::Decode(format!(
            "{} bytes after the end of the frame",
            rest.len()
        )));
    }
    Ok(value)
}

/// Reads one frame of at most `max` bytes; `None` at a clean end of the stream.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Option<Vec<u8>>, NetError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(NetError::Stream(e.to_string())),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(NetError::Decode(format!(
            "a peer announced a frame of {len} bytes, above the limit of {max}"
        )));
    }
    let mut bytes = vec![0u8; len];
    recv.read_exact(&mut bytes)
        .await
        .map_err(|e| NetError::Stream(e.to_string()))?;
    Ok(Some(bytes))
}

/// Reads one frame and decodes it.
pub async fn read_value<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<T, NetError> {
    let bytes = read_frame(recv, max)
        .await?
        .ok_or_else(|| NetError::Stream("the peer closed the stream early".into()))?;
    decode(&bytes)
}

/// For the fuzz target: decodes `bytes` as each RPC request and answer; returns how many
/// decoded.
pub fn fuzz_rpc(bytes: &[u8]) -> usize {
    usize::from(decode::<Hello>(bytes).is_ok())
        + usize::from(decode::<JoinRequest>(bytes).is_ok())
        + usize::from(decode::<JoinReply>(bytes).is_ok())
        + usize::from(decode::<FetchRequest>(bytes).is_ok())
        + usize::from(decode::<FetchReply>(bytes).is_ok())
        + usize::from(decode::<ModuleRequest>(bytes).is_ok())
        + usize::from(decode::<ModuleReply>(bytes).is_ok())
        + usize::from(decode::<DeployRequest>(bytes).is_ok())
        + usize::from(decode::<DeployReply>(bytes).is_ok())
        + usize::from(decode::<ResolveRequest>(bytes).is_ok())
        + usize::from(decode::<ResolveReply>(bytes).is_ok())
}

/// Valid RPC frames (without their length) for the fuzz target.
pub fn fuzz_rpc_seeds() -> Vec<Vec<u8>> {
    let strip = |frame: Result<Vec<u8>, NetError>| frame.map(|f| f[4..].to_vec()).ok();
    [
        strip(frame(&Hello {
            version: VERSION.into(),
            node: NodeId(5),
        })),
        strip(frame(&JoinRequest {
            version: VERSION.into(),
            token_id: "abcdef".into(),
            secret: "0123456789abcdef".into(),
            public_key: vec![4; 65],
            proof: vec![1; 70],
        })),
        strip(frame(&JoinReply::Admitted {
            node: NodeId(6),
            head: NodeId(1),
            cert: vec![2; 300],
            ca: vec![3; 300],
        })),
        strip(frame(&JoinReply::Refused("no".into()))),
        strip(frame(&FetchReply::Sending { len: 1 << 20 })),
        strip(frame(&ModuleReply {
            found: Some(("app.wasm".into(), 1000)),
        })),
        strip(frame(&DeployReply {
            error: Some("does not load".into()),
        })),
        strip(frame(&ResolveReply {
            address: Some("127.0.0.1:6390".into()),
        })),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length_and_decoding_refuses_trailing_bytes() {
        let hello = Hello {
            version: VERSION.into(),
            node: NodeId(7),
        };
        let bytes = frame(&hello).unwrap();
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(decode::<Hello>(&bytes[4..]).unwrap(), hello);
        let mut longer = bytes[4..].to_vec();
        longer.push(0);
        assert!(decode::<Hello>(&longer).is_err());
        assert!(decode::<Hello>(&bytes[4..bytes.len() - 1]).is_err());
    }
}
