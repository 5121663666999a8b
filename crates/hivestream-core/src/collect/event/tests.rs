//! Validation cases: every rejection names the field, and the output line has
//! the contract's keys in order.

use super::*;
use proptest::prelude::*;

const UID: &str = "0b1e4c7c-1f53-4d8e-9a4e-7f1c2d3e4f50";

fn ok(body: &str) -> ValidEvent<'_> {
    parse_event(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"))
}

fn err(body: &str) -> ApiError {
    match parse_event(body.as_bytes()) {
        Ok(e) => panic!("accepted {}: {e:?}", &body[..body.len().min(200)]),
        Err(e) => e,
    }
}

#[test]
fn minimal_event_line() {
    let body = format!(
        r#"{{"name":"Pageview","user_id":"{}"}}"#,
        UID.to_uppercase()
    );
    let ev = ok(&body);
    let mut line = Vec::new();
    let user = match ev.user {
        UserRef::Id(u) => u,
        _ => unreachable!(),
    };
    ev.write_line(&Uuid::nil(), 1_764_057_600_123, &user, &mut line);
    assert_eq!(
        String::from_utf8(line).unwrap(),
        format!(
            r#"{{"event_id":"00000000-0000-0000-0000-000000000000","time":"2025-11-25T08:00:00.123Z","name":"Pageview","user_id":"{UID}","session_id":null,"view_id":null,"segments":[],"cohorts":[],"properties":{{}}}}"#
        )
    );
}

#[test]
fn full_event_keeps_properties_and_minifies_them() {
    let body = format!(
        "{{\"name\":\"Click\",\"user_id\":\"{UID}\",\"session_id\":\"{UID}\",\"view_id\":null,\"segments\":[1,-2,3],\"cohorts\":[\"a\\\"b\"],\"properties\":{{ \"url\" : \"https://x.y/a b\",\n \"n\": [1, {{\"k\": true}}] }}}}"
    );
    let ev = ok(&body);
    assert_eq!(ev.segments, vec![1, -2, 3]);
    let mut line = Vec::new();
    ev.write_line(&Uuid::nil(), 0, &Uuid::nil(), &mut line);
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["properties"]["url"], "https://x.y/a b");
    assert_eq!(v["cohorts"][0], "a\"b");
    assert!(!line.contains(&b'\n'));
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    // serde_json's map is sorted; check the raw order instead.
    let text = String::from_utf8(line).unwrap();
    let order = FIELDS;
    let positions: Vec<_> = order
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(sorted.len(), 9);
}

