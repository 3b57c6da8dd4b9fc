//! Blocking inside an import: waiting for `get`/`wait` while the instance can be killed, and,
//! for actors with `max_concurrency > 1`, running the actor's other calls meanwhile.
//!
//! A nested call runs on the same instance and the same wasm stack as the blocked one, LIFO:
//! the blocked call resumes once the nested one has finished. The blocked call's state (its
//! arguments, results, output label) is set aside and restored around the nested one.

use crate::call::Finished;
use crate::failure::task_outcome;
use crate::services::NestedCall;
use crate::stack_pointer::{restore_stack_pointer, save_stack_pointer};
use crate::state::{CallState, GuestState};
use std::future::Future;
use wasmtime::Caller;

/// Awaits `wait`; meanwhile runs nested calls, and gives up if the instance is killed.
pub(crate) async fn block_on<T>(
    caller: &mut Caller<'_, GuestState>,
    wait: impl Future<Output = T>,
) -> wasmtime::Result<T> {
    let kill = caller.data().kill.clone();
    let nested = caller.data().nested.clone();
    let mut wait = std::pin::pin!(wait);
    // Blocked time is not CPU time (see cpu_clock.rs); however this ends, the call runs again.
    caller.data_mut().cpu.block();
    let outcome = block(caller, kill, nested, &mut wait).await;
    caller.data_mut().cpu.unblock();
    outcome
}

async fn block<T>(
    caller: &mut Caller<'_, GuestState>,
    kill: crate::kill::KillSwitch,
    nested: Option<std::sync::Arc<dyn crate::NestedCalls>>,
    wait: &mut std::pin::Pin<&mut impl Future<Output = T>>,
) -> wasmtime::Result<T> {
    loop {
        let next_call = async {
            match &nested {
                Some(source) => source.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A kill wins over a wait that ends at the same moment (a cancelled task whose
            // child was cancelled with it must not go on with the child's error).
            biased;
            () = kill.killed() => return Err(wasmtime::Error::msg("the instance was stopped")),
            value = wait.as_mut() => return Ok(value),
            call = next_call => run_nested(caller, call).await,
        }
    }
}

/// Runs `nested` on the caller's instance and sends its outcome back.
async fn run_nested(caller: &mut Caller<'_, GuestState>, nested: NestedCall) {
    let NestedCall { call, reply } = nested;
    let state = caller.data_mut();
    let outer = state
        .call
        .replace(CallState::new(call.caller, call.args, call.num_returns));
    let outer_staged = state.staged.take();
    // The nested call runs on a budget of its own; the blocked call's waits meanwhile.
    let outer_cpu = std::mem::replace(
        &mut state.cpu,
        crate::cpu_clock::CpuBudget::start(call.limits.cpu_time),
    );
    let outer_label = state.output.label();
    state.output.set_label(Some(call.label));
    let func = caller
        .get_export(&call.export)
        .and_then(|export| export.into_func())
        .and_then(|func| func.typed::<(), ()>(&*caller).ok());
    let stack = save_stack_pointer(&mut *caller);
    let result = match func {
        Some(func) => func.call_async(&mut *caller, ()).await,
        None => Err(wasmtime::Error::msg(format!(
            "the module exports no `{}`",
            call.export
        ))),
    };
    if result.is_err() {
        restore_stack_pointer(&mut *caller, stack);
    }
    let state = caller.data_mut();
    let finished_call = std::mem::replace(&mut state.call, outer);
    state.staged = outer_staged;
    state.cpu = outer_cpu;
    state.output.set_label(outer_label);
    let instance_lost = state.limits.hit || state.deadline_hit || state.kill.is_killed();
    let Some(finished_call) = finished_call else {
        return;
    };
    let outcome = task_outcome(caller.data(), finished_call, &call.function, result);
    let held = Vec::new();
    // The receiver may be gone (its executor was stopped); nothing is lost but the reply.
    let _ = reply.send(Finished {
        outcome,
        held,
        instance_lost,
    });
}
