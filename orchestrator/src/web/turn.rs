//! Short-lived TURN credentials for browsers: coturn's TURN REST API (`use-auth-secret`).
//!
//! The web role and the TURN server share a secret (coturn's `static-auth-secret`) and nothing
//! else: no user database, no call between them. For each connection the page asks for, the
//! web role makes a username `<unix expiry>:<user id>` and the credential
//! `base64(HMAC-SHA1(secret, username))`; coturn recomputes the same HMAC and accepts the
//! pair until the expiry. The user id is derived from the session (or the share link's
//! instance) by a one-way hash, never the token itself: coturn logs usernames.
//!
//! coturn checks the expiry when an allocation is made, not during it, so a stream that is
//! relayed keeps playing past the expiry; a reconnection asks for fresh credentials.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::token::hex;

/// How long credentials are good for new relays, unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Shortest secret accepted. Every browser gets a username with its HMAC, so anyone can try
/// to guess the secret offline against them: a short one would be found.
pub const MIN_SECRET_LEN: usize = 16;

/// Why a TURN setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    /// A URL browsers would not take as an ICE server.
    #[error(
        "TURN/STUN URL {0:?} (--turn-url, web.turn_urls) must be turn:HOST[:PORT], \
         turns:HOST[:PORT] or stun:HOST[:PORT], e.g. turn:10.0.0.1:3478?transport=udp"
    )]
    BadUrl(String),
    /// `turn:` URLs without the secret to make their credentials.
    #[error(
        "a turn: or turns: URL needs --turn-secret (ORCHESTRATOR_TURN_SECRET, web.turn_secret): \
         the TURN server's static-auth-secret"
    )]
    NoSecret,
    /// A secret that no URL would use.
    #[error(
        "--turn-secret (ORCHESTRATOR_TURN_SECRET, web.turn_secret) is set, but no turn: or \
         turns: URL (--turn-url, web.turn_urls) would use it"
    )]
    SecretWithoutUrl,
    /// A secret short enough to guess.
    #[error("the TURN secret must be at least {MIN_SECRET_LEN} characters long")]
    ShortSecret,
    /// Credentials that would expire as they are made.
    #[error("--turn-credential-ttl (web.turn_credential_ttl) must be at least 1 second")]
    TtlTooShort,
}

/// The secret shared with the TURN server. Its `Debug` never shows it.
#[derive(Clone)]
pub struct TurnSecret {
    /// Kept only for `PartialEq` (settings are compared in tests).
    text: String,
    /// The HMAC keyed once with the secret; cloned for each credential.
    keyed: Hmac<Sha1>,
}

impl TurnSecret {
    /// Checks `secret` and keys the HMAC with it.
    pub fn new(secret: &str) -> Result<TurnSecret, TurnError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(TurnError::ShortSecret);
        }
        // HMAC takes keys of any length, so this cannot fail; the error is mapped rather
        // than unwrapped all the same.
        let keyed =
            Hmac::<Sha1>::new_from_slice(secret.as_bytes()).map_err(|_| TurnError::ShortSecret)?;
        Ok(TurnSecret {
            text: secret.to_string(),
            keyed,
        })
    }
}

impl PartialEq for TurnSecret {
    fn eq(&self, other: &TurnSecret) -> bool {
        self.text == other.text
    }
}

impl Eq for TurnSecret {}

impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TurnSecret(<hidden>)")
    }
}

/// A username and credential for coturn's `use-auth-secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<unix expiry>:<user id>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

/// The credential for `user` that coturn accepts until `expires` (Unix seconds).
pub fn credential(secret: &TurnSecret, user: &str, expires: u64) -> TurnCredential {
    let username = format!("{expires}:{user}");
    let mut mac = secret.keyed.clone();
    mac.update(username.as_bytes());
    let credential = BASE64.encode(mac.finalize().into_bytes());
    TurnCredential {
        username,
        credential,
    }
}

/// A user id for TURN usernames: 16 hex digits of a hash of `what` (a kind, e.g. `owner`) and
/// `id` (a session or instance id). One-way, so the TURN server's logs name a user without
/// holding anything that opens the web role; stable, so an operator can match them up.
pub fn user_id(what: &str, id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"osw-turn-user\0")
        .chain_update(what.as_bytes())
        .chain_update(b"\0")
        .chain_update(id.as_bytes())
        .finalize();
    hex(&digest[..8])
}

