//! The local supervisor: real instance processes in a fixed number of slots.
//!
//! - `slots.rs`: the slot table (ids `0..slots`, lowest free id first, `lastExit`).
//! - `process.rs`: the instance's command line and environment, process groups, signals.
//! - `xvfb.rs`: a private Xvfb per instance when there is no display.
//! - `pulse.rs`: a private PulseAudio server per instance with `--audio pulse`.
//! - `readiness.rs`: the probe that turns `INITIALIZING` into `RUNNING`.
//! - `lifecycle.rs`: one task per instance, from launch to a free slot (exit watch, stop).
//! - `logs.rs`: per-instance log files (capped) and their tails.
//! - `openspace.rs`: the instance command of OpenSpace mode (`--openspace <dir>`).
//! - `orphans.rs`: the ledger of process groups, and stopping what a dead supervisor left.
//!
//! Locking: one `std::sync::Mutex` around the slot table, never held across an `.await`.
//! Launching, probing, stopping and resizing happen outside it.

mod lifecycle;
mod logs;
pub mod openspace;
pub mod orphans;
mod process;
mod pulse;
mod readiness;
mod slots;
mod xvfb;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, info, info_span};

pub use process::RESERVED_ENV;

use crate::control_client::ControlClient;
use crate::relay::RelayEndpoint;
use crate::supervisor::{InstanceStatus, ServerStatus, StatusReport, Supervisor, SupervisorError};
use lifecycle::InstanceTask;
use openspace_webrtc_protocol::TICKET_QUERY_KEY;
use orphans::Ledger;
use slots::{Busy, Slot, SlotTable};

/// Most slots one supervisor may have (each takes ports and possibly an X display).
pub const MAX_SLOTS: u32 = 1000;
/// Default cap of one instance log, in MiB.
pub const DEFAULT_LOG_MAX_MIB: u64 = 16;
/// Reply timeout of one control request made for `RESOLUTION`.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// What each instance runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCommand {
    /// The program (the GL test host, or OpenSpace).
    pub executable: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory (OpenSpace wants its `bin/` or root); `None` keeps ours.
    pub working_dir: Option<PathBuf>,
    /// Extra environment for every instance (e.g. `OSW_ICE_ADDRESSES=127.0.0.1`), on top of the
    /// orchestrator's own; the per-instance variables in [`RESERVED_ENV`] are always ours.
    pub env: BTreeMap<String, String>,
}

/// The ports of instance `id`. Every range must be disjoint from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPlan {
    /// Instance `id` serves rust-core signaling/control on `signaling_base + id`.
    pub signaling_base: u16,
    /// Instance `id` gets `OSW_API_WEBSOCKET_PORT = api_websocket_base + id` (OpenSpace's JSON
    /// API over WebSocket; the seed's 4682 + id).
    pub api_websocket_base: u16,
    /// Instance `id` gets `OSW_API_TCP_PORT = api_tcp_base - id` (OpenSpace's JSON API over
    /// TCP). Counting down from OpenSpace's default 4681 keeps instance 0 on OpenSpace's own
    /// defaults and never meets the WebSocket range, which counts up from 4682.
    pub api_tcp_base: u16,
    /// Instance `id` gets `OSW_WEBGUI_HTTP_PORT = webgui_http_base + id` (OpenSpace's WebGui
    /// module HTTP server, 4680 in a stock OpenSpace, which would collide between instances).
    pub webgui_http_base: u16,
}

impl PortPlan {
    /// Signaling port of `id` (checked by [`InstanceSettings::validate`]).
    pub fn signaling(&self, id: u32) -> u16 {
        (u32::from(self.signaling_base) + id) as u16
    }

    /// OpenSpace API WebSocket port of `id`.
    pub fn api_websocket(&self, id: u32) -> u16 {
        (u32::from(self.api_websocket_base) + id) as u16
    }

    /// OpenSpace API TCP port of `id`.
    pub fn api_tcp(&self, id: u32) -> u16 {
        (u32::from(self.api_tcp_base).saturating_sub(id)) as u16
    }

    /// OpenSpace WebGui HTTP port of `id`.
    pub fn webgui_http(&self, id: u32) -> u16 {
        (u32::from(self.webgui_http_base) + id) as u16
    }

