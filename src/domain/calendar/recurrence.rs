//! RFC 5545 recurrence rules (RRULE, §3.3.10) of all-day events: the days
//! a rule gives from a date DTSTART, for the iCalendar import (DESIGN.md
//! §11.4, ics.rs).
//!
//! Only days matter here, so every BY part is a test on a date, and a
//! period's days are its dates that pass them all; that is RFC 5545's
//! expand-and-limit table for date parts, by the method python-dateutil's
//! rrule uses. (The `rrule` crate did this before, but it brought a second
//! time-zone database, chrono-tz, for times an all-day event never has.)

use std::str::FromStr;

use chrono::{Datelike, Months, NaiveDate, TimeDelta, Weekday};

/// How often the rule's period repeats (sub-day ones are refused: an
/// all-day event has no times of day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frequency {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// A parsed RRULE value (`FREQ=MONTHLY;BYDAY=-1FR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    frequency: Frequency,
    interval: u32,
    count: Option<u32>,
    until: Option<NaiveDate>,
    by_month: Vec<u32>,
    by_week_no: Vec<i32>,
    by_year_day: Vec<i32>,
    by_month_day: Vec<i32>,
    /// A weekday, and which of them in the month or year when numbered.
    by_day: Vec<(Option<i32>, Weekday)>,
    by_set_pos: Vec<i32>,
    week_start: Weekday,
}

/// How many days a rule yields at most (a longer list is cut there).
const MAX_DAYS: usize = u16::MAX as usize;
/// How many days a COUNT rule may look through from its DTSTART: 200
/// years of a daily rule.
pub const MAX_DAYS_SCANNED: i64 = 200 * 366;

impl FromStr for Recurrence {
    type Err = String;

    /// The error names the rule part it is about.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut frequency = None;
        let mut rule = Recurrence {
            frequency: Frequency::Daily,
            interval: 1,
            count: None,
            until: None,
            by_month: vec![],
            by_week_no: vec![],
            by_year_day: vec![],
            by_month_day: vec![],
            by_day: vec![],
            by_set_pos: vec![],
            week_start: Weekday::Mon,
        };
        for part in text.trim().split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not NAME=VALUE"))?;
            let name = name.to_ascii_uppercase();
            let bad = |why: &str| format!("{name}={value}: {why}");
            match name.as_str() {
                "FREQ" => frequency = Some(parse_frequency(value).map_err(|e| bad(&e))?),
                "INTERVAL" => {
                    rule.interval = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("not a whole number from 1"))?
                }
                "COUNT" => {
                    rule.count = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| bad("not a whole number from 1"))?,
                    )
                }
                // A date-time UNTIL ends on its day (the form stays the
                // DTSTART's in RFC 5545, but exports mix them up).
                "UNTIL" => rule.until = Some(basic_date(value).ok_or_else(|| bad("not a date"))?),
                "BYMONTH" => rule.by_month = numbers(value, 1, 12).map_err(|e| bad(&e))?,
                "BYWEEKNO" => rule.by_week_no = signed(value, 53).map_err(|e| bad(&e))?,
                "BYYEARDAY" => rule.by_year_day = signed(value, 366).map_err(|e| bad(&e))?,
                "BYMONTHDAY" => rule.by_month_day = signed(value, 31).map_err(|e| bad(&e))?,
                "BYSETPOS" => rule.by_set_pos = signed(value, 366).map_err(|e| bad(&e))?,
                "BYDAY" => {
                    rule.by_day = value
                        .split(',')
                        .map(numbered_weekday)
                        .collect::<Result<_, _>>()
                        .map_err(|e| bad(&e))?
                }
                "WKST" => rule.week_start = weekday(value).ok_or_else(|| bad("not a weekday"))?,
                "BYHOUR" | "BYMINUTE" | "BYSECOND" => {
                    return Err(bad("an all-day event has no times of day"));
                }
                _ => return Err(format!("{name}: not a rule part of RFC 5545")),
            }
        }
        rule.frequency = frequency.ok_or("FREQ is missing")?;
        rule.check()?;
        Ok(rule)
    }
}

