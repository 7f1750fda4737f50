//! The SQL-level primitives a database provides (DESIGN §1, "as it grew"):
//! each one statement, or the smallest loop of statements its SQL allows,
//! at the granularity PostgreSQL batches with `UNNEST`. They read and write
//! what they are given and decide nothing; [`super::writes`] orchestrates
//! every write path once over them, as River's `riverdriver` does for its
//! drivers.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::portable::Portable;
use super::shape::{StoredDefinition, StoredRetry, StoredTrigger};
use super::subscriptions::{SubscriptionCache, SubscriptionInterest};
use super::{
    AttemptRecord, Backfill, Busy, ClaimedRun, Event, EventFilter, Idempotency, Job, NewEvent, Run,
    StoreResult, Tenant,
};
use crate::domain::job::{JobId, JobState, Schedule};
use crate::domain::overlap::InFlight;
use crate::domain::quota::QuotaOverrides;
use crate::domain::retry::Outcome;
use crate::domain::run::RunStatus;
use crate::domain::run_limit::OnComplete;
use crate::domain::sealing::SealingKey;
use crate::wakeup::Wakeups;

/// Whether job `j` has a run in flight (pending or running), in the SQL
/// both databases share (see [`not_made_ahead`]).
macro_rules! has_run_in_flight {
    () => {
        "EXISTS (SELECT 1 FROM runs r WHERE r.tenant = j.tenant AND r.job_id = j.id
                   AND r.status IN ('pending', 'running'))"
    };
}
pub(crate) use has_run_in_flight;

