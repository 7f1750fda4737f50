//! The SQLite store: the embedded default. One process is the supported
//! deployment; writers are serialised by `BEGIN IMMEDIATE`, so a second
//! process on the same file still never double-fires.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqliteConnection};

use super::shape::{StoredDefinition, StoredRetry, StoredTarget, StoredTrigger};
use super::{
    Attempt, AttemptRecord, ClaimOutcome, ClaimedRun, ExpiredLease, Idempotency, IdempotentRequest,
    Instance, Job, JobFilter, JobSecret, PlanFn, RecoverFn, Run, RunFilter, RunSummary, Saved,
    Store, StoreError, StoreResult, count, delay_ms, job_id, run_cause, run_status,
    signing_secrets,
};
use crate::domain::job::{JobId, JobState, ParseContext, Schedule};
use crate::domain::lease;
use crate::domain::lifecycle::{self, JobChange, JobCommand};
use crate::domain::misfire::DueJob;
use crate::domain::retry::Outcome;
use crate::domain::run::{INTERRUPTED, RunStatus};
use crate::wakeup::Wakeups;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    wakeups: Arc<Wakeups>,
}

impl SqliteStore {
    pub async fn connect(url: &str, wakeups: Arc<Wakeups>) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
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
        Ok(Self { pool, wakeups })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Instants are stored as integer microseconds since the epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn instant(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

macro_rules! job_query {
    ($tail:literal) => {
        concat!(
            "
    SELECT j.id, j.name, j.trigger_type, j.cron_expr, j.cron_timezone, j.every_s, j.run_at,
           j.start_at, j.end_at, j.jitter_s, j.target_url, j.target_method, j.target_headers,
           j.target_body, j.timeout_s, j.misfire_grace_s, j.coalesce_runs, j.max_instances,
           j.max_attempts, j.backoff_initial_s, j.backoff_max_s, j.metadata,
           j.state, j.next_run_at, j.created_at, j.updated_at,
           lr.id AS lr_id, lr.status AS lr_status, lr.scheduled_for AS lr_scheduled_for,
           lr.attempt_count AS lr_attempt_count, lr.created_at AS lr_created_at,
           lr.finished_at AS lr_finished_at
    FROM jobs j
    LEFT JOIN runs lr ON lr.id = (
        SELECT r.id FROM runs r WHERE r.job_id = j.id
        ORDER BY r.created_at DESC, r.id DESC LIMIT 1
    )",
            $tail
        )
    };
}

/// A trigger's columns as SQLite has them (instants in microseconds).
#[derive(FromRow)]
struct TriggerRow {
    trigger_type: String,
    cron_expr: Option<String>,
    cron_timezone: Option<String>,
    every_s: Option<i64>,
    run_at: Option<i64>,
    start_at: Option<i64>,
    end_at: Option<i64>,
    jitter_s: i64,
}

impl From<TriggerRow> for StoredTrigger {
    fn from(r: TriggerRow) -> Self {
        StoredTrigger {
            trigger_type: r.trigger_type,
            cron_expr: r.cron_expr,
            cron_timezone: r.cron_timezone,
            every_s: r.every_s,
            run_at: r.run_at.map(instant),
            start_at: r.start_at.map(instant),
            end_at: r.end_at.map(instant),
            jitter_s: r.jitter_s,
        }
    }
}

#[derive(FromRow)]
struct JobRow {
    id: String,
    name: Option<String>,
    #[sqlx(flatten)]
    trigger: TriggerRow,
    #[sqlx(flatten)]
    target: StoredTarget,
    misfire_grace_s: Option<i64>,
    coalesce_runs: bool,
    max_instances: i64,
    #[sqlx(flatten)]
    retry: StoredRetry,
    metadata: String,
    state: String,
    next_run_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    lr_id: Option<String>,
    lr_status: Option<String>,
    lr_scheduled_for: Option<i64>,
    lr_attempt_count: Option<i64>,
    lr_created_at: Option<i64>,
    lr_finished_at: Option<i64>,
}

impl JobRow {
    fn into_job(self) -> StoreResult<Job> {
        let id = job_id(self.id)?;
        let definition = StoredDefinition {
            name: self.name,
            trigger: self.trigger.into(),
            target: self.target,
            misfire_grace_s: self.misfire_grace_s,
            coalesce: self.coalesce_runs,
            max_instances: self.max_instances,
            retry: self.retry,
            metadata: self.metadata,
        }
        .into_definition(id.as_str())?;
        let next_run_at = self.next_run_at.map(instant);
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
                id: run_id(&id)?,
                status: run_status(&status)?,
                scheduled_for: instant(scheduled_for),
                attempt_count: count(self.lr_attempt_count.unwrap_or(0)),
                created_at: instant(created_at),
                finished_at: self.lr_finished_at.map(instant),
            }),
            _ => None,
        };
        Ok(Job {
            id,
            definition,
            schedule,
            created_at: instant(self.created_at),
            updated_at: instant(self.updated_at),
            last_run,
        })
    }
}

