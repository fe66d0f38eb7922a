//! The supervisor protocol's messages, one set of types for both ends (this server and the web
//! role's [`crate::web::client`]), and its commands: one file per command, each with its
//! request, its reply and `apply`.
//!
//! A request is one JSON object in a WebSocket text frame, `{"command":"START", …}`. Every
//! request gets exactly one reply object whose first fields are `command` and `error`
//! (`"none"` on success) and whose shape is the seed's for that command, also on failure (see
//! each command's reply type). `command` is the serde tag of both enums, which serde writes
//! first. Requests that name no known command get the reply of [`unknown`]. Extra fields in a
//! request are ignored; extra fields in a reply (`lastExit`) are ours.

pub mod parse;
pub mod resolution;
pub mod server_status;
pub mod start;
pub mod status;
pub mod stop;
pub mod unknown;

use serde::{Deserialize, Serialize};

pub use parse::{Fields, MAX_REQUEST_BYTES, ParseError};
pub use resolution::{MAX_DIMENSION, Resolution, ResolutionReply};
pub use server_status::{ServerStatus, ServerStatusReply};
pub use start::{Start, StartReply};
pub use status::{Status, StatusReply};
pub use stop::{Stop, StopReply};
pub use unknown::UnknownReply;

use crate::supervisor::Supervisor;

/// The `error` value of a successful reply.
pub const NO_ERROR: &str = "none";

/// A request. Only `Serialize`: the server reads requests by hand ([`Command::from_text`]),
/// because the protocol's field errors and echoes are not serde's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Request {
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
}

/// What the server makes of one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A valid request, to apply.
    Request(Request),
    /// The frame could not be parsed; this is its (error) reply.
    Refused(Reply),
}

impl Command {
    /// Parses one text frame. Never fails: a bad request becomes [`Command::Refused`] with a
    /// reply naming the problem, in the shape of the command it named when it named one.
    pub fn from_text(text: &str) -> Command {
        let fields = match Fields::from_text(text) {
            Ok(fields) => fields,
            Err((command, err)) => {
                return Command::Refused(Reply::Unknown(UnknownReply::new(command, err)));
            }
        };
        // The names are `Request`'s serde names; the client round-trip test pins that they agree.
        let parsed = match fields.command() {
            "START" => Ok(Request::Start(Start)),
            "STOP" => Stop::parse(&fields).map(Request::Stop).map_err(Reply::Stop),
            "STATUS" => Status::parse(&fields)
                .map(Request::Status)
                .map_err(Reply::Status),
            "RESOLUTION" => Resolution::parse(&fields)
                .map(Request::Resolution)
                .map_err(Reply::Resolution),
            "SERVER_STATUS" => Ok(Request::ServerStatus(ServerStatus)),
            other => Err(Reply::Unknown(UnknownReply::new(
                Some(other.to_string()),
                ParseError::UnknownCommand(other.to_string()),
            ))),
        };
        parsed.map_or_else(Command::Refused, Command::Request)
    }

    /// The reply to a binary frame (the protocol is JSON text).
    pub fn binary() -> Command {
        Command::Refused(Reply::Unknown(UnknownReply::new(None, ParseError::Binary)))
    }

    /// Runs the command against `supervisor` and returns its reply.
    pub async fn apply<S: Supervisor>(self, supervisor: &S) -> Reply {
        let request = match self {
            Command::Request(request) => request,
            Command::Refused(reply) => return reply,
        };
        match request {
            Request::Start(cmd) => Reply::Start(cmd.apply(supervisor).await),
            Request::Stop(cmd) => Reply::Stop(cmd.apply(supervisor).await),
            Request::Status(cmd) => Reply::Status(cmd.apply(supervisor).await),
            Request::Resolution(cmd) => Reply::Resolution(cmd.apply(supervisor).await),
            Request::ServerStatus(cmd) => Reply::ServerStatus(cmd.apply(supervisor).await),
        }
    }
}

/// One reply object: `command`, then the seed's fields in the seed's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "SCREAMING_SNAKE_CASE")]
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
    /// Reply to anything else. Untagged: it echoes any `command`, or `null`.
    #[serde(untagged)]
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
        /// When set, every call fails with it: the replies to errors the slots cannot cause.
        pub fail: Mutex<Option<SupervisorError>>,
    }

    impl Scripted {
        pub fn new(slots: &[InstanceStatus]) -> Scripted {
            Scripted {
                slots: Mutex::new(slots.to_vec()),
                calls: Mutex::new(Vec::new()),
                fail: Mutex::new(None),
            }
        }

        fn failing(&self) -> Result<(), SupervisorError> {
            self.fail.lock().unwrap().clone().map_or(Ok(()), Err)
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
            self.failing()?;
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
            self.failing()?;
            self.calls.lock().unwrap().push(format!("stop {id}"));
            if self.slot(id)? == InstanceStatus::Idle {
                return Err(SupervisorError::NotRunning);
            }
            self.slots.lock().unwrap()[id as usize] = InstanceStatus::Idle;
            Ok(())
        }

        async fn status(&self, id: u32) -> Result<StatusReport, SupervisorError> {
            self.failing()?;
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
            self.failing()?;
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
            self.failing()?;
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
