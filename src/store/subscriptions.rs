//! A tenant's subscriptions, kept in process so that the hot write paths
//! match events to subscriptions in Rust (`Interest::wants`, DESIGN §9)
//! without reading them in every transaction. A change made here clears
//! the tenant at once; one made by another instance clears it when its
//! `NOTIFY` arrives; and an entry is read again after [`TTL`] whatever
//! happened, so a lost notification costs seconds, not forever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::event::Interest;

/// How long an entry is trusted without a notification.
pub const TTL: Duration = Duration::from_secs(5);

/// What a subscription listens to, and where its deliveries go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubscriptionInterest {
    pub id: String,
    pub interest: Interest,
    /// Its URL's host, the per-host limit's key for its deliveries.
    pub host: Option<String>,
}

pub(crate) type Interests = Arc<Vec<SubscriptionInterest>>;

#[derive(Debug, Default)]
pub struct SubscriptionCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tenants: HashMap<String, (Instant, Interests)>,
    /// Counts clears: a read that started before one is not kept.
    generation: u64,
}

impl SubscriptionCache {
    /// The tenant's subscriptions, if read within [`TTL`] of `now` and
    /// not cleared since.
    pub(crate) fn get(&self, tenant: &str, now: Instant) -> Option<Interests> {
        let inner = self.inner.lock().ok()?;
        let (read_at, interests) = inner.tenants.get(tenant)?;
        (now.saturating_duration_since(*read_at) < TTL).then(|| interests.clone())
    }

    /// What [`put`](Self::put) must be given with a read started now.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.lock().map_or(0, |inner| inner.generation)
    }

    /// Keeps what a read that started at `generation` and `read_at` found,
    /// unless the tenant was cleared meanwhile (it may be older than the
    /// change that cleared it).
    pub(crate) fn put(
        &self,
        tenant: &str,
        interests: Interests,
        generation: u64,
        read_at: Instant,
    ) {
        if let Ok(mut inner) = self.inner.lock()
            && inner.generation == generation
        {
            inner
                .tenants
                .insert(tenant.to_string(), (read_at, interests));
        }
    }

    /// Forgets one tenant's subscriptions, or every tenant's.
    pub fn clear(&self, tenant: Option<&str>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.generation = inner.generation.wrapping_add(1);
            match tenant {
                Some(tenant) => {
                    inner.tenants.remove(tenant);
                }
                None => inner.tenants.clear(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::EventType;

    fn interests(id: &str) -> Interests {
        Arc::new(vec![SubscriptionInterest {
            id: id.into(),
            interest: Interest {
                types: vec![EventType::RunFailed],
                job_id: None,
            },
            host: None,
        }])
    }

    #[test]
    fn an_entry_is_kept_for_the_ttl_then_read_again() {
        let cache = SubscriptionCache::default();
        let t0 = Instant::now();
        assert_eq!(cache.get("a", t0), None);
        cache.put("a", interests("s1"), cache.generation(), t0);
        assert_eq!(cache.get("a", t0 + TTL / 2), Some(interests("s1")));
        assert_eq!(cache.get("a", t0 + TTL), None);
        assert_eq!(cache.get("b", t0), None);
    }

    #[test]
    fn clearing_forgets_the_tenant_and_refuses_a_read_older_than_the_clear() {
        let cache = SubscriptionCache::default();
        let t0 = Instant::now();
        cache.put("a", interests("s1"), cache.generation(), t0);
        cache.put("b", interests("s2"), cache.generation(), t0);
        let before = cache.generation();
        cache.clear(Some("a"));
        assert_eq!(cache.get("a", t0), None);
        assert_eq!(cache.get("b", t0), Some(interests("s2")));
        // A read that began before the clear may have missed the change.
        cache.put("a", interests("old"), before, t0);
        assert_eq!(cache.get("a", t0), None);
        cache.put("a", interests("new"), cache.generation(), t0);
        assert_eq!(cache.get("a", t0), Some(interests("new")));
        cache.clear(None);
        assert_eq!(cache.get("b", t0), None);
    }
}
