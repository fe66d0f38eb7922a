//! The supervisor protocol client: how the web role talks to every supervisor, the one in its
//! own process included: there is no second path.
//!
//! A supervisor answers one request at a time per connection, in order, and `START`/`STOP`
//! take seconds, so the client keeps a small pool of idle connections and opens another when
//! all are busy. Replies are mapped back onto [`SupervisorError`] by their `error` string, so
//! a caller cannot tell a remote supervisor from a local one.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::debug;

use crate::secret::SupervisorSecret;
use crate::supervisor::{InstanceStatus, ServerStatus, StatusReport, Supervisor, SupervisorError};

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

/// Whether a request may be sent again when its connection broke after sending it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// `STATUS`, `SERVER_STATUS`: asking twice changes nothing.
    Idempotent,
    /// `START`, `STOP`, `RESOLUTION`: only retried when the request surely never left.
    OnlyIfUnsent,
}

/// Where a call failed.
enum CallError {
    /// Before the request was written: nothing happened on the supervisor.
    Unsent(String),
    /// After: the supervisor may have acted on it.
    Sent(String),
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
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|err| format!("bad supervisor URL {}: {err}", self.url))?;
        if let Some(secret) = &self.secret {
            let value = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
                .map_err(|err| format!("the supervisor secret is not a header value: {err}"))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        match timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(err)) => Err(format!("cannot connect to {}: {err}", self.url)),
            Err(_) => Err(format!(
                "cannot connect to {}: no answer within {CONNECT_TIMEOUT:?}",
                self.url
            )),
        }
    }

    /// Sends `request` and returns the reply object, whatever its `error`.
    async fn call(&self, request: Value, retry: Retry) -> Result<Value, SupervisorError> {
        let text = request.to_string();
        // A pooled connection may have been closed by the supervisor meanwhile; one fresh
        // attempt follows when that is safe.
        let pooled = self.take_idle();
        let reused = pooled.is_some();
        let socket = match pooled {
            Some(socket) => socket,
            None => self.connect().await.map_err(SupervisorError::Unreachable)?,
        };
        match self.exchange(socket, &text).await {
            Ok(reply) => Ok(reply),
            Err(CallError::Unsent(why)) | Err(CallError::Sent(why))
                if reused && retry == Retry::Idempotent =>
            {
                debug!(url = %self.url, %why, "pooled connection failed; retrying on a new one");
                self.retry(&text).await
            }
            Err(CallError::Unsent(why)) if reused => {
                debug!(url = %self.url, %why, "pooled connection failed before sending; retrying");
                self.retry(&text).await
            }
            Err(CallError::Unsent(why)) | Err(CallError::Sent(why)) => {
                Err(SupervisorError::Unreachable(why))
            }
        }
    }

    async fn retry(&self, text: &str) -> Result<Value, SupervisorError> {
        let socket = self.connect().await.map_err(SupervisorError::Unreachable)?;
        self.exchange(socket, text).await.map_err(|err| match err {
            CallError::Unsent(why) | CallError::Sent(why) => SupervisorError::Unreachable(why),
        })
    }

    async fn exchange(&self, mut socket: Socket, text: &str) -> Result<Value, CallError> {
        socket
            .send(Message::text(text.to_string()))
            .await
            .map_err(|err| CallError::Unsent(err.to_string()))?;
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
        .map_err(|_| CallError::Sent(format!("no reply within {REPLY_TIMEOUT:?}")))?
        .map_err(CallError::Sent)?;
        let value: Value = serde_json::from_str(reply.as_str())
            .map_err(|err| CallError::Sent(format!("reply is not JSON: {err}")))?;
        self.put_idle(socket);
        Ok(value)
    }
}

/// The reply's `error` as a [`SupervisorError`], or `Ok` for `"none"`.
pub fn reply_error(reply: &Value) -> Result<(), SupervisorError> {
    let Some(error) = reply.get("error").and_then(Value::as_str) else {
        return Err(SupervisorError::Unreachable(format!(
            "reply without an error field: {reply}"
        )));
    };
    Err(match error {
        "none" => return Ok(()),
        "no available slots" => SupervisorError::NoAvailableSlots,
        "not running" => SupervisorError::NotRunning,
        "invalid id" => SupervisorError::InvalidId,
        "shutting down" => SupervisorError::ShuttingDown,
        other => match (
            other.strip_prefix("launch failed: "),
            other.strip_prefix("control channel: "),
        ) {
            (Some(why), _) => SupervisorError::LaunchFailed(why.to_string()),
            (_, Some(why)) => SupervisorError::Control(why.to_string()),
            _ => SupervisorError::Control(other.to_string()),
        },
    })
}

