//! actors: the actor semantics the host must provide, one case per line.
//!
//! The first argument picks what runs: `all` (the default) runs the cases below, in this
//! order, and prints:
//!
//! ```text
//! method panic keeps state: 7 -> Panic -> 7
//! constructor panic: ActorDied
//! kill: ActorDied
//! pending call after kill: ActorDied
//! blocked in get, wait and sleep, then killed: 3 of 3 ended at once ["ActorDied", "ActorDied", "ActorDied"]
//! restart after out-of-memory: OutOfMemory then 11
//! named: 6
//! name taken: <ErrorKind the host gives>
//! missing name: <ErrorKind the host gives>
//! wrong class: <ErrorKind the host gives>
//! class defaults: found in its namespace after its handles went, at 2; a second: InvalidTask
//! handle in task: 1
//! handle in actor state: 2
//! max_concurrency=2: flag seen
//! max_concurrency=2 with &mut self: InvalidTask
//! num_returns=2: 6 and value 6
//! per-call num_returns::<2>(): 6 and value 6; without: (6, "value 6")
//! method options: retried to attempt 3, too few retries Panic, none Panic
//! ```
//!
//! A case that gets a value where it expected an error prints `unexpectedly returned <value>`
//! in place of the kind. One case alone: `panic`, `constructor`, `kill`, `oom`, `named`,
//! `handles`, `concurrency`, `returns`, `options`.
//!
//! Not part of `all`: `many-panics` makes 10,000 panicking calls on one actor, then a normal
//! one, and prints `after 10000 panics: 7`, or `panic <i> of 10000: <kind>` when a call fails
//! otherwise. Each trapped call leaves the shadow stack pointer (a wasm global) where the trap
//! happened unless the host restores it, so without that an actor stops working after a few
//! thousand panics. And for a host test that runs two drivers on one node:
//! `detached-create` creates a detached `Keeper` named `keeper` in namespace `tests`, bumps it
//! to 1 and prints `detached created`; `detached-lookup` finds it, bumps it and prints
//! `detached value = 2`.
//!
//! - `panic`: `set(7)`, a `&mut self` method that panics, then `get`: the state survives and
//!   the failed call's exclusive borrow does not block the next call.
//! - `constructor`: a call on an actor whose constructor panics.
//! - `kill`: a call after `wasmray::kill`; then a call queued behind a 2 s sleep when `kill`
//!   comes; then three calls of a `max_concurrency(4)` actor blocked in the host — in `get` and
//!   `wait` on a 3 s task, and in an hour's sleep — which a kill must end at once (the driver
//!   waits 2 s for them).
//! - `oom`: `max_restarts(1)`, `memory_limit(32 MiB)`: `bump` (10 → 11), a call that allocates
//!   past the cap (its error kind is printed), then `bump` again, answered by a restarted actor
//!   built afresh from its constructor argument 10.
//! - `named`: `get_actor` of a named actor, a second creation under the same name
//!   (`try_remote`), a name nobody has, and a name held by another class; then a class whose
//!   `#[wasmray::actor(..)]` defaults name it, namespace it and detach it.
//! - `handles`: a task and another actor (holding the handle in its state) bump one `Keeper`.
//! - `concurrency`: with `max_concurrency(2)`, method A naps in `wasmray::wait` until method B
//!   sets a flag; B can only run while A is blocked. Then the guest-side check that a class
//!   with `&mut self` methods cannot be created with `max_concurrency(2)`.
//! - `returns`: a method with `#[wasmray::method(num_returns = 2)]` gives two refs; a method
//!   returning a tuple gives two when the call asks (`.options().num_returns::<2>()`), else one.
//! - `options`: per-call options, `c.m(x).options().retry_exceptions(true).max_task_retries(n)`,
//!   on a method that panics on its first two attempts: 2 retries reach attempt 3, 1 is too few.

mod classes;

use classes::{Flag, Fragile, Keeper, Other, Registry, Relay, Sleeper, bump_from_task, nap};
use std::fmt::Debug;
use std::time::Duration;
use wasmray::{ObjectRef, TaskError};

/// Memory cap of the `oom` case's actor.
const SMALL_MEMORY: u64 = 32 * 1024 * 1024;

