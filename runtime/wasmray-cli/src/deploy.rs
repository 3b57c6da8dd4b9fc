//! `wasmray deploy app.wasm`: has every node of the cluster ready to run a module before any
//! task of it is placed there — each node fetches it from the node asked (the head on this
//! machine, by default), checks its hash and compiles it — with a progress bar.
//!
//! The pushing is the node's (`DeployEvent`s come back as nodes answer); this draws them.

use crate::control_target::{ControlArgs, block_on_query};
use crate::sizes::human_bytes;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use wasmray_node::{DeployEvent, DeployRequest, deploy_module};

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// The module to deploy (a wasm32-wasip1 binary built with the wasmray SDK).
    module: PathBuf,
    #[command(flatten)]
    control: ControlArgs,
}

pub(crate) fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let request = DeployRequest {
        module_name: crate::submit::module_name(&args.module),
        module: crate::submit::read_module(&args.module)?,
    };
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    block_on_query(&args.control, |socket| {
        let progress = &mut progress;
        async move { deploy_module(&socket, &request, |event| progress.event(event)).await }
    })?;
    progress.finish()
}

/// What has been heard so far, drawn as a bar on a terminal and as a line per node
/// elsewhere.
struct Progress {
    terminal: bool,
    module: String,
    nodes: u32,
    ready: u32,
    failures: Vec<(String, String)>,
    failed: Option<String>,
    done: bool,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            module: String::new(),
            nodes: 0,
            ready: 0,
            failures: Vec::new(),
            failed: None,
            done: false,
        }
    }

    fn event(&mut self, event: &DeployEvent) {
        match event {
            DeployEvent::Started {
                module,
                hash,
                bytes,
                nodes,
            } => {
                self.module = module.clone();
                self.nodes = *nodes;
                eprintln!(
                    "Deploying {module} ({}, sha256 {}) to {nodes} other node{}",
                    human_bytes(*bytes),
                    &hash[..hash.len().min(12)],
                    if *nodes == 1 { "" } else { "s" }
                );
            }
            DeployEvent::Node { node, error } => {
                match error {
                    None => self.ready += 1,
                    Some(error) => self.failures.push((node.clone(), error.clone())),
                }
                if !self.terminal {
                    match error {
                        None => eprintln!("  node {node}: ready"),
                        Some(error) => eprintln!("  node {node}: failed: {error}"),
                    }
                }
            }
            DeployEvent::Done => self.done = true,
            DeployEvent::Failed(error) => self.failed = Some(error.clone()),
        }
        let moved = matches!(
            event,
            DeployEvent::Started { .. } | DeployEvent::Node { .. }
        );
        if self.terminal && self.nodes > 0 && moved {
            let answered = self.ready + self.failures.len() as u32;
            let width = 30;
            let filled = (answered as usize * width) / self.nodes as usize;
            eprint!(
                "\r  [{}{}] {answered}/{} nodes",
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.nodes
            );
            if answered == self.nodes {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        }
    }

    fn finish(self) -> anyhow::Result<ExitCode> {
        if let Some(error) = self.failed {
            anyhow::bail!("{error}");
        }
        anyhow::ensure!(
            self.done,
            "the node stopped answering before the deploy finished"
        );
        for (node, error) in &self.failures {
            eprintln!(
                "error: node {node} could not make {} ready: {}",
                self.module,
                wasmray_node::terminal_safe(error)
            );
        }
        if !self.failures.is_empty() {
            anyhow::bail!(
                "{} of {} nodes do not have {} ready",
                self.failures.len(),
                self.nodes,
                self.module
            );
        }
        println!(
            "{} is ready on every node ({} besides the one asked).",
            self.module, self.nodes
        );
        Ok(ExitCode::SUCCESS)
    }
}
