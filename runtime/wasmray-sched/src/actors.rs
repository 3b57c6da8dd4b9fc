//! Actors in the scheduler: each actor's lifecycle, its queue of method calls, restarts and
//! death. Names live at the head ([`crate::Head`]): the node claims one before it creates a
//! named actor, and the scheduler gives it back when the actor dies.
//!
//! An actor is created by a creation task (which holds the actor's resources from dispatch
//! until the actor dies) and then serves method calls one at a time, or up to
//! `max_concurrency`, strictly in submission order: a call whose arguments are not ready holds
//! back the calls behind it. When the node reports the instance lost, calls in flight are
//! retried up to `max_task_retries` and the actor is re-created up to `max_restarts`; after
//! that, or after `kill`, every pending and future call fails with `ActorDied`. An actor
//! whose handles are all gone drains its queue and then dies quietly (unless detached).

use crate::actor_table::{ActorEntry, ActorInfo, ActorState, Queued, Route};
use crate::errors::actor_died;
use crate::link::Peer;
use crate::message::{HeadRequest, Message, RemoteOutcome};
use crate::scheduler::{Action, Outcome, RunTask, TaskEntry, TaskState};
use crate::{ObjectValue, Scheduler};
use std::collections::HashSet;
use std::sync::Arc;
use wasmray_core::{
    ActorId, ArgSpec, GPU, JobId, NodeId, ResourceSet, TaskError, TaskId, TaskKind, TaskSpec,
};

impl<V: ObjectValue> Scheduler<V> {
    /// Creates an actor from its creation task (see [`crate::Event::CreateActor`]). A spec
    /// of another kind is rejected as invalid.
    pub(crate) fn submit_actor(&mut self, spec: Arc<TaskSpec<V>>, handle: V) {
        let TaskKind::ActorCreation(actor_spec) = &spec.kind else {
            let error = crate::errors::invalid(&spec, "not an actor creation".into());
            self.reject(spec, error);
            return;
        };
        let actor_spec = Arc::clone(actor_spec);
        let id = ActorId(spec.id);
        self.put(id.handle_object(), handle);
        if actor_spec.detached {
            self.add_ref(id.handle_object());
        }
        self.actors
            .entries
            .insert(id, ActorEntry::new(actor_spec, Arc::clone(&spec), None));
        self.submit_arc(spec);
    }

    /// Host side: the owner leased an actor's creation here and it was granted (its
    /// resources and `gpu_ids` are taken and held for the actor's life).
    pub(crate) fn host_actor(
        &mut self,
        owner: NodeId,
        spec: &Arc<TaskSpec<V>>,
        attempt: u32,
        gpu_ids: Vec<u32>,
    ) {
        let TaskKind::ActorCreation(actor_spec) = &spec.kind else {
            return;
        };
        let mut entry = ActorEntry::new(Arc::clone(actor_spec), Arc::clone(spec), Some(owner));
        // Restarts made elsewhere count against `max_restarts` here too.
        entry.restarts = attempt;
        entry.holding = true;
        entry.gpu_ids = gpu_ids;
        self.actors.entries.insert(ActorId(spec.id), entry);
    }

    /// Owner side: the actor's constructor succeeded on `host`, which runs it from now on.
    pub(crate) fn actor_placed(&mut self, actor: ActorId, host: NodeId) {
        let Some(entry) = self.actors.entries.get_mut(&actor) else {
            // Nothing references it any more (its handles went, or its job ended): it must
            // not live on, and its host must keep nothing of it. (No call was sent there:
            // callers learn where it runs from here.)
            self.send(Peer::Node(host), Message::HandlesGone { actor });
            return;
        };
        entry.remote_host = Some(host);
        // The creation's arguments stay referenced here too (the host holds its own): the
        // actor may have to be created again elsewhere, from them.
        let mut follow_up = None;
        match entry.state {
            ActorState::Dead(_) => {
                follow_up = Some(Message::Kill {
                    actor,
                    no_restart: true,
                })
            }
            _ if entry.handle_dropped => {
                entry.state = ActorState::Draining;
                follow_up = Some(Message::HandlesGone { actor });
            }
            _ => entry.state = ActorState::Alive,
        }
        let locators = std::mem::take(&mut entry.locators);
        let retries = entry.spec.max_task_retries;
        if let Some(message) = follow_up {
            self.send(Peer::Node(host), message);
        }
        for node in locators {
            self.send(
                Peer::Node(node),
                Message::Located {
                    actor,
                    host: Ok(host),
                    retries,
                },
            );
        }
        self.dispatch_actor(actor);
    }

