//! Parsing the options of `#[wasmray::remote(...)]`, `#[wasmray::actor(...)]` (on an `impl`
//! block: class defaults) and `#[wasmray::method(...)]` into builder calls.
//!
//! Accepted, all optional, each at most once, depending on the attribute ([`Kind`]):
//!
//! | option                              | remote | actor | method |
//! |-------------------------------------|--------|-------|--------|
//! | `num_returns = <int literal ≥ 1>`   | yes    |       | yes    |
//! | `num_cpus = <f64>`, `num_gpus = <f64>` | yes | yes   |        |
//! | `resources(<name> = <f64>, ...)`    | yes    | yes   |        |
//! | `max_calls`, `max_retries` (u32), `retry_exceptions` (bool) | yes | | |
//! | `max_restarts`, `max_task_retries` (u32) |   | yes   |        |
//! | `max_concurrency = <u32>`           |        | yes   |        |
//! | `memory_limit = <u64 bytes>`, `cpu_time_limit_ms = <u64>` | yes | yes | |
//! | `name = <&str>`, `namespace = <&str>` |      | yes   |        |
//! | `lifetime = "detached"` (or `"non_detached"`, the default) | | yes | |
//!
//! A resource name is an identifier or a string literal. Values other than `num_returns` may be
//! any expression of the right type (a constant, `64 * 1024 * 1024`); an integer literal where
//! an `f64` is expected is taken as that float. Unknown or repeated options are errors pointing
//! at the option.
//!
//! This file only parses and renders builder calls (on `wasmray::CallOptions` or
//! `wasmray::ActorOptions`); it knows nothing about the item the attribute is on.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::{Expr, ExprLit, Ident, Lit, LitInt, LitStr, Token, parenthesized};

/// Which attribute the options belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `#[wasmray::remote(...)]`: per-call defaults of a remote function.
    Remote,
    /// `#[wasmray::actor(...)]` on an `impl` block: class defaults.
    Actor,
    /// `#[wasmray::method(...)]` on an actor method.
    Method,
}

impl Kind {
    /// The options this attribute accepts, in the order error messages list them.
    fn accepted(self) -> &'static [&'static str] {
        match self {
            Kind::Remote => &[
                "num_returns",
                "num_cpus",
                "num_gpus",
                "resources(..)",
                "max_calls",
                "max_retries",
                "retry_exceptions",
                "memory_limit",
                "cpu_time_limit_ms",
            ],
            Kind::Actor => &[
                "num_cpus",
                "num_gpus",
                "resources(..)",
                "max_restarts",
                "max_task_retries",
                "max_concurrency",
                "memory_limit",
                "cpu_time_limit_ms",
                "name",
                "namespace",
                "lifetime",
            ],
            Kind::Method => &["num_returns"],
        }
    }

    fn accepts(self, name: &str) -> bool {
        self.accepted()
            .iter()
            .any(|accepted| accepted.strip_suffix("(..)").unwrap_or(accepted) == name)
    }
}

/// The value of `max_concurrency`, when given.
pub enum Concurrency {
    /// An integer literal, checked by the macro.
    Literal(u64, Span),
    /// Any other expression, checked by a constant assertion in the generated code.
    Expr(Expr),
}

/// The options of one attribute.
pub struct Options {
    kind: Kind,
    /// Value and span of `num_returns`, when given.
    pub num_returns: Option<(usize, Span)>,
    /// `max_concurrency`, when given (actor options only).
    pub max_concurrency: Option<Concurrency>,
    /// Builder calls to apply to a fresh `CallOptions` or `ActorOptions`, in order.
    calls: Vec<TokenStream>,
    /// Options seen so far, to reject repeats.
    seen: Vec<String>,
}

impl Options {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            num_returns: None,
            max_concurrency: None,
            calls: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// An expression building the `CallOptions` (remote) or `ActorOptions` (actor) these
    /// options describe.
    pub fn builder(&self) -> TokenStream {
        let calls = &self.calls;
        match self.kind {
            Kind::Actor => quote! { ::wasmray::ActorOptions::new() #(#calls)* },
            Kind::Remote | Kind::Method => quote! { ::wasmray::CallOptions::new() #(#calls)* },
        }
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
        if !self.kind.accepts(&name) {
            return Err(meta.error(format!(
                "unknown option `{name}`; expected one of: {}",
                self.kind.accepted().join(", ")
            )));
        }
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
            "lifetime" => {
                let lit: LitStr = meta.value()?.parse()?;
                match lit.value().as_str() {
                    "detached" => self.calls.push(quote_spanned! {lit.span()=> .detached() }),
                    "non_detached" => {}
                    other => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!(
                                "lifetime must be \"detached\" or \"non_detached\", not {other:?}"
                            ),
                        ));
                    }
                }
            }
            "max_calls" | "max_retries" | "retry_exceptions" | "memory_limit" | "max_restarts"
            | "max_task_retries" | "name" | "namespace" => {
                let value: Expr = meta.value()?.parse()?;
                self.push_call(&name, quote! { #value });
            }
            "max_concurrency" => {
                let value: Expr = meta.value()?.parse()?;
                self.max_concurrency = Some(match &value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(int), ..
                    }) => Concurrency::Literal(int.base10_parse()?, int.span()),
                    other => Concurrency::Expr(other.clone()),
                });
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
            _ => return Err(meta.error(format!("option `{name}` is not supported here"))),
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
