//! wasmray's guest SDK: Ray's programming model for Rust compiled to `wasm32-wasip1`.
//!
//! ```ignore
//! #[wasmray::remote]
//! fn f(x: i64) -> i64 {
//!     x + 1
//! }
//!
//! #[wasmray::main]
//! fn main() {
//!     let one = f::remote(0); // returns at once: an ObjectRef<i64>
//!     let two = f::remote(&one); // a ref argument is resolved before the task runs
//!     assert_eq!(wasmray::get(&two), Ok(2));
//! }
//! ```
//!
//! | Ray (Python)                         | wasmray                                             |
//! |--------------------------------------|-----------------------------------------------------|
//! | `@ray.remote def f(x)`               | `#[wasmray::remote] fn f(x: i64) -> i64`            |
//! | `f.remote(1)`                        | `f::remote(1)` → [`ObjectRef<i64>`](ObjectRef)      |
//! | `f.options(num_cpus=2).remote(1)`    | `f::options().num_cpus(2.0).remote(1)`              |
//! | `@ray.remote(num_returns=2)`         | `#[wasmray::remote(num_returns = 2)]`, tuple result |
//! | `ray.get(r)`, `ray.get([..])`        | [`get`], [`get_all`] → `Result<_, TaskError>`       |
//! | `ray.get(r, timeout=t)`              | [`get_timeout`] (`ErrorKind::GetTimeout`)           |
//! | `ray.cancel(r, force, recursive)`    | [`cancel`], [`cancel_with`] (`ErrorKind::Cancelled`) |
//! | `ray.get_runtime_context()`          | [`get_runtime_context`]                             |
//! | `ray.get_gpu_ids()`                  | [`get_gpu_ids`], [`get_resource_ids`]               |
//! | `ray.is_initialized()`, `ray.error_info()` | [`is_initialized`], [`error_info`]            |
//! | `ray.put(x)`                         | [`put`]                                             |
//! | numpy arrays shared zero-copy        | [`Buffer<T>`](Buffer), derefs to `&[T]`            |
//! | `ray.wait(refs, num_returns, timeout)` | [`wait`] → `(ready, pending)`                     |
//! | `ray.nodes()`, `cluster_resources()` | [`nodes`], [`cluster_resources`], [`available_resources`] |
//! | `@ray.remote class C`                | `#[wasmray::actor]` on `struct C` and `impl C`      |
//! | `C.remote(x)`, `C.options(..)`       | `C::remote(x)` → [`ActorHandle<C>`](ActorHandle), `C::options().name("n").remote(x)` |
//! | `c.m.remote(x)`                      | `c.m(x).remote()` → `ObjectRef<R>`                  |
//! | `c.m.options(num_returns=2, ..)`     | `c.m(x).options().num_returns::<2>().remote()`      |
//! | `@ray.method(num_returns=2)`         | `#[wasmray::method(num_returns = 2)]`               |
//! | `ray.get_actor(name)`                | [`get_actor::<C>(name)`](get_actor), [`get_actor_in`] |
//! | `ray.kill(c)`                        | [`kill(&c)`](kill), [`kill_and_restart`]            |
//! | the driver script                    | `#[wasmray::main] fn main()`                        |
//!
//! Actors:
//!
//! ```ignore
//! #[wasmray::actor]
//! struct Counter {
//!     value: u64,
//! }
//!
//! #[wasmray::actor(max_restarts = 1)]
//! impl Counter {
//!     fn new(start: u64) -> Self {
//!         Counter { value: start }
//!     }
//!     fn inc(&mut self) -> u64 {
//!         self.value += 1;
//!         self.value
//!     }
//! }
//!
//! let counter = Counter::remote(0); // ActorHandle<Counter>, at once
//! let one = counter.inc().remote(); // ObjectRef<u64>
//! ```
//!
//! Values cross the boundary with serde and postcard: arguments and results must implement
//! `Serialize` and `DeserializeOwned`. An [`ObjectRef`] may sit anywhere inside them (a
//! `Vec<ObjectRef<T>>`, a struct field). Std collections (`HashMap`, `HashSet`, `BTreeMap`,
//! `String`, `Vec`, tuples, `Option`) work as they are; for your own types
//! `#[derive(wasmray::Serialize, wasmray::Deserialize)]` needs no `serde` dependency.
//!
//! Remote function names must be unique within a crate: the function `f` is exported as
//! `wasmray_task:f`, whatever module it is in. Likewise actor class names: class `C` exports
//! `wasmray_actor_new:C` and `wasmray_actor_call:C::<method>`.
//!
//! Large arrays of numbers travel zero-copy as [`Buffer<T>`](Buffer) (Ray's numpy arrays in its
//! object store): an immutable array of a [`Plain`] type (`u8` … `u64`, `i8` … `i64`, `f32`,
//! `f64`) that lives in the node's object store. Making one copies the elements into the store
//! once; passing it to tasks, returning it, putting it inside other values or `put`ting it moves
//! only its ref; a task that reads it gets the store's pages mapped into its memory
//! copy-on-write instead of a copy. There is no `DerefMut`: writes through
//! [`Buffer::as_ptr`] stay private to the instance that makes them.
//!
//! ```ignore
//! #[wasmray::remote]
//! fn total(values: wasmray::Buffer<f64>) -> f64 {
//!     values.iter().sum() // reads the mapped pages: no copy, no decoding
//! }
//!
//! let values = wasmray::Buffer::from_vec((0..1_000_000).map(f64::from).collect());
//! let sums: Vec<_> = (0..10).map(|_| total::remote(&values)).collect(); // 10 refs, one array
//! ```
//!
//! This crate only links on wasm32 (it imports the host functions of module `wasmray`); what a
//! node does with the calls is the runtime's business, described in `wit/wasmray.wit`.

