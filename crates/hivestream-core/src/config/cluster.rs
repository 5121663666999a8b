//! Cluster-mode settings: validated from the raw `nats`, `cluster_name`,
//! `partitions`, … into [`ClusterSettings`].

use std::time::Duration;

use super::{bounded, invalid, parse_duration, ClusterSettings, ConfigError};
use crate::state::dedup::DedupLimits;

pub(super) fn cluster_settings(
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
