//! no-sdk: a plain wasm32-wasip1 program built without the wasmray SDK.
//!
//! It exports neither `wasmray_abi_version` nor any `wasmray_task:*`, so the host must refuse
//! to run it with a clear error (missing exports) and print nothing of its own. Run directly
//! with a WASI runtime it would print `hi`.

fn main() {
    println!("hi");
}