impl Recurrence {
    /// The parts RFC 5545 forbids together or for this frequency.
    fn check(&self) -> Result<(), String> {
        use Frequency::*;
        if self.count.is_some() && self.until.is_some() {
            return Err("COUNT and UNTIL: at most one of them".into());
        }
        let numbered = self.by_day.iter().any(|(n, _)| n.is_some());
        if numbered && matches!(self.frequency, Daily | Weekly) {
            return Err("BYDAY: a numbered weekday needs FREQ=MONTHLY or YEARLY".into());
        }
        if numbered && self.frequency == Yearly && !self.by_week_no.is_empty() {
            return Err("BYDAY: a numbered weekday cannot go with BYWEEKNO".into());
        }
        if !self.by_week_no.is_empty() && self.frequency != Yearly {
            return Err("BYWEEKNO: only with FREQ=YEARLY".into());
        }
        if !self.by_year_day.is_empty() && matches!(self.frequency, Weekly | Monthly) {
            return Err("BYYEARDAY: not with FREQ=WEEKLY or MONTHLY".into());
        }
        if !self.by_month_day.is_empty() && self.frequency == Weekly {
            return Err("BYMONTHDAY: not with FREQ=WEEKLY".into());
        }
        Ok(())
    }

    /// The days the rule gives for an event that starts on `start`, from
    /// `since` and before `before`: `start` first (RFC 5545 counts DTSTART
    /// as the first occurrence, whether or not the rule matches it), then
    /// each day the rule matches after it, in order.
    ///
    /// A rule without COUNT starts looking at `since`; one with COUNT
    /// counts from `start`, and is refused when that means looking through
    /// more than [`MAX_DAYS_SCANNED`] days (a crafted file's DTSTART in the
    /// year 1 must not cost seconds).
    pub fn days(
        &self,
        start: NaiveDate,
        since: NaiveDate,
        before: NaiveDate,
    ) -> Result<Vec<NaiveDate>, String> {
        let rule = self.with_start_defaults(start);
        let mut days = vec![start];
        let within = |day: NaiveDate| {
            (since..before).contains(&day) && rule.until.is_none_or(|until| day <= until)
        };
        // Occurrences so far, DTSTART the first; COUNT ends the rule there.
        let mut counted: u64 = 1;
        let ended = |counted: u64| rule.count.is_some_and(|n| counted >= u64::from(n));
        let mut step = match rule.count {
            Some(_) => 0,
            None => rule.periods_between(start, since) / rule.interval * rule.interval,
        };
        let mut scanned = 0;
        while !ended(counted) && days.len() < MAX_DAYS {
            let Some(period) = rule.period(start, step) else {
                break;
            };
            if period.first >= before || rule.until.is_some_and(|until| period.first > until) {
                break;
            }
            scanned += (period.last - period.first).num_days() + 1;
            if scanned > MAX_DAYS_SCANNED {
                return Err(format!(
                    "COUNT from {start} means looking through more than {MAX_DAYS_SCANNED} days"
                ));
            }
            for day in rule.chosen(&period) {
                if day <= start || ended(counted) || days.len() >= MAX_DAYS {
                    continue;
                }
                counted += 1;
                if within(day) {
                    days.push(day);
                }
            }
            step = step.saturating_add(rule.interval);
        }
        Ok(days)
    }

    /// Whole periods from the one holding `start` to the one holding
    /// `day` (0 when `day` is not later).
    fn periods_between(&self, start: NaiveDate, day: NaiveDate) -> u32 {
        let n = match self.frequency {
            Frequency::Daily => (day - start).num_days(),
            Frequency::Weekly => {
                let week = |d: NaiveDate| d.week(self.week_start).first_day();
                (week(day) - week(start)).num_days() / 7
            }
            Frequency::Monthly => {
                let month = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
                month(day) - month(start)
            }
            Frequency::Yearly => i64::from(day.year() - start.year()),
        };
        u32::try_from(n.max(0)).unwrap_or(u32::MAX)
    }

