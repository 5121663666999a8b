//! Which jobs this worker holds, and the leases behind them: its
//! membership (`member.{node}`), the jobs [`assign`] gives it (claimed), the
//! jobs it holds that are another's now (stopped gracefully, then
//! released), renewals every turn, and a lost lease (the job aborted at
//! once).
//!
//! [`JobTable`] decides; a [`Launch`] starts the jobs it claims, and each
//! [`RunningJob`] obeys stop and abort. The table reads nothing but its
//! [`Leases`], so it runs on `KvLeases` in a cluster and on `MemoryLeases`
//! in tests, with fake jobs.
//!
//! Invariant: a job runs here only while this worker holds its lease; a
//! job handed over keeps its lease (renewed) until it has finished, and
//! only then is the lease released, so the next owner can only start after
//! this one stopped (or after the lease expired, when ledger fencing stops
//! a late writer).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hivestream_core::metrics::METRICS;
use hivestream_core::state::lease::{Lease, Leases};

use crate::assign::assign;

/// Prefix of the membership leases; their holders are the members.
const MEMBER_PREFIX: &str = "member.";

/// A job started under a lease.
pub trait RunningJob: Send {
    /// Whether it has ended (handed over, or failed).
    fn finished(&self) -> bool;
    /// Asks for a graceful stop; its lease is renewed until it has finished.
    fn stop(&self);
    /// Stops at once: the lease is lost.
    fn abort(&self);
    /// Its lease was renewed into `lease`.
    fn renewed(&self, _lease: &Lease) {}
    /// Collects the outcome of the finished job `name`, before its lease is
    /// released.
    fn join(self, _name: &str)
    where
        Self: Sized,
    {
    }
}

/// Starts the jobs a [`JobTable`] claims.
pub trait Launch: Send {
    type Job: RunningJob;
    /// Starts `name` under `lease`; `None` for a job it does not know (the
    /// lease is then released).
    fn launch(&mut self, name: &str, lease: Lease) -> Option<Self::Job>;
}

/// A job this worker holds.
struct Held<J> {
    lease: Lease,
    job: J,
    /// Handed over: asked to stop, released once finished.
    stopping: bool,
}

/// The jobs this worker holds, and its membership.
pub struct JobTable<J> {
    leases: Arc<dyn Leases>,
    node: String,
    member: Option<Lease>,
    held: HashMap<String, Held<J>>,
}

impl<J: RunningJob> JobTable<J> {
    /// `node` is this worker's name among the members (unique per start).
    pub fn new(leases: Arc<dyn Leases>, node: impl Into<String>) -> Self {
        Self {
            leases,
            node: node.into(),
            member: None,
            held: HashMap::new(),
        }
    }

    /// Whether this worker holds its membership lease.
    pub fn is_member(&self) -> bool {
        self.member.is_some()
    }

    /// The jobs held now (including those being handed over), by name.
    pub fn held(&self) -> Vec<String> {
        let mut names: Vec<String> = self.held.keys().cloned().collect();
        names.sort();
        names
    }

    /// One turn: keep the membership, renew (aborting what is lost),
    /// release what finished, then claim this worker's share of `jobs` and
    /// hand over what is another's.
    pub async fn turn(&mut self, jobs: &[String], launcher: &mut impl Launch<Job = J>) {
        self.keep_membership().await;
        self.renew_jobs().await;
        self.reap_finished().await;
        if self.member.is_some() {
            self.rebalance(jobs, launcher).await;
        }
    }

