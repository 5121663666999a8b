//! `POST /v2.0/events` and `POST /v2.0/events/batch`.
//!
//! A batch is split into items first (a JSON array of raw values, or NDJSON
//! lines); each item is validated on its own, the valid ones are appended to
//! the WAL in one group, and the response lists every item's outcome. A bad
//! item never drops a good one; if the WAL write itself fails, nothing of the
//! request is acknowledged (503).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::body::{beacon_media, is_text_plain, media_type, read_body, MediaType};
use super::AppState;
use crate::clock::now_ms;
use crate::collect::api_error::{ApiError, ErrorBody, ErrorKind};
use crate::collect::event::{json_error, parse_event, UserRef, ValidEvent};
use crate::log::ingest::{Batch, CommitError};
use crate::log::record::{DataType, Record};
use crate::metrics::METRICS;

/// Maps a commit failure to the client's answer.
pub fn commit_error(e: CommitError) -> ApiError {
    match e {
        CommitError::BacklogFull(_) => {
            ApiError::unavailable("the local backlog is full", e.to_string(), 5)
        }
        CommitError::DiskLow(_) => {
            ApiError::unavailable("the data disk is almost full", e.to_string(), 5)
        }
        CommitError::Io(_) | CommitError::Identity(_) => {
            ApiError::unavailable("the event could not be stored", e.to_string(), 5)
        }
        CommitError::Closed => {
            ApiError::unavailable("the server is shutting down", e.to_string(), 5)
        }
        CommitError::LogUnavailable(_) => {
            ApiError::unavailable("the event could not be stored", e.to_string(), 2)
        }
        CommitError::LogFull(_) => {
            ApiError::unavailable("the cluster's backlog is full", e.to_string(), 5)
        }
        CommitError::TooLarge(_) => ApiError::new(
            ErrorKind::TooLarge,
            "the request is too large for one log message",
            format!("body: {e}"),
        ),
    }
}

/// Encodes a valid event into its stored line and adds it to `batch`; an
/// alias-only event gets its user from the committer, and an event with
/// the client's own id is checked for being a retry. Returns the event id
/// and where the user id sits in `line`.
pub(crate) fn encode(
    ev: ValidEvent<'_>,
    time_ms: i64,
    line: &mut Vec<u8>,
    batch: &mut Batch,
) -> (Uuid, usize) {
    let client_id = ev.event_id;
    let event_id = client_id.unwrap_or_else(Uuid::new_v4);
    line.clear();
    let user = match &ev.user {
        UserRef::Id(id) => *id,
        UserRef::Aliases(_) => Uuid::nil(),
    };
    let user_offset = ev.write_line(&event_id, time_ms, &user, line);
    let rec = Record {
        data_type: DataType::Events,
        time_ms,
        line,
    };
    match ev.user {
        UserRef::Id(_) => batch.push(&rec),
        UserRef::Aliases(aliases) => batch.push_resolving(&rec, user_offset, aliases),
    }
    if let Some(id) = client_id {
        batch.mark_client_id(id);
    }
    (event_id, user_offset)
}

/// Writes the user the committer resolved into a stored line (the response
/// of an alias-only event).
fn patch_user(line: &mut [u8], user_offset: usize, user: &Uuid) {
    let mut hex = [0u8; 36];
    user.hyphenated().encode_lower(&mut hex);
    line[user_offset..user_offset + 36].copy_from_slice(&hex);
}

pub async fn create(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match create_inner(&st, &headers, body).await {
        Ok(line) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            line,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn create_inner(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    media_type(headers, false)?;
    let body = read_body(headers, body, &st.bodies).await?;
    let ev = parse_event(&body).inspect_err(|_| METRICS.events_rejected.inc())?;
    let time_ms = now_ms();
    let mut line = Vec::with_capacity(body.len() + 160);
    let mut batch = Batch::default();
    let (event_id, user_offset) = encode(ev, time_ms, &mut line, &mut batch);
    let committed = st.ingest.append(batch).await.map_err(commit_error)?;
    if let Some(first) = committed.duplicate(0) {
        // A retry: answer with the event as stored the first time.
        let ev = parse_event(&body)?;
        line.clear();
        ev.write_line(&event_id, first.time_ms, &first.user, &mut line);
        METRICS.events_deduplicated.inc();
        METRICS.events_accepted.inc();
        return Ok(line);
    }
    if let Some(user) = committed.users.first() {
        patch_user(&mut line, user_offset, user);
    }
    METRICS.events_accepted.inc();
    Ok(line)
}

#[derive(Serialize)]
struct ItemResult<'a> {
    index: usize,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    /// The user chosen for an event known only by its aliases.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody<'a>>,
}

#[derive(Serialize)]
struct BatchResponse<'a> {
    accepted: usize,
    rejected: usize,
    results: Vec<ItemResult<'a>>,
}

