//! The supervisor's relay: the only way from a web role to an instance's WebSocket endpoints.
//!
//! Instances listen on loopback only, so a rendering server exposes its supervisor port and
//! media (UDP), nothing else. A web role opens `ws://<supervisor>/instances/<id>/signal?role=…`
//! (`wss://` when the supervisor port has TLS; or `/instances/<id>/openspace`) with the
//! supervisor's secret, like any supervisor connection; the supervisor connects to the instance on loopback and copies messages both
//! ways until either side closes. For signaling it first asks the instance for a join ticket
//! over the control channel, with the role the web role vouches for, and connects with it:
//! rust-core alone decides what the viewer may do (see `rust-core/SIGNALING.md`), and the
//! relay reads none of the messages it carries.
//!
//! [`RelayRoute`] is the one spelling of these paths: the supervisor parses it, the web role
//! builds it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openspace_webrtc_protocol::ViewerRole;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, interval_at, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tracing::debug;

use crate::shutdown::Shutdown;

/// The prefix of relay paths; any other path is the supervisor protocol.
const PREFIX: &str = "/instances/";

/// Time to reach the instance's endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the relay pings the web role, and how many silent pings end it: a web role
/// that vanished without closing must not hold the connection (and the viewer) for good.
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENT_PINGS: u32 = 3;

/// Largest message relayed from rust-core's signaling endpoint: SDP and ICE. The web role
/// applies its own, smaller limit; this bounds the relay's memory.
const MAX_SIGNAL_MESSAGE: usize = 4 * 1024 * 1024;

/// Largest message relayed from OpenSpace's JSON API, and read by the web role's proxy of it
/// (`web::openspace_api`): answers can be large (the `documentation` topic, a subscription to
/// the whole property tree), far larger than anything a page sends.
pub const MAX_OPENSPACE_API_MESSAGE: usize = 16 * 1024 * 1024;

/// Which endpoint of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEndpoint {
    /// rust-core's signaling, for a viewer with this role.
    Signal(ViewerRole),
    /// OpenSpace's JSON API WebSocket (the owner's only; the web role checks that).
    OpenSpaceApi,
}

impl RelayEndpoint {
    /// The largest message the relay reads from this endpoint.
    pub fn max_message_bytes(self) -> usize {
        match self {
            RelayEndpoint::Signal(_) => MAX_SIGNAL_MESSAGE,
            RelayEndpoint::OpenSpaceApi => MAX_OPENSPACE_API_MESSAGE,
        }
    }
}

/// A relay request: instance `id`'s `endpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRoute {
    /// The slot.
    pub id: u32,
    /// The endpoint.
    pub endpoint: RelayEndpoint,
}

impl RelayRoute {
    /// Parses an upgrade request's path and query: `Ok(None)` for a path that is not a relay
    /// (the supervisor protocol), `Err` with the reason for a malformed relay path.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Option<RelayRoute>, String> {
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        let malformed = || {
            format!(
                "relay paths are {PREFIX}<id>/signal?role=owner|spectator or {PREFIX}<id>/openspace"
            )
        };
        let (id, endpoint) = rest.split_once('/').ok_or_else(malformed)?;
        let id = id.parse::<u32>().map_err(|_| malformed())?;
        let endpoint = match endpoint {
            "signal" => {
                let role = query
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("role="));
                match role {
                    Some("owner") => RelayEndpoint::Signal(ViewerRole::Owner),
                    Some("spectator") => RelayEndpoint::Signal(ViewerRole::Spectator),
                    _ => return Err(malformed()),
                }
            }
            "openspace" => RelayEndpoint::OpenSpaceApi,
            _ => return Err(malformed()),
        };
        Ok(Some(RelayRoute { id, endpoint }))
    }

    /// The path and query that [`RelayRoute::parse`] reads back.
    pub fn path(&self) -> String {
        match self.endpoint {
            RelayEndpoint::Signal(role) => {
                format!("{PREFIX}{}/signal?role={}", self.id, role.as_str())
            }
            RelayEndpoint::OpenSpaceApi => format!("{PREFIX}{}/openspace", self.id),
        }
    }
}

/// The socket config for the relay's connection to `endpoint` (what the web role sends is
/// read under the supervisor port's own limit, [`crate::server::MAX_FRAME_BYTES`]).
pub fn ws_config(endpoint: RelayEndpoint) -> WebSocketConfig {
    let max = endpoint.max_message_bytes();
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// A close frame with `code` and `reason`, cut to fit (a close reason has room for 123
/// bytes).
pub fn close_frame(code: CloseCode, reason: &str) -> Message {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_string().into(),
    }))
}

