//! The local ledger of `serve`: a small append-only file (same CRC32C
//! frames as the WAL, JSON payloads) that makes sealing decisions and
//! progress durable.
//!
//! Entries:
//! - `Seal`: file `id` of `partition` holds exactly the partition's records
//!   with LSN in `start..=end` and goes to `key`. Written and fsync'd
//!   *before* the upload starts, so a replay after a crash rebuilds the same
//!   bytes and the same key, whatever made the router seal (size, age,
//!   shutdown).
//! - `Done`: file `id` is in the bucket. Not synced on its own: losing it
//!   only means a re-upload of identical bytes to the same key.
//! - `Checkpoint`: every record below `lsn` is in an uploaded file, so WAL
//!   segments below it may be deleted; synced before they are.
//!
//! Seals stay in the ledger while `end >= checkpoint` (done or not): on
//! replay from the checkpoint they tell which records are already in a file.
//! The ledger is rewritten (temp file, fsync, rename, fsync dir) when it
//! grows past [`COMPACT_BYTES`], keeping only what is still needed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Entry, LedgerError, LedgerState, LedgerStore, Seal};
use crate::log::Pos;
use hivestream_wal::frame::{decode_frame, encode_frame};

/// Rewrite the ledger once it is this large.
pub const COMPACT_BYTES: u64 = 1 << 20;

/// The open ledger file.
pub struct FileLedger {
    path: PathBuf,
    file: File,
    size: u64,
    pub state: LedgerState,
    buf: Vec<u8>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FileLedger {
    /// Opens the ledger, replaying its entries and cutting a torn tail.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(path)(e)),
        };
        let mut state = LedgerState::default();
        let mut pos = 0;
        while let Ok(Some((payload, used))) = decode_frame(&data[pos..]) {
            let entry: Entry = serde_json::from_slice(payload).map_err(|e| {
                LedgerError::Corrupt(format!("{}: entry at byte {pos}: {e}", path.display()))
            })?;
            state.apply(entry);
            pos += used;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        if pos < data.len() {
            tracing::warn!(path = %path.display(), cut = data.len() - pos, "ledger: cutting torn tail");
            file.set_len(pos as u64)
                .and_then(|()| file.sync_all())
                .map_err(io(path))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size: pos as u64,
            state,
            buf: Vec::new(),
        })
    }

    fn stage(&mut self, entry: &Entry) {
        let json = serde_json::to_vec(entry).expect("ledger entries serialise");
        encode_frame(&json, &mut self.buf);
    }

    fn write(&mut self, sync: bool) -> Result<(), LedgerError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        self.file.write_all(&self.buf).map_err(io(&path))?;
        if sync {
            self.file.sync_data().map_err(io(&path))?;
        }
        self.size += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl LedgerStore for FileLedger {
    fn state(&self) -> &LedgerState {
        &self.state
    }

    fn next_id(&mut self) -> u64 {
        self.state.take_id()
    }

    /// Records a seal durably.
    fn seal(&mut self, seal: Seal) -> Result<(), LedgerError> {
        let entry = Entry::Seal(seal);
        self.stage(&entry);
        self.write(true)?;
        self.state.apply(entry);
        Ok(())
    }

    /// Records uploads (not synced; see the module doc).
    fn done(&mut self, ids: &[u64]) -> Result<(), LedgerError> {
        for &id in ids {
            self.stage(&Entry::Done(id));
        }
        self.write(false)?;
        for &id in ids {
            self.state.apply(Entry::Done(id));
        }
        Ok(())
    }

    /// Records a checkpoint durably; compacts when the file is large.
    fn checkpoint(&mut self, pos: Pos) -> Result<(), LedgerError> {
        let entry = Entry::Checkpoint {
            lsn: pos,
            next_id: self.state.next_id,
        };
        self.stage(&entry);
        self.write(true)?;
        self.state.apply(entry);
        if self.size > COMPACT_BYTES {
            self.compact()?;
        }
        Ok(())
    }
}

impl FileLedger {
    /// Rewrites the ledger with only what is still needed (temp file,
    /// fsync, rename, fsync of the directory).
    pub fn compact(&mut self) -> Result<(), LedgerError> {
        let tmp = self.path.with_extension("tmp");
        let mut buf = Vec::new();
        let cp = Entry::Checkpoint {
            lsn: self.state.checkpoint,
            next_id: self.state.next_id,
        };
        encode_frame(&serde_json::to_vec(&cp).expect("serialises"), &mut buf);
        for (seal, done) in self.state.seals.values() {
            encode_frame(
                &serde_json::to_vec(&Entry::Seal(seal.clone())).expect("serialises"),
                &mut buf,
            );
            if *done {
                encode_frame(
                    &serde_json::to_vec(&Entry::Done(seal.id)).expect("serialises"),
                    &mut buf,
                );
            }
        }
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&buf)
            .and_then(|()| f.sync_all())
            .map_err(io(&tmp))?;
        crate::failpoint::hit("ledger.compact_before_rename");
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        self.size = buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::DataType;
    use crate::route::ledger::LedgerStore;

    fn seal(id: u64, start: u64, end: u64) -> Seal {
        Seal {
            id,
            data_type: DataType::Events,
            hour: Some(5),
            start,
            end,
            key: format!("k{id}"),
            records: 1,
        }
    }

