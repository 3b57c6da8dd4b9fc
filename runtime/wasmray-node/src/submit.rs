//! What the control socket's job and module requests do on the node: start a submitted job's
//! driver, detached from the client that asked (it runs whether or not the client stays), and
//! make a module ready on every node of the cluster (`wasmray deploy`).
//!
//! The records and logs of submitted jobs are `submitted.rs`'s, the socket's protocol
//! `control.rs`'s, running a driver `node.rs`'s.

use crate::inner::NodeInner;
use crate::jobs::JobOptions;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use wasmray_core::{JobQuotas, NodeId};
use wasmray_wasm::{DirGrant, GuestModule};

/// A job as `wasmray submit` sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// The module's file name (what error messages and `job list` call it).
    pub module_name: String,
    pub module: Vec<u8>,
    /// Arguments after the program name.
    pub args: Vec<String>,
    pub quotas: JobQuotas,
    pub namespace: Option<String>,
    /// Host directories its guests may use: host path, guest path, writable.
    pub dirs: Vec<(PathBuf, String, bool)>,
}

/// A module as `wasmray deploy` sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    pub module_name: String,
    pub module: Vec<u8>,
}

/// What a deploy reports as it goes: one `Started`, one `Node` per node, then `Done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeployEvent {
    /// The module loaded here; `nodes` other nodes are being asked to make it ready.
    Started {
        module: String,
        hash: String,
        bytes: u64,
        nodes: u32,
    },
    /// One node has the module ready, or could not (`error`).
    Node { node: String, error: Option<String> },
    /// Every node answered.
    Done,
    /// The module does not load here: nothing was sent anywhere.
    Failed(String),
}

impl NodeInner {
    /// Starts a submitted job's driver and returns the job's ID once it has one. The driver
    /// then runs on its own; how it ends goes to the job's record.
    pub(crate) async fn submit(self: &Arc<Self>, request: SubmitRequest) -> Result<u32, String> {
        let module = self
            .host
            .load(&request.module_name, &request.module)
            .map_err(|e| e.to_string())?;
        drop(request.module);
        self.check_driver(&module).map_err(|e| e.to_string())?;
        let job = self.new_job().await.map_err(|e| e.to_string())?;
        let (log, stop) = self
            .submitted
            .begin(job, module.name(), &request.args)
            .map_err(|e| format!("cannot create the job's log: {e}"))?;
        let options = JobOptions {
            quotas: request.quotas,
            namespace: request.namespace,
            dirs: request
                .dirs
                .into_iter()
                .map(|(host, guest, writable)| DirGrant {
                    host,
                    guest,
                    writable,
                })
                .collect(),
        };
        self.spawn_submitted(job, module, request.args, options, log, stop);
        Ok(job.0)
    }

    /// Loads the module here, then has every other live node make it ready (fetched from
    /// this node, checked against its hash, compiled), reporting each answer to `events` as
    /// it comes.
    pub(crate) async fn deploy(
        self: &Arc<Self>,
        request: DeployRequest,
        events: tokio::sync::mpsc::Sender<DeployEvent>,
    ) {
        let module: Arc<GuestModule> = match self.host.load(&request.module_name, &request.module) {
            Ok(module) => module,
            Err(error) => {
                let _ = events.send(DeployEvent::Failed(error.to_string())).await;
                return;
            }
        };
        let peers: Vec<NodeId> = {
            let sched = self.lock_sched();
            sched
                .view()
                .nodes()
                .filter(|(id, view)| view.alive && *id != self.id)
                .map(|(id, _)| id)
                .collect()
        };
        let started = DeployEvent::Started {
            module: module.name().to_owned(),
            hash: module.id().to_string(),
            bytes: request.module.len() as u64,
            nodes: peers.len() as u32,
        };
        drop(request.module);
        if events.send(started).await.is_err() {
            return;
        }
        if let Some(net) = &self.net {
            let mut asks = tokio::task::JoinSet::new();
            for peer in peers {
                let net = net.clone();
                let id = module.id();
                asks.spawn(async move { (peer, net.deploy(peer, id).await) });
            }
            while let Some(answer) = asks.join_next().await {
                let event = match answer {
                    Ok((peer, result)) => DeployEvent::Node {
                        node: peer.to_string(),
                        error: result.err().map(|e| e.to_string()),
                    },
                    Err(error) => DeployEvent::Node {
                        node: "?".to_owned(),
                        error: Some(error.to_string()),
                    },
                };
                let _ = events.send(event).await;
            }
        }
        let _ = events.send(DeployEvent::Done).await;
    }
}
