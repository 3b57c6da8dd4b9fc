//! `wasmray stop`: stops every node `wasmray start` started on this machine — SIGTERM, so each
//! drains and leaves its cluster cleanly, the nodes before the head — then SIGKILL for any
//! still running after `--grace` seconds.

use crate::cluster_files;
use clap::Args;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Seconds to wait for the nodes to stop before killing them.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
}

pub(crate) fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.grace.is_finite() && args.grace >= 0.0,
        "--grace must be a number of seconds >= 0"
    );
    let records = cluster_files::nodes();
    let running: Vec<_> = records
        .iter()
        .filter(|r| cluster_files::alive(r.pid))
        .collect();
    // Records of nodes that died without cleaning up are just removed.
    for record in records.iter().filter(|r| !cluster_files::alive(r.pid)) {
        cluster_files::remove_node(record.pid);
        cluster_files::remove_head(record.pid);
    }
    if running.is_empty() {
        println!("No wasmray node is running on this machine.");
        return Ok(ExitCode::SUCCESS);
    }
    // Worker nodes first, and the head once they are gone: a stopping node drains, which
    // asks the head, and the head should not outlive them only to declare them dead.
    let mut order = running.clone();
    order.sort_by_key(|r| r.head);
    let deadline = Instant::now() + Duration::from_secs_f64(args.grace);
    let wait = |group: &[&cluster_files::NodeRecord]| {
        while Instant::now() < deadline && group.iter().any(|r| cluster_files::alive(r.pid)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (heads, workers): (Vec<&cluster_files::NodeRecord>, Vec<_>) =
        order.iter().copied().partition(|r| r.head);
    for record in &workers {
        signal(record.pid, libc::SIGTERM);
    }
    wait(&workers);
    for record in &heads {
        signal(record.pid, libc::SIGTERM);
    }
    wait(&heads);
    let mut killed = 0;
    for record in &order {
        if cluster_files::alive(record.pid) {
            signal(record.pid, libc::SIGKILL);
            killed += 1;
        }
        cluster_files::remove_node(record.pid);
        cluster_files::remove_head(record.pid);
    }
    let stopped = order.len() - killed;
    println!(
        "Stopped {stopped} wasmray node{} on this machine{}.",
        if order.len() == 1 { "" } else { "s" },
        if killed > 0 {
            format!(
                " ({killed} did not stop within {}s and were killed)",
                args.grace
            )
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: sending a signal to a process ID; no memory is involved.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}
