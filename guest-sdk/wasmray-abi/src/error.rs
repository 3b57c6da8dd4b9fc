//! `TaskError`: how a failed task is described to the driver, to other guests and in logs.
//!
//! A failure keeps the guest's message, a backtrace where wasmtime gives one, and the chain of
//! tasks the failure went through. A task that fails because an argument failed wraps that
//! argument's error as its `cause`, so `get` on a downstream object shows the whole story.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a task failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The guest panicked.
    Panic,
    /// The guest trapped without a panic (e.g. `unreachable`, out-of-bounds access).
    Trap,
    /// The guest went over its memory cap.
    OutOfMemory,
    /// The guest ran longer than its CPU-time limit.
    DeadlineExceeded,
    /// An argument of the task failed; `cause` holds its error.
    DependencyFailed,
    /// No node in the cluster can ever provide the resources the task asks for.
    Infeasible,
    /// The task was malformed: unknown function, wrong number of returns, bad arguments.
    InvalidTask,
    /// The runtime could not run the task (instantiation failed, node shutting down, ...).
    System,
    /// The actor a method call was for is dead: killed, out of restarts, or its constructor
    /// failed. `cause` holds what killed it, where known.
    ActorDied,
    /// A `get` with a timeout (Ray's `GetTimeoutError`): the object was not ready in time. The
    /// object itself is fine; only this `get` gave up.
    GetTimeout,
    /// The task was cancelled with `cancel` (Ray's `TaskCancelledError`) before it finished.
    Cancelled,
    /// Every copy of the object was lost with the nodes that held it, and it cannot be made
    /// again (Ray's `ObjectLostError`): it was `put`, or how to make it is no longer known.
    ObjectLost,
    /// The node that owned the object died, so nobody can say where it is or make it again
    /// (Ray's `OwnerDiedError`); its borrowers see this.
    OwnerDied,
}

/// A task's failure as `get` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    pub kind: ErrorKind,
    /// Name of the remote function that failed.
    pub function: String,
    /// The guest's panic message, the trap, or the runtime's explanation.
    pub message: String,
    /// Wasm backtrace of the failing guest, innermost frame first, where wasmtime gives one.
    pub backtrace: Option<String>,
    /// The failing task and the tasks that submitted it, innermost first: `["sub", "run", "main"]`.
    pub task_chain: Vec<String>,
    /// The error this one wraps, for `DependencyFailed`.
    pub cause: Option<Box<TaskError>>,
}

impl TaskError {
    /// The innermost error: the one that started the failure.
    pub fn root_cause(&self) -> &TaskError {
        let mut error = self;
        while let Some(cause) = &error.cause {
            error = cause;
        }
        error
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Panic => "panicked",
            ErrorKind::Trap => "trapped",
            ErrorKind::OutOfMemory => "ran out of memory",
            ErrorKind::DeadlineExceeded => "exceeded its cpu time limit",
            ErrorKind::DependencyFailed => "failed because an argument failed",
            ErrorKind::Infeasible => "is infeasible",
            ErrorKind::InvalidTask => "is invalid",
            ErrorKind::System => "failed in the runtime",
            ErrorKind::ActorDied => "failed because its actor died",
            ErrorKind::GetTimeout => "timed out",
            ErrorKind::Cancelled => "was cancelled",
            ErrorKind::ObjectLost => "lost its result",
            ErrorKind::OwnerDied => "lost its result with its owner",
        };
        write!(f, "task `{}` {kind}: {}", self.function, self.message)?;
        if self.task_chain.len() > 1 {
            write!(f, " (task chain: {})", self.task_chain.join(" <- "))?;
        }
        if let Some(cause) = &self.cause {
            write!(f, "\ncaused by: {cause}")?;
        } else if let Some(backtrace) = &self.backtrace {
            write!(f, "\nwasm backtrace:\n{backtrace}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic_in(function: &str) -> TaskError {
        TaskError {
            kind: ErrorKind::Panic,
            function: function.into(),
            message: "boom".into(),
            backtrace: Some("0: f".into()),
            task_chain: vec![function.into(), "main".into()],
            cause: None,
        }
    }

    #[test]
    fn dependent_failure_shows_its_cause() {
        let wrapped = TaskError {
            kind: ErrorKind::DependencyFailed,
            function: "g".into(),
            message: "argument 0 failed".into(),
            backtrace: None,
            task_chain: vec!["g".into(), "main".into()],
            cause: Some(Box::new(panic_in("f"))),
        };
        let text = wrapped.to_string();
        assert!(text.starts_with("task `g` failed because an argument failed"));
        assert!(text.contains("caused by: task `f` panicked: boom (task chain: f <- main)"));
        assert_eq!(wrapped.root_cause().function, "f");
    }
}
