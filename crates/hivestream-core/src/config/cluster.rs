//! The cluster stage: validated from the raw `nats`, `cluster_name`,
//! `partitions`, … into [`ClusterSettings`].
//!
//! Invariants: every NATS URL is `nats://` or `tls://`; the cluster name
//! is a valid prefix of NATS names; replicas are one of
//! [`REPLICA_COUNTS`] (fewer lose acknowledged events with one disk); the
//! duplicate window is at least twice the publish timeout, so a retried
//! publish is never stored twice.

use std::time::Duration;

use super::{bounded, duration_or, invalid, ConfigError, RawConfig};
use super::{
    CLUSTER_NAME_LEN, DEFAULT_CLUSTER_NAME, DEFAULT_DUPLICATE_WINDOW, DEFAULT_IDENTITY_MAX_BYTES,
    DEFAULT_LEASE_TTL, DEFAULT_PARTITIONS, DEFAULT_PUBLISH_TIMEOUT, DEFAULT_REPLICAS,
    DEFAULT_STREAM_MAX_BYTES, MIN_LEASE_TTL, MIN_PUBLISH_TIMEOUT, PARTITIONS_RANGE, REPLICA_COUNTS,
    STREAM_BYTES_RANGE,
};
use crate::state::dedup::DedupLimits;

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

/// The stream's request id memory: `duplicate_window` and
/// `publish_timeout`, validated together.
struct PublishWindow {
    duplicate_window: Duration,
    publish_timeout: Duration,
}

impl ClusterSettings {
    /// The cluster settings of `raw`, with the (validated) top-level dedup
    /// limits for the dedup bucket.
    pub(super) fn from_raw(raw: &RawConfig, dedup: DedupLimits) -> Result<Self, ConfigError> {
        let nats = nats_urls(raw.nats.as_deref())?;
        let cluster_name = cluster_name(raw.cluster_name.as_deref())?;
        let replicas = raw.replicas.unwrap_or(DEFAULT_REPLICAS);
        if !REPLICA_COUNTS.contains(&replicas) {
            let [few, many] = REPLICA_COUNTS;
            return Err(invalid(
                "replicas",
                format!("{replicas}: must be {few} or {many} (fewer replicas lose acknowledged events with one disk)"),
            ));
        }
        let lease_ttl = duration_or("lease_ttl", raw.lease_ttl.as_deref(), DEFAULT_LEASE_TTL)?;
        if lease_ttl < MIN_LEASE_TTL {
            return Err(invalid(
                "lease_ttl",
                format!("must be at least {MIN_LEASE_TTL:?}"),
            ));
        }
        let window = publish_window(raw)?;
        Ok(Self {
            nats,
            cluster_name,
            partitions: bounded(
                "partitions",
                raw.partitions.unwrap_or(DEFAULT_PARTITIONS),
                &PARTITIONS_RANGE,
            )?,
            lease_ttl,
            replicas,
            stream_max_bytes: bounded(
                "stream_max_bytes",
                raw.stream_max_bytes.unwrap_or(DEFAULT_STREAM_MAX_BYTES),
                &STREAM_BYTES_RANGE,
            )?,
            identity_max_bytes: bounded(
                "identity_max_bytes",
                raw.identity_max_bytes.unwrap_or(DEFAULT_IDENTITY_MAX_BYTES),
                &STREAM_BYTES_RANGE,
            )?,
            duplicate_window: window.duplicate_window,
            publish_timeout: window.publish_timeout,
            dedup,
        })
    }
}

/// The comma-separated URLs, without blanks.
fn nats_urls(raw: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let nats: Vec<String> = raw
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
    Ok(nats)
}

fn cluster_name(raw: Option<&str>) -> Result<String, ConfigError> {
    let name = raw.unwrap_or(DEFAULT_CLUSTER_NAME);
    let ok = CLUSTER_NAME_LEN.contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        let (lo, hi) = (CLUSTER_NAME_LEN.start(), CLUSTER_NAME_LEN.end());
        return Err(invalid(
            "cluster_name",
            format!("{name:?} must be {lo} to {hi} characters of a-z, 0-9 and _"),
        ));
    }
    Ok(name.to_string())
}

fn publish_window(raw: &RawConfig) -> Result<PublishWindow, ConfigError> {
    let duplicate_window = duration_or(
        "duplicate_window",
        raw.duplicate_window.as_deref(),
        DEFAULT_DUPLICATE_WINDOW,
    )?;
    let publish_timeout = duration_or(
        "publish_timeout",
        raw.publish_timeout.as_deref(),
        DEFAULT_PUBLISH_TIMEOUT,
    )?;
    if publish_timeout < MIN_PUBLISH_TIMEOUT || duplicate_window < publish_timeout * 2 {
        return Err(invalid(
            "duplicate_window",
            "must be at least twice publish_timeout (at least 1s), or a retried publish could be stored twice",
        ));
    }
    Ok(PublishWindow {
        duplicate_window,
        publish_timeout,
    })
}
