//! The instances the web role launched: launching one on a rendering server, stopping and
//! resizing it, and what pages see of it while it lives and after.
//!
//! This file holds [`Manager`] and the operations the API calls, which combine the jobs kept
//! in the files beside it, one job each:
//!
//! | file | job |
//! | --- | --- |
//! | `registry.rs` | the rendering servers ([`Server`]) and which one is in this process |
//! | `placement.rs` | which server a launch tries first, from their `SERVER_STATUS` (a pure function) |
//! | `live.rs` | the live table of [`InstanceView`]s, pushing every change, viewers, ends |
//! | `monitor.rs` | one task per instance polling `STATUS`; adoption at start |
//! | `idle.rs` | the idle timeout |
//! | `words.rs` | the sentences pages show |
//!
//! Every change is broadcast as an [`InstanceView`], which the pages receive over WebSocket
//! ([`super::push`]).
//!
//! Locking:
//! - the live table and the registry: a `std::sync::Mutex` each, never held across an
//!   `.await` nor together (which server is local lives in the registry's; it had a mutex of
//!   its own, only ever read beside the servers);
//! - `launching`, a `tokio::sync::Mutex` held for a whole launch: one launch at a time, so the
//!   per-session and per-address limits and the choice of server see every launch before
//!   them (tested by `tests/web.rs`, `tests/web_roles.rs`, `tests/web_limits.rs`);
//! - one `tokio::sync::Mutex` per live instance, held across its `RESOLUTION`: one at a time,
//!   the latest request winning the race to the host.
//!
//! The tokio mutexes are taken first; the std ones only briefly inside them.

mod idle;
mod live;
mod monitor;
mod placement;
mod registry;
mod words;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

pub use live::{InstanceView, Phase, ViewerGuard};
pub use registry::Server;

use super::client::SupervisorAccess;
use super::db::{Db, DbError, InstanceRow, now_ms};
use super::relay::Upstream;
use super::token::{NoRandomness, new_uuid};
use crate::cmd::MAX_DIMENSION;
use crate::relay::RelayEndpoint;
use crate::secret::SupervisorSecret;
use crate::supervisor::{Supervisor, SupervisorError};
use live::LiveTable;
use registry::Registry;

/// How the web role runs instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerSettings {
    /// A `RUNNING` instance with no viewer for this long is stopped (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Instances one session may have at once (0: no limit).
    pub max_per_session: u32,
    /// Live instances launched from one client address at once, whatever the session (0: no
    /// limit).
    pub max_per_address: u32,
    /// Pause between `STATUS` polls while an instance is `INITIALIZING`.
    pub poll_initializing: Duration,
    /// Pause between `STATUS` polls after that (crash detection, idle check).
    pub poll_running: Duration,
    /// How long a server may fail to answer before its instances count as ended.
    pub unreachable_grace: Duration,
    /// The waiting page's expected startup time before a server has started anything.
    pub default_startup: Duration,
    /// What every supervisor connection presents (`--supervisor-secret`), if they need one.
    pub supervisor_secret: Option<SupervisorSecret>,
    /// The PEM bundle a `wss://` supervisor's certificate must chain to
    /// (`--supervisor-ca`); the system's roots when `None`.
    pub supervisor_ca: Option<PathBuf>,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        ManagerSettings {
            idle_timeout: Some(Duration::from_secs(300)),
            max_per_session: 4,
            max_per_address: 8,
            poll_initializing: Duration::from_millis(200),
            poll_running: Duration::from_secs(1),
            unreachable_grace: Duration::from_secs(30),
            default_startup: Duration::from_secs(10),
            supervisor_secret: None,
            supervisor_ca: None,
        }
    }
}

