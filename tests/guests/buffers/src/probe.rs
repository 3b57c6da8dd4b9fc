//! The leak probe: does an instance see the bytes of an object that was mapped into a previous
//! instance's memory? (`../shared/DESIGN.md` §4, hazard 1: the host must replace every mapping
//! with zero pages before an instance's memory is reused.)
//!
//! - [`leak_probe_write`] (a task, run with `max_calls(1)` so its instance is discarded after
//!   it) receives a 4 MiB `Buffer<u8>` of `0xAB` bytes, checks that the host *mapped* it (a
//!   copy could not leak), writes `0xCD` at the start of each 4 KiB page of its first half (so
//!   that privately copied pages are probed too), and returns the guest address of the mapping.
//!   It then forgets the buffer: the SDK does not unmap it, so ending the mapping is left to the
//!   host, at the end of the call.
//! - [`leak_probe_read`] (a task, also `max_calls(1)`) grows its memory with `memory.grow` until
//!   `[addr, addr + 4 MiB)` is inside it and counts the non-zero bytes there; it must be 0. The
//!   probe only proves something when this instance lands in the writer's memory slot: a host
//!   test should arrange that (e.g. a node with few instance slots).
//!
//! The writer keeps a 16 MiB allocation while it maps, so the mapping lies well above the
//! memory any fresh instance of this module starts with; the reader grows memory directly
//! rather than through the allocator, so that no Rust allocation covers the probed bytes (a
//! zero-filled `Vec` would overwrite them; an uninitialized one may not be read). If the address
//! is below the reader's memory size when it starts, the probe is inconclusive and it panics.
//!
//! Output: `mapped at <addr>` (decimal) from the write, `leak probe: <n> non-zero bytes` from
//! the read.

use core::arch::wasm32;
use wasmray::{Buffer, TaskError};

/// Size of the probed object.
const PROBE_LEN: usize = 4 << 20;
/// What the probed object holds, and what the writer writes into some of its pages.
const PROBE_BYTE: u8 = 0xAB;
const DIRTY_BYTE: u8 = 0xCD;
/// The writer's allocation that pushes the mapping above a fresh instance's memory.
const PADDING: usize = 16 << 20;
/// A wasm page.
const WASM_PAGE: usize = 65_536;

#[wasmray::remote]
fn leak_probe_write(probe: Buffer<u8>) -> u64 {
    let padding: Vec<u8> = Vec::with_capacity(PADDING);
    std::hint::black_box(&padding);
    assert!(
        probe.is_mapped(),
        "leak probe: the host copied the {PROBE_LEN}-byte object instead of mapping it, so \
         there is nothing to leak"
    );
    let wrong = probe.iter().filter(|byte| **byte != PROBE_BYTE).count();
    assert_eq!(
        wrong, 0,
        "leak probe: the mapped object has {wrong} unexpected bytes"
    );
    let start = probe.as_ptr().cast_mut();
    for offset in (0..PROBE_LEN / 2).step_by(4096) {
        // SAFETY: `offset` is below the buffer's length (4 MiB). `Buffer::as_ptr` gives a
        // pointer with the memory's own write permission and no slice of `probe` is alive (the
        // check above ended); the pages are this instance's private copy-on-write ones.
        unsafe { start.add(offset).write(DIRTY_BYTE) };
    }
    let address = start as usize as u64;
    // Leave the mapping (and the handle) to the host: it must clear them when the call ends.
    std::mem::forget(probe);
    drop(padding);
    address
}

#[wasmray::remote]
fn leak_probe_read(address: u64) -> u64 {
    let Some((start, end)) = usize::try_from(address)
        .ok()
        .and_then(|start| Some((start, start.checked_add(PROBE_LEN)?)))
    else {
        panic!("leak probe: address {address} is outside a wasm32 memory");
    };
    let initial_pages = wasm32::memory_size(0);
    let initial = initial_pages * WASM_PAGE;
    assert!(
        start >= initial,
        "leak probe: address {start} lies in memory this instance already had ({initial} \
         bytes): inconclusive"
    );
    let pages = end.div_ceil(WASM_PAGE) - initial_pages;
    if wasm32::memory_grow(0, pages) == usize::MAX {
        panic!("leak probe: cannot grow memory by {pages} pages to reach {end}");
    }
    let mut nonzero = 0u64;
    for byte in start..end {
        let at = std::ptr::with_exposed_provenance::<u8>(byte);
        // SAFETY: `byte` is inside this instance's linear memory, which now extends past `end`
        // (grown above), and wasm memory is always initialized (grown pages read as whatever
        // the host provides, zero by the spec). These bytes lie above the memory the instance
        // started with and were added by the `memory.grow` above, outside the allocator, so no
        // Rust value or reference covers them; taking pages from `memory.grow` by address is
        // how every wasm allocator obtains memory. The read is volatile so it really happens.
        if unsafe { at.read_volatile() } != 0 {
            nonzero += 1;
        }
    }
    nonzero
}

/// Parses the address `leak-probe-write` printed.
pub fn parse_address(text: &str) -> u64 {
    match text.parse() {
        Ok(address) => address,
        Err(error) => panic!("the probe address `{text}` is not a decimal number: {error}"),
    }
}

/// Runs the writing half and prints `mapped at <addr>`.
pub fn write() -> Result<u64, TaskError> {
    let probe = Buffer::from_vec(vec![PROBE_BYTE; PROBE_LEN]);
    let address = wasmray::get(&leak_probe_write::options().max_calls(1).remote(&probe))?;
    println!("mapped at {address}");
    Ok(address)
}

/// Runs the reading half and prints `leak probe: <n> non-zero bytes`.
pub fn read(address: u64) -> Result<u64, TaskError> {
    let nonzero = wasmray::get(&leak_probe_read::options().max_calls(1).remote(address))?;
    println!("leak probe: {nonzero} non-zero bytes");
    Ok(nonzero)
}

/// Both halves, one after the other.
pub fn run() -> Result<(), TaskError> {
    let address = write()?;
    read(address).map(drop)
}
