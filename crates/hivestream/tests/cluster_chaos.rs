//! Cluster chaos: 2 collectors and 3 router workers on the 3-node JetStream
//! cluster, under a steady mixed load (event batches, alias-only events
//! from a shared pool, identify calls, cohort creations), while:
//!
//! 1. a router worker is killed with `kill -9` and restarted;
//! 2. a collector is killed with `kill -9` and restarted;
//! 3. the NATS server leading the events stream is killed and restarted;
//! 4. a fourth worker joins;
//! 5. a worker is frozen (SIGSTOP) past its lease TTL, its partitions are
//!    taken over, and it is thawed (SIGCONT): the zombie must be fenced.
//!
//! At the end every acknowledged event is in the bucket exactly once; every
//! object's bytes match the hash in its name; every alias of the pool and
//! every acknowledged identify is exported once, to the user the events
//! carry; and the `segment` snapshots never repeat one (each is published
//! once).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cluster::{free_port, ClusterSetup, NodeProc};
use common::cluster_load::ClusterLoad;
use common::verify::{assert_exactly_once, assert_hashes_match_names, sync_records, wait_for_ids};
use common::*;

fn step(t0: Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
}

/// Checks the identity exports: one record per alias, and every acked
/// alias-only event carries the user its aliases were exported to.
fn check_identity(
    objects: &HashMap<String, Vec<String>>,
    identifies: &[(String, String)],
) -> usize {
    let mut per_alias: HashMap<(String, String), Vec<String>> = HashMap::new();
    for s in sync_records(objects) {
        let key = (
            s["tag"].as_str().unwrap().to_string(),
            s["id"].as_str().unwrap().to_string(),
        );
        per_alias
            .entry(key)
            .or_default()
            .push(s["user_id"].as_str().unwrap().to_string());
    }
    for (alias, users) in &per_alias {
        assert_eq!(
            users.len(),
            1,
            "alias {alias:?} exported {} times: {users:?}",
            users.len()
        );
    }
    for (user, crm) in identifies {
        assert_eq!(
            per_alias.get(&("crm".to_string(), crm.clone())),
            Some(&vec![user.clone()]),
            "acknowledged identify {crm} not exported once"
        );
    }
    let mut checked = 0;
    for lines in objects
        .iter()
        .filter(|(k, _)| k.starts_with("type=events/"))
        .map(|(_, v)| v)
    {
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["name"] != "Login" {
                continue;
            }
            let k = v["properties"]["i"].as_u64().unwrap() as usize * 7919
                % common::cluster_load::ALIAS_POOL;
            let alias = ("email".to_string(), format!("pool{k}@example.com"));
            let exported = per_alias
                .get(&alias)
                .unwrap_or_else(|| panic!("{alias:?} never exported"));
            assert_eq!(
                v["user_id"].as_str().unwrap(),
                exported[0],
                "event user differs from its alias's"
            );
            checked += 1;
        }
    }
    checked
}

/// Consecutive snapshots never hold the same content: each change is
/// published once, and the interval (1 h) does not elapse in the test.
fn check_snapshots(objects: &HashMap<String, Vec<String>>) -> usize {
    let segments = of_type(objects, "segment");
    for w in segments.windows(2) {
        assert_ne!(
            w[0].1, w[1].1,
            "the same snapshot published twice: {} and {}",
            w[0].0, w[1].0
        );
    }
    segments.len()
}

