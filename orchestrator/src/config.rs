//! Configuration: built-in defaults, then the TOML file (`--config`), then `ORCHESTRATOR_*`
//! environment variables, then command-line flags (clap merges the last two).
//!
//! Relative paths in the file are relative to the file's folder; relative paths from flags or
//! the environment are relative to the current directory. A bare executable name (`Xvfb`) is
//! looked up in `PATH`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::instances::openspace::{
    OpenSpaceError, files_dir as openspace_files_dir, openspace_command,
};
use crate::instances::{AudioMode, InstanceSettings, SettingsError, XvfbMode};
use crate::secret::{SecretError, SupervisorSecret};
use crate::server::DEFAULT_IDLE_TIMEOUT;
use crate::web::turn::{DEFAULT_TTL as DEFAULT_TURN_TTL, TurnError};
use crate::web::{SupervisorAddress, TlsFiles, TurnSettings, WebSettings};

const AFTER_HELP: &str = "\
CONFIGURATION
  Built-in defaults, then the TOML file given by --config (see orchestrator.example.toml; paths
  in it are relative to the file), then ORCHESTRATOR_* environment variables, then flags.
  `orchestrator` alone runs a supervisor on 127.0.0.1:4699 with 3 slots of the GL test host
  (<repo>/build/gl-host/osw-gl-host). Use --print-config to see the result.

