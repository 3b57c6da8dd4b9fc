//! Actor handles and the calls made through them: creating an actor, calling its methods,
//! looking one up by name, killing it.
//!
//! An [`ActorHandle<C>`] is an object ref under another type: the host hands out the actor's
//! handle as an object-ref-like handle whose lifetime keeps the actor alive, so the handle is
//! released, cloned and (de)serialized exactly as an [`ObjectRef`] is (it wraps one). It derefs
//! to `C::Methods`, the struct `#[wasmray::actor]` generates with one stub per method, so
//! `counter.inc().remote()` works with no trait in scope. A stub returns a [`MethodCall`], which
//! `remote()` submits with the `call_actor` import.
//!
//! This file does not run actors: the constructor and method exports and the state they work on
//! live in [`crate::actor_state`]. It does not choose export names either: the macro does.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use wasmray_abi::{
    ActorCall, ActorCreation, ActorLookup, ErrorKind, GetStatus, MethodOptions, TaskError,
};

use crate::actor_options::ActorOptions;
use crate::args::Arg;
use crate::codec::{self, Staged};
use crate::object_ref::ObjectRef;
use crate::sys;

/// An actor class: a struct and `impl` block marked `#[wasmray::actor]`. Implemented by the
/// macro; the hidden items are the generated code's business and change without notice.
pub trait ActorClass: Sized + 'static {
    /// The class name, as in the exports `wasmray_actor_new:<NAME>` and
    /// `wasmray_actor_call:<NAME>::<method>`: the struct's identifier.
    const NAME: &'static str;

    /// The generated struct with one stub per method; an [`ActorHandle<Self>`] derefs to it.
    type Methods;

    /// Methods that take `&mut self`; a class with any cannot run with `max_concurrency > 1`.
    #[doc(hidden)]
    const MUT_METHODS: &'static [&'static str];

    /// Wraps a raw actor handle in the method stubs.
    #[doc(hidden)]
    fn __methods(actor: RawActor) -> Self::Methods;

    /// The raw handle inside the method stubs.
    #[doc(hidden)]
    fn __actor(methods: &Self::Methods) -> &RawActor;

    /// The instance's storage for this class's state.
    #[doc(hidden)]
    fn __state() -> &'static std::thread::LocalKey<crate::actor_state::ActorCell<Self>>;
}

/// The untyped handle of an actor: an object ref, released when the last clone is dropped.
#[doc(hidden)]
#[derive(Clone)]
pub struct RawActor(ObjectRef<ActorObject>);

/// The type of the object behind an actor handle; never read.
enum ActorObject {}

impl RawActor {
    fn from_handle(handle: u32) -> Self {
        Self(ObjectRef::from_handle(handle))
    }

    /// The handle in this instance's table.
    pub fn handle(&self) -> u32 {
        self.0.handle()
    }
}

impl fmt::Debug for RawActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawActor({})", self.handle())
    }
}

/// A handle to a live actor of class `C` (Ray's actor handle), returned at once by `C::remote`.
///
/// Call methods through it: `counter.inc().remote()` returns an `ObjectRef` of the result. The
/// handle is a value: clone it (cheap), pass it to tasks and other actors, store it in actor
/// state or inside other values; every copy reaches the same actor. A non-detached actor is
/// destroyed once no handle to it remains anywhere.
pub struct ActorHandle<C: ActorClass> {
    methods: C::Methods,
}

impl<C: ActorClass> ActorHandle<C> {
    fn from_raw(actor: RawActor) -> Self {
        Self {
            methods: C::__methods(actor),
        }
    }

    fn raw(&self) -> &RawActor {
        C::__actor(&self.methods)
    }

    /// The handle in this instance's table (meaningless in any other instance).
    pub fn handle(&self) -> u32 {
        self.raw().handle()
    }
}

impl<C: ActorClass> Deref for ActorHandle<C> {
    type Target = C::Methods;

    fn deref(&self) -> &C::Methods {
        &self.methods
    }
}

impl<C: ActorClass> Clone for ActorHandle<C> {
    fn clone(&self) -> Self {
        Self::from_raw(self.raw().clone())
    }
}

