//! The router worker: takes its share of the cluster's jobs (one per log
//! partition, plus the identity leader and the snapshot writer), each under
//! a lease, and runs them.
//!
//! ```text
//!   every TTL/4:  renew leases ──lost──▶ abort that job at once
//!                 list members (leases member.*) ──▶ assign() ──▶ claim mine, hand over the rest
//!   route job:    Router thread (core) over JsLogReader + KvLedger ──▶ shared uploader ──▶ S3
//! ```
//!
//! A job handed over is stopped gracefully (the router seals what it has,
//! waits for its uploads, writes its checkpoint) while its lease is still
//! renewed, and only then released; a job whose lease is lost is aborted
//! without sealing anything more. Ledger fencing makes both safe even when
//! this worker learns late: a worker paused past its lease finds its next
//! ledger write refused.
//!
//! Which jobs to hold is the [`JobTable`]'s decision, over any
//! [`Leases`](hivestream_core::state::lease::Leases) (`KvLeases` here,
//! `MemoryLeases` in its tests); this module starts them: the `Launcher`
//! runs a router thread per partition and a task per [`TaskJob`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_trait::async_trait;
use hivestream_core::log::{LogReader, Pos};
use hivestream_core::route::keys::WorkerId;
use hivestream_core::route::ledger::LedgerStore;
use hivestream_core::route::upload::{run_uploader, UploadJob};
use hivestream_core::route::{
    run_router, Router, RouterBackend, RouterBase, RouterConfig, RouterError, RouterLinks,
    RouterSignals,
};
use hivestream_core::state::lease::Lease;
use object_store::ObjectStore;
use tokio::sync::watch;

use crate::dedup::KvDedup;
use crate::lease::KvLeases;
use crate::ledger::KvLedger;
use crate::log::{JsLogReader, ReadOptions};
use crate::names::LogPartition;
use crate::setup::Cluster;

mod jobs;

pub use jobs::{JobTable, Launch, RunningJob};

/// This process among the workers; how it routes is a [`RouterBase`].
#[derive(Debug, Clone)]
pub struct WorkerNode {
    /// Its name among the members (unique per start).
    pub name: String,
    /// Spool files go to `{data_dir}/spool/{partition}`.
    pub data_dir: PathBuf,
}

/// A job that is not a log partition (identity leader, snapshot writer):
/// started with a stop signal, which it obeys promptly.
#[async_trait]
pub trait TaskJob: Send + Sync + 'static {
    /// Its lease name.
    fn name(&self) -> String;
    /// Runs until `stop` turns true or it fails. `lease` shows every
    /// renewal: the job must stop once it is [`Lease::expired`] (a paused
    /// process learns it there first).
    async fn run(&self, lease: watch::Receiver<Lease>, stop: watch::Receiver<bool>);
}

/// A running job.
enum Running {
    Route {
        signals: Arc<RouterSignals>,
        thread: std::thread::JoinHandle<Result<(), RouterError>>,
    },
    Task {
        stop: watch::Sender<bool>,
        lease: watch::Sender<Lease>,
        handle: tokio::task::JoinHandle<()>,
    },
}

impl RunningJob for Running {
    fn finished(&self) -> bool {
        match self {
            Running::Route { thread, .. } => thread.is_finished(),
            Running::Task { handle, .. } => handle.is_finished(),
        }
    }

    /// Asks for a graceful stop (seal, upload, checkpoint).
    fn stop(&self) {
        match self {
            Running::Route { signals, .. } => signals.close_input(),
            Running::Task { stop, .. } => {
                let _ = stop.send(true);
            }
        }
    }

    /// Stops at once: the lease is lost.
    fn abort(&self) {
        match self {
            Running::Route { signals, .. } => signals.abort(),
            Running::Task { stop, handle, .. } => {
                let _ = stop.send(true);
                handle.abort();
            }
        }
    }

    /// Shows a task every renewal.
    fn renewed(&self, renewed: &Lease) {
        if let Running::Task { lease, .. } = self {
            let _ = lease.send(renewed.clone());
        }
    }

    /// Logs how a router ended.
    fn join(self, name: &str) {
        if let Running::Route { thread, .. } = self {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(job = %name, error = %e, "worker: router ended"),
                Err(_) => tracing::error!(job = %name, "worker: router thread panicked"),
            }
        }
    }
}

/// Where a partition's router reads and records.
struct KvBackend {
    cluster: Cluster,
    partition: LogPartition,
    node: String,
    signals: Arc<RouterSignals>,
    rt: tokio::runtime::Handle,
}

impl KvBackend {
    /// Events partitions drop later copies of client-id events.
    fn dedup(&self) -> Option<KvDedup> {
        matches!(self.partition, LogPartition::Events(_))
            .then(|| KvDedup::new(self.cluster.dedup.clone()))
    }
}

impl RouterBackend for KvBackend {
    fn open_ledger(&self) -> Result<Box<dyn LedgerStore>, RouterError> {
        let key = self.partition.ledger_key();
        let ledger = KvLedger::take_over(self.cluster.ledger.clone(), &key, &self.node, &self.rt)?;
        Ok(Box::new(ledger))
    }

