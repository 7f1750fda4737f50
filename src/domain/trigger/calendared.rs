//! A trigger under calendars (DESIGN.md §11.4): the fire times of its base
//! trigger, each kept, skipped or rolled as its [`Policy`] decides. The
//! fire times are a set: two occurrences rolled onto one instant fire once
//! (their run stands for both, `occurrences: 2`).

use chrono::{DateTime, TimeDelta, Utc};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Trigger, zone_rules};
use crate::domain::calendar::policy::{Exclusion, Fate, MAX_ROLL_DAYS, OnExcluded, Policy};

/// Occurrences one search looks at before it gives up: a year of minutes.
const MAX_STEPS: usize = 530_000;

/// How far ahead a search looks for an allowed fire time: a trigger whose
/// calendars allow none within two years fires no more (its job
/// completes), rather than searching on and on.
fn horizon() -> TimeDelta {
    TimeDelta::days(731)
}

/// A trigger's calendars as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarsInput {
    /// Calendar ids whose instants are not fire times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// When given, only instants in one of these calendars are fire times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_only: Vec<String>,
    /// What an excluded occurrence becomes (default `skip`).
    #[serde(default)]
    pub on_excluded: OnExcluded,
}

/// A base trigger (cron, interval or any_of) and its calendars; `policy`
/// is `None` until the calendars are read (`Trigger::bind`).
#[derive(Debug, Clone, PartialEq)]
pub struct Calendared {
    pub base: Trigger,
    pub refs: CalendarsInput,
    pub policy: Option<Policy>,
}

/// What one fire time stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// The earliest occurrence it was rolled from, when not itself.
    pub nominal_for: Option<DateTime<Utc>>,
    /// How many occurrences fire at it.
    pub count: u64,
}

/// One occurrence of the base trigger and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub nominal: DateTime<Utc>,
    pub fate: Fate,
}

/// How far back an occurrence can lie whose roll lands after an instant:
/// a fortnight of days, and a daylight-saving hour.
fn roll_reach() -> TimeDelta {
    TimeDelta::days(MAX_ROLL_DAYS) + TimeDelta::hours(3)
}

impl Calendared {
    fn zone(&self) -> TimeZone {
        zone_rules(self.base.timezone()).unwrap_or(TimeZone::UTC)
    }

    /// The effective fire time of `n` under `policy`: a memo keeps the last
    /// roll to the next allowed minute, which every occurrence before it
    /// shares.
    fn fate(
        policy: &Policy,
        n: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
        zone: &TimeZone,
        memo: &mut Option<(DateTime<Utc>, DateTime<Utc>, Exclusion)>,
    ) -> Fate {
        if policy.on_excluded == OnExcluded::NextAllowed
            && let Some((from, to, why)) = memo.as_ref()
            && *from < n
            && n < *to
            && policy.exclusion(n).is_some_and(|e| e.time_of_day)
        {
            return Fate::Moved(*to, why.clone());
        }
        let fate = policy.fate(n, previous, zone);
        if let Fate::Moved(to, why) = &fate
            && why.time_of_day
        {
            *memo = Some((n, *to, why.clone()));
        }
        fate
    }

    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(policy) = &self.policy else {
            return self.base.next_after(after);
        };
        let zone = self.zone();
        let mut memo = None;
        let limit = after
            .checked_add_signed(horizon())
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        match policy.on_excluded {
            OnExcluded::Skip => {
                let mut cursor = after;
                for _ in 0..MAX_STEPS {
                    let n = self.base.next_after(cursor).filter(|n| *n <= limit)?;
                    match policy.exclusion(n) {
                        None => return Some(n),
                        // Every occurrence before the end of what excludes
                        // this one is excluded too.
                        Some(Exclusion {
                            until: Some(until), ..
                        }) if until > n => cursor = until - TimeDelta::microseconds(1),
                        Some(_) => cursor = n,
                    }
                }
                None
            }
            OnExcluded::NextAllowed => {
                let mut best: Option<DateTime<Utc>> = None;
                // Occurrences at or before `after` rolled past it.
                let mut cursor = after.checked_sub_signed(roll_reach())?;
                for _ in 0..MAX_STEPS {
                    let Some(n) = self.base.next_after(cursor).filter(|n| *n <= after) else {
                        break;
                    };
                    if let Fate::Moved(m, _) = Self::fate(policy, n, None, &zone, &mut memo)
                        && m > after
                    {
                        best = Some(best.map_or(m, |b| b.min(m)));
                    }
                    cursor = n;
                }
                // Those after it: none fires before its own instant.
                let mut cursor = after;
                for _ in 0..MAX_STEPS {
                    let Some(n) = self.base.next_after(cursor).filter(|n| *n <= limit) else {
                        break;
                    };
                    if best.is_some_and(|b| n >= b) {
                        break;
                    }
                    match Self::fate(policy, n, None, &zone, &mut memo) {
                        Fate::Kept => return Some(best.map_or(n, |b| b.min(n))),
                        Fate::Moved(m, _) => best = Some(best.map_or(m, |b| b.min(m))),
                        Fate::Skipped(_) => {}
                    }
                    cursor = n;
                }
                best
            }
            OnExcluded::PreviousAllowed => {
                let mut n = self.base.next_after(after)?;
                let mut previous = self.base.previous_before(n);
                for _ in 0..MAX_STEPS {
                    match policy.fate(n, previous, &zone) {
                        Fate::Kept => return Some(n),
                        Fate::Moved(m, _) if m > after => return Some(m),
                        _ => {}
                    }
                    previous = Some(n);
                    n = self.base.next_after(n).filter(|n| *n <= limit)?;
                }
                None
            }
        }
    }

    /// What the fire time `at` stands for: the occurrences rolled onto it.
    pub fn occurrence_at(&self, at: DateTime<Utc>) -> Occurrence {
        let single = Occurrence {
            nominal_for: None,
            count: 1,
        };
        let Some(policy) = &self.policy else {
            return single;
        };
        let (from, to) = match policy.on_excluded {
            OnExcluded::Skip => return single,
            OnExcluded::NextAllowed => (at - roll_reach(), at),
            OnExcluded::PreviousAllowed => (at, at + roll_reach()),
        };
        let landed: Vec<DateTime<Utc>> = self
            .explain(from - TimeDelta::microseconds(1), to, usize::MAX)
            .into_iter()
            .filter(|e| match e.fate {
                Fate::Kept => e.nominal == at,
                Fate::Moved(m, _) => m == at,
                Fate::Skipped(_) => false,
            })
            .map(|e| e.nominal)
            .collect();
        match landed.first() {
            None => single,
            Some(first) => Occurrence {
                nominal_for: (*first != at).then_some(*first),
                count: landed.len() as u64,
            },
        }
    }

    /// The occurrences of the base trigger in `(after, until]` and their
    /// fates, in order, at most `limit` (the preview and the agenda list
    /// them).
    pub fn explain(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<Explained> {
        let zone = self.zone();
        let mut memo = None;
        let mut out = Vec::new();
        let mut previous = self
            .base
            .previous_before(after + TimeDelta::microseconds(1));
        let mut cursor = after;
        for _ in 0..MAX_STEPS.min(limit) {
            let Some(n) = self.base.next_after(cursor).filter(|n| *n <= until) else {
                break;
            };
            let fate = match &self.policy {
                None => Fate::Kept,
                Some(p) => Self::fate(p, n, previous, &zone, &mut memo),
            };
            out.push(Explained { nominal: n, fate });
            previous = Some(n);
            cursor = n;
        }
        out
    }
}
