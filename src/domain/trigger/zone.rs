//! Time zones for fire times: names and rules from jiff's bundled tzdb,
//! the one time-zone database Cronhook carries.
//!
//! jiff's zones carry the POSIX rule that continues each zone's table, so
//! offsets stay right to the year 9999 (chrono-tz, used before, computed
//! every daylight-saving zone as standard time from 2100 on). Only the
//! bundled copy is read, so every machine computes the same fire times.

use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, SecondsFormat, TimeDelta, Utc};
use jiff::Timestamp;
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};

fn database() -> &'static TimeZoneDatabase {
    static DATABASE: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DATABASE.get_or_init(TimeZoneDatabase::bundled)
}

/// Every name the bundled database knows, sorted, read once and kept for
/// the process's life (a few hundred short strings), so a [`Zone`] is a
/// copyable name.
fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = database()
            .available()
            .map(|name| &*name.as_str().to_string().leak())
            .collect();
        names.sort_unstable();
        names
    })
}

/// A time zone by its IANA name (`Europe/Berlin`), one the bundled
/// database has. The name is matched exactly, as it is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Zone(&'static str);

impl Zone {
    pub const UTC: Zone = Zone("UTC");

    pub fn name(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A name the bundled database does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownZone;

impl FromStr for Zone {
    type Err = UnknownZone;

    fn from_str(name: &str) -> Result<Self, UnknownZone> {
        let names = names();
        names
            .binary_search(&name)
            .map(|at| Zone(names[at]))
            .map_err(|_| UnknownZone)
    }
}

/// The rules of `zone`.
pub(crate) fn rules(zone: Zone) -> Option<TimeZone> {
    database().get(zone.name()).ok()
}

/// `t` as a jiff timestamp, in whole seconds (every transition falls on
/// one); clamped to jiff's range, which covers every RFC 3339 year.
pub(crate) fn timestamp(t: DateTime<Utc>) -> Timestamp {
    let s = t.timestamp();
    Timestamp::from_second(s).unwrap_or(if s < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The instant of a jiff timestamp.
pub(crate) fn instant(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().unsigned_abs())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Seconds local time is ahead of UTC at `t`.
pub(crate) fn offset_at(zone: &TimeZone, t: DateTime<Utc>) -> i32 {
    zone.to_offset(timestamp(t)).seconds()
}

/// True when `zone` changes its offset after `t` (not UTC, not a fixed
/// offset, not a zone that stopped changing).
pub(crate) fn has_transitions_after(zone: &TimeZone, t: DateTime<Utc>) -> bool {
    zone.following(timestamp(t)).next().is_some()
}

/// A wall time as a jiff civil datetime (whole seconds).
pub(crate) fn civil(wall: NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(
        i16::try_from(wall.year()).ok()?,
        wall.month() as i8,
        wall.day() as i8,
        wall.hour() as i8,
        wall.minute() as i8,
        wall.second() as i8,
        0,
    )
    .ok()
}

/// The wall time in `zone` at `t`.
pub(crate) fn local_at(zone: &TimeZone, t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc() + TimeDelta::seconds(offset_at(zone, t).into())
}

/// The instant a wall time in `zone` stands for: itself, the first of two
/// (a repeated hour), or the first instant after a gap (the transition that
/// skipped it), as a fixed-time cron fires.
pub(crate) fn earliest_instant(zone: &TimeZone, wall: NaiveDateTime) -> DateTime<Utc> {
    let Some(civil) = civil(wall) else {
        return wall.and_utc();
    };
    let at =
        |offset: jiff::tz::Offset| wall.and_utc() - TimeDelta::seconds(offset.seconds().into());
    match zone.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => at(offset),
        AmbiguousOffset::Fold { before, after } => at(before).min(at(after)),
        AmbiguousOffset::Gap { before, .. } => {
            // `wall` read at the offset before the gap lies at or after
            // the transition, and before the next one.
            let past = at(before) + TimeDelta::seconds(1);
            zone.preceding(timestamp(past))
                .next()
                .map_or(at(before), |transition| instant(transition.timestamp()))
        }
    }
}

/// Seconds local time in `tz` is ahead of UTC at `t`.
pub fn utc_offset_s(t: DateTime<Utc>, tz: Zone) -> i32 {
    rules(tz).map_or(0, |zone| offset_at(&zone, t))
}

/// A fire time as the preview shows it: wall time in `tz` with its offset.
pub fn local_rfc3339(t: DateTime<Utc>, tz: Zone) -> String {
    let offset = utc_offset_s(t, tz);
    // jiff offsets stay within ±26 h, which chrono takes.
    let offset = FixedOffset::east_opt(offset).unwrap_or(Utc.fix());
    t.with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> Zone {
        name.parse().unwrap()
    }

    #[test]
    fn every_zone_name_has_rules() {
        let missing: Vec<&str> = names()
            .iter()
            .filter(|name| rules(zone(name)).is_none())
            .copied()
            .collect();
        assert!(missing.is_empty(), "no rules for {missing:?}");
        assert!(names().len() > 400, "{} names", names().len());
    }

    #[test]
    fn names_are_matched_exactly_as_the_database_spells_them() {
        assert_eq!(zone("UTC"), Zone::UTC);
        assert_eq!(zone("America/New_York").name(), "America/New_York");
        // Links (old names) are zones too, as in every tzdb.
        assert_eq!(zone("US/Eastern").name(), "US/Eastern");
        for unknown in ["america/new_york", "Mars/Olympus", "", "EST5EDT "] {
            assert_eq!(unknown.parse::<Zone>(), Err(UnknownZone), "{unknown:?}");
        }
    }

    #[test]
    fn offsets_continue_past_2099() {
        let new_york = rules(zone("America/New_York")).unwrap();
        let at = |s: &str| offset_at(&new_york, s.parse().unwrap()) / 3600;
        assert_eq!(at("2099-07-01T12:00:00Z"), -4);
        assert_eq!(at("2100-07-01T12:00:00Z"), -4);
        assert_eq!(at("2100-12-01T12:00:00Z"), -5);
        assert_eq!(at("9999-07-01T12:00:00Z"), -4);
    }

    #[test]
    fn local_time_carries_the_offset_of_its_instant() {
        let t = "2100-06-01T16:00:00.250Z".parse().unwrap();
        assert_eq!(
            local_rfc3339(t, zone("America/New_York")),
            "2100-06-01T12:00:00.250-04:00"
        );
        assert_eq!(local_rfc3339(t, Zone::UTC), "2100-06-01T16:00:00.250+00:00");
        let t = "2026-10-03T15:30:00Z".parse().unwrap();
        assert_eq!(
            local_rfc3339(t, zone("Australia/Lord_Howe")),
            "2026-10-04T02:30:00+11:00"
        );
    }
}
