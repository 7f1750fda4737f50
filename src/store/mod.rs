//! The store: one trait, over PostgreSQL (production and several
//! instances) and SQLite (the embedded default). Each database has its own
//! migrations folder and runtime queries, so no build needs a database.
//!
//! Every write path is written once, in [`writes`], over the SQL-level
//! primitives a [`dialect`] provides (`postgres.rs`, `sqlite.rs`: SQL and
//! row mapping only). The store decides nothing: a job change is decided
//! by `lifecycle::decide`, a due job's runs by the scheduler's plan, a
//! recovered lease's fate by the retry rules, an event's deliveries by
//! `Interest::wants`; the store reads what they need under the right
//! locks and writes what they answer.

pub mod alerts;
pub mod apply;
pub mod bulk;
mod calendars;
pub mod callbacks;
mod chains;
mod dialect;
mod gates;
pub mod monitors;
mod pauses;
mod portable;
mod postgres;
mod rows;
mod shape;
mod sqlite;
mod subscription_writes;
mod subscriptions;
mod writes;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use subscriptions::SubscriptionCache;
pub use writes::SqlStore;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::auth::Role;
pub use crate::domain::auth::Tenant;
use crate::domain::error::FieldError;
pub use crate::domain::event::{EventType, Interest, NewEvent};
pub use crate::domain::job::Job;
use crate::domain::job::{JobId, JobState, ParseContext};
use crate::domain::lifecycle::{JobCommand, Refusal};
use crate::domain::misfire::{Decision, DueJob};
use crate::domain::quota::{QuotaOverrides, Quotas};
use crate::domain::retry::{Outcome, RetryPolicy};
pub use crate::domain::run::{Attempt, Run, RunSummary};
use crate::domain::run::{RunCause, RunStatus};
use crate::domain::sealing::{Row, SealingKey};
use crate::domain::target::Target;
use crate::wakeup::Wakeups;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique key that already exists.
    #[error("{0}")]
    Conflict(String),
    /// A command the domain's rules refused, as they answered it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// Stored data that no longer reads back (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The sealing key is not the one the store's secrets are sealed with.
    #[error("{0}")]
    WrongKey(String),
    /// Another request with the same Idempotency-Key committed first; what
    /// it made is to be answered instead.
    #[error("a request with this Idempotency-Key was completed meanwhile")]
    IdempotencyKeyTaken,
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// What was asked for is not there: the store found no row, or the
    /// rules refused a command on a job that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound | StoreError::Refused(Refusal::NotFound)
        )
    }

    /// A failure that may pass (the connection, the pool, a serialisation
    /// conflict), as opposed to one the database will repeat for the same
    /// statement (a value it refuses).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|code| transient_code(&code))
            }
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

/// Whether a database's error code says the statement may pass when
/// tried again. PostgreSQL's SQLSTATE (five characters): a connection
/// lost (08), a transaction rolled back (40: a serialisation failure,
/// a deadlock), too few resources (53), an operator's intervention (57).
/// SQLite's result code (digits), primary part: the database busy (5)
/// or a table locked (6).
fn transient_code(code: &str) -> bool {
    match code.parse::<u32>() {
        Ok(sqlite) if code.len() < 5 => matches!(sqlite & 0xff, 5 | 6),
        _ => ["08", "40", "53", "57"]
            .iter()
            .any(|class| code.starts_with(class)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Created,
    Updated,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    /// Only jobs whose id or name holds this text, in any case.
    pub search: Option<String>,
    /// Only jobs whose labels it selects (§11.9).
    pub selector: crate::domain::labels::Selector,
    /// Only these jobs (a bulk action's `ids`, §11.9).
    pub ids: Option<Vec<JobId>>,
    /// Only ids greater than this (the cursor).
    pub after: Option<JobId>,
    pub limit: u32,
}

/// Decides a due job's runs at the database's `now` (a pure rule).
pub type PlanFn<'a> = dyn Fn(&DueJob<'_>, DateTime<Utc>) -> Decision + Send + Sync + 'a;

/// A run whose lease expired: its attempt number `attempt` was cut off by
/// its instance's death.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiredLease<'a> {
    pub run_id: Uuid,
    /// Its job, or its subscription (for logs).
    pub subject: &'a str,
    pub attempt: u32,
    /// Attempts before the run's last redrive.
    pub prior_attempts: u32,
    /// Its job's retry policy.
    pub policy: RetryPolicy,
}

/// Decides what becomes of a run whose lease expired (a pure rule).
pub type RecoverFn<'a> = dyn Fn(&ExpiredLease<'_>) -> Outcome + Send + Sync + 'a;

/// What one claim transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// Due jobs locked and advanced.
    pub jobs: usize,
    /// Runs inserted (a run that already existed for its occurrence is not).
    pub runs: usize,
    /// Of those, pending ones: work for the dispatcher.
    pub pending: usize,
    /// Of those, missed and skipped ones.
    pub missed: usize,
    pub skipped: usize,
}

impl ClaimOutcome {
    /// Counts one inserted run of `status`.
    pub fn count(&mut self, status: RunStatus) {
        self.runs += 1;
        match status {
            RunStatus::Pending => self.pending += 1,
            RunStatus::Missed => self.missed += 1,
            RunStatus::Skipped => self.skipped += 1,
            _ => {}
        }
    }
}

/// An event as stored and listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub kind: EventType,
    pub at: DateTime<Utc>,
    pub job_id: String,
    pub run_id: Option<Uuid>,
    pub data: serde_json::Value,
}

/// Which events a list shows, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events after this one (in the order they are listed).
    pub after: Option<Uuid>,
    /// Events of any of these types; every type when empty.
    pub types: Vec<EventType>,
    pub job_id: Option<JobId>,
    pub limit: u32,
    /// Newest first (`after` then means older than that one).
    pub newest_first: bool,
}

/// Which audit records to list (§11.9).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// `job/{id}`, or a refused request.
    pub target: Option<String>,
    /// A token's id, or `system`, `open`, `anonymous`.
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only records made at or after this instant.
    pub after: Option<DateTime<Utc>>,
    /// Only records past this one, in the order listed.
    pub cursor: Option<Uuid>,
    pub limit: u32,
    /// Oldest first (an export); newest first otherwise.
    pub oldest_first: bool,
}

/// A subscription to store; its secret is sealed with the target's.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    pub id: String,
    pub target: Target,
    pub interest: Interest,
    pub format: crate::domain::subscription::SubscriptionFormat,
    pub secret: String,
}

