//! The web role: the single public origin a browser talks to.
//!
//! It serves `web/` (the home page at `/`, the stream page at `/stream/<uuid>`), a small JSON
//! API, and each viewer's signaling WebSocket, proxied to the instance's rust-core endpoint,
//! so a browser needs one host and port and never learns a server address, port or process
//! id. It keeps sessions, share links, instances and the server registry in a database, picks
//! a server by `SERVER_STATUS` for each launch, and reaches every supervisor, the one in its
//! own process included, through the supervisor protocol ([`client::SupervisorClient`]).
//!
//! # Layout
//!
//! - [`serve`]: the accept loop: HTTP/1.1 with a deadline for every request head, the
//!   client's address on every request ([`peer`]).
//! - [`http`]: routes, pages, headers; [`files`]: which files of `web/` are served.
//! - [`api`]: the JSON API, tokens and who may do what ([`api::ApiError`]).
//! - [`limits`], [`guard`]: per-address rate limits; wrong tokens counted, logged, refused.
//! - [`sessions`]: session expiry and the sweep of expired ones.
//! - [`relay`]: what the proxies to an instance share: reaching its WebSocket, relaying.
//! - [`proxy`]: the signaling proxy (checks every browser message; spectators are view-only).
//! - [`openspace_api`]: the owner's proxy to the instance's OpenSpace JSON API.
//! - [`push`]: instance changes pushed to pages over WebSocket.
//! - [`manager`]: the live instances: launch, watch (`STATUS`), stop, resize, idle timeout,
//!   adoption after a restart.
//! - [`client`]: the supervisor protocol client, an implementation of
//!   [`crate::supervisor::Supervisor`].
//! - [`db`]: the `sqlx` database (SQLite by default, PostgreSQL by URL) and its migrations.
//! - [`token`]: session and share tokens (stored hashed), UUIDs.
//! - [`ws`]: WebSocket upgrades on hyper.
//! - [`tls`]: the optional TLS listener (rustls).

pub mod api;
pub mod client;
pub mod db;
pub mod files;
pub mod guard;
pub mod http;
pub mod limits;
pub mod manager;
pub mod openspace_api;
pub mod peer;
pub mod proxy;
pub mod push;
pub mod relay;
pub mod serve;
pub mod sessions;
pub mod tls;
pub mod token;
pub mod turn;
pub mod ws;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tracing::{info, warn};

pub use limits::OriginLimits;
pub use manager::ManagerSettings;
pub use sessions::SessionSettings;
pub use turn::TurnSettings;

use db::{Db, DbError, ServerRow};
use files::WebRoot;
use guard::TokenGuard;
use limits::RateLimiter;
use manager::Manager;

/// Default address of the web origin (the seeds' Web GUI port, loopback only).
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:4690";
/// Default database: a SQLite file under the working directory.
pub const DEFAULT_DATABASE: &str = "sqlite://data/orchestrator.db";
/// How long open WebSockets get to close at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS certificate chain and key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A supervisor the web role should know, besides the one in its own process: `HOST:PORT`
/// (`[ADDRESS]:PORT` for IPv6), reached over plain `ws://`, or `wss://HOST:PORT` for a
/// supervisor whose port speaks TLS (`ws://HOST:PORT` is the plain one spelt out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorAddress {
    /// Host name or address; for `wss://`, what its certificate must name.
    pub host: String,
    /// Supervisor protocol port.
    pub port: u16,
    /// Whether it is reached over TLS (`wss://`).
    pub tls: bool,
    /// The `/SIGNALING-BASE[/API-WEBSOCKET-BASE]` an address of the old syntax had after its
    /// port, without the first `/`: ignored, and warned about at start.
    pub ignored_ports: Option<String>,
}

impl SupervisorAddress {
    /// The plain supervisor at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> SupervisorAddress {
        SupervisorAddress {
            host: host.into(),
            port,
            tls: false,
            ignored_ports: None,
        }
    }

    /// The TLS supervisor at `wss://host:port`.
    pub fn tls(host: impl Into<String>, port: u16) -> SupervisorAddress {
        SupervisorAddress {
            tls: true,
            ..SupervisorAddress::new(host, port)
        }
    }
}

impl std::str::FromStr for SupervisorAddress {
    type Err = String;

