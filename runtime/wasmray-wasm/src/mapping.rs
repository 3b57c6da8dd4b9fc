//! Zero-copy reads: mapping an object's pages copy-on-write into a guest's linear memory, and
//! taking the mapping away again.
//!
//! `map_object` puts the store's file pages (`MAP_PRIVATE | MAP_FIXED`) over a region the guest
//! reserved, so a 1 GiB object costs a system call, not a copy; guest writes stay private and
//! the object never changes. The host keeps the object alive while it is mapped (its arena
//! range is never reused under a mapping), and every mapping is replaced by fresh anonymous
//! zero pages when the guest unmaps it, when a task's call ends, and before an instance is
//! dropped — so the next tenant of a pooled memory slot never sees the previous object's bytes
//! (DESIGN.md §4, hazard 1). Regions inside the module's initial memory (where wasmtime keeps
//! the module's data image) are never mapped over: objects are copied there instead.

use std::sync::Arc;
use wasmray_abi::{MAP_ALIGN, MapStatus};
use wasmray_store::{Pin, StoredObject};

/// An object mapped into a guest's memory.
pub(crate) struct Mapping {
    /// Offset of the region in linear memory.
    pub(crate) ptr: u32,
    /// Bytes replaced by the mapping (the object's length rounded up to host pages).
    pub(crate) len: usize,
    /// Keeps the object resident at the mapped arena range (never spilled or reused).
    _pin: Pin,
}

/// Why a region cannot receive an object.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MapError {
    #[error("region {ptr}+{len} is not aligned to {MAP_ALIGN} bytes")]
    Unaligned { ptr: u32, len: u32 },
    #[error("region {ptr}+{len} is too small for an object of {object} bytes")]
    TooSmall { ptr: u32, len: u32, object: usize },
    #[error("region {ptr}+{len} is outside guest memory ({memory} bytes)")]
    OutOfBounds { ptr: u32, len: u32, memory: usize },
    #[error("mmap failed: {0}")]
    Mmap(std::io::Error),
    #[error("{0}")]
    Store(#[from] wasmray_store::StoreError),
}

fn host_page() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096).max(1)
}

/// Makes `object`'s bytes readable at `[ptr, ptr + len)` of the memory at `base` (`size` bytes
/// long): mapped if it lives in the arena and the region lies at or above `mappable_from`,
/// copied otherwise. Bytes past the object read as zero.
///
/// # Safety
/// `base` must be the start of a linear memory of `size` bytes that never moves, and no Rust
/// reference into `[ptr, ptr + len)` may be alive (the caller holds the guest paused inside
/// an import).
pub(crate) unsafe fn map_into(
    base: *mut u8,
    size: usize,
    ptr: u32,
    len: u32,
    mappable_from: usize,
    object: &Arc<StoredObject>,
) -> Result<(MapStatus, Option<Mapping>), MapError> {
    if !ptr.is_multiple_of(MAP_ALIGN) || !len.is_multiple_of(MAP_ALIGN) {
        return Err(MapError::Unaligned { ptr, len });
    }
    let bytes = object.len();
    if (len as usize) < bytes {
        return Err(MapError::TooSmall {
            ptr,
            len,
            object: bytes,
        });
    }
    let (start, region) = (ptr as usize, len as usize);
    if start.checked_add(region).is_none_or(|end| end > size) {
        return Err(MapError::OutOfBounds {
            ptr,
            len,
            memory: size,
        });
    }
    let page = host_page();
    let mapped_len = bytes.div_ceil(page) * page;
    let pin = object.pin()?;
    match pin.mappable() {
        Some(range)
            if start >= mappable_from && bytes > 0 && range.offset.is_multiple_of(page as u64) =>
        {
            // SAFETY: `[start, start + mapped_len)` lies inside the memory (checked above:
            // mapped_len <= region, as region is a multiple of 64 KiB >= bytes), which never
            // moves and which nothing else references now (the caller's contract). The file
            // range is the object's own arena allocation, page-aligned, kept in place by the
            // pin the returned `Mapping` holds, inside a file whose size is sealed.
            let mapped = unsafe {
                libc::mmap(
                    base.add(start).cast(),
                    mapped_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    range.fd,
                    range.offset as libc::off_t,
                )
            };
            if mapped == libc::MAP_FAILED {
                return Err(MapError::Mmap(std::io::Error::last_os_error()));
            }
            // SAFETY: as above, for the rest of the region, which stays the guest's memory.
            unsafe {
                base.add(start + mapped_len)
                    .write_bytes(0, region - mapped_len)
            };
            let mapping = Mapping {
                ptr,
                len: mapped_len,
                _pin: pin,
            };
            Ok((MapStatus::Mapped, Some(mapping)))
        }
        _ => {
            let source = object.read()?;
            // SAFETY: the region is inside the memory and unreferenced (as above); the source
            // is the object's own bytes, which cannot overlap guest memory.
            unsafe {
                std::ptr::copy_nonoverlapping(source.as_ptr(), base.add(start), bytes);
                base.add(start + bytes).write_bytes(0, region - bytes);
            }
            Ok((MapStatus::Copied, None))
        }
    }
}

/// Replaces a mapping with fresh anonymous zero pages (private to the guest, as before); if
/// the kernel refuses, zeroes the pages in place instead and reports the error.
///
/// # Safety
/// As for [`map_into`]: `base` is the never-moving memory the mapping was made in, and no
/// reference into the mapped range is alive.
pub(crate) unsafe fn unmap(base: *mut u8, mapping: Mapping) -> Result<(), MapError> {
    // SAFETY: the range was mapped by `map_into` inside this memory and is replaced in place
    // by the same kind of memory wasmtime gives a linear memory: private, anonymous, RW.
    let replaced = unsafe {
        libc::mmap(
            base.add(mapping.ptr as usize).cast(),
            mapping.len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if replaced == libc::MAP_FAILED {
        let error = std::io::Error::last_os_error();
        // Writing zeros gives each page a private copy: the object's bytes are gone from the
        // guest's memory either way.
        // SAFETY: as above; the range is mapped and writable.
        unsafe { base.add(mapping.ptr as usize).write_bytes(0, mapping.len) };
        return Err(MapError::Mmap(error));
    }
    Ok(())
}

/// Takes every mapping in `mappings` away from the memory whose base is `base` (end of a
/// call, or before the instance goes). A failure to unmap leaves zero pages, never the
/// object's.
///
/// # Safety
///
/// Every mapping was made in the memory at `base`, which has not moved since, and no guest
/// code runs in it nor does the host hold a reference into it while this runs.
pub(crate) unsafe fn unmap_all(base: *mut u8, mappings: Vec<Mapping>) {
    for mapping in mappings {
        // SAFETY: the caller's contract above.
        let _ = unsafe { unmap(base, mapping) };
    }
}