INSTANCES
  START launches the instance command in the lowest free slot N with, in its environment:
    OSW_INSTANCE_ID=N              OSW_LISTEN_PORT=<signaling base + N>
    OSW_CONTROL_SECRET=<random hex> OSW_ENABLED=1
    OSW_API_WEBSOCKET_PORT=<API WebSocket base + N>   (OpenSpace's JSON API, 4682 + N)
    OSW_API_TCP_PORT=<API TCP base - N>               (OpenSpace's JSON API, 4681 - N)
    OSW_WEBGUI_HTTP_PORT=<WebGui HTTP base + N>       (OpenSpace's WebGui server, 4800 + N)
  plus the configured instance env (e.g. OSW_ICE_ADDRESSES=127.0.0.1). The instance is
  INITIALIZING until its signaling endpoint (ws://127.0.0.1:<signaling port>/) answers the
  control `ready` probe, then RUNNING; one that is not ready within --startup-timeout is
  stopped; a RUNNING one whose encoder delivers no frame for --frame-timeout is stopped as
  hung. STOP sends SIGTERM to its process group, SIGKILL after --stop-timeout. A crash is
  logged with the exit status and the tail of the output, and STATUS shows it as lastExit.
  Output of instance N goes through a pipe to <log dir>/instance-N.log (the previous run's to
  instance-N.log.1); at --log-max-mib (16) the file is rotated to instance-N.log.1, so an
  instance that writes without end cannot fill the disk. Its stdin is an open pipe that is
  never written, so a program that prompts (a failed Ghoul assertion) waits, not spins.

DISPLAYS (Xvfb)
  With no DISPLAY set (--xvfb auto, the default) or with --xvfb always, each instance runs under
  its own X server: `Xvfb :<display base + N> -screen 0 3840x2160x24 -nolisten tcp`, started
  before the instance (the supervisor waits for /tmp/.X11-unix/X<display>), passed as
  DISPLAY, and stopped after the instance. Its output goes to <log dir>/xvfb-N.log. A display
  already taken is skipped for the same place in the next range (N + slots, N + 2 slots, ...).

SOUND (PulseAudio)
  --audio pulse gives each instance its own PulseAudio server, started before it like its Xvfb:
  `pulseaudio --daemonize=no -n --exit-idle-time=-1` with its socket and state in a private
  folder (<temp>/osw-pulse-<pid>-N, mode 0700) and one null sink, `osw`, the default. The
  instance gets PULSE_SERVER=unix:<that socket> (what it plays goes to the sink),
  OSW_AUDIO=pulse and OSW_AUDIO_DEVICE=osw.monitor (rust-core streams the sink's monitor as
  Opus to every viewer). Its output goes to <log dir>/pulse-N.log; it is stopped after the
  instance however that ended. --audio none (the default) streams video only.

WEB ROLE (the browser product)
  --role both (the default) also serves the web origin on --web-listen (127.0.0.1:4690): the
  home page at /, the stream page at /stream/<uuid>, the JSON API under /api/ and each viewer's
  signaling WebSocket, proxied to its instance. It reaches this process's supervisor through
  the supervisor protocol, like any other (--supervisor HOST:PORT adds remote ones,
  --supervisor wss://HOST:PORT one whose port has TLS, its certificate checked against
  --supervisor-ca or else the system's roots; --role web runs the web role alone,
  --role supervisor the supervisor alone). Sessions, share links,
  instances and the servers table live in --database (a SQLite file by default, created with
  its schema; postgres://… with the `postgres` feature). --tls-cert/--tls-key serve HTTPS.
  An instance without a viewer for --idle-timeout seconds is stopped.
  Limits per client address (an IPv4 address or an IPv6 /64): --max-new-sessions-per-minute,
  --max-instances-per-address (live instances, whatever the session) and
  --max-token-failures-per-minute (wrong tokens; past it the address's tokens are refused for
  a while). Sessions unused for --session-expiry seconds expire unless an instance of theirs
  runs. A request's headers must arrive within --http-header-timeout seconds.
  --turn-url (stun:, turn:, turns:) gives the stream page ICE servers; turn: and turns: get
  short-lived credentials made with --turn-secret (coturn's use-auth-secret and
  static-auth-secret), good for new relays for --turn-credential-ttl seconds.

SUPERVISOR TLS
  --supervisor-tls-cert/--supervisor-tls-key make the supervisor port wss://: every
  connection, protocol and relay, starts with TLS, within the same 5 s handshake deadline as
  the upgrade. It does not replace --supervisor-secret. With --role both, this process's web
  role reaches its supervisor in the clear, on a loopback listener of its own.

SHUTDOWN
  Ctrl-C or SIGTERM closes every client connection, stops every instance and its Xvfb, and
  exits; nothing is left running. (--role web leaves instances running; the next start
  adopts those still alive.)";

/// Which roles the process runs: one binary, two roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The supervisor and the web origin, the web role talking to the supervisor through the
    /// protocol.
    #[default]
    Both,
    /// Only the supervisor protocol and the instances (a rendering server).
    Supervisor,
    /// Only the web origin, for remote supervisors (`--supervisor`, or the servers table).
    Web,
}

/// The command line. Every option can also come from the environment variable shown.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "OpenSpace WebRTC orchestrator. Supervisor role: launches, watches and stops \
             streaming instances and answers the supervisor protocol (START, STOP, STATUS, \
             RESOLUTION, SERVER_STATUS) over WebSocket. Web role: the browser product's single \
             origin (pages, API, signaling proxy, sessions database).",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// TOML configuration file (see orchestrator.example.toml).
    #[arg(long, env = "ORCHESTRATOR_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address of the supervisor protocol WebSocket [default: 127.0.0.1:4699]. Anything but
    /// loopback (0.0.0.0, to let other machines' web roles in) needs --supervisor-secret.
    #[arg(long, env = "ORCHESTRATOR_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// The secret supervisor-protocol connections present (at least 16 of A-Z a-z 0-9 - _ . ~):
    /// the supervisor refuses connections without it, and the web role presents it to every
    /// supervisor. Needed to listen anywhere but loopback. Prefer the environment variable to
    /// the flag (other users can read a command line).
    #[arg(
        long,
        env = "ORCHESTRATOR_SUPERVISOR_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub supervisor_secret: Option<String>,

    /// TLS certificate chain (PEM) for wss:// on the supervisor port: every connection, the
    /// protocol and the relays, then starts with TLS; needs --supervisor-tls-key. With
    /// --role both, the web role in this process still reaches it in the clear, on a loopback
    /// listener of its own.
    #[arg(long, env = "ORCHESTRATOR_SUPERVISOR_TLS_CERT", value_name = "PATH")]
    pub supervisor_tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for wss:// on the supervisor port; needs --supervisor-tls-cert.
    #[arg(long, env = "ORCHESTRATOR_SUPERVISOR_TLS_KEY", value_name = "PATH")]
    pub supervisor_tls_key: Option<PathBuf>,

    /// Seconds a supervisor-protocol connection may send nothing before it is closed; keep
    /// it above 30 (the web role drops its pooled connections after 30 s idle) [default: 120].
    #[arg(long, env = "ORCHESTRATOR_CONNECTION_IDLE_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    pub connection_idle_timeout: Option<Duration>,

    /// Instances that may run at once; ids are 0..SLOTS [default: 3].
    #[arg(long, env = "ORCHESTRATOR_SLOTS")]
    pub slots: Option<u32>,

    /// Instance N's rust-core signaling/control port is this + N [default: 4700].
    #[arg(long, env = "ORCHESTRATOR_SIGNALING_BASE_PORT", value_name = "PORT")]
    pub signaling_base_port: Option<u16>,

    /// Instance N gets OSW_API_WEBSOCKET_PORT = this + N [default: 4682].
    #[arg(
        long,
        env = "ORCHESTRATOR_API_WEBSOCKET_BASE_PORT",
        value_name = "PORT"
    )]
    pub api_websocket_base_port: Option<u16>,

    /// Instance N gets OSW_API_TCP_PORT = this - N (counting down) [default: 4681].
    #[arg(long, env = "ORCHESTRATOR_API_TCP_BASE_PORT", value_name = "PORT")]
    pub api_tcp_base_port: Option<u16>,

    /// Instance N gets OSW_WEBGUI_HTTP_PORT = this + N (OpenSpace's WebGui HTTP server)
    /// [default: 4800].
    #[arg(long, env = "ORCHESTRATOR_WEBGUI_HTTP_BASE_PORT", value_name = "PORT")]
    pub webgui_http_base_port: Option<u16>,

    /// OpenSpace mode: run the OpenSpace build in DIR (its root, with bin/OpenSpace and
    /// openspace.cfg) with the WebRtc module, configured by orchestrator/openspace/
    /// (webrtc.cfg, stream-window.json, stream.profile). Replaces the instance program.
    #[arg(long, env = "ORCHESTRATOR_OPENSPACE", value_name = "DIR")]
    pub openspace: Option<PathBuf>,

    /// The profile OpenSpace instances start: a name OpenSpace looks up in its profile
    /// folders, or a path [default: orchestrator/openspace/stream.profile].
    #[arg(long, env = "ORCHESTRATOR_OPENSPACE_PROFILE", value_name = "PROFILE")]
    pub openspace_profile: Option<String>,

    /// The instance program [default: <repo>/build/gl-host/osw-gl-host].
    #[arg(long, env = "ORCHESTRATOR_INSTANCE_EXECUTABLE", value_name = "PATH")]
    pub instance_executable: Option<PathBuf>,

    /// An argument for the instance program; repeat for several (replaces the file's list).
    /// In the environment variable, separate arguments with ';'.
    #[arg(
        long = "instance-arg",
        env = "ORCHESTRATOR_INSTANCE_ARGS",
        value_name = "ARG",
        value_delimiter = ';',
        allow_hyphen_values = true
    )]
    pub instance_args: Vec<String>,

    /// Working directory of the instance program [default: the orchestrator's].
    #[arg(long, env = "ORCHESTRATOR_INSTANCE_WORKING_DIR", value_name = "DIR")]
    pub instance_working_dir: Option<PathBuf>,

    /// Extra environment variable for every instance, KEY=VALUE; repeat for several (added to
    /// the file's). In the environment variable, separate entries with ';'.
    #[arg(
        long = "instance-env",
        env = "ORCHESTRATOR_INSTANCE_ENV",
        value_name = "KEY=VALUE",
        value_delimiter = ';',
        value_parser = parse_key_value
    )]
    pub instance_env: Vec<(String, String)>,

    /// Folder for instance-N.log and xvfb-N.log [default: ./logs].
    #[arg(long, env = "ORCHESTRATOR_LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Size in MiB at which an instance's log is rotated to instance-N.log.1 (replacing it),
    /// so a slot never holds more than twice this on disk [default: 16].
    #[arg(long, env = "ORCHESTRATOR_LOG_MAX_MIB", value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub log_max_mib: Option<u64>,

    /// Seconds an instance may take to answer the readiness probe before it is stopped
    /// [default: 60].
    #[arg(long, env = "ORCHESTRATOR_STARTUP_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    pub startup_timeout: Option<Duration>,

    /// Seconds between SIGTERM and SIGKILL when stopping an instance [default: 10].
    #[arg(long, env = "ORCHESTRATOR_STOP_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    pub stop_timeout: Option<Duration>,

    /// Seconds RESOLUTION waits for frames of the new size; 0 replies once the instance
    /// acknowledged [default: 5].
    #[arg(long, env = "ORCHESTRATOR_RESIZE_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    pub resize_timeout: Option<Duration>,

    /// Seconds a RUNNING instance may deliver no frame (its encoder idle, or its control
    /// channel silent) before it is stopped as hung; 0 never [default: 30].
    #[arg(long, env = "ORCHESTRATOR_FRAME_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    pub frame_timeout: Option<Duration>,

    /// Seconds between readiness probes while an instance is INITIALIZING [default: 0.2].
    #[arg(long, env = "ORCHESTRATOR_PROBE_INTERVAL", value_name = "SECONDS", value_parser = parse_seconds)]
    pub probe_interval: Option<Duration>,

    /// When instances get their own Xvfb: auto (only without DISPLAY), always, never
    /// [default: auto].
    #[arg(long, env = "ORCHESTRATOR_XVFB", value_enum)]
    pub xvfb: Option<XvfbMode>,

    /// The Xvfb program [default: Xvfb from PATH].
    #[arg(long, env = "ORCHESTRATOR_XVFB_EXECUTABLE", value_name = "PATH")]
    pub xvfb_executable: Option<PathBuf>,

    /// Instance N's Xvfb serves display :(this + N) [default: 90].
    #[arg(long, env = "ORCHESTRATOR_XVFB_DISPLAY_BASE", value_name = "N")]
    pub xvfb_display_base: Option<u32>,

    /// Xvfb screen geometry WIDTHxHEIGHTxDEPTH [default: 3840x2160x24].
    #[arg(long, env = "ORCHESTRATOR_XVFB_SCREEN", value_name = "GEOMETRY")]
    pub xvfb_screen: Option<String>,

    /// Sound for instances: none, or pulse (a PulseAudio server per instance whose null
    /// sink's monitor rust-core streams) [default: none].
    #[arg(long, env = "ORCHESTRATOR_AUDIO", value_enum)]
    pub audio: Option<AudioMode>,

    /// The pulseaudio program for --audio pulse [default: pulseaudio from PATH].
    #[arg(long, env = "ORCHESTRATOR_PULSEAUDIO_EXECUTABLE", value_name = "PATH")]
    pub pulseaudio_executable: Option<PathBuf>,

    /// Roles to run: both, supervisor, web [default: both].
    #[arg(long, env = "ORCHESTRATOR_ROLE", value_enum)]
    pub role: Option<Role>,

    /// Address of the web origin (pages, API, signaling proxy) [default: 127.0.0.1:4690].
    #[arg(long, env = "ORCHESTRATOR_WEB_LISTEN", value_name = "ADDR:PORT")]
    pub web_listen: Option<SocketAddr>,

    /// The folder of pages served [default: <repo>/web].
    #[arg(long, env = "ORCHESTRATOR_WEB_ROOT", value_name = "DIR")]
    pub web_root: Option<PathBuf>,

    /// Database URL: sqlite://PATH (created with its schema), a file path, or postgres://…
    /// (built with the `postgres` feature) [default: sqlite://data/orchestrator.db].
    #[arg(long, env = "ORCHESTRATOR_DATABASE", value_name = "URL")]
    pub database: Option<String>,

    /// TLS certificate chain (PEM) for HTTPS on the web origin; needs --tls-key.
    #[arg(long, env = "ORCHESTRATOR_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for HTTPS on the web origin; needs --tls-cert.
    #[arg(long, env = "ORCHESTRATOR_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// Seconds a running instance may have no viewer before it is stopped; 0 never stops one
    /// [default: 300].
    #[arg(long, env = "ORCHESTRATOR_IDLE_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    pub idle_timeout: Option<Duration>,

    /// Instances one browser session may run at once; 0 for no limit [default: 4].
    #[arg(long, env = "ORCHESTRATOR_MAX_INSTANCES_PER_SESSION", value_name = "N")]
    pub max_instances_per_session: Option<u32>,

    /// Live instances one client address (an IPv4 address or an IPv6 /64) may run at once,
    /// whatever its sessions; 0 for no limit [default: 8].
    #[arg(long, env = "ORCHESTRATOR_MAX_INSTANCES_PER_ADDRESS", value_name = "N")]
    pub max_instances_per_address: Option<u32>,

    /// New browser sessions one client address may create per minute; 0 for no limit
    /// [default: 10].
    #[arg(
        long,
        env = "ORCHESTRATOR_MAX_NEW_SESSIONS_PER_MINUTE",
        value_name = "N"
    )]
    pub max_new_sessions_per_minute: Option<u32>,

    /// Wrong session or share tokens one client address may send per minute; past it, its
    /// requests with a token are refused until the allowance refills; 0 for no limit
    /// [default: 20].
    #[arg(
        long,
        env = "ORCHESTRATOR_MAX_TOKEN_FAILURES_PER_MINUTE",
        value_name = "N"
    )]
    pub max_token_failures_per_minute: Option<u32>,

    /// Seconds a session may go unused (no launch, stop, resize or share link) before it
    /// expires, unless one of its instances runs; 0 never [default: 604800, 7 days].
    #[arg(long, env = "ORCHESTRATOR_SESSION_EXPIRY", value_name = "SECONDS", value_parser = parse_seconds)]
    pub session_expiry: Option<Duration>,

    /// Seconds a client has to send a request's headers, on a new connection or after the
    /// previous answer on a kept-alive one (so also the idle keep-alive timeout) [default: 10].
    #[arg(long, env = "ORCHESTRATOR_HTTP_HEADER_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    pub http_header_timeout: Option<Duration>,

    /// A STUN or TURN server the stream page gives its peer connection: stun:HOST[:PORT],
    /// turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]; repeat or separate with ','
    /// (replaces the file's list). turn: and turns: need --turn-secret [default: none].
    #[arg(
        long = "turn-url",
        env = "ORCHESTRATOR_TURN_URLS",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub turn_urls: Vec<String>,

    /// The TURN server's shared secret (coturn's static-auth-secret, with use-auth-secret; at
    /// least 16 characters): each page gets a username and credential made from it that
    /// expire. Prefer the environment variable to the flag (other users can read a command
    /// line).
    #[arg(
        long,
        env = "ORCHESTRATOR_TURN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,

    /// Seconds a TURN credential lets a browser make new relays; a relay already made keeps
    /// going past it, and each (re)connection gets a fresh one [default: 3600].
    #[arg(long, env = "ORCHESTRATOR_TURN_CREDENTIAL_TTL", value_name = "SECONDS", value_parser = parse_seconds)]
    pub turn_credential_ttl: Option<Duration>,

    /// A remote supervisor for the web role, HOST:PORT (plain ws://) or wss://HOST:PORT (its
    /// port has TLS; its certificate must name HOST); repeat for several (added to the
    /// file's). In the environment variable, separate with ';'. Base ports after HOST:PORT
    /// (the old HOST:PORT/SIGNALING-BASE[/API-WEBSOCKET-BASE]) are no longer needed: ignored,
    /// with a warning.
    #[arg(
        long = "supervisor",
        env = "ORCHESTRATOR_SUPERVISORS",
        value_name = "[wss://]HOST:PORT",
        value_delimiter = ';'
    )]
    pub supervisors: Vec<SupervisorAddress>,

    /// PEM bundle of the CA certificates a wss:// supervisor's certificate must chain to;
    /// given, only these are trusted [default: the system's root certificates].
    #[arg(long, env = "ORCHESTRATOR_SUPERVISOR_CA", value_name = "PATH")]
    pub supervisor_ca: Option<PathBuf>,

    /// Log filter (tracing EnvFilter syntax, e.g. `info`, `orchestrator=debug`).
    #[arg(
        long,
        env = "ORCHESTRATOR_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,

    /// Print the effective configuration and exit.
    #[arg(long)]
    pub print_config: bool,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected seconds, got {text:?}"))?;
    seconds_to_duration(seconds)
}

