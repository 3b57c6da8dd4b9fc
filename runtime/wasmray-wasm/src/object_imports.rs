//! The raw-bytes object imports of module `wasmray`, as `wit/wasmray.wit` describes them:
//! `put_bytes`, `object_len`, `map_object`, `unmap_object` (what the SDK's `Buffer` is built
//! on), and the streamed put, `put_begin` / `put_write` / `put_end`, which writes a large
//! value's bytes into the store piece by piece as the guest serializes it.

use crate::guest_io::{call, handle_to_id, memory, new_handle};
use crate::mapping::{map_into, unmap};
use crate::memory::{fault, read_u32s, slice};
use crate::state::GuestState;
use std::sync::Arc;
use wasmray_abi::{IMPORT_MODULE, imports};
use wasmtime::{AsContextMut, Caller, Linker};

type Result<T> = wasmtime::Result<T>;

pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> Result<()> {
    linker.func_wrap(IMPORT_MODULE, imports::PUT_BYTES, put_bytes)?;
    linker.func_wrap(IMPORT_MODULE, imports::OBJECT_LEN, object_len)?;
    linker.func_wrap(IMPORT_MODULE, imports::MAP_OBJECT, map_object)?;
    linker.func_wrap(IMPORT_MODULE, imports::UNMAP_OBJECT, unmap_object)?;
    linker.func_wrap(IMPORT_MODULE, imports::PUT_BEGIN, put_begin)?;
    linker.func_wrap(IMPORT_MODULE, imports::PUT_WRITE, put_write)?;
    linker.func_wrap(IMPORT_MODULE, imports::PUT_END, put_end)?;
    Ok(())
}

fn put_begin(mut caller: Caller<'_, GuestState>, len: i64) -> Result<()> {
    const IMPORT: &str = imports::PUT_BEGIN;
    let state = caller.data_mut();
    let services = Arc::clone(&state.services);
    let job = Arc::clone(&state.job);
    let call = call(state, IMPORT)?;
    if call.streamed_put.is_some() {
        return Err(fault(IMPORT, "a streamed put is already in progress"));
    }
    let len = u64::try_from(len).map_err(|_| fault(IMPORT, format!("negative length {len}")))?;
    // The store checks `len` against its capacity before it allocates anything.
    let room = services.reserve(&job, len).map_err(|e| fault(IMPORT, e))?;
    call.streamed_put = Some(room);
    Ok(())
}

fn put_write(mut caller: Caller<'_, GuestState>, bytes_ptr: u32, bytes_len: u32) -> Result<()> {
    const IMPORT: &str = imports::PUT_WRITE;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let bytes = slice(data, IMPORT, bytes_ptr, bytes_len)?;
    let room = call(state, IMPORT)?
        .streamed_put
        .as_mut()
        .ok_or_else(|| fault(IMPORT, "no streamed put is in progress"))?;
    room.write(bytes).map_err(|e| fault(IMPORT, e.to_string()))
}

fn put_end(mut caller: Caller<'_, GuestState>, refs_ptr: u32, refs_count: u32) -> Result<u32> {
    const IMPORT: &str = imports::PUT_END;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let handles = read_u32s(data, IMPORT, refs_ptr, refs_count)?;
    let contained = handles
        .iter()
        .map(|&handle| handle_to_id(state, IMPORT, handle))
        .collect::<Result<Vec<_>>>()?;
    let services = Arc::clone(&state.services);
    let call = call(state, IMPORT)?;
    let room = call
        .streamed_put
        .take()
        .ok_or_else(|| fault(IMPORT, "no streamed put is in progress"))?;
    let n = call.next_put();
    let id = services
        .put_reserved(&call.caller, n, room, contained)
        .map_err(|e| fault(IMPORT, e))?;
    new_handle(state, IMPORT, id)
}

fn put_bytes(mut caller: Caller<'_, GuestState>, bytes_ptr: u32, bytes_len: u32) -> Result<u32> {
    const IMPORT: &str = imports::PUT_BYTES;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let bytes = slice(data, IMPORT, bytes_ptr, bytes_len)?;
    let services = Arc::clone(&state.services);
    let job = Arc::clone(&state.job);
    let call = call(state, IMPORT)?;
    let n = call.next_put();
    let id = services
        .put(&call.caller, &job, n, bytes, Vec::new())
        .map_err(|e| fault(IMPORT, e))?;
    new_handle(state, IMPORT, id)
}

fn object_len(mut caller: Caller<'_, GuestState>, handle: u32) -> Result<i64> {
    let state = caller.data_mut();
    let id = handle_to_id(state, imports::OBJECT_LEN, handle)?;
    Ok(state
        .services
        .peek(id)
        .map_or(-1, |object| object.len() as i64))
}

fn map_object(
    mut caller: Caller<'_, GuestState>,
    handle: u32,
    dest_ptr: u32,
    dest_len: u32,
) -> Result<i32> {
    const IMPORT: &str = imports::MAP_OBJECT;
    let memory = memory(&caller, IMPORT)?;
    let id = handle_to_id(caller.data(), IMPORT, handle)?;
    let object = caller
        .data()
        .services
        .peek(id)
        .ok_or_else(|| fault(IMPORT, format!("object of handle {handle} is not ready")))?;
    let mappable_from = caller.data().mappable_from;
    let base = memory.data_ptr(&caller);
    let size = memory.data_size(&caller);
    // SAFETY: `base`/`size` describe this instance's linear memory, which never moves (its
    // reservation covers its maximum size); the guest is paused inside this import and the
    // host holds no reference into the region.
    let (status, mapping) =
        unsafe { map_into(base, size, dest_ptr, dest_len, mappable_from, &object) }
            .map_err(|e| fault(IMPORT, e.to_string()))?;
    if let Some(mapping) = mapping {
        caller.data_mut().mappings.push(mapping);
    }
    Ok(status as i32)
}

fn unmap_object(mut caller: Caller<'_, GuestState>, dest_ptr: u32, dest_len: u32) -> Result<()> {
    const IMPORT: &str = imports::UNMAP_OBJECT;
    let memory = memory(&caller, IMPORT)?;
    let state = caller.data_mut();
    let at = state
        .mappings
        .iter()
        .position(|m| {
            m.ptr == dest_ptr
                && m.len <= dest_len as usize
                && dest_len as usize - m.len < wasmray_abi::MAP_ALIGN as usize
        })
        .ok_or_else(|| {
            fault(
                IMPORT,
                format!("region {dest_ptr}+{dest_len} is not a current mapping"),
            )
        })?;
    let mapping = state.mappings.swap_remove(at);
    let base = memory.data_ptr(caller.as_context_mut());
    // SAFETY: the mapping was made in this memory, which never moves; the guest is paused
    // inside this import.
    unsafe { unmap(base, mapping) }.map_err(|e| fault(IMPORT, e.to_string()))
}
