//! Retry policy and backoff (DESIGN.md §4). Pure: randomness and the
//! current time are arguments.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::error::FieldError;
use crate::domain::run::RunStatus;
use crate::domain::success::StatusMatch;

pub const MAX_ATTEMPTS_LIMIT: i64 = 100;
pub const MAX_BACKOFF_S: i64 = 86_400;
pub const MAX_AGE_S: i64 = 31 * 86_400;
const MAX_LIST: usize = 50;

// The OpenAPI schema is derived from this type. The bounds in `schema`
// attributes must be literals; `api::schema`'s tests hold them to the
// constants above. The lists' items are typed by the functions below.
/// How failed deliveries are retried (DESIGN.md §4, §11.6).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Retry)]
pub struct RetryInput {
    /// Attempts in all, the first one included (default 3).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i64>,
    /// Upper end of the first retry's wait, in seconds (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub backoff_initial_s: Option<i64>,
    /// Cap on any wait, `Retry-After` included, in seconds (default 300);
    /// not less than `backoff_initial_s`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub backoff_max_s: Option<i64>,
    /// The failures that are retried: `network`, `timeout`, `rule_failed`
    /// (a status the success rules accept, failing another of them),
    /// status codes and classes such as `"5xx"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = retry_on_schema)]
    pub retry_on: Option<Vec<Value>>,
    /// Status codes never retried, whatever `retry_on` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = never_retry_schema)]
    pub never_retry: Option<Vec<i64>>,
    /// No retry is sent later than this many seconds after the run's
    /// `scheduled_for`: the run fails with reason `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2678400)]
    pub max_age_s: Option<i64>,
    /// Waits before each retry, in seconds, the last one repeated, instead
    /// of the exponential backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = delays_schema)]
    pub delays_s: Option<Vec<i64>>,
    /// A callback run that timed out or lost its heartbeat (§11.7) is
    /// sent again, as a failed attempt would be (default false: it fails).
    /// Only with `completion.mode: callback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<bool>,
}

/// A nullable list of at most `max_items` `items` (the derive cannot
/// type a list's items beyond their Rust type).
pub(crate) fn list_schema(
    items: impl Into<utoipa::openapi::RefOr<utoipa::openapi::Schema>>,
    max_items: usize,
    description: &str,
) -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(items.into())
        .max_items(Some(max_items))
        .description(Some(description))
        .build()
}

/// A whole number from `minimum` to `maximum`, a list's item.
pub(crate) fn integer_schema(minimum: i64, maximum: i64) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Integer)
        .minimum(Some(minimum))
        .maximum(Some(maximum))
        .build()
}

fn retry_on_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::{ObjectBuilder, OneOfBuilder, Type};
    let kinds = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["network", "timeout", "rule_failed"]));
    let items = OneOfBuilder::new()
        .item(kinds)
        .item(crate::domain::success::status_class_schema())
        .item(crate::domain::success::status_code_schema());
    list_schema(
        items,
        MAX_LIST,
        "The failures retried (default `[\"network\", \"timeout\", 408, 425, 429, \"5xx\"]`); \
         `rule_failed` retries a status the success rules accept that fails another of them.",
    )
}

fn never_retry_schema() -> utoipa::openapi::Array {
    list_schema(
        crate::domain::success::status_code_schema(),
        MAX_LIST,
        "Status codes never retried, whatever `retry_on` says.",
    )
}

fn delays_schema() -> utoipa::openapi::Array {
    list_schema(
        integer_schema(0, MAX_BACKOFF_S),
        MAX_LIST,
        "Waits before each retry, in seconds, the last one repeated, instead of the exponential backoff.",
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_initial_s: u32,
    pub backoff_max_s: u32,
    /// `retry_on`, `never_retry`, `max_age_s`, `delays_s`; none for their
    /// defaults (the common case costs nothing to carry).
    pub rules: Option<Arc<RetryRules>>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_initial_s: 1,
            backoff_max_s: 300,
            rules: None,
        }
    }
}

/// The retry rules beyond the attempt count and backoff (§11.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRules {
    pub retry_on: Vec<RetryOn>,
    pub never_retry: Vec<u16>,
    pub max_age_s: Option<u32>,
    pub delays_s: Vec<u32>,
    /// Retry a callback run that timed out or lost its heartbeat (§11.7).
    pub on_timeout: bool,
}

