//! WebSocket upgrades on hyper's own upgrade mechanism, with the workspace's
//! tokio-tungstenite (axum's `ws` feature would compile a second tungstenite).
//!
//! Upgrades are accepted only from the origin's own pages: browsers send `Origin` with every
//! WebSocket request, and other sites' pages must not open sockets with a token they lured
//! out of a user. Same origin means the scheme of this connection (`https` with TLS) and the
//! request's own `Host`, so the origin works under any name it is reached by. A request
//! without `Origin` comes from no browser and is let through (tests, tools). Frames that break
//! the protocol get the close code that says why ([`close_for`]).

use axum::extract::FromRequestParts;
use axum::http::header::{
    CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use super::api::ApiError;
use super::peer::Peer;

/// A server-side WebSocket to a browser.
pub type BrowserSocket = WebSocketStream<TokioIo<Upgraded>>;

/// Largest message a browser may send us: rust-core's own limit for signaling messages
/// (`openspace_webrtc_protocol::MAX_MESSAGE_BYTES`). Checked on each message, so a larger
/// one gets an error reply and the connection stays.
pub const MAX_BROWSER_MESSAGE: usize = openspace_webrtc_protocol::MAX_MESSAGE_BYTES;

/// Largest frame or message the WebSocket layer reads at all (rust-core's transport limit).
/// Larger than [`MAX_BROWSER_MESSAGE`] so that an oversized message reaches the check above;
/// past this one the connection is closed with 1009 and nothing more is buffered.
pub const TRANSPORT_MAX_BYTES: usize = 1024 * 1024;

/// The close frame that tells a browser why its frames were refused, for a read error of
/// tungstenite; `None` when the connection is gone anyway.
pub fn close_for(err: &WsError) -> Option<Message> {
    let (code, reason) = match err {
        WsError::Utf8(_) => (
            CloseCode::Invalid,
            "invalid UTF-8 in a text message".to_string(),
        ),
        WsError::Capacity(err) => (
            CloseCode::Size,
            format!("{err} (limit {TRANSPORT_MAX_BYTES} bytes)"),
        ),
        WsError::Protocol(
            tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => return None,
        WsError::Protocol(err) => (CloseCode::Protocol, err.to_string()),
        _ => return None,
    };
    // A close reason is at most 123 bytes.
    let mut reason = reason;
    if reason.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    Some(Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    })))
}

/// `host` and port of an authority (`example.org:8443`, `[::1]:4690`, `example.org`), the
/// port `default` when absent. `None` for anything else.
fn split_authority(authority: &str, default: u16) -> Option<(&str, u16)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?,
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let port = if port.is_empty() {
        default
    } else {
        let digits = port.strip_prefix(':')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()?
    };
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    plain.then_some((host, port))
}

/// Whether a browser's `Origin` is this origin: `scheme://host[:port]` with this connection's
/// scheme and the request's `Host` (names compared case-insensitively, default ports filled).
pub fn same_origin(origin: &str, host: &str, tls: bool) -> bool {
    let (scheme, default) = if tls { ("https", 443) } else { ("http", 80) };
    let Some((origin_scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    if !origin_scheme.eq_ignore_ascii_case(scheme) {
        return false;
    }
    match (
        split_authority(authority, default),
        split_authority(host, default),
    ) {
        (Some((a, a_port)), Some((b, b_port))) => a.eq_ignore_ascii_case(b) && a_port == b_port,
        _ => false,
    }
}

/// Refuses a browser's upgrade from another origin.
fn check_origin(parts: &Parts) -> Result<(), ApiError> {
    let Some(origin) = parts.headers.get(ORIGIN) else {
        return Ok(());
    };
    let tls = parts.extensions.get::<Peer>().is_some_and(|peer| peer.tls);
    let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str(), host) {
        (Ok(origin), Some(host)) if same_origin(origin, host, tls) => Ok(()),
        _ => {
            debug!(origin = ?origin, host = ?host, "cross-origin WebSocket refused");
            Err(ApiError::CrossOrigin)
        }
    }
}

/// A request to upgrade to WebSocket; an axum extractor.
pub struct WsUpgrade {
    /// Resolves to the raw connection once the 101 response is sent.
    on_upgrade: OnUpgrade,
    /// The client's `Sec-WebSocket-Key`.
    key: HeaderValue,
}

fn header_has_token(headers: &HeaderMap, name: axum::http::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        if parts.method != Method::GET
            || !header_has_token(headers, CONNECTION, "upgrade")
            || !header_has_token(headers, UPGRADE, "websocket")
        {
            return Err(ApiError::UpgradeRequired);
        }
        if headers
            .get(SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(ApiError::BadRequest(
                "unsupported WebSocket version (13 expected)".into(),
            ));
        }
        let key = headers
            .get(SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| ApiError::BadRequest("missing Sec-WebSocket-Key".into()))?;
        check_origin(parts)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(ApiError::UpgradeRequired)?;
        Ok(WsUpgrade { on_upgrade, key })
    }
}

