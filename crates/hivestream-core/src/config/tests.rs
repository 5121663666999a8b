//! Validation of every setting: defaults, bounds and the error each bad value gets.

use super::*;
use crate::collect::access::Scope;

mod documented;

#[test]
fn defaults_are_the_embedded_setup() {
    let c = RawConfig::default().validate().unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        c.sink,
        SinkTarget::Local(PathBuf::from("./hivestream-data/bucket"))
    );
    assert_eq!(c.router.flush_interval, Duration::from_secs(60));
    assert_eq!(c.router.max_file_bytes, 64 << 20);
}

#[test]
fn s3_sink_with_prefix() {
    let raw = RawConfig {
        sink: Some("s3://my-bucket/raw/events".into()),
        ..Default::default()
    };
    let c = raw.validate().unwrap();
    assert_eq!(
        c.sink,
        SinkTarget::S3 {
            bucket: "my-bucket".into()
        }
    );
    assert_eq!(c.prefix, "raw/events/");
    for bad in ["s3://B", "s3://a/../x", "ftp://x", "s3://ab"] {
        let raw = RawConfig {
            sink: Some(bad.into()),
            ..Default::default()
        };
        assert!(raw.validate().is_err(), "{bad}");
    }
}

#[test]
fn toml_rejects_unknown_keys_and_overlays() {
    assert!(RawConfig::from_toml("nope = 1").is_err());
    let file = RawConfig::from_toml("flush_interval = \"2s\"\nlisten = \"127.0.0.1:9\"").unwrap();
    let cli = RawConfig {
        listen: Some("127.0.0.1:10".into()),
        ..Default::default()
    };
    let c = file.overlay(cli).validate().unwrap();
    assert_eq!(c.listen.port(), 10);
    assert_eq!(c.router.flush_interval, Duration::from_secs(2));
    let later = RawConfig {
        segment_snapshot_interval: Some("5m".into()),
        ..Default::default()
    };
    let c = RawConfig::default().overlay(later).validate().unwrap();
    assert_eq!(c.segment_snapshot_interval, Duration::from_secs(300));
}

#[test]
fn open_listen_needs_keys() {
    let raw = RawConfig {
        listen: Some("0.0.0.0:8080".into()),
        ..Default::default()
    };
    assert!(matches!(
        raw.clone().validate(),
        Err(ConfigError::OpenWithoutKeys(_))
    ));
    let raw = RawConfig {
        api_keys: Some(vec!["k".into()]),
        ..raw
    };
    assert!(raw.validate().is_ok());
}

