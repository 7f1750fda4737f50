//! The filters a template may use (DESIGN.md §11.2), on instants written
//! as RFC 3339 text: `date` and `add` and `trunc` work in the job's zone
//! (so "-1d" across a DST change is the previous calendar day), `date_utc`
//! in UTC. An instant in UTC (`…Z`) stays in UTC; one with an offset comes
//! back in the job's zone.

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime as Zoned};
use minijinja::{Environment, Error, ErrorKind, Value};

/// Registers every filter of §11.2 on `env`, with `zone` the job's.
pub fn register(env: &mut Environment<'_>, zone: &TimeZone) {
    let z = zone.clone();
    env.add_filter("date", move |value: Value, format: String| {
        strftime(&instant(&value)?.to_zoned_datetime(z.clone()), &format)
    });
    env.add_filter("date_utc", |value: Value, format: String| {
        strftime(&instant(&value)?.to_zoned_datetime(TimeZone::UTC), &format)
    });
    let z = zone.clone();
    env.add_filter("add", move |value: Value, span: String| {
        let (t, utc) = (instant(&value)?, is_utc(&value));
        let span = parse_span(&span)?;
        let moved = t
            .to_zoned_datetime(z.clone())
            .checked_add(span)
            .map_err(|e| invalid(format!("cannot add {span}: {e}")))?;
        Ok(written(&moved, utc))
    });
    let z = zone.clone();
    env.add_filter("trunc", move |value: Value, unit: String| {
        let (t, utc) = (instant(&value)?, is_utc(&value));
        Ok(written(
            &truncate(&t.to_zoned_datetime(z.clone()), &unit)?,
            utc,
        ))
    });
    env.add_filter("default", |value: Value, other: Value| {
        if value.is_undefined() || value.is_none() {
            other
        } else {
            value
        }
    });
    env.add_filter("tojson", minijinja::filters::tojson);
    env.add_filter("urlencode", minijinja::filters::urlencode);
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// The instant a value writes; none (no last success yet) is an error.
fn instant(value: &Value) -> Result<Timestamp, Error> {
    if value.is_none() || value.is_undefined() {
        return Err(invalid(
            "has no value (none): give a fallback with default(…)".into(),
        ));
    }
    let text = value
        .as_str()
        .ok_or_else(|| invalid(format!("{value} is not an instant")))?;
    text.parse::<Timestamp>()
        .map_err(|e| invalid(format!("{text:?} is not an RFC 3339 instant: {e}")))
}

fn is_utc(value: &Value) -> bool {
    value.as_str().is_some_and(|t| t.ends_with('Z'))
}

fn written(t: &Zoned, utc: bool) -> String {
    if utc {
        t.timestamp().to_string()
    } else {
        // RFC 3339 with the zone's offset, without jiff's `[Zone]` suffix.
        t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

fn strftime(t: &Zoned, format: &str) -> Result<String, Error> {
    let mut out = String::new();
    jiff::fmt::strtime::format(format, t)
        .map(|text| out.push_str(&text))
        .map_err(|e| invalid(format!("format {format:?}: {e}")))?;
    Ok(out)
}

/// `-1d`, `2h`, `1 month` (jiff's friendly form) or ISO 8601 (`PT1H`,
/// `-P1D`).
fn parse_span(text: &str) -> Result<Span, Error> {
    text.trim().parse::<Span>().map_err(|e| {
        invalid(format!(
            "{text:?} is not a span (\"-1d\", \"2h\", \"PT1H\"): {e}"
        ))
    })
}

fn truncate(t: &Zoned, unit: &str) -> Result<Zoned, Error> {
    let out = match unit {
        "day" => t.start_of_day(),
        "hour" => t.with().minute(0).second(0).subsec_nanosecond(0).build(),
        "month" => t.first_of_month().and_then(|d| d.start_of_day()),
        other => {
            return Err(invalid(format!(
                "unit {other:?}: expected \"day\", \"hour\" or \"month\""
            )));
        }
    };
    out.map_err(|e| invalid(format!("cannot truncate to the {unit}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(zone: &str, source: &str, value: &str) -> Result<String, String> {
        let mut env = Environment::empty();
        let zone = jiff::tz::TimeZone::get(zone).unwrap();
        register(&mut env, &zone);
        env.render_str(source, context! { t => value, none => Value::from(()) })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn date_formats_in_the_job_zone_and_date_utc_in_utc() {
        let t = "2026-07-01T22:30:00Z";
        assert_eq!(
            render("Europe/Berlin", "{{ t | date('%Y-%m-%d %H:%M') }}", t).unwrap(),
            "2026-07-02 00:30"
        );
        assert_eq!(
            render("Europe/Berlin", "{{ t | date_utc('%Y-%m-%d') }}", t).unwrap(),
            "2026-07-01"
        );
    }

    #[test]
    fn minus_one_day_across_a_dst_change_is_the_previous_calendar_day() {
        // 30 March 00:00 in Berlin (CEST, +02:00); the day before has 23 hours.
        let t = "2026-03-29T22:00:00Z";
        assert_eq!(
            render(
                "Europe/Berlin",
                "{{ t | add('-1d') | date('%Y-%m-%d %H:%M') }}",
                t
            )
            .unwrap(),
            "2026-03-29 00:00"
        );
        assert_eq!(
            render("Europe/Berlin", "{{ t | add('-1d') }}", t).unwrap(),
            "2026-03-28T23:00:00Z"
        );
        assert_eq!(
            render("UTC", "{{ t | add('PT1H') }}", t).unwrap(),
            "2026-03-29T23:00:00Z"
        );
        assert_eq!(
            render(
                "Europe/Berlin",
                "{{ t | add('-1d') }}",
                "2026-03-30T00:00:00+02:00"
            )
            .unwrap(),
            "2026-03-29T00:00:00+01:00"
        );
    }

    #[test]
    fn trunc_to_day_hour_and_month_in_the_job_zone() {
        let t = "2026-03-31T22:45:10Z"; // 1 April 00:45:10 in Berlin
        assert_eq!(
            render("Europe/Berlin", "{{ t | trunc('day') }}", t).unwrap(),
            "2026-03-31T22:00:00Z"
        );
        assert_eq!(
            render("Europe/Berlin", "{{ t | trunc('hour') }}", t).unwrap(),
            "2026-03-31T22:00:00Z"
        );
        assert_eq!(
            render("Europe/Berlin", "{{ t | trunc('month') }}", t).unwrap(),
            "2026-03-31T22:00:00Z"
        );
        assert_eq!(
            render("UTC", "{{ t | trunc('month') }}", t).unwrap(),
            "2026-03-01T00:00:00Z"
        );
        assert!(
            render("UTC", "{{ t | trunc('week') }}", t)
                .unwrap_err()
                .contains("expected \"day\"")
        );
    }

    #[test]
    fn default_replaces_none_and_undefined_and_filters_refuse_none() {
        let t = "2026-01-01T00:00:00Z";
        assert_eq!(
            render("UTC", "{{ none | default('never') }}", t).unwrap(),
            "never"
        );
        assert_eq!(render("UTC", "{{ t | default('never') }}", t).unwrap(), t);
        assert!(
            render("UTC", "{{ none | date('%F') }}", t)
                .unwrap_err()
                .contains("has no value")
        );
        assert!(
            render("UTC", "{{ t | add('yesterday') }}", t)
                .unwrap_err()
                .contains("is not a span")
        );
        assert!(
            render("UTC", "{{ 'soon' | date('%F') }}", t)
                .unwrap_err()
                .contains("not an RFC 3339 instant")
        );
    }

    #[test]
    fn tojson_and_urlencode() {
        let t = "a b&c";
        assert_eq!(
            render("UTC", "{{ t | urlencode }}", t).unwrap(),
            "a%20b%26c"
        );
        // minijinja escapes HTML's specials in JSON: still the same string.
        assert_eq!(
            render("UTC", "{{ t | tojson }}", t).unwrap(),
            "\"a b\\u0026c\""
        );
    }
}
