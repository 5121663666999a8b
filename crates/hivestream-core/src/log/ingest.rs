//! Group commit: HTTP handlers hand encoded records to the committer thread,
//! which writes everything queued with one write and one `fdatasync`, then
//! answers every waiting request. A request is answered `Ok` only after its
//! records are synced; a failed write or sync (e.g. a full disk) answers
//! every request of that group with an error and leaves the WAL as it was.
//!
//! Because the committer is the only writer, it is also where identity is
//! decided: alias-only events are resolved here, in WAL order, so concurrent
//! requests for the same new alias get one user id, and the `sync_aliases`
//! records of a group are applied to the [`IdentityIndex`] right after the
//! group's commit.
//!
//! The committer also owns WAL truncation: it deletes segments below both the
//! router's checkpoint and the identity index's durable LSN, and it refuses
//! new records while more than `max_backlog_bytes` of the WAL wait for
//! upload, or while the disk has less than `min_free_bytes` free (see
//! [`crate::disk`]: the reserve that lets the router drain a full disk).

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hivestream_wal::{Wal, MAX_PAYLOAD_LEN};
use thiserror::Error;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::log::batch::sync_payload;
pub use crate::log::batch::Batch;
use crate::log::progress::{Admission, WalProgress};
use crate::log::replay::{link_of, replay_identity, ReplayError};
use crate::log::retries::{merge_users, resolve_priors, Retries};
use crate::metrics::METRICS;
use crate::state::dedup::Stored;
use crate::state::identity::{IdentityIndex, Link, Resolver};

/// Most bytes taken into one group commit.
const MAX_GROUP_BYTES: usize = 32 << 20;

/// Why records were not made durable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CommitError {
    #[error("the local backlog is full ({0} bytes waiting for upload)")]
    BacklogFull(u64),
    #[error("the data disk is almost full ({0} bytes free, below min_free_bytes)")]
    DiskLow(u64),
    #[error("the write-ahead log could not be written: {0}")]
    Io(String),
    #[error("the identity index failed: {0}")]
    Identity(String),
    #[error("the server is shutting down")]
    Closed,
    /// The replicated log refused or did not acknowledge the write (cluster).
    #[error("the replicated log is unavailable: {0}")]
    LogUnavailable(String),
    /// The replicated log is at its size limit (cluster; `discard: new`).
    #[error("the replicated log is full: {0}")]
    LogFull(String),
    /// The request's records do not fit in one log message (cluster).
    #[error("{0}")]
    TooLarge(String),
}

/// What a commit decided for a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The users of its alias-only events, in push order (for a retried
    /// event, the user stored the first time).
    pub users: Vec<Uuid>,
    /// Items that were retries of acknowledged events, not written again,
    /// with what was stored the first time.
    pub duplicates: Vec<(usize, Stored)>,
}

impl Committed {
    /// What was stored for `item` the first time, if it was a retry.
    pub fn duplicate(&self, item: usize) -> Option<Stored> {
        self.duplicates
            .iter()
            .find(|(i, _)| *i == item)
            .map(|(_, s)| *s)
    }
}

struct Request {
    batch: Batch,
    reply: oneshot::Sender<Result<Committed, CommitError>>,
}

/// The handlers' side: cheap to clone.
#[derive(Clone)]
pub struct Appender {
    tx: mpsc::Sender<Request>,
}

impl Appender {
    /// Makes `batch` durable; resolves once it is synced, with the user ids
    /// chosen for its alias-only events and the retries it skipped.
    pub async fn append(&self, batch: Batch) -> Result<Committed, CommitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { batch, reply })
            .map_err(|_| CommitError::Closed)?;
        rx.await.unwrap_or(Err(CommitError::Closed))
    }
}

/// What the committer refuses beyond.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most WAL bytes waiting for upload.
    pub max_backlog_bytes: u64,
    /// Least free space to leave on the data dir's filesystem.
    pub min_free_bytes: u64,
}

/// What the committer publishes: its progress (for the log reader) and
/// whether it takes writes (for collect).
#[derive(Clone)]
pub struct CommitterOutputs {
    pub progress: Arc<WalProgress>,
    pub admission: Arc<Admission>,
}

/// Starts the committer thread. It stops when every [`Appender`] is
/// dropped, after a last durable commit of the identity index and a last
/// truncation, and marks itself closed in its [`Admission`].
pub fn spawn_committer(
    wal: Wal,
    identity: IdentityIndex,
    outputs: CommitterOutputs,
    limits: Limits,
) -> (Appender, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    outputs.progress.start_at(wal.end_lsn());
    let committer = Committer {
        wal,
        identity,
        progress: outputs.progress,
        admission: outputs.admission,
        rx,
        limits,
        free: u64::MAX,
        resolver: Resolver::default(),
        retries: Retries::default(),
        index_behind: false,
        recovery: Pacer::new(),
    };
    let handle = std::thread::Builder::new()
        .name("wal-committer".into())
        .spawn(move || committer.run())
        .expect("spawn committer thread");
    (Appender { tx }, handle)
}

