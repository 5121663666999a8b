//! Configuration: a raw, all-optional [`RawConfig`] read from TOML, the
//! `HIVESTREAM_*` environment and flags (later sources override earlier
//! ones), validated into a typed [`Config`]. The doc comments on
//! [`RawConfig`] are the configuration reference.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::collect::access::{ApiKey, OriginPattern, Scope};
use crate::collect::listener::{default_max_connections, ConnLimits};
use crate::route::keys::{normalize_prefix, KeyError, WorkerId};
use crate::state::dedup::DedupLimits;

/// Every setting, each optional; see README "Configuration".
/// Not `Debug`: it holds secrets in the clear.
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address the HTTP API listens on. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Directory for the WAL, router state and the default local bucket.
    /// Default `./hivestream-data`.
    pub data_dir: Option<PathBuf>,
    /// Where objects go: `s3://BUCKET[/PREFIX]`, `file://DIR` or `memory://`.
    /// Default `file://{data_dir}/bucket`.
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
    /// Seal a file this long after its first record, e.g. `60s`, `500ms`, `5m`. Default `60s`.
    pub flush_interval: Option<String>,
    /// Seal a file when its compressed size reaches this many bytes. Default 64 MiB.
    pub max_file_bytes: Option<u64>,
    /// Answer 503 to new writes while the WAL holds more than this many bytes. Default 1 GiB.
    pub max_backlog_bytes: Option<u64>,
    /// Largest request body, before and after gzip decoding. Default 16 MiB.
    pub max_body_bytes: Option<usize>,
    /// Memory all request bodies being read or handled may take at once;
    /// beyond it requests wait (then get 503). Default 256 MiB.
    pub max_inflight_body_bytes: Option<u64>,
    /// How long a request body may take to arrive, e.g. `30s`; slower ones
    /// get 408. Default `30s`.
    pub body_timeout: Option<String>,
    /// Most events in one batch request. Default 10000.
    pub max_batch_items: Option<usize>,
    /// Gzip level 1-9. Default 4: on event JSON, zlib-rs at level 4 makes
    /// files about 1% smaller than `gzip -6` and compresses 22% faster than
    /// its own level 6.
    pub compression_level: Option<u32>,
    /// Uploads in flight at once. Default 4.
    pub upload_concurrency: Option<usize>,
    /// On shutdown, wait this long for uploads before exiting (the rest are
    /// uploaded at the next start). Default `30s`.
    pub shutdown_timeout: Option<String>,
    /// Write a `segment` snapshot at least this often, even without cohort
    /// changes. Default `1h`.
    pub segment_snapshot_interval: Option<String>,
    /// Memory for the identity and cohort index's page cache. Default 32 MiB.
    pub index_cache_bytes: Option<usize>,
    /// Refuse new writes (503) while the data disk has less free space than
    /// this, so the router can always drain. Default 5% of the disk, 16 MiB
    /// to 1 GiB; 0 turns the check off.
    pub min_free_bytes: Option<u64>,
    /// Most open HTTP connections; at the cap a new connection closes the
    /// quietest idle one. Default 80% of the process's file descriptors, at
    /// most 10,000.
    pub max_connections: Option<usize>,
    /// A request head must arrive whole within this, e.g. `10s`, or the
    /// connection is closed (also while a kept-alive connection waits for
    /// its next request). Default `10s`.
    pub header_timeout: Option<String>,
    /// A connection with no request being handled and no traffic for this
    /// long is closed (a client that stops reading its response), e.g.
    /// `60s`. Default `60s`.
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
    /// stored result and not written again, e.g. `24h`. Default `24h`.
    pub dedup_window: Option<String>,
    /// Most client event ids remembered; beyond it the oldest are forgotten
    /// first (the window is then shorter). About 100 bytes of disk each.
    /// Default 10,000,000.
    pub dedup_max_ids: Option<u64>,
    /// Cluster mode (`collect`, `route`, `node`): NATS server URLs,
    /// comma-separated, e.g. `nats://10.0.0.1:4222,nats://10.0.0.2:4222`.
    pub nats: Option<String>,
    /// Cluster mode: prefix of every stream, bucket and subject this
    /// deployment uses in NATS (`HS_EV`, `hs.ev.07`, …), `[a-z0-9_]{1,32}`,
    /// so several deployments can share one NATS cluster. Default `hs`.
    pub cluster_name: Option<String>,
    /// Cluster mode: log partitions of the events stream, 1-100. Fixed for
    /// the life of the stream (it is checked at every start). Default 16.
    pub partitions: Option<u32>,
    /// Cluster mode: a router worker that stops renewing its lease on a
    /// partition loses it after this long, e.g. `10s`. Every node must use
    /// the same value. Default `10s`.
    pub lease_ttl: Option<String>,
    /// Cluster mode: replicas of every stream and bucket (3 or 5). Default 3.
    pub replicas: Option<u32>,
    /// Cluster mode: most bytes the events stream holds; beyond it writes get
    /// 503 (`discard: new`), never dropping what waits for upload. Default 1 GiB.
    pub stream_max_bytes: Option<u64>,
    /// Cluster mode: most bytes the identity stream holds (every alias link
    /// ever made; ~200 bytes each). Default 1 GiB.
    pub identity_max_bytes: Option<u64>,
    /// Cluster mode: how long the events stream remembers a request id, so a
    /// retried publish is stored once, e.g. `2m`. Default `2m`.
    pub duplicate_window: Option<String>,
    /// Cluster mode: how long a collector retries a publish (with the same id)
    /// before answering 503, e.g. `10s`. Default `10s`.
    pub publish_timeout: Option<String>,
}

