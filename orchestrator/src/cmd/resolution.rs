//! `{"command":"RESOLUTION","id":0,"width":1920,"height":1080}` →
//! `{"command":"RESOLUTION","error":"none","id":0,"width":1920,"height":1080}`.
//!
//! Asks the running instance, over its control channel, to render at `width × height`; the
//! reply comes once the instance reports frames of the new size (or with an error naming the
//! size it still renders). `width` and `height` must be integers from 1 to [`MAX_DIMENSION`].
//! Errors: a field error, the size error, `"invalid id"`, `"not running"` (the slot is not
//! `RUNNING`), `"control channel: …"`. `id`, `width` and `height` echo the request whenever they
//! were integers (-1 and 0 otherwise).

use serde::{Deserialize, Serialize};

use super::{Fields, NO_ERROR, ParseError, slot_id};
use crate::supervisor::{Supervisor, SupervisorError};

/// Largest width or height accepted (8K UHD width), the protocol's limit on any size request.
/// The instance fits what it gets into its own stream limit (3840×2160 by default) and rounds
/// odd sides down to even; the reply echoes the request, as the seeds' protocol does.
pub const MAX_DIMENSION: u32 = openspace_webrtc_protocol::MAX_REQUEST_SIDE;

/// `RESOLUTION`, parsed only with a valid size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The id as sent (range-checked by `apply`).
    pub id: i64,
    /// Width in pixels, `1..=MAX_DIMENSION`.
    pub width: u32,
    /// Height in pixels, `1..=MAX_DIMENSION`.
    pub height: u32,
}

/// Reply to `RESOLUTION`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionReply {
    /// `"none"` or why the resize failed.
    pub error: String,
    /// The requested id (-1 if it was not an integer).
    pub id: i64,
    /// The requested width (0 if it was not an integer).
    pub width: i64,
    /// The requested height (0 if it was not an integer).
    pub height: i64,
}

fn dimension(value: i64) -> Option<u32> {
    u32::try_from(value)
        .ok()
        .filter(|v| (1..=MAX_DIMENSION).contains(v))
}

impl Resolution {
    /// Reads `id`, `width` and `height` and checks the size.
    pub fn parse(fields: &Fields) -> Result<Resolution, ResolutionReply> {
        let refuse = |err: ParseError| ResolutionReply {
            error: err.to_string(),
            id: fields.integer_or("id", -1),
            width: fields.integer_or("width", 0),
            height: fields.integer_or("height", 0),
        };
        let id = fields.integer("id").map_err(refuse)?;
        let width = fields.integer("width").map_err(refuse)?;
        let height = fields.integer("height").map_err(refuse)?;
        match (dimension(width), dimension(height)) {
            (Some(w), Some(h)) => Ok(Resolution {
                id,
                width: w,
                height: h,
            }),
            _ => Err(refuse(ParseError::BadResolution {
                width,
                height,
                max: MAX_DIMENSION,
            })),
        }
    }

    /// Resizes the instance.
    pub async fn apply<S: Supervisor>(self, supervisor: &S) -> ResolutionReply {
        let result = match slot_id(self.id) {
            Some(id) => supervisor.resolution(id, self.width, self.height).await,
            None => Err(SupervisorError::InvalidId),
        };
        ResolutionReply {
            error: match result {
                Ok(()) => NO_ERROR.into(),
                Err(err) => err.to_string(),
            },
            id: self.id,
            width: i64::from(self.width),
            height: i64::from(self.height),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::Command;
    use crate::cmd::test_support::Scripted;
    use crate::supervisor::InstanceStatus::*;

    async fn reply(sup: &Scripted, text: &str) -> String {
        Command::from_text(text).apply(sup).await.to_json()
    }

    #[tokio::test]
    async fn resolution_replies() {
        let sup = Scripted::new(&[Running, Idle]);
        assert_eq!(
            reply(
                &sup,
                r#"{"command":"RESOLUTION","id":0,"width":1920,"height":1080}"#
            )
            .await,
            r#"{"command":"RESOLUTION","error":"none","id":0,"width":1920,"height":1080}"#
        );
        assert_eq!(
            reply(
                &sup,
                r#"{"command":"RESOLUTION","id":1,"width":1920,"height":1080}"#
            )
            .await,
            r#"{"command":"RESOLUTION","error":"not running","id":1,"width":1920,"height":1080}"#
        );
        assert_eq!(
            reply(
                &sup,
                r#"{"command":"RESOLUTION","id":7,"width":1920,"height":1080}"#
            )
            .await,
            r#"{"command":"RESOLUTION","error":"invalid id","id":7,"width":1920,"height":1080}"#
        );
        for (w, h) in [("0", "720"), ("-5", "720"), ("1280", "7681")] {
            let text = format!(r#"{{"command":"RESOLUTION","id":0,"width":{w},"height":{h}}}"#);
            assert_eq!(
                reply(&sup, &text).await,
                format!(
                    r#"{{"command":"RESOLUTION","error":"invalid resolution {w}x{h}: width and height must be integers from 1 to 7680","id":0,"width":{w},"height":{h}}}"#
                )
            );
        }
        assert_eq!(
            reply(
                &sup,
                r#"{"command":"RESOLUTION","id":0,"width":12.5,"height":720}"#
            )
            .await,
            r#"{"command":"RESOLUTION","error":"field \"width\" must be an integer","id":0,"width":0,"height":720}"#
        );
        assert_eq!(
            reply(&sup, r#"{"command":"RESOLUTION","id":0,"width":640}"#).await,
            r#"{"command":"RESOLUTION","error":"missing field \"height\"","id":0,"width":640,"height":0}"#
        );
        // Only the valid requests reached the supervisor.
        assert_eq!(sup.calls.lock().unwrap().len(), 3);
    }
}
