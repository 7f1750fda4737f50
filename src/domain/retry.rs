//! Retry policy and backoff (DESIGN.md §4). Pure: randomness and the
//! current time are arguments.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::error::FieldError;
use crate::domain::run::RunStatus;

pub const MAX_ATTEMPTS_LIMIT: i64 = 100;
pub const MAX_BACKOFF_S: i64 = 86_400;

/// How failed deliveries are retried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Retry)]
pub struct RetryInput {
    /// Attempts in all, the first one included (default 3, at most 100).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i64>,
    /// Upper end of the first retry's wait, in seconds (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub backoff_initial_s: Option<i64>,
    /// Cap on any wait, `Retry-After` included, in seconds (default 300).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub backoff_max_s: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_initial_s: u32,
    pub backoff_max_s: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_initial_s: 1,
            backoff_max_s: 300,
        }
    }
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
        Ok(policy)
    }
}

impl RetryPolicy {
    pub fn to_input(&self) -> RetryInput {
        RetryInput {
            max_attempts: Some(self.max_attempts.into()),
            backoff_initial_s: Some(self.backoff_initial_s.into()),
            backoff_max_s: Some(self.backoff_max_s.into()),
        }
    }

    /// The wait before retry number `n` (1 for the first retry):
    /// uniform in `[d/2, d]` with `d = min(max, initial·2^(n−1))`, where
    /// `unit` is a uniform random number in `[0, 1)`. A `Retry-After` the
    /// target sent replaces it, clamped to `backoff_max_s`.
    pub fn delay(&self, n: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        let max = Duration::from_secs(self.backoff_max_s.into());
        if let Some(wait) = retry_after {
            return wait.min(max);
        }
        let exp = n.saturating_sub(1).min(40);
        let d = Duration::from_secs(u64::from(self.backoff_initial_s))
            .saturating_mul(1u32 << exp.min(31))
            .min(max);
        let unit = unit.clamp(0.0, 1.0);
        d / 2 + (d / 2).mul_f64(unit)
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
}

impl Outcome {
    /// The run's status once the outcome is recorded.
    pub fn run_status(self) -> RunStatus {
        match self {
            Outcome::Succeeded => RunStatus::Succeeded,
            Outcome::Failed => RunStatus::Failed,
            Outcome::Retry { .. } => RunStatus::Pending,
        }
    }
}

/// What an attempt got back, as the retry rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// A response with this status (and `Retry-After`, if it sent one).
    Response {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No response: a network error or a timeout.
    NoResponse,
    /// Cut off by its instance's death (recovered from its expired lease).
    /// It counts as an attempt, but says nothing of the target: what is
    /// left of the run is sent again at once, without a backoff.
    Interrupted,
    /// The network policy refused every address: retrying cannot help.
    Refused,
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

/// What a run becomes after `attempt`: the one place the retry rules and
/// the backoff are applied, to attempts that got an answer and to attempts
/// recovered from an expired lease alike, counted from the run's last
/// redrive. `unit` is a uniform random number in `[0, 1)`.
pub fn after_attempt(
    attempt: impl Into<AttemptNumber>,
    policy: &RetryPolicy,
    result: AttemptResult,
    unit: f64,
) -> Outcome {
    let attempt = attempt.into().in_round();
    let (verdict, retry_after) = match result {
        AttemptResult::Refused => return Outcome::Failed,
        AttemptResult::Interrupted if attempt >= policy.max_attempts => return Outcome::Failed,
        AttemptResult::Interrupted => {
            return Outcome::Retry {
                delay: Duration::ZERO,
            };
        }
        AttemptResult::NoResponse => (verdict(None), None),
        AttemptResult::Response {
            status,
            retry_after,
        } => (verdict(Some(status)), retry_after),
    };
    match verdict {
        Verdict::Succeeded => Outcome::Succeeded,
        Verdict::Failed => Outcome::Failed,
        Verdict::Retry if attempt >= policy.max_attempts => Outcome::Failed,
        Verdict::Retry => Outcome::Retry {
            delay: policy.delay(attempt, unit, retry_after),
        },
    }
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

/// How an attempt ended, as the retry rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// Worth another attempt, if any are left.
    Retry,
    /// Retrying cannot help.
    Failed,
}

/// 2xx succeeds; 408, 425, 429, 5xx and errors with no response (network,
/// timeout) are retried; any other status fails the run at once.
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        None => Verdict::Retry,
        Some(200..=299) => Verdict::Succeeded,
        Some(408 | 425 | 429 | 500..=599) => Verdict::Retry,
        Some(_) => Verdict::Failed,
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

    #[test]
    fn after_an_attempt_the_run_succeeds_fails_or_waits() {
        let p = RetryPolicy {
            max_attempts: 3,
            backoff_initial_s: 1,
            backoff_max_s: 300,
        };
        let ok = AttemptResult::Response {
            status: 204,
            retry_after: None,
        };
        let busy = AttemptResult::Response {
            status: 503,
            retry_after: None,
        };
        let gone = AttemptResult::Response {
            status: 410,
            retry_after: None,
        };
        assert_eq!(after_attempt(1, &p, ok, 0.0), Outcome::Succeeded);
        // After a redrive the policy counts afresh: the fifth attempt of a
        // run sent again after its third is the second of its round.
        let redriven = AttemptNumber {
            number: 5,
            before_redrive: 3,
        };
        assert_eq!(redriven.in_round(), 2);
        assert_eq!(
            after_attempt(redriven, &p, busy, 0.0),
            after_attempt(2, &p, busy, 0.0)
        );
        assert_eq!(
            after_attempt(
                AttemptNumber {
                    number: 6,
                    before_redrive: 3
                },
                &p,
                busy,
                0.0
            ),
            Outcome::Failed
        );
        assert_eq!(after_attempt(1, &p, gone, 0.0), Outcome::Failed);
        assert_eq!(
            after_attempt(1, &p, busy, 0.0),
            Outcome::Retry {
                delay: Duration::from_millis(500)
            }
        );
        assert_eq!(
            after_attempt(2, &p, AttemptResult::NoResponse, 1.0),
            Outcome::Retry {
                delay: Duration::from_secs(2)
            }
        );
        assert_eq!(after_attempt(3, &p, busy, 0.0), Outcome::Failed);
        assert_eq!(
            after_attempt(1, &p, AttemptResult::Refused, 0.0),
            Outcome::Failed
        );
        // Interrupted: again at once while attempts are left.
        assert_eq!(
            after_attempt(2, &p, AttemptResult::Interrupted, 1.0),
            Outcome::Retry {
                delay: Duration::ZERO
            }
        );
        assert_eq!(
            after_attempt(3, &p, AttemptResult::Interrupted, 0.0),
            Outcome::Failed
        );
        let throttled = AttemptResult::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(42)),
        };
        assert_eq!(
            after_attempt(1, &p, throttled, 0.0),
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
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(200)), Verdict::Succeeded);
        assert_eq!(verdict(Some(204)), Verdict::Succeeded);
        for s in [408, 425, 429, 500, 502, 503, 599] {
            assert_eq!(verdict(Some(s)), Verdict::Retry, "{s}");
        }
        for s in [301, 302, 400, 401, 404, 410, 422] {
            assert_eq!(verdict(Some(s)), Verdict::Failed, "{s}");
        }
        assert_eq!(verdict(None), Verdict::Retry);
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
    }
}
