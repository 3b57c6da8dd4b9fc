//! `Buffer`s end to end: zero-copy arrays as task arguments, return values and `put`/`get`;
//! the put-once example; the slot-reuse leak probe (DESIGN.md §4, hazard 1); and churn loops
//! that must leave the store where it started.

use std::sync::Arc;
use wasmray_node::{DriverExit, Node, NodeConfig};
use wasmray_tests::{Capture, guests, run_guest, test_config, value_after};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffers_travel_as_arguments_results_and_objects() -> anyhow::Result<()> {
    let run = run_guest(guests::BUFFERS, 2.0, &[]).await?;
    assert_eq!(
        run.stdout_ok(),
        [
            "buffer arg: 499999500000",
            "buffer return: 300000 0 299999",
            "buffer put/get: 200000 true",
            "small buffer: 1 -2 3",
            "empty buffer: 0",
            "cow private: 7777777 12345",
        ]
    );
    let stats = run.settled_stats().await;
    assert_eq!(
        (stats.store.arena_used, stats.store.objects),
        (0, 0),
        "{stats:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_once_passes_one_array_to_ten_tasks_by_ref() -> anyhow::Result<()> {
    let run = run_guest(guests::PUT_ONCE, 2.0, &["1000"]).await?;
    let lines = run.stdout_ok();
    assert_eq!(lines[0], "array: 1000x1000 f64 (8 MB)");
    assert_eq!(value_after(&lines, "by value: sum = "), Some("499500000"));
    assert_eq!(value_after(&lines, "put once: sum = "), Some("499500000"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_in_a_reused_slot_never_sees_the_last_tenants_mapped_object() -> anyhow::Result<()> {
    // Two instance slots: the driver's and one for tasks, so the reader reuses the writer's.
    let output = Arc::new(Capture::default());
    let config = NodeConfig {
        max_instances: 2,
        ..test_config(2.0, Arc::clone(&output))
    };
    let node = Node::start(config)?;
    let module = node.load_module(guests::BUFFERS.as_ref())?;
    let exit = node.run_driver(&module, &["leak-probe".to_owned()]).await?;
    assert!(
        matches!(exit, DriverExit::Exited(0)),
        "{exit:?}\n{}",
        output.all_text()
    );
    let lines = output.driver_stdout();
    assert!(
        lines.iter().any(|l| l.starts_with("mapped at ")),
        "{lines:?}"
    );
    assert_eq!(
        value_after(&lines, "leak probe: "),
        Some("0 non-zero bytes")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_1mib_buffers_come_and_go_in_bounded_memory() -> anyhow::Result<()> {
    // 10 GiB passes through a 256 MiB store: only freeing keeps it going.
    let run = run_guest(guests::BUFFERS, 2.0, &["churn-big"]).await?;
    assert_eq!(
        run.stdout_ok(),
        ["10000 buffers of 1 MiB created and dropped"]
    );
    let stats = run.settled_stats().await;
    assert_eq!(
        (
            stats.store.arena_used,
            stats.store.spilled,
            stats.store.objects
        ),
        (0, 0, 0),
        "{stats:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_small_objects_come_and_go_in_bounded_memory() -> anyhow::Result<()> {
    let run = run_guest(guests::BUFFERS, 2.0, &["churn-small"]).await?;
    assert_eq!(run.stdout_ok(), ["1000000 objects created and dropped"]);
    let stats = run.settled_stats().await;
    assert_eq!(
        (
            stats.sched.objects,
            stats.store.inline_used,
            stats.store.objects
        ),
        (0, 0, 0),
        "{stats:?}"
    );
    Ok(())
}
