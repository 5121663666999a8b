//! Backpressure and faults in cluster mode: a full events stream and a lost
//! NATS quorum both answer 503 with `Retry-After`, never a 2xx; writes come
//! back once a worker drains the stream or the quorum returns, and every
//! acknowledged event is delivered exactly once.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{free_port, ClusterSetup};
use common::verify::{assert_exactly_once, wait_for_ids};
use common::*;

/// Posts one padded batch; returns (status, ids, retry-after present).
fn post(addr: &str, from: usize) -> (u16, Vec<String>, bool) {
    let body = format!(
        "[{}]",
        (from..from + 50)
            .map(|i| event_json_padded(i, 2000))
            .collect::<Vec<_>>()
            .join(",")
    );
    let r = request(addr, "POST", "/v2.0/events/batch", &[JSON], body.as_bytes());
    let ids = if r.status == 200 {
        r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["event_id"].as_str().map(str::to_string))
            .collect()
    } else {
        Vec::new()
    };
    let retry = r
        .header("retry-after")
        .is_some_and(|v| v.parse::<u64>().is_ok());
    (r.status, ids, retry)
}

/// Posts until a batch is accepted (within a minute).
fn post_until_ok(addr: &str, next: &mut usize, acked: &mut Vec<String>, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ids, _) = post(addr, *next);
        *next += 50;
        acked.extend(ids);
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "writes never came back {when}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_full_stream_and_a_lost_quorum_answer_503_and_lose_nothing() {
    let mut setup = ClusterSetup::new("cluster-faults");
    setup.extra = vec!["--publish-timeout".into(), "2s".into()];
    // The stream holds 16 MiB: without workers it fills within seconds.
    setup
        .extra
        .extend(["--stream-max-bytes".into(), "16777216".into()]);
    let collector = setup.spawn("collect", "c0", Some(free_port()));
    let addr = collector.addr.clone().unwrap();
    let mut acked = Vec::new();
    let mut next = 0;
    let full = loop {
        let (status, ids, retry) = post(&addr, next);
        next += 50;
        acked.extend(ids);
        match status {
            200 => assert!(next < 40_000, "the 16 MiB stream never filled"),
            503 => {
                assert!(retry, "503 without Retry-After");
                break next;
            }
            s => panic!("unexpected status {s}"),
        }
    };
    eprintln!("stream full after {} acknowledged events", acked.len());
    for _ in 0..5 {
        let (status, _, retry) = post(&addr, next);
        next += 50;
        assert!(
            status == 503 && retry,
            "a full stream answers 503 + Retry-After, got {status}"
        );
    }

    let worker = setup.spawn("route", "w0", None);
    post_until_ok(&addr, &mut next, &mut acked, "after the worker drained");
    eprintln!("writes accepted again after the worker drained (full at event {full})");

    // Lose the quorum: two of three servers down.
    let (x, y) = (2, 3);
    setup.nats.kill9(x);
    setup.nats.kill9(y);
    let down = Instant::now();
    let mut unavailable = 0;
    while down.elapsed() < Duration::from_secs(8) {
        let (status, ids, retry) = post(&addr, next);
        next += 50;
        assert!(ids.is_empty() || status == 200);
        match status {
            // Published before the servers' loss was noticed? Only if acked by a quorum.
            200 => acked.extend(ids),
            503 => {
                assert!(retry, "503 without Retry-After");
                unavailable += 1;
            }
            s => panic!("unexpected status {s} without a quorum"),
        }
    }
    assert!(unavailable > 0, "no 503 while the quorum was lost");
    setup.nats.restart(x);
    setup.nats.restart(y);
    post_until_ok(&addr, &mut next, &mut acked, "after the quorum returned");
    eprintln!(
        "writes accepted again {:.1?} after the quorum was lost",
        down.elapsed()
    );

    assert_eq!(
        wait_for_ids(&setup.sink, &acked, Duration::from_secs(90)),
        0
    );
    assert_eq!(worker.terminate(Duration::from_secs(60)), 0);
    assert_eq!(collector.terminate(Duration::from_secs(30)), 0);
    let d = assert_exactly_once(&setup.sink, &acked);
    eprintln!("cluster faults: {d:?}, {unavailable} answers 503 without a quorum");
}
