//! End-to-end tests against the real binary, on every backend this run has
//! (the local directory always; SeaweedFS when the test script started it):
//! contents and layout of the objects, exactly-once across `kill -9` and
//! restarts, SIGTERM flushing, auth.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const FIELDS: [&str; 9] = [
    "event_id",
    "time",
    "name",
    "user_id",
    "session_id",
    "view_id",
    "segments",
    "cohorts",
    "properties",
];

/// Checks a key is `type=events/year=YYYY/month=MM/day=DD/hour=HH/{13 digits}-{16 hex}-{worker}.jsonl.gz`
/// and agrees with its records' times and content.
fn check_key(key: &str, lines: &[String]) {
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts.len(), 6, "{key}");
    assert_eq!(parts[0], "type=events");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let time = first["time"].as_str().unwrap();
    assert_eq!(parts[1], format!("year={}", &time[0..4]), "{key}");
    assert_eq!(parts[2], format!("month={}", &time[5..7]), "{key}");
    assert_eq!(parts[3], format!("day={}", &time[8..10]), "{key}");
    assert_eq!(parts[4], format!("hour={}", &time[11..13]), "{key}");
    let name = parts[5].strip_suffix(".jsonl.gz").unwrap();
    let mut pieces = name.splitn(3, '-');
    let (ts, hash, worker) = (
        pieces.next().unwrap(),
        pieces.next().unwrap(),
        pieces.next().unwrap(),
    );
    assert_eq!(ts.len(), 13, "{key}");
    assert!(
        hash.len() == 16
            && hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{key}"
    );
    assert!(
        !worker.is_empty()
            && worker
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{key}"
    );
    let mut content = lines.join("\n");
    content.push('\n');
    assert_eq!(
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(content.as_bytes())),
        hash,
        "{key}: hash is of the content"
    );
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["time"].as_str().unwrap().starts_with(&time[..13]),
            "{key}: record of another hour"
        );
    }
}

fn check_line(line: &str) {
    let positions: Vec<usize> = FIELDS
        .iter()
        .map(|f| {
            line.find(&format!("\"{f}\":"))
                .unwrap_or_else(|| panic!("{f} missing: {line}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "field order: {line}"
    );
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 9, "{line}");
    let t = v["time"].as_str().unwrap();
    assert!(
        t.len() == 24 && t.ends_with('Z') && &t[19..20] == ".",
        "{t}"
    );
}

#[test]
fn events_arrive_exactly_once_with_contract_layout() {
    for backend in backends() {
        let setup = Setup::new(backend.clone(), "layout");
        let server = setup.start("1s");
        let mut acked = Vec::new();
        for i in 0..20 {
            let r = server.post("/v2.0/events", &[JSON], event_json(i).as_bytes());
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            assert_eq!(v["name"], "Pageview");
            acked.push(v["event_id"].as_str().unwrap().to_string());
        }
        acked.extend(send_batch(&server.addr, 100, 500));
        // NDJSON with one bad line in the middle: the good ones are stored.
        let nd = format!("{}\n{{\"name\":\"x\"}}\n{}\n", event_json(1), event_json(2));
        let r = server.post(
            "/v2.0/events/batch",
            &[("content-type", "application/x-ndjson")],
            nd.as_bytes(),
        );
        let v = r.json();
        assert_eq!(
            (v["accepted"].as_u64(), v["rejected"].as_u64()),
            (Some(2), Some(1)),
            "{v}"
        );
        assert_eq!(v["results"][1]["status"], 400);
        acked.extend(
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["event_id"].as_str().map(String::from)),
        );
        assert_eq!(acked.len(), 522);
        let objects = wait_for_objects(&setup, Duration::from_secs(15), |o| {
            event_counts(o).len() >= acked.len()
        });
        let counts = event_counts(&objects);
        for id in &acked {
            assert_eq!(
                counts.get(id),
                Some(&1),
                "{backend:?}: {id} should be stored exactly once"
            );
        }
        assert_eq!(counts.len(), acked.len());
        for (key, lines) in objects
            .iter()
            .filter(|(k, _)| k.starts_with("type=events/"))
        {
            check_key(key, lines);
            lines.iter().for_each(|l| check_line(l));
        }
        assert_eq!(server.terminate(), 0);
    }
}

#[test]
fn sigterm_seals_and_uploads_everything() {
    for backend in backends() {
        let setup = Setup::new(backend.clone(), "sigterm");
        let server = setup.start("1h");
        let acked = send_batch(&server.addr, 0, 300);
        assert_eq!(acked.len(), 300);
        assert_eq!(server.terminate(), 0, "{backend:?}: clean exit");
        let counts = event_counts(&setup.objects());
        assert_eq!(counts.len(), 300, "{backend:?}");
        assert!(counts.values().all(|&c| c == 1));
    }
}

#[test]
fn kill9_under_load_loses_and_duplicates_nothing() {
    for backend in backends() {
        let setup = Setup::new(backend.clone(), "kill9");
        let acked = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicUsize::new(0));
        for round in 0..4 {
            let server = setup.start("300ms");
            let stop = Arc::new(AtomicBool::new(false));
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let (addr, acked, next, stop) = (
                        server.addr.clone(),
                        acked.clone(),
                        next.clone(),
                        stop.clone(),
                    );
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let from = next.fetch_add(50, Ordering::Relaxed);
                            let ids = send_batch(&addr, from, 50);
                            acked.lock().unwrap().extend(ids);
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(400 + 250 * round));
            server.kill9();
            stop.store(true, Ordering::Relaxed);
            workers.into_iter().for_each(|w| w.join().unwrap());
        }
        let server = setup.start("300ms");
        assert_eq!(server.terminate(), 0);
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() > 1000,
            "{backend:?}: load too small ({})",
            acked.len()
        );
        let objects = setup.objects();
        let counts = event_counts(&objects);
        let dupes: Vec<_> = counts.iter().filter(|(_, &c)| c > 1).collect();
        assert!(dupes.is_empty(), "{backend:?}: duplicated {dupes:?}");
        let missing: Vec<_> = acked
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{backend:?}: {} of {} acknowledged events missing",
            missing.len(),
            acked.len()
        );
        let keys: HashSet<_> = objects.keys().collect();
        assert_eq!(keys.len(), objects.len());
        eprintln!(
            "{backend:?}: {} acknowledged, {} found, {} objects",
            acked.len(),
            counts.len(),
            objects.len()
        );
    }
}