/// Whether job `j`'s next run is made only when due, not ahead (§12):
/// `misfire::decide` makes none ahead for a job with a run in flight, nor
/// for a last occurrence — a `date` trigger's, an interval's whose next
/// fire time would pass `end_at`, the run that reaches `max_runs`; any
/// other trigger with an `end_at` is taken for one, since SQL cannot tell.
/// `$following` is SQL for an interval job's fire time after `next_run_at`.
/// The claim and the scheduler's sleep ask this, not `decide`: a job it
/// let through that `decide` refused would be claimed, left unchanged and
/// woken for again and again until its fire time.
macro_rules! not_made_ahead {
    ($following:literal) => {
        concat!(
            "(j.trigger_type = 'date'
              OR (j.end_at IS NOT NULL
                  AND (j.trigger_type <> 'interval' OR j.end_at < ",
            $following,
            "))
              OR (j.max_runs IS NOT NULL AND j.max_runs - j.runs_counted = 1) OR ",
            $crate::store::dialect::has_run_in_flight!(),
            ")"
        )
    };
}
pub(crate) use not_made_ahead;

/// Who a notification is for, on every instance (PostgreSQL's `NOTIFY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// Schedulers: a job's next fire time may be earlier.
    Jobs,
    /// Dispatchers: runs to deliver.
    Runs,
    /// Subscription caches: subscriptions changed.
    Subscriptions,
}

/// A job and tenant, as rows name them.
pub(crate) type JobKey = (String, String);

/// A due job as the scheduler's pass reads it under its row lock.
pub(crate) struct DueRow {
    pub tenant: String,
    pub id: String,
    pub trigger: StoredTrigger,
    pub next_run_at: DateTime<Utc>,
    pub misfire_grace_s: Option<i64>,
    pub coalesce: bool,
    pub catchup_max: i64,
    pub max_instances: i64,
    pub overlap: String,
    pub buffer_max: Option<i64>,
    /// §11.3: the limit, the runs counted toward it, `keep` or `delete`.
    pub max_runs: Option<i64>,
    pub runs_counted: i64,
    pub on_complete: String,
    pub target_url: String,
    /// Its runs' requests are rendered when made (§11.2).
    pub target_template: bool,
    /// Its flow as stored (JSON), if any (§11.1).
    pub flow: Option<String>,
    /// A monitor-only job's (§11.5): its runs await a ping, each fire
    /// time its own, whatever is in flight.
    pub monitor: bool,
    /// It has gates (§11.8): its fire times ask them first.
    pub gated: bool,
}

/// A scheduled run to insert, with its `run.created` event (written only
/// if the run is: an occurrence that has its run already gets neither).
pub(crate) struct NewRun {
    pub id: Uuid,
    pub tenant: String,
    pub job_id: String,
    pub scheduled_for: DateTime<Utc>,
    pub status: RunStatus,
    /// `overlap` for a pending run that waits (no next attempt until
    /// released), §11.1; `dependency:<job>` for one its gate holds (§11.8).
    pub wait_reason: Option<std::borrow::Cow<'static, str>>,
    /// When the watchdog looks again at a run its gate holds (§11.8).
    pub gate_check_at: Option<DateTime<Utc>>,
    /// Why a run is skipped.
    pub reason: Option<&'static str>,
    pub occurrences: u64,
    pub deliver_after: DateTime<Utc>,
    pub host: Option<String>,
    pub created: NewEvent,
    /// The occurrence calendars moved to `scheduled_for` (§11.4).
    pub nominal_for: Option<DateTime<Utc>>,
}

/// A run its gate holds (§11.8).
#[derive(Debug, Clone)]
pub(crate) struct HeldRun {
    pub tenant: String,
    pub id: Uuid,
    pub job_id: String,
    pub scheduled_for: DateTime<Utc>,
}

impl HeldRun {
    pub fn of<I: super::rows::RowId, T: super::rows::At>(
        (tenant, id, job_id, scheduled_for): (String, I, String, T),
    ) -> StoreResult<Self> {
        Ok(Self {
            tenant,
            id: id.uuid()?,
            job_id,
            scheduled_for: scheduled_for.at(),
        })
    }
}

/// What becomes of a held run (§11.8).
pub(crate) enum Settle {
    /// Sent: its gate holds no longer.
    Release,
    /// Held on, for `wait_reason`, looked at again at `check_at`.
    Hold {
        wait_reason: String,
        check_at: DateTime<Utc>,
    },
    /// Ended `skipped` or `missed`, reason `dependency`.
    End { status: RunStatus },
}

/// A job's row as a write that follows a run reads it, locked: to admit
/// a run, release waiting ones, or pause the job after a failure.
pub(crate) struct LockedJob {
    pub state: JobState,
    pub pause_on_failure: bool,
    pub max_instances: i64,
    pub overlap: String,
    pub buffer_max: Option<i64>,
    pub on_complete: OnComplete,
    pub target_url: String,
    /// Its runs' requests are rendered when made (§11.2).
    pub template: bool,
    /// The flow key its runs share (§11.1).
    pub flow: Option<crate::domain::flow::Flow>,
}

impl LockedJob {
    /// A monitor-only job's (§11.5).
    pub fn monitor(&self) -> bool {
        super::shape::StoredTarget::is_no_url(&self.target_url)
    }
}

/// A run a backfill makes (§11.3); its `run.created` event is written
/// only if it is (an occurrence that has its run gets neither).
pub(crate) struct NewBackfillRun {
    pub id: Uuid,
    pub tenant: String,
    pub job_id: String,
    pub backfill_id: Uuid,
    pub scheduled_for: DateTime<Utc>,
    pub replay_of: Option<Uuid>,
    pub status: RunStatus,
    pub wait_reason: Option<&'static str>,
    pub reason: Option<&'static str>,
    pub host: Option<String>,
}

/// A flow key's row (§11.1).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FlowState {
    pub key: String,
    pub limits: crate::domain::flow::FlowLimits,
    /// `api` (`PUT /v1/flows/{key}`) or `job` (the first job declaring
    /// them).
    pub defined_by: String,
    pub paused: bool,
    pub bucket: crate::domain::flow::Bucket,
    pub next_admit_at: Option<DateTime<Utc>>,
}

