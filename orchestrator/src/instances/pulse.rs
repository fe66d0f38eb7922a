//! A private PulseAudio server per instance (`--audio pulse`), the way `xvfb.rs` gives each
//! its own X server.
//!
//! `pulseaudio` runs as a plain child of the supervisor, never a system or user service: no
//! autospawn, no D-Bus, exit-idle off, its runtime and state in a folder of its own
//! (`<temp>/osw-pulse-<supervisor pid>-<id>/`, mode 0700), a native-protocol socket there
//! (anonymous: only processes that can open the folder can reach it) and one sink,
//! `module-null-sink` `osw` (48 kHz stereo), the default since it is the only one. The
//! instance gets `PULSE_SERVER=unix:<that socket>`, so what it plays (OpenSpace's `audio`
//! module, through libpulse) goes to that sink, and `OSW_AUDIO=pulse` with
//! `OSW_AUDIO_DEVICE=osw.monitor`, so rust-core captures the sink's monitor. The server is
//! ready when its socket accepts a connection; it is stopped after its instance, however the
//! instance ended, and its folder removed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, info, warn};

use super::AudioSettings;
use super::logs::LogFile;
use super::process::{describe_exit, signal_group};

/// The null sink every instance's sound goes to; rust-core records `<SINK>.monitor`.
pub const SINK: &str = "osw";
/// How often the socket is tried while the server starts.
const POLL: Duration = Duration::from_millis(50);
/// How long the server gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Why a PulseAudio server could not be started. `Display` goes into the instance's
/// `lastExit`.
#[derive(Debug, thiserror::Error)]
pub(super) enum PulseError {
    /// The private folder could not be made.
    #[error("cannot create the PulseAudio folder {dir}: {err}")]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The log file could not be created.
    #[error("cannot create the PulseAudio log file: {0}")]
    Log(std::io::Error),
    /// The executable could not be run.
    #[error("cannot run {exe}: {err}")]
    Spawn {
        /// The pulseaudio executable.
        exe: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The server exited before its socket answered.
    #[error("pulseaudio {how}: {tail}")]
    Exited {
        /// Its exit.
        how: String,
        /// The tail of its log.
        tail: String,
    },
    /// The socket did not answer in time.
    #[error("pulseaudio did not come up within {after:?}: {tail}")]
    Timeout {
        /// The startup timeout.
        after: Duration,
        /// The tail of its log.
        tail: String,
    },
}

/// A running PulseAudio server.
#[derive(Debug)]
pub(super) struct PulseServer {
    /// The process (killed if dropped).
    child: Child,
    /// Its process id (its own process group).
    pid: u32,
    /// Its private folder, removed at stop.
    dir: PathBuf,
}

/// Removes a server's private folder when dropped, unless [`FolderGuard::disarm`]ed: a start
/// that fails, or is dropped (a stop while the server starts), leaves no folder behind.
struct FolderGuard(Option<PathBuf>);

impl FolderGuard {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("armed until disarmed")
    }

    /// The folder, which its [`PulseServer`] removes from now on.
    fn disarm(mut self) -> PathBuf {
        self.0.take().expect("armed until disarmed")
    }
}

impl Drop for FolderGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The private folder of instance `id`'s server.
fn folder(id: u32) -> PathBuf {
    std::env::temp_dir().join(format!("osw-pulse-{}-{id}", std::process::id()))
}

fn socket_in(dir: &Path) -> PathBuf {
    dir.join("native")
}

/// The server's arguments: no configuration file of the machine's (`-n`), only the modules
/// named here, and nothing that would outlive or escape the supervisor.
pub(super) fn arguments(socket: &Path) -> Vec<String> {
    vec![
        "--daemonize=no".into(),
        "--system=false".into(),
        "--use-pid-file=no".into(),
        // Never exit by itself: the supervisor ends it after the instance.
        "--exit-idle-time=-1".into(),
        "--disallow-exit".into(),
        "--disallow-module-loading".into(),
        "--realtime=no".into(),
        "--high-priority=no".into(),
        "--log-target=stderr".into(),
        "-n".into(),
        format!(
            "--load=module-native-protocol-unix socket={} auth-anonymous=1",
            socket.display()
        ),
        format!(
            "--load=module-null-sink sink_name={SINK} rate=48000 channels=2 \
             sink_properties=device.description=OpenSpace"
        ),
    ]
}

async fn answers(socket: &Path) -> bool {
    matches!(
        timeout(Duration::from_secs(1), UnixStream::connect(socket)).await,
        Ok(Ok(_))
    )
}

