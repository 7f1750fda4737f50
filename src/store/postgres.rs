//! The PostgreSQL store: production, and several instances on one database.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgListener, PgPool, PgPoolOptions};
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::dialect::{
    Channel, Dialect, DueRow, ExpiredRun, FlowCounts, FlowState, HeldRun, JobKey, LockedJob,
    NewBackfillRun, NewDelivery, NewRun, Settle, not_made_ahead,
};
use super::portable::portable_statements;
use super::rows::{self, CALLBACK_FORGOTTEN, RUN_COLUMNS};
use super::shape::StoredDefinition;
use super::subscriptions::{SubscriptionCache, SubscriptionInterest};
use super::{
    AttemptRecord, Backfill, Busy, ClaimedRun, Event, EventFilter, Idempotency, Job,
    NEXT_DUE_LOOKED_AT, NewEvent, Run, SqlStore, StoreError, StoreResult, Tenant, count, delay_ms,
    event_of, heartbeat_ms, interest, is_unique_violation, run_status,
};
use crate::domain::job::{JobId, Schedule};
use crate::domain::overlap::InFlight;
use crate::domain::quota::QuotaOverrides;
use crate::domain::retry::Outcome;
use crate::domain::run::{INTERRUPTED, RunStatus};
use crate::domain::sealing::SealingKey;
use crate::wakeup::Wakeups;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `NOTIFY` channels: hints to every instance's scheduler (jobs changed)
/// and dispatcher (runs to deliver).
pub const JOBS_CHANNEL: &str = "cronhook_jobs";
pub const RUNS_CHANNEL: &str = "cronhook_runs";
/// Events were written: streams on every instance read on.
pub const EVENTS_CHANNEL: &str = "cronhook_events";
/// Subscriptions changed: every instance reads them again.
pub const SUBSCRIPTIONS_CHANNEL: &str = "cronhook_subscriptions";
/// Runs were cancelled (their ids, comma-separated): every instance aborts
/// their requests (§11.1).
pub const CANCELLED_CHANNEL: &str = "cronhook_cancelled";
/// Run ids per `NOTIFY` payload (each 36 bytes and a comma; the payload's
/// limit is 8,000 bytes).
const CANCELLED_PER_NOTIFY: usize = 200;

/// The `application_name` of the LISTEN connection.
pub const LISTENER_NAME: &str = "cronhook-listener";

/// The PostgreSQL dialect: its pool, and whether a NOTIFY of events is on
/// its way (at most one per 10 ms is sent).
pub struct PgDialect {
    pool: PgPool,
    notifying: Arc<AtomicBool>,
}

/// The store on PostgreSQL.
pub type PgStore = SqlStore<PgDialect>;

impl SqlStore<PgDialect> {
    pub async fn connect(url: &str, wakeups: Arc<Wakeups>, key: SealingKey) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let mut tx = pool.begin().await?;
        sqlx::query("LOCK TABLE settings IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        seal_what_is_plain(&mut tx, &key).await?;
        tx.commit().await?;
        let db = PgDialect {
            pool,
            notifying: Arc::default(),
        };
        Ok(SqlStore::new(db, wakeups, key))
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Jobs => JOBS_CHANNEL,
            Channel::Runs => RUNS_CHANNEL,
            Channel::Subscriptions => SUBSCRIPTIONS_CHANNEL,
        }
    }
}

/// The columns a new job is inserted with, in [`push_job`]'s order.
macro_rules! job_columns {
    () => {
        "tenant, id, name, trigger_type, cron_expr, cron_timezone, every_s, run_at, start_at,
         end_at, jitter_s, target_url, target_method, target_headers, target_body,
         target_secrets, timeout_s, misfire_grace_s, coalesce_runs, catchup_max, max_instances,
         overlap, buffer_max, pause_on_failure, max_runs, on_complete, target_template,
         flow, flow_key, trigger_more, max_attempts,
         backoff_initial_s, backoff_max_s, delivery_rules, alerts, metadata, labels, state, next_run_at, secret,
         created_at, updated_at"
    };
}

/// One new job's values, in [`job_columns!`]'s order; `sealed_secret` is
/// its signing secret, sealed.
fn push_job(
    row: &mut sqlx::query_builder::Separated<'_, '_, Postgres, &'static str>,
    tenant: &Tenant,
    id: &JobId,
    d: &StoredDefinition,
    schedule: Schedule,
    sealed_secret: &str,
) {
    let t = &d.trigger;
    row.push_bind(tenant.as_str().to_string())
        .push_bind(id.as_str().to_string())
        .push_bind(d.name.clone())
        .push_bind(t.trigger_type.clone())
        .push_bind(t.cron_expr.clone())
        .push_bind(t.cron_timezone.clone())
        .push_bind(t.every_s)
        .push_bind(t.run_at)
        .push_bind(t.start_at)
        .push_bind(t.end_at)
        .push_bind(t.jitter_s)
        .push_bind(d.target.url.clone())
        .push_bind(d.target.method.clone())
        .push_bind(d.target.headers.clone())
        .push_bind(d.target.body.clone())
        .push_bind(d.target.secrets.clone())
        .push_bind(d.target.timeout_s)
        .push_bind(d.misfire_grace_s)
        .push_bind(d.coalesce)
        .push_bind(d.catchup_max)
        .push_bind(d.max_instances)
        .push_bind(d.overlap.clone())
        .push_bind(d.buffer_max)
        .push_bind(d.pause_on_failure)
        .push_bind(d.max_runs)
        .push_bind(d.on_complete.clone())
        .push_bind(d.target.template)
        .push_bind(d.flow.clone())
        .push_bind(d.flow_key.clone())
        .push_bind(t.more.clone())
        .push_bind(d.retry.max_attempts)
        .push_bind(d.retry.backoff_initial_s)
        .push_bind(d.retry.backoff_max_s)
        .push_bind(d.retry.rules.clone())
        .push_bind(d.alerts.clone())
        .push_bind(d.metadata.clone())
        .push_bind(d.labels.clone())
        .push_bind(schedule.state().as_str())
        .push_bind(schedule.next_run_at())
        .push_bind(sealed_secret.to_string())
        .push("now()")
        .push("now()");
}

/// The job query with its last run; `job_query!(" WHERE …")` appends a
/// tail at compile time, so every statement stays a `&'static str`.
macro_rules! job_query {
    ($tail:literal) => {
        concat!(
            "
    SELECT j.id, j.name, j.trigger_type, j.cron_expr, j.cron_timezone, j.every_s, j.run_at,
           j.start_at, j.end_at, j.jitter_s, j.trigger_more, j.target_url, j.target_method, j.target_headers,
           j.target_body, j.target_secrets, j.timeout_s, j.target_template, j.misfire_grace_s,
           j.coalesce_runs,
           j.catchup_max, j.max_instances, j.overlap, j.buffer_max, j.pause_on_failure,
           j.max_runs, j.on_complete, j.runs_counted, j.max_attempts, j.backoff_initial_s,
           j.backoff_max_s, j.delivery_rules, j.flow, j.flow_key, j.alerts, j.ping_key,
           j.metadata, j.labels, j.paused_until, j.pause_reason,
           j.state, j.next_run_at, j.created_at, j.updated_at,
           lr.id AS lr_id, lr.status AS lr_status, lr.scheduled_for AS lr_scheduled_for,
           lr.attempt_count AS lr_attempt_count, lr.created_at AS lr_created_at,
           lr.finished_at AS lr_finished_at
    FROM jobs j
    LEFT JOIN LATERAL (
        SELECT id, status, scheduled_for, attempt_count, created_at, finished_at
        FROM runs r WHERE r.tenant = j.tenant AND r.job_id = j.id
        ORDER BY r.created_at DESC, r.id DESC LIMIT 1
    ) lr ON true",
            $tail
        )
    };
}

/// The vocabulary [`portable_statements!`] speaks here.
type Db = Postgres;
type AtColumn = DateTime<Utc>;
fn at(t: DateTime<Utc>) -> AtColumn {
    t
}
fn row_id(id: Uuid) -> Uuid {
    id
}
type IdColumn = Uuid;
const JOBS: &str = job_query!("");
const POSITION: &str = "strpos";
/// Locks the jobs a bulk action selects (§11.9).
const LOCK_JOBS: &str = " FOR UPDATE OF j";
/// Locks the run a callback reports on (§11.7), and the watchdog's
/// overdue runs, passing over those another transaction holds.
const LOCK_RUN: &str = " FOR UPDATE";
/// The runs, named `r` (a job joined beside them is not locked).
const LOCK_RUNS_SKIP: &str = " FOR UPDATE OF r SKIP LOCKED";
/// A label's value, around its key (§11.9).
const LABEL: (&str, &str) = ("(j.labels::jsonb ->> ", ")");
portable_statements!(PgDialect);

/// The rows as PostgreSQL answers them: `timestamptz`, `uuid`, `int4`.
type JobRow = rows::JobRow<DateTime<Utc>, Uuid, i32>;
type RunRow = rows::RunRow<DateTime<Utc>, Uuid, i32>;
type AttemptRow = rows::AttemptRow<DateTime<Utc>, i32>;
type ExpiredRow = rows::ExpiredRow<Uuid, i32>;
type SecretRow = rows::SecretRow<DateTime<Utc>>;
use rows::LockedRow;
type TokenRow = rows::TokenRow<DateTime<Utc>>;
type SubscriptionRow = rows::SubscriptionRow<DateTime<Utc>>;
type DeliveryRow = rows::DeliveryRow<DateTime<Utc>, Uuid, i32>;

