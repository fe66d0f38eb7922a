//! One task per instance, from launch to a free slot: Xvfb, spawn, readiness probe, exit
//! watch, stop. The task is the only writer of its slot's status (besides `STOP`, which marks
//! it `DEINITIALIZING` at once), and it frees the slot before anyone waiting on it is told.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout};
use tracing::{error, info, warn};

use super::logs::{LogFile, pump};
use super::process::{describe_exit, signal_group, spawn_instance};
use super::pulse::PulseServer;
use super::xvfb::Xvfb;
use super::{AudioMode, InstanceSettings, Shared, StopReason, readiness};

/// How long the end of an instance's output may take to reach its log after the process group
/// was killed (a grandchild that left the group could keep the pipe open for good).
const PUMP_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything an instance's task owns.
pub(super) struct InstanceTask {
    /// The supervisor's state, to update this instance's slot.
    pub shared: Arc<Shared>,
    /// The slot.
    pub id: u32,
    /// This instance's generation in the slot.
    pub generation: u64,
    /// Its control secret.
    pub secret: String,
    /// Stop requests (`STOP`, shutdown).
    pub stop: watch::Receiver<Option<StopReason>>,
    /// Tells `START` whether the launch worked; taken when sent.
    pub launched: Option<oneshot::Sender<Result<(), String>>>,
    /// Dropped when the task ends: `STOP` callers wait for that.
    pub _done: watch::Sender<()>,
    /// Dropped when the task ends: shutdown waits until every clone is gone.
    pub _drain: mpsc::Sender<()>,
}

/// How a phase of the instance's life ended.
enum Next {
    /// The process ended by itself, with this status, at this point of its life (for
    /// `lastExit`, made once its output is drained).
    Exited(io::Result<ExitStatus>, &'static str),
    /// It has to be stopped.
    Stop(StopReason),
}

/// Waits until a stop is requested and returns why.
async fn stop_requested(stop: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
    loop {
        if let Some(reason) = stop.borrow_and_update().clone() {
            return reason;
        }
        if stop.changed().await.is_err() {
            return StopReason::Shutdown;
        }
    }
}

impl InstanceTask {
    /// Runs the instance to its end, then frees the slot.
    pub async fn run(mut self) {
        let last_exit = self.lifecycle().await;
        self.shared
            .free(self.id, self.generation, last_exit.clone());
        if let Some(launched) = self.launched.take() {
            let _ = launched.send(Err(last_exit));
        }
        // Dropping `self` now closes `_done` (STOP returns) and `_drain` (shutdown returns).
    }

    async fn lifecycle(&mut self) -> String {
        let settings = Arc::clone(&self.shared.settings);
        let name = format!("instance-{}.log", self.id);
        let log = match LogFile::create(&settings.log_dir, &name, settings.log_max_bytes) {
            Ok(log) => Arc::new(log),
            Err(err) => {
                let msg = format!(
                    "cannot create a log file in {}: {err}",
                    settings.log_dir.display()
                );
                error!("{msg}");
                return msg;
            }
        };
        let mut xvfb = None;
        if self.shared.use_xvfb {
            let starting = Xvfb::start_on_free_display(
                &settings.xvfb,
                self.id,
                settings.slots,
                &settings.log_dir,
            );
            let started = tokio::select! {
                started = starting => started,
                reason = stop_requested(&mut self.stop) => return format!("{reason} before launch"),
            };
            match started {
                Ok(started) => {
                    self.shared.helper_started(self.id, started.pid());
                    xvfb = Some(started);
                }
                Err(err) => {
                    error!(%err, "cannot start Xvfb");
                    return err.to_string();
                }
            }
        }
        let mut pulse = None;
        if settings.audio.mode == AudioMode::Pulse {
            let starting = PulseServer::start(&settings.audio, self.id, &settings.log_dir);
            let started = tokio::select! {
                started = starting => started,
                reason = stop_requested(&mut self.stop) => {
                    if let Some(xvfb) = xvfb.take() {
                        xvfb.stop().await;
                    }
                    return format!("{reason} before launch");
                }
            };
            match started {
                Ok(started) => {
                    self.shared.helper_started(self.id, started.pid());
                    pulse = Some(started);
                }
                Err(err) => {
                    error!(%err, "cannot start PulseAudio");
                    if let Some(xvfb) = xvfb.take() {
                        xvfb.stop().await;
                    }
                    return err.to_string();
                }
            }
        }
        let extra_env = pulse
            .as_ref()
            .map(PulseServer::instance_env)
            .unwrap_or_default();
        let ended = self
            .launch_and_watch(
                &settings,
                &log,
                xvfb.as_ref().map(Xvfb::display),
                &extra_env,
            )
            .await;
        // The instance is gone, however it ended: its helpers go after it.
        if let Some(pulse) = pulse {
            pulse.stop().await;
        }
        if let Some(xvfb) = xvfb {
            xvfb.stop().await;
        }
        ended
    }