/// A flow key's runs at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FlowCounts {
    /// Sent or being sent (pending and admitted, or running).
    pub in_flight: u32,
    /// Waiting for the key and due.
    pub due: u32,
    /// Waiting for the key.
    pub waiting: u32,
    /// When the next waiting run that is not due yet falls due.
    pub next_due_at: Option<DateTime<Utc>>,
    /// The earliest `max_wait_s` deadline of a waiting run.
    pub deadline: Option<DateTime<Utc>>,
}

/// A delivery of an event to a subscription: a pending run of its own.
/// Written only where its event is, and its subscription still exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewDelivery {
    pub id: Uuid,
    pub tenant: String,
    pub subscription_id: String,
    pub event_id: Uuid,
    pub host: Option<String>,
}

/// A run whose lease expired, locked for recovery.
pub(crate) struct ExpiredRun {
    pub run_id: Uuid,
    pub tenant: String,
    pub job_id: Option<String>,
    pub subscription_id: Option<String>,
    pub attempt_count: i64,
    pub prior_attempts: i64,
    /// Its job's retry policy as stored (none for an event's delivery).
    pub retry: Option<StoredRetry>,
    /// For an event's delivery: which event, to which subscription.
    pub delivery: Option<super::DeliveryOf>,
}

/// What an update writes besides a job's definition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScheduleUpdate<'a> {
    /// The new schedule; `None` keeps the stored one (and its pause note).
    pub schedule: Option<Schedule>,
    /// The count of runs toward `max_runs` starts again at zero (§11.3).
    pub restart_count: bool,
    /// With a new schedule, the pause's end and reason (§11.9).
    pub pause: &'a crate::domain::job::PauseNote,
}