struct Committer {
    wal: Wal,
    identity: IdentityIndex,
    progress: Arc<WalProgress>,
    admission: Arc<Admission>,
    rx: mpsc::Receiver<Request>,
    limits: Limits,
    /// Free bytes on the WAL's filesystem, measured by the last
    /// [`Committer::publish_size`] (after every group and idle turn) and
    /// lowered by each batch staged since.
    free: u64,
    resolver: Resolver,
    /// Client event ids written in the current group.
    retries: Retries,
    /// The last index update failed: replay the WAL into it before resolving.
    index_behind: bool,
    /// Paces recovery attempts while the index keeps failing (a full disk):
    /// between attempts, groups fail fast instead of reopening each time.
    recovery: Pacer,
}

/// Paces retries: `ready` until a failure, then not again until a backoff
/// (50 ms doubling to 2 s, with jitter) has passed; reset on success.
struct Pacer {
    next: Instant,
    backoff: Backoff,
}

impl Pacer {
    fn new() -> Self {
        Self {
            next: Instant::now(),
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
        }
    }

    fn ready(&self) -> bool {
        Instant::now() >= self.next
    }

    fn failed(&mut self) {
        self.next = Instant::now() + self.backoff.next_delay();
    }

    fn succeeded(&mut self) {
        self.backoff.reset();
    }
}

