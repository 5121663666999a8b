//! `hivestream serve`: wires the pieces together and runs them until the
//! shutdown future resolves.
//!
//! Start-up: lock the data dir, open the WAL (cutting a torn tail), start the
//! committer thread, the router thread (which replays from its checkpoint)
//! and the uploader task, then listen. Shutdown: stop accepting and finish
//! in-flight requests, let the committer drain, let the router seal every
//! open file and wait for uploads (up to `shutdown_timeout`).

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use hivestream_wal::{Wal, WalOptions};
use thiserror::Error;

use crate::collect::backend::LocalIngest;
use crate::collect::listener::serve_http;
use crate::collect::server::app;
use crate::config::Config;
use crate::log::ingest::{spawn_committer, CommitterOutputs, Limits};
use crate::log::progress::WalProgress;
use crate::log::replay::{replay_identity, ReplayError};
use crate::route::keys::WorkerId;
use crate::route::upload::run_uploader;
use crate::route::{
    run_router, LocalBackend, Router, RouterBase, RouterError, RouterLinks, RouterSignals,
};
use crate::sink::{open_for_uploads, SinkError};
use crate::snapshot::run_snapshotter;
use crate::state::cohorts::CohortStore;
use crate::state::identity::{IdentityError, IdentityIndex};
use crate::state::index_db::IndexDb;

