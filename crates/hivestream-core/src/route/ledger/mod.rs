//! The router's ledger: the durable record of its sealing decisions and
//! progress, per log partition.
//!
//! - A seal: file `id` of partition (data type, hour) holds exactly the
//!   partition's records with position in `start..=end` and goes to `key`.
//!   Durable *before* the upload starts, so a replay after a crash rebuilds
//!   the same bytes and the same key, whatever made the router seal (size,
//!   age, shutdown).
//! - Done: file `id` is in the bucket. May be lost (it only costs a
//!   re-upload of identical bytes to the same key).
//! - The checkpoint: every record below it is in an uploaded file, so the
//!   log may drop it. Durable before the log drops anything.
//!
//! Seals stay while `end >= checkpoint` (done or not): on replay from the
//! checkpoint they tell which records are already in a file.
//!
//! [`LedgerStore`] is the seam: [`file::FileLedger`] keeps it in a local
//! file for `serve`; the cluster keeps one JetStream KV entry per log
//! partition and writes it with compare-and-set, where a failed write means
//! another worker took the partition over ([`LedgerError::Fenced`]).

pub mod file;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::log::record::DataType;
use crate::log::Pos;
use crate::route::keys::Partition;

/// Why a ledger write or load failed.
#[derive(Debug, Error)]
pub enum LedgerError {
    #[error("ledger I/O error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("ledger is damaged: {0}")]
    Corrupt(String),
    /// Another owner wrote the ledger since this one loaded it: this owner
    /// must stop at once (seal, upload and checkpoint nothing more).
    #[error("fenced: {0}")]
    Fenced(String),
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
}

/// A partition's ledger as its router uses it.
pub trait LedgerStore: Send {
    /// The state as of the last successful write (or load).
    fn state(&self) -> &LedgerState;

    /// Takes a fresh file id (made durable with the next seal or
    /// checkpoint).
    fn next_id(&mut self) -> u64;

    /// Records a seal durably; returns once it is.
    fn seal(&mut self, seal: Seal) -> Result<(), LedgerError>;

    /// Records uploaded files (need not be durable on its own).
    fn done(&mut self, ids: &[u64]) -> Result<(), LedgerError>;

    /// Records the checkpoint durably.
    fn checkpoint(&mut self, pos: Pos) -> Result<(), LedgerError>;
}

/// A sealed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub id: u64,
    /// Stored as its name (`"events"`, ...), as earlier versions wrote it;
    /// an unknown name fails the ledger's load as damaged.
    pub data_type: DataType,
    pub hour: Option<i64>,
    pub start: u64,
    pub end: u64,
    pub key: String,
    pub records: u64,
}

impl Seal {
    /// The partition the sealed file belongs to.
    pub fn partition(&self) -> Partition {
        Partition {
            data_type: self.data_type,
            hour: self.hour,
        }
    }
}

/// One ledger change, as the file ledger stores it (the JSON of these
/// variants is its on-disk format: do not rename them).
#[derive(Debug, Serialize, Deserialize)]
pub enum Entry {
    Seal(Seal),
    Done(u64),
    Checkpoint { lsn: u64, next_id: u64 },
}

/// The ledger's state after replaying its entries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LedgerState {
    pub checkpoint: u64,
    pub next_id: u64,
    /// Seals by id, with whether they are uploaded.
    pub seals: BTreeMap<u64, (Seal, bool)>,
}

impl LedgerState {
    /// Applies one change.
    pub fn apply(&mut self, entry: Entry) {
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

    /// Takes a fresh file id.
    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Lowest start position of a seal not yet uploaded.
    pub fn min_pending_start(&self) -> Option<u64> {
        self.seals
            .values()
            .filter(|(_, done)| !done)
            .map(|(s, _)| s.start)
            .min()
    }
}
