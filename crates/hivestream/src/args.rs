//! Command-line arguments shared by the commands that run hivestream.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hivestream_core::config::RawConfig;
use hivestream_core::sink::object::ObjectTags;

/// Settings shared by `serve`, `doctor` and the cluster commands.
#[derive(Args)]
pub struct ServeArgs {
    /// TOML configuration file (same keys as the flags, with underscores).
    #[arg(long, env = "HIVESTREAM_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080; other addresses need --api-key).
    #[arg(long, env = "HIVESTREAM_LISTEN")]
    listen: Option<String>,
    /// WAL, router state, index and the default local bucket (default ./hivestream-data).
    #[arg(long, env = "HIVESTREAM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// s3://BUCKET[/PREFIX], file://DIR or memory://
    #[arg(long, env = "HIVESTREAM_SINK")]
    sink: Option<String>,
    /// Bucket region (default AWS_REGION, the profile, or us-east-1).
    #[arg(long, env = "HIVESTREAM_REGION")]
    region: Option<String>,
    /// S3-compatible endpoint URL (path-style).
    #[arg(long, env = "HIVESTREAM_ENDPOINT")]
    endpoint: Option<String>,
    /// S3 access key id (default AWS_ACCESS_KEY_ID, the profile, or instance credentials).
    #[arg(long, env = "HIVESTREAM_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    /// S3 secret access key (never logged).
    #[arg(long, env = "HIVESTREAM_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
    /// Session token for temporary credentials (never logged).
    #[arg(long, env = "HIVESTREAM_SESSION_TOKEN", hide_env_values = true)]
    session_token: Option<String>,
    /// Profile in ~/.aws/credentials and ~/.aws/config (default AWS_PROFILE).
    #[arg(long, env = "HIVESTREAM_PROFILE")]
    profile: Option<String>,
    /// S3 server-side encryption: AES256 (SSE-S3) or aws:kms (SSE-KMS); default the bucket's.
    #[arg(long, env = "HIVESTREAM_SERVER_SIDE_ENCRYPTION")]
    server_side_encryption: Option<String>,
    /// SSE-KMS key id, ARN or alias/NAME (default the account's aws/s3 key).
    #[arg(long, env = "HIVESTREAM_SSE_KMS_KEY_ID")]
    sse_kms_key_id: Option<String>,
    /// SSE-KMS: use an S3 Bucket Key (true/false; default the bucket's setting).
    #[arg(long, env = "HIVESTREAM_SSE_BUCKET_KEY")]
    sse_bucket_key: Option<bool>,
    /// Storage class of every object, e.g. STANDARD_IA (default the bucket's).
    #[arg(long, env = "HIVESTREAM_STORAGE_CLASS")]
    storage_class: Option<String>,
    /// Tags on every object, e.g. team=data,env=prod (at most 10).
    #[arg(long, env = "HIVESTREAM_OBJECT_TAGS")]
    object_tags: Option<ObjectTags>,
    /// Canned ACL of every object: bucket-owner-full-control, bucket-owner-read or private.
    #[arg(long, env = "HIVESTREAM_ACL")]
    acl: Option<String>,
    /// Admin keys, as in earlier versions (repeat, or comma-separated in HIVESTREAM_API_KEYS).
    #[arg(
        long = "api-key",
        env = "HIVESTREAM_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Option<Vec<String>>,
    /// Admin keys: every route (repeat, or comma-separated in HIVESTREAM_ADMIN_KEYS).
    #[arg(
        long = "admin-key",
        env = "HIVESTREAM_ADMIN_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    admin_keys: Option<Vec<String>>,
    /// Ingest keys, may be public: events, batch, identify, new user only (repeat, or comma-separated).
    #[arg(
        long = "ingest-key",
        env = "HIVESTREAM_INGEST_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    ingest_keys: Option<Vec<String>>,
    /// Browser origins allowed to use the ingest keys, e.g. https://news.example or https://*.news.example.
    #[arg(
        long = "allowed-origin",
        env = "HIVESTREAM_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Option<Vec<String>>,
    /// This writer's id in file names, [A-Za-z0-9_]{1,64} (default: generated once, kept in the data dir).
    #[arg(long, env = "HIVESTREAM_WORKER_ID")]
    worker_id: Option<String>,
    /// The workspace every cohort belongs to, a UUID (default: generated once, kept in the data dir or the cluster).
    #[arg(long, env = "HIVESTREAM_WORKSPACE_ID")]
    workspace_id: Option<String>,
    /// Seal a file this long after its first record, e.g. 60s, 500ms, 5m (default 60s).
    #[arg(long, env = "HIVESTREAM_FLUSH_INTERVAL")]
    flush_interval: Option<String>,
    /// Seal a file at this compressed size (default 64 MiB).
    #[arg(long, env = "HIVESTREAM_MAX_FILE_BYTES")]
    max_file_bytes: Option<u64>,
    /// Answer 503 while more WAL bytes than this wait for upload (default 1 GiB).
    #[arg(long, env = "HIVESTREAM_MAX_BACKLOG_BYTES")]
    max_backlog_bytes: Option<u64>,
    /// Largest request body, before and after gzip decoding (default 16 MiB).
    #[arg(long, env = "HIVESTREAM_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Memory all request bodies in flight may take at once (default 256 MiB).
    #[arg(long, env = "HIVESTREAM_MAX_INFLIGHT_BODY_BYTES")]
    max_inflight_body_bytes: Option<u64>,
    /// How long a request body may take to arrive, e.g. 30s.
    #[arg(long, env = "HIVESTREAM_BODY_TIMEOUT")]
    body_timeout: Option<String>,
    /// Most events per batch request (default 10000).
    #[arg(long, env = "HIVESTREAM_MAX_BATCH_ITEMS")]
    max_batch_items: Option<usize>,
    /// Gzip level 1-9 (default 4: files ~1% smaller than gzip -6).
    #[arg(long, env = "HIVESTREAM_COMPRESSION_LEVEL")]
    compression_level: Option<u32>,
    /// Uploads in flight (default 4).
    #[arg(long, env = "HIVESTREAM_UPLOAD_CONCURRENCY")]
    upload_concurrency: Option<usize>,
    /// On shutdown, wait this long for uploads; the rest upload at next start (default 30s).
    #[arg(long, env = "HIVESTREAM_SHUTDOWN_TIMEOUT")]
    shutdown_timeout: Option<String>,
    /// Write a segment snapshot at least this often, even without changes (default 1h).
    #[arg(long, env = "HIVESTREAM_SEGMENT_SNAPSHOT_INTERVAL")]
    segment_snapshot_interval: Option<String>,
    /// Page cache of the identity and cohort index, in bytes (default 32 MiB).
    #[arg(long, env = "HIVESTREAM_INDEX_CACHE_BYTES")]
    index_cache_bytes: Option<usize>,
    /// Free space to keep on the data disk (default 5% of it, 16 MiB-1 GiB).
    #[arg(long, env = "HIVESTREAM_MIN_FREE_BYTES")]
    min_free_bytes: Option<u64>,
    /// Most open HTTP connections; at the cap a new one closes the quietest idle one (default 80% of the fd limit, at most 10000).
    #[arg(long, env = "HIVESTREAM_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// A request head must arrive whole within this, e.g. 10s (default 10s).
    #[arg(long, env = "HIVESTREAM_HEADER_TIMEOUT")]
    header_timeout: Option<String>,
    /// Close a connection idle this long, e.g. 60s (default 60s).
    #[arg(long, env = "HIVESTREAM_IDLE_TIMEOUT")]
    idle_timeout: Option<String>,
    /// Requests per second per client address; beyond it 429 (default: no limit).
    #[arg(long, env = "HIVESTREAM_RATE_LIMIT")]
    rate_limit: Option<f64>,
    /// Header a trusted proxy sets to the client address, e.g. x-forwarded-for.
    #[arg(long, env = "HIVESTREAM_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// How long a client-given event_id is remembered for deduplicated retries (default 24h).
    #[arg(long, env = "HIVESTREAM_DEDUP_WINDOW")]
    dedup_window: Option<String>,
    /// Most client event ids remembered; the oldest go first (default 10000000).
    #[arg(long, env = "HIVESTREAM_DEDUP_MAX_IDS")]
    dedup_max_ids: Option<u64>,
}

