//! Every default and every bound of the configuration, each one named
//! constant, grouped by the stage that validates it.
//!
//! Invariants: a setting's default is declared here once and nowhere else
//! in `config/`; the reference doc comment of the setting in
//! [`RawConfig`](super::RawConfig) (and so the sample
//! `deploy/hivestream.toml` and README's tables) names the constant as
//! ``[`DEFAULT_…`] (value)``, and `config/tests/documented.rs` checks
//! each value written there against the constant. Every default lies
//! within its bounds (the all-defaults configuration validates).

use std::ops::RangeInclusive;
use std::time::Duration;

// ─── HTTP listener and request limits ───

/// Address the HTTP API listens on (`listen`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How long a request head may take to arrive (`header_timeout`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept (`idle_timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request body may take to arrive (`body_timeout`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body (`max_body_bytes`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// Accepted values of `max_body_bytes`.
pub const MAX_BODY_BYTES_RANGE: RangeInclusive<usize> = 1024..=256 << 20;
/// Memory all request bodies may take at once (`max_inflight_body_bytes`).
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: u64 = 256 << 20;
/// Most events in one batch request (`max_batch_items`).
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 10_000;
/// Accepted values of `max_batch_items`.
pub const MAX_BATCH_ITEMS_RANGE: RangeInclusive<usize> = 1..=1_000_000;
/// Accepted values of `max_connections` (its default depends on the file
/// descriptor limit: [`default_max_connections`](crate::collect::listener::default_max_connections)).
pub const MAX_CONNECTIONS_RANGE: RangeInclusive<usize> = 1..=1_000_000;

// ─── Access ───

/// Shortest secret of a `[[keys]]` table.
pub const MIN_KEY_CHARS: usize = 16;

// ─── Data dir and sink ───

/// Directory for the WAL, router state and the default bucket (`data_dir`).
pub const DEFAULT_DATA_DIR: &str = "./hivestream-data";
/// The default sink: this directory inside `data_dir` (`sink`).
pub const DEFAULT_BUCKET_DIR: &str = "bucket";
/// Lengths of a valid S3 bucket name.
pub const S3_BUCKET_NAME_LEN: RangeInclusive<usize> = 3..=63;

// ─── Router: files and uploads ───

/// Age at which a file is sealed (`flush_interval`).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest accepted `flush_interval`.
pub const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Compressed size at which a file is sealed (`max_file_bytes`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;
/// Accepted values of `max_file_bytes` (S3's largest single PUT at most).
pub const MAX_FILE_BYTES_RANGE: RangeInclusive<u64> = 1024..=5 << 30;
/// Gzip level (`compression_level`).
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 4;
/// Accepted gzip levels.
pub const COMPRESSION_LEVEL_RANGE: RangeInclusive<u32> = 1..=9;
/// Uploads in flight at once (`upload_concurrency`).
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;
/// Accepted values of `upload_concurrency`.
pub const UPLOAD_CONCURRENCY_RANGE: RangeInclusive<usize> = 1..=64;
/// How long shutdown waits for uploads (`shutdown_timeout`).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

// ─── Log admission (WAL backpressure) ───

/// WAL bytes beyond which writes get 503 (`max_backlog_bytes`). The default
/// of `min_free_bytes` depends on the disk's size:
/// [`default_reserve`](crate::disk::default_reserve).
pub const DEFAULT_MAX_BACKLOG_BYTES: u64 = 1 << 30;
/// Accepted values of `max_backlog_bytes`.
pub const MAX_BACKLOG_BYTES_RANGE: RangeInclusive<u64> = 1 << 20..=u64::MAX;

// ─── State: index, dedup, cohorts ───

/// Page cache of the identity and cohort index (`index_cache_bytes`).
pub const DEFAULT_INDEX_CACHE_BYTES: usize = 32 << 20;
/// Accepted values of `index_cache_bytes`.
pub const INDEX_CACHE_BYTES_RANGE: RangeInclusive<usize> = 1 << 20..=64 << 30;
/// How long a client event id is remembered (`dedup_window`).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Most client event ids remembered (`dedup_max_ids`).
pub const DEFAULT_DEDUP_MAX_IDS: u64 = 10_000_000;
/// Accepted values of `dedup_max_ids`.
pub const DEDUP_MAX_IDS_RANGE: RangeInclusive<u64> = 1..=u64::MAX;
/// Longest time between two `segment` snapshots (`segment_snapshot_interval`).
pub const DEFAULT_SEGMENT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(3600);

// ─── Cluster mode ───

/// Prefix of every NATS name (`cluster_name`).
pub const DEFAULT_CLUSTER_NAME: &str = "hs";
/// Lengths of a valid `cluster_name`.
pub const CLUSTER_NAME_LEN: RangeInclusive<usize> = 1..=32;
/// Log partitions of the events stream (`partitions`).
pub const DEFAULT_PARTITIONS: u32 = 16;
/// Accepted values of `partitions`.
pub const PARTITIONS_RANGE: RangeInclusive<u32> = 1..=100;
/// How long a partition lease lasts without renewal (`lease_ttl`).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Shortest accepted `lease_ttl`.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
/// Replicas of every stream and bucket (`replicas`).
pub const DEFAULT_REPLICAS: u32 = 3;
/// The accepted replica counts.
pub const REPLICA_COUNTS: [u32; 2] = [3, 5];
/// Most bytes of the events stream (`stream_max_bytes`).
pub const DEFAULT_STREAM_MAX_BYTES: u64 = 1 << 30;
/// Most bytes of the identity stream (`identity_max_bytes`).
pub const DEFAULT_IDENTITY_MAX_BYTES: u64 = 1 << 30;
/// Accepted values of `stream_max_bytes` and `identity_max_bytes`.
pub const STREAM_BYTES_RANGE: RangeInclusive<u64> = 16 << 20..=u64::MAX;
/// How long the events stream remembers a request id (`duplicate_window`).
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a collector retries a publish (`publish_timeout`).
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest accepted `publish_timeout`.
pub const MIN_PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
