//! The failed tasks of each running job, for `error_info()` (Ray's `ray.error_info()`).
//!
//! A job's log keeps its newest [`KEEP`] failures, oldest first, and counts those it let go,
//! so a job that fails millions of tasks holds bounded memory. The log exists from its
//! driver's start to its end; failures reported after that (calls still in flight when the
//! driver ended) are not kept, since nobody can ask for them. Printing failures is not done here: the driver's output gets unhandled errors as
//! before.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use wasmray_abi::ErrorInfo;
use wasmray_core::{IdMap, JobId, TaskError, TaskId};

/// Failures kept per job.
pub(crate) const KEEP: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    jobs: Mutex<IdMap<JobId, JobErrors>>,
}

#[derive(Debug, Default)]
struct JobErrors {
    kept: VecDeque<ErrorInfo>,
    dropped: u64,
}

impl ErrorLog {
    /// `job`'s driver starts: its failures are kept from now on.
    pub(crate) fn begin(&self, job: JobId) {
        self.lock().insert(job, JobErrors::default());
    }

    /// Notes that `task` of `job` failed for good with `error`, now.
    pub(crate) fn record(&self, job: JobId, task: TaskId, error: &TaskError) {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let info = ErrorInfo {
            task_id: task.to_string(),
            function: error.function.clone(),
            kind: error.kind,
            message: error.message.clone(),
            time_ms,
        };
        let mut jobs = self.lock();
        let Some(errors) = jobs.get_mut(&job) else {
            return;
        };
        if errors.kept.len() == KEEP {
            errors.kept.pop_front();
            errors.dropped += 1;
        }
        errors.kept.push_back(info);
    }

    /// `job`'s failures, oldest first, and how many older ones were let go.
    pub(crate) fn of(&self, job: JobId) -> (Vec<ErrorInfo>, u64) {
        self.lock().get(&job).map_or((Vec::new(), 0), |errors| {
            (errors.kept.iter().cloned().collect(), errors.dropped)
        })
    }

    /// Drops `job`'s log: its driver has ended.
    pub(crate) fn forget(&self, job: JobId) {
        self.lock().remove(&job);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<JobId, JobErrors>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmray_core::{ErrorKind, IdMint, NodeId};

    #[test]
    fn a_job_keeps_its_newest_failures_in_order() {
        let log = ErrorLog::default();
        let mint = IdMint::new(NodeId(1));
        let error = |n: usize| TaskError {
            kind: ErrorKind::Panic,
            function: format!("f{n}"),
            message: "boom".into(),
            backtrace: None,
            task_chain: Vec::new(),
            cause: None,
        };
        log.begin(JobId(1));
        log.begin(JobId(2));
        for n in 0..KEEP + 2 {
            log.record(JobId(1), mint.next_task(), &error(n));
        }
        log.record(JobId(2), mint.next_task(), &error(0));
        let (kept, dropped) = log.of(JobId(1));
        assert_eq!((kept.len(), dropped), (KEEP, 2));
        assert_eq!(kept[0].function, "f2");
        assert_eq!(kept[KEEP - 1].function, format!("f{}", KEEP + 1));
        log.forget(JobId(1));
        assert_eq!(log.of(JobId(1)).0.len(), 0);
        log.record(JobId(1), mint.next_task(), &error(0));
        assert_eq!(log.of(JobId(1)).0.len(), 0, "not kept after the job ended");
        assert_eq!(log.of(JobId(2)).0.len(), 1);
    }
}