    /// The four port ranges used by `slots` instances, named, as inclusive bounds. Signed
    /// and unclamped (the TCP range counts down and may run below 1), so validation sees the
    /// ranges exactly as configured.
    pub fn ranges(&self, slots: u32) -> [(&'static str, i64, i64); 4] {
        let last = i64::from(slots) - 1;
        let up = |name, base: u16| (name, i64::from(base), i64::from(base) + last);
        let tcp = i64::from(self.api_tcp_base);
        [
            up("signaling", self.signaling_base),
            up("OpenSpace API WebSocket", self.api_websocket_base),
            // Counts down, so instance 0 keeps OpenSpace's default port.
            ("OpenSpace API TCP", tcp - last, tcp),
            up("OpenSpace WebGui HTTP", self.webgui_http_base),
        ]
    }
}

/// When instances get their own Xvfb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XvfbMode {
    /// Only when the orchestrator has no `DISPLAY` (and the instance env sets none).
    Auto,
    /// Always, even with a display.
    Always,
    /// Never (instances use `DISPLAY` as inherited, or need none).
    Never,
}

/// The per-instance Xvfb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XvfbSettings {
    /// When to use it.
    pub mode: XvfbMode,
    /// The Xvfb program.
    pub executable: PathBuf,
    /// Instance `id` gets display `:display_base + id`, or when that is taken the same place
    /// in a later range (`+ slots`, `+ 2 × slots`, …).
    pub display_base: u32,
    /// `-screen 0` geometry, `WxHxDEPTH`; large enough for any `RESOLUTION`.
    pub screen: String,
    /// How long Xvfb may take to open its socket.
    pub startup_timeout: Duration,
}

/// Where instances' sound goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    /// No sound: instances get no audio settings and stream video only.
    None,
    /// A PulseAudio server per instance with a null sink; the instance plays into it and
    /// rust-core streams the sink's monitor.
    Pulse,
}

/// The per-instance sound server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSettings {
    /// Whether instances get one.
    pub mode: AudioMode,
    /// The pulseaudio program.
    pub executable: PathBuf,
    /// How long it may take to open its socket.
    pub startup_timeout: Duration,
}

/// What `--audio pulse` sets for each instance; the configured env may not set them then.
pub const PULSE_ENV: &[&str] = &["PULSE_SERVER", "OSW_AUDIO", "OSW_AUDIO_DEVICE"];

/// Everything the local supervisor needs; built by [`crate::config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    /// Instances that may run at once; ids are `0..slots`.
    pub slots: u32,
    /// What to run.
    pub command: InstanceCommand,
    /// Per-instance ports.
    pub ports: PortPlan,
    /// Where `instance-<id>.log` and `xvfb-<id>.log` go.
    pub log_dir: PathBuf,
    /// An instance's log is rotated at this size (to `instance-<id>.log.1`, replacing it), so
    /// a slot never holds more than twice this on disk.
    pub log_max_bytes: u64,
    /// From launch until the readiness probe succeeds; after it the instance is stopped.
    pub startup_timeout: Duration,
    /// Pause between readiness probes.
    pub probe_interval: Duration,
    /// From SIGTERM until SIGKILL.
    pub stop_timeout: Duration,
    /// A `RUNNING` instance whose encoder delivers no frame for this long is stopped (0: never).
    pub frame_timeout: Duration,
    /// How long `RESOLUTION` waits for frames of the new size (0: reply on acknowledgement).
    pub resize_timeout: Duration,
    /// The per-instance Xvfb.
    pub xvfb: XvfbSettings,
    /// The per-instance sound server.
    pub audio: AudioSettings,
}

