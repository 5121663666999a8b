//! `hivestream collect`, `route` and `node`: one process running the
//! collector role, the router-worker role, or both, from the same
//! configuration as `serve` plus the cluster settings.
//!
//! - collect: the HTTP API over [`ClusterIngest`] and [`KvCohorts`]; no
//!   local state.
//! - route: a [`worker`](crate::worker) taking its share of the log
//!   partitions, the identity leader and the snapshot writer; spool files
//!   and the identity index in the data dir.
//!
//! Shutdown (SIGTERM): stop accepting, finish in-flight requests, then hand
//! every job over (seal, upload, checkpoint, release the lease).

use std::future::Future;
use std::sync::Arc;

use hivestream_core::collect::listener::serve_http;
use hivestream_core::collect::server::{app, ops_app, state};
use hivestream_core::config::Config;
use hivestream_core::route::RouterBase;
use hivestream_core::serve::{lock_data_dir, ServeError};
use hivestream_core::sink::open_for_uploads;
use thiserror::Error;
use tokio::sync::watch;

use crate::cohorts::{workspace_id, KvCohorts, SnapshotWriter};
use crate::collect::ClusterIngest;
use crate::identity::IdentityLeader;
use crate::setup::{connect, SetupError};
use crate::worker::{run_worker, TaskJob, WorkerNode};

/// Which roles this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub collect: bool,
    pub route: bool,
}

/// Why a node stopped with an error.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("workspace id: {0}")]
    Workspace(#[from] hivestream_core::state::cohorts::CohortError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A name for this process among the members: the configured worker id or
/// `node`, plus a random suffix (unique per start).
fn node_name(cfg: &Config) -> String {
    let base = cfg
        .worker_id
        .as_ref()
        .map_or("node", |w| w.as_str())
        .to_string();
    format!("{base}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Runs the roles until `shutdown` resolves.
pub async fn run_node(
    cfg: Config,
    roles: Roles,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let node = node_name(&cfg);
    hivestream_core::metrics::METRICS
        .flush_interval_seconds
        .set(cfg.router.flush_interval.as_secs_f64());
    let cluster = connect(&cfg.cluster, &node).await?;
    tracing::info!(%node, collect = roles.collect, route = roles.route, "connected to the NATS cluster");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut worker = None;
    let _lock = if roles.route {
        let lock = lock_data_dir(&cfg.data_dir)?;
        let store = open_for_uploads(&cfg).map_err(ServeError::from)?;
        let tick = cfg
            .router
            .flush_interval
            .min(std::time::Duration::from_secs(1))
            / 2;
        let tasks: Vec<Arc<dyn TaskJob>> = vec![
            Arc::new(IdentityLeader {
                cluster: cluster.clone(),
                data_dir: cfg.data_dir.clone(),
                cache_bytes: cfg.index_cache_bytes,
            }),
            Arc::new(SnapshotWriter {
                cluster: cluster.clone(),
                workspace: workspace_id(&cluster.cohorts, cfg.workspace_id).await?,
                interval: cfg.segment_snapshot_interval,
                tick,
            }),
        ];
        let me = WorkerNode {
            name: node.clone(),
            data_dir: cfg.data_dir.clone(),
        };
        worker = Some(tokio::spawn(run_worker(
            cluster.clone(),
            me,
            RouterBase::new(&cfg),
            store,
            tasks,
            stop_rx,
        )));
        Some(lock)
    } else {
        None
    };
    if roles.collect {
        collect(&cfg, cluster, shutdown).await?;
    } else {
        ops(&cfg, &node, shutdown).await?;
    }
    tracing::info!("stopping: handing jobs over");
    let _ = stop_tx.send(true);
    if let Some(w) = worker {
        let _ = w.await;
    }
    Ok(())
}

/// Binds `listen`; returns the listener and the address it got.
async fn bind(cfg: &Config) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), NodeError> {
    hivestream_core::collect::listener::bind(cfg.listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: cfg.listen,
            source,
        })
}

/// A worker's own HTTP listener: `/healthz` and `/metrics` only.
async fn ops(
    cfg: &Config,
    node: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let (listener, addr) = bind(cfg).await?;
    tracing::info!(%addr, node, "routing; metrics on this address");
    println!("routing as {node}, metrics on {addr}");
    serve_http(listener, ops_app(), cfg.connections, shutdown).await;
    Ok(())
}

async fn collect(
    cfg: &Config,
    cluster: crate::setup::Cluster,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let state = state(
        cfg,
        Arc::new(ClusterIngest::new(cluster.clone())),
        Arc::new(KvCohorts::new(
            cluster.cohorts.clone(),
            workspace_id(&cluster.cohorts, cfg.workspace_id).await?,
        )),
    );
    let (listener, addr) = bind(cfg).await?;
    tracing::info!(%addr, "collecting");
    println!("listening on {addr}");
    serve_http(listener, app(state), cfg.connections, shutdown).await;
    Ok(())
}
