//! One conformance suite for every backend behind the pipeline's seams, in
//! the manner of object_store's integration suite: the local WAL, ledger
//! file, in-process leases and redb cohort store (`tests/conformance_local.rs`)
//! and the JetStream stream, KV ledger, KV leases and KV cohorts (crate
//! `hivestream-cluster`) must all pass the same checks. Each function panics on the first
//! deviation, naming it.
//!
//! A backend says what it cannot do instead of failing: the local WAL
//! keeps no idempotency ids ([`LogUnderTest::dedups`]) and the ledger file
//! relies on the data dir's lock instead of fencing (the `fences` flag).

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::collect::backend::CohortApi;
use crate::log::record::DataType;
use crate::log::{LogReader, Pos};
use crate::route::ledger::{LedgerError, LedgerStore, Seal};
use crate::state::cohorts::{Cohort, CohortError, CohortInput, CohortState};
use crate::state::lease::Leases;

/// A log under test: appends batches and opens readers on one partition.
#[async_trait]
pub trait LogUnderTest: Send + Sync {
    /// Appends `records` durably and atomically, with idempotency id `idem`.
    async fn append(&self, idem: &str, records: Vec<Vec<u8>>) -> Result<(), String>;
    /// A reader positioned at `from`.
    async fn reader(&self, from: Pos) -> Box<dyn LogReader>;
    /// Whether a second append with the same id is dropped.
    fn dedups(&self) -> bool;
}

