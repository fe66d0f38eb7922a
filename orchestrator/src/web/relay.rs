//! What the web role's proxies to an instance share: reaching one of the instance's WebSocket
//! endpoints, and relaying between it and the browser until either side ends.
//!
//! Each proxy brings its [`Rules`]: what of the browser's text passes (and what the browser
//! is told instead), and what the browser hears when the instance cannot be reached. The rest
//! is one rule for every proxy: binary messages from the browser never reach the instance
//! (both protocols proxied are JSON text), the browser's protocol violations get the close
//! code that says why ([`close_for`]), the instance's text passes unchanged, closing either
//! side closes the other, and the web role's shutdown closes both (1001).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::debug;

use super::client::{Socket, SupervisorAccess};
use super::ws::{BrowserSocket, Liveness, close_for};
use crate::relay::close_frame;

/// The web role's client end of an instance's WebSocket.
pub type InstanceSocket = Socket;

/// Time to reach an instance's endpoint (TCP, TLS and both upgrades, the supervisor's and
/// the instance's behind it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where an instance's endpoint is reached: its supervisor's relay URL
/// ([`crate::relay::RelayRoute`]) and how that supervisor is reached (its secret, and its
/// TLS for a `wss://` URL), the same as the protocol client's.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `ws://<supervisor>/instances/<slot>/…`, or `wss://…` for a TLS supervisor.
    pub url: String,
    /// The secret presented and the TLS trusted.
    pub access: SupervisorAccess,
}

/// Why an instance's endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Refused, reset, or not a WebSocket (the supervisor refused the relay, or is gone).
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// No handshake within [`CONNECT_TIMEOUT`].
    #[error("{url} did not answer within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout {
        /// The endpoint.
        url: String,
    },
}

/// Opens the relay to `upstream`, reading the instance's frames and messages up to
/// `max_message_bytes` (a larger one ends the relay; the instance is trusted, the limit
/// only bounds memory).
pub async fn connect(
    upstream: &Upstream,
    max_message_bytes: usize,
) -> Result<InstanceSocket, UpstreamError> {
    let url = upstream.url.clone();
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes));
    let connect = upstream.access.connect(&url, Some(config));
    match timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(socket)) => Ok(socket),
        Ok(Err(err)) => Err(UpstreamError::Connect {
            url,
            reason: err.reason(),
        }),
        Err(_) => Err(UpstreamError::Timeout { url }),
    }
}

/// What to do with one browser message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send this text to the instance.
    Forward(String),
    /// Answer the browser with this text; the instance sees nothing.
    Refuse(String),
}

/// What one kind of proxy lets through, and says, in its protocol's own words.
pub trait Rules: Send {
    /// Checks one text message of the browser.
    fn check_browser_text(&mut self, text: &str) -> Verdict;
    /// The answer to a binary message of the browser (which never reaches the instance).
    fn binary_refusal(&self) -> String;
    /// Text for the browser before the close when the instance cannot be reached, if the
    /// protocol has a message for that.
    fn unreachable(&self, err: &UpstreamError) -> Option<String>;
    /// The close reason then.
    fn unreachable_reason(&self) -> &'static str;
}

/// Tells the browser that the instance cannot be reached, in its protocol's words if it has
/// them, and closes (1001).
async fn tell_unreachable(browser: &mut BrowserSocket, rules: &impl Rules, err: &UpstreamError) {
    if let Some(text) = rules.unreachable(err) {
        let _ = browser.send(Message::text(text)).await;
    }
    let _ = browser
        .send(close_frame(CloseCode::Away, rules.unreachable_reason()))
        .await;
}

/// Connects to the instance through `upstream` and relays between it and `browser` until
/// either side closes or `shutdown` (a [`super::WebState::shutdown`] clone) turns true.
pub async fn relay(
    mut browser: BrowserSocket,
    upstream: &Upstream,
    max_instance_message_bytes: usize,
    mut rules: impl Rules,
    ping_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut liveness = Liveness::new(ping_every);
    let mut instance = match connect(upstream, max_instance_message_bytes).await {
        Ok(instance) => instance,
        Err(err) => {
            debug!(%err, "cannot reach the instance");
            tell_unreachable(&mut browser, &rules, &err).await;
            return;
        }
    };
    loop {
        tokio::select! {
            message = browser.next() => match message.inspect(|m| if m.is_ok() { liveness.heard() }) {
                Some(Ok(Message::Text(text))) => match rules.check_browser_text(text.as_str()) {
                    Verdict::Forward(text) => {
                        if instance.send(Message::text(text)).await.is_err() {
                            let _ = browser.send(close_frame(CloseCode::Away, "instance gone")).await;
                            break;
                        }
                    }
                    Verdict::Refuse(reply) => {
                        if browser.send(Message::text(reply)).await.is_err() {
                            break;
                        }
                    }
                },
                Some(Ok(Message::Binary(_))) => {
                    if browser.send(Message::text(rules.binary_refusal())).await.is_err() {
                        break;
                    }
                }
                Some(Err(err)) => {
                    debug!(%err, "the browser broke the WebSocket protocol");
                    if let Some(close) = close_for(&err) {
                        let _ = browser.send(close).await;
                    }
                    let _ = instance.close(None).await;
                    break;
                }
                Some(Ok(Message::Close(_))) | None => {
                    // For the signaling endpoint, closing its socket is `bye`.
                    let _ = instance.close(None).await;
                    break;
                }
                Some(Ok(_)) => {}
            },
            message = instance.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if browser.send(Message::Text(text)).await.is_err() {
                        let _ = instance.close(None).await;
                        break;
                    }
                }
                // The supervisor's relay closes with 1011 when it could not reach the
                // instance: the browser hears that as "unreachable", in its protocol's words.
                Some(Ok(Message::Close(Some(frame)))) if frame.code == CloseCode::Error => {
                    debug!(reason = %frame.reason, "the supervisor could not reach the instance");
                    let err = UpstreamError::Connect { url: upstream.url.clone(), reason: frame.reason.to_string() };
                    tell_unreachable(&mut browser, &rules, &err).await;
                    break;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = browser
                        .send(close_frame(CloseCode::Normal, "the instance closed the connection"))
                        .await;
                    break;
                }
                Some(Ok(_)) => {}
            },
            ping = liveness.next_ping() => match ping {
                Some(ping) => {
                    if browser.send(ping).await.is_err() {
                        let _ = instance.close(None).await;
                        break;
                    }
                }
                None => {
                    // A vanished viewer: for the signaling endpoint this is `bye`.
                    debug!("the browser stopped answering pings");
                    let _ = instance.close(None).await;
                    let _ = browser.send(Liveness::gone()).await;
                    break;
                }
            },
            _ = super::stopped(&mut shutdown) => {
                let _ = instance.close(None).await;
                let _ = browser.send(close_frame(CloseCode::Away, "orchestrator shutting down")).await;
                break;
            }
        }
    }
}
