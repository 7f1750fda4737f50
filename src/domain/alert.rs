//! Alerts (DESIGN.md §11.5): when a job's runs failed, were missed, started
//! late, ran too long or too short. One pure [`evaluate`] of a job's
//! recent scheduled runs and open alerts at `now`; the watchdog applies
//! what it answers on the database clock.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::error::FieldError;
use crate::domain::monitor::REASON_PING_MISSING;
use crate::domain::run::RunStatus;

pub const MAX_CONSECUTIVE: i64 = 100;
pub const MAX_SECONDS: i64 = 31 * 86_400;

/// A span in seconds a client wrote at `field`, from `min` to
/// [`MAX_SECONDS`]; none when it wrote none.
pub fn seconds_at(
    value: Option<i64>,
    min: i64,
    field: impl Into<String>,
) -> Result<Option<u32>, FieldError> {
    match value {
        None => Ok(None),
        Some(s) if (min..=MAX_SECONDS).contains(&s) => Ok(Some(s as u32)),
        Some(s) => Err(FieldError::new(
            field,
            format!("must be between {min} and {MAX_SECONDS} seconds, got {s}"),
        )),
    }
}

/// When a job alerts (every field optional; `{}` alerts on one failure
/// and on missed runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Alerts)]
pub struct AlertsInput {
    /// `failure` once this many scheduled runs in a row failed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub after_consecutive_failures: Option<i64>,
    /// `missed` when a run is recorded missed or skipped (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<bool>,
    /// `late` when a run's first attempt has not started this many seconds
    /// after its fire time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub late_start_s: Option<i64>,
    /// `overdue` when a run has not finished this many seconds after its
    /// first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub max_duration_s: Option<i64>,
    /// `too_fast` when a run succeeded in less than this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub min_duration_s: Option<i64>,
    /// Send `alert.resolved` when the job recovers (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<bool>,
    /// Send `alert.reminded` this often while an alert is open and not
    /// acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 60, maximum = 2678400)]
    pub realert_s: Option<i64>,
}

/// Validated alert settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    pub after_consecutive_failures: u32,
    pub missed: bool,
    pub late_start_s: Option<u32>,
    pub max_duration_s: Option<u32>,
    pub min_duration_s: Option<u32>,
    pub recovery: bool,
    pub realert_s: Option<u32>,
}

impl AlertsInput {
    pub fn parse(self, field: &str) -> Result<AlertPolicy, FieldError> {
        let at = |name: &str| format!("{field}.{name}");
        let seconds = |v: Option<i64>, name: &str, min: i64| seconds_at(v, min, at(name));
        let after = match self.after_consecutive_failures {
            None => 1,
            Some(n) if (1..=MAX_CONSECUTIVE).contains(&n) => n as u32,
            Some(n) => {
                return Err(FieldError::new(
                    at("after_consecutive_failures"),
                    format!("must be between 1 and {MAX_CONSECUTIVE}, got {n}"),
                ));
            }
        };
        let policy = AlertPolicy {
            after_consecutive_failures: after,
            missed: self.missed.unwrap_or(true),
            late_start_s: seconds(self.late_start_s, "late_start_s", 1)?,
            max_duration_s: seconds(self.max_duration_s, "max_duration_s", 1)?,
            min_duration_s: seconds(self.min_duration_s, "min_duration_s", 1)?,
            recovery: self.recovery.unwrap_or(true),
            realert_s: seconds(self.realert_s, "realert_s", 60)?,
        };
        if let (Some(min), Some(max)) = (policy.min_duration_s, policy.max_duration_s)
            && min >= max
        {
            return Err(FieldError::new(
                at("min_duration_s"),
                format!("must be less than max_duration_s ({max})"),
            ));
        }
        Ok(policy)
    }
}

impl Default for AlertPolicy {
    /// What `{}` says: one failure, and missed runs.
    fn default() -> Self {
        AlertPolicy {
            after_consecutive_failures: 1,
            missed: true,
            late_start_s: None,
            max_duration_s: None,
            min_duration_s: None,
            recovery: true,
            realert_s: None,
        }
    }
}

