//! The store: one trait, two implementations (PostgreSQL for production
//! and several instances, SQLite as the embedded default). Each has its own
//! migrations folder and runtime queries, so no build needs a database.

mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::error::FieldError;
use crate::domain::job::{JobId, JobInput, JobSpec, JobState, ParseContext, Schedule};
use crate::domain::misfire::Decision;
use crate::domain::network_policy::NetworkPolicy;
use crate::domain::retry::{RetryInput, RetryPolicy};
use crate::domain::run::{RunCause, RunStatus};
use crate::domain::target::Target;
use crate::domain::target::TargetInput;
use crate::domain::trigger::Trigger;
use crate::domain::trigger::TriggerInput;
use crate::wakeup::Wakeups;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A change the caller refused, or a unique key that already exists.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// Stored data that no longer parses (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// A failure that may pass (the connection, the pool, a serialisation
    /// conflict), as opposed to one the database will repeat for the same
    /// statement (a value it refuses).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
                ["08", "40", "53", "57"]
                    .iter()
                    .any(|class| code.starts_with(class))
            }),
            StoreError::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct Job {
    pub spec: JobSpec,
    pub id: JobId,
    pub schedule: Schedule,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_run: Option<RunSummary>,
}

/// The newest run of a job, shown with it.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub id: Uuid,
    pub status: RunStatus,
    pub scheduled_for: DateTime<Utc>,
    pub attempt_count: u32,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a write does to a job: its new definition, and its schedule when
/// that changes (`None` keeps the stored `state` and `next_run_at`).
#[derive(Debug, Clone)]
pub struct JobWrite {
    pub spec: JobSpec,
    pub schedule: Option<Schedule>,
}

/// Decides a write from the stored job (`None`: there is none yet). It runs
/// inside the store's transaction with the row locked, so concurrent
/// writers and the scheduler never interleave with it.
pub type JobWriteFn<'a> = dyn Fn(Option<&Job>) -> StoreResult<JobWrite> + Send + Sync + 'a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Created,
    Updated,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    /// Only ids greater than this (the cursor).
    pub after: Option<JobId>,
    pub limit: u32,
}

/// A due job, locked by the claim transaction, as the scheduler's rules
/// see it.
#[derive(Debug, Clone)]
pub struct DueJob {
    pub id: JobId,
    pub trigger: Trigger,
    pub next_run_at: DateTime<Utc>,
    pub misfire_grace_s: Option<u32>,
    pub coalesce: bool,
    pub max_instances: u32,
    /// Pending and running runs, counted after the row lock was taken.
    pub in_flight: u32,
}

/// Decides a due job's runs at the database's `now` (a pure rule).
pub type PlanFn<'a> = dyn Fn(&DueJob, DateTime<Utc>) -> Decision + Send + Sync + 'a;

/// What one claim transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// Due jobs locked and advanced.
    pub jobs: usize,
    /// Runs inserted (a run that already existed for its occurrence is not).
    pub runs: usize,
    /// Of those, pending ones: work for the dispatcher.
    pub pending: usize,
}

/// One run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: Uuid,
    pub job_id: JobId,
    pub scheduled_for: DateTime<Utc>,
    pub cause: RunCause,
    pub status: RunStatus,
    pub occurrences: u64,
    pub attempt_count: u32,
    pub deliver_after: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One HTTP request of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// A position in a job's run history (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// A run claimed for one attempt, with what its request needs.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub run_id: Uuid,
    pub job_id: JobId,
    pub scheduled_for: DateTime<Utc>,
    /// The number of this attempt (1 for the first).
    pub attempt: u32,
    /// The job's target and retry policy, or why the stored job no longer
    /// parses (the run then fails without a request, alone).
    pub spec: Result<(Target, RetryPolicy), String>,
    /// Signing secrets: the current one, then the previous one while its
    /// rotation grace period lasts.
    pub secrets: Vec<String>,
}

/// What becomes of a run after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Pending again, its next attempt after this delay (database clock).
    Retry {
        delay: std::time::Duration,
    },
}

impl Outcome {
    fn status(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Retry { .. } => "pending",
        }
    }

    fn delay_ms(self) -> i64 {
        match self {
            Outcome::Retry { delay } => i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
            _ => 0,
        }
    }
}

/// One finished attempt, to be recorded with the run's new state.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub run_id: Uuid,
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub outcome: Outcome,
}

/// A job's signing secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSecret {
    pub secret: String,
    /// The secret before the last rotation, still signed with until
    /// `previous_expires_at`.
    pub previous: Option<(String, DateTime<Utc>)>,
}

/// The error an attempt cut off by a crash is recorded with.
pub const INTERRUPTED: &str = "interrupted";

