//! Flow keys (DESIGN.md §11.1): limits shared by many jobs of a tenant.
//! Runs that share a key are admitted by (priority desc, `scheduled_for`,
//! id) while both limits allow: at most `max_in_flight` sent or being
//! sent, and a token bucket of `rate.limit` tokens refilled over
//! `rate.period_s`, on the database's clock so that it holds across
//! instances. Pure: the store runs [`admit`] under the lock of the key's
//! row and writes what it answers.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::error::{FieldError, Reason};

pub const MAX_KEY_LEN: usize = 200;
pub const MAX_IN_FLIGHT: i64 = 10_000;
pub const MAX_RATE_LIMIT: i64 = 1_000_000;
pub const MAX_RATE_PERIOD_S: i64 = 86_400;
/// A priority's range, either way.
pub const MAX_PRIORITY: i64 = 1_000;

/// A flow key: 1 to 200 characters from `[A-Za-z0-9._:-]` (a host name
/// fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FlowKey(String);

impl FlowKey {
    pub fn parse(text: &str) -> Result<Self, Reason> {
        if text.is_empty() || text.len() > MAX_KEY_LEN {
            return Err(format!("must be 1 to {MAX_KEY_LEN} characters").into());
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(format!("contains {bad:?}; only A-Z a-z 0-9 . _ : - are allowed").into());
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A waiting run's `wait_reason`.
    pub fn wait_reason(&self) -> String {
        format!("flow:{}", self.0)
    }
}

/// A token bucket's rate: `limit` requests per `period_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    #[schema(minimum = 1, maximum = 1000000)]
    pub limit: u32,
    #[schema(minimum = 1, maximum = 86400)]
    pub period_s: u32,
}

/// Who defined a key's limits: `PUT /v1/flows/{key}` (or an apply), the
/// API's own; a bundle exports only those.
pub const DEFINED_BY_API: &str = "api";
/// Who defined a key's limits: the first job that declared them.
pub const DEFINED_BY_JOB: &str = "job";

// A bundle's `flows` entries take the same (§11.9).
/// A flow key's limits, as `PUT /v1/flows/{key}` defines them.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowLimitsInput {
    /// Runs of the key sent or being sent at once (1 to 10000); absent
    /// for no cap.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_in_flight: Option<i64>,
    /// A token bucket: at most `limit` runs per `period_s`, in a burst of
    /// at most `limit`; absent for no rate.
    #[serde(default)]
    pub rate: Option<Rate>,
}

/// A key's limits; none of either is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowLimits {
    pub max_in_flight: Option<u32>,
    pub rate: Option<Rate>,
}

impl FlowLimits {
    /// In words, for a refusal: "max_in_flight 2, rate 10 per 60 s".
    pub fn describe(self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.max_in_flight {
            parts.push(format!("max_in_flight {n}"));
        }
        if let Some(r) = self.rate {
            parts.push(format!("rate {} per {} s", r.limit, r.period_s));
        }
        if parts.is_empty() {
            "no limits".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// A token bucket as the key's row keeps it: tokens at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at: DateTime<Utc>,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(rate: Option<Rate>, now: DateTime<Utc>) -> Self {
        Self {
            tokens: rate.map_or(0.0, |r| f64::from(r.limit)),
            at: now,
        }
    }

    /// Its tokens at `now`: refilled at `limit / period_s` a second, up to
    /// `limit` (a burst of at most `limit`).
    pub fn refilled(self, rate: Rate, now: DateTime<Utc>) -> Self {
        let elapsed = (now - self.at)
            .num_microseconds()
            .unwrap_or(i64::MAX)
            .max(0) as f64
            / 1e6;
        let per_s = f64::from(rate.limit) / f64::from(rate.period_s);
        Self {
            tokens: (self.tokens + elapsed * per_s).min(f64::from(rate.limit)),
            at: now.max(self.at),
        }
    }

    /// One token taken at `now`: the bucket after it, or when the next
    /// whole token comes.
    pub fn take(self, rate: Rate, now: DateTime<Utc>) -> Result<Self, DateTime<Utc>> {
        let refilled = self.refilled(rate, now);
        if whole(refilled.tokens) >= 1 {
            Ok(Self {
                tokens: refilled.tokens - 1.0,
                ..refilled
            })
        } else {
            Err(next_token_at(refilled, rate, now))
        }
    }
}

/// What one admission pass answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Admitted {
    /// How many of the due waiting runs go now, in order.
    pub runs: u32,
    /// The bucket after them (unchanged without a rate).
    pub bucket: Bucket,
    /// When runs still waiting may go by time alone (the next token); none
    /// when nothing waits, or only the end of a run in flight makes room.
    pub again_at: Option<DateTime<Utc>>,
}

