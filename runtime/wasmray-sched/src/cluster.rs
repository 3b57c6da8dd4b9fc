//! The scheduler's side of the cluster protocol: sending with reference grants, leases in and
//! out, subscriptions and pulls, node deaths, and reports to the head.
//!
//! Every message that carries references grants them to its receiver (one per occurrence):
//! the owner counts a grant to the receiver before it sends; a borrower passing a reference on
//! to a third node first tells the owner with a `Lend` (on the link to the owner, so it comes
//! before the borrower's own later `Release`); a reference sent to its owner needs nothing.
//! The receiver takes every granted reference in ([`Scheduler::take_in_value`],
//! `receive_ref`), whether it keeps the message's content or drops it, so counts stay exact.
//! See ARCHITECTURE.md, "Objects across nodes".

use crate::actor_table::ActorState;
use crate::errors::{cancelled, invalid, lost, owner_died};
use crate::lineage::NoRebuild;
use crate::link::{Envelope, Peer};
use crate::message::{Message, RemoteOutcome, RemoteStatus, Returned};
use crate::objects::{ObjectState, RefKind, Role};
use crate::scheduler::{Action, Outcome, TaskEntry, TaskState};
use crate::task_table::{MAX_QUEUED_LEASES, QueuedLease, may_queue};
use crate::time::Time;
use crate::view::Snapshot;
use crate::{ObjectValue, Scheduler};
use std::sync::Arc;
use wasmray_core::{
    ActorId, ErrorKind, GPU, NodeId, ObjectId, TaskError, TaskId, TaskKind, TaskSpec,
};

impl<V: ObjectValue> Scheduler<V> {
    /// Sends `message` on its link, granting the references it carries first.
    pub(crate) fn send(&mut self, to: Peer, message: Message<V>) {
        if self.links.is_dead(to) || self.fenced || (self.left && to != Peer::Head) {
            return;
        }
        if let Peer::Node(node) = to {
            for object in message.refs() {
                self.grant(object, node);
            }
        }
        if let Some(envelope) = self.links.send(self.now, to, message) {
            self.actions.push(Action::Send { to, envelope });
        }
    }

    fn grant(&mut self, object: ObjectId, to: NodeId) {
        let owner = object.task.node();
        if owner == self.config.node {
            self.objects.grant(object, to);
        } else if owner != to {
            self.send(Peer::Node(owner), Message::Lend { object, to });
        }
    }

    /// Takes in the references a received value holds (they were granted to this node).
    pub(crate) fn take_in_value(&mut self, value: &V) {
        for &inner in value.contained() {
            self.objects.receive_ref(inner, RefKind::Contained);
        }
    }

    /// Takes in, then gives back, the references a message granted whose content this node
    /// does not keep.
    pub(crate) fn return_grants(&mut self, message: &Message<V>) {
        let mut events = Vec::new();
        for object in message.refs() {
            self.objects.receive_ref(object, RefKind::Contained);
            self.objects
                .release(object, RefKind::Contained, &mut events);
        }
        self.push_events(events);
    }

    /// Drops the references a value this node will not keep holds.
    fn drop_value(&mut self, value: &V) {
        let mut events = Vec::new();
        self.objects
            .release_inside(&ObjectState::Ready(value.clone()), &mut events);
        self.push_events(events);
    }