/// Relays between the web role's `client` socket (over TCP, or TLS when the supervisor port
/// has it) and `target` (the `ws://` URL on loopback of the instance's `endpoint`, or why
/// there is none, which the web role is told in the close frame) until either side closes or
/// the supervisor shuts down.
pub async fn serve<T: AsyncRead + AsyncWrite + Unpin>(
    mut client: WebSocketStream<T>,
    endpoint: RelayEndpoint,
    target: Result<String, String>,
    shutdown: &mut Shutdown,
) {
    let target = match target {
        Ok(target) => target,
        Err(reason) => {
            debug!(%reason, "nothing to relay to");
            let _ = client.send(close_frame(CloseCode::Error, &reason)).await;
            return;
        }
    };
    let connect = tokio_tungstenite::connect_async_with_config(
        target.as_str(),
        Some(ws_config(endpoint)),
        true,
    );
    let mut instance = match timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok((instance, _))) => instance,
        Ok(Err(err)) => {
            debug!(%err, "cannot reach the instance");
            let reason = format!("the instance cannot be reached: {err}");
            let _ = client.send(close_frame(CloseCode::Error, &reason)).await;
            return;
        }
        Err(_) => {
            let _ = client
                .send(close_frame(CloseCode::Error, "the instance did not answer"))
                .await;
            return;
        }
    };
    let mut pings = interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut silent = 0;
    loop {
        tokio::select! {
            message = client.next() => {
                silent = 0;
                match message {
                    Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                        if instance.send(message).await.is_err() {
                            let _ = client.send(close_frame(CloseCode::Away, "instance gone")).await;
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        let _ = instance.close(None).await;
                        break;
                    }
                    Some(Ok(_)) => {}
                }
            }
            message = instance.next() => match message {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if client.send(message).await.is_err() {
                        let _ = instance.close(None).await;
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = client
                        .send(close_frame(CloseCode::Normal, "the instance closed the connection"))
                        .await;
                    break;
                }
                Some(Ok(_)) => {}
            },
            _ = pings.tick() => {
                silent += 1;
                if silent > SILENT_PINGS {
                    debug!("the web role stopped answering pings");
                    let _ = instance.close(None).await;
                    break;
                }
                if client.send(Message::Ping(Vec::new().into())).await.is_err() {
                    let _ = instance.close(None).await;
                    break;
                }
            }
            _ = shutdown.recv() => {
                let _ = instance.close(None).await;
                let _ = client.send(close_frame(CloseCode::Away, "supervisor shutting down")).await;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip_and_other_paths_are_the_protocol() {
        for route in [
            RelayRoute {
                id: 2,
                endpoint: RelayEndpoint::Signal(ViewerRole::Owner),
            },
            RelayRoute {
                id: 0,
                endpoint: RelayEndpoint::Signal(ViewerRole::Spectator),
            },
            RelayRoute {
                id: 7,
                endpoint: RelayEndpoint::OpenSpaceApi,
            },
        ] {
            let path = route.path();
            let (path, query) = match path.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (path.as_str(), None),
            };
            assert_eq!(RelayRoute::parse(path, query), Ok(Some(route)));
        }
        assert_eq!(RelayRoute::parse("/", None), Ok(None));
        assert_eq!(RelayRoute::parse("/anything", Some("token=x")), Ok(None));
        for (path, query) in [
            ("/instances/x/signal", Some("role=owner")),
            ("/instances/1/signal", None),
            ("/instances/1/signal", Some("role=admin")),
            ("/instances/1/shell", None),
            ("/instances/1", None),
        ] {
            assert!(RelayRoute::parse(path, query).is_err(), "{path} {query:?}");
        }
    }

    /// What the web role's end of a relay to `endpoint` receives first when the instance,
    /// which sends nothing else, sends one text message of `len` bytes.
    async fn first_relayed(endpoint: RelayEndpoint, len: usize) -> Message {
        use tokio_tungstenite::tungstenite::protocol::Role;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("ws://{}/", listener.local_addr().unwrap());
        let instance = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            let _ = ws.send(Message::text("x".repeat(len))).await;
            // Open until the relay ends.
            while let Some(Ok(_)) = ws.next().await {}
        });
        let (relay_end, web_end) = tokio::io::duplex(64 * 1024);
        let (notify, receiver) = tokio::sync::broadcast::channel(1);
        let relay = tokio::spawn(async move {
            let client = WebSocketStream::from_raw_socket(relay_end, Role::Server, None).await;
            serve(client, endpoint, Ok(target), &mut Shutdown::new(receiver)).await;
        });
        let config = WebSocketConfig::default().max_message_size(None);
        let mut web = WebSocketStream::from_raw_socket(web_end, Role::Client, Some(config)).await;
        let first = timeout(Duration::from_secs(30), web.next())
            .await
            .expect("a message in time")
            .expect("a message")
            .expect("websocket ok");
        drop(notify);
        drop(web);
        let _ = relay.await;
        instance.abort();
        first
    }

    #[tokio::test]
    async fn the_openspace_endpoint_relays_answers_larger_than_signalings_limit() {
        let len = MAX_SIGNAL_MESSAGE + 1024 * 1024;
        assert!(len < MAX_OPENSPACE_API_MESSAGE);
        match first_relayed(RelayEndpoint::OpenSpaceApi, len).await {
            Message::Text(text) => assert_eq!(text.len(), len),
            other => panic!("not the answer: {other:?}"),
        }
        // Signaling keeps its smaller bound: the relay ends instead.
        match first_relayed(RelayEndpoint::Signal(ViewerRole::Owner), len).await {
            Message::Close(Some(frame)) => assert_eq!(
                (frame.code, frame.reason.as_str()),
                (CloseCode::Normal, "the instance closed the connection")
            ),
            other => panic!("relayed: {other:?}"),
        }
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let Message::Close(Some(frame)) = close_frame(CloseCode::Error, &"é".repeat(100)) else {
            panic!("not a close frame");
        };
        assert!(frame.reason.len() <= 123);
    }
}
