//! The instances the web role launched: which server and slot each runs in, its phase as a
//! page sees it, its viewers, and the watch that notices when it is ready, ends or idles.
//!
//! Every change is broadcast as an [`InstanceView`], which the pages receive over WebSocket
//! ([`super::push`]). The supervisor protocol has no push of its own, so one task per live
//! instance polls `STATUS` on its server: every 200 ms while it starts, every second after.
//! That poll stays between the web role and the supervisor; pages are pushed to.
//!
//! Locking: one `std::sync::Mutex` around the live table, never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::client::SupervisorClient;
use super::db::{Db, DbError, InstanceRow, ServerRow, now_ms};
use super::relay::Upstream;
use super::token::{NoRandomness, new_uuid};
use crate::cmd::MAX_DIMENSION;
use crate::relay::{RelayEndpoint, RelayRoute};
use crate::secret::SupervisorSecret;
use crate::supervisor::{InstanceStatus, Supervisor, SupervisorError};

/// First pause before recording an end again after the database refused it.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest pause between those tries.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(30);

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
        }
    }
}

/// An instance's phase as pages see it: the supervisor's statuses, and `ENDED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Launched; its first frame is not there yet.
    Initializing,
    /// Streaming.
    Running,
    /// Being stopped.
    Deinitializing,
    /// Gone; `reason` says why.
    Ended,
}

impl Phase {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initializing => "INITIALIZING",
            Phase::Running => "RUNNING",
            Phase::Deinitializing => "DEINITIALIZING",
            Phase::Ended => "ENDED",
        }
    }

    fn parse(text: &str) -> Phase {
        match text {
            "INITIALIZING" => Phase::Initializing,
            "RUNNING" => Phase::Running,
            "DEINITIALIZING" => Phase::Deinitializing,
            _ => Phase::Ended,
        }
    }

    /// In words, for errors.
    fn words(self) -> &'static str {
        match self {
            Phase::Initializing => "still starting",
            Phase::Running => "running",
            Phase::Deinitializing => "stopping",
            Phase::Ended => "ended",
        }
    }
}

/// What a page knows about an instance: no server address, port, slot or process id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// The UUID.
    pub id: String,
    /// Its stream page, `/stream/<uuid>`.
    pub url: String,
    /// Its phase.
    pub status: Phase,
    /// Why it ended (for `ENDED`), a sentence for the page.
    pub reason: Option<String>,
    /// Launch time, ms since the epoch.
    pub created_at: i64,
    /// When it became `RUNNING`.
    pub running_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// How long the server's instances took to start lately (ms): the waiting page's scale.
    pub expected_startup_ms: i64,
    /// Signaling connections open through this web role now.
    pub viewers: u32,
    /// Stream width after the last resize through the web role.
    pub width: Option<u32>,
    /// Stream height after the last resize.
    pub height: Option<u32>,
    /// The owning session (never sent to pages).
    #[serde(skip)]
    pub session_id: String,
}