fn seconds_to_duration(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("expected a non-negative number of seconds, got {seconds}"))
}

/// The TOML file. Every key is optional; see `orchestrator.example.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--connection-idle-timeout`, seconds.
    pub connection_idle_timeout: Option<f64>,
    /// `--supervisor-secret`.
    pub supervisor_secret: Option<String>,
    /// `--supervisor-tls-cert`.
    pub supervisor_tls_cert: Option<PathBuf>,
    /// `--supervisor-tls-key`.
    pub supervisor_tls_key: Option<PathBuf>,
    /// `--slots`.
    pub slots: Option<u32>,
    /// `--signaling-base-port`.
    pub signaling_base_port: Option<u16>,
    /// `--api-websocket-base-port`.
    pub api_websocket_base_port: Option<u16>,
    /// `--api-tcp-base-port`.
    pub api_tcp_base_port: Option<u16>,
    /// `--webgui-http-base-port`.
    pub webgui_http_base_port: Option<u16>,
    /// `--log-dir`.
    pub log_dir: Option<PathBuf>,
    /// `--openspace`.
    pub openspace: Option<PathBuf>,
    /// `--openspace-profile`.
    pub openspace_profile: Option<String>,
    /// `--log-max-mib`.
    pub log_max_mib: Option<u64>,
    /// `--startup-timeout`, seconds.
    pub startup_timeout: Option<f64>,
    /// `--stop-timeout`, seconds.
    pub stop_timeout: Option<f64>,
    /// `--resize-timeout`, seconds.
    pub resize_timeout: Option<f64>,
    /// `--frame-timeout`, seconds.
    pub frame_timeout: Option<f64>,
    /// `--probe-interval`, seconds.
    pub probe_interval: Option<f64>,
    /// `[instance]`: what to run.
    pub instance: FileInstance,
    /// `[xvfb]`.
    pub xvfb: FileXvfb,
    /// `[audio]`.
    pub audio: FileAudio,
    /// `--role`.
    pub role: Option<Role>,
    /// `[web]`: the web role.
    pub web: FileWeb,
}

/// `[web]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileWeb {
    /// `--web-listen`.
    pub listen: Option<SocketAddr>,
    /// `--web-root`.
    pub root: Option<PathBuf>,
    /// `--database`.
    pub database: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--idle-timeout`, seconds (0: never).
    pub idle_timeout: Option<f64>,
    /// `--max-instances-per-session`.
    pub max_instances_per_session: Option<u32>,
    /// `--max-instances-per-address`.
    pub max_instances_per_address: Option<u32>,
    /// `--max-new-sessions-per-minute`.
    pub max_new_sessions_per_minute: Option<u32>,
    /// `--max-token-failures-per-minute`.
    pub max_token_failures_per_minute: Option<u32>,
    /// `--session-expiry`, seconds (0: never).
    pub session_expiry: Option<f64>,
    /// `--http-header-timeout`, seconds.
    pub http_header_timeout: Option<f64>,
    /// `--supervisor`, as `HOST:PORT` or `wss://HOST:PORT` strings (old base ports after
    /// `HOST:PORT` are ignored).
    pub supervisors: Vec<String>,
    /// `--supervisor-ca`.
    pub supervisor_ca: Option<PathBuf>,
    /// `--turn-url`, a list.
    pub turn_urls: Vec<String>,
    /// `--turn-secret`.
    pub turn_secret: Option<String>,
    /// `--turn-credential-ttl`, seconds.
    pub turn_credential_ttl: Option<f64>,
    /// `region` of the servers this web role registers.
    pub region: Option<String>,
    /// `ram` of the local server (detected when absent).
    pub ram: Option<String>,
    /// `graphics_card` of the local server (detected when absent).
    pub graphics_card: Option<String>,
    /// `storage` of the local server (detected when absent).
    pub storage: Option<String>,
}

/// `[instance]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileInstance {
    /// The program.
    pub executable: Option<PathBuf>,
    /// Its arguments.
    pub args: Option<Vec<String>>,
    /// Its working directory.
    pub working_dir: Option<PathBuf>,
    /// Extra environment (`[instance.env]`).
    pub env: BTreeMap<String, String>,
}

/// `[xvfb]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileXvfb {
    /// `auto`, `always` or `never`.
    pub mode: Option<XvfbMode>,
    /// The Xvfb program.
    pub executable: Option<PathBuf>,
    /// Display of instance 0.
    pub display_base: Option<u32>,
    /// Screen geometry.
    pub screen: Option<String>,
    /// Seconds Xvfb may take to open its socket.
    pub startup_timeout: Option<f64>,
}