    /// Owner side: `node` asks where `actor` runs (not on `not_at`, which it knows died).
    pub(crate) fn locate(&mut self, node: NodeId, actor: ActorId, not_at: Option<NodeId>) {
        let here = self.config.node;
        let retries = self
            .actors
            .entries
            .get(&actor)
            .map_or(0, |e| e.spec.max_task_retries);
        let host = match self.actors.entries.get_mut(&actor) {
            None => Err(Arc::new(actor_died("", "the actor no longer exists", None))),
            Some(entry) => match (&entry.state, entry.remote_host) {
                (ActorState::Dead(cause), _) => Err(Arc::clone(cause)),
                // This node has not heard of that death yet: it answers once it has (the
                // actor restarted elsewhere, or dead).
                (_, Some(host)) if Some(host) == not_at => {
                    if !entry.locators.contains(&node) {
                        entry.locators.push(node);
                    }
                    return;
                }
                (_, Some(host)) => Ok(host),
                (ActorState::Alive | ActorState::Draining, None) => Ok(here),
                _ => {
                    if !entry.locators.contains(&node) {
                        entry.locators.push(node);
                    }
                    return;
                }
            },
        };
        self.send(
            Peer::Node(node),
            Message::Located {
                actor,
                host,
                retries,
            },
        );
    }

    /// Caller side: the owner says where `actor` runs; the calls waiting go there, in order.
    /// `retries` is the actor's `max_task_retries`: how often a call made here without its
    /// own is sent again if the node running the actor dies. An owner that names a node
    /// this one knows died answered before it heard: it is asked again, and answers once it
    /// knows where the actor runs next (the calls would wait on the dead node for ever).
    pub(crate) fn located(
        &mut self,
        actor: ActorId,
        host: Result<NodeId, Arc<TaskError>>,
        retries: u32,
    ) {
        self.actors.retries.insert(actor, retries);
        if !matches!(self.actors.routes.get(&actor), Some(Route::Locating(_))) {
            return;
        }
        if let Ok(host) = host
            && self.links.is_dead(Peer::Node(host))
        {
            let not_at = Some(host);
            self.send(
                Peer::Node(actor.0.node()),
                Message::Locate { actor, not_at },
            );
            return;
        }
        let waiting = match self.actors.routes.get_mut(&actor) {
            Some(Route::Locating(waiting)) => std::mem::take(waiting),
            _ => return,
        };
        match host {
            Ok(host) => {
                self.actors.routes.insert(actor, Route::At(host));
                for task in waiting {
                    self.forward_call(task, host);
                }
            }
            Err(cause) => {
                self.actors
                    .routes
                    .insert(actor, Route::Dead(Arc::clone(&cause)));
                for task in waiting {
                    if let Some(call) = self.tasks.get(&task) {
                        let error = actor_died(&call.spec.function, "its actor died", Some(&cause));
                        self.fail_for_good(task, error);
                    }
                }
            }
        }
    }

    /// Sends a call to the node hosting its actor; its results come back as a lease's do.
    pub(crate) fn forward_call(&mut self, task: TaskId, host: NodeId) {
        let Some(call) = self.tasks.get_mut(&task) else {
            return;
        };
        call.state = TaskState::Leased { node: host };
        let spec = Arc::clone(&call.spec);
        let attempt = call.attempt;
        self.send(Peer::Node(host), Message::Call { spec, attempt });
    }