/// A subscription as listed (never its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub target: Target,
    pub interest: Interest,
    pub format: crate::domain::subscription::SubscriptionFormat,
    pub created_at: DateTime<Utc>,
}

/// One delivery of an event to a subscription, with its last attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub event_id: Uuid,
    pub status: RunStatus,
    pub attempt_count: u32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
}

/// What `/metrics` reads from the store at each scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    pub runs_pending: u64,
    pub jobs: Vec<(JobState, u64)>,
    /// Alerts not resolved, by condition (§11.5).
    pub alerts_open: Vec<(crate::domain::alert::Condition, u64)>,
    /// The pool's connections: in use, idle.
    pub db_connections: (u32, u32),
}

/// A job's own signals on `/metrics` (§11.5).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSignal {
    pub tenant: String,
    pub job_id: String,
    pub last_success: Option<DateTime<Utc>>,
    /// Scheduled runs failed since its last success.
    pub consecutive_failures: u64,
}

/// Which runs a list shows, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// One job's runs, or every job's.
    pub job_id: Option<JobId>,
    /// Runs in any of these states; every state when empty.
    pub statuses: Vec<RunStatus>,
    /// Only runs created strictly after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Only runs created strictly before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// Only runs after this position (the previous page's last).
    pub cursor: Option<RunCursor>,
    pub limit: u32,
}

/// A position in a list of runs (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// What a claimed run delivers: a job's occurrence, or an event to a
/// subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Job {
        job_id: JobId,
        scheduled_for: DateTime<Utc>,
    },
    Event {
        subscription_id: String,
        event_id: Uuid,
        event_type: String,
        /// The job the event is about.
        job_id: String,
    },
}

impl ClaimedRun {
    /// For an event's delivery: which event, to which subscription.
    pub fn delivery(&self) -> Option<DeliveryOf> {
        match &self.subject {
            Subject::Job { .. } => None,
            Subject::Event {
                subscription_id,
                event_id,
                event_type,
                job_id,
            } => Some(DeliveryOf {
                subscription_id: subscription_id.clone(),
                event_id: *event_id,
                event_type: event_type.clone(),
                job_id: job_id.clone(),
            }),
        }
    }
}

impl Subject {
    /// How logs name it.
    pub fn name(&self) -> String {
        match self {
            Subject::Job { job_id, .. } => job_id.to_string(),
            Subject::Event {
                subscription_id, ..
            } => format!("subscription {subscription_id}"),
        }
    }
}

/// A dashboard session to keep: the SHA-256 of its id, the token it
/// stands for, its forms' CSRF token, and when it ends (DESIGN.md §8).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub hash: String,
    pub token_id: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// A live dashboard session: its token, and its forms' CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token: TokenInfo,
    pub csrf: String,
}

/// Whose runs a claim leaves in the store: hosts whose requests here are
/// at `--max-in-flight-per-host`, tenants at their share of the slots
/// (DESIGN.md §8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Busy {
    pub hosts: Vec<String>,
    pub tenants: Vec<String>,
}

/// A run claimed for one attempt, with what its request needs.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub run_id: Uuid,
    pub subject: Subject,
    /// The number of this attempt (1 for the first), counting those
    /// before a redrive.
    pub attempt: u32,
    /// Attempts made before the run was last sent again: its retry policy
    /// counts from there.
    pub prior_attempts: u32,
    pub tenant: Tenant,
    /// The request and retry policy, or why there is none to send: the
    /// stored job no longer reads back, or its template did not render
    /// (`template_error`, §11.2). The run then fails unsent, alone, with
    /// this as its attempt's error.
    pub spec: Result<(Target, RetryPolicy), String>,
    /// Signing secrets: the current one, then the previous one while its
    /// rotation grace period lasts.
    pub secrets: Vec<String>,
    /// Whether its end is followed up on its job: runs of the job may be
    /// waiting for it (an overlap policy that buffers, §11.1), or the job
    /// is deleted once completed and its last run ends (§11.3).
    pub follow_up: FollowUp,
    /// Whether a newer run of its job may cancel it while it is sent
    /// (overlap `replace`, §11.1): its request is then aborted.
    pub abortable: bool,
    /// A flow key's run (§11.1): its end, or its retry, gives its slot
    /// back.
    pub flow: bool,
    /// A callback job's run (§11.7): the `crt_` token its request
    /// carries, good for this run only. Never stored, never logged.
    pub callback_token: Option<String>,
    /// A chained run's parent (§11.8): `cronhook-parent-run-id`.
    pub parent_run_id: Option<Uuid>,
}

impl ClaimedRun {
    /// The job whose occurrence it is; none for an event's delivery.
    pub fn job_id(&self) -> Option<JobId> {
        match &self.subject {
            Subject::Job { job_id, .. } => Some(job_id.clone()),
            Subject::Event { .. } => None,
        }
    }
}

/// A backfill (§11.3), with its runs by state.
#[derive(Debug, Clone, PartialEq)]
pub struct Backfill {
    pub id: Uuid,
    pub job_id: JobId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Its overlap policy: `buffer_all`, `buffer_one` or `skip`.
    pub overlap: String,
    pub reprocess: bool,
    /// The occurrences in its range.
    pub occurrences: u32,
    /// The runs it made (occurrences that had one got none, unless
    /// reprocessing).
    pub runs_made: u32,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Its runs by state: a run status, or `waiting`.
    pub runs: std::collections::BTreeMap<String, u64>,
}

/// A flow key as shown (§11.1): its limits, state and runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowInfo {
    pub key: String,
    pub limits: crate::domain::flow::FlowLimits,
    /// `api` or `job`: who defined the limits.
    pub defined_by: String,
    pub paused: bool,
    /// Runs sent or being sent.
    pub in_flight: u32,
    /// Runs waiting for the key.
    pub waiting: u32,
    /// Whole tokens in its bucket now (none without a rate).
    pub tokens: Option<u32>,
    pub next_admit_at: Option<DateTime<Utc>>,
}

/// What a backfill request answers: the occurrences a dry run lists (with
/// the run each has), or the backfill made.
#[derive(Debug, Clone, PartialEq)]
pub enum BackfillMade {
    DryRun(Vec<(DateTime<Utc>, Option<Uuid>)>),
    Made(Backfill),
}

pub use crate::domain::event::DeliveryOf;

/// What a run's end is followed up with on the store (§11.1, §11.3,
/// §11.8): its job's waiting runs and completion, the runs its job's
/// chain starts, the runs other jobs' gates hold for it. Each part reads
/// the database only when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowUp {
    pub job: bool,
    pub chain: bool,
    pub gates: bool,
}

