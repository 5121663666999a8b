//! The redb database behind the identity index and the cohort store, and
//! its recovery from I/O errors.
//!
//! redb latches the first failed read, write or sync (a full disk, say):
//! every later operation fails with "previous I/O error" until the database
//! is closed and opened again. [`IndexDb`] makes that reopen possible while
//! several parts of the server share the database: they take a short-lived
//! handle per operation ([`IndexDb::handle`]) and, when an operation fails,
//! ask for a reopen of the generation they used ([`IndexDb::reopen_after`]),
//! so many failures of one generation cause one reopen.
//!
//! Invariant: a reopen discards commits made with `Durability::None` since
//! the last durable one. Whoever keeps state derived from such commits (the
//! identity index) compares [`IndexDb::generation`] before each use and
//! rebuilds that state when it moved.
//!
//! A leaf of `state/`: the identity index, the dedup store and the cohort
//! store build on it, never the other way round. It owns the schema's
//! shared table ([`META`]) and its own error type.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};
use thiserror::Error;

/// Counters and positions of every store in the database, one `u64` per
/// name: the identity index's `applied_lsn`, the dedup store's
/// `dedup_count`, the cohort store's `cohort_next_code`,
/// `cohort_generation`, `snapshot_generation` and `snapshot_at_ms`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Why the database could not be opened or used.
#[derive(Debug, Error)]
pub enum IndexDbError {
    #[error("{}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("{} is closed after an I/O error and could not be reopened yet", .0.display())]
    Closed(PathBuf),
    #[error("reopen: the index is still in use; will retry")]
    InUse,
}

/// How long a reopen waits for operations still holding the old handle.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A reopenable redb database.
pub struct IndexDb {
    path: PathBuf,
    cache_bytes: usize,
    current: RwLock<Option<Arc<Database>>>,
    generation: AtomicU64,
}

fn open_file(path: &Path, cache_bytes: usize) -> Result<Database, IndexDbError> {
    redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|source| IndexDbError::Open {
            path: path.to_path_buf(),
            source,
        })
}

impl IndexDb {
    /// Opens (or creates) the database with a page cache of `cache_bytes`
    /// (redb's default of 1 GiB would let memory grow with the index).
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Arc<Self>, IndexDbError> {
        let db = open_file(path, cache_bytes)?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            cache_bytes,
            current: RwLock::new(Some(Arc::new(db))),
            generation: AtomicU64::new(0),
        }))
    }

    /// Bumped by every reopen.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The database for one operation, with its generation. Do not keep the
    /// handle beyond the operation: a reopen waits for it.
    pub fn handle(&self) -> Result<(u64, Arc<Database>), IndexDbError> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(db) => Ok((self.generation(), Arc::clone(db))),
            None => Err(IndexDbError::Closed(self.path.clone())),
        }
    }

    /// Runs one operation on a handle; when it fails in a way `is_storage`
    /// calls a storage error, reopens the database (redb fails every later
    /// operation after an I/O error until then), so that the next call can
    /// succeed once the cause, a full disk say, is gone.
    pub fn run<T, E: From<IndexDbError> + std::fmt::Display>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, E>,
        is_storage: impl FnOnce(&E) -> bool,
    ) -> Result<T, E> {
        let (generation, db) = self.handle()?;
        let result = op(&db);
        drop(db);
        if let Err(e) = &result {
            if is_storage(e) {
                tracing::warn!(error = %e, "index operation failed; reopening the index");
                if let Err(e) = self.reopen_after(generation) {
                    tracing::warn!(error = %e, "index reopen failed; will retry");
                }
            }
        }
        result
    }

    /// Closes and reopens the database, unless it was already reopened
    /// since `seen` (the generation of the handle whose operation failed).
    pub fn reopen_after(&self, seen: u64) -> Result<(), IndexDbError> {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        if self.generation() != seen && guard.is_some() {
            return Ok(());
        }
        if let Some(old) = guard.take() {
            if let Err(old) = wait_sole_owner(old) {
                *guard = Some(old);
                return Err(IndexDbError::InUse);
            }
        }
        let db = open_file(&self.path, self.cache_bytes)?;
        *guard = Some(Arc::new(db));
        self.generation.fetch_add(1, Ordering::AcqRel);
        crate::metrics::METRICS.index_reopens.inc();
        tracing::warn!(path = %self.path.display(), "index database reopened after an error");
        Ok(())
    }
}

/// Drops `db` once no operation holds it (redb keeps the file locked while
/// any handle lives, so the new open would fail), or gives it back.
fn wait_sole_owner(mut db: Arc<Database>) -> Result<(), Arc<Database>> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        match Arc::try_unwrap(db) {
            Ok(inner) => {
                drop(inner);
                return Ok(());
            }
            Err(still_shared) if Instant::now() < deadline => {
                db = still_shared;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(still_shared) => return Err(still_shared),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, TableDefinition};

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    #[test]
    fn reopen_keeps_durable_data_and_happens_once_per_generation() {
        let dir = tempfile::tempdir().unwrap();
        let db = IndexDb::open(&dir.path().join("x.redb"), 1 << 20).unwrap();
        let (g0, h) = db.handle().unwrap();
        let txn = h.begin_write().unwrap();
        txn.open_table(T).unwrap().insert("a", 1).unwrap();
        txn.commit().unwrap();
        drop(h);
        db.reopen_after(g0).unwrap();
        assert_eq!(db.generation(), g0 + 1);
        // A second failure seen on the old generation does not reopen again.
        db.reopen_after(g0).unwrap();
        assert_eq!(db.generation(), g0 + 1);
        let (_, h) = db.handle().unwrap();
        let txn = h.begin_read().unwrap();
        assert_eq!(
            txn.open_table(T)
                .unwrap()
                .get("a")
                .unwrap()
                .unwrap()
                .value(),
            1
        );
    }

    #[test]
    fn reopen_waits_for_handles_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let db = IndexDb::open(&dir.path().join("x.redb"), 1 << 20).unwrap();
        let (g0, h) = db.handle().unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(h);
        });
        db.reopen_after(g0).unwrap();
        holder.join().unwrap();
        assert_eq!(db.generation(), g0 + 1);
    }
}
