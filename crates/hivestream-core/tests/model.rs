//! The exactly-once guarantee as a model test, in one process and without
//! the chaos rig: `serve`'s committer, router, uploader and cohort snapshot
//! writer over a temporary data dir and an in-memory bucket, driven by
//! random operations (event batches with client ids, retries and alias-only
//! users; cohort changes; time passing) with random crash points armed
//! between durable steps ([`failpoint::arm_panic`]: the N-th pass through a
//! named step panics). After a crash every component is dropped and opened
//! again from its durable state, as after a restart, and the operations go
//! on; at the end the pipeline drains.
//!
//! The assertions, checked against what the model saw acknowledged:
//! - every acknowledged event is in exactly one object, and no object holds
//!   an event that was never appended, nor one twice;
//! - every object's name carries the hash of its content, and every line
//!   is under the hour its key names;
//! - alias-only events of one alias all have one user, the one its
//!   `sync_aliases` lines link it to;
//! - the newest `segment` snapshot holds every acknowledged cohort.
//!
//! What an in-process crash cannot do: lose bytes written but not synced
//! (the page cache survives), or stop a component that did not panic
//! without its graceful exit. `chaos_crash` covers those with `kill -9`.
//! `PROPTEST_CASES` sets the number of cases (default 200).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use hivestream_core::collect::encode::encode;
use hivestream_core::collect::event::parse_event;
use hivestream_core::config::RouterSettings;
use hivestream_core::failpoint;
use hivestream_core::log::ingest::{spawn_committer, Appender, Batch, CommitterOutputs, Limits};
use hivestream_core::log::progress::WalProgress;
use hivestream_core::log::replay::replay_identity;
use hivestream_core::route::keys::WorkerId;
use hivestream_core::route::upload::run_uploader;
use hivestream_core::route::{
    run_router, DeflatePool, LocalBackend, Router, RouterBase, RouterError, RouterLinks,
    RouterSignals,
};
use hivestream_core::snapshot::run_snapshotter;
use hivestream_core::state::cohorts::{CohortInput, CohortStore};
use hivestream_core::state::identity::IdentityIndex;
use hivestream_core::state::index_db::IndexDb;
use hivestream_wal::{Wal, WalOptions};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use proptest::prelude::*;
use uuid::Uuid;

/// The durable steps a crash may follow (the local bucket's partial write
/// does not apply to an in-memory bucket).
const CRASH_POINTS: [&str; 6] = [
    "commit.after_sync",
    "router.after_seal",
    "upload.after_put",
    "router.after_done",
    "router.after_checkpoint",
    "identity.after_durable",
];
const BASE_MS: i64 = 1_795_000_000_000;

/// Crashes that fired, by point, over the whole run (printed at the end).
static CRASHES: [std::sync::atomic::AtomicU64; 6] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 6];
const WORKSPACE: Uuid = Uuid::from_u128(0x0bd6_3f73_6b67_4766_8c86_fa1d_2cf8_7194);

/// One event of a batch: a client id from a small pool (so that some are
/// retries of one another), or else a user id or an alias from a small pool.
#[derive(Debug, Clone)]
struct Ev {
    client_id: Option<u8>,
    alias: Option<u8>,
}

