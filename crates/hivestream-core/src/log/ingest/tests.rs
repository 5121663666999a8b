//! The group committer on a real WAL and a real identity index: admission
//! (backlog limit and disk reserve), retried client event ids, identity
//! decided in log order, WAL truncation, and the progress it publishes.
//!
//! Batches are built as `POST /v2.0/events/batch` builds them (parsed,
//! validated and encoded by collect), and the WAL is read back record by
//! record to check what was written, not only what was answered.

use std::path::Path;

use futures::future::join_all;
use hivestream_wal::frame::FRAME_HEADER_LEN;
use hivestream_wal::{Lsn, WalOptions, WalReader};

use super::*;
use crate::clock::now_ms;
use crate::collect::encode::encode as encode_event;
use crate::collect::event::{line_ids, parse_event};
use crate::log::record::{DataType, Record};
use crate::signal::Signal;
use crate::state::identity::{aliases_of, DURABLE_EVERY};
use crate::state::index_db::IndexDb;

/// 2026-01-01T00:00:00Z: event times, so that the WAL can be checked exactly.
const T0: i64 = 1_767_225_600_000;
/// The default segment size: one segment for everything a test writes.
const ONE_SEGMENT: u64 = 64 << 20;
/// Limits that never refuse.
const ROOMY: Limits = Limits {
    max_backlog_bytes: 1 << 40,
    min_free_bytes: 0,
};
/// Longer than one turn of the committer's loop when idle (100 ms).
const IDLE_TURN: Duration = Duration::from_millis(150);

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0xe0e0_0000_0000_0000_0000_0000_0000_0000 | n)
}

/// A data dir with the committer running on its WAL and index, opened as
/// `serve` opens them (the index replayed from the WAL first).
struct Node {
    appender: Option<Appender>,
    thread: Option<JoinHandle<()>>,
    /// Kept to read the index beside the committer; let go by `stop`.
    db: Option<Arc<IndexDb>>,
    progress: Arc<WalProgress>,
    admission: Arc<Admission>,
    wake: Arc<Signal>,
    /// Just before the index was opened: until `DURABLE_EVERY` after this,
    /// the index is durable only up to where it was opened.
    opened: Instant,
}

impl Node {
    fn start(dir: &Path, segment_bytes: u64, limits: Limits) -> Self {
        let (wal, _) = Wal::open(dir.join("wal"), WalOptions { segment_bytes }).unwrap();
        let db = IndexDb::open(&dir.join("index.redb"), 1 << 20).unwrap();
        let opened = Instant::now();
        let mut identity = IdentityIndex::open(Arc::clone(&db)).unwrap();
        replay_identity(&mut identity, wal.dir(), wal.end_lsn()).unwrap();
        let wake = Arc::new(Signal::default());
        let outputs = CommitterOutputs {
            progress: Arc::new(WalProgress::new(Arc::clone(&wake))),
            admission: Arc::default(),
        };
        let (appender, thread) = spawn_committer(wal, identity, outputs.clone(), limits);
        Self {
            appender: Some(appender),
            thread: Some(thread),
            db: Some(db),
            progress: outputs.progress,
            admission: outputs.admission,
            wake,
            opened,
        }
    }

    async fn append(&self, batch: Batch) -> Result<Committed, CommitError> {
        self.appender.as_ref().expect("running").append(batch).await
    }

    fn db(&self) -> &IndexDb {
        self.db.as_deref().expect("running")
    }

    fn backlog_full(&self) -> bool {
        self.admission.backlog_full.load(Ordering::Acquire)
    }

    fn disk_low(&self) -> bool {
        self.admission.disk_low.load(Ordering::Acquire)
    }

