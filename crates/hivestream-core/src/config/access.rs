//! The access stage: every API key, typed with its scope and browser
//! origins (`api_keys`, `admin_keys`, `ingest_keys`, `allowed_origins`,
//! `[[keys]]`).
//!
//! Invariants: empty keys in the lists are dropped; every `[[keys]]`
//! secret has at least [`MIN_KEY_CHARS`] characters; a listener on a
//! non-loopback address has at least one key.

use std::net::SocketAddr;

use super::{invalid, ConfigError, RawConfig, RawKey, Secret, MIN_KEY_CHARS};
use crate::collect::access::{ApiKey, OriginPattern, Scope};

/// Validated keys.
#[derive(Debug, Clone)]
pub(super) struct AccessSettings {
    pub keys: Vec<ApiKey>,
}

impl AccessSettings {
    /// Every key of `raw`, refusing an open `listen` address without any.
    pub(super) fn from_raw(raw: &RawConfig, listen: SocketAddr) -> Result<Self, ConfigError> {
        let allowed = origins(raw.allowed_origins.as_deref().unwrap_or_default())?;
        let admin = raw.api_keys.iter().chain(&raw.admin_keys).flatten();
        let mut keys: Vec<ApiKey> = admin
            .filter(|k| !k.is_empty())
            .map(|k| listed(k, Scope::Admin, Vec::new()))
            .collect();
        let ingest = raw.ingest_keys.iter().flatten();
        keys.extend(
            ingest
                .filter(|k| !k.is_empty())
                .map(|k| listed(k, Scope::Ingest, allowed.clone())),
        );
        for t in raw.keys.iter().flatten() {
            keys.push(table_key(t)?);
        }
        if keys.is_empty() && !listen.ip().is_loopback() {
            return Err(ConfigError::OpenWithoutKeys(listen));
        }
        Ok(Self { keys })
    }
}

/// A key of one of the lists.
fn listed(secret: &str, scope: Scope, origins: Vec<OriginPattern>) -> ApiKey {
    ApiKey {
        secret: Secret(secret.to_string()),
        scope,
        origins,
    }
}

/// A key of a `[[keys]]` table.
fn table_key(t: &RawKey) -> Result<ApiKey, ConfigError> {
    if t.key.chars().count() < MIN_KEY_CHARS {
        return Err(invalid(
            "keys",
            format!("every key in [[keys]] needs at least {MIN_KEY_CHARS} characters"),
        ));
    }
    Ok(ApiKey {
        secret: Secret(t.key.clone()),
        scope: t.scope,
        origins: origins(&t.origins)?,
    })
}

fn origins(list: &[String]) -> Result<Vec<OriginPattern>, ConfigError> {
    list.iter()
        .map(|o| OriginPattern::parse(o.trim()).map_err(|why| invalid("allowed_origins", why)))
        .collect()
}