#[async_trait]
pub(crate) trait Dialect: Portable + Send + Sync + Sized + 'static {
    /// One write transaction; on SQLite it holds the write lock from its start.
    type Tx: Send;

    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    async fn begin(&self) -> StoreResult<Self::Tx>;
    async fn commit(tx: Self::Tx) -> StoreResult<()>;

    /// Sends `channel` when `tx` commits (nothing where one process is all).
    async fn notify(&self, tx: &mut Self::Tx, channel: Channel) -> StoreResult<()>;
    /// Sends `channel` now, outside a transaction.
    async fn notify_now(&self, channel: Channel) -> StoreResult<()>;
    /// Tells every instance that `runs` were cancelled, for their
    /// requests to be aborted (§11.1); sent when `tx` commits. SQLite's one
    /// process is told directly.
    async fn notify_cancelled(&self, tx: &mut Self::Tx, runs: &[Uuid]) -> StoreResult<()>;
    /// After a transaction that wrote events committed: tells the other
    /// instances' streams (and dispatchers, for `deliveries`).
    fn events_committed(&self, deliveries: usize);

    // Jobs.

    /// The job, its row locked for the rest of `tx` where `lock`.
    async fn read_job(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        id: &JobId,
        lock: bool,
    ) -> StoreResult<Option<Job>>;
    /// The tenant's jobs `filter` picks, in id order, their rows locked
    /// for the rest of `tx` (bulk actions, §11.9).
    async fn lock_jobs_matching(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        filter: &super::JobFilter,
    ) -> StoreResult<Vec<Job>>;
    /// False when the id is taken (by a concurrent writer).
    async fn insert_job(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &JobId,
        definition: &StoredDefinition,
        schedule: Schedule,
        sealed_secret: &str,
    ) -> StoreResult<bool>;
    /// Writes the definition, and `to` the schedule.
    async fn update_job(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &JobId,
        definition: &StoredDefinition,
        to: &ScheduleUpdate<'_>,
    ) -> StoreResult<()>;
    /// Replaces the job's current signing secret (sealed) with one the
    /// client chose; a rotation's previous secret keeps its grace.
    async fn set_secret(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &JobId,
        sealed: &str,
    ) -> StoreResult<()>;
    /// Writes audit records (§11.9) in the change's transaction.
    async fn insert_audit(
        &self,
        tx: &mut Self::Tx,
        records: &[crate::domain::audit::AuditRecord],
    ) -> StoreResult<()>;
    /// Deletes the job's runs made ahead of their fire time and not yet
    /// sent (DESIGN.md §12): its schedule changed (a pause, a new trigger),
    /// so they no longer stand. Answers how many.
    async fn remove_runs_made_ahead(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        ids: &[String],
    ) -> StoreResult<u64>;
    // Calendars (§11.4).

    /// Takes the tenant's apply lock for the rest of `tx`: one apply at a
    /// time per tenant (§11.9).
    async fn lock_applies(&self, tx: &mut Self::Tx, tenant: &Tenant) -> StoreResult<()>;
    /// Takes the tenant's calendar lock for the rest of `tx`: shared, or
    /// exclusive (SQLite's one writer at a time is already exclusive).
    async fn lock_calendars(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        exclusive: bool,
    ) -> StoreResult<()>;
    async fn read_calendars(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
    ) -> StoreResult<Vec<super::CalendarRecord>>;
    async fn write_calendar(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        calendar: &crate::domain::calendar::Calendar,
    ) -> StoreResult<()>;
    async fn delete_calendar(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<bool>;
    /// Subscription `id`, locked for the rest of `tx`.
    async fn lock_subscription(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<Option<super::Subscription>>;
    /// A conflict when its id is taken.
    async fn insert_subscription(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        subscription: &super::NewSubscription,
    ) -> StoreResult<super::Subscription>;
    /// Replaces its URL, interest and format (its secret stays); none when
    /// there is no such subscription.
    async fn replace_subscription(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        subscription: &super::NewSubscription,
    ) -> StoreResult<Option<super::Subscription>>;
    async fn delete_subscription(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<bool>;
    /// Records the occurrences calendars moved runs from (§11.4): rare, so
    /// apart from the claim's one insert.
    async fn set_nominal_for(
        &self,
        tx: &mut Self::Tx,
        runs: &[(Uuid, DateTime<Utc>)],
    ) -> StoreResult<()>;
    /// The ids of the tenant's jobs whose triggers use calendars.
    async fn calendared_jobs(&self, tx: &mut Self::Tx, tenant: &Tenant)
    -> StoreResult<Vec<String>>;

    /// How many jobs the tenant holds, as its kept count says.
    async fn count_jobs(&self, tx: &mut Self::Tx, tenant: &Tenant) -> StoreResult<u64>;
    /// Adds `jobs` to the tenant's kept count in `slot`.
    async fn add_jobs_held(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        slot: i32,
        jobs: i64,
    ) -> StoreResult<()>;
    /// The quotas root set for the tenant.
    async fn read_tenant_quotas(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
    ) -> StoreResult<QuotaOverrides>;
    /// The runs each tenant made in `minute`, with the quotas root set for
    /// it (of every tenant that has some).
    async fn runs_made(
        &self,
        tx: &mut Self::Tx,
        minute: i64,
    ) -> StoreResult<HashMap<String, (u64, QuotaOverrides)>>;
    /// Counts `made` more runs of `tenant` in `minute`.
    async fn add_runs_made(
        &self,
        tx: &mut Self::Tx,
        minute: i64,
        tenant: &str,
        made: u64,
    ) -> StoreResult<()>;
    /// Deletes the job and its runs; false when there was none.
    async fn delete_job(&self, tx: &mut Self::Tx, tenant: &Tenant, id: &JobId)
    -> StoreResult<bool>;
    /// Records an Idempotency-Key with what it made; false when another
    /// request recorded it within its window meanwhile.
    async fn record_idempotency(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        idempotency: &Idempotency,
        resource_id: &str,
    ) -> StoreResult<bool>;

    // The scheduler's pass.

    /// Up to `limit` due jobs, locked (skipping those other instances
    /// hold), with the database's `now`; with them, jobs due within
    /// `lookahead` that have no run in flight (§12).
    async fn lock_due_jobs(
        &self,
        tx: &mut Self::Tx,
        limit: u32,
        lookahead: Duration,
        held_back: &[String],
    ) -> StoreResult<(Vec<DueRow>, DateTime<Utc>)>;
    /// Runs in flight (pending or running) of each job, admitted and
    /// waiting, counted after its lock is held.
    async fn count_in_flight(
        &self,
        tx: &mut Self::Tx,
        jobs: &[JobKey],
    ) -> StoreResult<HashMap<JobKey, InFlight>>;
    /// Records the job's waiting runs but the oldest `keep` `skipped` with
    /// `reason` (its overlap policy keeps fewer waiting). Answers how many.
    async fn skip_waiting(
        &self,
        tx: &mut Self::Tx,
        job: &JobKey,
        keep: u32,
        reason: &str,
    ) -> StoreResult<u64>;
    /// Sends the job's `n` oldest waiting runs (by `scheduled_for`) when
    /// due: no longer waiting, their next attempt at their delivery time
    /// or now. Answers how many.
    async fn release_waiting(&self, tx: &mut Self::Tx, job: &JobKey, n: u32) -> StoreResult<u64>;
    /// Cancels the job's `n` oldest runs in flight that do not wait (by
    /// `scheduled_for`, id; runs inserted in `tx` included), reason
    /// `replaced`; one being sent gets its attempt recorded with error
    /// `cancelled` (§11.1). Answers their ids.
    async fn cancel_oldest(
        &self,
        tx: &mut Self::Tx,
        job: &JobKey,
        n: u32,
    ) -> StoreResult<Vec<Uuid>>;
    /// Inserts the runs, their `run.created` events and those events'
    /// deliveries; answers the statuses of the runs inserted and how many
    /// deliveries were.
    async fn insert_runs(
        &self,
        tx: &mut Self::Tx,
        runs: &[NewRun],
        deliveries: &[NewDelivery],
    ) -> StoreResult<(Vec<RunStatus>, usize)>;
    /// The run of each of the job's occurrences in `[from, to]` (§11.3).
    async fn occurrence_runs(
        &self,
        tx: &mut Self::Tx,
        job: &JobKey,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<HashMap<DateTime<Utc>, Uuid>>;
    /// The job's backfill runs in flight, admitted and waiting.
    async fn backfill_in_flight(&self, tx: &mut Self::Tx, job: &JobKey) -> StoreResult<InFlight>;
    /// Sends the job's `n` oldest waiting backfill runs; answers how many.
    async fn release_backfill(&self, tx: &mut Self::Tx, job: &JobKey, n: u32) -> StoreResult<u64>;
    /// One backfill run; false when its occurrence has a run already.
    async fn insert_backfill_run(
        &self,
        tx: &mut Self::Tx,
        run: &NewBackfillRun,
    ) -> StoreResult<bool>;
    /// Records a backfill of `tenant`.
    async fn insert_backfill(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        backfill: &Backfill,
    ) -> StoreResult<()>;
    /// A backfill with its runs counted by state.
    async fn read_backfill(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<Backfill>>;
    /// Cancels a backfill's pending runs; answers their ids and jobs.
    async fn cancel_backfill(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Vec<(Uuid, String)>>;
    // Flow keys (§11.1).

    /// The key's row, locked for the rest of `tx` where `lock`, with the
    /// database's clock.
    async fn lock_flow(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        lock: bool,
    ) -> StoreResult<Option<(FlowState, DateTime<Utc>)>>;
    /// Keys whose waiting runs may go by time (`next_admit_at` passed),
    /// locked, skipping those another instance holds.
    async fn due_flows(&self, tx: &mut Self::Tx, limit: u32) -> StoreResult<Vec<(String, String)>>;
    /// How long until a key's `next_admit_at`; none when no key has one.
    async fn next_flow_admit_in(&self) -> StoreResult<Option<Duration>>;
    async fn insert_flow(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        limits: crate::domain::flow::FlowLimits,
        defined_by: &str,
    ) -> StoreResult<()>;
    async fn set_flow_limits(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        limits: crate::domain::flow::FlowLimits,
        defined_by: &str,
        bucket: crate::domain::flow::Bucket,
    ) -> StoreResult<()>;
    async fn set_flow_paused(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        paused: bool,
    ) -> StoreResult<bool>;
    async fn save_flow(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        bucket: crate::domain::flow::Bucket,
        next_admit_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
    async fn flow_counts(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<FlowCounts>;
    async fn expire_flow_waits(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, String)>>;
    async fn admit_flow_runs(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        n: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    async fn enter_flow(
        &self,
        tx: &mut Self::Tx,
        run: Uuid,
        key: &str,
        priority: i32,
        wait_until: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
    /// A flow run to be sent again (a retry, or a redrive, whose
    /// `max_wait_s` deadline is then lifted) waits for its key again, from
    /// its next attempt's time; answers its tenant and key.
    async fn requeue_flow_run(
        &self,
        tx: &mut Self::Tx,
        run: Uuid,
        lift_deadline: bool,
    ) -> StoreResult<Option<(String, String)>>;
    /// The flow keys of the job's runs in flight.
    async fn flow_keys_in_flight(
        &self,
        tx: &mut Self::Tx,
        job: &JobKey,
    ) -> StoreResult<Vec<JobKey>>;
    async fn flow_of_run(
        &self,
        tx: &mut Self::Tx,
        run: Uuid,
    ) -> StoreResult<Option<(String, String)>>;
    async fn list_flows(&self, tx: &mut Self::Tx, tenant: &str) -> StoreResult<Vec<FlowState>>;
    /// Makes the key due for admission now (its runs changed).
    async fn poke_flow(&self, tx: &mut Self::Tx, tenant: &str, key: &str) -> StoreResult<()>;
    /// When the job's newest run that succeeded was for and ended
    /// (§11.2's `last_success`).
    async fn last_success(
        &self,
        tx: &mut Self::Tx,
        job: &JobKey,
    ) -> StoreResult<Option<(DateTime<Utc>, DateTime<Utc>)>>;
    /// Keeps each run's rendered request (§11.2).
    async fn store_requests(
        &self,
        tx: &mut Self::Tx,
        requests: &[(Uuid, String)],
    ) -> StoreResult<()>;
    /// Writes the jobs' new schedules.
    async fn update_schedules(
        &self,
        tx: &mut Self::Tx,
        schedules: &[(JobKey, Schedule)],
    ) -> StoreResult<()>;
    /// Adds to each job's count of runs toward `max_runs` (§11.3).
    async fn add_runs_counted(
        &self,
        tx: &mut Self::Tx,
        counts: &[(JobKey, u32)],
    ) -> StoreResult<()>;

    // Manual runs and redrives.

    /// The jobs, their rows locked (in key order); a job that is gone is
    /// left out.
    async fn lock_jobs(
        &self,
        tx: &mut Self::Tx,
        jobs: &[JobKey],
    ) -> StoreResult<HashMap<JobKey, LockedJob>>;
    /// A manual run now (database clock); `wait_reason` and `reason` as
    /// for [`NewRun`].
    #[allow(clippy::too_many_arguments)]
    async fn insert_manual_run(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        job: &JobId,
        id: Uuid,
        status: RunStatus,
        wait_reason: Option<&'static str>,
        reason: Option<&'static str>,
        host: Option<String>,
    ) -> StoreResult<Run>;
    /// A job run's status and job id, its row locked.
    async fn lock_run(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<(RunStatus, String)>>;
    /// Pending now, its attempts so far counted as before the redrive.
    async fn redrive_run(&self, tx: &mut Self::Tx, id: Uuid) -> StoreResult<Run>;

    // Events.

    /// Writes events and their deliveries; answers how many deliveries.
    async fn insert_events(
        &self,
        tx: &mut Self::Tx,
        events: &[(String, NewEvent)],
        deliveries: &[NewDelivery],
    ) -> StoreResult<usize>;
    /// Every subscription of a tenant, for matching events in Rust: read
    /// in `tx` when one is open.
    async fn subscription_interests(
        &self,
        tx: Option<&mut Self::Tx>,
        tenant: &str,
    ) -> StoreResult<Vec<SubscriptionInterest>>;

    // Recording attempts.

    /// Records attempts fenced on `owner` and the attempt number (a run
    /// taken over or deleted is left alone); answers the runs recorded.
    async fn record_fenced(
        &self,
        tx: &mut Self::Tx,
        owner: &str,
        records: &[AttemptRecord],
    ) -> StoreResult<Vec<Uuid>>;
    /// [`record_fenced`](Self::record_fenced) with the events of what was
    /// recorded and their deliveries, in a transaction of its own; answers
    /// the runs recorded and the deliveries written. PostgreSQL does it in
    /// one statement.
    async fn record_with_events(
        &self,
        owner: &str,
        records: &[AttemptRecord],
        events: &[(String, NewEvent)],
        deliveries: &[NewDelivery],
    ) -> StoreResult<(Vec<Uuid>, usize)> {
        let mut tx = self.begin().await?;
        let recorded = self.record_fenced(&mut tx, owner, records).await?;
        let events: Vec<(String, NewEvent)> = events
            .iter()
            .filter(|(_, e)| e.run_id.is_some_and(|r| recorded.contains(&r)))
            .cloned()
            .collect();
        let written = self.insert_events(&mut tx, &events, deliveries).await?;
        Self::commit(tx).await?;
        Ok((recorded, written))
    }
    /// Pauses the jobs (no next fire time).
    async fn pause_jobs(&self, tx: &mut Self::Tx, jobs: &[JobKey]) -> StoreResult<()>;

    // Lease recovery.

    /// Takes the watchdog's pass for this transaction (§11.5): the
    /// database's `now`, or none when another instance holds it.
    async fn lock_watchdog(&self, tx: &mut Self::Tx) -> StoreResult<Option<DateTime<Utc>>>;
    async fn alerting_jobs(
        &self,
        tx: &mut Self::Tx,
        limit: u32,
    ) -> StoreResult<Vec<super::alerts::AlertingJob>>;
    async fn monitor_by_key(
        &self,
        tx: &mut Self::Tx,
        key: &str,
    ) -> StoreResult<Option<super::monitors::MonitorJob>>;
    async fn abandon_monitor_run(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        run_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn open_monitor_runs(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job_id: &str,
    ) -> StoreResult<Vec<(crate::domain::monitor::OpenRun, Option<DateTime<Utc>>)>>;
    async fn write_ping(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job_id: &str,
        write: &super::monitors::PingWrite,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn miss_awaiting(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job_id: &str,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, DateTime<Utc>)>>;
    // Chains (§11.8).

    async fn run_scheduled_for(
        &self,
        tx: &mut Self::Tx,
        id: Uuid,
    ) -> StoreResult<Option<DateTime<Utc>>>;
    async fn tenant_edges(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
    ) -> StoreResult<Vec<(String, String)>>;
    async fn edges_of(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        parent: &str,
    ) -> StoreResult<Vec<crate::domain::chain::Edge>>;
    async fn replace_edges(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        parent: &str,
        edges: &[crate::domain::chain::Edge],
    ) -> StoreResult<()>;
    async fn referrers(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        child: &str,
    ) -> StoreResult<Vec<String>>;
    #[allow(clippy::too_many_arguments)]
    async fn insert_chain_run(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job: &str,
        id: Uuid,
        parent_run_id: Uuid,
        due: DateTime<Utc>,
        admitted: (RunStatus, Option<&'static str>, Option<&'static str>),
        host: Option<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Run>>;

    // Gates (§11.8).

    async fn replace_requires(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job: &str,
        gates: &crate::domain::gate::Gates,
    ) -> StoreResult<()>;
    async fn gates_of(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job: &str,
    ) -> StoreResult<crate::domain::gate::Gates>;
    async fn monitor_only(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<bool>>;
    async fn requirers(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        required: &str,
    ) -> StoreResult<Vec<String>>;
    async fn held_for(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        required: &str,
    ) -> StoreResult<Vec<HeldRun>>;
    async fn held_due(
        &self,
        tx: &mut Self::Tx,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<HeldRun>>;
    async fn settle_held(
        &self,
        tx: &mut Self::Tx,
        id: Uuid,
        settle: &Settle,
        now: DateTime<Utc>,
    ) -> StoreResult<(bool, Option<String>)>;

    // Long runs (§11.7).

    async fn lock_callback_run(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
    ) -> StoreResult<Option<super::callbacks::CallbackRun>>;
    async fn end_callback_run(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        end: &super::callbacks::CallbackEnd,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn beat_callback_run(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        beat: &crate::domain::callback::Beat,
        next_due: Option<DateTime<Utc>>,
        watch_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn request_cancel(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn note_overdue_attempt(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        number: i64,
        why: &str,
    ) -> StoreResult<()>;
    async fn retry_callback_run(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        next_attempt_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn overdue_callback_runs(
        &self,
        tx: &mut Self::Tx,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<super::callbacks::WatchedRun>>;
    async fn set_ping_key(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        id: &str,
        key: Option<&str>,
        replace: bool,
    ) -> StoreResult<()>;
    async fn recent_runs(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<crate::domain::alert::RecentRun>>;
    async fn read_alerts(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        filter: &super::alerts::AlertFilter,
    ) -> StoreResult<Vec<super::alerts::AlertRecord>>;
    async fn write_alert(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        change: &super::alerts::AlertChange,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Every instance's last heartbeat, and the database's `now`.
    async fn heartbeats(
        &self,
        tx: &mut Self::Tx,
    ) -> StoreResult<(Vec<(String, DateTime<Utc>)>, DateTime<Utc>)>;
    /// Up to `limit` running runs whose lease passed or whose owner is not
    /// in `live`, locked.
    async fn lock_expired_leases(
        &self,
        tx: &mut Self::Tx,
        limit: u32,
        live: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExpiredRun>>;
    /// Records each run's cut-off attempt as interrupted and writes the
    /// run as decided; answers how many.
    async fn write_recovered(
        &self,
        tx: &mut Self::Tx,
        runs: &[(Uuid, Outcome)],
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;

    // Reads and writes whose SQL each database words its own way (the
    // rest are [`Portable`]).

    /// How long until `lock_due_jobs` with this `lookahead` takes a job.
    async fn next_due_in(
        &self,
        lookahead: Duration,
        held_back: &[String],
    ) -> StoreResult<Option<Duration>>;
    async fn trim_run_history(
        &self,
        keep: u32,
        batch: u32,
        finished_within: Option<Duration>,
    ) -> StoreResult<u64>;
    async fn claim_runs(
        &self,
        key: &SealingKey,
        owner: &str,
        limit: u32,
        lease_margin: Duration,
        busy: &Busy,
    ) -> StoreResult<Vec<ClaimedRun>>;
    async fn renew_lease(
        &self,
        owner: &str,
        run: Uuid,
        attempt: u32,
        lease_margin: Duration,
    ) -> StoreResult<bool>;
    async fn release_runs(
        &self,
        owner: &str,
        runs: &[(Uuid, u32)],
        after: Duration,
    ) -> StoreResult<u64>;
    async fn register_instance(&self, id: &str, version: &str) -> StoreResult<()>;
    async fn heartbeat(&self, id: &str) -> StoreResult<bool>;
    async fn delete_dead_instances(&self, older_than: Duration) -> StoreResult<u64>;
    async fn next_attempt_in(&self) -> StoreResult<Option<Duration>>;
    async fn list_events(&self, tenant: &Tenant, filter: &EventFilter) -> StoreResult<Vec<Event>>;
    async fn latest_event_id(&self, tenant: &Tenant) -> StoreResult<Option<Uuid>>;

    /// Forwards other instances' notifications to this process's wake-ups
    /// and subscription cache, until `shutdown`; `None` where there are none.
    fn spawn_listener(
        &self,
        wakeups: std::sync::Arc<Wakeups>,
        subscriptions: std::sync::Arc<SubscriptionCache>,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>>;
}
