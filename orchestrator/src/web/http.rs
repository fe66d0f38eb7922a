//! The HTTP origin: routes, the pages, `web/`'s files ([`super::files`]) and the response
//! headers.
//!
//! | path | what |
//! | --- | --- |
//! | `/` | the home page (`web/index.html`): launch, list, rejoin, stop |
//! | `/stream/<uuid>` | the stream page (`web/stream.html`) |
//! | `/api/…` | the JSON API and its WebSockets ([`super::api`]) |
//! | anything else | a page or asset of `web/` (`/viewer.html`, `/js/…`, `/css/…`) |

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tracing::warn;

use super::files::content_type;
use super::token::is_uuid;
use super::{WebState, api, guard, openspace_api, proxy, push};

/// The origin's Content-Security-Policy: our own scripts, styles and sockets only. Sent on
/// every response: every page of the origin can read the session token in `localStorage`,
/// `viewer.html` included (which therefore reaches only signaling endpoints of this origin).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The security headers of every response.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// All routes, on `state`.
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(home_page))
        .route("/stream/{id}", get(stream_page))
        .route("/api/health", get(api::health))
        .route("/api/sessions", post(api::create_session))
        .route("/api/events", get(push::session_events))
        .route("/api/instances", get(api::list).post(api::launch))
        .route("/api/instances/{id}", get(api::get).delete(api::stop))
        .route("/api/instances/{id}/resolution", post(api::resolution))
        .route("/api/instances/{id}/share", post(api::share))
        .route("/api/instances/{id}/ice-servers", get(api::ice_servers))
        .route("/api/instances/{id}/events", get(push::instance_events))
        .route("/api/instances/{id}/signal", get(proxy::signal))
        .route(
            "/api/instances/{id}/openspace",
            get(openspace_api::openspace),
        )
        .route("/api", any(api::no_endpoint))
        // The catch-all below matches no empty rest: `/api/` itself needs its own route, or
        // it would fall through to the files (an HTML 404, or a bare 405).
        .route("/api/", any(api::no_endpoint))
        .route("/api/{*rest}", any(api::no_endpoint))
        .fallback(static_file)
        .layer(axum::middleware::from_fn(json_api_errors))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::guard,
        ))
        // Outermost, so that every answer has them, the guard's own included.
        .layer(axum::middleware::map_response(common_headers))
        .with_state(state)
}

/// Headers on every response: the one place that adds them.
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let json = headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Largest refusal body of axum's that is quoted into a JSON error; theirs are a line.
const QUOTED_REFUSAL_BYTES: usize = 4096;

/// Every answer under `/api/` is JSON, errors `{"error": "<sentence>"}`. Our handlers answer so
/// themselves ([`api::ApiError`]); axum's own refusals do not: a query or path that does not
/// parse or a body over its limit come as plain text, a method a route does not take with no
/// body at all. They are rewritten here, in their own words, or the status's when they have
/// none; status and headers (`Allow` included) stay.
async fn json_api_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = path == "/api" || path.starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !api || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, QUOTED_REFUSAL_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        text
    };
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::json!({ "error": message }).to_string();
    Response::from_parts(parts, Body::from(body))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Not found</title><p>Not found. <a href=\"/\">Home</a></p>",
    )
        .into_response()
}

/// The served file at `url_path` of `web/`, or not found.
async fn file_response(web: &WebState, url_path: &str) -> Response {
    match web.root.read(url_path).await {
        Ok(Some((path, bytes))) => (
            [
                (CONTENT_TYPE, content_type(&path)),
                // Revalidate every time: pages and modules change without a build step.
                (CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(err) => {
            warn!(path = url_path, %err, "cannot read a web file");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file").into_response()
        }
    }
}

async fn home_page(State(web): State<Arc<WebState>>) -> Response {
    file_response(&web, "/index.html").await
}

async fn stream_page(State(web): State<Arc<WebState>>, Path(id): Path<String>) -> Response {
    if !is_uuid(&id) {
        return not_found();
    }
    file_response(&web, "/stream.html").await
}

async fn static_file(State(web): State<Arc<WebState>>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    file_response(&web, uri.path()).await
}
