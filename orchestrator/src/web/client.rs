//! The supervisor protocol client: how the web role talks to every supervisor, the one in its
//! own process included: there is no second path.
//!
//! A supervisor answers one request at a time per connection, in order, and `START`/`STOP`
//! take seconds, so the client keeps a small pool of idle connections and opens another when
//! all are busy. Requests and replies are the server's own types ([`crate::cmd`]), and a
//! reply's `error` becomes the [`SupervisorError`] that printed it, so a caller cannot tell a
//! remote supervisor from a local one.
//!
//! Every supervisor connection of the web role, this client's and the instance relays'
//! ([`super::relay::connect`]), is opened by [`SupervisorAccess::connect`]: the secret on the
//! upgrade, and for a `wss://` supervisor the one TLS configuration ([`ClientTls`]) built for
//! the whole web role.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::debug;

use super::tls::{self, ClientTls, TlsError};
use crate::cmd::{self, NO_ERROR, Reply, Request, Resolution, Start, Status, Stop};
use crate::secret::SupervisorSecret;
use crate::supervisor::{ServerStatus, StatusReport, Supervisor, SupervisorError};

/// Idle connections kept per supervisor.
const MAX_IDLE: usize = 4;
/// A pooled connection idle for longer is dropped rather than reused: well inside the
/// supervisor's idle timeout (120 s by default), so a request never meets its idle close.
const POOL_MAX_IDLE: Duration = Duration::from_secs(30);
/// Time to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one reply. `START` waits for Xvfb and the process, `STOP` for the stop timeout
/// (SIGTERM, then SIGKILL), `RESOLUTION` for frames of the new size.
const REPLY_TIMEOUT: Duration = Duration::from_secs(40);

/// A WebSocket to a supervisor, plain or TLS.
pub type Socket = tls::ClientSocket;

/// The base URL of the supervisor at `host:port`: `wss://` when it speaks TLS, else `ws://`;
/// an IPv6 literal gets its brackets.
pub fn supervisor_url(host: &str, port: u16, tls: bool) -> String {
    let scheme = if tls { "wss" } else { "ws" };
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

/// Why a supervisor connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL or the secret's header could not be made into a request.
    #[error("{0}")]
    Request(String),
    /// A `wss://` URL, but no TLS client configuration could be built.
    #[error("cannot connect to {url}: {source}")]
    Tls {
        /// The supervisor.
        url: String,
        /// Why.
        source: TlsError,
    },
    /// Refused, reset, a failed TLS handshake (an untrusted certificate, a plain server), or
    /// no WebSocket upgrade (a wrong secret: 401).
    #[error("cannot connect to {url}: {source}")]
    WebSocket {
        /// The supervisor.
        url: String,
        /// tungstenite's error, which names the TLS failure.
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
}

impl ConnectError {
    /// What went wrong, without the URL (for messages that name it already).
    pub fn reason(&self) -> String {
        match self {
            ConnectError::Request(reason) => reason.clone(),
            ConnectError::Tls { source, .. } => source.to_string(),
            ConnectError::WebSocket { source, .. } => source.to_string(),
        }
    }
}

/// How the web role reaches supervisors: the secret every connection presents, and what a
/// `wss://` supervisor's certificate is checked against. Cloned freely (one shared state).
#[derive(Clone)]
pub struct SupervisorAccess {
    inner: Arc<Access>,
}

struct Access {
    /// Presented as `Authorization: Bearer` on every connection, when supervisors need it.
    secret: Option<SupervisorSecret>,
    /// `--supervisor-ca`: the only certificates trusted; the system's roots when `None`.
    ca: Option<PathBuf>,
    /// Built at the first `wss://` connection (or by [`SupervisorAccess::trust`] at start),
    /// then shared: a web role with only `ws://` supervisors never reads a trust store.
    tls: OnceLock<Result<ClientTls, TlsError>>,
}

impl std::fmt::Debug for SupervisorAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorAccess")
            .field("secret", &self.inner.secret)
            .field("ca", &self.inner.ca)
            .finish_non_exhaustive()
    }
}

impl SupervisorAccess {
    /// Presenting `secret`, trusting the PEM bundle `ca` (else the system's roots) on
    /// `wss://`. Reads nothing yet.
    pub fn new(secret: Option<SupervisorSecret>, ca: Option<PathBuf>) -> SupervisorAccess {
        SupervisorAccess {
            inner: Arc::new(Access {
                secret,
                ca,
                tls: OnceLock::new(),
            }),
        }
    }

