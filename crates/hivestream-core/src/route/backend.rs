//! Where a router's log partition and ledger live: the seam between the one
//! router and the backends (`serve`'s WAL and ledger file here; JetStream in
//! crate `hivestream-cluster`).

use std::path::PathBuf;
use std::sync::Arc;

use super::ledger::file::FileLedger;
use super::ledger::LedgerStore;
use super::RouterError;
use crate::log::progress::WalProgress;
use crate::log::{LogReader, Pos, WalLogReader};

/// Where a router's log partition and ledger live.
pub trait RouterBackend: Send + Sync {
    /// Loads the partition's ledger (taking the partition over, where
    /// ownership is fenced).
    fn open_ledger(&self) -> Result<Box<dyn LedgerStore>, RouterError>;

    /// A reader of the partition positioned at `from`.
    fn open_reader(&self, from: Pos) -> Result<Box<dyn LogReader>, RouterError>;
}

/// `serve`'s backend: the WAL in `{data_dir}/wal` and the ledger file in
/// `{data_dir}/router/ledger`.
pub struct LocalBackend {
    pub data_dir: PathBuf,
    /// The committer's progress, which the WAL reader follows.
    pub progress: Arc<WalProgress>,
}

impl RouterBackend for LocalBackend {
    fn open_ledger(&self) -> Result<Box<dyn LedgerStore>, RouterError> {
        let mut ledger = FileLedger::open(&self.data_dir.join("router").join("ledger"))?;
        // Rewrite it whole: an entry that reached the file before a failed
        // fsync may not be durable, and the router is about to act on it.
        ledger.compact()?;
        Ok(Box::new(ledger))
    }

    fn open_reader(&self, from: Pos) -> Result<Box<dyn LogReader>, RouterError> {
        let dir = self.data_dir.join("wal");
        Ok(Box::new(WalLogReader::open(
            &dir,
            from,
            Arc::clone(&self.progress),
        )?))
    }
}
