//! The router: reads one log partition in order ([`LogReader`]), splits its
//! records by (data type, hour), compresses each split into a
//! [`FileBuilder`], seals files on size, age or shutdown, records each seal
//! durably in its ledger ([`LedgerStore`]) and hands the file to the
//! uploader. When uploads finish it advances the checkpoint, which lets the
//! log drop what is below it.
//!
//! ```text
//!   LogReader ──records──▶ Router ──seal (durable)──▶ LedgerStore
//!       ▲                    │ sealed file                  ▲
//!       │ release_below      ▼                              │ done, checkpoint
//!       └──────────────── uploader ──create-only PUT──▶ bucket
//! ```
//!
//! Exactly once: a record is in exactly one sealed file (seal ranges of a
//! partition never overlap), a seal is durable before its upload starts, and
//! its key derives from its content. After a crash the router replays the
//! log from the checkpoint: records inside a finished seal are skipped,
//! records inside a pending seal rebuild that very file (same bytes, same
//! key), and the rest go to new files, which were never uploaded. If a
//! rebuild differs from its seal (the log lost a record), nothing is
//! uploaded under the sealed key: the uploader only checks that the sealed
//! object is there, and raises the alarm if it is not.
//!
//! The same code routes `serve`'s WAL and each JetStream partition of a
//! cluster; only the [`RouterBackend`] differs. It runs on its own thread
//! because compression is CPU work that must not stall the async workers.

mod backend;
pub mod deflate;
mod file;
pub mod keys;
pub mod ledger;
mod replay;
pub mod signals;
mod supervisor;
pub mod upload;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use thiserror::Error;

pub use backend::{LocalBackend, RouterBackend};
pub use deflate::DeflatePool;
use file::spool_path;
pub use file::{FileBuilder, FileOptions, Finished};
use ledger::{LedgerError, LedgerStore, Seal};
use replay::KnownSeal;
pub use signals::{RouterSignals, UploadTracker};
pub use supervisor::run_router;
pub use upload::{UploadJob, UploadKind};

use crate::config::{Config, RouterSettings};
use crate::log::record::{DataType, Record};
use crate::log::{LogError, LogReader};
use crate::metrics::METRICS;
use crate::route::keys::{object_key, Partition, WorkerId};

/// Most partitions open at once; beyond it the oldest file is sealed early.
pub const MAX_OPEN_FILES: usize = 64;
/// Records routed per loop turn before checking timers and uploads.
const TURN_RECORDS: usize = 4096;

/// Router failures (all fatal to the router thread; see
/// [`supervisor`] for what happens next).
#[derive(Debug, Error)]
pub enum RouterError {
    #[error("router I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Internal(String),
    #[error(
        "a sealed file's spool copy disappeared before its upload; rebuilding it from the log"
    )]
    SpoolLost,
}

impl RouterError {
    /// Another owner took the partition over: stop, never retry.
    pub fn is_fenced(&self) -> bool {
        matches!(self, RouterError::Ledger(LedgerError::Fenced(_)))
    }
}

/// What every router of a process shares: `serve` runs one router, a
/// cluster worker one per log partition it holds.
#[derive(Debug, Clone)]
pub struct RouterBase {
    pub settings: RouterSettings,
    /// Normalised key prefix (empty or ending in `/`).
    pub prefix: String,
    /// Compression threads (shared across routers and their restarts).
    pub deflate: DeflatePool,
}

impl RouterBase {
    /// The configured settings and prefix, with a compression thread per
    /// core.
    pub fn new(cfg: &Config) -> Self {
        Self {
            settings: cfg.router.clone(),
            prefix: cfg.prefix.clone(),
            deflate: DeflatePool::per_core(),
        }
    }

    /// The configuration of one router: its spool directory and the worker
    /// id that names its files.
    pub fn router(&self, spool: PathBuf, worker: WorkerId) -> RouterConfig {
        RouterConfig {
            base: self.clone(),
            spool,
            worker,
        }
    }
}

