//! Test harness: a real supervisor (`orchestrator::run` on 127.0.0.1:0) with real instance
//! processes (the `fake-instance` binary by default), and a WebSocket client speaking raw JSON.
#![allow(dead_code)]

pub mod fuzz;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use orchestrator::instances::{InstanceSettings, Instances, XvfbMode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The test double of an instance, built from this crate.
pub const FAKE: &str = env!("CARGO_BIN_EXE_fake-instance");
/// The supervisor binary.
pub const ORCHESTRATOR: &str = env!("CARGO_BIN_EXE_orchestrator");
/// Longest any single reply may take in these tests.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn seed() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id().wrapping_mul(7919)
        ^ nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(104_729)
}

/// `n` consecutive loopback ports that are free now, in 20000-31999 (below Linux's ephemeral
/// range, so outgoing connections do not take them meanwhile). Each test gets its own range.
pub fn free_port_base(n: u16) -> u16 {
    let mut state = seed();
    for _ in 0..500 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let base = 20_000 + (state >> 8) as u16 % (12_000 - n);
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range of {n} ports");
}

/// A fresh folder under the system temp dir, removed on drop unless the test panicked.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "orchestrator-{name}-{}-{}",
            std::process::id(),
            seed()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Settings for `slots` fake instances: a private port range, logs in `dir`, no Xvfb, short
/// timeouts, ICE pinned to loopback.
pub fn fake_settings(slots: u32, dir: &Path) -> InstanceSettings {
    let mut s = InstanceSettings {
        slots,
        ..InstanceSettings::default()
    };
    s.command.executable = PathBuf::from(FAKE);
    s.command
        .env
        .insert("OSW_ICE_ADDRESSES".into(), "127.0.0.1".into());
    s.ports.signaling_base = free_port_base(slots as u16);
    s.log_dir = dir.join("logs");
    s.startup_timeout = Duration::from_secs(10);
    s.probe_interval = Duration::from_millis(50);
    s.stop_timeout = Duration::from_secs(5);
    s.resize_timeout = Duration::from_secs(3);
    s.xvfb.mode = XvfbMode::Never;
    s
}

/// A supervisor served by `orchestrator::run` on an ephemeral port.
pub struct TestSupervisor {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A handle on its instances (pids, control endpoints, log paths).
    pub instances: Instances,
    /// Resolves `run`'s shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The `run` task.
    task: Option<JoinHandle<()>>,
    /// Logs and other files; removed at the end.
    pub dir: TempDir,
}

impl TestSupervisor {
    /// Fake instances in `slots` slots; `tweak` adjusts the settings.
    pub async fn fake(slots: u32, tweak: impl FnOnce(&mut InstanceSettings)) -> TestSupervisor {
        let dir = TempDir::new("test");
        let mut settings = fake_settings(slots, dir.path());
        tweak(&mut settings);
        TestSupervisor::start(settings, dir).await
    }

    pub async fn start(settings: InstanceSettings, dir: TempDir) -> TestSupervisor {
        TestSupervisor::start_with(settings, dir, orchestrator::ServerSettings::default()).await
    }

    /// [`TestSupervisor::start`] with other server settings (limits, secret).
    pub async fn start_with(
        settings: InstanceSettings,
        dir: TempDir,
        server: orchestrator::ServerSettings,
    ) -> TestSupervisor {
        init_logging();
        let instances = Instances::new(settings).expect("valid settings");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(orchestrator::run_with(
            listener,
            instances.clone(),
            server,
            async move {
                let _ = stopped.await;
            },
        ));
        TestSupervisor {
            addr,
            instances,
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Graceful shutdown, as on Ctrl-C; returns once `run` has returned.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            timeout(Duration::from_secs(30), task)
                .await
                .expect("run returns after shutdown")
                .unwrap();
        }
    }

    pub fn log(&self, id: u32) -> String {
        std::fs::read_to_string(self.instances.log_path(id)).unwrap_or_default()
    }
}

impl Drop for TestSupervisor {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort(); // instance processes die with their handles (kill_on_drop)
        }
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A supervisor-protocol client that speaks raw JSON text.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .expect("connect to the supervisor");
        Client { ws }
    }

    /// Sends one text frame and returns the reply, parsed.
    pub async fn send_text(&mut self, text: &str) -> Value {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
        self.reply().await
    }

    /// The next reply.
    pub async fn reply(&mut self) -> Value {
        loop {
            let message = timeout(REPLY_TIMEOUT, self.ws.next())
                .await
                .expect("reply within the timeout")
                .expect("connection open")
                .expect("websocket ok");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("JSON reply");
                }
                Message::Close(frame) => panic!("connection closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Sends `request` and returns the reply's exact text.
    pub async fn raw(&mut self, request: &str) -> String {
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .expect("send");
        loop {
            let message = timeout(REPLY_TIMEOUT, self.ws.next())
                .await
                .expect("reply")
                .expect("open")
                .expect("ok");
            if let Message::Text(text) = message {
                return text.as_str().to_string();
            }
        }
    }

    pub async fn request(&mut self, request: Value) -> Value {
        self.send_text(&request.to_string()).await
    }

    pub async fn start(&mut self) -> Value {
        self.request(json!({"command": "START"})).await
    }

    pub async fn stop(&mut self, id: i64) -> Value {
        self.request(json!({"command": "STOP", "id": id})).await
    }

    pub async fn status(&mut self, id: i64) -> Value {
        self.request(json!({"command": "STATUS", "id": id})).await
    }

    pub async fn resolution(&mut self, id: i64, width: i64, height: i64) -> Value {
        self.request(json!({"command": "RESOLUTION", "id": id, "width": width, "height": height}))
            .await
    }

    pub async fn server_status(&mut self) -> Value {
        self.request(json!({"command": "SERVER_STATUS"})).await
    }

    /// Polls STATUS until it is `want`; panics after `within` with the last reply.
    pub async fn wait_status(&mut self, id: i64, want: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let reply = self.status(id).await;
            if reply["status"] == want {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "instance {id} not {want} within {within:?}: {reply}"
            );
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesized command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Waits until `pid` is gone.
pub async fn wait_gone(pid: u32, within: Duration) {
    let deadline = Instant::now() + within;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} still alive after {within:?}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `signal` to `pid` from outside the supervisor.
pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) takes plain integers; `pid` is a child of this test process.
    let rc = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// A free X display range of `n` displays, or None when Xvfb is not installed.
pub fn xvfb_displays(n: u32) -> Option<u32> {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("Xvfb").is_file()));
    if !found {
        eprintln!(
            "\n!!!!! SKIPPED: Xvfb is not installed (apt install xvfb); per-instance Xvfb untested !!!!!\n"
        );
        return None;
    }
    // Spread processes apart, and tests of one process too (the counter), so parallel tests do
    // not race for the same display.
    let start =
        200 + (std::process::id() % 300) * 11 + COUNTER.fetch_add(1, Ordering::Relaxed) * 16;
    (start..start + 3000).step_by(n as usize).find(|base| {
        (*base..base + n).all(|d| {
            !Path::new(&format!("/tmp/.X11-unix/X{d}")).exists()
                && !Path::new(&format!("/tmp/.X{d}-lock")).exists()
        })
    })
}
