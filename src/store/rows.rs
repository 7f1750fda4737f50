//! The rows both databases answer, written once: generic over how each
//! hands an instant ([`At`]: PostgreSQL's `timestamptz`, SQLite's integer
//! microseconds), an id ([`RowId`]: `uuid` or text) and a small integer
//! (`int4` or `integer`), and mapped to the store's types in one place.

use crate::domain::run::{LongRun, RunStatus};
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::shape::{ClaimedJobColumns, StoredDefinition, StoredRetry, StoredTarget, StoredTrigger};
use super::{
    Attempt, ClaimedParts, DeliveryRecord, Job, JobSecret, RunSummary, StoreError, StoreResult,
    Subscription, TokenInfo, count, event_of, job_id, open_secret, run_cause, run_status,
    subscription_of, token_info,
};
use crate::domain::job::{JobState, Schedule};
use crate::domain::overlap::Overlap;
use crate::domain::run::{Run, RunCause};
use crate::domain::run_limit::OnComplete;
use crate::domain::sealing::{Row, SealingKey};
use crate::store::dialect::{DueRow, ExpiredRun, JobKey, LockedJob};

/// An instant as a database hands it over.
pub(crate) trait At {
    fn at(self) -> DateTime<Utc>;
}

impl At for DateTime<Utc> {
    fn at(self) -> DateTime<Utc> {
        self
    }
}

