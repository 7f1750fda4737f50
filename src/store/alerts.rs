//! Alerts' write paths once for both databases (DESIGN.md §11.5): the
//! watchdog's pass, which reads each alerting job's recent runs and open
//! alerts, asks [`alert::evaluate`], and writes what it answers with its
//! events in one transaction; and the API's list and acknowledgement.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::dialect::Dialect;
use super::rows::{At, RowId};
use super::shape::StoredAlerts;
use super::writes::{SqlStore, audit_record};
use super::{StoreError, StoreResult, Tenant};
use crate::domain::alert::{
    self, Action, AlertState, Condition, OpenAlert, PastAlert, RecentRun, Watched,
};
use crate::domain::audit;
use crate::domain::event::{self, EventType, NewEvent};
use crate::domain::instant;
use crate::domain::job::JobState;
use crate::domain::run::RunStatus;

/// Jobs one watchdog pass looks at, at most.
pub const PASS_JOBS: u32 = 10_000;
/// A job's recent alerts the watchdog reads to say which runs already
/// alerted (its open ones are read apart, however many).
const PAST_READ: u32 = 50;
/// A job's open alerts: one per condition at most.
const OPEN_READ: u32 = 100;

/// What one watchdog pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchPass {
    /// Alerts opened, reminded or resolved.
    pub alerts_changed: u32,
    /// Monitors' runs missed: no ping within their grace.
    pub runs_missed: usize,
}

/// An alert as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub id: Uuid,
    pub job_id: String,
    pub condition: Condition,
    pub state: AlertState,
    pub run_id: Option<Uuid>,
    pub detail: String,
    pub opened_at: DateTime<Utc>,
    pub notified_at: DateTime<Utc>,
    pub reminders: u32,
    pub acked_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Which alerts a list shows, newest first.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub id: Option<Uuid>,
    pub job_id: Option<String>,
    pub state: Option<AlertState>,
    pub condition: Option<Condition>,
    /// Only those not resolved.
    pub unresolved: bool,
    pub limit: u32,
}

/// One change to an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    Open {
        id: Uuid,
        job_id: String,
        condition: Condition,
        run_id: Option<Uuid>,
        detail: String,
    },
    Remind {
        id: Uuid,
    },
    Resolve {
        id: Uuid,
    },
    Ack {
        id: Uuid,
    },
}

/// A job the watchdog looks at.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AlertingJob {
    pub tenant: String,
    pub job_id: String,
    /// None: the job was deleted.
    pub state: Option<String>,
    pub alerts: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AlertRow<T, I> {
    id: I,
    job_id: String,
    condition: String,
    state: String,
    run_id: Option<I>,
    detail: String,
    opened_at: T,
    notified_at: T,
    reminders: i64,
    acked_at: Option<T>,
    resolved_at: Option<T>,
}