    /// The secret presented.
    pub fn secret(&self) -> Option<&SupervisorSecret> {
        self.inner.secret.as_ref()
    }

    /// The TLS client configuration, built on first use. The web role calls it at start when
    /// `--supervisor-ca` is given, so a bad bundle stops the start instead of every launch.
    pub fn trust(&self) -> Result<&ClientTls, TlsError> {
        self.inner
            .tls
            .get_or_init(|| ClientTls::new(self.inner.ca.as_deref()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Opens a WebSocket to `url` (`ws://` or `wss://`) presenting the secret; `config`
    /// bounds what is read from it. No deadline of its own: callers have theirs.
    pub async fn connect(
        &self,
        url: &str,
        config: Option<WebSocketConfig>,
    ) -> Result<Socket, ConnectError> {
        let request =
            SupervisorSecret::client_request(self.secret(), url).map_err(ConnectError::Request)?;
        // The trust is built (or its failure reported) only for a `wss://` URL.
        let tls = if request.uri().scheme_str() == Some("wss") {
            Some(self.trust().map_err(|source| ConnectError::Tls {
                url: url.to_string(),
                source,
            })?)
        } else {
            None
        };
        tls::connect_websocket(request, config, tls)
            .await
            .map_err(|source| ConnectError::WebSocket {
                url: url.to_string(),
                source: Box::new(source),
            })
    }
}

/// A client of one supervisor (`ws://host:port/` or `wss://host:port/`).
pub struct SupervisorClient {
    /// The supervisor's WebSocket URL.
    url: String,
    /// Connections that answered their last request and wait for the next one, with the
    /// time each was put back.
    idle: Mutex<Vec<(Socket, Instant)>>,
    /// The secret presented and the TLS trusted.
    access: SupervisorAccess,
}

impl std::fmt::Debug for SupervisorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a call failed.
struct CallError {
    /// Whether the request was written: if so, the supervisor may have acted on it.
    sent: bool,
    /// What went wrong.
    why: String,
}

impl SupervisorClient {
    /// A client of the plain (`ws://`) supervisor at `host:port`, presenting `secret` if
    /// given. Connects lazily.
    pub fn new(host: &str, port: u16, secret: Option<SupervisorSecret>) -> SupervisorClient {
        SupervisorClient::with_access(host, port, false, SupervisorAccess::new(secret, None))
    }

    /// A client of the supervisor at `host:port`, over `wss://` when `tls`, reaching it with
    /// `access`. Connects lazily.
    pub fn with_access(
        host: &str,
        port: u16,
        tls: bool,
        access: SupervisorAccess,
    ) -> SupervisorClient {
        SupervisorClient {
            url: format!("{}/", supervisor_url(host, port, tls)),
            idle: Mutex::new(Vec::new()),
            access,
        }
    }

    /// The supervisor's URL, `ws(s)://host:port/` (see [`supervisor_url`]): for logs, and
    /// the base of its relays' URLs.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The most recently used pooled connection that is still fresh and has not been closed
    /// by the supervisor (a close that already arrived is seen without waiting).
    fn take_idle(&self) -> Option<Socket> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some((mut socket, since)) = idle.pop() {
            if since.elapsed() > POOL_MAX_IDLE {
                continue;
            }
            match socket.next().now_or_never() {
                // Nothing waiting: the connection is open and quiet, as it should be.
                None => return Some(socket),
                // A close, an error or a message nobody asked for: not reusable.
                Some(_) => continue,
            }
        }
        None
    }

    fn put_idle(&self, socket: Socket) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((socket, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Socket, String> {
        // The deadline covers TCP, TLS and the upgrade alike.
        match timeout(CONNECT_TIMEOUT, self.access.connect(&self.url, None)).await {
            Ok(Ok(socket)) => Ok(socket),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!(
                "cannot connect to {}: no answer within {CONNECT_TIMEOUT:?}",
                self.url
            )),
        }
    }

    /// Sends `request` and returns its reply, or the error the reply names.
    async fn call(&self, request: Request) -> Result<Reply, SupervisorError> {
        let text = serde_json::to_string(&request).map_err(|err| {
            SupervisorError::Unreachable(format!("cannot encode a request: {err}"))
        })?;
        // Asking twice for a status changes nothing; `START`, `STOP` and `RESOLUTION` are only
        // sent again when they surely never left.
        let idempotent = matches!(request, Request::Status(_) | Request::ServerStatus(_));
        // A pooled connection may have been closed by the supervisor meanwhile; one fresh
        // attempt follows when that is safe.
        let pooled = self.take_idle();
        let reused = pooled.is_some();
        let socket = match pooled {
            Some(socket) => socket,
            None => self.connect().await.map_err(SupervisorError::Unreachable)?,
        };
        let reply = match self.exchange(socket, &text).await {
            Ok(reply) => reply,
            Err(CallError { sent, why }) if reused && (idempotent || !sent) => {
                debug!(url = %self.url, %why, sent, "pooled connection failed; retrying");
                let socket = self.connect().await.map_err(SupervisorError::Unreachable)?;
                self.exchange(socket, &text)
                    .await
                    .map_err(|err| SupervisorError::Unreachable(err.why))?
            }
            Err(CallError { why, .. }) => return Err(SupervisorError::Unreachable(why)),
        };
        match reply.error() {
            NO_ERROR => Ok(reply),
            error => Err(SupervisorError::from_wire(error)),
        }
    }

    async fn exchange(&self, mut socket: Socket, text: &str) -> Result<Reply, CallError> {
        if let Err(err) = socket.send(Message::text(text.to_string())).await {
            let why = err.to_string();
            return Err(CallError { sent: false, why });
        }
        let reply = timeout(REPLY_TIMEOUT, async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(reply))) => return Ok(reply),
                    Some(Ok(Message::Close(_))) | None => {
                        return Err("the supervisor closed the connection".to_string());
                    }
                    Some(Err(err)) => return Err(err.to_string()),
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("no reply within {REPLY_TIMEOUT:?}")))
        .and_then(|reply| {
            serde_json::from_str(reply.as_str())
                .map_err(|err| format!("not a protocol reply: {err}"))
        })
        .map_err(|why| CallError { sent: true, why })?;
        self.put_idle(socket);
        Ok(reply)
    }
}

