//! Backfill (DESIGN.md §11.3): a run for every occurrence of a range that
//! has none — or, reprocessing, a new one beside it — sent one after
//! another in `scheduled_for` order under the backfill's own overlap
//! policy. Pure: the store reads the occurrences' runs and the backfill
//! runs in flight under the job's lock, and writes what [`plan`] answers.
//!
//! A backfill's runs are a lane of their own beside the job's scheduled
//! runs: at most `max_instances` of them are in flight, each end releases
//! the next, and they neither wait for nor hold back the job's own runs
//! (whose ends need not be watched for a backfill made meanwhile).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::error::FieldError;
use crate::domain::instant;
use crate::domain::overlap::{self, Admission, InFlight, Overlap};
use crate::domain::run::RunStatus;
use crate::domain::trigger::Trigger;

/// The most runs one backfill makes, and its default `max`.
pub const MAX_BACKFILL_RUNS: u32 = 10_000;

/// A backfill's waiting runs: pending until a run of the backfill ends.
pub const WAIT_BACKFILL: &str = "backfill";

/// `POST /v1/jobs/{id}/backfill`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillInput {
    /// The range's first instant (inclusive).
    #[serde(default, with = "instant::rfc3339_opt")]
    #[schema(value_type = String, format = DateTime, required = true)]
    pub from: Option<DateTime<Utc>>,
    /// The range's last instant (inclusive); may be in the future (those
    /// runs wait for their instant).
    #[serde(default, with = "instant::rfc3339_opt")]
    #[schema(value_type = String, format = DateTime, required = true)]
    pub to: Option<DateTime<Utc>>,
    /// What a run over the job's `max_instances` does (default
    /// `buffer_all`: every run waits its turn, in order); `skip` or
    /// `buffer_one` drop the rest.
    #[serde(default)]
    pub overlap: Option<BackfillOverlap>,
    /// List the occurrences and which have runs; make nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Make a new run (`replay_of`) for occurrences that have one too.
    #[serde(default)]
    pub reprocess: Option<bool>,
    /// The most occurrences the range may hold (default and ceiling
    /// 10000); a range with more is refused.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub max: Option<i64>,
}

/// A backfill's overlap policy: the job's, but `replace` (which would
/// cancel the backfill's own runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackfillOverlap {
    Skip,
    BufferOne,
    #[default]
    BufferAll,
}

/// A validated backfill request.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillSpec {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub overlap: Overlap,
    pub dry_run: bool,
    pub reprocess: bool,
    pub max: u32,
}

impl BackfillInput {
    pub fn parse(self) -> Result<BackfillSpec, FieldError> {
        let from = self
            .from
            .ok_or_else(|| FieldError::new("from", "is required"))?;
        let to = self
            .to
            .ok_or_else(|| FieldError::new("to", "is required"))?;
        if to < from {
            return Err(FieldError::new("to", "must not be before from"));
        }
        let max = match self.max {
            None => MAX_BACKFILL_RUNS,
            Some(n) if (1..=i64::from(MAX_BACKFILL_RUNS)).contains(&n) => n as u32,
            Some(n) => {
                return Err(FieldError::new(
                    "max",
                    format!("must be between 1 and {MAX_BACKFILL_RUNS}, got {n}"),
                ));
            }
        };
        let overlap = match self.overlap.unwrap_or_default() {
            BackfillOverlap::Skip => Overlap::Skip,
            BackfillOverlap::BufferOne => Overlap::BufferOne,
            // Every run of the range may wait its turn.
            BackfillOverlap::BufferAll => Overlap::BufferAll { buffer_max: max },
        };
        Ok(BackfillSpec {
            from,
            to,
            overlap,
            dry_run: self.dry_run.unwrap_or(false),
            reprocess: self.reprocess.unwrap_or(false),
            max,
        })
    }
}

/// The trigger's occurrences in `[from, to]`, in order; a range with more
/// than `max` is refused, naming the count.
pub fn occurrences(
    trigger: &Trigger,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: u32,
) -> Result<Vec<DateTime<Utc>>, FieldError> {
    let first = match trigger {
        // A date trigger's one occurrence, wherever it lies.
        Trigger::Date(d) => Some(d.run_at),
        _ => trigger.next_at_or_after(from),
    };
    let mut found = Vec::new();
    let mut next = first;
    while let Some(at) = next.filter(|at| *at >= from && *at <= to) {
        if found.len() == max as usize {
            return Err(FieldError::new(
                "max",
                format!(
                    "the range holds more than {max} occurrences; backfill at most {max} at once (a shorter range, or a larger max up to {MAX_BACKFILL_RUNS})"
                ),
            ));
        }
        found.push(at);
        next = trigger.next_after_fire(at);
    }
    Ok(found)
}

/// One run a backfill makes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub scheduled_for: DateTime<Utc>,
    /// The run of the occurrence it replays (reprocessing).
    pub replay_of: Option<Uuid>,
    pub status: RunStatus,
    /// `backfill` while it waits for a run of the backfill to end.
    pub wait_reason: Option<&'static str>,
    /// Why it is skipped.
    pub reason: Option<&'static str>,
}

