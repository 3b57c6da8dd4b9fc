//! How the node's envelopes become frames for the transport, and back.
//!
//! A frame is one route byte — who sent it to whom, since a node runs a scheduler and maybe
//! the head — and a postcard `Envelope<Message<_>>`, whose values are their contained refs
//! and bytes. Decoding checks everything a peer sent before the scheduler sees it: a bad
//! frame is an error, never a panic; the bytes of a value become a store object charged to
//! the node's account (the references inside it are taken in by the scheduler).
//!
//! Route [`OUTPUT_ROUTE`] carries guest output instead: lines a job's instances printed on
//! one node, on their way to the node of the job's driver (outside the links' sequencing:
//! output is shown if it arrives, never resent).

use crate::value::Value;
use serde::Deserialize;
use std::sync::Arc;
use wasmray_core::ObjectId;
use wasmray_sched::{Envelope, Message};
use wasmray_store::{Account, ObjectStore};

/// Who a frame is from and for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// From a node's scheduler to another node's scheduler.
    Peer = 0,
    /// From a node's scheduler to the head.
    ToHead = 1,
    /// From the head to a node's scheduler.
    FromHead = 2,
}

/// The route byte of an output frame ([`encode_output`]).
pub(crate) const OUTPUT_ROUTE: u8 = 3;

/// One line of guest output, forwarded to the node of its job's driver.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub(crate) struct OutputLine {
    pub(crate) job: wasmray_core::JobId,
    /// The task's label, the node it ran on included.
    pub(crate) label: Option<String>,
    pub(crate) stderr: bool,
    pub(crate) line: String,
}

/// The frame for one forwarded line, length first.
pub(crate) fn encode_output(line: &OutputLine) -> Result<Vec<u8>, CodecError> {
    let out = vec![0, 0, 0, 0, OUTPUT_ROUTE];
    let out = postcard::to_extend(line, out).map_err(|e| CodecError::Encode(e.to_string()))?;
    wasmray_net::wire::finish_frame(out).map_err(|e| CodecError::Encode(e.to_string()))
}

/// The line an output frame (route byte included) carries; longer lines than a guest may
/// write are refused.
pub(crate) fn decode_output(frame: &[u8]) -> Result<OutputLine, CodecError> {
    let body = match frame.split_first() {
        Some((&OUTPUT_ROUTE, body)) => body,
        Some((&other, _)) => return Err(CodecError::Route(other)),
        None => return Err(CodecError::Empty),
    };
    let (line, rest): (OutputLine, _) =
        postcard::take_from_bytes(body).map_err(CodecError::Decode)?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    let label_len = line.label.as_ref().map_or(0, String::len);
    if line.line.len() > wasmray_wasm::MAX_LINE || label_len > wasmray_wasm::MAX_LINE {
        return Err(CodecError::Encode(format!(
            "an output line of {} bytes, more than a guest may write",
            line.line.len().max(label_len)
        )));
    }
    Ok(line)
}

/// A value as it arrives: borrowed from the frame.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireValue<'a> {
    contained: Vec<ObjectId>,
    #[serde(borrow)]
    bytes: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("an empty frame")]
    Empty,
    #[error("unknown route {0}")]
    Route(u8),
    #[error("undecodable envelope: {0}")]
    Decode(postcard::Error),
    #[error("{0} bytes after the envelope")]
    Trailing(usize),
    #[error("could not encode: {0}")]
    Encode(String),
    #[error("no room for a received value: {0}")]
    Store(wasmray_store::StoreError),
}

/// The frame for `envelope` on `route`, length first (as the transport sends it).
pub(crate) fn encode(
    route: Route,
    envelope: &Envelope<Message<Value>>,
) -> Result<Vec<u8>, CodecError> {
    let out = vec![0, 0, 0, 0, route as u8];
    let out = postcard::to_extend(envelope, out).map_err(|e| CodecError::Encode(e.to_string()))?;
    wasmray_net::wire::finish_frame(out).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Splits a received frame into its route and envelope, storing the values it carries.
pub(crate) fn decode(
    frame: &[u8],
    store: &ObjectStore,
    account: &Arc<Account>,
) -> Result<(Route, Envelope<Message<Value>>), CodecError> {
    let (&route, body) = frame.split_first().ok_or(CodecError::Empty)?;
    let route = match route {
        0 => Route::Peer,
        1 => Route::ToHead,
        2 => Route::FromHead,
        other => return Err(CodecError::Route(other)),
    };
    let (envelope, rest): (Envelope<Message<WireValue<'_>>>, _) =
        postcard::take_from_bytes(body).map_err(CodecError::Decode)?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    let message = match envelope.message {
        Some(message) => Some(message.try_map_values(&mut |wire: WireValue<'_>| {
            store
                .create_from(account, wire.bytes, wire.contained)
                .map(Value)
                .map_err(CodecError::Store)
        })?),
        None => None,
    };
    Ok((
        route,
        Envelope {
            seq: envelope.seq,
            ack: envelope.ack,
            message,
        },
    ))
}

/// A scratch store for the fuzz targets (64 MiB, spilling into the temp dir).
fn scratch_store() -> Option<&'static ObjectStore> {
    static STORE: std::sync::OnceLock<Option<ObjectStore>> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("wasmray-fuzz-{}", std::process::id()));
            ObjectStore::new(64 << 20, dir).ok()
        })
        .as_ref()
}