/// SQLite keeps instants as integer microseconds since the epoch.
impl At for i64 {
    fn at(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// A run's, event's or delivery's id as a database hands it over.
pub(crate) trait RowId {
    fn uuid(self) -> StoreResult<Uuid>;
}

impl RowId for Uuid {
    fn uuid(self) -> StoreResult<Uuid> {
        Ok(self)
    }
}

/// SQLite keeps ids as text.
impl RowId for String {
    fn uuid(self) -> StoreResult<Uuid> {
        self.parse()
            .map_err(|e| StoreError::Corrupt(format!("id {self:?}: {e}")))
    }
}

fn at<T: At>(t: Option<T>) -> Option<DateTime<Utc>> {
    t.map(At::at)
}

/// A trigger's columns.
#[derive(FromRow)]
pub(crate) struct TriggerRow<T> {
    trigger_type: String,
    cron_expr: Option<String>,
    cron_timezone: Option<String>,
    every_s: Option<i64>,
    run_at: Option<T>,
    start_at: Option<T>,
    end_at: Option<T>,
    jitter_s: i64,
    trigger_more: Option<String>,
}

impl<T: At> From<TriggerRow<T>> for StoredTrigger {
    fn from(r: TriggerRow<T>) -> Self {
        StoredTrigger {
            trigger_type: r.trigger_type,
            cron_expr: r.cron_expr,
            cron_timezone: r.cron_timezone,
            every_s: r.every_s,
            run_at: at(r.run_at),
            start_at: at(r.start_at),
            end_at: at(r.end_at),
            jitter_s: r.jitter_s,
            more: r.trigger_more,
        }
    }
}

/// A job with its last run, as `job_query!` selects it.
#[derive(FromRow)]
pub(crate) struct JobRow<T, I, N> {
    id: String,
    name: Option<String>,
    #[sqlx(flatten)]
    trigger: TriggerRow<T>,
    #[sqlx(flatten)]
    target: StoredTarget,
    misfire_grace_s: Option<i64>,
    coalesce_runs: bool,
    catchup_max: i64,
    max_instances: i64,
    overlap: String,
    buffer_max: Option<i64>,
    pause_on_failure: bool,
    max_runs: Option<i64>,
    on_complete: String,
    runs_counted: i64,
    #[sqlx(flatten)]
    retry: StoredRetry,
    flow: Option<String>,
    flow_key: Option<String>,
    alerts: Option<String>,
    ping_key: Option<String>,
    metadata: String,
    labels: String,
    paused_until: Option<T>,
    pause_reason: Option<String>,
    state: String,
    next_run_at: Option<T>,
    created_at: T,
    updated_at: T,
    lr_id: Option<I>,
    lr_status: Option<String>,
    lr_scheduled_for: Option<T>,
    lr_attempt_count: Option<N>,
    lr_created_at: Option<T>,
    lr_finished_at: Option<T>,
}

impl<T: At, I: RowId, N: Into<i64>> JobRow<T, I, N> {
    /// The job, its sealed values opened as `tenant`'s.
    pub fn into_job(self, key: &SealingKey, tenant: &str) -> StoreResult<Job> {
        let id = job_id(self.id)?;
        let definition = StoredDefinition {
            name: self.name,
            trigger: self.trigger.into(),
            target: self.target,
            misfire_grace_s: self.misfire_grace_s,
            coalesce: self.coalesce_runs,
            catchup_max: self.catchup_max,
            max_instances: self.max_instances,
            overlap: self.overlap,
            buffer_max: self.buffer_max,
            pause_on_failure: self.pause_on_failure,
            max_runs: self.max_runs,
            on_complete: self.on_complete,
            retry: self.retry,
            flow: self.flow,
            flow_key: self.flow_key,
            alerts: self.alerts,
            metadata: self.metadata,
            labels: self.labels,
        }
        .into_definition(
            Row {
                tenant,
                table: "jobs",
                id: id.as_str(),
            },
            key,
        )?;
        let next_run_at = at(self.next_run_at);
        let state = JobState::parse(&self.state)
            .ok_or_else(|| StoreError::Corrupt(format!("job {id}: state {:?}", self.state)))?;
        let schedule = Schedule::from_parts(state, next_run_at).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "job {id}: state {state:?} with next_run_at {next_run_at:?}"
            ))
        })?;
        let last_run = match (
            self.lr_id,
            self.lr_status,
            self.lr_scheduled_for,
            self.lr_created_at,
        ) {
            (Some(id), Some(status), Some(scheduled_for), Some(created_at)) => Some(RunSummary {
                id: id.uuid()?,
                status: run_status(&status)?,
                scheduled_for: scheduled_for.at(),
                attempt_count: count(self.lr_attempt_count.map_or(0, Into::into)),
                created_at: created_at.at(),
                finished_at: at(self.lr_finished_at),
            }),
            _ => None,
        };
        Ok(Job {
            id,
            definition,
            schedule,
            runs_counted: count(self.runs_counted),
            created_at: self.created_at.at(),
            updated_at: self.updated_at.at(),
            last_run,
            ping_key: self.ping_key,
            pause: crate::domain::job::PauseNote {
                until: at(self.paused_until),
                reason: self.pause_reason,
            },
        })
    }
}

/// A due job, locked by the scheduler's pass.
#[derive(FromRow)]
pub(crate) struct DueJobRow<T> {
    tenant: String,
    id: String,
    #[sqlx(flatten)]
    trigger: TriggerRow<T>,
    next_run_at: T,
    misfire_grace_s: Option<i64>,
    coalesce_runs: bool,
    catchup_max: i64,
    max_instances: i64,
    overlap: String,
    buffer_max: Option<i64>,
    max_runs: Option<i64>,
    runs_counted: i64,
    on_complete: String,
    target_url: String,
    target_template: bool,
    flow: Option<String>,
    gated: bool,
}

impl<T: At> From<DueJobRow<T>> for DueRow {
    fn from(r: DueJobRow<T>) -> Self {
        DueRow {
            tenant: r.tenant,
            id: r.id,
            trigger: r.trigger.into(),
            next_run_at: r.next_run_at.at(),
            misfire_grace_s: r.misfire_grace_s,
            coalesce: r.coalesce_runs,
            catchup_max: r.catchup_max,
            max_instances: r.max_instances,
            overlap: r.overlap,
            buffer_max: r.buffer_max,
            max_runs: r.max_runs,
            runs_counted: r.runs_counted,
            on_complete: r.on_complete,
            monitor: StoredTarget::is_no_url(&r.target_url),
            target_url: r.target_url,
            target_template: r.target_template,
            flow: r.flow,
            gated: r.gated,
        }
    }
}

