//! What an operator watches: `/metrics` answers "how stale is S3 right
//! now" with one number, which rises while records wait and falls to 0 once
//! they are uploaded; records and files carry a data type label; the
//! histograms fill; and every metric the Grafana dashboard and the
//! Prometheus alert rules in `deploy/` use exists in a real scrape. With
//! `--log-format json` every log line is one JSON object, and each error
//! response is logged with the request id its client was given.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

/// The metric families a scrape declares (`# TYPE name kind`).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `hivestream_…` name in a file, histogram series suffixes removed.
fn used_names(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("hivestream_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(base.to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn freshness_labels_histograms_and_the_shipped_dashboards() {
    let setup = Setup::new(Backend::Local, "observability");
    let server = setup.start("2s");
    let idle = server.metric("hivestream_oldest_unuploaded_record_age_seconds");
    assert_eq!(idle, Some(0.0), "nothing waits: the bucket is fresh");
    let acked = send_batch(&server.addr, 0, 50);
    assert_eq!(acked.len(), 50);
    std::thread::sleep(Duration::from_millis(1200));
    let waiting = server
        .metric("hivestream_oldest_unuploaded_record_age_seconds")
        .unwrap();
    assert!(
        (1.0..3.0).contains(&waiting),
        "records acknowledged about 1.2 s ago wait for the 2 s flush: {waiting}"
    );
    assert!(server.wait_until(Duration::from_secs(10), |s| {
        s.metric("hivestream_oldest_unuploaded_record_age_seconds") == Some(0.0)
    }));
    let text = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(text.contains("hivestream_uploaded_records_total{data_type=\"events\"} 50"));
    assert!(text.contains("hivestream_files_sealed_total{data_type=\"segment\"} 1"));
    assert!(
        text.contains("hivestream_ack_to_upload_seconds_count 2"),
        "one observation per uploaded file"
    );
    assert!(text.contains(
        "hivestream_http_request_duration_seconds_count{route=\"/v2.0/events/batch\"} 1"
    ));
    assert!(text.contains("hivestream_wal_commit_duration_seconds_count"));
    let lag_sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("hivestream_ack_to_upload_seconds_sum "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        lag_sum > 1.5,
        "the events file waited for its 2 s flush: {lag_sum}"
    );

    let exposed = families(&text);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    for file in ["grafana/hivestream.json", "prometheus/alerts.yml"] {
        let used = used_names(&format!("{root}/{file}"));
        assert!(used.len() >= 8, "{file} uses metrics");
        let missing: Vec<&String> = used.iter().filter(|n| !exposed.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics /metrics does not have: {missing:?}"
        );
    }
    assert_eq!(server.terminate(), 0);
}

#[test]
fn json_logs_carry_the_request_id_of_every_error_response() {
    let mut setup = Setup::new(Backend::Local, "jsonlog");
    setup
        .env
        .push(("HIVESTREAM_LOG_FORMAT".into(), "json".into()));
    let server = setup.start("1s");
    let bad = server.post("/v2.0/events", &[JSON], b"{not json");
    assert_eq!(bad.status, 400);
    let missing = server.get("/v2.0/nowhere");
    assert_eq!(missing.status, 404);
    assert_eq!(server.terminate(), 0);
    let log = std::fs::read_to_string(setup.log_path()).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "hivestream serving"),
        "{log}"
    );
    for (resp, status, route, method) in [
        (&bad, 400, "/v2.0/events", "POST"),
        (&missing, 404, "unmatched", "GET"),
    ] {
        let id = resp.json()["request_id"].as_str().unwrap().to_string();
        assert_eq!(resp.header("x-request-id"), Some(id.as_str()));
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no log line for {id}:\n{log}"));
        assert_eq!(line["message"], "error response");
        assert_eq!(line["status"], status);
        assert_eq!(line["route"], route);
        assert_eq!(line["method"], method);
        assert_eq!(line["level"], "INFO");
        assert!(
            line["cause"].as_str().is_some_and(|c| !c.is_empty()),
            "{line}"
        );
    }
}