    /// Host side: a caller on `caller` sent a call for an actor running here.
    pub(crate) fn call_in(&mut self, caller: NodeId, spec: Arc<TaskSpec<V>>, attempt: u32) {
        let task = spec.id;
        let TaskKind::ActorMethod { actor } = spec.kind else {
            self.return_grants(&Message::Call { spec, attempt });
            return;
        };
        if task.node() != caller || self.tasks.contains_key(&task) {
            self.return_grants(&Message::Call { spec, attempt });
            return;
        }
        let (missing, failed_arg) = self.reference_args(&spec, true, true);
        self.tasks.insert(
            task,
            TaskEntry::new(
                Arc::clone(&spec),
                TaskState::Waiting { missing },
                attempt,
                Some(caller),
            ),
        );
        let hosted = self
            .actors
            .entries
            .get(&actor)
            .is_some_and(|e| e.remote_host.is_none());
        let queued = if hosted {
            self.enqueue_call(actor, task, &spec).map(|_| ())
        } else {
            Err(actor_died(
                &spec.function,
                "the actor does not run on this node",
                None,
            ))
        };
        if let Some(error) = failed_arg.or(queued.err()) {
            self.fail_for_good(task, error);
        } else if missing == 0 {
            self.make_ready(task);
        }
    }

    /// What the scheduler knows of a live actor it owns.
    pub fn actor_info(&self, id: ActorId) -> Option<ActorInfo> {
        let entry = self.actors.entries.get(&id)?;
        if matches!(entry.state, ActorState::Dead(_)) {
            return None;
        }
        Some(ActorInfo {
            id,
            spec: Arc::clone(&entry.spec),
            job: entry.creation.job,
            memory_limit: entry.creation.memory_limit,
            cpu_time_limit_ms: entry.creation.cpu_time_limit_ms,
        })
    }

    /// Kills an actor (see [`crate::Event::KillActor`]).
    pub(crate) fn kill_actor(&mut self, actor: ActorId, no_restart: bool) {
        let owner = actor.0.node();
        let Some(entry) = self.actors.entries.get(&actor) else {
            if owner != self.config.node {
                // Its owner knows where it runs.
                self.send(Peer::Node(owner), Message::Kill { actor, no_restart });
            }
            return;
        };
        if matches!(entry.state, ActorState::Dead(_)) {
            return;
        }
        if let Some(host) = entry.remote_host {
            self.send(Peer::Node(host), Message::Kill { actor, no_restart });
            return;
        }
        let class = entry.spec.class.clone();
        self.actions.push(Action::StopActor(actor));
        if no_restart {
            let cause = actor_died(&class, "it was killed with kill()", None);
            self.actor_dies(actor, cause);
        } else {
            let cause = actor_died(&class, "it was killed with kill_and_restart()", None);
            self.actor_lost(actor, cause);
        }
    }

    /// The node lost the actor's instance (see [`crate::Event::ActorLost`]).
    pub(crate) fn actor_lost(&mut self, actor: ActorId, cause: TaskError) {
        let Some(entry) = self.actors.entries.get_mut(&actor) else {
            return;
        };
        // Only an instance that was serving can be lost; a loss reported while a new one is
        // being constructed (a second report, or a kill that already restarted it) is moot.
        if !matches!(
            entry.state,
            ActorState::Alive | ActorState::Lost | ActorState::Draining
        ) {
            return;
        }
        if entry.restarts >= entry.spec.max_restarts || entry.handle_dropped {
            self.actor_dies(actor, cause);
            return;
        }
        entry.restarts += 1;
        entry.state = ActorState::Creating;
        let gpu_ids = entry.gpu_ids.clone();
        let spec = Arc::clone(&entry.creation);
        let attempt = entry.restarts;
        self.actions.push(Action::Restart {
            actor,
            attempt,
            cause: Arc::new(cause),
        });
        let args = self.resolve_args(&spec).unwrap_or_default();
        self.tasks.insert(
            spec.id,
            TaskEntry::new(
                Arc::clone(&spec),
                TaskState::Running { blocked: false },
                attempt,
                None,
            ),
        );
        self.actions.push(Action::Run(RunTask {
            spec,
            args,
            attempt,
            gpu_ids,
        }));
    }

