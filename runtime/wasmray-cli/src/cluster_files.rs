//! What `wasmray start` leaves on this machine for `stop`, `status` and `run --address` to
//! find: one record per node started here, and the head's join details.
//!
//! Everything lives in `$TMPDIR/wasmray/cluster/`: `nodes/<pid>.json` for each node (its
//! process, ID, role, address and control socket), and `head.json` — readable only by its
//! owner, since it holds the join token — for a head started here.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A node started on this machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub pid: u32,
    pub node_id: String,
    pub head: bool,
    /// Where it listens for links.
    pub address: String,
    /// Its control socket (`wasmray status` asks it).
    pub socket: PathBuf,
}

/// How to join the head started on this machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeadRecord {
    pub pid: u32,
    /// The address other machines reach the head at.
    pub address: String,
    pub token: String,
    pub ca_hash: String,
}

impl HeadRecord {
    /// The command that joins another node to this head.
    pub(crate) fn join_command(&self) -> String {
        format!(
            "wasmray start --address {} --token {} --ca-hash {}",
            self.address, self.token, self.ca_hash
        )
    }
}

pub(crate) fn dir() -> PathBuf {
    std::env::temp_dir().join("wasmray").join("cluster")
}

fn nodes_dir() -> PathBuf {
    dir().join("nodes")
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let temp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(text.as_bytes())?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub(crate) fn write_node(record: &NodeRecord) -> anyhow::Result<()> {
    let path = nodes_dir().join(format!("{}.json", record.pid));
    write_private(&path, &serde_json::to_string_pretty(record)?)
}

pub(crate) fn remove_node(pid: u32) {
    let _ = std::fs::remove_file(nodes_dir().join(format!("{pid}.json")));
}

/// Every node record on this machine (unreadable ones are skipped).
pub(crate) fn nodes() -> Vec<NodeRecord> {
    let Ok(entries) = std::fs::read_dir(nodes_dir()) else {
        return Vec::new();
    };
    let mut records: Vec<NodeRecord> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect();
    records.sort_by_key(|r| (!r.head, r.pid));
    records
}

pub(crate) fn write_head(record: &HeadRecord) -> anyhow::Result<()> {
    write_private(
        &dir().join("head.json"),
        &serde_json::to_string_pretty(record)?,
    )
}

pub(crate) fn head() -> Option<HeadRecord> {
    let text = std::fs::read_to_string(dir().join("head.json")).ok()?;
    serde_json::from_str(&text).ok()
}

pub(crate) fn remove_head(pid: u32) {
    if head().is_some_and(|h| h.pid == pid) {
        let _ = std::fs::remove_file(dir().join("head.json"));
    }
}

/// Whether process `pid` is alive (a zombie — exited, not yet reaped by its parent — is not).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(id) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists; no memory is involved.
    let exists = unsafe { libc::kill(id, 0) == 0 };
    // /proc/<pid>/stat is `pid (comm) state ...`; the command may hold spaces and parentheses.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false);
    exists && !zombie
}
