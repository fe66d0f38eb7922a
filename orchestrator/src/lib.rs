//! The OpenSpace WebRTC orchestrator: one binary, two roles.
//!
//! The **web** role ([`web`]) is the single origin browsers use: pages, a JSON API, sessions in
//! a database, and each viewer's signaling proxied to its instance. It reaches supervisors,
//! the one in its own process included, through the supervisor protocol. The rest of this
//! crate is the **supervisor** role.
//!
//! A supervisor runs on each rendering server. It speaks the seeds' supervisor protocol (JSON
//! over WebSocket, default port 4699: `START`, `STOP`, `STATUS`, `RESOLUTION`,
//! `SERVER_STATUS`) and really launches, watches and stops streaming instances (the GL test
//! host, or OpenSpace with the `WebRtc` module). Each instance serves its own signaling and
//! control endpoint (rust-core); the supervisor reaches it through [`control_client`] to learn
//! when it is ready and to resize it.
//!
//! # Layout
//!
//! - [`config`]: the command line (clap), the TOML file and their merge into [`config::Config`].
//! - [`server`]: [`run`]`(listener, supervisor, shutdown)`: the accept loop (`Listener`) and one
//!   `Handler` per WebSocket connection, which turns each text frame into a [`cmd::Command`].
//! - [`shutdown`]: the broadcast + drain helper every connection task listens to, and the
//!   process's termination signals.
//! - [`cmd`]: one file per supervisor command, each with `parse` (JSON → command or an error
//!   reply) and `apply` (command → reply); malformed and unknown requests get an error reply
//!   from `cmd/unknown.rs`, never a closed connection.
//! - [`supervisor`]: the [`supervisor::Supervisor`] trait the commands run against, its status
//!   types and its error strings (exactly the seed's). The web role talks to local and remote
//!   supervisors through this same trait ([`web::client::SupervisorClient`]).
//! - [`instances`]: the local supervisor: the slot table (lowest free id first), process launch
//!   with the per-instance environment, per-instance Xvfb, the readiness probe, the exit watch
//!   and the per-instance log files.
//! - [`web`]: the web role (HTTP origin, API, signaling proxy, push, instance manager,
//!   supervisor protocol client, database, TLS).
//! - [`secret`]: the secret supervisor-protocol connections present (bearer header or
//!   `?token=`).
//! - [`control_client`]: the client of rust-core's control channel (`hello`, `ready`, `resize`,
//!   `getStats`), with the message types of `openspace-webrtc-protocol`.
//!
//! The `fake-instance` binary (`src/bin/fake-instance.rs`) is a test double of an instance: it
//! serves the control channel and can be told to crash or to be slow, so the conformance tests
//! run fast without a GL host.
//!
//! # Errors
//!
//! Inside the crate, each module has its own `thiserror` enum ([`supervisor::SupervisorError`],
//! [`cmd::ParseError`], [`control_client::ControlError`], [`config::ConfigError`],
//! [`web::WebError`], [`web::api::ApiError`], [`web::manager::ManagerError`],
//! [`web::db::DbError`]); the wire error strings of the protocol are their `Display`. `anyhow`
//! is used only in `main.rs`.

pub mod cmd;
pub mod config;
pub mod control_client;
pub mod instances;
pub mod relay;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod supervisor;
pub mod web;

pub use server::{ConnectionLimits, ServerSettings, run, run_with};
