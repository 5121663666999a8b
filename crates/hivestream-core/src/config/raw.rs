//! The raw configuration: every setting optional, as read from TOML, the
//! `HIVESTREAM_*` environment and flags. Its doc comments are the
//! configuration reference (the sample `deploy/hivestream.toml` repeats
//! them); `validate` (in the parent module) turns it into a typed
//! [`Config`](super::Config). Each default is named by its constant
//! (``[`DEFAULT_…`] (value)``); `config/tests/documented.rs` checks the values.

use std::path::PathBuf;

use serde::Deserialize;

#[cfg(doc)]
use super::defaults::*;
use super::ConfigError;
use crate::collect::access::Scope;
use crate::sink::object::ObjectTags;

/// Every setting, each optional; see README "Configuration".
/// Not `Debug`: it holds secrets in the clear.
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address the HTTP API listens on. Default [`DEFAULT_LISTEN`] (`127.0.0.1:8080`).
    pub listen: Option<String>,
    /// Directory for the WAL, router state and the default local bucket.
    /// Default [`DEFAULT_DATA_DIR`] (`./hivestream-data`).
    pub data_dir: Option<PathBuf>,
    /// Where objects go: `s3://BUCKET[/PREFIX]`, `file://DIR` or `memory://`.
    /// Default: the directory [`DEFAULT_BUCKET_DIR`] (`bucket`) in `data_dir`,
    /// `file://{data_dir}/bucket`.
    pub sink: Option<String>,
    /// AWS region of the bucket. Default from `AWS_REGION`, the profile, or `us-east-1`.
    pub region: Option<String>,
    /// S3-compatible endpoint URL (path-style requests), e.g. `http://127.0.0.1:8333`.
    pub endpoint: Option<String>,
    /// Access key id; default from `AWS_ACCESS_KEY_ID`, the profile or instance credentials.
    pub access_key_id: Option<String>,
    /// Secret access key; never logged.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials; never logged.
    pub session_token: Option<String>,
    /// Profile in `~/.aws/credentials` and `~/.aws/config` (default `AWS_PROFILE`).
    pub profile: Option<String>,
    /// S3 server-side encryption of every object: `AES256` (SSE-S3) or
    /// `aws:kms` (SSE-KMS). Default: no header, the bucket's default
    /// encryption applies. Set it when a bucket policy requires the header.
    pub server_side_encryption: Option<String>,
    /// SSE-KMS key: key id, key ARN or `alias/NAME`. Default: the account's
    /// `aws/s3` key. The credentials need `kms:GenerateDataKey` and
    /// `kms:Decrypt` on it (see `hivestream iam-policy --kms-key`).
    pub sse_kms_key_id: Option<String>,
    /// SSE-KMS: use an S3 Bucket Key (`true`), cutting KMS requests (and
    /// their cost) by orders of magnitude. Default: the bucket's setting.
    pub sse_bucket_key: Option<bool>,
    /// Storage class of every object: `STANDARD`, `STANDARD_IA`,
    /// `ONEZONE_IA`, `INTELLIGENT_TIERING`, `GLACIER_IR` or
    /// `REDUCED_REDUNDANCY`. Default: the bucket's (`STANDARD`). The
    /// infrequent-access classes bill at least 128 KiB per object and 30-90
    /// days: with small files (short `flush_interval`) STANDARD is cheaper.
    /// Archive classes are refused (objects there cannot be queried).
    pub storage_class: Option<String>,
    /// Tags on every object (at most 10), e.g. in TOML
    /// `object_tags = { team = "data", env = "prod" }`, in flags and the
    /// environment `team=data,env=prod`. Useful for lifecycle rules and
    /// cost allocation; the credentials need `s3:PutObjectTagging`.
    pub object_tags: Option<ObjectTags>,
    /// Canned ACL of every object: `bucket-owner-full-control` when writing
    /// into another account's bucket (so its owner can read the events),
    /// `bucket-owner-read` or `private`. Public ACLs are refused. Default:
    /// none (buckets with ACLs disabled, the S3 default, refuse any other
    /// value than `bucket-owner-full-control`).
    pub acl: Option<String>,
    /// Admin keys (the setting of earlier versions, kept: every key listed
    /// here may do everything). Accepted in `x-api-key` or `?k=`. With no
    /// key of any kind, only loopback listening is allowed.
    pub api_keys: Option<Vec<String>>,
    /// Admin keys: every route, including alias look-ups and cohorts.
    pub admin_keys: Option<Vec<String>>,
    /// Ingest keys (may be public, e.g. in a web page): events, batches,
    /// identify and new users only; 403 elsewhere.
    pub ingest_keys: Option<Vec<String>>,
    /// Browser origins allowed to use the `ingest_keys` (exact origins like
    /// `https://news.example`, wildcards like `https://*.news.example`, or
    /// `*`). A browser request from another origin gets 403. Default: none
    /// (the keys are for servers only).
    pub allowed_origins: Option<Vec<String>>,
    /// Keys with their own scope and origins, in TOML:
    /// `[[keys]] key = "pk_…", scope = "ingest", origins = ["https://news.example"]`.
    pub keys: Option<Vec<RawKey>>,
    /// This writer's id in file names, `[A-Za-z0-9_]{1,64}`. Default: generated once and kept in the data dir.
    pub worker_id: Option<String>,
    /// The workspace every cohort belongs to: its `workspace_id` in the
    /// Cohorts API and in `segment` lines, a UUID. Default: generated once
    /// and kept (in the data dir for `serve`, in the cohorts KV bucket for a
    /// cluster).
    pub workspace_id: Option<String>,
    /// Seal a file this long after its first record, e.g. `60s`, `500ms`, `5m`.
    /// Default [`DEFAULT_FLUSH_INTERVAL`] (`60s`).
    pub flush_interval: Option<String>,
    /// Seal a file when its compressed size reaches this many bytes.
    /// Default [`DEFAULT_MAX_FILE_BYTES`] (64 MiB).
    pub max_file_bytes: Option<u64>,
    /// Answer 503 to new writes while the WAL holds more than this many bytes.
    /// Default [`DEFAULT_MAX_BACKLOG_BYTES`] (1 GiB).
    pub max_backlog_bytes: Option<u64>,
    /// Largest request body, before and after gzip decoding.
    /// Default [`DEFAULT_MAX_BODY_BYTES`] (16 MiB).
    pub max_body_bytes: Option<usize>,
    /// Memory all request bodies being read or handled may take at once;
    /// beyond it requests wait (then get 503).
    /// Default [`DEFAULT_MAX_INFLIGHT_BODY_BYTES`] (256 MiB).
    pub max_inflight_body_bytes: Option<u64>,
    /// How long a request body may take to arrive, e.g. `30s`; slower ones
    /// get 408. Default [`DEFAULT_BODY_TIMEOUT`] (`30s`).
    pub body_timeout: Option<String>,
    /// Most events in one batch request. Default [`DEFAULT_MAX_BATCH_ITEMS`] (10,000).
    pub max_batch_items: Option<usize>,
    /// Gzip level 1-9. Default [`DEFAULT_COMPRESSION_LEVEL`] (4): on event
    /// JSON, zlib-rs at level 4 makes files about 1% smaller than `gzip -6`
    /// and compresses 22% faster than its own level 6.
    pub compression_level: Option<u32>,
    /// Uploads in flight at once. Default [`DEFAULT_UPLOAD_CONCURRENCY`] (4).
    pub upload_concurrency: Option<usize>,
    /// On shutdown, wait this long for uploads before exiting (the rest are
    /// uploaded at the next start). Default [`DEFAULT_SHUTDOWN_TIMEOUT`] (`30s`).
    pub shutdown_timeout: Option<String>,
    /// Write a `segment` snapshot at least this often, even without cohort
    /// changes. Default [`DEFAULT_SEGMENT_SNAPSHOT_INTERVAL`] (`1h`).
    pub segment_snapshot_interval: Option<String>,
    /// Memory for the identity and cohort index's page cache.
    /// Default [`DEFAULT_INDEX_CACHE_BYTES`] (32 MiB).
    pub index_cache_bytes: Option<usize>,
    /// Refuse new writes (503) while the data disk has less free space than
    /// this, so the router can always drain. Default: 5% of the disk, 16 MiB
    /// to 1 GiB; 0 turns the check off.
    pub min_free_bytes: Option<u64>,
    /// Most open HTTP connections; at the cap a new connection closes the
    /// quietest idle one. Default: 80% of the process's file descriptors, at
    /// most 10,000.
    pub max_connections: Option<usize>,
    /// A request head must arrive whole within this, e.g. `10s`, or the
    /// connection is closed (also while a kept-alive connection waits for
    /// its next request). Default [`DEFAULT_HEADER_TIMEOUT`] (`10s`).
    pub header_timeout: Option<String>,
    /// A connection with no request being handled and no traffic for this
    /// long is closed (a client that stops reading its response), e.g.
    /// `60s`. Default [`DEFAULT_IDLE_TIMEOUT`] (`60s`).
    pub idle_timeout: Option<String>,
    /// Requests per second each client address may make (bursts of twice
    /// that); beyond it 429 with `Retry-After`. Default: no limit.
    pub rate_limit: Option<f64>,
    /// Header a trusted proxy in front sets to the client's address, e.g.
    /// `x-forwarded-for` (its right-most address is used). Default: the
    /// connection's peer address.
    pub client_ip_header: Option<String>,
    /// How long a client-given `event_id` is remembered: a retried event
    /// with an id acknowledged within this window is answered with its
    /// stored result and not written again, e.g. `24h`.
    /// Default [`DEFAULT_DEDUP_WINDOW`] (`24h`).
    pub dedup_window: Option<String>,
    /// Most client event ids remembered; beyond it the oldest are forgotten
    /// first (the window is then shorter). About 100 bytes of disk each.
    /// Default [`DEFAULT_DEDUP_MAX_IDS`] (10,000,000).
    pub dedup_max_ids: Option<u64>,
    /// Cluster mode (`collect`, `route`, `node`): NATS server URLs,
    /// comma-separated, e.g. `nats://10.0.0.1:4222,nats://10.0.0.2:4222`.
    pub nats: Option<String>,
    /// Cluster mode: prefix of every stream, bucket and subject this
    /// deployment uses in NATS (`HS_EV`, `hs.ev.07`, …), `[a-z0-9_]{1,32}`,
    /// so several deployments can share one NATS cluster.
    /// Default [`DEFAULT_CLUSTER_NAME`] (`hs`).
    pub cluster_name: Option<String>,
    /// Cluster mode: log partitions of the events stream, 1-100. Fixed for
    /// the life of the stream (it is checked at every start).
    /// Default [`DEFAULT_PARTITIONS`] (16).
    pub partitions: Option<u32>,
    /// Cluster mode: a router worker that stops renewing its lease on a
    /// partition loses it after this long, e.g. `10s`. Every node must use
    /// the same value. Default [`DEFAULT_LEASE_TTL`] (`10s`).
    pub lease_ttl: Option<String>,
    /// Cluster mode: replicas of every stream and bucket (3 or 5).
    /// Default [`DEFAULT_REPLICAS`] (3).
    pub replicas: Option<u32>,
    /// Cluster mode: most bytes the events stream holds; beyond it writes get
    /// 503 (`discard: new`), never dropping what waits for upload.
    /// Default [`DEFAULT_STREAM_MAX_BYTES`] (1 GiB).
    pub stream_max_bytes: Option<u64>,
    /// Cluster mode: most bytes the identity stream holds (every alias link
    /// ever made; ~200 bytes each). Default [`DEFAULT_IDENTITY_MAX_BYTES`] (1 GiB).
    pub identity_max_bytes: Option<u64>,
    /// Cluster mode: how long the events stream remembers a request id, so a
    /// retried publish is stored once, e.g. `2m`.
    /// Default [`DEFAULT_DUPLICATE_WINDOW`] (`2m`).
    pub duplicate_window: Option<String>,
    /// Cluster mode: how long a collector retries a publish (with the same id)
    /// before answering 503, e.g. `10s`. Default [`DEFAULT_PUBLISH_TIMEOUT`] (`10s`).
    pub publish_timeout: Option<String>,
}

