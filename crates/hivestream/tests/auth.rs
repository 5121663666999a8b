//! API keys guard every data route: missing, wrong, empty, differently
//! cased, prefixed or suffixed keys, keys in the wrong header or query
//! parameter all get 401 with code 1100; both configured keys work, in the
//! header and in `?k=`; health needs no key. Ingest keys reach only the
//! ingest routes (403 elsewhere), browser origins must be allowed by the
//! key (403, readable by the page), preflights are answered from the
//! allowed origins, and beacons (`text/plain`, key in `?k=`) are accepted.

mod common;

use common::*;

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

/// Ingest and admin keys, allowed origins, CORS and beacons, over HTTP.
#[test]
fn scopes_origins_cors_and_beacons() {
    let mut setup = Setup::new(Backend::Local, "auth-scopes");
    setup.extra = [
        "--ingest-key",
        "pk_test",
        "--allowed-origin",
        "https://news.example,https://*.partner.example",
        "--admin-key",
        "sk_test",
        "--api-key",
        "legacy_admin",
    ]
    .map(String::from)
    .to_vec();
    let server = setup.start("300ms");
    let body = event_json(1);
    let send = |path: &str, headers: &[(&str, &str)]| server.post(path, headers, body.as_bytes());
    let pk = ("x-api-key", "pk_test");

    assert_eq!(
        send("/v2.0/events", &[JSON, pk]).status,
        201,
        "server-side ingest"
    );
    let r = send(
        "/v2.0/events",
        &[JSON, pk, ("origin", "https://news.example")],
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://news.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("Retry-After"));
    assert_eq!(
        send(
            "/v2.0/events",
            &[JSON, pk, ("origin", "https://a.partner.example")]
        )
        .status,
        201
    );
    for (origin, why) in [
        ("https://evil.example", "an origin the key does not list"),
        ("https://partner.example", "the wildcard's apex"),
        ("http://news.example", "another scheme"),
    ] {
        let r = send("/v2.0/events", &[JSON, pk, ("origin", origin)]);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_u64()),
            (403, Some(1101)),
            "{why}"
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some(origin),
            "the page can read the 403"
        );
    }

    // Scopes: an ingest key never reaches admin routes; no CORS there.
    let r = server.post(
        "/v2/cohorts",
        &[JSON, pk, ("origin", "https://news.example")],
        br#"{"name":"x"}"#,
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_u64()),
        (403, Some(1101))
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = request(
        &server.addr,
        "GET",
        &format!("/v2.0/users/{UID}/aliases"),
        &[pk],
        b"",
    );
    assert_eq!(r.status, 403);
    for admin in ["sk_test", "legacy_admin"] {
        let r = request(
            &server.addr,
            "GET",
            "/v2/cohorts",
            &[("x-api-key", admin)],
            b"",
        );
        assert_eq!(r.status, 200, "{admin} is an admin key");
    }
    let r = request(
        &server.addr,
        "GET",
        "/v2/cohorts",
        &[("x-api-key", "sk_test"), ("origin", "https://news.example")],
        b"",
    );
    assert_eq!(r.status, 403, "admin keys list no origins: servers only");

    // Preflight, from the allowed origins of the ingest keys.
    let pre = |origin: &str, path: &str| {
        request(
            &server.addr,
            "OPTIONS",
            path,
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type,x-api-key"),
            ],
            b"",
        )
    };
    let r = pre("https://news.example", "/v2.0/events/batch");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://news.example")
    );
    assert!(r
        .header("access-control-allow-headers")
        .unwrap()
        .contains("x-api-key"));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert!(r.header("access-control-max-age").is_some());
    assert_eq!(
        pre("https://evil.example", "/v2.0/events/batch").status,
        403
    );
    assert_eq!(
        pre("https://news.example", "/v2.0/events?k=sk_test").status,
        403,
        "the admin key lists no origin"
    );
    assert_ne!(
        pre("https://news.example", "/v2/cohorts").status,
        204,
        "no CORS on admin routes"
    );

    // Beacons: text/plain with the key in ?k=, JSON array or NDJSON.
    let nd = format!("{}\n{}\n", event_json(2), event_json(3));
    let arr = format!("[{},{}]", event_json(4), event_json(5));
    for text in [nd, arr] {
        let r = server.post(
            "/v2.0/events/batch?k=pk_test",
            &[
                ("content-type", "text/plain;charset=UTF-8"),
                ("origin", "https://news.example"),
            ],
            text.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["accepted"], 2);
    }
    assert_eq!(server.terminate(), 0);
}
