//! Pings per key (DESIGN.md §11.5): a ping needs no token, so each key
//! gets a token bucket (the flow keys' own, `domain::flow::Bucket`) in
//! this process — a loop gone wrong, or someone replaying a leaked URL, is
//! answered 429 before the store is touched. Not schedule state: a
//! restart forgets it, which is harmless.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::flow::{Bucket, Rate};

/// Pings a key may send at once, then one every 3 s (20 a minute).
pub const RATE: Rate = Rate {
    limit: 20,
    period_s: 60,
};
/// Keys remembered at most; past it, all are forgotten.
const KEYS_KEPT: usize = 100_000;

#[derive(Default)]
pub struct PingLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl PingLimits {
    /// Takes one ping of `key` at `now`: Ok, or how long until the next
    /// one is let through.
    pub fn take(&self, key: &str, now: DateTime<Utc>) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= KEYS_KEPT && !buckets.contains_key(key) {
            // Forgotten all at once, so a flood of made-up keys costs O(1)
            // a ping; a real key forgotten gets its burst again, once.
            buckets.clear();
        }
        let bucket = buckets
            .entry(key.to_string())
            .or_insert_with(|| Bucket::full(Some(RATE), now));
        match bucket.take(RATE, now) {
            Ok(after) => {
                *bucket = after;
                Ok(())
            }
            Err(next) => Err((next - now).to_std().unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant;

    #[test]
    fn a_key_gets_its_burst_then_one_ping_every_three_seconds() {
        let limits = PingLimits::default();
        let t0 = instant::parse("2026-12-04T10:00:00Z").unwrap();
        for _ in 0..20 {
            assert!(limits.take("a", t0).is_ok());
        }
        let wait = limits.take("a", t0).unwrap_err();
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
        // Another key is not held back.
        assert!(limits.take("b", t0).is_ok());
        let later = t0 + chrono::TimeDelta::seconds(3);
        assert!(limits.take("a", later).is_ok());
        assert!(limits.take("a", later).is_err());
    }
}
