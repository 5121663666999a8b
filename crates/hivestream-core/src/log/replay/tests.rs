//! Replay of the WAL into the identity index: links, re-links, client
//! event ids, and what survives a crash or a reopen of the database.

use super::*;
use crate::collect::event::Alias;
use crate::state::identity::aliases_of;
use crate::state::index_db::IndexDb;
use hivestream_wal::{Wal, WalOptions};
use std::sync::Arc;

fn link(user: u128, tag: &str, id: &str, priority: i64) -> Link {
    Link {
        user: Uuid::from_u128(user),
        tag: tag.into(),
        id: id.into(),
        priority,
    }
}

fn alias(tag: &str, id: &str, priority: i64) -> Alias {
    Alias {
        priority,
        tag: tag.into(),
        id: id.into(),
    }
}

fn sync_payload(l: &Link) -> Vec<u8> {
    crate::log::batch::sync_payload(0, l)
}

/// An index opened on `db` and replayed from the WAL up to `end`.
fn replayed(db: Arc<IndexDb>, wal_dir: &Path, end: Lsn) -> IdentityIndex {
    let mut index = IdentityIndex::open(db).unwrap();
    replay_identity(&mut index, wal_dir, end).unwrap();
    index
}

#[test]
fn sync_line_round_trips_through_link_of() {
    let l = link(7, "email\"x", "a@b", 3);
    let payload = sync_payload(&l);
    assert_eq!(link_of(&payload), Some(l));
    let rec = Record::decode(&payload).unwrap();
    let v: serde_json::Value = serde_json::from_slice(rec.line).unwrap();
    let keys: Vec<_> = std::str::from_utf8(rec.line)
        .unwrap()
        .match_indices("\":")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keys.len(), 5);
    assert_eq!(v["tag"], "email\"x");
}

#[test]
fn relink_moves_alias_between_users_and_survives_replay() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let (mut wal, _) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    let links = [
        link(1, "email", "a", 0),
        link(1, "cookie", "c", 1),
        link(2, "email", "a", 0),
    ];
    for l in &links {
        wal.append(&sync_payload(l)).unwrap();
    }
    let end = wal.commit().unwrap();
    let db = IndexDb::open(&dir.path().join("index.redb"), 1 << 20).unwrap();
    // Nothing applied yet: opening replays the WAL.
    let index = replayed(db.clone(), &wal_dir, end);
    assert_eq!(index.durable_lsn(), end);
    let got = index
        .lookup(&[
            alias("email", "a", 0),
            alias("cookie", "c", 0),
            alias("x", "y", 0),
        ])
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some((Uuid::from_u128(2), 0)),
            Some((Uuid::from_u128(1), 1)),
            None
        ]
    );
    assert_eq!(
        aliases_of(&db, &Uuid::from_u128(1)).unwrap(),
        vec![("cookie".into(), "c".into(), 1)]
    );
    assert_eq!(
        aliases_of(&db, &Uuid::from_u128(2)).unwrap(),
        vec![("email".into(), "a".into(), 0)]
    );
    assert!(aliases_of(&db, &Uuid::from_u128(3)).unwrap().is_empty());
}

#[test]
fn non_durable_applies_are_replayed_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let (mut wal, _) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    let path = dir.path().join("index.redb");
    let db = IndexDb::open(&path, 1 << 20).unwrap();
    let mut index = replayed(db.clone(), &wal_dir, 0);
    let l = link(9, "t", "i", 0);
    wal.append(&sync_payload(&l)).unwrap();
    let end = wal.commit().unwrap();
    index.apply(std::slice::from_ref(&l), &[], end).unwrap();
    assert_eq!(index.durable_lsn(), 0, "not yet durable: WAL must be kept");
    // "Crash": drop without a durable commit, reopen.
    drop(index);
    drop(db);
    let db = IndexDb::open(&path, 1 << 20).unwrap();
    let index = replayed(db, &wal_dir, end);
    assert_eq!(
        index.lookup(&[alias("t", "i", 0)]).unwrap(),
        vec![Some((Uuid::from_u128(9), 0))]
    );
}

#[test]
fn a_reopen_elsewhere_makes_the_index_stale_and_recover_replays() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let (mut wal, _) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    let db = IndexDb::open(&dir.path().join("index.redb"), 1 << 20).unwrap();
    let mut index = replayed(db.clone(), &wal_dir, 0);
    let l = link(4, "email", "x", 0);
    wal.append(&sync_payload(&l)).unwrap();
    let end = wal.commit().unwrap();
    index.apply(std::slice::from_ref(&l), &[], end).unwrap();
    // The cohort side hit an I/O error and reopened the shared database:
    // the non-durable link above is gone from it.
    db.reopen_after(db.generation()).unwrap();
    assert!(index.stale());
    assert!(
        index.apply(&[link(5, "a", "b", 0)], &[], end).is_err(),
        "writes on a stale generation must fail, not land half-applied"
    );
    index.recover().unwrap();
    replay_identity(&mut index, &wal_dir, end).unwrap();
    assert!(!index.stale());
    assert_eq!(
        index.lookup(&[alias("email", "x", 0)]).unwrap(),
        vec![Some((Uuid::from_u128(4), 0))]
    );
    assert_eq!(index.durable_lsn(), end);
}

#[test]
fn client_event_ids_survive_a_crash_through_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let (mut wal, _) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    let path = dir.path().join("index.redb");
    let db = IndexDb::open(&path, 1 << 20).unwrap();
    let mut index = replayed(db.clone(), &wal_dir, 0);
    let id = Uuid::from_u128(77);
    let user = Uuid::from_u128(78);
    let line = format!(
        r#"{{"event_id":"{id}","time":"2026-01-01T00:00:00.005Z","name":"a","user_id":"{user}","session_id":null,"view_id":null,"segments":[],"cohorts":[],"properties":{{}}}}"#
    );
    let mut payload = Vec::new();
    Record {
        data_type: DataType::Events,
        time_ms: 5,
        line: line.as_bytes(),
    }
    .encode(&mut payload);
    wal.append(&payload).unwrap();
    let end = wal.commit().unwrap();
    let stored = crate::state::dedup::Stored { time_ms: 5, user };
    index.apply(&[], &[(id, stored)], end).unwrap();
    assert_eq!(index.seen(&[id]).unwrap(), vec![Some(stored)]);
    // "Crash" before the durable commit: the WAL replay brings the id back.
    drop(index);
    drop(db);
    let db = IndexDb::open(&path, 1 << 20).unwrap();
    let index = replayed(db, &wal_dir, end);
    assert_eq!(
        index.seen(&[id, Uuid::from_u128(1)]).unwrap(),
        vec![Some(stored), None]
    );
}
