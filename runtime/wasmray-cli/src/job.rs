//! `wasmray job list|status|logs|stop`: the jobs `wasmray submit` started on a node of this
//! machine (the head `wasmray start` started, by default).
//!
//! Only formats what the node reports; the records and logs are the node's.

use crate::control_target::{ControlArgs, block_on_query};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use wasmray_node::{JobReport, job_logs, job_status, list_jobs, stop_job};

#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// List the jobs submitted to the node, oldest first.
    List(ControlArgs),
    /// Show one job's state.
    Status(JobTarget),
    /// Print one job's output so far (`--follow`: and as it comes, until the job ends).
    Logs(LogsArgs),
    /// Stop a running job: its driver is killed, and its tasks and actors that are not
    /// detached go with it.
    Stop(StopArgs),
}

#[derive(Debug, Args)]
struct JobTarget {
    /// The job's ID, as `wasmray submit` printed it.
    id: u32,
    #[command(flatten)]
    control: ControlArgs,
}

#[derive(Debug, Args)]
struct LogsArgs {
    #[command(flatten)]
    target: JobTarget,
    /// Keep printing as the job writes, until it ends; exit as the job did.
    #[arg(long, short)]
    follow: bool,
}

#[derive(Debug, Args)]
struct StopArgs {
    #[command(flatten)]
    target: JobTarget,
    /// Return once the stop is thrown, without waiting for the job to end.
    #[arg(long)]
    no_wait: bool,
}

