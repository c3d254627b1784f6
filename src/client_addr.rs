//! The client's address: what the login throttle is keyed on and what request logs show.
//!
//! It is the TCP peer's address, unless the peer is one of `HERALD_TRUSTED_PROXIES`. Only then is a
//! forwarding header believed: a header from anyone else is ignored, since any client can send one
//! (and would otherwise pick a fresh address for each guess). From a trusted proxy, the address is
//! the right-most entry of `X-Forwarded-For` that is not itself a trusted proxy: each proxy appends
//! the address it received the request from, so entries left of the first untrusted one were written
//! by the client and prove nothing. Without `X-Forwarded-For`, RFC 7239 `Forwarded: for=…` is read
//! the same way. An entry that is not an address (`unknown`, an obfuscated `_name`) ends the walk at
//! the last trusted hop.
//!
//! [`resolve`] is the one function that decides it; the router's middleware runs it once per request
//! and stores a [`ClientAddr`], which handlers take as an extractor.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| ())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().map_err(|_| ())?,
            Some(_) => return Err(()),
            None => max,
        };
        if prefix > max {
            return Err(());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose forwarding headers are believed (`HERALD_TRUSTED_PROXIES`); empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR blocks; None if any entry is invalid.
    pub fn parse(list: &str) -> Option<TrustedProxies> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| entry.parse().ok())
            .collect::<Option<Vec<IpNet>>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

/// Address blocks whose SMTP clients may submit mail without AUTH (`HERALD_SMTP_TRUSTED_NETWORKS`);
/// empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworks(Vec<IpNet>);

impl TrustedNetworks {
    /// Parses a comma-separated list of addresses and CIDR blocks; None if any entry is invalid.
    pub fn parse(list: &str) -> Option<TrustedNetworks> {
        TrustedProxies::parse(list).map(|proxies| TrustedNetworks(proxies.0))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

/// The client's address for a request from `peer` with these headers.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = forwarded_for(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// The hops of `X-Forwarded-For` (all such headers, in order), or else of `Forwarded`'s `for=`.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    // Split the raw bytes before decoding: a proxy appends the peer it saw to the client's value,
    // and one undecodable byte in the client's part must not hide the hops the proxies added.
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|hop| std::str::from_utf8(hop).unwrap_or("_invalid").trim())
    };
    let x_forwarded: Vec<&str> = values(header::HeaderName::from_static("x-forwarded-for")).collect();
    if !x_forwarded.is_empty() {
        return x_forwarded;
    }
    values(header::FORWARDED)
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .map_or("_missing", |(_, v)| v.trim())
        })
        .collect()
}

/// An address from a forwarding header: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally quoted.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

/// The client's address of a request, as decided by [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The address the middleware decided; outside it (a router built without it), the peer's, if known.
    pub fn of(parts: &Parts) -> ClientAddr {
        if let Some(client) = parts.extensions.get::<ClientAddr>() {
            return *client;
        }
        ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| {
                    addr.ip().to_canonical()
                }),
        )
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientAddr::of(parts))
    }
}

/// Middleware: decides the client's address once and stores it in the request's extensions.
pub async fn middleware(trusted: Arc<TrustedProxies>, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = resolve(peer.ip(), request.headers(), &trusted);
        request.extensions_mut().insert(ClientAddr(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn proxies(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn blocks_and_single_addresses_are_parsed_and_matched() {
        let trusted = proxies("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32");
        assert!(trusted.contains(ip("10.200.3.4")));
        assert!(trusted.contains(ip("192.0.2.7")));
        assert!(!trusted.contains(ip("192.0.2.8")));
        assert!(trusted.contains(ip("2001:db8:1::5")));
        assert!(!trusted.contains(ip("2001:db9::5")));
        assert!(
            trusted.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped peers match IPv4 blocks"
        );
        assert!(proxies("0.0.0.0/0").contains(ip("203.0.113.1")));
        assert!(proxies("").is_empty());
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "proxy.example",
            "10.0.0.0/8,x",
            "::/129",
            "1.2.3.4/+8",
        ] {
            assert!(TrustedProxies::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.2")]);
        assert_eq!(resolve(ip("203.0.113.9"), &spoofed, &proxies("")), ip("203.0.113.9"));
        assert_eq!(
            resolve(ip("203.0.113.9"), &spoofed, &proxies("10.0.0.0/8")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies("10.0.0.0/8");
        // The client claimed 1.1.1.1; the edge proxy appended the real peer, an inner one its own.
        let forwarded = headers(&[
            ("x-forwarded-for", "1.1.1.1, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(resolve(ip("10.0.0.1"), &forwarded, &trusted), ip("198.51.100.7"));
        // Only proxies: the left-most one is as far as can be told.
        let internal = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(resolve(ip("10.0.0.1"), &internal, &trusted), ip("10.0.0.3"));
        // No header: the proxy itself.
        assert_eq!(resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        let garbage = headers(&[("x-forwarded-for", "nonsense, 10.0.0.2")]);
        assert_eq!(resolve(ip("10.0.0.1"), &garbage, &trusted), ip("10.0.0.2"));
        let ported = headers(&[("x-forwarded-for", "198.51.100.7:4711")]);
        assert_eq!(resolve(ip("10.0.0.1"), &ported, &trusted), ip("198.51.100.7"));
        // An undecodable byte in the client's part does not hide the peer the proxy appended.
        let mut raw = HeaderMap::new();
        raw.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff, 198.51.100.7").unwrap(),
        );
        assert_eq!(resolve(ip("10.0.0.1"), &raw, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = proxies("10.0.0.0/8");
        let forwarded = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.2;by=10.0.0.1",
        )]);
        assert_eq!(resolve(ip("10.0.0.1"), &forwarded, &trusted), ip("2001:db8::7"));
        let hidden = headers(&[("forwarded", "for=_hidden, for=10.0.0.2")]);
        assert_eq!(resolve(ip("10.0.0.1"), &hidden, &trusted), ip("10.0.0.2"));
        let both = headers(&[("forwarded", "for=198.51.100.2"), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(resolve(ip("10.0.0.1"), &both, &trusted), ip("198.51.100.1"));
    }
}
