//! message-actor: the Ray docs' `MessageActor`, filled by worker tasks through a passed handle
//! while the driver polls it.
//!
//! 3 worker tasks each get a copy of the actor's handle and push `N = 100` messages
//! (`worker {w} message {i}`), pausing 1 ms after every 10. Meanwhile the driver calls
//! `get_and_clear_messages` every 5 ms until it has received all 300 (it gives up after 60 s).
//! Then it checks that every message arrived exactly once and that each worker's messages came
//! in the order the worker sent them: the actor runs the calls of each caller in submission
//! order. It prints exactly these lines (the second one's count varies between runs, so it is
//! not part of the checked output):
//!
//! ```text
//! received 300 messages, each exactly once, in order per worker
//! polled <n> times
//! receiving took <seconds, {:.3}>s
//! ```

use std::time::{Duration, Instant};
use wasmray::{ActorHandle, TaskError};

/// Worker tasks.
const WORKERS: u32 = 3;
/// Messages per worker.
const MESSAGES: u32 = 100;
/// Pause between the driver's polls.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// When the driver stops waiting for missing messages.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Ray's `MessageActor`: collects messages until someone takes them.
#[wasmray::actor]
struct MessageActor {
    messages: Vec<String>,
}

#[wasmray::actor]
impl MessageActor {
    fn new() -> Self {
        MessageActor {
            messages: Vec::new(),
        }
    }

    fn add_message(&mut self, message: String) {
        self.messages.push(message);
    }

    /// Returns the messages received since the last call and forgets them.
    fn get_and_clear_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }
}

/// Pushes `count` messages from worker `worker`; returns how many it sent once the actor has
/// taken the last one.
#[wasmray::remote]
fn worker(actor: ActorHandle<MessageActor>, worker: u32, count: u32) -> u32 {
    let mut last = None;
    for i in 0..count {
        last = Some(
            actor
                .add_message(format!("worker {worker} message {i}"))
                .remote(),
        );
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if let Some(last) = last
        && let Err(error) = wasmray::get(&last)
    {
        panic!("worker {worker}: add_message failed: {error}");
    }
    count
}

/// Checks that `messages` holds each worker's messages exactly once and in order.
fn check(messages: &[String]) -> Result<(), String> {
    let mut next = vec![0u32; WORKERS as usize];
    for message in messages {
        let parsed = message
            .strip_prefix("worker ")
            .and_then(|rest| rest.split_once(" message "))
            .and_then(|(w, i)| Some((w.parse::<usize>().ok()?, i.parse::<u32>().ok()?)));
        let Some((w, i)) = parsed else {
            return Err(format!("unexpected message `{message}`"));
        };
        let Some(expected) = next.get_mut(w) else {
            return Err(format!("message from unknown worker: `{message}`"));
        };
        if i != *expected {
            return Err(format!(
                "worker {w}: expected message {expected}, received `{message}` (lost, repeated \
                 or out of order)"
            ));
        }
        *expected += 1;
    }
    match next.iter().position(|n| *n != MESSAGES) {
        Some(w) => Err(format!("worker {w}: received {} of {MESSAGES}", next[w])),
        None => Ok(()),
    }
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let start = Instant::now();
    let actor = MessageActor::remote();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| worker::remote(&actor, w, MESSAGES))
        .collect();

    let total = (WORKERS * MESSAGES) as usize;
    let mut received = Vec::with_capacity(total);
    let mut polls = 0u32;
    while received.len() < total {
        if start.elapsed() > GIVE_UP_AFTER {
            panic!(
                "only {} of {total} messages arrived within {GIVE_UP_AFTER:?}",
                received.len()
            );
        }
        received.extend(wasmray::get(&actor.get_and_clear_messages().remote())?);
        polls += 1;
        if received.len() < total {
            std::thread::sleep(POLL_EVERY);
        }
    }
    let took = start.elapsed().as_secs_f64();
    wasmray::get_all(&workers)?;
    if let Err(problem) = check(&received) {
        panic!("{problem}");
    }
    println!("received {total} messages, each exactly once, in order per worker");
    println!("polled {polls} times");
    println!("receiving took {took:.3}s");
    Ok(())
}