/// The runs for `occurrences` (in order): one for each that has no run in
/// `existing`, and with `reprocess` one beside each that has; admitted in
/// order through `overlap` against the backfill runs of the job in flight.
pub fn plan(
    occurrences: &[DateTime<Utc>],
    existing: &HashMap<DateTime<Utc>, Uuid>,
    spec: &BackfillSpec,
    max_instances: u32,
    mut in_flight: InFlight,
) -> Vec<PlannedRun> {
    occurrences
        .iter()
        .filter_map(|at| match existing.get(at) {
            Some(run) if spec.reprocess => Some((*at, Some(*run))),
            Some(_) => None,
            None => Some((*at, None)),
        })
        .map(|(scheduled_for, replay_of)| {
            let admission = overlap::admit(spec.overlap, max_instances, &mut in_flight, false);
            let (status, _, reason) = admission.run_fields();
            PlannedRun {
                scheduled_for,
                replay_of,
                status,
                wait_reason: (admission == Admission::Wait).then_some(WAIT_BACKFILL),
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;
    use crate::domain::trigger::TriggerInput;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        parse(s).unwrap()
    }

    fn trigger(v: serde_json::Value) -> Trigger {
        serde_json::from_value::<TriggerInput>(v)
            .unwrap()
            .parse(at("2026-01-01T00:00:00Z"), "trigger")
            .unwrap()
    }

    fn spec(v: serde_json::Value) -> Result<BackfillSpec, String> {
        serde_json::from_value::<BackfillInput>(v)
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn occurrences_of_a_range_in_the_jobs_zone_inclusive() {
        let daily =
            trigger(json!({"type": "cron", "expr": "0 2 * * *", "timezone": "Europe/Berlin"}));
        let found = occurrences(
            &daily,
            at("2026-03-28T01:00:00Z"),
            at("2026-03-30T00:00:00Z"),
            10,
        )
        .unwrap();
        // 02:00 does not exist on 29 March in Berlin: that run is at 03:00.
        assert_eq!(
            found,
            [
                at("2026-03-28T01:00:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-30T00:00:00Z")
            ]
        );
        let e = occurrences(
            &daily,
            at("2026-01-01T00:00:00Z"),
            at("2026-12-31T00:00:00Z"),
            100,
        )
        .unwrap_err();
        assert_eq!(e.field, "max");
        assert!(
            e.message
                .starts_with("the range holds more than 100 occurrences"),
            "{e}"
        );
        let once = trigger(json!({"type": "date", "run_at": "2026-02-01T00:00:00Z"}));
        assert_eq!(
            occurrences(
                &once,
                at("2026-01-01T00:00:00Z"),
                at("2026-03-01T00:00:00Z"),
                5
            )
            .unwrap()
            .len(),
            1
        );
        assert!(
            occurrences(
                &once,
                at("2026-03-01T00:00:00Z"),
                at("2026-04-01T00:00:00Z"),
                5
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn requests_are_checked_naming_the_field() {
        let ok =
            spec(json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"})).unwrap();
        assert_eq!(
            (ok.overlap, ok.max, ok.dry_run, ok.reprocess),
            (
                Overlap::BufferAll { buffer_max: 10_000 },
                10_000,
                false,
                false
            )
        );
        assert!(
            spec(json!({"to": "2026-01-02T00:00:00Z"}))
                .unwrap_err()
                .starts_with("from: is required")
        );
        assert!(
            spec(json!({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}))
                .unwrap_err()
                .starts_with("to: must not be before")
        );
        assert!(
            spec(
                json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "max": 10001})
            )
            .unwrap_err()
            .starts_with("max: must be between 1 and 10000")
        );
        assert!(spec(json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "overlap": "replace"})).unwrap_err().contains("unknown variant `replace`"));
    }

    #[test]
    fn plan_makes_runs_for_occurrences_without_one_in_order_one_at_a_time() {
        let days = [
            at("2026-01-01T00:00:00Z"),
            at("2026-01-02T00:00:00Z"),
            at("2026-01-03T00:00:00Z"),
            at("2026-01-04T00:00:00Z"),
        ];
        let had = Uuid::from_u128(1);
        let existing = HashMap::from([(days[1], had)]);
        let s =
            spec(json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-04T00:00:00Z"})).unwrap();
        let runs = plan(&days, &existing, &s, 1, InFlight::default());
        let seen: Vec<_> = runs
            .iter()
            .map(|r| (r.scheduled_for, r.status, r.wait_reason))
            .collect();
        assert_eq!(
            seen,
            [
                (days[0], RunStatus::Pending, None),
                (days[2], RunStatus::Pending, Some(WAIT_BACKFILL)),
                (days[3], RunStatus::Pending, Some(WAIT_BACKFILL)),
            ]
        );
        // A backfill run already in flight: every new one waits.
        let busy = InFlight {
            admitted: 1,
            waiting: 0,
        };
        assert!(
            plan(&days, &existing, &s, 1, busy)
                .iter()
                .all(|r| r.wait_reason.is_some())
        );
        // Reprocessing replays the occurrence that had a run.
        let again = BackfillSpec {
            reprocess: true,
            ..s.clone()
        };
        let runs = plan(&days, &existing, &again, 4, InFlight::default());
        assert_eq!(runs.len(), 4);
        assert_eq!(runs[1].replay_of, Some(had));
        assert!(runs.iter().all(|r| r.wait_reason.is_none()));
        // Under skip, the runs past the cap are skipped, as the job's own would be.
        let skip = spec(json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-04T00:00:00Z", "overlap": "skip"})).unwrap();
        let runs = plan(&days, &HashMap::new(), &skip, 2, InFlight::default());
        let statuses: Vec<_> = runs.iter().map(|r| (r.status, r.reason)).collect();
        assert_eq!(
            statuses,
            [
                (RunStatus::Pending, None),
                (RunStatus::Pending, None),
                (RunStatus::Skipped, Some("max_instances")),
                (RunStatus::Skipped, Some("max_instances")),
            ]
        );
    }
}
