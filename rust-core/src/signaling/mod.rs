//! The built-in signaling endpoint: one WebSocket server per streamer.
//!
//! [`serve`] runs the accept loop ([`accept`]: a connection cap, a 503 beyond it); each
//! connection is handled by [`connection`] (which drops a client that does not finish the
//! WebSocket handshake in time), whose permission logic (a connection's role, the control
//! secret, join tickets) is the pure state machine of the protocol crate's
//! [`session`](openspace_webrtc_protocol::session), shared with the orchestrator's test double.
//! What a connection needs from the streamer is the [`Engine`] trait, so the handler is
//! tested with a double, without GStreamer.

mod accept;
mod connection;

use std::net::SocketAddr;
use std::sync::Arc;

use openspace_webrtc_protocol::tickets::TicketError;
use openspace_webrtc_protocol::{ControlReply, ViewerRole};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

use crate::pipeline::PeerMessage;

/// What signaling sessions need from the streamer.
pub trait Engine: Send + Sync + 'static {
    /// Becomes true once the host delivered its first frame (the pipeline exists).
    fn ready_watch(&self) -> watch::Receiver<bool>;
    /// A fresh viewer id.
    fn next_viewer_id(&self) -> u32;
    /// Creates the viewer's peer; its offer and candidates arrive on `outbox`.
    fn join(
        &self,
        viewer_id: u32,
        view_only: bool,
        outbox: mpsc::UnboundedSender<PeerMessage>,
    ) -> Result<(), String>;
    /// Applies a viewer's answer.
    fn answer(&self, viewer_id: u32, sdp: &str) -> Result<(), String>;
    /// Adds a viewer's candidate.
    fn ice(&self, viewer_id: u32, m_line: u32, candidate: &str) -> Result<(), String>;
    /// The viewer left: free its peer.
    fn leave(&self, viewer_id: u32);
    /// Uses a join ticket the control client had issued (`issueTicket`): its role, once.
    fn redeem_ticket(&self, ticket: &str) -> Result<ViewerRole, TicketError>;
    /// Answers a control request other than `hello`.
    fn control(&self, request: &openspace_webrtc_protocol::ControlRequest) -> ControlReply;
    /// The control secret; empty disables control.
    fn control_secret(&self) -> &str;
    /// The largest stream a viewer's resize gets (sent in the welcome).
    fn stream_limit(&self) -> openspace_webrtc_protocol::StreamLimit;
}

/// A signaling failure.
#[derive(Debug, thiserror::Error)]
pub enum SignalingError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds the endpoint. Done before anything else so a port clash fails `osw_streamer_new`.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, SignalingError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| SignalingError::Bind { address, source })
}

/// How many signaling connections may be open at once (viewers, control clients and
/// connections still in their handshake together). Beyond it a connection gets an HTTP 503:
/// each one costs a task and, for a viewer, a peer, so the count must have a bound.
pub const MAX_CONNECTIONS: usize = 64;

/// Accepts connections until `shutdown` fires, then tells every connection to say bye and
/// waits for them to finish. At most [`MAX_CONNECTIONS`] are served at once.
pub async fn serve<E: Engine>(
    listener: TcpListener,
    engine: Arc<E>,
    shutdown: broadcast::Sender<()>,
) {
    let stop = shutdown.subscribe();
    accept::accept_loop(listener, MAX_CONNECTIONS, stop, move |stream, peer| {
        // Subscribed at accept time, before the task starts, so no shutdown is missed.
        connection::handle(stream, peer, engine.clone(), shutdown.subscribe())
    })
    .await;
}
