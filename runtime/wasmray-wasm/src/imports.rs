//! The host functions of import module `wasmray`, as `wit/wasmray.wit` describes them.
//!
//! Each function checks what the guest passed (pointers, encodings, handles), translates
//! handles to object IDs and back, and leaves decisions to [`NodeServices`]. A bad request
//! traps the calling guest with a [`crate::GuestFault`]; nothing here panics on guest input.

use crate::guest_io::{
    call, check_returns, handle_to_id, memory, new_handle, new_handles, stage, submitted_args,
    value_refs,
};
use crate::memory::{fault, read_u32s, record, slice, slice_mut, write_info, write_u32s};
use crate::nested::block_on;
use crate::services::{GetOutcome, Submission};
use crate::state::{GuestState, StagedBytes};
use std::sync::Arc;
use std::time::Duration;
use wasmray_abi::{ClusterQuery, IMPORT_MODULE, TaskSubmission, ValueOut, imports};
use wasmtime::{Caller, Linker};

type Result<T> = wasmtime::Result<T>;

/// Longest panic message kept; the rest is cut.
const MAX_PANIC_MESSAGE: usize = 64 * 1024;

/// Defines the task, object and cluster imports of [`wasmray_abi::imports::ALL`] in `linker`
/// (the actor and streamed-object ones are in `actor_imports.rs` and `object_imports.rs`).
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
    Ok(())
}

fn timeout_of(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
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
    let job = Arc::clone(&state.job);
    let caller_info = call(state, IMPORT)?.caller.clone();
    let ids = services
        .submit(&caller_info, &job, submission)
        .map_err(|e| fault(IMPORT, e))?;
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
    let job = Arc::clone(&state.job);
    let call = call(state, IMPORT)?;
    let n = call.next_put();
    let id = services
        .put(&call.caller, &job, n, value.bytes, contained)
        .map_err(|e| fault(IMPORT, e))?;
    new_handle(state, IMPORT, id)
}

/// Stages `bytes` and the handles of `contained` (whose references the caller already added).
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
                .store_value(&state.job, value.bytes, contained)
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
