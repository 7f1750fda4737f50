//! The PostgreSQL store: production, and several instances on one database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::shape::{ClaimedJobColumns, StoredDefinition, StoredRetry, StoredTarget, StoredTrigger};
use super::{
    Attempt, AttemptRecord, ClaimOutcome, ClaimedParts, ClaimedRun, DeliveryRecord, Event,
    EventFilter, ExpiredLease, Gauges, Idempotency, IdempotentRequest, Instance, Job, JobFilter,
    JobSecret, NewEvent, NewSubscription, NewToken, PlanFn, RecoverFn, Run, RunFilter, RunSummary,
    Saved, Store, StoreError, StoreResult, Subscription, Tenant, TokenInfo, attempt_events,
    check_fingerprint, count, delay_ms, event_of, job_id, lease_policy, lease_subject, open_secret,
    record_events, run_cause, run_host, run_status, subscription_of, token_info, types_text,
    uuid_before, with_tenant,
};
use crate::domain::job::{JobDefinition, JobId, JobState, ParseContext, Schedule};
use crate::domain::lease;
use crate::domain::lifecycle::{self, JobChange, JobCommand};
use crate::domain::misfire::DueJob;
use crate::domain::retry::Outcome;
use crate::domain::run::RunCause;
use crate::domain::run::{INTERRUPTED, RunStatus};
use crate::domain::sealing::{SealingKey, is_sealed};
use crate::wakeup::Wakeups;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `NOTIFY` channels: hints to every instance's scheduler (jobs changed)
/// and dispatcher (runs to deliver).
pub const JOBS_CHANNEL: &str = "cronhook_jobs";
pub const RUNS_CHANNEL: &str = "cronhook_runs";
/// Events were written: streams on every instance read on.
pub const EVENTS_CHANNEL: &str = "cronhook_events";

/// The `application_name` of the LISTEN connection.
pub const LISTENER_NAME: &str = "cronhook-listener";

pub struct PgStore {
    pool: PgPool,
    wakeups: Arc<Wakeups>,
    key: SealingKey,
    /// A NOTIFY of events is on its way.
    notifying: Arc<AtomicBool>,
}

impl PgStore {
    pub async fn connect(url: &str, wakeups: Arc<Wakeups>, key: SealingKey) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        seal_what_is_plain(&pool, &key).await?;
        Ok(Self {
            pool,
            wakeups,
            key,
            notifying: Arc::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `record_attempts` when no run failed (the common case): the records,
    /// their events and the events' deliveries in one statement.
    async fn record_in_one_statement(
        &self,
        owner: &str,
        records: &[AttemptRecord],
        columns: &AttemptColumns,
    ) -> StoreResult<u64> {
        let mut e = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for record in records {
            for event in record_events(record) {
                e.0.push(record.run_id);
                e.1.push(event.id);
                e.2.push(event.kind.as_str());
                e.3.push(event.data.to_string());
            }
        }
        let sql = format!(
            "{RECORD_FENCED}, ev AS (
                 INSERT INTO events (id, tenant, type, job_id, run_id, data)
                 SELECT c.event_id, u.tenant, c.type, u.job_id, u.id, c.data
                 FROM UNNEST($11::uuid[], $12::uuid[], $13::text[], $14::text[])
                          AS c(run_id, event_id, type, data)
                      JOIN updated u ON u.id = c.run_id
                      JOIN inserted a ON a.run_id = c.run_id
                 WHERE u.job_id IS NOT NULL
                 RETURNING id, tenant, type, job_id
             ), d AS ({DELIVERIES_OF_EV})
             SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM ev),
                    (SELECT count(*) FROM d)"
        );
        let (recorded, events, deliveries): (i64, i64, i64) = columns
            .query_as(&sql, owner)
            .bind(&e.0)
            .bind(&e.1)
            .bind(&e.2)
            .bind(&e.3)
            .fetch_one(&self.pool)
            .await?;
        if records
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Retry { .. }))
        {
            // Other instances' dispatchers may be the ones to retry it.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(RUNS_CHANNEL)
                .execute(&self.pool)
                .await?;
        }
        if events > 0 {
            self.events_written(deliveries.max(0) as usize);
        }
        Ok(recorded.max(0) as u64)
    }

    /// After a transaction that wrote events committed: wakes this
    /// process's streams (and dispatcher, for deliveries) and tells the
    /// other instances. The NOTIFY is sent after the commit, outside the
    /// hot transactions (a NOTIFY takes a lock at commit), at most one per
    /// 10 ms whatever the rate of events: listeners read the table anyway.
    fn events_written(&self, deliveries: usize) {
        self.wakeups.events_changed();
        if deliveries > 0 {
            self.wakeups.runs_changed();
        }
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

    /// Inserts many new jobs, a few thousand per statement: the bulk path
    /// benchmarks seed with (the API creates jobs one at a time). Wakes
    /// every instance's scheduler once.
    pub async fn insert_jobs(
        &self,
        jobs: &[(JobId, JobDefinition, Schedule, String)],
    ) -> StoreResult<u64> {
        let tenant = Tenant::default_tenant();
        let mut inserted = 0;
        // 30 columns a row, under PostgreSQL's 65,535 parameters.
        for chunk in jobs.chunks(2000) {
            let mut query =
                QueryBuilder::<Postgres>::new(concat!("INSERT INTO jobs (", job_columns!(), ") "));
            query.push_values(chunk, |mut row, (id, definition, schedule, secret)| {
                let stored = StoredDefinition::of(definition, &self.key);
                push_job(
                    &mut row,
                    &tenant,
                    id,
                    &stored,
                    *schedule,
                    &self.key.seal(secret),
                );
            });
            inserted += query.build().execute(&self.pool).await?.rows_affected();
        }
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(JOBS_CHANNEL)
            .execute(&self.pool)
            .await?;
        self.wakeups.jobs_changed();
        Ok(inserted)
    }
}

/// The columns a new job is inserted with, in [`push_job`]'s order.
macro_rules! job_columns {
    () => {
        "tenant, id, name, trigger_type, cron_expr, cron_timezone, every_s, run_at, start_at,
         end_at, jitter_s, target_url, target_method, target_headers, target_body,
         target_secrets, timeout_s, misfire_grace_s, coalesce_runs, catchup_max, max_instances,
         pause_on_failure, max_attempts, backoff_initial_s, backoff_max_s, metadata, state, next_run_at, secret,
         created_at, updated_at"
    };
}
use job_columns;

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
        .push_bind(d.pause_on_failure)
        .push_bind(d.retry.max_attempts)
        .push_bind(d.retry.backoff_initial_s)
        .push_bind(d.retry.backoff_max_s)
        .push_bind(d.metadata.clone())
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
           j.start_at, j.end_at, j.jitter_s, j.target_url, j.target_method, j.target_headers,
           j.target_body, j.target_secrets, j.timeout_s, j.misfire_grace_s, j.coalesce_runs,
           j.catchup_max, j.max_instances, j.pause_on_failure, j.max_attempts, j.backoff_initial_s,
           j.backoff_max_s,
           j.metadata,
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

