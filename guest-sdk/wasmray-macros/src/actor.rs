//! `#[wasmray::actor]`: reading an actor class (Ray's `@ray.remote class`) from its struct and
//! its `impl` block. The code generation is in `actor_expand.rs`.
//!
//! The attribute goes on both items, with the struct first and in the same module:
//!
//! - On the **struct** it takes no options. It emits the struct unchanged and two companion
//!   types with the struct's visibility: `<C>Methods` (the method stubs an `ActorHandle<C>`
//!   derefs to) and `<C>Options` (the builder `C::options()` returns).
//! - On the **inherent `impl` block** it takes the class defaults (`max_restarts`,
//!   `max_task_retries`, `max_concurrency`, `num_cpus`, `num_gpus`, `resources(..)`,
//!   `memory_limit`, `cpu_time_limit_ms`; see `options.rs`) and sorts the items:
//!   - exactly one associated fn without `self` that returns `Self` (or the class) is the
//!     constructor, whatever its name;
//!   - every fn taking `&self` or `&mut self` is a remote method; `#[wasmray::method(num_returns
//!     = n)]` on it sets its number of results (an n-tuple), as for remote functions. Its stub
//!     on `<C>Methods` gets the method's visibility and doc comments, so a class used from
//!     other modules declares its methods `pub` as it would for local calls;
//!   - everything else (other associated fns, consts, types) is left alone and stays local.
//!
//! Errors, at the offending tokens: options on the struct, generics, a trait impl, no or
//! several constructors, `self` by value or typed receivers (`self: Box<Self>`), the checks of
//! `signature.rs`, an associated fn named `remote` or `options` (the macro defines those), and
//! `max_concurrency` > 1 as a class default when a method takes `&mut self`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Attribute, Ident, ImplItem, ImplItemFn, ItemImpl, ItemStruct, ReturnType, Type};

use crate::options::{Concurrency, Kind, Options};
use crate::signature::{check_signature, strip_parens};

/// The class: its name and its sorted items.
pub struct Class {
    pub name: Ident,
    /// The `impl` block's self type, as written.
    pub self_ty: Type,
    pub defaults: Options,
    pub constructor: ImplItemFn,
    pub methods: Vec<Method>,
}

/// One remote method.
pub struct Method {
    pub item: ImplItemFn,
    /// Takes `&mut self`.
    pub mutable: bool,
    /// Its `#[wasmray::method(..)]` options.
    pub options: Options,
}

/// The companion type names for class `name`: (`<C>Methods`, `<C>Options`).
pub fn companion_names(name: &Ident) -> (Ident, Ident) {
    (
        format_ident!("{}Methods", name),
        format_ident!("{}Options", name),
    )
}

/// Expands `#[wasmray::actor]` on the struct.
pub fn expand_struct(attr: TokenStream, item: &ItemStruct) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "class options go on the `impl` block: `#[wasmray::actor(max_restarts = 1)] impl C`",
        ));
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            item.generics.span(),
            "actor classes cannot be generic: the host creates them by name",
        ));
    }
    let name = &item.ident;
    let vis = &item.vis;
    let (methods, options) = companion_names(name);
    let methods_doc = format!(
        "The remote methods of actor class `{name}`: what an `ActorHandle<{name}>` derefs to. \
         Each method returns a `wasmray::MethodCall`; `.remote()` submits it."
    );
    let options_doc = format!(
        "An actor `{name}` being configured (Ray's `{name}.options(..)`): set options, then call \
         `.remote(..)` or `.try_remote(..)`. Starts from the class defaults given to \
         `#[wasmray::actor(..)]` on the `impl` block."
    );
    Ok(quote! {
        #item

        #[doc = #methods_doc]
        #[derive(Debug)]
        #vis struct #methods {
            __wasmray_actor: ::wasmray::__private::RawActor,
        }

        #[doc = #options_doc]
        #[derive(Debug, Clone)]
        #[must_use = "an actor is created only by `.remote(..)` or `.try_remote(..)`"]
        #vis struct #options {
            options: ::wasmray::ActorOptions,
        }

        ::wasmray::__impl_actor_setters!(#options);
    })
}