impl AlertPolicy {
    pub fn to_input(&self) -> AlertsInput {
        AlertsInput {
            after_consecutive_failures: Some(self.after_consecutive_failures.into()),
            missed: Some(self.missed),
            late_start_s: self.late_start_s.map(i64::from),
            max_duration_s: self.max_duration_s.map(i64::from),
            min_duration_s: self.min_duration_s.map(i64::from),
            recovery: Some(self.recovery),
            realert_s: self.realert_s.map(i64::from),
        }
    }

    /// The most recent scheduled runs [`evaluate`] reads: a streak of
    /// failures and some room for runs that ended between two passes.
    pub fn runs_needed(&self) -> u32 {
        self.after_consecutive_failures + 10
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Failure,
    Missed,
    Late,
    Overdue,
    TooFast,
    /// A monitor-only job's ping did not come within its grace.
    PingMissing,
    /// A monitor-only job was pinged when no run awaited it.
    Unexpected,
}

impl Condition {
    pub const ALL: [Condition; 7] = [
        Condition::Failure,
        Condition::Missed,
        Condition::Late,
        Condition::Overdue,
        Condition::TooFast,
        Condition::PingMissing,
        Condition::Unexpected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Failure => "failure",
            Condition::Missed => "missed",
            Condition::Late => "late",
            Condition::Overdue => "overdue",
            Condition::TooFast => "too_fast",
            Condition::PingMissing => "ping_missing",
            Condition::Unexpected => "unexpected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    /// Acknowledged: open, but no reminders until it resolves.
    Acked,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acked => "acked",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [AlertState::Open, AlertState::Acked, AlertState::Resolved]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// A scheduled run as the rules read it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentRun {
    pub id: Uuid,
    pub status: RunStatus,
    pub scheduled_for: DateTime<Utc>,
    pub reason: Option<String>,
    /// When its first attempt started; none before it.
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// A monitor's run recorded from a ping that no run awaited (cause
    /// `ping`): it opens `unexpected` and counts for nothing else.
    pub unexpected: bool,
}

/// The runs of fire times, newest first: what every condition but
/// `unexpected` reads.
fn scheduled<'a>(job: &'a Watched<'_>) -> impl Iterator<Item = &'a RecentRun> {
    job.runs.iter().filter(|r| !r.unexpected)
}

/// An alert not yet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAlert {
    pub id: Uuid,
    pub condition: Condition,
    pub state: AlertState,
    pub opened_at: DateTime<Utc>,
    /// When it was last sent: opened or reminded.
    pub notified_at: DateTime<Utc>,
}

/// What the watchdog knows of one job.
#[derive(Debug, Clone)]
pub struct Watched<'a> {
    /// None: the job no longer alerts (its open alerts resolve).
    pub policy: Option<AlertPolicy>,
    pub paused: bool,
    pub muted_until: Option<DateTime<Utc>>,
    /// Its most recent scheduled runs, newest fire time first (manual and
    /// backfill runs do not count).
    pub runs: &'a [RecentRun],
    pub open: &'a [OpenAlert],
    /// Its recent alerts, open or resolved: a run alerts once, and what
    /// ended before an alert resolved belongs to that alert.
    pub past: &'a [PastAlert],
}

/// An alert of the job's, as the rules remember it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastAlert {
    pub condition: Condition,
    pub run_id: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// What to do about a job's alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Open {
        condition: Condition,
        run_id: Option<Uuid>,
        detail: String,
    },
    Remind {
        alert_id: Uuid,
    },
    /// `notify`: send `alert.resolved` (the policy's `recovery`).
    Resolve {
        alert_id: Uuid,
        notify: bool,
    },
}

fn seconds(s: u32) -> TimeDelta {
    TimeDelta::seconds(i64::from(s))
}

