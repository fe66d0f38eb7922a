//! A private X server per instance, for rendering servers without a display.
//!
//! `Xvfb :<display> -screen 0 <screen> -nolisten tcp`. It is ready when its socket
//! `/tmp/.X11-unix/X<display>` accepts a connection; it is stopped after its instance.
//!
//! Instance `id` tries display `display_base + id` first, then the same place in the next
//! ranges (`+ slots`, `+ 2 × slots`, … [`DISPLAY_TRIES`] in all). A display is skipped when
//! its socket answers or its lock file `/tmp/.X<n>-lock` exists, and also when Xvfb exits at
//! once because another X server took it between our look and its start. So an instance never
//! lands on someone else's X server, and a second orchestrator on the same machine with the
//! same `display_base` works too: its instances move up a range.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, info, warn};

use super::XvfbSettings;
use super::logs::LogFile;
use super::process::{describe_exit, signal_group};

/// Displays tried per instance before giving up.
pub(super) const DISPLAY_TRIES: u32 = 16;
/// How often the socket is tried while Xvfb starts.
const POLL: Duration = Duration::from_millis(50);
/// How long Xvfb gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Why an Xvfb could not be started. `Display` goes into the instance's `lastExit`.
#[derive(Debug, thiserror::Error)]
pub(super) enum XvfbError {
    /// Every display tried is taken.
    #[error(
        "X displays :{first} and the {tries} after it, {stride} apart, are all in use (set \
         xvfb.display_base to a free range)"
    )]
    NoneFree {
        /// The first display tried.
        first: u32,
        /// Displays tried after it.
        tries: u32,
        /// The step between two tries (the number of slots).
        stride: u32,
    },
    /// The log file could not be created.
    #[error("cannot create the Xvfb log file: {0}")]
    Log(std::io::Error),
    /// The executable could not be run.
    #[error("cannot run {exe}: {err}")]
    Spawn {
        /// The Xvfb executable.
        exe: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// Xvfb exited before its socket answered.
    #[error("Xvfb :{display} {how}: {tail}")]
    Exited {
        /// The display.
        display: u32,
        /// Its exit.
        how: String,
        /// The tail of its log.
        tail: String,
    },
    /// The socket did not answer in time.
    #[error("Xvfb :{display} did not come up within {after:?}")]
    Timeout {
        /// The display.
        display: u32,
        /// The startup timeout.
        after: Duration,
    },
}

/// A running Xvfb.
#[derive(Debug)]
pub(super) struct Xvfb {
    /// The process (killed if dropped).
    child: Child,
    /// Its process id (its own process group).
    pid: u32,
    /// The display number it serves.
    display: u32,
}

fn socket_path(display: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{display}"))
}

async fn answers(socket: &Path) -> bool {
    matches!(
        timeout(Duration::from_secs(1), UnixStream::connect(socket)).await,
        Ok(Ok(_))
    )
}

/// Whether display `n` looks taken: its socket answers, or an X server holds its lock file
/// (a stale lock too: skipping a free display costs nothing, taking a busy one breaks both).
async fn taken(display: u32) -> bool {
    Path::new(&format!("/tmp/.X{display}-lock")).exists() || answers(&socket_path(display)).await
}

/// The displays instance `id` tries, in order: `base + id`, then `stride` further each time.
pub(super) fn candidates(base: u32, id: u32, stride: u32) -> impl Iterator<Item = u32> {
    (0..DISPLAY_TRIES).filter_map(move |k| {
        base.checked_add(id)?
            .checked_add(k.checked_mul(stride.max(1))?)
    })
}

impl Xvfb {
    /// Starts Xvfb for instance `id` on the first free display of [`candidates`] (`stride`:
    /// the number of slots), logging to `log_dir/xvfb-<id>.log`, and waits for its socket.
    pub async fn start_on_free_display(
        settings: &XvfbSettings,
        id: u32,
        stride: u32,
        log_dir: &Path,
    ) -> Result<Xvfb, XvfbError> {
        let first = settings.display_base.saturating_add(id);
        // `number`, not `display`: tracing's macros have a `display` of their own.
        for number in candidates(settings.display_base, id, stride) {
            if taken(number).await {
                debug!(number, "X display taken; trying the next");
                continue;
            }
            match Xvfb::start(settings, number, log_dir, id).await {
                // Lost a race for it: someone started an X server there meanwhile.
                Err(XvfbError::Exited { .. }) if taken(number).await => {
                    debug!(
                        number,
                        "X display taken while Xvfb started; trying the next"
                    );
                }
                started => return started,
            }
        }
        Err(XvfbError::NoneFree {
            first,
            tries: DISPLAY_TRIES - 1,
            stride,
        })
    }

    /// Starts Xvfb on `:display`, logging to `log_dir/xvfb-<id>.log`, and waits for its socket.
    async fn start(
        settings: &XvfbSettings,
        display: u32,
        log_dir: &Path,
        id: u32,
    ) -> Result<Xvfb, XvfbError> {
        let socket = socket_path(display);
        // Xvfb writes to the file itself (a few lines), so the cap is never reached.
        let log = LogFile::create(log_dir, &format!("xvfb-{id}.log"), u64::MAX)
            .map_err(XvfbError::Log)?;
        let (stdout, stderr) = log.stdio().map_err(XvfbError::Log)?;
        let mut command = Command::new(&settings.executable);
        command
            .arg(format!(":{display}"))
            .args(["-screen", "0", &settings.screen, "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .process_group(0);
        let mut child = command.spawn().map_err(|err| XvfbError::Spawn {
            exe: settings.executable.clone(),
            err,
        })?;
        let pid = child.id().unwrap_or(0);
        let deadline = Instant::now() + settings.startup_timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(XvfbError::Exited {
                    display,
                    how: describe_exit(status),
                    tail: log.tail(),
                });
            }
            if answers(&socket).await && matches!(child.try_wait(), Ok(None)) {
                let number = display; // `display` is shadowed inside tracing macros
                info!(display = number, pid, "Xvfb ready");
                return Ok(Xvfb {
                    child,
                    pid,
                    display,
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(XvfbError::Timeout {
                    display,
                    after: settings.startup_timeout,
                });
            }
            sleep(POLL).await;
        }
    }

    /// The display number (`DISPLAY=:<n>`).
    pub fn display(&self) -> u32 {
        self.display
    }

    /// Its process id, the leader of its own process group.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGTERM, then SIGKILL if it lingers; waits until it is gone.
    pub async fn stop(mut self) {
        signal_group(self.pid, libc::SIGTERM);
        match timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => debug!(display = self.display, ?status, "Xvfb stopped"),
            Err(_) => {
                warn!(display = self.display, "Xvfb ignored SIGTERM; killing it");
                signal_group(self.pid, libc::SIGKILL);
                let _ = self.child.kill().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_tries_its_own_place_in_successive_ranges() {
        let tried: Vec<u32> = candidates(90, 1, 3).take(4).collect();
        assert_eq!(tried, [91, 94, 97, 100]);
        assert_eq!(candidates(90, 0, 3).count(), DISPLAY_TRIES as usize);
        // Never past u32::MAX, and a stride of 0 still moves on.
        assert!(candidates(u32::MAX - 2, 0, 3).count() < DISPLAY_TRIES as usize);
        assert_eq!(candidates(5, 0, 0).take(2).collect::<Vec<_>>(), [5, 6]);
    }
}
