//! A tenant's share of this instance's delivery slots (DESIGN.md §8,
//! "Delivery slots are shared fairly"): one tenant's slow targets once
//! held all 256 slots and another tenant's run went out 15.9 s late. While
//! several tenants have requests in flight here, none holds more than its
//! share of `--max-in-flight`; a tenant alone may use every slot but a
//! reserve (the dispatcher's slots are `--max-in-flight` plus the
//! reserve), which a newcomer's runs are claimed into at once. A claim
//! leaves the runs of tenants near their cap in the store, and is never
//! larger than the room the fullest other tenant has left, so no claim
//! takes a tenant past its cap and the others' runs are claimed in between.

use std::collections::HashMap;

/// What one claim may take: at most `limit` runs, none of `busy` tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    pub limit: usize,
    pub busy: Vec<String>,
}

/// A tenant (beside others) with less room than this is left out of
/// claims until some of its requests end, so that one tenant nearly at
/// its cap does not shrink every claim to a run or two. It is also the
/// reserve a tenant alone leaves free.
pub fn least_claim(share: usize) -> usize {
    (share / 8).max(1)
}

/// The next claim, given `free` of `slots` slots, each tenant's `share`,
/// and the runs each tenant has in flight here (claimed and not yet sent).
pub fn plan(
    free: usize,
    share: usize,
    slots: usize,
    in_flight: &HashMap<String, usize>,
) -> ClaimPlan {
    let share = share.max(1);
    let least = least_claim(share);
    // Alone, a tenant may use every slot but the reserve; beside others,
    // its share.
    let alone = slots.saturating_sub(least).max(share);
    // A tenant alone is claimed for until it has no room at all, as a
    // semaphore would: nobody's claims shrink for it.
    let (cap, least) = if in_flight.len() > 1 {
        (share, least)
    } else {
        (alone, 1)
    };
    let mut busy = Vec::new();
    let mut limit = free.min(alone);
    for (tenant, &held) in in_flight {
        let room = cap.saturating_sub(held);
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
    fn with_nothing_in_flight_a_claim_takes_all_but_the_reserve() {
        // 256 slots, a share of 128: the reserve is 128 / 8 = 16.
        assert_eq!(
            plan(256, 128, 256, &held(&[])),
            ClaimPlan {
                limit: 240,
                busy: vec![]
            }
        );
        assert_eq!(
            plan(10, 128, 256, &held(&[])).limit,
            10,
            "never past the free slots"
        );
    }

    #[test]
    fn a_tenant_alone_leaves_the_reserve_for_a_newcomer() {
        let plan = plan(16, 128, 256, &held(&[("a", 240)]));
        assert_eq!(plan.busy, ["a"]);
        assert_eq!(plan.limit, 16, "the reserve, for another tenant's runs");
        let room = super::plan(56, 128, 256, &held(&[("a", 200)]));
        assert_eq!((room.limit, room.busy.len()), (40, 0), "a has room for 40");
        let last = super::plan(17, 128, 256, &held(&[("a", 239)]));
        assert_eq!(
            (last.limit, last.busy.len()),
            (1, 0),
            "alone, to its last place"
        );
    }

    #[test]
    fn beside_others_no_claim_takes_a_tenant_past_its_share() {
        let plan = plan(200, 128, 256, &held(&[("a", 100), ("b", 3)]));
        assert_eq!(plan.limit, 28, "a has room for 28");
        assert!(plan.busy.is_empty());
    }

    #[test]
    fn a_tenant_nearly_at_its_share_is_left_out_not_shrinking_the_claim() {
        // 128 / 8 = 16: a, with 10 left, waits for its requests to end;
        // a tenant alone past its share is left out once others come.
        let plan = plan(200, 128, 256, &held(&[("a", 118), ("b", 40), ("c", 200)]));
        assert_eq!(plan.busy, ["a", "c"]);
        assert_eq!(plan.limit, 88, "b's room");
    }

    #[test]
    fn a_share_of_one_takes_turns_run_by_run() {
        assert_eq!(least_claim(1), 1);
        let plan = plan(4, 1, 4, &held(&[("a", 1), ("b", 0)]));
        assert_eq!(plan.busy, ["a"]);
        assert_eq!(plan.limit, 1);
    }

    #[test]
    fn a_share_of_zero_is_read_as_one() {
        assert_eq!(plan(4, 0, 1, &held(&[])).limit, 1);
    }
}
