//! Triggers: when a job fires (DESIGN.md §3). Pure: every function takes
//! the instants it needs as arguments and never reads a clock.

mod cron;
mod date;
mod input;
mod interval;
pub mod words;
mod zone;

pub use cron::CronSchedule;
pub use date::DateTrigger;
pub use input::{MAX_EVERY_S, TriggerInput};
pub use interval::IntervalTrigger;
pub(crate) use zone::rules as zone_rules;
pub use zone::{local_rfc3339, utc_offset_s};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

/// Jitter delays delivery, never the schedule; capped at a day.
pub const MAX_JITTER_S: u32 = 86_400;

/// A validated trigger. Built only by [`Trigger::parse`], so it always
/// holds a pattern that fires, a known time zone and ordered bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Cron(CronTrigger),
    Interval(IntervalTrigger),
    Date(DateTrigger),
}

/// A cron pattern with its bounds (both inclusive) and delivery jitter.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    pub schedule: CronSchedule,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub jitter_s: u32,
}

impl PartialEq for CronTrigger {
    fn eq(&self, other: &Self) -> bool {
        self.schedule.expr() == other.schedule.expr()
            && self.schedule.timezone() == other.schedule.timezone()
            && self.start_at == other.start_at
            && self.end_at == other.end_at
            && self.jitter_s == other.jitter_s
    }
}

impl CronTrigger {
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // start_at is inclusive: search from just before it.
        let from = match self.start_at {
            Some(start) if start > after => start - TimeDelta::microseconds(1),
            _ => after,
        };
        let next = self.schedule.next_after(from)?;
        match self.end_at {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }
}

impl Trigger {
    /// The first fire time strictly after `after`, in UTC. None past the
    /// year 9999: such an instant could not be written as RFC 3339.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = match self {
            Trigger::Cron(t) => t.next_after(after),
            Trigger::Interval(t) => t.next_after(after),
            Trigger::Date(t) => t.next_after(after),
        };
        next.filter(|t| crate::domain::instant::representable(*t))
    }

    /// The fire time that follows one that has just fired: none for a date
    /// trigger, whose one fire may have been a forced `next_run_at`.
    pub fn next_after_fire(&self, fired: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Date(_) => None,
            _ => self.next_after(fired),
        }
    }

    /// The first fire time at or after `at`.
    pub fn next_at_or_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(at - TimeDelta::microseconds(1))
    }

    /// The fire times strictly after `after`, in order.
    pub fn fire_times_after(&self, after: DateTime<Utc>) -> FireTimes<'_> {
        FireTimes {
            trigger: self,
            cursor: after,
        }
    }

    /// The first fire time of a job created (or given this trigger) at
    /// `now`: a date trigger fires at `run_at` even when that is past (the
    /// misfire grace then decides); the others fire from `now` on.
    pub fn first_fire_time(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Date(t) => Some(t.run_at),
            _ => self.next_at_or_after(now),
        }
    }

    /// The last fire time strictly before `at`: none for a date trigger,
    /// or before the first. Searched forward from ever wider windows
    /// behind `at` (a minute, up to eight years), so a frequent pattern
    /// costs a few steps and a rare one a few windows (§11.2's
    /// `prev.scheduled_for`).
    pub fn previous_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        const WINDOWS_S: [i64; 6] = [
            60,
            3_600,
            86_400,
            32 * 86_400,
            400 * 86_400,
            8 * 366 * 86_400,
        ];
        const MOST_STEPS: usize = 100_000;
        if matches!(self, Trigger::Date(_)) {
            return None;
        }
        for window in WINDOWS_S {
            let mut cursor = at.checked_sub_signed(TimeDelta::seconds(window))?;
            let mut last = None;
            for _ in 0..MOST_STEPS {
                match self.next_after(cursor) {
                    Some(t) if t < at => {
                        last = Some(t);
                        cursor = t;
                    }
                    _ => break,
                }
            }
            if last.is_some() {
                return last;
            }
        }
        None
    }

    /// Seconds of random delivery delay, 0 for none.
    pub fn jitter_s(&self) -> u32 {
        match self {
            Trigger::Cron(t) => t.jitter_s,
            Trigger::Interval(t) => t.jitter_s,
            Trigger::Date(_) => 0,
        }
    }

    /// The zone fire times are shown in: the cron zone, else UTC.
    pub fn timezone(&self) -> Tz {
        match self {
            Trigger::Cron(t) => t.schedule.timezone(),
            _ => Tz::UTC,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Cron(_) => "cron",
            Trigger::Interval(_) => "interval",
            Trigger::Date(_) => "date",
        }
    }

    /// The trigger in its canonical input form, as stored and returned.
    pub fn to_input(&self) -> TriggerInput {
        match self {
            Trigger::Cron(t) => TriggerInput {
                kind: Some(input::TriggerKind::Cron),
                expr: Some(t.schedule.expr().to_string()),
                timezone: Some(t.schedule.timezone().name().to_string()),
                start_at: t.start_at,
                end_at: t.end_at,
                jitter_s: Some(t.jitter_s.into()),
                ..TriggerInput::default()
            },
            Trigger::Interval(t) => TriggerInput {
                kind: Some(input::TriggerKind::Interval),
                every_s: Some(t.every_s as i64),
                start_at: Some(t.start_at),
                end_at: t.end_at,
                jitter_s: Some(t.jitter_s.into()),
                ..TriggerInput::default()
            },
            Trigger::Date(t) => TriggerInput {
                kind: Some(input::TriggerKind::Date),
                run_at: Some(t.run_at),
                ..TriggerInput::default()
            },
        }
    }
}

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_input().serialize(s)
    }
}

