//! bad-import: a module built with the SDK that also imports a function the host does not
//! provide, `wasmray.not_a_real_import`.
//!
//! The host must refuse to instantiate it with a clear error naming the import; the driver
//! never starts, so nothing is printed (were it to run, it would print
//! `this line must never print` first).

#[link(wasm_import_module = "wasmray")]
unsafe extern "C" {
    fn not_a_real_import();
}

#[wasmray::main]
fn main() {
    println!("this line must never print");
    // SAFETY: the import takes no arguments and returns nothing, so the call cannot break any
    // invariant of this program; the host is expected to refuse the module before it runs.
    unsafe { not_a_real_import() }
}
