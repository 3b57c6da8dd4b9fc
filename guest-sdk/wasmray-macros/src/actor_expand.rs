//! Code generation of `#[wasmray::actor]` on an `impl` block, from the [`Class`] that
//! `actor.rs` read. For `impl Counter { fn new(start: u64) -> Self; fn inc(&mut self) -> u64 }`:
//!
//! - the `impl` block itself, minus its `#[wasmray::method]` attributes;
//! - `Counter::remote(start: impl IntoArg<u64>) -> ActorHandle<Counter>` and
//!   `Counter::options() -> CounterOptions` (starting from the class defaults), and on
//!   `CounterOptions`: `remote(..)` (panics if the host refuses) and `try_remote(..)`;
//! - on `CounterMethods`, one stub per method:
//!   `fn inc(&self) -> MethodCall<ObjectRef<u64>>`, a tuple of refs with `num_returns = n`;
//! - `impl ActorClass for Counter` (name, `&mut self` methods, the state cell);
//! - the exports `wasmray_actor_new:Counter` and `wasmray_actor_call:Counter::inc`, which read
//!   the arguments with `task_arg` and run through `wasmray::__private::run_constructor`,
//!   `run_method_ref` or `run_method_mut`;
//! - a constant assertion when `max_concurrency` is a non-literal class default and a method
//!   takes `&mut self` (a literal is checked by the macro itself).
//!
//! This file checks signatures (through `signature.rs`) but makes no other decision.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemImpl, Type};

use crate::actor::{Class, Method, class_type, companion_names, doc_attrs};
use crate::options::Concurrency;
use crate::signature::{params, results};

/// Expands `#[wasmray::actor(defaults)]` on `item`, already read into `class`.
pub fn expand_impl(item: &ItemImpl, class: &Class) -> syn::Result<TokenStream> {
    let name = &class.name;
    let self_ty = &class.self_ty;
    let name_str = name.to_string();
    let (methods_ty, options_ty) = companion_names(name);

    let ctor = &class.constructor;
    let ctor_ident = &ctor.sig.ident;
    let ctor_params = params(&ctor.sig, "actor constructors", false)?;
    let ctor_label = format!("{name_str}::{ctor_ident}");
    let ctor_names: Vec<&Ident> = ctor_params.iter().map(|(n, _)| *n).collect();
    let ctor_decls = param_decls(&ctor_params, name);
    let ctor_into = into_args(&ctor_params, name);
    let ctor_reads = read_args(&ctor_params, name, &ctor_label);
    let builder = class.defaults.builder();

    let mut stubs = Vec::new();
    let mut exports = Vec::new();
    for method in &class.methods {
        let (stub, export) = expand_method(class, method)?;
        stubs.push(stub);
        exports.push(export);
    }
    let mut_methods: Vec<String> = class
        .methods
        .iter()
        .filter(|method| method.mutable)
        .map(|method| method.item.sig.ident.to_string())
        .collect();
    let concurrency_check = match &class.defaults.max_concurrency {
        Some(Concurrency::Expr(expr)) if !mut_methods.is_empty() => {
            let message = format!(
                "actor class `{name_str}`: max_concurrency > 1 needs every method to take \
                 `&self` (keep mutable state in `Cell`/`RefCell`), but these take `&mut self`: \
                 {}",
                mut_methods.join(", ")
            );
            quote_spanned! {expr.span()=> const _: () = ::core::assert!((#expr) <= 1, #message); }
        }
        _ => TokenStream::new(),
    };
    let new_export = format!("wasmray_actor_new:{name_str}");
    let remote_doc = format!(
        "Creates an actor `{name_str}` with the class defaults and returns its handle at once \
         (Ray's `{name_str}.remote(..)`); the constructor runs later, in the actor's own \
         instance. Each argument may be a value or an `ObjectRef` to one.\n\n# Panics\nWhen the \
         host refuses the creation; `{name_str}::options().try_remote(..)` returns the error \
         instead."
    );

    Ok(quote! {
        #item

        #[allow(dead_code, clippy::too_many_arguments)]
        impl #self_ty {
            #[doc = #remote_doc]
            pub fn remote(#(#ctor_decls),*) -> ::wasmray::ActorHandle<#name> {
                #name::options().remote(#(#ctor_names),*)
            }

            /// Options for one actor (Ray's `.options(..)`), starting from the class defaults.
            pub fn options() -> #options_ty {
                #options_ty { options: #builder }
            }
        }

        #[allow(dead_code, clippy::too_many_arguments)]
        impl #options_ty {
            /// Creates the actor with these options and returns its handle at once.
            ///
            /// # Panics
            /// When the host refuses the creation (e.g. the name is taken), with its message.
            pub fn remote(self, #(#ctor_decls),*) -> ::wasmray::ActorHandle<#name> {
                ::wasmray::__private::create_actor_or_panic::<#name>(
                    ::wasmray::__private::Vec::from([#(#ctor_into),*]),
                    &self.options,
                )
            }

            /// Creates the actor with these options, or returns why the host refused.
            pub fn try_remote(
                self,
                #(#ctor_decls),*
            ) -> ::core::result::Result<::wasmray::ActorHandle<#name>, ::wasmray::TaskError> {
                ::wasmray::__private::create_actor::<#name>(
                    ::wasmray::__private::Vec::from([#(#ctor_into),*]),
                    &self.options,
                )
            }
        }

        #[allow(dead_code, clippy::too_many_arguments)]
        impl #methods_ty {
            #(#stubs)*
        }

        impl ::wasmray::ActorClass for #name {
            const NAME: &'static str = #name_str;
            type Methods = #methods_ty;
            const MUT_METHODS: &'static [&'static str] = &[#(#mut_methods),*];

            fn __methods(actor: ::wasmray::__private::RawActor) -> #methods_ty {
                #methods_ty { __wasmray_actor: actor }
            }

            fn __actor(methods: &#methods_ty) -> &::wasmray::__private::RawActor {
                &methods.__wasmray_actor
            }

            fn __state() -> &'static ::std::thread::LocalKey<::wasmray::__private::ActorCell<#name>> {
                ::std::thread_local! {
                    static STATE: ::wasmray::__private::ActorCell<#name> =
                        const { ::wasmray::__private::ActorCell::new() };
                }
                &STATE
            }
        }

        #concurrency_check

        #[allow(clippy::let_unit_value, clippy::unused_unit)]
        const _: () = {
            #[doc(hidden)]
            #[unsafe(export_name = #new_export)]
            extern "C" fn __wasmray_actor_new() {
                ::wasmray::__private::run_constructor::<#name>(|| {
                    #(#ctor_reads)*
                    #name::#ctor_ident(#(#ctor_names),*)
                })
            }

            #(#exports)*
        };
    })
}

