//! The readiness probe: an instance is `RUNNING` once its own control channel says `ready`
//! and frames are coming out of its encoder (endpoint up, secret accepted, first frame
//! delivered and encoded: a process alive is not a stream). The host's `READY port=…` stdout
//! line is not used: the probe is the truth.
//!
//! After that, [`watch_frames`] asks the same question now and then, so an instance that
//! hangs (alive, but no frame out of its encoder, or no answer at all) is noticed and ended
//! instead of holding its slot for good.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tracing::debug;

use crate::control_client::{ControlClient, ControlError, Readiness};

/// Longest a single probe may take (connect + hello + ready).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks one instance's control channel `ready`, over one connection that is kept while it
/// works and remade after it failed.
struct Prober<'a> {
    addr: SocketAddr,
    secret: &'a str,
    client: Option<ControlClient>,
}

impl<'a> Prober<'a> {
    fn new(addr: SocketAddr, secret: &'a str) -> Prober<'a> {
        Prober {
            addr,
            secret,
            client: None,
        }
    }

    /// One probe; connecting (when needed) may take at most `limit`.
    async fn ready(&mut self, limit: Duration) -> Result<Readiness, ControlError> {
        let answer = match self.client.as_mut() {
            Some(client) => client.ready().await,
            None => match ControlClient::connect(self.addr, self.secret, limit).await {
                Ok(connected) => self.client.insert(connected).ready().await,
                Err(err) => Err(err),
            },
        };
        if answer.is_err() {
            self.client = None;
        }
        answer
    }
}

/// Probes `addr` every `interval` until it reports ready (returns the frame size) or
/// `deadline` passes (returns the last probe's failure, for the log and `lastExit`). One
/// control connection is kept while it works and remade when it fails.
pub(super) async fn wait_ready(
    addr: SocketAddr,
    secret: &str,
    interval: Duration,
    deadline: Instant,
) -> Result<Readiness, String> {
    let mut last = String::from("no probe finished");
    let mut prober = Prober::new(addr, secret);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(last);
        }
        let limit = (deadline - now).min(PROBE_TIMEOUT);
        match prober.ready(limit).await {
            Ok(readiness) if readiness.ready && readiness.frames_flowing => return Ok(readiness),
            Ok(readiness) if readiness.ready => {
                last = "frames were delivered but none came out of the encoder".to_string();
            }
            Ok(_) => last = "endpoint answers but no frame was delivered yet".to_string(),
            Err(err) => {
                debug!(%err, "readiness probe failed");
                last = err.to_string();
            }
        }
        sleep_until((Instant::now() + interval).min(deadline)).await;
    }
}

/// Returns once `addr` has not reported frames flowing for `timeout` (an unanswered probe
/// counts as no frames), with what the last probe said. Probes every `timeout / 5` (at
/// least 200 ms, at most 5 s) over one control connection, remade when it fails.
pub(super) async fn watch_frames(addr: SocketAddr, secret: &str, timeout: Duration) -> String {
    let interval = (timeout / 5).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut last_frames = Instant::now();
    let mut prober = Prober::new(addr, secret);
    loop {
        sleep_until(Instant::now() + interval).await;
        let last = match prober.ready(PROBE_TIMEOUT).await {
            Ok(readiness) if readiness.frames_flowing => {
                last_frames = Instant::now();
                continue;
            }
            Ok(_) => "no frame came out of the encoder".to_string(),
            Err(err) => format!("the control channel did not answer: {err}"),
        };
        if last_frames.elapsed() >= timeout {
            return last;
        }
    }
}
