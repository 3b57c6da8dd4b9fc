//! Every example under `examples/`, run on an embedded node, its output checked.

use wasmray_tests::{guests, run_guest, value_after};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_tours_the_ray_basics() -> anyhow::Result<()> {
    let run = run_guest(guests::QUICKSTART, 2.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(lines, wasmray_tests::quickstart_output(1, 2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_reduce_gives_the_same_sum_both_ways() -> anyhow::Result<()> {
    // Sleeping tasks hold logical CPUs only, so 8 of them let the tree run level by level.
    let run = run_guest(guests::TREE_REDUCE, 8.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(value_after(&lines, "linear: sum = "), Some("36"));
    assert_eq!(value_after(&lines, "tree: sum = "), Some("36"));
    for label in ["linear took ", "tree took "] {
        let seconds = value_after(&lines, label).and_then(|s| s.strip_suffix('s'));
        assert!(
            seconds.is_some_and(|s| s.parse::<f64>().is_ok()),
            "{label}: {lines:?}"
        );
    }
    Ok(())
}

/// Entry `(i, j)` of matrix `seed`, as `examples/matmul` defines it.
fn entry(seed: u64, i: u64, j: u64) -> f64 {
    ((31 * seed + 17 * i + 7 * j) % 11) as f64 / 4.0 - 1.25
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matmul_checksum_matches_a_native_computation() -> anyhow::Result<()> {
    const N: u64 = 500;
    let a: Vec<f64> = (0..N * N).map(|x| entry(1, x / N, x % N)).collect();
    let b: Vec<f64> = (0..N * N).map(|x| entry(2, x / N, x % N)).collect();
    let mut checksum = 0.0;
    for i in 0..N as usize {
        for k in 0..N as usize {
            let a_ik = a[i * N as usize + k];
            checksum += b[k * N as usize..(k + 1) * N as usize]
                .iter()
                .map(|b_kj| a_ik * b_kj)
                .sum::<f64>();
        }
    }
    let run = run_guest(guests::MATMUL, 2.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(lines[0], "matrices: 500x500");
    assert_eq!(
        value_after(&lines, "checksum = "),
        Some(format!("{checksum:.6}").as_str())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_totals_agree_in_either_order() -> anyhow::Result<()> {
    let run = run_guest(guests::PIPELINE, 4.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(value_after(&lines, "all at once: total = "), Some("140"));
    assert_eq!(
        value_after(&lines, "in completion order: total = "),
        Some("140")
    );
    assert!(value_after(&lines, "in completion order took ").is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_runs_100k_tiny_tasks_both_ways() -> anyhow::Result<()> {
    let run = run_guest(guests::BATCHING, 2.0, &[]).await?;
    let lines = run.stdout_ok();
    assert_eq!(
        value_after(&lines, "one by one: total = "),
        Some("9999900000")
    );
    assert_eq!(value_after(&lines, "batched: total = "), Some("9999900000"));
    let stats = run.settled_stats().await;
    assert_eq!(
        stats.sched.objects, 0,
        "every result was freed once the driver let go of it"
    );
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn sleeping_guests_never_block_the_only_host_thread() -> anyhow::Result<()> {
    // One host thread: if a guest's sleep blocked it, the driver's `wait` with a 1 s timeout
    // could not return until the 2 s sleepers woke, and would see them ready.
    let run = run_guest(guests::QUICKSTART, 4.0, &[]).await?;
    let lines = run.stdout_ok();
    assert!(
        lines.contains(&"wait(num_returns = 3, timeout = 1s): 2 ready, 2 pending".to_owned()),
        "{lines:?}"
    );
    Ok(())
}
