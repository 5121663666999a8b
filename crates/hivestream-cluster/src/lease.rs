//! Leases in the KV bucket `HS_LEASE`, whose `max_age` is the lease TTL: a
//! key written by a claim or a renewal disappears a TTL later unless it is
//! written again.
//!
//! - claim: `create(key, owner)`, which fails while the key exists;
//! - renew: `update(key, owner, revision)`, which fails once the key
//!   expired or was claimed by someone else (a new revision);
//! - release: delete the key if it still has our revision.
//! - list: the keys with a prefix that are held now, with their holders.
//!
//! The revision is the lease's token. Expiry is the server's: a worker
//! paused past the TTL learns on its next renewal (or sooner, from
//! [`Lease::expired`]) that it lost the lease.

use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, CreateErrorKind, DeleteErrorKind, UpdateErrorKind};
use async_trait::async_trait;
use hivestream_core::state::lease::{Lease, LeaseError, Leases};

/// Leases kept in a KV bucket.
#[derive(Clone)]
pub struct KvLeases {
    kv: kv::Store,
    ttl: Duration,
}

impl KvLeases {
    /// `ttl` must be the bucket's `max_age` (checked by [`crate::setup`]).
    pub fn new(kv: kv::Store, ttl: Duration) -> Self {
        Self { kv, ttl }
    }
}

fn err(e: impl std::fmt::Display) -> LeaseError {
    LeaseError(e.to_string())
}

#[async_trait]
impl Leases for KvLeases {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn claim(&self, name: &str, owner: &str) -> Result<Option<Lease>, LeaseError> {
        let since = Instant::now();
        match self.kv.create(name, owner.to_string().into()).await {
            Ok(revision) => Ok(Some(Lease {
                name: name.to_string(),
                owner: owner.to_string(),
                token: revision,
                since,
                ttl: self.ttl,
            })),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    async fn renew(&self, lease: &mut Lease) -> Result<bool, LeaseError> {
        let since = Instant::now();
        if lease.expired() {
            return Ok(false);
        }
        match self
            .kv
            .update(&lease.name, lease.owner.clone().into(), lease.token)
            .await
        {
            Ok(revision) => {
                lease.token = revision;
                lease.since = since;
                Ok(true)
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        match self
            .kv
            .delete_expect_revision(&lease.name, Some(lease.token))
            .await
        {
            Ok(()) => Ok(()),
            // Expired or taken over already: nothing of ours to release.
            Err(e) if e.kind() == DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    async fn holder(&self, name: &str) -> Result<Option<String>, LeaseError> {
        match self.kv.entry(name).await.map_err(err)? {
            Some(e) if e.operation == kv::Operation::Put => {
                Ok(Some(String::from_utf8_lossy(&e.value).into_owned()))
            }
            _ => Ok(None),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, LeaseError> {
        use futures::TryStreamExt;
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let mut out = Vec::new();
        for key in keys.into_iter().filter(|k| k.starts_with(prefix)) {
            if let Some(owner) = self.holder(&key).await? {
                out.push((key, owner));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};
    use async_nats::jetstream::kv::{DeleteError, DeleteErrorKind};

    /// A release (or a cohort delete) fenced by the expected revision
    /// fails with the server's "wrong last sequence", which async-nats
    /// reports as this kind: the release is then a no-op, not an error.
    #[test]
    fn a_fenced_delete_has_the_wrong_revision_kind() {
        let fenced = DeleteError::from(PublishError::new(PublishErrorKind::WrongLastSequence));
        assert_eq!(fenced.kind(), DeleteErrorKind::WrongLastRevision);
        let other = DeleteError::from(PublishError::new(PublishErrorKind::BrokenPipe));
        assert_eq!(other.kind(), DeleteErrorKind::Other);
        let timeout = DeleteError::from(PublishError::new(PublishErrorKind::TimedOut));
        assert_eq!(timeout.kind(), DeleteErrorKind::TimedOut);
    }
}
