//! The supervisor protocol's commands: one file per command, each with `parse` and `apply`.
//!
//! A request is one JSON object in a WebSocket text frame, `{"command":"START", …}`. Every
//! request gets exactly one reply object whose first fields are `command` and `error`
//! (`"none"` on success) and whose shape is the seed's for that command, also on failure (see
//! each command's reply type). Requests that name no known command get the reply of
//! [`unknown`]. Extra fields in a request are ignored; extra fields in a reply (`lastExit`)
//! are ours.

pub mod parse;
pub mod resolution;
pub mod server_status;
pub mod start;
pub mod status;
pub mod stop;
pub mod unknown;

use serde::Serialize;

pub use parse::{MAX_REQUEST_BYTES, ParseError, Request};
pub use resolution::{MAX_DIMENSION, Resolution, ResolutionReply};
pub use server_status::{ServerStatus, ServerStatusReply};
pub use start::{Start, StartReply};
pub use status::{Status, StatusReply};
pub use stop::{Stop, StopReply};
pub use unknown::UnknownReply;

use crate::supervisor::Supervisor;

/// The `error` value of a successful reply.
pub const NO_ERROR: &str = "none";

/// A parsed request, or the reply that refuses it.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `START`.
    Start(Start),
    /// `STOP`.
    Stop(Stop),
    /// `STATUS`.
    Status(Status),
    /// `RESOLUTION`.
    Resolution(Resolution),
    /// `SERVER_STATUS`.
    ServerStatus(ServerStatus),
    /// The request could not be parsed; this is its (error) reply.
    Refused(Reply),
}

impl Command {
    /// Parses one text frame. Never fails: a bad request becomes [`Command::Refused`] with a
    /// reply naming the problem, in the shape of the command it named when it named one.
    pub fn from_text(text: &str) -> Command {
        let request = match Request::from_text(text) {
            Ok(request) => request,
            Err((command, err)) => {
                return Command::Refused(Reply::Unknown(UnknownReply::new(command, err)));
            }
        };
        let parsed = match request.command() {
            "START" => Start::parse(&request)
                .map(Command::Start)
                .map_err(Reply::Start),
            "STOP" => Stop::parse(&request)
                .map(Command::Stop)
                .map_err(Reply::Stop),
            "STATUS" => Status::parse(&request)
                .map(Command::Status)
                .map_err(Reply::Status),
            "RESOLUTION" => Resolution::parse(&request)
                .map(Command::Resolution)
                .map_err(Reply::Resolution),
            "SERVER_STATUS" => ServerStatus::parse(&request)
                .map(Command::ServerStatus)
                .map_err(Reply::ServerStatus),
            other => Err(Reply::Unknown(UnknownReply::new(
                Some(other.to_string()),
                ParseError::UnknownCommand(other.to_string()),
            ))),
        };
        parsed.unwrap_or_else(Command::Refused)
    }

    /// The reply to a binary frame (the protocol is JSON text).
    pub fn binary() -> Command {
        Command::Refused(Reply::Unknown(UnknownReply::new(None, ParseError::Binary)))
    }

    /// Runs the command against `supervisor` and returns its reply.
    pub async fn apply<S: Supervisor>(self, supervisor: &S) -> Reply {
        match self {
            Command::Start(cmd) => Reply::Start(cmd.apply(supervisor).await),
            Command::Stop(cmd) => Reply::Stop(cmd.apply(supervisor).await),
            Command::Status(cmd) => Reply::Status(cmd.apply(supervisor).await),
            Command::Resolution(cmd) => Reply::Resolution(cmd.apply(supervisor).await),
            Command::ServerStatus(cmd) => Reply::ServerStatus(cmd.apply(supervisor).await),
            Command::Refused(reply) => reply,
        }
    }
}

