//! The raw-bytes object imports of module `wasmray`: `put_bytes`, `object_len`, `map_object`,
//! `unmap_object` (what the SDK's `Buffer` is built on), as `wit/wasmray.wit` describes them.

use crate::imports::{call, handle_to_id, memory, new_handle};
use crate::mapping::{map_into, unmap};
use crate::memory::{fault, slice};
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
    Ok(())
}

fn put_bytes(mut caller: Caller<'_, GuestState>, bytes_ptr: u32, bytes_len: u32) -> Result<u32> {
    const IMPORT: &str = imports::PUT_BYTES;
    let memory = memory(&caller, IMPORT)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let bytes = slice(data, IMPORT, bytes_ptr, bytes_len)?;
    let services = Arc::clone(&state.services);
    let call = call(state, IMPORT)?;
    let n = call.puts;
    call.puts += 1;
    let id = services
        .put(&call.caller, n, bytes, Vec::new())
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

/// Takes every mapping away (end of a call, or before the instance goes).
pub(crate) fn unmap_all(store: &mut wasmtime::Store<GuestState>) {
    let mappings = std::mem::take(&mut store.data_mut().mappings);
    let Some(memory) = store.data().memory else {
        return;
    };
    let base = memory.data_ptr(&*store);
    for mapping in mappings {
        // SAFETY: made in this memory, which never moves; no guest code is running (the call
        // has ended) and the host holds no reference into it. A failure already zeroed it.
        let _ = unsafe { unmap(base, mapping) };
    }
}