/// One key of the `[[keys]]` tables.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// The secret itself (at least [`MIN_KEY_CHARS`] (16) characters).
    pub key: String,
    /// `ingest` or `admin`.
    pub scope: Scope,
    /// Browser origins allowed to use it (see `allowed_origins`).
    #[serde(default)]
    pub origins: Vec<String>,
}

/// Generates [`RawConfig::overlay`] from the field list. The list must name
/// every field: the function destructures `other` exhaustively, so a field
/// added to [`RawConfig`] and forgotten here is a compile error, not a
/// setting that flags and `HIVESTREAM_*` variables silently fail to set.
macro_rules! overlay_fields {
    ($($f:ident),* $(,)?) => {
        /// Returns `self` with every field that `other` sets replaced.
        pub fn overlay(mut self, other: RawConfig) -> Self {
            let RawConfig { $($f),* } = other;
            $( if $f.is_some() { self.$f = $f; } )*
            self
        }
    };
}

impl RawConfig {
    /// Parses a TOML configuration file's text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))
    }

    overlay_fields!(
        listen,
        data_dir,
        sink,
        region,
        endpoint,
        access_key_id,
        secret_access_key,
        session_token,
        profile,
        server_side_encryption,
        sse_kms_key_id,
        sse_bucket_key,
        storage_class,
        object_tags,
        acl,
        api_keys,
        admin_keys,
        ingest_keys,
        allowed_origins,
        keys,
        worker_id,
        workspace_id,
        flush_interval,
        max_file_bytes,
        max_backlog_bytes,
        max_body_bytes,
        max_inflight_body_bytes,
        body_timeout,
        max_batch_items,
        compression_level,
        upload_concurrency,
        shutdown_timeout,
        segment_snapshot_interval,
        index_cache_bytes,
        min_free_bytes,
        max_connections,
        header_timeout,
        idle_timeout,
        rate_limit,
        client_ip_header,
        dedup_window,
        dedup_max_ids,
        nats,
        cluster_name,
        partitions,
        lease_ttl,
        replicas,
        stream_max_bytes,
        identity_max_bytes,
        duplicate_window,
        publish_timeout,
    );
}
