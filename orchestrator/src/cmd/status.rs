//! `{"command":"STATUS","id":0}` → `{"command":"STATUS","error":"none","id":0,"status":"RUNNING"}`.
//!
//! `status` is `IDLE`, `INITIALIZING`, `RUNNING` or `DEINITIALIZING`; with an error it is
//! `INVALID`. `id` echoes the requested id whenever it was an integer (so a client polling
//! several ids can match replies), -1 otherwise. When the slot's previous instance ended, an
//! extra field `lastExit` says how (exit status and the tail of its output), e.g. after a
//! crash: `{"command":"STATUS","error":"none","id":0,"status":"IDLE","lastExit":"exited with
//! status 1: …"}`.

use serde::{Deserialize, Serialize};

use super::{Fields, NO_ERROR, slot_id};
use crate::supervisor::{InstanceStatus, Supervisor, SupervisorError};

/// `STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The id as sent (range-checked by `apply`).
    pub id: i64,
}

/// Reply to `STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// `"none"`, `"invalid id"` or a field error.
    pub error: String,
    /// The requested id (-1 if it was not an integer).
    pub id: i64,
    /// The slot's status, `INVALID` on error.
    pub status: InstanceStatus,
    /// How the slot's previous instance ended, if one did (not in the seed; ours).
    #[serde(rename = "lastExit", skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
}

impl StatusReply {
    fn error(error: String, id: i64) -> StatusReply {
        StatusReply {
            error,
            id,
            status: InstanceStatus::Invalid,
            last_exit: None,
        }
    }
}

impl Status {
    /// Reads the integer `id`.
    pub fn parse(fields: &Fields) -> Result<Status, StatusReply> {
        let id = fields
            .integer("id")
            .map_err(|err| StatusReply::error(err.to_string(), -1))?;
        Ok(Status { id })
    }

    /// Reads the slot's status.
    pub async fn apply<S: Supervisor>(self, supervisor: &S) -> StatusReply {
        let result = match slot_id(self.id) {
            Some(id) => supervisor.status(id).await,
            None => Err(SupervisorError::InvalidId),
        };
        match result {
            Ok(report) => StatusReply {
                error: NO_ERROR.into(),
                id: self.id,
                status: report.status,
                last_exit: report.last_exit,
            },
            Err(err) => StatusReply::error(err.to_string(), self.id),
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
    async fn status_replies() {
        let sup = Scripted::new(&[Running, Idle, Initializing, Deinitializing]);
        for (id, status) in [
            (0, "RUNNING"),
            (1, "IDLE"),
            (2, "INITIALIZING"),
            (3, "DEINITIALIZING"),
        ] {
            assert_eq!(
                reply(&sup, &format!(r#"{{"command":"STATUS","id":{id}}}"#)).await,
                format!(r#"{{"command":"STATUS","error":"none","id":{id},"status":"{status}"}}"#)
            );
        }
        assert_eq!(
            reply(&sup, r#"{"command":"STATUS","id":4}"#).await,
            r#"{"command":"STATUS","error":"invalid id","id":4,"status":"INVALID"}"#
        );
        assert_eq!(
            reply(&sup, r#"{"command":"STATUS","id":1.5}"#).await,
            r#"{"command":"STATUS","error":"field \"id\" must be an integer","id":-1,"status":"INVALID"}"#
        );
    }
}
