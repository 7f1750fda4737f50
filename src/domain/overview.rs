//! The dashboard's overview (DESIGN §10): a tenant's last 24 hours of
//! runs, per hour by outcome, and how late their first requests went out
//! as percentiles. Pure: the store reads the runs, this counts them.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::run::{RunCause, RunStatus};

/// Hours the overview shows.
pub const HOURS: usize = 24;

/// What the overview reads of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunPoint {
    pub created_at: DateTime<Utc>,
    pub scheduled_for: DateTime<Utc>,
    pub cause: RunCause,
    pub status: RunStatus,
    /// When its first attempt started; none before one.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// A monitor-only job's run (§11.5): its "attempt" is the watched
    /// work's ping, not a request of ours.
    pub monitored: bool,
}

/// How runs ended, or where they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub succeeded: u32,
    pub failed: u32,
    /// Missed, skipped or cancelled: never sent, or cut short.
    pub not_sent: u32,
    /// Pending, awaiting a ping or running.
    pub in_flight: u32,
}

impl Outcomes {
    fn count(&mut self, status: RunStatus) {
        let slot = match status {
            RunStatus::Succeeded => &mut self.succeeded,
            RunStatus::Failed => &mut self.failed,
            RunStatus::Missed | RunStatus::Skipped | RunStatus::Cancelled => &mut self.not_sent,
            RunStatus::Pending
            | RunStatus::Awaiting
            | RunStatus::Running
            | RunStatus::Cancelling => &mut self.in_flight,
        };
        *slot += 1;
    }

    pub fn total(&self) -> u32 {
        self.succeeded + self.failed + self.not_sent + self.in_flight
    }
}

/// Lateness percentiles, in milliseconds, of `count` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lateness {
    pub count: usize,
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

impl Lateness {
    /// The nearest-rank percentiles of `late_ms`; none of nothing.
    pub fn of(mut late_ms: Vec<i64>) -> Option<Self> {
        if late_ms.is_empty() {
            return None;
        }
        late_ms.sort_unstable();
        let rank = |p: usize| late_ms[(late_ms.len() * p).div_ceil(100).max(1) - 1];
        Some(Self {
            count: late_ms.len(),
            p50_ms: rank(50),
            p95_ms: rank(95),
            p99_ms: rank(99),
            max_ms: late_ms[late_ms.len() - 1],
        })
    }
}

/// One hour of the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct Hour {
    pub start: DateTime<Utc>,
    pub outcomes: Outcomes,
    pub lateness: Option<Lateness>,
}

/// The last [`HOURS`] hours, oldest first, the current one last.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub hours: Vec<Hour>,
    pub outcomes: Outcomes,
    pub lateness: Option<Lateness>,
}

