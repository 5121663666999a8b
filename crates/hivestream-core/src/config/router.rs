//! The router stage: how files are cut, compressed and uploaded
//! (`flush_interval`, `max_file_bytes`, `compression_level`,
//! `upload_concurrency`, `shutdown_timeout`, `worker_id`).
//!
//! Invariants: `flush_interval` is at least [`MIN_FLUSH_INTERVAL`]; every
//! number lies within its bounds; a worker id is valid in object keys.

use std::time::Duration;

use super::{bounded, duration_or, invalid, ConfigError, RawConfig};
use super::{
    COMPRESSION_LEVEL_RANGE, DEFAULT_COMPRESSION_LEVEL, DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_FILE_BYTES, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_UPLOAD_CONCURRENCY,
    MAX_FILE_BYTES_RANGE, MIN_FLUSH_INTERVAL, UPLOAD_CONCURRENCY_RANGE,
};
use crate::route::keys::WorkerId;

/// Validated router settings.
#[derive(Debug, Clone)]
pub(super) struct RouterSettings {
    pub flush_interval: Duration,
    pub max_file_bytes: u64,
    pub compression_level: u32,
    pub upload_concurrency: usize,
    pub shutdown_timeout: Duration,
    /// `None`: the one kept in the data dir.
    pub worker_id: Option<WorkerId>,
}

impl RouterSettings {
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let flush_interval = duration_or(
            "flush_interval",
            raw.flush_interval.as_deref(),
            DEFAULT_FLUSH_INTERVAL,
        )?;
        if flush_interval < MIN_FLUSH_INTERVAL {
            return Err(invalid(
                "flush_interval",
                format!("must be at least {MIN_FLUSH_INTERVAL:?}"),
            ));
        }
        Ok(Self {
            flush_interval,
            worker_id: raw.worker_id.as_deref().map(WorkerId::parse).transpose()?,
            max_file_bytes: bounded(
                "max_file_bytes",
                raw.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES),
                &MAX_FILE_BYTES_RANGE,
            )?,
            compression_level: bounded(
                "compression_level",
                raw.compression_level.unwrap_or(DEFAULT_COMPRESSION_LEVEL),
                &COMPRESSION_LEVEL_RANGE,
            )?,
            upload_concurrency: bounded(
                "upload_concurrency",
                raw.upload_concurrency.unwrap_or(DEFAULT_UPLOAD_CONCURRENCY),
                &UPLOAD_CONCURRENCY_RANGE,
            )?,
            shutdown_timeout: duration_or(
                "shutdown_timeout",
                raw.shutdown_timeout.as_deref(),
                DEFAULT_SHUTDOWN_TIMEOUT,
            )?,
        })
    }
}
