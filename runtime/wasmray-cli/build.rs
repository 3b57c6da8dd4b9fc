//! Builds the `wasmray microbenchmark` guest (`bench/microbenchmark`) for wasm32-wasip1 and
//! tells the compiler where it is (`WASMRAY_MICROBENCHMARK_WASM`), so the binary carries it.

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
    let Some((_, wasm)) = built
        .into_iter()
        .find(|(member, _)| member == "microbenchmark")
    else {
        panic!("bench/Cargo.toml must list the `microbenchmark` guest");
    };
    println!(
        "cargo:rustc-env=WASMRAY_MICROBENCHMARK_WASM={}",
        wasm.display()
    );
}
