//! Calendars (DESIGN.md §11.4): named sets of days and times, local to a
//! zone, that a trigger excludes or keeps to. Pure: a calendar answers
//! whether an instant is in it; [`policy`] decides what an occurrence that
//! falls in (or out of) one becomes.

pub mod ics;
pub mod policy;
pub mod recurrence;
mod set;

pub use set::{Book, CalendarSet, Membership};

use std::collections::BTreeSet;

use crate::domain::trigger::Zone;
use chrono::{Datelike, NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::error::FieldError;
use crate::domain::trigger::CronSchedule;

/// Most rules a calendar holds (an ICS import of five years of a
/// country's holidays adds ~100).
pub const MAX_RULES: usize = 5_000;

/// A calendar as a client writes it and reads it back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Calendar)]
pub struct CalendarInput {
    /// Letters, digits, `.`, `_`, `-`; 1 to 64, starting with a letter or
    /// digit. Given in the body of a POST; the path's on a PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "de-holidays", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub id: Option<String>,
    /// IANA zone its dates and times are read in (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An instant is in the calendar when any rule holds it.
    #[serde(default)]
    pub rules: Vec<RuleInput>,
}

/// One rule; an object with exactly one of these keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleInput {
    /// A day, `YYYY-MM-DD`.
    Date(String),
    /// Days from `from` to `to`, both included.
    Range(DateRangeInput),
    /// A day every year, `MM-DD` (`02-29` only in leap years).
    Annual(String),
    /// Days of the week: `mon` … `sun`.
    Weekdays(Vec<String>),
    /// Times of every day, `HH:MM`, `from` included, `to` not; crosses
    /// midnight when `to` is earlier than `from`.
    TimeWindow(TimeWindowInput),
    /// The minutes a 5-field cron pattern matches, in the calendar's zone.
    Cron(String),
    /// Every instant of another calendar (a union; cycles are refused).
    Calendar(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateRangeInput {
    #[schema(example = "2026-12-24")]
    pub from: String,
    #[schema(example = "2027-01-01")]
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowInput {
    #[schema(example = "22:00")]
    pub from: String,
    #[schema(example = "06:00")]
    pub to: String,
}

/// A validated calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub id: String,
    pub timezone: Zone,
    pub description: Option<String>,
    pub rules: Vec<Rule>,
}

impl PartialEq for Calendar {
    fn eq(&self, other: &Self) -> bool {
        self.to_input() == other.to_input()
    }
}

/// A validated rule: dates and times are local to the calendar's zone.
#[derive(Debug, Clone)]
pub enum Rule {
    Date(NaiveDate),
    Range(NaiveDate, NaiveDate),
    /// Month and day.
    Annual(u32, u32),
    /// Bit `n` set: weekday `n` days from Monday.
    Weekdays(u8),
    TimeWindow(NaiveTime, NaiveTime),
    Cron(CronSchedule),
    Calendar(String),
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A calendar id: the grammar of [`CalendarInput::id`].
pub fn parse_id(id: &str) -> Result<String, String> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok || id.len() > 64 {
        return Err(format!(
            "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; got {id:?}"
        ));
    }
    Ok(id.to_string())
}

fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| format!("must be a date YYYY-MM-DD, got {text:?}"))
}

fn time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .ok()
        .filter(|_| text.len() == 5)
        .ok_or_else(|| format!("must be a time HH:MM (00:00 to 23:59), got {text:?}"))
}