/// `[audio]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileAudio {
    /// `none` or `pulse`.
    pub mode: Option<AudioMode>,
    /// The pulseaudio program.
    pub executable: Option<PathBuf>,
    /// Seconds the server may take to open its socket.
    pub startup_timeout: Option<f64>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        message: String,
    },
    /// A duration in the file is negative or not finite.
    #[error("{key}: {message}")]
    Duration {
        /// The key.
        key: &'static str,
        /// Why.
        message: String,
    },
    /// The instance settings do not work.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The OpenSpace folder cannot be used.
    #[error(transparent)]
    OpenSpace(#[from] OpenSpaceError),
    /// The supervisor secret is unusable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The STUN/TURN settings do not work.
    #[error(transparent)]
    Turn(#[from] TurnError),
    /// Only one of the supervisor port's certificate and key.
    #[error(
        "TLS on the supervisor port needs both --supervisor-tls-cert and --supervisor-tls-key \
         (supervisor_tls_cert and supervisor_tls_key)"
    )]
    SupervisorTlsPair,
    /// TLS asked for, in a build without it.
    #[error("{what} needs TLS, but this orchestrator was built without the `tls` feature")]
    TlsNotCompiled {
        /// What asked for it.
        what: String,
    },
    /// A supervisor listening beyond loopback without a secret.
    #[error(
        "the supervisor would listen on {listen} without a secret: anyone who reaches it could \
         START and STOP. Set --supervisor-secret (ORCHESTRATOR_SUPERVISOR_SECRET) or listen on \
         127.0.0.1"
    )]
    OpenWithoutSecret {
        /// The listen address.
        listen: SocketAddr,
    },
    /// Both OpenSpace mode and an instance program are configured.
    #[error(
        "--openspace (openspace) chooses the instance program itself: leave out the instance \
         executable and arguments"
    )]
    OpenSpaceAndProgram,
    /// A `[web]` value is malformed.
    #[error("web.{key}: {message}")]
    Web {
        /// The key.
        key: &'static str,
        /// Why.
        message: String,
    },
    /// The supervisor port is also an instance port.
    #[error("listen port {port} is inside the {range} port range {first}-{last}")]
    ListenCollision {
        /// The port.
        port: u16,
        /// The range's name.
        range: &'static str,
        /// First port of the range.
        first: i64,
        /// Last port of the range.
        last: i64,
    },
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Which roles run.
    pub role: Role,
    /// Where the supervisor protocol listens.
    pub listen: SocketAddr,
    /// A supervisor-protocol connection without a request for this long is closed.
    pub connection_idle_timeout: Duration,
    /// What supervisor-protocol connections present; also given to the web role's clients.
    pub supervisor_secret: Option<SupervisorSecret>,
    /// TLS on the supervisor port (`wss://`), its certificate chain and key; `None`: plain.
    pub supervisor_tls: Option<TlsFiles>,
    /// The local supervisor's settings.
    pub instances: InstanceSettings,
    /// The web role's settings.
    pub web: WebSettings,
}

/// Default supervisor address (the seeds' port, loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4699";

impl Config {
    /// Reads `cli.config` if given and merges it with the command line.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let (file, base) = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let file: FileConfig = toml::from_str(&text).map_err(|err| ConfigError::Parse {
                    path: path.clone(),
                    message: err.to_string(),
                })?;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (file, Some(dir))
            }
            None => (FileConfig::default(), None),
        };
        Config::merge(cli, file, base.as_deref())
    }

    /// Defaults < `file` (paths relative to `file_dir`) < `cli`.
    pub fn merge(
        cli: &Cli,
        file: FileConfig,
        file_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let file_base = file_dir.unwrap_or(&cwd);
        let from_file = |p: PathBuf| resolve(file_base, p);
        let program_from_file = |p: PathBuf| resolve_program(file_base, p);
        let from_cli = |p: &PathBuf| resolve(&cwd, p.clone());
        let program_from_cli = |p: &PathBuf| resolve_program(&cwd, p.clone());
        let seconds =
            |key: &'static str, value: Option<f64>| -> Result<Option<Duration>, ConfigError> {
                value
                    .map(seconds_to_duration)
                    .transpose()
                    .map_err(|message| ConfigError::Duration { key, message })
            };

        let mut s = InstanceSettings::default();
        // The file.
        s.slots = file.slots.unwrap_or(s.slots);
        s.ports.signaling_base = file.signaling_base_port.unwrap_or(s.ports.signaling_base);
        s.ports.api_websocket_base = file
            .api_websocket_base_port
            .unwrap_or(s.ports.api_websocket_base);
        s.ports.api_tcp_base = file.api_tcp_base_port.unwrap_or(s.ports.api_tcp_base);
        s.ports.webgui_http_base = file
            .webgui_http_base_port
            .unwrap_or(s.ports.webgui_http_base);
        s.log_dir = file
            .log_dir
            .map(from_file)
            .unwrap_or_else(|| cwd.join(&s.log_dir));
        if let Some(mib) = file.log_max_mib {
            s.log_max_bytes = mib.saturating_mul(1 << 20);
        }
        s.startup_timeout =
            seconds("startup_timeout", file.startup_timeout)?.unwrap_or(s.startup_timeout);
        s.stop_timeout = seconds("stop_timeout", file.stop_timeout)?.unwrap_or(s.stop_timeout);
        s.resize_timeout =
            seconds("resize_timeout", file.resize_timeout)?.unwrap_or(s.resize_timeout);
        s.frame_timeout = seconds("frame_timeout", file.frame_timeout)?.unwrap_or(s.frame_timeout);
        s.probe_interval =
            seconds("probe_interval", file.probe_interval)?.unwrap_or(s.probe_interval);
        let file_sets_program = file.instance.executable.is_some() || file.instance.args.is_some();
        let file_openspace = file.openspace.map(from_file);
        if let Some(exe) = file.instance.executable {
            s.command.executable = program_from_file(exe);
        }
        s.command.args = file.instance.args.unwrap_or_default();
        s.command.working_dir = file.instance.working_dir.map(from_file);
        s.command.env = file.instance.env;
        s.xvfb.mode = file.xvfb.mode.unwrap_or(s.xvfb.mode);
        if let Some(exe) = file.xvfb.executable {
            s.xvfb.executable = program_from_file(exe);
        }
        s.xvfb.display_base = file.xvfb.display_base.unwrap_or(s.xvfb.display_base);
        s.xvfb.screen = file.xvfb.screen.unwrap_or(s.xvfb.screen);
        s.xvfb.startup_timeout = seconds("xvfb.startup_timeout", file.xvfb.startup_timeout)?
            .unwrap_or(s.xvfb.startup_timeout);
        s.audio.mode = file.audio.mode.unwrap_or(s.audio.mode);
        if let Some(exe) = file.audio.executable {
            s.audio.executable = program_from_file(exe);
        }
        s.audio.startup_timeout = seconds("audio.startup_timeout", file.audio.startup_timeout)?
            .unwrap_or(s.audio.startup_timeout);
        let mut listen = file.listen;

        // The command line and environment.
        listen = cli.listen.or(listen);
        s.slots = cli.slots.unwrap_or(s.slots);
        s.ports.signaling_base = cli.signaling_base_port.unwrap_or(s.ports.signaling_base);
        s.ports.api_websocket_base = cli
            .api_websocket_base_port
            .unwrap_or(s.ports.api_websocket_base);
        s.ports.api_tcp_base = cli.api_tcp_base_port.unwrap_or(s.ports.api_tcp_base);
        s.ports.webgui_http_base = cli
            .webgui_http_base_port
            .unwrap_or(s.ports.webgui_http_base);
        if let Some(exe) = &cli.instance_executable {
            s.command.executable = program_from_cli(exe);
        }
        if !cli.instance_args.is_empty() {
            s.command.args = cli.instance_args.clone();
        }
        if let Some(dir) = &cli.instance_working_dir {
            s.command.working_dir = Some(from_cli(dir));
        }
        s.command.env.extend(cli.instance_env.iter().cloned());
        if let Some(root) = cli.openspace.as_ref().map(from_cli).or(file_openspace) {
            if file_sets_program
                || cli.instance_executable.is_some()
                || !cli.instance_args.is_empty()
            {
                return Err(ConfigError::OpenSpaceAndProgram);
            }
            let profile = cli.openspace_profile.clone().or(file.openspace_profile);
            let mut command = openspace_command(&root, profile.as_deref(), &openspace_files_dir())?;
            // The configured env comes last, so it can change the Mesa overrides too.
            command.env.extend(std::mem::take(&mut s.command.env));
            s.command = command;
        }
        if let Some(dir) = &cli.log_dir {
            s.log_dir = from_cli(dir);
        }
        if let Some(mib) = cli.log_max_mib {
            s.log_max_bytes = mib.saturating_mul(1 << 20);
        }
        s.startup_timeout = cli.startup_timeout.unwrap_or(s.startup_timeout);
        s.stop_timeout = cli.stop_timeout.unwrap_or(s.stop_timeout);
        s.resize_timeout = cli.resize_timeout.unwrap_or(s.resize_timeout);
        s.frame_timeout = cli.frame_timeout.unwrap_or(s.frame_timeout);
        s.probe_interval = cli.probe_interval.unwrap_or(s.probe_interval);
        s.xvfb.mode = cli.xvfb.unwrap_or(s.xvfb.mode);
        if let Some(exe) = &cli.xvfb_executable {
            s.xvfb.executable = program_from_cli(exe);
        }
        s.xvfb.display_base = cli.xvfb_display_base.unwrap_or(s.xvfb.display_base);
        if let Some(screen) = &cli.xvfb_screen {
            s.xvfb.screen = screen.clone();
        }
        s.audio.mode = cli.audio.unwrap_or(s.audio.mode);
        if let Some(exe) = &cli.pulseaudio_executable {
            s.audio.executable = program_from_cli(exe);
        }

        let listen = match listen {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse().map_err(|_| ConfigError::Parse {
                path: PathBuf::from("<default>"),
                message: "bad default listen address".into(),
            })?,
        };
        let role = cli.role.or(file.role).unwrap_or_default();
        let web = merge_web(cli, file.web, file_base, &cwd)?;
        s.validate()?;
        let mut listeners = vec![("listen", listen.port())];
        if role == Role::Both {
            if web.listen.port() != 0 && web.listen.port() == listen.port() {
                return Err(ConfigError::Web {
                    key: "listen",
                    message: format!("port {} is also the supervisor's", listen.port()),
                });
            }
            listeners.push(("web listen", web.listen.port()));
        }
        if role != Role::Web {
            for (_, port) in listeners.into_iter().filter(|(_, port)| *port != 0) {
                for (range, first, last) in s.ports.ranges(s.slots) {
                    if (first..=last).contains(&i64::from(port)) {
                        return Err(ConfigError::ListenCollision {
                            port,
                            range,
                            first,
                            last,
                        });
                    }
                }
            }
        }
        let connection_idle_timeout = match cli.connection_idle_timeout {
            Some(after) => after,
            None => seconds("connection_idle_timeout", file.connection_idle_timeout)?
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
        };
        if connection_idle_timeout.is_zero() {
            return Err(ConfigError::Duration {
                key: "connection_idle_timeout",
                message: "must be greater than zero".into(),
            });
        }
        let supervisor_secret = cli
            .supervisor_secret
            .as_deref()
            .or(file.supervisor_secret.as_deref())
            .map(SupervisorSecret::new)
            .transpose()?;
        // TLS hides the secret on the wire; it does not say who may connect, so a port beyond
        // loopback needs the secret all the same.
        if role != Role::Web && supervisor_secret.is_none() && !listen.ip().is_loopback() {
            return Err(ConfigError::OpenWithoutSecret { listen });
        }
        let supervisor_tls = tls_pair(
            cli.supervisor_tls_cert.as_ref().map(from_cli),
            cli.supervisor_tls_key.as_ref().map(from_cli),
            file.supervisor_tls_cert.map(from_file),
            file.supervisor_tls_key.map(from_file),
        )
        .ok_or(ConfigError::SupervisorTlsPair)?;
        if supervisor_tls.is_some() && !cfg!(feature = "tls") {
            return Err(ConfigError::TlsNotCompiled {
                what: "--supervisor-tls-cert".into(),
            });
        }
        let mut web = web;
        web.manager.supervisor_secret = supervisor_secret.clone();
        Ok(Config {
            role,
            listen,
            connection_idle_timeout,
            supervisor_secret,
            supervisor_tls,
            instances: s,
            web,
        })
    }
}