/// One key of the `[[keys]]` tables.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// The secret itself (at least 16 characters).
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
        api_keys,
        admin_keys,
        ingest_keys,
        allowed_origins,
        keys,
        worker_id,
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

/// A string that is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where objects are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    Local(PathBuf),
    S3 { bucket: String },
    Memory,
}

/// S3 connection settings; unset values come from the environment.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub profile: Option<String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub sink: SinkTarget,
    /// Normalised key prefix (empty or ending in `/`).
    pub prefix: String,
    pub s3: S3Settings,
    pub keys: Vec<ApiKey>,
    pub worker_id: Option<WorkerId>,
    pub flush_interval: Duration,
    pub max_file_bytes: u64,
    pub max_backlog_bytes: u64,
    pub max_body_bytes: usize,
    pub max_inflight_body_bytes: u64,
    pub body_timeout: Duration,
    pub max_batch_items: usize,
    pub compression_level: u32,
    pub upload_concurrency: usize,
    pub shutdown_timeout: Duration,
    pub segment_snapshot_interval: Duration,
    pub index_cache_bytes: usize,
    /// `None`: the default reserve for the data disk's size.
    pub min_free_bytes: Option<u64>,
    pub connections: ConnLimits,
    /// Requests per second per client address, if limited.
    pub rate_limit: Option<f64>,
    pub client_ip_header: Option<String>,
    pub dedup: DedupLimits,
    pub cluster: ClusterSettings,
}

/// Validated cluster settings (see [`RawConfig`] for each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Empty unless a cluster command is run with `nats` set.
    pub nats: Vec<String>,
    pub cluster_name: String,
    pub partitions: u32,
    pub lease_ttl: Duration,
    pub replicas: u32,
    pub stream_max_bytes: u64,
    pub identity_max_bytes: u64,
    pub duplicate_window: Duration,
    pub publish_timeout: Duration,
    /// The top-level `dedup_window` and `dedup_max_ids` (the dedup bucket).
    pub dedup: DedupLimits,
}

/// Why a configuration is invalid.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file: {0}")]
    Toml(String),
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "refusing to listen on {0} without API keys: set `api_keys` (or HIVESTREAM_API_KEYS) or listen on a loopback address"
    )]
    OpenWithoutKeys(SocketAddr),
}

/// The default gzip level (see [`RawConfig::compression_level`]).
pub const DEFAULT_LEVEL: u32 = 4;