impl ServeArgs {
    /// The configuration file overlaid with the flags and environment.
    pub fn into_raw(self: Box<Self>) -> anyhow::Result<RawConfig> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                RawConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => RawConfig::default(),
        };
        let flags = RawConfig {
            listen: self.listen,
            data_dir: self.data_dir,
            sink: self.sink,
            region: self.region,
            endpoint: self.endpoint,
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key,
            session_token: self.session_token,
            profile: self.profile,
            server_side_encryption: self.server_side_encryption,
            sse_kms_key_id: self.sse_kms_key_id,
            sse_bucket_key: self.sse_bucket_key,
            storage_class: self.storage_class,
            object_tags: self.object_tags,
            acl: self.acl,
            api_keys: self.api_keys,
            admin_keys: self.admin_keys,
            ingest_keys: self.ingest_keys,
            allowed_origins: self.allowed_origins,
            worker_id: self.worker_id,
            workspace_id: self.workspace_id,
            flush_interval: self.flush_interval,
            max_file_bytes: self.max_file_bytes,
            max_backlog_bytes: self.max_backlog_bytes,
            max_body_bytes: self.max_body_bytes,
            max_inflight_body_bytes: self.max_inflight_body_bytes,
            body_timeout: self.body_timeout,
            max_batch_items: self.max_batch_items,
            compression_level: self.compression_level,
            upload_concurrency: self.upload_concurrency,
            shutdown_timeout: self.shutdown_timeout,
            segment_snapshot_interval: self.segment_snapshot_interval,
            index_cache_bytes: self.index_cache_bytes,
            min_free_bytes: self.min_free_bytes,
            max_connections: self.max_connections,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            rate_limit: self.rate_limit,
            client_ip_header: self.client_ip_header,
            dedup_window: self.dedup_window,
            dedup_max_ids: self.dedup_max_ids,
            ..RawConfig::default()
        };
        Ok(file.overlay(flags))
    }
}