    /// Owner side: `host`, which ran `actor` (or was constructing it), died. The actor is
    /// created again from its creation spec and the arguments it kept, placed as a first
    /// creation is, up to `max_restarts`; after that it dies.
    pub(crate) fn actor_host_died(&mut self, actor: ActorId, host: NodeId) {
        let Some(entry) = self.actors.entries.get_mut(&actor) else {
            return;
        };
        if matches!(entry.state, ActorState::Dead(_)) {
            return;
        }
        let cause = actor_died(
            &entry.spec.class,
            &format!("node {host} it ran on died"),
            None,
        );
        if entry.restarts >= entry.spec.max_restarts || entry.handle_dropped {
            self.actor_dies(actor, cause);
            return;
        }
        entry.restarts += 1;
        entry.state = ActorState::Creating;
        entry.remote_host = None;
        let attempt = entry.restarts;
        let spec = Arc::clone(&entry.creation);
        #[cfg(test)]
        {
            // Its creation settles once more (the simulator's check counts it as a rebuild).
            *self.rebuilds.entry(spec.id).or_default() += 1;
        }
        self.actions.push(Action::Restart {
            actor,
            attempt,
            cause: Arc::new(cause),
        });
        // The actor still references the arguments (`holds_args`): the new attempt only
        // waits for them.
        let (missing, failed) = self.await_args(&spec, true);
        self.run_again(spec, attempt, missing, failed);
    }

    /// Owner side: the creation `task` failed for a system reason where it ran (its node
    /// could not fetch the module, say). It runs again, counted as a restart, if the actor
    /// may still restart; returns whether it does.
    pub(crate) fn creation_retried(&mut self, task: TaskId, error: &TaskError) -> bool {
        let actor = ActorId(task);
        let Some(entry) = self.actors.entries.get_mut(&actor) else {
            return false;
        };
        if matches!(entry.state, ActorState::Dead(_))
            || entry.handle_dropped
            || entry.restarts >= entry.spec.max_restarts
        {
            return false;
        }
        entry.restarts += 1;
        let attempt = entry.restarts;
        let Some(creation) = self.tasks.get_mut(&task) else {
            return false;
        };
        creation.attempt = creation.attempt.max(attempt);
        self.actions.push(Action::Restart {
            actor,
            attempt,
            cause: Arc::new(error.clone()),
        });
        self.make_ready(task);
        true
    }

    /// `node` died: routes to actors it hosted go back to asking their owners (who answer
    /// once they know where each runs next); calls waiting for an owner that was `node`
    /// fail, as do routes to its actors.
    pub(crate) fn reroute_actors_of(&mut self, node: NodeId) {
        let mut relocate = Vec::new();
        let mut orphaned = Vec::new();
        for (actor, route) in self.actors.routes.iter_mut() {
            let owner = actor.0.node();
            if owner == node {
                let cause = Arc::new(actor_died(
                    "",
                    &format!("its owner's node {node} died"),
                    None,
                ));
                if let Route::Locating(waiting) = route {
                    orphaned.extend(waiting.drain(..).map(|t| (t, Arc::clone(&cause))));
                }
                *route = Route::Dead(cause);
            } else if matches!(route, Route::At(host) if *host == node) {
                *route = Route::Locating(Vec::new());
                relocate.push(*actor);
            }
        }
        for actor in relocate {
            let not_at = Some(node);
            self.send(
                Peer::Node(actor.0.node()),
                Message::Locate { actor, not_at },
            );
        }
        for (task, cause) in orphaned {
            if let Some(call) = self.tasks.get(&task) {
                let error = actor_died(&call.spec.function, "its actor died", Some(&cause));
                self.fail_for_good(task, error);
            }
        }
    }

    /// Calls made here that were sent to `node`, which died: in the order they were made,
    /// each goes again to wherever its actor runs next while it has retries left
    /// (`max_task_retries`); the others fail with `ActorDied`.
    pub(crate) fn calls_lost_with(&mut self, node: NodeId, mut calls: Vec<TaskId>) {
        // IDs minted on one node increase: this is the order the calls were made in.
        calls.sort_unstable();
        for task in calls {
            let Some(call) = self.tasks.get_mut(&task) else {
                continue;
            };
            let TaskKind::ActorMethod { actor } = call.spec.kind else {
                continue;
            };
            // A call's own `max_task_retries`, else its actor's (as its owner said).
            let retries = match call.spec.max_retries {
                0 => self.actors.retries.get(&actor).copied().unwrap_or(0),
                own => own,
            };
            if call.attempt >= retries {
                let error = actor_died(
                    &call.spec.function,
                    &format!("node {node} running its actor died"),
                    None,
                );
                self.fail_for_good(task, error);
                continue;
            }
            call.attempt += 1;
            call.state = TaskState::Ready;
            let spec = Arc::clone(&call.spec);
            if let Err(error) = self.enqueue_call(actor, task, &spec) {
                self.fail_for_good(task, error);
            }
        }
    }

