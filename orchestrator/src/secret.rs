//! The secret that supervisor-protocol connections prove: shared by a rendering server's
//! supervisor and the web roles that use it.
//!
//! A client presents it on the WebSocket upgrade, as `Authorization: Bearer <secret>` (the web
//! role's client) or as `?token=<secret>` in the URL (for clients that cannot set headers, such
//! as the seeds' backend configured with `ws://host:4699/?token=<secret>`). The protocol's
//! messages stay exactly the seeds'. A supervisor without a secret only listens on loopback.
//! On plain `ws://` the secret crosses the network as written; with TLS on the supervisor port
//! (`wss://`, [`crate::server::ServerSettings::tls`]) it travels inside the TLS session, the
//! same request either way ([`SupervisorSecret::client_request`] takes both schemes).

use std::fmt;

use sha2::{Digest, Sha256};

/// Shortest secret accepted: anything shorter is guessable.
pub const MIN_SECRET_LEN: usize = 16;

/// The shared secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SupervisorSecret(String);

/// Why a secret is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Too short to be a secret.
    #[error("the supervisor secret must be at least {MIN_SECRET_LEN} characters long")]
    TooShort,
    /// It would not survive a header or a URL unchanged.
    #[error("the supervisor secret may hold only ASCII letters, digits, '-', '_', '.' and '~'")]
    BadCharacters,
}

impl SupervisorSecret {
    /// Checks `secret` and wraps it. Only characters that pass unchanged in a header and a URL
    /// query (RFC 3986 "unreserved"), so both ways of presenting it mean the same.
    pub fn new(secret: &str) -> Result<SupervisorSecret, SecretError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort);
        }
        let unreserved = |c: char| c.is_ascii_alphanumeric() || "-_.~".contains(c);
        if !secret.chars().all(unreserved) {
            return Err(SecretError::BadCharacters);
        }
        Ok(SupervisorSecret(secret.to_string()))
    }

    /// The secret itself, for the client's header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A WebSocket client request for `url` (`ws://` or `wss://`) that presents this secret,
    /// or none if `None`: how the web role opens every supervisor connection (protocol and
    /// relay alike, through [`crate::web::client::SupervisorAccess::connect`]).
    pub fn client_request(
        secret: Option<&SupervisorSecret>,
        url: &str,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
        let mut request = url
            .into_client_request()
            .map_err(|err| format!("bad supervisor URL {url}: {err}"))?;
        if let Some(secret) = secret {
            let value = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
                .map_err(|err| format!("the supervisor secret is not a header value: {err}"))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        Ok(request)
    }

    /// Whether `presented` is the secret. Compares digests in constant time, so the time taken
    /// says nothing about how much of a guess was right.
    pub fn matches(&self, presented: &str) -> bool {
        let want = Sha256::digest(self.0.as_bytes());
        let got = Sha256::digest(presented.as_bytes());
        want.iter()
            .zip(got.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Whether a WebSocket upgrade request with this `authorization` header value and this
    /// URI `query` presents the secret.
    pub fn admits(&self, authorization: Option<&str>, query: Option<&str>) -> bool {
        let bearer = authorization.and_then(bearer_token);
        let from_query = query.and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
        });
        bearer.is_some_and(|token| self.matches(token))
            || from_query.is_some_and(|token| self.matches(token))
    }
}

/// The token of an `Authorization: Bearer <token>` header value (the scheme in any case),
/// for the supervisor's secret and the web origin's session tokens alike.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl fmt::Debug for SupervisorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SupervisorSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-XYZ";

    #[test]
    fn weak_or_unsafe_secrets_are_refused() {
        assert_eq!(SupervisorSecret::new("short"), Err(SecretError::TooShort));
        assert_eq!(
            SupervisorSecret::new("0123456789abcdef&x=1"),
            Err(SecretError::BadCharacters)
        );
        assert!(SupervisorSecret::new(SECRET).is_ok());
    }

    #[test]
    fn the_secret_is_presented_as_a_bearer_header_or_a_token_query() {
        let secret = SupervisorSecret::new(SECRET).unwrap();
        assert!(secret.admits(Some(&format!("Bearer {SECRET}")), None));
        assert!(secret.admits(Some(&format!("bearer  {SECRET}")), None));
        assert!(secret.admits(None, Some(&format!("a=1&token={SECRET}"))));
        assert!(!secret.admits(None, None));
        assert!(!secret.admits(Some("Bearer 0123456789abcdef-XY"), None));
        assert!(!secret.admits(Some(&format!("Basic {SECRET}")), None));
        assert!(!secret.admits(None, Some(&format!("token={SECRET}x"))));
        assert!(!secret.admits(None, Some(&format!("xtoken={SECRET}"))));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = SupervisorSecret::new(SECRET).unwrap();
        assert!(!format!("{secret:?}").contains("0123"));
    }
}