impl FollowUp {
    /// Every part: for an end whose claim is not at hand (a recovered
    /// run, a callback's completion).
    pub const ALL: Self = Self {
        job: true,
        chain: true,
        gates: true,
    };

    pub fn any(self) -> bool {
        self.job || self.chain || self.gates
    }
}

/// One finished attempt, to be recorded with the run's new state.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub run_id: Uuid,
    pub tenant: Tenant,
    /// The job whose run it is; none for an event's delivery (which makes
    /// no events: no events about events).
    pub job_id: Option<JobId>,
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    /// Why the success rules refused the answer (§11.6), in words.
    pub outcome_reason: Option<String>,
    /// The excerpt is the body's first 64 kB, not all of it.
    pub body_truncated: bool,
    pub outcome: Outcome,
    /// A failed run's `reason` when a rule decided it (`rule_failed`,
    /// `expired`).
    pub run_reason: Option<&'static str>,
    /// For an event's delivery: which, so that one failing for good is an
    /// event of its own (`subscription.delivery_failed`).
    pub delivery: Option<DeliveryOf>,
    /// As the claimed run's: what a final outcome is followed up with.
    pub follow_up: FollowUp,
    /// As the claimed run's: a flow key's run, whose end or retry lets
    /// another go (§11.1).
    pub flow: bool,
}

impl AttemptRecord {
    /// An attempt cut off by its instance's death, as recovery records it.
    pub fn interrupted(
        run_id: Uuid,
        tenant: Tenant,
        job_id: Option<JobId>,
        number: u32,
        outcome: Outcome,
    ) -> Self {
        Self {
            run_id,
            tenant,
            job_id,
            number,
            started_at: Utc::now(),
            duration_ms: 0,
            status_code: None,
            error: Some(crate::domain::run::INTERRUPTED.to_string()),
            response_excerpt: None,
            outcome_reason: None,
            body_truncated: false,
            outcome,
            run_reason: None,
            delivery: None,
            // Recovery follows up every job whose run ended.
            follow_up: FollowUp::ALL,
            flow: true,
        }
    }
}

/// How a recovered run is named in logs: its job, or its subscription.
pub(crate) fn lease_subject(job_id: Option<&str>, subscription_id: Option<&str>) -> String {
    match (job_id, subscription_id) {
        (Some(job), _) => job.to_string(),
        (None, Some(subscription)) => format!("subscription {subscription}"),
        (None, None) => "?".to_string(),
    }
}

/// The retry policy of a run read with its job's retry columns (one
/// recovered from an expired lease, an overdue callback run): its job's,
/// or the default (a delivery of an event, a job gone, or one whose
/// policy no longer reads back).
pub(crate) fn stored_policy(subject: &str, retry: Option<shape::StoredRetry>) -> RetryPolicy {
    match retry.map(|r| r.into_policy(subject)) {
        Some(Ok(policy)) => policy,
        Some(Err(e)) => {
            tracing::error!(error = %e, "recovering a run under the default retry policy");
            RetryPolicy::default()
        }
        None => RetryPolicy::default(),
    }
}

/// A job's signing secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSecret {
    pub secret: String,
    /// The secret before the last rotation, still signed with until
    /// `previous_expires_at`.
    pub previous: Option<(String, DateTime<Utc>)>,
}

/// An Idempotency-Key with the request it came with, recorded in the same
/// transaction as what the request makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// Which operation the key belongs to (`create_job`, `run_job`).
    pub scope: &'static str,
    pub key: String,
    /// What the request asked for; a repeat must ask for the same.
    pub fingerprint: String,
}

/// What an earlier request with an Idempotency-Key made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    pub fingerprint: String,
    /// The job id or run id it made.
    pub resource_id: String,
}

/// A token to store: only the hash of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub id: String,
    pub name: Option<String>,
    pub tenant: Tenant,
    pub role: Role,
    pub scopes: Vec<crate::domain::auth::Scope>,
    pub hash: String,
}

/// A token as listed (never its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub name: Option<String>,
    pub tenant: Tenant,
    pub role: Role,
    pub scopes: Vec<crate::domain::auth::Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A running process, as the instances table keeps it: the cluster at a
/// glance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Its lease owner id.
    pub id: String,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat, on the database clock.
    pub heartbeat_at: DateTime<Utc>,
    pub version: String,
    /// Runs it holds a lease on: requests in flight.
    pub leases: u64,
}

/// How many finished runs of one job the cleaner keeps, whatever their age.
pub const RUNS_KEPT_PER_JOB: u32 = 1000;

/// A calendar as stored (§11.4).
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarRecord {
    pub calendar: crate::domain::calendar::Calendar,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A calendar written: whether it is new, and the jobs whose coming fire
/// times it re-planned.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarSaved {
    pub record: CalendarRecord,
    pub created: bool,
    pub replanned: Vec<String>,
}

