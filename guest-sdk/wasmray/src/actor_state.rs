//! Running an actor inside its instance: the per-class state cell, the constructor and method
//! entry points the generated exports call, and the bookkeeping that hands out `&C` / `&mut C`.
//!
//! The state of class `C` lives in a thread-local [`ActorCell<C>`] (wasm32-wasip1 has one
//! thread; the macro declares one cell per class). Every entry (a constructor or method export
//! call) pushes a record on the `ACTIVE` stack while it runs: shared for `&self`, exclusive for
//! `&mut self` and the constructor. An entry that conflicts with an active one of the same class
//! panics, which fails that call only.
//!
//! Entries can nest: with `max_concurrency > 1`, while a method is blocked in `get`/`wait` the
//! host may run another method inside that import call, on the same stack (LIFO). And a call can
//! trap at any point (a panic aborts), after which none of its frames run again, so records
//! cannot rely on being popped. Two rules keep the stack true anyway:
//!
//! - [`blocking`] wraps every import that may run nested entries. It notes the stack's length in
//!   `BLOCKED` before the call and truncates `ACTIVE` back to it afterwards: whatever an entry
//!   nested in that call left behind belongs to a call that returned or trapped.
//! - An entry first truncates `ACTIVE` to the length noted by the innermost `blocking` call in
//!   progress, or to zero when there is none (a top-level entry): records above that belong to
//!   entries that ended, possibly by trapping.
//!
//! Both stacks are `Cell<Vec<_>>`s, moved out and back in around each short update, so a trap
//! can never leave a borrow flag stuck. The one assumption: the host never traps a call from
//! inside `get`/`wait` and keeps using the instance afterwards (that would leave a stale
//! `BLOCKED` record; the host traps inside an import only for a malformed request, which the
//! SDK never makes).
//!
//! This file does not decode arguments or choose export names (the macro's code does) and does
//! not talk to the host except through `task_return`.

use std::cell::{Cell, UnsafeCell};

use crate::actor::ActorClass;
use crate::codec::Encoded;
use crate::task;

/// The state of one actor class in this instance: empty until the constructor ran.
#[doc(hidden)]
pub struct ActorCell<T> {
    value: UnsafeCell<Option<T>>,
}

impl<T> ActorCell<T> {
    /// An empty cell, for the generated `thread_local!`.
    pub const fn new() -> Self {
        Self {
            value: UnsafeCell::new(None),
        }
    }
}

impl<T> Default for ActorCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// How an entry uses its class's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Shared,
    Exclusive,
}

/// An entry in progress.
#[derive(Debug, Clone, Copy)]
struct Active {
    class: &'static str,
    /// The method's name, or `CONSTRUCTOR`.
    method: &'static str,
    access: Access,
}

/// What `Active::method` says for a constructor.
const CONSTRUCTOR: &str = "<constructor>";

thread_local! {
    /// The entries in progress on this instance's stack, outermost first.
    static ACTIVE: Cell<Vec<Active>> = const { Cell::new(Vec::new()) };
    /// For each `get`/`wait` call in progress, outermost first: the length of `ACTIVE` when it
    /// started.
    static BLOCKED: Cell<Vec<usize>> = const { Cell::new(Vec::new()) };
}

/// Runs `change` on the vector in `cell`, moved out and put back (no borrow flag to get stuck).
fn update<T: 'static, R>(
    cell: &'static std::thread::LocalKey<Cell<Vec<T>>>,
    change: impl FnOnce(&mut Vec<T>) -> R,
) -> R {
    cell.with(|cell| {
        let mut items = cell.take();
        let result = change(&mut items);
        cell.set(items);
        result
    })
}

/// Runs an import call during which the host may run nested actor entries (`get`, `wait`), and
/// forgets afterwards whatever those entries left on the stack.
pub(crate) fn blocking<R>(call: impl FnOnce() -> R) -> R {
    let active_len = update(&ACTIVE, |active| active.len());
    let blocked_len = update(&BLOCKED, |blocked| {
        let len = blocked.len();
        blocked.push(active_len);
        len
    });
    let result = call();
    update(&BLOCKED, |blocked| blocked.truncate(blocked_len));
    update(&ACTIVE, |active| active.truncate(active_len));
    result
}

