//! `wasmray submit app.wasm [[--] args]`: runs a module's `main` as a job on a running node of
//! this machine (the head `wasmray start` started, by default), detached: the job goes on
//! when this command returns. `--follow` stays and prints its output until it ends.
//!
//! What the job does once started is the node's; `wasmray job` (`job.rs`) follows it.

use crate::control_target::{ControlArgs, block_on_query};
use crate::job_args::JobArgs;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use wasmray_node::{NodeConfig, SubmitRequest, submit_job};

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The module to run (a wasm32-wasip1 binary built with the wasmray SDK).
    module: PathBuf,
    /// Arguments passed to the driver's `main`; put them after `--` when one starts with `-`.
    args: Vec<String>,
    /// Stay, print the job's output as it comes, and exit as the job ends (0 when it
    /// succeeded).
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    control: ControlArgs,
    #[command(flatten)]
    job: JobArgs,
}

pub(crate) fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let module = read_module(&args.module)?;
    // The node is on this machine, so its default quotas are the ones computed here.
    let options = args.job.options(NodeConfig::default().default_quotas)?;
    let request = SubmitRequest {
        module_name: module_name(&args.module),
        module,
        args: args.args.clone(),
        quotas: options.quotas,
        namespace: options.namespace,
        dirs: options
            .dirs
            .into_iter()
            .map(|d| {
                let host = std::fs::canonicalize(&d.host).unwrap_or(d.host);
                (host, d.guest, d.writable)
            })
            .collect(),
    };
    let (socket, answer) = block_on_query(&args.control, |socket| async move {
        let answer = submit_job(&socket, &request).await?;
        Ok((socket, answer))
    })?;
    let job = answer.map_err(|reason| anyhow::anyhow!("the job did not start: {reason}"))?;
    if args.follow {
        eprintln!("Submitted job {job}; following its output (Ctrl-C leaves it running).");
        return crate::job::follow(&socket, job);
    }
    println!("Submitted job {job}.");
    println!("  Its output:  wasmray job logs {job} --follow");
    println!("  Its state:   wasmray job status {job}");
    println!("  Stop it:     wasmray job stop {job}");
    Ok(ExitCode::SUCCESS)
}

/// A module file's bytes, refused if it is larger than a node takes.
pub(crate) fn read_module(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?
        .len();
    anyhow::ensure!(
        len <= wasmray_net::wire::MAX_MODULE,
        "`{}` is {len} bytes; a module may be at most {} bytes",
        path.display(),
        wasmray_net::wire::MAX_MODULE
    );
    std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// What a module is called in listings: its file name.
pub(crate) fn module_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
