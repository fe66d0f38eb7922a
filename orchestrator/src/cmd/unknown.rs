//! The reply to a request that names no known command: not JSON, not an object, no string
//! `command`, an unknown command, a binary frame or an oversized one.
//!
//! `{"command":"DANCE"}` → `{"command":"DANCE","error":"unknown command \"DANCE\" (expected
//! START, STOP, STATUS, RESOLUTION or SERVER_STATUS)","id":-1}`. `command` echoes the request's
//! command when it was a string, `null` otherwise. The connection stays open.

use serde::{Deserialize, Serialize};

use super::ParseError;

/// Reply to a request that could not be dispatched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownReply {
    /// The request's command if it was a string, else `null`.
    pub command: Option<String>,
    /// What was wrong.
    pub error: String,
    /// Always -1.
    pub id: i64,
}

impl UnknownReply {
    /// The reply for `err`, echoing `command` when known.
    pub fn new(command: Option<String>, err: ParseError) -> UnknownReply {
        UnknownReply {
            command,
            error: err.to_string(),
            id: -1,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::Command;
    use crate::cmd::test_support::Scripted;

    #[tokio::test]
    async fn unknown_and_malformed_requests_get_error_replies() {
        let sup = Scripted::new(&[]);
        let cases = [
            (
                r#"{"command":"start"}"#,
                r#"{"command":"start","error":"unknown command \"start\" (expected START, STOP, STATUS, RESOLUTION or SERVER_STATUS)","id":-1}"#,
            ),
            (
                "not json",
                r#"{"command":null,"error":"malformed JSON: expected ident at line 1 column 2","id":-1}"#,
            ),
            (
                "[]",
                r#"{"command":null,"error":"request must be a JSON object like {\"command\":\"STATUS\",\"id\":0}","id":-1}"#,
            ),
            (
                r#"{"id":0}"#,
                r#"{"command":null,"error":"missing field \"command\"","id":-1}"#,
            ),
            (
                r#"{"command":["START"]}"#,
                r#"{"command":null,"error":"field \"command\" must be a string","id":-1}"#,
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                Command::from_text(request).apply(&sup).await.to_json(),
                expected,
                "{request}"
            );
        }
        assert_eq!(
            Command::binary().apply(&sup).await.to_json(),
            r#"{"command":null,"error":"binary messages are not supported: send a JSON text message","id":-1}"#
        );
        assert!(sup.calls.lock().unwrap().is_empty());
    }
}
