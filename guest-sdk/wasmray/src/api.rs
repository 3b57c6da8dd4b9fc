//! The object API, one function per Ray call: `put`, `get`, `get_all`, `wait`, and the cluster
//! queries `nodes`, `cluster_resources`, `available_resources`.
//!
//! Each function encodes its request, calls one host import and decodes the staged answer. A
//! guest that blocks in `get` or `wait` gives its CPU back to the node while it waits; that is
//! the host's doing. In an actor with `max_concurrency > 1` the host may run another method
//! inside a blocked `get`/`wait`, so those two imports go through `actor_state::blocking`.
//!
//! This file does not submit tasks ([`crate::task`] does) and does not retry anything: a failed
//! object is reported as the [`TaskError`] the host staged.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;
use wasmray_abi::{ClusterQuery, ErrorKind, GetStatus, NodeInfo, TaskError};

use crate::actor_state;
use crate::codec;
use crate::object_ref::ObjectRef;
use crate::options::millis_rounded_up;
use crate::serializer;
use crate::sys;

/// Stores `value` in the object store and returns a ref to it (Ray's `ray.put`). The value is
/// copied: later changes to the original are not seen through the ref. Refs inside the value
/// stay alive as long as the new object does.
///
/// A large value is serialized straight into the store, in pieces, so its bytes are copied
/// once; arrays of `u8`, `i8`, `bool`, `f32` and `f64` (a `Vec` or a slice, anywhere in the
/// value) are copied as they lie in memory, not element by element.
///
/// # Panics
/// When `value` cannot be encoded with postcard, or encodes to a different length the second
/// time (a `Serialize` impl whose output changes between two calls). The host traps the guest
/// when the object store cannot hold the value.
pub fn put<T: Serialize>(value: &T) -> ObjectRef<T> {
    let len = codec::encoded_len(value);
    if len < STREAM_FROM {
        let encoded = codec::encode_measured(value, len);
        let record = codec::encode_record(&encoded.value_out());
        let record_len = codec::abi_len(record.len(), "the value passed to put");
        // SAFETY: `record` is a live, initialized buffer of `record_len` bytes that the host
        // only reads.
        let handle = unsafe { sys::put(record.as_ptr(), record_len) };
        // `encoded` (and the refs it keeps alive) is dropped only now, after the host took them.
        drop(encoded);
        return ObjectRef::from_handle(handle);
    }
    // SAFETY: a scalar; the host reserves `len` bytes or traps.
    unsafe { sys::put_begin(len as i64) };
    let (written, refs) = codec::collect_refs(|| serializer::serialize(value, Stream::new(len)));
    match written {
        Ok(()) => {}
        Err(postcard::Error::SerializeBufferFull) => panic!(
            "wasmray::put: a value of type `{}` encoded to more than the {len} bytes it measured \
             (its Serialize impl writes something else each time)",
            std::any::type_name::<T>()
        ),
        Err(error) => codec::encode_failed::<T>(error),
    }
    let handles: Vec<u32> = refs.iter().map(|owner| owner.handle()).collect();
    let count = codec::abi_len(handles.len(), "the refs inside the value passed to put");
    // SAFETY: `handles` holds `count` initialized u32s that the host only reads. The host traps
    // if fewer than `len` bytes were written.
    let handle = unsafe { sys::put_end(handles.as_ptr().cast::<u8>(), count) };
    // The refs stay alive until the host has taken its own references to them.
    drop(refs);
    ObjectRef::from_handle(handle)
}

/// Values whose encoding is at least this long are streamed into the store (`put_begin`)
/// rather than encoded in guest memory first and copied (`put`).
const STREAM_FROM: usize = 64 * 1024;

/// How much of a streamed value the SDK gathers before handing it to the host.
const PIECE: usize = 64 * 1024;

/// The output of a streamed put: small writes are gathered into a piece of [`PIECE`] bytes,
/// large ones (an array's memory) go to the host as they are. Refuses to write past `len`.
struct Stream {
    piece: Vec<u8>,
    left: usize,
}

impl Stream {
    fn new(len: usize) -> Self {
        Self {
            piece: Vec::with_capacity(PIECE.min(len)),
            left: len,
        }
    }

    fn send(bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let len = codec::abi_len(bytes.len(), "a piece of a streamed put");
        // SAFETY: `bytes` is a live, initialized buffer of `len` bytes that the host only reads.
        unsafe { sys::put_write(bytes.as_ptr(), len) };
    }

    fn take(&mut self, len: usize) -> postcard::Result<()> {
        self.left = self
            .left
            .checked_sub(len)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        Ok(())
    }
}

impl postcard::ser_flavors::Flavor for Stream {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.take(1)?;
        if self.piece.len() == PIECE {
            Self::send(&self.piece);
            self.piece.clear();
        }
        self.piece.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.take(data.len())?;
        if self.piece.len() + data.len() <= PIECE {
            self.piece.extend_from_slice(data);
        } else {
            Self::send(&self.piece);
            self.piece.clear();
            if data.len() < PIECE {
                self.piece.extend_from_slice(data);
            } else {
                Self::send(data);
            }
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Self::send(&self.piece);
        Ok(())
    }
}

