//! buffers: `wasmray::Buffer`, the zero-copy arrays of the object store, as tasks and the host
//! must handle them.
//!
//! The first argument picks what runs. `all` (the default) prints, in this order:
//!
//! ```text
//! buffer arg: 499999500000
//! buffer return: 300000 0 299999
//! buffer put/get: 200000 true
//! small buffer: 1 -2 3
//! empty buffer: 0
//! cow private: 7777777 12345
//! ```
//!
//! - `buffer arg`: a task receives a `Buffer<f64>` of the 1,000,000 entries `0.0, 1.0, …` (made
//!   with `from_vec`) and returns their sum; every partial sum is an integer below 2^53, so it
//!   is exact.
//! - `buffer return`: a task builds a `Buffer<u32>` of the 300,000 entries `0, 1, …` and returns
//!   it; the driver prints its length, first and last entries (read through a mapping).
//! - `buffer put/get`: a `Buffer<i64>` of 200,000 entries `3i − 100000` is `put` as an
//!   `ObjectRef<Buffer<i64>>` and the buffer itself dropped (the stored value keeps the array
//!   alive); `get` gives it back and a task gets it by ref. `true` when the driver's copy equals
//!   the original and the task's sum equals the original's.
//! - `small buffer`: a 3-element `Buffer<i32>` goes to a task and comes back as a `Vec<i32>`:
//!   small objects are copied, not mapped (`MapStatus::Copied`).
//! - `empty buffer`: a task counts the entries of an empty `Buffer<f64>`.
//! - `cow private`: a task writes 7777777 into entry 12345 of a `Buffer<u64>` of 1,000,000
//!   entries `0, 1, …` through `Buffer::as_ptr` (its private copy-on-write pages) and returns
//!   what it reads back; a second task reading the same buffer must still see 12345.
//!
//! Alone, not part of `all`:
//!
//! - `leak-probe` prints `mapped at <addr>` then `leak probe: <n> non-zero bytes`; the host must
//!   make `<n>` 0 (`../shared/DESIGN.md` §4, hazard 1). `leak-probe-write` and
//!   `leak-probe-read <addr>` run its halves, for a test that runs two drivers on one node (see
//!   `probe.rs`).
//! - `churn-big` creates and drops 10,000 buffers of 1 MiB, one at a time, and prints
//!   `10000 buffers of 1 MiB created and dropped`.
//! - `churn-small` creates and drops 1,000,000 small objects (`put` of a `u64`) and prints
//!   `1000000 objects created and dropped`.
//!
//! A host test that checks the store's usage returns to its baseline runs the churn modes.

mod probe;

use std::fmt::Display;
use wasmray::{Buffer, ObjectRef, TaskError};

/// Entries of the `buffer arg` case.
const ARG_LEN: u32 = 1_000_000;
/// Entries of the `buffer return` case.
const RETURN_LEN: u32 = 300_000;
/// Entries of the `buffer put/get` case.
const PUT_GET_LEN: i64 = 200_000;
/// Entries of the `cow private` case's buffer, the entry its task writes and what it writes.
const COW_LEN: u64 = 1_000_000;
const COW_INDEX: usize = 12_345;
const COW_VALUE: u64 = 7_777_777;
/// Buffers and bytes of the `churn-big` mode.
const CHURN_BUFFERS: u32 = 10_000;
const CHURN_BYTES: usize = 1 << 20;
/// Objects of the `churn-small` mode.
const CHURN_OBJECTS: u64 = 1_000_000;

#[wasmray::remote]
fn sum_f64(values: Buffer<f64>) -> f64 {
    values.iter().sum()
}

#[wasmray::remote]
fn make_u32(len: u32) -> Buffer<u32> {
    Buffer::from_vec((0..len).collect())
}

#[wasmray::remote]
fn sum_i64(values: Buffer<i64>) -> i64 {
    values.iter().sum()
}

#[wasmray::remote]
fn small_values(values: Buffer<i32>) -> Vec<i32> {
    values.to_vec()
}

