//! The HTTP API: routes, API-key auth, bounded (optionally gzip) bodies and
//! the error envelope. Handlers never panic on input: every failure is an
//! [`ApiError`] rendered as the contract's envelope with its status.

mod body;
mod cohorts;
mod events;
mod identity;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use body::BodyLimits;

use crate::collect::api_error::{ApiError, ErrorKind};
use crate::collect::backend::{CohortApi, Ingest};
use crate::config::Secret;
use crate::metrics::METRICS;

/// What handlers share.
pub struct AppState {
    pub ingest: Arc<dyn Ingest>,
    pub cohorts: Arc<dyn CohortApi>,
    pub api_keys: Vec<Secret>,
    pub bodies: BodyLimits,
    pub max_batch_items: usize,
}

/// Renders an error as the envelope with a fresh request id.
pub fn error_response(err: &ApiError) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let status =
        StatusCode::from_u16(err.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status.as_u16() {
        503 => METRICS.http_unavailable.inc(),
        500 => METRICS.http_server_errors.inc(),
        _ => METRICS.http_client_errors.inc(),
    }
    let mut resp = (status, err.envelope_json(&request_id)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    if let Some(secs) = err.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

/// Builds the axum router.
pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v2.0/events", post(events::create))
        .route("/v2.0/events/batch", post(events::batch))
        .route("/v2.0/users", post(identity::new_user))
        .route("/v2.0/identify", post(identity::identify))
        .route("/v2.0/users/{id}/aliases", get(identity::user_aliases))
        .route("/v2/cohorts", post(cohorts::create).get(cohorts::list))
        .route(
            "/v2/cohorts/{id}",
            get(cohorts::get_one)
                .patch(cohorts::patch)
                .delete(cohorts::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_key,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

/// The routes of a process that does not collect (a cluster router
/// worker): `/healthz` and `/metrics`; everything else is 404.
pub fn ops_app() -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn count_requests(req: Request, next: Next) -> Response {
    METRICS.http_requests.inc();
    next.run(req).await
}

/// Compares without an early exit, so timing does not reveal a key prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The API key from `x-api-key` or the `k` query parameter.
fn presented_key(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get("x-api-key") {
        return v.to_str().ok().map(str::to_string);
    }
    let query = req.uri().query()?;
    form_urlencoded_pairs(query)
        .find(|(k, _)| k == "k")
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Some((percent_decode(k)?, percent_decode(v)?))
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn require_key(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if st.api_keys.is_empty() {
        return next.run(req).await;
    }
    let ok = presented_key(&req).is_some_and(|k| {
        st.api_keys
            .iter()
            .any(|s| constant_time_eq(s.0.as_bytes(), k.as_bytes()))
    });
    if !ok {
        let cause = "x-api-key header or k query parameter: missing or not a valid key";
        return ApiError::new(
            ErrorKind::Unauthorized,
            "a valid API key is required",
            cause,
        )
        .into_response();
    }
    next.run(req).await
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
        .into_response()
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    if let Err((message, cause)) = st.ingest.readiness() {
        return ApiError::unavailable(message, cause, 5).into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ready\"}",
    )
        .into_response()
}

async fn metrics() -> Response {
    crate::metrics::refresh_process_gauges();
    let ct = "text/plain; version=0.0.4; charset=utf-8";
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, ct)],
        METRICS.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        "no such route",
        "path: not an API route",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        "method not allowed",
        "method: this route does not accept it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_compare_and_query_decoding() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let pairs: Vec<_> = form_urlencoded_pairs("x=1&k=a%2Bb+c&bad=%zz").collect();
        assert_eq!(
            pairs,
            vec![("x".into(), "1".into()), ("k".into(), "a+b c".into())]
        );
    }
}
