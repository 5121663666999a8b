//! End-to-end tests of the `sync_aliases` and `segment` data types on every
//! backend: identify, alias-only events (stable across kill -9, one user for
//! concurrent first sightings), cohort changes and their snapshots.

mod common;

use std::time::Duration;

use common::*;

fn identify(server: &Server, user: &str, aliases: &str) -> Response {
    let body = format!(r#"{{"user_id":"{user}","aliases":{aliases}}}"#);
    server.post("/v2.0/identify", &[JSON], body.as_bytes())
}

#[test]
fn identify_writes_sync_aliases_and_links() {
    for backend in backends() {
        let setup = Setup::new(backend.clone(), "identify");
        let server = setup.start("500ms");
        let user = server.post("/v2.0/users", &[], b"").json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = identify(
            &server,
            &user,
            r#"[{"priority":0,"tag":"email_sha256","id":"abc"},{"priority":1,"tag":"appnexus","id":"42"}]"#,
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["user_id"], user.as_str());
        let aliases = server.get(&format!("/v2.0/users/{user}/aliases")).json();
        let mut tags: Vec<_> = aliases
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["tag"].as_str().unwrap().to_string())
            .collect();
        tags.sort();
        assert_eq!(tags, vec!["appnexus", "email_sha256"]);
        assert_eq!(aliases[0]["permutive_id"], user.as_str());
        // Re-link one alias to another user: recorded, and moved.
        let other = "11111111-2222-4333-8444-555555555555";
        assert_eq!(
            identify(
                &server,
                other,
                r#"[{"priority":0,"tag":"appnexus","id":"42"}]"#
            )
            .status,
            200
        );
        assert_eq!(
            server
                .get(&format!("/v2.0/users/{user}/aliases"))
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            server.get(&format!("/v2.0/users/{other}/aliases")).json()[0]["id"],
            "42"
        );
        assert_eq!(server.get("/v2.0/users/not-a-uuid/aliases").status, 400);
        let objects = wait_for_objects(&setup, Duration::from_secs(10), |o| {
            of_type(o, "sync_aliases")
                .iter()
                .map(|x| x.1.len())
                .sum::<usize>()
                >= 3
        });
        let syncs = of_type(&objects, "sync_aliases");
        let lines: Vec<_> = syncs
            .iter()
            .flat_map(|(k, l)| l.iter().map(move |v| (k.clone(), v.clone())))
            .collect();
        assert_eq!(lines.len(), 3, "{backend:?}: {lines:?}");
        for (key, v) in &lines {
            let t = v["time"].as_str().unwrap();
            assert!(
                key.starts_with(&format!(
                    "type=sync_aliases/year={}/month={}/day={}/hour={}/",
                    &t[0..4],
                    &t[5..7],
                    &t[8..10],
                    &t[11..13]
                )),
                "{key}"
            );
            assert_eq!(v.as_object().unwrap().keys().len(), 5);
        }
        let relink = lines
            .iter()
            .find(|(_, v)| v["user_id"] == other)
            .expect("re-link recorded");
        assert_eq!(
            (
                relink.1["tag"].as_str(),
                relink.1["id"].as_str(),
                relink.1["priority"].as_i64()
            ),
            (Some("appnexus"), Some("42"), Some(0))
        );
        assert_eq!(server.terminate(), 0);
    }
}