/// A kind of failure `retry_on` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    Network,
    Timeout,
    RuleFailed,
    Status(StatusMatch),
}

impl RetryOn {
    pub const DEFAULT: [RetryOn; 6] = [
        RetryOn::Network,
        RetryOn::Timeout,
        RetryOn::Status(StatusMatch::Code(408)),
        RetryOn::Status(StatusMatch::Code(425)),
        RetryOn::Status(StatusMatch::Code(429)),
        RetryOn::Status(StatusMatch::Class(5)),
    ];

    fn parse(value: &Value) -> Option<Self> {
        match value.as_str() {
            Some("network") => Some(RetryOn::Network),
            Some("timeout") => Some(RetryOn::Timeout),
            Some("rule_failed") => Some(RetryOn::RuleFailed),
            _ => StatusMatch::parse(value).map(RetryOn::Status),
        }
    }

    fn to_value(self) -> Value {
        match self {
            RetryOn::Network => "network".into(),
            RetryOn::Timeout => "timeout".into(),
            RetryOn::RuleFailed => "rule_failed".into(),
            RetryOn::Status(s) => s.to_value(),
        }
    }

    fn covers(self, failure: FailureKind) -> bool {
        match (self, failure) {
            (RetryOn::Network, FailureKind::Network)
            | (RetryOn::Timeout, FailureKind::Timeout)
            | (RetryOn::RuleFailed, FailureKind::RuleFailed(_)) => true,
            (RetryOn::Status(s), FailureKind::Status(code)) => s.matches(code),
            _ => false,
        }
    }
}

/// A failed attempt, as `retry_on` tells failures apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    Network,
    Timeout,
    Status(u16),
    /// A status the success rules accept, failing another rule.
    RuleFailed(u16),
    /// An accepted callback run that timed out or lost its heartbeat.
    CallbackTimedOut,
}

impl RetryInput {
    pub fn parse(self, field: &str) -> Result<RetryPolicy, FieldError> {
        let at = |name: &str| format!("{field}.{name}");
        let d = RetryPolicy::default();
        let in_range = |value: Option<i64>, default: u32, name: &str, max: i64| match value {
            None => Ok(default),
            Some(v) if (1..=max).contains(&v) => Ok(v as u32),
            Some(v) => Err(FieldError::new(
                at(name),
                format!("must be between 1 and {max}, got {v}"),
            )),
        };
        let policy = RetryPolicy {
            max_attempts: in_range(
                self.max_attempts,
                d.max_attempts,
                "max_attempts",
                MAX_ATTEMPTS_LIMIT,
            )?,
            backoff_initial_s: in_range(
                self.backoff_initial_s,
                d.backoff_initial_s,
                "backoff_initial_s",
                MAX_BACKOFF_S,
            )?,
            backoff_max_s: in_range(
                self.backoff_max_s,
                d.backoff_max_s,
                "backoff_max_s",
                MAX_BACKOFF_S,
            )?,
            rules: None,
        };
        if policy.backoff_max_s < policy.backoff_initial_s {
            return Err(FieldError::new(
                at("backoff_max_s"),
                format!(
                    "must not be less than backoff_initial_s ({})",
                    policy.backoff_initial_s
                ),
            ));
        }
        let rules = parse_rules(
            self.retry_on,
            self.never_retry,
            self.max_age_s,
            self.delays_s,
            self.on_timeout,
            field,
        )?;
        Ok(RetryPolicy {
            rules: rules.map(Arc::new),
            ..policy
        })
    }
}