/// The earliest jobs `next_due_in` looks at: whether each has a run in
/// flight decides when a claim takes it (at its fire time, or the
/// lookahead before); a job further on waits at most until its fire time.
pub(crate) const NEXT_DUE_LOOKED_AT: i64 = 64;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// The store answers a query.
    async fn ping(&self) -> StoreResult<()>;

    /// Applies `command` to job `id` in one transaction: reads the job
    /// with its row locked, lets [`lifecycle::decide`] answer at
    /// `ctx.now`, and writes that.
    ///
    /// [`lifecycle::decide`]: crate::domain::lifecycle::decide
    /// With `idempotency`, a job it creates is recorded under the key in
    /// the same transaction; should the key be recorded meanwhile by another
    /// request, nothing is written ([`StoreError::IdempotencyKeyTaken`]).
    async fn save_job(
        &self,
        tenant: &Tenant,
        id: &JobId,
        command: &JobCommand,
        ctx: ParseContext,
        idempotency: Option<&Idempotency>,
    ) -> StoreResult<(Job, Saved)>;

    async fn get_job(&self, tenant: &Tenant, id: &JobId) -> StoreResult<Option<Job>>;

    /// Whether job `id` exists, without reading its definition.
    async fn job_exists(&self, tenant: &Tenant, id: &JobId) -> StoreResult<bool>;
    /// Admits the waiting runs of flow keys that are due (§11.1); answers
    /// how long until a key is due next.
    async fn admit_due_flows(&self, limit: u32) -> StoreResult<Option<Duration>>;
    async fn list_flows(&self, tenant: &Tenant) -> StoreResult<Vec<FlowInfo>>;
    /// One watchdog pass (§11.5): every alerting job's alerts opened,
    /// reminded and resolved with their events, on the database clock, by
    /// one instance at a time, after monitors' runs past their grace are
    /// missed; answers what it changed.
    async fn watch_alerts(&self) -> StoreResult<alerts::WatchPass>;
    /// Ends accepted callback runs past their time (§11.7): `timed_out`,
    /// `heartbeat_lost`, or `cancelled` after a cancel's grace; answers
    /// their statuses.
    async fn watch_callbacks(&self) -> StoreResult<Vec<RunStatus>>;
    /// Looks again at runs held by their gates (§11.8) whose time has
    /// come: released, held on, or `missed`; answers how many were missed.
    async fn watch_gates(&self) -> StoreResult<usize>;
    /// Whether `token` is run `run_id`'s callback token (§11.7).
    fn verify_callback(&self, run_id: Uuid, token: &str) -> bool;
    /// A callback run's end as its receiver reports it: 404 when there is
    /// no such job run, a conflict when it was not sent yet or ended
    /// otherwise (`run.late_completion`).
    async fn complete_run(
        &self,
        run_id: Uuid,
        report: &crate::domain::callback::Completed,
    ) -> StoreResult<callbacks::CompletionReceipt>;
    /// A callback run's heartbeat; a conflict when it is not running.
    async fn heartbeat_run(
        &self,
        run_id: Uuid,
        beat: &crate::domain::callback::Beat,
    ) -> StoreResult<()>;
    /// Cancels the tenant's run: at once when nothing of it runs, else
    /// `cancelling` until its receiver completes it or its grace passes.
    async fn cancel_run(
        &self,
        tenant: &Tenant,
        run_id: Uuid,
    ) -> StoreResult<callbacks::CancelReceipt>;
    /// Resumes the jobs whose timed pause has ended, each from its
    /// `paused_until` (§11.9); answers how many.
    async fn resume_timed_pauses(&self) -> StoreResult<u64>;
    /// One action on every job `request`'s selector picks, all or nothing
    /// (§11.9); a dry run writes nothing.
    /// Makes the tenant's jobs what `bundle` says (§11.9), all or nothing
    /// under the tenant's apply lock; with `prune_owner`, deletes that
    /// owner's jobs the bundle lacks. A dry run writes nothing.
    async fn apply_bundle(
        &self,
        tenant: &Tenant,
        bundle: &crate::domain::bundle::Bundle,
        prune_owner: Option<&str>,
        dry_run: bool,
        ctx: ParseContext,
    ) -> StoreResult<crate::domain::bundle::Plan>;

    async fn bulk_jobs(
        &self,
        tenant: &Tenant,
        request: &crate::domain::bulk::BulkRequest,
        ctx: ParseContext,
    ) -> StoreResult<bulk::BulkOutcome>;
    /// Applies a ping to the monitor-only job whose key is `key` (§11.5);
    /// none when no job has it.
    async fn record_ping(
        &self,
        key: &str,
        ping: crate::domain::monitor::Ping,
        body: &[u8],
    ) -> StoreResult<Option<monitors::PingReceipt>>;
    /// A new ping key for monitor-only job `id`; none when there is no
    /// such job, a conflict when it is not monitor-only.
    async fn rotate_ping_key(&self, tenant: &Tenant, id: &JobId) -> StoreResult<Option<String>>;
    /// The tenant's alerts, newest first.
    async fn list_alerts(
        &self,
        tenant: &Tenant,
        filter: &alerts::AlertFilter,
    ) -> StoreResult<Vec<alerts::AlertRecord>>;
    /// Acknowledges an alert; a resolved one is a conflict.
    async fn ack_alert(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<alerts::AlertRecord>>;
    /// The tenant's calendars, in id order (§11.4).
    async fn list_calendars(&self, tenant: &Tenant) -> StoreResult<Vec<CalendarRecord>>;
    /// Writes a calendar (with `create`, a conflict when its id is taken)
    /// and re-plans the coming fire times of every job that uses it, in one
    /// transaction; refused when its `calendar` rules name a missing one or
    /// make a cycle.
    async fn put_calendar(
        &self,
        tenant: &Tenant,
        calendar: crate::domain::calendar::Calendar,
        create: bool,
    ) -> StoreResult<CalendarSaved>;
    /// Adds days to calendar `id` (an ICS import) as `put_calendar` does;
    /// answers how many were new.
    async fn add_calendar_days(
        &self,
        tenant: &Tenant,
        id: &str,
        days: &std::collections::BTreeSet<chrono::NaiveDate>,
    ) -> StoreResult<(CalendarSaved, usize)>;
    /// Deletes a calendar; a conflict naming the jobs and calendars that
    /// use it while any does.
    async fn delete_calendar(&self, tenant: &Tenant, id: &str) -> StoreResult<bool>;
    async fn get_flow(&self, tenant: &Tenant, key: &str) -> StoreResult<Option<FlowInfo>>;
    /// Defines a key's limits (`PUT /v1/flows/{key}`).
    async fn put_flow(
        &self,
        tenant: &Tenant,
        key: &str,
        limits: crate::domain::flow::FlowLimits,
    ) -> StoreResult<FlowInfo>;
    /// Pauses or resumes a key; none when it does not exist.
    async fn pause_flow(
        &self,
        tenant: &Tenant,
        key: &str,
        paused: bool,
    ) -> StoreResult<Option<FlowInfo>>;
    /// Backfills the job's occurrences in a range (§11.3), or lists them
    /// (`dry_run`).
    async fn create_backfill(
        &self,
        tenant: &Tenant,
        id: &JobId,
        spec: &crate::domain::backfill::BackfillSpec,
    ) -> StoreResult<BackfillMade>;
    async fn get_backfill(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Option<Backfill>>;
    /// Cancels a backfill's pending runs (those being sent finish).
    async fn cancel_backfill(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Option<Backfill>>;
    /// The job with when its newest run that succeeded was for and ended:
    /// what its template renders with (§11.2).
    async fn job_for_render(
        &self,
        tenant: &Tenant,
        id: &JobId,
    ) -> StoreResult<Option<(Job, Option<(DateTime<Utc>, DateTime<Utc>)>)>>;

    /// Jobs in id order.
    async fn list_jobs(&self, tenant: &Tenant, filter: &JobFilter) -> StoreResult<Vec<Job>>;

    /// Deletes the job and its runs; false when there was none.
    /// Deletes a job: a conflict while other jobs' chains name it, unless
    /// `drop_refs` takes it out of them (§11.8).
    async fn delete_job(&self, tenant: &Tenant, id: &JobId, drop_refs: bool) -> StoreResult<bool>;

    /// One scheduler pass over at most `limit` due jobs, in one
    /// transaction: lock them (skipping rows other instances hold), count
    /// their runs in flight, let `plan` decide, insert the runs (an
    /// occurrence that already has one is left alone), advance the jobs,
    /// commit. Jobs with nothing in flight are taken up to `lookahead`
    /// before they are due, so that their next run is made ahead (§12).
    async fn claim_due_jobs(
        &self,
        limit: u32,
        lookahead: Duration,
        plan: &PlanFn<'_>,
    ) -> StoreResult<ClaimOutcome>;

    /// How long until the earliest job is taken by a claim with this
    /// `lookahead`, by the database's clock (zero when one is due); `None`
    /// when no job is scheduled.
    async fn next_due_in(&self, lookahead: Duration) -> StoreResult<Option<Duration>>;

    /// A manual run of job `id` now, outside its trigger's sequence,
    /// decided under the job's row lock like the scheduler's: over
    /// `max_instances` it waits or is `skipped` as the job's overlap policy
    /// says, unless `force`. `idempotency` as for [`Store::save_job`].
    async fn create_manual_run(
        &self,
        tenant: &Tenant,
        id: &JobId,
        idempotency: Option<&Idempotency>,
        force: bool,
    ) -> StoreResult<Run>;

    /// Runs as `filter` says, newest first (`created_at`, then id).
    async fn list_runs(&self, tenant: &Tenant, filter: &RunFilter) -> StoreResult<Vec<Run>>;
    /// The jobs whose chains name job `child` (§11.8), with the end and
    /// delay of each edge.
    async fn chain_parents(
        &self,
        tenant: &Tenant,
        child: &JobId,
    ) -> StoreResult<Vec<(JobId, crate::domain::chain::End, u32)>>;

    /// The request a template job's run was rendered to when it was made
    /// (§11.2), or why it did not render; none for a run of a job without
    /// a template, which sends its job's target.
    async fn run_request(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<Result<crate::domain::target::Target, String>>>;

    /// What the dashboard's overview counts (§10): the tenant's job runs
    /// made from `since`, newest first, at most `limit`.
    async fn overview_runs(
        &self,
        tenant: &Tenant,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::domain::overview::RunPoint>>;

    /// What a request with this key made, if one was recorded within
    /// `within`.
    async fn find_idempotent_request(
        &self,
        tenant: &Tenant,
        scope: &str,
        key: &str,
        within: Duration,
    ) -> StoreResult<Option<IdempotentRequest>>;

    /// Deletes up to `batch` Idempotency-Keys older than `older_than`;
    /// returns how many.
    async fn delete_expired_idempotency_keys(
        &self,
        older_than: Duration,
        batch: u32,
    ) -> StoreResult<u64>;

    /// One run with its attempts, in order.
    async fn get_run(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Option<(Run, Vec<Attempt>)>>;

    /// Deletes up to `batch` finished runs (and their attempts) that
    /// finished more than `retention` ago; returns how many.
    async fn delete_expired_runs(&self, retention: Duration, batch: u32) -> StoreResult<u64>;

    /// Deletes up to `batch` finished runs beyond the newest `keep` of
    /// their job; returns how many. Only jobs with a run finished within
    /// `finished_within` are looked at (all jobs when `None`): a job can only
    /// have grown past `keep` since the last trim by finishing runs.
    async fn trim_run_history(
        &self,
        keep: u32,
        batch: u32,
        finished_within: Option<Duration>,
    ) -> StoreResult<u64>;

    /// Claims up to `limit` pending runs whose time has come, for one
    /// attempt each: marks them running, leased to `owner` until the
    /// target's timeout plus `lease_margin` from now (database clock), and
    /// commits before any request is sent.
    /// Runs of `busy` hosts and tenants are left for later.
    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        lease_margin: Duration,
        busy: &Busy,
    ) -> StoreResult<Vec<ClaimedRun>>;

    /// Extends the lease of a claimed run that waited for its host, to the
    /// target's timeout plus `lease_margin` from now; false when it is no
    /// longer this owner's (taken over).
    async fn renew_lease(
        &self,
        owner: &str,
        run: Uuid,
        attempt: u32,
        lease_margin: Duration,
    ) -> StoreResult<bool>;

    /// Records attempts and the runs' new states in one transaction. Each
    /// write is fenced on `owner` and the attempt number: a run whose lease
    /// was taken over, or that was deleted, is left alone. Returns how many
    /// were recorded.
    async fn record_attempts(&self, owner: &str, records: &[AttemptRecord]) -> StoreResult<u64>;

    /// Gives runs back unfinished (a shutdown; a host with its most
    /// requests in flight): pending again `after` from now, the attempt
    /// not counted. Fenced like `record_attempts`.
    async fn release_runs(
        &self,
        owner: &str,
        runs: &[(Uuid, u32)],
        after: Duration,
    ) -> StoreResult<u64>;

    /// Takes over up to `limit` runs whose lease expired: its `lease_until`
    /// passed, or its owner is not alive by [`lease::live_owners`] (no
    /// heartbeat for `instance_timeout`, or not registered at all). Records
    /// the cut-off attempt as `interrupted` and writes what `recover`
    /// decides for each (pending again, or failed). Returns how many.
    ///
    /// [`lease::live_owners`]: crate::domain::lease::live_owners
    async fn recover_expired_leases(
        &self,
        limit: u32,
        instance_timeout: Duration,
        recover: &RecoverFn<'_>,
    ) -> StoreResult<u64>;

    /// Registers this process under its lease owner id (again, after its
    /// row was lost), its heartbeat now.
    async fn register_instance(&self, id: &str, version: &str) -> StoreResult<()>;

    /// Refreshes this process's heartbeat on the database clock; false when
    /// its row is gone (register again).
    async fn heartbeat(&self, id: &str) -> StoreResult<bool>;

    /// Deletes this process's row: a graceful shutdown, once its leases
    /// are released.
    async fn deregister_instance(&self, id: &str) -> StoreResult<()>;

    /// Every registered instance, oldest first, with the leases it holds.
    async fn list_instances(&self) -> StoreResult<Vec<Instance>>;

    /// Deletes instances silent for longer than `older_than` that hold no
    /// lease (processes killed long ago); returns how many.
    async fn delete_dead_instances(&self, older_than: Duration) -> StoreResult<u64>;

    /// A tenant's quotas: the flags' defaults with what root set for it.
    async fn tenant_quotas(&self, tenant: &Tenant) -> StoreResult<Quotas>;

    /// Sets a tenant's quotas (a null: the flag's default); answers them.
    async fn set_tenant_quotas(&self, tenant: &Tenant, set: &QuotaOverrides)
    -> StoreResult<Quotas>;

    /// Deletes the counts of runs made in minutes before this one.
    async fn forget_runs_made(&self) -> StoreResult<u64>;

    /// How long until a pending run's next attempt is due, by the
    /// database's clock; `None` when nothing is pending. (Expired leases are
    /// looked for on a timer of their own.)
    async fn next_attempt_in(&self) -> StoreResult<Option<Duration>>;

    async fn get_secret(&self, tenant: &Tenant, id: &JobId) -> StoreResult<Option<JobSecret>>;

    /// Replaces the secret, keeping the old one valid for `grace`.
    async fn rotate_secret(
        &self,
        tenant: &Tenant,
        id: &JobId,
        new_secret: &str,
        grace: Duration,
    ) -> StoreResult<Option<JobSecret>>;

    /// Stores a new token (its hash only) and answers it as listed.
    async fn create_token(&self, token: &NewToken) -> StoreResult<TokenInfo>;

    /// The token with this hash, unless revoked.
    async fn find_token(&self, hash: &str) -> StoreResult<Option<TokenInfo>>;

    /// Every token, revoked ones too, oldest first.
    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>>;

    /// Revokes a token; false when there is no such (unrevoked) token.
    async fn revoke_token(&self, id: &str) -> StoreResult<bool>;

    /// Records that a token was used now.
    async fn touch_token(&self, id: &str) -> StoreResult<()>;

    /// Keeps a dashboard session (its id's hash, never the id).
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;

    /// The unexpired session with this id hash, and its token, unless the
    /// token was revoked.
    async fn find_session(&self, hash: &str) -> StoreResult<Option<Session>>;

    /// Ends a session (sign-out); false when there was none.
    async fn delete_session(&self, hash: &str) -> StoreResult<bool>;

    /// Deletes expired sessions; returns how many.
    async fn delete_expired_sessions(&self) -> StoreResult<u64>;

    /// Whether any token was ever made, and whether any is not revoked:
    /// `--auth auto` requires tokens once one was made.
    async fn tokens(&self) -> StoreResult<crate::domain::auth::Tokens>;

    /// Events as `filter` says, oldest first, only of transactions that no
    /// running one precedes (so that a reader resuming after the last one
    /// misses nothing). `NotFound` when `filter.after` names no event.
    async fn list_events(&self, tenant: &Tenant, filter: &EventFilter) -> StoreResult<Vec<Event>>;

    /// The id of the last event [`list_events`](Store::list_events) would
    /// list now: a reader that starts after it sees only what comes next.
    async fn latest_event_id(&self, tenant: &Tenant) -> StoreResult<Option<Uuid>>;

    /// Deletes up to `batch` events older than `older_than`; returns how many.
    async fn delete_expired_events(&self, older_than: Duration, batch: u32) -> StoreResult<u64>;

    /// Writes audit records outside any change: a refused call's (§11.9).
    async fn record_audit(&self, records: &[crate::domain::audit::AuditRecord]) -> StoreResult<()>;

    /// The tenant's audit records as `filter` says.
    async fn list_audit(
        &self,
        tenant: &Tenant,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<crate::domain::audit::AuditRecord>>;

    /// Deletes up to `batch` audit records older than `older_than`.
    async fn delete_expired_audit(&self, older_than: Duration, batch: u32) -> StoreResult<u64>;

    async fn create_subscription(
        &self,
        tenant: &Tenant,
        subscription: &NewSubscription,
    ) -> StoreResult<Subscription>;

    /// Creates subscription `id`, or replaces its URL, interest and format
    /// (its secret stays, so receivers keep verifying); true when created.
    async fn put_subscription(
        &self,
        tenant: &Tenant,
        subscription: &NewSubscription,
    ) -> StoreResult<(Subscription, bool)>;

    async fn list_subscriptions(&self, tenant: &Tenant) -> StoreResult<Vec<Subscription>>;

    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<Option<Subscription>>;

    /// The subscription's signing secret.
    async fn subscription_secret(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<String>>;

    /// Deletes it and its deliveries; false when there was none.
    async fn delete_subscription(&self, tenant: &Tenant, id: &str) -> StoreResult<bool>;

    /// A subscription's deliveries, newest first.
    async fn list_deliveries(
        &self,
        tenant: &Tenant,
        subscription_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>>;

    /// Sends a failed run again (redrive): pending now, the same id, its
    /// attempts numbered on and its retry policy counted afresh; event
    /// `run.retried`. `Conflict` unless it is failed.
    async fn retry_run(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Run>;

    /// Pending runs, jobs by state, the pool's connections.
    async fn gauges(&self) -> StoreResult<Gauges>;
    /// The signals of the jobs with `metrics: true`, at most `limit`; one
    /// tenant's when `tenant` is given.
    async fn job_signals(&self, limit: u32, tenant: Option<&Tenant>)
    -> StoreResult<Vec<JobSignal>>;

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
/// Secrets are sealed with `key`: the store keeps its fingerprint, refuses
/// another key without touching anything, and seals what was stored
/// before sealing at the first start with one.
pub async fn connect(url: &str, wakeups: Arc<Wakeups>, key: SealingKey) -> StoreResult<DynStore> {
    connect_with(url, wakeups, key, Quotas::default()).await
}

/// [`connect`], with what one tenant may hold.
pub async fn connect_with(
    url: &str,
    wakeups: Arc<Wakeups>,
    key: SealingKey,
    quotas: Quotas,
) -> StoreResult<DynStore> {
    check_url(url)?;
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect(url, wakeups, key)
                .await?
                .with_quotas(quotas),
        ))
    } else {
        Ok(Arc::new(
            PgStore::connect(url, wakeups, key)
                .await?
                .with_quotas(quotas),
        ))
    }
}

/// Whether `url` names a store this service has (before anything, a key
/// file included, is made for it).
pub fn check_url(url: &str) -> StoreResult<()> {
    if url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("sqlite:")
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(FieldError::new(
            "database-url",
            format!("expected a postgres:// or sqlite:// URL, got {url:?}"),
        )))
    }
}

/// Where the key comes from when `CRONHOOK_ENCRYPTION_KEY` is not set: a
/// file `cronhook.key` beside the SQLite database (or in the working
/// directory, for PostgreSQL), made (mode 0600) when missing.
pub fn key_file_for(url: &str) -> std::path::PathBuf {
    let beside = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| !path.is_empty() && *path != ":memory:")
        .and_then(|path| std::path::Path::new(path).parent().map(|p| p.to_path_buf()));
    beside
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::PathBuf::from("."))
        .join("cronhook.key")
}

/// Checks the key against the fingerprint the store keeps (`stored`,
/// `None` when it keeps none yet).
pub(crate) fn check_fingerprint(key: &SealingKey, stored: Option<&str>) -> StoreResult<()> {
    match stored {
        Some(stored) if stored != key.fingerprint() => Err(StoreError::WrongKey(format!(
            "the store's secrets are sealed with the key whose fingerprint is {stored}, and this \
             instance has the key {}: start it with that key (CRONHOOK_ENCRYPTION_KEY, or the \
             cronhook.key it used); nothing was changed",
            key.fingerprint()
        ))),
        _ => Ok(()),
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

/// A chain edge's end as `job_edges` keeps it (§11.8).
pub(crate) fn edge_end(s: &str) -> StoreResult<crate::domain::chain::End> {
    crate::domain::chain::End::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("edge end {s:?}")))
}

/// A count read from the database, as the rules' input.
pub(crate) fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// What job `id` of `tenant` keeps sealed: its target's secrets (sealed
/// headers and whole URL) and its signing secret, bound to its row. For
/// bulk loads that copy one job's row to many ids (the benchmark's
/// seeding): a copied sealed value would not open in another row.
pub fn sealed_job_columns(
    key: &SealingKey,
    tenant: &Tenant,
    id: &JobId,
    target: &crate::domain::target::Target,
    secret: &str,
) -> (Option<String>, String) {
    let row = Row {
        tenant: tenant.as_str(),
        table: "jobs",
        id: id.as_str(),
    };
    (
        shape::StoredTarget::of(target, key, row).secrets,
        key.seal_in(row, SECRET, secret),
    )
}

/// The column a signing secret is bound to: the current one and the
/// previous one alike, since rotating moves the one to the other.
pub(crate) const SECRET: &str = "secret";

/// A job's (or subscription's) signing secrets as stored (sealed) in
/// `row`, opened with `key`.
pub(crate) fn open_secret(
    key: &SealingKey,
    row: Row<'_>,
    secret: &str,
    previous: Option<(String, DateTime<Utc>)>,
) -> StoreResult<JobSecret> {
    let open = |sealed: &str| {
        key.open_in(row, SECRET, sealed).map_err(|e| {
            StoreError::Corrupt(format!("{} {}: signing secret: {e}", row.table, row.id))
        })
    };
    Ok(JobSecret {
        secret: open(secret)?,
        previous: match previous {
            Some((sealed, until)) => Some((open(&sealed)?, until)),
            None => None,
        },
    })
}

/// A subscription's interest as stored: comma-separated types (unknown
/// ones, of a later version, are skipped) and a job.
pub(crate) fn interest(types: &str, job_id: Option<String>) -> Interest {
    Interest {
        types: types.split(',').filter_map(EventType::parse).collect(),
        job_id,
    }
}

/// Types as stored: comma separated.
pub(crate) fn types_text(types: &[EventType]) -> String {
    types
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A claimed run's columns, whichever the store: a job's occurrence (its
/// target and retry policy) or an event's delivery (its subscription's URL
/// and the event).
pub(crate) struct ClaimedParts {
    pub run_id: Uuid,
    pub tenant: String,
    pub job_id: Option<String>,
    pub scheduled_for: DateTime<Utc>,
    pub attempt_count: i64,
    pub prior_attempts: i64,
    /// A job's target and retry policy.
    pub job: Option<(shape::StoredTarget, StoreResult<shape::JobRules>)>,
    /// A template job's run: the request rendered when it was made (§11.2).
    pub request: Option<String>,
    /// What its end is followed up with (§11.1, §11.3, §11.8).
    pub follow_up: FollowUp,
    /// Whether it is a flow key's run: its end or retry lets another go.
    pub flow: bool,
    /// Whether a newer run may cancel it (§11.1).
    pub abortable: bool,
    /// A delivery's subscription: id, URL, sealed URL secrets; and event.
    pub delivery: Option<(String, String, Option<String>, Event)>,
    /// The subscription's format (`standard` or `slack`).
    pub format: Option<String>,
    /// A chained run's parent (§11.8).
    pub parent_run_id: Option<Uuid>,
    /// Sealed signing secrets: current, previous until when.
    pub secret: Option<String>,
    pub previous: Option<(String, DateTime<Utc>)>,
    pub now: DateTime<Utc>,
}

impl ClaimedParts {
    pub fn into_claimed(self, key: &SealingKey) -> StoreResult<ClaimedRun> {
        let run_id_text = self.run_id.to_string();
        // The secret is the job's, or (for an event's delivery) the
        // subscription's.
        let row = match (&self.job, &self.delivery, &self.job_id) {
            (Some(_), _, Some(job)) => Row {
                tenant: &self.tenant,
                table: "jobs",
                id: job,
            },
            (_, Some((subscription_id, ..)), _) => Row {
                tenant: &self.tenant,
                table: "subscriptions",
                id: subscription_id,
            },
            _ => Row {
                tenant: &self.tenant,
                table: "runs",
                id: "",
            },
        };
        let secrets = match &self.secret {
            Some(secret) => open_secret(key, row, secret, self.previous.clone()),
            None => Err(StoreError::Corrupt(format!(
                "run {}: no signing secret",
                self.run_id
            ))),
        };
        let (subject, spec) = match (self.job, self.delivery, self.job_id) {
            (Some((target, rules)), _, Some(job)) => {
                let row = Row {
                    tenant: &self.tenant,
                    table: "jobs",
                    id: &job,
                };
                let run_row = Row {
                    tenant: &self.tenant,
                    table: "runs",
                    id: &run_id_text,
                };
                // A template job's run sends what was rendered when it was
                // made; one made without (it cannot be) is not sent as the
                // template's text.
                let timeout_s = target.timeout_s;
                let spec = match (&self.request, target.template) {
                    (Some(request), _) => {
                        shape::StoredRequest::read(request, run_row, key, timeout_s)
                    }
                    (None, true) => Ok(Err("template_error: the run was made without its \
                                            rendered request"
                        .to_string())),
                    (None, false) => target.into_target(row, key).map(Ok),
                }
                .and_then(|rendered| match rendered {
                    Ok(target) => rules.map(|rules| Ok((rules.complete(target), rules.policy))),
                    Err(e) => Ok(Err(e)),
                });
                let subject = Subject::Job {
                    job_id: job_id(job)?,
                    scheduled_for: self.scheduled_for,
                };
                (subject, spec)
            }
            (_, Some((subscription_id, url, sealed, event)), _) => {
                let stored = shape::StoredTarget::of_subscription(url, sealed);
                let body = match self.format.as_deref() {
                    Some("slack") => crate::domain::event::slack_body(
                        event.kind,
                        &event.job_id,
                        event.run_id,
                        &event.data,
                    ),
                    _ => crate::domain::event::body(
                        event.id,
                        event.kind,
                        event.at,
                        &event.job_id,
                        event.run_id,
                        &event.data,
                    ),
                };
                let row = Row {
                    tenant: &self.tenant,
                    table: "subscriptions",
                    id: &subscription_id,
                };
                let spec = stored
                    .into_target(row, key)
                    .map(|target| Ok(crate::domain::event::delivery_request(target, body)));
                let subject = Subject::Event {
                    subscription_id,
                    event_id: event.id,
                    event_type: event.kind.as_str().to_string(),
                    job_id: event.job_id.clone(),
                };
                (subject, spec)
            }
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "run {}: neither its job nor its subscription and event read back",
                    self.run_id
                )));
            }
        };
        let spec = spec
            .and_then(|spec| Ok((spec, secrets?)))
            .map_err(|e| format!("not sent: the stored job does not parse ({e})"));
        let (spec, secrets) = match spec {
            Ok((Ok(spec), secret)) => (
                Ok(spec),
                crate::domain::signing::secrets_at(secret.secret, secret.previous, self.now),
            ),
            Ok((Err(e), _)) | Err(e) => (Err(e), Vec::new()),
        };
        let callback_token = match &spec {
            Ok((target, _)) if target.completion.is_some() => {
                Some(key.callback_key().token(self.run_id))
            }
            _ => None,
        };
        Ok(ClaimedRun {
            parent_run_id: self.parent_run_id,
            callback_token,
            run_id: self.run_id,
            subject,
            attempt: count(self.attempt_count).max(1),
            prior_attempts: count(self.prior_attempts),
            tenant: tenant(&self.tenant)?,
            spec,
            secrets,
            follow_up: self.follow_up,
            flow: self.flow,
            abortable: self.abortable,
        })
    }
}