fn invalid(field: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        why: why.into(),
    }
}

/// Parses `500ms`, `60s`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(field: &'static str, s: &str) -> Result<Duration, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| invalid(field, format!("{s:?} is not a duration like 60s")))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(invalid(
                field,
                format!("{s:?} has an unknown unit (use ms, s, m or h)"),
            ))
        }
    };
    Ok(d)
}

fn parse_sink(
    raw: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<(SinkTarget, String), ConfigError> {
    let Some(url) = raw else {
        return Ok((SinkTarget::Local(data_dir.join("bucket")), String::new()));
    };
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(invalid(
                "sink",
                "file:// needs a directory, e.g. file://./bucket",
            ));
        }
        return Ok((SinkTarget::Local(PathBuf::from(path)), String::new()));
    }
    if url == "memory://" {
        return Ok((SinkTarget::Memory, String::new()));
    }
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        invalid(
            "sink",
            format!("{url:?} must start with s3://, file:// or be memory://"),
        )
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return Err(invalid(
            "sink",
            format!("{bucket:?} is not a valid S3 bucket name"),
        ));
    }
    let prefix = normalize_prefix(prefix)?;
    Ok((
        SinkTarget::S3 {
            bucket: bucket.to_string(),
        },
        prefix,
    ))
}

fn bounded<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<T, ConfigError> {
    if v < lo || v > hi {
        return Err(invalid(field, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(v)
}

impl RawConfig {
    /// Checks every setting and fills in defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let dedup = DedupLimits {
            window_ms: parse_duration(
                "dedup_window",
                self.dedup_window.as_deref().unwrap_or("24h"),
            )?
            .as_millis()
            .min(i64::MAX as u128) as i64,
            max_ids: bounded(
                "dedup_max_ids",
                self.dedup_max_ids.unwrap_or(10_000_000),
                1,
                u64::MAX,
            )?,
        };
        let listen: SocketAddr = self
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|_| invalid("listen", "expected an address like 127.0.0.1:8080"))?;
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./hivestream-data"));
        let (sink, prefix) = parse_sink(self.sink.as_deref(), &data_dir)?;
        let keys = api_keys(
            self.api_keys.into_iter().chain(self.admin_keys).flatten(),
            self.ingest_keys.unwrap_or_default(),
            self.allowed_origins.unwrap_or_default(),
            self.keys.unwrap_or_default(),
        )?;
        if keys.is_empty() && !listen.ip().is_loopback() {
            return Err(ConfigError::OpenWithoutKeys(listen));
        }
        let flush_interval = parse_duration(
            "flush_interval",
            self.flush_interval.as_deref().unwrap_or("60s"),
        )?;
        if flush_interval < Duration::from_millis(100) {
            return Err(invalid("flush_interval", "must be at least 100ms"));
        }
        let max_body = self.max_body_bytes.unwrap_or(16 << 20) as u64;
        if self.max_inflight_body_bytes.is_some_and(|n| n < max_body) {
            return Err(invalid(
                "max_inflight_body_bytes",
                "must be at least max_body_bytes, or no body of that size could ever be read",
            ));
        }
        Ok(Config {
            listen,
            data_dir,
            sink,
            prefix,
            s3: S3Settings {
                region: self.region,
                endpoint: self.endpoint,
                access_key_id: self.access_key_id,
                secret_access_key: self.secret_access_key.map(Secret),
                session_token: self.session_token.map(Secret),
                profile: self.profile,
            },
            keys,
            worker_id: self.worker_id.as_deref().map(WorkerId::parse).transpose()?,
            flush_interval,
            max_file_bytes: bounded(
                "max_file_bytes",
                self.max_file_bytes.unwrap_or(64 << 20),
                1024,
                5 << 30,
            )?,
            max_backlog_bytes: bounded(
                "max_backlog_bytes",
                self.max_backlog_bytes.unwrap_or(1 << 30),
                1 << 20,
                u64::MAX,
            )?,
            max_body_bytes: bounded(
                "max_body_bytes",
                self.max_body_bytes.unwrap_or(16 << 20),
                1024,
                256 << 20,
            )?,
            max_inflight_body_bytes: self.max_inflight_body_bytes.unwrap_or(256 << 20),
            body_timeout: parse_duration(
                "body_timeout",
                self.body_timeout.as_deref().unwrap_or("30s"),
            )?,
            max_batch_items: bounded(
                "max_batch_items",
                self.max_batch_items.unwrap_or(10_000),
                1,
                1_000_000,
            )?,
            compression_level: bounded(
                "compression_level",
                self.compression_level.unwrap_or(DEFAULT_LEVEL),
                1,
                9,
            )?,
            upload_concurrency: bounded(
                "upload_concurrency",
                self.upload_concurrency.unwrap_or(4),
                1,
                64,
            )?,
            shutdown_timeout: parse_duration(
                "shutdown_timeout",
                self.shutdown_timeout.as_deref().unwrap_or("30s"),
            )?,
            segment_snapshot_interval: parse_duration(
                "segment_snapshot_interval",
                self.segment_snapshot_interval.as_deref().unwrap_or("1h"),
            )?,
            index_cache_bytes: bounded(
                "index_cache_bytes",
                self.index_cache_bytes.unwrap_or(32 << 20),
                1 << 20,
                64 << 30,
            )?,
            min_free_bytes: self.min_free_bytes,
            connections: ConnLimits {
                max_connections: bounded(
                    "max_connections",
                    self.max_connections.unwrap_or_else(default_max_connections),
                    1,
                    1_000_000,
                )?,
                header_timeout: parse_duration(
                    "header_timeout",
                    self.header_timeout.as_deref().unwrap_or("10s"),
                )?,
                idle_timeout: parse_duration(
                    "idle_timeout",
                    self.idle_timeout.as_deref().unwrap_or("60s"),
                )?,
            },
            rate_limit: match self.rate_limit {
                Some(r) if !(r > 0.0 && r.is_finite()) => {
                    return Err(invalid(
                        "rate_limit",
                        "must be a positive number of requests per second",
                    ))
                }
                r => r,
            },
            client_ip_header: self.client_ip_header,
            dedup,
            cluster: cluster_settings(
                (self.nats, self.cluster_name),
                self.partitions,
                self.lease_ttl,
                self.replicas,
                (self.stream_max_bytes, self.identity_max_bytes),
                (self.duplicate_window, self.publish_timeout),
            )
            .map(|c| ClusterSettings { dedup, ..c })?,
        })
    }
}