#[test]
fn alias_only_events_get_one_stable_user() {
    for backend in backends() {
        let setup = Setup::new(backend.clone(), "aliasev");
        let server = setup.start("500ms");
        let ev = r#"{"name":"Pageview","aliases":[{"priority":1,"tag":"cookie","id":"c-1"},{"priority":0,"tag":"email","id":"e-1"}]}"#;
        // Eight concurrent first sightings of the same new aliases.
        let addr = server.addr.clone();
        let users: Vec<String> = (0..8)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let r = request(&addr, "POST", "/v2.0/events", &[JSON], ev.as_bytes());
                    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
                    r.json()["user_id"].as_str().unwrap().to_string()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(
            users.iter().all(|u| *u == users[0]),
            "{backend:?}: {users:?}"
        );
        let user = users[0].clone();
        server.kill9();
        let server = setup.start("500ms");
        let r = server.post(
            "/v2.0/events",
            &[JSON],
            br#"{"name":"Click","aliases":[{"priority":5,"tag":"email","id":"e-1"}]}"#,
        );
        assert_eq!(
            r.json()["user_id"],
            user.as_str(),
            "{backend:?}: same user after kill -9"
        );
        // The highest-priority known alias wins over a lower one of another user.
        let other = "11111111-2222-4333-8444-555555555555";
        assert_eq!(
            identify(
                &server,
                other,
                r#"[{"priority":0,"tag":"device","id":"d"}]"#
            )
            .status,
            200
        );
        let r = server.post("/v2.0/events/batch", &[JSON], br#"[{"name":"X","aliases":[{"priority":3,"tag":"email","id":"e-1"},{"priority":0,"tag":"device","id":"d"}]}]"#);
        assert_eq!(r.json()["accepted"], 1);
        assert_eq!(server.terminate(), 0);
        let objects = setup.objects();
        let events: Vec<_> = of_type(&objects, "events")
            .into_iter()
            .flat_map(|x| x.1)
            .collect();
        assert_eq!(events.len(), 10);
        assert_eq!(
            events
                .iter()
                .filter(|e| e["user_id"] == user.as_str())
                .count(),
            9
        );
        assert_eq!(events.iter().filter(|e| e["user_id"] == other).count(), 1);
        // One sync per alias for the one new user: not one per request.
        let syncs: Vec<_> = of_type(&objects, "sync_aliases")
            .into_iter()
            .flat_map(|x| x.1)
            .collect();
        assert_eq!(
            syncs
                .iter()
                .filter(|s| s["user_id"] == user.as_str())
                .count(),
            2,
            "{syncs:?}"
        );
    }
}

fn latest_segment(setup: &Setup) -> Option<Vec<serde_json::Value>> {
    of_type(&setup.objects(), "segment").pop().map(|x| x.1)
}

fn wait_segment(
    setup: &Setup,
    check: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = latest_segment(setup) {
            if check(&s) {
                return s;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no matching snapshot; latest: {:?}",
            latest_segment(setup)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cohort_changes_produce_snapshots() {
    for backend in backends() {
        let setup = Setup::new(backend.clone(), "cohorts");
        let server = setup.start("500ms");
        let r = server.post(
            "/v2/cohorts",
            &[JSON],
            br#"{"name":"Sports fans","tags":["sport"],"query":{"and":[1,2]}}"#,
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let a = r.json();
        let id = a["id"].as_str().unwrap().to_string();
        assert_eq!(a["query"]["and"][1], 2);
        assert_eq!(
            server
                .post("/v2/cohorts", &[JSON], br#"{"name":"Sports fans"}"#)
                .status,
            409
        );
        assert_eq!(
            server
                .post("/v2/cohorts", &[JSON], br#"{"name":"x","bogus":1}"#)
                .status,
            400
        );
        let s = wait_segment(&setup, |s| s.len() == 1);
        assert_eq!(s[0]["name"], "Sports fans");
        assert_eq!(s[0]["state"], "Enabled");
        assert_eq!(s[0]["segment_type"], "real_time");
        assert_eq!(s[0]["workspace_id"], a["workspace_id"]);
        assert!(uuid::Uuid::try_parse(a["workspace_id"].as_str().unwrap()).is_ok());
        let r = request(
            &server.addr,
            "PATCH",
            &format!("/v2/cohorts/{id}"),
            &[JSON],
            br#"{"name":"Football fans"}"#,
        );
        assert_eq!(r.status, 200);
        wait_segment(&setup, |s| s.len() == 1 && s[0]["name"] == "Football fans");
        let b = server
            .post("/v2/cohorts", &[JSON], br#"{"name":"Readers"}"#)
            .json();
        wait_segment(&setup, |s| s.len() == 2);
        assert_eq!(
            server.get("/v2/cohorts").json().as_array().unwrap().len(),
            2
        );
        assert_eq!(
            request(
                &server.addr,
                "DELETE",
                &format!("/v2/cohorts/{id}"),
                &[],
                b""
            )
            .status,
            200
        );
        assert_eq!(server.get(&format!("/v2/cohorts/{id}")).status, 404);
        assert_eq!(server.get("/v2/cohorts/not-an-id").status, 404);
        let s = wait_segment(&setup, |s| s.len() == 1);
        assert_eq!(s[0]["id"], b["id"]);
        assert_eq!(server.terminate(), 0);
    }
}

#[test]
fn snapshot_survives_kill9_between_change_and_snapshot() {
    for backend in backends() {
        let setup = Setup::new(backend.clone(), "cohortkill");
        let server = setup.start("2s");
        let r = server.post("/v2/cohorts", &[JSON], br#"{"name":"Before crash"}"#);
        assert_eq!(r.status, 201);
        server.kill9();
        let server = setup.start("500ms");
        let s = wait_segment(&setup, |s| s.len() == 1);
        assert_eq!(s[0]["name"], "Before crash", "{backend:?}");
        assert_eq!(server.terminate(), 0);
    }
}

/// The cohort as the release before `Enabled`/`real_time`/`workspace_id`
/// serialised it into the index.
fn old_cohort_json(id: &str, name: &str) -> String {
    format!(
        r#"{{"id":"{id}","code":1,"name":"{name}","description":"","tags":["old"],"state":"live","segment_type":"standard","created_at":"2026-06-01T10:00:00.000Z","last_updated_at":"2026-06-01T10:00:00.000Z","query":{{"section":"sport"}}}}"#
    )
}

/// Rewrites every cohort in a stopped server's index as the earlier
/// release stored it, and removes the workspace id it did not keep.
fn make_old(setup: &Setup) {
    let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("cohorts");
    let db = redb::Database::open(setup.data_dir().join("index.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(table).unwrap();
        let rows: Vec<(String, String)> = redb::ReadableTable::iter(&t)
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                let name = serde_json::from_str::<serde_json::Value>(v.value()).unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_string();
                (k.value().to_string(), name)
            })
            .collect();
        for (id, name) in rows {
            t.insert(id.as_str(), old_cohort_json(&id, &name).as_str())
                .unwrap();
        }
    }
    txn.commit().unwrap();
    std::fs::remove_file(setup.data_dir().join("workspace_id")).unwrap();
}

#[test]
fn cohorts_of_an_old_data_dir_read_as_enabled_and_real_time() {
    let setup = Setup::new(Backend::Local, "oldcohorts");
    let server = setup.start("500ms");
    let made = server
        .post("/v2/cohorts", &[JSON], br#"{"name":"Old readers"}"#)
        .json();
    assert_eq!(server.terminate(), 0);
    make_old(&setup);
    let server = setup.start("500ms");
    let listed = server.get("/v2/cohorts").json();
    let old = &listed[0];
    assert_eq!(
        (old["id"].clone(), old["state"].clone()),
        (made["id"].clone(), "Enabled".into())
    );
    assert_eq!(old["segment_type"], "real_time");
    assert_eq!(old["query"]["section"], "sport");
    let workspace = old["workspace_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::try_parse(&workspace).is_ok());
    // A change makes a new snapshot: the old cohort is in it as read.
    let new = server
        .post("/v2/cohorts", &[JSON], br#"{"name":"New readers"}"#)
        .json();
    assert_eq!(new["workspace_id"], workspace.as_str(), "one workspace");
    let s = wait_segment(&setup, |s| s.len() == 2);
    assert_eq!(
        (s[0]["name"].as_str(), s[0]["state"].as_str()),
        (Some("Old readers"), Some("Enabled"))
    );
    assert_eq!(s[0]["segment_type"], "real_time");
    assert!(s.iter().all(|c| c["workspace_id"] == workspace.as_str()));
    assert_eq!(server.terminate(), 0);
    // The workspace id generated for the old dir is kept.
    let server = setup.start("500ms");
    assert_eq!(
        server.get("/v2/cohorts").json()[0]["workspace_id"],
        workspace.as_str()
    );
    assert_eq!(server.terminate(), 0);
}

#[test]
fn a_configured_workspace_id_names_every_cohort() {
    let mut setup = Setup::new(Backend::Local, "workspace");
    let ws = "0bd63f73-6b67-4766-8c86-fa1d2cf87194";
    setup.extra = vec!["--workspace-id".into(), ws.into()];
    let server = setup.start("500ms");
    let c = server
        .post("/v2/cohorts", &[JSON], br#"{"name":"Configured"}"#)
        .json();
    assert_eq!(c["workspace_id"], ws);
    let s = wait_segment(&setup, |s| s.len() == 1);
    assert_eq!(s[0]["workspace_id"], ws);
    assert_eq!(server.terminate(), 0);
}
