//! The guest memory a [`Buffer`](crate::Buffer) reads an object through: a region of this
//! instance's linear memory that the host maps the object's pages into (or copies its bytes
//! into), and the bookkeeping that keeps the mapping and the allocator from stepping on each
//! other.
//!
//! A [`Region`] is one allocation from the global allocator, aligned to `MAP_ALIGN` (one wasm
//! page) and a whole number of `MAP_ALIGN`s long, as `map_object` requires. The host then either
//! maps the store's pages over it copy-on-write ([`MapStatus::Mapped`]) or copies the bytes in
//! ([`MapStatus::Copied`]). Dropping a region ends the mapping with `unmap_object` *before* the
//! memory goes back to the allocator: once freed, the allocator may hand those pages to anyone,
//! and they must be ordinary zeroed memory again by then.
//!
//! Mappings in a task instance end when the task call returns (the host replaces them with zero
//! pages, `wit/wasmray.wit`), as do the call's handles; in an actor instance both last as long
//! as the instance. A region that outlives its task call (a `Buffer` kept in a `static` of a
//! reused instance) is therefore stale: [`task_call_started`] counts task calls, a region
//! remembers the call it was mapped in, [`Region::check_live`] refuses to lend a stale region
//! (it would read as zeros) and `Drop` does not unmap one (the host already did, and
//! `unmap_object` would trap).
//!
//! This file knows bytes only: element types, lengths in elements and the public API live in
//! [`crate::buffer`]. It does not decide when to map; the buffer does, on first access.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cell::Cell;
use std::ptr::NonNull;
use wasmray_abi::{MAP_ALIGN, MapStatus};

use crate::codec;
use crate::sys;

thread_local! {
    /// How many task calls this instance has started (0 in a driver or an actor instance, whose
    /// mappings last as long as the call or the instance).
    static TASK_CALL: Cell<u64> = const { Cell::new(0) };
}

/// Notes that a task call begins: mappings made by earlier calls have been ended by the host.
pub(crate) fn task_call_started() {
    TASK_CALL.with(|call| call.set(call.get().wrapping_add(1)));
}

fn current_task_call() -> u64 {
    TASK_CALL.with(Cell::get)
}

/// What the host did with a region, and in which task call.
#[derive(Debug, Clone, Copy)]
enum State {
    /// The object's pages are mapped here; the host ends the mapping when task call `call`
    /// returns, unless `unmap_object` does it first.
    Mapped { call: u64 },
    /// The bytes were copied here: plain memory of ours, nothing to unmap.
    Copied,
}

/// A `MAP_ALIGN`-aligned allocation holding an object's bytes, mapped or copied.
pub(crate) struct Region {
    ptr: NonNull<u8>,
    /// Size (a multiple of `MAP_ALIGN`) and alignment (`MAP_ALIGN`) of the allocation.
    layout: Layout,
    /// The object's length in bytes: at most `layout.size()`, never 0.
    len: usize,
    state: State,
}

impl Region {
    /// Allocates a region for an object of `len` bytes (not 0) and has the host map the object
    /// behind `handle` into it, or copy it there.
    ///
    /// # Panics
    /// When `len` is 0 or too large for this guest's address space; aborts (as `Vec` does) when
    /// the allocator cannot provide the region. The host traps the guest on a bad handle.
    pub(crate) fn map(handle: u32, len: usize) -> Self {
        assert!(len > 0, "wasmray: an empty object needs no region");
        let align = MAP_ALIGN as usize;
        let layout = len
            .checked_next_multiple_of(align)
            .and_then(|size| Layout::from_size_align(size, align).ok());
        let Some(layout) = layout else {
            panic!("wasmray: an object of {len} bytes does not fit in this guest's memory");
        };
        // SAFETY: `layout` has a non-zero size (at least `len` > 0) and a power-of-two
        // alignment, which is all `alloc` asks.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        let dest_len = codec::abi_len(layout.size(), "a mapping region");
        // SAFETY: `ptr[..layout.size()]` is the allocation just made (so no slice of it has
        // been lent), aligned to `MAP_ALIGN` and a multiple of it long, as `map_object`
        // requires; the host writes only inside it. The handle is a scalar the host checks.
        let status = unsafe { sys::map_object(handle, ptr.as_ptr(), dest_len) };
        let state = match MapStatus::from_i32(status) {
            Some(MapStatus::Mapped) => State::Mapped {
                call: current_task_call(),
            },
            Some(MapStatus::Copied) => State::Copied,
            None => panic!("wasmray: the host answered map_object with unknown status {status}"),
        };
        Self {
            ptr,
            layout,
            len,
            state,
        }
    }

    /// Checks that the region still holds the object: a copy always does, a mapping only until
    /// the task call it was made in returns.
    ///
    /// # Panics
    /// When the mapping belongs to a task call that has returned: the host has replaced it
    /// with zero pages and released the call's handles, so nothing is left to read.
    pub(crate) fn check_live(&self) {
        if let State::Mapped { call } = self.state
            && call != current_task_call()
        {
            panic!(
                "wasmray: a Buffer mapped in an earlier task call is read again (kept in a \
                 static of a reused instance?): a task's mappings and object refs end when its \
                 call returns; pass the buffer to each call instead"
            );
        }
    }

    /// The first byte of the object. The pointer comes from the allocator, not from a
    /// reference: it may be written through (see `Buffer::as_ptr`).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The object's length in bytes; `len()` bytes from [`Self::as_ptr`] hold its contents.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the store's pages are mapped here (no copy was made).
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.state, State::Mapped { .. })
    }

    /// Whether the host copied the bytes (the region is plain memory of ours).
    pub(crate) fn is_copied(&self) -> bool {
        matches!(self.state, State::Copied)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let State::Mapped { call } = self.state
            && call == current_task_call()
        {
            let len = codec::abi_len(self.layout.size(), "a mapping region");
            // SAFETY: `ptr[..layout.size()]` is exactly the region `map_object` mapped in this
            // call (the state says so, and a mapping of an earlier task call was ended by the
            // host, so it is not unmapped twice). `&mut self` means no slice of it is alive.
            unsafe { sys::unmap_object(self.ptr.as_ptr(), len) };
        }
        // SAFETY: `ptr` was returned by `alloc(layout)` with this very layout and is freed once,
        // here. The host no longer maps anything over it (unmapped above, or ended with its
        // task call, or never mapped), so the allocator gets back ordinary memory of ours.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}
