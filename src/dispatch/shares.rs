//! Runs each tenant has in flight here, against its share of the slots
//! (`--max-in-flight-per-tenant`; the rule is `domain::fair_share`). A run
//! counts from its claim until its request ends or it is given up,
//! waiting for its host included.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::domain::fair_share::{ClaimPlan, least_claim, plan};

pub struct Shares {
    share: usize,
    /// Every slot of this instance (`--max-in-flight`).
    slots: usize,
    held: Mutex<HashMap<String, usize>>,
    /// A tenant left out of claims has room again.
    freed: Notify,
}

impl Shares {
    pub fn new(share: usize, slots: usize) -> Self {
        Self {
            share: share.max(1),
            slots,
            held: Mutex::default(),
            freed: Notify::new(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the next claim may take, with `free` slots.
    pub fn plan(&self, free: usize) -> ClaimPlan {
        plan(free, self.share, self.slots, &self.held())
    }

    /// A run of `tenant` was claimed.
    pub fn take(&self, tenant: &str) {
        *self.held().entry(tenant.to_string()).or_default() += 1;
    }

    /// A run of `tenant` is no longer in flight.
    pub fn give_back(&self, tenant: &str) {
        let mut held = self.held();
        let Some(n) = held.get_mut(tenant) else {
            return;
        };
        *n = n.saturating_sub(1);
        let left = *n;
        if left == 0 {
            held.remove(tenant);
        }
        // Room again: this tenant's, at its cap now; or, the last other
        // tenant gone, the one left may use more than its share.
        let least = least_claim(self.share);
        let (cap, least) = if held.len() > 1 {
            (self.share, least)
        } else {
            (self.slots.saturating_sub(least).max(self.share), 1)
        };
        if cap.saturating_sub(left) == least || (left == 0 && held.len() == 1) {
            self.freed.notify_one();
        }
    }

    /// Waits until a tenant left out of claims has room again.
    pub async fn freed(&self) {
        self.freed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_share_is_left_out_until_a_run_is_given_back() {
        let shares = Shares::new(2, 2);
        shares.take("a");
        assert_eq!(shares.plan(10).limit, 1, "a has room for one more");
        shares.take("a");
        let plan = shares.plan(10);
        assert_eq!(plan.busy, ["a"]);
        assert_eq!(plan.limit, 2, "another tenant may take its share");
        shares.give_back("a");
        shares.give_back("a");
        shares.give_back("a");
        assert_eq!(shares.plan(10).busy, Vec::<String>::new());
        assert!(shares.held().is_empty(), "nothing kept for idle tenants");
    }

    #[tokio::test]
    async fn a_tenant_with_room_again_is_signalled() {
        let shares = Shares::new(1, 1);
        shares.take("a");
        shares.give_back("a");
        tokio::time::timeout(std::time::Duration::from_secs(5), shares.freed())
            .await
            .expect("signalled");
    }
}