#[test]
fn cluster_settings_refuse_what_could_lose_data() {
    let c = RawConfig::default().validate().unwrap().cluster;
    assert_eq!((c.partitions, c.replicas), (16, 3));
    assert!(c.nats.is_empty());
    let with = |raw: RawConfig| raw.validate().map(|c| c.cluster);
    let urls = with(RawConfig {
        nats: Some("nats://a:1, nats://b:2,".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(urls.nats, ["nats://a:1", "nats://b:2"]);
    for bad in [
        RawConfig {
            nats: Some("http://a".into()),
            ..Default::default()
        },
        RawConfig {
            replicas: Some(1),
            ..Default::default()
        },
        RawConfig {
            partitions: Some(0),
            ..Default::default()
        },
        RawConfig {
            duplicate_window: Some("5s".into()),
            ..Default::default()
        },
        RawConfig {
            lease_ttl: Some("100ms".into()),
            ..Default::default()
        },
    ] {
        assert!(with(bad).is_err());
    }
}

#[test]
fn keys_have_scopes_and_origins() {
    let text = r#"
            api_keys = ["legacy-admin"]
            ingest_keys = ["pk_public"]
            allowed_origins = ["https://news.example", "https://*.news.example"]
            [[keys]]
            key = "sk_another_admin_key"
            scope = "admin"
            [[keys]]
            key = "pk_partner_site_key"
            scope = "ingest"
            origins = ["https://partner.example"]
        "#;
    let keys = RawConfig::from_toml(text).unwrap().validate().unwrap().keys;
    let scopes: Vec<(String, Scope, usize)> = keys
        .iter()
        .map(|k| (k.secret.0.clone(), k.scope, k.origins.len()))
        .collect();
    assert_eq!(
        scopes,
        [
            ("legacy-admin".into(), Scope::Admin, 0),
            ("pk_public".into(), Scope::Ingest, 2),
            ("sk_another_admin_key".into(), Scope::Admin, 0),
            ("pk_partner_site_key".into(), Scope::Ingest, 1)
        ]
    );
    for bad in [
        "allowed_origins = [\"https://news.example/\"]",
        "[[keys]]\nkey = \"short\"\nscope = \"admin\"",
        "[[keys]]\nkey = \"long-enough-key-xyz\"\nscope = \"root\"",
    ] {
        let parsed = RawConfig::from_toml(bad).map(|r| r.validate());
        assert!(!matches!(parsed, Ok(Ok(_))), "{bad}");
    }
}

#[test]
fn durations() {
    assert_eq!(
        parse_duration("f", "500ms").unwrap(),
        Duration::from_millis(500)
    );
    assert_eq!(parse_duration("f", "7").unwrap(), Duration::from_secs(7));
    assert_eq!(
        parse_duration("f", "2h").unwrap(),
        Duration::from_secs(7200)
    );
    assert!(parse_duration("f", "1d").is_err());
    assert!(parse_duration("f", "x").is_err());
}

#[test]
fn secrets_do_not_debug_print() {
    let raw = RawConfig {
        secret_access_key: Some("SUPERSECRET".into()),
        api_keys: Some(vec!["APIKEY1".into()]),
        ..Default::default()
    };
    let dbg = format!("{:?}", raw.validate().unwrap());
    assert!(dbg.contains("Secret(***)"), "{dbg}");
    assert!(
        !dbg.contains("SUPERSECRET") && !dbg.contains("APIKEY1"),
        "{dbg}"
    );
}

#[test]
fn object_settings_from_toml_and_their_errors() {
    let raw = RawConfig::from_toml(
        r#"
        sink = "s3://events-bucket/raw"
        server_side_encryption = "aws:kms"
        sse_kms_key_id = "arn:aws:kms:eu-west-1:111122223333:key/abcd"
        sse_bucket_key = true
        storage_class = "INTELLIGENT_TIERING"
        object_tags = { team = "data", env = "prod" }
        acl = "bucket-owner-full-control"
        "#,
    )
    .unwrap();
    let c = raw.validate().unwrap();
    assert_eq!(
        c.s3.objects.describe(),
        "SSE-KMS (key arn:aws:kms:eu-west-1:111122223333:key/abcd, bucket key), \
         storage class INTELLIGENT_TIERING, 2 tag(s), ACL bucket-owner-full-control"
    );
    let s3 = |extra: &str| RawConfig::from_toml(&format!("sink = \"s3://b-1/x\"\n{extra}"));
    for (toml, field) in [
        ("acl = \"public-read\"", "acl"),
        ("sse_kms_key_id = \"k\"", "sse_kms_key_id"),
        ("storage_class = \"DEEP_ARCHIVE\"", "storage_class"),
        ("object_tags = \"aws:x=1\"", "object_tags"),
        (
            "server_side_encryption = \"rot13\"",
            "server_side_encryption",
        ),
    ] {
        let err = s3(toml).unwrap().validate().unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { field: f, .. } if *f == field),
            "{toml}: {err}"
        );
    }
    let local = RawConfig {
        acl: Some("bucket-owner-full-control".into()),
        ..Default::default()
    };
    assert!(local
        .validate()
        .unwrap_err()
        .to_string()
        .contains("s3:// sinks only"));
}

/// Every bad value's error, in the exact words users see (`field: why`
/// for [`ConfigError::Invalid`]; the others have their own words).
const BAD_VALUES: &[(&str, &str)] = &[
    (
        "listen = \"nope\"",
        "listen: expected an address like 127.0.0.1:8080",
    ),
    (
        "listen = \"0.0.0.0:8080\"",
        "refusing to listen on 0.0.0.0:8080 without API keys: set `api_keys` (or HIVESTREAM_API_KEYS) or listen on a loopback address",
    ),
    (
        "sink = \"ftp://x\"",
        "sink: \"ftp://x\" must start with s3://, file:// or be memory://",
    ),
    (
        "sink = \"file://\"",
        "sink: file:// needs a directory, e.g. file://./bucket",
    ),
    (
        "sink = \"s3://AB\"",
        "sink: \"AB\" is not a valid S3 bucket name",
    ),
    (
        "sink = \"s3://ok-bucket/../x\"",
        "prefix \"../x\" must not contain empty, '.' or '..' segments or characters other than A-Z a-z 0-9 ! - _ . * ' ( ) = /",
    ),
    (
        "acl = \"bucket-owner-full-control\"",
        "sink: object settings (ACL bucket-owner-full-control) apply to s3:// sinks only",
    ),
    (
        "storage_class = \"DEEP_ARCHIVE\"",
        "storage_class: \"DEEP_ARCHIVE\" objects cannot be queried without a restore; write STANDARD and move old partitions with a lifecycle rule",
    ),
    (
        "allowed_origins = [\"https://a.example/\"]",
        "allowed_origins: \"https://a.example/\" is not an origin like https://news.example or https://*.news.example (no path, no trailing slash)",
    ),
    (
        "worker_id = \"bad id\"",
        "worker_id \"bad id\" must be 1 to 64 characters of A-Z, a-z, 0-9 and _",
    ),
    (
        "workspace_id = \"x\"",
        "workspace_id: \"x\" is not a UUID",
    ),
    (
        "flush_interval = \"50ms\"",
        "flush_interval: must be at least 100ms",
    ),
    (
        "flush_interval = \"1d\"",
        "flush_interval: \"1d\" has an unknown unit (use ms, s, m or h)",
    ),
    (
        "flush_interval = \"x\"",
        "flush_interval: \"x\" is not a duration like 60s",
    ),
    (
        "max_file_bytes = 10",
        "max_file_bytes: 10 is outside 1024..=5368709120",
    ),
    (
        "max_file_bytes = 6000000000",
        "max_file_bytes: 6000000000 is outside 1024..=5368709120",
    ),
    (
        "max_backlog_bytes = 1",
        "max_backlog_bytes: 1 is outside 1048576..=18446744073709551615",
    ),
    (
        "max_body_bytes = 10",
        "max_body_bytes: 10 is outside 1024..=268435456",
    ),
    (
        "max_body_bytes = 300000000",
        "max_body_bytes: 300000000 is outside 1024..=268435456",
    ),
    (
        "max_inflight_body_bytes = 10",
        "max_inflight_body_bytes: must be at least max_body_bytes, or no body of that size could ever be read",
    ),
    (
        "body_timeout = \"1y\"",
        "body_timeout: \"1y\" has an unknown unit (use ms, s, m or h)",
    ),
    (
        "max_batch_items = 0",
        "max_batch_items: 0 is outside 1..=1000000",
    ),
    (
        "compression_level = 10",
        "compression_level: 10 is outside 1..=9",
    ),
    (
        "upload_concurrency = 0",
        "upload_concurrency: 0 is outside 1..=64",
    ),
    (
        "shutdown_timeout = \"x\"",
        "shutdown_timeout: \"x\" is not a duration like 60s",
    ),
    (
        "segment_snapshot_interval = \"x\"",
        "segment_snapshot_interval: \"x\" is not a duration like 60s",
    ),
    (
        "index_cache_bytes = 1",
        "index_cache_bytes: 1 is outside 1048576..=68719476736",
    ),
    (
        "max_connections = 0",
        "max_connections: 0 is outside 1..=1000000",
    ),
    (
        "header_timeout = \"x\"",
        "header_timeout: \"x\" is not a duration like 60s",
    ),
    (
        "idle_timeout = \"x\"",
        "idle_timeout: \"x\" is not a duration like 60s",
    ),
    (
        "rate_limit = 0.0",
        "rate_limit: must be a positive number of requests per second",
    ),
    (
        "rate_limit = inf",
        "rate_limit: must be a positive number of requests per second",
    ),
    (
        "dedup_window = \"x\"",
        "dedup_window: \"x\" is not a duration like 60s",
    ),
    (
        "dedup_max_ids = 0",
        "dedup_max_ids: 0 is outside 1..=18446744073709551615",
    ),
    (
        "nats = \"http://a\"",
        "nats: \"http://a\" must be a nats:// or tls:// URL",
    ),
    (
        "cluster_name = \"Bad\"",
        "cluster_name: \"Bad\" must be 1 to 32 characters of a-z, 0-9 and _",
    ),
    (
        "cluster_name = \"\"",
        "cluster_name: \"\" must be 1 to 32 characters of a-z, 0-9 and _",
    ),
    (
        "replicas = 1",
        "replicas: 1: must be 3 or 5 (fewer replicas lose acknowledged events with one disk)",
    ),
    (
        "partitions = 0",
        "partitions: 0 is outside 1..=100",
    ),
    (
        "partitions = 101",
        "partitions: 101 is outside 1..=100",
    ),
    (
        "lease_ttl = \"100ms\"",
        "lease_ttl: must be at least 1s",
    ),
    (
        "duplicate_window = \"5s\"",
        "duplicate_window: must be at least twice publish_timeout (at least 1s), or a retried publish could be stored twice",
    ),
    (
        "publish_timeout = \"500ms\"",
        "duplicate_window: must be at least twice publish_timeout (at least 1s), or a retried publish could be stored twice",
    ),
    (
        "publish_timeout = \"2m\"",
        "duplicate_window: must be at least twice publish_timeout (at least 1s), or a retried publish could be stored twice",
    ),
    (
        "stream_max_bytes = 1",
        "stream_max_bytes: 1 is outside 16777216..=18446744073709551615",
    ),
    (
        "identity_max_bytes = 1",
        "identity_max_bytes: 1 is outside 16777216..=18446744073709551615",
    ),
    (
        "[[keys]]\nkey = \"short\"\nscope = \"admin\"",
        "keys: every key in [[keys]] needs at least 16 characters",
    ),
];

#[test]
fn every_bad_value_gets_its_message() {
    for (toml, want) in BAD_VALUES {
        let err = RawConfig::from_toml(toml).unwrap().validate().unwrap_err();
        assert_eq!(err.to_string(), *want, "{toml}");
    }
    let variant = |toml: &str| RawConfig::from_toml(toml).unwrap().validate().unwrap_err();
    assert!(matches!(
        variant("listen = \"0.0.0.0:8080\""),
        ConfigError::OpenWithoutKeys(_)
    ));
    assert!(matches!(
        variant("worker_id = \"bad id\""),
        ConfigError::Key(KeyError::WorkerId(_))
    ));
    assert!(matches!(
        variant("sink = \"s3://ok-bucket/../x\""),
        ConfigError::Key(KeyError::Prefix(_))
    ));
}
