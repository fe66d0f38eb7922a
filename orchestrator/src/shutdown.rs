//! Shutdown plumbing (the mini-redis pattern) and the process's termination signals.
//!
//! [`crate::server::run`] owns a `broadcast::Sender<()>`; every connection task holds a
//! [`Shutdown`] made from a receiver and an `mpsc::Sender<()>` it never uses. To stop, the
//! server drops the broadcast sender (every [`Shutdown::recv`] returns) and then waits until
//! the `mpsc` channel closes, which happens when the last task has dropped its sender.

use tokio::sync::broadcast;
use tracing::warn;

/// Listens for the server's shutdown notice.
#[derive(Debug)]
pub struct Shutdown {
    /// True once the notice was received; later `recv` calls return at once.
    is_shutdown: bool,
    /// Receives the notice: the sender is dropped (or sends) when the server stops.
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    /// Wraps a receiver of the server's broadcast channel.
    pub fn new(notify: broadcast::Receiver<()>) -> Shutdown {
        Shutdown {
            is_shutdown: false,
            notify,
        }
    }

    /// True once the shutdown notice has been received.
    pub fn is_shutdown(&self) -> bool {
        self.is_shutdown
    }

    /// Waits for the shutdown notice.
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        // A lagged or closed channel means the same thing here: stop.
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: what `main` hands to [`crate::run`].
///
/// Listening starts at the call, not at the first poll: a signal that arrives while the roles
/// are still starting (the web role opens its database first) must be a clean shutdown, not
/// the default action of SIGTERM, which kills the process and leaves the instances running.
pub fn termination_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let sigterm = signal(SignalKind::terminate());
    let sigint = signal(SignalKind::interrupt());
    async move {
        match (sigterm, sigint) {
            (Ok(mut sigterm), Ok(mut sigint)) => {
                tokio::select! {
                    _ = sigint.recv() => {}
                    _ = sigterm.recv() => {}
                }
            }
            (Err(err), Ok(mut sigint)) => {
                warn!(%err, "cannot listen for SIGTERM; only Ctrl-C stops the orchestrator");
                let _ = sigint.recv().await;
            }
            (Ok(mut sigterm), Err(err)) => {
                warn!(%err, "cannot listen for Ctrl-C; only SIGTERM stops the orchestrator");
                let _ = sigterm.recv().await;
            }
            (Err(err), Err(_)) => {
                warn!(%err, "cannot listen for termination signals");
                std::future::pending::<()>().await;
            }
        }
    }
}
