//! Slow S3: the server reaches SeaweedFS through a proxy that throttles
//! every connection to `SLOW_RATE`, well below what the load produces, so
//! sealed files and the WAL backlog pile up. Memory must not follow the
//! backlog: peak RSS stays under a fixed bound while the backlog grows to
//! many times that size. Then the proxy is unthrottled, the backlog drains,
//! and every acknowledged event is in the bucket exactly once.

mod common;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::{Load, LoadShape};
use common::proxy::SlowProxy;
use common::verify::assert_exactly_once;
use common::*;

/// Bytes per second per connection through the proxy.
const SLOW_RATE: u64 = 64 << 10;
/// Resident memory the server may use at most, whatever the backlog.
const RSS_BOUND: f64 = 160.0 * 1048576.0;

#[test]
fn slow_s3_keeps_memory_bounded_and_loses_nothing() {
    let Some(backend @ Backend::S3 { .. }) = backends().into_iter().nth(1) else {
        eprintln!("no S3 endpoint in this run (HIVESTREAM_TEST_S3_ENDPOINT); skipped");
        return;
    };
    let Backend::S3 { endpoint, .. } = &backend else {
        unreachable!()
    };
    let upstream = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let proxy = SlowProxy::start(upstream, SLOW_RATE);
    let mut setup = Setup::new(backend.via(&format!("http://{}", proxy.addr)), "slow");
    setup.extra = vec![
        "--max-backlog-bytes".into(),
        (512u64 << 20).to_string(),
        "--max-file-bytes".into(),
        (1u64 << 20).to_string(),
    ];
    let server = setup.start("500ms");
    let shape = LoadShape {
        workers: 2,
        batch: 50,
        pause: Duration::from_millis(5),
        pad: 1500,
    };
    let load = Load::start(&server.addr, shape, Arc::new(AtomicUsize::new(0)));
    let start = Instant::now();
    let (mut peak_backlog, mut peak_pending) = (0.0f64, 0.0f64);
    while start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
        peak_backlog = peak_backlog.max(server.metric("hivestream_backlog_bytes").unwrap_or(0.0));
        peak_pending = peak_pending.max(server.metric("hivestream_pending_uploads").unwrap_or(0.0));
    }
    let rss_slow = server
        .metric("hivestream_process_peak_resident_memory_bytes")
        .unwrap();
    assert!(
        peak_backlog > 128.0 * 1048576.0,
        "the throttle did not build a backlog worth testing ({peak_backlog} bytes)"
    );
    assert!(
        rss_slow < RSS_BOUND,
        "peak RSS {rss_slow} with a backlog of {peak_backlog} bytes"
    );

    proxy.set_rate(0);
    let stats_at_release = load.stats();
    let drained = server.wait_until(Duration::from_secs(240), |s| {
        s.metric("hivestream_backlog_bytes")
            .is_some_and(|b| b < 16.0 * 1048576.0)
    });
    assert!(drained, "the backlog did not drain once S3 was fast again");
    let stats = load.stop();
    assert_eq!(server.terminate(), 0);
    let d = assert_exactly_once(&setup, &stats.acked);
    eprintln!(
        "slow S3 ({} KiB/s per connection) for 20 s: backlog peaked at {:.0} MiB with {peak_pending} \
         sealed files waiting; peak RSS {:.0} MiB; statuses {:?} ({} acknowledged when released); \
         {} acknowledged, {} found, {} missing, {} duplicated",
        SLOW_RATE >> 10,
        peak_backlog / 1048576.0,
        rss_slow / 1048576.0,
        stats.statuses,
        stats_at_release.acked.len(),
        d.acknowledged,
        d.found,
        d.missing,
        d.duplicated
    );
}
