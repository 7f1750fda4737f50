//! Cron fire times, with cronie's daylight-saving rules (DESIGN.md §3).
//!
//! croner matches the pattern against wall-clock times; it is always asked
//! in naive UTC, where no clock jumps, and this module maps wall-clock
//! matches to real instants itself. croner has DST handling of its own, but
//! it calls a job "fixed-time" only when second, minute and hour are single
//! values, so `0,30 2 * * *` would vanish on a spring-forward night; cronie
//! (and Cronhook) look only at whether the minute or hour field starts with
//! `*`.
//!
//! - *periodic* (minute or hour starts with `*`): every real instant whose
//!   local time matches. Nothing in a skipped hour; both passes of a
//!   repeated hour.
//! - *fixed-time* (anything else): a matching wall time that does not exist
//!   fires at the first instant after the gap; one that exists twice fires at
//!   its first occurrence. Several wall times mapping to one instant fire once.
//!
//! Offsets come from jiff's zones (zone.rs), which follow each zone's rule
//! past the end of its table, so daylight-saving time goes on after 2099.
//! A periodic pattern whose every match falls in a gap never fires: parse
//! refuses it.

use std::sync::{LazyLock, Mutex};

use super::Zone;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use croner::parser::{CronParser, Seconds};
use croner::{Cron, Weekday};
use hashlink::LruCache;
use jiff::tz::TimeZone as Rules;

use super::zone;
use crate::domain::error::Reason;

mod syntax;

/// A validated cron expression in a time zone.
#[derive(Clone)]
pub struct CronSchedule {
    expr: String,
    /// A wall time matches when it matches any of these: one pattern, or
    /// two when day-of-month lists both `L` and `LW`, which croner reads
    /// as `LW` alone. (Heap-held: a parsed pattern is a few hundred bytes
    /// of bitsets.)
    crons: Vec<Cron>,
    timezone: Zone,
    /// The zone's offsets, past the end of its table too (see zone.rs).
    rules: Rules,
    periodic: bool,
}

/// Upper bound on the steps of one search; real zones need a handful.
const MAX_SEARCH_STEPS: usize = 10_000;

/// The expression and its zone: croner's bitsets would fill a screen.
impl std::fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CronSchedule")
            .field("expr", &self.expr)
            .field("timezone", &self.timezone.name())
            .finish()
    }
}

/// Schedules already parsed, by expression and zone: every claim parses
/// each due job's stored trigger (issue 23), and the jobs due together
/// mostly share a few expressions. Bounded; the least recently used goes.
static PARSED: LazyLock<Mutex<LruCache<(String, Zone), CronSchedule>>> =
    LazyLock::new(|| Mutex::new(LruCache::new(PARSED_KEPT)));
const PARSED_KEPT: usize = 4096;

impl CronSchedule {
    /// [`Self::parse`], answered from the schedules parsed before when
    /// `expr` in `timezone` is one of them (errors are not kept).
    pub fn parse_cached(expr: &str, timezone: Zone) -> Result<Self, Reason> {
        let parsed = || PARSED.lock().unwrap_or_else(|e| e.into_inner());
        let key = (expr.to_string(), timezone);
        if let Some(schedule) = parsed().get(&key) {
            return Ok(schedule.clone());
        }
        let schedule = Self::parse(expr, timezone)?;
        parsed().insert(key, schedule.clone());
        Ok(schedule)
    }

