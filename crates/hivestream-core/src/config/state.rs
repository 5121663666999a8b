//! The state stage: the identity and cohort index and the client event id
//! memory (`index_cache_bytes`, `dedup_window`, `dedup_max_ids`,
//! `segment_snapshot_interval`, `workspace_id`).
//!
//! Invariants: the dedup window fits in an `i64` of milliseconds (longer
//! ones are capped); at least one event id is remembered; a workspace id
//! is a UUID.

use std::time::Duration;

use super::{bounded, duration_or, invalid, ConfigError, RawConfig};
use super::{
    DEDUP_MAX_IDS_RANGE, DEFAULT_DEDUP_MAX_IDS, DEFAULT_DEDUP_WINDOW, DEFAULT_INDEX_CACHE_BYTES,
    DEFAULT_SEGMENT_SNAPSHOT_INTERVAL, INDEX_CACHE_BYTES_RANGE,
};
use crate::state::dedup::DedupLimits;

/// Validated state settings.
#[derive(Debug, Clone)]
pub(super) struct StateSettings {
    pub dedup: DedupLimits,
    /// `None`: the one kept by the data dir or the cluster.
    pub workspace_id: Option<uuid::Uuid>,
    pub segment_snapshot_interval: Duration,
    pub index_cache_bytes: usize,
}

impl StateSettings {
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            dedup: dedup_limits(raw)?,
            workspace_id: raw
                .workspace_id
                .as_deref()
                .map(parse_workspace)
                .transpose()?,
            segment_snapshot_interval: duration_or(
                "segment_snapshot_interval",
                raw.segment_snapshot_interval.as_deref(),
                DEFAULT_SEGMENT_SNAPSHOT_INTERVAL,
            )?,
            index_cache_bytes: bounded(
                "index_cache_bytes",
                raw.index_cache_bytes.unwrap_or(DEFAULT_INDEX_CACHE_BYTES),
                &INDEX_CACHE_BYTES_RANGE,
            )?,
        })
    }
}

fn dedup_limits(raw: &RawConfig) -> Result<DedupLimits, ConfigError> {
    let window = duration_or(
        "dedup_window",
        raw.dedup_window.as_deref(),
        DEFAULT_DEDUP_WINDOW,
    )?;
    Ok(DedupLimits {
        window_ms: window.as_millis().min(i64::MAX as u128) as i64,
        max_ids: bounded(
            "dedup_max_ids",
            raw.dedup_max_ids.unwrap_or(DEFAULT_DEDUP_MAX_IDS),
            &DEDUP_MAX_IDS_RANGE,
        )?,
    })
}

fn parse_workspace(s: &str) -> Result<uuid::Uuid, ConfigError> {
    uuid::Uuid::try_parse(s).map_err(|_| invalid("workspace_id", format!("{s:?} is not a UUID")))
}