    async fn launch_and_watch(
        &mut self,
        settings: &InstanceSettings,
        log: &Arc<LogFile>,
        display: Option<u32>,
        extra_env: &[(String, String)],
    ) -> String {
        let mut child =
            match spawn_instance(settings, self.id, &self.secret, display, extra_env, log) {
                Ok(child) => child,
                Err(err) => {
                    let msg = format!(
                        "cannot run {}: {err}",
                        settings.command.executable.display()
                    );
                    error!("{msg}");
                    log.note(&msg);
                    return msg;
                }
            };
        // Held open, never written, until the instance is gone (see `spawn_instance`).
        let _stdin = child.stdin.take();
        let pumping = match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => Some(pump(Arc::clone(log), stdout, stderr)),
            _ => None,
        };
        let pid = child.id().unwrap_or(0);
        let port = settings.ports.signaling(self.id);
        self.shared.set_pid(self.id, self.generation, pid);
        let x_display = display; // `display` is shadowed inside tracing macros
        info!(pid, port, display = ?x_display, log = %log.path().display(), "instance launched");
        if let Some(launched) = self.launched.take() {
            let _ = launched.send(Ok(()));
        }

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stopped = match self.until_ready(&mut child, settings, addr, log).await {
            Next::Exited(status, when) => Err((status, when)),
            Next::Stop(reason) => Ok(self.terminate(&mut child, pid, reason, settings, log).await),
        };
        // Whatever the leader did, take down anything left in its process group; then the
        // pipes close and the last of the output reaches the log, for the crash report.
        signal_group(pid, libc::SIGKILL);
        if let Some(pumping) = pumping
            && timeout(PUMP_DRAIN_TIMEOUT, pumping).await.is_err()
        {
            warn!("instance output still open after its process group was killed");
        }
        match stopped {
            Ok(how) => how,
            Err((status, when)) => exited(status, when, log),
        }
    }

    /// `INITIALIZING` → `RUNNING` → until it exits or must stop.
    async fn until_ready(
        &mut self,
        child: &mut Child,
        settings: &InstanceSettings,
        addr: SocketAddr,
        log: &LogFile,
    ) -> Next {
        let deadline = Instant::now() + settings.startup_timeout;
        let probe = readiness::wait_ready(addr, &self.secret, settings.probe_interval, deadline);
        tokio::pin!(probe);
        let ready = tokio::select! {
            status = child.wait() => return Next::Exited(status, " before it was ready"),
            reason = stop_requested(&mut self.stop) => return Next::Stop(reason),
            ready = &mut probe => ready,
        };
        match ready {
            Ok(readiness) => {
                if self.shared.mark_running(self.id, self.generation) {
                    info!(
                        width = readiness.width,
                        height = readiness.height,
                        "instance running"
                    );
                }
            }
            Err(last_probe) => {
                error!(after = ?settings.startup_timeout, %last_probe, tail = %log.tail(), "instance did not become ready");
                return Next::Stop(StopReason::StartupTimeout {
                    after: settings.startup_timeout,
                    last_probe,
                    tail: log.tail(),
                });
            }
        }
        let frame_timeout = settings.frame_timeout;
        let hung = async {
            if frame_timeout.is_zero() {
                return std::future::pending().await;
            }
            readiness::watch_frames(addr, &self.secret, frame_timeout).await
        };
        tokio::select! {
            status = child.wait() => Next::Exited(status, ""),
            reason = stop_requested(&mut self.stop) => Next::Stop(reason),
            last_probe = hung => {
                error!(after = ?frame_timeout, %last_probe, "instance delivers no frames; stopping it");
                Next::Stop(StopReason::NoFrames { after: frame_timeout, last_probe })
            }
        }
    }

    /// `DEINITIALIZING`: SIGTERM to the group, SIGKILL after the stop timeout.
    async fn terminate(
        &self,
        child: &mut Child,
        pid: u32,
        reason: StopReason,
        settings: &InstanceSettings,
        log: &LogFile,
    ) -> String {
        self.shared.mark_deinitializing(self.id, self.generation);
        info!(%reason, "stopping instance");
        log.note(&format!("stopping: {reason}"));
        signal_group(pid, libc::SIGTERM);
        let how = match timeout(settings.stop_timeout, child.wait()).await {
            Ok(status) => wait_result(status),
            Err(_) => {
                warn!(after = ?settings.stop_timeout, "instance ignored SIGTERM; sending SIGKILL");
                signal_group(pid, libc::SIGKILL);
                let _ = child.start_kill();
                format!(
                    "did not exit within {:?} of SIGTERM, {}",
                    settings.stop_timeout,
                    wait_result(child.wait().await)
                )
            }
        };
        info!(exit = %how, "instance stopped");
        format!("{reason}; {how}")
    }
}

fn wait_result(status: io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => describe_exit(status),
        Err(err) => format!("could not be waited for: {err}"),
    }
}

/// The `lastExit` of an instance that ended by itself, logged with its output's tail.
fn exited(status: io::Result<ExitStatus>, when: &str, log: &LogFile) -> String {
    let clean = matches!(&status, Ok(status) if status.success());
    let how = wait_result(status);
    let tail = log.tail();
    if clean {
        warn!(exit = %how, %tail, "instance ended by itself{when}");
    } else {
        error!(exit = %how, %tail, "instance crashed{when}");
    }
    if tail.is_empty() {
        format!("{how}{when}")
    } else {
        format!("{how}{when}: {tail}")
    }
}
