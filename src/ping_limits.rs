//! Pings per key (DESIGN.md §11.5): a ping needs no token, so each key
//! gets a small token bucket in this process — a loop gone wrong, or
//! someone replaying a leaked URL, is answered 429 before the store is
//! touched. Not schedule state: a restart forgets it, which is harmless.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pings a key may send at once.
pub const BURST: f64 = 20.0;
/// Pings a key regains per second (one every 3 s, 20 a minute).
pub const PER_SECOND: f64 = 1.0 / 3.0;
/// Keys remembered at most; past it, all are forgotten.
const KEYS_KEPT: usize = 100_000;

#[derive(Default)]
pub struct PingLimits {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl PingLimits {
    /// Takes one ping of `key` at `now`: Ok, or how long until the next
    /// one is let through.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= KEYS_KEPT && !buckets.contains_key(key) {
            // Forgotten all at once, so a flood of made-up keys costs O(1)
            // a ping; a real key forgotten gets its burst again, once.
            buckets.clear();
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((BURST, now));
        let refilled =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * PER_SECOND).min(BURST);
        if refilled < 1.0 {
            *tokens = refilled;
            *at = now;
            return Err(Duration::from_secs_f64((1.0 - refilled) / PER_SECOND));
        }
        *tokens = refilled - 1.0;
        *at = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_one_ping_every_three_seconds() {
        let limits = PingLimits::default();
        let t0 = Instant::now();
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
        assert!(limits.take("a", t0 + Duration::from_secs(3)).is_ok());
        assert!(limits.take("a", t0 + Duration::from_secs(3)).is_err());
    }
}
