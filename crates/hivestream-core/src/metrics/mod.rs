//! Every metric hivestream exports, named in one place, on the
//! `prometheus-client` crate and rendered in the Prometheus text format by
//! `GET /metrics`. Labels take only values from fixed sets (a data type, a
//! route template), so nothing a client sends (nor any secret) can reach
//! this output, and the number of series is bounded.
//!
//! The field API (`METRICS.files_uploaded.inc(DataType::Events)`,
//! `METRICS.backlog_bytes.set(n)`, …) is what the rest of the code uses;
//! [`kinds`] wraps the crate's types behind it.

pub mod freshness;
mod kinds;

use std::sync::LazyLock;

use prometheus_client::registry::Registry;

pub use kinds::{ByRoute, ByType, Counter, Gauge, Hist, Seconds};

/// Buckets for durations in seconds: 1 ms to about 2 minutes.
fn seconds_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 18),
    )
}

fn seconds() -> Hist {
    Hist::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 18,
    ))
}

/// Buckets for lags in seconds: 0.1 s to about 2 hours.
fn lag_seconds() -> Hist {
    Hist::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.1, 2.0, 17,
    ))
}

/// Buckets for sizes in bytes: 1 KiB to 4 GiB.
fn bytes() -> Hist {
    Hist::new(prometheus_client::metrics::histogram::exponential_buckets(
        1024.0, 4.0, 12,
    ))
}

/// Buckets for counts: 1 to about 16 million.
fn counts() -> Hist {
    Hist::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 4.0, 13,
    ))
}

macro_rules! metrics {
    ($( $field:ident : $kind:ty = $ctor:expr, $name:literal, $help:literal; )*) => {
        /// All metrics.
        pub struct Metrics {
            $( pub $field: $kind, )*
            registry: Registry,
        }

        impl Metrics {
            fn new() -> Self {
                let mut registry = Registry::default();
                $( let $field: $kind = $ctor; $field.register(&mut registry, $name, $help); )*
                Self { $( $field, )* registry }
            }

            /// Every metric's name, for the dashboard and alert checks.
            pub fn names() -> Vec<&'static str> {
                vec![$( $name ),*]
            }
        }
    };
}