    #[test]
    fn replay_and_compaction_keep_what_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let mut l = FileLedger::open(&path).unwrap();
        l.seal(seal(0, 0, 10)).unwrap();
        l.seal(seal(1, 5, 20)).unwrap();
        l.seal(seal(2, 30, 40)).unwrap();
        l.done(&[0, 1]).unwrap();
        l.checkpoint(15).unwrap();
        assert_eq!(
            l.state.seals.keys().copied().collect::<Vec<_>>(),
            vec![1, 2]
        );
        l.compact().unwrap();
        drop(l);
        let l = FileLedger::open(&path).unwrap();
        assert_eq!(l.state.checkpoint, 15);
        assert_eq!(l.state.next_id, 3);
        assert_eq!(l.state.seals[&1], (seal(1, 5, 20), true));
        assert_eq!(l.state.seals[&2], (seal(2, 30, 40), false));
        assert_eq!(l.state.min_pending_start(), Some(30));
    }

    #[test]
    fn torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let mut l = FileLedger::open(&path).unwrap();
        l.seal(seal(0, 0, 10)).unwrap();
        drop(l);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let mut l = FileLedger::open(&path).unwrap();
        assert_eq!(l.state.seals.len(), 1);
        l.seal(seal(1, 11, 12)).unwrap();
        drop(l);
        assert_eq!(FileLedger::open(&path).unwrap().state.seals.len(), 2);
    }

    /// A ledger byte for byte as the version that stored
    /// `Seal.data_type` as a `String` wrote it, by [`write_v1_steps`].
    const V1_LEDGER: &[u8] = include_bytes!("../../../tests/fixtures/file-ledger-v1.bin");

    fn v1_seal(id: u64, data_type: DataType, span: (u64, u64), file: &str, records: u64) -> Seal {
        let hour = data_type.is_hourly().then_some(491_234);
        let dir = match hour {
            Some(_) => format!(
                "type={}/year=2026/month=01/day=15/hour=02",
                data_type.name()
            ),
            None => format!("type={}", data_type.name()),
        };
        Seal {
            id,
            data_type,
            hour,
            start: span.0,
            end: span.1,
            key: format!("{dir}/{file}-n2.jsonl.gz"),
            records,
        }
    }

    /// The seals of the fixture: 9905 is done and below the checkpoint.
    fn v1_seals() -> [Seal; 4] {
        [
            v1_seal(
                9905,
                DataType::Events,
                (180_000, 184_466),
                "1768442410000-0c5d7e21",
                4467,
            ),
            v1_seal(
                9907,
                DataType::Events,
                (184_467, 185_901),
                "1768442460000-3f2a9c1e",
                1203,
            ),
            v1_seal(
                9908,
                DataType::SyncAliases,
                (184_470, 185_850),
                "1768442460000-9b01d4aa",
                12,
            ),
            v1_seal(
                9909,
                DataType::Segment,
                (185_000, 185_000),
                "1768442470000-77aa01bc",
                1,
            ),
        ]
    }

    /// What the fixture's ledger went through.
    fn write_v1_steps(l: &mut FileLedger) {
        let [s9905, s9907, s9908, s9909] = v1_seals();
        l.seal(s9905).unwrap();
        l.done(&[9905]).unwrap();
        l.seal(s9907).unwrap();
        l.seal(s9908).unwrap();
        l.seal(s9909).unwrap();
        l.done(&[9909]).unwrap();
        l.checkpoint(184_467).unwrap();
    }

    #[test]
    fn opens_a_ledger_written_by_an_earlier_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        fs::write(&path, V1_LEDGER).unwrap();
        let l = FileLedger::open(&path).unwrap();
        let [_, s9907, s9908, s9909] = v1_seals();
        assert_eq!(l.state.checkpoint, 184_467);
        assert_eq!(l.state.next_id, 9910);
        let seals: Vec<_> = l.state.seals.values().cloned().collect();
        assert_eq!(seals, vec![(s9907, false), (s9908, false), (s9909, true)]);
        assert_eq!(l.size, V1_LEDGER.len() as u64);
        // The same steps still write the same bytes.
        let again = dir.path().join("again");
        write_v1_steps(&mut FileLedger::open(&again).unwrap());
        assert_eq!(fs::read(&again).unwrap(), V1_LEDGER);
    }

    #[test]
    fn an_unknown_data_type_is_a_damaged_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let mut data = V1_LEDGER.to_vec();
        let entry = br#"{"Seal":{"id":9910,"data_type":"clicks","hour":null,"start":1,"end":2,"key":"k","records":1}}"#;
        encode_frame(entry, &mut data);
        fs::write(&path, &data).unwrap();
        match FileLedger::open(&path) {
            Err(LedgerError::Corrupt(why)) => {
                assert!(
                    why.contains(&format!("entry at byte {}", V1_LEDGER.len())),
                    "{why}"
                );
                assert!(why.contains("unknown data type \"clicks\""), "{why}");
            }
            Err(e) => panic!("expected a damaged ledger, got {e}"),
            Ok(_) => panic!("a seal of an unknown data type was accepted"),
        }
    }
}