/// Why an operation on instances failed. `Display` is what the page shows.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// Every server is full or unreachable.
    #[error("no rendering server has a free slot; stop an instance or try again later")]
    NoCapacity,
    /// No server is registered at all.
    #[error("no rendering server is registered")]
    NoServers,
    /// The session's limit.
    #[error("this browser already runs {0} instances, the most allowed at once; stop one first")]
    TooMany(u32),
    /// The client address's limit.
    #[error("your address already runs {0} instances, the most allowed at once; stop one first")]
    TooManyFromAddress(u32),
    /// No such instance.
    #[error("no such instance")]
    NotFound,
    /// The operation needs a running instance.
    #[error("the instance is {0}, not running")]
    NotRunning(&'static str),
    /// A size outside 1..=7680.
    #[error("invalid size {0}x{1}: width and height must be integers from 1 to {MAX_DIMENSION}")]
    BadSize(u32, u32),
    /// The supervisor refused or could not be reached.
    #[error("{0}")]
    Supervisor(SupervisorError),
    /// The database failed before anything changed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The action happened, but the database could not record it (yet).
    #[error("{done}, but the database could not record it yet")]
    Unrecorded {
        /// What happened, e.g. "the instance was stopped".
        done: &'static str,
        /// Why the write failed.
        source: DbError,
    },
    /// No randomness for a UUID.
    #[error(transparent)]
    Random(#[from] NoRandomness),
}

/// The instance manager. Shared as `Arc<Manager>`.
pub struct Manager {
    /// Sessions, instances, servers.
    db: Db,
    /// Timeouts and limits.
    settings: ManagerSettings,
    /// How every supervisor connection is opened (secret, TLS), protocol and relay alike.
    access: SupervisorAccess,
    /// The rendering servers.
    servers: Registry,
    /// Live instances, and the channel of their changes.
    live: LiveTable,
    /// One launch at a time: the per-session limit and the choice of server see every launch
    /// before them.
    launching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager with no servers yet.
    pub fn new(db: Db, settings: ManagerSettings) -> Arc<Manager> {
        let access = SupervisorAccess::new(
            settings.supervisor_secret.clone(),
            settings.supervisor_ca.clone(),
        );
        Arc::new(Manager {
            db,
            settings,
            access,
            servers: Registry::default(),
            live: LiveTable::new(),
            launching: tokio::sync::Mutex::new(()),
        })
    }

    /// How supervisors are reached (the web role checks its TLS trust at start).
    pub fn supervisor_access(&self) -> &SupervisorAccess {
        &self.access
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Every change of every instance from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<InstanceView> {
        self.live.subscribe()
    }

    /// The mean startup time of the server's last instances (ms), or the default.
    async fn expected_startup(&self, server_id: &str) -> i64 {
        match self.db.expected_startup_ms(server_id).await {
            Ok(Some(ms)) => ms,
            Ok(None) => self.settings.default_startup.as_millis() as i64,
            Err(err) => {
                warn!(%err, "cannot read past startup times");
                self.settings.default_startup.as_millis() as i64
            }
        }
    }

    /// Launches an instance for `session_id`, asked for from the client address key
    /// `client`, on the least loaded server.
    pub async fn launch(
        self: &Arc<Self>,
        session_id: &str,
        client: &str,
    ) -> Result<InstanceView, ManagerError> {
        let _one_at_a_time = self.launching.lock().await;
        let (by_session, by_client) = {
            let live = self.live.lock();
            let running = live.values().filter(|l| l.view.status != Phase::Ended);
            running.fold((0usize, 0usize), |(session, address), l| {
                (
                    session + usize::from(l.view.session_id == session_id),
                    address + usize::from(l.client.as_deref() == Some(client)),
                )
            })
        };
        let max = self.settings.max_per_session;
        if max > 0 && by_session >= max as usize {
            return Err(ManagerError::TooMany(max));
        }
        // Sessions cost nothing to make: without this, each new one would bring its own
        // allowance.
        let max = self.settings.max_per_address;
        if max > 0 && by_client >= max as usize {
            return Err(ManagerError::TooManyFromAddress(max));
        }
        if self.servers.is_empty() {
            return Err(ManagerError::NoServers);
        }
        let mut failure = None;
        for server in self.candidates().await {
            match server.client.start().await {
                Ok(slot) => return self.record_launch(session_id, client, server, slot).await,
                Err(SupervisorError::NoAvailableSlots) => continue,
                Err(err) => {
                    warn!(supervisor = %server.client.url(), %err, "START failed");
                    failure = Some(err);
                }
            }
        }
        Err(failure.map_or(ManagerError::NoCapacity, ManagerError::Supervisor))
    }

    async fn record_launch(
        self: &Arc<Self>,
        session_id: &str,
        client: &str,
        server: Arc<Server>,
        slot: u32,
    ) -> Result<InstanceView, ManagerError> {
        // A slot we still thought busy was freed behind our back (the instance ended between
        // two polls): that instance is over.
        let stale: Vec<String> = self
            .live
            .lock()
            .iter()
            .filter(|(_, l)| l.slot == slot && l.server.row.server_id == server.row.server_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            // A failure is logged and retried by `end` itself.
            let _ = self.end(&id, words::SLOT_TAKEN_OVER.to_string()).await;
        }
        let created = async {
            let id = new_uuid()?;
            let row = InstanceRow {
                instance_id: id,
                session_id: session_id.to_string(),
                server_id: server.row.server_id.clone(),
                slot,
                status: Phase::Initializing.as_str().to_string(),
                end_reason: None,
                created_at: now_ms(),
                running_at: None,
                ended_at: None,
                width: None,
                height: None,
                client_address: Some(client.to_string()),
            };
            self.db.insert_instance(&row).await?;
            Ok::<_, ManagerError>(row)
        };
        let row = match created.await {
            Ok(row) => row,
            Err(err) => {
                error!(%err, slot, "cannot record a launched instance; stopping it");
                let _ = server.client.stop(slot).await;
                return Err(err);
            }
        };
        let mut view = InstanceView::from_row(&row);
        view.expected_startup_ms = self.expected_startup(&server.row.server_id).await;
        info!(instance = %view.id, slot, supervisor = %server.client.url(), "instance launched");
        let client = row.client_address.clone();
        self.insert_live(view.clone(), server, slot, client);
        Ok(view)
    }

    /// The instance as a page sees it, live or from the database.
    pub async fn view(&self, id: &str) -> Result<Option<InstanceView>, ManagerError> {
        if let Some(live) = self.live.lock().get(id) {
            return Ok(Some(live.view.clone()));
        }
        Ok(self
            .db
            .instance(id)
            .await?
            .as_ref()
            .map(InstanceView::from_row))
    }

    /// A session's instances, newest first: the live ones and the last few ended.
    pub async fn views_of_session(
        &self,
        session_id: &str,
    ) -> Result<Vec<InstanceView>, ManagerError> {
        let rows = self.db.instances_of_session(session_id, 10).await?;
        let live = self.live.lock();
        Ok(rows
            .iter()
            .map(|row| match live.get(&row.instance_id) {
                Some(l) => l.view.clone(),
                None => InstanceView::from_row(row),
            })
            .collect())
    }

    /// How to reach the running instance's `endpoint`: its supervisor's relay.
    pub fn upstream(&self, id: &str, endpoint: RelayEndpoint) -> Result<Upstream, ManagerError> {
        let live = self.live.lock();
        let l = live.get(id).ok_or(ManagerError::NotRunning("ended"))?;
        if l.view.status != Phase::Running {
            return Err(ManagerError::NotRunning(l.view.status.words()));
        }
        Ok(Upstream {
            url: l.server.relay_url(l.slot, endpoint),
            access: self.access.clone(),
        })
    }

    /// Stops `id` for `reason` (the sentence the page will show) and returns its final view.
    ///
    /// `DEINITIALIZING` is recorded before the supervisor is asked: if the database cannot
    /// take it, nothing is stopped and the database still tells the truth. Once stopped, the
    /// end is recorded; if that fails, it is retried until it works, and the caller learns
    /// that it is not recorded yet ([`ManagerError::Unrecorded`]).
    pub async fn stop(
        self: &Arc<Self>,
        id: &str,
        reason: String,
    ) -> Result<InstanceView, ManagerError> {
        let found = self
            .live
            .lock()
            .get(id)
            .filter(|l| l.view.status != Phase::Ended)
            .map(|l| (Arc::clone(&l.server), l.slot));
        let Some((server, slot)) = found else {
            // Already ended (its record maybe still under way): its final view.
            return self.view(id).await?.ok_or(ManagerError::NotFound);
        };
        self.db
            .set_status(id, Phase::Deinitializing.as_str())
            .await?;
        self.live.change(id, |l| {
            if l.stopping.is_none() {
                l.stopping = Some(reason.clone());
            }
            if l.view.status != Phase::Ended {
                l.view.status = Phase::Deinitializing;
            }
            true
        });
        info!(instance = %id, %reason, "stopping instance");
        match server.client.stop(slot).await {
            Ok(()) | Err(SupervisorError::NotRunning) => {}
            Err(err) => {
                warn!(instance = %id, %err, "STOP failed");
                return Err(ManagerError::Supervisor(err));
            }
        }
        let reason = self
            .live
            .lock()
            .get(id)
            .and_then(|l| l.stopping.clone())
            .unwrap_or(reason);
        self.end(id, reason)
            .await
            .map_err(|source| ManagerError::Unrecorded {
                done: "the instance was stopped",
                source,
            })?;
        self.view(id).await?.ok_or(ManagerError::NotFound)
    }

    /// Resizes the running instance `id` and returns its view with the new size.
    pub async fn resize(
        &self,
        id: &str,
        width: u32,
        height: u32,
    ) -> Result<InstanceView, ManagerError> {
        if !(1..=MAX_DIMENSION).contains(&width) || !(1..=MAX_DIMENSION).contains(&height) {
            return Err(ManagerError::BadSize(width, height));
        }
        let lock = {
            let live = self.live.lock();
            let l = live.get(id).ok_or(ManagerError::NotRunning("ended"))?;
            if l.view.status != Phase::Running {
                return Err(ManagerError::NotRunning(l.view.status.words()));
            }
            Arc::clone(&l.resize)
        };
        let _one_at_a_time = lock.lock().await;
        let (server, slot) = {
            let live = self.live.lock();
            let l = live.get(id).ok_or(ManagerError::NotRunning("ended"))?;
            (Arc::clone(&l.server), l.slot)
        };
        server
            .client
            .resolution(slot, width, height)
            .await
            .map_err(|err| match err {
                SupervisorError::NotRunning => ManagerError::NotRunning("not running any more"),
                err => ManagerError::Supervisor(err),
            })?;
        let view = self
            .live
            .change(id, |l| {
                l.view.width = Some(width);
                l.view.height = Some(height);
                true
            })
            .ok_or(ManagerError::NotRunning("ended"))?;
        self.db
            .set_size(id, width, height)
            .await
            .map_err(|source| ManagerError::Unrecorded {
                done: "the stream was resized",
                source,
            })?;
        Ok(view)
    }

    /// Stops watching. With `local_stops`, the supervisor in this process is about to stop
    /// its instances: they are marked ended now. Instances elsewhere stay live in the
    /// database, for the next start to adopt. Ends still waiting to be recorded get one last
    /// try; those that fail are marked ended by the next start, which finds their slots idle.
    pub async fn shutdown(self: &Arc<Self>, local_stops: bool) {
        let local = self.servers.local();
        let all: Vec<(String, String, Phase)> = self
            .live
            .lock()
            .iter()
            .map(|(id, l)| (id.clone(), l.server.row.server_id.clone(), l.view.status))
            .collect();
        for (id, server_id, phase) in all {
            if phase == Phase::Ended {
                let removed = self.live.lock().remove(&id);
                if let Some(l) = removed {
                    if let Some(retry) = l.monitor {
                        retry.abort();
                    }
                    let reason = l.view.reason.unwrap_or_default();
                    let at = l.view.ended_at.unwrap_or_else(now_ms);
                    if let Err(err) = self.db.set_ended(&id, &reason, at).await {
                        error!(
                            %err,
                            instance = %id,
                            "the end of an instance is not recorded; the next start records it"
                        );
                    }
                }
            } else if local_stops && local.as_deref() == Some(server_id.as_str()) {
                let _ = self.end(&id, words::STOPPED_AT_SHUTDOWN.to_string()).await;
            } else {
                let removed = self.live.lock().remove(&id);
                if let Some(monitor) = removed.and_then(|mut l| l.monitor.take()) {
                    monitor.abort();
                }
            }
        }
        // Ends that failed just now: their retry tasks stop here, the next start records them.
        let pending: Vec<String> = self.live.lock().keys().cloned().collect();
        for id in pending {
            if let Some(retry) = self.live.lock().remove(&id).and_then(|l| l.monitor) {
                retry.abort();
            }
        }
        for server in self.servers.all() {
            server.client.shutdown().await;
        }
    }
}
