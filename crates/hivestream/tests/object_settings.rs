//! S3 object settings against SeaweedFS, which stores SSE-S3, storage
//! classes and tags and enforces bucket policies (SSE-KMS and ACL headers
//! are checked on the wire in `hivestream-core`'s `sink::object_wire_tests`):
//!
//! - every object `serve` writes (events, sync_aliases, segment snapshots)
//!   carries the configured encryption, storage class and tags;
//! - `doctor` reads a bucket policy that requires encryption, says which
//!   statement refuses our PUTs and which setting fixes it, and passes
//!   once the setting is made;
//! - object settings on a local sink are refused at start-up.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs a Python snippet with boto3 against the test endpoint (`argv[1]`).
fn boto(script: &str, args: &[&str]) -> serde_json::Value {
    let prelude = "import boto3, json, sys\n\
        s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1')\n";
    python_json(&format!("{prelude}{script}"), args)
}

const HEADS: &str = "\
out = {}
for key in sys.argv[3:]:
    h = s3.head_object(Bucket=sys.argv[2], Key=key)['ResponseMetadata']['HTTPHeaders']
    tags = s3.get_object_tagging(Bucket=sys.argv[2], Key=key)['TagSet']
    out[key] = {'sse': h.get('x-amz-server-side-encryption'),
                'class': h.get('x-amz-storage-class'),
                'tags': {t['Key']: t['Value'] for t in tags}}
print(json.dumps(out))
";

fn s3_backend() -> Option<(String, String)> {
    match backends().into_iter().nth(1) {
        Some(Backend::S3 { endpoint, bucket }) => Some((endpoint, bucket)),
        _ => {
            eprintln!("no S3 endpoint in this run (HIVESTREAM_TEST_S3_ENDPOINT); skipped");
            None
        }
    }
}

#[test]
fn every_object_carries_encryption_class_and_tags() {
    let Some((endpoint, bucket)) = s3_backend() else {
        return;
    };
    let mut setup = Setup::new(
        Backend::S3 {
            endpoint: endpoint.clone(),
            bucket: bucket.clone(),
        },
        "objects",
    );
    setup.extra = [
        "--server-side-encryption",
        "AES256",
        "--storage-class",
        "STANDARD_IA",
        "--object-tags",
        "team=data,env=test",
    ]
    .map(String::from)
    .to_vec();
    let server = setup.start("500ms");
    send_batch(&server.addr, 0, 50);
    let user = server.post("/v2.0/users", &[], b"").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = format!(
        r#"{{"user_id":"{user}","aliases":[{{"priority":0,"tag":"email_sha256","id":"abc"}}]}}"#
    );
    let r = server.post("/v2.0/identify", &[JSON], body.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        server
            .post("/v2/cohorts", &[JSON], br#"{"name":"Tagged"}"#)
            .status,
        201
    );
    let objects = wait_for_objects(&setup, Duration::from_secs(20), |o| {
        ["type=events/", "type=sync_aliases/", "type=segment/"]
            .iter()
            .all(|t| o.keys().any(|k| k.starts_with(t)))
    });
    assert_eq!(server.terminate(), 0);
    let keys: Vec<String> = objects
        .keys()
        .map(|k| format!("{}/{k}", setup.prefix))
        .collect();
    let mut args = vec![endpoint.as_str(), bucket.as_str()];
    args.extend(keys.iter().map(String::as_str));
    let heads = boto(HEADS, &args);
    assert_eq!(heads.as_object().unwrap().len(), keys.len());
    for (key, h) in heads.as_object().unwrap() {
        assert_eq!(h["sse"], "AES256", "{key}: {h}");
        assert_eq!(h["class"], "STANDARD_IA", "{key}: {h}");
        assert_eq!(
            h["tags"],
            serde_json::json!({"team": "data", "env": "test"}),
            "{key}"
        );
    }
}

fn doctor(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hivestream"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("run doctor");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

const REQUIRE_SSE: &str = r#"
bucket = sys.argv[2]
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
policy = {"Version": "2012-10-17", "Statement": [{
    "Sid": "RequireSseS3", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
    "Resource": "arn:aws:s3:::%s/*" % bucket,
    "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}}}]}
s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
print(json.dumps({"ok": True}))
"#;

#[test]
fn doctor_names_the_policy_statement_and_the_setting_that_satisfies_it() {
    let Some((endpoint, _)) = s3_backend() else {
        return;
    };
    let bucket = "hivestream-policy-test";
    boto(REQUIRE_SSE, &[&endpoint, bucket]);
    let sink = format!("s3://{bucket}/doctor");
    let base = ["--sink", &sink, "--endpoint", &endpoint];

    let (code, out) = doctor(&base);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[FAIL] bucket policy: statement \"RequireSseS3\" denies s3:PutObject when StringNotEquals s3:x-amz-server-side-encryption"),
        "{out}"
    );
    assert!(out.contains("fix: set server_side_encryption"), "{out}");
    // SeaweedFS enforces the policy: the probe PUT is refused too, and its
    // fix points back at the policy line.
    assert!(out.contains("[FAIL] put: "), "{out}");
    assert!(out.contains("see the bucket policy line above"), "{out}");

    let mut with_sse = base.to_vec();
    with_sse.extend([
        "--server-side-encryption",
        "AES256",
        "--storage-class",
        "STANDARD_IA",
    ]);
    let (code, out) = doctor(&with_sse);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("[ok  ] bucket policy: allows PUTs with SSE-S3, storage class STANDARD_IA"),
        "{out}"
    );
    assert!(
        out.contains(
            "[ok  ] object settings: the probe was stored with SSE-S3, storage class STANDARD_IA"
        ),
        "{out}"
    );
    assert!(out.contains("the sink is ready"), "{out}");
}

#[test]
fn object_settings_on_a_local_sink_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hivestream"))
        .args(["serve", "--storage-class", "STANDARD_IA", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("object settings (storage class STANDARD_IA) apply to s3:// sinks only"),
        "{err}"
    );
}
