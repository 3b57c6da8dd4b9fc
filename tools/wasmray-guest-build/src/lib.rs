//! For build scripts: compiles a cargo workspace of wasmray guest crates for `wasm32-wasip1`
//! (release) with a nested cargo, and finds the `.wasm` files it produced.
//!
//! The outer build's settings (rustflags, target dir, clippy's wrapper) are for the host and
//! are kept away from the guests. A missing wasm target fails the build with the command that
//! installs it. This crate only runs cargo; it knows nothing of wasmray itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target guests are built for.
pub const TARGET: &str = "wasm32-wasip1";

/// Builds the workspace at `manifest` into `target_dir`; returns `(member, wasm path)` for each
/// member listed in the manifest's `members = [...]`. Panics (failing the build script) with
/// a message saying what to do when the build fails.
pub fn build_workspace(manifest: &Path, target_dir: &Path) -> Vec<(String, PathBuf)> {
    println!("cargo:rerun-if-changed={}", manifest.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the wasm guests: {e}"));
    if !status.success() {
        panic!(
            "building the wasm guests in {} failed; if the target is missing, run `rustup target add {TARGET}`",
            manifest.display()
        );
    }
    members(manifest)
        .into_iter()
        .map(|member| {
            let wasm = target_dir
                .join(TARGET)
                .join("release")
                .join(format!("{member}.wasm"));
            assert!(wasm.is_file(), "{} was not built", wasm.display());
            (member, wasm)
        })
        .collect()
}

/// The `members = [...]` of a workspace manifest.
pub fn members(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest.display()));
    let Some(start) = text.find("members = [") else {
        panic!("{} lists no workspace members", manifest.display());
    };
    let list = &text[start + "members = [".len()..];
    let end = list.find(']').unwrap_or(list.len());
    list[..end]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty() && !m.starts_with('#'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_read_from_the_manifest() {
        let dir = std::env::temp_dir().join(format!("guest-build-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[workspace]\nmembers = [\n    \"a\",\n    \"b-c\",\n]\n",
        )
        .unwrap();
        assert_eq!(members(&manifest), ["a", "b-c"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
