//! The router stage: how files are cut, compressed and uploaded
//! (`flush_interval`, `max_file_bytes`, `compression_level`,
//! `upload_concurrency`, `shutdown_timeout`: one [`RouterSettings`], shared
//! by `serve`'s router and every router of a cluster worker), and the
//! `worker_id` that names `serve`'s files (a cluster's partitions name
//! themselves).
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

/// Validated router settings: the same for every router of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSettings {
    /// An open file is sealed this long after its first record.
    pub flush_interval: Duration,
    /// An open file is sealed once it is this large, compressed.
    pub max_file_bytes: u64,
    /// Gzip level of every file.
    pub compression_level: u32,
    /// Uploads running at once.
    pub upload_concurrency: usize,
    /// How long a stopping router waits for its uploads.
    pub shutdown_timeout: Duration,
}

/// What the router stage validates.
pub(super) struct RouterStage {
    pub settings: RouterSettings,
    /// `serve`'s name in object keys; `None`: the one kept in the data dir.
    pub worker_id: Option<WorkerId>,
}

impl RouterStage {
    /// Checks the settings in the order the reference lists them.
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let flush_interval = flush_interval(raw)?;
        let worker_id = raw.worker_id.as_deref().map(WorkerId::parse).transpose()?;
        let settings = RouterSettings {
            flush_interval,
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
        };
        Ok(Self {
            settings,
            worker_id,
        })
    }
}

/// `flush_interval`, at least [`MIN_FLUSH_INTERVAL`].
fn flush_interval(raw: &RawConfig) -> Result<Duration, ConfigError> {
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
    Ok(flush_interval)
}
