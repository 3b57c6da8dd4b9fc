//! The host functions of import module `wasmray`, as `wit/wasmray.wit` describes them.
//!
//! Each function checks what the guest passed (pointers, encodings, handles), translates
//! handles to object IDs and back, and leaves decisions to [`NodeServices`]. A bad request
//! traps the calling guest with a [`crate::GuestFault`]; nothing here panics on guest input.

use crate::handles::MAX_HANDLES;
use crate::memory::{fault, read_u32s, record, slice, slice_mut, write_info, write_u32s};
use crate::nested::block_on;
use crate::services::{GetOutcome, Submission, SubmittedArg};
use crate::state::{CallState, GuestState, Staged, StagedBytes};
use std::sync::Arc;
use std::time::Duration;
use wasmray_abi::{
    ArgOut, ClusterQuery, IMPORT_MODULE, MAX_RETURNS, StagedInfo, TaskSubmission, ValueOut, imports,
};
use wasmray_core::ObjectId;
use wasmtime::{Caller, Linker, Memory};

type Result<T> = wasmtime::Result<T>;

/// Longest panic message kept; the rest is cut.
const MAX_PANIC_MESSAGE: usize = 64 * 1024;

/// Defines every import of [`wasmray_abi::imports::ALL`] in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> Result<()> {
    linker.func_wrap(IMPORT_MODULE, imports::SUBMIT_TASK, submit_task)?;
    linker.func_wrap(IMPORT_MODULE, imports::PUT, put)?;
    linker.func_wrap_async(
        IMPORT_MODULE,
        imports::GET,
        |caller, (handle, timeout, info): (u32, i64, u32)| {
            Box::new(get(caller, handle, timeout, info))
        },
    )?;
    linker.func_wrap_async(
        IMPORT_MODULE,
        imports::WAIT,
        |caller, (handles, count, num_returns, timeout, ready): (u32, u32, u32, i64, u32)| {
            Box::new(wait(caller, handles, count, num_returns, timeout, ready))
        },
    )?;
    linker.func_wrap(IMPORT_MODULE, imports::RELEASE, release)?;
    linker.func_wrap(IMPORT_MODULE, imports::STAGED_READ, staged_read)?;
    linker.func_wrap(IMPORT_MODULE, imports::TASK_ARG, task_arg)?;
    linker.func_wrap(IMPORT_MODULE, imports::TASK_RETURN, task_return)?;
    linker.func_wrap(IMPORT_MODULE, imports::REPORT_PANIC, report_panic)?;
    linker.func_wrap(IMPORT_MODULE, imports::CLUSTER_INFO, cluster_info)?;
    linker.func_wrap(IMPORT_MODULE, imports::CANCEL, cancel)?;
    linker.func_wrap(IMPORT_MODULE, imports::TASK_NUM_RETURNS, task_num_returns)?;
    crate::actor_imports::add_to_linker(linker)?;
    crate::object_imports::add_to_linker(linker)?;
    Ok(())
}

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
    fault(
        import,
        format!("the instance already holds {MAX_HANDLES} object refs, the most one may"),
    )
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

fn timeout_of(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
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
                    .store_value(value.bytes, contained)
                    .map_err(|e| fault(import, e))?;
                Ok(SubmittedArg::Value(stored))
            }
        })
        .collect()
}

fn submit_task(
    mut caller: Caller<'_, GuestState>,
    spec_ptr: u32,
    spec_len: u32,
    returns_ptr: u32,
) -> Result<i32> {
    const IMPORT: &str = imports::SUBMIT_TASK;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let spec: TaskSubmission<'_> = record(data, IMPORT, spec_ptr, spec_len, "task submission")?;
    check_returns(data, IMPORT, spec.num_returns, returns_ptr)?;
    let args = submitted_args(state, IMPORT, &spec.args)?;
    let submission = Submission {
        function: spec.function.to_owned(),
        args,
        num_returns: spec.num_returns,
        options: spec.options,
    };
    let services = Arc::clone(&state.services);
    let caller_info = call(state, IMPORT)?.caller.clone();
    let ids = services.submit(&caller_info, submission);
    let handles = new_handles(state, IMPORT, &ids)?;
    write_u32s(data, IMPORT, returns_ptr, &handles)?;
    Ok(0)
}

fn put(mut caller: Caller<'_, GuestState>, value_ptr: u32, value_len: u32) -> Result<u32> {
    const IMPORT: &str = imports::PUT;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let value: ValueOut<'_> = record(data, IMPORT, value_ptr, value_len, "value")?;
    let contained = value_refs(state, IMPORT, &value)?;
    let services = Arc::clone(&state.services);
    let call = call(state, IMPORT)?;
    let n = call.next_put();
    let id = services
        .put(&call.caller, n, value.bytes, contained)
        .map_err(|e| fault(IMPORT, e))?;
    new_handle(state, IMPORT, id)
}

/// Stages `bytes` and the handles of `contained` (whose references the caller already added).
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

async fn get(
    mut caller: Caller<'_, GuestState>,
    handle: u32,
    timeout_ms: i64,
    info_ptr: u32,
) -> Result<i32> {
    const IMPORT: &str = imports::GET;
    let memory = memory(&caller, IMPORT)?;
    let (id, task, services) = {
        let state = caller.data_mut();
        let id = handle_to_id(state, IMPORT, handle)?;
        (
            id,
            call(state, IMPORT)?.caller.clone(),
            Arc::clone(&state.services),
        )
    };
    let outcome = block_on(&mut caller, services.get(&task, id, timeout_of(timeout_ms))).await?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let (status, info) = match outcome {
        GetOutcome::Value(object) => {
            let contained = object.contained().to_vec();
            (
                0,
                stage(state, IMPORT, StagedBytes::Object(object), &contained)?,
            )
        }
        GetOutcome::Error(error) => {
            let bytes = wasmray_abi::encode(&*error)
                .map_err(|e| fault(IMPORT, format!("cannot encode error: {e}")))?;
            (1, stage(state, IMPORT, StagedBytes::Owned(bytes), &[])?)
        }
        GetOutcome::Timeout => return Ok(2),
        GetOutcome::Missing => {
            return Err(fault(
                IMPORT,
                format!("handle {handle} refers to an object that no longer exists"),
            ));
        }
    };
    write_info(data, IMPORT, info_ptr, info)?;
    Ok(status)
}

