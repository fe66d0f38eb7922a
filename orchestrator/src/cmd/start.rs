//! `{"command":"START"}` → `{"command":"START","error":"none","id":0}`.
//!
//! Launches an instance in the lowest free slot. The reply comes once the process runs (it is
//! then `INITIALIZING`; poll `STATUS` for `RUNNING`). On failure `id` is -1 and `error` says
//! why: `"no available slots"`, `"launch failed: …"` or `"shutting down"`.

use serde::{Deserialize, Serialize};

use super::NO_ERROR;
use crate::supervisor::Supervisor;

/// `START`. It has no fields; any extra ones are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Start;

/// Reply to `START`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartReply {
    /// `"none"` or why the start failed.
    pub error: String,
    /// The new instance's id, -1 on failure.
    pub id: i64,
}

impl Start {
    /// Starts an instance.
    pub async fn apply<S: Supervisor>(self, supervisor: &S) -> StartReply {
        let (error, id) = match supervisor.start().await {
            Ok(id) => (NO_ERROR.into(), i64::from(id)),
            Err(err) => (err.to_string(), -1),
        };
        StartReply { error, id }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_support::Scripted;
    use crate::cmd::{Command, Reply};
    use crate::supervisor::InstanceStatus::*;

    #[tokio::test]
    async fn start_takes_the_lowest_free_id_then_reports_no_slots() {
        let sup = Scripted::new(&[Running, Idle, Idle]);
        let reply = Command::from_text(r#"{"command":"START"}"#)
            .apply(&sup)
            .await;
        assert_eq!(
            reply.to_json(),
            r#"{"command":"START","error":"none","id":1}"#
        );
        Command::from_text(r#"{"command":"START"}"#)
            .apply(&sup)
            .await;
        let reply = Command::from_text(r#"{"command":"START","extra":true}"#)
            .apply(&sup)
            .await;
        assert_eq!(
            reply.to_json(),
            r#"{"command":"START","error":"no available slots","id":-1}"#
        );
        assert!(matches!(reply, Reply::Start(_)));
    }
}