/// An event row's columns, as both stores read them.
pub(crate) fn event_of(
    id: Uuid,
    kind: &str,
    at: DateTime<Utc>,
    job_id: String,
    run_id: Option<Uuid>,
    data: &str,
) -> StoreResult<Event> {
    Ok(Event {
        id,
        kind: EventType::parse(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("event {id}: type {kind:?}")))?,
        at,
        job_id,
        run_id,
        data: serde_json::from_str(data)
            .map_err(|e| StoreError::Corrupt(format!("event {id}: data: {e}")))?,
    })
}

/// A subscription row's columns, its URL opened.
#[allow(clippy::too_many_arguments)]
pub(crate) fn subscription_of(
    tenant: &str,
    id: String,
    url: String,
    sealed: Option<String>,
    types: &str,
    job_id: Option<String>,
    format: &str,
    created_at: DateTime<Utc>,
    key: &SealingKey,
) -> StoreResult<Subscription> {
    let row = Row {
        tenant,
        table: "subscriptions",
        id: &id,
    };
    let target = shape::StoredTarget::of_subscription(url, sealed).into_target(row, key)?;
    let format = crate::domain::subscription::SubscriptionFormat::parse(format)
        .ok_or_else(|| StoreError::Corrupt(format!("subscription {id}: format {format:?}")))?;
    Ok(Subscription {
        interest: interest(types, job_id),
        format,
        id,
        target,
        created_at,
    })
}