/// Where the overview's hours start, for `now`: the store reads the runs
/// made from then on.
pub fn since(now: DateTime<Utc>) -> DateTime<Utc> {
    hour_of(now) - TimeDelta::hours(HOURS as i64 - 1)
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The overview of `runs` at `now`: each counted in the hour it was made,
/// by its status. Lateness is measured on the trigger's own runs only
/// (a backfill's or a manual run's fire time is not a promise; a
/// monitor's run is pinged, not sent), from the fire time to the first
/// attempt; a run sent early counts as on time.
pub fn summarize(runs: &[RunPoint], now: DateTime<Utc>) -> Overview {
    let first = since(now);
    let mut hours: Vec<(Outcomes, Vec<i64>)> = vec![Default::default(); HOURS];
    for run in runs {
        let Ok(index) = usize::try_from((hour_of(run.created_at) - first).num_hours()) else {
            continue;
        };
        let Some((outcomes, late)) = hours.get_mut(index) else {
            continue;
        };
        outcomes.count(run.status);
        if let (RunCause::Schedule, false, Some(sent)) =
            (run.cause, run.monitored, run.first_attempt_at)
        {
            late.push((sent - run.scheduled_for).num_milliseconds().max(0));
        }
    }
    let mut total = Outcomes::default();
    let mut all_late = Vec::new();
    let hours = hours
        .into_iter()
        .enumerate()
        .map(|(i, (outcomes, late))| {
            total.succeeded += outcomes.succeeded;
            total.failed += outcomes.failed;
            total.not_sent += outcomes.not_sent;
            total.in_flight += outcomes.in_flight;
            all_late.extend_from_slice(&late);
            Hour {
                start: first + TimeDelta::hours(i as i64),
                outcomes,
                lateness: Lateness::of(late),
            }
        })
        .collect();
    Overview {
        hours,
        outcomes: total,
        lateness: Lateness::of(all_late),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant;

    fn at(text: &str) -> DateTime<Utc> {
        instant::parse(text).unwrap()
    }

    fn run(made: &str, status: RunStatus, late_ms: Option<i64>) -> RunPoint {
        let created_at = at(made);
        RunPoint {
            created_at,
            scheduled_for: created_at,
            cause: RunCause::Schedule,
            status,
            first_attempt_at: late_ms.map(|ms| created_at + TimeDelta::milliseconds(ms)),
            monitored: false,
        }
    }

    #[test]
    fn runs_are_counted_in_the_hour_they_were_made_by_outcome() {
        let now = at("2026-12-04T10:20:00Z");
        assert_eq!(since(now), at("2026-12-03T11:00:00Z"));
        let runs = [
            run("2026-12-04T10:05:00Z", RunStatus::Succeeded, Some(4)),
            run("2026-12-04T10:15:00Z", RunStatus::Failed, Some(8)),
            run("2026-12-04T10:19:59Z", RunStatus::Running, Some(2)),
            run("2026-12-04T09:59:59Z", RunStatus::Skipped, None),
            run("2026-12-03T11:00:00Z", RunStatus::Missed, None),
            // Before the first hour, and a clock ahead: left out.
            run("2026-12-03T10:59:59Z", RunStatus::Succeeded, Some(1)),
            run("2026-12-04T11:00:00Z", RunStatus::Succeeded, Some(1)),
        ];
        let overview = summarize(&runs, now);
        assert_eq!(overview.hours.len(), HOURS);
        let last = &overview.hours[HOURS - 1];
        assert_eq!(last.start, at("2026-12-04T10:00:00Z"));
        assert_eq!(
            last.outcomes,
            Outcomes {
                succeeded: 1,
                failed: 1,
                not_sent: 0,
                in_flight: 1
            }
        );
        assert_eq!(overview.hours[HOURS - 2].outcomes.not_sent, 1);
        assert_eq!(overview.hours[0].start, at("2026-12-03T11:00:00Z"));
        assert_eq!(overview.hours[0].outcomes.not_sent, 1);
        assert_eq!(overview.outcomes.total(), 5);
        assert_eq!(last.lateness.unwrap().count, 3);
    }

    #[test]
    fn lateness_is_the_trigger_s_runs_nearest_rank_percentiles() {
        let now = at("2026-12-04T10:59:00Z");
        let mut runs: Vec<RunPoint> = (1..=100)
            .map(|ms| run("2026-12-04T10:30:00Z", RunStatus::Succeeded, Some(ms)))
            .collect();
        // A manual run's and a backfill's lateness mean nothing; a run
        // sent before its time is on time.
        runs.push(RunPoint {
            cause: RunCause::Manual,
            ..run("2026-12-04T10:30:00Z", RunStatus::Succeeded, Some(90_000))
        });
        runs.push(RunPoint {
            cause: RunCause::Backfill,
            ..run("2026-12-04T10:30:00Z", RunStatus::Succeeded, Some(90_000))
        });
        runs.push(run("2026-12-04T10:30:00Z", RunStatus::Succeeded, Some(-50)));
        // A monitor's run was pinged late by the watched work, not sent.
        runs.push(RunPoint {
            monitored: true,
            ..run("2026-12-04T10:30:00Z", RunStatus::Succeeded, Some(90_000))
        });
        let late = summarize(&runs, now).lateness.unwrap();
        assert_eq!(
            late,
            Lateness {
                count: 101,
                p50_ms: 50,
                p95_ms: 95,
                p99_ms: 99,
                max_ms: 100
            }
        );
        assert_eq!(Lateness::of(vec![7]).unwrap().p99_ms, 7);
        assert_eq!(Lateness::of(Vec::new()), None);
    }
}
