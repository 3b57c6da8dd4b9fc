//! The actor imports of module `wasmray`: `create_actor`, `call_actor`, `get_actor`,
//! `kill_actor`, as `wit/wasmray.wit` describes them.
//!
//! An actor handle is an object handle like any other (its object is the actor's handle
//! object), so it lives in the same handle table, travels inside values the same way, and its
//! last release is what lets the actor go. What creating, calling and killing mean is the
//! node's business ([`crate::ActorServices`]).

use crate::guest_io::{
    call, check_returns, handle_to_id, memory, new_handles, stage, submitted_args,
};
use crate::memory::{fault, record, write_info, write_u32s};
use crate::nested::block_on;
use crate::services::ActorRequest;
use crate::state::{GuestState, StagedBytes};
use std::sync::Arc;
use wasmray_abi::{ActorCall, ActorCreation, ActorLookup, IMPORT_MODULE, TaskError, imports};
use wasmray_core::ObjectId;
use wasmtime::{Caller, Linker};

type Result<T> = wasmtime::Result<T>;

pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> Result<()> {
    linker.func_wrap_async(
        IMPORT_MODULE,
        imports::CREATE_ACTOR,
        |caller, (spec, len, info): (u32, u32, u32)| {
            Box::new(create_actor(caller, spec, len, info))
        },
    )?;
    linker.func_wrap(IMPORT_MODULE, imports::CALL_ACTOR, call_actor)?;
    linker.func_wrap_async(
        IMPORT_MODULE,
        imports::GET_ACTOR,
        |caller, (spec, len, info): (u32, u32, u32)| Box::new(get_actor(caller, spec, len, info)),
    )?;
    linker.func_wrap(IMPORT_MODULE, imports::KILL_ACTOR, kill_actor)?;
    Ok(())
}

/// Stages a handle to `found` (status 0) or the error (status 1) and writes the info.
fn stage_handle_or_error(
    data: &mut [u8],
    state: &mut GuestState,
    import: &'static str,
    info_ptr: u32,
    found: std::result::Result<ObjectId, TaskError>,
) -> Result<i32> {
    let (status, info) = match found {
        Ok(id) => (
            0,
            stage(state, import, StagedBytes::Owned(Vec::new()), &[id])?,
        ),
        Err(error) => {
            let bytes = wasmray_abi::encode(&error)
                .map_err(|e| fault(import, format!("cannot encode error: {e}")))?;
            (1, stage(state, import, StagedBytes::Owned(bytes), &[])?)
        }
    };
    write_info(data, import, info_ptr, info)?;
    Ok(status)
}

async fn create_actor(
    mut caller: Caller<'_, GuestState>,
    spec_ptr: u32,
    spec_len: u32,
    info_ptr: u32,
) -> Result<i32> {
    const IMPORT: &str = imports::CREATE_ACTOR;
    let memory = memory(&caller, IMPORT)?;
    let created = {
        let (data, state) = memory.data_and_store_mut(&mut caller);
        let spec: ActorCreation<'_> = record(data, IMPORT, spec_ptr, spec_len, "actor creation")?;
        let request = ActorRequest {
            class: spec.class.to_owned(),
            args: submitted_args(state, IMPORT, &spec.args)?,
            options: spec.options,
        };
        let services = Arc::clone(&state.services);
        let caller_info = call(state, IMPORT)?.caller.clone();
        services.create_actor(&caller_info, request)
    };
    let created = block_on(&mut caller, created).await?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    stage_handle_or_error(data, state, IMPORT, info_ptr, created)
}

fn call_actor(
    mut caller: Caller<'_, GuestState>,
    spec_ptr: u32,
    spec_len: u32,
    returns_ptr: u32,
) -> Result<i32> {
    const IMPORT: &str = imports::CALL_ACTOR;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let spec: ActorCall<'_> = record(data, IMPORT, spec_ptr, spec_len, "actor call")?;
    check_returns(data, IMPORT, spec.num_returns, returns_ptr)?;
    let actor = handle_to_id(state, IMPORT, spec.actor)?;
    let args = submitted_args(state, IMPORT, &spec.args)?;
    let services = Arc::clone(&state.services);
    let job = Arc::clone(&state.job);
    let caller_info = call(state, IMPORT)?.caller.clone();
    let ids = services
        .call_actor(
            &caller_info,
            &job,
            actor,
            spec.method,
            args,
            spec.num_returns,
            &spec.options,
        )
        .map_err(|e| fault(IMPORT, e))?;
    let handles = new_handles(state, IMPORT, &ids)?;
    write_u32s(data, IMPORT, returns_ptr, &handles)?;
    Ok(0)
}

async fn get_actor(
    mut caller: Caller<'_, GuestState>,
    spec_ptr: u32,
    spec_len: u32,
    info_ptr: u32,
) -> Result<i32> {
    const IMPORT: &str = imports::GET_ACTOR;
    let memory = memory(&caller, IMPORT)?;
    let found = {
        let (data, state) = memory.data_and_store_mut(&mut caller);
        let lookup: ActorLookup<'_> = record(data, IMPORT, spec_ptr, spec_len, "actor lookup")?;
        let services = Arc::clone(&state.services);
        let caller_info = call(state, IMPORT)?.caller.clone();
        services.get_actor(&caller_info, lookup.name, lookup.namespace, lookup.class)
    };
    let found = block_on(&mut caller, found).await?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    stage_handle_or_error(data, state, IMPORT, info_ptr, found)
}

fn kill_actor(mut caller: Caller<'_, GuestState>, handle: u32, no_restart: i32) -> Result<()> {
    const IMPORT: &str = imports::KILL_ACTOR;
    let state = caller.data_mut();
    let actor = handle_to_id(state, IMPORT, handle)?;
    state.services.kill_actor(actor, no_restart != 0);
    Ok(())
}