    /// `host:port`, `ws://host:port` or `wss://host:port` (a URL's `/` after the port is
    /// allowed). A scheme on the address, rather than a flag beside it, keeps one supervisor
    /// one word wherever addresses are listed (`--supervisor`, `;` in the environment, the
    /// file's list) and reads as the URL the web role opens.
    ///
    /// The old `host:port/signaling-base-port[/api-websocket-base-port]` is accepted too,
    /// its ports ignored: they told the web role where a server's instances listened, and
    /// the web role now reaches them only through their supervisor's relay, which knows its
    /// own. Accepted rather than refused so that a configuration written for the old syntax
    /// keeps starting after an upgrade, with a warning, for something that changes nothing
    /// about where the web role connects; anything else after the port is still refused.
    /// That syntax never had a scheme, so a URL with ports after it is refused.
    fn from_str(text: &str) -> Result<SupervisorAddress, String> {
        let expected = || format!("expected HOST:PORT or wss://HOST:PORT, got {text:?}");
        let (tls, rest) = match text.split_once("://") {
            Some(("wss", rest)) => (true, Some(rest)),
            Some(("ws", rest)) => (false, Some(rest)),
            Some(_) => return Err(expected()),
            None => (false, None),
        };
        let (address, ignored_ports) = match rest {
            Some(rest) => {
                let address = rest.strip_suffix('/').unwrap_or(rest);
                if address.contains('/') {
                    return Err(expected());
                }
                (address, None)
            }
            None => match text.split_once('/') {
                Some((address, ports)) => {
                    let parts: Vec<&str> = ports.split('/').collect();
                    if parts.len() > 2 || parts.iter().any(|port| port.parse::<u16>().is_err()) {
                        return Err(format!(
                            "expected HOST:PORT, got {text:?} (the signaling and API WebSocket \
                             base ports once allowed after it are no longer needed)"
                        ));
                    }
                    (address, Some(ports.to_string()))
                }
                None => (text, None),
            },
        };
        let (host, port) = address.rsplit_once(':').ok_or_else(expected)?;
        let port = port.parse().map_err(|_| format!("bad port in {text:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(expected());
        }
        Ok(SupervisorAddress {
            host: host.to_string(),
            port,
            tls,
            ignored_ports,
        })
    }
}

/// The descriptive columns of the servers this web role registers (seed 001's `servers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `region`.
    pub region: String,
    /// `ram`.
    pub ram: String,
    /// `graphics_card`.
    pub graphics_card: String,
    /// `storage`.
    pub storage: String,
}

impl ServerInfo {
    /// This machine's memory, GPU and disk, as the seeds wrote them (`64GB`).
    pub fn detect() -> ServerInfo {
        let ram = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{}GB", (kib + (1 << 19)) >> 20))
            })
            .unwrap_or_else(|| "unknown".into());
        let graphics_card = std::fs::read_dir("/proc/driver/nvidia/gpus")
            .ok()
            .and_then(|mut gpus| gpus.next())
            .and_then(|gpu| gpu.ok())
            .and_then(|gpu| std::fs::read_to_string(gpu.path().join("information")).ok())
            .and_then(|info| {
                let model = info.lines().find(|l| l.starts_with("Model:"))?;
                Some(model.trim_start_matches("Model:").trim().to_string())
            })
            .unwrap_or_else(|| "none (software rendering)".into());
        ServerInfo {
            region: "local".into(),
            ram,
            graphics_card,
            storage: disk_size(".").unwrap_or_else(|| "unknown".into()),
        }
    }
}

fn disk_size(path: &str) -> Option<String> {
    let c_path = std::ffi::CString::new(path).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs(3) writes into `stat` and reads the NUL-terminated `c_path`; both live
    // across the call. The struct is read only when the call succeeded.
    let stat = unsafe {
        if libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    let bytes = u128::from(stat.f_blocks) * u128::from(stat.f_frsize);
    Some(format!("{}GB", bytes / 1_000_000_000))
}

/// Everything the web role needs; built by [`crate::config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// Where the origin listens (4690).
    pub listen: SocketAddr,
    /// The `web/` folder.
    pub root: PathBuf,
    /// Database URL: `sqlite://PATH` (created if missing), a bare path, or `postgres://…`.
    pub database: String,
    /// HTTPS with these files; plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// Instance timeouts and limits.
    pub manager: ManagerSettings,
    /// Supervisors to register at start, besides the local one.
    pub supervisors: Vec<SupervisorAddress>,
    /// The registered servers' descriptive columns.
    pub server_info: ServerInfo,
    /// Per-client limits and HTTP timeouts.
    pub limits: OriginLimits,
    /// How long sessions live.
    pub sessions: SessionSettings,
    /// The STUN/TURN servers pages are given, with short-lived TURN credentials.
    pub turn: TurnSettings,
}

