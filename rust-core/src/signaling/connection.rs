//! One WebSocket connection: plumbing between the socket, the [`Session`] rules and the
//! [`Engine`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openspace_webrtc_protocol::session::{Admission, Decision, Role, Session};
use openspace_webrtc_protocol::{
    ControlReply, PROTOCOL_VERSION, ViewerReply, ViewerRequest, ticket_in_query,
};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::Engine;
use crate::pipeline::PeerMessage;

/// Transport-level frame limit. Larger than the protocol's own limit so that an oversized
/// message reaches `Session` and gets an error reply instead of a dropped connection.
const TRANSPORT_MAX_BYTES: usize = 1024 * 1024;

/// How long a client has to complete the WebSocket upgrade. A connection holds one of the
/// endpoint's connection slots from the moment it is accepted, so without this a client that
/// opens TCP and never speaks would keep its slot forever.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) type Socket = WebSocketStream<TcpStream>;

async fn send_json(socket: &mut Socket, value: &impl serde::Serialize) -> bool {
    match serde_json::to_string(value) {
        Ok(text) => socket.send(Message::text(text)).await.is_ok(),
        Err(_) => false,
    }
}

/// Waits until the stream is ready. The borrow `wait_for` returns is dropped here: it is not
/// `Send` and must not live across the handler's awaits.
async fn wait_ready(ready: &mut tokio::sync::watch::Receiver<bool>) -> Result<(), ()> {
    ready
        .wait_for(|ready| *ready)
        .await
        .map(|_| ())
        .map_err(|_| ())
}

/// Per-connection viewer state kept by the handler.
struct Viewer {
    id: u32,
    view_only: bool,
    /// The peer exists (join completed).
    attached: bool,
}

/// Upgrades a fresh TCP connection to a WebSocket, or gives up after `timeout` (the socket
/// is then dropped, which closes it). Failures are the client's business, logged at debug.
/// Returns the socket and the join ticket of the request's URL (`?ticket=`), if any.
pub(super) async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<(Socket, Option<String>)> {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(TRANSPORT_MAX_BYTES))
        .max_frame_size(Some(TRANSPORT_MAX_BYTES));
    let mut ticket = None;
    // The callback's type is tungstenite's, large error response included.
    #[allow(clippy::result_large_err)]
    let read_ticket = |request: &Request, response: Response| {
        ticket = ticket_in_query(request.uri().query()).map(str::to_string);
        Ok(response)
    };
    let upgrade =
        tokio_tungstenite::accept_hdr_async_with_config(stream, read_ticket, Some(config));
    match tokio::time::timeout(timeout, upgrade).await {
        Ok(Ok(socket)) => Some((socket, ticket)),
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "WebSocket handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, ?timeout, "WebSocket handshake timed out");
            None
        }
    }
}