/// Waits for the object and returns its value (Ray's `ray.get`), or the error of the task that
/// should have produced it. While it waits, this task's CPU is given back to the node.
///
/// # Panics
/// When the object's bytes do not decode as `T` (a type mismatch between producer and consumer).
pub fn get<T: DeserializeOwned>(object: &ObjectRef<T>) -> Result<T, TaskError> {
    match get_within(object, None) {
        Some(result) => result,
        None => panic!("wasmray: the host reported a timeout for a get without timeout"),
    }
}

/// [`get`] that gives up after `timeout` (Ray's `ray.get(ref, timeout=..)`): an error of kind
/// [`ErrorKind::GetTimeout`](crate::ErrorKind::GetTimeout) if the object is not ready by then
/// (Ray's `GetTimeoutError`). The object is not affected: a later `get` may still succeed.
///
/// # Panics
/// As [`get`].
pub fn get_timeout<T: DeserializeOwned>(
    object: &ObjectRef<T>,
    timeout: Duration,
) -> Result<T, TaskError> {
    get_within(object, Some(timeout)).unwrap_or_else(|| {
        Err(TaskError {
            kind: ErrorKind::GetTimeout,
            function: "get".to_owned(),
            message: format!("the object was not ready within {timeout:?}"),
            backtrace: None,
            task_chain: Vec::new(),
            cause: None,
        })
    })
}

/// The host's `get`; `None` if `timeout` passed first.
fn get_within<T: DeserializeOwned>(
    object: &ObjectRef<T>,
    timeout: Option<Duration>,
) -> Option<Result<T, TaskError>> {
    let mut info = codec::InfoBuf::new();
    // The host may run nested actor calls inside `get`: `blocking` keeps the books.
    let status = actor_state::blocking(|| {
        // SAFETY: `info` is a live buffer of exactly `StagedInfo::SIZE` bytes, the size the host
        // writes at `info_ptr`; the handle is a scalar the host checks against its table.
        unsafe { sys::get(object.handle(), timeout_ms(timeout), info.as_mut_ptr()) }
    });
    match GetStatus::from_i32(status) {
        Some(GetStatus::Value) => Some(Ok(codec::decode_or_panic(
            codec::read_staged(info.info()),
            "the object passed to get",
        ))),
        Some(GetStatus::Error) => {
            Some(Err(codec::read_task_error(codec::read_staged(info.info()))))
        }
        Some(GetStatus::Timeout) => None,
        None => panic!("wasmray: the host answered get with unknown status {status}"),
    }
}

/// How [`cancel_with`] cancels; the default is Ray's (`force=False, recursive=True`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelOptions {
    /// Ray's `force`: accepted, and the same as without. wasmray can always stop a task's
    /// instance safely (nothing of it outlives the stop), so every cancel does.
    pub force: bool,
    /// Also cancel the tasks the cancelled task submitted, transitively.
    pub recursive: bool,
}

impl Default for CancelOptions {
    fn default() -> Self {
        Self {
            force: false,
            recursive: true,
        }
    }
}

/// Ray's `ray.cancel(ref)`: cancels the task that makes `object`, and the tasks it submitted.
/// A task that has not started never runs; a running one is stopped at its next host call or
/// within one epoch tick (10 ms) of computing. Either way `get` on its results returns an
/// error of kind [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled), and it is not retried.
/// An actor method call that is still queued is cancelled; one that is running is not (its
/// actor would be lost: use [`kill`](crate::kill)). Returns whether a task was cancelled
/// (`false` when it had already finished, or `object` was `put`).
pub fn cancel<T>(object: &ObjectRef<T>) -> bool {
    cancel_with(object, CancelOptions::default())
}

/// [`cancel`] with Ray's `force` and `recursive` options.
pub fn cancel_with<T>(object: &ObjectRef<T>, options: CancelOptions) -> bool {
    // SAFETY: scalars only; the host checks the handle against its table.
    let status = unsafe {
        sys::cancel(
            object.handle(),
            i32::from(options.force),
            i32::from(options.recursive),
        )
    };
    status == 1
}

/// Gets every object, in order (Ray's `ray.get(list)`); the first failed object's error is
/// returned.
///
/// # Panics
/// As [`get`].
pub fn get_all<T: DeserializeOwned>(objects: &[ObjectRef<T>]) -> Result<Vec<T>, TaskError> {
    objects.iter().map(get).collect()
}

