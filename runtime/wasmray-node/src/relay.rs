//! Guest output of a job whose driver runs on another node, handed on line by line to the
//! driver's node, so the driver's terminal (or a submitted job's log) shows what its tasks
//! and actors printed anywhere in the cluster, as Ray's `log_to_driver` does.
//!
//! Each line's label gains `node=<id>` (the first 8 hex digits of the node it was printed
//! on). What sending means is given to the relay, so this file does no I/O; the job's output
//! rate is applied before lines get here, and a line that does not arrive is not resent.

use crate::wire_codec::OutputLine;
use wasmray_core::{JobId, NodeId};
use wasmray_wasm::{OutputSink, Stream};

/// Hands one line to a node (`send(to, line)`).
pub(crate) type SendLine = Box<dyn Fn(NodeId, &OutputLine) + Send + Sync>;

/// Where one job's output on this node goes: to its driver's node.
pub(crate) struct OutputRelay {
    job: JobId,
    /// This node, as labels show it.
    node: String,
    driver: NodeId,
    send: SendLine,
}

impl OutputRelay {
    /// Relays `job`'s lines printed on `me` to `driver`.
    pub(crate) fn new(job: JobId, me: NodeId, driver: NodeId, send: SendLine) -> Self {
        let mut node = me.to_string();
        node.truncate(8);
        Self {
            job,
            node,
            driver,
            send,
        }
    }
}

impl OutputSink for OutputRelay {
    fn line(&self, label: Option<&str>, stream: Stream, line: &str) {
        let line = OutputLine {
            job: self.job,
            label: Some(match label {
                Some(label) => format!("{label} node={}", self.node),
                None => format!("node={}", self.node),
            }),
            stderr: stream == Stream::Stderr,
            line: line.to_owned(),
        };
        (self.send)(self.driver, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn lines_go_to_the_driver_in_order_labelled_with_their_node() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&sent);
        let send: SendLine = Box::new(move |to, line| {
            let label = line.label.clone().unwrap_or_default();
            let text = format!("({label}) {} {}", line.line, line.stderr);
            record.lock().unwrap().push((to, text));
        });
        let relay = OutputRelay::new(JobId(4), NodeId(0xabcdef0123456789), NodeId(9), send);
        relay.line(Some("f task=1"), Stream::Stdout, "one");
        relay.line(Some("f task=1"), Stream::Stderr, "two");
        relay.line(None, Stream::Stdout, "three");
        assert_eq!(
            *sent.lock().unwrap(),
            vec![
                (NodeId(9), "(f task=1 node=abcdef01) one false".to_owned()),
                (NodeId(9), "(f task=1 node=abcdef01) two true".to_owned()),
                (NodeId(9), "(node=abcdef01) three false".to_owned()),
            ]
        );
    }
}