/// The repository's `web/` folder of the tree this binary was built from.
pub fn default_web_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(&manifest).join("web")
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 4690)),
            root: default_web_root(),
            database: DEFAULT_DATABASE.to_string(),
            tls: None,
            manager: ManagerSettings::default(),
            supervisors: Vec::new(),
            server_info: ServerInfo::detect(),
            limits: OriginLimits::default(),
            sessions: SessionSettings::default(),
            turn: TurnSettings::default(),
        }
    }
}

/// The supervisor in the same process (plain `orchestrator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSupervisor {
    /// Where it listens (an unspecified address is reached on loopback); its `servers` row.
    pub listen: SocketAddr,
    /// Its slots.
    pub slots: u32,
    /// When `listen` speaks TLS: the plain loopback listener it keeps for this process, which
    /// the web role uses instead. The web role never needs TLS to reach itself, nor a
    /// certificate naming loopback.
    pub loopback: Option<SocketAddr>,
}

/// Why the web role could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// TLS set-up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The `web/` folder is missing.
    #[error("web root {0} has no index.html")]
    Root(PathBuf),
    /// The `web/` folder cannot be resolved.
    #[error("web root {0}: {1}")]
    RootUnreadable(PathBuf, std::io::Error),
    /// Serving failed.
    #[error("web origin: {0}")]
    Serve(std::io::Error),
}

/// What every handler shares.
pub struct WebState {
    /// The instances, and through it the database.
    pub manager: Arc<Manager>,
    /// The `web/` folder.
    pub root: WebRoot,
    /// How long sessions live.
    pub sessions: SessionSettings,
    /// New sessions per client address.
    pub new_sessions: RateLimiter,
    /// Wrong tokens per client address.
    pub tokens: TokenGuard,
    /// Becomes true when the web role stops: WebSocket tasks close their sockets.
    pub shutdown: watch::Receiver<bool>,
    /// How often browsers' WebSockets are pinged (see [`ws::Liveness`]).
    pub websocket_ping_every: Duration,
    /// The ICE servers handed to pages (`GET /api/instances/<uuid>/ice-servers`).
    pub turn: TurnSettings,
    /// Never used; `run` waits until every clone of the state (and so this sender) is gone,
    /// which is when the last WebSocket task has ended.
    _drain: mpsc::Sender<()>,
}

/// Resolves once `shutdown` (a [`WebState::shutdown`] clone) turns true.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any other await.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// The server row of a supervisor address.
fn server_row(address: &SupervisorAddress, slots: u32, info: &ServerInfo) -> ServerRow {
    ServerRow {
        server_id: token::new_uuid()
            .unwrap_or_else(|_| format!("{}:{}", address.host, address.port)),
        region: info.region.clone(),
        ip_address: address.host.clone(),
        port: address.port,
        tls: address.tls,
        status: "active".into(),
        available_instances: slots,
        num_instances: slots,
        ram: info.ram.clone(),
        graphics_card: info.graphics_card.clone(),
        storage: info.storage.clone(),
    }
}