#[derive(FromRow)]
struct JobRow {
    id: String,
    #[sqlx(flatten)]
    definition: StoredDefinition,
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
    fn into_job(self, key: &SealingKey) -> StoreResult<Job> {
        let id = job_id(self.id)?;
        let definition = self.definition.into_definition(id.as_str(), key)?;
        let state = JobState::parse(&self.state)
            .ok_or_else(|| StoreError::Corrupt(format!("job {id}: state {:?}", self.state)))?;
        let schedule = Schedule::from_parts(state, self.next_run_at).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "job {id}: state {state:?} with next_run_at {:?}",
                self.next_run_at
            ))
        })?;
        let last_run = match (
            self.lr_id,
            self.lr_status,
            self.lr_scheduled_for,
            self.lr_created_at,
        ) {
            (Some(id), Some(status), Some(scheduled_for), Some(created_at)) => Some(RunSummary {
                id,
                status: run_status(&status)?,
                scheduled_for,
                attempt_count: count(self.lr_attempt_count.unwrap_or(0).into()),
                created_at,
                finished_at: self.lr_finished_at,
            }),
            _ => None,
        };
        Ok(Job {
            id,
            definition,
            schedule,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_run,
        })
    }
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
        .map(|row| row.into_job(key))
        .transpose()
}

#[derive(FromRow)]
struct DueRow {
    tenant: String,
    id: String,
    #[sqlx(flatten)]
    trigger: StoredTrigger,
    next_run_at: DateTime<Utc>,
    misfire_grace_s: Option<i64>,
    coalesce_runs: bool,
    catchup_max: i64,
    max_instances: i64,
    target_url: String,
    db_now: DateTime<Utc>,
}

const RUN_COLUMNS: &str = "id, job_id, scheduled_for, cause, status, occurrences, attempt_count, \
     deliver_after, next_attempt_at, created_at, finished_at";

#[derive(FromRow)]
struct RunRow {
    id: Uuid,
    job_id: String,
    scheduled_for: DateTime<Utc>,
    cause: String,
    status: String,
    occurrences: i64,
    attempt_count: i32,
    deliver_after: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl RunRow {
    fn into_run(self) -> StoreResult<Run> {
        Ok(Run {
            id: self.id,
            job_id: job_id(self.job_id)?,
            scheduled_for: self.scheduled_for,
            cause: run_cause(&self.cause)?,
            status: run_status(&self.status)?,
            occurrences: self.occurrences.max(0) as u64,
            attempt_count: count(self.attempt_count.into()),
            deliver_after: self.deliver_after,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

#[derive(FromRow)]
struct AttemptRow {
    number: i32,
    started_at: DateTime<Utc>,
    duration_ms: i64,
    status_code: Option<i32>,
    error: Option<String>,
    response_excerpt: Option<String>,
}

impl From<AttemptRow> for Attempt {
    fn from(a: AttemptRow) -> Self {
        Attempt {
            number: a.number.max(0) as u32,
            started_at: a.started_at,
            duration_ms: a.duration_ms.max(0) as u64,
            status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
            error: a.error,
            response_excerpt: a.response_excerpt,
        }
    }
}

/// Recording attempts ($1 the lease owner, $2..$10 [`AttemptColumns`]),
/// fenced: only the lease holder's write for this very attempt lands, and
/// the attempt row only where the run was. CTEs `updated` (id, tenant,
/// job id) and `inserted` (run id) for the statement that follows.
const RECORD_FENCED: &str = "WITH input AS (
                 SELECT * FROM UNNEST($2::uuid[], $3::int4[], $4::timestamptz[], $5::int8[],
                                      $6::int4[], $7::text[], $8::text[], $9::text[], $10::int8[])
                     AS u(run_id, number, started_at, duration_ms, status_code, error,
                          response_excerpt, status, delay_ms)
             ), updated AS (
                 UPDATE runs r
                 SET status = i.status,
                     next_attempt_at = CASE WHEN i.status = 'pending'
                         THEN now() + i.delay_ms * interval '1 millisecond' END,
                     finished_at = CASE WHEN i.status = 'pending' THEN NULL ELSE clock_timestamp() END,
                     lease_owner = NULL, lease_until = NULL
                 FROM input i
                 WHERE r.id = i.run_id AND r.status = 'running' AND r.lease_owner = $1
                   AND r.attempt_count = i.number
                 RETURNING r.id, r.tenant, r.job_id
             ), inserted AS (
                 INSERT INTO attempts (run_id, number, started_at, duration_ms, status_code, error,
                                       response_excerpt)
                 SELECT i.run_id, i.number, i.started_at, i.duration_ms, i.status_code, i.error,
                        i.response_excerpt
                 FROM input i JOIN updated u ON u.id = i.run_id
                 ON CONFLICT DO NOTHING
                 RETURNING run_id
             )";

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
}

impl AttemptColumns {
    /// `sql` (a statement starting with `RECORD_FENCED`) with its first ten
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
        }
    }
}

/// Runs to insert, column by column, for one `UNNEST` insert.
#[derive(Default)]
struct RunColumns {
    id: Vec<Uuid>,
    tenant: Vec<String>,
    host: Vec<Option<String>>,
    event_id: Vec<Uuid>,
    event_data: Vec<String>,
    job_id: Vec<String>,
    scheduled_for: Vec<DateTime<Utc>>,
    status: Vec<&'static str>,
    occurrences: Vec<i64>,
    deliver_after: Vec<DateTime<Utc>>,
}

#[derive(FromRow)]
struct ClaimedRow {
    id: Uuid,
    tenant: String,
    job_id: Option<String>,
    subscription_id: Option<String>,
    scheduled_for: DateTime<Utc>,
    attempt_count: i32,
    prior_attempts: i32,
    #[sqlx(flatten)]
    job: ClaimedJobColumns,
    subscription_url: Option<String>,
    subscription_secrets: Option<String>,
    secret: Option<String>,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    event_id: Option<Uuid>,
    event_type: Option<String>,
    event_at: Option<DateTime<Utc>>,
    event_job_id: Option<String>,
    event_run_id: Option<Uuid>,
    event_data: Option<String>,
    db_now: DateTime<Utc>,
}

impl ClaimedRow {
    fn into_parts(self) -> StoreResult<ClaimedParts> {
        let job = self.job.into_shape();
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
                Some(at),
                Some(job_id),
                Some(data),
            ) => {
                let event = event_of(id, &kind, at, job_id, self.event_run_id, &data)?;
                Some((subscription, url, self.subscription_secrets, event))
            }
            _ => None,
        };
        Ok(ClaimedParts {
            run_id: self.id,
            tenant: self.tenant,
            job_id: self.job_id,
            scheduled_for: self.scheduled_for,
            attempt_count: self.attempt_count.into(),
            prior_attempts: self.prior_attempts.into(),
            job,
            delivery,
            secret: self.secret,
            previous: self.previous_secret.zip(self.previous_secret_expires_at),
            now: self.db_now,
        })
    }
}

