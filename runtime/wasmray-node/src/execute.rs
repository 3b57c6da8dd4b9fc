//! Running a task: finding or creating an instance, calling the function, recording the result.
//!
//! Instances come from the pool (`pool.rs`) and go back to it after a call, up to the task's
//! `max_calls` and never after a failure. Actors' instances are run by `actors.rs`, which
//! uses the call and report helpers here.

use crate::inner::NodeInner;
use crate::pool::{PoolKey, PooledInstance};
use crate::services::GuestServices;
use crate::value::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wasmray_abi::TASK_EXPORT_PREFIX;
use wasmray_core::{ErrorKind, ObjectId, TaskError, TaskId, TaskSpec};
use wasmray_sched::{Event, Outcome, RunTask};
use wasmray_wasm::{
    CallLimits, Caller, GuestInstance, InstanceSetup, NestedCalls, TaskCall, TaskOutcome,
};

impl NodeInner {
    /// The call a run makes into its instance: `export`, the run's arguments, who is calling,
    /// and the spec's limits (or the node's defaults).
    pub(crate) fn task_call(&self, run: RunTask<Value>, export: String, label: String) -> TaskCall {
        let spec = &run.spec;
        let caller = Caller {
            task: spec.id,
            run: self.mint.next_task(),
            job: spec.job,
            module: spec.module,
            lineage: spec.lineage.clone(),
            actor: spec.actor(),
            gpu_ids: run.gpu_ids.clone(),
            driver: spec.driver,
        };
        let limits = self.call_limits(spec);
        TaskCall {
            export,
            num_returns: spec.num_returns,
            function: spec.function.clone(),
            args: run.args.iter().map(|value| Arc::clone(&value.0)).collect(),
            caller,
            limits,
            label,
        }
    }

    /// A spec's memory cap and CPU-time limit, or the node's defaults.
    pub(crate) fn call_limits(&self, spec: &TaskSpec<Value>) -> CallLimits {
        CallLimits {
            memory_bytes: spec.memory_limit.unwrap_or(self.config.default_task_memory),
            cpu_time: spec
                .cpu_time_limit_ms
                .map(Duration::from_millis)
                .or(self.config.default_cpu_time_limit),
        }
    }

    /// Tells the scheduler how a run ended.
    pub(crate) fn report(self: &Arc<Self>, task: TaskId, outcome: Outcome<Value>) {
        self.report_and_release(task, outcome, &[]);
    }

    /// Tells the scheduler how a run ended, then drops the references the run's handles
    /// still held, in one visit: the sealed results hold their own references by then.
    pub(crate) fn report_and_release(
        self: &Arc<Self>,
        task: TaskId,
        outcome: Outcome<Value>,
        held: &[ObjectId],
    ) {
        self.with_sched(|sched, now| {
            sched.handle(now, Event::Finished { task, outcome });
            for &id in held {
                sched.handle(now, Event::Release(id));
            }
        });
    }

    /// Tells the scheduler a run failed; `system` for failures of the runtime (or, for an
    /// actor call, the loss of its instance).
    pub(crate) fn report_failure(self: &Arc<Self>, task: TaskId, error: TaskError, system: bool) {
        self.report(task, Outcome::Failed { error, system });
    }