#[wasmray::remote]
fn count_values(values: Buffer<f64>) -> u64 {
    values.iter().count() as u64
}

/// Writes `COW_VALUE` into entry `COW_INDEX` of this task's view and reads it back.
#[wasmray::remote]
fn cow_write(values: Buffer<u64>) -> u64 {
    assert!(
        COW_INDEX < values.len(),
        "cow_write needs more than {COW_INDEX} entries, got {}",
        values.len()
    );
    let entries = values.as_ptr().cast_mut();
    // SAFETY: `COW_INDEX` is within the buffer (checked above). `Buffer::as_ptr` gives a
    // pointer with the memory's own write permission, and no slice of `values` (or of a clone:
    // there is none) is alive during the write, which is what its documentation asks. The
    // memory is this instance's own: its private copy-on-write pages of the mapped object.
    unsafe { entries.add(COW_INDEX).write(COW_VALUE) };
    values[COW_INDEX]
}

#[wasmray::remote]
fn cow_read(values: Buffer<u64>) -> u64 {
    values[COW_INDEX]
}

/// The first and last entries, or `- -` for none.
fn ends<T: Display>(values: &[T]) -> String {
    match (values.first(), values.last()) {
        (Some(first), Some(last)) => format!("{first} {last}"),
        _ => "- -".to_string(),
    }
}

fn all() -> Result<(), TaskError> {
    let values = Buffer::from_vec((0..ARG_LEN).map(f64::from).collect());
    println!("buffer arg: {}", wasmray::get(&sum_f64::remote(&values))?);
    drop(values);

    let returned = wasmray::get(&make_u32::remote(RETURN_LEN))?;
    println!("buffer return: {} {}", returned.len(), ends(&returned));

    let original: Vec<i64> = (0..PUT_GET_LEN).map(|i| 3 * i - 100_000).collect();
    let buffer = Buffer::from_slice(&original);
    let stored: ObjectRef<Buffer<i64>> = wasmray::put(&buffer);
    drop(buffer);
    let back = wasmray::get(&stored)?;
    let task_sum = wasmray::get(&sum_i64::remote(&stored))?;
    let equal = back[..] == original[..] && task_sum == original.iter().sum::<i64>();
    println!("buffer put/get: {} {equal}", back.len());

    let small = wasmray::get(&small_values::remote(Buffer::from_slice(&[1_i32, -2, 3])))?;
    let small: Vec<String> = small.iter().map(i32::to_string).collect();
    println!("small buffer: {}", small.join(" "));

    let empty = Buffer::<f64>::from_slice(&[]);
    println!(
        "empty buffer: {}",
        wasmray::get(&count_values::remote(empty))?
    );

    let shared = Buffer::from_vec((0..COW_LEN).collect());
    let seen = wasmray::get(&cow_write::remote(&shared))?;
    let next = wasmray::get(&cow_read::remote(&shared))?;
    println!("cow private: {seen} {next}");
    Ok(())
}

fn churn_big() {
    let bytes = vec![0x5A_u8; CHURN_BYTES];
    for _ in 0..CHURN_BUFFERS {
        drop(Buffer::from_slice(&bytes));
    }
    println!("{CHURN_BUFFERS} buffers of 1 MiB created and dropped");
}

fn churn_small() {
    for i in 0..CHURN_OBJECTS {
        drop(wasmray::put(&i));
    }
    println!("{CHURN_OBJECTS} objects created and dropped");
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("all", String::as_str);
    match mode {
        "all" => all(),
        "leak-probe" => probe::run(),
        "leak-probe-write" => probe::write().map(drop),
        "leak-probe-read" => match args.get(2) {
            Some(address) => probe::read(probe::parse_address(address)).map(drop),
            None => panic!("leak-probe-read needs the address `leak-probe-write` printed"),
        },
        "churn-big" => {
            churn_big();
            Ok(())
        }
        "churn-small" => {
            churn_small();
            Ok(())
        }
        other => panic!(
            "unknown mode `{other}`; expected all, leak-probe, leak-probe-write, \
             leak-probe-read <addr>, churn-big or churn-small"
        ),
    }
}