/// Splits a batch body into items.
fn split_items(body: &[u8], media: MediaType) -> Result<Vec<&[u8]>, ApiError> {
    match media {
        MediaType::Json => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'[') {
                return Err(ApiError::new(ErrorKind::InvalidJson, "the body is not a JSON array", "body: expected a JSON array of events (or NDJSON with Content-Type: application/x-ndjson)"));
            }
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(json_error)?;
            Ok(items.into_iter().map(|r| r.get().as_bytes()).collect())
        }
        MediaType::Ndjson => Ok(body
            .split(|&b| b == b'\n')
            .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
            .collect()),
    }
}

pub async fn batch(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match batch_inner(&st, &headers, body).await {
        Ok(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn batch_inner(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let mut media = media_type(headers, true)?;
    let body = read_body(headers, body, &st.bodies).await?;
    if is_text_plain(headers) {
        media = beacon_media(&body);
    }
    let items = split_items(&body, media)?;
    if items.is_empty() {
        return Err(ApiError::new(
            ErrorKind::BadBatch,
            "the batch is empty",
            "body: send at least one event",
        ));
    }
    if items.len() > st.max_batch_items {
        let cause = format!(
            "body: {} events; at most {} per batch",
            items.len(),
            st.max_batch_items
        );
        return Err(ApiError::new(
            ErrorKind::BadBatch,
            "the batch has too many events",
            cause,
        ));
    }
    let time_ms = now_ms();
    let mut batch = Batch::default();
    let mut line = Vec::with_capacity(1024);
    let mut outcomes: Vec<Result<Accepted, ApiError>> = Vec::with_capacity(items.len());
    for item in &items {
        let outcome = parse_event(item).map(|ev| {
            let by_aliases = matches!(ev.user, UserRef::Aliases(_));
            let (event_id, _) = encode(ev, time_ms, &mut line, &mut batch);
            Accepted {
                event_id,
                user: by_aliases.then(Uuid::nil),
            }
        });
        outcomes.push(outcome);
    }
    if !batch.is_empty() {
        let committed = st.ingest.append(batch).await.map_err(commit_error)?;
        METRICS
            .events_deduplicated
            .add(committed.duplicates.len() as u64);
        // The users of alias-only events, in the order they were pushed.
        let mut users = committed.users.into_iter();
        for a in outcomes.iter_mut().flatten() {
            if let Some(u) = a.user.as_mut() {
                *u = users.next().unwrap_or_default();
            }
        }
    }
    Ok(batch_response(&outcomes))
}

/// An item stored (or recognised as a retry).
struct Accepted {
    event_id: Uuid,
    /// For an event known only by aliases, the user it was given.
    user: Option<Uuid>,
}

fn batch_response(outcomes: &[Result<Accepted, ApiError>]) -> Vec<u8> {
    let results: Vec<ItemResult> = outcomes
        .iter()
        .enumerate()
        .map(|(index, o)| match o {
            Ok(a) => ItemResult {
                index,
                status: 201,
                event_id: Some(a.event_id.to_string()),
                user_id: a.user.map(|u| u.to_string()),
                error: None,
            },
            Err(e) => ItemResult {
                index,
                status: e.kind.http_status(),
                event_id: None,
                user_id: None,
                error: Some(e.body()),
            },
        })
        .collect();
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    METRICS.events_accepted.add(accepted as u64);
    METRICS
        .events_rejected
        .add((outcomes.len() - accepted) as u64);
    let resp = BatchResponse {
        accepted,
        rejected: outcomes.len() - accepted,
        results,
    };
    serde_json::to_vec(&resp).expect("batch response serialises")
}
