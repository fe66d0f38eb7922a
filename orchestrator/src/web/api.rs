//! The JSON API under `/api/`, and who may do what.
//!
//! A browser proves itself with its session token (`Authorization: Bearer <token>`; the
//! WebSocket endpoints, which browsers cannot give headers, take `?token=`). A session owns
//! the instances it launched. A share token opens one instance to watch: no input, no stop,
//! no resize. Every answer is JSON; errors are `{"error": "<sentence>"}`.
//!
//! | request | who | answer |
//! | --- | --- | --- |
//! | `POST /api/sessions` | anyone | 201 `{"token"}`: a new session |
//! | `GET /api/instances` | session | `{"instances": [view…]}`: live ones and the last ended |
//! | `POST /api/instances` | session | 201 view: launched on the least loaded server |
//! | `GET /api/instances/<uuid>` | owner, share | view + `"access": "owner"\|"viewer"` |
//! | `GET /api/instances/<uuid>/ice-servers` | owner, share | `{"iceServers": [...]}`, fresh TURN credentials |
//! | `DELETE /api/instances/<uuid>` | owner | the final view, once stopped |
//! | `POST /api/instances/<uuid>/resolution` `{"width","height"}` | owner | view, once the stream has the size |
//! | `POST /api/instances/<uuid>/share` | owner | 201 `{"token","url"}`: a view-only link |
//! | `GET /api/events?token=` (WebSocket) | session | the session's instances, pushed |
//! | `GET /api/instances/<uuid>/events?token=` (WebSocket) | owner, share | that instance, pushed |
//! | `GET /api/instances/<uuid>/signal?token=` (WebSocket) | owner, share | the signaling proxy |

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::WebState;
use super::guard::TokenRefused;
use super::limits::retry_after_secs;
use super::manager::{InstanceView, ManagerError};
use super::peer::Client;
use super::token::{TokenKind, hash_token, is_uuid, looks_like_token, new_token, new_uuid};
use super::turn;
use crate::supervisor::SupervisorError;

