//! The statements both databases run as written (issue 21): reads and
//! single-statement writes in the SQL PostgreSQL and SQLite share (`$n`
//! parameters; instants and ids bound in each database's own column type;
//! `now` taken from this process's clock, except where an instant is
//! compared with a lease or a heartbeat, which stay in each dialect on the
//! database's clock). [`portable_statements!`] expands them once into each
//! dialect: sqlx's generic bounds cannot be stated once for two databases,
//! so the text is shared where the types cannot be.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::{
    Attempt, DeliveryRecord, Gauges, IdempotentRequest, Instance, Job, JobFilter, JobSecret,
    NewSession, NewToken, Run, RunFilter, Session, StoreResult, Subscription, Tenant, TokenInfo,
};
use crate::domain::job::JobId;
use crate::domain::quota::QuotaOverrides;
use crate::domain::sealing::SealingKey;

/// The instant `age` ago (the epoch's start when it is longer than that).
pub(crate) fn ago(age: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(age)
        .ok()
        .and_then(|age| Utc::now().checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The instant `after` from now (the far future when it is further).
pub(crate) fn from_now(after: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(after)
        .ok()
        .and_then(|after| Utc::now().checked_add_signed(after))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The statements [`portable_statements!`] writes once for both databases.
#[async_trait]
pub(crate) trait Portable: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;
    async fn get_job(
        &self,
        key: &SealingKey,
        tenant: &Tenant,
        id: &JobId,
    ) -> StoreResult<Option<Job>>;
    async fn job_exists(&self, tenant: &Tenant, id: &JobId) -> StoreResult<bool>;
    /// Jobs whose timed pause ended by `now` (§11.9), the oldest first.
    async fn timed_pauses_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<(String, String)>>;
    async fn list_jobs(
        &self,
        key: &SealingKey,
        tenant: &Tenant,
        filter: &JobFilter,
    ) -> StoreResult<Vec<Job>>;
    async fn list_runs(&self, tenant: &Tenant, filter: &RunFilter) -> StoreResult<Vec<Run>>;
    /// The edges that name job `child` (§11.8): parent, end, delay.
    async fn chain_parents(
        &self,
        tenant: &Tenant,
        child: &JobId,
    ) -> StoreResult<Vec<(JobId, crate::domain::chain::End, u32)>>;
    /// What the overview counts of the tenant's job runs made from
    /// `since`, newest first, at most `limit`.
    async fn overview_runs(
        &self,
        tenant: &Tenant,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::domain::overview::RunPoint>>;
    async fn get_run(&self, tenant: &Tenant, id: Uuid) -> StoreResult<Option<(Run, Vec<Attempt>)>>;
    /// The request a template job's run was rendered to when it was made,
    /// or why it did not render; none for another run.
    async fn run_request(
        &self,
        key: &SealingKey,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<Result<crate::domain::target::Target, String>>>;
    async fn delete_expired_runs(&self, retention: Duration, batch: u32) -> StoreResult<u64>;
    async fn find_idempotent_request(
        &self,
        tenant: &Tenant,
        scope: &str,
        key: &str,
        within: Duration,
    ) -> StoreResult<Option<IdempotentRequest>>;
    async fn delete_expired_idempotency_keys(
        &self,
        older_than: Duration,
        batch: u32,
    ) -> StoreResult<u64>;
    async fn deregister_instance(&self, id: &str) -> StoreResult<()>;
    async fn list_instances(&self) -> StoreResult<Vec<Instance>>;
    async fn get_secret(
        &self,
        key: &SealingKey,
        tenant: &Tenant,
        id: &JobId,
    ) -> StoreResult<Option<JobSecret>>;
    async fn rotate_secret(
        &self,
        key: &SealingKey,
        tenant: &Tenant,
        id: &JobId,
        new_secret: &str,
        grace: Duration,
    ) -> StoreResult<Option<JobSecret>>;
    async fn create_token(&self, token: &NewToken) -> StoreResult<TokenInfo>;
    async fn find_token(&self, hash: &str) -> StoreResult<Option<TokenInfo>>;
    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>>;
    async fn revoke_token(&self, id: &str) -> StoreResult<bool>;
    async fn touch_token(&self, id: &str) -> StoreResult<()>;
    async fn tokens(&self) -> StoreResult<crate::domain::auth::Tokens>;
    async fn delete_expired_events(&self, older_than: Duration, batch: u32) -> StoreResult<u64>;
    /// Writes audit records of their own (a refused call's, §11.9).
    async fn record_audit(&self, records: &[crate::domain::audit::AuditRecord]) -> StoreResult<()>;
    async fn list_audit(
        &self,
        tenant: &Tenant,
        filter: &super::AuditFilter,
    ) -> StoreResult<Vec<crate::domain::audit::AuditRecord>>;
    async fn delete_expired_audit(&self, older_than: Duration, batch: u32) -> StoreResult<u64>;
    async fn list_subscriptions(
        &self,
        key: &SealingKey,
        tenant: &Tenant,
    ) -> StoreResult<Vec<Subscription>>;
    async fn get_subscription(
        &self,
        key: &SealingKey,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<Option<Subscription>>;
    async fn subscription_secret(
        &self,
        key: &SealingKey,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<Option<String>>;
    async fn list_deliveries(
        &self,
        tenant: &Tenant,
        subscription_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    async fn gauges(&self) -> StoreResult<Gauges>;
    /// Whether any job alerts or any alert is open: without, the watchdog
    /// takes no transaction (on SQLite, the whole database's write lock).
    async fn anything_to_watch(&self) -> StoreResult<bool>;
    async fn job_signals(
        &self,
        limit: u32,
        tenant: Option<&Tenant>,
    ) -> StoreResult<Vec<super::JobSignal>>;
    async fn tenant_quotas(&self, tenant: &Tenant) -> StoreResult<QuotaOverrides>;
    async fn set_tenant_quotas(&self, tenant: &Tenant, set: &QuotaOverrides) -> StoreResult<()>;
    async fn held_back_tenants(&self, minute: i64, default_most: u32) -> StoreResult<Vec<String>>;
    async fn forget_runs_made(&self, before_minute: i64) -> StoreResult<u64>;
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;
    async fn find_session(&self, hash: &str) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, hash: &str) -> StoreResult<bool>;
    async fn delete_expired_sessions(&self) -> StoreResult<u64>;
}

/// A quota as a column holds it (null: the default; a value past `u32`
/// cannot be written, and reads as the most).
fn quota_of(column: Option<i64>) -> Option<u32> {
    column.map(|n| u32::try_from(n.max(1)).unwrap_or(u32::MAX))
}

/// The overrides a `tenant_quotas` row holds.
pub(crate) fn overrides_of(
    (jobs, subscriptions, runs_per_minute, catchup_max): (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    ),
) -> QuotaOverrides {
    QuotaOverrides {
        jobs: quota_of(jobs),
        subscriptions: quota_of(subscriptions),
        runs_per_minute: quota_of(runs_per_minute),
        catchup_max: quota_of(catchup_max),
    }
}

/// Implements [`Portable`] for a dialect, and `seal_what_is_plain` and
/// the statements the dialect runs in a transaction of its own beside it.
/// The invoking module names its vocabulary: `Db` (the sqlx database),
/// `at` (an instant as its columns hold one), `row_id` (a run's or event's
/// id likewise), `JOBS` (the job query with its last run, before `WHERE`),
/// `POSITION` (the function that finds a substring), the row types
/// `JobRow`, `RunRow`, `AttemptRow`, `SecretRow`, `TokenRow`,
/// `SubscriptionRow`, `DeliveryRow`, and a `pool` field.
macro_rules! portable_statements {
    ($dialect:ty) => {
        /// The tenant's jobs `filter` picks, in id order; with `lock`, each
        /// row locked for the transaction `conn` is in (bulk actions, §11.9).
        pub(crate) async fn select_jobs(
            conn: &mut <Db as sqlx::Database>::Connection,
            key: &$crate::domain::sealing::SealingKey,
            tenant: &$crate::store::Tenant,
            filter: &$crate::store::JobFilter,
            lock: bool,
        ) -> $crate::store::StoreResult<Vec<$crate::store::Job>> {
            let mut query = sqlx::QueryBuilder::<Db>::new(JOBS);
            query
                .push(" WHERE j.tenant = ")
                .push_bind(tenant.as_str().to_string());
            if let Some(state) = filter.state {
                query.push(" AND j.state = ").push_bind(state.as_str());
            }
            if let Some(text) = &filter.search {
                let text = text.to_lowercase();
                query
                    .push(format_args!(" AND ({POSITION}(lower(j.id), "))
                    .push_bind(text.clone())
                    .push(format_args!(") > 0 OR {POSITION}(lower(COALESCE(j.name, '')), "))
                    .push_bind(text)
                    .push(") > 0)");
            }
            for requirement in filter.selector.requirements() {
                use $crate::domain::labels::Requirement;
                let label = |query: &mut sqlx::QueryBuilder<'_, Db>| {
                    query
                        .push(LABEL.0)
                        .push_bind(requirement.key().to_string())
                        .push(LABEL.1);
                };
                let one_of = |query: &mut sqlx::QueryBuilder<'_, Db>, values: &[String]| {
                    query.push(" IN (");
                    let mut list = query.separated(", ");
                    for value in values {
                        list.push_bind(value.clone());
                    }
                    query.push(")");
                };
                query.push(" AND ");
                match requirement {
                    Requirement::Exists(_) => {
                        label(&mut query);
                        query.push(" IS NOT NULL");
                    }
                    Requirement::Absent(_) => {
                        label(&mut query);
                        query.push(" IS NULL");
                    }
                    Requirement::In(_, values) => {
                        label(&mut query);
                        one_of(&mut query, values);
                    }
                    // Kubernetes': a job without the label is selected too.
                    Requirement::NotIn(_, values) => {
                        query.push("(");
                        label(&mut query);
                        query.push(" IS NULL OR NOT ");
                        label(&mut query);
                        one_of(&mut query, values);
                        query.push(")");
                    }
                }
            }
            if let Some(ids) = &filter.ids {
                query.push(" AND j.id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(id.as_str().to_string());
                }
                query.push(")");
            }
            if let Some(after) = &filter.after {
                query
                    .push(" AND j.id > ")
                    .push_bind(after.as_str().to_string());
            }
            query
                .push(" ORDER BY j.id LIMIT ")
                .push_bind(i64::from(filter.limit));
            if lock {
                query.push(LOCK_JOBS);
            }
            query
                .build_query_as::<JobRow>()
                .fetch_all(conn)
                .await?
                .into_iter()
                .map(|row| row.into_job(key, tenant.as_str()))
                .collect()
        }

        /// At start, in `conn`'s transaction under a lock other instances
        /// wait on: checks the key against the fingerprint the store keeps
        /// (recording it on the first start), then seals, bound to its row,
        /// what was stored before: signing secrets in the clear or sealed
        /// unbound, sensitive header values, and whole URLs (of jobs and
        /// subscriptions), which move to `target_secrets`.
        async fn seal_what_is_plain(
            conn: &mut <Db as sqlx::Database>::Connection,
            key: &$crate::domain::sealing::SealingKey,
        ) -> $crate::store::StoreResult<()> {
            use $crate::domain::sealing::{Row, is_sealed};
            use $crate::store::SECRET;
            let stored: Option<String> =
                sqlx::query_scalar("SELECT value FROM settings WHERE key = 'key_fingerprint'")
                    .fetch_optional(&mut *conn)
                    .await?;
            $crate::store::check_fingerprint(key, stored.as_deref())?;
            if stored.is_none() {
                sqlx::query("INSERT INTO settings (key, value) VALUES ('key_fingerprint', $1)")
                    .bind(key.fingerprint())
                    .execute(&mut *conn)
                    .await?;
            }
            // A secret as its row keeps it now: opened if sealed (bound or
            // not), then sealed bound to the row.
            let rebind = |row: Row<'_>, text: String| -> $crate::store::StoreResult<String> {
                let plain = if is_sealed(&text) {
                    key.open_in(row, SECRET, &text).map_err(|e| {
                        $crate::store::StoreError::Corrupt(format!(
                            "{} {}: signing secret: {e}",
                            row.table, row.id
                        ))
                    })?
                } else {
                    text
                };
                Ok(key.seal_in(row, SECRET, &plain))
            };
            let plain = sqlx::query_as::<_, $crate::store::rows::PlainRow>(
                "SELECT tenant, id, secret, previous_secret, target_url, target_method,
                        target_headers, target_body, target_secrets, timeout_s, target_template
                 FROM jobs
                 WHERE secret NOT LIKE 'enc:v2:%' OR previous_secret NOT LIKE 'enc:v2:%'
                    OR (target_url <> ''
                        AND (target_secrets IS NULL OR target_secrets NOT LIKE 'enc:v2:%'
                             OR target_url NOT LIKE '%/***'))",
            )
            .fetch_all(&mut *conn)
            .await?;
            let sealed = plain.len();
            for job in plain {
                let row = Row {
                    tenant: &job.tenant,
                    table: "jobs",
                    id: &job.id,
                };
                // A monitor-only job has no target (§11.5).
                let target = if job.target.is_none() {
                    $crate::store::shape::StoredTarget::none()
                } else {
                    $crate::store::shape::StoredTarget::of(
                        &job.target.into_target(row, key)?,
                        key,
                        row,
                    )
                };
                sqlx::query(
                    "UPDATE jobs SET secret = $3, previous_secret = $4, target_url = $5,
                         target_headers = $6, target_secrets = $7
                     WHERE tenant = $1 AND id = $2",
                )
                .bind(&job.tenant)
                .bind(&job.id)
                .bind(rebind(row, job.secret)?)
                .bind(job.previous_secret.map(|s| rebind(row, s)).transpose()?)
                .bind(&target.url)
                .bind(&target.headers)
                .bind(&target.secrets)
                .execute(&mut *conn)
                .await?;
            }
            let plain: Vec<(String, String, String, Option<String>, String)> = sqlx::query_as(
                "SELECT tenant, id, target_url, target_secrets, secret FROM subscriptions
                 WHERE secret NOT LIKE 'enc:v2:%'
                    OR target_secrets IS NULL OR target_secrets NOT LIKE 'enc:v2:%'
                    OR target_url NOT LIKE '%/***'",
            )
            .fetch_all(&mut *conn)
            .await?;
            let subscriptions = plain.len();
            for (tenant, id, url, secrets, secret) in plain {
                let row = Row {
                    tenant: &tenant,
                    table: "subscriptions",
                    id: &id,
                };
                let stored = $crate::store::shape::StoredTarget::of_subscription(url, secrets);
                let target = $crate::store::shape::StoredTarget::of(
                    &stored.into_target(row, key)?,
                    key,
                    row,
                );
                sqlx::query(
                    "UPDATE subscriptions SET target_url = $3, target_secrets = $4, secret = $5
                     WHERE tenant = $1 AND id = $2",
                )
                .bind(&tenant)
                .bind(&id)
                .bind(&target.url)
                .bind(&target.secrets)
                .bind(rebind(row, secret)?)
                .execute(&mut *conn)
                .await?;
            }
            if sealed + subscriptions > 0 {
                tracing::info!(
                    jobs = sealed,
                    subscriptions,
                    "sealed the secrets and URLs stored before, each bound to its row"
                );
            }
            Ok(())
        }

        /// The jobs the watchdog looks at (§11.5): those that alert, and
        /// those with an alert not resolved (a job deleted since has no
        /// state and no settings).
        async fn alerting_jobs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            limit: u32,
        ) -> $crate::store::StoreResult<Vec<$crate::store::alerts::AlertingJob>> {
            Ok(sqlx::query_as(
                "SELECT tenant, id AS job_id, state, alerts FROM jobs WHERE alerts IS NOT NULL
                 UNION
                 SELECT a.tenant, a.job_id, j.state, j.alerts
                 FROM alerts a LEFT JOIN jobs j ON j.tenant = a.tenant AND j.id = a.job_id
                 WHERE a.state <> 'resolved'
                 ORDER BY 1, 2
                 LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await?)
        }

        /// A monitor-only job by its ping key (§11.5).
        async fn monitor_by_key_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            key: &str,
        ) -> $crate::store::StoreResult<Option<$crate::store::monitors::MonitorJob>> {
            let row: Option<$crate::store::monitors::MonitorJobRow<AtColumn>> = sqlx::query_as(
                "SELECT tenant, id AS job_id, next_run_at FROM jobs WHERE ping_key = $1",
            )
            .bind(key)
            .fetch_optional(conn)
            .await?;
            Ok(row.map(Into::into))
        }

        /// A monitor's run that started and never reported its end fails
        /// (`no_end_ping`); false when it is no longer running.
        async fn abandon_monitor_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            run_id: uuid::Uuid,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<bool> {
            let done = sqlx::query(
                "UPDATE runs SET status = 'failed', reason = $3, finished_at = $4
                 WHERE tenant = $1 AND id = $2 AND status = 'running' AND lease_owner IS NULL",
            )
            .bind(tenant)
            .bind(row_id(run_id))
            .bind($crate::domain::monitor::REASON_NO_END_PING)
            .bind(at(now))
            .execute(conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// A monitor's runs a ping may move, oldest fire time first: each
        /// status read through its own partial index.
        async fn open_monitor_runs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            job_id: &str,
        ) -> $crate::store::StoreResult<
            Vec<($crate::domain::monitor::OpenRun, Option<chrono::DateTime<chrono::Utc>>)>,
        > {
            let rows: Vec<$crate::store::monitors::OpenRunRow<AtColumn, IdColumn>> =
                sqlx::query_as(
                    "SELECT id, status, scheduled_for, attempt_started_at FROM runs
                     WHERE tenant = $1 AND job_id = $2 AND status = 'awaiting'
                     UNION ALL
                     SELECT id, status, scheduled_for, attempt_started_at FROM runs
                     WHERE tenant = $1 AND job_id = $2 AND status IN ('pending', 'running')
                       AND status = 'running'
                     ORDER BY 3, 1
                     LIMIT 1000",
                )
                .bind(tenant)
                .bind(job_id)
                .fetch_all(conn)
                .await?;
            rows.into_iter().map(|r| r.into_open()).collect()
        }

        /// Writes what a ping does; false when its run was no longer
        /// where the ping found it.
        async fn write_ping_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            job_id: &str,
            write: &$crate::store::monitors::PingWrite,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<bool> {
            use $crate::store::monitors::{PingAttempt, PingWrite};
            let (run_id, attempt) = match write {
                PingWrite::Start { run_id } => {
                    let done = sqlx::query(
                        "UPDATE runs SET status = 'running', attempt_started_at = $3
                         WHERE tenant = $1 AND id = $2 AND status = 'awaiting'",
                    )
                    .bind(tenant)
                    .bind(row_id(*run_id))
                    .bind(at(now))
                    .execute(&mut *conn)
                    .await?;
                    return Ok(done.rows_affected() == 1);
                }
                PingWrite::End { run_id, status, attempt } => {
                    let done = sqlx::query(
                        "UPDATE runs SET status = $3, finished_at = $4, attempt_count = 1,
                                         attempt_started_at = $5
                         WHERE tenant = $1 AND id = $2 AND status IN ('awaiting', 'running')",
                    )
                    .bind(tenant)
                    .bind(row_id(*run_id))
                    .bind(status.as_str())
                    .bind(at(now))
                    .bind(at(attempt.started_at))
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() != 1 {
                        return Ok(false);
                    }
                    (*run_id, attempt)
                }
                PingWrite::New { run_id, cause, scheduled_for, status, attempt } => {
                    let ended = attempt.is_some();
                    // The fire time's run the scheduler made meanwhile
                    // wins (one run per occurrence): the ping reads again.
                    let done = sqlx::query(
                        "INSERT INTO runs (id, tenant, job_id, scheduled_for, cause, status,
                                           occurrences, attempt_count, deliver_after,
                                           attempt_started_at, created_at, finished_at)
                         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $4, $8, $8, $9)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(row_id(*run_id))
                    .bind(tenant)
                    .bind(job_id)
                    .bind(at(*scheduled_for))
                    .bind(cause.as_str())
                    .bind(status.as_str())
                    .bind(i64::from(ended))
                    .bind(at(now))
                    .bind(ended.then(|| at(now)))
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() != 1 {
                        return Ok(false);
                    }
                    match attempt {
                        Some(attempt) => (*run_id, attempt),
                        None => return Ok(true),
                    }
                }
            };
            let PingAttempt { started_at, duration_ms, excerpt, body_truncated, outcome_reason } =
                attempt;
            sqlx::query(
                "INSERT INTO attempts (run_id, number, started_at, duration_ms, response_excerpt,
                                       outcome_reason, body_truncated)
                 VALUES ($1, 1, $2, $3, $4, $5, $6)",
            )
            .bind(row_id(run_id))
            .bind(at(*started_at))
            .bind(*duration_ms)
            .bind(excerpt.as_deref())
            .bind(outcome_reason.as_deref())
            .bind(*body_truncated)
            .execute(&mut *conn)
            .await?;
            Ok(true)
        }

        /// A monitor's runs still awaiting a ping that were due at or
        /// before `due_before` become `missed` (`ping_missing`); answers
        /// them.
        async fn miss_awaiting_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            job_id: &str,
            due_before: chrono::DateTime<chrono::Utc>,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>> {
            use $crate::store::rows::{At, RowId};
            let rows: Vec<(IdColumn, AtColumn)> = sqlx::query_as(
                "UPDATE runs SET status = 'missed', reason = $5, finished_at = $4
                 WHERE tenant = $1 AND job_id = $2 AND status = 'awaiting' AND scheduled_for <= $3
                 RETURNING id, scheduled_for",
            )
            .bind(tenant)
            .bind(job_id)
            .bind(at(due_before))
            .bind(at(now))
            .bind($crate::domain::monitor::REASON_PING_MISSING)
            .fetch_all(conn)
            .await?;
            rows.into_iter().map(|(id, due)| Ok((id.uuid()?, due.at()))).collect()
        }

        /// The fire time run `id` is for.
        async fn run_scheduled_for_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            id: uuid::Uuid,
        ) -> $crate::store::StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
            let at: Option<AtColumn> =
                sqlx::query_scalar("SELECT scheduled_for FROM runs WHERE id = $1")
                    .bind(row_id(id))
                    .fetch_optional(conn)
                    .await?;
            Ok(at.map($crate::store::rows::At::at))
        }

        /// The tenant's edges as (parent, child), for finding cycles (§11.8).
        async fn tenant_edges_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
        ) -> $crate::store::StoreResult<Vec<(String, String)>> {
            Ok(sqlx::query_as("SELECT parent_id, child_id FROM job_edges WHERE tenant = $1")
                .bind(tenant)
                .fetch_all(conn)
                .await?)
        }

        /// Job `parent`'s edges (§11.8).
        async fn edges_of_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            parent: &str,
        ) -> $crate::store::StoreResult<Vec<$crate::domain::chain::Edge>> {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT on_end, child_id, delay_s FROM job_edges
                 WHERE tenant = $1 AND parent_id = $2",
            )
            .bind(tenant)
            .bind(parent)
            .fetch_all(conn)
            .await?;
            rows.into_iter()
                .map(|(on, child, delay_s)| {
                    Ok($crate::domain::chain::Edge {
                        on: $crate::store::edge_end(&on)?,
                        child: $crate::store::job_id(child)?,
                        delay_s: u32::try_from(delay_s).unwrap_or(0),
                    })
                })
                .collect()
        }

        /// Replaces job `parent`'s edges with `edges`.
        async fn replace_edges_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            parent: &str,
            edges: &[$crate::domain::chain::Edge],
        ) -> $crate::store::StoreResult<()> {
            sqlx::query("DELETE FROM job_edges WHERE tenant = $1 AND parent_id = $2")
                .bind(tenant)
                .bind(parent)
                .execute(&mut *conn)
                .await?;
            for edge in edges {
                sqlx::query(
                    "INSERT INTO job_edges (tenant, parent_id, on_end, child_id, delay_s)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tenant)
                .bind(parent)
                .bind(edge.on.as_str())
                .bind(edge.child.as_str())
                .bind(i64::from(edge.delay_s))
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// The other jobs whose chains name job `child`, in id order.
        async fn referrers_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            child: &str,
        ) -> $crate::store::StoreResult<Vec<String>> {
            Ok(sqlx::query_scalar(
                "SELECT DISTINCT parent_id FROM job_edges
                 WHERE tenant = $1 AND child_id = $2 AND parent_id <> $2
                 ORDER BY parent_id",
            )
            .bind(tenant)
            .bind(child)
            .fetch_all(conn)
            .await?)
        }

        /// Replaces job `job`'s requirements with `gates` (§11.8).
        async fn replace_requires_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            job: &str,
            gates: &$crate::domain::gate::Gates,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query("DELETE FROM job_requires WHERE tenant = $1 AND job_id = $2")
                .bind(tenant)
                .bind(job)
                .execute(&mut *conn)
                .await?;
            let lists = [(false, &gates.all), (true, &gates.any)];
            for (any_of, list) in lists {
                for (position, r) in list.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO job_requires (tenant, job_id, required_id, any_of, position,
                                                   within_s, mode, wait_max_s)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(tenant)
                    .bind(job)
                    .bind(r.job.as_str())
                    .bind(any_of)
                    .bind(position as i32)
                    .bind(i64::from(r.within_s))
                    .bind(r.mode.as_str())
                    .bind(i64::from(r.wait_max_s))
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Ok(())
        }

        /// Job `job`'s gates as `job_requires` keeps them (§11.8).
        async fn gates_of_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            job: &str,
        ) -> $crate::store::StoreResult<$crate::domain::gate::Gates> {
            use $crate::domain::gate::{GateMode, Requirement};
            let rows: Vec<(String, bool, i64, String, i64)> = sqlx::query_as(
                "SELECT required_id, any_of, within_s, mode, wait_max_s FROM job_requires
                 WHERE tenant = $1 AND job_id = $2 ORDER BY any_of, position",
            )
            .bind(tenant)
            .bind(job)
            .fetch_all(conn)
            .await?;
            let mut gates = $crate::domain::gate::Gates::default();
            for (required, any_of, within_s, mode, wait_max_s) in rows {
                let requirement = Requirement {
                    job: $crate::store::job_id(required)?,
                    within_s: u32::try_from(within_s).unwrap_or(u32::MAX),
                    mode: GateMode::parse(&mode).ok_or_else(|| {
                        $crate::store::StoreError::Corrupt(format!("gate mode {mode:?}"))
                    })?,
                    wait_max_s: u32::try_from(wait_max_s).unwrap_or(u32::MAX),
                };
                match any_of {
                    false => gates.all.push(requirement),
                    true => gates.any.push(requirement),
                }
            }
            Ok(gates)
        }

        /// Whether the tenant's job `id` is monitor-only (§11.5), as
        /// `conn`'s transaction sees it; none when the tenant has no such
        /// job.
        async fn monitor_only_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            id: &str,
        ) -> $crate::store::StoreResult<Option<bool>> {
            let url: Option<String> =
                sqlx::query_scalar("SELECT target_url FROM jobs WHERE tenant = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(conn)
                    .await?;
            Ok(url.map(|url| $crate::store::shape::StoredTarget::is_no_url(&url)))
        }

        /// The other jobs whose gates name job `required`, in id order.
        async fn requirers_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            required: &str,
        ) -> $crate::store::StoreResult<Vec<String>> {
            Ok(sqlx::query_scalar(
                "SELECT job_id FROM job_requires
                 WHERE tenant = $1 AND required_id = $2 AND job_id <> $2 ORDER BY job_id",
            )
            .bind(tenant)
            .bind(required)
            .fetch_all(conn)
            .await?)
        }

        /// The runs held by gates that name job `required`, locked.
        async fn held_for_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            required: &str,
        ) -> $crate::store::StoreResult<Vec<$crate::store::dialect::HeldRun>> {
            let rows: Vec<(String, IdColumn, String, AtColumn)> = sqlx::query_as(&format!(
                "SELECT tenant, id, job_id, scheduled_for FROM runs
                 WHERE tenant = $1 AND status = 'pending' AND wait_reason LIKE 'dependency:%'
                   AND job_id IN (SELECT job_id FROM job_requires
                                  WHERE tenant = $1 AND required_id = $2)
                 ORDER BY scheduled_for, id{LOCK_RUN}"
            ))
            .bind(tenant)
            .bind(required)
            .fetch_all(conn)
            .await?;
            rows.into_iter().map($crate::store::dialect::HeldRun::of).collect()
        }

        /// The held runs due a look by `now` (§11.8), the oldest first,
        /// locked; others' locks are passed over.
        async fn held_due_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            now: chrono::DateTime<chrono::Utc>,
            limit: u32,
        ) -> $crate::store::StoreResult<Vec<$crate::store::dialect::HeldRun>> {
            let rows: Vec<(String, IdColumn, String, AtColumn)> = sqlx::query_as(&format!(
                "SELECT tenant, id, job_id, scheduled_for FROM runs r
                 WHERE gate_check_at <= $1 AND status = 'pending'
                 ORDER BY gate_check_at LIMIT $2{LOCK_RUNS_SKIP}"
            ))
            .bind(at(now))
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await?;
            rows.into_iter().map($crate::store::dialect::HeldRun::of).collect()
        }

        /// Settles a held run as its gate's `verdict` says at `now`:
        /// released (to its flow key, if it has one), held on, or ended.
        /// Answers the flow key a release made it wait for, and whether
        /// it changed at all (another transaction may have settled it).
        async fn settle_held_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            id: uuid::Uuid,
            settle: &$crate::store::dialect::Settle,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<(bool, Option<String>)> {
            use $crate::store::dialect::Settle;
            const HELD: &str = "id = $1 AND status = 'pending' AND wait_reason LIKE 'dependency:%'";
            match settle {
                Settle::Release => {
                    let key: Option<(Option<String>,)> = sqlx::query_as(&format!(
                        "UPDATE runs
                         SET wait_reason = CASE WHEN flow_key IS NULL THEN NULL
                                                ELSE 'flow:' || flow_key END,
                             next_attempt_at = CASE WHEN flow_key IS NOT NULL THEN NULL
                                                    WHEN deliver_after > $2 THEN deliver_after
                                                    ELSE $2 END,
                             gate_check_at = NULL
                         WHERE {HELD}
                         RETURNING flow_key"
                    ))
                    .bind(row_id(id))
                    .bind(at(now))
                    .fetch_optional(conn)
                    .await?;
                    Ok((key.is_some(), key.and_then(|(k,)| k)))
                }
                Settle::Hold { wait_reason, check_at } => {
                    let done = sqlx::query(
                        "UPDATE runs SET wait_reason = $2, gate_check_at = $3,
                                         next_attempt_at = NULL
                         WHERE id = $1 AND status = 'pending' AND wait_reason LIKE 'dependency:%'",
                    )
                    .bind(row_id(id))
                    .bind(wait_reason)
                    .bind(at(*check_at))
                    .execute(conn)
                    .await?;
                    Ok((done.rows_affected() > 0, None))
                }
                Settle::End { status } => {
                    let done = sqlx::query(&format!(
                        "UPDATE runs SET status = $2, reason = $3, wait_reason = NULL,
                                         gate_check_at = NULL, next_attempt_at = NULL,
                                         finished_at = $4
                         WHERE {HELD}"
                    ))
                    .bind(row_id(id))
                    .bind(status.as_str())
                    .bind($crate::domain::gate::REASON)
                    .bind(at(now))
                    .execute(conn)
                    .await?;
                    Ok((done.rows_affected() > 0, None))
                }
            }
        }

        /// A chained run of job `job` for parent run `parent_run_id`, due
        /// at `due`; none when that parent run has made it already.
        #[allow(clippy::too_many_arguments)]
        async fn insert_chain_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            job: &str,
            id: uuid::Uuid,
            parent_run_id: uuid::Uuid,
            due: chrono::DateTime<chrono::Utc>,
            admitted: (
                $crate::domain::run::RunStatus,
                Option<&'static str>,
                Option<&'static str>,
            ),
            host: Option<String>,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<Option<$crate::domain::run::Run>> {
            let (status, wait_reason, reason) = admitted;
            let pending = status == $crate::domain::run::RunStatus::Pending;
            let row: Option<RunRow> = sqlx::query_as(&format!(
                "INSERT INTO runs (id, tenant, job_id, parent_run_id, scheduled_for, cause, status,
                                   occurrences, deliver_after, next_attempt_at, created_at,
                                   finished_at, host, wait_reason, reason)
                 VALUES ($1, $2, $3, $4, $5, 'manual', $6, 1, $5, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT DO NOTHING
                 RETURNING {}",
                $crate::store::rows::RUN_COLUMNS
            ))
            .bind(row_id(id))
            .bind(tenant)
            .bind(job)
            .bind(row_id(parent_run_id))
            .bind(at(due))
            .bind(status.as_str())
            .bind((pending && wait_reason.is_none()).then(|| at(due)))
            .bind(at(now))
            .bind((!pending).then(|| at(now)))
            .bind(host)
            .bind(wait_reason)
            .bind(reason)
            .fetch_optional(conn)
            .await?;
            row.map(RunRow::into_run).transpose()
        }

        /// A job's run as the callback rules read it (§11.7), its row
        /// locked for `conn`'s transaction; none when there is none.
        async fn lock_callback_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run_id: uuid::Uuid,
        ) -> $crate::store::StoreResult<Option<$crate::store::callbacks::CallbackRow<AtColumn>>> {
            Ok(sqlx::query_as(&format!(
                "SELECT tenant, job_id, status, CAST(attempt_count AS BIGINT) AS attempt_count,
                        lease_owner, accepted_at, cancel_requested_at, completion,
                        CAST(heartbeat_s AS BIGINT) AS heartbeat_s, deadline_at,
                        attempt_started_at, flow_key
                 FROM runs WHERE id = $1 AND job_id IS NOT NULL{LOCK_RUN}"
            ))
            .bind(row_id(run_id))
            .fetch_optional(conn)
            .await?)
        }

        /// Ends a callback run (§11.7) as `status`, with the receiver's
        /// `completion` (JSON text) when it reported one. `in_flight`: the
        /// attempt whose request had not been recorded (the receiver was
        /// quicker than the dispatcher), recorded here, since the end
        /// fences the dispatcher's record off.
        async fn end_callback_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run_id: uuid::Uuid,
            end: &$crate::store::callbacks::CallbackEnd,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<()> {
            if let Some((number, started_at)) = end.in_flight {
                sqlx::query(
                    "INSERT INTO attempts (run_id, number, started_at, duration_ms, outcome_reason)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT DO NOTHING",
                )
                .bind(row_id(run_id))
                .bind(number)
                .bind(at(started_at))
                .bind((now - started_at).num_milliseconds().max(0))
                .bind("completed by its callback before its response was recorded")
                .execute(&mut *conn)
                .await?;
            }
            sqlx::query(
                "UPDATE runs SET status = $2, reason = $3, completion = $4, finished_at = $5,
                                 lease_owner = NULL, lease_until = NULL, watch_at = NULL,
                                 next_attempt_at = NULL
                 WHERE id = $1",
            )
            .bind(row_id(run_id))
            .bind(end.status.as_str())
            .bind(end.reason)
            .bind(end.completion.as_deref())
            .bind(at(now))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Says on a callback run's accepted attempt `number` why the run
        /// did not end by its callback (§11.7), unless it says already.
        async fn note_overdue_attempt_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run_id: uuid::Uuid,
            number: i64,
            why: &str,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "UPDATE attempts SET outcome_reason = COALESCE(outcome_reason, $3)
                 WHERE run_id = $1 AND number = $2",
            )
            .bind(row_id(run_id))
            .bind(number)
            .bind(why)
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Makes a callback run that timed out (§11.7, `retry.on_timeout`)
        /// pending again, sent at `next_attempt_at`: its callback's work
        /// forgotten, as a redrive's, its attempts counted on.
        async fn retry_callback_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run_id: uuid::Uuid,
            next_attempt_at: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(&format!(
                "UPDATE runs SET status = 'pending', next_attempt_at = $2, reason = NULL,
                                 finished_at = NULL, lease_owner = NULL, lease_until = NULL,
                                 {}
                 WHERE id = $1",
                $crate::store::rows::CALLBACK_FORGOTTEN
            ))
            .bind(row_id(run_id))
            .bind(at(next_attempt_at))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Records a heartbeat of a callback run; the watchdog looks at it
        /// again by `watch_at`.
        async fn beat_callback_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run_id: uuid::Uuid,
            beat: &$crate::domain::callback::Beat,
            next_due: Option<chrono::DateTime<chrono::Utc>>,
            watch_at: Option<chrono::DateTime<chrono::Utc>>,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "UPDATE runs SET last_heartbeat_at = $2, progress = COALESCE($3, progress),
                                 message = COALESCE($4, message),
                                 heartbeat_due_at = COALESCE($5, heartbeat_due_at),
                                 watch_at = CASE WHEN accepted_at IS NULL THEN watch_at ELSE $6 END
                 WHERE id = $1",
            )
            .bind(row_id(run_id))
            .bind(at(now))
            .bind(beat.progress)
            .bind(beat.message.as_deref())
            .bind(next_due.map(at))
            .bind(watch_at.map(at))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Marks an accepted run `cancelling` until `until` (§11.7).
        async fn request_cancel_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run_id: uuid::Uuid,
            until: chrono::DateTime<chrono::Utc>,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "UPDATE runs SET cancel_requested_at = $2, deadline_at = $3, watch_at = $3,
                                 heartbeat_due_at = NULL
                 WHERE id = $1",
            )
            .bind(row_id(run_id))
            .bind(at(now))
            .bind(at(until))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Accepted runs whose time is up by `now` (the database's clock),
        /// the most overdue first, each locked (others' locked ones are
        /// left for the next pass).
        async fn overdue_callback_runs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            now: chrono::DateTime<chrono::Utc>,
            limit: u32,
        ) -> $crate::store::StoreResult<Vec<$crate::store::callbacks::WatchedRow<AtColumn, IdColumn>>> {
            // With its job's retry policy: `retry.on_timeout` may send it
            // again.
            Ok(sqlx::query_as(&format!(
                "SELECT r.id, r.tenant, r.job_id, r.deadline_at, r.heartbeat_due_at,
                        r.cancel_requested_at, r.flow_key, r.scheduled_for,
                        CAST(r.attempt_count AS BIGINT) AS attempt_count,
                        CAST(r.prior_attempts AS BIGINT) AS prior_attempts,
                        j.max_attempts, j.backoff_initial_s, j.backoff_max_s, j.delivery_rules
                 FROM runs r LEFT JOIN jobs j ON j.tenant = r.tenant AND j.id = r.job_id
                 WHERE r.watch_at IS NOT NULL AND r.watch_at <= $1 AND r.status = 'running'
                 ORDER BY r.watch_at
                 LIMIT $2{LOCK_RUNS_SKIP}"
            ))
            .bind(at(now))
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await?)
        }

        /// Sets job `id`'s ping key: `key` itself when `replace` (a
        /// rotation), else a key it has kept, or `key` when it has none
        /// (a save; none when the job is no longer monitor-only).
        async fn set_ping_key_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            id: &str,
            key: Option<&str>,
            replace: bool,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "UPDATE jobs SET ping_key = CASE WHEN $4 THEN $3
                                                 WHEN CAST($3 AS TEXT) IS NULL THEN NULL
                                                 ELSE COALESCE(ping_key, $3) END
                 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .bind(key)
            .bind(replace)
            .execute(conn)
            .await?;
            Ok(())
        }

        /// A job's newest scheduled runs (and a monitor's runs of pings
        /// nothing awaited), with when each first attempt
        /// started (a run being sent with no attempt recorded yet: from
        /// when it was due to go).
        async fn recent_runs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            job_id: &str,
            limit: u32,
        ) -> $crate::store::StoreResult<Vec<$crate::domain::alert::RecentRun>> {
            let rows: Vec<$crate::store::alerts::RecentRunRow<AtColumn, IdColumn>> = sqlx::query_as(
                "SELECT r.id, r.status, r.scheduled_for, r.reason, r.cause, r.finished_at,
                        COALESCE((SELECT min(a.started_at) FROM attempts a WHERE a.run_id = r.id),
                                 CASE WHEN r.status = 'running'
                                      THEN COALESCE(r.attempt_started_at, r.deliver_after) END)
                            AS first_attempt_at
                 FROM runs r
                 WHERE r.tenant = $1 AND r.job_id = $2 AND r.cause IN ('schedule', 'ping')
                   AND r.subscription_id IS NULL
                 ORDER BY r.scheduled_for DESC
                 LIMIT $3",
            )
            .bind(tenant)
            .bind(job_id)
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await?;
            rows.into_iter().map(|r| r.into_recent()).collect()
        }

        /// Alerts of the tenant, newest first: one job's (the watchdog's
        /// look, the newest 50) or as a list filters them.
        async fn read_alerts_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            filter: &$crate::store::alerts::AlertFilter,
        ) -> $crate::store::StoreResult<Vec<$crate::store::alerts::AlertRecord>> {
            let rows: Vec<$crate::store::alerts::AlertRow<AtColumn, IdColumn>> = sqlx::query_as(
                "SELECT id, job_id, condition, state, run_id, detail, opened_at, notified_at,
                        reminders, acked_at, resolved_at
                 FROM alerts
                 WHERE tenant = $1 AND ($2 IS NULL OR job_id = $2)
                   AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR condition = $4)
                   AND ($5 IS NULL OR id = $5)
                   AND ($7 IS NULL OR state <> 'resolved')
                 ORDER BY opened_at DESC, id DESC
                 LIMIT $6",
            )
            .bind(tenant)
            .bind(filter.job_id.as_deref())
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.condition.map(|c| c.as_str()))
            .bind(filter.id.map(row_id))
            .bind(i64::from(filter.limit))
            .bind(filter.unresolved.then_some(1_i64))
            .fetch_all(conn)
            .await?;
            rows.into_iter().map(|r| r.into_record()).collect()
        }

        /// Applies one change to an alert at `now`; false when it did not
        /// apply (an alert of that job and condition already open, or the
        /// alert no longer in a state the change applies to).
        async fn write_alert_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            change: &$crate::store::alerts::AlertChange,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<bool> {
            use $crate::store::alerts::AlertChange;
            let done = match change {
                AlertChange::Open { id, job_id, condition, run_id, detail } => sqlx::query(
                    "INSERT INTO alerts (id, tenant, job_id, condition, state, run_id, detail,
                                         opened_at, notified_at)
                     VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $7)
                     ON CONFLICT DO NOTHING",
                )
                .bind(row_id(*id))
                .bind(tenant)
                .bind(job_id)
                .bind(condition.as_str())
                .bind(run_id.map(row_id))
                .bind(detail)
                .bind(at(now))
                .execute(conn)
                .await?,
                AlertChange::Remind { id } => sqlx::query(
                    "UPDATE alerts SET notified_at = $3, reminders = reminders + 1
                     WHERE tenant = $1 AND id = $2 AND state = 'open'",
                )
                .bind(tenant)
                .bind(row_id(*id))
                .bind(at(now))
                .execute(conn)
                .await?,
                AlertChange::Resolve { id } => sqlx::query(
                    "UPDATE alerts SET state = 'resolved', resolved_at = $3
                     WHERE tenant = $1 AND id = $2 AND state <> 'resolved'",
                )
                .bind(tenant)
                .bind(row_id(*id))
                .bind(at(now))
                .execute(conn)
                .await?,
                AlertChange::Ack { id } => sqlx::query(
                    "UPDATE alerts SET state = 'acked', acked_at = $3
                     WHERE tenant = $1 AND id = $2 AND state = 'open'",
                )
                .bind(tenant)
                .bind(row_id(*id))
                .bind(at(now))
                .execute(conn)
                .await?,
            };
            Ok(done.rows_affected() > 0)
        }

        /// The tenant's calendars, in id order (§11.4).
        async fn read_calendars_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &$crate::store::Tenant,
        ) -> $crate::store::StoreResult<Vec<$crate::store::CalendarRecord>> {
            let rows: Vec<$crate::store::rows::CalendarRow<AtColumn>> = sqlx::query_as(
                "SELECT id, timezone, description, rules, created_at, updated_at
                 FROM calendars WHERE tenant = $1 ORDER BY id",
            )
            .bind(tenant.as_str())
            .fetch_all(conn)
            .await?;
            rows.into_iter().map(|r| r.into_record(tenant.as_str())).collect()
        }

        /// Writes a calendar, new or replacing the one with its id.
        async fn write_calendar_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &$crate::store::Tenant,
            calendar: &$crate::domain::calendar::Calendar,
        ) -> $crate::store::StoreResult<()> {
            let input = calendar.to_input();
            let rules = serde_json::to_string(&input.rules)
                .map_err(|e| $crate::store::StoreError::Corrupt(e.to_string()))?;
            let now = at(chrono::Utc::now());
            sqlx::query(
                "INSERT INTO calendars (tenant, id, timezone, description, rules, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (tenant, id) DO UPDATE SET timezone = excluded.timezone,
                     description = excluded.description, rules = excluded.rules,
                     updated_at = excluded.updated_at",
            )
            .bind(tenant.as_str())
            .bind(&calendar.id)
            .bind(calendar.timezone.name())
            .bind(&calendar.description)
            .bind(rules)
            .bind(now)
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Subscription `id` as stored, its row locked for the rest of
        /// `conn`'s transaction: an update of an unindexed column to
        /// itself, which both databases word alike (PostgreSQL keeps it
        /// HOT; no key changes, so no foreign key is checked).
        async fn lock_subscription_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            key: &$crate::domain::sealing::SealingKey,
            tenant: &$crate::store::Tenant,
            id: &str,
        ) -> $crate::store::StoreResult<Option<$crate::store::Subscription>> {
            sqlx::query_as::<_, SubscriptionRow>(
                "UPDATE subscriptions SET format = format WHERE tenant = $1 AND id = $2
                 RETURNING id, target_url, target_secrets, types, job_id, format, created_at",
            )
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(conn)
            .await?
            .map(|row| row.into_subscription(key, tenant.as_str()))
            .transpose()
        }

        async fn insert_subscription_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            key: &$crate::domain::sealing::SealingKey,
            tenant: &$crate::store::Tenant,
            subscription: &$crate::store::NewSubscription,
        ) -> $crate::store::StoreResult<$crate::store::Subscription> {
            let row = $crate::domain::sealing::Row {
                tenant: tenant.as_str(),
                table: "subscriptions",
                id: &subscription.id,
            };
            let stored = $crate::store::shape::StoredTarget::of(&subscription.target, key, row);
            let row = sqlx::query_as::<_, SubscriptionRow>(
                "INSERT INTO subscriptions (tenant, id, target_url, target_secrets, types,
                                            job_id, secret, created_at, host, format)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 RETURNING id, target_url, target_secrets, types, job_id, format, created_at",
            )
            .bind(tenant.as_str())
            .bind(&subscription.id)
            .bind(&stored.url)
            .bind(&stored.secrets)
            .bind($crate::store::types_text(&subscription.interest.types))
            .bind(&subscription.interest.job_id)
            .bind(key.seal_in(row, $crate::store::SECRET, &subscription.secret))
            .bind(at(chrono::Utc::now()))
            .bind($crate::store::run_host(&stored.url))
            .bind(subscription.format.as_str())
            .fetch_one(conn)
            .await
            .map_err(|e| match e {
                e if $crate::store::is_unique_violation(&e) => {
                    $crate::store::StoreError::Conflict(format!(
                        "subscription {} exists",
                        subscription.id
                    ))
                }
                e => e.into(),
            })?;
            row.into_subscription(key, tenant.as_str())
        }

        /// Replaces subscription `id`'s URL, interest and format (its
        /// secret stays); none when there is no such subscription.
        async fn replace_subscription_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            key: &$crate::domain::sealing::SealingKey,
            tenant: &$crate::store::Tenant,
            subscription: &$crate::store::NewSubscription,
        ) -> $crate::store::StoreResult<Option<$crate::store::Subscription>> {
            let row = $crate::domain::sealing::Row {
                tenant: tenant.as_str(),
                table: "subscriptions",
                id: &subscription.id,
            };
            let stored = $crate::store::shape::StoredTarget::of(&subscription.target, key, row);
            sqlx::query_as::<_, SubscriptionRow>(
                "UPDATE subscriptions SET target_url = $3, target_secrets = $4, types = $5,
                     job_id = $6, host = $7, format = $8
                 WHERE tenant = $1 AND id = $2
                 RETURNING id, target_url, target_secrets, types, job_id, format, created_at",
            )
            .bind(tenant.as_str())
            .bind(&subscription.id)
            .bind(&stored.url)
            .bind(&stored.secrets)
            .bind($crate::store::types_text(&subscription.interest.types))
            .bind(&subscription.interest.job_id)
            .bind($crate::store::run_host(&stored.url))
            .bind(subscription.format.as_str())
            .fetch_optional(conn)
            .await?
            .map(|row| row.into_subscription(key, tenant.as_str()))
            .transpose()
        }

        /// Deletes subscription `id` (its deliveries go with it).
        async fn delete_subscription_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &$crate::store::Tenant,
            id: &str,
        ) -> $crate::store::StoreResult<bool> {
            let done = sqlx::query("DELETE FROM subscriptions WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .execute(conn)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn delete_calendar_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &$crate::store::Tenant,
            id: &str,
        ) -> $crate::store::StoreResult<bool> {
            let done = sqlx::query("DELETE FROM calendars WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .execute(conn)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn set_nominal_for_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            runs: &[(uuid::Uuid, chrono::DateTime<chrono::Utc>)],
        ) -> $crate::store::StoreResult<()> {
            for (id, nominal) in runs {
                sqlx::query("UPDATE runs SET nominal_for = $2 WHERE id = $1")
                    .bind(row_id(*id))
                    .bind(at(*nominal))
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        /// The ids of the tenant's jobs whose triggers use calendars.
        async fn calendared_jobs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &$crate::store::Tenant,
        ) -> $crate::store::StoreResult<Vec<String>> {
            Ok(sqlx::query_scalar(
                "SELECT id FROM jobs
                 WHERE tenant = $1 AND trigger_more LIKE '%\"calendars\"%' ORDER BY id",
            )
            .bind(tenant.as_str())
            .fetch_all(conn)
            .await?)
        }

        /// How many jobs `tenant` holds, read in `conn`'s transaction.
        async fn count_jobs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &$crate::store::Tenant,
        ) -> $crate::store::StoreResult<u64> {
            let n: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(jobs), 0) AS BIGINT)
                 FROM tenant_job_counts WHERE tenant = $1",
            )
            .bind(tenant.as_str())
            .fetch_one(conn)
            .await?;
            Ok(n.max(0) as u64)
        }

        /// Adds `jobs` (one created, or minus one deleted) to `tenant`'s
        /// count in `slot`, in `conn`'s transaction.
        async fn add_jobs_held_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &$crate::store::Tenant,
            slot: i32,
            jobs: i64,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "INSERT INTO tenant_job_counts (tenant, slot, jobs) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, slot) DO UPDATE
                 SET jobs = tenant_job_counts.jobs + excluded.jobs",
            )
            .bind(tenant.as_str())
            .bind(slot)
            .bind(jobs)
            .execute(conn)
            .await?;
            Ok(())
        }

        /// The quotas root set for `tenant`, read in `conn`'s transaction.
        async fn tenant_quotas_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &$crate::store::Tenant,
        ) -> $crate::store::StoreResult<$crate::domain::quota::QuotaOverrides> {
            let row: Option<(Option<i64>, Option<i64>, Option<i64>, Option<i64>)> =
                sqlx::query_as(
                    "SELECT jobs, subscriptions, runs_per_minute, catchup_max
                     FROM tenant_quotas WHERE tenant = $1",
                )
                .bind(tenant.as_str())
                .fetch_optional(conn)
                .await?;
            Ok(row
                .map($crate::store::portable::overrides_of)
                .unwrap_or_default())
        }

        /// The runs each tenant made in `minute`, and the scheduling
        /// quotas root set (of every tenant that has one), read in `conn`'s
        /// transaction.
        async fn runs_made_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            minute: i64,
        ) -> $crate::store::StoreResult<
            std::collections::HashMap<String, (u64, $crate::domain::quota::QuotaOverrides)>,
        > {
            let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT tenant, CAST(sum(made) AS BIGINT), max(most), max(catchup) FROM (
                     SELECT tenant, made, NULL AS most, NULL AS catchup
                     FROM tenant_runs_made WHERE minute = $1
                     UNION ALL
                     SELECT tenant, 0, runs_per_minute, catchup_max FROM tenant_quotas
                     WHERE runs_per_minute IS NOT NULL OR catchup_max IS NOT NULL
                 ) counts GROUP BY tenant",
            )
            .bind(minute)
            .fetch_all(conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(tenant, made, most, catchup)| {
                    let set = $crate::store::portable::overrides_of((None, None, most, catchup));
                    (tenant, (made.max(0) as u64, set))
                })
                .collect())
        }

        /// Adds `made` to the runs `tenant` made in `minute`, in `conn`'s
        /// transaction.
        async fn add_runs_made_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            minute: i64,
            tenant: &str,
            made: u64,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "INSERT INTO tenant_runs_made (tenant, minute, made) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, minute) DO UPDATE
                 SET made = tenant_runs_made.made + excluded.made",
            )
            .bind(tenant)
            .bind(minute)
            .bind(i64::try_from(made).unwrap_or(i64::MAX))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// When the job's newest run that succeeded was for and ended
        /// (§11.2's `last_success`), read in `conn`'s transaction.
        async fn last_success_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            job: &str,
        ) -> $crate::store::StoreResult<
            Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
        > {
            use $crate::store::rows::At;
            let row: Option<(AtColumn, Option<AtColumn>)> = sqlx::query_as(
                "SELECT scheduled_for, finished_at FROM runs
                 WHERE job_id = $2 AND tenant = $1 AND status = 'succeeded'
                 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(tenant)
            .bind(job)
            .fetch_optional(conn)
            .await?;
            Ok(row.and_then(|(scheduled_for, finished_at)| {
                Some((scheduled_for.at(), finished_at?.at()))
            }))
        }

        /// Keeps each run's rendered request (§11.2), in `conn`'s
        /// transaction.
        async fn store_requests_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            requests: &[(uuid::Uuid, String)],
        ) -> $crate::store::StoreResult<()> {
            for (id, request) in requests {
                sqlx::query("UPDATE runs SET request = $2 WHERE id = $1")
                    .bind(row_id(*id))
                    .bind(request)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        /// The run of each of the job's occurrences in `[from, to]`
        /// (scheduled or backfilled; replays aside), in `conn`'s
        /// transaction (§11.3).
        async fn occurrence_runs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            (tenant, job): &$crate::store::dialect::JobKey,
            from: chrono::DateTime<chrono::Utc>,
            to: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<
            std::collections::HashMap<chrono::DateTime<chrono::Utc>, uuid::Uuid>,
        > {
            use $crate::store::rows::{At, RowId};
            let rows: Vec<(AtColumn, IdColumn)> = sqlx::query_as(
                "SELECT scheduled_for, id FROM runs
                 WHERE tenant = $1 AND job_id = $2 AND cause IN ('schedule', 'backfill')
                   AND replay_of IS NULL AND scheduled_for >= $3 AND scheduled_for <= $4",
            )
            .bind(tenant)
            .bind(job)
            .bind(at(from))
            .bind(at(to))
            .fetch_all(conn)
            .await?;
            rows.into_iter()
                .map(|(t, id)| Ok((t.at(), id.uuid()?)))
                .collect()
        }

        /// The job's backfill runs in flight: admitted and waiting (§11.3).
        async fn backfill_in_flight_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            (tenant, job): &$crate::store::dialect::JobKey,
        ) -> $crate::store::StoreResult<$crate::domain::overlap::InFlight> {
            let (admitted, waiting): (i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(CASE WHEN wait_reason = 'backfill' THEN 0 ELSE 1 END), 0)
                             AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN wait_reason = 'backfill' THEN 1 ELSE 0 END), 0)
                             AS BIGINT)
                 FROM runs
                 WHERE tenant = $1 AND job_id = $2 AND status IN ('pending', 'running')
                   AND cause = 'backfill'",
            )
            .bind(tenant)
            .bind(job)
            .fetch_one(conn)
            .await?;
            Ok($crate::domain::overlap::InFlight {
                admitted: $crate::store::count(admitted),
                waiting: $crate::store::count(waiting),
            })
        }

        /// Sends the job's `n` oldest waiting backfill runs (by
        /// `scheduled_for`): their next attempt at their instant or `now`.
        async fn release_backfill_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            (tenant, job): &$crate::store::dialect::JobKey,
            n: u32,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<u64> {
            let done = sqlx::query(
                "UPDATE runs
                 SET wait_reason = CASE WHEN flow_key IS NULL THEN NULL ELSE 'flow:' || flow_key END,
                     next_attempt_at = CASE WHEN flow_key IS NOT NULL THEN NULL
                                            WHEN deliver_after > $4 THEN deliver_after
                                            ELSE $4 END
                 WHERE id IN (SELECT id FROM runs
                              WHERE tenant = $1 AND job_id = $2 AND wait_reason = 'backfill'
                                AND status = 'pending'
                              ORDER BY scheduled_for, id LIMIT $3)",
            )
            .bind(tenant)
            .bind(job)
            .bind(i64::from(n))
            .bind(at(now))
            .execute(conn)
            .await?;
            Ok(done.rows_affected())
        }

        /// One backfill run; false when its occurrence has a run already.
        async fn insert_backfill_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run: &$crate::store::dialect::NewBackfillRun,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<bool> {
            let pending = run.status == $crate::domain::run::RunStatus::Pending;
            let next_attempt_at =
                (pending && run.wait_reason.is_none()).then(|| at(run.scheduled_for.max(now)));
            let finished_at = (!pending).then(|| at(now));
            let done = sqlx::query(
                "INSERT INTO runs (id, tenant, job_id, scheduled_for, cause, status, occurrences,
                                   deliver_after, next_attempt_at, finished_at, created_at, host,
                                   wait_reason, reason, backfill_id, replay_of)
                 VALUES ($1, $2, $3, $4, 'backfill', $5, 1, $4, $6, $7, $8, $9, $10, $11, $12,
                         $13)
                 ON CONFLICT DO NOTHING",
            )
            .bind(row_id(run.id))
            .bind(&run.tenant)
            .bind(&run.job_id)
            .bind(at(run.scheduled_for))
            .bind(run.status.as_str())
            .bind(next_attempt_at)
            .bind(finished_at)
            .bind(at(now))
            .bind(&run.host)
            .bind(run.wait_reason)
            .bind(run.reason)
            .bind(row_id(run.backfill_id))
            .bind(run.replay_of.map(row_id))
            .execute(conn)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        /// Records a backfill.
        async fn insert_backfill_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            b: &$crate::store::Backfill,
            tenant: &str,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "INSERT INTO backfills (tenant, id, job_id, range_from, range_to, overlap,
                                        reprocess, occurrences, runs_made, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(tenant)
            .bind(row_id(b.id))
            .bind(b.job_id.as_str())
            .bind(at(b.from))
            .bind(at(b.to))
            .bind(&b.overlap)
            .bind(b.reprocess)
            .bind(i64::from(b.occurrences))
            .bind(i64::from(b.runs_made))
            .bind(at(b.created_at))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// A backfill with its runs counted by state, in `conn`'s
        /// transaction.
        async fn read_backfill_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            id: uuid::Uuid,
        ) -> $crate::store::StoreResult<Option<$crate::store::Backfill>> {
            let row: Option<$crate::store::rows::BackfillRow<AtColumn, IdColumn>> =
                sqlx::query_as(
                    "SELECT id, job_id, range_from, range_to, overlap, reprocess, occurrences,
                            runs_made, created_at, cancelled_at
                     FROM backfills WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(row_id(id))
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let states: Vec<(String, i64)> = sqlx::query_as(
                "SELECT CASE WHEN wait_reason IS NULL THEN status ELSE 'waiting' END,
                        CAST(count(*) AS BIGINT)
                 FROM runs WHERE backfill_id = $1 GROUP BY 1",
            )
            .bind(row_id(id))
            .fetch_all(conn)
            .await?;
            row.into_backfill(states).map(Some)
        }

        /// Cancels a backfill's pending runs (waiting or not yet sent) at
        /// `now`: answers their ids and jobs.
        async fn cancel_backfill_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            id: uuid::Uuid,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<Vec<(uuid::Uuid, String)>> {
            use $crate::store::rows::RowId;
            let cancelled: Vec<(IdColumn, String)> = sqlx::query_as(
                "UPDATE runs SET status = 'cancelled', reason = $3, wait_reason = NULL,
                                 next_attempt_at = NULL, finished_at = $4
                 WHERE tenant = $1 AND backfill_id = $2 AND status = 'pending'
                 RETURNING id, job_id",
            )
            .bind(tenant)
            .bind(row_id(id))
            .bind($crate::domain::event::BACKFILL_CANCELLED)
            .bind(at(now))
            .fetch_all(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE backfills SET cancelled_at = COALESCE(cancelled_at, $3)
                 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(row_id(id))
            .bind(at(now))
            .execute(conn)
            .await?;
            cancelled
                .into_iter()
                .map(|(run, job)| Ok((run.uuid()?, job)))
                .collect()
        }

        /// Makes a flow key's row unless it exists (§11.1): its limits, who
        /// defined them, a full bucket at `now`.
        async fn insert_flow_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            key: &str,
            limits: $crate::domain::flow::FlowLimits,
            defined_by: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<()> {
            let bucket = $crate::domain::flow::Bucket::full(limits.rate, now);
            sqlx::query(
                "INSERT INTO flows (tenant, key, max_in_flight, rate_limit, rate_period_s,
                                    defined_by, tokens, tokens_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tenant, key) DO NOTHING",
            )
            .bind(tenant)
            .bind(key)
            .bind(limits.max_in_flight.map(i64::from))
            .bind(limits.rate.map(|r| i64::from(r.limit)))
            .bind(limits.rate.map(|r| i64::from(r.period_s)))
            .bind(defined_by)
            .bind(bucket.tokens)
            .bind(at(bucket.at))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Sets a flow key's limits, who defined them and its bucket.
        async fn set_flow_limits_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            key: &str,
            limits: $crate::domain::flow::FlowLimits,
            defined_by: &str,
            bucket: $crate::domain::flow::Bucket,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "UPDATE flows SET max_in_flight = $3, rate_limit = $4, rate_period_s = $5,
                                  defined_by = $6, tokens = $7, tokens_at = $8
                 WHERE tenant = $1 AND key = $2",
            )
            .bind(tenant)
            .bind(key)
            .bind(limits.max_in_flight.map(i64::from))
            .bind(limits.rate.map(|r| i64::from(r.limit)))
            .bind(limits.rate.map(|r| i64::from(r.period_s)))
            .bind(defined_by)
            .bind(bucket.tokens)
            .bind(at(bucket.at))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Pauses or resumes a flow key; false when it has no row.
        async fn set_flow_paused_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            key: &str,
            paused: bool,
        ) -> $crate::store::StoreResult<bool> {
            let done = sqlx::query("UPDATE flows SET paused = $3 WHERE tenant = $1 AND key = $2")
                .bind(tenant)
                .bind(key)
                .bind(paused)
                .execute(conn)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        /// Writes a flow key's bucket and when its waiting runs may next
        /// go by time alone.
        async fn save_flow_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            key: &str,
            bucket: $crate::domain::flow::Bucket,
            next_admit_at: Option<chrono::DateTime<chrono::Utc>>,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query(
                "UPDATE flows SET tokens = $3, tokens_at = $4, next_admit_at = $5
                 WHERE tenant = $1 AND key = $2",
            )
            .bind(tenant)
            .bind(key)
            .bind(bucket.tokens)
            .bind(at(bucket.at))
            .bind(next_admit_at.map(at))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// A flow key's runs at `now`: in flight (sent or being sent),
        /// waiting and due, waiting, the next instant a waiting run falls
        /// due, and the earliest `max_wait_s` deadline.
        async fn flow_counts_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            key: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<$crate::store::dialect::FlowCounts> {
            use $crate::store::rows::At;
            let waiting = $crate::domain::flow::FlowKey::parse(key)
                .map(|k| k.wait_reason())
                .unwrap_or_default();
            let (in_flight, due, all, next_due, deadline): (
                i64,
                i64,
                i64,
                Option<AtColumn>,
                Option<AtColumn>,
            ) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(CASE WHEN wait_reason IS NULL THEN 1 ELSE 0 END), 0)
                             AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN wait_reason = $3 AND deliver_after <= $4
                                               THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN wait_reason = $3 THEN 1 ELSE 0 END), 0)
                             AS BIGINT),
                        MIN(CASE WHEN wait_reason = $3 AND deliver_after > $4
                                 THEN deliver_after END),
                        MIN(CASE WHEN wait_reason = $3 THEN wait_until END)
                 FROM runs
                 WHERE tenant = $1 AND flow_key = $2 AND status IN ('pending', 'running')",
            )
            .bind(tenant)
            .bind(key)
            .bind(&waiting)
            .bind(at(now))
            .fetch_one(conn)
            .await?;
            Ok($crate::store::dialect::FlowCounts {
                in_flight: $crate::store::count(in_flight),
                due: $crate::store::count(due),
                waiting: $crate::store::count(all),
                next_due_at: next_due.map(At::at),
                deadline: deadline.map(At::at),
            })
        }

        /// Records the key's waiting runs whose `max_wait_s` passed by
        /// `now` `missed`; answers their ids and jobs.
        async fn expire_flow_waits_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            key: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<Vec<(uuid::Uuid, String)>> {
            use $crate::store::rows::RowId;
            let waiting = format!("flow:{key}");
            let missed: Vec<(IdColumn, String)> = sqlx::query_as(
                "UPDATE runs SET status = 'missed', reason = $5, wait_reason = NULL,
                                 finished_at = $4
                 WHERE tenant = $1 AND flow_key = $2 AND wait_reason = $3 AND status = 'pending'
                   AND wait_until < $4
                 RETURNING id, job_id",
            )
            .bind(tenant)
            .bind(key)
            .bind(&waiting)
            .bind(at(now))
            .bind($crate::domain::event::MAX_WAIT)
            .fetch_all(conn)
            .await?;
            missed
                .into_iter()
                .map(|(id, job)| Ok((id.uuid()?, job)))
                .collect()
        }

        /// Sends the key's `n` first due waiting runs (priority desc,
        /// `scheduled_for`, id) at `now`.
        async fn admit_flow_runs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            key: &str,
            n: u32,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<u64> {
            let waiting = format!("flow:{key}");
            let done = sqlx::query(
                "UPDATE runs SET wait_reason = NULL, next_attempt_at = $5
                 WHERE id IN (SELECT id FROM runs
                              WHERE tenant = $1 AND flow_key = $2 AND wait_reason = $3
                                AND status = 'pending' AND deliver_after <= $5
                              ORDER BY priority DESC, scheduled_for, id LIMIT $4)",
            )
            .bind(tenant)
            .bind(key)
            .bind(&waiting)
            .bind(i64::from(n))
            .bind(at(now))
            .execute(conn)
            .await?;
            Ok(done.rows_affected())
        }

        /// A run of a flow job just made: its key, priority and deadline;
        /// one that would be sent waits for the key instead.
        async fn enter_flow_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run: uuid::Uuid,
            key: &str,
            priority: i32,
            wait_until: Option<chrono::DateTime<chrono::Utc>>,
        ) -> $crate::store::StoreResult<()> {
            let waiting = format!("flow:{key}");
            sqlx::query(
                "UPDATE runs SET flow_key = $2, priority = $3, wait_until = $4,
                     wait_reason = CASE WHEN wait_reason IS NULL THEN $5 ELSE wait_reason END,
                     next_attempt_at = CASE WHEN wait_reason IS NULL THEN NULL
                                            ELSE next_attempt_at END
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(row_id(run))
            .bind(key)
            .bind(priority)
            .bind(wait_until.map(at))
            .bind(&waiting)
            .execute(conn)
            .await?;
            Ok(())
        }

        /// A flow run to be tried again waits for its key again, from its
        /// retry time; answers its tenant and key (none for another run).
        async fn requeue_flow_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run: uuid::Uuid,
            lift_deadline: bool,
        ) -> $crate::store::StoreResult<Option<(String, String)>> {
            Ok(sqlx::query_as(
                "UPDATE runs SET wait_reason = 'flow:' || flow_key,
                                 deliver_after = COALESCE(next_attempt_at, deliver_after),
                                 next_attempt_at = NULL,
                                 wait_until = CASE WHEN $2 THEN NULL ELSE wait_until END
                 WHERE id = $1 AND flow_key IS NOT NULL AND status = 'pending'
                   AND wait_reason IS NULL
                 RETURNING tenant, flow_key",
            )
            .bind(row_id(run))
            .bind(lift_deadline)
            .fetch_optional(conn)
            .await?)
        }

        /// The flow keys of the job's runs in flight, each once.
        async fn flow_keys_in_flight_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            (tenant, job): &$crate::store::dialect::JobKey,
        ) -> $crate::store::StoreResult<Vec<$crate::store::dialect::JobKey>> {
            Ok(sqlx::query_as(
                "SELECT DISTINCT tenant, flow_key FROM runs
                 WHERE tenant = $1 AND job_id = $2 AND flow_key IS NOT NULL
                   AND status IN ('pending', 'running')",
            )
            .bind(tenant)
            .bind(job)
            .fetch_all(conn)
            .await?)
        }

        /// A run's tenant and flow key, if it has one.
        async fn flow_of_run_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            run: uuid::Uuid,
        ) -> $crate::store::StoreResult<Option<(String, String)>> {
            Ok(sqlx::query_as(
                "SELECT tenant, flow_key FROM runs WHERE id = $1 AND flow_key IS NOT NULL",
            )
            .bind(row_id(run))
            .fetch_optional(conn)
            .await?)
        }

        /// Replaces a job's current signing secret (sealed) with one the
        /// client chose.
        async fn set_secret_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            id: &str,
            sealed: &str,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query("UPDATE jobs SET secret = $3 WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .bind(sealed)
                .execute(conn)
                .await?;
            Ok(())
        }

        /// Deletes up to `batch` rows of `table` (events, audit) older than
        /// `older_than`. Their ids are UUIDv7 (lower-case text on SQLite):
        /// in time order, so the primary key finds the old ones.
        async fn delete_older_in(
            pool: &sqlx::Pool<Db>,
            table: &str,
            older_than: std::time::Duration,
            batch: u32,
        ) -> $crate::store::StoreResult<u64> {
            let done = sqlx::query(&format!(
                "DELETE FROM {table} WHERE id IN (
                     SELECT id FROM {table} WHERE id < $1 ORDER BY id LIMIT $2)"
            ))
            .bind(row_id($crate::store::uuid_before(older_than)))
            .bind(i64::from(batch))
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        }

        /// Writes audit records (§11.9) in `conn`'s transaction.
        async fn insert_audit_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            records: &[$crate::domain::audit::AuditRecord],
        ) -> $crate::store::StoreResult<()> {
            // 13 parameters a record: well under either database's limit.
            for chunk in records.chunks(1_000) {
                let mut query = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO audit (id, tenant, at, actor_type, actor_id, actor_name,
                         actor_role, request_id, source_ip, action, target, reason, changes) ",
                );
                query.push_values(chunk, |mut row, r| {
                    let (kind, token_id, name, role) = r.actor.parts();
                    row.push_bind(row_id(r.id))
                        .push_bind(r.tenant.clone())
                        .push_bind(at(r.at))
                        .push_bind(kind)
                        .push_bind(token_id.map(str::to_string))
                        .push_bind(name.map(str::to_string))
                        .push_bind(role)
                        .push_bind(r.request_id.clone())
                        .push_bind(r.source_ip.clone())
                        .push_bind(r.action.clone())
                        .push_bind(r.target.clone())
                        .push_bind(r.reason.clone())
                        .push_bind(r.changes.to_string());
                });
                query.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Makes a flow key due for admission at `now` at the latest.
        async fn poke_flow_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
            key: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<()> {
            // Always an update, never a WHERE that skips a key already
            // due: on PostgreSQL a skipped row is not waited for, so a
            // flow pass holding the key, counting this transaction's
            // ended run as in flight and saving the key as not due, would
            // leave its waiting runs waiting for good. Written, the row
            // waits for that pass and is made due after it.
            sqlx::query(
                "UPDATE flows
                 SET next_admit_at = CASE WHEN next_admit_at <= $3 THEN next_admit_at ELSE $3 END
                 WHERE tenant = $1 AND key = $2",
            )
            .bind(tenant)
            .bind(key)
            .bind(at(now))
            .execute(conn)
            .await?;
            Ok(())
        }

        /// A tenant's flow keys, in key order.
        async fn list_flows_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            tenant: &str,
        ) -> $crate::store::StoreResult<Vec<$crate::store::dialect::FlowState>> {
            let rows: Vec<$crate::store::rows::FlowRow<AtColumn>> = sqlx::query_as(
                "SELECT key, max_in_flight, rate_limit, rate_period_s, defined_by, paused,
                        tokens, tokens_at, next_admit_at
                 FROM flows WHERE tenant = $1 ORDER BY key",
            )
            .bind(tenant)
            .fetch_all(conn)
            .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        }

        #[async_trait::async_trait]
        impl $crate::store::portable::Portable for $dialect {
            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn get_job(
                &self,
                key: &$crate::domain::sealing::SealingKey,
                tenant: &$crate::store::Tenant,
                id: &$crate::domain::job::JobId,
            ) -> $crate::store::StoreResult<Option<$crate::store::Job>> {
                sqlx::query_as::<_, JobRow>(&format!("{JOBS} WHERE j.tenant = $1 AND j.id = $2"))
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| row.into_job(key, tenant.as_str()))
                    .transpose()
            }

            async fn timed_pauses_due(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    // Only a paused job's end counts: a stale one on a job
                    // resumed another way is not found again every pass.
                    "SELECT tenant, id FROM jobs WHERE paused_until <= $1 AND state = 'paused'
                     ORDER BY paused_until LIMIT $2",
                )
                .bind(at(now))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn job_exists(
                &self,
                tenant: &$crate::store::Tenant,
                id: &$crate::domain::job::JobId,
            ) -> $crate::store::StoreResult<bool> {
                let conn = &mut *self.pool.acquire().await?;
                Ok(monitor_only_in(conn, tenant.as_str(), id.as_str())
                    .await?
                    .is_some())
            }

            async fn list_jobs(
                &self,
                key: &$crate::domain::sealing::SealingKey,
                tenant: &$crate::store::Tenant,
                filter: &$crate::store::JobFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Job>> {
                select_jobs(&mut *self.pool.acquire().await?, key, tenant, filter, false).await
            }

            async fn run_request(
                &self,
                key: &$crate::domain::sealing::SealingKey,
                tenant: &$crate::store::Tenant,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<
                Option<Result<$crate::domain::target::Target, String>>,
            > {
                let request: Option<Option<String>> =
                    sqlx::query_scalar("SELECT request FROM runs WHERE tenant = $1 AND id = $2")
                        .bind(tenant.as_str())
                        .bind(row_id(id))
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(text) = request.flatten() else {
                    return Ok(None);
                };
                let id_text = id.to_string();
                let row = $crate::domain::sealing::Row {
                    tenant: tenant.as_str(),
                    table: "runs",
                    id: &id_text,
                };
                // Shown, not sent: the timeout is the job's, not the run's.
                $crate::store::shape::StoredRequest::read(&text, row, key, 0).map(Some)
            }

            async fn overview_runs(
                &self,
                tenant: &$crate::store::Tenant,
                since: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::overview::RunPoint>> {
                use $crate::store::rows::At as _;
                // `runs_recent` reads them; each run's first attempt by
                // its primary key.
                // A monitor-only job (it has a ping key) is pinged, not sent.
                let rows: Vec<(AtColumn, AtColumn, String, String, Option<AtColumn>, bool)> =
                    sqlx::query_as(
                        "SELECT r.created_at, r.scheduled_for, r.cause, r.status, a.started_at,
                                j.ping_key IS NOT NULL
                         FROM runs r
                         LEFT JOIN attempts a ON a.run_id = r.id AND a.number = 1
                         LEFT JOIN jobs j ON j.tenant = r.tenant AND j.id = r.job_id
                         WHERE r.tenant = $1 AND r.created_at >= $2 AND r.subscription_id IS NULL
                         ORDER BY r.created_at DESC LIMIT $3",
                    )
                    .bind(tenant.as_str())
                    .bind(at(since))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(made, due, cause, status, sent, monitored)| {
                        Some($crate::domain::overview::RunPoint {
                            created_at: made.at(),
                            scheduled_for: due.at(),
                            cause: $crate::domain::run::RunCause::parse(&cause)?,
                            status: $crate::domain::run::RunStatus::parse(&status)?,
                            first_attempt_at: sent.map(|s| s.at()),
                            monitored,
                        })
                    })
                    .collect())
            }

            async fn chain_parents(
                &self,
                tenant: &$crate::store::Tenant,
                child: &$crate::domain::job::JobId,
            ) -> $crate::store::StoreResult<
                Vec<($crate::domain::job::JobId, $crate::domain::chain::End, u32)>,
            > {
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT parent_id, on_end, delay_s FROM job_edges
                     WHERE tenant = $1 AND child_id = $2
                     ORDER BY parent_id, on_end",
                )
                .bind(tenant.as_str())
                .bind(child.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(parent, on, delay_s)| {
                        let on = $crate::store::edge_end(&on)?;
                        Ok(($crate::store::job_id(parent)?, on, u32::try_from(delay_s).unwrap_or(0)))
                    })
                    .collect()
            }

            async fn list_runs(
                &self,
                tenant: &$crate::store::Tenant,
                filter: &$crate::store::RunFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::run::Run>> {
                use $crate::domain::run::RunStatus;
                let mut query = sqlx::QueryBuilder::<Db>::new(format!(
                    "SELECT {} FROM runs WHERE tenant = ",
                    $crate::store::rows::RUN_COLUMNS
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
                        // A cancelling run is stored `running` (§11.7).
                        query.push(" AND (");
                        for (i, status) in statuses.iter().enumerate() {
                            if i > 0 {
                                query.push(" OR ");
                            }
                            match status {
                                RunStatus::Running => query.push(
                                    "(status = 'running' AND cancel_requested_at IS NULL)",
                                ),
                                RunStatus::Cancelling => query.push(
                                    "(status = 'running' AND cancel_requested_at IS NOT NULL)",
                                ),
                                other => query.push("status = ").push_bind(other.as_str()),
                            };
                        }
                        query.push(")");
                    }
                }
                if let Some(after) = filter.created_after {
                    query.push(" AND created_at > ").push_bind(at(after));
                }
                if let Some(before) = filter.created_before {
                    query.push(" AND created_at < ").push_bind(at(before));
                }
                if let Some(cursor) = filter.cursor {
                    query
                        .push(" AND (created_at, id) < (")
                        .push_bind(at(cursor.created_at))
                        .push(", ")
                        .push_bind(row_id(cursor.id))
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

            async fn get_run(
                &self,
                tenant: &$crate::store::Tenant,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<
                Option<($crate::domain::run::Run, Vec<$crate::store::Attempt>)>,
            > {
                let run = sqlx::query_as::<_, RunRow>(&format!(
                    "SELECT {} FROM runs
                     WHERE tenant = $1 AND id = $2 AND subscription_id IS NULL",
                    $crate::store::rows::RUN_COLUMNS
                ))
                .bind(tenant.as_str())
                .bind(row_id(id))
                .fetch_optional(&self.pool)
                .await?;
                let Some(run) = run else { return Ok(None) };
                let attempts = sqlx::query_as::<_, AttemptRow>(
                    "SELECT number, started_at, duration_ms, status_code, error, response_excerpt,
                            outcome_reason, body_truncated
                     FROM attempts WHERE run_id = $1 ORDER BY number",
                )
                .bind(row_id(id))
                .fetch_all(&self.pool)
                .await?;
                Ok(Some((
                    run.into_run()?,
                    attempts.into_iter().map($crate::store::Attempt::from).collect(),
                )))
            }

            async fn delete_expired_runs(
                &self,
                retention: std::time::Duration,
                batch: u32,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM runs WHERE id IN (
                         SELECT id FROM runs WHERE finished_at < $1 ORDER BY finished_at LIMIT $2)",
                )
                .bind(at($crate::store::portable::ago(retention)))
                .bind(i64::from(batch))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn find_idempotent_request(
                &self,
                tenant: &$crate::store::Tenant,
                scope: &str,
                key: &str,
                within: std::time::Duration,
            ) -> $crate::store::StoreResult<Option<$crate::store::IdempotentRequest>> {
                Ok(sqlx::query_as::<_, (String, String)>(
                    "SELECT fingerprint, resource_id FROM idempotency_keys
                     WHERE tenant = $1 AND scope = $2 AND key = $3 AND created_at > $4",
                )
                .bind(tenant.as_str())
                .bind(scope)
                .bind(key)
                .bind(at($crate::store::portable::ago(within)))
                .fetch_optional(&self.pool)
                .await?
                .map(|(fingerprint, resource_id)| $crate::store::IdempotentRequest {
                    fingerprint,
                    resource_id,
                }))
            }

            async fn delete_expired_idempotency_keys(
                &self,
                older_than: std::time::Duration,
                batch: u32,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM idempotency_keys WHERE (tenant, scope, key) IN (
                         SELECT tenant, scope, key FROM idempotency_keys
                         WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                )
                .bind(at($crate::store::portable::ago(older_than)))
                .bind(i64::from(batch))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn deregister_instance(&self, id: &str) -> $crate::store::StoreResult<()> {
                sqlx::query("DELETE FROM instances WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_instances(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Instance>> {
                use $crate::store::rows::At;
                let rows: Vec<(String, AtColumn, AtColumn, String, i64)> = sqlx::query_as(
                    "SELECT i.id, i.started_at, i.heartbeat_at, i.version,
                            (SELECT count(*) FROM runs r
                             WHERE r.status = 'running' AND r.lease_owner = i.id) AS leases
                     FROM instances i ORDER BY i.started_at, i.id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, started_at, heartbeat_at, version, leases)| {
                        $crate::store::Instance {
                            id,
                            started_at: started_at.at(),
                            heartbeat_at: heartbeat_at.at(),
                            version,
                            leases: leases.max(0) as u64,
                        }
                    })
                    .collect())
            }

            async fn get_secret(
                &self,
                key: &$crate::domain::sealing::SealingKey,
                tenant: &$crate::store::Tenant,
                id: &$crate::domain::job::JobId,
            ) -> $crate::store::StoreResult<Option<$crate::store::JobSecret>> {
                sqlx::query_as::<_, SecretRow>(
                    "SELECT secret, previous_secret, previous_secret_expires_at FROM jobs
                     WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.open(key, tenant.as_str(), id.as_str()))
                .transpose()
            }

            async fn rotate_secret(
                &self,
                key: &$crate::domain::sealing::SealingKey,
                tenant: &$crate::store::Tenant,
                id: &$crate::domain::job::JobId,
                new_secret: &str,
                grace: std::time::Duration,
            ) -> $crate::store::StoreResult<Option<$crate::store::JobSecret>> {
                let mut tx = self.pool.begin().await?;
                let rotated = sqlx::query_as::<_, SecretRow>(
                    "UPDATE jobs
                     SET previous_secret = secret, secret = $3, previous_secret_expires_at = $4
                     WHERE tenant = $1 AND id = $2
                     RETURNING secret, previous_secret, previous_secret_expires_at",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(key.seal_in(
                    $crate::domain::sealing::Row {
                        tenant: tenant.as_str(),
                        table: "jobs",
                        id: id.as_str(),
                    },
                    $crate::store::SECRET,
                    new_secret,
                ))
                .bind(at($crate::store::portable::from_now(grace)))
                .fetch_optional(&mut *tx)
                .await?;
                if rotated.is_some() {
                    let record = $crate::acting::current().record(
                        tenant.as_str(),
                        "job.secret_rotated",
                        &$crate::domain::audit::job_target(id.as_str()),
                        $crate::domain::audit::for_secret_rotated(),
                        chrono::Utc::now(),
                    );
                    insert_audit_in(&mut tx, &[record]).await?;
                }
                tx.commit().await?;
                rotated
                    .map(|row| row.open(key, tenant.as_str(), id.as_str()))
                    .transpose()
            }

            async fn create_token(
                &self,
                token: &$crate::store::NewToken,
            ) -> $crate::store::StoreResult<$crate::store::TokenInfo> {
                let mut tx = self.pool.begin().await?;
                let made = sqlx::query_as::<_, TokenRow>(&format!(
                    "INSERT INTO tokens (id, name, tenant, role, hash, created_at, scopes)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     RETURNING {}",
                    $crate::store::rows::TOKEN_COLUMNS
                ))
                .bind(&token.id)
                .bind(&token.name)
                .bind(token.tenant.as_str())
                .bind(token.role.as_str())
                .bind(&token.hash)
                .bind(at(chrono::Utc::now()))
                .bind(
                    token
                        .scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| match e {
                    e if $crate::store::is_unique_violation(&e) => {
                        $crate::store::StoreError::Conflict(
                            "a token with this id or value exists".into(),
                        )
                    }
                    e => e.into(),
                })?
                .into_info()?;
                let record = $crate::acting::current().record(
                    made.tenant.as_str(),
                    "token.created",
                    &format!("token/{}", made.id),
                    $crate::domain::audit::for_token_created(
                        &made.id,
                        made.name.as_deref(),
                        made.role,
                        made.tenant.as_str(),
                        &made.scopes,
                    ),
                    chrono::Utc::now(),
                );
                insert_audit_in(&mut tx, &[record]).await?;
                tx.commit().await?;
                Ok(made)
            }

            async fn find_token(
                &self,
                hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::TokenInfo>> {
                sqlx::query_as::<_, TokenRow>(&format!(
                    "SELECT {} FROM tokens WHERE hash = $1 AND revoked_at IS NULL",
                    $crate::store::rows::TOKEN_COLUMNS
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?
                .map(TokenRow::into_info)
                .transpose()
            }

            async fn list_tokens(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::TokenInfo>> {
                sqlx::query_as::<_, TokenRow>(&format!(
                    "SELECT {} FROM tokens ORDER BY created_at, id",
                    $crate::store::rows::TOKEN_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TokenRow::into_info)
                .collect()
            }

            async fn revoke_token(&self, id: &str) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let revoked: Option<(String,)> = sqlx::query_as(
                    "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL
                     RETURNING tenant",
                )
                .bind(id)
                .bind(at(chrono::Utc::now()))
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((tenant,)) = &revoked {
                    let record = $crate::acting::current().record(
                        tenant,
                        "token.revoked",
                        &format!("token/{id}"),
                        $crate::domain::audit::for_token_revoked(),
                        chrono::Utc::now(),
                    );
                    insert_audit_in(&mut tx, &[record]).await?;
                }
                tx.commit().await?;
                Ok(revoked.is_some())
            }

            async fn touch_token(&self, id: &str) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(at(chrono::Utc::now()))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn tokens(
                &self,
            ) -> $crate::store::StoreResult<$crate::domain::auth::Tokens> {
                let (made, live): (bool, bool) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM tokens),
                            EXISTS (SELECT 1 FROM tokens WHERE revoked_at IS NULL)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::domain::auth::Tokens::of(made, live))
            }

            async fn record_audit(
                &self,
                records: &[$crate::domain::audit::AuditRecord],
            ) -> $crate::store::StoreResult<()> {
                let mut conn = self.pool.acquire().await?;
                insert_audit_in(&mut conn, records).await
            }

            async fn list_audit(
                &self,
                tenant: &$crate::store::Tenant,
                filter: &$crate::store::AuditFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::audit::AuditRecord>> {
                let mut query = sqlx::QueryBuilder::<Db>::new(
                    "SELECT id, at, tenant, actor_type, actor_id, actor_name, actor_role,
                            request_id, source_ip, action, target, reason, changes
                     FROM audit WHERE tenant = ",
                );
                query.push_bind(tenant.as_str().to_string());
                if let Some(target) = &filter.target {
                    query.push(" AND target = ").push_bind(target.clone());
                }
                if let Some(actor) = &filter.actor {
                    // A token's id, or a kind: `system`, `open`, `anonymous`.
                    query
                        .push(" AND (actor_id = ")
                        .push_bind(actor.clone())
                        .push(" OR (actor_id IS NULL AND actor_type = ")
                        .push_bind(actor.clone())
                        .push("))");
                }
                if let Some(action) = &filter.action {
                    query.push(" AND action = ").push_bind(action.clone());
                }
                if let Some(after) = filter.after {
                    // Ids are UUIDv7: an instant's lower bound is an id's.
                    query
                        .push(" AND id >= ")
                        .push_bind(row_id($crate::store::uuid_at(after)));
                }
                let order = if filter.oldest_first { (">", "ASC") } else { ("<", "DESC") };
                if let Some(cursor) = filter.cursor {
                    query
                        .push(format_args!(" AND id {} ", order.0))
                        .push_bind(row_id(cursor));
                }
                query
                    .push(format_args!(" ORDER BY id {} LIMIT ", order.1))
                    .push_bind(i64::from(filter.limit));
                let rows: Vec<$crate::store::rows::AuditRow<IdColumn, AtColumn>> =
                    query.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(|r| r.into_record()).collect()
            }

            async fn delete_expired_audit(
                &self,
                older_than: std::time::Duration,
                batch: u32,
            ) -> $crate::store::StoreResult<u64> {
                delete_older_in(&self.pool, "audit", older_than, batch).await
            }

            async fn delete_expired_events(
                &self,
                older_than: std::time::Duration,
                batch: u32,
            ) -> $crate::store::StoreResult<u64> {
                delete_older_in(&self.pool, "events", older_than, batch).await
            }

            async fn list_subscriptions(
                &self,
                key: &$crate::domain::sealing::SealingKey,
                tenant: &$crate::store::Tenant,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Subscription>> {
                sqlx::query_as::<_, SubscriptionRow>(
                    "SELECT id, target_url, target_secrets, types, job_id, format, created_at
                     FROM subscriptions WHERE tenant = $1 ORDER BY created_at, id",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|row| row.into_subscription(key, tenant.as_str()))
                .collect()
            }

            async fn get_subscription(
                &self,
                key: &$crate::domain::sealing::SealingKey,
                tenant: &$crate::store::Tenant,
                id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::Subscription>> {
                sqlx::query_as::<_, SubscriptionRow>(
                    "SELECT id, target_url, target_secrets, types, job_id, format, created_at
                     FROM subscriptions WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.into_subscription(key, tenant.as_str()))
                .transpose()
            }

            async fn subscription_secret(
                &self,
                key: &$crate::domain::sealing::SealingKey,
                tenant: &$crate::store::Tenant,
                id: &str,
            ) -> $crate::store::StoreResult<Option<String>> {
                let sealed: Option<String> = sqlx::query_scalar(
                    "SELECT secret FROM subscriptions WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                sealed
                    .map(|s| {
                        let row = $crate::domain::sealing::Row {
                            tenant: tenant.as_str(),
                            table: "subscriptions",
                            id,
                        };
                        $crate::store::open_secret(key, row, &s, None).map(|s| s.secret)
                    })
                    .transpose()
            }

            async fn list_deliveries(
                &self,
                tenant: &$crate::store::Tenant,
                subscription_id: &str,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::DeliveryRecord>> {
                let rows: Vec<DeliveryRow> = sqlx::query_as(
                    "SELECT r.id, r.event_id, r.status, r.attempt_count, r.created_at,
                            r.next_attempt_at, r.finished_at,
                            (SELECT status_code FROM attempts WHERE run_id = r.id
                             ORDER BY number DESC LIMIT 1) AS status_code,
                            (SELECT error FROM attempts WHERE run_id = r.id
                             ORDER BY number DESC LIMIT 1) AS error
                     FROM runs r
                     WHERE r.tenant = $1 AND r.subscription_id = $2
                     ORDER BY r.created_at DESC, r.id DESC LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(subscription_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(DeliveryRow::into_record).collect()
            }

            async fn anything_to_watch(&self) -> $crate::store::StoreResult<bool> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs
                                                    WHERE alerts IS NOT NULL LIMIT 1) j)
                          + (SELECT count(*) FROM (SELECT 1 FROM alerts
                                                    WHERE state <> 'resolved' LIMIT 1) a)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }

            async fn job_signals(
                &self,
                limit: u32,
                tenant: Option<&$crate::store::Tenant>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::JobSignal>> {
                let rows: Vec<(String, String, Option<AtColumn>, i64)> = sqlx::query_as(
                    "SELECT j.tenant, j.id,
                            (SELECT max(r.finished_at) FROM runs r
                             WHERE r.tenant = j.tenant AND r.job_id = j.id
                               AND r.status = 'succeeded'),
                            (SELECT count(*) FROM runs r
                             WHERE r.tenant = j.tenant AND r.job_id = j.id
                               AND r.cause = 'schedule' AND r.status = 'failed'
                               AND NOT EXISTS (SELECT 1 FROM runs s
                                               WHERE s.tenant = r.tenant AND s.job_id = r.job_id
                                                 AND s.status = 'succeeded'
                                                 AND s.finished_at >= r.finished_at))
                     FROM jobs j
                     WHERE j.alerts IS NOT NULL AND j.alerts LIKE '%\"metrics\":true%'
                       AND ($2 IS NULL OR j.tenant = $2)
                     ORDER BY j.tenant, j.id
                     LIMIT $1",
                )
                .bind(i64::from(limit))
                .bind(tenant.map(|t| t.as_str()))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(tenant, job_id, last, failures)| $crate::store::JobSignal {
                        tenant,
                        job_id,
                        last_success: last.map($crate::store::rows::At::at),
                        consecutive_failures: failures.max(0) as u64,
                    })
                    .collect())
            }

            async fn gauges(&self) -> $crate::store::StoreResult<$crate::store::Gauges> {
                use $crate::domain::job::JobState;
                let runs_pending: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'pending'")
                        .fetch_one(&self.pool)
                        .await?;
                let jobs: Vec<(String, i64)> =
                    sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state")
                        .fetch_all(&self.pool)
                        .await?;
                let alerts: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT condition, count(*) FROM alerts WHERE state <> 'resolved'
                     GROUP BY condition",
                )
                .fetch_all(&self.pool)
                .await?;
                let size = self.pool.size();
                let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
                Ok($crate::store::Gauges {
                    alerts_open: alerts
                        .into_iter()
                        .filter_map(|(c, n)| {
                            Some(($crate::domain::alert::Condition::parse(&c)?, n.max(0) as u64))
                        })
                        .collect(),
                    runs_pending: runs_pending.max(0) as u64,
                    jobs: jobs
                        .into_iter()
                        .filter_map(|(state, n)| Some((JobState::parse(&state)?, n.max(0) as u64)))
                        .collect(),
                    db_connections: (size.saturating_sub(idle), idle),
                })
            }

            async fn tenant_quotas(
                &self,
                tenant: &$crate::store::Tenant,
            ) -> $crate::store::StoreResult<$crate::domain::quota::QuotaOverrides> {
                let mut conn = self.pool.acquire().await?;
                tenant_quotas_in(&mut conn, tenant).await
            }

            async fn set_tenant_quotas(
                &self,
                tenant: &$crate::store::Tenant,
                set: &$crate::domain::quota::QuotaOverrides,
            ) -> $crate::store::StoreResult<()> {
                let column = |q: Option<u32>| q.map(i64::from);
                // A write transaction from its start (SQLite's `BEGIN
                // IMMEDIATE`): it reads, then writes.
                let mut tx = $crate::store::dialect::Dialect::begin(self).await?;
                let before = tenant_quotas_in(&mut tx, tenant).await?;
                sqlx::query(
                    "INSERT INTO tenant_quotas
                         (tenant, jobs, subscriptions, runs_per_minute, updated_at, catchup_max)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant) DO UPDATE
                     SET jobs = excluded.jobs, subscriptions = excluded.subscriptions,
                         runs_per_minute = excluded.runs_per_minute,
                         catchup_max = excluded.catchup_max, updated_at = excluded.updated_at",
                )
                .bind(tenant.as_str())
                .bind(column(set.jobs))
                .bind(column(set.subscriptions))
                .bind(column(set.runs_per_minute))
                .bind(at(chrono::Utc::now()))
                .bind(column(set.catchup_max))
                .execute(&mut *tx)
                .await?;
                let record = $crate::acting::current().record(
                    tenant.as_str(),
                    "tenant.quotas_set",
                    &$crate::domain::audit::target("tenant", tenant.as_str()),
                    $crate::domain::audit::for_quotas(&before, set),
                    chrono::Utc::now(),
                );
                insert_audit_in(&mut tx, &[record]).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn held_back_tenants(
                &self,
                minute: i64,
                default_most: u32,
            ) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT m.tenant
                     FROM tenant_runs_made m LEFT JOIN tenant_quotas q ON q.tenant = m.tenant
                     WHERE m.minute = $1 AND m.made >= COALESCE(q.runs_per_minute, $2)",
                )
                .bind(minute)
                .bind(i64::from(default_most))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn forget_runs_made(
                &self,
                before_minute: i64,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM tenant_runs_made WHERE minute < $1")
                    .bind(before_minute)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn create_session(
                &self,
                session: &$crate::store::NewSession,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO ui_sessions (hash, token_id, csrf, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&session.hash)
                .bind(&session.token_id)
                .bind(&session.csrf)
                .bind(at(chrono::Utc::now()))
                .bind(at(session.expires_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_session(
                &self,
                hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::Session>> {
                let found: Option<(String, String)> = sqlx::query_as(
                    "SELECT token_id, csrf FROM ui_sessions WHERE hash = $1 AND expires_at > $2",
                )
                .bind(hash)
                .bind(at(chrono::Utc::now()))
                .fetch_optional(&self.pool)
                .await?;
                let Some((token_id, csrf)) = found else {
                    return Ok(None);
                };
                let token = sqlx::query_as::<_, TokenRow>(&format!(
                    "SELECT {} FROM tokens WHERE id = $1 AND revoked_at IS NULL",
                    $crate::store::rows::TOKEN_COLUMNS
                ))
                .bind(&token_id)
                .fetch_optional(&self.pool)
                .await?
                .map(TokenRow::into_info)
                .transpose()?;
                Ok(token.map(|token| $crate::store::Session { token, csrf }))
            }

            async fn delete_session(&self, hash: &str) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query("DELETE FROM ui_sessions WHERE hash = $1")
                    .bind(hash)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_expired_sessions(&self) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
                    .bind(at(chrono::Utc::now()))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use portable_statements;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_and_from_now_saturate_instead_of_overflowing() {
        assert_eq!(ago(Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(from_now(Duration::MAX), DateTime::<Utc>::MAX_UTC);
        let before = Utc::now();
        let hour_ago = ago(Duration::from_secs(3600));
        assert!(hour_ago <= before - TimeDelta::hours(1) + TimeDelta::seconds(5));
        assert!(hour_ago >= before - TimeDelta::hours(1) - TimeDelta::seconds(5));
    }
}