impl RuleInput {
    fn parse(&self, timezone: Zone, field: &str) -> Result<Rule, FieldError> {
        let err = |name: &str, m: String| FieldError::new(format!("{field}.{name}"), m);
        Ok(match self {
            RuleInput::Date(d) => Rule::Date(date(d).map_err(|m| err("date", m))?),
            RuleInput::Range(r) => {
                let from = date(&r.from).map_err(|m| err("range.from", m))?;
                let to = date(&r.to).map_err(|m| err("range.to", m))?;
                if to < from {
                    return Err(err("range.to", format!("must not be before from ({from})")));
                }
                Rule::Range(from, to)
            }
            RuleInput::Annual(md) => {
                let parsed = md
                    .split_once('-')
                    .filter(|(m, d)| m.len() == 2 && d.len() == 2)
                    .and_then(|(m, d)| Some((m.parse::<u32>().ok()?, d.parse::<u32>().ok()?)))
                    // 2024 is a leap year: 02-29 is a day of some years.
                    .filter(|(m, d)| NaiveDate::from_ymd_opt(2024, *m, *d).is_some());
                let (m, d) = parsed
                    .ok_or_else(|| err("annual", format!("must be a day MM-DD, got {md:?}")))?;
                Rule::Annual(m, d)
            }
            RuleInput::Weekdays(days) => {
                if days.is_empty() {
                    return Err(err("weekdays", "must name at least one day".into()));
                }
                let mut mask = 0u8;
                for (i, day) in days.iter().enumerate() {
                    let n = WEEKDAYS
                        .iter()
                        .position(|w| w.eq_ignore_ascii_case(day))
                        .ok_or_else(|| {
                            err(
                                &format!("weekdays[{i}]"),
                                format!(
                                    "must be one of mon, tue, wed, thu, fri, sat, sun; got {day:?}"
                                ),
                            )
                        })?;
                    mask |= 1 << n;
                }
                Rule::Weekdays(mask)
            }
            RuleInput::TimeWindow(w) => {
                let from = time(&w.from).map_err(|m| err("time_window.from", m))?;
                let to = time(&w.to).map_err(|m| err("time_window.to", m))?;
                if from == to {
                    return Err(err(
                        "time_window.to",
                        "must differ from from (a whole day is a weekdays or date rule)".into(),
                    ));
                }
                Rule::TimeWindow(from, to)
            }
            RuleInput::Cron(expr) => {
                if expr.split_whitespace().count() != 5 && !expr.trim_start().starts_with('@') {
                    return Err(err(
                        "cron",
                        "must have 5 fields (minute hour day-of-month month day-of-week): a calendar holds whole minutes".into(),
                    ));
                }
                Rule::Cron(CronSchedule::parse(expr, timezone).map_err(|m| err("cron", m.into()))?)
            }
            RuleInput::Calendar(id) => {
                Rule::Calendar(parse_id(id).map_err(|m| err("calendar", m))?)
            }
        })
    }
}

impl Rule {
    pub fn to_input(&self) -> RuleInput {
        let d = |d: &NaiveDate| d.format("%Y-%m-%d").to_string();
        let t = |t: &NaiveTime| t.format("%H:%M").to_string();
        match self {
            Rule::Date(x) => RuleInput::Date(d(x)),
            Rule::Range(a, b) => RuleInput::Range(DateRangeInput {
                from: d(a),
                to: d(b),
            }),
            Rule::Annual(m, day) => RuleInput::Annual(format!("{m:02}-{day:02}")),
            Rule::Weekdays(mask) => RuleInput::Weekdays(
                (0..7)
                    .filter(|n| mask & (1 << n) != 0)
                    .map(|n| WEEKDAYS[n].to_string())
                    .collect(),
            ),
            Rule::TimeWindow(a, b) => RuleInput::TimeWindow(TimeWindowInput {
                from: t(a),
                to: t(b),
            }),
            Rule::Cron(c) => RuleInput::Cron(c.expr().to_string()),
            Rule::Calendar(id) => RuleInput::Calendar(id.clone()),
        }
    }

    /// The rule in a few words, as a reason names it.
    pub fn describe(&self) -> String {
        match self.to_input() {
            RuleInput::Date(d) => format!("date {d}"),
            RuleInput::Range(r) => format!("range {} to {}", r.from, r.to),
            RuleInput::Annual(a) => format!("annual {a}"),
            RuleInput::Weekdays(w) => format!("weekdays {}", w.join(",")),
            RuleInput::TimeWindow(w) => format!("time_window {}-{}", w.from, w.to),
            RuleInput::Cron(c) => format!("cron {c}"),
            RuleInput::Calendar(c) => format!("calendar {c}"),
        }
    }

    /// A rule of times of day, not of whole days.
    pub fn is_time_of_day(&self) -> bool {
        matches!(self, Rule::TimeWindow(..) | Rule::Cron(_))
    }
}

