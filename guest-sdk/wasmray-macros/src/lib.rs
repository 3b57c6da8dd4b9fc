//! The attribute macros of the wasmray guest SDK; use them through the `wasmray` crate.
//!
//! - [`macro@remote`] makes a free function callable remotely, Ray's `@ray.remote`.
//! - [`macro@actor`] makes a struct and its `impl` block an actor class, Ray's `@ray.remote
//!   class`; [`macro@method`] sets per-method options inside that `impl` block.
//! - [`macro@main`] makes `fn main` the driver and marks the module as built with the SDK.
//! - [`macro@Serialize`] and [`macro@Deserialize`] are serde's derives for a crate that does not
//!   depend on serde itself (`serde_derive.rs`).
//!
//! The generated code calls `::wasmray::__private`, so the SDK must be a dependency named
//! `wasmray`. Option parsing (`options.rs`) and signature checks (`signature.rs`) are shared by
//! the macros. This crate does no I/O and holds no runtime code.

mod actor;
mod actor_expand;
mod main_attr;
mod options;
mod remote;
mod serde_derive;
mod signature;

use proc_macro::TokenStream;
use syn::parse::Parser;
use syn::{Item, parse_macro_input};

/// Makes a free function a remote function (Ray's `@ray.remote`).
///
/// ```ignore
/// #[wasmray::remote(num_returns = 2, num_cpus = 0.5, resources(disk = 1.0), max_retries = 0)]
/// fn split(x: Vec<u8>) -> (Vec<u8>, Vec<u8>) { .. }
///
/// let (a, b) = split::remote(vec![1, 2, 3]);
/// let c = split::options().num_cpus(2.0).remote(&some_ref);
/// ```
///
/// Options: `num_returns`, `num_cpus`, `num_gpus`, `resources(name = amount, ..)`,
/// `max_calls`, `max_retries`, `retry_exceptions`, `memory_limit` (bytes),
/// `cpu_time_limit_ms`. The function stays callable locally as `split(..)`.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut options = options::Options::new(options::Kind::Remote);
    let parser = syn::meta::parser(|meta| options.parse(meta));
    if let Err(error) = parser.parse(attr) {
        return error.to_compile_error().into();
    }
    let function = match parse_macro_input!(item as Item) {
        Item::Fn(function) => function,
        other => {
            return syn::Error::new_spanned(other, "#[wasmray::remote] goes on a free `fn`")
                .to_compile_error()
                .into();
        }
    };
    remote::expand(&options, &function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes `fn main` the driver of a wasmray module: installs the SDK's panic hook and exports
/// `wasmray_abi_version`. `fn main() -> Result<(), E>` keeps working as in any Rust program.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new_spanned(attr, "#[wasmray::main] takes no arguments")
            .to_compile_error()
            .into();
    }
    let function = parse_macro_input!(item as syn::ItemFn);
    main_attr::expand(&function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes a struct and its inherent `impl` block an actor class (Ray's `@ray.remote class`).
/// Put it on both, the struct first, in the same module.
///
/// ```ignore
/// #[wasmray::actor]
/// struct Counter {
///     value: u64,
/// }
///
/// #[wasmray::actor(max_restarts = 1, num_cpus = 0.5)]
/// impl Counter {
///     fn new(start: u64) -> Self {
///         Counter { value: start }
///     }
///     fn inc(&mut self) -> u64 {
///         self.value += 1;
///         self.value
///     }
///     #[wasmray::method(num_returns = 2)]
///     fn both(&self) -> (u64, u64) {
///         (self.value, self.value * 2)
///     }
/// }
///
/// let counter = Counter::remote(0); // ActorHandle<Counter>
/// let one = counter.inc().remote(); // ObjectRef<u64>
/// let named = Counter::options().name("c").max_concurrency(1).remote(5);
/// ```
///
/// On the struct the attribute takes no options and adds `CounterMethods` (the stubs a handle
/// derefs to) and `CounterOptions` (the builder of `Counter::options()`), both with the
/// struct's visibility. On the `impl` block its options are the class defaults:
/// `num_cpus`, `num_gpus`, `resources(name = amount, ..)`, `max_restarts`, `max_task_retries`,
/// `max_concurrency`, `memory_limit` (bytes), `cpu_time_limit_ms`, and Ray's `name = ".."`,
/// `namespace = ".."`, `lifetime = "detached"` (every creation then takes that name, so a
/// second live one is refused, as in Ray). The one associated fn
/// returning `Self` is the constructor; fns taking `&self` or `&mut self` are the remote
/// methods (each stub keeps its method's visibility and docs); other items stay local. With
/// `max_concurrency > 1` every method must take `&self`. Class `C` exports
/// `wasmray_actor_new:C` and `wasmray_actor_call:C::<method>`, so class names must be unique
/// within a crate.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = match parse_macro_input!(item as Item) {
        Item::Struct(item) => actor::expand_struct(attr.into(), &item),
        Item::Impl(mut item) => {
            let mut defaults = options::Options::new(options::Kind::Actor);
            let parser = syn::meta::parser(|meta| defaults.parse(meta));
            match parser.parse(attr) {
                Ok(()) => actor::parse_impl(defaults, &mut item)
                    .and_then(|class| actor_expand::expand_impl(&item, &class)),
                Err(error) => Err(error),
            }
        }
        other => Err(syn::Error::new_spanned(
            other,
            "#[wasmray::actor] goes on an actor class's `struct` and on its `impl` block",
        )),
    };
    expanded
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Options of one actor method (Ray's `@ray.method(num_returns=2)`): `num_returns = n`, with
/// the result written as an n-tuple. Only valid on a method inside a `#[wasmray::actor]` `impl`
/// block, which consumes it.
#[proc_macro_attribute]
pub fn method(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    syn::Error::new_spanned(
        &item,
        "#[wasmray::method] goes on a method inside an `impl` block marked #[wasmray::actor], \
         below that attribute",
    )
    .into_compile_error()
    .into()
}

/// serde's `Serialize` derive, for a crate that depends only on `wasmray`:
/// `#[derive(wasmray::Serialize)]`. Every `#[serde(..)]` attribute works as with serde's own.
#[proc_macro_derive(Serialize, attributes(serde))]
pub fn derive_serialize(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as syn::DeriveInput);
    serde_derive::expand(&input, serde_derive::Trait::Serialize)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// serde's `Deserialize` derive, for a crate that depends only on `wasmray`:
/// `#[derive(wasmray::Deserialize)]`. Every `#[serde(..)]` attribute works as with serde's own.
#[proc_macro_derive(Deserialize, attributes(serde))]
pub fn derive_deserialize(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as syn::DeriveInput);
    serde_derive::expand(&input, serde_derive::Trait::Deserialize)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
