//! The HTTP API: routes, API-key auth, bounded (optionally gzip) bodies and
//! the error envelope. Handlers never panic on input: every failure is an
//! [`ApiError`] rendered as the contract's envelope with its status.

mod body;
mod cohorts;
mod events;
pub mod guard;
mod identity;
mod sdk;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

/// How a request's events become a [`crate::log::batch::Batch`], for the
/// committer's tests.
use crate::collect::access::Access;
use crate::collect::api_error::{ApiError, ErrorKind};
use crate::collect::backend::{CohortApi, Ingest};
use crate::collect::listener::PeerAddr;
use crate::metrics::METRICS;
pub use body::BodyLimits;

/// What handlers share.
pub struct AppState {
    pub ingest: Arc<dyn Ingest>,
    pub cohorts: Arc<dyn CohortApi>,
    pub access: Access,
    /// The per-client rate limit, if configured.
    pub rate_limit: Option<crate::collect::ratelimit::RateLimiter>,
    pub bodies: BodyLimits,
    pub max_batch_items: usize,
}

/// What [`count_requests`] logs about an error response: its request id
/// (also in the envelope and `x-request-id`), code and cause.
#[derive(Clone)]
struct ErrorLog {
    request_id: String,
    code: u16,
    cause: String,
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
    resp.extensions_mut().insert(ErrorLog {
        request_id,
        code: err.kind.code(),
        cause: err.cause.clone(),
    });
    resp
}

/// Text with its control characters escaped, so a cause quoting client
/// input cannot forge log lines in the text format (JSON escapes anyway).
struct Printable<'a>(&'a str);

impl std::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// One log line per error response, so a client's `request_id` leads to
/// it: 500 at error, 503 at warn, 429 at debug (they come in floods and
/// are counted in `/metrics`), other 4xx at info.
fn log_error(
    e: &ErrorLog,
    method: &axum::http::Method,
    route: &str,
    peer: Option<SocketAddr>,
    status: u16,
) {
    let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(target: "hivestream::http", $level, request_id = %e.request_id, status, code = e.code,
                %method, route, peer = %Printable(&peer), cause = %Printable(&e.cause), "error response")
        };
    }
    match status {
        503 => at!(tracing::Level::WARN),
        500.. => at!(tracing::Level::ERROR),
        429 => at!(tracing::Level::DEBUG),
        _ => at!(tracing::Level::INFO),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

/// What handlers share, built from the configuration and the mode's
/// backends.
pub fn state(
    cfg: &crate::config::Config,
    ingest: Arc<dyn Ingest>,
    cohorts: Arc<dyn CohortApi>,
) -> Arc<AppState> {
    Arc::new(AppState {
        ingest,
        cohorts,
        access: Access::new(cfg.keys.clone()),
        rate_limit: cfg
            .rate_limit
            .map(|r| crate::collect::ratelimit::RateLimiter::new(r, cfg.client_ip_header.clone())),
        bodies: BodyLimits::new(
            cfg.max_body_bytes,
            cfg.max_inflight_body_bytes,
            cfg.body_timeout,
        ),
        max_batch_items: cfg.max_batch_items,
    })
}

/// Builds the axum router.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
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
        .route("/v2.0/sdk.js", get(sdk::sdk))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::guard,
        ))
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
        .layer(middleware::from_fn(count_requests))
}

/// Counts every request and times it by route template (bounded labels:
/// the route table, or `unmatched`).
async fn count_requests(req: Request, next: Next) -> Response {
    METRICS.http_requests.inc();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().clone();
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    METRICS
        .http_request_seconds
        .observe(&route, started.elapsed().as_secs_f64());
    if let Some(e) = resp.extensions().get::<ErrorLog>() {
        log_error(e, &method, &route, peer, resp.status().as_u16());
    }
    resp
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
