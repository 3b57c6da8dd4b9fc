//! actor-scale: many live actors at once.
//!
//! Takes N from the first argument (default 10000). Creates N actors of a tiny class whose
//! constructor stores its index, keeps every handle alive, calls `index` once on each and gets
//! all answers. Prints exactly these lines (timings vary):
//!
//! ```text
//! created <N> actors in <seconds, {:.3}>s
//! all <N> answered, sum = <N·(N−1)/2>
//! answered in <seconds, {:.3}>s
//! ```
//!
//! For N = 10000 the sum is 49995000. "Created" means submitted: creation returns at once and
//! the constructors run later, so the second timing includes them.

use std::time::Instant;
use wasmray::TaskError;

/// The smallest useful actor: it remembers its index.
#[wasmray::actor]
struct Tiny {
    index: u64,
}

#[wasmray::actor]
impl Tiny {
    fn new(index: u64) -> Self {
        Tiny { index }
    }

    fn index(&self) -> u64 {
        self.index
    }
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let count: u64 = match std::env::args().nth(1) {
        None => 10_000,
        Some(arg) => match arg.parse() {
            Ok(count) => count,
            Err(error) => panic!("the actor count `{arg}` is not a number: {error}"),
        },
    };
    let start = Instant::now();
    let actors: Vec<_> = (0..count).map(Tiny::remote).collect();
    println!(
        "created {count} actors in {:.3}s",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let answers: Vec<_> = actors.iter().map(|actor| actor.index().remote()).collect();
    let sum: u64 = wasmray::get_all(&answers)?.iter().sum();
    println!("all {count} answered, sum = {sum}");
    println!("answered in {:.3}s", start.elapsed().as_secs_f64());
    Ok(())
}
