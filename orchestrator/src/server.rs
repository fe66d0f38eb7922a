//! The supervisor protocol server: WebSocket plumbing only (the commands are in
//! [`crate::cmd`], the instances behind [`Supervisor`]).
//!
//! [`run`] accepts connections until `shutdown` resolves, serves each on its own task (many
//! clients at once; one request at a time per connection, replies in request order), then
//! tells every connection to close, waits until they have, and finally stops every instance.
//! A bad request gets an error reply and the connection stays open. Text frames over
//! [`MAX_REQUEST_BYTES`](crate::cmd::MAX_REQUEST_BYTES) get an error reply; frames over
//! [`MAX_FRAME_BYTES`] are not buffered at all: the WebSocket layer closes that connection
//! (code 1009), which affects no other client.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::time::{sleep, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::cmd::Command;
use crate::shutdown::Shutdown;
use crate::supervisor::Supervisor;

/// Connections served at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 256;
/// Largest WebSocket message or frame buffered at all.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Time a client gets to finish the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The accept loop's state.
struct Listener<S> {
    /// The bound socket (tests bind port 0).
    listener: TcpListener,
    /// What the commands run against.
    supervisor: Arc<S>,
    /// Caps concurrent connections at [`MAX_CONNECTIONS`]; a permit per connection.
    limit_connections: Arc<Semaphore>,
    /// Dropped to tell every connection to close.
    notify_shutdown: broadcast::Sender<()>,
    /// Cloned into each connection; `run` waits until every clone is dropped.
    shutdown_complete_tx: mpsc::Sender<()>,
}

/// One connection's state.
struct Handler<S> {
    /// The client's address, for logs.
    peer: SocketAddr,
    /// The WebSocket.
    ws: WebSocketStream<TcpStream>,
    /// What the commands run against.
    supervisor: Arc<S>,
    /// The server's shutdown notice.
    shutdown: Shutdown,
    /// Held so `run` can tell when this connection is gone.
    _shutdown_complete: mpsc::Sender<()>,
}

/// Serves the supervisor protocol on `listener` until `shutdown` resolves, then closes every
/// connection and stops every instance `supervisor` started.
pub async fn run<S: Supervisor>(listener: TcpListener, supervisor: S, shutdown: impl Future) {
    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel(1);
    let mut server = Listener {
        listener,
        supervisor: Arc::new(supervisor),
        limit_connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        notify_shutdown,
        shutdown_complete_tx,
    };
    tokio::select! {
        res = server.run() => {
            if let Err(err) = res {
                error!(%err, "cannot accept connections any more");
            }
        }
        _ = shutdown => info!("shutting down"),
    }
    let Listener {
        supervisor,
        notify_shutdown,
        shutdown_complete_tx,
        ..
    } = server;
    drop(notify_shutdown);
    drop(shutdown_complete_tx);
    let _ = shutdown_complete_rx.recv().await;
    supervisor.shutdown().await;
}

impl<S: Supervisor> Listener<S> {
    /// Accepts connections and spawns a task for each.
    async fn run(&mut self) -> std::io::Result<()> {
        loop {
            let permit = Arc::clone(&self.limit_connections)
                .acquire_owned()
                .await
                .map_err(std::io::Error::other)?;
            let (socket, peer) = self.accept().await?;
            let supervisor = Arc::clone(&self.supervisor);
            let mut shutdown = Shutdown::new(self.notify_shutdown.subscribe());
            let shutdown_complete = self.shutdown_complete_tx.clone();
            let task = async move {
                let handshake = timeout(
                    HANDSHAKE_TIMEOUT,
                    tokio_tungstenite::accept_async_with_config(socket, Some(ws_config())),
                );
                let ws = tokio::select! {
                    ws = handshake => match ws {
                        Ok(Ok(ws)) => ws,
                        Ok(Err(err)) => return debug!(%err, "WebSocket handshake failed"),
                        Err(_) => return debug!("WebSocket handshake timed out"),
                    },
                    _ = shutdown.recv() => return,
                };
                debug!("client connected");
                let mut handler = Handler {
                    peer,
                    ws,
                    supervisor,
                    shutdown,
                    _shutdown_complete: shutdown_complete,
                };
                if let Err(err) = handler.run().await {
                    debug!(%err, "connection ended with an error");
                }
                debug!("client disconnected");
                drop(permit);
            };
            tokio::spawn(task.instrument(info_span!("client", %peer)));
        }
    }

    /// Accepts one connection, retrying transient errors with backoff (1, 2, 4 … 64 s).
    async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let mut backoff = 1;
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return Ok(accepted),
                Err(err) => {
                    if backoff > 64 {
                        return Err(err);
                    }
                    warn!(%err, retry_in_s = backoff, "accept failed");
                }
            }
            sleep(Duration::from_secs(backoff)).await;
            backoff *= 2;
        }
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

impl<S: Supervisor> Handler<S> {
    /// Reads requests and writes replies until the client leaves or the server stops.
    async fn run(&mut self) -> Result<(), tungstenite::Error> {
        while !self.shutdown.is_shutdown() {
            let message = tokio::select! {
                message = self.ws.next() => message,
                _ = self.shutdown.recv() => break,
            };
            let command = match message {
                None => return Ok(()),
                Some(Err(err)) => return Err(err),
                Some(Ok(Message::Text(text))) => Command::from_text(text.as_str()),
                Some(Ok(Message::Binary(_))) => Command::binary(),
                Some(Ok(Message::Close(_))) => return Ok(()),
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => continue,
            };
            debug!(?command, "request");
            let reply = tokio::select! {
                reply = command.apply(&*self.supervisor) => reply,
                _ = self.shutdown.recv() => break,
            };
            if reply.error() != crate::cmd::NO_ERROR {
                debug!(peer = %self.peer, error = reply.error(), "request refused");
            }
            self.ws.send(Message::text(reply.to_json())).await?;
        }
        let close = CloseFrame {
            code: CloseCode::Away,
            reason: "supervisor shutting down".into(),
        };
        let _ = timeout(Duration::from_secs(1), self.ws.close(Some(close))).await;
        Ok(())
    }
}
