//! Router tests on an in-memory log: a file rebuilt after a restart is
//! uploaded only when it is byte for byte its seal.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::ledger::file::FileLedger;
use super::ledger::LedgerStore;
use super::*;
use crate::log::record::{DataType, Record};
use crate::log::Pos;

/// A log partition held in memory.
struct VecReader {
    records: Vec<(Pos, Vec<u8>)>,
    next: usize,
}

impl LogReader for VecReader {
    fn next(&mut self) -> Result<Option<(Pos, &[u8])>, LogError> {
        let Some((pos, payload)) = self.records.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some((*pos, payload)))
    }

    fn position(&self) -> Pos {
        self.records
            .get(self.next)
            .map_or_else(|| self.records.last().map_or(0, |r| r.0 + 1), |r| r.0)
    }

    fn caught_up(&self) -> bool {
        self.next == self.records.len()
    }

    fn release_below(&mut self, _pos: Pos) {}
}

struct VecBackend {
    ledger: PathBuf,
    records: Vec<(Pos, Vec<u8>)>,
}

impl RouterBackend for VecBackend {
    fn open_ledger(&self) -> Result<Box<dyn LedgerStore>, RouterError> {
        Ok(Box::new(FileLedger::open(&self.ledger)?))
    }

    fn open_reader(&self, from: Pos) -> Result<Box<dyn LogReader>, RouterError> {
        let records = self
            .records
            .iter()
            .filter(|r| r.0 >= from)
            .cloned()
            .collect();
        Ok(Box::new(VecReader { records, next: 0 }))
    }
}

fn event(i: u64, data_type: DataType) -> Vec<u8> {
    let line = format!(r#"{{"i":{i}}}"#);
    let mut out = Vec::new();
    Record {
        data_type,
        time_ms: 1_795_000_000_000,
        line: line.as_bytes(),
    }
    .encode(&mut out);
    out
}

/// Opens a router over `records`, lets it route and seal everything (input
/// closed, no shutdown grace) and returns the jobs it sent.
fn route_all(dir: &Path, records: Vec<(Pos, Vec<u8>)>, pool: &DeflatePool) -> Vec<UploadJob> {
    let base = RouterBase {
        settings: RouterSettings {
            flush_interval: Duration::from_secs(3600),
            max_file_bytes: 1 << 20,
            compression_level: 4,
            upload_concurrency: 1,
            shutdown_timeout: Duration::ZERO,
        },
        prefix: String::new(),
        deflate: pool.clone(),
    };
    let cfg = base.router(dir.join("spool"), WorkerId::parse("p00").unwrap());
    let signals = Arc::new(RouterSignals::default());
    signals.close_input();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, done_rx) = mpsc::channel();
    let links = RouterLinks {
        signals,
        uploads: tx,
        done_tx,
    };
    let backend = VecBackend {
        ledger: dir.join("ledger"),
        records,
    };
    let mut router = Router::open(cfg, links, &backend).unwrap();
    router.run(&done_rx).unwrap();
    let mut jobs = Vec::new();
    while let Ok(job) = rx.try_recv() {
        jobs.push(job);
    }
    jobs
}

fn records(positions: &[Pos]) -> Vec<(Pos, Vec<u8>)> {
    positions
        .iter()
        .map(|&p| (p, event(p, DataType::Events)))
        .collect()
}

#[test]
fn a_rebuild_is_uploaded_only_when_it_matches_its_seal() {
    let pool = DeflatePool::new(1);
    let dir = tempfile::tempdir().unwrap();
    let first = route_all(dir.path(), records(&[1, 2, 3]), &pool);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind, UploadKind::Upload);
    let key = first[0].key.clone();
    let bytes = std::fs::read(&first[0].path).unwrap();

    // Same records: the same bytes to the same key.
    let again = route_all(dir.path(), records(&[1, 2, 3]), &pool);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].kind, &again[0].key), (UploadKind::Upload, &key));
    assert_eq!(std::fs::read(&again[0].path).unwrap(), bytes);

    // A record inside the seal is gone: nothing is uploaded to the key.
    let lost_middle = route_all(dir.path(), records(&[1, 3]), &pool);
    assert_eq!(lost_middle.len(), 1);
    assert_eq!(
        (lost_middle[0].kind, &lost_middle[0].key),
        (UploadKind::VerifyExists, &key)
    );

    // The seal's last record is gone: the rebuild ends when the reader
    // passes the seal's end, and is not uploaded either.
    let mut passed = records(&[1, 2]);
    passed.push((4, event(4, DataType::SyncAliases)));
    let lost_end = route_all(dir.path(), passed, &pool);
    let verify: Vec<&UploadJob> = lost_end.iter().filter(|j| j.key == key).collect();
    assert_eq!(verify.len(), 1);
    assert_eq!(verify[0].kind, UploadKind::VerifyExists);
    assert!(lost_end
        .iter()
        .any(|j| j.kind == UploadKind::Upload && j.key.starts_with("type=sync_aliases/")));
}
