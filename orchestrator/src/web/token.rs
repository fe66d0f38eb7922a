//! Opaque random identifiers: session and share tokens, instance UUIDs.
//!
//! A browser holds only a token. The database stores its SHA-256, never the token itself,
//! so a copy of the database does not let anyone act as a browser.

use sha2::{Digest, Sha256};

/// The operating system gave no randomness.
#[derive(Debug, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct NoRandomness(String);

fn random<const N: usize>() -> Result<[u8; N], NoRandomness> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|err| NoRandomness(err.to_string()))?;
    Ok(bytes)
}

/// `bytes` as lower-case hex, two digits each.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A browser's session: owns the instances it launched.
    Session,
    /// A share link: watch one instance, no input.
    Share,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "s",
            TokenKind::Share => "v",
        }
    }
}

/// A new token: 256 random bits as hex, after a one-letter kind prefix (`s` or `v`) that
/// only helps people tell them apart in a bug report; the server looks tokens up by hash.
pub fn new_token(kind: TokenKind) -> Result<String, NoRandomness> {
    Ok(format!("{}{}", kind.prefix(), hex(&random::<32>()?)))
}

/// The hash under which a token is stored.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Whether `text` can be a token at all (checked before hashing anything a client sent).
pub fn looks_like_token(text: &str) -> bool {
    text.len() == 65 && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A random (version 4) UUID, lower case with hyphens.
pub fn new_uuid() -> Result<String, NoRandomness> {
    let mut b = random::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Whether `text` is a UUID as [`new_uuid`] writes them (any version, lower case).
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_recognised() {
        let a = new_token(TokenKind::Session).unwrap();
        let b = new_token(TokenKind::Session).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with('s'));
        assert!(new_token(TokenKind::Share).unwrap().starts_with('v'));
        assert!(looks_like_token(&a));
        assert!(!looks_like_token("s123"));
        assert!(!looks_like_token(&format!("{}'", &a[..64])));
        assert_eq!(hash_token(&a).len(), 64);
        assert_eq!(hash_token(&a), hash_token(&a.clone()));
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn uuids_are_version_4_and_validated() {
        let id = new_uuid().unwrap();
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]));
        assert!(is_uuid("b829c4a1-5867-477b-a555-25fe2b5f9555"));
        assert!(!is_uuid("B829C4A1-5867-477B-A555-25FE2B5F9555"));
        assert!(!is_uuid("b829c4a1-5867-477b-a555-25fe2b5f955"));
        assert!(!is_uuid("../../../etc/passwd/aaaaaaaaaaaaaaaaaaaa"));
    }
}