    /// With no part that picks days, the rule repeats DTSTART's day of
    /// the week, month or year (RFC 5545: parts missing from the rule take
    /// their values from DTSTART).
    fn with_start_defaults(&self, start: NaiveDate) -> Recurrence {
        let mut rule = self.clone();
        let picks_days = !(rule.by_week_no.is_empty()
            && rule.by_year_day.is_empty()
            && rule.by_month_day.is_empty()
            && rule.by_day.is_empty());
        if !picks_days {
            match rule.frequency {
                Frequency::Daily => {}
                Frequency::Weekly => rule.by_day = vec![(None, start.weekday())],
                Frequency::Monthly => rule.by_month_day = vec![start.day() as i32],
                Frequency::Yearly => {
                    if rule.by_month.is_empty() {
                        rule.by_month = vec![start.month()];
                    }
                    rule.by_month_day = vec![start.day() as i32];
                }
            }
        }
        rule
    }

    /// The `step`th period from the one holding `start`.
    fn period(&self, start: NaiveDate, step: u32) -> Option<Period> {
        let (first, last) = match self.frequency {
            Frequency::Daily => {
                let day = start.checked_add_signed(TimeDelta::days(step.into()))?;
                (day, day)
            }
            Frequency::Weekly => {
                let first = start.week(self.week_start).first_day();
                let first = first.checked_add_signed(TimeDelta::weeks(step.into()))?;
                (first, first.checked_add_signed(TimeDelta::days(6))?)
            }
            Frequency::Monthly => {
                let first = start.with_day(1)?.checked_add_months(Months::new(step))?;
                (first, first.with_day(first.num_days_in_month().into())?)
            }
            Frequency::Yearly => {
                let year = start.year().checked_add(i32::try_from(step).ok()?)?;
                (
                    NaiveDate::from_ymd_opt(year, 1, 1)?,
                    NaiveDate::from_ymd_opt(year, 12, 31)?,
                )
            }
        };
        Some(Period { first, last })
    }

    /// The period's days the rule picks, in order.
    fn chosen(&self, period: &Period) -> Vec<NaiveDate> {
        let matching: Vec<NaiveDate> = period
            .first
            .iter_days()
            .take_while(|d| *d <= period.last)
            .filter(|d| self.matches(*d))
            .collect();
        if self.by_set_pos.is_empty() {
            return matching;
        }
        let mut picked: Vec<NaiveDate> = self
            .by_set_pos
            .iter()
            .filter_map(|&pos| nth(&matching, pos).copied())
            .collect();
        picked.sort_unstable();
        picked.dedup();
        picked
    }

    /// True when `day` passes every BY part (each one the rule has).
    fn matches(&self, day: NaiveDate) -> bool {
        let in_list = |list: &[i32], n: u32, of: u32| {
            let n = n as i32;
            list.is_empty() || list.contains(&n) || list.contains(&(n - of as i32 - 1))
        };
        (self.by_month.is_empty() || self.by_month.contains(&day.month()))
            && in_list(&self.by_year_day, day.ordinal(), days_in_year(day))
            && in_list(
                &self.by_month_day,
                day.day(),
                u32::from(day.num_days_in_month()),
            )
            && (self.by_week_no.is_empty() || self.in_week_no(day))
            && (self.by_day.is_empty() || self.by_day.iter().any(|&wd| self.is_weekday(day, wd)))
    }

    /// A numbered weekday counts within the month under FREQ=MONTHLY, or
    /// FREQ=YEARLY with BYMONTH; within the year otherwise.
    fn is_weekday(&self, day: NaiveDate, (n, weekday): (Option<i32>, Weekday)) -> bool {
        if day.weekday() != weekday {
            return false;
        }
        let Some(n) = n else { return true };
        let within_month = self.frequency == Frequency::Monthly || !self.by_month.is_empty();
        let (index, length) = if within_month {
            (day.day(), u32::from(day.num_days_in_month()))
        } else {
            (day.ordinal(), days_in_year(day))
        };
        let from_start = (index as i32 - 1) / 7 + 1;
        let from_end = -((length as i32 - index as i32) / 7 + 1);
        n == from_start || n == from_end
    }

