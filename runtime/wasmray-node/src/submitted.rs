//! Jobs submitted through the control socket (`wasmray submit`): each one's driver runs on
//! this node, detached from the client that submitted it, with its output appended to a log
//! file in the node's temp dir; `wasmray job` lists them, reads their logs and stops them.
//!
//! This component owns the records and the log files. Running a driver is `node.rs`'s, a
//! job's quotas and accounts `jobs.rs`'s. A log holds what the job's instances on this node
//! wrote (the driver, and its tasks and actors placed here); it is bounded by the job's output
//! rate and by [`MAX_LOG_BYTES`]. The records of the [`KEPT_ENDED`] most recent ended jobs are
//! kept, with their logs; older ones are forgotten and their logs deleted.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use wasmray_core::JobId;
use wasmray_wasm::{KillSwitch, OutputSink, Stream};

/// The most a job's log file grows to; past it, lines are dropped and one line says so.
pub const MAX_LOG_BYTES: u64 = 256 << 20;

/// How many ended jobs (records and logs) are kept for `wasmray job`.
pub const KEPT_ENDED: usize = 256;

/// The most log bytes one `logs` answer carries.
pub const MAX_LOG_CHUNK: u64 = 1 << 20;

/// What `wasmray job list` and `wasmray job status` show of one submitted job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// The cluster's ID of the job (`wasmray job` takes it).
    pub id: u32,
    /// The module's file name.
    pub module: String,
    pub args: Vec<String>,
    /// `running`, `succeeded`, `failed` or `stopped`.
    pub state: String,
    /// The driver's exit code, once it exited (non-zero is `failed`).
    pub exit_code: Option<i32>,
    /// Why it failed: the driver's trap or panic, in one line.
    pub message: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    /// Bytes of output in its log so far.
    pub log_bytes: u64,
}

/// A piece of a job's log, from the offset asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogChunk {
    pub bytes: Vec<u8>,
    /// Where the next piece starts.
    pub next_offset: u64,
    /// The job has ended: once a chunk comes back empty, its log is complete.
    pub ended: bool,
}

/// Why a `wasmray job` request could not be answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum JobRequestError {
    #[error("no job {0} was submitted to this node (`wasmray job list` shows those that were)")]
    Unknown(u32),
    #[error("{0}")]
    Refused(String),
}

/// How a submitted job's driver ended, as its record keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ended {
    /// `main` returned (0) or exited with this code.
    Exited(i32),
    /// It panicked or trapped, or could not start: why.
    Failed(String),
}

/// Where a submitted job is.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Running,
    Exited(i32),
    Failed(String),
    Stopped,
}

struct Record {
    module: String,
    args: Vec<String>,
    started_unix_ms: u64,
    ended_unix_ms: Option<u64>,
    state: State,
    /// Thrown by `stop`; the driver's instance watches it.
    stop: KillSwitch,
    stop_asked: bool,
    log: Arc<LogFile>,
}

/// The jobs submitted to this node.
pub(crate) struct Submitted {
    dir: PathBuf,
    records: Mutex<BTreeMap<JobId, Record>>,
}

impl Submitted {
    /// Logs go in `dir` (made when the first job is submitted).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            records: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a job whose driver is about to start; returns where its output goes and the
    /// switch that stops it.
    pub(crate) fn begin(
        &self,
        job: JobId,
        module: &str,
        args: &[String],
    ) -> std::io::Result<(Arc<LogFile>, KillSwitch)> {
        std::fs::create_dir_all(&self.dir)?;
        let log = Arc::new(LogFile::create(
            &self.dir.join(format!("job-{}.log", job.0)),
        )?);
        let stop = KillSwitch::default();
        self.lock().insert(
            job,
            Record {
                module: module.to_owned(),
                args: args.to_vec(),
                started_unix_ms: unix_ms(),
                ended_unix_ms: None,
                state: State::Running,
                stop: stop.clone(),
                stop_asked: false,
                log: Arc::clone(&log),
            },
        );
        Ok((log, stop))
    }