/// A due job, with the database's `now`.
#[derive(FromRow)]
struct PgDueRow {
    #[sqlx(flatten)]
    job: rows::DueJobRow<DateTime<Utc>>,
    db_now: DateTime<Utc>,
}

/// A flow key's row, with the database's `now`.
#[derive(FromRow)]
struct PgFlowRow {
    #[sqlx(flatten)]
    flow: rows::FlowRow<DateTime<Utc>>,
    db_now: DateTime<Utc>,
}

/// A claimed run, with the database's `now`.
#[derive(FromRow)]
struct PgClaimedRow {
    #[sqlx(flatten)]
    run: rows::ClaimedRow<DateTime<Utc>, Uuid, i32>,
    db_now: DateTime<Utc>,
}

async fn fetch_job(
    conn: &mut PgConnection,
    key: &SealingKey,
    tenant: &Tenant,
    id: &JobId,
    lock: bool,
) -> StoreResult<Option<Job>> {
    let sql = if lock {
        job_query!(" WHERE j.tenant = $1 AND j.id = $2 FOR UPDATE OF j")
    } else {
        job_query!(" WHERE j.tenant = $1 AND j.id = $2")
    };
    sqlx::query_as::<_, JobRow>(sql)
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
        .map(|row| row.into_job(key, tenant.as_str()))
        .transpose()
}

/// Recording attempts ($1 the lease owner, $2..$13 [`AttemptColumns`]),
/// fenced: only the lease holder's write for this very attempt lands, and
/// the attempt row only where the run was. The fence is wrapped in
/// `IS TRUE` so that the planner finds each run by its key: where the
/// owner's partial index looked cheaper (statistics taken before a burst
/// say one running row), it joined every running run with every record,
/// 2 to 30 times slower (see BENCHMARKS.md); and it runs after
/// [`plan_by_key`]. CTEs `updated` (id, tenant, job id) and `inserted`
/// (run id) for the statement that follows.
const RECORD_FENCED: &str = "WITH input AS (
                 SELECT * FROM UNNEST($2::uuid[], $3::int4[], $4::timestamptz[], $5::int8[],
                                      $6::int4[], $7::text[], $8::text[], $9::text[], $10::int8[],
                                      $11::text[], $12::bool[], $13::text[], $14::int8[])
                     AS u(run_id, number, started_at, duration_ms, status_code, error,
                          response_excerpt, status, delay_ms, outcome_reason, body_truncated,
                          run_reason, heartbeat_ms)
             ), updated AS (
                 UPDATE runs r
                 SET status = i.status,
                     reason = COALESCE(i.run_reason, r.reason),
                     next_attempt_at = CASE WHEN i.status = 'pending'
                         THEN now() + i.delay_ms * interval '1 millisecond' END,
                     finished_at = CASE WHEN i.status IN ('pending', 'running') THEN NULL
                         ELSE clock_timestamp() END,
                     lease_owner = NULL, lease_until = NULL,
                     -- Accepted by a callback job's receiver (§11.7): running
                     -- until its completion, by `delay_ms` at the latest.
                     accepted_at = CASE WHEN i.status = 'running' THEN now() ELSE r.accepted_at END,
                     deadline_at = CASE WHEN i.status = 'running'
                         THEN now() + i.delay_ms * interval '1 millisecond' ELSE r.deadline_at END,
                     heartbeat_s = CASE WHEN i.status = 'running' THEN i.heartbeat_ms / 1000
                         ELSE r.heartbeat_s END,
                     heartbeat_due_at = CASE WHEN i.status = 'running'
                         THEN now() + i.heartbeat_ms * interval '1 millisecond'
                         ELSE r.heartbeat_due_at END,
                     watch_at = CASE WHEN i.status = 'running'
                         THEN LEAST(now() + i.delay_ms * interval '1 millisecond',
                                    now() + i.heartbeat_ms * interval '1 millisecond')
                         ELSE r.watch_at END
                 FROM input i
                 WHERE r.id = i.run_id
                   AND (r.status = 'running' AND r.lease_owner = $1
                        AND r.attempt_count = i.number) IS TRUE
                 RETURNING r.id, r.tenant, r.job_id
             ), inserted AS (
                 INSERT INTO attempts (run_id, number, started_at, duration_ms, status_code, error,
                                       response_excerpt, outcome_reason, body_truncated)
                 SELECT i.run_id, i.number, i.started_at, i.duration_ms, i.status_code, i.error,
                        i.response_excerpt, i.outcome_reason, i.body_truncated
                 FROM input i JOIN updated u ON u.id = i.run_id
                 ON CONFLICT DO NOTHING
                 RETURNING run_id
             )";

/// Has the rest of `tx` find rows through an index, never by scanning a
/// whole table. Recording a batch of attempts touches each run by its
/// primary key, but the planner costed a scan of `runs` lower: on a
/// generic plan made while the table was small (after five executions of
/// a prepared statement, kept until the next ANALYZE), or, planned each
/// time, for a batch of 100 against 10,000 runs. Either way it read the
/// whole table for every batch: 6–12 ms a batch after a minute of steady
/// load, against 0.56 ms by key (BENCHMARKS.md, issue 23).
async fn plan_by_key(tx: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT set_config('enable_seqscan', 'off', true)")
        .execute(tx)
        .await?;
    Ok(())
}

/// Attempt records, column by column, for [`RECORD_FENCED`].
struct AttemptColumns {
    ids: Vec<Uuid>,
    numbers: Vec<i32>,
    started: Vec<DateTime<Utc>>,
    durations: Vec<i64>,
    codes: Vec<Option<i32>>,
    errors: Vec<Option<String>>,
    excerpts: Vec<Option<String>>,
    statuses: Vec<&'static str>,
    delays: Vec<i64>,
    outcome_reasons: Vec<Option<String>>,
    truncated: Vec<bool>,
    run_reasons: Vec<Option<&'static str>>,
    /// An accepted run's heartbeat interval (§11.7), or null.
    heartbeats: Vec<Option<i64>>,
}

impl AttemptColumns {
    /// `sql` (a statement starting with `RECORD_FENCED`) with its first 14
    /// parameters bound: the owner, then these columns.
    fn query_as<'q, O: for<'r> FromRow<'r, sqlx::postgres::PgRow>>(
        &'q self,
        sql: &'q str,
        owner: &'q str,
    ) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments> {
        sqlx::query_as(sql)
            .bind(owner)
            .bind(&self.ids)
            .bind(&self.numbers)
            .bind(&self.started)
            .bind(&self.durations)
            .bind(&self.codes)
            .bind(&self.errors)
            .bind(&self.excerpts)
            .bind(&self.statuses)
            .bind(&self.delays)
            .bind(&self.outcome_reasons)
            .bind(&self.truncated)
            .bind(&self.run_reasons)
            .bind(&self.heartbeats)
    }

    fn of(records: &[AttemptRecord]) -> Self {
        Self {
            ids: records.iter().map(|r| r.run_id).collect(),
            numbers: records.iter().map(|r| r.number as i32).collect(),
            started: records.iter().map(|r| r.started_at).collect(),
            durations: records
                .iter()
                .map(|r| i64::try_from(r.duration_ms).unwrap_or(i64::MAX))
                .collect(),
            codes: records
                .iter()
                .map(|r| r.status_code.map(i32::from))
                .collect(),
            errors: records.iter().map(|r| r.error.clone()).collect(),
            excerpts: records.iter().map(|r| r.response_excerpt.clone()).collect(),
            statuses: records
                .iter()
                .map(|r| r.outcome.run_status().as_str())
                .collect(),
            delays: records.iter().map(|r| delay_ms(r.outcome)).collect(),
            outcome_reasons: records.iter().map(|r| r.outcome_reason.clone()).collect(),
            truncated: records.iter().map(|r| r.body_truncated).collect(),
            run_reasons: records.iter().map(|r| r.run_reason).collect(),
            heartbeats: records.iter().map(|r| heartbeat_ms(r.outcome)).collect(),
        }
    }
}

/// Runs to insert, column by column, for one `UNNEST` insert.
#[derive(Default)]
struct RunColumns<'a> {
    id: Vec<Uuid>,
    tenant: Vec<String>,
    host: Vec<Option<String>>,
    event_id: Vec<Uuid>,
    event_type: Vec<&'static str>,
    event_data: Vec<String>,
    job_id: Vec<String>,
    scheduled_for: Vec<DateTime<Utc>>,
    status: Vec<&'static str>,
    wait_reason: Vec<Option<&'a str>>,
    reason: Vec<Option<&'static str>>,
    occurrences: Vec<i64>,
    deliver_after: Vec<DateTime<Utc>>,
    gate_check_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> RunColumns<'a> {
    fn of(runs: &'a [NewRun]) -> Self {
        let mut c = Self::default();
        for run in runs {
            c.id.push(run.id);
            c.tenant.push(run.tenant.clone());
            c.host.push(run.host.clone());
            c.event_id.push(run.created.id);
            c.event_type.push(run.created.kind.as_str());
            c.event_data.push(run.created.data.to_string());
            c.job_id.push(run.job_id.clone());
            c.scheduled_for.push(run.scheduled_for);
            c.status.push(run.status.as_str());
            c.wait_reason.push(run.wait_reason.as_deref());
            c.reason.push(run.reason);
            c.gate_check_at.push(run.gate_check_at);
            c.occurrences
                .push(i64::try_from(run.occurrences).unwrap_or(i64::MAX));
            c.deliver_after.push(run.deliver_after);
        }
        c
    }
}

