//! Event validation and the `events` output line.
//!
//! A body is parsed once into [`RawEvent`], whose fields are still raw JSON
//! slices; each field is then checked on its own so an error names the field
//! and says why (`segments[2]: expected an integer, got 1.5`). `properties`
//! is never turned into a tree: it is checked to be an object and copied into
//! the output line with insignificant whitespace removed, which keeps the
//! output one line per record and costs one pass over the bytes.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::clock::write_rfc3339_ms;
use crate::collect::api_error::{ApiError, ErrorKind};
use crate::collect::json_scan::{measure, Scan};

/// The fields of an `events` line, in the contract's order (every one
/// always present).
pub const FIELDS: [&str; 9] = [
    "event_id",
    "time",
    "name",
    "user_id",
    "session_id",
    "view_id",
    "segments",
    "cohorts",
    "properties",
];

/// Largest `properties` object, measured without insignificant whitespace.
pub const MAX_PROPERTIES_BYTES: usize = 950 * 1024;
/// Longest event name.
pub const MAX_NAME_LEN: usize = 128;
/// Deepest nesting of arrays and objects in `properties` (the object itself
/// is level 1). serde_json does not bound raw values, so we do.
pub const MAX_DEPTH: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    #[serde(borrow)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow)]
    aliases: Option<&'a RawValue>,
    #[serde(borrow)]
    session_id: Option<&'a RawValue>,
    #[serde(borrow)]
    view_id: Option<&'a RawValue>,
    #[serde(borrow)]
    segments: Option<&'a RawValue>,
    #[serde(borrow)]
    cohorts: Option<&'a RawValue>,
    #[serde(borrow)]
    properties: Option<&'a RawValue>,
}

/// An identity alias: `{priority, tag, id}`; priority 0 is the highest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    pub priority: i64,
    pub tag: String,
    pub id: String,
}

/// Who an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(Uuid),
    /// Resolved to a user id by the identity store before the event is stored.
    Aliases(Vec<Alias>),
}

/// A validated event, borrowing `properties` from the request body.
#[derive(Debug)]
pub struct ValidEvent<'a> {
    /// The client's id for the event (for deduplicated retries), if given.
    pub event_id: Option<Uuid>,
    pub name: String,
    pub user: UserRef,
    pub session_id: Option<Uuid>,
    pub view_id: Option<Uuid>,
    pub segments: Vec<i64>,
    pub cohorts: Vec<String>,
    properties: Option<&'a RawValue>,
}

/// Parses and validates one event object.
pub fn parse_event(body: &[u8]) -> Result<ValidEvent<'_>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::new(
            ErrorKind::InvalidJson,
            "the body is not a JSON object",
            "body: expected a JSON object",
        ));
    }
    let raw: RawEvent = serde_json::from_slice(body).map_err(json_error)?;
    let name: String = required(raw.name, "name", "a string")?;
    check_name(&name)?;
    let user = match (raw.user_id, raw.aliases) {
        (Some(id), _) => UserRef::Id(parse_uuid(id, "user_id")?),
        (None, Some(aliases)) => UserRef::Aliases(parse_aliases(aliases)?),
        (None, None) => return Err(ApiError::field("user_id", "required (or give `aliases`)")),
    };
    Ok(ValidEvent {
        event_id: raw
            .event_id
            .map(|r| parse_uuid(r, "event_id"))
            .transpose()?,
        name,
        user,
        session_id: raw
            .session_id
            .map(|r| parse_uuid(r, "session_id"))
            .transpose()?,
        view_id: raw.view_id.map(|r| parse_uuid(r, "view_id")).transpose()?,
        segments: parse_array(raw.segments, "segments", "an integer")?,
        cohorts: parse_array(raw.cohorts, "cohorts", "a string")?,
        properties: raw.properties.map(check_properties).transpose()?,
    })
}

/// Maps a serde error to the envelope: unknown or duplicate fields are
/// validation errors; anything else is malformed JSON.
pub(crate) fn json_error(e: serde_json::Error) -> ApiError {
    let msg = e.to_string();
    if e.is_data() {
        let cause = msg.split(" at line ").next().unwrap_or(&msg);
        return ApiError::new(
            ErrorKind::Validation,
            "the request failed validation",
            cause,
        );
    }
    ApiError::new(ErrorKind::InvalidJson, "the body is not valid JSON", msg)
}

fn required<T: DeserializeOwned>(
    raw: Option<&RawValue>,
    field: &str,
    what: &str,
) -> Result<T, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::field(field, "required"))?;
    typed(raw, field, what)
}

fn typed<T: DeserializeOwned>(raw: &RawValue, field: &str, what: &str) -> Result<T, ApiError> {
    serde_json::from_str(raw.get())
        .map_err(|_| ApiError::field(field, format!("expected {what}, got {}", preview(raw))))
}

/// A short excerpt of a raw value for error messages.
fn preview(raw: &RawValue) -> String {
    let s = raw.get();
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "name",
            "must be 1 to 128 characters of a-z, A-Z, 0-9 and _",
        ))
    }
}

pub(crate) fn parse_uuid(raw: &RawValue, field: &str) -> Result<Uuid, ApiError> {
    let s: String = typed(raw, field, "a UUID string")?;
    Uuid::try_parse(&s)
        .map_err(|_| ApiError::field(field, format!("{} is not a UUID", preview(raw))))
}

