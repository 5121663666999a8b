//! `POST /v2.0/users`, `POST /v2.0/identify`, `GET /v2.0/users/{id}/aliases`.
//!
//! An identify is a batch of `sync_aliases` records, one per distinct alias;
//! the committer applies them to the identity index after they are durable,
//! so the link exists exactly when its record does.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::body::{media_type, read_body};
use super::events::commit_error;
use super::AppState;
use crate::clock::now_ms;
use crate::collect::api_error::{ApiError, ErrorKind};
use crate::collect::event::{json_error, parse_aliases, parse_uuid};
use crate::log::ingest::Batch;
use crate::log::record::{DataType, Record};
use crate::state::identity::{write_sync_line, Link};

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub async fn new_user() -> Response {
    json(StatusCode::OK, serde_json::json!({ "id": Uuid::new_v4() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentify<'a> {
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow)]
    aliases: Option<&'a RawValue>,
}

/// Parses an identify body into its links (first occurrence of an alias wins).
fn parse_identify(body: &[u8]) -> Result<(Uuid, Vec<Link>), ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            ErrorKind::InvalidJson,
            "the body is not a JSON object",
            "body: expected a JSON object",
        ));
    }
    let raw: RawIdentify = serde_json::from_slice(body).map_err(json_error)?;
    let user = parse_uuid(
        raw.user_id
            .ok_or_else(|| ApiError::field("user_id", "required"))?,
        "user_id",
    )?;
    let aliases = parse_aliases(
        raw.aliases
            .ok_or_else(|| ApiError::field("aliases", "required"))?,
    )?;
    let mut links: Vec<Link> = Vec::with_capacity(aliases.len());
    for a in aliases {
        if !links.iter().any(|l| l.tag == a.tag && l.id == a.id) {
            links.push(Link {
                user,
                tag: a.tag,
                id: a.id,
                priority: a.priority,
            });
        }
    }
    Ok((user, links))
}

pub async fn identify(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        media_type(&headers, false)?;
        let body = read_body(&headers, body, &st.bodies).await?;
        let (user, links) = parse_identify(&body)?;
        let time_ms = now_ms();
        let mut batch = Batch::default();
        let mut line = Vec::with_capacity(160);
        for link in &links {
            line.clear();
            write_sync_line(time_ms, link, &mut line);
            batch.push(&Record {
                data_type: DataType::SyncAliases,
                time_ms,
                line: &line,
            });
        }
        st.ingest.append(batch).await.map_err(commit_error)?;
        Ok::<_, ApiError>(user)
    }
    .await;
    match result {
        Ok(user) => json(StatusCode::OK, serde_json::json!({ "user_id": user })),
        Err(e) => e.into_response(),
    }
}

pub async fn user_aliases(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Ok(user) = Uuid::try_parse(&id) else {
        return ApiError::field(
            "id",
            format!(
                "{:?} is not a UUID",
                id.chars().take(40).collect::<String>()
            ),
        )
        .into_response();
    };
    match st.ingest.aliases_of(user).await {
        Ok(aliases) => {
            let list: Vec<_> = aliases
                .into_iter()
                .map(|(tag, id, _)| serde_json::json!({ "tag": tag, "id": id, "permutive_id": user }))
                .collect();
            json(StatusCode::OK, serde_json::Value::Array(list))
        }
        Err(e) => ApiError::unavailable(
            "the identity index could not be read",
            format!("index: {e}"),
            5,
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_parsing() {
        let body = br#"{"user_id":"0b1e4c7c-1f53-4d8e-9a4e-7f1c2d3e4f50","aliases":[{"priority":0,"tag":"email","id":"a"},{"priority":1,"tag":"email","id":"a"},{"priority":1,"tag":"cookie","id":"c"}]}"#;
        let (user, links) = parse_identify(body).unwrap();
        assert_eq!(user.to_string(), "0b1e4c7c-1f53-4d8e-9a4e-7f1c2d3e4f50");
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].priority, 0);
        for (bad, cause) in [
            (&br#"{"aliases":[{"priority":0,"tag":"t","id":"i"}]}"#[..], "user_id: required"),
            (br#"{"user_id":"0b1e4c7c-1f53-4d8e-9a4e-7f1c2d3e4f50"}"#, "aliases: required"),
            (br#"{"user_id":"0b1e4c7c-1f53-4d8e-9a4e-7f1c2d3e4f50","aliases":[]}"#, "aliases: must not be empty"),
            (br#"{"user_id":"x","aliases":[{"priority":0,"tag":"t","id":"i"}]}"#, "user_id"),
            (br#"{"user_id":"0b1e4c7c-1f53-4d8e-9a4e-7f1c2d3e4f50","aliases":[{"priority":0,"tag":"t","id":"i"}],"x":1}"#, "unknown field `x`"),
        ] {
            let e = parse_identify(bad).unwrap_err();
            assert!(e.cause.contains(cause), "{}: {}", String::from_utf8_lossy(bad), e.cause);
        }
    }
}