impl<C: ActorClass> fmt::Debug for ActorHandle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorHandle<{}>({})", C::NAME, self.handle())
    }
}

impl<C: ActorClass> Serialize for ActorHandle<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw().0.serialize(serializer)
    }
}

impl<'de, C: ActorClass> Deserialize<'de> for ActorHandle<C> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ObjectRef::deserialize(deserializer).map(|object| Self::from_raw(RawActor(object)))
    }
}

/// A method call being prepared, returned by the stubs of `C::Methods`; `.remote()` submits it.
/// `Out` is what `remote` returns: an `ObjectRef<R>`, or a tuple of refs with `num_returns`.
#[must_use = "an actor method call does nothing until `.remote()` is called"]
pub struct MethodCall<Out> {
    actor: RawActor,
    method: &'static str,
    args: Vec<Arg>,
    num_returns: u32,
    options: MethodOptions,
    wrap: fn(ReturnHandles) -> Out,
}

impl<Out> MethodCall<Out> {
    /// Used by the generated stubs: a call of `method` (the bare method name) with `args`,
    /// whose `num_returns` result handles `wrap` turns into `Out`.
    #[doc(hidden)]
    pub fn new(
        actor: &RawActor,
        method: &'static str,
        args: Vec<Arg>,
        num_returns: u32,
        wrap: fn(ReturnHandles) -> Out,
    ) -> Self {
        Self {
            actor: actor.clone(),
            method,
            args,
            num_returns,
            options: MethodOptions::default(),
            wrap,
        }
    }

    /// Options for this call only (Ray's `c.m.options(..)`), set with the methods that follow;
    /// it reads as Ray's: `counter.inc().options().max_task_retries(2).remote()`.
    pub fn options(self) -> Self {
        self
    }

    /// How often this call is retried when the actor's instance is lost under it (Ray's
    /// `max_task_retries`); default: the actor's own `max_task_retries`.
    pub fn max_task_retries(mut self, retries: u32) -> Self {
        self.options.max_task_retries = Some(retries);
        self
    }

    /// Whether this call is also retried (up to `max_task_retries`) when the method panics or
    /// traps (Ray's `retry_exceptions`); the actor keeps its state between attempts.
    pub fn retry_exceptions(mut self, retry: bool) -> Self {
        self.options.retry_exceptions = Some(retry);
        self
    }

    /// Submits the call and returns at once with ref(s) to its result(s). Calls from one caller
    /// run one at a time, in the order they were submitted (unless the actor was created with
    /// `max_concurrency > 1`). If the actor is dead, `get` on the result gives `ActorDied`.
    pub fn remote(self) -> Out {
        let call = ActorCall {
            actor: self.actor.handle(),
            method: self.method,
            args: self.args.iter().map(Arg::arg_out).collect(),
            num_returns: self.num_returns,
            options: self.options.clone(),
        };
        let spec = codec::encode_record(&call);
        let spec_len = codec::abi_len(spec.len(), "an actor call");
        let Ok(count) = usize::try_from(self.num_returns) else {
            panic!(
                "wasmray: num_returns {} does not fit this guest",
                self.num_returns
            );
        };
        let mut returns = vec![0u32; count];
        // SAFETY: `spec` is a live buffer of `spec_len` bytes that the host only reads; `returns`
        // has room for exactly `num_returns` u32s, the handles the host writes there.
        unsafe { sys::call_actor(spec.as_ptr(), spec_len, returns.as_mut_ptr().cast::<u8>()) };
        // The actor handle and the refs inside `args` are dropped only now, after the host took
        // them.
        drop(self.args);
        drop(self.actor);
        (self.wrap)(ReturnHandles(returns.into_iter()))
    }
}

impl<Out> fmt::Debug for MethodCall<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodCall")
            .field("actor", &self.actor)
            .field("method", &self.method)
            .field("args", &self.args.len())
            .field("num_returns", &self.num_returns)
            .finish()
    }
}