metrics! {
    http_requests: Counter = Counter::default(), "hivestream_http_requests_total", "HTTP requests received.";
    http_request_seconds: ByRoute = ByRoute::default(), "hivestream_http_request_duration_seconds", "Time to answer an HTTP request, by route template.";
    http_client_errors: Counter = Counter::default(), "hivestream_http_client_errors_total", "Responses with a 4xx status.";
    http_unavailable: Counter = Counter::default(), "hivestream_http_unavailable_total", "Responses with status 503 (backlog full or disk write failed).";
    http_connections: Gauge = Gauge::default(), "hivestream_http_connections", "Open HTTP connections.";
    http_connections_evicted: Counter = Counter::default(), "hivestream_http_connections_evicted_total", "Connections closed at the connection cap to make room (the quietest idle ones).";
    http_connections_refused: Counter = Counter::default(), "hivestream_http_connections_refused_total", "Connections closed at once: the cap was reached and every connection had a request in progress.";
    http_rate_limited: Counter = Counter::default(), "hivestream_http_rate_limited_total", "Requests answered 429 by the per-client rate limit.";
    http_server_errors: Counter = Counter::default(), "hivestream_http_server_errors_total", "Responses with status 500.";
    events_accepted: Counter = Counter::default(), "hivestream_events_accepted_total", "Events made durable and acknowledged.";
    events_deduplicated: Counter = Counter::default(), "hivestream_events_deduplicated_total", "Events whose client-given event_id was acknowledged before: answered with the stored result, not written again (also counted as accepted).";
    events_rejected: Counter = Counter::default(), "hivestream_events_rejected_total", "Events rejected by validation.";
    wal_commits: Counter = Counter::default(), "hivestream_wal_commits_total", "Group commits (one fsync each).";
    wal_records: Counter = Counter::default(), "hivestream_wal_records_total", "Records committed to the WAL.";
    wal_group_records: Hist = counts(), "hivestream_wal_group_records", "Records per WAL group commit.";
    wal_commit_seconds: Hist = seconds(), "hivestream_wal_commit_duration_seconds", "Time to write and fsync one WAL group commit.";
    wal_bytes_written: Counter = Counter::default(), "hivestream_wal_written_bytes_total", "Bytes committed to the WAL.";
    wal_commit_errors: Counter = Counter::default(), "hivestream_wal_commit_errors_total", "Failed WAL writes or fsyncs (e.g. disk full).";
    wal_bytes: Gauge = Gauge::default(), "hivestream_wal_bytes", "WAL bytes on disk not yet reclaimed.";
    disk_free_bytes: Gauge = Gauge::default(), "hivestream_disk_free_bytes", "Free bytes on the data dir's filesystem.";
    backlog_bytes: Gauge = Gauge::default(), "hivestream_backlog_bytes", "WAL bytes waiting for upload (bounded by max_backlog_bytes).";
    backlog_limit_bytes: Gauge = Gauge::default(), "hivestream_backlog_limit_bytes", "The configured max_backlog_bytes (writes get 503 beyond it).";
    disk_reserve_bytes: Gauge = Gauge::default(), "hivestream_disk_reserve_bytes", "The free space writes leave on the data disk (min_free_bytes).";
    flush_interval_seconds: Seconds = Seconds::default(), "hivestream_flush_interval_seconds", "The configured flush_interval: an open file is sealed this long after its first record.";
    wal_bad_records: Counter = Counter::default(), "hivestream_wal_bad_records_total", "Log records the router could not decode.";
    router_records: ByType = ByType::default(), "hivestream_router_records_total", "Records routed into files, by data type.";
    open_files: Gauge = Gauge::default(), "hivestream_open_files", "Files being written.";
    files_sealed: ByType = ByType::default(), "hivestream_files_sealed_total", "Files sealed, by data type.";
    file_bytes: Hist = bytes(), "hivestream_file_bytes", "Compressed size of each sealed file.";
    file_records: Hist = counts(), "hivestream_file_records", "Records in each sealed file.";
    pending_uploads: Gauge = Gauge::default(), "hivestream_pending_uploads", "Sealed files not yet in the bucket.";
    files_uploaded: ByType = ByType::default(), "hivestream_files_uploaded_total", "Files uploaded, by data type.";
    uploaded_bytes: ByType = ByType::default(), "hivestream_uploaded_bytes_total", "Compressed bytes uploaded, by data type.";
    uploaded_records: ByType = ByType::default(), "hivestream_uploaded_records_total", "Records in uploaded files, by data type.";
    upload_seconds: Hist = seconds(), "hivestream_upload_duration_seconds", "Time to put one sealed file in the bucket, retries included.";
    upload_errors: Counter = Counter::default(), "hivestream_upload_errors_total", "Failed upload attempts (each is retried).";
    ack_to_upload_seconds: Hist = lag_seconds(), "hivestream_ack_to_upload_seconds", "From the acknowledgement of a file's oldest record to the file being in the bucket.";
    oldest_pending_seconds: Seconds = Seconds::default(), "hivestream_oldest_unuploaded_record_age_seconds", "Age of the oldest acknowledged record not yet in the bucket (0 when everything is uploaded): how stale the bucket is.";
    rebuild_mismatches: Counter = Counter::default(), "hivestream_rebuild_mismatches_total", "Files rebuilt from the log after a restart that differ from their seal (the log lost or changed records); nothing is uploaded under the sealed key.";
    seals_lost: Counter = Counter::default(), "hivestream_seals_lost_total", "Sealed files whose records are neither in the bucket nor rebuildable from the log (data loss; see the error log).";
    cluster_jobs_held: Gauge = Gauge::default(), "hivestream_cluster_jobs_held", "Cluster mode: jobs (log partitions, identity leader, snapshot writer) this worker holds a lease on.";
    leases_lost: Counter = Counter::default(), "hivestream_cluster_leases_lost_total", "Cluster mode: leases this worker lost before giving them up (paused past the TTL, or cut off from NATS).";
    publish_retries: Counter = Counter::default(), "hivestream_publish_retries_total", "Cluster mode: publishes retried (same message id) after a timeout or a lost connection.";
    router_restarts: Counter = Counter::default(), "hivestream_router_restarts_total", "Router restarts after an error (e.g. a full disk).";
    index_reopens: Counter = Counter::default(), "hivestream_index_reopens_total", "Reopens of the identity/cohort index after an I/O error.";
    rss_bytes: Gauge = Gauge::default(), "hivestream_process_resident_memory_bytes", "Resident memory of the process (Linux VmRSS).";
    peak_rss_bytes: Gauge = Gauge::default(), "hivestream_process_peak_resident_memory_bytes", "Peak resident memory of the process (Linux VmHWM).";
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    /// The Prometheus text exposition (version 0.0.4), with the gauges that
    /// are computed when asked refreshed first.
    pub fn render(&self) -> String {
        refresh_process_gauges();
        self.oldest_pending_seconds
            .set(freshness::oldest_age_seconds(crate::clock::now_ms()));
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The value of `name` in a Prometheus text scrape, summed over its label
/// sets (`None` if it has no sample): what the benchmark and the tests read.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = match rest.strip_prefix('{') {
                Some(labels) => labels.split_once('}')?.1,
                None => rest,
            };
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Refreshes the process memory gauges from `/proc/self/status` (Linux;
/// elsewhere they stay 0).
fn refresh_process_gauges() {
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
    fn samples_are_read_by_exact_name_summed_over_labels() {
        let text =
            "# HELP a_total x\na_total 5\na_total_more 7\nb 1.5\nc{t=\"x\"} 2\nc{t=\"y\"} 3\n";
        assert_eq!(sample(text, "a_total"), Some(5.0));
        assert_eq!(sample(text, "c"), Some(5.0));
        assert_eq!(sample(text, "b"), Some(1.5));
        assert_eq!(sample(text, "d"), None);
    }

    #[test]
    fn renders_every_metric_with_type_and_labels() {
        use crate::log::record::DataType;
        METRICS.files_sealed.inc(DataType::SyncAliases);
        METRICS.upload_seconds.observe(0.25);
        METRICS.http_request_seconds.observe("/v2.0/events", 0.002);
        let text = METRICS.render();
        assert!(text.contains("# TYPE hivestream_files_sealed_total counter"));
        assert!(text.contains("hivestream_files_sealed_total{data_type=\"sync_aliases\"} 1"));
        assert!(text.contains("# TYPE hivestream_wal_bytes gauge"));
        assert!(text.contains("# TYPE hivestream_upload_duration_seconds histogram"));
        assert!(text.contains("hivestream_upload_duration_seconds_count 1"));
        assert!(text
            .contains("hivestream_http_request_duration_seconds_count{route=\"/v2.0/events\"} 1"));
        for name in Metrics::names() {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} is exposed"
            );
        }
        assert!(METRICS.peak_rss_bytes.get() >= METRICS.rss_bytes.get());
        assert!(METRICS.rss_bytes.get() > 0);
    }
}