#[derive(Debug, Clone)]
enum Op {
    Events(Vec<Ev>),
    Cohort(u8),
    Wait(u8),
    Crash(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let ev = (proptest::option::of(0u8..6), proptest::option::of(0u8..4))
        .prop_map(|(client_id, alias)| Ev { client_id, alias });
    prop_oneof![
        5 => proptest::collection::vec(ev, 1..6).prop_map(Op::Events),
        1 => (0u8..4).prop_map(Op::Cohort),
        2 => (0u8..60).prop_map(Op::Wait),
        3 => (0..CRASH_POINTS.len(), 1u8..3).prop_map(|(p, n)| Op::Crash(p, n)),
    ]
}

/// What the model saw acknowledged.
#[derive(Default)]
struct Acked {
    /// Every event id appended (acknowledged or not) with its `k` marker.
    appended: HashMap<Uuid, u64>,
    /// Event ids acknowledged as written or as retries of written ones.
    events: HashSet<Uuid>,
    /// Alias → user ids its acknowledged events were given.
    alias_users: HashMap<String, HashSet<Uuid>>,
    cohorts: HashSet<String>,
    next_k: u64,
}

/// `serve`'s components over one data dir.
struct Pipeline {
    appender: Option<Appender>,
    committer: std::thread::JoinHandle<()>,
    router: std::thread::JoinHandle<Result<(), RouterError>>,
    signals: Arc<RouterSignals>,
    uploader: tokio::task::JoinHandle<()>,
    snapshot_stop: tokio::sync::watch::Sender<bool>,
    snapshotter: tokio::task::JoinHandle<()>,
    cohorts: CohortStore,
}

fn open_pipeline(
    dir: &Path,
    store: Arc<InMemory>,
    rt: &tokio::runtime::Runtime,
    pool: &DeflatePool,
) -> Pipeline {
    let wal_opts = WalOptions {
        segment_bytes: 64 << 10,
    };
    let (wal, _) = Wal::open(dir.join("wal"), wal_opts).unwrap();
    let db = IndexDb::open(&dir.join("index.redb"), 1 << 20).unwrap();
    let mut identity = IdentityIndex::open(Arc::clone(&db)).unwrap();
    replay_identity(&mut identity, wal.dir(), wal.end_lsn()).unwrap();
    let signals = Arc::new(RouterSignals::default());
    let outputs = CommitterOutputs {
        progress: Arc::new(WalProgress::new(Arc::clone(&signals.wake))),
        admission: Arc::default(),
    };
    let limits = Limits {
        max_backlog_bytes: 1 << 30,
        min_free_bytes: 0,
    };
    let (appender, committer) = spawn_committer(wal, identity, outputs.clone(), limits);
    let (uploads, upload_rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let base = RouterBase {
        settings: RouterSettings {
            flush_interval: Duration::from_millis(25),
            max_file_bytes: 64 << 10,
            compression_level: 1,
            upload_concurrency: 2,
            shutdown_timeout: Duration::from_secs(20),
        },
        prefix: String::new(),
        deflate: pool.clone(),
    };
    let cfg = base.router(
        dir.join("router").join("spool"),
        WorkerId::parse("model").unwrap(),
    );
    let backend = LocalBackend {
        data_dir: dir.to_path_buf(),
        progress: outputs.progress,
    };
    let links = RouterLinks {
        signals: Arc::clone(&signals),
        uploads,
        done_tx,
    };
    let uploader = rt.spawn(run_uploader(store, upload_rx, 2));
    let first = Router::open(cfg.clone(), links.clone(), &backend).unwrap();
    let router = std::thread::spawn(move || run_router(cfg, links, done_rx, first, &backend));
    let cohorts = CohortStore::new(db, WORKSPACE).unwrap();
    let (snapshot_stop, stop_rx) = tokio::sync::watch::channel(false);
    let snapshotter = rt.spawn(run_snapshotter(
        cohorts.clone(),
        appender.clone(),
        Duration::from_secs(3600),
        Duration::from_millis(10),
        stop_rx,
    ));
    Pipeline {
        appender: Some(appender),
        committer,
        router,
        signals,
        uploader,
        snapshot_stop,
        snapshotter,
        cohorts,
    }
}

/// Opens the pipeline; a crash while opening (an armed step in the
/// router's start-up) is a crash like any other: open again.
fn start(
    dir: &Path,
    store: &Arc<InMemory>,
    rt: &tokio::runtime::Runtime,
    pool: &DeflatePool,
) -> Pipeline {
    loop {
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            open_pipeline(dir, Arc::clone(store), rt, pool)
        }));
        match opened {
            Ok(p) => return p,
            Err(_) => failpoint::disarm(),
        }
    }
}