/// A certificate and key from the command line (each replacing the file's): `Some(None)`
/// for neither, `None` for only one of them.
fn tls_pair(
    cli_cert: Option<PathBuf>,
    cli_key: Option<PathBuf>,
    file_cert: Option<PathBuf>,
    file_key: Option<PathBuf>,
) -> Option<Option<TlsFiles>> {
    match (cli_cert.or(file_cert), cli_key.or(file_key)) {
        (Some(cert), Some(key)) => Some(Some(TlsFiles { cert, key })),
        (None, None) => Some(None),
        _ => None,
    }
}

/// The web role's settings: defaults < `file` (paths relative to `file_base`) < `cli`.
fn merge_web(
    cli: &Cli,
    file: FileWeb,
    file_base: &Path,
    cwd: &Path,
) -> Result<WebSettings, ConfigError> {
    let mut w = WebSettings::default();
    let web_error = |key: &'static str| move |message: String| ConfigError::Web { key, message };
    w.listen = cli.web_listen.or(file.listen).unwrap_or(w.listen);
    w.root = match (&cli.web_root, file.root) {
        (Some(root), _) => resolve(cwd, root.clone()),
        (None, Some(root)) => resolve(file_base, root),
        (None, None) => w.root,
    };
    // A relative SQLite path is relative to where it was given, like every other path.
    w.database = match (&cli.database, file.database) {
        (Some(url), _) => sqlite_relative(cwd, url),
        (None, Some(url)) => sqlite_relative(file_base, &url),
        (None, None) => sqlite_relative(cwd, &w.database),
    };
    w.tls = tls_pair(
        cli.tls_cert.as_ref().map(|p| resolve(cwd, p.clone())),
        cli.tls_key.as_ref().map(|p| resolve(cwd, p.clone())),
        file.tls_cert.map(|p| resolve(file_base, p)),
        file.tls_key.map(|p| resolve(file_base, p)),
    )
    .ok_or_else(|| ConfigError::Web {
        key: "tls_cert",
        message: "TLS needs both a certificate and a key".into(),
    })?;
    let idle = match cli.idle_timeout {
        Some(idle) => Some(idle),
        None => file
            .idle_timeout
            .map(seconds_to_duration)
            .transpose()
            .map_err(web_error("idle_timeout"))?,
    };
    if let Some(idle) = idle {
        w.manager.idle_timeout = (!idle.is_zero()).then_some(idle);
    }
    w.manager.max_per_session = cli
        .max_instances_per_session
        .or(file.max_instances_per_session)
        .unwrap_or(w.manager.max_per_session);
    w.manager.max_per_address = cli
        .max_instances_per_address
        .or(file.max_instances_per_address)
        .unwrap_or(w.manager.max_per_address);
    w.limits.new_sessions_per_minute = cli
        .max_new_sessions_per_minute
        .or(file.max_new_sessions_per_minute)
        .unwrap_or(w.limits.new_sessions_per_minute);
    w.limits.token_failures_per_minute = cli
        .max_token_failures_per_minute
        .or(file.max_token_failures_per_minute)
        .unwrap_or(w.limits.token_failures_per_minute);
    let seconds = |key: &'static str, cli: Option<Duration>, file: Option<f64>| match cli {
        Some(value) => Ok(Some(value)),
        None => file
            .map(seconds_to_duration)
            .transpose()
            .map_err(web_error(key)),
    };
    if let Some(expiry) = seconds("session_expiry", cli.session_expiry, file.session_expiry)? {
        w.sessions.expiry = (!expiry.is_zero()).then_some(expiry);
    }
    if let Some(timeout) = seconds(
        "http_header_timeout",
        cli.http_header_timeout,
        file.http_header_timeout,
    )? {
        if timeout.is_zero() {
            return Err(ConfigError::Web {
                key: "http_header_timeout",
                message: "must be more than 0 seconds".into(),
            });
        }
        w.limits.header_timeout = timeout;
    }
    for text in &file.supervisors {
        w.supervisors
            .push(text.parse().map_err(web_error("supervisors"))?);
    }
    w.supervisors.extend(cli.supervisors.iter().cloned());
    if let Some(address) = w.supervisors.iter().find(|address| address.tls)
        && !cfg!(feature = "tls")
    {
        return Err(ConfigError::TlsNotCompiled {
            what: format!(
                "the supervisor {}",
                crate::web::client::supervisor_url(&address.host, address.port, true)
            ),
        });
    }
    w.manager.supervisor_ca = match (&cli.supervisor_ca, file.supervisor_ca) {
        (Some(ca), _) => Some(resolve(cwd, ca.clone())),
        (None, Some(ca)) => Some(resolve(file_base, ca)),
        (None, None) => None,
    };
    // TURN: the command line's URLs replace the file's (a list of servers is one setting).
    let turn_urls = if cli.turn_urls.is_empty() {
        file.turn_urls
    } else {
        cli.turn_urls.clone()
    };
    let turn_ttl = seconds(
        "turn_credential_ttl",
        cli.turn_credential_ttl,
        file.turn_credential_ttl,
    )?
    .unwrap_or(DEFAULT_TURN_TTL);
    let turn_secret = cli.turn_secret.as_deref().or(file.turn_secret.as_deref());
    w.turn = TurnSettings::new(turn_urls, turn_secret, turn_ttl)?;
    if let Some(region) = file.region {
        w.server_info.region = region;
    }
    if let Some(ram) = file.ram {
        w.server_info.ram = ram;
    }
    if let Some(graphics_card) = file.graphics_card {
        w.server_info.graphics_card = graphics_card;
    }
    if let Some(storage) = file.storage {
        w.server_info.storage = storage;
    }
    Ok(w)
}

