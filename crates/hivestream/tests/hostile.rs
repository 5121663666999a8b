//! Hostile input: malformed, oversized, tricky and unauthorised requests
//! against the real binary. Each must get its precise status and error code
//! in the contract's envelope; a batch with bad items must store the good
//! ones; the process must stay up; and what was stored before must come out
//! exactly once, with nothing from a rejected request in the bucket.

mod common;

use std::io::Write;

use common::verify::assert_exactly_once;
use common::*;

const SID: &str = "5f0e8c1e-2a8b-4c54-9d7e-0a1b2c3d4e5f";
const NDJSON: (&str, &str) = ("content-type", "application/x-ndjson");

/// One hostile request and the answer it must get.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: u64,
}

fn case(what: &'static str, path: &str, body: impl Into<Vec<u8>>, status: u16, code: u64) -> Case {
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
fn event_with(field: &str, value: &str) -> String {
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

fn event_cases() -> Vec<Case> {
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
            &event_with("event_id", &format!("\"{SID}\"")),
            400,
            1000,
            "client sets event_id",
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

fn transport_cases(max_body: usize) -> Vec<Case> {
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
            "text/plain",
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
    cases[4].headers = vec![("content-type", "text/plain".into())];
    cases[5].headers = vec![("content-type", NDJSON.1.into())];
    cases[6].headers = vec![("content-type", "application/x-www-form-urlencoded".into())];
    cases
}

fn batch_cases(max_items: usize) -> Vec<Case> {
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

fn route_cases() -> Vec<Case> {
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

fn check(server: &Server, c: &Case) {
    let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = request(&server.addr, c.method, &c.path, &headers, &c.body);
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, c.status, "{}: {text}", c.what);
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{}: not the JSON envelope ({e}): {text}", c.what));
    assert_eq!(v["error"]["code"], c.code, "{}: {v}", c.what);
    assert!(
        v["request_id"].as_str().is_some_and(|s| s.len() == 36),
        "{}",
        c.what
    );
    for f in ["status", "message", "docs", "cause"] {
        assert!(
            v["error"][f].as_str().is_some_and(|s| !s.is_empty()),
            "{}: {f} in {v}",
            c.what
        );
    }
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        c.what
    );
}

/// Good items of mixed batches are stored; bad ones are reported by index.
fn mixed_batches(server: &Server) -> Vec<String> {
    let items = [
        event_json(900),
        "1".to_string(),
        event_with("name", "\"bad name\""),
        event_json(901),
        "null".to_string(),
        event_with("properties", "[]"),
        event_json(902),
    ];
    let r = server.post(
        "/v2.0/events/batch",
        &[JSON],
        format!("[{}]", items.join(",")).as_bytes(),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(3), Some(4)),
        "{v}"
    );
    let statuses: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 400, 400, 201, 400, 400, 201], "{v}");
    let mut acked: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["event_id"].as_str().map(String::from))
        .collect();
    let nd = format!(
        "{}\n{{not json\n\n{}\n[1]\n",
        event_json(903),
        event_json(904)
    );
    let r = server.post("/v2.0/events/batch", &[NDJSON], nd.as_bytes());
    let v = r.json();
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert_eq!(v["results"][1]["error"]["code"], 1001, "{v}");
    acked.extend(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["event_id"].as_str().map(String::from)),
    );
    acked
}

#[test]
fn hostile_requests_get_precise_errors_and_harm_nothing() {
    let (max_body, max_items) = (2 << 20, 100);
    let mut setup = Setup::new(Backend::Local, "hostile");
    setup.extra = vec![
        "--max-body-bytes".into(),
        max_body.to_string(),
        "--max-batch-items".into(),
        max_items.to_string(),
    ];
    let server = setup.start("300ms");
    let mut acked = send_batch(&server.addr, 0, 50);
    assert_eq!(acked.len(), 50);
    let r = server.post("/v2/cohorts", &[JSON], br#"{"name":"taken"}"#);
    assert_eq!(r.status, 201);
    let mut cases = event_cases();
    cases.extend(transport_cases(max_body));
    cases.extend(batch_cases(max_items));
    cases.extend(route_cases());
    cases.push(case(
        "duplicate cohort name",
        "/v2/cohorts",
        &br#"{"name":"taken"}"#[..],
        409,
        1202,
    ));
    for c in &cases {
        check(&server, c);
        assert_eq!(server.get("/healthz").status, 200, "down after: {}", c.what);
    }
    acked.extend(mixed_batches(&server));
    acked.extend(send_batch(&server.addr, 50, 50));
    assert_eq!(
        server.terminate(),
        0,
        "clean exit after {} hostile requests",
        cases.len()
    );
    let d = assert_exactly_once(&setup, &acked);
    assert_eq!(
        d.found,
        acked.len(),
        "something from a rejected request reached the bucket"
    );
    eprintln!(
        "{} hostile requests answered precisely; {} events stored exactly once",
        cases.len(),
        d.found
    );
}

/// What an attempt is called, its path and its headers.
type Attempt<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);

#[test]
fn api_keys_guard_every_data_route() {
    let mut setup = Setup::new(Backend::Local, "hostile-auth");
    setup.extra = vec![
        "--api-key".into(),
        "k-good-1".into(),
        "--api-key".into(),
        "k-good-2".into(),
    ];
    let server = setup.start("300ms");
    let body = event_json(1);
    let attempts: Vec<Attempt> = vec![
        ("no key", "/v2.0/events".into(), vec![JSON]),
        (
            "wrong header key",
            "/v2.0/events".into(),
            vec![JSON, ("x-api-key", "k-bad")],
        ),
        (
            "empty header key",
            "/v2.0/events".into(),
            vec![JSON, ("x-api-key", "")],
        ),
        (
            "key of another case",
            "/v2.0/events".into(),
            vec![JSON, ("x-api-key", "K-GOOD-1")],
        ),
        (
            "key with a suffix",
            "/v2.0/events".into(),
            vec![JSON, ("x-api-key", "k-good-1x")],
        ),
        (
            "key prefix only",
            "/v2.0/events".into(),
            vec![JSON, ("x-api-key", "k-good")],
        ),
        (
            "bearer token instead",
            "/v2.0/events".into(),
            vec![JSON, ("authorization", "Bearer k-good-1")],
        ),
        ("wrong query key", "/v2.0/events?k=k-bad".into(), vec![JSON]),
        (
            "query key in another parameter",
            "/v2.0/events?key=k-good-1".into(),
            vec![JSON],
        ),
        ("no key on batch", "/v2.0/events/batch".into(), vec![JSON]),
        ("no key on identify", "/v2.0/identify".into(), vec![JSON]),
        ("no key on cohorts", "/v2/cohorts".into(), vec![JSON]),
    ];
    for (what, path, headers) in &attempts {
        let r = server.post(path, headers, body.as_bytes());
        assert_eq!(r.status, 401, "{what}");
        assert_eq!(r.json()["error"]["code"], 1100, "{what}");
    }
    assert_eq!(
        server.get("/v2/cohorts").status,
        401,
        "reads need a key too"
    );
    for good in [
        vec![JSON, ("x-api-key", "k-good-1")],
        vec![JSON, ("x-api-key", "k-good-2")],
    ] {
        assert_eq!(
            server.post("/v2.0/events", &good, body.as_bytes()).status,
            201
        );
    }
    assert_eq!(
        server
            .post("/v2.0/events?k=k-good-2", &[JSON], body.as_bytes())
            .status,
        201
    );
    assert_eq!(server.get("/healthz").status, 200, "health needs no key");
    assert_eq!(server.terminate(), 0);
}
