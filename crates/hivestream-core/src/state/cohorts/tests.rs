//! Store behaviour: codes, uniqueness, patch/delete, and when snapshots are due.

use super::*;

fn store() -> (tempfile::TempDir, CohortStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::state::index_db::IndexDb::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    (dir, CohortStore::new(db).unwrap())
}

fn named(name: &str) -> CohortInput {
    CohortInput {
        name: Some(name.into()),
        ..Default::default()
    }
}

#[test]
fn codes_increase_and_names_are_unique() {
    let (_d, s) = store();
    let a = s.create(named("a"), 0).unwrap();
    let b = s
        .create(
            CohortInput {
                query: Some(serde_json::json!({"any": ["thing"]})),
                ..named("b")
            },
            0,
        )
        .unwrap();
    assert!(b.code > a.code);
    assert_eq!(
        s.get(&b.id).unwrap().query,
        Some(serde_json::json!({"any": ["thing"]}))
    );
    assert!(matches!(
        s.create(named("a"), 0),
        Err(CohortError::DuplicateName(_))
    ));
    assert!(matches!(
        s.patch(&b.id, named("a"), 0),
        Err(CohortError::DuplicateName(_))
    ));
    assert!(matches!(
        s.create(CohortInput::default(), 0),
        Err(CohortError::Invalid("name", _))
    ));
    assert!(matches!(
        s.create(named(""), 0),
        Err(CohortError::Invalid("name", _))
    ));
    let bad_type = CohortInput {
        segment_type: Some("Bad-Type".into()),
        ..named("c")
    };
    assert!(matches!(
        s.create(bad_type, 0),
        Err(CohortError::Invalid("segment_type", _))
    ));
}

#[test]
fn patch_delete_and_list() {
    let (_d, s) = store();
    let a = s.create(named("a"), 1_000).unwrap();
    let p = s
        .patch(
            &a.id,
            CohortInput {
                description: Some("d".into()),
                tags: Some(vec!["t".into()]),
                ..named("a2")
            },
            2_000,
        )
        .unwrap();
    assert_eq!(
        (p.name.as_str(), p.description.as_str(), p.code),
        ("a2", "d", a.code)
    );
    assert_eq!(p.created_at, "1970-01-01T00:00:01.000Z");
    assert_eq!(p.last_updated_at, "1970-01-01T00:00:02.000Z");
    s.create(named("a"), 0).unwrap(); // the old name is free again
    let d = s.delete(&a.id, 3_000).unwrap();
    assert_eq!(d.state, "deleted");
    assert!(matches!(s.get(&a.id), Err(CohortError::NotFound(_))));
    assert!(matches!(s.delete(&a.id, 0), Err(CohortError::NotFound(_))));
    assert_eq!(
        s.list()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
}

#[test]
fn snapshots_are_due_on_change_and_on_interval() {
    let (_d, s) = store();
    // Nothing was ever snapshotted: an (empty) snapshot is due at once.
    let (g0, content) = s.snapshot_due(0, 3_600_000).unwrap().unwrap();
    assert!(content.is_empty());
    s.mark_snapshotted(g0, 0).unwrap();
    assert!(s.snapshot_due(1, 3_600_000).unwrap().is_none());
    s.create(named("x"), 5).unwrap();
    let (g1, content) = s.snapshot_due(10, 3_600_000).unwrap().unwrap();
    assert!(g1 > g0);
    let text = String::from_utf8(content.clone()).unwrap();
    assert!(text.ends_with('\n') && text.lines().count() == 1);
    let fields: Vec<_> = [
        "id",
        "code",
        "name",
        "description",
        "tags",
        "state",
        "segment_type",
        "created_at",
        "last_updated_at",
    ]
    .iter()
    .map(|f| text.find(&format!("\"{f}\":")).unwrap())
    .collect();
    assert!(fields.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(!text.contains("query"));
    s.mark_snapshotted(g1, 10).unwrap();
    assert!(s.snapshot_due(20, 3_600_000).unwrap().is_none());
    // The interval passes: due again, with the same content (same hash).
    let (_, again) = s.snapshot_due(3_600_010, 3_600_000).unwrap().unwrap();
    assert_eq!(again, content);
}
