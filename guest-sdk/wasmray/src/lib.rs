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
//! | `ray.put(x)`                         | [`put`]                                             |
//! | `ray.wait(refs, num_returns, timeout)` | [`wait`] → `(ready, pending)`                     |
//! | `ray.nodes()`, `cluster_resources()` | [`nodes`], [`cluster_resources`], [`available_resources`] |
//! | the driver script                    | `#[wasmray::main] fn main()`                        |
//!
//! Values cross the boundary with serde and postcard: arguments and results must implement
//! `Serialize` and `DeserializeOwned`. An [`ObjectRef`] may sit anywhere inside them (a
//! `Vec<ObjectRef<T>>`, a struct field). Deriving needs `serde` as a dependency of your crate, or
//! `#[serde(crate = "wasmray::serde")]` on the type.
//!
//! Remote function names must be unique within a crate: the function `f` is exported as
//! `wasmray_task:f`, whatever module it is in.
//!
//! This crate only links on wasm32 (it imports the host functions of module `wasmray`); what a
//! node does with the calls is the runtime's business, described in `wit/wasmray.wit`.

mod api;
mod args;
mod codec;
mod object_ref;
mod options;
mod sys;
mod task;

pub use api::{available_resources, cluster_resources, get, get_all, nodes, put, wait};
pub use args::{Arg, IntoArg};
pub use object_ref::ObjectRef;
pub use options::CallOptions;
pub use wasmray_abi::{ErrorKind, NodeInfo, TaskError};
pub use wasmray_macros::{main, remote};

/// Serde, as this SDK uses it: `#[serde(crate = "wasmray::serde")]` lets a crate derive without
/// depending on serde itself.
pub use serde;
pub use serde::{Deserialize, Serialize};

/// What the macros' generated code calls. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::Encoded;
    pub use crate::task::{
        encode_result, install_panic_hook, run_driver, run_task, submit, take_ref, task_arg,
    };
    pub use std::vec::Vec;
    pub use wasmray_abi::ABI_VERSION;
}
