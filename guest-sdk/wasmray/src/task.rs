//! The runtime side of remote functions, called by the code the macros generate: submitting a
//! call, running a task export, running the driver, and the panic hook.
//!
//! A call encodes a `TaskSubmission` and gets one handle per return value back at once; the
//! task runs later in another instance. There, the export `wasmray_task:<name>` calls
//! [`run_task`], which reads each argument with `task_arg`, runs the user's function and hands
//! every result to `task_return` in one `Vec<ValueOut>`.
//!
//! Panics: [`install_panic_hook`] replaces the default hook (which would print to stderr) with
//! one that passes `panicked at {file}:{line}:{col}:\n{message}` to `report_panic`; the host turns
//! it into the task's error (or reports the driver's failure). The panic then traps, because
//! wasm32 builds abort on panic. Nothing here prints.
//!
//! Actor entry points live in [`crate::actor_state`] and reuse [`task_arg`] and the reporting
//! here. This file does not choose names or options: the macros do.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Once;
use wasmray_abi::{TaskSubmission, ValueOut};

use crate::args::Arg;
use crate::codec::{self, Encoded};
use crate::object_ref::ObjectRef;
use crate::options::CallOptions;
use crate::region;
use crate::sys;

/// Submits a call of remote function `function` and returns the handles of its `N` results.
pub fn submit<const N: usize>(function: &str, args: Vec<Arg>, options: &CallOptions) -> [u32; N] {
    let submission = TaskSubmission {
        function,
        args: args.iter().map(Arg::arg_out).collect(),
        num_returns: codec::abi_len(N, "num_returns"),
        options: options.record().clone(),
    };
    let spec = codec::encode_record(&submission);
    let spec_len = codec::abi_len(spec.len(), "a task submission");
    let mut returns = [0u32; N];
    // SAFETY: `spec` is a live buffer of `spec_len` bytes that the host only reads; `returns`
    // has room for exactly `N` u32s, the `num_returns` handles the host writes there.
    unsafe { sys::submit_task(spec.as_ptr(), spec_len, returns.as_mut_ptr().cast::<u8>()) };
    // `args` (and the refs it keeps alive) is dropped only now, after the host took them.
    drop(args);
    returns
}

/// Wraps a handle the host just returned in a typed ref that owns it.
pub fn take_ref<T>(handle: u32) -> ObjectRef<T> {
    ObjectRef::from_handle(handle)
}

/// Reads argument `index` of the running task (or actor constructor or method: `function` is then
/// `Class::method`), as `T`.
///
/// # Panics
/// When the argument does not decode as `T`, naming the function and the argument.
pub fn task_arg<T: DeserializeOwned>(function: &str, index: u32) -> T {
    let staged = codec::stage_and_read(|info_ptr| {
        // SAFETY: `info_ptr` points to a live `StagedInfo::SIZE`-byte buffer (see
        // `stage_and_read`), the size the host writes there.
        unsafe { sys::task_arg(index, info_ptr) }
    });
    let what = format!("argument {index} of `{function}`");
    codec::decode_or_panic(staged, &what)
}

/// How many results the caller of the running call asked for.
pub fn call_num_returns() -> u32 {
    // SAFETY: no arguments; the host answers for the call in progress (or traps outside one).
    unsafe { sys::task_num_returns() }
}

/// Encodes one result of a task.
pub fn encode_result<T: Serialize>(value: &T) -> Encoded {
    codec::encode(value)
}

/// Runs a task: installs the panic hook, notes a new task call (for `Buffer` mappings), runs
/// `body` (which reads the arguments, calls the user's function and encodes its results) and
/// reports the results with `task_return`.
pub fn run_task(body: impl FnOnce() -> Vec<Encoded>) {
    install_panic_hook();
    // The host ended the mappings of this instance's previous task call, if any.
    region::task_call_started();
    report_results(body());
}

/// Hands a task's or an actor call's results to `task_return`, then drops them.
pub(crate) fn report_results(results: Vec<Encoded>) {
    let values: Vec<ValueOut<'_>> = results.iter().map(Encoded::value_out).collect();
    let bytes = codec::encode_record(&values);
    let len = codec::abi_len(bytes.len(), "a task's results");
    // SAFETY: `bytes` is a live buffer of `len` bytes that the host only reads.
    unsafe { sys::task_return(bytes.as_ptr(), len) };
    // The refs inside the results are released only now, after the host took them.
    drop(results);
}

/// Runs the driver's `main` body with the panic hook installed and returns what it returns, so
/// that Rust's `Termination` reports an `Err` as usual.
pub fn run_driver<R>(main: impl FnOnce() -> R) -> R {
    install_panic_hook();
    main()
}

/// Installs the panic hook once per instance.
pub fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| std::panic::set_hook(Box::new(report_panic)));
}

fn report_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
    let text = match info.location() {
        Some(at) => format!(
            "panicked at {}:{}:{}:\n{message}",
            at.file(),
            at.line(),
            at.column()
        ),
        None => format!("panicked:\n{message}"),
    };
    // A message over 4 GiB cannot exist in a wasm32 guest; cut it rather than panic in the hook.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    // SAFETY: `text` is a live buffer of at least `len` bytes that the host only reads.
    unsafe { sys::report_panic(text.as_ptr(), len) };
}
