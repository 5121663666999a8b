//! Store behaviour: codes, uniqueness, patch/delete, and when snapshots are due.

use super::*;

fn store() -> (tempfile::TempDir, CohortStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::state::index_db::IndexDb::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    (dir, CohortStore::new(db, WORKSPACE).unwrap())
}

const WORKSPACE: Uuid = Uuid::from_u128(0x0bd63f73_6b67_4766_8c86_fa1d2cf87194);

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
        segment_type: Some("standard".into()),
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
                description: Some(Some("d".into())),
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
    let d = s.delete(&a.id).unwrap();
    assert_eq!((d.id, d.state), (a.id, CohortState::Enabled), "as it was");
    assert!(matches!(s.get(&a.id), Err(CohortError::NotFound(_))));
    assert!(matches!(s.delete(&a.id), Err(CohortError::NotFound(_))));
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
fn snapshot_progress_follows_changes_and_survives_reopen() {
    use crate::state::snapshot_rule::{content_hash, next_step, SnapshotStep};
    let (dir, s) = store();
    let step = |s: &CohortStore, now: i64| {
        let (p, generation) = s.snapshot_progress().unwrap();
        let st = next_step(&p, generation, now, 3_600_000, || {
            s.snapshot_content().map(|c| content_hash(&c))
        })
        .unwrap();
        s.save_snapshot_progress(p.after(st, now)).unwrap();
        st
    };
    // Nothing was ever snapshotted: an (empty) snapshot is due at once.
    assert!(matches!(step(&s, 0), SnapshotStep::Write { .. }));
    assert_eq!(step(&s, 1), SnapshotStep::UpToDate);
    s.create(named("x"), 5).unwrap();
    assert!(matches!(step(&s, 10), SnapshotStep::Write { .. }));
    let text = String::from_utf8(s.snapshot_content().unwrap()).unwrap();
    assert!(text.ends_with('\n') && text.lines().count() == 1);
    let fields: Vec<_> = [
        "id",
        "code",
        "name",
        "description",
        "tags",
        "state",
        "workspace_id",
        "segment_type",
        "created_at",
        "last_updated_at",
    ]
    .iter()
    .map(|f| text.find(&format!("\"{f}\":")).unwrap())
    .collect();
    assert!(fields.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(!text.contains("query"));
    // Changes that cancel out between two ticks (a cohort made and deleted)
    // move the generation but not the content: covered, nothing written.
    let y = s.create(named("y"), 15).unwrap();
    s.delete(&y.id).unwrap();
    assert!(matches!(step(&s, 20), SnapshotStep::Cover { .. }));
    assert_eq!(step(&s, 21), SnapshotStep::UpToDate);
    // The progress is kept in the index: a reopened store agrees.
    drop(s);
    let db = crate::state::index_db::IndexDb::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let s = CohortStore::new(db, WORKSPACE).unwrap();
    assert_eq!(step(&s, 22), SnapshotStep::UpToDate);
    // The interval passes: due again, with the same content.
    assert!(matches!(step(&s, 3_700_000), SnapshotStep::Write { .. }));
}

#[test]
fn new_cohorts_are_enabled_real_time_and_in_the_workspace() {
    let (_d, s) = store();
    let c = s.create(named("a"), 0).unwrap();
    assert_eq!(c.state, CohortState::Enabled);
    assert_eq!(c.segment_type, DEFAULT_SEGMENT_TYPE);
    assert_eq!(c.workspace_id, WORKSPACE);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["state"], "Enabled");
    assert_eq!(json["segment_type"], "real_time");
    assert_eq!(json["workspace_id"], WORKSPACE.to_string());
    let offline = CohortInput {
        segment_type: Some("offline".into()),
        ..named("b")
    };
    assert_eq!(s.create(offline, 0).unwrap().segment_type, "offline");
}

#[test]
fn patch_sets_the_state_and_null_clears_the_description() {
    let (_d, s) = store();
    let input: CohortInput =
        serde_json::from_str(r#"{"name":"a","description":"about a"}"#).unwrap();
    let a = s.create(input, 0).unwrap();
    let disable: CohortInput = serde_json::from_str(r#"{"state":"Disabled"}"#).unwrap();
    let p = s.patch(&a.id, disable, 1).unwrap();
    assert_eq!(
        (p.state, p.description.as_str()),
        (CohortState::Disabled, "about a")
    );
    let clear: CohortInput = serde_json::from_str(r#"{"description":null}"#).unwrap();
    let p = s.patch(&a.id, clear, 2).unwrap();
    assert_eq!(
        (p.state, p.description.as_str()),
        (CohortState::Disabled, "")
    );
    // A disabled cohort is still exported, with its state.
    let text = String::from_utf8(s.snapshot_content().unwrap()).unwrap();
    assert!(text.contains(r#""state":"Disabled""#), "{text}");
    let bad: CohortInput = serde_json::from_str(r#"{"state":"live"}"#).unwrap();
    assert!(matches!(
        s.patch(&a.id, bad, 3),
        Err(CohortError::Invalid("state", _))
    ));
}

#[test]
fn cohorts_of_earlier_versions_read_as_enabled_real_time() {
    let old = r#"{"id":"38470a62-9837-4c86-bbf3-45dd6d52dd83","code":7,"name":"n","description":"",
        "tags":[],"state":"live","segment_type":"standard","created_at":"2026-01-01T00:00:00.000Z",
        "last_updated_at":"2026-01-01T00:00:00.000Z","query":null}"#;
    let c = Cohort::from_stored(old.as_bytes(), WORKSPACE).unwrap();
    assert_eq!(c.state, CohortState::Enabled);
    assert_eq!(c.segment_type, "real_time");
    assert_eq!(c.workspace_id, WORKSPACE);
    // A type other than the old default is kept as it was stored.
    let custom = old.replace("standard", "lookalike");
    assert_eq!(
        Cohort::from_stored(custom.as_bytes(), WORKSPACE)
            .unwrap()
            .segment_type,
        "lookalike"
    );
}