/// The result handles of a method call, handed out in order to the refs of `Out`.
#[doc(hidden)]
pub struct ReturnHandles(std::vec::IntoIter<u32>);

impl ReturnHandles {
    /// The next result as a typed ref that owns its handle.
    pub fn take<T>(&mut self) -> ObjectRef<T> {
        match self.0.next() {
            Some(handle) => ObjectRef::from_handle(handle),
            None => panic!("wasmray: a method stub asked for more results than num_returns"),
        }
    }
}

impl<T> MethodCall<ObjectRef<T>> {
    /// Returns the elements of the method's tuple result as `N` objects (Ray's
    /// `c.m.options(num_returns=N)`): `pair.both().options().num_returns::<2>().remote()` gives
    /// `(ObjectRef<A>, ObjectRef<B>)` for a method returning `(A, B)`. A method declared with
    /// `#[wasmray::method(num_returns = n)]` always returns `n` objects.
    pub fn num_returns<const N: usize>(self) -> MethodCall<<T as SplitReturns<N>>::Refs>
    where
        T: SplitReturns<N>,
    {
        MethodCall {
            actor: self.actor,
            method: self.method,
            args: self.args,
            num_returns: N as u32,
            options: self.options,
            wrap: <T as SplitReturns<N>>::wrap,
        }
    }
}

/// A tuple result a call may ask for as `N` separate objects; implemented for tuples of 2 to
/// 8 elements.
pub trait SplitReturns<const N: usize> {
    /// The refs of the elements: `(ObjectRef<A>, ObjectRef<B>, ..)`.
    type Refs;
    #[doc(hidden)]
    fn wrap(handles: ReturnHandles) -> Self::Refs;
}

macro_rules! split_returns {
    ($n:literal: $($t:ident),+) => {
        impl<$($t),+> SplitReturns<$n> for ($($t,)+) {
            type Refs = ($(ObjectRef<$t>,)+);
            fn wrap(mut handles: ReturnHandles) -> Self::Refs {
                ($(handles.take::<$t>(),)+)
            }
        }
    };
}

split_returns!(2: A, B);
split_returns!(3: A, B, C);
split_returns!(4: A, B, C, D);
split_returns!(5: A, B, C, D, E);
split_returns!(6: A, B, C, D, E, F);
split_returns!(7: A, B, C, D, E, F, G);
split_returns!(8: A, B, C, D, E, F, G, H);

/// Creates an actor of class `C`: used by the generated `C::remote` and `try_remote`.
///
/// # Errors
/// The host's refusal (a name already taken, an unknown class, ...) or, checked here,
/// `max_concurrency > 1` on a class with `&mut self` methods (`InvalidTask`).
#[doc(hidden)]
pub fn create_actor<C: ActorClass>(
    args: Vec<Arg>,
    options: &ActorOptions,
) -> Result<ActorHandle<C>, TaskError> {
    let record = options.record();
    if let Some(concurrency) = record.max_concurrency.filter(|n| *n > 1)
        && !C::MUT_METHODS.is_empty()
    {
        return Err(TaskError {
            kind: ErrorKind::InvalidTask,
            function: C::NAME.to_string(),
            message: format!(
                "max_concurrency = {concurrency} needs every method of actor class `{}` to take \
                 `&self` (keep mutable state in `Cell`/`RefCell`), but these take `&mut self`: {}",
                C::NAME,
                C::MUT_METHODS.join(", ")
            ),
            backtrace: None,
            task_chain: Vec::new(),
            cause: None,
        });
    }
    let creation = ActorCreation {
        class: C::NAME,
        args: args.iter().map(Arg::arg_out).collect(),
        options: record.clone(),
    };
    let spec = codec::encode_record(&creation);
    let spec_len = codec::abi_len(spec.len(), "an actor creation");
    let mut info = codec::InfoBuf::new();
    // SAFETY: `spec` is a live buffer of `spec_len` bytes that the host only reads; `info` is a
    // live buffer of exactly `StagedInfo::SIZE` bytes, the size the host writes at `info_ptr`.
    let status = unsafe { sys::create_actor(spec.as_ptr(), spec_len, info.as_mut_ptr()) };
    // The refs inside `args` are dropped only now, after the host took them.
    drop(args);
    actor_answer(status, &info, "create_actor")
}

