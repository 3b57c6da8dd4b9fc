//! leaks: the paths where a host counted the references inside a value and then did not take
//! the value, one per mode (the driver's first argument). After each, the node's object table
//! and store must be empty.
//!
//! - `name-taken`: a named actor is created with refs in its argument; a second one with the
//!   same name is refused after its argument (with refs inside) was counted.
//! - `bad-arg`: a raw `submit_task` whose first argument is a value holding a ref and whose
//!   second is a forged handle: the import traps the driver after counting the first.
//! - `return-twice`: a task sets its results with a raw `task_return` holding a ref, then
//!   returns normally, so the SDK calls `task_return` a second time: the import traps.
//! - `returns-limit`: a raw `submit_task` asking for `u32::MAX` results, with a value holding
//!   a ref: refused (the driver trapped, naming the limit) before anything is created.

use wasmray::{ObjectRef, TaskError};
use wasmray_abi::{ArgOut, CallOptions, TaskSubmission, ValueOut};

#[link(wasm_import_module = "wasmray")]
unsafe extern "C" {
    fn submit_task(spec_ptr: *const u8, spec_len: u32, returns_ptr: *mut u8) -> i32;
    fn task_return(values_ptr: *const u8, values_len: u32);
}

/// An actor holding refs.
#[wasmray::actor]
pub struct Holder {
    held: Vec<ObjectRef<u64>>,
}

#[wasmray::actor]
impl Holder {
    pub fn new(held: Vec<ObjectRef<u64>>) -> Self {
        Holder { held }
    }

    pub fn count(&self) -> usize {
        self.held.len()
    }
}

/// Sets its results once by hand, with a ref inside, before the SDK sets them again.
#[wasmray::remote]
fn returns_twice(x: u64) -> u64 {
    let inner = wasmray::put(&x);
    let values = vec![ValueOut {
        bytes: &[1, 2, 3],
        refs: vec![inner.handle()],
    }];
    let encoded = wasmray_abi::encode(&values).expect("encodes");
    // SAFETY: `encoded` is a live buffer of `encoded.len()` bytes for the whole call.
    unsafe { task_return(encoded.as_ptr(), encoded.len() as u32) };
    x
}

/// Calls the raw `submit_task` import with `spec`, with room for one result handle.
fn raw_submit(spec: &TaskSubmission<'_>) {
    let encoded = wasmray_abi::encode(spec).expect("encodes");
    let mut returns = [0u8; 4];
    // SAFETY: both buffers are live for the call; `returns` has room for one handle, and a
    // submission asking for more is refused before the host writes anything.
    unsafe { submit_task(encoded.as_ptr(), encoded.len() as u32, returns.as_mut_ptr()) };
}

fn name_taken() -> Result<(), TaskError> {
    let a = wasmray::put(&1u64);
    let b = wasmray::put(&2u64);
    let first = Holder::options()
        .name("dup")
        .try_remote(vec![a.clone(), b.clone()])?;
    let second = Holder::options().name("dup").try_remote(vec![a, b]);
    println!(
        "first holds {}; second: {}",
        wasmray::get(&first.count().remote())?,
        match second {
            Ok(_) => "created".to_owned(),
            Err(error) => format!("{:?}", error.kind),
        }
    );
    wasmray::kill(&first);
    Ok(())
}

fn bad_arg() {
    let x = wasmray::put(&5u64);
    let spec = TaskSubmission {
        function: "returns_twice",
        args: vec![
            ArgOut::Value(ValueOut {
                bytes: &[0],
                refs: vec![x.handle()],
            }),
            ArgOut::Ref(0xdead_beef),
        ],
        num_returns: 1,
        options: CallOptions::default(),
    };
    println!("submitting with a forged handle");
    raw_submit(&spec);
    println!("unreachable: the host must trap the forged handle");
}

fn returns_limit() {
    let x = wasmray::put(&5u64);
    let spec = TaskSubmission {
        function: "returns_twice",
        args: vec![ArgOut::Value(ValueOut {
            bytes: &[0],
            refs: vec![x.handle()],
        })],
        num_returns: u32::MAX,
        options: CallOptions::default(),
    };
    println!("submitting with num_returns = u32::MAX");
    raw_submit(&spec);
    println!("unreachable: the host must refuse the count");
}

fn return_twice() {
    let result = wasmray::get(&returns_twice::remote(7));
    println!(
        "returns_twice: {}",
        match result {
            Ok(value) => format!("returned {value}"),
            Err(error) => format!("{:?}", error.kind),
        }
    );
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    match std::env::args().nth(1).as_deref() {
        Some("name-taken") => name_taken()?,
        Some("bad-arg") => bad_arg(),
        Some("return-twice") => return_twice(),
        Some("returns-limit") => returns_limit(),
        other => panic!("unknown mode {other:?}"),
    }
    Ok(())
}
