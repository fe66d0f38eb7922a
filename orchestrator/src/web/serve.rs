//! Serving the origin's HTTP/1.1 connections: the accept loop, a deadline for every request
//! head, the [`Peer`] on every request, and a graceful stop.
//!
//! axum's own `serve` gives hyper no timer, so hyper's header read timeout never fires there
//! and a client that never finishes its headers holds its connection forever. Here every
//! connection gets one: a request head must arrive within `header_timeout` of the connection
//! opening or of the previous answer, so the same deadline also closes idle kept-alive
//! connections. WebSocket upgrades leave this loop; their tasks close on the web role's own
//! shutdown signal.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::peer::Peer;

/// How long open HTTP connections get to finish their current request at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` turns true, then lets the connections finish
/// their current request. `tls` says whether `listener` hands out TLS connections.
pub async fn serve<L>(
    mut listener: L,
    tls: bool,
    app: Router,
    header_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    L: Listener<Addr = SocketAddr>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // Every connection task holds a clone; the channel closes when the last one ends.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let (io, address) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = super::stopped(&mut shutdown) => break,
        };
        let peer = Peer { address, tls };
        let app = app.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer);
            app.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut shutdown = shutdown.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _open = open;
            tokio::pin!(connection);
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(err) = ended {
                        // Header timeouts, resets and malformed requests: the client's doing.
                        debug!(%address, %err, "HTTP connection ended");
                    }
                }
                _ = super::stopped(&mut shutdown) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(open_tx);
    if timeout(DRAIN_TIMEOUT, open_rx.recv()).await.is_err() {
        warn!("some HTTP connections did not finish in time");
    }
}