mod actor;
mod actor_options;
mod actor_state;
mod api;
mod args;
mod buffer;
mod codec;
mod context;
mod object_ref;
mod options;
mod region;
mod serializer;
mod sys;
mod task;

pub use actor::{
    ActorClass, ActorHandle, MethodCall, SplitReturns, get_actor, get_actor_in, kill,
    kill_and_restart,
};
pub use actor_options::ActorOptions;
pub use api::{
    CancelOptions, available_resources, cancel, cancel_with, cluster_resources, get, get_all,
    get_timeout, nodes, put, wait,
};
pub use args::{Arg, IntoArg};
pub use buffer::{Buffer, Plain};
pub use context::{error_info, get_gpu_ids, get_resource_ids, get_runtime_context, is_initialized};
pub use object_ref::ObjectRef;
pub use options::CallOptions;
pub use wasmray_abi::{ErrorInfo, ErrorKind, NodeInfo, RuntimeContext, TaskError};
pub use wasmray_macros::{actor, main, method, remote};

/// Serde, as this SDK uses it (with `std`: `HashMap`, `HashSet` and the other std types
/// serialize).
pub use serde;
/// The traits, and beside them derives that need no `serde` dependency in the user's crate:
/// `#[derive(wasmray::Serialize, wasmray::Deserialize)]`.
pub use serde::de::Deserialize;
pub use serde::ser::Serialize;
pub use wasmray_macros::{Deserialize, Serialize};

/// What the macros' generated code calls. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::actor::{RawActor, ReturnHandles, create_actor, create_actor_or_panic};
    pub use crate::actor_state::{ActorCell, run_constructor, run_method_mut, run_method_ref};
    pub use crate::codec::Encoded;
    pub use crate::task::{
        call_num_returns, encode_result, install_panic_hook, run_driver, run_task, submit,
        take_ref, task_arg,
    };
    pub use std::vec::Vec;
    pub use wasmray_abi::ABI_VERSION;
}