#[test]
fn api_keys_are_required_when_configured() {
    let mut setup = Setup::new(Backend::Local, "auth");
    setup.extra = vec!["--api-key".into(), "s3cr3t-key".into()];
    let server = setup.start("1s");
    let body = event_json(0);
    let r = server.post("/v2.0/events", &[JSON], body.as_bytes());
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "Unauthorized");
    assert_eq!(
        server
            .post(
                "/v2.0/events",
                &[JSON, ("x-api-key", "wrong")],
                body.as_bytes()
            )
            .status,
        401
    );
    assert_eq!(
        server
            .post(
                "/v2.0/events",
                &[JSON, ("x-api-key", "s3cr3t-key")],
                body.as_bytes()
            )
            .status,
        201
    );
    assert_eq!(
        server
            .post("/v2.0/events?k=s3cr3t-key", &[JSON], body.as_bytes())
            .status,
        201
    );
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(
        metrics.contains("hivestream_events_accepted_total 2"),
        "{metrics}"
    );
    assert_eq!(server.terminate(), 0);
    let log = std::fs::read_to_string(setup.dir.path().join("server.log")).unwrap();
    assert!(
        !log.contains("s3cr3t-key") && !metrics.contains("s3cr3t-key"),
        "the API key leaked"
    );
}

#[test]
fn errors_use_the_envelope() {
    let setup = Setup::new(Backend::Local, "errors");
    let server = setup.start("1s");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("/v2.0/events", vec![JSON], b"{".to_vec(), 400),
        (
            "/v2.0/events",
            vec![JSON],
            b"{\"name\":\"x\",\"user_id\":\"nope\"}".to_vec(),
            400,
        ),
        (
            "/v2.0/events",
            vec![("content-type", "text/plain")],
            b"{}".to_vec(),
            415,
        ),
        (
            "/v2.0/events",
            vec![JSON, ("content-encoding", "br")],
            b"{}".to_vec(),
            415,
        ),
        ("/v2.0/events", vec![JSON], vec![b' '; 17 << 20], 413),
        ("/v2.0/events/batch", vec![JSON], b"[]".to_vec(), 400),
        ("/v2.0/nope", vec![JSON], b"{}".to_vec(), 404),
    ];
    for (path, headers, body, status) in cases {
        let r = server.post(path, &headers, &body);
        assert_eq!(
            r.status,
            status,
            "{path} {headers:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        assert!(v["request_id"].as_str().is_some_and(|s| s.len() == 36));
        for f in ["status", "code", "message", "docs", "cause"] {
            assert!(!v["error"][f].is_null(), "{f} missing in {v}");
        }
    }
    assert_eq!(server.terminate(), 0);
}
