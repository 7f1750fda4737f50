//! Every write path once, for both databases (DESIGN §1, "as it grew"):
//! begin → read under lock → the domain decides → rows and events →
//! notify → commit → wake-ups. The [`Dialect`] provides the statements;
//! nothing here is SQL, and nothing there decides.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::dialect::{
    Channel, Dialect, JobKey, LockedJob, NewBackfillRun, NewDelivery, NewRun, ScheduleUpdate,
};
use super::shape::{StoredDefinition, StoredRequest};
use super::subscriptions::{Interests, SubscriptionCache};
use super::{
    Attempt, AttemptRecord, Busy, ClaimOutcome, ClaimedRun, DeliveryRecord, Event, EventFilter,
    ExpiredLease, Gauges, Idempotency, IdempotentRequest, Instance, Job, JobFilter, JobSecret,
    NewEvent, NewSubscription, NewToken, PlanFn, RecoverFn, Run, RunFilter, Saved, Store,
    StoreError, StoreResult, Subscription, Tenant, TokenInfo, count, lease_subject, run_host,
    stored_policy,
};
use super::{Backfill, BackfillMade, FlowInfo, NewSession, Session};
use crate::domain::audit::{self, AuditRecord};
use crate::domain::backfill::{self, BackfillSpec};
use crate::domain::event;
use crate::domain::flow::{self, Flow, FlowLimits};
use crate::domain::job::{JobId, JobState, MAX_INSTANCES_LIMIT, ParseContext, Schedule};
use crate::domain::lease;
use crate::domain::lifecycle::{self, JobChange, JobCommand};
use crate::domain::misfire::{self, DueJob};
use crate::domain::overlap::{self, Admission, InFlight, Overlap};
use crate::domain::quota::{self, QuotaOverrides, Quotas};
use crate::domain::retry::Outcome;
use crate::domain::run::{RunCause, RunStatus};
use crate::domain::run_limit::{self, OnComplete};
use crate::domain::sealing::{Row, SealingKey};
use crate::domain::template::{self, RunFacts};
use crate::wakeup::Wakeups;

/// The store over one database: its dialect, this process's wake-ups, the
/// key secrets are sealed with, and the subscriptions events are matched to.
pub struct SqlStore<D> {
    pub(crate) db: D,
    pub(crate) wakeups: Arc<Wakeups>,
    pub(crate) key: SealingKey,
    subscriptions: Arc<SubscriptionCache>,
    quotas: Quotas,
}

/// Events of one tenant.
pub(crate) fn with_tenant(tenant: &Tenant, events: Vec<NewEvent>) -> Vec<(String, NewEvent)> {
    events
        .into_iter()
        .map(|e| (tenant.as_str().to_string(), e))
        .collect()
}

/// A manual run written, with what to do once committed.
pub(crate) struct ManualRun {
    pub run: Run,
    pub events: Vec<(String, NewEvent)>,
    /// Runs it replaced, whose requests are aborted.
    pub cancelled: Vec<Uuid>,
    pub pending: bool,
    pub flows_due: bool,
}

/// Why a run is made outside its job's schedule.
#[derive(Debug, Clone)]
pub(crate) enum RunOrigin {
    /// `POST /v1/jobs/{id}/run`, bulk `run`; `force` goes past the cap.
    Manual { force: bool },
    /// The end of a parent run (§11.8).
    Chain {
        parent: crate::domain::template::ParentFacts,
        delay_s: u32,
    },
}

/// What a job's written change leaves to do once committed.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Its schedule changed: the scheduler looks again.
    pub schedule_changed: bool,
    /// Runs that waited and are now pending.
    pub released: u64,
    /// Jobs whose schedule changed: their runs made ahead go (§12).
    pub replanned: Vec<String>,
    /// The changes' audit records (§11.9), written with them.
    pub audit: Vec<AuditRecord>,
    /// The job-count slots of the jobs created (`quota::job_count_slot`),
    /// counted last: each slot's row stays locked until the commit.
    pub jobs_created: Vec<i32>,
}

/// The audit record of `action` on job `id` of `tenant`, by whoever acts
/// now (§11.9).
fn job_audit(tenant: &str, id: &str, action: &str, changes: serde_json::Value) -> AuditRecord {
    audit_record(tenant, action, &audit::job_target(id), changes)
}

/// The audit record of `action` on `target` (`calendar/holidays`) of
/// `tenant`, by whoever acts now (§11.9).
pub(super) fn audit_record(
    tenant: &str,
    action: &str,
    target: &str,
    changes: serde_json::Value,
) -> AuditRecord {
    crate::acting::current().record(tenant, action, target, changes, Utc::now())
}

/// The audit records of the jobs the scheduler completed (`max_runs`,
/// a date's one fire time) among `events`.
fn completion_audits(events: &[(String, NewEvent)]) -> Vec<AuditRecord> {
    events
        .iter()
        .filter(|(_, e)| e.kind == event::EventType::JobCompleted)
        .map(|(tenant, e)| {
            job_audit(
                tenant,
                &e.job_id,
                "job.completed",
                audit::for_job_completed(),
            )
        })
        .collect()
}

/// A run of a flow job just made (§11.1).
struct FlowRun {
    tenant: String,
    id: Uuid,
    flow: Flow,
    scheduled_for: chrono::DateTime<Utc>,
}

/// The events of attempts recorded (`recorded`; every one when `None`) of
/// job runs; an event's delivery makes one only when it fails for good
/// (`subscription.delivery_failed`), and never about a delivery of that
/// event, so no failure feeds itself.
pub(super) fn attempt_events(
    records: &[AttemptRecord],
    recorded: Option<&[Uuid]>,
) -> Vec<(String, NewEvent)> {
    let recorded_ones = records
        .iter()
        .filter(|r| recorded.is_none_or(|ids| ids.contains(&r.run_id)));
    let deliveries = recorded_ones.clone().filter_map(|r| {
        let d = r.delivery.as_ref()?;
        let failed_for_good = r.outcome == Outcome::Failed
            && d.event_type != event::EventType::SubscriptionDeliveryFailed.as_str();
        failed_for_good.then(|| {
            let error = crate::domain::run::problem_in_words(r.error.as_deref(), r.status_code);
            (
                r.tenant.as_str().to_string(),
                event::delivery_failed(d, r.run_id, r.number, r.status_code, error.as_deref()),
            )
        })
    });
    recorded_ones
        .filter_map(|r| Some((r, r.job_id.as_ref()?)))
        .flat_map(|(record, job_id)| {
            let error =
                crate::domain::run::problem_in_words(record.error.as_deref(), record.status_code);
            event::for_attempt(&event::AttemptSummary {
                job_id: job_id.as_str(),
                run_id: record.run_id,
                attempt: record.number,
                status_code: record.status_code,
                error: error.as_deref(),
                outcome: record.outcome,
            })
            .into_iter()
            .map(|e| (record.tenant.as_str().to_string(), e))
        })
        .chain(deliveries)
        .collect()
}

/// The failed job runs among the recorded ones: tenant, job, run.
fn failed_runs(records: &[AttemptRecord], recorded: &[Uuid]) -> Vec<(String, String, Uuid)> {
    records
        .iter()
        .filter(|r| r.outcome == Outcome::Failed && recorded.contains(&r.run_id))
        .filter_map(|r| {
            let job = r.job_id.as_ref()?;
            Some((r.tenant.as_str().to_string(), job.to_string(), r.run_id))
        })
        .collect()
}

/// Whether the record ends a job's run (not retried) whose end is followed
/// up on its job: runs that wait for it (§11.1), a completed job to delete
/// (§11.3).
fn needs_follow_up(r: &AttemptRecord) -> bool {
    r.follow_up.any() && r.job_id.is_some() && r.outcome.ends_run()
}

/// The jobs of recorded records that need a follow-up, each once.
fn ended_with_follow_up(records: &[AttemptRecord], recorded: &[Uuid]) -> Vec<JobKey> {
    let mut jobs: Vec<JobKey> = records
        .iter()
        .filter(|r| needs_follow_up(r) && recorded.contains(&r.run_id))
        .filter_map(|r| {
            let job = r.job_id.as_ref()?;
            Some((r.tenant.as_str().to_string(), job.as_str().to_string()))
        })
        .collect();
    jobs.sort();
    jobs.dedup();
    jobs
}

/// The row job `id` of `tenant` seals its values in.
pub(crate) fn job_row<'a>(tenant: &'a Tenant, id: &'a JobId) -> Row<'a> {
    Row {
        tenant: tenant.as_str(),
        table: "jobs",
        id: id.as_str(),
    }
}