/// For the fuzz target: decodes `frame` (without its length) as a peer's frame; returns how
/// many values it carried, 0 if it did not decode.
pub fn fuzz_frame(frame: &[u8]) -> usize {
    let Some(store) = scratch_store() else {
        return 0;
    };
    let account = Account::new(wasmray_store::AccountLimits::UNLIMITED);
    if frame.first() == Some(&OUTPUT_ROUTE) {
        return decode_output(frame).map_or(0, |line| line.line.len() + 1);
    }
    match decode(frame, store, &account) {
        Ok((_, envelope)) => envelope.message.map_or(1, |m| m.refs().len() + 2),
        Err(_) => 0,
    }
}

/// Valid frames (without their length) for the fuzz target to start from.
pub fn fuzz_frame_seeds() -> Vec<Vec<u8>> {
    use wasmray_core::{
        ArgSpec, JobId, Lineage, ModuleId, NodeId, ResourceSet, TaskId, TaskKind, TaskSpec,
    };
    use wasmray_sched::{HeadRequest, RemoteOutcome, RemoteStatus, Returned, Snapshot};
    let Some(store) = scratch_store() else {
        return Vec::new();
    };
    let account = Account::new(wasmray_store::AccountLimits::UNLIMITED);
    let task = TaskId(7 << 64 | 1);
    let object = task.return_object(1);
    let Ok(stored) = store.create_from(&account, b"some bytes", vec![object]) else {
        return Vec::new();
    };
    let value = Value(stored);
    let spec = TaskSpec {
        id: task,
        kind: TaskKind::Task,
        job: JobId(1),
        module: ModuleId([3; 32]),
        function: "f".into(),
        args: vec![ArgSpec::ByRef(object), ArgSpec::Value(value.clone())],
        num_returns: 1,
        resources: ResourceSet::from_pairs([("CPU", 1.0)]).unwrap_or_default(),
        max_calls: 0,
        max_retries: 3,
        retry_exceptions: false,
        memory_limit: None,
        cpu_time_limit_ms: Some(10),
        lineage: Lineage::root("main").child("f"),
        submitter: task,
        driver: NodeId(9),
    };
    let snapshot = Snapshot {
        version: 2,
        total: ResourceSet::from_pairs([("CPU", 4.0)]).unwrap_or_default(),
        available: ResourceSet::from_pairs([("CPU", 2.0)]).unwrap_or_default(),
        store_used: 10,
    };
    let messages = vec![
        Message::Lease {
            spec: Arc::new(spec),
            attempt: 0,
        },
        Message::Done {
            task,
            attempt: 1,
            outcome: RemoteOutcome::Returned(vec![
                Returned::Value(value.clone()),
                Returned::Kept { len: 1 << 20 },
            ]),
        },
        Message::Status {
            object,
            status: RemoteStatus::Ready {
                value: Some(value.clone()),
                at: vec![NodeId(9)],
            },
        },
        Message::Pulled {
            object,
            value: Some(value),
        },
        Message::Offered {
            object,
            len: 1 << 30,
            contained: vec![object],
        },
        Message::Holding { object },
        Message::Report { snapshot },
        Message::Ask {
            request: 3,
            ask: HeadRequest::NewJob,
        },
    ];
    let mut seeds = Vec::new();
    for (seq, message) in messages.into_iter().enumerate() {
        let envelope = Envelope {
            seq: seq as u64 + 1,
            ack: 0,
            message: Some(message),
        };
        if let Ok(frame) = encode(Route::Peer, &envelope) {
            seeds.push(frame[4..].to_vec());
        }
    }
    let line = OutputLine {
        job: JobId(2),
        label: Some("f task=1 node=n3".into()),
        stderr: false,
        line: "hello".into(),
    };
    if let Ok(frame) = encode_output(&line) {
        seeds.push(frame[4..].to_vec());
    }
    seeds
}
