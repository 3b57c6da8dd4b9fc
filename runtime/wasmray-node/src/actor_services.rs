//! What guests ask of the node about actors: create one, call a method, find one by name,
//! kill one. Each request becomes a task spec (a creation or a method call) for the scheduler.
//!
//! An actor handle reaching the host is the actor's handle object; its references are the
//! actor's handles, so the node needs no separate handle bookkeeping.

use crate::inner::NodeInner;
use crate::services::{GuestServices, resources_of};
use crate::value::Value;
use std::sync::Arc;
use wasmray_abi::{ActorOptions, CallOptions, MethodOptions};
use wasmray_core::{
    ActorId, ActorName, ActorSpec, ArgSpec, ErrorKind, ObjectId, Quota, QuotaExceeded, ResourceSet,
    TaskError, TaskId, TaskKind, TaskSpec,
};
use wasmray_sched::{Event, HeadAnswer, HeadRequest};
use wasmray_wasm::{ActorRequest, ActorServices, BoxFuture, Caller, JobLimits, SubmittedArg};

fn error(kind: ErrorKind, function: &str, message: String, caller: &Caller) -> TaskError {
    TaskError {
        kind,
        function: function.to_owned(),
        message,
        backtrace: None,
        task_chain: caller.lineage.child(function).error_chain(),
        cause: None,
    }
}

fn args_of(args: Vec<SubmittedArg>) -> Vec<ArgSpec<Value>> {
    args.into_iter()
        .map(|arg| match arg {
            SubmittedArg::ByRef(id) => ArgSpec::ByRef(id),
            SubmittedArg::Value(value) => ArgSpec::Value(Value(value.hand_over())),
        })
        .collect()
}

/// The key a name lives under at the head: the job's scope (its own, or the shared
/// namespace it was started in) and the namespace the guest gave (`default` when none). One
/// job therefore never finds, calls or takes another's names unless both were started in the
/// same shared namespace; a guest's namespace string only ever nests inside its job's scope.
fn scoped_name(scope: &str, namespace: Option<&str>, name: &str) -> ActorName {
    ActorName {
        namespace: format!("{scope}/{}", namespace.unwrap_or("default")),
        name: name.to_owned(),
    }
}

impl NodeInner {
    /// The name a creation asks for, scoped to the caller's job.
    fn name_of(&self, caller: &Caller, options: &ActorOptions) -> Option<ActorName> {
        let name = options.name.as_deref()?;
        let scope = &self.jobs.get(caller.job, caller.driver).scope;
        Some(scoped_name(scope, options.namespace.as_deref(), name))
    }
}

/// An actor's resources: held for its life; 0 CPUs unless asked (as in Ray).
fn actor_resources(options: &ActorOptions) -> Result<ResourceSet, wasmray_core::ResourceError> {
    resources_of(&CallOptions {
        num_cpus: Some(options.num_cpus.unwrap_or(0.0)),
        num_gpus: options.num_gpus,
        resources: options.resources.clone(),
        ..CallOptions::default()
    })
}

impl NodeInner {
    /// What is wrong with a creation request, if anything.
    fn actor_problem(&self, caller: &Caller, request: &ActorRequest) -> Option<String> {
        let class = &request.class;
        let options = &request.options;
        let Some(module) = self.host.module(&caller.module) else {
            return Some("the module is not loaded".into());
        };
        if !module.has_actor_class(class) {
            return Some(format!(
                "the module has no actor class `{class}` (is it marked #[wasmray::actor]?)"
            ));
        }
        if let Err(error) = actor_resources(options) {
            return Some(error.to_string());
        }
        if options
            .memory_limit
            .is_some_and(|m| m > self.config.max_task_memory)
        {
            return Some(format!(
                "memory_limit is above this node's maximum of {} bytes",
                self.config.max_task_memory
            ));
        }
        if options.max_concurrency == Some(0) {
            return Some("max_concurrency must be at least 1".into());
        }
        None
    }

