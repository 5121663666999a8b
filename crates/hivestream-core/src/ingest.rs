//! Group commit: HTTP handlers hand encoded records to the committer thread,
//! which writes everything queued with one write and one `fdatasync`, then
//! answers every waiting request. A request is answered `Ok` only after its
//! records are synced; a failed write or sync (e.g. a full disk) answers
//! every request of that group with an error and leaves the WAL as it was.
//!
//! The committer also owns WAL truncation: it deletes segments below the
//! checkpoint the router publishes, and it refuses new records while the WAL
//! holds more than `max_backlog_bytes` (the HTTP layer turns that into 503).

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use hivestream_wal::{Wal, MAX_PAYLOAD_LEN};
use thiserror::Error;
use tokio::sync::oneshot;

use crate::metrics::METRICS;
use crate::record::Record;
use crate::shared::Shared;

/// Most bytes taken into one group commit.
const MAX_GROUP_BYTES: usize = 32 << 20;

/// Records to append together, encoded as WAL payloads back to back.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    pub fn push(&mut self, rec: &Record<'_>) {
        rec.encode(&mut self.buf);
        self.ends.push(self.buf.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(s, e)| &self.buf[s..e])
    }
}

/// Why records were not made durable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CommitError {
    #[error("the local backlog is full ({0} bytes waiting for upload)")]
    BacklogFull(u64),
    #[error("the write-ahead log could not be written: {0}")]
    Io(String),
    #[error("the server is shutting down")]
    Closed,
}

struct Request {
    batch: Batch,
    reply: oneshot::Sender<Result<(), CommitError>>,
}

/// The handlers' side: cheap to clone.
#[derive(Clone)]
pub struct Appender {
    tx: mpsc::Sender<Request>,
}

impl Appender {
    /// Makes `batch` durable; resolves once it is synced.
    pub async fn append(&self, batch: Batch) -> Result<(), CommitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { batch, reply })
            .map_err(|_| CommitError::Closed)?;
        rx.await.unwrap_or(Err(CommitError::Closed))
    }
}

/// Starts the committer thread. It stops when every [`Appender`] is dropped,
/// then marks input closed so the router can finish.
pub fn spawn_committer(
    wal: Wal,
    shared: Arc<Shared>,
    max_backlog_bytes: u64,
) -> (Appender, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    shared.committed.store(wal.end_lsn(), Ordering::Release);
    let handle = std::thread::Builder::new()
        .name("wal-committer".into())
        .spawn(move || {
            Committer {
                wal,
                shared,
                rx,
                max_backlog_bytes,
            }
            .run()
        })
        .expect("spawn committer thread");
    (Appender { tx }, handle)
}

struct Committer {
    wal: Wal,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    max_backlog_bytes: u64,
}

impl Committer {
    fn run(mut self) {
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(first) => self.commit_group(first),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.truncate();
        }
        self.truncate();
        self.shared.input_closed.store(true, Ordering::Release);
        self.shared.router_wake.notify();
    }

    fn commit_group(&mut self, first: Request) {
        let mut group = vec![first];
        let mut bytes = group[0].batch.buf.len();
        while bytes < MAX_GROUP_BYTES {
            let Ok(next) = self.rx.try_recv() else { break };
            bytes += next.batch.buf.len();
            group.push(next);
        }
        let mut staged = Vec::with_capacity(group.len());
        for req in group {
            match self.stage(&req.batch) {
                Ok(()) => staged.push(req),
                Err(e) => {
                    let _ = req.reply.send(Err(e));
                }
            }
        }
        if staged.is_empty() {
            return;
        }
        let result = self
            .wal
            .commit()
            .map_err(|e| CommitError::Io(e.to_string()));
        match &result {
            Ok(end) => {
                self.shared.committed.store(*end, Ordering::Release);
                self.shared.router_wake.notify();
                METRICS.wal_commits.inc();
                METRICS
                    .wal_records
                    .add(staged.iter().map(|r| r.batch.len() as u64).sum());
                METRICS.wal_bytes_written.add(bytes as u64);
            }
            Err(e) => {
                METRICS.wal_commit_errors.inc();
                tracing::error!(error = %e, "WAL commit failed; answering 503");
            }
        }
        self.publish_size();
        for req in staged {
            let _ = req.reply.send(result.clone().map(|_| ()));
        }
    }

    /// Stages a whole batch, or nothing of it.
    fn stage(&mut self, batch: &Batch) -> Result<(), CommitError> {
        let backlog = self.wal.disk_bytes() + self.wal.staged_bytes() as u64;
        if backlog + batch.buf.len() as u64 > self.max_backlog_bytes {
            self.shared.backlog_full.store(true, Ordering::Release);
            return Err(CommitError::BacklogFull(backlog));
        }
        // Check every size first so that `append` cannot fail half-way
        // through a batch and leave part of it staged.
        if let Some(bad) = batch
            .payloads()
            .find(|p| p.is_empty() || p.len() > MAX_PAYLOAD_LEN)
        {
            return Err(CommitError::Io(format!(
                "record of {} bytes is too large for the WAL",
                bad.len()
            )));
        }
        for payload in batch.payloads() {
            self.wal.append(payload).expect("sizes checked above");
        }
        Ok(())
    }

    fn truncate(&mut self) {
        let checkpoint = self.shared.checkpoint.load(Ordering::Acquire);
        if let Err(e) = self.wal.truncate_before(checkpoint) {
            tracing::error!(error = %e, "WAL truncation failed; will retry");
        }
        self.publish_size();
    }

    fn publish_size(&self) {
        let bytes = self.wal.disk_bytes();
        self.shared.wal_bytes.store(bytes, Ordering::Relaxed);
        METRICS.wal_bytes.set(bytes);
        if bytes < self.max_backlog_bytes {
            self.shared.backlog_full.store(false, Ordering::Release);
        }
    }
}