// The dialect is the store's own business: outside it, a `SqlStore` is
// only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    pub(crate) fn new(db: D, wakeups: Arc<Wakeups>, key: SealingKey) -> Self {
        Self {
            db,
            wakeups,
            key,
            subscriptions: Arc::default(),
            quotas: Quotas::default(),
        }
    }

    /// What one tenant may hold; [`Quotas::default`] otherwise.
    pub fn with_quotas(self, quotas: Quotas) -> Self {
        Self { quotas, ..self }
    }

    /// A tenant's subscriptions, from the cache or read (in `tx` when one
    /// is open, so a transaction never waits for a second connection).
    async fn interests(&self, tx: Option<&mut D::Tx>, tenant: &str) -> StoreResult<Interests> {
        if let Some(hit) = self.subscriptions.get(tenant, Instant::now()) {
            return Ok(hit);
        }
        let (generation, read_at) = (self.subscriptions.generation(), Instant::now());
        let read = Arc::new(self.db.subscription_interests(tx, tenant).await?);
        self.subscriptions
            .put(tenant, read.clone(), generation, read_at);
        Ok(read)
    }

    /// The deliveries `events` make: for each, every subscription of its
    /// tenant that wants it.
    async fn deliveries<'e>(
        &self,
        mut tx: Option<&mut D::Tx>,
        events: impl Iterator<Item = (&'e str, &'e NewEvent)> + Clone + Send,
    ) -> StoreResult<Vec<NewDelivery>> {
        let mut tenants: Vec<&str> = events.clone().map(|(tenant, _)| tenant).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut out = Vec::new();
        for tenant in tenants {
            let interests = self.interests(tx.as_deref_mut(), tenant).await?;
            if interests.is_empty() {
                continue;
            }
            for (_, e) in events.clone().filter(|(t, _)| *t == tenant) {
                for s in interests.iter().filter(|s| s.interest.wants(e)) {
                    out.push(NewDelivery {
                        id: Uuid::now_v7(),
                        tenant: tenant.to_string(),
                        subscription_id: s.id.clone(),
                        event_id: e.id,
                        host: s.host.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Writes events and their deliveries in `tx`; answers how many
    /// deliveries.
    pub(super) async fn write_events(
        &self,
        tx: &mut D::Tx,
        events: &[(String, NewEvent)],
    ) -> StoreResult<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let pairs = events.iter().map(|(t, e)| (t.as_str(), e));
        let deliveries = self.deliveries(Some(&mut *tx), pairs).await?;
        self.db.insert_events(tx, events, &deliveries).await
    }

    /// After a transaction that wrote events committed: wakes this
    /// process's streams (and dispatcher, for deliveries) and tells the
    /// other instances.
    pub(super) fn events_written(&self, deliveries: usize) {
        self.wakeups.events_changed();
        if deliveries > 0 {
            self.wakeups.runs_changed();
        }
        self.db.events_committed(deliveries);
    }

    /// The tenant's quotas, read in `tx`.
    pub(super) async fn quotas_in(&self, tx: &mut D::Tx, tenant: &Tenant) -> StoreResult<Quotas> {
        Ok(self
            .quotas
            .with(&self.db.read_tenant_quotas(tx, tenant).await?))
    }

    async fn record_idempotency(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        idempotency: Option<&Idempotency>,
        resource_id: &str,
    ) -> StoreResult<()> {
        match idempotency {
            Some(i)
                if !self
                    .db
                    .record_idempotency(tx, tenant, i, resource_id)
                    .await? =>
            {
                Err(StoreError::IdempotencyKeyTaken)
            }
            _ => Ok(()),
        }
    }

    /// Writes `change` to job `id` in `tx`, `existing` as read with its
    /// row locked: the row, its flow, the runs a raised cap releases or a
    /// new policy or schedule leaves behind, its ping key. `None`: the new
    /// id was taken meanwhile.
    ///
    /// What is left for all the changes of `tx` together is added to
    /// `written`, for [`Self::finish_changes`]. Save and the bulk actions
    /// (§11.9) write through here.
    pub(crate) async fn write_change(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &JobId,
        existing: Option<&Job>,
        change: JobChange,
        written: &mut Written,
    ) -> StoreResult<Option<Saved>> {
        let audited = audit::for_job_change(id, existing, &change, Utc::now());
        let is_monitor = match &change {
            JobChange::Insert { definition, .. } | JobChange::Update { definition, .. } => {
                definition.monitor.is_some()
            }
            JobChange::Unchanged => false,
        };
        let links = match &change {
            JobChange::Insert { definition, .. } | JobChange::Update { definition, .. } => {
                Some((definition.chain.clone(), definition.gates.clone()))
            }
            JobChange::Unchanged => None,
        };
        let had_chain = existing.is_some_and(|j| !j.definition.chain.is_empty());
        let had_gates = existing.is_some_and(|j| !j.definition.gates.is_empty());
        let (saved, schedule_changed) = match change {
            JobChange::Unchanged => return Ok(Some(Saved::Updated)),
            JobChange::Insert {
                definition,
                schedule,
                secret,
            } => {
                if let Some(flow) = &definition.flow {
                    self.declare_flow(tx, tenant, flow).await?;
                }
                let quotas = self.quotas_in(tx, tenant).await?;
                // With the jobs this transaction created, counted at its end.
                let held =
                    self.db.count_jobs(tx, tenant).await? + written.jobs_created.len() as u64;
                quota::admit("jobs", held, quotas.jobs, "--max-jobs-per-tenant")?;
                let row = job_row(tenant, id);
                let stored = StoredDefinition::of(&definition, &self.key, row);
                let sealed = self.key.seal_in(row, super::SECRET, &secret);
                if !self
                    .db
                    .insert_job(tx, tenant, id, &stored, schedule, &sealed)
                    .await?
                {
                    return Ok(None);
                }
                written
                    .jobs_created
                    .push(quota::job_count_slot(id.as_str()));
                (Saved::Created, true)
            }
            JobChange::Update {
                definition,
                schedule,
                restart_count,
                secret,
                pause,
            } => {
                if let Some(flow) = &definition.flow {
                    self.declare_flow(tx, tenant, flow).await?;
                }
                let row = job_row(tenant, id);
                let stored = StoredDefinition::of(&definition, &self.key, row);
                self.db
                    .update_job(
                        tx,
                        tenant,
                        id,
                        &stored,
                        &ScheduleUpdate {
                            schedule,
                            restart_count,
                            pause: &pause,
                        },
                    )
                    .await?;
                if let Some(secret) = secret {
                    let sealed = self.key.seal_in(row, super::SECRET, &secret);
                    self.db.set_secret(tx, tenant, id, &sealed).await?;
                    tracing::info!(%tenant, job_id = %id, "signing secret set by the client: the old one no longer signs");
                }
                let before = existing.map(|j| &j.definition);
                let key = (tenant.as_str().to_string(), id.as_str().to_string());
                if before.is_some_and(|b| b.max_instances < definition.max_instances) {
                    // A raised cap makes room for runs that wait.
                    written.released +=
                        self.release_waiting(tx, std::slice::from_ref(&key)).await?;
                }
                // A policy that keeps fewer waiting skips the newest of
                // those that wait beyond it (all of them under `skip`).
                if let Some((keep, reason)) =
                    before.and_then(|b| overlap::trimmed(b.overlap, definition.overlap))
                {
                    let skipped = self
                        .db
                        .skip_waiting(tx, &key, keep, reason.as_str())
                        .await?;
                    if skipped > 0 {
                        tracing::info!(%tenant, job_id = %id, runs = skipped, keep, reason = reason.as_str(), "skipped waiting runs: the job's overlap keeps fewer waiting");
                    }
                }
                if schedule.is_some() {
                    written.replanned.push(id.as_str().to_string());
                }
                (Saved::Updated, schedule.is_some())
            }
        };
        if let Some((chain, gates)) = &links {
            self.write_edges_in(tx, tenant, id, chain, had_chain)
                .await?;
            self.write_gates_in(tx, tenant, id, gates, had_gates)
                .await?;
        }
        // A monitor keeps its ping key across saves; a job that stops
        // being one loses it (§11.5).
        let was_monitor = existing.is_some_and(|j| j.ping_key.is_some());
        if is_monitor || was_monitor {
            let key = is_monitor.then(crate::domain::monitor::new_ping_key);
            self.db
                .set_ping_key(tx, tenant.as_str(), id.as_str(), key.as_deref(), false)
                .await?;
        }
        written.schedule_changed |= schedule_changed;
        if let Some((action, changes)) = audited {
            written
                .audit
                .push(job_audit(tenant.as_str(), id.as_str(), action, changes));
        }
        Ok(Some(saved))
    }

    /// Ends the changes [`Self::write_change`] wrote in `tx`: the runs made
    /// ahead of the replanned jobs are removed, in one statement, the
    /// schedulers told once, the audit records written and, last, the
    /// jobs created counted.
    pub(crate) async fn finish_changes(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        written: &Written,
    ) -> StoreResult<()> {
        if !written.replanned.is_empty() {
            let removed = self
                .db
                .remove_runs_made_ahead(tx, tenant, &written.replanned)
                .await?;
            if removed > 0 {
                tracing::info!(%tenant, jobs = written.replanned.len(), runs = removed, "removed runs made ahead: the jobs' schedules changed");
            }
        }
        if written.schedule_changed {
            self.db.notify(tx, Channel::Jobs).await?;
        }
        if !written.audit.is_empty() {
            self.db.insert_audit(tx, &written.audit).await?;
        }
        // Last: a count's row is locked until the commit, and concurrent
        // creations of the tenant's jobs share its 16 rows.
        let mut slots = written.jobs_created.clone();
        slots.sort_unstable();
        for chunk in slots.chunk_by(|a, b| a == b) {
            self.db
                .add_jobs_held(tx, tenant, chunk[0], chunk.len() as i64)
                .await?;
        }
        Ok(())
    }

    /// A manual run of job `id` in `tx` (`POST /v1/jobs/{id}/run`, bulk
    /// `run`): under the tenant's runs-per-minute quota, admitted by the
    /// job's overlap policy (`force` past it), entered into its flow;
    /// answers it with its events, to be written by the caller.
    pub(crate) async fn manual_run_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &JobId,
        force: bool,
    ) -> StoreResult<ManualRun> {
        self.make_run_in(tx, tenant, id, &RunOrigin::Manual { force })
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// A run of job `id` made outside its schedule, in `tx`: asked for
    /// (`Manual`), or by the end of a parent run (`Chain`, §11.8: none when
    /// that parent run made it already, or the job cannot take one).
    pub(crate) async fn make_run_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &JobId,
        origin: &RunOrigin,
    ) -> StoreResult<Option<ManualRun>> {
        let key = (tenant.as_str().to_string(), id.as_str().to_string());
        let Some(job) = self
            .db
            .lock_jobs(tx, std::slice::from_ref(&key))
            .await?
            .remove(&key)
        else {
            return match origin {
                RunOrigin::Manual { .. } => Err(StoreError::NotFound),
                RunOrigin::Chain { .. } => Ok(None),
            };
        };
        if job.monitor() {
            return match origin {
                RunOrigin::Manual { .. } => Err(monitor_only(id)),
                RunOrigin::Chain { .. } => Ok(None),
            };
        }
        // A paused job takes no chained run: pausing it says "not now"
        // (a manual run still goes, as asked).
        if matches!(origin, RunOrigin::Chain { .. }) && job.state == JobState::Paused {
            tracing::info!(%tenant, job_id = %id, "no chained run: the job is paused");
            return Ok(None);
        }
        let now = Utc::now();
        let minute = quota::minute_of(now);
        let most = self.quotas_in(tx, tenant).await?.runs_per_minute;
        let made = self.db.runs_made(tx, minute).await?;
        let made = made.get(tenant.as_str()).map_or(0, |(n, _)| *n);
        // A chained run is counted, never refused: the end it follows
        // is recorded in the same transaction (one run per parent end).
        if matches!(origin, RunOrigin::Manual { .. }) {
            quota::admit_runs(made, 1, most, now)?;
        }
        self.db
            .add_runs_made(tx, minute, tenant.as_str(), 1)
            .await?;
        let mut in_flight = self
            .db
            .count_in_flight(tx, std::slice::from_ref(&key))
            .await?
            .remove(&key)
            .unwrap_or_default();
        let policy = Overlap::from_stored(&job.overlap, job.buffer_max).unwrap_or_default();
        let force = matches!(origin, RunOrigin::Manual { force: true });
        let admission = overlap::admit(policy, count(job.max_instances), &mut in_flight, force);
        let (status, wait_reason, reason) = admission.run_fields();
        let host = run_host(&job.target_url);
        let run = match origin {
            RunOrigin::Manual { .. } => {
                self.db
                    .insert_manual_run(
                        tx,
                        tenant,
                        id,
                        Uuid::now_v7(),
                        status,
                        wait_reason,
                        reason,
                        host,
                    )
                    .await?
            }
            RunOrigin::Chain { parent, delay_s } => {
                let due = now + chrono::TimeDelta::seconds((*delay_s).into());
                let made = self
                    .db
                    .insert_chain_run(
                        tx,
                        tenant.as_str(),
                        id.as_str(),
                        Uuid::now_v7(),
                        parent.run_id,
                        due,
                        (status, wait_reason, reason),
                        host,
                        now,
                    )
                    .await?;
                match made {
                    Some(run) => run,
                    None => return Ok(None),
                }
            }
        };
        let cause = run.cause;
        let flows_due = match job.flow.clone().filter(|_| status == RunStatus::Pending) {
            Some(flow) => {
                let run = FlowRun {
                    tenant: tenant.as_str().to_string(),
                    id: run.id,
                    flow,
                    scheduled_for: run.scheduled_for,
                };
                self.enter_flows(tx, std::slice::from_ref(&run)).await?
            }
            None => false,
        };
        if job.template && status == RunStatus::Pending {
            let facts = RunFacts {
                run_id: run.id,
                scheduled_for: run.scheduled_for,
                cause,
                occurrences: 1,
                last_success: None,
                parent: match origin {
                    RunOrigin::Chain { parent, .. } => Some(parent.clone()),
                    RunOrigin::Manual { .. } => None,
                },
            };
            self.render_requests(tx, vec![(key.clone(), facts)]).await?;
        }
        if status == RunStatus::Pending {
            self.db.notify(tx, Channel::Runs).await?;
        }
        let replacing = match admission {
            Admission::Replace => vec![(key.clone(), count(job.max_instances).max(1), run.id)],
            _ => Vec::new(),
        };
        let (cancel_events, cancelled) = self.replace_oldest(tx, &replacing).await?;
        // Asked for by someone; a chained run is the system's, as a
        // scheduled one is.
        if matches!(origin, RunOrigin::Manual { .. }) {
            let record = job_audit(
                tenant.as_str(),
                id.as_str(),
                "job.run",
                audit::for_job_run(run.id),
            );
            self.db.insert_audit(tx, &[record]).await?;
        }
        let mut events = with_tenant(
            tenant,
            vec![event::run_created(&event::RunMade {
                job_id: id.as_str(),
                run_id: run.id,
                status,
                cause,
                scheduled_for: run.scheduled_for,
                occurrences: 1,
                wait_reason,
                reason,
            })],
        );
        events.extend(cancel_events);
        Ok(Some(ManualRun {
            run,
            events,
            cancelled,
            pending: status == RunStatus::Pending,
            flows_due,
        }))
    }

    /// Wakes what a committed [`Self::manual_run_in`] concerns.
    pub(crate) fn manual_run_made(&self, made: &ManualRun) {
        self.wakeups.aborts.cancelled(&made.cancelled);
        if made.pending {
            self.wakeups.runs_changed();
        }
        if made.flows_due {
            self.wakeups.flows_changed();
        }
    }

    /// Wakes what a committed [`Self::write_change`] concerns.
    pub(crate) fn written(&self, written: &Written) {
        if written.schedule_changed {
            self.wakeups.jobs_changed();
        }
        if written.released > 0 {
            self.wakeups.runs_changed();
            self.wakeups.flows_changed();
        }
    }

    /// Deletes the job (its runs go with it) and takes it off its
    /// tenant's count; answers whether there was one.
    pub(crate) async fn delete_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &JobId,
        drop_refs: bool,
    ) -> StoreResult<bool> {
        // Its runs in flight free their flow keys' slots as they go.
        let key = (tenant.as_str().to_string(), id.as_str().to_string());
        // The keys are locked before the runs are deleted: the flow pass
        // locks a key, then its runs; the other order could deadlock.
        let Some(job) = self.db.read_job(tx, &self.key, tenant, id, true).await? else {
            return Ok(false);
        };
        // No chain may name a job that is gone (§11.8).
        self.release_referrers_in(tx, tenant, id, drop_refs).await?;
        let keys = self.db.flow_keys_in_flight(tx, &key).await?;
        let poked = self.poke_flows(tx, keys).await?;
        if !self.db.delete_job(tx, tenant, id).await? {
            return Ok(false);
        }
        let changes = audit::for_job_deleted(&job);
        let record = job_audit(tenant.as_str(), id.as_str(), "job.deleted", changes);
        self.db.insert_audit(tx, &[record]).await?;
        if poked {
            // Seen once committed (within the pass's poll at the latest).
            self.wakeups.flows_changed();
        }
        let slot = quota::job_count_slot(id.as_str());
        self.db.add_jobs_held(tx, tenant, slot, -1).await?;
        Ok(true)
    }

    /// Deletes the completed jobs among `jobs` (strings as rows name
    /// them) whose `on_complete` is `delete`, once nothing of theirs is in
    /// flight (§11.3); answers the events.
    async fn delete_finished(
        &self,
        tx: &mut D::Tx,
        jobs: &[JobKey],
        in_flight: &HashMap<JobKey, InFlight>,
    ) -> StoreResult<Vec<(String, NewEvent)>> {
        let mut events = Vec::new();
        for key in jobs {
            if in_flight
                .get(key)
                .is_some_and(|n| *n != InFlight::default())
            {
                continue;
            }
            let (tenant, id) = (super::tenant(&key.0)?, super::job_id(key.1.clone())?);
            // The system's deletion: chains naming it let it go.
            if self.delete_in(tx, &tenant, &id, true).await? {
                tracing::info!(%tenant, job_id = %id, "job deleted: completed, its last run ended (on_complete: delete)");
                events.push((key.0.clone(), event::job_deleted(&key.1)));
            }
        }
        Ok(events)
    }

    /// Under overlap `replace`, after runs of `jobs` (key, `max_instances`,
    /// the newest run made) were written: cancels each job's oldest runs
    /// beyond its cap (§11.1). Answers the events and the runs cancelled,
    /// whose requests the caller aborts after its commit.
    async fn replace_oldest(
        &self,
        tx: &mut D::Tx,
        jobs: &[(JobKey, u32, Uuid)],
    ) -> StoreResult<(Vec<(String, NewEvent)>, Vec<Uuid>)> {
        let (mut events, mut cancelled) = (Vec::new(), Vec::new());
        if jobs.is_empty() {
            return Ok((events, cancelled));
        }
        let keys: Vec<JobKey> = jobs.iter().map(|(key, ..)| key.clone()).collect();
        let counts = self.db.count_in_flight(tx, &keys).await?;
        for (key, max_instances, newest) in jobs {
            let in_flight = counts.get(key).copied().unwrap_or_default();
            let n = overlap::replaced(*max_instances, in_flight);
            if n == 0 {
                continue;
            }
            for id in self.db.cancel_oldest(tx, key, n).await? {
                tracing::info!(tenant = %key.0, job_id = %key.1, run_id = %id, replaced_by = %newest, "run cancelled: replaced by a newer run (overlap replace)");
                events.push((key.0.clone(), event::run_cancelled(&key.1, id, *newest)));
                cancelled.push(id);
            }
        }
        if !cancelled.is_empty() {
            self.db.notify_cancelled(tx, &cancelled).await?;
        }
        Ok((events, cancelled))
    }

    /// Renders the requests of template jobs' runs just inserted in `tx`
    /// and keeps each on its run (§11.2), so that every attempt sends the
    /// same bytes. A template that does not render is kept as its error:
    /// the run then fails unsent with `template_error`, not retried.
    async fn render_requests(
        &self,
        tx: &mut D::Tx,
        runs: Vec<(JobKey, RunFacts)>,
    ) -> StoreResult<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let mut jobs = HashMap::new();
        let mut requests = Vec::with_capacity(runs.len());
        for (key, mut facts) in runs {
            if !jobs.contains_key(&key) {
                let (tenant, id) = (super::tenant(&key.0)?, super::job_id(key.1.clone())?);
                let job = self.db.read_job(tx, &self.key, &tenant, &id, false).await?;
                let last_success = self.db.last_success(tx, &key).await?;
                jobs.insert(key.clone(), job.map(|job| (job, last_success)));
            }
            let Some(Some((job, last_success))) = jobs.get(&key) else {
                continue;
            };
            facts.last_success = *last_success;
            let rendered =
                template::render(&key.1, &job.definition, &facts).map_err(|e| e.as_run_error());
            if let Err(error) = &rendered {
                tracing::warn!(tenant = %key.0, job_id = %key.1, run_id = %facts.run_id, %error, "template did not render: the run fails unsent");
            }
            let run_id = facts.run_id.to_string();
            let row = Row {
                tenant: &key.0,
                table: "runs",
                id: &run_id,
            };
            requests.push((facts.run_id, StoredRequest::of(&rendered, &self.key, row)));
        }
        self.db.store_requests(tx, &requests).await
    }

    /// Sends the waiting runs of `jobs` that their caps have room for,
    /// oldest first (§11.1), under the jobs' row locks; answers how many
    /// (the caller wakes the dispatchers after its commit).
    async fn release_waiting(&self, tx: &mut D::Tx, jobs: &[JobKey]) -> StoreResult<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let locked = self.db.lock_jobs(tx, jobs).await?;
        let counts = self.db.count_in_flight(tx, jobs).await?;
        self.release_locked(tx, &locked, &counts, jobs).await
    }

    /// [`Self::release_waiting`] for jobs already locked in `tx`, their
    /// runs in flight counted.
    async fn release_locked(
        &self,
        tx: &mut D::Tx,
        locked: &HashMap<JobKey, LockedJob>,
        counts: &HashMap<JobKey, InFlight>,
        jobs: &[JobKey],
    ) -> StoreResult<u64> {
        let mut released = 0;
        for key in jobs {
            let (Some(job), Some(in_flight)) = (locked.get(key), counts.get(key)) else {
                continue;
            };
            let n = overlap::releasable(count(job.max_instances).max(1), *in_flight);
            if n > 0 {
                released += self.db.release_waiting(tx, key, n).await?;
                // Released runs of a flow job wait for its key.
                if let Some(flow) = &job.flow {
                    self.db.poke_flow(tx, &key.0, flow.key.as_str()).await?;
                }
            }
        }
        if released > 0 {
            self.db.notify(tx, Channel::Runs).await?;
        }
        Ok(released)
    }

    /// Sends the next waiting backfill runs of `jobs` (locked in `tx`)
    /// their caps have room for, oldest first (§11.3): a backfill's lane
    /// is counted apart from the job's own runs.
    async fn release_backfills(
        &self,
        tx: &mut D::Tx,
        locked: &HashMap<JobKey, LockedJob>,
        jobs: &[JobKey],
    ) -> StoreResult<u64> {
        let mut released = 0;
        for key in jobs {
            let Some(job) = locked.get(key) else { continue };
            let lane = self.db.backfill_in_flight(tx, key).await?;
            let n = overlap::releasable(count(job.max_instances).max(1), lane);
            if n > 0 {
                released += self.db.release_backfill(tx, key, n).await?;
                if let Some(flow) = &job.flow {
                    self.db.poke_flow(tx, &key.0, flow.key.as_str()).await?;
                }
            }
        }
        if released > 0 {
            self.db.notify(tx, Channel::Runs).await?;
        }
        Ok(released)
    }

    /// Declares a job's flow key (§11.1): a key without a row gets one
    /// with the job's limits (or none); limits that differ from the key's
    /// are refused, naming the key and its limits.
    async fn declare_flow(&self, tx: &mut D::Tx, tenant: &Tenant, flow: &Flow) -> StoreResult<()> {
        let key = flow.key.as_str();
        if self
            .db
            .lock_flow(tx, tenant.as_str(), key, true)
            .await?
            .is_none()
        {
            let limits = flow.limits.unwrap_or_default();
            self.db
                .insert_flow(tx, tenant.as_str(), key, limits, flow::DEFINED_BY_JOB)
                .await?;
        }
        let (state, _) = self
            .db
            .lock_flow(tx, tenant.as_str(), key, true)
            .await?
            .ok_or(StoreError::NotFound)?;
        match flow.limits {
            Some(limits) if limits != state.limits => Err(StoreError::Conflict(format!(
                "flow key {key} is defined with {}; a job gives only the key or the same \
                 limits (PUT /v1/flows/{key} changes them)",
                state.limits.describe()
            ))),
            _ => Ok(()),
        }
    }

    /// Runs of flow jobs just made in `tx` wait for their keys (§11.1);
    /// the keys are made due, for the flow pass to admit after the
    /// commit. Answers whether there were any.
    async fn enter_flows(&self, tx: &mut D::Tx, runs: &[FlowRun]) -> StoreResult<bool> {
        let mut keys = Vec::new();
        for run in runs {
            let wait_until = run
                .flow
                .max_wait_s
                .map(|s| run.scheduled_for + chrono::TimeDelta::seconds(i64::from(s)));
            let key = run.flow.key.as_str();
            self.db
                .enter_flow(tx, run.id, key, run.flow.priority, wait_until)
                .await?;
            keys.push((run.tenant.clone(), key.to_string()));
        }
        self.poke_flows(tx, keys).await
    }

    /// Makes `keys` due for admission now; whether there were any.
    async fn poke_flows(&self, tx: &mut D::Tx, mut keys: Vec<JobKey>) -> StoreResult<bool> {
        keys.sort_unstable();
        keys.dedup();
        for (tenant, key) in &keys {
            self.db.poke_flow(tx, tenant, key).await?;
        }
        Ok(!keys.is_empty())
    }

    /// After recorded attempts of flow runs (§11.1): a run to be retried
    /// waits for its key again, and its key (or an ended run's) is made
    /// due, so that another run may take the slot.
    pub(super) async fn flows_after_attempts(
        &self,
        tx: &mut D::Tx,
        records: &[AttemptRecord],
        recorded: &[Uuid],
    ) -> StoreResult<bool> {
        let mut keys = Vec::new();
        for r in records
            .iter()
            .filter(|r| r.flow && r.job_id.is_some() && recorded.contains(&r.run_id))
        {
            let key = match r.outcome {
                Outcome::Retry { .. } => self.db.requeue_flow_run(tx, r.run_id, false).await?,
                // Accepted: it holds its slot until it ends (§11.7).
                Outcome::Accepted { .. } => None,
                Outcome::Succeeded | Outcome::Failed | Outcome::Cancelled => {
                    self.db.flow_of_run(tx, r.run_id).await?
                }
            };
            keys.extend(key);
        }
        self.poke_flows(tx, keys).await
    }

    /// A key's limits, state and runs now.
    async fn flow_info(
        &self,
        tx: &mut D::Tx,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<FlowInfo>> {
        // A read: no lock to hold up admissions.
        let Some((state, now)) = self.db.lock_flow(tx, tenant, key, false).await? else {
            return Ok(None);
        };
        let counts = self.db.flow_counts(tx, tenant, key, now).await?;
        let tokens = state
            .limits
            .rate
            .map(|rate| flow::whole(state.bucket.refilled(rate, now).tokens));
        Ok(Some(FlowInfo {
            key: state.key,
            limits: state.limits,
            defined_by: state.defined_by,
            paused: state.paused,
            in_flight: counts.in_flight,
            waiting: counts.waiting,
            tokens,
            next_admit_at: state.next_admit_at,
        }))
    }

    /// What follows the end of recorded runs (`recorded` of `records`):
    /// the chained runs their ends start and the runs held for their
    /// successes (§11.8); then, under one lock of each job's row, jobs
    /// whose `pause_on_failure` says so pause (each once, for its first
    /// failed run), runs that wait for an ended one are released (§11.1),
    /// and completed jobs whose last run ended are deleted if
    /// `on_complete` says so (§11.3). Answers the events and how many runs
    /// were released.
    pub(super) async fn after_runs_end(
        &self,
        tx: &mut D::Tx,
        records: &[AttemptRecord],
        recorded: &[Uuid],
    ) -> StoreResult<(Vec<(String, NewEvent)>, u64)> {
        let (mut events, chained_pending) = self.chain_runs_in(tx, records, recorded).await?;
        if chained_pending {
            self.db.notify(tx, Channel::Runs).await?;
        }
        // Runs held for a job that just succeeded may go (§11.8).
        let gated = self.release_gates_in(tx, records, recorded).await?;
        events.extend(gated.events);
        let failed = failed_runs(records, recorded);
        let mut ended = ended_with_follow_up(records, recorded);
        ended.extend(gated.ended);
        ended.sort_unstable();
        ended.dedup();
        let mut keys: Vec<JobKey> = failed
            .iter()
            .map(|f| (f.0.clone(), f.1.clone()))
            .chain(ended.iter().cloned())
            .collect();
        if keys.is_empty() {
            return Ok((events, gated.released));
        }
        keys.sort_unstable();
        keys.dedup();
        let locked = self.db.lock_jobs(tx, &keys).await?;
        let mut paused = Vec::new();
        let mut audits = Vec::new();
        for (tenant, job_id, run_id) in &failed {
            let key = (tenant.clone(), job_id.clone());
            let Some(job) = locked.get(&key) else {
                continue;
            };
            if !event::pauses_on_failure(job.pause_on_failure, job.state) || paused.contains(&key) {
                continue;
            }
            tracing::warn!(%tenant, %job_id, %run_id, "job paused: its run failed (pause_on_failure)");
            events.push((
                tenant.clone(),
                event::job_paused_by_failure(job_id, *run_id),
            ));
            let changes = audit::for_job_paused_by_failure(*run_id);
            audits.push(job_audit(tenant, job_id, "job.paused", changes));
            paused.push(key);
        }
        if !paused.is_empty() {
            self.db.insert_audit(tx, &audits).await?;
            self.db.pause_jobs(tx, &paused).await?;
            self.db.notify(tx, Channel::Jobs).await?;
        }
        if ended.is_empty() {
            return Ok((events, gated.released));
        }
        let (followed, released) = self.after_jobs_runs_end(tx, &locked, &ended).await?;
        events.extend(followed);
        Ok((events, released + gated.released))
    }

    /// What follows the end of runs of `ended` (locked in `tx`): their
    /// waiting runs released (§11.1, §11.3's backfill lane), completed
    /// jobs with nothing left in flight deleted (§11.3). Answers the events
    /// and how many runs were released.
    async fn after_jobs_runs_end(
        &self,
        tx: &mut D::Tx,
        locked: &HashMap<JobKey, LockedJob>,
        ended: &[JobKey],
    ) -> StoreResult<(Vec<(String, NewEvent)>, u64)> {
        // Counted once: releasing a waiting run leaves a job's runs in
        // flight as many, so the same counts say which jobs are done.
        let counts = self.db.count_in_flight(tx, ended).await?;
        let released = self.release_locked(tx, locked, &counts, ended).await?
            + self.release_backfills(tx, locked, ended).await?;
        let mut finished = Vec::new();
        for key in ended {
            let done = locked.get(key).is_some_and(|job| {
                job.state == JobState::Completed && job.on_complete == OnComplete::Delete
            });
            // A backfill's runs in flight keep the job too.
            if done && self.db.backfill_in_flight(tx, key).await? == InFlight::default() {
                finished.push(key.clone());
            }
        }
        let events = self.delete_finished(tx, &finished, &counts).await?;
        Ok((events, released))
    }

    /// After runs of `jobs` ended outside a recorded attempt (a flow's
    /// `max_wait_s`, a cancelled backfill): the same follow-up as an
    /// attempt's end, in a transaction of its own.
    pub(super) async fn follow_up_ended(&self, mut jobs: Vec<JobKey>) -> StoreResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        jobs.sort_unstable();
        jobs.dedup();
        let mut tx = self.db.begin().await?;
        let locked = self.db.lock_jobs(&mut tx, &jobs).await?;
        let (events, released) = self.after_jobs_runs_end(&mut tx, &locked, &jobs).await?;
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        if released > 0 {
            self.wakeups.runs_changed();
            self.wakeups.flows_changed();
        }
        if !events.is_empty() {
            self.events_written(deliveries);
        }
        Ok(())
    }
}

