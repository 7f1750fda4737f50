//! The agenda (DESIGN.md §11.4): the coming occurrences of many jobs in
//! one list, in time order, with those their calendars exclude or move and
//! the reason, and the ones a daylight-saving change shifts marked.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::calendar::policy::{Fate, MAX_ROLL_DAYS};
use crate::domain::trigger::{Trigger, local_rfc3339, utc_offset_s};

/// The longest range an agenda covers.
pub const MAX_DAYS: i64 = 31;
/// The most items it lists.
pub const MAX_ITEMS: usize = 10_000;

/// One occurrence of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaItem {
    pub job_id: String,
    /// When it fires (or would have, when excluded).
    pub at: DateTime<Utc>,
    /// `at` as wall time in the job's zone.
    pub local: String,
    /// The occurrence its calendars moved to `at`.
    pub nominal_for: Option<DateTime<Utc>>,
    /// Its calendars exclude it: no run.
    pub excluded: bool,
    /// Why it is excluded or moved.
    pub reason: Option<String>,
    /// The change of UTC offset in the 24 hours before `at` (`+01:00`),
    /// when a daylight-saving change moved its wall time against UTC.
    pub dst_shift: Option<String>,
}

/// The agenda of `jobs` (id and trigger) for `(from, to]`: at most `limit`
/// items, in `at` order (then job id).
pub fn agenda(
    jobs: &[(String, Trigger)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Vec<AgendaItem> {
    // Each job's entries in order, merged by a heap; only the `limit`
    // taken are written out (their local time, their DST mark).
    let mut lists: Vec<std::vec::IntoIter<Entry>> = jobs
        .iter()
        .map(|(_, trigger)| entries(trigger, from, to, limit).into_iter())
        .collect();
    let mut heap = BinaryHeap::new();
    for (i, list) in lists.iter_mut().enumerate() {
        if let Some(entry) = list.next() {
            heap.push(Reverse((entry.at, &jobs[i].0, i, entry)));
        }
    }
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(Reverse((_, _, i, entry))) = heap.pop() else {
            break;
        };
        let (id, trigger) = &jobs[i];
        out.push(entry.finish(id, trigger));
        if let Some(next) = lists[i].next() {
            heap.push(Reverse((next.at, id, i, next)));
        }
    }
    out
}

/// One occurrence before it is written out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: DateTime<Utc>,
    excluded: bool,
    nominal_for: Option<DateTime<Utc>>,
    reason: Option<String>,
}

impl Entry {
    fn finish(self, job_id: &str, trigger: &Trigger) -> AgendaItem {
        let zone = trigger.timezone();
        let shift = utc_offset_s(self.at, zone) - utc_offset_s(self.at - TimeDelta::days(1), zone);
        AgendaItem {
            job_id: job_id.to_string(),
            at: self.at,
            local: local_rfc3339(self.at, zone),
            nominal_for: self.nominal_for,
            excluded: self.excluded,
            reason: self.reason,
            dst_shift: (shift != 0).then(|| offset_text(shift)),
        }
    }
}

impl PartialOrd for AgendaItem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AgendaItem {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (
            self.at,
            &self.job_id,
            self.excluded,
            self.nominal_for,
            &self.reason,
        )
            .cmp(&(
                other.at,
                &other.job_id,
                other.excluded,
                other.nominal_for,
                &other.reason,
            ))
    }
}

