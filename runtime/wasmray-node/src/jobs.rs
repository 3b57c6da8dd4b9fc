//! Each job's quotas and what is charged against them on this node: its account in the
//! object store and its rate-limited output.
//!
//! A job is registered when its driver starts and forgotten when it ends; its ID is then
//! remembered as ended (eight bytes), so that what the job left running cannot start new
//! work: only its detached actors may still submit. Work of a job this node does not know
//! (a detached actor outliving its driver, and later work arriving from other nodes) runs
//! under the node's default quotas, in an entry made when first needed and forgotten when
//! the head says the job's driver ended elsewhere.
//! Counting tasks and actors is the scheduler's (`Scheduler::job_tasks`); this component only
//! holds the figures and the per-job parts that live outside the scheduler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use wasmray_core::{IdMap, JobId, JobQuotas, NodeId, Quota, QuotaExceeded};
use wasmray_store::{Account, AccountLimits};
use wasmray_wasm::{DirGrant, JobLimits, MemoryPool, OutputRate, OutputSink, RateLimited, Stream};

/// How a job is run: its quotas, and the shared namespace it joins, if any.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    pub quotas: JobQuotas,
    /// Jobs started with the same shared namespace see each other's named actors; a job
    /// without one sees only its own (Ray's `ray.init(namespace=..)`, opt-in here).
    pub namespace: Option<String>,
    /// Host directories the job's guests may use; without one, a guest sees no filesystem.
    pub dirs: Vec<DirGrant>,
}

/// One job on this node.
pub(crate) struct Job {
    pub(crate) quotas: JobQuotas,
    /// Where its actor names live: `job-<id>`, or `shared:<namespace>`.
    pub(crate) scope: String,
    /// The directories its guests may use.
    pub(crate) dirs: Arc<[DirGrant]>,
    /// What the job's values are charged to (its store account, its largest value), as its
    /// instances hold it.
    pub(crate) limits: Arc<JobLimits>,
    /// Where the job's guests write.
    pub(crate) output: Arc<RateLimited>,
    /// The guest memory all its instances draw from.
    pub(crate) memory: Arc<MemoryPool>,
    /// Its driver runs on this node (so output forwarded from other nodes is shown here).
    driven_here: bool,
}

impl Job {
    /// `node_memory` is the node's guest memory: one job may hold at most three quarters of
    /// it, so another job can always start instances beside one that takes all it may.
    fn new(
        job: JobId,
        options: JobOptions,
        ended: bool,
        sink: &Arc<dyn OutputSink>,
        node_memory: u64,
        driven_here: bool,
    ) -> Arc<Self> {
        let quotas = options.quotas;
        let scope = match options.namespace {
            Some(shared) => format!("shared:{shared}"),
            None => format!("job-{}", job.0),
        };
        let rate = OutputRate {
            bytes_per_sec: quotas.output_bytes_per_sec,
            // Eight seconds' worth at once: a burst of output is normal, a flood is not.
            burst: quotas.output_bytes_per_sec.saturating_mul(8),
        };
        Arc::new(Self {
            quotas,
            scope,
            dirs: options.dirs.into(),
            limits: Arc::new(JobLimits {
                account: Account::new(AccountLimits {
                    max_objects: quotas.max_objects,
                    max_bytes: quotas.max_object_bytes,
                    max_spill_bytes: quotas.max_spill_bytes,
                }),
                max_value_bytes: quotas.max_value_bytes,
                max_pending_tasks: quotas.max_pending_tasks,
                ended: AtomicBool::new(ended),
            }),
            output: Arc::new(RateLimited::new(Arc::clone(sink), rate)),
            memory: Arc::new(job_memory_pool(&quotas, node_memory)),
            driven_here,
        })
    }
}

/// A job's guest memory: its quota, or its share of the node's if that is smaller.
fn job_memory_pool(quotas: &JobQuotas, node_memory: u64) -> MemoryPool {
    let share = node_memory / 4 * 3;
    if share < quotas.max_guest_memory {
        MemoryPool::new(
            share,
            format!(
                "the job holds its share of the node's guest memory: {share} bytes, three quarters of the node's {node_memory}, so other jobs can always start"
            ),
        )
    } else {
        MemoryPool::new(
            quotas.max_guest_memory,
            QuotaExceeded::new(Quota::GuestMemory, quotas).to_string(),
        )
    }
}