/// Reads `n` records, waiting up to 10 s for them to become visible.
pub async fn read_n(reader: &mut dyn LogReader, n: usize) -> Vec<(Pos, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match reader.next().expect("log read") {
            Some((pos, payload)) => out.push((pos, payload.to_vec())),
            None => {
                assert!(
                    Instant::now() < deadline,
                    "log: only {} of {n} records became readable",
                    out.len()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    out
}

/// Asserts nothing more is readable for a short while.
async fn assert_nothing_more(reader: &mut dyn LogReader) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let extra = reader
        .next()
        .expect("log read")
        .map(|(p, r)| (p, r.to_vec()));
    assert_eq!(extra, None, "log: a record nobody appended");
    assert!(
        reader.caught_up(),
        "log: caught_up after reading everything"
    );
}

fn rec(i: usize) -> Vec<u8> {
    format!("record-{i}").into_bytes()
}

/// Appends, reads from the start and from the middle of a batch,
/// releases, and (where the backend dedups) appends a batch twice.
pub async fn log(log: &dyn LogUnderTest) {
    let batches: [&[usize]; 3] = [&[0], &[1, 2, 3], &[4, 5]];
    for (b, ids) in batches.iter().enumerate() {
        let records = ids.iter().map(|&i| rec(i)).collect();
        log.append(&format!("batch-{b}"), records)
            .await
            .expect("append");
    }
    let mut r = log.reader(0).await;
    let all = read_n(r.as_mut(), 6).await;
    let payloads: Vec<Vec<u8>> = all.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(payloads, (0..6).map(rec).collect::<Vec<_>>(), "log: order");
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "log: positions grow with every record"
    );
    assert!(
        r.position() > all[5].0,
        "log: position is past the last record read"
    );
    assert_nothing_more(r.as_mut()).await;

    // A reader opened at a record's position starts exactly there, also in
    // the middle of a batch.
    let mut mid = log.reader(all[2].0).await;
    let rest = read_n(mid.as_mut(), 4).await;
    assert_eq!(rest, all[2..].to_vec(), "log: reading from a position");
    mid.release_below(all[4].0);
    let mut after = log.reader(all[4].0).await;
    assert_eq!(
        read_n(after.as_mut(), 2).await,
        all[4..].to_vec(),
        "log: records at and above a released position stay"
    );

    log.append("batch-1", vec![rec(1), rec(2), rec(3)])
        .await
        .expect("append again");
    log.append("batch-3", vec![rec(6)]).await.expect("append");
    let expect_more = if log.dedups() { 1 } else { 4 };
    let more = read_n(r.as_mut(), expect_more).await;
    assert_eq!(
        more.last().map(|(_, p)| p.clone()),
        Some(rec(6)),
        "log: a repeated idempotency id appends {}",
        if log.dedups() { "nothing" } else { "again" }
    );
    assert_nothing_more(r.as_mut()).await;
}

fn seal(id: u64, start: Pos, end: Pos) -> Seal {
    Seal {
        id,
        data_type: DataType::Events,
        hour: Some(491_234),
        start,
        end,
        key: format!("type=events/k{id}.jsonl.gz"),
        records: end - start + 1,
    }
}

/// Seals, done marks and checkpoints survive a reopen; with `fences`, a
/// second open (a takeover) fences the first.
pub fn ledger(open: &mut dyn FnMut() -> Result<Box<dyn LedgerStore>, LedgerError>, fences: bool) {
    let mut a = open().expect("open");
    assert_eq!(a.state().checkpoint, 0, "ledger: a new ledger is empty");
    assert!(a.state().seals.is_empty(), "ledger: a new ledger is empty");
    let (id0, id1) = (a.next_id(), a.next_id());
    assert!(id1 > id0, "ledger: ids grow");
    a.seal(seal(id0, 10, 19)).expect("seal");
    a.seal(seal(id1, 20, 29)).expect("seal");
    a.done(&[id0]).expect("done");
    a.checkpoint(20).expect("checkpoint");
    assert_eq!(a.state().min_pending_start(), Some(20));
    drop(a);

    let mut b = open().expect("reopen");
    assert_eq!(b.state().checkpoint, 20, "ledger: checkpoint survives");
    assert_eq!(
        b.state().seals.get(&id1),
        Some(&(seal(id1, 20, 29), false)),
        "ledger: a pending seal survives"
    );
    assert!(
        !b.state().seals.contains_key(&id0),
        "ledger: a done seal below the checkpoint is dropped"
    );
    let id2 = b.next_id();
    assert!(id2 > id1, "ledger: ids are not reused after a reopen");
    if !fences {
        return;
    }
    let mut c = open().expect("take over");
    assert!(
        matches!(b.seal(seal(id2, 30, 39)), Err(LedgerError::Fenced(_))),
        "ledger: the old owner's seal is refused after a takeover"
    );
    assert!(
        matches!(b.checkpoint(30), Err(LedgerError::Fenced(_))),
        "ledger: the old owner's checkpoint is refused after a takeover"
    );
    let id3 = c.next_id();
    c.seal(seal(id3, 40, 49)).expect("new owner seals");
    let d = open().expect("reopen");
    let starts: Vec<Pos> = d.state().seals.values().map(|(s, _)| s.start).collect();
    assert!(
        starts.contains(&40) && !starts.contains(&30),
        "ledger: only the new owner's decisions are kept: {starts:?}"
    );
}

/// Claim, exclusion, listing, renewal, release and expiry. Takes about two
/// TTLs.
pub async fn leases(store: &dyn Leases) {
    let name = format!("conformance-{}", uuid::Uuid::new_v4().simple());
    let mut a = store
        .claim(&name, "a")
        .await
        .expect("claim")
        .expect("a free lease can be claimed");
    assert!(
        store.claim(&name, "b").await.expect("claim").is_none(),
        "leases: a held lease cannot be claimed"
    );
    assert_eq!(
        store.holder(&name).await.expect("holder").as_deref(),
        Some("a")
    );
    assert_eq!(
        store.list(&name).await.expect("list"),
        vec![(name.clone(), "a".to_string())],
        "leases: a held lease is listed with its holder"
    );
    let first = a.token;
    assert!(store.renew(&mut a).await.expect("renew"), "leases: renew");
    assert!(a.token > first, "leases: renewal gives a new token");
    store.release(a).await.expect("release");
    let mut b = store
        .claim(&name, "b")
        .await
        .expect("claim")
        .expect("leases: a released lease can be claimed at once");
    let stale = b.clone();
    // Let b's lease expire, then c claims it: b has lost it.
    let ttl = store.ttl();
    let deadline = Instant::now() + ttl * 4;
    let mut c = loop {
        if let Some(c) = store.claim(&name, "c").await.expect("claim") {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "leases: an expired lease is claimable"
        );
        tokio::time::sleep(ttl / 10).await;
    };
    assert!(
        b.since.elapsed() >= ttl,
        "leases: claimed by another before its TTL passed"
    );
    assert!(b.expired(), "leases: the holder sees its lease expired");
    assert!(
        !store.renew(&mut b).await.expect("renew"),
        "leases: an expired lease cannot be renewed"
    );
    store.release(stale).await.expect("release");
    assert_eq!(
        store.holder(&name).await.expect("holder").as_deref(),
        Some("c"),
        "leases: releasing a lost lease does not free the new holder's"
    );
    assert!(store.renew(&mut c).await.expect("renew"));
    store.release(c).await.expect("release");
    assert!(
        store.list(&name).await.expect("list").is_empty(),
        "leases: a released lease is not listed"
    );
}

/// Cohort CRUD (`CohortApi`): codes unique and increasing, names unique
/// (on create and on rename, free again after a delete or a rename), PATCH
/// changing only what it names, state, workspace, and 404s. `names` must be
/// fresh to the store (a unique prefix).
pub async fn cohorts(api: &dyn CohortApi, prefix: &str, workspace: uuid::Uuid) {
    let input = |name: &str| CohortInput {
        name: Some(format!("{prefix}{name}")),
        ..Default::default()
    };
    let a = api.create(input("a"), 1_000).await.expect("create a");
    let b = api.create(input("b"), 2_000).await.expect("create b");
    assert!(b.code > a.code, "cohorts: codes increase");
    assert_eq!(a.workspace_id, workspace, "cohorts: the store's workspace");
    assert_eq!(
        a.state,
        CohortState::Enabled,
        "cohorts: new cohorts are Enabled"
    );
    assert!(
        matches!(
            api.create(input("a"), 0).await,
            Err(CohortError::DuplicateName(_))
        ),
        "cohorts: a name is unique"
    );
    assert!(
        matches!(
            api.patch(b.id, input("a"), 0).await,
            Err(CohortError::DuplicateName(_))
        ),
        "cohorts: a rename onto a taken name is refused"
    );
    let disable = CohortInput {
        state: Some("Disabled".into()),
        ..input("b2")
    };
    let b2 = api.patch(b.id, disable, 3_000).await.expect("rename b");
    assert_eq!((b2.code, b2.state), (b.code, CohortState::Disabled));
    assert_eq!(
        b2.created_at, b.created_at,
        "cohorts: PATCH keeps created_at"
    );
    api.create(input("b"), 0)
        .await
        .expect("a renamed cohort's old name is free");
    let got = api.get(b.id).await.expect("get b2");
    assert_eq!(got.name, format!("{prefix}b2"));
    cohort_deletes(api, prefix, a, b).await;
}

/// The rest of [`cohorts`]: a delete frees the name, never the code.
async fn cohort_deletes(api: &dyn CohortApi, prefix: &str, a: Cohort, b: Cohort) {
    let input = |name: &str| CohortInput {
        name: Some(format!("{prefix}{name}")),
        ..Default::default()
    };
    api.delete(a.id).await.expect("delete a");
    assert!(
        matches!(api.get(a.id).await, Err(CohortError::NotFound(_))),
        "cohorts: deleted is gone"
    );
    assert!(
        matches!(api.delete(a.id).await, Err(CohortError::NotFound(_))),
        "cohorts: deleting twice is a 404"
    );
    let again = api
        .create(input("a"), 0)
        .await
        .expect("a deleted name is free");
    assert!(again.code > b.code, "cohorts: codes are never reused");
    let mine: Vec<String> = api
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.name.starts_with(prefix))
        .map(|c| c.name)
        .collect();
    let expected: Vec<String> = ["b2", "b", "a"]
        .iter()
        .map(|n| format!("{prefix}{n}"))
        .collect();
    assert_eq!(mine, expected, "cohorts: listed by code");
}