    /// Drops the appender and waits for the committer's last durable
    /// commit of the index and last truncation; closes the index.
    fn stop(&mut self) {
        drop(self.appender.take());
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the committer thread panicked");
        assert!(self.admission.closed.load(Ordering::Acquire));
        self.db = None;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.appender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An event of `user`, with the client's own `event_id` if given.
fn by_user(user: Uuid, event_id: Option<Uuid>) -> String {
    let mut v = serde_json::json!({
        "name": "Pageview",
        "user_id": user.to_string(),
        "properties": {"path": "/a"},
    });
    if let Some(id) = event_id {
        v["event_id"] = id.to_string().into();
    }
    v.to_string()
}

/// An event known only by its aliases `(tag, id, priority)`.
fn by_aliases(aliases: &[(&str, &str, i64)], event_id: Option<Uuid>) -> String {
    let aliases: Vec<_> = aliases
        .iter()
        .map(|(tag, id, priority)| serde_json::json!({"tag": tag, "id": id, "priority": priority}))
        .collect();
    let mut v = serde_json::json!({"name": "Pageview", "aliases": aliases});
    if let Some(id) = event_id {
        v["event_id"] = id.to_string().into();
    }
    v.to_string()
}

/// The batch `POST /v2.0/events/batch` appends for `bodies`, received at
/// `time_ms`.
fn batch(time_ms: i64, bodies: &[String]) -> Batch {
    let mut batch = Batch::default();
    let mut line = Vec::new();
    for body in bodies {
        let ev = parse_event(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"));
        encode_event(ev, time_ms, &mut line, &mut batch);
    }
    batch
}

/// The batch `POST /v2.0/identify` appends: one `sync_aliases` record per
/// alias of `user`.
fn identify(time_ms: i64, user: Uuid, aliases: &[(&str, &str, i64)]) -> Batch {
    let mut batch = Batch::default();
    for (tag, id, priority) in aliases {
        let link = Link {
            user,
            tag: tag.to_string(),
            id: id.to_string(),
            priority: *priority,
        };
        let payload = sync_payload(time_ms, &link);
        batch.push(&Record::decode(&payload).unwrap());
    }
    batch
}

/// What a WAL record says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Logged {
    Event {
        id: Uuid,
        user: Uuid,
        time_ms: i64,
    },
    Sync {
        user: Uuid,
        alias: (String, String, i64),
        time_ms: i64,
    },
}

fn event(id: Uuid, user: Uuid, time_ms: i64) -> Logged {
    Logged::Event { id, user, time_ms }
}

fn sync(user: Uuid, (tag, id, priority): (&str, &str, i64), time_ms: i64) -> Logged {
    Logged::Sync {
        user,
        alias: (tag.into(), id.into(), priority),
        time_ms,
    }
}

/// Every record of the WAL in `dir` from `from` to `to` (which must be
/// where the WAL ends, or a record boundary): LSN, end LSN, content.
fn wal_records(dir: &Path, from: Lsn, to: Lsn) -> Vec<(Lsn, Lsn, Logged)> {
    let mut reader = WalReader::open(dir.join("wal"), from).unwrap();
    let mut out = Vec::new();
    while let Some((lsn, payload)) = reader.next(to).unwrap() {
        let end = lsn + (FRAME_HEADER_LEN + payload.len()) as u64;
        let rec = Record::decode(payload).unwrap();
        let logged = match rec.data_type {
            DataType::Events => {
                let (id, user) = line_ids(rec.line).expect("an events line");
                event(id, user, rec.time_ms)
            }
            DataType::SyncAliases => {
                let l = link_of(payload).expect("a sync_aliases line");
                sync(l.user, (&l.tag, &l.id, l.priority), rec.time_ms)
            }
            DataType::Segment => panic!("no segment records here"),
        };
        out.push((lsn, end, logged));
    }
    assert_eq!(reader.lsn(), to, "records end exactly at {to}");
    out
}

fn logged(dir: &Path, from: Lsn, to: Lsn) -> Vec<Logged> {
    wal_records(dir, from, to)
        .into_iter()
        .map(|(_, _, l)| l)
        .collect()
}

/// The base LSNs of the WAL's segment files, in order.
fn segments(dir: &Path) -> Vec<Lsn> {
    let mut bases: Vec<Lsn> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// Polls `cond` until it holds; false if it did not within a second.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn a_batch_over_the_backlog_is_refused_whole_until_the_checkpoint_frees_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let user = id(1);
    let one = |n: i64| batch(T0 + n, &[by_user(user, Some(id(100 + n as u128)))]);
    let bytes = one(0).bytes();
    assert!((0..4).all(|n| one(n).bytes() == bytes));
    let framed = (bytes + FRAME_HEADER_LEN) as u64;
    let three = 3 * framed;
    // Room for three batches and not four; three fill more than 90% of the
    // limit, so the refusal stays reported (hysteresis) until they go.
    let limits = Limits {
        max_backlog_bytes: three + 8,
        min_free_bytes: 0,
    };
    let mut node = Node::start(dir.path(), ONE_SEGMENT, limits);
    for n in 0..3 {
        assert_eq!(node.append(one(n)).await, Ok(Committed::default()));
    }
    assert_eq!(node.progress.committed(), three);
    assert!(!node.backlog_full());
    assert_eq!(
        node.append(one(3)).await,
        Err(CommitError::BacklogFull(three))
    );
    assert!(node.backlog_full());
    assert_eq!(node.admission.refusal().map(|r| r.0), Some("backlog full"));
    assert_eq!(
        node.append(one(3)).await,
        Err(CommitError::BacklogFull(three)),
        "still refused: nothing was uploaded"
    );
    assert_eq!(node.progress.committed(), three);
    let written = |n: i64| event(id(100 + n as u128), user, T0 + n);
    assert_eq!(
        logged(dir.path(), 0, three),
        (0..3).map(written).collect::<Vec<_>>(),
        "nothing of the refused batch is in the WAL"
    );

    // Stopping makes the index durable up to the WAL's end, so that below,
    // only the checkpoint holds the WAL (it is also bounded by the index's
    // durable position, which otherwise moves once a second).
    node.stop();
    let mut node = Node::start(dir.path(), ONE_SEGMENT, limits);
    assert_eq!(node.progress.committed(), three);
    assert_eq!(
        node.append(one(3)).await,
        Err(CommitError::BacklogFull(three))
    );
    assert!(node.backlog_full());
    // The router uploaded and checkpointed everything.
    node.progress.release_below(three);
    assert!(
        eventually(|| !node.backlog_full()),
        "cleared at an idle turn"
    );
    assert_eq!(node.admission.refusal(), None);
    assert_eq!(node.append(one(3)).await, Ok(Committed::default()));
    let four = three + framed;
    assert_eq!(node.progress.committed(), four);
    node.stop();
    assert_eq!(
        logged(dir.path(), 0, four),
        (0..4).map(written).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_reserve_above_the_free_space_refuses_writes_and_reports_disk_low() {
    let dir = tempfile::tempdir().unwrap();
    let free = || crate::disk::space(dir.path()).unwrap().available;
    let measured = free();
    // Other processes write to this disk meanwhile: the committer's own
    // measure must be within this of ours.
    let slack = 1 << 30;
    for (n, reserve) in [u64::MAX / 2, measured + (4 << 30), u64::MAX]
        .into_iter()
        .enumerate()
    {
        let data = dir.path().join(n.to_string());
        let limits = Limits {
            max_backlog_bytes: 1 << 40,
            min_free_bytes: reserve,
        };
        let mut node = Node::start(&data, ONE_SEGMENT, limits);
        let got = node.append(batch(T0, &[by_user(id(1), None)])).await;
        let Err(CommitError::DiskLow(seen)) = got else {
            panic!("reserve {reserve}: {got:?}");
        };
        let now = free();
        assert!(
            seen + slack >= measured.min(now) && seen <= measured.max(now) + slack,
            "reserve {reserve}: the committer saw {seen} bytes free, we saw {measured} then {now}"
        );
        assert!(node.disk_low(), "reserve {reserve}");
        assert!(!node.backlog_full(), "reserve {reserve}");
        assert_eq!(
            node.admission.refusal().map(|r| r.0),
            Some("disk almost full")
        );
        assert_eq!(node.progress.committed(), 0);
        node.stop();
        let (wal, _) = Wal::open(data.join("wal"), WalOptions::default()).unwrap();
        assert_eq!(wal.end_lsn(), 0, "reserve {reserve}: nothing written");
    }
    // A reserve well below the free space takes writes.
    let limits = Limits {
        max_backlog_bytes: 1 << 40,
        min_free_bytes: measured / 4,
    };
    let node = Node::start(&dir.path().join("ok"), ONE_SEGMENT, limits);
    assert_eq!(
        node.append(batch(T0, &[by_user(id(1), None)])).await,
        Ok(Committed::default())
    );
    assert!(!node.disk_low());
}

#[tokio::test]
async fn a_retried_event_id_is_written_once_and_answered_with_its_first_result() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y, z, w, v) = (id(1), id(2), id(3), id(4), id(5));
    let (u1, u2) = (id(11), id(12));
    let w_alias = ("email", "w", 0);
    let mut node = Node::start(dir.path(), ONE_SEGMENT, ROOMY);
    assert_eq!(
        node.append(batch(T0, &[by_user(u1, Some(x))])).await,
        Ok(Committed::default())
    );
    // Retried in a later request, received later and even naming another
    // user: answered with what was stored the first time.
    let got = node
        .append(batch(
            T0 + 5_000,
            &[by_user(u2, Some(x)), by_user(u2, Some(y))],
        ))
        .await;
    let first_x = Stored {
        time_ms: T0,
        user: u1,
    };
    assert_eq!(
        got,
        Ok(Committed {
            users: vec![],
            duplicates: vec![(0, first_x)],
        })
    );
    // Twice in one request: the second is a retry of the first.
    let got = node
        .append(batch(
            T0 + 6_000,
            &[
                by_user(u1, Some(z)),
                by_user(u2, Some(z)),
                by_user(u1, Some(y)),
            ],
        ))
        .await
        .unwrap();
    let (first_y, first_z) = (
        Stored {
            time_ms: T0 + 5_000,
            user: u2,
        },
        Stored {
            time_ms: T0 + 6_000,
            user: u1,
        },
    );
    assert_eq!(got.duplicates, vec![(1, first_z), (2, first_y)]);
    assert_eq!(got.duplicate(1), Some(first_z));
    assert_eq!(got.duplicate(0), None);
    // An alias-only event twice in one request, then again later: one user
    // and one set of links; the retries answer with that user.
    let got = node
        .append(batch(
            T0 + 7_000,
            &[
                by_aliases(&[w_alias], Some(w)),
                by_aliases(&[w_alias], Some(w)),
            ],
        ))
        .await
        .unwrap();
    let uw = got.users[0];
    let first_w = Stored {
        time_ms: T0 + 7_000,
        user: uw,
    };
    assert_eq!(
        got,
        Committed {
            users: vec![uw, uw],
            duplicates: vec![(1, first_w)],
        }
    );
    let got = node
        .append(batch(T0 + 8_000, &[by_aliases(&[w_alias], Some(w))]))
        .await;
    assert_eq!(
        got,
        Ok(Committed {
            users: vec![uw],
            duplicates: vec![(0, first_w)],
        })
    );
    let end = node.progress.committed();
    let expected = vec![
        event(x, u1, T0),
        event(y, u2, T0 + 5_000),
        event(z, u1, T0 + 6_000),
        sync(uw, w_alias, T0 + 7_000),
        event(w, uw, T0 + 7_000),
    ];
    assert_eq!(logged(dir.path(), 0, end), expected);

    // After a restart, through the reopened index: still retries, and the
    // alias still names the same user.
    node.stop();
    let node = Node::start(dir.path(), ONE_SEGMENT, ROOMY);
    assert_eq!(node.progress.committed(), end);
    let got = node
        .append(batch(
            T0 + 9_000,
            &[
                by_user(u2, Some(x)),
                by_aliases(&[w_alias], Some(w)),
                by_aliases(&[("email", "w", 1)], Some(v)),
            ],
        ))
        .await;
    assert_eq!(
        got,
        Ok(Committed {
            users: vec![uw, uw],
            duplicates: vec![(0, first_x), (1, first_w)],
        })
    );
    assert_eq!(
        logged(dir.path(), end, node.progress.committed()),
        vec![event(v, uw, T0 + 9_000)],
        "only the new event is written, with no new links"
    );
}

#[tokio::test]
async fn alias_only_events_get_one_user_per_alias_decided_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), ONE_SEGMENT, ROOMY);
    let (email, cookie, phone) = (("email", "a", 0), ("cookie", "c", 1), ("phone", "p", 0));
    // First sight: a new user, linked to each alias in the same group
    // commit, and in the index by the time the client hears back.
    let got = node
        .append(batch(T0, &[by_aliases(&[email, cookie], Some(id(1)))]))
        .await
        .unwrap();
    assert_eq!(got.users.len(), 1);
    let u1 = got.users[0];
    assert_ne!(u1, Uuid::nil());
    assert!(got.duplicates.is_empty());
    let mark = node.progress.committed();
    assert_eq!(
        logged(dir.path(), 0, mark),
        vec![
            sync(u1, email, T0),
            sync(u1, cookie, T0),
            event(id(1), u1, T0),
        ]
    );
    assert_eq!(
        aliases_of(node.db(), &u1).unwrap(),
        vec![
            ("cookie".into(), "c".into(), 1),
            ("email".into(), "a".into(), 0)
        ]
    );
    // Any one of them later: the same user, nothing linked.
    let got = node
        .append(batch(
            T0 + 1,
            &[by_aliases(&[("cookie", "c", 0)], Some(id(2)))],
        ))
        .await;
    assert_eq!(got.map(|c| c.users), Ok(vec![u1]));
    // Two new events sharing an alias in one request: one new user.
    let got = node
        .append(batch(
            T0 + 2,
            &[
                by_aliases(&[phone], Some(id(3))),
                by_aliases(&[("device", "d", 1), phone], Some(id(4))),
            ],
        ))
        .await
        .unwrap();
    let u2 = got.users[0];
    assert_ne!(u2, u1);
    assert_eq!(got.users, vec![u2, u2]);
    // The known alias of highest priority wins (the lowest number, the
    // earlier alias on a tie); unknown ones do not count.
    let got = node
        .append(batch(
            T0 + 3,
            &[
                by_aliases(&[("phone", "p", 1), ("email", "a", 0)], Some(id(5))),
                by_aliases(&[("phone", "p", 0), ("email", "a", 1)], Some(id(6))),
                by_aliases(&[("email", "a", 2), ("phone", "p", 2)], Some(id(7))),
                by_aliases(&[("new", "n", 0), ("phone", "p", 3)], Some(id(8))),
            ],
        ))
        .await;
    assert_eq!(got.map(|c| c.users), Ok(vec![u1, u2, u1, u2]));
    let end = node.progress.committed();
    assert_eq!(
        logged(dir.path(), mark, end),
        vec![
            event(id(2), u1, T0 + 1),
            sync(u2, phone, T0 + 2),
            event(id(3), u2, T0 + 2),
            event(id(4), u2, T0 + 2),
            event(id(5), u1, T0 + 3),
            event(id(6), u2, T0 + 3),
            event(id(7), u1, T0 + 3),
            event(id(8), u2, T0 + 3),
        ]
    );
    // An identify moves an alias to another user; the next alias-only
    // event follows it.
    let u9 = id(9);
    let got = node
        .append(identify(T0 + 4, u9, &[("email", "a", 0)]))
        .await;
    assert_eq!(got, Ok(Committed::default()));
    let got = node
        .append(batch(T0 + 5, &[by_aliases(&[email], Some(id(10)))]))
        .await;
    assert_eq!(got.map(|c| c.users), Ok(vec![u9]));
    assert_eq!(
        aliases_of(node.db(), &u1).unwrap(),
        vec![("cookie".into(), "c".into(), 1)]
    );
    assert_eq!(
        logged(dir.path(), end, node.progress.committed()),
        vec![sync(u9, email, T0 + 4), event(id(10), u9, T0 + 5)]
    );
}

