//! Feeds the identity index from the WAL: the committer owns the WAL, so it
//! is the one that replays it into the index at start-up and after the
//! index failed or was reopened ([`replay_identity`]), and that finds the
//! links and client event ids in each group it commits ([`link_of`],
//! [`event_ids`]).
//!
//! ```text
//!  WAL ──(sync_aliases records)──▶ links ─┐
//!      ──(events with an event_id)▶ ids ──┴─▶ IdentityIndex::apply(.., end)
//! ```
//!
//! A replay cannot tell client event ids from server ones, so it feeds every
//! event id of the replayed span (at most about a second of events, the gap
//! between durable commits of the index): harmless, they expire like the
//! rest.

use std::path::Path;

use hivestream_wal::{Lsn, WalError, WalReader};
use thiserror::Error;
use uuid::Uuid;

use crate::log::record::{DataType, Record};
use crate::state::dedup::Stored;
use crate::state::identity::{link_of_line, IdentityError, IdentityIndex, Link};

/// Why the index could not be brought up to the WAL's end.
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("identity replay: reading the WAL: {0}")]
    Wal(#[from] WalError),
    #[error(transparent)]
    Index(#[from] IdentityError),
}

/// Applies every link and client event id in the WAL (`wal_dir`) from the
/// index's applied position up to `end`, then makes the index durable.
pub fn replay_identity(
    index: &mut IdentityIndex,
    wal_dir: &Path,
    end: Lsn,
) -> Result<(), ReplayError> {
    if index.applied() < end {
        let mut reader = WalReader::open(wal_dir, index.applied())?;
        let mut links = Vec::new();
        let mut ids = Vec::new();
        while let Some((_, payload)) = reader.next(end)? {
            if let Some(link) = link_of(payload) {
                links.push(link);
            } else if let Some(id) = event_ids(payload) {
                ids.push(id);
            }
        }
        index.apply(&links, &ids, end)?;
    }
    Ok(index.make_durable()?)
}

/// The link a WAL payload carries, if it is a `sync_aliases` record.
pub fn link_of(payload: &[u8]) -> Option<Link> {
    let rec = Record::decode(payload).ok()?;
    if rec.data_type != DataType::SyncAliases {
        return None;
    }
    link_of_line(rec.line)
}

/// The `(event_id, stored result)` of an events record read back from the
/// WAL.
pub fn event_ids(payload: &[u8]) -> Option<(Uuid, Stored)> {
    let rec = Record::decode(payload).ok()?;
    if rec.data_type != DataType::Events {
        return None;
    }
    let (id, user) = crate::collect::event::line_ids(rec.line)?;
    Some((
        id,
        Stored {
            time_ms: rec.time_ms,
            user,
        },
    ))
}

#[cfg(test)]
mod tests;
