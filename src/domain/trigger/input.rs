//! The trigger as a client writes it, and its one way into a [`Trigger`].
//!
//! The wire form is one flat object whose `type` says which fields belong;
//! it is deserialized flat (so a type error names its exact field) and
//! then checked per type, so a field of another type is refused by name.

use super::Zone;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::any_of::{AnyOf, MAX_PARTS};
use super::calendared::{Calendared, CalendarsInput};
use super::{
    CronSchedule, CronTrigger, DateTrigger, IntervalTrigger, MAX_JITTER_S, Trigger, hashed,
};
use crate::domain::error::{FieldError, Reason};
use crate::domain::instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    Cron,
    Interval,
    Date,
    #[serde(rename = "any_of")]
    AnyOf,
}

/// Longest interval accepted: ten years of seconds.
pub const MAX_EVERY_S: i64 = 315_576_000;

/// When a job fires. `type` selects the kind; fields of other kinds are
/// refused. Instants are RFC 3339; they are returned in UTC.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Trigger)]
pub struct TriggerInput {
    /// `cron`, `interval`, `date` or `any_of`.
    #[serde(rename = "type")]
    #[schema(required = true)]
    pub kind: Option<TriggerKind>,
    /// cron: 5 fields (minute hour day-of-month month day-of-week), or 6
    /// with leading seconds; names, ranges, steps, `L`, `W`, `#` and the
    /// macros `@yearly @monthly @weekly @daily @hourly`. 0 and 7 are Sunday.
    /// Day-of-month and day-of-week as in cronie: either matches when both
    /// are restricted, both must when either starts with `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "30 2 * * *")]
    pub expr: Option<String>,
    /// cron: `H` in a field (`H`, `H/15`, `H(0-29)`) is a value hashed from
    /// the job, stable; the job shows the result as `resolved_expr`.
    /// cron, any_of: IANA time zone the pattern is read in (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Asia/Seoul")]
    pub timezone: Option<String>,
    /// interval: seconds between fire times, 1 to ten years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 315576000)]
    pub every_s: Option<i64>,
    /// date: the one fire time.
    #[serde(
        default,
        with = "instant::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<DateTime<Utc>>,
    /// cron, interval: no fire time before this (inclusive). An interval
    /// fires at `start_at + k·every_s`; without it the anchor is creation
    /// time + `every_s`, returned here.
    #[serde(
        default,
        with = "instant::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_at: Option<DateTime<Utc>>,
    /// cron, interval: no fire time after this (inclusive).
    #[serde(
        default,
        with = "instant::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_at: Option<DateTime<Utc>>,
    /// cron, interval: delay each delivery by a random 0..=jitter_s
    /// seconds; fire times themselves do not move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 86400)]
    pub jitter_s: Option<i64>,
    /// any_of: cron and interval triggers (1 to 20) whose fire times are
    /// the union; an instant two share fires once. Their crons are read in
    /// the any_of's `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub triggers: Option<Vec<TriggerInput>>,
    /// cron, interval, any_of: calendars that exclude fire times or keep
    /// them to their days (DESIGN.md §11.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendars: Option<CalendarsInput>,
    /// cron, read only: `expr` with its `H` fields resolved for this job.
    /// Ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub resolved_expr: Option<String>,
}

impl TriggerInput {
    /// Validates into a [`Trigger`]. `now` anchors an interval without
    /// `start_at`; `field` is where the trigger sits in the request.
    pub fn parse(mut self, now: DateTime<Utc>, field: &str) -> Result<Trigger, FieldError> {
        let calendars = self.calendars.take();
        if let Some(refs) = &calendars {
            let at = format!("{field}.calendars");
            if self.kind == Some(TriggerKind::Date) {
                return Err(FieldError::new(at, "is not a field of a date trigger"));
            }
            for (name, ids) in [
                ("exclude", &refs.exclude),
                ("include_only", &refs.include_only),
            ] {
                for (i, id) in ids.iter().enumerate() {
                    crate::domain::calendar::parse_id(id)
                        .map_err(|m| FieldError::new(format!("{at}.{name}[{i}]"), m))?;
                }
            }
        }
        let base = self.parse_base(now, field)?;
        Ok(match calendars {
            Some(refs) if !(refs.exclude.is_empty() && refs.include_only.is_empty()) => {
                Trigger::Calendared(Box::new(Calendared {
                    base,
                    refs,
                    policy: None,
                }))
            }
            _ => base,
        })
    }