fn field_u32(reply: &Value, name: &str) -> Result<u32, SupervisorError> {
    reply
        .get(name)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| SupervisorError::Unreachable(format!("reply lacks {name}: {reply}")))
}

/// `"RUNNING"` → [`InstanceStatus::Running`].
pub fn parse_status(text: &str) -> Option<InstanceStatus> {
    Some(match text {
        "IDLE" => InstanceStatus::Idle,
        "INITIALIZING" => InstanceStatus::Initializing,
        "RUNNING" => InstanceStatus::Running,
        "DEINITIALIZING" => InstanceStatus::Deinitializing,
        "INVALID" => InstanceStatus::Invalid,
        _ => return None,
    })
}

impl Supervisor for SupervisorClient {
    async fn start(&self) -> Result<u32, SupervisorError> {
        let reply = self
            .call(json!({"command": "START"}), Retry::OnlyIfUnsent)
            .await?;
        reply_error(&reply)?;
        field_u32(&reply, "id")
    }

    async fn stop(&self, id: u32) -> Result<(), SupervisorError> {
        let reply = self
            .call(json!({"command": "STOP", "id": id}), Retry::OnlyIfUnsent)
            .await?;
        reply_error(&reply)
    }

    async fn status(&self, id: u32) -> Result<StatusReport, SupervisorError> {
        let reply = self
            .call(json!({"command": "STATUS", "id": id}), Retry::Idempotent)
            .await?;
        reply_error(&reply)?;
        let status = reply
            .get("status")
            .and_then(Value::as_str)
            .and_then(parse_status)
            .ok_or_else(|| SupervisorError::Unreachable(format!("reply lacks status: {reply}")))?;
        Ok(StatusReport {
            status,
            last_exit: reply
                .get("lastExit")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    async fn resolution(&self, id: u32, width: u32, height: u32) -> Result<(), SupervisorError> {
        let request = json!({"command": "RESOLUTION", "id": id, "width": width, "height": height});
        let reply = self.call(request, Retry::OnlyIfUnsent).await?;
        reply_error(&reply)
    }

    async fn server_status(&self) -> Result<ServerStatus, SupervisorError> {
        let reply = self
            .call(json!({"command": "SERVER_STATUS"}), Retry::Idempotent)
            .await?;
        reply_error(&reply)?;
        let id = reply.get("id").and_then(Value::as_i64).unwrap_or(-1);
        Ok(ServerStatus {
            running: field_u32(&reply, "running")?,
            total: field_u32(&reply, "total")?,
            next_free: u32::try_from(id).ok(),
        })
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

    #[test]
    fn error_strings_map_back_onto_supervisor_errors() {
        let e = |s: &str| reply_error(&json!({"command": "START", "error": s, "id": -1}));
        assert_eq!(e("none"), Ok(()));
        assert_eq!(
            e("no available slots"),
            Err(SupervisorError::NoAvailableSlots)
        );
        assert_eq!(e("not running"), Err(SupervisorError::NotRunning));
        assert_eq!(e("invalid id"), Err(SupervisorError::InvalidId));
        assert_eq!(e("shutting down"), Err(SupervisorError::ShuttingDown));
        assert_eq!(
            e("launch failed: no such file"),
            Err(SupervisorError::LaunchFailed("no such file".into()))
        );
        assert_eq!(
            e("control channel: timeout"),
            Err(SupervisorError::Control("timeout".into()))
        );
        assert!(matches!(
            reply_error(&json!({"command": "START"})),
            Err(SupervisorError::Unreachable(_))
        ));
        // The Display round-trips: what the client returns prints as the supervisor wrote it.
        for err in [
            SupervisorError::NoAvailableSlots,
            SupervisorError::LaunchFailed("x".into()),
        ] {
            assert_eq!(
                reply_error(&json!({"error": err.to_string()})),
                Err(err.clone())
            );
        }
    }

    #[test]
    fn statuses_parse_as_spelled_on_the_wire() {
        assert_eq!(parse_status("RUNNING"), Some(InstanceStatus::Running));
        assert_eq!(parse_status("IDLE"), Some(InstanceStatus::Idle));
        assert_eq!(parse_status("running"), None);
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
