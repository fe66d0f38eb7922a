//! Placement: which rendering server a launch tries first.
//!
//! Every server is asked `SERVER_STATUS` at once; [`order`] turns the answers into the order
//! to try `START` in, and nothing else: a pure function, so the rule is tested on its own
//! and reads in one place. [`Manager::candidates`] does the asking and stores each answer in
//! `servers` (`available_instances`, `num_instances`, `status` active or unreachable), which
//! the seeds' backend read to choose and which other web roles can read still.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;
use tracing::warn;

use super::Manager;
use super::registry::Server;
use crate::supervisor::{ServerStatus, Supervisor};

/// The order in which a launch tries the servers, by their `server_id`s: only those with a
/// free slot, the most free slots first; then the smaller share of busy slots; then by id, so
/// the order is stable. `answers` pairs each server's id with its `SERVER_STATUS` answer, or
/// `None` where it did not answer.
pub(super) fn order<'a>(answers: &[(&'a str, Option<ServerStatus>)]) -> Vec<&'a str> {
    let mut free: Vec<(&'a str, ServerStatus)> = answers
        .iter()
        .filter_map(|(id, answer)| answer.map(|status| (*id, status)))
        .filter(|(_, status)| available(status) > 0)
        .collect();
    free.sort_by(|(a_id, a), (b_id, b)| {
        available(b)
            .cmp(&available(a))
            .then_with(|| busy_share(a, b))
            .then_with(|| a_id.cmp(b_id))
    });
    free.into_iter().map(|(id, _)| id).collect()
}

/// Free slots.
fn available(status: &ServerStatus) -> u32 {
    status.total.saturating_sub(status.running)
}

/// `a`'s share of busy slots against `b`'s (`running / total`, compared without division).
fn busy_share(a: &ServerStatus, b: &ServerStatus) -> Ordering {
    (u64::from(a.running) * u64::from(b.total)).cmp(&(u64::from(b.running) * u64::from(a.total)))
}

impl Manager {
    /// Servers with a free slot, in [`order`] (by `SERVER_STATUS`, asked of every server at
    /// once; the answers are stored in `servers`).
    pub(super) async fn candidates(&self) -> Vec<Arc<Server>> {
        let servers = self.servers.all();
        let answers = join_all(servers.iter().map(|s| s.client.server_status())).await;
        let mut asked = Vec::with_capacity(servers.len());
        for (server, answer) in servers.iter().zip(answers) {
            let id = &server.row.server_id;
            let stored = match answer {
                Ok(status) => {
                    asked.push((id.as_str(), Some(status)));
                    let available = available(&status);
                    self.db
                        .set_server_load(id, "active", available, status.total)
                        .await
                }
                Err(err) => {
                    asked.push((id.as_str(), None));
                    warn!(supervisor = %server.client.url(), %err, "server did not answer SERVER_STATUS");
                    self.db.set_server_status(id, "unreachable").await
                }
            };
            if let Err(err) = stored {
                warn!(%err, "cannot store a server's load");
            }
        }
        let by_id: HashMap<&str, &Arc<Server>> = servers
            .iter()
            .map(|server| (server.row.server_id.as_str(), server))
            .collect();
        order(&asked)
            .into_iter()
            .filter_map(|id| by_id.get(id).map(|server| Arc::clone(server)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(running: u32, total: u32) -> Option<ServerStatus> {
        Some(ServerStatus {
            running,
            total,
            next_free: (running < total).then_some(running),
        })
    }

    #[test]
    fn the_most_free_slots_go_first_then_the_smaller_busy_share_then_the_id() {
        let answers = [
            ("a-one-free-of-one", load(0, 1)),
            ("b-two-free-of-four", load(2, 4)),
            ("c-two-free-of-three", load(1, 3)),
            ("d-two-free-of-two", load(0, 2)),
            ("e-two-free-of-two", load(0, 2)),
        ];
        assert_eq!(
            order(&answers),
            [
                // Two free each: none busy, by id; then a third busy; then half busy.
                "d-two-free-of-two",
                "e-two-free-of-two",
                "c-two-free-of-three",
                "b-two-free-of-four",
                "a-one-free-of-one",
            ]
        );
    }

    #[test]
    fn full_and_silent_servers_are_not_candidates() {
        let answers = [
            ("full", load(3, 3)),
            ("silent", None),
            ("over-full", load(5, 3)),
            ("no-slots", load(0, 0)),
            ("free", load(2, 3)),
        ];
        assert_eq!(order(&answers), ["free"]);
        assert!(order(&[("silent", None)]).is_empty());
        assert!(order(&[]).is_empty());
    }

    #[test]
    fn the_order_does_not_depend_on_the_order_of_the_answers() {
        let mut answers = vec![("x", load(1, 4)), ("y", load(1, 4)), ("z", load(0, 3))];
        let first = order(&answers);
        answers.reverse();
        assert_eq!(order(&answers), first);
        assert_eq!(first, ["z", "x", "y"]);
    }
}