/// The error kind of a result that should have failed.
fn kind<T: Debug>(result: Result<T, TaskError>) -> String {
    match result {
        Ok(value) => format!("unexpectedly returned {value:?}"),
        Err(error) => format!("{:?}", error.kind),
    }
}

/// Gets a ref that should fail and names its error kind.
fn kind_of<T: Debug + wasmray::serde::de::DeserializeOwned>(object: &ObjectRef<T>) -> String {
    kind(wasmray::get(object))
}

fn method_panic() -> Result<(), TaskError> {
    let keeper = Keeper::remote(0);
    let _set = keeper.set(7).remote();
    let before = wasmray::get(&keeper.get().remote())?;
    let failed = kind_of(&keeper.fail("on purpose".to_string()).remote());
    let after = wasmray::get(&keeper.get().remote())?;
    println!("method panic keeps state: {before} -> {failed} -> {after}");
    Ok(())
}

fn constructor_panic() -> Result<(), TaskError> {
    let fragile = Fragile::remote("on purpose".to_string());
    println!("constructor panic: {}", kind_of(&fragile.ping().remote()));
    Ok(())
}

fn kill() -> Result<(), TaskError> {
    let keeper = Keeper::remote(1);
    wasmray::get(&keeper.get().remote())?;
    wasmray::kill(&keeper);
    println!("kill: {}", kind_of(&keeper.get().remote()));

    let keeper = Keeper::remote(1);
    let sleeping = keeper.sleep_ms(2_000).remote();
    let pending = keeper.get().remote();
    wasmray::kill(&keeper);
    println!("pending call after kill: {}", kind_of(&pending));
    // Read the sleeping call's error too, so that it is not reported as unhandled.
    let _ = wasmray::get(&sleeping);

    // Calls blocked in the host end at the kill, not when their sleep or wait would.
    let sleeper = Sleeper::remote();
    let slow = nap::remote(3_000);
    let blocked = [
        sleeper.get_of(slow.clone()).remote(),
        sleeper.wait_on(slow.clone()).remote(),
        sleeper.sleep_ms(3_600_000).remote(),
    ];
    while wasmray::get(&sleeper.started().remote())? < 3 {
        let _ = wasmray::wait(&[nap::remote(5)], 1, None);
    }
    wasmray::kill(&sleeper);
    let (ended, _) = wasmray::wait(&blocked, 3, Some(Duration::from_secs(2)));
    let kinds: Vec<String> = ended.iter().map(kind_of).collect();
    println!(
        "blocked in get, wait and sleep, then killed: {} of 3 ended at once {kinds:?}",
        ended.len()
    );
    let _ = wasmray::get(&slow);
    Ok(())
}

fn method_options() -> Result<(), TaskError> {
    let retried = Keeper::remote(0)
        .flaky(2)
        .options()
        .retry_exceptions(true)
        .max_task_retries(2)
        .remote();
    let too_few = Keeper::remote(0)
        .flaky(2)
        .options()
        .retry_exceptions(true)
        .max_task_retries(1)
        .remote();
    let plain = Keeper::remote(0).flaky(2).remote();
    println!(
        "method options: retried to attempt {}, too few retries {}, none {}",
        wasmray::get(&retried)?,
        kind_of(&too_few),
        kind_of(&plain)
    );
    Ok(())
}

fn out_of_memory() -> Result<(), TaskError> {
    let keeper = Keeper::options()
        .max_restarts(1)
        .memory_limit(SMALL_MEMORY)
        .remote(10);
    wasmray::get(&keeper.bump().remote())?;
    let exploded = kind_of(&keeper.explode().remote());
    let value = wasmray::get(&keeper.bump().remote())?;
    println!("restart after out-of-memory: {exploded} then {value}");
    Ok(())
}

