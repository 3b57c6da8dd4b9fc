//! `wit/wasmray.wit` is the contract; the host's linker, the ABI crate's name list and the
//! SDK's raw imports must all agree with it. A change to one without the others fails here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmray_node::Node;
use wasmray_tests::{Capture, test_config};

/// A function as core wasm sees it: parameter and result types (`i32` or `i64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CoreFunc {
    pub(crate) name: String,
    pub(crate) params: Vec<&'static str>,
    pub(crate) results: Vec<&'static str>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_owned()
}

fn wit_core_type(ty: &str) -> &'static str {
    match ty.trim() {
        "u32" | "s32" => "i32",
        "u64" | "s64" => "i64",
        other => panic!("the host interface uses `{other}`, which has no core wasm rendering"),
    }
}

fn rust_core_type(ty: &str) -> &'static str {
    match ty.trim() {
        "u32" | "i32" | "*const u8" | "*mut u8" => "i32",
        "u64" | "i64" => "i64",
        other => panic!("sys.rs uses `{other}`, which has no core wasm rendering"),
    }
}

/// Splits `a: T, b: U` into the types, mapped with `map`.
fn param_types(list: &str, map: fn(&str) -> &'static str) -> Vec<&'static str> {
    list.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| map(p.split_once(':').expect("name: type").1))
        .collect()
}

/// The functions of `interface host` in the WIT file, in order.
pub(crate) fn wit_imports() -> Vec<CoreFunc> {
    let wit = std::fs::read_to_string(repo().join("wit/wasmray.wit")).expect("read wit");
    let start = wit.find("interface host {").expect("interface host");
    let body = &wit[start..start + wit[start..].find("\n}").expect("end of interface")];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && l.contains(": func("))
        .map(|line| {
            let (name, rest) = line.split_once(": func(").expect("name: func(");
            let (params, after) = rest.split_once(')').expect("params end");
            let results = after
                .trim()
                .trim_end_matches(';')
                .trim_start_matches("->")
                .trim();
            CoreFunc {
                name: name.trim().replace('-', "_"),
                params: param_types(params, wit_core_type),
                results: if results.is_empty() {
                    vec![]
                } else {
                    vec![wit_core_type(results)]
                },
            }
        })
        .collect()
}

/// The declarations in the SDK's `extern` block, in order.
fn sdk_imports() -> Vec<CoreFunc> {
    let sys =
        std::fs::read_to_string(repo().join("guest-sdk/wasmray/src/sys.rs")).expect("read sys.rs");
    let block = &sys[sys.find("unsafe extern \"C\" {").expect("extern block")..];
    let code: String = block
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join(" ");
    code.split(';')
        .filter_map(|decl| decl.split_once("fn ").map(|(_, d)| d))
        .map(|decl| {
            let (name, rest) = decl.split_once('(').expect("fn name(");
            let (params, after) = rest.rsplit_once(')').expect("params end");
            let result = after.trim().trim_start_matches("->").trim();
            CoreFunc {
                name: name.trim().to_owned(),
                params: param_types(params, rust_core_type),
                results: if result.is_empty() {
                    vec![]
                } else {
                    vec![rust_core_type(result)]
                },
            }
        })
        .collect()
}

#[test]
fn the_wit_file_and_the_abi_crate_list_the_same_imports_in_order() {
    let wit: Vec<String> = wit_imports().into_iter().map(|f| f.name).collect();
    assert_eq!(wit, wasmray_abi::imports::ALL);
}

#[test]
fn the_sdk_declares_exactly_the_wit_imports_with_the_same_types() {
    assert_eq!(sdk_imports(), wit_imports());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_linker_provides_every_wit_import_with_the_wit_types() -> anyhow::Result<()> {
    let node = Node::start(test_config(1.0, Arc::new(Capture::default())))?;
    let mut imports = String::new();
    for func in wit_imports() {
        let params: String = func.params.iter().map(|t| format!(" {t}")).collect();
        let results: String = func.results.iter().map(|t| format!(" {t}")).collect();
        imports.push_str(&format!(
            "(import \"wasmray\" \"{}\" (func (param{params}) (result{results})))\n",
            func.name
        ));
    }
    let module = format!(
        r#"(module {imports}
            (memory (export "memory") 1)
            (func (export "wasmray_abi_version") (result i32) i32.const {}))"#,
        wasmray_abi::ABI_VERSION
    );
    node.load_module_bytes("contract.wasm", &wat::parse_str(module)?)?;
    Ok(())
}

#[test]
fn the_wit_file_names_the_exports_the_host_looks_for() {
    let wit = std::fs::read_to_string(repo().join("wit/wasmray.wit")).expect("read wit");
    let guest = &wit[wit.find("interface guest {").expect("interface guest")..];
    assert!(guest.contains(&format!(
        "{}: func() -> u32;",
        wasmray_abi::exports::ABI_VERSION.replace('_', "-")
    )));
    assert!(guest.contains("%start: func();"));
    assert!(guest.contains(&format!("`{}<name>`", wasmray_abi::TASK_EXPORT_PREFIX)));
    assert!(wit.contains(&format!(
        "package wasmray:host@{}.0.0;",
        wasmray_abi::ABI_VERSION
    )));
}

/// The variants of `enum error-kind` in the WIT, in order, without their doc lines.
fn wit_error_kinds() -> Vec<String> {
    let wit = std::fs::read_to_string(repo().join("wit/wasmray.wit")).expect("read wit");
    let start = wit.find("enum error-kind {").expect("enum error-kind");
    let body = &wit[start..start + wit[start..].find('}').expect("end of enum")];
    body.lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(|l| l.trim_end_matches(',').to_owned())
        .collect()
}

/// postcard writes an enum as its variant's index, so the WIT's order is the wire format: the
/// i-th `error-kind` must decode as the i-th `ErrorKind`, and no index past them may decode.
#[test]
fn error_kinds_have_the_wit_order_on_the_wire() {
    let kinds = wit_error_kinds();
    assert!(kinds.len() >= 11, "{kinds:?}");
    for (index, name) in kinds.iter().enumerate() {
        let kind: wasmray_abi::ErrorKind =
            wasmray_abi::decode(&[index as u8]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let debug = format!("{kind:?}");
        let kebab: String = debug
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let dash = (i > 0 && c.is_uppercase()).then_some('-');
                dash.into_iter().chain(c.to_lowercase())
            })
            .collect();
        assert_eq!(&kebab, name, "variant {index}");
    }
    assert!(wasmray_abi::decode::<wasmray_abi::ErrorKind>(&[kinds.len() as u8]).is_err());
}
