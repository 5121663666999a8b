//! Bounds across requests: a body that stalls gets 408 after `body_timeout`
//! (and holds no more than its share of the budget meanwhile), and many
//! clients sending large bodies at once are queued by the in-flight body
//! budget instead of growing memory: all of them are answered 200, and the
//! server's peak RSS stays far below what their bodies add up to.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const MAX_BODY: usize = 4 << 20;

fn server(budget: usize) -> (Setup, Server) {
    let mut setup = Setup::new(Backend::Local, "limits");
    setup.extra = vec![
        "--max-body-bytes".into(),
        MAX_BODY.to_string(),
        "--max-inflight-body-bytes".into(),
        budget.to_string(),
        "--body-timeout".into(),
        "2s".into(),
    ];
    let server = setup.start("1s");
    (setup, server)
}

#[test]
fn a_stalled_body_gets_408_and_others_go_on() {
    let (_setup, server) = server(2 * MAX_BODY);
    let mut stalled = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /v2.0/events/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {MAX_BODY}\r\n\r\n[{{\"na"
    );
    stalled.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    // Half the budget is held by the stalled body; other requests go on.
    let r = server.post("/v2.0/events", &[JSON], event_json(1).as_bytes());
    assert_eq!(r.status, 201);
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":1003"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(server.terminate(), 0);
}

/// Peak RSS of a server that takes 30 batches of ~4 MiB at once.
fn peak_rss_under_burst(budget: usize) -> f64 {
    let (_setup, server) = server(budget);
    let event = event_json_padded(0, 3000);
    let per_batch = MAX_BODY / (event.len() + 1) - 1;
    let body = format!("[{}]", vec![event; per_batch].join(","));
    assert!(body.len() > 3 << 20 && body.len() <= MAX_BODY);
    let clients: Vec<_> = (0..30)
        .map(|_| {
            let (addr, body) = (server.addr.clone(), body.clone());
            std::thread::spawn(move || {
                request(
                    &addr,
                    "POST",
                    "/v2.0/events/batch",
                    &[JSON],
                    body.as_bytes(),
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let peak = server
        .metric("hivestream_process_peak_resident_memory_bytes")
        .unwrap();
    assert_eq!(server.terminate(), 0);
    peak
}

#[test]
fn the_body_budget_bounds_memory_under_a_burst() {
    let bounded = peak_rss_under_burst(2 * MAX_BODY);
    let unbounded = peak_rss_under_burst(64 * MAX_BODY);
    eprintln!(
        "30 x 4 MiB at once: peak RSS {:.0} MiB with an 8 MiB body budget, {:.0} MiB with 256 MiB",
        bounded / 1048576.0,
        unbounded / 1048576.0
    );
    assert!(
        bounded < 100.0 * 1048576.0,
        "peak RSS {bounded} with an 8 MiB budget"
    );
    assert!(
        bounded * 1.5 < unbounded,
        "the budget made no difference ({bounded} vs {unbounded})"
    );
}