impl WsUpgrade {
    /// Answers 101 and runs `serve` on the WebSocket once the connection is handed over.
    pub fn serve<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(BrowserSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let config = WebSocketConfig::default()
                        .max_message_size(Some(TRANSPORT_MAX_BYTES))
                        .max_frame_size(Some(TRANSPORT_MAX_BYTES));
                    let socket = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    serve(socket).await;
                }
                Err(err) => debug!(%err, "WebSocket upgrade failed"),
            }
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(value) = HeaderValue::from_str(&accept) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, value);
        }
        response
    }
}

/// Whether a browser at the other end of a WebSocket still answers. The socket is pinged every
/// `every`; when nothing at all came from the browser (a pong or any message) for three
/// pings, [`Liveness::next_ping`] gives up, and the caller closes the socket. A browser
/// answers pings by itself, so only a vanished one (a closed laptop lid, a dropped network:
/// no FIN ever comes) is closed.
pub struct Liveness {
    ping: tokio::time::Interval,
    every: std::time::Duration,
    last_heard: tokio::time::Instant,
}

impl Liveness {
    /// Starts counting now.
    pub fn new(every: std::time::Duration) -> Liveness {
        let every = every.max(std::time::Duration::from_millis(10));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Liveness {
            ping,
            every,
            last_heard: tokio::time::Instant::now(),
        }
    }

    /// Something came from the browser.
    pub fn heard(&mut self) {
        self.last_heard = tokio::time::Instant::now();
    }

    /// Waits for the next ping time: the ping to send, or `None` when the browser is gone.
    pub async fn next_ping(&mut self) -> Option<Message> {
        self.ping.tick().await;
        if self.last_heard.elapsed() > 3 * self.every {
            return None;
        }
        Some(Message::Ping(Vec::new().into()))
    }

    /// The close frame for a browser that stopped answering.
    pub fn gone() -> Message {
        Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "no answer to pings".into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_the_connections_scheme_and_the_requests_host() {
        for (origin, host, tls) in [
            ("http://127.0.0.1:4690", "127.0.0.1:4690", false),
            ("http://Stream.Example.org", "stream.example.org:80", false),
            ("https://stream.example.org", "stream.example.org", true),
            ("https://stream.example.org:443", "stream.example.org", true),
            ("http://[::1]:4690", "[::1]:4690", false),
        ] {
            assert!(same_origin(origin, host, tls), "{origin} {host} {tls}");
        }
        for (origin, host, tls) in [
            ("http://evil.example", "127.0.0.1:4690", false),
            ("https://127.0.0.1:4690", "127.0.0.1:4690", false),
            ("http://stream.example.org", "stream.example.org", true),
            ("http://127.0.0.1:4691", "127.0.0.1:4690", false),
            ("http://127.0.0.1", "127.0.0.1:4690", false),
            ("null", "127.0.0.1:4690", false),
            ("http://127.0.0.1:4690/", "127.0.0.1:4690", false),
            ("http://user@127.0.0.1:4690", "127.0.0.1:4690", false),
            ("http://127.0.0.1:4690.evil", "127.0.0.1:4690", false),
            ("http://127.0.0.1:", "127.0.0.1:80", false),
            ("http://[::1]:4690", "[::2]:4690", false),
        ] {
            assert!(!same_origin(origin, host, tls), "{origin} {host} {tls}");
        }
    }

    #[test]
    fn read_errors_map_to_close_codes() {
        use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
        let code = |err: WsError| match close_for(&err) {
            Some(Message::Close(Some(frame))) => Some(u16::from(frame.code)),
            _ => None,
        };
        assert_eq!(code(WsError::Utf8("bad".into())), Some(1007));
        assert_eq!(
            code(WsError::Protocol(ProtocolError::UnexpectedContinueFrame)),
            Some(1002)
        );
        assert_eq!(
            code(WsError::Capacity(CapacityError::MessageTooLong {
                size: 2 << 20,
                max_size: TRANSPORT_MAX_BYTES
            })),
            Some(1009)
        );
        assert_eq!(
            code(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            None
        );
        assert_eq!(code(WsError::ConnectionClosed), None);
    }
}
