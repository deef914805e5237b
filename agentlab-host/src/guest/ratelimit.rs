//! Token buckets for the bootstrap routes: one per presented token (the configured rate) and a
//! looser one per source address (`ADDRESS_FACTOR` times the rate), so many sandboxes behind
//! one address (fake backend, NAT) each get their own budget while one token hammering the
//! route, or one address spraying tokens, is still limited.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The per-address budget is this many times the per-token budget.
pub const ADDRESS_FACTOR: u32 = 16;

/// Entries idle this long are dropped when a map grows large.
const IDLE: Duration = Duration::from_secs(120);

#[derive(Debug)]
struct Buckets<K> {
    per_minute: u32,
    map: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, (_, t)| now.duration_since(*t) < IDLE);
        }
        let (tokens, last) = map.entry(key).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(cap);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - *tokens) / rate).ceil().max(1.0),
            ))
        }
    }
}

/// Limits bootstrap requests per token and (more loosely) per source address.
#[derive(Debug)]
pub struct RateLimiter {
    per_token: Buckets<String>,
    per_address: Buckets<IpAddr>,
}

impl RateLimiter {
    /// `per_minute` requests per minute per token (burst the same) and `ADDRESS_FACTOR` times
    /// that per source address.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_token: Buckets::new(per_minute),
            per_address: Buckets::new(per_minute.max(1).saturating_mul(ADDRESS_FACTOR)),
        }
    }

    /// The per-address check (before the body is read): `Ok(())` or `Err(retry_after)`.
    pub fn check_address(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.per_address.check(ip, now)
    }

    /// The per-token check; `token_key` is a digest of the presented token and vmid (never
    /// the token itself).
    pub fn check_token(&self, token_key: String, now: Instant) -> Result<(), Duration> {
        self.per_token.check(token_key, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_addresses_are_looser() {
        let rl = RateLimiter::new(2);
        let t0 = Instant::now();
        assert!(rl.check_token("a".into(), t0).is_ok());
        assert!(rl.check_token("a".into(), t0).is_ok());
        assert_eq!(
            rl.check_token("a".into(), t0).unwrap_err(),
            Duration::from_secs(30)
        );
        assert!(rl.check_token("b".into(), t0).is_ok());
        assert!(
            rl.check_token("a".into(), t0 + Duration::from_secs(31))
                .is_ok()
        );
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..2 * ADDRESS_FACTOR {
            assert!(rl.check_address(ip, t0).is_ok());
        }
        assert!(rl.check_address(ip, t0).is_err());
        assert!(rl.check_address("10.77.0.6".parse().unwrap(), t0).is_ok());
    }
}
