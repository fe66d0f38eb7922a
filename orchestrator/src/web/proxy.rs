//! The signaling proxy: `/api/instances/<uuid>/signal?token=…` ↔ the instance's rust-core
//! endpoint, through the supervisor that owns it (`ws://<supervisor>/instances/<slot>/signal`,
//! see [`crate::relay`]), so a browser needs one host and port and a rendering server exposes
//! no signaling port.
//!
//! Only signaling passes through here (SDP and ICE, a few kilobytes); media goes straight
//! from the instance to the browser. The proxy authenticates and relays; it does not judge
//! the messages. The token decides the role the supervisor asks the instance's join ticket
//! for (owner, or spectator for a share token), and rust-core's session rules decide the
//! rest (join first and once, a spectator's input refused, control messages refused), in
//! rust-core's own words. Connecting and relaying are [`super::relay`]'s, shared with the
//! OpenSpace API proxy.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use openspace_webrtc_protocol::{ViewerReply, ViewerRole};
use tracing::{Instrument, info, info_span};

use super::WebState;
use super::api::{Access, ApiError, TokenQuery};
use super::relay::{self, Rules, UpstreamError, Verdict};
use super::ws::{MAX_BROWSER_MESSAGE, WsUpgrade};
use crate::relay::RelayEndpoint;

/// Largest message read from rust-core's endpoint: its replies are SDP and ICE, a few
/// kilobytes, so four times the browser's limit is plenty.
const MAX_INSTANCE_MESSAGE: usize = 4 * MAX_BROWSER_MESSAGE;

fn error_text(message: String, fatal: bool) -> String {
    let reply = ViewerReply::Error { message, fatal };
    serde_json::to_string(&reply).unwrap_or_default()
}

/// The signaling proxy's rules: the browser's text passes as it is (rust-core judges it);
/// failures are told in rust-core's own `error` message.
struct Signaling;

impl Rules for Signaling {
    fn check_browser_text(&mut self, text: &str) -> Verdict {
        Verdict::Forward(text.to_string())
    }

    fn binary_refusal(&self) -> String {
        error_text(
            "binary messages are not supported; send JSON text".into(),
            false,
        )
    }

    fn unreachable(&self, err: &UpstreamError) -> Option<String> {
        let message = match err {
            UpstreamError::Connect { .. } => "the streaming instance cannot be reached",
            UpstreamError::Timeout { .. } => "the streaming instance did not answer",
        };
        Some(error_text(message.into(), true))
    }

    fn unreachable_reason(&self) -> &'static str {
        "instance unreachable"
    }
}

/// `GET /api/instances/<uuid>/signal?token=…`.
pub async fn signal(
    State(web): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    upgrade: WsUpgrade,
) -> Result<Response, ApiError> {
    let (access, _) = web.access(&id, query.token.as_deref()).await?;
    let role = match access {
        Access::Owner => ViewerRole::Owner,
        Access::Viewer => ViewerRole::Spectator,
    };
    let upstream = web.manager.upstream(&id, RelayEndpoint::Signal(role))?;
    let span = info_span!(parent: None, "signal", instance = %id, access = access.as_str());
    Ok(upgrade.serve(move |socket| {
        async move {
            let _viewer = web.manager.viewer_joined(&id);
            info!("viewer connected");
            relay::relay(
                socket,
                &upstream,
                MAX_INSTANCE_MESSAGE,
                Signaling,
                web.websocket_ping_every,
                web.shutdown.clone(),
            )
            .await;
            info!("viewer disconnected");
        }
        .instrument(span)
    }))
}
