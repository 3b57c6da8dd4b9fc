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
    // serde only derives the messages' encodings; the transport does the encoding.
    let mut deps = dependencies("runtime/wasmray-sched");
    deps.sort();
    assert_eq!(deps, ["serde", "wasmray-core"]);
}

#[test]
fn the_transport_knows_nothing_of_scheduling_stores_or_wasm() {
    let deps = dependencies("runtime/wasmray-net");
    for forbidden in [
        "wasmray-sched",
        "wasmray-store",
        "wasmray-wasm",
        "wasmray-node",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "wasmray-net depends on {forbidden}"
        );
    }
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

/// The modules (files) of a crate's `src/` that each non-test module refers to with a
/// `crate::` path, names re-exported by `lib.rs` resolved to the module defining them.
fn module_graph(
    krate: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = repo().join(krate).join("src");
    let module_of = |path: &Path| -> Option<String> {
        let rel = path.strip_prefix(&src).ok()?;
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        // Submodules count as their top-level module.
        parts
            .into_iter()
            .next()
            .filter(|m| m != "lib" && m != "main")
    };
    // `pub use module::{A, B}` and `pub use module::A` in lib.rs.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let mut exported = std::collections::BTreeMap::new();
    for statement in lib.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                exported.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    let mut graph = std::collections::BTreeMap::new();
    for file in rust_files(&src) {
        let Some(module) = module_of(&file) else {
            continue;
        };
        // Comments (docs linking to another module's items) are not dependencies.
        let code: String = non_test_code(&file)
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        if code.trim().is_empty() {
            continue;
        }
        let edges: &mut std::collections::BTreeSet<String> =
            graph.entry(module.clone()).or_default();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let targets: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').collect()
            } else {
                vec![rest]
            };
            for target in targets {
                let name: String = target
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let target = match name.chars().next() {
                    Some(c) if c.is_uppercase() => exported.get(&name).cloned(),
                    Some(_) => Some(name),
                    None => None,
                };
                if let Some(target) = target
                    && target != module
                {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the modules on it, if there is one.
fn find_cycle(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_runtime_crate_has_a_file_level_import_circle() {
    let mut circles = Vec::new();
    for krate in runtime_crates() {
        if let Some(cycle) = find_cycle(&module_graph(&krate)) {
            circles.push(format!("{krate}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_check_finds_a_circle() {
    let mut graph = std::collections::BTreeMap::new();
    graph.insert("a".to_owned(), ["b".to_owned()].into());
    graph.insert("b".to_owned(), ["c".to_owned()].into());
    graph.insert("c".to_owned(), ["a".to_owned()].into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    graph.insert("c".to_owned(), std::collections::BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
}
