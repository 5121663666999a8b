//! The conformance suite (`hivestream_core::conformance`) on `serve`'s
//! backends: the WAL, the ledger file and in-process leases.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hivestream_core::conformance::{self, LogUnderTest};
use hivestream_core::log::progress::WalProgress;
use hivestream_core::log::{LogReader, Pos, WalLogReader};
use hivestream_core::route::ledger::file::FileLedger;
use hivestream_core::route::ledger::LedgerStore;
use hivestream_core::state::lease::MemoryLeases;
use hivestream_wal::{Wal, WalOptions};

struct WalUnderTest {
    dir: tempfile::TempDir,
    wal: Mutex<Wal>,
    progress: Arc<WalProgress>,
}

#[async_trait]
impl LogUnderTest for WalUnderTest {
    async fn append(&self, _idem: &str, records: Vec<Vec<u8>>) -> Result<(), String> {
        let mut wal = self.wal.lock().unwrap();
        for r in &records {
            wal.append(r).map_err(|e| e.to_string())?;
        }
        let end = wal.commit().map_err(|e| e.to_string())?;
        self.progress.commit(end, 0);
        Ok(())
    }

    async fn reader(&self, from: Pos) -> Box<dyn LogReader> {
        let dir = self.dir.path().join("wal");
        Box::new(WalLogReader::open(&dir, from, Arc::clone(&self.progress)).unwrap())
    }

    fn dedups(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn wal_log() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path().join("wal"), WalOptions::default()).unwrap();
    let log = WalUnderTest {
        dir,
        wal: Mutex::new(wal),
        progress: Arc::new(WalProgress::new(Arc::default())),
    };
    conformance::log(&log).await;
}

#[test]
fn file_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    conformance::ledger(
        &mut || FileLedger::open(&path).map(|l| Box::new(l) as Box<dyn LedgerStore>),
        false,
    );
}

#[tokio::test]
async fn memory_leases() {
    conformance::leases(&MemoryLeases::new(Duration::from_millis(300))).await;
}

#[tokio::test]
async fn redb_cohorts() {
    let dir = tempfile::tempdir().unwrap();
    let db = hivestream_core::state::index_db::IndexDb::open(&dir.path().join("i.redb"), 1 << 20)
        .unwrap();
    let workspace = uuid::Uuid::new_v4();
    let store = hivestream_core::state::cohorts::CohortStore::new(db, workspace).unwrap();
    conformance::cohorts(&store, "conf ", workspace).await;
}