/// What a redriven run forgets of a callback's work (§11.7): it starts
/// afresh, and its old token's work has ended.
pub(crate) const CALLBACK_FORGOTTEN: &str = "accepted_at = NULL, deadline_at = NULL, \
     heartbeat_s = NULL, heartbeat_due_at = NULL, watch_at = NULL, last_heartbeat_at = NULL, \
     progress = NULL, message = NULL, completion = NULL, cancel_requested_at = NULL";

/// The columns a run is answered with.
pub(crate) const RUN_COLUMNS: &str = "id, job_id, scheduled_for, cause, status, occurrences, \
     attempt_count, deliver_after, next_attempt_at, created_at, finished_at, wait_reason, reason, \
     backfill_id, replay_of, nominal_for, accepted_at, deadline_at, heartbeat_due_at, \
     last_heartbeat_at, progress, message, cancel_requested_at, completion, parent_run_id";

#[derive(FromRow)]
pub(crate) struct RunRow<T, I, N> {
    id: I,
    job_id: String,
    scheduled_for: T,
    cause: String,
    status: String,
    occurrences: i64,
    attempt_count: N,
    deliver_after: T,
    next_attempt_at: Option<T>,
    created_at: T,
    finished_at: Option<T>,
    wait_reason: Option<String>,
    reason: Option<String>,
    backfill_id: Option<I>,
    replay_of: Option<I>,
    nominal_for: Option<T>,
    accepted_at: Option<T>,
    deadline_at: Option<T>,
    heartbeat_due_at: Option<T>,
    last_heartbeat_at: Option<T>,
    progress: Option<f64>,
    message: Option<String>,
    cancel_requested_at: Option<T>,
    completion: Option<String>,
    parent_run_id: Option<I>,
}

impl<T: At, I: RowId, N: Into<i64>> RunRow<T, I, N> {
    pub fn into_run(self) -> StoreResult<Run> {
        let completed = self
            .completion
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("run completion: {e}")))?;
        let long = LongRun {
            accepted_at: at(self.accepted_at),
            deadline_at: at(self.deadline_at),
            heartbeat_due_at: at(self.heartbeat_due_at),
            last_heartbeat_at: at(self.last_heartbeat_at),
            progress: self.progress,
            message: self.message,
            cancel_requested_at: at(self.cancel_requested_at),
            completed,
        };
        let mut status = run_status(&self.status)?;
        // Stored `running`: it still counts as in flight (§11.7).
        if status == RunStatus::Running && long.cancel_requested_at.is_some() {
            status = RunStatus::Cancelling;
        }
        let parent_run_id = self.parent_run_id.map(RowId::uuid).transpose()?;
        // Stored `manual` (§11.8, migration 0028): its parent makes it a
        // chained run.
        let cause = match parent_run_id {
            Some(_) => RunCause::Chain,
            None => run_cause(&self.cause)?,
        };
        Ok(Run {
            parent_run_id,
            long: (long != LongRun::default()).then_some(long),
            id: self.id.uuid()?,
            job_id: job_id(self.job_id)?,
            scheduled_for: self.scheduled_for.at(),
            cause,
            status,
            occurrences: self.occurrences.max(0) as u64,
            attempt_count: count(self.attempt_count.into()),
            deliver_after: self.deliver_after.at(),
            next_attempt_at: at(self.next_attempt_at),
            created_at: self.created_at.at(),
            finished_at: at(self.finished_at),
            wait_reason: self.wait_reason,
            reason: self.reason,
            backfill_id: self.backfill_id.map(RowId::uuid).transpose()?,
            replay_of: self.replay_of.map(RowId::uuid).transpose()?,
            nominal_for: at(self.nominal_for),
        })
    }
}

