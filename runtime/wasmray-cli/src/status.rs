//! `wasmray status`: what the running node holds — resources, tasks, actors, object store.

use crate::control_target::{ControlArgs, block_on_query};
use crate::sizes::human_bytes;
use std::process::ExitCode;
use wasmray_node::{StatusReport, query_status};

pub(crate) fn status(args: ControlArgs) -> anyhow::Result<ExitCode> {
    let report = block_on_query(&args, |socket| async move { query_status(&socket).await })?;
    print!("{}", wasmray_node::terminal_safe_lines(&render(&report)));
    Ok(ExitCode::SUCCESS)
}

fn render(report: &StatusReport) -> String {
    let in_cluster = report.cluster.iter().any(|m| m.address != "embedded");
    let mut out = if in_cluster {
        render_cluster(report)
    } else {
        String::new()
    };
    let role = if in_cluster {
        "this machine's node"
    } else {
        "embedded, this machine"
    };
    out.push_str(&format!("Node {} ({role})\n", report.node_id));
    out.push_str("Resources (available / total)\n");
    for (name, total) in &report.resources_total {
        let available = report
            .resources_available
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, q)| *q);
        out.push_str(&format!("  {name:<12} {available} / {total}\n"));
    }
    out.push_str(&format!(
        "Tasks: {} running, {} blocked in get/wait, {} ready, {} waiting for arguments\n",
        report.tasks_running, report.tasks_blocked, report.tasks_ready, report.tasks_waiting
    ));
    out.push_str(&format!("Actors: {} alive\n", report.actors));
    let used = report.store_arena_used + report.store_inline_used;
    out.push_str(&format!(
        "Object store: {} used of {} ({} in shared memory, {} inline), {} spilled to disk, {} objects\n",
        human_bytes(used),
        human_bytes(report.store_capacity),
        human_bytes(report.store_arena_used),
        human_bytes(report.store_inline_used),
        human_bytes(report.store_spilled),
        report.objects
    ));
    out.push_str(&format!(
        "Held besides: {} objects in the store, {} tasks leased out, {} messages unacknowledged, \
         {} leases queued, {} actor records, {} actor instances\n",
        report.store_objects,
        report.leased_out,
        report.unacked,
        report.queued_leases,
        report.actor_entries,
        report.actor_hosts
    ));
    out
}

/// A quantity as a short number: whole numbers without decimals.
fn quantity(q: f64) -> String {
    if q.fract() == 0.0 {
        format!("{q}")
    } else {
        format!("{q:.2}")
    }
}

/// The cluster's nodes, one line each, and its totals.
fn render_cluster(report: &StatusReport) -> String {
    let alive = report.cluster.iter().filter(|m| m.alive).count();
    let mut out = format!(
        "Cluster: {} nodes, {alive} alive\n  {:<25} {:<22} {:<6} {:<28} {}\n",
        report.cluster.len(),
        "NODE",
        "ADDRESS",
        "STATE",
        "RESOURCES (available/total)",
        "OBJECT STORE"
    );
    let mut total = std::collections::BTreeMap::<String, (f64, f64)>::new();
    let (mut store_used, mut store_capacity) = (0, 0);
    for member in &report.cluster {
        let resources: Vec<String> = member
            .resources_total
            .iter()
            .map(|(name, t)| {
                let a = member
                    .resources_available
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0.0, |(_, q)| *q);
                if member.alive {
                    let entry = total.entry(name.clone()).or_default();
                    entry.0 += a;
                    entry.1 += t;
                }
                format!("{name} {}/{}", quantity(a), quantity(*t))
            })
            .collect();
        if member.alive {
            store_used += member.store_used;
            store_capacity += member.store_capacity;
        }
        let head = if member.is_head { " (head)" } else { "" };
        out.push_str(&format!(
            "  {:<25} {:<22} {:<6} {:<28} {} / {}\n",
            format!("{}{head}", member.node_id),
            member.address,
            member.state,
            if resources.is_empty() {
                "-".to_owned()
            } else {
                resources.join(", ")
            },
            human_bytes(member.store_used),
            human_bytes(member.store_capacity),
        ));
    }
    let totals: Vec<String> = total
        .iter()
        .map(|(name, (a, t))| format!("{name} {}/{}", quantity(*a), quantity(*t)))
        .collect();
    out.push_str(&format!(
        "  total: {}; object store {} / {}\n",
        if totals.is_empty() {
            "-".to_owned()
        } else {
            totals.join(", ")
        },
        human_bytes(store_used),
        human_bytes(store_capacity)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_names_every_resource_and_the_store_usage() {
        let report = StatusReport {
            node_id: "00ab".into(),
            resources_total: vec![("CPU".into(), 2.0), ("GPU".into(), 1.0)],
            resources_available: vec![("CPU".into(), 1.5)],
            tasks_waiting: 1,
            tasks_ready: 2,
            tasks_running: 3,
            tasks_blocked: 4,
            actors: 5,
            objects: 6,
            store_capacity: 1 << 30,
            store_arena_used: 3 << 20,
            store_inline_used: 1 << 20,
            store_spilled: 0,
            store_objects: 7,
            leased_out: 8,
            unacked: 9,
            queued_leases: 10,
            actor_entries: 11,
            actor_hosts: 12,
            cluster: Vec::new(),
        };
        let text = render(&report);
        assert!(text.contains("  CPU          1.5 / 2\n"), "{text}");
        assert!(text.contains("  GPU          0 / 1\n"), "{text}");
        assert!(
            text.contains("Tasks: 3 running, 4 blocked in get/wait, 2 ready, 1 waiting"),
            "{text}"
        );
        assert!(
            text.contains("Object store: 4.0 MiB used of 1.0 GiB"),
            "{text}"
        );
        assert!(
            text.contains(
                "Held besides: 7 objects in the store, 8 tasks leased out, 9 messages \
                 unacknowledged, 10 leases queued, 11 actor records, 12 actor instances"
            ),
            "{text}"
        );
    }
}