impl PulseServer {
    /// Starts instance `id`'s server, logging to `log_dir/pulse-<id>.log`, and waits for its
    /// socket.
    pub async fn start(
        settings: &AudioSettings,
        id: u32,
        log_dir: &Path,
    ) -> Result<PulseServer, PulseError> {
        let dir = folder(id);
        // Left by a supervisor of the same pid that was killed: nothing of it runs any more
        // (its ledger's groups were stopped at our start).
        let _ = std::fs::remove_dir_all(&dir);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|err| PulseError::Folder {
                    dir: dir.clone(),
                    err,
                })?;
        }
        // Made before the child, so dropped after it (which kills it) on every early return.
        let folder = FolderGuard(Some(dir));
        let dir = folder.path();
        let socket = socket_in(dir);
        let log = LogFile::create(log_dir, &format!("pulse-{id}.log"), 1 << 20)
            .map_err(PulseError::Log)?;
        let (stdout, stderr) = log.stdio().map_err(PulseError::Log)?;
        let mut command = Command::new(&settings.executable);
        command
            .args(arguments(&socket))
            // Its cookie, state and runtime files in its own folder, none in our home.
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_RUNTIME_DIR", dir)
            .env("PULSE_RUNTIME_PATH", dir.join("runtime"))
            .env("PULSE_STATE_PATH", dir.join("state"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DISPLAY")
            .env_remove("PULSE_SERVER")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .process_group(0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                return Err(PulseError::Spawn {
                    exe: settings.executable.clone(),
                    err,
                });
            }
        };
        let pid = child.id().unwrap_or(0);
        let deadline = Instant::now() + settings.startup_timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(PulseError::Exited {
                    how: describe_exit(status),
                    tail: log.tail(),
                });
            }
            if answers(&socket).await && matches!(child.try_wait(), Ok(None)) {
                info!(pid, socket = %socket.display(), "PulseAudio ready");
                let dir = folder.disarm();
                return Ok(PulseServer { child, pid, dir });
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(PulseError::Timeout {
                    after: settings.startup_timeout,
                    tail: log.tail(),
                });
            }
            sleep(POLL).await;
        }
    }

    /// Its process id, the leader of its own process group.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the instance gets: the server, and rust-core's capture of the sink's monitor.
    pub fn instance_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "PULSE_SERVER".to_string(),
                format!("unix:{}", socket_in(&self.dir).display()),
            ),
            ("OSW_AUDIO".to_string(), "pulse".to_string()),
            ("OSW_AUDIO_DEVICE".to_string(), format!("{SINK}.monitor")),
        ]
    }

    /// SIGTERM, then SIGKILL if it lingers; waits until it is gone and removes its folder.
    pub async fn stop(mut self) {
        signal_group(self.pid, libc::SIGTERM);
        match timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => debug!(pid = self.pid, ?status, "PulseAudio stopped"),
            Err(_) => {
                warn!(pid = self.pid, "PulseAudio ignored SIGTERM; killing it");
                signal_group(self.pid, libc::SIGKILL);
                let _ = self.child.kill().await;
            }
        }
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            debug!(dir = %self.dir.display(), %err, "PulseAudio folder not removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_loads_only_its_socket_and_the_null_sink_and_never_exits_alone() {
        let args = arguments(Path::new("/tmp/osw-pulse-1-0/native"));
        assert!(args.contains(&"-n".to_string()));
        assert!(args.contains(&"--exit-idle-time=-1".to_string()));
        assert!(args.contains(&"--daemonize=no".to_string()));
        let loads: Vec<&String> = args.iter().filter(|a| a.starts_with("--load=")).collect();
        assert_eq!(loads.len(), 2, "{loads:?}");
        assert!(loads[0].contains("socket=/tmp/osw-pulse-1-0/native"));
        assert!(loads[1].contains("module-null-sink sink_name=osw"));
    }

    #[tokio::test]
    async fn a_start_that_fails_or_is_dropped_leaves_no_folder() {
        let dir = std::env::temp_dir().join(format!("osw-pulse-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Stands in for a pulseaudio that never opens its socket.
        let never_ready = dir.join("never-ready");
        std::fs::write(&never_ready, "#!/bin/sh\nexec sleep 30\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&never_ready, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut settings = AudioSettings {
            mode: crate::instances::AudioMode::Pulse,
            executable: dir.join("missing"),
            startup_timeout: Duration::from_secs(10),
        };
        // Ids no other test's instances use.
        let err = PulseServer::start(&settings, 9001, &dir).await.unwrap_err();
        assert!(matches!(err, PulseError::Spawn { .. }), "{err}");
        assert!(!folder(9001).exists());
        // A stop while the server starts drops the start.
        settings.executable = never_ready;
        let start = PulseServer::start(&settings, 9002, &dir);
        assert!(timeout(Duration::from_millis(300), start).await.is_err());
        assert!(!folder(9002).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_instance_has_its_own_folder() {
        assert_ne!(folder(0), folder(1));
        // A unix socket path must fit in sun_path (108 bytes).
        assert!(socket_in(&folder(999)).as_os_str().len() < 100);
    }
}
