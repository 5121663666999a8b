//! Client event ids already acknowledged, so that a retried event is
//! answered with its stored result instead of being written again.
//!
//! A client may give each event its own `event_id` (a UUID). Within the
//! dedup window (`dedup_window`, 24 h by default, and at most
//! `dedup_max_ids` ids, the oldest forgotten first), an event whose id was
//! acknowledged before is answered as accepted, with the `time` and
//! `user_id` stored the first time, and not written again.
//!
//! The ids live in the index database (redb), in the same transactions as
//! the identity links, so they share its durability: applied right after
//! each WAL group commit, durable at least every second together with the
//! WAL position they cover, and replayed from the WAL after a crash (the
//! WAL is never cut above that position). A replay cannot tell client ids
//! from server ones, so it remembers every event id of the replayed span
//! (at most a second of events): harmless, they expire like the rest.
//!
//! Tables: `dedup` id → (time_ms, user, acked_at_ms) and `dedup_age`
//! (acked_at_ms, id) → () for expiry; the count is kept in `meta`.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use uuid::Uuid;

use super::index_db::META;

/// Event id → (time_ms, user, acked_at_ms).
const DEDUP: TableDefinition<[u8; 16], (i64, [u8; 16], i64)> = TableDefinition::new("dedup");
/// (acked_at_ms, event id) → (), oldest first.
const DEDUP_AGE: TableDefinition<(i64, [u8; 16]), ()> = TableDefinition::new("dedup_age");
const COUNT: &str = "dedup_count";

/// What was stored for an event the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub time_ms: i64,
    pub user: Uuid,
}

/// How long and how many ids are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupLimits {
    pub window_ms: i64,
    pub max_ids: u64,
}

impl Default for DedupLimits {
    fn default() -> Self {
        Self {
            window_ms: 24 * 3600 * 1000,
            max_ids: 10_000_000,
        }
    }
}

/// Creates the tables.
pub fn create(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(DEDUP)?;
    txn.open_table(DEDUP_AGE)?;
    Ok(())
}

/// The stored result of each id, if it is remembered.
pub fn lookup(
    txn: &redb::ReadTransaction,
    ids: &[Uuid],
) -> Result<Vec<Option<Stored>>, redb::Error> {
    let table = match txn.open_table(DEDUP) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; ids.len()]),
        Err(e) => return Err(e.into()),
    };
    ids.iter()
        .map(|id| {
            Ok(table.get(id.into_bytes())?.map(|v| {
                let (time_ms, user, _) = v.value();
                Stored {
                    time_ms,
                    user: Uuid::from_bytes(user),
                }
            }))
        })
        .collect()
}

/// Remembers `entries` as acknowledged at `now_ms` (an id already there
/// keeps its first result).
pub fn insert(
    txn: &WriteTransaction,
    entries: &[(Uuid, Stored)],
    now_ms: i64,
) -> Result<(), redb::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(DEDUP)?;
    let mut age = txn.open_table(DEDUP_AGE)?;
    let mut added = 0;
    for (id, s) in entries {
        let key = id.into_bytes();
        if table.get(key)?.is_some() {
            continue;
        }
        table.insert(key, (s.time_ms, s.user.into_bytes(), now_ms))?;
        age.insert((now_ms, key), ())?;
        added += 1;
    }
    let mut meta = txn.open_table(META)?;
    let count = meta.get(COUNT)?.map_or(0, |v| v.value());
    meta.insert(COUNT, count + added)?;
    Ok(())
}

/// Forgets ids acknowledged before the window, then the oldest beyond
/// `max_ids`. Returns how many it forgot.
pub fn prune(txn: &WriteTransaction, limits: DedupLimits, now_ms: i64) -> Result<u64, redb::Error> {
    let mut meta = txn.open_table(META)?;
    let mut count = meta.get(COUNT)?.map_or(0, |v| v.value());
    let mut table = txn.open_table(DEDUP)?;
    let mut age = txn.open_table(DEDUP_AGE)?;
    let cutoff = now_ms - limits.window_ms;
    let mut forgotten = 0;
    loop {
        let Some(oldest) = age.first()? else { break };
        let (at, id) = oldest.0.value();
        drop(oldest);
        if at >= cutoff && count <= limits.max_ids {
            break;
        }
        age.remove((at, id))?;
        table.remove(id)?;
        count = count.saturating_sub(1);
        forgotten += 1;
    }
    meta.insert(COUNT, count)?;
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    fn stored(t: i64) -> Stored {
        Stored {
            time_ms: t,
            user: Uuid::from_u128(t as u128),
        }
    }

    #[test]
    fn remembers_first_results_and_forgets_by_age_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("db")).unwrap();
        let ids: Vec<Uuid> = (0..5u128).map(Uuid::from_u128).collect();
        let txn = db.begin_write().unwrap();
        create(&txn).unwrap();
        insert(&txn, &[(ids[0], stored(10)), (ids[1], stored(11))], 1_000).unwrap();
        insert(&txn, &[(ids[0], stored(99)), (ids[2], stored(12))], 2_000).unwrap();
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let got = lookup(&read, &ids[..4]).unwrap();
        assert_eq!(
            got,
            vec![Some(stored(10)), Some(stored(11)), Some(stored(12)), None]
        );
        drop(read);

        // Window 1.5 s at 2.6 s: the two ids acknowledged at 1 s go.
        let limits = DedupLimits {
            window_ms: 1_500,
            max_ids: 100,
        };
        let txn = db.begin_write().unwrap();
        assert_eq!(prune(&txn, limits, 2_600).unwrap(), 2);
        insert(&txn, &[(ids[3], stored(13)), (ids[4], stored(14))], 3_000).unwrap();
        // At most two ids: the oldest left (acknowledged at 2 s) goes.
        let limits = DedupLimits {
            window_ms: 10_000,
            max_ids: 2,
        };
        assert_eq!(prune(&txn, limits, 3_000).unwrap(), 1);
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let got = lookup(&read, &ids).unwrap();
        assert_eq!(
            got,
            vec![None, None, None, Some(stored(13)), Some(stored(14))]
        );
    }
}
