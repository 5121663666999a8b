//! `GET /v2.0/sdk.js`: the browser SDK (`sdk/web/dist/hivestream.min.js`,
//! embedded in the binary), with an `ETag` of its content, revalidated
//! hourly by caches, and `Access-Control-Allow-Origin: *` (a module script
//! from another origin is fetched with CORS).

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The SDK as served.
pub const SDK_JS: &[u8] = include_bytes!("../../../../../sdk/web/dist/hivestream.min.js");

fn etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(SDK_JS)))
}

pub async fn sdk(headers: HeaderMap) -> Response {
    let tag = etag();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, SDK_JS).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(header::ETAG, HeaderValue::from_static(tag));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600, stale-while-revalidate=86400"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sdk_is_an_es_module() {
        let text = std::str::from_utf8(SDK_JS).unwrap();
        assert!(text.contains("export function init("), "exports init");
        assert!(SDK_JS.len() < 10 * 1024, "a few KiB minified");
        assert!(etag().starts_with('"') && etag().len() == 18);
    }
}