fn words(d: TimeDelta) -> String {
    let s = d.num_seconds();
    if s >= 120 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// Whether `condition` holds now: the run it is about and in words.
fn firing(
    condition: Condition,
    p: &AlertPolicy,
    job: &Watched<'_>,
    now: DateTime<Utc>,
) -> Option<(Option<Uuid>, String)> {
    // A run that alerted, or that ended before this condition's last
    // alert resolved or while alerts were muted, opens nothing.
    let resolved = job
        .past
        .iter()
        .filter(|a| a.condition == condition)
        .filter_map(|a| a.resolved_at)
        .max();
    let mute_ended = job.muted_until.filter(|until| *until <= now);
    let fresh = |r: &&RecentRun| {
        !job.past.iter().any(|a| a.run_id == Some(r.id))
            && r.finished_at.is_none_or(|f| {
                resolved.is_none_or(|at| f > at) && mute_ended.is_none_or(|at| f > at)
            })
    };
    let finished = || scheduled(job).filter(|r| r.finished_at.is_some());
    let in_flight = || {
        scheduled(job)
            .filter(|r| r.status.in_flight())
            .filter(fresh)
    };
    let ping_missing = |r: &RecentRun| r.reason.as_deref() == Some(REASON_PING_MISSING);
    match condition {
        Condition::Failure => {
            // The newest streak of at least n failures, unless it alerted.
            let ended: Vec<&RecentRun> = finished()
                .filter(|r| matches!(r.status, RunStatus::Succeeded | RunStatus::Failed))
                .collect();
            // The newest streak with at least n failures that alerted for
            // nothing yet (one seen only after a success ended it too).
            let n = p.after_consecutive_failures as usize;
            let streak: Vec<&RecentRun> = ended
                .split(|r| r.status == RunStatus::Succeeded)
                .map(|streak| {
                    streak
                        .iter()
                        .copied()
                        .filter(|r| fresh(r))
                        .collect::<Vec<_>>()
                })
                .find(|fresh_ones| fresh_ones.len() >= n)?;
            let detail = if n == 1 {
                "a run failed".to_string()
            } else {
                format!("{} runs failed in a row", streak.len())
            };
            Some((Some(streak[0].id), detail))
        }
        Condition::Missed => {
            let last = finished()
                .filter(|r| !ping_missing(r))
                .find(|r| matches!(r.status, RunStatus::Missed | RunStatus::Skipped))?;
            (p.missed && fresh(&last)).then(|| {
                let why = last.reason.as_deref().unwrap_or("misfire");
                (
                    Some(last.id),
                    format!(
                        "the run due at {} was {} ({why})",
                        last.scheduled_for.to_rfc3339(),
                        last.status.as_str()
                    ),
                )
            })
        }
        Condition::Late => {
            let most = seconds(p.late_start_s?);
            if let Some(r) =
                in_flight().find(|r| r.first_attempt_at.is_none() && now - r.scheduled_for > most)
            {
                return Some((
                    Some(r.id),
                    format!(
                        "the run due at {} has not started after {}",
                        r.scheduled_for.to_rfc3339(),
                        words(now - r.scheduled_for)
                    ),
                ));
            }
            let last = finished().next().filter(fresh)?;
            let started = last.first_attempt_at?;
            (started - last.scheduled_for > most).then(|| {
                (
                    Some(last.id),
                    format!(
                        "the run due at {} started {} late",
                        last.scheduled_for.to_rfc3339(),
                        words(started - last.scheduled_for)
                    ),
                )
            })
        }
        Condition::Overdue => {
            let most = seconds(p.max_duration_s?);
            if let Some(r) =
                in_flight().find(|r| r.first_attempt_at.is_some_and(|s| now - s > most))
            {
                return Some((
                    Some(r.id),
                    format!(
                        "the run due at {} has run {} and not finished",
                        r.scheduled_for.to_rfc3339(),
                        words(now - r.first_attempt_at.unwrap_or(now))
                    ),
                ));
            }
            let last = finished().next().filter(fresh)?;
            let took = last.finished_at? - last.first_attempt_at?;
            (took > most).then(|| (Some(last.id), format!("the last run took {}", words(took))))
        }
        Condition::PingMissing => {
            let last = finished().find(|r| r.status == RunStatus::Missed && ping_missing(r))?;
            fresh(&last).then(|| {
                (
                    Some(last.id),
                    format!(
                        "no ping for the run due at {}",
                        last.scheduled_for.to_rfc3339()
                    ),
                )
            })
        }
        Condition::Unexpected => {
            let last = job.runs.iter().find(|r| r.unexpected).filter(fresh)?;
            Some((
                Some(last.id),
                format!(
                    "a ping ({}) came when no run awaited one",
                    last.status.as_str()
                ),
            ))
        }
        Condition::TooFast => {
            let least = seconds(p.min_duration_s?);
            let last = finished().next().filter(fresh)?;
            let took = last.finished_at? - last.first_attempt_at?;
            (last.status == RunStatus::Succeeded && took < least).then(|| {
                (
                    Some(last.id),
                    format!(
                        "the last run succeeded in {} ms, less than {}",
                        took.num_milliseconds(),
                        words(least)
                    ),
                )
            })
        }
    }
}

/// Whether the job recovered from `condition` since `opened_at`: its newest
/// ended run succeeded after it, on time and within its durations, and no
/// run in flight is late or overdue now.
fn recovered(
    condition: Condition,
    p: &AlertPolicy,
    job: &Watched<'_>,
    opened_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let Some(newest) = scheduled(job).find(|r| r.finished_at.is_some()) else {
        return false;
    };
    let (Some(finished), RunStatus::Succeeded) = (newest.finished_at, newest.status) else {
        return false;
    };
    if finished < opened_at {
        return false;
    }
    let took = newest.first_attempt_at.map(|s| finished - s);
    let in_flight = || scheduled(job).filter(|r| r.status.in_flight());
    match condition {
        Condition::Failure | Condition::Missed | Condition::PingMissing => true,
        // A later run on schedule that succeeded, after no other ping.
        Condition::Unexpected => !job
            .runs
            .iter()
            .any(|r| r.unexpected && r.scheduled_for > newest.scheduled_for),
        Condition::Late => {
            let most = seconds(p.late_start_s.unwrap_or(u32::MAX));
            newest
                .first_attempt_at
                .is_none_or(|s| s - newest.scheduled_for <= most)
                && !in_flight()
                    .any(|r| r.first_attempt_at.is_none() && now - r.scheduled_for > most)
        }
        Condition::Overdue => {
            let most = seconds(p.max_duration_s.unwrap_or(u32::MAX));
            took.is_none_or(|t| t <= most)
                && !in_flight().any(|r| r.first_attempt_at.is_some_and(|s| now - s > most))
        }
        Condition::TooFast => {
            let least = seconds(p.min_duration_s.unwrap_or(0));
            took.is_none_or(|t| t >= least)
        }
    }
}

/// What becomes of a job's alerts at `now`: at most one open alert per
/// condition; an open one resolves once the job recovered (see
/// [`recovered`]); reminders every
/// `realert_s` unless acknowledged; nothing opens or reminds while muted;
/// a paused job (or one that no longer alerts) resolves them all.
pub fn evaluate(job: &Watched<'_>, now: DateTime<Utc>) -> Vec<Action> {
    let Some(policy) = job.policy.filter(|_| !job.paused) else {
        let notify = job.policy.is_some_and(|p| p.recovery);
        return job
            .open
            .iter()
            .map(|a| Action::Resolve {
                alert_id: a.id,
                notify,
            })
            .collect();
    };
    let muted = job.muted_until.is_some_and(|until| until > now);
    let mut actions = Vec::new();
    for condition in Condition::ALL {
        let open = job.open.iter().find(|a| a.condition == condition);
        let fire = match open {
            Some(_) => None,
            None => firing(condition, &policy, job, now),
        };
        match (open, fire) {
            (Some(alert), _) if recovered(condition, &policy, job, alert.opened_at, now) => {
                actions.push(Action::Resolve {
                    alert_id: alert.id,
                    notify: policy.recovery,
                });
            }
            (Some(alert), _) => {
                let due = policy
                    .realert_s
                    .is_some_and(|every| now - alert.notified_at >= seconds(every));
                if alert.state == AlertState::Open && due && !muted {
                    actions.push(Action::Remind { alert_id: alert.id });
                }
            }
            (None, Some((run_id, detail))) if !muted => actions.push(Action::Open {
                condition,
                run_id,
                detail,
            }),
            (None, _) => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;

    fn at(s: &str) -> DateTime<Utc> {
        parse(s).unwrap()
    }

    fn policy(v: serde_json::Value) -> AlertPolicy {
        serde_json::from_value::<AlertsInput>(v)
            .unwrap()
            .parse("alerts")
            .unwrap()
    }

    /// A run due at 10:0`minute`:00, started 1 s later and finished 2 s
    /// after that, with `status`.
    fn run(minute: u32, status: RunStatus) -> RecentRun {
        let due = at(&format!("2026-12-01T10:{minute:02}:00Z"));
        RecentRun {
            id: Uuid::from_u128(minute.into()),
            status,
            scheduled_for: due,
            reason: None,
            first_attempt_at: Some(due + TimeDelta::seconds(1)),
            finished_at: (!status.in_flight()).then(|| due + TimeDelta::seconds(3)),
            unexpected: false,
        }
    }

    fn open(condition: Condition, opened: &str) -> OpenAlert {
        OpenAlert {
            id: Uuid::from_u128(99),
            condition,
            state: AlertState::Open,
            opened_at: at(opened),
            notified_at: at(opened),
        }
    }

    fn watch<'a>(p: AlertPolicy, runs: &'a [RecentRun], open: &'a [OpenAlert]) -> Watched<'a> {
        Watched {
            policy: Some(p),
            paused: false,
            muted_until: None,
            runs,
            open,
            past: &[],
        }
    }

    const NOW: &str = "2026-12-01T10:10:00Z";

    #[test]
    fn failure_opens_after_n_in_a_row_and_resolves_on_a_success() {
        use RunStatus::*;
        let p = policy(serde_json::json!({"after_consecutive_failures": 3}));
        let two = [run(5, Failed), run(4, Failed), run(3, Succeeded)];
        assert_eq!(evaluate(&watch(p, &two, &[]), at(NOW)), []);
        let three = [
            run(6, Failed),
            run(5, Failed),
            run(4, Failed),
            run(3, Succeeded),
        ];
        assert_eq!(
            evaluate(&watch(p, &three, &[]), at(NOW)),
            [Action::Open {
                condition: Condition::Failure,
                run_id: Some(Uuid::from_u128(6)),
                detail: "3 runs failed in a row".into()
            }]
        );
        // Seen by a later pass after a success: it still alerts, once.
        let between = [
            run(7, Succeeded),
            run(6, Failed),
            run(5, Failed),
            run(4, Failed),
        ];
        assert_eq!(evaluate(&watch(p, &between, &[]), at(NOW)).len(), 1);
        let once = [PastAlert {
            condition: Condition::Failure,
            run_id: Some(Uuid::from_u128(6)),
            resolved_at: None,
        }];
        let seen = Watched {
            past: &once,
            ..watch(p, &between, &[])
        };
        assert_eq!(evaluate(&seen, at(NOW)), []);
        // A run in flight does not break the streak.
        let with_pending = [
            run(7, Pending),
            run(6, Failed),
            run(5, Failed),
            run(4, Failed),
        ];
        assert_eq!(evaluate(&watch(p, &with_pending, &[]), at(NOW)).len(), 1);
        // Open already: nothing new; a success after it opened resolves it.
        let alert = [open(Condition::Failure, "2026-12-01T10:06:30Z")];
        assert_eq!(evaluate(&watch(p, &three, &alert), at(NOW)), []);
        let recovered = [run(7, Succeeded), run(6, Failed), run(5, Failed)];
        assert_eq!(
            evaluate(&watch(p, &recovered, &alert), at(NOW)),
            [Action::Resolve {
                alert_id: Uuid::from_u128(99),
                notify: true
            }]
        );
    }

    #[test]
    fn an_alert_resolves_on_recovery_and_what_it_covered_opens_nothing_again() {
        use RunStatus::*;
        let p = policy(serde_json::json!({}));
        // Opened on 10:05's failure; 10:06 failed too; 10:07 succeeded.
        let runs = [run(7, Succeeded), run(6, Failed), run(5, Failed)];
        let alert = [open(Condition::Failure, "2026-12-01T10:05:30Z")];
        assert_eq!(
            evaluate(&watch(p, &runs, &alert), at(NOW)),
            [Action::Resolve {
                alert_id: Uuid::from_u128(99),
                notify: true
            }]
        );
        // Once resolved (10:08), 10:06's failure opens nothing new...
        let past = [PastAlert {
            condition: Condition::Failure,
            run_id: Some(Uuid::from_u128(5)),
            resolved_at: Some(at("2026-12-01T10:08:00Z")),
        }];
        let after = Watched {
            past: &past,
            ..watch(p, &runs, &[])
        };
        assert_eq!(evaluate(&after, at(NOW)), []);
        // ...but a failure after it does.
        let again = [
            run(9, Failed),
            run(7, Succeeded),
            run(6, Failed),
            run(5, Failed),
        ];
        let later = Watched {
            past: &past,
            ..watch(p, &again, &[])
        };
        assert_eq!(evaluate(&later, at(NOW)).len(), 1);
        // Not recovered while the newest ended run still failed.
        let still = [run(8, Failed), run(7, Succeeded), run(6, Failed)];
        assert_eq!(evaluate(&watch(p, &still, &alert), at(NOW)), []);
    }

    #[test]
    fn missed_and_skipped_runs_open_missed() {
        let p = policy(serde_json::json!({}));
        let mut skipped = run(5, RunStatus::Skipped);
        skipped.reason = Some("max_instances".into());
        let runs = [skipped];
        let actions = evaluate(&watch(p, &runs, &[]), at(NOW));
        assert_eq!(
            actions,
            [Action::Open {
                condition: Condition::Missed,
                run_id: Some(Uuid::from_u128(5)),
                detail: "the run due at 2026-12-01T10:05:00+00:00 was skipped (max_instances)"
                    .into()
            }]
        );
        let missed = [run(5, RunStatus::Missed)];
        assert_eq!(evaluate(&watch(p, &missed, &[]), at(NOW)).len(), 1);
        let off = policy(serde_json::json!({"missed": false}));
        assert_eq!(evaluate(&watch(off, &missed, &[]), at(NOW)), []);
    }

    #[test]
    fn late_overdue_and_too_fast() {
        let p = policy(
            serde_json::json!({"late_start_s": 60, "max_duration_s": 120, "min_duration_s": 2}),
        );
        // Due at 10:08, not started at 10:10: late by 2 min.
        let mut waiting = run(8, RunStatus::Pending);
        waiting.first_attempt_at = None;
        let conditions = |runs: &[RecentRun]| -> Vec<Condition> {
            evaluate(&watch(p, runs, &[]), at(NOW))
                .into_iter()
                .filter_map(|a| match a {
                    Action::Open { condition, .. } => Some(condition),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(conditions(&[waiting.clone()]), [Condition::Late]);
        // Due at 10:09: 1 min is not more than late_start_s.
        let mut recent = run(9, RunStatus::Pending);
        recent.first_attempt_at = None;
        assert_eq!(conditions(&[recent]), []);
        // Started at 10:05:01, still running at 10:10: overdue.
        let running = run(5, RunStatus::Running);
        assert_eq!(conditions(&[running]), [Condition::Overdue]);
        // Succeeded within 2 s of its start: too fast (min 2 s, took 2 s: not).
        let mut quick = run(5, RunStatus::Succeeded);
        quick.finished_at = quick
            .first_attempt_at
            .map(|s| s + TimeDelta::milliseconds(300));
        assert_eq!(conditions(&[quick]), [Condition::TooFast]);
        assert_eq!(conditions(&[run(5, RunStatus::Succeeded)]), []);
    }

    #[test]
    fn reminders_every_realert_s_unless_acked_or_muted() {
        let p = policy(serde_json::json!({"realert_s": 300}));
        let runs = [run(5, RunStatus::Failed)];
        let alert = open(Condition::Failure, "2026-12-01T10:04:00Z");
        assert_eq!(
            evaluate(&watch(p, &runs, std::slice::from_ref(&alert)), at(NOW)),
            [Action::Remind { alert_id: alert.id }]
        );
        let recent = OpenAlert {
            notified_at: at("2026-12-01T10:06:00Z"),
            ..alert.clone()
        };
        assert_eq!(evaluate(&watch(p, &runs, &[recent]), at(NOW)), []);
        let acked = OpenAlert {
            state: AlertState::Acked,
            ..alert.clone()
        };
        assert_eq!(evaluate(&watch(p, &runs, &[acked]), at(NOW)), []);
        let muted = Watched {
            muted_until: Some(at("2026-12-01T11:00:00Z")),
            ..watch(p, &runs, std::slice::from_ref(&alert))
        };
        assert_eq!(evaluate(&muted, at(NOW)), []);
        // Muted: a new failure opens nothing either, until the mute ends.
        let muted_new = Watched {
            muted_until: Some(at("2026-12-01T11:00:00Z")),
            ..watch(p, &runs, &[])
        };
        assert_eq!(evaluate(&muted_new, at(NOW)), []);
        // What ended while muted opens nothing when the mute ends; what
        // ends after it does.
        assert_eq!(evaluate(&muted_new, at("2026-12-01T11:00:01Z")), []);
        let short_mute = Watched {
            muted_until: Some(at("2026-12-01T10:05:02Z")),
            ..watch(p, &runs, &[])
        };
        assert_eq!(evaluate(&short_mute, at(NOW)).len(), 1);
    }

    #[test]
    fn a_paused_job_never_alerts_and_resolves_what_is_open() {
        let p = policy(serde_json::json!({"recovery": false}));
        let runs = [run(5, RunStatus::Failed)];
        let alert = [open(Condition::Failure, "2026-12-01T10:06:00Z")];
        let paused = Watched {
            paused: true,
            ..watch(p, &runs, &alert)
        };
        assert_eq!(
            evaluate(&paused, at(NOW)),
            [Action::Resolve {
                alert_id: Uuid::from_u128(99),
                notify: false
            }]
        );
        let paused_new = Watched {
            paused: true,
            ..watch(p, &runs, &[])
        };
        assert_eq!(evaluate(&paused_new, at(NOW)), []);
        // Alerts switched off: what is open resolves, silently.
        let off = Watched {
            policy: None,
            ..watch(p, &runs, &alert)
        };
        assert_eq!(
            evaluate(&off, at(NOW)),
            [Action::Resolve {
                alert_id: Uuid::from_u128(99),
                notify: false
            }]
        );
    }

    #[test]
    fn bad_settings_name_their_field() {
        let bad = |v: serde_json::Value| {
            serde_json::from_value::<AlertsInput>(v)
                .unwrap()
                .parse("alerts")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(serde_json::json!({"after_consecutive_failures": 0})),
            "alerts.after_consecutive_failures: must be between 1 and 100, got 0"
        );
        assert_eq!(
            bad(serde_json::json!({"realert_s": 5})),
            "alerts.realert_s: must be between 60 and 2678400 seconds, got 5"
        );
        assert_eq!(
            bad(serde_json::json!({"min_duration_s": 60, "max_duration_s": 30})),
            "alerts.min_duration_s: must be less than max_duration_s (30)"
        );
        let p = policy(serde_json::json!({"late_start_s": 120, "realert_s": 3600}));
        assert_eq!(p.to_input().parse("alerts").unwrap(), p);
    }
    #[test]
    fn the_default_policy_is_what_an_empty_object_says() {
        assert_eq!(AlertPolicy::default(), policy(serde_json::json!({})));
    }

    #[test]
    fn a_monitor_run_without_its_ping_opens_ping_missing_not_missed() {
        use RunStatus::*;
        let p = policy(serde_json::json!({}));
        let mut quiet = run(9, Missed);
        quiet.reason = Some(REASON_PING_MISSING.into());
        quiet.first_attempt_at = None;
        let runs = [quiet, run(8, Succeeded)];
        assert_eq!(
            evaluate(&watch(p, &runs, &[]), at(NOW)),
            [Action::Open {
                condition: Condition::PingMissing,
                run_id: Some(Uuid::from_u128(9)),
                detail: "no ping for the run due at 2026-12-01T10:09:00+00:00".into()
            }]
        );
        // The next fire time pinged on time: it resolves.
        let alert = [open(Condition::PingMissing, "2026-12-01T10:09:30Z")];
        let later = [run(10, Succeeded), runs[0].clone()];
        assert_eq!(
            evaluate(&watch(p, &later, &alert), at("2026-12-01T10:11:00Z")),
            [Action::Resolve {
                alert_id: Uuid::from_u128(99),
                notify: true
            }]
        );
    }

    #[test]
    fn a_ping_nothing_awaited_opens_unexpected_and_counts_for_nothing_else() {
        use RunStatus::*;
        let p = policy(serde_json::json!({}));
        let mut extra = run(9, Failed);
        extra.unexpected = true;
        let runs = [extra, run(8, Succeeded)];
        assert_eq!(
            evaluate(&watch(p, &runs, &[]), at(NOW)),
            [Action::Open {
                condition: Condition::Unexpected,
                run_id: Some(Uuid::from_u128(9)),
                detail: "a ping (failed) came when no run awaited one".into()
            }]
        );
        // A scheduled run succeeding after it resolves it.
        let alert = [open(Condition::Unexpected, "2026-12-01T10:09:30Z")];
        let later = [run(10, Succeeded), runs[0].clone(), runs[1].clone()];
        assert_eq!(
            evaluate(&watch(p, &later, &alert), at("2026-12-01T10:11:00Z")),
            [Action::Resolve {
                alert_id: Uuid::from_u128(99),
                notify: true
            }]
        );
    }
}