/// Admits the key's `due` waiting runs with `in_flight` runs sent or being
/// sent, at `now`. A paused key admits none.
pub fn admit(
    limits: FlowLimits,
    paused: bool,
    bucket: Bucket,
    in_flight: u32,
    due: u32,
    now: DateTime<Utc>,
) -> Admitted {
    let bucket = match limits.rate {
        Some(rate) => bucket.refilled(rate, now),
        None => bucket,
    };
    if paused || due == 0 {
        return Admitted {
            runs: 0,
            bucket,
            again_at: None,
        };
    }
    let room = limits
        .max_in_flight
        .map_or(u32::MAX, |most| most.saturating_sub(in_flight));
    let tokens = limits.rate.map_or(u32::MAX, |_| whole(bucket.tokens));
    let runs = due.min(room).min(tokens);
    let mut after = bucket;
    if limits.rate.is_some() {
        after.tokens -= f64::from(runs);
    }
    // Waiting runs left that a token (not a run's end) lets go.
    let again_at = match limits.rate {
        Some(rate) if runs < due && runs == tokens && runs < room => {
            Some(next_token_at(after, rate, now))
        }
        _ => None,
    };
    Admitted {
        runs,
        bucket: after,
        again_at,
    }
}

/// Whole tokens, forgiving the float's last bits (a refill that should
/// make exactly one token may make 0.9999999999).
pub fn whole(tokens: f64) -> u32 {
    (tokens + 1e-9).floor().max(0.0) as u32
}

/// When the bucket holds a whole token again, to the microsecond.
fn next_token_at(bucket: Bucket, rate: Rate, now: DateTime<Utc>) -> DateTime<Utc> {
    let missing = (1.0 - bucket.tokens).max(0.0);
    let micros_per_token = f64::from(rate.period_s) * 1e6 / f64::from(rate.limit);
    let micros = (missing * micros_per_token).round() as i64;
    now + TimeDelta::microseconds(micros.max(1))
}

/// Whether a run waiting since it was due at `scheduled_for` has waited
/// past `max_wait_s` at `now` (then it is `missed`).
pub fn waited_too_long(
    scheduled_for: DateTime<Utc>,
    max_wait_s: Option<u32>,
    now: DateTime<Utc>,
) -> bool {
    max_wait_s.is_some_and(|s| now - scheduled_for > TimeDelta::seconds(i64::from(s)))
}

/// A job's flow as a client writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowInput {
    /// The key runs share: 1 to 200 characters from `[A-Za-z0-9._:-]`.
    #[schema(example = "api.partner.com", required = true, value_type = String,
             min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9._:-]+$")]
    pub key: Option<String>,
    /// Runs of the key sent or being sent at once (1 to 10000); none for
    /// no cap. With `rate`, the key's limits, unless `PUT /v1/flows/{key}`
    /// defines them (then jobs give only the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_in_flight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Higher goes first among runs waiting for the key (default 0,
    /// −1000 to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i64>,
    /// A run that waits longer than this past its `scheduled_for` is
    /// recorded `missed` (`reason: max_wait`); none to wait for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_wait_s: Option<i64>,
}

/// A job's validated flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub key: FlowKey,
    /// The limits this job declares for its key, if any.
    pub limits: Option<FlowLimits>,
    pub priority: i32,
    pub max_wait_s: Option<u32>,
}

