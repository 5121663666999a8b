//! Configuration: a raw, all-optional [`RawConfig`] read from TOML, the
//! `HIVESTREAM_*` environment and flags (later sources override earlier
//! ones), validated into a typed [`Config`]. The doc comments on
//! [`RawConfig`] are the configuration reference.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::collect::access::{ApiKey, OriginPattern, Scope};
use crate::collect::listener::{default_max_connections, ConnLimits};
use crate::route::keys::{normalize_prefix, KeyError, WorkerId};
use crate::sink::object::{ObjectSettings, RawObjectSettings};
use crate::state::dedup::DedupLimits;

mod cluster;
mod raw;

pub use raw::{RawConfig, RawKey};

pub use crate::secret::Secret;

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
    /// Encryption, storage class, tags and ACL of every object written.
    pub objects: ObjectSettings,
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
    /// `None`: the one kept by the data dir or the cluster.
    pub workspace_id: Option<uuid::Uuid>,
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

fn parse_workspace(s: &str) -> Result<uuid::Uuid, ConfigError> {
    uuid::Uuid::try_parse(s).map_err(|_| ConfigError::Invalid {
        field: "workspace_id",
        why: format!("{s:?} is not a UUID"),
    })
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
        let objects = object_settings(
            RawObjectSettings {
                server_side_encryption: self.server_side_encryption.as_deref(),
                sse_kms_key_id: self.sse_kms_key_id.clone(),
                sse_bucket_key: self.sse_bucket_key,
                storage_class: self.storage_class.as_deref(),
                object_tags: self.object_tags.clone(),
                acl: self.acl.as_deref(),
            },
            &sink,
        )?;
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
                objects,
            },
            keys,
            worker_id: self.worker_id.as_deref().map(WorkerId::parse).transpose()?,
            workspace_id: self
                .workspace_id
                .as_deref()
                .map(parse_workspace)
                .transpose()?,
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
            cluster: cluster::cluster_settings(
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

/// The object settings, which only an S3 sink can honour: on a local or
/// memory sink they are refused rather than silently ignored.
fn object_settings(
    raw: RawObjectSettings<'_>,
    sink: &SinkTarget,
) -> Result<ObjectSettings, ConfigError> {
    let settings = ObjectSettings::from_raw(raw).map_err(|(field, why)| invalid(field, why))?;
    if !settings.is_default() && !matches!(sink, SinkTarget::S3 { .. }) {
        return Err(invalid(
            "sink",
            format!(
                "object settings ({}) apply to s3:// sinks only",
                settings.describe()
            ),
        ));
    }
    Ok(settings)
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

#[cfg(test)]
mod tests;
