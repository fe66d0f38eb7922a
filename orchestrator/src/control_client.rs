//! Client of rust-core's control channel: the orchestrator's only way into an instance.
//!
//! Each instance serves one WebSocket endpoint on loopback (its signaling port, any path). A
//! control client proves the per-instance secret with `hello`, then asks `ready`, `getStats`,
//! `resize`, `keyFrame`, or a viewer's join ticket (`issueTicket`). The message types are [`ControlRequest`] and [`ControlReply`] from
//! `openspace-webrtc-protocol`; the wire format is in `rust-core/SIGNALING.md`.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openspace_webrtc_protocol::{ControlReply, ControlRequest, ViewerRole};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How often [`ControlClient::resize_and_confirm`] asks for the current frame size.
const CONFIRM_POLL: Duration = Duration::from_millis(50);

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The endpoint did not accept a WebSocket connection (not listening yet, or gone).
    #[error("cannot connect to ws://{addr}/: {reason}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// No reply in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The instance closed the connection.
    #[error("connection closed by the instance")]
    Closed,
    /// A WebSocket error after connecting.
    #[error("websocket: {0}")]
    Transport(#[from] tokio_tungstenite::tungstenite::Error),
    /// The instance answered `{"type":"error"}` (wrong secret, control disabled, bad size…).
    #[error("instance refused: {0}")]
    Refused(String),
    /// A reply that does not answer the request.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    /// The instance acknowledged a resize but kept rendering another size.
    #[error(
        "resize to {want_width}x{want_height} not applied within {waited:?}: the instance still renders {width}x{height}"
    )]
    NotApplied {
        /// Requested width.
        want_width: u32,
        /// Requested height.
        want_height: u32,
        /// How long we waited.
        waited: Duration,
        /// Width of the last frame.
        width: u32,
        /// Height of the last frame.
        height: u32,
    },
}

/// Answer to `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// True once the host delivered its first frame.
    pub ready: bool,
    /// Width of the last frame (0 before the first).
    pub width: u32,
    /// Height of the last frame (0 before the first).
    pub height: u32,
    /// Frames come out of the instance's encoder now (not just a process alive).
    pub frames_flowing: bool,
}

/// An authenticated control connection to one instance.
pub struct ControlClient {
    /// The WebSocket to the instance's endpoint.
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Limit for each request's reply, so a hung instance cannot hang the caller.
    timeout: Duration,
}

impl ControlClient {
    /// Connects to `addr` and proves `secret`; every step is bounded by `timeout`.
    pub async fn connect(
        addr: SocketAddr,
        secret: &str,
        timeout_each: Duration,
    ) -> Result<ControlClient, ControlError> {
        let url = format!("ws://{addr}/control");
        let (ws, _) = timeout(timeout_each, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .map_err(|_| ControlError::Connect {
                addr,
                reason: format!("no answer within {timeout_each:?}"),
            })?
            .map_err(|err| ControlError::Connect {
                addr,
                reason: err.to_string(),
            })?;
        let mut client = ControlClient {
            ws,
            timeout: timeout_each,
        };
        match client
            .call(&ControlRequest::Hello {
                secret: secret.to_string(),
            })
            .await?
        {
            ControlReply::Welcome { .. } => Ok(client),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one request and waits for its reply (pings and pongs are skipped).
    async fn call(&mut self, request: &ControlRequest) -> Result<ControlReply, ControlError> {
        let text = serde_json::to_string(request)
            .map_err(|err| ControlError::Unexpected(format!("cannot encode request: {err}")))?;
        let limit = self.timeout;
        let exchange = async {
            self.ws.send(Message::text(text)).await?;
            loop {
                match self.ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Err(ControlError::Closed),
                    Some(Err(err)) => return Err(err.into()),
                    Some(Ok(Message::Text(reply))) => {
                        return match serde_json::from_str::<ControlReply>(reply.as_str()) {
                            Ok(ControlReply::Error { message }) => {
                                Err(ControlError::Refused(message))
                            }
                            Ok(reply) => Ok(reply),
                            Err(_) => Err(ControlError::Unexpected(
                                reply.as_str().chars().take(200).collect(),
                            )),
                        };
                    }
                    Some(Ok(_)) => continue,
                }
            }
        };
        timeout(limit, exchange)
            .await
            .map_err(|_| ControlError::Timeout(limit))?
    }

    /// Asks whether the instance streams (has delivered a frame) and at what size.
    pub async fn ready(&mut self) -> Result<Readiness, ControlError> {
        match self.call(&ControlRequest::Ready).await? {
            ControlReply::Ready {
                ready,
                width,
                height,
                frames_flowing,
            } => Ok(Readiness {
                ready,
                width,
                height,
                frames_flowing,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// The instance's stats object (see `rust-core/SIGNALING.md`).
    pub async fn stats(&mut self) -> Result<serde_json::Value, ControlError> {
        match self.call(&ControlRequest::GetStats).await? {
            ControlReply::Stats { stats } => Ok(stats),
            other => Err(unexpected(&other)),
        }
    }

    /// A single-use join ticket for one viewer with `role`, good for a few seconds: the
    /// viewer's connection presents it as `?ticket=` (see `rust-core/SIGNALING.md`).
    pub async fn issue_ticket(&mut self, role: ViewerRole) -> Result<String, ControlError> {
        match self.call(&ControlRequest::IssueTicket { role }).await? {
            ControlReply::Ticket { ticket, .. } => Ok(ticket),
            other => Err(unexpected(&other)),
        }
    }

    /// Queues a resize; returns when the instance acknowledged it (not yet applied).
    pub async fn resize(&mut self, width: u32, height: u32) -> Result<(), ControlError> {
        self.expect_ok(&ControlRequest::Resize { width, height }, "resize")
            .await
    }

    /// Asks for a key frame.
    pub async fn key_frame(&mut self) -> Result<(), ControlError> {
        self.expect_ok(&ControlRequest::KeyFrame, "keyFrame").await
    }

    /// Queues a resize, then polls `ready` until frames of the new size arrive or `wait`
    /// passes. A zero `wait` returns after the acknowledgement.
    pub async fn resize_and_confirm(
        &mut self,
        width: u32,
        height: u32,
        wait: Duration,
    ) -> Result<(), ControlError> {
        self.resize(width, height).await?;
        if wait.is_zero() {
            return Ok(());
        }
        // The instance fits the request by the protocol's one rule (even sides, within its
        // limit); that is the size to wait for.
        let (width, height) = openspace_webrtc_protocol::fit_stream_size(
            width,
            height,
            openspace_webrtc_protocol::StreamLimit::default(),
        )
        .unwrap_or((width, height));
        let deadline = Instant::now() + wait;
        loop {
            let now = self.ready().await?;
            if now.width == width && now.height == height {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ControlError::NotApplied {
                    want_width: width,
                    want_height: height,
                    waited: wait,
                    width: now.width,
                    height: now.height,
                });
            }
            sleep(CONFIRM_POLL).await;
        }
    }

    async fn expect_ok(
        &mut self,
        request: &ControlRequest,
        name: &str,
    ) -> Result<(), ControlError> {
        match self.call(request).await? {
            ControlReply::Ok { request } if request == name => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(reply: &ControlReply) -> ControlError {
    ControlError::Unexpected(serde_json::to_string(reply).unwrap_or_else(|_| format!("{reply:?}")))
}
