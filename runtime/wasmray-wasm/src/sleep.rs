//! WASI's `poll_oneoff` for a guest that sleeps: precise short sleeps, and sleeps a kill ends.
//!
//! Rust's `std::thread::sleep` on wasm32-wasip1 is one `poll_oneoff` with a single clock
//! subscription. wasmtime-wasi answers it with tokio's timer, which fires on a 1 ms wheel: a
//! 10 µs sleep took ~1.15 ms, and nothing but the timer ends it, so a killed actor kept
//! sleeping. This override takes exactly that case — one subscription, on the realtime or
//! monotonic clock — and sleeps until the deadline: tokio's timer for all but the last
//! [`SPIN_BELOW`], then yielding to the executor until the deadline passes. The wait goes
//! through [`block_on`], as `get` and `wait` do: a kill ends it at once, and a concurrent
//! actor runs its queued calls meanwhile, as Ray's threaded actors do while one sleeps. (The
//! SDK's `blocking` bookkeeping does not wrap a sleep, so a nested call may drop the sleeping
//! method's access record; that is harmless because only actors whose methods all take
//! `&self` run calls concurrently, and shared accesses never conflict.) Every other poll (file descriptors, several subscriptions, the CPU
//! clocks) goes to wasmtime-wasi's own implementation unchanged.
//!
//! A sleeping guest keeps its CPU, as a sleeping Ray worker does; only `get` and `wait` give
//! it back.

use crate::nested::block_on;
use crate::state::GuestState;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::{AsContextMut, Caller, Extern, Linker};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as preview1, WasiSnapshotPreview1};

/// Below this much time left, a sleep stops trusting tokio's 1 ms timer and yields in a loop.
const SPIN_BELOW: Duration = Duration::from_micros(1500);

/// Bytes of one `subscription` record and of one `event` record (WASI preview 1).
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
/// `subscription.u.tag` of a clock subscription, and the clock IDs this override serves.
const TAG_CLOCK: u8 = 0;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
/// `subscription_clock.flags`: the timeout is an absolute time, not a duration.
const ABSTIME: u16 = 1;
/// `errno::fault`: a pointer outside the guest's memory.
const ERRNO_FAULT: i32 = 21;

/// Replaces wasmtime-wasi's `poll_oneoff` in `linker` (which must already hold WASI p1).
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let defined = linker
        .func_wrap_async(
            "wasi_snapshot_preview1",
            "poll_oneoff",
            |caller, (subs, events, count, nevents): (i32, i32, i32, i32)| {
                Box::new(poll_oneoff(caller, subs, events, count, nevents))
            },
        )
        .map(|_| ());
    linker.allow_shadowing(false);
    defined
}

/// One clock subscription: when it is due, and what the event must echo back.
struct ClockSleep {
    userdata: [u8; 8],
    deadline: Instant,
}

async fn poll_oneoff(
    mut caller: Caller<'_, GuestState>,
    subs: i32,
    events: i32,
    count: i32,
    nevents: i32,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        // As wasmtime-wasi's glue says it.
        wasmtime::bail!("missing required memory export");
    };
    let sleep = if count == 1 {
        let data = memory.data(&caller);
        match read_bytes::<SUBSCRIPTION_SIZE>(data, subs) {
            Some(record) => clock_sleep(&record),
            None => return Ok(ERRNO_FAULT),
        }
    } else {
        None
    };
    let Some(sleep) = sleep else {
        return delegate(caller, memory, [subs, events, count, nevents]).await;
    };
    block_on(&mut caller, sleep_until(sleep.deadline)).await?;
    let mut event = [0u8; EVENT_SIZE];
    event[..8].copy_from_slice(&sleep.userdata);
    // error 0 (success) at 8, type 0 (clock) at 10, fd_readwrite zeroed: all already zero.
    let data = memory.data_mut(&mut caller);
    if !write_bytes(data, events, &event) || !write_bytes(data, nevents, &1u32.to_le_bytes()) {
        return Ok(ERRNO_FAULT);
    }
    Ok(0)
}

/// The sleep a lone subscription asks for, if it is one this override serves.
fn clock_sleep(record: &[u8; SUBSCRIPTION_SIZE]) -> Option<ClockSleep> {
    let word = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().unwrap_or([0; 8]));
    let tag = record[8];
    let clock = u32::from_le_bytes([record[16], record[17], record[18], record[19]]);
    let timeout = word(24);
    let flags = u16::from_le_bytes([record[40], record[41]]);
    if tag != TAG_CLOCK || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) {
        return None;
    }
    let now = Instant::now();
    let wait = if flags & ABSTIME == 0 {
        Duration::from_nanos(timeout)
    } else if clock == CLOCK_REALTIME {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        Duration::from_nanos(timeout).saturating_sub(since_epoch)
    } else {
        // An absolute monotonic time is on wasmtime-wasi's clock, whose zero this override
        // does not know: let wasmtime-wasi answer it.
        return None;
    };
    Some(ClockSleep {
        userdata: record[..8].try_into().ok()?,
        // A deadline past what an `Instant` holds is wasmtime-wasi's to answer.
        deadline: now.checked_add(wait)?,
    })
}

/// Sleeps until `deadline`: tokio's timer for the bulk, then yields until it has passed.
async fn sleep_until(deadline: Instant) {
    if let Some(bulk) = deadline.checked_sub(SPIN_BELOW)
        && bulk > Instant::now()
    {
        tokio::time::sleep_until(tokio::time::Instant::from_std(bulk)).await;
    }
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// wasmtime-wasi's own `poll_oneoff` with the guest's arguments, called as its linker glue
/// calls it.
async fn delegate(
    mut caller: Caller<'_, GuestState>,
    memory: wasmtime::Memory,
    [subs, events, count, nevents]: [i32; 4],
) -> wasmtime::Result<i32> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    let (data, state) = memory.data_and_store_mut(&mut caller);
    state.wasi.set_hostcall_fuel(fuel);
    let mut memory = wiggle::GuestMemory::Unshared(data);
    preview1::poll_oneoff(&mut state.wasi, &mut memory, subs, events, count, nevents).await
}

/// `N` guest bytes at `ptr`, if they lie inside `data`.
fn read_bytes<const N: usize>(data: &[u8], ptr: i32) -> Option<[u8; N]> {
    let start = usize::try_from(ptr as u32).ok()?;
    data.get(start..start.checked_add(N)?)?.try_into().ok()
}

/// Writes `bytes` at guest `ptr`; false if they do not fit inside `data`.
fn write_bytes(data: &mut [u8], ptr: i32, bytes: &[u8]) -> bool {
    let Ok(start) = usize::try_from(ptr as u32) else {
        return false;
    };
    match start
        .checked_add(bytes.len())
        .and_then(|end| data.get_mut(start..end))
    {
        Some(out) => {
            out.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}