/// Each item of list `field.name` read by `read`, a refusal naming the
/// item; at most [`MAX_LIST`] items.
fn each<T, U>(
    list: &[T],
    field: &str,
    name: &str,
    read: impl Fn(&T) -> Result<U, String>,
) -> Result<Vec<U>, FieldError> {
    if list.len() > MAX_LIST {
        return Err(FieldError::new(
            format!("{field}.{name}"),
            format!("must list at most {MAX_LIST} items"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| read(item).map_err(|m| FieldError::new(format!("{field}.{name}[{i}]"), m)))
        .collect()
}

/// The rules beyond the backoff; none when every one is its default.
fn parse_rules(
    retry_on: Option<Vec<Value>>,
    never_retry: Option<Vec<i64>>,
    max_age_s: Option<i64>,
    delays_s: Option<Vec<i64>>,
    on_timeout: Option<bool>,
    field: &str,
) -> Result<Option<RetryRules>, FieldError> {
    if retry_on.is_none()
        && never_retry.is_none()
        && max_age_s.is_none()
        && delays_s.is_none()
        && on_timeout.is_none()
    {
        return Ok(None);
    }
    let at = |name: &str| format!("{field}.{name}");
    let retry_on = match retry_on {
        None => RetryOn::DEFAULT.to_vec(),
        Some(list) => each(&list, field, "retry_on", |v| {
            RetryOn::parse(v).ok_or_else(|| {
                format!("must be \"network\", \"timeout\", \"rule_failed\", a status code 100 to 599 or a class such as \"5xx\", got {v}")
            })
        })?,
    };
    let never_retry = each(
        &never_retry.unwrap_or_default(),
        field,
        "never_retry",
        |&code| {
            u16::try_from(code)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| format!("must be a status code 100 to 599, got {code}"))
        },
    )?;
    let max_age_s = match max_age_s {
        None => None,
        Some(s) if (1..=MAX_AGE_S).contains(&s) => Some(s as u32),
        Some(s) => {
            return Err(FieldError::new(
                at("max_age_s"),
                format!("must be between 1 and {MAX_AGE_S}, got {s}"),
            ));
        }
    };
    let delays_s = each(&delays_s.unwrap_or_default(), field, "delays_s", |&d| {
        u32::try_from(d)
            .ok()
            .filter(|d| i64::from(*d) <= MAX_BACKOFF_S)
            .ok_or_else(|| format!("must be between 0 and {MAX_BACKOFF_S} seconds, got {d}"))
    })?;
    Ok(Some(RetryRules {
        retry_on,
        never_retry,
        max_age_s,
        delays_s,
        on_timeout: on_timeout.unwrap_or(false),
    }))
}

impl RetryPolicy {
    pub fn to_input(&self) -> RetryInput {
        let rules = self.rules.as_deref();
        RetryInput {
            max_attempts: Some(self.max_attempts.into()),
            backoff_initial_s: Some(self.backoff_initial_s.into()),
            backoff_max_s: Some(self.backoff_max_s.into()),
            retry_on: rules.map(|r| r.retry_on.iter().map(|o| o.to_value()).collect()),
            never_retry: rules
                .filter(|r| !r.never_retry.is_empty())
                .map(|r| r.never_retry.iter().map(|&c| i64::from(c)).collect()),
            max_age_s: rules.and_then(|r| r.max_age_s).map(i64::from),
            delays_s: rules
                .filter(|r| !r.delays_s.is_empty())
                .map(|r| r.delays_s.iter().map(|&d| i64::from(d)).collect()),
            on_timeout: rules.filter(|r| r.on_timeout).map(|_| true),
        }
    }

    /// The wait before retry number `n` (1 for the first retry): the
    /// `delays_s` step if the rules give steps (the last one repeated),
    /// else uniform in `[d/2, d]` with `d = min(max, initial·2^(n−1))`,
    /// where `unit` is a uniform random number in `[0, 1)`. A
    /// `Retry-After` the target sent replaces it, clamped to
    /// `backoff_max_s`.
    pub fn delay(&self, n: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        let max = Duration::from_secs(self.backoff_max_s.into());
        if let Some(wait) = retry_after {
            return wait.min(max);
        }
        if let Some(steps) = self.rules.as_deref().map(|r| &r.delays_s)
            && let Some(last) = steps.last()
        {
            let step = steps.get(n.saturating_sub(1) as usize).unwrap_or(last);
            return Duration::from_secs(u64::from(*step));
        }
        let exp = n.saturating_sub(1).min(40);
        let d = Duration::from_secs(u64::from(self.backoff_initial_s))
            .saturating_mul(1u32 << exp.min(31))
            .min(max);
        let unit = unit.clamp(0.0, 1.0);
        d / 2 + (d / 2).mul_f64(unit)
    }

    /// Whether a callback run that timed out is sent again (§11.7).
    pub fn retries_time_outs(&self) -> bool {
        self.rules.as_deref().is_some_and(|r| r.on_timeout)
    }

    /// Whether a failure of this kind is worth another attempt.
    fn retries(&self, failure: FailureKind) -> bool {
        if failure == FailureKind::CallbackTimedOut {
            return self.retries_time_outs();
        }
        let Some(rules) = self.rules.as_deref() else {
            return RetryOn::DEFAULT.iter().any(|on| on.covers(failure));
        };
        let status = match failure {
            FailureKind::Status(s) | FailureKind::RuleFailed(s) => Some(s),
            FailureKind::Network | FailureKind::Timeout | FailureKind::CallbackTimedOut => None,
        };
        if status.is_some_and(|s| rules.never_retry.contains(&s)) {
            return false;
        }
        rules.retry_on.iter().any(|on| on.covers(failure))
    }

    /// Whether a retry `delay` from now would be sent later than
    /// `max_age_s` after `scheduled_for` (`age` = now − scheduled_for).
    fn too_old(&self, age: Duration, delay: Duration) -> bool {
        self.rules
            .as_deref()
            .and_then(|r| r.max_age_s)
            .is_some_and(|max| age.saturating_add(delay) > Duration::from_secs(max.into()))
    }
}

/// What becomes of a run after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Pending again, its next attempt after this delay.
    Retry {
        delay: Duration,
    },
    /// A callback job's run accepted by a successful response (§11.7): it
    /// stays running until its completion, `timeout` from now, with a
    /// heartbeat due every `heartbeat` if the job asks for them.
    Accepted {
        timeout: Duration,
        heartbeat: Option<Duration>,
    },
    /// Ended by a cancel (§11.7), never by an attempt: followed up as an
    /// end, but it starts no chained run (§11.8).
    Cancelled,
}

impl Outcome {
    /// The run's status once the outcome is recorded.
    pub fn run_status(self) -> RunStatus {
        match self {
            Outcome::Succeeded => RunStatus::Succeeded,
            Outcome::Failed => RunStatus::Failed,
            Outcome::Retry { .. } => RunStatus::Pending,
            Outcome::Accepted { .. } => RunStatus::Running,
            Outcome::Cancelled => RunStatus::Cancelled,
        }
    }

    /// Whether the run ends with this outcome: neither sent again nor
    /// still running.
    pub fn ends_run(self) -> bool {
        matches!(
            self,
            Outcome::Succeeded | Outcome::Failed | Outcome::Cancelled
        )
    }
}

/// What an attempt got back, as the retry rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// An answer the success rules accept.
    Succeeded,
    /// An answer they refuse for its status (and `Retry-After`, if it
    /// sent one).
    Response {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// An answer whose status they accept, failing another rule.
    RuleFailed {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No response: a network error (`timeout` false) or a timeout.
    NoResponse { timeout: bool },
    /// Cut off by its instance's death (recovered from its expired lease).
    /// It counts as an attempt, but says nothing of the target: what is
    /// left of the run is sent again at once, without a backoff.
    Interrupted,
    /// The network policy refused every address: retrying cannot help.
    Refused,
    /// An accepted callback run with no completion within `timeout_s`, or
    /// no heartbeat for `heartbeat_s` (§11.7): retried only under
    /// `retry.on_timeout`, never by `retry_on`.
    CallbackTimedOut,
}

/// Which attempt of a run: its number (1 for the first, counting every
/// attempt the run ever had) and how many came before its last redrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptNumber {
    pub number: u32,
    pub before_redrive: u32,
}

impl AttemptNumber {
    /// Its number within the round its retry policy counts: a redrive
    /// (`POST /v1/runs/{id}/retry`) starts the count afresh.
    pub fn in_round(self) -> u32 {
        self.number.saturating_sub(self.before_redrive).max(1)
    }
}

/// The attempt numbered so, of a run never sent again.
impl From<u32> for AttemptNumber {
    fn from(number: u32) -> Self {
        Self {
            number,
            before_redrive: 0,
        }
    }
}

/// What a run becomes after an attempt, and why when a rule decided it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    /// `rule_failed` or `expired` when the run failed for that (the run's
    /// `reason`, DESIGN.md §11.6).
    pub reason: Option<&'static str>,
}