/// Checks a rate and a cap as given under `field`.
pub fn parse_limits(
    max_in_flight: Option<i64>,
    rate: Option<Rate>,
    field: &str,
) -> Result<FlowLimits, FieldError> {
    let at = |name: &str| {
        if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        }
    };
    let max_in_flight = match max_in_flight {
        None => None,
        Some(n) if (1..=MAX_IN_FLIGHT).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(FieldError::new(
                at("max_in_flight"),
                format!("must be between 1 and {MAX_IN_FLIGHT}, got {n}"),
            ));
        }
    };
    if let Some(r) = rate {
        if !(1..=MAX_RATE_LIMIT).contains(&i64::from(r.limit)) {
            return Err(FieldError::new(
                at("rate.limit"),
                format!("must be between 1 and {MAX_RATE_LIMIT}, got {}", r.limit),
            ));
        }
        if !(1..=MAX_RATE_PERIOD_S).contains(&i64::from(r.period_s)) {
            return Err(FieldError::new(
                at("rate.period_s"),
                format!(
                    "must be between 1 and {MAX_RATE_PERIOD_S}, got {}",
                    r.period_s
                ),
            ));
        }
    }
    Ok(FlowLimits {
        max_in_flight,
        rate,
    })
}

impl FlowInput {
    pub fn parse(self) -> Result<Flow, FieldError> {
        let key = self
            .key
            .as_deref()
            .ok_or_else(|| FieldError::new("flow.key", "is required"))
            .and_then(|k| FlowKey::parse(k).map_err(|m| FieldError::new("flow.key", m)))?;
        let limits = match (self.max_in_flight, self.rate) {
            (None, None) => None,
            (cap, rate) => Some(parse_limits(cap, rate, "flow")?),
        };
        let priority = match self.priority {
            None => 0,
            Some(p) if (-MAX_PRIORITY..=MAX_PRIORITY).contains(&p) => p as i32,
            Some(p) => {
                return Err(FieldError::new(
                    "flow.priority",
                    format!("must be between -{MAX_PRIORITY} and {MAX_PRIORITY}, got {p}"),
                ));
            }
        };
        let max_wait_s = match self.max_wait_s {
            None => None,
            Some(s) if (1..=i64::from(u32::MAX)).contains(&s) => Some(s as u32),
            Some(s) => {
                return Err(FieldError::new(
                    "flow.max_wait_s",
                    format!("must be at least 1 (or absent to wait for ever), got {s}"),
                ));
            }
        };
        Ok(Flow {
            key,
            limits,
            priority,
            max_wait_s,
        })
    }
}