    fn parse_base(self, now: DateTime<Utc>, field: &str) -> Result<Trigger, FieldError> {
        let at = |name: &str| format!("{field}.{name}");
        let kind = self.kind.ok_or_else(|| {
            FieldError::new(at("type"), "is required: one of cron, interval, date")
        })?;
        let refuse = |present: bool, name: &str| -> Result<(), FieldError> {
            if present {
                let kind = match kind {
                    TriggerKind::Cron => "a cron",
                    TriggerKind::Interval => "an interval",
                    TriggerKind::Date => "a date",
                    TriggerKind::AnyOf => "an any_of",
                };
                Err(FieldError::new(
                    at(name),
                    format!("is not a field of {kind} trigger"),
                ))
            } else {
                Ok(())
            }
        };
        let bounds = |start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>| {
            if let (Some(start), Some(end)) = (start, end)
                && end < start
            {
                return Err(FieldError::new(at("end_at"), "must not be before start_at"));
            }
            Ok(())
        };
        let jitter = |jitter: Option<i64>| match jitter.unwrap_or(0) {
            j if j < 0 => Err(FieldError::new(
                at("jitter_s"),
                format!("must not be negative, got {j}"),
            )),
            j if j > i64::from(MAX_JITTER_S) => Err(FieldError::new(
                at("jitter_s"),
                format!("must be at most {MAX_JITTER_S} (a day), got {j}"),
            )),
            j => Ok(j as u32),
        };

        match kind {
            TriggerKind::Cron => {
                refuse(self.every_s.is_some(), "every_s")?;
                refuse(self.run_at.is_some(), "run_at")?;
                refuse(self.triggers.is_some(), "triggers")?;
                let expr = self
                    .expr
                    .ok_or_else(|| FieldError::new(at("expr"), "is required for a cron trigger"))?;
                let timezone = parse_timezone(self.timezone.as_deref())
                    .map_err(|m| FieldError::new(at("timezone"), m))?;
                // With `H`, a resolution for no job in particular checks the
                // rest; binding to the job resolves it for that job.
                let source = hashed::has_hash(&expr).then(|| expr.clone());
                let resolved =
                    hashed::resolve(&expr, "").map_err(|m| FieldError::new(at("expr"), m))?;
                let schedule = CronSchedule::parse(&resolved, timezone)
                    .map_err(|m| FieldError::new(at("expr"), m))?;
                bounds(self.start_at, self.end_at)?;
                Ok(Trigger::Cron(CronTrigger {
                    schedule,
                    source,
                    start_at: self.start_at,
                    end_at: self.end_at,
                    jitter_s: jitter(self.jitter_s)?,
                }))
            }
            TriggerKind::Interval => {
                refuse(self.triggers.is_some(), "triggers")?;
                refuse(self.expr.is_some(), "expr")?;
                refuse(self.timezone.is_some(), "timezone")?;
                refuse(self.run_at.is_some(), "run_at")?;
                let every_s = match self.every_s {
                    None => {
                        return Err(FieldError::new(
                            at("every_s"),
                            "is required for an interval trigger",
                        ));
                    }
                    Some(s) if s < 1 => {
                        return Err(FieldError::new(
                            at("every_s"),
                            format!("must be at least 1, got {s}"),
                        ));
                    }
                    Some(s) if s > MAX_EVERY_S => {
                        return Err(FieldError::new(
                            at("every_s"),
                            format!("must be at most {MAX_EVERY_S} (ten years), got {s}"),
                        ));
                    }
                    Some(s) => s as u64,
                };
                bounds(self.start_at, self.end_at)?;
                // Instants are microseconds everywhere; a clock reading is
                // finer, so the anchor drops the rest once, here.
                let start_at = self
                    .start_at
                    .unwrap_or_else(|| instant::truncate(now) + TimeDelta::seconds(every_s as i64));
                Ok(Trigger::Interval(IntervalTrigger {
                    every_s,
                    start_at,
                    end_at: self.end_at,
                    jitter_s: jitter(self.jitter_s)?,
                }))
            }
            TriggerKind::Date => {
                refuse(self.triggers.is_some(), "triggers")?;
                refuse(self.expr.is_some(), "expr")?;
                refuse(self.timezone.is_some(), "timezone")?;
                refuse(self.every_s.is_some(), "every_s")?;
                refuse(self.start_at.is_some(), "start_at")?;
                refuse(self.end_at.is_some(), "end_at")?;
                refuse(self.jitter_s.is_some(), "jitter_s")?;
                let run_at = self.run_at.ok_or_else(|| {
                    FieldError::new(at("run_at"), "is required for a date trigger")
                })?;
                Ok(Trigger::Date(DateTrigger { run_at }))
            }
            TriggerKind::AnyOf => {
                refuse(self.expr.is_some(), "expr")?;
                refuse(self.every_s.is_some(), "every_s")?;
                refuse(self.run_at.is_some(), "run_at")?;
                refuse(self.start_at.is_some(), "start_at")?;
                refuse(self.end_at.is_some(), "end_at")?;
                let timezone = parse_timezone(self.timezone.as_deref())
                    .map_err(|m| FieldError::new(at("timezone"), m))?;
                let parts = self.triggers.unwrap_or_default();
                if parts.is_empty() || parts.len() > MAX_PARTS {
                    return Err(FieldError::new(
                        at("triggers"),
                        format!(
                            "must hold 1 to {MAX_PARTS} cron or interval triggers, got {}",
                            parts.len()
                        ),
                    ));
                }
                let mut triggers = Vec::with_capacity(parts.len());
                for (i, mut part) in parts.into_iter().enumerate() {
                    let here = format!("{field}.triggers[{i}]");
                    let inner =
                        |name: &str, m: &str| Err(FieldError::new(format!("{here}.{name}"), m));
                    match part.kind {
                        Some(TriggerKind::Cron | TriggerKind::Interval) => {}
                        None => return inner("type", "is required: one of cron, interval"),
                        Some(_) => return inner("type", "must be cron or interval in an any_of"),
                    }
                    if part.calendars.is_some() {
                        return inner(
                            "calendars",
                            "belongs on the any_of, not on one of its triggers",
                        );
                    }
                    if part.jitter_s.is_some() {
                        return inner(
                            "jitter_s",
                            "belongs on the any_of, not on one of its triggers",
                        );
                    }
                    if part.kind == Some(TriggerKind::Cron) {
                        match part.timezone.as_deref() {
                            Some(tz) if tz != timezone.name() => {
                                return inner(
                                    "timezone",
                                    "must be the any_of's: one zone for the job",
                                );
                            }
                            _ => part.timezone = Some(timezone.name().to_string()),
                        }
                    }
                    triggers.push(part.parse_base(now, &here)?);
                }
                Ok(Trigger::AnyOf(AnyOf {
                    triggers,
                    timezone,
                    jitter_s: jitter(self.jitter_s)?,
                }))
            }
        }
    }

