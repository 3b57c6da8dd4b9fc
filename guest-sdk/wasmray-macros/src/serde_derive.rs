//! `#[derive(wasmray::Serialize, wasmray::Deserialize)]`: serde's derives for a crate that
//! depends only on `wasmray`.
//!
//! serde's derive macros expand to code that names the `serde` crate, so a crate without serde
//! in its own dependencies cannot use them unless every type carries `#[serde(crate = ..)]`.
//! These derives put that attribute in for the user. They hand the type to serde's own derive
//! through serde's *remote* mode: the expansion holds a private copy of the type's definition
//! (same fields, same `#[serde(..)]` attributes) marked `#[serde(remote = "Type", crate =
//! "::wasmray::serde")]`, for which serde generates `serialize`/`deserialize` functions over the
//! original type, and a trait impl for the original type that calls them. The wire format and
//! every serde attribute behave exactly as with serde's derive; nothing here encodes anything.
//!
//! Not supported: a type that already asks for `remote` itself (a compile error says so);
//! `#[serde(bound = ..)]`, since the impl here asks `T: Serialize` (or `Deserialize`) of every
//! type parameter, as serde does by default; field types that name `Self`.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Fields, GenericParam, Ident, Lifetime, LifetimeParam};

/// Which of serde's two traits to derive.
#[derive(Clone, Copy)]
pub(crate) enum Trait {
    Serialize,
    Deserialize,
}

pub(crate) fn expand(input: &DeriveInput, which: Trait) -> syn::Result<TokenStream> {
    let name = &input.ident;
    if input.attrs.iter().any(|attr| serde_key(attr, "remote")) {
        return Err(syn::Error::new_spanned(
            name,
            "wasmray's derives do not take `#[serde(remote = ..)]`: derive with serde itself",
        ));
    }
    let copy = Ident::new("__WasmrayRemote", Span::call_site());
    let remote = name.to_string();
    let crate_attr = if input.attrs.iter().any(|attr| serde_key(attr, "crate")) {
        quote!()
    } else {
        quote!(#[serde(crate = "::wasmray::serde")])
    };
    let serde_attrs = serde_only(&input.attrs);
    let generics = &input.generics;
    let body = copy_body(&copy, generics, &input.data)?;
    let derive = match which {
        Trait::Serialize => quote!(::wasmray::serde::Serialize),
        Trait::Deserialize => quote!(::wasmray::serde::Deserialize),
    };
    let definition = quote! {
        #[derive(#derive)]
        #crate_attr
        #[serde(remote = #remote)]
        #(#serde_attrs)*
        #[allow(dead_code, non_camel_case_types, clippy::all)]
        #body
    };
    let (_, ty_generics, _) = generics.split_for_impl();
    let implementation = match which {
        Trait::Serialize => {
            let mut bounded = generics.clone();
            add_bounds(&mut bounded, quote!(::wasmray::serde::Serialize));
            let (impl_generics, _, where_clause) = bounded.split_for_impl();
            quote! {
                impl #impl_generics ::wasmray::serde::Serialize for #name #ty_generics #where_clause {
                    fn serialize<__S>(&self, serializer: __S) -> ::core::result::Result<__S::Ok, __S::Error>
                    where
                        __S: ::wasmray::serde::Serializer,
                    {
                        <#copy #ty_generics>::serialize(self, serializer)
                    }
                }
            }
        }
        Trait::Deserialize => {
            let de = Lifetime::new("'__wasmray_de", Span::call_site());
            let mut bounded = generics.clone();
            add_bounds(&mut bounded, quote!(::wasmray::serde::Deserialize<#de>));
            let borrowed: Vec<Lifetime> =
                generics.lifetimes().map(|l| l.lifetime.clone()).collect();
            let mut de_param = LifetimeParam::new(de.clone());
            de_param.bounds.extend(borrowed);
            bounded.params.insert(0, GenericParam::Lifetime(de_param));
            let (impl_generics, _, where_clause) = bounded.split_for_impl();
            quote! {
                impl #impl_generics ::wasmray::serde::Deserialize<#de> for #name #ty_generics #where_clause {
                    fn deserialize<__D>(deserializer: __D) -> ::core::result::Result<Self, __D::Error>
                    where
                        __D: ::wasmray::serde::Deserializer<#de>,
                    {
                        <#copy #ty_generics>::deserialize(deserializer)
                    }
                }
            }
        }
    };
    Ok(quote! {
        const _: () = {
            #definition
            #implementation
        };
    })
}

/// `T: bound` for every type parameter, as serde's own derive assumes.
fn add_bounds(generics: &mut syn::Generics, bound: TokenStream) {
    let params: Vec<Ident> = generics.type_params().map(|p| p.ident.clone()).collect();
    let where_clause = generics.make_where_clause();
    for param in params {
        where_clause
            .predicates
            .push(syn::parse_quote!(#param: #bound));
    }
}

/// The copy's definition: `struct __WasmrayRemote<..> { .. }` or `enum ..`, with the type's
/// generics, fields and variants, keeping only their `#[serde(..)]` attributes.
fn copy_body(copy: &Ident, generics: &syn::Generics, data: &Data) -> syn::Result<TokenStream> {
    let params = &generics.params;
    let head = if params.is_empty() {
        quote!(#copy)
    } else {
        quote!(#copy<#params>)
    };
    let where_clause = &generics.where_clause;
    Ok(match data {
        Data::Struct(data) => {
            let fields = copy_fields(&data.fields);
            match data.fields {
                Fields::Named(_) => quote!(struct #head #where_clause #fields),
                Fields::Unnamed(_) => quote!(struct #head #fields #where_clause;),
                Fields::Unit => quote!(struct #head #where_clause;),
            }
        }
        Data::Enum(data) => {
            let variants = data.variants.iter().map(|variant| {
                let attrs = serde_only(&variant.attrs);
                let ident = &variant.ident;
                let fields = copy_fields(&variant.fields);
                let discriminant = variant
                    .discriminant
                    .as_ref()
                    .map(|(eq, expr)| quote!(#eq #expr));
                quote!(#(#attrs)* #ident #fields #discriminant)
            });
            quote!(enum #head #where_clause { #(#variants,)* })
        }
        Data::Union(data) => {
            return Err(syn::Error::new_spanned(
                data.union_token,
                "serde cannot derive for a union",
            ));
        }
    })
}

fn copy_fields(fields: &Fields) -> TokenStream {
    let copied = fields.iter().map(|field| {
        let attrs = serde_only(&field.attrs);
        let ty = &field.ty;
        match &field.ident {
            Some(ident) => quote!(#(#attrs)* #ident: #ty),
            None => quote!(#(#attrs)* #ty),
        }
    });
    match fields {
        Fields::Named(_) => quote!({ #(#copied,)* }),
        Fields::Unnamed(_) => quote!(( #(#copied,)* )),
        Fields::Unit => quote!(),
    }
}

/// The attributes the copy keeps: `#[serde(..)]`, and `#[cfg(..)]` so that a field or
/// variant compiled out of the type is out of the copy too.
fn serde_only(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("serde") || attr.path().is_ident("cfg"))
        .collect()
}

/// Whether `attr` is `#[serde(.. key ..)]` with `key` at its top level.
fn serde_key(attr: &Attribute, key: &str) -> bool {
    if !attr.path().is_ident("serde") {
        return false;
    }
    let syn::Meta::List(list) = &attr.meta else {
        return false;
    };
    list.tokens
        .clone()
        .into_iter()
        .any(|token| matches!(&token, TokenTree::Ident(ident) if ident == key))
}
