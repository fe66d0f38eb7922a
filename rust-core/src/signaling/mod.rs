//! The built-in signaling endpoint: one WebSocket server per streamer.
//!
//! [`serve`] runs the accept loop; each connection is handled by [`connection`], whose
//! permission logic (a connection's role, the control secret) is the pure state machine in
//! [`session`]. What a connection needs from the streamer is the [`Engine`] trait, so the
//! handler is tested with a double, without GStreamer.

mod connection;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use openspace_webrtc_protocol::ControlReply;
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
    /// Answers a control request other than `hello`.
    fn control(&self, request: &openspace_webrtc_protocol::ControlRequest) -> ControlReply;
    /// The control secret; empty disables control.
    fn control_secret(&self) -> &str;
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

/// Accepts connections until `shutdown` fires, then tells every connection to say bye and
/// waits for them to finish.
pub async fn serve<E: Engine>(
    listener: TcpListener,
    engine: Arc<E>,
    shutdown: broadcast::Sender<()>,
) {
    let mut stop = shutdown.subscribe();
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let engine = engine.clone();
                    let stop = shutdown.subscribe();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        connection::handle(stream, peer, engine, stop).await;
                        drop(done);
                    });
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stop.recv() => break,
        }
    }
    drop(done_tx);
    // Every connection holds a clone of `done_tx`; recv returns None once all have ended.
    let _ = done_rx.recv().await;
}