/// Creates an actor as [`create_actor`] does and panics with the host's message on refusal.
#[doc(hidden)]
pub fn create_actor_or_panic<C: ActorClass>(
    args: Vec<Arg>,
    options: &ActorOptions,
) -> ActorHandle<C> {
    match create_actor(args, options) {
        Ok(handle) => handle,
        Err(error) => panic!("wasmray: creating actor `{}` failed: {error}", C::NAME),
    }
}

/// Reads what `create_actor` or `get_actor` staged: one actor handle (0) or a `TaskError` (1).
fn actor_answer<C: ActorClass>(
    status: i32,
    info: &codec::InfoBuf,
    import: &str,
) -> Result<ActorHandle<C>, TaskError> {
    match GetStatus::from_i32(status) {
        Some(GetStatus::Value) => {
            let staged = codec::read_staged(info.info());
            Ok(ActorHandle::from_raw(single_handle(staged, import)))
        }
        Some(GetStatus::Error) => Err(codec::read_task_error(codec::read_staged(info.info()))),
        _ => panic!("wasmray: the host answered {import} with unknown status {status}"),
    }
}

/// The one handle a successful `create_actor`/`get_actor` stages.
fn single_handle(staged: Staged, import: &str) -> RawActor {
    if let [handle] = staged.handles[..] {
        return RawActor::from_handle(handle);
    }
    let count = staged.handles.len();
    // Releases whatever was staged before giving up.
    drop(staged.into_plain_bytes());
    panic!("wasmray: the host answered {import} with {count} handles instead of 1");
}

/// The live actor named `name` in this job's namespace (Ray's `ray.get_actor(name)`).
///
/// # Errors
/// The host's `TaskError` when no live actor has that name, or it is not of class `C`.
pub fn get_actor<C: ActorClass>(name: &str) -> Result<ActorHandle<C>, TaskError> {
    lookup(name, None)
}

/// The live actor named `name` in `namespace` (Ray's `ray.get_actor(name, namespace=..)`).
///
/// # Errors
/// As [`get_actor`].
pub fn get_actor_in<C: ActorClass>(
    name: &str,
    namespace: &str,
) -> Result<ActorHandle<C>, TaskError> {
    lookup(name, Some(namespace))
}

fn lookup<C: ActorClass>(name: &str, namespace: Option<&str>) -> Result<ActorHandle<C>, TaskError> {
    let record = ActorLookup {
        name,
        namespace,
        class: C::NAME,
    };
    let spec = codec::encode_record(&record);
    let spec_len = codec::abi_len(spec.len(), "an actor lookup");
    let mut info = codec::InfoBuf::new();
    // SAFETY: `spec` is a live buffer of `spec_len` bytes that the host only reads; `info` is a
    // live buffer of exactly `StagedInfo::SIZE` bytes, the size the host writes at `info_ptr`.
    let status = unsafe { sys::get_actor(spec.as_ptr(), spec_len, info.as_mut_ptr()) };
    actor_answer(status, &info, "get_actor")
}

/// Kills the actor at once, without restarting it (Ray's `ray.kill(actor)`, whose default is
/// `no_restart=True`): calls still pending and calls made later fail with `ActorDied`. Other
/// handles to the actor stay valid values but reach a dead actor.
pub fn kill<C: ActorClass>(actor: &ActorHandle<C>) {
    // SAFETY: `kill_actor` takes two scalars and touches no guest memory; the host checks the
    // handle against its table.
    unsafe { sys::kill_actor(actor.handle(), 1) }
}

/// Kills the actor's instance and lets it restart if it has restarts left (Ray's
/// `ray.kill(actor, no_restart=False)`): its constructor runs again in a fresh instance.
pub fn kill_and_restart<C: ActorClass>(actor: &ActorHandle<C>) {
    // SAFETY: as in `kill`.
    unsafe { sys::kill_actor(actor.handle(), 0) }
}
