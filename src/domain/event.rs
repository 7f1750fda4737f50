//! Events (DESIGN.md §9): what happened to jobs and runs, as rows written
//! in the same transaction as the change. Which events a change makes, and
//! which subscriptions want an event, are decided here.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::error::Reason;
use crate::domain::instant;
use crate::domain::job::{Job, JobState, Schedule};
use crate::domain::lifecycle::JobChange;
use crate::domain::retry::Outcome;
use crate::domain::run::{RunCause, RunStatus};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "job.created")]
    JobCreated,
    #[serde(rename = "job.updated")]
    JobUpdated,
    #[serde(rename = "job.paused")]
    JobPaused,
    #[serde(rename = "job.resumed")]
    JobResumed,
    #[serde(rename = "job.completed")]
    JobCompleted,
    #[serde(rename = "job.deleted")]
    JobDeleted,
    #[serde(rename = "run.created")]
    RunCreated,
    #[serde(rename = "run.retried")]
    RunRetried,
    #[serde(rename = "attempt.failed")]
    AttemptFailed,
    #[serde(rename = "run.succeeded")]
    RunSucceeded,
    #[serde(rename = "run.failed")]
    RunFailed,
    #[serde(rename = "run.cancelled")]
    RunCancelled,
    /// A run that waited for its flow key past `max_wait_s` (§11.1).
    #[serde(rename = "run.missed")]
    RunMissed,
    /// A callback run's receiver reported another end after its end
    /// (§11.7): refused with 409.
    #[serde(rename = "run.late_completion")]
    RunLateCompletion,
    /// A job's runs failed, were missed, late, overdue or too fast (§11.5).
    #[serde(rename = "alert.opened")]
    AlertOpened,
    /// Still open after `realert_s`, not acknowledged.
    #[serde(rename = "alert.reminded")]
    AlertReminded,
    /// The job recovered (or was paused).
    #[serde(rename = "alert.resolved")]
    AlertResolved,
    /// A subscription's delivery of an event failed for good.
    #[serde(rename = "subscription.delivery_failed")]
    SubscriptionDeliveryFailed,
}

impl EventType {
    pub const ALL: [EventType; 18] = [
        EventType::JobCreated,
        EventType::JobUpdated,
        EventType::JobPaused,
        EventType::JobResumed,
        EventType::JobCompleted,
        EventType::JobDeleted,
        EventType::RunCreated,
        EventType::RunRetried,
        EventType::AttemptFailed,
        EventType::RunSucceeded,
        EventType::RunFailed,
        EventType::RunCancelled,
        EventType::RunMissed,
        EventType::RunLateCompletion,
        EventType::AlertOpened,
        EventType::AlertReminded,
        EventType::AlertResolved,
        EventType::SubscriptionDeliveryFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JobCreated => "job.created",
            EventType::JobUpdated => "job.updated",
            EventType::JobPaused => "job.paused",
            EventType::JobResumed => "job.resumed",
            EventType::JobCompleted => "job.completed",
            EventType::JobDeleted => "job.deleted",
            EventType::RunCreated => "run.created",
            EventType::RunRetried => "run.retried",
            EventType::AttemptFailed => "attempt.failed",
            EventType::RunSucceeded => "run.succeeded",
            EventType::RunFailed => "run.failed",
            EventType::RunCancelled => "run.cancelled",
            EventType::RunMissed => "run.missed",
            EventType::RunLateCompletion => "run.late_completion",
            EventType::AlertOpened => "alert.opened",
            EventType::AlertReminded => "alert.reminded",
            EventType::AlertResolved => "alert.resolved",
            EventType::SubscriptionDeliveryFailed => "subscription.delivery_failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = Reason;

    fn from_str(s: &str) -> Result<Self, Reason> {
        Self::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            Reason::new(format!(
                "unknown event type {s:?}; expected one of {}",
                names.join(", ")
            ))
        })
    }
}

/// An event to write: its id is also the `webhook-id` of its deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    pub kind: EventType,
    pub job_id: String,
    pub run_id: Option<Uuid>,
    pub data: Value,
}

impl NewEvent {
    pub fn new(kind: EventType, job_id: &str, run_id: Option<Uuid>, data: Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            job_id: job_id.to_string(),
            run_id,
            data,
        }
    }
}

fn schedule_data(schedule: Schedule) -> Value {
    json!({
        "state": schedule.state().as_str(),
        "next_run_at": schedule.next_run_at().map(|t| instant::format(&t)),
    })
}

