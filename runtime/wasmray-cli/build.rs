//! Builds the `wasmray microbenchmark` guests (`bench/microbenchmark` and `bench/hello`, the
//! cold-start module) for wasm32-wasip1 and tells the compiler where they are
//! (`WASMRAY_MICROBENCHMARK_WASM`, `WASMRAY_HELLO_WASM`), so the binary carries them.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir.join("../..");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    for watched in ["bench", "guest-sdk"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let built = wasmray_guest_build::build_workspace(
        &root.join("bench/Cargo.toml"),
        &out_dir.join("guests"),
    );
    for (guest, variable) in [
        ("microbenchmark", "WASMRAY_MICROBENCHMARK_WASM"),
        ("hello", "WASMRAY_HELLO_WASM"),
    ] {
        let Some((_, wasm)) = built.iter().find(|(member, _)| member == guest) else {
            panic!("bench/Cargo.toml must list the `{guest}` guest");
        };
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }
}
