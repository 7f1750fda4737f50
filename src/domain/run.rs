//! Runs: one occurrence the scheduler acted on (or decided not to).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::job::JobId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for its first attempt or for a retry.
    Pending,
    /// A monitor-only job's run waiting for its ping (§11.5).
    Awaiting,
    /// An attempt is under way (leased by a dispatcher), or a callback
    /// job's accepted work runs (§11.7).
    Running,
    /// A running callback run asked to stop: it ends when the receiver
    /// completes it or its `cancel_grace_s` passes (§11.7).
    Cancelling,
    Succeeded,
    Failed,
    /// Later than the misfire grace: recorded, never delivered.
    Missed,
    /// Over `max_instances`: recorded, never delivered.
    Skipped,
    /// Ended before it finished: replaced by a newer run of its job
    /// (overlap `replace`); a request in flight is aborted.
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Pending,
        RunStatus::Awaiting,
        RunStatus::Running,
        RunStatus::Cancelling,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Missed,
        RunStatus::Skipped,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Awaiting => "awaiting",
            RunStatus::Running => "running",
            RunStatus::Cancelling => "cancelling",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Missed => "missed",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Pending and running runs count against `max_instances`; a
    /// monitor's awaiting run has not ended either.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            RunStatus::Pending | RunStatus::Awaiting | RunStatus::Running | RunStatus::Cancelling
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunCause {
    /// A fire time of the trigger (unique per job and `scheduled_for`).
    Schedule,
    /// `POST /v1/jobs/{id}/run`.
    Manual,
    /// `POST /v1/jobs/{id}/backfill` (§11.3): an occurrence of a range.
    Backfill,
    /// A ping to a monitor-only job that no run awaited (§11.5).
    Ping,
    /// The end of a run of a job whose `chain` names this one (§11.8);
    /// the run keeps its `parent_run_id`.
    Chain,
}

impl RunCause {
    pub fn as_str(self) -> &'static str {
        match self {
            RunCause::Schedule => "schedule",
            RunCause::Manual => "manual",
            RunCause::Backfill => "backfill",
            RunCause::Ping => "ping",
            RunCause::Chain => "chain",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "schedule" => Some(RunCause::Schedule),
            "manual" => Some(RunCause::Manual),
            "backfill" => Some(RunCause::Backfill),
            "ping" => Some(RunCause::Ping),
            "chain" => Some(RunCause::Chain),
            _ => None,
        }
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: Uuid,
    pub job_id: JobId,
    pub scheduled_for: DateTime<Utc>,
    pub cause: RunCause,
    pub status: RunStatus,
    pub occurrences: u64,
    pub attempt_count: u32,
    pub deliver_after: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why a pending run is not sent yet: `overlap` (§11.1).
    pub wait_reason: Option<String>,
    /// Why the run ended as it did: `max_instances`, `buffer_full`.
    pub reason: Option<String>,
    /// The backfill that made it (§11.3).
    pub backfill_id: Option<Uuid>,
    /// The run of the same occurrence a reprocessing backfill replays.
    pub replay_of: Option<Uuid>,
    /// The occurrence its calendars moved to `scheduled_for` (§11.4).
    pub nominal_for: Option<DateTime<Utc>>,
    /// A callback run's progress once accepted (§11.7).
    pub long: Option<LongRun>,
    /// A chained run's parent (§11.8).
    pub parent_run_id: Option<Uuid>,
}

/// What a callback run's receiver has said of its work (§11.7).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LongRun {
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it fails `timed_out` (or, cancelling, is `cancelled`).
    pub deadline_at: Option<DateTime<Utc>>,
    pub heartbeat_due_at: Option<DateTime<Utc>>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub progress: Option<f64>,
    pub message: Option<String>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// The receiver's report, when it made one.
    pub completed: Option<crate::domain::callback::Completed>,
}

impl LongRun {
    /// From acceptance to the run's end (`finished_at`).
    pub fn duration_ms(&self, finished_at: Option<DateTime<Utc>>) -> Option<u64> {
        let ms = (finished_at? - self.accepted_at?).num_milliseconds();
        u64::try_from(ms).ok()
    }
}

/// The newest run of a job, shown with it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub id: Uuid,
    pub status: RunStatus,
    pub scheduled_for: DateTime<Utc>,
    pub attempt_count: u32,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One HTTP request of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    /// Why the success rules refused a 2xx answer, or why it was not
    /// retried (§11.6), in words.
    pub outcome_reason: Option<String>,
    /// The excerpt is the body's first 64 kB, not all of it.
    pub body_truncated: bool,
}

/// Text as the store keeps it: PostgreSQL cannot hold a NUL character,
/// which a binary body (a response's, a ping's) may well contain.
pub fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// What went wrong with an attempt, in words: its error, else a status
/// that is not 2xx (a 2xx answer is a success).
pub fn problem_in_words(error: Option<&str>, status_code: Option<u16>) -> Option<String> {
    match (error, status_code) {
        (Some(error), _) => Some(error.to_string()),
        (None, Some(status)) if !(200..300).contains(&status) => {
            Some(format!("the target answered {status}"))
        }
        _ => None,
    }
}

impl Attempt {
    /// What went wrong, in words ([`problem_in_words`]).
    pub fn problem(&self) -> Option<String> {
        self.outcome_reason
            .clone()
            .or_else(|| problem_in_words(self.error.as_deref(), self.status_code))
    }
}

/// The error an attempt cut off by a crash is recorded with.
pub const INTERRUPTED: &str = "interrupted";
/// A run that failed on a success rule other than its status (§11.6).
pub const RULE_FAILED: &str = "rule_failed";
/// A run whose next retry would have passed `retry.max_age_s` (§11.6).
pub const EXPIRED: &str = "expired";
/// The error of an attempt whose run was cancelled while it was sent.
pub const CANCELLED: &str = "cancelled";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_become_replacement_characters() {
        assert_eq!(storable("a\0b".into()), "a\u{FFFD}b");
        assert_eq!(storable("plain".into()), "plain");
    }

    #[test]
    fn an_attempt_s_problem_is_its_error_or_a_status_not_2xx() {
        let attempt = |status_code: Option<u16>, error: Option<&str>| Attempt {
            number: 1,
            started_at: DateTime::UNIX_EPOCH,
            duration_ms: 5,
            status_code,
            error: error.map(String::from),
            response_excerpt: None,
            outcome_reason: None,
            body_truncated: false,
        };
        assert_eq!(attempt(Some(204), None).problem(), None);
        assert_eq!(
            attempt(Some(500), None).problem().as_deref(),
            Some("the target answered 500")
        );
        assert_eq!(
            attempt(None, Some("connection refused"))
                .problem()
                .as_deref(),
            Some("connection refused")
        );
    }

    #[test]
    fn names_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RunCause::parse("manual"), Some(RunCause::Manual));
        assert!(RunStatus::Pending.in_flight() && RunStatus::Running.in_flight());
        assert!(!RunStatus::Skipped.in_flight());
    }
}