#[derive(FromRow)]
pub(crate) struct AttemptRow<T, N> {
    number: N,
    started_at: T,
    duration_ms: i64,
    status_code: Option<N>,
    error: Option<String>,
    response_excerpt: Option<String>,
    outcome_reason: Option<String>,
    body_truncated: bool,
}

impl<T: At, N: Into<i64>> From<AttemptRow<T, N>> for Attempt {
    fn from(a: AttemptRow<T, N>) -> Self {
        Attempt {
            number: count(a.number.into()),
            started_at: a.started_at.at(),
            duration_ms: a.duration_ms.max(0) as u64,
            status_code: a.status_code.and_then(|c| u16::try_from(c.into()).ok()),
            error: a.error,
            response_excerpt: a.response_excerpt,
            outcome_reason: a.outcome_reason,
            body_truncated: a.body_truncated,
        }
    }
}

/// A claimed run with what its request needs: its job's target and retry
/// policy, or its subscription and event.
#[derive(FromRow)]
pub(crate) struct ClaimedRow<T, I, N> {
    id: I,
    tenant: String,
    job_id: Option<String>,
    subscription_id: Option<String>,
    scheduled_for: T,
    attempt_count: N,
    prior_attempts: N,
    #[sqlx(flatten)]
    job: ClaimedJobColumns,
    /// The rendered request of a template job's run (§11.2).
    request: Option<String>,
    /// A backfill's run is followed up: its end sends the next (§11.3).
    cause: String,
    /// A flow's run is followed up: its end (or retry) lets another go
    /// (§11.1).
    flow_key: Option<String>,
    /// A chained run's parent (§11.8): its request says so.
    parent_run_id: Option<I>,
    /// The job's overlap policy and `on_complete` (none for an event's
    /// delivery).
    overlap: Option<String>,
    on_complete: Option<String>,
    /// Other jobs' gates name the job (§11.8): its run's success may
    /// release theirs.
    required: bool,
    subscription_url: Option<String>,
    subscription_secrets: Option<String>,
    subscription_format: Option<String>,
    secret: Option<String>,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<T>,
    event_id: Option<I>,
    event_type: Option<String>,
    event_at: Option<T>,
    event_job_id: Option<String>,
    event_run_id: Option<I>,
    event_data: Option<String>,
}

impl<T: At, I: RowId, N: Into<i64>> ClaimedRow<T, I, N> {
    /// Its parts, the request signed as of `now`.
    pub fn into_parts(self, now: DateTime<Utc>) -> StoreResult<ClaimedParts> {
        // The job's rules column read once, here: whether its ends start
        // chained runs, and (in `into_claimed`) its whole target.
        let subject = self.job_id.as_deref().unwrap_or_default();
        let job = self
            .job
            .into_shape()
            .map(|(target, retry)| (target, retry.read(subject)));
        let chained = job
            .as_ref()
            .is_some_and(|(_, rules)| rules.as_ref().is_ok_and(|r| !r.chain.is_empty()));
        let delivery = match (
            self.subscription_id,
            self.subscription_url,
            self.event_id,
            self.event_type,
            self.event_at,
            self.event_job_id,
            self.event_data,
        ) {
            (
                Some(subscription),
                Some(url),
                Some(id),
                Some(kind),
                Some(event_at),
                Some(job_id),
                Some(data),
            ) => {
                let run = self.event_run_id.map(RowId::uuid).transpose()?;
                let event = event_of(id.uuid()?, &kind, event_at.at(), job_id, run, &data)?;
                Some((subscription, url, self.subscription_secrets, event))
            }
            _ => None,
        };
        let overlap = self
            .overlap
            .as_deref()
            .and_then(|o| Overlap::from_stored(o, None));
        Ok(ClaimedParts {
            run_id: self.id.uuid()?,
            tenant: self.tenant,
            job_id: self.job_id,
            scheduled_for: self.scheduled_for.at(),
            attempt_count: self.attempt_count.into(),
            prior_attempts: self.prior_attempts.into(),
            job,
            request: self.request,
            follow_up: super::FollowUp {
                job: overlap.is_some_and(Overlap::waits)
                    || self.on_complete.is_some_and(|o| o == "delete")
                    || self.cause == RunCause::Backfill.as_str(),
                chain: chained,
                gates: self.required,
            },
            flow: self.flow_key.is_some(),
            parent_run_id: self.parent_run_id.map(RowId::uuid).transpose()?,
            abortable: overlap == Some(Overlap::Replace),
            format: self.subscription_format,
            delivery,
            secret: self.secret,
            previous: self
                .previous_secret
                .zip(at(self.previous_secret_expires_at)),
            now,
        })
    }
}

