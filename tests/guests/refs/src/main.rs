//! refs: object refs inside values, deep nesting, and object lifetimes.
//!
//! Expected output, in this order:
//!
//! ```text
//! task returned 10 refs, sum = 45
//! task summed 10 refs passed inside a Vec = 45
//! struct field ref: numbers = 4950
//! nested depth 1000 ok
//! wait on 200 refs: past the head [100], in the head [3], across it [3, 70], 198 pending in order
//! 100000 puts created and dropped
//! ```
//!
//! - A task `put`s 10 values and returns `Vec<ObjectRef<u64>>`; the objects outlive the task's
//!   instance because the returned value refers to them. The driver sums them with `get_all`.
//! - The same refs go back into a task inside a `Vec` argument (not resolved by the host: the
//!   task calls `get_all` itself).
//! - A struct with an `ObjectRef` field is an argument; the task gets the field's value.
//! - 1,000 nested tasks: each submits one child and blocks in `get` on it. Blocked tasks give
//!   their CPU back, so this must not deadlock on a 2-CPU node.
//! - `wait` on 200 refs (longer than the head the SDK looks at first): the ready refs it
//!   returns are the first ready ones in list order, wherever they sit, and the pending list
//!   keeps the order of the rest.
//! - 100,000 small `put`s, each dropped at once: memory must stay bounded.
//!
//! The struct derives through `wasmray::serde`, so this crate does not depend on serde itself.

use wasmray::{Deserialize, ObjectRef, Serialize, TaskError};

/// A value with a ref inside.
#[derive(Serialize, Deserialize)]
#[serde(crate = "wasmray::serde")]
struct Holder {
    label: String,
    data: ObjectRef<Vec<u64>>,
}

#[wasmray::remote]
fn make_refs() -> Vec<ObjectRef<u64>> {
    (0..10u64).map(|i| wasmray::put(&i)).collect()
}

#[wasmray::remote]
fn sum_refs(refs: Vec<ObjectRef<u64>>) -> u64 {
    match wasmray::get_all(&refs) {
        Ok(values) => values.iter().sum(),
        Err(error) => panic!("a ref inside the argument failed: {error}"),
    }
}

#[wasmray::remote]
fn read_holder(holder: Holder) -> String {
    match wasmray::get(&holder.data) {
        Ok(values) => format!("{} = {}", holder.label, values.iter().sum::<u64>()),
        Err(error) => panic!("the holder's ref failed: {error}"),
    }
}

/// Depth `depth` of a chain of tasks, each waiting on its child.
#[wasmray::remote]
fn nest(depth: u32) -> u32 {
    if depth == 0 {
        return 0;
    }
    match wasmray::get(&nest::remote(depth - 1)) {
        Ok(below) => below + 1,
        Err(error) => panic!("nested task at depth {depth} failed: {error}"),
    }
}

/// Returns `value` after `ms` milliseconds: a ref that stays pending for a while.
#[wasmray::remote]
fn slow(ms: u64, value: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    value
}

/// The values of `refs` (all ready).
fn values(refs: &[ObjectRef<u64>]) -> Result<Vec<u64>, TaskError> {
    wasmray::get_all(refs)
}

/// `wait` over 200 refs, each either the one slow ref or a ready `put(index)`.
fn wait_on_long_lists() -> Result<String, TaskError> {
    let slow = slow::remote(1000, u64::MAX);
    let list = |ready_at: &[usize]| -> Vec<ObjectRef<u64>> {
        (0..200)
            .map(|i| {
                if ready_at.contains(&i) {
                    wasmray::put(&(i as u64))
                } else {
                    slow.clone()
                }
            })
            .collect()
    };
    let past_head = list(&(100..200).collect::<Vec<_>>());
    let (past, pending) = wasmray::wait(&past_head, 1, None);
    let expected: Vec<u32> = past_head
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 100)
        .map(|(_, r)| r.handle())
        .collect();
    let in_order = pending.iter().map(ObjectRef::handle).eq(expected);
    let sparse = list(&[3, 70]);
    let (in_head, _) = wasmray::wait(&sparse, 1, None);
    let (across, pending) = wasmray::wait(&sparse, 2, Some(std::time::Duration::ZERO));
    Ok(format!(
        "wait on 200 refs: past the head {:?}, in the head {:?}, across it {:?}, {} pending{}",
        values(&past)?,
        values(&in_head)?,
        values(&across)?,
        pending.len(),
        if in_order {
            " in order"
        } else {
            " OUT OF ORDER"
        }
    ))
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let refs = wasmray::get(&make_refs::remote())?;
    let sum: u64 = wasmray::get_all(&refs)?.iter().sum();
    println!("task returned {} refs, sum = {sum}", refs.len());

    let sum = wasmray::get(&sum_refs::remote(refs))?;
    println!("task summed 10 refs passed inside a Vec = {sum}");

    let holder = Holder {
        label: "numbers".to_string(),
        data: wasmray::put(&(0..100u64).collect::<Vec<u64>>()),
    };
    println!(
        "struct field ref: {}",
        wasmray::get(&read_holder::remote(holder))?
    );

    let depth = wasmray::get(&nest::remote(1000))?;
    if depth == 1000 {
        println!("nested depth 1000 ok");
    } else {
        println!("nested depth {depth} (expected 1000)");
    }

    println!("{}", wait_on_long_lists()?);

    for i in 0..100_000u64 {
        drop(wasmray::put(&i));
    }
    println!("100000 puts created and dropped");
    Ok(())
}