    /// Parses `expr` (5 fields, or 6 with leading seconds, or a macro).
    /// The error names the cron field it is about, never croner's
    /// reading of it; the caller says where the expression sits.
    pub fn parse(expr: &str, timezone: Zone) -> Result<Self, Reason> {
        let parsed = syntax::parse(expr)?;
        let mut crons = parsed
            .patterns
            .iter()
            .map(|pattern| {
                // The syntax module hands over only what croner reads; an
                // error here is a gap between the two, not bad input.
                parser(parsed.both_days)
                    .parse(pattern)
                    .map_err(|e| format!("invalid expression: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A pattern that matches no date would send croner searching to
        // the year 5000 on every call (tens of milliseconds); one half of
        // an `L,LW` split can be such a pattern (`LW` on Sundays only).
        crons.retain(matches_some_date);
        if crons.is_empty() {
            return Err(
                "never fires: no calendar date matches its day-of-month, month and day-of-week"
                    .into(),
            );
        }
        let rules = zone::rules(timezone)
            .ok_or_else(|| format!("no rules for the time zone {}", timezone.name()))?;
        let schedule = Self {
            expr: expr.trim().to_string(),
            crons,
            timezone,
            rules,
            periodic: parsed.periodic,
        };
        // A fixed-time pattern fires on every matching date, in a gap too;
        // a periodic one skips gaps, and can match nothing else. Past its
        // table a zone follows one yearly rule, and weekdays repeat every
        // 400 years, so 400 years from 2100 hold every case that will come.
        let (start, end) = (from_seconds(RULE_YEARS_START), from_seconds(RULE_YEARS_END));
        if schedule.periodic
            && zone::has_transitions_after(&schedule.rules, start)
            && schedule.next_periodic(start, Some(end)).is_none()
        {
            return Err(format!(
                "never fires in {}: every time it matches is skipped by a daylight-saving \
                 change, and a pattern whose minute or hour starts with * skips such times",
                timezone.name()
            )
            .into());
        }
        Ok(schedule)
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Zone {
        self.timezone
    }

    /// The pattern in English words, as croner reads it ("At 02:30.").
    pub fn describe(&self) -> String {
        let words: Vec<String> = self.crons.iter().map(Cron::describe).collect();
        words.join(" Or: ")
    }

    /// True when the wall-clock minute `wall` falls in matches the pattern
    /// (its seconds ignored): a calendar's `cron` rule (§11.4).
    pub fn matches_minute(&self, wall: NaiveDateTime) -> bool {
        let minute = wall
            .with_second(0)
            .and_then(|w| w.with_nanosecond(0))
            .unwrap_or(wall);
        self.crons
            .iter()
            .any(|c| c.is_time_matching(&minute).unwrap_or(false))
    }

    /// True when the minute or hour field starts with `*` (see module docs).
    pub fn is_periodic(&self) -> bool {
        self.periodic
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.periodic {
            self.next_periodic(after, None)
        } else {
            self.next_fixed(after)
        }
    }

    /// Fixed-time: each matching wall time maps to its earliest instant (or
    /// the end of a gap); that map never decreases, so the answer is the
    /// first match whose instant lies after `after`. Only wall times of a
    /// repeated hour can map behind `after`, so the loop is short.
    fn next_fixed(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = self.local_at(after);
        for _ in 0..MAX_SEARCH_STEPS {
            let candidate = self.next_wall(wall, false)?;
            let at = self.earliest_instant(candidate);
            if at > after {
                return Some(at);
            }
            wall = candidate;
        }
        None
    }

    /// Periodic: walk the UTC line one constant-offset stretch at a time; in
    /// each stretch wall time is UTC plus a fixed offset, so croner's next
    /// wall-clock match is a real instant unless the offset changes first.
    /// With `until`, gives up on reaching it.
    fn next_periodic(
        &self,
        after: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let mut from = after;
        let mut inclusive = false;
        for _ in 0..MAX_SEARCH_STEPS {
            if until.is_some_and(|until| from > until) {
                return None;
            }
            let offset = self.offset_at(from);
            let wall = from.naive_utc() + offset;
            let candidate_wall = self.next_wall(wall, inclusive)?;
            let candidate = (candidate_wall - offset).and_utc();
            match self.first_offset_change(from, candidate, offset) {
                None => return Some(candidate),
                Some(change) => {
                    from = change;
                    inclusive = true;
                }
            }
        }
        None
    }

    /// The next wall-clock time matching the pattern, from `wall` (which it
    /// includes when `inclusive`); croner works in whole seconds, so a
    /// fractional start rounds up.
    fn next_wall(&self, wall: NaiveDateTime, inclusive: bool) -> Option<NaiveDateTime> {
        let whole = wall.with_nanosecond(0)?;
        let (from, inclusive) = if whole == wall {
            (whole, inclusive)
        } else {
            (whole.checked_add_signed(TimeDelta::seconds(1))?, true)
        };
        let from = Utc.from_utc_datetime(&from);
        self.crons
            .iter()
            .filter_map(|cron| cron.find_next_occurrence(&from, inclusive).ok())
            .min()
            .map(|t| t.naive_utc())
    }

    fn offset_at(&self, t: DateTime<Utc>) -> TimeDelta {
        TimeDelta::seconds(zone::offset_at(&self.rules, t).into())
    }

    fn local_at(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.naive_utc() + self.offset_at(t)
    }

    /// The instant a fixed-time match fires at: itself, the first of two,
    /// or the first instant after a gap (the transition that made it).
    fn earliest_instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        zone::earliest_instant(&self.rules, wall)
    }

    /// The first instant in `(from, to]` whose offset differs from `offset`
    /// (the offset at `from`): the zone's next transition that changes it.
    fn first_offset_change(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        offset: TimeDelta,
    ) -> Option<DateTime<Utc>> {
        // Transitions fall on whole seconds: those after `from`'s second
        // are the ones after `from`.
        for transition in self.rules.following(zone::timestamp(from)) {
            let at = zone::instant(transition.timestamp());
            if at > to {
                return None;
            }
            if i64::from(transition.offset().seconds()) != offset.num_seconds() {
                return Some(at);
            }
        }
        None
    }
}

/// 2100-01-01T00:00:00Z: by then every zone follows the yearly rule at the
/// end of its table.
const RULE_YEARS_START: i64 = 4_102_444_800;
/// 2500-01-01T00:00:00Z: 400 years on, the weekdays of the calendar (and
/// so the rule's transitions and the pattern's dates) have come round.
const RULE_YEARS_END: i64 = 16_725_225_600;

fn from_seconds(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether `cron` matches any date (every time field has a value, so any
/// date means a match). Whether a date matches depends on its month, day,
/// weekday and month length only, and each month starts on every weekday,
/// in leap years too for February, within the 28 years from 2000: those
/// days decide it, without croner's open-ended search.
fn matches_some_date(cron: &Cron) -> bool {
    let pattern = &cron.pattern;
    (2000..2028).any(|year| {
        (1..=12).any(|month| {
            pattern.month_match(month).unwrap_or(false)
                && NaiveDate::from_ymd_opt(year, month, 1).is_some_and(|first| {
                    first
                        .iter_days()
                        .take_while(|d| d.month() == month)
                        .any(|d| {
                            let weekday =
                                Weekday::from_days_from_sunday(d.weekday().num_days_from_sunday());
                            pattern
                                .day_match(year, month, d.day(), weekday)
                                .unwrap_or(false)
                        })
                })
        })
    })
}

/// croner's parser; `both_days` asks a day to match day-of-month and
/// day-of-week both, else either (croner's own `*` handling then agrees).
fn parser(both_days: bool) -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .dom_and_dow(both_days)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        crate::domain::instant::parse(s).unwrap()
    }

    fn schedule(expr: &str, tz: &str) -> CronSchedule {
        CronSchedule::parse(expr, tz.parse().unwrap()).unwrap()
    }

    /// All fire times in `(after, until]`, as RFC 3339 UTC strings.
    fn fires(expr: &str, tz: &str, after: &str, until: &str) -> Vec<String> {
        let s = schedule(expr, tz);
        let until = utc(until);
        let mut t = utc(after);
        let mut out = Vec::new();
        while let Some(next) = s.next_after(t) {
            if next > until {
                break;
            }
            assert!(next > t, "{expr}: {next} not after {t}");
            out.push(crate::domain::instant::format(&next));
            t = next;
        }
        out
    }

    fn err(expr: &str) -> String {
        CronSchedule::parse(expr, Zone::UTC)
            .err()
            .unwrap_or_else(|| panic!("{expr:?} was accepted"))
            .into()
    }

    #[test]
    fn a_cached_schedule_is_the_one_parse_answers_in_its_own_zone() {
        let after = utc("2026-03-08T06:00:00Z");
        for _ in 0..2 {
            let berlin = CronSchedule::parse_cached("30 2 * * *", "Europe/Berlin".parse().unwrap());
            let new_york =
                CronSchedule::parse_cached("30 2 * * *", "America/New_York".parse().unwrap());
            // Same expression, another zone: another schedule.
            assert_eq!(
                berlin.unwrap().next_after(after),
                Some(utc("2026-03-09T01:30:00Z"))
            );
            // 02:30 does not exist in New York on 2026-03-08: the cached
            // schedule answers that day as a fresh parse does.
            assert_eq!(
                new_york.unwrap().next_after(after),
                schedule("30 2 * * *", "America/New_York").next_after(after)
            );
        }
    }

    #[test]
    fn a_cached_parse_still_refuses_bad_expressions_every_time() {
        for _ in 0..2 {
            assert!(CronSchedule::parse_cached("61 * * * *", Zone::UTC).is_err());
        }
    }

    #[test]
    fn rejects_wrong_field_count() {
        assert_eq!(
            err("* * * *"),
            "expected 5 or 6 fields (6 with leading seconds), got 4"
        );
        assert!(err("* * * * * * *").contains("got 7"));
        assert_eq!(err("   "), "must not be empty");
    }

    #[test]
    fn names_the_field_out_of_range() {
        assert_eq!(
            err("61 * * * *"),
            "minute field \"61\": 61 is out of range 0-59"
        );
        assert!(err("0 24 * * *").starts_with("hour field \"24\""));
        assert!(err("0 0 32 * *").starts_with("day-of-month field \"32\""));
        assert!(err("0 0 * 13 *").starts_with("month field \"13\""));
        assert!(err("0 0 * * 8").starts_with("day-of-week field \"8\""));
        assert!(err("60 * * * * *").starts_with("second field \"60\""));
    }

    #[test]
    fn rejects_empty_list_items_and_zero_steps() {
        assert_eq!(
            err("1,,2 * * * *"),
            "minute field \"1,,2\": empty list item"
        );
        assert_eq!(err(", * * * *"), "minute field \",\": empty list item");
        assert!(
            err("*/0 * * * *").contains("step cannot be zero"),
            "{}",
            err("*/0 * * * *")
        );
        assert!(err("0 x * * *").starts_with("hour field \"x\""));
    }

    #[test]
    fn rejects_patterns_that_never_fire() {
        assert!(err("0 0 30 2 *").starts_with("never fires"));
        assert!(err("0 0 31 4,6,9,11 *").starts_with("never fires"));
        // A rare but real date is fine: 29 February.
        CronSchedule::parse("0 0 29 2 *", Zone::UTC).unwrap();
    }

    #[test]
    fn rejects_unknown_macros() {
        assert!(err("@reboot").starts_with("unknown macro \"@reboot\""));
    }

    #[test]
    fn macros_expand() {
        let after = "2026-05-10T10:20:00Z";
        assert_eq!(
            fires("@hourly", "UTC", after, "2026-05-10T11:00:00Z"),
            ["2026-05-10T11:00:00Z"]
        );
        assert_eq!(
            fires("@daily", "UTC", after, "2026-05-11T00:00:00Z"),
            ["2026-05-11T00:00:00Z"]
        );
        assert_eq!(
            fires("@weekly", "UTC", after, "2026-05-17T00:00:00Z"),
            ["2026-05-17T00:00:00Z"]
        );
        assert_eq!(
            fires("@monthly", "UTC", after, "2026-06-01T00:00:00Z"),
            ["2026-06-01T00:00:00Z"]
        );
        assert_eq!(
            fires("@yearly", "UTC", after, "2027-01-01T00:00:00Z"),
            ["2027-01-01T00:00:00Z"]
        );
        assert_eq!(
            fires("@ANNUALLY", "UTC", after, "2027-01-01T00:00:00Z"),
            ["2027-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn weekday_zero_and_seven_are_sunday_and_names_work() {
        // 2026-05-10 is a Sunday.
        let sunday = ["2026-05-10T09:00:00Z"];
        assert_eq!(
            fires(
                "0 9 * * 0",
                "UTC",
                "2026-05-09T00:00:00Z",
                "2026-05-16T00:00:00Z"
            ),
            sunday
        );
        assert_eq!(
            fires(
                "0 9 * * 7",
                "UTC",
                "2026-05-09T00:00:00Z",
                "2026-05-16T00:00:00Z"
            ),
            sunday
        );
        assert_eq!(
            fires(
                "0 9 * * sun",
                "UTC",
                "2026-05-09T00:00:00Z",
                "2026-05-16T00:00:00Z"
            ),
            sunday
        );
        assert_eq!(
            fires(
                "0 9 * * mon-fri",
                "UTC",
                "2026-05-09T00:00:00Z",
                "2026-05-16T00:00:00Z"
            )
            .len(),
            5
        );
        assert_eq!(
            fires(
                "0 0 1 jan,jul *",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z"
            ),
            ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn sunday_ends_a_range_as_seven_unless_the_range_starts_on_sunday() {
        // 2026-05-10 is a Sunday.
        let week = |expr: &str| {
            fires(expr, "UTC", "2026-05-09T12:00:00Z", "2026-05-16T12:00:00Z")
                .into_iter()
                .map(|t| t[8..10].to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(week("0 0 * * sun-sun"), ["10"]);
        assert_eq!(week("0 0 * * 0-sun"), ["10"]);
        assert_eq!(week("0 0 * * SUN-Sun"), ["10"]);
        assert_eq!(week("0 0 * * 7-sun"), ["10"]);
        assert_eq!(week("0 0 * * fri-sun"), ["10", "15", "16"]);
        assert_eq!(week("0 0 * * thu-sun/3"), ["10", "14"]); // 4 and 7
        assert_eq!(week("0 0 * * mon-sun").len(), 7);
        assert_eq!(week("0 0 * * sun-sat").len(), 7);
        assert_eq!(week("0 0 * * 0-7").len(), 7);
        assert_eq!(week("0 0 * * sat,sun"), ["10", "16"]);
    }

    #[test]
    fn names_only_count_in_their_own_field() {
        for (expr, message) in [
            (
                "0 0 1 mon *",
                "month field \"mon\": \"mon\" is a day name, allowed only in the day-of-week field",
            ),
            (
                "0 0 * * jan",
                "day-of-week field \"jan\": \"jan\" is a month name, allowed only in the month field",
            ),
            (
                "jan 0 * * *",
                "minute field \"jan\": \"jan\" is a month name, allowed only in the month field",
            ),
            (
                "0 mon * * *",
                "hour field \"mon\": \"mon\" is a day name, allowed only in the day-of-week field",
            ),
            (
                "0 0 sat * *",
                "day-of-month field \"sat\": \"sat\" is a day name, allowed only in the day-of-week field",
            ),
            (
                "0 0 1 * +mon",
                "day-of-week field \"+mon\": \"+\" is not crontab syntax; the two day fields \
                 combine by cronie's rule (both must match when either starts with *)",
            ),
        ] {
            assert_eq!(err(expr), message, "{expr}");
        }
    }

    #[test]
    fn messages_speak_of_what_was_written() {
        for (expr, message) in [
            (
                "0 0 * * monday",
                "day-of-week field \"monday\": unknown name \"monday\"; expected sun-sat",
            ),
            (
                "0 0 * january *",
                "month field \"january\": unknown name \"january\"; expected jan-dec",
            ),
            (
                "0 0 * jul-aug/sun *",
                "month field \"jul-aug/sun\": step \"sun\" is not a number",
            ),
            (
                "0 0 * * L",
                "day-of-week field \"L\": L alone is not a day of the week: write 5L for \
                 the last Friday of the month (the last day of the month is L in the \
                 day-of-month field)",
            ),
            (
                "0 0 1 1 * 2027",
                "day-of-week field \"2027\": 2027 is out of range 0-7; a year field is \
                 not supported, and six fields mean a leading seconds field",
            ),
            (
                "0 0 1 1 * 2027 x",
                "expected 5 or 6 fields (6 with leading seconds), got 7; a year field is \
                 not supported, and six fields mean a leading seconds field",
            ),
        ] {
            assert_eq!(err(expr), message, "{expr}");
        }
    }

    #[test]
    fn last_weekday_nearest_and_nth() {
        let after = "2026-01-31T12:00:00Z";
        // L: last day of February 2026.
        assert_eq!(
            fires("0 0 L * *", "UTC", after, "2026-02-28T00:00:00Z"),
            ["2026-02-28T00:00:00Z"]
        );
        // 5#L: last Friday of February 2026 is the 27th.
        assert_eq!(
            fires("0 0 * * 5#L", "UTC", after, "2026-02-27T00:00:00Z"),
            ["2026-02-27T00:00:00Z"]
        );
        // 5#2: second Friday of February 2026 is the 13th.
        assert_eq!(
            fires("0 0 * * 5#2", "UTC", after, "2026-02-13T00:00:00Z"),
            ["2026-02-13T00:00:00Z"]
        );
        // 15W: 15 February 2026 is a Sunday, so Monday the 16th.
        assert_eq!(
            fires("0 0 15W * *", "UTC", after, "2026-02-16T00:00:00Z"),
            ["2026-02-16T00:00:00Z"]
        );
    }

    #[test]
    fn every_month_shape_occurs_within_the_28_years_scanned() {
        // (month, length, weekday of the 1st): 12 months on 7 weekdays, and
        // 29-day Februaries on 7 more.
        let mut shapes = std::collections::BTreeSet::new();
        for year in 2000..2028 {
            for month in 1..=12 {
                let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap();
                let length = first.iter_days().take_while(|d| d.month() == month);
                let weekday = first.weekday().num_days_from_sunday();
                shapes.insert((month, length.count(), weekday));
            }
        }
        assert_eq!(shapes.len(), 12 * 7 + 7);
    }

    #[test]
    fn a_half_of_a_split_that_matches_nothing_is_dropped() {
        // `LW` is never a Sunday: only the `L` half can fire, and parsing
        // and searching cost no open-ended search.
        let s = schedule("30 1 L,LW * */7", "UTC");
        assert_eq!(s.crons.len(), 1);
        assert_eq!(
            fires(
                "30 1 L,LW * */7",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-06-01T00:00:00Z"
            ),
            ["2026-05-31T01:30:00Z"] // the only month in this span ending on a Sunday
        );
        assert!(err("0 0 LW * */7").starts_with("never fires"));
        // The 1st or last of February on its second Monday: never.
        assert!(err("0 0 */31,L,LW 2 1#2").starts_with("never fires"));
    }

    #[test]
    fn nearest_weekday_to_a_day_the_month_lacks_does_not_fire_that_month() {
        // 31W: Tuesday 31 March, nothing in April (30 days), Friday 29 May
        // for Sunday the 31st. The weekday stays within its month.
        assert_eq!(
            fires(
                "0 0 31W * *",
                "UTC",
                "2026-03-01T00:00:00Z",
                "2026-06-30T00:00:00Z"
            ),
            ["2026-03-31T00:00:00Z", "2026-05-29T00:00:00Z"]
        );
        // 30W skips February, and 29W skips it outside leap years.
        let februaries = |expr: &str| {
            fires(expr, "UTC", "2026-01-31T12:00:00Z", "2028-03-01T00:00:00Z")
                .into_iter()
                .filter(|t| t[5..7] == *"02")
                .collect::<Vec<_>>()
        };
        assert_eq!(februaries("0 0 30W * *"), [] as [String; 0]);
        assert_eq!(februaries("0 0 29W * *"), ["2028-02-29T00:00:00Z"]);
        // 1W on a Saturday is Monday the 3rd, not the last day before.
        assert_eq!(
            fires(
                "0 0 1W * *",
                "UTC",
                "2026-07-31T00:00:00Z",
                "2026-08-31T00:00:00Z"
            ),
            ["2026-08-03T00:00:00Z"]
        );
    }

    #[test]
    fn last_day_and_last_weekday_together_are_both_kept() {
        // 2026-01-31 is a Saturday: L is the 31st, LW Friday the 30th.
        // 2026-02-28 is a Saturday too: the 27th and the 28th.
        let both = [
            "2026-01-31T00:00:00Z",
            "2026-02-27T00:00:00Z",
            "2026-02-28T00:00:00Z",
            "2026-03-31T00:00:00Z", // a Tuesday: L and LW are one day
        ];
        for expr in ["0 0 L,LW * *", "0 0 LW,L * *", "0 0 lw,l * *"] {
            assert_eq!(
                fires(expr, "UTC", "2026-01-30T00:00:00Z", "2026-03-31T00:00:00Z"),
                both,
                "{expr}"
            );
        }
        // With other days in the list, and with a day-of-week (OR).
        assert_eq!(
            fires(
                "0 0 1,L,LW * *",
                "UTC",
                "2026-01-30T00:00:00Z",
                "2026-02-28T00:00:00Z"
            ),
            [
                "2026-01-31T00:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-02-27T00:00:00Z",
                "2026-02-28T00:00:00Z"
            ]
        );
        assert_eq!(
            fires(
                "0 0 L,LW * 3",
                "UTC",
                "2026-01-30T00:00:00Z",
                "2026-02-11T00:00:00Z"
            ),
            [
                "2026-01-31T00:00:00Z",
                "2026-02-04T00:00:00Z",
                "2026-02-11T00:00:00Z"
            ]
        );
    }

    #[test]
    fn day_of_month_and_week_combine_with_or_when_both_are_restricted() {
        // The 13th, or any Friday.
        let got = fires(
            "0 0 13 * fri",
            "UTC",
            "2026-02-01T00:00:00Z",
            "2026-02-28T00:00:00Z",
        );
        assert_eq!(
            got,
            [
                "2026-02-06T00:00:00Z",
                "2026-02-13T00:00:00Z",
                "2026-02-20T00:00:00Z",
                "2026-02-27T00:00:00Z"
            ]
        );
    }

    #[test]
    fn a_day_field_starting_with_a_star_makes_both_day_fields_apply_as_in_cronie() {
        // Mondays that are odd days of the month.
        assert_eq!(
            fires(
                "0 0 */2 * 1",
                "UTC",
                "2026-06-02T00:00:00Z",
                "2026-07-14T00:00:00Z"
            ),
            [
                "2026-06-15T00:00:00Z",
                "2026-06-29T00:00:00Z",
                "2026-07-13T00:00:00Z"
            ]
        );
        // `*/1` is every day, so this is every Monday.
        assert_eq!(
            fires(
                "0 0 */1 * 1",
                "UTC",
                "2026-06-02T00:00:00Z",
                "2026-06-23T00:00:00Z"
            ),
            [
                "2026-06-08T00:00:00Z",
                "2026-06-15T00:00:00Z",
                "2026-06-22T00:00:00Z"
            ]
        );
        // The first of the month when it is a Sunday, Tuesday, Thursday or
        // Saturday.
        let firsts: Vec<String> = fires(
            "0 0 1 * */2",
            "UTC",
            "2025-12-31T00:00:00Z",
            "2026-12-31T00:00:00Z",
        );
        assert_eq!(
            firsts,
            [
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
                "2026-08-01T00:00:00Z",
                "2026-09-01T00:00:00Z",
                "2026-10-01T00:00:00Z",
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z"
            ]
        );
        // A plain `*` leaves the other field alone either way.
        assert_eq!(
            fires(
                "0 0 * * 1",
                "UTC",
                "2026-06-02T00:00:00Z",
                "2026-06-09T00:00:00Z"
            ),
            ["2026-06-08T00:00:00Z"]
        );
        assert_eq!(
            fires(
                "0 0 13 * *",
                "UTC",
                "2026-06-02T00:00:00Z",
                "2026-07-14T00:00:00Z"
            ),
            ["2026-06-13T00:00:00Z", "2026-07-13T00:00:00Z"]
        );
        // An AND of days that never meet never fires.
        assert!(err("0 0 31 2 */1").starts_with("never fires"));
    }

    #[test]
    fn seconds_field_is_optional() {
        assert_eq!(
            fires(
                "*/20 * * * * *",
                "UTC",
                "2026-05-10T10:00:00Z",
                "2026-05-10T10:01:00Z"
            ),
            [
                "2026-05-10T10:00:20Z",
                "2026-05-10T10:00:40Z",
                "2026-05-10T10:01:00Z"
            ]
        );
    }

    #[test]
    fn fractional_start_rounds_up_and_stays_strict() {
        let s = schedule("* * * * * *", "UTC");
        assert_eq!(
            s.next_after(utc("2026-05-10T10:00:00.5Z")),
            Some(utc("2026-05-10T10:00:01Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-05-10T10:00:00Z")),
            Some(utc("2026-05-10T10:00:01Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-05-10T09:59:59.999999Z")),
            Some(utc("2026-05-10T10:00:00Z"))
        );
    }

    #[test]
    fn classifies_periodic_and_fixed() {
        assert!(schedule("*/15 * * * *", "UTC").is_periodic());
        assert!(schedule("0 * * * *", "UTC").is_periodic());
        assert!(schedule("@hourly", "UTC").is_periodic());
        assert!(schedule("* * * * * *", "UTC").is_periodic());
        assert!(schedule("0 */2 * * *", "UTC").is_periodic());
        assert!(!schedule("30 2 * * *", "UTC").is_periodic());
        assert!(!schedule("0,30 1-3 * * *", "UTC").is_periodic());
        assert!(!schedule("@daily", "UTC").is_periodic());
    }

    // --- Daylight saving time -------------------------------------------
    //
    // America/New_York: spring forward 2026-03-08 02:00 EST -> 03:00 EDT
    // (07:00Z); fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).

    #[test]
    fn new_york_daily_in_the_gap_fires_once_after_it() {
        let got = fires(
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T00:00:00Z",
            "2026-03-09T12:00:00Z",
        );
        assert_eq!(
            got,
            [
                "2026-03-07T07:30:00Z", // 02:30 EST
                "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT
                "2026-03-09T06:30:00Z", // 02:30 EDT
            ]
        );
    }

    #[test]
    fn new_york_daily_in_the_overlap_fires_once_at_the_first_pass() {
        let got = fires(
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            "2026-11-02T12:00:00Z",
        );
        assert_eq!(
            got,
            [
                "2026-10-31T05:30:00Z", // 01:30 EDT
                "2026-11-01T05:30:00Z", // 01:30 EDT, first pass only
                "2026-11-02T06:30:00Z", // 01:30 EST
            ]
        );
    }

    #[test]
    fn a_fixed_pattern_with_several_times_in_the_gap_fires_once() {
        let got = fires(
            "0,30 2 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            "2026-03-08T12:00:00Z",
        );
        assert_eq!(got, ["2026-03-08T07:00:00Z"]);
        let got = fires(
            "0 2,3 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            "2026-03-08T12:00:00Z",
        );
        assert_eq!(got, ["2026-03-08T07:00:00Z"]);
    }

    #[test]
    fn a_fixed_pattern_queried_from_the_second_pass_does_not_repeat() {
        let s = schedule("30 1 * * *", "America/New_York");
        // 01:10 EST, inside the repeated hour's second pass.
        assert_eq!(
            s.next_after(utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
        let s = schedule("0 2 * * *", "America/New_York");
        assert_eq!(
            s.next_after(utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-01T07:00:00Z"))
        );
    }

    #[test]
    fn new_york_hourly_skips_the_gap_and_repeats_the_overlap() {
        let spring = fires(
            "0 * * * *",
            "America/New_York",
            "2026-03-08T05:30:00Z",
            "2026-03-08T08:00:00Z",
        );
        assert_eq!(
            spring,
            [
                "2026-03-08T06:00:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T08:00:00Z"
            ] // 01:00 EST, 03:00 EDT, 04:00 EDT
        );
        let fall = fires(
            "0 * * * *",
            "America/New_York",
            "2026-11-01T04:30:00Z",
            "2026-11-01T07:00:00Z",
        );
        assert_eq!(
            fall,
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z"
            ] // 01:00 EDT, 01:00 EST, 02:00 EST
        );
    }

    #[test]
    fn new_york_every_15_minutes_across_both_transitions() {
        let spring = fires(
            "*/15 * * * *",
            "America/New_York",
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:30:00Z",
        );
        // Real time keeps a 15-minute grid: 01:45 EST is followed by 03:00 EDT.
        assert_eq!(
            spring,
            [
                "2026-03-08T06:45:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:15:00Z",
                "2026-03-08T07:30:00Z"
            ]
        );
        let fall = fires(
            "*/15 * * * *",
            "America/New_York",
            "2026-11-01T04:45:00Z",
            "2026-11-01T07:00:00Z",
        );
        // 01:00..01:45 twice: nine fire times in two hours and a quarter.
        assert_eq!(fall.len(), 9);
        assert_eq!(fall[0], "2026-11-01T05:00:00Z");
        assert_eq!(fall[4], "2026-11-01T06:00:00Z");
        assert_eq!(fall[8], "2026-11-01T07:00:00Z");
    }

    #[test]
    fn every_second_is_real_time_through_both_transitions() {
        let spring = fires(
            "* * * * * *",
            "America/New_York",
            "2026-03-08T06:59:58Z",
            "2026-03-08T07:00:01Z",
        );
        assert_eq!(
            spring,
            [
                "2026-03-08T06:59:59Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:00:01Z"
            ]
        );
        let fall = fires(
            "* * * * * *",
            "America/New_York",
            "2026-11-01T05:59:58Z",
            "2026-11-01T06:00:01Z",
        );
        assert_eq!(
            fall,
            [
                "2026-11-01T05:59:59Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:00:01Z"
            ]
        );
        // A whole DST day, second by second: 23 h in spring, 25 h in autumn.
        let s = schedule("* * * * * *", "America/New_York");
        let count = |from: &str, to: &str| {
            let (mut t, end) = (utc(from), utc(to));
            let mut n = 0;
            while let Some(next) = s.next_after(t) {
                if next > end {
                    break;
                }
                n += 1;
                t = next;
            }
            n
        };
        assert_eq!(
            count("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"),
            23 * 3600
        );
        assert_eq!(
            count("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"),
            25 * 3600
        );
    }

    // Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z);
    // 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).

    #[test]
    fn berlin_daily_hourly_and_quarter_hourly() {
        let daily_spring = fires(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T00:00:00Z",
            "2026-03-30T12:00:00Z",
        );
        assert_eq!(
            daily_spring,
            [
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z"
            ]
        );
        let daily_fall = fires(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T00:00:00Z",
            "2026-10-26T12:00:00Z",
        );
        assert_eq!(
            daily_fall,
            [
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z"
            ]
        );

        let hourly_spring = fires(
            "0 * * * *",
            "Europe/Berlin",
            "2026-03-28T23:30:00Z",
            "2026-03-29T02:00:00Z",
        );
        assert_eq!(
            hourly_spring,
            [
                "2026-03-29T00:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T02:00:00Z"
            ]
        );
        let hourly_fall = fires(
            "0 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:30:00Z",
            "2026-10-25T02:00:00Z",
        );
        // 02:00 CEST (00:00Z), 02:00 CET (01:00Z), 03:00 CET (02:00Z)
        assert_eq!(
            hourly_fall,
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T02:00:00Z"
            ]
        );

        let quarter = fires(
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:59:00Z",
            "2026-10-25T02:00:00Z",
        );
        assert_eq!(quarter.len(), 9); // 02:00..02:45 twice, then 03:00 CET
        let quarter = fires(
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:30:00Z",
        );
        assert_eq!(
            quarter,
            [
                "2026-03-29T00:45:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:15:00Z",
                "2026-03-29T01:30:00Z"
            ]
        );
    }

    #[test]
    fn berlin_every_second_day_lengths() {
        let s = schedule("* * * * * *", "Europe/Berlin");
        let day = |from: &str, to: &str| {
            let (mut t, end, mut n) = (utc(from), utc(to), 0);
            while let Some(next) = s.next_after(t) {
                if next > end {
                    break;
                }
                n += 1;
                t = next;
            }
            n
        };
        assert_eq!(
            day("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"),
            23 * 3600
        );
        assert_eq!(
            day("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"),
            25 * 3600
        );
    }

    // Australia/Lord_Howe shifts by 30 minutes: 2026-04-05 02:00 (+11)
    // -> 01:30 (+10:30) at 15:00Z on the 4th; 2026-10-04 02:00 (+10:30)
    // -> 02:30 (+11) at 15:30Z on the 3rd.

    #[test]
    fn lord_howe_half_hour_transitions() {
        // Spring forward: 02:00..02:29 do not exist.
        let daily = fires(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-02T00:00:00Z",
            "2026-10-04T23:00:00Z",
        );
        assert_eq!(
            daily,
            [
                "2026-10-02T15:45:00Z", // 02:15 +10:30
                "2026-10-03T15:30:00Z", // gap: 02:30 +11
                "2026-10-04T15:15:00Z", // 02:15 +11
            ]
        );
        let hourly = fires(
            "0 * * * *",
            "Australia/Lord_Howe",
            "2026-10-03T14:00:00Z",
            "2026-10-03T17:00:00Z",
        );
        // 01:00 (+10:30) = 14:30Z, 02:00 missing, 03:00 (+11) = 16:00Z, 04:00 = 17:00Z
        assert_eq!(
            hourly,
            [
                "2026-10-03T14:30:00Z",
                "2026-10-03T16:00:00Z",
                "2026-10-03T17:00:00Z"
            ]
        );
        let quarter = fires(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-10-03T15:00:00Z",
            "2026-10-03T16:00:00Z",
        );
        // 01:45 (15:15Z), then 02:30 (15:30Z) right after the gap, 02:45, 03:00
        assert_eq!(
            quarter,
            [
                "2026-10-03T15:15:00Z",
                "2026-10-03T15:30:00Z",
                "2026-10-03T15:45:00Z",
                "2026-10-03T16:00:00Z"
            ]
        );

        // Fall back: 01:30..01:59 happen twice.
        let daily = fires(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-03T00:00:00Z",
            "2026-04-05T23:00:00Z",
        );
        assert_eq!(
            daily,
            [
                "2026-04-03T14:45:00Z", // 01:45 +11
                "2026-04-04T14:45:00Z", // 01:45 +11, first pass only
                "2026-04-05T15:15:00Z", // 01:45 +10:30
            ]
        );
        // Hourly: the repeated half hour (01:30..02:00) holds no minute 0,
        // so nothing repeats: 01:00 (+11), then 02:00 (+10:30).
        let hourly = fires(
            "0 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T13:30:00Z",
            "2026-04-04T16:30:00Z",
        );
        assert_eq!(
            hourly,
            [
                "2026-04-04T14:00:00Z",
                "2026-04-04T15:30:00Z",
                "2026-04-04T16:30:00Z"
            ]
        );
        let quarter = fires(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T14:20:00Z",
            "2026-04-04T15:40:00Z",
        );
        assert_eq!(
            quarter,
            [
                "2026-04-04T14:30:00Z", // 01:30 +11
                "2026-04-04T14:45:00Z", // 01:45 +11
                "2026-04-04T15:00:00Z", // 01:30 +10:30 (again)
                "2026-04-04T15:15:00Z", // 01:45 +10:30
                "2026-04-04T15:30:00Z", // 02:00 +10:30
            ]
        );
        let s = schedule("* * * * * *", "Australia/Lord_Howe");
        let day = |from: &str, to: &str| {
            let (mut t, end, mut n) = (utc(from), utc(to), 0);
            while let Some(next) = s.next_after(t) {
                if next > end {
                    break;
                }
                n += 1;
                t = next;
            }
            n
        };
        // Midnight to midnight, local: 23.5 h and 24.5 h.
        assert_eq!(
            day("2026-10-03T13:30:00Z", "2026-10-04T13:00:00Z"),
            23 * 3600 + 1800
        );
        assert_eq!(
            day("2026-04-04T13:00:00Z", "2026-04-05T13:30:00Z"),
            24 * 3600 + 1800
        );
    }

    // Past 2099, where chrono-tz's table (used before jiff) ended, New York still springs
    // forward on 2100-03-14 (07:00Z) and falls back on 2100-11-07 (06:00Z).

    #[test]
    fn daylight_saving_time_goes_on_past_2099() {
        assert_eq!(
            fires(
                "0 12 * * *",
                "America/New_York",
                "2100-06-01T00:00:00Z",
                "2100-06-01T23:00:00Z"
            ),
            ["2100-06-01T16:00:00Z"] // 12:00 EDT, not EST
        );
        assert_eq!(
            fires(
                "0 12 * * *",
                "America/New_York",
                "4000-07-01T00:00:00Z",
                "4000-07-01T23:00:00Z"
            ),
            ["4000-07-01T16:00:00Z"]
        );
        assert_eq!(
            fires(
                "30 2 * * *",
                "America/New_York",
                "2100-03-13T00:00:00Z",
                "2100-03-15T12:00:00Z"
            ),
            [
                "2100-03-13T07:30:00Z",
                "2100-03-14T07:00:00Z", // in the gap: 03:00 EDT
                "2100-03-15T06:30:00Z"
            ]
        );
        assert_eq!(
            fires(
                "0 * * * *",
                "America/New_York",
                "2100-11-07T04:30:00Z",
                "2100-11-07T07:00:00Z"
            ),
            [
                "2100-11-07T05:00:00Z", // 01:00 EDT
                "2100-11-07T06:00:00Z", // 01:00 EST
                "2100-11-07T07:00:00Z"
            ]
        );
    }

    #[test]
    fn a_periodic_pattern_that_only_matches_in_gaps_never_fires() {
        // 02:xx on the last Sunday of March: Berlin skips that hour every
        // year (from 1981 on, and by its rule past 2099).
        assert_eq!(
            CronSchedule::parse("* 2 * 3 0L", "Europe/Berlin".parse().unwrap())
                .err()
                .unwrap_or_default(),
            "never fires in Europe/Berlin: every time it matches is skipped by a \
             daylight-saving change, and a pattern whose minute or hour starts with * \
             skips such times"
        );
        // London skips 01:xx instead.
        let london = CronSchedule::parse("*/5 1 * 3 sunL", "Europe/London".parse().unwrap());
        assert!(
            london
                .as_ref()
                .is_err_and(|e| e.starts_with("never fires in Europe/London")),
            "{:?}",
            london.map(|s| s.next_after(utc("2026-01-01T00:00:00Z")))
        );
        // New York moves its clocks on another Sunday, and a fixed time in
        // a gap fires after it.
        assert_eq!(
            fires(
                "* 2 * 3 0L",
                "America/New_York",
                "2026-03-01T00:00:00Z",
                "2026-03-29T06:00:00Z"
            ),
            ["2026-03-29T06:00:00Z"]
        );
        assert_eq!(
            fires(
                "0 2 * 3 0L",
                "Europe/Berlin",
                "2026-03-01T00:00:00Z",
                "2026-03-31T00:00:00Z"
            ),
            ["2026-03-29T01:00:00Z"]
        );
        // Half of Lord Howe's skipped hour exists.
        assert_eq!(
            fires(
                "* 2 * 10 0#1",
                "Australia/Lord_Howe",
                "2026-10-01T00:00:00Z",
                "2026-10-03T15:31:00Z"
            ),
            ["2026-10-03T15:30:00Z", "2026-10-03T15:31:00Z"]
        );
    }

    #[test]
    fn a_zone_without_dst_is_plain_arithmetic() {
        // Asia/Seoul is UTC+9 all year, on both of New York's transition days.
        for day in ["2026-03-08", "2026-11-01"] {
            let after = format!("{day}T00:00:00Z");
            let until = format!("{day}T23:59:59Z");
            let daily = fires("30 2 * * *", "Asia/Seoul", &after, &until);
            assert_eq!(daily, [format!("{day}T17:30:00Z")]);
            assert_eq!(fires("0 * * * *", "Asia/Seoul", &after, &until).len(), 23);
            assert_eq!(
                fires("*/15 * * * *", "Asia/Seoul", &after, &until).len(),
                95
            );
        }
        let s = schedule("* * * * * *", "Asia/Seoul");
        let t = Utc.with_ymd_and_hms(2026, 3, 8, 6, 59, 59).unwrap();
        assert_eq!(s.next_after(t), Some(t + TimeDelta::seconds(1)));
    }

    #[test]
    fn a_daily_job_never_skips_or_doubles_a_day_in_any_tested_zone() {
        for tz in [
            "America/New_York",
            "Europe/Berlin",
            "Australia/Lord_Howe",
            "Asia/Seoul",
            "UTC",
        ] {
            for expr in ["30 2 * * *", "0 2 * * *", "45 1 * * *", "0 0 * * *"] {
                let s = schedule(expr, tz);
                let zone = zone::rules(tz.parse().unwrap()).unwrap();
                let mut t = utc("2026-01-01T00:00:00Z");
                let mut days = std::collections::BTreeSet::new();
                let mut n = 0;
                while let Some(next) = s.next_after(t) {
                    if next > utc("2027-01-01T00:00:00Z") {
                        break;
                    }
                    days.insert(zone::local_at(&zone, next).date());
                    n += 1;
                    t = next;
                }
                assert_eq!(n, days.len(), "{expr} in {tz} fired twice on a day");
                assert!((365..=366).contains(&n), "{expr} in {tz}: {n} fires");
            }
        }
    }
}