    /// The driver of `job` exited here: its actors die, here and (through the head) on every
    /// other node.
    pub(crate) fn driver_exited(&mut self, job: JobId) {
        self.job_finished(job);
        // A job that made a million objects must not leave a table sized for them.
        self.objects.shrink();
        self.tasks.shrink();
        self.send(Peer::Head, Message::JobEnded { job });
    }

    /// Kills every actor of `job` that is not detached and runs (or is owned) here, and
    /// cancels the job's tasks. A host keeps nothing of the job's actors it ran for other
    /// nodes: their handles went with the job's driver, and the owner's word that they went
    /// may never come (it forgets an actor whose job ended, and may leave at once).
    pub(crate) fn job_finished(&mut self, job: JobId) {
        self.cancel_job_tasks(job);
        self.reject_queued_leases(|q| q.spec.job == job);
        let doomed: Vec<(ActorId, String, bool, bool)> = self
            .actors
            .entries
            .iter()
            .filter(|(_, e)| e.creation.job == job && !e.spec.detached)
            .map(|(id, e)| {
                let alive = !matches!(e.state, ActorState::Dead(_));
                (*id, e.spec.class.to_owned(), alive, e.owner.is_some())
            })
            .collect();
        for (actor, class, alive, hosted) in doomed {
            if alive {
                self.actions.push(Action::StopActor(actor));
                self.actor_dies(actor, actor_died(&class, "its job ended", None));
            }
            if hosted {
                self.actors.entries.remove(&actor);
            }
        }
        self.forget_idle_routes();
    }

    /// Forgets the routes (and retry counts) to actors owned elsewhere that no call here is
    /// for: they are a cache of the owners' answers, asked again at the next call, so a node
    /// that serves job after job does not keep one for every actor it ever called. Done at
    /// each job's end; a route that calls still use then goes at a later one.
    fn forget_idle_routes(&mut self) {
        if self.actors.routes.is_empty() && self.actors.retries.is_empty() {
            return;
        }
        let called: HashSet<ActorId> = self
            .tasks
            .values()
            .filter_map(|t| match t.spec.kind {
                TaskKind::ActorMethod { actor } => Some(actor),
                _ => None,
            })
            .collect();
        self.actors.routes.retain(|actor, _| called.contains(actor));
        self.actors
            .retries
            .retain(|actor, _| called.contains(actor));
    }

    /// Number of actors that are not dead.
    pub fn live_actors(&self) -> usize {
        self.actors
            .entries
            .values()
            .filter(|e| !matches!(e.state, ActorState::Dead(_)) && e.remote_host.is_none())
            .count()
    }

    /// A method call was submitted: queue it behind the actor's other calls (here, or on the
    /// node the actor runs on), or fail it if the actor is gone.
    pub(crate) fn enqueue_call(
        &mut self,
        actor: ActorId,
        task: TaskId,
        spec: &TaskSpec<V>,
    ) -> Result<Queued, TaskError> {
        match self.actors.entries.get_mut(&actor) {
            Some(ActorEntry {
                state: ActorState::Dead(cause),
                ..
            }) => Err(actor_died(&spec.function, "its actor is dead", Some(cause))),
            Some(ActorEntry {
                remote_host: Some(host),
                ..
            }) => {
                let host = *host;
                self.forward_call(task, host);
                Ok(Queued::Forwarded)
            }
            Some(entry) => {
                entry.queue.push_back(task);
                Ok(Queued::Here)
            }
            None if actor.0.node() != self.config.node => {
                match self.actors.routes.get_mut(&actor) {
                    Some(Route::At(host)) => {
                        let host = *host;
                        self.forward_call(task, host);
                    }
                    Some(Route::Dead(cause)) => {
                        return Err(actor_died(&spec.function, "its actor is dead", Some(cause)));
                    }
                    Some(Route::Locating(waiting)) => waiting.push(task),
                    None => {
                        self.actors
                            .routes
                            .insert(actor, Route::Locating(vec![task]));
                        let not_at = None;
                        self.send(
                            Peer::Node(actor.0.node()),
                            Message::Locate { actor, not_at },
                        );
                    }
                }
                Ok(Queued::Forwarded)
            }
            None => Err(actor_died(
                &spec.function,
                "the actor no longer exists",
                None,
            )),
        }
    }

