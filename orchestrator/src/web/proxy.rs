//! The signaling proxy: `/api/instances/<uuid>/signal?token=…` ↔ the instance's rust-core
//! endpoint (`ws://<server>:<signaling base + slot>/`), so a browser needs one host and port.
//!
//! Only signaling passes through here (SDP and ICE, a few kilobytes); media goes straight
//! from the instance to the browser. The proxy checks each browser message before passing it
//! on ([`filter`]): it must be a viewer message (`join`, `answer`, `ice`, `bye`), `join`
//! first and once; a spectator's `join` is always sent as `viewOnly: true`, whatever the
//! page asked for. Control messages (`hello`, `resize`, …) never reach an instance from a
//! browser. The instance's messages go to the browser unchanged. Connecting and relaying are
//! [`super::relay`]'s, shared with the OpenSpace API proxy.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use openspace_webrtc_protocol::{ViewerReply, ViewerRequest};
use tracing::{Instrument, info, info_span};

use super::WebState;
use super::api::{Access, ApiError, TokenQuery};
use super::manager::Endpoint;
use super::relay::{self, Rules, UpstreamError, Verdict};
use super::ws::{MAX_BROWSER_MESSAGE, WsUpgrade};

/// Largest message read from rust-core's endpoint: its replies are SDP and ICE, a few
/// kilobytes, so four times the browser's limit is plenty.
const MAX_INSTANCE_MESSAGE: usize = 4 * MAX_BROWSER_MESSAGE;

fn error_text(message: String, fatal: bool) -> String {
    let reply = ViewerReply::Error { message, fatal };
    serde_json::to_string(&reply).unwrap_or_default()
}

fn refuse(message: String) -> Verdict {
    Verdict::Refuse(error_text(message, false))
}

/// Checks one text message from the browser. `joined` tracks whether `join` passed already.
pub fn filter(text: &str, access: Access, joined: &mut bool) -> Verdict {
    // rust-core's own check and sentence: the page cannot tell the proxy from the endpoint.
    if text.len() > MAX_BROWSER_MESSAGE {
        return refuse(format!(
            "message of {} bytes is larger than the limit of {MAX_BROWSER_MESSAGE}",
            text.len()
        ));
    }
    let request = match serde_json::from_str::<ViewerRequest>(text) {
        Ok(request) => request,
        Err(err) => {
            return refuse(format!(
                "not a viewer message (join, answer, ice or bye): {err}"
            ));
        }
    };
    let request = match (request, *joined) {
        (ViewerRequest::Join { view_only }, false) => {
            *joined = true;
            ViewerRequest::Join {
                view_only: view_only || access == Access::Viewer,
            }
        }
        (ViewerRequest::Join { .. }, true) => return refuse("already joined".into()),
        (_, false) => return refuse("send join first".into()),
        (request, true) => request,
    };
    match serde_json::to_string(&request) {
        Ok(text) => Verdict::Forward(text),
        Err(err) => refuse(format!("cannot encode the message: {err}")),
    }
}

/// The signaling proxy's rules: viewer messages only, `join` first and once, a spectator's
/// `join` view-only; refusals and failures in rust-core's own `error` message.
struct Signaling {
    /// Whose socket this is.
    access: Access,
    /// Whether `join` passed already.
    joined: bool,
}

impl Rules for Signaling {
    fn check_browser_text(&mut self, text: &str) -> Verdict {
        filter(text, self.access, &mut self.joined)
    }

    fn binary_refusal(&self) -> String {
        error_text("binary messages are not supported".into(), false)
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
    let target = web.manager.address(&id, Endpoint::Signaling)?;
    let span = info_span!(parent: None, "signal", instance = %id, access = access.as_str());
    Ok(upgrade.serve(move |socket| {
        async move {
            let _viewer = web.manager.viewer_joined(&id);
            info!("viewer connected");
            let rules = Signaling {
                access,
                joined: false,
            };
            relay::relay(
                socket,
                &target,
                MAX_INSTANCE_MESSAGE,
                rules,
                web.websocket_ping_every,
                web.shutdown.clone(),
            )
            .await;
            info!("viewer disconnected");
        }
        .instrument(span)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(verdict: Verdict) -> serde_json::Value {
        match verdict {
            Verdict::Forward(text) => serde_json::from_str(&text).unwrap(),
            Verdict::Refuse(text) => panic!("refused: {text}"),
        }
    }

    fn refused(verdict: Verdict) -> String {
        match verdict {
            Verdict::Refuse(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["type"], "error");
                assert_eq!(v["fatal"], false);
                v["message"].as_str().unwrap().to_string()
            }
            Verdict::Forward(text) => panic!("forwarded: {text}"),
        }
    }

    #[test]
    fn a_spectators_join_is_always_view_only() {
        let mut joined = false;
        let join = forwarded(filter(
            r#"{"type":"join","viewOnly":false}"#,
            Access::Viewer,
            &mut joined,
        ));
        assert_eq!(join["viewOnly"], true);
        assert!(joined);
        let mut joined = false;
        let join = forwarded(filter(r#"{"type":"join"}"#, Access::Viewer, &mut joined));
        assert_eq!(join["viewOnly"], true);
    }

    #[test]
    fn an_owners_join_keeps_its_choice() {
        for view_only in [false, true] {
            let mut joined = false;
            let text = format!(r#"{{"type":"join","viewOnly":{view_only}}}"#);
            let join = forwarded(filter(&text, Access::Owner, &mut joined));
            assert_eq!(join["viewOnly"], view_only);
        }
    }

    #[test]
    fn oversized_messages_are_refused_in_rust_cores_words() {
        let mut joined = true;
        let text = format!(
            r#"{{"type":"answer","sdp":"{}"}}"#,
            "x".repeat(MAX_BROWSER_MESSAGE)
        );
        assert_eq!(
            refused(filter(&text, Access::Owner, &mut joined)),
            format!(
                "message of {} bytes is larger than the limit of 65536",
                text.len()
            )
        );
    }

    #[test]
    fn join_comes_first_and_once_and_only_viewer_messages_pass() {
        let mut joined = false;
        assert!(
            refused(filter(
                r#"{"type":"answer","sdp":"v=0"}"#,
                Access::Owner,
                &mut joined
            ))
            .contains("join first")
        );
        assert!(
            refused(filter(
                r#"{"type":"hello","secret":"x"}"#,
                Access::Owner,
                &mut joined
            ))
            .contains("not a viewer message")
        );
        assert!(
            refused(filter("not json", Access::Owner, &mut joined))
                .contains("not a viewer message")
        );
        assert!(!joined);
        forwarded(filter(r#"{"type":"join"}"#, Access::Owner, &mut joined));
        assert!(
            refused(filter(r#"{"type":"join"}"#, Access::Owner, &mut joined))
                .contains("already joined")
        );
        assert!(
            refused(filter(
                r#"{"type":"resize","width":1,"height":1}"#,
                Access::Owner,
                &mut joined
            ))
            .contains("not a viewer message")
        );
        let answer = forwarded(filter(
            r#"{"type":"answer","sdp":"v=0"}"#,
            Access::Owner,
            &mut joined,
        ));
        assert_eq!(answer, serde_json::json!({"type": "answer", "sdp": "v=0"}));
        let ice = forwarded(filter(
            r#"{"type":"ice","candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMLineIndex":0}"#,
            Access::Viewer,
            &mut joined,
        ));
        assert_eq!(ice["sdpMLineIndex"], 0);
        assert_eq!(
            forwarded(filter(r#"{"type":"bye"}"#, Access::Owner, &mut joined))["type"],
            "bye"
        );
    }
}