/// The events of a job change: created; updated when the definition
/// changed; paused, resumed or completed when its state did.
pub fn for_job_change(id: &str, existing: Option<&Job>, change: &JobChange) -> Vec<NewEvent> {
    let event = |kind, data| NewEvent::new(kind, id, None, data);
    match (change, existing) {
        (JobChange::Unchanged, _) => Vec::new(),
        (JobChange::Insert { schedule, .. }, _) => {
            vec![event(EventType::JobCreated, schedule_data(*schedule))]
        }
        (
            JobChange::Update {
                definition,
                schedule,
                ..
            },
            Some(job),
        ) => {
            let mut events = Vec::new();
            if *definition != job.definition {
                events.push(event(
                    EventType::JobUpdated,
                    schedule_data(schedule.unwrap_or(job.schedule)),
                ));
            }
            if let Some(schedule) = schedule {
                let kind = match (job.schedule.state(), schedule.state()) {
                    (before, after) if before == after => None,
                    (_, JobState::Paused) => Some(EventType::JobPaused),
                    (JobState::Paused, JobState::Scheduled) => Some(EventType::JobResumed),
                    (_, JobState::Completed) => Some(EventType::JobCompleted),
                    // Completed and scheduled again: a new trigger.
                    (_, JobState::Scheduled) => Some(EventType::JobResumed),
                };
                if let Some(kind) = kind {
                    let mut data = schedule_data(*schedule);
                    if kind == EventType::JobPaused {
                        data["reason"] = json!("request");
                    }
                    events.push(event(kind, data));
                }
            }
            events
        }
        // An update of no job: the rules never answer it.
        (JobChange::Update { .. }, None) => Vec::new(),
    }
}

pub fn job_deleted(id: &str) -> NewEvent {
    NewEvent::new(EventType::JobDeleted, id, None, json!({}))
}

/// A job whose schedule ended (its date fired, its `end_at` passed).
pub fn job_completed(id: &str) -> NewEvent {
    NewEvent::new(
        EventType::JobCompleted,
        id,
        None,
        json!({"state": "completed", "next_run_at": null}),
    )
}

/// A job paused because one of its runs failed (`pause_on_failure`).
pub fn job_paused_by_failure(id: &str, run_id: Uuid) -> NewEvent {
    NewEvent::new(
        EventType::JobPaused,
        id,
        Some(run_id),
        json!({"state": "paused", "next_run_at": null, "reason": "run_failed", "run_id": run_id}),
    )
}

/// A run made by the scheduler or a manual run.
pub fn run_created(run: &RunMade<'_>) -> NewEvent {
    let mut data = json!({
        "status": run.status.as_str(),
        "cause": run.cause.as_str(),
        "scheduled_for": instant::format(&run.scheduled_for),
        "occurrences": run.occurrences,
    });
    // Said only when there is one: why a pending run waits, why a run was
    // skipped (§11.1).
    if let Some(wait_reason) = run.wait_reason {
        data["wait_reason"] = json!(wait_reason);
    }
    if let Some(reason) = run.reason {
        data["reason"] = json!(reason);
    }
    NewEvent::new(EventType::RunCreated, run.job_id, Some(run.run_id), data)
}

/// A run as `run.created` tells of it.
pub struct RunMade<'a> {
    pub job_id: &'a str,
    pub run_id: Uuid,
    pub status: RunStatus,
    pub cause: RunCause,
    pub scheduled_for: DateTime<Utc>,
    pub occurrences: u64,
    pub wait_reason: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// A run cancelled in place of a newer one (overlap `replace`, §11.1).
pub fn run_cancelled(job_id: &str, run_id: Uuid, replaced_by: Uuid) -> NewEvent {
    NewEvent::new(
        EventType::RunCancelled,
        job_id,
        Some(run_id),
        json!({"reason": REPLACED, "replaced_by": replaced_by}),
    )
}

/// The `reason` of a run cancelled by overlap `replace`.
pub const REPLACED: &str = "replaced";

/// A backfill's pending run cancelled with it (`DELETE /v1/backfills/{id}`).
pub fn run_backfill_cancelled(job_id: &str, run_id: Uuid, backfill_id: Uuid) -> NewEvent {
    NewEvent::new(
        EventType::RunCancelled,
        job_id,
        Some(run_id),
        json!({"reason": BACKFILL_CANCELLED, "backfill_id": backfill_id}),
    )
}