/// A run whose lease expired, with its job's retry policy.
#[derive(FromRow)]
pub(crate) struct ExpiredRow<I, N> {
    id: I,
    tenant: String,
    job_id: Option<String>,
    subscription_id: Option<String>,
    attempt_count: N,
    prior_attempts: N,
    max_attempts: Option<i64>,
    backoff_initial_s: Option<i64>,
    backoff_max_s: Option<i64>,
    delivery_rules: Option<String>,
    event_id: Option<I>,
    event_type: Option<String>,
    event_job_id: Option<String>,
}

impl<I: RowId, N: Into<i64>> ExpiredRow<I, N> {
    pub fn into_expired(self) -> StoreResult<ExpiredRun> {
        // An event's delivery: which event, to which subscription.
        let delivery = match (
            &self.subscription_id,
            self.event_id,
            self.event_type,
            self.event_job_id,
        ) {
            (Some(subscription_id), Some(event_id), Some(event_type), Some(job_id)) => {
                Some(super::DeliveryOf {
                    subscription_id: subscription_id.clone(),
                    event_id: event_id.uuid()?,
                    event_type,
                    job_id,
                })
            }
            _ => None,
        };
        Ok(ExpiredRun {
            delivery,
            run_id: self.id.uuid()?,
            tenant: self.tenant,
            job_id: self.job_id,
            subscription_id: self.subscription_id,
            attempt_count: self.attempt_count.into(),
            prior_attempts: self.prior_attempts.into(),
            retry: StoredRetry::joined(
                self.max_attempts,
                self.backoff_initial_s,
                self.backoff_max_s,
                self.delivery_rules,
            ),
        })
    }
}

#[derive(FromRow)]
pub(crate) struct SecretRow<T> {
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<T>,
}

impl<T: At> SecretRow<T> {
    /// The secrets of job `id` of `tenant`, opened.
    pub fn open(self, key: &SealingKey, tenant: &str, id: &str) -> StoreResult<JobSecret> {
        open_secret(
            key,
            Row {
                tenant,
                table: "jobs",
                id,
            },
            &self.secret,
            self.previous_secret
                .zip(at(self.previous_secret_expires_at)),
        )
    }
}

/// The columns a token is answered with.
pub(crate) const TOKEN_COLUMNS: &str =
    "id, name, tenant, role, scopes, created_at, last_used_at, revoked_at";

#[derive(FromRow)]
pub(crate) struct TokenRow<T> {
    id: String,
    name: Option<String>,
    tenant: String,
    role: String,
    scopes: String,
    created_at: T,
    last_used_at: Option<T>,
    revoked_at: Option<T>,
}

impl<T: At> TokenRow<T> {
    pub fn into_info(self) -> StoreResult<TokenInfo> {
        token_info(
            self.id,
            self.name,
            &self.tenant,
            &self.role,
            &self.scopes,
            self.created_at.at(),
            at(self.last_used_at),
            at(self.revoked_at),
        )
    }
}

/// A job as stored before sealing: its signing secrets and target in
/// plain text.
#[derive(FromRow)]
pub(crate) struct PlainRow {
    pub tenant: String,
    pub id: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    #[sqlx(flatten)]
    pub target: StoredTarget,
}