    /// RFC 5545's week numbers: week 1 holds at least four days of its
    /// year, and weeks start on WKST. A day is in its own week's year.
    fn in_week_no(&self, day: NaiveDate) -> bool {
        let week_one = |year: i32| week_one_start(year, self.week_start);
        let (Some(this), Some(next)) = (week_one(day.year()), week_one(day.year() + 1)) else {
            return false;
        };
        let year = if day < this {
            day.year() - 1
        } else if day >= next {
            day.year() + 1
        } else {
            day.year()
        };
        let (Some(first), Some(following)) = (week_one(year), week_one(year + 1)) else {
            return false;
        };
        let week = ((day - first).num_days() / 7 + 1) as i32;
        let weeks = ((following - first).num_days() / 7) as i32;
        self.by_week_no
            .iter()
            .any(|&n| n == week || n == week - weeks - 1)
    }
}

struct Period {
    first: NaiveDate,
    last: NaiveDate,
}

/// The `pos`th item, 1 the first and -1 the last.
fn nth<T>(items: &[T], pos: i32) -> Option<&T> {
    let at = if pos > 0 {
        pos as usize - 1
    } else {
        items.len().checked_sub(pos.unsigned_abs() as usize)?
    };
    items.get(at)
}

fn week_one_start(year: i32, week_start: Weekday) -> Option<NaiveDate> {
    let january_first = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let into_week = january_first.weekday().days_since(week_start) as i64;
    Some(if into_week <= 3 {
        january_first - TimeDelta::days(into_week)
    } else {
        january_first + TimeDelta::days(7 - into_week)
    })
}

fn days_in_year(day: NaiveDate) -> u32 {
    if day.leap_year() { 366 } else { 365 }
}

fn parse_frequency(value: &str) -> Result<Frequency, String> {
    match value.to_ascii_uppercase().as_str() {
        "DAILY" => Ok(Frequency::Daily),
        "WEEKLY" => Ok(Frequency::Weekly),
        "MONTHLY" => Ok(Frequency::Monthly),
        "YEARLY" => Ok(Frequency::Yearly),
        "HOURLY" | "MINUTELY" | "SECONDLY" => {
            Err("an all-day event cannot repeat within a day".into())
        }
        _ => Err("not one of DAILY, WEEKLY, MONTHLY, YEARLY".into()),
    }
}

/// A date as iCalendar writes it (`20261224`), or the day of a date-time
/// (`20261224T000000Z`).
pub fn basic_date(value: &str) -> Option<NaiveDate> {
    let digits = value.trim().get(..8)?;
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

fn numbers(value: &str, low: u32, high: u32) -> Result<Vec<u32>, String> {
    value
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .ok()
                .filter(|n| (low..=high).contains(n))
                .ok_or_else(|| format!("{v:?} is not a number from {low} to {high}"))
        })
        .collect()
}

/// Numbers from 1 to `high` or -1 to -`high` (counted from the end).
fn signed(value: &str, high: i32) -> Result<Vec<i32>, String> {
    value
        .split(',')
        .map(|v| {
            v.trim()
                .trim_start_matches('+')
                .parse::<i32>()
                .ok()
                .filter(|n| *n != 0 && n.abs() <= high)
                .ok_or_else(|| format!("{v:?} is not a number from 1 to {high} or -1 to -{high}"))
        })
        .collect()
}

fn numbered_weekday(value: &str) -> Result<(Option<i32>, Weekday), String> {
    let value = value.trim();
    let split = value.len().saturating_sub(2);
    let (number, day) = (&value[..split], &value[split..]);
    let day = weekday(day).ok_or_else(|| format!("{value:?} does not end in a weekday (MO…SU)"))?;
    if number.is_empty() {
        return Ok((None, day));
    }
    let n = signed(number, 53).map_err(|_| {
        format!("{value:?}: the number before the weekday is from 1 to 53 or -1 to -53")
    })?;
    Ok((n.first().copied(), day))
}

