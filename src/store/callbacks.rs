//! Long runs' write paths once for both databases (DESIGN.md §11.7): a
//! callback run's completion, heartbeat and cancel, each under the run's
//! row lock, and the watchdog's pass that ends runs past their time on the
//! database's clock. What each does is decided by `domain::callback`.

use chrono::{DateTime, Utc};
use rand::RngExt;
use uuid::Uuid;

use super::dialect::Dialect;
use super::rows::{At, RowId};
use super::shape::StoredRetry;
use super::writes::{SqlStore, audit_record};
use super::{AttemptRecord, StoreError, StoreResult};
use crate::domain::audit;
use crate::domain::callback::{
    self, Beat, CancelEffect, Completed, CompletionEffect, HeartbeatEffect, Overdue, OverdueEffect,
    Watched,
};
use crate::domain::event::{self, NewEvent};
use crate::domain::retry::{AttemptNumber, Outcome};
use crate::domain::run::RunStatus;

/// Most overdue runs one watchdog pass ends.
const WATCH_BATCH: u32 = 256;

/// A job's run as a callback finds it.
#[derive(sqlx::FromRow)]
pub(crate) struct CallbackRow<T> {
    tenant: String,
    job_id: String,
    status: String,
    attempt_count: i64,
    lease_owner: Option<String>,
    accepted_at: Option<T>,
    cancel_requested_at: Option<T>,
    completion: Option<String>,
    heartbeat_s: Option<i64>,
    deadline_at: Option<T>,
    attempt_started_at: Option<T>,
    flow_key: Option<String>,
}

/// A job's run, read for a callback under its row lock.
#[derive(Debug, Clone)]
pub(crate) struct CallbackRun {
    pub tenant: String,
    pub job_id: String,
    pub rules: callback::CallbackRun,
    pub heartbeat_s: Option<u32>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub attempt_started_at: Option<DateTime<Utc>>,
    pub flow: bool,
}

impl<T: At> CallbackRow<T> {
    pub fn into_run(self) -> StoreResult<CallbackRun> {
        let status = RunStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {:?}", self.status)))?;
        let completed = self
            .completion
            .as_deref()
            .map(serde_json::from_str::<Completed>)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("run completion: {e}")))?;
        Ok(CallbackRun {
            tenant: self.tenant,
            job_id: self.job_id,
            rules: callback::CallbackRun {
                status,
                attempt_count: u32::try_from(self.attempt_count).unwrap_or(0),
                leased: self.lease_owner.is_some(),
                accepted_at: self.accepted_at.map(At::at),
                cancel_requested_at: self.cancel_requested_at.map(At::at),
                completed,
            },
            heartbeat_s: self.heartbeat_s.and_then(|s| u32::try_from(s).ok()),
            deadline_at: self.deadline_at.map(At::at),
            attempt_started_at: self.attempt_started_at.map(At::at),
            flow: self.flow_key.is_some(),
        })
    }
}

