//! What a supervisor can do, independent of where it runs.
//!
//! The protocol commands in [`crate::cmd`] are applied to a [`Supervisor`]. Two
//! implementations: the local one ([`crate::instances::Instances`]), and the web role's
//! protocol client ([`crate::web::client::SupervisorClient`]), which reaches any supervisor,
//! its own process's included, over the wire. The command unit tests use a scripted double.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::relay::RelayEndpoint;

/// The status of one slot, spelled as on the wire (seed `002_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceStatus {
    /// The slot is free; `START` may use it.
    Idle,
    /// The instance was launched and its signaling endpoint has not yet reported ready.
    Initializing,
    /// The instance answered the readiness probe: it streams.
    Running,
    /// The instance is being stopped (SIGTERM sent, SIGKILL after the stop timeout).
    Deinitializing,
    /// Only in replies to a request with an invalid id.
    Invalid,
}

/// Answer to `STATUS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Where the slot is in its life.
    pub status: InstanceStatus,
    /// How the previous instance in this slot ended (exit status and the tail of its output),
    /// kept until the slot is reused, so a crash is visible to the next `STATUS`.
    pub last_exit: Option<String>,
}

/// Answer to `SERVER_STATUS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStatus {
    /// Busy slots (any status but `IDLE`): what a backend subtracts from `total`.
    pub running: u32,
    /// Instances this server can run at once.
    pub total: u32,
    /// The id the next `START` would get (the lowest free slot), `None` when all are busy.
    pub next_free: Option<u32>,
}

/// Why a request failed. `Display` is the reply's `error` string, and [`Self::from_wire`] reads
/// it back; the first three are the seed's exact strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// `START` with every slot busy.
    #[error("no available slots")]
    NoAvailableSlots,
    /// `STOP` or `RESOLUTION` of a slot with no (running) instance.
    #[error("not running")]
    NotRunning,
    /// An id outside `0..total`.
    #[error("invalid id")]
    InvalidId,
    /// The supervisor is stopping all instances and takes no new ones.
    #[error("shutting down")]
    ShuttingDown,
    /// The instance (or its Xvfb) could not be launched; the slot is free again.
    #[error("launch failed: {0}")]
    LaunchFailed(String),
    /// The instance's control channel refused or did not answer.
    #[error("control channel: {0}")]
    Control(String),
    /// A remote supervisor could not be reached or answered outside the protocol. Only the
    /// protocol client ([`crate::web::client::SupervisorClient`]) returns it; a supervisor never
    /// sends it.
    #[error("supervisor unreachable: {0}")]
    Unreachable(String),
}

impl SupervisorError {
    /// The error whose `Display` is `text`, a reply's `error` (not `"none"`), read through
    /// `Display` itself so the wording lives only in the `#[error]`s. Other text (a field error,
    /// which typed requests never provoke, or a newer supervisor's) is outside the protocol.
    pub fn from_wire(text: &str) -> SupervisorError {
        use SupervisorError::*;
        // A new variant goes in one of these two lists.
        let plain = [NoAvailableSlots, NotRunning, InvalidId, ShuttingDown];
        let with_reason: [fn(String) -> SupervisorError; 3] = [LaunchFailed, Control, Unreachable];
        plain
            .into_iter()
            .find(|err| err.to_string() == text)
            .or_else(|| {
                with_reason.into_iter().find_map(|variant| {
                    let why = text.strip_prefix(&variant(String::new()).to_string())?;
                    Some(variant(why.to_string()))
                })
            })
            .unwrap_or_else(|| Unreachable(format!("unexpected error {text:?}")))
    }
}

/// The supervisor operations behind the protocol commands.
///
/// Ids are slot numbers, `0..total`. Implementations must be safe to call from many
/// connections at once.
pub trait Supervisor: Send + Sync + 'static {
    /// Launches an instance in the lowest free slot and returns its id once the process runs
    /// (it is then `INITIALIZING`).
    fn start(&self) -> impl Future<Output = Result<u32, SupervisorError>> + Send;

    /// Stops the instance in slot `id`; returns once the slot is `IDLE` again.
    fn stop(&self, id: u32) -> impl Future<Output = Result<(), SupervisorError>> + Send;

    /// The status of slot `id`.
    fn status(&self, id: u32)
    -> impl Future<Output = Result<StatusReport, SupervisorError>> + Send;

    /// Resizes the running instance `id`; returns once the stream has the new size.
    fn resolution(
        &self,
        id: u32,
        width: u32,
        height: u32,
    ) -> impl Future<Output = Result<(), SupervisorError>> + Send;

    /// Busy and total slots.
    fn server_status(&self) -> impl Future<Output = Result<ServerStatus, SupervisorError>> + Send;

    /// Where the relay connects for instance `id`'s `endpoint`: a `ws://` URL on loopback;
    /// for signaling, with a fresh join ticket for the role. Only a supervisor that runs
    /// instances relays; the default says so.
    fn relay_target(
        &self,
        id: u32,
        endpoint: RelayEndpoint,
    ) -> impl Future<Output = Result<String, SupervisorError>> + Send {
        let _ = (id, endpoint);
        async {
            Err(SupervisorError::Control(
                "this supervisor runs no instances to relay to".into(),
            ))
        }
    }

    /// Stops every instance this supervisor started and waits until they are gone.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
}