/// Cluster settings (`collect`, `route`, `node`).
#[derive(Args)]
pub struct ClusterArgs {
    /// NATS server URLs, comma-separated (e.g. nats://10.0.0.1:4222,nats://10.0.0.2:4222).
    #[arg(long, env = "HIVESTREAM_NATS")]
    nats: Option<String>,
    /// Prefix of this deployment's streams, buckets and subjects in NATS (default hs).
    #[arg(long, env = "HIVESTREAM_CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// Log partitions of the events stream, fixed when it is created (default 16).
    #[arg(long, env = "HIVESTREAM_PARTITIONS")]
    partitions: Option<u32>,
    /// A worker that stops renewing loses its partitions after this long (default 10s).
    #[arg(long, env = "HIVESTREAM_LEASE_TTL")]
    lease_ttl: Option<String>,
    /// Replicas of every stream and bucket, 3 or 5 (default 3).
    #[arg(long, env = "HIVESTREAM_REPLICAS")]
    replicas: Option<u32>,
    /// Most bytes the events stream holds before writes get 503 (default 1 GiB).
    #[arg(long, env = "HIVESTREAM_STREAM_MAX_BYTES")]
    stream_max_bytes: Option<u64>,
    /// Most bytes the identity stream holds (default 1 GiB).
    #[arg(long, env = "HIVESTREAM_IDENTITY_MAX_BYTES")]
    identity_max_bytes: Option<u64>,
    /// How long a request id is remembered for deduplication (default 2m).
    #[arg(long, env = "HIVESTREAM_DUPLICATE_WINDOW")]
    duplicate_window: Option<String>,
    /// How long a collector retries a publish before answering 503 (default 10s).
    #[arg(long, env = "HIVESTREAM_PUBLISH_TIMEOUT")]
    publish_timeout: Option<String>,
}

/// `collect`, `route` and `node`: every `serve` setting plus the cluster's.
#[derive(Args)]
pub struct NodeArgs {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

impl NodeArgs {
    /// The configuration file overlaid with the flags and environment.
    pub fn into_raw(self: Box<Self>) -> anyhow::Result<RawConfig> {
        let NodeArgs { serve, cluster } = *self;
        let c = cluster;
        let flags = RawConfig {
            nats: c.nats,
            cluster_name: c.cluster_name,
            partitions: c.partitions,
            lease_ttl: c.lease_ttl,
            replicas: c.replicas,
            stream_max_bytes: c.stream_max_bytes,
            identity_max_bytes: c.identity_max_bytes,
            duplicate_window: c.duplicate_window,
            publish_timeout: c.publish_timeout,
            ..RawConfig::default()
        };
        Ok(Box::new(serve).into_raw()?.overlay(flags))
    }
}