#[tokio::test]
async fn concurrent_requests_for_one_new_alias_get_one_user() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), ONE_SEGMENT, ROOMY);
    let ip = ("ip", "z", 0);
    // Whether they share a group commit or not, they must agree.
    let appends = (0..8).map(|n| node.append(batch(T0, &[by_aliases(&[ip], Some(id(n)))])));
    let users: Vec<Uuid> = join_all(appends)
        .await
        .into_iter()
        .map(|got| {
            let got = got.unwrap();
            assert_eq!(got.users.len(), 1);
            got.users[0]
        })
        .collect();
    let user = users[0];
    assert_eq!(users, vec![user; 8]);
    let logged = logged(dir.path(), 0, node.progress.committed());
    let syncs: Vec<_> = logged
        .iter()
        .filter(|l| matches!(l, Logged::Sync { .. }))
        .collect();
    assert_eq!(syncs, vec![&sync(user, ip, T0)]);
    let mut events: Vec<_> = logged
        .iter()
        .filter_map(|l| match l {
            Logged::Event { id, user, .. } => Some((*id, *user)),
            Logged::Sync { .. } => None,
        })
        .collect();
    events.sort();
    assert_eq!(events, (0..8).map(|n| (id(n), user)).collect::<Vec<_>>());
    assert_eq!(logged[0], sync(user, ip, T0), "the link comes first");
}