/// The stub on `<C>Methods` and the export of one method.
fn expand_method(class: &Class, method: &Method) -> syn::Result<(TokenStream, TokenStream)> {
    const WHAT: &str = "actor methods";
    let name = &class.name;
    let sig = &method.item.sig;
    let ident = &sig.ident;
    let method_str = ident.to_string();
    let label = format!("{name}::{method_str}");
    let params = params(sig, WHAT, true)?;
    let results = results(sig, method.options.num_returns, WHAT)?;
    let n = results.len();
    let Ok(n_u32) = u32::try_from(n) else {
        return Err(syn::Error::new(ident.span(), "num_returns is too large"));
    };
    let n_lit = Literal::u32_unsuffixed(n_u32);
    let results: Vec<TokenStream> = results.iter().map(|ty| class_type(ty, name)).collect();

    let names: Vec<&Ident> = params.iter().map(|(n, _)| *n).collect();
    let decls = param_decls(&params, name);
    let into = into_args(&params, name);
    let reads = read_args(&params, name, &label);
    let takes: Vec<TokenStream> = results
        .iter()
        .map(|ty| quote! { __wasmray_returns.take::<#ty>() })
        .collect();
    let (out_type, wrap) = if n == 1 {
        let ty = &results[0];
        (quote! { ::wasmray::ObjectRef<#ty> }, quote! { #(#takes)* })
    } else {
        (
            quote! { ( #(::wasmray::ObjectRef<#results>),* ) },
            quote! { ( #(#takes),* ) },
        )
    };
    let values: Vec<Ident> = (0..n)
        .map(|i| format_ident!("__wasmray_result{i}"))
        .collect();
    let pattern = if n == 1 {
        let value = &values[0];
        quote! { #value }
    } else {
        quote! { ( #(#values),* ) }
    };
    let docs = doc_attrs(&method.item.attrs);
    let stub_doc = format!(
        "Prepares a call of `{label}` on the actor; `.remote()` submits it and returns at once. \
         Each argument may be a value or an `ObjectRef` to one."
    );
    let vis = &method.item.vis;
    let stub = quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #stub_doc]
        #vis fn #ident(&self, #(#decls),*) -> ::wasmray::MethodCall<#out_type> {
            ::wasmray::MethodCall::new(
                &self.__wasmray_actor,
                #method_str,
                ::wasmray::__private::Vec::from([#(#into),*]),
                #n_lit,
                |mut __wasmray_returns: ::wasmray::__private::ReturnHandles| #wrap,
            )
        }
    };

    let export = format!("wasmray_actor_call:{label}");
    let export_fn = format_ident!("__wasmray_actor_call_{}", ident);
    let (run, this_ty) = if method.mutable {
        (quote! { run_method_mut }, quote! { &mut #name })
    } else {
        (quote! { run_method_ref }, quote! { &#name })
    };
    // A tuple result returned as one object may be asked for as its elements by a call
    // (`.options().num_returns::<k>()`): the export looks at what the call asked.
    let encode = match (n, splittable_arity(sig)) {
        (1, Some(arity)) => {
            let parts: Vec<Ident> = (0..arity)
                .map(|i| format_ident!("__wasmray_part{i}"))
                .collect();
            let arity_lit = Literal::usize_unsuffixed(arity);
            let value = &values[0];
            quote! {
                if ::wasmray::__private::call_num_returns() as usize == #arity_lit {
                    let ( #(#parts),* ) = #value;
                    ::wasmray::__private::Vec::from([
                        #(::wasmray::__private::encode_result(&#parts)),*
                    ])
                } else {
                    ::wasmray::__private::Vec::from([::wasmray::__private::encode_result(&#value)])
                }
            }
        }
        _ => quote! {
            ::wasmray::__private::Vec::from([
                #(::wasmray::__private::encode_result(&#values)),*
            ])
        },
    };
    let export = quote! {
        #[doc(hidden)]
        #[unsafe(export_name = #export)]
        extern "C" fn #export_fn() {
            ::wasmray::__private::#run::<#name>(#method_str, |__wasmray_this: #this_ty| {
                #(#reads)*
                let #pattern = #name::#ident(__wasmray_this, #(#names),*);
                #encode
            })
        }
    };
    Ok((stub, export))
}

/// The arity of a method's result when it is written as a tuple of 2 to 8 elements.
fn splittable_arity(sig: &syn::Signature) -> Option<usize> {
    let syn::ReturnType::Type(_, ty) = &sig.output else {
        return None;
    };
    match crate::signature::strip_parens(ty) {
        Type::Tuple(tuple) if (2..=8).contains(&tuple.elems.len()) => Some(tuple.elems.len()),
        _ => None,
    }
}

/// `name: impl IntoArg<T>` for each parameter.
fn param_decls(params: &[(&Ident, &Type)], class: &Ident) -> Vec<TokenStream> {
    params
        .iter()
        .map(|(param, ty)| {
            let ty_tokens = class_type(ty, class);
            quote_spanned! {ty.span()=> #param: impl ::wasmray::IntoArg<#ty_tokens> }
        })
        .collect()
}

/// `IntoArg::<T>::into_arg(name)` for each parameter.
fn into_args(params: &[(&Ident, &Type)], class: &Ident) -> Vec<TokenStream> {
    params
        .iter()
        .map(|(param, ty)| {
            let ty_tokens = class_type(ty, class);
            quote_spanned! {ty.span()=> ::wasmray::IntoArg::<#ty_tokens>::into_arg(#param) }
        })
        .collect()
}

/// `let name: T = task_arg::<T>(label, index);` for each parameter.
fn read_args(params: &[(&Ident, &Type)], class: &Ident, label: &str) -> Vec<TokenStream> {
    params
        .iter()
        .zip(0u32..)
        .map(|((param, ty), index)| {
            let ty_tokens = class_type(ty, class);
            quote_spanned! {ty.span()=>
                let #param: #ty_tokens = ::wasmray::__private::task_arg::<#ty_tokens>(#label, #index);
            }
        })
        .collect()
}
