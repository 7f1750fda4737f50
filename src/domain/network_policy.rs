//! Which addresses a webhook may connect to (DESIGN.md §4, §8). Pure: the
//! dispatcher applies it to every resolved address at connect time, and
//! job validation applies it to IP-literal URLs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// `--targets`: `any` allows private networks, since calling one's own
/// services is the common case; `public-only` refuses them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetMode {
    #[default]
    Any,
    PublicOnly,
}

impl FromStr for TargetMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(Self::Any),
            "public-only" => Ok(Self::PublicOnly),
            other => Err(format!("expected any or public-only, got {other:?}")),
        }
    }
}

impl fmt::Display for TargetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Any => "any",
            Self::PublicOnly => "public-only",
        })
    }
}

/// An exemption from `public-only` (`--allow-targets`): a network, or a
/// host name whose addresses are allowed whatever they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exemption {
    Network(IpNet),
    Host(String),
}

impl FromStr for Exemption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self::Network(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Network(IpNet::from(ip)));
        }
        let host = s.trim_end_matches('.').to_ascii_lowercase();
        let valid = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            Ok(Self::Host(host))
        } else {
            Err(format!(
                "expected a CIDR (10.0.0.0/8), an address or a host name, got {s:?}"
            ))
        }
    }
}

/// The policy: a mode, and what is exempt from `public-only`. The
/// always-refused addresses (metadata services, link-local, …) admit no
/// exemption.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    mode: TargetMode,
    exemptions: Arc<[Exemption]>,
    /// Where `any` is only the default of an open loopback service: set
    /// once tokens are required, and every clone is public-only from then
    /// on (issue 22: behind a reverse proxy, a tenant's token reached a
    /// loopback admin service).
    until_tokens: Option<Arc<AtomicBool>>,
}

impl NetworkPolicy {
    pub fn new(mode: TargetMode, exemptions: Vec<Exemption>) -> Self {
        Self {
            mode,
            exemptions: exemptions.into(),
            until_tokens: None,
        }
    }

    /// `any` while the API is open, `public-only` once
    /// [`tokens_required`](Self::tokens_required) is called.
    pub fn any_until_tokens(exemptions: Vec<Exemption>) -> Self {
        Self {
            until_tokens: Some(Arc::default()),
            ..Self::new(TargetMode::Any, exemptions)
        }
    }

    /// The mode now.
    pub fn mode(&self) -> TargetMode {
        match &self.until_tokens {
            Some(required) if required.load(Ordering::Relaxed) => TargetMode::PublicOnly,
            _ => self.mode,
        }
    }

    /// Whether the mode turns public-only once tokens are required (and
    /// has not yet).
    pub fn waits_for_tokens(&self) -> bool {
        self.mode() == TargetMode::Any && self.until_tokens.is_some()
    }

    /// Tokens are required now: public-only, where `any` was the open
    /// service's default. Answers whether the mode changed.
    pub fn tokens_required(&self) -> bool {
        self.until_tokens
            .as_ref()
            .is_some_and(|required| !required.swap(true, Ordering::Relaxed))
    }

    pub fn public_only() -> Self {
        Self::new(TargetMode::PublicOnly, Vec::new())
    }

    /// Whether `host` (a URL's host name) is exempt from public-only.
    pub fn exempts_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.exemptions
            .iter()
            .any(|e| matches!(e, Exemption::Host(h) if *h == host))
    }

    fn exempts_addr(&self, ip: IpAddr) -> bool {
        self.exemptions
            .iter()
            .any(|e| matches!(e, Exemption::Network(net) if net.contains(&ip)))
    }

    /// Checks an address a request would connect to; `host` is the URL's
    /// host name when it has one (a name may be exempt).
    pub fn check_for(&self, addr: IpAddr, host: Option<&str>) -> Result<(), Blocked> {
        for ip in judged_as(addr) {
            if let Some(rule) = always_refused(ip) {
                return Err(Blocked { addr, rule });
            }
        }
        if self.mode() == TargetMode::PublicOnly
            && !self.exempts_addr(addr)
            && !host.is_some_and(|h| self.exempts_host(h))
        {
            for ip in judged_as(addr) {
                if let Some(rule) = non_public(ip) {
                    return Err(Blocked { addr, rule });
                }
            }
        }
        Ok(())
    }

    /// Checks an IP-literal target.
    pub fn check(&self, addr: IpAddr) -> Result<(), Blocked> {
        self.check_for(addr, None)
    }
}

impl fmt::Display for NetworkPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mode())?;
        if self.waits_for_tokens() {
            f.write_str(" until tokens are required")?;
        }
        if !self.exemptions.is_empty() {
            let names: Vec<String> = self
                .exemptions
                .iter()
                .map(|e| match e {
                    Exemption::Network(net) => net.to_string(),
                    Exemption::Host(host) => host.clone(),
                })
                .collect();
            write!(f, " (except {})", names.join(", "))?;
        }
        Ok(())
    }
}

