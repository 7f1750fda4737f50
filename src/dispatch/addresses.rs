//! The address a target host is limited by (DESIGN.md §8: "the per-host
//! key is the resolved address"): `localhost`, `127.0.0.1` and any name a
//! tenant points at that address share one `--max-in-flight-per-host`.
//! Names are looked up when a claim brings them, and remembered a while;
//! a name that does not resolve in time is its own key (its request then
//! fails or is refused on its own).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a name's address is kept.
const REMEMBERED_FOR: Duration = Duration::from_secs(30);
/// The longest one claim waits for a name's lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Past this many names, forgotten ones are swept.
const SWEEP_PAST: usize = 10_000;

/// The key of a host with these addresses: the least of them (IPv4
/// first), IPv4-mapped IPv6 read as its IPv4.
pub fn key_of(addresses: impl IntoIterator<Item = IpAddr>) -> Option<String> {
    addresses
        .into_iter()
        .map(|ip| ip.to_canonical())
        .min()
        .map(|ip| ip.to_string())
}

/// A URL's host as an address, when it is a literal (`[::1]` included).
fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[derive(Default)]
pub struct Addresses {
    known: Mutex<HashMap<String, (String, Instant)>>,
}

impl Addresses {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks up the hosts not known (all at once).
    pub async fn learn<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) {
        let now = Instant::now();
        let mut unknown: Vec<&str> = {
            let known = self.known();
            hosts
                .into_iter()
                .filter(|h| {
                    known
                        .get(*h)
                        .is_none_or(|(_, at)| now - *at > REMEMBERED_FOR)
                })
                .collect()
        };
        unknown.sort_unstable();
        unknown.dedup();
        if unknown.is_empty() {
            return;
        }
        let lookups = unknown.iter().map(|host| async move {
            let key = match literal(host) {
                Some(ip) => key_of([ip]),
                None => tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((*host, 0)))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|found| key_of(found.map(|a| a.ip()))),
            };
            (host.to_string(), key.unwrap_or_else(|| host.to_string()))
        });
        let found = futures_util::future::join_all(lookups).await;
        let mut known = self.known();
        if known.len() > SWEEP_PAST {
            known.retain(|_, (_, at)| now - *at <= REMEMBERED_FOR);
        }
        for (host, key) in found {
            known.insert(host, (key, now));
        }
    }

    /// The key `host` is limited by: its address if learnt, else itself.
    pub fn key(&self, host: &str) -> String {
        self.known()
            .get(host)
            .map_or_else(|| host.to_string(), |(key, _)| key.clone())
    }

    /// The hosts, as runs name them, whose key is one of `keys`.
    pub fn spellings(&self, keys: &[String]) -> Vec<String> {
        if keys.is_empty() {
            return Vec::new();
        }
        let mut hosts: Vec<String> = self
            .known()
            .iter()
            .filter(|(_, (key, _))| keys.contains(key))
            .map(|(host, _)| host.clone())
            .chain(keys.iter().cloned())
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_keyed_by_its_least_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(key_of([ip("::1"), ip("127.0.0.1")]).unwrap(), "127.0.0.1");
        assert_eq!(key_of([ip("::ffff:10.0.0.1")]).unwrap(), "10.0.0.1");
        assert_eq!(key_of([ip("10.0.0.2"), ip("9.0.0.1")]).unwrap(), "9.0.0.1");
        assert_eq!(key_of([ip("::1")]).unwrap(), "::1");
        assert_eq!(key_of([]), None);
    }

    #[tokio::test]
    async fn names_and_literals_of_one_address_share_a_key() {
        let addresses = Addresses::default();
        addresses
            .learn(["localhost", "127.0.0.1", "[::1]", "127.0.0.2"])
            .await;
        // localhost is 127.0.0.1 (and ::1) on every machine the tests run on.
        assert_eq!(addresses.key("localhost"), "127.0.0.1");
        assert_eq!(addresses.key("127.0.0.1"), "127.0.0.1");
        assert_eq!(addresses.key("[::1]"), "::1");
        assert_eq!(addresses.key("127.0.0.2"), "127.0.0.2");
        assert_eq!(
            addresses.key("never-learnt.example"),
            "never-learnt.example"
        );
        assert_eq!(
            addresses.spellings(&["127.0.0.1".to_string()]),
            ["127.0.0.1", "localhost"]
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_its_own_key() {
        let addresses = Addresses::default();
        addresses.learn(["no-such-host.invalid"]).await;
        assert_eq!(
            addresses.key("no-such-host.invalid"),
            "no-such-host.invalid"
        );
    }
}
