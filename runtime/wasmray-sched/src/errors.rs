//! The task errors the scheduler itself produces: invalid tasks, failed dependencies,
//! infeasible requests. Errors from running guests are built by the wasm host, not here.

use std::sync::Arc;
use wasmray_core::{ErrorKind, ResourceSet, TaskError, TaskSpec};

fn task_error<V>(
    spec: &TaskSpec<V>,
    kind: ErrorKind,
    message: String,
    cause: Option<Box<TaskError>>,
) -> TaskError {
    TaskError {
        kind,
        function: spec.function.clone(),
        message,
        backtrace: None,
        task_chain: spec.lineage.error_chain(),
        cause,
    }
}

pub(crate) fn cancelled<V>(spec: &TaskSpec<V>, message: &str) -> TaskError {
    task_error(spec, ErrorKind::Cancelled, message.to_owned(), None)
}

pub(crate) fn invalid<V>(spec: &TaskSpec<V>, message: String) -> TaskError {
    task_error(spec, ErrorKind::InvalidTask, message, None)
}

pub(crate) fn dependency_failed<V>(
    spec: &TaskSpec<V>,
    index: usize,
    cause: &TaskError,
) -> TaskError {
    task_error(
        spec,
        ErrorKind::DependencyFailed,
        format!("argument {index} failed"),
        Some(Box::new(cause.clone())),
    )
}

pub(crate) fn infeasible<V>(
    spec: &TaskSpec<V>,
    shortfall: &[String],
    total: &ResourceSet,
) -> TaskError {
    task_error(
        spec,
        ErrorKind::Infeasible,
        format!(
            "it asks for {} but the cluster has {total} in all; short of: {}",
            spec.resources,
            shortfall.join(", ")
        ),
        None,
    )
}

/// The error of a call (or creation) whose actor is dead; `function` is `Class::method` or
/// the class, `cause` what killed the actor.
pub(crate) fn actor_died(
    function: &str,
    reason: &str,
    cause: Option<&Arc<TaskError>>,
) -> TaskError {
    TaskError {
        kind: ErrorKind::ActorDied,
        function: function.to_owned(),
        // The cause's first line, so that one line says what killed the actor.
        message: match cause {
            // A call failed by an actor already dead says what that death said.
            Some(cause) if cause.kind == ErrorKind::ActorDied => {
                cause.message.lines().next().unwrap_or_default().to_owned()
            }
            Some(cause) => format!(
                "the actor died: {reason} (`{}` {:?}: {})",
                cause.function,
                cause.kind,
                cause.message.lines().next().unwrap_or_default()
            ),
            None => format!("the actor died: {reason}"),
        },
        backtrace: None,
        task_chain: vec![function.to_owned()],
        cause: cause.map(|c| Box::new((**c).clone())),
    }
}

/// The error of an object that can no longer be had: every copy of it is gone.
pub(crate) fn lost(object: wasmray_core::ObjectId, reason: &str) -> TaskError {
    TaskError {
        kind: ErrorKind::ObjectLost,
        function: String::new(),
        message: format!("object {object} was lost: {reason}"),
        backtrace: None,
        task_chain: Vec::new(),
        cause: None,
    }
}

/// A borrower's object whose owner node died: nobody can say where it is any more.
pub(crate) fn owner_died(object: wasmray_core::ObjectId, owner: wasmray_core::NodeId) -> TaskError {
    TaskError {
        kind: ErrorKind::OwnerDied,
        function: String::new(),
        message: format!("object {object} was lost: its owner, node {owner}, died"),
        backtrace: None,
        task_chain: Vec::new(),
        cause: None,
    }
}
