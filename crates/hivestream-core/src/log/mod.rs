//! Log: records ([`record`]) made durable before the client's 2xx, and the
//! seam the router reads them through.
//!
//! In `serve` the log is the local WAL, written by the group committer
//! ([`ingest`]), which also decides identity in log order; [`WalLogReader`]
//! reads it. In cluster mode it is a replicated JetStream stream (crate
//! `hivestream-cluster`). The router sees either only as a [`LogReader`]:
//! records in order, each at a [`Pos`] that grows with every record, and a
//! way to say "everything below this position is in the bucket".
//!
//! Positions are opaque to the router: it compares them and stores them in
//! its ledger. The WAL uses byte offsets (LSNs); JetStream packs the stream
//! sequence of a message and a record's index inside it (see
//! [`pack_pos`]), because one message carries a whole request's records.

pub mod batch;
pub mod ingest;
pub mod progress;
pub mod record;
pub mod replay;
pub mod retries;

use std::sync::Arc;

use hivestream_wal::{WalError, WalReader};
use thiserror::Error;

use crate::log::progress::WalProgress;

/// A record's position in its log partition.
pub type Pos = u64;

/// Bits of a packed position that hold the record's index in its message.
pub const INDEX_BITS: u32 = 24;
/// Most records one message may hold.
pub const MAX_MESSAGE_RECORDS: usize = (1 << INDEX_BITS) - 1;

/// The position of record `index` of the message with sequence `seq`.
pub fn pack_pos(seq: u64, index: usize) -> Pos {
    debug_assert!(index <= MAX_MESSAGE_RECORDS);
    (seq << INDEX_BITS) | index as u64
}

/// The message sequence and record index of a packed position.
pub fn unpack_pos(pos: Pos) -> (u64, usize) {
    (
        pos >> INDEX_BITS,
        (pos & MAX_MESSAGE_RECORDS as u64) as usize,
    )
}

/// Why a log could not be read.
#[derive(Debug, Error)]
pub enum LogError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("log message at sequence {seq} is damaged: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("log unavailable: {0}")]
    Unavailable(String),
}

/// One log partition as its router reads it.
pub trait LogReader: Send {
    /// The next record, if one is available now (never blocks for long:
    /// the router waits on its wake signal, which the log notifies).
    fn next(&mut self) -> Result<Option<(Pos, &[u8])>, LogError>;

    /// Position of the next record to read: every record below it has been
    /// returned.
    fn position(&self) -> Pos;

    /// Whether every record this reader can see right now was returned.
    fn caught_up(&self) -> bool;

    /// The router made `pos` its durable checkpoint: the log may drop the
    /// records below it.
    fn release_below(&mut self, pos: Pos);

    /// When the log acknowledged the record `next` returned last (epoch
    /// ms), if the log knows.
    fn last_ack_ms(&self) -> Option<i64> {
        None
    }

    /// When the log acknowledged the oldest record not yet read, if there
    /// is one and the log knows.
    fn oldest_unread_ack_ms(&self) -> Option<i64> {
        None
    }
}

/// The local WAL as a log partition: reads up to the committed end that the
/// committer publishes in [`WalProgress`], and hands the checkpoint to the
/// committer, which deletes segments below it.
pub struct WalLogReader {
    reader: WalReader,
    progress: Arc<WalProgress>,
    last: Option<Pos>,
}

impl WalLogReader {
    pub fn open(
        dir: &std::path::Path,
        from: Pos,
        progress: Arc<WalProgress>,
    ) -> Result<Self, LogError> {
        Ok(Self {
            reader: WalReader::open(dir, from)?,
            progress,
            last: None,
        })
    }
}

impl LogReader for WalLogReader {
    fn next(&mut self) -> Result<Option<(Pos, &[u8])>, LogError> {
        let limit = self.progress.committed();
        let next = self.reader.next(limit)?;
        self.last = next.as_ref().map(|(pos, _)| *pos);
        Ok(next)
    }

    fn position(&self) -> Pos {
        self.reader.lsn()
    }

    fn caught_up(&self) -> bool {
        self.reader.lsn() >= self.progress.committed()
    }

    fn release_below(&mut self, pos: Pos) {
        self.progress.release_below(pos);
    }

    fn last_ack_ms(&self) -> Option<i64> {
        self.progress.ack_time(self.last?)
    }

    fn oldest_unread_ack_ms(&self) -> Option<i64> {
        (!self.caught_up())
            .then(|| self.progress.ack_time(self.reader.lsn()))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_positions_order_by_message_then_index() {
        let a = pack_pos(7, MAX_MESSAGE_RECORDS);
        let b = pack_pos(8, 0);
        assert!(a < b);
        assert_eq!(unpack_pos(a), (7, MAX_MESSAGE_RECORDS));
        assert_eq!(unpack_pos(pack_pos(1 << 39, 5)), (1 << 39, 5));
    }
}