fn origins(list: Vec<String>) -> Result<Vec<OriginPattern>, ConfigError> {
    list.iter()
        .map(|o| OriginPattern::parse(o.trim()).map_err(|why| invalid("allowed_origins", why)))
        .collect()
}

/// Every key, typed: admin keys (also from the legacy `api_keys`), ingest
/// keys with `allowed_origins`, and `[[keys]]` tables.
fn api_keys(
    admin: impl Iterator<Item = String>,
    ingest: Vec<String>,
    allowed: Vec<String>,
    tables: Vec<RawKey>,
) -> Result<Vec<ApiKey>, ConfigError> {
    let allowed = origins(allowed)?;
    let mut keys: Vec<ApiKey> = admin
        .filter(|k| !k.is_empty())
        .map(|k| ApiKey {
            secret: Secret(k),
            scope: Scope::Admin,
            origins: Vec::new(),
        })
        .collect();
    keys.extend(
        ingest
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(|k| ApiKey {
                secret: Secret(k),
                scope: Scope::Ingest,
                origins: allowed.clone(),
            }),
    );
    for t in tables {
        if t.key.chars().count() < 16 {
            return Err(invalid(
                "keys",
                "every key in [[keys]] needs at least 16 characters",
            ));
        }
        keys.push(ApiKey {
            secret: Secret(t.key),
            scope: t.scope,
            origins: origins(t.origins)?,
        });
    }
    Ok(keys)
}

