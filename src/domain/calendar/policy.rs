//! What a trigger's calendars do to one occurrence (DESIGN.md §11.4):
//! keep it, skip it, or roll it to the next or previous allowed day (at
//! the same wall time) or, when a time-of-day rule excluded it, to the
//! next or previous allowed minute.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::CalendarSet;
use crate::domain::trigger::{earliest_instant, local_at};

/// How far a roll looks for an allowed day or minute: a fortnight holds a
/// Christmas-to-New-Year closure and its weekends.
pub const MAX_ROLL_DAYS: i64 = 14;

/// What becomes of an occurrence its calendars exclude.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnExcluded {
    /// No run, and none expected.
    #[default]
    Skip,
    /// The same wall time on the first allowed day after (the first allowed
    /// minute after, for a time-of-day rule); skipped past a fortnight.
    NextAllowed,
    /// The same on the last allowed day before; never at or before the
    /// previous occurrence, else skipped.
    PreviousAllowed,
}

/// A trigger's calendars, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub exclude: Vec<CalendarSet>,
    pub include_only: Vec<CalendarSet>,
    pub on_excluded: OnExcluded,
}

/// Why an instant is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// `excluded by calendar de-holidays (date 2026-12-25)`.
    pub reason: String,
    /// A time-of-day rule decided it: a roll looks for the next minute.
    pub time_of_day: bool,
    /// Every instant from this one to this is excluded too, when known.
    pub until: Option<DateTime<Utc>>,
}

/// What an occurrence becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Kept,
    Skipped(Exclusion),
    Moved(DateTime<Utc>, Exclusion),
}

const MINUTE: TimeDelta = TimeDelta::minutes(1);

impl Policy {
    /// None when `t` is allowed: in no excluded calendar, and in one of
    /// the `include_only` calendars when there are any.
    pub fn exclusion(&self, t: DateTime<Utc>) -> Option<Exclusion> {
        let mut found: Option<Exclusion> = None;
        for set in &self.exclude {
            if let Some(m) = set.membership(t) {
                let time_of_day = m.time_of_day || found.as_ref().is_some_and(|f| f.time_of_day);
                // Excluded while any of them holds it: the latest end.
                let until = match &found {
                    Some(f) => f.until.max(m.until),
                    None => m.until,
                };
                let reason = match found {
                    Some(f) => f.reason,
                    None => format!("excluded by calendar {} ({})", m.calendar, m.rule),
                };
                found = Some(Exclusion {
                    reason,
                    time_of_day,
                    until,
                });
            }
        }
        if !self.include_only.is_empty()
            && self.include_only.iter().all(|s| s.membership(t).is_none())
        {
            let ids: Vec<&str> = self.include_only.iter().map(|s| s.id.as_str()).collect();
            let time_of_day = self
                .include_only
                .iter()
                .any(CalendarSet::has_time_of_day_rules);
            return Some(match found {
                Some(f) => Exclusion {
                    time_of_day: f.time_of_day || time_of_day,
                    ..f
                },
                None => Exclusion {
                    reason: format!("outside include_only calendars {}", ids.join(", ")),
                    time_of_day,
                    until: None,
                },
            });
        }
        found
    }

    /// What becomes of the occurrence `nominal`, whose wall time is read
    /// in `zone`; `previous` is the trigger's occurrence before it.
    pub fn fate(
        &self,
        nominal: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
        zone: &TimeZone,
    ) -> Fate {
        let Some(exclusion) = self.exclusion(nominal) else {
            return Fate::Kept;
        };
        let moved = match self.on_excluded {
            OnExcluded::Skip => None,
            OnExcluded::NextAllowed if exclusion.time_of_day => self.next_minute(nominal),
            OnExcluded::NextAllowed => self.next_day(nominal, zone),
            OnExcluded::PreviousAllowed if exclusion.time_of_day => {
                self.previous_minute(nominal, previous)
            }
            OnExcluded::PreviousAllowed => self.previous_day(nominal, previous, zone),
        };
        match moved {
            Some(at) => Fate::Moved(at, exclusion),
            None => Fate::Skipped(exclusion),
        }
    }

    fn allowed(&self, t: DateTime<Utc>) -> bool {
        self.exclusion(t).is_none()
    }

    fn next_day(&self, nominal: DateTime<Utc>, zone: &TimeZone) -> Option<DateTime<Utc>> {
        let wall = local_at(zone, nominal);
        (1..=MAX_ROLL_DAYS)
            .map(|d| earliest_instant(zone, wall + TimeDelta::days(d)))
            .find(|t| *t > nominal && self.allowed(*t))
    }

