//! Turning a text frame into [`Fields`]: a JSON object with a string `command`, plus typed
//! access to its other fields with precise error messages.

use serde_json::{Map, Value};

/// Largest request accepted, in bytes. Requests are tiny (under 100 bytes); a larger one is
/// refused with an error reply and the connection stays open. (Frames over 1 MiB are not even
/// buffered: the WebSocket layer closes such a connection, see [`crate::server`].)
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Why a request could not be understood. `Display` is the reply's `error` string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The frame is larger than [`MAX_REQUEST_BYTES`].
    #[error("message too large: {len} bytes (limit {limit})")]
    TooLarge {
        /// Size of the frame.
        len: usize,
        /// [`MAX_REQUEST_BYTES`].
        limit: usize,
    },
    /// A binary frame.
    #[error("binary messages are not supported: send a JSON text message")]
    Binary,
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("request must be a JSON object like {{\"command\":\"STATUS\",\"id\":0}}")]
    NotObject,
    /// No `command` field.
    #[error("missing field \"command\"")]
    MissingCommand,
    /// `command` is not a string.
    #[error("field \"command\" must be a string")]
    CommandNotString,
    /// A command this server does not know.
    #[error("unknown command \"{0}\" (expected START, STOP, STATUS, RESOLUTION or SERVER_STATUS)")]
    UnknownCommand(String),
    /// A required field is absent.
    #[error("missing field \"{0}\"")]
    MissingField(&'static str),
    /// A field that must be an integer is something else (a string, a fraction, null…).
    #[error("field \"{0}\" must be an integer")]
    NotInteger(&'static str),
    /// A resolution outside `1..=MAX_DIMENSION`.
    #[error(
        "invalid resolution {width}x{height}: width and height must be integers from 1 to {max}"
    )]
    BadResolution {
        /// Requested width.
        width: i64,
        /// Requested height.
        height: i64,
        /// [`crate::cmd::MAX_DIMENSION`].
        max: u32,
    },
}

/// A request object that has a string `command`, before it is a [`super::Request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    /// The command name, as sent (commands are upper case).
    command: String,
    /// All fields of the object, `command` included.
    fields: Map<String, Value>,
}

impl Fields {
    /// Parses a text frame. On failure, returns the command name when one could be read (to
    /// echo it in the reply) and the reason.
    pub fn from_text(text: &str) -> Result<Fields, (Option<String>, ParseError)> {
        if text.len() > MAX_REQUEST_BYTES {
            return Err((
                None,
                ParseError::TooLarge {
                    len: text.len(),
                    limit: MAX_REQUEST_BYTES,
                },
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|err| (None, ParseError::Json(err.to_string())))?;
        let Value::Object(fields) = value else {
            return Err((None, ParseError::NotObject));
        };
        let command = match fields.get("command") {
            None => return Err((None, ParseError::MissingCommand)),
            Some(Value::String(command)) => command.clone(),
            Some(_) => return Err((None, ParseError::CommandNotString)),
        };
        Ok(Fields { command, fields })
    }

    /// The command name.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// A required integer field. Integers beyond `i64` saturate (they are out of every range
    /// anyway); fractions, strings and other types are refused.
    pub fn integer(&self, name: &'static str) -> Result<i64, ParseError> {
        match self.fields.get(name) {
            None => Err(ParseError::MissingField(name)),
            Some(Value::Number(number)) => {
                if let Some(value) = number.as_i64() {
                    Ok(value)
                } else if number.is_u64() {
                    Ok(i64::MAX)
                } else {
                    Err(ParseError::NotInteger(name))
                }
            }
            Some(_) => Err(ParseError::NotInteger(name)),
        }
    }

    /// The field as an integer if it is one, for echoing in an error reply.
    pub fn integer_or(&self, name: &'static str, fallback: i64) -> i64 {
        self.integer(name).unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        let req = Fields::from_text(
            r#"{"command":"X","a":1,"b":"1","c":1.5,"d":null,"e":-3,"f":18446744073709551615}"#,
        )
        .unwrap();
        assert_eq!(req.integer("a"), Ok(1));
        assert_eq!(req.integer("b"), Err(ParseError::NotInteger("b")));
        assert_eq!(req.integer("c"), Err(ParseError::NotInteger("c")));
        assert_eq!(req.integer("d"), Err(ParseError::NotInteger("d")));
        assert_eq!(req.integer("e"), Ok(-3));
        assert_eq!(req.integer("f"), Ok(i64::MAX));
        assert_eq!(req.integer("g"), Err(ParseError::MissingField("g")));
    }

    #[test]
    fn command_must_be_a_string_in_an_object() {
        assert!(matches!(
            Fields::from_text("[1]"),
            Err((None, ParseError::NotObject))
        ));
        assert!(matches!(
            Fields::from_text("{}"),
            Err((None, ParseError::MissingCommand))
        ));
        assert!(matches!(
            Fields::from_text(r#"{"command":5}"#),
            Err((None, ParseError::CommandNotString))
        ));
        assert!(matches!(
            Fields::from_text("{"),
            Err((None, ParseError::Json(_)))
        ));
        let big = format!(
            r#"{{"command":"STATUS","pad":"{}"}}"#,
            "x".repeat(MAX_REQUEST_BYTES)
        );
        assert!(matches!(
            Fields::from_text(&big),
            Err((None, ParseError::TooLarge { .. }))
        ));
    }
}
