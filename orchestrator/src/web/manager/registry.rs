//! The rendering servers this web role may launch on: each one's `servers` row with the
//! protocol client of its supervisor, and which of them is the supervisor in this process.
//!
//! Apart because it is the one piece of the manager that other web roles share (through the
//! `servers` table) and that only grows: servers are registered and loaded at start, never
//! removed, and a live instance keeps the [`Server`] it runs on. Which server is local lives
//! in the same lock as the servers (it used to be a mutex of its own, always read beside
//! them), and is only needed at shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::info;

use super::Manager;
use crate::relay::{RelayEndpoint, RelayRoute};
use crate::web::client::{SupervisorAccess, SupervisorClient};
use crate::web::db::{DbError, ServerRow};

/// A rendering server: its registry row and its protocol client.
#[derive(Debug)]
pub struct Server {
    /// The `servers` row.
    pub row: ServerRow,
    /// The supervisor protocol client, whose URL the relays share: the row's
    /// `ws(s)://ip_address:port/`, or the plain loopback listener of the supervisor in this
    /// process when its port speaks TLS.
    pub client: SupervisorClient,
}

impl Server {
    /// The server of `row`, reached with `access` (connects lazily); at `loopback` instead of
    /// the row's address when given (see [`Manager::register_server`]).
    fn new(row: ServerRow, access: SupervisorAccess, loopback: Option<SocketAddr>) -> Server {
        let (host, port, tls) = match loopback {
            Some(addr) => (addr.ip().to_string(), addr.port(), false),
            None => (row.ip_address.clone(), row.port, row.tls),
        };
        let client = SupervisorClient::with_access(&host, port, tls, access);
        Server { row, client }
    }

    /// The supervisor URL that relays to instance `slot`'s `endpoint`: the web role reaches
    /// instances only through the supervisor that owns them, over the same scheme (`wss://`
    /// for a TLS supervisor) as its protocol.
    pub fn relay_url(&self, slot: u32, endpoint: RelayEndpoint) -> String {
        let path = RelayRoute { id: slot, endpoint }.path();
        // The client's URL is the supervisor's with a `/`, and the path starts with one.
        let base = self.client.url();
        format!("{}{path}", base.strip_suffix('/').unwrap_or(base))
    }
}

/// The known servers. One `std::sync::Mutex`, never held across an `.await` nor together
/// with the live table's.
#[derive(Debug, Default)]
pub(super) struct Registry {
    /// The servers, and which one is local.
    inner: Mutex<Servers>,
}

#[derive(Debug, Default)]
struct Servers {
    /// By `server_id`.
    by_id: HashMap<String, Arc<Server>>,
    /// The `server_id` of the supervisor in this process, whose instances stop when this
    /// process stops.
    local: Option<String>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Servers> {
        // Every update under this lock is a plain insert or assignment: a panic cannot leave
        // it torn.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `server` (replacing one with its id); `local` marks it as this process's.
    fn insert(&self, server: Server, local: bool) {
        let mut servers = self.lock();
        if local {
            servers.local = Some(server.row.server_id.clone());
        }
        servers
            .by_id
            .insert(server.row.server_id.clone(), Arc::new(server));
    }

    /// Adds `server` unless one with its id is known already.
    fn insert_new(&self, server: Server) {
        self.lock()
            .by_id
            .entry(server.row.server_id.clone())
            .or_insert_with(|| Arc::new(server));
    }

    /// The server `server_id`.
    pub(super) fn get(&self, server_id: &str) -> Option<Arc<Server>> {
        self.lock().by_id.get(server_id).cloned()
    }

    /// Every server, in no particular order.
    pub(super) fn all(&self) -> Vec<Arc<Server>> {
        self.lock().by_id.values().cloned().collect()
    }

    /// Whether no server is known.
    pub(super) fn is_empty(&self) -> bool {
        self.lock().by_id.is_empty()
    }

    /// The `server_id` of the supervisor in this process, if it is registered.
    pub(super) fn local(&self) -> Option<String> {
        self.lock().local.clone()
    }
}

impl Manager {
    /// Registers a server (or refreshes its row) and makes it available for launches.
    /// `local` marks the supervisor in this process; `loopback` is where this web role
    /// reaches it instead of the row's address: the plain listener on loopback that a
    /// supervisor whose port speaks TLS keeps for the web role in its own process (its row
    /// keeps the port's address, so it stays the same row across restarts).
    pub async fn register_server(
        &self,
        row: ServerRow,
        local: bool,
        loopback: Option<SocketAddr>,
    ) -> Result<ServerRow, DbError> {
        let stored = self.db.upsert_server(&row).await?;
        let server = Server::new(stored.clone(), self.access.clone(), loopback);
        info!(
            server_id = %stored.server_id,
            supervisor = %server.client.url(),
            slots = stored.num_instances,
            local,
            "rendering server registered"
        );
        self.servers.insert(server, local);
        Ok(stored)
    }

    /// Loads every server of the `servers` table (other web roles may have added some).
    pub async fn load_servers(&self) -> Result<(), DbError> {
        for row in self.db.servers().await? {
            self.servers
                .insert_new(Server::new(row, self.access.clone(), None));
        }
        Ok(())
    }
}
