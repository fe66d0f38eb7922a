//! The supervisor protocol server: WebSocket plumbing only (the commands are in
//! [`crate::cmd`], the instances behind [`Supervisor`]). An upgrade to an `/instances/…`
//! path is not the protocol but a relay to one instance's endpoint ([`crate::relay`]); the
//! same secret guards both.
//!
//! [`run`] accepts connections until `shutdown` resolves, serves each on its own task (many
//! clients at once; one request at a time per connection, replies in request order), then
//! tells every connection to close, waits until they have, and finally stops every instance.
//! A bad request gets an error reply and the connection stays open. Text frames over
//! [`MAX_REQUEST_BYTES`](crate::cmd::MAX_REQUEST_BYTES) get an error reply; frames over
//! [`MAX_FRAME_BYTES`] are not buffered at all: the WebSocket layer closes that connection
//! (code 1009), which affects no other client.
//!
//! Connection hygiene ([`ConnectionLimits`]): a client that does not finish the WebSocket
//! handshake within 5 s, or sends nothing for the idle timeout (120 s by default), is
//! disconnected, and up to 4096 connections are served at once, so a thousand clients that
//! connect and walk away (the seeds' backend leaves one open after every `STOP`) never keep
//! the next one waiting. The web role's own client drops pooled connections long before the
//! idle timeout, so the two never race.
//!
//! TLS ([`ServerSettings::tls`], `--supervisor-tls-cert`/`--supervisor-tls-key`): every
//! connection of the listener then starts with a TLS handshake, before the upgrade of either
//! kind (protocol or relay), so the secret and the relayed signaling never cross the network
//! in the clear. The handshake deadline covers the TLS handshake and the upgrade together: a
//! client that connects and never sends a ClientHello holds its connection slot no longer
//! than one that never sends its upgrade. [`run_with_loopback`] adds a plain listener on
//! loopback beside a TLS one, for the web role in the same process.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio::time::{Instant, sleep, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, http};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::cmd::Command;
use crate::relay::{self, RelayRoute};
use crate::secret::SupervisorSecret;
use crate::shutdown::Shutdown;
use crate::supervisor::Supervisor;
use crate::web::tls::ServerTls;

/// Largest WebSocket message or frame buffered at all.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Default for [`ConnectionLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How many connections are served and how long an idle one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the accept queue. Each costs a task and a
    /// file descriptor (`main` raises the process's descriptor limit to match).
    pub max_connections: usize,
    /// Time a client gets to finish the handshake: TLS (when the port has it) and the
    /// WebSocket upgrade together, counted from the accept.
    pub handshake_timeout: Duration,
    /// A connection that brings no request for this long is closed (code 1000, "idle").
    /// Never while a request is being served.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Everything about how the supervisor protocol is served, besides its address.
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    /// Connection hygiene.
    pub limits: ConnectionLimits,
    /// The secret every connection must present on its upgrade (`None`: anyone who reaches
    /// the port; the configuration allows that on loopback only).
    pub secret: Option<SupervisorSecret>,
    /// TLS on the listener (`wss://`); `None`: plain `ws://`.
    pub tls: Option<ServerTls>,
}

/// The accept loop's state.
struct Listener<S> {
    /// The bound socket (tests bind port 0).
    listener: TcpListener,
    /// TLS on `listener`.
    tls: Option<ServerTls>,
    /// A plain listener on loopback beside a TLS `listener`, for this process's web role.
    loopback: Option<TcpListener>,
    /// What the commands run against.
    supervisor: Arc<S>,
    /// Caps concurrent connections at `limits.max_connections`; a permit per connection.
    limit_connections: Arc<Semaphore>,
    /// Timeouts and the cap.
    limits: ConnectionLimits,
    /// What a client must present.
    secret: Option<Arc<SupervisorSecret>>,
    /// Dropped to tell every connection to close.
    notify_shutdown: broadcast::Sender<()>,
    /// Cloned into each connection; `run` waits until every clone is dropped.
    shutdown_complete_tx: mpsc::Sender<()>,
}