/// An accepted run past its `watch_at`.
#[derive(sqlx::FromRow)]
pub(crate) struct WatchedRow<T, I> {
    id: I,
    tenant: String,
    job_id: String,
    deadline_at: Option<T>,
    heartbeat_due_at: Option<T>,
    cancel_requested_at: Option<T>,
    flow_key: Option<String>,
    scheduled_for: T,
    attempt_count: i64,
    prior_attempts: i64,
    max_attempts: Option<i64>,
    backoff_initial_s: Option<i64>,
    backoff_max_s: Option<i64>,
    delivery_rules: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct WatchedRun {
    pub id: Uuid,
    pub tenant: String,
    pub job_id: String,
    pub watched: Watched,
    pub flow: bool,
    pub scheduled_for: DateTime<Utc>,
    /// Its accepted attempt.
    pub attempt: AttemptNumber,
    /// Its job's retry policy as stored (none if the job is gone).
    pub retry: Option<StoredRetry>,
}

impl<T: At, I: RowId> WatchedRow<T, I> {
    pub fn into_watched(self) -> StoreResult<WatchedRun> {
        Ok(WatchedRun {
            id: self.id.uuid()?,
            tenant: self.tenant,
            job_id: self.job_id,
            watched: Watched {
                deadline_at: self.deadline_at.map(At::at),
                heartbeat_due_at: self.heartbeat_due_at.map(At::at),
                cancelling: self.cancel_requested_at.is_some(),
            },
            flow: self.flow_key.is_some(),
            scheduled_for: self.scheduled_for.at(),
            attempt: AttemptNumber {
                number: u32::try_from(self.attempt_count).unwrap_or(0).max(1),
                before_redrive: u32::try_from(self.prior_attempts).unwrap_or(0),
            },
            retry: StoredRetry::joined(
                self.max_attempts,
                self.backoff_initial_s,
                self.backoff_max_s,
                self.delivery_rules,
            ),
        })
    }
}

/// How a callback run ends, as written.
#[derive(Debug, Clone)]
pub(crate) struct CallbackEnd {
    pub status: RunStatus,
    pub reason: Option<&'static str>,
    /// The receiver's report, as JSON text.
    pub completion: Option<String>,
    /// The attempt still in flight (number, start), recorded with the end.
    pub in_flight: Option<(i64, DateTime<Utc>)>,
}

/// What a completion did.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionReceipt {
    pub job_id: String,
    pub status: RunStatus,
    /// The same completion was reported before: nothing changed.
    pub repeated: bool,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelReceipt {
    pub tenant: String,
    pub job_id: String,
    /// As the run stands now: `cancelled`, or `cancelling` until its
    /// receiver completes it or its grace passes.
    pub status: RunStatus,
    /// A cancel request is to go to the receiver (a run accepted and
    /// cancelled just now).
    pub notify_receiver: bool,
}

/// The record a callback run's end is followed up with, as an attempt's
/// end would be: a failure may pause its job (`pause_on_failure`), any end
/// releases runs that wait for it and gives its flow slot back, and one
/// that succeeded or failed starts its chained runs (§11.8).
fn end_record(run: &EndedRun) -> StoreResult<AttemptRecord> {
    let outcome = match run.status {
        RunStatus::Failed => Outcome::Failed,
        RunStatus::Cancelled => Outcome::Cancelled,
        _ => Outcome::Succeeded,
    };
    Ok(AttemptRecord {
        flow: run.flow,
        ..AttemptRecord::interrupted(
            run.id,
            super::tenant(&run.tenant)?,
            Some(super::job_id(run.job_id.clone())?),
            run.attempt_count,
            outcome,
        )
    })
}

/// The record of a run the watchdog sends again (`retry.on_timeout`,
/// §11.7), as a retried attempt's: its flow key requeues it, and it
/// makes the `attempt.failed` event, saying `why`.
fn retry_record(
    run: &WatchedRun,
    delay: std::time::Duration,
    why: &str,
) -> StoreResult<AttemptRecord> {
    Ok(AttemptRecord {
        flow: run.flow,
        error: Some(why.to_string()),
        ..AttemptRecord::interrupted(
            run.id,
            super::tenant(&run.tenant)?,
            Some(super::job_id(run.job_id.clone())?),
            run.attempt.number,
            Outcome::Retry { delay },
        )
    })
}

/// A run a callback, a cancel or the watchdog ended.
struct EndedRun {
    id: Uuid,
    tenant: String,
    job_id: String,
    status: RunStatus,
    reason: Option<&'static str>,
    error: Option<String>,
    attempt_count: u32,
    flow: bool,
}

impl EndedRun {
    fn of(
        run_id: Uuid,
        run: &CallbackRun,
        status: RunStatus,
        reason: Option<&'static str>,
        error: Option<String>,
    ) -> Self {
        EndedRun {
            id: run_id,
            tenant: run.tenant.clone(),
            job_id: run.job_id.clone(),
            status,
            reason,
            error,
            attempt_count: run.rules.attempt_count.max(1),
            flow: run.flow,
        }
    }
}

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    /// What follows runs' ends in `tx`: their events, their jobs'
    /// follow-ups, their flow slots. Answers the events' deliveries.
    async fn after_callback_ends(&self, tx: &mut D::Tx, ended: &[EndedRun]) -> StoreResult<usize> {
        let records = ended
            .iter()
            .map(end_record)
            .collect::<StoreResult<Vec<_>>>()?;
        let ids: Vec<Uuid> = ended.iter().map(|r| r.id).collect();
        let mut events: Vec<(String, NewEvent)> = ended
            .iter()
            .filter_map(|r| {
                let e = event::run_ended_by_callback(
                    &r.job_id,
                    r.id,
                    r.status,
                    r.reason,
                    r.error.as_deref(),
                )?;
                Some((r.tenant.clone(), e))
            })
            .collect();
        let (followed, released) = self.after_runs_end(tx, &records, &ids).await?;
        events.extend(followed);
        let flows_due = self.flows_after_attempts(tx, &records, &ids).await?;
        if released > 0 {
            self.db.notify(tx, super::dialect::Channel::Runs).await?;
        }
        let deliveries = self.write_events(tx, &events).await?;
        if released > 0 {
            self.wakeups.runs_changed();
        }
        if flows_due || released > 0 {
            self.wakeups.flows_changed();
        }
        Ok(deliveries)
    }

