//! API keys guard every data route: missing, wrong, empty, differently
//! cased, prefixed or suffixed keys, keys in the wrong header or query
//! parameter all get 401 with code 1100; both configured keys work, in the
//! header and in `?k=`; health needs no key.

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
