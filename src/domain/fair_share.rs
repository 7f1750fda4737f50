//! A tenant's share of this instance's delivery slots (DESIGN.md §8,
//! "Delivery slots are shared fairly"): one tenant's slow targets once
//! held all 256 slots and another tenant's run went out 15.9 s late. No
//! tenant holds more than its share of `--max-in-flight`; a claim leaves
//! the runs of tenants near their share in the store, and is never larger
//! than the room the fullest other tenant has left, so no claim can take a
//! tenant past its share and the others' runs are claimed in between.

use std::collections::HashMap;

/// What one claim may take: at most `limit` runs, none of `busy` tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    pub limit: usize,
    pub busy: Vec<String>,
}

/// A tenant with less room than this is left out of claims until some of
/// its requests end, so that one tenant nearly at its share does not
/// shrink every claim to a run or two.
pub fn least_claim(share: usize) -> usize {
    (share / 8).max(1)
}

/// The next claim, given `free` slots, each tenant's `share`, and the runs
/// each tenant has in flight here (claimed and not yet sent).
pub fn plan(free: usize, share: usize, in_flight: &HashMap<String, usize>) -> ClaimPlan {
    let share = share.max(1);
    let least = least_claim(share);
    let mut busy = Vec::new();
    let mut limit = free.min(share);
    for (tenant, &held) in in_flight {
        let room = share.saturating_sub(held);
        if room < least {
            busy.push(tenant.clone());
        } else {
            limit = limit.min(room);
        }
    }
    busy.sort();
    ClaimPlan { limit, busy }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(pairs: &[(&str, usize)]) -> HashMap<String, usize> {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn with_nothing_in_flight_a_claim_takes_at_most_one_share() {
        assert_eq!(
            plan(256, 128, &held(&[])),
            ClaimPlan {
                limit: 128,
                busy: vec![]
            }
        );
        assert_eq!(
            plan(10, 128, &held(&[])).limit,
            10,
            "never past the free slots"
        );
    }

    #[test]
    fn a_claim_never_takes_a_tenant_past_its_share() {
        let plan = plan(200, 128, &held(&[("a", 100), ("b", 3)]));
        assert_eq!(plan.limit, 28, "a has room for 28");
        assert!(plan.busy.is_empty());
    }

    #[test]
    fn a_tenant_nearly_at_its_share_is_left_out_not_shrinking_the_claim() {
        // 128 / 8 = 16: a, with 10 left, waits for its requests to end.
        let plan = plan(200, 128, &held(&[("a", 118), ("b", 40), ("c", 128)]));
        assert_eq!(plan.busy, ["a", "c"]);
        assert_eq!(plan.limit, 88, "b's room");
    }

    #[test]
    fn a_share_of_one_takes_turns_run_by_run() {
        assert_eq!(least_claim(1), 1);
        let plan = plan(4, 1, &held(&[("a", 1), ("b", 0)]));
        assert_eq!(plan.busy, ["a"]);
        assert_eq!(plan.limit, 1);
    }

    #[test]
    fn a_share_of_zero_is_read_as_one() {
        assert_eq!(plan(4, 0, &held(&[])).limit, 1);
    }
}