#[tokio::test]
async fn the_wal_is_cut_below_the_checkpoint_and_never_past_the_durable_index() {
    let dir = tempfile::tempdir().unwrap();
    let small = 1024;
    let user = id(1);
    let two = |n: i64| batch(T0 + n, &[by_user(user, None), by_user(user, None)]);
    let mut node = Node::start(dir.path(), small, ROOMY);
    for n in 0..12 {
        node.append(two(n)).await.unwrap();
    }
    // Stopping makes the index durable up to here: the WAL may be cut up
    // to `durable` as soon as the checkpoint allows.
    node.stop();
    let durable = node.progress.committed();
    let before = segments(dir.path());
    assert!(before.len() >= 4, "{before:?}");
    let mut node = Node::start(dir.path(), small, ROOMY);
    // More records: until the index's next durable commit (a second from
    // its opening; none here unless this machine is very slow) the WAL
    // must be kept from `durable`, whatever the checkpoint says.
    for n in 12..24 {
        node.append(two(n)).await.unwrap();
    }
    let end = node.progress.committed();
    let all = segments(dir.path());
    assert_eq!(
        all[..before.len()],
        before[..],
        "nothing cut without a checkpoint"
    );

    // A checkpoint inside the third segment: the two below it go.
    let inside = wal_records(dir.path(), 0, durable)
        .iter()
        .map(|r| r.0)
        .find(|lsn| *lsn > before[2])
        .unwrap();
    assert!(inside < before[3]);
    node.progress.release_below(inside);
    assert!(
        eventually(|| segments(dir.path()) == all[2..]),
        "{:?}",
        segments(dir.path())
    );
    // At a segment's start: that segment stays, the one below goes.
    node.progress.release_below(before[3]);
    assert!(
        eventually(|| segments(dir.path()) == all[3..]),
        "{:?}",
        segments(dir.path())
    );
    // Past `durable`: cut only up to the segment holding `durable`.
    let holder = *all.iter().rev().find(|base| **base <= durable).unwrap();
    let keep: Vec<Lsn> = all.iter().copied().filter(|base| *base >= holder).collect();
    assert!(keep.len() >= 3, "{keep:?}");
    node.progress.release_below(end);
    assert!(eventually(|| segments(dir.path())[0] >= holder));
    std::thread::sleep(IDLE_TURN);
    let now = segments(dir.path());
    if node.opened.elapsed() < DURABLE_EVERY {
        assert_eq!(now, keep, "the index is durable only up to {durable}");
    } else {
        eprintln!("skipped: the index may have become durable past {durable}");
    }
    // Stopping makes the index durable up to the end: only the active
    // segment is left, and the WAL is whole from the checkpoint on.
    node.stop();
    assert_eq!(segments(dir.path()), vec![*all.last().unwrap()]);
    let (wal, _) = Wal::open(dir.path().join("wal"), WalOptions::default()).unwrap();
    assert_eq!(
        (wal.start_lsn(), wal.end_lsn()),
        (*all.last().unwrap(), end)
    );
}