/// Records an entry of `class` and returns its index for [`leave`].
///
/// # Panics
/// When the access conflicts with an entry of the same class in progress.
fn enter(class: &'static str, method: &'static str, access: Access) -> usize {
    let base = update(&BLOCKED, |blocked| blocked.last().copied().unwrap_or(0));
    let (index, conflict) = update(&ACTIVE, |active| {
        active.truncate(base);
        let conflict = active
            .iter()
            .rev()
            .find(|other| {
                other.class == class
                    && (access == Access::Exclusive || other.access == Access::Exclusive)
            })
            .copied();
        if conflict.is_none() {
            active.push(Active {
                class,
                method,
                access,
            });
        }
        (active.len().saturating_sub(1), conflict)
    });
    if let Some(other) = conflict {
        conflict_panic(class, method, access, other);
    }
    index
}

fn conflict_panic(class: &str, method: &str, access: Access, other: Active) -> ! {
    if other.method == CONSTRUCTOR {
        panic!(
            "wasmray: actor `{class}`: method `{method}` cannot run before the constructor \
             finished"
        );
    }
    if method == CONSTRUCTOR {
        panic!(
            "wasmray: actor `{class}`: the constructor cannot run while method `{}` is in \
             progress",
            other.method
        );
    }
    let (needs, holder) = match access {
        Access::Exclusive => ("`&mut self`", format!("method `{}` is", other.method)),
        Access::Shared => (
            "`&self`",
            format!("`&mut self` method `{}` is", other.method),
        ),
    };
    panic!(
        "wasmray: actor `{class}`: method `{method}` takes {needs} but {holder} still in progress \
         on this instance (a call blocked in get/wait let another one run); with \
         max_concurrency > 1 every method must take `&self`"
    );
}

/// Ends the entry at `index` (and anything a trapped nested entry left above it).
fn leave(index: usize) {
    update(&ACTIVE, |active| active.truncate(index));
}

/// Runs the export `wasmray_actor_new:<C>`: `body` reads the arguments and calls the user's
/// constructor; the new state replaces any previous one and the call reports no values.
pub fn run_constructor<C: ActorClass>(body: impl FnOnce() -> C) {
    task::install_panic_hook();
    let entry = enter(C::NAME, CONSTRUCTOR, Access::Exclusive);
    let state = body();
    C::__state().with(|cell| {
        // SAFETY: `enter` granted exclusive access: no other entry of `C` is recorded in
        // `ACTIVE`. Every reference into a cell lives only inside the body of an entry whose
        // record stays in `ACTIVE` while its frames are live (records are removed when the body
        // returned, or by truncation, which only drops records of entries that returned or
        // trapped; see the module doc). So no `&C` or `&mut C` exists, and this write (which
        // drops the old state) aliases nothing.
        unsafe { *cell.value.get() = Some(state) };
    });
    task::report_results(Vec::new());
    leave(entry);
}

/// Runs the export `wasmray_actor_call:<C>::<method>` of a `&self` method: `body` reads the
/// arguments, calls the method and encodes its results.
pub fn run_method_ref<C: ActorClass>(method: &'static str, body: impl FnOnce(&C) -> Vec<Encoded>) {
    task::install_panic_hook();
    let entry = enter(C::NAME, method, Access::Shared);
    let results = C::__state().with(|cell| {
        // SAFETY: `enter` granted shared access: no exclusive entry of `C` is recorded in
        // `ACTIVE`, and (as argued in `run_constructor`) only recorded entries hold references
        // into the cell, so no `&mut C` exists while this `&C` does; it does not outlive `body`.
        let state = unsafe { &*cell.value.get() };
        match state {
            Some(state) => body(state),
            None => not_constructed(C::NAME, method),
        }
    });
    task::report_results(results);
    leave(entry);
}

/// Runs the export `wasmray_actor_call:<C>::<method>` of a `&mut self` method.
pub fn run_method_mut<C: ActorClass>(
    method: &'static str,
    body: impl FnOnce(&mut C) -> Vec<Encoded>,
) {
    task::install_panic_hook();
    let entry = enter(C::NAME, method, Access::Exclusive);
    let results = C::__state().with(|cell| {
        // SAFETY: `enter` granted exclusive access: no other entry of `C` is recorded in
        // `ACTIVE`, and (as argued in `run_constructor`) only recorded entries hold references
        // into the cell, so this `&mut C` is the only reference; it does not outlive `body`.
        let state = unsafe { &mut *cell.value.get() };
        match state {
            Some(state) => body(state),
            None => not_constructed(C::NAME, method),
        }
    });
    task::report_results(results);
    leave(entry);
}

fn not_constructed(class: &str, method: &str) -> ! {
    panic!(
        "wasmray: actor `{class}`: method `{method}` was called before the constructor ran in \
         this instance"
    )
}
