//! The SQLite store: the embedded default. One process is the supported
//! deployment; writers are serialised by `BEGIN IMMEDIATE`, so a second
//! process on the same file still never double-fires.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqliteConnection};

use super::{
    Job, JobFilter, JobWriteFn, RunSummary, Saved, SpecColumns, Store, StoreError, StoreResult,
    StoredSpec, decide_write,
};
use crate::domain::job::{JobId, Schedule};
use crate::domain::run::RunStatus;
use crate::wakeup::Wakeups;

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

fn json(text: &str, what: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

macro_rules! job_query {
    ($tail:literal) => {
        concat!(
            "
    SELECT j.id, j.name, j.trigger, j.target, j.retry, j.metadata, j.misfire_grace_s,
           j.coalesce_runs, j.max_instances, j.state, j.next_run_at, j.created_at, j.updated_at,
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

#[derive(FromRow)]
struct JobRow {
    id: String,
    name: Option<String>,
    trigger: String,
    target: String,
    retry: String,
    metadata: String,
    misfire_grace_s: Option<i64>,
    coalesce_runs: bool,
    max_instances: i64,
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
        let (id, spec, state) = StoredSpec {
            trigger: json(&self.trigger, "trigger")?,
            target: json(&self.target, "target")?,
            retry: json(&self.retry, "retry")?,
            metadata: json(&self.metadata, "metadata")?,
            id: self.id,
            name: self.name,
            misfire_grace_s: self.misfire_grace_s,
            coalesce: self.coalesce_runs,
            max_instances: self.max_instances,
            state: self.state,
        }
        .parse()?;
        let last_run = match (
            self.lr_id,
            self.lr_status,
            self.lr_scheduled_for,
            self.lr_created_at,
        ) {
            (Some(id), Some(status), Some(scheduled_for), Some(created_at)) => Some(RunSummary {
                id: id
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("run id {id:?}: {e}")))?,
                status: RunStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("run {id}: status {status:?}")))?,
                scheduled_for: instant(scheduled_for),
                attempt_count: self.lr_attempt_count.unwrap_or(0).max(0) as u32,
                created_at: instant(created_at),
                finished_at: self.lr_finished_at.map(instant),
            }),
            _ => None,
        };
        Ok(Job {
            spec,
            id,
            schedule: Schedule {
                state,
                next_run_at: self.next_run_at.map(instant),
            },
            created_at: instant(self.created_at),
            updated_at: instant(self.updated_at),
            last_run,
        })
    }
}

async fn fetch_job(conn: &mut SqliteConnection, id: &JobId) -> StoreResult<Option<Job>> {
    sqlx::query_as::<_, JobRow>(job_query!(" WHERE j.id = ?1"))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
        .map(JobRow::into_job)
        .transpose()
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
        new_secret: &str,
        write: &JobWriteFn<'_>,
    ) -> StoreResult<(Job, Saved)> {
        // BEGIN IMMEDIATE takes the write lock up front: the read and the
        // write below see no other writer in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing = fetch_job(&mut tx, id).await?;
        let decided = decide_write(write, existing.as_ref())?;
        let cols = SpecColumns::of(&decided.spec);
        let spec = &decided.spec;
        let now = micros(Utc::now());
        let saved = if existing.is_none() {
            let schedule = decided.schedule.unwrap_or(Schedule::paused());
            sqlx::query(
                "INSERT INTO jobs (id, name, trigger, target, retry, metadata, misfire_grace_s,
                     coalesce_runs, max_instances, state, next_run_at, secret, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
            )
            .bind(id.as_str())
            .bind(&spec.name)
            .bind(cols.trigger.to_string())
            .bind(cols.target.to_string())
            .bind(cols.retry.to_string())
            .bind(cols.metadata.to_string())
            .bind(spec.misfire_grace_s.map(i64::from))
            .bind(spec.coalesce)
            .bind(i64::from(spec.max_instances))
            .bind(schedule.state.as_str())
            .bind(schedule.next_run_at.map(micros))
            .bind(new_secret)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Saved::Created
        } else {
            sqlx::query(
                "UPDATE jobs SET name = ?2, trigger = ?3, target = ?4, retry = ?5, metadata = ?6,
                     misfire_grace_s = ?7, coalesce_runs = ?8, max_instances = ?9,
                     state = COALESCE(?10, state),
                     next_run_at = CASE WHEN ?10 IS NULL THEN next_run_at ELSE ?11 END,
                     updated_at = ?12
                 WHERE id = ?1",
            )
            .bind(id.as_str())
            .bind(&spec.name)
            .bind(cols.trigger.to_string())
            .bind(cols.target.to_string())
            .bind(cols.retry.to_string())
            .bind(cols.metadata.to_string())
            .bind(spec.misfire_grace_s.map(i64::from))
            .bind(spec.coalesce)
            .bind(i64::from(spec.max_instances))
            .bind(decided.schedule.map(|s| s.state.as_str()))
            .bind(decided.schedule.and_then(|s| s.next_run_at).map(micros))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Saved::Updated
        };
        let job = fetch_job(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        if decided.schedule.is_some() {
            self.wakeups.jobs_changed();
        }
        Ok((job, saved))
    }

    async fn get_job(&self, id: &JobId) -> StoreResult<Option<Job>> {
        let mut conn = self.pool.acquire().await?;
        fetch_job(&mut conn, id).await
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
}