#[derive(FromRow)]
pub(crate) struct SubscriptionRow<T> {
    id: String,
    target_url: String,
    target_secrets: Option<String>,
    types: String,
    job_id: Option<String>,
    format: String,
    created_at: T,
}

impl<T: At> SubscriptionRow<T> {
    pub fn into_subscription(self, key: &SealingKey, tenant: &str) -> StoreResult<Subscription> {
        subscription_of(
            tenant,
            self.id,
            self.target_url,
            self.target_secrets,
            &self.types,
            self.job_id,
            &self.format,
            self.created_at.at(),
            key,
        )
    }
}

/// A delivery with its last attempt's status code and error.
#[derive(FromRow)]
pub(crate) struct DeliveryRow<T, I, N> {
    id: I,
    event_id: Option<I>,
    status: String,
    attempt_count: N,
    created_at: T,
    next_attempt_at: Option<T>,
    finished_at: Option<T>,
    status_code: Option<N>,
    error: Option<String>,
}

impl<T: At, I: RowId, N: Into<i64>> DeliveryRow<T, I, N> {
    pub fn into_record(self) -> StoreResult<DeliveryRecord> {
        let id = self.id.uuid()?;
        Ok(DeliveryRecord {
            id,
            event_id: self
                .event_id
                .ok_or_else(|| StoreError::Corrupt(format!("delivery {id}: no event")))?
                .uuid()?,
            status: run_status(&self.status)?,
            attempt_count: count(self.attempt_count.into()),
            created_at: self.created_at.at(),
            next_attempt_at: at(self.next_attempt_at),
            finished_at: at(self.finished_at),
            last_status_code: self.status_code.and_then(|c| u16::try_from(c.into()).ok()),
            last_error: self.error,
        })
    }
}

/// A job's row as [`LockedJob`] reads it.
#[derive(FromRow)]
pub(crate) struct LockedRow {
    tenant: String,
    id: String,
    state: String,
    pause_on_failure: bool,
    max_instances: i64,
    overlap: String,
    buffer_max: Option<i64>,
    on_complete: String,
    target_url: String,
    target_template: bool,
    flow: Option<String>,
}

impl LockedRow {
    pub fn into_keyed(self) -> StoreResult<(JobKey, LockedJob)> {
        let state = JobState::parse(&self.state).ok_or_else(|| {
            StoreError::Corrupt(format!("job {}: state {:?}", self.id, self.state))
        })?;
        let job = LockedJob {
            state,
            pause_on_failure: self.pause_on_failure,
            max_instances: self.max_instances,
            overlap: self.overlap,
            buffer_max: self.buffer_max,
            on_complete: OnComplete::parse(&self.on_complete).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "job {}: on_complete {:?}",
                    self.id, self.on_complete
                ))
            })?,
            target_url: self.target_url,
            template: self.target_template,
            flow: self
                .flow
                .as_deref()
                .map(|f| super::shape::flow_of(&self.id, f))
                .transpose()?,
        };
        Ok(((self.tenant, self.id), job))
    }
}

/// A backfill's row (§11.3).
#[derive(FromRow)]
pub(crate) struct BackfillRow<T, I> {
    id: I,
    job_id: String,
    range_from: T,
    range_to: T,
    overlap: String,
    reprocess: bool,
    occurrences: i64,
    runs_made: i64,
    created_at: T,
    cancelled_at: Option<T>,
}

impl<T: At, I: RowId> BackfillRow<T, I> {
    /// With its runs counted by state.
    pub fn into_backfill(self, states: Vec<(String, i64)>) -> StoreResult<super::Backfill> {
        Ok(super::Backfill {
            id: self.id.uuid()?,
            job_id: job_id(self.job_id)?,
            from: self.range_from.at(),
            to: self.range_to.at(),
            overlap: self.overlap,
            reprocess: self.reprocess,
            occurrences: count(self.occurrences),
            runs_made: count(self.runs_made),
            created_at: self.created_at.at(),
            cancelled_at: at(self.cancelled_at),
            runs: states
                .into_iter()
                .map(|(state, n)| (state, n.max(0) as u64))
                .collect(),
        })
    }
}

