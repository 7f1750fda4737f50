//! The PostgreSQL store: production, and several instances on one database.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    Job, JobFilter, JobWriteFn, RunSummary, Saved, SpecColumns, Store, StoreError, StoreResult,
    StoredSpec, decide_write,
};
use crate::domain::job::{JobId, Schedule};
use crate::domain::run::RunStatus;
use crate::wakeup::Wakeups;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `NOTIFY` channel: a hint to the other instances' schedulers.
pub const JOBS_CHANNEL: &str = "cronhook_jobs";

pub struct PgStore {
    pool: PgPool,
    wakeups: Arc<Wakeups>,
}

impl PgStore {
    pub async fn connect(url: &str, wakeups: Arc<Wakeups>) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, wakeups })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The job query with its last run; `job_query!(" WHERE …")` appends a
/// tail at compile time, so every statement stays a `&'static str`.
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
    LEFT JOIN LATERAL (
        SELECT id, status, scheduled_for, attempt_count, created_at, finished_at
        FROM runs r WHERE r.job_id = j.id
        ORDER BY r.created_at DESC, r.id DESC LIMIT 1
    ) lr ON true",
            $tail
        )
    };
}

#[derive(FromRow)]
struct JobRow {
    id: String,
    name: Option<String>,
    trigger: Value,
    target: Value,
    retry: Value,
    metadata: Value,
    misfire_grace_s: Option<i64>,
    coalesce_runs: bool,
    max_instances: i32,
    state: String,
    next_run_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    lr_id: Option<Uuid>,
    lr_status: Option<String>,
    lr_scheduled_for: Option<DateTime<Utc>>,
    lr_attempt_count: Option<i32>,
    lr_created_at: Option<DateTime<Utc>>,
    lr_finished_at: Option<DateTime<Utc>>,
}

impl JobRow {
    fn into_job(self) -> StoreResult<Job> {
        let (id, spec, state) = StoredSpec {
            id: self.id,
            name: self.name,
            trigger: self.trigger,
            target: self.target,
            retry: self.retry,
            metadata: self.metadata,
            misfire_grace_s: self.misfire_grace_s,
            coalesce: self.coalesce_runs,
            max_instances: self.max_instances.into(),
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
                id,
                status: RunStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("run {id}: status {status:?}")))?,
                scheduled_for,
                attempt_count: self.lr_attempt_count.unwrap_or(0).max(0) as u32,
                created_at,
                finished_at: self.lr_finished_at,
            }),
            _ => None,
        };
        Ok(Job {
            spec,
            id,
            schedule: Schedule {
                state,
                next_run_at: self.next_run_at,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_run,
        })
    }
}

async fn fetch_job(conn: &mut PgConnection, id: &JobId, lock: bool) -> StoreResult<Option<Job>> {
    let sql = if lock {
        job_query!(" WHERE j.id = $1 FOR UPDATE OF j")
    } else {
        job_query!(" WHERE j.id = $1")
    };
    sqlx::query_as::<_, JobRow>(sql)
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
        .map(JobRow::into_job)
        .transpose()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        // Two writers creating the same new id: the loser's insert hits the
        // primary key and it decides again, now seeing the stored job.
        for _ in 0..3 {
            let mut tx = self.pool.begin().await?;
            let existing = fetch_job(&mut tx, id, true).await?;
            let decided = decide_write(write, existing.as_ref())?;
            let cols = SpecColumns::of(&decided.spec);
            let spec = &decided.spec;
            let saved = if existing.is_none() {
                let schedule = decided.schedule.unwrap_or(Schedule::paused());
                let inserted = sqlx::query(
                    "INSERT INTO jobs (id, name, trigger, target, retry, metadata, misfire_grace_s,
                         coalesce_runs, max_instances, state, next_run_at, secret, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), now())",
                )
                .bind(id.as_str())
                .bind(&spec.name)
                .bind(&cols.trigger)
                .bind(&cols.target)
                .bind(&cols.retry)
                .bind(&cols.metadata)
                .bind(spec.misfire_grace_s.map(i64::from))
                .bind(spec.coalesce)
                .bind(spec.max_instances as i32)
                .bind(schedule.state.as_str())
                .bind(schedule.next_run_at)
                .bind(new_secret)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(e) if is_unique_violation(&e) => continue,
                    other => other?,
                };
                Saved::Created
            } else {
                sqlx::query(
                    "UPDATE jobs SET name = $2, trigger = $3, target = $4, retry = $5, metadata = $6,
                         misfire_grace_s = $7, coalesce_runs = $8, max_instances = $9,
                         state = COALESCE($10, state),
                         next_run_at = CASE WHEN $10::text IS NULL THEN next_run_at ELSE $11 END,
                         updated_at = now()
                     WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(&spec.name)
                .bind(&cols.trigger)
                .bind(&cols.target)
                .bind(&cols.retry)
                .bind(&cols.metadata)
                .bind(spec.misfire_grace_s.map(i64::from))
                .bind(spec.coalesce)
                .bind(spec.max_instances as i32)
                .bind(decided.schedule.map(|s| s.state.as_str()))
                .bind(decided.schedule.and_then(|s| s.next_run_at))
                .execute(&mut *tx)
                .await?;
                Saved::Updated
            };
            if decided.schedule.is_some() {
                sqlx::query("SELECT pg_notify($1, '')")
                    .bind(JOBS_CHANNEL)
                    .execute(&mut *tx)
                    .await?;
            }
            let job = fetch_job(&mut tx, id, false)
                .await?
                .ok_or(StoreError::NotFound)?;
            tx.commit().await?;
            if decided.schedule.is_some() {
                self.wakeups.jobs_changed();
            }
            return Ok((job, saved));
        }
        Err(StoreError::Conflict(format!(
            "job {id} is being created concurrently; try again"
        )))
    }

    async fn get_job(&self, id: &JobId) -> StoreResult<Option<Job>> {
        let mut conn = self.pool.acquire().await?;
        fetch_job(&mut conn, id, false).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        let mut query = QueryBuilder::<Postgres>::new(job_query!(""));
        query.push(" WHERE true");
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
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