/// One entry of `RTCPeerConnection`'s `iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// For `turn:`/`turns:` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// For `turn:`/`turns:` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Whether `url` names a relay (which needs credentials), rather than a STUN server.
fn is_relay(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("turn:") || lower.starts_with("turns:")
}

/// Checks one URL: a scheme browsers take and a host after it.
fn check_url(url: &str) -> Result<(), TurnError> {
    let lower = url.to_ascii_lowercase();
    let rest = ["turn:", "turns:", "stun:"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme));
    match rest {
        // A `//` is not part of these schemes (RFC 7065); browsers refuse it.
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.starts_with(':')
                && !rest.starts_with('?')
                && !url.chars().any(|c| c.is_whitespace() || c == ',') =>
        {
            Ok(())
        }
        _ => Err(TurnError::BadUrl(url.to_string())),
    }
}

/// The STUN/TURN servers browsers are given. None by default: the page then connects as
/// without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnSettings {
    /// `stun:`, `turn:` and `turns:` URLs, in the order given.
    urls: Vec<String>,
    /// Signs the `turn:`/`turns:` credentials; set exactly when there are such URLs.
    secret: Option<TurnSecret>,
    /// How long a credential lets a browser make new relays.
    ttl: Duration,
}

impl Default for TurnSettings {
    fn default() -> Self {
        TurnSettings {
            urls: Vec::new(),
            secret: None,
            ttl: DEFAULT_TTL,
        }
    }
}

impl TurnSettings {
    /// Checks the settings: every URL `turn:`, `turns:` or `stun:`; a secret exactly when a
    /// relay URL needs one; a TTL of at least a second (coturn counts whole seconds).
    pub fn new(
        urls: Vec<String>,
        secret: Option<&str>,
        ttl: Duration,
    ) -> Result<TurnSettings, TurnError> {
        // `a,,b` or a trailing comma in the environment variable leaves empty entries.
        let urls: Vec<String> = urls
            .into_iter()
            .map(|url| url.trim().to_string())
            .filter(|url| !url.is_empty())
            .collect();
        for url in &urls {
            check_url(url)?;
        }
        let relays = urls.iter().any(|url| is_relay(url));
        let secret = match (relays, secret) {
            (true, Some(secret)) => Some(TurnSecret::new(secret)?),
            (true, None) => return Err(TurnError::NoSecret),
            (false, Some(_)) => return Err(TurnError::SecretWithoutUrl),
            (false, None) => None,
        };
        if ttl < Duration::from_secs(1) {
            return Err(TurnError::TtlTooShort);
        }
        Ok(TurnSettings { urls, secret, ttl })
    }

