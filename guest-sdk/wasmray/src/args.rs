//! Task arguments: each parameter of a remote function accepts a value or an `ObjectRef` to one.
//!
//! `f::remote(x)` takes every argument as `impl IntoArg<P>`, where `P` is the parameter's type.
//! Three impls cover Ray's call forms:
//!
//! | argument                | travels as                                                 |
//! |-------------------------|------------------------------------------------------------|
//! | `P` or `&P`             | the serialized value (`ArgOut::Value`)                      |
//! | `ObjectRef<P>`          | the ref (`ArgOut::Ref`); the host resolves it to its value |
//! | `&ObjectRef<P>`         | the same, without giving up the caller's ref               |
//!
//! so `f::remote(1)` and `f::remote(f::remote(0))` (chaining) both compile. The impls do not
//! overlap: `P` would have to equal `ObjectRef<P>`, which no type does, so coherence accepts
//! them and inference still picks `i64` for the literal in `f::remote(1)`.
//!
//! A parameter whose type is itself `ObjectRef<Q>` receives the ref unresolved (pass the ref
//! as the value); pass an `ObjectRef<ObjectRef<Q>>` to have it resolved instead.
//!
//! This file only converts arguments; [`crate::task`] submits them.

use serde::Serialize;
use std::rc::Rc;
use wasmray_abi::ArgOut;

use crate::codec::{self, Encoded};
use crate::object_ref::{HandleOwner, ObjectRef};

/// An argument ready to submit. It keeps the refs it names alive until the host has taken them.
pub struct Arg(ArgKind);

enum ArgKind {
    Value(Encoded),
    Ref(Rc<HandleOwner>),
}

impl Arg {
    /// The `ArgOut` record the ABI expects, borrowing from this argument.
    pub(crate) fn arg_out(&self) -> ArgOut<'_> {
        match &self.0 {
            ArgKind::Value(encoded) => ArgOut::Value(encoded.value_out()),
            ArgKind::Ref(owner) => ArgOut::Ref(owner.handle()),
        }
    }
}

/// Something that can be passed where a remote function expects a `T`: a `T` (or `&T`), or an
/// `ObjectRef<T>` (or `&ObjectRef<T>`) that the host resolves before the task runs.
pub trait IntoArg<T> {
    /// Converts the argument for submission.
    fn into_arg(self) -> Arg;
}

impl<T: Serialize> IntoArg<T> for T {
    fn into_arg(self) -> Arg {
        Arg(ArgKind::Value(codec::encode(&self)))
    }
}

impl<T: Serialize> IntoArg<T> for &T {
    fn into_arg(self) -> Arg {
        Arg(ArgKind::Value(codec::encode(self)))
    }
}

impl<T> IntoArg<T> for ObjectRef<T> {
    fn into_arg(self) -> Arg {
        Arg(ArgKind::Ref(self.owner()))
    }
}

impl<T> IntoArg<T> for &ObjectRef<T> {
    fn into_arg(self) -> Arg {
        Arg(ArgKind::Ref(self.owner()))
    }
}