/// The default test host, `<repo>/build/gl-host/osw-gl-host` of the repository this binary was
/// built from.
pub fn default_gl_host() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(&manifest)
        .join("build/gl-host/osw-gl-host")
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            slots: 3,
            command: InstanceCommand {
                executable: default_gl_host(),
                args: Vec::new(),
                working_dir: None,
                env: BTreeMap::new(),
            },
            ports: PortPlan {
                signaling_base: 4700,
                api_websocket_base: 4682,
                api_tcp_base: 4681,
                webgui_http_base: 4800,
            },
            log_dir: PathBuf::from("logs"),
            log_max_bytes: DEFAULT_LOG_MAX_MIB << 20,
            startup_timeout: Duration::from_secs(60),
            probe_interval: Duration::from_millis(200),
            stop_timeout: Duration::from_secs(10),
            resize_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(30),
            xvfb: XvfbSettings {
                mode: XvfbMode::Auto,
                executable: PathBuf::from("Xvfb"),
                display_base: 90,
                screen: "3840x2160x24".to_string(),
                startup_timeout: Duration::from_secs(10),
            },
            audio: AudioSettings {
                mode: AudioMode::None,
                executable: PathBuf::from("pulseaudio"),
                startup_timeout: Duration::from_secs(10),
            },
        }
    }
}

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `slots` is 0 or too large.
    #[error("slots must be between 1 and {MAX_SLOTS}, got {0}")]
    Slots(u32),
    /// A port range runs past 65535 or below 1.
    #[error("{name} ports {first}-{last} do not fit in 1-65535 (lower the base port or the slots)")]
    PortRange {
        /// Which range.
        name: &'static str,
        /// First port.
        first: i64,
        /// Last port.
        last: i64,
    },
    /// Two port ranges share a port.
    #[error("{a} ports {a_first}-{a_last} overlap {b} ports {b_first}-{b_last}")]
    PortOverlap {
        /// First range's name.
        a: &'static str,
        /// First range's first port.
        a_first: i64,
        /// First range's last port.
        a_last: i64,
        /// Second range's name.
        b: &'static str,
        /// Second range's first port.
        b_first: i64,
        /// Second range's last port.
        b_last: i64,
    },
    /// The configured env sets a variable the orchestrator sets per instance.
    #[error("instance env may not set {0}: the orchestrator sets it for each instance")]
    ReservedEnv(String),
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// The log cap is zero.
    #[error("log_max_mib must be at least 1")]
    LogCap,
    /// The Xvfb display numbers overflow.
    #[error("xvfb display_base {0} is too large")]
    Display(u32),
}

impl InstanceSettings {
    /// Checks slots, port ranges (inside 1-65535, pairwise disjoint), env and durations.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=MAX_SLOTS).contains(&self.slots) {
            return Err(SettingsError::Slots(self.slots));
        }
        let ranges = self.ports.ranges(self.slots);
        for (name, first, last) in ranges {
            if first < 1 || last > 65535 {
                return Err(SettingsError::PortRange { name, first, last });
            }
        }
        for (i, &(a, a_first, a_last)) in ranges.iter().enumerate() {
            for &(b, b_first, b_last) in &ranges[i + 1..] {
                if a_first <= b_last && b_first <= a_last {
                    return Err(SettingsError::PortOverlap {
                        a,
                        a_first,
                        a_last,
                        b,
                        b_first,
                        b_last,
                    });
                }
            }
        }
        if let Some(name) = self
            .command
            .env
            .keys()
            .find(|k| RESERVED_ENV.contains(&k.as_str()))
        {
            return Err(SettingsError::ReservedEnv(name.clone()));
        }
        if self.audio.mode == AudioMode::Pulse
            && let Some(name) = self
                .command
                .env
                .keys()
                .find(|k| PULSE_ENV.contains(&k.as_str()))
        {
            return Err(SettingsError::ReservedEnv(name.clone()));
        }
        for (name, value) in [
            ("startup_timeout", self.startup_timeout),
            ("probe_interval", self.probe_interval),
            ("xvfb startup_timeout", self.xvfb.startup_timeout),
            ("audio startup_timeout", self.audio.startup_timeout),
        ] {
            if value.is_zero() {
                return Err(SettingsError::ZeroDuration(name));
            }
        }
        if self.log_max_bytes == 0 {
            return Err(SettingsError::LogCap);
        }
        if self
            .xvfb
            .display_base
            .checked_add(self.slots)
            .is_none_or(|end| end > 1 << 20)
        {
            return Err(SettingsError::Display(self.xvfb.display_base));
        }
        Ok(())
    }

    /// Whether instances get their own Xvfb, given the orchestrator's `DISPLAY`.
    pub fn wants_xvfb(&self, display: Option<&str>) -> bool {
        match self.xvfb.mode {
            XvfbMode::Always => true,
            XvfbMode::Never => false,
            XvfbMode::Auto => {
                let ours = display.is_some_and(|d| !d.is_empty());
                let configured = self
                    .command
                    .env
                    .get("DISPLAY")
                    .is_some_and(|d| !d.is_empty());
                !ours && !configured
            }
        }
    }
}