/// A reply to another command, or out of its shape. Its ids go to the log, never to callers.
fn unexpected(reply: &Reply) -> SupervisorError {
    debug!(reply = %reply.to_json(), "reply does not answer the request");
    SupervisorError::Unreachable("the reply does not answer the request".into())
}

impl Supervisor for SupervisorClient {
    async fn start(&self) -> Result<u32, SupervisorError> {
        match self.call(Request::Start(Start)).await? {
            Reply::Start(reply) => u32::try_from(reply.id)
                .map_err(|_| SupervisorError::Unreachable("START gave a negative id".into())),
            other => Err(unexpected(&other)),
        }
    }

    async fn stop(&self, id: u32) -> Result<(), SupervisorError> {
        match self.call(Request::Stop(Stop { id: id.into() })).await? {
            Reply::Stop(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn status(&self, id: u32) -> Result<StatusReport, SupervisorError> {
        match self.call(Request::Status(Status { id: id.into() })).await? {
            Reply::Status(reply) => Ok(StatusReport {
                status: reply.status,
                last_exit: reply.last_exit,
            }),
            other => Err(unexpected(&other)),
        }
    }

    async fn resolution(&self, id: u32, width: u32, height: u32) -> Result<(), SupervisorError> {
        let request = Request::Resolution(Resolution {
            id: id.into(),
            width,
            height,
        });
        match self.call(request).await? {
            Reply::Resolution(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn server_status(&self) -> Result<ServerStatus, SupervisorError> {
        match self.call(Request::ServerStatus(cmd::ServerStatus)).await? {
            Reply::ServerStatus(reply) => Ok(ServerStatus {
                running: reply.running,
                total: reply.total,
                next_free: u32::try_from(reply.id).ok(),
            }),
            other => Err(unexpected(&other)),
        }
    }

    async fn shutdown(&self) {
        // Not ours to stop: dropping the idle connections is all.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_support::Scripted;
    use crate::cmd::{Command, StatusReply};
    use crate::supervisor::InstanceStatus::{self, *};

    /// The client's requests are what the server parses, and every reply the server can
    /// produce reads back in the client as the same value, byte for byte, with the error that
    /// made it.
    #[tokio::test]
    async fn requests_and_every_reply_round_trip() {
        let requests = [
            Request::Start(Start),
            Request::Stop(Stop { id: 1 }),
            Request::Status(Status { id: 1 }),
            Request::Resolution(Resolution {
                id: 1,
                width: 1920,
                height: 1080,
            }),
            Request::ServerStatus(cmd::ServerStatus),
        ];
        let commands = requests.map(|request| {
            let command = Command::from_text(&serde_json::to_string(&request).unwrap());
            assert_eq!(command, Command::Request(request));
            command
        });
        let mut replies = vec![(
            Reply::Status(StatusReply {
                error: NO_ERROR.into(),
                id: 0,
                status: InstanceStatus::Idle,
                last_exit: Some("exited with status 1: boom".into()),
            }),
            None,
        )];
        // Every command in every slot status (successes, "not running", "no available slots"),
        // with an id out of range, then failing with every error.
        for status in [Idle, Initializing, Running, Deinitializing] {
            for slots in [vec![Running, status], vec![status]] {
                for command in &commands {
                    let reply = command.clone().apply(&Scripted::new(&slots)).await;
                    replies.push((reply, None));
                }
            }
        }
        let why = || "no such file: 'a: b'".to_string();
        for err in [
            SupervisorError::NoAvailableSlots,
            SupervisorError::NotRunning,
            SupervisorError::InvalidId,
            SupervisorError::ShuttingDown,
            SupervisorError::LaunchFailed(why()),
            SupervisorError::Control(why()),
            SupervisorError::Unreachable(why()),
        ] {
            for command in &commands {
                let sup = Scripted::new(&[Running, Running]);
                *sup.fail.lock().unwrap() = Some(err.clone());
                replies.push((command.clone().apply(&sup).await, Some(err.clone())));
            }
        }
        // Refused requests, in their command's shape or the unknown reply's.
        for text in [
            r#"{"command":"STOP"}"#,
            r#"{"command":"STATUS","id":"0"}"#,
            r#"{"command":"RESOLUTION","id":0,"width":0,"height":720}"#,
            r#"{"command":"DANCE"}"#,
            "not json",
        ] {
            replies.push((
                Command::from_text(text).apply(&Scripted::new(&[])).await,
                None,
            ));
        }
        for (reply, fail) in replies {
            let text = reply.to_json();
            let read: Reply = serde_json::from_str(&text).unwrap();
            assert_eq!(read, reply, "{text}");
            assert_eq!(read.to_json(), text);
            let error =
                (read.error() != NO_ERROR).then(|| SupervisorError::from_wire(read.error()));
            if let Some(fail) = fail {
                assert_eq!(error, Some(fail), "{text}");
            }
        }
        // A reply out of its command's shape reads as the unknown reply, which no call accepts.
        let garbled = r#"{"command":"STATUS","error":"none","id":0,"status":"running"}"#;
        assert!(matches!(
            serde_json::from_str(garbled),
            Ok(Reply::Unknown(_))
        ));
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        assert_eq!(
            SupervisorClient::new("::1", 4699, None).url(),
            "ws://[::1]:4699/"
        );
        assert_eq!(
            SupervisorClient::new("127.0.0.1", 4699, None).url(),
            "ws://127.0.0.1:4699/"
        );
    }

    #[test]
    fn tls_supervisors_are_reached_over_wss() {
        let access = SupervisorAccess::new(None, None);
        let client = SupervisorClient::with_access("render-1", 4699, true, access.clone());
        assert_eq!(client.url(), "wss://render-1:4699/");
        assert_eq!(supervisor_url("::1", 4699, true), "wss://[::1]:4699");
        assert_eq!(
            supervisor_url("10.0.1.11", 4699, false),
            "ws://10.0.1.11:4699"
        );
    }

    /// A bundle that cannot be used is an error of the trust, every time it is asked for
    /// (it is built once), and a connection to a `wss://` supervisor says so without trying.
    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn an_unusable_ca_bundle_is_refused_before_any_connection() {
        let dir = std::env::temp_dir().join(format!("osw-client-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for ca in [dir.join("missing.pem"), empty] {
            let access = SupervisorAccess::new(None, Some(ca.clone()));
            let err = access.trust().unwrap_err().to_string();
            assert!(err.contains(&ca.display().to_string()), "{err}");
            assert!(access.trust().is_err());
            let err = access
                .connect("wss://127.0.0.1:1/", None)
                .await
                .unwrap_err();
            assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
