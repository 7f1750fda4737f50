//! Monitor-only jobs' write paths once for both databases (DESIGN.md
//! §11.5): a ping moves the run it applies to, or records one that no run
//! awaited; the watchdog misses runs no ping reached within their grace
//! (see `alerts.rs`); a job's ping key is kept across saves and rotated.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dialect::Dialect;
use super::rows::{At, RowId};
use super::writes::SqlStore;
use super::{StoreError, StoreResult, Tenant};
use crate::domain::event::{self, RunMade};
use crate::domain::job::JobId;
use crate::domain::monitor::{self, OpenRun, Ping, PingEffect};
use crate::domain::run::{RunCause, RunStatus};

/// What a ping did.
#[derive(Debug, Clone, PartialEq)]
pub struct PingReceipt {
    pub job_id: String,
    pub run_id: Uuid,
    pub status: RunStatus,
    /// No run awaited it: a run of cause `ping` was recorded.
    pub unexpected: bool,
}

/// A monitor-only job found by its ping key.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MonitorJob {
    pub tenant: String,
    pub job_id: String,
}

/// A run a ping may move, and when it started.
#[derive(sqlx::FromRow)]
pub(crate) struct OpenRunRow<T, I> {
    id: I,
    status: String,
    scheduled_for: T,
    attempt_started_at: Option<T>,
}

impl<T: At, I: RowId> OpenRunRow<T, I> {
    pub fn into_open(self) -> StoreResult<(OpenRun, Option<DateTime<Utc>>)> {
        let status = RunStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {:?}", self.status)))?;
        Ok((
            OpenRun {
                id: self.id.uuid()?,
                status,
                scheduled_for: self.scheduled_for.at(),
            },
            self.attempt_started_at.map(At::at),
        ))
    }
}

/// The one attempt a monitor's run records when it ends: the watched
/// work, from its start ping (or the end ping) to its end.
#[derive(Debug, Clone)]
pub(crate) struct PingAttempt {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub excerpt: Option<String>,
    pub body_truncated: bool,
    pub outcome_reason: Option<String>,
}

/// What a ping writes.
#[derive(Debug, Clone)]
pub(crate) enum PingWrite {
    /// An awaiting run starts.
    Start { run_id: Uuid },
    /// An awaiting or running run ends with `status`.
    End {
        run_id: Uuid,
        status: RunStatus,
        attempt: PingAttempt,
    },
    /// A run of cause `ping`, `running` (no attempt yet) or ended.
    Unexpected {
        run_id: Uuid,
        status: RunStatus,
        attempt: Option<PingAttempt>,
    },
}

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    /// Applies a ping to the job whose key is `key`; none when no job has
    /// it. `body` is what the watched work sent (its excerpt is kept).
    pub(super) async fn ping_inner(
        &self,
        key: &str,
        ping: Ping,
        body: &[u8],
    ) -> StoreResult<Option<PingReceipt>> {
        let mut tx = self.db.begin().await?;
        let Some(job) = self.db.monitor_by_key(&mut tx, key).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        let open = self
            .db
            .open_monitor_runs(&mut tx, &job.tenant, &job.job_id)
            .await?;
        let runs: Vec<OpenRun> = open.iter().map(|(run, _)| *run).collect();
        let (excerpt, body_truncated) = monitor::excerpt(body);
        let ended = |started_at: DateTime<Utc>| PingAttempt {
            started_at,
            duration_ms: (now - started_at).num_milliseconds().max(0),
            excerpt: excerpt.clone(),
            body_truncated,
            outcome_reason: ping.outcome_reason(),
        };
        let (write, receipt) = match monitor::apply(ping, &runs) {
            PingEffect::Moves {
                run_id,
                status: RunStatus::Running,
            } => (
                PingWrite::Start { run_id },
                (run_id, RunStatus::Running, false),
            ),
            PingEffect::Moves { run_id, status } => {
                let started = open
                    .iter()
                    .find(|(run, _)| run.id == run_id)
                    .and_then(|(_, started)| *started)
                    .unwrap_or(now);
                let attempt = ended(started);
                (
                    PingWrite::End {
                        run_id,
                        status,
                        attempt,
                    },
                    (run_id, status, false),
                )
            }
            PingEffect::Unexpected { status } => {
                let run_id = Uuid::now_v7();
                let attempt = (status != RunStatus::Running).then(|| ended(now));
                (
                    PingWrite::Unexpected {
                        run_id,
                        status,
                        attempt,
                    },
                    (run_id, status, true),
                )
            }
        };
        let (run_id, status, unexpected) = receipt;
        if !self
            .db
            .write_ping(&mut tx, &job.tenant, &job.job_id, &write, now)
            .await?
        {
            return Err(StoreError::Conflict(format!(
                "run {run_id} of job {} changed while this ping was applied; ping again",
                job.job_id
            )));
        }
        let mut events = Vec::new();
        if unexpected {
            events.push((
                job.tenant.clone(),
                event::run_created(&RunMade {
                    job_id: &job.job_id,
                    run_id,
                    status,
                    cause: RunCause::Ping,
                    scheduled_for: now,
                    occurrences: 1,
                    wait_reason: None,
                    reason: None,
                }),
            ));
        }
        let reason = ping.outcome_reason();
        if let Some(e) = event::run_pinged(
            &job.job_id,
            run_id,
            status,
            &ping.as_str(),
            reason.as_deref(),
        ) {
            events.push((job.tenant.clone(), e));
        }
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        if !events.is_empty() {
            self.events_written(deliveries);
        }
        tracing::info!(tenant = %job.tenant, job_id = %job.job_id, %run_id, ping = %ping.as_str(), status = status.as_str(), unexpected, "ping");
        Ok(Some(PingReceipt {
            job_id: job.job_id,
            run_id,
            status,
            unexpected,
        }))
    }

    /// Gives monitor-only job `id` a new ping key (the old one stops
    /// working); none when there is no such job, a conflict when it is not
    /// monitor-only.
    pub(super) async fn rotate_ping_key_inner(
        &self,
        tenant: &Tenant,
        id: &JobId,
    ) -> StoreResult<Option<String>> {
        let mut tx = self.db.begin().await?;
        let Some(job) = self
            .db
            .read_job(&mut tx, &self.key, tenant, id, true)
            .await?
        else {
            return Ok(None);
        };
        if job.definition.monitor.is_none() {
            return Err(StoreError::Conflict(format!(
                "job {id} is not monitor-only: it has no ping key"
            )));
        }
        let key = monitor::new_ping_key();
        self.db
            .set_ping_key(&mut tx, tenant.as_str(), id.as_str(), Some(&key), true)
            .await?;
        D::commit(tx).await?;
        tracing::info!(%tenant, job_id = %id, "ping key rotated");
        Ok(Some(key))
    }
}
