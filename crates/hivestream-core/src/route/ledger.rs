//! The router's ledger: a small append-only log (same CRC32C frames as the
//! WAL, JSON payloads) that makes sealing decisions and progress durable.
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

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use hivestream_wal::frame::{decode_frame, encode_frame};
use serde::{Deserialize, Serialize};

use super::RouterError;
use crate::route::keys::Partition;
use crate::log::record::DataType;

/// Rewrite the ledger once it is this large.
pub const COMPACT_BYTES: u64 = 1 << 20;

/// A sealed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub id: u64,
    pub data_type: String,
    pub hour: Option<i64>,
    pub start: u64,
    pub end: u64,
    pub key: String,
    pub records: u64,
}

impl Seal {
    pub fn partition(&self) -> Option<Partition> {
        let data_type = DataType::ALL
            .into_iter()
            .find(|t| t.name() == self.data_type)?;
        Some(Partition {
            data_type,
            hour: self.hour,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Entry {
    Seal(Seal),
    Done(u64),
    Checkpoint { lsn: u64, next_id: u64 },
}

/// The ledger's state after replaying its entries.
#[derive(Debug, Default)]
pub struct LedgerState {
    pub checkpoint: u64,
    pub next_id: u64,
    /// Seals by id, with whether they are uploaded.
    pub seals: BTreeMap<u64, (Seal, bool)>,
}

impl LedgerState {
    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Seal(s) => {
                self.next_id = self.next_id.max(s.id + 1);
                self.seals.insert(s.id, (s, false));
            }
            Entry::Done(id) => {
                if let Some(s) = self.seals.get_mut(&id) {
                    s.1 = true;
                }
            }
            Entry::Checkpoint { lsn, next_id } => {
                self.checkpoint = self.checkpoint.max(lsn);
                self.next_id = self.next_id.max(next_id);
                self.seals.retain(|_, (s, done)| !*done || s.end >= lsn);
            }
        }
    }

    /// Lowest start LSN of a seal not yet uploaded.
    pub fn min_pending_start(&self) -> Option<u64> {
        self.seals
            .values()
            .filter(|(_, done)| !done)
            .map(|(s, _)| s.start)
            .min()
    }
}

/// The open ledger file.
pub struct Ledger {
    path: PathBuf,
    file: File,
    size: u64,
    pub state: LedgerState,
    buf: Vec<u8>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RouterError + '_ {
    move |source| RouterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Ledger {
    /// Opens the ledger, replaying its entries and cutting a torn tail.
    pub fn open(path: &Path) -> Result<Self, RouterError> {
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(path)(e)),
        };
        let mut state = LedgerState::default();
        let mut pos = 0;
        while let Ok(Some((payload, used))) = decode_frame(&data[pos..]) {
            let entry: Entry = serde_json::from_slice(payload).map_err(|e| {
                RouterError::Ledger(format!("{}: entry at byte {pos}: {e}", path.display()))
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

    fn write(&mut self, sync: bool) -> Result<(), RouterError> {
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

    /// Records a seal durably.
    pub fn seal(&mut self, seal: Seal) -> Result<(), RouterError> {
        let entry = Entry::Seal(seal);
        self.stage(&entry);
        self.write(true)?;
        self.state.apply(entry);
        Ok(())
    }

    /// Records uploads (not synced; see the module doc).
    pub fn done(&mut self, ids: &[u64]) -> Result<(), RouterError> {
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
    pub fn checkpoint(&mut self, lsn: u64) -> Result<(), RouterError> {
        let entry = Entry::Checkpoint {
            lsn,
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

    /// Takes a fresh id for a file.
    pub fn next_id(&mut self) -> u64 {
        let id = self.state.next_id;
        self.state.next_id += 1;
        id
    }

    /// Rewrites the ledger with only what is still needed (temp file,
    /// fsync, rename, fsync of the directory).
    pub fn compact(&mut self) -> Result<(), RouterError> {
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

    fn seal(id: u64, start: u64, end: u64) -> Seal {
        Seal {
            id,
            data_type: "events".into(),
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
        let mut l = Ledger::open(&path).unwrap();
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
        let l = Ledger::open(&path).unwrap();
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
        let mut l = Ledger::open(&path).unwrap();
        l.seal(seal(0, 0, 10)).unwrap();
        drop(l);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let mut l = Ledger::open(&path).unwrap();
        assert_eq!(l.state.seals.len(), 1);
        l.seal(seal(1, 11, 12)).unwrap();
        drop(l);
        assert_eq!(Ledger::open(&path).unwrap().state.seals.len(), 2);
    }
}