/// Iterator over fire times; see [`Trigger::fire_times_after`].
pub struct FireTimes<'a> {
    trigger: &'a Trigger,
    cursor: DateTime<Utc>,
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.trigger.next_after(self.cursor)?;
        self.cursor = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;
    use serde_json::json;

    fn trigger(v: serde_json::Value) -> Trigger {
        let input: TriggerInput = serde_json::from_value(v).unwrap();
        input
            .parse(parse("2026-01-01T00:00:00Z").unwrap(), "trigger")
            .unwrap()
    }

    #[test]
    fn previous_fire_time_of_a_cron_in_its_zone() {
        let t = trigger(json!({"type": "cron", "expr": "0 2 * * *", "timezone": "Europe/Berlin"}));
        let at = parse("2026-03-30T00:00:00Z").unwrap();
        // 02:00 on 29 March does not exist in Berlin (DST): the run is at
        // 03:00 CEST, 01:00Z.
        assert_eq!(
            t.previous_before(at),
            Some(parse("2026-03-29T01:00:00Z").unwrap())
        );
        let monthly = trigger(json!({"type": "cron", "expr": "0 0 1 * *", "timezone": "UTC"}));
        assert_eq!(
            monthly.previous_before(parse("2026-03-01T00:00:00Z").unwrap()),
            Some(parse("2026-02-01T00:00:00Z").unwrap())
        );
    }

    #[test]
    fn previous_fire_time_of_an_interval_and_none_before_the_first() {
        let t =
            trigger(json!({"type": "interval", "every_s": 90, "start_at": "2026-01-01T00:00:00Z"}));
        assert_eq!(
            t.previous_before(parse("2026-01-01T00:03:00Z").unwrap()),
            Some(parse("2026-01-01T00:01:30Z").unwrap())
        );
        assert_eq!(
            t.previous_before(parse("2026-01-01T00:00:00Z").unwrap()),
            None
        );
        let date = trigger(json!({"type": "date", "run_at": "2026-02-01T00:00:00Z"}));
        assert_eq!(
            date.previous_before(parse("2026-03-01T00:00:00Z").unwrap()),
            None
        );
    }
}