fn cluster_settings(
    (nats, cluster_name): (Option<String>, Option<String>),
    partitions: Option<u32>,
    lease_ttl: Option<String>,
    replicas: Option<u32>,
    (stream_max, identity_max): (Option<u64>, Option<u64>),
    (window, publish): (Option<String>, Option<String>),
) -> Result<ClusterSettings, ConfigError> {
    let nats: Vec<String> = nats
        .unwrap_or_default()
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if let Some(bad) = nats
        .iter()
        .find(|u| !u.starts_with("nats://") && !u.starts_with("tls://"))
    {
        return Err(invalid(
            "nats",
            format!("{bad:?} must be a nats:// or tls:// URL"),
        ));
    }
    let cluster_name = cluster_name.unwrap_or_else(|| "hs".into());
    let name_ok = (1..=32).contains(&cluster_name.len())
        && cluster_name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(invalid(
            "cluster_name",
            format!("{cluster_name:?} must be 1 to 32 characters of a-z, 0-9 and _"),
        ));
    }
    let replicas = replicas.unwrap_or(3);
    if replicas != 3 && replicas != 5 {
        return Err(invalid(
            "replicas",
            format!("{replicas}: must be 3 or 5 (fewer replicas lose acknowledged events with one disk)"),
        ));
    }
    let lease_ttl = parse_duration("lease_ttl", lease_ttl.as_deref().unwrap_or("10s"))?;
    if lease_ttl < Duration::from_secs(1) {
        return Err(invalid("lease_ttl", "must be at least 1s"));
    }
    let duplicate_window = parse_duration("duplicate_window", window.as_deref().unwrap_or("2m"))?;
    let publish_timeout = parse_duration("publish_timeout", publish.as_deref().unwrap_or("10s"))?;
    if publish_timeout < Duration::from_secs(1) || duplicate_window < publish_timeout * 2 {
        return Err(invalid(
            "duplicate_window",
            "must be at least twice publish_timeout (at least 1s), or a retried publish could be stored twice",
        ));
    }
    Ok(ClusterSettings {
        nats,
        cluster_name,
        partitions: bounded("partitions", partitions.unwrap_or(16), 1, 100)?,
        lease_ttl,
        replicas,
        stream_max_bytes: bounded(
            "stream_max_bytes",
            stream_max.unwrap_or(1 << 30),
            16 << 20,
            u64::MAX,
        )?,
        identity_max_bytes: bounded(
            "identity_max_bytes",
            identity_max.unwrap_or(1 << 30),
            16 << 20,
            u64::MAX,
        )?,
        duplicate_window,
        publish_timeout,
        dedup: DedupLimits::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.sink,
            SinkTarget::Local(PathBuf::from("./hivestream-data/bucket"))
        );
        assert_eq!(c.flush_interval, Duration::from_secs(60));
        assert_eq!(c.max_file_bytes, 64 << 20);
    }

    #[test]
    fn s3_sink_with_prefix() {
        let raw = RawConfig {
            sink: Some("s3://my-bucket/raw/events".into()),
            ..Default::default()
        };
        let c = raw.validate().unwrap();
        assert_eq!(
            c.sink,
            SinkTarget::S3 {
                bucket: "my-bucket".into()
            }
        );
        assert_eq!(c.prefix, "raw/events/");
        for bad in ["s3://B", "s3://a/../x", "ftp://x", "s3://ab"] {
            let raw = RawConfig {
                sink: Some(bad.into()),
                ..Default::default()
            };
            assert!(raw.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_rejects_unknown_keys_and_overlays() {
        assert!(RawConfig::from_toml("nope = 1").is_err());
        let file =
            RawConfig::from_toml("flush_interval = \"2s\"\nlisten = \"127.0.0.1:9\"").unwrap();
        let cli = RawConfig {
            listen: Some("127.0.0.1:10".into()),
            ..Default::default()
        };
        let c = file.overlay(cli).validate().unwrap();
        assert_eq!(c.listen.port(), 10);
        assert_eq!(c.flush_interval, Duration::from_secs(2));
        let later = RawConfig {
            segment_snapshot_interval: Some("5m".into()),
            ..Default::default()
        };
        let c = RawConfig::default().overlay(later).validate().unwrap();
        assert_eq!(c.segment_snapshot_interval, Duration::from_secs(300));
    }

    #[test]
    fn open_listen_needs_keys() {
        let raw = RawConfig {
            listen: Some("0.0.0.0:8080".into()),
            ..Default::default()
        };
        assert!(matches!(
            raw.clone().validate(),
            Err(ConfigError::OpenWithoutKeys(_))
        ));
        let raw = RawConfig {
            api_keys: Some(vec!["k".into()]),
            ..raw
        };
        assert!(raw.validate().is_ok());
    }

    #[test]
    fn cluster_settings_refuse_what_could_lose_data() {
        let c = RawConfig::default().validate().unwrap().cluster;
        assert_eq!((c.partitions, c.replicas), (16, 3));
        assert!(c.nats.is_empty());
        let with = |raw: RawConfig| raw.validate().map(|c| c.cluster);
        let urls = with(RawConfig {
            nats: Some("nats://a:1, nats://b:2,".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(urls.nats, ["nats://a:1", "nats://b:2"]);
        for bad in [
            RawConfig {
                nats: Some("http://a".into()),
                ..Default::default()
            },
            RawConfig {
                replicas: Some(1),
                ..Default::default()
            },
            RawConfig {
                partitions: Some(0),
                ..Default::default()
            },
            RawConfig {
                duplicate_window: Some("5s".into()),
                ..Default::default()
            },
            RawConfig {
                lease_ttl: Some("100ms".into()),
                ..Default::default()
            },
        ] {
            assert!(with(bad).is_err());
        }
    }

    #[test]
    fn keys_have_scopes_and_origins() {
        let text = r#"
            api_keys = ["legacy-admin"]
            ingest_keys = ["pk_public"]
            allowed_origins = ["https://news.example", "https://*.news.example"]
            [[keys]]
            key = "sk_another_admin_key"
            scope = "admin"
            [[keys]]
            key = "pk_partner_site_key"
            scope = "ingest"
            origins = ["https://partner.example"]
        "#;
        let keys = RawConfig::from_toml(text).unwrap().validate().unwrap().keys;
        let scopes: Vec<(String, Scope, usize)> = keys
            .iter()
            .map(|k| (k.secret.0.clone(), k.scope, k.origins.len()))
            .collect();
        assert_eq!(
            scopes,
            [
                ("legacy-admin".into(), Scope::Admin, 0),
                ("pk_public".into(), Scope::Ingest, 2),
                ("sk_another_admin_key".into(), Scope::Admin, 0),
                ("pk_partner_site_key".into(), Scope::Ingest, 1)
            ]
        );
        for bad in [
            "allowed_origins = [\"https://news.example/\"]",
            "[[keys]]\nkey = \"short\"\nscope = \"admin\"",
            "[[keys]]\nkey = \"long-enough-key-xyz\"\nscope = \"root\"",
        ] {
            let parsed = RawConfig::from_toml(bad).map(|r| r.validate());
            assert!(!matches!(parsed, Ok(Ok(_))), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("f", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("f", "7").unwrap(), Duration::from_secs(7));
        assert_eq!(
            parse_duration("f", "2h").unwrap(),
            Duration::from_secs(7200)
        );
        assert!(parse_duration("f", "1d").is_err());
        assert!(parse_duration("f", "x").is_err());
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let raw = RawConfig {
            secret_access_key: Some("SUPERSECRET".into()),
            api_keys: Some(vec!["APIKEY1".into()]),
            ..Default::default()
        };
        let dbg = format!("{:?}", raw.validate().unwrap());
        assert!(dbg.contains("Secret(***)"), "{dbg}");
        assert!(
            !dbg.contains("SUPERSECRET") && !dbg.contains("APIKEY1"),
            "{dbg}"
        );
    }
}