/// A new file only its owner may read or write (the SQLite database, the
/// key file); fails if it exists.
pub(crate) fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Whether the database refused a row for a unique key it already holds.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The smallest UUIDv7 of the instant `age` ago: every event id below it
/// is older (event ids are UUIDv7, in time order).
pub(crate) fn uuid_before(age: Duration) -> Uuid {
    uuid_at(portable::ago(age))
}

/// The least UUIDv7 of instant `at`'s millisecond: ids from then on
/// compare at least as great.
pub(crate) fn uuid_at(at: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

/// The host a run's request goes to, from its target's stored URL (none
/// when it does not parse: the run fails without a request anyway).
pub(crate) fn run_host(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| crate::domain::target::host_key(&u))
}

/// A token row's columns, as listed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn token_info(
    id: String,
    name: Option<String>,
    tenant: &str,
    role: &str,
    scopes: &str,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
) -> StoreResult<TokenInfo> {
    let scopes = scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            crate::domain::auth::Scope::parse(s)
                .ok_or_else(|| StoreError::Corrupt(format!("token {id}: scope {s:?}")))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(TokenInfo {
        scopes,
        tenant: Tenant::parse(tenant)
            .map_err(|e| StoreError::Corrupt(format!("token {id}: tenant: {e}")))?,
        role: role
            .parse::<Role>()
            .map_err(|e| StoreError::Corrupt(format!("token {id}: role: {e}")))?,
        id,
        name,
        created_at,
        last_used_at,
        revoked_at,
    })
}

