//! Encoding values for the host and decoding what the host staged.
//!
//! A value crosses the ABI as postcard bytes plus the handles of the object refs inside it
//! (`ValueOut`). [`encode`] produces both, keeping the refs alive until the host has taken its own
//! reference (it measures the value first, so the bytes are allocated once, at their size); [`decode`] reverses it with the handles the host staged. [`read_staged`] is the
//! one place that calls `staged_read`, after `get`, `task_arg`, `cluster_info`, `create_actor` or
//! `get_actor` announced the sizes in a [`StagedInfo`].
//!
//! Nothing here decides what to do with a value; a value the SDK cannot encode or decode is a
//! programming error in the guest and panics with the type's name.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::rc::Rc;
use wasmray_abi::{StagedInfo, TaskError, ValueOut};

use crate::object_ref::{HandleOwner, Incoming, Outgoing};
use crate::serializer::{self, Exact};
use crate::sys;

/// A value encoded for the host: its postcard bytes and the refs it contains, which stay alive
/// as long as this does.
pub struct Encoded {
    bytes: Vec<u8>,
    refs: Vec<Rc<HandleOwner>>,
}

impl Encoded {
    /// The handles of the refs inside the value, in the order of their indexes.
    pub fn handles(&self) -> Vec<u32> {
        self.refs.iter().map(|owner| owner.handle()).collect()
    }

    /// The `ValueOut` record the ABI expects, borrowing the bytes.
    pub fn value_out(&self) -> ValueOut<'_> {
        ValueOut {
            bytes: &self.bytes,
            refs: self.handles(),
        }
    }
}

/// Encodes `value` with postcard, collecting the refs inside it.
///
/// # Panics
/// When `value`'s `Serialize` impl fails (postcard cannot encode, e.g., sequences of unknown
/// length), naming the type.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Encoded {
    encode_measured(value, encoded_len(value))
}

/// [`encode`] of a value already measured at `len` bytes.
pub(crate) fn encode_measured<T: Serialize + ?Sized>(value: &T, len: usize) -> Encoded {
    let (bytes, refs) =
        Outgoing::collect(|| serializer::serialize(value, Exact(Vec::with_capacity(len))));
    match bytes {
        Ok(bytes) => Encoded { bytes, refs },
        Err(error) => encode_failed::<T>(error),
    }
}

/// The length of `value`'s encoding: a first pass that writes nothing, so that what is
/// allocated for the encoding is allocated once, at its size.
///
/// # Panics
/// As [`encode`].
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    // Refs met on this pass are counted again on the pass that writes.
    match Outgoing::collect(|| serializer::encoded_len(value)).0 {
        Ok(len) => len,
        Err(error) => encode_failed::<T>(error),
    }
}

/// Runs `write` (which encodes a value through [`serializer`]) collecting the refs it meets.
pub(crate) fn collect_refs<R>(write: impl FnOnce() -> R) -> (R, Vec<Rc<HandleOwner>>) {
    Outgoing::collect(write)
}

pub(crate) fn encode_failed<T: ?Sized>(error: postcard::Error) -> ! {
    panic!(
        "wasmray: cannot encode a value of type `{}`: {error}",
        std::any::type_name::<T>()
    )
}

/// Encodes an ABI record (which holds no refs) with postcard.
///
/// # Panics
/// Never in practice: ABI records always encode.
pub(crate) fn encode_record<T: Serialize>(record: &T) -> Vec<u8> {
    // Measured first: a record may carry a large argument, and a growing buffer would need
    // twice its size at once (a 1 GiB argument would overflow wasm32's address space).
    let encoded = serializer::encoded_len(record)
        .and_then(|len| serializer::serialize(record, Exact(Vec::with_capacity(len))));
    match encoded {
        Ok(bytes) => bytes,
        Err(error) => panic!(
            "wasmray: cannot encode the ABI record `{}`: {error}",
            std::any::type_name::<T>()
        ),
    }
}

/// Decodes a value from staged bytes and handles; every handle ends up owned by exactly one
/// `ObjectRef` of the value or is released.
pub(crate) fn decode<T: DeserializeOwned>(staged: Staged) -> Result<T, postcard::Error> {
    let Staged { bytes, handles } = staged;
    Incoming::provide(handles, || postcard::from_bytes(&bytes))
}

/// Decodes a value and panics with `what` and the type's name if it does not decode.
pub(crate) fn decode_or_panic<T: DeserializeOwned>(staged: Staged, what: &str) -> T {
    match decode(staged) {
        Ok(value) => value,
        Err(error) => panic!(
            "wasmray: {what} does not decode as `{}`: {error}",
            std::any::type_name::<T>()
        ),
    }
}

/// What the host staged: bytes and new handles (owned by whoever decodes them).
pub(crate) struct Staged {
    pub(crate) bytes: Vec<u8>,
    pub(crate) handles: Vec<u32>,
}

impl Staged {
    /// Releases the handles and returns the bytes, for records that hold no refs.
    pub(crate) fn into_plain_bytes(self) -> Vec<u8> {
        for handle in self.handles {
            drop(HandleOwner::new(handle));
        }
        self.bytes
    }
}

/// A buffer for the `StagedInfo` the host writes.
pub(crate) struct InfoBuf([u8; StagedInfo::SIZE as usize]);

impl InfoBuf {
    pub(crate) fn new() -> Self {
        Self([0; StagedInfo::SIZE as usize])
    }

    /// Where the host writes: exactly `StagedInfo::SIZE` bytes.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    pub(crate) fn info(&self) -> StagedInfo {
        StagedInfo::from_le_bytes(self.0)
    }
}

/// Copies what the host staged, in the sizes `info` announced.
pub(crate) fn read_staged(info: StagedInfo) -> Staged {
    let (Ok(bytes_len), Ok(refs_len)) = (
        usize::try_from(info.bytes_len),
        usize::try_from(info.refs_len),
    ) else {
        panic!("wasmray: the host staged more than this guest can address: {info:?}");
    };
    let mut bytes = vec![0u8; bytes_len];
    let mut handles = vec![0u32; refs_len];
    // SAFETY: `bytes` has room for exactly `info.bytes_len` bytes and `handles` for exactly
    // `info.refs_len` u32s, the sizes the host announced for this stage and writes; both buffers
    // are initialized and live, and nothing else borrows them during the call.
    unsafe { sys::staged_read(bytes.as_mut_ptr(), handles.as_mut_ptr().cast::<u8>()) };
    Staged { bytes, handles }
}

/// Decodes the `TaskError` the host staged with status 1 (by `get`, `create_actor`,
/// `get_actor`).
///
/// # Panics
/// When the bytes do not decode: the host broke the ABI.
pub(crate) fn read_task_error(staged: Staged) -> TaskError {
    let bytes = staged.into_plain_bytes();
    match wasmray_abi::decode::<TaskError>(&bytes) {
        Ok(error) => error,
        Err(error) => panic!("wasmray: the host staged a task error that does not decode: {error}"),
    }
}

/// Stages something with `stage` (which gets the `StagedInfo` pointer) and reads it.
pub(crate) fn stage_and_read(stage: impl FnOnce(*mut u8)) -> Staged {
    let mut info = InfoBuf::new();
    stage(info.as_mut_ptr());
    read_staged(info.info())
}

/// Converts a buffer length to the ABI's `u32`.
///
/// # Panics
/// When the buffer is larger than 4 GiB, which a wasm32 guest cannot hold anyway.
pub(crate) fn abi_len(len: usize, what: &str) -> u32 {
    match u32::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("wasmray: {what} is too large for the ABI ({len} bytes)"),
    }
}
