//! State shared between the committer thread, the router thread, the
//! uploader and the HTTP handlers: a few atomics and a wake-up signal.
//!
//! Invariant: `checkpoint <= committed`; the committer only ever deletes WAL
//! segments below `checkpoint`, which the router publishes after making it
//! durable in its ledger.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Wakes a sleeping thread; a `notify` before `wait` is not lost.
#[derive(Default)]
pub struct Signal {
    generation: Mutex<u64>,
    cond: Condvar,
}

impl Signal {
    pub fn notify(&self) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cond.notify_all();
    }

    /// The current generation, to pass to [`Signal::wait_since`].
    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until a notify after `seen` or until `timeout`.
    pub fn wait_since(&self, seen: u64, timeout: Duration) {
        let guard = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.cond.wait_timeout_while(guard, timeout, |g| *g == seen);
    }
}

/// Progress counters shared across the pipeline.
#[derive(Default)]
pub struct Shared {
    /// End LSN of the committed (fsync'd) WAL.
    pub committed: AtomicU64,
    /// Every record below this LSN is uploaded and durably checkpointed.
    pub checkpoint: AtomicU64,
    /// WAL bytes on disk (for the backlog limit and metrics).
    pub wal_bytes: AtomicU64,
    /// Set once the committer has stopped: no more records will come.
    pub input_closed: AtomicBool,
    /// Set while the backlog is over its limit.
    pub backlog_full: AtomicBool,
    /// Set while the data disk has less than `min_free_bytes` free.
    pub disk_low: AtomicBool,
    /// Wakes the router (new commits, finished uploads, shutdown).
    pub router_wake: Signal,
    /// Ids of sealed files handed to the uploader and not yet uploaded. The
    /// router adds an id before it sends the job and the uploader removes it
    /// when the file is in the bucket, so a restarted router knows which
    /// spool files are still being read and must not rebuild them.
    pub in_flight: Mutex<HashSet<u64>>,
    /// Set by the uploader when a sealed file's spool copy is gone; the
    /// router restarts to rebuild it from the WAL.
    pub spool_lost: AtomicBool,
    /// Set when this process lost the right to route this log (its lease
    /// expired): the router stops at once, sealing nothing more.
    pub abort: AtomicBool,
    /// `(end LSN, commit time ms)` of the group commits not yet below the
    /// checkpoint: when each record was acknowledged (for freshness).
    pub acks: Mutex<VecDeque<(u64, i64)>>,
}

/// Most group commits remembered for ack times (the oldest go first).
const MAX_ACKS: usize = 1 << 20;

impl Shared {
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn acks(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, i64)>> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a group commit ending at `end`, acknowledged at `at_ms`, and
    /// forgets the groups wholly below the checkpoint.
    pub fn note_commit(&self, end: u64, at_ms: i64) {
        let checkpoint = self.checkpoint.load(Ordering::Acquire);
        let mut acks = self.acks();
        while acks.front().is_some_and(|(e, _)| *e <= checkpoint) || acks.len() >= MAX_ACKS {
            acks.pop_front();
        }
        acks.push_back((end, at_ms));
    }

    /// When the record at `lsn` was acknowledged: the time of the first
    /// remembered group commit that ends past it.
    pub fn ack_time(&self, lsn: u64) -> Option<i64> {
        let acks = self.acks();
        let i = acks.partition_point(|(end, _)| *end <= lsn);
        acks.get(i).map(|(_, at)| *at)
    }
}