/// Ray's `ray.wait`: blocks until `num_returns` of `objects` are ready or `timeout` passes
/// (`None`: no timeout), then returns `(ready, pending)`. `ready` holds at most `num_returns`
/// refs; both lists keep the input order.
///
/// # Panics
/// As Ray raises `ValueError`: when `num_returns` is larger than the list (the message names
/// both numbers), or 0 while the list is not empty. Asking for more refs than were given is a
/// mistake in the calling code, like an index out of bounds, so it panics rather than returning
/// an error every caller would have to unwrap. `wait(&[], 0, _)` returns two empty lists.
pub fn wait<T>(
    objects: &[ObjectRef<T>],
    num_returns: usize,
    timeout: Option<Duration>,
) -> (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>) {
    assert!(
        num_returns <= objects.len(),
        "wasmray::wait: num_returns ({num_returns}) is larger than the number of refs given ({})",
        objects.len()
    );
    if objects.is_empty() {
        return (Vec::new(), Vec::new());
    }
    assert!(
        num_returns > 0,
        "wasmray::wait: num_returns must be at least 1 when waiting on {} refs",
        objects.len()
    );
    let wanted = num_returns;
    // The host looks in list order and stops at the `wanted`-th ready ref, so a look at a
    // short head that finds `wanted` ready gives the same answer as a look at the whole list,
    // without handing the host every handle (Ray's "wait 1k refs" waits on a long list, one
    // ready ref at a time).
    let head = objects.len().min(WAIT_HEAD.max(wanted));
    if head < objects.len() {
        let ready = wait_flags(&objects[..head], wanted, Some(Duration::ZERO));
        if ready.iter().filter(|&&flag| flag != 0).count() >= wanted {
            return split_ready(objects, &ready, wanted);
        }
    }
    let ready = wait_flags(objects, wanted, timeout);
    split_ready(objects, &ready, wanted)
}

/// How many refs `wait` looks at first, without blocking, before it hands over the whole list.
const WAIT_HEAD: usize = 64;

/// The host's `wait` over `objects`: one flag per ref, 1 if ready (only the first `wanted`
/// ready ones are sure to be marked).
fn wait_flags<T>(objects: &[ObjectRef<T>], wanted: usize, timeout: Option<Duration>) -> Vec<u8> {
    let handles: Vec<u32> = objects.iter().map(ObjectRef::handle).collect();
    let mut ready = vec![0u8; handles.len()];
    let count = codec::abi_len(handles.len(), "the list passed to wait");
    let wanted_u32 = codec::abi_len(wanted, "num_returns");
    // The host may run nested actor calls inside `wait`: `blocking` keeps the books.
    actor_state::blocking(|| {
        // SAFETY: `handles` holds `count` initialized u32s the host only reads, and `ready` is a
        // live buffer of `count` bytes, one per handle, which is what the host writes.
        unsafe {
            sys::wait(
                handles.as_ptr().cast::<u8>(),
                count,
                wanted_u32,
                timeout_ms(timeout),
                ready.as_mut_ptr(),
            )
        }
    });
    ready
}

/// `(ready, pending)`: the first `wanted` refs flagged ready, and all the others, in order.
/// Refs past the end of `ready` count as pending.
fn split_ready<T>(
    objects: &[ObjectRef<T>],
    ready: &[u8],
    wanted: usize,
) -> (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>) {
    let mut done = Vec::with_capacity(wanted);
    let mut pending = Vec::with_capacity(objects.len() - wanted);
    for (index, object) in objects.iter().enumerate() {
        let is_ready = ready.get(index).is_some_and(|&flag| flag != 0);
        if is_ready && done.len() < wanted {
            done.push(object.clone());
        } else {
            pending.push(object.clone());
        }
    }
    (done, pending)
}

/// A timeout as the ABI's milliseconds: negative for none, rounded up, saturating.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> i64 {
    match timeout {
        None => -1,
        Some(timeout) => i64::try_from(millis_rounded_up(timeout)).unwrap_or(i64::MAX),
    }
}

/// The nodes of the cluster (Ray's `ray.nodes()`).
pub fn nodes() -> Vec<NodeInfo> {
    cluster_info(ClusterQuery::Nodes, "the node list")
}

/// Total resources of the live nodes (Ray's `ray.cluster_resources()`), e.g. `{"CPU": 2.0}`.
pub fn cluster_resources() -> BTreeMap<String, f64> {
    resource_map(ClusterQuery::ClusterResources, "the cluster resources")
}

/// Resources free right now (Ray's `ray.available_resources()`).
pub fn available_resources() -> BTreeMap<String, f64> {
    resource_map(ClusterQuery::AvailableResources, "the available resources")
}

fn resource_map(query: ClusterQuery, what: &str) -> BTreeMap<String, f64> {
    let list: Vec<(String, f64)> = cluster_info(query, what);
    list.into_iter().collect()
}

pub(crate) fn cluster_info<T: DeserializeOwned>(query: ClusterQuery, what: &str) -> T {
    let staged = codec::stage_and_read(|info_ptr| {
        // SAFETY: `info_ptr` points to a live `StagedInfo::SIZE`-byte buffer (see
        // `stage_and_read`), the size the host writes there.
        unsafe { sys::cluster_info(query as i32, info_ptr) }
    });
    let bytes = staged.into_plain_bytes();
    match wasmray_abi::decode(&bytes) {
        Ok(answer) => answer,
        Err(error) => {
            panic!("wasmray: the host sent {what} in a form that does not decode: {error}")
        }
    }
}
