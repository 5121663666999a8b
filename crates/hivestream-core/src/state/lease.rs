//! Leases: who does a job that must have one doer at a time (route a log
//! partition, lead identity, write cohort snapshots).
//!
//! A lease is held by one owner until it is released or not renewed within
//! its TTL; then anyone may claim it. Each successful claim or renewal
//! returns a new token, which grows. A lease is a liveness tool, not the
//! safety net: two owners can overlap briefly (a paused process does not
//! know its lease expired until it looks), so whatever the owner writes is
//! also fenced where it is written (the ledger's compare-and-set, the
//! identity log's expected last sequence). An owner must treat its lease as
//! lost once a TTL has passed since the renewal it last started
//! ([`Lease::expired`]), even before a renewal fails.
//!
//! [`MemoryLeases`] serves a single process (`serve`, unit tests); the
//! cluster keeps leases in a JetStream KV bucket whose `max_age` is the TTL.
//! A test can run [`MemoryLeases`] on a [`ManualClock`], so that a TTL
//! passes when the test says so rather than after a sleep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use thiserror::Error;

/// Why a lease operation could not be carried out (not "held by another":
/// that is a normal answer).
#[derive(Debug, Error)]
#[error("lease store unavailable: {0}")]
pub struct LeaseError(pub String);

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub owner: String,
    /// Grows with every claim and renewal.
    pub token: u64,
    /// When the claim or renewal that produced `token` was started.
    pub since: Instant,
    pub ttl: Duration,
}

impl Lease {
    /// Whether a TTL has passed since the last renewal started: the lease
    /// may be someone else's now.
    pub fn expired(&self) -> bool {
        self.since.elapsed() >= self.ttl
    }
}

/// A lease store.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// The TTL of every lease.
    fn ttl(&self) -> Duration;

    /// Claims `name` for `owner`; `None` while someone holds it.
    async fn claim(&self, name: &str, owner: &str) -> Result<Option<Lease>, LeaseError>;

    /// Extends `lease` by a TTL; `false` when it was lost (expired, or taken
    /// by another owner), after which the owner must stop.
    async fn renew(&self, lease: &mut Lease) -> Result<bool, LeaseError>;

    /// Gives `lease` up so another owner can claim it at once.
    async fn release(&self, lease: Lease) -> Result<(), LeaseError>;

    /// Who holds `name` now, if anyone.
    async fn holder(&self, name: &str) -> Result<Option<String>, LeaseError>;

    /// The leases held now whose names start with `prefix`, with their
    /// holders (a cluster's members hold `member.{node}`).
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, LeaseError>;
}

/// A clock that moves only when told to: a test advances it past a TTL
/// instead of sleeping ([`MemoryLeases::with_clock`]).
///
/// Its instants run ahead of the real clock, so [`Lease::expired`], which
/// reads the real clock, stays false for leases it dated; the store's own
/// answers (`renew`, `claim`, `holder`) follow this clock.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    advanced: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the real time now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            advanced: Mutex::new(Duration::ZERO),
        }
    }

    /// The time it shows.
    pub fn now(&self) -> Instant {
        self.start + *self.advanced.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves it forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.advanced.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
struct Held {
    owner: String,
    token: u64,
    until: Instant,
}

/// Leases inside one process.
#[derive(Debug)]
pub struct MemoryLeases {
    ttl: Duration,
    /// `None`: the real clock.
    clock: Option<Arc<ManualClock>>,
    held: Mutex<(u64, HashMap<String, Held>)>,
}

impl MemoryLeases {
    /// Leases of `ttl` on the real clock.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            clock: None,
            held: Mutex::new((0, HashMap::new())),
        }
    }

    /// Leases of `ttl` on `clock`, which the caller moves.
    pub fn with_clock(ttl: Duration, clock: Arc<ManualClock>) -> Self {
        Self {
            clock: Some(clock),
            ..Self::new(ttl)
        }
    }

    fn now(&self) -> Instant {
        self.clock.as_ref().map_or_else(Instant::now, |c| c.now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<String, Held>)> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Leases for MemoryLeases {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn claim(&self, name: &str, owner: &str) -> Result<Option<Lease>, LeaseError> {
        let since = self.now();
        let mut guard = self.lock();
        let (counter, held) = &mut *guard;
        if held.get(name).is_some_and(|h| h.until > since) {
            return Ok(None);
        }
        *counter += 1;
        let h = Held {
            owner: owner.to_string(),
            token: *counter,
            until: since + self.ttl,
        };
        held.insert(name.to_string(), h);
        Ok(Some(Lease {
            name: name.to_string(),
            owner: owner.to_string(),
            token: *counter,
            since,
            ttl: self.ttl,
        }))
    }

    async fn renew(&self, lease: &mut Lease) -> Result<bool, LeaseError> {
        let since = self.now();
        let mut guard = self.lock();
        let (counter, held) = &mut *guard;
        let Some(h) = held.get_mut(&lease.name) else {
            return Ok(false);
        };
        if h.token != lease.token || h.until <= since {
            return Ok(false);
        }
        *counter += 1;
        h.token = *counter;
        h.until = since + self.ttl;
        lease.token = *counter;
        lease.since = since;
        Ok(true)
    }

    async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        let mut guard = self.lock();
        if guard
            .1
            .get(&lease.name)
            .is_some_and(|h| h.token == lease.token)
        {
            guard.1.remove(&lease.name);
        }
        Ok(())
    }

    async fn holder(&self, name: &str) -> Result<Option<String>, LeaseError> {
        let now = self.now();
        Ok(self
            .lock()
            .1
            .get(name)
            .filter(|h| h.until > now)
            .map(|h| h.owner.clone()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, LeaseError> {
        let now = self.now();
        let mut held: Vec<(String, String)> = self
            .lock()
            .1
            .iter()
            .filter(|(name, h)| name.starts_with(prefix) && h.until > now)
            .map(|(name, h)| (name.clone(), h.owner.clone()))
            .collect();
        held.sort();
        Ok(held)
    }
}
