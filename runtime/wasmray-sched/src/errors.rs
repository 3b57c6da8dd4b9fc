//! The task errors the scheduler itself produces: invalid tasks, failed dependencies,
//! infeasible requests. Errors from running guests are built by the wasm host, not here.

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
