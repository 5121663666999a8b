//! Configuration: a raw, all-optional [`RawConfig`] read from TOML, the
//! `HIVESTREAM_*` environment and flags (later sources override earlier
//! ones), validated into a typed [`Config`]. The doc comments on
//! [`RawConfig`] are the configuration reference.
//!
//! Validation goes by stage: one validator per part of the pipeline
//! (`http`, `access`, `sink`, `router`, `admission`, `state`, `cluster`),
//! each reading its settings from the [`RawConfig`] and returning its own
//! typed settings; [`RawConfig::validate`] runs them and assembles the
//! [`Config`]. Every default and bound is a named constant (declared in
//! `defaults.rs`, re-exported here), which the reference names.
//!
//! Invariants: a [`Config`] only exists validated (every value within its
//! bounds, every default filled in); a non-loopback listener always has
//! at least one key; object settings are only set with an S3 sink.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::collect::access::ApiKey;
use crate::collect::listener::ConnLimits;
use crate::route::keys::{KeyError, WorkerId};
use crate::sink::object::ObjectSettings;
use crate::state::dedup::DedupLimits;

mod access;
mod admission;
mod cluster;
mod defaults;
mod http;
mod raw;
mod router;
mod sink;
mod state;

use access::AccessSettings;
use admission::AdmissionSettings;
pub use cluster::ClusterSettings;
pub use defaults::*;
use http::HttpSettings;
pub use raw::{RawConfig, RawKey};
pub use router::RouterSettings;
use router::RouterStage;
use sink::SinkSettings;
use state::StateSettings;

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
    /// `serve`'s name in object keys (and a cluster node's name base);
    /// `None`: the one kept in the data dir.
    pub worker_id: Option<WorkerId>,
    /// `None`: the one kept by the data dir or the cluster.
    pub workspace_id: Option<uuid::Uuid>,
    /// How files are cut, compressed and uploaded.
    pub router: RouterSettings,
    pub max_backlog_bytes: u64,
    pub max_body_bytes: usize,
    pub max_inflight_body_bytes: u64,
    pub body_timeout: Duration,
    pub max_batch_items: usize,
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

/// Builds a [`ConfigError::Invalid`].
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

/// The duration `raw` gives, or `default` when it is unset.
fn duration_or(
    field: &'static str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    raw.map_or(Ok(default), |s| parse_duration(field, s))
}

/// `v`, if it lies within `range`.
fn bounded<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    v: T,
    range: &RangeInclusive<T>,
) -> Result<T, ConfigError> {
    let (lo, hi) = (*range.start(), *range.end());
    if v < lo || v > hi {
        return Err(invalid(field, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(v)
}

impl RawConfig {
    /// Checks every setting and fills in defaults, stage by stage.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let state = StateSettings::from_raw(&self)?;
        let http = HttpSettings::from_raw(&self)?;
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let sink = SinkSettings::from_raw(&self, &data_dir)?;
        let access = AccessSettings::from_raw(&self, http.listen)?;
        let router = RouterStage::from_raw(&self)?;
        let admission = AdmissionSettings::from_raw(&self)?;
        let cluster = ClusterSettings::from_raw(&self, state.dedup)?;
        Ok(Config {
            listen: http.listen,
            data_dir,
            sink: sink.target,
            prefix: sink.prefix,
            s3: sink.s3,
            keys: access.keys,
            worker_id: router.worker_id,
            workspace_id: state.workspace_id,
            router: router.settings,
            max_backlog_bytes: admission.max_backlog_bytes,
            max_body_bytes: http.max_body_bytes,
            max_inflight_body_bytes: http.max_inflight_body_bytes,
            body_timeout: http.body_timeout,
            max_batch_items: http.max_batch_items,
            segment_snapshot_interval: state.segment_snapshot_interval,
            index_cache_bytes: state.index_cache_bytes,
            min_free_bytes: admission.min_free_bytes,
            connections: http.connections,
            rate_limit: http.rate_limit,
            client_ip_header: http.client_ip_header,
            dedup: state.dedup,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests;
