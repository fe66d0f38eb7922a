//! The HTTP origin: routes, the pages, `web/`'s static files and the response headers.
//!
//! | path | what |
//! | --- | --- |
//! | `/` | the home page (`web/index.html`): launch, list, rejoin, stop |
//! | `/stream/<uuid>` | the stream page (`web/stream.html`) |
//! | `/api/…` | the JSON API and its WebSockets ([`super::api`]) |
//! | anything else | a file of `web/` (`/viewer.html`, `/js/…`, `/css/…`) |

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tracing::warn;

use super::token::is_uuid;
use super::{WebState, api, guard, proxy, push};

/// The product pages' Content-Security-Policy: our own scripts, styles and sockets only.
/// (`viewer.html`, a developer's page that may point at any endpoint, gets none.)
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

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
        .route("/api/instances/{id}/events", get(push::instance_events))
        .route("/api/instances/{id}/signal", get(proxy::signal))
        .route("/api", any(api::no_endpoint))
        .route("/api/{*rest}", any(api::no_endpoint))
        .fallback(static_file)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::guard,
        ))
        // Outermost, so that every answer has them, the guard's own included.
        .layer(axum::middleware::map_response(common_headers))
        .with_state(state)
}

/// Headers on every response.
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
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

/// The content type of a file name.
pub fn content_type(path: &FsPath) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that a URL path names, or `None` for anything that could leave
/// `root` or reach a hidden file: every segment must be plain (letters, digits, `.`, `_`,
/// `-`) and not start with a dot.
pub fn static_path(root: &FsPath, url_path: &str) -> Option<PathBuf> {
    let relative = url_path.strip_prefix('/')?;
    if relative.is_empty() {
        return None;
    }
    let mut path = root.to_path_buf();
    for segment in relative.split('/') {
        let plain = !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if !plain {
            return None;
        }
        path.push(segment);
    }
    Some(path)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Not found</title><p>Not found. <a href=\"/\">Home</a></p>",
    )
        .into_response()
}

async fn file_response(path: &FsPath, csp: bool) -> Response {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let mut response = (
                [
                    (CONTENT_TYPE, content_type(path)),
                    // Revalidate every time: pages and modules change without a build step.
                    (CACHE_CONTROL, "no-cache"),
                ],
                bytes,
            )
                .into_response();
            if csp {
                response.headers_mut().insert(
                    HeaderName::from_static("content-security-policy"),
                    HeaderValue::from_static(PAGE_CSP),
                );
            }
            response
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => not_found(),
        Err(err) if err.raw_os_error() == Some(libc::EISDIR) => not_found(),
        Err(err) => {
            warn!(path = %path.display(), %err, "cannot read a web file");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file").into_response()
        }
    }
}

async fn home_page(State(web): State<Arc<WebState>>) -> Response {
    file_response(&web.root.join("index.html"), true).await
}

async fn stream_page(State(web): State<Arc<WebState>>, Path(id): Path<String>) -> Response {
    if !is_uuid(&id) {
        return not_found();
    }
    file_response(&web.root.join("stream.html"), true).await
}

async fn static_file(State(web): State<Arc<WebState>>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    match static_path(&web.root, uri.path()) {
        Some(path) => file_response(&path, false).await,
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_paths_stay_inside_the_root() {
        let root = FsPath::new("/srv/web");
        assert_eq!(
            static_path(root, "/js/viewer.js"),
            Some(PathBuf::from("/srv/web/js/viewer.js"))
        );
        for bad in [
            "/",
            "/../etc/passwd",
            "/js/../../x",
            "/.git/config",
            "/js//x.js",
            "/%2e%2e/x",
            "/js/",
            "relative",
        ] {
            assert_eq!(static_path(root, bad), None, "{bad}");
        }
        assert_eq!(
            content_type(FsPath::new("a/b.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(FsPath::new("a/b")), "application/octet-stream");
    }
}
