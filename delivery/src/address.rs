//! The address a caller's anonymous streams are counted under: the TCP peer, or, when the peer is a trusted proxy
//! ([`DeliveryConfig::trusted_proxies`](crate::DeliveryConfig::trusted_proxies)), the last address of the
//! forwarding header the proxies write ([`DeliveryConfig::forwarded_header`](crate::DeliveryConfig::forwarded_header):
//! `X-Forwarded-For`, or the `for=` parameters of RFC 7239 `Forwarded`) that is not one (the standard right-to-left
//! walk: entries left of a trusted proxy's own could be written by anyone). Only the configured header is read: a
//! proxy that writes one passes the other through from the client unchecked. IPv6 callers count by their /64, the
//! block one host usually holds.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use serde::Deserialize;

use crate::forwarded;

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address (`192.168.1.10`). IPv4 peers, IPv4-mapped
/// ones included, match IPv4 networks (and mapped ones such as `::ffff:10.0.0.0/104`) only: `::/0` is every IPv6
/// peer, `0.0.0.0/0` every IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

/// Why a string is not an [`IpNetwork`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or network (expected `10.0.0.0/8`, `fd00::/8` or one address)")]
pub struct InvalidNetwork(String);

impl FromStr for IpNetwork {
    type Err = InvalidNetwork;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidNetwork(text.to_owned());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let written = address.parse::<IpAddr>().map_err(|_| invalid())?;
        let bits = if written.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(invalid)?,
            None => bits,
        };
        // Peers are compared as IPv4 when they are IPv4-mapped, so is a mapped network (`::ffff:10.0.0.0/104`).
        match written.to_canonical() {
            IpAddr::V4(v4) if written.is_ipv6() && prefix >= 96 => Ok(IpNetwork {
                base: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            _ => Ok(IpNetwork {
                base: written,
                prefix,
            }),
        }
    }
}

impl TryFrom<String> for IpNetwork {
    type Error = InvalidNetwork;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl IpNetwork {
    pub fn contains(&self, address: IpAddr) -> bool {
        // IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports) count as IPv4.
        match (self.base, address.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(address)) => same_prefix(
                u128::from(base.to_bits()),
                u128::from(address.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(base), IpAddr::V6(address)) => {
                same_prefix(base.to_bits(), address.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `bits` bits of `a` and `b` are equal.
fn same_prefix(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    let ignored = u32::from(bits.saturating_sub(prefix));
    a.checked_shr(ignored).unwrap_or(0) == b.checked_shr(ignored).unwrap_or(0)
}

/// The header trusted proxies name the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl FromStr for ForwardedHeader {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err(format!(
                "`{text}` is not a forwarding header (expected `x-forwarded-for` or `forwarded`)"
            )),
        }
    }
}

/// The caller's address: `peer`, or the last untrusted entry of the forwarding header when `peer` is a trusted
/// proxy. `None` without a peer (a router served without connection info).
pub(crate) fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNetwork],
    header: ForwardedHeader,
) -> Option<IpAddr> {
    let mut address = peer?.to_canonical();
    if !trusted.iter().any(|network| network.contains(address)) {
        return Some(address);
    }
    // Bytes past ASCII are kept (as U+FFFD): dropping the line would drop the element a proxy appended to it.
    let lines: Vec<String> = headers
        .get_all(match header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        })
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    let hops: Vec<Option<IpAddr>> = match header {
        ForwardedHeader::XForwardedFor => lines
            .iter()
            .flat_map(|line| line.split(','))
            .map(parse_hop)
            .collect(),
        ForwardedHeader::Forwarded => lines.iter().flat_map(|line| forwarded::hops(line)).collect(),
    };
    for hop in hops.iter().rev() {
        // A malformed entry ends the walk: nothing left of it can be told apart from what a client wrote.
        let Some(hop) = hop else {
            break;
        };
        address = hop.to_canonical();
        if !trusted.iter().any(|network| network.contains(address)) {
            break;
        }
    }
    Some(address)
}

/// One `X-Forwarded-For` entry: an address, or an address with a port (`192.0.2.1:443`, `[2001:db8::1]:443`), as
/// some proxies write them.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

