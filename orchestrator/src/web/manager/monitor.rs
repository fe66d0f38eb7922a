//! The monitor: one task per live instance that polls its supervisor's `STATUS` and turns the
//! answers into changes of the live table, and the adoption of live instances at start.
//!
//! Apart because the supervisor protocol has no push of its own: this poll is how the web
//! role learns that an instance is ready, being stopped, gone, or on a server that stopped
//! answering (every `poll_initializing` while it starts, every `poll_running` after). The
//! poll stays between the web role and the supervisor; pages are pushed to. After each poll
//! the idle policy ([`super::idle`]) has its say.

use std::sync::Arc;

use tokio::time::{Instant, sleep};
use tracing::{debug, info, warn};

use super::{InstanceView, Manager, Phase, words};
use crate::supervisor::{InstanceStatus, Supervisor};
use crate::web::db::{DbError, now_ms};

impl Manager {
    /// Takes back the instances the database lists as live: those their supervisor still
    /// runs are watched again, the others are marked ended.
    pub async fn adopt(self: &Arc<Self>) -> Result<(), DbError> {
        for row in self.db.live_instances().await? {
            let id = row.instance_id.clone();
            let Some(server) = self.servers.get(&row.server_id) else {
                self.db
                    .set_ended(&id, words::SERVER_NOT_REGISTERED, now_ms())
                    .await?;
                continue;
            };
            let status = server.client.status(row.slot).await;
            let phase = match &status {
                Ok(report) => match report.status {
                    InstanceStatus::Initializing => Phase::Initializing,
                    InstanceStatus::Running => Phase::Running,
                    InstanceStatus::Deinitializing => Phase::Deinitializing,
                    InstanceStatus::Idle | InstanceStatus::Invalid => {
                        info!(instance = %id, "not adopted: its slot is idle");
                        self.db
                            .set_ended(&id, words::GONE_AT_RESTART, now_ms())
                            .await?;
                        continue;
                    }
                },
                // Unreachable now: watch it anyway; the grace period decides.
                Err(_) => Phase::parse(&row.status),
            };
            let mut view = InstanceView::from_row(&row);
            view.status = phase;
            view.expected_startup_ms = self.expected_startup(&server.row.server_id).await;
            info!(instance = %id, slot = row.slot, status = phase.as_str(), "instance adopted");
            if phase == Phase::Running && row.running_at.is_none() {
                self.db.set_running(&id, now_ms()).await?;
            }
            self.insert_live(view, server, row.slot, row.client_address.clone());
        }
        Ok(())
    }

    /// Watches one instance until it ends.
    pub(super) async fn monitor(self: Arc<Self>, id: String) {
        let mut failing_since: Option<Instant> = None;
        // Whether recording RUNNING failed at the last poll (warned once, not every poll).
        let mut unrecorded = false;
        loop {
            let Some((server, slot, phase)) = self
                .live
                .lock()
                .get(&id)
                .map(|l| (Arc::clone(&l.server), l.slot, l.view.status))
            else {
                return;
            };
            sleep(if phase == Phase::Initializing {
                self.settings.poll_initializing
            } else {
                self.settings.poll_running
            })
            .await;
            match server.client.status(slot).await {
                Ok(report) => {
                    failing_since = None;
                    match report.status {
                        InstanceStatus::Initializing => {}
                        InstanceStatus::Running => match self.mark_running(&id).await {
                            Ok(()) => unrecorded = false,
                            Err(err) => {
                                if !unrecorded {
                                    warn!(
                                        %err,
                                        "cannot record RUNNING; the page waits until the \
                                         database takes it"
                                    );
                                }
                                unrecorded = true;
                            }
                        },
                        InstanceStatus::Deinitializing => self.mark_deinitializing(&id),
                        InstanceStatus::Idle | InstanceStatus::Invalid => {
                            let stopping =
                                self.live.lock().get(&id).and_then(|l| l.stopping.clone());
                            let reason = stopping.unwrap_or_else(|| {
                                words::describe_exit(report.last_exit.as_deref())
                            });
                            if report.last_exit.is_some() {
                                debug!(last_exit = ?report.last_exit, "instance gone");
                            }
                            // A failure is logged and retried by `end` itself.
                            let _ = self.end(&id, reason).await;
                            return;
                        }
                    }
                }
                Err(err) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    warn!(%err, "STATUS failed");
                    if since.elapsed() >= self.settings.unreachable_grace {
                        let _ = self
                            .end(&id, words::SERVER_STOPPED_ANSWERING.to_string())
                            .await;
                        return;
                    }
                }
            }
            self.check_idle(&id);
        }
    }

    /// `RUNNING`, recorded first: until the database takes it, the page keeps waiting (and
    /// the next poll tries again), so it never shows what the database does not hold.
    async fn mark_running(&self, id: &str) -> Result<(), DbError> {
        let starting = self
            .live
            .lock()
            .get(id)
            .is_some_and(|l| l.view.status == Phase::Initializing);
        if !starting {
            return Ok(());
        }
        let at = now_ms();
        self.db.set_running(id, at).await?;
        let view = self.live.change(id, |l| {
            if l.view.status != Phase::Initializing {
                return false;
            }
            l.view.status = Phase::Running;
            l.view.running_at = Some(at);
            if l.view.viewers == 0 {
                l.idle.unwatched();
            }
            true
        });
        if let Some(view) = view {
            info!(took_ms = at - view.created_at, "instance running");
        }
        Ok(())
    }

    fn mark_deinitializing(&self, id: &str) {
        self.live.change(id, |l| {
            if l.view.status == Phase::Deinitializing {
                return false;
            }
            l.view.status = Phase::Deinitializing;
            true
        });
    }
}