/// How many finished runs of one job the cleaner keeps, whatever their age.
pub const RUNS_KEPT_PER_JOB: u32 = 1000;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// The store answers a query.
    async fn ping(&self) -> StoreResult<()>;

    /// Creates or changes job `id` as `write` decides, in one transaction.
    /// `new_secret` is the signing secret a new job gets.
    async fn save_job(
        &self,
        id: &JobId,
        new_secret: &str,
        write: &JobWriteFn<'_>,
    ) -> StoreResult<(Job, Saved)>;

    async fn get_job(&self, id: &JobId) -> StoreResult<Option<Job>>;

    /// Whether job `id` exists, without reading its definition.
    async fn job_exists(&self, id: &JobId) -> StoreResult<bool>;

    /// Jobs in id order.
    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>>;

    /// Deletes the job and its runs; false when there was none.
    async fn delete_job(&self, id: &JobId) -> StoreResult<bool>;

    /// One scheduler pass over at most `limit` due jobs, in one
    /// transaction: lock them (skipping rows other instances hold), count
    /// their runs in flight, let `plan` decide, insert the runs (an
    /// occurrence that already has one is left alone), advance the jobs,
    /// commit.
    async fn claim_due_jobs(&self, limit: u32, plan: &PlanFn<'_>) -> StoreResult<ClaimOutcome>;

    /// How long until the earliest `next_run_at`, by the database's clock
    /// (zero when one is due); `None` when no job is scheduled.
    async fn next_due_in(&self) -> StoreResult<Option<std::time::Duration>>;

    /// A manual run of job `id` now, outside its trigger's sequence,
    /// decided under the job's row lock like the scheduler's: `skipped`
    /// when it would exceed `max_instances`.
    async fn create_manual_run(&self, id: &JobId) -> StoreResult<Run>;

    /// A job's runs, newest first, after `cursor`.
    async fn list_runs(
        &self,
        job_id: &JobId,
        cursor: Option<RunCursor>,
        limit: u32,
    ) -> StoreResult<Vec<Run>>;

    /// One run with its attempts, in order.
    async fn get_run(&self, id: Uuid) -> StoreResult<Option<(Run, Vec<Attempt>)>>;

    /// Deletes up to `batch` finished runs (and their attempts) that
    /// finished more than `retention` ago; returns how many.
    async fn delete_expired_runs(
        &self,
        retention: std::time::Duration,
        batch: u32,
    ) -> StoreResult<u64>;

    /// Deletes up to `batch` finished runs beyond the newest `keep` of
    /// their job; returns how many. Only jobs with a run finished within
    /// `finished_within` are looked at (all jobs when `None`): a job can only
    /// have grown past `keep` since the last trim by finishing runs.
    async fn trim_run_history(
        &self,
        keep: u32,
        batch: u32,
        finished_within: Option<std::time::Duration>,
    ) -> StoreResult<u64>;

    /// Claims up to `limit` pending runs whose time has come, for one
    /// attempt each: marks them running, leased to `owner` until the
    /// target's timeout plus `lease_margin` from now (database clock), and
    /// commits before any request is sent.
    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        lease_margin: std::time::Duration,
    ) -> StoreResult<Vec<ClaimedRun>>;

    /// Records attempts and the runs' new states in one transaction. Each
    /// write is fenced on `owner` and the attempt number: a run whose lease
    /// was taken over, or that was deleted, is left alone. Returns how many
    /// were recorded.
    async fn record_attempts(&self, owner: &str, records: &[AttemptRecord]) -> StoreResult<u64>;

    /// Gives runs back unfinished (a shutdown): pending again at once, the
    /// attempt not counted. Fenced like `record_attempts`.
    async fn release_runs(&self, owner: &str, runs: &[(Uuid, u32)]) -> StoreResult<u64>;

    /// Runs whose lease expired (their instance died): records the cut-off
    /// attempt as `interrupted` and makes them pending again after the
    /// retry backoff, or failed when no attempt is left. Returns how many.
    async fn recover_expired_leases(&self, limit: u32) -> StoreResult<u64>;

    /// How long until a pending run's next attempt is due, by the
    /// database's clock; `None` when nothing is pending. (Expired leases are
    /// looked for on a timer of their own.)
    async fn next_attempt_in(&self) -> StoreResult<Option<std::time::Duration>>;

    async fn get_secret(&self, id: &JobId) -> StoreResult<Option<JobSecret>>;

    /// Replaces the secret, keeping the old one valid for `grace`.
    async fn rotate_secret(
        &self,
        id: &JobId,
        new_secret: &str,
        grace: std::time::Duration,
    ) -> StoreResult<Option<JobSecret>>;

    /// Starts forwarding other instances' notifications to this process's
    /// wake-ups, until `shutdown`; `None` where the store has none (SQLite).
    fn spawn_listener(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a database URL names and applies its migrations:
/// `postgres://…` or `sqlite://…` (the file is created when missing).
pub async fn connect(url: &str, wakeups: Arc<Wakeups>) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, wakeups).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, wakeups).await?))
    } else {
        Err(StoreError::Invalid(FieldError::new(
            "database-url",
            format!("expected a postgres:// or sqlite:// URL, got {url:?}"),
        )))
    }
}

/// The JSON columns a job's definition is stored in.
pub(crate) struct SpecColumns {
    pub trigger: Value,
    pub target: Value,
    pub retry: Value,
    pub metadata: Value,
}

