//! Cluster mode end to end on the real 3-node JetStream cluster: two
//! `node`s (collector and router worker each) behind no load balancer, the
//! client picking either.
//!
//! - events through either collector land exactly once, under contract keys
//!   whose hashes match their bytes, named by log partition (`p03`);
//! - identify through one collector is visible at once through the other
//!   (one identity leader, read-your-writes);
//! - concurrent first sightings of the same aliases through both collectors
//!   get one user per alias set, and each alias is exported once;
//! - cohorts created through one collector are read through the other and
//!   end up in a `segment` snapshot.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::cluster::{free_port, ClusterSetup};
use common::verify::{assert_exactly_once, assert_hashes_match_names, sync_records, wait_for_ids};
use common::*;

fn alias_event(set: usize, thread: usize) -> String {
    format!(
        r#"{{"name":"Login","aliases":[{{"priority":0,"tag":"email","id":"user{set}@example.com"}},{{"priority":1,"tag":"cookie","id":"ck-{set}"}}],"properties":{{"t":{thread}}}}}"#
    )
}

/// Sends alias-only events for the same 20 fresh alias sets from 8 threads
/// (4 per collector) at once; returns alias set → users seen.
fn concurrent_first_sightings(addrs: &[String]) -> HashMap<usize, HashSet<String>> {
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let addr = addrs[t % 2].clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                (0..20)
                    .map(|set| {
                        let r = request(
                            &addr,
                            "POST",
                            "/v2.0/events",
                            &[JSON],
                            alias_event(set, t).as_bytes(),
                        );
                        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
                        (set, r.json()["user_id"].as_str().unwrap().to_string())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut users: HashMap<usize, HashSet<String>> = HashMap::new();
    for t in threads {
        for (set, user) in t.join().unwrap() {
            users.entry(set).or_default().insert(user);
        }
    }
    users
}

#[test]
fn two_nodes_collect_route_and_share_identity_and_cohorts() {
    let setup = ClusterSetup::new("cluster-e2e");
    let (pa, pb) = (free_port(), free_port());
    let a = setup.spawn("node", "a", Some(pa));
    let b = setup.spawn("node", "b", Some(pb));
    let addrs = [a.addr.clone().unwrap(), b.addr.clone().unwrap()];

    let mut acked = Vec::new();
    for i in 0..40 {
        acked.extend(send_batch(&addrs[i % 2], i * 25, 25));
    }
    assert_eq!(acked.len(), 1000, "every batch is acknowledged");

    let identify = format!(
        r#"{{"user_id":"{UID}","aliases":[{{"priority":0,"tag":"crm","id":"c-1"}},{{"priority":1,"tag":"idfa","id":"i-1"}}]}}"#
    );
    let r = request(
        &addrs[0],
        "POST",
        "/v2.0/identify",
        &[JSON],
        identify.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = request(
        &addrs[1],
        "GET",
        &format!("/v2.0/users/{UID}/aliases"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json().as_array().unwrap().len(),
        2,
        "read-your-writes through the other collector: {}",
        r.json()
    );

    let users = concurrent_first_sightings(&addrs);
    for (set, seen) in &users {
        assert_eq!(seen.len(), 1, "alias set {set} got several users: {seen:?}");
    }

    let r = request(
        &addrs[0],
        "POST",
        "/v2/cohorts",
        &[JSON],
        br#"{"name":"Sports fans"}"#,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_string();
    let workspace = r.json()["workspace_id"].clone();
    assert!(uuid::Uuid::try_parse(workspace.as_str().unwrap()).is_ok());
    let r = request(&addrs[1], "GET", &format!("/v2/cohorts/{id}"), &[], b"");
    assert_eq!(r.json()["name"], "Sports fans");
    assert_eq!(r.json()["state"], "Enabled");
    assert_eq!(
        r.json()["workspace_id"],
        workspace,
        "one workspace, kept in KV"
    );
    let dup = request(
        &addrs[1],
        "POST",
        "/v2/cohorts",
        &[JSON],
        br#"{"name":"Sports fans"}"#,
    );
    assert_eq!(dup.status, 409, "names are unique across collectors");

    assert_eq!(
        wait_for_ids(&setup.sink, &acked, Duration::from_secs(60)),
        0
    );
    let objects = wait_for_objects(&setup.sink, Duration::from_secs(30), |o| {
        sync_records(o).len() >= 42
            && of_type(o, "segment")
                .last()
                .is_some_and(|(_, lines)| lines.len() == 1)
    });
    let segment = of_type(&objects, "segment").pop().unwrap().1;
    assert_eq!(
        segment[0]["workspace_id"], workspace,
        "the snapshot writer's workspace"
    );
    assert_eq!(a.terminate(Duration::from_secs(60)), 0);
    assert_eq!(b.terminate(Duration::from_secs(60)), 0);

    let d = assert_exactly_once(&setup.sink, &acked);
    let objects_after = setup.sink.objects();
    assert_hashes_match_names(&objects_after);
    assert!(
        objects
            .keys()
            .filter(|k| k.starts_with("type=events/"))
            .all(|k| k.rsplit('-').next().unwrap().starts_with('p')),
        "events objects are named by log partition"
    );
    let syncs = sync_records(&objects_after);
    let mut per_alias: HashMap<(String, String), Vec<String>> = HashMap::new();
    for s in &syncs {
        per_alias
            .entry((
                s["tag"].as_str().unwrap().into(),
                s["id"].as_str().unwrap().into(),
            ))
            .or_default()
            .push(s["user_id"].as_str().unwrap().into());
    }
    for set in 0..20 {
        let user = users[&set].iter().next().unwrap();
        for key in [
            ("email".to_string(), format!("user{set}@example.com")),
            ("cookie".to_string(), format!("ck-{set}")),
        ] {
            assert_eq!(
                per_alias.get(&key),
                Some(&vec![user.clone()]),
                "{key:?} exported once, to its user"
            );
        }
    }
    assert_eq!(
        syncs.len(),
        42,
        "40 first-sighting links and 2 identify links"
    );
    let segments = of_type(&objects_after, "segment");
    let newest = &segments.last().unwrap().1;
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0]["name"], "Sports fans");
    eprintln!(
        "cluster e2e: {d:?}, {} sync_aliases, {} snapshots",
        syncs.len(),
        segments.len()
    );
}