#[derive(FromRow)]
struct ExpiredRow {
    id: Uuid,
    tenant: String,
    job_id: Option<String>,
    subscription_id: Option<String>,
    attempt_count: i32,
    prior_attempts: i32,
    max_attempts: Option<i64>,
    backoff_initial_s: Option<i64>,
    backoff_max_s: Option<i64>,
}

impl ExpiredRow {
    fn subject(&self) -> String {
        lease_subject(self.job_id.as_deref(), self.subscription_id.as_deref())
    }

    fn policy(&self) -> crate::domain::retry::RetryPolicy {
        lease_policy(
            &self.subject(),
            self.max_attempts
                .zip(self.backoff_initial_s)
                .zip(self.backoff_max_s)
                .map(
                    |((max_attempts, backoff_initial_s), backoff_max_s)| StoredRetry {
                        max_attempts,
                        backoff_initial_s,
                        backoff_max_s,
                    },
                ),
        )
    }
}

#[derive(FromRow)]
struct SecretRow {
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl SecretRow {
    fn open(self, key: &SealingKey) -> StoreResult<JobSecret> {
        open_secret(
            key,
            &self.secret,
            self.previous_secret.zip(self.previous_secret_expires_at),
        )
    }
}

#[derive(FromRow)]
struct TokenRow {
    id: String,
    name: Option<String>,
    tenant: String,
    role: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str = "id, name, tenant, role, created_at, last_used_at, revoked_at";

impl TokenRow {
    fn into_info(self) -> StoreResult<TokenInfo> {
        token_info(
            self.id,
            self.name,
            &self.tenant,
            &self.role,
            self.created_at,
            self.last_used_at,
            self.revoked_at,
        )
    }
}

/// At start, under a lock other instances wait on: checks the key against
/// the fingerprint the store keeps (recording it on the first start), then
/// seals what was stored before sealing: signing secrets, and sensitive
/// header values and URL passwords, which move to `target_secrets`.
async fn seal_what_is_plain(pool: &PgPool, key: &SealingKey) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE settings IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'key_fingerprint'")
            .fetch_optional(&mut *tx)
            .await?;
    check_fingerprint(key, stored.as_deref())?;
    if stored.is_none() {
        sqlx::query("INSERT INTO settings (key, value) VALUES ('key_fingerprint', $1)")
            .bind(key.fingerprint())
            .execute(&mut *tx)
            .await?;
    }
    let plain = sqlx::query_as::<_, PlainRow>(
        "SELECT tenant, id, secret, previous_secret, target_url, target_method, target_headers,
                target_body, target_secrets, timeout_s
         FROM jobs WHERE secret NOT LIKE 'enc:v1:%'",
    )
    .fetch_all(&mut *tx)
    .await?;
    let sealed = plain.len();
    for row in plain {
        let seal = |s: String| if is_sealed(&s) { s } else { key.seal(&s) };
        let target = StoredTarget::of(&row.target.into_target(&row.id, key)?, key);
        sqlx::query(
            "UPDATE jobs SET secret = $3, previous_secret = $4, target_url = $5,
                 target_headers = $6, target_secrets = $7
             WHERE tenant = $1 AND id = $2",
        )
        .bind(&row.tenant)
        .bind(&row.id)
        .bind(seal(row.secret))
        .bind(row.previous_secret.map(seal))
        .bind(&target.url)
        .bind(&target.headers)
        .bind(&target.secrets)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if sealed > 0 {
        tracing::info!(jobs = sealed, "sealed the secrets stored before sealing");
    }
    Ok(())
}

/// A job as stored before sealing: its signing secrets and target in
/// plain text.
#[derive(FromRow)]
struct PlainRow {
    tenant: String,
    id: String,
    secret: String,
    previous_secret: Option<String>,
    #[sqlx(flatten)]
    target: StoredTarget,
}

#[derive(FromRow)]
struct SubscriptionRow {
    id: String,
    target_url: String,
    target_secrets: Option<String>,
    types: String,
    job_id: Option<String>,
    created_at: DateTime<Utc>,
}

impl SubscriptionRow {
    fn into_subscription(self, key: &SealingKey) -> StoreResult<Subscription> {
        subscription_of(
            self.id,
            self.target_url,
            self.target_secrets,
            &self.types,
            self.job_id,
            self.created_at,
            key,
        )
    }
}

#[derive(FromRow)]
struct DeliveryRow {
    id: Uuid,
    event_id: Option<Uuid>,
    status: String,
    attempt_count: i32,
    created_at: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    status_code: Option<i32>,
    error: Option<String>,
}

/// Seconds until something is due, where the past counts as now.
fn non_negative(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
}

/// The ids of the instances alive now (database clock), as
/// [`lease::live_owners`] decides: only their leases are honoured.
async fn live_instances(conn: &mut PgConnection, timeout: Duration) -> StoreResult<Vec<String>> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let beats: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, heartbeat_at FROM instances")
            .fetch_all(&mut *conn)
            .await?;
    Ok(lease::live_owners(
        beats.iter().map(|(id, at)| (id.as_str(), *at)),
        now,
        timeout,
    ))
}

/// Records what a request with an Idempotency-Key made, in its
/// transaction. An older key of the same name (past its window, not yet
/// cleaned) is replaced; one recorded meanwhile by a concurrent request
/// makes this one give way.
async fn record_idempotency(
    conn: &mut PgConnection,
    tenant: &Tenant,
    idempotency: &Idempotency,
    resource_id: &str,
) -> StoreResult<()> {
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
    .execute(conn)
    .await?;
    if recorded.rows_affected() == 0 {
        return Err(StoreError::IdempotencyKeyTaken);
    }
    Ok(())
}

/// The deliveries of the events a statement wrote in its CTE `ev` (id,
/// tenant, type, job_id): a pending run for each subscription that wants
/// one, by the rule of `Interest::wants` (its types name the event's, and
/// its job, if it has one, is the event's).
const DELIVERIES_OF_EV: &str = "
    INSERT INTO runs (id, tenant, subscription_id, event_id, scheduled_for, cause, status,
                      occurrences, deliver_after, next_attempt_at, host)
    SELECT gen_random_uuid(), s.tenant, s.id, ev.id, now(), 'event', 'pending', 1, now(), now(),
           s.host
    FROM ev JOIN subscriptions s
         ON s.tenant = ev.tenant AND ev.type = ANY(string_to_array(s.types, ','))
            AND (s.job_id IS NULL OR s.job_id = ev.job_id)
    RETURNING 1";

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

/// Writes events in the caller's transaction, in one statement with a
/// pending delivery run for each subscription that wants one. Returns how
/// many deliveries it made; the caller tells the other instances after
/// committing ([`PgStore::events_written`]).
async fn write_events(
    conn: &mut PgConnection,
    events: &[(String, NewEvent)],
) -> StoreResult<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    let c = EventColumns::of(events);
    let deliveries: i64 = sqlx::query_scalar(&format!(
        "WITH ev AS (
             INSERT INTO events (id, tenant, type, job_id, run_id, data)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[],
                                  $6::text[])
             RETURNING id, tenant, type, job_id
         ), d AS ({DELIVERIES_OF_EV})
         SELECT count(*) FROM d"
    ))
    .bind(&c.id)
    .bind(&c.tenant)
    .bind(&c.kind)
    .bind(&c.job_id)
    .bind(&c.run_id)
    .bind(&c.data)
    .fetch_one(&mut *conn)
    .await?;
    Ok(deliveries.max(0) as usize)
}

