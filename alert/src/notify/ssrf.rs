//! The guard against server-side request forgery: a receiver URL is configured by a tenant,
//! so a delivery must not reach this node's loopback, the private network, or a cloud
//! metadata service unless an operator allowed it (`delivery.allow`).
//!
//! Before each attempt (and each redirect hop) the host is resolved, every resolved address
//! is classified, and the request is refused if any address is forbidden. The client then
//! connects to exactly the addresses that were checked (pinned with reqwest's `resolve`), so
//! a DNS answer that changes between check and connect (rebinding) cannot swap them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// Why an address may not be reached, or `None` when it is a public address.
pub fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some("cloud metadata");
    }
    if ip.is_unspecified() || o[0] == 0 {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_private() {
        return Some("private");
    }
    if ip.is_link_local() {
        return Some("link-local");
    }
    if o[0] == 100 && (o[1] & 0xc0) == 64 {
        return Some("shared address space (CGNAT)");
    }
    if ip.is_broadcast() {
        return Some("broadcast");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if o[0] >= 240 {
        return Some("reserved");
    }
    None
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("cloud metadata");
    }
    // IPv4 embedded in IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64
    // (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::) reach the IPv4 address they carry.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return forbidden_v4(embedded(s[1], s[2]));
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if (s[0] & 0xfe00) == 0xfc00 {
        return Some("private (unique local)");
    }
    if (s[0] & 0xffc0) == 0xfe80 {
        return Some("link-local");
    }
    if (s[0] & 0xffc0) == 0xfec0 {
        return Some("site-local");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    None
}

/// A network in `delivery.allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a destination was refused (a delivery failure that is not retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("scheme {0:?} is not allowed (only http and https)")]
    Scheme(String),
    #[error(
        "destination {host} resolves to {addr} ({class}); add it to delivery.allow to permit it"
    )]
    Address {
        host: String,
        addr: IpAddr,
        class: &'static str,
    },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
}

impl Refused {
    /// Resolution failures are retried (DNS may come back); the others are final.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Refused::Resolve { .. })
    }
}

/// What a URL may connect to.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: Url,
    /// The host to pin and the addresses it was checked at; `None` for an IP literal.
    pub pin: Option<(String, Vec<SocketAddr>)>,
}

/// The SSRF guard, built from `delivery.allow`.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    nets: Vec<Cidr>,
    hosts: Vec<String>,
}