/// A run that waited for its flow key longer than its job's `max_wait_s`
/// (§11.1): it ends `missed`, unsent.
pub fn run_waited_too_long(job_id: &str, run_id: Uuid, flow_key: &str) -> NewEvent {
    NewEvent::new(
        EventType::RunMissed,
        job_id,
        Some(run_id),
        json!({"status": "missed", "reason": MAX_WAIT, "flow_key": flow_key}),
    )
}

/// A run held by its gate past `wait_max_s` (§11.8): the job it waited
/// for did not succeed in time.
pub fn run_gate_missed(job_id: &str, run_id: Uuid, waited_for: &str) -> NewEvent {
    NewEvent::new(
        EventType::RunMissed,
        job_id,
        Some(run_id),
        json!({"status": "missed", "reason": crate::domain::gate::REASON, "waited_for": waited_for}),
    )
}

/// The `reason` of a run that waited for its flow key too long.
pub const MAX_WAIT: &str = "max_wait";

/// The `reason` of a run cancelled with its backfill.
pub const BACKFILL_CANCELLED: &str = "backfill_cancelled";

/// A monitor's run a ping ended (§11.5): `run.succeeded` or `run.failed`.
pub fn run_pinged(
    job_id: &str,
    run_id: Uuid,
    status: RunStatus,
    ping: &str,
    reason: Option<&str>,
) -> Option<NewEvent> {
    let kind = match status {
        RunStatus::Succeeded => EventType::RunSucceeded,
        RunStatus::Failed => EventType::RunFailed,
        _ => return None,
    };
    let mut data = json!({"ping": ping});
    if let Some(reason) = reason {
        data["error"] = json!(reason);
    }
    Some(NewEvent::new(kind, job_id, Some(run_id), data))
}

/// A callback run ended (§11.7): by its receiver's completion, by the
/// watchdog (`reason`: `timed_out`, `heartbeat_lost`) or by a cancel.
pub fn run_ended_by_callback(
    job_id: &str,
    run_id: Uuid,
    status: RunStatus,
    reason: Option<&str>,
    error: Option<&str>,
) -> Option<NewEvent> {
    let kind = match status {
        RunStatus::Succeeded => EventType::RunSucceeded,
        RunStatus::Failed => EventType::RunFailed,
        RunStatus::Cancelled => EventType::RunCancelled,
        _ => return None,
    };
    Some(NewEvent::new(
        kind,
        job_id,
        Some(run_id),
        json!({"completion": "callback", "reason": reason, "error": error}),
    ))
}

/// A completion that came after its run's end and differs from it.
pub fn run_late_completion(
    job_id: &str,
    run_id: Uuid,
    ended_as: RunStatus,
    reported: &str,
) -> NewEvent {
    NewEvent::new(
        EventType::RunLateCompletion,
        job_id,
        Some(run_id),
        json!({"ended_as": ended_as.as_str(), "reported": reported}),
    )
}

/// A monitor's run that started and never reported its end, failed when
/// the work started again (§11.5).
pub fn run_abandoned(job_id: &str, run_id: Uuid) -> NewEvent {
    NewEvent::new(
        EventType::RunFailed,
        job_id,
        Some(run_id),
        json!({"reason": crate::domain::monitor::REASON_NO_END_PING,
               "error": "it started again without reporting its end"}),
    )
}

/// A monitor's run no ping reached within its grace (§11.5).
pub fn run_ping_missing(job_id: &str, run_id: Uuid, scheduled_for: DateTime<Utc>) -> NewEvent {
    NewEvent::new(
        EventType::RunMissed,
        job_id,
        Some(run_id),
        json!({"status": "missed", "reason": crate::domain::monitor::REASON_PING_MISSING,
               "scheduled_for": instant::format(&scheduled_for)}),
    )
}

/// A failed run sent again (`POST /v1/runs/{id}/retry`).
pub fn run_retried(job_id: &str, run_id: Uuid, attempts_so_far: u32) -> NewEvent {
    NewEvent::new(
        EventType::RunRetried,
        job_id,
        Some(run_id),
        json!({"status": "pending", "attempts_so_far": attempts_so_far}),
    )
}

/// What one finished attempt tells: its number, status code and error.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSummary<'a> {
    pub job_id: &'a str,
    pub run_id: Uuid,
    pub attempt: u32,
    pub status_code: Option<u16>,
    pub error: Option<&'a str>,
    pub outcome: Outcome,
}

