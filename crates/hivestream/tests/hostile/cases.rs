//! The hostile requests and the answers they must get, by area: event
//! fields, transport (size, encoding, media type), batches, routes.

use std::io::Write;

use super::common::*;

pub const SID: &str = "5f0e8c1e-2a8b-4c54-9d7e-0a1b2c3d4e5f";
pub const NDJSON: (&str, &str) = ("content-type", "application/x-ndjson");

/// One hostile request and the answer it must get.
pub struct Case {
    pub what: &'static str,
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    pub code: u64,
}

pub fn case(
    what: &'static str,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: u64,
) -> Case {
    Case {
        what,
        method: "POST",
        path: path.to_string(),
        headers: vec![("content-type", "application/json".to_string())],
        body: body.into(),
        status,
        code,
    }
}

/// An event body with `field` set to the raw JSON `value`.
pub fn event_with(field: &str, value: &str) -> String {
    let mut v = serde_json::json!({"name": "Pageview", "user_id": UID});
    let raw = format!(r#"{{"x":{value}}}"#);
    let parsed: serde_json::Value = serde_json::from_str(&raw).unwrap();
    v[field] = parsed["x"].clone();
    v.to_string()
}

fn ev(body: &str, status: u16, code: u64, what: &'static str) -> Case {
    case(what, "/v2.0/events", body.as_bytes(), status, code)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn event_cases() -> Vec<Case> {
    let deep = format!(
        r#"{{"name":"a","user_id":"{UID}","properties":{}1{}}}"#,
        "{\"a\":".repeat(70),
        "}".repeat(70)
    );
    let very_deep = format!(
        r#"{{"name":"a","user_id":"{UID}","properties":{}}}"#,
        "[".repeat(100_000)
    );
    let big_props = format!(
        r#"{{"name":"a","user_id":"{UID}","properties":{{"s":"{}"}}}}"#,
        "x".repeat(960 * 1024)
    );
    let mut invalid_utf8 =
        format!(r#"{{"name":"a","user_id":"{UID}","properties":{{"s":""#).into_bytes();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(b"\"}}");
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend_from_slice(event_json(1).as_bytes());
    vec![
        ev("{", 400, 1001, "truncated JSON"),
        ev("", 400, 1001, "empty body"),
        ev("[]", 400, 1001, "array instead of object"),
        ev("\"Pageview\"", 400, 1001, "string instead of object"),
        ev("null", 400, 1001, "null body"),
        case(
            "invalid UTF-8 in a string",
            "/v2.0/events",
            invalid_utf8,
            400,
            1001,
        ),
        case(
            "byte order mark before the object",
            "/v2.0/events",
            bom,
            400,
            1001,
        ),
        ev(
            &format!("{} x", event_json(1)),
            400,
            1001,
            "trailing garbage",
        ),
        ev(
            &format!(r#"{{"name":"a","user_id":"{UID}","segments":[NaN]}}"#),
            400,
            1001,
            "NaN literal",
        ),
        ev(
            &very_deep,
            400,
            1001,
            "100,000 nested arrays (recursion limit)",
        ),
        ev(
            &format!(r#"{{"user_id":"{UID}"}}"#),
            400,
            1000,
            "name missing",
        ),
        ev(&event_with("name", "7"), 400, 1000, "name is a number"),
        ev(&event_with("name", "\"\""), 400, 1000, "name empty"),
        ev(
            &event_with("name", &format!("\"{}\"", "a".repeat(129))),
            400,
            1000,
            "name of 129 characters",
        ),
        ev(
            &event_with("name", "\"Page view\""),
            400,
            1000,
            "name with a space",
        ),
        ev(
            &event_with("name", "\"Pagé\""),
            400,
            1000,
            "name with a non-ASCII letter",
        ),
        ev(
            &event_with("name", "\"../../etc\""),
            400,
            1000,
            "name with path characters",
        ),
        ev(
            &event_with("user_id", "\"not-a-uuid\""),
            400,
            1000,
            "user_id not a UUID",
        ),
        ev(&event_with("user_id", "12"), 400, 1000, "user_id a number"),
        ev(r#"{"name":"a"}"#, 400, 1000, "neither user_id nor aliases"),
        ev(r#"{"name":"a","aliases":[]}"#, 400, 1000, "aliases empty"),
        ev(
            r#"{"name":"a","aliases":{"tag":"t"}}"#,
            400,
            1000,
            "aliases not an array",
        ),
        ev(
            r#"{"name":"a","aliases":[{"priority":0,"id":"i"}]}"#,
            400,
            1000,
            "alias without tag",
        ),
        ev(
            r#"{"name":"a","aliases":[{"priority":-1,"tag":"t","id":"i"}]}"#,
            400,
            1000,
            "alias priority negative",
        ),
        ev(
            r#"{"name":"a","aliases":[{"priority":"0","tag":"t","id":"i"}]}"#,
            400,
            1000,
            "alias priority a string",
        ),
        ev(
            r#"{"name":"a","aliases":[{"priority":0,"tag":"t","id":"i","x":1}]}"#,
            400,
            1000,
            "alias unknown field",
        ),
        ev(
            &format!(
                r#"{{"name":"a","aliases":[{{"priority":0,"tag":"{}","id":"i"}}]}}"#,
                "t".repeat(129)
            ),
            400,
            1000,
            "alias tag too long",
        ),
        ev(
            r#"{"name":"a","aliases":[{"priority":0,"tag":"t","id":"a\u0000b"}]}"#,
            400,
            1000,
            "alias id with a NUL",
        ),
        ev(
            &event_with("session_id", "\"zzz\""),
            400,
            1000,
            "session_id not a UUID",
        ),
        ev(&event_with("view_id", "42"), 400, 1000, "view_id a number"),
        ev(
            &event_with("segments", "\"1,2\""),
            400,
            1000,
            "segments a string",
        ),
        ev(
            &event_with("segments", "[1, 2.5]"),
            400,
            1000,
            "segments with a float",
        ),
        ev(
            &event_with("segments", "[1, \"2\"]"),
            400,
            1000,
            "segments with a string",
        ),
        ev(
            &event_with("segments", "[99999999999999999999999]"),
            400,
            1000,
            "segment beyond i64",
        ),
        ev(
            &event_with("cohorts", "[1]"),
            400,
            1000,
            "cohorts with a number",
        ),
        ev(
            &event_with("properties", "[1]"),
            400,
            1000,
            "properties an array",
        ),
        ev(
            &event_with("properties", "\"x\""),
            400,
            1000,
            "properties a string",
        ),
        ev(&deep, 400, 1000, "properties 70 levels deep"),
        ev(&big_props, 413, 1300, "properties over 950 KiB"),
        ev(
            &event_with("event_id", "\"not-a-uuid\""),
            400,
            1000,
            "client event_id that is not a UUID",
        ),
        ev(
            &event_with("time", "\"2020-01-01T00:00:00Z\""),
            400,
            1000,
            "client sets time",
        ),
        ev(
            &format!(r#"{{"name":"a","name":"b","user_id":"{UID}"}}"#),
            400,
            1000,
            "duplicate field",
        ),
        ev(
            &event_with("__proto__", "{}"),
            400,
            1000,
            "unknown top-level field",
        ),
    ]
}

pub fn transport_cases(max_body: usize) -> Vec<Case> {
    let bomb = gzip(&vec![b' '; max_body + 1024]);
    let mut cases = vec![
        case(
            "body over max_body_bytes",
            "/v2.0/events",
            vec![b' '; max_body + 1],
            413,
            1300,
        ),
        case("gzip bomb over the limit", "/v2.0/events", bomb, 413, 1300),
        case(
            "gzip header but not gzip",
            "/v2.0/events",
            &b"not gzip at all"[..],
            400,
            1001,
        ),
        case(
            "unknown content-encoding",
            "/v2.0/events",
            event_json(1).into_bytes(),
            415,
            1400,
        ),
        case(
            "text/html",
            "/v2.0/events",
            event_json(1).into_bytes(),
            415,
            1400,
        ),
        case(
            "NDJSON to the single endpoint",
            "/v2.0/events",
            event_json(1).into_bytes(),
            415,
            1400,
        ),
        case(
            "form content type",
            "/v2.0/events",
            &b"name=a"[..],
            415,
            1400,
        ),
    ];
    cases[1].headers.push(("content-encoding", "gzip".into()));
    cases[2].headers.push(("content-encoding", "gzip".into()));
    cases[3].headers.push(("content-encoding", "br".into()));
    cases[4].headers = vec![("content-type", "text/html".into())];
    cases[5].headers = vec![("content-type", NDJSON.1.into())];
    cases[6].headers = vec![("content-type", "application/x-www-form-urlencoded".into())];
    cases
}

pub fn batch_cases(max_items: usize) -> Vec<Case> {
    let too_many = format!("[{}]", vec![event_json(1); max_items + 1].join(","));
    let mut nd_empty = case(
        "NDJSON with only blank lines",
        "/v2.0/events/batch",
        &b"\n \n\n"[..],
        400,
        1002,
    );
    nd_empty.headers = vec![("content-type", NDJSON.1.into())];
    vec![
        case(
            "batch is an object",
            "/v2.0/events/batch",
            event_json(1).into_bytes(),
            400,
            1001,
        ),
        case("batch empty", "/v2.0/events/batch", &b"[]"[..], 400, 1002),
        case(
            "batch over max_batch_items",
            "/v2.0/events/batch",
            too_many.into_bytes(),
            400,
            1002,
        ),
        case(
            "batch truncated",
            "/v2.0/events/batch",
            format!("[{},", event_json(1)).into_bytes(),
            400,
            1001,
        ),
        nd_empty,
    ]
}

pub fn route_cases() -> Vec<Case> {
    let get = |what, path: &str, status, code| Case {
        method: "GET",
        ..case(what, path, Vec::new(), status, code)
    };
    let with = |method, c: Case| Case { method, ..c };
    vec![
        get("GET on a POST route", "/v2.0/events", 405, 1201),
        with(
            "PUT",
            case(
                "PUT on a POST route",
                "/v2.0/events",
                event_json(1).into_bytes(),
                405,
                1201,
            ),
        ),
        with(
            "DELETE",
            case(
                "DELETE on the batch route",
                "/v2.0/events/batch",
                Vec::new(),
                405,
                1201,
            ),
        ),
        case(
            "dot segments in the path",
            "/v2.0/../v2.0/events",
            event_json(1).into_bytes(),
            404,
            1200,
        ),
        case(
            "encoded slash in the path",
            "/v2.0/events%2F..%2Fbatch",
            event_json(1).into_bytes(),
            404,
            1200,
        ),
        case(
            "double slash",
            "/v2.0//events",
            event_json(1).into_bytes(),
            404,
            1200,
        ),
        case(
            "upper-case path",
            "/V2.0/EVENTS",
            event_json(1).into_bytes(),
            404,
            1200,
        ),
        get("8 KiB path", &format!("/{}", "a".repeat(8192)), 404, 1200),
        get(
            "aliases of a non-UUID",
            "/v2.0/users/..%2F..%2Fetc/aliases",
            400,
            1000,
        ),
        get("cohort with a non-UUID id", "/v2/cohorts/..", 404, 1200),
        get("unknown cohort", &format!("/v2/cohorts/{SID}"), 404, 1200),
        case(
            "cohort with an unknown field",
            "/v2/cohorts",
            &br#"{"name":"c","owner":"x"}"#[..],
            400,
            1000,
        ),
        case(
            "cohort with an empty name",
            "/v2/cohorts",
            &br#"{"name":""}"#[..],
            400,
            1000,
        ),
        case(
            "cohort with a bad segment_type",
            "/v2/cohorts",
            &br#"{"name":"c2","segment_type":"A-B"}"#[..],
            400,
            1000,
        ),
        case(
            "cohort with the segment_type of earlier versions",
            "/v2/cohorts",
            &br#"{"name":"c2","segment_type":"standard"}"#[..],
            400,
            1000,
        ),
        case(
            "cohort with a state the API does not list",
            "/v2/cohorts",
            &br#"{"name":"c2","state":"Paused"}"#[..],
            400,
            1000,
        ),
        case(
            "cohort body not JSON",
            "/v2/cohorts",
            &b"name=c"[..],
            400,
            1001,
        ),
        case(
            "identify without aliases",
            "/v2.0/identify",
            format!(r#"{{"user_id":"{UID}"}}"#).into_bytes(),
            400,
            1000,
        ),
        case(
            "identify with a bad user_id",
            "/v2.0/identify",
            &br#"{"user_id":"x","aliases":[{"priority":0,"tag":"t","id":"i"}]}"#[..],
            400,
            1000,
        ),
    ]
}