    /// The creation task `id` of a request that passed [`NodeInner::actor_problem`]. Its
    /// by-value arguments are handed over: the spec must go to the scheduler.
    fn actor_spec_of(&self, caller: &Caller, request: ActorRequest, id: TaskId) -> TaskSpec<Value> {
        let class = request.class;
        let options = request.options;
        let resources = actor_resources(&options).unwrap_or_default();
        let name = self.name_of(caller, &options);
        let actor = ActorSpec {
            class: class.clone(),
            max_restarts: options.max_restarts.unwrap_or(0),
            max_task_retries: options.max_task_retries.unwrap_or(0),
            max_concurrency: options.max_concurrency.unwrap_or(1),
            detached: options.detached,
            name,
        };
        TaskSpec {
            id,
            kind: TaskKind::ActorCreation(Arc::new(actor)),
            job: caller.job,
            module: caller.module,
            lineage: caller.lineage.child(&class),
            submitter: caller.task,
            driver: caller.driver,
            function: class,
            args: args_of(request.args),
            num_returns: 0,
            resources,
            max_calls: 0,
            max_retries: 0,
            retry_exceptions: false,
            memory_limit: options.memory_limit,
            cpu_time_limit_ms: options.cpu_time_limit_ms,
        }
    }
}

impl ActorServices for GuestServices {
    fn create_actor(
        &self,
        caller: &Caller,
        request: ActorRequest,
    ) -> BoxFuture<'static, Result<ObjectId, TaskError>> {
        let node = Arc::clone(&self.node);
        let caller = caller.clone();
        Box::pin(async move { node.create_actor(&caller, request).await })
    }

    fn call_actor(
        &self,
        caller: &Caller,
        job: &JobLimits,
        actor: ObjectId,
        method: &str,
        args: Vec<SubmittedArg>,
        num_returns: u32,
        options: &MethodOptions,
    ) -> Result<Vec<ObjectId>, String> {
        let node = &self.node;
        let target = actor.actor();
        let info = target.and_then(|id| node.lock_sched().actor_info(id));
        let function = match (&info, method.contains("::")) {
            (_, true) => method.to_owned(),
            (Some(info), false) => format!("{}::{method}", info.spec.class),
            (None, false) => method.to_owned(),
        };
        let mut spec = TaskSpec {
            id: node.mint.next_task(),
            kind: TaskKind::ActorMethod {
                actor: target.unwrap_or(ActorId(actor.task)),
            },
            job: caller.job,
            module: caller.module,
            lineage: caller.lineage.child(&function),
            submitter: caller.task,
            driver: caller.driver,
            function,
            args: args_of(args),
            num_returns,
            resources: ResourceSet::new(),
            max_calls: 0,
            // A method's retries: its own option, else its actor's `max_task_retries`.
            max_retries: options
                .max_task_retries
                .or_else(|| info.as_ref().map(|info| info.spec.max_task_retries))
                .unwrap_or(0),
            retry_exceptions: options.retry_exceptions.unwrap_or(false),
            memory_limit: None,
            cpu_time_limit_ms: None,
        };
        let ids: Vec<ObjectId> = spec.return_ids().collect();
        let problem = match &info {
            _ if target.is_none() => {
                Some("the handle passed as an actor is not an actor handle".to_owned())
            }
            None => None, // dead or gone: the scheduler fails the call with ActorDied
            Some(info) => {
                let module = node.host.module(&spec.module);
                let exists = module.is_some_and(|m| m.has_actor_method(&spec.function));
                (!exists).then(|| {
                    format!(
                        "actor class `{}` has no method `{}`",
                        info.spec.class, spec.function
                    )
                })
            }
        };
        if let Some(info) = &info {
            spec.memory_limit = info.memory_limit;
            spec.cpu_time_limit_ms = info.cpu_time_limit_ms;
        }
        match problem {
            None => {
                node.submit_within_quota(caller, job, spec)?;
            }
            Some(message) => {
                let error = error(ErrorKind::InvalidTask, &spec.function, message, caller);
                node.event(Event::Reject {
                    spec: Arc::new(spec),
                    error,
                });
            }
        }
        Ok(ids)
    }

    fn get_actor(
        &self,
        caller: &Caller,
        name: &str,
        namespace: Option<&str>,
        class: &str,
    ) -> BoxFuture<'static, Result<ObjectId, TaskError>> {
        let node = Arc::clone(&self.node);
        let caller = caller.clone();
        let (name, namespace, class) = (
            name.to_owned(),
            namespace.map(str::to_owned),
            class.to_owned(),
        );
        Box::pin(async move {
            node.get_actor(&caller, &name, namespace.as_deref(), &class)
                .await
        })
    }

    fn kill_actor(&self, actor: ObjectId, no_restart: bool) {
        if let Some(actor) = actor.actor() {
            self.node.event(Event::KillActor { actor, no_restart });
        }
    }
}

