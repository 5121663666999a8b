//! Hostile input: malformed, oversized, tricky and unauthorised requests
//! against the real binary. Each must get its precise status and error code
//! in the contract's envelope; a batch with bad items must store the good
//! ones; the process must stay up; and what was stored before must come out
//! exactly once, with nothing from a rejected request in the bucket. API
//! keys are checked in `auth`.

#[path = "hostile/cases.rs"]
mod cases;
mod common;

use cases::*;
use common::verify::assert_exactly_once;
use common::*;

fn check(server: &Server, c: &Case) {
    let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = request(&server.addr, c.method, &c.path, &headers, &c.body);
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, c.status, "{}: {text}", c.what);
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{}: not the JSON envelope ({e}): {text}", c.what));
    assert_eq!(v["error"]["code"], c.code, "{}: {v}", c.what);
    assert!(
        v["request_id"].as_str().is_some_and(|s| s.len() == 36),
        "{}",
        c.what
    );
    for f in ["status", "message", "docs", "cause"] {
        assert!(
            v["error"][f].as_str().is_some_and(|s| !s.is_empty()),
            "{}: {f} in {v}",
            c.what
        );
    }
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        c.what
    );
}

/// Good items of mixed batches are stored; bad ones are reported by index.
fn mixed_batches(server: &Server) -> Vec<String> {
    let items = [
        event_json(900),
        "1".to_string(),
        event_with("name", "\"bad name\""),
        event_json(901),
        "null".to_string(),
        event_with("properties", "[]"),
        event_json(902),
    ];
    let v = post_items(server, &items);
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(3), Some(4)),
        "{v}"
    );
    let statuses: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 400, 400, 201, 400, 400, 201], "{v}");
    let mut acked: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["event_id"].as_str().map(String::from))
        .collect();
    let nd = format!(
        "{}\n{{not json\n\n{}\n[1]\n",
        event_json(903),
        event_json(904)
    );
    let r = server.post("/v2.0/events/batch", &[NDJSON], nd.as_bytes());
    let v = r.json();
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert_eq!(v["results"][1]["error"]["code"], 1001, "{v}");
    acked.extend(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["event_id"].as_str().map(String::from)),
    );
    acked
}

#[test]
fn hostile_requests_get_precise_errors_and_harm_nothing() {
    let (max_body, max_items) = (2 << 20, 100);
    let mut setup = Setup::new(Backend::Local, "hostile");
    setup.extra = vec![
        "--max-body-bytes".into(),
        max_body.to_string(),
        "--max-batch-items".into(),
        max_items.to_string(),
    ];
    let server = setup.start("300ms");
    let mut acked = send_batch(&server.addr, 0, 50);
    assert_eq!(acked.len(), 50);
    let r = server.post("/v2/cohorts", &[JSON], br#"{"name":"taken"}"#);
    assert_eq!(r.status, 201);
    let mut cases = event_cases();
    cases.extend(transport_cases(max_body));
    cases.extend(batch_cases(max_items));
    cases.extend(route_cases());
    cases.push(case(
        "duplicate cohort name",
        "/v2/cohorts",
        &br#"{"name":"taken"}"#[..],
        409,
        1202,
    ));
    for c in &cases {
        check(&server, c);
        assert_eq!(server.get("/healthz").status, 200, "down after: {}", c.what);
    }
    acked.extend(mixed_batches(&server));
    acked.extend(send_batch(&server.addr, 50, 50));
    assert_eq!(
        server.terminate(),
        0,
        "clean exit after {} hostile requests",
        cases.len()
    );
    let d = assert_exactly_once(&setup, &acked);
    assert_eq!(
        d.found,
        acked.len(),
        "something from a rejected request reached the bucket"
    );
    eprintln!(
        "{} hostile requests answered precisely; {} events stored exactly once",
        cases.len(),
        d.found
    );
}
