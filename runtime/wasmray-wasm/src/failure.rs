//! How a failed call is described: the guest's panic message, the trap, the limit it hit,
//! and a demangled backtrace without the panic machinery; and how a finished call's results
//! become its outcome.
//!
//! Only what happened inside the instance is decided here; retry and restart policy belong to
//! the scheduler.

use crate::call::TaskOutcome;
use crate::memory::GuestFault;
use crate::state::{CallState, GuestState};
use wasmray_abi::{ErrorKind, TaskError};
use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

/// The outcome of a task, constructor or method call that ended with `result`. Results it
/// set before failing are dropped, which gives back the references they counted.
pub(crate) fn task_outcome(
    state: &GuestState,
    mut call: CallState,
    function: &str,
    result: wasmtime::Result<()>,
) -> TaskOutcome {
    if result.is_err() {
        drop(call.results.take());
    }
    match result {
        Ok(()) => match call.results.take() {
            Some(results) => TaskOutcome::Returned(results),
            None => TaskOutcome::Failed(task_error(
                &call,
                function,
                ErrorKind::InvalidTask,
                "returned without calling task_return (was it built with the wasmray SDK?)".into(),
                None,
            )),
        },
        Err(error) => TaskOutcome::Failed(classify(state, &call, function, &error)),
    }
}

pub(crate) fn classify(
    state: &GuestState,
    call: &CallState,
    function: &str,
    error: &wasmtime::Error,
) -> TaskError {
    let backtrace = error
        .downcast_ref::<WasmBacktrace>()
        .and_then(format_backtrace);
    let (kind, message) = if state.kill.is_killed() {
        (
            ErrorKind::System,
            "its instance was stopped (the actor was killed)".to_owned(),
        )
    } else if state.deadline_hit {
        let limit = state.cpu.limit().unwrap_or_default().as_millis();
        (
            ErrorKind::DeadlineExceeded,
            format!("ran for more than its cpu time limit of {limit} ms"),
        )
    } else if let Some(refusal) = &state.limits.refused_by {
        (ErrorKind::OutOfMemory, refusal.clone())
    } else if state.limits.hit {
        (
            ErrorKind::OutOfMemory,
            format!(
                "exceeded its memory limit of {} bytes",
                state.limits.max_bytes
            ),
        )
    } else if let Some(message) = &call.panic_message {
        (ErrorKind::Panic, message.clone())
    } else if let Some(exit) = error.downcast_ref::<I32Exit>() {
        (
            ErrorKind::Trap,
            format!("called exit({}) inside a task", exit.0),
        )
    } else if let Some(fault) = error.downcast_ref::<GuestFault>() {
        (ErrorKind::Trap, format!("misused the host ABI: {fault}"))
    } else if let Some(trap) = error.downcast_ref::<Trap>() {
        (ErrorKind::Trap, trap_message(*trap))
    } else {
        (ErrorKind::Trap, format!("{error:#}"))
    };
    task_error(call, function, kind, message, backtrace)
}

pub(crate) fn task_error(
    call: &CallState,
    function: &str,
    kind: ErrorKind,
    message: String,
    backtrace: Option<String>,
) -> TaskError {
    TaskError {
        kind,
        function: function.to_owned(),
        message,
        backtrace,
        task_chain: call.caller.lineage.error_chain(),
        cause: None,
    }
}

fn trap_message(trap: Trap) -> String {
    match trap {
        Trap::StackOverflow => "overflowed its stack (unbounded recursion?)".into(),
        Trap::UnreachableCodeReached => "unreachable code reached (an abort)".into(),
        Trap::MemoryOutOfBounds => "out-of-bounds memory access".into(),
        Trap::IntegerDivisionByZero => "integer division by zero".into(),
        other => other.to_string(),
    }
}

/// Frames of the panic machinery that sit above the guest's own code in a panic's backtrace.
fn is_panic_machinery(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "abort",
        "std::",
        "core::",
        "__rustc::",
        "__rust_",
        "rust_panic",
        "rust_begin_unwind",
    ];
    PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Demangled frames, innermost first, without the panic machinery above the guest's code.
fn format_backtrace(backtrace: &WasmBacktrace) -> Option<String> {
    let names: Vec<String> = backtrace
        .frames()
        .iter()
        .map(|frame| {
            frame.func_name().map_or_else(
                || "<unnamed>".to_owned(),
                |n| format!("{:#}", rustc_demangle::demangle(n)),
            )
        })
        .collect();
    let first_own = names
        .iter()
        .position(|n| !is_panic_machinery(n))
        .unwrap_or(0);
    let frames: Vec<String> = names[first_own..]
        .iter()
        .enumerate()
        .map(|(i, name)| format!("  {i}: {name}"))
        .collect();
    (!frames.is_empty()).then(|| frames.join("\n"))
}