/// Why a request was refused. `Display` is the `error` sentence of the JSON answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token in the request.
    #[error("no session token: send it as \"Authorization: Bearer <token>\"")]
    NoToken,
    /// A token no session or share has.
    #[error("unknown session token")]
    BadToken,
    /// The instance belongs to another session.
    #[error("this instance belongs to another browser session")]
    Forbidden,
    /// A share token tried an owner's action.
    #[error("a share link only lets you watch this instance")]
    OwnerOnly,
    /// A share token where a session token is needed.
    #[error("this needs your own session token, not a share link")]
    NeedsSession,
    /// No such instance (or not a UUID).
    #[error("no such instance")]
    NotFound,
    /// No such API endpoint.
    #[error("no such API endpoint")]
    NoEndpoint,
    /// A malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// A WebSocket endpoint asked for without an upgrade.
    #[error("this endpoint is a WebSocket")]
    UpgradeRequired,
    /// A WebSocket upgrade from a page of another site.
    #[error("WebSocket connections are only accepted from this site's own pages")]
    CrossOrigin,
    /// Too many requests of one kind from the client's address.
    #[error("{what} from your address; try again in {} s", retry_after_secs(*.retry_after))]
    RateLimited {
        /// What there was too much of, e.g. "too many new sessions".
        what: &'static str,
        /// How long until one is allowed again.
        retry_after: Duration,
    },
    /// What the instance manager said.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// Anything else; details go to the log, not to the browser.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NoToken | ApiError::BadToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden
            | ApiError::OwnerOnly
            | ApiError::NeedsSession
            | ApiError::CrossOrigin => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound | ApiError::NoEndpoint => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Manager(err) => match err {
                ManagerError::NoCapacity | ManagerError::NoServers => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ManagerError::TooMany(_) | ManagerError::TooManyFromAddress(_) => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                ManagerError::NotFound => StatusCode::NOT_FOUND,
                ManagerError::NotRunning(_) => StatusCode::CONFLICT,
                ManagerError::BadSize(..) => StatusCode::BAD_REQUEST,
                ManagerError::Supervisor(SupervisorError::InvalidId) => StatusCode::NOT_FOUND,
                ManagerError::Supervisor(_) => StatusCode::BAD_GATEWAY,
                ManagerError::Db(_) | ManagerError::Unrecorded { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ManagerError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Manager(ManagerError::Db(err)) => {
                error!(%err, "request refused: the database failed");
                "the database is unavailable right now, so nothing was changed; try again later"
                    .to_string()
            }
            ApiError::Manager(ManagerError::Unrecorded { source, .. }) => {
                error!(err = %source, "{self}");
                self.to_string()
            }
            ApiError::Manager(ManagerError::Random(_)) => {
                error!(err = %self, "request failed");
                "internal error".to_string()
            }
            ApiError::Internal(detail) => {
                error!(%detail, "request failed");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        match &self {
            ApiError::BadToken => {
                response.extensions_mut().insert(TokenRefused);
            }
            ApiError::RateLimited { retry_after, .. } => {
                response.headers_mut().insert(
                    RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*retry_after)),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<super::db::DbError> for ApiError {
    fn from(err: super::db::DbError) -> ApiError {
        ApiError::Manager(ManagerError::Db(err))
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser's session, by id.
    Session(String),
    /// A share link, for one instance.
    Share(String),
}

/// What a credential may do with one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Its session launched it: everything.
    Owner,
    /// A share link: watch only.
    Viewer,
}

impl Access {
    /// `"owner"` or `"viewer"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Owner => "owner",
            Access::Viewer => "viewer",
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    crate::secret::bearer_token(headers.get(AUTHORIZATION)?.to_str().ok()?)
}

/// `?token=` of a WebSocket request.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    /// The session or share token.
    pub token: Option<String>,
}

impl WebState {
    /// Looks a token up.
    pub async fn credential(&self, token: Option<&str>) -> Result<Credential, ApiError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(ApiError::NoToken)?;
        if !looks_like_token(token) {
            return Err(ApiError::BadToken);
        }
        let hash = hash_token(token);
        let db = self.manager.db();
        if let Some(session) = db.session_of(&hash, self.sessions.active_since()).await? {
            return Ok(Credential::Session(session));
        }
        if let Some(instance) = db.share_of(&hash).await? {
            return Ok(Credential::Share(instance));
        }
        Err(ApiError::BadToken)
    }

    /// The session id of a session token (share tokens refused).
    pub async fn session(&self, token: Option<&str>) -> Result<String, ApiError> {
        match self.credential(token).await? {
            Credential::Session(session) => Ok(session),
            Credential::Share(_) => Err(ApiError::NeedsSession),
        }
    }

    /// What `token` may do with instance `id`, and the instance.
    pub async fn access(
        &self,
        id: &str,
        token: Option<&str>,
    ) -> Result<(Access, InstanceView), ApiError> {
        let credential = self.credential(token).await?;
        if !is_uuid(id) {
            return Err(ApiError::NotFound);
        }
        let view = self.manager.view(id).await?.ok_or(ApiError::NotFound)?;
        match credential {
            Credential::Session(session) if session == view.session_id => Ok((Access::Owner, view)),
            Credential::Share(instance) if instance == id => Ok((Access::Viewer, view)),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// The view of instance `id` if the request's token owns it. Counts as a use of the
    /// session, which is recorded first: if the database cannot take that, the action is
    /// refused before anything changed.
    async fn owner(&self, id: &str, headers: &HeaderMap) -> Result<InstanceView, ApiError> {
        match self.access(id, bearer(headers)).await? {
            (Access::Owner, view) => {
                self.manager.db().touch_session(&view.session_id).await?;
                Ok(view)
            }
            (Access::Viewer, _) => Err(ApiError::OwnerOnly),
        }
    }
}

type Shared = State<Arc<WebState>>;

/// `GET /api/health`: whether the database answers a real query and, for SQLite, is still
/// the file it was opened on. Why not goes to the log, not to the (public) answer.
pub async fn health(State(web): Shared) -> Response {
    match web.manager.db().check().await {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(err) => {
            warn!(%err, "health check: the database is not usable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "ok": false, "error": "the database is not usable" })),
            )
                .into_response()
        }
    }
}

/// `POST /api/sessions`: a new browser session, a few a minute per client address.
pub async fn create_session(
    State(web): Shared,
    Client(client): Client,
) -> Result<Response, ApiError> {
    web.new_sessions
        .take(client)
        .map_err(|retry_after| ApiError::RateLimited {
            what: "too many new sessions",
            retry_after,
        })?;
    let token = new_token(TokenKind::Session).map_err(|e| ApiError::Internal(e.to_string()))?;
    let session_id = new_uuid().map_err(|e| ApiError::Internal(e.to_string()))?;
    web.manager
        .db()
        .create_session(&session_id, &hash_token(&token))
        .await?;
    info!(session = %session_id, "session created");
    Ok((StatusCode::CREATED, Json(json!({ "token": token }))).into_response())
}

/// `GET /api/instances`: this session's instances. A read: it writes nothing.
pub async fn list(State(web): Shared, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let session = web.session(bearer(&headers)).await?;
    let instances = web.manager.views_of_session(&session).await?;
    Ok(Json(json!({ "instances": instances })))
}

/// `POST /api/instances`: launch one.
pub async fn launch(
    State(web): Shared,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = web.session(bearer(&headers)).await?;
    // A use of the session, recorded before anything starts (see `owner`).
    web.manager.db().touch_session(&session).await?;
    let view = web.manager.launch(&session, &client.to_string()).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /api/instances/<uuid>`.
pub async fn get(
    State(web): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (access, view) = web.access(&id, bearer(&headers)).await?;
    Ok(Json(with_access(&view, access)))
}

/// `GET /api/instances/<uuid>/ice-servers`: the STUN/TURN servers for one connection to the
/// instance, with TURN credentials made now (they expire, so the page asks before every
/// connection). `{"iceServers": []}` when none are configured. A read: it writes nothing.
pub async fn ice_servers(
    State(web): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (access, view) = web.access(&id, bearer(&headers)).await?;
    // A hash of who asks, never a token: coturn logs usernames. Share links have no session
    // of their own, so their viewers are told apart from the owner by the instance.
    let user = match access {
        Access::Owner => turn::user_id("owner", &view.session_id),
        Access::Viewer => turn::user_id("viewer", &id),
    };
    let servers = web.turn.ice_servers(&user, std::time::SystemTime::now());
    Ok(Json(json!({ "iceServers": servers })))
}

/// A view with the caller's access added.
pub fn with_access(view: &InstanceView, access: Access) -> Value {
    let mut value = serde_json::to_value(view).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("access".into(), json!(access.as_str()));
    }
    value
}

/// `DELETE /api/instances/<uuid>`: stop it.
pub async fn stop(
    State(web): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<InstanceView>, ApiError> {
    web.owner(&id, &headers).await?;
    let view = web
        .manager
        .stop(&id, "Stopped by its owner.".to_string())
        .await?;
    Ok(Json(view))
}

/// The body of `POST …/resolution`.
#[derive(Debug, Deserialize)]
struct SizeRequest {
    /// Pixels.
    width: u32,
    /// Pixels.
    height: u32,
}

/// `POST /api/instances/<uuid>/resolution`: the stream follows the browser window.
pub async fn resolution(
    State(web): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<InstanceView>, ApiError> {
    web.owner(&id, &headers).await?;
    let size: SizeRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::BadRequest(format!(
            "expected {{\"width\": W, \"height\": H}} with integers from 1 to 7680: {err}"
        ))
    })?;
    let view = web.manager.resize(&id, size.width, size.height).await?;
    Ok(Json(view))
}

/// `POST /api/instances/<uuid>/share`: a view-only link.
pub async fn share(
    State(web): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    web.owner(&id, &headers).await?;
    let token = new_token(TokenKind::Share).map_err(|e| ApiError::Internal(e.to_string()))?;
    web.manager
        .db()
        .create_share(&hash_token(&token), &id)
        .await?;
    info!(instance = %id, "share link created");
    // The token rides in the fragment: browsers never send that part to a server.
    let url = format!("/stream/{id}#view={token}");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "url": url })),
    )
        .into_response())
}

/// Any other `/api/…` path.
pub async fn no_endpoint() -> ApiError {
    ApiError::NoEndpoint
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn errors_have_statuses_and_sentences() {
        let cases = [
            (ApiError::NoToken, 401),
            (ApiError::Forbidden, 403),
            (ApiError::OwnerOnly, 403),
            (ApiError::NotFound, 404),
            (ApiError::Manager(ManagerError::NoCapacity), 503),
            (ApiError::Manager(ManagerError::TooMany(2)), 429),
            (ApiError::Manager(ManagerError::TooManyFromAddress(8)), 429),
            (ApiError::CrossOrigin, 403),
            (
                ApiError::RateLimited {
                    what: "too many new sessions",
                    retry_after: Duration::from_millis(5500),
                },
                429,
            ),
            (ApiError::Manager(ManagerError::NotRunning("ended")), 409),
            (
                ApiError::Manager(ManagerError::Supervisor(SupervisorError::Unreachable(
                    "x".into(),
                ))),
                502,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{err}");
        }
        assert_eq!(
            ApiError::Forbidden.to_string(),
            "this instance belongs to another browser session"
        );
        let limited = ApiError::RateLimited {
            what: "too many new sessions",
            retry_after: Duration::from_millis(5500),
        };
        assert_eq!(
            limited.to_string(),
            "too many new sessions from your address; try again in 6 s"
        );
        let response = limited.into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "6");
        assert!(
            ApiError::BadToken
                .into_response()
                .extensions()
                .get::<TokenRefused>()
                .is_some()
        );
    }
}
