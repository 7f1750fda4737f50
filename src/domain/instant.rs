//! Instants on the wire: RFC 3339, stored and compared in UTC with
//! microsecond precision (both stores keep microseconds, so finer input is
//! truncated once, on the way in, and every later comparison is exact).

use crate::domain::error::Reason;
use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Parses an RFC 3339 instant (any offset) into UTC, truncated to microseconds.
/// Its UTC form must still be RFC 3339, so years 0001 to 9999 only. A leap
/// second (`:60`) is refused: chrono keeps it as a 61st second that sorts
/// and subtracts like the second before it, so arithmetic on it repeats.
pub fn parse(text: &str) -> Result<DateTime<Utc>, Reason> {
    let t = DateTime::parse_from_rfc3339(text).map_err(|e| {
        if is_local_time(text) {
            // The commonest slip: a wall time, with no zone to read it in.
            format!(
                "{text:?} has no offset: add Z for UTC, or an offset such as +09:00 (an instant must say where it is)"
            )
        } else {
            format!(
                "expected an RFC 3339 instant such as 2026-11-23T10:00:00Z, got {text:?} ({e})"
            )
        }
    })?;
    if t.nanosecond() >= 1_000_000_000 {
        return Err(format!("{text:?} is a leap second; use :59 or the next minute's :00").into());
    }
    let t = truncate(t.to_utc());
    if !representable(t) {
        return Err(format!("{text:?} is outside the years 0001 to 9999 in UTC").into());
    }
    Ok(t)
}

/// A date and time without an offset (`2026-11-23T10:00:00`).
fn is_local_time(text: &str) -> bool {
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .any(|format| chrono::NaiveDateTime::parse_from_str(text, format).is_ok())
}

/// True for instants RFC 3339 can write in UTC (years 0001 to 9999).
pub fn representable(t: DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// Drops anything finer than a microsecond.
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// `2026-11-23T10:00:00Z`, with a fraction only when there is one.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `serde(with = "rfc3339")` for a required instant.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `serde(with = "rfc3339_opt")` for an instant that may be null or absent.
pub mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => parse(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_offsets_into_utc() {
        let t = parse("2026-11-23T19:00:00+09:00").unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap());
    }

    #[test]
    fn truncates_below_microseconds() {
        let t = parse("2026-11-23T10:00:00.123456789Z").unwrap();
        assert_eq!(format(&t), "2026-11-23T10:00:00.123456Z");
    }

    #[test]
    fn formats_without_needless_fraction() {
        let t = parse("2026-11-23T10:00:00.000Z").unwrap();
        assert_eq!(format(&t), "2026-11-23T10:00:00Z");
        let t = parse("2026-11-23T10:00:00.250Z").unwrap();
        assert_eq!(format(&t), "2026-11-23T10:00:00.250Z");
    }

    #[test]
    fn rejects_instants_rfc3339_cannot_write_in_utc() {
        assert!(
            parse("9999-12-31T23:59:59-01:00")
                .unwrap_err()
                .contains("outside the years")
        );
        assert!(
            parse("0000-01-01T00:00:00+00:01")
                .unwrap_err()
                .contains("outside the years")
        );
        assert!(parse("9999-12-31T23:59:59Z").is_ok());
        assert!(parse("0001-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn rejects_leap_seconds() {
        for leap in [
            "2026-06-30T23:59:60Z",
            "2026-06-30T23:59:60.5Z",
            "2016-12-31T23:59:60.999999Z",
            "2027-01-01T08:59:60+09:00",
        ] {
            assert_eq!(
                parse(leap).unwrap_err(),
                format!("{leap:?} is a leap second; use :59 or the next minute's :00")
            );
        }
        // The seconds around one are ordinary.
        assert!(parse("2026-06-30T23:59:59.999999Z").is_ok());
        assert!(parse("2026-07-01T00:00:00Z").is_ok());
    }

    #[test]
    fn a_time_without_offset_is_told_to_add_one() {
        for local in [
            "2026-11-23T10:00:00",
            "2026-11-23 10:00:00.5",
            "2026-11-23T10:00",
        ] {
            let err = parse(local).unwrap_err();
            assert!(err.contains("has no offset: add Z"), "{local}: {err}");
        }
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in ["2026-11-23", "tomorrow", "10:00"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }
}