    /// Records how `job`'s driver ended, and forgets the oldest ended jobs past
    /// [`KEPT_ENDED`].
    pub(crate) fn finish(&self, job: JobId, ended: Ended) {
        let mut records = self.lock();
        if let Some(record) = records.get_mut(&job) {
            record.log.flush();
            record.ended_unix_ms = Some(unix_ms());
            record.state = match ended {
                _ if record.stop_asked => State::Stopped,
                Ended::Exited(code) => State::Exited(code),
                Ended::Failed(why) => State::Failed(one_line(&why)),
            };
        }
        let ended: Vec<JobId> = records
            .iter()
            .filter(|(_, r)| r.state != State::Running)
            .map(|(id, _)| *id)
            .collect();
        for old in ended.iter().take(ended.len().saturating_sub(KEPT_ENDED)) {
            if let Some(record) = records.remove(old) {
                let _ = std::fs::remove_file(&record.log.path);
            }
        }
    }

    /// Every job submitted here and kept, oldest first.
    pub(crate) fn list(&self) -> Vec<JobReport> {
        self.lock()
            .iter()
            .map(|(id, record)| report(*id, record))
            .collect()
    }

    pub(crate) fn status(&self, job: u32) -> Result<JobReport, JobRequestError> {
        self.lock()
            .get(&JobId(job))
            .map(|record| report(JobId(job), record))
            .ok_or(JobRequestError::Unknown(job))
    }

    /// Up to [`MAX_LOG_CHUNK`] bytes of `job`'s log from `offset`.
    pub(crate) fn logs(&self, job: u32, offset: u64) -> Result<LogChunk, JobRequestError> {
        let (log, ended) = {
            let records = self.lock();
            let record = records
                .get(&JobId(job))
                .ok_or(JobRequestError::Unknown(job))?;
            (Arc::clone(&record.log), record.state != State::Running)
        };
        let bytes = log
            .read_at(offset, MAX_LOG_CHUNK)
            .map_err(|e| JobRequestError::Refused(format!("cannot read the job's log: {e}")))?;
        Ok(LogChunk {
            next_offset: offset + bytes.len() as u64,
            bytes,
            ended,
        })
    }

    /// Stops `job`'s driver: it traps at its next tick (at once if blocked); its tasks and
    /// actors that are not detached go with it, as when a driver ends.
    pub(crate) fn stop(&self, job: u32) -> Result<JobReport, JobRequestError> {
        let mut records = self.lock();
        let record = records
            .get_mut(&JobId(job))
            .ok_or(JobRequestError::Unknown(job))?;
        if record.state == State::Running {
            record.stop_asked = true;
            record.stop.kill();
        }
        Ok(report(JobId(job), record))
    }
}

fn report(id: JobId, record: &Record) -> JobReport {
    let (state, exit_code, message) = match &record.state {
        State::Running => ("running", None, None),
        State::Exited(0) => ("succeeded", Some(0), None),
        State::Exited(code) => ("failed", Some(*code), None),
        State::Failed(message) => ("failed", None, Some(message.clone())),
        State::Stopped => ("stopped", None, None),
    };
    JobReport {
        id: id.0,
        module: record.module.clone(),
        args: record.args.clone(),
        state: state.to_owned(),
        exit_code,
        message,
        started_unix_ms: record.started_unix_ms,
        ended_unix_ms: record.ended_unix_ms,
        log_bytes: record.log.len(),
    }
}