/// A run's tenant as stored.
pub(crate) fn tenant(s: &str) -> StoreResult<Tenant> {
    Tenant::parse(s).map_err(|e| StoreError::Corrupt(format!("tenant {s:?}: {e}")))
}

/// An outcome's delay in milliseconds (0 unless it is a retry).
pub(crate) fn delay_ms(outcome: Outcome) -> i64 {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match outcome {
        Outcome::Retry { delay } => ms(delay),
        // An accepted run's deadline (§11.7).
        Outcome::Accepted { timeout, .. } => ms(timeout),
        _ => 0,
    }
}

/// An accepted run's heartbeat interval, in milliseconds (§11.7).
pub(crate) fn heartbeat_ms(outcome: Outcome) -> Option<i64> {
    match outcome {
        Outcome::Accepted {
            heartbeat: Some(h), ..
        } => Some(i64::try_from(h.as_millis()).unwrap_or(i64::MAX)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_those_a_second_try_may_pass() {
        // PostgreSQL: a deadlock, a serialisation failure, a lost
        // connection, too many connections, an administrator's shutdown.
        for code in ["40P01", "40001", "08006", "53300", "57P01"] {
            assert!(transient_code(code), "{code}");
        }
        // A unique or check violation, bad input: the same again.
        for code in ["23505", "23514", "22P02", "42P01"] {
            assert!(!transient_code(code), "{code}");
        }
        // SQLite: SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT (517), SQLITE_LOCKED;
        // not a constraint (19, 2067) or a full disk (13).
        for code in ["5", "517", "6", "262"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["19", "2067", "13"] {
            assert!(!transient_code(code), "{code}");
        }
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::NotFound.is_transient());
    }
}