impl SpecColumns {
    pub fn of(spec: &JobSpec) -> Self {
        Self {
            trigger: serde_json::to_value(spec.trigger.to_input()).unwrap_or(Value::Null),
            target: serde_json::to_value(spec.target.to_input()).unwrap_or(Value::Null),
            retry: serde_json::to_value(spec.retry.to_input()).unwrap_or(Value::Null),
            metadata: Value::Object(spec.metadata.clone()),
        }
    }
}

/// A stored definition, column by column, before it is parsed back.
pub(crate) struct StoredSpec {
    pub id: String,
    pub name: Option<String>,
    pub trigger: Value,
    pub target: Value,
    pub retry: Value,
    pub metadata: Value,
    pub misfire_grace_s: Option<i64>,
    pub coalesce: bool,
    pub max_instances: i64,
    pub state: String,
}

impl StoredSpec {
    /// Parses the stored definition back into a [`JobSpec`], through the
    /// same validation a request goes through.
    pub fn parse(self) -> StoreResult<(JobId, JobSpec, JobState)> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("job {:?}: {what}: {e}", self.id))
        };
        let state = JobState::parse(&self.state).ok_or_else(|| corrupt("state", &self.state))?;
        let trigger: TriggerInput =
            serde_json::from_value(self.trigger.clone()).map_err(|e| corrupt("trigger", &e))?;
        let target: TargetInput =
            serde_json::from_value(self.target.clone()).map_err(|e| corrupt("target", &e))?;
        let retry: RetryInput =
            serde_json::from_value(self.retry.clone()).map_err(|e| corrupt("retry", &e))?;
        let metadata = match &self.metadata {
            Value::Object(map) => map.clone(),
            other => return Err(corrupt("metadata", other)),
        };
        let input = JobInput {
            id: Some(self.id.clone()),
            name: self.name.clone(),
            trigger: Some(trigger),
            target: Some(target),
            misfire_grace_s: self.misfire_grace_s,
            coalesce: Some(self.coalesce),
            max_instances: Some(self.max_instances),
            retry: Some(retry),
            paused: Some(state == JobState::Paused),
            next_run_at: None,
            metadata: Some(metadata),
        };
        // Stored intervals always carry their anchor, and the network
        // policy is applied again at connect time, so neither context
        // value matters here.
        let ctx = ParseContext {
            now: DateTime::UNIX_EPOCH,
            network_policy: NetworkPolicy::Any,
        };
        let spec = input.parse(ctx).map_err(|e| corrupt("definition", &e))?;
        let id = spec.id.clone().ok_or_else(|| corrupt("id", &"missing"))?;
        Ok((id, spec, state))
    }
}

pub(crate) fn run_status(s: &str) -> StoreResult<RunStatus> {
    RunStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("run status {s:?}")))
}

pub(crate) fn run_cause(s: &str) -> StoreResult<RunCause> {
    RunCause::parse(s).ok_or_else(|| StoreError::Corrupt(format!("run cause {s:?}")))
}

pub(crate) fn job_id(s: String) -> StoreResult<JobId> {
    JobId::parse(&s).map_err(|e| StoreError::Corrupt(format!("job id {s:?}: {e}")))
}

/// The in-flight count a claim read, as the rules' input.
pub(crate) fn in_flight(count: i64) -> u32 {
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

/// Parses a stored trigger for the scheduler.
pub(crate) fn stored_trigger(job_id: &str, value: Value) -> StoreResult<Trigger> {
    let input: TriggerInput = serde_json::from_value(value)
        .map_err(|e| StoreError::Corrupt(format!("job {job_id:?}: trigger: {e}")))?;
    input
        .parse(DateTime::UNIX_EPOCH, "trigger")
        .map_err(|e| StoreError::Corrupt(format!("job {job_id:?}: trigger: {e}")))
}

/// Parses a claimed run's stored target and retry policy.
pub(crate) fn delivery_spec(
    job_id: &str,
    target: Value,
    retry: Value,
) -> StoreResult<(Target, RetryPolicy)> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("job {job_id:?}: {what}: {e}"))
    };
    let target = serde_json::from_value::<TargetInput>(target)
        .map_err(|e| corrupt("target", &e))?
        .parse(NetworkPolicy::Any, "target")
        .map_err(|e| corrupt("target", &e))?;
    let retry = serde_json::from_value::<RetryInput>(retry)
        .map_err(|e| corrupt("retry", &e))?
        .parse("retry")
        .map_err(|e| corrupt("retry", &e))?;
    Ok((target, retry))
}

/// The secrets a request is signed with at `now`.
pub(crate) fn signing_secrets(
    secret: String,
    previous: Option<String>,
    previous_expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut secrets = vec![secret];
    if let (Some(previous), Some(until)) = (previous, previous_expires_at)
        && until > now
    {
        secrets.push(previous);
    }
    secrets
}

/// Runs a job write decision against the stored job, checking that the
/// decision keeps the schedule coherent.
pub(crate) fn decide_write(
    write: &JobWriteFn<'_>,
    existing: Option<&Job>,
) -> StoreResult<JobWrite> {
    let decided = write(existing)?;
    if existing.is_none() && decided.schedule.is_none() {
        return Err(StoreError::Corrupt("a new job needs a schedule".into()));
    }
    Ok(decided)
}