/// A flow key's row (§11.1).
#[derive(FromRow)]
pub(crate) struct FlowRow<T> {
    key: String,
    max_in_flight: Option<i64>,
    rate_limit: Option<i64>,
    rate_period_s: Option<i64>,
    defined_by: String,
    paused: bool,
    tokens: f64,
    tokens_at: T,
    next_admit_at: Option<T>,
}

impl<T: At> From<FlowRow<T>> for super::dialect::FlowState {
    fn from(r: FlowRow<T>) -> Self {
        use crate::domain::flow::{Bucket, FlowLimits, Rate};
        let positive = |n: i64| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        super::dialect::FlowState {
            key: r.key,
            limits: FlowLimits {
                max_in_flight: r.max_in_flight.map(positive),
                rate: r
                    .rate_limit
                    .zip(r.rate_period_s)
                    .map(|(limit, period_s)| Rate {
                        limit: positive(limit),
                        period_s: positive(period_s),
                    }),
            },
            defined_by: r.defined_by,
            paused: r.paused,
            bucket: Bucket {
                tokens: r.tokens,
                at: r.tokens_at.at(),
            },
            next_admit_at: at(r.next_admit_at),
        }
    }
}

/// A calendar's row (§11.4).
#[derive(FromRow)]
pub(crate) struct CalendarRow<T> {
    pub id: String,
    pub timezone: String,
    pub description: Option<String>,
    /// The rules' JSON text.
    pub rules: String,
    pub created_at: T,
    pub updated_at: T,
}

impl<T: At> CalendarRow<T> {
    pub fn into_record(self, tenant: &str) -> StoreResult<super::CalendarRecord> {
        let input = crate::domain::calendar::CalendarInput {
            id: Some(self.id.clone()),
            timezone: Some(self.timezone),
            description: self.description,
            rules: serde_json::from_str(&self.rules).map_err(|e| {
                StoreError::Corrupt(format!("calendar {tenant}/{}: rules: {e}", self.id))
            })?,
        };
        let calendar = input
            .parse(None)
            .map_err(|e| StoreError::Corrupt(format!("calendar {tenant}/{}: {e}", self.id)))?;
        Ok(super::CalendarRecord {
            calendar,
            created_at: self.created_at.at(),
            updated_at: self.updated_at.at(),
        })
    }
}

/// An audit record's row (§11.9).
#[derive(FromRow)]
pub(crate) struct AuditRow<I, T> {
    pub id: I,
    pub at: T,
    pub tenant: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub actor_role: Option<String>,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub action: String,
    pub target: String,
    pub reason: Option<String>,
    /// The RFC 6902 operations' JSON text.
    pub changes: String,
}

impl<I: RowId, T: At> AuditRow<I, T> {
    pub fn into_record(self) -> StoreResult<crate::domain::audit::AuditRecord> {
        let id = self.id.uuid()?;
        let actor = crate::domain::audit::Actor::from_parts(
            &self.actor_type,
            self.actor_id,
            self.actor_name,
            self.actor_role.as_deref(),
        )
        .ok_or_else(|| StoreError::Corrupt(format!("audit {id}: actor {:?}", self.actor_type)))?;
        Ok(crate::domain::audit::AuditRecord {
            id,
            at: self.at.at(),
            tenant: self.tenant,
            actor,
            request_id: self.request_id,
            source_ip: self.source_ip,
            action: self.action,
            target: self.target,
            reason: self.reason,
            changes: serde_json::from_str(&self.changes)
                .map_err(|e| StoreError::Corrupt(format!("audit {id}: changes: {e}")))?,
        })
    }
}