#[tokio::test]
async fn every_acknowledged_record_is_below_the_published_end_with_its_ack_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), ONE_SEGMENT, ROOMY);
    assert_eq!(node.progress.committed(), 0);
    let woken = node.wake.generation();
    let user = id(1);
    // (event id, committed end seen on return, time before, time after)
    let mut acks: Vec<(Uuid, Lsn, i64, i64)> = Vec::new();
    let mut ends = Vec::new();
    for n in 0..3 {
        let ids = [id(10 * n), id(10 * n + 1)];
        let before = now_ms();
        let got = node
            .append(batch(T0, &ids.map(|i| by_user(user, Some(i)))))
            .await;
        assert_eq!(got, Ok(Committed::default()));
        let seen = node.progress.committed();
        let after = now_ms();
        acks.extend(ids.map(|i| (i, seen, before, after)));
        ends.push(seen);
    }
    let before = now_ms();
    let node_ref = &node;
    let appends = (0..6).map(|n| async move {
        let got = node_ref
            .append(batch(T0, &[by_user(user, Some(id(100 + n)))]))
            .await;
        assert_eq!(got, Ok(Committed::default()));
        (id(100 + n), node_ref.progress.committed(), now_ms())
    });
    for (i, seen, after) in join_all(appends).await {
        acks.push((i, seen, before, after));
    }
    let end = node.progress.committed();
    let records = wal_records(dir.path(), 0, end);
    assert_eq!(records.len(), acks.len());
    // One request at a time: the published end is exactly its last record's.
    let batch_ends: Vec<Lsn> = records
        .iter()
        .skip(1)
        .step_by(2)
        .take(3)
        .map(|r| r.1)
        .collect();
    assert_eq!(batch_ends, ends);
    for (i, seen, before, after) in acks {
        let (lsn, rec_end, _) = records
            .iter()
            .find(|r| matches!(r.2, Logged::Event { id, .. } if id == i))
            .unwrap();
        assert!(
            *rec_end <= seen,
            "{i}: ends at {rec_end}, acknowledged at {seen}"
        );
        let at = node.progress.ack_time(*lsn);
        assert!(
            at.is_some_and(|at| (before..=after).contains(&at)),
            "{i}: acknowledged at {at:?}, not in {before}..={after}"
        );
    }
    assert_eq!(node.progress.ack_time(end), None, "nothing there yet");
    assert!(node.wake.generation() > woken, "the reader was woken");
    node.stop();
    let (wal, _) = Wal::open(dir.path().join("wal"), WalOptions::default()).unwrap();
    assert_eq!(wal.end_lsn(), end, "all that is committed is published");
}