impl Pipeline {
    /// Stops every component: gracefully to drain (`drain`), or at once
    /// after a crash (the router aborts, sealing nothing more, and the
    /// uploads in flight are dropped).
    fn stop(mut self, rt: &tokio::runtime::Runtime, drain: bool) {
        let _ = self.snapshot_stop.send(true);
        let _ = rt.block_on(self.snapshotter);
        drop(self.appender.take());
        let _ = self.committer.join();
        if drain {
            self.signals.close_input();
        } else {
            self.signals.abort();
        }
        let routed = self.router.join();
        if !drain {
            // A crash loses the uploads in flight.
            self.uploader.abort();
        }
        let _ = rt.block_on(self.uploader);
        if drain {
            routed.expect("router thread").expect("router drained");
        }
    }
}

/// Builds one batch as the HTTP handler does; returns it with its event ids.
fn batch_of(evs: &[Ev], acked: &mut Acked) -> (Batch, Vec<(Uuid, Option<String>)>) {
    let mut batch = Batch::default();
    let mut ids = Vec::new();
    let mut line = Vec::new();
    for ev in evs {
        // An event with a client id is always the same event (a retry sends
        // the same body): its marker and alias follow from the id.
        let (k, alias) = match ev.client_id {
            Some(c) => (1_000_000 + c as u64, (c % 3 != 2).then_some(c % 4)),
            None => {
                acked.next_k += 1;
                (acked.next_k, ev.alias)
            }
        };
        let id = ev
            .client_id
            .map(|c| Uuid::from_u128(0xc11e_0000 + c as u128));
        let alias = alias.map(|a| format!("reader-{a}"));
        let who = match &alias {
            Some(a) => format!(r#""aliases":[{{"priority":0,"tag":"email","id":"{a}"}}]"#),
            None => format!(r#""user_id":"{}""#, Uuid::from_u128(7)),
        };
        let event_id = id.map_or("null".to_string(), |id| format!("\"{id}\""));
        let body =
            format!(r#"{{"name":"Model","event_id":{event_id},{who},"properties":{{"k":{k}}}}}"#);
        let valid = parse_event(body.as_bytes()).expect("a valid event");
        let time_ms = BASE_MS + (k % 1_000_000) as i64 * 997;
        let (event_id, _) = encode(valid, time_ms, &mut line, &mut batch);
        acked.appended.entry(event_id).or_insert(k);
        ids.push((event_id, alias));
    }
    (batch, ids)
}

fn append(p: &Pipeline, rt: &tokio::runtime::Runtime, evs: &[Ev], acked: &mut Acked) {
    let (batch, ids) = batch_of(evs, acked);
    let appender = p.appender.as_ref().unwrap();
    let Ok(committed) = rt.block_on(appender.append(batch)) else {
        return; // not acknowledged: may or may not be stored, at most once
    };
    // One user per alias-only event, in order (a retry's: the first one's).
    let mut users = committed.users.iter();
    for (id, alias) in &ids {
        acked.events.insert(*id);
        if let Some(alias) = alias {
            let user = *users.next().expect("a user per alias-only event");
            acked
                .alias_users
                .entry(alias.clone())
                .or_default()
                .insert(user);
        }
    }
}

/// Runs the operations, crashing and reopening where armed; drains at the end.
fn run(ops: &[Op], rt: &tokio::runtime::Runtime, pool: &DeflatePool) -> (Acked, Arc<InMemory>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(InMemory::new());
    let mut acked = Acked::default();
    let mut p = start(dir.path(), &store, rt, pool);
    let mut armed = 0;
    for op in ops {
        match op {
            Op::Events(evs) => append(&p, rt, evs, &mut acked),
            Op::Cohort(n) => {
                let input = CohortInput {
                    name: Some(format!("cohort {n}")),
                    ..Default::default()
                };
                if p.cohorts.create(input, BASE_MS).is_ok() {
                    acked.cohorts.insert(format!("cohort {n}"));
                }
            }
            Op::Wait(ms) => std::thread::sleep(Duration::from_millis(*ms as u64)),
            Op::Crash(point, n) => {
                armed = *point;
                failpoint::arm_panic(CRASH_POINTS[*point], *n as u64);
            }
        }
        if failpoint::panicked() {
            CRASHES[armed].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            p.stop(rt, false);
            failpoint::disarm();
            p = start(dir.path(), &store, rt, pool);
        }
    }
    failpoint::disarm();
    p.stop(rt, true);
    (acked, store)
}

/// Every object: key → (uncompressed content, lines as JSON).
fn objects(
    store: &InMemory,
    rt: &tokio::runtime::Runtime,
) -> BTreeMap<String, (Vec<u8>, Vec<serde_json::Value>)> {
    rt.block_on(async {
        let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut out = BTreeMap::new();
        for m in metas {
            let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            let mut content = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut content)
                .unwrap();
            let lines = content
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            out.insert(m.location.to_string(), (content, lines));
        }
        out
    })
}

fn check(
    acked: &Acked,
    store: &InMemory,
    rt: &tokio::runtime::Runtime,
) -> Result<(), TestCaseError> {
    let objects = objects(store, rt);
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut links: HashMap<String, HashSet<Uuid>> = HashMap::new();
    let mut users_of: HashMap<u64, Uuid> = HashMap::new();
    for (key, (content, lines)) in &objects {
        let hash = key.rsplit('/').next().unwrap().split('-').nth(1).unwrap();
        prop_assert_eq!(
            hash,
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(content)),
            "{}",
            key
        );
        for line in lines {
            if key.starts_with("type=events/") {
                let id: Uuid = line["event_id"].as_str().unwrap().parse().unwrap();
                let k = line["properties"]["k"].as_u64().unwrap();
                prop_assert_eq!(
                    acked.appended.get(&id),
                    Some(&k),
                    "an event never appended: {}",
                    line
                );
                *seen.entry(id).or_default() += 1;
                users_of.insert(k, line["user_id"].as_str().unwrap().parse().unwrap());
                let hour = (line["time"].as_str().unwrap()[..13]).replace('T', "/hour=");
                let dir = format!("day={}", &hour[8..]);
                prop_assert!(key.contains(&dir), "{} is not under {}", key, dir);
            } else if key.starts_with("type=sync_aliases/") {
                let user = line["user_id"].as_str().unwrap().parse().unwrap();
                links
                    .entry(line["id"].as_str().unwrap().to_string())
                    .or_default()
                    .insert(user);
            }
        }
    }
    for (id, n) in &seen {
        prop_assert_eq!(*n, 1, "event {} stored {} times", id, n);
    }
    for id in &acked.events {
        prop_assert!(
            seen.contains_key(id),
            "acknowledged event {} is missing",
            id
        );
    }
    for (alias, users) in &acked.alias_users {
        prop_assert_eq!(
            users.len(),
            1,
            "alias {} got several users: {:?}",
            alias,
            users
        );
        prop_assert_eq!(
            links.get(alias),
            Some(users),
            "alias {} is linked to another user",
            alias
        );
    }
    let segment = objects
        .iter()
        .rfind(|(k, _)| k.starts_with("type=segment/"));
    let names: HashSet<String> = segment
        .map(|(_, (_, lines))| {
            lines
                .iter()
                .map(|l| l["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    prop_assert!(
        acked.cohorts.is_subset(&names),
        "cohorts {:?} not all in {:?}",
        acked.cohorts,
        names
    );
    Ok(())
}

#[test]
fn acknowledged_records_are_uploaded_exactly_once_across_crashes() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&failpoint::PANIC_MESSAGE) {
            default_hook(info);
        }
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = DeflatePool::new(1);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let config = ProptestConfig {
        cases,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 1..20), |ops| {
        let (acked, store) = run(&ops, &rt, &pool);
        check(&acked, &store, &rt)
    });
    let fired: Vec<String> = CRASH_POINTS
        .iter()
        .zip(&CRASHES)
        .map(|(p, n)| format!("{p} {}", n.load(std::sync::atomic::Ordering::Relaxed)))
        .collect();
    eprintln!(
        "model: {cases} cases; crashes that fired: {}",
        fired.join(", ")
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
