//! Which addresses a webhook may connect to (DESIGN.md §4). Pure: the
//! dispatcher applies it to every resolved address at connect time, and
//! job validation applies it to IP-literal URLs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// `any` (the default) allows private networks, since calling one's own
/// services is the common case; `public-only` refuses them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkPolicy {
    #[default]
    Any,
    PublicOnly,
}

impl FromStr for NetworkPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(Self::Any),
            "public-only" => Ok(Self::PublicOnly),
            other => Err(format!("expected any or public-only, got {other:?}")),
        }
    }
}

impl fmt::Display for NetworkPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Any => "any",
            Self::PublicOnly => "public-only",
        })
    }
}

/// Why an address is refused: the address and the rule, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub addr: IpAddr,
    pub rule: &'static str,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {} refused: {}", self.addr, self.rule)
    }
}

impl std::error::Error for Refusal {}

impl NetworkPolicy {
    pub fn check(self, addr: IpAddr) -> Result<(), Refusal> {
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) connects to the IPv4
        // one, so it is judged as that.
        let ip = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => addr,
            },
            v4 => v4,
        };
        let rule = always_refused(ip).or_else(|| match self {
            Self::Any => None,
            Self::PublicOnly => non_public(ip),
        });
        match rule {
            Some(rule) => Err(Refusal { addr, rule }),
            None => Ok(()),
        }
    }
}

const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn always_refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if METADATA_V4.contains(&v4) {
                Some("cloud metadata address")
            } else if v4.octets()[0] == 0 {
                Some("unspecified address (0.0.0.0/8)")
            } else if v4.is_link_local() {
                Some("link-local address (169.254.0.0/16)")
            } else if v4.is_multicast() {
                Some("multicast address (224.0.0.0/4)")
            } else if v4.is_broadcast() {
                Some("broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6 == METADATA_V6 {
                Some("cloud metadata address")
            } else if v6.is_unspecified() {
                Some("unspecified address (::)")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("link-local address (fe80::/10)")
            } else if v6.is_multicast() {
                Some("multicast address (ff00::/8)")
            } else {
                None
            }
        }
    }
}

fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback address (127.0.0.0/8), refused by --targets public-only")
            } else if v4.is_private() {
                Some(
                    "private address (10/8, 172.16/12, 192.168/16), refused by --targets public-only",
                )
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared CGNAT address (100.64.0.0/10), refused by --targets public-only")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("loopback address (::1), refused by --targets public-only")
            } else if (v6.segments()[0] & 0xfe00) == 0xfc00 {
                Some("unique-local address (fc00::/7), refused by --targets public-only")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: NetworkPolicy, addr: &str) -> Option<&'static str> {
        policy.check(addr.parse().unwrap()).err().map(|r| r.rule)
    }

    #[test]
    fn always_refuses_metadata_link_local_unspecified_multicast_broadcast() {
        for policy in [NetworkPolicy::Any, NetworkPolicy::PublicOnly] {
            for addr in [
                "169.254.169.254",
                "::ffff:169.254.169.254",
                "fd00:ec2::254",
                "100.100.100.200",
                "0.0.0.0",
                "0.1.2.3",
                "::",
                "169.254.1.1",
                "fe80::1",
                "febf::1",
                "224.0.0.1",
                "ff02::1",
                "255.255.255.255",
                "::ffff:0.0.0.0",
            ] {
                assert!(refused(policy, addr).is_some(), "{policy} {addr}");
            }
        }
    }

    #[test]
    fn any_allows_private_networks_and_loopback() {
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "8.8.8.8",
            "2606:4700::1111",
        ] {
            assert_eq!(refused(NetworkPolicy::Any, addr), None, "{addr}");
        }
    }

    #[test]
    fn public_only_refuses_loopback_private_cgnat_unique_local() {
        for addr in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "fd12::1",
            "fc00::1",
        ] {
            assert!(refused(NetworkPolicy::PublicOnly, addr).is_some(), "{addr}");
        }
        for addr in ["8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700::1111"] {
            assert_eq!(refused(NetworkPolicy::PublicOnly, addr), None, "{addr}");
        }
    }

    #[test]
    fn the_refusal_names_address_and_rule() {
        let r = NetworkPolicy::Any
            .check("169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            r.to_string(),
            "address 169.254.169.254 refused: cloud metadata address"
        );
    }
}
