//! How long browser sessions live.
//!
//! A session expires once it has been unused for [`SessionSettings::expiry`] and has no live
//! instance (its owner must always be able to stop what it runs). "Used" means created, or an
//! owner's action: launch, stop, resize, share. Reads do not count: they must not write, so
//! they keep working when the database cannot take writes. An expired session's token is
//! refused at once; a sweep deletes it, with its ended instances and share links, every
//! [`SessionSettings::sweep_every`].

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval};
use tracing::{info, warn};

use super::db::{Db, now_ms};

/// Session lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session unused this long, with no live instance, expires (`None`: never).
    pub expiry: Option<Duration>,
    /// How often expired sessions are deleted.
    pub sweep_every: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            expiry: Some(Duration::from_secs(7 * 24 * 3600)),
            sweep_every: Duration::from_secs(3600),
        }
    }
}

impl SessionSettings {
    /// The oldest `last_seen_at` (ms since the epoch) of a session still active now.
    pub fn active_since(&self) -> i64 {
        match self.expiry {
            Some(expiry) => {
                now_ms().saturating_sub(i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX))
            }
            None => i64::MIN,
        }
    }
}

/// Deletes expired sessions now and every `sweep_every` until `shutdown` turns true.
pub async fn sweep(db: Db, settings: SessionSettings, mut shutdown: watch::Receiver<bool>) {
    if settings.expiry.is_none() {
        return;
    }
    let mut ticks = interval(settings.sweep_every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = super::stopped(&mut shutdown) => return,
        }
        match db.delete_expired_sessions(settings.active_since()).await {
            Ok(0) => {}
            Ok(gone) => info!(sessions = gone, "expired sessions deleted"),
            // Tried again at the next sweep; meanwhile the expired tokens are refused anyway.
            Err(err) => warn!(%err, "cannot delete expired sessions"),
        }
    }
}
