//! `POST/GET /v2/cohorts`, `GET/PATCH/DELETE /v2/cohorts/{id}`, through
//! the [`CohortApi`](crate::collect::backend::CohortApi) of the running
//! mode; every change makes a new `segment` snapshot due.

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
use crate::state::cohorts::{CohortError, CohortInput};

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
        // reopened and the next attempt can succeed. So is losing a race
        // with a concurrent change (cluster mode).
        CohortError::Db(_) | CohortError::Conflict => {
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

/// Renders a store call's result.
fn render<T: serde::Serialize>(status: StatusCode, result: Result<T, CohortError>) -> Response {
    match result {
        Ok(v) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&v).expect("serialises"),
        )
            .into_response(),
        Err(e) => to_api(e).into_response(),
    }
}

pub async fn create(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match input(&st, &headers, body).await {
        Ok(inp) => render(StatusCode::CREATED, st.cohorts.create(inp, now_ms()).await),
        Err(e) => e.into_response(),
    }
}

pub async fn list(State(st): State<Arc<AppState>>) -> Response {
    render(StatusCode::OK, st.cohorts.list().await)
}

pub async fn get_one(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match parse_id(&id) {
        Ok(id) => render(StatusCode::OK, st.cohorts.get(id).await),
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
        Ok(inp) => render(StatusCode::OK, st.cohorts.patch(id, inp, now_ms()).await),
        Err(e) => e.into_response(),
    }
}

pub async fn delete(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match parse_id(&id) {
        Ok(id) => render(StatusCode::OK, st.cohorts.delete(id).await),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_and_conflicts_are_retryable_503s() {
        for e in [CohortError::Db("disk full".into()), CohortError::Conflict] {
            let shown = e.to_string();
            let api = to_api(e);
            assert_eq!(api.kind, ErrorKind::Unavailable);
            assert_eq!(api.retry_after, Some(5));
            assert_eq!(api.cause, shown);
        }
        let conflict = to_api(CohortError::Conflict);
        assert_eq!(conflict.cause, "the cohort was changed concurrently; retry");
        let taken = to_api(CohortError::DuplicateName("a".into()));
        assert_eq!(taken.kind, ErrorKind::Conflict);
    }
}
