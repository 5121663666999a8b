//! The middleware in front of every route: API keys with scopes and
//! origins ([`crate::collect::access`]), and CORS on the ingest routes.
//!
//! | route class | routes | key | CORS |
//! |---|---|---|---|
//! | ingest | `POST /v2.0/events`, `/v2.0/events/batch`, `/v2.0/identify`, `/v2.0/users` | ingest or admin | yes |
//! | admin | every other `/v2…` route (alias look-ups, cohorts) | admin | no |
//! | public | `/healthz`, `/readyz`, `/metrics`, `GET /v2.0/sdk.js`, unknown paths | none | `sdk.js` only (`*`) |
//!
//! CORS on ingest routes: a preflight (`OPTIONS` with an `Origin`) is
//! answered from the allowed origins of the key in `?k=`, or of any ingest
//! key when the key travels in a header (a preflight carries none): the
//! origin echoed, `Vary: Origin`, the methods and headers a page may use,
//! and a `max-age`. Every answer on an ingest route to a request with an
//! `Origin` (errors included, so a page can read a 4xx or a 503) echoes the
//! origin and exposes `Retry-After` and `X-Request-Id`. The origin check
//! itself is on the real request: a disallowed origin gets 403.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::collect::access::{Access, Scope};
use crate::collect::api_error::{ApiError, ErrorKind};
use crate::metrics::METRICS;

/// How long a browser may cache a preflight answer (Chromium caps it at 2 h).
const PREFLIGHT_MAX_AGE: &str = "7200";

/// Which guard a path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ingest,
    Admin,
    Public,
}

/// The class of a request path.
pub fn classify(path: &str) -> Class {
    match path {
        "/v2.0/events" | "/v2.0/events/batch" | "/v2.0/identify" | "/v2.0/users" => Class::Ingest,
        "/v2.0/sdk.js" => Class::Public,
        p if p.starts_with("/v2.0/") || p.starts_with("/v2/") => Class::Admin,
        _ => Class::Public,
    }
}

/// The API key from `x-api-key` or the `k` query parameter.
fn presented_key(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get("x-api-key") {
        return v.to_str().ok().map(str::to_string);
    }
    query_key(req)
}

fn query_key(req: &Request) -> Option<String> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "k")
        .map(|(_, v)| v.into_owned())
}

fn origin_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether a request may go on to its handler.
pub fn check(
    access: &Access,
    class: Class,
    key: Option<&str>,
    origin: Option<&str>,
) -> Result<(), ApiError> {
    if access.is_open() || class == Class::Public {
        return Ok(());
    }
    let Some(key) = key.and_then(|k| access.find(k)) else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "a valid API key is required",
            "x-api-key header or k query parameter: missing or not a valid key",
        ));
    };
    if class == Class::Admin && key.scope == Scope::Ingest {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "this key may only send events",
            "x-api-key: an ingest key cannot use this route; use an admin key",
        ));
    }
    if let Some(origin) = origin.filter(|o| !key.allows_origin(o)) {
        let shown: String = origin.chars().take(100).collect();
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "this origin may not use this key",
            format!("origin: {shown:?} is not among the key's allowed origins"),
        ));
    }
    Ok(())
}

/// The middleware.
pub async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let class = classify(req.uri().path());
    let origin = origin_of(req.headers());
    if req.method() == Method::OPTIONS && class == Class::Ingest {
        return preflight(&st.access, origin.as_deref(), query_key(&req).as_deref());
    }
    let sdk = req.uri().path() == "/v2.0/sdk.js";
    let verdict = rate_limit(&st, class, &req).and_then(|()| {
        check(
            &st.access,
            class,
            presented_key(&req).as_deref(),
            origin.as_deref(),
        )
    });
    let mut resp = match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    match (class, origin) {
        (Class::Ingest, Some(origin)) => allow_origin(resp.headers_mut(), &origin),
        _ if sdk => {
            resp.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        _ => {}
    }
    resp
}