#[test]
fn rejections_name_the_field() {
    let cases = [
        (r#"[]"#.to_string(), "body"),
        (r#"{"name":"x"}"#.to_string(), "user_id: required"),
        (format!(r#"{{"user_id":"{UID}"}}"#), "name: required"),
        (
            format!(r#"{{"name":"a b","user_id":"{UID}"}}"#),
            "name: must be",
        ),
        (
            format!(r#"{{"name":"{}","user_id":"{UID}"}}"#, "a".repeat(129)),
            "name: must be",
        ),
        (
            format!(r#"{{"name":"","user_id":"{UID}"}}"#),
            "name: must be",
        ),
        (
            format!(r#"{{"name":5,"user_id":"{UID}"}}"#),
            "name: expected a string",
        ),
        (
            r#"{"name":"x","user_id":"nope"}"#.to_string(),
            "user_id: \"nope\" is not a UUID",
        ),
        (
            format!(r#"{{"name":"x","user_id":"{UID}","session_id":7}}"#),
            "session_id: expected a UUID",
        ),
        (
            format!(r#"{{"name":"x","user_id":"{UID}","segments":[1,1.5]}}"#),
            "segments[1]: expected an integer, got 1.5",
        ),
        (
            format!(r#"{{"name":"x","user_id":"{UID}","segments":{{}}}}"#),
            "segments: expected an array",
        ),
        (
            format!(r#"{{"name":"x","user_id":"{UID}","cohorts":[1]}}"#),
            "cohorts[0]: expected a string",
        ),
        (
            format!(r#"{{"name":"x","user_id":"{UID}","properties":[]}}"#),
            "properties: expected an object",
        ),
        (
            format!(r#"{{"name":"x","user_id":"{UID}","extra":1}}"#),
            "unknown field `extra`",
        ),
        (
            format!(r#"{{"name":"x","user_id":"{UID}","time":"2020"}}"#),
            "unknown field `time`",
        ),
        (
            format!(r#"{{"name":"x","name":"y","user_id":"{UID}"}}"#),
            "duplicate field `name`",
        ),
        (
            r#"{"name":"x","aliases":[]}"#.to_string(),
            "aliases: must not be empty",
        ),
        (
            r#"{"name":"x","aliases":[{"tag":"t","id":"i"}]}"#.to_string(),
            "aliases[0]: missing field `priority`",
        ),
        (
            r#"{"name":"x","aliases":[{"priority":0,"tag":"","id":"i"}]}"#.to_string(),
            "aliases[0].tag",
        ),
    ];
    for (body, cause) in cases {
        let e = err(&body);
        assert!(
            e.cause.contains(cause),
            "{body}: {:?} does not contain {cause:?}",
            e.cause
        );
        assert_eq!(e.kind.http_status(), 400, "{body}");
    }
}

#[test]
fn malformed_json_is_invalid_json() {
    for body in ["{", "{\"name\":}", "{\"name\":\"\u{0}\"}", "{} trailing"] {
        assert_eq!(err(body).kind, ErrorKind::InvalidJson, "{body:?}");
    }
    assert_eq!(
        parse_event(b"{\"name\":\"\xff\"}").unwrap_err().kind,
        ErrorKind::InvalidJson
    );
}

#[test]
fn deep_nesting_is_rejected_without_overflow() {
    let deep = format!(
        r#"{{"name":"x","user_id":"{UID}","properties":{{"a":{}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = err(&deep);
    assert_eq!(e.kind, ErrorKind::Validation);
    assert!(e.cause.starts_with("properties: nested"), "{}", e.cause);
    let ok_depth = format!(
        r#"{{"name":"x","user_id":"{UID}","properties":{{"a":{}1{}}}}}"#,
        "[".repeat(MAX_DEPTH - 1),
        "]".repeat(MAX_DEPTH - 1)
    );
    ok(&ok_depth);
}

#[test]
fn oversize_properties_are_413() {
    let big = format!(
        r#"{{"name":"x","user_id":"{UID}","properties":{{"a":"{}"}}}}"#,
        "x".repeat(MAX_PROPERTIES_BYTES)
    );
    assert_eq!(err(&big).kind, ErrorKind::TooLarge);
    // Whitespace does not count towards the limit.
    let padded = format!(
        r#"{{"name":"x","user_id":"{UID}","properties":{{"a":1{}}}}}"#,
        " ".repeat(MAX_PROPERTIES_BYTES)
    );
    ok(&padded);
}

#[test]
fn aliases_only_event() {
    let ev = ok(r#"{"name":"x","aliases":[{"priority":1,"tag":"email","id":"a@b"}]}"#);
    assert_eq!(
        ev.user,
        UserRef::Aliases(vec![Alias {
            priority: 1,
            tag: "email".into(),
            id: "a@b".into()
        }])
    );
}

proptest! {
    #[test]
    fn minify_equals_compact_serialisation(v in json_value(3)) {
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let mut out = Vec::new();
        minify_into(&pretty, &mut out);
        prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_event(&body);
    }
}

fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ a-z\"\\\\\\n\\t{}:,é]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(depth, 32, 4, |inner| {
        // Arrays and objects of leaves and of each other.
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z \"]{0,5}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn measure_agrees_with_minify(v in json_value(4)) {
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let mut out = Vec::new();
        minify_into(&pretty, &mut out);
        prop_assert_eq!(measure(&pretty).len, out.len());
    }
}

#[test]
fn numbers_beyond_f64_are_rejected_with_the_number() {
    let body = |n: &str| {
        format!(r#"{{"name":"a","user_id":"{UID}","properties":{{"x":[1,{{"y":{n}}}]}}}}"#)
    };
    for ok in [
        "1e308",
        "-1.7976931348623157e308",
        "1e-400",
        "0.5E+3",
        "123456789012345678901234",
    ] {
        assert!(parse_event(body(ok).as_bytes()).is_ok(), "{ok}");
    }
    let huge = format!("1{}", "0".repeat(400));
    for bad in ["1e309", "-1e400", "0.22E8000000000", huge.as_str()] {
        let e = parse_event(body(bad).as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation, "{bad}");
        assert!(e.cause.contains("outside the range"), "{bad}: {}", e.cause);
    }
    // Letters of true/false/null are not numbers.
    assert!(parse_event(body("[true,false,null]").as_bytes()).is_ok());
}

#[test]
fn lone_surrogates_are_rejected_pairs_are_kept() {
    let body = |s: &str| format!(r#"{{"name":"a","user_id":"{UID}","properties":{{"s":"{s}"}}}}"#);
    for ok in [
        r"\ud83d\ude00",
        r"x\u00e9y",
        r"\\ud800",
        r"\u0041\ud83d\ude00z",
    ] {
        assert!(parse_event(body(ok).as_bytes()).is_ok(), "{ok}");
    }
    for bad in [
        r"\ud800",
        r"\udAd9x",
        r"\ude00",
        r"\ud83d\u0041",
        r"\ud83d\ud83d\ude00",
    ] {
        let e = parse_event(body(bad).as_bytes()).unwrap_err();
        assert!(
            e.cause.contains("lone UTF-16 surrogate"),
            "{bad}: {}",
            e.cause
        );
    }
}

#[test]
fn client_event_ids_are_kept_and_read_back_from_lines() {
    let id = "5f0c1f5e-0a4b-4b7b-9a4e-1234567890ab";
    let body = format!(r#"{{"event_id":"{id}","name":"Click_2","user_id":"{UID}"}}"#);
    let ev = ok(&body);
    assert_eq!(ev.event_id, Some(Uuid::try_parse(id).unwrap()));
    let mut line = Vec::new();
    ev.write_line(
        &ev.event_id.unwrap(),
        5,
        &Uuid::try_parse(UID).unwrap(),
        &mut line,
    );
    assert_eq!(
        line_ids(&line),
        Some((Uuid::try_parse(id).unwrap(), Uuid::try_parse(UID).unwrap()))
    );
    let null_id = format!(r#"{{"event_id":null,"name":"a","user_id":"{UID}"}}"#);
    assert!(ok(&null_id).event_id.is_none());
    assert!(
        parse_event(format!(r#"{{"event_id":"x","name":"a","user_id":"{UID}"}}"#).as_bytes())
            .is_err()
    );
    assert_eq!(line_ids(b"{\"event_id\":\"short"), None);
}
