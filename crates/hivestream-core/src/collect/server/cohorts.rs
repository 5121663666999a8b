//! `POST/GET /v2/cohorts`, `GET/PATCH/DELETE /v2/cohorts/{id}`. Store calls
//! run on the blocking pool (redb is synchronous); every change makes a new
//! `segment` snapshot due (see `cohorts`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::body::{media_type, read_body};
use super::AppState;
use crate::clock::now_ms;
use crate::collect::api_error::{ApiError, ErrorKind};
use crate::collect::event::json_error;
use crate::state::cohorts::{CohortError, CohortInput, CohortStore};

fn to_api(e: CohortError) -> ApiError {
    match e {
        CohortError::Invalid(field, why) => ApiError::field(field, why),
        CohortError::DuplicateName(_) => ApiError::new(
            ErrorKind::Conflict,
            "the cohort name is taken",
            format!("name: {e}"),
        ),
        CohortError::NotFound(_) => {
            ApiError::new(ErrorKind::NotFound, "no such cohort", format!("id: {e}"))
        }
        // Storage failures (a full disk, say) are transient: the index is
        // reopened and the next attempt can succeed.
        CohortError::Db(_) => {
            ApiError::unavailable("the cohort store could not be used", e.to_string(), 5)
        }
    }
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| {
        let shown: String = id.chars().take(40).collect();
        ApiError::new(
            ErrorKind::NotFound,
            "no such cohort",
            format!("id: {shown:?} is not a cohort id"),
        )
    })
}

async fn input(st: &AppState, headers: &HeaderMap, body: Body) -> Result<CohortInput, ApiError> {
    media_type(headers, false)?;
    let body = read_body(headers, body, &st.bodies).await?;
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            ErrorKind::InvalidJson,
            "the body is not a JSON object",
            "body: expected a JSON object",
        ));
    }
    serde_json::from_slice(&body).map_err(json_error)
}

/// Runs a store call on the blocking pool and renders its result.
async fn run<T: serde::Serialize + Send + 'static>(
    st: &AppState,
    status: StatusCode,
    f: impl FnOnce(&CohortStore) -> Result<T, CohortError> + Send + 'static,
) -> Response {
    let store = st.cohorts.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(v)) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&v).expect("serialises"),
        )
            .into_response(),
        Ok(Err(e)) => to_api(e).into_response(),
        Err(_) => ApiError::new(
            ErrorKind::Internal,
            "the cohort store failed",
            "store: task failed",
        )
        .into_response(),
    }
}

pub async fn create(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match input(&st, &headers, body).await {
        Ok(inp) => run(&st, StatusCode::CREATED, move |s| s.create(inp, now_ms())).await,
        Err(e) => e.into_response(),
    }
}

pub async fn list(State(st): State<Arc<AppState>>) -> Response {
    run(&st, StatusCode::OK, |s| s.list()).await
}

pub async fn get_one(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match parse_id(&id) {
        Ok(id) => run(&st, StatusCode::OK, move |s| s.get(&id)).await,
        Err(e) => e.into_response(),
    }
}

pub async fn patch(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match input(&st, &headers, body).await {
        Ok(inp) => run(&st, StatusCode::OK, move |s| s.patch(&id, inp, now_ms())).await,
        Err(e) => e.into_response(),
    }
}

pub async fn delete(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match parse_id(&id) {
        Ok(id) => run(&st, StatusCode::OK, move |s| s.delete(&id, now_ms())).await,
        Err(e) => e.into_response(),
    }
}
