//! The supervisor protocol client: how the web role talks to every supervisor, the one in its
//! own process included: there is no second path.
//!
//! A supervisor answers one request at a time per connection, in order, and `START`/`STOP`
//! take seconds, so the client keeps a small pool of idle connections and opens another when
//! all are busy. Requests and replies are the server's own types ([`crate::cmd`]), and a
//! reply's `error` becomes the [`SupervisorError`] that printed it, so a caller cannot tell a
//! remote supervisor from a local one.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::debug;

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

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client of one supervisor (`ws://host:port/`).
pub struct SupervisorClient {
    /// The supervisor's WebSocket URL.
    url: String,
    /// Connections that answered their last request and wait for the next one, with the
    /// time each was put back.
    idle: Mutex<Vec<(Socket, Instant)>>,
    /// Presented as `Authorization: Bearer` on every connection, when the supervisor needs it.
    secret: Option<SupervisorSecret>,
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
    /// A client of the supervisor at `host:port`, presenting `secret` if given. Connects
    /// lazily.
    pub fn new(host: &str, port: u16, secret: Option<SupervisorSecret>) -> SupervisorClient {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]") // an IPv6 literal
        } else {
            host.to_string()
        };
        SupervisorClient {
            url: format!("ws://{host}:{port}/"),
            idle: Mutex::new(Vec::new()),
            secret,
        }
    }

    /// The supervisor's URL, for logs.
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
        let request = SupervisorSecret::client_request(self.secret.as_ref(), &self.url)?;
        match timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(err)) => Err(format!("cannot connect to {}: {err}", self.url)),
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
}
