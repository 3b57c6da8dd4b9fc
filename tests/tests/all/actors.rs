//! Actors end to end: the actor examples, the `actors` test guest's cases (failures, restarts,
//! kill, names, handles as values, concurrency), detached actors across two drivers, and a
//! node holding 10,000 live actors.

use std::sync::Arc;
use wasmray_node::{DriverExit, Node};
use wasmray_tests::{Capture, guests, run_guest, test_config, value_after};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_counts_through_passed_handles() -> anyhow::Result<()> {
    let run = run_guest(guests::COUNTER, 2.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(
        lines[..2],
        [
            "value after two incs = 2",
            "value after 4 tasks x 250 = 1000"
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_actor_delivers_every_message_once_in_order() -> anyhow::Result<()> {
    let run = run_guest(guests::MESSAGE_ACTOR, 4.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(
        lines[0],
        "received 300 messages, each exactly once, in order per worker"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_pool_spreads_1000_items_over_4_actors() -> anyhow::Result<()> {
    let run = run_guest(guests::ACTOR_POOL, 2.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(
        lines[..2],
        [
            "processed 1000 items on 4 actors, sum = 332833500",
            "every actor took part"
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_semantics_hold_case_by_case() -> anyhow::Result<()> {
    let run = run_guest(guests::ACTORS, 2.0, &[]).await?;
    assert_eq!(
        run.stdout_ok(),
        [
            "method panic keeps state: 7 -> Panic -> 7",
            "constructor panic: ActorDied",
            "kill: ActorDied",
            "pending call after kill: ActorDied",
            r#"blocked in get, wait and sleep, then killed: 3 of 3 ended at once ["ActorDied", "ActorDied", "ActorDied"]"#,
            "restart after out-of-memory: OutOfMemory then 11",
            "named: 6",
            "name taken: InvalidTask",
            "missing name: InvalidTask",
            "wrong class: InvalidTask",
            "class defaults: found in its namespace after its handles went, at 2; a second: InvalidTask",
            "handle in task: 1",
            "handle in actor state: 2",
            "max_concurrency=2: flag seen",
            "max_concurrency=2 with &mut self: InvalidTask",
            "num_returns=2: 6 and value 6",
            r#"per-call num_returns::<2>(): 6 and value 6; without: (6, "value 6")"#,
            "method options: retried to attempt 3, too few retries Panic, none Panic",
        ]
    );
    let stats = run.node.stats();
    assert_eq!(
        stats.sched.actors, 0,
        "the job's actors died with its driver: {stats:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_survives_thousands_of_panicking_calls() -> anyhow::Result<()> {
    let run = run_guest(guests::ACTORS, 2.0, &["many-panics"]).await?;
    assert_eq!(run.stdout_ok(), ["after 10000 panics: 7"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_actor_outlives_the_driver_that_made_it() -> anyhow::Result<()> {
    let output = Arc::new(Capture::default());
    let node = Node::start(test_config(2.0, Arc::clone(&output)))?;
    let module = node.load_module(guests::ACTORS.as_ref())?;
    // Jobs see each other's named actors only in a shared namespace they both joined.
    let shared = wasmray_node::JobOptions {
        namespace: Some("team".to_owned()),
        ..Default::default()
    };
    for mode in ["detached-create", "detached-lookup"] {
        let exit = node
            .run_job(&module, &[mode.to_owned()], shared.clone())
            .await?;
        assert!(
            matches!(exit, DriverExit::Exited(0)),
            "{mode}: {exit:?}\n{}",
            output.all_text()
        );
    }
    assert_eq!(
        output.driver_stdout(),
        ["detached created", "detached value = 2"]
    );
    assert_eq!(
        node.stats().sched.actors,
        1,
        "still alive after both drivers ended"
    );
    Ok(())
}

/// In a process of its own (the CLI): 10,000 instances take a good part of the process's
/// `vm.max_map_count` (65,530 by default), which tests sharing this process would also need.
#[test]
fn a_node_holds_10000_live_actors() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
        .args(["run", guests::ACTOR_SCALE, "--max-instances", "10100"])
        .args([
            "--max-task-memory",
            "64MiB",
            "--max-actors",
            "10000",
            "--",
            "10000",
        ])
        .env("WASMRAY_CACHE_DIR", wasmray_tests::test_cache_dir())
        .output()
        .expect("run wasmray");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(
        value_after(&lines, "all 10000 answered, sum = "),
        Some("49995000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_can_neither_find_nor_squat_another_jobs_actor_names() -> anyhow::Result<()> {
    let output = Arc::new(Capture::default());
    let node = Node::start(test_config(2.0, Arc::clone(&output)))?;
    let module = node.load_module(guests::ACTORS.as_ref())?;
    // Job 1 names a detached actor `keeper` in namespace `tests`.
    let exit = node
        .run_driver(&module, &["detached-create".to_owned()])
        .await?;
    assert!(matches!(exit, DriverExit::Exited(0)), "{exit:?}");
    // Job 2 looks for it by that name and namespace: not there for it.
    let exit = node
        .run_driver(&module, &["detached-lookup".to_owned()])
        .await?;
    // `main` returned the lookup's error: exit 1, the error printed.
    assert!(matches!(exit, DriverExit::Exited(1)), "{exit:?}");
    assert!(
        output
            .all_text()
            .contains("no live actor named `keeper` in namespace `tests`"),
        "{}",
        output.all_text()
    );
    // Job 3 takes the same name for its own actor: job 1's claim does not reach it.
    let exit = node
        .run_driver(&module, &["detached-create".to_owned()])
        .await?;
    assert!(
        matches!(exit, DriverExit::Exited(0)),
        "{exit:?}\n{}",
        output.all_text()
    );
    assert_eq!(
        node.stats().sched.actors,
        2,
        "two detached actors, one per job"
    );
    Ok(())
}