pub(crate) fn job(args: JobArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        JobCommand::List(control) => {
            let jobs = block_on_query(&control, |socket| async move { list_jobs(&socket).await })?;
            print!("{}", wasmray_node::terminal_safe_lines(&render_list(&jobs)));
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Status(target) => {
            let report = status_of(&target)?;
            println!(
                "{}",
                wasmray_node::terminal_safe_lines(&render_status(&report))
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Logs(logs) => {
            let socket = socket_of(&logs.target.control)?;
            if logs.follow {
                follow(&socket, logs.target.id)
            } else {
                let node = Asker::new(&socket)?;
                let mut printer = LinePrinter::default();
                let mut offset = 0;
                loop {
                    let chunk = node
                        .ask(|s| async move { job_logs(&s, logs.target.id, offset).await })?
                        .map_err(anyhow::Error::from)?;
                    if chunk.bytes.is_empty() {
                        break;
                    }
                    offset = chunk.next_offset;
                    printer.push(&chunk.bytes);
                }
                printer.finish();
                Ok(ExitCode::SUCCESS)
            }
        }
        JobCommand::Stop(stop) => {
            let id = stop.target.id;
            let node = Asker::new(&socket_of(&stop.target.control)?)?;
            let report = node
                .ask(|s| async move { stop_job(&s, id).await })?
                .map_err(anyhow::Error::from)?;
            if report.state != "running" {
                println!("Job {id} had already ended: {}.", report.state);
                return Ok(ExitCode::SUCCESS);
            }
            if stop.no_wait {
                println!("Job {id} is stopping.");
                return Ok(ExitCode::SUCCESS);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let report = node
                    .ask(|s| async move { job_status(&s, id).await })?
                    .map_err(anyhow::Error::from)?;
                if report.state != "running" {
                    println!("Job {id} {}.", report.state);
                    return Ok(ExitCode::SUCCESS);
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "job {id} was told to stop but is still running after 30s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Prints a job's output as it comes until it ends; exits 0 if it succeeded, 1 if not.
pub(crate) fn follow(socket: &Path, id: u32) -> anyhow::Result<ExitCode> {
    let node = Asker::new(socket)?;
    let mut printer = LinePrinter::default();
    let mut offset = 0;
    loop {
        let chunk = node
            .ask(|s| async move { job_logs(&s, id, offset).await })?
            .map_err(anyhow::Error::from)?;
        offset = chunk.next_offset;
        let empty = chunk.bytes.is_empty();
        printer.push(&chunk.bytes);
        if empty && chunk.ended {
            break;
        }
        if empty {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    printer.finish();
    let report = node
        .ask(|s| async move { job_status(&s, id).await })?
        .map_err(anyhow::Error::from)?;
    if report.state == "succeeded" {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{}",
        wasmray_node::terminal_safe_lines(&render_status(&report))
    );
    Ok(match report.exit_code {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)),
        None => ExitCode::FAILURE,
    })
}

fn status_of(target: &JobTarget) -> anyhow::Result<JobReport> {
    let id = target.id;
    let report = block_on_query(&target.control, |s| async move { job_status(&s, id).await })?;
    Ok(report?)
}

/// The node's socket `control` names, found once (a follow asks it many times).
fn socket_of(control: &ControlArgs) -> anyhow::Result<std::path::PathBuf> {
    Ok(crate::control_target::socket(control)?)
}

/// A node's control socket and the runtime its questions run on (made once per command, not
/// once per question: a follow asks every 50 ms).
struct Asker {
    socket: std::path::PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Asker {
    fn new(socket: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            socket: socket.to_owned(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    fn ask<T, F, Fut>(&self, ask: F) -> anyhow::Result<T>
    where
        F: FnOnce(std::path::PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<T, wasmray_node::ControlError>>,
    {
        Ok(self.runtime.block_on(ask(self.socket.clone()))?)
    }
}

/// Writes log bytes to stdout a whole line at a time (a chunk may end inside a character),
/// escaped for the terminal.
#[derive(Default)]
struct LinePrinter {
    pending: Vec<u8>,
}

impl LinePrinter {
    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            let lines: Vec<u8> = self.pending.drain(..=end).collect();
            self.write(&lines);
        }
    }

    fn finish(&mut self) {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.write(&rest);
            println!();
        }
    }

    fn write(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(wasmray_node::terminal_safe_lines(&text).as_bytes());
        let _ = out.flush();
    }
}

fn render_list(jobs: &[JobReport]) -> String {
    if jobs.is_empty() {
        return "No jobs were submitted to this node.\n".to_owned();
    }
    let now = unix_ms();
    let mut out = format!(
        "{:<6} {:<10} {:<24} {:<12} {:<10} {}\n",
        "ID", "STATE", "MODULE", "STARTED", "RAN FOR", "RESULT"
    );
    for job in jobs {
        out.push_str(&format!(
            "{:<6} {:<10} {:<24} {:<12} {:<10} {}\n",
            job.id,
            job.state,
            job.module,
            format!(
                "{} ago",
                human_duration(now.saturating_sub(job.started_unix_ms))
            ),
            human_duration(
                job.ended_unix_ms
                    .unwrap_or(now)
                    .saturating_sub(job.started_unix_ms)
            ),
            result(job),
        ));
    }
    out
}

fn render_status(job: &JobReport) -> String {
    let now = unix_ms();
    let args = if job.args.is_empty() {
        String::new()
    } else {
        format!(" {}", job.args.join(" "))
    };
    let mut out = format!(
        "Job {}: {} ({}{args}, started {} ago",
        job.id,
        job.state,
        job.module,
        human_duration(now.saturating_sub(job.started_unix_ms))
    );
    match job.ended_unix_ms {
        Some(ended) => out.push_str(&format!(
            ", ran for {})",
            human_duration(ended.saturating_sub(job.started_unix_ms))
        )),
        None => out.push(')'),
    }
    let result = result(job);
    if result != "-" {
        out.push_str(&format!(": {result}"));
    }
    out
}

fn result(job: &JobReport) -> String {
    match (&job.message, job.exit_code) {
        (Some(message), _) => message.clone(),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "-".to_owned(),
    }
}

fn human_duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(12), "12ms");
        assert_eq!(human_duration(1_500), "1.5s");
        assert_eq!(human_duration(125_000), "2m5s");
        assert_eq!(human_duration(7_260_000), "2h1m");
    }
}
