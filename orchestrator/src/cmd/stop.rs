//! `{"command":"STOP","id":0}` → `{"command":"STOP","error":"none","id":0}`.
//!
//! Stops the instance: SIGTERM, SIGKILL after the stop timeout, then its Xvfb. Other clients
//! see `DEINITIALIZING` meanwhile; the reply comes once the slot is `IDLE`. A second `STOP` of
//! an instance already stopping waits for the same end and also succeeds. On failure `id` is
//! -1 (seed) and `error` is `"not running"` (the slot is idle), `"invalid id"` (outside
//! `0..total`) or a field error.

use serde::{Deserialize, Serialize};

use super::{Fields, NO_ERROR, slot_id};
use crate::supervisor::{Supervisor, SupervisorError};

/// `STOP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stop {
    /// The id as sent (range-checked by `apply`).
    pub id: i64,
}

/// Reply to `STOP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopReply {
    /// `"none"` or why the stop failed.
    pub error: String,
    /// The stopped id, -1 on failure.
    pub id: i64,
}

impl Stop {
    /// Reads the integer `id`.
    pub fn parse(fields: &Fields) -> Result<Stop, StopReply> {
        let id = fields.integer("id").map_err(|err| StopReply {
            error: err.to_string(),
            id: -1,
        })?;
        Ok(Stop { id })
    }

    /// Stops the instance.
    pub async fn apply<S: Supervisor>(self, supervisor: &S) -> StopReply {
        let result = match slot_id(self.id) {
            Some(id) => supervisor.stop(id).await,
            None => Err(SupervisorError::InvalidId),
        };
        let (error, id) = match result {
            Ok(()) => (NO_ERROR.into(), self.id),
            Err(err) => (err.to_string(), -1),
        };
        StopReply { error, id }
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
    async fn stop_replies() {
        let sup = Scripted::new(&[Running, Idle]);
        assert_eq!(
            reply(&sup, r#"{"command":"STOP","id":0}"#).await,
            r#"{"command":"STOP","error":"none","id":0}"#
        );
        assert_eq!(
            reply(&sup, r#"{"command":"STOP","id":0}"#).await,
            r#"{"command":"STOP","error":"not running","id":-1}"#
        );
        for bad in [
            r#"{"command":"STOP","id":2}"#,
            r#"{"command":"STOP","id":-1}"#,
        ] {
            assert_eq!(
                reply(&sup, bad).await,
                r#"{"command":"STOP","error":"invalid id","id":-1}"#
            );
        }
        assert_eq!(
            reply(&sup, r#"{"command":"STOP"}"#).await,
            r#"{"command":"STOP","error":"missing field \"id\"","id":-1}"#
        );
        assert_eq!(
            reply(&sup, r#"{"command":"STOP","id":"0"}"#).await,
            r#"{"command":"STOP","error":"field \"id\" must be an integer","id":-1}"#
        );
    }
}
