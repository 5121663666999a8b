//! What the WAL's committer publishes to the other stages, split by who
//! reads it:
//!
//! ```text
//!  committer ──▶ WalProgress ──▶ WalLogReader (router): committed end, ack times
//!      ▲              │ wake
//!      │              ▼
//!      └── checkpoint ◀── router (release_below): segments below may go
//!  committer ──▶ Admission ──▶ collect (readyz, 503s): backlog full, disk low
//! ```
//!
//! Invariant: `checkpoint <= committed`; the committer only ever deletes WAL
//! segments below `checkpoint`, which the router publishes after making it
//! durable in its ledger.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::signal::Signal;

/// Most group commits remembered for ack times (the oldest go first).
const MAX_ACKS: usize = 1 << 20;

/// The WAL's progress: shared by the committer and the local log reader.
pub struct WalProgress {
    /// End LSN of the committed (fsync'd) WAL.
    committed: AtomicU64,
    /// Every record below this LSN is uploaded and durably checkpointed.
    checkpoint: AtomicU64,
    /// `(end LSN, commit time ms)` of the group commits not yet below the
    /// checkpoint: when each record was acknowledged (for freshness).
    acks: Mutex<VecDeque<(u64, i64)>>,
    /// Notified at every commit (the router sleeps on it).
    wake: Arc<Signal>,
}

impl WalProgress {
    /// Progress that wakes `wake` at every commit.
    pub fn new(wake: Arc<Signal>) -> Self {
        Self {
            committed: AtomicU64::new(0),
            checkpoint: AtomicU64::new(0),
            acks: Mutex::new(VecDeque::new()),
            wake,
        }
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub fn checkpoint(&self) -> u64 {
        self.checkpoint.load(Ordering::Acquire)
    }

    /// Sets the committed end without a commit (the WAL as opened).
    pub fn start_at(&self, end: u64) {
        self.committed.store(end, Ordering::Release);
    }

    /// Publishes a group commit ending at `end`, acknowledged at `at_ms`,
    /// forgets the groups wholly below the checkpoint, and wakes the reader.
    pub fn commit(&self, end: u64, at_ms: i64) {
        {
            let checkpoint = self.checkpoint();
            let mut acks = self.acks();
            while acks.front().is_some_and(|(e, _)| *e <= checkpoint) || acks.len() >= MAX_ACKS {
                acks.pop_front();
            }
            acks.push_back((end, at_ms));
        }
        self.committed.store(end, Ordering::Release);
        self.wake.notify();
    }

    /// Everything below `pos` is uploaded and checkpointed.
    pub fn release_below(&self, pos: u64) {
        self.checkpoint.store(pos, Ordering::Release);
    }

    /// When the record at `lsn` was acknowledged: the time of the first
    /// remembered group commit that ends past it.
    pub fn ack_time(&self, lsn: u64) -> Option<i64> {
        let acks = self.acks();
        let i = acks.partition_point(|(end, _)| *end <= lsn);
        acks.get(i).map(|(_, at)| *at)
    }

    fn acks(&self) -> MutexGuard<'_, VecDeque<(u64, i64)>> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether the committer takes new writes: read by collect for `/readyz`.
#[derive(Default)]
pub struct Admission {
    /// Set while the backlog is over its limit.
    pub backlog_full: AtomicBool,
    /// Set while the data disk has less than `min_free_bytes` free.
    pub disk_low: AtomicBool,
    /// Set once the committer has stopped: no more writes are taken.
    pub closed: AtomicBool,
}

impl Admission {
    /// Why writes are refused now, if they are: `(reason, detail)`.
    pub fn refusal(&self) -> Option<(&'static str, &'static str)> {
        if self.closed.load(Ordering::Acquire) {
            return Some(("shutting down", "the server is draining"));
        }
        if self.disk_low.load(Ordering::Acquire) {
            return Some((
                "disk almost full",
                "the data disk has less than min_free_bytes free",
            ));
        }
        if self.backlog_full.load(Ordering::Acquire) {
            return Some((
                "backlog full",
                "the local backlog is over max_backlog_bytes",
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_times_are_those_of_the_group_that_committed_each_record() {
        let p = WalProgress::new(Arc::default());
        p.commit(100, 1_000);
        p.commit(250, 2_000);
        assert_eq!(p.committed(), 250);
        assert_eq!(p.ack_time(0), Some(1_000));
        assert_eq!(p.ack_time(99), Some(1_000));
        assert_eq!(p.ack_time(100), Some(2_000));
        assert_eq!(p.ack_time(250), None, "not committed yet");
        // Groups wholly below the checkpoint are forgotten at the next commit.
        p.release_below(100);
        p.commit(300, 3_000);
        assert_eq!(p.ack_time(50), Some(2_000), "the oldest remembered group");
        assert_eq!(p.ack_time(260), Some(3_000));
    }

    #[test]
    fn a_commit_wakes_the_reader() {
        let wake = Arc::new(Signal::default());
        let p = WalProgress::new(Arc::clone(&wake));
        let seen = wake.generation();
        p.commit(1, 0);
        assert!(wake.generation() > seen);
    }

    #[test]
    fn admission_names_the_first_reason_to_refuse() {
        let a = Admission::default();
        assert_eq!(a.refusal(), None);
        a.backlog_full.store(true, Ordering::Release);
        assert_eq!(a.refusal().unwrap().0, "backlog full");
        a.disk_low.store(true, Ordering::Release);
        assert_eq!(a.refusal().unwrap().0, "disk almost full");
        a.closed.store(true, Ordering::Release);
        assert_eq!(a.refusal().unwrap().0, "shutting down");
    }
}
