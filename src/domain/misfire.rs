//! What the scheduler does with a due job (DESIGN.md §3): misfire grace,
//! coalescing and max_instances, as one pure decision.

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::gate;
use crate::domain::job::Schedule;
use crate::domain::overlap::{self, InFlight, Overlap};
use crate::domain::run::RunStatus;
use crate::domain::run_limit;
use crate::domain::trigger::Trigger;

/// `catchup_max` by default: with coalescing off, at most this many
/// already-due occurrences become runs at one claim (Kubernetes CronJob
/// gives up past 100 missed schedules).
pub const DEFAULT_CATCHUP_MAX: u32 = 100;
/// The largest `catchup_max` a job may set: ten requests once made
/// 100,140 runs with 10,000 (issue 22).
pub const MAX_CATCHUP_MAX: u32 = 1_000;

/// Steps a cron walk may take to count occurrences in one decision; past
/// it the count stops growing (the latest occurrence is still found). At
/// up to ~1 µs a step, one job's walk holds the database's write lock
/// ~10 ms at most.
pub const MAX_COUNT_STEPS: u64 = 10_000;

/// Occurrences one claim transaction counts before it leaves the rest of
/// its due jobs for the next one: 500 jobs walking their whole backlogs
/// once held SQLite's write lock 4 s (issue 22).
pub const COUNTED_PER_CLAIM: u64 = 2 * MAX_COUNT_STEPS;

/// A job as the scheduler sees it once its row is locked.
#[derive(Debug, Clone, Copy)]
pub struct DueJob<'a> {
    pub trigger: &'a Trigger,
    /// The stored first unhandled fire time; may be a forced one, off the
    /// trigger's own sequence.
    pub next_run_at: DateTime<Utc>,
    pub misfire_grace_s: Option<u32>,
    pub coalesce: bool,
    /// With coalescing off, how many due occurrences may become runs; older
    /// ones become one missed run.
    pub catchup_max: u32,
    pub max_instances: u32,
    /// What a run over `max_instances` does (§11.1).
    pub overlap: Overlap,
    /// Its pending and running runs, counted under the row lock.
    pub in_flight: InFlight,
    /// How far ahead of its fire time the next occurrence's run may be
    /// made (DESIGN.md §12); zero makes runs only once due.
    pub lookahead: TimeDelta,
    /// Runs left before `max_runs` completes the job (§11.3); `None`
    /// without a limit.
    pub runs_remaining: Option<u32>,
    /// Its gates and their jobs' latest successes (§11.8); `None` for a
    /// job without gates.
    pub gate: Option<&'a crate::domain::gate::Facts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRun {
    pub scheduled_for: DateTime<Utc>,
    pub status: RunStatus,
    /// `overlap` for a pending run that waits for a run of its job to end
    /// (§11.1).
    pub wait_reason: Option<&'static str>,
    /// Why a run is skipped (`max_instances`, `buffer_full`).
    pub reason: Option<&'static str>,
    /// How many fire times this run stands for.
    pub occurrences: u64,
    /// When delivery may start: `scheduled_for` plus jitter.
    pub deliver_after: DateTime<Utc>,
    /// The occurrence calendars moved to `scheduled_for` (§11.4).
    pub nominal_for: Option<DateTime<Utc>>,
    /// A pending run its gate holds (§11.8).
    pub held: Option<crate::domain::gate::Held>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub runs: Vec<PlannedRun>,
    pub schedule: Schedule,
    /// Under overlap `replace`: how many of the job's oldest runs in
    /// flight (its runs made here included) are cancelled (§11.1).
    pub cancels: u32,
}

/// How long a job whose stored trigger no longer reads back waits before
/// the scheduler looks at it again: left for an operator, without
/// spinning on it.
pub const UNREADABLE_RETRY: TimeDelta = TimeDelta::hours(1);

impl Decision {
    /// The occurrences its runs stand for: what its walk counted.
    pub fn counted(&self) -> u64 {
        self.runs.iter().map(|r| r.occurrences).sum()
    }

    /// Its runs that count toward `max_runs` (§11.3).
    pub fn runs_toward_limit(&self) -> u32 {
        self.runs
            .iter()
            .filter(|r| run_limit::counts(r.status))
            .count() as u32
    }

    /// A due job whose stored trigger does not read back (a bug or a
    /// manual edit): no run, and another look in [`UNREADABLE_RETRY`].
    pub fn unreadable(now: DateTime<Utc>) -> Self {
        Self {
            runs: Vec::new(),
            schedule: Schedule::Scheduled {
                next_run_at: now + UNREADABLE_RETRY,
            },
            cancels: 0,
        }
    }
}

/// Fire times in `[first, limit)` from `first` (a fire time): how many,
/// the last of them, and the first at or past `limit`.
struct Span {
    count: u64,
    last: DateTime<Utc>,
    after: Option<DateTime<Utc>>,
}

fn span(trigger: &Trigger, first: DateTime<Utc>, limit: DateTime<Utc>) -> Span {
    // Only the first fire time can be a forced one; the rest follow it.
    let Some(second) = trigger.next_after_fire(first).filter(|t| *t < limit) else {
        return Span {
            count: 1,
            last: first,
            after: trigger.next_after_fire(first),
        };
    };
    if let Trigger::Interval(interval) = trigger {
        // On the grid from `second` on: count by arithmetic.
        let n = interval.count_from(second, limit - TimeDelta::microseconds(1));
        let last = interval.nth_from(second, n - 1).unwrap_or(second);
        return Span {
            count: n + 1,
            last,
            after: trigger.next_after(last),
        };
    }
    let (mut count, mut last) = (2, second);
    loop {
        match trigger.next_after(last) {
            Some(next) if next < limit => {
                if count >= MAX_COUNT_STEPS {
                    let last = latest_before(trigger, last, limit);
                    return Span {
                        count,
                        last,
                        after: trigger.next_after(last),
                    };
                }
                count += 1;
                last = next;
            }
            after => return Span { count, last, after },
        }
    }
}

