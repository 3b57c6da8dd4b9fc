//! The attribute macros of the wasmray guest SDK; use them through the `wasmray` crate.
//!
//! - [`macro@remote`] makes a free function callable remotely, Ray's `@ray.remote`.
//! - [`macro@main`] makes `fn main` the driver and marks the module as built with the SDK.
//!
//! The generated code calls `::wasmray::__private`, so the SDK must be a dependency named
//! `wasmray`. `#[wasmray::actor]` will live here too; option parsing (`options.rs`) is shared for
//! that. This crate does no I/O and holds no runtime code.

mod main_attr;
mod options;
mod remote;

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
    let mut options = options::RemoteOptions::new();
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