async fn wait(
    mut caller: Caller<'_, GuestState>,
    handles_ptr: u32,
    count: u32,
    num_returns: u32,
    timeout_ms: i64,
    ready_ptr: u32,
) -> Result<u32> {
    const IMPORT: &str = imports::WAIT;
    let memory = memory(&caller, IMPORT)?;
    let (ids, task, services) = {
        let (data, state) = memory.data_and_store_mut(&mut caller);
        let handles = read_u32s(data, IMPORT, handles_ptr, count)?;
        let ids = handles
            .iter()
            .map(|&h| handle_to_id(state, IMPORT, h))
            .collect::<Result<Vec<_>>>()?;
        (
            ids,
            call(state, IMPORT)?.caller.clone(),
            Arc::clone(&state.services),
        )
    };
    let ready = block_on(
        &mut caller,
        services.wait(&task, ids, num_returns as usize, timeout_of(timeout_ms)),
    )
    .await?;
    let data = memory.data_mut(&mut caller);
    let out = slice_mut(data, IMPORT, ready_ptr, ready.len())?;
    for (byte, &is_ready) in out.iter_mut().zip(&ready) {
        *byte = u8::from(is_ready);
    }
    Ok(ready.iter().filter(|&&r| r).count() as u32)
}

fn release(mut caller: Caller<'_, GuestState>, handle: u32) {
    let state = caller.data_mut();
    if let Some(id) = state.handles.remove(handle) {
        state.services.release(&[id]);
    }
}

fn staged_read(mut caller: Caller<'_, GuestState>, bytes_ptr: u32, handles_ptr: u32) -> Result<()> {
    const IMPORT: &str = imports::STAGED_READ;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let staged = state
        .staged
        .take()
        .ok_or_else(|| fault(IMPORT, "nothing is staged"))?;
    let out = slice_mut(data, IMPORT, bytes_ptr, staged.bytes.len())?;
    staged
        .bytes
        .with_bytes(|bytes| out.copy_from_slice(bytes))
        .map_err(|e| fault(IMPORT, e.to_string()))?;
    write_u32s(data, IMPORT, handles_ptr, &staged.handles)
}

fn task_arg(mut caller: Caller<'_, GuestState>, index: u32, info_ptr: u32) -> Result<()> {
    const IMPORT: &str = imports::TASK_ARG;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let call = call(state, IMPORT)?;
    let arg = call.args.get(index as usize).cloned().ok_or_else(|| {
        fault(
            IMPORT,
            format!(
                "argument {index} does not exist (the task has {})",
                call.args.len()
            ),
        )
    })?;
    let contained = arg.contained().to_vec();
    state.services.add_refs(&contained);
    let info = stage(state, IMPORT, StagedBytes::Object(arg), &contained)?;
    write_info(data, IMPORT, info_ptr, info)
}

fn task_return(mut caller: Caller<'_, GuestState>, values_ptr: u32, values_len: u32) -> Result<()> {
    const IMPORT: &str = imports::TASK_RETURN;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let values: Vec<ValueOut<'_>> = record(data, IMPORT, values_ptr, values_len, "return values")?;
    let mut results = Vec::with_capacity(values.len());
    for value in &values {
        let contained = value_refs(state, IMPORT, value)?;
        results.push(
            state
                .services
                .store_value(value.bytes, contained)
                .map_err(|e| fault(IMPORT, e))?,
        );
    }
    let call = call(state, IMPORT)?;
    if call.results.is_some() {
        return Err(fault(IMPORT, "called twice in one task"));
    }
    call.results = Some(results);
    Ok(())
}

fn report_panic(
    mut caller: Caller<'_, GuestState>,
    message_ptr: u32,
    message_len: u32,
) -> Result<()> {
    const IMPORT: &str = imports::REPORT_PANIC;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let len = message_len.min(MAX_PANIC_MESSAGE as u32);
    let message = String::from_utf8_lossy(slice(data, IMPORT, message_ptr, len)?).into_owned();
    call(state, IMPORT)?.panic_message = Some(message);
    Ok(())
}

fn task_num_returns(mut caller: Caller<'_, GuestState>) -> Result<u32> {
    Ok(call(caller.data_mut(), imports::TASK_NUM_RETURNS)?.num_returns)
}

fn cancel(
    mut caller: Caller<'_, GuestState>,
    handle: u32,
    _force: i32,
    recursive: i32,
) -> Result<i32> {
    let state = caller.data_mut();
    let id = handle_to_id(state, imports::CANCEL, handle)?;
    Ok(i32::from(state.services.cancel(id, recursive != 0)))
}

fn cluster_info(mut caller: Caller<'_, GuestState>, query: i32, info_ptr: u32) -> Result<()> {
    const IMPORT: &str = imports::CLUSTER_INFO;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let query = ClusterQuery::from_i32(query)
        .ok_or_else(|| fault(IMPORT, format!("unknown query {query}")))?;
    let caller = call(state, IMPORT)?.caller.clone();
    let answer = state.services.cluster_info(&caller, query);
    let info = stage(state, IMPORT, StagedBytes::Owned(answer), &[])?;
    write_info(data, IMPORT, info_ptr, info)
}