    /// True when this input, once parsed, would be `existing` again: the
    /// same fields, where an interval without `start_at` keeps the anchor
    /// it already has (so re-sending a job unchanged keeps its grid).
    pub fn describes(&self, existing: &Trigger) -> bool {
        self.clone().normalized(&existing.to_input()) == existing.to_input().normalized_stored()
    }

    /// The stored form, as [`Self::normalized`] leaves the given one.
    fn normalized_stored(mut self) -> Self {
        self.resolved_expr = None;
        if let Some(parts) = self.triggers.take() {
            self.triggers = Some(parts.into_iter().map(Self::normalized_stored).collect());
        }
        self.jitter_s.get_or_insert(0);
        if self.kind == Some(TriggerKind::Date) {
            self.jitter_s = None;
        }
        self
    }

    /// This input with what parsing would fill in from `stored` filled in.
    fn normalized(self, stored: &TriggerInput) -> Self {
        let mut given = self;
        given.resolved_expr = None;
        if given
            .calendars
            .as_ref()
            .is_some_and(|c| c.exclude.is_empty() && c.include_only.is_empty())
        {
            given.calendars = None;
        }
        if let Some(parts) = given.triggers.take() {
            let none = Vec::new();
            let stored_parts = stored.triggers.as_ref().unwrap_or(&none);
            given.triggers = Some(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let mut p = match stored_parts.get(i) {
                            Some(s) => p.normalized(s),
                            None => p,
                        };
                        if p.kind == Some(TriggerKind::Cron) {
                            // A part's zone is the any_of's; no jitter.
                            p.timezone = None;
                        }
                        p.jitter_s = Some(0);
                        p
                    })
                    .collect(),
            );
        }
        if given.kind == Some(TriggerKind::AnyOf) {
            given.timezone.get_or_insert_with(|| "UTC".into());
        }
        let stored = stored.clone();
        if given.kind == Some(TriggerKind::Interval) && given.start_at.is_none() {
            given.start_at = stored.start_at;
        }
        if given.kind == Some(TriggerKind::Cron) {
            given.timezone.get_or_insert_with(|| "UTC".into());
        }
        given.jitter_s.get_or_insert(0);
        if given.kind == Some(TriggerKind::Date) {
            given.jitter_s = None;
        }
        given
    }
}