    /// A transaction holding job run `run_id`'s row lock, and the run.
    async fn locked_run(&self, run_id: Uuid) -> StoreResult<(D::Tx, CallbackRun)> {
        let mut tx = self.db.begin().await?;
        let run = self
            .db
            .lock_callback_run(&mut tx, run_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((tx, run))
    }

    /// Whether `token` is run `run_id`'s callback token.
    pub(super) fn verify_callback_inner(&self, run_id: Uuid, token: &str) -> bool {
        self.key.callback_key().verify(run_id, token)
    }

    /// The receiver's report of run `run_id`'s end (its token checked by
    /// the caller).
    pub(super) async fn complete_run_inner(
        &self,
        run_id: Uuid,
        report: &Completed,
    ) -> StoreResult<CompletionReceipt> {
        let now = Utc::now();
        let (mut tx, run) = self.locked_run(run_id).await?;
        let reported = report.status.run_status();
        match callback::complete(&run.rules, report) {
            CompletionEffect::Ends { status } => {
                let in_flight = (run.rules.leased && run.rules.accepted_at.is_none())
                    .then_some(run.attempt_started_at)
                    .flatten()
                    .map(|at| (i64::from(run.rules.attempt_count), at));
                let reason = (status == RunStatus::Cancelled
                    && run.rules.cancel_requested_at.is_some())
                .then_some(callback::REASON_CANCELLED);
                let end = CallbackEnd {
                    status,
                    reason,
                    completion: Some(serde_json::to_string(report).unwrap_or_default()),
                    in_flight,
                };
                self.db.end_callback_run(&mut tx, run_id, &end, now).await?;
                let ended = EndedRun::of(run_id, &run, status, reason, report.error.clone());
                let deliveries = self.after_callback_ends(&mut tx, &[ended]).await?;
                D::commit(tx).await?;
                self.events_written(deliveries);
                tracing::info!(tenant = %run.tenant, job_id = %run.job_id, %run_id, status = status.as_str(), "run completed by its callback");
                Ok(CompletionReceipt {
                    job_id: run.job_id,
                    status,
                    repeated: false,
                })
            }
            CompletionEffect::Repeated => Ok(CompletionReceipt {
                job_id: run.job_id,
                status: reported,
                repeated: true,
            }),
            CompletionEffect::NotStarted => Err(StoreError::Conflict(format!(
                "run {run_id} has not been sent yet: there is nothing to complete"
            ))),
            CompletionEffect::Late { ended_as } => {
                let e =
                    event::run_late_completion(&run.job_id, run_id, ended_as, reported.as_str());
                let deliveries = self
                    .write_events(&mut tx, &[(run.tenant.clone(), e)])
                    .await?;
                D::commit(tx).await?;
                self.events_written(deliveries);
                tracing::warn!(tenant = %run.tenant, job_id = %run.job_id, %run_id, ended_as = ended_as.as_str(), reported = reported.as_str(), "late completion refused: the run has ended otherwise");
                Err(StoreError::Conflict(format!(
                    "run {run_id} has already ended as {}; a different completion is refused",
                    ended_as.as_str()
                )))
            }
        }
    }

    /// A heartbeat of run `run_id` (its token checked by the caller).
    pub(super) async fn heartbeat_run_inner(&self, run_id: Uuid, beat: &Beat) -> StoreResult<()> {
        let now = Utc::now();
        let (mut tx, run) = self.locked_run(run_id).await?;
        match callback::heartbeat(&run.rules, run.heartbeat_s, run.deadline_at, now) {
            HeartbeatEffect::NotRunning => Err(StoreError::Conflict(format!(
                "run {run_id} is {}: heartbeats are for a running run",
                run.rules.status.as_str()
            ))),
            HeartbeatEffect::Beats { next_due, watch_at } => {
                self.db
                    .beat_callback_run(&mut tx, run_id, beat, next_due, watch_at, now)
                    .await?;
                D::commit(tx).await?;
                tracing::debug!(%run_id, progress = beat.progress, "heartbeat");
                Ok(())
            }
        }
    }

    /// `POST /v1/runs/{id}/cancel` of the tenant's run `run_id`.
    pub(super) async fn cancel_run_inner(
        &self,
        tenant: &str,
        run_id: Uuid,
    ) -> StoreResult<CancelReceipt> {
        let now = Utc::now();
        let (mut tx, run) = self.locked_run(run_id).await?;
        if run.tenant != tenant {
            return Err(StoreError::NotFound);
        }
        let job = self
            .db
            .read_job(
                &mut tx,
                &self.key,
                &super::tenant(&run.tenant)?,
                &super::job_id(run.job_id.clone())?,
                false,
            )
            .await?;
        let grace = job
            .as_ref()
            .and_then(|j| j.definition.target.as_ref()?.completion)
            .map_or(callback::DEFAULT_CANCEL_GRACE_S, |c| c.cancel_grace_s);
        // Asked by a caller: in the trail, in the transaction that does it.
        let trail = |status: RunStatus| {
            audit_record(
                tenant,
                "job.run_cancelled",
                &audit::job_target(&run.job_id),
                audit::for_run_cancelled(run_id, status.as_str()),
            )
        };
        let receipt = |status, notify_receiver| CancelReceipt {
            tenant: run.tenant.clone(),
            job_id: run.job_id.clone(),
            status,
            notify_receiver,
        };
        match callback::cancel(&run.rules, grace, now) {
            CancelEffect::Ended => Err(StoreError::Conflict(format!(
                "run {run_id} has ended ({}): there is nothing to cancel",
                run.rules.status.as_str()
            ))),
            CancelEffect::AlreadyCancelling => Ok(receipt(RunStatus::Cancelling, false)),
            CancelEffect::Cancelling { until } => {
                self.db.request_cancel(&mut tx, run_id, until, now).await?;
                self.db
                    .insert_audit(&mut tx, &[trail(RunStatus::Cancelling)])
                    .await?;
                D::commit(tx).await?;
                tracing::info!(%tenant, job_id = %run.job_id, %run_id, grace_s = grace, "run cancelling: its receiver is asked to stop");
                Ok(receipt(RunStatus::Cancelling, true))
            }
            effect @ (CancelEffect::Now | CancelEffect::Abort) => {
                let end = CallbackEnd {
                    status: RunStatus::Cancelled,
                    reason: Some(callback::REASON_CANCELLED),
                    completion: None,
                    in_flight: None,
                };
                self.db.end_callback_run(&mut tx, run_id, &end, now).await?;
                self.db
                    .insert_audit(&mut tx, &[trail(RunStatus::Cancelled)])
                    .await?;
                let aborted = effect == CancelEffect::Abort;
                if aborted {
                    // Its request is dropped wherever it is being sent.
                    self.db.notify_cancelled(&mut tx, &[run_id]).await?;
                }
                let ended = EndedRun::of(
                    run_id,
                    &run,
                    RunStatus::Cancelled,
                    Some(callback::REASON_CANCELLED),
                    None,
                );
                let deliveries = self.after_callback_ends(&mut tx, &[ended]).await?;
                D::commit(tx).await?;
                if aborted {
                    self.wakeups.aborts.cancelled(&[run_id]);
                }
                self.events_written(deliveries);
                tracing::info!(%tenant, job_id = %run.job_id, %run_id, aborted, "run cancelled");
                Ok(receipt(RunStatus::Cancelled, false))
            }
        }
    }

    /// The watchdog's pass over accepted runs: those past their time end
    /// (`timed_out`, `heartbeat_lost`, or `cancelled` after a cancel's
    /// grace), on the database's clock. Answers how many ended, by status.
    pub(super) async fn watch_callbacks_inner(&self) -> StoreResult<Vec<RunStatus>> {
        let mut tx = self.db.begin().await?;
        let Some(now) = self.db.lock_watchdog(&mut tx).await? else {
            D::commit(tx).await?;
            return Ok(Vec::new());
        };
        let due = self
            .db
            .overdue_callback_runs(&mut tx, now, WATCH_BATCH)
            .await?;
        let mut ended = Vec::new();
        let mut retried = Vec::new();
        for run in due {
            let Some(overdue) = callback::overdue(run.watched, now) else {
                continue;
            };
            let policy = super::stored_policy(&run.job_id, run.retry.clone());
            let age = (now - run.scheduled_for).to_std().unwrap_or_default();
            let effect = callback::settle_overdue(
                overdue,
                run.attempt,
                &policy,
                age,
                rand::rng().random::<f64>(),
            );
            let why = overdue.in_words();
            let number = i64::from(run.attempt.number);
            if overdue != Overdue::CancelGraceOver {
                let noted = format!("{}: {why}", overdue.reason());
                self.db
                    .note_overdue_attempt(&mut tx, run.id, number, &noted)
                    .await?;
            }
            let (status, reason) = match effect {
                OverdueEffect::Retry { delay } => {
                    let next = now + chrono::TimeDelta::from_std(delay).unwrap_or_default();
                    self.db.retry_callback_run(&mut tx, run.id, next).await?;
                    tracing::warn!(tenant = %run.tenant, job_id = %run.job_id, run_id = %run.id, reason = overdue.reason(), retry_in_ms = delay.as_millis() as u64, "run sent again (retry.on_timeout): {why}");
                    retried.push(retry_record(&run, delay, why)?);
                    continue;
                }
                OverdueEffect::Ends { status, reason } => (status, reason),
            };
            let end = CallbackEnd {
                status,
                reason: Some(reason),
                completion: None,
                in_flight: None,
            };
            self.db.end_callback_run(&mut tx, run.id, &end, now).await?;
            tracing::warn!(tenant = %run.tenant, job_id = %run.job_id, run_id = %run.id, status = status.as_str(), reason, "run ended: {why}");
            ended.push(EndedRun {
                id: run.id,
                tenant: run.tenant,
                job_id: run.job_id,
                status,
                reason: Some(reason),
                error: (overdue != Overdue::CancelGraceOver).then(|| why.to_string()),
                attempt_count: run.attempt.number,
                flow: run.flow,
            });
        }
        let mut deliveries = 0;
        let mut flows_due = false;
        let any_retried = !retried.is_empty();
        let wrote_events = !ended.is_empty() || any_retried;
        if !retried.is_empty() {
            self.db
                .notify(&mut tx, super::dialect::Channel::Runs)
                .await?;
            let events = super::writes::attempt_events(&retried, None);
            deliveries += self.write_events(&mut tx, &events).await?;
            // A flow run goes back to its key's queue, as any retry (§11.1).
            let ids: Vec<Uuid> = retried.iter().map(|r| r.run_id).collect();
            flows_due = self.flows_after_attempts(&mut tx, &retried, &ids).await?;
        }
        if !ended.is_empty() {
            deliveries += self.after_callback_ends(&mut tx, &ended).await?;
        }
        D::commit(tx).await?;
        if any_retried {
            self.wakeups.runs_changed();
        }
        if flows_due {
            self.wakeups.flows_changed();
        }
        if wrote_events {
            self.events_written(deliveries);
        }
        Ok(ended.iter().map(|r| r.status).collect())
    }
}
