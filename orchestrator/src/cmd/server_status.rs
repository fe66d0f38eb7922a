//! `{"command":"SERVER_STATUS"}` →
//! `{"command":"SERVER_STATUS","error":"none","id":0,"running":1,"total":3}`.
//!
//! `running` counts busy slots (any status but `IDLE`, as the seed's "busy sessions"), `total`
//! the slots. The seed leaves `id` unexplained; here it is **the id the next `START` would
//! get** (the lowest free slot), or -1 when every slot is busy, so a backend choosing a server
//! can read both load and the next id from one reply.

use serde::{Deserialize, Serialize};

use super::NO_ERROR;
use crate::supervisor::Supervisor;

/// `SERVER_STATUS`. It has no fields; any extra ones are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus;

/// Reply to `SERVER_STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatusReply {
    /// `"none"` (or `"shutting down"`).
    pub error: String,
    /// The lowest free id, -1 when none is free.
    pub id: i64,
    /// Busy slots.
    pub running: u32,
    /// All slots.
    pub total: u32,
}

impl ServerStatus {
    /// Reads the slot table.
    pub async fn apply<S: Supervisor>(self, supervisor: &S) -> ServerStatusReply {
        match supervisor.server_status().await {
            Ok(status) => ServerStatusReply {
                error: NO_ERROR.into(),
                id: status.next_free.map_or(-1, i64::from),
                running: status.running,
                total: status.total,
            },
            Err(err) => ServerStatusReply {
                error: err.to_string(),
                id: -1,
                running: 0,
                total: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::Command;
    use crate::cmd::test_support::Scripted;
    use crate::supervisor::InstanceStatus::*;

    #[tokio::test]
    async fn server_status_reports_busy_total_and_next_id() {
        let sup = Scripted::new(&[Running, Idle, Initializing]);
        let reply = Command::from_text(r#"{"command":"SERVER_STATUS"}"#)
            .apply(&sup)
            .await;
        assert_eq!(
            reply.to_json(),
            r#"{"command":"SERVER_STATUS","error":"none","id":1,"running":2,"total":3}"#
        );
        let sup = Scripted::new(&[Running]);
        let reply = Command::from_text(r#"{"command":"SERVER_STATUS"}"#)
            .apply(&sup)
            .await;
        assert_eq!(
            reply.to_json(),
            r#"{"command":"SERVER_STATUS","error":"none","id":-1,"running":1,"total":1}"#
        );
    }
}
