//! A calendar with those it includes, flattened and indexed: what a job's
//! trigger keeps of its calendars (their snapshot), so that asking whether
//! an instant is in one reads no store.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::trigger::Zone;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use jiff::tz::TimeZone;

use super::{Calendar, CalendarInput, Rule, weekday_bit};
use crate::domain::trigger::{CronSchedule, earliest_instant, local_at, zone_rules};

/// A tenant's calendars by id.
pub type Book = BTreeMap<String, Calendar>;

/// Why an instant is in a calendar: the calendar whose rule holds it, the
/// rule, and whether a time-of-day rule holds it (then a roll looks for
/// the next allowed instant, not the next allowed day; §11.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub calendar: String,
    pub rule: String,
    pub time_of_day: bool,
    /// An instant before which every instant from this one on is in the
    /// calendar too, when one is known: the end of the day or time window
    /// that holds it (a search for the next allowed minute jumps there).
    pub until: Option<DateTime<Utc>>,
}

/// One calendar's own rules, indexed, in its own zone.
#[derive(Debug, Clone)]
struct Part {
    calendar: Calendar,
    zone: TimeZone,
    dates: BTreeSet<NaiveDate>,
    ranges: Vec<(NaiveDate, NaiveDate)>,
    annual: Vec<(u32, u32)>,
    weekdays: u8,
    windows: Vec<(NaiveTime, NaiveTime)>,
    crons: Vec<CronSchedule>,
}

/// A calendar and every calendar it includes, each in its own zone.
#[derive(Debug, Clone)]
pub struct CalendarSet {
    pub id: String,
    parts: Vec<Part>,
}

impl PartialEq for CalendarSet {
    fn eq(&self, other: &Self) -> bool {
        self.snapshot() == other.snapshot()
    }
}

impl Part {
    fn of(calendar: &Calendar) -> Self {
        let mut part = Part {
            zone: zone_rules(calendar.timezone).unwrap_or(TimeZone::UTC),
            calendar: Calendar {
                rules: Vec::new(),
                ..calendar.clone()
            },
            dates: BTreeSet::new(),
            ranges: Vec::new(),
            annual: Vec::new(),
            weekdays: 0,
            windows: Vec::new(),
            crons: Vec::new(),
        };
        for rule in &calendar.rules {
            match rule {
                Rule::Date(d) => drop(part.dates.insert(*d)),
                Rule::Range(a, b) => part.ranges.push((*a, *b)),
                Rule::Annual(m, d) => part.annual.push((*m, *d)),
                Rule::Weekdays(mask) => part.weekdays |= mask,
                Rule::TimeWindow(a, b) => part.windows.push((*a, *b)),
                Rule::Cron(c) => part.crons.push(c.clone()),
                // Flattened by the set: a part keeps only its own rules.
                Rule::Calendar(_) => continue,
            }
            part.calendar.rules.push(rule.clone());
        }
        part
    }

