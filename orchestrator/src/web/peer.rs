//! Who is on the other end of a request: the client's address, as the key its limits are
//! counted under, and whether the connection came over TLS (the WebSocket origin check needs
//! the page's scheme). The serve loop ([`super::serve`]) attaches a [`Peer`] to every request.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The connection a request came on; a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's socket address.
    pub address: SocketAddr,
    /// Whether the connection is HTTPS.
    pub tls: bool,
}

/// The address a client's limits are counted under: an IPv4 address, or the /64 network of
/// an IPv6 address. One subscriber usually gets a whole /64, so counting single IPv6
/// addresses would limit nothing. IPv4-mapped IPv6 addresses count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(network)))
                }
            },
        }
    }

    /// The key of requests that carry no [`Peer`] (a router driven without the serve loop).
    pub fn unknown() -> ClientKey {
        ClientKey(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Extractor: the [`ClientKey`] of the request's client.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub ClientKey);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(
            parts
                .extensions
                .get::<Peer>()
                .map_or_else(ClientKey::unknown, |peer| ClientKey::of(peer.address.ip())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a = ClientKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let mapped = ClientKey::of("::ffff:203.0.113.7".parse().unwrap());
        assert_eq!(mapped, ClientKey::of("203.0.113.7".parse().unwrap()));
        assert_eq!(mapped.to_string(), "203.0.113.7");
    }
}
