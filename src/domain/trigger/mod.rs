//! Triggers: when a job fires (DESIGN.md §3). Pure: every function takes
//! the instants it needs as arguments and never reads a clock.

mod any_of;
mod calendared;
mod cron;
mod date;
pub mod hashed;
mod input;
mod interval;
pub mod words;
mod zone;

pub use any_of::AnyOf;
pub use calendared::{Calendared, CalendarsInput, Explained, Occurrence};
pub use cron::CronSchedule;
pub use date::DateTrigger;
pub use input::{MAX_EVERY_S, TriggerInput, TriggerKind};
pub use interval::IntervalTrigger;
pub(crate) use zone::rules as zone_rules;
pub use zone::{UnknownZone, Zone, local_rfc3339, utc_offset_s};
pub(crate) use zone::{earliest_instant, local_at};

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Serialize, Serializer};

use crate::domain::calendar::policy::{Fate, Policy};
use crate::domain::calendar::{Book, CalendarSet};
use crate::domain::error::FieldError;

/// Jitter delays delivery, never the schedule; capped at a day.
pub const MAX_JITTER_S: u32 = 86_400;

/// A validated trigger. Built only by [`Trigger::parse`], so it always
/// holds a pattern that fires, a known time zone and ordered bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Cron(CronTrigger),
    Interval(IntervalTrigger),
    Date(DateTrigger),
    /// Several cron and interval triggers as one (§11.4).
    AnyOf(AnyOf),
    /// A cron, interval or any_of trigger under calendars (§11.4).
    Calendared(Box<Calendared>),
}

/// What binds a trigger to its job (DESIGN.md §11.4): the seed `H` is
/// hashed from (tenant and job id), and the tenant's calendars.
#[derive(Debug, Clone, Default)]
pub struct Binding {
    pub seed: String,
    pub calendars: Arc<Book>,
}

/// A cron pattern with its bounds (both inclusive) and delivery jitter.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    pub schedule: CronSchedule,
    /// The expression as written when it holds `H` (`schedule` is then its
    /// resolution for the job).
    pub source: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub jitter_s: u32,
}