    /// The rule of this calendar that holds `t`, day rules first; and
    /// whether a time-of-day rule holds it too.
    fn membership(&self, t: DateTime<Utc>) -> Option<Membership> {
        let wall = local_at(&self.zone, t);
        let day = wall.date();
        let time = wall.time();
        let day_rule = if self.dates.contains(&day) {
            Some(Rule::Date(day))
        } else if let Some((a, b)) = self.ranges.iter().find(|(a, b)| *a <= day && day <= *b) {
            Some(Rule::Range(*a, *b))
        } else if self.annual.contains(&(day.month(), day.day())) {
            Some(Rule::Annual(day.month(), day.day()))
        } else if self.weekdays & weekday_bit(day) != 0 {
            Some(Rule::Weekdays(weekday_bit(day)))
        } else {
            None
        };
        let time_rule = self
            .windows
            .iter()
            .find(|(from, to)| {
                if from < to {
                    *from <= time && time < *to
                } else {
                    time >= *from || time < *to
                }
            })
            .map(|(a, b)| Rule::TimeWindow(*a, *b))
            .or_else(|| {
                self.crons
                    .iter()
                    .find(|c| c.matches_minute(wall))
                    .map(|c| Rule::Cron(c.clone()))
            });
        let time_of_day = time_rule.is_some();
        let next_day = |d: NaiveDate| {
            d.succ_opt()
                .and_then(|n| n.and_hms_opt(0, 0, 0))
                .map(|midnight| earliest_instant(&self.zone, midnight))
        };
        let until = match (&day_rule, &time_rule) {
            (Some(Rule::Range(_, to)), _) => next_day(*to),
            (Some(_), _) => next_day(day),
            (None, Some(Rule::TimeWindow(from, to))) => {
                // The window's end: today's, or tomorrow's when it crosses
                // midnight and holds the evening.
                let end_day = if from > to && time >= *from {
                    day.succ_opt()
                } else {
                    Some(day)
                };
                end_day.map(|d| earliest_instant(&self.zone, d.and_time(*to)))
            }
            _ => None,
        }
        .filter(|u| *u > t);
        day_rule.or(time_rule).map(|rule| Membership {
            calendar: self.calendar.id.clone(),
            rule: rule.describe(),
            time_of_day,
            until,
        })
    }

    fn has_time_of_day_rules(&self) -> bool {
        !self.windows.is_empty() || !self.crons.is_empty()
    }
}

impl CalendarSet {
    /// Calendar `id` of `book` with those it includes; refused when one is
    /// missing or they include each other in a cycle.
    pub fn resolve(id: &str, book: &Book) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut done = BTreeSet::new();
        let mut path = Vec::new();
        visit(id, book, &mut path, &mut done, &mut parts)?;
        Ok(Self {
            id: id.to_string(),
            parts,
        })
    }

    /// The rule that holds `t`, in any of its calendars.
    pub fn membership(&self, t: DateTime<Utc>) -> Option<Membership> {
        let mut found: Option<Membership> = None;
        for part in &self.parts {
            if let Some(m) = part.membership(t) {
                if m.time_of_day {
                    return Some(match found {
                        Some(day) => Membership {
                            time_of_day: true,
                            ..day
                        },
                        None => m,
                    });
                }
                found.get_or_insert(m);
            }
        }
        found
    }

    /// True when one of its calendars has a time-of-day rule.
    pub fn has_time_of_day_rules(&self) -> bool {
        self.parts.iter().any(Part::has_time_of_day_rules)
    }

    /// The ids of its calendars: itself and those it includes.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|p| p.calendar.id.as_str())
    }

    /// Its calendars as inputs, their `calendar` rules dropped (each is
    /// one of the others): what a job keeps.
    pub fn snapshot(&self) -> Vec<CalendarInput> {
        self.parts.iter().map(|p| p.calendar.to_input()).collect()
    }

    /// A set from its snapshot; the first calendar is the one referred to.
    pub fn from_snapshot(inputs: Vec<CalendarInput>) -> Result<Self, String> {
        let mut parts = Vec::with_capacity(inputs.len());
        for input in inputs {
            let calendar = input.parse(None).map_err(|e| e.to_string())?;
            parts.push(Part::of(&calendar));
        }
        let id = parts
            .first()
            .map(|p| p.calendar.id.clone())
            .ok_or("an empty calendar snapshot")?;
        Ok(Self { id, parts })
    }

    /// The zone of the calendar referred to.
    pub fn timezone(&self) -> Zone {
        self.parts
            .first()
            .map_or(Zone::UTC, |p| p.calendar.timezone)
    }
}

