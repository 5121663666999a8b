//! The log admission stage: when the WAL stops taking writes
//! (`max_backlog_bytes`, `min_free_bytes`), so the router can always drain
//! what was acknowledged.
//!
//! Invariant: the backlog limit is at least the lower bound of
//! [`MAX_BACKLOG_BYTES_RANGE`]; the disk reserve is passed on as given
//! (`None`: sized from the disk when the log opens).

use super::{bounded, ConfigError, RawConfig, DEFAULT_MAX_BACKLOG_BYTES, MAX_BACKLOG_BYTES_RANGE};

/// Validated admission limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct AdmissionSettings {
    pub max_backlog_bytes: u64,
    /// `None`: the default reserve for the data disk's size.
    pub min_free_bytes: Option<u64>,
}

impl AdmissionSettings {
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            max_backlog_bytes: bounded(
                "max_backlog_bytes",
                raw.max_backlog_bytes.unwrap_or(DEFAULT_MAX_BACKLOG_BYTES),
                &MAX_BACKLOG_BYTES_RANGE,
            )?,
            min_free_bytes: raw.min_free_bytes,
        })
    }
}
