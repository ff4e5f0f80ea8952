//! The source address of a request, as per-source limits (login throttles, password-check shares,
//! connections) and the audit log see it: the TCP peer, or, when the peer is a trusted proxy
//! (`--trusted-proxy`), the right-most address of `X-Forwarded-For` that is not itself a trusted proxy
//! (RFC 7239 §7.4: only the entries added by proxies we trust can be believed; the left ones are whatever
//! the client wrote). Without a trusted proxy the header is ignored, so a client cannot choose its source by
//! writing it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Is `address` inside the block? An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical(address)) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, as a dual-stack listener sees IPv4 peers) as plain IPv4.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = canonical(
            address
                .parse::<IpAddr>()
                .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?,
        );
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {width}"))?,
            None => width,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The key per-source limits count under: an IPv4 address as it is, an IPv6 address cut to its first
/// `ipv6_prefix` bits (a /64 by default: one host is usually given a whole /64, so counting its 2^64 addresses
/// one by one would let it pass for 2^64 sources).
pub fn source_key(address: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

/// Is `host` (as a URL writes it: `127.0.0.1`, `[::1]`, `localhost`) a loopback host? Plain http is fine
/// there and nowhere else: nothing leaves the machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(address) => canonical(address).is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// The default IPv6 prefix of [`source_key`].
pub const DEFAULT_IPV6_SOURCE_PREFIX: u8 = 64;

/// The source of a request from `peer` with `headers`, given the trusted proxies.
pub fn source_of(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |address: IpAddr| trusted.iter().any(|cidr| cidr.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    // Right to left over every X-Forwarded-For header, as if they were one list.
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|value| {
            let text = value.to_str().unwrap_or("\u{0}");
            text.rsplit(',').map(str::trim).collect::<Vec<_>>()
        });
    let mut source = peer;
    for entry in entries {
        // An entry that does not parse ends the walk at the last good address: never an error.
        let Ok(address) = entry.parse::<IpAddr>().map(canonical) else {
            break;
        };
        source = address;
        if !is_trusted(address) {
            break;
        }
    }
    source
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn cidr_blocks_parse_and_match() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.255.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let single: Cidr = "192.0.2.7".parse().unwrap();
        assert!(single.contains(ip("192.0.2.7")) && !single.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.1")));
        for bad in ["10.0.0.0/33", "::/129", "ten", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_sources_count_by_their_64_bit_prefix_and_ipv4_by_address() {
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            source_key(ip("2001:db8:1:2:ffff::9"), 64),
            source_key(ip("2001:db8:1:2::1"), 64)
        );
        assert_ne!(
            source_key(ip("2001:db8:1:3::1"), 64),
            source_key(ip("2001:db8:1:2::1"), 64)
        );
        assert_eq!(source_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(source_key(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(source_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
    }

    #[test]
    fn loopback_hosts_are_told_apart() {
        for host in [
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "example.com",
            "localhost.example",
            "[2001:db8::1]",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(source_of(ip("192.0.2.1"), &headers, &[]), ip("192.0.2.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_is_the_source() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        // client → (spoofs 1.2.3.4) → proxy 10.0.0.2 → proxy 10.0.0.1 → us.
        let headers = forwarded(&["1.2.3.4, 203.0.113.9, 10.0.0.2"]);
        assert_eq!(
            source_of(ip("10.0.0.1"), &headers, &trusted),
            ip("203.0.113.9")
        );
        // Several headers are one list, in order.
        let split = forwarded(&["1.2.3.4", "203.0.113.9", "10.0.0.2"]);
        assert_eq!(
            source_of(ip("10.0.0.1"), &split, &trusted),
            ip("203.0.113.9")
        );
        // A peer outside the trusted blocks: its header is the client's word, ignored.
        assert_eq!(
            source_of(ip("198.51.100.1"), &headers, &trusted),
            ip("198.51.100.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            source_of(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_unparsable_entry_stops_the_walk_at_the_last_good_address() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let headers = forwarded(&["203.0.113.9, garbage, 10.0.0.2"]);
        assert_eq!(
            source_of(ip("10.0.0.1"), &headers, &trusted),
            ip("10.0.0.2")
        );
        let all_trusted = forwarded(&["10.9.9.9, 10.0.0.2"]);
        assert_eq!(
            source_of(ip("10.0.0.1"), &all_trusted, &trusted),
            ip("10.9.9.9")
        );
        let mut binary = HeaderMap::new();
        binary.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(source_of(ip("10.0.0.1"), &binary, &trusted), ip("10.0.0.1"));
    }
}
