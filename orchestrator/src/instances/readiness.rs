//! The readiness probe: an instance is `RUNNING` once its own control channel says `ready`
//! and frames are coming out of its encoder (endpoint up, secret accepted, first frame
//! delivered and encoded: a process alive is not a stream). The host's `READY port=…` stdout
//! line is not used: the probe is the truth.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tracing::debug;

use crate::control_client::{ControlClient, Readiness};

/// Longest a single probe may take (connect + hello + ready).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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
    let mut client: Option<ControlClient> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(last);
        }
        let limit = (deadline - now).min(PROBE_TIMEOUT);
        let answer = match client.as_mut() {
            Some(client) => client.ready().await,
            None => match ControlClient::connect(addr, secret, limit).await {
                Ok(connected) => client.insert(connected).ready().await,
                Err(err) => Err(err),
            },
        };
        match answer {
            Ok(readiness) if readiness.ready && readiness.frames_flowing => return Ok(readiness),
            Ok(readiness) if readiness.ready => {
                last = "frames were delivered but none came out of the encoder".to_string();
            }
            Ok(_) => last = "endpoint answers but no frame was delivered yet".to_string(),
            Err(err) => {
                debug!(%err, "readiness probe failed");
                last = err.to_string();
                client = None;
            }
        }
        sleep_until((Instant::now() + interval).min(deadline)).await;
    }
}