impl Committer {
    fn run(mut self) {
        self.publish_size();
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(first) => self.commit_group(first),
                Err(mpsc::RecvTimeoutError::Timeout) => self.idle(),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.truncate();
        }
        if let Err(e) = self.identity.make_durable() {
            tracing::error!(error = %e, "identity index: final durable commit failed; it replays at next start");
        }
        self.truncate();
        self.admission.closed.store(true, Ordering::Release);
    }

    fn idle(&mut self) {
        if self.index_behind || self.identity.stale() {
            // Recover while idle too, so that the index (and WAL truncation,
            // which waits for its durable LSN) heal without new traffic.
            let _ = self.catch_up_index();
        } else if self.identity.durable_due() {
            if let Err(e) = self.identity.make_durable() {
                tracing::error!(error = %e, "identity index: durable commit failed; will recover");
                self.index_behind = true;
            }
        }
    }

    fn commit_group(&mut self, first: Request) {
        let mut group = vec![first];
        let mut bytes = group[0].batch.bytes();
        while bytes < MAX_GROUP_BYTES {
            let Ok(next) = self.rx.try_recv() else { break };
            bytes += next.batch.bytes();
            group.push(next);
        }
        // Only requests that resolve or change aliases need a healthy index;
        // plain events go to the WAL while it recovers.
        let index = self.catch_up_index();
        self.resolver.clear();
        self.retries.clear();
        let mut links = Vec::new();
        let mut ids = Vec::new();
        let mut staged = Vec::with_capacity(group.len());
        for req in group {
            if let (Err(e), true) = (&index, req.batch.needs_index()) {
                let _ = req.reply.send(Err(e.clone()));
                continue;
            }
            match self.stage(req.batch, &mut links, &mut ids) {
                Ok((users, records)) => staged.push((req.reply, users, records)),
                Err(e) => drop(req.reply.send(Err(e))),
            }
        }
        if staged.is_empty() {
            return;
        }
        let started = Instant::now();
        let result = self
            .wal
            .commit()
            .map_err(|e| CommitError::Io(e.to_string()));
        METRICS
            .wal_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(end) => {
                let records = staged.iter().map(|s| s.2).sum();
                self.committed(*end, (&links, &ids), bytes, records);
            }
            Err(e) => {
                METRICS.wal_commit_errors.inc();
                tracing::error!(error = %e, "WAL commit failed; answering 503");
            }
        }
        for (reply, users, _) in staged {
            let _ = reply.send(result.clone().map(|_| users));
        }
    }

    fn committed(
        &mut self,
        end: u64,
        (links, ids): (&[Link], &[(Uuid, Stored)]),
        bytes: usize,
        records: u64,
    ) {
        crate::failpoint::hit("commit.after_sync");
        self.progress.commit(end, crate::clock::now_ms());
        METRICS.wal_commits.inc();
        METRICS.wal_records.add(records);
        METRICS.wal_group_records.observe(records as f64);
        METRICS.wal_bytes_written.add(bytes as u64);
        if self.index_behind || self.identity.stale() {
            // Never apply on top of a gap: a durable apply would record
            // `end` as applied over links it never saw. Recovery replays
            // this group's links from the WAL instead.
            self.index_behind = true;
            return;
        }
        if let Err(e) = self.identity.apply(links, ids, end) {
            tracing::error!(error = %e, "identity index update failed; replaying from the WAL before the next group");
            self.index_behind = true;
        }
    }

    /// Heals the identity index after a failed update or a reopen of its
    /// database: reopen if needed, reload its durable state, replay the WAL.
    fn catch_up_index(&mut self) -> Result<(), CommitError> {
        if !self.index_behind && !self.identity.stale() {
            return Ok(());
        }
        if !self.recovery.ready() {
            return Err(CommitError::Identity(
                "the identity index is recovering from an error".into(),
            ));
        }
        let end = self.wal.end_lsn();
        let healed = self.identity.recover().map_err(ReplayError::from);
        if let Err(e) =
            healed.and_then(|()| replay_identity(&mut self.identity, self.wal.dir(), end))
        {
            self.recovery.failed();
            tracing::error!(error = %e, "identity index: recovery failed; answering 503 until it succeeds");
            return Err(CommitError::Identity(e.to_string()));
        }
        self.recovery.succeeded();
        tracing::info!("identity index recovered");
        self.index_behind = false;
        Ok(())
    }

    /// Stages a whole batch, or nothing of it: resolves its alias-only
    /// events, then appends its records (and any new alias syncs).
    fn stage(
        &mut self,
        mut batch: Batch,
        links: &mut Vec<Link>,
        ids: &mut Vec<(Uuid, Stored)>,
    ) -> Result<(Committed, u64), CommitError> {
        let backlog = self.backlog() + self.wal.staged_bytes() as u64;
        if backlog + batch.bytes() as u64 > self.limits.max_backlog_bytes {
            self.admission.backlog_full.store(true, Ordering::Release);
            return Err(CommitError::BacklogFull(backlog));
        }
        let reserve = self.limits.min_free_bytes;
        // Saturating: `min_free_bytes` is not bounded by the config.
        if reserve > 0 && self.free < reserve.saturating_add(batch.bytes() as u64) {
            self.admission.disk_low.store(true, Ordering::Release);
            return Err(CommitError::DiskLow(self.free));
        }
        self.free = self.free.saturating_sub(batch.bytes() as u64);
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
        let retried = self
            .retries
            .check(&self.identity, &mut batch)
            .map_err(|e| {
                self.index_behind = true;
                CommitError::Identity(e.to_string())
            })?;
        let pending = batch.pending_items();
        let (live_users, syncs) = self.resolve_users(&mut batch)?;
        ids.extend(self.retries.note(&batch));
        let duplicates = resolve_priors(&batch, &retried);
        let committed = Committed {
            users: merge_users(&pending, live_users, &duplicates),
            duplicates,
        };
        let mut records = 0;
        for payload in syncs.iter().map(Vec::as_slice).chain(batch.payloads()) {
            if let Some(link) = link_of(payload) {
                self.resolver.note(&link);
                links.push(link);
            }
            self.wal.append(payload).expect("sizes checked above");
            records += 1;
        }
        Ok((committed, records))
    }

    /// Picks a user for each alias-only event, patches it into the line,
    /// and returns the `sync_aliases` payloads for users it created.
    fn resolve_users(
        &mut self,
        batch: &mut Batch,
    ) -> Result<(Vec<Uuid>, Vec<Vec<u8>>), CommitError> {
        let mut users = Vec::with_capacity(batch.pending_len());
        let mut syncs = Vec::new();
        for (aliases, time_ms) in batch.pending_aliases() {
            let (user, created) = self
                .resolver
                .decide(&self.identity, &aliases)
                .map_err(|e| {
                    self.index_behind = true;
                    CommitError::Identity(e.to_string())
                })?;
            syncs.extend(created.iter().map(|link| sync_payload(time_ms, link)));
            users.push(user);
        }
        batch.set_users(&users);
        Ok((users, syncs))
    }

    /// Free space on the WAL's filesystem (unknown counts as plenty: the
    /// write itself will fail if there is none).
    fn measure_free(&self) -> u64 {
        let free = crate::disk::space(self.wal.dir()).map_or(u64::MAX, |s| s.available);
        METRICS.disk_free_bytes.set(free.min(i64::MAX as u64));
        free
    }

    /// The LSN from which the WAL must be kept: below it every record is
    /// uploaded and in the durable identity index.
    fn keep_from(&self) -> u64 {
        let checkpoint = self.progress.checkpoint();
        checkpoint.min(self.identity.durable_lsn())
    }

    /// Committed bytes not yet safe to delete: what `max_backlog_bytes`
    /// bounds. (Disk use is this plus at most one segment, which is only
    /// deleted whole.)
    fn backlog(&self) -> u64 {
        self.wal.end_lsn().saturating_sub(self.keep_from())
    }

    fn truncate(&mut self) {
        if let Err(e) = self.wal.truncate_before(self.keep_from()) {
            tracing::error!(error = %e, "WAL truncation failed; will retry");
        }
        self.publish_size();
    }

    /// Publishes WAL size, backlog and free space, and clears the "full"
    /// flags once there is room again. Runs after every loop turn.
    fn publish_size(&mut self) {
        let bytes = self.wal.disk_bytes();
        METRICS.wal_bytes.set(bytes);
        let backlog = self.backlog();
        METRICS.backlog_bytes.set(backlog);
        // Hysteresis: once a write was refused, report "full" (readyz 503)
        // until there is room for more than a trickle again.
        if backlog < self.limits.max_backlog_bytes / 10 * 9 {
            self.admission.backlog_full.store(false, Ordering::Release);
        }
        self.free = self.measure_free();
        let reserve = self.limits.min_free_bytes;
        if self.free > reserve.saturating_add(reserve / 10) {
            self.admission.disk_low.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests;
