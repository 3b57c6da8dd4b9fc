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
    let mut out = format!("Node {} (embedded, this machine)\n", report.node_id);
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
    }
}
