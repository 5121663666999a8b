//! Index behaviour: a fed index, what a reopen discards, and property tests
//! of alias resolution. Replay from the WAL is tested in `log::replay`.

use super::*;
use proptest::prelude::*;

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

#[test]
fn a_fed_index_serves_what_it_was_fed_and_recover_returns_to_the_durable_position() {
    let dir = tempfile::tempdir().unwrap();
    let db =
        crate::state::index_db::IndexDb::open(&dir.path().join("index.redb"), 1 << 20).unwrap();
    let mut index = IdentityIndex::open(db.clone()).unwrap();
    assert_eq!((index.applied(), index.durable_lsn()), (0, 0));
    index.apply(&[link(1, "email", "a", 0)], &[], 10).unwrap();
    index.make_durable().unwrap();
    index.apply(&[link(2, "email", "b", 0)], &[], 20).unwrap();
    assert_eq!((index.applied(), index.durable_lsn()), (20, 10));
    assert_eq!(
        index
            .lookup(&[alias("email", "a", 0), alias("email", "b", 0)])
            .unwrap(),
        vec![Some((Uuid::from_u128(1), 0)), Some((Uuid::from_u128(2), 0))]
    );
    // Someone reopened the database: what was not durable may be gone, so
    // the index refuses to be fed on the old generation and, recovered,
    // starts from the position the database holds; its owner feeds it
    // again from there.
    db.reopen_after(db.generation()).unwrap();
    assert!(index.stale());
    assert!(
        index.apply(&[link(5, "a", "b", 0)], &[], 30).is_err(),
        "writes on a stale generation must fail, not land half-applied"
    );
    index.recover().unwrap();
    assert!(!index.stale());
    let from = index.applied();
    assert!(
        from == 10 || from == 20,
        "durable or flushed at close: {from}"
    );
    assert_eq!(index.durable_lsn(), from);
    assert_eq!(
        index.lookup(&[alias("email", "a", 0)]).unwrap(),
        vec![Some((Uuid::from_u128(1), 0))]
    );
    // A reopened index starts where it was durable.
    drop(index);
    assert_eq!(IdentityIndex::open(db).unwrap().applied(), from);
}

proptest! {
    #[test]
    fn resolution_picks_highest_priority_known_alias(
        entries in proptest::collection::vec((proptest::option::of(0u128..4), 0i64..5), 1..8)
    ) {
        let aliases: Vec<Alias> = entries.iter().enumerate().map(|(i, (_, p))| alias("t", &i.to_string(), *p)).collect();
        let known: Vec<Option<(Uuid, i64)>> = entries.iter().map(|(u, p)| u.map(|u| (Uuid::from_u128(u), *p))).collect();
        let got = resolve(&known, &aliases);
        // Model: among known aliases, the lowest priority number, then the earliest.
        let mut best: Option<(i64, usize)> = None;
        for (i, (u, p)) in entries.iter().enumerate() {
            if u.is_some() && best.is_none_or(|(bp, _)| *p < bp) {
                best = Some((*p, i));
            }
        }
        prop_assert_eq!(got, best.map(|(_, i)| Uuid::from_u128(entries[i].0.unwrap())));
    }

    #[test]
    fn overlay_wins_over_index(n in 0usize..4) {
        let aliases: Vec<Alias> = (0..4).map(|i| alias("t", &i.to_string(), 0)).collect();
        let mut overlay = Overlay::default();
        overlay.insert(&link(5, "t", &n.to_string(), 0));
        let merged = overlay.over(vec![Some((Uuid::from_u128(1), 0)); 4], &aliases);
        for (i, m) in merged.iter().enumerate() {
            let expected = if i == n { 5 } else { 1 };
            prop_assert_eq!(m.unwrap().0, Uuid::from_u128(expected));
        }
    }
}