    fn previous_day(
        &self,
        nominal: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
        zone: &TimeZone,
    ) -> Option<DateTime<Utc>> {
        let wall = local_at(zone, nominal);
        for d in 1..=MAX_ROLL_DAYS {
            let t = earliest_instant(zone, wall - TimeDelta::days(d));
            if previous.is_some_and(|p| t <= p) {
                return None;
            }
            if t < nominal && self.allowed(t) {
                return Some(t);
            }
        }
        None
    }

    fn next_minute(&self, nominal: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = nominal.duration_trunc(MINUTE).ok()? + MINUTE;
        let limit = nominal + TimeDelta::days(MAX_ROLL_DAYS);
        while t <= limit {
            match self.exclusion(t) {
                None => return Some(t),
                // Past the day or window that excludes it, at a whole minute.
                Some(Exclusion {
                    until: Some(until), ..
                }) if until > t + MINUTE => {
                    let floor = until.duration_trunc(MINUTE).ok()?;
                    t = if floor == until {
                        floor
                    } else {
                        floor + MINUTE
                    };
                }
                Some(_) => t += MINUTE,
            }
        }
        None
    }

    fn previous_minute(
        &self,
        nominal: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let floor = nominal.duration_trunc(MINUTE).ok()?;
        let mut t = if floor == nominal {
            floor - MINUTE
        } else {
            floor
        };
        let limit = nominal - TimeDelta::days(MAX_ROLL_DAYS);
        while t >= limit {
            if previous.is_some_and(|p| t <= p) {
                return None;
            }
            if self.allowed(t) {
                return Some(t);
            }
            t -= MINUTE;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::book_of;
    use crate::domain::trigger::zone_rules;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn policy(
        calendars: serde_json::Value,
        exclude: &[&str],
        include: &[&str],
        on: OnExcluded,
    ) -> Policy {
        let book = book_of(calendars);
        let sets = |ids: &[&str]| {
            ids.iter()
                .map(|id| CalendarSet::resolve(id, &book).unwrap())
                .collect()
        };
        Policy {
            exclude: sets(exclude),
            include_only: sets(include),
            on_excluded: on,
        }
    }

    fn business_days(on: OnExcluded) -> Policy {
        policy(
            json!([
                {"id": "weekends", "timezone": "Europe/Berlin", "rules": [{"weekdays": ["sat", "sun"]}]},
                {"id": "de", "timezone": "Europe/Berlin", "rules": [{"date": "2026-12-25"}, {"date": "2026-12-26"}, {"date": "2027-01-01"}, {"date": "2026-10-30"}]},
            ]),
            &["weekends", "de"],
            &[],
            on,
        )
    }

    fn berlin() -> TimeZone {
        zone_rules("Europe/Berlin".parse().unwrap()).unwrap()
    }

    #[test]
    fn an_allowed_occurrence_is_kept_and_skip_drops_an_excluded_one() {
        let p = business_days(OnExcluded::Skip);
        assert_eq!(
            p.fate(at("2026-12-24T17:00:00Z"), None, &berlin()),
            Fate::Kept
        );
        match p.fate(at("2026-12-25T17:00:00Z"), None, &berlin()) {
            Fate::Skipped(e) => assert_eq!(e.reason, "excluded by calendar de (date 2026-12-25)"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn next_allowed_rolls_across_a_year_end_at_the_same_wall_time() {
        let p = business_days(OnExcluded::NextAllowed);
        // Thu 31 Dec 2026 18:00 is allowed; Fri 1 Jan is a holiday, then a
        // weekend: Mon 4 Jan 18:00 CET.
        assert_eq!(
            p.fate(at("2027-01-01T17:00:00Z"), None, &berlin()),
            Fate::Moved(
                at("2027-01-04T17:00:00Z"),
                p.exclusion(at("2027-01-01T17:00:00Z")).unwrap()
            )
        );
    }

    #[test]
    fn previous_allowed_is_the_last_business_day_and_keeps_the_wall_time_across_dst() {
        let p = business_days(OnExcluded::PreviousAllowed);
        // Sat 31 Oct 2026 18:00 CET (17:00Z): Fri 30 Oct is a holiday
        // here, so Thu 29 Oct 18:00, CET too (summer time ended on the
        // 25th): 17:00Z.
        let Fate::Moved(t, _) = p.fate(at("2026-10-31T17:00:00Z"), None, &berlin()) else {
            panic!()
        };
        assert_eq!(t, at("2026-10-29T17:00:00Z"));
        // Sun 29 Mar 2026 18:00 CEST (16:00Z) → Fri 27 Mar 18:00 CET (17:00Z).
        let Fate::Moved(t, _) = p.fate(at("2026-03-29T16:00:00Z"), None, &berlin()) else {
            panic!()
        };
        assert_eq!(t, at("2026-03-27T17:00:00Z"));
        // Never at or before the previous occurrence: then skipped.
        assert!(matches!(
            p.fate(
                at("2026-03-29T16:00:00Z"),
                Some(at("2026-03-27T17:00:00Z")),
                &berlin()
            ),
            Fate::Skipped(_)
        ));
    }

    #[test]
    fn a_roll_onto_a_day_with_a_gap_lands_after_the_gap() {
        // 02:30 every day; the 28th excluded → the 29th, whose 02:30 does
        // not exist in Berlin: the end of the gap, 03:00 CEST.
        let p = policy(
            json!([{"id": "x", "timezone": "Europe/Berlin", "rules": [{"date": "2026-03-28"}]}]),
            &["x"],
            &[],
            OnExcluded::NextAllowed,
        );
        let Fate::Moved(t, _) = p.fate(at("2026-03-28T01:30:00Z"), None, &berlin()) else {
            panic!()
        };
        assert_eq!(t, at("2026-03-29T01:00:00Z"));
        // …and onto a repeated hour, the first of the two: 02:30 CEST on
        // 25 Oct (00:30Z).
        let p = policy(
            json!([{"id": "x", "timezone": "Europe/Berlin", "rules": [{"date": "2026-10-24"}]}]),
            &["x"],
            &[],
            OnExcluded::NextAllowed,
        );
        let Fate::Moved(t, _) = p.fate(at("2026-10-24T00:30:00Z"), None, &berlin()) else {
            panic!()
        };
        assert_eq!(t, at("2026-10-25T00:30:00Z"));
    }

    #[test]
    fn a_time_window_rolls_to_its_end_or_before_its_start() {
        let p = policy(
            json!([{"id": "night", "timezone": "Europe/Berlin", "rules": [{"time_window": {"from": "22:00", "to": "06:00"}}]}]),
            &["night"],
            &[],
            OnExcluded::NextAllowed,
        );
        // 23:15 Berlin (22:15Z in winter) → 06:00 → 05:00Z.
        let Fate::Moved(t, e) = p.fate(at("2026-01-05T22:15:00Z"), None, &berlin()) else {
            panic!()
        };
        assert!(e.time_of_day);
        assert_eq!(t, at("2026-01-06T05:00:00Z"));
        let p = Policy {
            on_excluded: OnExcluded::PreviousAllowed,
            ..p
        };
        let Fate::Moved(t, _) = p.fate(at("2026-01-05T22:15:30Z"), None, &berlin()) else {
            panic!()
        };
        assert_eq!(t, at("2026-01-05T20:59:00Z"));
    }

    #[test]
    fn include_only_keeps_to_business_hours_on_lord_howe() {
        let p = policy(
            json!([{"id": "hours", "timezone": "Australia/Lord_Howe", "rules": [{"time_window": {"from": "09:00", "to": "17:00"}}]}]),
            &[],
            &["hours"],
            OnExcluded::NextAllowed,
        );
        let zone = zone_rules("Australia/Lord_Howe".parse().unwrap()).unwrap();
        // 4 Oct 2026 starts +11:00 at 02:00 local (the half-hour change):
        // 08:00 local on the 4th is 21:00Z on the 3rd; 09:00 is 22:00Z.
        let e = p.exclusion(at("2026-10-03T21:00:00Z")).unwrap();
        assert_eq!(e.reason, "outside include_only calendars hours");
        let Fate::Moved(t, _) = p.fate(at("2026-10-03T21:00:00Z"), None, &zone) else {
            panic!()
        };
        assert_eq!(t, at("2026-10-03T22:00:00Z"));
    }

    #[test]
    fn nothing_allowed_within_a_fortnight_is_skipped() {
        let p = policy(
            json!([{"id": "shut", "rules": [{"range": {"from": "2026-08-01", "to": "2026-08-31"}}]}]),
            &["shut"],
            &[],
            OnExcluded::NextAllowed,
        );
        assert!(matches!(
            p.fate(at("2026-08-03T09:00:00Z"), None, &TimeZone::UTC),
            Fate::Skipped(_)
        ));
        assert_eq!(
            p.fate(at("2026-08-20T09:00:00Z"), None, &TimeZone::UTC),
            Fate::Moved(
                at("2026-09-01T09:00:00Z"),
                p.exclusion(at("2026-08-20T09:00:00Z")).unwrap()
            )
        );
    }
}