/// The per-client rate limit, on every route but the public ones.
fn rate_limit(st: &AppState, class: Class, req: &Request) -> Result<(), ApiError> {
    let (Some(limiter), false) = (&st.rate_limit, class == Class::Public) else {
        return Ok(());
    };
    let peer = req
        .extensions()
        .get::<crate::collect::listener::PeerAddr>()
        .map(|p| p.0.ip());
    let Some(client) = limiter.client(peer, req.headers()) else {
        return Ok(());
    };
    limiter.check(client).map_err(|wait| {
        METRICS.http_rate_limited.inc();
        ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                ErrorKind::TooManyRequests,
                "too many requests from this client",
                "rate_limit: slow down and retry after Retry-After seconds",
            )
        }
    })
}

/// CORS headers of a real answer to `origin`.
fn allow_origin(h: &mut HeaderMap, origin: &str) {
    let Ok(v) = HeaderValue::from_str(origin) else {
        return;
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After, X-Request-Id"),
    );
}

/// Answers a CORS preflight on an ingest route.
fn preflight(access: &Access, origin: Option<&str>, key: Option<&str>) -> Response {
    let Some(origin) = origin else {
        return ApiError::new(
            ErrorKind::MethodNotAllowed,
            "method not allowed",
            "method: OPTIONS is only a CORS preflight (with an Origin header)",
        )
        .into_response();
    };
    let allowed = match key.and_then(|k| access.find(k)) {
        Some(k) => k.allows_origin(origin),
        None => access.any_ingest_allows(origin),
    };
    if !allowed {
        let mut resp = ApiError::new(
            ErrorKind::Forbidden,
            "this origin may not send events here",
            "origin: not among the allowed origins of any ingest key",
        )
        .into_response();
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
        return resp;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    allow_origin(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, content-encoding, x-api-key"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::access::{ApiKey, OriginPattern};
    use crate::secret::Secret;

    fn access() -> Access {
        Access::new(vec![
            ApiKey {
                secret: Secret("pk".into()),
                scope: Scope::Ingest,
                origins: vec![OriginPattern::parse("https://news.example").unwrap()],
            },
            ApiKey {
                secret: Secret("sk".into()),
                scope: Scope::Admin,
                origins: vec![],
            },
        ])
    }

    #[test]
    fn scopes_and_origins() {
        let a = access();
        let status = |class, key, origin| {
            check(&a, class, key, origin)
                .err()
                .map(|e| e.kind.http_status())
        };
        assert_eq!(status(Class::Ingest, Some("pk"), None), None);
        assert_eq!(
            status(Class::Ingest, Some("pk"), Some("https://news.example")),
            None
        );
        assert_eq!(
            status(Class::Ingest, Some("pk"), Some("https://evil.example")),
            Some(403)
        );
        assert_eq!(status(Class::Admin, Some("pk"), None), Some(403));
        assert_eq!(status(Class::Admin, Some("sk"), None), None);
        assert_eq!(
            status(Class::Admin, Some("sk"), Some("https://news.example")),
            Some(403)
        );
        assert_eq!(status(Class::Ingest, Some("nope"), None), Some(401));
        assert_eq!(status(Class::Ingest, None, None), Some(401));
        assert_eq!(status(Class::Public, None, None), None);
        assert_eq!(classify("/v2.0/users/abc/aliases"), Class::Admin);
        assert_eq!(classify("/v2/cohorts"), Class::Admin);
        assert_eq!(classify("/v2.0/users"), Class::Ingest);
        assert_eq!(classify("/v2.0/sdk.js"), Class::Public);
    }

    #[test]
    fn preflight_answers_from_the_keys_origins() {
        let a = access();
        let ok = preflight(&a, Some("https://news.example"), None);
        assert_eq!(ok.status(), 204);
        let h = ok.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://news.example"
        );
        assert_eq!(h[header::VARY], "Origin");
        assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("x-api-key"));
        assert!(h.contains_key(header::ACCESS_CONTROL_MAX_AGE));
        assert_eq!(
            preflight(&a, Some("https://evil.example"), None).status(),
            403
        );
        assert_eq!(
            preflight(&a, Some("https://news.example"), Some("sk")).status(),
            403
        );
        assert_eq!(preflight(&a, None, None).status(), 405);
    }
}