impl From<Outcome> for Decision {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            reason: None,
        }
    }
}

/// What a run becomes after `attempt`: the one place the retry rules and
/// the backoff are applied, to attempts that got an answer and to attempts
/// recovered from an expired lease alike, counted from the run's last
/// redrive. `age` is now − the run's `scheduled_for` (zero for what has
/// none); `unit` is a uniform random number in `[0, 1)`.
pub fn after_attempt(
    attempt: impl Into<AttemptNumber>,
    policy: &RetryPolicy,
    result: AttemptResult,
    age: Duration,
    unit: f64,
) -> Decision {
    let attempt = attempt.into().in_round();
    let (failure, retry_after) = match result {
        AttemptResult::Succeeded => return Outcome::Succeeded.into(),
        AttemptResult::Refused => return Outcome::Failed.into(),
        AttemptResult::Interrupted => (None, None),
        AttemptResult::NoResponse { timeout: false } => (Some(FailureKind::Network), None),
        AttemptResult::NoResponse { timeout: true } => (Some(FailureKind::Timeout), None),
        AttemptResult::CallbackTimedOut => (Some(FailureKind::CallbackTimedOut), None),
        AttemptResult::Response {
            status,
            retry_after,
        } => (Some(FailureKind::Status(status)), retry_after),
        AttemptResult::RuleFailed {
            status,
            retry_after,
        } => (Some(FailureKind::RuleFailed(status)), retry_after),
    };
    let failed = |reason| Decision {
        outcome: Outcome::Failed,
        reason,
    };
    let rule_failed = matches!(failure, Some(FailureKind::RuleFailed(_)))
        .then_some(crate::domain::run::RULE_FAILED);
    // Interrupted says nothing of the target: what is left of the run is
    // sent again at once, without a backoff.
    if failure.is_some_and(|f| !policy.retries(f)) {
        return failed(rule_failed);
    }
    if attempt >= policy.max_attempts {
        return failed(rule_failed);
    }
    let delay = match failure {
        None => Duration::ZERO,
        Some(_) => policy.delay(attempt, unit, retry_after),
    };
    if policy.too_old(age, delay) {
        return failed(Some(crate::domain::run::EXPIRED));
    }
    Outcome::Retry { delay }.into()
}

