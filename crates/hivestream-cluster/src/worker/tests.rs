//! The job table on in-process leases with a hand-moved clock and fake
//! jobs: who holds which job as nodes join, leave, pause and come back.
//! No NATS, no sleeping: a TTL passes when a test says so.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivestream_core::state::lease::{Lease, Leases, ManualClock, MemoryLeases};

use super::jobs::{JobTable, Launch, RunningJob};
use crate::assign::assign;

const TTL: Duration = Duration::from_secs(10);

/// What a fake job was told.
#[derive(Default)]
struct Told {
    stopped: AtomicBool,
    aborted: AtomicBool,
    /// Still finishing after a stop (sealing, uploading), until the test
    /// clears it.
    lingering: AtomicBool,
}

/// A job that ends when it is aborted, or told to stop and not lingering.
struct FakeJob(Arc<Told>);

impl RunningJob for FakeJob {
    fn finished(&self) -> bool {
        let stopped = self.0.stopped.load(Ordering::SeqCst);
        let lingering = self.0.lingering.load(Ordering::SeqCst);
        self.0.aborted.load(Ordering::SeqCst) || (stopped && !lingering)
    }

    fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
    }

    fn abort(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
    }
}

/// Starts fake jobs of the names it knows, and remembers each start.
struct FakeLauncher {
    known: Vec<String>,
    /// Jobs started linger after a stop.
    linger: bool,
    started: Vec<(String, Arc<Told>)>,
}

impl Launch for FakeLauncher {
    type Job = FakeJob;

    fn launch(&mut self, name: &str, _lease: Lease) -> Option<FakeJob> {
        if !self.known.iter().any(|k| k == name) {
            return None;
        }
        let told = Arc::new(Told {
            lingering: AtomicBool::new(self.linger),
            ..Told::default()
        });
        self.started.push((name.to_string(), Arc::clone(&told)));
        Some(FakeJob(told))
    }
}

/// One worker: its table and what it started.
struct Node {
    name: String,
    table: JobTable<FakeJob>,
    launcher: FakeLauncher,
}

impl Node {
    fn new(leases: &Arc<MemoryLeases>, name: &str) -> Self {
        Self {
            name: name.to_string(),
            table: JobTable::new(Arc::clone(leases) as Arc<dyn Leases>, name),
            launcher: FakeLauncher {
                known: jobs(),
                linger: false,
                started: Vec::new(),
            },
        }
    }

    async fn turn(&mut self) {
        self.table.turn(&jobs(), &mut self.launcher).await;
    }

    fn held(&self) -> BTreeSet<String> {
        self.table.held().into_iter().collect()
    }

    /// Jobs it started that were then aborted.
    fn aborted(&self) -> BTreeSet<String> {
        self.told(|t| t.aborted.load(Ordering::SeqCst))
    }

    /// Jobs it started that were then stopped gracefully.
    fn stopped(&self) -> BTreeSet<String> {
        self.told(|t| t.stopped.load(Ordering::SeqCst))
    }