/// What the router needs to know.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub base: RouterBase,
    /// Directory for files under construction and awaiting upload.
    pub spool: PathBuf,
    /// Names this router's files: `serve`'s worker id, or the log
    /// partition's.
    pub worker: WorkerId,
}

impl RouterConfig {
    /// The settings shared by every router.
    pub fn settings(&self) -> &RouterSettings {
        &self.base.settings
    }
}

/// What connects a router to the tasks around it; cloned for every
/// (re)start of the router of one log partition.
#[derive(Clone)]
pub struct RouterLinks {
    /// Stop requests, wake-ups and the in-flight uploads.
    pub signals: Arc<RouterSignals>,
    /// Where sealed files go to be uploaded.
    pub uploads: tokio::sync::mpsc::UnboundedSender<UploadJob>,
    /// Where the uploader reports files in the bucket.
    pub done_tx: mpsc::Sender<u64>,
}

pub struct Router {
    cfg: RouterConfig,
    files: FileOptions,
    ledger: Box<dyn LedgerStore>,
    reader: Box<dyn LogReader>,
    links: RouterLinks,
    open: HashMap<Partition, FileBuilder>,
    /// Seals from before a restart whose range is not fully read yet.
    known: HashMap<Partition, Vec<KnownSeal>>,
    /// Rebuilds of pending seals, by seal id.
    rebuilding: HashMap<u64, (Seal, FileBuilder)>,
    /// Open files last added to the process gauge.
    reported_open: u64,
    /// Ack time of the oldest record of each file handed to the uploader.
    uploading: HashMap<u64, i64>,
}

impl Router {
    /// Opens the ledger and positions the reader at the checkpoint. Spool
    /// files are deleted unless an upload still reads them.
    pub fn open(
        cfg: RouterConfig,
        links: RouterLinks,
        backend: &dyn RouterBackend,
    ) -> Result<Self, RouterError> {
        let spool = cfg.spool.clone();
        clean_spool(&spool, &links.signals.uploads.in_flight())?;
        let ledger = backend.open_ledger()?;
        let checkpoint = ledger.state().checkpoint;
        let mut known: HashMap<Partition, Vec<KnownSeal>> = HashMap::new();
        for (seal, done) in ledger.state().seals.values() {
            known.entry(seal.partition()).or_default().push(KnownSeal {
                seal: seal.clone(),
                done: *done,
            });
        }
        let mut reader = backend.open_reader(checkpoint)?;
        reader.release_below(checkpoint);
        Ok(Self {
            files: FileOptions {
                spool,
                level: cfg.settings().compression_level,
                pool: cfg.base.deflate.clone(),
            },
            cfg,
            ledger,
            reader,
            links,
            open: HashMap::new(),
            known,
            rebuilding: HashMap::new(),
            reported_open: 0,
            uploading: HashMap::new(),
        })
    }

    /// Runs until input is closed and everything is sealed and uploaded (or
    /// the shutdown timeout passes).
    pub fn run(&mut self, done: &mpsc::Receiver<u64>) -> Result<(), RouterError> {
        let mut shutdown_since: Option<Instant> = None;
        loop {
            let signals = Arc::clone(&self.links.signals);
            let seen = signals.wake.generation();
            if signals.uploads.take_spool_lost() {
                return Err(RouterError::SpoolLost);
            }
            if signals.aborted() {
                return Err(LedgerError::Fenced("this worker lost its lease".into()).into());
            }
            self.collect_done(done)?;
            let routed = self.route_some()?;
            self.seal_expired()?;
            self.advance_checkpoint()?;
            let caught_up = self.reader.caught_up();
            if caught_up && signals.input_closed() {
                let since = *shutdown_since.get_or_insert_with(Instant::now);
                self.seal_all()?;
                if self.ledger.state().min_pending_start().is_none() {
                    tracing::info!("router: everything uploaded");
                    return Ok(());
                }
                if since.elapsed() >= self.cfg.settings().shutdown_timeout {
                    tracing::warn!(
                        "router: shutdown timeout; pending files will upload at next start"
                    );
                    return Ok(());
                }
            }
            if routed == 0 {
                signals.wake.wait_since(seen, self.sleep_for());
            }
        }
    }

