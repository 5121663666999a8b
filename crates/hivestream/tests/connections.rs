//! Facing the open internet: a flood of connections that send half a
//! request head and wait, larger than the connection cap, leaves real
//! clients served; a half head is dropped after the header timeout; and the
//! optional per-client rate limit answers 429 with `Retry-After`, per
//! client address (from a trusted proxy header when configured).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const HALF_HEAD: &[u8] = b"POST /v2.0/events HTTP/1.1\r\nHost: flood\r\nContent-Type: app";

#[test]
fn a_slow_header_flood_over_the_cap_leaves_real_clients_served() {
    let mut setup = Setup::new(Backend::Local, "conns");
    setup.extra = ["--max-connections", "100", "--header-timeout", "2s"]
        .map(String::from)
        .to_vec();
    let server = setup.start("300ms");

    // One half head alone: closed by the server after the header timeout.
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(HALF_HEAD).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 512];
    let _ = slow.read(&mut buf); // returns when the server closes (or after 6 s)
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "closed after about 2 s: {waited:?}"
    );

    // 1,500 connections holding half heads: 15 times the cap.
    let mut flood = Vec::new();
    for _ in 0..1500 {
        if let Ok(mut s) = TcpStream::connect(&server.addr) {
            let _ = s.write_all(HALF_HEAD);
            flood.push(s);
        }
    }
    assert!(flood.len() > 1000, "the flood connected ({})", flood.len());
    let mut slowest = Duration::ZERO;
    for i in 0..30 {
        let t = Instant::now();
        let r = server.post("/v2.0/events", &[JSON], event_json(i).as_bytes());
        slowest = slowest.max(t.elapsed());
        assert_eq!(
            r.status, 201,
            "a real client during the flood (request {i})"
        );
    }
    assert!(
        slowest < Duration::from_secs(2),
        "served at once, slowest {slowest:?}"
    );
    let evicted = server
        .metric("hivestream_http_connections_evicted_total")
        .unwrap();
    let open = server.metric("hivestream_http_connections").unwrap();
    assert!(
        evicted >= 1000.0,
        "the flood's connections were closed ({evicted})"
    );
    assert!(open <= 100.0, "never more than the cap open ({open})");
    drop(flood);
    assert_eq!(server.terminate(), 0);
    let log = std::fs::read_to_string(setup.log_path()).unwrap();
    assert!(
        log.contains("connection cap reached"),
        "the cap is reported in the log"
    );
    eprintln!("flood: {evicted} connections evicted, slowest real request {slowest:?}");
}

#[test]
fn the_rate_limit_is_per_client_address() {
    let mut setup = Setup::new(Backend::Local, "ratelimit");
    setup.extra = ["--rate-limit", "5", "--client-ip-header", "x-forwarded-for"]
        .map(String::from)
        .to_vec();
    let server = setup.start("300ms");
    let send = |ip: &str| {
        server.post(
            "/v2.0/events",
            &[JSON, ("x-forwarded-for", ip)],
            event_json(1).as_bytes(),
        )
    };
    let statuses: Vec<u16> = (0..15).map(|_| send("203.0.113.7").status).collect();
    assert!(
        statuses[..10].iter().all(|s| *s == 201),
        "a burst of twice the rate: {statuses:?}"
    );
    let limited = send("203.0.113.7");
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"]["code"], 1501);
    assert!(limited
        .header("retry-after")
        .is_some_and(|v| v.parse::<u32>().unwrap() >= 1));
    assert_eq!(
        send("198.51.100.1").status,
        201,
        "another client has its own budget"
    );
    assert_eq!(
        server.get("/healthz").status,
        200,
        "health is never limited"
    );
    assert_eq!(server.terminate(), 0);
}
