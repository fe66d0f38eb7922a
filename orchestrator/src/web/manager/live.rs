//! The live table: every instance this web role watches, what pages see of it
//! ([`InstanceView`]), and the push of each change to them.
//!
//! Apart because it is the manager's one piece of shared, changing state: launches, stops,
//! resizes, viewers and the monitor ([`super::monitor`]) all change it, and the table owns the
//! channel too, so a change is pushed right after it is made, once the lock is released
//! ([`LiveTable::change`]). An instance leaves the table once its end is recorded
//! ([`Manager::end`]); until then the table keeps the ended view, so this web role never shows
//! it as running whatever the database says.
//!
//! Locking: one `std::sync::Mutex` around the table, never held across an `.await` nor
//! together with the registry's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use tokio::time::sleep;
use tracing::{Instrument, debug, error, info, info_span};

use super::Manager;
use super::idle::IdleClock;
use super::registry::Server;
use crate::web::db::{DbError, InstanceRow, now_ms};

/// First pause before recording an end again after the database refused it.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest pause between those tries.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(30);

/// An instance's phase as pages see it: the supervisor's statuses, and `ENDED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Launched; its first frame is not there yet.
    Initializing,
    /// Streaming.
    Running,
    /// Being stopped.
    Deinitializing,
    /// Gone; `reason` says why.
    Ended,
}

impl Phase {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initializing => "INITIALIZING",
            Phase::Running => "RUNNING",
            Phase::Deinitializing => "DEINITIALIZING",
            Phase::Ended => "ENDED",
        }
    }

    /// The phase of a database spelling (anything unknown is over).
    pub(super) fn parse(text: &str) -> Phase {
        match text {
            "INITIALIZING" => Phase::Initializing,
            "RUNNING" => Phase::Running,
            "DEINITIALIZING" => Phase::Deinitializing,
            _ => Phase::Ended,
        }
    }
}

/// What a page knows about an instance: no server address, port, slot or process id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// The UUID.
    pub id: String,
    /// Its stream page, `/stream/<uuid>`.
    pub url: String,
    /// Its phase.
    pub status: Phase,
    /// Why it ended (for `ENDED`), a sentence for the page.
    pub reason: Option<String>,
    /// Launch time, ms since the epoch.
    pub created_at: i64,
    /// When it became `RUNNING`.
    pub running_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// How long the server's instances took to start lately (ms): the waiting page's scale.
    pub expected_startup_ms: i64,
    /// Signaling connections open through this web role now.
    pub viewers: u32,
    /// Stream width after the last resize through the web role.
    pub width: Option<u32>,
    /// Stream height after the last resize.
    pub height: Option<u32>,
    /// The owning session (never sent to pages).
    #[serde(skip)]
    pub session_id: String,
}

impl InstanceView {
    /// The view of a database row (no viewers, no expected startup yet).
    pub(super) fn from_row(row: &InstanceRow) -> InstanceView {
        InstanceView {
            id: row.instance_id.clone(),
            url: format!("/stream/{}", row.instance_id),
            status: Phase::parse(&row.status),
            reason: row.end_reason.clone(),
            created_at: row.created_at,
            running_at: row.running_at,
            ended_at: row.ended_at,
            expected_startup_ms: 0,
            viewers: 0,
            width: row.width,
            height: row.height,
            session_id: row.session_id.clone(),
        }
    }
}

/// One live instance.
pub(super) struct Live {
    /// What pages see.
    pub(super) view: InstanceView,
    /// Where it runs.
    pub(super) server: Arc<Server>,
    /// Its slot there.
    pub(super) slot: u32,
    /// The client address key that launched it (for the per-address limit).
    pub(super) client: Option<String>,
    /// Since when it has had no viewer while `RUNNING` (for the idle timeout).
    pub(super) idle: IdleClock,
    /// Why we asked it to stop, once we did: its end reason, whoever notices the end.
    pub(super) stopping: Option<String>,
    /// One `RESOLUTION` at a time per instance; the latest request wins the race to the host.
    pub(super) resize: Arc<tokio::sync::Mutex<()>>,
    /// The watch task; once the instance has ended, the task that retries recording that.
    pub(super) monitor: Option<AbortHandle>,
}

/// The live instances by UUID, and the channel their changes are pushed on.
pub(super) struct LiveTable {
    /// The instances.
    entries: Mutex<HashMap<String, Live>>,
    /// Every change of every instance.
    changes: broadcast::Sender<InstanceView>,
}

impl LiveTable {
    /// An empty table.
    pub(super) fn new() -> LiveTable {
        let (changes, _) = broadcast::channel(256);
        LiveTable {
            entries: Mutex::new(HashMap::new()),
            changes,
        }
    }

    /// The table, for reading or for changes that push nothing (removals, task handles).
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Live>> {
        // Every update under this lock is a plain assignment: a panic cannot leave it torn.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every change of every instance from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<InstanceView> {
        self.changes.subscribe()
    }

    /// Pushes `view` to the pages.
    pub(super) fn publish(&self, view: InstanceView) {
        // No subscriber is fine.
        let _ = self.changes.send(view);
    }