    /// Whether calls to `actor` made here go to another node.
    pub(crate) fn calls_go_elsewhere(&self, actor: ActorId) -> bool {
        match self.actors.entries.get(&actor) {
            Some(entry) => entry.remote_host.is_some(),
            None => actor.0.node() != self.config.node,
        }
    }

    /// Starts the calls at the head of the actor's queue that are ready, up to its concurrency.
    pub(crate) fn dispatch_actor(&mut self, actor: ActorId) {
        if let Some(entry) = self.actors.entries.get_mut(&actor)
            && let Some(host) = entry.remote_host
        {
            // A proxy: what waited for the actor to be placed goes to its host, in order.
            let queued: Vec<TaskId> = entry.queue.drain(..).collect();
            for task in queued {
                self.forward_call(task, host);
            }
            self.maybe_finish_draining(actor);
            return;
        }
        loop {
            let Some(entry) = self.actors.entries.get_mut(&actor) else {
                return;
            };
            if !matches!(entry.state, ActorState::Alive | ActorState::Draining)
                || entry.running >= entry.spec.max_concurrency as usize
            {
                break;
            }
            let Some(&front) = entry.queue.front() else {
                break;
            };
            let Some(task) = self.tasks.get_mut(&front) else {
                entry.queue.pop_front();
                continue;
            };
            if !matches!(task.state, TaskState::Ready) {
                break;
            }
            entry.queue.pop_front();
            entry.running += 1;
            task.state = TaskState::Running { blocked: false };
            let (spec, attempt) = (Arc::clone(&task.spec), task.attempt);
            let gpu_ids = entry.gpu_ids.clone();
            if let Err(spec) = self.push_run(spec, attempt, gpu_ids) {
                if let Some(entry) = self.actors.entries.get_mut(&actor) {
                    entry.running -= 1;
                }
                let error = crate::errors::invalid(
                    &spec,
                    "an argument was lost before the call could run".into(),
                );
                self.fail_for_good(front, error);
            }
        }
        self.maybe_finish_draining(actor);
    }

    /// Whether a queued creation task may start (its actor is not dead); if so, the actor
    /// holds the resources (and the GPUs `gpu_ids`) the dispatch takes from here on.
    pub(crate) fn creation_may_start(&mut self, actor: ActorId, gpu_ids: &[u32]) -> bool {
        match self.actors.entries.get_mut(&actor) {
            Some(entry) if !matches!(entry.state, ActorState::Dead(_)) => {
                entry.holding = true;
                entry.gpu_ids = gpu_ids.to_vec();
                true
            }
            _ => false,
        }
    }

    /// The creation task failed before it ran (an argument failed, it is infeasible).
    pub(crate) fn creation_failed_early(&mut self, actor: ActorId, error: &Arc<TaskError>) {
        let Some(entry) = self.actors.entries.get(&actor) else {
            return;
        };
        if matches!(entry.state, ActorState::Creating) {
            let class = entry.spec.class.clone();
            self.actor_dies(
                actor,
                actor_died(&class, "it could not be created", Some(error)),
            );
        }
    }

    /// The constructor of `task` finished.
    pub(crate) fn creation_finished(&mut self, task: TaskId, outcome: Outcome<V>) {
        let actor = ActorId(task);
        let Some(entry) = self.tasks.remove(&task) else {
            return;
        };
        if let Some(owner) = entry.owner {
            // Hosted for another node: it hears how the construction went.
            let remote = match &outcome {
                Outcome::Returned(_) => RemoteOutcome::Returned(Vec::new()),
                Outcome::Failed { error, system } => RemoteOutcome::Failed {
                    error: error.clone(),
                    system: *system,
                },
            };
            self.send(
                Peer::Node(owner),
                Message::Done {
                    task,
                    attempt: entry.attempt,
                    outcome: remote,
                },
            );
            // Like a local creation's, the arguments stay referenced by the actor (for
            // restarts) until it dies.
        }
        let Some(actor_entry) = self.actors.entries.get_mut(&actor) else {
            return;
        };
        match outcome {
            Outcome::Returned(_) if matches!(actor_entry.state, ActorState::Creating) => {
                actor_entry.state = if actor_entry.handle_dropped {
                    ActorState::Draining
                } else {
                    ActorState::Alive
                };
                self.dispatch_actor(actor);
            }
            Outcome::Returned(_) => {}
            Outcome::Failed { error, .. } => {
                let class = entry.spec.function.clone();
                let cause = actor_died(&class, "its constructor failed", Some(&Arc::new(error)));
                self.actions.push(Action::StopActor(actor));
                self.actor_dies(actor, cause);
            }
        }
    }

