//! What one tenant may hold and make (issue 22, DESIGN.md §8): without a
//! bound, one tenant's 1,000 subscriptions turned five run-nows into
//! 11,000 webhooks, and ten requests made 100,140 run rows. A new job or
//! subscription past its tenant's quota is refused (429); what is already
//! stored is never touched. Runs are counted per tenant and minute: past
//! the quota, a run-now is refused until the minute ends, and the
//! scheduler leaves the tenant's due jobs due until then. A catch-up
//! makes at most the tenant's `catchup_max` runs, whatever its job's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::FieldError;
use super::lifecycle::Refusal;
use super::misfire::MAX_CATCHUP_MAX;

/// A tenant's quotas: the flags' defaults, or what root set for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Quotas {
    /// Jobs it may hold (`--max-jobs-per-tenant`).
    pub jobs: u32,
    /// Event subscriptions it may hold, and so the webhooks one event
    /// makes (`--max-subscriptions-per-tenant`).
    pub subscriptions: u32,
    /// Runs its jobs may make in one minute, by schedule or run-now
    /// (`--max-runs-per-minute-per-tenant`).
    pub runs_per_minute: u32,
    /// The most runs one catch-up of its jobs makes (1,000 at most): a
    /// job's own `catchup_max` above it is capped to it when scheduling.
    pub catchup_max: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            jobs: 100_000,
            subscriptions: 100,
            runs_per_minute: 60_000,
            catchup_max: MAX_CATCHUP_MAX,
        }
    }
}

/// What root sets for one tenant: each quota, or null for the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverrides {
    #[schema(minimum = 1, maximum = 1000000000, example = 1000)]
    pub jobs: Option<u32>,
    #[schema(minimum = 1, maximum = 1000000000, example = 10)]
    pub subscriptions: Option<u32>,
    #[schema(minimum = 1, maximum = 1000000000, example = 600)]
    pub runs_per_minute: Option<u32>,
    #[schema(minimum = 1, maximum = 1000, example = 10)]
    pub catchup_max: Option<u32>,
}

/// The most any quota may be set to.
pub const MOST_QUOTA: u32 = 1_000_000_000;

impl QuotaOverrides {
    /// Refuses a quota of 0 (pause the tenant's jobs instead), and a
    /// `catchup_max` past what any job may have.
    pub fn check(&self) -> Result<(), FieldError> {
        for (field, value) in [
            ("jobs", self.jobs),
            ("subscriptions", self.subscriptions),
            ("runs_per_minute", self.runs_per_minute),
            ("catchup_max", self.catchup_max),
        ] {
            if value == Some(0) {
                return Err(FieldError::new(
                    field,
                    "must be at least 1 (or null for the default)",
                ));
            }
            if let Some(n) = value.filter(|n| *n > MOST_QUOTA) {
                return Err(FieldError::new(
                    field,
                    format!("must be at most {MOST_QUOTA}, got {n}"),
                ));
            }
        }
        match self.catchup_max {
            Some(n) if n > MAX_CATCHUP_MAX => Err(FieldError::new(
                "catchup_max",
                format!("must be at most {MAX_CATCHUP_MAX}, got {n}"),
            )),
            _ => Ok(()),
        }
    }
}

impl Quotas {
    /// These defaults with `overrides` applied.
    pub fn with(self, overrides: &QuotaOverrides) -> Self {
        Self {
            jobs: overrides.jobs.unwrap_or(self.jobs),
            subscriptions: overrides.subscriptions.unwrap_or(self.subscriptions),
            runs_per_minute: overrides.runs_per_minute.unwrap_or(self.runs_per_minute),
            catchup_max: overrides.catchup_max.unwrap_or(self.catchup_max),
        }
    }
}

/// Whether a tenant holding `held` of `what` may make one more.
pub fn admit(what: &str, held: u64, most: u32, flag: &str) -> Result<(), Refusal> {
    if held < u64::from(most) {
        Ok(())
    } else {
        Err(Refusal::QuotaReached(
            format!(
                "this tenant has {held} {what}, its quota ({most}: {flag}, or set per tenant by root): \
                 delete some first"
            ),
            RETRY_AFTER_S,
        ))
    }
}

/// The rows a tenant's job count is kept in: concurrent creations in one
/// tenant each add to one of them, so they rarely wait on one another's
/// row lock; the count is their sum.
pub const JOB_COUNT_SLOTS: u32 = 16;

/// The row of its tenant's job count a job's creation and deletion change:
/// the same for one id on every instance and release (FNV-1a).
pub fn job_count_slot(job_id: &str) -> i32 {
    let hash = job_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % u64::from(JOB_COUNT_SLOTS)) as i32
}