    fn open_reader(&self, from: Pos) -> Result<Box<dyn LogReader>, RouterError> {
        let (_, subject) = self.cluster.names.stream_subject(self.partition);
        let stream = match self.partition {
            LogPartition::Events(_) => self.cluster.events.clone(),
            LogPartition::Identity => self.cluster.identity.clone(),
        };
        Ok(Box::new(JsLogReader::open(
            stream,
            subject,
            from,
            Arc::clone(&self.signals.wake),
            ReadOptions {
                purge: self.partition.purges(),
                dedup: self.dedup(),
            },
            &self.rt,
        )))
    }
}

/// Starts this worker's jobs: a router thread per log partition, a task
/// per [`TaskJob`].
struct Launcher {
    cluster: Cluster,
    node: WorkerNode,
    base: RouterBase,
    tasks: Vec<Arc<dyn TaskJob>>,
    uploads: tokio::sync::mpsc::UnboundedSender<UploadJob>,
    /// Per partition, kept across restarts of its router on this worker, so
    /// uploads still running keep their spool files.
    signals: HashMap<LogPartition, Arc<RouterSignals>>,
    rt: tokio::runtime::Handle,
}

/// Runs the worker until `stop` turns true, then hands everything over.
pub async fn run_worker(
    cluster: Cluster,
    node: WorkerNode,
    base: RouterBase,
    store: Arc<dyn ObjectStore>,
    tasks: Vec<Arc<dyn TaskJob>>,
    mut stop: watch::Receiver<bool>,
) {
    let (uploads, upload_rx) = tokio::sync::mpsc::unbounded_channel();
    let concurrency = base.settings.upload_concurrency;
    let uploader = tokio::spawn(run_uploader(store, upload_rx, concurrency));
    let ttl = cluster.settings.lease_ttl;
    let leases = Arc::new(KvLeases::new(cluster.leases.clone(), ttl));
    let mut table = JobTable::new(leases, node.name.clone());
    let mut launcher = Launcher {
        cluster,
        node,
        base,
        tasks,
        uploads,
        signals: HashMap::new(),
        rt: tokio::runtime::Handle::current(),
    };
    let tick = (ttl / 4).max(Duration::from_millis(250));
    let jobs = launcher.job_names();
    loop {
        table.turn(&jobs, &mut launcher).await;
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => break,
        }
    }
    table
        .hand_over_all(tick.min(Duration::from_millis(200)))
        .await;
    drop(launcher);
    let _ = uploader.await;
}

impl Launch for Launcher {
    type Job = Running;

    fn launch(&mut self, job: &str, lease: Lease) -> Option<Running> {
        if let Some(task) = self.tasks.iter().find(|t| t.name() == job) {
            let (stop, rx) = watch::channel(false);
            let (lease_tx, lease_rx) = watch::channel(lease);
            let task = Arc::clone(task);
            let handle = tokio::spawn(async move { task.run(lease_rx, rx).await });
            return Some(Running::Task {
                stop,
                lease: lease_tx,
                handle,
            });
        }
        let partition = LogPartition::all(self.cluster.settings.partitions)
            .into_iter()
            .find(|p| p.lease() == job)?;
        Some(self.start_router(partition))
    }
}

impl Launcher {
    /// Every job's lease name, partitions first.
    fn job_names(&self) -> Vec<String> {
        let mut jobs: Vec<String> = LogPartition::all(self.cluster.settings.partitions)
            .into_iter()
            .map(|p| p.lease())
            .collect();
        jobs.extend(self.tasks.iter().map(|t| t.name()));
        jobs
    }

    fn start_router(&mut self, partition: LogPartition) -> Running {
        let signals = Arc::clone(self.signals.entry(partition).or_default());
        signals.rearm();
        let spool = self
            .node
            .data_dir
            .join("spool")
            .join(partition.ledger_key());
        let id = WorkerId::parse(&partition.worker_id()).expect("partition ids are valid");
        let cfg = self.base.router(spool, id);
        let backend = KvBackend {
            cluster: self.cluster.clone(),
            partition,
            node: self.node.name.clone(),
            signals: Arc::clone(&signals),
            rt: self.rt.clone(),
        };
        let (done_tx, done_rx) = mpsc::channel();
        let links = RouterLinks {
            signals: Arc::clone(&signals),
            uploads: self.uploads.clone(),
            done_tx,
        };
        let thread = std::thread::Builder::new()
            .name(format!("router-{}", partition.ledger_key()))
            .spawn(move || route_partition(cfg, links, done_rx, backend))
            .expect("spawn router thread");
        Running::Route { signals, thread }
    }
}

/// A partition's router thread: open (taking the ledger over), then run
/// under the supervisor until stopped or fenced.
fn route_partition(
    cfg: RouterConfig,
    links: RouterLinks,
    done_rx: mpsc::Receiver<u64>,
    backend: KvBackend,
) -> Result<(), RouterError> {
    let signals = Arc::clone(&links.signals);
    let first = loop {
        match Router::open(cfg.clone(), links.clone(), &backend) {
            Ok(r) => break r,
            Err(e) if e.is_fenced() || signals.aborted() => return Err(e),
            Err(e) if signals.input_closed() => return Err(e),
            Err(e) => {
                tracing::warn!(partition = %backend.partition.ledger_key(), error = %e, "router: cannot open; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    run_router(cfg, links, done_rx, first, &backend)
}

#[cfg(test)]
mod tests;