    /// A method call finished. `system` failures mean the instance was lost: the call is
    /// retried (ahead of the queue) up to its `max_retries` (the node sets it from the call's
    /// options or its actor's `max_task_retries`); guest failures too with `retry_exceptions`.
    pub(crate) fn method_finished(&mut self, task: TaskId, actor: ActorId, outcome: Outcome<V>) {
        let Some(entry) = self.actors.entries.get_mut(&actor) else {
            self.finish_plain(task, outcome);
            return;
        };
        entry.running = entry.running.saturating_sub(1);
        match outcome {
            Outcome::Failed {
                error,
                system: false,
            } if !matches!(entry.state, ActorState::Dead(_))
                && self.tasks.get(&task).is_some_and(|call| {
                    call.spec.retry_exceptions && call.attempt < call.spec.max_retries
                }) =>
            {
                // The instance is fine: the call goes back to the head of the queue.
                let _ = error;
                if let Some(call) = self.tasks.get_mut(&task) {
                    call.attempt += 1;
                    call.state = TaskState::Ready;
                }
                if let Some(entry) = self.actors.entries.get_mut(&actor) {
                    entry.queue.push_front(task);
                }
            }
            Outcome::Failed {
                error,
                system: true,
            } => {
                if matches!(entry.state, ActorState::Alive | ActorState::Draining) {
                    // Nothing more runs on the lost instance until it is re-created.
                    entry.state = ActorState::Lost;
                }
                let dead = match &entry.state {
                    ActorState::Dead(cause) => Some(Arc::clone(cause)),
                    _ => None,
                };
                let Some(call) = self.tasks.get_mut(&task) else {
                    return;
                };
                if let Some(cause) = dead {
                    let error = actor_died(&call.spec.function, "its actor died", Some(&cause));
                    self.fail_for_good(task, error);
                } else if call.attempt < call.spec.max_retries {
                    call.attempt += 1;
                    call.state = TaskState::Ready;
                    if let Some(entry) = self.actors.entries.get_mut(&actor) {
                        entry.queue.push_front(task);
                    }
                } else {
                    self.fail_for_good(task, error);
                }
            }
            other => self.finish_plain(task, other),
        }
        self.dispatch_actor(actor);
    }

