//! The flags that shape one job: its quotas (each defaulting to the node's), the shared
//! namespace it joins, and the host directories its guests may use. Shared by the
//! subcommands that start jobs.

use crate::sizes;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use wasmray_node::{DirGrant, JobOptions, JobQuotas};

#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// Most tasks and actor calls the job may have pending or running at once [default: 100000].
    #[arg(long, help_heading = "Job quotas")]
    max_pending_tasks: Option<u64>,
    /// Most actors the job may have alive at once [default: 1000].
    #[arg(long, help_heading = "Job quotas")]
    max_actors: Option<u64>,
    /// Most objects the job may hold in the store, small ones included [default: 1000000].
    #[arg(long, help_heading = "Job quotas")]
    max_objects: Option<u64>,
    /// Most bytes of objects the job may hold, in memory or spilled, e.g. 8GiB [default: 64GiB].
    #[arg(long, value_parser = sizes::parse_bytes, help_heading = "Job quotas")]
    max_object_bytes: Option<u64>,
    /// Most bytes of the job's objects spilled to disk, e.g. 4GiB [default: 16GiB].
    #[arg(long, value_parser = sizes::parse_bytes, help_heading = "Job quotas")]
    max_spill_bytes: Option<u64>,
    /// Most object refs one instance (a task, an actor, the driver) may hold [default: 1048576].
    #[arg(long, help_heading = "Job quotas")]
    max_handles: Option<u32>,
    /// Largest argument, return value or put, e.g. 256MiB [default: 1GiB].
    #[arg(long, value_parser = sizes::parse_bytes, help_heading = "Job quotas")]
    max_value_bytes: Option<u64>,
    /// Linear memory of all the job's instances together, e.g. 8GiB [default: 60% of RAM].
    #[arg(long, value_parser = sizes::parse_bytes, help_heading = "Job quotas")]
    max_guest_memory: Option<u64>,
    /// Guest output per second, e.g. 64KiB; lines beyond it are dropped with a count [default: 1MiB].
    #[arg(long, value_parser = sizes::parse_bytes, help_heading = "Job quotas")]
    output_rate: Option<u64>,
    /// Join a shared namespace: jobs in the same one see each other's named actors. Without
    /// it, a job's actor names are its own.
    #[arg(long)]
    namespace: Option<String>,
    /// Let the job's guests use a host directory: HOST[:GUEST][:ro|rw] (GUEST defaults to
    /// HOST, access to read-only). Repeatable. Without it, guests see no filesystem.
    #[arg(long = "allow-dir", value_name = "HOST[:GUEST][:ro|rw]", value_parser = parse_grant)]
    allow_dir: Vec<DirGrant>,
}

impl JobArgs {
    /// The job's options: these flags over the node's default quotas.
    pub(crate) fn options(&self, defaults: JobQuotas) -> anyhow::Result<JobOptions> {
        let mut quotas = defaults;
        let set = |value: Option<u64>, field: &mut u64, flag: &str| -> anyhow::Result<()> {
            if let Some(value) = value {
                anyhow::ensure!(value > 0, "{flag} must be at least 1");
                *field = value;
            }
            Ok(())
        };
        set(
            self.max_pending_tasks,
            &mut quotas.max_pending_tasks,
            "--max-pending-tasks",
        )?;
        set(self.max_actors, &mut quotas.max_actors, "--max-actors")?;
        set(self.max_objects, &mut quotas.max_objects, "--max-objects")?;
        set(
            self.max_object_bytes,
            &mut quotas.max_object_bytes,
            "--max-object-bytes",
        )?;
        set(
            self.max_spill_bytes,
            &mut quotas.max_spill_bytes,
            "--max-spill-bytes",
        )?;
        set(
            self.max_value_bytes,
            &mut quotas.max_value_bytes,
            "--max-value-bytes",
        )?;
        set(
            self.output_rate,
            &mut quotas.output_bytes_per_sec,
            "--output-rate",
        )?;
        set(
            self.max_guest_memory,
            &mut quotas.max_guest_memory,
            "--max-guest-memory",
        )?;
        if let Some(handles) = self.max_handles {
            anyhow::ensure!(
                (1..=1 << 24).contains(&handles),
                "--max-handles must be between 1 and 16777216"
            );
            quotas.max_handles = handles;
        }
        if let Some(namespace) = &self.namespace {
            anyhow::ensure!(!namespace.is_empty(), "--namespace must not be empty");
        }
        Ok(JobOptions {
            quotas,
            namespace: self.namespace.clone(),
            dirs: self.allow_dir.clone(),
        })
    }
}

/// `HOST[:GUEST][:ro|rw]`: the host directory must exist.
fn parse_grant(text: &str) -> Result<DirGrant, String> {
    let (rest, writable) = match text.rsplit_once(':') {
        Some((rest, "rw")) => (rest, true),
        Some((rest, "ro")) => (rest, false),
        _ => (text, false),
    };
    let (host, guest) = match rest.split_once(':') {
        Some((host, guest)) if !guest.is_empty() => (host, guest.to_owned()),
        Some((host, _)) => (host, host.to_owned()),
        None => (rest, rest.to_owned()),
    };
    if host.is_empty() {
        return Err("expected HOST[:GUEST][:ro|rw], e.g. ./data:/data:ro".to_owned());
    }
    let host = PathBuf::from(host);
    let metadata = std::fs::metadata(&host)
        .with_context(|| format!("`{}`", host.display()))
        .map_err(|e| format!("{e:#}"))?;
    if !metadata.is_dir() {
        return Err(format!("`{}` is not a directory", host.display()));
    }
    Ok(DirGrant {
        host,
        guest,
        writable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_with_defaults() {
        let dir = std::env::temp_dir();
        let host = dir.display().to_string();
        let grant = parse_grant(&host).unwrap();
        assert_eq!(
            (grant.guest.as_str(), grant.writable),
            (host.as_str(), false)
        );
        let grant = parse_grant(&format!("{host}:/data:rw")).unwrap();
        assert_eq!((grant.guest.as_str(), grant.writable), ("/data", true));
        let grant = parse_grant(&format!("{host}:/data")).unwrap();
        assert_eq!((grant.guest.as_str(), grant.writable), ("/data", false));
        let grant = parse_grant(&format!("{host}:ro")).unwrap();
        assert_eq!(
            (grant.guest.as_str(), grant.writable),
            (host.as_str(), false)
        );
        assert!(
            parse_grant("/no/such/dir:/x")
                .unwrap_err()
                .contains("/no/such/dir")
        );
        assert!(parse_grant(":ro").is_err());
    }
}