    fn told(&self, what: impl Fn(&Told) -> bool) -> BTreeSet<String> {
        let started = self.launcher.started.iter();
        started
            .filter(|(_, t)| what(t))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The jobs [`assign`] gives it among `members`.
    fn share(&self, members: &[&str]) -> BTreeSet<String> {
        let members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        assign(&jobs(), &members)
            .into_iter()
            .filter(|(_, owner)| *owner == self.name)
            .map(|(job, _)| job)
            .collect()
    }
}

/// Six partitions and two tasks.
fn jobs() -> Vec<String> {
    let mut jobs: Vec<String> = (0..6).map(|i| format!("route.ev.{i:02}")).collect();
    jobs.extend(["identity".to_string(), "snapshots".to_string()]);
    jobs
}

fn all() -> BTreeSet<String> {
    jobs().into_iter().collect()
}

/// No job is held by two nodes, and each held job's lease is its holder's.
async fn assert_exclusive(leases: &MemoryLeases, nodes: &[&Node]) {
    let mut seen = BTreeSet::new();
    for node in nodes {
        for job in node.held() {
            assert!(seen.insert(job.clone()), "{job} held twice");
            let holder = leases.holder(&job).await.unwrap();
            assert_eq!(holder.as_deref(), Some(node.name.as_str()), "{job}");
        }
    }
}

fn leases(clock: &Arc<ManualClock>) -> Arc<MemoryLeases> {
    Arc::new(MemoryLeases::with_clock(TTL, Arc::clone(clock)))
}

#[tokio::test]
async fn a_single_node_takes_every_job() {
    let leases = leases(&Arc::new(ManualClock::new()));
    let mut a = Node::new(&leases, "a");
    a.turn().await;
    assert!(a.table.is_member());
    assert_eq!(a.held(), all());
    a.turn().await;
    assert_eq!(a.held(), all(), "renewed, still held");
    assert_eq!(a.launcher.started.len(), jobs().len(), "each started once");
    assert!(a.stopped().is_empty() && a.aborted().is_empty());
    assert_exclusive(&leases, &[&a]).await;
}

#[tokio::test]
async fn a_joining_node_gets_its_share_after_the_first_lets_go() {
    let leases = leases(&Arc::new(ManualClock::new()));
    let mut a = Node::new(&leases, "a");
    let mut b = Node::new(&leases, "b");
    a.turn().await;
    let moving = b.share(&["a", "b"]);
    assert!(!moving.is_empty() && moving.len() < jobs().len());
    for _ in 0..3 {
        b.turn().await;
        assert_exclusive(&leases, &[&a, &b]).await;
        a.turn().await;
        assert_exclusive(&leases, &[&a, &b]).await;
    }
    b.turn().await;
    assert_exclusive(&leases, &[&a, &b]).await;
    assert_eq!(a.held(), a.share(&["a", "b"]));
    assert_eq!(b.held(), moving);
    assert_eq!(a.stopped(), moving, "a stopped exactly what moved");
    assert!(a.aborted().is_empty(), "a handed over, nothing was lost");
}

#[tokio::test]
async fn a_job_handed_over_keeps_its_lease_until_it_finished() {
    let leases = leases(&Arc::new(ManualClock::new()));
    let mut a = Node::new(&leases, "a");
    a.launcher.linger = true;
    let mut b = Node::new(&leases, "b");
    a.turn().await;
    b.turn().await; // b joins; a holds everything
    assert!(b.held().is_empty(), "nothing to take while a holds it");
    a.turn().await; // a sees b and asks b's share to stop
    let moving = b.share(&["a", "b"]);
    assert_eq!(a.stopped(), moving);
    for _ in 0..3 {
        a.turn().await;
        b.turn().await;
        assert_eq!(a.held(), all(), "stopping jobs are still held");
        assert!(b.held().is_empty(), "a stopping job is not claimable");
        assert_exclusive(&leases, &[&a, &b]).await;
    }
    assert_eq!(a.stopped(), moving, "only what moved was asked to stop");
    for (_, told) in &a.launcher.started {
        told.lingering.store(false, Ordering::SeqCst);
    }
    a.turn().await; // finished: released
    assert_eq!(a.held(), a.share(&["a", "b"]));
    b.turn().await;
    assert_eq!(b.held(), moving);
    assert_exclusive(&leases, &[&a, &b]).await;
    assert!(a.aborted().is_empty());
}

#[tokio::test]
async fn a_paused_node_loses_its_jobs_to_the_other() {
    let clock = Arc::new(ManualClock::new());
    let leases = leases(&clock);
    let mut a = Node::new(&leases, "a");
    let mut b = Node::new(&leases, "b");
    a.turn().await;
    b.turn().await;
    a.turn().await;
    b.turn().await;
    a.turn().await;
    b.turn().await;
    assert_eq!(b.held(), b.share(&["a", "b"]));
    // a pauses; b keeps renewing until a's leases run out.
    clock.advance(TTL / 2);
    b.turn().await;
    clock.advance(TTL / 2);
    b.turn().await;
    assert_eq!(b.held(), all(), "b took every job once a's leases expired");
    assert_exclusive(&leases, &[&b]).await;
}

#[tokio::test]
async fn a_returning_zombie_drops_what_it_lost() {
    let clock = Arc::new(ManualClock::new());
    let leases = leases(&clock);
    let mut a = Node::new(&leases, "a");
    let mut b = Node::new(&leases, "b");
    a.turn().await; // a holds everything, b is not there yet
    clock.advance(TTL);
    b.turn().await; // a is paused past its TTL: b takes everything
    assert_eq!(b.held(), all());
    a.turn().await; // a wakes up
    assert_eq!(a.aborted(), all(), "every lost job is aborted at once");
    assert!(a.held().is_empty(), "a keeps none of them");
    assert_exclusive(&leases, &[&a, &b]).await;
    // a is a member again and gets its share the ordinary way.
    for _ in 0..3 {
        b.turn().await;
        a.turn().await;
        assert_exclusive(&leases, &[&a, &b]).await;
    }
    assert_eq!(a.held(), a.share(&["a", "b"]));
    assert_eq!(b.held(), b.share(&["a", "b"]));
}

#[tokio::test]
async fn a_node_paused_with_no_one_else_starts_its_jobs_again() {
    let clock = Arc::new(ManualClock::new());
    let leases = leases(&clock);
    let mut a = Node::new(&leases, "a");
    a.turn().await;
    clock.advance(TTL);
    a.turn().await;
    assert_eq!(
        a.aborted(),
        all(),
        "an expired lease is lost even if unclaimed"
    );
    assert_eq!(a.held(), all(), "and claimed afresh");
    assert_eq!(a.launcher.started.len(), 2 * jobs().len());
}

#[tokio::test]
async fn an_unknown_job_is_released_at_once() {
    let leases = leases(&Arc::new(ManualClock::new()));
    let mut a = Node::new(&leases, "a");
    a.launcher.known.retain(|j| j != "snapshots");
    a.turn().await;
    assert!(!a.held().contains("snapshots"));
    assert_eq!(leases.holder("snapshots").await.unwrap(), None);
}

#[tokio::test]
async fn a_leaving_node_hands_everything_over() {
    let leases = leases(&Arc::new(ManualClock::new()));
    let mut a = Node::new(&leases, "a");
    let mut b = Node::new(&leases, "b");
    a.turn().await;
    b.turn().await;
    a.table.hand_over_all(Duration::from_millis(1)).await;
    assert!(a.held().is_empty());
    assert_eq!(a.stopped(), all());
    assert!(a.aborted().is_empty());
    b.turn().await;
    assert_eq!(b.held(), all(), "released leases are claimable at once");
    assert_exclusive(&leases, &[&a, &b]).await;
}
