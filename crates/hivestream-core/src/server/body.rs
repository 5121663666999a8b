//! Reading request bodies: bounded size, optional gzip (bounded after
//! decoding too, so a gzip bomb stops at the limit), and the media type.

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;

use crate::api_error::{ApiError, ErrorKind};

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

/// The media type, from `Content-Type` (absent means JSON).
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
        "application/json" | "text/json" => Ok(MediaType::Json),
        "application/x-ndjson" | "application/jsonl" | "application/ndjson" if allow_ndjson => {
            Ok(MediaType::Ndjson)
        }
        _ => {
            let accepted = if allow_ndjson {
                "application/json or application/x-ndjson"
            } else {
                "application/json"
            };
            Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported content type",
                format!("content-type: {ct:?} is not accepted; send {accepted}"),
            ))
        }
    }
}

/// Reads the whole body, at most `limit` bytes before and after decoding.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit, "content-length"));
    }
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit, "body"))?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(raw),
        Some("gzip") | Some("x-gzip") => gunzip(&raw, limit),
        Some(other) => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "unsupported content encoding",
            format!("content-encoding: {other:?} is not accepted; send gzip or identity"),
        )),
    }
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
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            media_type(&h, true).unwrap_err().kind,
            ErrorKind::UnsupportedMediaType
        );
    }
}