/// One job's items in `(from, to]`, in order.
pub fn job_items(
    job_id: &str,
    trigger: &Trigger,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Vec<AgendaItem> {
    entries(trigger, from, to, limit)
        .into_iter()
        .map(|e| e.finish(job_id, trigger))
        .collect()
}

fn entries(trigger: &Trigger, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Vec<Entry> {
    // An occurrence before `from` (or after `to`) may be rolled into the
    // range.
    let reach = if trigger.rolls() {
        TimeDelta::days(MAX_ROLL_DAYS + 1)
    } else {
        TimeDelta::zero()
    };
    let kept = |at| Entry {
        at,
        excluded: false,
        nominal_for: None,
        reason: None,
    };
    let mut entries: Vec<Entry> = trigger
        .explain(
            from - reach,
            to + reach,
            if reach.is_zero() { limit } else { usize::MAX },
        )
        .into_iter()
        .map(|e| match e.fate {
            Fate::Kept => kept(e.nominal),
            Fate::Skipped(why) => Entry {
                excluded: true,
                reason: Some(why.reason),
                ..kept(e.nominal)
            },
            Fate::Moved(at, why) => Entry {
                nominal_for: Some(e.nominal),
                reason: Some(why.reason),
                ..kept(at)
            },
        })
        .filter(|e| e.at > from && e.at <= to)
        .collect();
    if !reach.is_zero() {
        entries.sort();
    }
    entries.truncate(limit);
    entries
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", s / 3600, s % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::book_of;
    use crate::domain::trigger::{Binding, TriggerInput};
    use serde_json::json;
    use std::sync::Arc;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn trigger(v: serde_json::Value, calendars: serde_json::Value) -> Trigger {
        let book = book_of(calendars);
        let input: TriggerInput = serde_json::from_value(v).unwrap();
        input
            .parse(at("2026-01-01T00:00:00Z"), "trigger")
            .unwrap()
            .bind(
                &Binding {
                    seed: "t/j".into(),
                    calendars: Arc::new(book),
                },
                "trigger",
            )
            .unwrap()
    }

    #[test]
    fn excluded_and_moved_occurrences_carry_their_reason_and_dst_is_marked() {
        let cal =
            json!([{"id": "hol", "timezone": "Europe/Berlin", "rules": [{"date": "2026-03-27"}]}]);
        let skip = trigger(
            json!({"type": "cron", "expr": "0 9 * * *", "timezone": "Europe/Berlin", "calendars": {"exclude": ["hol"]}}),
            cal.clone(),
        );
        let moved = trigger(
            json!({"type": "cron", "expr": "0 18 * * *", "timezone": "Europe/Berlin", "calendars": {"exclude": ["hol"], "on_excluded": "next_allowed"}}),
            cal,
        );
        let jobs = vec![("a".to_string(), skip), ("b".to_string(), moved)];
        let items = agenda(
            &jobs,
            at("2026-03-26T12:00:00Z"),
            at("2026-03-30T00:00:00Z"),
            100,
        );
        let shown: Vec<(String, &str, bool, Option<&str>)> = items
            .iter()
            .map(|i| {
                (
                    i.local.clone(),
                    i.job_id.as_str(),
                    i.excluded,
                    i.dst_shift.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("2026-03-26T18:00:00+01:00".to_string(), "b", false, None),
                ("2026-03-27T09:00:00+01:00".to_string(), "a", true, None),
                ("2026-03-28T09:00:00+01:00".to_string(), "a", false, None),
                ("2026-03-28T18:00:00+01:00".to_string(), "b", false, None),
                ("2026-03-28T18:00:00+01:00".to_string(), "b", false, None),
                (
                    "2026-03-29T09:00:00+02:00".to_string(),
                    "a",
                    false,
                    Some("+01:00")
                ),
                (
                    "2026-03-29T18:00:00+02:00".to_string(),
                    "b",
                    false,
                    Some("+01:00")
                ),
            ]
        );
        let excluded = &items[1];
        assert_eq!(
            excluded.reason.as_deref(),
            Some("excluded by calendar hol (date 2026-03-27)")
        );
        let rolled = items.iter().find(|i| i.nominal_for.is_some()).unwrap();
        assert_eq!(rolled.nominal_for, Some(at("2026-03-27T17:00:00Z")));
        assert_eq!(rolled.at, at("2026-03-28T17:00:00Z"));
    }

    #[test]
    fn the_limit_takes_the_earliest_across_jobs() {
        let every = |s: i64| {
            trigger(
                json!({"type": "interval", "every_s": s, "start_at": "2026-01-01T00:00:00Z"}),
                json!([]),
            )
        };
        let jobs = vec![
            ("slow".to_string(), every(3600)),
            ("fast".to_string(), every(600)),
        ];
        let items = agenda(
            &jobs,
            at("2026-01-01T00:00:00Z"),
            at("2026-01-02T00:00:00Z"),
            8,
        );
        let ids: Vec<&str> = items.iter().map(|i| i.job_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "fast", "fast", "fast", "fast", "fast", "fast", "slow", "fast"
            ]
        );
    }
}