impl PartialEq for CronTrigger {
    fn eq(&self, other: &Self) -> bool {
        self.schedule.expr() == other.schedule.expr()
            && self.source == other.source
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
            Trigger::AnyOf(t) => t.next_after(after),
            Trigger::Calendared(t) => t.next_after(after),
        };
        next.filter(|t| crate::domain::instant::representable(*t))
    }

    /// What the fire time `at` stands for: more than one occurrence, or
    /// another, when calendars rolled them onto it (§11.4).
    pub fn occurrence_at(&self, at: DateTime<Utc>) -> Occurrence {
        match self {
            Trigger::Calendared(c) => c.occurrence_at(at),
            _ => Occurrence {
                nominal_for: None,
                count: 1,
            },
        }
    }

    /// True when calendars may roll its occurrences (then a run asks
    /// [`Self::occurrence_at`] what it stands for).
    pub fn rolls(&self) -> bool {
        matches!(self, Trigger::Calendared(c) if c.policy.as_ref().is_some_and(|p| p.on_excluded != crate::domain::calendar::policy::OnExcluded::Skip))
    }

    /// Its occurrences in `(after, until]` and what became of each, at
    /// most `limit` of them.
    pub fn explain(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<Explained> {
        match self {
            Trigger::Calendared(c) => c.explain(after, until, limit),
            _ => self
                .fire_times_after(after)
                .take_while(|t| *t <= until)
                .take(limit)
                .map(|nominal| Explained {
                    nominal,
                    fate: Fate::Kept,
                })
                .collect(),
        }
    }

    /// The calendars it refers to, and those they include.
    pub fn calendar_ids(&self) -> Vec<String> {
        let Trigger::Calendared(c) = self else {
            return Vec::new();
        };
        let mut ids: Vec<String> = c
            .refs
            .exclude
            .iter()
            .chain(&c.refs.include_only)
            .cloned()
            .collect();
        if let Some(p) = &c.policy {
            ids.extend(
                p.exclude
                    .iter()
                    .chain(&p.include_only)
                    .flat_map(|s| s.ids().map(str::to_string)),
            );
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// The trigger bound to its job: `H` hashed from the job's seed, its
    /// calendars read from the tenant's (refused when one is missing).
    pub fn bind(self, binding: &Binding, field: &str) -> Result<Trigger, FieldError> {
        Ok(match self {
            Trigger::Cron(mut c) => {
                if let Some(source) = &c.source {
                    let resolved = hashed::resolve(source, &binding.seed)
                        .map_err(|m| FieldError::new(format!("{field}.expr"), m))?;
                    c.schedule = CronSchedule::parse_cached(&resolved, c.schedule.timezone())
                        .map_err(|m| FieldError::new(format!("{field}.expr"), m))?;
                }
                Trigger::Cron(c)
            }
            Trigger::AnyOf(mut a) => {
                let seed = binding.seed.clone();
                for (i, t) in std::mem::take(&mut a.triggers).into_iter().enumerate() {
                    let part = Binding {
                        seed: format!("{seed}#{i}"),
                        calendars: binding.calendars.clone(),
                    };
                    a.triggers
                        .push(t.bind(&part, &format!("{field}.triggers[{i}]"))?);
                }
                Trigger::AnyOf(a)
            }
            Trigger::Calendared(c) => {
                let Calendared { base, refs, .. } = *c;
                let sets = |ids: &[String], name: &str| {
                    ids.iter()
                        .enumerate()
                        .map(|(i, id)| {
                            CalendarSet::resolve(id, &binding.calendars).map_err(|m| {
                                FieldError::new(format!("{field}.calendars.{name}[{i}]"), m)
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                let policy = Policy {
                    exclude: sets(&refs.exclude, "exclude")?,
                    include_only: sets(&refs.include_only, "include_only")?,
                    on_excluded: refs.on_excluded,
                };
                Trigger::Calendared(Box::new(Calendared {
                    base: base.bind(binding, field)?,
                    refs,
                    policy: Some(policy),
                }))
            }
            other => other,
        })
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
            Trigger::AnyOf(t) => t.jitter_s,
            Trigger::Calendared(t) => t.base.jitter_s(),
        }
    }

    /// The zone fire times are shown in: the cron zone, else UTC.
    pub fn timezone(&self) -> Zone {
        match self {
            Trigger::Cron(t) => t.schedule.timezone(),
            Trigger::AnyOf(t) => t.timezone,
            Trigger::Calendared(t) => t.base.timezone(),
            _ => Zone::UTC,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Cron(_) => "cron",
            Trigger::Interval(_) => "interval",
            Trigger::Date(_) => "date",
            Trigger::AnyOf(_) => "any_of",
            Trigger::Calendared(t) => t.base.kind(),
        }
    }

    /// The trigger in its canonical input form, as stored and returned.
    pub fn to_input(&self) -> TriggerInput {
        match self {
            Trigger::Cron(t) => TriggerInput {
                kind: Some(input::TriggerKind::Cron),
                expr: Some(
                    t.source
                        .clone()
                        .unwrap_or_else(|| t.schedule.expr().to_string()),
                ),
                resolved_expr: t.source.as_ref().map(|_| t.schedule.expr().to_string()),
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
            Trigger::AnyOf(t) => TriggerInput {
                kind: Some(input::TriggerKind::AnyOf),
                timezone: Some(t.timezone.name().to_string()),
                jitter_s: Some(t.jitter_s.into()),
                triggers: Some(
                    t.triggers
                        .iter()
                        .map(|part| TriggerInput {
                            // The zone is the whole trigger's; no jitter of
                            // its own.
                            timezone: None,
                            jitter_s: None,
                            ..part.to_input()
                        })
                        .collect(),
                ),
                ..TriggerInput::default()
            },
            Trigger::Calendared(t) => TriggerInput {
                calendars: Some(t.refs.clone()),
                ..t.base.to_input()
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
