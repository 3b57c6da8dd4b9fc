//! The object-store cases of Ray's `ray_perf.py`: get and put calls, puts from several tasks,
//! put gigabytes from one client and from several, and getting an object that holds 10k refs.
//!
//! Each case mirrors Ray's Python:
//!
//! | case | Ray | here | multiplier |
//! |---|---|---|---|
//! | single client get calls (Plasma Store) | `ray.get(value)`, `value = ray.put(0)` | `get(&put(&0i64))` | 1 |
//! | single client put calls (Plasma Store) | `ray.put(0)` | `put(&0i64)`, dropped | 1 |
//! | multi client put calls (Plasma Store) | 10 tasks, each `ray.put(0)` 100 times | the same | 1000 |
//! | single client put gigabytes | `ray.put(arr)`, `arr` 100 Mi zero `int64`s (800 MiB) | `Buffer::<i64>::from_slice(&arr)`, dropped | 0.8 |
//! | multi client put gigabytes | 10 tasks, each putting 10 Mi zero `int64`s 10 times | the same with `Buffer` | 8 |
//! | single client get object containing 10k refs | `ray.get` of a task's list of 10,000 `ray.put(1)` refs | `get` of a `Vec<ObjectRef<i64>>` | 1 |
//!
//! Ray builds a fresh `np.zeros` for every put of "multi client put gigabytes"; each task here
//! builds its 80 MiB vector once and puts it 10 times, which keeps memory sane and leaves out
//! nothing Ray's case measures (its `np.zeros` is a lazily zeroed `calloc`). "single client put
//! gigabytes" reuses one 800 MiB vector, as Ray reuses `arr`; every buffer is dropped at once,
//! as Ray discards every `ray.put` result.
//!
//! This file holds no task or actor cases (`tasks.rs`, `actors.rs`).

use crate::timeit::Bench;
use wasmray::{Buffer, ObjectRef};

/// Elements of Ray's `arr` (`np.zeros(100 * 1024 * 1024, dtype=np.int64)`): 800 MiB.
const LARGE_ELEMENTS: usize = 100 * 1024 * 1024;
/// Elements each put of Ray's `do_put` stores (`np.zeros(10 * 1024 * 1024, dtype=np.int64)`).
const MULTI_ELEMENTS: usize = 10 * 1024 * 1024;
/// Puts per task in "multi client put gigabytes".
const MULTI_PUTS: usize = 10;
/// Tasks in the "multi client" put cases.
const CLIENTS: usize = 10;
/// Small puts per task in "multi client put calls".
const SMALL_PUTS: usize = 100;
/// Refs in the object of "get object containing 10k refs".
const CONTAINED_REFS: usize = 10_000;

/// Ray's `do_put_small`: 100 small puts, each dropped at once.
#[wasmray::remote]
fn do_put_small() {
    for _ in 0..SMALL_PUTS {
        drop(wasmray::put(&0i64));
    }
}

/// Ray's `do_put`: 10 puts of 10 Mi zero `i64`s (80 MiB each), each dropped at once.
#[wasmray::remote]
fn do_put() {
    let zeros = vec![0i64; MULTI_ELEMENTS];
    for _ in 0..MULTI_PUTS {
        drop(Buffer::from_slice(&zeros));
    }
}

/// Ray's `create_object_containing_ref`: a list of 10,000 refs, each to `put(1)`.
#[wasmray::remote]
fn create_object_containing_ref() -> Vec<ObjectRef<i64>> {
    (0..CONTAINED_REFS).map(|_| wasmray::put(&1i64)).collect()
}

/// "single client get calls (Plasma Store)": gets one small object again and again.
pub fn get_calls(bench: &mut Bench) {
    const NAME: &str = "single client get calls (Plasma Store)";
    if !bench.selected(NAME) {
        return;
    }
    let value = wasmray::put(&0i64);
    bench.timeit(NAME, 1.0, || wasmray::get(&value).map(drop));
}

/// "single client put calls (Plasma Store)": puts one small value again and again.
pub fn put_calls(bench: &mut Bench) {
    bench.timeit("single client put calls (Plasma Store)", 1.0, || {
        drop(wasmray::put(&0i64));
        Ok(())
    });
}

/// "multi client put calls (Plasma Store)": 10 tasks each put 100 small values.
pub fn multi_client_put_calls(bench: &mut Bench) {
    let multiplier = (CLIENTS * SMALL_PUTS) as f64;
    bench.timeit("multi client put calls (Plasma Store)", multiplier, || {
        let submitted: Vec<_> = (0..CLIENTS).map(|_| do_put_small::remote()).collect();
        wasmray::get_all(&submitted).map(drop)
    });
}

/// "single client put gigabytes": puts an 800 MiB array of `i64`s; 0.8 GB per call, as Ray
/// counts it.
pub fn put_gigabytes(bench: &mut Bench) {
    const NAME: &str = "single client put gigabytes";
    if !bench.selected(NAME) {
        return;
    }
    let zeros = vec![0i64; LARGE_ELEMENTS];
    bench.timeit(NAME, 8.0 * 0.1, || {
        drop(Buffer::from_slice(&zeros));
        Ok(())
    });
}

/// "multi client put gigabytes": 10 tasks each put 80 MiB 10 times; 8 GB per call, as Ray
/// counts it (`10 * 8 * 0.1`).
pub fn multi_client_put_gigabytes(bench: &mut Bench) {
    let multiplier = CLIENTS as f64 * 8.0 * 0.1;
    bench.timeit("multi client put gigabytes", multiplier, || {
        let submitted: Vec<_> = (0..CLIENTS).map(|_| do_put::remote()).collect();
        wasmray::get_all(&submitted).map(drop)
    });
}

/// "single client get object containing 10k refs": gets (decodes, then drops) a list of
/// 10,000 refs that one task made.
pub fn get_object_containing_10k_refs(bench: &mut Bench) {
    const NAME: &str = "single client get object containing 10k refs";
    if !bench.selected(NAME) {
        return;
    }
    let obj_containing_ref = create_object_containing_ref::remote();
    bench.timeit(NAME, 1.0, || wasmray::get(&obj_containing_ref).map(drop));
}
