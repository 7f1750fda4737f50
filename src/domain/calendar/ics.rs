//! The all-day events of an iCalendar file (RFC 5545) as days (DESIGN.md
//! §11.4's import): read by the `icalendar` crate, recurrences expanded by
//! [`super::recurrence`] (RRULE, with RDATE and EXDATE), five years ahead.
//! Timed events are left out: a calendar's rules are days and times of
//! day, not one-off slots.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, TimeDelta};
use icalendar::{CalendarComponent, Component, DatePerhapsTime};

use super::recurrence::{Recurrence, basic_date};

/// How far ahead recurring events are expanded.
pub const YEARS_AHEAD: i32 = 5;
/// Days an event lasts at most (a longer one is refused as a mistake).
const MAX_EVENT_DAYS: i64 = 366;

/// What an import found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub days: BTreeSet<NaiveDate>,
    /// All-day events read.
    pub events: usize,
    /// Events with a time of day, not imported.
    pub timed: usize,
}

/// The days of the all-day events in `text`, recurring ones to the end of
/// the [`YEARS_AHEAD`]th year after `today`'s (and none more than a year
/// before it).
pub fn all_day_events(text: &str, today: NaiveDate) -> Result<Imported, String> {
    let calendar: icalendar::Calendar = text.parse().map_err(|e: String| {
        format!(
            "is not an iCalendar file: {}",
            e.lines().next().unwrap_or("")
        )
    })?;
    let until = NaiveDate::from_ymd_opt(today.year() + YEARS_AHEAD + 1, 1, 1)
        .ok_or("the date is out of range")?;
    let since = today - TimeDelta::days(366);
    let mut found = Imported::default();
    for component in &calendar.components {
        let CalendarComponent::Event(event) = component else {
            continue;
        };
        let summary = event.get_summary().unwrap_or("(no summary)").to_string();
        let start = match event.get_start() {
            Some(DatePerhapsTime::Date(d)) => d,
            Some(DatePerhapsTime::DateTime(_)) => {
                found.timed += 1;
                continue;
            }
            None => return Err(format!("event {summary:?} has no DTSTART")),
        };
        let days = match event.get_end() {
            Some(DatePerhapsTime::Date(end)) => (end - start).num_days().max(1),
            _ => 1,
        };
        if days > MAX_EVENT_DAYS {
            return Err(format!(
                "event {summary:?} lasts {days} days; at most {MAX_EVENT_DAYS}"
            ));
        }
        found.events += 1;
        let starts =
            starts(event, start, since, until).map_err(|e| format!("event {summary:?}: {e}"))?;
        for first in starts {
            for d in 0..days {
                let day = first + TimeDelta::days(d);
                if first == start || (since..until).contains(&day) {
                    found.days.insert(day);
                }
            }
        }
    }
    Ok(found)
}

/// The days an event starts on: DTSTART, the days of its RRULE, and its
/// RDATEs, less its EXDATEs (RFC 5545 §3.8.5).
fn starts(
    event: &icalendar::Event,
    start: NaiveDate,
    since: NaiveDate,
    until: NaiveDate,
) -> Result<BTreeSet<NaiveDate>, String> {
    let mut starts = BTreeSet::from([start]);
    if let Some(rule) = event.property_value("RRULE") {
        let rule: Recurrence = rule.parse().map_err(|e| format!("RRULE {rule:?}: {e}"))?;
        starts.extend(rule.days(start, since, until)?);
    }
    starts.extend(dates(event, "RDATE")?);
    for day in dates(event, "EXDATE")? {
        starts.remove(&day);
    }
    Ok(starts)
}

/// The days a date-list property names, each value a date or a date-time
/// whose day is what an all-day event means (an RDATE period too).
fn dates(event: &icalendar::Event, name: &str) -> Result<Vec<NaiveDate>, String> {
    let properties = event
        .multi_properties()
        .get(name)
        .into_iter()
        .flatten()
        .chain(event.properties().get(name));
    let mut days = vec![];
    for property in properties {
        for value in property.value().split(',') {
            let day = basic_date(value).ok_or_else(|| format!("{name} {value:?} is not a date"))?;
            days.push(day);
        }
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_shipped_german_holidays_expand_five_years_ahead() {
        let text = include_str!("../../../tests/data/de-holidays.ics");
        let found = all_day_events(text, day("2026-12-04")).unwrap();
        assert!(found.days.contains(&day("2026-12-25")));
        assert!(found.days.contains(&day("2031-12-26")));
        assert!(!found.days.contains(&day("2032-01-01")), "past five years");
        // Easter Monday is listed per year (no RRULE can say it).
        assert!(found.days.contains(&day("2027-03-29")));
        assert!(found.days.contains(&day("2027-10-03")));
        assert_eq!(found.timed, 1);
    }

    #[test]
    fn exdate_removes_a_day_of_a_recurring_event() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Offsite\r\nDTSTART;VALUE=DATE:20260615\r\nRRULE:FREQ=YEARLY;COUNT=4\r\nEXDATE;VALUE=DATE:20270615,20280615\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let found = all_day_events(text, day("2026-12-01")).unwrap();
        let days: Vec<_> = found.days.into_iter().collect();
        assert_eq!(days, [day("2026-06-15"), day("2029-06-15")]);
    }

    #[test]
    fn rdate_adds_days_and_a_bad_rule_names_its_event() {
        let event = |lines: &str| {
            format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Audit\r\nDTSTART;VALUE=DATE:20270104\r\n{lines}END:VEVENT\r\nEND:VCALENDAR\r\n"
            )
        };
        let text = event(
            "RRULE:FREQ=MONTHLY;COUNT=3;BYDAY=1MO\r\nRDATE;VALUE=DATE:20270610,20270611\r\nEXDATE;VALUE=DATE:20270201\r\n",
        );
        let found = all_day_events(&text, day("2026-12-01")).unwrap();
        let days: Vec<_> = found.days.into_iter().collect();
        assert_eq!(
            days,
            [
                day("2027-01-04"),
                day("2027-03-01"),
                day("2027-06-10"),
                day("2027-06-11")
            ]
        );
        let error = all_day_events(&event("RRULE:FREQ=HOURLY\r\n"), day("2026-12-01")).unwrap_err();
        assert_eq!(
            error,
            "event \"Audit\": RRULE \"FREQ=HOURLY\": FREQ=HOURLY: an all-day event cannot repeat within a day"
        );
        let error = all_day_events(&event("EXDATE;VALUE=DATE:tomorrow\r\n"), day("2026-12-01"))
            .unwrap_err();
        assert_eq!(error, "event \"Audit\": EXDATE \"tomorrow\" is not a date");
    }

    #[test]
    fn a_multi_day_event_holds_each_of_its_days() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Shutdown\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20270102\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let found = all_day_events(text, day("2026-12-01")).unwrap();
        assert_eq!(found.days.len(), 9);
        assert_eq!(found.days.first(), Some(&day("2026-12-24")));
        assert_eq!(found.days.last(), Some(&day("2027-01-01")));
    }

    #[test]
    fn a_file_that_is_not_icalendar_is_refused() {
        assert!(all_day_events("hello", day("2026-12-01")).is_err());
    }
}