/// The events of an attempt's outcome: a failed attempt, and a run that
/// succeeded or failed.
pub fn for_attempt(a: &AttemptSummary<'_>) -> Vec<NewEvent> {
    let event = |kind, data| NewEvent::new(kind, a.job_id, Some(a.run_id), data);
    match a.outcome {
        // Not an end, or not an attempt's: its completion, timeout or
        // cancel makes the event.
        Outcome::Accepted { .. } | Outcome::Cancelled => Vec::new(),
        Outcome::Succeeded => vec![event(
            EventType::RunSucceeded,
            json!({"attempts": a.attempt, "status_code": a.status_code}),
        )],
        Outcome::Retry { delay } => vec![event(
            EventType::AttemptFailed,
            json!({"attempt": a.attempt, "status_code": a.status_code, "error": a.error,
                   "retry_in_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)}),
        )],
        Outcome::Failed => vec![
            event(
                EventType::AttemptFailed,
                json!({"attempt": a.attempt, "status_code": a.status_code, "error": a.error,
                       "retry_in_ms": null}),
            ),
            event(
                EventType::RunFailed,
                json!({"attempts": a.attempt, "status_code": a.status_code, "error": a.error}),
            ),
        ],
    }
}

/// The event a delivery carried, and where to.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOf {
    pub subscription_id: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub job_id: String,
}

/// A subscription's delivery that failed for good (§11.5): its own event,
/// about the delivered event's job.
pub fn delivery_failed(
    d: &DeliveryOf,
    delivery_id: Uuid,
    attempts: u32,
    status_code: Option<u16>,
    error: Option<&str>,
) -> NewEvent {
    NewEvent::new(
        EventType::SubscriptionDeliveryFailed,
        &d.job_id,
        None,
        json!({"subscription_id": d.subscription_id, "delivery_id": delivery_id,
               "event_id": d.event_id, "event_type": d.event_type,
               "attempts": attempts, "status_code": status_code, "error": error}),
    )
}

/// Whether a failed run pauses its job: `pause_on_failure`, and the job
/// still scheduled.
pub fn pauses_on_failure(pause_on_failure: bool, state: JobState) -> bool {
    pause_on_failure && state == JobState::Scheduled
}

/// What a subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interest {
    pub types: Vec<EventType>,
    /// One job's events only, or every job's of the tenant.
    pub job_id: Option<String>,
}

impl Interest {
    pub fn wants(&self, event: &NewEvent) -> bool {
        self.types.contains(&event.kind) && self.job_id.as_deref().is_none_or(|j| j == event.job_id)
    }
}

/// The request a delivery of an event sends (DESIGN §9): the event's body
/// as JSON to the subscription's target, under the default retry policy.
pub fn delivery_request(
    mut subscription: crate::domain::target::Target,
    body: Value,
) -> (
    crate::domain::target::Target,
    crate::domain::retry::RetryPolicy,
) {
    subscription.body = crate::domain::target::Body::from_value(Some(body));
    (subscription, crate::domain::retry::RetryPolicy::default())
}

/// An event as a Slack-compatible incoming webhook takes it: one line of
/// text (§11.5).
pub fn slack_body(kind: EventType, job_id: &str, run_id: Option<Uuid>, data: &Value) -> Value {
    let detail = data["detail"].as_str();
    let condition = data["condition"].as_str().unwrap_or("");
    let text = match (kind, detail) {
        (EventType::AlertOpened, Some(d)) => {
            format!(":rotating_light: Cronhook alert on job `{job_id}`: {condition} — {d}")
        }
        (EventType::AlertReminded, Some(d)) => {
            format!(":bell: Cronhook alert still open on job `{job_id}`: {condition} — {d}")
        }
        (EventType::AlertResolved, _) => {
            format!(":white_check_mark: Cronhook alert resolved on job `{job_id}`: {condition}")
        }
        _ => match run_id {
            Some(run) => format!("Cronhook {}: job `{job_id}`, run {run}", kind.as_str()),
            None => format!("Cronhook {}: job `{job_id}`", kind.as_str()),
        },
    };
    json!({ "text": text })
}