    /// The actor dies: its resources and arguments go back, its name is freed, and every call
    /// waiting for it fails with `ActorDied` caused by `cause`.
    pub(crate) fn actor_dies(&mut self, actor: ActorId, cause: TaskError) {
        let Some(entry) = self.actors.entries.get_mut(&actor) else {
            return;
        };
        if matches!(entry.state, ActorState::Dead(_)) {
            return;
        }
        let cause = Arc::new(cause);
        let never_served = matches!(entry.state, ActorState::Creating);
        entry.state = ActorState::Dead(Arc::clone(&cause));
        let queued: Vec<TaskId> = entry.queue.drain(..).collect();
        let resources = if entry.holding {
            entry.creation.resources.clone()
        } else {
            ResourceSet::new()
        };
        entry.holding = false;
        let gpu_ids = std::mem::take(&mut entry.gpu_ids);
        let release_args = std::mem::take(&mut entry.holds_args);
        let creation = Arc::clone(&entry.creation);
        let (name, detached, dropped) = (
            entry.spec.name.clone(),
            entry.spec.detached,
            entry.handle_dropped,
        );
        let owner = entry.owner;
        let locators = std::mem::take(&mut entry.locators);
        let retries = entry.spec.max_task_retries;
        self.available.add_capped(&resources, &self.total);
        self.gpus.give_back(&gpu_ids, resources.get(GPU));
        for node in locators {
            self.send(
                Peer::Node(node),
                Message::Located {
                    actor,
                    host: Err(Arc::clone(&cause)),
                    retries,
                },
            );
        }
        if let Some(owner) = owner {
            self.send(
                Peer::Node(owner),
                Message::ActorGone {
                    actor,
                    cause: Arc::clone(&cause),
                },
            );
        }
        if let Some(name) = name {
            let ask = HeadRequest::ReleaseName {
                name,
                actor: actor.0,
            };
            self.send(Peer::Head, Message::Ask { request: 0, ask });
        }
        // A creation still waiting for its arguments will never run: forget it. (A queued one
        // is dropped by `dispatch`, which gives back what it took; a running one reports.)
        if let Some(waiting) = self
            .tasks
            .get(&creation.id)
            .filter(|t| matches!(t.state, TaskState::Waiting { .. }))
        {
            match waiting.owner {
                // Leased here: the owner hears it failed.
                Some(owner) => self.finish_leased_in(
                    creation.id,
                    owner,
                    Outcome::Failed {
                        error: (*cause).clone(),
                        system: false,
                    },
                ),
                None => {
                    self.tasks.remove(&creation.id);
                }
            }
        }
        if release_args {
            let mut events = Vec::new();
            self.release_args(&creation, &mut events);
            self.push_events(events);
        }
        for call in queued {
            if let Some(waiting) = self.tasks.get(&call) {
                let error = actor_died(&waiting.spec.function, "its actor died", Some(&cause));
                self.fail_for_good(call, error);
            }
        }
        // The handle object (and a detached actor's own reference to it) lives on the owner.
        if detached && owner.is_none() {
            self.release(actor.handle_object());
        }
        // Hosted for an owner that is gone, or dying before it ever served (its owner never
        // learnt it runs here, so will never say its handles went): nothing of it is kept
        // (its creation spec holds its arguments' values).
        let owner_gone = owner.is_some_and(|o| self.links.is_dead(Peer::Node(o)));
        if dropped || owner_gone || (owner.is_some() && never_served) {
            self.actors.entries.remove(&actor);
        }
        self.actions.push(Action::ActorDied { actor, cause });
    }

    /// The last handle to `actor` is gone.
    pub(crate) fn actor_handle_freed(&mut self, actor: ActorId) {
        let Some(entry) = self.actors.entries.get_mut(&actor) else {
            return;
        };
        entry.handle_dropped = true;
        if let Some(host) = entry.remote_host {
            self.send(Peer::Node(host), Message::HandlesGone { actor });
        }
        let Some(entry) = self.actors.entries.get_mut(&actor) else {
            return;
        };
        match entry.state {
            ActorState::Dead(_) => {
                self.actors.entries.remove(&actor);
            }
            ActorState::Alive => {
                entry.state = ActorState::Draining;
                self.maybe_finish_draining(actor);
            }
            _ => {}
        }
    }

    fn maybe_finish_draining(&mut self, actor: ActorId) {
        let Some(entry) = self.actors.entries.get(&actor) else {
            return;
        };
        if matches!(entry.state, ActorState::Draining)
            && entry.queue.is_empty()
            && entry.running == 0
        {
            let class = entry.spec.class.clone();
            self.actions.push(Action::StopActor(actor));
            self.actor_dies(
                actor,
                actor_died(&class, "every handle to it was dropped", None),
            );
        }
    }

    /// A call that failed before it started (a dependency failed): take it out of the queue.
    pub(crate) fn forget_call(&mut self, actor: ActorId, task: TaskId) {
        if let Some(entry) = self.actors.entries.get_mut(&actor) {
            entry.queue.retain(|t| *t != task);
        }
    }

    /// The values of `spec`'s arguments, or `None` if one is not ready.
    pub(crate) fn resolve_args(&self, spec: &TaskSpec<V>) -> Option<Vec<V>> {
        spec.args
            .iter()
            .map(|arg| match arg {
                ArgSpec::Value(value) => Some(value.clone()),
                ArgSpec::ByRef(id) => match self.objects.get(*id).map(|e| &e.state) {
                    Some(crate::ObjectState::Ready(value)) => Some(value.clone()),
                    _ => None,
                },
            })
            .collect()
    }
}
