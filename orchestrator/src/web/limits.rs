//! The origin's limits per client address: a token bucket per [`ClientKey`], and the
//! configured limits and HTTP timeouts.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::peer::ClientKey;

/// Limits and HTTP timeouts of the web origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginLimits {
    /// Time a client has to send a request's headers, on a new connection or after the
    /// previous answer on a kept-alive one (so it is also the idle keep-alive timeout).
    pub header_timeout: Duration,
    /// New sessions one client address may create per minute (0: no limit).
    pub new_sessions_per_minute: u32,
    /// Wrong tokens one client address may send per minute before its tokens are refused
    /// unread (0: no limit).
    pub token_failures_per_minute: u32,
    /// Browsers' WebSockets (push, signaling, OpenSpace API) are pinged this often; one that
    /// sends nothing, not even a pong, for three of these is closed as gone.
    pub websocket_ping_every: Duration,
}

impl Default for OriginLimits {
    fn default() -> Self {
        OriginLimits {
            header_timeout: Duration::from_secs(10),
            // A browser creates one session and keeps it; ten a minute leaves room for a
            // household behind one address clearing its storage.
            new_sessions_per_minute: 10,
            // Tokens are 256 random bits: no honest client gets twenty wrong in a minute.
            token_failures_per_minute: 20,
            // A browser answers pings by itself; a vanished one (a closed laptop, a dropped
            // network) is noticed within a minute and stops counting as a viewer.
            websocket_ping_every: Duration::from_secs(20),
        }
    }
}

/// Addresses tracked at most. Past this, buckets that have refilled are forgotten; if that is
/// not enough, all are (an attacker with that many addresses is not held back by a per-address
/// limit anyway, and memory must stay bounded).
const MAX_TRACKED: usize = 65_536;

/// A token bucket per client key: `per_minute` tokens, refilled evenly over a minute.
///
/// Kept as the generic cell rate algorithm: per key, only the time at which its bucket will
/// be full again ("theoretical arrival time"). Exact integer time arithmetic, one `Instant`
/// per key.
#[derive(Debug)]
pub struct RateLimiter {
    /// Bucket size; 0 means no limit.
    per_minute: u32,
    /// When each key's bucket is full again.
    full_at: Mutex<HashMap<ClientKey, Instant>>,
}

impl RateLimiter {
    /// A limiter of `per_minute` events per key (0: no limit).
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            full_at: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how long until one is there.
    pub fn take(&self, key: ClientKey) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    /// Whether `key` has a token left, without taking it; if not, how long until it has.
    pub fn check(&self, key: ClientKey) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Time one token takes to come back.
    fn interval(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute
    }

    /// Time an empty bucket takes to fill.
    fn window(&self) -> Duration {
        self.interval() * self.per_minute
    }

    /// With one more token taken at `now`: when the bucket is full again, or how long until
    /// a token is there.
    fn after_one_more(&self, full_at: Option<Instant>, now: Instant) -> Result<Instant, Duration> {
        let next = full_at.map_or(now, |at| at.max(now)) + self.interval();
        let debt = next.saturating_duration_since(now);
        if debt > self.window() {
            Err(debt - self.window())
        } else {
            Ok(next)
        }
    }

    fn take_at(&self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        if full_at.len() >= MAX_TRACKED && !full_at.contains_key(&key) {
            full_at.retain(|_, at| *at > now);
            if full_at.len() >= MAX_TRACKED {
                full_at.clear();
            }
        }
        let next = self.after_one_more(full_at.get(&key).copied(), now)?;
        full_at.insert(key, next);
        Ok(())
    }

    fn check_at(&self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        self.after_one_more(full_at.get(&key).copied(), now)
            .map(|_| ())
    }
}

/// Whole seconds to tell a client to wait (`Retry-After`), at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(last: u8) -> ClientKey {
        ClientKey::of(std::net::IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn a_bucket_allows_its_size_then_refills_evenly() {
        let limiter = RateLimiter::new(6); // one every 10 s
        let start = Instant::now();
        for _ in 0..6 {
            assert_eq!(limiter.take_at(key(1), start), Ok(()));
        }
        let wait = limiter.take_at(key(1), start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert_eq!(limiter.check_at(key(1), start), Err(wait));
        // Another address has its own bucket.
        assert_eq!(limiter.take_at(key(2), start), Ok(()));
        let later = start + Duration::from_secs(10);
        assert_eq!(limiter.check_at(key(1), later), Ok(()));
        assert_eq!(limiter.take_at(key(1), later), Ok(()));
        assert!(limiter.take_at(key(1), later).is_err());
        // Refills never exceed the size.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..6 {
            assert_eq!(limiter.take_at(key(1), much_later), Ok(()));
        }
        assert!(limiter.take_at(key(1), much_later).is_err());
    }

    #[test]
    fn zero_means_no_limit_and_checking_takes_nothing() {
        let unlimited = RateLimiter::new(0);
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(unlimited.take_at(key(1), now), Ok(()));
        }
        let limiter = RateLimiter::new(1);
        for _ in 0..10 {
            assert_eq!(limiter.check_at(key(1), now), Ok(()));
        }
        assert_eq!(limiter.take_at(key(1), now), Ok(()));
        assert!(limiter.check_at(key(1), now).is_err());
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let limiter = RateLimiter::new(1);
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let ip = std::net::IpAddr::from(i.to_be_bytes());
            assert_eq!(limiter.take_at(ClientKey::of(ip), now), Ok(()));
        }
        let tracked = limiter.full_at.lock().unwrap().len();
        assert!(tracked <= MAX_TRACKED, "{tracked}");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(6100)), 7);
    }
}
