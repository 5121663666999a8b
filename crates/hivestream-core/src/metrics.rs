//! Every metric hivestream exports, named in one place, rendered as
//! Prometheus text by `GET /metrics`. Counters and gauges are plain atomics;
//! no label carries user input, so nothing a client sends (nor any secret)
//! can reach this output.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! metrics {
    ($( $field:ident : $kind:ident = $name:literal, $help:literal; )*) => {
        /// All metrics.
        pub struct Metrics { $( pub $field: $kind, )* }

        /// The process-wide metrics.
        pub static METRICS: Metrics = Metrics { $( $field: $kind(AtomicU64::new(0)), )* };

        impl Metrics {
            /// Prometheus text exposition format.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(4096);
                $(
                    let kind = if stringify!($kind) == "Counter" { "counter" } else { "gauge" };
                    let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}\n{} {}", $name, $help, $name, kind, $name, self.$field.get());
                )*
                out
            }
        }
    };
}

metrics! {
    http_requests: Counter = "hivestream_http_requests_total", "HTTP requests received.";
    http_client_errors: Counter = "hivestream_http_client_errors_total", "Responses with a 4xx status.";
    http_unavailable: Counter = "hivestream_http_unavailable_total", "Responses with status 503 (backlog full or disk write failed).";
    http_connections: Gauge = "hivestream_http_connections", "Open HTTP connections.";
    http_connections_evicted: Counter = "hivestream_http_connections_evicted_total", "Connections closed at the connection cap to make room (the quietest idle ones).";
    http_connections_refused: Counter = "hivestream_http_connections_refused_total", "Connections closed at once: the cap was reached and every connection had a request in progress.";
    http_rate_limited: Counter = "hivestream_http_rate_limited_total", "Requests answered 429 by the per-client rate limit.";
    http_server_errors: Counter = "hivestream_http_server_errors_total", "Responses with status 500.";
    events_accepted: Counter = "hivestream_events_accepted_total", "Events made durable and acknowledged.";
    events_deduplicated: Counter = "hivestream_events_deduplicated_total", "Events whose client-given event_id was acknowledged before: answered with the stored result, not written again (also counted as accepted).";
    events_rejected: Counter = "hivestream_events_rejected_total", "Events rejected by validation.";
    wal_commits: Counter = "hivestream_wal_commits_total", "Group commits (one fsync each).";
    wal_records: Counter = "hivestream_wal_records_total", "Records committed to the WAL.";
    wal_bytes_written: Counter = "hivestream_wal_written_bytes_total", "Bytes committed to the WAL.";
    wal_commit_errors: Counter = "hivestream_wal_commit_errors_total", "Failed WAL writes or fsyncs (e.g. disk full).";
    wal_bytes: Gauge = "hivestream_wal_bytes", "WAL bytes on disk not yet reclaimed.";
    disk_free_bytes: Gauge = "hivestream_disk_free_bytes", "Free bytes on the data dir's filesystem.";
    backlog_bytes: Gauge = "hivestream_backlog_bytes", "WAL bytes waiting for upload (bounded by max_backlog_bytes).";
    wal_bad_records: Counter = "hivestream_wal_bad_records_total", "WAL records the router could not decode.";
    router_records: Counter = "hivestream_router_records_total", "Records routed into files.";
    open_files: Gauge = "hivestream_open_files", "Files being written.";
    files_sealed: Counter = "hivestream_files_sealed_total", "Files sealed.";
    pending_uploads: Gauge = "hivestream_pending_uploads", "Sealed files not yet in the bucket.";
    files_uploaded: Counter = "hivestream_files_uploaded_total", "Files uploaded.";
    uploaded_bytes: Counter = "hivestream_uploaded_bytes_total", "Compressed bytes uploaded.";
    uploaded_records: Counter = "hivestream_uploaded_records_total", "Records in uploaded files.";
    upload_errors: Counter = "hivestream_upload_errors_total", "Failed upload attempts (each is retried).";
    rebuild_mismatches: Counter = "hivestream_rebuild_mismatches_total", "Files rebuilt from the log after a restart that differ from their seal (the log lost or changed records); nothing is uploaded under the sealed key.";
    seals_lost: Counter = "hivestream_seals_lost_total", "Sealed files whose records are neither in the bucket nor rebuildable from the log (data loss; see the error log).";
    cluster_jobs_held: Gauge = "hivestream_cluster_jobs_held", "Cluster mode: jobs (log partitions, identity leader, snapshot writer) this worker holds a lease on.";
    leases_lost: Counter = "hivestream_cluster_leases_lost_total", "Cluster mode: leases this worker lost before giving them up (paused past the TTL, or cut off from NATS).";
    publish_retries: Counter = "hivestream_publish_retries_total", "Cluster mode: publishes retried (same message id) after a timeout or a lost connection.";
    router_restarts: Counter = "hivestream_router_restarts_total", "Router restarts after an error (e.g. a full disk).";
    index_reopens: Counter = "hivestream_index_reopens_total", "Reopens of the identity/cohort index after an I/O error.";
    rss_bytes: Gauge = "hivestream_process_resident_memory_bytes", "Resident memory of the process (Linux VmRSS).";
    peak_rss_bytes: Gauge = "hivestream_process_peak_resident_memory_bytes", "Peak resident memory of the process (Linux VmHWM).";
}

/// Refreshes the process memory gauges from `/proc/self/status` (Linux;
/// elsewhere they stay 0).
pub fn refresh_process_gauges() {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    if let Some(v) = kib("VmRSS:") {
        METRICS.rss_bytes.set(v * 1024);
    }
    if let Some(v) = kib("VmHWM:") {
        METRICS.peak_rss_bytes.set(v * 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_type() {
        METRICS.files_sealed.inc();
        let text = METRICS.render();
        assert!(text.contains("# TYPE hivestream_files_sealed_total counter"));
        assert!(text.contains("# TYPE hivestream_wal_bytes gauge"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 36);
        refresh_process_gauges();
        assert!(METRICS.peak_rss_bytes.get() >= METRICS.rss_bytes.get());
        assert!(METRICS.rss_bytes.get() > 0);
    }
}