fn visit(
    id: &str,
    book: &Book,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
    parts: &mut Vec<Part>,
) -> Result<(), String> {
    if path.iter().any(|p| p == id) {
        path.push(id.to_string());
        return Err(format!(
            "calendars include each other in a cycle: {}",
            path.join(" → ")
        ));
    }
    if done.contains(id) {
        return Ok(());
    }
    let calendar = book
        .get(id)
        .ok_or_else(|| format!("no calendar {id:?} (create it with POST /v1/calendars)"))?;
    path.push(id.to_string());
    parts.push(Part::of(calendar));
    for included in calendar.includes() {
        visit(included, book, path, done, parts)?;
    }
    path.pop();
    done.insert(id.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::domain::calendar::book_of as book;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn days_are_read_in_the_calendars_zone() {
        let b = book(
            json!([{"id": "xmas", "timezone": "Europe/Berlin", "rules": [{"date": "2026-12-25"}]}]),
        );
        let set = CalendarSet::resolve("xmas", &b).unwrap();
        // 23:30Z on the 24th is already the 25th in Berlin.
        let m = set.membership(at("2026-12-24T23:30:00Z")).unwrap();
        assert_eq!(
            (m.calendar.as_str(), m.rule.as_str(), m.time_of_day),
            ("xmas", "date 2026-12-25", false)
        );
        assert_eq!(set.membership(at("2026-12-25T23:00:00Z")), None);
        assert!(set.membership(at("2026-12-25T22:59:59Z")).is_some());
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_starts_at_the_transition() {
        // Santiago moves from -04 to -03 at 24:00 on 5 Sep 2026: 6 Sep
        // starts at 01:00 local, 04:00Z.
        let b = book(
            json!([{"id": "d", "timezone": "America/Santiago", "rules": [{"date": "2026-09-06"}]}]),
        );
        let set = CalendarSet::resolve("d", &b).unwrap();
        assert_eq!(set.membership(at("2026-09-06T03:59:59Z")), None);
        assert!(set.membership(at("2026-09-06T04:00:00Z")).is_some());
    }

    #[test]
    fn a_time_window_across_midnight_and_a_cron_rule() {
        let b = book(
            json!([{"id": "night", "rules": [{"time_window": {"from": "22:00", "to": "06:00"}}, {"cron": "* 12 * * 1"}]}]),
        );
        let set = CalendarSet::resolve("night", &b).unwrap();
        assert!(
            set.membership(at("2026-03-02T23:00:00Z"))
                .unwrap()
                .time_of_day
        );
        assert!(set.membership(at("2026-03-02T05:59:00Z")).is_some());
        assert_eq!(set.membership(at("2026-03-02T06:00:00Z")), None);
        assert_eq!(set.membership(at("2026-03-02T21:59:59Z")), None);
        // Monday noon, a minute long.
        assert!(set.membership(at("2026-03-02T12:00:30Z")).is_some());
        assert_eq!(set.membership(at("2026-03-03T12:00:30Z")), None);
    }

    #[test]
    fn included_calendars_keep_their_own_zones_and_cycles_are_refused() {
        let b = book(json!([
            {"id": "all", "timezone": "UTC", "rules": [{"calendar": "tokyo"}]},
            {"id": "tokyo", "timezone": "Asia/Tokyo", "rules": [{"date": "2027-01-01"}]},
        ]));
        let set = CalendarSet::resolve("all", &b).unwrap();
        let m = set.membership(at("2026-12-31T15:00:00Z")).unwrap();
        assert_eq!(m.calendar, "tokyo");
        assert_eq!(set.ids().collect::<Vec<_>>(), ["all", "tokyo"]);
        let back = CalendarSet::from_snapshot(set.snapshot()).unwrap();
        assert_eq!(back, set);
        let cyclic = book(json!([
            {"id": "a", "rules": [{"calendar": "b"}]},
            {"id": "b", "rules": [{"calendar": "a"}]},
        ]));
        let e = CalendarSet::resolve("a", &cyclic).unwrap_err();
        assert!(e.contains("a → b → a"), "{e}");
        assert!(
            CalendarSet::resolve("zz", &cyclic)
                .unwrap_err()
                .contains("no calendar")
        );
    }
}
