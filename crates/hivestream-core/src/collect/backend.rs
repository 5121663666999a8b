//! What the HTTP API writes to and reads from, behind two small traits, so
//! that the same handlers serve `serve` (the local committer and index) and
//! the cluster's stateless `collect` (JetStream).
//!
//! - [`Ingest`]: make a batch of records durable (the 2xx waits for it),
//!   resolving the users of alias-only events; read a user's aliases; say
//!   whether writes are accepted now (`/readyz`).
//! - [`CohortApi`]: cohort CRUD (each change makes a `segment` snapshot due).

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;
use uuid::Uuid;

use crate::log::ingest::{Appender, Batch, CommitError, Committed};
use crate::log::progress::Admission;
use crate::state::cohorts::{Cohort, CohortError, CohortInput, CohortStore};
use crate::state::identity::{aliases_of, IdentityError};
use crate::state::index_db::IndexDb;

/// An alias of a user: `(tag, id, priority)`.
pub type AliasEntry = (String, String, i64);

/// Why writes are refused right now: `(message, cause)` for the 503.
pub type NotReady = (&'static str, &'static str);

/// Why a user's aliases could not be read (a 503: the next try can work).
#[derive(Debug, Error)]
pub enum AliasesError {
    /// The local identity index failed.
    #[error(transparent)]
    Index(#[from] IdentityError),
    /// The blocking task reading the local index died.
    #[error("index read task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The mode's remote identity service gave no answer (cluster mode:
    /// the identity leader).
    #[error(transparent)]
    Remote(Box<dyn std::error::Error + Send + Sync>),
}

/// Where records go.
#[async_trait]
pub trait Ingest: Send + Sync + 'static {
    /// Makes `batch` durable, all of it or nothing; resolves once it is,
    /// with the users chosen for its alias-only events in push order and
    /// the retries of acknowledged events it did not write again.
    async fn append(&self, batch: Batch) -> Result<Committed, CommitError>;

    /// Every alias linked to `user`, as of every acknowledged identify.
    async fn aliases_of(&self, user: Uuid) -> Result<Vec<AliasEntry>, AliasesError>;

    /// `Ok` while writes are accepted.
    fn readiness(&self) -> Result<(), NotReady>;
}

/// Cohort metadata.
#[async_trait]
pub trait CohortApi: Send + Sync + 'static {
    async fn create(&self, input: CohortInput, now_ms: i64) -> Result<Cohort, CohortError>;
    async fn get(&self, id: Uuid) -> Result<Cohort, CohortError>;
    /// Live cohorts ordered by code.
    async fn list(&self) -> Result<Vec<Cohort>, CohortError>;
    async fn patch(&self, id: Uuid, input: CohortInput, now_ms: i64)
        -> Result<Cohort, CohortError>;
    /// Deletes a cohort; returns it as it was.
    async fn delete(&self, id: Uuid) -> Result<Cohort, CohortError>;
}

/// `serve`'s ingest: the WAL committer and the local identity index.
pub struct LocalIngest {
    pub appender: Appender,
    pub db: Arc<IndexDb>,
    pub admission: Arc<Admission>,
}

#[async_trait]
impl Ingest for LocalIngest {
    async fn append(&self, batch: Batch) -> Result<Committed, CommitError> {
        self.appender.append(batch).await
    }

    async fn aliases_of(&self, user: Uuid) -> Result<Vec<AliasEntry>, AliasesError> {
        let db = Arc::clone(&self.db);
        let found = tokio::task::spawn_blocking(move || aliases_of(&db, &user)).await??;
        Ok(found)
    }

    fn readiness(&self) -> Result<(), NotReady> {
        self.admission.refusal().map_or(Ok(()), Err)
    }
}

/// Runs a synchronous store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: &CohortStore,
    f: impl FnOnce(&CohortStore) -> Result<T, CohortError> + Send + 'static,
) -> Result<T, CohortError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|_| CohortError::Db("store task failed".into()))?
}

#[async_trait]
impl CohortApi for CohortStore {
    async fn create(&self, input: CohortInput, now_ms: i64) -> Result<Cohort, CohortError> {
        blocking(self, move |s| s.create(input, now_ms)).await
    }

    async fn get(&self, id: Uuid) -> Result<Cohort, CohortError> {
        blocking(self, move |s| s.get(&id)).await
    }

    async fn list(&self) -> Result<Vec<Cohort>, CohortError> {
        blocking(self, |s| s.list()).await
    }

    async fn patch(
        &self,
        id: Uuid,
        input: CohortInput,
        now_ms: i64,
    ) -> Result<Cohort, CohortError> {
        blocking(self, move |s| s.patch(&id, input, now_ms)).await
    }

    async fn delete(&self, id: Uuid) -> Result<Cohort, CohortError> {
        blocking(self, move |s| s.delete(&id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_read_failures_keep_their_cause_s_message() {
        let index = AliasesError::from(IdentityError::Db("table missing".into()));
        assert_eq!(index.to_string(), "identity index: table missing");
        let remote = AliasesError::Remote("no identity decision within 2s: x".into());
        assert_eq!(remote.to_string(), "no identity decision within 2s: x");
    }
}