    /// The configured URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// How long credentials are good for.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The `iceServers` for `user` (see [`user_id`]) at `now`: the STUN URLs as one entry
    /// without credentials, the relay URLs as one entry with a credential that expires at
    /// `now` + TTL. Empty when nothing is configured.
    pub fn ice_servers(&self, user: &str, now: SystemTime) -> Vec<IceServer> {
        let (relays, stuns): (Vec<String>, Vec<String>) =
            self.urls.iter().cloned().partition(|url| is_relay(url));
        let mut servers = Vec::new();
        if !stuns.is_empty() {
            servers.push(IceServer {
                urls: stuns,
                username: None,
                credential: None,
            });
        }
        if let (false, Some(secret)) = (relays.is_empty(), &self.secret) {
            // A clock before 1970 would make expired credentials; that clock is broken anyway.
            let expires = (now + self.ttl)
                .duration_since(UNIX_EPOCH)
                .map(|since| since.as_secs())
                .unwrap_or_default();
            let made = credential(secret, user, expires);
            servers.push(IceServer {
                urls: relays,
                username: Some(made.username),
                credential: Some(made.credential),
            });
        }
        servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "north-pole-secret-123";

    #[test]
    fn credentials_are_coturns_hmac_sha1_of_the_username() {
        // Computed outside this code:
        //   printf '%s' '1700003600:3f2a9c1b7d4e5f60' \
        //     | openssl dgst -sha1 -hmac 'north-pole-secret-123' -binary | base64
        // (python's hmac.new(secret, username, hashlib.sha1) agrees).
        let secret = TurnSecret::new(SECRET).unwrap();
        let made = credential(&secret, "3f2a9c1b7d4e5f60", 1_700_003_600);
        assert_eq!(made.username, "1700003600:3f2a9c1b7d4e5f60");
        assert_eq!(made.credential, "UZtqCfVrgV04H/Mu1E0r0pu1goI=");
        // Another secret, another credential.
        let other = TurnSecret::new("another-secret-of-20").unwrap();
        assert_ne!(
            credential(&other, "3f2a9c1b7d4e5f60", 1_700_003_600).credential,
            made.credential
        );
    }

    #[test]
    fn ice_servers_expire_after_the_ttl_and_keep_stun_apart() {
        let settings = TurnSettings::new(
            vec![
                "stun:10.0.0.1:3478".into(),
                "turn:10.0.0.1:3478?transport=udp".into(),
                " turns:turn.example.org:5349 ".into(),
            ],
            Some(SECRET),
            Duration::from_secs(600),
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_003_000);
        let servers = settings.ice_servers("3f2a9c1b7d4e5f60", now);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, ["stun:10.0.0.1:3478"]);
        assert_eq!(servers[0].username, None);
        assert_eq!(
            servers[1].urls,
            [
                "turn:10.0.0.1:3478?transport=udp",
                "turns:turn.example.org:5349"
            ]
        );
        assert_eq!(
            servers[1].username.as_deref(),
            Some("1700003600:3f2a9c1b7d4e5f60")
        );
        assert_eq!(
            servers[1].credential.as_deref(),
            Some("UZtqCfVrgV04H/Mu1E0r0pu1goI=")
        );
        let json = serde_json::to_value(&servers).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({ "urls": ["stun:10.0.0.1:3478"] })
        );
        assert!(json[1]["credential"].is_string());

        assert!(
            TurnSettings::default()
                .ice_servers("u", SystemTime::now())
                .is_empty()
        );
        let stun_only =
            TurnSettings::new(vec!["stun:stun.example.org".into()], None, DEFAULT_TTL).unwrap();
        assert_eq!(stun_only.ice_servers("u", now).len(), 1);
    }

    #[test]
    fn bad_settings_are_refused() {
        let ttl = DEFAULT_TTL;
        for bad in [
            "http://turn.example.org",
            "turn:",
            "turn://10.0.0.1:3478",
            "turn::3478",
            "10.0.0.1:3478",
            "turn:a b",
            "stuns:x",
        ] {
            assert_eq!(
                TurnSettings::new(vec![bad.into()], Some(SECRET), ttl),
                Err(TurnError::BadUrl(bad.into())),
                "{bad}"
            );
        }
        let turn = || vec!["turn:10.0.0.1:3478".to_string()];
        assert_eq!(
            TurnSettings::new(turn(), None, ttl),
            Err(TurnError::NoSecret)
        );
        assert_eq!(
            TurnSettings::new(Vec::new(), Some(SECRET), ttl),
            Err(TurnError::SecretWithoutUrl)
        );
        assert_eq!(
            TurnSettings::new(vec!["stun:x".into()], Some(SECRET), ttl),
            Err(TurnError::SecretWithoutUrl)
        );
        assert_eq!(
            TurnSettings::new(turn(), Some("short"), ttl),
            Err(TurnError::ShortSecret)
        );
        assert_eq!(
            TurnSettings::new(turn(), Some(SECRET), Duration::from_millis(500)),
            Err(TurnError::TtlTooShort)
        );
        assert!(TurnSettings::new(vec!["TURN:x".into()], Some(SECRET), ttl).is_ok());
    }

    #[test]
    fn user_ids_are_short_one_way_and_stable() {
        let a = user_id("owner", "b829c4a1-5867-477b-a555-25fe2b5f9555");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_eq!(a, user_id("owner", "b829c4a1-5867-477b-a555-25fe2b5f9555"));
        assert_ne!(a, user_id("viewer", "b829c4a1-5867-477b-a555-25fe2b5f9555"));
        assert!(!a.contains(':'));
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let settings = TurnSettings::new(vec!["turn:x".into()], Some(SECRET), DEFAULT_TTL).unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("<hidden>"), "{shown}");
    }
}
