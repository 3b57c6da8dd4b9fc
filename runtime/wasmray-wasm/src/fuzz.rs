//! Entry points for the fuzz targets (`tests/src/bin/wasmray-fuzz.rs`): the decoders of bytes
//! a guest controls, exactly as the host runs them, callable without an engine or a guest.
//!
//! Each takes arbitrary bytes and must never panic; what it returns is only there so that the
//! work is not optimised away. Not for anything but fuzzing.

use wasmray_abi::{ActorCall, ActorCreation, ActorLookup, TaskSubmission, ValueOut};

/// Every ABI record the imports decode from guest memory, decoded from `bytes`; how many
/// decoded.
pub fn abi_records(bytes: &[u8]) -> usize {
    let mut decoded = 0;
    decoded += usize::from(wasmray_abi::decode::<TaskSubmission<'_>>(bytes).is_ok());
    decoded += usize::from(wasmray_abi::decode::<ValueOut<'_>>(bytes).is_ok());
    decoded += usize::from(wasmray_abi::decode::<Vec<ValueOut<'_>>>(bytes).is_ok());
    decoded += usize::from(wasmray_abi::decode::<ActorCreation<'_>>(bytes).is_ok());
    decoded += usize::from(wasmray_abi::decode::<ActorCall<'_>>(bytes).is_ok());
    decoded += usize::from(wasmray_abi::decode::<ActorLookup<'_>>(bytes).is_ok());
    decoded
}

/// What the host reads of a module before compiling it: its declared memory and the
/// rewrite that exports the shadow stack pointer (which validates the result).
/// 0 when the module does not even parse (so the fuzzer keeps only inputs that do).
pub fn module_metadata(bytes: &[u8]) -> usize {
    let rewritten = crate::stack_pointer::with_stack_pointer_export(bytes);
    match crate::module::declared_memory_bytes(bytes) {
        Some(declared) => (declared as usize).wrapping_add(rewritten.len()).max(1),
        None => 0,
    }
}