/// Seconds until something is due, where the past counts as now.
fn non_negative(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
}

/// Event columns, as `UNNEST` takes them.
#[derive(Default)]
struct EventColumns {
    id: Vec<Uuid>,
    tenant: Vec<String>,
    kind: Vec<&'static str>,
    job_id: Vec<String>,
    run_id: Vec<Option<Uuid>>,
    data: Vec<String>,
}

impl EventColumns {
    fn of(events: &[(String, NewEvent)]) -> Self {
        let mut c = Self::default();
        for (tenant, event) in events {
            c.id.push(event.id);
            c.tenant.push(tenant.clone());
            c.kind.push(event.kind.as_str());
            c.job_id.push(event.job_id.clone());
            c.run_id.push(event.run_id);
            c.data.push(event.data.to_string());
        }
        c
    }
}

/// Deliveries, column by column, for [`deliveries_of_ev`].
#[derive(Default)]
struct DeliveryColumns {
    id: Vec<Uuid>,
    tenant: Vec<String>,
    subscription: Vec<String>,
    event: Vec<Uuid>,
    host: Vec<Option<String>>,
}

impl DeliveryColumns {
    fn of(deliveries: &[NewDelivery]) -> Self {
        let mut c = Self::default();
        for d in deliveries {
            c.id.push(d.id);
            c.tenant.push(d.tenant.clone());
            c.subscription.push(d.subscription_id.clone());
            c.event.push(d.event_id);
            c.host.push(d.host.clone());
        }
        c
    }

    /// Binds the five columns, the parameters [`deliveries_of_ev`] names.
    fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, Postgres, O, PgArguments>,
    ) -> sqlx::query::QueryAs<'q, Postgres, O, PgArguments> {
        query
            .bind(&self.id)
            .bind(&self.tenant)
            .bind(&self.subscription)
            .bind(&self.event)
            .bind(&self.host)
    }
}

/// The deliveries computed for the events a statement writes in its CTE
/// `ev` (id), from parameters `$first` to `$first + 4`: each one whose
/// event was written and whose subscription still exists.
fn deliveries_of_ev(first: usize) -> String {
    let [a, b, c, d, e] = [first, first + 1, first + 2, first + 3, first + 4];
    format!(
        "INSERT INTO runs (id, tenant, subscription_id, event_id, scheduled_for, cause, status,
                           occurrences, deliver_after, next_attempt_at, host)
         SELECT d.id, d.tenant, d.subscription_id, d.event_id, now(), 'event', 'pending', 1,
                now(), now(), d.host
         FROM UNNEST(${a}::uuid[], ${b}::text[], ${c}::text[], ${d}::uuid[], ${e}::text[])
                  AS d(id, tenant, subscription_id, event_id, host)
              JOIN ev ON ev.id = d.event_id
              JOIN subscriptions s ON s.tenant = d.tenant AND s.id = d.subscription_id
         RETURNING 1"
    )
}

/// Jobs named by tenant and id, as `UNNEST` takes them.
fn job_keys(jobs: &[JobKey]) -> (Vec<&str>, Vec<&str>) {
    jobs.iter().map(|(t, id)| (t.as_str(), id.as_str())).unzip()
}