#[test]
fn workers_collectors_and_nats_die_and_nothing_is_lost_or_duplicated() {
    let setup = ClusterSetup::new("cluster-chaos");
    let t0 = Instant::now();
    let ports = [free_port(), free_port()];
    let mut collectors: Vec<NodeProc> = (0..2)
        .map(|i| setup.spawn("collect", &format!("c{i}"), Some(ports[i])))
        .collect();
    let mut workers: Vec<NodeProc> = (0..3)
        .map(|i| setup.spawn("route", &format!("w{i}"), None))
        .collect();
    let addrs: Vec<String> = collectors.iter().map(|c| c.addr.clone().unwrap()).collect();
    let load = ClusterLoad::start(addrs, 3);
    std::thread::sleep(Duration::from_secs(4));

    step(t0, "kill -9 worker w0");
    workers.remove(0).kill9();
    std::thread::sleep(Duration::from_secs(3));
    workers.push(setup.spawn("route", "w0", None));
    step(t0, "w0 restarted");
    std::thread::sleep(Duration::from_secs(3));

    step(t0, "kill -9 collector c0");
    collectors.remove(0).kill9();
    std::thread::sleep(Duration::from_secs(2));
    collectors.push(setup.spawn("collect", "c0", Some(ports[0])));
    step(t0, "c0 restarted");
    std::thread::sleep(Duration::from_secs(3));

    let stream = format!("{}_EV", setup.name.to_uppercase());
    let leader = setup.nats.stream_leader(&stream);
    step(t0, &format!("kill -9 nats n{leader}, leader of {stream}"));
    setup.nats.kill9(leader);
    std::thread::sleep(Duration::from_secs(5));
    setup.nats.restart(leader);
    step(t0, &format!("nats n{leader} restarted"));
    std::thread::sleep(Duration::from_secs(3));

    step(t0, "a fourth worker joins");
    workers.push(setup.spawn("route", "w3", None));
    std::thread::sleep(Duration::from_secs(5));

    let zombie = workers.remove(0);
    let zombie_id = zombie.id.clone();
    step(t0, &format!("SIGSTOP {} past its lease", zombie.id));
    assert!(signal(zombie.pid(), "-STOP"));
    std::thread::sleep(Duration::from_secs(12));
    assert!(signal(zombie.pid(), "-CONT"));
    step(t0, &format!("SIGCONT {}", zombie.id));
    workers.push(zombie);
    std::thread::sleep(Duration::from_secs(6));

    let acked = load.stop();
    step(t0, &format!("load stopped: {} events, {} identifies, {} cohorts acknowledged; {} 503, {} cut, other {:?}",
        acked.events.len(), acked.identifies.len(), acked.cohorts.len(), acked.unavailable, acked.failed, acked.other));
    assert!(
        acked.other.is_empty(),
        "only 2xx, 503 or a cut connection: {:?}",
        acked.other
    );
    assert!(acked.events.len() > 5000, "load too small");

    let missing = wait_for_ids(&setup.sink, &acked.events, Duration::from_secs(120));
    assert_eq!(missing, 0, "acknowledged events not in the bucket");
    // The newest snapshot must show every acknowledged cohort.
    let objects = wait_for_objects(&setup.sink, Duration::from_secs(30), |o| {
        of_type(o, "segment").last().is_some_and(|(_, l)| {
            acked
                .cohorts
                .iter()
                .all(|n| l.iter().any(|c| c["name"] == n.as_str()))
        })
    });
    assert!(of_type(&objects, "segment").last().is_some());
    for node in workers.into_iter().chain(collectors) {
        let id = node.id.clone();
        assert_eq!(
            node.terminate(Duration::from_secs(90)),
            0,
            "{id} exits cleanly"
        );
    }
    step(t0, "every node stopped");

    let d = assert_exactly_once(&setup.sink, &acked.events);
    let objects = setup.sink.objects();
    assert_hashes_match_names(&objects);
    let logins = check_identity(&objects, &acked.identifies);
    let snapshots = check_snapshots(&objects);
    let segments = of_type(&objects, "segment");
    let newest = &segments.last().unwrap().1;
    for name in &acked.cohorts {
        assert!(
            newest.iter().any(|c| c["name"] == name.as_str()),
            "{name} missing from the newest snapshot"
        );
    }
    let zombie_log = std::fs::read_to_string(setup.log_path(&zombie_id)).unwrap();
    let noticed = zombie_log
        .lines()
        .filter(|l| l.contains("lease lost") || l.contains("fenced") || l.contains("stepping down"))
        .count();
    assert!(
        noticed > 0,
        "the thawed worker {zombie_id} never noticed it lost its jobs"
    );
    eprintln!(
        "cluster chaos: {d:?}; {logins} alias-only events checked against their exported aliases; \
         {} identifies; {snapshots} snapshots; the zombie noticed {noticed} lost jobs",
        acked.identifies.len()
    );
}