/// The jobs this node runs work of.
pub(crate) struct Jobs {
    defaults: JobQuotas,
    sink: Arc<dyn OutputSink>,
    /// The node's own reports (unhandled errors), at the default rate of one job.
    reports: RateLimited,
    /// The guest memory every job's instances draw from together.
    node_memory: Arc<MemoryPool>,
    table: Mutex<Table>,
    /// In a cluster: makes the sink of a job whose driver runs on another node (`relay.rs`),
    /// given the job, that node and this node's sink.
    remote_output: std::sync::OnceLock<RemoteOutput>,
}

/// See [`Jobs::set_remote_output`].
pub(crate) type RemoteOutput =
    Box<dyn Fn(JobId, NodeId, Arc<dyn OutputSink>) -> Arc<dyn OutputSink> + Send + Sync>;

/// Running jobs and the IDs of ended ones, under one lock (a submission checks both).
#[derive(Default)]
struct Table {
    jobs: IdMap<JobId, Arc<Job>>,
    ended: IdMap<JobId, ()>,
}

impl Jobs {
    pub(crate) fn new(defaults: JobQuotas, guest_memory: u64, sink: Arc<dyn OutputSink>) -> Self {
        let refusal = format!(
            "the node's guest memory of {guest_memory} bytes is all in use by its instances"
        );
        Self {
            defaults,
            node_memory: Arc::new(MemoryPool::new(guest_memory, refusal)),
            reports: RateLimited::new(Arc::clone(&sink), OutputRate::default()),
            sink,
            table: Mutex::default(),
            remote_output: std::sync::OnceLock::new(),
        }
    }

    /// Where the output of jobs whose drivers run on other nodes goes from now on (set once,
    /// when the node has links).
    pub(crate) fn set_remote_output(&self, make: RemoteOutput) {
        let _ = self.remote_output.set(make);
    }

    /// Shows a line another node forwarded: with the job's output (at its rate) if its
    /// driver runs here, else (the driver ended) in this node's own output, never further.
    pub(crate) fn show_forwarded(
        &self,
        job: JobId,
        label: Option<&str>,
        stream: Stream,
        line: &str,
    ) {
        let entry = self
            .lock()
            .jobs
            .get(&job)
            .filter(|j| j.driven_here)
            .cloned();
        match entry {
            Some(entry) => entry.output.line(label, stream, line),
            None => self.reports.line(label, stream, line),
        }
    }

    fn default_options(&self) -> JobOptions {
        JobOptions {
            quotas: self.defaults,
            ..JobOptions::default()
        }
    }

    /// The pools an instance of `job` draws its memory from: the job's, then the node's.
    pub(crate) fn memory_pools(&self, job: &Job) -> Vec<Arc<MemoryPool>> {
        vec![Arc::clone(&job.memory), Arc::clone(&self.node_memory)]
    }

    /// Where the node's reports about jobs go (rate-limited: a job that fails a million
    /// tasks nobody reads must not flood the terminal).
    pub(crate) fn reports(&self) -> &RateLimited {
        &self.reports
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a job that starts here with its own options; its output goes to `output`
    /// if given (a submitted job's log), else to the node's.
    pub(crate) fn begin(
        &self,
        job: JobId,
        options: JobOptions,
        output: Option<Arc<dyn OutputSink>>,
    ) -> Arc<Job> {
        let sink = output.unwrap_or_else(|| Arc::clone(&self.sink));
        let entry = Job::new(job, options, false, &sink, self.node_memory.limit(), true);
        self.lock().jobs.insert(job, Arc::clone(&entry));
        entry
    }

    /// The job's entry; one with the node's defaults if the job is not known here (marked
    /// ended if its driver ended here: what it left running still may not start work), its
    /// output going to `driver`, the node its driver runs on.
    pub(crate) fn get(&self, job: JobId, driver: NodeId) -> Arc<Job> {
        let mut table = self.lock();
        let ended = table.ended.contains_key(&job);
        let entry = table.jobs.entry(job).or_insert_with(|| {
            let node_memory = self.node_memory.limit();
            let sink = match self.remote_output.get() {
                Some(make) if !ended => make(job, driver, Arc::clone(&self.sink)),
                _ => Arc::clone(&self.sink),
            };
            Job::new(
                job,
                self.default_options(),
                ended,
                &sink,
                node_memory,
                false,
            )
        });
        Arc::clone(entry)
    }

    /// How many jobs have an entry here.
    pub(crate) fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Forgets a job whose driver ended; what it still holds keeps its charges until it goes.
    pub(crate) fn end(&self, job: JobId) {
        let entry = {
            let mut table = self.lock();
            table.ended.insert(job, ());
            table.jobs.remove(&job)
        };
        if let Some(entry) = entry {
            entry.limits.ended.store(true, Ordering::Relaxed);
            entry.output.flush();
        }
    }
}