/// An event as delivered and listed: the webhook body of a subscription.
pub fn body(
    id: Uuid,
    kind: EventType,
    at: DateTime<Utc>,
    job_id: &str,
    run_id: Option<Uuid>,
    data: &Value,
) -> Value {
    json!({
        "id": id,
        "type": kind.as_str(),
        "at": instant::format(&at),
        "job_id": job_id,
        "run_id": run_id,
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::{JobId, JobInput, ParseContext};
    use std::time::Duration;

    fn job(paused: bool) -> Job {
        let now = instant::parse("2026-11-23T10:00:00Z").unwrap();
        let spec = serde_json::from_value::<JobInput>(json!({
            "id": "j", "trigger": {"type": "cron", "expr": "@daily"},
            "target": {"url": "https://example.com/"}, "paused": paused
        }))
        .unwrap()
        .parse(ParseContext {
            now,
            network_policy: Default::default(),
            binding: None,
        })
        .unwrap();
        Job {
            id: JobId::parse("j").unwrap(),
            schedule: spec.initial_schedule(now),
            definition: spec.definition,
            runs_counted: 0,
            created_at: now,
            updated_at: now,
            last_run: None,
            ping_key: None,
            pause: Default::default(),
        }
    }

    fn kinds(events: &[NewEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn job_changes_make_the_events_they_describe() {
        let scheduled = job(false);
        let insert = JobChange::Insert {
            definition: scheduled.definition.clone(),
            schedule: scheduled.schedule,
            secret: "s".into(),
        };
        assert_eq!(kinds(&for_job_change("j", None, &insert)), ["job.created"]);
        assert!(for_job_change("j", Some(&scheduled), &JobChange::Unchanged).is_empty());

        let pause = JobChange::Update {
            definition: scheduled.definition.clone(),
            schedule: Some(Schedule::Paused),
            restart_count: false,
            secret: None,
            pause: Default::default(),
        };
        let events = for_job_change("j", Some(&scheduled), &pause);
        assert_eq!(kinds(&events), ["job.paused"]);
        assert_eq!(events[0].data["reason"], "request");

        let paused = job(true);
        let resume = JobChange::Update {
            definition: paused.definition.clone(),
            schedule: Some(scheduled.schedule),
            restart_count: false,
            secret: None,
            pause: Default::default(),
        };
        assert_eq!(
            kinds(&for_job_change("j", Some(&paused), &resume)),
            ["job.resumed"]
        );

        let mut renamed = scheduled.definition.clone();
        renamed.name = Some("new".into());
        let rename = JobChange::Update {
            definition: renamed.clone(),
            schedule: None,
            restart_count: false,
            secret: None,
            pause: Default::default(),
        };
        assert_eq!(
            kinds(&for_job_change("j", Some(&scheduled), &rename)),
            ["job.updated"]
        );
        let rename_and_pause = JobChange::Update {
            definition: renamed,
            schedule: Some(Schedule::Paused),
            restart_count: false,
            secret: None,
            pause: Default::default(),
        };
        assert_eq!(
            kinds(&for_job_change("j", Some(&scheduled), &rename_and_pause)),
            ["job.updated", "job.paused"]
        );
    }

    #[test]
    fn attempts_make_failed_succeeded_and_failed_run_events() {
        let a = |outcome| AttemptSummary {
            job_id: "j",
            run_id: Uuid::nil(),
            attempt: 2,
            status_code: Some(500),
            error: Some("the target answered 500"),
            outcome,
        };
        let retry = for_attempt(&a(Outcome::Retry {
            delay: Duration::from_millis(1500),
        }));
        assert_eq!(kinds(&retry), ["attempt.failed"]);
        assert_eq!(retry[0].data["retry_in_ms"], 1500);
        assert_eq!(
            kinds(&for_attempt(&a(Outcome::Failed))),
            ["attempt.failed", "run.failed"]
        );
        let ok = for_attempt(&a(Outcome::Succeeded));
        assert_eq!(kinds(&ok), ["run.succeeded"]);
        assert_eq!(ok[0].data["attempts"], 2);
    }

    #[test]
    fn subscriptions_want_their_types_and_job() {
        let e = NewEvent::new(EventType::RunFailed, "a", None, json!({}));
        let all = Interest {
            types: vec![EventType::RunFailed],
            job_id: None,
        };
        assert!(all.wants(&e));
        let other_job = Interest {
            job_id: Some("b".into()),
            ..all.clone()
        };
        assert!(!other_job.wants(&e));
        let other_type = Interest {
            types: vec![EventType::RunSucceeded],
            job_id: None,
        };
        assert!(!other_type.wants(&e));
        assert!(pauses_on_failure(true, JobState::Scheduled));
        assert!(!pauses_on_failure(true, JobState::Completed));
        assert!(!pauses_on_failure(false, JobState::Scheduled));
        assert_eq!("run.failed".parse::<EventType>(), Ok(EventType::RunFailed));
        assert!(
            "run.exploded"
                .parse::<EventType>()
                .unwrap_err()
                .contains("expected one of")
        );
    }
}