/// The latest fire time before `limit`, given `known` < `limit` is one:
/// look back a doubling window from `limit` until it holds a fire time,
/// then walk that window (a handful of steps for any real pattern).
fn latest_before(trigger: &Trigger, known: DateTime<Utc>, limit: DateTime<Utc>) -> DateTime<Utc> {
    let mut window = TimeDelta::seconds(1);
    loop {
        let from = (limit - window).max(known);
        if let Some(mut last) = trigger.next_after(from).filter(|t| *t < limit) {
            while let Some(next) = trigger.next_after(last).filter(|t| *t < limit) {
                last = next;
            }
            return last;
        }
        if from == known {
            return known;
        }
        window = window * 2;
    }
}

/// The latest `k` fire times in `[first, limit)`, oldest first, for
/// `first` a fire time: looked for in a window back from `limit` that
/// doubles until it holds `k` (or reaches `first`), so a long backlog costs
/// about `2k` steps, not its length.
fn latest(
    trigger: &Trigger,
    first: DateTime<Utc>,
    limit: DateTime<Utc>,
    k: usize,
) -> Vec<DateTime<Utc>> {
    let mut window = TimeDelta::seconds(1);
    loop {
        let from = (limit - window).max(first);
        let mut found = Vec::new();
        let mut at = if from == first {
            Some(first)
        } else {
            trigger.next_after(from - TimeDelta::microseconds(1))
        };
        while let Some(t) = at.filter(|t| *t < limit) {
            found.push(t);
            at = trigger.next_after_fire(t);
        }
        if found.len() >= k || from == first {
            let skip = found.len().saturating_sub(k);
            return found.split_off(skip);
        }
        window = window * 2;
    }
}

/// The last fire time before `fire` (a later fire time), from `first`.
fn last_before(trigger: &Trigger, first: DateTime<Utc>, fire: DateTime<Utc>) -> DateTime<Utc> {
    latest(trigger, first, fire, 1).pop().unwrap_or(first)
}

/// Decides the runs of a due job at `now` (the database's clock). `jitter`
/// yields uniform random numbers in `[0, 1)` for the delivery delay.
pub fn decide(job: &DueJob<'_>, now: DateTime<Utc>, jitter: &mut dyn FnMut() -> f64) -> Decision {
    let mut decision = decide_runs(job, now, jitter);
    // A fire time its calendars rolled occurrences onto stands for them
    // all, and names the first (§11.4).
    if job.trigger.rolls() {
        for run in &mut decision.runs {
            let occurrence = job.trigger.occurrence_at(run.scheduled_for);
            run.occurrences += occurrence.count.saturating_sub(1);
            run.nominal_for = occurrence.nominal_for;
        }
    }
    decision
}

