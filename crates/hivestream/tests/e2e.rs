//! End-to-end tests against the real binary, on every backend this run has
//! (the local directory always; SeaweedFS when the test script started it):
//! contents and layout of the objects, SIGTERM flushing. Crashes, outages
//! and a full disk are in the `chaos_*` suites; malformed input and auth in
//! `hostile`; secrets in `secrets`.

mod common;

use std::time::Duration;

use common::verify::{check_key, check_line};
use common::*;

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
