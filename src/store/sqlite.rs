//! The SQLite store: the embedded default. One process is the supported
//! deployment; writers are serialised by `BEGIN IMMEDIATE`, so a second
//! process on the same file still never double-fires.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::dialect::{
    Channel, Dialect, DueRow, ExpiredRun, FlowCounts, FlowState, HeldRun, JobKey, LockedJob,
    NewBackfillRun, NewDelivery, NewRun, Settle, not_made_ahead,
};
use super::portable::portable_statements;
use super::rows::{self, At, CALLBACK_FORGOTTEN, RUN_COLUMNS, RowId};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite dialect: its pool.
pub struct SqliteDialect {
    pool: SqlitePool,
}

/// The store on SQLite.
pub type SqliteStore = SqlStore<SqliteDialect>;

impl SqlStore<SqliteDialect> {
    pub async fn connect(url: &str, wakeups: Arc<Wakeups>, key: SealingKey) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        // Readable by its owner only, made before SQLite makes it with the
        // process's umask (its journal files take the same mode). Best
        // effort: where it cannot, opening the database says why.
        if !(url.contains(":memory:") || url.contains("mode=memory")) {
            let _ = super::create_private(options.get_filename());
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        seal_what_is_plain(&mut tx, &key).await?;
        tx.commit().await?;
        Ok(SqlStore::new(SqliteDialect { pool }, wakeups, key))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.db.pool
    }
}

/// Instants are stored as integer microseconds since the epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// An instant as stored, read back ([`At`] for integer microseconds).
fn instant(us: i64) -> DateTime<Utc> {
    us.at()
}

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
    LEFT JOIN runs lr ON lr.id = (
        SELECT r.id FROM runs r WHERE r.tenant = j.tenant AND r.job_id = j.id
        ORDER BY r.created_at DESC, r.id DESC LIMIT 1
    )",
            $tail
        )
    };
}

/// The vocabulary [`portable_statements!`] speaks here.
type Db = Sqlite;
type AtColumn = i64;
use micros as at;
fn row_id(id: Uuid) -> String {
    id.to_string()
}
type IdColumn = String;
const JOBS: &str = job_query!("");
const POSITION: &str = "instr";
/// The transaction holds the database's write lock already.
const LOCK_JOBS: &str = "";
/// Locks the run a callback reports on (§11.7), and the watchdog's
/// overdue runs, passing over those another transaction holds.
const LOCK_RUN: &str = "";
const LOCK_RUNS_SKIP: &str = "";
/// A label's value, around its key (§11.9): a key holds no `"`.
const LABEL: (&str, &str) = ("json_extract(j.labels, '$.\"' || ", " || '\"')");
portable_statements!(SqliteDialect);

/// The rows as SQLite answers them: instants in integer microseconds, ids
/// as text, integers as `i64`.
type JobRow = rows::JobRow<i64, String, i64>;
type DueJobRow = rows::DueJobRow<i64>;
type RunRow = rows::RunRow<i64, String, i64>;
type AttemptRow = rows::AttemptRow<i64, i64>;
type ClaimedRow = rows::ClaimedRow<i64, String, i64>;
type ExpiredRow = rows::ExpiredRow<String, i64>;
type SecretRow = rows::SecretRow<i64>;
use rows::LockedRow;
type TokenRow = rows::TokenRow<i64>;
type SubscriptionRow = rows::SubscriptionRow<i64>;
type DeliveryRow = rows::DeliveryRow<i64, String, i64>;

/// Writes a job's definition columns (`?2` to `?24`) for an insert or an
/// update whose statement names them in this order.
fn bind_definition<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    d: &StoredDefinition,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let t = &d.trigger;
    query
        .bind(d.name.clone())
        .bind(t.trigger_type.clone())
        .bind(t.cron_expr.clone())
        .bind(t.cron_timezone.clone())
        .bind(t.every_s)
        .bind(t.run_at.map(micros))
        .bind(t.start_at.map(micros))
        .bind(t.end_at.map(micros))
        .bind(t.jitter_s)
        .bind(d.target.url.clone())
        .bind(d.target.method.clone())
        .bind(d.target.headers.clone())
        .bind(d.target.body.clone())
        .bind(d.target.secrets.clone())
        .bind(d.target.timeout_s)
        .bind(d.misfire_grace_s)
        .bind(d.coalesce)
        .bind(d.catchup_max)
        .bind(d.max_instances)
        .bind(d.retry.max_attempts)
        .bind(d.retry.backoff_initial_s)
        .bind(d.retry.backoff_max_s)
        .bind(d.metadata.clone())
}