/// Why an instance is being stopped; its `Display` starts the instance's `lastExit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A `STOP` request.
    Request,
    /// The supervisor is shutting down.
    Shutdown,
    /// A running instance delivered no frames for `after` (it hangs).
    NoFrames {
        /// The frame timeout.
        after: Duration,
        /// What the last probe said.
        last_probe: String,
    },
    /// The readiness probe did not succeed in time.
    StartupTimeout {
        /// The startup timeout.
        after: Duration,
        /// The last probe's failure.
        last_probe: String,
        /// The tail of the instance's output.
        tail: String,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Request => f.write_str("stopped on request"),
            StopReason::Shutdown => f.write_str("stopped at supervisor shutdown"),
            StopReason::NoFrames { after, last_probe } => {
                write!(f, "no frames for {after:?} ({last_probe}); stopped")
            }
            StopReason::StartupTimeout {
                after,
                last_probe,
                tail,
            } => {
                write!(
                    f,
                    "did not become ready within {after:?} (last probe: {last_probe})"
                )?;
                if !tail.is_empty() {
                    write!(f, ", output: {tail}")?;
                }
                f.write_str("; stopped")
            }
        }
    }
}

/// State shared by [`Instances`] handles and the instance tasks.
pub(crate) struct Shared {
    /// The settings, fixed for the supervisor's life.
    settings: Arc<InstanceSettings>,
    /// Decided once at start from the mode and `DISPLAY`.
    use_xvfb: bool,
    /// The slot table and shutdown bookkeeping.
    state: Mutex<State>,
    /// Closes when every instance task has ended; taken by the first [`Instances::shutdown`].
    drained: tokio::sync::Mutex<Option<mpsc::Receiver<()>>>,
}

/// What the lock protects.
struct State {
    /// The slots.
    table: SlotTable,
    /// Cloned into each instance task; `None` once shutdown began (no more `START`).
    drain: Option<mpsc::Sender<()>>,
    /// The process groups started and still running, on disk for a supervisor after us.
    ledger: Ledger,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the table half-updated (every update is
        // one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn free(&self, id: u32, generation: u64, last_exit: String) {
        let mut state = self.lock();
        state.table.free(id, generation, last_exit);
        state.ledger.slot_ended(id);
    }

    fn set_pid(&self, id: u32, generation: u64, pid: u32) {
        let mut state = self.lock();
        if let Some(busy) = state.table.busy_mut(id, generation) {
            busy.pid = Some(pid);
            state.ledger.started(id, pid);
        }
    }

    /// Records a process group of slot `id` besides the instance (its Xvfb, its PulseAudio
    /// server) in the ledger.
    fn helper_started(&self, id: u32, pid: u32) {
        self.lock().ledger.started(id, pid);
    }

    /// `INITIALIZING` → `RUNNING`, unless a stop came first.
    fn mark_running(&self, id: u32, generation: u64) -> bool {
        match self.lock().table.busy_mut(id, generation) {
            Some(busy) if busy.status == InstanceStatus::Initializing => {
                busy.status = InstanceStatus::Running;
                true
            }
            _ => false,
        }
    }

    /// Whether slot `id` still holds `generation` and it is `RUNNING`.
    fn is_running(&self, id: u32, generation: u64) -> bool {
        self.lock()
            .table
            .busy_mut(id, generation)
            .is_some_and(|busy| busy.status == InstanceStatus::Running)
    }

    fn mark_deinitializing(&self, id: u32, generation: u64) {
        if let Some(busy) = self.lock().table.busy_mut(id, generation) {
            busy.status = InstanceStatus::Deinitializing;
        }
    }
}

