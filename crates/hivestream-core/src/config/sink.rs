//! The sink stage: where objects go and how they are written (`sink` with
//! its key prefix, the S3 region, endpoint and credentials, the object
//! settings).
//!
//! Invariants: the prefix is normalised (empty or ending in `/`); an S3
//! bucket name is valid; object settings other than the default come
//! with an S3 sink only (a local or memory sink cannot honour them, so
//! they are refused rather than silently ignored).

use std::path::{Path, PathBuf};

use super::{invalid, ConfigError, RawConfig, S3Settings, Secret, SinkTarget};
use super::{DEFAULT_BUCKET_DIR, S3_BUCKET_NAME_LEN};
use crate::route::keys::normalize_prefix;
use crate::sink::object::{ObjectSettings, RawObjectSettings};

/// Validated sink settings.
#[derive(Debug, Clone)]
pub(super) struct SinkSettings {
    pub target: SinkTarget,
    /// Normalised key prefix (empty or ending in `/`).
    pub prefix: String,
    pub s3: S3Settings,
}

/// Where a sink URL points: the target and the key prefix in it.
struct SinkLocation {
    target: SinkTarget,
    prefix: String,
}

impl SinkSettings {
    /// The sink of `raw`; without one, a local bucket in `data_dir`.
    pub(super) fn from_raw(raw: &RawConfig, data_dir: &Path) -> Result<Self, ConfigError> {
        let SinkLocation { target, prefix } = parse_sink(raw.sink.as_deref(), data_dir)?;
        let objects = object_settings(raw, &target)?;
        Ok(Self {
            target,
            prefix,
            s3: S3Settings {
                region: raw.region.clone(),
                endpoint: raw.endpoint.clone(),
                access_key_id: raw.access_key_id.clone(),
                secret_access_key: raw.secret_access_key.clone().map(Secret),
                session_token: raw.session_token.clone().map(Secret),
                profile: raw.profile.clone(),
                objects,
            },
        })
    }
}

fn parse_sink(url: Option<&str>, data_dir: &Path) -> Result<SinkLocation, ConfigError> {
    let local = |dir: PathBuf| SinkLocation {
        target: SinkTarget::Local(dir),
        prefix: String::new(),
    };
    let Some(url) = url else {
        return Ok(local(data_dir.join(DEFAULT_BUCKET_DIR)));
    };
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(invalid(
                "sink",
                "file:// needs a directory, e.g. file://./bucket",
            ));
        }
        return Ok(local(PathBuf::from(path)));
    }
    if url == "memory://" {
        return Ok(SinkLocation {
            target: SinkTarget::Memory,
            prefix: String::new(),
        });
    }
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        invalid(
            "sink",
            format!("{url:?} must start with s3://, file:// or be memory://"),
        )
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !bucket_name_ok(bucket) {
        return Err(invalid(
            "sink",
            format!("{bucket:?} is not a valid S3 bucket name"),
        ));
    }
    Ok(SinkLocation {
        target: SinkTarget::S3 {
            bucket: bucket.to_string(),
        },
        prefix: normalize_prefix(prefix)?,
    })
}

fn bucket_name_ok(bucket: &str) -> bool {
    S3_BUCKET_NAME_LEN.contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The object settings, which only an S3 sink can honour.
fn object_settings(raw: &RawConfig, target: &SinkTarget) -> Result<ObjectSettings, ConfigError> {
    let settings = ObjectSettings::from_raw(RawObjectSettings {
        server_side_encryption: raw.server_side_encryption.as_deref(),
        sse_kms_key_id: raw.sse_kms_key_id.clone(),
        sse_bucket_key: raw.sse_bucket_key,
        storage_class: raw.storage_class.as_deref(),
        object_tags: raw.object_tags.clone(),
        acl: raw.acl.as_deref(),
    })
    .map_err(|(field, why)| invalid(field, why))?;
    if !settings.is_default() && !matches!(target, SinkTarget::S3 { .. }) {
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