impl CalendarInput {
    /// Validates into a [`Calendar`]; `id` is the path's on a PUT (a body
    /// id must then equal it), else the body's.
    pub fn parse(self, path_id: Option<&str>) -> Result<Calendar, FieldError> {
        let id = match (path_id, self.id.as_deref()) {
            (Some(p), Some(b)) if p != b => {
                return Err(FieldError::new(
                    "id",
                    format!("differs from the path's id {p:?}"),
                ));
            }
            (Some(p), _) => p,
            (None, Some(b)) => b,
            (None, None) => return Err(FieldError::new("id", "is required")),
        };
        let id = parse_id(id).map_err(|m| FieldError::new("id", m))?;
        let timezone = match self.timezone.as_deref() {
            None => Zone::UTC,
            Some(name) => name.parse::<Zone>().map_err(|_| {
                FieldError::new(
                    "timezone",
                    format!("is not an IANA time zone name: {name:?}"),
                )
            })?,
        };
        if self.rules.len() > MAX_RULES {
            return Err(FieldError::new(
                "rules",
                format!("holds {} rules; at most {MAX_RULES}", self.rules.len()),
            ));
        }
        if let Some(d) = &self.description
            && d.len() > 1_000
        {
            return Err(FieldError::new("description", "must be at most 1000 bytes"));
        }
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.parse(timezone, &format!("rules[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if rules
            .iter()
            .any(|r| matches!(r, Rule::Calendar(c) if *c == id))
        {
            return Err(FieldError::new(
                "rules",
                format!("calendar {id:?} cannot include itself"),
            ));
        }
        Ok(Calendar {
            id,
            timezone,
            description: self.description,
            rules,
        })
    }
}

impl Calendar {
    pub fn to_input(&self) -> CalendarInput {
        CalendarInput {
            id: Some(self.id.clone()),
            timezone: Some(self.timezone.name().to_string()),
            description: self.description.clone(),
            rules: self.rules.iter().map(Rule::to_input).collect(),
        }
    }

    /// The calendars its `calendar` rules name.
    pub fn includes(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .filter_map(|r| match r {
                Rule::Calendar(id) => Some(id.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Days added by an import, that its rules did not hold as dates yet.
    pub fn add_dates(&mut self, days: impl IntoIterator<Item = NaiveDate>) -> usize {
        let mut held: BTreeSet<NaiveDate> = self
            .rules
            .iter()
            .filter_map(|r| match r {
                Rule::Date(d) => Some(*d),
                _ => None,
            })
            .collect();
        let before = self.rules.len();
        for day in days {
            if held.insert(day) {
                self.rules.push(Rule::Date(day));
            }
        }
        self.rules.len() - before
    }
}

/// A book of the calendars a test writes as JSON.
#[cfg(test)]
pub(crate) fn book_of(calendars: serde_json::Value) -> Book {
    let inputs: Vec<CalendarInput> = serde_json::from_value(calendars).unwrap();
    inputs
        .into_iter()
        .map(|i| {
            let c = i.parse(None).unwrap();
            (c.id.clone(), c)
        })
        .collect()
}

/// Monday-based weekday number of a date.
fn weekday_bit(d: NaiveDate) -> u8 {
    1 << d.weekday().num_days_from_monday()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> CalendarInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_rule_reads_back_as_written() {
        let v = json!({"id": "ops", "timezone": "Europe/Berlin", "rules": [
            {"date": "2026-12-25"},
            {"range": {"from": "2026-12-24", "to": "2027-01-01"}},
            {"annual": "02-29"},
            {"weekdays": ["sat", "sun"]},
            {"time_window": {"from": "22:00", "to": "06:00"}},
            {"cron": "* 0-7 * * *"},
            {"calendar": "other"},
        ]});
        let cal = input(v.clone()).parse(None).unwrap();
        assert_eq!(serde_json::to_value(cal.to_input()).unwrap(), v);
    }

    #[test]
    fn bad_rules_name_their_field() {
        let cases = [
            (json!({"date": "2026-13-01"}), "rules[0].date"),
            (
                json!({"range": {"from": "2026-12-24", "to": "2026-12-01"}}),
                "rules[0].range.to",
            ),
            (json!({"annual": "02-30"}), "rules[0].annual"),
            (
                json!({"weekdays": ["sat", "funday"]}),
                "rules[0].weekdays[1]",
            ),
            (
                json!({"time_window": {"from": "25:00", "to": "06:00"}}),
                "rules[0].time_window.from",
            ),
            (
                json!({"time_window": {"from": "06:00", "to": "06:00"}}),
                "rules[0].time_window.to",
            ),
            (json!({"cron": "0 * * * * *"}), "rules[0].cron"),
            (json!({"cron": "61 * * * *"}), "rules[0].cron"),
            (json!({"calendar": "no spaces"}), "rules[0].calendar"),
        ];
        for (rule, field) in cases {
            let e = input(json!({"id": "c", "rules": [rule]}))
                .parse(None)
                .unwrap_err();
            assert_eq!(e.field, field, "{rule}: {e}");
        }
        let e = input(json!({"id": "c", "timezone": "Mars/Olympus"}))
            .parse(None)
            .unwrap_err();
        assert_eq!(e.field, "timezone");
        let e = input(json!({"id": "c", "rules": [{"calendar": "c"}]}))
            .parse(None)
            .unwrap_err();
        assert_eq!(e.field, "rules");
        let e = input(json!({"id": "a"})).parse(Some("b")).unwrap_err();
        assert_eq!(e.field, "id");
    }

    #[test]
    fn an_import_adds_only_new_dates() {
        let mut cal = input(json!({"id": "c", "rules": [{"date": "2026-12-25"}]}))
            .parse(None)
            .unwrap();
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            cal.add_dates([d("2026-12-25"), d("2026-12-26"), d("2026-12-26")]),
            1
        );
        assert_eq!(cal.rules.len(), 2);
    }
}
