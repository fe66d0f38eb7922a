//! The idle policy: a `RUNNING` instance that nobody has watched for `--idle-timeout` is
//! stopped, with the reason on its page.
//!
//! Apart so that the rule has one owner: [`IdleClock`] is the only state it keeps (since when
//! an instance has had no viewer), the live table tells it of viewers and of the start of
//! `RUNNING`, and the monitor asks [`Manager::check_idle`] after every poll. Viewers count per
//! web role, so several web roles behind one name would each see only their own.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::live::Live;
use super::{Manager, Phase, words};

/// Since when a live instance has had no viewer while `RUNNING`, if it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IdleClock {
    /// `None` while it is watched or not `RUNNING` yet.
    since: Option<Instant>,
}

impl IdleClock {
    /// The clock of an instance put in the live table: `RUNNING` and unwatched (adopted),
    /// or not running yet.
    pub(super) fn new(running: bool) -> IdleClock {
        IdleClock {
            since: running.then(Instant::now),
        }
    }

    /// A viewer came: not idle.
    pub(super) fn watched(&mut self) {
        self.since = None;
    }

    /// `RUNNING` with no viewer from now on (the last one left, or it started unwatched).
    pub(super) fn unwatched(&mut self) {
        self.since = Some(Instant::now());
    }

    /// Whether it has been unwatched for `limit`.
    fn ran_out(&self, limit: Duration) -> bool {
        self.since.is_some_and(|since| since.elapsed() >= limit)
    }
}

/// Whether `live` is due for the idle stop after `limit`: `RUNNING`, no stop asked for yet,
/// and unwatched for that long.
fn due(live: &Live, limit: Duration) -> bool {
    live.stopping.is_none() && live.view.status == Phase::Running && live.idle.ran_out(limit)
}

impl Manager {
    /// Stops `id` if it has been `RUNNING` without a viewer for the idle timeout.
    pub(super) fn check_idle(self: &Arc<Self>, id: &str) {
        let Some(limit) = self.settings.idle_timeout else {
            return;
        };
        let idle = self.live.lock().get(id).is_some_and(|l| due(l, limit));
        if idle {
            let reason = words::idle_stop(limit);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_runs_only_while_nobody_watches() {
        let limit = Duration::ZERO;
        let mut clock = IdleClock::new(false);
        assert!(!clock.ran_out(limit), "not running yet");
        clock.unwatched();
        assert!(clock.ran_out(limit));
        assert!(!clock.ran_out(Duration::from_secs(3600)));
        clock.watched();
        assert!(!clock.ran_out(limit));
        assert!(IdleClock::new(true).ran_out(limit), "adopted, unwatched");
    }
}