fn named() -> Result<(), TaskError> {
    let _alpha = Keeper::options().name("alpha").remote(5);
    let found = wasmray::get_actor::<Keeper>("alpha")?;
    println!("named: {}", wasmray::get(&found.bump().remote())?);
    println!(
        "name taken: {}",
        kind(Keeper::options().name("alpha").try_remote(0))
    );
    println!(
        "missing name: {}",
        kind(wasmray::get_actor::<Keeper>("nobody"))
    );
    println!(
        "wrong class: {}",
        kind(wasmray::get_actor::<Other>("alpha"))
    );
    // Class defaults: every creation takes the name, in its namespace, detached.
    let registry = Registry::remote();
    wasmray::get(&registry.add().remote())?;
    drop(registry);
    let found = wasmray::get_actor_in::<Registry>("registry", "shared")?;
    let second = kind(Registry::options().try_remote());
    println!(
        "class defaults: found in its namespace after its handles went, at {}; a second: {second}",
        wasmray::get(&found.add().remote())?
    );
    wasmray::kill(&found);
    Ok(())
}

fn handles() -> Result<(), TaskError> {
    let keeper = Keeper::remote(0);
    println!(
        "handle in task: {}",
        wasmray::get(&bump_from_task::remote(&keeper))?
    );
    let relay = Relay::remote(&keeper);
    println!(
        "handle in actor state: {}",
        wasmray::get(&relay.forward().remote())?
    );
    Ok(())
}

fn concurrency() -> Result<(), TaskError> {
    let flag = Flag::options().max_concurrency(2).remote();
    let waiting = flag.wait_for_flag().remote();
    let _set = flag.set_flag().remote();
    println!("max_concurrency=2: {}", wasmray::get(&waiting)?);
    println!(
        "max_concurrency=2 with &mut self: {}",
        kind(Keeper::options().max_concurrency(2).try_remote(0))
    );
    Ok(())
}

fn returns() -> Result<(), TaskError> {
    let keeper = Keeper::remote(6);
    let (value, description) = keeper.split().remote();
    println!(
        "num_returns=2: {} and {}",
        wasmray::get(&value)?,
        wasmray::get(&description)?
    );
    let (value, description) = keeper.pair().options().num_returns::<2>().remote();
    let whole = keeper.pair().remote();
    println!(
        "per-call num_returns::<2>(): {} and {}; without: {:?}",
        wasmray::get(&value)?,
        wasmray::get(&description)?,
        wasmray::get(&whole)?
    );
    Ok(())
}

/// Panicking calls the `many-panics` case makes on one actor.
const MANY_PANICS: u32 = 10_000;

fn many_panics() -> Result<(), TaskError> {
    let keeper = Keeper::remote(7);
    for i in 0..MANY_PANICS {
        match wasmray::get(&keeper.fail(String::new()).remote()) {
            Err(error) if error.kind == wasmray::ErrorKind::Panic => {}
            other => {
                println!("panic {i} of {MANY_PANICS}: {}", kind(other));
                return Ok(());
            }
        }
    }
    println!(
        "after {MANY_PANICS} panics: {}",
        wasmray::get(&keeper.get().remote())?
    );
    Ok(())
}

fn detached_create() -> Result<(), TaskError> {
    let keeper = Keeper::options()
        .name("keeper")
        .namespace("tests")
        .detached()
        .remote(0);
    wasmray::get(&keeper.bump().remote())?;
    println!("detached created");
    Ok(())
}

fn detached_lookup() -> Result<(), TaskError> {
    let keeper = wasmray::get_actor_in::<Keeper>("keeper", "tests")?;
    println!(
        "detached value = {}",
        wasmray::get(&keeper.bump().remote())?
    );
    Ok(())
}

/// One case of the driver.
type Case = fn() -> Result<(), TaskError>;

/// The cases `all` runs, in order, by name.
const CASES: &[(&str, Case)] = &[
    ("panic", method_panic),
    ("constructor", constructor_panic),
    ("kill", kill),
    ("oom", out_of_memory),
    ("named", named),
    ("handles", handles),
    ("concurrency", concurrency),
    ("returns", returns),
    ("options", method_options),
];

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".to_string());
    match which.as_str() {
        "all" => CASES.iter().try_for_each(|(_, case)| case()),
        "many-panics" => many_panics(),
        "detached-create" => detached_create(),
        "detached-lookup" => detached_lookup(),
        name => match CASES.iter().find(|(case, _)| *case == name) {
            Some((_, case)) => case(),
            None => {
                let names: Vec<&str> = CASES.iter().map(|(case, _)| *case).collect();
                panic!(
                    "unknown case `{name}`; expected all, {}, many-panics, detached-create or \
                     detached-lookup",
                    names.join(", ")
                )
            }
        },
    }
}