fn count_of(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

#[async_trait]
impl Dialect for PgDialect {
    type Tx = sqlx::Transaction<'static, Postgres>;

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn begin(&self) -> StoreResult<Self::Tx> {
        Ok(self.pool.begin().await?)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        Ok(tx.commit().await?)
    }

    async fn notify(&self, tx: &mut Self::Tx, channel: Channel) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(channel.name())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn notify_now(&self, channel: Channel) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(channel.name())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The NOTIFY is sent after the commit, outside the hot transactions
    /// (a NOTIFY takes a lock at commit), at most one per 10 ms whatever
    /// the rate of events: listeners read the table anyway.
    async fn notify_cancelled(&self, tx: &mut Self::Tx, runs: &[Uuid]) -> StoreResult<()> {
        for chunk in runs.chunks(CANCELLED_PER_NOTIFY) {
            let ids: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CANCELLED_CHANNEL)
                .bind(ids.join(","))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    fn events_committed(&self, deliveries: usize) {
        let channels: &'static [&'static str] = if deliveries > 0 {
            &[EVENTS_CHANNEL, RUNS_CHANNEL]
        } else {
            &[EVENTS_CHANNEL]
        };
        if deliveries == 0 && self.notifying.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, notifying) = (self.pool.clone(), self.notifying.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            notifying.store(false, Ordering::Release);
            for channel in channels {
                if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(channel)
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "NOTIFY failed; other instances read on their own");
                }
            }
        });
    }

    async fn read_job(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        id: &JobId,
        lock: bool,
    ) -> StoreResult<Option<Job>> {
        fetch_job(tx, key, tenant, id, lock).await
    }

    async fn lock_jobs_matching(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        filter: &crate::store::JobFilter,
    ) -> StoreResult<Vec<Job>> {
        select_jobs(tx, key, tenant, filter, true).await
    }

    async fn insert_job(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &JobId,
        definition: &StoredDefinition,
        schedule: Schedule,
        sealed_secret: &str,
    ) -> StoreResult<bool> {
        let mut query =
            QueryBuilder::<Postgres>::new(concat!("INSERT INTO jobs (", job_columns!(), ") "));
        query.push_values([()], |mut row, ()| {
            push_job(&mut row, tenant, id, definition, schedule, sealed_secret);
        });
        match query.build().execute(&mut **tx).await {
            Err(e) if is_unique_violation(&e) => Ok(false),
            other => other.map(|_| true).map_err(Into::into),
        }
    }

    async fn update_job(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &JobId,
        d: &StoredDefinition,
        to: &super::dialect::ScheduleUpdate<'_>,
    ) -> StoreResult<()> {
        let (schedule, restart_count, pause) = (to.schedule, to.restart_count, to.pause);
        let t = &d.trigger;
        sqlx::query(
            "UPDATE jobs SET name = $2, trigger_type = $3, cron_expr = $4,
                 cron_timezone = $5, every_s = $6, run_at = $7, start_at = $8,
                 end_at = $9, jitter_s = $10, target_url = $11, target_method = $12,
                 target_headers = $13, target_body = $14, timeout_s = $15,
                 misfire_grace_s = $16, coalesce_runs = $17, max_instances = $18,
                 max_attempts = $19, backoff_initial_s = $20, backoff_max_s = $21,
                 metadata = $22,
                 state = COALESCE($23, state),
                 next_run_at = CASE WHEN $23::text IS NULL THEN next_run_at ELSE $24 END,
                 target_secrets = $25, catchup_max = $26, pause_on_failure = $28,
                 overlap = $29, buffer_max = $30, max_runs = $31, on_complete = $32,
                 runs_counted = CASE WHEN $33 THEN 0 ELSE runs_counted END,
                 target_template = $34, flow = $35, flow_key = $36, trigger_more = $37,
                 delivery_rules = $38, alerts = $39, labels = $40, updated_at = now(),
                 paused_until = CASE WHEN $23::text IS NULL THEN paused_until ELSE $41 END,
                 pause_reason = CASE WHEN $23::text IS NULL THEN pause_reason ELSE $42 END
             WHERE tenant = $27 AND id = $1",
        )
        .bind(id.as_str())
        .bind(&d.name)
        .bind(&t.trigger_type)
        .bind(&t.cron_expr)
        .bind(&t.cron_timezone)
        .bind(t.every_s)
        .bind(t.run_at)
        .bind(t.start_at)
        .bind(t.end_at)
        .bind(t.jitter_s)
        .bind(&d.target.url)
        .bind(&d.target.method)
        .bind(&d.target.headers)
        .bind(&d.target.body)
        .bind(d.target.timeout_s)
        .bind(d.misfire_grace_s)
        .bind(d.coalesce)
        .bind(d.max_instances)
        .bind(d.retry.max_attempts)
        .bind(d.retry.backoff_initial_s)
        .bind(d.retry.backoff_max_s)
        .bind(&d.metadata)
        .bind(schedule.map(|s| s.state().as_str()))
        .bind(schedule.and_then(Schedule::next_run_at))
        .bind(&d.target.secrets)
        .bind(d.catchup_max)
        .bind(tenant.as_str())
        .bind(d.pause_on_failure)
        .bind(&d.overlap)
        .bind(d.buffer_max)
        .bind(d.max_runs)
        .bind(&d.on_complete)
        .bind(restart_count)
        .bind(d.target.template)
        .bind(&d.flow)
        .bind(&d.flow_key)
        .bind(&t.more)
        .bind(&d.retry.rules)
        .bind(&d.alerts)
        .bind(&d.labels)
        .bind(pause.until)
        .bind(&pause.reason)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn lock_calendars(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        exclusive: bool,
    ) -> StoreResult<()> {
        let sql = if exclusive {
            "SELECT pg_advisory_xact_lock(hashtextextended('cronhook calendars ' || $1, 0))"
        } else {
            "SELECT pg_advisory_xact_lock_shared(hashtextextended('cronhook calendars ' || $1, 0))"
        };
        sqlx::query(sql)
            .bind(tenant.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn lock_applies(&self, tx: &mut Self::Tx, tenant: &Tenant) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('cronhook apply ' || $1, 0))")
            .bind(tenant.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn alerting_jobs(
        &self,
        tx: &mut Self::Tx,
        limit: u32,
    ) -> StoreResult<Vec<super::alerts::AlertingJob>> {
        alerting_jobs_in(tx, limit).await
    }

    async fn monitor_by_key(
        &self,
        tx: &mut Self::Tx,
        key: &str,
    ) -> StoreResult<Option<super::monitors::MonitorJob>> {
        monitor_by_key_in(tx, key).await
    }

    async fn abandon_monitor_run(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        run_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        abandon_monitor_run_in(tx, tenant, run_id, now).await
    }

    async fn open_monitor_runs(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job_id: &str,
    ) -> StoreResult<Vec<(crate::domain::monitor::OpenRun, Option<DateTime<Utc>>)>> {
        open_monitor_runs_in(tx, tenant, job_id).await
    }

    async fn write_ping(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job_id: &str,
        write: &super::monitors::PingWrite,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        write_ping_in(tx, tenant, job_id, write, now).await
    }

    async fn miss_awaiting(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job_id: &str,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, DateTime<Utc>)>> {
        miss_awaiting_in(tx, tenant, job_id, due_before, now).await
    }

    async fn run_scheduled_for(
        &self,
        tx: &mut Self::Tx,
        id: Uuid,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        run_scheduled_for_in(tx, id).await
    }

    async fn tenant_edges(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        tenant_edges_in(tx, tenant).await
    }

    async fn edges_of(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        parent: &str,
    ) -> StoreResult<Vec<crate::domain::chain::Edge>> {
        edges_of_in(tx, tenant, parent).await
    }

    async fn replace_edges(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        parent: &str,
        edges: &[crate::domain::chain::Edge],
    ) -> StoreResult<()> {
        replace_edges_in(tx, tenant, parent, edges).await
    }

    async fn referrers(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        child: &str,
    ) -> StoreResult<Vec<String>> {
        referrers_in(tx, tenant, child).await
    }

    async fn replace_requires(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job: &str,
        gates: &crate::domain::gate::Gates,
    ) -> StoreResult<()> {
        replace_requires_in(tx, tenant, job, gates).await
    }

    async fn gates_of(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job: &str,
    ) -> StoreResult<crate::domain::gate::Gates> {
        gates_of_in(tx, tenant, job).await
    }

    async fn monitor_only(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<bool>> {
        monitor_only_in(tx, tenant, id).await
    }

    async fn requirers(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        required: &str,
    ) -> StoreResult<Vec<String>> {
        requirers_in(tx, tenant, required).await
    }

    async fn held_for(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        required: &str,
    ) -> StoreResult<Vec<HeldRun>> {
        held_for_in(tx, tenant, required).await
    }

    async fn held_due(
        &self,
        tx: &mut Self::Tx,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<HeldRun>> {
        held_due_in(tx, now, limit).await
    }

    async fn settle_held(
        &self,
        tx: &mut Self::Tx,
        id: Uuid,
        settle: &Settle,
        now: DateTime<Utc>,
    ) -> StoreResult<(bool, Option<String>)> {
        settle_held_in(tx, id, settle, now).await
    }

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
    ) -> StoreResult<Option<Run>> {
        insert_chain_run_in(tx, tenant, job, id, parent_run_id, due, admitted, host, now).await
    }

    async fn lock_callback_run(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
    ) -> StoreResult<Option<super::callbacks::CallbackRun>> {
        lock_callback_run_in(tx, run_id)
            .await?
            .map(super::callbacks::CallbackRow::into_run)
            .transpose()
    }

    async fn end_callback_run(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        end: &super::callbacks::CallbackEnd,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        end_callback_run_in(tx, run_id, end, now).await
    }

    async fn beat_callback_run(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        beat: &crate::domain::callback::Beat,
        next_due: Option<DateTime<Utc>>,
        watch_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        beat_callback_run_in(tx, run_id, beat, next_due, watch_at, now).await
    }

    async fn request_cancel(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        request_cancel_in(tx, run_id, until, now).await
    }

    async fn note_overdue_attempt(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        number: i64,
        why: &str,
    ) -> StoreResult<()> {
        note_overdue_attempt_in(tx, run_id, number, why).await
    }

    async fn retry_callback_run(
        &self,
        tx: &mut Self::Tx,
        run_id: Uuid,
        next_attempt_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        retry_callback_run_in(tx, run_id, next_attempt_at).await
    }

    async fn overdue_callback_runs(
        &self,
        tx: &mut Self::Tx,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<super::callbacks::WatchedRun>> {
        overdue_callback_runs_in(tx, now, limit)
            .await?
            .into_iter()
            .map(super::callbacks::WatchedRow::into_watched)
            .collect()
    }

    async fn set_ping_key(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        id: &str,
        key: Option<&str>,
        replace: bool,
    ) -> StoreResult<()> {
        set_ping_key_in(tx, tenant, id, key, replace).await
    }

    async fn recent_runs(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        job_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<crate::domain::alert::RecentRun>> {
        recent_runs_in(tx, tenant, job_id, limit).await
    }

    async fn read_alerts(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        filter: &super::alerts::AlertFilter,
    ) -> StoreResult<Vec<super::alerts::AlertRecord>> {
        read_alerts_in(tx, tenant, filter).await
    }

    async fn write_alert(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        change: &super::alerts::AlertChange,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        write_alert_in(tx, tenant, change, now).await
    }

    async fn lock_watchdog(&self, tx: &mut Self::Tx) -> StoreResult<Option<DateTime<Utc>>> {
        // One instance's pass at a time; the others skip theirs.
        let (held, now): (bool, DateTime<Utc>) = sqlx::query_as(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('cronhook watchdog', 0)), now()",
        )
        .fetch_one(&mut **tx)
        .await?;
        Ok(held.then_some(now))
    }

    async fn read_calendars(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
    ) -> StoreResult<Vec<super::CalendarRecord>> {
        read_calendars_in(tx, tenant).await
    }

    async fn write_calendar(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        calendar: &crate::domain::calendar::Calendar,
    ) -> StoreResult<()> {
        write_calendar_in(tx, tenant, calendar).await
    }

    async fn delete_calendar(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<bool> {
        delete_calendar_in(tx, tenant, id).await
    }

    async fn lock_subscription(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<Option<crate::store::Subscription>> {
        lock_subscription_in(tx, key, tenant, id).await
    }

    async fn insert_subscription(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        subscription: &crate::store::NewSubscription,
    ) -> StoreResult<crate::store::Subscription> {
        insert_subscription_in(tx, key, tenant, subscription).await
    }

    async fn replace_subscription(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        subscription: &crate::store::NewSubscription,
    ) -> StoreResult<Option<crate::store::Subscription>> {
        replace_subscription_in(tx, key, tenant, subscription).await
    }

    async fn delete_subscription(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<bool> {
        delete_subscription_in(tx, tenant, id).await
    }

    async fn set_nominal_for(
        &self,
        tx: &mut Self::Tx,
        runs: &[(Uuid, DateTime<Utc>)],
    ) -> StoreResult<()> {
        set_nominal_for_in(tx, runs).await
    }

    async fn calendared_jobs(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
    ) -> StoreResult<Vec<String>> {
        calendared_jobs_in(tx, tenant).await
    }

    async fn count_jobs(&self, tx: &mut Self::Tx, tenant: &Tenant) -> StoreResult<u64> {
        count_jobs_in(tx, tenant).await
    }

    async fn add_jobs_held(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        slot: i32,
        jobs: i64,
    ) -> StoreResult<()> {
        add_jobs_held_in(tx, tenant, slot, jobs).await
    }

    async fn read_tenant_quotas(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
    ) -> StoreResult<QuotaOverrides> {
        tenant_quotas_in(tx, tenant).await
    }

    async fn runs_made(
        &self,
        tx: &mut Self::Tx,
        minute: i64,
    ) -> StoreResult<HashMap<String, (u64, QuotaOverrides)>> {
        runs_made_in(tx, minute).await
    }

    async fn add_runs_made(
        &self,
        tx: &mut Self::Tx,
        minute: i64,
        tenant: &str,
        made: u64,
    ) -> StoreResult<()> {
        add_runs_made_in(tx, minute, tenant, made).await
    }

    async fn set_secret(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &JobId,
        sealed: &str,
    ) -> StoreResult<()> {
        set_secret_in(tx, tenant.as_str(), id.as_str(), sealed).await
    }

    async fn insert_audit(
        &self,
        tx: &mut Self::Tx,
        records: &[crate::domain::audit::AuditRecord],
    ) -> StoreResult<()> {
        insert_audit_in(tx, records).await
    }

    async fn remove_runs_made_ahead(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        ids: &[String],
    ) -> StoreResult<u64> {
        // Pending: no dispatcher holds them (they are leased once due).
        let done = sqlx::query(
            "DELETE FROM runs
             WHERE tenant = $1 AND job_id = ANY($2) AND status IN ('pending', 'awaiting') AND cause = 'schedule'
               AND attempt_count = 0 AND scheduled_for > now()",
        )
        .bind(tenant.as_str())
        .bind(ids)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    async fn delete_job(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &JobId,
    ) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM jobs WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// An older key of the same name (past its window, not yet cleaned) is
    /// replaced.
    async fn record_idempotency(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        idempotency: &Idempotency,
        resource_id: &str,
    ) -> StoreResult<bool> {
        let recorded = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id, tenant)
             VALUES ($1, $2, $3, $4, $6)
             ON CONFLICT (tenant, scope, key) DO UPDATE
                 SET fingerprint = EXCLUDED.fingerprint, resource_id = EXCLUDED.resource_id,
                     created_at = now()
                 WHERE idempotency_keys.created_at < now() - make_interval(secs => $5)",
        )
        .bind(idempotency.scope)
        .bind(&idempotency.key)
        .bind(&idempotency.fingerprint)
        .bind(resource_id)
        .bind(crate::domain::idempotency::WINDOW.as_secs_f64())
        .bind(tenant.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(recorded.rows_affected() > 0)
    }

    async fn lock_due_jobs(
        &self,
        tx: &mut Self::Tx,
        limit: u32,
        lookahead: Duration,
        held_back: &[String],
    ) -> StoreResult<(Vec<DueRow>, DateTime<Utc>)> {
        let rows = sqlx::query_as::<_, PgDueRow>(concat!(
            "SELECT tenant, id, trigger_type, cron_expr, cron_timezone, every_s, run_at, start_at,
                    end_at, jitter_s, trigger_more, next_run_at, misfire_grace_s, coalesce_runs, catchup_max,
                    max_instances, overlap, buffer_max, max_runs, runs_counted, on_complete,
                    target_url, target_template, flow,
                    EXISTS (SELECT 1 FROM job_requires g
                            WHERE g.tenant = j.tenant AND g.job_id = j.id) AS gated,
                    now() AS db_now
             FROM jobs j
             WHERE next_run_at <= now() + make_interval(secs => $3) AND NOT (tenant = ANY($2))
               AND (next_run_at <= now() OR NOT ",
            not_made_ahead!("j.next_run_at + make_interval(secs => j.every_s)"),
            ")
             ORDER BY next_run_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED"
        ))
        .bind(i64::from(limit))
        .bind(held_back)
        .bind(lookahead.as_secs_f64())
        .fetch_all(&mut **tx)
        .await?;
        let now = rows.first().map_or_else(Utc::now, |r| r.db_now);
        let due = rows.into_iter().map(|r| r.job.into()).collect();
        Ok((due, now))
    }

    async fn count_in_flight(
        &self,
        tx: &mut Self::Tx,
        jobs: &[JobKey],
    ) -> StoreResult<HashMap<JobKey, InFlight>> {
        let (tenants, ids) = job_keys(jobs);
        Ok(sqlx::query_as::<_, (String, String, i64, i64)>(
            "SELECT r.tenant, r.job_id,
                    count(*) FILTER (WHERE r.wait_reason IS DISTINCT FROM 'overlap'),
                    count(*) FILTER (WHERE r.wait_reason = 'overlap')
             FROM runs r JOIN UNNEST($1::text[], $2::text[]) AS u(tenant, id)
                  ON r.tenant = u.tenant AND r.job_id = u.id
             WHERE r.status IN ('pending', 'running') AND r.cause <> 'backfill'
             GROUP BY r.tenant, r.job_id",
        )
        // Planned at each execution, for the table as it is: a plan kept
        // from when `runs` was small scanned it whole (0.57–3.6 ms a claim
        // in steady load, 0.057 ms planned each time; issue 23).
        .persistent(false)
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(tenant, id, admitted, waiting)| {
            let in_flight = InFlight {
                admitted: count(admitted),
                waiting: count(waiting),
            };
            ((tenant, id), in_flight)
        })
        .collect())
    }

    async fn skip_waiting(
        &self,
        tx: &mut Self::Tx,
        (tenant, job): &JobKey,
        keep: u32,
        reason: &str,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'skipped', wait_reason = NULL, reason = $3,
                             finished_at = clock_timestamp()
             WHERE id IN (SELECT id FROM runs
                          WHERE tenant = $1 AND job_id = $2 AND wait_reason = 'overlap'
                            AND status = 'pending' AND cause <> 'backfill'
                          ORDER BY scheduled_for, id OFFSET $4
                          FOR UPDATE)",
        )
        .bind(tenant)
        .bind(job)
        .bind(reason)
        .bind(i64::from(keep))
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    async fn cancel_oldest(
        &self,
        tx: &mut Self::Tx,
        (tenant, job): &JobKey,
        n: u32,
    ) -> StoreResult<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "WITH oldest AS (
                 SELECT id, status, attempt_count, attempt_started_at FROM runs
                 WHERE tenant = $1 AND job_id = $2 AND status IN ('pending', 'running')
                   AND wait_reason IS DISTINCT FROM 'overlap' AND cause <> 'backfill'
                 ORDER BY scheduled_for, id LIMIT $3
                 FOR UPDATE
             ), cut AS (
                 INSERT INTO attempts (run_id, number, started_at, duration_ms, error)
                 SELECT id, attempt_count, attempt_started_at,
                        GREATEST(0, (extract(epoch FROM clock_timestamp() - attempt_started_at)
                                     * 1000)::bigint),
                        $4
                 FROM oldest WHERE status = 'running' AND attempt_started_at IS NOT NULL
                 ON CONFLICT DO NOTHING
             )
             UPDATE runs r SET status = 'cancelled', reason = $5, next_attempt_at = NULL,
                               lease_owner = NULL, lease_until = NULL,
                               finished_at = clock_timestamp()
             FROM oldest WHERE r.id = oldest.id
             RETURNING r.id",
        )
        .bind(tenant)
        .bind(job)
        .bind(i64::from(n))
        .bind(crate::domain::run::CANCELLED)
        .bind(crate::domain::event::REPLACED)
        .fetch_all(&mut **tx)
        .await?)
    }

    async fn release_waiting(
        &self,
        tx: &mut Self::Tx,
        (tenant, job): &JobKey,
        n: u32,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs
             SET wait_reason = CASE WHEN flow_key IS NULL THEN NULL ELSE 'flow:' || flow_key END,
                 next_attempt_at = CASE WHEN flow_key IS NULL
                                        THEN GREATEST(deliver_after, now()) END
             WHERE id IN (SELECT id FROM runs
                          WHERE tenant = $1 AND job_id = $2 AND wait_reason = 'overlap'
                            AND status = 'pending' AND cause <> 'backfill'
                          ORDER BY scheduled_for, id LIMIT $3
                          FOR UPDATE)",
        )
        .bind(tenant)
        .bind(job)
        .bind(i64::from(n))
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    /// One statement: an occurrence that already has its run gets neither
    /// a run nor an event.
    async fn insert_runs(
        &self,
        tx: &mut Self::Tx,
        runs: &[NewRun],
        deliveries: &[NewDelivery],
    ) -> StoreResult<(Vec<RunStatus>, usize)> {
        if runs.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let c = RunColumns::of(runs);
        let d = DeliveryColumns::of(deliveries);
        let sql = format!(
            "WITH u AS (
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[],
                                      $5::int8[], $6::timestamptz[], $7::text[], $8::text[],
                                      $9::uuid[], $10::text[], $11::text[], $12::text[],
                                      $13::text[], $14::timestamptz[])
                     AS u(id, job_id, scheduled_for, status, occurrences, deliver_after,
                          tenant, host, event_id, event_type, event_data, wait_reason, reason,
                          gate_check_at)
             ), ins AS (
                 INSERT INTO runs (id, tenant, job_id, scheduled_for, cause, status,
                                   occurrences, deliver_after, next_attempt_at, finished_at,
                                   host, wait_reason, reason, gate_check_at)
                 SELECT u.id, u.tenant, u.job_id, u.scheduled_for, 'schedule', u.status,
                        u.occurrences, u.deliver_after,
                        CASE WHEN u.status = 'pending' AND u.wait_reason IS NULL
                             THEN u.deliver_after END,
                        CASE WHEN u.status IN ('pending', 'awaiting') THEN NULL
                             ELSE clock_timestamp() END,
                        u.host, u.wait_reason, u.reason, u.gate_check_at
                 FROM u
                 ON CONFLICT DO NOTHING
                 RETURNING id, tenant, job_id, status
             ), ev AS (
                 INSERT INTO events (id, tenant, type, job_id, run_id, data)
                 SELECT u.event_id, ins.tenant, u.event_type, ins.job_id, ins.id, u.event_data
                 FROM ins JOIN u ON u.id = ins.id
                 RETURNING id
             ), d AS ({})
             SELECT ins.status, (SELECT count(*) FROM d) FROM ins",
            deliveries_of_ev(15)
        );
        let query = sqlx::query_as::<_, (String, i64)>(&sql)
            .bind(&c.id)
            .bind(&c.job_id)
            .bind(&c.scheduled_for)
            .bind(&c.status)
            .bind(&c.occurrences)
            .bind(&c.deliver_after)
            .bind(&c.tenant)
            .bind(&c.host)
            .bind(&c.event_id)
            .bind(&c.event_type)
            .bind(&c.event_data)
            .bind(&c.wait_reason)
            .bind(&c.reason)
            .bind(&c.gate_check_at);
        let inserted = d.bind(query).fetch_all(&mut **tx).await?;
        let delivered = inserted.first().map_or(0, |(_, n)| count_of(*n));
        let statuses = inserted
            .iter()
            .map(|(status, _)| run_status(status))
            .collect::<StoreResult<_>>()?;
        Ok((statuses, delivered))
    }

    async fn occurrence_runs(
        &self,
        tx: &mut Self::Tx,
        job: &JobKey,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<HashMap<DateTime<Utc>, Uuid>> {
        occurrence_runs_in(tx, job, from, to).await
    }

    async fn backfill_in_flight(&self, tx: &mut Self::Tx, job: &JobKey) -> StoreResult<InFlight> {
        backfill_in_flight_in(tx, job).await
    }

    async fn release_backfill(&self, tx: &mut Self::Tx, job: &JobKey, n: u32) -> StoreResult<u64> {
        release_backfill_in(tx, job, n, Utc::now()).await
    }

    async fn insert_backfill_run(
        &self,
        tx: &mut Self::Tx,
        run: &NewBackfillRun,
    ) -> StoreResult<bool> {
        insert_backfill_run_in(tx, run, Utc::now()).await
    }

    async fn insert_backfill(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        backfill: &Backfill,
    ) -> StoreResult<()> {
        insert_backfill_in(tx, backfill, tenant.as_str()).await
    }

    async fn read_backfill(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<Backfill>> {
        read_backfill_in(tx, tenant.as_str(), id).await
    }

    async fn cancel_backfill(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Vec<(Uuid, String)>> {
        cancel_backfill_in(tx, tenant.as_str(), id, Utc::now()).await
    }

    async fn insert_flow(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        limits: crate::domain::flow::FlowLimits,
        defined_by: &str,
    ) -> StoreResult<()> {
        insert_flow_in(tx, tenant, key, limits, defined_by, Utc::now()).await
    }

    async fn set_flow_limits(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        limits: crate::domain::flow::FlowLimits,
        defined_by: &str,
        bucket: crate::domain::flow::Bucket,
    ) -> StoreResult<()> {
        set_flow_limits_in(tx, tenant, key, limits, defined_by, bucket).await
    }

    async fn set_flow_paused(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        paused: bool,
    ) -> StoreResult<bool> {
        set_flow_paused_in(tx, tenant, key, paused).await
    }

    async fn save_flow(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        bucket: crate::domain::flow::Bucket,
        next_admit_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        save_flow_in(tx, tenant, key, bucket, next_admit_at).await
    }

    async fn flow_counts(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<FlowCounts> {
        flow_counts_in(tx, tenant, key, now).await
    }

    async fn expire_flow_waits(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, String)>> {
        expire_flow_waits_in(tx, tenant, key, now).await
    }

    async fn admit_flow_runs(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        n: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        admit_flow_runs_in(tx, tenant, key, n, now).await
    }

    async fn enter_flow(
        &self,
        tx: &mut Self::Tx,
        run: Uuid,
        key: &str,
        priority: i32,
        wait_until: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        enter_flow_in(tx, run, key, priority, wait_until).await
    }

    async fn requeue_flow_run(
        &self,
        tx: &mut Self::Tx,
        run: Uuid,
        lift_deadline: bool,
    ) -> StoreResult<Option<(String, String)>> {
        requeue_flow_run_in(tx, run, lift_deadline).await
    }

    async fn flow_keys_in_flight(
        &self,
        tx: &mut Self::Tx,
        job: &JobKey,
    ) -> StoreResult<Vec<JobKey>> {
        flow_keys_in_flight_in(tx, job).await
    }

    async fn flow_of_run(
        &self,
        tx: &mut Self::Tx,
        run: Uuid,
    ) -> StoreResult<Option<(String, String)>> {
        flow_of_run_in(tx, run).await
    }

    async fn list_flows(&self, tx: &mut Self::Tx, tenant: &str) -> StoreResult<Vec<FlowState>> {
        list_flows_in(tx, tenant).await
    }

    async fn poke_flow(&self, tx: &mut Self::Tx, tenant: &str, key: &str) -> StoreResult<()> {
        poke_flow_in(tx, tenant, key, Utc::now()).await
    }

    async fn lock_flow(
        &self,
        tx: &mut Self::Tx,
        tenant: &str,
        key: &str,
        lock: bool,
    ) -> StoreResult<Option<(FlowState, DateTime<Utc>)>> {
        let sql = if lock {
            "SELECT key, max_in_flight, rate_limit, rate_period_s, defined_by, paused, tokens,
                    tokens_at, next_admit_at, now() AS db_now
             FROM flows WHERE tenant = $1 AND key = $2
             FOR UPDATE"
        } else {
            "SELECT key, max_in_flight, rate_limit, rate_period_s, defined_by, paused, tokens,
                    tokens_at, next_admit_at, now() AS db_now
             FROM flows WHERE tenant = $1 AND key = $2"
        };
        let row: Option<PgFlowRow> = sqlx::query_as(sql)
            .bind(tenant)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.map(|r| (r.flow.into(), r.db_now)))
    }

    async fn due_flows(&self, tx: &mut Self::Tx, limit: u32) -> StoreResult<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT tenant, key FROM flows
             WHERE next_admit_at <= now()
             ORDER BY next_admit_at LIMIT $1
             FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut **tx)
        .await?)
    }

    async fn next_flow_admit_in(&self) -> StoreResult<Option<Duration>> {
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM (min(next_admit_at) - clock_timestamp()))::float8
             FROM flows WHERE next_admit_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(seconds.map(non_negative))
    }

    async fn last_success(
        &self,
        tx: &mut Self::Tx,
        job: &JobKey,
    ) -> StoreResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        last_success_in(tx, &job.0, &job.1).await
    }

    async fn store_requests(
        &self,
        tx: &mut Self::Tx,
        requests: &[(Uuid, String)],
    ) -> StoreResult<()> {
        store_requests_in(tx, requests).await
    }

    async fn update_schedules(
        &self,
        tx: &mut Self::Tx,
        schedules: &[(JobKey, Schedule)],
    ) -> StoreResult<()> {
        let keys: Vec<JobKey> = schedules.iter().map(|(k, _)| k.clone()).collect();
        let (tenants, ids) = job_keys(&keys);
        let next: Vec<Option<DateTime<Utc>>> =
            schedules.iter().map(|(_, s)| s.next_run_at()).collect();
        let states: Vec<&str> = schedules.iter().map(|(_, s)| s.state().as_str()).collect();
        sqlx::query(
            "UPDATE jobs j SET next_run_at = u.next_run_at, state = u.state
             FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[])
                  AS u(id, next_run_at, state, tenant)
             WHERE j.tenant = u.tenant AND j.id = u.id",
        )
        .bind(&ids)
        .bind(&next)
        .bind(&states)
        .bind(&tenants)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn add_runs_counted(
        &self,
        tx: &mut Self::Tx,
        counts: &[(JobKey, u32)],
    ) -> StoreResult<()> {
        let keys: Vec<JobKey> = counts.iter().map(|(k, _)| k.clone()).collect();
        let (tenants, ids) = job_keys(&keys);
        let added: Vec<i64> = counts.iter().map(|(_, n)| i64::from(*n)).collect();
        sqlx::query(
            "UPDATE jobs j SET runs_counted = j.runs_counted + u.added
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(tenant, id, added)
             WHERE j.tenant = u.tenant AND j.id = u.id",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&added)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn lock_jobs(
        &self,
        tx: &mut Self::Tx,
        jobs: &[JobKey],
    ) -> StoreResult<HashMap<JobKey, LockedJob>> {
        let (tenants, ids) = job_keys(jobs);
        let rows: Vec<LockedRow> = sqlx::query_as(
            "SELECT j.tenant, j.id, j.state, j.pause_on_failure, j.max_instances, j.overlap,
                    j.buffer_max, j.on_complete, j.target_url, j.target_template, j.flow
             FROM jobs j JOIN UNNEST($1::text[], $2::text[]) AS u(tenant, id)
                  ON j.tenant = u.tenant AND j.id = u.id
             ORDER BY j.tenant, j.id
             FOR UPDATE OF j",
        )
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        rows.into_iter().map(LockedRow::into_keyed).collect()
    }

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
    ) -> StoreResult<Run> {
        sqlx::query_as::<_, RunRow>(&format!(
            "INSERT INTO runs (id, job_id, scheduled_for, cause, status, occurrences, deliver_after,
                               next_attempt_at, finished_at, tenant, host, wait_reason, reason)
             VALUES ($1, $2, now(), 'manual', $3, 1, now(),
                     CASE WHEN $3 = 'pending' AND $6::text IS NULL THEN now() END,
                     CASE WHEN $3 = 'pending' THEN NULL ELSE clock_timestamp() END, $4, $5,
                     $6, $7)
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(id)
        .bind(job.as_str())
        .bind(status.as_str())
        .bind(tenant.as_str())
        .bind(host)
        .bind(wait_reason)
        .bind(reason)
        .fetch_one(&mut **tx)
        .await?
        .into_run()
    }

    async fn lock_run(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<(RunStatus, String)>> {
        let found: Option<(String, String)> = sqlx::query_as(
            "SELECT status, job_id FROM runs
             WHERE tenant = $1 AND id = $2 AND subscription_id IS NULL
             FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        found
            .map(|(status, job)| Ok((run_status(&status)?, job)))
            .transpose()
    }

    async fn redrive_run(&self, tx: &mut Self::Tx, id: Uuid) -> StoreResult<Run> {
        sqlx::query_as::<_, RunRow>(&format!(
            "UPDATE runs SET status = 'pending', next_attempt_at = now(), finished_at = NULL,
                 prior_attempts = attempt_count, reason = NULL, {CALLBACK_FORGOTTEN}
             WHERE id = $1
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .into_run()
    }

    async fn insert_events(
        &self,
        tx: &mut Self::Tx,
        events: &[(String, NewEvent)],
        deliveries: &[NewDelivery],
    ) -> StoreResult<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let c = EventColumns::of(events);
        let d = DeliveryColumns::of(deliveries);
        let sql = format!(
            "WITH ev AS (
                 INSERT INTO events (id, tenant, type, job_id, run_id, data)
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[],
                                      $6::text[])
                 RETURNING id
             ), d AS ({})
             SELECT count(*) FROM d",
            deliveries_of_ev(7)
        );
        let query = sqlx::query_as::<_, (i64,)>(&sql)
            .bind(&c.id)
            .bind(&c.tenant)
            .bind(&c.kind)
            .bind(&c.job_id)
            .bind(&c.run_id)
            .bind(&c.data);
        let (delivered,) = d.bind(query).fetch_one(&mut **tx).await?;
        Ok(count_of(delivered))
    }

    async fn subscription_interests(
        &self,
        tx: Option<&mut Self::Tx>,
        tenant: &str,
    ) -> StoreResult<Vec<SubscriptionInterest>> {
        let query = sqlx::query_as::<_, (String, String, Option<String>, Option<String>)>(
            "SELECT id, types, job_id, host FROM subscriptions WHERE tenant = $1",
        )
        .bind(tenant);
        let rows = match tx {
            Some(tx) => query.fetch_all(&mut **tx).await?,
            None => query.fetch_all(&self.pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(id, types, job, host)| SubscriptionInterest {
                id,
                interest: interest(&types, job),
                host,
            })
            .collect())
    }

    async fn record_fenced(
        &self,
        tx: &mut Self::Tx,
        owner: &str,
        records: &[AttemptRecord],
    ) -> StoreResult<Vec<Uuid>> {
        let columns = AttemptColumns::of(records);
        let sql = format!("{RECORD_FENCED} SELECT run_id FROM inserted");
        plan_by_key(tx).await?;
        let recorded: Vec<(Uuid,)> = columns.query_as(&sql, owner).fetch_all(&mut **tx).await?;
        Ok(recorded.into_iter().map(|(id,)| id).collect())
    }

    /// One statement: the fenced records, the events of those recorded and
    /// their deliveries.
    async fn record_with_events(
        &self,
        owner: &str,
        records: &[AttemptRecord],
        events: &[(String, NewEvent)],
        deliveries: &[NewDelivery],
    ) -> StoreResult<(Vec<Uuid>, usize)> {
        let columns = AttemptColumns::of(records);
        let e = EventColumns::of(events);
        let d = DeliveryColumns::of(deliveries);
        let sql = format!(
            "{RECORD_FENCED}, ev AS (
                 INSERT INTO events (id, tenant, type, job_id, run_id, data)
                 SELECT c.id, c.tenant, c.type, c.job_id, c.run_id, c.data
                 FROM UNNEST($15::uuid[], $16::text[], $17::text[], $18::text[], $19::uuid[],
                             $20::text[]) AS c(id, tenant, type, job_id, run_id, data)
                      JOIN inserted a ON a.run_id = c.run_id
                 RETURNING id
             ), d AS ({})
             SELECT a.run_id, (SELECT count(*) FROM d) FROM inserted a",
            deliveries_of_ev(21)
        );
        let query = columns
            .query_as::<(Uuid, i64)>(&sql, owner)
            .bind(&e.id)
            .bind(&e.tenant)
            .bind(&e.kind)
            .bind(&e.job_id)
            .bind(&e.run_id)
            .bind(&e.data);
        let mut tx = self.pool.begin().await?;
        plan_by_key(&mut tx).await?;
        let recorded = d.bind(query).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let delivered = recorded.first().map_or(0, |(_, n)| count_of(*n));
        Ok((recorded.into_iter().map(|(id, _)| id).collect(), delivered))
    }

    async fn pause_jobs(&self, tx: &mut Self::Tx, jobs: &[JobKey]) -> StoreResult<()> {
        let (tenants, ids) = job_keys(jobs);
        sqlx::query(
            "UPDATE jobs j SET state = 'paused', next_run_at = NULL, updated_at = now()
             FROM UNNEST($1::text[], $2::text[]) AS u(tenant, id)
             WHERE j.tenant = u.tenant AND j.id = u.id",
        )
        .bind(&tenants)
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn heartbeats(
        &self,
        tx: &mut Self::Tx,
    ) -> StoreResult<(Vec<(String, DateTime<Utc>)>, DateTime<Utc>)> {
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut **tx)
            .await?;
        let beats = sqlx::query_as("SELECT id, heartbeat_at FROM instances")
            .fetch_all(&mut **tx)
            .await?;
        Ok((beats, now))
    }

    async fn lock_expired_leases(
        &self,
        tx: &mut Self::Tx,
        limit: u32,
        live: &[String],
        _now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExpiredRun>> {
        sqlx::query_as::<_, ExpiredRow>(
            "SELECT r.id, r.tenant, r.job_id, r.subscription_id, r.attempt_count, r.prior_attempts,
                    j.max_attempts, j.backoff_initial_s, j.backoff_max_s, j.delivery_rules,
                    r.event_id, e.type AS event_type, e.job_id AS event_job_id
             FROM runs r LEFT JOIN jobs j ON j.tenant = r.tenant AND j.id = r.job_id
                  LEFT JOIN events e ON e.id = r.event_id
             WHERE r.status = 'running' AND r.lease_owner IS NOT NULL
               AND (r.lease_until < now() OR NOT (r.lease_owner = ANY($2)))
             ORDER BY r.lease_until
             LIMIT $1
             FOR UPDATE OF r SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .bind(live)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(ExpiredRow::into_expired)
        .collect()
    }

    async fn write_recovered(
        &self,
        tx: &mut Self::Tx,
        runs: &[(Uuid, Outcome)],
        _now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
        let statuses: Vec<&str> = runs.iter().map(|(_, o)| o.run_status().as_str()).collect();
        let delays: Vec<i64> = runs.iter().map(|(_, o)| delay_ms(*o)).collect();
        let done = sqlx::query(&format!(
            "WITH input AS (
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[]) AS u(id, status, delay_ms)
             ), attempt AS (
                 INSERT INTO attempts (run_id, number, started_at, duration_ms, error)
                 SELECT r.id, r.attempt_count, COALESCE(r.attempt_started_at, now()),
                        (EXTRACT(EPOCH FROM (now() - COALESCE(r.attempt_started_at, now()))) * 1000)::int8,
                        '{INTERRUPTED}'
                 FROM runs r JOIN input i ON i.id = r.id
                 ON CONFLICT DO NOTHING
             )
             UPDATE runs r
             SET status = i.status,
                 next_attempt_at = CASE WHEN i.status = 'pending'
                     THEN now() + i.delay_ms * interval '1 millisecond' END,
                 finished_at = CASE WHEN i.status = 'pending' THEN NULL ELSE clock_timestamp() END,
                 lease_owner = NULL, lease_until = NULL
             FROM input i
             WHERE r.id = i.id"
        ))
        .bind(&ids)
        .bind(&statuses)
        .bind(&delays)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_due_in(
        &self,
        lookahead: Duration,
        held_back: &[String],
    ) -> StoreResult<Option<Duration>> {
        // NULL when no job is scheduled (GREATEST would turn that into 0).
        // The earliest jobs only: one further on is taken at its fire time
        // at the latest, as without a lookahead.
        let seconds: Option<f64> = sqlx::query_scalar(concat!(
            "SELECT EXTRACT(EPOCH FROM (min(CASE WHEN ",
            not_made_ahead!("j.next_run_at + make_interval(secs => j.every_s)"),
            " THEN next_run_at ELSE next_run_at - make_interval(secs => $2) END)
                    - clock_timestamp()))::float8
             FROM (SELECT tenant, id, next_run_at, trigger_type, end_at, every_s, max_runs, runs_counted
                   FROM jobs
                   WHERE next_run_at IS NOT NULL AND NOT (tenant = ANY($1))
                   ORDER BY next_run_at LIMIT $3) j"
        ))
        .bind(held_back)
        .bind(lookahead.as_secs_f64())
        .bind(NEXT_DUE_LOOKED_AT)
        .fetch_one(&self.pool)
        .await?;
        Ok(seconds.map(non_negative))
    }

    async fn trim_run_history(
        &self,
        keep: u32,
        batch: u32,
        finished_within: Option<Duration>,
    ) -> StoreResult<u64> {
        // The candidates come from the finished-runs index (a recent range,
        // or all of it on a first pass); each is trimmed through its history
        // index, newest first.
        let candidates = match finished_within {
            Some(_) => {
                "SELECT DISTINCT tenant, job_id FROM runs
                 WHERE finished_at > now() - make_interval(secs => $3)"
            }
            None => {
                "SELECT DISTINCT tenant, job_id FROM runs
                 WHERE finished_at IS NOT NULL AND $3::float8 IS NULL"
            }
        };
        let done = sqlx::query(&format!(
            "WITH candidates AS ({candidates}),
             doomed AS (
                 SELECT r.id FROM candidates c CROSS JOIN LATERAL (
                     SELECT id FROM runs
                     WHERE tenant = c.tenant AND job_id = c.job_id AND finished_at IS NOT NULL
                     ORDER BY created_at DESC, id DESC
                     OFFSET $1 LIMIT $2
                 ) r
                 LIMIT $2
             )
             DELETE FROM runs WHERE id IN (SELECT id FROM doomed)"
        ))
        .bind(i64::from(keep))
        .bind(i64::from(batch))
        .bind(finished_within.map(|d| d.as_secs_f64()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn claim_runs(
        &self,
        key: &SealingKey,
        owner: &str,
        limit: u32,
        lease_margin: Duration,
        busy: &Busy,
    ) -> StoreResult<Vec<ClaimedRun>> {
        // One statement, one short transaction, committed before any request.
        let rows = sqlx::query_as::<_, PgClaimedRow>(
            "WITH due AS (
                 SELECT id FROM runs
                 WHERE status = 'pending' AND next_attempt_at <= now()
                   AND (host IS NULL OR NOT (host = ANY($5)))
                   AND NOT (tenant = ANY($6))
                 ORDER BY next_attempt_at
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED
             ), claimed AS (
                 UPDATE runs r
                 SET status = 'running', lease_owner = $1, attempt_count = r.attempt_count + 1,
                     attempt_started_at = now(), next_attempt_at = NULL,
                     lease_until = now() + make_interval(secs => $3 + COALESCE(
                         (SELECT j.timeout_s FROM jobs j WHERE j.tenant = r.tenant AND j.id = r.job_id),
                         $4))
                 FROM due
                 WHERE r.id = due.id
                 RETURNING r.id, r.tenant, r.job_id, r.subscription_id, r.event_id,
                           r.scheduled_for, r.attempt_count, r.prior_attempts, r.request,
                           r.cause, r.flow_key, r.parent_run_id
             )
             SELECT c.id, c.tenant, c.job_id, c.subscription_id, c.scheduled_for, c.attempt_count,
                    c.prior_attempts, c.request, c.cause, c.flow_key, c.parent_run_id, j.target_url, j.target_method, j.target_headers,
                    j.target_body, j.target_secrets, j.timeout_s, j.target_template, j.max_attempts,
                    j.backoff_initial_s, j.backoff_max_s, j.delivery_rules, j.overlap, j.on_complete,
                    EXISTS (SELECT 1 FROM job_requires g
                            WHERE g.tenant = c.tenant AND g.required_id = c.job_id) AS required,
                    s.target_url AS subscription_url, s.target_secrets AS subscription_secrets,
                    s.format AS subscription_format,
                    COALESCE(j.secret, s.secret) AS secret, j.previous_secret,
                    j.previous_secret_expires_at,
                    e.id AS event_id, e.type AS event_type, e.at AS event_at,
                    e.job_id AS event_job_id, e.run_id AS event_run_id, e.data AS event_data,
                    now() AS db_now
             FROM claimed c
             LEFT JOIN jobs j ON j.tenant = c.tenant AND j.id = c.job_id
             LEFT JOIN subscriptions s ON s.tenant = c.tenant AND s.id = c.subscription_id
             LEFT JOIN events e ON e.id = c.event_id",
        )
        .bind(owner)
        .bind(i64::from(limit))
        .bind(lease_margin.as_secs_f64())
        .bind(f64::from(crate::domain::target::DEFAULT_TIMEOUT_S))
        .bind(&busy.hosts)
        .bind(&busy.tenants)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| row.run.into_parts(row.db_now)?.into_claimed(key))
            .collect()
    }

    async fn renew_lease(
        &self,
        owner: &str,
        run: Uuid,
        attempt: u32,
        lease_margin: Duration,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE runs r
             SET lease_until = now() + make_interval(secs => $4 + COALESCE(
                 (SELECT j.timeout_s FROM jobs j WHERE j.tenant = r.tenant AND j.id = r.job_id),
                 $5))
             WHERE r.id = $1 AND r.status = 'running' AND r.lease_owner = $2
               AND r.attempt_count = $3",
        )
        .bind(run)
        .bind(owner)
        .bind(attempt as i32)
        .bind(lease_margin.as_secs_f64())
        .bind(f64::from(crate::domain::target::DEFAULT_TIMEOUT_S))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_runs(
        &self,
        owner: &str,
        runs: &[(Uuid, u32)],
        after: Duration,
    ) -> StoreResult<u64> {
        // Fenced as RECORD_FENCED is, each run found by its key.
        let ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
        let numbers: Vec<i32> = runs.iter().map(|(_, n)| *n as i32).collect();
        let done = sqlx::query(
            "UPDATE runs r
             SET status = 'pending', attempt_count = r.attempt_count - 1,
                 next_attempt_at = now() + make_interval(secs => $4),
                 lease_owner = NULL, lease_until = NULL, attempt_started_at = NULL
             FROM UNNEST($2::uuid[], $3::int4[]) AS u(id, number)
             WHERE r.id = u.id
               AND (r.status = 'running' AND r.lease_owner = $1
                    AND r.attempt_count = u.number) IS TRUE",
        )
        // Planned at each execution, as the count of runs in flight is.
        .persistent(false)
        .bind(owner)
        .bind(&ids)
        .bind(&numbers)
        .bind(after.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn register_instance(&self, id: &str, version: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO instances (id, version) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), version = EXCLUDED.version",
        )
        .bind(id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn heartbeat(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE instances SET heartbeat_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_dead_instances(&self, older_than: Duration) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM instances i
             WHERE i.heartbeat_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM runs r
                               WHERE r.status = 'running' AND r.lease_owner = i.id)",
        )
        .bind(older_than.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_attempt_in(&self) -> StoreResult<Option<Duration>> {
        // NULL when nothing is pending.
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM (min(next_attempt_at) - clock_timestamp()))::float8
             FROM runs WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(seconds.map(non_negative))
    }

    async fn latest_event_id(&self, tenant: &Tenant) -> StoreResult<Option<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM events
             WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) AND tenant = $1
             ORDER BY txid DESC, seq DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_events(&self, tenant: &Tenant, filter: &EventFilter) -> StoreResult<Vec<Event>> {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, type, at, job_id, run_id, data FROM events
             WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) AND tenant = ",
        );
        query.push_bind(tenant.as_str().to_string());
        if let Some(after) = filter.after {
            let position: Option<(i64,)> =
                sqlx::query_as("SELECT seq FROM events WHERE tenant = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(after)
                    .fetch_optional(&self.pool)
                    .await?;
            if position.is_none() {
                return Err(StoreError::NotFound);
            }
            let past = if filter.newest_first { "<" } else { ">" };
            query
                .push(format!(
                    " AND (txid, seq) {past} (SELECT txid, seq FROM events WHERE id = "
                ))
                .push_bind(after)
                .push(")");
        }
        if !filter.types.is_empty() {
            let types: Vec<&str> = filter.types.iter().map(|t| t.as_str()).collect();
            query.push(" AND type = ANY(").push_bind(types).push(")");
        }
        if let Some(job_id) = &filter.job_id {
            query
                .push(" AND job_id = ")
                .push_bind(job_id.as_str().to_string());
        }
        query
            .push(if filter.newest_first {
                " ORDER BY txid DESC, seq DESC LIMIT "
            } else {
                " ORDER BY txid, seq LIMIT "
            })
            .push_bind(i64::from(filter.limit));
        query
            .build_query_as::<(Uuid, String, DateTime<Utc>, String, Option<Uuid>, String)>()
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(id, kind, at, job_id, run_id, data)| {
                event_of(id, &kind, at, job_id, run_id, &data)
            })
            .collect()
    }

    fn spawn_listener(
        &self,
        wakeups: Arc<Wakeups>,
        subscriptions: Arc<SubscriptionCache>,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let options = self
            .pool
            .connect_options()
            .as_ref()
            .clone()
            .application_name(LISTENER_NAME);
        Some(tokio::spawn(listen(
            options,
            wakeups,
            subscriptions,
            shutdown,
        )))
    }
}

