//! actor-pool: Ray's `ActorPool` pattern, a fixed pool of actors fed with `wait`.
//!
//! 4 `Squarer` actors share 1,000 work items (the numbers 0..1000). Each idle actor gets an
//! item; the driver `wait`s for any one result, adds it to the sum and hands that actor the
//! next item, until every item is done. Each result is `item²`, so the sum is deterministic:
//! `0² + 1² + … + 999² = 999·1000·1999 / 6 = 332833500`. It prints exactly these lines:
//!
//! ```text
//! processed 1000 items on 4 actors, sum = 332833500
//! every actor took part
//! 1000 items took <seconds, {:.3}>s
//! ```
//!
//! The second line holds because all 4 actors get a first item before any result is awaited.

use std::time::Instant;
use wasmray::{ActorHandle, ObjectRef, TaskError};

/// Actors in the pool.
const ACTORS: usize = 4;
/// Work items.
const ITEMS: u64 = 1_000;

/// A pool member; remembers how many items it processed.
#[wasmray::actor]
struct Squarer {
    processed: u64,
}

#[wasmray::actor]
impl Squarer {
    fn new() -> Self {
        Squarer { processed: 0 }
    }

    /// Squares one item.
    fn process(&mut self, item: u64) -> u64 {
        self.processed += 1;
        item * item
    }

    fn processed(&self) -> u64 {
        self.processed
    }
}

/// The pool: each actor with the result it is working on, if any.
struct Pool {
    actors: Vec<ActorHandle<Squarer>>,
    in_flight: Vec<(ObjectRef<u64>, usize)>,
}

impl Pool {
    fn new(size: usize) -> Self {
        Pool {
            actors: (0..size).map(|_| Squarer::remote()).collect(),
            in_flight: Vec::new(),
        }
    }

    /// Gives `item` to actor `index`.
    fn submit(&mut self, index: usize, item: u64) {
        let result = self.actors[index].process(item).remote();
        self.in_flight.push((result, index));
    }

    /// Waits for any one result; returns it with the actor that is idle again.
    fn next_unordered(&mut self) -> Result<(u64, usize), TaskError> {
        let refs: Vec<ObjectRef<u64>> = self.in_flight.iter().map(|(r, _)| r.clone()).collect();
        let (ready, _) = wasmray::wait(&refs, 1, None);
        let Some(done) = ready.first() else {
            panic!("wait without timeout returned nothing ready");
        };
        let Some(position) = self
            .in_flight
            .iter()
            .position(|(r, _)| r.handle() == done.handle())
        else {
            panic!("wait returned a ref that was not in flight");
        };
        let (result, index) = self.in_flight.swap_remove(position);
        Ok((wasmray::get(&result)?, index))
    }
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let start = Instant::now();
    let mut pool = Pool::new(ACTORS);
    let mut items = 0..ITEMS;
    for index in 0..ACTORS {
        if let Some(item) = items.next() {
            pool.submit(index, item);
        }
    }
    let mut sum = 0u64;
    let mut done = 0u64;
    while !pool.in_flight.is_empty() {
        let (value, index) = pool.next_unordered()?;
        sum += value;
        done += 1;
        if let Some(item) = items.next() {
            pool.submit(index, item);
        }
    }
    let took = start.elapsed().as_secs_f64();
    println!("processed {done} items on {ACTORS} actors, sum = {sum}");
    let counts: Vec<_> = pool.actors.iter().map(|a| a.processed().remote()).collect();
    let counts = wasmray::get_all(&counts)?;
    if counts.iter().sum::<u64>() != ITEMS || counts.contains(&0) {
        panic!("items per actor do not add up: {counts:?}");
    }
    println!("every actor took part");
    println!("{ITEMS} items took {took:.3}s");
    Ok(())
}