async fn fetch_job(
    conn: &mut SqliteConnection,
    key: &SealingKey,
    tenant: &Tenant,
    id: &JobId,
) -> StoreResult<Option<Job>> {
    sqlx::query_as::<_, JobRow>(job_query!(" WHERE j.tenant = ?1 AND j.id = ?2"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
        .map(|row| row.into_job(key, tenant.as_str()))
        .transpose()
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Inserts the deliveries of `written` events, each where its
/// subscription still exists; answers how many.
async fn insert_deliveries(
    conn: &mut SqliteConnection,
    deliveries: &[NewDelivery],
    written: &[Uuid],
    now: i64,
) -> StoreResult<usize> {
    let mut inserted = 0;
    for d in deliveries.iter().filter(|d| written.contains(&d.event_id)) {
        inserted += sqlx::query(
            "INSERT INTO runs (id, tenant, subscription_id, event_id, scheduled_for, cause, status,
                               occurrences, deliver_after, next_attempt_at, created_at, host)
             SELECT ?1, ?2, ?3, ?4, ?5, 'event', 'pending', 1, ?5, ?5, ?5, ?6
             WHERE EXISTS (SELECT 1 FROM subscriptions WHERE tenant = ?2 AND id = ?3)",
        )
        .bind(d.id.to_string())
        .bind(&d.tenant)
        .bind(&d.subscription_id)
        .bind(d.event_id.to_string())
        .bind(now)
        .bind(&d.host)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
}

async fn insert_event(
    conn: &mut SqliteConnection,
    tenant: &str,
    event: &NewEvent,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (id, tenant, type, at, job_id, run_id, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(event.id.to_string())
    .bind(tenant)
    .bind(event.kind.as_str())
    .bind(now)
    .bind(&event.job_id)
    .bind(event.run_id.map(|r| r.to_string()))
    .bind(event.data.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Dialect for SqliteDialect {
    type Tx = sqlx::Transaction<'static, Sqlite>;

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// BEGIN IMMEDIATE takes the write lock up front: the reads and writes
    /// of the transaction see no other writer in between, and another
    /// process on the same file waits, then sees what this one committed.
    async fn begin(&self) -> StoreResult<Self::Tx> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        Ok(tx.commit().await?)
    }

    /// One process per file: the in-process wake-ups are all there is.
    async fn notify(&self, _tx: &mut Self::Tx, _channel: Channel) -> StoreResult<()> {
        Ok(())
    }

    async fn notify_now(&self, _channel: Channel) -> StoreResult<()> {
        Ok(())
    }

    async fn notify_cancelled(&self, _tx: &mut Self::Tx, _runs: &[Uuid]) -> StoreResult<()> {
        Ok(())
    }

    fn events_committed(&self, _deliveries: usize) {}

    async fn read_job(
        &self,
        tx: &mut Self::Tx,
        key: &SealingKey,
        tenant: &Tenant,
        id: &JobId,
        _lock: bool,
    ) -> StoreResult<Option<Job>> {
        fetch_job(tx, key, tenant, id).await
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
        stored: &StoredDefinition,
        schedule: Schedule,
        sealed_secret: &str,
    ) -> StoreResult<bool> {
        let query = sqlx::query(
            "INSERT INTO jobs (id, name, trigger_type, cron_expr, cron_timezone, every_s,
                 run_at, start_at, end_at, jitter_s, target_url, target_method,
                 target_headers, target_body, target_secrets, timeout_s, misfire_grace_s,
                 coalesce_runs, catchup_max, max_instances, max_attempts,
                 backoff_initial_s, backoff_max_s, metadata,
                 state, next_run_at, secret, created_at, updated_at, tenant,
                 pause_on_failure, overlap, buffer_max, max_runs, on_complete,
                 target_template, flow, flow_key, trigger_more, delivery_rules, alerts, labels)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                     ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28,
                     ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38, ?39, ?40, ?41)",
        )
        .bind(id.as_str());
        let done = bind_definition(query, stored)
            .bind(schedule.state().as_str())
            .bind(schedule.next_run_at().map(micros))
            .bind(sealed_secret)
            .bind(micros(Utc::now()))
            .bind(tenant.as_str())
            .bind(stored.pause_on_failure)
            .bind(stored.overlap.clone())
            .bind(stored.buffer_max)
            .bind(stored.max_runs)
            .bind(stored.on_complete.clone())
            .bind(stored.target.template)
            .bind(stored.flow.clone())
            .bind(stored.flow_key.clone())
            .bind(stored.trigger.more.clone())
            .bind(stored.retry.rules.clone())
            .bind(stored.alerts.clone())
            .bind(stored.labels.clone())
            .execute(&mut **tx)
            .await;
        match done {
            Err(e) if is_unique_violation(&e) => Ok(false),
            other => other.map(|_| true).map_err(Into::into),
        }
    }

    async fn update_job(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        id: &JobId,
        stored: &StoredDefinition,
        to: &super::dialect::ScheduleUpdate<'_>,
    ) -> StoreResult<()> {
        let (schedule, restart_count, pause) = (to.schedule, to.restart_count, to.pause);
        let query = sqlx::query(
            "UPDATE jobs SET name = ?2, trigger_type = ?3, cron_expr = ?4,
                 cron_timezone = ?5, every_s = ?6, run_at = ?7, start_at = ?8,
                 end_at = ?9, jitter_s = ?10, target_url = ?11, target_method = ?12,
                 target_headers = ?13, target_body = ?14, target_secrets = ?15,
                 timeout_s = ?16, misfire_grace_s = ?17, coalesce_runs = ?18,
                 catchup_max = ?19, max_instances = ?20, max_attempts = ?21,
                 backoff_initial_s = ?22, backoff_max_s = ?23, metadata = ?24,
                 state = COALESCE(?25, state),
                 next_run_at = CASE WHEN ?25 IS NULL THEN next_run_at ELSE ?26 END,
                 updated_at = ?27, pause_on_failure = ?29, overlap = ?30, buffer_max = ?31,
                 max_runs = ?32, on_complete = ?33,
                 runs_counted = CASE WHEN ?34 THEN 0 ELSE runs_counted END,
                 target_template = ?35, flow = ?36, flow_key = ?37, trigger_more = ?38,
                 delivery_rules = ?39, alerts = ?40, labels = ?41,
                 paused_until = CASE WHEN ?25 IS NULL THEN paused_until ELSE ?42 END,
                 pause_reason = CASE WHEN ?25 IS NULL THEN pause_reason ELSE ?43 END
             WHERE tenant = ?28 AND id = ?1",
        )
        .bind(id.as_str());
        bind_definition(query, stored)
            .bind(schedule.map(|s| s.state().as_str()))
            .bind(schedule.and_then(Schedule::next_run_at).map(micros))
            .bind(micros(Utc::now()))
            .bind(tenant.as_str())
            .bind(stored.pause_on_failure)
            .bind(stored.overlap.clone())
            .bind(stored.buffer_max)
            .bind(stored.max_runs)
            .bind(stored.on_complete.clone())
            .bind(restart_count)
            .bind(stored.target.template)
            .bind(stored.flow.clone())
            .bind(stored.flow_key.clone())
            .bind(stored.trigger.more.clone())
            .bind(stored.retry.rules.clone())
            .bind(stored.alerts.clone())
            .bind(stored.labels.clone())
            .bind(pause.until.map(micros))
            .bind(pause.reason.clone())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn lock_calendars(&self, _: &mut Self::Tx, _: &Tenant, _: bool) -> StoreResult<()> {
        Ok(())
    }

    /// Writers take turns already (`BEGIN IMMEDIATE`).
    async fn lock_applies(&self, _: &mut Self::Tx, _: &Tenant) -> StoreResult<()> {
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

    async fn lock_watchdog(&self, _: &mut Self::Tx) -> StoreResult<Option<DateTime<Utc>>> {
        // One process holds the database; its transaction is the lock.
        Ok(Some(Utc::now()))
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
        let done = sqlx::query(
            "DELETE FROM runs
             WHERE tenant = ?1 AND job_id IN (SELECT value FROM json_each(?2)) AND status IN ('pending', 'awaiting') AND cause = 'schedule'
               AND attempt_count = 0 AND scheduled_for > ?3",
        )
        .bind(tenant.as_str())
        .bind(serde_json::to_string(ids).unwrap_or_default())
        .bind(micros(Utc::now()))
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
        let done = sqlx::query("DELETE FROM jobs WHERE tenant = ?1 AND id = ?2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_idempotency(
        &self,
        tx: &mut Self::Tx,
        tenant: &Tenant,
        idempotency: &Idempotency,
        resource_id: &str,
    ) -> StoreResult<bool> {
        let now = micros(Utc::now());
        let stale = now - duration_micros(crate::domain::idempotency::WINDOW);
        let recorded = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id, created_at, tenant)
             VALUES (?1, ?2, ?3, ?4, ?5, ?7)
             ON CONFLICT (tenant, scope, key) DO UPDATE
                 SET fingerprint = excluded.fingerprint, resource_id = excluded.resource_id,
                     created_at = excluded.created_at
                 WHERE idempotency_keys.created_at < ?6",
        )
        .bind(idempotency.scope)
        .bind(&idempotency.key)
        .bind(&idempotency.fingerprint)
        .bind(resource_id)
        .bind(now)
        .bind(stale)
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
        let now = crate::domain::instant::truncate(Utc::now());
        let rows = sqlx::query_as::<_, DueJobRow>(concat!(
            "SELECT tenant, id, trigger_type, cron_expr, cron_timezone, every_s, run_at, start_at,
                    end_at, jitter_s, trigger_more, next_run_at, misfire_grace_s, coalesce_runs, catchup_max,
                    max_instances, overlap, buffer_max, max_runs, runs_counted, on_complete,
                    target_url, target_template, flow,
                    EXISTS (SELECT 1 FROM job_requires g
                            WHERE g.tenant = j.tenant AND g.job_id = j.id) AS gated
             FROM jobs j
             WHERE next_run_at IS NOT NULL AND next_run_at <= ?1 + ?4
               AND tenant NOT IN (SELECT value FROM json_each(?3))
               AND (next_run_at <= ?1 OR NOT ",
            not_made_ahead!("j.next_run_at + j.every_s * 1000000"),
            ")
             ORDER BY next_run_at
             LIMIT ?2"
        ))
        .bind(micros(now))
        .bind(i64::from(limit))
        .bind(serde_json::to_string(held_back).unwrap_or_else(|_| "[]".into()))
        .bind(duration_micros(lookahead))
        .fetch_all(&mut **tx)
        .await?;
        let due = rows.into_iter().map(DueRow::from).collect();
        Ok((due, now))
    }

    async fn count_in_flight(
        &self,
        tx: &mut Self::Tx,
        jobs: &[JobKey],
    ) -> StoreResult<HashMap<JobKey, InFlight>> {
        let mut counts = HashMap::with_capacity(jobs.len());
        for (tenant, job) in jobs {
            let (admitted, waiting): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE wait_reason IS NOT 'overlap'),
                        count(*) FILTER (WHERE wait_reason IS 'overlap')
                 FROM runs
                 WHERE tenant = ?1 AND job_id = ?2 AND status IN ('pending', 'running')
                   AND cause <> 'backfill'",
            )
            .bind(tenant)
            .bind(job)
            .fetch_one(&mut **tx)
            .await?;
            let in_flight = InFlight {
                admitted: count(admitted),
                waiting: count(waiting),
            };
            counts.insert((tenant.clone(), job.clone()), in_flight);
        }
        Ok(counts)
    }

    async fn skip_waiting(
        &self,
        tx: &mut Self::Tx,
        (tenant, job): &JobKey,
        keep: u32,
        reason: &str,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'skipped', wait_reason = NULL, reason = ?3, finished_at = ?4
             WHERE id IN (SELECT id FROM runs
                          WHERE tenant = ?1 AND job_id = ?2 AND wait_reason = 'overlap'
                            AND cause <> 'backfill'
                            AND status = 'pending'
                          ORDER BY scheduled_for, id LIMIT -1 OFFSET ?5)",
        )
        .bind(tenant)
        .bind(job)
        .bind(reason)
        .bind(micros(Utc::now()))
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
        let now = micros(Utc::now());
        let oldest: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs
             WHERE tenant = ?1 AND job_id = ?2 AND status IN ('pending', 'running')
               AND wait_reason IS NOT 'overlap' AND cause <> 'backfill'
             ORDER BY scheduled_for, id LIMIT ?3",
        )
        .bind(tenant)
        .bind(job)
        .bind(i64::from(n))
        .fetch_all(&mut **tx)
        .await?;
        for id in &oldest {
            sqlx::query(
                "INSERT INTO attempts (run_id, number, started_at, duration_ms, error)
                 SELECT id, attempt_count, attempt_started_at,
                        max(?2 - attempt_started_at, 0) / 1000, ?3
                 FROM runs
                 WHERE id = ?1 AND status = 'running' AND attempt_started_at IS NOT NULL
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(now)
            .bind(crate::domain::run::CANCELLED)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE runs SET status = 'cancelled', reason = ?2, next_attempt_at = NULL,
                     lease_owner = NULL, lease_until = NULL, finished_at = ?3
                 WHERE id = ?1",
            )
            .bind(id)
            .bind(crate::domain::event::REPLACED)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        oldest
            .iter()
            .map(|id| {
                Uuid::parse_str(id).map_err(|e| StoreError::Corrupt(format!("run id {id:?}: {e}")))
            })
            .collect()
    }

    async fn release_waiting(
        &self,
        tx: &mut Self::Tx,
        (tenant, job): &JobKey,
        n: u32,
    ) -> StoreResult<u64> {
        let now = micros(Utc::now());
        let done = sqlx::query(
            "UPDATE runs
             SET wait_reason = CASE WHEN flow_key IS NULL THEN NULL ELSE 'flow:' || flow_key END,
                 next_attempt_at = CASE WHEN flow_key IS NULL THEN max(deliver_after, ?4) END
             WHERE id IN (SELECT id FROM runs
                          WHERE tenant = ?1 AND job_id = ?2 AND wait_reason = 'overlap'
                            AND cause <> 'backfill'
                            AND status = 'pending'
                          ORDER BY scheduled_for, id LIMIT ?3)",
        )
        .bind(tenant)
        .bind(job)
        .bind(i64::from(n))
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    async fn insert_runs(
        &self,
        tx: &mut Self::Tx,
        runs: &[NewRun],
        deliveries: &[NewDelivery],
    ) -> StoreResult<(Vec<RunStatus>, usize)> {
        let mut statuses = Vec::new();
        let mut written = Vec::new();
        for run in runs {
            let due = run.status == RunStatus::Pending && run.wait_reason.is_none();
            // A monitor's run awaiting its ping has not ended either.
            let ended = !run.status.in_flight();
            let created = micros(Utc::now());
            let inserted = sqlx::query(
                "INSERT INTO runs (id, job_id, scheduled_for, cause, status, occurrences,
                                   deliver_after, next_attempt_at, created_at, finished_at,
                                   tenant, host, wait_reason, reason, gate_check_at)
                 VALUES (?1, ?2, ?3, 'schedule', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT DO NOTHING",
            )
            .bind(run.id.to_string())
            .bind(&run.job_id)
            .bind(micros(run.scheduled_for))
            .bind(run.status.as_str())
            .bind(i64::try_from(run.occurrences).unwrap_or(i64::MAX))
            .bind(micros(run.deliver_after))
            .bind(due.then(|| micros(run.deliver_after)))
            .bind(created)
            .bind(ended.then_some(created))
            .bind(&run.tenant)
            .bind(&run.host)
            .bind(run.wait_reason.as_deref())
            .bind(run.reason)
            .bind(run.gate_check_at.map(micros))
            .execute(&mut **tx)
            .await?;
            if inserted.rows_affected() > 0 {
                insert_event(tx, &run.tenant, &run.created, created).await?;
                statuses.push(run.status);
                written.push(run.created.id);
            }
        }
        let delivered = insert_deliveries(tx, deliveries, &written, micros(Utc::now())).await?;
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
        // The transaction holds SQLite's write lock: the row is as good
        // as locked either way.
        let _ = lock;
        let row: Option<rows::FlowRow<i64>> = sqlx::query_as(
            "SELECT key, max_in_flight, rate_limit, rate_period_s, defined_by, paused, tokens,
                    tokens_at, next_admit_at
             FROM flows WHERE tenant = ?1 AND key = ?2",
        )
        .bind(tenant)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(row.map(|r| (r.into(), Utc::now())))
    }

    async fn due_flows(&self, tx: &mut Self::Tx, limit: u32) -> StoreResult<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT tenant, key FROM flows
             WHERE next_admit_at <= ?1
             ORDER BY next_admit_at LIMIT ?2",
        )
        .bind(micros(Utc::now()))
        .bind(i64::from(limit))
        .fetch_all(&mut **tx)
        .await?)
    }

    async fn next_flow_admit_in(&self) -> StoreResult<Option<Duration>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT min(next_admit_at) FROM flows WHERE next_admit_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next
            .map(|at| Duration::from_micros(u64::try_from(at - micros(Utc::now())).unwrap_or(0))))
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
        for ((tenant, id), schedule) in schedules {
            sqlx::query(
                "UPDATE jobs SET next_run_at = ?2, state = ?3 WHERE tenant = ?4 AND id = ?1",
            )
            .bind(id)
            .bind(schedule.next_run_at().map(micros))
            .bind(schedule.state().as_str())
            .bind(tenant)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn add_runs_counted(
        &self,
        tx: &mut Self::Tx,
        counts: &[(JobKey, u32)],
    ) -> StoreResult<()> {
        for ((tenant, id), n) in counts {
            sqlx::query(
                "UPDATE jobs SET runs_counted = runs_counted + ?3 WHERE tenant = ?1 AND id = ?2",
            )
            .bind(tenant)
            .bind(id)
            .bind(i64::from(*n))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn lock_jobs(
        &self,
        tx: &mut Self::Tx,
        jobs: &[JobKey],
    ) -> StoreResult<HashMap<JobKey, LockedJob>> {
        // The transaction holds SQLite's write lock: the rows are as good
        // as locked.
        let mut locked = HashMap::with_capacity(jobs.len());
        for (tenant, id) in jobs {
            let row: Option<LockedRow> = sqlx::query_as(
                "SELECT tenant, id, state, pause_on_failure, max_instances, overlap, buffer_max,
                        on_complete, target_url, target_template, flow
                 FROM jobs WHERE tenant = ?1 AND id = ?2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(row) = row {
                let (key, job) = row.into_keyed()?;
                locked.insert(key, job);
            }
        }
        Ok(locked)
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
        let now = micros(Utc::now());
        let pending = status == RunStatus::Pending;
        let due = pending && wait_reason.is_none();
        sqlx::query_as::<_, RunRow>(&format!(
            "INSERT INTO runs (id, job_id, scheduled_for, cause, status, occurrences, deliver_after,
                               next_attempt_at, created_at, finished_at, tenant, host,
                               wait_reason, reason)
             VALUES (?1, ?2, ?3, 'manual', ?4, 1, ?3, ?5, ?3, ?6, ?7, ?8, ?9, ?10)
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(job.as_str())
        .bind(now)
        .bind(status.as_str())
        .bind(due.then_some(now))
        .bind((!pending).then_some(now))
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
             WHERE tenant = ?1 AND id = ?2 AND subscription_id IS NULL",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        found
            .map(|(status, job)| Ok((run_status(&status)?, job)))
            .transpose()
    }

    async fn redrive_run(&self, tx: &mut Self::Tx, id: Uuid) -> StoreResult<Run> {
        sqlx::query_as::<_, RunRow>(&format!(
            "UPDATE runs SET status = 'pending', next_attempt_at = ?2, finished_at = NULL,
                 prior_attempts = attempt_count, reason = NULL, {CALLBACK_FORGOTTEN}
             WHERE id = ?1
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(micros(Utc::now()))
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
        let now = micros(Utc::now());
        for (tenant, event) in events {
            insert_event(tx, tenant, event, now).await?;
        }
        let written: Vec<Uuid> = events.iter().map(|(_, e)| e.id).collect();
        insert_deliveries(tx, deliveries, &written, now).await
    }

    async fn subscription_interests(
        &self,
        tx: Option<&mut Self::Tx>,
        tenant: &str,
    ) -> StoreResult<Vec<SubscriptionInterest>> {
        let query = sqlx::query_as::<_, (String, String, Option<String>, Option<String>)>(
            "SELECT id, types, job_id, host FROM subscriptions WHERE tenant = ?1",
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
        let mut recorded = Vec::new();
        for r in records {
            let now = micros(Utc::now());
            let pending = matches!(r.outcome, Outcome::Retry { .. });
            let accepted = matches!(r.outcome, Outcome::Accepted { .. });
            let after = |ms: i64| now + ms.saturating_mul(1000);
            // Accepted by a callback job's receiver (§11.7): running until
            // its completion, its deadline or a missed heartbeat.
            let deadline = accepted.then(|| after(delay_ms(r.outcome)));
            let heartbeat = heartbeat_ms(r.outcome);
            let heartbeat_due = heartbeat.map(after);
            let watch = match (deadline, heartbeat_due) {
                (Some(d), Some(h)) => Some(d.min(h)),
                (d, h) => d.or(h),
            };
            let updated = sqlx::query(
                "UPDATE runs
                 SET status = ?4, next_attempt_at = ?5, finished_at = ?6,
                     lease_owner = NULL, lease_until = NULL, reason = COALESCE(?7, reason),
                     accepted_at = CASE WHEN ?8 THEN ?9 ELSE accepted_at END,
                     deadline_at = CASE WHEN ?8 THEN ?10 ELSE deadline_at END,
                     heartbeat_s = CASE WHEN ?8 THEN ?11 ELSE heartbeat_s END,
                     heartbeat_due_at = CASE WHEN ?8 THEN ?12 ELSE heartbeat_due_at END,
                     watch_at = CASE WHEN ?8 THEN ?13 ELSE watch_at END
                 WHERE id = ?1 AND status = 'running' AND lease_owner = ?2 AND attempt_count = ?3",
            )
            .bind(r.run_id.to_string())
            .bind(owner)
            .bind(i64::from(r.number))
            .bind(r.outcome.run_status().as_str())
            .bind(pending.then(|| after(delay_ms(r.outcome))))
            .bind(r.outcome.ends_run().then_some(now))
            .bind(r.run_reason)
            .bind(accepted)
            .bind(now)
            .bind(deadline)
            .bind(heartbeat.map(|ms| ms / 1000))
            .bind(heartbeat_due)
            .bind(watch)
            .execute(&mut **tx)
            .await?;
            if updated.rows_affected() == 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO attempts (run_id, number, started_at, duration_ms, status_code, error,
                                       response_excerpt, outcome_reason, body_truncated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT DO NOTHING",
            )
            .bind(r.run_id.to_string())
            .bind(i64::from(r.number))
            .bind(micros(r.started_at))
            .bind(i64::try_from(r.duration_ms).unwrap_or(i64::MAX))
            .bind(r.status_code.map(i64::from))
            .bind(&r.error)
            .bind(&r.response_excerpt)
            .bind(&r.outcome_reason)
            .bind(r.body_truncated)
            .execute(&mut **tx)
            .await?;
            recorded.push(r.run_id);
        }
        Ok(recorded)
    }

    async fn pause_jobs(&self, tx: &mut Self::Tx, jobs: &[JobKey]) -> StoreResult<()> {
        let now = micros(Utc::now());
        for (tenant, id) in jobs {
            sqlx::query(
                "UPDATE jobs SET state = 'paused', next_run_at = NULL, updated_at = ?3
                 WHERE tenant = ?1 AND id = ?2",
            )
            .bind(tenant)
            .bind(id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn heartbeats(
        &self,
        tx: &mut Self::Tx,
    ) -> StoreResult<(Vec<(String, DateTime<Utc>)>, DateTime<Utc>)> {
        let now = Utc::now();
        let beats: Vec<(String, i64)> = sqlx::query_as("SELECT id, heartbeat_at FROM instances")
            .fetch_all(&mut **tx)
            .await?;
        let beats = beats
            .into_iter()
            .map(|(id, at)| (id, instant(at)))
            .collect();
        Ok((beats, now))
    }

    async fn lock_expired_leases(
        &self,
        tx: &mut Self::Tx,
        limit: u32,
        live: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExpiredRun>> {
        // The live owners as a JSON array, for `json_each`.
        let live = serde_json::to_string(live).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query_as::<_, ExpiredRow>(
            "SELECT r.id, r.tenant, r.job_id, r.subscription_id, r.attempt_count,
                    r.prior_attempts, j.max_attempts, j.backoff_initial_s, j.backoff_max_s,
                    j.delivery_rules, r.event_id, e.type AS event_type, e.job_id AS event_job_id
             FROM runs r LEFT JOIN jobs j ON j.tenant = r.tenant AND j.id = r.job_id
                  LEFT JOIN events e ON e.id = r.event_id
             WHERE r.status = 'running' AND r.lease_owner IS NOT NULL
               AND (r.lease_until < ?1
                    OR r.lease_owner NOT IN (SELECT value FROM json_each(?3)))
             ORDER BY r.lease_until LIMIT ?2",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .bind(live)
        .fetch_all(&mut **tx)
        .await?;
        rows.into_iter().map(ExpiredRow::into_expired).collect()
    }

    async fn write_recovered(
        &self,
        tx: &mut Self::Tx,
        runs: &[(Uuid, Outcome)],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let now = micros(now);
        let mut written = 0;
        for (id, outcome) in runs {
            sqlx::query(
                "INSERT INTO attempts (run_id, number, started_at, duration_ms, error)
                 SELECT id, attempt_count, COALESCE(attempt_started_at, ?2),
                        max(?2 - COALESCE(attempt_started_at, ?2), 0) / 1000, ?3
                 FROM runs WHERE id = ?1
                 ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(now)
            .bind(INTERRUPTED)
            .execute(&mut **tx)
            .await?;
            let pending = matches!(outcome, Outcome::Retry { .. });
            written += sqlx::query(
                "UPDATE runs SET status = ?2, next_attempt_at = ?3, finished_at = ?4,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1",
            )
            .bind(id.to_string())
            .bind(outcome.run_status().as_str())
            .bind(pending.then(|| now + delay_ms(*outcome).saturating_mul(1000)))
            .bind((!pending).then_some(now))
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        Ok(written)
    }

    async fn next_due_in(
        &self,
        lookahead: Duration,
        held_back: &[String],
    ) -> StoreResult<Option<Duration>> {
        // As on PostgreSQL: the earliest jobs, each less the lookahead when
        // it has nothing in flight.
        let earliest: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT min(CASE WHEN ",
            not_made_ahead!("j.next_run_at + j.every_s * 1000000"),
            " THEN next_run_at ELSE next_run_at - ?2 END)
             FROM (SELECT tenant, id, next_run_at, trigger_type, end_at, every_s, max_runs, runs_counted
                   FROM jobs
                   WHERE next_run_at IS NOT NULL
                     AND tenant NOT IN (SELECT value FROM json_each(?1))
                   ORDER BY next_run_at LIMIT ?3) j"
        ))
        .bind(serde_json::to_string(held_back).unwrap_or_else(|_| "[]".into()))
        .bind(duration_micros(lookahead))
        .bind(NEXT_DUE_LOOKED_AT)
        .fetch_one(&self.pool)
        .await?;
        let now = micros(Utc::now());
        Ok(earliest.map(|at| Duration::from_micros(at.saturating_sub(now).max(0) as u64)))
    }

    async fn trim_run_history(
        &self,
        keep: u32,
        batch: u32,
        finished_within: Option<Duration>,
    ) -> StoreResult<u64> {
        let since = finished_within.map_or(i64::MIN, |d| micros(Utc::now()) - duration_micros(d));
        let candidates: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT tenant, job_id FROM runs
             WHERE finished_at IS NOT NULL AND finished_at > ?1 AND job_id IS NOT NULL",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut deleted = 0;
        for (tenant, job) in candidates {
            if deleted >= u64::from(batch) {
                break;
            }
            let done = sqlx::query(
                "DELETE FROM runs WHERE id IN (
                     SELECT id FROM runs
                     WHERE tenant = ?4 AND job_id = ?1 AND finished_at IS NOT NULL
                     ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?2)",
            )
            .bind(&job)
            .bind(i64::from(keep))
            .bind(i64::from(batch) - deleted as i64)
            .bind(&tenant)
            .execute(&self.pool)
            .await?;
            deleted += done.rows_affected();
        }
        Ok(deleted)
    }

    async fn claim_runs(
        &self,
        key: &SealingKey,
        owner: &str,
        limit: u32,
        lease_margin: Duration,
        busy: &Busy,
    ) -> StoreResult<Vec<ClaimedRun>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = micros(Utc::now());
        let ids: Vec<(String,)> = sqlx::query_as(
            "UPDATE runs
             SET status = 'running', lease_owner = ?1, attempt_count = attempt_count + 1,
                 attempt_started_at = ?2, next_attempt_at = NULL,
                 lease_until = ?2 + ?3 + 1000000 * COALESCE(
                     (SELECT j.timeout_s FROM jobs j
                      WHERE j.tenant = runs.tenant AND j.id = runs.job_id), ?5)
             WHERE id IN (
                 SELECT id FROM runs WHERE status = 'pending' AND next_attempt_at <= ?2
                   AND (host IS NULL OR host NOT IN (SELECT value FROM json_each(?6)))
                   AND tenant NOT IN (SELECT value FROM json_each(?7))
                 ORDER BY next_attempt_at LIMIT ?4)
             RETURNING id",
        )
        .bind(owner)
        .bind(now)
        .bind(duration_micros(lease_margin))
        .bind(i64::from(limit))
        .bind(i64::from(crate::domain::target::DEFAULT_TIMEOUT_S))
        .bind(serde_json::to_string(&busy.hosts).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&busy.tenants).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&mut *tx)
        .await?;
        // What the requests need, read in the same transaction.
        let mut claimed = Vec::with_capacity(ids.len());
        for (id,) in ids {
            let row = sqlx::query_as::<_, ClaimedRow>(
                "SELECT r.id, r.tenant, r.job_id, r.subscription_id, r.scheduled_for,
                        r.attempt_count, r.prior_attempts, r.request, r.cause, r.flow_key,
                        r.parent_run_id, j.target_url,
                        j.target_method, j.target_headers, j.target_body, j.target_secrets,
                        j.timeout_s, j.target_template,
                        j.max_attempts, j.backoff_initial_s, j.backoff_max_s, j.delivery_rules,
                        j.overlap, j.on_complete,
                        EXISTS (SELECT 1 FROM job_requires g
                                WHERE g.tenant = r.tenant AND g.required_id = r.job_id) AS required,
                        s.target_url AS subscription_url, s.target_secrets AS subscription_secrets,
                    s.format AS subscription_format,
                        COALESCE(j.secret, s.secret) AS secret, j.previous_secret,
                        j.previous_secret_expires_at,
                        e.id AS event_id, e.type AS event_type, e.at AS event_at,
                        e.job_id AS event_job_id, e.run_id AS event_run_id, e.data AS event_data
                 FROM runs r
                 LEFT JOIN jobs j ON j.tenant = r.tenant AND j.id = r.job_id
                 LEFT JOIN subscriptions s ON s.tenant = r.tenant AND s.id = r.subscription_id
                 LEFT JOIN events e ON e.id = r.event_id
                 WHERE r.id = ?1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            claimed.push(row);
        }
        tx.commit().await?;
        claimed
            .into_iter()
            .map(|row| row.into_parts(instant(now))?.into_claimed(key))
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
            "UPDATE runs
             SET lease_until = ?4 + ?5 + 1000000 * COALESCE(
                 (SELECT j.timeout_s FROM jobs j
                  WHERE j.tenant = runs.tenant AND j.id = runs.job_id), ?6)
             WHERE id = ?1 AND status = 'running' AND lease_owner = ?2 AND attempt_count = ?3",
        )
        .bind(run.to_string())
        .bind(owner)
        .bind(i64::from(attempt))
        .bind(micros(Utc::now()))
        .bind(duration_micros(lease_margin))
        .bind(i64::from(crate::domain::target::DEFAULT_TIMEOUT_S))
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = micros(Utc::now()) + duration_micros(after);
        let mut released = 0;
        for (id, number) in runs {
            released += sqlx::query(
                "UPDATE runs
                 SET status = 'pending', attempt_count = attempt_count - 1, next_attempt_at = ?4,
                     lease_owner = NULL, lease_until = NULL, attempt_started_at = NULL
                 WHERE id = ?1 AND status = 'running' AND lease_owner = ?2 AND attempt_count = ?3",
            )
            .bind(id.to_string())
            .bind(owner)
            .bind(i64::from(*number))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn register_instance(&self, id: &str, version: &str) -> StoreResult<()> {
        let now = micros(Utc::now());
        sqlx::query(
            "INSERT INTO instances (id, started_at, heartbeat_at, version) VALUES (?1, ?2, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = ?2, version = excluded.version",
        )
        .bind(id)
        .bind(now)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn heartbeat(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE instances SET heartbeat_at = ?2 WHERE id = ?1")
            .bind(id)
            .bind(micros(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_dead_instances(&self, older_than: Duration) -> StoreResult<u64> {
        let cutoff = micros(Utc::now()) - duration_micros(older_than);
        let done = sqlx::query(
            "DELETE FROM instances
             WHERE heartbeat_at < ?1
               AND NOT EXISTS (SELECT 1 FROM runs r
                               WHERE r.status = 'running' AND r.lease_owner = instances.id)",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_attempt_in(&self) -> StoreResult<Option<Duration>> {
        let earliest: Option<i64> =
            sqlx::query_scalar("SELECT min(next_attempt_at) FROM runs WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let now = micros(Utc::now());
        Ok(earliest.map(|at| Duration::from_micros(at.saturating_sub(now).max(0) as u64)))
    }

    async fn latest_event_id(&self, tenant: &Tenant) -> StoreResult<Option<Uuid>> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM events WHERE tenant = ?1 ORDER BY seq DESC LIMIT 1")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await?;
        id.map(RowId::uuid).transpose()
    }

    async fn list_events(&self, tenant: &Tenant, filter: &EventFilter) -> StoreResult<Vec<Event>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, type, at, job_id, run_id, data FROM events WHERE tenant = ",
        );
        query.push_bind(tenant.as_str().to_string());
        if let Some(after) = filter.after {
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM events WHERE tenant = ?1 AND id = ?2")
                    .bind(tenant.as_str())
                    .bind(after.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
            let seq = seq.ok_or(StoreError::NotFound)?;
            let past = if filter.newest_first {
                " AND seq < "
            } else {
                " AND seq > "
            };
            query.push(past).push_bind(seq);
        }
        if !filter.types.is_empty() {
            query.push(" AND type IN (");
            let mut list = query.separated(", ");
            for t in &filter.types {
                list.push_bind(t.as_str());
            }
            query.push(")");
        }
        if let Some(job_id) = &filter.job_id {
            query
                .push(" AND job_id = ")
                .push_bind(job_id.as_str().to_string());
        }
        query
            .push(if filter.newest_first {
                " ORDER BY seq DESC LIMIT "
            } else {
                " ORDER BY seq LIMIT "
            })
            .push_bind(i64::from(filter.limit));
        query
            .build_query_as::<(String, String, i64, String, Option<String>, String)>()
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(id, kind, at, job_id, run, data)| {
                let run = run.map(RowId::uuid).transpose()?;
                event_of(id.uuid()?, &kind, instant(at), job_id, run, &data)
            })
            .collect()
    }

    fn spawn_listener(
        &self,
        _wakeups: Arc<Wakeups>,
        _subscriptions: Arc<SubscriptionCache>,
        _shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        // One process per file: the in-process wake-ups are all there is.
        None
    }
}