/// The key an address's streams count under: IPv4 as is, IPv6 by its /64.
pub(crate) fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|text| text.parse().unwrap()).collect()
    }

    /// `values` as lines of the header `name`.
    fn lines(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        lines("x-forwarded-for", values)
    }

    /// The address with the proxies writing `X-Forwarded-For`.
    fn by_xff(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNetwork]) -> Option<IpAddr> {
        client_address(peer, headers, trusted, ForwardedHeader::XForwardedFor)
    }

    #[test]
    fn networks_parse_and_contain() {
        let private: IpNetwork = "10.0.0.0/8".parse().unwrap();
        assert!(private.contains(ip("10.20.30.40")));
        assert!(private.contains(ip("::ffff:10.1.2.3")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(!private.contains(ip("fd00::1")));
        let one: IpNetwork = "192.168.1.10".parse().unwrap();
        assert!(one.contains(ip("192.168.1.10")) && !one.contains(ip("192.168.1.11")));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let v6: IpNetwork = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in ["", "10.0.0.0/33", "fd00::/129", "10.0.0/8", "host", "10.0.0.0/x"] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
        assert_eq!(private.to_string(), "10.0.0.0/8");
        let mapped: IpNetwork = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, private);
        let all_mapped: IpNetwork = "::ffff:0:0/96".parse().unwrap();
        assert!(all_mapped.contains(ip("192.0.2.1")) && !all_mapped.contains(ip("2001:db8::1")));
        let host: IpNetwork = "2001:db8::5/128".parse().unwrap();
        assert!(host.contains(ip("2001:db8::5")) && !host.contains(ip("2001:db8::6")));
        let v6_all: IpNetwork = "::/0".parse().unwrap();
        assert!(v6_all.contains(ip("2001:db8::1")) && !v6_all.contains(ip("192.0.2.1")));
        let v4_host: IpNetwork = "192.0.2.1/32".parse().unwrap();
        assert!(v4_host.contains(ip("::ffff:192.0.2.1")) && !v4_host.contains(ip("192.0.2.2")));
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = nets(&["10.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.9, 198.51.100.7"]);
        // An untrusted peer's header is ignored.
        assert_eq!(
            by_xff(Some(ip("198.51.100.1")), &headers, &trusted),
            Some(ip("198.51.100.1"))
        );
        // Behind the proxy: the last entry it did not write itself.
        assert_eq!(
            by_xff(Some(ip("10.0.0.2")), &headers, &trusted),
            Some(ip("198.51.100.7"))
        );
        // Chains of trusted proxies are skipped; several header lines are one list.
        let headers = forwarded(&["203.0.113.9", "198.51.100.7, 10.0.0.5"]);
        assert_eq!(
            by_xff(Some(ip("10.0.0.2")), &headers, &trusted),
            Some(ip("198.51.100.7"))
        );
        // A malformed entry stops the walk at the last good one.
        let headers = forwarded(&["203.0.113.9, garbage, 10.0.0.7"]);
        assert_eq!(
            by_xff(Some(ip("10.0.0.2")), &headers, &trusted),
            Some(ip("10.0.0.7"))
        );
        // Entries with ports, as some proxies write them.
        let headers = forwarded(&["[2001:db8::7]:443, 198.51.100.9:1234"]);
        assert_eq!(
            by_xff(Some(ip("10.0.0.2")), &headers, &trusted),
            Some(ip("198.51.100.9"))
        );
        let trusted_v4 = nets(&["10.0.0.0/8", "198.51.100.9"]);
        assert_eq!(
            by_xff(Some(ip("10.0.0.2")), &headers, &trusted_v4),
            Some(ip("2001:db8::7"))
        );
        // A line with bytes past ASCII still gives the entry the proxy appended to it.
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff6.6.6.6, 198.51.100.7").unwrap(),
        );
        assert_eq!(
            by_xff(Some(ip("10.0.0.2")), &headers, &trusted),
            Some(ip("198.51.100.7"))
        );
        // No header: the proxy itself.
        assert_eq!(
            by_xff(Some(ip("10.0.0.2")), &HeaderMap::new(), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(by_xff(None, &HeaderMap::new(), &trusted), None);
    }

    fn rfc7239(values: &[&str]) -> HeaderMap {
        lines("forwarded", values)
    }

    #[test]
    fn forwarded_for_parameters_count_when_the_proxies_write_forwarded() {
        let trusted = nets(&["10.0.0.0/8"]);
        let header = ForwardedHeader::Forwarded;
        let proxy = Some(ip("10.0.0.2"));
        let headers = rfc7239(&["for=203.0.113.9;proto=http, For=\"198.51.100.7:4711\";by=10.0.0.1"]);
        assert_eq!(
            client_address(proxy, &headers, &trusted, header),
            Some(ip("198.51.100.7"))
        );
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_address(Some(ip("198.51.100.1")), &headers, &trusted, header),
            Some(ip("198.51.100.1"))
        );
        // IPv6 in brackets, with and without a port; trusted hops skipped; several lines are one list.
        let headers = rfc7239(&["for=\"[2001:db8:cafe::17]:4711\"", "for=10.0.0.5;host=\"a,b;c\""]);
        assert_eq!(
            client_address(proxy, &headers, &trusted, header),
            Some(ip("2001:db8:cafe::17"))
        );
        let headers = rfc7239(&["for=\"[2001:db8::5]\""]);
        assert_eq!(
            client_address(proxy, &headers, &trusted, header),
            Some(ip("2001:db8::5"))
        );
        // `unknown`, an obfuscated identifier or an element without `for` ends the walk at the last good one.
        for stop in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=\"[2001:db8::1\"",
        ] {
            let headers = rfc7239(&[&format!("for=203.0.113.9, {stop}, for=10.0.0.7")]);
            assert_eq!(
                client_address(proxy, &headers, &trusted, header),
                Some(ip("10.0.0.7")),
                "{stop}"
            );
        }
        // Only the configured header counts: `X-Forwarded-For` is not read when the proxies write `Forwarded`,
        // nor `Forwarded` when they write `X-Forwarded-For`.
        let mut both = rfc7239(&["for=203.0.113.50"]);
        both.append("x-forwarded-for", HeaderValue::from_static("198.51.100.60"));
        assert_eq!(
            client_address(proxy, &both, &trusted, header),
            Some(ip("203.0.113.50"))
        );
        assert_eq!(
            client_address(proxy, &both, &trusted, ForwardedHeader::XForwardedFor),
            Some(ip("198.51.100.60"))
        );
        assert_eq!(
            "Forwarded".parse::<ForwardedHeader>(),
            Ok(ForwardedHeader::Forwarded)
        );
        assert!("via".parse::<ForwardedHeader>().is_err());
    }

    #[test]
    fn ipv6_callers_count_by_their_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2:bbbb::9")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