fn one_line(text: &str) -> String {
    text.trim_start_matches("task `main` ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A job's log: lines appended as its guests write them, task lines prefixed with
/// `(label) ` as on a terminal. One write per line, so a reader sees a line once it is
/// written; the job's output rate bounds how often that is.
pub(crate) struct LogFile {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    len: AtomicU64,
    dropped: AtomicU64,
}

impl LogFile {
    fn create(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        file.set_len(0)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
            len: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    fn append(&self, text: &[u8]) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let len = self.len.load(Ordering::Relaxed);
        if len + text.len() as u64 > MAX_LOG_BYTES {
            if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                let note = format!(
                    "[wasmray: the log reached its limit of {MAX_LOG_BYTES} bytes; later lines are dropped]\n"
                );
                if file.write_all(note.as_bytes()).is_ok() {
                    self.len.fetch_add(note.len() as u64, Ordering::Relaxed);
                }
            }
            return;
        }
        match file.write_all(text) {
            Ok(()) => {
                self.len.fetch_add(text.len() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot write a job's log")
            }
        }
    }

    fn read_at(&self, offset: u64, most: u64) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = self.len();
        if offset >= len {
            return Ok(Vec::new());
        }
        // At most `most` (a constant), and no more than was written.
        let mut bytes = vec![0u8; most.min(len - offset) as usize];
        let file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.read_exact_at(&mut bytes, offset)?;
        Ok(bytes)
    }
}

impl OutputSink for LogFile {
    fn line(&self, label: Option<&str>, _stream: Stream, line: &str) {
        let text = match label {
            Some(label) => format!("({label}) {line}\n"),
            None => format!("{line}\n"),
        };
        self.append(text.as_bytes());
    }

    fn flush(&self) {
        let file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = file.sync_data();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_reads_back_in_pieces_and_stops_at_its_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogFile::create(&dir.path().join("job.log")).expect("create");
        log.line(None, Stream::Stdout, "hello");
        log.line(Some("f"), Stream::Stderr, "from a task");
        assert_eq!(log.read_at(0, 100).unwrap(), b"hello\n(f) from a task\n");
        assert_eq!(log.read_at(6, 3).unwrap(), b"(f)");
        assert_eq!(log.read_at(100, 3).unwrap(), b"");
        let big = "x".repeat(1 << 20);
        for _ in 0..(MAX_LOG_BYTES >> 20) + 2 {
            log.line(None, Stream::Stdout, &big);
        }
        assert!(log.len() <= MAX_LOG_BYTES + 200, "{}", log.len());
        let tail = log.read_at(log.len() - 100, 100).unwrap();
        assert!(
            String::from_utf8_lossy(&tail).contains("later lines are dropped"),
            "{}",
            String::from_utf8_lossy(&tail)
        );
    }

    #[test]
    fn ended_jobs_past_the_limit_are_forgotten_with_their_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let submitted = Submitted::new(dir.path().join("jobs"));
        for job in 1..=(KEPT_ENDED as u32 + 3) {
            submitted.begin(JobId(job), "m.wasm", &[]).expect("begin");
            submitted.finish(JobId(job), Ended::Exited(0));
        }
        let kept = submitted.list();
        assert_eq!(kept.len(), KEPT_ENDED);
        assert_eq!(kept[0].id, 4, "the oldest went first");
        assert!(!dir.path().join("jobs/job-1.log").exists());
        assert!(dir.path().join("jobs/job-4.log").exists());
        assert_eq!(submitted.status(1), Err(JobRequestError::Unknown(1)));
    }

    #[test]
    fn a_stopped_job_is_stopped_whatever_its_driver_returned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let submitted = Submitted::new(dir.path().to_owned());
        let (_log, stop) = submitted.begin(JobId(7), "m.wasm", &[]).expect("begin");
        assert_eq!(submitted.stop(7).expect("known").state, "running");
        assert!(stop.is_killed());
        submitted.finish(JobId(7), Ended::Exited(1));
        let report = submitted.status(7).expect("known");
        assert_eq!((report.state.as_str(), report.exit_code), ("stopped", None));
        assert_eq!(submitted.stop(8), Err(JobRequestError::Unknown(8)));
    }
}