impl<T: At, I: RowId> AlertRow<T, I> {
    pub fn into_record(self) -> StoreResult<AlertRecord> {
        let corrupt = |what: &str, v: &str| {
            StoreError::Corrupt(format!("alert of job {:?}: {what} {v:?}", self.job_id))
        };
        Ok(AlertRecord {
            id: self.id.uuid()?,
            condition: Condition::parse(&self.condition)
                .ok_or_else(|| corrupt("condition", &self.condition))?,
            state: AlertState::parse(&self.state).ok_or_else(|| corrupt("state", &self.state))?,
            run_id: self.run_id.map(RowId::uuid).transpose()?,
            detail: self.detail,
            opened_at: self.opened_at.at(),
            notified_at: self.notified_at.at(),
            reminders: u32::try_from(self.reminders).unwrap_or(0),
            acked_at: self.acked_at.map(At::at),
            resolved_at: self.resolved_at.map(At::at),
            job_id: self.job_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RecentRunRow<T, I> {
    id: I,
    status: String,
    scheduled_for: T,
    reason: Option<String>,
    cause: String,
    finished_at: Option<T>,
    first_attempt_at: Option<T>,
}

impl<T: At, I: RowId> RecentRunRow<T, I> {
    pub fn into_recent(self) -> StoreResult<RecentRun> {
        Ok(RecentRun {
            id: self.id.uuid()?,
            status: RunStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("run status {:?}", self.status)))?,
            scheduled_for: self.scheduled_for.at(),
            reason: self.reason,
            first_attempt_at: self.first_attempt_at.map(At::at),
            finished_at: self.finished_at.map(At::at),
            unexpected: self.cause == "ping",
        })
    }
}

/// An alert event's data (DESIGN.md §9, §11.5).
fn alert_event(kind: EventType, alert: &AlertRecord) -> NewEvent {
    NewEvent::new(
        kind,
        &alert.job_id,
        alert.run_id,
        json!({
            "alert_id": alert.id,
            "condition": alert.condition.as_str(),
            "detail": alert.detail,
            "opened_at": instant::format(&alert.opened_at),
            "reminders": alert.reminders,
        }),
    )
}

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    /// One watchdog pass, on the database clock, in one transaction that
    /// one instance at a time holds; answers how many alerts it changed
    /// (none when another instance holds the pass).
    pub(super) async fn watch_alerts_inner(&self) -> StoreResult<WatchPass> {
        let mut pass = WatchPass::default();
        if !self.db.anything_to_watch().await? {
            return Ok(pass);
        }
        let mut tx = self.db.begin().await?;
        let Some(now) = self.db.lock_watchdog(&mut tx).await? else {
            return Ok(pass);
        };
        let jobs = self.db.alerting_jobs(&mut tx, PASS_JOBS).await?;
        let mut events = Vec::new();
        for job in jobs {
            let settings = StoredAlerts::read(&job.job_id, job.alerts.as_deref())?;
            let state = job.state.as_deref().and_then(JobState::parse);
            if let Some(monitor) = settings.monitor.filter(|_| state.is_some()) {
                let missed = self
                    .db
                    .miss_awaiting(
                        &mut tx,
                        &job.tenant,
                        &job.job_id,
                        monitor.missed_if_due_before(now),
                        now,
                    )
                    .await?;
                pass.runs_missed += missed.len();
                for (run_id, due) in missed {
                    tracing::warn!(tenant = %job.tenant, job_id = %job.job_id, %run_id, scheduled_for = %instant::format(&due), "run missed: no ping within the monitor's grace");
                    events.push((
                        job.tenant.clone(),
                        event::run_ping_missing(&job.job_id, run_id, due),
                    ));
                }
            }
            let policy = settings.policy().filter(|_| state.is_some());
            let runs = match policy {
                Some(p) => {
                    self.db
                        .recent_runs(&mut tx, &job.tenant, &job.job_id, p.runs_needed())
                        .await?
                }
                None => Vec::new(),
            };
            let of_job = |unresolved, limit| AlertFilter {
                job_id: Some(job.job_id.clone()),
                unresolved,
                limit,
                ..AlertFilter::default()
            };
            let alerts = self
                .db
                .read_alerts(&mut tx, &job.tenant, &of_job(true, OPEN_READ))
                .await?;
            let past: Vec<PastAlert> = self
                .db
                .read_alerts(&mut tx, &job.tenant, &of_job(false, PAST_READ))
                .await?
                .into_iter()
                .map(|a| PastAlert {
                    condition: a.condition,
                    run_id: a.run_id,
                    resolved_at: a.resolved_at,
                })
                .collect();
            let open: Vec<OpenAlert> = alerts
                .iter()
                .map(|a| OpenAlert {
                    id: a.id,
                    condition: a.condition,
                    state: a.state,
                    opened_at: a.opened_at,
                    notified_at: a.notified_at,
                })
                .collect();
            let actions = alert::evaluate(
                &Watched {
                    policy,
                    // A completed job's last runs still alert; a paused one never.
                    paused: state == Some(JobState::Paused),
                    muted_until: settings.mute_until,
                    runs: &runs,
                    open: &open,
                    past: &past,
                },
                now,
            );
            for action in actions {
                let Some(event) = self
                    .apply(&mut tx, &job.tenant, &job.job_id, &alerts, action, now)
                    .await?
                else {
                    continue;
                };
                pass.alerts_changed += 1;
                if let Some(event) = event {
                    events.push((job.tenant.clone(), event));
                }
            }
        }
        let deliveries = self.write_events(&mut tx, &events).await?;
        D::commit(tx).await?;
        if !events.is_empty() {
            self.events_written(deliveries);
        }
        Ok(pass)
    }

    /// Writes one action; answers None when it did not apply, else the
    /// event it makes, if any.
    async fn apply(
        &self,
        tx: &mut D::Tx,
        tenant: &str,
        job_id: &str,
        alerts: &[AlertRecord],
        action: Action,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Option<NewEvent>>> {
        let find = |id: Uuid| alerts.iter().find(|a| a.id == id).cloned();
        let (change, event) = match action {
            Action::Open {
                condition,
                run_id,
                detail,
            } => {
                let record = AlertRecord {
                    id: Uuid::now_v7(),
                    job_id: job_id.to_string(),
                    condition,
                    state: AlertState::Open,
                    run_id,
                    detail: detail.clone(),
                    opened_at: now,
                    notified_at: now,
                    reminders: 0,
                    acked_at: None,
                    resolved_at: None,
                };
                tracing::warn!(%tenant, job_id, condition = condition.as_str(), detail, "alert opened");
                let change = AlertChange::Open {
                    id: record.id,
                    job_id: job_id.to_string(),
                    condition,
                    run_id,
                    detail,
                };
                (change, Some(alert_event(EventType::AlertOpened, &record)))
            }
            Action::Remind { alert_id } => {
                let event = find(alert_id).map(|mut a| {
                    a.reminders += 1;
                    alert_event(EventType::AlertReminded, &a)
                });
                (AlertChange::Remind { id: alert_id }, event)
            }
            Action::Resolve { alert_id, notify } => {
                let event = find(alert_id)
                    .filter(|_| notify)
                    .map(|a| alert_event(EventType::AlertResolved, &a));
                tracing::info!(%tenant, job_id, %alert_id, "alert resolved");
                (AlertChange::Resolve { id: alert_id }, event)
            }
        };
        let applied = self.db.write_alert(tx, tenant, &change, now).await?;
        Ok(applied.then_some(event))
    }

    pub(super) async fn list_alerts_inner(
        &self,
        tenant: &Tenant,
        filter: &AlertFilter,
    ) -> StoreResult<Vec<AlertRecord>> {
        let mut tx = self.db.begin().await?;
        let alerts = self
            .db
            .read_alerts(&mut tx, tenant.as_str(), filter)
            .await?;
        D::commit(tx).await?;
        Ok(alerts)
    }

    /// Acknowledges an open alert (no reminders until it resolves); an
    /// acknowledged one answers as it is; a resolved one is a conflict.
    pub(super) async fn ack_alert_inner(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> StoreResult<Option<AlertRecord>> {
        let mut tx = self.db.begin().await?;
        let now = Utc::now();
        let filter = AlertFilter {
            id: Some(id),
            limit: 1,
            ..AlertFilter::default()
        };
        let Some(alert) = self
            .db
            .read_alerts(&mut tx, tenant.as_str(), &filter)
            .await?
            .pop()
        else {
            return Ok(None);
        };
        if alert.state == AlertState::Resolved {
            return Err(StoreError::Conflict(format!(
                "alert {id} is resolved: there is nothing to acknowledge"
            )));
        }
        self.db
            .write_alert(&mut tx, tenant.as_str(), &AlertChange::Ack { id }, now)
            .await?;
        let record = audit_record(
            tenant.as_str(),
            "alert.acknowledged",
            &audit::target("alert", &id.to_string()),
            audit::for_alert_acknowledged(now),
        );
        self.db.insert_audit(&mut tx, &[record]).await?;
        let alert = self
            .db
            .read_alerts(&mut tx, tenant.as_str(), &filter)
            .await?
            .pop();
        D::commit(tx).await?;
        Ok(alert)
    }
}