/// Serves the web origin on `listener` until `shutdown` resolves.
///
/// `local` is the supervisor in this process, if any: it is registered as a server, and at
/// shutdown its instances are marked ended (that supervisor stops them next). Instances on
/// other servers stay live in the database and are adopted at the next start.
pub async fn run(
    listener: TcpListener,
    settings: WebSettings,
    local: Option<LocalSupervisor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    if !settings.root.join("index.html").is_file() {
        return Err(WebError::Root(settings.root.clone()));
    }
    let root = WebRoot::open(&settings.root)
        .map_err(|err| WebError::RootUnreadable(settings.root.clone(), err))?;
    let tls = settings.tls.as_ref().map(tls::acceptor).transpose()?;
    let db = Db::open(&settings.database).await?;
    let manager = Manager::new(db.clone(), settings.manager.clone());
    if settings.manager.supervisor_ca.is_some() {
        // A bundle that cannot be read stops the start, not every launch after it.
        manager.supervisor_access().trust()?;
    }
    if let Some(local) = local {
        let host = match local.listen.ip() {
            ip if ip.is_unspecified() => IpAddr::from(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        // The row tells the truth about the port (other web roles may read it), though this
        // web role itself goes through the plain loopback listener when there is one.
        let address = SupervisorAddress {
            tls: local.loopback.is_some(),
            ..SupervisorAddress::new(host.to_string(), local.listen.port())
        };
        manager
            .register_server(
                server_row(&address, local.slots, &settings.server_info),
                true,
                local.loopback,
            )
            .await?;
    }
    for address in &settings.supervisors {
        if let Some(ports) = &address.ignored_ports {
            warn!(
                host = %address.host,
                port = address.port,
                ignored = %format!("/{ports}"),
                "a supervisor address no longer takes base ports after HOST:PORT (the web role \
                 reaches instances through their supervisor, which knows its own); they are \
                 ignored: remove them"
            );
        }
        // The slot count is learnt from its first SERVER_STATUS.
        manager
            .register_server(server_row(address, 0, &settings.server_info), false, None)
            .await?;
    }
    manager.load_servers().await?;
    manager.adopt().await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    let sweeper = tokio::spawn(sessions::sweep(
        db.clone(),
        settings.sessions.clone(),
        stop_rx.clone(),
    ));
    let state = Arc::new(WebState {
        manager: Arc::clone(&manager),
        root,
        sessions: settings.sessions.clone(),
        new_sessions: RateLimiter::new(settings.limits.new_sessions_per_minute),
        tokens: TokenGuard::new(settings.limits.token_failures_per_minute),
        shutdown: stop_rx.clone(),
        websocket_ping_every: settings.limits.websocket_ping_every,
        turn: settings.turn.clone(),
        _drain: drain_tx,
    });
    if !settings.turn.urls().is_empty() {
        // The URLs and lifetime only: the secret is never logged.
        info!(
            urls = ?settings.turn.urls(),
            ttl_s = settings.turn.ttl().as_secs(),
            "pages get these STUN/TURN servers"
        );
    }
    let app = http::router(state);
    let address = listener.local_addr().map_err(WebError::Serve)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%address, url = %format!("{scheme}://{address}/"), "web origin listening");

    tokio::spawn(async move {
        shutdown.await;
        info!("web origin shutting down");
        let _ = stop_tx.send(true);
    });
    let header_timeout = settings.limits.header_timeout;
    match tls {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor);
            serve::serve(listener, true, app, header_timeout, stop_rx).await;
        }
        None => serve::serve(listener, false, app, header_timeout, stop_rx).await,
    }
    if timeout(DRAIN_TIMEOUT, drain_rx.recv()).await.is_err() {
        warn!("some WebSockets did not close in time");
    }
    let _ = sweeper.await;
    manager.shutdown(local.is_some()).await;
    db.close().await;
    info!("web origin stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_addresses_parse() {
        let a: SupervisorAddress = "render-1:4699".parse().unwrap();
        assert_eq!(a, SupervisorAddress::new("render-1", 4699));
        let b: SupervisorAddress = "[::1]:4699".parse().unwrap();
        assert_eq!(b, SupervisorAddress::new("::1", 4699));
        assert!("nohost".parse::<SupervisorAddress>().is_err());
        assert!(":4699".parse::<SupervisorAddress>().is_err());
        assert!("h:x".parse::<SupervisorAddress>().is_err());
    }

    #[test]
    fn supervisor_addresses_with_a_scheme_choose_tls() {
        let a: SupervisorAddress = "wss://render-1.example.org:4699".parse().unwrap();
        assert_eq!(a, SupervisorAddress::tls("render-1.example.org", 4699));
        let b: SupervisorAddress = "wss://[::1]:4699/".parse().unwrap();
        assert_eq!(b, SupervisorAddress::tls("::1", 4699));
        let c: SupervisorAddress = "ws://10.0.1.11:4699".parse().unwrap();
        assert_eq!(c, SupervisorAddress::new("10.0.1.11", 4699));
        for bad in [
            "https://render-1:4699",
            "wss://render-1",
            "wss://:4699",
            "wss://render-1:4699/5700",
            "wss://render-1:4699/x",
            "WSS://render-1:4699",
        ] {
            let err = bad.parse::<SupervisorAddress>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn old_addresses_with_base_ports_are_taken_with_the_ports_ignored() {
        let b: SupervisorAddress = "[::1]:4699/5700".parse().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 4699));
        assert_eq!(b.ignored_ports.as_deref(), Some("5700"));
        let c: SupervisorAddress = "render-2:4699/5700/5682".parse().unwrap();
        assert_eq!((c.host.as_str(), c.port), ("render-2", 4699));
        assert_eq!(c.ignored_ports.as_deref(), Some("5700/5682"));
        // Only the old syntax: anything else after the port is refused, saying why.
        for bad in ["h:4699/5700/x", "h:4699/5700/5682/1", "h:4699/", "h:4699/x"] {
            let err = bad.parse::<SupervisorAddress>().unwrap_err();
            assert!(err.contains("no longer needed"), "{bad}: {err}");
        }
    }

    #[test]
    fn this_machine_is_described_like_the_seed_rows() {
        let info = ServerInfo::detect();
        assert!(info.ram.ends_with("GB"), "{info:?}");
        assert!(info.storage.ends_with("GB"), "{info:?}");
    }
}
