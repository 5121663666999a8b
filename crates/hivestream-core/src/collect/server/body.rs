//! Reading request bodies: bounded size, optional gzip (bounded after
//! decoding too, so a gzip bomb stops at the limit), the media type, and
//! two bounds across requests: a body must arrive within `body_timeout`,
//! and all bodies in memory at once fit in `max_inflight_body_bytes`.
//!
//! The in-flight budget is a semaphore counted in KiB. A request reserves
//! its declared length (the full `max_body_bytes` when the length is
//! unknown or the body is gzip, whose decoded size is only known after)
//! before reading, waits while the budget is spent (which slows clients
//! down through TCP instead of growing memory), and keeps the reservation
//! as long as it holds the body: [`ReadBody`] owns both.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::collect::api_error::{ApiError, ErrorKind};

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Json,
    Ndjson,
}

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        ErrorKind::TooLarge,
        "the request body is too large",
        format!("body: {what} over {limit} bytes"),
    )
}

/// The media type, from `Content-Type` (absent means JSON). `text/plain`,
/// what `navigator.sendBeacon` and CORS-simple requests send, is JSON, or
/// NDJSON where NDJSON is accepted and the body is not an array (decided
/// by [`beacon_media`] once the body is read).
pub fn media_type(headers: &HeaderMap, allow_ndjson: bool) -> Result<MediaType, ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(MediaType::Json);
    };
    let ct = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/json" | "text/json" | "text/plain" => Ok(MediaType::Json),
        "application/x-ndjson" | "application/jsonl" | "application/ndjson" if allow_ndjson => {
            Ok(MediaType::Ndjson)
        }
        _ => {
            let accepted = if allow_ndjson {
                "application/json, application/x-ndjson or text/plain"
            } else {
                "application/json or text/plain"
            };
            Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported content type",
                format!("content-type: {ct:?} is not accepted; send {accepted}"),
            ))
        }
    }
}

/// Whether the request came as `text/plain` (a beacon).
pub fn is_text_plain(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
        })
}

/// The framing of a `text/plain` batch body: a JSON array, else NDJSON.
pub fn beacon_media(body: &[u8]) -> MediaType {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => MediaType::Json,
        _ => MediaType::Ndjson,
    }
}

/// The bounds on request bodies.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Largest body, before and after gzip decoding.
    pub max_body_bytes: usize,
    /// How long a body may take to arrive (and to get a place in memory).
    pub timeout: Duration,
    budget: Arc<Semaphore>,
    budget_kib: u32,
}

impl BodyLimits {
    pub fn new(max_body_bytes: usize, max_inflight_bytes: u64, timeout: Duration) -> Self {
        let budget_kib = (max_inflight_bytes / 1024).clamp(1, u32::MAX as u64) as u32;
        Self {
            max_body_bytes,
            timeout,
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
        }
    }
}

/// A request body in memory, with its share of the in-flight budget.
#[derive(Debug)]
pub struct ReadBody {
    bytes: Bytes,
    _reservation: OwnedSemaphorePermit,
}

impl std::ops::Deref for ReadBody {
    type Target = Bytes;
    fn deref(&self) -> &Bytes {
        &self.bytes
    }
}

fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

/// Reads the whole body within the limits (see the module doc).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &BodyLimits,
) -> Result<ReadBody, ApiError> {
    let limit = limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit, "content-length"));
    }
    // Refuse an unknown encoding before spending budget or reading.
    let gzip = is_gzip(headers)?;
    let need = match (declared, gzip) {
        (Some(n), false) => kib(n.max(1)),
        _ => kib(limit as u64),
    };
    let need = need.min(limits.budget_kib as u64) as u32;
    let budget = Arc::clone(&limits.budget);
    let reservation = tokio::time::timeout(limits.timeout, budget.acquire_many_owned(need))
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let raw = tokio::time::timeout(limits.timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| slow(limits.timeout))?
        .map_err(|_| too_large(limit, "body"))?;
    let bytes = if gzip { gunzip(&raw, limit)? } else { raw };
    Ok(ReadBody {
        bytes,
        _reservation: reservation,
    })
}

/// Whether the body is gzip (`Content-Encoding: gzip`); identity or no
/// encoding is plain; anything else is refused.
fn is_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(false),
        Some("gzip") | Some("x-gzip") => Ok(true),
        Some(other) => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "unsupported content encoding",
            format!("content-encoding: {other:?} is not accepted; send gzip or identity"),
        )),
    }
}

fn busy() -> ApiError {
    ApiError::unavailable(
        "too many request bodies in flight",
        "server: max_inflight_body_bytes is in use; retry",
        1,
    )
}

fn slow(timeout: Duration) -> ApiError {
    ApiError::new(
        ErrorKind::RequestTimeout,
        "the request body did not arrive in time",
        format!("body: not complete after {} ms", timeout.as_millis()),
    )
}

fn gunzip(raw: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let decoder = flate2::read::MultiGzDecoder::new(raw);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidJson,
                "the body is not valid gzip",
                format!("content-encoding: gzip: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(too_large(limit, "decompressed body"));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_bomb_stops_at_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'a'; 10 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 << 10);
        let err = gunzip(&bomb, 1 << 20).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert_eq!(gunzip(&bomb, 11 << 20).unwrap().len(), 10 << 20);
        assert_eq!(
            gunzip(b"not gzip", 100).unwrap_err().kind,
            ErrorKind::InvalidJson
        );
    }

    #[test]
    fn media_types() {
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h, false).unwrap(), MediaType::Json);
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(media_type(&h, false).unwrap(), MediaType::Json);
        h.insert(
            header::CONTENT_TYPE,
            "application/x-ndjson".parse().unwrap(),
        );
        assert_eq!(media_type(&h, true).unwrap(), MediaType::Ndjson);
        assert_eq!(
            media_type(&h, false).unwrap_err().kind,
            ErrorKind::UnsupportedMediaType
        );
        // What sendBeacon sends: JSON, or NDJSON when not an array.
        h.insert(
            header::CONTENT_TYPE,
            "text/plain;charset=UTF-8".parse().unwrap(),
        );
        assert_eq!(media_type(&h, false).unwrap(), MediaType::Json);
        assert!(is_text_plain(&h));
        assert_eq!(beacon_media(b"  [{}]"), MediaType::Json);
        assert_eq!(beacon_media(b"{}\n{}"), MediaType::Ndjson);
        h.insert(header::CONTENT_TYPE, "text/html".parse().unwrap());
        assert_eq!(
            media_type(&h, true).unwrap_err().kind,
            ErrorKind::UnsupportedMediaType
        );
    }
}
