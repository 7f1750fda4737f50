//! Monitor-only jobs' write paths once for both databases (DESIGN.md
//! §11.5): a ping moves the run it applies to, or records one that no run
//! awaited; the watchdog misses runs no ping reached within their grace
//! (see `alerts.rs`); a job's ping key is kept across saves and rotated.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dialect::Dialect;
use super::gates::Settled;
use super::rows::{At, RowId};
use super::writes::{SqlStore, audit_record};
use super::{StoreError, StoreResult, Tenant};
use crate::domain::audit;
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

/// A monitor-only job found by its ping key, with its next fire time.
#[derive(Debug)]
pub(crate) struct MonitorJob {
    pub tenant: String,
    pub job_id: String,
    pub next_run_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct MonitorJobRow<T> {
    tenant: String,
    job_id: String,
    next_run_at: Option<T>,
}

impl<T: At> From<MonitorJobRow<T>> for MonitorJob {
    fn from(r: MonitorJobRow<T>) -> Self {
        MonitorJob {
            tenant: r.tenant,
            job_id: r.job_id,
            next_run_at: r.next_run_at.map(At::at),
        }
    }
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
    /// A new run: the next fire time's (cause `schedule`, pinged early) or
    /// one nothing awaited (cause `ping`); `running` (no attempt yet) or
    /// ended.
    New {
        run_id: Uuid,
        cause: RunCause,
        scheduled_for: DateTime<Utc>,
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
        // A run the ping found changed before it was written (another
        // ping, the scheduler making the same fire time's run): read again.
        for _ in 0..3 {
            let mut tx = self.db.begin().await?;
            let Some(job) = self.db.monitor_by_key(&mut tx, key).await? else {
                return Ok(None);
            };
            if let Some(receipt) = self.ping_in(&mut tx, &job, ping, body).await? {
                let (events, deliveries) = receipt.1;
                D::commit(tx).await?;
                if events > 0 {
                    self.events_written(deliveries);
                }
                // Runs held for the monitor's success may go (§11.8).
                self.wake_after_settled(&receipt.2).await?;
                let r = receipt.0;
                tracing::info!(tenant = %job.tenant, job_id = %job.job_id, run_id = %r.run_id, ping = %ping.as_str(), status = r.status.as_str(), unexpected = r.unexpected, "ping");
                return Ok(Some(r));
            }
        }
        Err(StoreError::Conflict(
            "the monitor's runs kept changing while this ping was applied; ping again".into(),
        ))
    }

    /// One try at a ping in `tx`: what it did, with how many events and
    /// deliveries it wrote; none when a run changed under it.
    async fn ping_in(
        &self,
        tx: &mut D::Tx,
        job: &MonitorJob,
        ping: Ping,
        body: &[u8],
    ) -> StoreResult<Option<(PingReceipt, (usize, usize), Settled)>> {
        let now = Utc::now();
        let open = self
            .db
            .open_monitor_runs(tx, &job.tenant, &job.job_id)
            .await?;
        let runs: Vec<OpenRun> = open.iter().map(|(run, _)| *run).collect();
        let plan = monitor::apply(ping, &runs, job.next_run_at, now);
        let (excerpt, body_truncated) = monitor::excerpt(body);
        let ended = |started_at: DateTime<Utc>| PingAttempt {
            started_at,
            duration_ms: (now - started_at).num_milliseconds().max(0),
            excerpt: excerpt.clone(),
            body_truncated,
            outcome_reason: ping.outcome_reason(),
        };
        let new_run = |cause, scheduled_for, status: RunStatus| PingWrite::New {
            run_id: Uuid::now_v7(),
            cause,
            scheduled_for,
            status,
            attempt: (status != RunStatus::Running).then(|| ended(now)),
        };
        let write = match plan.effect {
            PingEffect::Moves {
                run_id,
                status: RunStatus::Running,
            } => PingWrite::Start { run_id },
            PingEffect::Moves { run_id, status } => {
                let started = open
                    .iter()
                    .find(|(run, _)| run.id == run_id)
                    .and_then(|(_, started)| *started)
                    .unwrap_or(now);
                PingWrite::End {
                    run_id,
                    status,
                    attempt: ended(started),
                }
            }
            PingEffect::Early {
                scheduled_for,
                status,
            } => new_run(RunCause::Schedule, scheduled_for, status),
            PingEffect::Unexpected { status } => new_run(RunCause::Ping, now, status),
        };
        let mut events = Vec::new();
        for run_id in &plan.abandoned {
            if !self
                .db
                .abandon_monitor_run(tx, &job.tenant, *run_id, now)
                .await?
            {
                return Ok(None);
            }
            tracing::warn!(tenant = %job.tenant, job_id = %job.job_id, %run_id, "run failed: it started again without reporting its end");
            events.push((
                job.tenant.clone(),
                event::run_abandoned(&job.job_id, *run_id),
            ));
        }
        if !self
            .db
            .write_ping(tx, &job.tenant, &job.job_id, &write, now)
            .await?
        {
            return Ok(None);
        }
        let (run_id, status, made) = match &write {
            PingWrite::Start { run_id } => (*run_id, RunStatus::Running, None),
            PingWrite::End { run_id, status, .. } => (*run_id, *status, None),
            PingWrite::New {
                run_id,
                cause,
                scheduled_for,
                status,
                ..
            } => (*run_id, *status, Some((*cause, *scheduled_for))),
        };
        if let Some((cause, scheduled_for)) = made {
            events.push((
                job.tenant.clone(),
                event::run_created(&RunMade {
                    job_id: &job.job_id,
                    run_id,
                    status,
                    cause,
                    scheduled_for,
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
        let settled = match status {
            RunStatus::Succeeded => {
                self.release_for_in(tx, &job.tenant, &job.job_id, now)
                    .await?
            }
            _ => Settled::default(),
        };
        events.extend(settled.events.iter().cloned());
        let deliveries = self.write_events(tx, &events).await?;
        let receipt = PingReceipt {
            job_id: job.job_id.clone(),
            run_id,
            status,
            unexpected: made.is_some_and(|(cause, _)| cause == RunCause::Ping),
        };
        Ok(Some((receipt, (events.len(), deliveries), settled)))
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
        let record = audit_record(
            tenant.as_str(),
            "job.ping_key_rotated",
            &audit::job_target(id.as_str()),
            audit::for_ping_key_rotated(),
        );
        self.db.insert_audit(&mut tx, &[record]).await?;
        D::commit(tx).await?;
        tracing::info!(%tenant, job_id = %id, "ping key rotated");
        Ok(Some(key))
    }
}
