//! `wasmray drain NODE`: asks the cluster to drain a node (Ray's `ray drain-node`) — no new
//! work goes there, what runs finishes, the copies it keeps for other owners are re-homed,
//! and it leaves — then waits, showing what it waits for, until the head lists it as gone.
//! It does not stop the node's process: a `wasmray start` node exits by itself once drained.

use crate::control_target::{ControlArgs, socket};
use anyhow::{Context, bail};
use clap::Args;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use wasmray_node::{MemberReport, drain_node, query_status};

#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    /// The node's ID as `wasmray status` shows it, or a prefix of it only it has.
    node: String,
    /// Return once the drain began instead of waiting until the node left.
    #[arg(long)]
    no_wait: bool,
    /// Seconds to wait for the node to leave before giving up (exit code 1).
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    timeout: f64,
    #[command(flatten)]
    control: ControlArgs,
}

pub(crate) fn drain(args: DrainArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.timeout.is_finite() && args.timeout > 0.0 && args.timeout < 1e9,
        "--timeout must be a number of seconds > 0"
    );
    let socket = socket(&args.control)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let report = query_status(&socket).await?;
        let member = find(&report.cluster, &args.node)?;
        let id = u64::from_str_radix(&member.node_id, 16)
            .with_context(|| format!("node ID `{}` is not hexadecimal", member.node_id))?;
        if member.is_head {
            bail!("node {} is the head: it cannot be drained", member.node_id);
        }
        if !drain_node(&socket, id).await? {
            bail!(
                "node {} cannot be drained: it is {}",
                member.node_id,
                member.state
            );
        }
        println!(
            "Draining node {}: no new work goes there; it leaves once what runs is done.",
            member.node_id
        );
        if args.no_wait {
            return Ok(ExitCode::SUCCESS);
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(args.timeout);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let report = query_status(&socket).await?;
            let state = report
                .cluster
                .iter()
                .find(|m| m.node_id == member.node_id)
                .map_or("forgotten", |m| m.state.as_str());
            match state {
                "draining" | "alive" if Instant::now() < deadline => continue,
                "draining" | "alive" => {
                    eprintln!(
                        "node {} is still draining after {:.0} s",
                        member.node_id, args.timeout
                    );
                    return Ok(ExitCode::from(1));
                }
                "left" | "forgotten" => {
                    println!(
                        "Node {} drained and left the cluster ({:.1} s).",
                        member.node_id,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                other => {
                    eprintln!("node {} is {other}: it did not drain", member.node_id);
                    return Ok(ExitCode::from(1));
                }
            }
        }
    })
}

/// The member whose ID is `wanted` or starts with it (only one may).
fn find<'a>(members: &'a [MemberReport], wanted: &str) -> anyhow::Result<&'a MemberReport> {
    let wanted = wanted.trim().to_ascii_lowercase();
    if wanted.is_empty() {
        bail!("give a node ID (as `wasmray status` shows them)");
    }
    let matching: Vec<&MemberReport> = members
        .iter()
        .filter(|m| m.node_id.starts_with(&wanted))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => bail!("no node of the cluster has an ID starting with `{wanted}`"),
        many => bail!(
            "`{wanted}` is the start of {} node IDs: give more of it",
            many.len()
        ),
    }
}