impl NodeInner {
    async fn create_actor(
        self: &Arc<Self>,
        caller: &Caller,
        request: ActorRequest,
    ) -> Result<ObjectId, TaskError> {
        let node = self;
        let class = request.class.clone();
        // Until the spec is built, a refused request's by-value arguments are dropped with it,
        // which gives back the references they counted.
        if let Some(message) = node.actor_problem(caller, &request) {
            return Err(error(ErrorKind::InvalidTask, &class, message, caller));
        }
        let quotas = node.jobs.get(caller.job, caller.driver).quotas;
        if node.lock_sched().job_actors(caller.job) >= quotas.max_actors {
            let message = QuotaExceeded::new(Quota::Actors, &quotas).to_string();
            return Err(error(ErrorKind::InvalidTask, &class, message, caller));
        }
        let handle = node
            .store
            .create_from(&node.node_account, &[], Vec::new())
            .map_err(|e| error(ErrorKind::System, &class, e.to_string(), caller))?;
        let id = node.mint.next_task();
        // A name is claimed at the head before the actor exists; the scheduler gives it back
        // when the actor dies.
        if let Some(name) = node.name_of(caller, &request.options) {
            let ask = HeadRequest::ClaimName {
                name: name.clone(),
                actor: id,
                class: class.clone(),
                job: caller.job,
            };
            let claimed = node.ask_head(ask).await;
            if claimed != Some(HeadAnswer::Claimed(true)) {
                let message = match claimed {
                    None => "the node is shutting down".to_owned(),
                    Some(_) => format!(
                        "an actor named `{}` already exists in namespace `{}`",
                        name.name,
                        request.options.namespace.as_deref().unwrap_or("default")
                    ),
                };
                return Err(error(ErrorKind::InvalidTask, &class, message, caller));
            }
        }
        let mut spec = node.actor_spec_of(caller, request, id);
        let actor = ActorId(spec.id);
        node.with_sched(|sched, now| {
            let lifted = node.lift_large_args(sched, now, &mut spec);
            let spec = Arc::new(spec);
            let handle = Value(handle);
            sched.handle(now, Event::CreateActor { spec, handle });
            for id in lifted {
                sched.handle(now, Event::Release(id));
            }
        });
        Ok(actor.handle_object())
    }

    async fn get_actor(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
        namespace: Option<&str>,
        class: &str,
    ) -> Result<ObjectId, TaskError> {
        let node = self;
        let key = scoped_name(
            &node.jobs.get(caller.job, caller.driver).scope,
            namespace,
            name,
        );
        let not_found = |message: String| error(ErrorKind::InvalidTask, class, message, caller);
        let missing = || {
            not_found(format!(
                "no live actor named `{name}` in namespace `{}`",
                namespace.unwrap_or("default")
            ))
        };
        let found = node
            .ask_head(HeadRequest::LookupName { name: key.clone() })
            .await;
        let Some(HeadAnswer::Found(Some((task, found_class)))) = found else {
            return Err(missing());
        };
        if found_class != class {
            return Err(not_found(format!(
                "the actor named `{}` is a `{found_class}`, not a `{class}`",
                key.name
            )));
        }
        let actor = ActorId(task);
        let handle = actor.handle_object();
        if actor.0.node() != node.id {
            // Another node owns it: ask the owner for a reference (it says no if the actor
            // is gone).
            let granted = node.asks.open_borrow(handle);
            node.event(Event::Borrow(handle));
            return match granted.await {
                Ok(true) => Ok(handle),
                _ => Err(missing()),
            };
        }
        node.with_sched(|sched, now| {
            // The name may outlive its actor for a moment (it is given back after death).
            sched.actor_info(actor).ok_or_else(missing)?;
            sched.handle(now, Event::AddRef(handle));
            Ok(handle)
        })
    }
}