fn weekday(value: &str) -> Option<Weekday> {
    Some(match value.trim().to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        basic_date(s).unwrap()
    }

    /// The days of `rule` from `start`, before 2040 unless it ends sooner,
    /// the first `take` of them, as `YYYYMMDD`.
    fn expand(start: &str, rule: &str, take: usize) -> Vec<String> {
        let rule: Recurrence = rule.parse().unwrap();
        let days = rule.days(day(start), day(start), day("20400101")).unwrap();
        days.iter()
            .take(take)
            .map(|d| d.format("%Y%m%d").to_string())
            .collect()
    }

    fn list(days: &str) -> Vec<String> {
        days.split_whitespace().map(str::to_string).collect()
    }

    /// RFC 5545 §3.8.5.3's examples, on dates (their times dropped).
    #[test]
    fn the_examples_of_rfc_5545() {
        let cases = [
            // Daily for 10 occurrences.
            (
                "19970902",
                "FREQ=DAILY;COUNT=10",
                "19970902 19970903 19970904 19970905 19970906 19970907 19970908 19970909 19970910 19970911",
            ),
            // Every 10 days, 5 occurrences.
            (
                "19970902",
                "FREQ=DAILY;INTERVAL=10;COUNT=5",
                "19970902 19970912 19970922 19971002 19971012",
            ),
            // Weekly for 10 occurrences.
            (
                "19970902",
                "FREQ=WEEKLY;COUNT=10",
                "19970902 19970909 19970916 19970923 19970930 19971007 19971014 19971021 19971028 19971104",
            ),
            // Every other week on Monday, Wednesday and Friday until December 24, 1997.
            (
                "19970901",
                "FREQ=WEEKLY;INTERVAL=2;UNTIL=19971224T000000Z;WKST=SU;BYDAY=MO,WE,FR",
                "19970901 19970903 19970905 19970915 19970917 19970919 19970929 19971001 19971003 \
                 19971013 19971015 19971017 19971027 19971029 19971031 19971110 19971112 19971114 \
                 19971124 19971126 19971128 19971208 19971210 19971212 19971222",
            ),
            // WKST matters: the same rule with weeks from Monday and from Sunday.
            (
                "19970805",
                "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO",
                "19970805 19970810 19970819 19970824",
            ),
            (
                "19970805",
                "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU",
                "19970805 19970817 19970819 19970831",
            ),
            // Monthly on the first Friday for 10 occurrences.
            (
                "19970905",
                "FREQ=MONTHLY;COUNT=10;BYDAY=1FR",
                "19970905 19971003 19971107 19971205 19980102 19980206 19980306 19980403 19980501 19980605",
            ),
            // Monthly on the second-to-last Monday for 6 months.
            (
                "19970922",
                "FREQ=MONTHLY;COUNT=6;BYDAY=-2MO",
                "19970922 19971020 19971117 19971222 19980119 19980216",
            ),
            // Monthly on the third-to-the-last day of the month.
            (
                "19970928",
                "FREQ=MONTHLY;BYMONTHDAY=-3",
                "19970928 19971029 19971128 19971229 19980129 19980226",
            ),
            // Monthly on the 2nd and 15th for 10 occurrences.
            (
                "19970902",
                "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=2,15",
                "19970902 19970915 19971002 19971015 19971102 19971115 19971202 19971215 19980102 19980115",
            ),
            // Every 18 months on the 10th through 15th, 10 occurrences.
            (
                "19970910",
                "FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15",
                "19970910 19970911 19970912 19970913 19970914 19970915 19990310 19990311 19990312 19990313",
            ),
            // Every Tuesday, every other month.
            (
                "19970902",
                "FREQ=MONTHLY;INTERVAL=2;BYDAY=TU",
                "19970902 19970909 19970916 19970923 19970930 19971104 19971111 19971118 19971125 \
                 19980106 19980113 19980120 19980127 19980303",
            ),
            // Yearly in June and July for 10 occurrences.
            (
                "19970610",
                "FREQ=YEARLY;COUNT=10;BYMONTH=6,7",
                "19970610 19970710 19980610 19980710 19990610 19990710 20000610 20000710 20010610 20010710",
            ),
            // Every other year in January, February and March, 10 occurrences.
            (
                "19970310",
                "FREQ=YEARLY;INTERVAL=2;COUNT=10;BYMONTH=1,2,3",
                "19970310 19990110 19990210 19990310 20010110 20010210 20010310 20030110 20030210 20030310",
            ),
            // Every third year on the 1st, 100th and 200th day, 10 occurrences.
            (
                "19970101",
                "FREQ=YEARLY;INTERVAL=3;COUNT=10;BYYEARDAY=1,100,200",
                "19970101 19970410 19970719 20000101 20000409 20000718 20030101 20030410 20030719 20060101",
            ),
            // Every 20th Monday of the year.
            (
                "19970519",
                "FREQ=YEARLY;BYDAY=20MO",
                "19970519 19980518 19990517",
            ),
            // Monday of week number 20.
            (
                "19970512",
                "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
                "19970512 19980511 19990517",
            ),
            // Every Thursday in March.
            (
                "19970313",
                "FREQ=YEARLY;BYMONTH=3;BYDAY=TH",
                "19970313 19970320 19970327 19980305 19980312 19980319 19980326 19990304",
            ),
            // The first Saturday that follows the first Sunday of the month.
            (
                "19970913",
                "FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13",
                "19970913 19971011 19971108 19971213 19980110 19980207 19980307 19980411 19980509 19980613",
            ),
            // US presidential election day.
            (
                "19961105",
                "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
                "19961105 20001107 20041102",
            ),
            // The third instance of a Tuesday, Wednesday or Thursday, for 3 months.
            (
                "19970904",
                "FREQ=MONTHLY;COUNT=3;BYDAY=TU,WE,TH;BYSETPOS=3",
                "19970904 19971007 19971106",
            ),
            // The second-to-last weekday of the month.
            (
                "19970929",
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2",
                "19970929 19971030 19971127 19971230 19980129 19980226 19980330",
            ),
            // A day the month lacks is skipped, not moved.
            (
                "20070115",
                "FREQ=MONTHLY;BYMONTHDAY=15,30;COUNT=5",
                "20070115 20070130 20070215 20070315 20070330",
            ),
        ];
        for (start, rule, want) in cases {
            let want = list(want);
            assert_eq!(expand(start, rule, want.len()), want, "{rule}");
        }
    }

    #[test]
    fn week_numbers_are_iso_weeks_that_cross_the_new_year() {
        // ISO week 53 of 2015, 2020 and 2026 ends in January; other years
        // have 52 weeks (python-dateutil gets some of these wrong).
        let days = expand("20150101", "FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO,FR", 9);
        assert_eq!(
            days,
            list(
                "20150101 20151228 20160101 20201228 20210101 20261228 20270101 20321227 20321231"
            )
        );
        // Weeks from Sunday: week 1 of 2025 starts on 2024-12-29, before
        // DTSTART, and 2026 has only three days before its Sunday.
        let days = expand("20250101", "FREQ=YEARLY;BYWEEKNO=1;BYDAY=SU;WKST=SU", 3);
        assert_eq!(days, list("20250101 20260104 20270103"));
    }

    #[test]
    fn every_day_of_january_for_three_years() {
        let days = expand(
            "19980101",
            "FREQ=YEARLY;UNTIL=20000131T140000Z;BYMONTH=1;BYDAY=SU,MO,TU,WE,TH,FR,SA",
            usize::MAX,
        );
        assert_eq!(days.len(), 93);
        assert_eq!(days.last().map(String::as_str), Some("20000131"));
    }

    #[test]
    fn friday_the_thirteenth_counts_its_start_as_rfc_5545_does() {
        // RFC 5545 lists this rule with EXDATE:19970902 because DTSTART is
        // an occurrence even when the rule does not match it.
        let days = expand("19970902", "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13", 6);
        assert_eq!(
            days,
            list("19970902 19980213 19980313 19981113 19990813 20001013")
        );
        let days = expand("19970902", "FREQ=MONTHLY;COUNT=2;BYDAY=FR;BYMONTHDAY=13", 9);
        assert_eq!(days, list("19970902 19980213"), "DTSTART is counted");
    }

    #[test]
    fn a_yearly_rule_from_the_29th_of_february_skips_common_years() {
        let days = expand("20240229", "FREQ=YEARLY;COUNT=3", 9);
        assert_eq!(days, list("20240229 20280229 20320229"));
    }

    #[test]
    fn days_stop_before_the_horizon_and_at_until() {
        let days = |rule: &str, start: &str, before: &str| {
            let rule: Recurrence = rule.parse().unwrap();
            rule.days(day(start), day(start), day(before)).unwrap()
        };
        assert_eq!(
            days("FREQ=YEARLY", "20261225", "20290101"),
            [day("20261225"), day("20271225"), day("20281225")]
        );
        assert_eq!(
            days("FREQ=YEARLY;UNTIL=20271225", "20261225", "20400101"),
            [day("20261225"), day("20271225")]
        );
        // A rule that matches nothing ends at the horizon, with its start.
        assert_eq!(
            days(
                "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30",
                "20260101",
                "20400101"
            ),
            [day("20260101")]
        );
    }

    #[test]
    fn a_rule_from_long_ago_is_looked_at_from_since_only() {
        // Daily from the year 1: the days from `since` on, and quickly.
        let rule: Recurrence = "FREQ=DAILY;INTERVAL=3".parse().unwrap();
        let days = rule
            .days(day("00010101"), day("20261201"), day("20261211"))
            .unwrap();
        assert_eq!(days.len(), 1 + 4, "{days:?}");
        assert_eq!(days[0], day("00010101"));
        // Every third day from 0001-01-01 is on the same grid.
        assert!(
            days[1..]
                .iter()
                .all(|d| (*d - day("00010101")).num_days() % 3 == 0)
        );
        // Every other week keeps its weeks when skipped ahead.
        let rule: Recurrence = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO".parse().unwrap();
        let days = rule
            .days(day("20260105"), day("20260301"), day("20260401"))
            .unwrap();
        assert_eq!(
            days,
            [
                day("20260105"),
                day("20260302"),
                day("20260316"),
                day("20260330")
            ]
        );
        // A COUNT counts from DTSTART: the days before `since` use it up.
        let rule: Recurrence = "FREQ=YEARLY;COUNT=3".parse().unwrap();
        let days = rule
            .days(day("20200704"), day("20210101"), day("20400101"))
            .unwrap();
        assert_eq!(days, [day("20200704"), day("20210704"), day("20220704")]);
        let rule: Recurrence = "FREQ=YEARLY;COUNT=2".parse().unwrap();
        let days = rule
            .days(day("20200704"), day("20220101"), day("20400101"))
            .unwrap();
        assert_eq!(days, [day("20200704")]);
        // Counting from the year 1 is refused, not slow.
        let rule: Recurrence = "FREQ=DAILY;COUNT=1000000".parse().unwrap();
        let error = rule
            .days(day("00010101"), day("20261201"), day("20320101"))
            .unwrap_err();
        assert!(error.starts_with("COUNT from 0001-01-01"), "{error}");
    }

    #[test]
    fn a_bad_rule_names_its_part() {
        let error = |rule: &str| rule.parse::<Recurrence>().unwrap_err();
        assert_eq!(error("COUNT=3"), "FREQ is missing");
        assert!(error("FREQ=FORTNIGHTLY").starts_with("FREQ=FORTNIGHTLY: not one of"));
        assert!(error("FREQ=HOURLY").contains("cannot repeat within a day"));
        assert!(error("FREQ=DAILY;BYHOUR=9").starts_with("BYHOUR=9: an all-day event"));
        assert!(error("FREQ=DAILY;INTERVAL=0").starts_with("INTERVAL=0: not a whole number"));
        assert!(error("FREQ=MONTHLY;BYMONTHDAY=32").starts_with("BYMONTHDAY=32: \"32\""));
        assert!(error("FREQ=MONTHLY;BYMONTHDAY=0").starts_with("BYMONTHDAY=0"));
        assert!(error("FREQ=MONTHLY;BYMONTH=13").starts_with("BYMONTH=13"));
        assert!(error("FREQ=MONTHLY;BYDAY=1XX").starts_with("BYDAY=1XX"));
        assert!(error("FREQ=MONTHLY;BYDAY=99MO").starts_with("BYDAY=99MO"));
        assert!(error("FREQ=WEEKLY;BYDAY=1MO").starts_with("BYDAY: a numbered weekday"));
        assert!(error("FREQ=MONTHLY;BYWEEKNO=3").starts_with("BYWEEKNO"));
        assert!(error("FREQ=YEARLY;COUNT=2;UNTIL=20300101").starts_with("COUNT and UNTIL"));
        assert!(error("FREQ=YEARLY;UNTIL=soon").starts_with("UNTIL=soon: not a date"));
        assert!(error("FREQ=YEARLY;COLOR=red").starts_with("COLOR: not a rule part"));
        assert!(error("FREQ=YEARLY;BYMONTH").contains("is not NAME=VALUE"));
    }
}
