//! `wasmray memory`: the running node's objects, as `ray memory` lists them: size, state, where
//! the bytes are, and what references each one.

use crate::control_target::{ControlArgs, block_on_query};
use crate::sizes::human_bytes;
use std::process::ExitCode;
use wasmray_node::{ObjectReport, query_memory};

pub(crate) fn memory(args: ControlArgs) -> anyhow::Result<ExitCode> {
    let objects = block_on_query(&args, |socket| async move { query_memory(&socket).await })?;
    print!("{}", wasmray_node::terminal_safe_lines(&render(&objects)));
    Ok(ExitCode::SUCCESS)
}

fn render(objects: &[ObjectReport]) -> String {
    let mut out = format!(
        "{:<42} {:>10} {:<8} {:<8} {:>6} {:>9} {:>10}\n",
        "OBJECT ID", "SIZE", "STATE", "WHERE", "LOCAL", "TASK ARGS", "IN OBJECTS"
    );
    let mut total = 0;
    for object in objects {
        total += object.size.unwrap_or(0);
        let size = object.size.map_or_else(|| "-".to_owned(), human_bytes);
        out.push_str(&format!(
            "{:<42} {:>10} {:<8} {:<8} {:>6} {:>9} {:>10}\n",
            object.id,
            size,
            object.state,
            object.location,
            object.local_refs,
            object.task_arg_refs,
            object.contained_refs
        ));
    }
    out.push_str(&format!(
        "{} objects, {} in all\n",
        objects.len(),
        human_bytes(total)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_is_a_row_and_the_total_follows() {
        let objects = [ObjectReport {
            id: "0123".into(),
            state: "ready".into(),
            size: Some(2 << 20),
            location: "spilled".into(),
            local_refs: 1,
            task_arg_refs: 2,
            contained_refs: 0,
        }];
        let text = render(&objects);
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("0123 "), "{row}");
        assert!(
            row.contains(" 2.0 MiB ready    spilled       1         2          0"),
            "{row}"
        );
        assert!(text.ends_with("1 objects, 2.0 MiB in all\n"), "{text}");
    }
}
