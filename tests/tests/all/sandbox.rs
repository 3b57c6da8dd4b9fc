//! Guests that misuse the host ABI, written in WAT: each gets a clear error and the node goes
//! on serving. These cover what the Rust SDK never does but a hostile module can.

use std::sync::Arc;
use wasmray_node::{DriverExit, ErrorKind, Node, NodeError, WasmError};
use wasmray_tests::{Capture, guests, test_config};

/// A driver module whose `_start` runs `body`, with the given imports.
fn driver(imports: &str, body: &str, abi_version: u32) -> Vec<u8> {
    let text = format!(
        r#"(module
            {imports}
            (memory (export "memory") 1)
            (func (export "wasmray_abi_version") (result i32) i32.const {abi_version})
            (func (export "_start") {body}))"#
    );
    wat::parse_str(text).expect("valid WAT")
}

async fn run_bytes(node: &Node, bytes: &[u8]) -> Result<DriverExit, NodeError> {
    let module = node.load_module_bytes("hostile.wasm", bytes)?;
    node.run_driver(&module, &[]).await
}

async fn assert_node_still_serves(node: &Node, output: &Capture) -> anyhow::Result<()> {
    let module = node.load_module(guests::HELLO.as_ref())?;
    let exit = node.run_driver(&module, &[]).await?;
    assert!(matches!(exit, DriverExit::Exited(0)), "{exit:?}");
    assert!(
        output
            .driver_stdout()
            .contains(&"hello from wasmray".to_owned())
    );
    Ok(())
}

fn failed_message(exit: DriverExit) -> String {
    match exit {
        DriverExit::Failed(error) => {
            assert_eq!(error.kind, ErrorKind::Trap, "{error}");
            error.message
        }
        other => panic!("expected the driver to fail, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointers_outside_guest_memory_trap_the_guest_only() -> anyhow::Result<()> {
    let output = Arc::new(Capture::default());
    let node = Node::start(test_config(2.0, Arc::clone(&output)))?;
    let cases = [
        (
            r#"(import "wasmray" "put" (func $put (param i32 i32) (result i32)))"#,
            "(drop (call $put (i32.const 65530) (i32.const 100)))",
            "wasmray.put: range 65530+100 is outside guest memory",
        ),
        (
            r#"(import "wasmray" "submit_task" (func $submit (param i32 i32 i32) (result i32)))"#,
            "(drop (call $submit (i32.const -1) (i32.const -1) (i32.const 0)))",
            "wasmray.submit_task: range",
        ),
        (
            r#"(import "wasmray" "get" (func $get (param i32 i64 i32) (result i32)))"#,
            "(drop (call $get (i32.const 77) (i64.const 0) (i32.const 0)))",
            "wasmray.get: unknown object handle 77",
        ),
        (
            r#"(import "wasmray" "staged_read" (func $read (param i32 i32)))"#,
            "(call $read (i32.const 0) (i32.const 0))",
            "wasmray.staged_read: nothing is staged",
        ),
        (
            r#"(import "wasmray" "put" (func $put (param i32 i32) (result i32)))"#,
            "(i32.store (i32.const 0) (i32.const -1)) (drop (call $put (i32.const 0) (i32.const 4)))",
            "wasmray.put: malformed value",
        ),
    ];
    for (imports, body, expected) in cases {
        let message = failed_message(run_bytes(&node, &driver(imports, body, 1)).await?);
        assert!(
            message.contains(expected),
            "expected `{expected}` in `{message}`"
        );
    }
    assert_node_still_serves(&node, &output).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_for_another_abi_version_is_refused() -> anyhow::Result<()> {
    let output = Arc::new(Capture::default());
    let node = Node::start(test_config(1.0, Arc::clone(&output)))?;
    let error = run_bytes(&node, &driver("", "", 99))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            error,
            NodeError::Wasm(WasmError::AbiMismatch { found: 99, .. })
        ),
        "{error}"
    );
    assert_node_still_serves(&node, &output).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_with_the_wrong_signature_is_refused_at_load() -> anyhow::Result<()> {
    let output = Arc::new(Capture::default());
    let node = Node::start(test_config(1.0, output))?;
    let bytes = driver(r#"(import "wasmray" "put" (func (param i64)))"#, "", 1);
    let error = node
        .load_module_bytes("wrong.wasm", &bytes)
        .expect_err("refused");
    let text = error.to_string();
    assert!(text.starts_with("`wrong.wasm` cannot be linked"), "{text}");
    assert!(text.contains("put"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_driver_future_stops_the_driver_and_frees_its_instance() -> anyhow::Result<()>
{
    let output = Arc::new(Capture::default());
    // Room for two instances: `hello` needs one for its driver and one for its task, so it can
    // run only once the spinning driver's instance is gone.
    let node = Node::start(wasmray_node::NodeConfig {
        max_instances: 2,
        ..test_config(2.0, Arc::clone(&output))
    })?;
    let spinning = driver("", "(loop (br 0))", 1);
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        run_bytes(&node, &spinning),
    )
    .await;
    assert!(abandoned.is_err(), "the spinning driver cannot finish");
    // The abort lands at the spinner's next epoch tick (10 ms); allow a scheduling delay.
    let module = node.load_module(guests::HELLO.as_ref())?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let exit = node.run_driver(&module, &[]).await?;
        if matches!(exit, DriverExit::Exited(0)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned driver still holds its instance: {exit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}
