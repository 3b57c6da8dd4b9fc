//! Checks shared by every function the host calls by name: remote functions, actor constructors
//! and actor methods. Each check names the kind of function in its error (`what`, e.g. "remote
//! functions") and points at the offending tokens.
//!
//! Rejected: `async`, `unsafe`, an explicit ABI, generics (also lifetimes), variadics,
//! parameters that are not plain identifiers, reference or `impl Trait` types at the top level of
//! parameters or results, and a `num_returns` that does not match the result tuple. Receivers
//! are the caller's business: [`params`] skips them only when told to.
//!
//! This file generates no code.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Pat, ReturnType, Signature, Type};

/// Rejects what the host cannot call: `async`, `unsafe`, an ABI, generics, variadics.
pub fn check_signature(sig: &Signature, what: &str) -> syn::Result<()> {
    if let Some(token) = &sig.asyncness {
        return Err(syn::Error::new(
            token.span(),
            format!("{what} cannot be `async`"),
        ));
    }
    if let Some(token) = &sig.unsafety {
        return Err(syn::Error::new(
            token.span(),
            format!("{what} cannot be `unsafe`"),
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(
            abi.span(),
            format!("{what} cannot declare an ABI"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!(
                "{what} cannot be generic: the host calls them by name, with one type per \
                 argument"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            format!("{what} cannot be variadic"),
        ));
    }
    Ok(())
}

/// The parameters as (name, type). A receiver is skipped when `receiver_ok`, an error otherwise.
pub fn params<'a>(
    sig: &'a Signature,
    what: &str,
    receiver_ok: bool,
) -> syn::Result<Vec<(&'a Ident, &'a Type)>> {
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(_) if receiver_ok => {}
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    format!("{what} cannot take `self`"),
                ));
            }
            FnArg::Typed(typed) => {
                let name = match &*typed.pat {
                    Pat::Ident(ident)
                        if ident.by_ref.is_none()
                            && ident.subpat.is_none()
                            && ident.ident != "self" =>
                    {
                        &ident.ident
                    }
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            format!(
                                "parameters of {what} must be plain identifiers \
                                 (`name: Type`), not patterns"
                            ),
                        ));
                    }
                };
                check_owned(&typed.ty, "parameters", what)?;
                params.push((name, &*typed.ty));
            }
        }
    }
    Ok(params)
}

/// The result types: one, or the elements of the tuple for `num_returns = n > 1`.
/// `num_returns` is `(n, span of the option)` when the option was given.
pub fn results(
    sig: &Signature,
    num_returns: Option<(usize, Span)>,
    what: &str,
) -> syn::Result<Vec<Type>> {
    let n = num_returns.map_or(1, |(n, _)| n);
    let ty = match &sig.output {
        ReturnType::Type(_, ty) => &**ty,
        ReturnType::Default if n == 1 => return Ok(vec![syn::parse_quote!(())]),
        ReturnType::Default => {
            return Err(syn::Error::new(
                sig.ident.span(),
                format!("num_returns = {n} needs a {n}-tuple return type, found `()`"),
            ));
        }
    };
    check_owned(ty, "results", what)?;
    if n == 1 {
        return Ok(vec![ty.clone()]);
    }
    match strip_parens(ty) {
        Type::Tuple(tuple) if tuple.elems.len() == n => {
            for elem in &tuple.elems {
                check_owned(elem, "results", what)?;
            }
            Ok(tuple.elems.iter().cloned().collect())
        }
        other => {
            let span = num_returns.map_or(Span::call_site(), |(_, span)| span);
            let mut error = syn::Error::new(
                other.span(),
                format!("num_returns = {n} needs the return type written as a {n}-tuple"),
            );
            error.combine(syn::Error::new(span, "num_returns is set here"));
            Err(error)
        }
    }
}

pub fn strip_parens(ty: &Type) -> &Type {
    match ty {
        Type::Paren(inner) => strip_parens(&inner.elem),
        Type::Group(inner) => strip_parens(&inner.elem),
        other => other,
    }
}

/// Values cross instances by copy: no borrowed or opaque types at the top level.
fn check_owned(ty: &Type, part: &str, what: &str) -> syn::Result<()> {
    match strip_parens(ty) {
        Type::Reference(reference) => Err(syn::Error::new(
            reference.span(),
            format!(
                "{part} of {what} are sent between instances by value: use an owned type (e.g. \
                 `String`, `Vec<T>`) instead of a reference"
            ),
        )),
        Type::ImplTrait(opaque) => Err(syn::Error::new(
            opaque.span(),
            format!("{part} of {what} need a concrete type, not `impl Trait`"),
        )),
        _ => Ok(()),
    }
}