/// One reply object, serialized with its fields in the seed's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// Reply to `START`.
    Start(StartReply),
    /// Reply to `STOP`.
    Stop(StopReply),
    /// Reply to `STATUS`.
    Status(StatusReply),
    /// Reply to `RESOLUTION`.
    Resolution(ResolutionReply),
    /// Reply to `SERVER_STATUS`.
    ServerStatus(ServerStatusReply),
    /// Reply to anything else.
    Unknown(UnknownReply),
}

impl Reply {
    /// The JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail; fall back to a fixed error object
        // rather than panicking if it ever did.
        serde_json::to_string(self).unwrap_or_else(|err| {
            format!(r#"{{"command":null,"error":"internal error: {err}","id":-1}}"#)
        })
    }

    /// The reply's `error` string.
    pub fn error(&self) -> &str {
        match self {
            Reply::Start(r) => &r.error,
            Reply::Stop(r) => &r.error,
            Reply::Status(r) => &r.error,
            Reply::Resolution(r) => &r.error,
            Reply::ServerStatus(r) => &r.error,
            Reply::Unknown(r) => &r.error,
        }
    }
}

/// Converts a request's id into a slot number; ids that cannot be one are "invalid id".
pub(crate) fn slot_id(id: i64) -> Option<u32> {
    u32::try_from(id).ok()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A scripted [`Supervisor`] for the commands' unit tests: no processes, no sockets.

    use std::sync::Mutex;

    use crate::supervisor::{
        InstanceStatus, ServerStatus, StatusReport, Supervisor, SupervisorError,
    };

    /// Slots as a vector of statuses; `start` takes the lowest idle one.
    pub struct Scripted {
        /// The slot statuses.
        pub slots: Mutex<Vec<InstanceStatus>>,
        /// Calls seen, for assertions.
        pub calls: Mutex<Vec<String>>,
    }

    impl Scripted {
        pub fn new(slots: &[InstanceStatus]) -> Scripted {
            Scripted {
                slots: Mutex::new(slots.to_vec()),
                calls: Mutex::new(Vec::new()),
            }
        }

        fn slot(&self, id: u32) -> Result<InstanceStatus, SupervisorError> {
            let slots = self.slots.lock().unwrap();
            slots
                .get(id as usize)
                .copied()
                .ok_or(SupervisorError::InvalidId)
        }
    }

    impl Supervisor for Scripted {
        async fn start(&self) -> Result<u32, SupervisorError> {
            self.calls.lock().unwrap().push("start".into());
            let mut slots = self.slots.lock().unwrap();
            let id = slots
                .iter()
                .position(|s| *s == InstanceStatus::Idle)
                .ok_or(SupervisorError::NoAvailableSlots)?;
            slots[id] = InstanceStatus::Initializing;
            Ok(id as u32)
        }

        async fn stop(&self, id: u32) -> Result<(), SupervisorError> {
            self.calls.lock().unwrap().push(format!("stop {id}"));
            if self.slot(id)? == InstanceStatus::Idle {
                return Err(SupervisorError::NotRunning);
            }
            self.slots.lock().unwrap()[id as usize] = InstanceStatus::Idle;
            Ok(())
        }

        async fn status(&self, id: u32) -> Result<StatusReport, SupervisorError> {
            Ok(StatusReport {
                status: self.slot(id)?,
                last_exit: None,
            })
        }

        async fn resolution(
            &self,
            id: u32,
            width: u32,
            height: u32,
        ) -> Result<(), SupervisorError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("resolution {id} {width}x{height}"));
            match self.slot(id)? {
                InstanceStatus::Running => Ok(()),
                _ => Err(SupervisorError::NotRunning),
            }
        }

        async fn server_status(&self) -> Result<ServerStatus, SupervisorError> {
            let slots = self.slots.lock().unwrap();
            Ok(ServerStatus {
                running: slots.iter().filter(|s| **s != InstanceStatus::Idle).count() as u32,
                total: slots.len() as u32,
                next_free: slots
                    .iter()
                    .position(|s| *s == InstanceStatus::Idle)
                    .map(|i| i as u32),
            })
        }

        async fn shutdown(&self) {}
    }
}
