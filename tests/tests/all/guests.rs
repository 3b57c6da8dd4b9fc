//! Behaviour checked through the test guests: failures and limits, `max_calls`, refs inside
//! values and object lifetimes, output labels.

use wasmray_node::{DriverExit, Stream};
use wasmray_tests::{guests, run_guest, run_guest_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_become_errors_and_the_node_keeps_serving() -> anyhow::Result<()> {
    let run = run_guest(guests::FAILURES, 2.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(
        lines,
        [
            "infinite loop: DeadlineExceeded",
            "memory bomb: OutOfMemory",
            "deep recursion: Trap",
            "panic: Panic",
            "retried panic: Panic",
            "infeasible: Infeasible",
            "node still serving: 42",
        ]
    );
    let attempts = run
        .output
        .lines()
        .iter()
        .filter(|l| l.text == "flaky attempt")
        .count();
    assert_eq!(attempts, 3, "one run and two retries");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_calls_retires_instances_and_default_calls_reuse_one() -> anyhow::Result<()> {
    let run = run_guest(guests::MAX_CALLS, 2.0, &[]).await?;
    assert_eq!(
        run.stdout_ok(),
        ["max_calls=1: [1, 1, 1, 1, 1]", "reused: [1, 2, 3, 4, 5]"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_inside_values_work_and_everything_is_freed_afterwards() -> anyhow::Result<()> {
    let run = run_guest(guests::REFS, 2.0, &[]).await?;
    assert_eq!(
        run.stdout_ok(),
        [
            "task returned 10 refs, sum = 45",
            "task summed 10 refs passed inside a Vec = 45",
            "struct field ref: numbers = 4950",
            "nested depth 1000 ok",
            "wait on 200 refs: past the head [100], in the head [3], across it [3, 70], \
             198 pending in order",
            "100000 puts created and dropped",
        ]
    );
    let stats = run.settled_stats().await;
    assert_eq!(
        stats.sched.objects, 0,
        "no object outlives its references: {stats:?}"
    );
    assert_eq!(stats.store.objects, 0, "the store holds nothing: {stats:?}");
    assert_eq!((stats.store.inline_used, stats.store.arena_used), (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_output_is_labelled_with_its_task_and_driver_output_is_not() -> anyhow::Result<()> {
    let run = run_guest(guests::HELLO, 1.0, &[]).await?;
    assert_eq!(run.stdout_ok(), ["hello from wasmray"]);
    let task_line = run
        .output
        .lines()
        .into_iter()
        .find(|l| l.text == "hello from task")
        .expect("task printed");
    assert_eq!(task_line.stream, Stream::Stdout);
    let label = task_line.label.expect("task lines are labelled");
    assert!(label.starts_with("hello task="), "{label}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_returning_an_error_exits_non_zero_with_its_message() -> anyhow::Result<()> {
    let run = run_guest(guests::DRIVER_ERROR, 1.0, &[]).await?;
    assert!(matches!(run.exit, DriverExit::Exited(1)), "{:?}", run.exit);
    let stderr: Vec<_> = run
        .output
        .lines()
        .into_iter()
        .filter(|l| l.stream == Stream::Stderr)
        .map(|l| l.text)
        .collect();
    assert_eq!(stderr, ["Error: \"bad configuration\""]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_collections_derived_types_and_large_puts_cross_by_value() -> anyhow::Result<()> {
    let run = run_guest(guests::VALUES, 2.0, &[]).await?;
    assert_eq!(
        run.stdout_ok(),
        [
            r#"map: {"key1": ["value"], "key2": ["a", "b"]}"#,
            "set: [1, 2, 3]",
            r#"nested: Outer { name: "outer", inner: Inner { pair: (7, "seven"), maybe: Some(2.5) }, shape: Circle { radius: 1.5 }, tags: {"x"} }"#,
            "enum variants: [Point, Circle { radius: 2.0 }, Square(3.0)]",
            "put f64 x 4194304: equal",
            "put u8 x 1048576: equal",
            "put i8, bool, f32 x 300000: equal",
            "put with refs inside: 300000 bytes, refs 5 and 6",
            "put of many small parts: 20000 strings, equal",
            r#"wait for more refs than given: Panic "wasmray::wait: num_returns (3) is larger than the number of refs given (2)""#,
        ]
    );
    let stats = run.settled_stats().await;
    assert_eq!(
        (stats.store.objects, stats.store.arena_used),
        (0, 0),
        "every streamed put was freed: {stats:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_context_gpu_ids_get_timeout_error_info_and_cancel() -> anyhow::Result<()> {
    let run = run_guest_with(guests::API, 2.0, |config| config.num_gpus = 2.0, &[]).await?;
    assert_eq!(
        run.stdout_ok(),
        [
            "is_initialized: true",
            "context: driver has no actor, a task shares its job and node and has its own task ID",
            "actor context: the same actor ID in two calls, another actor's differs",
            "gpu ids: two 1-GPU tasks at once hold [[0], [1]]; two half-GPU tasks share [[0], [0]]; a 1-GPU actor holds [0]; none asked: []",
            "get_timeout: GetTimeout after 50ms, then the value 7",
            r#"error_info: [("fails_first", Panic, "first"), ("fails_second", Panic, "second")]"#,
            "cancel queued: Cancelled, true",
            "cancel running (sleeping): Cancelled",
            "cancel running (computing): Cancelled",
            "cancel recursive: parent Cancelled, child Cancelled",
            "cancel finished: false",
        ]
    );
    Ok(())
}

/// The refs counted inside a value the host then did not take are given back on every path:
/// a named creation refused as taken, a submission trapped on a later bad argument, a task
/// that sets its results twice. Each run must leave the object table and the store empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_counted_in_values_that_are_refused_are_given_back() -> anyhow::Result<()> {
    for (mode, expect) in [
        ("name-taken", "first holds 2; second: InvalidTask"),
        ("bad-arg", "submitting with a forged handle"),
        ("return-twice", "returns_twice: Trap"),
        ("returns-limit", "submitting with num_returns = u32::MAX"),
    ] {
        let run = run_guest(guests::LEAKS, 2.0, &[mode]).await?;
        let stdout = run.output.driver_stdout();
        assert_eq!(stdout, [expect], "{mode}: {:?}", run.exit);
        match mode {
            "bad-arg" | "returns-limit" => {
                let DriverExit::Failed(error) = &run.exit else {
                    panic!("{mode}: the host must trap the driver: {:?}", run.exit);
                };
                assert!(error.message.contains("submit_task"), "{mode}: {error}");
                if mode == "returns-limit" {
                    assert!(
                        error
                            .message
                            .contains("num_returns 4294967295 is above the limit of 10000"),
                        "{mode}: {error}"
                    );
                }
            }
            _ => assert!(
                matches!(run.exit, DriverExit::Exited(0)),
                "{mode}: {:?}",
                run.exit
            ),
        }
        let stats = run.settled_stats().await;
        assert_eq!(stats.sched.objects, 0, "{mode}: objects left: {stats:?}");
        assert_eq!(stats.store.objects, 0, "{mode}: the store holds: {stats:?}");
    }
    Ok(())
}
