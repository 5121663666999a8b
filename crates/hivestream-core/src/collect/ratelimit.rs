//! An optional request rate limit per client IP address (`rate_limit`
//! requests per second, bursts of twice that), for collectors that take
//! traffic from anyone. Over the limit a request gets 429 with
//! `Retry-After`.
//!
//! The client's address is the connection's peer, or, behind a load
//! balancer, the right-most address of `client_ip_header` (e.g.
//! `x-forwarded-for`: the address the trusted proxy in front of us saw).
//! Only set that header when such a proxy always sets it: otherwise a
//! client could pick its own address.
//!
//! Buckets live in memory, at most [`MAX_CLIENTS`] of them; when full, the
//! least recently seen half is dropped (their clients start with a full
//! bucket again).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap;

/// Most client addresses tracked at once.
pub const MAX_CLIENTS: usize = 100_000;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    header: Option<String>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `rate` requests per second per address; `header` names the trusted
    /// proxy's client-address header.
    pub fn new(rate: f64, header: Option<String>) -> Self {
        Self {
            rate,
            burst: (rate * 2.0).max(1.0),
            header: header.map(|h| h.to_ascii_lowercase()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The client's address for this request.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let Some(name) = &self.header else {
            return peer;
        };
        headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok())
            .or(peer)
    }

    /// Takes a token for `client`; `Err(seconds)` to wait when there is none.
    pub fn check(&self, client: IpAddr) -> Result<(), u32> {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: IpAddr, now: Instant) -> Result<(), u32> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            buckets.retain(|_, b| b.at > cutoff);
        }
        let b = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_per_client() {
        let l = RateLimiter::new(2.0, None);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(l.check_at(a, t0).is_ok(), "a burst of twice the rate");
        }
        assert_eq!(l.check_at(a, t0), Err(1));
        assert!(
            l.check_at(b, t0).is_ok(),
            "another client has its own bucket"
        );
        assert!(
            l.check_at(a, t0 + Duration::from_millis(600)).is_ok(),
            "refilled"
        );
    }

    #[test]
    fn the_proxy_header_names_the_client_only_when_configured() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 10.0.0.9".parse().unwrap());
        let peer: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
        let direct = RateLimiter::new(1.0, None);
        assert_eq!(
            direct.client(peer, &h),
            peer,
            "the header is ignored unless trusted"
        );
        let proxied = RateLimiter::new(1.0, Some("X-Forwarded-For".into()));
        assert_eq!(proxied.client(peer, &h), Some("10.0.0.9".parse().unwrap()));
        assert_eq!(proxied.client(peer, &HeaderMap::new()), peer);
    }
}