/// Writes a job's definition columns (`?2` to `?22`) for an insert or an
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
        .bind(d.target.timeout_s)
        .bind(d.misfire_grace_s)
        .bind(d.coalesce)
        .bind(d.max_instances)
        .bind(d.retry.max_attempts)
        .bind(d.retry.backoff_initial_s)
        .bind(d.retry.backoff_max_s)
        .bind(d.metadata.clone())
}

async fn fetch_job(conn: &mut SqliteConnection, id: &JobId) -> StoreResult<Option<Job>> {
    sqlx::query_as::<_, JobRow>(job_query!(" WHERE j.id = ?1"))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
        .map(JobRow::into_job)
        .transpose()
}

#[derive(FromRow)]
struct DueRow {
    id: String,
    #[sqlx(flatten)]
    trigger: TriggerRow,
    next_run_at: i64,
    misfire_grace_s: Option<i64>,
    coalesce_runs: bool,
    max_instances: i64,
}

const RUN_COLUMNS: &str = "id, job_id, scheduled_for, cause, status, occurrences, attempt_count, \
     deliver_after, next_attempt_at, created_at, finished_at";

#[derive(FromRow)]
struct RunRow {
    id: String,
    job_id: String,
    scheduled_for: i64,
    cause: String,
    status: String,
    occurrences: i64,
    attempt_count: i64,
    deliver_after: i64,
    next_attempt_at: Option<i64>,
    created_at: i64,
    finished_at: Option<i64>,
}

impl RunRow {
    fn into_run(self) -> StoreResult<Run> {
        Ok(Run {
            id: run_id(&self.id)?,
            job_id: job_id(self.job_id)?,
            scheduled_for: instant(self.scheduled_for),
            cause: run_cause(&self.cause)?,
            status: run_status(&self.status)?,
            occurrences: self.occurrences.max(0) as u64,
            attempt_count: count(self.attempt_count),
            deliver_after: instant(self.deliver_after),
            next_attempt_at: self.next_attempt_at.map(instant),
            created_at: instant(self.created_at),
            finished_at: self.finished_at.map(instant),
        })
    }
}

fn run_id(text: &str) -> StoreResult<Uuid> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("run id {text:?}: {e}")))
}

#[derive(FromRow)]
struct AttemptRow {
    number: i64,
    started_at: i64,
    duration_ms: i64,
    status_code: Option<i64>,
    error: Option<String>,
    response_excerpt: Option<String>,
}

impl From<AttemptRow> for Attempt {
    fn from(a: AttemptRow) -> Self {
        Attempt {
            number: a.number.max(0) as u32,
            started_at: instant(a.started_at),
            duration_ms: a.duration_ms.max(0) as u64,
            status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
            error: a.error,
            response_excerpt: a.response_excerpt,
        }
    }
}

#[derive(FromRow)]
struct ClaimedRow {
    id: String,
    job_id: String,
    scheduled_for: i64,
    attempt_count: i64,
    #[sqlx(flatten)]
    target: StoredTarget,
    #[sqlx(flatten)]
    retry: StoredRetry,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
}

#[derive(FromRow)]
struct ExpiredRow {
    id: String,
    job_id: String,
    attempt_count: i64,
    attempt_started_at: Option<i64>,
    #[sqlx(flatten)]
    retry: StoredRetry,
}

#[derive(FromRow)]
struct SecretRow {
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
}

