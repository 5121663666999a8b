//! The HTTP stage: where the API listens and what a connection or a
//! request may take (`listen`, connection limits and timeouts, body sizes,
//! batch items, rate limit, client address header).
//!
//! Invariant: `max_inflight_body_bytes >= max_body_bytes`, so a body of
//! the largest size can always be read.

use std::net::SocketAddr;
use std::time::Duration;

use super::{bounded, duration_or, invalid, ConfigError, RawConfig};
use super::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INFLIGHT_BODY_BYTES,
    MAX_BATCH_ITEMS_RANGE, MAX_BODY_BYTES_RANGE, MAX_CONNECTIONS_RANGE,
};
use crate::collect::listener::{default_max_connections, ConnLimits};

/// Validated listener and request limits.
#[derive(Debug, Clone)]
pub(super) struct HttpSettings {
    pub listen: SocketAddr,
    pub connections: ConnLimits,
    pub body_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_inflight_body_bytes: u64,
    pub max_batch_items: usize,
    /// Requests per second per client address, if limited.
    pub rate_limit: Option<f64>,
    pub client_ip_header: Option<String>,
}

/// Validated body sizes (`max_body_bytes`, `max_inflight_body_bytes`).
struct BodyLimits {
    max_body_bytes: usize,
    max_inflight_body_bytes: u64,
}

impl HttpSettings {
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let listen: SocketAddr = raw
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN)
            .parse()
            .map_err(|_| invalid("listen", "expected an address like 127.0.0.1:8080"))?;
        let body = body_limits(raw)?;
        Ok(Self {
            listen,
            body_timeout: duration_or(
                "body_timeout",
                raw.body_timeout.as_deref(),
                DEFAULT_BODY_TIMEOUT,
            )?,
            max_batch_items: bounded(
                "max_batch_items",
                raw.max_batch_items.unwrap_or(DEFAULT_MAX_BATCH_ITEMS),
                &MAX_BATCH_ITEMS_RANGE,
            )?,
            connections: conn_limits(raw)?,
            rate_limit: rate_limit(raw.rate_limit)?,
            client_ip_header: raw.client_ip_header.clone(),
            max_body_bytes: body.max_body_bytes,
            max_inflight_body_bytes: body.max_inflight_body_bytes,
        })
    }
}

/// The body sizes; the in-flight budget is checked against the largest
/// body before that is bounded.
fn body_limits(raw: &RawConfig) -> Result<BodyLimits, ConfigError> {
    let max_body = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES) as u64;
    if raw.max_inflight_body_bytes.is_some_and(|n| n < max_body) {
        return Err(invalid(
            "max_inflight_body_bytes",
            "must be at least max_body_bytes, or no body of that size could ever be read",
        ));
    }
    Ok(BodyLimits {
        max_body_bytes: bounded(
            "max_body_bytes",
            raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            &MAX_BODY_BYTES_RANGE,
        )?,
        max_inflight_body_bytes: raw
            .max_inflight_body_bytes
            .unwrap_or(DEFAULT_MAX_INFLIGHT_BODY_BYTES),
    })
}

/// What the listener bounds: connections and their timeouts.
fn conn_limits(raw: &RawConfig) -> Result<ConnLimits, ConfigError> {
    Ok(ConnLimits {
        max_connections: bounded(
            "max_connections",
            raw.max_connections.unwrap_or_else(default_max_connections),
            &MAX_CONNECTIONS_RANGE,
        )?,
        header_timeout: duration_or(
            "header_timeout",
            raw.header_timeout.as_deref(),
            DEFAULT_HEADER_TIMEOUT,
        )?,
        idle_timeout: duration_or(
            "idle_timeout",
            raw.idle_timeout.as_deref(),
            DEFAULT_IDLE_TIMEOUT,
        )?,
    })
}

/// A positive, finite number of requests per second, if set.
fn rate_limit(raw: Option<f64>) -> Result<Option<f64>, ConfigError> {
    match raw {
        Some(r) if !(r > 0.0 && r.is_finite()) => Err(invalid(
            "rate_limit",
            "must be a positive number of requests per second",
        )),
        r => Ok(r),
    }
}
