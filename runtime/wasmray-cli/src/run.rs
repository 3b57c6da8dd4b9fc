//! `wasmray run app.wasm [[--] args]`: start an embedded single-node cluster, run the module's
//! `main` as the driver, and exit with its result.

use crate::job_args::JobArgs;
use crate::node_args::NodeArgs;
use crate::start::DriverJoinArgs;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use wasmray_node::Node;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The module to run (a wasm32-wasip1 binary built with the wasmray SDK).
    module: PathBuf,
    /// Arguments passed to the driver's `main`; put them after `--` when one starts with `-`.
    args: Vec<String>,
    #[command(flatten)]
    cluster: DriverJoinArgs,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    job: JobArgs,
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.node.config()?;
    let join = args.cluster.target()?;
    if join.is_some() && args.node.num_cpus.is_none() {
        config.num_cpus = 0.0;
    }
    let job = args.job.options(config.default_quotas)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wasmray-worker")
        .build()
        .context("cannot start the async runtime")?;
    let cluster = crate::start::cluster_config(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))?;
    let exit = runtime.block_on(async {
        let node = match &join {
            None => Node::start(config)?,
            Some(target) => {
                let node =
                    Node::join(config, cluster, target.address, target.pin, &target.token).await?;
                node.wait_for_peers().await;
                node
            }
        };
        if join.is_none()
            && let Err(error) = node.serve_control()
        {
            tracing::warn!(%error, "`wasmray status` will not reach this node");
        }
        let module = node.load_module(&args.module)?;
        let exit = node.run_job(&module, &args.args, job).await;
        node.shutdown();
        node.close_links().await;
        exit
    })?;
    // Tasks the driver left running die with the job, as in Ray.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(crate::exit_code_of(exit, "the driver"))
}
