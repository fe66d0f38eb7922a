//! The owner's proxy to OpenSpace's own JSON API: `/api/instances/<uuid>/openspace?token=…` ↔
//! the instance's API WebSocket, through the supervisor that owns it
//! (`ws://<supervisor>/instances/<slot>/openspace`, see [`crate::relay`]), so that a page can
//! script its instance (Lua, properties, time) without learning a server's address or port,
//! through the same origin and token as everything else.
//!
//! Only the instance's owner may open it: the API runs any Lua in OpenSpace, so a share
//! link's token, which may only watch, is refused (403, the JSON sentence of
//! [`ApiError::OwnerOnly`]) before anything is opened. Messages pass unchanged both ways
//! (OpenSpace's JSON API is JSON text frames, `{"topic", "type", "payload"}`), with the
//! signaling proxy's limits: a text message over 64 KiB is answered, not forwarded, in
//! OpenSpace's own error shape (`Topic::wrappedError`: `{"code", "message", "status":
//! "error", "topic"}`, the topic echoed when the message has one), and a binary message
//! likewise; frames over 1 MiB close the socket (1009), as on every WebSocket of the origin.
//! An API socket is no viewer: it does not hold off the idle timeout.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use tracing::{Instrument, info, info_span};

use super::WebState;
use super::api::{Access, ApiError, TokenQuery};
use super::relay::{self, Rules, UpstreamError, Verdict};
use super::ws::{MAX_BROWSER_MESSAGE, WsUpgrade};
use crate::relay::{MAX_OPENSPACE_API_MESSAGE, RelayEndpoint};

/// The status codes of the proxy's own answers, HTTP's as OpenSpace uses them.
const TOO_LARGE: u16 = 413;
const UNSUPPORTED: u16 = 415;

/// The `topic` of a message, when it is JSON with an integer one.
#[derive(Deserialize)]
struct Topic {
    topic: Option<u64>,
}

/// OpenSpace's error message (`Topic::wrappedError`), keys in the order OpenSpace writes
/// them (nlohmann::json sorts them); without `topic` when there is none to echo.
pub fn error_message(topic: Option<u64>, code: u16, message: &str) -> String {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
    match topic {
        Some(topic) => {
            format!(r#"{{"code":{code},"message":{message},"status":"error","topic":{topic}}}"#)
        }
        None => format!(r#"{{"code":{code},"message":{message},"status":"error"}}"#),
    }
}

/// The OpenSpace API proxy's rules: JSON text passes unchanged, within the size limit.
struct OpenSpaceApi;

impl Rules for OpenSpaceApi {
    fn check_browser_text(&mut self, text: &str) -> Verdict {
        if text.len() > MAX_BROWSER_MESSAGE {
            let topic = serde_json::from_str::<Topic>(text)
                .ok()
                .and_then(|t| t.topic);
            let message = format!(
                "message of {} bytes is larger than the limit of {MAX_BROWSER_MESSAGE}",
                text.len()
            );
            return Verdict::Refuse(error_message(topic, TOO_LARGE, &message));
        }
        Verdict::Forward(text.to_string())
    }

    fn binary_refusal(&self) -> String {
        error_message(
            None,
            UNSUPPORTED,
            "binary messages are not supported: OpenSpace's JSON API takes JSON text",
        )
    }

    fn unreachable(&self, _err: &UpstreamError) -> Option<String> {
        // OpenSpace's protocol has no message for this; the close reason says it.
        None
    }

    fn unreachable_reason(&self) -> &'static str {
        "the instance's OpenSpace API cannot be reached"
    }
}

/// `GET /api/instances/<uuid>/openspace?token=…`.
pub async fn openspace(
    State(web): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    upgrade: WsUpgrade,
) -> Result<Response, ApiError> {
    match web.access(&id, query.token.as_deref()).await? {
        (Access::Owner, _) => {}
        (Access::Viewer, _) => return Err(ApiError::OwnerOnly),
    }
    let upstream = web.manager.upstream(&id, RelayEndpoint::OpenSpaceApi)?;
    let span = info_span!(parent: None, "openspace_api", instance = %id);
    Ok(upgrade.serve(move |socket| {
        async move {
            info!("OpenSpace API connected");
            relay::relay(
                socket,
                &upstream,
                MAX_OPENSPACE_API_MESSAGE,
                OpenSpaceApi,
                web.websocket_ping_every,
                web.shutdown.clone(),
            )
            .await;
            info!("OpenSpace API disconnected");
        }
        .instrument(span)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_within_the_limit_pass_unchanged() {
        let call = r#"{"topic": 1, "type": "luascript", "payload": {"script": "return 1", "return": true}}"#;
        assert_eq!(
            OpenSpaceApi.check_browser_text(call),
            Verdict::Forward(call.to_string())
        );
        // Not even JSON is the proxy's business: OpenSpace answers for its own protocol.
        assert_eq!(
            OpenSpaceApi.check_browser_text("not json"),
            Verdict::Forward("not json".into())
        );
        let empty = r#"{"topic":1,"payload":{"script":""}}"#;
        let largest = format!(
            r#"{{"topic":1,"payload":{{"script":"{}"}}}}"#,
            "x".repeat(MAX_BROWSER_MESSAGE - empty.len())
        );
        assert_eq!(largest.len(), MAX_BROWSER_MESSAGE);
        assert!(matches!(
            OpenSpaceApi.check_browser_text(&largest),
            Verdict::Forward(_)
        ));
    }

    #[test]
    fn oversized_messages_get_openspaces_error_shape_with_their_topic() {
        let text = format!(
            r#"{{"topic":42,"type":"luascript","payload":{{"script":"{}"}}}}"#,
            "x".repeat(MAX_BROWSER_MESSAGE)
        );
        let Verdict::Refuse(reply) = OpenSpaceApi.check_browser_text(&text) else {
            panic!("forwarded");
        };
        assert_eq!(
            reply,
            format!(
                r#"{{"code":413,"message":"message of {} bytes is larger than the limit of 65536","status":"error","topic":42}}"#,
                text.len()
            )
        );
        let Verdict::Refuse(reply) = OpenSpaceApi.check_browser_text(&"y".repeat(70_000)) else {
            panic!("forwarded");
        };
        let value: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(value["status"], "error");
        assert!(value.get("topic").is_none());
    }

    #[test]
    fn error_messages_are_json_whatever_the_sentence() {
        let text = error_message(Some(7), 415, "a \"quoted\" line\nand more");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["message"], "a \"quoted\" line\nand more");
        assert_eq!(value["topic"], 7);
        let binary: serde_json::Value =
            serde_json::from_str(&OpenSpaceApi.binary_refusal()).unwrap();
        assert_eq!(binary["code"], 415);
    }
}
