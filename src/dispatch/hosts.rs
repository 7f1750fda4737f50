//! Requests in flight per target host (`--max-in-flight-per-host`), so
//! that one slow target cannot take every slot. A claimed run whose host
//! has its most requests in flight waits here, holding no slot, and starts
//! as soon as one of them ends; meanwhile the dispatcher claims none of
//! that host's runs (the claim leaves the busy hosts' runs in the store).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

struct Host<T> {
    in_flight: usize,
    waiting: VecDeque<(T, Instant)>,
}

pub struct Hosts<T> {
    limit: usize,
    hosts: Mutex<HashMap<String, Host<T>>>,
    /// A busy host got a free place.
    freed: Notify,
}

impl<T> Hosts<T> {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            hosts: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }
    }

    fn hosts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Host<T>>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A claimed `item` for `host`: it back when it may start now (it
    /// holds one of the host's places), or none when it waits its turn.
    pub fn admit(&self, host: &str, item: T) -> Option<T> {
        let mut hosts = self.hosts();
        let entry = hosts.entry(host.to_string()).or_insert_with(|| Host {
            in_flight: 0,
            waiting: VecDeque::new(),
        });
        if entry.in_flight < self.limit {
            entry.in_flight += 1;
            Some(item)
        } else {
            entry.waiting.push_back((item, Instant::now()));
            None
        }
    }

    /// A request to `host` ended: the next item waiting for it, which
    /// takes over its place, with how long it waited; or none, and the
    /// place is free.
    pub fn finished(&self, host: &str) -> Option<(T, Duration)> {
        let mut hosts = self.hosts();
        let entry = hosts.get_mut(host)?;
        if let Some((item, since)) = entry.waiting.pop_front() {
            return Some((item, since.elapsed()));
        }
        let was_busy = entry.in_flight >= self.limit;
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if entry.in_flight == 0 {
            hosts.remove(host);
        }
        if was_busy {
            self.freed.notify_one();
        }
        None
    }

    /// The hosts with every place taken: none of their runs is claimed.
    pub fn busy(&self) -> Vec<String> {
        self.hosts()
            .iter()
            .filter(|(_, h)| h.in_flight >= self.limit)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Waits until a busy host has a free place.
    pub async fn freed(&self) {
        self.freed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_runs_at_most_its_limit_and_hands_each_place_on() {
        let hosts = Hosts::new(2);
        assert_eq!(hosts.admit("a:80", 1), Some(1));
        assert_eq!(hosts.admit("a:80", 2), Some(2));
        assert_eq!(
            hosts.admit("b:80", 10),
            Some(10),
            "another host has its own places"
        );
        assert_eq!(hosts.admit("a:80", 3), None, "waits");
        assert_eq!(hosts.admit("a:80", 4), None);
        assert_eq!(hosts.busy(), ["a:80"]);
        // Each end hands the place to the next waiting, in order.
        assert_eq!(hosts.finished("a:80").map(|(i, _)| i), Some(3));
        assert_eq!(hosts.finished("a:80").map(|(i, _)| i), Some(4));
        assert_eq!(hosts.busy(), ["a:80"], "still two in flight");
        assert_eq!(hosts.finished("a:80"), None);
        assert!(hosts.busy().is_empty());
        assert_eq!(hosts.finished("a:80"), None);
        assert_eq!(hosts.finished("b:80"), None);
        assert_eq!(hosts.admit("a:80", 5), Some(5), "places given back");
    }

    #[tokio::test]
    async fn a_freed_place_of_a_busy_host_is_signalled() {
        let hosts = Hosts::new(1);
        assert_eq!(hosts.admit("a:80", 1), Some(1));
        assert_eq!(hosts.finished("a:80"), None);
        // Signalled once, even though nobody waited at the time.
        tokio::time::timeout(Duration::from_secs(5), hosts.freed())
            .await
            .expect("signalled");
    }
}