impl Flow {
    pub fn to_input(&self) -> FlowInput {
        FlowInput {
            key: Some(self.key.as_str().to_string()),
            max_in_flight: self.limits.and_then(|l| l.max_in_flight).map(i64::from),
            rate: self.limits.and_then(|l| l.rate),
            priority: Some(i64::from(self.priority)),
            max_wait_s: self.max_wait_s.map(i64::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        parse(s).unwrap()
    }

    const T0: &str = "2026-06-01T12:00:00Z";

    fn limits(cap: Option<u32>, rate: Option<(u32, u32)>) -> FlowLimits {
        FlowLimits {
            max_in_flight: cap,
            rate: rate.map(|(limit, period_s)| Rate { limit, period_s }),
        }
    }

    #[test]
    fn take_spends_a_token_or_says_when_the_next_comes() {
        let rate = Rate {
            limit: 2,
            period_s: 10,
        };
        let t0 = at("2026-12-04T10:00:00Z");
        let bucket = Bucket::full(Some(rate), t0);
        let bucket = bucket.take(rate, t0).unwrap().take(rate, t0).unwrap();
        assert_eq!(bucket.take(rate, t0), Err(at("2026-12-04T10:00:05Z")));
        assert!(bucket.take(rate, at("2026-12-04T10:00:05Z")).is_ok());
    }

    #[test]
    fn a_full_bucket_lets_a_burst_of_its_limit_then_one_per_token() {
        let l = limits(None, Some((10, 60)));
        let now = at(T0);
        let first = admit(l, false, Bucket::full(l.rate, now), 0, 25, now);
        assert_eq!(first.runs, 10);
        // One token every 6 s.
        assert_eq!(first.again_at, Some(at("2026-06-01T12:00:06Z")));
        let early = admit(l, false, first.bucket, 0, 15, at("2026-06-01T12:00:05Z"));
        assert_eq!(
            (early.runs, early.again_at),
            (0, Some(at("2026-06-01T12:00:06Z")))
        );
        let later = admit(l, false, first.bucket, 0, 15, at("2026-06-01T12:00:13Z"));
        assert_eq!(later.runs, 2);
        // The bucket never holds more than its limit.
        let idle = admit(l, false, later.bucket, 0, 100, at("2026-06-02T12:00:00Z"));
        assert_eq!(idle.runs, 10);
    }

    #[test]
    fn max_in_flight_caps_and_leaves_the_rest_to_a_runs_end() {
        let l = limits(Some(2), None);
        let now = at(T0);
        let a = admit(l, false, Bucket::full(None, now), 0, 5, now);
        assert_eq!((a.runs, a.again_at), (2, None));
        assert_eq!(admit(l, false, a.bucket, 2, 3, now).runs, 0);
        assert_eq!(admit(l, false, a.bucket, 1, 3, now).runs, 1);
        // Both limits: the tighter one holds.
        let both = limits(Some(3), Some((100, 1)));
        let b = admit(both, false, Bucket::full(both.rate, now), 1, 10, now);
        assert_eq!((b.runs, b.again_at), (2, None));
    }

    #[test]
    fn a_paused_key_and_no_waiting_run_admit_nothing() {
        let l = limits(Some(5), Some((5, 1)));
        let now = at(T0);
        let paused = admit(l, true, Bucket::full(l.rate, now), 0, 3, now);
        assert_eq!((paused.runs, paused.again_at), (0, None));
        let idle = admit(l, false, Bucket::full(l.rate, now), 0, 0, now);
        assert_eq!(idle.runs, 0);
        let free = admit(
            FlowLimits::default(),
            false,
            Bucket::full(None, now),
            1_000,
            7,
            now,
        );
        assert_eq!(free.runs, 7);
    }

    #[test]
    fn a_run_waits_at_most_max_wait_s() {
        let due = at(T0);
        assert!(!waited_too_long(due, Some(60), at("2026-06-01T12:01:00Z")));
        assert!(waited_too_long(
            due,
            Some(60),
            at("2026-06-01T12:01:00.000001Z")
        ));
        assert!(!waited_too_long(due, None, at("2027-06-01T12:00:00Z")));
    }

    #[test]
    fn flows_are_checked_naming_the_field() {
        let parse = |v: serde_json::Value| {
            serde_json::from_value::<FlowInput>(v)
                .map_err(|e| e.to_string())
                .and_then(|f| f.parse().map_err(|e| e.to_string()))
        };
        let f = parse(json!({"key": "api.partner.com", "max_in_flight": 2,
                             "rate": {"limit": 10, "period_s": 60}, "priority": 5}))
        .unwrap();
        assert_eq!(f.limits, Some(limits(Some(2), Some((10, 60)))));
        assert_eq!((f.priority, f.max_wait_s), (5, None));
        assert_eq!(parse(json!({"key": "k"})).unwrap().limits, None);
        assert!(
            parse(json!({}))
                .unwrap_err()
                .starts_with("flow.key: is required")
        );
        assert!(
            parse(json!({"key": "a/b"}))
                .unwrap_err()
                .starts_with("flow.key: contains '/'")
        );
        assert!(
            parse(json!({"key": "k", "max_in_flight": 0}))
                .unwrap_err()
                .starts_with("flow.max_in_flight: must be between 1")
        );
        assert!(
            parse(json!({"key": "k", "rate": {"limit": 0, "period_s": 1}}))
                .unwrap_err()
                .starts_with("flow.rate.limit: ")
        );
        assert!(
            parse(json!({"key": "k", "rate": {"limit": 1, "period_s": 0}}))
                .unwrap_err()
                .starts_with("flow.rate.period_s: ")
        );
        assert!(
            parse(json!({"key": "k", "priority": 1001}))
                .unwrap_err()
                .starts_with("flow.priority: ")
        );
        assert!(
            parse(json!({"key": "k", "max_wait_s": 0}))
                .unwrap_err()
                .starts_with("flow.max_wait_s: ")
        );
        assert_eq!(FlowKey::parse("k").unwrap().wait_reason(), "flow:k");
    }
}