impl InstanceView {
    fn from_row(row: &InstanceRow) -> InstanceView {
        InstanceView {
            id: row.instance_id.clone(),
            url: format!("/stream/{}", row.instance_id),
            status: Phase::parse(&row.status),
            reason: row.end_reason.clone(),
            created_at: row.created_at,
            running_at: row.running_at,
            ended_at: row.ended_at,
            expected_startup_ms: 0,
            viewers: 0,
            width: row.width,
            height: row.height,
            session_id: row.session_id.clone(),
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

/// A rendering server: its registry row and its protocol client.
#[derive(Debug)]
pub struct Server {
    /// The `servers` row.
    pub row: ServerRow,
    /// The supervisor protocol client.
    pub client: SupervisorClient,
}

impl Server {
    /// The supervisor URL that relays to instance `slot`'s `endpoint`: the web role reaches
    /// instances only through the supervisor that owns them.
    pub fn relay_url(&self, slot: u32, endpoint: RelayEndpoint) -> String {
        let host = &self.row.ip_address;
        let path = RelayRoute { id: slot, endpoint }.path();
        if host.contains(':') && !host.starts_with('[') {
            format!("ws://[{host}]:{}{path}", self.row.port)
        } else {
            format!("ws://{host}:{}{path}", self.row.port)
        }
    }
}

/// One live instance.
struct Live {
    /// What pages see.
    view: InstanceView,
    /// Where it runs.
    server: Arc<Server>,
    /// Its slot there.
    slot: u32,
    /// The client address key that launched it (for the per-address limit).
    client: Option<String>,
    /// Since when it has had no viewer while `RUNNING` (for the idle timeout).
    idle_since: Option<Instant>,
    /// Why we asked it to stop, once we did: its end reason, whoever notices the end.
    stopping: Option<String>,
    /// One `RESOLUTION` at a time per instance; the latest request wins the race to the host.
    resize: Arc<tokio::sync::Mutex<()>>,
    /// The watch task; once the instance has ended, the task that retries recording that.
    monitor: Option<AbortHandle>,
}

/// The instance manager. Shared as `Arc<Manager>`.
pub struct Manager {
    /// Sessions, instances, servers.
    db: Db,
    /// Timeouts and limits.
    settings: ManagerSettings,
    /// Servers by `server_id`.
    servers: Mutex<HashMap<String, Arc<Server>>>,
    /// The server in this process, whose instances stop when this process stops.
    local_server: Mutex<Option<String>>,
    /// Live instances by UUID.
    live: Mutex<HashMap<String, Live>>,
    /// Every change of every instance.
    changes: broadcast::Sender<InstanceView>,
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

/// Held by each signaling connection; counts it as a viewer until dropped.
pub struct ViewerGuard {
    /// The manager.
    manager: Arc<Manager>,
    /// The instance watched.
    id: String,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.manager.viewer_left(&self.id);
    }
}

/// "90 s", "5 min".
pub fn describe_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 120 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else if d.subsec_millis() != 0 && secs < 10 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{secs} s")
    }
}

/// The page's sentence for a supervisor's `lastExit` of an instance that ended by itself.
pub fn describe_exit(last_exit: Option<&str>) -> String {
    let Some(text) = last_exit else {
        return "The instance ended.".to_string();
    };
    if text.starts_with("did not become ready") {
        return "The instance did not finish starting in time and was stopped.".to_string();
    }
    if text.starts_with("no frames for") {
        return "The instance stopped delivering pictures and was ended.".to_string();
    }
    if text.starts_with("stopped on request") {
        return "The instance was stopped on its rendering server.".to_string();
    }
    if text.starts_with("stopped at supervisor shutdown") {
        return "The rendering server shut down, which stopped the instance.".to_string();
    }
    // "exited with status 1: <output tail>": the tail stays in the server's logs.
    let how = text.split(": ").next().unwrap_or(text);
    format!("The instance ended unexpectedly ({how}).")
}

impl Manager {
    /// A manager with no servers yet.
    pub fn new(db: Db, settings: ManagerSettings) -> Arc<Manager> {
        let (changes, _) = broadcast::channel(256);
        Arc::new(Manager {
            db,
            settings,
            servers: Mutex::new(HashMap::new()),
            local_server: Mutex::new(None),
            live: Mutex::new(HashMap::new()),
            changes,
            launching: tokio::sync::Mutex::new(()),
        })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn live(&self) -> MutexGuard<'_, HashMap<String, Live>> {
        // Every update under this lock is a plain assignment: a panic cannot leave it torn.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn server_map(&self) -> MutexGuard<'_, HashMap<String, Arc<Server>>> {
        self.servers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every change of every instance from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<InstanceView> {
        self.changes.subscribe()
    }

    fn publish(&self, view: InstanceView) {
        // No subscriber is fine.
        let _ = self.changes.send(view);
    }

    /// Registers a server (or refreshes its row) and makes it available for launches.
    /// `local` marks the supervisor in this process.
    pub async fn register_server(&self, row: ServerRow, local: bool) -> Result<ServerRow, DbError> {
        let stored = self.db.upsert_server(&row).await?;
        info!(
            server_id = %stored.server_id,
            supervisor = %format!("{}:{}", stored.ip_address, stored.port),
            slots = stored.num_instances,
            local,
            "rendering server registered"
        );
        self.add_server(stored.clone());
        if local {
            *self
                .local_server
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(stored.server_id.clone());
        }
        Ok(stored)
    }

    /// Loads every server of the `servers` table (other web roles may have added some).
    pub async fn load_servers(&self) -> Result<(), DbError> {
        for row in self.db.servers().await? {
            if !self.server_map().contains_key(&row.server_id) {
                self.add_server(row);
            }
        }
        Ok(())
    }

    fn add_server(&self, row: ServerRow) {
        let client = SupervisorClient::new(
            &row.ip_address,
            row.port,
            self.settings.supervisor_secret.clone(),
        );
        self.server_map()
            .insert(row.server_id.clone(), Arc::new(Server { row, client }));
    }

    fn server(&self, server_id: &str) -> Option<Arc<Server>> {
        self.server_map().get(server_id).cloned()
    }

    /// Takes back the instances the database lists as live: those their supervisor still
    /// runs are watched again, the others are marked ended.
    pub async fn adopt(self: &Arc<Self>) -> Result<(), DbError> {
        for row in self.db.live_instances().await? {
            let id = row.instance_id.clone();
            let Some(server) = self.server(&row.server_id) else {
                self.db
                    .set_ended(
                        &id,
                        "Its rendering server is no longer registered.",
                        now_ms(),
                    )
                    .await?;
                continue;
            };
            let status = server.client.status(row.slot).await;
            let phase = match &status {
                Ok(report) => match report.status {
                    InstanceStatus::Initializing => Phase::Initializing,
                    InstanceStatus::Running => Phase::Running,
                    InstanceStatus::Deinitializing => Phase::Deinitializing,
                    InstanceStatus::Idle | InstanceStatus::Invalid => {
                        let reason = "The instance was gone when the orchestrator restarted.";
                        info!(instance = %id, "not adopted: its slot is idle");
                        self.db.set_ended(&id, reason, now_ms()).await?;
                        continue;
                    }
                },
                // Unreachable now: watch it anyway; the grace period decides.
                Err(_) => Phase::parse(&row.status),
            };
            let mut view = InstanceView::from_row(&row);
            view.status = phase;
            view.expected_startup_ms = self.expected_startup(&server).await;
            info!(instance = %id, slot = row.slot, status = phase.as_str(), "instance adopted");
            if phase == Phase::Running && row.running_at.is_none() {
                self.db.set_running(&id, now_ms()).await?;
            }
            self.insert_live(view, server, row.slot, row.client_address.clone());
        }
        Ok(())
    }

    async fn expected_startup(&self, server: &Server) -> i64 {
        match self.db.expected_startup_ms(&server.row.server_id).await {
            Ok(Some(ms)) => ms,
            Ok(None) => self.settings.default_startup.as_millis() as i64,
            Err(err) => {
                warn!(%err, "cannot read past startup times");
                self.settings.default_startup.as_millis() as i64
            }
        }
    }

    fn insert_live(
        self: &Arc<Self>,
        view: InstanceView,
        server: Arc<Server>,
        slot: u32,
        client: Option<String>,
    ) {
        let id = view.id.clone();
        let running = view.status == Phase::Running;
        let monitor = {
            let manager = Arc::clone(self);
            let span = info_span!(parent: None, "instance", %id, slot);
            let id = id.clone();
            tokio::spawn(async move { manager.monitor(id).await }.instrument(span)).abort_handle()
        };
        self.live().insert(
            id,
            Live {
                view: view.clone(),
                server,
                slot,
                client,
                idle_since: running.then(Instant::now),
                stopping: None,
                resize: Arc::new(tokio::sync::Mutex::new(())),
                monitor: Some(monitor),
            },
        );
        self.publish(view);
    }

    /// Servers with a free slot, least loaded first (by `SERVER_STATUS`, asked of every
    /// server at once; the answers are stored in `servers`).
    async fn candidates(&self) -> Vec<Arc<Server>> {
        let servers: Vec<Arc<Server>> = self.server_map().values().cloned().collect();
        let answers = join_all(servers.iter().map(|s| s.client.server_status())).await;
        let mut free = Vec::new();
        for (server, answer) in servers.into_iter().zip(answers) {
            let id = &server.row.server_id;
            let stored = match answer {
                Ok(status) => {
                    let available = status.total.saturating_sub(status.running);
                    if available > 0 {
                        free.push((available, status.running, status.total, Arc::clone(&server)));
                    }
                    self.db
                        .set_server_load(id, "active", available, status.total)
                        .await
                }
                Err(err) => {
                    warn!(supervisor = %server.client.url(), %err, "server did not answer SERVER_STATUS");
                    self.db.set_server_status(id, "unreachable").await
                }
            };
            if let Err(err) = stored {
                warn!(%err, "cannot store a server's load");
            }
        }
        // Most free slots first; then the smaller share of busy slots; then a stable order.
        free.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then((u64::from(a.1) * u64::from(b.2)).cmp(&(u64::from(b.1) * u64::from(a.2))))
                .then(a.3.row.server_id.cmp(&b.3.row.server_id))
        });
        free.into_iter().map(|(_, _, _, server)| server).collect()
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
            let live = self.live();
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
        if self.server_map().is_empty() {
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
            .live()
            .iter()
            .filter(|(_, l)| l.slot == slot && l.server.row.server_id == server.row.server_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            // A failure is logged and retried by `end` itself.
            let _ = self.end(&id, "The instance ended.".to_string()).await;
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
        view.expected_startup_ms = self.expected_startup(&server).await;
        info!(instance = %view.id, slot, supervisor = %server.client.url(), "instance launched");
        let client = row.client_address.clone();
        self.insert_live(view.clone(), server, slot, client);
        Ok(view)
    }

    /// The instance as a page sees it, live or from the database.
    pub async fn view(&self, id: &str) -> Result<Option<InstanceView>, ManagerError> {
        if let Some(live) = self.live().get(id) {
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
        let live = self.live();
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
        let live = self.live();
        let l = live.get(id).ok_or(ManagerError::NotRunning("ended"))?;
        if l.view.status != Phase::Running {
            return Err(ManagerError::NotRunning(l.view.status.words()));
        }
        Ok(Upstream {
            url: l.server.relay_url(l.slot, endpoint),
            secret: self.settings.supervisor_secret.clone(),
        })
    }

    /// Counts a signaling connection as a viewer of `id` until the guard drops.
    pub fn viewer_joined(self: &Arc<Self>, id: &str) -> ViewerGuard {
        let view = {
            let mut live = self.live();
            live.get_mut(id).map(|l| {
                l.view.viewers += 1;
                l.idle_since = None;
                l.view.clone()
            })
        };
        if let Some(view) = view {
            self.publish(view);
        }
        ViewerGuard {
            manager: Arc::clone(self),
            id: id.to_string(),
        }
    }

    fn viewer_left(&self, id: &str) {
        let view = {
            let mut live = self.live();
            live.get_mut(id).map(|l| {
                l.view.viewers = l.view.viewers.saturating_sub(1);
                if l.view.viewers == 0 && l.view.status == Phase::Running {
                    l.idle_since = Some(Instant::now());
                }
                l.view.clone()
            })
        };
        if let Some(view) = view {
            self.publish(view);
        }
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
            .live()
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
        let view = self.live().get_mut(id).map(|l| {
            if l.stopping.is_none() {
                l.stopping = Some(reason.clone());
            }
            if l.view.status != Phase::Ended {
                l.view.status = Phase::Deinitializing;
            }
            l.view.clone()
        });
        if let Some(view) = view {
            self.publish(view);
        }
        info!(instance = %id, %reason, "stopping instance");
        match server.client.stop(slot).await {
            Ok(()) | Err(SupervisorError::NotRunning) => {}
            Err(err) => {
                warn!(instance = %id, %err, "STOP failed");
                return Err(ManagerError::Supervisor(err));
            }
        }
        let reason = self
            .live()
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
            let live = self.live();
            let l = live.get(id).ok_or(ManagerError::NotRunning("ended"))?;
            if l.view.status != Phase::Running {
                return Err(ManagerError::NotRunning(l.view.status.words()));
            }
            Arc::clone(&l.resize)
        };
        let _one_at_a_time = lock.lock().await;
        let (server, slot) = {
            let live = self.live();
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
        let view = {
            let mut live = self.live();
            live.get_mut(id).map(|l| {
                l.view.width = Some(width);
                l.view.height = Some(height);
                l.view.clone()
            })
        };
        let view = view.ok_or(ManagerError::NotRunning("ended"))?;
        self.publish(view.clone());
        self.db
            .set_size(id, width, height)
            .await
            .map_err(|source| ManagerError::Unrecorded {
                done: "the stream was resized",
                source,
            })?;
        Ok(view)
    }

    /// Marks `id` ended for `reason`: to the pages at once, into the database, then out of
    /// the live table. If the database cannot take it, the live table keeps the ended view
    /// (so this web role never shows the instance as running) and a task retries the write
    /// until it works; the first failure is returned.
    async fn end(self: &Arc<Self>, id: &str, reason: String) -> Result<(), DbError> {
        let at = now_ms();
        let ended = {
            let mut live = self.live();
            live.get_mut(id)
                .filter(|l| l.view.status != Phase::Ended)
                .map(|l| {
                    l.view.status = Phase::Ended;
                    l.view.reason = Some(reason.clone());
                    l.view.ended_at = Some(at);
                    l.view.viewers = 0;
                    (l.view.clone(), l.monitor.take())
                })
        };
        // Not live, or ended already and its record under way.
        let Some((view, monitor)) = ended else {
            return Ok(());
        };
        info!(instance = %id, %reason, "instance ended");
        self.publish(view);
        let recorded = self.db.set_ended(id, &reason, at).await;
        match &recorded {
            Ok(()) => {
                self.live().remove(id);
            }
            Err(err) => {
                error!(
                    %err,
                    instance = %id,
                    "cannot record the end of an instance; retrying until the database takes it"
                );
                let retry = tokio::spawn(Arc::clone(self).record_end(id.to_string(), reason, at));
                if let Some(l) = self.live().get_mut(id) {
                    l.monitor = Some(retry.abort_handle());
                }
            }
        }
        // Last: this may be the monitor itself, which stops at its next await.
        if let Some(monitor) = monitor {
            monitor.abort();
        }
        recorded
    }

    /// Retries recording an end, with growing pauses, until the database takes it.
    async fn record_end(self: Arc<Self>, id: String, reason: String, at: i64) {
        let mut pause = RECORD_RETRY_FIRST;
        loop {
            sleep(pause).await;
            match self.db.set_ended(&id, &reason, at).await {
                Ok(()) => {
                    info!(instance = %id, "the end of the instance is recorded now");
                    self.live().remove(&id);
                    return;
                }
                Err(err) => {
                    debug!(%err, instance = %id, "still cannot record the end");
                    pause = (pause * 2).min(RECORD_RETRY_MAX);
                }
            }
        }
    }

    /// Watches one instance until it ends.
    async fn monitor(self: Arc<Self>, id: String) {
        let mut failing_since: Option<Instant> = None;
        // Whether recording RUNNING failed at the last poll (warned once, not every poll).
        let mut unrecorded = false;
        loop {
            let Some((server, slot, phase)) = self
                .live()
                .get(&id)
                .map(|l| (Arc::clone(&l.server), l.slot, l.view.status))
            else {
                return;
            };
            sleep(if phase == Phase::Initializing {
                self.settings.poll_initializing
            } else {
                self.settings.poll_running
            })
            .await;
            match server.client.status(slot).await {
                Ok(report) => {
                    failing_since = None;
                    match report.status {
                        InstanceStatus::Initializing => {}
                        InstanceStatus::Running => match self.mark_running(&id).await {
                            Ok(()) => unrecorded = false,
                            Err(err) => {
                                if !unrecorded {
                                    warn!(
                                        %err,
                                        "cannot record RUNNING; the page waits until the \
                                         database takes it"
                                    );
                                }
                                unrecorded = true;
                            }
                        },
                        InstanceStatus::Deinitializing => self.mark_deinitializing(&id),
                        InstanceStatus::Idle | InstanceStatus::Invalid => {
                            let stopping = self.live().get(&id).and_then(|l| l.stopping.clone());
                            let reason = stopping
                                .unwrap_or_else(|| describe_exit(report.last_exit.as_deref()));
                            if report.last_exit.is_some() {
                                debug!(last_exit = ?report.last_exit, "instance gone");
                            }
                            // A failure is logged and retried by `end` itself.
                            let _ = self.end(&id, reason).await;
                            return;
                        }
                    }
                }
                Err(err) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    warn!(%err, "STATUS failed");
                    if since.elapsed() >= self.settings.unreachable_grace {
                        let _ = self
                            .end(&id, "Its rendering server stopped answering.".to_string())
                            .await;
                        return;
                    }
                }
            }
            self.check_idle(&id);
        }
    }

    /// `RUNNING`, recorded first: until the database takes it, the page keeps waiting (and
    /// the next poll tries again), so it never shows what the database does not hold.
    async fn mark_running(&self, id: &str) -> Result<(), DbError> {
        let starting = self
            .live()
            .get(id)
            .is_some_and(|l| l.view.status == Phase::Initializing);
        if !starting {
            return Ok(());
        }
        let at = now_ms();
        self.db.set_running(id, at).await?;
        let view = {
            let mut live = self.live();
            match live.get_mut(id) {
                Some(l) if l.view.status == Phase::Initializing => {
                    l.view.status = Phase::Running;
                    l.view.running_at = Some(at);
                    if l.view.viewers == 0 {
                        l.idle_since = Some(Instant::now());
                    }
                    Some(l.view.clone())
                }
                _ => None,
            }
        };
        if let Some(view) = view {
            info!(took_ms = at - view.created_at, "instance running");
            self.publish(view);
        }
        Ok(())
    }

    fn mark_deinitializing(&self, id: &str) {
        let view = {
            let mut live = self.live();
            match live.get_mut(id) {
                Some(l) if l.view.status != Phase::Deinitializing => {
                    l.view.status = Phase::Deinitializing;
                    Some(l.view.clone())
                }
                _ => None,
            }
        };
        if let Some(view) = view {
            self.publish(view);
        }
    }

    /// Stops `id` if it has been `RUNNING` without a viewer for the idle timeout.
    fn check_idle(self: &Arc<Self>, id: &str) {
        let Some(limit) = self.settings.idle_timeout else {
            return;
        };
        let idle = self.live().get(id).is_some_and(|l| {
            l.stopping.is_none()
                && l.view.status == Phase::Running
                && l.idle_since.is_some_and(|since| since.elapsed() >= limit)
        });
        if idle {
            let reason = format!(
                "Stopped after {} without a viewer.",
                describe_duration(limit)
            );
            info!(instance = %id, "idle timeout");
            let manager = Arc::clone(self);
            let id = id.to_string();
            // Not awaited here: the stop ends this very monitor.
            tokio::spawn(async move {
                if let Err(err) = manager.stop(&id, reason).await {
                    warn!(instance = %id, %err, "idle stop failed");
                }
            });
        }
    }

    /// Stops watching. With `local_stops`, the supervisor in this process is about to stop
    /// its instances: they are marked ended now. Instances elsewhere stay live in the
    /// database, for the next start to adopt. Ends still waiting to be recorded get one last
    /// try; those that fail are marked ended by the next start, which finds their slots idle.
    pub async fn shutdown(self: &Arc<Self>, local_stops: bool) {
        let local = self
            .local_server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let all: Vec<(String, String, Phase)> = self
            .live()
            .iter()
            .map(|(id, l)| (id.clone(), l.server.row.server_id.clone(), l.view.status))
            .collect();
        for (id, server_id, phase) in all {
            if phase == Phase::Ended {
                let removed = self.live().remove(&id);
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
                let _ = self
                    .end(
                        &id,
                        "The orchestrator shut down, which stopped the instance.".into(),
                    )
                    .await;
            } else {
                let removed = self.live().remove(&id);
                if let Some(monitor) = removed.and_then(|mut l| l.monitor.take()) {
                    monitor.abort();
                }
            }
        }
        // Ends that failed just now: their retry tasks stop here, the next start records them.
        let pending: Vec<String> = self.live().keys().cloned().collect();
        for id in pending {
            if let Some(retry) = self.live().remove(&id).and_then(|l| l.monitor) {
                retry.abort();
            }
        }
        let servers: Vec<Arc<Server>> = self.server_map().values().cloned().collect();
        for server in servers {
            server.client.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_told_in_sentences_without_the_output() {
        assert_eq!(
            describe_exit(Some("exited with status 1: segfault in frame.cpp line 3")),
            "The instance ended unexpectedly (exited with status 1)."
        );
        assert_eq!(
            describe_exit(Some("killed by signal 9 (SIGKILL): tail")),
            "The instance ended unexpectedly (killed by signal 9 (SIGKILL))."
        );
        assert!(
            describe_exit(Some("did not become ready within 60s (x); stopped")).contains("in time")
        );
        assert_eq!(
            describe_exit(Some(
                "no frames for 30s (no frame came out of the encoder); stopped"
            )),
            "The instance stopped delivering pictures and was ended."
        );
        assert_eq!(describe_exit(None), "The instance ended.");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(describe_duration(Duration::from_secs(90)), "90 s");
        assert_eq!(describe_duration(Duration::from_millis(2500)), "2.5 s");
    }

    #[test]
    fn views_never_carry_addresses_or_slots() {
        let view = InstanceView::from_row(&InstanceRow {
            instance_id: "u".into(),
            session_id: "secret-session".into(),
            server_id: "s".into(),
            slot: 2,
            status: "RUNNING".into(),
            end_reason: None,
            created_at: 1,
            running_at: Some(2),
            ended_at: None,
            width: None,
            height: None,
            client_address: Some("203.0.113.7".into()),
        });
        let json = serde_json::to_string(&view).unwrap();
        assert!(json.contains(r#""status":"RUNNING""#), "{json}");
        assert!(json.contains(r#""url":"/stream/u""#), "{json}");
        for hidden in ["secret-session", "slot", "server", "port", "203.0.113.7"] {
            assert!(!json.contains(hidden), "{hidden} in {json}");
        }
    }
}