/// Reads the `impl` block of a class; `item` loses its `#[wasmray::method]` attributes, the
/// constructor and the methods are also copied into the returned [`Class`].
pub fn parse_impl(defaults: Options, item: &mut ItemImpl) -> syn::Result<Class> {
    if let Some((_, path, _)) = &item.trait_ {
        return Err(syn::Error::new(
            path.span(),
            "#[wasmray::actor] goes on the class's inherent `impl` block, not a trait impl",
        ));
    }
    if let Some(token) = &item.unsafety {
        return Err(syn::Error::new(
            token.span(),
            "an actor `impl` block cannot be `unsafe`",
        ));
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            item.generics.span(),
            "actor classes cannot be generic: the host creates them by name",
        ));
    }
    let name = class_name(&item.self_ty)?;
    let mut constructors = Vec::new();
    let mut methods = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else {
            continue;
        };
        let options = take_method_options(&mut function.attrs)?;
        if let Some(receiver) = function.sig.receiver() {
            let mutable = check_receiver(receiver)?;
            check_signature(&function.sig, "actor methods")?;
            methods.push(Method {
                item: function.clone(),
                mutable,
                options: options.map_or_else(|| Options::new(Kind::Method), |(o, _)| o),
            });
            continue;
        }
        let ident = &function.sig.ident;
        if ident == "remote" || ident == "options" {
            return Err(syn::Error::new(
                ident.span(),
                format!(
                    "an actor class cannot define `{ident}`: #[wasmray::actor] generates \
                     `{name}::remote(..)` and `{name}::options()`"
                ),
            ));
        }
        if returns_class(&function.sig.output, &name) {
            if let Some((_, span)) = options {
                return Err(syn::Error::new(
                    span,
                    "#[wasmray::method] goes on methods taking `&self` or `&mut self`, not on \
                     the constructor",
                ));
            }
            check_signature(&function.sig, "actor constructors")?;
            constructors.push(function.clone());
        } else if let Some((_, span)) = options {
            return Err(syn::Error::new(
                span,
                "#[wasmray::method] goes on methods taking `&self` or `&mut self`",
            ));
        }
    }
    let constructor = single_constructor(constructors, &name, &item.self_ty)?;
    check_concurrency(&defaults, &methods)?;
    Ok(Class {
        name,
        self_ty: (*item.self_ty).clone(),
        defaults,
        constructor,
        methods,
    })
}

/// The class name: the last segment of a plain path type.
fn class_name(self_ty: &Type) -> syn::Result<Ident> {
    if let Type::Path(path) = strip_parens(self_ty)
        && path.qself.is_none()
        && let Some(last) = path.path.segments.last()
        && last.arguments.is_empty()
    {
        return Ok(last.ident.clone());
    }
    Err(syn::Error::new(
        self_ty.span(),
        "#[wasmray::actor] goes on `impl C` where `C` is a struct marked #[wasmray::actor]",
    ))
}

/// `true` for `&mut self`, `false` for `&self`; an error for every other receiver.
fn check_receiver(receiver: &syn::Receiver) -> syn::Result<bool> {
    match &receiver.reference {
        Some((_, None)) if receiver.colon_token.is_none() => Ok(receiver.mutability.is_some()),
        Some((_, Some(lifetime))) => Err(syn::Error::new(
            lifetime.span(),
            "actor methods take `&self` or `&mut self` without a named lifetime",
        )),
        _ => Err(syn::Error::new(
            receiver.span(),
            "actor methods take `&self` or `&mut self`: the state stays in the actor, a method \
             cannot take it by value",
        )),
    }
}