fn decide_runs(job: &DueJob<'_>, now: DateTime<Utc>, jitter: &mut dyn FnMut() -> f64) -> Decision {
    let trigger = job.trigger;
    // Not yet due, but within the lookahead: its next run is made now, to
    // be sent at its fire time (§12). Only for a job with nothing in
    // flight, so that max_instances means what it does at the fire time
    // (a run still in flight now may well be done by then); the others
    // get their run when due, as without a lookahead. Nor for a job's last
    // occurrence: the job would be completed before its fire time, and
    // could no longer be paused to stop it. The run that reaches
    // `max_runs` is a last occurrence too.
    if job.runs_remaining == Some(0) {
        return Decision {
            runs: Vec::new(),
            schedule: Schedule::Completed,
            cancels: 0,
        };
    }
    let ahead = job.next_run_at > now && job.next_run_at <= now + job.lookahead;
    if ahead
        && job.in_flight == InFlight::default()
        && job.runs_remaining != Some(1)
        && let Some(next) = trigger.next_after_fire(job.next_run_at)
    {
        let at = job.next_run_at;
        let jitter_s = trigger.jitter_s();
        let deliver_after = if jitter_s > 0 {
            jittered(at, jitter_s, Some(next), jitter())
        } else {
            at
        };
        let verdict = job.gate.map_or(gate::Verdict::Open, |g| g.verdict(at, now));
        let ends = verdict.ends();
        return Decision {
            runs: vec![PlannedRun {
                scheduled_for: at,
                status: ends.unwrap_or(RunStatus::Pending),
                wait_reason: None,
                reason: ends.map(|_| gate::REASON),
                occurrences: 1,
                deliver_after,
                nominal_for: None,
                held: verdict.held(),
            }],
            schedule: Schedule::Scheduled { next_run_at: next },
            cancels: 0,
        };
    }
    if job.next_run_at > now {
        return Decision {
            runs: Vec::new(),
            schedule: Schedule::Scheduled {
                next_run_at: job.next_run_at,
            },
            cancels: 0,
        };
    }
    // An occurrence is missed when now − fire time > grace.
    let missed_before = job
        .misfire_grace_s
        .map(|grace| now - TimeDelta::seconds(grace.into()));
    let due_until = now + TimeDelta::microseconds(1);

    let mut runs = Vec::new();
    let mut cursor = Some(job.next_run_at);
    // Missed: beyond the misfire grace, and (coalescing off) beyond the
    // catch-up bound; they become one missed run, for the latest of them.
    let mut missed: Option<(u64, DateTime<Utc>)> = None;
    if let (Some(first), Some(limit)) = (cursor, missed_before)
        && first < limit
    {
        let span = span(trigger, first, limit);
        missed = Some((span.count, span.last));
        cursor = span.after;
    }
    if !job.coalesce
        && let Some(first) = cursor.filter(|t| *t < due_until)
    {
        let due = span(trigger, first, due_until);
        let keep = u64::from(job.catchup_max.max(1));
        if due.count > keep {
            let kept = latest(trigger, first, due_until, keep as usize);
            if let Some(&oldest_kept) = kept.first() {
                let last_dropped = last_before(trigger, first, oldest_kept);
                let (count, _) = missed.unwrap_or((0, last_dropped));
                missed = Some((count + (due.count - kept.len() as u64), last_dropped));
                cursor = Some(oldest_kept);
            }
        }
    }
    if let Some((occurrences, last)) = missed {
        runs.push(PlannedRun {
            scheduled_for: last,
            status: RunStatus::Missed,
            wait_reason: None,
            reason: None,
            occurrences,
            deliver_after: last,
            nominal_for: None,
            held: None,
        });
    }

    let mut in_flight = job.in_flight;
    let mut cancels = 0;
    let mut admit = |scheduled_for, occurrences| {
        // A gate that does not hold ends the run before it takes a place
        // (§11.8); one that holds it keeps it pending, in flight.
        let verdict = job
            .gate
            .map_or(gate::Verdict::Open, |g| g.verdict(scheduled_for, now));
        if let Some(status) = verdict.ends() {
            return PlannedRun {
                scheduled_for,
                status,
                wait_reason: None,
                reason: Some(gate::REASON),
                occurrences,
                deliver_after: scheduled_for,
                nominal_for: None,
                held: None,
            };
        }
        let admission = overlap::admit(job.overlap, job.max_instances, &mut in_flight, false);
        cancels += u32::from(admission == overlap::Admission::Replace);
        let (status, wait_reason, reason) = admission.run_fields();
        let held = verdict
            .held()
            .filter(|_| status == RunStatus::Pending && wait_reason.is_none());
        PlannedRun {
            scheduled_for,
            status,
            wait_reason,
            reason,
            occurrences,
            deliver_after: scheduled_for,
            nominal_for: None,
            held,
        }
    };

    // Runs sent count toward `max_runs`; the one that reaches it is the
    // job's last.
    let mut left = job.runs_remaining;
    let mut reached = |run: &PlannedRun| {
        if run_limit::counts(run.status) {
            left = left.map(|n| n.saturating_sub(1));
        }
        left == Some(0)
    };
    let next = match cursor {
        Some(first) if first < due_until && job.coalesce => {
            let due = span(trigger, first, due_until);
            let run = admit(due.last, due.count);
            let last = reached(&run);
            runs.push(run);
            if last { None } else { due.after }
        }
        Some(first) if first < due_until => {
            // At most catchup_max of them, by the bound above.
            let mut at = Some(first);
            while let Some(t) = at.filter(|t| *t < due_until) {
                let run = admit(t, 1);
                let last = reached(&run);
                runs.push(run);
                at = if last {
                    None
                } else {
                    trigger.next_after_fire(t)
                };
            }
            at
        }
        other => other,
    };

    // Jitter delays delivery, never past the next planned fire time.
    let jitter_s = trigger.jitter_s();
    if jitter_s > 0 {
        let planned: Vec<_> = runs.iter().map(|r| r.scheduled_for).collect();
        for (i, run) in runs.iter_mut().enumerate() {
            if run.status != RunStatus::Pending || run.wait_reason.is_some() {
                continue;
            }
            let following = planned.get(i + 1).copied().or(next);
            run.deliver_after = jittered(run.scheduled_for, jitter_s, following, jitter());
        }
    }
    Decision {
        runs,
        schedule: Schedule::next_or_completed(next),
        cancels,
    }
}