/// Waits between tries of the service's own loops against its database
/// (a failed scheduler pass, claim, attempt record, or LISTEN connection):
/// doubling from 100 ms to at most 5 s, back to the start after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub const INITIAL: Duration = Duration::from_millis(100);
    pub const MAX: Duration = Duration::from_secs(5);

    pub const fn new() -> Self {
        Self { failures: 0 }
    }

    /// The wait after one more failure.
    pub fn next_wait(&mut self) -> Duration {
        let wait = Self::INITIAL
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.to_utc();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial: u32, max: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            backoff_initial_s: initial,
            backoff_max_s: max,
            rules: None,
        }
    }

    #[test]
    fn backoff_doubles_within_half_to_full_and_is_capped() {
        let p = policy(1, 300);
        assert_eq!(p.delay(1, 0.0, None), Duration::from_millis(500));
        assert_eq!(p.delay(1, 0.999_999, None).as_millis(), 999);
        assert_eq!(p.delay(2, 0.0, None), Duration::from_secs(1));
        assert_eq!(p.delay(3, 0.0, None), Duration::from_secs(2));
        assert_eq!(p.delay(4, 1.0, None), Duration::from_secs(8));
        assert_eq!(p.delay(10, 1.0, None), Duration::from_secs(300));
        assert_eq!(p.delay(10, 0.0, None), Duration::from_secs(150));
        assert_eq!(p.delay(u32::MAX, 0.5, None), Duration::from_secs(225));
    }

    #[test]
    fn retry_after_wins_but_is_clamped() {
        let p = policy(1, 60);
        assert_eq!(
            p.delay(1, 0.0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(1, 0.0, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = crate::domain::instant::parse("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(parse_retry_after("12", now), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    fn outcome(
        attempt: impl Into<AttemptNumber>,
        p: &RetryPolicy,
        result: AttemptResult,
        unit: f64,
    ) -> Outcome {
        after_attempt(attempt, p, result, Duration::ZERO, unit).outcome
    }

    fn status(status: u16) -> AttemptResult {
        AttemptResult::Response {
            status,
            retry_after: None,
        }
    }

    fn with_rules(v: serde_json::Value) -> RetryPolicy {
        serde_json::from_value::<RetryInput>(v)
            .unwrap()
            .parse("retry")
            .unwrap()
    }

    #[test]
    fn after_an_attempt_the_run_succeeds_fails_or_waits() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let busy = status(503);
        assert_eq!(
            outcome(1, &p, AttemptResult::Succeeded, 0.0),
            Outcome::Succeeded
        );
        // After a redrive the policy counts afresh: the fifth attempt of a
        // run sent again after its third is the second of its round.
        let redriven = AttemptNumber {
            number: 5,
            before_redrive: 3,
        };
        assert_eq!(redriven.in_round(), 2);
        assert_eq!(outcome(redriven, &p, busy, 0.0), outcome(2, &p, busy, 0.0));
        let sixth = AttemptNumber {
            number: 6,
            before_redrive: 3,
        };
        assert_eq!(outcome(sixth, &p, busy, 0.0), Outcome::Failed);
        assert_eq!(outcome(1, &p, status(410), 0.0), Outcome::Failed);
        assert_eq!(
            outcome(1, &p, busy, 0.0),
            Outcome::Retry {
                delay: Duration::from_millis(500)
            }
        );
        for timeout in [false, true] {
            assert_eq!(
                outcome(2, &p, AttemptResult::NoResponse { timeout }, 1.0),
                Outcome::Retry {
                    delay: Duration::from_secs(2)
                }
            );
        }
        assert_eq!(outcome(3, &p, busy, 0.0), Outcome::Failed);
        assert_eq!(outcome(1, &p, AttemptResult::Refused, 0.0), Outcome::Failed);
        // Interrupted: again at once while attempts are left.
        assert_eq!(
            outcome(2, &p, AttemptResult::Interrupted, 1.0),
            Outcome::Retry {
                delay: Duration::ZERO
            }
        );
        assert_eq!(
            outcome(3, &p, AttemptResult::Interrupted, 0.0),
            Outcome::Failed
        );
        let throttled = AttemptResult::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(42)),
        };
        assert_eq!(
            outcome(1, &p, throttled, 0.0),
            Outcome::Retry {
                delay: Duration::from_secs(42)
            }
        );
        assert_eq!(Outcome::Succeeded.run_status(), RunStatus::Succeeded);
        assert_eq!(
            Outcome::Retry {
                delay: Duration::ZERO
            }
            .run_status(),
            RunStatus::Pending
        );
    }

    #[test]
    fn by_default_network_timeouts_408_425_429_and_5xx_are_retried() {
        let p = RetryPolicy::default();
        for s in [408, 425, 429, 500, 502, 503, 599] {
            assert!(
                matches!(outcome(1, &p, status(s), 0.0), Outcome::Retry { .. }),
                "{s}"
            );
        }
        for s in [204, 301, 302, 400, 401, 404, 410, 422] {
            assert_eq!(outcome(1, &p, status(s), 0.0), Outcome::Failed, "{s}");
        }
        // A rule failure is not retried unless retry_on says so.
        let rule = AttemptResult::RuleFailed {
            status: 200,
            retry_after: None,
        };
        assert_eq!(
            after_attempt(1, &p, rule, Duration::ZERO, 0.0),
            Decision {
                outcome: Outcome::Failed,
                reason: Some("rule_failed")
            }
        );
        let p = with_rules(serde_json::json!({"retry_on": ["rule_failed", "5xx"]}));
        assert!(matches!(outcome(1, &p, rule, 0.0), Outcome::Retry { .. }));
        assert_eq!(
            after_attempt(3, &p, rule, Duration::ZERO, 0.0).reason,
            Some("rule_failed"),
            "out of attempts, still for its rule"
        );
        // Listing retry_on replaces the default: no network retries now.
        assert_eq!(
            outcome(1, &p, AttemptResult::NoResponse { timeout: false }, 0.0),
            Outcome::Failed
        );
    }

    #[test]
    fn never_retry_wins_over_retry_on() {
        let p = with_rules(serde_json::json!({"never_retry": [503]}));
        assert_eq!(outcome(1, &p, status(503), 0.0), Outcome::Failed);
        assert!(matches!(
            outcome(1, &p, status(502), 0.0),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            outcome(1, &p, AttemptResult::NoResponse { timeout: true }, 0.0),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn explicit_delays_step_and_repeat_their_last() {
        let p = with_rules(serde_json::json!({"max_attempts": 10, "delays_s": [5, 30, 120]}));
        let waits: Vec<u64> = (1..=5)
            .map(|n| match outcome(n, &p, status(500), 0.7) {
                Outcome::Retry { delay } => delay.as_secs(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(waits, [5, 30, 120, 120, 120]);
        // Retry-After still wins.
        let throttled = AttemptResult::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(9)),
        };
        assert_eq!(
            outcome(1, &p, throttled, 0.0),
            Outcome::Retry {
                delay: Duration::from_secs(9)
            }
        );
    }

    #[test]
    fn no_retry_is_sent_past_max_age() {
        let p =
            with_rules(serde_json::json!({"max_attempts": 10, "max_age_s": 60, "delays_s": [10]}));
        let at = |age_s: u64| after_attempt(1, &p, status(503), Duration::from_secs(age_s), 0.0);
        assert_eq!(
            at(50).outcome,
            Outcome::Retry {
                delay: Duration::from_secs(10)
            }
        );
        assert_eq!(
            at(51),
            Decision {
                outcome: Outcome::Failed,
                reason: Some("expired")
            }
        );
        // A failure never retried is not expired: it failed for itself.
        assert_eq!(
            after_attempt(1, &p, status(404), Duration::from_secs(3600), 0.0).reason,
            None
        );
    }

    #[test]
    fn a_timed_out_callback_run_fails_unless_on_timeout_says_retry() {
        let timed_out = AttemptResult::CallbackTimedOut;
        let at = |p: &RetryPolicy, attempt: u32, age_s: u64| {
            after_attempt(attempt, p, timed_out, Duration::from_secs(age_s), 1.0)
        };
        // By default, and with on_timeout false, whatever attempts are left.
        for p in [
            RetryPolicy::default(),
            with_rules(serde_json::json!({"max_attempts": 5, "on_timeout": false})),
        ] {
            assert_eq!(at(&p, 1, 0), Outcome::Failed.into());
        }
        let p = with_rules(serde_json::json!({"max_attempts": 3, "on_timeout": true,
                                              "backoff_initial_s": 10, "max_age_s": 3600}));
        // Sent again after the backoff while attempts are left, the
        // accepted attempt counted.
        assert_eq!(
            at(&p, 1, 0),
            Outcome::Retry {
                delay: Duration::from_secs(10)
            }
            .into()
        );
        assert_eq!(
            at(&p, 2, 0),
            Outcome::Retry {
                delay: Duration::from_secs(20)
            }
            .into()
        );
        assert_eq!(at(&p, 3, 0), Outcome::Failed.into());
        // A redrive counts afresh.
        let redriven = AttemptNumber {
            number: 4,
            before_redrive: 3,
        };
        assert!(matches!(
            after_attempt(redriven, &p, timed_out, Duration::ZERO, 0.0).outcome,
            Outcome::Retry { .. }
        ));
        // Not past max_age_s: expired.
        assert_eq!(
            at(&p, 1, 3595),
            Decision {
                outcome: Outcome::Failed,
                reason: Some("expired")
            }
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn validates_ranges() {
        let bad = |v: serde_json::Value| {
            serde_json::from_value::<RetryInput>(v)
                .unwrap()
                .parse("retry")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(serde_json::json!({"max_attempts": 0})),
            "retry.max_attempts: must be between 1 and 100, got 0"
        );
        assert_eq!(
            bad(serde_json::json!({"backoff_initial_s": 10, "backoff_max_s": 5})),
            "retry.backoff_max_s: must not be less than backoff_initial_s (10)"
        );
        assert_eq!(
            bad(serde_json::json!({"retry_on": ["network", "sometimes"]})),
            "retry.retry_on[1]: must be \"network\", \"timeout\", \"rule_failed\", a status code 100 to 599 or a class such as \"5xx\", got \"sometimes\""
        );
        assert_eq!(
            bad(serde_json::json!({"never_retry": [42]})),
            "retry.never_retry[0]: must be a status code 100 to 599, got 42"
        );
        assert_eq!(
            bad(serde_json::json!({"max_age_s": 0})),
            "retry.max_age_s: must be between 1 and 2678400, got 0"
        );
        assert_eq!(
            bad(serde_json::json!({"delays_s": [1, -1]})),
            "retry.delays_s[1]: must be between 0 and 86400 seconds, got -1"
        );
    }

    #[test]
    fn rules_round_trip_and_defaults_carry_none() {
        assert_eq!(with_rules(serde_json::json!({})).rules, None);
        let p = with_rules(
            serde_json::json!({"retry_on": ["timeout", 503, "rule_failed"],
                                              "never_retry": [501], "max_age_s": 600, "delays_s": [1, 5],
                                              "on_timeout": true}),
        );
        assert_eq!(p.to_input().parse("retry").unwrap(), p);
        let alone = with_rules(serde_json::json!({"on_timeout": true}));
        assert_eq!(alone.to_input().on_timeout, Some(true));
        assert_eq!(alone.to_input().parse("retry").unwrap(), alone);
    }
}