    pub(crate) async fn execute_task(self: Arc<Self>, run: RunTask<Value>) {
        let spec = Arc::clone(&run.spec);
        let running = self.running.enter(spec.id);
        let key = PoolKey::new(spec.job, spec.module, spec.function.clone());
        // An idle instance whose memory grew past this call's cap is not reused.
        let memory_cap = self.call_limits(&spec).memory_bytes;
        let idle = self
            .pool
            .take(&key)
            .filter(|pooled| pooled.instance.memory_bytes() <= memory_cap);
        let pooled = match idle {
            Some(pooled) => pooled,
            None => match self.instantiate(&spec, None).await {
                Ok(pooled) => pooled,
                Err(error) => {
                    self.with_sched(|sched, now| {
                        let system = error.kind == ErrorKind::System;
                        let outcome = Outcome::Failed { error, system };
                        sched.handle(
                            now,
                            Event::Finished {
                                task: spec.id,
                                outcome,
                            },
                        );
                        drop(running);
                    });
                    return;
                }
            },
        };
        let mut pooled = pooled;
        running.attach(pooled.instance.kill_switch());
        let export = format!("{TASK_EXPORT_PREFIX}{}", spec.function);
        let label = format!("{} task={:x}", spec.function, spec.id.0 as u64);
        let call = self.task_call(run, export, label);
        let finished = pooled.instance.run_task(call).await;
        // The call is over: a stop from now on must not reach the instance, which may serve
        // another task next.
        running.detach();
        // Back to the pool before the result is sealed: a caller woken by the seal that
        // submits again at once must find the instance idle.
        let spent = spec.max_calls > 0 && pooled.instance.calls() >= spec.max_calls;
        let succeeded = matches!(finished.outcome, TaskOutcome::Returned(_));
        if succeeded
            && pooled.instance.reusable()
            && !spent
            && !self.shutting_down.load(Ordering::Relaxed)
        {
            self.pool
                .put(key, pooled, self.config.idle_instances_per_function);
        } else {
            drop(pooled);
        }
        self.with_sched(|sched, now| {
            let outcome = sched_outcome(finished.outcome, false);
            sched.handle(
                now,
                Event::Finished {
                    task: spec.id,
                    outcome,
                },
            );
            // Under the scheduler's lock: a stop after this finds the task finished.
            drop(running);
            for &id in &finished.held {
                sched.handle(now, Event::Release(id));
            }
        });
    }

    pub(crate) async fn instantiate(
        self: &Arc<Self>,
        spec: &TaskSpec<Value>,
        nested: Option<Arc<dyn NestedCalls>>,
    ) -> Result<PooledInstance, TaskError> {
        let failed = |kind: ErrorKind, message: String| TaskError {
            kind,
            function: spec.function.clone(),
            message,
            backtrace: None,
            task_chain: spec.lineage.error_chain(),
            cause: None,
        };
        let system = |message: String| failed(ErrorKind::System, message);
        let module = crate::remote::module(self, spec.module, spec.id.node())
            .await
            .map_err(system)?;
        let slot = self
            .pool
            .slot()
            .await
            .ok_or_else(|| system("the node is shutting down".into()))?;
        let job = self.jobs.get(spec.job, spec.driver);
        let setup = || InstanceSetup {
            services: GuestServices::shared(self),
            output: Arc::clone(&job.output) as Arc<dyn wasmray_wasm::OutputSink>,
            max_handles: job.quotas.max_handles,
            limits: self.call_limits(spec),
            dirs: Arc::clone(&job.dirs),
            memory_pools: self.jobs.memory_pools(&job),
            job: Arc::clone(&job.limits),
            args: vec![module.name().to_owned()],
            nested: nested.clone(),
        };
        let instance = match GuestInstance::new(&self.host, &module, setup()).await {
            // Idle instances kept for reuse hold guest memory of the node's budget: let them
            // go, and try once more, before refusing a new one.
            Err(e) if e.error_kind() == ErrorKind::OutOfMemory && self.pool.idle_count() > 0 => {
                self.pool.clear();
                GuestInstance::new(&self.host, &module, setup()).await
            }
            made => made,
        }
        .map_err(|e| failed(e.error_kind(), e.to_string()))?;
        Ok(PooledInstance::new(instance, slot))
    }
}

/// A call's outcome as the scheduler takes it; a failure is a system one if `lost`.
pub(crate) fn sched_outcome(outcome: TaskOutcome, lost: bool) -> Outcome<Value> {
    match outcome {
        TaskOutcome::Returned(values) => Outcome::Returned(
            values
                .into_iter()
                .map(|value| Value(value.hand_over()))
                .collect(),
        ),
        TaskOutcome::Failed(error) => Outcome::Failed {
            error,
            system: lost,
        },
    }
}