/// Pauses the jobs of failed runs whose `pause_on_failure` says so, in the
/// caller's transaction; returns the events it makes. `failed`: tenant,
/// job id, run id.
async fn pause_failed_jobs(
    conn: &mut PgConnection,
    failed: &[(String, String, Uuid)],
) -> StoreResult<Vec<(String, NewEvent)>> {
    if failed.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = failed.iter().map(|f| f.0.as_str()).collect();
    let ids: Vec<&str> = failed.iter().map(|f| f.1.as_str()).collect();
    let jobs: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT j.tenant, j.id, j.state, j.pause_on_failure
         FROM jobs j JOIN UNNEST($1::text[], $2::text[]) AS u(tenant, id)
              ON j.tenant = u.tenant AND j.id = u.id
         FOR UPDATE OF j",
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut events = Vec::new();
    for (tenant, id, state, pause_on_failure) in jobs {
        let state = JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("job {id}: state {state:?}")))?;
        if !crate::domain::event::pauses_on_failure(pause_on_failure, state) {
            continue;
        }
        let Some((_, _, run_id)) = failed.iter().find(|f| f.0 == tenant && f.1 == id) else {
            continue;
        };
        sqlx::query(
            "UPDATE jobs SET state = 'paused', next_run_at = NULL, updated_at = now()
             WHERE tenant = $1 AND id = $2",
        )
        .bind(&tenant)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        tracing::warn!(tenant = %tenant, job_id = %id, run_id = %run_id, "job paused: its run failed (pause_on_failure)");
        events.push((
            tenant,
            crate::domain::event::job_paused_by_failure(&id, *run_id),
        ));
    }
    if !events.is_empty() {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(JOBS_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(events)
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
        tenant: &Tenant,
        id: &JobId,
        command: &JobCommand,
        ctx: ParseContext,
        idempotency: Option<&Idempotency>,
    ) -> StoreResult<(Job, Saved)> {
        // Two writers creating the same new id: the loser's insert hits the
        // primary key and it decides again, now seeing the stored job.
        for _ in 0..3 {
            let mut tx = self.pool.begin().await?;
            let existing = fetch_job(&mut tx, &self.key, tenant, id, true).await?;
            let change = lifecycle::decide(id.as_str(), existing.as_ref(), command, ctx.clone())?;
            let events = with_tenant(
                tenant,
                crate::domain::event::for_job_change(id.as_str(), existing.as_ref(), &change),
            );
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
                    let mut query = QueryBuilder::<Postgres>::new(concat!(
                        "INSERT INTO jobs (",
                        job_columns!(),
                        ") "
                    ));
                    query.push_values([()], |mut row, ()| {
                        push_job(
                            &mut row,
                            tenant,
                            id,
                            &StoredDefinition::of(&definition, &self.key),
                            schedule,
                            &self.key.seal(&secret),
                        );
                    });
                    match query.build().execute(&mut *tx).await {
                        Err(e) if is_unique_violation(&e) => continue,
                        other => other?,
                    };
                    if let Some(idempotency) = idempotency {
                        record_idempotency(&mut tx, tenant, idempotency, id.as_str()).await?;
                    }
                    (Saved::Created, true)
                }
                JobChange::Update {
                    definition,
                    schedule,
                } => {
                    let d = StoredDefinition::of(&definition, &self.key);
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
                             updated_at = now()
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
                    .execute(&mut *tx)
                    .await?;
                    (Saved::Updated, schedule.is_some())
                }
            };
            if schedule_changed {
                sqlx::query("SELECT pg_notify($1, '')")
                    .bind(JOBS_CHANNEL)
                    .execute(&mut *tx)
                    .await?;
            }
            let deliveries = write_events(&mut tx, &events).await?;
            let job = fetch_job(&mut tx, &self.key, tenant, id, false)
                .await?
                .ok_or(StoreError::NotFound)?;
            tx.commit().await?;
            if schedule_changed {
                self.wakeups.jobs_changed();
            }
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
        let mut conn = self.pool.acquire().await?;
        fetch_job(&mut conn, &self.key, tenant, id, false).await
    }

    async fn job_exists(&self, tenant: &Tenant, id: &JobId) -> StoreResult<bool> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM jobs WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    async fn list_jobs(&self, tenant: &Tenant, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        let mut query = QueryBuilder::<Postgres>::new(job_query!(" WHERE j.tenant = "));
        query.push_bind(tenant.as_str().to_string());
        if let Some(state) = filter.state {
            query.push(" AND j.state = ").push_bind(state.as_str());
        }
        if let Some(text) = &filter.search {
            let text = text.to_lowercase();
            query
                .push(" AND (strpos(lower(j.id), ")
                .push_bind(text.clone())
                .push(") > 0 OR strpos(lower(COALESCE(j.name, '')), ")
                .push_bind(text)
                .push(") > 0)");
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
            .map(|row| row.into_job(&self.key))
            .collect()
    }

    async fn delete_job(&self, tenant: &Tenant, id: &JobId) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM jobs WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        let events = with_tenant(tenant, vec![crate::domain::event::job_deleted(id.as_str())]);
        let deliveries = write_events(&mut tx, &events).await?;
        tx.commit().await?;
        self.events_written(deliveries);
        Ok(true)
    }

    async fn claim_due_jobs(&self, limit: u32, plan: &PlanFn<'_>) -> StoreResult<ClaimOutcome> {
        let mut tx = self.pool.begin().await?;
        let due = sqlx::query_as::<_, DueRow>(
            "SELECT tenant, id, trigger_type, cron_expr, cron_timezone, every_s, run_at, start_at,
                    end_at, jitter_s, next_run_at, misfire_grace_s, coalesce_runs, catchup_max,
                    max_instances, target_url, now() AS db_now
             FROM jobs
             WHERE next_run_at <= now()
             ORDER BY next_run_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok(ClaimOutcome::default());
        }
        // Counted in a statement of its own, after the locks are held, so
        // that it sees every run committed by an earlier lock holder.
        let tenants: Vec<String> = due.iter().map(|d| d.tenant.clone()).collect();
        let ids: Vec<String> = due.iter().map(|d| d.id.clone()).collect();
        let counts: std::collections::HashMap<(String, String), i64> =
            sqlx::query_as::<_, (String, String, i64)>(
                "SELECT r.tenant, r.job_id, count(*)
                 FROM runs r JOIN UNNEST($1::text[], $2::text[]) AS u(tenant, id)
                      ON r.tenant = u.tenant AND r.job_id = u.id
                 WHERE r.status IN ('pending', 'running')
                 GROUP BY r.tenant, r.job_id",
            )
            .bind(&tenants)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(tenant, id, n)| ((tenant, id), n))
            .collect();

        let mut runs = RunColumns::default();
        let (mut job_tenants, mut job_ids) = (Vec::new(), Vec::new());
        let (mut next_runs, mut states) = (Vec::new(), Vec::new());
        for row in due {
            let key = (row.tenant, row.id);
            let host = run_host(&row.target_url);
            let schedule = match row.trigger.into_trigger(&key.1) {
                Ok(trigger) => {
                    let job = DueJob {
                        trigger: &trigger,
                        next_run_at: row.next_run_at,
                        misfire_grace_s: row.misfire_grace_s.and_then(|g| u32::try_from(g).ok()),
                        coalesce: row.coalesce_runs,
                        catchup_max: count(row.catchup_max).max(1),
                        max_instances: count(row.max_instances).max(1),
                        in_flight: count(counts.get(&key).copied().unwrap_or(0)),
                    };
                    let decision = plan(&job, row.db_now);
                    for run in decision.runs {
                        let run_id = Uuid::now_v7();
                        runs.id.push(run_id);
                        runs.tenant.push(key.0.clone());
                        runs.job_id.push(key.1.clone());
                        runs.host.push(host.clone());
                        runs.scheduled_for.push(run.scheduled_for);
                        runs.status.push(run.status.as_str());
                        runs.occurrences
                            .push(run.occurrences.min(i64::MAX as u64) as i64);
                        runs.deliver_after.push(run.deliver_after);
                        // Its run.created event, written if the run is.
                        let created = crate::domain::event::run_created(
                            &key.1,
                            run_id,
                            run.status,
                            RunCause::Schedule,
                            run.scheduled_for,
                            run.occurrences,
                        );
                        runs.event_id.push(created.id);
                        runs.event_data.push(created.data.to_string());
                    }
                    decision.schedule
                }
                Err(e) => {
                    // Leave it for an operator, without spinning on it.
                    tracing::error!(tenant = %key.0, job_id = %key.1, error = %e, "cannot schedule job; retrying in an hour");
                    Schedule::Scheduled {
                        next_run_at: row.db_now + chrono::TimeDelta::hours(1),
                    }
                }
            };
            job_tenants.push(key.0);
            job_ids.push(key.1);
            next_runs.push(schedule.next_run_at());
            states.push(schedule.state().as_str());
        }
        let mut events: Vec<(String, NewEvent)> = Vec::new();
        for (i, state) in states.iter().enumerate() {
            if *state == JobState::Completed.as_str() {
                events.push((
                    job_tenants[i].clone(),
                    crate::domain::event::job_completed(&job_ids[i]),
                ));
            }
        }

        // The runs and their run.created events (and the events'
        // deliveries) in one statement: an occurrence that already has its
        // run gets neither.
        let inserted: Vec<(String, i64)> = if runs.id.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(&format!(
                "WITH u AS (
                     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[],
                                          $5::int8[], $6::timestamptz[], $7::text[], $8::text[],
                                          $9::uuid[], $10::text[])
                         AS u(id, job_id, scheduled_for, status, occurrences, deliver_after,
                              tenant, host, event_id, event_data)
                 ), ins AS (
                     INSERT INTO runs (id, tenant, job_id, scheduled_for, cause, status,
                                       occurrences, deliver_after, next_attempt_at, finished_at,
                                       host)
                     SELECT u.id, u.tenant, u.job_id, u.scheduled_for, 'schedule', u.status,
                            u.occurrences, u.deliver_after,
                            CASE WHEN u.status = 'pending' THEN u.deliver_after END,
                            CASE WHEN u.status = 'pending' THEN NULL ELSE clock_timestamp() END,
                            u.host
                     FROM u
                     ON CONFLICT DO NOTHING
                     RETURNING id, tenant, job_id, status
                 ), ev AS (
                     INSERT INTO events (id, tenant, type, job_id, run_id, data)
                     SELECT u.event_id, ins.tenant, 'run.created', ins.job_id, ins.id, u.event_data
                     FROM ins JOIN u ON u.id = ins.id
                     RETURNING id, tenant, type, job_id
                 ), d AS ({DELIVERIES_OF_EV})
                 SELECT ins.status, (SELECT count(*) FROM d) FROM ins"
            ))
            .bind(&runs.id)
            .bind(&runs.job_id)
            .bind(&runs.scheduled_for)
            .bind(&runs.status)
            .bind(&runs.occurrences)
            .bind(&runs.deliver_after)
            .bind(&runs.tenant)
            .bind(&runs.host)
            .bind(&runs.event_id)
            .bind(&runs.event_data)
            .fetch_all(&mut *tx)
            .await?
        };
        sqlx::query(
            "UPDATE jobs j SET next_run_at = u.next_run_at, state = u.state
             FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[])
                  AS u(id, next_run_at, state, tenant)
             WHERE j.tenant = u.tenant AND j.id = u.id",
        )
        .bind(&job_ids)
        .bind(&next_runs)
        .bind(&states)
        .bind(&job_tenants)
        .execute(&mut *tx)
        .await?;
        let mut outcome = ClaimOutcome {
            jobs: job_ids.len(),
            ..Default::default()
        };
        let mut deliveries = 0;
        for (status, delivered) in &inserted {
            outcome.count(run_status(status)?);
            deliveries = delivered.max(&0).unsigned_abs() as usize;
        }
        if outcome.pending > 0 {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(RUNS_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        deliveries += write_events(&mut tx, &events).await?;
        tx.commit().await?;
        if outcome.pending > 0 {
            self.wakeups.runs_changed();
        }
        if outcome.runs > 0 || !events.is_empty() {
            self.events_written(deliveries);
        }
        Ok(outcome)
    }

    async fn next_due_in(&self) -> StoreResult<Option<Duration>> {
        // NULL when no job is scheduled (GREATEST would turn that into 0).
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM (min(next_run_at) - clock_timestamp()))::float8
             FROM jobs WHERE next_run_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(seconds.map(non_negative))
    }

    async fn create_manual_run(
        &self,
        tenant: &Tenant,
        id: &JobId,
        idempotency: Option<&Idempotency>,
    ) -> StoreResult<Run> {
        let mut tx = self.pool.begin().await?;
        let found: Option<(i64, String)> = sqlx::query_as(
            "SELECT max_instances, target_url FROM jobs WHERE tenant = $1 AND id = $2 FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (max_instances, target_url) = found.ok_or(StoreError::NotFound)?;
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM runs
             WHERE tenant = $1 AND job_id = $2 AND status IN ('pending', 'running')",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let status = lifecycle::manual_run_status(count(max_instances), count(running));
        let run = sqlx::query_as::<_, RunRow>(&format!(
            "INSERT INTO runs (id, job_id, scheduled_for, cause, status, occurrences, deliver_after,
                               next_attempt_at, finished_at, tenant, host)
             VALUES ($1, $2, now(), 'manual', $3, 1, now(),
                     CASE WHEN $3 = 'pending' THEN now() END,
                     CASE WHEN $3 = 'pending' THEN NULL ELSE clock_timestamp() END, $4, $5)
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(tenant.as_str())
        .bind(run_host(&target_url))
        .fetch_one(&mut *tx)
        .await?
        .into_run()?;
        if let Some(idempotency) = idempotency {
            record_idempotency(&mut tx, tenant, idempotency, &run.id.to_string()).await?;
        }
        if status == RunStatus::Pending {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(RUNS_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        let events = with_tenant(
            tenant,
            vec![crate::domain::event::run_created(
                id.as_str(),
                run.id,
                status,
                RunCause::Manual,
                run.scheduled_for,
                1,
            )],
        );
        let deliveries = write_events(&mut tx, &events).await?;
        tx.commit().await?;
        if status == RunStatus::Pending {
            self.wakeups.runs_changed();
        }
        self.events_written(deliveries);
        Ok(run)
    }

    async fn list_runs(&self, tenant: &Tenant, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = "
        ));
        query
            .push_bind(tenant.as_str().to_string())
            .push(" AND subscription_id IS NULL");
        if let Some(job_id) = &filter.job_id {
            query
                .push(" AND job_id = ")
                .push_bind(job_id.as_str().to_string());
        }
        match filter.statuses.as_slice() {
            [] => {}
            // Spelled out, so that the partial index of failed runs applies.
            [RunStatus::Failed] => {
                query.push(" AND status = 'failed'");
            }
            statuses => {
                let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
                query.push(" AND status = ANY(").push_bind(names).push(")");
            }
        }
        if let Some(after) = filter.created_after {
            query.push(" AND created_at > ").push_bind(after);
        }
        if let Some(before) = filter.created_before {
            query.push(" AND created_at < ").push_bind(before);
        }
        if let Some(cursor) = filter.cursor {
            query
                .push(" AND (created_at, id) < (")
                .push_bind(cursor.created_at)
                .push(", ")
                .push_bind(cursor.id)
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
        tenant: &Tenant,
        scope: &str,
        key: &str,
        within: Duration,
    ) -> StoreResult<Option<IdempotentRequest>> {
        Ok(sqlx::query_as::<_, (String, String)>(
            "SELECT fingerprint, resource_id FROM idempotency_keys
             WHERE tenant = $4 AND scope = $1 AND key = $2
               AND created_at > now() - make_interval(secs => $3)",
        )
        .bind(scope)
        .bind(key)
        .bind(within.as_secs_f64())
        .bind(tenant.as_str())
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
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (tenant, scope, key) IN (
                 SELECT tenant, scope, key FROM idempotency_keys
                 WHERE created_at < now() - make_interval(secs => $1)
                 ORDER BY created_at LIMIT $2)",
        )
        .bind(older_than.as_secs_f64())
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn get_run(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Option<(Run, Vec<Attempt>)>> {
        let run = sqlx::query_as::<_, RunRow>(&format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE tenant = $1 AND id = $2 AND subscription_id IS NULL"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(run) = run else { return Ok(None) };
        let attempts = sqlx::query_as::<_, AttemptRow>(
            "SELECT number, started_at, duration_ms, status_code, error, response_excerpt
             FROM attempts WHERE run_id = $1 ORDER BY number",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((
            run.into_run()?,
            attempts.into_iter().map(Attempt::from).collect(),
        )))
    }

    async fn delete_expired_runs(&self, retention: Duration, batch: u32) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM runs WHERE id IN (
                 SELECT id FROM runs
                 WHERE finished_at < now() - make_interval(secs => $1)
                 ORDER BY finished_at
                 LIMIT $2)",
        )
        .bind(retention.as_secs_f64())
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
        owner: &str,
        limit: u32,
        lease_margin: Duration,
        busy_hosts: &[String],
    ) -> StoreResult<Vec<ClaimedRun>> {
        // One statement, one short transaction, committed before any request.
        let rows = sqlx::query_as::<_, ClaimedRow>(
            "WITH due AS (
                 SELECT id FROM runs
                 WHERE status = 'pending' AND next_attempt_at <= now()
                   AND (host IS NULL OR NOT (host = ANY($5)))
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
                           r.scheduled_for, r.attempt_count, r.prior_attempts
             )
             SELECT c.id, c.tenant, c.job_id, c.subscription_id, c.scheduled_for, c.attempt_count,
                    c.prior_attempts, j.target_url, j.target_method, j.target_headers,
                    j.target_body, j.target_secrets, j.timeout_s, j.max_attempts,
                    j.backoff_initial_s, j.backoff_max_s,
                    s.target_url AS subscription_url, s.target_secrets AS subscription_secrets,
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
        .bind(busy_hosts)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| row.into_parts()?.into_claimed(&self.key))
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

    async fn record_attempts(&self, owner: &str, records: &[AttemptRecord]) -> StoreResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        let columns = AttemptColumns::of(records);
        // Fenced (RECORD_FENCED). The events of what was recorded go
        // with it: in the same statement
        // (made for every record, written for those recorded), or, when a
        // run failed and its job may pause, in the same transaction.
        if records.iter().all(|r| r.outcome != Outcome::Failed) {
            return self.record_in_one_statement(owner, records, &columns).await;
        }
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "{RECORD_FENCED}
             SELECT u.id, u.tenant, u.job_id FROM updated u JOIN inserted a ON a.run_id = u.id",
        );
        let recorded: Vec<(Uuid, String, Option<String>)> =
            columns.query_as(&sql, owner).fetch_all(&mut *tx).await?;
        let (events, failed) = attempt_events(records, &recorded);
        let mut events = events;
        events.extend(pause_failed_jobs(&mut tx, &failed).await?);
        if records
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Retry { .. }))
        {
            // Other instances' dispatchers may be the ones to retry it.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(RUNS_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        let deliveries = write_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
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
        let ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
        let numbers: Vec<i32> = runs.iter().map(|(_, n)| *n as i32).collect();
        let done = sqlx::query(
            "UPDATE runs r
             SET status = 'pending', attempt_count = r.attempt_count - 1,
                 next_attempt_at = now() + make_interval(secs => $4),
                 lease_owner = NULL, lease_until = NULL, attempt_started_at = NULL
             FROM UNNEST($2::uuid[], $3::int4[]) AS u(id, number)
             WHERE r.id = u.id AND r.status = 'running' AND r.lease_owner = $1
               AND r.attempt_count = u.number",
        )
        .bind(owner)
        .bind(&ids)
        .bind(&numbers)
        .bind(after.as_secs_f64())
        .execute(&self.pool)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(RUNS_CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn recover_expired_leases(
        &self,
        limit: u32,
        instance_timeout: Duration,
        recover: &RecoverFn<'_>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let live = live_instances(&mut tx, instance_timeout).await?;
        let expired = sqlx::query_as::<_, ExpiredRow>(
            "SELECT r.id, r.tenant, r.job_id, r.subscription_id, r.attempt_count, r.prior_attempts,
                    j.max_attempts, j.backoff_initial_s, j.backoff_max_s
             FROM runs r LEFT JOIN jobs j ON j.tenant = r.tenant AND j.id = r.job_id
             WHERE r.status = 'running'
               AND (r.lease_until < now() OR NOT (r.lease_owner = ANY($2)))
             ORDER BY r.lease_until
             LIMIT $1
             FOR UPDATE OF r SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .bind(&live)
        .fetch_all(&mut *tx)
        .await?;
        if expired.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let (mut ids, mut statuses, mut delays) = (Vec::new(), Vec::new(), Vec::new());
        let (mut records, mut recorded) = (Vec::new(), Vec::new());
        for row in expired {
            let subject = row.subject();
            let policy = row.policy();
            let attempt = count(row.attempt_count.into());
            let outcome = recover(&ExpiredLease {
                run_id: row.id,
                subject: &subject,
                attempt,
                prior_attempts: count(row.prior_attempts.into()),
                policy,
            });
            ids.push(row.id);
            statuses.push(outcome.run_status().as_str());
            delays.push(delay_ms(outcome));
            records.push(AttemptRecord::interrupted(row.id, attempt, outcome));
            recorded.push((row.id, row.tenant, row.job_id));
        }
        // The cut-off attempt is recorded, then the run written as decided.
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
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(RUNS_CHANNEL)
            .execute(&mut *tx)
            .await?;
        let (mut events, failed) = attempt_events(&records, &recorded);
        events.extend(pause_failed_jobs(&mut tx, &failed).await?);
        let deliveries = write_events(&mut tx, &events).await?;
        tx.commit().await?;
        self.wakeups.runs_changed();
        if !events.is_empty() {
            self.events_written(deliveries);
        }
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

    async fn deregister_instance(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_instances(&self) -> StoreResult<Vec<Instance>> {
        let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>, String, i64)> = sqlx::query_as(
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
                started_at,
                heartbeat_at,
                version,
                leases: leases.max(0) as u64,
            })
            .collect())
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

    async fn get_secret(&self, tenant: &Tenant, id: &JobId) -> StoreResult<Option<JobSecret>> {
        sqlx::query_as::<_, SecretRow>(
            "SELECT secret, previous_secret, previous_secret_expires_at FROM jobs
             WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.open(&self.key))
        .transpose()
    }

    async fn rotate_secret(
        &self,
        tenant: &Tenant,
        id: &JobId,
        new_secret: &str,
        grace: Duration,
    ) -> StoreResult<Option<JobSecret>> {
        sqlx::query_as::<_, SecretRow>(
            "UPDATE jobs SET previous_secret = secret, secret = $2,
                 previous_secret_expires_at = now() + make_interval(secs => $3)
             WHERE tenant = $4 AND id = $1
             RETURNING secret, previous_secret, previous_secret_expires_at",
        )
        .bind(id.as_str())
        .bind(self.key.seal(new_secret))
        .bind(grace.as_secs_f64())
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.open(&self.key))
        .transpose()
    }

    async fn create_token(&self, token: &NewToken) -> StoreResult<TokenInfo> {
        sqlx::query_as::<_, TokenRow>(&format!(
            "INSERT INTO tokens (id, name, tenant, role, hash) VALUES ($1, $2, $3, $4, $5)
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(&token.id)
        .bind(&token.name)
        .bind(token.tenant.as_str())
        .bind(token.role.as_str())
        .bind(&token.hash)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e {
            e if is_unique_violation(&e) => {
                StoreError::Conflict("a token with this id or value exists".into())
            }
            e => e.into(),
        })?
        .into_info()
    }

    async fn find_token(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        sqlx::query_as::<_, TokenRow>(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1 AND revoked_at IS NULL"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?
        .map(TokenRow::into_info)
        .transpose()
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        sqlx::query_as::<_, TokenRow>(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TokenRow::into_info)
        .collect()
    }

    async fn revoke_token(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_token(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE tokens SET last_used_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tokens_exist(&self) -> StoreResult<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tokens WHERE revoked_at IS NULL)")
                .fetch_one(&self.pool)
                .await?,
        )
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
            query
                .push(" AND (txid, seq) > (SELECT txid, seq FROM events WHERE id = ")
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
            .push(" ORDER BY txid, seq LIMIT ")
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

    async fn delete_expired_events(&self, older_than: Duration, batch: u32) -> StoreResult<u64> {
        // Ids are UUIDv7: in time order, so the primary key finds the old ones.
        let done = sqlx::query(
            "DELETE FROM events WHERE id IN (
                 SELECT id FROM events WHERE id < $1 ORDER BY id LIMIT $2)",
        )
        .bind(uuid_before(older_than))
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn create_subscription(
        &self,
        tenant: &Tenant,
        subscription: &NewSubscription,
    ) -> StoreResult<Subscription> {
        let stored = StoredTarget::of(&subscription.target, &self.key);
        let row = sqlx::query_as::<_, SubscriptionRow>(
            "INSERT INTO subscriptions (tenant, id, target_url, target_secrets, types, job_id, secret,
                                        host)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING id, target_url, target_secrets, types, job_id, created_at",
        )
        .bind(tenant.as_str())
        .bind(&subscription.id)
        .bind(&stored.url)
        .bind(&stored.secrets)
        .bind(types_text(&subscription.interest.types))
        .bind(&subscription.interest.job_id)
        .bind(self.key.seal(&subscription.secret))
        .bind(run_host(&stored.url))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e {
            e if is_unique_violation(&e) => {
                StoreError::Conflict(format!("subscription {} exists", subscription.id))
            }
            e => e.into(),
        })?;
        row.into_subscription(&self.key)
    }

    async fn list_subscriptions(&self, tenant: &Tenant) -> StoreResult<Vec<Subscription>> {
        sqlx::query_as::<_, SubscriptionRow>(
            "SELECT id, target_url, target_secrets, types, job_id, created_at FROM subscriptions
             WHERE tenant = $1 ORDER BY created_at, id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| row.into_subscription(&self.key))
        .collect()
    }

    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<Option<Subscription>> {
        sqlx::query_as::<_, SubscriptionRow>(
            "SELECT id, target_url, target_secrets, types, job_id, created_at FROM subscriptions
             WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.into_subscription(&self.key))
        .transpose()
    }

    async fn subscription_secret(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<String>> {
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT secret FROM subscriptions WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        sealed
            .map(|s| open_secret(&self.key, &s, None).map(|secret| secret.secret))
            .transpose()
    }

    async fn delete_subscription(&self, tenant: &Tenant, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM subscriptions WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_deliveries(
        &self,
        tenant: &Tenant,
        subscription_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT r.id, r.event_id, r.status, r.attempt_count, r.created_at, r.next_attempt_at,
                    r.finished_at, a.status_code, a.error
             FROM runs r
             LEFT JOIN LATERAL (
                 SELECT status_code, error FROM attempts
                 WHERE run_id = r.id ORDER BY number DESC LIMIT 1
             ) a ON true
             WHERE r.tenant = $1 AND r.subscription_id = $2
             ORDER BY r.created_at DESC, r.id DESC LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(subscription_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(DeliveryRecord {
                    id: row.id,
                    event_id: row.event_id.ok_or_else(|| {
                        StoreError::Corrupt(format!("delivery {}: no event", row.id))
                    })?,
                    status: run_status(&row.status)?,
                    attempt_count: count(row.attempt_count.into()),
                    created_at: row.created_at,
                    next_attempt_at: row.next_attempt_at,
                    finished_at: row.finished_at,
                    last_status_code: row.status_code.and_then(|c| u16::try_from(c).ok()),
                    last_error: row.error,
                })
            })
            .collect()
    }

    async fn retry_run(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Run> {
        let mut tx = self.pool.begin().await?;
        let found: Option<(String, String)> = sqlx::query_as(
            "SELECT status, job_id FROM runs
             WHERE tenant = $1 AND id = $2 AND subscription_id IS NULL
             FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (status, job_id) = found.ok_or(StoreError::NotFound)?;
        lifecycle::may_retry(run_status(&status)?)?;
        let run = sqlx::query_as::<_, RunRow>(&format!(
            "UPDATE runs SET status = 'pending', next_attempt_at = now(), finished_at = NULL,
                 prior_attempts = attempt_count
             WHERE id = $1
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .into_run()?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(RUNS_CHANNEL)
            .execute(&mut *tx)
            .await?;
        let events = with_tenant(
            tenant,
            vec![crate::domain::event::run_retried(
                &job_id,
                id,
                run.attempt_count,
            )],
        );
        let deliveries = write_events(&mut tx, &events).await?;
        tx.commit().await?;
        self.wakeups.runs_changed();
        self.events_written(deliveries);
        Ok(run)
    }

    async fn gauges(&self) -> StoreResult<Gauges> {
        let runs_pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let jobs: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        Ok(Gauges {
            runs_pending: runs_pending.max(0) as u64,
            jobs: jobs
                .into_iter()
                .filter_map(|(state, n)| Some((JobState::parse(&state)?, n.max(0) as u64)))
                .collect(),
            db_connections: (size.saturating_sub(idle), idle),
        })
    }

    fn spawn_listener(&self, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let options = self
            .pool
            .connect_options()
            .as_ref()
            .clone()
            .application_name(LISTENER_NAME);
        let wakeups = self.wakeups.clone();
        Some(tokio::spawn(listen(options, wakeups, shutdown)))
    }
}

/// Forwards `NOTIFY`s to this process's wake-ups, on a connection of its
/// own, reconnecting after any failure. Notifications are hints: after a
/// (re)connect both loops are woken, since some may have been missed.
async fn listen(
    options: sqlx::postgres::PgConnectOptions,
    wakeups: Arc<Wakeups>,
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
                .listen_all([JOBS_CHANNEL, RUNS_CHANNEL, EVENTS_CHANNEL])
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
                Ok(Some(_)) => wakeups.runs_changed(),
                Ok(None) => {
                    // Reconnected by sqlx; what was sent meanwhile is lost.
                    tracing::warn!("LISTEN connection lost; reconnected");
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
