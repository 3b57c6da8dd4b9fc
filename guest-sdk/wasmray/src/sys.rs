//! The raw host imports of module `wasmray`, exactly as `wit/wasmray.wit` declares them.
//!
//! Every function here is a core wasm import: `u32` pointers and lengths of the WIT become
//! `*const u8` / `*mut u8` / `u32`, `s32` becomes `i32` and `s64` becomes `i64`. The names are
//! those of `wasmray_abi::imports::ALL`, in the same order; a host-side test parses this file and
//! checks it against that list and the WIT, so keep exactly one declaration per import, with the
//! keyword, the name and the opening parenthesis on one line, inside the single `extern` block
//! below, and no other function declarations in this file.
//!
//! This module does no encoding, no allocation and no error handling: the safe wrappers in
//! [`crate::codec`], [`crate::api`], [`crate::task`], [`crate::buffer`] and [`crate::region`]
//! do. The host bounds-checks every pointer and traps the guest on a bad one, so a wrong pointer
//! here is a clean trap, never memory corruption in the host; inside the guest, the callers must
//! still pass buffers of the sizes the ABI describes, because the host writes into them.

#[link(wasm_import_module = "wasmray")]
unsafe extern "C" {
    /// Submits the postcard `TaskSubmission` at `spec_ptr[..spec_len]`; the host writes
    /// `num_returns` handles (`u32` each, little-endian) at `returns_ptr`. Returns 0.
    pub fn submit_task(spec_ptr: *const u8, spec_len: u32, returns_ptr: *mut u8) -> i32;

    /// Stores the postcard `ValueOut` at `value_ptr[..value_len]` as a new object and returns
    /// its handle. Traps when the object store cannot hold it.
    pub fn put(value_ptr: *const u8, value_len: u32) -> u32;

    /// Blocks until the object is ready (or `timeout_ms` passes; negative means no timeout),
    /// stages its value (0) or its `TaskError` (1) and writes a `StagedInfo` (8 bytes) at
    /// `info_ptr`; returns 2 on timeout with nothing staged.
    pub fn get(handle: u32, timeout_ms: i64, info_ptr: *mut u8) -> i32;

    /// Ray's `wait`: writes one byte per handle at `ready_ptr` (1 ready, 0 not) and returns how
    /// many are ready, once `num_returns` are or `timeout_ms` has passed.
    pub fn wait(
        handles_ptr: *const u8,
        count: u32,
        num_returns: u32,
        timeout_ms: i64,
        ready_ptr: *mut u8,
    ) -> u32;

    /// Drops a handle; unknown handles are ignored.
    pub fn release(handle: u32);

    /// Copies the staged bytes to `bytes_ptr` and the staged handles (`u32` each) to
    /// `handles_ptr`, in the sizes the last `StagedInfo` announced; then clears the stage.
    pub fn staged_read(bytes_ptr: *mut u8, handles_ptr: *mut u8);

    /// Stages argument `index` of the running task and writes a `StagedInfo` at `info_ptr`.
    pub fn task_arg(index: u32, info_ptr: *mut u8);

    /// Sets the running task's results: a postcard `Vec<ValueOut>` at `values_ptr`.
    pub fn task_return(values_ptr: *const u8, values_len: u32);

    /// Records the guest's panic message (UTF-8) before the panic traps.
    pub fn report_panic(message_ptr: *const u8, message_len: u32);

    /// Stages an answer about the cluster (0 nodes, 1 total resources, 2 available resources)
    /// and writes a `StagedInfo` at `info_ptr`.
    pub fn cluster_info(query: i32, info_ptr: *mut u8);

    /// Creates an actor from the postcard `ActorCreation` at `spec_ptr[..spec_len]` and returns
    /// at once: 0 stages one handle (the actor's), 1 a `TaskError`; writes a `StagedInfo` at
    /// `info_ptr`.
    pub fn create_actor(spec_ptr: *const u8, spec_len: u32, info_ptr: *mut u8) -> i32;

    /// Calls an actor's method from the postcard `ActorCall` at `spec_ptr[..spec_len]`; the host
    /// writes `num_returns` handles (`u32` each) at `returns_ptr`. Returns 0.
    pub fn call_actor(spec_ptr: *const u8, spec_len: u32, returns_ptr: *mut u8) -> i32;

    /// Looks up a named actor from the postcard `ActorLookup` at `spec_ptr[..spec_len]`: 0
    /// stages one handle, 1 a `TaskError`; writes a `StagedInfo` at `info_ptr`.
    pub fn get_actor(spec_ptr: *const u8, spec_len: u32, info_ptr: *mut u8) -> i32;

    /// Kills the actor behind `handle`; with `no_restart` 0 it may be restarted.
    pub fn kill_actor(handle: u32, no_restart: i32);

    /// Stores the raw bytes at `bytes_ptr[..bytes_len]` (no postcard framing, no refs) as a new
    /// object and returns its handle: one copy into the store. Traps when the store cannot hold
    /// them.
    pub fn put_bytes(bytes_ptr: *const u8, bytes_len: u32) -> u32;

    /// The length in bytes of a ready object, without reading it; -1 while it is not ready.
    pub fn object_len(handle: u32) -> i64;

    /// Makes the object's bytes readable at `dest_ptr[..dest_len]` (both multiples of
    /// `MAP_ALIGN`, `dest_len` at least the object's length rounded up to it): 0 when the
    /// store's pages were mapped there copy-on-write, 1 when the bytes were copied. Bytes past
    /// the object's length read as zero.
    pub fn map_object(handle: u32, dest_ptr: *mut u8, dest_len: u32) -> i32;

    /// Ends a mapping `map_object` made (status 0) at exactly `dest_ptr[..dest_len]`: the region
    /// becomes fresh zeroed memory of the guest's.
    pub fn unmap_object(dest_ptr: *mut u8, dest_len: u32);

    /// Starts a streamed `put` of a value whose postcard encoding is `len` bytes: reserves room
    /// for it in the store. Traps when the store cannot hold it or a streamed put is already in
    /// progress in this call.
    pub fn put_begin(len: i64);

    /// Appends `bytes_ptr[..bytes_len]` to the streamed put in progress. Traps past its length.
    pub fn put_write(bytes_ptr: *const u8, bytes_len: u32);

    /// Ends the streamed put: every reserved byte must have been written. The `refs_count`
    /// handles at `refs_ptr` are the refs inside the value, by index. Returns the new object's
    /// handle.
    pub fn put_end(refs_ptr: *const u8, refs_count: u32) -> u32;

    /// Cancels the task that makes the object behind `handle` (`force`, `recursive`: 0 or 1);
    /// 1 if a task was cancelled, 0 if there was none to cancel.
    pub fn cancel(handle: u32, force: i32, recursive: i32) -> i32;

    /// How many results the caller of the running task or method asked for.
    pub fn task_num_returns() -> u32;
}
