//! The invariants ARCHITECTURE.md states, checked against the source tree. Each test names the
//! rule it keeps; if one fails, either the change is wrong or ARCHITECTURE.md must change too.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_owned()
}

/// The names under `[dependencies]` of a crate's manifest (not dev- or build-dependencies).
fn dependencies(crate_dir: &str) -> Vec<String> {
    let manifest =
        std::fs::read_to_string(repo().join(crate_dir).join("Cargo.toml")).expect("manifest");
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.to_owned());
        }
    }
    names
}

fn runtime_crates() -> Vec<String> {
    let mut crates: Vec<String> = std::fs::read_dir(repo().join("runtime"))
        .expect("runtime/")
        .filter_map(|e| e.ok())
        .map(|e| format!("runtime/{}", e.file_name().to_string_lossy()))
        .collect();
    crates.sort();
    crates
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The part of a source file that is not test code (`#[cfg(test)]` modules come last).
fn non_test_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source file");
    if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"))
        || declared_test_only(path)
    {
        return String::new();
    }
    // A file's own test module comes last.
    match text.find("#[cfg(test)]\nmod ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Whether the module in `path` exists only in tests: it, or a module it is inside, is
/// declared `#[cfg(test)] mod name;`.
fn declared_test_only(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return false;
    };
    let (name, dir) = if path.file_name().is_some_and(|n| n == "mod.rs") {
        let Some(name) = parent.file_name() else {
            return false;
        };
        let Some(dir) = parent.parent() else {
            return false;
        };
        (name.to_string_lossy().into_owned(), dir.to_path_buf())
    } else {
        let Some(stem) = path.file_stem() else {
            return false;
        };
        (stem.to_string_lossy().into_owned(), parent.to_path_buf())
    };
    let declaration = format!("mod {name};");
    for declaring in [
        dir.join("lib.rs"),
        dir.join("mod.rs"),
        dir.with_extension("rs"),
    ] {
        if declaring == path {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&declaring) else {
            continue;
        };
        if !text.contains(&declaration) {
            continue;
        }
        if text.contains(&format!("#[cfg(test)]\n{declaration}")) {
            return true;
        }
        let is_root = declaring
            .file_name()
            .is_some_and(|n| n == "lib.rs" || n == "main.rs");
        return !is_root && declared_test_only(&declaring);
    }
    false
}

#[test]
fn sched_never_depends_on_tokio_wasmtime_or_any_io() {
    assert_eq!(dependencies("runtime/wasmray-sched"), ["wasmray-core"]);
}

#[test]
fn only_wasmray_wasm_touches_wasmtime() {
    for krate in runtime_crates() {
        let deps = dependencies(&krate);
        let touches = deps.iter().any(|d| d.starts_with("wasmtime"));
        assert_eq!(
            touches,
            krate == "runtime/wasmray-wasm",
            "{krate}: {deps:?}"
        );
    }
}

#[test]
fn the_store_never_depends_on_scheduling_wasm_or_networking() {
    let deps = dependencies("runtime/wasmray-store");
    for forbidden in [
        "wasmray-sched",
        "wasmray-wasm",
        "wasmray-node",
        "tokio",
        "quinn",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "wasmray-store depends on {forbidden}"
        );
    }
}

#[test]
fn only_the_cli_uses_anyhow_clap_or_sets_up_logging() {
    for krate in runtime_crates() {
        for dep in dependencies(&krate) {
            if ["anyhow", "clap", "tracing-subscriber"].contains(&dep.as_str()) {
                assert_eq!(krate, "runtime/wasmray-cli", "{krate} depends on {dep}");
            }
        }
    }
}

#[test]
fn the_guest_sdk_never_depends_on_runtime_crates() {
    for krate in [
        "guest-sdk/wasmray",
        "guest-sdk/wasmray-abi",
        "guest-sdk/wasmray-macros",
    ] {
        for dep in dependencies(krate) {
            let allowed = [
                "wasmray-abi",
                "wasmray-macros",
                "serde",
                "postcard",
                "typeid",
                "syn",
                "quote",
                "proc-macro2",
            ];
            assert!(allowed.contains(&dep.as_str()), "{krate} depends on {dep}");
        }
    }
}

#[test]
fn library_crates_never_print() {
    for krate in runtime_crates()
        .into_iter()
        .filter(|k| k != "runtime/wasmray-cli")
    {
        for file in rust_files(&repo().join(&krate).join("src")) {
            let code = non_test_code(&file);
            for forbidden in ["println!", "eprintln!", "print!(", "dbg!("] {
                assert!(
                    !code.contains(forbidden),
                    "{} uses {forbidden}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    for dir in [
        "runtime",
        "guest-sdk",
        "tests",
        "examples",
        "bench",
        "tools",
    ] {
        for file in rust_files(&repo().join(dir)) {
            let text = std::fs::read_to_string(&file).expect("source file");
            assert!(
                text.starts_with("//!"),
                "{} has no `//!` doc at the top",
                file.display()
            );
        }
    }
}

#[test]
fn every_unsafe_block_has_a_safety_comment() {
    for dir in ["runtime", "guest-sdk"] {
        for file in rust_files(&repo().join(dir)) {
            let text = std::fs::read_to_string(&file).expect("source file");
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if code.contains("unsafe {") || code.contains("unsafe impl") {
                    let window = &lines[i.saturating_sub(8)..=i];
                    assert!(
                        window.iter().any(|l| l.contains("SAFETY:")),
                        "{}:{} has `unsafe` without a `// SAFETY:` comment",
                        file.display(),
                        i + 1
                    );
                }
            }
        }
    }
}

#[test]
fn runtime_library_code_never_unwraps() {
    for krate in runtime_crates() {
        for file in rust_files(&repo().join(&krate).join("src")) {
            let code = non_test_code(&file);
            assert!(
                !code.contains(".unwrap()"),
                "{} calls .unwrap() outside tests",
                file.display()
            );
        }
    }
}