    /// Renews the membership, or claims it (again).
    async fn keep_membership(&mut self) {
        if let Some(lease) = self.member.as_mut() {
            match self.leases.renew(lease).await {
                Ok(true) => return,
                Ok(false) => tracing::warn!("worker: membership lease lost; claiming it again"),
                Err(e) => {
                    tracing::warn!(error = %e, "worker: cannot renew membership");
                    if !lease.expired() {
                        return;
                    }
                }
            }
        }
        let name = format!("{MEMBER_PREFIX}{}", self.node);
        self.member = match self.leases.claim(&name, &self.node).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "worker: cannot join the cluster yet");
                None
            }
        };
    }

    /// Claims the jobs [`assign`] gives this worker and hands over the ones
    /// it gives another member.
    async fn rebalance(&mut self, jobs: &[String], launcher: &mut impl Launch<Job = J>) {
        let members: Vec<String> = match self.leases.list(MEMBER_PREFIX).await {
            Ok(list) => list.into_iter().map(|(_, owner)| owner).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "worker: cannot list members");
                return;
            }
        };
        for (job, owner) in &assign(jobs, &members) {
            let mine = *owner == self.node;
            match (mine, self.held.get_mut(job)) {
                (true, None) => self.try_start(job, launcher).await,
                (false, Some(h)) if !h.stopping => {
                    tracing::info!(%job, to = %owner, "worker: handing a job over");
                    h.stopping = true;
                    h.job.stop();
                }
                _ => {}
            }
        }
        METRICS.cluster_jobs_held.set(self.held.len() as u64);
    }

    /// Renews every job's lease; aborts the jobs whose lease is lost.
    async fn renew_jobs(&mut self) {
        let mut lost = Vec::new();
        for (name, h) in self.held.iter_mut() {
            match self.leases.renew(&mut h.lease).await {
                Ok(true) => h.job.renewed(&h.lease),
                Ok(false) => lost.push(name.clone()),
                Err(e) if h.lease.expired() => {
                    tracing::warn!(job = %name, error = %e, "worker: lease expired unrenewed");
                    lost.push(name.clone());
                }
                Err(e) => {
                    tracing::warn!(job = %name, error = %e, "worker: renewal failed; retrying")
                }
            }
        }
        for name in lost {
            let h = self.held.remove(&name).expect("held");
            METRICS.leases_lost.inc();
            tracing::warn!(job = %name, "worker: lease lost; stopping the job at once");
            h.job.abort();
        }
        METRICS.cluster_jobs_held.set(self.held.len() as u64);
    }

    /// Releases the leases of jobs that ended (handed over, or failed).
    async fn reap_finished(&mut self) {
        let ended: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.job.finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in ended {
            let h = self.held.remove(&name).expect("held");
            h.job.join(&name);
            if let Err(e) = self.leases.release(h.lease).await {
                tracing::warn!(job = %name, error = %e, "worker: release failed; the lease expires");
            }
        }
    }

    /// Claims `job` and starts it, unless its previous owner still holds it.
    async fn try_start(&mut self, job: &str, launcher: &mut impl Launch<Job = J>) {
        let lease = match self.leases.claim(job, &self.node).await {
            Ok(Some(l)) => l,
            Ok(None) => return, // still held by its previous owner
            Err(e) => {
                tracing::warn!(%job, error = %e, "worker: cannot claim");
                return;
            }
        };
        let Some(running) = launcher.launch(job, lease.clone()) else {
            let _ = self.leases.release(lease).await;
            return;
        };
        tracing::info!(%job, node = %self.node, "worker: job started");
        let held = Held {
            lease,
            job: running,
            stopping: false,
        };
        self.held.insert(job.to_string(), held);
    }

    /// Stops every job gracefully (renewing leases meanwhile, looking every
    /// `pause`), releases the leases and leaves the cluster.
    pub async fn hand_over_all(&mut self, pause: Duration) {
        for h in self.held.values_mut() {
            h.stopping = true;
            h.job.stop();
        }
        while !self.held.is_empty() {
            self.renew_jobs().await;
            self.reap_finished().await;
            if let Some(m) = self.member.as_mut() {
                let _ = self.leases.renew(m).await;
            }
            tokio::time::sleep(pause).await;
        }
        if let Some(m) = self.member.take() {
            let _ = self.leases.release(m).await;
        }
        tracing::info!("worker: every job handed over");
    }
}