/// What a monitor-only job answers a request to send a run (§11.5).
fn monitor_only(id: &JobId) -> StoreError {
    StoreError::Conflict(format!(
        "job {id} is monitor-only: it sends nothing; its runs are moved by pings to its monitor.ping_url"
    ))
}

#[async_trait]
#[allow(private_bounds)]
impl<D: Dialect> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        self.db.backend()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.ping().await
    }

    async fn save_job(
        &self,
        tenant: &Tenant,
        id: &JobId,
        command: &JobCommand,
        ctx: ParseContext,
        idempotency: Option<&Idempotency>,
    ) -> StoreResult<(Job, Saved)> {
        // Two writers creating the same new id: the loser's insert finds
        // the id taken and it decides again, now seeing the stored job.
        for _ in 0..3 {
            let mut tx = self.db.begin().await?;
            let existing = self
                .db
                .read_job(&mut tx, &self.key, tenant, id, true)
                .await?;
            let binding = self
                .binding(&mut tx, tenant, id, command, existing.as_ref())
                .await?;
            let command = &lifecycle::bound(command, &binding)?;
            let ctx = ParseContext {
                binding: Some(binding),
                ..ctx.clone()
            };
            let change = lifecycle::decide(id.as_str(), existing.as_ref(), command, ctx)?;
            let events = with_tenant(
                tenant,
                event::for_job_change(id.as_str(), existing.as_ref(), &change),
            );
            if change == JobChange::Unchanged {
                D::commit(tx).await?;
                return Ok((existing.ok_or(StoreError::NotFound)?, Saved::Updated));
            }
            let mut written = Written::default();
            let Some(saved) = self
                .write_change(&mut tx, tenant, id, existing.as_ref(), change, &mut written)
                .await?
            else {
                continue;
            };
            if saved == Saved::Created {
                self.record_idempotency(&mut tx, tenant, idempotency, id.as_str())
                    .await?;
            }
            let deliveries = self.write_events(&mut tx, &events).await?;
            self.finish_changes(&mut tx, tenant, &written).await?;
            let job = self
                .db
                .read_job(&mut tx, &self.key, tenant, id, false)
                .await?
                .ok_or(StoreError::NotFound)?;
            D::commit(tx).await?;
            self.written(&written);
            if !events.is_empty() {
                self.events_written(deliveries);
            }
            return Ok((job, saved));
        }
        Err(StoreError::Conflict(format!(
            "job {id} is being created concurrently; try again"
        )))
    }

    async fn get_job(&self, tenant: &Tenant, id: &JobId) -> StoreResult<Option<Job>> {
        self.db.get_job(&self.key, tenant, id).await
    }

    async fn job_exists(&self, tenant: &Tenant, id: &JobId) -> StoreResult<bool> {
        self.db.job_exists(tenant, id).await
    }

    async fn admit_due_flows(&self, limit: u32) -> StoreResult<Option<Duration>> {
        // A read first: with no key due, no write transaction (SQLite's
        // write lock is the whole database's).
        match self.db.next_flow_admit_in().await? {
            Some(due_in) if due_in.is_zero() => {}
            later => return Ok(later),
        }
        let mut tx = self.db.begin().await?;
        let due = self.db.due_flows(&mut tx, limit).await?;
        let mut admitted = 0;
        let mut events = Vec::new();
        let mut expired = Vec::new();
        for (tenant, key) in &due {
            let Some((state, now)) = self.db.lock_flow(&mut tx, tenant, key, true).await? else {
                continue;
            };
            for (run, job) in self.db.expire_flow_waits(&mut tx, tenant, key, now).await? {
                tracing::warn!(%tenant, job_id = %job, run_id = %run, flow_key = %key, "run missed: it waited for its flow key past max_wait_s");
                events.push((tenant.clone(), event::run_waited_too_long(&job, run, key)));
                expired.push((tenant.clone(), job));
            }
            let counts = self.db.flow_counts(&mut tx, tenant, key, now).await?;
            let decision = flow::admit(
                state.limits,
                state.paused,
                state.bucket,
                counts.in_flight,
                counts.due,
                now,
            );
            if decision.runs > 0 {
                admitted += self
                    .db
                    .admit_flow_runs(&mut tx, tenant, key, decision.runs, now)
                    .await?;
            }
            // Again by time: a token, a waiting run falling due, a
            // deadline; a run's end makes the key due too.
            let not_due_yet = counts.waiting > counts.due && !state.paused;
            let next = [
                decision.again_at,
                counts.next_due_at.filter(|_| not_due_yet),
                counts.deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            self.db
                .save_flow(&mut tx, tenant, key, decision.bucket, next)
                .await?;
        }
        if admitted > 0 {
            self.db.notify(&mut tx, Channel::Runs).await?;
        }
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        if admitted > 0 {
            self.wakeups.runs_changed();
        }
        if !events.is_empty() {
            self.events_written(deliveries);
        }
        // A missed run no longer holds its job: what waited for it may go.
        self.follow_up_ended(expired).await?;
        if due.len() as u32 >= limit {
            return Ok(Some(Duration::ZERO));
        }
        self.db.next_flow_admit_in().await
    }

    async fn bulk_jobs(
        &self,
        tenant: &Tenant,
        request: &crate::domain::bulk::BulkRequest,
        ctx: ParseContext,
    ) -> StoreResult<super::bulk::BulkOutcome> {
        self.bulk_inner(tenant, request, ctx).await
    }

    async fn apply_bundle(
        &self,
        tenant: &Tenant,
        bundle: &crate::domain::bundle::Bundle,
        prune_owner: Option<&str>,
        dry_run: bool,
        ctx: ParseContext,
    ) -> StoreResult<crate::domain::bundle::Plan> {
        self.apply_inner(tenant, bundle, prune_owner, dry_run, ctx)
            .await
    }

    async fn resume_timed_pauses(&self) -> StoreResult<u64> {
        self.resume_timed_pauses_inner().await
    }

    async fn watch_callbacks(&self) -> StoreResult<Vec<RunStatus>> {
        self.watch_callbacks_inner().await
    }

    async fn watch_gates(&self) -> StoreResult<usize> {
        Ok(self.watch_gates_inner().await?.events.len())
    }

    fn verify_callback(&self, run_id: Uuid, token: &str) -> bool {
        self.verify_callback_inner(run_id, token)
    }

    async fn complete_run(
        &self,
        run_id: Uuid,
        report: &crate::domain::callback::Completed,
    ) -> StoreResult<super::callbacks::CompletionReceipt> {
        self.complete_run_inner(run_id, report).await
    }

    async fn heartbeat_run(
        &self,
        run_id: Uuid,
        beat: &crate::domain::callback::Beat,
    ) -> StoreResult<()> {
        self.heartbeat_run_inner(run_id, beat).await
    }

    async fn cancel_run(
        &self,
        tenant: &Tenant,
        run_id: Uuid,
    ) -> StoreResult<super::callbacks::CancelReceipt> {
        self.cancel_run_inner(tenant.as_str(), run_id).await
    }

    async fn watch_alerts(&self) -> StoreResult<super::alerts::WatchPass> {
        self.watch_alerts_inner().await
    }

    async fn record_ping(
        &self,
        key: &str,
        ping: crate::domain::monitor::Ping,
        body: &[u8],
    ) -> StoreResult<Option<super::monitors::PingReceipt>> {
        self.ping_inner(key, ping, body).await
    }

    async fn rotate_ping_key(&self, tenant: &Tenant, id: &JobId) -> StoreResult<Option<String>> {
        self.rotate_ping_key_inner(tenant, id).await
    }

    async fn list_alerts(
        &self,
        tenant: &Tenant,
        filter: &super::alerts::AlertFilter,
    ) -> StoreResult<Vec<super::alerts::AlertRecord>> {
        self.list_alerts_inner(tenant, filter).await
    }

    async fn ack_alert(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<super::alerts::AlertRecord>> {
        self.ack_alert_inner(tenant, id).await
    }

    async fn list_calendars(&self, tenant: &Tenant) -> StoreResult<Vec<super::CalendarRecord>> {
        self.list_calendars_inner(tenant).await
    }

    async fn put_calendar(
        &self,
        tenant: &Tenant,
        calendar: crate::domain::calendar::Calendar,
        create: bool,
    ) -> StoreResult<super::CalendarSaved> {
        self.put_calendar_inner(tenant, calendar, create).await
    }

    async fn add_calendar_days(
        &self,
        tenant: &Tenant,
        id: &str,
        days: &std::collections::BTreeSet<chrono::NaiveDate>,
    ) -> StoreResult<(super::CalendarSaved, usize)> {
        self.add_calendar_days_inner(tenant, id, days).await
    }

    async fn delete_calendar(&self, tenant: &Tenant, id: &str) -> StoreResult<bool> {
        self.delete_calendar_inner(tenant, id).await
    }

    async fn list_flows(&self, tenant: &Tenant) -> StoreResult<Vec<FlowInfo>> {
        let mut tx = self.db.begin().await?;
        let keys = self.db.list_flows(&mut tx, tenant.as_str()).await?;
        let mut flows = Vec::with_capacity(keys.len());
        for state in keys {
            flows.extend(self.flow_info(&mut tx, tenant.as_str(), &state.key).await?);
        }
        D::commit(tx).await?;
        Ok(flows)
    }

    async fn get_flow(&self, tenant: &Tenant, key: &str) -> StoreResult<Option<FlowInfo>> {
        let mut tx = self.db.begin().await?;
        let info = self.flow_info(&mut tx, tenant.as_str(), key).await?;
        D::commit(tx).await?;
        Ok(info)
    }

    async fn put_flow(
        &self,
        tenant: &Tenant,
        key: &str,
        limits: FlowLimits,
    ) -> StoreResult<FlowInfo> {
        let mut tx = self.db.begin().await?;
        self.put_flow_in(&mut tx, tenant, key, limits).await?;
        let info = self
            .flow_info(&mut tx, tenant.as_str(), key)
            .await?
            .ok_or(StoreError::NotFound)?;
        D::commit(tx).await?;
        tracing::info!(%tenant, flow_key = %key, limits = %limits.describe(), "flow key defined");
        self.wakeups.flows_changed();
        Ok(info)
    }

    async fn pause_flow(
        &self,
        tenant: &Tenant,
        key: &str,
        paused: bool,
    ) -> StoreResult<Option<FlowInfo>> {
        let mut tx = self.db.begin().await?;
        if !self
            .db
            .set_flow_paused(&mut tx, tenant.as_str(), key, paused)
            .await?
        {
            return Ok(None);
        }
        let action = if paused {
            "flow.paused"
        } else {
            "flow.resumed"
        };
        let record = audit_record(
            tenant.as_str(),
            action,
            &audit::target("flow", key),
            audit::for_flow_paused(paused),
        );
        self.db.insert_audit(&mut tx, &[record]).await?;
        self.db.poke_flow(&mut tx, tenant.as_str(), key).await?;
        let info = self.flow_info(&mut tx, tenant.as_str(), key).await?;
        D::commit(tx).await?;
        tracing::info!(%tenant, flow_key = %key, paused, "flow key paused or resumed");
        self.wakeups.flows_changed();
        Ok(info)
    }

    async fn create_backfill(
        &self,
        tenant: &Tenant,
        id: &JobId,
        spec: &BackfillSpec,
    ) -> StoreResult<BackfillMade> {
        let mut tx = self.db.begin().await?;
        let job = self
            .db
            .read_job(&mut tx, &self.key, tenant, id, true)
            .await?
            .ok_or(StoreError::NotFound)?;
        let key: JobKey = (tenant.as_str().to_string(), id.as_str().to_string());
        let d = &job.definition;
        let Some(target) = &d.target else {
            return Err(monitor_only(id));
        };
        let occurrences = backfill::occurrences(&d.trigger, spec.from, spec.to, spec.max)?;
        let existing = self
            .db
            .occurrence_runs(&mut tx, &key, spec.from, spec.to)
            .await?;
        if spec.dry_run {
            D::commit(tx).await?;
            let listed = occurrences
                .iter()
                .map(|at| (*at, existing.get(at).copied()))
                .collect();
            return Ok(BackfillMade::DryRun(listed));
        }
        let lane = self.db.backfill_in_flight(&mut tx, &key).await?;
        let planned = backfill::plan(&occurrences, &existing, spec, d.max_instances.max(1), lane);
        let now = Utc::now();
        let minute = quota::minute_of(now);
        let most = self.quotas_in(&mut tx, tenant).await?.runs_per_minute;
        let made = self.db.runs_made(&mut tx, minute).await?;
        let made = made.get(tenant.as_str()).map_or(0, |(n, _)| *n);
        quota::admit_runs(made, planned.len() as u64, most, now)?;
        let backfill_id = Uuid::now_v7();
        let host = run_host(target.url.as_str());
        let mut events = Vec::new();
        let mut to_render = Vec::new();
        let mut flow_runs = Vec::new();
        let mut sent_now = false;
        for run in &planned {
            let run_id = Uuid::now_v7();
            let new = NewBackfillRun {
                id: run_id,
                tenant: key.0.clone(),
                job_id: key.1.clone(),
                backfill_id,
                scheduled_for: run.scheduled_for,
                replay_of: run.replay_of,
                status: run.status,
                wait_reason: run.wait_reason,
                reason: run.reason,
                host: host.clone(),
            };
            if !self.db.insert_backfill_run(&mut tx, &new).await? {
                continue;
            }
            events.push(event::run_created(&event::RunMade {
                job_id: id.as_str(),
                run_id,
                status: run.status,
                cause: RunCause::Backfill,
                scheduled_for: run.scheduled_for,
                occurrences: 1,
                wait_reason: run.wait_reason,
                reason: run.reason,
            }));
            if run.status == RunStatus::Pending {
                sent_now |= run.wait_reason.is_none();
                if let Some(flow) = &d.flow {
                    // Late on purpose: `max_wait_s` (how late a run may
                    // still go) does not apply to a backfill's runs.
                    let flow = Flow {
                        max_wait_s: None,
                        ..flow.clone()
                    };
                    flow_runs.push(FlowRun {
                        tenant: key.0.clone(),
                        id: run_id,
                        flow,
                        scheduled_for: run.scheduled_for,
                    });
                }
                if target.template {
                    let facts = RunFacts {
                        run_id,
                        scheduled_for: run.scheduled_for,
                        cause: RunCause::Backfill,
                        occurrences: 1,
                        last_success: None,
                        parent: None,
                    };
                    to_render.push((key.clone(), facts));
                }
            }
        }
        self.render_requests(&mut tx, to_render).await?;
        let flows_due = self.enter_flows(&mut tx, &flow_runs).await?;
        let runs_made = events.len() as u64;
        self.db
            .add_runs_made(&mut tx, minute, tenant.as_str(), runs_made)
            .await?;
        let made = Backfill {
            id: backfill_id,
            job_id: id.clone(),
            from: spec.from,
            to: spec.to,
            overlap: spec.overlap.as_str().to_string(),
            reprocess: spec.reprocess,
            occurrences: u32::try_from(occurrences.len()).unwrap_or(u32::MAX),
            runs_made: u32::try_from(runs_made).unwrap_or(u32::MAX),
            created_at: now,
            cancelled_at: None,
            runs: Default::default(),
        };
        self.db.insert_backfill(&mut tx, tenant, &made).await?;
        let changes = audit::for_backfill(backfill_id, spec.from, spec.to, made.runs_made);
        let record = job_audit(tenant.as_str(), id.as_str(), "job.backfilled", changes);
        self.db.insert_audit(&mut tx, &[record]).await?;
        if sent_now {
            self.db.notify(&mut tx, Channel::Runs).await?;
        }
        let deliveries = self
            .write_events(&mut tx, &with_tenant(tenant, events))
            .await?;
        let made = self
            .db
            .read_backfill(&mut tx, tenant, backfill_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        D::commit(tx).await?;
        tracing::info!(%tenant, job_id = %id, %backfill_id, from = %spec.from, to = %spec.to, occurrences = made.occurrences, runs_made = made.runs_made, "backfill made");
        if sent_now {
            self.wakeups.runs_changed();
        }
        if flows_due {
            self.wakeups.flows_changed();
        }
        self.events_written(deliveries);
        Ok(BackfillMade::Made(made))
    }

    async fn get_backfill(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Option<Backfill>> {
        let mut tx = self.db.begin().await?;
        let backfill = self.db.read_backfill(&mut tx, tenant, id).await?;
        D::commit(tx).await?;
        Ok(backfill)
    }

    async fn cancel_backfill(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Option<Backfill>> {
        let mut tx = self.db.begin().await?;
        let Some(backfill) = self.db.read_backfill(&mut tx, tenant, id).await? else {
            return Ok(None);
        };
        // The job first, as every path that ends runs locks it.
        let key = (tenant.as_str().to_string(), backfill.job_id.to_string());
        let jobs = std::slice::from_ref(&key);
        let locked = self.db.lock_jobs(&mut tx, jobs).await?;
        // Its flow key before its runs, in the flow pass's order (a key,
        // then its runs): the cancelled runs free the key's slots.
        let flows: Vec<JobKey> = locked
            .get(&key)
            .and_then(|job| job.flow.as_ref())
            .map(|flow| (key.0.clone(), flow.key.as_str().to_string()))
            .into_iter()
            .collect();
        let flows_due = self.poke_flows(&mut tx, flows).await?;
        let cancelled = self.db.cancel_backfill(&mut tx, tenant, id).await?;
        let changes = audit::for_backfill_cancelled(id, Utc::now(), cancelled.len());
        let record = job_audit(
            tenant.as_str(),
            backfill.job_id.as_str(),
            "job.backfill_cancelled",
            changes,
        );
        self.db.insert_audit(&mut tx, &[record]).await?;
        let events: Vec<NewEvent> = cancelled
            .iter()
            .map(|(run, job)| event::run_backfill_cancelled(job, *run, id))
            .collect();
        // Another backfill of the job may go on in the lane, and the
        // cancelled runs free their flow key's slots.
        let released = self.release_backfills(&mut tx, &locked, jobs).await?;
        let deliveries = self
            .write_events(&mut tx, &with_tenant(tenant, events))
            .await?;
        let backfill = self.db.read_backfill(&mut tx, tenant, id).await?;
        D::commit(tx).await?;
        tracing::info!(%tenant, backfill_id = %id, runs_cancelled = cancelled.len(), "backfill cancelled");
        if released > 0 {
            self.wakeups.runs_changed();
        }
        if flows_due || released > 0 {
            self.wakeups.flows_changed();
        }
        self.events_written(deliveries);
        Ok(backfill)
    }

    async fn job_for_render(
        &self,
        tenant: &Tenant,
        id: &JobId,
    ) -> StoreResult<Option<(Job, Option<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)>)>> {
        let mut tx = self.db.begin().await?;
        let Some(job) = self
            .db
            .read_job(&mut tx, &self.key, tenant, id, false)
            .await?
        else {
            return Ok(None);
        };
        let key = (tenant.as_str().to_string(), id.as_str().to_string());
        let last_success = self.db.last_success(&mut tx, &key).await?;
        D::commit(tx).await?;
        Ok(Some((job, last_success)))
    }

    async fn list_jobs(&self, tenant: &Tenant, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        self.db.list_jobs(&self.key, tenant, filter).await
    }

    async fn delete_job(&self, tenant: &Tenant, id: &JobId, drop_refs: bool) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        if !self.delete_in(&mut tx, tenant, id, drop_refs).await? {
            D::commit(tx).await?;
            return Ok(false);
        }
        let events = with_tenant(tenant, vec![event::job_deleted(id.as_str())]);
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        self.events_written(deliveries);
        Ok(true)
    }

    async fn claim_due_jobs(
        &self,
        limit: u32,
        lookahead: Duration,
        plan: &PlanFn<'_>,
    ) -> StoreResult<ClaimOutcome> {
        // Tenants past their runs this minute: their jobs stay due.
        let minute = quota::minute_of(Utc::now());
        let held_back = self
            .db
            .held_back_tenants(minute, self.quotas.runs_per_minute)
            .await?;
        let mut tx = self.db.begin().await?;
        let (due, now) = self
            .db
            .lock_due_jobs(&mut tx, limit, lookahead, &held_back)
            .await?;
        if due.is_empty() {
            D::commit(tx).await?;
            return Ok(ClaimOutcome::default());
        }
        // Counted after the locks are held, so that it sees every run
        // committed by an earlier lock holder.
        let keys: Vec<JobKey> = due
            .iter()
            .map(|d| (d.tenant.clone(), d.id.clone()))
            .collect();
        let in_flight = self.db.count_in_flight(&mut tx, &keys).await?;
        let mut successes = super::gates::Successes::new();
        let mut runs = Vec::new();
        let mut schedules = Vec::with_capacity(due.len());
        let mut events = Vec::new();
        let mut counted = 0;
        let mut made = self.db.runs_made(&mut tx, minute).await?;
        let mut made_here: HashMap<String, u64> = HashMap::new();
        let mut waiting: Vec<JobKey> = Vec::new();
        let mut runs_counted = Vec::new();
        let mut finished = Vec::new();
        let mut replacing = Vec::new();
        let mut to_render = Vec::new();
        let mut flow_runs = Vec::new();
        for (row, key) in due.into_iter().zip(keys) {
            // The jobs past the budget stay due, for the next transaction.
            if counted >= misfire::COUNTED_PER_CLAIM {
                break;
            }
            // Its gates (§11.8), read under its row lock.
            let gate = match row.gated {
                true => Some(
                    self.gate_facts_in(&mut tx, &row.tenant, &row.id, &mut successes)
                        .await?,
                ),
                false => None,
            };
            // A catch-up makes at most its tenant's quota of runs.
            let tenant_catchup = made
                .get(&row.tenant)
                .map_or(self.quotas, |(_, set)| self.quotas.with(set))
                .catchup_max;
            let decision = match row.trigger.into_trigger(&row.id) {
                Ok(trigger) => {
                    // A monitor's runs only wait for pings: each fire time
                    // has its own, whatever else is awaited (§11.5).
                    let (max_instances, in_flight_now) = if row.monitor {
                        (
                            u32::try_from(MAX_INSTANCES_LIMIT).unwrap_or(1),
                            InFlight::default(),
                        )
                    } else {
                        (
                            count(row.max_instances).max(1),
                            in_flight.get(&key).copied().unwrap_or_default(),
                        )
                    };
                    let job = DueJob {
                        trigger: &trigger,
                        next_run_at: row.next_run_at,
                        misfire_grace_s: row.misfire_grace_s.and_then(|g| u32::try_from(g).ok()),
                        coalesce: row.coalesce,
                        catchup_max: count(row.catchup_max).clamp(1, tenant_catchup.max(1)),
                        max_instances,
                        overlap: Overlap::from_stored(&row.overlap, row.buffer_max)
                            .unwrap_or_default(),
                        in_flight: in_flight_now,
                        lookahead: chrono::TimeDelta::from_std(lookahead)
                            .unwrap_or(chrono::TimeDelta::MAX),
                        runs_remaining: run_limit::remaining(
                            row.max_runs.map(count),
                            count(row.runs_counted),
                        ),
                        gate: gate.as_ref(),
                    };
                    plan(&job, now)
                }
                Err(e) => {
                    tracing::error!(tenant = %row.tenant, job_id = %row.id, error = %e, "cannot schedule job; retrying in an hour");
                    misfire::Decision::unreadable(now)
                }
            };
            counted += decision.counted();
            let (made_now, set) = made.entry(row.tenant.clone()).or_default();
            let most = self.quotas.with(set).runs_per_minute;
            let more = decision.runs.len() as u64;
            // Past its tenant's runs this minute, the job is due again
            // next minute; the tenant's count is filled up to its quota, so
            // that its due jobs are held back until then (not claimed and
            // left again, pass after pass).
            let counts = if quota::schedule_runs(*made_now, more, most) {
                more
            } else {
                u64::from(most).saturating_sub(*made_now)
            };
            *made_now += counts;
            *made_here.entry(row.tenant.clone()).or_default() += counts;
            if counts < more {
                continue;
            }
            if row.max_runs.is_some() && decision.runs_toward_limit() > 0 {
                runs_counted.push((key.clone(), decision.runs_toward_limit()));
            }
            if decision.schedule == Schedule::Completed
                && row.on_complete == OnComplete::Delete.as_str()
                && !decision.runs.iter().any(|r| r.status == RunStatus::Pending)
                && in_flight
                    .get(&key)
                    .is_none_or(|n| *n == InFlight::default())
            {
                // Completed with no run to send (its last was missed or
                // skipped) and none in flight: deleted now, with the runs
                // it would have had. With one in flight, its end deletes
                // the job.
                events.push((row.tenant.clone(), event::job_completed(&row.id)));
                finished.push(key);
                continue;
            }
            let host = run_host(&row.target_url);
            if decision.runs.iter().any(|r| r.wait_reason.is_some())
                || in_flight.get(&key).is_some_and(|n| n.waiting > 0)
            {
                // Runs wait: the cap may have room for the oldest of them.
                waiting.push(key.clone());
            }
            let replaces = decision.cancels > 0;
            let mut newest = None;
            let flow = row.flow.as_deref().and_then(|f| {
                super::shape::flow_of(&row.id, f)
                    .inspect_err(|e| tracing::error!(tenant = %row.tenant, job_id = %row.id, error = %e, "the job's flow does not read back; its runs go without it"))
                    .ok()
            });
            for mut run in decision.runs {
                let id = Uuid::now_v7();
                if row.monitor && run.status == RunStatus::Pending {
                    run.status = RunStatus::Awaiting;
                }
                if replaces && run.status == RunStatus::Pending {
                    newest = Some(id);
                }
                if let Some(flow) = flow.as_ref().filter(|_| run.status == RunStatus::Pending) {
                    flow_runs.push(FlowRun {
                        tenant: row.tenant.clone(),
                        id,
                        flow: flow.clone(),
                        scheduled_for: run.scheduled_for,
                    });
                }
                if row.target_template && run.status == RunStatus::Pending {
                    to_render.push((
                        key.clone(),
                        RunFacts {
                            run_id: id,
                            scheduled_for: run.scheduled_for,
                            cause: RunCause::Schedule,
                            occurrences: run.occurrences,
                            last_success: None,
                            parent: None,
                        },
                    ));
                }
                let wait_reason = match &run.held {
                    Some(held) => Some(Cow::Owned(held.wait_reason())),
                    None => run.wait_reason.map(Cow::Borrowed),
                };
                runs.push(NewRun {
                    id,
                    created: event::run_created(&event::RunMade {
                        job_id: &row.id,
                        run_id: id,
                        status: run.status,
                        cause: RunCause::Schedule,
                        scheduled_for: run.scheduled_for,
                        occurrences: run.occurrences,
                        wait_reason: wait_reason.as_deref(),
                        reason: run.reason,
                    }),
                    tenant: row.tenant.clone(),
                    job_id: row.id.clone(),
                    scheduled_for: run.scheduled_for,
                    status: run.status,
                    wait_reason,
                    gate_check_at: run.held.as_ref().map(|held| held.check_at(now)),
                    reason: run.reason,
                    occurrences: run.occurrences,
                    deliver_after: run.deliver_after,
                    host: host.clone(),
                    nominal_for: run.nominal_for,
                });
            }
            if let Some(newest) = newest {
                replacing.push((key.clone(), count(row.max_instances).max(1), newest));
            }
            if decision.schedule == Schedule::Completed {
                events.push((row.tenant.clone(), event::job_completed(&row.id)));
            }
            schedules.push((key, decision.schedule));
        }
        let created = runs.iter().map(|r| (r.tenant.as_str(), &r.created));
        let run_deliveries = self.deliveries(Some(&mut tx), created).await?;
        let (inserted, mut deliveries) =
            self.db.insert_runs(&mut tx, &runs, &run_deliveries).await?;
        let moved: Vec<_> = runs
            .iter()
            .filter_map(|r| Some((r.id, r.nominal_for?)))
            .collect();
        if !moved.is_empty() {
            self.db.set_nominal_for(&mut tx, &moved).await?;
        }
        self.render_requests(&mut tx, to_render).await?;
        let flows_due = self.enter_flows(&mut tx, &flow_runs).await?;
        self.db.update_schedules(&mut tx, &schedules).await?;
        let (cancel_events, cancelled) = self.replace_oldest(&mut tx, &replacing).await?;
        events.extend(cancel_events);
        if !runs_counted.is_empty() {
            self.db.add_runs_counted(&mut tx, &runs_counted).await?;
        }
        events.extend(self.delete_finished(&mut tx, &finished, &in_flight).await?);
        let released = self.release_waiting(&mut tx, &waiting).await?;
        for (tenant, n) in made_here.into_iter().filter(|(_, n)| *n > 0) {
            self.db.add_runs_made(&mut tx, minute, &tenant, n).await?;
        }
        let mut outcome = ClaimOutcome {
            jobs: schedules.len(),
            ..Default::default()
        };
        for status in inserted {
            outcome.count(status);
        }
        if outcome.pending > 0 {
            self.db.notify(&mut tx, Channel::Runs).await?;
        }
        let completed = completion_audits(&events);
        if !completed.is_empty() {
            self.db.insert_audit(&mut tx, &completed).await?;
        }
        deliveries += self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        self.wakeups.aborts.cancelled(&cancelled);
        if outcome.pending > 0 || released > 0 {
            self.wakeups.runs_changed();
        }
        if flows_due || released > 0 {
            self.wakeups.flows_changed();
        }
        if outcome.runs > 0 || !events.is_empty() {
            self.events_written(deliveries);
        }
        Ok(outcome)
    }

    async fn next_due_in(&self, lookahead: Duration) -> StoreResult<Option<Duration>> {
        let held_back = self
            .db
            .held_back_tenants(quota::minute_of(Utc::now()), self.quotas.runs_per_minute)
            .await?;
        self.db.next_due_in(lookahead, &held_back).await
    }

    async fn create_manual_run(
        &self,
        tenant: &Tenant,
        id: &JobId,
        idempotency: Option<&Idempotency>,
        force: bool,
    ) -> StoreResult<Run> {
        let mut tx = self.db.begin().await?;
        let made = self.manual_run_in(&mut tx, tenant, id, force).await?;
        self.record_idempotency(&mut tx, tenant, idempotency, &made.run.id.to_string())
            .await?;
        let deliveries = self.write_events(&mut tx, &made.events).await?;
        D::commit(tx).await?;
        self.manual_run_made(&made);
        self.events_written(deliveries);
        let run = made.run;
        let run = match made.flows_due {
            // As it stands now: waiting for its flow key.
            true => self.get_run(tenant, run.id).await?.map_or(run, |(r, _)| r),
            false => run,
        };
        Ok(run)
    }

    async fn chain_parents(
        &self,
        tenant: &Tenant,
        child: &JobId,
    ) -> StoreResult<Vec<(JobId, crate::domain::chain::End, u32)>> {
        self.db.chain_parents(tenant, child).await
    }

    async fn list_runs(&self, tenant: &Tenant, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        self.db.list_runs(tenant, filter).await
    }

    async fn run_request(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<Result<crate::domain::target::Target, String>>> {
        self.db.run_request(&self.key, tenant, id).await
    }

    async fn overview_runs(
        &self,
        tenant: &Tenant,
        since: chrono::DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::domain::overview::RunPoint>> {
        self.db.overview_runs(tenant, since, limit).await
    }

    async fn find_idempotent_request(
        &self,
        tenant: &Tenant,
        scope: &str,
        key: &str,
        within: Duration,
    ) -> StoreResult<Option<IdempotentRequest>> {
        self.db
            .find_idempotent_request(tenant, scope, key, within)
            .await
    }

    async fn delete_expired_idempotency_keys(
        &self,
        older_than: Duration,
        batch: u32,
    ) -> StoreResult<u64> {
        self.db
            .delete_expired_idempotency_keys(older_than, batch)
            .await
    }

    async fn get_run(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Option<(Run, Vec<Attempt>)>> {
        self.db.get_run(tenant, id).await
    }

    async fn delete_expired_runs(&self, retention: Duration, batch: u32) -> StoreResult<u64> {
        self.db.delete_expired_runs(retention, batch).await
    }

    async fn trim_run_history(
        &self,
        keep: u32,
        batch: u32,
        finished_within: Option<Duration>,
    ) -> StoreResult<u64> {
        self.db.trim_run_history(keep, batch, finished_within).await
    }

    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        lease_margin: Duration,
        busy: &Busy,
    ) -> StoreResult<Vec<ClaimedRun>> {
        self.db
            .claim_runs(&self.key, owner, limit, lease_margin, busy)
            .await
    }

    async fn renew_lease(
        &self,
        owner: &str,
        run: Uuid,
        attempt: u32,
        lease_margin: Duration,
    ) -> StoreResult<bool> {
        self.db.renew_lease(owner, run, attempt, lease_margin).await
    }

    async fn record_attempts(&self, owner: &str, records: &[AttemptRecord]) -> StoreResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        let retrying = records
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Retry { .. }));
        // A run that ends may release one that waits (§11.1) or end its
        // completed job (§11.3): that takes the job's row lock, in the
        // transaction that records the end.
        let mut released = 0;
        let mut flows_due = false;
        let (recorded, wrote_events, deliveries) = if !records.iter().any(needs_follow_up)
            && records
                .iter()
                .all(|r| r.outcome != Outcome::Failed && !r.flow)
        {
            // The common case: no job may pause, so the records, their
            // events and the deliveries go in one write (one statement
            // on PostgreSQL), events made for every record and written
            // for those recorded.
            let events = attempt_events(records, None);
            let pairs = events.iter().map(|(t, e)| (t.as_str(), e));
            let deliveries = self.deliveries(None, pairs).await?;
            let (recorded, written) = self
                .db
                .record_with_events(owner, records, &events, &deliveries)
                .await?;
            if retrying {
                // Other instances' dispatchers may be the ones to retry it.
                self.db.notify_now(Channel::Runs).await?;
            }
            let wrote_events = records
                .iter()
                .any(|r| r.job_id.is_some() && recorded.contains(&r.run_id));
            (recorded, wrote_events, written)
        } else {
            let mut tx = self.db.begin().await?;
            let recorded = self.db.record_fenced(&mut tx, owner, records).await?;
            let mut events = attempt_events(records, Some(&recorded));
            let (followed, n) = self.after_runs_end(&mut tx, records, &recorded).await?;
            events.extend(followed);
            released = n;
            flows_due = self
                .flows_after_attempts(&mut tx, records, &recorded)
                .await?;
            if retrying {
                self.db.notify(&mut tx, Channel::Runs).await?;
            }
            let deliveries = self.write_events(&mut tx, &events).await?;
            D::commit(tx).await?;
            (recorded, !events.is_empty(), deliveries)
        };
        if retrying || released > 0 {
            self.wakeups.runs_changed();
        }
        if flows_due || released > 0 {
            self.wakeups.flows_changed();
        }
        if wrote_events {
            self.events_written(deliveries);
        }
        Ok(recorded.len() as u64)
    }

    async fn release_runs(
        &self,
        owner: &str,
        runs: &[(Uuid, u32)],
        after: Duration,
    ) -> StoreResult<u64> {
        if runs.is_empty() {
            return Ok(0);
        }
        let released = self.db.release_runs(owner, runs, after).await?;
        self.db.notify_now(Channel::Runs).await?;
        Ok(released)
    }

    async fn recover_expired_leases(
        &self,
        limit: u32,
        instance_timeout: Duration,
        recover: &RecoverFn<'_>,
    ) -> StoreResult<u64> {
        let mut tx = self.db.begin().await?;
        let (beats, now) = self.db.heartbeats(&mut tx).await?;
        let live = lease::live_owners(
            beats.iter().map(|(id, at)| (id.as_str(), *at)),
            now,
            instance_timeout,
        );
        let expired = self
            .db
            .lock_expired_leases(&mut tx, limit, &live, now)
            .await?;
        if expired.is_empty() {
            D::commit(tx).await?;
            return Ok(0);
        }
        let mut records = Vec::with_capacity(expired.len());
        let mut decided = Vec::with_capacity(expired.len());
        for row in expired {
            let subject = lease_subject(row.job_id.as_deref(), row.subscription_id.as_deref());
            let attempt = count(row.attempt_count);
            let outcome = recover(&ExpiredLease {
                run_id: row.run_id,
                subject: &subject,
                attempt,
                prior_attempts: count(row.prior_attempts),
                policy: stored_policy(&subject, row.retry),
            });
            decided.push((row.run_id, outcome));
            let tenant = super::tenant(&row.tenant)?;
            let job_id = row.job_id.map(super::job_id).transpose()?;
            records.push(AttemptRecord {
                delivery: row.delivery,
                ..AttemptRecord::interrupted(row.run_id, tenant, job_id, attempt, outcome)
            });
        }
        // The cut-off attempt is recorded, then the run written as decided.
        let recovered = self.db.write_recovered(&mut tx, &decided, now).await?;
        self.db.notify(&mut tx, Channel::Runs).await?;
        let ids: Vec<Uuid> = decided.iter().map(|(id, _)| *id).collect();
        let mut events = attempt_events(&records, None);
        events.extend(self.after_runs_end(&mut tx, &records, &ids).await?.0);
        // A flow run that ended frees its key's slot; one sent again at
        // once keeps it (§11.1).
        let ended: Vec<AttemptRecord> = records
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Retry { .. }))
            .cloned()
            .collect();
        let flows_due = self.flows_after_attempts(&mut tx, &ended, &ids).await?;
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        self.wakeups.runs_changed();
        if flows_due {
            self.wakeups.flows_changed();
        }
        if !events.is_empty() {
            self.events_written(deliveries);
        }
        Ok(recovered)
    }

    async fn register_instance(&self, id: &str, version: &str) -> StoreResult<()> {
        self.db.register_instance(id, version).await
    }

    async fn heartbeat(&self, id: &str) -> StoreResult<bool> {
        self.db.heartbeat(id).await
    }

    async fn deregister_instance(&self, id: &str) -> StoreResult<()> {
        self.db.deregister_instance(id).await
    }

    async fn list_instances(&self) -> StoreResult<Vec<Instance>> {
        self.db.list_instances().await
    }

    async fn delete_dead_instances(&self, older_than: Duration) -> StoreResult<u64> {
        self.db.delete_dead_instances(older_than).await
    }

    async fn tenant_quotas(&self, tenant: &Tenant) -> StoreResult<Quotas> {
        Ok(self.quotas.with(&self.db.tenant_quotas(tenant).await?))
    }

    async fn set_tenant_quotas(
        &self,
        tenant: &Tenant,
        set: &QuotaOverrides,
    ) -> StoreResult<Quotas> {
        self.db.set_tenant_quotas(tenant, set).await?;
        Ok(self.quotas.with(set))
    }

    async fn forget_runs_made(&self) -> StoreResult<u64> {
        let this_minute = quota::minute_of(Utc::now());
        self.db.forget_runs_made(this_minute).await
    }

    async fn next_attempt_in(&self) -> StoreResult<Option<Duration>> {
        self.db.next_attempt_in().await
    }

    async fn get_secret(&self, tenant: &Tenant, id: &JobId) -> StoreResult<Option<JobSecret>> {
        self.db.get_secret(&self.key, tenant, id).await
    }

    async fn rotate_secret(
        &self,
        tenant: &Tenant,
        id: &JobId,
        new_secret: &str,
        grace: Duration,
    ) -> StoreResult<Option<JobSecret>> {
        self.db
            .rotate_secret(&self.key, tenant, id, new_secret, grace)
            .await
    }

    async fn create_token(&self, token: &NewToken) -> StoreResult<TokenInfo> {
        self.db.create_token(token).await
    }

    async fn find_token(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        self.db.find_token(hash).await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        self.db.list_tokens().await
    }

    async fn revoke_token(&self, id: &str) -> StoreResult<bool> {
        self.db.revoke_token(id).await
    }

    async fn touch_token(&self, id: &str) -> StoreResult<()> {
        self.db.touch_token(id).await
    }

    async fn create_session(&self, session: &NewSession) -> StoreResult<()> {
        self.db.create_session(session).await
    }

    async fn find_session(&self, hash: &str) -> StoreResult<Option<Session>> {
        self.db.find_session(hash).await
    }

    async fn delete_session(&self, hash: &str) -> StoreResult<bool> {
        self.db.delete_session(hash).await
    }

    async fn delete_expired_sessions(&self) -> StoreResult<u64> {
        self.db.delete_expired_sessions().await
    }

    async fn tokens(&self) -> StoreResult<crate::domain::auth::Tokens> {
        self.db.tokens().await
    }

    async fn list_events(&self, tenant: &Tenant, filter: &EventFilter) -> StoreResult<Vec<Event>> {
        self.db.list_events(tenant, filter).await
    }

    async fn latest_event_id(&self, tenant: &Tenant) -> StoreResult<Option<Uuid>> {
        self.db.latest_event_id(tenant).await
    }

    async fn delete_expired_events(&self, older_than: Duration, batch: u32) -> StoreResult<u64> {
        self.db.delete_expired_events(older_than, batch).await
    }

    async fn record_audit(&self, records: &[crate::domain::audit::AuditRecord]) -> StoreResult<()> {
        self.db.record_audit(records).await
    }

    async fn list_audit(
        &self,
        tenant: &Tenant,
        filter: &super::AuditFilter,
    ) -> StoreResult<Vec<crate::domain::audit::AuditRecord>> {
        self.db.list_audit(tenant, filter).await
    }

    async fn delete_expired_audit(&self, older_than: Duration, batch: u32) -> StoreResult<u64> {
        self.db.delete_expired_audit(older_than, batch).await
    }

    async fn create_subscription(
        &self,
        tenant: &Tenant,
        subscription: &NewSubscription,
    ) -> StoreResult<Subscription> {
        Ok(self.save_subscription(tenant, subscription, true).await?.0)
    }

    async fn list_subscriptions(&self, tenant: &Tenant) -> StoreResult<Vec<Subscription>> {
        self.db.list_subscriptions(&self.key, tenant).await
    }

    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<Option<Subscription>> {
        self.db.get_subscription(&self.key, tenant, id).await
    }

    async fn subscription_secret(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<String>> {
        self.db.subscription_secret(&self.key, tenant, id).await
    }

    async fn put_subscription(
        &self,
        tenant: &Tenant,
        subscription: &NewSubscription,
    ) -> StoreResult<(Subscription, bool)> {
        self.save_subscription(tenant, subscription, false).await
    }

    async fn delete_subscription(&self, tenant: &Tenant, id: &str) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        let deleted = self.delete_subscription_in(&mut tx, tenant, id).await?;
        D::commit(tx).await?;
        if deleted {
            self.subscriptions_changed(tenant).await?;
        }
        Ok(deleted)
    }

    async fn list_deliveries(
        &self,
        tenant: &Tenant,
        subscription_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        self.db
            .list_deliveries(tenant, subscription_id, limit)
            .await
    }

    async fn retry_run(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Run> {
        let mut tx = self.db.begin().await?;
        let (status, job_id) = self
            .db
            .lock_run(&mut tx, tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        lifecycle::may_retry(status)?;
        // A monitor's run is moved by pings, never sent (§11.5).
        if let Ok(job) = JobId::parse(&job_id)
            && self
                .db
                .read_job(&mut tx, &self.key, tenant, &job, false)
                .await?
                .is_some_and(|j| j.definition.monitor.is_some())
        {
            return Err(monitor_only(&job));
        }
        let mut run = self.db.redrive_run(&mut tx, id).await?;
        // A flow run sent again waits for its key like any other, its
        // lateness forgiven (it is sent again on purpose).
        let requeued = self.db.requeue_flow_run(&mut tx, id, true).await?;
        if let Some(key) = &requeued {
            self.db.poke_flow(&mut tx, &key.0, &key.1).await?;
            run.wait_reason = Some(format!("flow:{}", key.1));
            run.next_attempt_at = None;
        }
        self.db.notify(&mut tx, Channel::Runs).await?;
        let events = with_tenant(
            tenant,
            vec![event::run_retried(&job_id, id, run.attempt_count)],
        );
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        self.wakeups.runs_changed();
        if requeued.is_some() {
            self.wakeups.flows_changed();
        }
        self.events_written(deliveries);
        Ok(run)
    }

    async fn gauges(&self) -> StoreResult<Gauges> {
        self.db.gauges().await
    }

    async fn job_signals(
        &self,
        limit: u32,
        tenant: Option<&Tenant>,
    ) -> StoreResult<Vec<super::JobSignal>> {
        self.db.job_signals(limit, tenant).await
    }

    fn spawn_listener(&self, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        self.db
            .spawn_listener(self.wakeups.clone(), self.subscriptions.clone(), shutdown)
    }
}

#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    /// Defines flow key `key`'s limits in `tx` (`PUT /v1/flows/{key}`, an
    /// apply), with its audit record, whose changes it answers.
    pub(super) async fn put_flow_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        key: &str,
        limits: FlowLimits,
    ) -> StoreResult<serde_json::Value> {
        let before = match self.db.lock_flow(tx, tenant.as_str(), key, true).await? {
            None => {
                self.db
                    .insert_flow(tx, tenant.as_str(), key, limits, flow::DEFINED_BY_API)
                    .await?;
                None
            }
            Some((state, now)) => {
                // Tokens saved up stay, within the new limit.
                let bucket = match limits.rate {
                    Some(rate) => {
                        let mut b = state.bucket.refilled(rate, now);
                        b.tokens = b.tokens.min(f64::from(rate.limit));
                        b
                    }
                    None => flow::Bucket::full(None, now),
                };
                self.db
                    .set_flow_limits(
                        tx,
                        tenant.as_str(),
                        key,
                        limits,
                        flow::DEFINED_BY_API,
                        bucket,
                    )
                    .await?;
                Some(state)
            }
        };
        let paused = before.as_ref().is_some_and(|b| b.paused);
        let changes = audit::for_document(
            before
                .as_ref()
                .map(|b| audit::flow_document(b.limits, b.paused))
                .as_ref(),
            Some(&audit::flow_document(limits, paused)),
        );
        let action = match before {
            None => "flow.created",
            Some(_) => "flow.updated",
        };
        let record = audit_record(
            tenant.as_str(),
            action,
            &audit::target("flow", key),
            changes.clone(),
        );
        self.db.insert_audit(tx, &[record]).await?;
        self.db.poke_flow(tx, tenant.as_str(), key).await?;
        Ok(changes)
    }

    /// A subscription saved in a transaction of its own.
    async fn save_subscription(
        &self,
        tenant: &Tenant,
        subscription: &NewSubscription,
        create: bool,
    ) -> StoreResult<(Subscription, bool)> {
        let mut tx = self.db.begin().await?;
        let (saved, created, _) = self
            .save_subscription_in(&mut tx, tenant, subscription, create)
            .await?;
        D::commit(tx).await?;
        self.subscriptions_changed(tenant).await?;
        Ok((saved, created))
    }

    /// The tenant subscriptions this process keeps (§9).
    pub(super) fn subscriptions_cache(&self) -> &SubscriptionCache {
        &self.subscriptions
    }

    /// A tenant's subscriptions changed: this process reads them again,
    /// and the others are told.
    pub(super) async fn subscriptions_changed(&self, tenant: &Tenant) -> StoreResult<()> {
        self.subscriptions.clear(Some(tenant.as_str()));
        self.db.notify_now(Channel::Subscriptions).await
    }
}