    fn sleep_for(&self) -> Duration {
        let oldest = self.open.values().map(|f| f.opened_at).min();
        let until_seal = oldest.map_or(Duration::from_millis(500), |t| {
            self.cfg
                .settings()
                .flush_interval
                .saturating_sub(t.elapsed())
        });
        until_seal.clamp(Duration::from_millis(1), Duration::from_millis(500))
    }

    /// Routes up to one turn of committed records.
    fn route_some(&mut self) -> Result<usize, RouterError> {
        let mut n = 0;
        let mut by_type = [0u64; 3];
        while n < TURN_RECORDS {
            let Some((lsn, payload)) = self.reader.next()? else {
                break;
            };
            let payload = payload.to_vec();
            match Record::decode(&payload) {
                Ok(rec) => {
                    by_type[DataType::ALL
                        .iter()
                        .position(|t| *t == rec.data_type)
                        .unwrap_or(0)] += 1;
                    self.route(lsn, &rec)?
                }
                Err(e) => {
                    METRICS.wal_bad_records.inc();
                    tracing::error!(pos = lsn, error = %e, "router: skipping undecodable log record");
                }
            }
            n += 1;
        }
        for (t, count) in DataType::ALL.into_iter().zip(by_type) {
            if count > 0 {
                METRICS.router_records.add(t, count);
            }
        }
        Ok(n)
    }

    /// When the record just read was acknowledged (now, if the log does
    /// not say).
    fn ack_ms(&self) -> i64 {
        self.reader
            .last_ack_ms()
            .unwrap_or_else(crate::clock::now_ms)
    }

    /// Reports the oldest acknowledged record this router has not seen in
    /// the bucket yet (for `hivestream_oldest_unuploaded_record_age_seconds`).
    fn report_freshness(&self) {
        let oldest = self
            .open
            .values()
            .map(|f| f.first_ack_ms)
            .chain(self.rebuilding.values().map(|(_, f)| f.first_ack_ms))
            .chain(self.uploading.values().copied())
            .chain(self.reader.oldest_unread_ack_ms())
            .min();
        crate::metrics::freshness::report(self.cfg.worker.as_str(), oldest);
    }

    fn route(&mut self, lsn: u64, rec: &Record<'_>) -> Result<(), RouterError> {
        if !self.rebuilding.is_empty() {
            self.finish_passed_rebuilds(lsn)?;
        }
        let p = Partition::of(rec.data_type, rec.time_ms);
        if let Some(seal) = self.known_seal(&p, lsn) {
            return self.replay_into(seal, lsn, rec);
        }
        if let Some(file) = self.open.get_mut(&p) {
            file.push(lsn, rec).map_err(self.spool_err())?;
        } else {
            if self.open.len() >= MAX_OPEN_FILES {
                self.seal_oldest()?;
            }
            let id = self.ledger.next_id();
            let mut file =
                FileBuilder::create(id, &self.files, lsn, rec, p).map_err(self.spool_err())?;
            file.first_ack_ms = self.ack_ms();
            self.open.insert(p, file);
        }
        let file = &self.open[&p];
        if file.compressed_bytes() >= self.cfg.settings().max_file_bytes || !p.data_type.is_hourly()
        {
            self.seal(&p)?;
        }
        Ok(())
    }

    fn spool_err(&self) -> impl Fn(std::io::Error) -> RouterError {
        let path = self.files.spool.clone();
        move |source| RouterError::Io {
            path: path.clone(),
            source,
        }
    }

    fn key_of(&self, f: &Finished) -> String {
        object_key(
            &self.cfg.base.prefix,
            &f.partition,
            f.first_time_ms,
            f.hash,
            &self.cfg.worker,
        )
    }

