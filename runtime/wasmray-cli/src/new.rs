//! `wasmray new NAME`: creates a guest crate that `cargo run --release` builds for
//! wasm32-wasip1 and runs on wasmray.
//!
//! The crate depends on the SDK by path (`--sdk`, else the SDK of the source tree this binary
//! was built from), and its `.cargo/config.toml` sets the build target and makes `wasmray run
//! --` the runner (so every argument after the module reaches the driver, flags too), so cargo's own commands do the rest. It writes files and nothing else: it does
//! not build, and it never overwrites an existing directory.

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The crate to create: a directory of that name, holding a package of that name.
    name: PathBuf,
    /// The wasmray SDK (`guest-sdk/wasmray` of a wasmray checkout) to depend on by path
    /// [default: the one this wasmray was built from].
    #[arg(long)]
    sdk: Option<PathBuf>,
}

/// Where the SDK was when this binary was built.
const BUILT_FROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk/wasmray");

pub(crate) fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let package = package_name(&args.name)?;
    let sdk = sdk_dir(args.sdk.as_deref())?;
    anyhow::ensure!(
        !args.name.exists(),
        "`{}` already exists; choose another name",
        args.name.display()
    );
    let files = [
        (PathBuf::from("Cargo.toml"), manifest(&package, &sdk)),
        (PathBuf::from(".cargo/config.toml"), CONFIG.to_owned()),
        (PathBuf::from("src/main.rs"), MAIN.to_owned()),
        (PathBuf::from(".gitignore"), "/target\n".to_owned()),
    ];
    for (path, text) in files {
        let path = args.name.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "Created guest crate `{package}` in {}. Run it on wasmray with:\n\n    cd {} && cargo run --release",
        args.name.display(),
        args.name.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The package name: the directory's last component, which must be a valid crate name.
fn package_name(dir: &Path) -> anyhow::Result<String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("`{}` does not end in a crate name", dir.display()))?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    anyhow::ensure!(
        valid,
        "`{name}` is not a crate name: use letters, digits, `-` and `_`, starting with a letter"
    );
    Ok(name.to_owned())
}

/// The SDK directory, absolute, checked to be the `wasmray` crate.
fn sdk_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidate = flag.unwrap_or(Path::new(BUILT_FROM));
    let dir = candidate.canonicalize().with_context(|| match flag {
        Some(_) => format!("--sdk `{}` does not exist", candidate.display()),
        None => format!(
            "the wasmray SDK this binary was built from ({}) is gone; pass --sdk PATH/guest-sdk/wasmray",
            candidate.display()
        ),
    })?;
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    anyhow::ensure!(
        manifest.contains("name = \"wasmray\""),
        "`{}` is not the wasmray SDK (guest-sdk/wasmray of a wasmray checkout)",
        dir.display()
    );
    Ok(dir)
}

fn manifest(package: &str, sdk: &Path) -> String {
    // A TOML basic string: backslashes and quotes escaped.
    let sdk = sdk
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        r#"[package]
name = "{package}"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
wasmray = {{ path = "{sdk}" }}

[profile.release]
opt-level = 3
"#
    )
}

const CONFIG: &str = r#"# Built for wasm32-wasip1 and run on wasmray: `cargo run --release [-- driver args]`.
[build]
target = "wasm32-wasip1"

[target.wasm32-wasip1]
# `--`: everything after the module, flags too, is the driver's.
runner = "wasmray run --"
"#;

const MAIN: &str = r#"//! A wasmray program: `main` is the driver, `square` runs as remote tasks.

#[wasmray::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[wasmray::main]
fn main() -> Result<(), wasmray::TaskError> {
    let refs: Vec<_> = (1..=4).map(square::remote).collect();
    let squares = wasmray::get_all(&refs)?;
    println!("squares of 1..=4: {squares:?}");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        println!("arguments: {args:?}");
    }
    Ok(())
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_are_checked() {
        assert_eq!(package_name(Path::new("dir/my-app")).unwrap(), "my-app");
        assert!(package_name(Path::new("1app")).is_err());
        assert!(package_name(Path::new("my app")).is_err());
    }
}