impl From<SecretRow> for JobSecret {
    fn from(row: SecretRow) -> Self {
        JobSecret {
            secret: row.secret,
            previous: row
                .previous_secret
                .zip(row.previous_secret_expires_at.map(instant)),
        }
    }
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Records what a request with an Idempotency-Key made, in its
/// transaction (see the PostgreSQL store).
async fn record_idempotency(
    conn: &mut SqliteConnection,
    idempotency: &Idempotency,
    resource_id: &str,
    now: i64,
) -> StoreResult<()> {
    let stale = now - duration_micros(crate::domain::idempotency::WINDOW);
    let recorded = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (scope, key) DO UPDATE
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
    .execute(conn)
    .await?;
    if recorded.rows_affected() == 0 {
        return Err(StoreError::IdempotencyKeyTaken);
    }
    Ok(())
}

async fn count_in_flight(conn: &mut SqliteConnection, job: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE job_id = ?1 AND status IN ('pending', 'running')",
    )
    .bind(job)
    .fetch_one(conn)
    .await?)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn save_job(
        &self,
        id: &JobId,
        command: &JobCommand,
        ctx: ParseContext,
        idempotency: Option<&Idempotency>,
    ) -> StoreResult<(Job, Saved)> {
        // BEGIN IMMEDIATE takes the write lock up front: the read and the
        // write below see no other writer in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing = fetch_job(&mut tx, id).await?;
        let change = lifecycle::decide(id.as_str(), existing.as_ref(), command, ctx)?;
        let now = micros(Utc::now());
        let (saved, schedule_changed) = match change {
            JobChange::Unchanged => {
                tx.commit().await?;
                let job = existing.ok_or(StoreError::NotFound)?;
                return Ok((job, Saved::Updated));
            }
            JobChange::Insert {
                definition,
                schedule,
                secret,
            } => {
                let query = sqlx::query(
                    "INSERT INTO jobs (id, name, trigger_type, cron_expr, cron_timezone, every_s,
                         run_at, start_at, end_at, jitter_s, target_url, target_method,
                         target_headers, target_body, timeout_s, misfire_grace_s, coalesce_runs,
                         max_instances, max_attempts, backoff_initial_s, backoff_max_s, metadata,
                         state, next_run_at, secret, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                             ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?26)",
                )
                .bind(id.as_str());
                bind_definition(query, &StoredDefinition::of(&definition))
                    .bind(schedule.state().as_str())
                    .bind(schedule.next_run_at().map(micros))
                    .bind(secret)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let Some(idempotency) = idempotency {
                    record_idempotency(&mut tx, idempotency, id.as_str(), now).await?;
                }
                (Saved::Created, true)
            }
            JobChange::Update {
                definition,
                schedule,
            } => {
                let query = sqlx::query(
                    "UPDATE jobs SET name = ?2, trigger_type = ?3, cron_expr = ?4,
                         cron_timezone = ?5, every_s = ?6, run_at = ?7, start_at = ?8,
                         end_at = ?9, jitter_s = ?10, target_url = ?11, target_method = ?12,
                         target_headers = ?13, target_body = ?14, timeout_s = ?15,
                         misfire_grace_s = ?16, coalesce_runs = ?17, max_instances = ?18,
                         max_attempts = ?19, backoff_initial_s = ?20, backoff_max_s = ?21,
                         metadata = ?22,
                         state = COALESCE(?23, state),
                         next_run_at = CASE WHEN ?23 IS NULL THEN next_run_at ELSE ?24 END,
                         updated_at = ?25
                     WHERE id = ?1",
                )
                .bind(id.as_str());
                bind_definition(query, &StoredDefinition::of(&definition))
                    .bind(schedule.map(|s| s.state().as_str()))
                    .bind(schedule.and_then(Schedule::next_run_at).map(micros))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                (Saved::Updated, schedule.is_some())
            }
        };
        let job = fetch_job(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        if schedule_changed {
            self.wakeups.jobs_changed();
        }
        Ok((job, saved))
    }

    async fn get_job(&self, id: &JobId) -> StoreResult<Option<Job>> {
        let mut conn = self.pool.acquire().await?;
        fetch_job(&mut conn, id).await
    }

    async fn job_exists(&self, id: &JobId) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        let mut query = QueryBuilder::<Sqlite>::new(job_query!(""));
        query.push(" WHERE 1");
        if let Some(state) = filter.state {
            query.push(" AND j.state = ").push_bind(state.as_str());
        }
        if let Some(after) = &filter.after {
            query
                .push(" AND j.id > ")
                .push_bind(after.as_str().to_string());
        }
        query
            .push(" ORDER BY j.id LIMIT ")
            .push_bind(i64::from(filter.limit));
        query
            .build_query_as::<JobRow>()
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(JobRow::into_job)
            .collect()
    }

    async fn delete_job(&self, id: &JobId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = ?1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn claim_due_jobs(&self, limit: u32, plan: &PlanFn<'_>) -> StoreResult<ClaimOutcome> {
        // The write lock first: another process on the same file waits, and
        // then sees what this one committed.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = crate::domain::instant::truncate(Utc::now());
        let due = sqlx::query_as::<_, DueRow>(
            "SELECT id, trigger_type, cron_expr, cron_timezone, every_s, run_at, start_at, end_at,
                    jitter_s, next_run_at, misfire_grace_s, coalesce_runs, max_instances
             FROM jobs
             WHERE next_run_at IS NOT NULL AND next_run_at <= ?1
             ORDER BY next_run_at
             LIMIT ?2",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut outcome = ClaimOutcome::default();
        for row in due {
            let schedule = match StoredTrigger::from(row.trigger).into_trigger(&row.id) {
                Ok(trigger) => {
                    let job = DueJob {
                        trigger: &trigger,
                        next_run_at: instant(row.next_run_at),
                        misfire_grace_s: row.misfire_grace_s.and_then(|g| u32::try_from(g).ok()),
                        coalesce: row.coalesce_runs,
                        max_instances: count(row.max_instances).max(1),
                        in_flight: count(count_in_flight(&mut tx, &row.id).await?),
                    };
                    let decision = plan(&job, now);
                    for run in decision.runs {
                        let pending = run.status == RunStatus::Pending;
                        let created = micros(Utc::now());
                        let inserted = sqlx::query(
                            "INSERT INTO runs (id, job_id, scheduled_for, cause, status, occurrences,
                                               deliver_after, next_attempt_at, created_at, finished_at)
                             VALUES (?1, ?2, ?3, 'schedule', ?4, ?5, ?6, ?7, ?8, ?9)
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(Uuid::now_v7().to_string())
                        .bind(&row.id)
                        .bind(micros(run.scheduled_for))
                        .bind(run.status.as_str())
                        .bind(run.occurrences.min(i64::MAX as u64) as i64)
                        .bind(micros(run.deliver_after))
                        .bind(pending.then(|| micros(run.deliver_after)))
                        .bind(created)
                        .bind((!pending).then_some(created))
                        .execute(&mut *tx)
                        .await?;
                        if inserted.rows_affected() > 0 {
                            outcome.runs += 1;
                            outcome.pending += usize::from(pending);
                        }
                    }
                    decision.schedule
                }
                Err(e) => {
                    tracing::error!(job_id = %row.id, error = %e, "cannot schedule job; retrying in an hour");
                    Schedule::Scheduled {
                        next_run_at: now + chrono::TimeDelta::hours(1),
                    }
                }
            };
            sqlx::query("UPDATE jobs SET next_run_at = ?2, state = ?3 WHERE id = ?1")
                .bind(&row.id)
                .bind(schedule.next_run_at().map(micros))
                .bind(schedule.state().as_str())
                .execute(&mut *tx)
                .await?;
            outcome.jobs += 1;
        }
        tx.commit().await?;
        if outcome.pending > 0 {
            self.wakeups.runs_changed();
        }
        Ok(outcome)
    }

    async fn next_due_in(&self) -> StoreResult<Option<Duration>> {
        let earliest: Option<i64> =
            sqlx::query_scalar("SELECT min(next_run_at) FROM jobs WHERE next_run_at IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        let now = micros(Utc::now());
        Ok(earliest.map(|at| Duration::from_micros(at.saturating_sub(now).max(0) as u64)))
    }

    async fn create_manual_run(
        &self,
        id: &JobId,
        idempotency: Option<&Idempotency>,
    ) -> StoreResult<Run> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let max_instances: Option<i64> =
            sqlx::query_scalar("SELECT max_instances FROM jobs WHERE id = ?1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let max_instances = max_instances.ok_or(StoreError::NotFound)?;
        let in_flight = count_in_flight(&mut tx, id.as_str()).await?;
        let status = lifecycle::manual_run_status(count(max_instances), count(in_flight));
        let now = micros(Utc::now());
        let pending = status == RunStatus::Pending;
        let run = sqlx::query_as::<_, RunRow>(&format!(
            "INSERT INTO runs (id, job_id, scheduled_for, cause, status, occurrences, deliver_after,
                               next_attempt_at, created_at, finished_at)
             VALUES (?1, ?2, ?3, 'manual', ?4, 1, ?3, ?5, ?3, ?6)
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(Uuid::now_v7().to_string())
        .bind(id.as_str())
        .bind(now)
        .bind(status.as_str())
        .bind(pending.then_some(now))
        .bind((!pending).then_some(now))
        .fetch_one(&mut *tx)
        .await?
        .into_run()?;
        if let Some(idempotency) = idempotency {
            record_idempotency(&mut tx, idempotency, &run.id.to_string(), now).await?;
        }
        tx.commit().await?;
        if pending {
            self.wakeups.runs_changed();
        }
        Ok(run)
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let mut query =
            QueryBuilder::<Sqlite>::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1"));
        if let Some(job_id) = &filter.job_id {
            query
                .push(" AND job_id = ")
                .push_bind(job_id.as_str().to_string());
        }
        if !filter.statuses.is_empty() {
            query.push(" AND status IN (");
            let mut list = query.separated(", ");
            for status in &filter.statuses {
                list.push_bind(status.as_str());
            }
            query.push(")");
        }
        if let Some(after) = filter.created_after {
            query.push(" AND created_at > ").push_bind(micros(after));
        }
        if let Some(before) = filter.created_before {
            query.push(" AND created_at < ").push_bind(micros(before));
        }
        if let Some(cursor) = filter.cursor {
            query
                .push(" AND (created_at, id) < (")
                .push_bind(micros(cursor.created_at))
                .push(", ")
                .push_bind(cursor.id.to_string())
                .push(")");
        }
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        query
            .build_query_as::<RunRow>()
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(RunRow::into_run)
            .collect()
    }

    async fn find_idempotent_request(
        &self,
        scope: &str,
        key: &str,
        within: Duration,
    ) -> StoreResult<Option<IdempotentRequest>> {
        let since = micros(Utc::now()) - duration_micros(within);
        Ok(sqlx::query_as::<_, (String, String)>(
            "SELECT fingerprint, resource_id FROM idempotency_keys
             WHERE scope = ?1 AND key = ?2 AND created_at > ?3",
        )
        .bind(scope)
        .bind(key)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?
        .map(|(fingerprint, resource_id)| IdempotentRequest {
            fingerprint,
            resource_id,
        }))
    }

    async fn delete_expired_idempotency_keys(
        &self,
        older_than: Duration,
        batch: u32,
    ) -> StoreResult<u64> {
        let cutoff = micros(Utc::now()) - duration_micros(older_than);
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE rowid IN (
                 SELECT rowid FROM idempotency_keys WHERE created_at < ?1
                 ORDER BY created_at LIMIT ?2)",
        )
        .bind(cutoff)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn get_run(&self, id: Uuid) -> StoreResult<Option<(Run, Vec<Attempt>)>> {
        let run =
            sqlx::query_as::<_, RunRow>(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some(run) = run else { return Ok(None) };
        let attempts = sqlx::query_as::<_, AttemptRow>(
            "SELECT number, started_at, duration_ms, status_code, error, response_excerpt
             FROM attempts WHERE run_id = ?1 ORDER BY number",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((
            run.into_run()?,
            attempts.into_iter().map(Attempt::from).collect(),
        )))
    }

    async fn delete_expired_runs(&self, retention: Duration, batch: u32) -> StoreResult<u64> {
        let cutoff = micros(Utc::now()) - i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "DELETE FROM runs WHERE id IN (
                 SELECT id FROM runs WHERE finished_at < ?1 ORDER BY finished_at LIMIT ?2)",
        )
        .bind(cutoff)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn trim_run_history(
        &self,
        keep: u32,
        batch: u32,
        finished_within: Option<Duration>,
    ) -> StoreResult<u64> {
        let since = finished_within.map_or(i64::MIN, |d| micros(Utc::now()) - duration_micros(d));
        let candidates: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT job_id FROM runs WHERE finished_at IS NOT NULL AND finished_at > ?1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut deleted = 0;
        for job in candidates {
            if deleted >= u64::from(batch) {
                break;
            }
            let done = sqlx::query(
                "DELETE FROM runs WHERE id IN (
                     SELECT id FROM runs WHERE job_id = ?1 AND finished_at IS NOT NULL
                     ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?2)",
            )
            .bind(&job)
            .bind(i64::from(keep))
            .bind(i64::from(batch) - deleted as i64)
            .execute(&self.pool)
            .await?;
            deleted += done.rows_affected();
        }
        Ok(deleted)
    }

    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        lease_margin: Duration,
    ) -> StoreResult<Vec<ClaimedRun>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = micros(Utc::now());
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "UPDATE runs
             SET status = 'running', lease_owner = ?1, attempt_count = attempt_count + 1,
                 attempt_started_at = ?2, next_attempt_at = NULL,
                 lease_until = ?2 + ?3 + 1000000 *
                     (SELECT j.timeout_s FROM jobs j WHERE j.id = runs.job_id)
             WHERE id IN (
                 SELECT id FROM runs WHERE status = 'pending' AND next_attempt_at <= ?2
                 ORDER BY next_attempt_at LIMIT ?4)
             RETURNING id, job_id, scheduled_for, attempt_count",
        )
        .bind(owner)
        .bind(now)
        .bind(duration_micros(lease_margin))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        // What the requests need, read in the same transaction.
        let mut claimed = Vec::with_capacity(rows.len());
        for (id, job, scheduled_for, attempt_count) in rows {
            let row = sqlx::query_as::<_, ClaimedRow>(
                "SELECT ?1 AS id, j.id AS job_id, ?2 AS scheduled_for, ?3 AS attempt_count,
                        j.target_url, j.target_method, j.target_headers, j.target_body,
                        j.timeout_s, j.max_attempts, j.backoff_initial_s, j.backoff_max_s,
                        j.secret, j.previous_secret, j.previous_secret_expires_at
                 FROM jobs j WHERE j.id = ?4",
            )
            .bind(id)
            .bind(scheduled_for)
            .bind(attempt_count)
            .bind(job)
            .fetch_one(&mut *tx)
            .await?;
            claimed.push(row);
        }
        tx.commit().await?;
        claimed
            .into_iter()
            .map(|row| {
                let spec = row
                    .target
                    .into_target(&row.job_id)
                    .and_then(|target| Ok((target, row.retry.into_policy(&row.job_id)?)))
                    .map_err(|e| e.to_string());
                Ok(ClaimedRun {
                    run_id: run_id(&row.id)?,
                    job_id: job_id(row.job_id)?,
                    scheduled_for: instant(row.scheduled_for),
                    attempt: row.attempt_count.max(1) as u32,
                    spec,
                    secrets: signing_secrets(
                        row.secret,
                        row.previous_secret,
                        row.previous_secret_expires_at.map(instant),
                        instant(now),
                    ),
                })
            })
            .collect()
    }

    async fn record_attempts(&self, owner: &str, records: &[AttemptRecord]) -> StoreResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut recorded = 0;
        let mut retrying = false;
        for r in records {
            let now = micros(Utc::now());
            let pending = matches!(r.outcome, Outcome::Retry { .. });
            retrying |= pending;
            let updated = sqlx::query(
                "UPDATE runs
                 SET status = ?4, next_attempt_at = ?5, finished_at = ?6,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1 AND status = 'running' AND lease_owner = ?2 AND attempt_count = ?3",
            )
            .bind(r.run_id.to_string())
            .bind(owner)
            .bind(i64::from(r.number))
            .bind(r.outcome.run_status().as_str())
            .bind(pending.then(|| now + delay_ms(r.outcome).saturating_mul(1000)))
            .bind((!pending).then_some(now))
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO attempts (run_id, number, started_at, duration_ms, status_code, error,
                                       response_excerpt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT DO NOTHING",
            )
            .bind(r.run_id.to_string())
            .bind(i64::from(r.number))
            .bind(micros(r.started_at))
            .bind(i64::try_from(r.duration_ms).unwrap_or(i64::MAX))
            .bind(r.status_code.map(i64::from))
            .bind(&r.error)
            .bind(&r.response_excerpt)
            .execute(&mut *tx)
            .await?;
            recorded += 1;
        }
        tx.commit().await?;
        if retrying {
            self.wakeups.runs_changed();
        }
        Ok(recorded)
    }

    async fn release_runs(&self, owner: &str, runs: &[(Uuid, u32)]) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = micros(Utc::now());
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

    async fn recover_expired_leases(
        &self,
        limit: u32,
        instance_timeout: Duration,
        recover: &RecoverFn<'_>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = micros(Utc::now());
        let beats: Vec<(String, i64)> = sqlx::query_as("SELECT id, heartbeat_at FROM instances")
            .fetch_all(&mut *tx)
            .await?;
        let live = lease::live_owners(
            beats.iter().map(|(id, at)| (id.as_str(), instant(*at))),
            instant(now),
            instance_timeout,
        );
        // The live owners as a JSON array, for `json_each`.
        let live = serde_json::to_string(&live).unwrap_or_else(|_| "[]".into());
        let expired = sqlx::query_as::<_, ExpiredRow>(
            "SELECT r.id, r.job_id, r.attempt_count, r.attempt_started_at, j.max_attempts,
                    j.backoff_initial_s, j.backoff_max_s
             FROM runs r JOIN jobs j ON j.id = r.job_id
             WHERE r.status = 'running'
               AND (r.lease_until < ?1
                    OR r.lease_owner NOT IN (SELECT value FROM json_each(?3)))
             ORDER BY r.lease_until LIMIT ?2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .bind(live)
        .fetch_all(&mut *tx)
        .await?;
        for row in &expired {
            let policy = row
                .retry
                .clone()
                .into_policy(&row.job_id)
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "recovering a run under the default retry policy");
                    Default::default()
                });
            let outcome = recover(&ExpiredLease {
                run_id: run_id(&row.id)?,
                job_id: &row.job_id,
                attempt: count(row.attempt_count),
                policy,
            });
            let started_at = row.attempt_started_at.unwrap_or(now);
            sqlx::query(
                "INSERT INTO attempts (run_id, number, started_at, duration_ms, error)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )
            .bind(&row.id)
            .bind(row.attempt_count)
            .bind(started_at)
            .bind((now - started_at).max(0) / 1000)
            .bind(INTERRUPTED)
            .execute(&mut *tx)
            .await?;
            let pending = matches!(outcome, Outcome::Retry { .. });
            sqlx::query(
                "UPDATE runs SET status = ?2, next_attempt_at = ?3, finished_at = ?4,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1",
            )
            .bind(&row.id)
            .bind(outcome.run_status().as_str())
            .bind(pending.then(|| now + delay_ms(outcome).saturating_mul(1000)))
            .bind((!pending).then_some(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if !expired.is_empty() {
            self.wakeups.runs_changed();
        }
        Ok(expired.len() as u64)
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

    async fn deregister_instance(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM instances WHERE id = ?1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_instances(&self) -> StoreResult<Vec<Instance>> {
        let rows: Vec<(String, i64, i64, String, i64)> = sqlx::query_as(
            "SELECT i.id, i.started_at, i.heartbeat_at, i.version,
                    (SELECT count(*) FROM runs r
                     WHERE r.status = 'running' AND r.lease_owner = i.id) AS leases
             FROM instances i ORDER BY i.started_at, i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, started_at, heartbeat_at, version, leases)| Instance {
                id,
                started_at: instant(started_at),
                heartbeat_at: instant(heartbeat_at),
                version,
                leases: leases.max(0) as u64,
            })
            .collect())
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

    async fn get_secret(&self, id: &JobId) -> StoreResult<Option<JobSecret>> {
        Ok(sqlx::query_as::<_, SecretRow>(
            "SELECT secret, previous_secret, previous_secret_expires_at FROM jobs WHERE id = ?1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(JobSecret::from))
    }

    async fn rotate_secret(
        &self,
        id: &JobId,
        new_secret: &str,
        grace: Duration,
    ) -> StoreResult<Option<JobSecret>> {
        Ok(sqlx::query_as::<_, SecretRow>(
            "UPDATE jobs SET previous_secret = secret, secret = ?2, previous_secret_expires_at = ?3
             WHERE id = ?1
             RETURNING secret, previous_secret, previous_secret_expires_at",
        )
        .bind(id.as_str())
        .bind(new_secret)
        .bind(micros(Utc::now()) + duration_micros(grace))
        .fetch_optional(&self.pool)
        .await?
        .map(JobSecret::from))
    }

    fn spawn_listener(&self, _shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        // One process per file: the in-process wake-ups are all there is.
        None
    }
}