/// Why an address is refused: the address and the rule, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub addr: IpAddr,
    pub rule: &'static str,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {} refused: {}", self.addr, self.rule)
    }
}

impl std::error::Error for Blocked {}

/// The addresses an address is judged as: itself, and the IPv4 address
/// an IPv6 form carries (IPv4-mapped and -compatible, NAT64, 6to4,
/// Teredo), since a connection to it may reach that IPv4 address.
fn judged_as(addr: IpAddr) -> Vec<IpAddr> {
    let IpAddr::V6(v6) = addr else {
        return vec![addr];
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return vec![IpAddr::V4(v4)];
    }
    let mut judged = vec![addr];
    let s = v6.segments();
    let low32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    // ::a.b.c.d (IPv4-compatible), other than :: and ::1.
    if s[..6] == [0; 6] && u32::from(low32) > 1 {
        judged.push(IpAddr::V4(low32));
    }
    // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765).
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        judged.push(IpAddr::V4(low32));
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48).
    if s[0] == 0x64 && s[1] == 0xff9b {
        judged.push(IpAddr::V4(low32));
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if s[0] == 0x2002 {
        judged.push(IpAddr::V4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )));
    }
    // Teredo: 2001:0::/32; the client's address, inverted, is the last 32 bits.
    if s[0] == 0x2001 && s[1] == 0 {
        judged.push(IpAddr::V4(Ipv4Addr::from(!u32::from(low32))));
    }
    judged
}

const METADATA_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
    // Azure's wire server.
    Ipv4Addr::new(168, 63, 129, 16),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn v4(net: &str) -> Ipv4Net {
    net.parse().expect("a valid network")
}

fn v6(net: &str) -> Ipv6Net {
    net.parse().expect("a valid network")
}

fn always_refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            if METADATA_V4.contains(&a) {
                Some("cloud metadata address")
            } else if v4("0.0.0.0/8").contains(&a) {
                Some("unspecified address (0.0.0.0/8)")
            } else if v4("169.254.0.0/16").contains(&a) {
                Some("link-local address (169.254.0.0/16)")
            } else if v4("224.0.0.0/4").contains(&a) {
                Some("multicast address (224.0.0.0/4)")
            } else if a.is_broadcast() {
                Some("broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if a == METADATA_V6 {
                Some("cloud metadata address")
            } else if a.is_unspecified() {
                Some("unspecified address (::)")
            } else if v6("fe80::/10").contains(&a) {
                Some("link-local address (fe80::/10)")
            } else if v6("ff00::/8").contains(&a) {
                Some("multicast address (ff00::/8)")
            } else {
                None
            }
        }
    }
}

/// The networks `public-only` refuses besides the always-refused ones.
const NON_PUBLIC_V4: [(&str, &str); 12] = [
    (
        "127.0.0.0/8",
        "loopback address (127.0.0.0/8), refused by --targets public-only",
    ),
    (
        "10.0.0.0/8",
        "private address (10.0.0.0/8), refused by --targets public-only",
    ),
    (
        "172.16.0.0/12",
        "private address (172.16.0.0/12), refused by --targets public-only",
    ),
    (
        "192.168.0.0/16",
        "private address (192.168.0.0/16), refused by --targets public-only",
    ),
    (
        "100.64.0.0/10",
        "shared CGNAT address (100.64.0.0/10), refused by --targets public-only",
    ),
    (
        "192.0.0.0/24",
        "IETF protocol assignment (192.0.0.0/24), refused by --targets public-only",
    ),
    (
        "198.18.0.0/15",
        "benchmarking address (198.18.0.0/15), refused by --targets public-only",
    ),
    (
        "240.0.0.0/4",
        "reserved address (240.0.0.0/4), refused by --targets public-only",
    ),
    (
        "192.0.2.0/24",
        "documentation address (192.0.2.0/24), refused by --targets public-only",
    ),
    (
        "198.51.100.0/24",
        "documentation address (198.51.100.0/24), refused by --targets public-only",
    ),
    (
        "203.0.113.0/24",
        "documentation address (203.0.113.0/24), refused by --targets public-only",
    ),
    (
        "192.88.99.0/24",
        "6to4 relay anycast address (192.88.99.0/24), refused by --targets public-only",
    ),
];
const NON_PUBLIC_V6: [(&str, &str); 7] = [
    (
        "::1/128",
        "loopback address (::1), refused by --targets public-only",
    ),
    (
        "fc00::/7",
        "unique-local address (fc00::/7), refused by --targets public-only",
    ),
    (
        "fec0::/10",
        "site-local address (fec0::/10), refused by --targets public-only",
    ),
    (
        "2001:db8::/32",
        "documentation address (2001:db8::/32), refused by --targets public-only",
    ),
    (
        "64:ff9b:1::/48",
        "local-use NAT64 address (64:ff9b:1::/48), refused by --targets public-only",
    ),
    (
        "100::/64",
        "discard-only address (100::/64), refused by --targets public-only",
    ),
    (
        "2001:2::/48",
        "benchmarking address (2001:2::/48), refused by --targets public-only",
    ),
];

fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => NON_PUBLIC_V4
            .iter()
            .find(|(net, _)| v4(net).contains(&a))
            .map(|(_, rule)| *rule),
        IpAddr::V6(a) => NON_PUBLIC_V6
            .iter()
            .find(|(net, _)| v6(net).contains(&a))
            .map(|(_, rule)| *rule),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any() -> NetworkPolicy {
        NetworkPolicy::default()
    }

    #[test]
    fn any_until_tokens_turns_public_only_everywhere_once_they_are_required() {
        let policy = NetworkPolicy::any_until_tokens(Vec::new());
        let clone = policy.clone();
        assert_eq!(refused(&clone, "127.0.0.1"), None);
        assert_eq!(policy.to_string(), "any until tokens are required");
        assert!(policy.tokens_required(), "changed");
        assert!(!policy.tokens_required(), "once");
        assert!(refused(&clone, "127.0.0.1").is_some());
        assert!(!clone.waits_for_tokens());
        assert_eq!(clone.to_string(), "public-only");
        // An explicit `any` stays any.
        let explicit = NetworkPolicy::new(TargetMode::Any, Vec::new());
        assert!(!explicit.tokens_required());
        assert_eq!(refused(&explicit, "127.0.0.1"), None);
    }

    fn refused(policy: &NetworkPolicy, addr: &str) -> Option<&'static str> {
        policy.check(addr.parse().unwrap()).err().map(|r| r.rule)
    }

    #[test]
    fn always_refuses_metadata_link_local_unspecified_multicast_broadcast() {
        for policy in [any(), NetworkPolicy::public_only()] {
            for addr in [
                "169.254.169.254",
                "::ffff:169.254.169.254",
                "::ffff:0:169.254.169.254",
                "::ffff:0:a9fe:a9fe",
                "fd00:ec2::254",
                "100.100.100.200",
                "168.63.129.16",
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
                // The metadata service through IPv6 forms that embed it.
                "::a9fe:a9fe",
                "64:ff9b::a9fe:a9fe",
                "2002:a9fe:a9fe::1",
                "2001:0:4136:e378:8000:63bf:5601:5601",
            ] {
                assert!(refused(&policy, addr).is_some(), "{policy} {addr}");
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
            assert_eq!(refused(&any(), addr), None, "{addr}");
        }
    }

    #[test]
    fn public_only_refuses_every_non_public_range_and_the_forms_that_embed_one() {
        let p = NetworkPolicy::public_only();
        for addr in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "::1",
            "fd12::1",
            "fc00::1",
            "fec0::1",
            "2001:db8::1",
            // IPv4 forms inside IPv6.
            "::7f00:1",
            "::a00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:0101::1",
            // IPv4-translated (RFC 2765), discard-only, benchmarking.
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
            "100::1",
            "2001:2::1",
        ] {
            assert!(refused(&p, addr).is_some(), "{addr}");
        }
        for addr in [
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(refused(&p, addr), None, "{addr}");
        }
    }

    #[test]
    fn exemptions_lift_public_only_but_not_the_always_refused() {
        let p = NetworkPolicy::new(
            TargetMode::PublicOnly,
            vec![
                "10.0.0.0/8".parse().unwrap(),
                "169.254.0.0/16".parse().unwrap(),
                "Hooks.Internal".parse().unwrap(),
            ],
        );
        assert_eq!(refused(&p, "10.9.9.9"), None);
        assert!(refused(&p, "192.168.0.1").is_some());
        assert!(refused(&p, "169.254.169.254").is_some(), "never exempt");
        let private: IpAddr = "192.168.0.1".parse().unwrap();
        assert!(p.check_for(private, Some("hooks.internal.")).is_ok());
        assert!(p.check_for(private, Some("other.internal")).is_err());
        assert!("not a host!".parse::<Exemption>().is_err());
        assert_eq!(
            p.to_string(),
            "public-only (except 10.0.0.0/8, 169.254.0.0/16, hooks.internal)"
        );
    }

    #[test]
    fn the_refusal_names_address_and_rule() {
        let r = any().check("169.254.169.254".parse().unwrap()).unwrap_err();
        assert_eq!(
            r.to_string(),
            "address 169.254.169.254 refused: cloud metadata address"
        );
        let r = NetworkPolicy::public_only()
            .check("10.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            r.to_string(),
            "address 10.0.0.1 refused: private address (10.0.0.0/8), refused by --targets public-only"
        );
    }
}
