//! Wrong session and share tokens.
//!
//! Each wrong token is counted against the client's address ([`ClientKey`]) and answered on
//! a connection that is then closed, so every guess costs a new connection (and a TLS
//! handshake, with HTTPS). Past `token_failures_per_minute` wrong tokens, the address's
//! requests that carry a token are refused unread (429) until its allowance refills: a right
//! token is refused too, or the answer would tell which guess hit. Failures are logged as
//! warnings, at most once a minute per address and a few times a minute in all, so a
//! flood cannot flood the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, CONNECTION};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::WebState;
use super::api::ApiError;
use super::limits::RateLimiter;
use super::peer::{Client, ClientKey};

/// Warnings about wrong tokens per minute, all addresses together.
const WARNINGS_PER_MINUTE: u32 = 10;

/// Marks a response that refused a token; set by [`ApiError`] for an unknown token.
#[derive(Debug, Clone, Copy)]
pub struct TokenRefused;

/// Wrong tokens per client address.
#[derive(Debug)]
pub struct TokenGuard {
    /// Each address's allowance of wrong tokens.
    failures: RateLimiter,
    /// One warning a minute per address.
    warnings: RateLimiter,
    /// A few warnings a minute in all.
    all_warnings: RateLimiter,
    /// Wrong tokens not logged since the last warning.
    unlogged: AtomicU64,
}

impl TokenGuard {
    /// A guard allowing `per_minute` wrong tokens per address (0: no limit).
    pub fn new(per_minute: u32) -> TokenGuard {
        TokenGuard {
            failures: RateLimiter::new(per_minute),
            warnings: RateLimiter::new(1),
            all_warnings: RateLimiter::new(WARNINGS_PER_MINUTE),
            unlogged: AtomicU64::new(0),
        }
    }

    fn warn(&self, client: ClientKey, path: &str, locked_for: Option<Duration>) {
        let logged = self.warnings.take(client).is_ok()
            && self.all_warnings.take(ClientKey::unknown()).is_ok();
        if !logged {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        match locked_for {
            // The token itself is never logged.
            None => warn!(%client, path, unlogged, "wrong session or share token"),
            Some(wait) => warn!(
                %client,
                path,
                unlogged,
                locked_for_s = wait.as_secs(),
                "too many wrong tokens from this address; its tokens are refused for now"
            ),
        }
    }
}

/// Whether a request presents a token (a bearer header or `?token=`).
fn carries_token(request: &Request) -> bool {
    request.headers().contains_key(AUTHORIZATION)
        || request
            .uri()
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("token=")))
}

fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Middleware around every route.
pub async fn guard(
    State(web): State<Arc<WebState>>,
    Client(client): Client,
    request: Request,
    next: Next,
) -> Response {
    let guard = &web.tokens;
    let path = request.uri().path().to_string();
    if carries_token(&request)
        && let Err(wait) = guard.failures.check(client)
    {
        guard.warn(client, &path, Some(wait));
        let refused = ApiError::RateLimited {
            what: "too many wrong tokens",
            retry_after: wait,
        };
        return closing(refused.into_response());
    }
    let response = next.run(request).await;
    if response.extensions().get::<TokenRefused>().is_none() {
        return response;
    }
    let locked_for = guard.failures.take(client).err();
    guard.warn(client, &path, locked_for);
    closing(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_limited_per_address_and_count_what_they_left_out() {
        let guard = TokenGuard::new(20);
        let a = ClientKey::of(std::net::IpAddr::from([192, 0, 2, 1]));
        let b = ClientKey::of(std::net::IpAddr::from([192, 0, 2, 2]));
        for _ in 0..5 {
            guard.warn(a, "/api/instances", None);
        }
        // One warning for `a`; four left out.
        assert_eq!(guard.unlogged.load(Ordering::Relaxed), 4);
        // Another address gets its own warning, which reports (and resets) the count.
        guard.warn(b, "/api/instances", None);
        assert_eq!(guard.unlogged.load(Ordering::Relaxed), 0);
        // In all, no more than WARNINGS_PER_MINUTE a minute, however many addresses.
        for last in 3..=200u8 {
            guard.warn(
                ClientKey::of(std::net::IpAddr::from([192, 0, 2, last])),
                "/",
                None,
            );
        }
        let logged = 2 + (198 - guard.unlogged.load(Ordering::Relaxed));
        assert_eq!(logged, u64::from(WARNINGS_PER_MINUTE));
    }
}