/// Forwards `NOTIFY`s to this process's wake-ups, on a connection of its
/// own, reconnecting after any failure. Notifications are hints: after a
/// (re)connect both loops are woken, since some may have been missed.
async fn listen(
    options: sqlx::postgres::PgConnectOptions,
    wakeups: Arc<Wakeups>,
    subscriptions: Arc<SubscriptionCache>,
    shutdown: CancellationToken,
) {
    let mut backoff = crate::domain::retry::Backoff::new();
    while !shutdown.is_cancelled() {
        let connected = async {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options.clone());
            let mut listener = PgListener::connect_with(&pool).await?;
            listener
                .listen_all([
                    JOBS_CHANNEL,
                    RUNS_CHANNEL,
                    EVENTS_CHANNEL,
                    SUBSCRIPTIONS_CHANNEL,
                    CANCELLED_CHANNEL,
                ])
                .await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "LISTEN connection failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            },
        };
        tracing::debug!("listening for other instances' notifications");
        backoff.reset();
        subscriptions.clear(None);
        wakeups.jobs_changed();
        wakeups.runs_changed();
        wakeups.events_changed();
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(n)) if n.channel() == JOBS_CHANNEL => wakeups.jobs_changed(),
                Ok(Some(n)) if n.channel() == EVENTS_CHANNEL => wakeups.events_changed(),
                Ok(Some(n)) if n.channel() == SUBSCRIPTIONS_CHANNEL => subscriptions.clear(None),
                Ok(Some(n)) if n.channel() == CANCELLED_CHANNEL => {
                    let runs: Vec<Uuid> = n
                        .payload()
                        .split(',')
                        .filter_map(|id| id.parse().ok())
                        .collect();
                    wakeups.aborts.cancelled(&runs);
                }
                Ok(Some(_)) => wakeups.runs_changed(),
                Ok(None) => {
                    // Reconnected by sqlx; what was sent meanwhile is lost.
                    tracing::warn!("LISTEN connection lost; reconnected");
                    subscriptions.clear(None);
                    wakeups.jobs_changed();
                    wakeups.runs_changed();
                    wakeups.events_changed();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}
