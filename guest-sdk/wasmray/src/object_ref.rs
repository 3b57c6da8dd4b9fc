//! `ObjectRef<T>`: the guest's handle to an object, and how it travels inside serialized values.
//!
//! A handle is a `u32` index into a table the host keeps for this instance (like a file
//! descriptor). Each handle the host gives the guest is owned by exactly one [`HandleOwner`];
//! `ObjectRef` shares that owner through an `Rc`, so cloning is cheap and the handle is released
//! when the last clone is dropped.
//!
//! Inside a value, an `ObjectRef` is written as its index in the value's `refs` list (a postcard
//! varint), as the ABI prescribes. The lists live in two thread-local contexts that only
//! [`crate::codec`] opens: serializing pushes the handle onto the *outgoing* list, deserializing
//! takes a handle from the *incoming* list. Outside such a context, (de)serializing an
//! `ObjectRef` is a serde error: a ref means nothing to another serializer.
//!
//! This file does not talk to the host except to release handles; it does not encode values.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::sys;

/// Sole owner of one host handle: releases it on drop.
pub(crate) struct HandleOwner(u32);

impl HandleOwner {
    /// Takes ownership of a handle the host just gave this instance.
    pub(crate) fn new(handle: u32) -> Self {
        Self(handle)
    }

    pub(crate) fn handle(&self) -> u32 {
        self.0
    }
}

impl Drop for HandleOwner {
    fn drop(&mut self) {
        // SAFETY: `release` takes a scalar and touches no guest memory; the host ignores unknown
        // handles. Each handle has exactly one `HandleOwner`, so it is released once.
        unsafe { sys::release(self.0) }
    }
}

/// A reference to an object that lives in the cluster: the result of a remote call or a
/// [`put`](crate::put). Get its value with [`get`](crate::get).
///
/// Cloning is cheap (a reference count); the object stays alive while any clone exists here or
/// any copy exists anywhere in the cluster (inside other objects, in task arguments). An
/// `ObjectRef` can sit anywhere inside an argument or a return value, as in Ray.
pub struct ObjectRef<T> {
    owner: Rc<HandleOwner>,
    _value: PhantomData<fn() -> T>,
}

impl<T> ObjectRef<T> {
    /// Takes ownership of a handle the host just gave this instance.
    pub(crate) fn from_handle(handle: u32) -> Self {
        Self::from_owner(Rc::new(HandleOwner::new(handle)))
    }

    fn from_owner(owner: Rc<HandleOwner>) -> Self {
        Self {
            owner,
            _value: PhantomData,
        }
    }

    /// The handle in this instance's table (meaningless in any other instance).
    pub fn handle(&self) -> u32 {
        self.owner.handle()
    }

    /// Shares the owner, keeping the handle alive while the host takes it over.
    pub(crate) fn owner(&self) -> Rc<HandleOwner> {
        Rc::clone(&self.owner)
    }
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        Self::from_owner(self.owner())
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectRef({})", self.handle())
    }
}

thread_local! {
    /// Owners of the refs met while encoding one value; `None` outside [`Outgoing::collect`].
    static OUTGOING: RefCell<Option<Vec<Rc<HandleOwner>>>> = const { RefCell::new(None) };
    /// Handles staged with the value being decoded, each taken at most once; `None` outside
    /// [`Incoming::provide`].
    static INCOMING: RefCell<Option<Vec<Option<u32>>>> = const { RefCell::new(None) };
}

/// The encoding context: collects the refs a value contains.
pub(crate) struct Outgoing;

impl Outgoing {
    /// Runs `encode` with a fresh outgoing list and returns its result with the refs met. The
    /// previous list (an encoding in progress, should a `Serialize` impl encode another value)
    /// is restored afterwards.
    pub(crate) fn collect<R>(encode: impl FnOnce() -> R) -> (R, Vec<Rc<HandleOwner>>) {
        let previous = OUTGOING.replace(Some(Vec::new()));
        let restore = Restore {
            cell: &OUTGOING,
            previous: Some(previous),
        };
        let result = encode();
        let refs = restore.finish().unwrap_or_default();
        (result, refs)
    }
}

/// The decoding context: hands out the handles staged with a value.
pub(crate) struct Incoming;

impl Incoming {
    /// Runs `decode` with `handles` available to `ObjectRef::deserialize`; handles the value did
    /// not claim are released afterwards, so none leaks.
    pub(crate) fn provide<R>(handles: Vec<u32>, decode: impl FnOnce() -> R) -> R {
        let slots = handles.into_iter().map(Some).collect();
        let previous = INCOMING.replace(Some(slots));
        let restore = Restore {
            cell: &INCOMING,
            previous: Some(previous),
        };
        let result = decode();
        for handle in restore.finish().into_iter().flatten().flatten() {
            drop(HandleOwner::new(handle));
        }
        result
    }
}

/// Puts a context's previous state back, also when the closure unwinds.
struct Restore<V: 'static> {
    cell: &'static std::thread::LocalKey<RefCell<Option<V>>>,
    previous: Option<Option<V>>,
}

impl<V: 'static> Restore<V> {
    /// Restores the previous state and returns the current one.
    fn finish(mut self) -> Option<V> {
        let previous = self.previous.take().flatten();
        self.cell.replace(previous)
    }
}

impl<V: 'static> Drop for Restore<V> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            self.cell.set(previous);
        }
    }
}

impl<T> Serialize for ObjectRef<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = OUTGOING.with_borrow_mut(|refs| {
            let refs = refs.as_mut().ok_or_else(|| {
                S::Error::custom(
                    "an ObjectRef can only be serialized by wasmray \
                     (in a task argument, a return value or a put value)",
                )
            })?;
            let index = u32::try_from(refs.len())
                .map_err(|_| S::Error::custom("a value holds more than u32::MAX object refs"))?;
            refs.push(self.owner());
            Ok(index)
        })?;
        serializer.serialize_u32(index)
    }
}

impl<'de, T> Deserialize<'de> for ObjectRef<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = u32::deserialize(deserializer)?;
        let handle = INCOMING.with_borrow_mut(|handles| {
            let handles = handles.as_mut().ok_or_else(|| {
                D::Error::custom(
                    "an ObjectRef can only be deserialized by wasmray \
                     (from a task argument, a return value or a get)",
                )
            })?;
            let count = handles.len();
            let slot = usize::try_from(index)
                .ok()
                .and_then(|index| handles.get_mut(index))
                .ok_or_else(|| {
                    D::Error::custom(format!(
                        "object ref index {index} is out of range: the value came with {count} refs"
                    ))
                })?;
            slot.take().ok_or_else(|| {
                D::Error::custom(format!(
                    "object ref index {index} appears twice in one value"
                ))
            })
        })?;
        Ok(Self::from_handle(handle))
    }
}