/// The local supervisor. Cheap to clone; all clones share the slots.
#[derive(Clone)]
pub struct Instances {
    /// The shared state.
    shared: Arc<Shared>,
}

impl fmt::Debug for Instances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instances")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl Instances {
    /// A supervisor with `settings.slots` idle slots. Xvfb use is decided here, from the mode
    /// and this process's `DISPLAY`.
    /// Process groups a supervisor that died with the same log directory left running are
    /// stopped first (see `orphans.rs`), so every slot starts free.
    pub fn new(settings: InstanceSettings) -> Result<Instances, SettingsError> {
        settings.validate()?;
        let left = orphans::stop_left_behind(&settings.log_dir, settings.stop_timeout);
        if !left.is_empty() {
            info!(
                groups = left.len(),
                "stopped what an earlier supervisor left running; every slot is free"
            );
        }
        let use_xvfb = settings.wants_xvfb(std::env::var("DISPLAY").ok().as_deref());
        info!(
            slots = settings.slots,
            executable = %settings.command.executable.display(),
            xvfb = use_xvfb,
            audio = ?settings.audio.mode,
            log_dir = %settings.log_dir.display(),
            "instance supervisor ready"
        );
        let (drain_tx, drain_rx) = mpsc::channel(1);
        let table = SlotTable::new(settings.slots);
        let ledger = Ledger::new(&settings.log_dir);
        Ok(Instances {
            shared: Arc::new(Shared {
                settings: Arc::new(settings),
                use_xvfb,
                state: Mutex::new(State {
                    table,
                    drain: Some(drain_tx),
                    ledger,
                }),
                drained: tokio::sync::Mutex::new(Some(drain_rx)),
            }),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &InstanceSettings {
        &self.shared.settings
    }

    /// Whether instances run under their own Xvfb.
    pub fn uses_xvfb(&self) -> bool {
        self.shared.use_xvfb
    }

    /// The process id of instance `id`, if one is launched (for operators and tests).
    pub fn pid(&self, id: u32) -> Option<u32> {
        match self.shared.lock().table.get_mut(id) {
            Ok(Slot::Busy(busy)) => busy.pid,
            _ => None,
        }
    }

    /// Address and secret of instance `id`'s control channel, if it has an instance (for
    /// tests, and the web role's signaling proxy later).
    pub fn control_endpoint(&self, id: u32) -> Option<(SocketAddr, String)> {
        self.control(id, false)
            .ok()
            .map(|(addr, secret, _)| (addr, secret))
    }

    /// Instance `id`'s control channel (its address on loopback and its secret) and its
    /// generation, if its slot is busy and, when `running_only`, the instance is `RUNNING`.
    fn control(
        &self,
        id: u32,
        running_only: bool,
    ) -> Result<(SocketAddr, String, u64), SupervisorError> {
        match self.shared.lock().table.get_mut(id)? {
            Slot::Busy(busy) if !running_only || busy.status == InstanceStatus::Running => Ok((
                SocketAddr::from((Ipv4Addr::LOCALHOST, busy.port)),
                busy.secret.clone(),
                busy.generation,
            )),
            _ => Err(SupervisorError::NotRunning),
        }
    }

    /// The log file of instance `id`.
    pub fn log_path(&self, id: u32) -> PathBuf {
        self.shared
            .settings
            .log_dir
            .join(format!("instance-{id}.log"))
    }
}

/// 128 random bits as hex.
fn new_secret() -> Result<String, SupervisorError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| {
        SupervisorError::LaunchFailed(format!("no randomness for the secret: {err}"))
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Supervisor for Instances {
    async fn start(&self) -> Result<u32, SupervisorError> {
        let secret = new_secret()?;
        let (launched_tx, launched_rx) = oneshot::channel();
        let id = {
            let mut state = self.shared.lock();
            let drain = state.drain.clone().ok_or(SupervisorError::ShuttingDown)?;
            let id = state
                .table
                .lowest_free()
                .ok_or(SupervisorError::NoAvailableSlots)?;
            let generation = state.table.next_generation();
            let (stop_tx, stop_rx) = watch::channel(None);
            let (done_tx, done_rx) = watch::channel(());
            state.table.occupy(
                id,
                Busy {
                    status: InstanceStatus::Initializing,
                    generation,
                    port: self.shared.settings.ports.signaling(id),
                    secret: secret.clone(),
                    pid: None,
                    stop: stop_tx,
                    done: done_rx,
                },
            );
            let task = InstanceTask {
                shared: Arc::clone(&self.shared),
                id,
                generation,
                secret,
                stop: stop_rx,
                launched: Some(launched_tx),
                _done: done_tx,
                _drain: drain,
            };
            tokio::spawn(
                task.run()
                    .instrument(info_span!(parent: None, "instance", id, generation)),
            );
            id
        };
        match launched_rx.await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(why)) => Err(SupervisorError::LaunchFailed(why)),
            Err(_) => Err(SupervisorError::LaunchFailed(
                "the instance task ended early".into(),
            )),
        }
    }

    async fn stop(&self, id: u32) -> Result<(), SupervisorError> {
        let mut done = {
            let mut state = self.shared.lock();
            let Slot::Busy(busy) = state.table.get_mut(id)? else {
                return Err(SupervisorError::NotRunning);
            };
            busy.status = InstanceStatus::Deinitializing;
            busy.stop.send_if_modified(|reason| {
                reason.get_or_insert(StopReason::Request);
                true
            });
            busy.done.clone()
        };
        // The task drops its sender after freeing the slot.
        while done.changed().await.is_ok() {}
        Ok(())
    }

    async fn status(&self, id: u32) -> Result<StatusReport, SupervisorError> {
        self.shared.lock().table.report(id)
    }

    async fn resolution(&self, id: u32, width: u32, height: u32) -> Result<(), SupervisorError> {
        let (addr, secret, generation) = self.control(id, true)?;
        let resized = async {
            let mut client = ControlClient::connect(addr, &secret, CONTROL_TIMEOUT).await?;
            client
                .resize_and_confirm(width, height, self.shared.settings.resize_timeout)
                .await
        };
        match resized.await {
            Ok(()) => {
                info!(id, width, height, "instance resized");
                Ok(())
            }
            // The instance was stopped (or replaced) while we talked to it: STOP marks the
            // slot before it signals the process, so this tells "went away" from "failed".
            Err(_) if !self.shared.is_running(id, generation) => Err(SupervisorError::NotRunning),
            Err(err) => Err(SupervisorError::Control(err.to_string())),
        }
    }

    async fn server_status(&self) -> Result<ServerStatus, SupervisorError> {
        Ok(self.shared.lock().table.server_status())
    }

    async fn relay_target(
        &self,
        id: u32,
        endpoint: RelayEndpoint,
    ) -> Result<String, SupervisorError> {
        let (addr, secret, _) = self.control(id, true)?;
        match endpoint {
            RelayEndpoint::Signal(role) => {
                // The instance, not the relay, enforces what the role may do.
                let mut client = ControlClient::connect(addr, &secret, CONTROL_TIMEOUT)
                    .await
                    .map_err(|err| SupervisorError::Control(err.to_string()))?;
                let ticket = client
                    .issue_ticket(role)
                    .await
                    .map_err(|err| SupervisorError::Control(err.to_string()))?;
                Ok(format!("ws://{addr}/?{TICKET_QUERY_KEY}={ticket}"))
            }
            RelayEndpoint::OpenSpaceApi => {
                let port = self.shared.settings.ports.api_websocket(id);
                Ok(format!(
                    "ws://{}/",
                    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
                ))
            }
        }
    }

    async fn shutdown(&self) {
        let stopping = {
            let mut state = self.shared.lock();
            state.drain = None;
            let mut count = 0;
            for busy in state.table.busy_iter_mut() {
                busy.status = InstanceStatus::Deinitializing;
                busy.stop.send_if_modified(|reason| {
                    reason.get_or_insert(StopReason::Shutdown);
                    true
                });
                count += 1;
            }
            count
        };
        if stopping > 0 {
            info!(instances = stopping, "stopping every instance");
        }
        if let Some(mut drained) = self.shared.drained.lock().await.take() {
            let _ = drained.recv().await;
        }
        info!("all instances stopped");
    }
}
