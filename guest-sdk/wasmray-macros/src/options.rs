//! Parsing the options of `#[wasmray::remote(...)]` into `CallOptions` builder calls.
//!
//! Accepted, all optional, each at most once:
//! `num_returns = <int literal ≥ 1>`, `num_cpus = <f64>`, `num_gpus = <f64>`,
//! `resources(<name> = <f64>, ...)` (name: identifier or string literal), `max_calls = <u32>`,
//! `max_retries = <u32>`, `retry_exceptions = <bool>`, `memory_limit = <u64 bytes>`,
//! `cpu_time_limit_ms = <u64>`. Values other than `num_returns` may be any expression of the
//! right type (a constant, `64 * 1024 * 1024`); an integer literal where an `f64` is expected is
//! taken as that float. Unknown or repeated options are errors pointing at the option.
//!
//! This file only parses and renders builder calls; it knows nothing about the function. Actor
//! options (a later `#[wasmray::actor]`) can extend it.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::{Expr, ExprLit, Ident, Lit, LitInt, LitStr, Token, parenthesized};

/// The options of one `#[wasmray::remote(...)]`.
pub struct RemoteOptions {
    /// Value and span of `num_returns`, when given.
    pub num_returns: Option<(usize, Span)>,
    /// Builder calls to apply to a fresh `CallOptions`, in order.
    calls: Vec<TokenStream>,
    /// Options seen so far, to reject repeats.
    seen: Vec<String>,
}

impl RemoteOptions {
    pub fn new() -> Self {
        Self {
            num_returns: None,
            calls: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// How many results the function has (1 unless `num_returns` says otherwise).
    pub fn returns(&self) -> usize {
        self.num_returns.map_or(1, |(n, _)| n)
    }

    /// An expression building the `CallOptions` these options describe.
    pub fn call_options(&self) -> TokenStream {
        let calls = &self.calls;
        quote! { ::wasmray::CallOptions::new() #(#calls)* }
    }

    /// Parses one option; given to `syn::meta::parser`.
    pub fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(name) = meta.path.get_ident().map(Ident::to_string) else {
            return Err(meta.error("expected an option name"));
        };
        if self.seen.contains(&name) {
            return Err(meta.error(format!("option `{name}` is given twice")));
        }
        self.seen.push(name.clone());
        match name.as_str() {
            "num_returns" => {
                let lit: LitInt = meta.value()?.parse()?;
                let n: usize = lit.base10_parse()?;
                if n == 0 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "num_returns must be at least 1",
                    ));
                }
                self.num_returns = Some((n, lit.span()));
            }
            "num_cpus" | "num_gpus" => {
                let value = float_expr(meta.value()?.parse()?)?;
                self.push_call(&name, quote! { #value });
            }
            "max_calls" | "max_retries" | "retry_exceptions" | "memory_limit" => {
                let value: Expr = meta.value()?.parse()?;
                self.push_call(&name, quote! { #value });
            }
            "cpu_time_limit_ms" => {
                let value: Expr = meta.value()?.parse()?;
                let span = span_of(&value);
                self.calls.push(quote_spanned! {span=>
                    .cpu_time_limit(::core::time::Duration::from_millis(#value))
                });
            }
            "resources" => {
                let content;
                parenthesized!(content in meta.input);
                self.parse_resources(&content)?;
            }
            _ => {
                return Err(meta.error(format!(
                    "unknown option `{name}`; expected one of: num_returns, num_cpus, num_gpus, \
                     resources(..), max_calls, max_retries, retry_exceptions, memory_limit, \
                     cpu_time_limit_ms"
                )));
            }
        }
        Ok(())
    }

    fn push_call(&mut self, setter: &str, value: TokenStream) {
        let span = value
            .clone()
            .into_iter()
            .next()
            .map_or(Span::call_site(), |t| t.span());
        let setter = Ident::new(setter, span);
        self.calls.push(quote_spanned! {span=> .#setter(#value) });
    }

    /// `name = amount, ...` inside `resources(...)`.
    fn parse_resources(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let mut names = Vec::new();
        while !input.is_empty() {
            let name = if input.peek(LitStr) {
                let lit: LitStr = input.parse()?;
                (lit.value(), lit.span())
            } else {
                let ident: Ident = input.parse()?;
                (ident.to_string(), ident.span())
            };
            if names.contains(&name.0) {
                return Err(syn::Error::new(
                    name.1,
                    format!("resource `{}` is given twice", name.0),
                ));
            }
            input.parse::<Token![=]>()?;
            let amount = float_expr(input.parse()?)?;
            let name_lit = LitStr::new(&name.0, name.1);
            self.calls
                .push(quote_spanned! {name.1=> .resource(#name_lit, #amount) });
            names.push(name.0);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    }
}

/// An integer literal becomes the equal `f64` literal; anything else is kept as written.
fn float_expr(expr: Expr) -> syn::Result<TokenStream> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = &expr
        && int.suffix().is_empty()
    {
        let value: f64 = int.base10_parse()?;
        let mut lit = Literal::f64_suffixed(value);
        lit.set_span(int.span());
        return Ok(quote! { #lit });
    }
    Ok(quote! { #expr })
}

fn span_of(expr: &Expr) -> Span {
    quote! { #expr }
        .into_iter()
        .next()
        .map_or(Span::call_site(), |t| t.span())
}
