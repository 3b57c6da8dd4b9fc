//! `#[wasmray::main]`: makes `fn main` the driver of a wasmray module.
//!
//! The body moves into a nested function with the same return type, which `main` runs through
//! `wasmray::__private::run_driver` (that installs the panic hook first). Because `main` keeps
//! its return type, `fn main() -> Result<(), E>` works as in any Rust program: Rust's own
//! `Termination` prints `Error: ...` and exits with status 1 on `Err`.
//!
//! Next to `main` the macro emits the export `wasmray_abi_version`, which the host checks before
//! it runs anything; a module without it (built without the SDK) is refused. Rust keeps
//! `#[no_mangle]`/`#[export_name]` functions as exports of a wasm32-wasip1 *binary*, as the
//! `wasmray_task:*` exports of remote functions, so no linker flag is needed.
//!
//! Rejected: arguments to the attribute, a function not named `main`, parameters, generics and
//! `async`. This file does nothing at run time itself.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;
use syn::spanned::Spanned;

/// Expands `#[wasmray::main]` on `function`.
pub fn expand(function: &ItemFn) -> syn::Result<TokenStream> {
    let sig = &function.sig;
    if sig.ident != "main" {
        return Err(syn::Error::new(
            sig.ident.span(),
            "#[wasmray::main] goes on the driver's `fn main`",
        ));
    }
    if let Some(token) = &sig.asyncness {
        return Err(syn::Error::new(
            token.span(),
            "the driver's `main` cannot be `async`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "`main` cannot be generic",
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "`main` takes no parameters; read arguments with `std::env::args()`",
        ));
    }

    let attrs = &function.attrs;
    let vis = &function.vis;
    let output = &sig.output;
    let block = &function.block;
    Ok(quote! {
        #(#attrs)*
        #vis fn main() #output {
            fn __wasmray_main() #output #block
            ::wasmray::__private::run_driver(__wasmray_main)
        }

        /// The host ABI version this module was built for; the host refuses other versions.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn wasmray_abi_version() -> u32 {
            ::wasmray::__private::ABI_VERSION
        }
    })
}
