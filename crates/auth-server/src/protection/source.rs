//! Where a request came from, as the per-source rules see it: the address (for the audit log) and the key
//! the limits count under (an IPv6 source by its `--ipv6-source-prefix`, a /64 by default; RFC 7239 rules
//! for `X-Forwarded-For` from trusted proxies are `service_kit::source`'s).

use std::net::IpAddr;

use service_kit::source::source_key;

/// A request's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSource {
    /// The address: the TCP peer, or the client a trusted proxy forwarded for.
    pub address: IpAddr,
    /// What per-source limits (login throttles, the password-check share, /par rates) count under.
    pub key: IpAddr,
}

impl RequestSource {
    /// The source at `address`, with IPv6 addresses counted by their first `ipv6_prefix` bits.
    pub fn new(address: IpAddr, ipv6_prefix: u8) -> Self {
        Self {
            address,
            key: source_key(address, ipv6_prefix),
        }
    }
}
