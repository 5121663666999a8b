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

use std::collections::HashMap;
use std::sync::Mutex;
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
    held: Mutex<(u64, HashMap<String, Held>)>,
}

impl MemoryLeases {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            held: Mutex::new((0, HashMap::new())),
        }
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
        let since = Instant::now();
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
        let since = Instant::now();
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
        let now = Instant::now();
        Ok(self
            .lock()
            .1
            .get(name)
            .filter(|h| h.until > now)
            .map(|h| h.owner.clone()))
    }
}
