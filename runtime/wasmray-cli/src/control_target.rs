//! Finding the node `wasmray status` and `wasmray memory` talk to: `--socket`, else the head
//! `wasmray start` started on this machine, else the newest node started on this machine
//! (`$TMPDIR/wasmray/latest-node`).

use clap::Args;
use std::future::Future;
use std::path::PathBuf;
use wasmray_node::{ControlError, latest_socket};

#[derive(Debug, Args)]
pub(crate) struct ControlArgs {
    /// The node's control socket [default: the newest node on this machine].
    #[arg(long)]
    socket: Option<PathBuf>,
}

/// Runs `query` against the chosen node's socket.
pub(crate) fn block_on_query<T, F, Fut>(args: &ControlArgs, query: F) -> anyhow::Result<T>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = Result<T, ControlError>>,
{
    let socket = socket(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(query(socket))?)
}

/// The chosen node's control socket.
pub(crate) fn socket(args: &ControlArgs) -> Result<PathBuf, ControlError> {
    Ok(match &args.socket {
        Some(socket) => socket.clone(),
        None => match crate::cluster_files::nodes()
            .into_iter()
            .find(|r| r.head && crate::cluster_files::alive(r.pid))
        {
            // The head started on this machine knows the whole cluster.
            Some(head) => head.socket,
            None => latest_socket(&std::env::temp_dir().join("wasmray"))?,
        },
    })
}