    /// Finishes the open file of `p`, records the seal, queues the upload.
    fn seal(&mut self, p: &Partition) -> Result<(), RouterError> {
        let Some(builder) = self.open.remove(p) else {
            return Ok(());
        };
        let f = builder.finish().map_err(self.spool_err())?;
        let key = self.key_of(&f);
        self.ledger.seal(Seal {
            id: f.id,
            data_type: p.data_type,
            hour: p.hour,
            start: f.start,
            end: f.end,
            key: key.clone(),
            records: f.records,
        })?;
        crate::failpoint::hit("router.after_seal");
        METRICS.files_sealed.inc(p.data_type);
        METRICS.file_bytes.observe(f.bytes as f64);
        METRICS.file_records.observe(f.records as f64);
        self.send_job(f.id, key, UploadKind::Upload, f);
        Ok(())
    }

    fn send_job(&mut self, id: u64, key: String, kind: UploadKind, f: Finished) {
        METRICS.pending_uploads.add(1);
        self.links.signals.uploads.in_flight().insert(id);
        self.uploading.insert(id, f.first_ack_ms);
        let job = UploadJob {
            id,
            key,
            kind,
            data_type: f.partition.data_type,
            first_ack_ms: f.first_ack_ms,
            path: f.path,
            bytes: f.bytes,
            records: f.records,
            done: self.links.done_tx.clone(),
            tracker: Arc::clone(&self.links.signals.uploads),
        };
        // The receiver lives as long as the runtime; if it is gone the
        // process is exiting and the seal is re-uploaded at next start.
        let _ = self.links.uploads.send(job);
    }

    fn seal_expired(&mut self) -> Result<(), RouterError> {
        let due: Vec<Partition> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened_at.elapsed() >= self.cfg.settings().flush_interval)
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            self.seal(&p)?;
        }
        Ok(())
    }

    fn seal_oldest(&mut self) -> Result<(), RouterError> {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.opened_at)
            .map(|(p, _)| *p);
        match oldest {
            Some(p) => self.seal(&p),
            None => Ok(()),
        }
    }

    fn seal_all(&mut self) -> Result<(), RouterError> {
        let all: Vec<Partition> = self.open.keys().copied().collect();
        for p in all {
            self.seal(&p)?;
        }
        Ok(())
    }

    fn collect_done(&mut self, done: &mpsc::Receiver<u64>) -> Result<(), RouterError> {
        let ids: Vec<u64> = done.try_iter().collect();
        for id in &ids {
            self.uploading.remove(id);
        }
        if !ids.is_empty() {
            self.ledger.done(&ids)?;
            crate::failpoint::hit("router.after_done");
        }
        Ok(())
    }

    /// Moves the checkpoint to the lowest position still needed: the reader's
    /// position, the start of an open or rebuilding file, or of a seal not
    /// yet uploaded.
    fn advance_checkpoint(&mut self) -> Result<(), RouterError> {
        let low = [
            Some(self.reader.position()),
            self.open.values().map(|f| f.start).min(),
            self.rebuilding.values().map(|(_, f)| f.start).min(),
            self.ledger.state().min_pending_start(),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("reader position is always there");
        self.report_open_files();
        self.report_freshness();
        if low > self.ledger.state().checkpoint {
            self.ledger.checkpoint(low)?;
            crate::failpoint::hit("router.after_checkpoint");
            self.reader.release_below(low);
        }
        Ok(())
    }
}

impl Router {
    /// Adds this router's change in open files to the process gauge (one
    /// process may run a router per log partition).
    fn report_open_files(&mut self) {
        let now = self.open.len() as u64;
        if now > self.reported_open {
            METRICS.open_files.add(now - self.reported_open);
        } else {
            METRICS.open_files.sub(self.reported_open - now);
        }
        self.reported_open = now;
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        METRICS.open_files.sub(self.reported_open);
        crate::metrics::freshness::report(self.cfg.worker.as_str(), None);
    }
}

/// Creates the spool directory and deletes every file in it except the
/// sealed files in `keep` (their uploads are still running).
fn clean_spool(spool: &Path, keep: &HashSet<u64>) -> Result<(), RouterError> {
    let io = |source| RouterError::Io {
        path: spool.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(spool).map_err(io)?;
    let kept: HashSet<PathBuf> = keep.iter().map(|id| spool_path(spool, *id)).collect();
    for entry in std::fs::read_dir(spool).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if !kept.contains(&path) {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    Ok(())
}