    /// This node's resources now, as a snapshot newer than any before it if they changed.
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        if self.available != self.reported || self.store_used != self.reported_store {
            self.reported = self.available.clone();
            self.reported_store = self.store_used;
            self.report_version += 1;
        }
        let snapshot = Snapshot {
            version: self.report_version,
            total: self.total.clone(),
            available: self.available.clone(),
            store_used: self.store_used,
        };
        self.view.set_local(&snapshot);
        snapshot
    }

    pub(crate) fn next_report(&self) -> Time {
        let heartbeat = self.last_report.after(self.config.report_every);
        if self.view.has_peers() && self.available != self.head_has {
            heartbeat.min(self.last_report.after(self.config.report_gap))
        } else {
            heartbeat
        }
    }

    fn report_if_due(&mut self) {
        if self.now < self.next_report() {
            return;
        }
        let snapshot = self.snapshot();
        self.head_has = snapshot.available.clone();
        self.last_report = self.now;
        self.send(Peer::Head, Message::Report { snapshot });
    }

    /// After every event: acknowledgements owed, and a report if one is due.
    pub(crate) fn after_event(&mut self) {
        self.grant_queued_leases();
        self.check_drained();
        if self.view.has_peers() && self.available != self.head_has {
            self.report_if_due();
        }
        if self.links.owes_acks() {
            for (to, envelope) in self.links.take_acks(self.now) {
                self.actions.push(Action::Send { to, envelope });
            }
        }
    }

    pub(crate) fn timeout(&mut self) {
        for (to, envelope) in self.links.resends(self.now) {
            self.actions.push(Action::Send { to, envelope });
        }
        self.report_if_due();
    }

    pub(crate) fn received(&mut self, from: Peer, envelope: Envelope<Message<V>>) {
        if self.fenced {
            return;
        }
        if from == Peer::Head && envelope.seq == 0 {
            match envelope.message {
                Some(Message::Fenced) => return self.fence(),
                Some(Message::Ping) => {
                    // Outside the link, as the ping came: a lost pong is a miss, not a resend.
                    let pong = Envelope {
                        seq: 0,
                        ack: 0,
                        message: Some(Message::Pong),
                    };
                    self.actions.push(Action::Send {
                        to: Peer::Head,
                        envelope: pong,
                    });
                    return;
                }
                _ => {}
            }
        }
        for message in self.links.receive(self.now, from, envelope) {
            if self.left && from != Peer::Head {
                continue;
            }
            self.on_message(from, message);
            if self.fenced {
                return;
            }
        }
        // What the messages sealed may have made tasks ready.
        self.dispatch();
    }

    fn fence(&mut self) {
        if !self.fenced {
            self.fenced = true;
            self.queued_leases.clear();
            self.actions.push(Action::Fenced);
        }
    }

    fn on_message(&mut self, from: Peer, message: Message<V>) {
        let node = match from {
            Peer::Head => {
                self.head_message(message);
                return;
            }
            Peer::Node(node) => node,
        };
        match message {
            Message::Lease { spec, attempt } => self.lease_in(node, spec, attempt),
            Message::Rejected {
                task,
                attempt,
                snapshot,
            } => self.lease_rejected(node, task, attempt, snapshot),
            Message::Done {
                task,
                attempt,
                outcome,
            } => self.lease_done(node, task, attempt, outcome),
            Message::Stop { task, attempt } => self.stop_leased_in(node, task, attempt),
            Message::Call { spec, attempt } => self.call_in(node, spec, attempt),
            Message::Locate { actor, not_at } => self.locate(node, actor, not_at),
            Message::Located {
                actor,
                host,
                retries,
            } => {
                if actor.0.node() == node {
                    self.located(actor, host, retries);
                }
            }
            Message::Kill { actor, no_restart } => self.kill_actor(actor, no_restart),
            Message::Rehome { object } => self.rehome_in(node, object),
            Message::Rehomed { object } => self.rehomed_in(node, object),
            Message::HandlesGone { actor } => {
                if actor.0.node() == node {
                    self.actor_handle_freed(actor);
                }
            }
            Message::ActorGone { actor, cause } => {
                let from_host = self
                    .actors
                    .entries
                    .get(&actor)
                    .is_some_and(|e| e.remote_host == Some(node));
                if from_host {
                    self.actor_dies(actor, (*cause).clone());
                }
            }
            Message::Subscribe { object } => self.subscribe(node, object),
            Message::Status { object, status } => self.status(node, object, status),
            Message::Pull { object } => {
                let value = match self.objects.get(object).map(|e| &e.state) {
                    Some(ObjectState::Ready(value)) => Some(value.clone()),
                    _ => None,
                };
                let answer = match value {
                    Some(value) if value.size() > self.config.inline_limit => Message::Offered {
                        object,
                        len: value.size(),
                        contained: value.contained().to_vec(),
                    },
                    value => Message::Pulled { object, value },
                };
                self.send(Peer::Node(node), answer);
            }
            Message::Pulled { object, value } => self.pulled(node, object, value),
            Message::Offered {
                object,
                len,
                contained,
            } => self.offered(node, object, len, contained),
            Message::Holding { object } => self.holding(node, object),
            Message::Borrow { object } => {
                // Granted only while the object lives: the grant is counted as it is sent.
                let granted =
                    object.task.node() == self.config.node && self.objects.get(object).is_some();
                self.send(Peer::Node(node), Message::Lent { object, granted });
            }
            Message::Lent { object, granted } => self.lent(node, object, granted),
            Message::Lend { object, to } => {
                // A node this one has not heard of yet may well be alive; only a dead one's
                // grants are void.
                if object.task.node() == self.config.node && !self.links.is_dead(Peer::Node(to)) {
                    let mut events = Vec::new();
                    self.objects.adjust_holder(object, to, 1, &mut events);
                    self.push_events(events);
                }
            }
            Message::Release { object, grants } => {
                if object.task.node() == self.config.node {
                    // Its entry is gone there: no copy, no pull, no subscription is left.
                    if let Some(owned) = self.objects.get_mut(object).and_then(|e| e.owned_mut()) {
                        owned.forget(node);
                    }
                    self.notify_subscribers(object);
                    let mut events = Vec::new();
                    self.objects
                        .adjust_holder(object, node, -i64::from(grants), &mut events);
                    self.push_events(events);
                }
            }
            Message::Free { object } => {
                if object.task.node() == node {
                    let mut events = Vec::new();
                    self.objects.drop_kept_copy(object, &mut events);
                    self.push_events(events);
                }
            }
            // The head's messages come from the head only; anything else is ignored, but the
            // references it carries were granted and go back.
            other => self.return_grants(&other),
        }
    }

    fn head_message(&mut self, message: Message<V>) {
        match message {
            Message::View { node, snapshot } => {
                let changed = node != self.config.node && self.view.update(node, snapshot);
                if changed {
                    self.dispatch();
                }
            }
            Message::NodeDied { node } => self.node_died(node),
            Message::Drain { node } => self.drain_said(node),
            Message::JobEnded { job } => {
                self.job_finished(job);
                self.actions.push(Action::JobEnded(job));
            }
            Message::Fenced => self.fence(),
            // Request 0 is the scheduler's own (name releases): nobody waits for it.
            Message::Answer { request, answer } if request != 0 => {
                self.actions.push(Action::Answered { request, answer });
            }
            _ => {}
        }
    }

    /// Tasks that did not fit here go to other nodes with room, one hop each.
    pub(crate) fn spill(&mut self) {
        let tasks = &self.tasks;
        let view = &mut self.view;
        let rng = &mut self.rng;
        let placed = self.ready.take_placed(|task, shape| {
            let entry = tasks
                .get(&task)
                .filter(|e| matches!(e.spec.kind, TaskKind::Task | TaskKind::ActorCreation(_)))?;
            view.pick_remote(shape, may_queue(&entry.spec), rng)
        });
        for (task, node) in placed {
            let Some(entry) = self.tasks.get_mut(&task) else {
                continue;
            };
            entry.state = TaskState::Leased { node };
            let spec = Arc::clone(&entry.spec);
            let attempt = entry.attempt;
            self.send(Peer::Node(node), Message::Lease { spec, attempt });
        }
    }

    /// Executor side: grant the lease from this node's own ledger, queue it if it is a plain
    /// task that fits the node's totals but not what is free now, or reject it.
    fn lease_in(&mut self, owner: NodeId, spec: Arc<TaskSpec<V>>, attempt: u32) {
        let task = spec.id;
        let gpus = spec.resources.get(GPU);
        let acceptable = matches!(spec.kind, TaskKind::Task | TaskKind::ActorCreation(_))
            && !self.draining
            && task.node() == owner
            && !self.tasks.contains_key(&task)
            && !self.queued_leases.iter().any(|q| q.spec.id == task);
        let fits = acceptable && spec.resources.fits_in(&self.available);
        if acceptable
            && !fits
            && may_queue(&spec)
            && spec.resources.fits_in(&self.total)
            && self.queued_leases.len() < MAX_QUEUED_LEASES
        {
            self.queued_leases.push_back(QueuedLease {
                owner,
                spec,
                attempt,
            });
            return;
        }
        let gpu_ids = if fits { self.gpus.take(gpus) } else { None };
        let Some(gpu_ids) = gpu_ids else {
            self.reject_lease(owner, spec, attempt);
            return;
        };
        self.available.subtract(&spec.resources);
        let (missing, failed_arg) = self.reference_args(&spec, true, true);
        if (missing > 0 || failed_arg.is_some()) && matches!(spec.kind, TaskKind::Task) {
            // While it waits for its arguments it holds no CPU (as a task blocked in `get`):
            // what it waits for may have to be made on this node first (a lost argument made
            // again). When they are here it runs once a CPU is free (`Scheduler::arrived`).
            // (A leased plain task waiting here never holds its CPU: `fail_for_good`.)
            let cpu = crate::scheduler::cpu_part(&spec.resources);
            self.available.add_capped(&cpu, &self.total);
        }
        let gpu_ids = if matches!(spec.kind, TaskKind::ActorCreation(_)) {
            // The actor holds the resources and GPUs for its life.
            self.host_actor(owner, &spec, attempt, gpu_ids.clone());
            gpu_ids
        } else {
            gpu_ids
        };
        self.tasks.insert(
            task,
            TaskEntry {
                gpu_ids,
                ..TaskEntry::new(spec, TaskState::Waiting { missing }, attempt, Some(owner))
            },
        );
        if let Some(error) = failed_arg {
            self.fail_for_good(task, error);
        } else if missing == 0 {
            self.make_ready(task);
        } else {
            // The CPU it gave back may run something else meanwhile.
            self.dispatch();
        }
    }

    /// Executor side: grants queued leases, oldest first, while the front one fits what is
    /// free (a lease whose owner died or whose job ended was taken out of the queue then).
    fn grant_queued_leases(&mut self) {
        while let Some(front) = self.queued_leases.front() {
            if !front.spec.resources.fits_in(&self.available) {
                break;
            }
            if let Some(QueuedLease {
                owner,
                spec,
                attempt,
            }) = self.queued_leases.pop_front()
            {
                self.lease_in(owner, spec, attempt);
            }
        }
    }

    /// Executor side: takes the queued leases `doomed` picks out of the queue and rejects
    /// them (giving back the references they granted; the owner places or fails them).
    pub(crate) fn reject_queued_leases(&mut self, mut doomed: impl FnMut(&QueuedLease<V>) -> bool) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queued_leases)
            .into_iter()
            .partition(|q| doomed(q));
        self.queued_leases = kept.into();
        for lease in gone {
            self.reject_lease(lease.owner, lease.spec, lease.attempt);
        }
    }

    /// Executor side: refuses a lease; the references it granted go back, and the owner hears
    /// this node's fresh snapshot with the refusal.
    fn reject_lease(&mut self, owner: NodeId, spec: Arc<TaskSpec<V>>, attempt: u32) {
        let task = spec.id;
        self.return_grants(&Message::Lease { spec, attempt });
        let snapshot = self.snapshot();
        self.send(
            Peer::Node(owner),
            Message::Rejected {
                task,
                attempt,
                snapshot,
            },
        );
    }

    /// Executor side: a leased task ended (its resources are back). Its results go to the
    /// owner: small ones in the reply, large ones kept here until the owner frees them.
    pub(crate) fn finish_leased_in(&mut self, task: TaskId, owner: NodeId, outcome: Outcome<V>) {
        let Some(entry) = self.tasks.remove(&task) else {
            return;
        };
        let spec = entry.spec;
        let mut sent_values = Vec::new();
        let outcome = match outcome {
            Outcome::Returned(values) if values.len() == spec.num_returns as usize => {
                let mut returned = Vec::with_capacity(values.len());
                for (id, value) in spec.return_ids().zip(values) {
                    let len = value.size();
                    if len <= self.config.inline_limit {
                        returned.push(Returned::Value(value.clone()));
                        sent_values.push(value);
                    } else {
                        self.keep_copy(id, value);
                        returned.push(Returned::Kept { len });
                    }
                }
                RemoteOutcome::Returned(returned)
            }
            Outcome::Returned(values) => {
                let error = invalid(
                    &spec,
                    format!(
                        "returned {} values but declares num_returns = {}",
                        values.len(),
                        spec.num_returns
                    ),
                );
                sent_values = values;
                RemoteOutcome::Failed {
                    error,
                    system: false,
                }
            }
            Outcome::Failed { .. } if entry.cancelled => RemoteOutcome::Failed {
                error: cancelled(&spec, "cancelled while it ran"),
                system: false,
            },
            Outcome::Failed { error, system } => RemoteOutcome::Failed { error, system },
        };
        let outcome_error = match &outcome {
            RemoteOutcome::Failed { error, .. } => Some(crate::errors::actor_died(
                &spec.function,
                "its constructor failed",
                Some(&Arc::new(error.clone())),
            )),
            RemoteOutcome::Returned(_) => None,
        };
        let attempt = entry.attempt;
        self.send(
            Peer::Node(owner),
            Message::Done {
                task,
                attempt,
                outcome,
            },
        );
        // Sent values were granted to the owner; this node's own counts of what they hold go
        // now, after the grants (so a release never overtakes a lend).
        for value in &sent_values {
            self.drop_value(value);
        }
        if let TaskKind::ActorCreation(actor_spec) = &spec.kind {
            // Only a failed construction ends here: the actor hosted for it dies, and with
            // it the references to the arguments it held.
            let cause = match outcome_error {
                Some(error) => error,
                None => crate::errors::actor_died(&actor_spec.class, "it was not created", None),
            };
            self.actor_dies(ActorId(task), cause);
            return;
        }
        let mut events = Vec::new();
        self.release_args(&spec, &mut events);
        self.push_events(events);
    }

    /// Keeps a result this node made for its owner, usable here too.
    fn keep_copy(&mut self, id: ObjectId, value: V) {
        self.objects.ensure_borrowed(id);
        if let Some(borrowed) = self.objects.get_mut(id).and_then(|e| e.borrowed_mut()) {
            borrowed.keeps_copy = true;
        }
        let mut events = Vec::new();
        self.seal(id, ObjectState::Ready(value), &mut events);
        self.push_events(events);
    }

    /// Executor side: the owner asks to stop an attempt.
    fn stop_leased_in(&mut self, owner: NodeId, task: TaskId, attempt: u32) {
        // Still queued: rejected, which fails it on its owner, who cancelled it.
        self.reject_queued_leases(|q| {
            q.spec.id == task && q.owner == owner && q.attempt == attempt
        });
        let Some(entry) = self.tasks.get_mut(&task) else {
            return;
        };
        if entry.owner != Some(owner) || entry.attempt != attempt {
            return;
        }
        match entry.state {
            TaskState::Running { .. } => {
                if !entry.cancelled {
                    entry.cancelled = true;
                    self.actions.push(Action::StopTask(task));
                }
            }
            _ => {
                let error = cancelled(&entry.spec, "cancelled by the caller");
                self.fail_for_good(task, error);
            }
        }
    }

    /// Owner side: the executor rejected the attempt; place it again with its fresh view.
    fn lease_rejected(&mut self, node: NodeId, task: TaskId, attempt: u32, snapshot: Snapshot) {
        self.view.update(node, snapshot);
        let Some(entry) = self.tasks.get(&task) else {
            return;
        };
        if !matches!(entry.state, TaskState::Leased { node: n } if n == node)
            || entry.attempt != attempt
        {
            return;
        }
        self.view.unlease(node, &entry.spec.resources);
        if entry.cancelled {
            let error = cancelled(&entry.spec, "cancelled by the caller");
            self.fail_for_good(task, error);
        } else {
            self.make_ready(task);
        }
        self.dispatch();
    }

    /// Owner side: how a leased attempt ended. A reply for an attempt that is not the
    /// current one (a duplicate, or from before a retry) is dropped.
    fn lease_done(&mut self, node: NodeId, task: TaskId, attempt: u32, outcome: RemoteOutcome<V>) {
        if let RemoteOutcome::Returned(values) = &outcome {
            for value in values {
                if let Returned::Value(value) = value {
                    self.take_in_value(value);
                }
            }
        }
        let current = self.tasks.get(&task).is_some_and(|e| {
            matches!(e.state, TaskState::Leased { node: n } if n == node) && e.attempt == attempt
        });
        let spec = self.tasks.get(&task).map(|e| Arc::clone(&e.spec));
        let (true, Some(spec)) = (current, spec) else {
            // A stale attempt's results. A copy kept for an object nobody references any
            // more is not wanted (one still referenced is the current attempt's to make).
            if let RemoteOutcome::Returned(values) = outcome {
                for (index, value) in (1..).zip(values) {
                    match value {
                        Returned::Value(value) => self.drop_value(&value),
                        Returned::Kept { .. } => {
                            let object = task.return_object(index);
                            if self.objects.get(object).is_none() {
                                self.send(Peer::Node(node), Message::Free { object });
                            }
                        }
                    }
                }
            }
            return;
        };
        self.view.unlease(node, &spec.resources);
        match outcome {
            RemoteOutcome::Returned(values) if values.len() == spec.num_returns as usize => {
                self.tasks.remove(&task);
                self.note_settled(task);
                let mut events = Vec::new();
                // The results kept elsewhere that are still referenced here (a lineage entry
                // lives as long as they do: one freed already never says it went).
                let mut kept = 0usize;
                for (id, returned) in spec.return_ids().zip(values) {
                    match returned {
                        Returned::Value(value) => {
                            self.seal(id, ObjectState::Ready(value), &mut events);
                        }
                        Returned::Kept { len } => {
                            kept += usize::from(self.made_elsewhere(id, node, len));
                        }
                    }
                }
                // Results kept elsewhere may be lost with their node: the spec is kept to
                // make them again, and the attempt's references to its arguments with it.
                if matches!(spec.kind, TaskKind::ActorCreation(_)) {
                    // A creation's are its actor's until it dies, for its restarts.
                } else if self.lineage.contains(task) {
                    self.lineage.ran(task, attempt);
                    self.release_args(&spec, &mut events);
                } else if !(matches!(spec.kind, TaskKind::Task)
                    && self
                        .lineage
                        .keep(&spec, attempt, u32::try_from(kept).unwrap_or(u32::MAX)))
                {
                    self.release_args(&spec, &mut events);
                }
                self.push_events(events);
                if matches!(spec.kind, TaskKind::ActorCreation(_)) {
                    self.actor_placed(ActorId(task), node);
                }
            }
            RemoteOutcome::Returned(values) => {
                for value in values {
                    if let Returned::Value(value) = value {
                        self.drop_value(&value);
                    }
                }
                let error = invalid(&spec, "its node sent the wrong number of results".into());
                self.fail_for_good(task, error);
            }
            RemoteOutcome::Failed { error, system } => {
                self.finish_plain(task, Outcome::Failed { error, system });
            }
        }
        self.dispatch();
    }

    /// Owner side: `id` (`len` bytes) was made on `node`, which keeps it. Returns whether it
    /// is still referenced here (else the copy was freed at once).
    fn made_elsewhere(&mut self, id: ObjectId, node: NodeId, len: u64) -> bool {
        let Some(owned) = self.objects.get_mut(id).and_then(|e| e.owned_mut()) else {
            // Nobody references it any more: the copy is not wanted.
            self.send(Peer::Node(node), Message::Free { object: id });
            return false;
        };
        owned.made_elsewhere = true;
        owned.kept_len = len;
        if !owned.copies.contains(&node) {
            owned.copies.push(node);
        }
        self.notify_subscribers(id);
        // Dependents that will run on other nodes have it now: their nodes pull it.
        let dependents = self
            .objects
            .get(id)
            .map(|e| e.dependents.clone())
            .unwrap_or_default();
        let elsewhere: Vec<TaskId> = dependents
            .into_iter()
            .filter(|t| {
                self.tasks
                    .get(t)
                    .is_some_and(|e| self.runs_elsewhere(&e.spec))
            })
            .collect();
        if let Some(entry) = self.objects.get_mut(id) {
            entry.dependents.retain(|t| !elsewhere.contains(t));
        }
        for task in elsewhere {
            self.arrived(task);
        }
        let mut events = Vec::new();
        self.objects.free_if_unreferenced(id, &mut events);
        self.push_events(events);
        match self.objects.get(id) {
            Some(entry) if entry.is_needed() => self.need(id),
            Some(_) => {}
            None => return false,
        }
        true
    }

    /// Something here waits for `id`: fetch it (subscribe to its owner, or pull a copy).
    pub(crate) fn need(&mut self, id: ObjectId) {
        let local = self.config.node;
        let Some(entry) = self.objects.get_mut(id) else {
            return;
        };
        if entry.is_sealed() {
            return;
        }
        let mut send = None;
        let mut lost = false;
        let links = &self.links;
        match &mut entry.role {
            Role::Owned(owned) => {
                if owned.made_elsewhere && owned.pulling.is_none() {
                    // From where it was made, or else from a node that pulled a copy.
                    match owned.copies.first().or(owned.pulled.first()) {
                        Some(&from) => {
                            owned.pulling = Some(from);
                            send = Some((from, Message::Pull { object: id }));
                        }
                        None => lost = true,
                    }
                }
            }
            Role::Borrowed(borrowed) => {
                if borrowed.pulling.is_some() {
                    return;
                }
                // Not itself, nor a node it knows died (the owner may not have heard yet):
                // with no source left it asks the owner again.
                borrowed
                    .sources
                    .retain(|n| *n != local && !links.is_dead(Peer::Node(*n)));
                if let Some(from) = borrowed.sources.pop() {
                    borrowed.pulling = Some(from);
                    send = Some((from, Message::Pull { object: id }));
                } else if !borrowed.subscribed {
                    borrowed.subscribed = true;
                    send = Some((borrowed.owner, Message::Subscribe { object: id }));
                }
            }
        }
        if let Some((to, message)) = send {
            self.send(Peer::Node(to), message);
        }
        if lost {
            self.rebuild(id);
        }
    }

    /// Owner side: `id` was made on another node and no node holds a copy of it any more.
    fn lost_here(&self, id: ObjectId) -> bool {
        self.objects.get(id).is_some_and(|e| {
            !e.is_sealed() && e.owned().is_some_and(|o| o.made_elsewhere && !o.copied())
        })
    }

    /// Owner side: every copy of `id`, which was made on another node, is gone. Its task runs
    /// again as a new attempt if its lineage is kept (its own lost arguments are made again
    /// when that run needs them); otherwise, or past `max_retries` rebuilds, it fails as lost.
    pub(crate) fn rebuild(&mut self, id: ObjectId) {
        let task = id.task;
        if self.tasks.get(&task).is_some() {
            // Being made again already (for another of its results).
            return;
        }
        let (spec, attempt) = match self.lineage.rebuild(task) {
            Ok(found) => found,
            Err(why) => {
                let reason = match why {
                    NoRebuild::NotKept => "no node holds a copy of it any more, and how to make \
                                           it again is not known (it was put, or its lineage \
                                           was past the budget)"
                        .to_owned(),
                    NoRebuild::OutOfRetries(n) => format!(
                        "no node holds a copy of it any more, and it was made again {n} times \
                         already (max_retries)"
                    ),
                };
                self.fail_object(id, Arc::new(lost(id, &reason)));
                return;
            }
        };
        // Its results are not made anywhere now: they are again when the run reports.
        for result in spec.return_ids() {
            if let Some(owned) = self.objects.get_mut(result).and_then(|e| e.owned_mut())
                && !owned.copied()
            {
                owned.made_elsewhere = false;
                owned.kept_len = 0;
            }
        }
        self.rebuilt += 1;
        self.actions.push(Action::Rebuild {
            object: id,
            task,
            function: spec.function.clone(),
            attempt,
        });
        #[cfg(test)]
        {
            *self.rebuilds.entry(task).or_default() += 1;
        }
        self.resubmit(spec, attempt);
    }

    /// What the owner tells a subscriber about `id`, if it has sealed. A large value is
    /// `Ready` with no value and no sources yet: [`Scheduler::notify_subscribers`] points each
    /// subscriber at one.
    fn status_of(&self, id: ObjectId) -> Option<RemoteStatus<V>> {
        let entry = self.objects.get(id)?;
        let owned = entry.owned()?;
        match &entry.state {
            ObjectState::Ready(value) if value.size() <= self.config.inline_limit => {
                Some(RemoteStatus::Ready {
                    value: Some(value.clone()),
                    at: Vec::new(),
                })
            }
            ObjectState::Ready(_) => Some(RemoteStatus::Ready {
                value: None,
                at: Vec::new(),
            }),
            ObjectState::Failed(error) => Some(RemoteStatus::Failed(Arc::clone(error))),
            ObjectState::Pending if owned.made_elsewhere => Some(RemoteStatus::Ready {
                value: None,
                at: Vec::new(),
            }),
            ObjectState::Pending => None,
        }
    }

    /// How many pulls of `id` one source serves at once: as many as fit in
    /// [`crate::SchedConfig::serve_budget`] bytes, and at least two.
    fn serves_per_source(&self, id: ObjectId) -> usize {
        let len = match self.objects.get(id).map(|e| (&e.state, e.owned())) {
            Some((ObjectState::Ready(value), _)) => value.size(),
            Some((_, Some(owned))) => owned.kept_len,
            _ => 0,
        };
        let fit = self.config.serve_budget / len.max(1);
        usize::try_from(fit).unwrap_or(usize::MAX).max(2)
    }

    /// Tells the subscribers of a sealed owned object. A large value is pulled: each
    /// subscriber is pointed at one source with room (this node, where it was made, or a node
    /// that pulled it before); the others keep waiting for a pull to end.
    pub(crate) fn notify_subscribers(&mut self, id: ObjectId) {
        let has_subscribers = self
            .objects
            .get(id)
            .and_then(|e| e.owned())
            .is_some_and(|o| !o.subscribers.is_empty());
        if !has_subscribers {
            return;
        }
        let Some(status) = self.status_of(id) else {
            return;
        };
        let per_source = self.serves_per_source(id);
        let local = self.config.node;
        let Some(entry) = self.objects.get_mut(id) else {
            return;
        };
        let here = matches!(entry.state, ObjectState::Ready(_)).then_some(local);
        let Some(owned) = entry.owned_mut() else {
            return;
        };
        let mut told = Vec::new();
        if matches!(status, RemoteStatus::Ready { value: None, .. }) {
            let mut waiting = std::mem::take(&mut owned.subscribers);
            waiting.retain(|&node| match owned.point(node, here, per_source) {
                Some(source) => {
                    let status = RemoteStatus::Ready {
                        value: None,
                        at: vec![source],
                    };
                    told.push((node, status));
                    false
                }
                None => true,
            });
            owned.subscribers = waiting;
        } else {
            for node in std::mem::take(&mut owned.subscribers) {
                told.push((node, status.clone()));
            }
        }
        for (node, status) in told {
            self.send(Peer::Node(node), Message::Status { object: id, status });
        }
    }

    /// Owner side: `node` pulled a copy of `object` and serves it onward.
    fn holding(&mut self, node: NodeId, object: ObjectId) {
        if let Some(owned) = self.objects.get_mut(object).and_then(|e| e.owned_mut()) {
            owned.holding(node);
            self.notify_subscribers(object);
        }
    }

    /// Owner side: `node` wants to hear when `object` seals.
    fn subscribe(&mut self, node: NodeId, object: ObjectId) {
        if object.task.node() != self.config.node {
            return;
        }
        let Some(entry) = self.objects.get_mut(object) else {
            let error = lost(object, "it no longer exists on its owner");
            self.send(
                Peer::Node(node),
                Message::Status {
                    object,
                    status: RemoteStatus::Failed(Arc::new(error)),
                },
            );
            return;
        };
        if let Some(owned) = entry.owned_mut() {
            // Asking again: the pull it was pointed at failed. A node that pulled a copy and
            // could not serve it has dropped it.
            if let Some(source) = owned.pull_ended(node) {
                owned.pulled.retain(|n| *n != source);
            }
            if !owned.subscribers.contains(&node) {
                owned.subscribers.push(node);
            }
        }
        if self.lost_here(object) {
            self.rebuild(object);
        }
        self.notify_subscribers(object);
    }

    /// Borrower side: the owner says `object` sealed.
    fn status(&mut self, node: NodeId, object: ObjectId, status: RemoteStatus<V>) {
        let mut events = Vec::new();
        match status {
            RemoteStatus::Ready {
                value: Some(value), ..
            } => {
                self.take_in_value(&value);
                if object.task.node() == node {
                    self.seal(object, ObjectState::Ready(value), &mut events);
                } else {
                    self.drop_value(&value);
                }
            }
            _ if object.task.node() != node => {}
            RemoteStatus::Ready { value: None, at } => {
                if let Some(borrowed) = self.objects.get_mut(object).and_then(|e| e.borrowed_mut())
                {
                    borrowed.sources = at;
                    borrowed.subscribed = false;
                }
                self.need(object);
            }
            RemoteStatus::Failed(error) => self.fail_object(object, error),
        }
        self.push_events(events);
    }

    /// Asks `object`'s owner for a reference (see [`Event::Borrow`]).
    pub(crate) fn borrow(&mut self, object: ObjectId) {
        let owner = object.task.node();
        if owner == self.config.node || self.links.is_dead(Peer::Node(owner)) {
            // Answered at once: the node only borrows what another node owns.
            let granted = owner == self.config.node && self.objects.add_ref(object, RefKind::Local);
            self.actions.push(Action::Lent { object, granted });
            return;
        }
        *self.borrowing.entry(object).or_default() += 1;
        self.send(Peer::Node(owner), Message::Borrow { object });
    }

    /// The owner answered a borrow.
    fn lent(&mut self, node: NodeId, object: ObjectId, granted: bool) {
        let asked =
            object.task.node() == node && self.borrowing.get(&object).is_some_and(|n| *n > 0);
        if !asked {
            if granted {
                self.return_grants(&Message::Lent { object, granted });
            }
            return;
        }
        if let Some(n) = self.borrowing.get_mut(&object) {
            *n -= 1;
            if *n == 0 {
                self.borrowing.remove(&object);
            }
        }
        if granted {
            self.objects.receive_ref(object, RefKind::Local);
        }
        self.actions.push(Action::Lent { object, granted });
    }

    /// Ends the pull of `object` from `node`, if that is the one under way; says whether it was.
    fn stop_pulling(&mut self, object: ObjectId, node: NodeId) -> bool {
        let Some(entry) = self.objects.get_mut(object) else {
            return false;
        };
        let pulling = match &mut entry.role {
            Role::Owned(owned) => &mut owned.pulling,
            Role::Borrowed(borrowed) => &mut borrowed.pulling,
        };
        let was = *pulling == Some(node);
        if was {
            *pulling = None;
        }
        was
    }

    /// Borrower side: a pulled copy of `object` is about to be sealed here; its owner may
    /// point other pullers at this node. Sent before the seal, so that a release the seal
    /// causes comes after it.
    fn tell_holding(&mut self, object: ObjectId) {
        let owner = object.task.node();
        if owner != self.config.node {
            self.send(Peer::Node(owner), Message::Holding { object });
        }
    }

    /// A holder answered a pull.
    fn pulled(&mut self, node: NodeId, object: ObjectId, value: Option<V>) {
        if let Some(value) = &value {
            self.take_in_value(value);
        }
        let was_pulling = self.stop_pulling(object, node);
        let mut events = Vec::new();
        match value {
            Some(value) if was_pulling => {
                self.tell_holding(object);
                self.seal(object, ObjectState::Ready(value), &mut events);
            }
            Some(value) => self.drop_value(&value),
            None if was_pulling => self.pull_failed(object, node),
            None => {}
        }
        self.push_events(events);
    }

    /// A holder offered a copy too large for a message: have the node fetch its bytes.
    fn offered(&mut self, node: NodeId, object: ObjectId, len: u64, contained: Vec<ObjectId>) {
        for &inner in &contained {
            self.objects.receive_ref(inner, RefKind::Contained);
        }
        let wanted = !self.fetching.contains_key(&(object, node))
            && self.objects.get(object).is_some_and(|entry| {
                let pulling = match &entry.role {
                    Role::Owned(owned) => owned.pulling,
                    Role::Borrowed(borrowed) => borrowed.pulling,
                };
                pulling == Some(node) && !entry.is_sealed()
            });
        if !wanted {
            self.release_contained_refs(&contained);
            return;
        }
        self.fetching.insert((object, node), contained.clone());
        self.actions.push(Action::Fetch {
            object,
            from: node,
            len,
            contained,
        });
    }

    /// The node's answer to an [`Action::Fetch`].
    pub(crate) fn fetched(&mut self, object: ObjectId, from: NodeId, value: Option<V>) {
        let Some(contained) = self.fetching.remove(&(object, from)) else {
            // Not asked for (the node answers each fetch once).
            return;
        };
        let was_pulling = self.stop_pulling(object, from);
        let mut events = Vec::new();
        match value {
            // The references taken in when the copy was offered are the value's own now.
            Some(value) if was_pulling => {
                self.tell_holding(object);
                self.seal(object, ObjectState::Ready(value), &mut events);
            }
            Some(value) => self.drop_value(&value),
            None => {
                self.release_contained_refs(&contained);
                if was_pulling {
                    self.pull_failed(object, from);
                }
            }
        }
        self.push_events(events);
    }

    fn release_contained_refs(&mut self, contained: &[ObjectId]) {
        let mut events = Vec::new();
        for &inner in contained {
            self.objects.release(inner, RefKind::Contained, &mut events);
        }
        self.push_events(events);
    }

    /// `node` had no copy of `object` (or died): try another, or fail it as lost.
    fn pull_failed(&mut self, object: ObjectId, node: NodeId) {
        let Some(entry) = self.objects.get_mut(object) else {
            return;
        };
        let exhausted = match &mut entry.role {
            Role::Owned(owned) => {
                owned.copies.retain(|n| *n != node);
                owned.pulled.retain(|n| *n != node);
                if !owned.copied() {
                    // The owner makes it again, or fails it, itself.
                    self.rebuild(object);
                    return;
                }
                false
            }
            Role::Borrowed(borrowed) => borrowed.sources.is_empty() && borrowed.subscribed,
        };
        if exhausted {
            let error = lost(object, "no node holds a copy of it any more");
            self.fail_object(object, Arc::new(error));
        } else {
            self.need(object);
        }
    }

    /// The head declared `node` dead.
    /// A restarted head took over (see [`crate::Event::HeadRestarted`]): the node the old
    /// head ran on is dead; this node joins the new head again, with what the old one had
    /// not acknowledged after.
    pub(crate) fn head_restarted(&mut self, old: NodeId) {
        if self.fenced {
            return;
        }
        let unacked = self.links.reset(Peer::Head);
        let snapshot = self.snapshot();
        self.send(Peer::Head, Message::Join { snapshot });
        for message in unacked {
            // Already granted when first sent: sent as it is.
            if let Some(envelope) = self.links.send(self.now, Peer::Head, message) {
                self.actions.push(Action::Send {
                    to: Peer::Head,
                    envelope,
                });
            }
        }
        if old != self.config.node {
            self.node_died(old);
        }
    }

    fn node_died(&mut self, node: NodeId) {
        if node == self.config.node {
            self.fence();
            return;
        }
        self.view.mark_dead(node);
        self.links.forget(Peer::Node(node));
        // Its leases waiting here go: nobody would take their results.
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queued_leases)
            .into_iter()
            .partition(|q| q.owner == node);
        self.queued_leases = kept.into();
        for lease in gone {
            self.return_grants(&Message::Lease {
                spec: lease.spec,
                attempt: lease.attempt,
            });
        }
        let orphaned: Vec<(ObjectId, u32)> = self
            .borrowing
            .iter()
            .filter(|(object, _)| object.task.node() == node)
            .map(|(object, n)| (*object, *n))
            .collect();
        for (object, n) in orphaned {
            self.borrowing.remove(&object);
            for _ in 0..n {
                self.actions.push(Action::Lent {
                    object,
                    granted: false,
                });
            }
        }
        let mut events = Vec::new();
        self.objects.forget_node(node, &mut events);
        // Copies kept here for it: its `Free` may never come (it died, or left and its
        // last messages lost the race with the head's word).
        let kept: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(id, e)| {
                id.task.node() == node
                    && matches!(&e.role, Role::Borrowed(borrowed) if borrowed.keeps_copy)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in kept {
            self.objects.drop_kept_copy(id, &mut events);
        }
        self.push_events(events);
        // Pulls it made or served ended: who waited for a source may have one now.
        let waiting: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(_, e)| e.owned().is_some_and(|o| !o.subscribers.is_empty()))
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.notify_subscribers(id);
        }
        // Objects it owned, or that were being pulled from it, or whose only copy it had.
        let affected: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(_, e)| !e.is_sealed())
            .map(|(id, _)| *id)
            .collect();
        for id in affected {
            let Some(entry) = self.objects.get_mut(id) else {
                continue;
            };
            let needed = entry.is_needed();
            let fix = match &mut entry.role {
                Role::Borrowed(borrowed) if borrowed.owner == node => Fix::OwnerDied,
                Role::Borrowed(borrowed) => {
                    borrowed.sources.retain(|n| *n != node);
                    if borrowed.pulling == Some(node) {
                        borrowed.pulling = None;
                        Fix::PullFailed
                    } else {
                        Fix::Nothing
                    }
                }
                Role::Owned(owned) => {
                    let was_pulling = owned.pulling == Some(node);
                    if was_pulling {
                        owned.pulling = None;
                    }
                    let lost = !owned.copied();
                    if owned.made_elsewhere && lost {
                        // Made again now if anything waits for it, or when something does.
                        if needed || !owned.subscribers.is_empty() {
                            Fix::Rebuild
                        } else {
                            Fix::Nothing
                        }
                    } else if was_pulling {
                        Fix::Need
                    } else {
                        Fix::Nothing
                    }
                }
            };
            match fix {
                Fix::OwnerDied => self.fail_object(id, Arc::new(owner_died(id, node))),
                Fix::PullFailed => self.pull_failed(id, node),
                Fix::Rebuild => self.rebuild(id),
                Fix::Need => self.need(id),
                Fix::Nothing => {}
            }
        }
        // Actors owned here that it ran (or was constructing) are created again elsewhere,
        // up to `max_restarts`; the actors it owned that run here die, unless detached, as
        // in Ray.
        let hosted: Vec<ActorId> = self
            .actors
            .entries
            .iter()
            .filter(|(id, e)| {
                e.owner.is_none()
                    && (e.remote_host == Some(node)
                        || self.tasks.get(&id.0).is_some_and(
                            |t| matches!(t.state, TaskState::Leased { node: n } if n == node),
                        ))
            })
            .map(|(id, _)| *id)
            .collect();
        for actor in hosted {
            self.tasks.remove(&actor.0);
            self.actor_host_died(actor, node);
        }
        let orphans: Vec<(ActorId, String)> = self
            .actors
            .entries
            .iter()
            .filter(|(_, e)| e.owner == Some(node) && !e.spec.detached)
            .map(|(id, e)| (*id, e.spec.class.clone()))
            .collect();
        for (actor, class) in orphans {
            self.actions.push(Action::StopActor(actor));
            let cause = crate::errors::actor_died(&class, "its owner's node died", None);
            self.actor_dies(actor, cause);
        }
        // Those that had died already were kept for its word that their handles went.
        self.actors
            .entries
            .retain(|_, e| !(e.owner == Some(node) && matches!(e.state, ActorState::Dead(_))));
        self.reroute_actors_of(node);
        // Attempts it was running fail as system failures (and are retried elsewhere);
        // actor calls it was sent go again to where their actors run next.
        let calls: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, e)| {
                matches!(e.state, TaskState::Leased { node: n } if n == node)
                    && matches!(e.spec.kind, TaskKind::ActorMethod { .. })
            })
            .map(|(id, _)| *id)
            .collect();
        self.calls_lost_with(node, calls);
        let leased: Vec<(TaskId, String)> = self
            .tasks
            .iter()
            .filter(|(_, e)| matches!(e.state, TaskState::Leased { node: n } if n == node))
            .map(|(id, e)| (*id, e.spec.function.clone()))
            .collect();
        for (task, function) in leased {
            let error = TaskError {
                kind: ErrorKind::System,
                function,
                message: format!("node {node} running it died"),
                backtrace: None,
                task_chain: Vec::new(),
                cause: None,
            };
            self.finish_plain(
                task,
                Outcome::Failed {
                    error,
                    system: true,
                },
            );
        }
        self.fail_newly_infeasible();
        self.dispatch();
    }
}

/// What a node's death means for one object that is not usable here yet.
enum Fix {
    OwnerDied,
    PullFailed,
    Rebuild,
    Need,
    Nothing,
}