fn parse_timezone(name: Option<&str>) -> Result<Zone, Reason> {
    match name {
        None => Ok(Zone::UTC),
        Some(name) => name.parse::<Zone>().map_err(|_| {
            Reason::new(format!(
                "unknown time zone {name:?}; expected an IANA name such as Europe/Berlin or UTC"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        instant::parse("2026-11-23T10:00:00Z").unwrap()
    }

    fn parse(json: serde_json::Value) -> Result<Trigger, FieldError> {
        let input: TriggerInput = serde_json::from_value(json).unwrap();
        input.parse(now(), "trigger")
    }

    fn error(json: serde_json::Value) -> String {
        parse(json).unwrap_err().to_string()
    }

    #[test]
    fn cron_defaults_to_utc_and_no_jitter() {
        let t = parse(serde_json::json!({"type": "cron", "expr": "0 * * * *"})).unwrap();
        assert_eq!(t.timezone(), Zone::UTC);
        assert_eq!(t.jitter_s(), 0);
        assert_eq!(
            t.next_after(now()),
            Some(instant::parse("2026-11-23T11:00:00Z").unwrap())
        );
    }

    #[test]
    fn names_the_bad_field() {
        use serde_json::json;
        assert_eq!(
            error(json!({"type": "cron", "expr": "* * * *"})),
            "trigger.expr: expected 5 or 6 fields (6 with leading seconds), got 4"
        );
        assert!(
            error(json!({"type": "cron", "expr": "* * * * *", "timezone": "Mars/Base"}))
                .starts_with("trigger.timezone: unknown time zone \"Mars/Base\"")
        );
        assert_eq!(
            error(json!({"type": "cron", "expr": "0 0 30 2 *"})),
            "trigger.expr: never fires: no calendar date matches its day-of-month, month and day-of-week"
        );
        assert_eq!(
            error(json!({"type": "interval", "every_s": 0})),
            "trigger.every_s: must be at least 1, got 0"
        );
        assert!(
            error(json!({"type": "interval", "every_s": 315576001u64}))
                .starts_with("trigger.every_s: must be at most 315576000")
        );
        assert_eq!(
            error(
                json!({"type": "interval", "every_s": 5, "start_at": "2026-11-23T10:00:00Z",
                         "end_at": "2026-11-23T09:00:00Z"})
            ),
            "trigger.end_at: must not be before start_at"
        );
        assert_eq!(
            error(json!({"expr": "* * * * *"})),
            "trigger.type: is required: one of cron, interval, date"
        );
        assert_eq!(
            error(json!({"type": "date", "run_at": "2026-11-23T10:00:00Z", "every_s": 5})),
            "trigger.every_s: is not a field of a date trigger"
        );
        assert_eq!(
            error(json!({"type": "interval", "every_s": 5, "expr": "* * * * *"})),
            "trigger.expr: is not a field of an interval trigger"
        );
        assert_eq!(
            error(json!({"type": "date"})),
            "trigger.run_at: is required for a date trigger"
        );
        assert!(
            error(json!({"type": "cron", "expr": "* * * * *", "jitter_s": 86401}))
                .starts_with("trigger.jitter_s")
        );
    }

    #[test]
    fn unknown_fields_and_bad_instants_are_refused_by_serde_with_their_name() {
        let e = serde_json::from_value::<TriggerInput>(
            serde_json::json!({"type": "cron", "cron": "x"}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `cron`"), "{e}");
        let e = serde_json::from_value::<TriggerInput>(
            serde_json::json!({"type": "date", "run_at": "tomorrow"}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn interval_without_start_is_anchored_one_period_after_now() {
        let t = parse(serde_json::json!({"type": "interval", "every_s": 60})).unwrap();
        let Trigger::Interval(i) = &t else { panic!() };
        assert_eq!(i.start_at, instant::parse("2026-11-23T10:01:00Z").unwrap());
        assert_eq!(t.first_fire_time(now()), Some(i.start_at));
    }

    #[test]
    fn an_anchor_from_a_clock_reading_keeps_microseconds_only() {
        let input: TriggerInput =
            serde_json::from_value(serde_json::json!({"type": "interval", "every_s": 60})).unwrap();
        let now = now() + TimeDelta::nanoseconds(123_456_789);
        let t = input.parse(now, "trigger").unwrap();
        let Trigger::Interval(i) = &t else { panic!() };
        assert_eq!(instant::format(&i.start_at), "2026-11-23T10:01:00.123456Z");
    }

    #[test]
    fn round_trips_through_its_canonical_form() {
        for json in [
            serde_json::json!({"type": "cron", "expr": "30 2 * * *", "timezone": "Asia/Seoul", "jitter_s": 5}),
            serde_json::json!({"type": "interval", "every_s": 90, "start_at": "2026-01-01T00:00:00.5Z"}),
            serde_json::json!({"type": "date", "run_at": "2026-12-01T09:00:00Z"}),
        ] {
            let t = parse(json).unwrap();
            let canonical = serde_json::to_value(&t).unwrap();
            let again = parse(canonical.clone()).unwrap();
            assert_eq!(t, again, "{canonical}");
            assert!(t.to_input().describes(&again));
        }
    }

    #[test]
    fn an_unchanged_interval_without_start_keeps_its_anchor() {
        let stored = parse(serde_json::json!({"type": "interval", "every_s": 60})).unwrap();
        let resent: TriggerInput =
            serde_json::from_value(serde_json::json!({"type": "interval", "every_s": 60})).unwrap();
        assert!(resent.describes(&stored));
        let changed: TriggerInput =
            serde_json::from_value(serde_json::json!({"type": "interval", "every_s": 61})).unwrap();
        assert!(!changed.describes(&stored));
    }

    #[test]
    fn a_date_in_the_past_is_still_its_first_fire_time() {
        let t =
            parse(serde_json::json!({"type": "date", "run_at": "2026-01-01T00:00:00Z"})).unwrap();
        assert_eq!(
            t.first_fire_time(now()),
            Some(instant::parse("2026-01-01T00:00:00Z").unwrap())
        );
        assert_eq!(t.next_after(now()), None);
    }

    #[test]
    fn cron_bounds_are_inclusive() {
        let t = parse(serde_json::json!({
            "type": "cron", "expr": "0 * * * *",
            "start_at": "2026-11-23T12:00:00Z", "end_at": "2026-11-23T14:00:00Z"
        }))
        .unwrap();
        let fires: Vec<_> = t
            .fire_times_after(now())
            .map(|t| instant::format(&t))
            .collect();
        assert_eq!(
            fires,
            [
                "2026-11-23T12:00:00Z",
                "2026-11-23T13:00:00Z",
                "2026-11-23T14:00:00Z"
            ]
        );
    }
}
