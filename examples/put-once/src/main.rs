//! put-once: the Ray docs' anti-pattern "passing the same large argument by value repeatedly",
//! and its fix. An N×N `f64` array (N from the first argument, default 5000: 200 MB) goes to 10
//! tasks that each compute its checksum:
//!
//! - **by value**: each task takes a `Vec<f64>`, so each of the 10 calls serializes the whole
//!   array, the node holds each serialized copy until its task reads it, and each task decodes
//!   its own copy;
//! - **put once**: the driver stores the array once as a [`wasmray::Buffer<f64>`] (one copy
//!   into the object store) and passes that buffer, which travels as its ref: each task reads
//!   the store's pages mapped into its memory, without a copy or any decoding.
//!
//! For comparison the driver also times one checksum over the same data itself: the work of a
//! single task, without any data movement.
//!
//! The array is row-major; entry `k = i·N + j` is `(k mod 1000)` as `f64`, an integer. The
//! checksum is the sum of all entries: every partial sum is an integer far below 2^53, so f64
//! computes it exactly in any order, and it equals `499500·q + r·(r−1)/2` with
//! `q = N² div 1000`, `r = N² mod 1000` (N = 1000: 499500000; N = 5000: 12487500000). Every task
//! must return the same checksum; the driver panics if two differ.
//!
//! It prints exactly these lines (`<MB>` is `N·N·8 / 10^6` rounded, `<S>` the checksum with no
//! decimals, times in seconds with 3 decimals):
//!
//! ```text
//! array: NxN f64 (<MB> MB)
//! by value: sum = <S>
//! by value took <sec>s
//! put once: sum = <S>
//! put once took <sec>s
//! one task's work took <sec>s
//! ```

use std::hint::black_box;
use std::time::Instant;
use wasmray::{Buffer, TaskError};

/// Rows and columns when no argument is given.
const DEFAULT_N: usize = 5000;
/// Tasks that each get the array.
const TASKS: usize = 10;

/// Entry `k` (row-major index) of the array: an integer in `[0, 999]`.
fn entry(k: usize) -> f64 {
    (k % 1000) as f64
}

/// The sum of all entries; exact whatever the order (see the module doc).
fn checksum(data: &[f64]) -> f64 {
    data.iter().sum()
}

#[wasmray::remote]
fn checksum_by_value(data: Vec<f64>) -> f64 {
    checksum(&data)
}

#[wasmray::remote]
fn checksum_buffer(data: Buffer<f64>) -> f64 {
    checksum(&data)
}

/// The checksum all tasks returned.
///
/// # Panics
/// When two tasks disagree, or there are no results.
fn agreed(how: &str, sums: &[f64]) -> f64 {
    match sums.first() {
        Some(first) if sums.iter().all(|sum| sum == first) => *first,
        _ => panic!("{how}: the tasks returned different checksums: {sums:?}"),
    }
}

/// N, from the first argument.
fn size() -> usize {
    match std::env::args().nth(1) {
        None => DEFAULT_N,
        Some(arg) => match arg.parse() {
            Ok(n) => n,
            Err(error) => panic!("the array size `{arg}` is not a number: {error}"),
        },
    }
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let n = size();
    let Some(entries) = n
        .checked_mul(n)
        .filter(|entries| entries.checked_mul(8).is_some())
    else {
        panic!("a {n}x{n} array does not fit in a wasm32 guest");
    };
    let data: Vec<f64> = (0..entries).map(entry).collect();
    let megabytes = (entries as u64 * 8 + 500_000) / 1_000_000;
    println!("array: {n}x{n} f64 ({megabytes} MB)");

    let start = Instant::now();
    let sums: Vec<_> = (0..TASKS)
        .map(|_| checksum_by_value::remote(&data))
        .collect();
    let sum = agreed("by value", &wasmray::get_all(&sums)?);
    let took = start.elapsed().as_secs_f64();
    drop(sums);
    println!("by value: sum = {sum:.0}");
    println!("by value took {took:.3}s");

    let start = Instant::now();
    let buffer = Buffer::from_slice(&data);
    let sums: Vec<_> = (0..TASKS)
        .map(|_| checksum_buffer::remote(&buffer))
        .collect();
    let sum = agreed("put once", &wasmray::get_all(&sums)?);
    let took = start.elapsed().as_secs_f64();
    println!("put once: sum = {sum:.0}");
    println!("put once took {took:.3}s");

    let start = Instant::now();
    black_box(checksum(black_box(&data)));
    let took = start.elapsed().as_secs_f64();
    println!("one task's work took {took:.3}s");
    Ok(())
}
