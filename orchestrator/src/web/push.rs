//! Pushing instance changes to pages over WebSocket: the home page's list and the stream
//! page's waiting view switch by themselves, with no polling from the browser.
//!
//! - `/api/events?token=<session>`: `{"type":"instances","instances":[…]}` at once (and again
//!   after a lag), then `{"type":"instance","instance":{…}}` for every change of one of the
//!   session's instances.
//! - `/api/instances/<uuid>/events?token=<session or share>`: `{"type":"instance",
//!   "instance":{…, "access":"owner"|"viewer"}}` at once and at every change.
//!
//! Browsers send nothing on these sockets (anything they send is ignored). A ping every
//! 20 s finds dead connections.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::debug;

use super::WebState;
use super::api::{Access, ApiError, TokenQuery, with_access};
use super::manager::InstanceView;
use super::ws::{BrowserSocket, Liveness, WsUpgrade, close_for};

/// Which changes a socket wants.
enum Filter {
    /// Every instance of this session.
    Session(String),
    /// One instance, seen with this access.
    Instance(String, Access),
}

impl Filter {
    fn message(&self, view: &InstanceView) -> Option<Value> {
        match self {
            Filter::Session(session) if *session == view.session_id => {
                Some(json!({ "type": "instance", "instance": view }))
            }
            Filter::Instance(id, access) if *id == view.id => {
                Some(json!({ "type": "instance", "instance": with_access(view, *access) }))
            }
            _ => None,
        }
    }
}

/// `GET /api/events?token=…`.
pub async fn session_events(
    State(web): State<Arc<WebState>>,
    Query(query): Query<TokenQuery>,
    upgrade: WsUpgrade,
) -> Result<Response, ApiError> {
    let session = web.session(query.token.as_deref()).await?;
    Ok(upgrade.serve(move |socket| async move {
        push(socket, &web, Filter::Session(session)).await;
    }))
}

/// `GET /api/instances/<uuid>/events?token=…`.
pub async fn instance_events(
    State(web): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    upgrade: WsUpgrade,
) -> Result<Response, ApiError> {
    let (access, _) = web.access(&id, query.token.as_deref()).await?;
    Ok(upgrade.serve(move |socket| async move {
        push(socket, &web, Filter::Instance(id, access)).await;
    }))
}

/// The full picture for a socket: the session's list, or the one instance.
async fn snapshot(web: &WebState, filter: &Filter) -> Option<Value> {
    match filter {
        Filter::Session(session) => match web.manager.views_of_session(session).await {
            Ok(views) => Some(json!({ "type": "instances", "instances": views })),
            Err(err) => {
                debug!(%err, "cannot list instances");
                None
            }
        },
        Filter::Instance(id, _) => match web.manager.view(id).await {
            Ok(Some(view)) => filter.message(&view),
            _ => None,
        },
    }
}

async fn push(mut socket: BrowserSocket, web: &WebState, filter: Filter) {
    // Subscribe before the snapshot: a change in between is sent twice, never lost.
    let mut changes = web.manager.subscribe();
    let mut shutdown = web.shutdown.clone();
    let mut liveness = Liveness::new(web.websocket_ping_every);
    let mut pending = snapshot(web, &filter).await;
    loop {
        if let Some(message) = pending.take()
            && socket
                .send(Message::text(message.to_string()))
                .await
                .is_err()
        {
            return;
        }
        tokio::select! {
            change = changes.recv() => match change {
                Ok(view) => pending = filter.message(&view),
                Err(RecvError::Lagged(_)) => pending = snapshot(web, &filter).await,
                Err(RecvError::Closed) => return,
            },
            incoming = socket.next() => match incoming {
                Some(Err(err)) => {
                    debug!(%err, "the browser broke the WebSocket protocol");
                    if let Some(close) = close_for(&err) {
                        let _ = socket.send(close).await;
                    }
                    return;
                }
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => liveness.heard(),
            },
            ping = liveness.next_ping() => match ping {
                Some(ping) => {
                    if socket.send(ping).await.is_err() {
                        return;
                    }
                }
                None => {
                    debug!("the browser stopped answering; closing its push socket");
                    let _ = socket.send(Liveness::gone()).await;
                    return;
                }
            },
            _ = super::stopped(&mut shutdown) => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "orchestrator shutting down".into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                return;
            }
        }
    }
}