/// One connection's state.
struct Handler<S, T> {
    /// The client's address, for logs.
    peer: SocketAddr,
    /// The WebSocket, over TCP or TLS.
    ws: WebSocketStream<T>,
    /// What the commands run against.
    supervisor: Arc<S>,
    /// The server's shutdown notice.
    shutdown: Shutdown,
    /// Closed after this long without a request.
    idle_timeout: Duration,
    /// Held so `run` can tell when this connection is gone.
    _shutdown_complete: mpsc::Sender<()>,
}

/// Serves the supervisor protocol on `listener` until `shutdown` resolves, then closes every
/// connection and stops every instance `supervisor` started. Default [`ServerSettings`]: no
/// secret, default connection limits.
pub async fn run<S: Supervisor>(listener: TcpListener, supervisor: S, shutdown: impl Future) {
    run_with(listener, supervisor, ServerSettings::default(), shutdown).await;
}

/// [`run`] with other settings.
pub async fn run_with<S: Supervisor>(
    listener: TcpListener,
    supervisor: S,
    settings: ServerSettings,
    shutdown: impl Future,
) {
    serve(listener, None, supervisor, settings, shutdown).await;
}

/// [`run_with`], also serving `loopback`, a plain listener on a loopback address, beside a
/// `listener` with TLS: how the web role in the same process reaches its own supervisor
/// without TLS. Everything else (secret, limits, shutdown) is the same for both.
pub async fn run_with_loopback<S: Supervisor>(
    listener: TcpListener,
    loopback: TcpListener,
    supervisor: S,
    settings: ServerSettings,
    shutdown: impl Future,
) {
    serve(listener, Some(loopback), supervisor, settings, shutdown).await;
}

async fn serve<S: Supervisor>(
    listener: TcpListener,
    loopback: Option<TcpListener>,
    supervisor: S,
    settings: ServerSettings,
    shutdown: impl Future,
) {
    let limits = settings.limits;
    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel(1);
    let mut server = Listener {
        listener,
        tls: settings.tls,
        loopback,
        supervisor: Arc::new(supervisor),
        limit_connections: Arc::new(Semaphore::new(limits.max_connections)),
        limits,
        secret: settings.secret.map(Arc::new),
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
            // Either listener; only the main one has TLS.
            let (socket, peer, tls) = tokio::select! {
                accepted = accept(&self.listener) => {
                    let (socket, peer) = accepted?;
                    (socket, peer, self.tls.clone())
                }
                accepted = accept_optional(self.loopback.as_ref()) => {
                    let (socket, peer) = accepted?;
                    (socket, peer, None)
                }
            };
            let mut connection = Connection {
                peer,
                supervisor: Arc::clone(&self.supervisor),
                shutdown: Shutdown::new(self.notify_shutdown.subscribe()),
                shutdown_complete: self.shutdown_complete_tx.clone(),
                limits: self.limits,
                secret: self.secret.clone(),
                permit,
            };
            let task = async move {
                // The deadline starts at the accept and covers TLS and the upgrade alike.
                let deadline = Instant::now() + connection.limits.handshake_timeout;
                match tls {
                    None => connection.serve(socket, deadline).await,
                    Some(tls) => {
                        let stream = tokio::select! {
                            stream = timeout_at(deadline, tls.accept(socket)) => match stream {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(err)) => return debug!(%err, "TLS handshake failed"),
                                Err(_) => return debug!("TLS handshake timed out"),
                            },
                            _ = connection.shutdown.recv() => return,
                        };
                        connection.serve(stream, deadline).await;
                    }
                }
            };
            tokio::spawn(task.instrument(info_span!("client", %peer)));
        }
    }
}