fn parse_array<T: DeserializeOwned>(
    raw: Option<&RawValue>,
    field: &str,
    what: &str,
) -> Result<Vec<T>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    // The common case, a valid array, in one pass; item by item (to name
    // the bad one) only when that fails.
    if let Ok(items) = serde_json::from_str(raw.get()) {
        return Ok(items);
    }
    let items: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| ApiError::field(field, format!("expected an array, got {}", preview(raw))))?;
    for (i, item) in items.iter().enumerate() {
        typed::<T>(item, &format!("{field}[{i}]"), what)?;
    }
    Err(ApiError::field(
        field,
        format!("expected an array of {what}s"),
    ))
}

/// Parses a non-empty alias list.
pub(crate) fn parse_aliases(raw: &RawValue) -> Result<Vec<Alias>, ApiError> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| {
        ApiError::field(
            "aliases",
            format!("expected an array, got {}", preview(raw)),
        )
    })?;
    if items.is_empty() {
        return Err(ApiError::field("aliases", "must not be empty"));
    }
    let mut aliases = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("aliases[{i}]");
        let alias: Alias = serde_json::from_str(item.get()).map_err(|e| {
            let why = e.to_string();
            ApiError::field(&field, why.split(" at line ").next().unwrap_or(&why))
        })?;
        check_alias(&alias, &field)?;
        aliases.push(alias);
    }
    Ok(aliases)
}

fn check_alias(alias: &Alias, field: &str) -> Result<(), ApiError> {
    if alias.tag.is_empty() || alias.tag.len() > 128 || alias.tag.chars().any(char::is_control) {
        return Err(ApiError::field(
            &format!("{field}.tag"),
            "must be 1 to 128 characters, no control characters",
        ));
    }
    if alias.id.is_empty() || alias.id.len() > 1024 || alias.id.chars().any(char::is_control) {
        return Err(ApiError::field(
            &format!("{field}.id"),
            "must be 1 to 1024 characters, no control characters",
        ));
    }
    if alias.priority < 0 {
        return Err(ApiError::field(
            &format!("{field}.priority"),
            "must be 0 (highest) or more",
        ));
    }
    Ok(())
}

fn check_properties(raw: &RawValue) -> Result<&RawValue, ApiError> {
    if !raw.get().starts_with('{') {
        return Err(ApiError::field(
            "properties",
            format!("expected an object, got {}", preview(raw)),
        ));
    }
    let Scan {
        len,
        depth,
        problem,
    } = measure(raw.get());
    if let Some(why) = problem {
        return Err(ApiError::field("properties", why));
    }
    if depth > MAX_DEPTH {
        return Err(ApiError::field(
            "properties",
            format!("nested {depth} levels deep; at most {MAX_DEPTH}"),
        ));
    }
    if len > MAX_PROPERTIES_BYTES {
        return Err(ApiError::new(
            ErrorKind::TooLarge,
            "the event is too large",
            format!("properties: {len} bytes; at most {MAX_PROPERTIES_BYTES}"),
        ));
    }
    Ok(raw)
}

pub use crate::collect::json_scan::minify_into;

/// Appends a UUID in lowercase hyphenated form, quoted.
pub fn write_uuid(id: &Uuid, out: &mut Vec<u8>) {
    let mut buf = [0u8; 36];
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

fn write_opt_uuid(id: &Option<Uuid>, out: &mut Vec<u8>) {
    match id {
        Some(id) => write_uuid(id, out),
        None => out.extend_from_slice(b"null"),
    }
}

impl ValidEvent<'_> {
    /// Appends the stored event as one JSON line (no trailing newline), with
    /// the contract's fields in the contract's order. Returns the offset in
    /// `out` of the 36 characters of `user_id`.
    pub fn write_line(
        &self,
        event_id: &Uuid,
        time_ms: i64,
        user_id: &Uuid,
        out: &mut Vec<u8>,
    ) -> usize {
        out.extend_from_slice(b"{\"event_id\":");
        write_uuid(event_id, out);
        out.extend_from_slice(b",\"time\":\"");
        write_rfc3339_ms(time_ms, out);
        out.extend_from_slice(b"\",\"name\":\"");
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(b"\",\"user_id\":");
        let user_offset = out.len() + 1;
        write_uuid(user_id, out);
        out.extend_from_slice(b",\"session_id\":");
        write_opt_uuid(&self.session_id, out);
        out.extend_from_slice(b",\"view_id\":");
        write_opt_uuid(&self.view_id, out);
        out.extend_from_slice(b",\"segments\":");
        serde_json::to_writer(&mut *out, &self.segments).expect("ints serialise");
        out.extend_from_slice(b",\"cohorts\":");
        serde_json::to_writer(&mut *out, &self.cohorts).expect("strings serialise");
        out.extend_from_slice(b",\"properties\":");
        match self.properties {
            Some(p) => minify_into(p.get(), out),
            None => out.extend_from_slice(b"{}"),
        }
        out.push(b'}');
        user_offset
    }
}

/// The `event_id` and `user_id` of a stored `events` line (read back from
/// the log): both sit at fixed places, `event_id` first and `user_id` after
/// a name that needs no escaping.
pub fn line_ids(line: &[u8]) -> Option<(Uuid, Uuid)> {
    const ID_AT: usize = b"{\"event_id\":\"".len();
    let id = std::str::from_utf8(line.get(ID_AT..ID_AT + 36)?).ok()?;
    let key = b"\"user_id\":\"";
    let at = memchr::memmem::find(line, key)? + key.len();
    let user = std::str::from_utf8(line.get(at..at + 36)?).ok()?;
    Some((Uuid::try_parse(id).ok()?, Uuid::try_parse(user).ok()?))
}

#[cfg(test)]
mod tests;
