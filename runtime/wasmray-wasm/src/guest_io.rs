//! What every import does with the guest that called it: its memory, the call in progress,
//! handles to and from object IDs (with the table's limit), submitted arguments, staged
//! replies, the results-buffer check.
//!
//! Shared by the import sets (`imports.rs`, `actor_imports.rs`, `object_imports.rs`), which
//! depend on it and never on each other. It decides nothing: the node does, through
//! [`crate::NodeServices`].

use crate::memory::{fault, slice};
use crate::services::SubmittedArg;
use crate::state::{CallState, GuestState, Staged, StagedBytes};
use wasmray_abi::{ArgOut, MAX_RETURNS, StagedInfo, ValueOut};
use wasmray_core::ObjectId;
use wasmtime::{Caller, Memory};

type Result<T> = wasmtime::Result<T>;

pub(crate) fn memory(caller: &Caller<'_, GuestState>, import: &'static str) -> Result<Memory> {
    caller
        .data()
        .memory
        .ok_or_else(|| fault(import, "the module exports no memory"))
}

pub(crate) fn call<'a>(
    state: &'a mut GuestState,
    import: &'static str,
) -> Result<&'a mut CallState> {
    state
        .call
        .as_mut()
        .ok_or_else(|| fault(import, "called while no task is running"))
}

/// A new handle for `id`, whose reference the caller already counted. If the table is full,
/// the reference is dropped again and the guest traps.
pub(crate) fn new_handle(
    state: &mut GuestState,
    import: &'static str,
    id: ObjectId,
) -> Result<u32> {
    match state.handles.insert(id) {
        Some(handle) => Ok(handle),
        None => Err(table_full(state, import, &[id])),
    }
}

/// New handles for `ids`, whose references the caller already counted. If the table fills up,
/// those references are dropped again and the guest traps.
pub(crate) fn new_handles(
    state: &mut GuestState,
    import: &'static str,
    ids: &[ObjectId],
) -> Result<Vec<u32>> {
    let mut handles = Vec::with_capacity(ids.len());
    for &id in ids {
        match state.handles.insert(id) {
            Some(handle) => handles.push(handle),
            None => {
                for &handle in &handles {
                    state.handles.remove(handle);
                }
                return Err(table_full(state, import, ids));
            }
        }
    }
    Ok(handles)
}

/// Drops the references of `ids`, which found no room in the handle table, and names the limit.
fn table_full(state: &GuestState, import: &'static str, ids: &[ObjectId]) -> wasmtime::Error {
    state.services.release(ids);
    let quota = wasmray_core::QuotaExceeded {
        quota: wasmray_core::Quota::Handles,
        limit: state.handles.limit() as u64,
    };
    fault(import, quota.to_string())
}

pub(crate) fn handle_to_id(
    state: &GuestState,
    import: &'static str,
    handle: u32,
) -> Result<ObjectId> {
    state
        .handles
        .get(handle)
        .ok_or_else(|| fault(import, format!("unknown object handle {handle}")))
}

pub(crate) fn value_refs(
    state: &GuestState,
    import: &'static str,
    value: &ValueOut<'_>,
) -> Result<Vec<ObjectId>> {
    value
        .refs
        .iter()
        .map(|&h| handle_to_id(state, import, h))
        .collect()
}

/// Refuses a submission's `num_returns` above [`MAX_RETURNS`], or a `returns_ptr` with no room
/// for that many handles, before anything is created for it.
pub(crate) fn check_returns(
    data: &[u8],
    import: &'static str,
    num_returns: u32,
    returns_ptr: u32,
) -> Result<()> {
    if num_returns > MAX_RETURNS {
        return Err(fault(
            import,
            format!("num_returns {num_returns} is above the limit of {MAX_RETURNS}"),
        ));
    }
    slice(data, import, returns_ptr, num_returns * 4).map(|_| ())
}

/// Translates a submission's arguments: handles to object IDs, values stored.
pub(crate) fn submitted_args(
    state: &GuestState,
    import: &'static str,
    args: &[ArgOut<'_>],
) -> Result<Vec<SubmittedArg>> {
    args.iter()
        .map(|arg| match arg {
            ArgOut::Ref(handle) => Ok(SubmittedArg::ByRef(handle_to_id(state, import, *handle)?)),
            ArgOut::Value(value) => {
                let contained = value_refs(state, import, value)?;
                let stored = state
                    .services
                    .store_value(&state.job, value.bytes, contained)
                    .map_err(|e| fault(import, e))?;
                Ok(SubmittedArg::Value(stored))
            }
        })
        .collect()
}

pub(crate) fn stage(
    state: &mut GuestState,
    import: &'static str,
    bytes: StagedBytes,
    contained: &[ObjectId],
) -> Result<StagedInfo> {
    let handles = new_handles(state, import, contained)?;
    let info = StagedInfo {
        bytes_len: bytes.len() as u32,
        refs_len: handles.len() as u32,
    };
    state.staged = Some(Staged { bytes, handles });
    Ok(info)
}