/// Removes the `#[wasmray::method(..)]` (or `#[method(..)]`) attribute and parses it.
fn take_method_options(attrs: &mut Vec<Attribute>) -> syn::Result<Option<(Options, Span)>> {
    let mut found: Option<(Options, Span)> = None;
    let mut error: Option<syn::Error> = None;
    attrs.retain(|attr| {
        if !is_method_attr(attr) {
            return true;
        }
        let span = attr.span();
        if found.is_some() {
            error.get_or_insert(syn::Error::new(span, "#[wasmray::method] is given twice"));
            return false;
        }
        let mut options = Options::new(Kind::Method);
        let parsed = match &attr.meta {
            syn::Meta::Path(_) => Ok(()),
            syn::Meta::List(_) => attr.parse_nested_meta(|meta| options.parse(meta)),
            syn::Meta::NameValue(_) => Err(syn::Error::new(
                span,
                "expected `#[wasmray::method]` or `#[wasmray::method(num_returns = n)]`",
            )),
        };
        if let Err(e) = parsed {
            error.get_or_insert(e);
        }
        found = Some((options, span));
        false
    });
    match error {
        Some(error) => Err(error),
        None => Ok(found),
    }
}

fn is_method_attr(attr: &Attribute) -> bool {
    let path = attr.path();
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    names == ["method"] || names == ["wasmray", "method"]
}

/// Whether a return type is `Self` or the class itself.
fn returns_class(output: &ReturnType, name: &Ident) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    match strip_parens(ty) {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().is_some_and(|last| {
            last.arguments.is_empty() && (last.ident == "Self" || last.ident == *name)
        }),
        _ => false,
    }
}

fn single_constructor(
    constructors: Vec<ImplItemFn>,
    name: &Ident,
    self_ty: &Type,
) -> syn::Result<ImplItemFn> {
    let mut constructors = constructors.into_iter();
    let Some(first) = constructors.next() else {
        return Err(syn::Error::new(
            self_ty.span(),
            format!(
                "actor class `{name}` needs a constructor: an associated fn returning `Self`, \
                 e.g. `fn new(..) -> Self`"
            ),
        ));
    };
    if let Some(second) = constructors.next() {
        let mut error = syn::Error::new(
            second.sig.ident.span(),
            format!(
                "actor class `{name}` has several constructors (associated fns returning \
                 `Self`); keep one here and move the others to a separate `impl` block"
            ),
        );
        error.combine(syn::Error::new(
            first.sig.ident.span(),
            "the first constructor is here",
        ));
        return Err(error);
    }
    Ok(first)
}

/// A class default `max_concurrency > 1` needs every method to take `&self`.
fn check_concurrency(defaults: &Options, methods: &[Method]) -> syn::Result<()> {
    let Some(Concurrency::Literal(value, span)) = &defaults.max_concurrency else {
        return Ok(());
    };
    let mutable: Vec<String> = methods
        .iter()
        .filter(|method| method.mutable)
        .map(|method| method.item.sig.ident.to_string())
        .collect();
    if *value > 1 && !mutable.is_empty() {
        return Err(syn::Error::new(
            *span,
            format!(
                "max_concurrency = {value} needs every method to take `&self` (keep mutable \
                 state in `Cell`/`RefCell`), but these take `&mut self`: {}",
                mutable.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Replaces `Self` with the class name in tokens copied out of the `impl` block (parameter
/// types of the constructor and methods end up in other types' impls, where `Self` differs).
pub fn replace_self(tokens: TokenStream, name: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            proc_macro2::TokenTree::Ident(ident) if ident == "Self" => {
                proc_macro2::TokenTree::Ident(Ident::new(&name.to_string(), ident.span()))
            }
            proc_macro2::TokenTree::Group(group) => {
                let mut new =
                    proc_macro2::Group::new(group.delimiter(), replace_self(group.stream(), name));
                new.set_span(group.span());
                proc_macro2::TokenTree::Group(new)
            }
            other => other,
        })
        .collect()
}

/// Keeps the `#[doc]` attributes of a user item, to copy them onto generated stubs.
pub fn doc_attrs(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .collect()
}

/// Tokens for `Self` replaced by the class, for a type.
pub fn class_type(ty: &Type, name: &Ident) -> TokenStream {
    replace_self(quote! { #ty }, name)
}
