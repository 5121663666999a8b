//! Client event ids across collectors: an event that carries its own
//! `event_id` is written once within the dedup window, whichever collector
//! each copy reaches.
//!
//! ```text
//!  collector: DEDUP e.<id>? ──Done──▶ answer the stored result, publish nothing
//!                │ absent
//!                ▼
//!  publish the event alone, Nats-Msg-Id = e.<id>, on partition hash(id)   (copies within
//!                │                                                          duplicate_window
//!                ▼                                                          are one message)
//!  worker, reading the partition: create DEDUP e.<id> = {time, user, seq}
//!        the copy whose seq is recorded (the first in the log) is routed; any later copy is dropped
//! ```
//!
//! The collector's look-up spares a known retry the publish and answers it
//! with what was stored; the worker's record is the authority: every copy
//! of an event goes to the same partition, so its router reads them in log
//! order, records the first one's sequence (lowering it with
//! compare-and-set if a later copy was recorded first) and routes only that
//! copy. The decision depends only on the stored record, so a file rebuilt
//! after a crash skips the same copies. The bucket `HS_DEDUP` keeps an id
//! for `dedup_window` and at most `dedup_max_ids` ids (the oldest go first:
//! `discard: old`), about 250 bytes each on each replica.

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use futures::StreamExt;
use hivestream_core::state::dedup::Stored;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

/// Prefix of the message id of an event published alone for its client id.
const MSG_ID_PREFIX: &str = "e.";

/// The message id of event `id` published alone.
pub fn client_msg_id(id: &Uuid) -> String {
    format!("{MSG_ID_PREFIX}{}", id.simple())
}

/// The client event id a message id names, if it is one.
pub fn parse_client_msg_id(msg_id: &str) -> Option<Uuid> {
    Uuid::try_parse(msg_id.strip_prefix(MSG_ID_PREFIX)?).ok()
}

/// What the bucket records for an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub time_ms: i64,
    pub user: Uuid,
    /// Stream sequence of the copy that is routed.
    pub seq: u64,
}

impl Done {
    pub fn stored(&self) -> Stored {
        Stored {
            time_ms: self.time_ms,
            user: self.user,
        }
    }
}

/// The dedup bucket.
#[derive(Clone)]
pub struct KvDedup {
    kv: kv::Store,
}

fn key(id: &Uuid) -> String {
    client_msg_id(id)
}

/// Why the dedup bucket could not be read or written.
#[derive(Debug, Error)]
pub enum DedupError {
    #[error("dedup bucket: cannot read an event id: {0}")]
    Read(#[from] kv::EntryError),
    #[error("dedup bucket: an event id's record is damaged: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("dedup bucket: cannot record an event id: {0}")]
    Create(#[from] kv::CreateError),
    #[error("dedup bucket: cannot lower an event id's recorded copy: {0}")]
    Update(#[from] kv::UpdateError),
}

impl KvDedup {
    pub fn new(kv: kv::Store) -> Self {
        Self { kv }
    }

    async fn get(&self, id: &Uuid) -> Result<Option<(Done, u64)>, DedupError> {
        match self.kv.entry(key(id)).await? {
            Some(e) if e.operation == kv::Operation::Put => {
                let done = serde_json::from_slice(&e.value)?;
                Ok(Some((done, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// What is recorded for each id.
    pub async fn lookup(&self, ids: &[Uuid]) -> Result<Vec<Option<Done>>, DedupError> {
        let found: Vec<Result<Option<(Done, u64)>, DedupError>> =
            futures::stream::iter(ids.iter().copied())
                .map(|id| async move { self.get(&id).await })
                .buffered(32)
                .collect()
                .await;
        found
            .into_iter()
            .map(|r| r.map(|o| o.map(|(d, _)| d)))
            .collect()
    }

    /// Records `done` unless something is recorded already (a collector's
    /// note after its publish; the worker's record decides anyway).
    pub async fn remember(&self, id: &Uuid, done: Done) {
        let value = serde_json::to_vec(&done).expect("serialises");
        let _ = self.kv.create(key(id), value.into()).await;
    }

    /// Worker side: whether the copy of event `id` at `done.seq` is the
    /// one to route (the first in the log), recording it when it is.
    pub async fn first_copy(&self, id: &Uuid, done: Done) -> Result<bool, DedupError> {
        let value: bytes::Bytes = serde_json::to_vec(&done).expect("serialises").into();
        loop {
            match self.kv.create(key(id), value.clone()).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            let Some((recorded, revision)) = self.get(id).await? else {
                continue;
            };
            if recorded.seq <= done.seq {
                return Ok(recorded.seq == done.seq);
            }
            // A later copy was recorded first (by a collector): this one is
            // earlier in the log, so it is the one routed.
            match self.kv.update(key(id), value.clone(), revision).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_message_ids_round_trip() {
        let id = Uuid::from_u128(42);
        let m = client_msg_id(&id);
        assert!(m.starts_with("e."));
        assert_eq!(parse_client_msg_id(&m), Some(id));
        assert_eq!(
            parse_client_msg_id("5f0c1f5e-0a4b-4b7b-9a4e-1234567890ab"),
            None
        );
        assert_eq!(parse_client_msg_id("e.nope"), None);
    }

    #[test]
    fn errors_name_the_bucket_and_what_failed() {
        let damaged = serde_json::from_slice::<Done>(b"{").unwrap_err();
        let e = DedupError::from(damaged);
        assert!(matches!(e, DedupError::Decode(_)));
        assert!(e
            .to_string()
            .starts_with("dedup bucket: an event id's record is damaged: "));
    }
}