/// The `Retry-After` of a quota that a deletion frees.
pub const RETRY_AFTER_S: u32 = 5;

/// The minute `now` falls in, as the runs' count is kept.
pub fn minute_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(60)
}

/// Whether a tenant that made `made` runs this minute may make `more`.
pub fn admit_runs(made: u64, more: u64, most: u32, now: DateTime<Utc>) -> Result<(), Refusal> {
    if made + more <= u64::from(most) {
        return Ok(());
    }
    let left_s = 60 - now.timestamp().rem_euclid(60) as u32;
    Err(Refusal::QuotaReached(
        format!(
            "this tenant made {made} runs this minute, its quota ({most}: \
             --max-runs-per-minute-per-tenant, or set per tenant by root): try again in {left_s} s"
        ),
        left_s,
    ))
}

/// Whether the scheduler may apply a decision making `more` runs for a
/// tenant that made `made` this minute: within the quota, or the first of
/// the minute (a single job's catch-up larger than the quota is made at
/// once, not never).
pub fn schedule_runs(made: u64, more: u64, most: u32) -> bool {
    made == 0 || made + more <= u64::from(most)
}

/// Whether a tenant that made `made` runs this minute is held back.
pub fn held_back(made: u64, most: u32) -> bool {
    made >= u64::from(most)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_job_keeps_its_count_slot_and_many_jobs_spread_over_all() {
        assert_eq!(
            job_count_slot("nightly-report"),
            job_count_slot("nightly-report")
        );
        // Fixed, so a release that changed the hash would show here (rows
        // may go below zero, so it would still count right).
        assert_eq!(job_count_slot(""), (0xcbf2_9ce4_8422_2325_u64 % 16) as i32);
        let mut used = [0_u32; JOB_COUNT_SLOTS as usize];
        for n in 0..1_600 {
            used[job_count_slot(&format!("job-{n}")) as usize] += 1;
        }
        assert!(used.iter().all(|&n| (50..=150).contains(&n)), "{used:?}");
    }

    #[test]
    fn one_more_until_the_quota_then_refused_naming_it() {
        assert!(admit("jobs", 0, 2, "--max-jobs-per-tenant").is_ok());
        assert!(admit("jobs", 1, 2, "--max-jobs-per-tenant").is_ok());
        let refused = admit("jobs", 2, 2, "--max-jobs-per-tenant").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "this tenant has 2 jobs, its quota (2: --max-jobs-per-tenant, or set per tenant by root): \
             delete some first"
        );
        assert!(admit("subscriptions", 7, 2, "--max-subscriptions-per-tenant").is_err());
    }

    #[test]
    fn overrides_replace_the_defaults_they_name() {
        let set = QuotaOverrides {
            runs_per_minute: Some(10),
            ..Default::default()
        };
        let quotas = Quotas::default().with(&set);
        assert_eq!(quotas.runs_per_minute, 10);
        assert_eq!(quotas.jobs, 100_000);
    }

    #[test]
    fn an_override_of_zero_is_refused_naming_it() {
        let zero = QuotaOverrides {
            jobs: Some(0),
            ..Default::default()
        };
        assert_eq!(zero.check().unwrap_err().field, "jobs");
        let past = QuotaOverrides {
            catchup_max: Some(1_001),
            ..Default::default()
        };
        assert_eq!(
            past.check().unwrap_err().to_string(),
            "catchup_max: must be at most 1000, got 1001"
        );
        assert!(QuotaOverrides::default().check().is_ok());
    }

    #[test]
    fn runs_past_the_minute_s_quota_wait_for_the_next_minute() {
        let now = at("2026-12-03T10:00:45Z");
        assert!(admit_runs(9, 1, 10, now).is_ok());
        let refused = admit_runs(10, 1, 10, now).unwrap_err();
        assert_eq!(
            refused,
            Refusal::QuotaReached(
                "this tenant made 10 runs this minute, its quota (10: \
                 --max-runs-per-minute-per-tenant, or set per tenant by root): try again in 15 s"
                    .into(),
                15
            )
        );
        assert_eq!(minute_of(now), minute_of(at("2026-12-03T10:00:00Z")));
        assert_ne!(minute_of(now), minute_of(at("2026-12-03T10:01:00Z")));
    }

    #[test]
    fn the_scheduler_makes_the_first_decision_of_a_minute_whatever_its_size() {
        assert!(schedule_runs(0, 5_000, 10));
        assert!(schedule_runs(5, 5, 10));
        assert!(!schedule_runs(5, 6, 10));
        assert!(held_back(10, 10));
        assert!(!held_back(9, 10));
    }
}