    /// Applies `change` to live instance `id`; if it returns true, pushes the new view (after
    /// the lock is released) and returns it.
    pub(super) fn change(
        &self,
        id: &str,
        change: impl FnOnce(&mut Live) -> bool,
    ) -> Option<InstanceView> {
        let view = {
            let mut entries = self.lock();
            let live = entries.get_mut(id)?;
            change(live).then(|| live.view.clone())
        };
        if let Some(view) = &view {
            self.publish(view.clone());
        }
        view
    }
}

/// Held by each signaling connection; counts it as a viewer until dropped.
pub struct ViewerGuard {
    /// The manager.
    manager: Arc<Manager>,
    /// The instance watched.
    id: String,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.manager.viewer_left(&self.id);
    }
}

impl Manager {
    /// Puts an instance in the live table, starts its monitor and pushes its view.
    pub(super) fn insert_live(
        self: &Arc<Self>,
        view: InstanceView,
        server: Arc<Server>,
        slot: u32,
        client: Option<String>,
    ) {
        let id = view.id.clone();
        let running = view.status == Phase::Running;
        let monitor = {
            let manager = Arc::clone(self);
            let span = info_span!(parent: None, "instance", %id, slot);
            let id = id.clone();
            tokio::spawn(async move { manager.monitor(id).await }.instrument(span)).abort_handle()
        };
        self.live.lock().insert(
            id,
            Live {
                view: view.clone(),
                server,
                slot,
                client,
                idle: IdleClock::new(running),
                stopping: None,
                resize: Arc::new(tokio::sync::Mutex::new(())),
                monitor: Some(monitor),
            },
        );
        self.live.publish(view);
    }

    /// Counts a signaling connection as a viewer of `id` until the guard drops.
    pub fn viewer_joined(self: &Arc<Self>, id: &str) -> ViewerGuard {
        self.live.change(id, |l| {
            l.view.viewers += 1;
            l.idle.watched();
            true
        });
        ViewerGuard {
            manager: Arc::clone(self),
            id: id.to_string(),
        }
    }

    fn viewer_left(&self, id: &str) {
        self.live.change(id, |l| {
            l.view.viewers = l.view.viewers.saturating_sub(1);
            if l.view.viewers == 0 && l.view.status == Phase::Running {
                l.idle.unwatched();
            }
            true
        });
    }

    /// Marks `id` ended for `reason`: to the pages at once, into the database, then out of
    /// the live table. If the database cannot take it, the live table keeps the ended view
    /// (so this web role never shows the instance as running) and a task retries the write
    /// until it works; the first failure is returned.
    pub(super) async fn end(self: &Arc<Self>, id: &str, reason: String) -> Result<(), DbError> {
        let at = now_ms();
        let ended = {
            let mut live = self.live.lock();
            live.get_mut(id)
                .filter(|l| l.view.status != Phase::Ended)
                .map(|l| {
                    l.view.status = Phase::Ended;
                    l.view.reason = Some(reason.clone());
                    l.view.ended_at = Some(at);
                    l.view.viewers = 0;
                    (l.view.clone(), l.monitor.take())
                })
        };
        // Not live, or ended already and its record under way.
        let Some((view, monitor)) = ended else {
            return Ok(());
        };
        info!(instance = %id, %reason, "instance ended");
        self.live.publish(view);
        let recorded = self.db.set_ended(id, &reason, at).await;
        match &recorded {
            Ok(()) => {
                self.live.lock().remove(id);
            }
            Err(err) => {
                error!(
                    %err,
                    instance = %id,
                    "cannot record the end of an instance; retrying until the database takes it"
                );
                let retry = tokio::spawn(Arc::clone(self).record_end(id.to_string(), reason, at));
                if let Some(l) = self.live.lock().get_mut(id) {
                    l.monitor = Some(retry.abort_handle());
                }
            }
        }
        // Last: this may be the monitor itself, which stops at its next await.
        if let Some(monitor) = monitor {
            monitor.abort();
        }
        recorded
    }

    /// Retries recording an end, with growing pauses, until the database takes it.
    async fn record_end(self: Arc<Self>, id: String, reason: String, at: i64) {
        let mut pause = RECORD_RETRY_FIRST;
        loop {
            sleep(pause).await;
            match self.db.set_ended(&id, &reason, at).await {
                Ok(()) => {
                    info!(instance = %id, "the end of the instance is recorded now");
                    self.live.lock().remove(&id);
                    return;
                }
                Err(err) => {
                    debug!(%err, instance = %id, "still cannot record the end");
                    pause = (pause * 2).min(RECORD_RETRY_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_never_carry_addresses_or_slots() {
        let view = InstanceView::from_row(&InstanceRow {
            instance_id: "u".into(),
            session_id: "secret-session".into(),
            server_id: "s".into(),
            slot: 2,
            status: "RUNNING".into(),
            end_reason: None,
            created_at: 1,
            running_at: Some(2),
            ended_at: None,
            width: None,
            height: None,
            client_address: Some("203.0.113.7".into()),
        });
        let json = serde_json::to_string(&view).unwrap();
        assert!(json.contains(r#""status":"RUNNING""#), "{json}");
        assert!(json.contains(r#""url":"/stream/u""#), "{json}");
        for hidden in ["secret-session", "slot", "server", "port", "203.0.113.7"] {
            assert!(!json.contains(hidden), "{hidden} in {json}");
        }
    }
}