/// A SQLite URL or bare path with a relative path made absolute against `base`; other URLs
/// unchanged.
fn sqlite_relative(base: &Path, url: &str) -> String {
    if url.contains("://") && !url.starts_with("sqlite://") {
        return url.to_string();
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.starts_with(':') || path.is_empty() {
        return url.to_string();
    }
    format!("sqlite://{}", resolve(base, PathBuf::from(path)).display())
}

/// A relative `path` taken relative to `base`.
fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Like [`resolve`], except that a bare program name (no `/`) stays as it is, to be looked up
/// in `PATH`.
fn resolve_program(base: &Path, path: PathBuf) -> PathBuf {
    if path.as_os_str().as_encoded_bytes().contains(&b'/') {
        resolve(base, path)
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["orchestrator"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap()
    }

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_run_three_slots_of_the_test_host_on_4699() {
        let config = Config::merge(&Cli::default(), FileConfig::default(), None).unwrap();
        assert_eq!(config.listen, "127.0.0.1:4699".parse().unwrap());
        assert_eq!(config.instances.slots, 3);
        assert!(
            config
                .instances
                .command
                .executable
                .ends_with("build/gl-host/osw-gl-host")
        );
        assert_eq!(config.instances.ports.signaling(2), 4702);
        assert_eq!(config.instances.ports.api_websocket(2), 4684);
        assert_eq!(config.instances.ports.api_tcp(2), 4679);
        assert_eq!(config.instances.ports.webgui_http(2), 4802);
        assert_eq!(config.instances.xvfb.mode, XvfbMode::Auto);
    }

    #[test]
    fn flags_override_the_file_and_file_paths_are_relative_to_it() {
        let f = file(
            r#"
            listen = "0.0.0.0:5000"
            supervisor_secret = "a-secret-of-20-chars"
            slots = 2
            startup_timeout = 90
            probe_interval = 0.5
            log_dir = "logs"
            log_max_mib = 4
            frame_timeout = 12
            [instance]
            executable = "bin/OpenSpace"
            args = ["--config", "x"]
            working_dir = "."
            env = { OSW_ICE_ADDRESSES = "127.0.0.1", A = "1" }
            [xvfb]
            mode = "never"
            display_base = 40
            "#,
        );
        let cli = parse(&[
            "--slots",
            "4",
            "--instance-env",
            "A=2",
            "--stop-timeout",
            "1.5",
        ]);
        let config = Config::merge(&cli, f, Some(Path::new("/srv/osw"))).unwrap();
        let s = &config.instances;
        assert_eq!(config.listen, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(
            config.supervisor_secret,
            Some(SupervisorSecret::new("a-secret-of-20-chars").unwrap())
        );
        assert_eq!(s.slots, 4);
        assert_eq!(s.startup_timeout, Duration::from_secs(90));
        assert_eq!(s.probe_interval, Duration::from_millis(500));
        assert_eq!(s.stop_timeout, Duration::from_millis(1500));
        assert_eq!(s.log_dir, PathBuf::from("/srv/osw/logs"));
        assert_eq!(s.log_max_bytes, 4 << 20);
        assert_eq!(s.frame_timeout, Duration::from_secs(12));
        assert_eq!(
            s.command.executable,
            PathBuf::from("/srv/osw/bin/OpenSpace")
        );
        assert_eq!(s.command.working_dir, Some(PathBuf::from("/srv/osw/.")));
        assert_eq!(s.command.args, ["--config", "x"]);
        assert_eq!(s.command.env["A"], "2");
        assert_eq!(s.command.env["OSW_ICE_ADDRESSES"], "127.0.0.1");
        assert_eq!(s.xvfb.mode, XvfbMode::Never);
        assert_eq!(s.xvfb.display_base, 40);
        assert_eq!(s.xvfb.executable, PathBuf::from("Xvfb"));
    }

    #[test]
    fn audio_is_off_by_default_and_pulse_reserves_its_variables() {
        let config = Config::merge(&parse(&[]), FileConfig::default(), None).unwrap();
        assert_eq!(config.instances.audio.mode, AudioMode::None);
        let f = file(
            r#"
            [audio]
            mode = "pulse"
            executable = "bin/pulseaudio"
            startup_timeout = 4
            "#,
        );
        let config = Config::merge(&parse(&[]), f, Some(Path::new("/srv/osw"))).unwrap();
        let audio = &config.instances.audio;
        assert_eq!(audio.mode, AudioMode::Pulse);
        assert_eq!(audio.executable, PathBuf::from("/srv/osw/bin/pulseaudio"));
        assert_eq!(audio.startup_timeout, Duration::from_secs(4));
        let config = Config::merge(
            &parse(&["--audio", "none"]),
            file("[audio]\nmode = \"pulse\"\n"),
            None,
        )
        .unwrap();
        assert_eq!(
            config.instances.audio.mode,
            AudioMode::None,
            "the flag wins"
        );
        // With pulse, the supervisor sets PULSE_SERVER and OSW_AUDIO*; without, anyone may.
        let err = Config::merge(
            &parse(&["--audio", "pulse", "--instance-env", "OSW_AUDIO=host"]),
            FileConfig::default(),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("OSW_AUDIO"), "{err}");
        Config::merge(
            &parse(&["--instance-env", "OSW_AUDIO=host"]),
            FileConfig::default(),
            None,
        )
        .unwrap();
    }

    #[test]
    fn openspace_mode_runs_the_build_with_the_shipped_configuration() {
        let root =
            std::env::temp_dir().join(format!("osw-config-openspace-{}", std::process::id()));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/OpenSpace"), "").unwrap();
        std::fs::write(root.join("openspace.cfg"), "").unwrap();
        let root_arg = root.display().to_string();
        let cli = parse(&[
            "--openspace",
            &root_arg,
            "--instance-env",
            "OSW_ENCODER=x264",
        ]);
        let config = Config::merge(&cli, FileConfig::default(), None).unwrap();
        let command = &config.instances.command;
        assert_eq!(command.executable, root.join("bin/OpenSpace"));
        assert_eq!(command.env["OSW_ENCODER"], "x264");
        assert_eq!(command.env["MESA_GL_VERSION_OVERRIDE"], "4.6");
        assert!(command.args.iter().any(|a| a.ends_with("stream.profile")));

        let both = file(&format!(
            "openspace = \"{root_arg}\"\n[instance]\nexecutable = \"/bin/true\""
        ));
        let err = Config::merge(&Cli::default(), both, None).unwrap_err();
        assert!(matches!(err, ConfigError::OpenSpaceAndProgram), "{err}");

        let missing = parse(&["--openspace", "/nonexistent/OpenSpace"]);
        let err = Config::merge(&missing, FileConfig::default(), None).unwrap_err();
        assert!(err.to_string().contains("has no bin/OpenSpace"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        let overlap = parse(&["--slots", "20", "--signaling-base-port", "4690"]);
        let err = Config::merge(&overlap, FileConfig::default(), None).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");

        let listen = parse(&["--listen", "127.0.0.1:4701"]);
        let err = Config::merge(&listen, FileConfig::default(), None).unwrap_err();
        assert!(
            matches!(err, ConfigError::ListenCollision { port: 4701, .. }),
            "{err}"
        );

        let reserved = parse(&["--instance-env", "OSW_LISTEN_PORT=1"]);
        let err = Config::merge(&reserved, FileConfig::default(), None).unwrap_err();
        assert!(err.to_string().contains("OSW_LISTEN_PORT"), "{err}");

        let zero = parse(&["--slots", "0"]);
        assert!(Config::merge(&zero, FileConfig::default(), None).is_err());

        let high = parse(&["--signaling-base-port", "65535", "--slots", "2"]);
        assert!(Config::merge(&high, FileConfig::default(), None).is_err());

        assert!(toml::from_str::<FileConfig>("slotz = 3").is_err());
        let no_log = file("log_max_mib = 0");
        let err = Config::merge(&Cli::default(), no_log, None).unwrap_err();
        assert!(err.to_string().contains("log_max_mib"), "{err}");

        let negative = file("stop_timeout = -1");
        assert!(Config::merge(&Cli::default(), negative, None).is_err());
        assert!(Cli::try_parse_from(["orchestrator", "--stop-timeout", "soon"]).is_err());
        assert!(Cli::try_parse_from(["orchestrator", "--instance-env", "novalue"]).is_err());
    }

    #[test]
    fn web_settings_merge_file_then_flags_with_paths_relative_to_where_they_were_given() {
        let config = Config::merge(&Cli::default(), FileConfig::default(), None).unwrap();
        assert_eq!(config.role, Role::Both);
        assert_eq!(config.web.listen, "127.0.0.1:4690".parse().unwrap());
        assert!(config.web.root.ends_with("web"));
        assert!(
            config.web.database.starts_with("sqlite:///"),
            "{}",
            config.web.database
        );
        assert!(config.web.database.ends_with("data/orchestrator.db"));
        assert_eq!(
            config.web.manager.idle_timeout,
            Some(Duration::from_secs(300))
        );
        assert_eq!(config.web.tls, None);
        assert_eq!(
            config.web.sessions.expiry,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        assert_eq!(config.web.limits, crate::web::OriginLimits::default());
        assert_eq!(config.web.manager.max_per_address, 8);

        let f = file(
            r#"
            role = "web"
            [web]
            listen = "0.0.0.0:8443"
            database = "state/o.db"
            tls_cert = "cert.pem"
            tls_key = "key.pem"
            idle_timeout = 0
            supervisors = ["render-1:4699", "render-2:4699/5700"]
            region = "us-east-3"
            ram = "64GB"
            session_expiry = 0
            max_new_sessions_per_minute = 3
            max_token_failures_per_minute = 7
            max_instances_per_address = 5
            http_header_timeout = 4
            "#,
        );
        let cli = parse(&[
            "--supervisor",
            "render-3:4699",
            "--max-instances-per-session",
            "2",
            "--max-instances-per-address",
            "6",
            "--http-header-timeout",
            "2.5",
        ]);
        let config = Config::merge(&cli, f, Some(Path::new("/etc/osw"))).unwrap();
        let w = &config.web;
        assert_eq!(config.role, Role::Web);
        assert_eq!(w.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(w.database, "sqlite:///etc/osw/state/o.db");
        let tls = w.tls.as_ref().unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/osw/cert.pem"));
        assert_eq!(w.manager.idle_timeout, None);
        assert_eq!(w.manager.max_per_session, 2);
        assert_eq!(w.manager.max_per_address, 6);
        assert_eq!(w.sessions.expiry, None);
        assert_eq!(w.limits.new_sessions_per_minute, 3);
        assert_eq!(w.limits.token_failures_per_minute, 7);
        assert_eq!(w.limits.header_timeout, Duration::from_millis(2500));
        // An old-style address (with base ports) still loads; its ports are ignored.
        let hosts: Vec<_> = w
            .supervisors
            .iter()
            .map(|s| (s.host.as_str(), s.port, s.ignored_ports.as_deref()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("render-1", 4699, None),
                ("render-2", 4699, Some("5700")),
                ("render-3", 4699, None)
            ]
        );
        assert_eq!(
            (w.server_info.region.as_str(), w.server_info.ram.as_str()),
            ("us-east-3", "64GB")
        );

        let postgres = parse(&[
            "--database",
            "postgres://u:p@db/osw",
            "--idle-timeout",
            "2.5",
        ]);
        let config = Config::merge(&postgres, FileConfig::default(), None).unwrap();
        assert_eq!(config.web.database, "postgres://u:p@db/osw");
        assert_eq!(
            config.web.manager.idle_timeout,
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn bad_web_settings_are_refused_with_a_reason() {
        let half_tls = parse(&["--tls-cert", "c.pem"]);
        let err = Config::merge(&half_tls, FileConfig::default(), None).unwrap_err();
        assert!(
            err.to_string().contains("both a certificate and a key"),
            "{err}"
        );
        let same = parse(&["--web-listen", "127.0.0.1:4699"]);
        assert!(Config::merge(&same, FileConfig::default(), None).is_err());
        let in_range = parse(&["--web-listen", "127.0.0.1:4701"]);
        let err = Config::merge(&in_range, FileConfig::default(), None).unwrap_err();
        assert!(
            matches!(err, ConfigError::ListenCollision { port: 4701, .. }),
            "{err}"
        );
        // A web role alone has no instance ports to collide with.
        let alone = parse(&["--role", "web", "--web-listen", "127.0.0.1:4701"]);
        assert!(Config::merge(&alone, FileConfig::default(), None).is_ok());
        let never = parse(&["--http-header-timeout", "0"]);
        let err = Config::merge(&never, FileConfig::default(), None).unwrap_err();
        assert!(err.to_string().contains("http_header_timeout"), "{err}");
        let expiry = parse(&["--session-expiry", "3600"]);
        let config = Config::merge(&expiry, FileConfig::default(), None).unwrap();
        assert_eq!(config.web.sessions.expiry, Some(Duration::from_secs(3600)));
        let bad = file("[web]\nsupervisors = [\"nohost\"]");
        assert!(Config::merge(&Cli::default(), bad, None).is_err());
        assert!(toml::from_str::<FileConfig>("[web]\nlisten_port = 1").is_err());
    }

    #[test]
    fn turn_settings_come_from_the_file_then_flags_and_are_checked() {
        let config = Config::merge(&Cli::default(), FileConfig::default(), None).unwrap();
        assert_eq!(config.web.turn, TurnSettings::default());
        assert!(config.web.turn.urls().is_empty());
        assert_eq!(config.web.turn.ttl(), Duration::from_secs(3600));

        let f = || {
            file(
                r#"
                [web]
                turn_urls = ["stun:10.0.0.1:3478", "turn:10.0.0.1:3478?transport=udp"]
                turn_secret = "a-turn-secret-of-24-chars"
                turn_credential_ttl = 600
                "#,
            )
        };
        let config = Config::merge(&Cli::default(), f(), None).unwrap();
        assert_eq!(
            config.web.turn.urls(),
            ["stun:10.0.0.1:3478", "turn:10.0.0.1:3478?transport=udp"]
        );
        assert_eq!(config.web.turn.ttl(), Duration::from_secs(600));
        // --print-config shows the settings' Debug: never the secret.
        let printed = format!("{config:#?}");
        assert!(!printed.contains("a-turn-secret-of-24-chars"), "{printed}");

        // Flags replace the file's URLs; comma separated or repeated.
        let cli = parse(&[
            "--turn-url",
            "turns:turn.example.org:5349,turn:10.0.0.2:3478?transport=tcp",
            "--turn-url",
            "stun:stun.example.org",
            "--turn-credential-ttl",
            "90",
        ]);
        let config = Config::merge(&cli, f(), None).unwrap();
        assert_eq!(
            config.web.turn.urls(),
            [
                "turns:turn.example.org:5349",
                "turn:10.0.0.2:3478?transport=tcp",
                "stun:stun.example.org"
            ]
        );
        assert_eq!(config.web.turn.ttl(), Duration::from_secs(90));
        // A STUN server alone needs no secret.
        let stun = parse(&["--turn-url", "stun:stun.example.org:3478"]);
        assert!(Config::merge(&stun, FileConfig::default(), None).is_ok());
    }

    #[test]
    fn bad_turn_settings_are_refused_with_a_reason() {
        let refused = |args: &[&str]| {
            Config::merge(&parse(args), FileConfig::default(), None)
                .unwrap_err()
                .to_string()
        };
        let err = refused(&["--turn-url", "http://10.0.0.1:3478"]);
        assert!(
            err.contains("\"http://10.0.0.1:3478\"") && err.contains("turn:"),
            "{err}"
        );
        let err = refused(&["--turn-url", "turn:10.0.0.1:3478"]);
        assert!(err.contains("needs --turn-secret"), "{err}");
        let err = refused(&["--turn-url", "turns:10.0.0.1:5349"]);
        assert!(err.contains("ORCHESTRATOR_TURN_SECRET"), "{err}");
        let err = refused(&["--turn-secret", "a-turn-secret-of-24-chars"]);
        assert!(err.contains("no turn: or turns: URL"), "{err}");
        let err = refused(&["--turn-url", "turn:x", "--turn-secret", "short"]);
        assert!(err.contains("at least 16 characters"), "{err}");
        let err = refused(&[
            "--turn-url",
            "turn:x",
            "--turn-secret",
            "a-turn-secret-of-24-chars",
            "--turn-credential-ttl",
            "0",
        ]);
        assert!(err.contains("--turn-credential-ttl"), "{err}");
        let secret_in_file = file("[web]\nturn_secret = \"a-turn-secret-of-24-chars\"");
        let err = Config::merge(&Cli::default(), secret_in_file, None).unwrap_err();
        assert!(
            matches!(err, ConfigError::Turn(TurnError::SecretWithoutUrl)),
            "{err}"
        );
        let negative = file("[web]\nturn_credential_ttl = -5");
        let err = Config::merge(&Cli::default(), negative, None).unwrap_err();
        assert!(err.to_string().contains("turn_credential_ttl"), "{err}");
    }

    // Its supervisors are wss://, which a build without `tls` refuses (tested below).
    #[cfg(feature = "tls")]
    #[test]
    fn supervisor_tls_comes_from_the_file_then_flags_with_paths_relative_to_where_given() {
        let config = Config::merge(&Cli::default(), FileConfig::default(), None).unwrap();
        assert_eq!(config.supervisor_tls, None);
        assert_eq!(config.web.manager.supervisor_ca, None);

        let f = || {
            file(
                r#"
                listen = "0.0.0.0:4699"
                supervisor_secret = "a-secret-of-20-chars"
                supervisor_tls_cert = "tls/supervisor.pem"
                supervisor_tls_key = "tls/supervisor-key.pem"
                [web]
                supervisors = ["wss://render-1.example.org:4699", "render-2:4699"]
                supervisor_ca = "tls/ca.pem"
                "#,
            )
        };
        let config = Config::merge(&Cli::default(), f(), Some(Path::new("/etc/osw"))).unwrap();
        assert_eq!(
            config.supervisor_tls,
            Some(TlsFiles {
                cert: PathBuf::from("/etc/osw/tls/supervisor.pem"),
                key: PathBuf::from("/etc/osw/tls/supervisor-key.pem"),
            })
        );
        assert_eq!(
            config.web.manager.supervisor_ca,
            Some(PathBuf::from("/etc/osw/tls/ca.pem"))
        );
        let schemes: Vec<_> = config
            .web
            .supervisors
            .iter()
            .map(|s| (s.host.as_str(), s.tls))
            .collect();
        assert_eq!(
            schemes,
            [("render-1.example.org", true), ("render-2", false)]
        );

        // Flags replace the file's files, relative to the current directory; one pair wins
        // whole, the file's key with the flag's certificate included.
        let cli = parse(&[
            "--supervisor-tls-cert",
            "/srv/cert.pem",
            "--supervisor-tls-key",
            "/srv/key.pem",
            "--supervisor-ca",
            "ca.pem",
            "--supervisor",
            "wss://[::1]:4699",
        ]);
        let config = Config::merge(&cli, f(), Some(Path::new("/etc/osw"))).unwrap();
        let tls = config.supervisor_tls.unwrap();
        assert_eq!(
            (tls.cert, tls.key),
            (
                PathBuf::from("/srv/cert.pem"),
                PathBuf::from("/srv/key.pem")
            )
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(config.web.manager.supervisor_ca, Some(cwd.join("ca.pem")));
        assert_eq!(
            config.web.supervisors.last(),
            Some(&SupervisorAddress::tls("::1", 4699))
        );
        // A supervisor with TLS on loopback needs no secret, like one without.
        let local = parse(&[
            "--supervisor-tls-cert",
            "c.pem",
            "--supervisor-tls-key",
            "k.pem",
        ]);
        let config = Config::merge(&local, FileConfig::default(), None).unwrap();
        assert!(config.supervisor_tls.is_some() && config.supervisor_secret.is_none());
    }

    #[test]
    fn bad_supervisor_tls_settings_are_refused_with_a_reason() {
        let refused = |args: &[&str], f: FileConfig| Config::merge(&parse(args), f, None);
        for args in [
            &["--supervisor-tls-cert", "c.pem"][..],
            &["--supervisor-tls-key", "k.pem"][..],
        ] {
            let err = refused(args, FileConfig::default()).unwrap_err();
            assert!(matches!(err, ConfigError::SupervisorTlsPair), "{err}");
            assert!(err.to_string().contains("--supervisor-tls-key"), "{err}");
        }
        let half = file("supervisor_tls_cert = \"c.pem\"");
        let err = refused(&[], half).unwrap_err();
        assert!(matches!(err, ConfigError::SupervisorTlsPair), "{err}");
        // TLS hides the secret on the wire; it does not replace it: an open port needs one.
        let open = refused(
            &[
                "--listen",
                "0.0.0.0:4699",
                "--supervisor-tls-cert",
                "c.pem",
                "--supervisor-tls-key",
                "k.pem",
            ],
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(
            matches!(open, ConfigError::OpenWithoutSecret { .. }),
            "{open}"
        );
        // Only ws:// and wss:// are supervisor schemes, and a URL takes no base ports.
        for bad in [
            "https://render-1:4699",
            "wss://render-1:4699/5700",
            "wss://render-1",
        ] {
            assert!(
                Cli::try_parse_from(["orchestrator", "--supervisor", bad]).is_err(),
                "{bad}"
            );
            let f = file(&format!("[web]\nsupervisors = [\"{bad}\"]"));
            let err = refused(&[], f).unwrap_err();
            assert!(
                err.to_string().starts_with("web.supervisors:"),
                "{bad}: {err}"
            );
        }
        assert!(toml::from_str::<FileConfig>("[supervisor]\ntls_cert = \"c.pem\"").is_err());
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn a_wss_supervisor_without_tls_compiled_is_named_as_its_url() {
        let err = Config::merge(
            &parse(&["--supervisor", "wss://[::1]:4699"]),
            FileConfig::default(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the supervisor wss://[::1]:4699 needs TLS, but this orchestrator was built without \
             the `tls` feature"
        );
    }

    const EXAMPLE: &str = include_str!("../orchestrator.example.toml");

    #[test]
    fn the_example_file_parses() {
        let f: FileConfig = toml::from_str(EXAMPLE).unwrap();
        let config =
            Config::merge(&Cli::default(), f, Some(Path::new("/repo/orchestrator"))).unwrap();
        assert_eq!(config.instances.slots, 3);
        assert_eq!(
            config.instances.command.executable,
            PathBuf::from("/repo/orchestrator/../build/gl-host/osw-gl-host")
        );
        assert_eq!(
            config.instances.command.env["OSW_ICE_ADDRESSES"],
            "127.0.0.1"
        );
        assert_eq!(config.role, Role::Both);
        assert_eq!(config.web.listen, "127.0.0.1:4690".parse().unwrap());
        assert_eq!(
            config.web.database,
            "sqlite:///repo/orchestrator/../data/orchestrator.db"
        );
    }

    #[test]
    fn the_commented_openspace_profile_parses_once_uncommented() {
        // Swap the active [instance] tables for the commented block, as its comment says.
        let root =
            std::env::temp_dir().join(format!("osw-example-openspace-{}", std::process::id()));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/OpenSpace"), "").unwrap();
        std::fs::write(root.join("openspace.cfg"), "").unwrap();
        let block: String = EXAMPLE
            .split("# >>> openspace\n")
            .nth(1)
            .and_then(|rest| rest.split("# <<< openspace").next())
            .unwrap()
            .lines()
            .map(|line| {
                line.strip_prefix("# ")
                    .unwrap_or(line.trim_start_matches('#'))
            })
            .collect::<Vec<_>>()
            .join("\n")
            .replace("/opt/OpenSpace", &root.display().to_string());
        let head = &EXAMPLE[..EXAMPLE.find("\n[instance]").unwrap()];
        let xvfb = &EXAMPLE[EXAMPLE.find("\n[xvfb]").unwrap()..];
        let text = format!("{head}\n{block}\n{xvfb}\n");
        let f: FileConfig = toml::from_str(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
        let config =
            Config::merge(&Cli::default(), f, Some(Path::new("/repo/orchestrator"))).unwrap();
        let command = &config.instances.command;
        assert_eq!(command.executable, root.join("bin/OpenSpace"));
        assert_eq!(command.args.last().unwrap(), "--bypassLauncher");
        assert_eq!(command.working_dir, Some(root.clone()));
        assert!(!command.env.contains_key("DISPLAY"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