impl Guard {
    /// Entries are CIDRs (`10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8`), single addresses, or
    /// exact host names (case-insensitive).
    pub fn new(allow: &[String]) -> Result<Self, String> {
        let mut guard = Guard::default();
        for entry in allow {
            let entry = entry.trim();
            if let Some((net, prefix)) = entry.split_once('/') {
                let net: IpAddr = net
                    .parse()
                    .map_err(|_| format!("delivery.allow: {entry:?} is not a CIDR"))?;
                let max = if net.is_ipv4() { 32 } else { 128 };
                let prefix: u8 = prefix
                    .parse()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("delivery.allow: bad prefix length in {entry:?}"))?;
                guard.nets.push(Cidr { net, prefix });
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                let prefix = if ip.is_ipv4() { 32 } else { 128 };
                guard.nets.push(Cidr { net: ip, prefix });
            } else if !entry.is_empty()
                && entry
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                guard.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "delivery.allow: {entry:?} is neither a CIDR nor a host name"
                ));
            }
        }
        Ok(guard)
    }

    /// Whether the guard lets a connection to `ip` through.
    pub fn allows_addr(&self, ip: IpAddr) -> Result<(), &'static str> {
        match forbidden_class(ip) {
            Some(class) if !self.nets.iter().any(|n| n.contains(ip)) => Err(class),
            _ => Ok(()),
        }
    }

    fn allows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Checks a URL's scheme and the addresses of its host (resolved now).
    pub async fn check(&self, url: &str) -> Result<Checked, Refused> {
        let parsed = Url::parse(url).map_err(|e| Refused::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        self.check_url(parsed).await
    }

    /// [`Guard::check`] for a parsed URL.
    pub async fn check_url(&self, url: Url) -> Result<Checked, Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme(url.scheme().to_string()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let Some(host) = url.host_str().map(str::to_string) else {
            return Err(Refused::InvalidUrl {
                url: url.to_string(),
                reason: "no host".into(),
            });
        };
        // The URL parser has normalised IPv4 literals (`0x7f.1` is `127.0.0.1`); IPv6
        // literals come bracketed.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            self.allows_addr(ip).map_err(|class| Refused::Address {
                host: literal.to_string(),
                addr: ip,
                class,
            })?;
            return Ok(Checked { url, pin: None });
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Refused::Resolve {
                host: host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        if addrs.is_empty() {
            return Err(Refused::Resolve {
                host,
                reason: "no addresses".into(),
            });
        }
        if !self.allows_host(&host) {
            for a in &addrs {
                self.allows_addr(a.ip()).map_err(|class| Refused::Address {
                    host: host.clone(),
                    addr: a.ip(),
                    class,
                })?;
            }
        }
        Ok(Checked {
            url,
            pin: Some((host, addrs)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<&'static str> {
        forbidden_class(s.parse().unwrap())
    }

    #[test]
    fn classifies_forbidden_ipv4() {
        for (ip, want) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.0.1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("100.64.0.1", "shared address space (CGNAT)"),
            ("100.127.255.255", "shared address space (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
        ] {
            assert_eq!(class(ip), Some(want), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "11.0.0.1",
            "223.255.255.255",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn classifies_forbidden_ipv6_and_embedded_ipv4() {
        for (ip, want) in [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "private (unique local)"),
            ("fdff:ffff::1", "private (unique local)"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:100.64.0.1", "shared address space (CGNAT)"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::", "private"),
        ] {
            assert_eq!(class(ip), Some(want), "{ip}");
        }
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
            "fe00::1",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn allow_list_permits_only_what_it_names() {
        let guard = Guard::new(&[
            "127.0.0.1/32".into(),
            "10.1.0.0/16".into(),
            "fd00::/8".into(),
            "192.168.7.7".into(),
            "Hooks.Internal".into(),
        ])
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(guard.allows_addr(ip("127.0.0.1")), Ok(()));
        assert_eq!(guard.allows_addr(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(guard.allows_addr(ip("127.0.0.2")), Err("loopback"));
        assert_eq!(guard.allows_addr(ip("10.1.200.3")), Ok(()));
        assert_eq!(guard.allows_addr(ip("10.2.0.1")), Err("private"));
        assert_eq!(guard.allows_addr(ip("fd12::1")), Ok(()));
        assert_eq!(
            guard.allows_addr(ip("fc00::1")),
            Err("private (unique local)")
        );
        assert_eq!(guard.allows_addr(ip("192.168.7.7")), Ok(()));
        assert_eq!(guard.allows_addr(ip("192.168.7.8")), Err("private"));
        assert_eq!(
            guard.allows_addr(ip("169.254.169.254")),
            Err("cloud metadata")
        );
        assert_eq!(guard.allows_addr(ip("8.8.8.8")), Ok(()));
        assert!(guard.allows_host("hooks.internal"));
        assert!(!guard.allows_host("hooks.internal.evil.com"));
        // The empty list forbids all special addresses.
        let none = Guard::new(&[]).unwrap();
        assert_eq!(none.allows_addr(ip("127.0.0.1")), Err("loopback"));
        for bad in ["10.0.0.0/33", "::/129", "nope/8", "a b", ""] {
            assert!(Guard::new(&[bad.to_string()]).is_err(), "{bad}");
        }
        // /0 allows everything of that family.
        let all = Guard::new(&["0.0.0.0/0".into()]).unwrap();
        assert_eq!(all.allows_addr(ip("169.254.169.254")), Ok(()));
        assert_eq!(all.allows_addr(ip("::1")), Err("loopback"));
    }

    #[tokio::test]
    async fn check_refuses_schemes_literals_and_resolved_names() {
        let guard = Guard::new(&[]).unwrap();
        assert_eq!(
            guard.check("file:///etc/passwd").await.unwrap_err(),
            Refused::Scheme("file".into())
        );
        assert!(matches!(
            guard.check("not a url").await.unwrap_err(),
            Refused::InvalidUrl { .. }
        ));
        let e = guard
            .check("http://169.254.169.254/latest/meta-data/")
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "destination 169.254.169.254 resolves to 169.254.169.254 (cloud metadata); \
             add it to delivery.allow to permit it"
        );
        assert!(!e.is_retryable());
        assert!(matches!(
            guard
                .check("http://[::ffff:7f00:1]:8080/")
                .await
                .unwrap_err(),
            Refused::Address {
                class: "loopback",
                ..
            }
        ));
        // `localhost` resolves (without the network) to loopback addresses.
        assert!(matches!(
            guard.check("http://localhost:9/hook").await.unwrap_err(),
            Refused::Address {
                class: "loopback",
                ..
            }
        ));
        // Allowed by name: resolved, pinned to what was resolved.
        let by_name = Guard::new(&["localhost".into()]).unwrap();
        let ok = by_name.check("http://localhost:9/hook").await.unwrap();
        let (host, addrs) = ok.pin.unwrap();
        assert_eq!(host, "localhost");
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        // A public literal passes without pinning.
        let public = guard.check("https://8.8.8.8/x").await.unwrap();
        assert!(public.pin.is_none());
    }
}
