//! What one tenant may hold (issue 22): without a bound, one tenant's
//! 1,000 subscriptions turned five run-nows into 11,000 webhooks. A new
//! job or subscription past its tenant's quota is refused (429); what is
//! already stored is never touched.

use super::lifecycle::Refusal;

/// A tenant's most jobs and subscriptions (`--max-jobs-per-tenant`,
/// `--max-subscriptions-per-tenant`). The subscriptions' quota also bounds
/// an event's fan-out: one delivery per subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub jobs: u32,
    pub subscriptions: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            jobs: 100_000,
            subscriptions: 100,
        }
    }
}

/// Whether a tenant holding `held` of `what` may make one more.
pub fn admit(what: &str, held: u64, most: u32, flag: &str) -> Result<(), Refusal> {
    if held < u64::from(most) {
        Ok(())
    } else {
        Err(Refusal::QuotaReached(format!(
            "this tenant has {held} {what}, its most ({flag} {most}): delete some first"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_more_until_the_quota_then_refused_naming_it() {
        assert!(admit("jobs", 0, 2, "--max-jobs-per-tenant").is_ok());
        assert!(admit("jobs", 1, 2, "--max-jobs-per-tenant").is_ok());
        let refused = admit("jobs", 2, 2, "--max-jobs-per-tenant").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "this tenant has 2 jobs, its most (--max-jobs-per-tenant 2): delete some first"
        );
        assert!(admit("subscriptions", 7, 2, "--max-subscriptions-per-tenant").is_err());
    }
}