/// Serves one connection until it closes or the streamer shuts down.
pub(super) async fn handle<E: Engine>(
    stream: TcpStream,
    peer: SocketAddr,
    engine: Arc<E>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let Some((mut socket, ticket)) = handshake(stream, peer, HANDSHAKE_TIMEOUT).await else {
        return;
    };
    tracing::debug!(%peer, ticket = ticket.is_some(), "signaling connection");
    // The ticket is used when the connection opens, so it is good for this connection only.
    let managed = !engine.control_secret().is_empty();
    // An unmanaged streamer admits everyone: a ticket it was shown is not looked up.
    let redeemed = ticket
        .filter(|_| managed)
        .map(|ticket| engine.redeem_ticket(&ticket));
    if let Some(Err(err)) = &redeemed {
        tracing::warn!(%peer, %err, "join ticket refused");
    }
    let mut session = Session::new(engine.control_secret(), Admission::new(managed, redeemed));
    let mut ready = engine.ready_watch();
    let (outbox, mut inbox) = mpsc::unbounded_channel::<PeerMessage>();
    let mut viewer: Option<Viewer> = None;

    loop {
        let waiting_for_ready = viewer.as_ref().is_some_and(|v| !v.attached);
        tokio::select! {
            incoming = socket.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let reply = ViewerReply::Error { message: "binary messages are not supported; send JSON text".into(), fatal: false };
                        if !send_json(&mut socket, &reply).await { break; }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                match session.on_text(text.as_str()) {
                    Decision::ReplyViewer(reply) => {
                        let fatal = matches!(reply, ViewerReply::Error { fatal: true, .. });
                        if !send_json(&mut socket, &reply).await || fatal { break; }
                    }
                    Decision::ReplyControl(reply) => {
                        if !send_json(&mut socket, &reply).await { break; }
                    }
                    Decision::Control(request) => {
                        let reply = engine.control(&request);
                        if !send_json(&mut socket, &reply).await { break; }
                    }
                    Decision::Viewer(ViewerRequest::Join { view_only }) => {
                        let id = engine.next_viewer_id();
                        viewer = Some(Viewer { id, view_only, attached: false });
                        let welcome = ViewerReply::Welcome { viewer_id: id, protocol: PROTOCOL_VERSION, limit: engine.stream_limit() };
                        if !send_json(&mut socket, &welcome).await { break; }
                        // The peer is created once the stream is ready (next loop turn).
                    }
                    Decision::Viewer(ViewerRequest::Answer { sdp }) => {
                        let result = match &viewer {
                            Some(v) if v.attached => engine.answer(v.id, &sdp),
                            _ => Err("no offer was sent yet".to_string()),
                        };
                        if let Err(message) = result
                            && !send_json(&mut socket, &ViewerReply::Error { message, fatal: false }).await
                        {
                            break;
                        }
                    }
                    Decision::Viewer(ViewerRequest::Ice { candidate, sdp_m_line_index }) => {
                        let result = match &viewer {
                            Some(v) if v.attached => engine.ice(v.id, sdp_m_line_index, &candidate),
                            _ => Err("no offer was sent yet".to_string()),
                        };
                        if let Err(message) = result
                            && !send_json(&mut socket, &ViewerReply::Error { message, fatal: false }).await
                        {
                            break;
                        }
                    }
                    Decision::Viewer(ViewerRequest::Bye) => break,
                }
            }
            changed = wait_ready(&mut ready), if waiting_for_ready => {
                if changed.is_err() { break; }
                let Some(v) = viewer.as_mut() else { continue };
                match engine.join(v.id, v.view_only, outbox.clone()) {
                    Ok(()) => v.attached = true,
                    Err(message) => {
                        let _ = send_json(&mut socket, &ViewerReply::Error { message, fatal: true }).await;
                        viewer = None;
                        break;
                    }
                }
            }
            Some(message) = inbox.recv() => {
                let reply = match message {
                    PeerMessage::Offer(sdp) => ViewerReply::Offer { sdp },
                    PeerMessage::Ice { m_line, candidate } => ViewerReply::Ice { candidate, sdp_m_line_index: m_line },
                    PeerMessage::Error(message) => ViewerReply::Error { message, fatal: false },
                    PeerMessage::Failed(message) => {
                        let _ = send_json(&mut socket, &ViewerReply::Error { message, fatal: true }).await;
                        break;
                    }
                };
                if !send_json(&mut socket, &reply).await { break; }
            }
            _ = shutdown.recv() => {
                if viewer.is_some() {
                    let _ = send_json(&mut socket, &ViewerReply::Bye { reason: "the streamer is shutting down".into() }).await;
                } else if matches!(session.role(), Role::Control { .. }) {
                    let _ = send_json(&mut socket, &ControlReply::Error { message: "the streamer is shutting down".into() }).await;
                }
                break;
            }
        }
    }
    if let Some(v) = viewer.filter(|v| v.attached) {
        engine.leave(v.id);
    }
    let _ = socket.close(None).await;
    tracing::debug!(%peer, "signaling connection closed");
}