/// Why `serve` stopped with an error.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another hivestream process is using {0} (its LOCK file is held)")]
    Locked(PathBuf),
    #[error("data directory format: {0}")]
    Format(#[from] crate::data_format::FormatError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Wal(#[from] hivestream_wal::WalError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("worker id: {0}")]
    WorkerId(String),
    #[error("workspace id {0:?} kept in the data dir is not a UUID")]
    WorkspaceId(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("index: {0}")]
    Index(#[from] crate::state::index_db::IndexDbError),
}

fn data_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Takes an exclusive lock on the data dir for the life of the process and
/// checks it is of a format this release reads (see [`crate::data_format`]).
pub fn lock_data_dir(dir: &Path) -> Result<File, ServeError> {
    std::fs::create_dir_all(dir).map_err(data_err(dir))?;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(data_err(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(ServeError::Locked(dir.to_path_buf()))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(data_err(&path)(e)),
    }
    crate::data_format::check(dir)?;
    Ok(file)
}

/// The id kept in `data_dir/name`, or `make()`'s, written there on first
/// start so that it stays the same across restarts.
fn kept_id(
    data_dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<String, ServeError> {
    let path = data_dir.join(name);
    let mut text = String::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_string(&mut text).map_err(data_err(&path))?;
            return Ok(text.trim().to_string());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(data_err(&path)(e)),
    }
    let id = make();
    crate::disk::replace_file(&path, id.as_bytes()).map_err(data_err(&path))?;
    Ok(id)
}

/// The configured worker id, or the one kept in the data dir, so file
/// names stay stable across restarts.
fn worker_id(cfg: &Config) -> Result<WorkerId, ServeError> {
    if let Some(id) = &cfg.worker_id {
        return Ok(id.clone());
    }
    let id = kept_id(&cfg.data_dir, "worker_id", || {
        format!("w{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
    })?;
    WorkerId::parse(&id).map_err(|e| ServeError::WorkerId(e.to_string()))
}

/// The configured workspace id, or the one kept in the data dir.
fn workspace_id(cfg: &Config) -> Result<uuid::Uuid, ServeError> {
    if let Some(id) = cfg.workspace_id {
        return Ok(id);
    }
    let id = kept_id(&cfg.data_dir, "workspace_id", || {
        uuid::Uuid::new_v4().to_string()
    })?;
    uuid::Uuid::try_parse(&id).map_err(|_| ServeError::WorkspaceId(id))
}

/// The committer's limits for this data disk; also published as gauges.
fn limits(cfg: &Config, disk_total: u64) -> Limits {
    let limits = Limits {
        max_backlog_bytes: cfg.max_backlog_bytes,
        min_free_bytes: cfg
            .min_free_bytes
            .unwrap_or_else(|| crate::disk::default_reserve(disk_total)),
    };
    let m = &crate::metrics::METRICS;
    m.backlog_limit_bytes.set(limits.max_backlog_bytes);
    m.disk_reserve_bytes.set(limits.min_free_bytes);
    m.flush_interval_seconds
        .set(cfg.router.flush_interval.as_secs_f64());
    limits
}

/// Opens the WAL (cutting a torn tail) and the identity index, replayed
/// from the WAL up to its end.
fn open_log(
    cfg: &Config,
    disk_total: u64,
) -> Result<(Wal, Arc<IndexDb>, IdentityIndex), ServeError> {
    let wal_opts = WalOptions {
        segment_bytes: crate::disk::segment_bytes(cfg.max_backlog_bytes, disk_total),
    };
    let (wal, recovery) = Wal::open(cfg.data_dir.join("wal"), wal_opts)?;
    if recovery.truncated_bytes > 0 {
        tracing::warn!(
            bytes = recovery.truncated_bytes,
            "WAL: cut a torn tail left by a crash (never acknowledged)"
        );
    }
    let db = IndexDb::open(&cfg.data_dir.join("index.redb"), cfg.index_cache_bytes)?;
    let mut identity = IdentityIndex::open(Arc::clone(&db))?;
    replay_identity(&mut identity, wal.dir(), wal.end_lsn())?;
    identity.set_dedup_limits(cfg.dedup);
    Ok((wal, db, identity))
}

/// Opens the router (so that a configuration or permission problem fails
/// the start-up) and runs it on its own thread under the supervisor.
fn start_router(
    cfg: &Config,
    worker: &WorkerId,
    progress: Arc<WalProgress>,
    signals: Arc<RouterSignals>,
) -> Result<(JoinHandle<Result<(), RouterError>>, UploadReceiver), ServeError> {
    let (uploads, upload_rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, done_rx) = mpsc::channel();
    let router_cfg =
        RouterBase::new(cfg).router(cfg.data_dir.join("router").join("spool"), worker.clone());
    let backend = LocalBackend {
        data_dir: cfg.data_dir.clone(),
        progress,
    };
    let links = RouterLinks {
        signals,
        uploads,
        done_tx,
    };
    let first = Router::open(router_cfg.clone(), links.clone(), &backend)?;
    let router = std::thread::Builder::new()
        .name("router".into())
        .spawn(move || run_router(router_cfg, links, done_rx, first, &backend))
        .expect("spawn router thread");
    Ok((router, upload_rx))
}

type UploadReceiver = tokio::sync::mpsc::UnboundedReceiver<crate::route::UploadJob>;

/// Runs the collector and router until `shutdown` resolves; prints
/// `listening on ADDR` on stdout once the socket is bound.
///
/// ```text
///  HTTP ──▶ committer (WAL) ──WalProgress──▶ router ──▶ uploader ──▶ sink
///                 │                           ▲ RouterSignals
///                 └── Admission ──▶ readyz    └── closed once the committer ends
/// ```
pub async fn serve(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let worker = worker_id(&cfg)?;
    let store = open_for_uploads(&cfg)?;
    let fs = crate::disk::space(&cfg.data_dir).map_err(data_err(&cfg.data_dir))?;
    let limits = limits(&cfg, fs.total);
    let (wal, db, identity) = open_log(&cfg, fs.total)?;
    let signals = Arc::new(RouterSignals::default());
    let outputs = CommitterOutputs {
        progress: Arc::new(WalProgress::new(Arc::clone(&signals.wake))),
        admission: Arc::default(),
    };
    let (appender, committer) = spawn_committer(wal, identity, outputs.clone(), limits);
    let (router, upload_rx) = start_router(&cfg, &worker, outputs.progress, Arc::clone(&signals))?;
    tokio::spawn(run_uploader(
        store,
        upload_rx,
        cfg.router.upload_concurrency,
    ));
    let cohorts = CohortStore::new(Arc::clone(&db), workspace_id(&cfg)?)
        .map_err(|e| IdentityError::Db(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tick = cfg
        .router
        .flush_interval
        .min(std::time::Duration::from_secs(1))
        / 2;
    let snapshotter = tokio::spawn(run_snapshotter(
        cohorts.clone(),
        appender.clone(),
        cfg.segment_snapshot_interval,
        tick,
        stop_rx,
    ));
    let ingest = Arc::new(LocalIngest {
        appender,
        db,
        admission: outputs.admission,
    });
    let state = crate::collect::server::state(&cfg, ingest, Arc::new(cohorts));
    listen(&cfg, &worker, app(state), shutdown).await?;
    tracing::info!("stopped accepting requests; sealing and uploading");
    // The snapshotter writes a last snapshot if one is due, then drops its
    // appender, which lets the committer finish; once it has, no record
    // will come, and the router seals and uploads what it read.
    let _ = stop_tx.send(true);
    let _ = snapshotter.await;
    let joined = tokio::task::spawn_blocking(move || {
        let _ = committer.join();
        signals.close_input();
        router.join()
    })
    .await;
    match joined {
        Ok(Ok(result)) => result.map_err(ServeError::from),
        _ => Err(RouterError::Internal("router thread panicked".into()).into()),
    }
}

/// Binds the listener, says so, and serves HTTP until `shutdown`.
async fn listen(
    cfg: &Config,
    worker: &WorkerId,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (listener, addr) = crate::collect::listener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: cfg.listen,
            source,
        })?;
    tracing::info!(%addr, worker = worker.as_str(), sink = ?cfg.sink, prefix = %cfg.prefix, objects = %cfg.s3.objects.describe(), "hivestream serving");
    println!("listening on {addr}");
    serve_http(listener, app, cfg.connections, shutdown).await;
    Ok(())
}
