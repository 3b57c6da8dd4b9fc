//! Zero-copy objects at the host ABI level, written in WAT so that addresses are exact: a
//! mapped object reads back right, writes stay private, a region is zero again for the next
//! run, and regions inside a module's initial memory are copied into, never mapped over. (The
//! slot-reuse leak itself, hazard 1 of DESIGN.md §4, needs the object to outlive the mapping
//! instance: `buffers.rs` checks it with the `buffers` guest's leak probe.)

use std::sync::Arc;
use wasmray_node::{DriverExit, Node};
use wasmray_tests::{Capture, test_config};

/// A driver that first checks that a 4 MiB region is all zeros (trapping if not), then puts 4
/// MiB of 0xAB bytes as an object and maps it over that very region.
const MAP_THEN_LEAVE: &str = r#"(module
    (import "wasmray" "put_bytes" (func $put_bytes (param i32 i32) (result i32)))
    (import "wasmray" "map_object" (func $map (param i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "wasmray_abi_version") (result i32) i32.const 1)
    (func (export "_start")
        (local $at i32)
        (local $handle i32)
        (drop (memory.grow (i32.const 129)))
        ;; The region at page 65 must be zero: a fresh memory, or a slot whose last tenant's
        ;; mapping was taken away.
        (local.set $at (i32.const 4259840))
        (block $done
            (loop $scan
                (br_if $done (i32.ge_u (local.get $at) (i32.const 8454144)))
                (if (i64.ne (i64.load (local.get $at)) (i64.const 0)) (then unreachable))
                (local.set $at (i32.add (local.get $at) (i32.const 8)))
                (br $scan)))
        (memory.fill (i32.const 65536) (i32.const 0xAB) (i32.const 4194304))
        (local.set $handle (call $put_bytes (i32.const 65536) (i32.const 4194304)))
        ;; 0: mapped, not copied.
        (if (i32.ne (call $map (local.get $handle) (i32.const 4259840) (i32.const 4194304)) (i32.const 0))
            (then unreachable))
        (if (i32.ne (i32.load8_u (i32.const 8454143)) (i32.const 0xAB)) (then unreachable))
        ;; Writes stay private to this guest.
        (i32.store8 (i32.const 4259840) (i32.const 7))
        (if (i32.ne (i32.load8_u (i32.const 4259840)) (i32.const 7)) (then unreachable)))
)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_objects_read_right_and_writes_stay_private() -> anyhow::Result<()> {
    let output = Arc::new(Capture::default());
    let node = Node::start(test_config(1.0, output))?;
    let module = node.load_module_bytes("map-then-leave.wasm", &wat::parse_str(MAP_THEN_LEAVE)?)?;
    for run in 0..5 {
        let exit = node.run_driver(&module, &[]).await?;
        assert!(matches!(exit, DriverExit::Exited(0)), "run {run}: {exit:?}");
    }
    let stats = wasmray_tests::settled_stats(&node).await;
    assert_eq!(
        stats.store.arena_used, 0,
        "every mapped object was freed: {stats:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_into_the_modules_initial_memory_copies_instead() -> anyhow::Result<()> {
    let module = r#"(module
        (import "wasmray" "put_bytes" (func $put_bytes (param i32 i32) (result i32)))
        (import "wasmray" "map_object" (func $map (param i32 i32 i32) (result i32)))
        (memory (export "memory") 80)
        (func (export "wasmray_abi_version") (result i32) i32.const 1)
        (func (export "_start")
            (memory.fill (i32.const 65536) (i32.const 0x5A) (i32.const 1048576))
            ;; Region inside the initial 80 pages: must be copied (status 1), never mapped.
            (if (i32.ne (call $map (call $put_bytes (i32.const 65536) (i32.const 1048576))
                                   (i32.const 2097152) (i32.const 1048576))
                        (i32.const 1))
                (then unreachable))
            (if (i32.ne (i32.load8_u (i32.const 3145727)) (i32.const 0x5A)) (then unreachable))))"#;
    let node = Node::start(test_config(1.0, Arc::new(Capture::default())))?;
    let module = node.load_module_bytes("copy-low.wasm", &wat::parse_str(module)?)?;
    let exit = node.run_driver(&module, &[]).await?;
    assert!(matches!(exit, DriverExit::Exited(0)), "{exit:?}");
    Ok(())
}