/// `planned` plus `unit·jitter_s` seconds, at most `next` when there is one.
pub fn jittered(
    planned: DateTime<Utc>,
    jitter_s: u32,
    next: Option<DateTime<Utc>>,
    unit: f64,
) -> DateTime<Utc> {
    let micros = (f64::from(jitter_s) * 1e6 * unit.clamp(0.0, 1.0)) as i64;
    let at = planned + TimeDelta::microseconds(micros);
    match next {
        Some(next) if next < at => next,
        _ => at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;
    use crate::domain::job::JobState;
    use crate::domain::trigger::TriggerInput;

    fn t(s: &str) -> DateTime<Utc> {
        parse(s).unwrap()
    }

    fn trigger(json: serde_json::Value) -> Trigger {
        serde_json::from_value::<TriggerInput>(json)
            .unwrap()
            .parse(t("2026-01-01T00:00:00Z"), "trigger")
            .unwrap()
    }

    #[test]
    fn an_unreadable_trigger_makes_no_run_and_is_looked_at_again_in_an_hour() {
        let d = Decision::unreadable(t("2026-11-23T10:00:00.5Z"));
        assert_eq!(d.runs, vec![]);
        assert_eq!(
            d.schedule,
            Schedule::Scheduled {
                next_run_at: t("2026-11-23T11:00:00.5Z")
            }
        );
    }

    fn every_minute() -> Trigger {
        trigger(
            serde_json::json!({"type": "interval", "every_s": 60, "start_at": "2026-11-23T00:00:00Z"}),
        )
    }

    fn job<'a>(trigger: &'a Trigger, next: &str) -> DueJob<'a> {
        DueJob {
            trigger,
            next_run_at: t(next),
            misfire_grace_s: None,
            coalesce: true,
            catchup_max: DEFAULT_CATCHUP_MAX,
            max_instances: 1,
            overlap: Overlap::Skip,
            in_flight: InFlight::default(),
            lookahead: TimeDelta::zero(),
            runs_remaining: None,
            gate: None,
        }
    }

    fn decide_at(job: DueJob<'_>, now: &str) -> Decision {
        decide(&job, t(now), &mut || 0.5)
    }

    #[test]
    fn a_run_rolled_onto_by_its_calendars_stands_for_every_occurrence_it_took() {
        let book = crate::domain::calendar::book_of(serde_json::json!([
            {"id": "weekends", "rules": [{"weekdays": ["sat", "sun"]}]}
        ]));
        let tr = trigger(serde_json::json!({"type": "cron", "expr": "0 9 * * *",
            "calendars": {"exclude": ["weekends"], "on_excluded": "next_allowed"}}))
        .bind(
            &crate::domain::trigger::Binding {
                seed: "t/j".into(),
                calendars: std::sync::Arc::new(book),
            },
            "trigger",
        )
        .unwrap();
        // Friday 4 Dec 2026 fired; Saturday's and Sunday's go on Monday
        // with Monday's own.
        assert_eq!(
            tr.next_after(t("2026-12-04T09:00:00Z")),
            Some(t("2026-12-07T09:00:00Z"))
        );
        let d = decide_at(job(&tr, "2026-12-07T09:00:00Z"), "2026-12-07T09:00:00Z");
        assert_eq!(d.runs.len(), 1);
        assert_eq!(d.runs[0].occurrences, 3);
        assert_eq!(d.runs[0].nominal_for, Some(t("2026-12-05T09:00:00Z")));
        assert_eq!(
            d.schedule,
            Schedule::Scheduled {
                next_run_at: t("2026-12-08T09:00:00Z")
            }
        );
    }

    fn run(at: &str, status: RunStatus, occurrences: u64) -> PlannedRun {
        PlannedRun {
            scheduled_for: t(at),
            status,
            wait_reason: None,
            reason: (status == RunStatus::Skipped).then_some("max_instances"),
            occurrences,
            deliver_after: t(at),
            nominal_for: None,
            held: None,
        }
    }

    /// Job `a`'s gate (§11.8), `a` last succeeding at `succeeded`.
    fn gate_on_a(mode: &str, succeeded: Option<&str>) -> crate::domain::gate::Facts {
        let requires = serde_json::json!([{"job": "a", "mode": mode, "succeeded_within_s": 3600}]);
        crate::domain::gate::Facts {
            gates: crate::domain::gate::Gates::parse(
                serde_json::from_value(requires).unwrap(),
                None,
            )
            .unwrap(),
            succeeded: succeeded
                .map(|at| ("a".to_string(), t(at)))
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_gate_skips_a_fire_time_before_it_takes_a_place() {
        let tr = every_minute();
        let facts = gate_on_a("skip", None);
        let j = DueJob {
            coalesce: false,
            gate: Some(&facts),
            ..job(&tr, "2026-11-23T10:00:00Z")
        };
        let d = decide_at(j, "2026-11-23T10:00:00Z");
        assert_eq!(d.runs[0].status, RunStatus::Skipped);
        assert_eq!(d.runs[0].reason, Some(crate::domain::gate::REASON));
        // A success within the window opens it.
        let facts = gate_on_a("skip", Some("2026-11-23T09:30:00Z"));
        let j = DueJob {
            gate: Some(&facts),
            ..job(&tr, "2026-11-23T10:00:00Z")
        };
        let d = decide_at(j, "2026-11-23T10:00:00Z");
        assert_eq!(d.runs[0].status, RunStatus::Pending);
        assert_eq!(d.runs[0].held, None);
    }

    #[test]
    fn a_held_run_is_pending_and_in_flight_so_the_next_is_over_the_cap() {
        let tr = every_minute();
        let facts = gate_on_a("wait", None);
        let j = DueJob {
            coalesce: false,
            gate: Some(&facts),
            ..job(&tr, "2026-11-23T10:00:00Z")
        };
        let d = decide_at(j, "2026-11-23T10:01:00Z");
        assert_eq!(d.runs.len(), 2);
        assert_eq!(d.runs[0].status, RunStatus::Pending);
        assert_eq!(
            d.runs[0].held,
            Some(crate::domain::gate::Held {
                on: crate::domain::job::JobId::parse("a").unwrap(),
                until: t("2026-11-23T12:00:00Z"),
            })
        );
        assert_eq!(d.runs[1].status, RunStatus::Skipped);
        assert_eq!(d.runs[1].reason, Some("max_instances"));
        // Made ahead of its fire time (§12), it is held the same.
        let j = DueJob {
            gate: Some(&facts),
            lookahead: TimeDelta::seconds(1),
            ..job(&tr, "2026-11-23T10:00:00Z")
        };
        let d = decide_at(j, "2026-11-23T09:59:59.500Z");
        assert_eq!(d.runs[0].status, RunStatus::Pending);
        assert!(d.runs[0].held.is_some());
    }

    #[test]
    fn not_yet_due_does_nothing() {
        let tr = every_minute();
        let d = decide_at(job(&tr, "2026-11-23T10:00:00Z"), "2026-11-23T09:59:59Z");
        assert!(d.runs.is_empty());
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:00:00Z")));
    }

    #[test]
    fn one_due_occurrence_runs_and_advances() {
        let tr = every_minute();
        let d = decide_at(job(&tr, "2026-11-23T10:00:00Z"), "2026-11-23T10:00:00.003Z");
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Pending, 1)]);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:01:00Z")));
    }

    #[test]
    fn due_exactly_now_runs() {
        let tr = every_minute();
        let d = decide_at(job(&tr, "2026-11-23T10:00:00Z"), "2026-11-23T10:00:00Z");
        assert_eq!(d.runs.len(), 1);
    }

    #[test]
    fn coalesces_backlog_into_one_run_for_the_latest() {
        let tr = every_minute();
        let d = decide_at(job(&tr, "2026-11-23T10:00:00Z"), "2026-11-23T10:09:30Z");
        assert_eq!(
            d.runs,
            [run("2026-11-23T10:09:00Z", RunStatus::Pending, 10)]
        );
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:10:00Z")));
    }

    #[test]
    fn without_coalescing_each_occurrence_runs_up_to_the_catch_up_bound() {
        let tr = every_minute();
        let mut j = job(&tr, "2026-11-23T10:00:00Z");
        j.coalesce = false;
        j.max_instances = 100;
        let d = decide_at(j, "2026-11-23T10:02:30Z");
        assert_eq!(
            d.runs,
            [
                run("2026-11-23T10:00:00Z", RunStatus::Pending, 1),
                run("2026-11-23T10:01:00Z", RunStatus::Pending, 1),
                run("2026-11-23T10:02:00Z", RunStatus::Pending, 1),
            ]
        );
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:03:00Z")));

        // 2,000 due: the latest 100 run, the 1,900 before are one missed
        // run, and nothing is left for a later pass.
        let d = decide_at(j, "2026-11-24T19:19:30Z");
        assert_eq!(d.runs.len(), 101);
        assert_eq!(
            d.runs[0],
            run("2026-11-24T17:39:00Z", RunStatus::Missed, 1900)
        );
        assert_eq!(d.runs[1].scheduled_for, t("2026-11-24T17:40:00Z"));
        assert_eq!(d.runs[100].scheduled_for, t("2026-11-24T19:19:00Z"));
        assert_eq!(
            d.runs[1..]
                .iter()
                .filter(|r| r.status == RunStatus::Pending)
                .count(),
            100
        );
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-24T19:20:00Z")));
    }

    #[test]
    fn a_flood_from_far_in_the_past_is_bounded_by_catchup_max() {
        // Every second since a year ago, not coalesced: one claim makes the
        // 100 latest runs and one missed run for the rest.
        let tr = trigger(
            serde_json::json!({"type": "interval", "every_s": 1, "start_at": "2025-11-23T10:00:00Z"}),
        );
        let mut j = job(&tr, "2025-11-23T10:00:00Z");
        j.coalesce = false;
        let d = decide_at(j, "2026-11-23T10:00:00.5Z");
        assert_eq!(d.runs.len(), 101);
        let year = 365 * 86_400 + 1;
        assert_eq!(
            d.runs[0],
            run("2026-11-23T09:58:20Z", RunStatus::Missed, year - 100)
        );
        assert_eq!(d.runs[100].scheduled_for, t("2026-11-23T10:00:00Z"));
        // max_instances 1: one pending, the rest recorded as skipped.
        assert_eq!(d.runs[1].status, RunStatus::Pending);
        assert!(d.runs[2..].iter().all(|r| r.status == RunStatus::Skipped));
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:00:01Z")));

        // A cron trigger every second, a week behind, and a bound of 3.
        let tr = trigger(serde_json::json!({"type": "cron", "expr": "* * * * * *"}));
        let mut j = job(&tr, "2026-11-16T00:00:00Z");
        j.coalesce = false;
        j.catchup_max = 3;
        j.max_instances = 3;
        let d = decide_at(j, "2026-11-23T00:00:00Z");
        assert_eq!(
            d.runs[1..],
            [
                run("2026-11-22T23:59:58Z", RunStatus::Pending, 1),
                run("2026-11-22T23:59:59Z", RunStatus::Pending, 1),
                run("2026-11-23T00:00:00Z", RunStatus::Pending, 1),
            ]
        );
        assert_eq!(d.runs[0].status, RunStatus::Missed);
        assert_eq!(d.runs[0].scheduled_for, t("2026-11-22T23:59:57Z"));
        assert!(
            d.runs[0].occurrences >= MAX_COUNT_STEPS - 3,
            "{:?}",
            d.runs[0]
        );
    }

    #[test]
    fn grace_and_the_catch_up_bound_make_one_missed_run() {
        let tr = every_minute();
        let mut j = job(&tr, "2026-11-23T10:00:00Z");
        j.coalesce = false;
        j.max_instances = 10;
        j.catchup_max = 2;
        j.misfire_grace_s = Some(300);
        // Due 10:00..10:10 (11); older than 10:05:30 missed by grace (6),
        // then of 10:06..10:10 the latest 2 run and 3 more are missed.
        let d = decide_at(j, "2026-11-23T10:10:30Z");
        assert_eq!(
            d.runs,
            [
                run("2026-11-23T10:08:00Z", RunStatus::Missed, 9),
                run("2026-11-23T10:09:00Z", RunStatus::Pending, 1),
                run("2026-11-23T10:10:00Z", RunStatus::Pending, 1),
            ]
        );
    }

    #[test]
    fn misfire_grace_records_one_missed_run_then_runs_the_rest() {
        let tr = every_minute();
        let mut j = job(&tr, "2026-11-23T10:00:00Z");
        j.misfire_grace_s = Some(90);
        // Due: 10:00..10:10; missed when older than 10:10:30 − 90 s = 10:09:00.
        let d = decide_at(j, "2026-11-23T10:10:30Z");
        assert_eq!(
            d.runs,
            [
                run("2026-11-23T10:08:00Z", RunStatus::Missed, 9),
                run("2026-11-23T10:10:00Z", RunStatus::Pending, 2),
            ]
        );
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:11:00Z")));
    }

    #[test]
    fn everything_missed_records_only_the_missed_run() {
        let tr = every_minute();
        let mut j = job(&tr, "2026-11-23T10:00:00Z");
        j.misfire_grace_s = Some(20);
        let d = decide_at(j, "2026-11-23T10:05:30Z");
        assert_eq!(d.runs, [run("2026-11-23T10:05:00Z", RunStatus::Missed, 6)]);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:06:00Z")));
    }

    #[test]
    fn a_week_down_every_second_is_counted_without_enumerating() {
        let tr = trigger(
            serde_json::json!({"type": "interval", "every_s": 1, "start_at": "2026-11-16T00:00:00Z"}),
        );
        let mut j = job(&tr, "2026-11-16T00:00:00Z");
        j.misfire_grace_s = Some(60);
        let d = decide_at(j, "2026-11-23T00:00:00Z");
        assert_eq!(
            d.runs[0],
            run("2026-11-22T23:58:59Z", RunStatus::Missed, 7 * 86_400 - 60)
        );
        assert_eq!(
            d.runs[1],
            run("2026-11-23T00:00:00Z", RunStatus::Pending, 61)
        );
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T00:00:01Z")));
    }

    #[test]
    fn a_cron_backlog_is_counted_and_its_latest_found() {
        let tr = trigger(serde_json::json!({"type": "cron", "expr": "*/5 * * * *"}));
        let mut j = job(&tr, "2026-11-22T00:00:00Z");
        j.misfire_grace_s = Some(60);
        let d = decide_at(j, "2026-11-23T00:00:30Z");
        assert_eq!(
            d.runs[0],
            run("2026-11-22T23:55:00Z", RunStatus::Missed, 288)
        );
        assert_eq!(
            d.runs[1],
            run("2026-11-23T00:00:00Z", RunStatus::Pending, 1)
        );
    }

    #[test]
    fn a_huge_cron_backlog_stops_counting_but_finds_the_latest() {
        let tr = trigger(serde_json::json!({"type": "cron", "expr": "* * * * * *"}));
        let mut j = job(&tr, "2026-11-16T00:00:00Z");
        j.misfire_grace_s = Some(60);
        let d = decide_at(j, "2026-11-23T00:00:00Z");
        assert_eq!(d.runs[0].status, RunStatus::Missed);
        assert_eq!(d.runs[0].scheduled_for, t("2026-11-22T23:58:59Z"));
        assert_eq!(d.runs[0].occurrences, MAX_COUNT_STEPS);
        assert_eq!(
            d.runs[1],
            run("2026-11-23T00:00:00Z", RunStatus::Pending, 61)
        );
    }

    #[test]
    fn max_instances_skips_what_would_exceed_it() {
        let tr = every_minute();
        let mut j = job(&tr, "2026-11-23T10:00:00Z");
        j.in_flight.admitted = 1;
        let d = decide_at(j, "2026-11-23T10:00:01Z");
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Skipped, 1)]);

        j.coalesce = false;
        j.max_instances = 3;
        let d = decide_at(j, "2026-11-23T10:03:01Z");
        let statuses: Vec<_> = d.runs.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                RunStatus::Pending,
                RunStatus::Pending,
                RunStatus::Skipped,
                RunStatus::Skipped
            ]
        );
    }

    #[test]
    fn under_buffer_all_runs_over_the_cap_wait_up_to_buffer_max_then_are_skipped() {
        let tr = every_minute();
        let mut j = job(&tr, "2026-11-23T10:00:00Z");
        j.coalesce = false;
        j.overlap = Overlap::BufferAll { buffer_max: 2 };
        j.in_flight.admitted = 1;
        let d = decide_at(j, "2026-11-23T10:02:01Z");
        let got: Vec<_> = d
            .runs
            .iter()
            .map(|r| (r.status, r.wait_reason, r.reason))
            .collect();
        assert_eq!(
            got,
            [
                (RunStatus::Pending, Some("overlap"), None),
                (RunStatus::Pending, Some("overlap"), None),
                (RunStatus::Skipped, None, Some("buffer_full")),
            ]
        );
        // A waiting run's delivery time is set when it is released.
        assert_eq!(d.runs[0].deliver_after, t("2026-11-23T10:00:00Z"));
    }

    #[test]
    fn under_buffer_one_a_due_run_waits_behind_the_running_one_and_is_not_jittered() {
        let tr = trigger(serde_json::json!({"type": "interval", "every_s": 60,
            "start_at": "2026-11-23T00:00:00Z", "jitter_s": 30}));
        let mut j = job(&tr, "2026-11-23T10:00:00Z");
        j.overlap = Overlap::BufferOne;
        j.in_flight.admitted = 1;
        let d = decide_at(j, "2026-11-23T10:00:01Z");
        assert_eq!(d.runs.len(), 1);
        assert_eq!(d.runs[0].wait_reason, Some("overlap"));
        assert_eq!(d.runs[0].deliver_after, t("2026-11-23T10:00:00Z"));
    }

    #[test]
    fn a_job_with_a_waiting_run_is_not_made_ahead() {
        let tr = every_minute();
        let mut j = job(&tr, "2026-11-23T10:00:00Z");
        j.overlap = Overlap::BufferOne;
        j.in_flight.waiting = 1;
        j.lookahead = TimeDelta::milliseconds(500);
        let d = decide_at(j, "2026-11-23T09:59:59.7Z");
        assert!(d.runs.is_empty());
    }

    #[test]
    fn a_date_trigger_completes_after_its_fire_even_a_forced_one() {
        let tr = trigger(serde_json::json!({"type": "date", "run_at": "2026-12-01T09:00:00Z"}));
        let d = decide_at(job(&tr, "2026-12-01T09:00:00Z"), "2026-12-01T09:00:01Z");
        assert_eq!(d.runs.len(), 1);
        assert_eq!(d.schedule.state(), JobState::Completed);
        // Forced earlier than run_at: that is its one fire.
        let d = decide_at(job(&tr, "2026-11-23T10:00:00Z"), "2026-11-23T10:00:01Z");
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Pending, 1)]);
        assert_eq!(d.schedule.state(), JobState::Completed);
    }

    #[test]
    fn a_forced_first_run_is_followed_by_the_trigger_sequence() {
        let tr = every_minute();
        let d = decide_at(job(&tr, "2026-11-23T10:00:30Z"), "2026-11-23T10:00:31Z");
        assert_eq!(d.runs, [run("2026-11-23T10:00:30Z", RunStatus::Pending, 1)]);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:01:00Z")));
        // Late forced run: coalesced with the grid occurrences since.
        let d = decide_at(job(&tr, "2026-11-23T10:00:30Z"), "2026-11-23T10:02:10Z");
        assert_eq!(d.runs, [run("2026-11-23T10:02:00Z", RunStatus::Pending, 3)]);
    }

    #[test]
    fn a_date_in_the_past_is_missed_beyond_grace() {
        let tr = trigger(serde_json::json!({"type": "date", "run_at": "2026-11-01T00:00:00Z"}));
        let mut j = job(&tr, "2026-11-01T00:00:00Z");
        j.misfire_grace_s = Some(3600);
        let d = decide_at(j, "2026-11-23T10:00:00Z");
        assert_eq!(d.runs, [run("2026-11-01T00:00:00Z", RunStatus::Missed, 1)]);
        assert_eq!(d.schedule.state(), JobState::Completed);
    }

    #[test]
    fn end_at_completes_the_job() {
        let tr = trigger(serde_json::json!({"type": "interval", "every_s": 60,
            "start_at": "2026-11-23T10:00:00Z", "end_at": "2026-11-23T10:05:00Z"}));
        let d = decide_at(job(&tr, "2026-11-23T10:00:00Z"), "2026-11-23T11:00:00Z");
        assert_eq!(d.runs, [run("2026-11-23T10:05:00Z", RunStatus::Pending, 6)]);
        assert_eq!(d.schedule.state(), JobState::Completed);
    }

    #[test]
    fn jitter_delays_delivery_within_bounds_and_never_past_the_next_fire() {
        let tr = trigger(serde_json::json!({"type": "interval", "every_s": 10,
            "start_at": "2026-11-23T10:00:00Z", "jitter_s": 30}));
        let d = decide(
            &job(&tr, "2026-11-23T10:00:00Z"),
            t("2026-11-23T10:00:00Z"),
            &mut || 0.1,
        );
        assert_eq!(d.runs[0].scheduled_for, t("2026-11-23T10:00:00Z"));
        assert_eq!(d.runs[0].deliver_after, t("2026-11-23T10:00:03Z"));
        let d = decide(
            &job(&tr, "2026-11-23T10:00:00Z"),
            t("2026-11-23T10:00:00Z"),
            &mut || 0.9,
        );
        assert_eq!(d.runs[0].deliver_after, t("2026-11-23T10:00:10Z"));
        assert_eq!(
            jittered(t("2026-11-23T10:00:00Z"), 30, None, 1.0),
            t("2026-11-23T10:00:30Z")
        );
    }

    fn ahead<'a>(trigger: &'a Trigger, next: &str) -> DueJob<'a> {
        DueJob {
            lookahead: TimeDelta::milliseconds(500),
            ..job(trigger, next)
        }
    }

    #[test]
    fn the_next_run_is_made_within_the_lookahead_for_its_fire_time() {
        let tr = every_minute();
        let d = decide_at(
            ahead(&tr, "2026-11-23T10:00:00Z"),
            "2026-11-23T09:59:59.600Z",
        );
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Pending, 1)]);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:01:00Z")));
        // Exactly the lookahead before: made; a moment earlier: not yet.
        let d = decide_at(
            ahead(&tr, "2026-11-23T10:00:00Z"),
            "2026-11-23T09:59:59.500Z",
        );
        assert_eq!(d.runs.len(), 1);
        let d = decide_at(
            ahead(&tr, "2026-11-23T10:00:00Z"),
            "2026-11-23T09:59:59.499Z",
        );
        assert!(d.runs.is_empty());
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:00:00Z")));
    }

    #[test]
    fn a_job_with_a_run_in_flight_gets_its_next_run_when_due_not_ahead() {
        let tr = every_minute();
        let mut j = ahead(&tr, "2026-11-23T10:00:00Z");
        j.in_flight.admitted = 1;
        j.max_instances = 3;
        let d = decide_at(j, "2026-11-23T09:59:59.800Z");
        assert!(d.runs.is_empty());
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:00:00Z")));
        // Once due, max_instances decides as always.
        let d = decide_at(j, "2026-11-23T10:00:00.001Z");
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Pending, 1)]);
    }

    #[test]
    fn a_due_job_is_decided_at_now_whatever_the_lookahead() {
        // Late: coalesced up to now only; the occurrence 0.3 s ahead is
        // not folded into the late run.
        let tr = trigger(serde_json::json!({"type": "interval", "every_s": 1,
            "start_at": "2026-11-23T10:00:00Z"}));
        let d = decide_at(
            ahead(&tr, "2026-11-23T10:00:00Z"),
            "2026-11-23T10:00:02.700Z",
        );
        assert_eq!(d.runs, [run("2026-11-23T10:00:02Z", RunStatus::Pending, 3)]);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:00:03Z")));
    }

    #[test]
    fn a_last_occurrence_is_made_when_due_and_jitter_stays_before_the_next_fire() {
        // A date: its run would complete the job before its fire time.
        let tr = trigger(serde_json::json!({"type": "date", "run_at": "2026-12-01T09:00:00Z"}));
        let d = decide_at(
            ahead(&tr, "2026-12-01T09:00:00Z"),
            "2026-12-01T08:59:59.900Z",
        );
        assert!(d.runs.is_empty());
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-12-01T09:00:00Z")));
        let d = decide_at(ahead(&tr, "2026-12-01T09:00:00Z"), "2026-12-01T09:00:00Z");
        assert_eq!(d.runs, [run("2026-12-01T09:00:00Z", RunStatus::Pending, 1)]);
        assert_eq!(d.schedule.state(), JobState::Completed);
        let tr = trigger(serde_json::json!({"type": "interval", "every_s": 10,
            "start_at": "2026-11-23T10:00:00Z", "jitter_s": 30}));
        let d = decide(
            &ahead(&tr, "2026-11-23T10:00:00Z"),
            t("2026-11-23T09:59:59.900Z"),
            &mut || 0.9,
        );
        assert_eq!(d.runs[0].scheduled_for, t("2026-11-23T10:00:00Z"));
        assert_eq!(d.runs[0].deliver_after, t("2026-11-23T10:00:10Z"));
    }

    // --- max_runs (§11.3) -------------------------------------------------

    fn limited<'a>(trigger: &'a Trigger, next: &str, left: u32) -> DueJob<'a> {
        DueJob {
            runs_remaining: Some(left),
            ..job(trigger, next)
        }
    }

    #[test]
    fn the_run_that_reaches_max_runs_completes_the_job() {
        let tr = every_minute();
        let d = decide_at(
            limited(&tr, "2026-11-23T10:00:00Z", 2),
            "2026-11-23T10:00:00Z",
        );
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Pending, 1)]);
        assert_eq!(d.runs_toward_limit(), 1);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:01:00Z")));
        let d = decide_at(
            limited(&tr, "2026-11-23T10:01:00Z", 1),
            "2026-11-23T10:01:00Z",
        );
        assert_eq!(d.runs, [run("2026-11-23T10:01:00Z", RunStatus::Pending, 1)]);
        assert_eq!(d.schedule, Schedule::Completed);
        // Nothing left (a limit reached by a change): no run.
        let d = decide_at(
            limited(&tr, "2026-11-23T10:02:00Z", 0),
            "2026-11-23T10:02:00Z",
        );
        assert_eq!((d.runs, d.schedule), (vec![], Schedule::Completed));
    }

    #[test]
    fn a_catch_up_stops_at_max_runs() {
        let tr = every_minute();
        let j = DueJob {
            coalesce: false,
            max_instances: 5,
            ..limited(&tr, "2026-11-23T10:00:00Z", 2)
        };
        let d = decide_at(j, "2026-11-23T10:03:30Z");
        assert_eq!(
            d.runs,
            [
                run("2026-11-23T10:00:00Z", RunStatus::Pending, 1),
                run("2026-11-23T10:01:00Z", RunStatus::Pending, 1),
            ]
        );
        assert_eq!(d.schedule, Schedule::Completed);
        // A coalesced catch-up is one run, counted once.
        let d = decide_at(
            limited(&tr, "2026-11-23T10:00:00Z", 2),
            "2026-11-23T10:03:30Z",
        );
        assert_eq!(d.runs, [run("2026-11-23T10:03:00Z", RunStatus::Pending, 4)]);
        assert_eq!(d.runs_toward_limit(), 1);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:04:00Z")));
    }

    #[test]
    fn skipped_and_missed_runs_do_not_count() {
        let tr = every_minute();
        // Over max_instances under `skip`: recorded skipped, the job goes on.
        let mut j = limited(&tr, "2026-11-23T10:00:00Z", 1);
        j.in_flight.admitted = 1;
        let d = decide_at(j, "2026-11-23T10:00:00Z");
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Skipped, 1)]);
        assert_eq!(d.runs_toward_limit(), 0);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:01:00Z")));
        // Beyond the misfire grace: missed, and the job goes on.
        let j = DueJob {
            misfire_grace_s: Some(10),
            ..limited(&tr, "2026-11-23T10:00:00Z", 1)
        };
        let d = decide_at(j, "2026-11-23T10:00:30Z");
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Missed, 1)]);
        assert_eq!(d.runs_toward_limit(), 0);
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:01:00Z")));
        // A run that waits (buffer_one) will be sent: it counts.
        let mut j = DueJob {
            overlap: Overlap::BufferOne,
            ..limited(&tr, "2026-11-23T10:00:00Z", 1)
        };
        j.in_flight.admitted = 1;
        let d = decide_at(j, "2026-11-23T10:00:00Z");
        assert_eq!(d.runs[0].wait_reason, Some(overlap::WAIT_OVERLAP));
        assert_eq!(d.runs_toward_limit(), 1);
        assert_eq!(d.schedule, Schedule::Completed);
    }

    #[test]
    fn the_run_that_reaches_max_runs_is_not_made_ahead() {
        let tr = every_minute();
        let early = "2026-11-23T09:59:59.800Z";
        let j = DueJob {
            lookahead: TimeDelta::milliseconds(500),
            ..limited(&tr, "2026-11-23T10:00:00Z", 1)
        };
        let d = decide_at(j, early);
        assert!(d.runs.is_empty());
        assert_eq!(d.schedule.next_run_at(), Some(t("2026-11-23T10:00:00Z")));
        let j = DueJob {
            runs_remaining: Some(2),
            ..j
        };
        let d = decide_at(j, early);
        assert_eq!(d.runs, [run("2026-11-23T10:00:00Z", RunStatus::Pending, 1)]);
        assert_eq!(d.runs_toward_limit(), 1);
    }

    #[test]
    fn under_replace_a_run_over_the_cap_goes_and_the_oldest_is_cancelled() {
        let tr = every_minute();
        let mut j = DueJob {
            overlap: Overlap::Replace,
            coalesce: false,
            ..job(&tr, "2026-11-23T10:00:00Z")
        };
        j.in_flight.admitted = 1;
        // Two due: each goes in place of the oldest in flight.
        let d = decide_at(j, "2026-11-23T10:01:00Z");
        assert_eq!(
            d.runs,
            [
                run("2026-11-23T10:00:00Z", RunStatus::Pending, 1),
                run("2026-11-23T10:01:00Z", RunStatus::Pending, 1),
            ]
        );
        assert_eq!(d.cancels, 2);
        // Room under the cap: nothing is cancelled.
        j.in_flight.admitted = 0;
        let d = decide_at(j, "2026-11-23T10:00:00Z");
        assert_eq!(d.cancels, 0);
    }
}