/// Accepts one connection, retrying transient errors with backoff (1, 2, 4 … 64 s).
async fn accept(listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    let mut backoff = 1;
    loop {
        match listener.accept().await {
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

/// [`accept`] on `listener`, or never when there is none.
async fn accept_optional(
    listener: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => accept(listener).await,
        None => std::future::pending().await,
    }
}

/// One accepted connection, before its handshake.
struct Connection<S> {
    /// The client's address, for logs.
    peer: SocketAddr,
    /// What the commands run against.
    supervisor: Arc<S>,
    /// The server's shutdown notice.
    shutdown: Shutdown,
    /// Held so `run` can tell when this connection is gone.
    shutdown_complete: mpsc::Sender<()>,
    /// Timeouts.
    limits: ConnectionLimits,
    /// What the client must present.
    secret: Option<Arc<SupervisorSecret>>,
    /// This connection's slot among [`ConnectionLimits::max_connections`]; freed when the
    /// connection is dropped, however it ends.
    permit: OwnedSemaphorePermit,
}

impl<S: Supervisor> Connection<S> {
    /// The WebSocket upgrade on `stream` (TCP, or TLS already through its handshake) by
    /// `deadline`, then the protocol or a relay until either side ends.
    async fn serve<T>(self, stream: T, deadline: Instant)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            peer,
            supervisor,
            mut shutdown,
            shutdown_complete,
            limits,
            secret,
            permit,
        } = self;
        // What the upgrade asked for: the protocol, or a relay to an instance.
        let mut route = None;
        // The callback's type is tungstenite's, large error response included.
        #[allow(clippy::result_large_err)]
        let check = |request: &Request, response: Response| {
            if let Some(secret) = &secret
                && !presents(secret, request)
            {
                return Err(refusal());
            }
            let uri = request.uri();
            match RelayRoute::parse(uri.path(), uri.query()) {
                Ok(parsed) => {
                    route = parsed;
                    Ok(response)
                }
                Err(reason) => Err(not_found(reason)),
            }
        };
        let handshake = timeout_at(
            deadline,
            tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config())),
        );
        let ws = tokio::select! {
            ws = handshake => match ws {
                Ok(Ok(ws)) => ws,
                Ok(Err(err)) => return debug!(%err, "WebSocket handshake failed"),
                Err(_) => return debug!("WebSocket handshake timed out"),
            },
            _ = shutdown.recv() => return,
        };
        if let Some(route) = route {
            debug!(?route, "relay connected");
            let target = supervisor
                .relay_target(route.id, route.endpoint)
                .await
                .map_err(|err| err.to_string());
            relay::serve(ws, route.endpoint, target, &mut shutdown).await;
            debug!(?route, "relay closed");
            drop(shutdown_complete);
            drop(permit);
            return;
        }
        debug!("client connected");
        let mut handler = Handler {
            peer,
            ws,
            supervisor,
            shutdown,
            idle_timeout: limits.idle_timeout,
            _shutdown_complete: shutdown_complete,
        };
        if let Err(err) = handler.run().await {
            debug!(%err, "connection ended with an error");
        }
        debug!("client disconnected");
        drop(permit);
    }
}

/// Whether the upgrade `request` presents `secret` (header or query, see [`SupervisorSecret`]).
fn presents(secret: &SupervisorSecret, request: &Request) -> bool {
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let admitted = secret.admits(authorization, request.uri().query());
    if !admitted {
        warn!("supervisor connection refused: missing or wrong secret");
    }
    admitted
}

/// 401 before the upgrade: the client learns nothing but that it needs the secret.
fn refusal() -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(
        "this supervisor needs its secret: Authorization: Bearer <secret>, or ?token=<secret>"
            .to_string(),
    ));
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response
}

/// 404 before the upgrade, for a relay path that names nothing.
fn not_found(reason: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason));
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response
}

/// Raises this process's soft limit of open file descriptors to its hard limit, so that
/// [`ConnectionLimits::max_connections`] (and the web origin's connections, and the instances'
/// pipes) are not cut short at the usual soft limit of 1024. Returns the limit now in force.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through the pointer, which points at a live,
    // properly aligned local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the `rlimit` behind the pointer, a live local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

impl<S: Supervisor, T: AsyncRead + AsyncWrite + Unpin> Handler<S, T> {
    /// Reads requests and writes replies until the client leaves or the server stops.
    async fn run(&mut self) -> Result<(), tungstenite::Error> {
        let mut closing = CloseFrame {
            code: CloseCode::Away,
            reason: "supervisor shutting down".into(),
        };
        while !self.shutdown.is_shutdown() {
            let message = tokio::select! {
                message = timeout(self.idle_timeout, self.ws.next()) => match message {
                    Ok(message) => message,
                    Err(_) => {
                        debug!(peer = %self.peer, after = ?self.idle_timeout, "closing an idle connection");
                        closing = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "idle".into(),
                        };
                        break;
                    }
                },
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
        let _ = timeout(Duration::from_secs(1), self.ws.close(Some(closing))).await;
        Ok(())
    }
}
